//! Event-time windows: tumbling and hopping.
//!
//! A window of size `S` covers `[start, start + S)`. Windows start every
//! `slide` (`slide = S` for tumbling windows), aligned to local wall-clock
//! boundaries: with a `+08:00` offset an hourly window is 08:00–09:00
//! Beijing time and a daily window starts at local midnight. A 24 h window
//! sliding by 1 h is the moving average the AQI needs, updated hourly.
//!
//! A [`WindowStore`] never keeps raw readings. Each reading is folded into
//! the [`PartialState`] of its pane (one `slide` of time) for its sensor and
//! metric: count, sum, sum of squares, min, max, first and last by event
//! time, and the sums a least-squares slope needs. These states merge, so a
//! window is the merge of the panes it covers. When the watermark passes a
//! window's end, the pane states it covers become one [`ClosedWindow`]: an
//! Arrow [`RecordBatch`] with one row per pane, sensor and metric, enriched
//! from the sensor registry, on which DataFusion computes the final
//! aggregates. A pane is dropped once the last window covering it has
//! closed, so memory grows with sensors × open panes, not with readings.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, BinaryArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt16Array, UInt32Array,
};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rustc_hash::FxHashMap;

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

pub(crate) const MS_PER_HOUR: f64 = 3_600_000.0;

/// Mergeable summary of the readings of one sensor and metric in one pane.
/// In a checkpoint it is a compact array with the floats as their bits,
/// so a restored state is exactly the saved one.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(into = "StateRecord", from = "StateRecord")]
pub struct PartialState {
    pub n: i64,
    pub sum: f64,
    pub sumsq: f64,
    pub min: f64,
    pub max: f64,
    pub first_ts: i64,
    pub first: f64,
    pub last_ts: i64,
    pub last: f64,
    /// Σx, Σx², Σxy with x = hours since the store's origin, y = value.
    pub sx: f64,
    pub sxx: f64,
    pub sxy: f64,
    /// Quantile sketch, when the store's rules need percentiles.
    pub sketch: Option<Box<crate::sketch::Sketch>>,
}

/// [`PartialState`] on disk: count, first and last times, the nine floats
/// as IEEE-754 bits (sum, sumsq, min, max, first, last, sx, sxx, sxy), the
/// sketch.
#[derive(serde::Serialize, serde::Deserialize)]
struct StateRecord(i64, i64, i64, [u64; 9], Option<Box<crate::sketch::Sketch>>);

impl From<PartialState> for StateRecord {
    fn from(s: PartialState) -> Self {
        let floats = [
            s.sum, s.sumsq, s.min, s.max, s.first, s.last, s.sx, s.sxx, s.sxy,
        ];
        StateRecord(
            s.n,
            s.first_ts,
            s.last_ts,
            floats.map(f64::to_bits),
            s.sketch,
        )
    }
}

impl From<StateRecord> for PartialState {
    fn from(StateRecord(n, first_ts, last_ts, bits, sketch): StateRecord) -> Self {
        let [sum, sumsq, min, max, first, last, sx, sxx, sxy] = bits.map(f64::from_bits);
        PartialState {
            n,
            sum,
            sumsq,
            min,
            max,
            first_ts,
            first,
            last_ts,
            last,
            sx,
            sxx,
            sxy,
            sketch,
        }
    }
}

impl PartialState {
    pub(crate) fn new(ts_ms: i64, value: f64, x: f64) -> Self {
        PartialState {
            n: 1,
            sum: value,
            sumsq: value * value,
            min: value,
            max: value,
            first_ts: ts_ms,
            first: value,
            last_ts: ts_ms,
            last: value,
            sx: x,
            sxx: x * x,
            sxy: x * value,
            sketch: None,
        }
    }

    /// Fold in the state of a later pane (ties in time keep `self`'s).
    pub fn merge(&mut self, other: &PartialState) {
        self.n += other.n;
        self.sum += other.sum;
        self.sumsq += other.sumsq;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.first_ts < self.first_ts {
            self.first_ts = other.first_ts;
            self.first = other.first;
        }
        if other.last_ts > self.last_ts {
            self.last_ts = other.last_ts;
            self.last = other.last;
        }
        self.sx += other.sx;
        self.sxx += other.sxx;
        self.sxy += other.sxy;
        if let Some(o) = &other.sketch {
            self.sketch.get_or_insert_with(Default::default).merge(o);
        }
    }

