//! The response loop: a warning is only worth something if someone acts
//! on it. The grid blows the whistle, the department reports in (网格吹哨、
//! 部门报到): each warning is assigned to the unit responsible for its
//! area and category, must be answered within a deadline, and climbs the
//! ladder when nobody answers; responders' verdicts come back as labels.
//! Wall-clock time, passed in (`now_ms`), so every path is testable with a
//! controllable clock. No Kafka, no HTTP: `yujing run` wires it.
//!
//! # Layout
//! - [`units`]: the responsibility file — units, their areas, categories,
//!   routes and tokens; communities; deadline overrides — checked like the
//!   rules, every problem at once with `file:line:column`;
//! - [`ladder`]: grid → community → street → district → city for a
//!   warning's group;
//! - [`deadlines`]: how long each step may take, per grade;
//! - [`lifecycle`]: the response's states, outcomes, actions, changes;
//! - [`book`]: each warning's response lifecycle, commands, escalation;
//! - [`feedback`]: commands read from the feedback topic;
//! - [`verdicts`]: responders' verdicts per rule, and as backtest labels;
//! - [`error`]: [`ResponseError`] (the file) and [`Refusal`] (a command).

pub mod book;
pub mod deadlines;
pub mod error;
pub mod feedback;
pub mod ladder;
pub mod lifecycle;
pub mod units;
pub mod verdicts;

pub use book::{
    Action, Change, Command, Outcome, Response, ResponseBook, State, WarningEvent, first_assignee,
};
pub use deadlines::{Deadlines, Step};
pub use error::{Refusal, ResponseError};
pub use ladder::{Rung, ladder};
pub use units::{Unit, UnitLevel, Units};
pub use verdicts::Verdict;

#[cfg(test)]
mod tests;
