//! The `yujing run` configuration file (YAML).
//!
//! Paths inside it (rules, sensors) are relative to the file itself. Every
//! section refuses unknown keys so a misspelt setting is an error, not a
//! silently ignored default. See `deploy/examples/yujing.yaml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use yujing_engine::{EngineSettings, TimeZone};
use yujing_rules::yaml_error_position;

pub use yujing_sinks::{SinkConfig, SinkKind};

/// Errors in the configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// The measurements file or the sensor registry the config names.
    #[error(transparent)]
    Named(#[from] yujing_ingest::IngestError),
    /// The rules the config names.
    #[error(transparent)]
    Rules(#[from] yujing_rules::RulesError),
    /// The responsibility file the config names.
    #[error(transparent)]
    Response(#[from] yujing_response::ResponseError),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub kafka: KafkaConfig,
    /// Rules: a YAML file, a directory of them, or a list of either.
    #[serde(deserialize_with = "one_or_many")]
    pub rules: Vec<PathBuf>,
    /// Sensor registry (CSV or YAML).
    pub sensors: PathBuf,
    /// Known metrics with units and physical ranges (YAML). With it, rules
    /// on unknown metrics are refused and out-of-range readings go to the
    /// dead-letter topic.
    #[serde(default)]
    pub measurements: Option<PathBuf>,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// Directory for state that must outlive a restart (the active
    /// warnings); relative to this file. Without it a restart forgets
    /// active warnings and raises them again.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// How often the open windows are checkpointed to `state_dir`, so a
    /// restart carries on from the checkpoint instead of replaying every
    /// reading behind them (also written at shutdown). Default 1m.
    #[serde(default = "default_checkpoint_every", deserialize_with = "duration")]
    pub checkpoint_every: Duration,
    /// How long stopping (SIGTERM, Ctrl-C) may take: delivering what the
    /// watermark closed, committing, writing the last checkpoint. When it
    /// passes, yujing names what it could not deliver or commit (those
    /// readings are read again on the next start) and exits non-zero.
    /// Default 20s, below Kubernetes' 30 s grace period. A second signal
    /// stops at once the same way.
    #[serde(default = "default_shutdown_deadline", deserialize_with = "duration")]
    pub shutdown_deadline: Duration,
    /// Where warnings go; at least one.
    pub sinks: Vec<SinkConfig>,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub reload: ReloadConfig,
    /// The response loop: who answers for each area, deadlines,
    /// escalation, the responders' API (off without it).
    #[serde(default)]
    pub response: Option<ResponseConfig>,
    /// The duty officer's board at `/board` on the metrics port (off
    /// without it): `board: {}`.
    #[serde(default)]
    pub board: Option<BoardConfig>,
    /// The public CAP feed at `/feed/cap.atom` on the metrics port (off
    /// without it).
    #[serde(default)]
    pub feed: Option<crate::feed::FeedConfig>,
    /// The languages warnings are written in, in order: the first is the
    /// main one, and CAP documents carry one `<info>` per language in this
    /// order. Built in: `zh-CN`, `en`. Default `[zh-CN, en]`.
    #[serde(default = "yujing_rules::language::default_tags")]
    pub languages: Vec<String>,
    /// More languages: YAML files shaped like the built-in ones (see
    /// `docs/bilingual.md`); relative to this file.
    #[serde(default)]
    pub language_files: Vec<PathBuf>,
}

/// The board's settings (`board: {}` turns it on).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardConfig {
    /// District (or street) boundaries as GeoJSON (a FeatureCollection of
    /// Polygons or MultiPolygons in lon/lat, `properties.name` shown),
    /// drawn under the grid cells; relative to this config. Without it the
    /// page draws what the registry gives.
    #[serde(default)]
    pub districts: Option<PathBuf>,
}

impl BoardConfig {
    /// The boundaries file, read and checked to be a GeoJSON
    /// FeatureCollection.
    pub fn load_districts(&self) -> Result<Option<serde_json::Value>, ConfigError> {
        let Some(path) = &self.districts else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ConfigError::Syntax {
                path: path.clone(),
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            })?;
        if value["type"] != "FeatureCollection" || !value["features"].is_array() {
            return Err(ConfigError::Invalid {
                path: path.clone(),
                message: "board.districts must be a GeoJSON FeatureCollection".into(),
            });
        }
        Ok(Some(value))
    }
}

