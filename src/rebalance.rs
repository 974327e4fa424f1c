//! Rebalances of the readings consumer: note the partitions assigned and
//! revoked for the pipeline, and start the first assignment where a
//! checkpoint left off. [`LagReporter`], the readings consumer's context
//! (rebalance callbacks, and librdkafka statistics turned into the lag
//! metric), lives here with them.
//!
//! An eager rebalance (librdkafka's default assignors) revokes every
//! partition and then assigns the new set, in which an instance usually
//! keeps most of what it had. Partitions it keeps are not reported as
//! revoked: their state stays, and reading goes on from where the consumer
//! thread got to (not from the committed offset, which trails the open
//! windows: re-reading from there would count readings twice). Only the
//! partitions it lost are reported once the new assignment is known.
//!
//! A checkpoint holds the state of every partition this instance read
//! when it was written. It can only be taken up if the first assignment
//! after a restart gives this instance all of those partitions again:
//! then each starts at the checkpoint's position instead of the committed
//! offset. Otherwise (another instance took some over, or the group
//! changed) the checkpoint is declined and the committed offsets, which
//! always trail behind every open window, are replayed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

/// What became of a checkpoint's positions at the first assignment.
#[derive(Debug, Clone, PartialEq)]
pub enum Resume {
    /// No checkpoint to resume from.
    Nothing,
    /// Waiting for the first assignment: (topic, partition) → next offset.
    Pending(HashMap<(String, i32), i64>),
    /// The assignment covered the checkpoint; reading starts at its
    /// positions.
    Accepted,
    /// These partitions of the checkpoint went to another instance.
    Declined { missing: Vec<(String, i32)> },
}

/// Shared between the pipeline (which sets the positions and reads the
/// outcome) and the consumer context (which applies them).
#[derive(Clone)]
pub struct ResumePlan(Arc<Mutex<Resume>>);

impl Default for ResumePlan {
    fn default() -> Self {
        ResumePlan(Arc::new(Mutex::new(Resume::Nothing)))
    }
}

impl ResumePlan {
    fn lock(&self) -> std::sync::MutexGuard<'_, Resume> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resume at these positions at the first assignment.
    pub fn set(&self, positions: HashMap<(String, i32), i64>) {
        *self.lock() = Resume::Pending(positions);
    }

    /// The outcome so far.
    pub fn outcome(&self) -> Resume {
        self.lock().clone()
    }

    /// At an assignment: start the checkpoint's partitions at its
    /// positions if all of them are assigned here; decide only once.
    fn apply(&self, assignment: &mut TopicPartitionList) {
        let mut state = self.lock();
        let Resume::Pending(positions) = &*state else {
            return;
        };
        let assigned: std::collections::HashSet<(String, i32)> = assignment
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let mut missing: Vec<(String, i32)> = positions
            .keys()
            .filter(|k| !assigned.contains(*k))
            .cloned()
            .collect();
        if !missing.is_empty() {
            missing.sort();
            *state = Resume::Declined { missing };
            return;
        }
        for ((topic, partition), offset) in positions {
            if let Err(e) =
                assignment.set_partition_offset(topic, *partition, Offset::Offset(*offset))
            {
                tracing::warn!("cannot start {topic}/{partition} at {offset}: {e}");
            }
        }
        *state = Resume::Accepted;
    }
}

/// The partitions an eager rebalance revoked, each with the next offset
/// after the last message the consumer thread took from it (librdkafka's
/// application position, read once at the revocation), kept until the
/// assignment that follows.
#[derive(Default)]
pub struct Positions {
    revoking: Mutex<Vec<(Partition, Option<i64>)>>,
}

/// A readings topic's partition.
type Partition = (String, i32);

impl LagReporter {
    /// After an eager revocation, at the next assignment: report the
    /// partitions lost, and start the ones kept where the consumer thread
    /// got to. Returns the kept ones (not reported as newly assigned).
    fn settle_revoked(&self, assignment: &mut TopicPartitionList) -> HashSet<(String, i32)> {
        let revoking = std::mem::take(
            &mut *self
                .positions
                .revoking
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        if revoking.is_empty() {
            return HashSet::new();
        }
        let assigned: HashSet<(String, i32)> = assignment
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let mut kept = HashSet::new();
        let mut revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        for ((topic, partition), next) in revoking {
            if !assigned.contains(&(topic.clone(), partition)) {
                revoked.push((topic, partition));
                continue;
            }
            if let Some(next) = next
                && let Err(e) =
                    assignment.set_partition_offset(&topic, partition, Offset::Offset(next))
            {
                tracing::warn!("cannot resume {topic}/{partition} at {next}: {e}");
            }
            kept.insert((topic, partition));
        }
        kept
    }
}

impl ConsumerContext for LagReporter {
    /// librdkafka's rebalance, with the checkpoint's positions put into
    /// the first assignment before it is applied.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let kept = self.settle_revoked(tpl);
                self.resume.apply(tpl);
                if let Some(h) = &self.handover {
                    h.take_over(tpl);
                }
                let applied = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = applied {
                    tracing::error!("cannot take up the assigned partitions: {e}");
                }
                let mut assigned = self.assigned.lock().unwrap_or_else(|e| e.into_inner());
                for e in tpl.elements() {
                    let key = (e.topic().to_owned(), e.partition());
                    if !kept.contains(&key) {
                        assigned.push(key);
                    }
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let partitions = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect::<Vec<_>>();
                if let Some(h) = &self.handover {
                    h.hand_over(partitions.clone());
                }
                if cooperative || self.handover.is_some() {
                    // Lost for sure (cooperative), or already handed over.
                    self.revoked
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend(partitions);
                } else {
                    // Eager: which of them stay is known at the assignment;
                    // those resume where the consumer thread got to.
                    let at = consumer.position().ok();
                    let next = |topic: &str, partition: i32| match at
                        .as_ref()?
                        .find_partition(topic, partition)?
                        .offset()
                    {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    };
                    *self
                        .positions
                        .revoking
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = partitions
                        .into_iter()
                        .map(|(t, p)| {
                            let n = next(&t, p);
                            ((t, p), n)
                        })
                        .collect();
                }
                let released = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = released {
                    tracing::error!("cannot release the revoked partitions: {e}");
                }
            }
            other => {
                tracing::error!("rebalance error: {other:?}");
                if let Err(e) = consumer.unassign() {
                    tracing::error!("cannot release the partitions: {e}");
                }
            }
        }
    }
}

