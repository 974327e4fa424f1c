//! Active warnings on disk, so a restart neither raises them again nor
//! forgets them.
//!
//! `<state_dir>/warnings.json` holds the warning book (active warnings
//! with their ids, sequences and grades, and the `for` timers of pending
//! ones). It is written before each offset commit, so the readings a
//! restart does not re-read are always reflected in it; readings it does
//! re-read give the same transitions again, with the same ids.
//!
//! The file is a header line `{"format":"yujing.warnings/v1","sha256":…}`
//! then the book as JSON; it is written to a temporary file, synced and
//! renamed, so a crash leaves the old or the new file, never half of one.
//! A file that is damaged or of another format is reported and set aside
//! (`warnings.json.bad`), and the pipeline starts with no active warnings.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use yujing_rules::WarningBook;

pub const FORMAT: &str = "yujing.warnings/v1";
const FILE: &str = "warnings.json";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Damaged { path: PathBuf, problem: String },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    format: String,
    sha256: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Write `book` to `dir`, atomically.
pub fn save(dir: &Path, book: &WarningBook) -> Result<(), StateError> {
    write_file(dir, FILE, FORMAT, book).map(|_| ())
}

/// The book saved in `dir`; `None` when there is none yet.
pub fn load(dir: &Path) -> Result<Option<WarningBook>, StateError> {
    read_file(dir, FILE, FORMAT)
}

/// Move a file `load` refused out of the way, keeping it for inspection.
pub fn set_aside(dir: &Path) {
    set_aside_file(dir, FILE);
}

/// Exactly-once mode: the book that goes with a transaction not yet
/// committed, and the offsets that transaction commits.
const PENDING: &str = "warnings.pending.json";
const PENDING_FORMAT: &str = "yujing.warnings-pending/v1";

#[derive(serde::Serialize)]
struct PendingOut<'a> {
    offsets: &'a [(String, i32, i64)],
    book: &'a WarningBook,
}

#[derive(serde::Deserialize)]
struct PendingIn {
    offsets: Vec<(String, i32, i64)>,
    book: WarningBook,
}

/// Exactly-once mode, before a transaction commits: write `book` beside
/// the saved one, with the offsets the transaction commits. After the
/// commit, [`save`] makes it the saved book and [`clear_pending`] removes
/// this file. A crash in between leaves it for [`settle_pending`].
pub fn save_pending(
    dir: &Path,
    book: &WarningBook,
    offsets: &[(String, i32, i64)],
) -> Result<(), StateError> {
    write_file(dir, PENDING, PENDING_FORMAT, &PendingOut { offsets, book }).map(|_| ())
}

pub fn clear_pending(dir: &Path) {
    let _ = fs::remove_file(dir.join(PENDING));
}

/// What [`settle_pending`] found.
#[derive(Debug, PartialEq)]
pub enum Pending {
    None,
    /// Its transaction had committed: it is now the saved book.
    Adopted,
    /// Its transaction had not committed (its alerts were aborted): set
    /// aside as `warnings.pending.json.aborted`; the saved book stands.
    Discarded,
}

/// At start in exactly-once mode: a pending book left by a crash is
/// adopted if the group's committed offsets (`committed`) show its
/// transaction committed, and discarded otherwise, so the saved book
/// always matches what subscribers reading committed alerts saw.
pub fn settle_pending(
    dir: &Path,
    committed: &dyn Fn(&str, i32) -> Option<i64>,
) -> Result<Pending, StateError> {
    let Some(pending) = read_file::<PendingIn>(dir, PENDING, PENDING_FORMAT)? else {
        return Ok(Pending::None);
    };
    let done = pending.offsets.iter().all(|(topic, partition, offset)| {
        committed(topic, *partition).is_some_and(|c| c >= *offset)
    });
    if done {
        save(dir, &pending.book)?;
        clear_pending(dir);
        Ok(Pending::Adopted)
    } else {
        let _ = fs::rename(dir.join(PENDING), dir.join(format!("{PENDING}.aborted")));
        Ok(Pending::Discarded)
    }
}