    /// Move the regression sums to a time axis whose zero lies `d` hours
    /// earlier (every x grows by d).
    pub(crate) fn shift_x(&mut self, d: f64) {
        let n = self.n as f64;
        self.sxx += 2.0 * d * self.sx + n * d * d;
        self.sxy += d * self.sum;
        self.sx += n * d;
    }

    pub(crate) fn add(&mut self, ts_ms: i64, value: f64, x: f64) {
        self.n += 1;
        self.sum += value;
        self.sumsq += value * value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        // Ties keep the reading that arrived first.
        if ts_ms < self.first_ts {
            self.first_ts = ts_ms;
            self.first = value;
        }
        if ts_ms > self.last_ts {
            self.last_ts = ts_ms;
            self.last = value;
        }
        self.sx += x;
        self.sxx += x * x;
        self.sxy += x * value;
    }
}

/// Window size, slide and alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Windows {
    pub size_ms: i64,
    /// Time between window starts; equals `size_ms` for tumbling windows.
    pub slide_ms: i64,
    /// Local time-zone offset east of UTC, in ms (`+08:00` = 28 800 000).
    pub utc_offset_ms: i64,
}

impl Windows {
    /// Tumbling windows: each reading in exactly one window.
    pub fn tumbling(size_ms: i64, utc_offset_ms: i64) -> Self {
        Self::hopping(size_ms, size_ms, utc_offset_ms)
    }

    /// Hopping windows of `size_ms` starting every `slide_ms`; `size_ms`
    /// must be a multiple of `slide_ms`.
    pub fn hopping(size_ms: i64, slide_ms: i64, utc_offset_ms: i64) -> Self {
        assert!(
            slide_ms > 0 && size_ms >= slide_ms && size_ms % slide_ms == 0,
            "window size must be a positive multiple of the slide"
        );
        Windows {
            size_ms,
            slide_ms,
            utc_offset_ms,
        }
    }

    /// Start of the pane (and of the latest window) holding `ts_ms`.
    pub fn pane_of(&self, ts_ms: i64) -> i64 {
        (ts_ms + self.utc_offset_ms).div_euclid(self.slide_ms) * self.slide_ms - self.utc_offset_ms
    }

    /// End of the last window holding `ts_ms`: after it closes, the reading
    /// is needed no more.
    pub fn last_end_of(&self, ts_ms: i64) -> i64 {
        self.pane_of(ts_ms) + self.size_ms
    }

    /// Ends of every window holding `ts_ms`, earliest first.
    pub fn ends_of(&self, ts_ms: i64) -> impl Iterator<Item = i64> + use<> {
        let pane = self.pane_of(ts_ms);
        let slide = self.slide_ms;
        (1..=self.size_ms / self.slide_ms).map(move |k| pane + k * slide)
    }
}

/// Partial states of one pane, keyed by (sensor index, metric id).
#[derive(Debug, Default)]
struct Pane {
    states: FxHashMap<(u32, u16), PartialState>,
}

/// A window whose end the watermark has passed.
#[derive(Debug, Clone)]
pub struct ClosedWindow {
    pub start_ms: i64,
    pub end_ms: i64,
    pub batch: RecordBatch,
    /// Emitted before: this is the window again, updated by readings that
    /// arrived late but within the allowed lateness.
    pub correction: bool,
    /// Event time at which the regression sums' `x` (hours) is zero.
    pub x_origin_ms: i64,
}

/// One sensor's state of one metric in a pane: (sensor index, metric id,
/// state).
pub type SensorState = (u32, u16, PartialState);

/// A [`WindowStore`]'s contents in a checkpoint: per pane start, the
/// (sensor index, metric id, state) triples.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoreSnapshot {
    /// (pane start, its states).
    pub panes: Vec<(i64, Vec<SensorState>)>,
    pub closed_until: i64,
    pub dirty: Vec<i64>,
    pub origin_ms: Option<i64>,
}

/// The open windows of one size and slide, for the metrics its rules use.
#[derive(Debug)]
pub struct WindowStore {
    windows: Windows,
    wants: Vec<bool>,
    /// Pane start → readings in `[start, start + slide)`.
    panes: BTreeMap<i64, Pane>,
    /// Every window ending at or before this has been closed.
    closed_until: i64,
    /// Closed windows stay correctable this long past the watermark.
    lateness_ms: i64,
    /// Ends of closed windows that late readings changed: re-emit them.
    dirty: BTreeSet<i64>,
    /// Origin of the slope's time axis, set by the first reading.
    origin_ms: Option<i64>,
    /// Largest pane seen, to size new panes without rehashing.
    pane_hint: usize,
    /// Keep a quantile sketch in every state (for percentile rules).
    sketches: bool,
}

