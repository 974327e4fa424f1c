//! Webhooks: one HTTP POST per alert, for duty officers' tools.
//!
//! - The body is the alert message (`yujing.alert/v1` JSON).
//! - `X-Yujing-Signature-256: sha256=<hex>` is the HMAC-SHA256 of the body
//!   with the shared secret, so the receiver can check who sent it.
//! - `Idempotency-Key: <warning_id>/<sequence>`: a retried POST carries the
//!   same key; a receiver drops repeats with it.
//! - Transient failures (timeouts, connection errors, 5xx, 429) are retried
//!   with exponential backoff and full jitter; other 4xx answers are the
//!   receiver refusing the message and are not retried.
//! - With grouping, one POST carries the alerts of one group (e.g. one
//!   district) that arrived within the group wait, as
//!   `{"schema": "yujing.alert-group/v1", "group": {...}, "alerts": [...]}`.
//! - HTTPS uses rustls with the Mozilla root certificates.

pub mod config;
pub use config::{GroupConfig, WebhookConfig};

use std::collections::BTreeMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use crate::alert::AlertMessage;
use crate::error::SinkError;

/// How a webhook is reached.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: String,
    /// HMAC-SHA256 key; without it no signature header is sent.
    pub secret: Option<Vec<u8>>,
    /// Per request, connection included.
    pub timeout: Duration,
    /// Attempts per alert, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubled each time, capped.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Extra headers (e.g. an API key the receiver wants).
    pub headers: Vec<(String, String)>,
    /// Certificates (PEM) trusted besides the Mozilla roots: a city's own
    /// certificate authority.
    pub extra_roots_pem: Option<Vec<u8>>,
}

pub struct WebhookSink {
    settings: WebhookSettings,
    client: reqwest::Client,
}

/// The signature header's value for `body`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The wait before attempt `attempt + 1` (attempt counts from 1): full
/// jitter over an exponentially growing, capped ceiling.
pub fn backoff(settings: &WebhookSettings, attempt: u32, rng: &mut impl Rng) -> Duration {
    let ceiling = settings
        .backoff
        .saturating_mul(1u32 << (attempt - 1).min(16))
        .min(settings.max_backoff);
    ceiling.mul_f64(rng.random_range(0.0..=1.0))
}

impl WebhookSink {
    pub fn new(settings: WebhookSettings) -> Result<Self, SinkError> {
        let error = |message: String| SinkError::Webhook {
            url: settings.url.clone(),
            message,
        };
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .user_agent(concat!("yujing/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &settings.extra_roots_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| error(format!("ca_file: {e}")))?;
            if certs.is_empty() {
                return Err(error("ca_file holds no PEM certificate".into()));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder.build().map_err(|e| error(e.to_string()))?;
        Ok(WebhookSink { settings, client })
    }

    /// The URL without its query, for metric labels and logs: a receiver
    /// may take its API key in the query string.
    pub fn url(&self) -> &str {
        self.settings
            .url
            .split_once('?')
            .map_or(&self.settings.url, |(base, _)| base)
    }

    /// POST each routed alert in order; returns when each was accepted
    /// (2xx) or refused (4xx other than 429: `SinkError::Rejected`, after
    /// the rest were still sent).
    pub async fn deliver(&self, alerts: &[AlertMessage]) -> Result<(), SinkError> {
        let mut rejected = None;
        for alert in alerts.iter() {
            if let Err(e) = self.post(alert).await {
                match e {
                    SinkError::Rejected { .. } => {
                        tracing::warn!(url = %self.url(), warning_id = %alert.warning_id, error = %e, "webhook refused an alert");
                        rejected.get_or_insert(e);
                    }
                    other => return Err(other),
                }
            }
        }
        rejected.map_or(Ok(()), Err)
    }

    async fn post(&self, alert: &AlertMessage) -> Result<(), SinkError> {
        let body = serde_json::to_vec(alert)?;
        let key = format!("{}/{}", alert.warning_id, alert.sequence);
        self.post_body(body, &key, alert.grade.as_deref()).await
    }

    async fn post_body(
        &self,
        body: Vec<u8>,
        key: &str,
        grade: Option<&str>,
    ) -> Result<(), SinkError> {
        let s = &self.settings;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .client
                .post(&s.url)
                .header("content-type", "application/json")
                .header("idempotency-key", key)
                .header("x-yujing-grade", grade.unwrap_or("none"))
                .body(body.clone());
            if let Some(secret) = &s.secret {
                request = request.header("x-yujing-signature-256", signature(secret, &body));
            }
            for (k, v) in &s.headers {
                request = request.header(k, v);
            }
            let transient = match request.send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                    format!("HTTP {}", r.status())
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    return Err(SinkError::Rejected {
                        url: self.url().to_owned(),
                        status,
                        body: text.chars().take(200).collect(),
                    });
                }
                // Without the URL: its query may hold an API key.
                Err(e) => e.without_url().to_string(),
            };
            if attempt >= s.max_attempts {
                return Err(SinkError::Webhook {
                    url: self.url().to_owned(),
                    message: format!("{transient} after {attempt} attempts"),
                });
            }
            let wait = backoff(s, attempt, &mut rand::rng());
            tracing::debug!(url = %self.url(), attempt, ?wait, error = %transient, "webhook retry");
            tokio::time::sleep(wait).await;
        }
    }
}

