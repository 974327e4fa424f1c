//! The response loop: changes by kind and level, refused commands by
//! reason, time to answer by step, level and grade.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use yujing_response::{Change, Refusal, Response, Units};

#[derive(Clone)]
pub struct ResponseMetrics {
    pub changes: IntCounterVec,
    pub refused: IntCounterVec,
    pub seconds: HistogramVec,
    pub verdicts: IntCounterVec,
    pub missed: IntCounterVec,
    pub open: IntGaugeVec,
    pub overdue: IntGaugeVec,
}

impl ResponseMetrics {
    pub fn register(registry: &Registry) -> Self {
        let changes = IntCounterVec::new(
            Opts::new(
                "yujing_response_changes_total",
                "Response changes (assigned, acknowledged, dispatched, on_site, referred, reported_in, handled, escalated, unanswered, resolved, note), by the level of the unit holding the warning after the change.",
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
        let verdicts = IntCounterVec::new(
            Opts::new(
                "yujing_response_verdicts_total",
                "Warnings handled, by rule and outcome (confirmed, false_alarm, sensor_fault, duplicate, unanswered): a rule's precision is confirmed / (confirmed + false_alarm) over a trailing period.",
            ),
            &["rule", "outcome"],
        )
        .expect("valid metric");
        let missed = IntCounterVec::new(
            Opts::new(
                "yujing_response_missed_deadlines_total",
                "Deadlines a unit (or a department a warning was referred to) missed, so the warning climbed, by unit and its level.",
            ),
            &["unit", "level"],
        )
        .expect("valid metric");
        let open = IntGaugeVec::new(
            Opts::new(
                "yujing_response_open_warnings",
                "Warnings not yet handled, by the level of the unit holding them and response state.",
            ),
            &["level", "state"],
        )
        .expect("valid metric");
        let overdue = IntGaugeVec::new(
            Opts::new(
                "yujing_response_overdue_warnings",
                "Warnings whose deadline passed at the top of their ladder (nobody answered), by the level of the unit holding them.",
            ),
            &["level"],
        )
        .expect("valid metric");
        for m in [
            Box::new(changes.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(refused.clone()),
            Box::new(seconds.clone()),
            Box::new(verdicts.clone()),
            Box::new(missed.clone()),
            Box::new(open.clone()),
            Box::new(overdue.clone()),
        ] {
            registry.register(m).expect("unique metric");
        }
        ResponseMetrics {
            changes,
            refused,
            seconds,
            verdicts,
            missed,
            open,
            overdue,
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
        if let Some(unit) = &c.missed_by {
            let missed_level = self.units.get(unit).map_or("unknown", |u| u.level.as_str());
            m.responses
                .missed
                .with_label_values(&[unit.as_str(), missed_level])
                .inc();
        }
        if let (Some(outcome), Some(r), "handled" | "unanswered") =
            (c.outcome, self.response, c.change.as_str())
        {
            m.responses
                .verdicts
                .with_label_values(&[r.rule.as_str(), outcome.as_str()])
                .inc();
        }
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

/// Open and overdue warnings now, by level (and state), from the book.
pub struct ResponsesOpen<'a> {
    pub book: &'a yujing_response::ResponseBook,
    pub units: &'a Units,
}

impl ResponsesOpen<'_> {
    pub fn emit(&self, m: &super::Metrics) {
        use std::collections::BTreeMap;
        use yujing_response::State;
        let mut open: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        let mut overdue: BTreeMap<&str, i64> = BTreeMap::new();
        for r in self.book.responses() {
            let level = self
                .units
                .get(&r.assignee)
                .map_or("unknown", |u| u.level.as_str());
            if r.state != State::Handled {
                *open.entry((level, r.state.as_str())).or_default() += 1;
            }
            if r.overdue {
                *overdue.entry(level).or_default() += 1;
            }
        }
        m.responses.open.reset();
        m.responses.overdue.reset();
        for level in [
            "grid",
            "community",
            "street",
            "district",
            "city",
            "department",
        ] {
            m.responses
                .overdue
                .with_label_values(&[level])
                .set(overdue.get(level).copied().unwrap_or(0));
        }
        for ((level, state), n) in open {
            m.responses.open.with_label_values(&[level, state]).set(n);
        }
    }
}

/// Series that exist from the start, at 0, so a first verdict or missed
/// deadline shows in `increase()`: verdicts per rule, missed deadlines
/// per unit.
pub fn start_response_series<'a>(
    m: &super::Metrics,
    rules: impl Iterator<Item = &'a str>,
    units: &Units,
) {
    for rule in rules {
        for outcome in ["confirmed", "false_alarm"] {
            m.responses.verdicts.with_label_values(&[rule, outcome]);
        }
    }
    for u in &units.units {
        m.responses
            .missed
            .with_label_values(&[u.id.as_str(), u.level.as_str()]);
    }
}