impl WindowStore {
    /// A store keeping only readings of the metric ids in `metrics`.
    pub fn new(windows: Windows, catalog: &MetricCatalog, metrics: &[u16]) -> Self {
        let mut wants = vec![false; catalog.len()];
        for &m in metrics {
            wants[m as usize] = true;
        }
        WindowStore {
            windows,
            wants,
            panes: BTreeMap::new(),
            closed_until: i64::MIN,
            lateness_ms: 0,
            dirty: BTreeSet::new(),
            origin_ms: None,
            pane_hint: 0,
            sketches: false,
        }
    }

    /// Keep readings of exactly these metric ids from now on (a rules
    /// reload changed the rules on this store's windows).
    pub fn set_metrics(&mut self, catalog: &MetricCatalog, metrics: &[u16]) {
        self.wants = vec![false; catalog.len()];
        for &m in metrics {
            self.wants[m as usize] = true;
        }
    }

    /// Start (or stop) keeping sketches in new states.
    pub fn set_sketches(&mut self, sketches: bool) {
        self.sketches = sketches;
    }

    /// Keep quantile sketches in the states (costs memory per state: only
    /// for stores whose rules use percentiles).
    pub fn with_sketches(mut self, sketches: bool) -> Self {
        self.sketches = sketches;
        self
    }

    /// Keep closed windows correctable for `lateness_ms` after the watermark
    /// passed them. Capped at the slide, so only the latest closed window
    /// can be corrected and corrections never arrive out of order.
    pub fn with_lateness(mut self, lateness_ms: i64) -> Self {
        self.lateness_ms = lateness_ms.clamp(0, self.windows.slide_ms);
        self
    }

    /// Windows ending at or before this can no longer change.
    fn final_until(&self) -> i64 {
        self.closed_until.saturating_sub(self.lateness_ms)
    }

    pub fn windows(&self) -> Windows {
        self.windows
    }

    /// Whether this store keeps readings of a metric.
    pub fn wants(&self, metric: u16) -> bool {
        self.wants.get(metric as usize).copied().unwrap_or(false)
    }

    /// Add a reading. Returns the end of the last window holding it, or
    /// `Err(that end)` when every window holding it is closed beyond the
    /// allowed lateness (the reading is late). With hopping windows a
    /// reading whose earlier windows closed still counts in the later ones;
    /// a closed window within the lateness is marked for a correction.
    pub fn insert(&mut self, sensor: u32, metric: u16, ts_ms: i64, value: f64) -> Result<i64, i64> {
        let pane_start = self.windows.pane_of(ts_ms);
        let last_end = pane_start + self.windows.size_ms;
        if last_end <= self.final_until() {
            return Err(last_end);
        }
        if pane_start + self.windows.slide_ms <= self.closed_until {
            let (final_until, closed_until) = (self.final_until(), self.closed_until);
            self.dirty.extend(
                self.windows
                    .ends_of(ts_ms)
                    .filter(|e| *e > final_until && *e <= closed_until),
            );
        }
        let origin = *self.origin_ms.get_or_insert(pane_start);
        let x = (ts_ms - origin) as f64 / MS_PER_HOUR;
        let hint = self.pane_hint;
        let pane = self.panes.entry(pane_start).or_insert_with(|| Pane {
            states: FxHashMap::with_capacity_and_hasher(hint, Default::default()),
        });
        let state = pane
            .states
            .entry((sensor, metric))
            .and_modify(|s| s.add(ts_ms, value, x))
            .or_insert_with(|| PartialState::new(ts_ms, value, x));
        if self.sketches {
            state.sketch.get_or_insert_with(Default::default).add(value);
        }
        Ok(last_end)
    }

    /// The first end, after `closed_until`, of a window covering `pane`.
    fn first_open_end(&self, pane: i64) -> Option<i64> {
        let slide = self.windows.slide_ms;
        let first = pane + slide;
        let end = if first > self.closed_until {
            first
        } else {
            // Smallest pane + k·slide strictly after closed_until.
            let k = (self.closed_until - pane).div_euclid(slide) + 1;
            pane + k * slide
        };
        (end <= pane + self.windows.size_ms).then_some(end)
    }

