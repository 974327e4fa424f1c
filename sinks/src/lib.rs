//! Sinks: where warnings go.
//!
//! # Layout
//! - [`alert`]: the alert message contract (JSON, `yujing.alert/v1`) built
//!   from a warning transition and the sensor registry — the pure part.
//! - [`cap`]: the same message as CAP 1.2 XML (Alert / Update / Cancel).
//! - [`route`]: which warnings a sink takes (grade, area, rule, label) and
//!   topic names per warning (`alerts.{grade}`).
//! - [`terminal`]: one readable, coloured line per warning.
//! - [`kafka`]: the alert topic producer (key = fingerprint, headers with
//!   grade, rule, district), which waits for the broker's acknowledgement.
//! - [`file`]: alerts appended to a JSONL file, rotated by size.
//! - [`webhook`]: one signed HTTP POST per alert, retried with backoff.
//! - [`error`]: this crate's error type.
//!
//! [`Sink`] is an explicit enum: there are few kinds, each configured in
//! the YAML config, and the pipeline delivers a window's alerts to every
//! sink and waits for all of them before committing offsets.

pub mod alert;
pub mod cap;
pub mod error;
pub mod file;
pub mod kafka;
pub mod route;
pub mod terminal;
pub mod webhook;

pub use alert::{AlertMessage, TimeFormat};
pub use cap::CapSender;
pub use error::SinkError;
pub use file::FileSink;
pub use kafka::{AlertFormat, KafkaAlertSink};
pub use route::Route;
pub use terminal::TerminalSink;
pub use webhook::{WebhookSettings, WebhookSink};

/// A configured destination for alerts.
pub enum Sink {
    Kafka(KafkaAlertSink),
    Terminal(TerminalSink),
    File(FileSink),
    Webhook(WebhookSink),
}

impl Sink {
    /// Low-cardinality name for metrics and logs, e.g. `kafka:city.alerts`.
    pub fn name(&self) -> String {
        match self {
            Sink::Kafka(k) => format!("kafka:{}", k.topic()),
            Sink::Terminal(_) => "terminal".to_owned(),
            Sink::File(f) => format!("file:{}", f.path().display()),
            Sink::Webhook(w) => format!("webhook:{}", w.url()),
        }
    }

    /// Deliver alerts in order; returns once every one is acknowledged.
    pub async fn deliver(&mut self, alerts: &[AlertMessage]) -> Result<(), SinkError> {
        match self {
            Sink::Kafka(k) => k.deliver(alerts).await,
            Sink::Terminal(t) => t.deliver(alerts),
            Sink::File(f) => f.deliver(alerts),
            Sink::Webhook(w) => w.deliver(alerts).await,
        }
    }

    /// Flush anything buffered (on shutdown).
    pub async fn flush(&mut self) -> Result<(), SinkError> {
        match self {
            Sink::Kafka(k) => k.flush(),
            Sink::Terminal(t) => t.flush(),
            Sink::File(f) => f.flush(),
            Sink::Webhook(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
