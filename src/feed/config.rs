//! `feed:` in the config: what the public CAP feed publishes.
//!
//! ```yaml
//! feed:
//!   categories: [env, met]     # never `data`: sensor faults are not public
//!   min_grade: yellow
//!   title: { zh-CN: 重庆市生态环境预警, en: Chongqing environmental warnings }
//!   cap: { sender: yujing@eeb.cq.example, sender_name: 重庆市生态环境局, issuer_code: "12345600" }
//! ```

use std::time::Duration;

use serde::Deserialize;
use yujing_rules::Grade;
use yujing_sinks::cap::CapSender;
use yujing_sinks::kafka::config::LocalText;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// Rule categories published (`env`, `met`, `infra`); `data` (sensor
    /// faults) is refused. Default `[env, met, infra]`.
    #[serde(default = "default_categories")]
    pub categories: Vec<String>,
    /// The lowest grade published. Default `blue`.
    #[serde(default = "default_min_grade")]
    pub min_grade: Grade,
    /// The feed's title, one or per language. Default "yujing warnings".
    #[serde(default)]
    pub title: Option<LocalText>,
    /// Who issues the CAP documents.
    pub cap: FeedSender,
    /// How long a resolved warning's cancel stays listed. Default 1h.
    #[serde(
        default = "default_cancel_listed_for",
        deserialize_with = "crate::config::duration"
    )]
    pub cancel_listed_for: Duration,
}

/// The CAP sender of the feed's documents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSender {
    /// CAP `<sender>`, e.g. `yujing@eeb.cq.example`.
    pub sender: String,
    /// CAP `<senderName>`: one, or one per language.
    #[serde(default)]
    pub sender_name: Option<LocalText>,
    /// GB/T 35965.1 issuer code (8 digits). Default `00000000`.
    #[serde(default)]
    pub issuer_code: Option<String>,
}

fn default_categories() -> Vec<String> {
    ["env", "met", "infra"].map(String::from).to_vec()
}

fn default_min_grade() -> Grade {
    Grade::Blue
}

fn default_cancel_listed_for() -> Duration {
    Duration::from_secs(3600)
}

impl FeedConfig {
    pub fn validate(&self) -> Result<(), String> {
        for c in &self.categories {
            match c.as_str() {
                "env" | "met" | "infra" => {}
                "data" => {
                    return Err(
                        "feed.categories: `data` warnings (sensor faults) are never published"
                            .into(),
                    );
                }
                other => {
                    return Err(format!(
                        "feed.categories: unknown category {other:?} (env, met, infra)"
                    ));
                }
            }
        }
        if let Some(code) = &self.cap.issuer_code
            && (code.len() != 8 || !code.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!("feed.cap.issuer_code {code:?} must be 8 digits"));
        }
        Ok(())
    }

    /// The feed's title in `language`.
    pub fn title(&self, language: &str) -> String {
        self.title
            .as_ref()
            .map_or("yujing warnings", |t| t.get(language))
            .to_owned()
    }
}

impl FeedSender {
    /// The CAP sender, writing `languages`.
    pub fn sender(&self, languages: &[String]) -> CapSender {
        let mut from = CapSender {
            sender: self.sender.clone(),
            languages: languages.to_vec(),
            ..CapSender::default()
        };
        if let Some(n) = &self.sender_name {
            n.apply_to(&mut from);
        }
        if let Some(code) = &self.issuer_code {
            from.issuer_code = code.clone();
        }
        from
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<FeedConfig, String> {
        let c: FeedConfig = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        c.validate().map(|()| c)
    }

    #[test]
    fn sensor_faults_are_never_published() {
        let e = parse("categories: [env, data]\ncap: {sender: a@b}\n").unwrap_err();
        assert!(e.contains("never published"), "{e}");
        let e = parse("categories: [weather]\ncap: {sender: a@b}\n").unwrap_err();
        assert!(e.contains("unknown category"), "{e}");
        let e = parse("cap: {sender: a@b, issuer_code: '12'}\n").unwrap_err();
        assert!(e.contains("8 digits"), "{e}");
        let c = parse("cap: {sender: a@b}\ntitle: {zh-CN: 预警, en: Warnings}\n").unwrap();
        assert_eq!(c.categories, ["env", "met", "infra"]);
        assert_eq!(c.min_grade, Grade::Blue);
        assert_eq!(c.title("en"), "Warnings");
        assert_eq!(c.title("zh-CN"), "预警");
    }
}
