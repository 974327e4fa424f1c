//! `kind: kafka`: alert messages on a Kafka topic.

use serde::Deserialize;

use super::{AlertFormat, KafkaAlertSink};
use crate::cap::CapSender;
use crate::config::BuildContext;
use crate::error::SinkError;
use crate::route::TOPIC_PLACEHOLDERS;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// May name `{grade}`, `{district_code}`, `{rule}` or `{category}`
    /// to route warnings to topics, e.g. `alerts.{grade}`.
    pub topic: String,
    /// `json` (`yujing.alert/v1`, default) or `cap` (CAP 1.2 XML, issued
    /// as `cap.sender`).
    #[serde(default)]
    pub format: SinkFormat,
    #[serde(default)]
    pub cap: Option<CapConfig>,
}

/// Body format of a Kafka sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkFormat {
    #[default]
    Json,
    Cap,
}

/// Who issues CAP alerts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapConfig {
    /// CAP `<sender>`, e.g. `yujing@eeb.cq.example`.
    pub sender: String,
    /// CAP `<senderName>`.
    #[serde(default)]
    pub sender_name: Option<String>,
    /// `<language>` of the texts (default `en-US`).
    #[serde(default)]
    pub language: Option<String>,
    /// GB/T 35965.1 issuer code in identifiers, after the division code:
    /// 3-digit industry, 3-digit unit, 2-digit extension (default
    /// `00000000`).
    #[serde(default)]
    pub issuer_code: Option<String>,
}

impl KafkaSinkConfig {
    pub fn validate(&self) -> Result<(), String> {
        let topic = &self.topic;
        let rest = TOPIC_PLACEHOLDERS
            .iter()
            .fold(topic.clone(), |t, p| t.replace(p, ""));
        if rest.contains('{') || rest.contains('}') {
            return Err(format!(
                "sink topic {topic:?}: placeholders are {}",
                TOPIC_PLACEHOLDERS.join(", ")
            ));
        }
        if let Some(code) = self.cap.as_ref().and_then(|c| c.issuer_code.as_ref())
            && (code.len() != 8 || !code.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!(
                "sink topic {topic:?}: cap.issuer_code {code:?} must be 8 digits (industry, unit, extension)"
            ));
        }
        if self.format == SinkFormat::Cap && self.cap.is_none() {
            return Err(format!(
                "sink topic {topic:?}: `format: cap` needs `cap: {{sender: …}}`"
            ));
        }
        Ok(())
    }

    /// The message format, with the CAP sender filled in from `cap`.
    pub fn format(&self) -> AlertFormat {
        match self.format {
            SinkFormat::Json => AlertFormat::Json,
            SinkFormat::Cap => {
                let mut from = CapSender::default();
                if let Some(c) = &self.cap {
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
        }
    }

    pub fn build(&self, ctx: &BuildContext<'_>) -> Result<KafkaAlertSink, SinkError> {
        let sink = match ctx.transactions {
            Some(p) => KafkaAlertSink::with_producer(p.clone(), &self.topic),
            None => {
                KafkaAlertSink::new(ctx.bootstrap_servers, &self.topic, ctx.producer_properties)?
            }
        };
        Ok(sink.with_format(self.format()))
    }
}
