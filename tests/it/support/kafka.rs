//! Reading topics back and the group's committed offsets.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// One message read back from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

/// Read partition 0 of `topic` from the start until `n` messages arrived or
/// `timeout` passed.
pub fn read_topic(bootstrap: &str, topic: &str, n: usize, timeout: Duration) -> Vec<Record> {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", bootstrap);
    read_topic_with(client, topic, n, timeout)
}

/// The same through `client` (bootstrap servers and any security settings).
pub fn read_topic_with(
    mut client: ClientConfig,
    topic: &str,
    n: usize,
    timeout: Duration,
) -> Vec<Record> {
    let consumer: BaseConsumer = client
        .set("group.id", format!("test-reader-{topic}"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            let v = h
                                .value
                                .map(|v| String::from_utf8_lossy(v).into_owned())
                                .unwrap_or_default();
                            (h.key.to_owned(), v)
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Record {
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
    }
    out
}

/// Offset committed by `group` on partition 0 of `topic`.
pub fn committed_offset(bootstrap: &str, group: &str, topic: &str) -> Option<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .ok()?;
    match committed.find_partition(topic, 0)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}
