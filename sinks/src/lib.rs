//! Sinks: where warnings go.
//!
//! # Layout
//! - [`alert`]: the alert message contract (JSON, `yujing.alert/v1`) built
//!   from a warning transition and the sensor registry — the pure part.
//! - [`texts`]: what an alert says to people in each language (event,
//!   area, signal, headline, summary, instruction) — pure.
//! - [`cap`]: the same message as CAP 1.2 XML (Alert / Update / Cancel).
//! - [`route`]: which warnings a sink takes (grade, area, rule, label) and
//!   topic names per warning (`alerts.{grade}`).
//! - [`terminal`]: one readable, coloured line per warning.
//! - [`kafka`]: the alert topic producer (key = fingerprint, headers with
//!   grade, rule, district), which waits for the broker's acknowledgement.
//! - [`file`](mod@file): alerts appended to a JSONL file, rotated by size.
//! - [`webhook`]: one signed HTTP POST per alert, retried with backoff.
//! - [`alertmanager`]: warnings as Alertmanager alerts, re-sent while
//!   active and resolved with `endsAt`.
//! - [`spool`]: the on-disk queue of alerts a destination has not yet
//!   acknowledged, delivered in order when it returns.
//! - [`storm`]: storm control: beyond a rate of new warnings, one summary
//!   per rule, grade and district instead of a message per group.
//! - [`config`]: a sink's entry in the YAML config (its kind, route, storm
//!   limits and spool) and building it; each kind's own settings are in
//!   its module's `config.rs` (`kafka/config.rs`, `webhook/config.rs`, …).
//! - [`error`]: this crate's error type.
//!
//! [`Sink`] is an explicit enum: there are few kinds, each configured in
//! the YAML config, and the pipeline delivers a window's alerts to every
//! sink and waits for all of them before committing offsets. A sink
//! delivers what it is given: the pipeline applies the route once, before
//! storm control and the spool.

pub mod alert;
pub mod alertmanager;
pub mod cap;
pub mod config;
pub mod error;
pub mod file;
pub mod kafka;
pub mod route;
pub mod spool;
pub mod storm;
pub mod terminal;
pub mod texts;
pub mod webhook;

pub use alert::{AlertMessage, TimeFormat};
pub use alertmanager::{AlertmanagerSettings, AlertmanagerSink};
pub use cap::CapSender;
pub use config::{BuildContext, SinkConfig, SinkKind, SinkSetup, SpoolConfig};
pub use error::SinkError;
pub use file::FileSink;
pub use kafka::{AlertFormat, KafkaAlertSink};
pub use route::Route;
pub use spool::Spool;
pub use storm::{StormGuard, StormLimits};
pub use terminal::TerminalSink;
pub use texts::AlertText;
pub use webhook::{WebhookSettings, WebhookSink};

/// A configured destination for alerts.
pub enum Sink {
    Kafka(KafkaAlertSink),
    Terminal(TerminalSink),
    File(FileSink),
    Webhook(WebhookSink),
    Alertmanager(AlertmanagerSink),
}

impl Sink {
    /// Low-cardinality name for metrics and logs, e.g. `kafka:city.alerts`.
    pub fn name(&self) -> String {
        match self {
            Sink::Kafka(k) => format!("kafka:{}", k.topic()),
            Sink::Terminal(_) => "terminal".to_owned(),
            Sink::File(f) => format!("file:{}", f.path().display()),
            Sink::Webhook(w) => format!("webhook:{}", w.url()),
            Sink::Alertmanager(a) => format!("alertmanager:{}", a.url()),
        }
    }

    /// Deliver alerts in order; returns once every one is acknowledged.
    pub async fn deliver(&mut self, alerts: &[AlertMessage]) -> Result<(), SinkError> {
        match self {
            Sink::Kafka(k) => k.deliver(alerts).await,
            Sink::Terminal(t) => t.deliver(alerts),
            Sink::File(f) => f.deliver(alerts),
            Sink::Webhook(w) => w.deliver(alerts).await,
            Sink::Alertmanager(a) => a.deliver(alerts).await,
        }
    }

    /// Deliver grouped: a webhook sends one body per group of `by`; other
    /// sinks deliver as usual.
    pub async fn deliver_grouped(
        &mut self,
        alerts: &[AlertMessage],
        by: &[String],
    ) -> Result<(), SinkError> {
        match self {
            Sink::Webhook(w) => w.deliver_grouped(alerts, by).await,
            other => other.deliver(alerts).await,
        }
    }

    /// Flush anything buffered (on shutdown).
    pub async fn flush(&mut self) -> Result<(), SinkError> {
        match self {
            Sink::Kafka(k) => k.flush(),
            Sink::Terminal(t) => t.flush(),
            Sink::File(f) => f.flush(),
            Sink::Webhook(_) | Sink::Alertmanager(_) => Ok(()),
        }
    }

    /// Periodic work between deliveries (Alertmanager re-sends active
    /// warnings); called about once a second.
    pub async fn tick(&mut self) -> Result<(), SinkError> {
        match self {
            Sink::Alertmanager(a) => a.tick().await,
            _ => Ok(()),
        }
    }

    /// How many alerts one [`deliver`](Self::deliver) call should carry when
    /// sending from a spool: a webhook posts alerts one by one, so one per
    /// call keeps a failure from re-sending the ones before it.
    pub fn spool_batch(&self) -> usize {
        match self {
            Sink::Webhook(_) => 1,
            Sink::Alertmanager(_) => 64,
            _ => 256,
        }
    }
}

#[cfg(test)]
mod delivery_tests;
#[cfg(test)]
mod tests;
