//! Metrics and internal events, in one place.
//!
//! Every metric yujing exports is registered here. Things that happen are
//! typed events (one struct per occurrence) whose `emit` both logs and
//! counts, with fixed, low-cardinality labels: reasons are enum names,
//! rules and sinks come from configuration, never from message content.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use yujing_ingest::DecodeError;

mod checkpoint;
mod dead_letter;
mod responses;
mod sinks;
mod warning_state;

pub use checkpoint::{
    CheckpointMetrics, CheckpointRestored, CheckpointSaved, HandoverMetrics, HandoverRead,
    HandoverWritten,
};
pub use dead_letter::{
    DeadLetterHeld, DeadLetterMetrics, DeadLetterRecordedLocally, DeadLetterReleased,
    DeadLetterTruncated,
};
pub use responses::{
    ResponseChanged, ResponseCommand, ResponseMetrics, ResponsesOpen, UnitsReloaded,
    start_response_series,
};
pub use sinks::{
    Health, SinkDelivered, SinkFailed, SinkHealth, SinkMetrics, SinkSpooled, StormHeldBack,
};
pub use warning_state::{WarningStateMetrics, WarningStateRestored, WarningStateSaved};

/// Handles to every metric.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub messages_consumed: IntCounterVec,
    pub readings_accepted: IntCounterVec,
    pub readings_unused: IntCounter,
    pub bad_messages: IntCounterVec,
    pub late_readings: IntCounterVec,
    pub duplicate_readings: IntCounterVec,
    pub dead_letter_failures: IntCounter,
    pub kafka_errors: IntCounter,
    pub windows_closed: IntCounterVec,
    pub window_corrections: IntCounterVec,
    pub warnings: IntCounterVec,
    pub active_warnings: IntGaugeVec,
    pub active_warnings_by_district: IntGaugeVec,
    pub watermark: Gauge,
    pub watermark_lag: Gauge,
    pub window_states: IntGauge,
    pub open_panes: IntGauge,
    pub window_state_bytes: IntGauge,
    pub idle_partitions: IntGauge,
    pub split_districts: IntGauge,
    pub consumer_lag: IntGaugeVec,
    pub uncommitted_messages: IntGauge,
    pub commits: IntCounter,
    pub commit_failures: IntCounter,
    pub window_processing: Histogram,
    pub warnings_pending: IntGauge,
    pub rules_loaded: IntGauge,
    pub rules_reloads: IntCounterVec,
    pub rules_last_reload_success: IntGauge,
    pub rules_last_reload_time: Gauge,
    pub partitions_revoked: IntCounter,
    /// Per-sink delivery: sent, failed, retried, spooled, latency.
    pub sinks: SinkMetrics,
    /// What `/health` reports.
    pub health: Health,
    pub warning_state: WarningStateMetrics,
    pub checkpoint: CheckpointMetrics,
    pub handover: HandoverMetrics,
    pub dead_letter: DeadLetterMetrics,
    pub responses: ResponseMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = Gauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let int_gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let active_warnings = IntGaugeVec::new(
            Opts::new(
                "yujing_active_warnings",
                "Warnings currently active, by rule and grade.",
            ),
            &["rule", "grade"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(active_warnings.clone()))
            .expect("unique metric");
        let active_warnings_by_district = IntGaugeVec::new(
            Opts::new(
                "yujing_active_warnings_by_district",
                "Warnings currently active, by district of their group and grade.",
            ),
            &["district", "grade"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(active_warnings_by_district.clone()))
            .expect("unique metric");
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "yujing_consumer_lag_messages",
                "Messages on the broker not yet read: high watermark minus position (librdkafka statistics, every 5 s).",
            ),
            &["topic", "partition"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(consumer_lag.clone()))
            .expect("unique metric");
        let window_processing = Histogram::with_opts(
            HistogramOpts::new(
                "yujing_window_processing_seconds",
                "Time from the watermark closing windows to every sink acknowledging their warnings.",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )
        .expect("valid metric");
        registry
            .register(Box::new(window_processing.clone()))
            .expect("unique metric");

        let m = Metrics {
            messages_consumed: counter_vec(
                "yujing_messages_consumed_total",
                "Kafka messages read from reading topics.",
                &["topic"],
            ),
            readings_accepted: counter_vec(
                "yujing_readings_total",
                "Readings decoded and placed in a window.",
                &["topic"],
            ),
            readings_unused: counter(
                "yujing_readings_unused_total",
                "Valid readings of metrics no rule uses (skipped).",
            ),
            bad_messages: counter_vec(
                "yujing_bad_messages_total",
                "Messages refused and sent to the dead-letter topic, by reason.",
                &["reason"],
            ),
            late_readings: counter_vec(
                "yujing_late_readings_total",
                "Readings whose window had already closed (sent to the dead-letter topic).",
                &["topic", "partition"],
            ),
            duplicate_readings: counter_vec(
                "yujing_duplicate_readings_total",
                "Readings received again (same sensor, metric and timestamp): skipped, not counted twice; the message is copied to the dead-letter topic.",
                &["topic"],
            ),
            dead_letter_failures: counter(
                "yujing_dead_letter_failures_total",
                "Failed attempts to write to the dead-letter topic (transient ones are retried with backoff while the partition waits).",
            ),
            kafka_errors: counter(
                "yujing_kafka_errors_total",
                "Errors reported by the Kafka consumer.",
            ),
            windows_closed: counter_vec(
                "yujing_windows_closed_total",
                "Event-time windows closed by the watermark, by window size.",
                &["window"],
            ),
            window_corrections: counter_vec(
                "yujing_window_corrections_total",
                "Closed windows re-emitted because late readings (within the allowed lateness) changed them.",
                &["window"],
            ),
            warnings: counter_vec(
                "yujing_warnings_total",
                "Warning transitions, by rule, grade after the change (clear when resolved) and transition.",
                &["rule", "grade", "transition"],
            ),
            active_warnings,
            active_warnings_by_district,
            watermark: gauge(
                "yujing_watermark_seconds",
                "Pipeline watermark (event time, Unix seconds).",
            ),
            watermark_lag: gauge(
                "yujing_watermark_lag_seconds",
                "Processing time minus the pipeline watermark.",
            ),
            window_states: int_gauge(
                "yujing_window_states",
                "Partial aggregate states held for open windows (one per pane, sensor and metric).",
            ),
            window_state_bytes: int_gauge(
                "yujing_window_state_bytes",
                "Approximate bytes held by window partial states (entries and hash-table slots).",
            ),
            open_panes: int_gauge(
                "yujing_open_panes",
                "Window panes held, over all window sizes.",
            ),
            idle_partitions: int_gauge(
                "yujing_idle_partitions",
                "Partitions silent longer than the idle timeout (not holding the watermark back).",
            ),
            split_districts: int_gauge(
                "yujing_split_districts",
                "Districts whose sensors' readings arrive on more than one partition. With several instances in the group, each grades area rules over only its share of such a district: key readings by district code.",
            ),
            consumer_lag,
            uncommitted_messages: int_gauge(
                "yujing_uncommitted_messages",
                "Messages consumed whose offsets cannot be committed yet (their windows are open).",
            ),
            commits: counter(
                "yujing_offset_commits_total",
                "Offset commits sent to Kafka.",
            ),
            commit_failures: counter(
                "yujing_offset_commit_failures_total",
                "Offset commits that failed.",
            ),
            window_processing,
            warnings_pending: int_gauge(
                "yujing_warnings_pending",
                "Groups whose threshold is crossed but whose `for` time has not run out yet.",
            ),
            rules_loaded: int_gauge("yujing_rules_loaded", "Rules running now."),
            rules_reloads: counter_vec(
                "yujing_rules_reloads_total",
                "Rules reload attempts, by trigger (signal, file_change, http) and outcome (success, failure).",
                &["trigger", "outcome"],
            ),
            rules_last_reload_success: int_gauge(
                "yujing_rules_last_reload_success",
                "1 if the last rules reload succeeded (or none was tried), 0 if it was refused and the previous rules kept running.",
            ),
            rules_last_reload_time: gauge(
                "yujing_rules_last_reload_timestamp_seconds",
                "Wall-clock time of the last rules reload attempt.",
            ),
            partitions_revoked: counter(
                "yujing_partitions_revoked_total",
                "Partitions a consumer-group rebalance took from this instance (their offsets and watermarks are dropped).",
            ),
            sinks: SinkMetrics::register(&registry),
            health: Health::default(),
            warning_state: WarningStateMetrics::register(&registry),
            checkpoint: CheckpointMetrics::register(&registry),
            handover: HandoverMetrics::register(&registry),
            dead_letter: DeadLetterMetrics::register(&registry),
            responses: ResponseMetrics::register(&registry),
            registry,
        };
        m.rules_last_reload_success.set(1);
        m
    }

    /// The registry in Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A message was refused and dead-lettered.
pub struct BadMessage<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub error: &'a DecodeError,
}