    /// End of the earliest window still to close (or to re-emit), if any.
    pub fn next_end(&self) -> Option<i64> {
        let open = self.panes.keys().find_map(|p| self.first_open_end(*p));
        match (self.dirty.first().copied(), open) {
            (Some(d), Some(o)) => Some(d.min(o)),
            (d, o) => d.or(o),
        }
    }

    /// Let the store know the watermark reached `watermark` when no window
    /// is due: lateness is measured from the watermark, so closed windows
    /// stop taking corrections on time even in a quiet store.
    pub fn advance_to(&mut self, watermark: i64) {
        if self.next_end().is_some_and(|end| end <= watermark) || watermark <= self.closed_until {
            return;
        }
        self.closed_until = watermark;
        let (size, keep_after) = (self.windows.size_ms, self.final_until());
        self.panes.retain(|p, _| p + size > keep_after);
    }

    /// Everything the store holds, for a checkpoint (sensor and metric by
    /// index: a checkpoint is only restored into the same registry and
    /// metric catalog).
    pub fn snapshot(&self) -> StoreSnapshot {
        StoreSnapshot {
            panes: self
                .panes
                .iter()
                .map(|(start, pane)| {
                    let states = pane
                        .states
                        .iter()
                        .map(|(&(sensor, metric), s)| (sensor, metric, s.clone()))
                        .collect();
                    (*start, states)
                })
                .collect(),
            closed_until: self.closed_until,
            dirty: self.dirty.iter().copied().collect(),
            origin_ms: self.origin_ms,
        }
    }

    /// Replace what the store holds with a snapshot of the same windows.
    pub fn restore(&mut self, snapshot: StoreSnapshot) {
        self.panes = snapshot
            .panes
            .into_iter()
            .map(|(start, states)| {
                let states = states
                    .into_iter()
                    .map(|(sensor, metric, s)| ((sensor, metric), s))
                    .collect();
                (start, Pane { states })
            })
            .collect();
        self.pane_hint = self
            .panes
            .values()
            .map(|p| p.states.len())
            .max()
            .unwrap_or(0);
        self.closed_until = snapshot.closed_until;
        self.dirty = snapshot.dirty.into_iter().collect();
        self.origin_ms = snapshot.origin_ms;
    }

    /// The states of the sensors `which` marks only (one partition's
    /// sensors, handed to the partition's next owner).
    pub fn snapshot_sensors(&self, which: &[bool]) -> StoreSnapshot {
        let picked = |sensor: u32| which.get(sensor as usize).copied().unwrap_or(false);
        let mut snapshot = self.snapshot();
        for (_, states) in &mut snapshot.panes {
            states.retain(|(sensor, _, _)| picked(*sensor));
        }
        snapshot.panes.retain(|(_, states)| !states.is_empty());
        snapshot.dirty.clear();
        snapshot
    }

    /// Take over states another instance kept for sensors this store has
    /// none of. States of panes whose every window is already final here
    /// cannot be graded any more: they are skipped, and their number
    /// returned.
    pub fn merge(&mut self, snapshot: StoreSnapshot) -> usize {
        let mut skipped = 0;
        let origin = match (self.origin_ms, snapshot.origin_ms) {
            (Some(o), _) | (None, Some(o)) => o,
            (None, None) => return 0,
        };
        self.origin_ms = Some(origin);
        // Their regression sums count hours from their origin.
        let shift = (snapshot.origin_ms.unwrap_or(origin) - origin) as f64 / MS_PER_HOUR;
        for (start, states) in snapshot.panes {
            if start + self.windows.size_ms <= self.final_until() {
                skipped += states.len();
                continue;
            }
            let hint = self.pane_hint;
            let pane = self.panes.entry(start).or_insert_with(|| Pane {
                states: FxHashMap::with_capacity_and_hasher(hint, Default::default()),
            });
            for (sensor, metric, mut state) in states {
                state.shift_x(shift);
                pane.states
                    .entry((sensor, metric))
                    .and_modify(|s| s.merge(&state))
                    .or_insert(state);
            }
            if start + self.windows.slide_ms <= self.closed_until {
                // Windows closed here already, still open to corrections.
                let (final_until, closed_until) = (self.final_until(), self.closed_until);
                self.dirty.extend(
                    self.windows
                        .ends_of(start)
                        .filter(|e| *e > final_until && *e <= closed_until),
                );
            }
        }
        skipped
    }

