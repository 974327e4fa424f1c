//! Rules: from a closed window to graded warnings.
//!
//! # Layout
//! - [`grade`]: the four national warning grades (blue IV … red I) and
//!   their CAP severities.
//! - [`model`]: what a validated rule says (levels, timers, quorum).
//! - [`load`]: the rules files ops teams edit (YAML, groups with defaults),
//!   read key by key so every problem is reported at once.
//! - [`validate`]: the checks from a rule's keys to a [`Rule`].
//! - [`locate`]: `file:line:column` for a key, found in the text.
//! - [`template`]: `{{ value }}` templates in labels, annotations and texts.
//! - [`language`]: the languages warnings are written in (zh-CN and en
//!   built in, more from files): their words and default texts.
//! - [`tune`]: a rule's search space for `yujing tune` (`tune:`), checked
//!   by applying its ends to the rule.
//! - [`series`]: the compact series notation of rule tests (`80+5x12`).
//! - [`baseline`]: rules graded by deviation from a group's own past
//!   (robust trailing median/MAD, or the same hour of day or week).
//! - [`aqi`]: China's AQI (HJ 633-2012): breakpoints and the DataFusion
//!   UDF `china_iaqi`.
//! - [`aggregate`]: the DataFusion query that turns a closed window's Arrow
//!   batch into one [`WindowAggregate`] per rule and group.
//! - [`window_set`]: windows closed together, stacked into one batch so
//!   each rule runs one query for all of them.
//! - [`percentile`]: the DataFusion aggregate UDF merging quantile sketches
//!   into window percentiles.
//! - [`quality`]: data-quality checks (stuck, out-of-range, outlier
//!   sensors) from per-sensor DataFusion statistics.
//! - [`sql`]: SQL rules, a DataFusion query over the window table,
//!   checked when the rules load.
//! - [`state`]: the warning lifecycle per fingerprint (rule + group): the
//!   pending, hysteresis, de-escalation and resolution timers and the
//!   transitions (raised, escalated, de-escalated, resolved) they emit.
//! - [`error`]: this crate's error type.

// The layout sections above (and in module docs) name private modules
// for readers of the source: `cargo doc --document-private-items` links them.
#![allow(rustdoc::private_intra_doc_links)]

pub mod aggregate;
pub mod aqi;
pub mod baseline;
pub mod error;
pub mod grade;
pub mod language;
pub mod load;
pub mod locate;
pub mod model;
pub mod percentile;
pub mod quality;
pub mod series;
pub mod sql;
pub mod state;
pub mod template;
pub mod tune;
mod validate;
pub mod window_set;

pub use aggregate::{Trend, WindowAggregate, WindowAggregator};
pub use baseline::{Baseline, BaselineBook, BaselineMethod, Deviation, Shift, Side};
pub use error::{Problem, RulesError};
pub use grade::{Direction, Grade};
pub use language::{Language, Languages, PhraseKind};
pub use load::yaml_error_position;
pub use model::{Aggregate, Category, Level, Quality, Quorum, Rule, RuleSet, RuleText, WindowSpec};
pub use state::{GroupState, ResolveReason, Transition, WarningBook, WarningTransition};
pub use window_set::{PerWindow, WindowSet};
