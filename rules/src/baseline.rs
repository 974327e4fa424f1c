//! Rules that need no hand-set threshold: each group's window value is
//! compared with that group's own past, and graded by how many spreads it
//! lies from it.
//!
//! - `method: robust`: the median and MAD (median absolute deviation,
//!   scaled by 1.4826 to match a standard deviation for normal data) of the
//!   group's window values over the trailing `history` (e.g. 7 days);
//! - `method: seasonal`: the same, over the values at the same phase of a
//!   `period` (same hour of day for `1d`, same hour of week for `7d`)
//!   within `history`, for metrics with a daily rhythm (traffic, noise).
//!
//! The graded value is the deviation `(value − median) / spread`: `side:
//! both` (default) grades its size, `above` only rises, `below` only
//! falls. Grades are deviation multiples (`above: {blue: 4, …}`). A group
//! is not graded until `min_history` values are there to compare with.
//!
//! State per rule and group: one value per window end within `history`
//! (168 for hourly windows over 7 days), evicted as windows pass.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::aggregate::WindowAggregate;
use crate::model::Rule;

/// How a rule's baseline is formed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    pub method: BaselineMethod,
    pub history_ms: i64,
    /// Seasonal: compare with values a whole number of periods back.
    pub period_ms: i64,
    pub side: Side,
    /// Values needed before a group is graded.
    pub min_history: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaselineMethod {
    Robust,
    Seasonal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    #[default]
    Both,
    Above,
    Below,
}

/// What a value was compared with: on the alert next to the deviation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deviation {
    /// The window's own aggregate.
    pub observed: f64,
    /// The baseline median.
    pub expected: f64,
    /// The baseline spread (1.4826 × MAD, with a floor).
    pub spread: f64,
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
}

/// `baseline: {method, history, period, side, min_history}`, checked
/// against the rule's window slide.
pub(crate) fn parse(value: Value, slide_ms: i64) -> Result<Baseline, String> {
    let spec: Spec = serde_yaml_ng::from_value(value).map_err(|e| format!("baseline: {e}"))?;
    let history_ms = crate::validate::parse_duration("baseline history", &spec.history)?;
    let period_ms = match (spec.method, &spec.period) {
        (BaselineMethod::Seasonal, Some(p)) => {
            crate::validate::parse_duration("baseline period", p)?
        }
        (BaselineMethod::Seasonal, None) => 86_400_000,
        (BaselineMethod::Robust, Some(_)) => {
            return Err("baseline: `period` is for `method: seasonal`".into());
        }
        (BaselineMethod::Robust, None) => 0,
    };
    if slide_ms > 0 && period_ms % slide_ms != 0 {
        return Err(format!(
            "baseline: the period ({period_ms} ms) must be a whole number of window slides ({slide_ms} ms)"
        ));
    }
    let min_history = spec.min_history.unwrap_or(match spec.method {
        BaselineMethod::Robust => 12,
        BaselineMethod::Seasonal => 3,
    });
    let available = match spec.method {
        BaselineMethod::Robust => history_ms / slide_ms.max(1),
        BaselineMethod::Seasonal => history_ms / period_ms.max(1),
    };
    if min_history == 0 || i64::from(min_history) > available {
        return Err(format!(
            "baseline: min_history {min_history} must be between 1 and the {available} values the history holds"
        ));
    }
    Ok(Baseline {
        method: spec.method,
        history_ms,
        period_ms,
        side: spec.side,
        min_history,
    })
}

/// Past window values per rule and group. In a checkpoint the values are
/// kept as their IEEE-754 bits, so a restored book is exactly the saved one.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(into = "BaselineRecord", from = "BaselineRecord")]
pub struct BaselineBook {
    history: HashMap<String, HashMap<String, BTreeMap<i64, f64>>>,
}

