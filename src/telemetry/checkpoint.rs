//! Checkpoints of the window state: written, taken up, refused.

use prometheus::{Gauge, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct CheckpointMetrics {
    pub saves: IntCounterVec,
    pub restores: IntCounterVec,
    pub bytes: IntGauge,
    pub last_success: Gauge,
}

impl CheckpointMetrics {
    pub fn register(registry: &Registry) -> Self {
        let saves = IntCounterVec::new(
            Opts::new(
                "yujing_checkpoint_saves_total",
                "Checkpoints of the window state written, by outcome (success, failure: the previous checkpoint stays, and a restart replays more).",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let restores = IntCounterVec::new(
            Opts::new(
                "yujing_checkpoint_restores_total",
                "Checkpoints found at start, by outcome: restored, declined (partitions assigned elsewhere), incompatible (sensors, metrics or windows changed), damaged (set aside). All but restored replay from the committed offsets.",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let bytes = IntGauge::new(
            "yujing_checkpoint_bytes",
            "Size of the last checkpoint written.",
        )
        .expect("valid metric");
        let last_success = Gauge::new(
            "yujing_checkpoint_last_success_timestamp_seconds",
            "When the last checkpoint was written (0: none yet in this run).",
        )
        .expect("valid metric");
        for m in [
            Box::new(saves.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(restores.clone()),
            Box::new(bytes.clone()),
            Box::new(last_success.clone()),
        ] {
            registry.register(m).expect("unique metric");
        }
        for outcome in ["success", "failure"] {
            saves.with_label_values(&[outcome]);
        }
        for outcome in ["restored", "declined", "incompatible", "damaged"] {
            restores.with_label_values(&[outcome]);
        }
        CheckpointMetrics {
            saves,
            restores,
            bytes,
            last_success,
        }
    }
}

/// A checkpoint was written, or could not be.
pub struct CheckpointSaved<'a> {
    pub bytes: u64,
    pub states: usize,
    pub error: Option<&'a str>,
}

impl CheckpointSaved<'_> {
    pub fn emit(&self, m: &super::Metrics) {
        let outcome = match self.error {
            None => {
                tracing::debug!(
                    bytes = self.bytes,
                    states = self.states,
                    "checkpoint written"
                );
                m.checkpoint.bytes.set(self.bytes as i64);
                m.checkpoint
                    .last_success
                    .set(yujing_ingest::clock::wall_now_ms() as f64 / 1000.0);
                "success"
            }
            Some(e) => {
                tracing::error!(
                    "cannot write the checkpoint; the previous one stays and a restart replays from it or from the committed offsets: {e}"
                );
                "failure"
            }
        };
        // Shown in /health beside the sinks while writing fails.
        m.health.update("checkpoint", |h| {
            h.up = self.error.is_none();
            h.last_error = self.error.map(str::to_owned);
        });
        m.checkpoint.saves.with_label_values(&[outcome]).inc();
    }
}

/// What became of the checkpoint found at start.
pub enum CheckpointRestored<'a> {
    Restored {
        written_at: &'a str,
        states: usize,
        partitions: usize,
    },
    /// Some of its partitions are assigned to another instance.
    Declined { missing: &'a str },
    /// Written for other sensors, metrics or windows.
    Incompatible,
    /// Damaged or of another format; set aside.
    Damaged { error: &'a str },
}

impl CheckpointRestored<'_> {
    pub fn emit(&self, m: &super::Metrics) {
        let outcome = match self {
            CheckpointRestored::Restored {
                written_at,
                states,
                partitions,
            } => {
                tracing::info!(
                    written_at,
                    states,
                    partitions,
                    "resumed from the checkpoint: open windows restored, reading from its positions"
                );
                "restored"
            }
            CheckpointRestored::Declined { missing } => {
                tracing::warn!(
                    missing,
                    "the checkpoint covers partitions now assigned to another instance; replaying from the committed offsets"
                );
                "declined"
            }
            CheckpointRestored::Incompatible => {
                tracing::warn!(
                    "the checkpoint was written for other sensors, metrics or windows; replaying from the committed offsets"
                );
                "incompatible"
            }
            CheckpointRestored::Damaged { error } => {
                tracing::error!(
                    "the checkpoint is unusable and was set aside (checkpoint.json.bad); replaying from the committed offsets: {error}"
                );
                "damaged"
            }
        };
        m.checkpoint.restores.with_label_values(&[outcome]).inc();
    }
}

/// Partition states written to and taken from `kafka.state_topic`.
#[derive(Clone)]
pub struct HandoverMetrics {
    pub written: IntCounterVec,
    pub taken: prometheus::IntCounter,
}

impl HandoverMetrics {
    pub fn register(registry: &Registry) -> Self {
        let written = IntCounterVec::new(
            Opts::new(
                "yujing_partition_states_written_total",
                "Partition states written to the state topic (at a handover, a checkpoint or shutdown), by outcome.",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let taken = prometheus::IntCounter::new(
            "yujing_partition_states_taken_total",
            "Partition states taken over from the state topic at an assignment (instead of replaying the partition).",
        )
        .expect("valid metric");
        registry
            .register(Box::new(written.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(taken.clone()))
            .expect("unique metric");
        for outcome in ["success", "failure"] {
            written.with_label_values(&[outcome]);
        }
        HandoverMetrics { written, taken }
    }
}

/// A partition's state was written to the state topic, or could not be.
pub struct HandoverWritten<'a> {
    pub partition: &'a str,
    pub bytes: usize,
    pub seconds: f64,
    pub error: Option<&'a str>,
}

impl HandoverWritten<'_> {
    pub fn emit(&self, m: &super::Metrics) {
        let outcome = match self.error {
            None => {
                tracing::debug!(
                    partition = self.partition,
                    bytes = self.bytes,
                    seconds = self.seconds,
                    "partition state written"
                );
                "success"
            }
            Some(e) => {
                tracing::error!(
                    partition = self.partition,
                    "cannot write the partition's state; its next owner replays it from an older state or the committed offset: {e}"
                );
                "failure"
            }
        };
        m.handover.written.with_label_values(&[outcome]).inc();
    }
}

/// The state topic was read at an assignment.
pub struct HandoverRead {
    pub found: usize,
    pub unfit: usize,
    pub seconds: f64,
}

impl HandoverRead {
    pub fn log(&self) {
        if self.unfit > 0 {
            tracing::warn!(
                unfit = self.unfit,
                "partition states written for other sensors, metrics or windows are not used; those partitions are replayed"
            );
        }
        tracing::info!(
            found = self.found,
            seconds = self.seconds,
            "read the partitions' states from the state topic"
        );
    }
}
