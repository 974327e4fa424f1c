//! The response book: each warning's response lifecycle, in wall-clock
//! time, beside its condition lifecycle (decided by the readings).
//!
//! `assigned` → `acknowledged` → `dispatched` → `on_site` → `handled` (with
//! an outcome). A unit may `refer` a warning to a department, which must
//! report in (acknowledge) within the acknowledge deadline. A missed
//! deadline moves the assignment one rung up the ladder and sets a new
//! deadline there, until someone answers or the city is reached. A
//! condition that resolves before anyone acknowledged is recorded as
//! unanswered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use yujing_ingest::{AreaLevel, SensorRegistry};
use yujing_rules::Grade;

pub use crate::lifecycle::{Action, Change, Command, Outcome, State};

use crate::deadlines::Step;
use crate::error::Refusal;
use crate::ladder::{Rung, covers, ladder};
use crate::units::{UnitLevel, Units};

/// A warning's response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub warning_id: String,
    pub rule: String,
    pub category: String,
    /// The warning's group: its level and key (a sensor id, grid, street
    /// or district code), for verdict labels.
    #[serde(default = "sensor_level")]
    pub level: AreaLevel,
    #[serde(default)]
    pub key: String,
    /// Event time: when the condition started, and ended (resolved).
    #[serde(default)]
    pub started_ms: i64,
    #[serde(default)]
    pub ended_ms: Option<i64>,
    pub grade: Grade,
    pub ladder: Vec<Rung>,
    /// Index in `ladder` of the assignee's rung.
    pub rung: usize,
    pub assignee: String,
    pub state: State,
    pub step: Step,
    /// `i64::MAX` once handled or overdue at the top.
    pub deadline_ms: i64,
    /// When the current step started.
    pub since_ms: i64,
    pub raised_at_ms: i64,
    pub referred_to: Option<String>,
    pub reported_in: bool,
    pub dispatched_to: Option<String>,
    pub outcome: Option<Outcome>,
    pub condition_resolved: bool,
    pub escalations: u32,
    /// Its deadline passed at the top of the ladder: nobody answered.
    #[serde(default)]
    pub overdue: bool,
    pub sequence: u64,
    pub history: Vec<Change>,
}

/// What a warning transition tells the book.
pub struct WarningEvent<'a> {
    pub warning_id: &'a str,
    pub rule: &'a str,
    pub category: &'a str,
    /// The grade after the change (`None`: resolved).
    pub grade: Option<Grade>,
    pub level: AreaLevel,
    pub key: &'a str,
    /// Event time the condition started, and of this change.
    pub started_ms: i64,
    pub event_ms: i64,
}

fn sensor_level() -> AreaLevel {
    AreaLevel::Sensor
}

/// Every open (and recently handled) response, by warning id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseBook {
    responses: BTreeMap<String, Response>,
}

impl ResponseBook {
    pub fn get(&self, warning_id: &str) -> Option<&Response> {
        self.responses.get(warning_id)
    }

    pub fn responses(&self) -> impl Iterator<Item = &Response> {
        self.responses.values()
    }

    /// A warning was raised, changed grade or resolved.
    pub fn on_warning(
        &mut self,
        e: &WarningEvent<'_>,
        registry: &SensorRegistry,
        units: &Units,
        now_ms: i64,
    ) -> Vec<Change> {
        match (self.responses.get_mut(e.warning_id), e.grade) {
            (None, Some(grade)) => {
                let ladder = ladder(registry, units, e.level, e.key);
                let Some((rung, assignee)) = assignee_from(&ladder, 0, e.category, units) else {
                    return Vec::new();
                };
                let mut r = Response {
                    warning_id: e.warning_id.to_owned(),
                    rule: e.rule.to_owned(),
                    category: e.category.to_owned(),
                    level: e.level,
                    key: e.key.to_owned(),
                    started_ms: e.started_ms,
                    ended_ms: None,
                    grade,
                    ladder,
                    rung,
                    assignee,
                    state: State::Assigned,
                    step: Step::Acknowledge,
                    deadline_ms: now_ms + units.deadlines.get(grade, Step::Acknowledge),
                    since_ms: now_ms,
                    raised_at_ms: now_ms,
                    referred_to: None,
                    reported_in: false,
                    dispatched_to: None,
                    outcome: None,
                    condition_resolved: false,
                    escalations: 0,
                    overdue: false,
                    sequence: 0,
                    history: Vec::new(),
                };
                let c = r.record("assigned", "system", now_ms, None, units);
                self.responses.insert(e.warning_id.to_owned(), r);
                vec![c]
            }
            (Some(r), Some(grade)) => {
                // A graver grade shortens what is left of the step.
                if grade > r.grade && r.state != State::Handled && !r.overdue {
                    let due = r.since_ms + units.deadlines.get(grade, r.step);
                    r.deadline_ms = r.deadline_ms.min(due);
                }
                r.grade = grade;
                Vec::new()
            }
            (Some(r), None) => {
                r.condition_resolved = true;
                r.ended_ms = Some(e.event_ms);
                if r.state == State::Assigned && r.referred_to.is_none() {
                    r.state = State::Handled;
                    r.outcome = Some(Outcome::Unanswered);
                    r.deadline_ms = i64::MAX;
                    let c = r.record("unanswered", "system", now_ms, None, units);
                    return vec![c];
                }
                // Said, so responders know, and verdicts carry the end.
                vec![r.record("resolved", "system", now_ms, None, units)]
            }
            (None, None) => Vec::new(),
        }
    }