/// [`BaselineBook`] on disk: rule → group → [(window end, value bits)].
#[derive(serde::Serialize, serde::Deserialize)]
struct BaselineRecord(HashMap<String, HashMap<String, Vec<(i64, u64)>>>);

impl From<BaselineBook> for BaselineRecord {
    fn from(book: BaselineBook) -> Self {
        let convert = |values: BTreeMap<i64, f64>| {
            values
                .into_iter()
                .map(|(end, v)| (end, v.to_bits()))
                .collect()
        };
        BaselineRecord(
            book.history
                .into_iter()
                .map(|(rule, groups)| {
                    let groups = groups.into_iter().map(|(g, v)| (g, convert(v))).collect();
                    (rule, groups)
                })
                .collect(),
        )
    }
}

impl From<BaselineRecord> for BaselineBook {
    fn from(BaselineRecord(history): BaselineRecord) -> Self {
        let convert = |values: Vec<(i64, u64)>| {
            values
                .into_iter()
                .map(|(end, bits)| (end, f64::from_bits(bits)))
                .collect()
        };
        BaselineBook {
            history: history
                .into_iter()
                .map(|(rule, groups)| {
                    let groups = groups.into_iter().map(|(g, v)| (g, convert(v))).collect();
                    (rule, groups)
                })
                .collect(),
        }
    }
}

impl BaselineBook {
    pub fn new() -> Self {
        Self::default()
    }

    /// Values kept, over all rules and groups.
    pub fn len(&self) -> usize {
        self.history
            .values()
            .flat_map(|g| g.values())
            .map(BTreeMap::len)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forget rules no longer running (or whose baseline changed).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.history.retain(|rule, _| keep(rule));
    }

    /// The deviations of window `end_ms`'s aggregates from each group's
    /// baseline, then remember the aggregates. Groups without enough
    /// history yet are left out (not graded).
    pub fn deviations(
        &mut self,
        rule: &Rule,
        end_ms: i64,
        aggregates: &[WindowAggregate],
    ) -> Vec<WindowAggregate> {
        let Some(b) = rule.baseline else {
            return aggregates.to_vec();
        };
        let groups = self.history.entry(rule.id.clone()).or_default();
        let mut out = Vec::new();
        for a in aggregates {
            let past = groups.entry(a.group_key.clone()).or_default();
            let from = end_ms - b.history_ms;
            let mut values: Vec<f64> = past
                .range(from..end_ms)
                .filter(|(t, _)| b.period_ms == 0 || (end_ms - **t) % b.period_ms == 0)
                .map(|(_, v)| *v)
                .collect();
            if values.len() >= b.min_history as usize {
                let (expected, spread) = robust_centre(&mut values);
                let z = (a.value - expected) / spread;
                let graded = match b.side {
                    Side::Both => z.abs(),
                    Side::Above => z,
                    Side::Below => -z,
                };
                let mut d = a.clone();
                d.value = graded;
                d.deviation = Some(Deviation {
                    observed: a.value,
                    expected,
                    spread,
                });
                out.push(d);
            }
            past.insert(end_ms, a.value);
            while past.first_key_value().is_some_and(|(t, _)| *t < from) {
                past.pop_first();
            }
        }
        out
    }
}

/// Median and spread: 1.4826 × MAD, floored by the mean absolute deviation
/// (a mostly flat series with rare changes has a MAD of 0) and by a
/// millionth of the median, so a flat series does not grade rounding noise.
fn robust_centre(values: &mut [f64]) -> (f64, f64) {
    let median = median(values);
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
    let mad = median_of(&mut deviations);
    let mean_abs = deviations.iter().sum::<f64>() / deviations.len().max(1) as f64;
    let spread = (1.4826 * mad)
        .max(1.2533 * mean_abs)
        .max(1e-6 * median.abs())
        .max(1e-9);
    (median, spread)
}

fn median(values: &mut [f64]) -> f64 {
    median_of(values)
}

