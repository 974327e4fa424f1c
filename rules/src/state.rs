//! Warning state per fingerprint and the transitions it emits.
//!
//! A warning's fingerprint is `rule id / group level / group key`, e.g.
//! `pm25-1h/grid/cq-yb-g03`. Each closed window grades every group of a
//! rule; the book compares the new grade with the active one and emits at
//! most one transition per fingerprint per window — one message per change,
//! never one per window.
//!
//! A group that had an active warning but no readings in the window is
//! resolved with reason `no_data`: the warning can no longer be backed by
//! measurements, and the silence itself is a data-quality matter.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::aggregate::WindowAggregate;
use crate::grade::{Direction, Grade, grade_of};
use crate::model::Rule;

/// Kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transition {
    Raised,
    Escalated,
    DeEscalated,
    Resolved,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Raised => "raised",
            Transition::Escalated => "escalated",
            Transition::DeEscalated => "de-escalated",
            Transition::Resolved => "resolved",
        }
    }
}

/// Why a warning was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolveReason {
    /// The value no longer crosses any threshold.
    Cleared,
    /// No readings for the group in the window.
    NoData,
}

/// One change of one warning.
#[derive(Debug, Clone, PartialEq)]
pub struct WarningTransition {
    pub fingerprint: String,
    /// Unique per episode (raised → resolved): fingerprint plus the event
    /// time it was raised, so a replay reproduces the same id.
    pub warning_id: String,
    /// 1 for `raised`, then +1 per transition of the same episode.
    pub sequence: u32,
    pub transition: Transition,
    /// Grade after the change; `None` when resolved.
    pub grade: Option<Grade>,
    pub previous_grade: Option<Grade>,
    pub rule: Rule,
    pub group_key: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    /// The window aggregate; `None` when resolved for lack of data.
    pub value: Option<f64>,
    /// Threshold of `grade`, or of `previous_grade` when resolved.
    pub threshold: Option<f64>,
    pub readings: i64,
    pub sensors: i64,
    /// Event time the episode was raised (its first window's end).
    pub started_at_ms: i64,
    pub resolve_reason: Option<ResolveReason>,
    /// Caused by a corrected window (late readings within the allowed
    /// lateness), not by a newly closed one.
    pub correction: bool,
}

impl WarningTransition {
    pub fn direction(&self) -> Direction {
        self.rule.direction
    }
}

#[derive(Debug, Clone)]
struct Active {
    warning_id: String,
    grade: Grade,
    sequence: u32,
    started_at_ms: i64,
}

/// Active warnings, keyed by fingerprint.
#[derive(Debug, Default)]
pub struct WarningBook {
    active: HashMap<String, Active>,
}

impl WarningBook {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fingerprint(rule: &Rule, group_key: &str) -> String {
        format!("{}/{}/{}", rule.id, rule.group_by.as_str(), group_key)
    }

