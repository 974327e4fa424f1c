//! What a metric can physically do, from the measurements file: its range,
//! its logger's "no measurement" codes, and how fast it can change. A
//! reading against them is refused (dead-lettered with the reason) rather
//! than averaged into a window.

use std::collections::HashMap;

use yujing_ingest::{DecodeError, Measurements, MetricCatalog, Reading};

/// One metric's limits.
#[derive(Debug, Clone, Default)]
pub(crate) struct MetricLimits {
    range: Option<(f64, f64)>,
    error_codes: Vec<f64>,
    max_change_per_minute: Option<f64>,
}

/// Per metric id.
pub(crate) fn by_metric(
    catalog: &MetricCatalog,
    measurements: Option<&Measurements>,
) -> Vec<MetricLimits> {
    (0..catalog.len())
        .map(|i| {
            let name = catalog.names().value(i);
            measurements.map_or_else(MetricLimits::default, |m| MetricLimits {
                range: m.range(name),
                error_codes: m.error_codes(name).to_vec(),
                max_change_per_minute: m.max_change_per_minute(name),
            })
        })
        .collect()
}

/// A sensor's last accepted value of a rate-limited metric, and a refused
/// one that a later reading may confirm as a new level.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LastValue {
    ts_ms: i64,
    value: f64,
    refused: Option<(i64, f64)>,
}

/// The last values of rate-limited metrics, per (sensor, metric id).
#[derive(Debug, Default)]
pub(crate) struct LastValues(HashMap<(u32, u16), LastValue>);

/// What checking one reading changes in [`LastValues`], applied only when
/// the whole message is accepted.
pub(crate) type Update = ((u32, u16), LastValue);

fn per_minute(from: (i64, f64), to: (i64, f64)) -> f64 {
    (to.1 - from.1).abs() / ((to.0 - from.0) as f64 / 60_000.0)
}

impl MetricLimits {
    /// Refuse `r` (of metric `m`, sensor `sensor`) if it breaks a limit.
    /// `Ok(Some(update))` for a rate-limited metric: the sensor's new last
    /// value (also when refused as a spike: the refused value is kept to
    /// tell a spike from a step that holds).
    pub(crate) fn check(
        &self,
        r: &Reading,
        key: (u32, u16),
        last: &LastValues,
    ) -> Result<Option<Update>, Box<(DecodeError, Option<Update>)>> {
        if self.error_codes.contains(&r.value) {
            return Err(Box::new((
                DecodeError::ErrorCode {
                    sensor_id: r.sensor_id.clone(),
                    metric: r.metric.clone(),
                    value: r.value,
                },
                None,
            )));
        }
        if let Some((low, high)) = self.range
            && !(low..=high).contains(&r.value)
        {
            return Err(Box::new((
                DecodeError::OutOfRange {
                    sensor_id: r.sensor_id.clone(),
                    metric: r.metric.clone(),
                    value: r.value,
                    low,
                    high,
                },
                None,
            )));
        }
        let Some(limit) = self.max_change_per_minute else {
            return Ok(None);
        };
        let now = (r.ts_ms, r.value);
        let accepted = LastValue {
            ts_ms: r.ts_ms,
            value: r.value,
            refused: None,
        };
        let Some(prev) = last.0.get(&key).copied() else {
            return Ok(Some((key, accepted)));
        };
        if r.ts_ms <= prev.ts_ms {
            // Out of order: no rate to judge; the later reading stays.
            return Ok(None);
        }
        let rate = per_minute((prev.ts_ms, prev.value), now);
        if rate <= limit {
            return Ok(Some((key, accepted)));
        }
        // A step that holds: the reading agrees with the one refused before.
        if let Some(refused) = prev.refused
            && r.ts_ms > refused.0
            && per_minute(refused, now) <= limit
        {
            return Ok(Some((key, accepted)));
        }
        let kept = LastValue {
            refused: Some(now),
            ..prev
        };
        Err(Box::new((
            DecodeError::Spike {
                sensor_id: r.sensor_id.clone(),
                metric: r.metric.clone(),
                value: r.value,
                previous: prev.value,
                per_minute: rate,
                limit,
            },
            Some((key, kept)),
        )))
    }
}

impl LastValues {
    pub(crate) fn apply(&mut self, (key, value): Update) {
        self.0.insert(key, value);
    }

    /// Forget the sensors of a partition given away.
    pub(crate) fn forget(&mut self, sensor: impl Fn(u32) -> bool) {
        self.0.retain(|(s, _), _| !sensor(*s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(minute: i64, value: f64) -> Reading {
        Reading {
            sensor_id: "s".into(),
            ts_ms: minute * 60_000,
            metric: "level_m".into(),
            value,
        }
    }

    #[test]
    fn a_spike_is_refused_a_step_that_holds_is_taken_and_codes_are_not_values() {
        let limits = MetricLimits {
            range: Some((-5.0, 50.0)),
            error_codes: vec![-9999.0],
            max_change_per_minute: Some(0.5),
        };
        let mut last = LastValues::default();
        let mut feed = |minute, value| match limits.check(&reading(minute, value), (0, 0), &last) {
            Ok(update) => {
                if let Some(u) = update {
                    last.apply(u);
                }
                "ok"
            }
            Err(refusal) => {
                let (e, update) = *refusal;
                if let Some(u) = update {
                    last.apply(u);
                }
                e.reason()
            }
        };
        assert_eq!(feed(0, 2.0), "ok");
        assert_eq!(feed(1, 2.3), "ok");
        assert_eq!(feed(2, 9.0), "spike", "6.7 m in a minute");
        assert_eq!(feed(3, 2.4), "ok", "back where it was: it was a spike");
        assert_eq!(feed(4, -9999.0), "error_code");
        assert_eq!(feed(5, 60.0), "out_of_range");
        assert_eq!(feed(6, 2.5), "ok");
        // A step after maintenance: refused once, then it holds.
        assert_eq!(feed(7, 6.0), "spike");
        assert_eq!(feed(8, 6.1), "ok", "the step held: a new level");
        assert_eq!(feed(9, 6.0), "ok");
    }
}
