//! The public CAP feed: an Atom 1.0 index (RFC 4287) of the current CAP
//! messages, as public alerting aggregators poll it, and each message by
//! its identifier.
//!
//! - [`config`]: what is published (`feed:` in the config): categories,
//!   the lowest grade, the CAP sender, how long an all-clear stays listed.
//! - [`Feed`]: the latest message of each published warning, kept by the
//!   pipeline as it publishes (the same messages the sinks get), and
//!   saved to `state_dir` so a restart serves the warnings still in force.
//! - [`http`]: `GET /feed/cap.atom` (filterable by `category` and
//!   `min_grade`, with `ETag` / `If-None-Match`) and
//!   `GET /feed/cap/{identifier}.xml`.
//!
//! One entry per warning in force, `updated` = its latest message's `sent`;
//! a resolved warning's `Cancel` stays listed for `cancel_listed_for` (1 h)
//! so that pollers see the all-clear, then leaves the feed.

pub mod config;
pub mod http;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use yujing_rules::Grade;
use yujing_sinks::AlertMessage;
use yujing_sinks::cap::{CapSender, cap_xml, identifier};

pub use config::FeedConfig;

/// The file in `state_dir` the feed is saved to.
const FEED_FILE: &str = "feed.json";

/// One published warning: its latest CAP message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub warning_id: String,
    /// The message's CAP identifier.
    pub identifier: String,
    /// `sent` (RFC 3339) of the message.
    pub sent: String,
    /// When the warning was raised (RFC 3339).
    pub raised: String,
    /// Rule category: `env`, `met`, `infra`.
    pub category: String,
    /// The grade in force, or the grade a cancel ends.
    pub grade: Grade,
    pub cancelled: bool,
    /// Headline and summary in the feed's language.
    pub title: String,
    pub summary: String,
    /// Wall clock (ms) when a cancel arrived: it leaves the feed after
    /// `cancel_listed_for`.
    pub cancelled_at_ms: Option<i64>,
}

/// The published warnings, shared by the pipeline and the HTTP server.
#[derive(Clone)]
pub struct Feed {
    config: Arc<FeedConfig>,
    sender: Arc<CapSender>,
    /// The language of titles and summaries: the first one.
    language: String,
    inner: Arc<Mutex<Live>>,
    saved_to: Option<PathBuf>,
}

#[derive(Default, Serialize, Deserialize)]
struct Live {
    entries: BTreeMap<String, Entry>,
    /// Each listed entry's CAP 1.2 document, by identifier (kept apart so
    /// that listing the feed copies no documents).
    documents: BTreeMap<String, String>,
    /// Wall clock (ms) of the last change, the feed's `updated` when it
    /// lists nothing.
    changed_at_ms: i64,
}

impl Feed {
    /// A feed publishing per `config`, its CAP documents in `languages`
    /// (the first one titles entries); restored from `state_dir` if saved
    /// there.
    pub fn new(
        config: FeedConfig,
        languages: &[String],
        state_dir: Option<&std::path::Path>,
    ) -> Self {
        let sender = config.cap.sender(languages);
        let saved_to = state_dir.map(|d| d.join(FEED_FILE));
        let live = saved_to
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| match serde_json::from_slice::<Live>(&b) {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::error!("{FEED_FILE} cannot be read ({e}); the feed starts empty");
                    None
                }
            })
            .unwrap_or_default();
        Feed {
            language: languages.first().cloned().unwrap_or_else(|| "en".into()),
            config: Arc::new(config),
            sender: Arc::new(sender),
            inner: Arc::new(Mutex::new(live)),
            saved_to,
        }
    }

    /// Whether `a` is published at all.
    fn publishes(&self, a: &AlertMessage) -> bool {
        let grade = a
            .grade
            .as_deref()
            .or(a.previous_grade.as_deref())
            .and_then(Grade::parse);
        a.transition != "summary"
            && self.config.categories.contains(&a.rule.category)
            && grade.is_some_and(|g| g >= self.config.min_grade)
    }

    /// Alerts just published: each published warning's entry becomes its
    /// latest message. Once listed, a warning's later messages are listed
    /// too (a step below the feed's lowest grade is news to the public);
    /// one that resolves is listed as cancelled for a while.
    pub fn on_alerts(&self, alerts: &[AlertMessage]) {
        let now = yujing_ingest::clock::wall_now_ms();
        let mut live = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = false;
        for a in alerts {
            let listed = live.entries.contains_key(&a.warning_id);
            if !(self.publishes(a) || listed && a.transition != "summary") {
                continue;
            }
            let grade = a
                .grade
                .as_deref()
                .or(a.previous_grade.as_deref())
                .and_then(Grade::parse)
                .unwrap_or(Grade::Blue);
            let text = a.text(&self.language);
            let cancelled = a.grade.is_none();
            let entry = Entry {
                warning_id: a.warning_id.clone(),
                identifier: identifier(a, &self.sender.issuer_code, a.sequence, &a.event_time),
                sent: a.event_time.clone(),
                raised: a.started_at.clone(),
                category: a.rule.category.clone(),
                grade,
                cancelled,
                title: text.map_or_else(|| a.summary.clone(), |t| t.headline.clone()),
                summary: text.map_or_else(|| a.summary.clone(), |t| t.summary.clone()),
                cancelled_at_ms: cancelled.then_some(now),
            };
            let id = entry.identifier.clone();
            if let Some(old) = live.entries.insert(a.warning_id.clone(), entry)
                && old.identifier != id
            {
                live.documents.remove(&old.identifier);
            }
            live.documents.insert(id, cap_xml(a, &self.sender));
            changed = true;
        }
        let keep_ms = self.config.cancel_listed_for.as_millis() as i64;
        let gone: Vec<String> = live
            .entries
            .iter()
            .filter(|(_, e)| e.cancelled_at_ms.is_some_and(|at| now - at >= keep_ms))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            if let Some(e) = live.entries.remove(id) {
                live.documents.remove(&e.identifier);
            }
        }
        changed |= !gone.is_empty();
        if changed {
            live.changed_at_ms = now;
            self.save(&live);
        }
    }

    /// Write the feed to `state_dir` (atomically: a crash leaves the old one).
    fn save(&self, live: &Live) {
        let Some(path) = &self.saved_to else { return };
        let tmp = path.with_extension("json.tmp");
        let written = serde_json::to_vec(live)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            tracing::warn!("cannot save the feed to {}: {e}", path.display());
        }
    }

    /// The entries listed now, newest first, narrowed by a poller's filter.
    pub fn entries(&self, filter: &http::Filter) -> (Vec<Entry>, i64) {
        let now = yujing_ingest::clock::wall_now_ms();
        let keep_ms = self.config.cancel_listed_for.as_millis() as i64;
        let live = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Entry> = live
            .entries
            .values()
            .filter(|e| e.cancelled_at_ms.is_none_or(|at| now - at < keep_ms))
            .filter(|e| filter.admits(e))
            .cloned()
            .collect();
        out.sort_by(|a, b| b.sent.cmp(&a.sent).then(a.identifier.cmp(&b.identifier)));
        (out, live.changed_at_ms)
    }

    /// A listed message's CAP document by its identifier.
    pub fn document(&self, identifier: &str) -> Option<String> {
        let live = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        live.documents.get(identifier).cloned()
    }

    pub fn config(&self) -> &FeedConfig {
        &self.config
    }

    pub fn sender(&self) -> &CapSender {
        &self.sender
    }

    pub fn language(&self) -> &str {
        &self.language
    }
}