    /// Active warnings: (rule id, grade) for each.
    pub fn active(&self) -> impl Iterator<Item = (&str, Grade)> {
        self.active
            .iter()
            .map(|(fp, a)| (fp.split('/').next().unwrap_or(fp.as_str()), a.grade))
    }

    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// Grade one closed window of `rule`; `aggregates` are its groups.
    /// Transitions come sorted by group key.
    pub fn apply(
        &mut self,
        rule: &Rule,
        window_start_ms: i64,
        window_end_ms: i64,
        aggregates: &[WindowAggregate],
    ) -> Vec<WarningTransition> {
        let prefix = format!("{}/{}/", rule.id, rule.group_by.as_str());
        // Groups of this rule: those measured now plus those active before.
        let mut groups: BTreeMap<&str, Option<&WindowAggregate>> = BTreeMap::new();
        for a in aggregates {
            groups.insert(&a.group_key, Some(a));
        }
        let active_keys: Vec<String> = self
            .active
            .keys()
            .filter_map(|fp| fp.strip_prefix(&prefix).map(str::to_owned))
            .collect();
        for key in &active_keys {
            groups.entry(key.as_str()).or_insert(None);
        }

        let mut out = Vec::new();
        for (group_key, aggregate) in groups {
            let fingerprint = format!("{prefix}{group_key}");
            let graded =
                aggregate.and_then(|a| grade_of(a.value, rule.direction, &rule.thresholds));
            let previous = self.active.get(&fingerprint).cloned();
            let base =
                |transition, grade, previous_grade, threshold, active: &Active| WarningTransition {
                    fingerprint: fingerprint.clone(),
                    warning_id: active.warning_id.clone(),
                    sequence: active.sequence,
                    transition,
                    grade,
                    previous_grade,
                    rule: rule.clone(),
                    group_key: group_key.to_owned(),
                    window_start_ms,
                    window_end_ms,
                    value: aggregate.map(|a| a.value),
                    threshold,
                    readings: aggregate.map_or(0, |a| a.readings),
                    sensors: aggregate.map_or(0, |a| a.sensors),
                    started_at_ms: active.started_at_ms,
                    resolve_reason: None,
                    correction: false,
                };
            match (previous, graded) {
                (None, None) => {}
                (None, Some((grade, threshold))) => {
                    let active = Active {
                        warning_id: format!("{fingerprint}@{window_end_ms}"),
                        grade,
                        sequence: 1,
                        started_at_ms: window_end_ms,
                    };
                    out.push(base(
                        Transition::Raised,
                        Some(grade),
                        None,
                        Some(threshold),
                        &active,
                    ));
                    self.active.insert(fingerprint.clone(), active);
                }
                (Some(mut active), Some((grade, threshold))) if grade != active.grade => {
                    let kind = if grade > active.grade {
                        Transition::Escalated
                    } else {
                        Transition::DeEscalated
                    };
                    let before = active.grade;
                    active.grade = grade;
                    active.sequence += 1;
                    out.push(base(
                        kind,
                        Some(grade),
                        Some(before),
                        Some(threshold),
                        &active,
                    ));
                    self.active.insert(fingerprint.clone(), active);
                }
                (Some(_), Some(_)) => {}
                (Some(mut active), None) => {
                    active.sequence += 1;
                    let mut t = base(
                        Transition::Resolved,
                        None,
                        Some(active.grade),
                        rule.threshold(active.grade),
                        &active,
                    );
                    t.resolve_reason = Some(if aggregate.is_some() {
                        ResolveReason::Cleared
                    } else {
                        ResolveReason::NoData
                    });
                    out.push(t);
                    self.active.remove(&fingerprint);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Aggregate;
    use yujing_ingest::AreaLevel;

    fn rule() -> Rule {
        Rule {
            id: "pm25-1h".into(),
            description: String::new(),
            metric: "pm25".into(),
            unit: "ug/m3".into(),
            window: crate::model::WindowSpec {
                size_ms: 10,
                slide_ms: 10,
            },
            aggregate: Aggregate::Avg,
            group_by: AreaLevel::Grid,
            direction: Direction::Above,
            thresholds: vec![
                (Grade::Blue, 75.0),
                (Grade::Yellow, 115.0),
                (Grade::Orange, 150.0),
                (Grade::Red, 250.0),
            ],
            allowed_lateness_ms: None,
        }
    }

    fn agg(group: &str, end: i64, value: f64) -> WindowAggregate {
        WindowAggregate {
            rule_id: "pm25-1h".into(),
            group_key: group.into(),
            window_start_ms: end - 10,
            window_end_ms: end,
            value,
            readings: 3,
            sensors: 2,
        }
    }

    type Seen = (
        Transition,
        Option<Grade>,
        Option<Grade>,
        u32,
        Option<ResolveReason>,
    );

    fn step(book: &mut WarningBook, end: i64, aggs: &[WindowAggregate]) -> Vec<Seen> {
        book.apply(&rule(), end - 10, end, aggs)
            .into_iter()
            .map(|t| {
                (
                    t.transition,
                    t.grade,
                    t.previous_grade,
                    t.sequence,
                    t.resolve_reason,
                )
            })
            .collect()
    }

    #[test]
    fn full_lifecycle_one_message_per_change() {
        use Grade::*;
        use Transition::*;
        let mut book = WarningBook::new();
        assert_eq!(step(&mut book, 10, &[agg("g1", 10, 50.0)]), vec![]);
        assert_eq!(
            step(&mut book, 20, &[agg("g1", 20, 80.0)]),
            vec![(Raised, Some(Blue), None, 1, None)]
        );
        assert_eq!(
            step(&mut book, 30, &[agg("g1", 30, 90.0)]),
            vec![],
            "same grade: no message"
        );
        assert_eq!(
            step(&mut book, 40, &[agg("g1", 40, 300.0)]),
            vec![(Escalated, Some(Red), Some(Blue), 2, None)]
        );
        assert_eq!(
            step(&mut book, 50, &[agg("g1", 50, 120.0)]),
            vec![(DeEscalated, Some(Yellow), Some(Red), 3, None)]
        );
        assert_eq!(
            step(&mut book, 60, &[agg("g1", 60, 40.0)]),
            vec![(
                Resolved,
                None,
                Some(Yellow),
                4,
                Some(ResolveReason::Cleared)
            )]
        );
        assert_eq!(book.active_count(), 0);
        // A new episode gets a new id and starts at sequence 1.
        let t = book.apply(&rule(), 60, 70, &[agg("g1", 70, 160.0)]);
        assert_eq!(
            (t[0].sequence, t[0].warning_id.as_str()),
            (1, "pm25-1h/grid/g1@70")
        );
        assert_eq!(t[0].fingerprint, "pm25-1h/grid/g1");
        assert_eq!(t[0].threshold, Some(150.0));
    }

    #[test]
    fn groups_are_independent_and_silence_resolves() {
        let mut book = WarningBook::new();
        let t = book.apply(
            &rule(),
            0,
            10,
            &[agg("g2", 10, 200.0), agg("g1", 10, 100.0)],
        );
        let keys: Vec<_> = t.iter().map(|t| t.group_key.as_str()).collect();
        assert_eq!(keys, ["g1", "g2"], "sorted by group");
        let t = book.apply(&rule(), 10, 20, &[agg("g1", 20, 100.0)]);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].group_key, "g2");
        assert_eq!(t[0].resolve_reason, Some(ResolveReason::NoData));
        assert_eq!(t[0].value, None);
        assert_eq!(t[0].threshold, Some(150.0));
        assert_eq!(
            book.active().collect::<Vec<_>>(),
            vec![("pm25-1h", Grade::Blue)]
        );
    }
}
