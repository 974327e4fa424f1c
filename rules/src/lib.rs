//! Rules: from a closed window to graded warnings.
//!
//! # Layout
//! - [`grade`]: the four national warning grades (blue IV … red I) and
//!   their CAP severities.
//! - [`model`]: the rules file ops teams edit (YAML), its validation, and
//!   errors that point at `file:line:column`.
//! - [`aggregate`]: the DataFusion query that turns a closed window's Arrow
//!   batch into one [`WindowAggregate`] per rule and group.
//! - [`percentile`]: the DataFusion aggregate UDF merging quantile sketches
//!   into window percentiles.
//! - [`state`]: the warning state per fingerprint (rule + group) and the
//!   transitions (raised, escalated, de-escalated, resolved) it emits.
//! - [`error`]: this crate's error type.

pub mod aggregate;
pub mod error;
pub mod grade;
pub mod model;
pub mod percentile;
pub mod state;

pub use aggregate::{WindowAggregate, WindowAggregator};
pub use error::RulesError;
pub use grade::{Direction, Grade};
pub use model::{Aggregate, Rule, RuleSet, WindowSpec};
pub use state::{ResolveReason, Transition, WarningBook, WarningTransition};