/// The response loop's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseConfig {
    /// The responsibility file: units, communities, deadlines (relative to
    /// this config).
    pub units: PathBuf,
    /// Topic for response changes (`yujing.response/v1`, keyed by
    /// warning id).
    #[serde(default = "default_response_topic")]
    pub topic: String,
    /// Topic the city's dispatch systems send commands to (JSON keyed by
    /// warning id, with the acting `unit`); none: only the HTTP API.
    #[serde(default)]
    pub feedback_topic: Option<String>,
    /// How long a feedback command for a warning no instance's book holds
    /// yet (its partition is being handed over) waits before it is refused
    /// as unknown.
    #[serde(default = "default_feedback_grace", deserialize_with = "duration")]
    pub feedback_grace: Duration,
}

fn default_feedback_grace() -> Duration {
    Duration::from_secs(30)
}

fn default_response_topic() -> String {
    "city.responses".into()
}

/// How running rules are replaced. SIGHUP always reloads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadConfig {
    /// Reload when a rules file changes (size, time, or the files of a
    /// rules directory), checked every `watch_interval`.
    #[serde(default = "default_true")]
    pub watch: bool,
    #[serde(default = "default_watch_interval", deserialize_with = "duration")]
    pub watch_interval: Duration,
    /// Environment variable holding the bearer token `POST /-/reload` on
    /// the metrics port requires. Unset or empty: the endpoint refuses
    /// (403). The token is never read from this file, which is often
    /// world-readable.
    #[serde(default = "default_token_env")]
    pub http_token_env: String,
    /// Or a file holding the token (a mounted secret), relative to this
    /// config; takes precedence over the variable.
    #[serde(default)]
    pub http_token_file: Option<PathBuf>,
}

fn default_true() -> bool {
    true
}

fn default_watch_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_token_env() -> String {
    "YUJING_RELOAD_TOKEN".into()
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            watch: true,
            watch_interval: default_watch_interval(),
            http_token_env: default_token_env(),
            http_token_file: None,
        }
    }
}

