//! `kind: alertmanager`: warnings as alerts in Prometheus Alertmanager.

use std::time::Duration;

use serde::Deserialize;

use super::{AlertmanagerSettings, AlertmanagerSink};
use crate::TimeFormat;
use crate::config::{BuildContext, duration};
use crate::error::SinkError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URL, e.g. `http://alertmanager:9093`.
    pub url: String,
    #[serde(
        default = "crate::webhook::config::default_timeout",
        deserialize_with = "duration"
    )]
    pub timeout: Duration,
    /// How often active warnings are sent again.
    #[serde(default = "default_resend_every", deserialize_with = "duration")]
    pub resend_every: Duration,
    /// Each send's `endsAt` lies this far ahead: if yujing stops
    /// re-sending, Alertmanager resolves the alert after it.
    #[serde(default = "default_valid_for", deserialize_with = "duration")]
    pub valid_for: Duration,
    /// Link shown with each alert (e.g. the Grafana dashboard).
    #[serde(default)]
    pub generator_url: Option<String>,
}

fn default_resend_every() -> Duration {
    Duration::from_secs(60)
}

fn default_valid_for() -> Duration {
    Duration::from_secs(300)
}

impl AlertmanagerConfig {
    pub fn validate(&self) -> Result<(), String> {
        let url = &self.url;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "alertmanager url {url:?} must start with http:// or https://"
            ));
        }
        if self.valid_for <= self.resend_every {
            return Err(format!(
                "alertmanager {url}: valid_for must be longer than resend_every, or alerts expire between sends"
            ));
        }
        Ok(())
    }

    pub fn build(&self, ctx: &BuildContext<'_>) -> Result<AlertmanagerSink, SinkError> {
        AlertmanagerSink::new(
            AlertmanagerSettings {
                url: self.url.clone(),
                timeout: self.timeout,
                resend_every: self.resend_every,
                valid_for: self.valid_for,
                generator_url: self.generator_url.clone(),
            },
            TimeFormat::new(ctx.utc_offset_ms),
        )
    }
}
