//! Window aggregates, computed by DataFusion.
//!
//! A closed window arrives as one Arrow batch of partial states, one row per
//! sensor and metric (see `yujing_ingest::window::WINDOW_SCHEMA`). For
//! each rule on that window the aggregator merges them per group:
//!
//! ```sql
//! SELECT <group column> AS group_key, <merged parts>,
//!        sum(n) AS readings, count(*) AS sensors
//! FROM window WHERE metric = <rule metric> GROUP BY <group column>
//! ```
//!
//! then projects the value from the merged parts, e.g. `avg` is
//! `sum(sum) / sum(n)` and `stddev` is the sample deviation from `sum`,
//! `sumsq` and `n`. All through the DataFrame API, so no rule text is ever
//! spliced into SQL.
//!
//! Time-based aggregates are per hour: `rate` divides the change from the
//! first to the last reading by the hours between them; `slope` is the
//! least-squares slope of value against time.

use arrow::array::{Array, Float64Array, Int64Array, StringArray};
use arrow::datatypes::DataType;
use datafusion::functions::expr_fn::{greatest, nullif, sqrt};
use datafusion::functions_aggregate::expr_fn::{count, first_value, last_value, max, min, sum};
use datafusion::prelude::{DataFrame, Expr, SessionConfig, SessionContext, cast, col, lit, when};
use datafusion::scalar::ScalarValue;
use yujing_ingest::ClosedWindow;

use std::collections::HashMap;

use crate::error::RulesError;
use crate::grade::Direction;
use crate::model::{Aggregate, Rule};
use crate::percentile::SketchQuantile;
use crate::window_set::{PerWindow, WindowSet};

/// One rule's aggregate for one group in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowAggregate {
    pub rule_id: String,
    pub group_key: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    /// The graded value: the aggregate, or for `predict` rules the value the
    /// trend line reaches at the horizon.
    pub value: f64,
    /// Readings that went into the value.
    pub readings: i64,
    /// Distinct sensors that contributed.
    pub sensors: i64,
    /// For `predict` rules: the least-squares line through the readings.
    pub trend: Option<Trend>,
    /// For rules with a quorum: per level of the rule (blue → red), how
    /// many sensors cross its threshold and how many its clear threshold.
    pub agreeing: Vec<(i64, i64)>,
    /// For AQI rules: the pollutant with the highest IAQI, when AQI > 50.
    pub primary_pollutant: Option<String>,
    /// For baseline rules: the aggregate and the baseline `value` is the
    /// deviation from.
    pub deviation: Option<crate::baseline::Deviation>,
}

impl WindowAggregate {
    /// A plain value for one group, without trend, quorum counts or
    /// pollutant: what checks, SQL and silence rules produce.
    pub fn plain(
        rule: &Rule,
        group_key: String,
        (start_ms, end_ms): (i64, i64),
        value: f64,
        readings: i64,
        sensors: i64,
    ) -> Self {
        WindowAggregate {
            rule_id: rule.id.clone(),
            group_key,
            window_start_ms: start_ms,
            window_end_ms: end_ms,
            value,
            readings,
            sensors,
            trend: None,
            agreeing: Vec::new(),
            primary_pollutant: None,
            deviation: None,
        }
    }
}

/// A linear trend: its value at the window's end and its slope per hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    pub now: f64,
    pub per_hour: f64,
}

/// Runs rule queries on closed windows. Cheap to clone; holds one
/// DataFusion session for the life of the pipeline.
#[derive(Clone)]
pub struct WindowAggregator {
    pub(crate) ctx: SessionContext,
}

impl Default for WindowAggregator {
    fn default() -> Self {
        Self::new()
    }
}

impl WindowAggregator {
    pub fn new() -> Self {
        // Window batches are small and already in memory: one partition
        // avoids repartitioning overhead on a 2-core box.
        let config = SessionConfig::new().with_target_partitions(1);
        WindowAggregator {
            ctx: SessionContext::new_with_config(config),
        }
    }

