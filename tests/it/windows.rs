//! Window results must equal a straightforward computation: every reading
//! assigned to its windows and one plain DataFusion GROUP BY over all of
//! them. Real data: Beijing hourly air quality, December 2013, three
//! stations (a sample of ../shared/data/beijing-air, UCI, in tests/data).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::support::beijing::StationReading as Reading;
use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::functions_aggregate::expr_fn::{
    avg, count, first_value, last_value, max, min, regr_slope, stddev, sum,
};
use datafusion::prelude::{Expr, SessionContext, cast, col, lit};
use yujing_ingest::{AreaLevel, MetricCatalog, SensorRegistry, WindowStore, Windows};
use yujing_rules::{Aggregate, Direction, Grade, Rule, WindowAggregator, WindowSpec};

const HOUR: i64 = 3_600_000;
const CST: i64 = 8 * HOUR;

fn readings() -> Vec<Reading> {
    let text = include_str!("../data/beijing-air-2013-12.csv");
    crate::support::beijing::station_readings(text, &["pm25", "pm10", "no2"], 0, |_, v| v)
}

fn grid_of(station: &str) -> &'static str {
    if station == "Guanyuan" {
        "west"
    } else {
        "east"
    }
}

fn registry() -> SensorRegistry {
    crate::support::beijing::stations(|id| ("centre".to_owned(), grid_of(id).to_owned()))
}

fn rule(metric: &str, aggregate: Aggregate, group_by: AreaLevel, window: WindowSpec) -> Rule {
    Rule::threshold_rule(
        &format!("{metric}-{}-{}", aggregate.as_str(), group_by.as_str()),
        metric,
        window,
        aggregate,
        group_by,
        Direction::Above,
        &[(Grade::Blue, 0.0)],
    )
}

type Results = BTreeMap<(String, i64, String), f64>;

/// yujing's way: partial states per pane, merged by DataFusion per window.
async fn through_yujing(data: &[Reading], spec: WindowSpec, rules: &[Rule]) -> Results {
    let reg = registry();
    let catalog = MetricCatalog::new(["pm25", "pm10", "no2"]);
    let windows = Windows::hopping(spec.size_ms, spec.slide_ms, CST);
    let mut store = WindowStore::new(windows, &catalog, &[0, 1, 2]).with_sketches(true);
    // Stations arrive interleaved, not sorted by time.
    for r in data.iter().rev() {
        let sensor = reg.index_of(&r.station).unwrap();
        store
            .insert(sensor, catalog.id(r.metric).unwrap(), r.ts, r.value)
            .unwrap();
    }
    let closed = store.close_until(i64::MAX / 2, &reg, &catalog).unwrap();
    let aggregator = WindowAggregator::new();
    let mut out = Results::new();
    for w in &closed {
        for rule in rules {
            for a in aggregator.aggregate(w, rule).await.unwrap() {
                out.insert((rule.id.clone(), w.start_ms, a.group_key), a.value);
            }
        }
    }
    out
}