/// Version tag of grouped webhook bodies.
pub const GROUP_SCHEMA: &str = "yujing.alert-group/v1";

/// The group an alert belongs to: its value of each of `by` (`district`,
/// `district_code`, `rule`, `grade`, `category` or a label name).
pub fn group_of(alert: &AlertMessage, by: &[String]) -> BTreeMap<String, String> {
    by.iter()
        .map(|k| {
            let v = match k.as_str() {
                "district" => alert.group.district.clone(),
                "district_code" => alert.group.district_code.clone(),
                "rule" => Some(alert.rule.id.clone()),
                "grade" => alert.grade.clone().or(alert.previous_grade.clone()),
                "category" => Some(alert.rule.category.clone()),
                label => alert.labels.get(label).cloned(),
            };
            (k.clone(), v.unwrap_or_default())
        })
        .collect()
}

/// One grouped body.
#[derive(serde::Serialize)]
struct GroupBody<'a> {
    schema: &'static str,
    group: BTreeMap<String, String>,
    alerts: Vec<&'a AlertMessage>,
}

impl WebhookSink {
    /// POST the routed alerts as one body per group (in order of each
    /// group's first alert; alerts in arrival order within it).
    pub async fn deliver_grouped(
        &self,
        alerts: &[AlertMessage],
        by: &[String],
    ) -> Result<(), SinkError> {
        let mut groups: Vec<(BTreeMap<String, String>, Vec<&AlertMessage>)> = Vec::new();
        for alert in alerts.iter() {
            let key = group_of(alert, by);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(alert),
                None => groups.push((key, vec![alert])),
            }
        }
        for (group, members) in groups {
            let first = members[0];
            let idempotency = format!(
                "group/{}/{}+{}",
                first.warning_id,
                first.sequence,
                members.len()
            );
            let body = serde_json::to_vec(&GroupBody {
                schema: GROUP_SCHEMA,
                group,
                alerts: members,
            })?;
            self.post_body(body, &idempotency, first.grade.as_deref())
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_query_string_stays_out_of_labels_and_logs() {
        let sink = WebhookSink::new(WebhookSettings {
            url: "https://duty.example/hook?api_key=s3cret".into(),
            secret: None,
            timeout: Duration::from_secs(1),
            max_attempts: 1,
            backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
            headers: Vec::new(),
            extra_roots_pem: None,
        })
        .unwrap();
        assert_eq!(sink.url(), "https://duty.example/hook");
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let s = WebhookSettings {
            url: String::new(),
            secret: None,
            timeout: Duration::from_secs(1),
            max_attempts: 10,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            headers: Vec::new(),
            extra_roots_pem: None,
        };
        let mut rng = rand::rng();
        for attempt in 1..10 {
            let ceiling = Duration::from_millis((100u64 << (attempt - 1)).min(1000));
            let waits: Vec<Duration> = (0..50).map(|_| backoff(&s, attempt, &mut rng)).collect();
            assert!(waits.iter().all(|w| *w <= ceiling), "attempt {attempt}");
            assert!(waits.iter().any(|w| *w != waits[0]), "jittered");
        }
    }
}