fn median_of(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::{Direction, Grade};
    use crate::model::{Aggregate, WindowSpec};
    use yujing_ingest::AreaLevel;

    const H: i64 = 3_600_000;

    fn rule(baseline: Baseline) -> Rule {
        let mut r = Rule::threshold_rule(
            "r",
            "noise",
            WindowSpec::tumbling(H),
            Aggregate::Avg,
            AreaLevel::Sensor,
            Direction::Above,
            &[(Grade::Blue, 3.0)],
        );
        r.baseline = Some(baseline);
        r
    }

    fn agg(r: &Rule, end: i64, value: f64) -> WindowAggregate {
        WindowAggregate::plain(r, "s1".into(), (end - H, end), value, 1, 1)
    }

    #[test]
    fn robust_deviation_from_the_trailing_median() {
        let r = rule(Baseline {
            method: BaselineMethod::Robust,
            history_ms: 24 * H,
            period_ms: 0,
            side: Side::Both,
            min_history: 4,
        });
        let mut book = BaselineBook::new();
        // 10, 12, 10, 12 …: median 11, MAD 1.
        for i in 1..=10 {
            let v = if i % 2 == 0 { 12.0 } else { 10.0 };
            let out = book.deviations(&r, i * H, &[agg(&r, i * H, v)]);
            assert_eq!(
                out.is_empty(),
                i <= 4,
                "hour {i}: graded only with 4 values"
            );
        }
        let out = book.deviations(&r, 11 * H, &[agg(&r, 11 * H, 5.0)]);
        let d = out[0].deviation.unwrap();
        assert_eq!((d.observed, d.expected), (5.0, 11.0));
        assert!((d.spread - 1.4826).abs() < 1e-9, "{d:?}");
        // A fall of 6 spreads of 1.4826: graded by its size on side both.
        assert!((out[0].value - 6.0 / 1.4826).abs() < 1e-9);
        // Older than the history is forgotten.
        assert!(book.len() <= 24);
    }

    #[test]
    fn seasonal_compares_the_same_hour_of_day() {
        let r = rule(Baseline {
            method: BaselineMethod::Seasonal,
            history_ms: 7 * 24 * H,
            period_ms: 24 * H,
            side: Side::Above,
            min_history: 3,
        });
        let mut book = BaselineBook::new();
        // A daily rhythm: 100 at 08:00, 10 otherwise, for 5 days.
        let mut last = Vec::new();
        for h in 1..=(5 * 24) {
            let v = if h % 24 == 8 { 100.0 } else { 10.0 };
            last = book.deviations(&r, h * H, &[agg(&r, h * H, v)]);
        }
        assert!(last[0].value.abs() < 1e-6, "the rhythm itself is normal");
        let end = (5 * 24 + 8) * H;
        let rush = book.deviations(&r, end, &[agg(&r, end, 100.0)]);
        assert!(
            rush[0].value.abs() < 1e-6,
            "08:00 compared with past 08:00s"
        );
        let quiet = book.deviations(&r, end + H, &[agg(&r, end + H, 100.0)]);
        assert!(
            quiet[0].value > 1e6,
            "100 at 09:00 is far off: {:?}",
            quiet[0]
        );
    }

    #[test]
    fn specs_are_checked() {
        let v = |s: &str| serde_yaml_ng::from_str::<Value>(s).unwrap();
        let b = parse(v("{method: seasonal, history: 28d}"), H).unwrap();
        assert_eq!((b.period_ms, b.min_history), (24 * H, 3));
        assert!(parse(v("{method: robust, history: 7d, period: 1d}"), H).is_err());
        assert!(
            parse(v("{method: seasonal, history: 2d}"), H).is_err(),
            "2 periods < 3"
        );
        assert!(parse(v("{method: seasonal, history: 28d, period: 90m}"), H).is_err());
        assert!(parse(v("{method: mean, history: 7d}"), H).is_err());
    }
}
