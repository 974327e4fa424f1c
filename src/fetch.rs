//! The readings consumer on its own thread: poll librdkafka, copy each
//! message out, decode it, and hand batches to the pipeline task.
//!
//! Polling and JSON decoding run here, next to librdkafka's threads; the
//! pipeline task places readings, closes windows and delivers warnings.
//! The channel is bounded: when the pipeline falls behind (a slow sink),
//! this thread waits and librdkafka stops fetching. Offsets are committed
//! by the pipeline task through the same consumer (librdkafka is
//! thread-safe); messages still in the channel at shutdown are simply read
//! again after a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::mpsc;
use yujing_ingest::{DecodeError, Reading, decode_readings};

use crate::rebalance::LagReporter;

/// Messages per batch handed to the pipeline.
const BATCH: usize = 1024;

/// One message, owned, with its decoded readings.
pub struct Fetched {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub readings: Result<Vec<Reading>, DecodeError>,
}

pub enum FetchItem {
    Message(Fetched),
    /// A consumer error librdkafka reported (it recovers by itself).
    Error {
        message: String,
        /// "All broker connections are down": the consequence of another
        /// error (refused authentication, TLS, network), rarely the cause.
        all_brokers_down: bool,
    },
    /// A rebalance took this partition away.
    Revoked {
        topic: String,
        partition: i32,
    },
    /// A rebalance gave this partition (before its first message).
    Assigned {
        topic: String,
        partition: i32,
    },
}

pub struct Fetcher {
    consumer: Arc<BaseConsumer<LagReporter>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    batches: mpsc::Receiver<Vec<FetchItem>>,
}

impl Fetcher {
    /// Start polling `consumer` (already subscribed) on a new thread.
    /// `max_message_bytes`: larger messages are refused undecoded.
    pub fn start(
        consumer: BaseConsumer<LagReporter>,
        max_message_bytes: usize,
    ) -> std::io::Result<Self> {
        let consumer = Arc::new(consumer);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, batches) = mpsc::channel(4);
        let thread = {
            let (consumer, stop) = (consumer.clone(), stop.clone());
            std::thread::Builder::new()
                .name("yujing-fetch".into())
                .spawn(move || poll_loop(&consumer, &stop, &tx, max_message_bytes))?
        };
        Ok(Fetcher {
            consumer,
            stop,
            thread: Some(thread),
            batches,
        })
    }

    pub fn consumer(&self) -> &BaseConsumer<LagReporter> {
        &self.consumer
    }

    /// The next batch; `None` once the thread has stopped.
    pub async fn next(&mut self) -> Option<Vec<FetchItem>> {
        self.batches.recv().await
    }

    /// Leave the consumer group, once the thread has stopped and the last
    /// offsets are committed: the revocation is served here by a plain
    /// poll (bounded), so that dropping the consumer afterwards has nothing
    /// left to revoke. Revoking inside librdkafka's close could hang when
    /// the group was rebalancing at the same time (seen with two instances
    /// stopping together).
    pub fn leave_group(&mut self) {
        self.stop();
        self.consumer.unsubscribe();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline
            && self.consumer.assignment().is_ok_and(|a| a.count() > 0)
        {
            // Messages still handed out are not committed: read again later.
            let _ = self.consumer.poll(Duration::from_millis(100));
        }
    }

    /// Stop polling and wait for the thread.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // A thread blocked on a full channel wakes up with an error.
        self.batches.close();
        while self.batches.try_recv().is_ok() {}
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        self.stop();
    }
}

fn poll_loop(
    consumer: &BaseConsumer<LagReporter>,
    stop: &AtomicBool,
    tx: &mpsc::Sender<Vec<FetchItem>>,
    max_message_bytes: usize,
) {
    let mut topics: HashMap<String, Arc<str>> = HashMap::new();
    let mut convert =
        |m: rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'_>>| match m {
            Ok(m) => {
                let topic = match topics.get(m.topic()) {
                    Some(t) => t.clone(),
                    None => {
                        let t: Arc<str> = Arc::from(m.topic());
                        topics.insert(m.topic().to_owned(), t.clone());
                        t
                    }
                };
                let payload = m.payload().unwrap_or(&[]);
                FetchItem::Message(Fetched {
                    topic,
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    readings: if payload.len() > max_message_bytes {
                        Err(DecodeError::Oversized {
                            bytes: payload.len(),
                            limit: max_message_bytes,
                        })
                    } else {
                        decode_readings(payload)
                    },
                    payload: payload.to_vec(),
                })
            }
            Err(e) => FetchItem::Error {
                all_brokers_down: e.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown),
                message: e.to_string(),
            },
        };
    // Revocations arrive inside `poll` (the consumer context queues them):
    // hand them over after the messages polled before them.
    let revoked = |batch: &mut Vec<FetchItem>| {
        let mut queue = consumer
            .context()
            .revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        batch.extend(
            queue
                .drain(..)
                .map(|(topic, partition)| FetchItem::Revoked { topic, partition }),
        );
    };
    // Assignments also arrive inside `poll`, before the partition's first
    // message: hand them over ahead of the messages.
    let assigned = |batch: &mut Vec<FetchItem>| {
        let mut queue = consumer
            .context()
            .assigned
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        batch.extend(
            queue
                .drain(..)
                .map(|(topic, partition)| FetchItem::Assigned { topic, partition }),
        );
    };
    while !stop.load(Ordering::Relaxed) {
        let mut batch = Vec::with_capacity(BATCH);
        // Wait a little for the first message, then take what is ready.
        let first = consumer.poll(Duration::from_millis(100));
        assigned(&mut batch);
        if let Some(first) = first {
            batch.push(convert(first));
            while batch.len() < BATCH {
                match consumer.poll(Duration::ZERO) {
                    Some(m) => batch.push(convert(m)),
                    None => break,
                }
            }
        }
        revoked(&mut batch);
        if batch.is_empty() {
            continue;
        }
        if tx.blocking_send(batch).is_err() {
            return;
        }
    }
}
