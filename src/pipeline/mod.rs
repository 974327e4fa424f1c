//! The pipeline: readings topic → windows → rules → sinks → commit.
//!
//! A thread polls the readings topics through a consumer group and decodes
//! each message (see [`crate::fetch`]); one task places the readings in
//! the open windows of every window
//! size a rule uses; refused messages go to the dead-letter topic. When the
//! watermark passes the end of a window, the window is closed, each of its
//! rules is aggregated by DataFusion and graded, the transitions are
//! delivered to every sink, and only then are the offsets of the messages
//! that fed it committed. A crash at any point re-reads what was not yet
//! turned into acknowledged warnings (at-least-once; alert messages carry
//! ids and sequence numbers so a subscriber can drop a repeat).
//!
//! # Layout
//! - this file: setup, the main loop and shutdown, closing windows,
//!   publishing;
//! - [`intake`]: each consumed message placed, refused or set aside;
//! - [`dead_letter`]: copies of refused messages with the reason;
//! - [`outbox`]: a delivery task per sink, direct or spooled, storm control;
//! - [`commit`]: offsets committed (or, exactly once, in transactions);
//! - [`warning_state`]: active warnings saved across restarts;
//! - [`checkpoint`]: the open windows saved to `state_dir` and taken up;
//! - [`handover`]: partition states through `kafka.state_topic`;
//! - [`rules_reload`]: rules swapped in while running, or refused;
//! - [`responses`]: the response loop (assignment, escalation, the
//!   responders' API) on the warnings this pipeline publishes;
//! - [`feedback`]: responders' commands from the feedback topic;
//! - [`response_routes`]: assignees' route labels on alerts, re-notifying
//!   a climbed warning, responses in handovers, units reloaded;
//! - [`stop`]: shutdown within its deadline, and what a cut-short stop
//!   leaves to replay.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::FutureProducer;
use yujing_ingest::offsets::OffsetTracker;
use yujing_ingest::{Clock, Measurements, SensorRegistry, kafka};
use yujing_rules::{Grade, RuleSet, WarningTransition};
use yujing_sinks::{AlertMessage, TimeFormat};

mod checkpoint;
mod commit;
mod handover;

pub use handover::{HandoverLink, StateReader};
mod dead_letter;
mod feedback;
mod intake;
mod outbox;
mod response_routes;
mod responses;
mod rules_reload;
mod state_chunks;
mod stop;
pub mod warning_state;

use outbox::Outbox;
pub use responses::{RESPONSES_FILE, ResponseSetup};
pub use stop::ForceStop;
pub use yujing_sinks::{SinkSetup, SpoolConfig};

use crate::config::{KafkaConfig, PipelineConfig};
use crate::fetch::Fetcher;
use crate::rebalance::ResumePlan;
use crate::rebalance::{LagReporter, RevokedPartitions};
use crate::reload::ReloadReceiver;
use crate::telemetry::{Metrics, WarningStateRestored};
use yujing_engine::Engine;