/// The straightforward way: copy each reading into every window holding
/// it, then one GROUP BY window, group over the raw readings.
async fn straightforward(data: &[Reading], spec: WindowSpec, rules: &[Rule]) -> Results {
    let windows = Windows::hopping(spec.size_ms, spec.slide_ms, CST);
    let (mut starts, mut sensors, mut grids, mut metrics, mut ts, mut values) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for r in data {
        for end in windows.ends_of(r.ts) {
            starts.push(end - spec.size_ms);
            sensors.push(r.station.clone());
            grids.push(grid_of(&r.station).to_owned());
            metrics.push(r.metric);
            ts.push(r.ts);
            values.push(r.value);
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("window_start", DataType::Int64, false),
        Field::new("sensor_id", DataType::Utf8, false),
        Field::new("grid", DataType::Utf8, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("value", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(starts)),
            Arc::new(StringArray::from(sensors)),
            Arc::new(StringArray::from(grids)),
            Arc::new(StringArray::from(metrics)),
            Arc::new(Int64Array::from(ts)),
            Arc::new(Float64Array::from(values)),
        ],
    )
    .unwrap();
    let ctx = SessionContext::new();
    let mut out = Results::new();
    for rule in rules {
        if let Some(percent) = rule.aggregate.percentile() {
            // Exact nearest-rank percentile over the raw readings.
            let mut groups: BTreeMap<(i64, String), Vec<f64>> = BTreeMap::new();
            for r in data.iter().filter(|r| r.metric == rule.metric) {
                let key = match rule.group_by {
                    AreaLevel::Grid => grid_of(&r.station).to_owned(),
                    _ => r.station.clone(),
                };
                for end in windows.ends_of(r.ts) {
                    groups
                        .entry((end - spec.size_ms, key.clone()))
                        .or_default()
                        .push(r.value);
                }
            }
            for ((start, key), mut values) in groups {
                values.sort_by(f64::total_cmp);
                let rank = (percent as f64 / 100.0 * (values.len() - 1) as f64).round() as usize;
                out.insert((rule.id.clone(), start, key), values[rank]);
            }
            continue;
        }
        let by_ts = || vec![col("ts").sort(true, false)];
        let hours = || cast(col("ts"), DataType::Float64) / lit(HOUR as f64);
        let value: Expr = match rule.aggregate {
            Aggregate::Avg => avg(col("value")),
            Aggregate::Min => min(col("value")),
            Aggregate::Max => max(col("value")),
            Aggregate::Sum => sum(col("value")),
            Aggregate::Count => cast(count(col("value")), DataType::Float64),
            Aggregate::Stddev => stddev(col("value")),
            Aggregate::First => first_value(col("value"), by_ts()),
            Aggregate::Last => last_value(col("value"), by_ts()),
            Aggregate::Slope => regr_slope(col("value"), hours()),
            Aggregate::P50 | Aggregate::P90 | Aggregate::P95 | Aggregate::P99 => {
                unreachable!("handled above")
            }
            Aggregate::Rate => {
                (last_value(col("value"), by_ts()) - first_value(col("value"), by_ts()))
                    / ((cast(max(col("ts")) - min(col("ts")), DataType::Float64))
                        / lit(HOUR as f64))
            }
        };
        let batches = ctx
            .read_batch(batch.clone())
            .unwrap()
            .filter(col("metric").eq(lit(rule.metric.as_str())))
            .unwrap()
            .aggregate(
                vec![
                    col("window_start"),
                    col(rule.group_by.column()).alias("group_key"),
                ],
                vec![value.alias("value")],
            )
            .unwrap()
            .collect()
            .await
            .unwrap();
        for b in batches {
            let starts = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let keys = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
            let vals = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
            for i in 0..b.num_rows() {
                if vals.is_valid(i) && vals.value(i).is_finite() {
                    out.insert(
                        (rule.id.clone(), starts.value(i), keys.value(i).to_owned()),
                        vals.value(i),
                    );
                }
            }
        }
    }
    out
}

async fn check(spec: WindowSpec) {
    let data = readings();
    assert!(data.len() > 6_000, "sample loaded: {}", data.len());
    let mut rules = Vec::new();
    for aggregate in [
        Aggregate::Avg,
        Aggregate::Min,
        Aggregate::Max,
        Aggregate::Sum,
        Aggregate::Count,
        Aggregate::Stddev,
        Aggregate::Slope,
    ] {
        rules.push(rule("pm25", aggregate, AreaLevel::Sensor, spec));
        rules.push(rule("pm25", aggregate, AreaLevel::Grid, spec));
    }
    // Order statistics at sensor level: a grid has two readings per hour and
    // which of two equal timestamps is "first" is not defined.
    for aggregate in [Aggregate::First, Aggregate::Last, Aggregate::Rate] {
        rules.push(rule("pm25", aggregate, AreaLevel::Sensor, spec));
    }
    rules.push(rule("pm10", Aggregate::Avg, AreaLevel::Grid, spec));
    rules.push(rule("no2", Aggregate::Max, AreaLevel::Sensor, spec));
    // Percentiles come from sketches: within their 1 % relative accuracy.
    for aggregate in [
        Aggregate::P50,
        Aggregate::P90,
        Aggregate::P95,
        Aggregate::P99,
    ] {
        rules.push(rule("pm25", aggregate, AreaLevel::Sensor, spec));
        rules.push(rule("pm25", aggregate, AreaLevel::Grid, spec));
    }

    let ours = through_yujing(&data, spec, &rules).await;
    let reference = straightforward(&data, spec, &rules).await;
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>(),
        "the same windows and groups"
    );
    for (key, expected) in &reference {
        let got = ours[key];
        let approximate = rules
            .iter()
            .any(|r| r.id == key.0 && r.aggregate.percentile().is_some());
        let tolerance = if approximate {
            yujing_ingest::sketch::RELATIVE_ACCURACY * expected.abs() + 1e-9
        } else {
            1e-9 * expected.abs().max(1.0)
        };
        assert!(
            (got - expected).abs() <= tolerance,
            "{key:?}: yujing {got}, GROUP BY {expected}"
        );
    }
}

#[tokio::test]
async fn tumbling_six_hour_windows_match_a_plain_group_by() {
    check(WindowSpec {
        size_ms: 6 * HOUR,
        slide_ms: 6 * HOUR,
    })
    .await;
}

#[tokio::test]
async fn moving_24h_window_every_6h_matches_a_plain_group_by() {
    check(WindowSpec {
        size_ms: 24 * HOUR,
        slide_ms: 6 * HOUR,
    })
    .await;
}