    /// Drop the states of the sensors `gone` marks (their partition moved
    /// to another instance, which rebuilds them).
    pub fn forget_sensors(&mut self, gone: &[bool]) {
        for pane in self.panes.values_mut() {
            pane.states
                .retain(|(sensor, _), _| !gone.get(*sensor as usize).copied().unwrap_or(false));
        }
        self.panes.retain(|_, p| !p.states.is_empty());
    }

    /// Number of partial states held (one per pane, sensor and metric).
    pub fn states(&self) -> usize {
        self.panes.values().map(|p| p.states.len()).sum()
    }

    /// Approximate bytes held by the partial states (entries plus hash-table
    /// overhead), for the state-size metric.
    pub fn state_bytes(&self) -> usize {
        const ENTRY: usize = std::mem::size_of::<((u32, u16), PartialState)>() + 1;
        self.panes
            .values()
            .map(|p| p.states.capacity() * ENTRY)
            .sum()
    }

    /// Number of panes held.
    pub fn panes(&self) -> usize {
        self.panes.len()
    }

    /// Close every window ending at or before `watermark` that holds any
    /// reading, oldest first, and drop panes no open window needs.
    pub fn close_until(
        &mut self,
        watermark: i64,
        registry: &SensorRegistry,
        catalog: &MetricCatalog,
    ) -> Result<Vec<ClosedWindow>, IngestError> {
        let w = self.windows;
        let mut ends = BTreeSet::new();
        for &pane in self.panes.keys() {
            if pane >= watermark {
                break;
            }
            let mut end = match self.first_open_end(pane) {
                Some(e) => e,
                None => continue,
            };
            while end <= watermark && end <= pane + w.size_ms {
                ends.insert(end);
                end += w.slide_ms;
            }
        }
        let corrections = std::mem::take(&mut self.dirty);
        let mut out = Vec::with_capacity(ends.len() + corrections.len());
        for (end, correction) in corrections
            .into_iter()
            .map(|e| (e, true))
            .chain(ends.into_iter().map(|e| (e, false)))
        {
            let start = end - w.size_ms;
            let panes: Vec<&Pane> = self.panes.range(start..end).map(|(_, p)| p).collect();
            out.push(ClosedWindow {
                start_ms: start,
                end_ms: end,
                batch: to_batch(&panes, registry, catalog)?,
                correction,
                x_origin_ms: self.origin_ms.unwrap_or(0),
            });
        }
        self.closed_until = self.closed_until.max(watermark);
        let largest = self
            .panes
            .values()
            .map(|p| p.states.len())
            .max()
            .unwrap_or(0);
        self.pane_hint = self.pane_hint.max(largest);
        let keep_after = self.final_until();
        self.panes.retain(|p, _| p + w.size_ms > keep_after);
        Ok(out)
    }
}

