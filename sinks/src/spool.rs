//! The on-disk spool: alerts a destination has not yet acknowledged.
//!
//! A spooled sink writes every alert here first (appended and synced to
//! disk), and a delivery task sends them from the head, in order, removing
//! them only once the destination acknowledged them. While a destination
//! is down the alerts wait here, bounded by `max_bytes`; a restart finds
//! them again.
//!
//! On disk, a directory per sink:
//! - `segment-<first seq>.log`: one line per alert, `<seq>\t<alert JSON>`;
//!   a new segment starts past [`SEGMENT_BYTES`];
//! - `acked`: the highest sequence the destination acknowledged, written
//!   to a temporary file and renamed over the old one.
//!
//! A segment is deleted once every alert in it is acknowledged. A torn
//! last line (a crash while appending) is ignored when the spool is opened:
//! its alert was never acknowledged to the pipeline, so its readings'
//! offsets were not committed and it will be produced again.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::alert::AlertMessage;
use crate::error::SinkError;

/// A new segment file starts once the current one is this large.
pub const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

/// One alert waiting for its destination.
#[derive(Debug, Clone)]
pub struct Spooled {
    pub seq: u64,
    pub alert: AlertMessage,
    /// Its line's size on disk.
    pub bytes: u64,
    /// When it was spooled (when the spool was opened, for alerts found
    /// on disk).
    pub since: Instant,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    last_seq: u64,
    bytes: u64,
}

/// A sink's spool directory, opened.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    pending: VecDeque<Spooled>,
    pending_bytes: u64,
    segments: Vec<Segment>,
    writer: Option<File>,
    next_seq: u64,
    acked: u64,
}

