//! A closed window as an Arrow batch: the schema DataFusion aggregates,
//! and the pane states turned into its columns.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, BinaryArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt16Array, UInt32Array,
};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rustc_hash::FxHashMap;

use super::{Pane, PartialState};
use crate::error::IngestError;
use crate::metric::MetricCatalog;
use crate::registry::SensorRegistry;

/// Schema of a closed window's batch: one row per sensor and metric,
/// holding the [`PartialState`] merged over the window's panes. `x` is event time in hours since
/// the store's origin (only differences of `x` matter).
pub static WINDOW_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = || DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into()));
    let f64 = |name: &str| Field::new(name, DataType::Float64, false);
    Arc::new(Schema::new(vec![
        Field::new("sensor_id", DataType::Utf8, false),
        Field::new("grid", DataType::Utf8, false),
        Field::new("street", DataType::Utf8, false),
        Field::new("district", DataType::Utf8, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("n", DataType::Int64, false),
        f64("sum"),
        f64("sumsq"),
        f64("min"),
        f64("max"),
        Field::new("first_ts", ts(), false),
        f64("first"),
        Field::new("last_ts", ts(), false),
        f64("last"),
        f64("sx"),
        f64("sxx"),
        f64("sxy"),
        // Quantile sketch bytes, kept only for stores with percentile rules.
        Field::new("sketch", DataType::Binary, true),
    ]))
});

pub(super) fn to_batch(
    panes: &[&Pane],
    registry: &SensorRegistry,
    catalog: &MetricCatalog,
) -> Result<RecordBatch, IngestError> {
    // Merge the panes (oldest first) into one state per sensor and metric.
    let largest = panes.iter().map(|p| p.states.len()).max().unwrap_or(0);
    let mut merged: FxHashMap<(u32, u16), PartialState> =
        FxHashMap::with_capacity_and_hasher(largest, Default::default());
    for pane in panes {
        for (key, state) in &pane.states {
            merged
                .entry(*key)
                .and_modify(|m| m.merge(state))
                .or_insert_with(|| state.clone());
        }
    }
    states_batch(merged, registry, catalog)
}

/// One row per (sensor, metric) state, in [`WINDOW_SCHEMA`].
pub(crate) fn states_batch(
    entries: impl IntoIterator<Item = ((u32, u16), PartialState)>,
    registry: &SensorRegistry,
    catalog: &MetricCatalog,
) -> Result<RecordBatch, IngestError> {
    let (mut sensor, mut metric, mut states) = (Vec::new(), Vec::new(), Vec::new());
    for ((s, m), state) in entries {
        sensor.push(s);
        metric.push(m);
        states.push(state);
    }
    let f64s = |f: fn(&PartialState) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(states.iter().map(f)))
    };
    let times = |f: fn(&PartialState) -> i64| -> ArrayRef {
        Arc::new(
            TimestampMillisecondArray::from_iter_values(states.iter().map(f))
                .with_timezone("+00:00"),
        )
    };
    let cols = registry.columns();
    let sensor = UInt32Array::from(sensor);
    let metric = UInt16Array::from(metric);
    let columns: Vec<ArrayRef> = vec![
        take(&cols.sensor_id, &sensor, None)?,
        take(&cols.grid, &sensor, None)?,
        take(&cols.street, &sensor, None)?,
        take(&cols.district, &sensor, None)?,
        take(catalog.names() as &StringArray, &metric, None)?,
        Arc::new(Int64Array::from_iter_values(states.iter().map(|s| s.n))),
        f64s(|s| s.sum),
        f64s(|s| s.sumsq),
        f64s(|s| s.min),
        f64s(|s| s.max),
        times(|s| s.first_ts),
        f64s(|s| s.first),
        times(|s| s.last_ts),
        f64s(|s| s.last),
        f64s(|s| s.sx),
        f64s(|s| s.sxx),
        f64s(|s| s.sxy),
        Arc::new(BinaryArray::from_iter(
            states
                .iter()
                .map(|s| s.sketch.as_ref().map(|k| k.to_bytes())),
        )),
    ];
    Ok(RecordBatch::try_new(WINDOW_SCHEMA.clone(), columns)?)
}
