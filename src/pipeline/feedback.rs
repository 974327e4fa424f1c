//! The feedback topic: responders' commands from the city's dispatch
//! systems (JSON keyed by `warning_id`, see [`yujing_response::feedback`]).
//!
//! Every instance reads every partition of the topic (assigned, not a
//! consumer group: which instance owns a warning follows the readings
//! partitions, not the feedback key), from the offsets saved with the
//! response book, or from the end on a first start. A command is applied
//! by the instance whose book holds its warning. One for a warning this
//! book does not hold waits `feedback_grace` (30 s by default; its
//! partition may be on its way here), retried at each tick. After that it
//! is left to its owner if the warning was ever published on the response
//! topic (which every instance also reads, from a day back), and
//! otherwise refused as unknown by the instance that owns the first
//! readings partition (so once, not by every instance). A refused command
//! is dead-lettered with its original bytes and the reason, and changes
//! nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use yujing_response::{Command, Refusal};

use super::dead_letter::Why;
use super::{PipelineError, State};
use crate::fetch::Fetched;
use crate::telemetry::ResponseCommand;

/// The feedback topic's consumer, outside the pipeline's state so the
/// main loop can wait on it.
pub(super) struct FeedbackConsumer {
    consumer: StreamConsumer,
    topic: String,
    /// The response topic: which warnings some instance published.
    responses_topic: String,
    assigned: bool,
}

/// What the feedback consumer reads.
pub(super) enum FeedbackItem {
    Command(Fetched),
    /// A response change of this warning was published (by any instance).
    Published(String),
}

/// How far back the response topic is read at start.
const PUBLISHED_SPAN_MS: i64 = 24 * 3_600_000;

impl FeedbackConsumer {
    pub(super) fn new(
        config: ClientConfig,
        topic: String,
        responses_topic: String,
    ) -> Result<Self, PipelineError> {
        Ok(FeedbackConsumer {
            consumer: config.create()?,
            topic,
            responses_topic,
            assigned: false,
        })
    }

