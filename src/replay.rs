//! `yujing replay`: publish history to a Kafka topic as reading messages,
//! at a chosen speed, for demos, load tests and rehearsals against a real
//! broker.
//!
//! Readings of one sensor at one instant go out as one gateway message
//! (`{"sensor_id", "ts", "values": {…}}`) in event-time order, keyed by
//! the sensor's district code when a registry is given (`--sensors`, as a
//! city's gateways should key them), else by sensor id. `--speed 60` sends one hour of history per minute; `--speed max`
//! as fast as the producer takes them.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use yujing_ingest::SensorRegistry;

use crate::backtest::History;
use crate::backtest::args::HistoryArgs;

/// Publish history as reading messages.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub history: HistoryArgs,
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic to publish to.
    #[arg(long, default_value = "readings")]
    pub topic: String,
    /// History seconds per real second (`60`: an hour per minute), or `max`.
    #[arg(long, default_value = "max")]
    pub speed: Speed,
    /// Extra producer properties, `key=value` (e.g. `linger.ms=20`).
    #[arg(long = "producer-property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
    /// Sensor registry (the CSV of the config's `sensors:`): key each
    /// message by its sensor's district code, so that every reading of a
    /// district lands on one partition (what district and street rules
    /// need with several instances). Without it: keyed by sensor id.
    #[arg(long)]
    pub sensors: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    Max,
    Times(f64),
}

impl std::str::FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "max" {
            return Ok(Speed::Max);
        }
        match s.parse::<f64>() {
            Ok(x) if x > 0.0 && x.is_finite() => Ok(Speed::Times(x)),
            _ => Err(format!("speed `{s}`: a positive number, or `max`")),
        }
    }
}

impl Speed {
    /// When (after the start) the message stamped `ts_ms` goes out, for
    /// history starting at `first_ms`.
    pub fn due(self, first_ms: i64, ts_ms: i64) -> Duration {
        match self {
            Speed::Max => Duration::ZERO,
            Speed::Times(x) => {
                Duration::from_secs_f64((ts_ms - first_ms).max(0) as f64 / 1000.0 / x)
            }
        }
    }
}

/// The messages of `history`, in order: (sensor id, event time, payload).
pub fn messages(history: &History) -> impl Iterator<Item = (&str, i64, String)> {
    let points = &history.points;
    let mut i = 0;
    std::iter::from_fn(move || {
        let first = *points.get(i)?;
        let mut values = serde_json::Map::new();
        while let Some(p) = points.get(i)
            && p.ts_ms == first.ts_ms
            && p.sensor == first.sensor
        {
            values.insert(history.metrics[p.metric as usize].clone(), p.value.into());
            i += 1;
        }
        let sensor = history.sensors[first.sensor as usize].as_str();
        let payload = serde_json::json!({"sensor_id": sensor, "ts": first.ts_ms, "values": values});
        Some((sensor, first.ts_ms, payload.to_string()))
    })
}

/// What a replay sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Replayed {
    pub messages: u64,
    pub readings: usize,
    pub seconds: f64,
    /// Messages of sensors missing from `--sensors` (keyed by sensor id;
    /// the pipeline dead-letters them as unknown sensors).
    pub unknown_sensors: u64,
}

pub async fn run(args: &ReplayArgs) -> Result<Replayed, String> {
    let (history, _) = args.history.load()?;
    let registry = match &args.sensors {
        Some(path) => Some(SensorRegistry::load(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.brokers)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000");
    for p in &args.properties {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("--producer-property `{p}`: expected key=value"))?;
        config.set(k, v);
    }
    let producer: ThreadedProducer<DefaultProducerContext> =
        config.create().map_err(|e| format!("producer: {e}"))?;
    let started = Instant::now();
    let start = tokio::time::Instant::now();
    let first = history.points.first().map_or(0, |p| p.ts_ms);
    let (mut sent, mut unknown_sensors) = (0u64, 0u64);
    for (sensor, ts, payload) in messages(&history) {
        let due = args.speed.due(first, ts);
        if !due.is_zero() {
            tokio::time::sleep_until(start + due).await;
        }
        let key = match registry.as_ref().map(|r| r.get(sensor)) {
            None => sensor,
            Some(Some(known)) => known.district_code.as_str(),
            Some(None) => {
                unknown_sensors += 1;
                sensor
            }
        };
        let mut record = BaseRecord::to(&args.topic).key(key).payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => return Err(format!("produce to {}: {e}", args.topic)),
            }
        }
        sent += 1;
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(|e| format!("flush to {}: {e}", args.topic))?;
    Ok(Replayed {
        messages: sent,
        readings: history.points.len(),
        seconds: started.elapsed().as_secs_f64(),
        unknown_sensors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_maps_history_time_to_real_time() {
        let hour = 3_600_000;
        assert_eq!("max".parse::<Speed>(), Ok(Speed::Max));
        let s: Speed = "60".parse().unwrap();
        assert_eq!(s.due(0, hour), Duration::from_secs(60));
        assert_eq!(s.due(hour, hour), Duration::ZERO);
        assert_eq!(Speed::Max.due(0, hour), Duration::ZERO);
        assert!("0".parse::<Speed>().is_err());
        assert!("fast".parse::<Speed>().is_err());
    }
}