/// Partitions taken away or given by a rebalance, queued by the consumer
/// context for the pipeline.
pub type RevokedPartitions = std::sync::Arc<std::sync::Mutex<Vec<(String, i32)>>>;

/// Consumer context that turns librdkafka statistics into metrics and
/// notes partitions a rebalance revokes.
pub struct LagReporter {
    pub metrics: crate::telemetry::Metrics,
    pub revoked: RevokedPartitions,
    /// Partitions a rebalance assigned (they hold the watermark back until
    /// their first reading or the idle timeout).
    pub assigned: RevokedPartitions,
    /// Where a checkpoint says reading resumes (first assignment only).
    pub resume: ResumePlan,
    /// With `kafka.state_topic`: hand partitions over at rebalances.
    pub handover: Option<crate::pipeline::HandoverLink>,
    /// How far the consumer thread got in each partition.
    pub positions: Positions,
}

impl rdkafka::ClientContext for LagReporter {
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // -1 is librdkafka's internal UA partition; negative
                // offsets mean "not known yet".
                if *partition < 0 || p.hi_offset < 0 || p.app_offset < 0 {
                    continue;
                }
                // Lag of reading, not of committing: the committed offset
                // trails on purpose while windows are open (see
                // yujing_uncommitted_messages).
                self.metrics
                    .consumer_lag
                    .with_label_values(&[topic, &partition.to_string()])
                    .set((p.hi_offset - p.app_offset).max(0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(partitions: &[i32]) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition("r", *p);
        }
        tpl
    }

    #[test]
    fn an_eager_rebalance_reports_only_lost_partitions_and_resumes_kept_ones() {
        let context = LagReporter {
            metrics: crate::telemetry::Metrics::new(),
            revoked: Default::default(),
            assigned: Default::default(),
            resume: ResumePlan::default(),
            handover: None,
            positions: Positions::default(),
        };
        // The consumer thread had taken offsets 41 of partition 0 and 9 of
        // partition 1 when they were revoked.
        *context.positions.revoking.lock().unwrap() =
            vec![(("r".into(), 0), Some(42)), (("r".into(), 1), Some(10))];
        let mut tpl = assignment(&[0, 2]);
        let kept = context.settle_revoked(&mut tpl);
        assert_eq!(kept, HashSet::from([("r".to_owned(), 0)]));
        // Partition 0 goes on after the last message fetched, not from
        // the committed offset; partition 2 is new.
        assert_eq!(
            tpl.find_partition("r", 0).unwrap().offset(),
            Offset::Offset(42)
        );
        assert_eq!(
            tpl.find_partition("r", 2).unwrap().offset(),
            Offset::Invalid
        );
        assert_eq!(*context.revoked.lock().unwrap(), vec![("r".to_owned(), 1)]);
        assert!(context.positions.revoking.lock().unwrap().is_empty());
    }

    #[test]
    fn the_first_assignment_resumes_only_if_it_covers_the_checkpoint() {
        let plan = ResumePlan::default();
        plan.set(HashMap::from([(("r".into(), 0), 40), (("r".into(), 1), 7)]));
        let mut partial = assignment(&[0, 2]);
        plan.apply(&mut partial);
        assert_eq!(
            plan.outcome(),
            Resume::Declined {
                missing: vec![("r".into(), 1)]
            }
        );
        assert_eq!(
            partial.find_partition("r", 0).unwrap().offset(),
            Offset::Invalid
        );

        let plan = ResumePlan::default();
        plan.set(HashMap::from([(("r".into(), 0), 40), (("r".into(), 1), 7)]));
        let mut all = assignment(&[0, 1, 2]);
        plan.apply(&mut all);
        assert_eq!(plan.outcome(), Resume::Accepted);
        assert_eq!(
            all.find_partition("r", 0).unwrap().offset(),
            Offset::Offset(40)
        );
        assert_eq!(
            all.find_partition("r", 1).unwrap().offset(),
            Offset::Offset(7)
        );
        // A partition the checkpoint never read starts at its committed offset.
        assert_eq!(
            all.find_partition("r", 2).unwrap().offset(),
            Offset::Invalid
        );
        // Later assignments are left alone.
        let mut later = assignment(&[0]);
        plan.apply(&mut later);
        assert_eq!(
            later.find_partition("r", 0).unwrap().offset(),
            Offset::Invalid
        );
    }
}