    /// The rule's value per `keys` (after `window_end`), with `readings`
    /// and `sensors`, and `trend_now`/`trend_slope` for predict rules.
    fn values(
        &self,
        set: &WindowSet,
        rule: &Rule,
        keys: Vec<Expr>,
    ) -> Result<DataFrame, RulesError> {
        let value = value_expr(rule);
        let mut aggregates = value.parts;
        aggregates.push(sum(col("n")).alias("readings"));
        // One row per sensor and metric: after the metric filter, rows are sensors.
        aggregates.push(count(lit(1)).alias("sensors"));
        let keys: Vec<Expr> = std::iter::once(col("window_end")).chain(keys).collect();
        let key_names: Vec<Expr> = keys
            .iter()
            .map(|k| col(k.schema_name().to_string()))
            .collect();
        let mut select = key_names;
        select.push(cast(value.value, DataType::Float64).alias("value"));
        select.push(col("readings"));
        select.push(col("sensors"));
        if let Some((now, slope)) = value.trend {
            select.push(cast(now, DataType::Float64).alias("trend_now"));
            select.push(cast(slope, DataType::Float64).alias("trend_slope"));
        }
        Ok(self
            .ctx
            .read_batch(set.batch.clone())?
            .filter(col("metric").eq(lit(rule.metric.as_str())))?
            .aggregate(keys, aggregates)?
            .select(select)?)
    }

    /// Aggregates for `rule` over `window`, sorted by group key.
    pub async fn aggregate(
        &self,
        window: &ClosedWindow,
        rule: &Rule,
    ) -> Result<Vec<WindowAggregate>, RulesError> {
        let set = WindowSet::new([window])?;
        let mut out = self.aggregate_set(&set, rule).await?;
        Ok(out.remove(&window.end_ms).unwrap_or_default())
    }

    /// Aggregates for `rule` over every window of `set` in one query: per
    /// window end, sorted by group key.
    pub async fn aggregate_set(
        &self,
        set: &WindowSet,
        rule: &Rule,
    ) -> Result<PerWindow, RulesError> {
        if let Some(check) = rule.quality {
            return self.quality(set, rule, check).await;
        }
        if let Some(query) = &rule.sql {
            return self.sql_set(set, rule, query).await;
        }
        let group = || col(rule.group_by.column()).alias("group_key");
        let batches = self
            .values(set, rule, vec![group()])?
            .sort(vec![
                col("window_end").sort(true, false),
                col("group_key").sort(true, false),
            ])?
            .collect()
            .await?;
        let agreeing = if rule.quorum.is_set() {
            self.agreeing(set, rule).await?
        } else {
            HashMap::new()
        };
        let mut out = PerWindow::new();
        for batch in batches {
            let ends = column::<Int64Array>(&batch, "window_end")?;
            let keys = column::<StringArray>(&batch, "group_key")?;
            let values = column::<Float64Array>(&batch, "value")?;
            let readings = column::<Int64Array>(&batch, "readings")?;
            let sensors = column::<Int64Array>(&batch, "sensors")?;
            let trend = match rule.predict_horizon_ms {
                Some(_) => Some((
                    column::<Float64Array>(&batch, "trend_now")?,
                    column::<Float64Array>(&batch, "trend_slope")?,
                )),
                None => None,
            };
            for i in 0..batch.num_rows() {
                // No value (e.g. a rate from one reading): nothing to grade.
                if values.is_null(i) || !values.value(i).is_finite() {
                    continue;
                }
                let (end, key) = (ends.value(i), keys.value(i));
                out.entry(end).or_default().push(WindowAggregate {
                    rule_id: rule.id.clone(),
                    group_key: key.to_owned(),
                    window_start_ms: set.start_of(end),
                    window_end_ms: end,
                    value: values.value(i),
                    readings: readings.value(i),
                    sensors: sensors.value(i),
                    trend: trend.map(|(now, slope)| Trend {
                        now: now.value(i),
                        per_hour: slope.value(i),
                    }),
                    agreeing: agreeing
                        .get(&(end, key.to_owned()))
                        .cloned()
                        .unwrap_or_default(),
                    primary_pollutant: None,
                    deviation: None,
                });
            }
        }
        Ok(out)
    }

