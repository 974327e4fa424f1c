//! SQL rules: the escape hatch for what the short form cannot say.
//!
//! A rule's `sql:` is a DataFusion query over the table `window`: the
//! closed window's partial states, one row per sensor and metric, with the
//! columns of `yujing_ingest::window::WINDOW_SCHEMA` (`sensor_id`, `grid`,
//! `street`, `district`, `metric`, `n`, `sum`, `sumsq`, `min`, `max`,
//! `first_ts`, `first`, `last_ts`, `last`, `sx`, `sxx`, `sxy`, `sketch`).
//! It returns one row per group: `group_key` (text) and `value` (a number),
//! optionally `readings` and `sensors`. The functions `china_iaqi(item, c)`
//! and `sketch_p50/p90/p95/p99(sketch)` are available.
//!
//! Queries are parsed and planned against an empty window when the rules
//! load, so a typo or an unknown column is a `rules check` error, not a
//! failure at the first window.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::DataType;
use datafusion::prelude::{SessionConfig, SessionContext, cast, col};
use yujing_ingest::ClosedWindow;
use yujing_ingest::window::WINDOW_SCHEMA;

use crate::aggregate::{WindowAggregate, WindowAggregator, column};
use crate::aqi::ChinaIaqi;
use crate::error::RulesError;
use crate::model::Rule;
use crate::percentile::SketchQuantile;

/// A session with the window table and yujing's functions.
fn session(batch: RecordBatch) -> Result<SessionContext, datafusion::error::DataFusionError> {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    ctx.register_udf(ChinaIaqi::udf());
    for p in [50, 90, 95, 99] {
        ctx.register_udaf(SketchQuantile::udaf(p));
    }
    ctx.register_batch("window", batch)?;
    Ok(ctx)
}

/// Drive a future that never waits on I/O (planning over in-memory
/// tables) to completion without a runtime: loading rules is synchronous.
fn run_now<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// Parse and plan `query` against an empty window; the error says what
/// is wrong in DataFusion's words.
pub fn check(query: &str) -> Result<(), String> {
    let ctx = session(RecordBatch::new_empty(WINDOW_SCHEMA.clone())).map_err(|e| e.to_string())?;
    let df = run_now(ctx.sql(query)).map_err(|e| format!("sql: {e}"))?;
    let schema = df.schema();
    let field = |name: &str| schema.field_with_unqualified_name(name).ok();
    match field("group_key") {
        Some(f)
            if matches!(
                f.data_type(),
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
            ) => {}
        Some(f) => {
            return Err(format!(
                "sql: `group_key` must be text, not {}",
                f.data_type()
            ));
        }
        None => return Err("sql: the query must return a `group_key` column (text)".into()),
    }
    match field("value") {
        Some(f) if f.data_type().is_numeric() => Ok(()),
        Some(f) => Err(format!(
            "sql: `value` must be a number, not {}",
            f.data_type()
        )),
        None => Err("sql: the query must return a `value` column (a number)".into()),
    }
}

impl WindowAggregator {
    /// Run a SQL rule's query on a closed window.
    pub(crate) async fn sql(
        &self,
        window: &ClosedWindow,
        rule: &Rule,
        query: &str,
    ) -> Result<Vec<WindowAggregate>, RulesError> {
        let ctx = session(window.batch.clone())?;
        let df = ctx.sql(query).await?;
        let has = |name: &str| df.schema().field_with_unqualified_name(name).is_ok();
        let (has_readings, has_sensors) = (has("readings"), has("sensors"));
        let mut select = vec![
            cast(col("group_key"), DataType::Utf8).alias("group_key"),
            cast(col("value"), DataType::Float64).alias("value"),
        ];
        if has_readings {
            select.push(cast(col("readings"), DataType::Int64).alias("readings"));
        }
        if has_sensors {
            select.push(cast(col("sensors"), DataType::Int64).alias("sensors"));
        }
        let batches = df
            .select(select)?
            .sort(vec![col("group_key").sort(true, false)])?
            .collect()
            .await?;
        let mut out = Vec::new();
        for b in batches {
            let keys = column::<StringArray>(&b, "group_key")?;
            let values = column::<Float64Array>(&b, "value")?;
            let ints = |name: &str, present: bool| -> Result<Option<&Int64Array>, RulesError> {
                if present {
                    column::<Int64Array>(&b, name).map(Some)
                } else {
                    Ok(None)
                }
            };
            let readings = ints("readings", has_readings)?;
            let sensors = ints("sensors", has_sensors)?;
            for i in 0..b.num_rows() {
                if keys.is_null(i) || values.is_null(i) || !values.value(i).is_finite() {
                    continue;
                }
                out.push(WindowAggregate::plain(
                    rule,
                    keys.value(i).to_owned(),
                    (window.start_ms, window.end_ms),
                    values.value(i),
                    readings.map_or(0, |r| r.value(i)),
                    sensors.map_or(0, |s| s.value(i)),
                ));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_queries_against_the_window_table() {
        check("SELECT grid AS group_key, max(max) - min(min) AS value FROM window WHERE metric = 'pm25' GROUP BY grid").unwrap();
        let e = check("SELEC grid FROM window").unwrap_err();
        assert!(e.starts_with("sql: "), "{e}");
        let e = check("SELECT grid AS group_key, avg(pm25) AS value FROM window GROUP BY grid")
            .unwrap_err();
        assert!(e.contains("pm25"), "{e}");
        let e = check("SELECT grid AS group_key FROM window").unwrap_err();
        assert!(e.contains("`value`"), "{e}");
        let e = check("SELECT 1 AS group_key, 2.0 AS value").unwrap_err();
        assert!(e.contains("must be text"), "{e}");
    }
}
