//! The words of the response lifecycle: its states, responders'
//! outcomes, the actions a command asks, and a published change.

use serde::{Deserialize, Serialize};

use crate::units::UnitLevel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Assigned,
    Acknowledged,
    Dispatched,
    OnSite,
    Handled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Assigned => "assigned",
            State::Acknowledged => "acknowledged",
            State::Dispatched => "dispatched",
            State::OnSite => "on_site",
            State::Handled => "handled",
        }
    }
}

/// A responder's verdict, or the system's when nobody answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Confirmed,
    FalseAlarm,
    SensorFault,
    Duplicate,
    /// The condition resolved before anyone acknowledged.
    Unanswered,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Confirmed => "confirmed",
            Outcome::FalseAlarm => "false_alarm",
            Outcome::SensorFault => "sensor_fault",
            Outcome::Duplicate => "duplicate",
            Outcome::Unanswered => "unanswered",
        }
    }
}

/// What a responder asks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    Acknowledge,
    /// To a named team or person of the unit.
    Dispatch {
        to: String,
    },
    OnSite,
    /// The whistle: a specialist department must report in.
    Refer {
        department: String,
    },
    Handled {
        outcome: Outcome,
    },
    Note,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledge",
            Action::Dispatch { .. } => "dispatch",
            Action::OnSite => "on_site",
            Action::Refer { .. } => "refer",
            Action::Handled { .. } => "handled",
            Action::Note => "note",
        }
    }
}

/// A command: an action on a warning, with an optional note. The acting
/// unit comes from the token (HTTP) or the `unit` field (Kafka).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Command {
    pub warning_id: String,
    #[serde(flatten)]
    pub action: Action,
    #[serde(default)]
    pub note: Option<String>,
}

/// One change of a response, as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub warning_id: String,
    pub sequence: u64,
    /// `assigned`, `acknowledged`, `dispatched`, `on_site`, `referred`,
    /// `reported_in`, `handled`, `escalated`, `unanswered`, `resolved`
    /// (the condition ended; the response goes on), `note`.
    pub change: String,
    /// The unit that acted; `system` for assignments and escalations.
    pub actor: String,
    pub at_ms: i64,
    pub state: State,
    pub assignee: String,
    pub assignee_level: UnitLevel,
    /// When the current step is due (none once handled or at the top).
    pub deadline_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// The unit that missed its deadline (escalations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referred_to: Option<String>,
}