/// Write `value` to `dir/file` as a header line (`format`, SHA-256 of the
/// body) and the JSON body: to a temporary file, synced, then renamed, so
/// a crash leaves the old file or the new one. Returns the bytes written.
pub(super) fn write_file<T: serde::Serialize>(
    dir: &Path,
    file: &str,
    format: &str,
    value: &T,
) -> Result<u64, StateError> {
    let path = dir.join(file);
    let io = |source| StateError::Io {
        path: path.clone(),
        source,
    };
    fs::create_dir_all(dir).map_err(io)?;
    let body = serde_json::to_vec(value).expect("state serializes");
    let header = Header {
        format: format.to_owned(),
        sha256: hex(&Sha256::digest(&body)),
    };
    let tmp = dir.join(format!("{file}.tmp"));
    let mut out = fs::File::create(&tmp).map_err(io)?;
    let mut head = serde_json::to_vec(&header).expect("header serializes");
    head.push(b'\n');
    let written = out
        .write_all(&head)
        .and_then(|()| out.write_all(&body))
        .and_then(|()| out.sync_all());
    if let Err(e) = written {
        // A full disk: leave no half-written temporary file behind.
        let _ = fs::remove_file(&tmp);
        return Err(io(e));
    }
    fs::rename(&tmp, &path).map_err(io)?;
    Ok((head.len() + body.len()) as u64)
}

/// What `write_file` wrote to `dir/file`; `None` when there is no file.
/// A damaged file, or one of another format, is an error.
pub(super) fn read_file<T: serde::de::DeserializeOwned>(
    dir: &Path,
    file: &str,
    format: &str,
) -> Result<Option<T>, StateError> {
    let path = dir.join(file);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StateError::Io { path, source }),
    };
    let damaged = |problem: String| StateError::Damaged {
        path: path.clone(),
        problem,
    };
    let newline = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| damaged("no header line".into()))?;
    let header: Header =
        serde_json::from_slice(&bytes[..newline]).map_err(|e| damaged(format!("header: {e}")))?;
    if header.format != format {
        return Err(damaged(format!(
            "format {:?}, this yujing reads {format:?}",
            header.format
        )));
    }
    let body = &bytes[newline + 1..];
    if hex(&Sha256::digest(body)) != header.sha256 {
        return Err(damaged("checksum mismatch: the file is damaged".into()));
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| damaged(format!("body: {e}")))
}

/// Move `dir/file` to `dir/file.bad`, keeping it for inspection.
pub(super) fn set_aside_file(dir: &Path, file: &str) {
    let _ = fs::rename(dir.join(file), dir.join(format!("{file}.bad")));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_book_is_adopted_only_if_its_transaction_committed() {
        let dir = tempfile::tempdir().unwrap();
        let old = WarningBook::new();
        save(dir.path(), &old).unwrap();
        let offsets = vec![("r".to_owned(), 0, 40), ("r".to_owned(), 1, 7)];
        let book = WarningBook::new();

        save_pending(dir.path(), &book, &offsets).unwrap();
        // Partition 1's commit did not happen: the transaction aborted.
        let partly = |_: &str, p: i32| Some(if p == 0 { 40 } else { 3 });
        assert_eq!(
            settle_pending(dir.path(), &partly).unwrap(),
            Pending::Discarded
        );
        assert!(dir.path().join("warnings.pending.json.aborted").exists());
        assert_eq!(settle_pending(dir.path(), &partly).unwrap(), Pending::None);

        save_pending(dir.path(), &book, &offsets).unwrap();
        let all = |_: &str, p: i32| Some(if p == 0 { 40 } else { 7 });
        assert_eq!(settle_pending(dir.path(), &all).unwrap(), Pending::Adopted);
        assert!(!dir.path().join(PENDING).exists());
        assert!(load(dir.path()).unwrap().is_some());

        save_pending(dir.path(), &book, &offsets).unwrap();
        let nothing = |_: &str, _: i32| None;
        assert_eq!(
            settle_pending(dir.path(), &nothing).unwrap(),
            Pending::Discarded
        );
    }

    #[test]
    fn round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let book = WarningBook::new();
        save(dir.path(), &book).unwrap();
        assert!(load(dir.path()).unwrap().is_some());

        let path = dir.path().join(FILE);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");

        fs::write(
            &path,
            "{\"format\":\"yujing.warnings/v9\",\"sha256\":\"\"}\n{}",
        )
        .unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("yujing.warnings/v9"), "{e}");
        set_aside(dir.path());
        assert!(load(dir.path()).unwrap().is_none());
        assert!(dir.path().join("warnings.json.bad").exists());
    }
}
