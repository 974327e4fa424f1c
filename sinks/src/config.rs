//! A sink's entry in the configuration, and building it.
//!
//! ```yaml
//! sinks:
//!   - kind: webhook              # which sink, and its own settings
//!     url: https://duty.example/hook
//!     route: { min_grade: orange }   # how alerts reach it: the same for
//!     storm: { per_rule_per_minute: 20 }  # every kind of sink
//!     spool: { dir: spool/duty }
//! ```
//!
//! Each kind's settings live beside its code (`kafka/config.rs`,
//! `webhook/config.rs`, …): fields, defaults, checks and how the sink is
//! built. This module holds what every sink shares: the route, storm
//! control and spool ([`SinkConfig`]), and what a built sink is handed to
//! the pipeline as ([`SinkSetup`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::producer::FutureProducer;
use serde::{Deserialize, Deserializer};

use crate::alertmanager::AlertmanagerConfig;
use crate::file::FileSinkConfig;
use crate::kafka::KafkaSinkConfig;
use crate::route::Route;
use crate::storm::StormLimits;
use crate::terminal::TerminalConfig;
use crate::webhook::{GroupConfig, WebhookConfig};
use crate::{Sink, SinkError};

/// One destination for warnings: its kind with the kind's own settings,
/// and how alerts reach it.
#[derive(Debug, Clone, Deserialize)]
pub struct SinkConfig {
    #[serde(flatten)]
    pub kind: SinkKind,
    /// Which warnings this sink takes (default: all). Applied first:
    /// alerts outside the route neither count toward `storm` nor reach the
    /// spool.
    #[serde(default)]
    pub route: Route,
    /// Storm control: new warnings per minute before the rest are
    /// summarised (for people; leave it off for machines that must see
    /// every warning).
    #[serde(default)]
    pub storm: Option<StormLimits>,
    /// Keep undelivered alerts on disk while the destination is down
    /// (Kafka, webhook and Alertmanager sinks).
    #[serde(default)]
    pub spool: Option<SpoolConfig>,
}

/// The kinds of sink, each with its own settings (unknown fields refused).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SinkKind {
    /// Alert messages on a Kafka topic: JSON (`yujing.alert/v1`) or CAP
    /// 1.2 XML.
    Kafka(KafkaSinkConfig),
    /// JSONL on disk, one alert per line, rotated by size.
    File(FileSinkConfig),
    /// One signed HTTP(S) POST per alert (or per group).
    Webhook(WebhookConfig),
    /// Warnings as alerts in Prometheus Alertmanager.
    Alertmanager(AlertmanagerConfig),
    /// Readable lines on standard output.
    Terminal(TerminalConfig),
}

/// A sink's on-disk spool.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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

fn default_spool_max_bytes() -> u64 {
    256 * 1024 * 1024
}

/// What building a sink needs from the rest of the configuration.
pub struct BuildContext<'a> {
    pub bootstrap_servers: &'a str,
    /// Producer properties (client ones with secrets filled in, then the
    /// producer-only ones).
    pub producer_properties: &'a BTreeMap<String, String>,
    /// In exactly-once mode, the transactional producer every Kafka sink
    /// shares.
    pub transactions: Option<&'a FutureProducer>,
    /// Local time of displayed times.
    pub utc_offset_ms: i64,
    /// The languages the deployment writes, in order (CAP `<info>` order,
    /// the terminal's default).
    pub languages: &'a [String],
}

/// A built sink with its delivery options, as the pipeline takes it.
pub struct SinkSetup {
    pub sink: Sink,
    /// Which alerts the sink takes (default: all).
    pub route: Route,
    pub storm: Option<StormLimits>,
    pub spool: Option<SpoolConfig>,
    /// Only with a spool (the alerts wait there).
    pub grouping: Option<GroupConfig>,
}

impl From<Sink> for SinkSetup {
    fn from(sink: Sink) -> Self {
        SinkSetup {
            sink,
            route: Route::default(),
            storm: None,
            spool: None,
            grouping: None,
        }
    }
}

