//! Rules that need no hand-set threshold: each group's window value is
//! compared with that group's own past, and graded by how many spreads it
//! lies from it.
//!
//! - `method: robust`: the median and MAD (median absolute deviation,
//!   scaled by 1.4826 to match a standard deviation for normal data) of the
//!   group's window values over the trailing `history` (e.g. 7 days);
//! - `method: seasonal`: the same, over the values at the same phase of a
//!   `period` (same hour of day for `1d`, same hour of week for `7d`)
//!   within `history`, for metrics with a daily rhythm (traffic, noise);
//! - `method: trend`: the straight line fitted through the history,
//!   extended to the window, and the spread of the values around it, for
//!   series that drift (a filling reservoir, a sensor ageing).
//!
//! The graded value is the deviation `(value − expected) / spread`: `side:
//! both` (default) grades its size, `above` only rises, `below` only
//! falls. Grades are deviation multiples (`above: {blue: 4, …}`). A group
//! is not graded until `min_history` values are there to compare with.
//!
//! Second opinions cut false warnings; each must agree, and the smallest
//! deviation is graded:
//! - `confirm: seasonal` (or `robust`, `trend`): another method over the
//!   same history;
//! - `confirm_over: 3h`: a longer scale: the mean of the last 3 hours'
//!   windows must deviate from the same method's baseline of such means,
//!   so a one-window spike is diluted (for a series whose next hour is
//!   much like the last, to about a third of itself over three windows).
//!
//! `shift: {drift: 0.5, limit: 20}` detects level shifts (a CUSUM of the
//! deviations): once the deviations beyond `drift` spreads add up past
//! `limit`, the new level becomes the baseline (the older history is moved
//! by the step), so a step change warns once instead of for days. One
//! window counts for at most half the limit: a spike is never a shift.
//!
//! Layout: this module reads the spec; [`book`] keeps each group's past
//! and grades; [`opinion`] holds the pure arithmetic (centres, lines,
//! longer-scale means); [`shift`] the level-shift sums.
//!
//! State per rule and group: one value per window end within `history`
//! (168 for hourly windows over 7 days), evicted as windows pass, and
//! the two level-shift sums.

mod book;
mod opinion;
mod shift;

pub use book::BaselineBook;

use serde::Deserialize;
use serde_yaml_ng::Value;

/// How a rule's baseline is formed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    pub method: BaselineMethod,
    pub history_ms: i64,
    /// Seasonal (as method or second opinion): compare with values a
    /// whole number of periods back.
    pub period_ms: i64,
    pub side: Side,
    /// Values needed before a group is graded.
    pub min_history: u32,
    /// A second method that must agree.
    pub confirm: Option<BaselineMethod>,
    /// A longer scale (a whole number of slides) that must agree.
    pub confirm_over_ms: Option<i64>,
    /// Level shifts become the baseline once detected.
    pub shift: Option<Shift>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaselineMethod {
    Robust,
    Seasonal,
    Trend,
}

impl BaselineMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            BaselineMethod::Robust => "robust",
            BaselineMethod::Seasonal => "seasonal",
            BaselineMethod::Trend => "trend",
        }
    }

    /// Values needed by default: a day of hours for a centre or a line,
    /// three periods for a seasonal one.
    fn default_min(self) -> u32 {
        match self {
            BaselineMethod::Seasonal => 3,
            BaselineMethod::Robust | BaselineMethod::Trend => 12,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    #[default]
    Both,
    Above,
    Below,
}

/// Level-shift detection: a two-sided CUSUM of the deviations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    /// Deviations up to this many spreads are not counted.
    pub drift: f64,
    /// A sum past this many spreads is a level shift.
    pub limit: f64,
}

/// What a value was compared with: on the alert next to the deviation.
/// With second opinions, the one that decided the grade (the smallest).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deviation {
    /// The window's own aggregate (for `confirm_over`, the longer mean).
    pub observed: f64,
    /// The baseline median (or the line's value).
    pub expected: f64,
    /// The baseline spread (1.4826 × MAD, with a floor).
    pub spread: f64,
}

