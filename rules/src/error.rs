//! Errors from loading rules and computing aggregates.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read rules file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid YAML or does not match the rule schema.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// The file parses but a rule is wrong (e.g. thresholds out of order).
    #[error("{path}:{line}:{column}: rule {rule:?}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        rule: String,
        message: String,
    },
    #[error("datafusion: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}
