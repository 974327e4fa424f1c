//! Handing partitions over between instances through `kafka.state_topic`,
//! a compacted topic keyed `<topic>/<partition>`.
//!
//! - A rebalance takes a partition away: the consumer context asks the
//!   pipeline (and waits) to write the partition's state there, with the
//!   next offset to read, and to drop it; messages of that partition still
//!   on their way are then ignored.
//! - A rebalance gives a partition: the consumer context reads its latest
//!   state from the topic, starts reading at its offset, and the pipeline
//!   merges it into its engine before the partition's first message.
//! - Every `checkpoint_every` and at shutdown, the state of every owned
//!   partition is written too, so a crash costs a replay since the last
//!   write, not since the oldest open window.
//!
//! A state written for other sensors, metrics or windows is not used: the
//! partition is then read from its committed offset, which trails every
//! open window, as without handover.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::{PipelineError, State, commit, state_chunks};
use crate::config::KafkaConfig;
use crate::rebalance::LagReporter;
use crate::telemetry::{HandoverRead, HandoverWritten};
use yujing_engine::PartitionState;

/// How long a rebalance waits for the pipeline to write what it hands over.
pub const HANDOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// Partitions being taken away; `done` is told once their state is written.
pub struct HandoverRequest {
    pub partitions: Vec<(String, i32)>,
    pub done: std::sync::mpsc::Sender<()>,
}

/// States read at an assignment, waiting for the pipeline.
pub type Arrivals = Arc<Mutex<HashMap<(String, i32), PartitionState>>>;

/// The consumer context's side.
#[derive(Clone)]
pub struct HandoverLink {
    pub requests: mpsc::UnboundedSender<HandoverRequest>,
    pub reader: Arc<StateReader>,
    pub arrivals: Arrivals,
    /// The engine's fingerprint: only states that fit it are taken up.
    pub fingerprint: Arc<Mutex<String>>,
}

impl HandoverLink {
    /// At a revocation: have the pipeline write and drop these partitions'
    /// state; wait for it (bounded), unless the pipeline is stopping.
    pub fn hand_over(&self, partitions: Vec<(String, i32)>) {
        let (done, wait) = std::sync::mpsc::channel();
        if self
            .requests
            .send(HandoverRequest { partitions, done })
            .is_err()
        {
            return;
        }
        if wait.recv_timeout(HANDOVER_TIMEOUT).is_err() {
            tracing::error!(
                "the partitions' state was not written in {HANDOVER_TIMEOUT:?}; their next owner replays them from the committed offsets"
            );
        }
    }

    /// At an assignment: read the partitions' latest states, start each
    /// at its state's offset, and leave the states for the pipeline.
    pub fn take_over(&self, assignment: &mut TopicPartitionList) {
        let wanted: HashSet<(String, i32)> = assignment
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let started = Instant::now();
        let states = self.reader.read(&wanted);
        let fingerprint = self
            .fingerprint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut arrivals = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
        let mut unfit = 0;
        for ((topic, partition), state) in states {
            let Some(next) = state.progress.as_ref().map(|p| p.next) else {
                continue;
            };
            if state.fingerprint != fingerprint {
                unfit += 1;
                continue;
            }
            if let Err(e) = assignment.set_partition_offset(&topic, partition, Offset::Offset(next))
            {
                tracing::warn!("cannot start {topic}/{partition} at {next}: {e}");
                continue;
            }
            arrivals.insert((topic, partition), state);
        }
        HandoverRead {
            found: arrivals.len(),
            unfit,
            seconds: started.elapsed().as_secs_f64(),
        }
        .log();
    }
}

/// Reads the latest state per partition from the state topic.
pub struct StateReader {
    pub config: ClientConfig,
    pub topic: String,
}

impl StateReader {
    pub fn read(&self, wanted: &HashSet<(String, i32)>) -> HashMap<(String, i32), PartitionState> {
        let mut out = HashMap::new();
        if let Err(e) = self.read_into(wanted, &mut out) {
            tracing::error!(
                topic = %self.topic,
                "cannot read the state topic; partitions are replayed from their committed offsets: {e}"
            );
            out.clear();
        }
        out
    }

