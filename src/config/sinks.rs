//! Sink entries of the config: one per destination, any number of each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use yujing_sinks::{Route, StormLimits};

use super::duration;

/// One destination for warnings.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    /// Alert messages on a Kafka topic: JSON (`yujing.alert/v1`) or CAP
    /// 1.2 XML (`format: cap`, issued as `cap.sender`).
    Kafka {
        /// May name `{grade}`, `{district_code}`, `{rule}` or `{category}`
        /// to route warnings to topics, e.g. `alerts.{grade}`.
        topic: String,
        #[serde(default)]
        format: SinkFormat,
        #[serde(default)]
        cap: Option<CapConfig>,
        /// Which warnings this sink takes (default: all).
        #[serde(default)]
        route: Route,
        /// Storm control: new warnings per minute before the rest are
        /// summarised (for people; leave it off for machines that must see
        /// every warning).
        #[serde(default)]
        storm: Option<StormLimits>,
        /// Keep undelivered alerts on disk while the destination is down.
        #[serde(default)]
        spool: Option<SpoolConfig>,
    },
    /// JSONL on disk, one alert per line, rotated by size.
    File {
        /// Relative to this config file.
        path: PathBuf,
        /// Rotate before the file would pass this many bytes.
        #[serde(default = "default_file_max_bytes")]
        max_bytes: u64,
        /// Rotated files to keep (`alerts.jsonl.1` …).
        #[serde(default = "default_file_keep")]
        keep: usize,
        #[serde(default)]
        route: Route,
        /// Storm control: new warnings per minute before the rest are
        /// summarised (for people; leave it off for machines that must see
        /// every warning).
        #[serde(default)]
        storm: Option<StormLimits>,
    },
    /// One HTTP(S) POST per alert (the alert JSON), signed with
    /// HMAC-SHA256, retried with backoff on timeouts, 5xx and 429.
    Webhook {
        url: String,
        /// Environment variable holding the signing secret.
        #[serde(default)]
        secret_env: Option<String>,
        /// File holding the signing secret (relative to this config).
        #[serde(default)]
        secret_file: Option<PathBuf>,
        /// PEM certificates to trust besides the Mozilla roots (e.g. the
        /// city's own CA), relative to this config.
        #[serde(default)]
        ca_file: Option<PathBuf>,
        #[serde(default = "default_webhook_timeout", deserialize_with = "duration")]
        timeout: Duration,
        /// Attempts per alert, the first included.
        #[serde(default = "default_webhook_attempts")]
        max_attempts: u32,
        /// First retry's ceiling; doubled per retry up to `max_backoff`,
        /// each wait drawn at random below it (full jitter).
        #[serde(default = "default_webhook_backoff", deserialize_with = "duration")]
        backoff: Duration,
        #[serde(default = "default_webhook_max_backoff", deserialize_with = "duration")]
        max_backoff: Duration,
        /// Extra request headers.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// Send alerts that arrive within `wait` of each other as one
        /// request per group (needs `spool`: they wait there).
        #[serde(default)]
        group: Option<GroupConfig>,
        #[serde(default)]
        route: Route,
        /// Storm control: new warnings per minute before the rest are
        /// summarised (for people; leave it off for machines that must see
        /// every warning).
        #[serde(default)]
        storm: Option<StormLimits>,
        /// Keep undelivered alerts on disk while the destination is down.
        #[serde(default)]
        spool: Option<SpoolConfig>,
    },
    /// Warnings as alerts in Prometheus Alertmanager (`POST /api/v2/alerts`),
    /// re-sent while active and resolved with `endsAt`.
    Alertmanager {
        /// Base URL, e.g. `http://alertmanager:9093`.
        url: String,
        #[serde(default = "default_webhook_timeout", deserialize_with = "duration")]
        timeout: Duration,
        /// How often active warnings are sent again.
        #[serde(default = "default_resend_every", deserialize_with = "duration")]
        resend_every: Duration,
        /// Each send's `endsAt` lies this far ahead: if yujing stops
        /// re-sending, Alertmanager resolves the alert after it.
        #[serde(default = "default_valid_for", deserialize_with = "duration")]
        valid_for: Duration,
        /// Link shown with each alert (e.g. the Grafana dashboard).
        #[serde(default)]
        generator_url: Option<String>,
        #[serde(default)]
        route: Route,
        /// Storm control: new warnings per minute before the rest are
        /// summarised (for people; leave it off for machines that must see
        /// every warning).
        #[serde(default)]
        storm: Option<StormLimits>,
        /// Keep undelivered alerts on disk while the destination is down.
        #[serde(default)]
        spool: Option<SpoolConfig>,
    },
    /// Readable lines on standard output.
    Terminal {
        /// Force colours on or off (default: on when stdout is a terminal).
        #[serde(default)]
        colour: Option<bool>,
        #[serde(default)]
        route: Route,
        /// Storm control: new warnings per minute before the rest are
        /// summarised (for people; leave it off for machines that must see
        /// every warning).
        #[serde(default)]
        storm: Option<StormLimits>,
    },
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_webhook_attempts() -> u32 {
    5
}

fn default_webhook_backoff() -> Duration {
    Duration::from_millis(500)
}

fn default_webhook_max_backoff() -> Duration {
    Duration::from_secs(30)
}

fn default_resend_every() -> Duration {
    Duration::from_secs(60)
}

fn default_valid_for() -> Duration {
    Duration::from_secs(300)
}

fn default_spool_max_bytes() -> u64 {
    256 * 1024 * 1024
}

