//! Building the rdkafka clients yujing uses, from a few named settings plus
//! any librdkafka property passed through.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use crate::error::IngestError;

/// Client configuration in three layers: yujing's `defaults`, then the
/// user's pass-through `properties` (which win over the defaults), then the
/// `fixed` settings yujing's delivery guarantees depend on (which win over
/// everything, e.g. manual offset commits).
pub fn client_config(
    bootstrap_servers: &str,
    defaults: &[(&str, &str)],
    properties: &BTreeMap<String, String>,
    fixed: &[(&str, &str)],
) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap_servers);
    for (k, v) in defaults {
        cfg.set(*k, *v);
    }
    for (k, v) in properties {
        cfg.set(k, v);
    }
    for (k, v) in fixed {
        cfg.set(*k, *v);
    }
    cfg
}

/// The readings consumer's defaults; a config's `consumer_properties`
/// override them.
pub const READINGS_CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("auto.offset.reset", "earliest"),
    ("enable.partition.eof", "false"),
    ("statistics.interval.ms", "5000"),
    // When a partition's prefetch queue is full, librdkafka pauses its
    // fetching for this long (default 1 s). Catching up on a backlog, that
    // pause left the consumer idle most of the time: `yujing bench` read
    // 145 000 readings/s with the default and over 500 000/s with 10 ms,
    // at the same memory.
    ("fetch.queue.backoff.ms", "10"),
];

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
) -> Result<BaseConsumer<C>, IngestError> {
    // Offsets are committed by the pipeline once warnings are delivered.
    let fixed = [
        ("group.id", group_id),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
    ];
    let cfg = client_config(
        bootstrap_servers,
        READINGS_CONSUMER_DEFAULTS,
        properties,
        &fixed,
    );
    let consumer: BaseConsumer<C> = cfg.create_with_context(context)?;
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    Ok(consumer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_properties_win_over_defaults_but_not_over_fixed_settings() {
        let props = BTreeMap::from([
            ("acks".to_owned(), "1".to_owned()),
            ("enable.auto.commit".to_owned(), "true".to_owned()),
        ]);
        let cfg = client_config(
            "b:9092",
            &[("acks", "all"), ("linger.ms", "5")],
            &props,
            &[("enable.auto.commit", "false")],
        );
        assert_eq!(cfg.get("bootstrap.servers"), Some("b:9092"));
        assert_eq!(cfg.get("acks"), Some("1"));
        assert_eq!(cfg.get("linger.ms"), Some("5"));
        assert_eq!(cfg.get("enable.auto.commit"), Some("false"));
    }
}
