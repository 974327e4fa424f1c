//! Tumbling event-time windows.
//!
//! A window of size `S` covers `[start, start + S)` where `start` is aligned
//! to local wall-clock boundaries: with a `+08:00` offset an hourly window is
//! 08:00–09:00 Beijing time and a daily window starts at local midnight.
//!
//! A [`WindowStore`] holds the open windows of one size as compact columns
//! (sensor index, metric id, time, value; 22 bytes a reading). When the
//! watermark passes a window's end it becomes a [`ClosedWindow`]: an Arrow
//! [`RecordBatch`] enriched from the sensor registry, ready for DataFusion.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray, UInt16Array,
    UInt32Array,
};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::error::IngestError;
use crate::metric::MetricCatalog;
use crate::registry::SensorRegistry;

/// Schema of a closed window's batch, the table rules query.
pub static WINDOW_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("sensor_id", DataType::Utf8, false),
        Field::new("grid", DataType::Utf8, false),
        Field::new("street", DataType::Utf8, false),
        Field::new("district", DataType::Utf8, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
            false,
        ),
        Field::new("value", DataType::Float64, false),
    ]))
});

/// Window size and alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TumblingWindows {
    pub size_ms: i64,
    /// Local time-zone offset east of UTC, in ms (`+08:00` = 28 800 000).
    pub utc_offset_ms: i64,
}

impl TumblingWindows {
    pub fn new(size_ms: i64, utc_offset_ms: i64) -> Self {
        assert!(size_ms > 0, "window size must be positive");
        TumblingWindows {
            size_ms,
            utc_offset_ms,
        }
    }

    /// Start of the window holding `ts_ms`.
    pub fn start_of(&self, ts_ms: i64) -> i64 {
        (ts_ms + self.utc_offset_ms).div_euclid(self.size_ms) * self.size_ms - self.utc_offset_ms
    }

    /// End (exclusive) of the window holding `ts_ms`.
    pub fn end_of(&self, ts_ms: i64) -> i64 {
        self.start_of(ts_ms) + self.size_ms
    }
}

#[derive(Debug, Default)]
struct Pane {
    sensor: Vec<u32>,
    metric: Vec<u16>,
    ts: Vec<i64>,
    value: Vec<f64>,
}

/// A window whose end the watermark has passed.
#[derive(Debug, Clone)]
pub struct ClosedWindow {
    pub start_ms: i64,
    pub end_ms: i64,
    pub batch: RecordBatch,
}

/// The open windows of one size, for the metrics its rules use.
#[derive(Debug)]
pub struct WindowStore {
    windows: TumblingWindows,
    wants: Vec<bool>,
    open: BTreeMap<i64, Pane>,
    /// Every window ending at or before this has been closed.
    closed_until: i64,
}

impl WindowStore {
    /// A store keeping only readings of the metric ids in `metrics`.
    pub fn new(windows: TumblingWindows, catalog: &MetricCatalog, metrics: &[u16]) -> Self {
        let mut wants = vec![false; catalog.len()];
        for &m in metrics {
            wants[m as usize] = true;
        }
        WindowStore {
            windows,
            wants,
            open: BTreeMap::new(),
            closed_until: i64::MIN,
        }
    }

    pub fn windows(&self) -> TumblingWindows {
        self.windows
    }

    /// Whether this store keeps readings of a metric.
    pub fn wants(&self, metric: u16) -> bool {
        self.wants.get(metric as usize).copied().unwrap_or(false)
    }

    /// Add a reading. Returns the end of its window, or `Err(window_end)` when
    /// that window has already closed (the reading is late).
    pub fn insert(&mut self, sensor: u32, metric: u16, ts_ms: i64, value: f64) -> Result<i64, i64> {
        let start = self.windows.start_of(ts_ms);
        let end = start + self.windows.size_ms;
        if end <= self.closed_until {
            return Err(end);
        }
        let pane = self.open.entry(start).or_default();
        pane.sensor.push(sensor);
        pane.metric.push(metric);
        pane.ts.push(ts_ms);
        pane.value.push(value);
        Ok(end)
    }

    /// End of the earliest open window, if any.
    pub fn next_end(&self) -> Option<i64> {
        self.open.keys().next().map(|s| s + self.windows.size_ms)
    }

    /// Number of readings held in open windows.
    pub fn buffered(&self) -> usize {
        self.open.values().map(|p| p.ts.len()).sum()
    }

