//! Building the rdkafka clients yujing uses, from a few named settings plus
//! any librdkafka property passed through.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};

use crate::error::IngestError;

/// Base client configuration: bootstrap servers plus pass-through properties
/// (which win over yujing's defaults).
pub fn client_config(
    bootstrap_servers: &str,
    properties: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap_servers);
    for (k, v) in properties {
        cfg.set(k, v);
    }
    cfg
}

/// A consumer in `group_id`, subscribed to `topics`, that never commits on
/// its own: the pipeline commits offsets once warnings are delivered.
/// librdkafka statistics (consumer lag among them) are emitted every 5 s to
/// `context`.
pub fn readings_consumer<C: ConsumerContext + 'static>(
    bootstrap_servers: &str,
    group_id: &str,
    topics: &[String],
    properties: &BTreeMap<String, String>,
    context: C,
) -> Result<StreamConsumer<C>, IngestError> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap_servers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "5000");
    for (k, v) in properties {
        cfg.set(k, v);
    }
    let consumer: StreamConsumer<C> = cfg.create_with_context(context)?;
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    Ok(consumer)
}
