//! Warning state per fingerprint and the transitions it emits.
//!
//! A warning's fingerprint is `rule id / group level / group key`, e.g.
//! `pm25-1h/grid/cq-yb-g03`. Every window end of a rule is an evaluation:
//! the book compares the window's value with the rule's levels and emits at
//! most one transition per fingerprint per evaluation — one message per
//! change, never one per window.
//!
//! The timers, all in event time (window ends):
//! - **pending** (`for`): a grade is entered once its threshold has been
//!   crossed for `for`, counted as `end − first crossing end + slide`; a
//!   missing window (within `tolerate_missing`) does not reset it, a window
//!   with data that does not cross does.
//! - **hysteresis** (`clear`): an active grade is kept while the value still
//!   crosses the grade's clear threshold.
//! - **de-escalation** (`de_escalate_after`): a step down waits this long
//!   after the last change of grade; escalation never waits.
//! - **resolution** (`keep_firing_for`): a warning resolves once no grade
//!   has held for this long — because the value cleared (`cleared`) or
//!   because readings stopped (`no_data`, after `tolerate_missing` windows).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::aggregate::{Trend, WindowAggregate};
use crate::grade::{Direction, Grade};
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
    /// The value no longer crosses any grade's clear threshold.
    Cleared,
    /// No readings for the group for longer than the rule tolerates.
    NoData,
    /// The rule was removed (or its grouping changed) by a rules reload.
    RuleRemoved,
}

impl ResolveReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ResolveReason::Cleared => "cleared",
            ResolveReason::NoData => "no_data",
            ResolveReason::RuleRemoved => "rule_removed",
        }
    }
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
    /// The graded value (for `predict` rules, the value the trend reaches
    /// at the horizon); `None` when there was no data.
    pub value: Option<f64>,
    /// Threshold of `grade`, or of `previous_grade` when resolved.
    pub threshold: Option<f64>,
    pub readings: i64,
    pub sensors: i64,
    /// Event time the episode was raised (its first window's end).
    pub started_at_ms: i64,
    /// Event time of the episode's previous transition; `None` for a raise.
    pub previous_at_ms: Option<i64>,
    pub resolve_reason: Option<ResolveReason>,
    /// Caused by a corrected window (late readings within the allowed
    /// lateness), not by a newly closed one.
    pub correction: bool,
    /// For `predict` rules: the trend line now and its slope.
    pub trend: Option<Trend>,
    /// For `predict` rules: when the trend line crosses `threshold` (the
    /// window's end if it already has).
    pub expected_crossing_ms: Option<i64>,
    /// For AQI rules: the primary pollutant (AQI > 50).
    pub primary_pollutant: Option<String>,
    /// For baseline rules: what `value` (a deviation) was measured from.
    pub deviation: Option<crate::baseline::Deviation>,
}

