//! Destinations named in the config, built: each sink (by its own
//! `config.rs` in `yujing-sinks`) with its route, storm limits and spool,
//! and in exactly-once mode the transactional producer they share.

use std::collections::BTreeMap;

use rdkafka::producer::FutureProducer;
use yujing_sinks::{BuildContext, SinkSetup};

use crate::config::Config;
use crate::pipeline::PipelineError;

/// The sinks, and in exactly-once mode the transactional producer their
/// Kafka sinks share (the pipeline commits offsets in its transactions).
pub struct Destinations {
    pub sinks: Vec<SinkSetup>,
    pub transactions: Option<FutureProducer>,
}

/// The sinks named in the config, in order.
pub fn build_sinks(config: &Config) -> Result<Destinations, PipelineError> {
    let props = producer_properties(config)?;
    let transactions = match &config.kafka.transactional_id {
        Some(id) => {
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
    let ctx = BuildContext {
        bootstrap_servers: &config.kafka.bootstrap_servers,
        producer_properties: &props,
        transactions: transactions.as_ref(),
        utc_offset_ms: config.pipeline.utc_offset_ms(),
        languages: &config.languages,
    };
    let sinks = config
        .sinks
        .iter()
        .map(|entry| entry.build(&ctx).map_err(PipelineError::from))
        .collect::<Result<_, _>>()?;
    Ok(Destinations {
        sinks,
        transactions,
    })
}

/// Properties of every producer: the client ones (secrets filled in), then
/// the producer-only ones.
fn producer_properties(config: &Config) -> Result<BTreeMap<String, String>, PipelineError> {
    let mut props = config
        .kafka
        .client_properties()
        .map_err(PipelineError::Invalid)?;
    props.extend(config.kafka.producer_properties.clone());
    Ok(props)
}