/// Grouping of a webhook's alerts, as Alertmanager's `group_by` and
/// `group_wait`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// `district`, `district_code`, `rule`, `grade`, `category` or label
    /// names.
    pub by: Vec<String>,
    #[serde(default = "default_group_wait", deserialize_with = "duration")]
    pub wait: Duration,
}

fn default_group_wait() -> Duration {
    Duration::from_secs(30)
}

/// A sink's on-disk spool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Directory of this sink's spool (relative to the config file); one
    /// per sink.
    pub dir: PathBuf,
    /// Most bytes of undelivered alerts kept; when full, yujing stops
    /// reading until the destination takes some (nothing is dropped).
    #[serde(default = "default_spool_max_bytes")]
    pub max_bytes: u64,
}

fn default_file_max_bytes() -> u64 {
    100 * 1024 * 1024
}

fn default_file_keep() -> usize {
    10
}

/// Body format of a Kafka sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkFormat {
    #[default]
    Json,
    Cap,
}

/// Who issues CAP alerts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapConfig {
    /// CAP `<sender>`, e.g. `yujing@eeb.cq.example`.
    pub sender: String,
    /// CAP `<senderName>`.
    #[serde(default)]
    pub sender_name: Option<String>,
    /// `<language>` of the texts (default `en-US`).
    #[serde(default)]
    pub language: Option<String>,
    /// GB/T 35965.1 issuer code in identifiers, after the division code:
    /// 3-digit industry, 3-digit unit, 2-digit extension (default
    /// `00000000`).
    #[serde(default)]
    pub issuer_code: Option<String>,
}

impl SinkConfig {
    /// Make paths relative to the config file's directory `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        match self {
            SinkConfig::File { path: p, .. } => *p = base.join(&*p),
            SinkConfig::Webhook {
                secret_file,
                ca_file,
                ..
            } => {
                for f in [secret_file, ca_file].into_iter().flatten() {
                    *f = base.join(&*f);
                }
            }
            _ => {}
        }
        if let Some(s) = self.spool_mut() {
            s.dir = base.join(&s.dir);
        }
    }

    fn spool_mut(&mut self) -> Option<&mut SpoolConfig> {
        match self {
            SinkConfig::Kafka { spool, .. }
            | SinkConfig::Webhook { spool, .. }
            | SinkConfig::Alertmanager { spool, .. } => spool.as_mut(),
            SinkConfig::File { .. } | SinkConfig::Terminal { .. } => None,
        }
    }

    /// Its grouping, if any.
    pub fn grouping(&self) -> Option<&GroupConfig> {
        match self {
            SinkConfig::Webhook { group, .. } => group.as_ref(),
            _ => None,
        }
    }

    /// Its storm limits and spool, if any.
    pub fn delivery(&self) -> (Option<StormLimits>, Option<SpoolConfig>) {
        match self {
            SinkConfig::Kafka { storm, spool, .. }
            | SinkConfig::Webhook { storm, spool, .. }
            | SinkConfig::Alertmanager { storm, spool, .. } => (*storm, spool.clone()),
            SinkConfig::File { storm, .. } | SinkConfig::Terminal { storm, .. } => (*storm, None),
        }
    }

    /// Why the entry is wrong, if it is.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            SinkConfig::Kafka {
                topic,
                route,
                format,
                cap,
                ..
            } => {
                route.validate()?;
                let rest = yujing_sinks::route::TOPIC_PLACEHOLDERS
                    .iter()
                    .fold(topic.clone(), |t, p| t.replace(p, ""));
                if rest.contains('{') || rest.contains('}') {
                    return Err(format!(
                        "sink topic {topic:?}: placeholders are {}",
                        yujing_sinks::route::TOPIC_PLACEHOLDERS.join(", ")
                    ));
                }
                if let Some(code) = cap.as_ref().and_then(|c| c.issuer_code.as_ref())
                    && (code.len() != 8 || !code.bytes().all(|b| b.is_ascii_digit()))
                {
                    return Err(format!(
                        "sink topic {topic:?}: cap.issuer_code {code:?} must be 8 digits (industry, unit, extension)"
                    ));
                }
                if *format == SinkFormat::Cap && cap.is_none() {
                    return Err(format!(
                        "sink topic {topic:?}: `format: cap` needs `cap: {{sender: …}}`"
                    ));
                }
            }
            SinkConfig::Terminal { route, .. } | SinkConfig::File { route, .. } => {
                route.validate()?
            }
            SinkConfig::Alertmanager {
                url,
                route,
                resend_every,
                valid_for,
                ..
            } => {
                route.validate()?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "alertmanager url {url:?} must start with http:// or https://"
                    ));
                }
                if valid_for <= resend_every {
                    return Err(format!(
                        "alertmanager {url}: valid_for must be longer than resend_every, or alerts expire between sends"
                    ));
                }
            }
            SinkConfig::Webhook {
                url,
                route,
                max_attempts,
                secret_env,
                secret_file,
                group,
                spool,
                ..
            } => {
                route.validate()?;
                if group.is_some() && spool.is_none() {
                    return Err(format!(
                        "webhook {url}: `group` needs `spool` (grouped alerts wait in the spool, so a crash loses none)"
                    ));
                }
                if group.as_ref().is_some_and(|g| g.by.is_empty()) {
                    return Err(format!("webhook {url}: group.by names nothing"));
                }
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "webhook url {url:?} must start with http:// or https://"
                    ));
                }
                if *max_attempts == 0 {
                    return Err(format!("webhook {url}: max_attempts must be at least 1"));
                }
                if secret_env.is_some() && secret_file.is_some() {
                    return Err(format!(
                        "webhook {url}: give secret_env or secret_file, not both"
                    ));
                }
            }
        }
        Ok(())
    }
}
