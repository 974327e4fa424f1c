//! The reading message contract and its decoder.
//!
//! One Kafka message carries one reading, a gateway's multi-metric reading,
//! or a JSON array of either:
//!
//! ```json
//! {"sensor_id":"cq-yz-aq-0001","ts":"2026-07-14T08:00:00+08:00","metric":"pm25","value":81.5,"unit":"ug/m3"}
//! {"sensor_id":"cq-yz-aq-0001","ts":1784077200000,"values":{"pm25":81.5,"pm10":120}}
//! ```
//!
//! `ts` is RFC 3339 with an offset, or epoch milliseconds. Unknown fields are
//! ignored so gateways may add their own.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Visitor};

use crate::error::DecodeError;

/// One measured value of one metric, at its event time.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub sensor_id: String,
    /// Event time, epoch milliseconds.
    pub ts_ms: i64,
    pub metric: String,
    pub value: f64,
}

/// Strings borrow from the payload where JSON allows (no escapes).
#[derive(Deserialize)]
struct RawReading<'a> {
    #[serde(borrow)]
    sensor_id: Cow<'a, str>,
    ts: RawTs,
    #[serde(borrow)]
    metric: Option<Cow<'a, str>>,
    value: Option<f64>,
    #[serde(borrow)]
    values: Option<BTreeMap<Cow<'a, str>, f64>>,
}

