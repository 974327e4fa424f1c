//! Destinations named in the config, built: each sink with its storm
//! limits and spool.

use yujing_sinks::{
    AlertFormat, AlertmanagerSettings, AlertmanagerSink, CapSender, FileSink, KafkaAlertSink, Sink,
    TerminalSink, TimeFormat, WebhookSettings, WebhookSink,
};

use rdkafka::producer::FutureProducer;

use crate::config::{Config, SinkConfig, SinkFormat};
use crate::pipeline::{Grouping, PipelineError, SinkSetup, SpoolSettings};

/// Sinks named in the config, in order.
/// The sinks, and in exactly-once mode the transactional producer their
/// Kafka sinks share (the pipeline commits offsets in its transactions).
pub struct Destinations {
    pub sinks: Vec<SinkSetup>,
    pub transactions: Option<FutureProducer>,
}

pub fn build_sinks(config: &Config) -> Result<Destinations, PipelineError> {
    let utc_offset_ms = config
        .pipeline
        .utc_offset_ms()
        .map_err(PipelineError::Invalid)?;
    let transactions = match &config.kafka.transactional_id {
        Some(id) => {
            let props = producer_properties(config)?;
            let producer: FutureProducer = yujing_ingest::kafka::client_config(
                &config.kafka.bootstrap_servers,
                &[("linger.ms", "5"), ("message.timeout.ms", "30000")],
                &props,
                &[
                    ("transactional.id", id.as_str()),
                    ("enable.idempotence", "true"),
                    ("acks", "all"),
                ],
            )
            .create()?;
            Some(producer)
        }
        None => None,
    };
    let sinks = config
        .sinks
        .iter()
        .map(|entry| {
            let sink = build_sink(entry, config, utc_offset_ms, transactions.as_ref())?;
            let (storm, spool) = entry.delivery();
            Ok(SinkSetup {
                sink,
                storm,
                grouping: entry.grouping().map(|g| Grouping {
                    by: g.by.clone(),
                    wait: g.wait,
                }),
                spool: spool.map(|s| SpoolSettings {
                    dir: s.dir,
                    max_bytes: s.max_bytes,
                }),
            })
        })
        .collect::<Result<_, PipelineError>>()?;
    Ok(Destinations {
        sinks,
        transactions,
    })
}

/// Properties of every producer: the client ones (secrets filled in), then
/// the producer-only ones.
fn producer_properties(
    config: &Config,
) -> Result<std::collections::BTreeMap<String, String>, PipelineError> {
    let mut props = config
        .kafka
        .client_properties()
        .map_err(PipelineError::Invalid)?;
    props.extend(config.kafka.producer_properties.clone());
    Ok(props)
}

fn build_sink(
    entry: &SinkConfig,
    config: &Config,
    utc_offset_ms: i64,
    transactions: Option<&FutureProducer>,
) -> Result<Sink, PipelineError> {
    let props = producer_properties(config)?;
    match entry {
        SinkConfig::Kafka {
            topic,
            format,
            cap,
            route,
            ..
        } => {
            let format = match format {
                SinkFormat::Json => AlertFormat::Json,
                SinkFormat::Cap => {
                    let mut from = CapSender::default();
                    if let Some(c) = cap {
                        from.sender = c.sender.clone();
                        if let Some(n) = &c.sender_name {
                            from.name = n.clone();
                        }
                        if let Some(l) = &c.language {
                            from.language = l.clone();
                        }
                        if let Some(code) = &c.issuer_code {
                            from.issuer_code = code.clone();
                        }
                    }
                    AlertFormat::Cap(from)
                }
            };
            match transactions {
                Some(p) => Ok(KafkaAlertSink::with_producer(p.clone(), topic)),
                None => KafkaAlertSink::new(&config.kafka.bootstrap_servers, topic, &props),
            }
            .map(|k| Sink::Kafka(k.with_format(format).with_route(route.clone())))
            .map_err(|e| PipelineError::Invalid(e.to_string()))
        }
        SinkConfig::File {
            path,
            max_bytes,
            keep,
            route,
            ..
        } => FileSink::open(path, *max_bytes, *keep)
            .map(|f| Sink::File(f.with_route(route.clone())))
            .map_err(|e| PipelineError::Invalid(format!("file sink {}: {e}", path.display()))),
        SinkConfig::Webhook {
            url,
            secret_env,
            secret_file,
            timeout,
            max_attempts,
            backoff,
            max_backoff,
            headers,
            route,
            ca_file,
            ..
        } => {
            let extra_roots_pem = match ca_file {
                Some(f) => Some(std::fs::read(f).map_err(|e| {
                    PipelineError::Invalid(format!("webhook {url}: ca_file {}: {e}", f.display()))
                })?),
                None => None,
            };
            let secret = match (secret_env, secret_file) {
                (Some(var), _) => Some(std::env::var(var).map_err(|_| {
                    PipelineError::Invalid(format!(
                        "webhook {url}: environment variable {var} (the signing secret) is not set"
                    ))
                })?),
                (None, Some(f)) => Some(
                    std::fs::read_to_string(f)
                        .map_err(|e| {
                            PipelineError::Invalid(format!(
                                "webhook {url}: secret file {}: {e}",
                                f.display()
                            ))
                        })?
                        .trim()
                        .to_owned(),
                ),
                (None, None) => None,
            };
            let settings = WebhookSettings {
                url: url.clone(),
                secret: secret.map(String::into_bytes),
                timeout: *timeout,
                max_attempts: *max_attempts,
                backoff: *backoff,
                max_backoff: *max_backoff,
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                extra_roots_pem,
            };
            WebhookSink::new(settings)
                .map(|w| Sink::Webhook(w.with_route(route.clone())))
                .map_err(|e| PipelineError::Invalid(e.to_string()))
        }
        SinkConfig::Terminal { colour, route, .. } => Ok(Sink::Terminal(
            match colour {
                Some(c) => TerminalSink::new(Box::new(std::io::stdout()), *c),
                None => TerminalSink::stdout(),
            }
            .with_route(route.clone()),
        )),
        SinkConfig::Alertmanager {
            url,
            timeout,
            resend_every,
            valid_for,
            generator_url,
            route,
            ..
        } => {
            let settings = AlertmanagerSettings {
                url: url.clone(),
                timeout: *timeout,
                resend_every: *resend_every,
                valid_for: *valid_for,
                generator_url: generator_url.clone(),
            };
            AlertmanagerSink::new(settings, TimeFormat::new(utc_offset_ms))
                .map(|a| Sink::Alertmanager(a.with_route(route.clone())))
                .map_err(|e| PipelineError::Invalid(e.to_string()))
        }
    }
}