    /// Close every window ending at or before `watermark`, oldest first.
    pub fn close_until(
        &mut self,
        watermark: i64,
        registry: &SensorRegistry,
        catalog: &MetricCatalog,
    ) -> Result<Vec<ClosedWindow>, IngestError> {
        self.closed_until = self.closed_until.max(watermark);
        let mut out = Vec::new();
        while let Some(entry) = self.open.first_entry() {
            let start = *entry.key();
            let end = start + self.windows.size_ms;
            if end > watermark {
                break;
            }
            let pane = entry.remove();
            out.push(ClosedWindow {
                start_ms: start,
                end_ms: end,
                batch: to_batch(pane, registry, catalog)?,
            });
        }
        Ok(out)
    }
}

fn to_batch(
    pane: Pane,
    registry: &SensorRegistry,
    catalog: &MetricCatalog,
) -> Result<RecordBatch, IngestError> {
    let cols = registry.columns();
    let sensor = UInt32Array::from(pane.sensor);
    let metric = UInt16Array::from(pane.metric);
    let columns: Vec<ArrayRef> = vec![
        take(&cols.sensor_id, &sensor, None)?,
        take(&cols.grid, &sensor, None)?,
        take(&cols.street, &sensor, None)?,
        take(&cols.district, &sensor, None)?,
        take(catalog.names() as &StringArray, &metric, None)?,
        Arc::new(TimestampMillisecondArray::from(pane.ts).with_timezone("+00:00")),
        Arc::new(Float64Array::from(pane.value)),
    ];
    Ok(RecordBatch::try_new(WINDOW_SCHEMA.clone(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Sensor;

    const HOUR: i64 = 3_600_000;
    const CST: i64 = 8 * HOUR;
    // 2026-07-15T08:00:00+08:00
    const T8: i64 = 1_784_073_600_000;

    #[test]
    fn windows_align_to_local_boundaries() {
        let hourly = TumblingWindows::new(HOUR, CST);
        assert_eq!(hourly.start_of(T8), T8);
        assert_eq!(hourly.start_of(T8 + HOUR - 1), T8);
        assert_eq!(hourly.end_of(T8 + HOUR - 1), T8 + HOUR);
        assert_eq!(hourly.start_of(T8 + HOUR), T8 + HOUR);
        let daily = TumblingWindows::new(24 * HOUR, CST);
        // Local midnight of 2026-07-15 is 16:00 UTC of 07-14.
        assert_eq!(daily.start_of(T8), T8 - 8 * HOUR);
        let ten = TumblingWindows::new(10 * 60_000, CST);
        assert_eq!(ten.start_of(T8 + 25 * 60_000), T8 + 20 * 60_000);
        // Before the epoch still floors, not truncates.
        assert_eq!(TumblingWindows::new(10, 0).start_of(-1), -10);
    }

    fn fixture() -> (SensorRegistry, MetricCatalog) {
        let s = |id: &str, grid: &str| Sensor {
            sensor_id: id.into(),
            kind: "air".into(),
            district: "Yubei".into(),
            district_code: "500112".into(),
            street: "Longxi".into(),
            grid: grid.into(),
            lat: 29.6,
            lon: 106.5,
        };
        let reg = SensorRegistry::new(vec![s("a", "g1"), s("b", "g2")]).unwrap();
        (reg, MetricCatalog::new(["pm25", "noise_db"]))
    }

    #[test]
    fn store_closes_in_order_and_refuses_late_readings() {
        let (reg, cat) = fixture();
        let mut store = WindowStore::new(TumblingWindows::new(HOUR, CST), &cat, &[0]);
        assert!(store.wants(0) && !store.wants(1));
        assert_eq!(store.insert(0, 0, T8 + 10, 80.0), Ok(T8 + HOUR));
        assert_eq!(store.insert(1, 0, T8 + HOUR + 5, 90.0), Ok(T8 + 2 * HOUR));
        assert_eq!(store.insert(1, 0, T8 + 20, 70.0), Ok(T8 + HOUR));
        assert_eq!(store.next_end(), Some(T8 + HOUR));
        assert_eq!(store.buffered(), 3);

        assert!(
            store
                .close_until(T8 + HOUR - 1, &reg, &cat)
                .unwrap()
                .is_empty()
        );
        let closed = store.close_until(T8 + HOUR, &reg, &cat).unwrap();
        assert_eq!(closed.len(), 1);
        let w = &closed[0];
        assert_eq!((w.start_ms, w.end_ms), (T8, T8 + HOUR));
        assert_eq!(w.batch.num_rows(), 2);
        let grid = w.batch.column_by_name("grid").unwrap();
        let grid = grid.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(grid.iter().flatten().collect::<Vec<_>>(), ["g1", "g2"]);
        let metric = w.batch.column_by_name("metric").unwrap();
        let metric = metric.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(metric.value(0), "pm25");

        // The first hour is closed: a reading for it is late.
        assert_eq!(store.insert(0, 0, T8 + 30, 1.0), Err(T8 + HOUR));
        assert_eq!(store.next_end(), Some(T8 + 2 * HOUR));
    }
}