enum RawTs {
    Millis(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawTs {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TsVisitor;
        impl Visitor<'_> for TsVisitor {
            type Value = RawTs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp string or epoch milliseconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawTs, E> {
                Ok(RawTs::Millis(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawTs, E> {
                i64::try_from(v)
                    .map(RawTs::Millis)
                    .map_err(|_| E::custom("epoch milliseconds out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawTs, E> {
                Ok(RawTs::Text(v.to_owned()))
            }
        }
        d.deserialize_any(TsVisitor)
    }
}

/// Epoch-millisecond timestamps must fall in this range (1970..2200); a
/// value outside it is almost surely seconds or microseconds sent by mistake.
const MIN_TS_MS: i64 = 0;
const MAX_TS_MS: i64 = 7_258_118_400_000;

/// Decode one Kafka message payload into readings.
///
/// A message is all-or-nothing: if any reading in an array is invalid the
/// whole message is refused, so the dead-letter copy is the exact original.
pub fn decode_readings(payload: &[u8]) -> Result<Vec<Reading>, DecodeError> {
    if let Err(e) = std::str::from_utf8(payload) {
        return Err(DecodeError::InvalidUtf8(e.valid_up_to()));
    }
    let malformed = |e: serde_json::Error| DecodeError::Malformed(e.to_string());
    let is_array = payload
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'[');
    let raws = if is_array {
        let many: Vec<RawReading<'_>> = serde_json::from_slice(payload).map_err(malformed)?;
        if many.is_empty() {
            return Err(DecodeError::EmptyBatch);
        }
        many
    } else {
        vec![serde_json::from_slice::<RawReading<'_>>(payload).map_err(malformed)?]
    };
    let mut out = Vec::with_capacity(raws.len());
    for raw in raws {
        expand(raw, &mut out)?;
    }
    Ok(out)
}

fn expand(raw: RawReading<'_>, out: &mut Vec<Reading>) -> Result<(), DecodeError> {
    // Found by the fuzzer: an empty id was decoded, and refused later only
    // as an "unknown sensor".
    if raw.sensor_id.trim().is_empty() {
        return Err(DecodeError::Malformed("`sensor_id` is empty".into()));
    }
    let ts_ms = parse_ts(&raw.sensor_id, raw.ts)?;
    match (raw.metric, raw.value, raw.values) {
        (Some(metric), Some(value), None) => {
            push(out, &raw.sensor_id, ts_ms, metric, value)?;
        }
        (None, None, Some(values)) if !values.is_empty() => {
            for (metric, value) in values {
                push(out, &raw.sensor_id, ts_ms, metric, value)?;
            }
        }
        (None, None, _) | (Some(_), None, None) | (None, Some(_), None) => {
            return Err(DecodeError::NoValue {
                sensor_id: raw.sensor_id.into_owned(),
            });
        }
        _ => {
            return Err(DecodeError::AmbiguousForm {
                sensor_id: raw.sensor_id.into_owned(),
            });
        }
    }
    Ok(())
}

fn push(
    out: &mut Vec<Reading>,
    sensor_id: &str,
    ts_ms: i64,
    metric: Cow<'_, str>,
    value: f64,
) -> Result<(), DecodeError> {
    if metric.trim().is_empty() {
        return Err(DecodeError::Malformed(format!(
            "reading from {sensor_id} has an empty metric name"
        )));
    }
    if !value.is_finite() {
        return Err(DecodeError::NonFinite {
            sensor_id: sensor_id.to_owned(),
            metric: metric.into_owned(),
        });
    }
    out.push(Reading {
        sensor_id: sensor_id.to_owned(),
        ts_ms,
        metric: metric.into_owned(),
        value,
    });
    Ok(())
}

fn parse_ts(sensor_id: &str, ts: RawTs) -> Result<i64, DecodeError> {
    let bad = |ts: String, why: &str| DecodeError::BadTimestamp {
        sensor_id: sensor_id.to_owned(),
        ts,
        why: why.to_owned(),
    };
    match ts {
        RawTs::Millis(ms) if (MIN_TS_MS..=MAX_TS_MS).contains(&ms) => Ok(ms),
        RawTs::Millis(ms) => Err(bad(
            ms.to_string(),
            "epoch milliseconds must be between 1970 and 2200",
        )),
        RawTs::Text(text) => match chrono::DateTime::parse_from_rfc3339(&text) {
            Ok(t) => Ok(t.timestamp_millis()),
            Err(e) => Err(bad(
                text,
                &format!("{e} (expected RFC 3339 with an offset, e.g. 2026-07-14T08:00:00+08:00)"),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_784_077_200_000; // 2026-07-15T09:00:00+08:00

    #[test]
    fn single_metric_with_rfc3339() {
        let r = decode_readings(
            br#"{"sensor_id":"cq-yz-aq-0001","ts":"2026-07-14T08:00:00+08:00","metric":"pm25","value":81.5,"unit":"ug/m3"}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            vec![Reading {
                sensor_id: "cq-yz-aq-0001".into(),
                ts_ms: 1_783_987_200_000,
                metric: "pm25".into(),
                value: 81.5
            }]
        );
    }

    #[test]
    fn multi_metric_with_epoch_millis() {
        let r = decode_readings(
            br#"{"sensor_id":"gw-1","ts":1784077200000,"values":{"pm25":81.5,"pm10":120}}"#,
        )
        .unwrap();
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|r| r.ts_ms == T0 && r.sensor_id == "gw-1"));
        let pm10 = r.iter().find(|r| r.metric == "pm10").unwrap();
        assert_eq!(pm10.value, 120.0);
    }

    #[test]
    fn array_of_both_forms() {
        let r = decode_readings(
            br#"[{"sensor_id":"a","ts":1784077200000,"metric":"noise_db","value":60},
                 {"sensor_id":"b","ts":"2026-07-15T01:00:00Z","values":{"level_m":1.5}}]"#,
        )
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].ts_ms, T0);
        assert_eq!(r[1].metric, "level_m");
    }

    #[test]
    fn utc_and_offset_agree() {
        let a = decode_readings(
            br#"{"sensor_id":"a","ts":"2026-07-15T09:00:00+08:00","metric":"m","value":1}"#,
        )
        .unwrap();
        let b = decode_readings(
            br#"{"sensor_id":"a","ts":"2026-07-15T01:00:00Z","metric":"m","value":1}"#,
        )
        .unwrap();
        assert_eq!(a[0].ts_ms, b[0].ts_ms);
    }

    fn err(payload: &[u8]) -> DecodeError {
        decode_readings(payload).unwrap_err()
    }

    #[test]
    fn bad_inputs_have_clear_reasons() {
        assert_eq!(err(b"not json").reason(), "malformed");
        assert_eq!(err(b"\xff\xfe").reason(), "invalid_utf8");
        assert_eq!(err(b"[]").reason(), "empty_batch");
        let missing = err(br#"{"ts":1784077200000,"metric":"pm25","value":1}"#);
        assert_eq!(missing.reason(), "malformed");
        assert!(missing.to_string().contains("sensor_id"), "{missing}");
        let wrong_type =
            err(br#"{"sensor_id":"a","ts":1784077200000,"metric":"pm25","value":"high"}"#);
        assert_eq!(wrong_type.reason(), "malformed");
        assert!(
            wrong_type.to_string().contains("invalid type"),
            "{wrong_type}"
        );
        assert_eq!(
            err(br#"{"sensor_id":"a","ts":1784077200000}"#).reason(),
            "no_value"
        );
        assert_eq!(
            err(br#"{"sensor_id":"a","ts":1784077200000,"metric":"pm25"}"#).reason(),
            "no_value"
        );
        assert_eq!(
            err(br#"{"sensor_id":"a","ts":1784077200000,"metric":"pm25","value":1,"values":{"x":1}}"#).reason(),
            "ambiguous_form"
        );
    }

    #[test]
    fn bad_timestamps_explain_the_expected_format() {
        let no_offset =
            err(br#"{"sensor_id":"a","ts":"2026-07-14T08:00:00","metric":"pm25","value":1}"#);
        assert_eq!(no_offset.reason(), "bad_timestamp");
        assert!(no_offset.to_string().contains("RFC 3339"), "{no_offset}");
        let micros = err(br#"{"sensor_id":"a","ts":1784077200000000,"metric":"pm25","value":1}"#);
        assert_eq!(micros.reason(), "bad_timestamp");
        let negative = err(br#"{"sensor_id":"a","ts":-5,"metric":"pm25","value":1}"#);
        assert_eq!(negative.reason(), "bad_timestamp");
        let float = err(br#"{"sensor_id":"a","ts":1.5,"metric":"pm25","value":1}"#);
        assert_eq!(float.reason(), "malformed");
    }

    #[test]
    fn one_bad_reading_refuses_the_whole_message() {
        let e = err(br#"[{"sensor_id":"a","ts":1784077200000,"metric":"m","value":1},{"sensor_id":"b","ts":"yesterday","metric":"m","value":1}]"#);
        assert_eq!(e.reason(), "bad_timestamp");
    }

    /// Inputs the fuzzer found (and seeds) in tests/fuzz/regressions:
    /// decoded or refused, never a panic, never a non-finite value.
    #[test]
    fn fuzz_regressions() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fuzz/regressions/decode_readings");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            if let Ok(readings) = decode_readings(&bytes) {
                assert!(readings.iter().all(|r| r.value.is_finite()));
                assert!(readings.iter().all(|r| !r.sensor_id.is_empty()));
                assert!(readings.iter().all(|r| !r.metric.is_empty()));
            }
            n += 1;
        }
        assert!(n >= 6, "{n} inputs in {}", dir.display());
    }
}
