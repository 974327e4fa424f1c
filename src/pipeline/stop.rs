//! Stopping: deliver what the watermark already closed, commit, write the
//! last checkpoint and leave the group — within the shutdown deadline.
//!
//! A destination that is gone must not keep the process alive until the
//! orchestrator kills it: when the deadline passes (or a second stop
//! signal comes), the stop is cut short and the error names the sinks that
//! had not acknowledged and the partitions whose offsets were not
//! committed. Nothing acknowledged is lost: spooled alerts stay in their
//! spool, and the next start reads the uncommitted readings again.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::CommitMode;
use tokio::sync::watch;

use super::{PipelineError, RunSummary, State, commit};
use crate::fetch::Fetcher;

/// How long leaving the consumer group and closing the consumer may take.
const CONSUMER_CLOSE_TIMEOUT: Duration = Duration::from_secs(20);

/// A future that completes when the operator insists (a second signal).
pub type ForceStop = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a stop has not done yet, for the message when it is cut short;
/// kept up to date by the pipeline as it commits and delivers.
#[derive(Debug, Default)]
pub(super) struct Unfinished {
    /// Sinks, and the alert batches each holds unacknowledged.
    sinks: Vec<(String, Arc<AtomicUsize>)>,
    /// (topic, partition, last committed offset, next offset) not committed.
    partitions: Vec<(String, i32, Option<i64>, i64)>,
    committed: bool,
}

/// The pipeline's shared [`Unfinished`].
#[derive(Debug, Clone, Default)]
pub(super) struct StopReport(Arc<Mutex<Unfinished>>);

impl StopReport {
    fn with<T>(&self, f: impl FnOnce(&mut Unfinished) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A sink and its count of batches in flight.
    pub(super) fn add_sink(&self, name: &str, in_flight: Arc<AtomicUsize>) {
        self.with(|u| u.sinks.push((name.to_owned(), in_flight)));
    }

    /// After each commit: the partitions with offsets still uncommitted.
    pub(super) fn uncommitted(&self, partitions: Vec<(String, i32, Option<i64>, i64)>) {
        self.with(|u| u.partitions = partitions);
    }

    fn committed(&self) {
        self.with(|u| u.committed = true);
    }

    fn describe(&self) -> String {
        self.with(|u| u.describe())
    }
}

impl Unfinished {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        let busy: Vec<&str> = self
            .sinks
            .iter()
            .filter(|(_, n)| n.load(Ordering::Relaxed) > 0)
            .map(|(name, _)| name.as_str())
            .collect();
        if !busy.is_empty() {
            parts.push(format!("alerts not acknowledged by {}", busy.join(", ")));
        }
        if !self.committed && !self.partitions.is_empty() {
            let list: Vec<String> = self
                .partitions
                .iter()
                .map(|(t, p, from, next)| match from {
                    Some(c) => format!("{t}/{p} offsets {c}..{next}"),
                    None => format!("{t}/{p} up to offset {next}"),
                })
                .collect();
            parts.push(format!(
                "not committed: {}; those readings will be read again on the next start",
                list.join(", ")
            ));
        }
        if parts.is_empty() {
            "the last checkpoint or leaving the consumer group".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

/// Run `body` (the pipeline, main loop and stop) until it ends. When
/// `shutdown` completes, tell the body through `signalled`, then give it
/// `deadline` (and until `force` completes) before cutting it short with
/// what `report` says was left undone.
pub(super) async fn within_deadline(
    body: impl Future<Output = Result<RunSummary, PipelineError>>,
    shutdown: impl Future<Output = ()>,
    signalled: watch::Sender<bool>,
    deadline: Option<Duration>,
    force: Option<ForceStop>,
    report: StopReport,
) -> Result<RunSummary, PipelineError> {
    let cut = async {
        shutdown.await;
        let _ = signalled.send(true);
        let deadline_passed = async {
            match deadline {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let forced = async {
            match force {
                Some(f) => f.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = deadline_passed => format!(
                "the shutdown deadline of {} passed",
                humantime::format_duration(deadline.unwrap_or_default())
            ),
            _ = forced => "a second stop signal came".to_owned(),
        }
    };
    let why = tokio::select! {
        result = body => return result,
        why = cut => why,
    };
    let unfinished = report.describe();
    tracing::error!("stopping before the end: {why}: {unfinished}");
    Err(PipelineError::StopCutShort { why, unfinished })
}

/// After the main loop: stop consuming, deliver what the watermark already
/// closed, commit (or abort after an error), write the last checkpoint,
/// and leave the group.
pub(super) async fn shut_down(
    mut state: State,
    mut fetcher: Fetcher,
    outcome: Result<(), PipelineError>,
) -> Result<RunSummary, PipelineError> {
    fetcher.stop();
    for sink in std::mem::take(&mut state.sinks) {
        sink.close().await;
    }
    let outcome = match outcome {
        Ok(()) => commit::commit(fetcher.consumer(), &mut state, CommitMode::Sync),
        Err(e) => {
            commit::abort(&state);
            Err(e)
        }
    };
    if outcome.is_ok() {
        state.stop_report.committed();
    }
    let outcome = match outcome {
        // Closing down cleanly: the next start (or the partitions' next
        // owners) carry on from here.
        Ok(()) => state.checkpoint(fetcher.consumer(), true).await,
        Err(e) => Err(e),
    };
    state.update_gauges();
    state.report_refusals();
    // Leaving the group and closing the consumer talk to the broker;
    // bounded, so a close stuck in the group protocol cannot keep the
    // process from stopping (everything is committed by now).
    let closing = tokio::task::spawn_blocking(move || {
        fetcher.leave_group();
        drop(fetcher);
    });
    if tokio::time::timeout(CONSUMER_CLOSE_TIMEOUT, closing)
        .await
        .is_err()
    {
        tracing::warn!(
            "the readings consumer did not close within {CONSUMER_CLOSE_TIMEOUT:?}; stopping without it"
        );
    }
    state.summary.active_at_end = state.engine.active_count();
    outcome.map(|()| state.summary)
}