    /// `unit` asks `command` at `now_ms`. Refused: nothing changed.
    pub fn command(
        &mut self,
        unit: &str,
        command: &Command,
        units: &Units,
        now_ms: i64,
    ) -> Result<Change, Refusal> {
        let Some(r) = self.responses.get_mut(&command.warning_id) else {
            return Err(Refusal::UnknownWarning(command.warning_id.clone()));
        };
        let Some(actor) = units.get(unit) else {
            return Err(Refusal::Unauthenticated(format!("no unit {unit:?}")));
        };
        let department = r.referred_to.as_deref() == Some(unit);
        if !r.concerns(actor) {
            return Err(Refusal::Forbidden(format!(
                "warning {} is assigned to {}; {unit} is neither it, above it on the ladder, nor a department it was referred to",
                r.warning_id, r.assignee
            )));
        }
        if r.state == State::Handled && command.action != Action::Note {
            return Err(Refusal::Impossible(format!(
                "warning {} was already handled",
                r.warning_id
            )));
        }
        let impossible = |what: &str| Err(Refusal::Impossible(what.to_owned()));
        let change = match &command.action {
            Action::Acknowledge if department && !r.reported_in => {
                r.reported_in = true;
                "reported_in"
            }
            Action::Acknowledge if r.state != State::Assigned => {
                return impossible("already acknowledged");
            }
            Action::Acknowledge => {
                r.state = State::Acknowledged;
                r.start(Step::OnSite, units, now_ms);
                "acknowledged"
            }
            Action::Dispatch { .. } | Action::OnSite | Action::Refer { .. }
                if r.state == State::Assigned =>
            {
                return impossible("acknowledge first");
            }
            Action::Dispatch { to } => {
                r.state = State::Dispatched;
                r.dispatched_to = Some(to.clone());
                "dispatched"
            }
            Action::OnSite if r.state == State::OnSite => return impossible("already on site"),
            Action::OnSite => {
                r.state = State::OnSite;
                r.start(Step::Handled, units, now_ms);
                "on_site"
            }
            Action::Refer { department } => {
                match units.get(department) {
                    Some(d) if d.level == UnitLevel::Department && d.handles(&r.category) => {}
                    _ => {
                        return Err(Refusal::Malformed(format!(
                            "{department:?} is not a department handling {} warnings",
                            r.category
                        )));
                    }
                }
                r.referred_to = Some(department.clone());
                r.reported_in = false;
                r.since_ms = now_ms;
                r.deadline_ms = now_ms + units.deadlines.get(r.grade, Step::Acknowledge);
                "referred"
            }
            Action::Handled {
                outcome: Outcome::Unanswered,
            } => {
                return Err(Refusal::Malformed(
                    "`unanswered` is the system's verdict".into(),
                ));
            }
            Action::Handled { outcome } => {
                r.state = State::Handled;
                r.outcome = Some(*outcome);
                r.deadline_ms = i64::MAX;
                "handled"
            }
            Action::Note => "note",
        };
        if command.action != Action::Note {
            r.overdue = false;
        }
        Ok(r.record(change, unit, now_ms, command.note.clone(), units))
    }

