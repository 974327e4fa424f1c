//! Alertmanager: warnings as Prometheus-style alerts, so existing routing,
//! silences, inhibition and receivers work unchanged.
//!
//! - Each warning is posted to `POST /api/v2/alerts` with labels
//!   `alertname` (the rule id), `grade`, `level`, `severity` (the CAP
//!   severity, lower case), `category`, `group_by`, `group`, `district`,
//!   `district_code`, `street`, `grid` (when known) and the rule's own
//!   labels; annotations `summary`, `description`, `value`, `threshold`,
//!   `warning_id`, `sequence` and the rule's annotations.
//! - Alertmanager knows an alert by its label set, and `grade` is a label:
//!   when a warning changes grade, the old grade's alert is resolved and the
//!   new one fires, so inhibition rules (red inhibits yellow) and routes by
//!   grade behave.
//! - While a warning is active it is re-sent every `resend_every` with
//!   `endsAt` = now + `valid_for` (as Prometheus does), so Alertmanager
//!   keeps it while yujing runs and lets it expire if yujing disappears.
//!   Resolving sends `endsAt` = the time of resolution.

pub mod config;
pub use config::AlertmanagerConfig;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::alert::{AlertMessage, TimeFormat};
use crate::error::SinkError;

/// How Alertmanager is reached and how often active warnings are re-sent.
#[derive(Debug, Clone)]
pub struct AlertmanagerSettings {
    /// Base URL, e.g. `http://127.0.0.1:9093`.
    pub url: String,
    pub timeout: Duration,
    pub resend_every: Duration,
    /// `endsAt` of a firing alert is this far ahead of each send.
    pub valid_for: Duration,
    /// Shown as each alert's source link, e.g. a Grafana dashboard.
    pub generator_url: Option<String>,
}

/// One alert in Alertmanager's `postableAlert` form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
}

pub struct AlertmanagerSink {
    settings: AlertmanagerSettings,
    client: reqwest::Client,
    /// Firing alerts by warning fingerprint: what is re-sent.
    active: HashMap<String, PostableAlert>,
    last_resend: Instant,
    times: TimeFormat,
}

/// Labels of the warning in `m` at `grade` (its grade after the change).
pub fn labels(m: &AlertMessage, grade: &str) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, String> = m.labels.clone();
    let mut set = |k: &str, v: &str| {
        l.insert(k.to_owned(), v.to_owned());
    };
    set("alertname", &m.rule.id);
    set("grade", grade);
    if let Some(level) = &m.level {
        set("level", level);
    }
    if let Some(severity) = &m.severity {
        set("severity", &severity.to_ascii_lowercase());
    }
    set("category", &m.rule.category);
    set("group_by", &m.group.by);
    set("group", &m.group.key);
    if !m.rule.group.is_empty() {
        set("rule_group", &m.rule.group);
    }
    let optional = [
        ("district", &m.group.district),
        ("district_code", &m.group.district_code),
        ("street", &m.group.street),
        ("grid", &m.group.grid),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            set(k, v);
        }
    }
    l
}

fn annotations(m: &AlertMessage) -> BTreeMap<String, String> {
    let mut a = m.annotations.clone();
    a.insert("summary".into(), m.summary.clone());
    if !m.rule.description.is_empty() {
        a.entry("description".into())
            .or_insert_with(|| m.rule.description.clone());
    }
    if let Some(v) = m.value {
        a.insert("value".into(), crate::alert::fmt_value(v, m.threshold));
    }
    if let Some(t) = m.threshold {
        a.insert("threshold".into(), crate::alert::fmt_number(t));
    }
    a.insert("warning_id".into(), m.warning_id.clone());
    a.insert("sequence".into(), m.sequence.to_string());
    a
}