    /// Per group: how many sensors' own values cross each level's threshold
    /// and clear threshold.
    async fn agreeing(
        &self,
        set: &WindowSet,
        rule: &Rule,
    ) -> Result<HashMap<(i64, String), Vec<(i64, i64)>>, RulesError> {
        let keys = vec![
            col(rule.group_by.column()).alias("group_key"),
            col("sensor_id").alias("sensor"),
        ];
        let crosses = |t: f64| match rule.direction {
            Direction::Above => col("value").gt(lit(t)),
            Direction::Below => col("value").lt(lit(t)),
        };
        let counted = |t: f64, name: String| {
            sum(when(crosses(t), lit(1i64))
                .otherwise(lit(0i64))
                .expect("CASE"))
            .alias(name)
        };
        let mut counts = Vec::new();
        for (i, level) in rule.levels.iter().enumerate() {
            counts.push(counted(level.threshold, format!("raise{i}")));
            counts.push(counted(level.clear, format!("keep{i}")));
        }
        let batches = self
            .values(set, rule, keys)?
            .aggregate(vec![col("window_end"), col("group_key")], counts)?
            .collect()
            .await?;
        let mut out = HashMap::new();
        for batch in batches {
            let ends = column::<Int64Array>(&batch, "window_end")?;
            let keys = column::<StringArray>(&batch, "group_key")?;
            let mut columns = Vec::new();
            for i in 0..rule.levels.len() {
                columns.push((
                    column::<Int64Array>(&batch, &format!("raise{i}"))?,
                    column::<Int64Array>(&batch, &format!("keep{i}"))?,
                ));
            }
            for row in 0..batch.num_rows() {
                let per_level = columns
                    .iter()
                    .map(|(r, k)| (r.value(row), k.value(row)))
                    .collect();
                out.insert((ends.value(row), keys.value(row).to_owned()), per_level);
            }
        }
        Ok(out)
    }
}

const MS_PER_HOUR: f64 = 3_600_000.0;

/// What to aggregate per group for a rule, and how its value (and trend)
/// follow from those parts.
struct ValueExpr {
    /// Merged parts, aliased `p0`, `p1`, …
    parts: Vec<Expr>,
    value: Expr,
    /// Trend line at the window's end and its slope, for predict rules.
    trend: Option<(Expr, Expr)>,
}

fn value_expr(rule: &Rule) -> ValueExpr {
    let plain = |(parts, value): (Vec<Expr>, Expr)| ValueExpr {
        parts,
        value,
        trend: None,
    };
    let Some(horizon_ms) = rule.predict_horizon_ms else {
        return plain(aggregate_expr(rule.aggregate));
    };
    // The least-squares line y = ȳ + slope·(x − x̄), x in hours since the
    // store's origin, taken at the window's end and `horizon` beyond.
    let (mut parts, slope) = aggregate_expr(Aggregate::Slope);
    parts.push(sum(col("sx")).alias("p5"));
    // The window's end on the same axis: one value per window.
    parts.push(max(col("x_end")).alias("p6"));
    let p = |i: usize| col(format!("p{i}"));
    let now = p(4) / p(0) + slope.clone() * (p(6) - p(5) / p(0));
    let value = now.clone() + slope.clone() * lit(horizon_ms as f64 / MS_PER_HOUR);
    ValueExpr {
        parts,
        value,
        trend: Some((now, slope)),
    }
}

