//! Each rule's and group's past window values, graded against: the
//! baseline's opinions, their agreement, and level shifts adopted.

use std::collections::{BTreeMap, HashMap};

use super::opinion::{mean_ending, means_over, opinion};
use super::shift::ShiftSums;
use super::{Baseline, Deviation, Side};
use crate::aggregate::WindowAggregate;
use crate::model::Rule;

/// Past window values per rule and group, and each group's level-shift
/// sums. In a checkpoint the values are kept as their IEEE-754 bits, so a
/// restored book is exactly the saved one.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(into = "BaselineRecord", from = "BaselineRecord")]
pub struct BaselineBook {
    history: HashMap<String, HashMap<String, BTreeMap<i64, f64>>>,
    shifts: HashMap<String, HashMap<String, ShiftSums>>,
}

type Values = HashMap<String, HashMap<String, Vec<(i64, u64)>>>;

/// [`BaselineBook`] on disk: rule → group → [(window end, value bits)],
/// and the level-shift sums. A checkpoint written before level shifts
/// holds only the values.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum BaselineRecord {
    WithShifts {
        values: Values,
        shifts: HashMap<String, HashMap<String, ShiftSums>>,
    },
    Values(Values),
}

impl From<BaselineBook> for BaselineRecord {
    fn from(book: BaselineBook) -> Self {
        let convert = |values: BTreeMap<i64, f64>| {
            values
                .into_iter()
                .map(|(end, v)| (end, v.to_bits()))
                .collect()
        };
        BaselineRecord::WithShifts {
            values: book
                .history
                .into_iter()
                .map(|(rule, groups)| {
                    let groups = groups.into_iter().map(|(g, v)| (g, convert(v))).collect();
                    (rule, groups)
                })
                .collect(),
            shifts: book.shifts,
        }
    }
}

impl From<BaselineRecord> for BaselineBook {
    fn from(record: BaselineRecord) -> Self {
        let (values, shifts) = match record {
            BaselineRecord::WithShifts { values, shifts } => (values, shifts),
            BaselineRecord::Values(values) => (values, HashMap::new()),
        };
        let convert = |values: Vec<(i64, u64)>| {
            values
                .into_iter()
                .map(|(end, bits)| (end, f64::from_bits(bits)))
                .collect()
        };
        BaselineBook {
            history: values
                .into_iter()
                .map(|(rule, groups)| {
                    let groups = groups.into_iter().map(|(g, v)| (g, convert(v))).collect();
                    (rule, groups)
                })
                .collect(),
            shifts,
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
        self.shifts.retain(|rule, _| keep(rule));
    }

    /// The deviations of window `end_ms`'s aggregates from each group's
    /// baseline, then remember the aggregates (and adopt a level shift
    /// found). Groups without enough history yet are left out (not
    /// graded).
    pub fn deviations(
        &mut self,
        rule: &Rule,
        end_ms: i64,
        aggregates: &[WindowAggregate],
    ) -> Vec<WindowAggregate> {
        let Some(b) = rule.baseline else {
            return aggregates.to_vec();
        };
        let slide_ms = rule.window.slide_ms;
        let groups = self.history.entry(rule.id.clone()).or_default();
        let mut out = Vec::new();
        for a in aggregates {
            let values = groups.entry(a.group_key.clone()).or_default();
            let from = end_ms - b.history_ms;
            let past: Vec<(i64, f64)> = values.range(from..end_ms).map(|(t, v)| (*t, *v)).collect();
            let primary = opinion(b.method, &past, end_ms, a.value, b.period_ms, b.min_history);
            if let Some((graded, deviation)) =
                primary.and_then(|p| agreed(&b, p, &past, end_ms, a.value, slide_ms))
            {
                let mut d = a.clone();
                d.value = graded;
                d.deviation = Some(deviation);
                out.push(d);
            }
            // A correction (late readings re-closing this window) replaces
            // its value; the level-shift sums have counted it already.
            let corrected = values.insert(end_ms, a.value).is_some();
            while values.first_key_value().is_some_and(|(t, _)| *t < from) {
                values.pop_first();
            }
            if let (Some(spec), Some(p), false) = (b.shift, primary, corrected) {
                let sums = self
                    .shifts
                    .entry(rule.id.clone())
                    .or_default()
                    .entry(a.group_key.clone())
                    .or_default();
                if let Some(step) = sums.add(spec, end_ms, p.z(), p.observed - p.expected) {
                    // The new level is the normal one: move the history
                    // before the step by its size.
                    for (_, v) in values.range_mut(..step.since) {
                        *v += step.size;
                    }
                }
            }
        }
        out
    }
}

/// The graded value and the deciding deviation: the primary opinion's,
/// or, with second opinions, the smallest of those that all agree. `None`
/// while a second opinion has too little history.
fn agreed(
    b: &Baseline,
    primary: Deviation,
    past: &[(i64, f64)],
    end_ms: i64,
    observed: f64,
    slide_ms: i64,
) -> Option<(f64, Deviation)> {
    let mut opinions = vec![primary];
    if let Some(method) = b.confirm {
        let min = method.default_min();
        opinions.push(opinion(method, past, end_ms, observed, b.period_ms, min)?);
    }
    if let Some(over) = b.confirm_over_ms {
        let longer = mean_ending(past, end_ms, observed, over, slide_ms)?;
        let means = means_over(past, over, slide_ms);
        opinions.push(opinion(
            b.method,
            &means,
            end_ms,
            longer,
            b.period_ms,
            b.min_history,
        )?);
    }
    // Opinions that see the value on opposite sides do not agree.
    let signs_differ = opinions.iter().any(|o| o.z() > 0.0) && opinions.iter().any(|o| o.z() < 0.0);
    let graded = |d: &Deviation| match b.side {
        Side::Both if signs_differ => 0.0,
        Side::Both => d.z().abs(),
        Side::Above => d.z(),
        Side::Below => -d.z(),
    };
    opinions
        .into_iter()
        .map(|d| (graded(&d), d))
        .min_by(|x, y| x.0.total_cmp(&y.0))
}
