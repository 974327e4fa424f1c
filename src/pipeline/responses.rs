//! The response loop inside `yujing run`: each published warning change
//! feeds the response book; every tick escalates what is overdue; the
//! responders' API and its commands are answered here, on the pipeline
//! task that owns the book. Every response change goes to the response
//! topic (`yujing.response/v1`, keyed by warning id) and the book is saved
//! to `state_dir/responses.json`, so a restart keeps every assignment and
//! deadline (one that passed while yujing was down escalates at once).

use std::path::PathBuf;
use std::time::Duration;

use rdkafka::producer::FutureRecord;
use yujing_response::{Change, ResponseBook, Units, WarningEvent};
use yujing_rules::WarningTransition;
use yujing_sinks::AlertMessage;

use super::{PipelineError, State};
use crate::response_api::{ApiReceiver, ApiRequest};
use crate::telemetry::{ResponseChanged, ResponseRefused};

/// What `yujing run` needs for the response loop.
pub struct ResponseSetup {
    pub units: Units,
    /// Where response changes are published.
    pub topic: String,
    pub requests: ApiReceiver,
}

/// The loop's state in the pipeline.
pub(super) struct ResponseLoop {
    book: ResponseBook,
    units: Units,
    topic: String,
    saved_to: Option<PathBuf>,
}

/// The file the book is saved to, under `state_dir`.
pub const RESPONSES_FILE: &str = "responses.json";

impl ResponseLoop {
    pub(super) fn new(units: Units, topic: String, state_dir: Option<&std::path::Path>) -> Self {
        let saved_to = state_dir.map(|d| d.join(RESPONSES_FILE));
        let book = saved_to
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
            book,
            units,
            topic,
            saved_to,
        }
    }
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
        let now = yujing_ingest::clock::wall_now_ms();
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
            };
            changes.extend(
                r.book
                    .on_warning(&event, self.engine.registry(), &r.units, now),
            );
        }
        self.publish_responses(changes).await
    }

    /// Escalate what is overdue.
    pub(super) async fn response_tick(&mut self) -> Result<(), PipelineError> {
        let Some(r) = &mut self.responses else {
            return Ok(());
        };
        let now = yujing_ingest::clock::wall_now_ms();
        let changes = r.book.tick(&r.units, now);
        // Handled responses are kept a day for the API, then dropped.
        r.book.prune(now - 24 * 3_600_000);
        self.publish_responses(changes).await
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
                let now = yujing_ingest::clock::wall_now_ms();
                let result = r.book.command(&unit, &command, &r.units, now);
                match &result {
                    Ok(_) => {}
                    Err(refusal) => ResponseRefused {
                        unit: &unit,
                        refusal,
                    }
                    .emit(&self.metrics),
                }
                let change = result.as_ref().ok().cloned();
                let _ = reply.send(result);
                self.publish_responses(change.into_iter().collect()).await
            }
        }
    }

    /// Publish `changes` to the response topic, count them, save the book.
    async fn publish_responses(&mut self, changes: Vec<Change>) -> Result<(), PipelineError> {
        let Some(r) = &self.responses else {
            return Ok(());
        };
        if changes.is_empty() {
            return Ok(());
        }
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
                    m.insert("grade".into(), resp.grade.as_str().into());
                }
            }
            let body = message.to_string();
            let record = FutureRecord::to(&r.topic)
                .key(c.warning_id.as_str())
                .payload(body.as_str());
            self.dead_letter
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| PipelineError::Kafka(e))?;
        }
        if let Some(path) = &r.saved_to {
            save(path, &r.book)?;
        }
        Ok(())
    }
}

fn save(path: &std::path::Path, book: &ResponseBook) -> Result<(), PipelineError> {
    let bytes = serde_json::to_vec(book).map_err(|e| PipelineError::Invalid(e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| PipelineError::Invalid(format!("saving {}: {e}", path.display())))
}
