//! Errors from delivering alerts.

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("kafka topic {topic}: {source}")]
    Kafka {
        topic: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("cannot encode alert: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("webhook {url}: {message}")]
    Webhook { url: String, message: String },
    #[error("alertmanager {url}: {message}")]
    Alertmanager { url: String, message: String },
    /// The receiver (a webhook or Alertmanager) refused the alert (a 4xx
    /// other than 429): retrying the same request cannot help.
    #[error("{url} refused the alert: HTTP {status} {body}")]
    Rejected {
        url: String,
        status: u16,
        body: String,
    },
    #[error("spool {}: {message}", dir.display())]
    Spool {
        dir: std::path::PathBuf,
        message: String,
    },
}

impl SinkError {
    /// Whether retrying the same delivery cannot succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self, SinkError::Rejected { .. } | SinkError::Encode(_))
    }
}
