//! Delivery to each sink: a task per sink, fed in order.
//!
//! A sink is either
//! - **direct**: the pipeline hands it a batch and waits until the
//!   destination acknowledged it (retrying transient failures a few times;
//!   if they go on, the pipeline stops without committing, so nothing is
//!   lost), or
//! - **spooled** (`spool:` in its config): the pipeline appends the batch to
//!   the sink's on-disk spool and goes on; the sink's task sends from the
//!   spool's head, in order, backing off while the destination is down.
//!   Offsets are committed once every sink acknowledged or spooled. When
//!   the spool is full the pipeline waits for room (it never drops).
//!
//! On the pipeline's side, before either, the sink's route picks the
//! alerts it takes, then storm control (`storm:`) runs on those: alerts a
//! route leaves out neither count toward the storm nor reach the spool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use yujing_sinks::webhook::GroupConfig;
use yujing_sinks::{AlertMessage, Route, Sink, SinkError, SinkSetup, Spool, StormGuard};

use super::PipelineError;
use crate::telemetry::{Metrics, SinkDelivered, SinkFailed, SinkSpooled, StormHeldBack};

/// Attempts for a direct sink before the pipeline gives up (and exits
/// without committing, so nothing is lost).
const DIRECT_ATTEMPTS: u32 = 6;

/// Longest wait between attempts to send a spool's head.
const MAX_SPOOL_BACKOFF: Duration = Duration::from_secs(60);

/// How long a stopping pipeline lets spooled sinks drain.
pub const DRAIN_ON_STOP: Duration = Duration::from_secs(5);

enum Job {
    Deliver(
        Vec<AlertMessage>,
        Instant,
        oneshot::Sender<Result<(), SinkError>>,
    ),
    Flush(oneshot::Sender<Result<(), SinkError>>),
}

enum Channel {
    Direct(mpsc::Sender<Job>),
    Spooled {
        spool: Arc<Mutex<Spool>>,
        /// Woken when alerts are appended.
        wake: Arc<Notify>,
        /// Woken when alerts are acknowledged (room in the spool).
        room: Arc<Notify>,
        stop: watch::Sender<bool>,
    },
}

/// The pipeline's handle on one sink's delivery task.
pub struct Outbox {
    name: String,
    /// Which alerts this sink takes, applied before `storm`.
    route: Route,
    storm: Option<StormGuard>,
    channel: Channel,
    /// Batches handed to a direct sink and not yet acknowledged.
    in_flight: Arc<AtomicUsize>,
    task: JoinHandle<()>,
    metrics: Metrics,
}

/// Waits for a direct sink's acknowledgement.
pub struct Pending {
    name: String,
    done: oneshot::Receiver<Result<(), SinkError>>,
    in_flight: Arc<AtomicUsize>,
}

impl Pending {
    pub async fn wait(self) -> Result<(), PipelineError> {
        let done = self.done.await;
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(PipelineError::Sink {
                sink: self.name,
                attempts: DIRECT_ATTEMPTS,
                source: Box::new(e),
            }),
            Err(_) => Err(PipelineError::Invalid(format!(
                "the delivery task of sink {} stopped",
                self.name
            ))),
        }
    }
}

impl Outbox {
    /// Start the sink's task (opening its spool, if it has one).
    pub fn start(setup: SinkSetup, metrics: Metrics) -> Result<Self, PipelineError> {
        let name = setup.sink.name();
        metrics
            .sinks
            .init(&name, setup.spool.is_some(), setup.storm.is_some());
        metrics.health.update(&name, |_| {});
        let storm = setup.storm.map(StormGuard::new);
        let (channel, task) = match setup.spool {
            None => {
                let (tx, rx) = mpsc::channel(4);
                let task = tokio::spawn(direct(setup.sink, name.clone(), rx, metrics.clone()));
                (Channel::Direct(tx), task)
            }
            Some(s) => {
                let spool = Spool::open(&s.dir, s.max_bytes)
                    .map_err(|e| PipelineError::Invalid(format!("sink {name}: {e}")))?;
                if !spool.is_empty() {
                    tracing::info!(sink = %name, alerts = spool.len(), "alerts left in the spool from before will be delivered first");
                }
                SinkSpooled {
                    sink: &name,
                    added: 0,
                    alerts: spool.len(),
                    bytes: spool.bytes(),
                }
                .emit(&metrics);
                let spool = Arc::new(Mutex::new(spool));
                let (wake, room) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
                let (stop, stopped) = watch::channel(false);
                let worker = Drainer {
                    sink: setup.sink,
                    name: name.clone(),
                    spool: spool.clone(),
                    wake: wake.clone(),
                    room: room.clone(),
                    stopped,
                    metrics: metrics.clone(),
                    grouping: setup.grouping,
                };
                let task = tokio::spawn(worker.run());
                let channel = Channel::Spooled {
                    spool,
                    wake,
                    room,
                    stop,
                };
                (channel, task)
            }
        };
        Ok(Outbox {
            name,
            route: setup.route,
            storm,
            channel,
            in_flight: Arc::new(AtomicUsize::new(0)),
            task,
            metrics,
        })
    }

