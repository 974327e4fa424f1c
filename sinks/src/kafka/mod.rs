//! The alert topic producer.
//!
//! Key = the warning's fingerprint, so a compacted topic keeps the latest
//! state of every warning; headers carry grade, level, rule, transition and
//! district so subscribers can route without parsing the body. Delivery
//! waits for the broker's acknowledgement (`acks=all`, idempotent producer)
//! before the pipeline commits the readings behind the warnings.

pub mod config;
pub use config::{CapConfig, KafkaSinkConfig, SinkFormat};

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::alert::AlertMessage;
use crate::cap::{CapSender, cap_xml};
use crate::error::SinkError;
use crate::route::topic_for;

pub struct KafkaAlertSink {
    producer: FutureProducer,
    topic: String,
    format: AlertFormat,
}

/// How alerts are written on the topic.
#[derive(Debug, Clone, Default)]
pub enum AlertFormat {
    /// `yujing.alert/v1` JSON (`docs/alert.schema.json`).
    #[default]
    Json,
    /// CAP 1.2 XML, issued by this sender.
    Cap(CapSender),
}

impl KafkaAlertSink {
    /// A producer for `topic`; `properties` pass through to librdkafka.
    pub fn new(
        bootstrap_servers: &str,
        topic: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Self, SinkError> {
        let defaults = [
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("linger.ms", "5"),
            ("message.timeout.ms", "30000"),
        ];
        let cfg =
            yujing_ingest::kafka::client_config(bootstrap_servers, &defaults, properties, &[]);
        let producer = cfg.create().map_err(|source| SinkError::Kafka {
            topic: topic.to_owned(),
            source,
        })?;
        Ok(KafkaAlertSink {
            producer,
            topic: topic.to_owned(),
            format: AlertFormat::Json,
        })
    }

    /// A sink writing with a producer made elsewhere: in exactly-once mode
    /// every Kafka sink shares the pipeline's transactional producer.
    pub fn with_producer(producer: FutureProducer, topic: &str) -> Self {
        KafkaAlertSink {
            producer,
            topic: topic.to_owned(),
            format: AlertFormat::Json,
        }
    }

    /// Write alerts in `format` instead of JSON.
    pub fn with_format(mut self, format: AlertFormat) -> Self {
        self.format = format;
        self
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Send all alerts, then wait for every acknowledgement. Ordering per
    /// fingerprint is kept: same key → same partition, and the idempotent
    /// producer keeps order across retries.
    pub async fn deliver(&self, alerts: &[AlertMessage]) -> Result<(), SinkError> {
        let mut pending = Vec::with_capacity(alerts.len());
        for alert in alerts.iter() {
            let topic = topic_for(&self.topic, alert);
            let (body, content_type) = match &self.format {
                AlertFormat::Json => (serde_json::to_vec(alert)?, "application/json"),
                AlertFormat::Cap(from) => {
                    (cap_xml(alert, from).into_bytes(), "application/cap+xml")
                }
            };
            let headers = OwnedHeaders::new()
                .insert(header("grade", alert.grade.as_deref()))
                .insert(header("level", alert.level.as_deref()))
                .insert(header("rule", Some(&alert.rule.id)))
                .insert(header("transition", Some(&alert.transition)))
                .insert(header("district", alert.group.district_code.as_deref()))
                .insert(header("schema", Some(&alert.schema)))
                .insert(header("content-type", Some(content_type)));
            let record = FutureRecord::to(&topic)
                .key(&alert.fingerprint)
                .payload(&body)
                .headers(headers);
            let fut =
                self.producer
                    .send_result(record)
                    .map_err(|(source, _)| SinkError::Kafka {
                        topic: self.topic.clone(),
                        source,
                    })?;
            pending.push(fut);
        }
        for fut in pending {
            match fut.await {
                Ok(Ok(_)) => {}
                Ok(Err((source, _))) => {
                    return Err(SinkError::Kafka {
                        topic: self.topic.clone(),
                        source,
                    });
                }
                Err(_cancelled) => {
                    return Err(SinkError::Kafka {
                        topic: self.topic.clone(),
                        source: rdkafka::error::KafkaError::Canceled,
                    });
                }
            }
        }
        Ok(())
    }

    /// With `format: cap`, queue the CAP `Update` for a change of the
    /// warning's response (keyed like the warning's messages); the JSON
    /// format has the response topic for that, and sends nothing here.
    /// Returns the delivery to wait for.
    pub fn send_response(
        &self,
        alert: &AlertMessage,
        note: &crate::cap::ResponseNote<'_>,
    ) -> Result<Option<rdkafka::producer::DeliveryFuture>, SinkError> {
        let AlertFormat::Cap(from) = &self.format else {
            return Ok(None);
        };
        let topic = topic_for(&self.topic, alert);
        let body = crate::cap::response_update_xml(alert, note, from);
        let headers = OwnedHeaders::new()
            .insert(header("rule", Some(&alert.rule.id)))
            .insert(header("transition", Some("response")))
            .insert(header("district", alert.group.district_code.as_deref()))
            .insert(header("content-type", Some("application/cap+xml")));
        let record = FutureRecord::to(&topic)
            .key(&alert.fingerprint)
            .payload(&body)
            .headers(headers);
        self.producer
            .send_result(record)
            .map(Some)
            .map_err(|(source, _)| SinkError::Kafka {
                topic: self.topic.clone(),
                source,
            })
    }

    pub fn flush(&self) -> Result<(), SinkError> {
        self.producer
            .flush(Duration::from_secs(10))
            .map_err(|source| SinkError::Kafka {
                topic: self.topic.clone(),
                source,
            })
    }
}

fn header<'a>(key: &'a str, value: Option<&'a str>) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value.unwrap_or("")),
    }
}
