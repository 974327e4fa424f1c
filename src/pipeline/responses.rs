//! The response loop inside `yujing run`: each published warning change
//! feeds the response book; every tick escalates what is overdue; the
//! responders' API and its commands are answered here, on the pipeline
//! task that owns the book. Every response change goes to the response
//! topic (`yujing.response/v1`, keyed by warning id) and the book is saved
//! to `state_dir/responses.json`, so a restart keeps every assignment and
//! deadline (one that passed while yujing was down escalates at once).
//! Response time is the pipeline's clock: the wall clock under `yujing
//! run`, the simulated clock in the demo.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use rdkafka::producer::FutureRecord;
use yujing_response::{Change, ResponseBook, Units, WarningEvent};
use yujing_rules::WarningTransition;
use yujing_sinks::cap::ResponseNote;
use yujing_sinks::kafka::KafkaSinkConfig;
use yujing_sinks::{AlertMessage, KafkaAlertSink, Route};

use super::feedback::FeedbackProgress;
use super::{PipelineError, State};
use crate::response_api::{ApiReceiver, ApiRequest};
use crate::telemetry::{ResponseChanged, ResponseCommand, ResponsesOpen, UnitsReloaded};

/// What `yujing run` needs for the response loop.
pub struct ResponseSetup {
    pub units: Units,
    /// Where `units` was read from: read again at each reload (none: the
    /// units are fixed).
    pub units_path: Option<PathBuf>,
    /// Where response changes are published.
    pub topic: String,
    /// Where responders' commands are read from, if anywhere.
    pub feedback_topic: Option<String>,
    /// How long a command for a warning no book holds waits for its owner.
    pub feedback_grace: Duration,
    pub requests: ApiReceiver,
    /// The Kafka sinks with `format: cap` (and their routes): each response
    /// change goes there too, as a CAP `Update` of the warning.
    pub cap_sinks: Vec<(KafkaSinkConfig, Route)>,
}

/// The loop's state in the pipeline.
pub(super) struct ResponseLoop {
    pub(super) book: ResponseBook,
    pub(super) units: Units,
    units_path: Option<PathBuf>,
    topic: String,
    /// Publishes to `topic` without lingering (people wait on it).
    producer: rdkafka::producer::FutureProducer,
    /// CAP sinks, through `producer`, with their routes.
    cap: Vec<(KafkaAlertSink, Route)>,
    /// The latest alert message of each warning in the book: what a CAP
    /// update of its response says of the warning.
    alerts: BTreeMap<String, AlertMessage>,
    saved_to: Option<PathBuf>,
    pub(super) feedback: FeedbackProgress,
}

/// What `responses.json` holds: the book, and how far the feedback topic
/// was read.
#[derive(Default, Serialize, Deserialize)]
struct Saved {
    #[serde(flatten)]
    book: ResponseBook,
    /// Feedback partition → next offset to read.
    #[serde(default)]
    feedback_offsets: BTreeMap<i32, i64>,
    #[serde(default)]
    alerts: BTreeMap<String, AlertMessage>,
}

/// The file the book is saved to, under `state_dir`.
pub const RESPONSES_FILE: &str = "responses.json";

impl ResponseLoop {
    pub(super) fn new(
        (units, units_path): (Units, Option<PathBuf>),
        topic: String,
        (producer, cap_sinks): (
            rdkafka::producer::FutureProducer,
            &[(KafkaSinkConfig, Route)],
        ),
        feedback_grace: Duration,
        state_dir: Option<&std::path::Path>,
    ) -> Self {
        let saved_to = state_dir.map(|d| d.join(RESPONSES_FILE));
        let saved: Saved = saved_to
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| match serde_json::from_slice(&bytes) {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::error!(
                        "{RESPONSES_FILE} cannot be read ({e}); starting with no responses"
                    );
                    None
                }
            })
            .unwrap_or_default();
        ResponseLoop {
            book: saved.book,
            units,
            units_path,
            topic,
            cap: cap_sinks
                .iter()
                .map(|(c, route)| {
                    let sink = KafkaAlertSink::with_producer(producer.clone(), &c.topic)
                        .with_format(c.format());
                    (sink, route.clone())
                })
                .collect(),
            alerts: saved.alerts,
            producer,
            saved_to,
            feedback: FeedbackProgress {
                next: saved.feedback_offsets,
                grace: feedback_grace,
                ..FeedbackProgress::default()
            },
        }
    }

    /// Save the book and the feedback offsets (when saving is configured).
    pub(super) fn save(&mut self) -> Result<(), PipelineError> {
        self.feedback.dirty = false;
        let Some(path) = &self.saved_to else {
            return Ok(());
        };
        let saved = SavedRef {
            book: &self.book,
            feedback_offsets: self.feedback.to_save(),
            alerts: &self.alerts,
        };
        let bytes =
            serde_json::to_vec(&saved).map_err(|e| PipelineError::Invalid(e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).ok();
        }
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| PipelineError::Invalid(format!("saving {}: {e}", path.display())))
    }
}

