//! The dead-letter path: refused messages and late readings go to their
//! topic with the original bytes and headers saying why.
//!
//! A copy is never held forever:
//! - a **transient** failure (broker down, timeout, unknown topic) is
//!   retried with backoff (1 s doubling to 30 s) while the partition waits;
//!   `/health` and `yujing_dead_letter_held_since_timestamp_seconds` say
//!   which partition and since when;
//! - a **permanent** refusal (too large, invalid record, not authorised)
//!   sends the head of the payload instead, with headers saying it was cut
//!   (`yujing.truncated`), the original size and the SHA-256 of the whole;
//! - if even the head is refused, the message's coordinates and reason go
//!   to `state_dir/dead-letter-refused.jsonl` (and the log), counted and
//!   shown on `/health`, and the stream moves on.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use sha2::{Digest, Sha256};
use yujing_ingest::DecodeError;

use super::State;
use crate::fetch::Fetched;
use crate::telemetry::{
    BadMessage, DeadLetterHeld, DeadLetterRecordedLocally, DeadLetterReleased, DeadLetterTruncated,
};

/// Heads tried, longest first, when the whole message is refused for good.
const HEADS: [usize; 3] = [64 * 1024, 4 * 1024, 512];

/// Longest wait between attempts of a transient failure.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The local record of messages the dead-letter topic refused for good.
pub const REFUSED_FILE: &str = "dead-letter-refused.jsonl";

/// Why a message is dead-lettered: a fixed label (`yujing.reason`) and
/// the message (`yujing.error`).
pub(super) struct Why {
    pub label: &'static str,
    pub message: String,
}

impl From<&DecodeError> for Why {
    fn from(e: &DecodeError) -> Self {
        Why {
            label: e.reason(),
            message: e.to_string(),
        }
    }
}

/// One dead-letter copy to send: the message, why it was refused, where
/// to, and whether cut to its first bytes (with the digest of the whole).
#[derive(Clone, Copy)]
struct Copy<'a> {
    m: &'a Fetched,
    why: &'a Why,
    to: &'a str,
    cut: Option<(usize, &'a str)>,
}

/// Whether retrying the same record cannot succeed.
pub fn is_permanent(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::InvalidTopic
                | RDKafkaErrorCode::UnsupportedForMessageFormat
        )
    )
}

impl State {
    /// Send a refused message to the dead-letter topic and account for it.
    pub(super) async fn refuse(&mut self, m: &Fetched, error: DecodeError) {
        let (topic, partition, offset) = (&*m.topic, m.partition, m.offset);
        BadMessage {
            topic,
            partition,
            offset,
            error: &error,
        }
        .emit(&self.metrics);
        self.summary.bad_messages += 1;
        self.dead_letter(m, &Why::from(&error), &self.dead_letter_topic)
            .await;
        self.offsets.consumed(topic, partition, offset, None);
    }

    /// Copy the original message to `to` with the reason in headers: whole,
    /// or its head when the whole is refused for good, or recorded locally
    /// when even the head is. Returns once one of them is done; transient
    /// failures are retried until then.
    pub(super) async fn dead_letter(&self, m: &Fetched, why: &Why, to: &str) {
        let (topic, partition, offset) = (&*m.topic, m.partition, m.offset);
        let whole = Copy {
            m,
            why,
            to,
            cut: None,
        };
        let permanent = match self.send_held(whole).await {
            Ok(()) => return,
            Err(e) => e,
        };
        let digest = hex(&Sha256::digest(&m.payload));
        let mut last = permanent.to_string();
        for head in HEADS.into_iter().filter(|h| *h < m.payload.len()) {
            let cut = Some((head, digest.as_str()));
            match self.send_held(Copy { cut, ..whole }).await {
                Ok(()) => {
                    DeadLetterTruncated {
                        to,
                        topic,
                        partition,
                        offset,
                        original_bytes: m.payload.len(),
                        kept_bytes: head,
                    }
                    .emit(&self.metrics);
                    return;
                }
                Err(e) => last = e.to_string(),
            }
        }
        let record = self.record_refused(m, why, to, &digest, &last);
        DeadLetterRecordedLocally {
            to,
            topic,
            partition,
            offset,
            error: &last,
            record: record.as_deref().map_err(Clone::clone),
        }
        .emit(&self.metrics);
    }