fn to_batch(
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
        let hourly = Windows::tumbling(HOUR, CST);
        assert_eq!(hourly.pane_of(T8), T8);
        assert_eq!(hourly.pane_of(T8 + HOUR - 1), T8);
        assert_eq!(hourly.last_end_of(T8 + HOUR - 1), T8 + HOUR);
        assert_eq!(hourly.pane_of(T8 + HOUR), T8 + HOUR);
        let daily = Windows::tumbling(24 * HOUR, CST);
        // Local midnight of 2026-07-15 is 16:00 UTC of 07-14.
        assert_eq!(daily.pane_of(T8), T8 - 8 * HOUR);
        let ten = Windows::tumbling(10 * 60_000, CST);
        assert_eq!(ten.pane_of(T8 + 25 * 60_000), T8 + 20 * 60_000);
        // Before the epoch still floors, not truncates.
        assert_eq!(Windows::tumbling(10, 0).pane_of(-1), -10);
        // A 24 h moving window updated hourly: 24 windows hold each reading.
        let moving = Windows::hopping(24 * HOUR, HOUR, CST);
        let ends: Vec<i64> = moving.ends_of(T8 + 10).collect();
        assert_eq!(ends.len(), 24);
        assert_eq!((ends[0], ends[23]), (T8 + HOUR, T8 + 24 * HOUR));
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
        let mut store = WindowStore::new(Windows::tumbling(HOUR, CST), &cat, &[0]);
        assert!(store.wants(0) && !store.wants(1));
        assert_eq!(store.insert(0, 0, T8 + 10, 80.0), Ok(T8 + HOUR));
        assert_eq!(store.insert(1, 0, T8 + HOUR + 5, 90.0), Ok(T8 + 2 * HOUR));
        assert_eq!(store.insert(1, 0, T8 + 20, 70.0), Ok(T8 + HOUR));
        assert_eq!(store.next_end(), Some(T8 + HOUR));
        assert_eq!(store.states(), 3, "one state per pane, sensor and metric");

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
        let mut grids: Vec<_> = grid.iter().flatten().collect();
        grids.sort();
        assert_eq!(grids, ["g1", "g2"]);
        let metric = w.batch.column_by_name("metric").unwrap();
        let metric = metric.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(metric.value(0), "pm25");

        // The first hour is closed: a reading for it is late.
        assert_eq!(store.insert(0, 0, T8 + 30, 1.0), Err(T8 + HOUR));
        assert_eq!(store.next_end(), Some(T8 + 2 * HOUR));
    }

    #[test]
    fn a_sensor_handed_to_another_store_closes_as_if_it_had_been_there() {
        let (reg, cat) = fixture();
        let windows = Windows::tumbling(HOUR, CST);
        // The old owner saw sensor 1 first (its time axis starts at T8);
        // the new owner's axis starts an hour earlier.
        let mut old = WindowStore::new(windows, &cat, &[0]);
        old.insert(1, 0, T8 + 60_000, 10.0).unwrap();
        old.insert(1, 0, T8 + 120_000, 20.0).unwrap();
        let mut new = WindowStore::new(windows, &cat, &[0]);
        new.insert(0, 0, T8 - HOUR + 5, 50.0).unwrap();
        new.close_until(T8, &reg, &cat).unwrap();
        let handed = old.snapshot_sensors(&[false, true]);
        old.forget_sensors(&[false, true]);
        assert_eq!(old.states(), 0);
        assert_eq!(new.merge(handed), 0);
        new.insert(1, 0, T8 + 180_000, 30.0).unwrap();

        // The same readings in one store from the start.
        let mut whole = WindowStore::new(windows, &cat, &[0]);
        whole.insert(0, 0, T8 - HOUR + 5, 50.0).unwrap();
        whole.close_until(T8, &reg, &cat).unwrap();
        for (ts, v) in [(60_000, 10.0), (120_000, 20.0), (180_000, 30.0)] {
            whole.insert(1, 0, T8 + ts, v).unwrap();
        }
        let a = new.close_until(T8 + HOUR, &reg, &cat).unwrap();
        let b = whole.close_until(T8 + HOUR, &reg, &cat).unwrap();
        assert_eq!((a.len(), b.len()), (1, 1));
        let column = |w: &ClosedWindow, name: &str| {
            let c = w.batch.column_by_name(name).unwrap();
            c.as_any().downcast_ref::<Float64Array>().unwrap().value(0)
        };
        for name in ["sum", "sx", "sxx", "sxy"] {
            let (x, y) = (column(&a[0], name), column(&b[0], name));
            assert!((x - y).abs() < 1e-9, "{name}: {x} vs {y}");
        }

        // A state whose windows are all final here is skipped, and counted.
        let mut late = WindowStore::new(windows, &cat, &[0]);
        late.insert(1, 0, T8 - 2 * HOUR, 1.0).unwrap();
        assert_eq!(new.merge(late.snapshot_sensors(&[false, true])), 1);
    }

    #[test]
    fn a_restored_store_closes_the_same_windows_as_the_original() {
        let (reg, cat) = fixture();
        let windows = Windows::hopping(HOUR, HOUR / 2, CST);
        let mut original = WindowStore::new(windows, &cat, &[0]).with_sketches(true);
        for (sensor, ts, v) in [(0, 10, 80.0), (1, 20, 70.0), (0, HOUR / 2 + 5, 95.0)] {
            original.insert(sensor, 0, T8 + ts, v).unwrap();
        }
        original.close_until(T8 + HOUR / 2, &reg, &cat).unwrap();
        // Through JSON, as a checkpoint file carries it.
        let json = serde_json::to_string(&original.snapshot()).unwrap();
        let mut restored = WindowStore::new(windows, &cat, &[0]).with_sketches(true);
        restored.restore(serde_json::from_str(&json).unwrap());
        assert_eq!(restored.snapshot(), original.snapshot());
        assert_eq!(restored.next_end(), original.next_end());
        // Both refuse the same late reading and take the same new one.
        assert_eq!(
            restored.insert(0, 0, T8 - 1, 1.0),
            original.insert(0, 0, T8 - 1, 1.0)
        );
        let more = (1, 0, T8 + HOUR / 2 + 9, 60.0);
        assert_eq!(
            restored.insert(more.0, more.1, more.2, more.3),
            original.insert(more.0, more.1, more.2, more.3)
        );
        let a = original.close_until(T8 + 2 * HOUR, &reg, &cat).unwrap();
        let b = restored.close_until(T8 + 2 * HOUR, &reg, &cat).unwrap();
        assert_eq!((a.len(), b.len()), (2, 2));
        for (a, b) in a.iter().zip(&b) {
            assert_eq!((a.start_ms, a.end_ms), (b.start_ms, b.end_ms));
            assert_eq!(a.batch, b.batch);
        }
    }
}