/// Errors that stop the pipeline. Offsets of unfinished work are not
/// committed, so a restart resumes without loss.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Ingest(#[from] yujing_ingest::IngestError),
    #[error(transparent)]
    Rules(#[from] yujing_rules::RulesError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Engine(#[from] yujing_engine::EngineError),
    /// A sink could not be built from its config.
    #[error(transparent)]
    SinkSetup(#[from] yujing_sinks::SinkError),
    #[error("sink {sink} failed {attempts} times, last: {source}")]
    Sink {
        sink: String,
        attempts: u32,
        source: Box<yujing_sinks::SinkError>,
    },
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A topic yujing needs does not exist (the message says how to
    /// create it).
    #[error("{0}")]
    MissingTopic(String),
    /// The stop was cut short by the shutdown deadline or a second signal.
    #[error("stopped before the end ({why}): {unfinished}")]
    StopCutShort { why: String, unfinished: String },
    #[error("{0}")]
    Invalid(String),
}

/// Everything the pipeline needs, already loaded.
pub struct Setup {
    pub kafka: KafkaConfig,
    pub pipeline: PipelineConfig,
    pub rules: RuleSet,
    /// Rules reload requests, if reloading is wired up; the rules are
    /// read again from `rules.paths`.
    pub reloads: Option<ReloadReceiver>,
    /// Known metrics: rules on others are refused, readings outside a
    /// metric's range are dead-lettered.
    pub measurements: Option<Measurements>,
    pub registry: SensorRegistry,
    /// The languages warnings are written in (alert texts, CAP `<info>`).
    pub languages: yujing_rules::Languages,
    pub sinks: Vec<SinkSetup>,
    pub metrics: Metrics,
    pub clock: Clock,
    /// Where active warnings are saved across restarts (none: not saved).
    pub state_dir: Option<PathBuf>,
    /// How often the window state is checkpointed to `state_dir` (none:
    /// never; a restart replays from the committed offsets).
    pub checkpoint_every: Option<Duration>,
    /// Exactly-once mode: the transactional producer the Kafka alert sinks
    /// write with; offsets are committed in its transactions.
    pub transactions: Option<FutureProducer>,
    /// How long stopping may take (none: as long as it takes).
    pub shutdown_deadline: Option<Duration>,
    /// Stop at once when this completes (a second signal), even while
    /// stopping.
    pub force_stop: Option<ForceStop>,
    /// With a responsibility file: the response loop.
    pub responses: Option<ResponseSetup>,
    /// With `board:`, what the board shows, kept as alerts and response
    /// changes are published.
    pub board: Option<crate::board::Board>,
    /// With `feed:`, the public CAP feed, kept as alerts are published.
    pub feed: Option<crate::feed::Feed>,
}

/// What a run did, for the closing summary.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RunSummary {
    pub messages: u64,
    pub readings: u64,
    pub bad_messages: u64,
    pub late_readings: u64,
    pub windows_closed: u64,
    pub transitions: u64,
    /// Transitions into each grade (raised, escalated or de-escalated).
    pub warnings_by_grade: BTreeMap<Grade, u64>,
    pub resolved: u64,
    pub active_at_end: usize,
}

struct TopicCounters {
    consumed: prometheus::IntCounter,
    accepted: prometheus::IntCounter,
}

struct State {
    engine: Engine,
    topic_counters: HashMap<String, TopicCounters>,
    offsets: OffsetTracker,
    sinks: Vec<Outbox>,
    dead_letter: FutureProducer,
    dead_letter_topic: String,
    /// Where readings later than the allowed lateness go.
    late_topic: String,
    metrics: Metrics,
    clock: Clock,
    state_dir: Option<PathBuf>,
    checkpoint: checkpoint::Checkpointing,
    /// With `kafka.state_topic`: partitions handed over at rebalances.
    handover: Option<handover::Handover>,
    transactions: Option<FutureProducer>,
    /// `clock.now_ms()`, refreshed every [`CLOCK_EVERY`] messages and on
    /// each tick: reading the clock per message is measurable on VMs.
    now_ms: i64,
    times: TimeFormat,
    languages: yujing_rules::Languages,
    summary: RunSummary,
    /// When refused messages were last reported in the log, and the count then.
    refusals_reported: (Instant, u64),
    /// False after a consumer error, until the next message.
    consumer_up: bool,
    /// What a stop cut short would leave undone.
    stop_report: stop::StopReport,
    /// Where messages the dead-letter topic refused for good are recorded
    /// (`state_dir`, whether or not a state topic is used).
    refused_dir: Option<PathBuf>,
    /// The response book and its units, with a responsibility file.
    responses: Option<responses::ResponseLoop>,
    board: Option<crate::board::Board>,
    feed: Option<crate::feed::Feed>,
}

/// The readings consumer's name in `/health`.
const CONSUMER: &str = "kafka-consumer";

/// Messages between clock reads on the hot path.
const CLOCK_EVERY: u64 = 64;

/// How often refused messages are summarised in the log.
const REFUSAL_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Run until `shutdown` completes, then close what can be closed, flush the
/// sinks and commit.
pub async fn run(
    mut setup: Setup,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, PipelineError> {
    let (deadline, force) = (setup.shutdown_deadline, setup.force_stop.take());
    // The signal is watched apart from the pipeline's loop, which may be
    // waiting on a sink when it comes: the deadline runs from the signal.
    let (signalled_tx, signalled) = tokio::sync::watch::channel(false);
    let stop_requested = async move {
        let mut signalled = signalled;
        let _ = signalled.wait_for(|s| *s).await;
    };
    let report = stop::StopReport::default();
    let body = run_pipeline(setup, stop_requested, report.clone());
    stop::within_deadline(body, shutdown, signalled_tx, deadline, force, report).await
}

async fn run_pipeline(
    setup: Setup,
    shutdown: impl Future<Output = ()>,
    stop_report: stop::StopReport,
) -> Result<RunSummary, PipelineError> {
    let utc_offset_ms = setup.pipeline.utc_offset_ms();
    let k = &setup.kafka;
    let client_props = k.client_properties().map_err(PipelineError::Invalid)?;
    let mut consumer_props = client_props.clone();
    consumer_props.extend(k.consumer_properties.clone());
    let mut producer_props = client_props;
    producer_props.extend(k.producer_properties.clone());

    let mut engine = Engine::new(
        &setup.rules,
        setup.registry.clone(),
        &setup.pipeline.engine_settings(),
    );
    let known_metrics = setup.measurements.as_ref().map(Measurements::names);
    if let Some(m) = setup.measurements {
        engine = engine.with_measurements(m);
    }
    let dead_letter: FutureProducer = kafka::client_config(
        &k.bootstrap_servers,
        &[("acks", "all"), ("message.timeout.ms", "30000")],
        &producer_props,
        &[],
    )
    .create()?;
    let max_message_bytes = setup.pipeline.max_message_bytes;
    // A checkpoint is read before the consumer exists: its positions are
    // applied by the consumer's first assignment.
    let resume = ResumePlan::default();
    // With a state topic, partition states there replace the local
    // checkpoint and warnings.json.
    let state_topic = k.state_topic.clone();
    let state_dir = if state_topic.is_some() {
        None
    } else {
        setup.state_dir.clone()
    };
    let checkpoint_every = if state_topic.is_some() {
        setup.checkpoint_every
    } else {
        state_dir.as_ref().and(setup.checkpoint_every)
    };
    let pending_checkpoint = match (&state_dir, checkpoint_every) {
        (Some(dir), Some(_)) => checkpoint::load(dir, &engine, &resume, &setup.metrics),
        _ => None,
    };
    let (mut handover_requests, handover_link, handover) = match &state_topic {
        None => (None, None, None),
        Some(topic) => {
            // Exactly once, states go in the alerts' transactions.
            let producer = setup
                .transactions
                .clone()
                .unwrap_or_else(|| dead_letter.clone());
            let (rx, link, side) =
                handover::wire(topic, k, &consumer_props, engine.fingerprint(), producer)?;
            (Some(rx), Some(link), Some(side))
        }
    };
    // A missing readings, dead-letter or response topic is named, with
    // how to create it, in the log and on /health (the consumer only
    // waits).
    let mut watched = k.readings_topics.clone();
    watched.push(k.dead_letter_topic.clone());
    if let Some(r) = &setup.responses {
        watched.push(r.topic.clone());
        watched.extend(r.feedback_topic.clone());
    }
    let topic_watch = crate::topics::watch(
        kafka::client_config(&k.bootstrap_servers, &[], &consumer_props, &[]),
        watched,
        setup.metrics.health.clone(),
    );
    let mut fetcher = Fetcher::start(
        kafka::readings_consumer(
            &k.bootstrap_servers,
            &k.group_id,
            &k.readings_topics,
            &consumer_props,
            LagReporter {
                metrics: setup.metrics.clone(),
                revoked: RevokedPartitions::default(),
                assigned: RevokedPartitions::default(),
                resume: resume.clone(),
                handover: handover_link,
                positions: Default::default(),
            },
        )?,
        max_message_bytes,
    )
    .map_err(|e| PipelineError::Invalid(format!("cannot start the consumer thread: {e}")))?;
    tracing::info!(
        group = %k.group_id,
        topics = ?k.readings_topics,
        rules = setup.rules.rules.len(),
        sensors = setup.registry.len(),
        "pipeline started"
    );

    let mut sinks = Vec::with_capacity(setup.sinks.len());
    for s in setup.sinks {
        sinks.push(Outbox::start(s, setup.metrics.clone())?);
    }
    let (response_loop, api_requests, mut feedback) = match setup.responses {
        Some(r) => {
            let feedback = match &r.feedback_topic {
                None => None,
                Some(topic) => Some(feedback::FeedbackConsumer::new(
                    kafka::client_config(
                        &k.bootstrap_servers,
                        &[("enable.partition.eof", "false")],
                        &consumer_props,
                        &[
                            ("group.id", &format!("{}.feedback", k.group_id)),
                            ("enable.auto.commit", "false"),
                            // People wait on these: no half-second batching.
                            ("fetch.wait.max.ms", "100"),
                        ],
                    ),
                    topic.clone(),
                    r.topic.clone(),
                )?),
            };
            let producer = kafka::client_config(
                &k.bootstrap_servers,
                &[
                    ("acks", "all"),
                    ("message.timeout.ms", "30000"),
                    ("linger.ms", "0"),
                    // In order per warning, even when a send is retried.
                    ("enable.idempotence", "true"),
                ],
                &producer_props,
                &[],
            )
            .create()?;
            (
                Some(responses::ResponseLoop::new(
                    (r.units, r.units_path),
                    r.topic,
                    (producer, &r.cap_sinks, &setup.languages.tags()),
                    r.feedback_grace,
                    setup.state_dir.as_deref(),
                )),
                Some(r.requests),
                feedback,
            )
        }
        None => (None, None, None),
    };
    let first_partition = (k.readings_topics[0].clone(), 0);
    let mut state = State {
        engine,
        topic_counters: HashMap::new(),
        offsets: OffsetTracker::new(),
        sinks,
        dead_letter,
        dead_letter_topic: k.dead_letter_topic.clone(),
        late_topic: k
            .late_topic
            .clone()
            .unwrap_or_else(|| k.dead_letter_topic.clone()),
        metrics: setup.metrics,
        state_dir,
        handover,
        checkpoint: checkpoint::Checkpointing {
            every: checkpoint_every,
            last: Instant::now(),
            pending: pending_checkpoint,
            resume,
            in_open_transaction: false,
        },
        transactions: setup.transactions,
        now_ms: setup.clock.now_ms(),
        clock: setup.clock,
        times: TimeFormat::new(utc_offset_ms),
        languages: setup.languages.clone(),
        summary: RunSummary::default(),
        refusals_reported: (Instant::now(), 0),
        consumer_up: true,
        stop_report,
        refused_dir: setup.state_dir.clone(),
        responses: response_loop,
        board: setup.board,
        feed: setup.feed,
    };
    for sink in &state.sinks {
        state.stop_report.add_sink(sink.name(), sink.in_flight());
    }
    if let Some(r) = &state.responses {
        crate::telemetry::start_response_series(
            &state.metrics,
            setup.rules.rules.iter().map(|rule| rule.id.as_str()),
            &r.units,
        );
    }

    state.restore_warnings(fetcher.consumer());
    if let Some(p) = &state.transactions {
        commit::start_transactions(p)?;
    }
    let rule_paths = setup.rules.paths.clone();
    let mut reloads = setup.reloads;
    let mut api_requests = api_requests;
    state
        .metrics
        .rules_loaded
        .set(setup.rules.rules.len() as i64);
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let outcome = loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break Ok(()),
            Some(req) = handover::next_request(&mut handover_requests) => {
                if let Err(e) = state.hand_over(fetcher.consumer(), req).await {
                    break Err(e);
                }
            }
            Some(req) = next_api(&mut api_requests) => {
                if let Err(e) = state.on_api(req).await {
                    break Err(e);
                }
            }
            Some(m) = feedback::next(&feedback) => {
                if let Err(e) = state.on_feedback(m).await {
                    break Err(e);
                }
            }
            Some(req) = rules_reload::next(&mut reloads) => {
                if let Err(e) = state.reload(&rule_paths, known_metrics.as_deref(), req).await {
                    break Err(e);
                }
            }
            _ = tick.tick() => {
                if let (Some(f), Some(r)) = (&mut feedback, &state.responses) {
                    f.ensure_assigned(&r.feedback.next, state.clock.now_ms());
                }
                let refuses_unknown = fetcher.consumer().assignment().is_ok_and(|a| {
                    a.find_partition(&first_partition.0, first_partition.1).is_some()
                });
                if let Err(e) = state.retry_parked(refuses_unknown).await {
                    break Err(e);
                }
                if let Err(e) = state.response_tick().await {
                    break Err(e);
                }
                state.now_ms = state.clock.now_ms();
                state.update_gauges();
                state.report_refusals();
                if let Err(e) = commit::commit(fetcher.consumer(), &mut state, CommitMode::Async) {
                    break Err(e);
                }
                state.stop_report.uncommitted(state.offsets.not_committed());
                if let Err(e) = state.checkpoint(fetcher.consumer(), false).await {
                    break Err(e);
                }
                if let Err(e) = state.close_ready().await {
                    break Err(e);
                }
            }
            // Last: under a backlog readings are always ready, and the
            // rare, human-paced work above must not wait behind them.
            batch = fetcher.next() => {
                let Some(batch) = batch else {
                    break Err(PipelineError::Invalid("the consumer thread stopped".into()));
                };
                if let Err(e) = state.on_batch(batch).await {
                    break Err(e);
                }
            }
        }
    };
    // Stop consuming; deliver what the watermark already closed; commit.
    tracing::info!("shutting down: flushing sinks and committing offsets");
    // Revocations from here on (leaving the group) do not wait for this
    // task: the states are written below, before the group is left.
    drop(handover_requests.take());
    topic_watch.abort();
    stop::shut_down(state, fetcher, outcome).await
}