    /// Assign every partition of the feedback topic, at `offsets` (next to
    /// read) or the end, and of the response topic from a day before
    /// `now_ms`; again at each tick until both topics exist.
    pub(super) fn ensure_assigned(&mut self, offsets: &BTreeMap<i32, i64>, now_ms: i64) {
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
        let Some(r) = metadata
            .topics()
            .iter()
            .find(|t| t.name() == self.responses_topic)
        else {
            return;
        };
        let mut times = TopicPartitionList::new();
        for p in r.partitions() {
            let _ = times.add_partition_offset(
                &self.responses_topic,
                p.id(),
                Offset::Offset(now_ms - PUBLISHED_SPAN_MS),
            );
        }
        let found = self
            .consumer
            .offsets_for_times(times.clone(), Duration::from_secs(5))
            .unwrap_or_else(|e| {
                tracing::debug!("the response topic's offsets a day back are not known ({e}); reading it from its start");
                times
            });
        for e in found.elements() {
            let at = match e.offset() {
                Offset::Offset(o) if o >= 0 => Offset::Offset(o),
                // No message since then.
                Offset::End => Offset::End,
                _ => Offset::Beginning,
            };
            let _ = tpl.add_partition_offset(&self.responses_topic, e.partition(), at);
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
    pub(super) async fn next(&self) -> FeedbackItem {
        loop {
            match self.consumer.recv().await {
                Ok(m) if m.topic() == self.responses_topic => {
                    let id = m
                        .payload()
                        .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
                        .and_then(|v| v["warning_id"].as_str().map(str::to_owned));
                    if let Some(id) = id {
                        return FeedbackItem::Published(id);
                    }
                }
                Ok(m) => {
                    return FeedbackItem::Command(Fetched {
                        topic: Arc::from(m.topic()),
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                        readings: Ok(Vec::new()),
                    });
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
pub(super) async fn next(feedback: &Option<FeedbackConsumer>) -> Option<FeedbackItem> {
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
    /// How long a command waits for its warning's owner.
    pub grace: Duration,
    /// Warnings some instance published a response change of, and when
    /// this instance last saw one (pipeline clock).
    pub published: HashMap<String, i64>,
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
    /// A message of the feedback topic: apply it, park it, or refuse it;
    /// or a published response change, remembered.
    pub(super) async fn on_feedback(&mut self, item: FeedbackItem) -> Result<(), PipelineError> {
        let now = self.clock.now_ms();
        let Some(r) = &mut self.responses else {
            return Ok(());
        };
        let m = match item {
            FeedbackItem::Published(id) => {
                r.feedback.published.insert(id, now);
                return Ok(());
            }
            FeedbackItem::Command(m) => m,
        };
        r.feedback.next.insert(m.partition, m.offset + 1);
        r.feedback.dirty = true;
        match yujing_response::feedback::parse(m.key.as_deref(), &m.payload) {
            Err(refusal) => {
                self.refuse_feedback(&m, "-", "unread", &refusal).await;
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
            Ok(change) => {
                ResponseCommand {
                    source: "kafka",
                    action: command.action.as_str(),
                    unit,
                    refusal: None,
                }
                .emit(&self.metrics);
                self.publish_responses(vec![change]).await
            }
            Err(refusal) => {
                self.refuse_feedback(m, unit, command.action.as_str(), &refusal)
                    .await;
                Ok(())
            }
        }
    }

    /// Parked commands whose warning arrived are applied; those older than
    /// the grace are refused as unknown by the instance that owns the
    /// first readings partition (`refuses_unknown`), and dropped by others.
    pub(super) async fn retry_parked(
        &mut self,
        refuses_unknown: bool,
    ) -> Result<(), PipelineError> {
        let now = self.clock.now_ms();
        let Some(r) = &mut self.responses else {
            return Ok(());
        };
        // Forgotten after a day, parked commands or not (it would grow for
        // as long as yujing runs otherwise).
        r.feedback
            .published
            .retain(|_, at| *at >= now - PUBLISHED_SPAN_MS);
        if r.feedback.parked.is_empty() {
            return Ok(());
        }
        let parked = std::mem::take(&mut r.feedback.parked);
        let before = parked.len();
        let grace = r.feedback.grace;
        for p in parked {
            let (known, elsewhere) = self.responses.as_ref().map_or((false, false), |r| {
                (
                    r.book.get(&p.command.warning_id).is_some(),
                    r.feedback.published.contains_key(&p.command.warning_id),
                )
            });
            if known {
                self.apply_feedback(&p.m, &p.unit, &p.command).await?;
            } else if p.since.elapsed() < grace {
                if let Some(r) = &mut self.responses {
                    r.feedback.parked.push(p);
                }
            } else if refuses_unknown && !elsewhere {
                let refusal = Refusal::UnknownWarning(p.command.warning_id.clone());
                self.refuse_feedback(&p.m, &p.unit, p.command.action.as_str(), &refusal)
                    .await;
            } else {
                tracing::debug!(
                    warning_id = %p.command.warning_id,
                    "feedback for a warning another instance answers for"
                );
            }
        }
        // The saved offsets move only when a parked command left.
        if let Some(r) = &mut self.responses
            && r.feedback.parked.len() != before
        {
            r.feedback.dirty = true;
        }
        Ok(())
    }

    async fn refuse_feedback(&mut self, m: &Fetched, unit: &str, action: &str, refusal: &Refusal) {
        ResponseCommand {
            source: "kafka",
            action,
            unit,
            refusal: Some(refusal),
        }
        .emit(&self.metrics);
        let why = Why {
            label: refusal.reason(),
            message: refusal.to_string(),
        };
        self.dead_letter(m, &why, &self.dead_letter_topic).await;
    }
}
