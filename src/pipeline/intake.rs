//! Intake: each batch from the consumer thread, message by message —
//! place the readings, dead-letter what is refused, copy duplicates and
//! late readings aside, note partitions assigned and revoked.

use super::{CLOCK_EVERY, CONSUMER, PipelineError, State, TopicCounters};
use crate::fetch::{FetchItem, Fetched};
use crate::telemetry::{DuplicateReadings, LateReadings};

impl State {
    /// Handle a batch from the consumer thread (what librdkafka had ready,
    /// at most 1 024 messages), closing windows after each message as the
    /// watermark moves: a reading is late or not the same way whatever the
    /// batching.
    pub(super) async fn on_batch(&mut self, batch: Vec<FetchItem>) -> Result<(), PipelineError> {
        for item in batch {
            match item {
                FetchItem::Message(m) => {
                    if self.handed_over(&m.topic, m.partition) {
                        // Fetched before its partition was handed over:
                        // the new owner reads it.
                        continue;
                    }
                    if !self.consumer_up {
                        self.consumer_up = true;
                        self.metrics.health.update(CONSUMER, |h| {
                            h.up = true;
                            h.last_error = None;
                        });
                    }
                    self.on_message(m).await;
                    self.close_ready().await?;
                }
                FetchItem::Error {
                    message,
                    all_brokers_down,
                } => {
                    // librdkafka reconnects by itself; until a message
                    // arrives again, /health shows the consumer down.
                    tracing::warn!("kafka consumer error: {message}");
                    self.metrics.kafka_errors.inc();
                    let was_up = std::mem::replace(&mut self.consumer_up, false);
                    self.metrics.health.update(CONSUMER, |h| {
                        h.up = false;
                        h.last_error = Some(match &h.last_error {
                            // Keep what cut the connections (a refused
                            // password, a certificate) in sight.
                            Some(cause) if all_brokers_down && !was_up => {
                                if cause.starts_with(&message) {
                                    cause.clone()
                                } else {
                                    format!("{message} (after: {cause})")
                                }
                            }
                            _ => message,
                        });
                    });
                }
                FetchItem::Assigned { topic, partition } => {
                    // Until it delivers (or idles out), an assigned
                    // partition holds the watermark: its backlog may be
                    // older than what the others already delivered.
                    tracing::info!(topic, partition, "partition assigned");
                    self.take_up_checkpoint();
                    self.take_over(&topic, partition);
                    self.engine
                        .expect_partition(&topic, partition, self.clock.now_ms());
                }
                FetchItem::Revoked { topic, partition } => {
                    // Another instance owns it now: stop committing its
                    // offsets (they would overwrite the new owner's) and
                    // stop waiting for its watermark. Offsets not yet
                    // committed are re-read by the new owner.
                    tracing::info!(topic, partition, "partition revoked by a rebalance");
                    self.metrics.partitions_revoked.inc();
                    self.offsets.remove(&topic, partition);
                    let forgotten = self.engine.forget_partition(&topic, partition);
                    if forgotten > 0 {
                        tracing::info!(
                            topic,
                            partition,
                            forgotten,
                            "per-sensor warnings of the revoked partition forgotten here: its new owner grades those sensors now"
                        );
                    }
                    self.update_active_gauge();
                }
            }
        }
        Ok(())
    }

    async fn on_message(&mut self, mut fetched: Fetched) {
        let readings = std::mem::replace(&mut fetched.readings, Ok(Vec::new()));
        let m = &fetched;
        let (topic, partition, offset) = (&*m.topic, m.partition, m.offset);
        self.topic_counters(topic).consumed.inc();
        self.summary.messages += 1;

        let readings = match readings {
            Ok(r) => r,
            Err(e) => return self.refuse(m, e).await,
        };
        if self.summary.messages.is_multiple_of(CLOCK_EVERY) {
            self.now_ms = self.clock.now_ms();
        }
        let placed = match self.engine.place(topic, partition, &readings, self.now_ms) {
            Ok(p) => p,
            Err(e) => return self.refuse(m, e).await,
        };
        self.metrics.readings_unused.inc_by(placed.unused);
        self.topic_counters(topic).accepted.inc_by(placed.accepted);
        self.summary.readings += placed.accepted;
        let done_at = placed.done_at;

        if let Some((e, count)) = placed.duplicates {
            DuplicateReadings {
                topic,
                partition,
                offset,
                count,
            }
            .emit(&self.metrics);
            // A copy for the record; the readings were skipped, the
            // message's new readings (if any) were placed.
            self.dead_letter(m, &(&e).into(), &self.dead_letter_topic)
                .await;
        }

        if let Some((e, late_count)) = placed.late {
            LateReadings {
                topic,
                partition,
                offset,
                count: late_count,
            }
            .emit(&self.metrics);
            self.summary.late_readings += late_count;
            self.dead_letter(m, &(&e).into(), &self.late_topic).await;
        }
        self.offsets.consumed(topic, partition, offset, done_at);
    }

    /// Per-topic counters: resolved by label once per topic, then a plain
    /// map lookup per message (no label hashing, no handle clones).
    fn topic_counters(&mut self, topic: &str) -> &TopicCounters {
        if !self.topic_counters.contains_key(topic) {
            let c = TopicCounters {
                consumed: self.metrics.messages_consumed.with_label_values(&[topic]),
                accepted: self.metrics.readings_accepted.with_label_values(&[topic]),
            };
            self.topic_counters.insert(topic.to_owned(), c);
        }
        &self.topic_counters[topic]
    }
}
