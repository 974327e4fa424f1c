//! The dead-letter path: refused messages and late readings go to their
//! topic with the original bytes and headers saying why; until the copy is
//! acknowledged, the message's offset is held back.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use yujing_ingest::DecodeError;

use super::State;
use crate::fetch::Fetched;
use crate::telemetry::{BadMessage, DeadLetterFailed};

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
        // Until the dead-letter copy is acknowledged the offset is held:
        // `i64::MAX` is a window end that never closes.
        let delivered = self.dead_letter(m, &error, &self.dead_letter_topic).await;
        self.offsets
            .consumed(topic, partition, offset, (!delivered).then_some(i64::MAX));
    }

    /// Copy the original message to the dead-letter topic with the reason
    /// in headers. Returns whether the broker acknowledged it.
    pub(super) async fn dead_letter(&self, m: &Fetched, error: &DecodeError, to: &str) -> bool {
        let (topic, partition, offset) = (&*m.topic, m.partition, m.offset);
        let partition_s = partition.to_string();
        let offset_s = offset.to_string();
        let detail = error.to_string();
        let at = self.times.rfc3339(yujing_ingest::clock::wall_now_ms());
        let headers = [
            ("yujing.reason", error.reason()),
            ("yujing.error", detail.as_str()),
            ("yujing.source.topic", topic),
            ("yujing.source.partition", partition_s.as_str()),
            ("yujing.source.offset", offset_s.as_str()),
            ("yujing.time", at.as_str()),
        ]
        .into_iter()
        .fold(OwnedHeaders::new(), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value),
            })
        });
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(to)
            .headers(headers)
            .payload(&m.payload[..]);
        if let Some(k) = &m.key {
            record = record.key(&k[..]);
        }
        let result = self.dead_letter.send(record, Duration::from_secs(10)).await;
        match result {
            Ok(_) => true,
            Err((e, _)) => {
                DeadLetterFailed {
                    topic,
                    partition,
                    offset,
                    error: &e.to_string(),
                }
                .emit(&self.metrics);
                false
            }
        }
    }
}
