//! Topics that must exist: found, created when asked, or named with how to
//! create them (a broker that does not create topics answers a missing one
//! with `UnknownTopicOrPartition`, which names nothing).

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::pipeline::PipelineError;

/// How long a metadata request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Which of `topics` the cluster behind `client` does not have.
pub async fn missing(
    client: &ClientConfig,
    topics: &[String],
) -> Result<Vec<String>, PipelineError> {
    let mut client = client.clone();
    // A metadata request must not create what it asks about.
    client.set("allow.auto.create.topics", "false");
    let topics = topics.to_vec();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client.create()?;
        let metadata = consumer.fetch_metadata(None, METADATA_TIMEOUT)?;
        Ok(topics
            .into_iter()
            .filter(|t| {
                !metadata
                    .topics()
                    .iter()
                    .any(|m| m.name() == t && m.error().is_none() && !m.partitions().is_empty())
            })
            .collect())
    })
    .await
    .map_err(|e| PipelineError::Invalid(format!("topic check: {e}")))?
}

/// What to tell an operator about a missing topic.
pub fn how_to_create(topic: &str, bootstrap: &str, partitions: i32) -> String {
    format!(
        "topic {topic:?} does not exist on {bootstrap}: create it, e.g. `kafka-topics.sh --bootstrap-server {bootstrap} --create --topic {topic} --partitions {partitions}`"
    )
}

/// Make sure `topic` exists: create it with `partitions` when `create`,
/// else refuse with how to create it.
pub async fn ensure(
    client: &ClientConfig,
    topic: &str,
    create: bool,
    partitions: i32,
) -> Result<(), PipelineError> {
    if missing(client, &[topic.to_owned()]).await?.is_empty() {
        return Ok(());
    }
    let bootstrap = client.get("bootstrap.servers").unwrap_or("?").to_owned();
    if !create {
        return Err(PipelineError::MissingTopic(format!(
            "{}, or pass --create-topics",
            how_to_create(topic, &bootstrap, partitions)
        )));
    }
    let admin: AdminClient<DefaultClientContext> = client.create()?;
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT)),
        )
        .await?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(topic, partitions, "created the topic"),
            Err((name, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::info!(topic = %name, "the topic exists already");
            }
            Err((name, code)) => {
                return Err(PipelineError::MissingTopic(format!(
                    "cannot create topic {name:?} on {bootstrap}: {code}"
                )));
            }
        }
    }
    Ok(())
}

/// How often missing topics are looked for again.
const RECHECK_EVERY: Duration = Duration::from_secs(30);

/// `/health`'s component for the topics `yujing run` reads and writes.
pub const HEALTH_COMPONENT: &str = "kafka-topics";

/// Look for `topics` now and every 30 s while any is missing: each missing
/// topic is named in the log and on `/health`, with how to create it,
/// until it exists. The pipeline meanwhile waits for it as the consumer
/// does; the task ends once all exist.
pub fn watch(
    client: ClientConfig,
    topics: Vec<String>,
    health: crate::telemetry::Health,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let bootstrap = client.get("bootstrap.servers").unwrap_or("?").to_owned();
        loop {
            match missing(&client, &topics).await {
                Ok(gone) if gone.is_empty() => {
                    health.update(HEALTH_COMPONENT, |h| {
                        h.up = true;
                        h.last_error = None;
                    });
                    return;
                }
                Ok(gone) => {
                    let message = gone
                        .iter()
                        .map(|t| how_to_create(t, &bootstrap, 1))
                        .collect::<Vec<_>>()
                        .join("; ");
                    tracing::error!("{message}; waiting for it");
                    health.update(HEALTH_COMPONENT, |h| {
                        h.up = false;
                        h.last_error = Some(message);
                    });
                }
                // Brokers unreachable: the consumer reports that.
                Err(e) => tracing::debug!("topic check: {e}"),
            }
            tokio::time::sleep(RECHECK_EVERY).await;
        }
    })
}

/// Read `partitions` of `topic` from their start to their end as of now,
/// handing each message to `each`, until `deadline`. Returns whether every
/// partition's end was reached.
pub fn read_to_end(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: impl IntoIterator<Item = i32>,
    deadline: std::time::Instant,
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> Result<bool, rdkafka::error::KafkaError> {
    use rdkafka::Message;
    let mut tpl = rdkafka::TopicPartitionList::new();
    let mut ends = std::collections::HashMap::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, METADATA_TIMEOUT)?;
        if high > low {
            tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)?;
            ends.insert(p, high);
        }
    }
    if ends.is_empty() {
        return Ok(true);
    }
    consumer.assign(&tpl)?;
    while !ends.is_empty() && std::time::Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m?;
        if ends
            .get(&m.partition())
            .is_some_and(|end| m.offset() + 1 >= *end)
        {
            ends.remove(&m.partition());
        }
        each(&m);
    }
    Ok(ends.is_empty())
}
