//! `kind: file`: JSONL on disk.

use std::path::PathBuf;

use serde::Deserialize;

use super::FileSink;
use crate::error::SinkError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Relative to the config file.
    pub path: PathBuf,
    /// Rotate before the file would pass this many bytes.
    #[serde(default = "default_file_max_bytes")]
    pub max_bytes: u64,
    /// Rotated files to keep (`alerts.jsonl.1` …).
    #[serde(default = "default_file_keep")]
    pub keep: usize,
}

fn default_file_max_bytes() -> u64 {
    100 * 1024 * 1024
}

fn default_file_keep() -> usize {
    10
}

impl FileSinkConfig {
    pub fn build(&self) -> Result<FileSink, SinkError> {
        FileSink::open(&self.path, self.max_bytes, self.keep).map_err(|e| match e {
            SinkError::Io(source) => SinkError::Io(std::io::Error::new(
                source.kind(),
                format!("file sink {}: {source}", self.path.display()),
            )),
            other => other,
        })
    }
}
