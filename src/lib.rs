//! yujing (预警, "early warning"): sensor readings on Kafka become graded
//! warnings (blue IV, yellow III, orange II, red I) on an alert topic.
//!
//! # Layout
//! - [`cli`]: the `yujing` command line (`demo`, `run`, `rules`, `bench`),
//!   wiring configuration to the pipeline, and shutdown on Ctrl-C/SIGTERM.
//! - [`config`]: the YAML configuration of `yujing run`.
//! - [`destinations`]: the configured sinks, built with their storm limits
//!   and spools.
//! - [`fetch`]: the readings consumer on its own thread: poll, copy,
//!   decode, hand batches to the pipeline.
//! - [`pipeline`]: the Kafka shell around the engine: consume, dead-letter,
//!   deliver to sinks, commit; shutdown is passed in as a future.
//! - [`rebalance`]: partitions assigned and revoked; the first assignment
//!   starts where a checkpoint left off, if it covers the checkpoint.
//! - [`reload`]: rules reload requests from SIGHUP, file changes and
//!   `POST /-/reload`.
//! - [`board`]: the duty officer's live board (`/board`): map, active
//!   warnings, responses, served from embedded assets.
//! - [`response_api`]: the responders' HTTP API (acknowledge, dispatch,
//!   refer, close), answered by the pipeline's response book.
//! - [`tune`]: `yujing tune`, rule settings searched on history and labels
//!   for a false-warning budget, scored on a held-out part.
//! - [`feed`]: the public CAP feed (`/feed/cap.atom`): an Atom index of
//!   the current CAP messages, each served by its identifier.
//! - [`feedback_export`]: `yujing feedback export`, responders' verdicts
//!   from the response topic as backtest labels.
//! - [`backtest`]: `yujing backtest`, history through the engine, scored.
//! - [`replay`]: `yujing replay`, history published to Kafka as readings.
//! - [`rules_tool`]: `yujing rules check` and `yujing rules test`.
//! - [`telemetry`]: every Prometheus metric, and typed events that log and
//!   count.
//! - [`topics`]: topics that must exist, created when asked or named with
//!   how to create them.
//! - [`metrics_server`]: the HTTP endpoints `/metrics`, `/health` and
//!   `/-/reload`.
//! - [`demo`]: the in-process demo: mock Kafka cluster and a synthetic city.
//! - [`bench`](mod@bench): the `yujing bench` throughput, latency and memory benchmark.
//!
//! The work itself lives in the member crates: `yujing-ingest` (decoding,
//! windows, watermarks), `yujing-rules` (rules, DataFusion aggregates,
//! warning state) and `yujing-sinks` (alert messages and destinations).

// The layout sections above (and in module docs) name private modules
// for readers of the source: `cargo doc --document-private-items` links them.
#![allow(rustdoc::private_intra_doc_links)]

pub mod backtest;
pub mod bench;
pub mod board;
pub mod cli;
pub mod config;
pub mod demo;
pub mod destinations;
pub mod feed;
pub mod feedback_export;
pub mod fetch;
pub mod metrics_server;
pub mod pipeline;
pub mod rebalance;
pub mod reload;
pub mod replay;
pub mod response_api;
pub mod rules_tool;
pub mod telemetry;
pub mod topics;
pub mod tune;
