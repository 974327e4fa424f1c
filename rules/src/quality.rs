//! Data-quality checks: per-sensor window statistics from DataFusion,
//! compared with the sensor's grid neighbours. Silence is not here: it
//! needs the time of each sensor's last reading, which the engine keeps.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, Float64Array, Int64Array, StringArray};
use arrow::datatypes::DataType;
use datafusion::functions_aggregate::expr_fn::{max, min, sum};
use datafusion::prelude::{cast, col, lit};

use crate::aggregate::{WindowAggregate, WindowAggregator, column};
use crate::error::RulesError;
use crate::model::{Quality, Rule};
use crate::window_set::{PerWindow, WindowSet};

/// One sensor's readings of the rule's metric in one window.
struct SensorStats {
    window_end: i64,
    sensor: String,
    grid: String,
    n: i64,
    mean: f64,
    /// Population variance; 0 for a flat series.
    variance: f64,
    min: f64,
    max: f64,
}

/// Below this a series counts as flat (sums of squares lose precision).
const FLAT: f64 = 1e-9;

impl WindowAggregator {
    /// Values of a stuck, out-of-range or outlier check, one per sensor
    /// that reported in the window, sorted by sensor.
    pub(crate) async fn quality(
        &self,
        set: &WindowSet,
        rule: &Rule,
        check: Quality,
    ) -> Result<PerWindow, RulesError> {
        let mut by_window: BTreeMap<i64, Vec<SensorStats>> = BTreeMap::new();
        for s in self.sensor_stats(set, rule).await? {
            by_window.entry(s.window_end).or_default().push(s);
        }
        let mut out = PerWindow::new();
        for (end, stats) in by_window {
            let window = (set.start_of(end), end);
            out.insert(end, check_window(rule, check, window, &stats));
        }
        Ok(out)
    }

    async fn sensor_stats(
        &self,
        set: &WindowSet,
        rule: &Rule,
    ) -> Result<Vec<SensorStats>, RulesError> {
        let n = || cast(sum(col("n")), DataType::Float64);
        let batches = self
            .ctx
            .read_batch(set.batch.clone())?
            .filter(col("metric").eq(lit(rule.metric.as_str())))?
            .aggregate(
                vec![col("window_end"), col("sensor_id"), col("grid")],
                vec![
                    sum(col("n")).alias("n"),
                    (sum(col("sum")) / n()).alias("mean"),
                    (sum(col("sumsq")) / n() - (sum(col("sum")) / n()) * (sum(col("sum")) / n()))
                        .alias("variance"),
                    min(col("min")).alias("min"),
                    max(col("max")).alias("max"),
                ],
            )?
            .sort(vec![
                col("window_end").sort(true, false),
                col("sensor_id").sort(true, false),
            ])?
            .collect()
            .await?;
        let mut out = Vec::new();
        for b in batches {
            let end = column::<Int64Array>(&b, "window_end")?;
            let sensor = column::<StringArray>(&b, "sensor_id")?;
            let grid = column::<StringArray>(&b, "grid")?;
            let n = column::<Int64Array>(&b, "n")?;
            let mean = column::<Float64Array>(&b, "mean")?;
            let variance = column::<Float64Array>(&b, "variance")?;
            let lo = column::<Float64Array>(&b, "min")?;
            let hi = column::<Float64Array>(&b, "max")?;
            for i in 0..b.num_rows() {
                if mean.is_null(i) {
                    continue;
                }
                out.push(SensorStats {
                    window_end: end.value(i),
                    sensor: sensor.value(i).to_owned(),
                    grid: grid.value(i).to_owned(),
                    n: n.value(i),
                    mean: mean.value(i),
                    variance: variance.value(i).max(0.0),
                    min: lo.value(i),
                    max: hi.value(i),
                });
            }
        }
        Ok(out)
    }
}

/// One window's check values, one per sensor that reported, sorted by
/// sensor.
fn check_window(
    rule: &Rule,
    check: Quality,
    window: (i64, i64),
    stats: &[SensorStats],
) -> Vec<WindowAggregate> {
    let mut by_grid: HashMap<&str, Vec<&SensorStats>> = HashMap::new();
    for s in stats {
        by_grid.entry(&s.grid).or_default().push(s);
    }
    let mut out = Vec::new();
    for s in stats {
        let siblings = || {
            by_grid[s.grid.as_str()]
                .iter()
                .filter(move |o| o.sensor != s.sensor)
        };
        let value = match check {
            Quality::Stuck => {
                let flat = s.n >= 3 && s.variance <= FLAT * s.mean.abs().max(1.0);
                let others_vary =
                    siblings().any(|o| o.n >= 2 && o.variance > FLAT * o.mean.abs().max(1.0));
                f64::from(u8::from(flat && others_vary))
            }
            Quality::OutOfRange { low, high } => (s.max - high).max(low - s.min).max(0.0),
            Quality::FlatLine { tolerance } => {
                f64::from(u8::from(s.n >= 3 && s.max - s.min <= tolerance))
            }
            Quality::Outlier => {
                // The grid's median, the sensor itself included: with
                // three or more sensors one faulty station cannot drag
                // it, so only the faulty one stands out.
                let mut means: Vec<f64> = by_grid[s.grid.as_str()].iter().map(|o| o.mean).collect();
                if means.len() < 3 {
                    continue;
                }
                means.sort_by(f64::total_cmp);
                let mid = means.len() / 2;
                let median = if means.len().is_multiple_of(2) {
                    (means[mid - 1] + means[mid]) / 2.0
                } else {
                    means[mid]
                };
                (s.mean - median).abs()
            }
            Quality::Silent => continue,
        };
        out.push(WindowAggregate::plain(
            rule,
            s.sensor.clone(),
            window,
            value,
            s.n,
            1,
        ));
    }
    out
}
