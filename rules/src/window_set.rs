//! Closed windows of one store, aggregated together.
//!
//! The engine may close many windows at once: a backlog after a restart, a
//! backtest over a year, or simply several window sizes ending together.
//! DataFusion's cost per query is mostly fixed (planning, task set-up), so
//! the windows are stacked into one Arrow batch with their `window_end` (and
//! `window_start`, and `x_end` for trend lines) as extra columns, and each
//! rule runs one query grouped by `window_end` first. Results come back per
//! window end.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema};
use yujing_ingest::ClosedWindow;

use crate::aggregate::WindowAggregate;
use crate::error::RulesError;

/// Aggregates of one rule, per window end.
pub type PerWindow = HashMap<i64, Vec<WindowAggregate>>;

const MS_PER_HOUR: f64 = 3_600_000.0;

/// Windows of one size and slide, each ending at a different time.
pub struct WindowSet {
    /// The windows' states stacked, with `window_end`, `window_start` and
    /// `x_end` columns.
    pub(crate) batch: RecordBatch,
    /// The windows themselves, by end (SQL rules run per window).
    windows: BTreeMap<i64, ClosedWindow>,
}

impl WindowSet {
    /// Stack `windows`; their ends must differ.
    pub fn new<'a>(
        windows: impl IntoIterator<Item = &'a ClosedWindow>,
    ) -> Result<Self, RulesError> {
        let windows: BTreeMap<i64, ClosedWindow> =
            windows.into_iter().map(|w| (w.end_ms, w.clone())).collect();
        let schema = Arc::new(Schema::new(
            yujing_ingest::window::WINDOW_SCHEMA
                .fields()
                .iter()
                .cloned()
                .chain([
                    Arc::new(Field::new("window_end", DataType::Int64, false)),
                    Arc::new(Field::new("window_start", DataType::Int64, false)),
                    Arc::new(Field::new("x_end", DataType::Float64, false)),
                ])
                .collect::<Vec<_>>(),
        ));
        let mut batches = Vec::with_capacity(windows.len());
        for w in windows.values() {
            let rows = w.batch.num_rows();
            let x_end = (w.end_ms - w.x_origin_ms) as f64 / MS_PER_HOUR;
            let mut columns: Vec<ArrayRef> = w.batch.columns().to_vec();
            columns.push(Arc::new(Int64Array::from(vec![w.end_ms; rows])));
            columns.push(Arc::new(Int64Array::from(vec![w.start_ms; rows])));
            columns.push(Arc::new(Float64Array::from(vec![x_end; rows])));
            batches.push(RecordBatch::try_new(schema.clone(), columns)?);
        }
        let batch = concat_batches(&schema, &batches)?;
        Ok(WindowSet { batch, windows })
    }

    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The window ending at `end_ms`.
    pub fn get(&self, end_ms: i64) -> Option<&ClosedWindow> {
        self.windows.get(&end_ms)
    }

    pub fn windows(&self) -> impl Iterator<Item = &ClosedWindow> {
        self.windows.values()
    }

    /// Start of the window ending at `end_ms`.
    pub(crate) fn start_of(&self, end_ms: i64) -> i64 {
        self.windows.get(&end_ms).map_or(end_ms, |w| w.start_ms)
    }
}