#[cfg(test)]
mod hopping_tests {
    use super::*;
    use crate::registry::Sensor;

    /// One air sensor `a` in grid `g1`, and the `pm25` metric.
    pub(super) fn one_sensor() -> (SensorRegistry, MetricCatalog) {
        let s = Sensor {
            sensor_id: "a".into(),
            kind: "air".into(),
            district: "Yubei".into(),
            district_code: "500112".into(),
            street: "Longxi".into(),
            grid: "g1".into(),
            lat: 29.6,
            lon: 106.5,
        };
        (
            SensorRegistry::new(vec![s]).unwrap(),
            MetricCatalog::new(["pm25"]),
        )
    }

    const MIN: i64 = 60_000;

    fn fixture() -> (SensorRegistry, MetricCatalog) {
        one_sensor()
    }

    /// Sum of the readings in a closed window (over its pane states).
    fn total(w: &ClosedWindow) -> f64 {
        let v = w.batch.column_by_name("sum").unwrap();
        let v = v.as_any().downcast_ref::<Float64Array>().unwrap();
        v.values().iter().sum()
    }

    #[test]
    fn hopping_windows_share_panes_and_close_in_order() {
        let (reg, cat) = fixture();
        // 3-minute windows every minute.
        let mut store = WindowStore::new(Windows::hopping(3 * MIN, MIN, 0), &cat, &[0]);
        assert_eq!(store.insert(0, 0, 10, 1.0), Ok(3 * MIN));
        assert_eq!(store.insert(0, 0, MIN + 10, 2.0), Ok(4 * MIN));
        assert_eq!(store.insert(0, 0, 2 * MIN + 10, 3.0), Ok(5 * MIN));
        assert_eq!(store.next_end(), Some(MIN));

        let closed = store.close_until(3 * MIN, &reg, &cat).unwrap();
        let spans: Vec<(i64, i64)> = closed.iter().map(|w| (w.start_ms, w.end_ms)).collect();
        assert_eq!(spans, [(-2 * MIN, MIN), (-MIN, 2 * MIN), (0, 3 * MIN)]);
        assert_eq!(total(&closed[0]), 1.0);
        assert_eq!(total(&closed[1]), 1.0 + 2.0);
        assert_eq!(total(&closed[2]), 1.0 + 2.0 + 3.0);
        // Pane 0 is covered by no open window any more.
        assert_eq!(store.panes(), 2);
        assert_eq!(store.next_end(), Some(4 * MIN));

        // Its windows are closed, so a reading for minute 0 is late…
        assert_eq!(store.insert(0, 0, 20, 9.0), Err(3 * MIN));
        // …but one for minute 1 still counts in the windows ending at 4 and 5.
        assert_eq!(store.insert(0, 0, MIN + 20, 4.0), Ok(4 * MIN));

        let closed = store.close_until(10 * MIN, &reg, &cat).unwrap();
        let spans: Vec<(i64, i64)> = closed.iter().map(|w| (w.start_ms, w.end_ms)).collect();
        assert_eq!(spans, [(MIN, 4 * MIN), (2 * MIN, 5 * MIN)]);
        assert_eq!(total(&closed[0]), 2.0 + 4.0 + 3.0);
        assert_eq!(
            closed[0].batch.num_rows(),
            1,
            "panes merged: one row per sensor and metric"
        );
        assert_eq!(total(&closed[1]), 3.0);
        assert_eq!(store.panes(), 0);
        assert_eq!(store.next_end(), None);
    }

    #[test]
    fn windows_without_readings_are_not_emitted() {
        let (reg, cat) = fixture();
        let mut store = WindowStore::new(Windows::hopping(2 * MIN, MIN, 0), &cat, &[0]);
        store.insert(0, 0, 10, 1.0).unwrap();
        store.insert(0, 0, 10 * MIN + 10, 2.0).unwrap();
        let closed = store.close_until(20 * MIN, &reg, &cat).unwrap();
        let ends: Vec<i64> = closed.iter().map(|w| w.end_ms).collect();
        assert_eq!(ends, [MIN, 2 * MIN, 11 * MIN, 12 * MIN]);
    }
}