impl WarningTransition {
    pub fn direction(&self) -> Direction {
        self.rule.direction
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Active {
    warning_id: String,
    grade: Grade,
    sequence: u32,
    started_at_ms: i64,
    /// Last window end the grade changed at.
    changed_at_ms: i64,
    /// Last window end some grade up to the active one still held.
    held_at_ms: i64,
}

/// What the book knows about one group of one rule.
/// One group's warning and timers, as handed between instances (opaque).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupState(Track);

impl GroupState {
    /// Whether the group has an active warning.
    pub fn is_active(&self) -> bool {
        self.0.active.is_some()
    }

    /// The active warning's id, if any.
    pub fn warning_id(&self) -> Option<&str> {
        self.0.active.as_ref().map(|a| a.warning_id.as_str())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Track {
    /// Per grade (indexed by `Grade as usize`): the window end since which
    /// its threshold has been crossed without a break.
    since: [Option<i64>; 4],
    /// Evaluations in a row without data.
    missing: u32,
    active: Option<Active>,
}

impl Track {
    fn is_idle(&self) -> bool {
        self.active.is_none() && self.since.iter().all(Option::is_none)
    }
}

/// The change an evaluation calls for.
enum Step {
    Raise(usize),
    Escalate(usize),
    DeEscalate(usize),
    Resolve(ResolveReason),
}

/// Active and pending warnings: rule id → group key → track. Serializable,
/// so a restart can take up the warnings where it left them.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct WarningBook {
    tracks: HashMap<String, BTreeMap<String, Track>>,
    /// Per rule: the latest window end evaluated.
    #[serde(default)]
    evaluated_until: HashMap<String, i64>,
    /// Per rule, after a restart: windows ending at or before this were
    /// evaluated by the run that saved the book, and are not evaluated
    /// again when their readings are re-read (the saved book may be ahead
    /// of the committed offsets).
    #[serde(skip)]
    replayed_until: HashMap<String, i64>,
}

impl WarningBook {
    pub fn new() -> Self {
        Self::default()
    }

    /// Taken up after a restart: windows already evaluated before it are
    /// not evaluated again (see `replayed_until`).
    pub fn resume(&mut self) {
        self.replayed_until = self.evaluated_until.clone();
    }

    /// Whether `rule`'s window ending at `end_ms` was evaluated before a
    /// restart; records it as evaluated otherwise. Session rules close per
    /// group, out of order across groups, so they are always evaluated.
    fn already_evaluated(&mut self, rule: &Rule, end_ms: i64) -> bool {
        if rule.session.is_some() {
            return false;
        }
        if self
            .replayed_until
            .get(&rule.id)
            .is_some_and(|until| end_ms <= *until)
        {
            return true;
        }
        let until = self
            .evaluated_until
            .entry(rule.id.clone())
            .or_insert(end_ms);
        *until = (*until).max(end_ms);
        false
    }

    pub fn fingerprint(rule: &Rule, group_key: &str) -> String {
        format!("{}/{}/{}", rule.id, rule.group_by.as_str(), group_key)
    }

    /// Active warnings: (rule id, grade) for each.
    pub fn active(&self) -> impl Iterator<Item = (&str, Grade)> {
        self.tracks.iter().flat_map(|(rule, groups)| {
            groups
                .values()
                .filter_map(move |t| t.active.as_ref().map(|a| (rule.as_str(), a.grade)))
        })
    }

    /// Active warnings: (rule id, group key, grade) for each.
    pub fn active_groups(&self) -> impl Iterator<Item = (&str, &str, Grade)> {
        self.tracks.iter().flat_map(|(rule, groups)| {
            groups.iter().filter_map(move |(key, t)| {
                t.active
                    .as_ref()
                    .map(|a| (rule.as_str(), key.as_str(), a.grade))
            })
        })
    }

    pub fn active_count(&self) -> usize {
        self.active().count()
    }

    /// Groups whose threshold is crossed but whose `for` has not run out,
    /// and that have no active warning.
    pub fn pending_count(&self) -> usize {
        self.tracks
            .values()
            .flat_map(|g| g.values())
            .filter(|t| t.active.is_none() && !t.is_idle())
            .count()
    }

    /// Whether the book tracks any group of this rule: only then do window
    /// ends without any reading need evaluating.
    pub fn tracks_rule(&self, rule_id: &str) -> bool {
        self.tracks.get(rule_id).is_some_and(|g| !g.is_empty())
    }

    /// Evaluate one window of `rule` ending at `window_end_ms`;
    /// `aggregates` are its groups with data. Transitions come sorted by
    /// group key.
    pub fn apply(
        &mut self,
        rule: &Rule,
        window_start_ms: i64,
        window_end_ms: i64,
        aggregates: &[WindowAggregate],
    ) -> Vec<WarningTransition> {
        if self.already_evaluated(rule, window_end_ms) {
            return Vec::new();
        }
        // Groups that need a look: every tracked one, and untracked ones
        // whose value crosses at least the lowest threshold. The rest (most
        // groups, most of the time) cost one comparison.
        let lowest = rule.levels.first().map(|l| l.threshold);
        let tracked = self.tracks.get(&rule.id);
        let mut groups: BTreeMap<&str, Option<&WindowAggregate>> = BTreeMap::new();
        if let Some(t) = tracked {
            groups.extend(t.keys().map(|k| (k.as_str(), None)));
        }
        for a in aggregates {
            let crosses = lowest.is_some_and(|t| rule.direction.crosses(a.value, t));
            if crosses || tracked.is_some_and(|t| t.contains_key(&a.group_key)) {
                groups.insert(&a.group_key, Some(a));
            }
        }
        if groups.is_empty() {
            return Vec::new();
        }
        let groups: Vec<(String, Option<&WindowAggregate>)> =
            groups.into_iter().map(|(k, a)| (k.to_owned(), a)).collect();
        groups
            .into_iter()
            .filter_map(|(key, aggregate)| {
                self.apply_group(rule, window_start_ms, window_end_ms, &key, aggregate)
            })
            .collect()
    }

    /// Evaluate one group of `rule` only, for a window (or session) from
    /// `start_ms` to `end_ms`; `aggregate` is `None` when it had no data.
    /// Other groups are left alone: session windows close per group.
    pub fn apply_group(
        &mut self,
        rule: &Rule,
        start_ms: i64,
        end_ms: i64,
        key: &str,
        aggregate: Option<&WindowAggregate>,
    ) -> Option<WarningTransition> {
        let tracks = self.tracks.entry(rule.id.clone()).or_default();
        let track = match tracks.get_mut(key) {
            Some(t) => t,
            None => tracks.entry(key.to_owned()).or_default(),
        };
        // Fewer sensors reported than a quorum needs: the area cannot
        // decide either way. That is missing data, not a clear sky (a
        // station down must not "clear" its grid's warning while the
        // other reads 300).
        let aggregate = aggregate
            .filter(|a| !(rule.quorum.is_set() && a.sensors < i64::from(rule.quorum.min_sensors)));
        let step = evaluate(track, rule, end_ms, aggregate);
        let out = step.map(|step| {
            let before = track.active.as_ref().map(|a| a.grade);
            let mut t = apply_step(track, rule, key, end_ms, step);
            t.window_start_ms = start_ms;
            t.previous_grade = before;
            t.value = aggregate.map(|a| a.value);
            t.readings = aggregate.map_or(0, |a| a.readings);
            t.sensors = aggregate.map_or(0, |a| a.sensors);
            t.trend = aggregate.and_then(|a| a.trend);
            t.primary_pollutant = aggregate.and_then(|a| a.primary_pollutant.clone());
            t.deviation = aggregate.and_then(|a| a.deviation);
            t.expected_crossing_ms = match (t.trend, t.threshold, t.grade) {
                (Some(trend), Some(threshold), Some(_)) => {
                    crossing_ms(trend, threshold, rule.direction, end_ms)
                }
                _ => None,
            };
            t
        });
        if track.is_idle() {
            tracks.remove(key);
        }
        if tracks.is_empty() {
            self.tracks.remove(&rule.id);
        }
        out
    }

    /// Group keys the book tracks (active or pending) for a rule.
    pub fn tracked_groups(&self, rule_id: &str) -> Vec<String> {
        self.tracks
            .get(rule_id)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Resolve every warning of a rule that is gone (removed by a reload, or
    /// regrouped), at event time `at_ms`, and forget its pending groups.
    pub fn retire(&mut self, rule: &Rule, at_ms: i64) -> Vec<WarningTransition> {
        let Some(tracks) = self.tracks.remove(&rule.id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, mut track) in tracks {
            if track.active.is_some() {
                let before = track.active.as_ref().map(|a| a.grade);
                let step = Step::Resolve(ResolveReason::RuleRemoved);
                let mut t = apply_step(&mut track, rule, &key, at_ms, step);
                t.previous_grade = before;
                out.push(t);
            }
        }
        out
    }

    /// Keep the warnings of a rule whose id changed nothing but its text or
    /// thresholds: nothing to do, tracks are keyed by id. Regrouped rules
    /// must be retired first (their group keys mean something else now).
    /// Forget every rule not in `keep`; the ids forgotten.
    pub fn keep_rules(&mut self, keep: &dyn Fn(&str) -> bool) -> Vec<String> {
        let gone: Vec<String> = self.tracks.keys().filter(|r| !keep(r)).cloned().collect();
        for r in &gone {
            self.tracks.remove(r);
            self.evaluated_until.remove(r);
        }
        gone
    }

    /// Take rule `rule_id`'s warnings and timers for the groups `which`
    /// names out of the book (to hand them to another instance).
    pub fn take_groups(
        &mut self,
        rule_id: &str,
        which: &dyn Fn(&str) -> bool,
    ) -> Vec<(String, GroupState)> {
        let Some(groups) = self.tracks.get_mut(rule_id) else {
            return Vec::new();
        };
        let keys: Vec<String> = groups.keys().filter(|k| which(k)).cloned().collect();
        keys.into_iter()
            .filter_map(|k| groups.remove(&k).map(|t| (k, GroupState(t))))
            .collect()
    }

    /// A copy of rule `rule_id`'s warnings and timers for the groups
    /// `which` names (for a checkpoint).
    pub fn copy_groups(
        &self,
        rule_id: &str,
        which: &dyn Fn(&str) -> bool,
    ) -> Vec<(String, GroupState)> {
        self.tracks.get(rule_id).map_or_else(Vec::new, |groups| {
            groups
                .iter()
                .filter(|(k, _)| which(k))
                .map(|(k, t)| (k.clone(), GroupState(t.clone())))
                .collect()
        })
    }

    /// Put groups another instance handed over into rule `rule_id`'s
    /// warnings; returns how many of them are active.
    pub fn put_groups(&mut self, rule_id: &str, groups: Vec<(String, GroupState)>) -> usize {
        let tracks = self.tracks.entry(rule_id.to_owned()).or_default();
        let mut active = 0;
        for (key, GroupState(track)) in groups {
            active += usize::from(track.active.is_some());
            tracks.insert(key, track);
        }
        active
    }

    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.tracks.keys().map(String::as_str)
    }
}

/// The change `rule` calls for in `track` at window end `end`.
fn evaluate(
    track: &mut Track,
    rule: &Rule,
    end: i64,
    aggregate: Option<&WindowAggregate>,
) -> Option<Step> {
    let levels = &rule.levels;
    let Some(a) = aggregate else {
        track.missing += 1;
        if track.missing <= rule.tolerate_missing {
            return None;
        }
        track.since = [None; 4];
        let active = track.active.as_ref()?;
        // A session rule's group goes quiet when its burst is over: that
        // is the condition clearing, not missing data.
        let reason = if rule.session.is_some() {
            ResolveReason::Cleared
        } else {
            ResolveReason::NoData
        };
        return (end - active.held_at_ms >= rule.keep_firing_for_ms)
            .then_some(Step::Resolve(reason));
    };
    track.missing = 0;
    let quorum = |i: usize, clear: bool| {
        !rule.quorum.is_set()
            || a.agreeing.get(i).is_none_or(|&(raise, keep)| {
                rule.quorum.met(if clear { keep } else { raise }, a.sensors)
            })
    };
    for (i, level) in levels.iter().enumerate() {
        let crossing = rule.direction.crosses(a.value, level.threshold) && quorum(i, false);
        let slot = &mut track.since[level.grade as usize];
        *slot = if crossing {
            Some(slot.unwrap_or(end))
        } else {
            None
        };
    }
    let held = |i: usize| {
        track.since[levels[i].grade as usize]
            .is_some_and(|s| end - s + rule.window.slide_ms >= levels[i].pending_ms)
    };
    let entering = (0..levels.len()).rev().find(|&i| held(i));
    let Some(active) = track.active.as_mut() else {
        return entering.map(Step::Raise);
    };
    // The active grade's place among the rule's levels (a reload may have
    // removed the grade itself: take the highest one below it).
    let current = levels.iter().rposition(|l| l.grade <= active.grade);
    let sustained = current.and_then(|c| {
        (0..=c)
            .rev()
            .find(|&i| rule.direction.crosses(a.value, levels[i].clear) && quorum(i, true))
    });
    if sustained.is_some() {
        active.held_at_ms = end;
    }
    let target = entering.max(sustained);
    match target {
        Some(t) if levels[t].grade > active.grade => Some(Step::Escalate(t)),
        Some(t) if levels[t].grade == active.grade => None,
        Some(t) => {
            (end - active.changed_at_ms >= rule.de_escalate_after_ms).then_some(Step::DeEscalate(t))
        }
        None => (end - active.held_at_ms >= rule.keep_firing_for_ms)
            .then_some(Step::Resolve(ResolveReason::Cleared)),
    }
}

/// Apply `step` to `track`; the transition's window, value and readings
/// are left for the caller.
fn apply_step(
    track: &mut Track,
    rule: &Rule,
    key: &str,
    end: i64,
    step: Step,
) -> WarningTransition {
    let fingerprint = WarningBook::fingerprint(rule, key);
    let (transition, grade, reason) = match step {
        Step::Raise(i) => {
            track.active = Some(Active {
                warning_id: format!("{fingerprint}@{end}"),
                grade: rule.levels[i].grade,
                sequence: 0,
                started_at_ms: end,
                changed_at_ms: end,
                held_at_ms: end,
            });
            (Transition::Raised, Some(rule.levels[i].grade), None)
        }
        Step::Escalate(i) => (Transition::Escalated, Some(rule.levels[i].grade), None),
        Step::DeEscalate(i) => (Transition::DeEscalated, Some(rule.levels[i].grade), None),
        Step::Resolve(r) => (Transition::Resolved, None, Some(r)),
    };
    let active = track.active.as_mut().expect("a step applies to a warning");
    let previous = active.grade;
    let previous_at_ms = (active.sequence > 0).then_some(active.changed_at_ms);
    active.sequence += 1;
    if let Some(g) = grade {
        active.grade = g;
        active.changed_at_ms = end;
        active.held_at_ms = end;
    }
    let threshold = rule.threshold(grade.unwrap_or(previous));
    let t = WarningTransition {
        fingerprint,
        warning_id: active.warning_id.clone(),
        sequence: active.sequence,
        transition,
        grade,
        previous_grade: Some(previous),
        rule: rule.clone(),
        group_key: key.to_owned(),
        window_start_ms: end - rule.window.size_ms,
        window_end_ms: end,
        value: None,
        threshold,
        readings: 0,
        sensors: 0,
        started_at_ms: active.started_at_ms,
        previous_at_ms,
        resolve_reason: reason,
        correction: false,
        trend: None,
        expected_crossing_ms: None,
        primary_pollutant: None,
        deviation: None,
    };
    if transition == Transition::Resolved {
        track.active = None;
    }
    t
}

/// When the trend line reaches `threshold`: `end` if it already has, `None`
/// if it heads away from it.
fn crossing_ms(trend: Trend, threshold: f64, direction: Direction, end: i64) -> Option<i64> {
    if direction.crosses(trend.now, threshold) {
        return Some(end);
    }
    let hours = (threshold - trend.now) / trend.per_hour;
    (hours.is_finite() && hours > 0.0).then(|| end + (hours * 3_600_000.0).round() as i64)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
