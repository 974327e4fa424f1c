//! The feedback topic: responders' commands from the city's dispatch
//! systems (JSON keyed by `warning_id`, see [`yujing_response::feedback`]).
//!
//! Every instance reads every partition of the topic (assigned, not a
//! consumer group: which instance owns a warning follows the readings
//! partitions, not the feedback key), from the offsets saved with the
//! response book, or from the end on a first start. A command is applied
//! by the instance whose book holds its warning. One for a warning no book
//! holds yet (its partition is being handed over) waits [`GRACE`], retried
//! at each tick; after that, the instance that owns the first readings
//! partition refuses it as unknown. A refused command is dead-lettered
//! with its original bytes and the reason, and changes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use yujing_response::{Command, Refusal};

use super::dead_letter::Why;
use super::{PipelineError, State};
use crate::fetch::Fetched;
use crate::telemetry::ResponseRefused;

/// How long a command for a warning no book holds waits for its owner.
pub const GRACE: Duration = Duration::from_secs(30);

/// The feedback topic's consumer, outside the pipeline's state so the
/// main loop can wait on it.
pub(super) struct FeedbackConsumer {
    consumer: StreamConsumer,
    topic: String,
    assigned: bool,
}

impl FeedbackConsumer {
    pub(super) fn new(config: ClientConfig, topic: String) -> Result<Self, PipelineError> {
        Ok(FeedbackConsumer {
            consumer: config.create()?,
            topic,
            assigned: false,
        })
    }

    /// Assign every partition of the topic, at `offsets` (next to read)
    /// or the end; again at each tick until the topic exists.
    pub(super) fn ensure_assigned(&mut self, offsets: &BTreeMap<i32, i64>) {
        if self.assigned {
            return;
        }
        let metadata = match self
            .consumer
            .fetch_metadata(None, Duration::from_millis(500))
        {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(topic = %self.topic, "feedback topic not reachable yet: {e}");
                return;
            }
        };
        let Some(t) = metadata.topics().iter().find(|t| t.name() == self.topic) else {
            return;
        };
        let mut tpl = TopicPartitionList::new();
        for p in t.partitions() {
            let at = offsets
                .get(&p.id())
                .map_or(Offset::End, |o| Offset::Offset(*o));
            if let Err(e) = tpl.add_partition_offset(&self.topic, p.id(), at) {
                tracing::warn!(topic = %self.topic, "cannot assign the feedback topic: {e}");
                return;
            }
        }
        if tpl.count() == 0 {
            return;
        }
        match self.consumer.assign(&tpl) {
            Ok(()) => {
                tracing::info!(topic = %self.topic, partitions = tpl.count(), "reading responders' feedback");
                self.assigned = true;
            }
            Err(e) => tracing::warn!(topic = %self.topic, "cannot assign the feedback topic: {e}"),
        }
    }

    /// The next command message (errors are logged; the consumer
    /// reconnects by itself).
    pub(super) async fn next(&self) -> Fetched {
        loop {
            match self.consumer.recv().await {
                Ok(m) => {
                    return Fetched {
                        topic: Arc::from(m.topic()),
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                        readings: Ok(Vec::new()),
                    };
                }
                Err(e) => {
                    tracing::warn!(topic = %self.topic, "feedback consumer: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// The next feedback message; never without a feedback topic, or before
/// it is assigned.
pub(super) async fn next(feedback: &Option<FeedbackConsumer>) -> Option<Fetched> {
    match feedback {
        Some(f) if f.assigned => Some(f.next().await),
        _ => std::future::pending().await,
    }
}

/// A command waiting for its warning's owner.
pub(super) struct Parked {
    m: Fetched,
    unit: String,
    command: Command,
    since: Instant,
}

/// Where the feedback topic has been read to, and what waits.
#[derive(Default)]
pub(super) struct FeedbackProgress {
    /// Next offset per partition.
    pub next: BTreeMap<i32, i64>,
    pub parked: Vec<Parked>,
    /// Offsets moved since the book was last saved.
    pub dirty: bool,
}

impl FeedbackProgress {
    /// What to save: per partition, the next offset, or the first parked
    /// one (a restart reads it again).
    pub(super) fn to_save(&self) -> BTreeMap<i32, i64> {
        let mut out = self.next.clone();
        for p in &self.parked {
            let o = out.entry(p.m.partition).or_insert(p.m.offset);
            *o = (*o).min(p.m.offset);
        }
        out
    }
}

impl State {
    /// A message of the feedback topic: apply it, park it, or refuse it.
    pub(super) async fn on_feedback(&mut self, m: Fetched) -> Result<(), PipelineError> {
        let Some(r) = &mut self.responses else {
            return Ok(());
        };
        r.feedback.next.insert(m.partition, m.offset + 1);
        r.feedback.dirty = true;
        match yujing_response::feedback::parse(m.key.as_deref(), &m.payload) {
            Err(refusal) => {
                self.refuse_feedback(&m, "-", &refusal).await;
                Ok(())
            }
            Ok((unit, command)) if r.book.get(&command.warning_id).is_none() => {
                r.feedback.parked.push(Parked {
                    m,
                    unit,
                    command,
                    since: Instant::now(),
                });
                Ok(())
            }
            Ok((unit, command)) => self.apply_feedback(&m, &unit, &command).await,
        }
    }

    async fn apply_feedback(
        &mut self,
        m: &Fetched,
        unit: &str,
        command: &Command,
    ) -> Result<(), PipelineError> {
        let Some(r) = &mut self.responses else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        match r.book.command(unit, command, &r.units, now) {
            Ok(change) => self.publish_responses(vec![change]).await,
            Err(refusal) => {
                self.refuse_feedback(m, unit, &refusal).await;
                Ok(())
            }
        }
    }

    /// Parked commands whose warning arrived are applied; those older than
    /// [`GRACE`] are refused as unknown by the instance that owns the
    /// first readings partition (`refuses_unknown`), and dropped by others.
    pub(super) async fn retry_parked(
        &mut self,
        refuses_unknown: bool,
    ) -> Result<(), PipelineError> {
        let Some(r) = &mut self.responses else {
            return Ok(());
        };
        if r.feedback.parked.is_empty() {
            return Ok(());
        }
        let parked = std::mem::take(&mut r.feedback.parked);
        for p in parked {
            let known = self
                .responses
                .as_ref()
                .is_some_and(|r| r.book.get(&p.command.warning_id).is_some());
            if known {
                self.apply_feedback(&p.m, &p.unit, &p.command).await?;
            } else if p.since.elapsed() < GRACE {
                if let Some(r) = &mut self.responses {
                    r.feedback.parked.push(p);
                }
            } else if refuses_unknown {
                let refusal = Refusal::UnknownWarning(p.command.warning_id.clone());
                self.refuse_feedback(&p.m, &p.unit, &refusal).await;
            } else {
                tracing::debug!(
                    warning_id = %p.command.warning_id,
                    "feedback for a warning another instance answers for"
                );
            }
        }
        if let Some(r) = &mut self.responses {
            r.feedback.dirty = true;
        }
        Ok(())
    }

    async fn refuse_feedback(&mut self, m: &Fetched, unit: &str, refusal: &Refusal) {
        ResponseRefused { unit, refusal }.emit(&self.metrics);
        let why = Why {
            label: refusal.reason(),
            message: refusal.to_string(),
        };
        self.dead_letter(m, &why, &self.dead_letter_topic).await;
    }
}