impl State {
    /// Take up the warnings a previous run saved, if any (first settling
    /// a book an exactly-once run left pending at a crash).
    fn restore_warnings(&mut self, consumer: &rdkafka::consumer::BaseConsumer<LagReporter>) {
        let Some(dir) = &self.state_dir else { return };
        let committed = |topic: &str, partition: i32| -> Option<i64> {
            let mut tpl = rdkafka::TopicPartitionList::new();
            tpl.add_partition(topic, partition);
            let list = consumer
                .committed_offsets(tpl, Duration::from_secs(10))
                .ok()?;
            match list.find_partition(topic, partition)?.offset() {
                rdkafka::Offset::Offset(o) => Some(o),
                _ => None,
            }
        };
        match warning_state::settle_pending(dir, &committed) {
            Ok(warning_state::Pending::None) => {}
            Ok(warning_state::Pending::Adopted) => tracing::info!(
                "the warnings saved before the last transaction are taken up: it had committed"
            ),
            Ok(warning_state::Pending::Discarded) => tracing::warn!(
                "the last transaction before the stop had not committed: its alerts were aborted and will be made again; the warnings saved before it are set aside (warnings.pending.json.aborted)"
            ),
            Err(e) => tracing::error!("cannot settle warnings.pending.json: {e}"),
        }
        match warning_state::load(dir) {
            Ok(None) => {}
            Ok(Some(book)) => {
                let dropped = self.engine.restore_warning_book(book);
                WarningStateRestored {
                    active: self.engine.active_count(),
                    dropped_rules: &dropped,
                    error: None,
                }
                .emit(&self.metrics);
                self.update_active_gauge();
            }
            Err(e) => {
                warning_state::set_aside(dir);
                WarningStateRestored {
                    active: 0,
                    dropped_rules: &[],
                    error: Some(&e.to_string()),
                }
                .emit(&self.metrics);
            }
        }
    }

