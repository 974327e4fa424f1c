//! What can go wrong loading the responsibility file or answering a
//! command.

use std::path::PathBuf;

use yujing_rules::Problem;

/// The responsibility file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("cannot read responsibility file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every problem found, one per line, `file:line:column: message`.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Rejected(Vec<Problem>),
}

/// Why a responder's command was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No token, or a token no unit has (HTTP 401).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The unit may not act on this warning (HTTP 403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No warning with this id is open here (HTTP 404).
    #[error("unknown warning {0:?}")]
    UnknownWarning(String),
    /// The command does not fit the warning's response state (HTTP 409).
    #[error("impossible: {0}")]
    Impossible(String),
    /// The command cannot be read (HTTP 422).
    #[error("malformed command: {0}")]
    Malformed(String),
}

impl Refusal {
    /// The HTTP status that says it.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Unauthenticated(_) => 401,
            Refusal::Forbidden(_) => 403,
            Refusal::UnknownWarning(_) => 404,
            Refusal::Impossible(_) => 409,
            Refusal::Malformed(_) => 422,
        }
    }

    /// Fixed label for metrics and dead-letter headers.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Unauthenticated(_) => "unauthenticated",
            Refusal::Forbidden(_) => "forbidden",
            Refusal::UnknownWarning(_) => "unknown_warning",
            Refusal::Impossible(_) => "impossible_transition",
            Refusal::Malformed(_) => "malformed",
        }
    }
}