    fn read_into(
        &self,
        wanted: &HashSet<(String, i32)>,
        out: &mut HashMap<(String, i32), PartitionState>,
    ) -> Result<(), rdkafka::error::KafkaError> {
        let consumer: BaseConsumer = self.config.create()?;
        let timeout = Duration::from_secs(10);
        let metadata = consumer.fetch_metadata(Some(&self.topic), timeout)?;
        let mut partitions = Vec::new();
        for t in metadata.topics() {
            let count = i32::try_from(t.partitions().len()).unwrap_or(i32::MAX);
            let needed: HashSet<i32> = wanted
                .iter()
                .map(|(_, p)| state_chunks::state_partition(*p, count))
                .collect();
            partitions.extend(
                t.partitions()
                    .iter()
                    .map(|p| p.id())
                    .filter(|p| needed.contains(p)),
            );
        }
        let mut states = state_chunks::Assembler::default();
        let reached = crate::topics::read_to_end(
            &consumer,
            &self.topic,
            partitions,
            Instant::now() + Duration::from_secs(20),
            |m| {
                let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                    return;
                };
                if state_chunks::partition_of(key).is_some_and(|p| wanted.contains(&p)) {
                    states.add(key, m.payload());
                }
            },
        )?;
        if !reached {
            tracing::warn!(
                topic = %self.topic,
                "the state topic was not read to its end within 20 s; partitions whose states were not reached are replayed from their committed offsets"
            );
        }
        let (found, incomplete) = states.finish();
        if incomplete > 0 {
            tracing::warn!(
                topic = %self.topic,
                incomplete,
                "partition states in chunks with chunks missing; those partitions are replayed from their committed offsets"
            );
        }
        out.extend(found);
        Ok(())
    }
}

/// The two sides of a handover through `topic`: the consumer context's
/// link (requests to the pipeline, the state reader) and the pipeline's
/// side, which writes states with `producer`.
pub(super) fn wire(
    topic: &str,
    kafka: &KafkaConfig,
    consumer_properties: &BTreeMap<String, String>,
    fingerprint: String,
    producer: FutureProducer,
) -> Result<
    (
        mpsc::UnboundedReceiver<HandoverRequest>,
        HandoverLink,
        Handover,
    ),
    PipelineError,
> {
    let (tx, rx) = mpsc::unbounded_channel();
    let arrivals = Arrivals::default();
    let fingerprint = Arc::new(Mutex::new(fingerprint));
    let reader = StateReader {
        config: yujing_ingest::kafka::client_config(
            &kafka.bootstrap_servers,
            &[("enable.partition.eof", "false")],
            consumer_properties,
            &[
                ("group.id", &format!("{}.state-reader", kafka.group_id)),
                ("enable.auto.commit", "false"),
                // Exactly once, a state of an aborted transaction is
                // never taken up, whatever the readings consumer uses.
                ("isolation.level", "read_committed"),
            ],
        ),
        topic: topic.to_owned(),
    };
    let link = HandoverLink {
        requests: tx,
        reader: Arc::new(reader),
        arrivals: arrivals.clone(),
        fingerprint: fingerprint.clone(),
    };
    let state_partitions = std::sync::OnceLock::new();
    if let Some(n) = state_topic_partitions(&producer, topic).map_err(PipelineError::Invalid)? {
        let _ = state_partitions.set(n);
    }
    let side = Handover {
        topic: topic.to_owned(),
        producer,
        state_partitions,
        arrivals,
        fingerprint,
        handed_over: HashSet::new(),
        chunk_bytes: kafka.state_chunk_bytes,
    };
    Ok((rx, link, side))
}

/// The state topic's partition count, asked of the broker: `None` if it
/// cannot be asked now (asked again at the next write), an error if the
/// topic does not exist.
fn state_topic_partitions(producer: &FutureProducer, topic: &str) -> Result<Option<i32>, String> {
    // All topics: asking for the one topic could have the broker create
    // it (uncompacted) instead of saying it is missing.
    let metadata = match producer
        .client()
        .fetch_metadata(None, Duration::from_secs(10))
    {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(
                topic,
                "cannot ask the broker about the state topic yet: {e}"
            );
            return Ok(None);
        }
    };
    let create = "create it (cleanup.policy=compact, as many partitions as the readings topic) before starting yujing";
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(format!(
            "kafka.state_topic {topic:?} does not exist; {create}"
        ));
    };
    if let Some(e) = t.error() {
        return Err(format!(
            "kafka.state_topic {topic:?}: the broker answers {e:?}; {create}"
        ));
    }
    Ok(i32::try_from(t.partitions().len()).ok().filter(|n| *n > 0))
}

impl Handover {
    fn partitions(&self) -> Option<i32> {
        if let Some(n) = self.state_partitions.get() {
            return Some(*n);
        }
        let n = state_topic_partitions(&self.producer, &self.topic)
            .ok()
            .flatten()?;
        Some(*self.state_partitions.get_or_init(|| n))
    }
}

/// The pipeline's side.
pub(super) struct Handover {
    pub topic: String,
    pub producer: FutureProducer,
    pub arrivals: Arrivals,
    pub fingerprint: Arc<Mutex<String>>,
    /// Partitions handed over whose messages may still be on their way.
    pub handed_over: HashSet<(String, i32)>,
    /// Largest record written; a larger state goes in chunks.
    pub chunk_bytes: usize,
    /// The state topic's partition count (asked again at a write until
    /// known): states go to [`state_chunks::state_partition`].
    pub state_partitions: std::sync::OnceLock<i32>,
}