    /// Close every window the watermark has passed, grade it, deliver the
    /// warnings, and release the offsets behind it.
    async fn close_ready(&mut self) -> Result<(), PipelineError> {
        let started = Instant::now();
        let Some(closed) = self.engine.close_ready(self.now_ms).await? else {
            return Ok(());
        };
        for (label, correction) in &closed.windows {
            let counter = if *correction {
                &self.metrics.window_corrections
            } else {
                &self.metrics.windows_closed
            };
            counter.with_label_values(&[label]).inc();
        }
        self.summary.windows_closed += closed.windows.iter().filter(|(_, c)| !c).count() as u64;
        // Delivery may wait on a sink: what a cut-short stop leaves to
        // replay is what is uncommitted now.
        self.stop_report.uncommitted(self.offsets.not_committed());
        self.publish(&closed.transitions).await?;
        self.offsets.windows_closed(closed.watermark);
        self.update_active_gauge();
        self.metrics
            .window_processing
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Count transitions and deliver them to every sink.
    async fn publish(&mut self, transitions: &[WarningTransition]) -> Result<(), PipelineError> {
        if self.transactions.is_some() && !transitions.is_empty() {
            self.checkpoint.in_open_transaction = true;
        }
        let emitted_at = yujing_ingest::clock::wall_now_ms();
        let mut alerts = Vec::with_capacity(transitions.len());
        for t in transitions {
            let grade_label = t.grade.map_or("clear", Grade::as_str);
            self.metrics
                .warnings
                .with_label_values(&[&t.rule.id, grade_label, t.transition.as_str()])
                .inc();
            self.summary.transitions += 1;
            match t.grade {
                Some(g) => *self.summary.warnings_by_grade.entry(g).or_default() += 1,
                None => self.summary.resolved += 1,
            }
            alerts.push(
                AlertMessage::new(t, self.engine.registry(), self.times, emitted_at).with_texts(
                    t,
                    self.engine.registry(),
                    &self.languages,
                ),
            );
        }
        if !alerts.is_empty() {
            self.label_assignees(&mut alerts);
            self.deliver(&alerts).await?;
            if let Some(b) = &self.board {
                b.on_alerts(&alerts);
            }
            if let Some(f) = &self.feed {
                f.on_alerts(&alerts);
            }
            self.respond_to(transitions, &alerts).await?;
        }
        Ok(())
    }

    /// Hand the alerts to every sink; return once each acknowledged or
    /// spooled them. The sinks work at the same time.
    async fn deliver(&mut self, alerts: &[AlertMessage]) -> Result<(), PipelineError> {
        let mut pending = Vec::new();
        for sink in &mut self.sinks {
            if let Some(p) = sink.submit(alerts).await? {
                pending.push(p);
            }
        }
        for p in pending {
            p.wait().await?;
        }
        Ok(())
    }

    fn update_active_gauge(&self) {
        self.metrics
            .warnings_pending
            .set(self.engine.pending_count() as i64);
        for (rule, grade, n) in self.engine.active_by_rule() {
            self.metrics
                .active_warnings
                .with_label_values(&[&rule, grade.as_str()])
                .set(n);
        }
        let by_district = &self.metrics.active_warnings_by_district;
        by_district.reset();
        for (district, grade, n) in self.engine.active_by_district() {
            by_district
                .with_label_values(&[&district, grade.as_str()])
                .set(n);
        }
    }

    /// One log line per period for refused messages, instead of one per message.
    fn report_refusals(&mut self) {
        let total = self.summary.bad_messages + self.summary.late_readings;
        let (at, before) = self.refusals_reported;
        if total > before && at.elapsed() >= REFUSAL_REPORT_EVERY {
            tracing::warn!(
                bad_messages = self.summary.bad_messages,
                late_readings = self.summary.late_readings,
                "{} messages or readings refused since last report; copies are on {} (reason in headers), counts in yujing_bad_messages_total and yujing_late_readings_total",
                total - before,
                self.dead_letter_topic
            );
            self.refusals_reported = (Instant::now(), total);
        }
    }

    fn update_gauges(&self) {
        let now = self.clock.now_ms();
        self.metrics
            .idle_partitions
            .set(self.engine.idle_partitions(now) as i64);
        self.metrics
            .split_districts
            .set(self.engine.split_districts() as i64);
        if let Some(w) = self.engine.watermark() {
            self.metrics.watermark.set(w as f64 / 1000.0);
            self.metrics.watermark_lag.set((now - w) as f64 / 1000.0);
        }
        let (states, panes, bytes) = self.engine.state_size();
        self.metrics.window_state_bytes.set(bytes as i64);
        self.metrics.window_states.set(states as i64);
        self.metrics.open_panes.set(panes as i64);
        self.metrics
            .uncommitted_messages
            .set(self.offsets.uncommitted());
    }
}

/// The next request of the responders' API, if it is served.
async fn next_api(
    rx: &mut Option<crate::response_api::ApiReceiver>,
) -> Option<crate::response_api::ApiRequest> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
