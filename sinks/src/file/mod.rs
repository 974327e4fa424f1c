//! Alerts appended to a JSONL file, one message per line, rotated by size.
//!
//! `alerts.jsonl` grows until a write would pass `max_bytes`; it is then
//! renamed `alerts.jsonl.1` (older ones shift to `.2`, … up to `keep`, the
//! oldest dropped) and a new file starts. Each batch is flushed and synced
//! before the pipeline commits the readings behind it.

pub mod config;
pub use config::FileSinkConfig;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::alert::AlertMessage;
use crate::error::SinkError;

pub struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: File,
    size: u64,
}

impl FileSink {
    /// Append to `path` (created if missing), rotating past `max_bytes`
    /// and keeping `keep` rotated files.
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> Result<Self, SinkError> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(FileSink {
            path: path.to_owned(),
            max_bytes: max_bytes.max(1),
            keep,
            file,
            size,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self) -> Result<(), SinkError> {
        self.file.sync_all()?;
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(self.rotated(self.keep));
            for n in (1..self.keep).rev() {
                let from = self.rotated(n);
                if from.exists() {
                    std::fs::rename(&from, self.rotated(n + 1))?;
                }
            }
            std::fs::rename(&self.path, self.rotated(1))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }

    pub fn deliver(&mut self, alerts: &[AlertMessage]) -> Result<(), SinkError> {
        for a in alerts {
            let mut line = serde_json::to_vec(a)?;
            line.push(b'\n');
            if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
                self.rotate()?;
            }
            self.file.write_all(&line)?;
            self.size += line.len() as u64;
        }
        self.file.flush()?;
        self.file.sync_data()?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.file.flush()?;
        Ok(self.file.sync_all()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_lines_and_rotates_by_size() {
        let dir = std::env::temp_dir().join(format!("yujing-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("alerts.jsonl");
        let alerts = crate::tests::sample_alerts();
        let line = serde_json::to_vec(&alerts[0]).unwrap().len() as u64 + 1;
        // Room for two lines per file, two rotated files kept.
        let mut sink = FileSink::open(&path, 2 * line + 10, 2).unwrap();
        for _ in 0..7 {
            sink.deliver(&alerts[..1]).unwrap();
        }
        let lines = |p: &Path| std::fs::read_to_string(p).map_or(0, |t| t.lines().count());
        assert_eq!(
            lines(&path),
            1,
            "7 lines: 2 dropped, 2 + 2 rotated, 1 current"
        );
        assert_eq!(lines(&sink.rotated(1)), 2);
        assert_eq!(lines(&sink.rotated(2)), 2);
        assert!(!sink.rotated(3).exists(), "only `keep` rotated files");
        // Every line is a whole alert message.
        let text = std::fs::read_to_string(sink.rotated(1)).unwrap();
        for l in text.lines() {
            let back: AlertMessage = serde_json::from_str(l).unwrap();
            assert_eq!(back, alerts[0]);
        }
        // Reopening appends.
        drop(sink);
        let mut sink = FileSink::open(&path, 2 * line + 10, 2).unwrap();
        sink.deliver(&alerts[..1]).unwrap();
        assert_eq!(lines(&path), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
