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
}
