//! Readings in: everything between a Kafka message and a closed event-time
//! window ready for aggregation.
//!
//! # Layout
//! - [`reading`]: the reading message contract (single-metric and gateway
//!   multi-metric forms, RFC 3339 or epoch-millisecond `ts`) and its decoder.
//! - [`registry`]: the sensor registry (CSV or YAML): sensor id → district,
//!   street, grid cell, position, kind; kept as Arrow columns so a window's
//!   rows are enriched with one `take` per column.
//! - [`metric`]: the catalogue of metric names the rules use, interned to ids.
//! - [`measurements`]: the metrics a deployment knows, with units and
//!   physical ranges (YAML).
//! - [`window`]: tumbling and hopping event-time windows aligned to local
//!   wall-clock boundaries, the per-window buffers, and the Arrow batch a closed window
//!   becomes.
//! - [`sketch`]: a mergeable quantile sketch (1 % relative accuracy) for
//!   window percentiles.
//! - [`session`]: session windows, a burst of readings per group.
//! - [`watermark`]: per-partition watermarks and the pipeline watermark.
//! - [`offsets`]: which Kafka offsets are safe to commit (only those whose
//!   windows have closed).
//! - [`clock`]: wall clock or simulated (compressed) clock.
//! - `kafka` (feature `kafka`): building the rdkafka clients from
//!   configuration; off for the engine and offline commands.
//! - [`error`]: this crate's error type.

pub mod clock;
pub mod duplicates;
pub mod error;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod measurements;
pub mod metric;
pub mod offsets;
pub mod reading;
pub mod registry;
pub mod session;
pub mod sketch;
pub mod watermark;
pub mod window;

pub use clock::Clock;
pub use error::{DecodeError, IngestError};
pub use measurements::{Measurement, Measurements};
pub use metric::MetricCatalog;
pub use offsets::PartitionProgress;
pub use reading::{Reading, decode_readings};
pub use registry::{Area, AreaLevel, Sensor, SensorRegistry};
pub use session::SessionSnapshot;
pub use session::{ClosedSession, SessionSpec, SessionStore};
pub use sketch::Sketch;
pub use watermark::WatermarkSnapshot;
pub use watermark::Watermarks;
pub use window::{ClosedWindow, PartialState, StoreSnapshot, WindowStore, Windows};