/// The merged parts to compute per group (aliased `p0`, `p1`, …) and the
/// expression over them that gives the aggregate.
fn aggregate_expr(aggregate: Aggregate) -> (Vec<Expr>, Expr) {
    let one = |e: Expr| (vec![e.alias("p0")], col("p0"));
    let parts = |es: Vec<Expr>| -> Vec<Expr> {
        es.into_iter()
            .enumerate()
            .map(|(i, e)| e.alias(format!("p{i}")))
            .collect()
    };
    let p = |i: usize| col(format!("p{i}"));
    let n = || cast(sum(col("n")), DataType::Float64);
    let first = || first_value(col("first"), vec![col("first_ts").sort(true, false)]);
    let last = || last_value(col("last"), vec![col("last_ts").sort(true, false)]);
    match aggregate {
        Aggregate::Count => one(sum(col("n"))),
        Aggregate::Sum => one(sum(col("sum"))),
        Aggregate::Min => one(min(col("min"))),
        Aggregate::Max => one(max(col("max"))),
        Aggregate::First => one(first()),
        Aggregate::Last => one(last()),
        Aggregate::Avg => (parts(vec![sum(col("sum")), n()]), p(0) / p(1)),
        Aggregate::Stddev => {
            // Sample variance from sums; rounding can make it a hair
            // below zero for constant series, hence greatest(…, 0).
            let variance = (p(1) - p(0) * p(0) / p(2)) / nullif(p(2) - lit(1.0), lit(0.0));
            let parts = parts(vec![sum(col("sum")), sum(col("sumsq")), n()]);
            (parts, sqrt(greatest(vec![variance, lit(0.0)])))
        }
        Aggregate::Rate => {
            let ms = |e: Expr| cast(e, DataType::Int64);
            let parts = parts(vec![
                last(),
                first(),
                max(ms(col("last_ts"))),
                min(ms(col("first_ts"))),
            ]);
            let hours = cast(p(2) - p(3), DataType::Float64) / lit(MS_PER_HOUR);
            (parts, (p(0) - p(1)) / nullif(hours, lit(0.0)))
        }
        Aggregate::P50 | Aggregate::P90 | Aggregate::P95 | Aggregate::P99 => {
            let percent = aggregate.percentile().expect("a percentile");
            one(SketchQuantile::udaf(percent).call(vec![col("sketch")]))
        }
        Aggregate::Slope => {
            // Least squares: (nΣxy − ΣxΣy) / (nΣx² − (Σx)²).
            let parts = parts(vec![
                n(),
                sum(col("sx")),
                sum(col("sxx")),
                sum(col("sxy")),
                sum(col("sum")),
            ]);
            let numerator = p(0) * p(3) - p(1) * p(4);
            let denominator = p(0) * p(2) - p(1) * p(1);
            // All readings at one instant: the denominator is zero up to
            // rounding, and there is no slope.
            let spread = denominator.clone().gt(lit(1e-12) * p(0) * p(2));
            let slope = when(spread, numerator / denominator)
                .otherwise(lit(ScalarValue::Float64(None)))
                .expect("CASE with one branch");
            (parts, slope)
        }
    }
}