impl State {
    /// Whether a message of (topic, partition) belongs to a partition
    /// already handed over (it is ignored: the new owner reads it).
    pub(super) fn handed_over(&self, topic: &str, partition: i32) -> bool {
        self.handover.as_ref().is_some_and(|h| {
            !h.handed_over.is_empty() && h.handed_over.contains(&(topic.to_owned(), partition))
        })
    }

    /// A rebalance takes these partitions away: write their state to the
    /// state topic and drop it here. Exactly once, the states are written
    /// in the open transaction, which is committed before the rebalance
    /// goes on (its failure stops the pipeline, as any failed commit).
    pub(super) async fn hand_over(
        &mut self,
        consumer: &BaseConsumer<LagReporter>,
        request: HandoverRequest,
    ) -> Result<(), PipelineError> {
        for (topic, partition) in &request.partitions {
            let mut state = self.engine.partition_state(topic, *partition, true);
            self.attach_responses(&mut state, true);
            state.progress = self.offsets.progress(topic, *partition);
            if state.progress.is_some() {
                self.write_partition_state(&state).await;
            }
            if let Some(h) = &mut self.handover {
                h.handed_over.insert((topic.clone(), *partition));
            }
        }
        let committed = if self.transactions.is_some() {
            commit::commit_with_states(consumer, self)
        } else {
            Ok(())
        };
        for (topic, partition) in &request.partitions {
            self.offsets.remove(topic, *partition);
        }
        self.update_active_gauge();
        let _ = request.done.send(());
        committed
    }

    /// Every owned partition's state to the state topic (a checkpoint).
    pub(super) async fn write_all_partition_states(&mut self) {
        for progress in self.offsets.snapshot() {
            let mut state = self
                .engine
                .partition_state(&progress.topic, progress.partition, false);
            self.attach_responses(&mut state, false);
            state.progress = Some(progress);
            self.write_partition_state(&state).await;
        }
    }

    async fn write_partition_state(&self, state: &PartitionState) {
        let Some(h) = &self.handover else { return };
        let started = Instant::now();
        let key = format!("{}/{}", state.topic, state.partition);
        let body = serde_json::to_vec(state).expect("partition state serializes");
        let bytes = body.len();
        let records =
            state_chunks::records(&key, body, h.chunk_bytes, state_chunks::next_generation());
        // One at a time: a manifest goes out only once its chunks are in.
        let mut error = None;
        for (record_key, record) in &records {
            let mut to = FutureRecord::to(&h.topic).key(record_key).payload(record);
            if let Some(n) = h.partitions() {
                to = to.partition(state_chunks::state_partition(state.partition, n));
            }
            let sent = h.producer.send(to, Duration::from_secs(20)).await;
            if let Err((e, _)) = sent {
                error = Some(e.to_string());
                break;
            }
        }
        HandoverWritten {
            partition: &key,
            bytes,
            seconds: started.elapsed().as_secs_f64(),
            error: error.as_deref(),
        }
        .emit(&self.metrics);
    }

    /// A partition was assigned: merge the state its last owner handed
    /// over, if any, before its first message.
    pub(super) fn take_over(&mut self, topic: &str, partition: i32) {
        let Some(h) = &mut self.handover else { return };
        h.handed_over.remove(&(topic.to_owned(), partition));
        let arrived = h
            .arrivals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(topic.to_owned(), partition));
        let Some(mut state) = arrived else { return };
        let progress = state.progress.take();
        let mut extras = std::mem::take(&mut state.extras);
        match self
            .engine
            .merge_partition_state(state, self.clock.now_ms())
        {
            Ok(merged) => {
                if let Some(p) = progress {
                    self.offsets.restore(std::slice::from_ref(&p));
                }
                self.take_responses(&mut extras);
                tracing::info!(
                    topic,
                    partition,
                    sensors = merged.sensors,
                    active_warnings = merged.active_warnings,
                    skipped = merged.skipped,
                    "took over the partition's state from the state topic"
                );
                self.metrics.handover.taken.inc();
                self.update_active_gauge();
            }
            Err(e) => {
                // Not expected: the consumer context checked the
                // fingerprint. Reading started at the state's offset, so
                // say so loudly.
                tracing::error!(
                    topic,
                    partition,
                    "the partition's handed-over state does not fit ({e}); its open windows miss the readings before it"
                );
            }
        }
    }
}

/// The next handover request; never, without a state topic or once the
/// pipeline stops.
pub(super) async fn next_request(
    requests: &mut Option<mpsc::UnboundedReceiver<HandoverRequest>>,
) -> Option<HandoverRequest> {
    match requests {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