    /// The sink's name in metrics and logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Batches handed over and not yet acknowledged (direct sinks).
    pub fn in_flight(&self) -> Arc<AtomicUsize> {
        self.in_flight.clone()
    }

    /// Whether this sink routes on labels and takes `now` but not `before`:
    /// a warning that moved to a unit this sink reaches (and whose
    /// previous unit it did not).
    pub fn newly_takes(&self, now: &AlertMessage, before: &AlertMessage) -> bool {
        !self.route.labels.is_empty() && self.route.matches(now) && !self.route.matches(before)
    }

    /// Hand `alerts` over: spooled (done on return), or queued for a direct
    /// sink (done when the returned [`Pending`] resolves).
    pub async fn submit(
        &mut self,
        alerts: &[AlertMessage],
    ) -> Result<Option<Pending>, PipelineError> {
        let mut alerts: Vec<AlertMessage> = alerts
            .iter()
            .filter(|a| self.route.matches(a))
            .cloned()
            .collect();
        if let Some(guard) = &mut self.storm {
            let (kept, held) = guard.filter(alerts, yujing_ingest::clock::wall_now_ms());
            if held.summaries > 0 || !held.by_rule.is_empty() {
                StormHeldBack {
                    sink: &self.name,
                    by_rule: &held.by_rule,
                    summaries: held.summaries,
                }
                .emit(&self.metrics);
            }
            alerts = kept;
        }
        if alerts.is_empty() {
            return Ok(None);
        }
        match &self.channel {
            Channel::Direct(tx) => {
                let (done, rx) = oneshot::channel();
                tx.send(Job::Deliver(alerts, Instant::now(), done))
                    .await
                    .map_err(|_| PipelineError::Invalid(format!("sink {} stopped", self.name)))?;
                self.in_flight.fetch_add(1, Ordering::Relaxed);
                Ok(Some(Pending {
                    name: self.name.clone(),
                    done: rx,
                    in_flight: self.in_flight.clone(),
                }))
            }
            Channel::Spooled {
                spool, wake, room, ..
            } => {
                let mut warned = None::<Instant>;
                loop {
                    // Register for room before looking, so an ack in
                    // between is not missed.
                    let notified = room.notified();
                    {
                        let mut s = spool.lock().unwrap_or_else(|e| e.into_inner());
                        if s.has_room() {
                            s.append(&alerts).map_err(|e| {
                                PipelineError::Invalid(format!("sink {}: {e}", self.name))
                            })?;
                            SinkSpooled {
                                sink: &self.name,
                                added: alerts.len(),
                                alerts: s.len(),
                                bytes: s.bytes(),
                            }
                            .emit(&self.metrics);
                            break;
                        }
                    }
                    if warned.is_none_or(|at| at.elapsed() > Duration::from_secs(30)) {
                        tracing::error!(sink = %self.name, "the spool is full: waiting for the destination before reading more readings");
                        warned = Some(Instant::now());
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
                }
                wake.notify_one();
                Ok(None)
            }
        }
    }

    /// Flush a direct sink; give a spooled one [`DRAIN_ON_STOP`] to empty
    /// its spool (what is left stays on disk for the next start).
    pub async fn close(self) {
        match self.channel {
            Channel::Direct(tx) => {
                let (done, rx) = oneshot::channel();
                if tx.send(Job::Flush(done)).await.is_ok()
                    && let Ok(Err(e)) = rx.await
                {
                    tracing::warn!(sink = %self.name, "flush failed: {e}");
                }
                drop(tx);
                let _ = self.task.await;
            }
            Channel::Spooled { stop, .. } => {
                let _ = stop.send(true);
                let mut task = self.task;
                if tokio::time::timeout(DRAIN_ON_STOP, &mut task)
                    .await
                    .is_err()
                {
                    task.abort();
                    tracing::warn!(sink = %self.name, "stopping with alerts still in the spool; they are sent after the next start");
                }
            }
        }
    }
}

/// A direct sink's task: deliver each batch, retrying transient failures.
async fn direct(mut sink: Sink, name: String, mut jobs: mpsc::Receiver<Job>, metrics: Metrics) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let job = tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => job,
                None => return,
            },
            _ = tick.tick() => {
                if let Err(e) = sink.tick().await {
                    tracing::warn!(sink = %name, "periodic resend failed: {e}");
                }
                continue;
            }
        };
        let (alerts, since, done) = match job {
            Job::Flush(done) => {
                let _ = done.send(sink.flush().await);
                continue;
            }
            Job::Deliver(alerts, since, done) => (alerts, since, done),
        };
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            match sink.deliver(&alerts).await {
                Ok(()) => {
                    let waited = vec![since.elapsed(); alerts.len()];
                    SinkDelivered {
                        sink: &name,
                        waited: &waited,
                    }
                    .emit(&metrics);
                    break Ok(());
                }
                Err(e) => {
                    let retrying = !e.is_permanent() && attempt < DIRECT_ATTEMPTS;
                    SinkFailed {
                        sink: &name,
                        attempt,
                        error: &e.to_string(),
                        retrying,
                    }
                    .emit(&metrics);
                    // Refused by the receiver: sending it again cannot
                    // help, and must not stop delivery to everyone else.
                    if e.is_permanent() {
                        tracing::error!(sink = %name, error = %e, "alerts refused by the sink; not retried");
                        break Ok(());
                    }
                    if !retrying {
                        break Err(e);
                    }
                    tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                }
            }
        };
        let _ = done.send(outcome);
    }
}

