//! Delivery metrics and events: per sink, labelled by the sink's name
//! from the config (`webhook:https://duty.example/hook`), and the sink
//! health `/health` reports.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// Per-sink delivery metrics.
#[derive(Clone)]
pub struct SinkMetrics {
    pub sends: IntCounterVec,
    pub alerts: IntCounterVec,
    pub failures: IntCounterVec,
    pub retries: IntCounterVec,
    pub spooled: IntCounterVec,
    pub spool_alerts: IntGaugeVec,
    pub spool_bytes: IntGaugeVec,
    pub up: IntGaugeVec,
    pub delivery_seconds: HistogramVec,
    pub storm_held_back: IntCounterVec,
    pub storm_summaries: IntCounterVec,
}

impl SinkMetrics {
    pub fn register(registry: &Registry) -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGaugeVec::new(Opts::new(name, help), &["sink"]).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let delivery_seconds = HistogramVec::new(
            HistogramOpts::new(
                "yujing_sink_delivery_seconds",
                "Time from an alert being handed to a sink to the destination acknowledging it (spool time included).",
            )
            .buckets(vec![
                0.001, 0.005, 0.025, 0.1, 0.25, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0,
            ]),
            &["sink"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(delivery_seconds.clone()))
            .expect("unique metric");
        SinkMetrics {
            sends: counter(
                "yujing_sink_sends_total",
                "Batches of alerts acknowledged by a sink.",
                &["sink"],
            ),
            alerts: counter(
                "yujing_sink_alerts_total",
                "Alerts acknowledged by a sink.",
                &["sink"],
            ),
            failures: counter(
                "yujing_sink_failures_total",
                "Failed delivery attempts, by sink (refusals included).",
                &["sink"],
            ),
            retries: counter(
                "yujing_sink_retries_total",
                "Deliveries to be tried again after a transient failure.",
                &["sink"],
            ),
            spooled: counter(
                "yujing_sink_spooled_alerts_total",
                "Alerts written to a sink's on-disk spool.",
                &["sink"],
            ),
            spool_alerts: gauge(
                "yujing_sink_spool_alerts",
                "Alerts in a sink's spool waiting for the destination.",
            ),
            spool_bytes: gauge(
                "yujing_sink_spool_bytes",
                "Bytes of the alerts in a sink's spool.",
            ),
            up: gauge(
                "yujing_sink_up",
                "1 if the sink's last delivery attempt succeeded, 0 if it failed.",
            ),
            delivery_seconds,
            storm_held_back: counter(
                "yujing_storm_held_back_total",
                "Warning transitions storm control held back from a sink (summarised instead), by rule.",
                &["sink", "rule"],
            ),
            storm_summaries: counter(
                "yujing_storm_summaries_total",
                "Storm-control summary messages sent in place of held-back warnings.",
                &["sink"],
            ),
        }
    }
}

impl SinkMetrics {
    /// Create a sink's series at zero, so dashboards and alerts see it
    /// before its first delivery or failure (Prometheus practice).
    pub fn init(&self, sink: &str, spooled: bool, storm: bool) {
        for c in [&self.sends, &self.alerts, &self.failures, &self.retries] {
            c.with_label_values(&[sink]);
        }
        self.up.with_label_values(&[sink]).set(1);
        self.delivery_seconds.with_label_values(&[sink]);
        if spooled {
            self.spooled.with_label_values(&[sink]);
        }
        if storm {
            self.storm_summaries.with_label_values(&[sink]);
        }
    }
}

/// One sink's state as `/health` shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SinkHealth {
    pub up: bool,
    pub spooled_alerts: usize,
    pub spool_bytes: u64,
    pub last_error: Option<String>,
}

/// Sink health, shared by the delivery tasks and the HTTP endpoint.
#[derive(Clone, Default)]
pub struct Health {
    sinks: Arc<Mutex<BTreeMap<String, SinkHealth>>>,
}