impl Spool {
    /// Open (or create) the spool in `dir`, holding at most `max_bytes` of
    /// unacknowledged alerts.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SinkError> {
        let io = |what: &str, e: std::io::Error| SinkError::Spool {
            dir: dir.to_owned(),
            message: format!("{what}: {e}"),
        };
        fs::create_dir_all(dir).map_err(|e| io("cannot create the directory", e))?;
        let acked = match fs::read_to_string(dir.join("acked")) {
            Ok(s) => s.trim().parse::<u64>().map_err(|_| SinkError::Spool {
                dir: dir.to_owned(),
                message: format!("`acked` holds {s:?}, not a sequence number"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io("cannot read `acked`", e)),
        };
        let mut paths: Vec<(u64, PathBuf)> = fs::read_dir(dir)
            .map_err(|e| io("cannot list", e))?
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let name = path.file_name()?.to_str()?;
                let first = name.strip_prefix("segment-")?.strip_suffix(".log")?;
                Some((first.parse().ok()?, path))
            })
            .collect();
        paths.sort();
        let mut spool = Spool {
            dir: dir.to_owned(),
            max_bytes,
            pending: VecDeque::new(),
            pending_bytes: 0,
            segments: Vec::new(),
            writer: None,
            next_seq: acked + 1,
            acked,
        };
        for (_, path) in paths {
            spool.load_segment(path)?;
        }
        spool.drop_acked_segments()?;
        Ok(spool)
    }

    fn load_segment(&mut self, path: PathBuf) -> Result<(), SinkError> {
        let file = File::open(&path).map_err(|e| SinkError::Spool {
            dir: self.dir.clone(),
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        let mut segment = Segment {
            path,
            last_seq: 0,
            bytes: 0,
        };
        for line in BufReader::new(file).split(b'\n') {
            let line = line.map_err(|e| SinkError::Spool {
                dir: self.dir.clone(),
                message: format!("cannot read {}: {e}", segment.path.display()),
            })?;
            segment.bytes += line.len() as u64 + 1;
            // A torn or damaged line: skipped (see the module docs).
            let Some((seq, alert)) = parse_line(&line) else {
                tracing::warn!(spool = %self.dir.display(), "skipping a damaged spool line");
                continue;
            };
            segment.last_seq = segment.last_seq.max(seq);
            self.next_seq = self.next_seq.max(seq + 1);
            if seq > self.acked {
                let bytes = line.len() as u64 + 1;
                self.pending_bytes += bytes;
                self.pending.push_back(Spooled {
                    seq,
                    alert,
                    bytes,
                    since: Instant::now(),
                });
            }
        }
        self.segments.push(segment);
        Ok(())
    }

    /// Whether more alerts may be appended: the alerts waiting take less
    /// than `max_bytes` (one batch may go past it, so a single large batch
    /// cannot wedge an empty spool).
    pub fn has_room(&self) -> bool {
        self.pending_bytes < self.max_bytes
    }

    /// Append `alerts` and sync them to disk. Callers check
    /// [`has_room`](Self::has_room) first; this never refuses for size.
    pub fn append(&mut self, alerts: &[AlertMessage]) -> Result<(), SinkError> {
        let now = Instant::now();
        let mut buf = Vec::new();
        let mut added = Vec::with_capacity(alerts.len());
        for alert in alerts {
            let start = buf.len();
            let seq = self.next_seq + added.len() as u64;
            buf.extend_from_slice(seq.to_string().as_bytes());
            buf.push(b'\t');
            serde_json::to_writer(&mut buf, alert)?;
            buf.push(b'\n');
            added.push(Spooled {
                seq,
                alert: alert.clone(),
                bytes: (buf.len() - start) as u64,
                since: now,
            });
        }
        let Some(last) = added.last().map(|s| s.seq) else {
            return Ok(());
        };
        let needs_new = match self.segments.last() {
            Some(s) => self.writer.is_none() || s.bytes >= SEGMENT_BYTES,
            None => true,
        };
        if needs_new {
            let path = self.dir.join(format!("segment-{:020}.log", self.next_seq));
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| self.io_error("cannot create a segment", e))?;
            self.writer = Some(file);
            self.segments.push(Segment {
                path,
                last_seq: 0,
                bytes: 0,
            });
        }
        let writer = self.writer.as_mut().expect("segment open");
        let written = writer.write_all(&buf).and_then(|()| writer.sync_data());
        if let Err(e) = written {
            // Part of the batch may be on disk: start a fresh segment next
            // time, and let the caller keep the batch (it was not spooled).
            self.writer = None;
            return Err(self.io_error("cannot append", e));
        }
        let segment = self.segments.last_mut().expect("segment open");
        segment.bytes += buf.len() as u64;
        segment.last_seq = last;
        self.next_seq = last + 1;
        for s in added {
            self.pending_bytes += s.bytes;
            self.pending.push_back(s);
        }
        Ok(())
    }

    /// Up to `max` alerts from the head, oldest first.
    pub fn head(&self, max: usize) -> Vec<Spooled> {
        self.pending.iter().take(max).cloned().collect()
    }

    /// The destination acknowledged everything up to `seq`.
    pub fn ack(&mut self, seq: u64) -> Result<(), SinkError> {
        while let Some(front) = self.pending.front() {
            if front.seq > seq {
                break;
            }
            self.pending_bytes -= front.bytes;
            self.pending.pop_front();
        }
        self.acked = self.acked.max(seq);
        let tmp = self.dir.join("acked.tmp");
        fs::write(&tmp, format!("{}\n", self.acked))
            .and_then(|()| fs::rename(&tmp, self.dir.join("acked")))
            .map_err(|e| self.io_error("cannot record acknowledged alerts", e))?;
        self.drop_acked_segments()
    }

    /// Delete segments whose alerts are all acknowledged, except the one
    /// being written.
    fn drop_acked_segments(&mut self) -> Result<(), SinkError> {
        let writing = self.writer.is_some() as usize;
        while self.segments.len() > writing && self.segments[0].last_seq <= self.acked {
            let s = self.segments.remove(0);
            fs::remove_file(&s.path)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                })
                .map_err(|e| self.io_error("cannot delete a delivered segment", e))?;
        }
        Ok(())
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> SinkError {
        SinkError::Spool {
            dir: self.dir.clone(),
            message: format!("{what}: {e}"),
        }
    }

    /// Alerts waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Bytes of the alerts waiting, as written on disk.
    pub fn bytes(&self) -> u64 {
        self.pending_bytes
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn parse_line(line: &[u8]) -> Option<(u64, AlertMessage)> {
    let tab = line.iter().position(|&b| b == b'\t')?;
    let seq = std::str::from_utf8(&line[..tab]).ok()?.parse().ok()?;
    let alert = serde_json::from_slice(&line[tab + 1..]).ok()?;
    Some((seq, alert))
}