    /// Escalate every response whose deadline passed by `now_ms`.
    pub fn tick(&mut self, units: &Units, now_ms: i64) -> Vec<Change> {
        let mut out = Vec::new();
        for r in self.responses.values_mut() {
            if r.state == State::Handled || r.deadline_ms > now_ms {
                continue;
            }
            let missed = match &r.referred_to {
                Some(d) if !r.reported_in => d.clone(),
                _ => r.assignee.clone(),
            };
            match assignee_from(&r.ladder, r.rung + 1, &r.category, units) {
                Some((rung, unit)) => {
                    r.rung = rung;
                    r.assignee = unit;
                    r.state = State::Assigned;
                    r.referred_to = None;
                    r.escalations += 1;
                    r.start(Step::Acknowledge, units, now_ms);
                }
                // At the top: overdue there, and said once.
                None => {
                    r.deadline_ms = i64::MAX;
                    r.overdue = true;
                }
            }
            let mut c = r.record("escalated", "system", now_ms, None, units);
            c.missed_by = Some(missed);
            if let Some(last) = r.history.last_mut() {
                last.missed_by.clone_from(&c.missed_by);
            }
            out.push(c);
        }
        out
    }

    /// The responses of `warning_ids`, removed from this book (`take`: a
    /// partition is handed over) or copied (a checkpoint of it).
    pub fn extract<'a>(
        &mut self,
        warning_ids: impl Iterator<Item = &'a str>,
        take: bool,
    ) -> Vec<Response> {
        warning_ids
            .filter_map(|id| {
                if take {
                    self.responses.remove(id)
                } else {
                    self.responses.get(id).cloned()
                }
            })
            .collect()
    }

    /// Responses handed over by another instance. One already here is
    /// replaced only by a later one (higher sequence). Returns how many
    /// were taken.
    pub fn merge(&mut self, responses: Vec<Response>) -> usize {
        let mut taken = 0;
        for r in responses {
            let newer = self
                .responses
                .get(&r.warning_id)
                .is_none_or(|mine| mine.sequence < r.sequence);
            if newer {
                self.responses.insert(r.warning_id.clone(), r);
                taken += 1;
            }
        }
        taken
    }

    /// Forget handled responses older than `before_ms` (their history has
    /// been published).
    pub fn prune(&mut self, before_ms: i64) {
        self.responses.retain(|_, r| {
            r.state != State::Handled || r.history.last().is_some_and(|c| c.at_ms >= before_ms)
        });
    }
}

impl Response {
    /// Whether `unit` may see and act on this response: it holds it, a
    /// rung of the ladder above the holder is its, or it was referred to.
    pub fn concerns(&self, unit: &crate::units::Unit) -> bool {
        self.assignee == unit.id
            || self.referred_to.as_deref() == Some(unit.id.as_str())
            || self
                .ladder
                .iter()
                .skip(self.rung)
                .any(|rung| rung.level == unit.level && covers(&unit.areas, rung))
    }

    fn start(&mut self, step: Step, units: &Units, now_ms: i64) {
        self.step = step;
        self.since_ms = now_ms;
        self.deadline_ms = now_ms + units.deadlines.get(self.grade, step);
    }

    fn record(
        &mut self,
        change: &str,
        actor: &str,
        now_ms: i64,
        note: Option<String>,
        units: &Units,
    ) -> Change {
        self.sequence += 1;
        let c = Change {
            warning_id: self.warning_id.clone(),
            sequence: self.sequence,
            change: change.to_owned(),
            actor: actor.to_owned(),
            at_ms: now_ms,
            state: self.state,
            assignee: self.assignee.clone(),
            assignee_level: units
                .get(&self.assignee)
                .map_or(UnitLevel::City, |u| u.level),
            deadline_ms: (self.deadline_ms != i64::MAX).then_some(self.deadline_ms),
            note,
            outcome: self.outcome,
            missed_by: None,
            referred_to: self.referred_to.clone(),
        };
        self.history.push(c.clone());
        c
    }
}

/// The unit a new warning of `level` on group `key` would be assigned to.
pub fn first_assignee(
    registry: &SensorRegistry,
    units: &Units,
    level: AreaLevel,
    key: &str,
    category: &str,
) -> Option<String> {
    assignee_from(&ladder(registry, units, level, key), 0, category, units).map(|(_, u)| u)
}

/// The first rung from `from` up with a unit for `category`, and that unit.
fn assignee_from(
    ladder: &[Rung],
    from: usize,
    category: &str,
    units: &Units,
) -> Option<(usize, String)> {
    ladder.iter().enumerate().skip(from).find_map(|(i, rung)| {
        units
            .units
            .iter()
            .find(|u| u.level == rung.level && u.handles(category) && covers(&u.areas, rung))
            .map(|u| (i, u.id.clone()))
    })
}