/// `rules: a.yaml` or `rules: [a.yaml, more/]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(p) => vec![p],
        OneOrMany::Many(v) => v,
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`.
    pub bootstrap_servers: String,
    /// Consumer group; instances with the same id share the partitions.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// Topics carrying readings.
    pub readings_topics: Vec<String>,
    /// Refused messages go here with their original bytes and the reason.
    #[serde(default = "default_dead_letter")]
    pub dead_letter_topic: String,
    /// Readings later than the allowed lateness go here (original bytes,
    /// reason `late` in headers). Defaults to the dead-letter topic.
    #[serde(default)]
    pub late_topic: Option<String>,
    /// librdkafka properties for every client (security, timeouts, …).
    /// They override yujing's defaults, except `group.id` and the offset
    /// commit settings the delivery guarantee depends on.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties whose values are secrets (`sasl.password`,
    /// `ssl.key.password`, …), read from an environment variable or a file
    /// when the clients are made, never written in the config or logged:
    /// `sasl.password: { env: KAFKA_PASSWORD }` or `{ file: secrets/pw }`.
    #[serde(default)]
    pub secret_properties: BTreeMap<String, SecretSource>,
    /// librdkafka properties for the readings consumer only.
    #[serde(default)]
    pub consumer_properties: BTreeMap<String, String>,
    /// librdkafka properties for producers (alerts, dead letters) only.
    #[serde(default)]
    pub producer_properties: BTreeMap<String, String>,
    /// Exactly-once for the Kafka alert sinks: their alerts and the
    /// readings' offsets are committed in one Kafka transaction with this
    /// id. It must be unique per running instance and the same across its
    /// restarts (e.g. the pod name); unset, delivery is at least once.
    #[serde(default)]
    pub transactional_id: Option<String>,
    /// A compacted topic shared by the group, holding each partition's
    /// window state and warnings: written when a rebalance takes a
    /// partition away (and every `checkpoint_every`, and at shutdown), read
    /// by the partition's next owner, which carries on from there instead
    /// of re-reading the readings behind the open windows. Replaces the
    /// local checkpoint and `warnings.json` of `state_dir`. With
    /// `transactional_id`, the states are written in its transactions.
    #[serde(default)]
    pub state_topic: Option<String>,
    /// Largest record written to `state_topic`, in bytes; a larger
    /// partition state is written in chunks of this size and a manifest.
    /// Keep it under the topic's `max.message.bytes` (broker default
    /// about 1 MB) and the producer's `message.max.bytes`.
    #[serde(default = "default_state_chunk_bytes")]
    pub state_chunk_bytes: usize,
}

/// 900 kB: under the brokers' default message size limit of about 1 MB.
pub fn default_state_chunk_bytes() -> usize {
    900_000
}

/// Where a secret comes from: `{ env: VAR }` or `{ file: path }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// An environment variable's value.
    #[serde(default)]
    pub env: Option<String>,
    /// A file's contents, trimmed (relative to the config file).
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl KafkaConfig {
    /// `properties` with the secret ones filled in: what every client gets.
    pub fn client_properties(&self) -> Result<BTreeMap<String, String>, String> {
        let mut props = self.properties.clone();
        for (key, source) in &self.secret_properties {
            let value = match (&source.env, &source.file) {
                (Some(var), None) => std::env::var(var).map_err(|_| {
                    format!("kafka.secret_properties.{key}: environment variable {var} is not set")
                })?,
                (None, Some(path)) => std::fs::read_to_string(path)
                    .map_err(|e| {
                        format!(
                            "kafka.secret_properties.{key}: cannot read {}: {e}",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned(),
                _ => {
                    return Err(format!(
                        "kafka.secret_properties.{key}: give `env` or `file`, one of them"
                    ));
                }
            };
            props.insert(key.clone(), value);
        }
        Ok(props)
    }
}

fn default_group() -> String {
    "yujing".into()
}

fn default_dead_letter() -> String {
    "yujing.dead-letter".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// How long to wait for out-of-order readings before a window closes:
    /// the watermark is the latest event time seen minus this.
    #[serde(default = "default_delay", deserialize_with = "duration")]
    pub allowed_delay: Duration,
    /// A window stays open to corrections this long after the watermark
    /// passed it (capped at the window's slide): a reading arriving that
    /// late updates it and its result is re-emitted. Later readings go to
    /// the late topic.
    #[serde(default, deserialize_with = "duration")]
    pub allowed_lateness: Duration,
    /// Readings stamped further than this ahead of now are refused (they
    /// would otherwise push the watermark into the future).
    #[serde(default = "default_skew", deserialize_with = "duration")]
    pub max_future_skew: Duration,
    /// A partition silent this long (processing time) stops holding the
    /// watermark back; when all are silent, the watermark moves on with
    /// processing time so the last windows still close. `off` disables.
    #[serde(default = "default_idle", deserialize_with = "optional_duration")]
    pub idle_timeout: Option<Duration>,
    /// Readings stamped further than this before now are refused (a
    /// gateway whose clock reset to 1970 must not open windows in the
    /// past). `off` disables; raise it to replay an older backlog.
    #[serde(default = "default_max_age", deserialize_with = "optional_duration")]
    pub max_age: Option<Duration>,
    /// Local time for window alignment and displayed times: an IANA zone
    /// without daylight saving time (`Asia/Shanghai`) or an offset
    /// (`+08:00`). Windows align to local boundaries, so an hourly window
    /// is 08:00-09:00 local.
    #[serde(default)]
    pub time_zone: TimeZone,
    /// Messages larger than this are refused (dead-lettered as
    /// `oversized`) before decoding.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
}

fn default_max_message_bytes() -> usize {
    1024 * 1024
}

fn default_max_age() -> Option<Duration> {
    Some(Duration::from_secs(7 * 24 * 3600))
}

fn default_idle() -> Option<Duration> {
    Some(Duration::from_secs(120))
}

fn default_shutdown_deadline() -> Duration {
    Duration::from_secs(20)
}

fn default_checkpoint_every() -> Duration {
    Duration::from_secs(60)
}

fn default_delay() -> Duration {
    Duration::from_secs(30)
}

fn default_skew() -> Duration {
    Duration::from_secs(300)
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            allowed_delay: default_delay(),
            allowed_lateness: Duration::ZERO,
            max_future_skew: default_skew(),
            idle_timeout: default_idle(),
            max_age: default_max_age(),
            time_zone: TimeZone::default(),
            max_message_bytes: default_max_message_bytes(),
        }
    }
}

impl PipelineConfig {
    /// `time_zone` in milliseconds east of UTC (checked when parsed).
    pub fn utc_offset_ms(&self) -> i64 {
        self.time_zone.utc_offset_ms()
    }

    /// What the engine takes of this section.
    pub fn engine_settings(&self) -> EngineSettings {
        EngineSettings {
            time_zone: self.time_zone.clone(),
            allowed_delay: self.allowed_delay,
            allowed_lateness: self.allowed_lateness,
            max_future_skew: self.max_future_skew,
            idle_timeout: self.idle_timeout,
            max_age: self.max_age,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the Prometheus `/metrics` endpoint.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_listen(),
        }
    }
}

pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e} (write e.g. 30s, 10m, 1h)")))
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    if text == "off" {
        return Ok(None);
    }
    humantime::parse_duration(&text)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e} (write e.g. 2m, or off)")))
}

