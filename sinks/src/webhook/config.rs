//! `kind: webhook`: one signed HTTP(S) POST per alert, or per group.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{WebhookSettings, WebhookSink};
use crate::config::duration;
use crate::error::SinkError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Environment variable holding the signing secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// File holding the signing secret (relative to the config).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// PEM certificates to trust besides the Mozilla roots (e.g. the
    /// city's own CA), relative to the config.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Attempts per alert, the first included.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry's ceiling; doubled per retry up to `max_backoff`,
    /// each wait drawn at random below it (full jitter).
    #[serde(default = "default_backoff", deserialize_with = "duration")]
    pub backoff: Duration,
    #[serde(default = "default_max_backoff", deserialize_with = "duration")]
    pub max_backoff: Duration,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Send alerts that arrive within `wait` of each other as one request
    /// per group (needs `spool`: they wait there).
    #[serde(default)]
    pub group: Option<GroupConfig>,
}

/// Grouping of a webhook's alerts, as Alertmanager's `group_by` and
/// `group_wait`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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

pub(crate) fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_attempts() -> u32 {
    5
}

fn default_backoff() -> Duration {
    Duration::from_millis(500)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(30)
}

impl WebhookConfig {
    /// `spooled`: whether the sink has a spool (grouping needs one).
    pub fn validate(&self, spooled: bool) -> Result<(), String> {
        let url = &self.url;
        if self.group.is_some() && !spooled {
            return Err(format!(
                "webhook {url}: `group` needs `spool` (grouped alerts wait in the spool, so a crash loses none)"
            ));
        }
        if self.group.as_ref().is_some_and(|g| g.by.is_empty()) {
            return Err(format!("webhook {url}: group.by names nothing"));
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "webhook url {url:?} must start with http:// or https://"
            ));
        }
        if self.max_attempts == 0 {
            return Err(format!("webhook {url}: max_attempts must be at least 1"));
        }
        if self.secret_env.is_some() && self.secret_file.is_some() {
            return Err(format!(
                "webhook {url}: give secret_env or secret_file, not both"
            ));
        }
        Ok(())
    }

    pub fn resolve_paths(&mut self, base: &Path) {
        for f in [&mut self.secret_file, &mut self.ca_file]
            .into_iter()
            .flatten()
        {
            *f = base.join(&*f);
        }
    }

    /// Read the secret and CA file and build the client.
    pub fn build(&self) -> Result<WebhookSink, SinkError> {
        let url = &self.url;
        let error = |message: String| SinkError::Webhook {
            url: url.clone(),
            message,
        };
        let extra_roots_pem = match &self.ca_file {
            Some(f) => {
                Some(std::fs::read(f).map_err(|e| error(format!("ca_file {}: {e}", f.display())))?)
            }
            None => None,
        };
        let secret = match (&self.secret_env, &self.secret_file) {
            (Some(var), _) => Some(std::env::var(var).map_err(|_| {
                error(format!(
                    "environment variable {var} (the signing secret) is not set"
                ))
            })?),
            (None, Some(f)) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| error(format!("secret file {}: {e}", f.display())))?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        WebhookSink::new(WebhookSettings {
            url: url.clone(),
            secret: secret.map(String::into_bytes),
            timeout: self.timeout,
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            max_backoff: self.max_backoff,
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            extra_roots_pem,
        })
    }
}