impl Health {
    pub fn update(&self, sink: &str, f: impl FnOnce(&mut SinkHealth)) {
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        let entry = sinks.entry(sink.to_owned()).or_insert_with(|| SinkHealth {
            up: true,
            ..SinkHealth::default()
        });
        f(entry);
    }

    /// Whether every sink is up with nothing spooled, and the details.
    pub fn report(&self) -> (bool, BTreeMap<String, SinkHealth>) {
        let sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let ok = sinks.values().all(|s| s.up && s.spooled_alerts == 0);
        (ok, sinks)
    }
}

/// A sink failed to take a batch of alerts.
pub struct SinkFailed<'a> {
    pub sink: &'a str,
    pub attempt: u32,
    pub error: &'a str,
    /// It will be tried again (transient failure).
    pub retrying: bool,
}

impl SinkFailed<'_> {
    pub fn emit(&self, m: &super::Metrics) {
        tracing::warn!(
            sink = self.sink,
            attempt = self.attempt,
            retrying = self.retrying,
            "sink delivery failed: {}",
            self.error
        );
        let s = &m.sinks;
        s.failures.with_label_values(&[self.sink]).inc();
        if self.retrying {
            s.retries.with_label_values(&[self.sink]).inc();
        }
        s.up.with_label_values(&[self.sink]).set(0);
        m.health.update(self.sink, |h| {
            h.up = false;
            h.last_error = Some(self.error.to_owned());
        });
    }
}

/// A sink acknowledged a batch of alerts.
pub struct SinkDelivered<'a> {
    pub sink: &'a str,
    /// How long each alert waited since it was handed to the sink.
    pub waited: &'a [Duration],
}

impl SinkDelivered<'_> {
    pub fn emit(&self, m: &super::Metrics) {
        let s = &m.sinks;
        s.sends.with_label_values(&[self.sink]).inc();
        s.alerts
            .with_label_values(&[self.sink])
            .inc_by(self.waited.len() as u64);
        s.up.with_label_values(&[self.sink]).set(1);
        let h = s.delivery_seconds.with_label_values(&[self.sink]);
        for w in self.waited {
            h.observe(w.as_secs_f64());
        }
        m.health.update(self.sink, |h| h.up = true);
    }
}

/// Alerts written to a sink's spool, and what it holds now.
pub struct SinkSpooled<'a> {
    pub sink: &'a str,
    pub added: usize,
    pub alerts: usize,
    pub bytes: u64,
}

impl SinkSpooled<'_> {
    pub fn emit(&self, m: &super::Metrics) {
        let s = &m.sinks;
        if self.added > 0 {
            s.spooled
                .with_label_values(&[self.sink])
                .inc_by(self.added as u64);
        }
        s.spool_alerts
            .with_label_values(&[self.sink])
            .set(self.alerts as i64);
        s.spool_bytes
            .with_label_values(&[self.sink])
            .set(self.bytes as i64);
        m.health.update(self.sink, |h| {
            h.spooled_alerts = self.alerts;
            h.spool_bytes = self.bytes;
        });
    }
}

/// Storm control held warnings back from a sink and summarised them.
pub struct StormHeldBack<'a> {
    pub sink: &'a str,
    pub by_rule: &'a BTreeMap<String, u64>,
    pub summaries: u64,
}

impl StormHeldBack<'_> {
    pub fn emit(&self, m: &super::Metrics) {
        let total: u64 = self.by_rule.values().sum();
        tracing::warn!(
            sink = self.sink,
            held_back = total,
            summaries = self.summaries,
            rules = ?self.by_rule.keys().collect::<Vec<_>>(),
            "storm control: warnings held back and summarised"
        );
        for (rule, n) in self.by_rule {
            m.sinks
                .storm_held_back
                .with_label_values(&[self.sink, rule])
                .inc_by(*n);
        }
        m.sinks
            .storm_summaries
            .with_label_values(&[self.sink])
            .inc_by(self.summaries);
    }
}
