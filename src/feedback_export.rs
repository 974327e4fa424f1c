//! `yujing feedback export`: responders' verdicts as backtest labels.
//!
//! Reads the response topic of a `yujing run` config from its beginning to
//! its end, folds it into one verdict per handled warning
//! ([`yujing_response::verdicts::fold`]) and writes a CSV that `yujing
//! backtest --events` takes: `series,start,end,outcome,rule,warning_id,by`,
//! one row per sensor of the warning's area. Confirmed verdicts are events
//! to detect; the backtest report scores each rule against all verdicts
//! (confirmed vs false alarm).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use yujing_ingest::{AreaLevel, SensorRegistry};
use yujing_response::Verdict;

use crate::config::Loaded;

#[derive(Debug, clap::Subcommand)]
pub enum FeedbackCommand {
    /// Write the verdicts on the response topic as a labelled-events CSV
    /// for `yujing backtest --events`.
    Export {
        /// The `yujing run` config (its Kafka, response topic and sensors).
        #[arg(long, short)]
        config: PathBuf,
        /// The CSV to write.
        #[arg(long, default_value = "verdicts.csv")]
        out: PathBuf,
        /// How long to wait for the topic's end.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

/// What can go wrong exporting.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("the config has no `response:` section: there is no response topic")]
    NoResponse,
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("{0}")]
    Invalid(String),
    #[error("the response topic was not read to its end within {0:?}")]
    Timeout(Duration),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub fn run(command: &FeedbackCommand) -> Result<usize, ExportError> {
    let FeedbackCommand::Export {
        config,
        out,
        timeout,
    } = command;
    let loaded = Loaded::load(config)?;
    let topic = loaded
        .config
        .response
        .as_ref()
        .ok_or(ExportError::NoResponse)?
        .topic
        .clone();
    let k = &loaded.config.kafka;
    let mut props = k.client_properties().map_err(ExportError::Invalid)?;
    props.extend(k.consumer_properties.clone());
    let consumer: BaseConsumer = yujing_ingest::kafka::client_config(
        &k.bootstrap_servers,
        &[("enable.partition.eof", "false")],
        &props,
        &[
            ("group.id", &format!("{}.feedback-export", k.group_id)),
            ("enable.auto.commit", "false"),
        ],
    )
    .create()?;
    let messages = read_to_end(&consumer, &topic, *timeout)?;
    let verdicts = yujing_response::verdicts::fold(messages);
    write_csv(out, &verdicts, &loaded.registry)?;
    Ok(verdicts.len())
}

/// Every message of `topic`, from its beginning to its end now.
fn read_to_end(
    consumer: &BaseConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<serde_json::Value>, ExportError> {
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(10))?;
    let t = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| {
            ExportError::Invalid(format!("the response topic {topic:?} does not exist"))
        })?;
    let mut out = Vec::new();
    let partitions: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    let reached =
        crate::topics::read_to_end(consumer, topic, partitions, Instant::now() + timeout, |m| {
            match m.payload().map(serde_json::from_slice::<serde_json::Value>) {
                Some(Ok(v)) => out.push(v),
                _ => tracing::warn!(
                    partition = m.partition(),
                    offset = m.offset(),
                    "not a JSON response message; skipped"
                ),
            }
        })?;
    if !reached {
        return Err(ExportError::Timeout(timeout));
    }
    Ok(out)
}

/// The labelled-events CSV: a row per sensor of each verdict's area.
pub fn write_csv(
    path: &Path,
    verdicts: &[Verdict],
    registry: &SensorRegistry,
) -> Result<(), ExportError> {
    let mut text = String::from("series,start,end,outcome,rule,warning_id,by\n");
    for v in verdicts {
        for series in sensors_of(registry, &v.level, &v.key) {
            let outcome = serde_json::to_value(v.outcome)
                .ok()
                .and_then(|o| o.as_str().map(str::to_owned))
                .unwrap_or_default();
            text.push_str(&format!(
                "{},{},{},{outcome},{},{},{}\n",
                csv_cell(&series),
                v.start,
                v.end,
                csv_cell(&v.rule),
                csv_cell(&v.warning_id),
                csv_cell(&v.by)
            ));
        }
    }
    std::fs::write(path, text).map_err(|source| ExportError::Write {
        path: path.to_owned(),
        source,
    })
}

/// The sensors of the area `key` at `level` (a sensor id names itself).
fn sensors_of(registry: &SensorRegistry, level: &str, key: &str) -> Vec<String> {
    let level = match AreaLevel::parse(level) {
        Some(l) if l != AreaLevel::Sensor => l,
        _ => return vec![key.to_owned()],
    };
    let found: Vec<String> = (0..registry.len() as u32)
        .filter(|s| registry.group_key(level, registry.group_index(level, *s)) == key)
        .map(|s| registry.sensors()[s as usize].sensor_id.clone())
        .collect();
    if found.is_empty() {
        vec![key.to_owned()]
    } else {
        found
    }
}

/// A CSV field: quoted when it holds a comma, a quote or a line break.
pub(crate) fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