#[derive(Serialize)]
struct SavedRef<'a> {
    #[serde(flatten)]
    book: &'a ResponseBook,
    feedback_offsets: BTreeMap<i32, i64>,
    alerts: &'a BTreeMap<String, AlertMessage>,
}

impl State {
    /// Put the route labels of the unit answering for each warning (the
    /// unit it is, or will be, assigned to) on its alert, so a sink routed
    /// on those labels reaches that unit.
    pub(super) fn label_assignees(&self, alerts: &mut [AlertMessage]) {
        let Some(r) = &self.responses else {
            return;
        };
        for a in alerts {
            let unit = match r.book.get(&a.warning_id) {
                Some(resp) => Some(resp.assignee.clone()),
                None if a.grade.is_some() => yujing_response::first_assignee(
                    self.engine.registry(),
                    &r.units,
                    level_of(&a.group.by),
                    &a.group.key,
                    &a.rule.category,
                ),
                None => None,
            };
            if let Some(u) = unit.as_deref().and_then(|u| r.units.get(u)) {
                put_route_labels(a, &u.route);
            }
        }
    }

    /// A warning climbed to a unit: send its latest alert, with the new
    /// unit's route labels, to the sinks that reach the new unit and did
    /// not reach the one before (sinks routed on labels only; the others
    /// had it already).
    async fn renotify(&mut self, warning_id: &str, missed_by: &str) -> Result<(), PipelineError> {
        let Some(r) = &self.responses else {
            return Ok(());
        };
        let (Some(alert), Some(resp)) = (r.alerts.get(warning_id), r.book.get(warning_id)) else {
            return Ok(());
        };
        let labelled = |unit: &str| {
            let mut a = alert.clone();
            if let Some(u) = r.units.get(unit) {
                put_route_labels(&mut a, &u.route);
            }
            a
        };
        let (now, before) = (labelled(&resp.assignee), labelled(missed_by));
        let mut pending = Vec::new();
        for sink in self
            .sinks
            .iter_mut()
            .filter(|s| s.newly_takes(&now, &before))
        {
            if let Some(p) = sink.submit(std::slice::from_ref(&now)).await? {
                pending.push(p);
            }
        }
        for p in pending {
            p.wait().await?;
        }
        Ok(())
    }

    /// Warning changes just delivered: assign new warnings, follow grades,
    /// record the ones that resolved unanswered.
    pub(super) async fn respond_to(
        &mut self,
        transitions: &[WarningTransition],
        alerts: &[AlertMessage],
    ) -> Result<(), PipelineError> {
        let Some(r) = &mut self.responses else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        let mut changes = Vec::new();
        // `alerts` were made from `transitions`, one each, in order.
        for (t, a) in transitions.iter().zip(alerts) {
            let event = WarningEvent {
                warning_id: &a.warning_id,
                rule: &a.rule.id,
                category: &a.rule.category,
                grade: t.grade,
                level: t.rule.group_by,
                key: &a.group.key,
                started_ms: t.started_at_ms,
                event_ms: t.window_end_ms,
            };
            changes.extend(
                r.book
                    .on_warning(&event, self.engine.registry(), &r.units, now),
            );
            if r.book.get(&a.warning_id).is_some() {
                r.alerts.insert(a.warning_id.clone(), a.clone());
            }
        }
        self.publish_responses(changes).await
    }

    /// Escalate what is overdue.
    pub(super) async fn response_tick(&mut self) -> Result<(), PipelineError> {
        let Some(r) = &mut self.responses else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        let changes = r.book.tick(&r.units, now);
        // Handled responses are kept a day for the API, then dropped.
        r.book.prune(now - 24 * 3_600_000);
        let (book, alerts) = (&r.book, &mut r.alerts);
        alerts.retain(|id, _| book.get(id).is_some());
        self.publish_responses(changes).await?;
        if let Some(r) = &self.responses {
            ResponsesOpen {
                book: &r.book,
                units: &r.units,
            }
            .emit(&self.metrics);
        }
        match &mut self.responses {
            Some(r) if r.feedback.dirty => r.save(),
            _ => Ok(()),
        }
    }