impl Config {
    /// Read, parse and validate; relative paths are resolved against the
    /// file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Config = serde_yaml_ng::from_str(&text).map_err(|e| {
            let (line, column, message) = yaml_error_position(&e);
            ConfigError::Syntax {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.rules = config.rules.iter().map(|r| base.join(r)).collect();
        config.sensors = base.join(&config.sensors);
        config.measurements = config.measurements.as_ref().map(|m| base.join(m));
        config.state_dir = config.state_dir.as_ref().map(|d| base.join(d));
        config.language_files = config.language_files.iter().map(|f| base.join(f)).collect();
        for source in config.kafka.secret_properties.values_mut() {
            if let Some(p) = &mut source.file {
                *p = base.join(&*p);
            }
        }
        for sink in &mut config.sinks {
            sink.resolve_paths(base);
        }
        if let Some(r) = &mut config.response {
            r.units = base.join(&r.units);
        }
        if let Some(d) = config.board.as_mut().and_then(|b| b.districts.as_mut()) {
            *d = base.join(&*d);
        }
        if let Some(f) = &config.reload.http_token_file {
            config.reload.http_token_file = Some(base.join(f));
        }
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Some(f) = &self.feed {
            f.validate()?;
        }
        for sink in &self.sinks {
            sink.validate()?;
            if self.kafka.transactional_id.is_some()
                && let SinkKind::Kafka(yujing_sinks::kafka::KafkaSinkConfig { topic, .. }) =
                    &sink.kind
                && sink.spool.is_some()
            {
                return Err(format!(
                    "sink topic {topic:?}: no spool in exactly-once mode (kafka.transactional_id): its alerts are committed with the offsets"
                ));
            }
        }
        if self.kafka.state_chunk_bytes < 100 {
            return Err(format!(
                "kafka.state_chunk_bytes {} is too small: at least 100",
                self.kafka.state_chunk_bytes
            ));
        }
        if self.kafka.readings_topics.is_empty() {
            return Err("kafka.readings_topics must name at least one topic".into());
        }
        if self.kafka.bootstrap_servers.trim().is_empty() {
            return Err("kafka.bootstrap_servers must not be empty".into());
        }
        if self.sinks.is_empty() {
            return Err("sinks must name at least one destination, or warnings go nowhere".into());
        }
        Ok(())
    }
}

/// A config and everything it names, loaded and checked.
pub struct Loaded {
    pub config: Config,
    pub measurements: Option<yujing_ingest::Measurements>,
    pub rules: yujing_rules::RuleSet,
    pub registry: yujing_ingest::SensorRegistry,
    /// With `response:`, the responsibility file, checked against the
    /// registry.
    pub units: Option<yujing_response::Units>,
    /// The languages warnings are written in.
    pub languages: yujing_rules::Languages,
}

impl Loaded {
    /// What `yujing run` and `yujing config check` load: the config, its
    /// measurements, its rules (checked against them) and its registry.
    /// The first problem, with its file (and line and column where known).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let config = Config::load(path)?;
        let measurements = match &config.measurements {
            Some(p) => Some(yujing_ingest::Measurements::load(p)?),
            None => None,
        };
        let known = measurements
            .as_ref()
            .map(yujing_ingest::Measurements::names);
        let languages = yujing_rules::Languages::new(&config.languages, &config.language_files)
            .map_err(|message| ConfigError::Invalid {
                path: path.to_owned(),
                message,
            })?;
        let rules = yujing_rules::RuleSet::load_checked(
            &config.rules,
            known.as_deref(),
            &config.languages,
        )?;
        let registry = yujing_ingest::SensorRegistry::load(&config.sensors)?;
        if let Some(b) = &config.board {
            b.load_districts()?;
        }
        let units = match &config.response {
            Some(r) => Some(yujing_response::Units::load(&r.units, &registry)?),
            None => None,
        };
        Ok(Loaded {
            config,
            measurements,
            rules,
            registry,
            units,
            languages,
        })
    }
}

/// `yujing config check`: the config and everything it names load; a
/// one-line summary, or the first problem.
pub fn check(path: &Path) -> Result<String, ConfigError> {
    let Loaded {
        config,
        rules,
        registry,
        ..
    } = Loaded::load(path)?;
    Ok(format!(
        "{} rules, {} sensors, {} sinks, readings from {:?} at {}",
        rules.rules.len(),
        registry.len(),
        config.sinks.len(),
        config.kafka.readings_topics,
        config.kafka.bootstrap_servers
    ))
}

#[cfg(test)]
mod tests;