impl AlertmanagerSink {
    pub fn new(settings: AlertmanagerSettings, times: TimeFormat) -> Result<Self, SinkError> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .user_agent(concat!("yujing/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SinkError::Alertmanager {
                url: settings.url.clone(),
                message: e.to_string(),
            })?;
        Ok(AlertmanagerSink {
            settings,
            client,
            active: HashMap::new(),
            last_resend: Instant::now(),
            times,
        })
    }

    pub fn url(&self) -> &str {
        &self.settings.url
    }

    /// Warnings firing in Alertmanager, as far as this sink knows.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// The alerts that bring Alertmanager in line with `alerts`, and the
    /// active set after them (applied only once Alertmanager accepted).
    pub fn plan(
        &self,
        alerts: &[AlertMessage],
        now_ms: i64,
    ) -> (Vec<PostableAlert>, HashMap<String, Option<PostableAlert>>) {
        let mut post = Vec::new();
        let mut changes: HashMap<String, Option<PostableAlert>> = HashMap::new();
        let valid_until = self
            .times
            .rfc3339(now_ms + self.settings.valid_for.as_millis() as i64);
        for m in alerts.iter() {
            let event_ms = chrono::DateTime::parse_from_rfc3339(&m.event_time)
                .map_or(now_ms, |t| t.timestamp_millis())
                .min(now_ms);
            let current = changes
                .get(&m.fingerprint)
                .cloned()
                .unwrap_or_else(|| self.active.get(&m.fingerprint).cloned());
            // The alert being replaced (another grade) or resolved.
            if let Some(mut old) = current {
                let same_grade = m.grade.as_deref() == old.labels.get("grade").map(String::as_str);
                if !same_grade {
                    old.ends_at = self.times.rfc3339(event_ms);
                    post.push(old);
                }
            }
            let next = m.grade.as_deref().map(|grade| PostableAlert {
                labels: labels(m, grade),
                annotations: annotations(m),
                starts_at: if m.transition == "raised" {
                    m.started_at.clone()
                } else {
                    self.times.rfc3339(event_ms)
                },
                ends_at: valid_until.clone(),
                generator_url: self.settings.generator_url.clone(),
            });
            if let Some(n) = &next {
                post.push(n.clone());
            }
            changes.insert(m.fingerprint.clone(), next);
        }
        (post, changes)
    }

    /// Post what `alerts` change; the active set follows once accepted.
    pub async fn deliver(&mut self, alerts: &[AlertMessage]) -> Result<(), SinkError> {
        let now_ms = yujing_ingest::clock::wall_now_ms();
        let (post, changes) = self.plan(alerts, now_ms);
        if !post.is_empty() {
            self.post(&post).await?;
        }
        for (fingerprint, alert) in changes {
            match alert {
                Some(a) => self.active.insert(fingerprint, a),
                None => self.active.remove(&fingerprint),
            };
        }
        Ok(())
    }

    /// Re-send the active alerts when `resend_every` has passed.
    pub async fn tick(&mut self) -> Result<(), SinkError> {
        if self.active.is_empty() || self.last_resend.elapsed() < self.settings.resend_every {
            return Ok(());
        }
        self.last_resend = Instant::now();
        let now_ms = yujing_ingest::clock::wall_now_ms();
        let until = self
            .times
            .rfc3339(now_ms + self.settings.valid_for.as_millis() as i64);
        for a in self.active.values_mut() {
            a.ends_at = until.clone();
        }
        let alerts: Vec<PostableAlert> = self.active.values().cloned().collect();
        self.post(&alerts).await
    }

    async fn post(&self, alerts: &[PostableAlert]) -> Result<(), SinkError> {
        let url = format!("{}/api/v2/alerts", self.settings.url.trim_end_matches('/'));
        let response = self
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(alerts)?)
            .send()
            .await
            .map_err(|e| SinkError::Alertmanager {
                url: url.clone(),
                message: e.without_url().to_string(),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(SinkError::Alertmanager {
                url,
                message: format!("HTTP {status} {body}"),
            });
        }
        Err(SinkError::Rejected {
            url,
            status: status.as_u16(),
            body,
        })
    }
}
