//! The response loop: changes by kind and level, refused commands by
//! reason, time to answer by step, level and grade.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use yujing_response::{Change, Refusal, Response, Units};

#[derive(Clone)]
pub struct ResponseMetrics {
    pub changes: IntCounterVec,
    pub refused: IntCounterVec,
    pub seconds: HistogramVec,
}

impl ResponseMetrics {
    pub fn register(registry: &Registry) -> Self {
        let changes = IntCounterVec::new(
            Opts::new(
                "yujing_response_changes_total",
                "Response changes (assigned, acknowledged, dispatched, on_site, referred, reported_in, handled, escalated, unanswered, note), by the level of the unit holding the warning after the change.",
            ),
            &["change", "level"],
        )
        .expect("valid metric");
        let refused = IntCounterVec::new(
            Opts::new(
                "yujing_response_refused_total",
                "Responders' commands refused, by reason (unauthenticated, forbidden, unknown_warning, impossible_transition, malformed); nothing changed.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "yujing_response_seconds",
                "From a warning's raise to its acknowledgement, someone on site, and handled, by step, the level of the unit that answered, and grade.",
            )
            .buckets(vec![60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 86400.0]),
            &["step", "level", "grade"],
        )
        .expect("valid metric");
        for m in [
            Box::new(changes.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(refused.clone()),
            Box::new(seconds.clone()),
        ] {
            registry.register(m).expect("unique metric");
        }
        ResponseMetrics {
            changes,
            refused,
            seconds,
        }
    }
}

/// A response changed.
pub struct ResponseChanged<'a> {
    pub change: &'a Change,
    pub response: Option<&'a Response>,
    pub units: &'a Units,
}

impl ResponseChanged<'_> {
    pub fn emit(&self, m: &super::Metrics) {
        let c = self.change;
        let level = c.assignee_level.as_str();
        tracing::info!(
            warning_id = %c.warning_id,
            change = %c.change,
            actor = %c.actor,
            assignee = %c.assignee,
            missed_by = ?c.missed_by,
            "response"
        );
        m.responses
            .changes
            .with_label_values(&[c.change.as_str(), level])
            .inc();
        let step = match c.change.as_str() {
            "acknowledged" => "acknowledge",
            "on_site" => "on_site",
            "handled" => "handled",
            _ => return,
        };
        if let Some(r) = self.response {
            let actor_level = self.units.get(&c.actor).map_or(level, |u| u.level.as_str());
            m.responses
                .seconds
                .with_label_values(&[step, actor_level, r.grade.as_str()])
                .observe((c.at_ms - r.raised_at_ms).max(0) as f64 / 1000.0);
        }
    }
}

/// A responder's command was refused.
pub struct ResponseRefused<'a> {
    pub unit: &'a str,
    pub refusal: &'a Refusal,
}

impl ResponseRefused<'_> {
    pub fn emit(&self, m: &super::Metrics) {
        tracing::warn!(
            unit = self.unit,
            "response command refused: {}",
            self.refusal
        );
        m.responses
            .refused
            .with_label_values(&[self.refusal.reason()])
            .inc();
    }
}