    /// A request of the responders' API.
    pub(super) async fn on_api(&mut self, request: ApiRequest) -> Result<(), PipelineError> {
        let Some(r) = &mut self.responses else {
            return Ok(());
        };
        match request {
            ApiRequest::List { unit, reply } => {
                let list = r
                    .book
                    .responses()
                    .filter(|resp| r.units.get(&unit).is_some_and(|u| resp.concerns(u)))
                    .filter_map(|resp| serde_json::to_value(resp).ok())
                    .collect();
                let _ = reply.send(list);
                Ok(())
            }
            ApiRequest::Command {
                unit,
                command,
                reply,
            } => {
                let now = self.clock.now_ms();
                let result = r.book.command(&unit, &command, &r.units, now);
                ResponseCommand {
                    source: "api",
                    action: command.action.as_str(),
                    unit: &unit,
                    refusal: result.as_ref().err(),
                }
                .emit(&self.metrics);
                let change = result.as_ref().ok().cloned();
                let _ = reply.send(result);
                self.publish_responses(change.into_iter().collect()).await
            }
        }
    }

    /// Publish `changes` to the response topic (and the CAP sinks), count
    /// them, re-notify through the new unit's route when a warning
    /// climbed, save the book.
    pub(super) async fn publish_responses(
        &mut self,
        changes: Vec<Change>,
    ) -> Result<(), PipelineError> {
        let Some(r) = &self.responses else {
            return Ok(());
        };
        if changes.is_empty() {
            return Ok(());
        }
        let mut deliveries = Vec::with_capacity(changes.len());
        for c in &changes {
            let response = r.book.get(&c.warning_id);
            ResponseChanged {
                change: c,
                response,
                units: &r.units,
            }
            .emit(&self.metrics);
            let mut message =
                serde_json::to_value(c).map_err(|e| PipelineError::Invalid(e.to_string()))?;
            if let Some(m) = message.as_object_mut() {
                m.insert("schema".into(), "yujing.response/v1".into());
                m.insert("at".into(), self.times.rfc3339(c.at_ms).into());
                m.insert(
                    "deadline".into(),
                    c.deadline_ms.map(|d| self.times.rfc3339(d)).into(),
                );
                if let Some(resp) = response {
                    m.insert("rule".into(), resp.rule.clone().into());
                    m.insert("category".into(), resp.category.clone().into());
                    m.insert("grade".into(), resp.grade.as_str().into());
                    m.insert(
                        "group".into(),
                        serde_json::json!({"level": resp.level, "key": resp.key}),
                    );
                    m.insert(
                        "started_at".into(),
                        self.times.rfc3339(resp.started_ms).into(),
                    );
                    m.insert(
                        "ended_at".into(),
                        resp.ended_ms.map(|t| self.times.rfc3339(t)).into(),
                    );
                }
            }
            if let Some(b) = &self.board {
                b.on_response(message.clone());
            }
            let body = message.to_string();
            let record = FutureRecord::to(&r.topic)
                .key(c.warning_id.as_str())
                .payload(body.as_str());
            if let Some(alert) = r.alerts.get(&c.warning_id) {
                let at = self.times.rfc3339(c.at_ms);
                let note = ResponseNote {
                    change: &c.change,
                    sequence: c.sequence,
                    at: &at,
                    actor: &c.actor,
                    assignee: &c.assignee,
                    outcome: c.outcome.map(yujing_response::Outcome::as_str),
                    note: c.note.as_deref(),
                };
                for (sink, _) in r.cap.iter().filter(|(_, route)| route.matches(alert)) {
                    if let Some(d) = sink
                        .send_response(alert, &note)
                        .map_err(|e| PipelineError::Invalid(e.to_string()))?
                    {
                        deliveries.push(d);
                    }
                }
            }
            // Queued at once, awaited together below: the pipeline waits
            // one round trip per call, not one per change.
            match r.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((_, record)) => {
                    r.producer
                        .send(record, Duration::from_secs(30))
                        .await
                        .map_err(|(e, _)| PipelineError::Kafka(e))?;
                }
            }
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(PipelineError::Kafka(e)),
                Err(_) => {
                    return Err(PipelineError::Invalid(
                        "the response topic's producer was dropped".into(),
                    ));
                }
            }
        }
        for c in &changes {
            if let ("escalated", Some(missed)) = (c.change.as_str(), &c.missed_by)
                && *missed != c.assignee
            {
                self.renotify(&c.warning_id, missed).await?;
            }
        }
        match &mut self.responses {
            Some(r) => r.save(),
            None => Ok(()),
        }
    }
}