impl Deviation {
    /// Spreads from the expected value, signed.
    pub fn z(&self) -> f64 {
        (self.observed - self.expected) / self.spread
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    method: BaselineMethod,
    history: Value,
    period: Option<Value>,
    #[serde(default)]
    side: Side,
    min_history: Option<u32>,
    confirm: Option<String>,
    confirm_over: Option<Value>,
    shift: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShiftSpec {
    #[serde(default = "default_drift")]
    drift: f64,
    #[serde(default = "default_limit")]
    limit: f64,
}

fn default_drift() -> f64 {
    0.5
}

fn default_limit() -> f64 {
    20.0
}

/// A problem with a `baseline:` spec: the key inside it (`""` for the
/// spec itself) and what is wrong.
pub(crate) type SpecError = (&'static str, String);

fn fail<T>(key: &'static str, message: impl Into<String>) -> Result<T, SpecError> {
    Err((key, message.into()))
}

/// `baseline: {method, history, period, side, min_history, confirm,
/// confirm_over, shift}`, checked against the rule's window slide.
pub(crate) fn parse(value: Value, slide_ms: i64) -> Result<Baseline, SpecError> {
    let spec: Spec =
        serde_yaml_ng::from_value(value).map_err(|e| ("", format!("baseline: {e}")))?;
    let duration = |key: &'static str, what: &str, v: &Value| {
        crate::validate::parse_duration(what, v).map_err(|m| (key, m))
    };
    let history_ms = duration("history", "baseline history", &spec.history)?;
    let confirm = match spec.confirm.as_deref() {
        None | Some("none") => None,
        Some(name) => Some(
            serde_yaml_ng::from_value::<BaselineMethod>(Value::from(name)).map_err(|_| {
                (
                    "confirm",
                    format!("confirm: `{name}` is not a method: robust, seasonal, trend or none"),
                )
            })?,
        ),
    };
    if confirm == Some(spec.method) {
        return fail("confirm", "confirm: a second opinion needs another method");
    }
    let seasonal =
        spec.method == BaselineMethod::Seasonal || confirm == Some(BaselineMethod::Seasonal);
    let period_ms = match (seasonal, &spec.period) {
        (true, Some(p)) => duration("period", "baseline period", p)?,
        (true, None) => 86_400_000,
        (false, Some(_)) => {
            return fail("period", "baseline: `period` is for the seasonal method");
        }
        (false, None) => 0,
    };
    if slide_ms > 0 && period_ms % slide_ms != 0 {
        return fail(
            "period",
            format!(
                "baseline: the period ({}) must be a whole number of window slides ({})",
                crate::model::format_ms(period_ms),
                crate::model::format_ms(slide_ms)
            ),
        );
    }
    let min_history = spec.min_history.unwrap_or(spec.method.default_min());
    let slide = slide_ms.max(1);
    let holds = |method: BaselineMethod| match method {
        BaselineMethod::Seasonal => history_ms / period_ms.max(1),
        _ => history_ms / slide,
    };
    let available = holds(spec.method);
    if min_history == 0 || i64::from(min_history) > available {
        return fail(
            "min_history",
            format!(
                "baseline: min_history {min_history} must be between 1 and the {available} values the history holds (lengthen `history` or lower `min_history`)"
            ),
        );
    }
    if let Some(c) = confirm.filter(|c| i64::from(c.default_min()) > holds(*c)) {
        return fail(
            "confirm",
            format!(
                "confirm: {} needs {} values and the history holds {}: lengthen `history`",
                c.as_str(),
                c.default_min(),
                holds(c)
            ),
        );
    }
    let confirm_over_ms = match &spec.confirm_over {
        None => None,
        Some(v) if v.as_str() == Some("none") => None,
        Some(v) => {
            let over = duration("confirm_over", "confirm_over", v)?;
            if over <= slide_ms || over % slide != 0 {
                return fail(
                    "confirm_over",
                    format!(
                        "confirm_over: {} must be a whole number (2 or more) of window slides ({})",
                        crate::model::format_ms(over),
                        crate::model::format_ms(slide_ms)
                    ),
                );
            }
            if over * 2 > history_ms {
                return fail(
                    "confirm_over",
                    "confirm_over: the history must hold at least two such spans",
                );
            }
            Some(over)
        }
    };
    let shift = match spec.shift {
        None => None,
        Some(v) if v.as_str() == Some("off") => None,
        Some(v) => {
            let s: ShiftSpec = serde_yaml_ng::from_value(v)
                .map_err(|e| ("shift", format!("shift: {e} (or `off`)")))?;
            if !(s.drift >= 0.0 && s.limit > 0.0 && s.limit.is_finite()) {
                return fail(
                    "shift",
                    format!(
                        "shift: drift {} must be 0 or more and limit {} above 0",
                        s.drift, s.limit
                    ),
                );
            }
            Some(Shift {
                drift: s.drift,
                limit: s.limit,
            })
        }
    };
    Ok(Baseline {
        method: spec.method,
        history_ms,
        period_ms,
        side: spec.side,
        min_history,
        confirm,
        confirm_over_ms,
        shift,
    })
}

#[cfg(test)]
mod tests;
