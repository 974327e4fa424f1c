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
use crate::telemetry::{ResponseChanged, ResponseCommand, ResponsesOpen};

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
    pub(super) units_path: Option<PathBuf>,
    topic: String,
    /// Publishes to `topic` without lingering (people wait on it).
    producer: rdkafka::producer::FutureProducer,
    /// CAP sinks, through `producer`, with their routes.
    cap: Vec<(KafkaAlertSink, Route)>,
    /// The latest alert message of each warning in the book: what a CAP
    /// update of its response says of the warning.
    pub(super) alerts: BTreeMap<String, AlertMessage>,
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
        (producer, cap_sinks, languages): (
            rdkafka::producer::FutureProducer,
            &[(KafkaSinkConfig, Route)],
            &[String],
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
                        .with_format(c.format(languages));
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