/// A spooled sink's task: send the spool's head until it is empty.
struct Drainer {
    sink: Sink,
    name: String,
    spool: Arc<Mutex<Spool>>,
    wake: Arc<Notify>,
    room: Arc<Notify>,
    stopped: watch::Receiver<bool>,
    metrics: Metrics,
    grouping: Option<GroupConfig>,
}

/// Alerts sent per request from a spool when grouping.
const GROUPED_BATCH: usize = 256;

impl Drainer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn run(mut self) {
        let mut failures = 0u32;
        loop {
            let stopping = *self.stopped.borrow();
            let batch = match self.grouping {
                Some(_) => GROUPED_BATCH,
                None => self.sink.spool_batch(),
            };
            let head = self.lock().head(batch);
            if head.is_empty() {
                if stopping {
                    return;
                }
                if let Err(e) = self.sink.tick().await {
                    tracing::warn!(sink = %self.name, "periodic resend failed: {e}");
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    changed = self.stopped.changed() => if changed.is_err() { return },
                }
                continue;
            }
            // Grouping: let the oldest alert wait out the group wait, so
            // those arriving with it go in the same request.
            if let Some(g) = &self.grouping
                && !stopping
            {
                let age = head[0].since.elapsed();
                if age < g.wait {
                    tokio::select! {
                        _ = tokio::time::sleep(g.wait - age) => {}
                        changed = self.stopped.changed() => if changed.is_err() { return },
                    }
                    continue;
                }
            }
            let alerts: Vec<AlertMessage> = head.iter().map(|s| s.alert.clone()).collect();
            let last = head.last().map_or(0, |s| s.seq);
            let outcome = match &self.grouping {
                Some(g) => self.sink.deliver_grouped(&alerts, &g.by).await,
                None => self.sink.deliver(&alerts).await,
            };
            let delivered = match outcome {
                Ok(()) => {
                    failures = 0;
                    let waited: Vec<Duration> = head.iter().map(|s| s.since.elapsed()).collect();
                    SinkDelivered {
                        sink: &self.name,
                        waited: &waited,
                    }
                    .emit(&self.metrics);
                    true
                }
                Err(e) if e.is_permanent() => {
                    SinkFailed {
                        sink: &self.name,
                        attempt: 1,
                        error: &e.to_string(),
                        retrying: false,
                    }
                    .emit(&self.metrics);
                    tracing::error!(sink = %self.name, error = %e, "alerts refused by the sink; not retried");
                    true
                }
                Err(e) => {
                    failures += 1;
                    SinkFailed {
                        sink: &self.name,
                        attempt: failures,
                        error: &e.to_string(),
                        retrying: true,
                    }
                    .emit(&self.metrics);
                    false
                }
            };
            if delivered {
                let mut spool = self.lock();
                if let Err(e) = spool.ack(last) {
                    // Delivered, but not recorded: they may be sent again
                    // after a restart (same ids; subscribers drop repeats).
                    tracing::error!(sink = %self.name, "{e}");
                }
                SinkSpooled {
                    sink: &self.name,
                    added: 0,
                    alerts: spool.len(),
                    bytes: spool.bytes(),
                }
                .emit(&self.metrics);
                drop(spool);
                self.room.notify_waiters();
                continue;
            }
            if stopping {
                return;
            }
            let ceiling = Duration::from_millis(500)
                .saturating_mul(1 << failures.min(10))
                .min(MAX_SPOOL_BACKOFF);
            let wait = ceiling.mul_f64(rand::rng().random_range(0.5..=1.0));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                changed = self.stopped.changed() => if changed.is_err() { return },
            }
        }
    }
}
