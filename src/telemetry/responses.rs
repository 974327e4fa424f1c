//! The response loop: changes by kind and level, refused commands by
//! reason, time to answer by step, level and grade.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use yujing_response::{Change, Refusal, Response, Units};

#[derive(Clone)]
pub struct ResponseMetrics {
    pub changes: IntCounterVec,
    pub commands: IntCounterVec,
    pub refused: IntCounterVec,
    pub seconds: HistogramVec,
    pub verdicts: IntCounterVec,
    pub missed: IntCounterVec,
    pub open: IntGaugeVec,
    pub overdue: IntGaugeVec,
    pub units_reloads: IntCounterVec,
    pub units_last_reload_success: prometheus::IntGauge,
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
        let commands = IntCounterVec::new(
            Opts::new(
                "yujing_response_commands_total",
                "Responders' commands by source (api, kafka), action (acknowledge, dispatch, on_site, refer, handled, note; unread when it could not be read) and outcome (applied, refused).",
            ),
            &["source", "action", "outcome"],
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
        let units_reloads = IntCounterVec::new(
            Opts::new(
                "yujing_units_reloads_total",
                "Reloads of the responsibility file (with the rules: SIGHUP, POST /-/reload, file changes), by outcome (success, failure: the running units stay).",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let units_last_reload_success = prometheus::IntGauge::new(
            "yujing_units_last_reload_success",
            "1 if the last reload of the responsibility file was accepted (or none was asked), 0 if it was refused.",
        )
        .expect("valid metric");
        units_last_reload_success.set(1);
        for m in [
            Box::new(changes.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(commands.clone()),
            Box::new(units_reloads.clone()),
            Box::new(units_last_reload_success.clone()),
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
            commands,
            refused,
            seconds,
            verdicts,
            missed,
            open,
            overdue,
            units_reloads,
            units_last_reload_success,
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

/// A responder's command was answered: applied, or refused (nothing
/// changed).
pub struct ResponseCommand<'a> {
    /// `api` or `kafka` (the feedback topic).
    pub source: &'static str,
    /// The command's action, or `unread` when it could not be read.
    pub action: &'a str,
    pub unit: &'a str,
    pub refusal: Option<&'a Refusal>,
}

impl ResponseCommand<'_> {
    pub fn emit(&self, m: &super::Metrics) {
        let outcome = match self.refusal {
            None => "applied",
            Some(refusal) => {
                tracing::warn!(
                    source = self.source,
                    unit = self.unit,
                    action = self.action,
                    "response command refused: {refusal}"
                );
                m.responses
                    .refused
                    .with_label_values(&[refusal.reason()])
                    .inc();
                "refused"
            }
        };
        m.responses
            .commands
            .with_label_values(&[self.source, self.action, outcome])
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

/// The responsibility file was read again: accepted (`Ok`: how many
/// units) or refused (the problems; the running units stay).
pub struct UnitsReloaded<'a> {
    pub trigger: &'a str,
    pub outcome: Result<usize, &'a str>,
}

impl UnitsReloaded<'_> {
    pub fn emit(&self, m: &super::Metrics) {
        let r = &m.responses;
        match self.outcome {
            Ok(units) => {
                tracing::info!(
                    trigger = self.trigger,
                    units,
                    "responsibility file reloaded"
                );
                r.units_reloads.with_label_values(&["success"]).inc();
                r.units_last_reload_success.set(1);
            }
            Err(problems) => {
                tracing::error!(
                    trigger = self.trigger,
                    "responsibility file refused; the running units stay:\n{problems}"
                );
                r.units_reloads.with_label_values(&["failure"]).inc();
                r.units_last_reload_success.set(0);
            }
        }
    }
}