pub(crate) fn column<'a, T: 'static>(
    batch: &'a arrow::array::RecordBatch,
    name: &str,
) -> Result<&'a T, RulesError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            RulesError::Arrow(arrow::error::ArrowError::SchemaError(format!(
                "aggregate result has no column {name} of the expected type"
            )))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::{Direction, Grade};
    use yujing_ingest::{AreaLevel, MetricCatalog, Sensor, SensorRegistry, WindowStore, Windows};

    fn registry() -> SensorRegistry {
        let s = |id: &str, grid: &str, district: &str| Sensor {
            sensor_id: id.into(),
            kind: "air".into(),
            district: district.into(),
            district_code: "500112".into(),
            street: "Longxi".into(),
            grid: grid.into(),
            lat: 29.6,
            lon: 106.5,
            names: Default::default(),
        };
        SensorRegistry::new(vec![
            s("a", "g1", "Yubei"),
            s("b", "g1", "Yubei"),
            s("c", "g2", "Yubei"),
        ])
        .unwrap()
    }

    fn rule(aggregate: Aggregate, group_by: AreaLevel) -> Rule {
        Rule::threshold_rule(
            "r",
            "pm25",
            crate::model::WindowSpec::tumbling(60_000),
            aggregate,
            group_by,
            Direction::Above,
            &[(Grade::Blue, 1.0)],
        )
    }

    async fn run(aggregate: Aggregate, group_by: AreaLevel) -> Vec<(String, f64, i64, i64)> {
        let reg = registry();
        let cat = MetricCatalog::new(["pm25", "pm10"]);
        let mut store = WindowStore::new(Windows::tumbling(60_000, 0), &cat, &[0, 1]);
        for (sensor, metric, value) in [
            (0, 0, 10.0),
            (1, 0, 30.0),
            (0, 0, 20.0),
            (2, 0, 100.0),
            (2, 1, 999.0),
        ] {
            store.insert(sensor, metric, 1_000, value).unwrap();
        }
        let closed = store.close_until(60_000, &reg, &cat).unwrap();
        let out = WindowAggregator::new()
            .aggregate(&closed[0], &rule(aggregate, group_by))
            .await
            .unwrap();
        assert!(
            out.iter()
                .all(|a| a.window_start_ms == 0 && a.window_end_ms == 60_000)
        );
        out.into_iter()
            .map(|a| (a.group_key, a.value, a.readings, a.sensors))
            .collect()
    }

    #[tokio::test]
    async fn groups_by_area_and_filters_metric() {
        assert_eq!(
            run(Aggregate::Avg, AreaLevel::Grid).await,
            vec![("g1".into(), 20.0, 3, 2), ("g2".into(), 100.0, 1, 1)]
        );
        assert_eq!(
            run(Aggregate::Max, AreaLevel::Sensor).await,
            vec![
                ("a".into(), 20.0, 2, 1),
                ("b".into(), 30.0, 1, 1),
                ("c".into(), 100.0, 1, 1)
            ]
        );
        assert_eq!(
            run(Aggregate::Sum, AreaLevel::District).await,
            vec![("Yubei".into(), 160.0, 4, 3)]
        );
        assert_eq!(
            run(Aggregate::Min, AreaLevel::Street).await,
            vec![("Longxi".into(), 10.0, 4, 3)]
        );
        assert_eq!(run(Aggregate::Count, AreaLevel::Grid).await[0].1, 3.0);
        // Sample standard deviation of 10, 30, 20 is 10.
        assert_eq!(run(Aggregate::Stddev, AreaLevel::Grid).await[0].1, 10.0);
    }

    /// A rising gauge: 1.0 m at 00:00, 1.5 at 00:30, 2.5 at 01:00 (sensor a);
    /// two readings at one instant (b); one reading only (c).
    async fn trend(aggregate: Aggregate) -> Vec<(String, f64)> {
        const HOUR: i64 = 3_600_000;
        let reg = registry();
        let cat = MetricCatalog::new(["pm25"]);
        let mut store = WindowStore::new(Windows::tumbling(2 * HOUR, 0), &cat, &[0]);
        // Out of event-time order on purpose: first/last go by time.
        for (sensor, ts, v) in [
            (0, HOUR / 2, 1.5),
            (0, HOUR, 2.5),
            (0, 0, 1.0),
            (2, HOUR, 7.0),
            (1, HOUR, 3.0),
            (1, HOUR, 5.0),
        ] {
            store.insert(sensor, 0, ts, v).unwrap();
        }
        let closed = store.close_until(2 * HOUR, &reg, &cat).unwrap();
        let out = WindowAggregator::new()
            .aggregate(&closed[0], &rule(aggregate, AreaLevel::Sensor))
            .await
            .unwrap();
        out.into_iter().map(|a| (a.group_key, a.value)).collect()
    }

    #[tokio::test]
    async fn time_ordered_aggregates() {
        assert_eq!(
            trend(Aggregate::First).await,
            vec![("a".into(), 1.0), ("b".into(), 3.0), ("c".into(), 7.0)]
        );
        assert_eq!(
            trend(Aggregate::Last).await,
            vec![("a".into(), 2.5), ("b".into(), 3.0), ("c".into(), 7.0)]
        );
        // (2.5 - 1.0) over one hour; one instant has no rate.
        assert_eq!(trend(Aggregate::Rate).await, vec![("a".into(), 1.5)]);
        // Least squares through (0, 1.0), (0.5, 1.5), (1, 2.5): slope 1.5 per hour.
        let slope = trend(Aggregate::Slope).await;
        assert_eq!(slope.len(), 1, "one instant has no slope: {slope:?}");
        assert!((slope[0].1 - 1.5).abs() < 1e-9, "{slope:?}");
    }
}
