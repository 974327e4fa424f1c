//! Errors raised while reading messages, registries and Kafka.

use std::path::PathBuf;

/// Why one Kafka message could not become readings. Each variant has a fixed,
/// low-cardinality [`reason`](DecodeError::reason) used in metrics and in the
/// dead-letter headers; the `Display` text gives the detail.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum DecodeError {
    #[error("message is not valid UTF-8 at byte {0}")]
    InvalidUtf8(usize),
    #[error("message is not a valid reading: {0}")]
    Malformed(String),
    #[error("message is an empty array")]
    EmptyBatch,
    #[error("reading from {sensor_id} has neither `metric`+`value` nor `values`")]
    NoValue { sensor_id: String },
    #[error("reading from {sensor_id} has both `metric`/`value` and `values`; send one form")]
    AmbiguousForm { sensor_id: String },
    #[error("reading from {sensor_id} has an invalid `ts` {ts:?}: {why}")]
    BadTimestamp {
        sensor_id: String,
        ts: String,
        why: String,
    },
    #[error("reading from {sensor_id} has a non-finite value for {metric}")]
    NonFinite { sensor_id: String, metric: String },
    #[error(
        "reading from {sensor_id}: {metric} {value} is outside its physical range [{low}, {high}]"
    )]
    OutOfRange {
        sensor_id: String,
        metric: String,
        value: f64,
        low: f64,
        high: f64,
    },
    #[error("reading from {sensor_id}: {metric} {value} is the logger's \"no measurement\" code")]
    ErrorCode {
        sensor_id: String,
        metric: String,
        value: f64,
    },
    #[error(
        "reading from {sensor_id}: {metric} went from {previous} to {value}, {per_minute:.3} a minute, faster than its {limit} a minute"
    )]
    Spike {
        sensor_id: String,
        metric: String,
        value: f64,
        previous: f64,
        per_minute: f64,
        limit: f64,
    },
    #[error("unknown sensor {0:?}: not in the sensor registry")]
    UnknownSensor(String),
    #[error("reading from {sensor_id} at {ts_ms} is more than {skew_ms} ms ahead of now")]
    FutureTimestamp {
        sensor_id: String,
        ts_ms: i64,
        skew_ms: i64,
    },
    #[error("reading from {sensor_id} at {ts_ms} is more than {max_age_ms} ms older than now")]
    TooOld {
        sensor_id: String,
        ts_ms: i64,
        max_age_ms: i64,
    },
    #[error("reading from {sensor_id}: {metric} at {ts_ms} was already received (duplicate)")]
    Duplicate {
        sensor_id: String,
        metric: String,
        ts_ms: i64,
    },
    #[error("message of {bytes} bytes is larger than the {limit}-byte limit")]
    Oversized { bytes: usize, limit: usize },
    #[error(
        "reading from {sensor_id} at {ts_ms} is for window ending {window_end_ms}, already closed"
    )]
    Late {
        sensor_id: String,
        ts_ms: i64,
        window_end_ms: i64,
    },
}

impl DecodeError {
    /// Fixed label for metrics and dead-letter headers.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::InvalidUtf8(_) => "invalid_utf8",
            DecodeError::Malformed(_) => "malformed",
            DecodeError::EmptyBatch => "empty_batch",
            DecodeError::NoValue { .. } => "no_value",
            DecodeError::AmbiguousForm { .. } => "ambiguous_form",
            DecodeError::BadTimestamp { .. } => "bad_timestamp",
            DecodeError::NonFinite { .. } => "non_finite",
            DecodeError::OutOfRange { .. } => "out_of_range",
            DecodeError::ErrorCode { .. } => "error_code",
            DecodeError::Spike { .. } => "spike",
            DecodeError::UnknownSensor(_) => "unknown_sensor",
            DecodeError::FutureTimestamp { .. } => "future_timestamp",
            DecodeError::TooOld { .. } => "too_old",
            DecodeError::Late { .. } => "late",
            DecodeError::Duplicate { .. } => "duplicate",
            DecodeError::Oversized { .. } => "oversized",
        }
    }
}

/// Errors that stop the ingest side from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot read sensor registry {path}: {source}")]
    RegistryIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sensor registry {path}: {message}")]
    RegistryFormat { path: PathBuf, message: String },
    #[error("cannot read measurements file {path}: {source}")]
    MeasurementsIo {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `path:line:column: message`.
    #[error("{path}:{message}")]
    MeasurementsFormat { path: PathBuf, message: String },
    #[cfg(feature = "kafka")]
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}
