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

use arrow::array::RecordBatch;
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet};

use crate::error::IngestError;
use crate::metric::MetricCatalog;
use crate::registry::SensorRegistry;

mod batch;
mod state;
pub use batch::WINDOW_SCHEMA;
pub(crate) use batch::states_batch;
use batch::to_batch;
pub use state::PartialState;

pub(crate) const MS_PER_HOUR: f64 = 3_600_000.0;

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

#[cfg(test)]
mod tests;