impl BadMessage<'_> {
    pub fn emit(&self, m: &Metrics) {
        // Per message at debug: a burst of bad input must not flood the
        // log. The pipeline logs a periodic warning with the counts.
        tracing::debug!(
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            reason = self.error.reason(),
            "bad message sent to dead-letter topic: {}",
            self.error
        );
        m.bad_messages
            .with_label_values(&[self.error.reason()])
            .inc();
    }
}

/// Readings received twice (same sensor, metric and timestamp), skipped.
pub struct DuplicateReadings<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub count: u64,
}

impl DuplicateReadings<'_> {
    pub fn emit(&self, m: &Metrics) {
        tracing::debug!(
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            count = self.count,
            "duplicate readings skipped; message copied to the dead-letter topic"
        );
        m.duplicate_readings
            .with_label_values(&[self.topic])
            .inc_by(self.count);
    }
}

/// Readings arrived after their window closed.
pub struct LateReadings<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub count: u64,
}

impl LateReadings<'_> {
    pub fn emit(&self, m: &Metrics) {
        tracing::debug!(
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            count = self.count,
            "late readings sent to dead-letter topic"
        );
        m.late_readings
            .with_label_values(&[self.topic, &self.partition.to_string()])
            .inc_by(self.count);
    }
}

/// New rules were swapped in.
pub struct RulesReloaded<'a> {
    pub trigger: &'a str,
    pub summary: &'a str,
    pub rules: usize,
}

impl RulesReloaded<'_> {
    pub fn emit(&self, m: &Metrics) {
        tracing::info!(trigger = self.trigger, "rules reloaded: {}", self.summary);
        m.rules_reloads
            .with_label_values(&[self.trigger, "success"])
            .inc();
        m.rules_last_reload_success.set(1);
        m.rules_last_reload_time.set(wall_seconds());
        m.rules_loaded.set(self.rules as i64);
    }
}

/// A reload was refused: the running rules stay.
pub struct RulesReloadRefused<'a> {
    pub trigger: &'a str,
    pub problems: &'a str,
}

impl RulesReloadRefused<'_> {
    pub fn emit(&self, m: &Metrics) {
        tracing::error!(
            trigger = self.trigger,
            "rules reload refused; the running rules stay:\n{}",
            self.problems
        );
        m.rules_reloads
            .with_label_values(&[self.trigger, "failure"])
            .inc();
        m.rules_last_reload_success.set(0);
        m.rules_last_reload_time.set(wall_seconds());
    }
}

fn wall_seconds() -> f64 {
    yujing_ingest::clock::wall_now_ms() as f64 / 1000.0
}
