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

/// A text people read: one for every language, or one per language
/// (`{zh-CN: 重庆市生态环境局, en: Chongqing EEB}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum LocalText {
    One(String),
    PerLanguage(std::collections::BTreeMap<String, String>),
}

impl LocalText {
    /// The text in `language`, else the English one, else the first.
    pub fn get(&self, language: &str) -> &str {
        match self {
            LocalText::One(t) => t,
            LocalText::PerLanguage(m) => m
                .get(language)
                .or_else(|| m.get("en"))
                .or_else(|| m.values().next())
                .map_or("", String::as_str),
        }
    }

    /// Set `from`'s `<senderName>` (its default, and one per language).
    pub fn apply_to(&self, from: &mut CapSender) {
        from.name = self.get("en").to_owned();
        if let LocalText::PerLanguage(names) = self {
            from.names = names.clone();
        }
    }
}

/// Who issues CAP alerts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapConfig {
    /// CAP `<sender>`, e.g. `yujing@eeb.cq.example`.
    pub sender: String,
    /// CAP `<senderName>`: one name, or one per language
    /// (`{zh-CN: 重庆市生态环境局, en: Chongqing Ecology and Environment Bureau}`).
    #[serde(default)]
    pub sender_name: Option<LocalText>,
    /// Languages of the `<info>` blocks, in order (default: every language
    /// the deployment writes, `languages:` at the top of the config). A tag
    /// with a region (`en-US`) takes the texts of its language (`en`).
    #[serde(default)]
    pub languages: Option<Vec<String>>,
    /// Before bilingual texts: one language. The same as `languages: [it]`.
    #[serde(default)]
    pub language: Option<String>,
    /// How long a warning in force stays valid (`<expires>`) after its
    /// message when no later one updates or cancels it. Default 24h.
    #[serde(default, deserialize_with = "crate::config::optional_duration")]
    pub valid_for: Option<std::time::Duration>,
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

    /// The message format, with the CAP sender filled in from `cap`;
    /// CAP texts in `languages` (the deployment's) unless `cap` names its own.
    pub fn format(&self, languages: &[String]) -> AlertFormat {
        match self.format {
            SinkFormat::Json => AlertFormat::Json,
            SinkFormat::Cap => {
                let mut from = CapSender {
                    languages: languages.to_vec(),
                    ..CapSender::default()
                };
                if let Some(c) = &self.cap {
                    from.sender = c.sender.clone();
                    if let Some(n) = &c.sender_name {
                        n.apply_to(&mut from);
                    }
                    if let Some(l) = &c.languages {
                        from.languages = l.clone();
                    } else if let Some(l) = &c.language {
                        from.languages = vec![l.clone()];
                    }
                    if let Some(v) = c.valid_for {
                        from.valid_for_s = v.as_secs() as i64;
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
        Ok(sink.with_format(self.format(ctx.languages)))
    }
}