#[cfg(test)]
mod state_tests {
    use super::*;

    #[test]
    fn partial_state_keeps_order_statistics_by_event_time() {
        let mut s = PartialState::new(2_000, 5.0, 2.0);
        s.add(1_000, 7.0, 1.0);
        s.add(3_000, 1.0, 3.0);
        s.add(3_000, 9.0, 3.0);
        assert_eq!((s.n, s.sum, s.sumsq), (4, 22.0, 25.0 + 49.0 + 1.0 + 81.0));
        assert_eq!((s.min, s.max), (1.0, 9.0));
        assert_eq!((s.first_ts, s.first), (1_000, 7.0));
        assert_eq!(
            (s.last_ts, s.last),
            (3_000, 1.0),
            "ties keep the first arrival"
        );
        assert_eq!((s.sx, s.sxx, s.sxy), (9.0, 23.0, 10.0 + 7.0 + 3.0 + 27.0));
    }

    #[test]
    fn shifting_the_time_axis_matches_recomputing() {
        // Readings at hours 1, 2, 4 (x from origin 0) vs from origin 1.
        let readings = [(1.0, 5.0), (2.0, 7.0), (4.0, 3.0)];
        let state = |origin: f64| {
            let mut st = PartialState::new(0, readings[0].1, readings[0].0 - origin);
            for (h, v) in &readings[1..] {
                st.add(0, *v, h - origin);
            }
            st
        };
        let mut shifted = state(1.0);
        shifted.shift_x(1.0);
        let direct = state(0.0);
        for (a, b) in [
            (shifted.sx, direct.sx),
            (shifted.sxx, direct.sxx),
            (shifted.sxy, direct.sxy),
        ] {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
    }

    #[test]
    fn merging_states_equals_adding_the_readings() {
        let readings = [(1_000, 5.0), (4_000, 2.0), (2_000, 8.0), (3_000, 1.0)];
        let x = |ts: i64| ts as f64 / 1_000.0;
        let mut all = PartialState::new(readings[0].0, readings[0].1, x(readings[0].0));
        for (ts, v) in &readings[1..] {
            all.add(*ts, *v, x(*ts));
        }
        let mut left = PartialState::new(1_000, 5.0, 1.0);
        left.add(4_000, 2.0, 4.0);
        let mut right = PartialState::new(2_000, 8.0, 2.0);
        right.add(3_000, 1.0, 3.0);
        left.merge(&right);
        assert_eq!(left, all);
    }
}

#[cfg(test)]
mod lateness_tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn late_reading_within_lateness_corrects_the_closed_window() {
        let (reg, cat) = super::hopping_tests::one_sensor();
        let mut store =
            WindowStore::new(Windows::tumbling(MIN, 0), &cat, &[0]).with_lateness(30_000);
        store.insert(0, 0, 10_000, 1.0).unwrap();
        let first = store.close_until(MIN + 5_000, &reg, &cat).unwrap();
        assert_eq!(first.len(), 1);
        assert!(!first[0].correction);
        // 25 s after the window closed: within the 30 s lateness.
        assert_eq!(store.insert(0, 0, 20_000, 2.0), Ok(MIN));
        assert_eq!(store.next_end(), Some(MIN), "a correction is due");
        let again = store.close_until(MIN + 25_000, &reg, &cat).unwrap();
        assert_eq!(again.len(), 1);
        assert!(again[0].correction);
        assert_eq!((again[0].start_ms, again[0].end_ms), (0, MIN));
        let n = again[0].batch.column_by_name("n").unwrap();
        assert_eq!(n.as_any().downcast_ref::<Int64Array>().unwrap().value(0), 2);
        // Past the lateness the window is final: late beyond lateness.
        store.close_until(MIN + 31_000, &reg, &cat).unwrap();
        assert_eq!(store.insert(0, 0, 30_000, 3.0), Err(MIN));
        assert_eq!(store.panes(), 0);
        // Lateness is capped at the slide.
        let capped =
            WindowStore::new(Windows::tumbling(MIN, 0), &cat, &[0]).with_lateness(10 * MIN);
        assert_eq!(capped.lateness_ms, MIN);
    }
}