impl SinkConfig {
    /// Why the entry is wrong, if it is.
    pub fn validate(&self) -> Result<(), String> {
        self.route.validate()?;
        match &self.kind {
            SinkKind::Kafka(k) => k.validate(),
            SinkKind::Webhook(w) => w.validate(self.spool.is_some()),
            SinkKind::Alertmanager(a) => a.validate(),
            SinkKind::File(_) | SinkKind::Terminal(_) if self.spool.is_some() => Err(format!(
                "a {} sink writes locally and takes no `spool`",
                self.kind_name()
            )),
            SinkKind::File(_) | SinkKind::Terminal(_) => Ok(()),
        }
    }

    /// `kafka`, `file`, `webhook`, `alertmanager` or `terminal`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            SinkKind::Kafka(_) => "kafka",
            SinkKind::File(_) => "file",
            SinkKind::Webhook(_) => "webhook",
            SinkKind::Alertmanager(_) => "alertmanager",
            SinkKind::Terminal(_) => "terminal",
        }
    }

    /// Make paths relative to the config file's directory `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        match &mut self.kind {
            SinkKind::File(f) => f.path = base.join(&f.path),
            SinkKind::Webhook(w) => w.resolve_paths(base),
            _ => {}
        }
        if let Some(s) = &mut self.spool {
            s.dir = base.join(&s.dir);
        }
    }

    /// Build the sink, with its route, storm limits, spool and grouping.
    pub fn build(&self, ctx: &BuildContext<'_>) -> Result<SinkSetup, SinkError> {
        let sink = match &self.kind {
            SinkKind::Kafka(k) => Sink::Kafka(k.build(ctx)?),
            SinkKind::File(f) => Sink::File(f.build()?),
            SinkKind::Webhook(w) => Sink::Webhook(w.build()?),
            SinkKind::Alertmanager(a) => Sink::Alertmanager(a.build(ctx)?),
            SinkKind::Terminal(t) => Sink::Terminal(t.build()),
        };
        Ok(SinkSetup {
            sink,
            route: self.route.clone(),
            storm: self.storm,
            spool: self.spool.clone(),
            grouping: match &self.kind {
                SinkKind::Webhook(w) => w.group.clone(),
                _ => None,
            },
        })
    }
}

/// An optional duration written as `30s`, `10m`, `1h`.
pub fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// A duration written as `30s`, `10m`, `1h`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e} (write e.g. 30s, 10m, 1h)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<SinkConfig, String> {
        serde_yaml_ng::from_str::<SinkConfig>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn shared_and_own_settings_parse_and_unknown_ones_are_refused() {
        let c = parse(
            "{kind: webhook, url: \"http://x\", route: {min_grade: red}, storm: {per_rule_per_minute: 1}, spool: {dir: s}, group: {by: [district]}}",
        )
        .unwrap();
        assert_eq!(c.kind_name(), "webhook");
        assert_eq!(c.route.min_grade, Some(yujing_rules::Grade::Red));
        assert_eq!(c.storm.unwrap().per_rule_per_minute, Some(1));
        assert!(c.validate().is_ok());
        let e = parse("{kind: webhook, url: \"http://x\", stom: {per_rule_per_minute: 1}}")
            .unwrap_err();
        assert!(e.contains("stom"), "{e}");
        let e = parse("{kind: kafka, topic: a, colour: true}").unwrap_err();
        assert!(e.contains("colour"), "{e}");
        let e = parse("{kind: pigeon}").unwrap_err();
        assert!(e.contains("pigeon"), "{e}");
    }

    #[test]
    fn local_sinks_take_no_spool_and_groups_need_one() {
        let e = parse("{kind: terminal, spool: {dir: s}}")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.contains("no `spool`"), "{e}");
        let e = parse("{kind: webhook, url: \"http://x\", group: {by: [rule]}}")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.contains("needs `spool`"), "{e}");
    }

    #[test]
    fn paths_resolve_against_the_config_directory() {
        let mut c =
            parse("{kind: webhook, url: \"http://x\", secret_file: k, spool: {dir: s}}").unwrap();
        c.resolve_paths(Path::new("/etc/yujing"));
        let SinkKind::Webhook(w) = &c.kind else {
            panic!("a webhook")
        };
        assert_eq!(w.secret_file.as_deref(), Some(Path::new("/etc/yujing/k")));
        assert_eq!(c.spool.unwrap().dir, Path::new("/etc/yujing/s"));
    }
}