    /// One copy (whole, or `cut` to its first bytes with the digest of the
    /// whole), retried while the failures are transient. Err: refused for
    /// good.
    async fn send_held(&self, copy: Copy<'_>) -> Result<(), KafkaError> {
        let m = copy.m;
        let (mut attempt, mut backoff) = (0u32, Duration::from_secs(1));
        let mut since: Option<(i64, String)> = None;
        loop {
            attempt += 1;
            match self.send_once(copy).await {
                Ok(()) => {
                    if since.is_some() {
                        DeadLetterReleased {
                            topic: &m.topic,
                            partition: m.partition,
                        }
                        .emit(&self.metrics);
                    }
                    return Ok(());
                }
                Err(e) if is_permanent(&e) => {
                    self.metrics.dead_letter_failures.inc();
                    return Err(e);
                }
                Err(e) => {
                    self.metrics.dead_letter_failures.inc();
                    let (since_ms, since_text) = since.get_or_insert_with(|| {
                        let now = yujing_ingest::clock::wall_now_ms();
                        (now, self.times.rfc3339(now))
                    });
                    DeadLetterHeld {
                        topic: &m.topic,
                        partition: m.partition,
                        offset: m.offset,
                        since: since_text,
                        since_seconds: *since_ms as f64 / 1000.0,
                        attempt,
                        error: &e.to_string(),
                    }
                    .emit(&self.metrics);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn send_once(&self, copy: Copy<'_>) -> Result<(), KafkaError> {
        let Copy { m, why, to, cut } = copy;
        let partition_s = m.partition.to_string();
        let offset_s = m.offset.to_string();
        let size_s = m.payload.len().to_string();
        let at = self.times.rfc3339(yujing_ingest::clock::wall_now_ms());
        let mut headers = vec![
            ("yujing.reason", why.label),
            ("yujing.error", why.message.as_str()),
            ("yujing.source.topic", &*m.topic),
            ("yujing.source.partition", partition_s.as_str()),
            ("yujing.source.offset", offset_s.as_str()),
            ("yujing.time", at.as_str()),
        ];
        let payload = match cut {
            None => &m.payload[..],
            Some((head, digest)) => {
                headers.push(("yujing.truncated", "true"));
                headers.push(("yujing.original.bytes", size_s.as_str()));
                headers.push(("yujing.original.sha256", digest));
                &m.payload[..head.min(m.payload.len())]
            }
        };
        let headers = headers
            .into_iter()
            .fold(OwnedHeaders::new(), |h, (key, value)| {
                h.insert(Header {
                    key,
                    value: Some(value),
                })
            });
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(to).headers(headers).payload(payload);
        if let Some(k) = &m.key {
            record = record.key(&k[..]);
        }
        self.dead_letter
            .send(record, Duration::from_secs(10))
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }

    /// Append the message's coordinates and reason to the local record.
    fn record_refused(
        &self,
        m: &Fetched,
        why: &Why,
        to: &str,
        digest: &str,
        refusal: &str,
    ) -> Result<std::path::PathBuf, String> {
        let dir = self
            .refused_dir
            .as_deref()
            .ok_or_else(|| "no state_dir configured".to_owned())?;
        let path = dir.join(REFUSED_FILE);
        let line = serde_json::json!({
            "topic": &*m.topic,
            "partition": m.partition,
            "offset": m.offset,
            "reason": why.label,
            "error": why.message,
            "dead_letter_topic": to,
            "refused_with": refusal,
            "bytes": m.payload.len(),
            "sha256": digest,
            "at": self.times.rfc3339(yujing_ingest::clock::wall_now_ms()),
        });
        append_line(dir, &path, &line.to_string())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }
}

fn append_line(dir: &Path, path: &Path, line: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{line}")?;
    f.sync_data()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
