//! Checkpoints: the engine's open windows and the positions they
//! correspond to, so a restart carries on from there instead of
//! replaying every reading behind a 24 h window.
//!
//! `<state_dir>/checkpoint.json` is written every `checkpoint_every` and
//! at shutdown, in the same header-and-checksum layout as the warning
//! state (written just before it, so the active warnings are never older
//! than the windows). The committed offsets are not moved by a
//! checkpoint: they still trail behind every open window, so a checkpoint
//! that is damaged, incompatible or declined at the next start falls back
//! to replaying from them, as without checkpoints.
//!
//! In exactly-once mode a checkpoint is written only when no alert is
//! waiting in an open transaction: an aborted transaction must be redone
//! from readings, which a checkpoint past them would skip.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use rdkafka::consumer::BaseConsumer;
use yujing_ingest::PartitionProgress;

use super::warning_state::{self, StateError};
use super::{PipelineError, State, commit};
use crate::rebalance::{LagReporter, Resume, ResumePlan};
use crate::telemetry::{CheckpointRestored, CheckpointSaved, Metrics, WarningStateSaved};
use yujing_engine::{Engine, EngineSnapshot};

pub const FORMAT: &str = "yujing.checkpoint/v1";
const FILE: &str = "checkpoint.json";

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub written_at_ms: i64,
    /// Per partition: where reading resumes, and the windows its
    /// uncommitted readings are in.
    pub partitions: Vec<PartitionProgress>,
    pub engine: EngineSnapshot,
}

/// The checkpoint in `dir`, if it fits `engine`; otherwise report why
/// not (setting a damaged file aside) and return `None`. A usable one has
/// its positions handed to `resume`, for the first assignment.
pub(super) fn load(
    dir: &Path,
    engine: &Engine,
    resume: &ResumePlan,
    metrics: &Metrics,
) -> Option<Checkpoint> {
    let checkpoint: Checkpoint = match warning_state::read_file(dir, FILE, FORMAT) {
        Ok(Some(c)) => c,
        Ok(None) => return None,
        Err(e) => {
            warning_state::set_aside_file(dir, FILE);
            CheckpointRestored::Damaged {
                error: &e.to_string(),
            }
            .emit(metrics);
            return None;
        }
    };
    if checkpoint.engine.fingerprint != engine.fingerprint() {
        CheckpointRestored::Incompatible.emit(metrics);
        return None;
    }
    resume.set(
        checkpoint
            .partitions
            .iter()
            .map(|p| ((p.topic.clone(), p.partition), p.next))
            .collect::<HashMap<_, _>>(),
    );
    Some(checkpoint)
}

/// Write the active warnings, then the checkpoint.
fn save(dir: &Path, state: &State) -> Result<(u64, usize), StateError> {
    let saved = warning_state::save(dir, state.engine.warning_book());
    WarningStateSaved::report(&saved, &state.metrics);
    saved?;
    let checkpoint = Checkpoint {
        written_at_ms: yujing_ingest::clock::wall_now_ms(),
        partitions: state.offsets.snapshot(),
        engine: state.engine.snapshot(),
    };
    let states = checkpoint.engine.states();
    warning_state::write_file(dir, FILE, FORMAT, &checkpoint).map(|bytes| (bytes, states))
}

impl State {
    /// At the first assignment: take up the checkpoint loaded at start if
    /// the assignment covered it, before any of its messages.
    pub(super) fn take_up_checkpoint(&mut self) {
        let Some(checkpoint) = self.checkpoint.pending.take() else {
            return;
        };
        match self.checkpoint.resume.outcome() {
            Resume::Accepted => {
                let states = checkpoint.engine.states();
                let partitions = checkpoint.partitions.len();
                self.engine.restore(checkpoint.engine, self.clock.now_ms());
                self.offsets.restore(&checkpoint.partitions);
                let written_at = self.times.rfc3339(checkpoint.written_at_ms);
                CheckpointRestored::Restored {
                    written_at: &written_at,
                    states,
                    partitions,
                }
                .emit(&self.metrics);
            }
            Resume::Declined { missing } => {
                let missing: Vec<String> =
                    missing.iter().map(|(t, p)| format!("{t}/{p}")).collect();
                CheckpointRestored::Declined {
                    missing: &missing.join(", "),
                }
                .emit(&self.metrics);
            }
            // Not decided yet (an assignment of other topics first).
            Resume::Pending(_) | Resume::Nothing => self.checkpoint.pending = Some(checkpoint),
        }
    }

    /// Write a checkpoint if one is due (or `now`, at shutdown) and
    /// everything behind it is delivered.
    pub(super) async fn checkpoint(
        &mut self,
        consumer: &BaseConsumer<LagReporter>,
        now: bool,
    ) -> Result<(), PipelineError> {
        if self.handover.is_some() {
            // Partition states to the state topic instead of a file;
            // exactly once, inside the transaction, committed at once.
            let Some(every) = self.checkpoint.every else {
                return Ok(());
            };
            if !now && self.checkpoint.last.elapsed() < every {
                return Ok(());
            }
            self.checkpoint.last = Instant::now();
            self.write_all_partition_states().await;
            if self.transactions.is_some() {
                return commit::commit_with_states(consumer, self);
            }
            return Ok(());
        }
        let (Some(dir), Some(every)) = (&self.state_dir, self.checkpoint.every) else {
            return Ok(());
        };
        if self.checkpoint.pending.is_some() {
            // Not taken up yet: writing now would replace it with less.
            return Ok(());
        }
        if !now && self.checkpoint.last.elapsed() < every {
            return Ok(());
        }
        if self.checkpoint.in_open_transaction {
            return Ok(());
        }
        self.checkpoint.last = Instant::now();
        let dir = dir.clone();
        let saved = save(&dir, self);
        let (bytes, states) = saved.as_ref().map_or((0, 0), |s| *s);
        CheckpointSaved {
            bytes,
            states,
            error: saved.as_ref().err().map(ToString::to_string).as_deref(),
        }
        .emit(&self.metrics);
        Ok(())
    }
}

/// The pipeline's checkpointing state.
pub(super) struct Checkpointing {
    /// How often to write one; `None`: never.
    pub every: Option<std::time::Duration>,
    pub last: Instant,
    /// Loaded at start, waiting for the first assignment.
    pub pending: Option<Checkpoint>,
    pub resume: ResumePlan,
    /// Exactly-once: alerts were written since the last transaction commit.
    pub in_open_transaction: bool,
}