/// Put a unit's route labels on an alert (replacing labels of the same
/// name: the rule's, or the previous unit's).
fn put_route_labels(a: &mut AlertMessage, route: &BTreeMap<String, String>) {
    for (k, v) in route {
        a.labels.insert(k.clone(), v.clone());
    }
}

/// The area level an alert's group names.
fn level_of(by: &str) -> yujing_ingest::AreaLevel {
    use yujing_ingest::AreaLevel;
    match by {
        "grid" => AreaLevel::Grid,
        "street" => AreaLevel::Street,
        "district" => AreaLevel::District,
        _ => AreaLevel::Sensor,
    }
}

/// The name of the response book's part in a handed-over partition state,
/// and of the latest alert of each of its warnings.
const EXTRA: &str = "responses";
const EXTRA_ALERTS: &str = "response_alerts";

impl State {
    /// Put the responses of `state`'s warnings into it: moved out of the
    /// book when the partition is handed over (`take`), copied for a
    /// checkpoint.
    pub(super) fn attach_responses(
        &mut self,
        state: &mut yujing_engine::PartitionState,
        take: bool,
    ) {
        let Some(r) = &mut self.responses else {
            return;
        };
        let moved = r.book.extract(state.warning_ids(), take);
        if moved.is_empty() {
            return;
        }
        let alerts: BTreeMap<&str, &AlertMessage> = moved
            .iter()
            .filter_map(|m| {
                r.alerts
                    .get(&m.warning_id)
                    .map(|a| (m.warning_id.as_str(), a))
            })
            .collect();
        if let Ok(v) = serde_json::to_value(&alerts) {
            state.extras.insert(EXTRA_ALERTS.into(), v);
        }
        if take {
            for m in &moved {
                r.alerts.remove(&m.warning_id);
            }
        }
        match serde_json::to_value(&moved) {
            Ok(v) => {
                state.extras.insert(EXTRA.into(), v);
            }
            Err(e) => tracing::error!("cannot hand the responses over: {e}"),
        }
        if take && let Err(e) = r.save() {
            tracing::error!("{e}");
        }
    }

    /// Responses handed over with a partition this instance takes over.
    pub(super) fn take_responses(&mut self, extras: &mut BTreeMap<String, serde_json::Value>) {
        let (Some(r), Some(v)) = (&mut self.responses, extras.remove(EXTRA)) else {
            return;
        };
        if let Some(alerts) = extras
            .remove(EXTRA_ALERTS)
            .and_then(|a| serde_json::from_value::<BTreeMap<String, AlertMessage>>(a).ok())
        {
            r.alerts.extend(alerts);
        }
        match serde_json::from_value::<Vec<yujing_response::Response>>(v) {
            Ok(list) => {
                let n = r.book.merge(list);
                tracing::info!(responses = n, "took over responses with the partition");
                if let Err(e) = r.save() {
                    tracing::error!("{e}");
                }
            }
            Err(e) => tracing::error!("handed-over responses cannot be read: {e}"),
        }
    }
}

impl State {
    /// Read the responsibility file again with the rules: swap it in, or
    /// keep the running units. `None` without one.
    pub(super) fn reload_units(&mut self, trigger: &str) -> Option<Result<String, String>> {
        let r = self.responses.as_mut()?;
        let path = r.units_path.as_ref()?;
        let outcome = match Units::load(path, self.engine.registry()) {
            Ok(units) => {
                let n = units.units.len();
                r.units = units;
                UnitsReloaded {
                    trigger,
                    outcome: Ok(n),
                }
                .emit(&self.metrics);
                Ok(format!("{n} units"))
            }
            Err(e) => {
                let problems = e.to_string();
                UnitsReloaded {
                    trigger,
                    outcome: Err(&problems),
                }
                .emit(&self.metrics);
                Err(problems)
            }
        };
        Some(outcome)
    }
}
