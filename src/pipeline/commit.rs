//! Committing progress: save the active warnings, then commit the offsets
//! of the readings whose windows closed and whose alerts were delivered.
//!
//! - **At least once** (default): offsets are committed to the consumer
//!   group. A crash before the commit re-reads those readings, and their
//!   alerts are produced again as exact copies.
//! - **Exactly once** (`kafka.transactional_id`): the Kafka alert sinks
//!   write inside a Kafka transaction, and the offsets are committed in the
//!   same transaction (`send_offsets_to_transaction`). A `read_committed`
//!   subscriber sees each alert once: a crash aborts the open transaction,
//!   its alerts are never visible, and the restart (same transactional id,
//!   which fences the old producer) makes them again. Other sinks (webhook,
//!   Alertmanager, file) stay at least once. With `kafka.state_topic`, the
//!   partition states are written inside the transaction too
//!   ([`commit_with_states`]): a state, the alerts made from the readings
//!   before its offset and the committed offsets become visible together.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};

use super::{PipelineError, State, warning_state};
use crate::rebalance::LagReporter;
use crate::telemetry::WarningStateSaved;

/// How long transaction calls may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// Fence older producers with the same transactional id (aborting their
/// open transaction) and open the first transaction.
pub(super) fn start_transactions(producer: &FutureProducer) -> Result<(), PipelineError> {
    producer.init_transactions(TXN_TIMEOUT)?;
    producer.begin_transaction()?;
    tracing::info!("exactly-once: alerts and offsets are committed in Kafka transactions");
    Ok(())
}

/// Abort the open transaction (the pipeline is stopping on an error).
pub(super) fn abort(state: &State) {
    if let Some(p) = &state.transactions
        && let Err(e) = p.abort_transaction(TXN_TIMEOUT)
    {
        tracing::warn!("cannot abort the open transaction: {e}");
    }
}

/// Save the active warnings, then commit the offsets behind them. If the
/// warnings cannot be saved, nothing is committed (a restart then re-reads
/// from the last saved point): the failure is logged and counted. In
/// exactly-once mode a failing transaction stops the pipeline.
pub(super) fn commit(
    consumer: &BaseConsumer<LagReporter>,
    state: &mut State,
    mode: CommitMode,
) -> Result<(), PipelineError> {
    if !state.offsets.has_commits() {
        return Ok(());
    }
    if state.transactions.is_some() {
        return commit_transaction(consumer, state, false);
    }
    if let Some(dir) = &state.state_dir {
        let saved = warning_state::save(dir, state.engine.warning_book());
        if !WarningStateSaved::report(&saved, &state.metrics) {
            return Ok(());
        }
    }
    let commits = state.offsets.take_commits();
    if commits.is_empty() {
        return Ok(());
    }
    match consumer.commit(&partition_list(&commits), mode) {
        Ok(()) => state.metrics.commits.inc(),
        Err(e) => {
            tracing::warn!("offset commit failed: {e}");
            state.metrics.commit_failures.inc();
        }
    }
    Ok(())
}

/// Exactly-once: the book goes to `warnings.pending.json` with the offsets,
/// the transaction commits alerts and offsets together, and only then
/// does the book become the saved one. A crash in between is settled at
/// the next start by the offsets the group actually committed
/// ([`warning_state::settle_pending`]), so the saved book never holds
/// transitions of an aborted transaction.
fn commit_transaction(
    consumer: &BaseConsumer<LagReporter>,
    state: &mut State,
    with_states: bool,
) -> Result<(), PipelineError> {
    let commits = state.offsets.commits();
    if commits.is_empty() && !with_states {
        return Ok(());
    }
    if let Some(dir) = &state.state_dir {
        let saved = warning_state::save_pending(dir, state.engine.warning_book(), &commits);
        if !WarningStateSaved::report(&saved, &state.metrics) {
            return Ok(());
        }
    }
    let producer = state.transactions.as_ref().expect("exactly-once mode");
    let group = consumer.group_metadata().ok_or_else(|| {
        PipelineError::Invalid("exactly-once needs the consumer group's metadata".into())
    })?;
    let offsets_sent = if commits.is_empty() {
        Ok(())
    } else {
        producer.send_offsets_to_transaction(&partition_list(&commits), &group, TXN_TIMEOUT)
    };
    let committed = offsets_sent
        .and_then(|()| producer.commit_transaction(TXN_TIMEOUT))
        .and_then(|()| producer.begin_transaction());
    if let Err(e) = committed {
        state.metrics.commit_failures.inc();
        // Stop: the restart fences this producer, aborts the open
        // transaction and re-reads from the last committed one.
        return Err(PipelineError::Kafka(e));
    }
    state.offsets.mark_committed(&commits);
    state.metrics.commits.inc();
    state.checkpoint.in_open_transaction = false;
    if let Some(dir) = &state.state_dir {
        // If this fails, the pending book stays and is adopted at the
        // next start (its offsets are committed).
        let saved = warning_state::save(dir, state.engine.warning_book());
        if WarningStateSaved::report(&saved, &state.metrics) {
            warning_state::clear_pending(dir);
        }
    }
    Ok(())
}

/// Exactly-once with a state topic: commit the open transaction now, with
/// the partition states just written into it (and any offsets due), so
/// that the states become visible to the partitions' next owners.
pub(super) fn commit_with_states(
    consumer: &BaseConsumer<LagReporter>,
    state: &mut State,
) -> Result<(), PipelineError> {
    commit_transaction(consumer, state, true)
}

fn partition_list(commits: &[(String, i32, i64)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, offset) in commits {
        if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset)) {
            tracing::warn!("cannot build commit for {topic}/{partition}: {e}");
        }
    }
    tpl
}
