//! Window aggregates, computed by DataFusion.
//!
//! A closed window arrives as one Arrow batch (see
//! `yujing_ingest::window::WINDOW_SCHEMA`). For each rule on that window
//! size the aggregator plans
//!
//! ```sql
//! SELECT <group column> AS group_key, <agg>(value) AS value,
//!        count(*) AS readings, count(DISTINCT sensor_id) AS sensors
//! FROM window WHERE metric = <rule metric> GROUP BY <group column>
//! ```
//!
//! through the DataFrame API, so no rule text is ever spliced into SQL.

use arrow::array::{Array, Float64Array, Int64Array, StringArray};
use arrow::datatypes::DataType;
use datafusion::functions_aggregate::expr_fn::{avg, count, count_distinct, max, min, sum};
use datafusion::prelude::{Expr, SessionConfig, SessionContext, cast, col, lit};
use yujing_ingest::ClosedWindow;

use crate::error::RulesError;
use crate::model::{Aggregate, Rule};

/// One rule's aggregate for one group in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowAggregate {
    pub rule_id: String,
    pub group_key: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub value: f64,
    /// Readings that went into the value.
    pub readings: i64,
    /// Distinct sensors that contributed.
    pub sensors: i64,
}

/// Runs rule queries on closed windows. Cheap to clone; holds one
/// DataFusion session for the life of the pipeline.
#[derive(Clone)]
pub struct WindowAggregator {
    ctx: SessionContext,
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

    /// Aggregates for `rule` over `window`, sorted by group key.
    pub async fn aggregate(
        &self,
        window: &ClosedWindow,
        rule: &Rule,
    ) -> Result<Vec<WindowAggregate>, RulesError> {
        let value = cast(
            aggregate_expr(rule.aggregate, col("value")),
            DataType::Float64,
        );
        let batches = self
            .ctx
            .read_batch(window.batch.clone())?
            .filter(col("metric").eq(lit(rule.metric.as_str())))?
            .aggregate(
                vec![col(rule.group_by.column()).alias("group_key")],
                vec![
                    value.alias("value"),
                    count(lit(1)).alias("readings"),
                    count_distinct(col("sensor_id")).alias("sensors"),
                ],
            )?
            .sort(vec![col("group_key").sort(true, false)])?
            .collect()
            .await?;
        let mut out = Vec::new();
        for batch in batches {
            let keys = column::<StringArray>(&batch, "group_key")?;
            let values = column::<Float64Array>(&batch, "value")?;
            let readings = column::<Int64Array>(&batch, "readings")?;
            let sensors = column::<Int64Array>(&batch, "sensors")?;
            for i in 0..batch.num_rows() {
                if values.is_null(i) {
                    continue;
                }
                out.push(WindowAggregate {
                    rule_id: rule.id.clone(),
                    group_key: keys.value(i).to_owned(),
                    window_start_ms: window.start_ms,
                    window_end_ms: window.end_ms,
                    value: values.value(i),
                    readings: readings.value(i),
                    sensors: sensors.value(i),
                });
            }
        }
        Ok(out)
    }
}

fn aggregate_expr(aggregate: Aggregate, value: Expr) -> Expr {
    match aggregate {
        Aggregate::Avg => avg(value),
        Aggregate::Min => min(value),
        Aggregate::Max => max(value),
        Aggregate::Sum => sum(value),
        Aggregate::Count => count(value),
    }
}

fn column<'a, T: 'static>(
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
    use yujing_ingest::{
        AreaLevel, MetricCatalog, Sensor, SensorRegistry, TumblingWindows, WindowStore,
    };

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
        };
        SensorRegistry::new(vec![
            s("a", "g1", "Yubei"),
            s("b", "g1", "Yubei"),
            s("c", "g2", "Yubei"),
        ])
        .unwrap()
    }

    fn rule(aggregate: Aggregate, group_by: AreaLevel) -> Rule {
        Rule {
            id: "r".into(),
            description: String::new(),
            metric: "pm25".into(),
            unit: String::new(),
            window_ms: 60_000,
            aggregate,
            group_by,
            direction: Direction::Above,
            thresholds: vec![(Grade::Blue, 1.0)],
        }
    }

    async fn run(aggregate: Aggregate, group_by: AreaLevel) -> Vec<(String, f64, i64, i64)> {
        let reg = registry();
        let cat = MetricCatalog::new(["pm25", "pm10"]);
        let mut store = WindowStore::new(TumblingWindows::new(60_000, 0), &cat, &[0, 1]);
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
    }
}
