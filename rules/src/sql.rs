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
use yujing_ingest::window::WINDOW_SCHEMA;

use crate::aggregate::{WindowAggregate, WindowAggregator, column};
use crate::aqi::ChinaIaqi;
use crate::error::RulesError;
use crate::model::Rule;
use crate::percentile::SketchQuantile;
use crate::window_set::{PerWindow, WindowSet};

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

/// The query rewritten to grade many windows at once, if that gives the
/// same answer as running it per window: a single `SELECT … FROM window …
/// GROUP BY …` (no joins, subqueries, set operations, window functions or
/// LIMIT) gets `window_end` added to its GROUP BY and its output.
/// Anything else runs once per window.
pub(crate) fn batched_sql(query: &str) -> Option<String> {
    use datafusion::sql::sqlparser::ast::{
        Expr as SqlExpr, GroupByExpr, Ident, SelectItem, SetExpr, Statement, TableFactor,
    };
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::parser::Parser;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, query).tokenize().ok()?;
    let keywords: Vec<Keyword> = tokens
        .iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w.keyword),
            _ => None,
        })
        .collect();
    let count = |k: Keyword| keywords.iter().filter(|&&x| x == k).count();
    let forbidden = [
        Keyword::JOIN,
        Keyword::LIMIT,
        Keyword::OFFSET,
        Keyword::FETCH,
        Keyword::OVER,
        Keyword::UNION,
        Keyword::INTERSECT,
        Keyword::EXCEPT,
        Keyword::WITH,
        Keyword::QUALIFY,
    ];
    if count(Keyword::SELECT) != 1 || forbidden.iter().any(|&k| count(k) > 0) {
        return None;
    }
    let mut statements = Parser::parse_sql(&dialect, query).ok()?;
    let [Statement::Query(q)] = statements.as_mut_slice() else {
        return None;
    };
    let SetExpr::Select(select) = q.body.as_mut() else {
        return None;
    };
    let [from] = select.from.as_slice() else {
        return None;
    };
    let TableFactor::Table { name, .. } = &from.relation else {
        return None;
    };
    if !from.joins.is_empty() || !name.to_string().eq_ignore_ascii_case("window") {
        return None;
    }
    let GroupByExpr::Expressions(groups, _) = &mut select.group_by else {
        return None;
    };
    if groups.is_empty() {
        return None;
    }
    let window_end = || SqlExpr::Identifier(Ident::new("window_end"));
    groups.push(window_end());
    select
        .projection
        .push(SelectItem::UnnamedExpr(window_end()));
    Some(statements[0].to_string())
}

impl WindowAggregator {
    /// Run a SQL rule's query on every window of `set`: once for all of
    /// them when the query allows it, else once per window.
    pub(crate) async fn sql_set(
        &self,
        set: &WindowSet,
        rule: &Rule,
        query: &str,
    ) -> Result<PerWindow, RulesError> {
        let mut out = PerWindow::new();
        match batched_sql(query) {
            Some(batched) if set.len() > 1 => {
                for a in self
                    .sql_rows(set.batch.clone(), rule, &batched, None)
                    .await?
                {
                    let end = a.window_end_ms;
                    out.entry(end).or_default().push(WindowAggregate {
                        window_start_ms: set.start_of(end),
                        ..a
                    });
                }
            }
            _ => {
                for w in set.windows() {
                    let rows = self
                        .sql_rows(w.batch.clone(), rule, query, Some((w.start_ms, w.end_ms)))
                        .await?;
                    out.insert(w.end_ms, rows);
                }
            }
        }
        Ok(out)
    }

    /// Run `query` over `batch`; rows carry `window` as their bounds, or
    /// without it the `window_end` column the batched query returns.
    async fn sql_rows(
        &self,
        batch: RecordBatch,
        rule: &Rule,
        query: &str,
        window: Option<(i64, i64)>,
    ) -> Result<Vec<WindowAggregate>, RulesError> {
        let ctx = session(batch)?;
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
        if window.is_none() {
            select.push(col("window_end"));
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
            let ends = ints("window_end", window.is_none())?;
            for i in 0..b.num_rows() {
                if keys.is_null(i) || values.is_null(i) || !values.value(i).is_finite() {
                    continue;
                }
                let bounds = window.unwrap_or_else(|| {
                    let end = ends.map_or(0, |e| e.value(i));
                    (end, end)
                });
                out.push(WindowAggregate::plain(
                    rule,
                    keys.value(i).to_owned(),
                    bounds,
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

    #[test]
    fn only_simple_grouped_queries_are_batched() {
        let q = batched_sql(
            "SELECT grid AS group_key, max(max) AS value FROM window WHERE metric = 'pm25' GROUP BY grid HAVING count(*) >= 2",
        )
        .unwrap();
        assert!(q.contains("GROUP BY grid, window_end"), "{q}");
        assert!(q.contains("window_end FROM window"), "{q}");
        for query in [
            // No GROUP BY: one aggregate over the whole window.
            "SELECT 'city' AS group_key, avg(sum / n) AS value FROM window",
            "SELECT grid AS group_key, max(max) AS value FROM window GROUP BY grid LIMIT 3",
            "SELECT grid AS group_key, max(max) AS value FROM window WHERE max > (SELECT avg(max) FROM window) GROUP BY grid",
            "SELECT a.grid AS group_key, max(a.max) AS value FROM window a JOIN window b ON a.grid = b.grid GROUP BY a.grid",
            "SELECT grid AS group_key, rank() OVER (ORDER BY max) AS value FROM window GROUP BY grid, max",
        ] {
            assert_eq!(batched_sql(query), None, "{query}");
        }
    }
}
