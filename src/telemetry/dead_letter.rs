//! The dead-letter path: a copy held by a transient failure, cut to what
//! the destination takes, or recorded locally when even that is refused.

use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};

/// `/health`'s component for the dead-letter path.
pub const HEALTH_COMPONENT: &str = "dead-letter";

#[derive(Clone)]
pub struct DeadLetterMetrics {
    /// Per readings partition: when its dead-letter copy started being
    /// held by a transient failure (0: not held).
    pub held_since: GaugeVec,
    /// Copies the destination took only cut short, and messages recorded
    /// in the local file because it took nothing, by destination topic.
    pub truncated: IntCounterVec,
    pub recorded_locally: IntCounterVec,
}

impl DeadLetterMetrics {
    pub fn register(registry: &Registry) -> Self {
        let held_since = GaugeVec::new(
            Opts::new(
                "yujing_dead_letter_held_since_timestamp_seconds",
                "Per readings partition: since when a transient failure (broker down, timeout) holds its dead-letter copy, retried with backoff; the partition waits meanwhile (0: not held).",
            ),
            &["topic", "partition"],
        )
        .expect("valid metric");
        let truncated = IntCounterVec::new(
            Opts::new(
                "yujing_dead_letter_truncated_total",
                "Refused messages the dead-letter topic took only cut short (headers give the original size and SHA-256), by destination topic.",
            ),
            &["to"],
        )
        .expect("valid metric");
        let recorded_locally = IntCounterVec::new(
            Opts::new(
                "yujing_dead_letter_recorded_locally_total",
                "Refused messages the dead-letter topic would not take even cut short: their coordinates and reason are in state_dir/dead-letter-refused.jsonl, and the stream moved on.",
            ),
            &["to"],
        )
        .expect("valid metric");
        for m in [
            Box::new(held_since.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(truncated.clone()),
            Box::new(recorded_locally.clone()),
        ] {
            registry.register(m).expect("unique metric");
        }
        DeadLetterMetrics {
            held_since,
            truncated,
            recorded_locally,
        }
    }
}

/// A transient failure holds a partition's dead-letter copy.
pub struct DeadLetterHeld<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub since: &'a str,
    pub since_seconds: f64,
    pub attempt: u32,
    pub error: &'a str,
}

impl DeadLetterHeld<'_> {
    pub fn emit(&self, m: &super::Metrics) {
        tracing::warn!(
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            attempt = self.attempt,
            "cannot write to the dead-letter topic, retrying with backoff; the partition waits: {}",
            self.error
        );
        let partition = self.partition.to_string();
        m.dead_letter
            .held_since
            .with_label_values(&[self.topic, &partition])
            .set(self.since_seconds);
        let message = format!(
            "{}/{} held since {} (offset {}, attempt {}): {}",
            self.topic, self.partition, self.since, self.offset, self.attempt, self.error
        );
        m.health.update(HEALTH_COMPONENT, |h| {
            h.up = false;
            h.last_error = Some(message);
        });
    }
}

/// The held copy went through.
pub struct DeadLetterReleased<'a> {
    pub topic: &'a str,
    pub partition: i32,
}

impl DeadLetterReleased<'_> {
    pub fn emit(&self, m: &super::Metrics) {
        tracing::info!(
            topic = self.topic,
            partition = self.partition,
            "the dead-letter topic takes messages again"
        );
        let partition = self.partition.to_string();
        m.dead_letter
            .held_since
            .with_label_values(&[self.topic, &partition])
            .set(0.0);
        m.health.update(HEALTH_COMPONENT, |h| {
            h.up = true;
            if h.last_error
                .as_deref()
                .is_some_and(|e| e.contains(" held since "))
            {
                h.last_error = None;
            }
        });
    }
}

/// The destination refused the whole message for good and took its head.
pub struct DeadLetterTruncated<'a> {
    pub to: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub original_bytes: usize,
    pub kept_bytes: usize,
}

impl DeadLetterTruncated<'_> {
    pub fn emit(&self, m: &super::Metrics) {
        tracing::warn!(
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            "{} refused the {} bytes of a refused message; sent its first {} bytes with its size and SHA-256",
            self.to,
            self.original_bytes,
            self.kept_bytes
        );
        m.dead_letter.truncated.with_label_values(&[self.to]).inc();
    }
}

/// The destination refused even the message's head: recorded locally.
pub struct DeadLetterRecordedLocally<'a> {
    pub to: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub error: &'a str,
    /// The local file, or why it could not be written.
    pub record: Result<&'a std::path::Path, String>,
}

impl DeadLetterRecordedLocally<'_> {
    pub fn emit(&self, m: &super::Metrics) {
        let place = match &self.record {
            Ok(path) => format!("recorded in {}", path.display()),
            Err(e) => format!("NOT recorded locally ({e}); only this log line has it"),
        };
        tracing::error!(
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            "{} refused a refused message for good ({}); its coordinates and reason are {place}; moving on",
            self.to,
            self.error
        );
        let counter = m.dead_letter.recorded_locally.with_label_values(&[self.to]);
        counter.inc();
        let message = format!(
            "{} message(s) {} would not take are {place} (last: {}/{} offset {}: {})",
            counter.get(),
            self.to,
            self.topic,
            self.partition,
            self.offset,
            self.error
        );
        m.health
            .update(HEALTH_COMPONENT, |h| h.last_error = Some(message));
    }
}
