//! `yujing simulate`: the demo's synthetic city as a producer only, for a
//! real broker (the compose kit runs it beside yujing).
//!
//! Readings are stamped from now on: the city's script starts at the
//! current minute and runs `--speed` script minutes per real minute. Above
//! 1 the stamps run ahead of the clock, so the yujing reading them needs
//! `pipeline.max_future_skew` at least as long as the time simulated.

use std::future::Future;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use super::{READINGS_TOPIC, city};
use crate::pipeline::PipelineError;

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_servers: String,
    /// Readings topic.
    #[arg(long, default_value = READINGS_TOPIC)]
    pub topic: String,
    /// Script minutes per real minute (60: a city hour every minute).
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Stop after this many script minutes (default: until Ctrl-C).
    #[arg(long)]
    pub minutes: Option<u64>,
    /// Replace every Nth message with a malformed one (0: never).
    #[arg(long, default_value_t = 2_500)]
    pub bad_every: u64,
}

/// Play the city until `shutdown` or `--minutes`; messages sent.
pub async fn simulate(
    args: &SimulateArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<u64, PipelineError> {
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        return Err(PipelineError::Invalid("--speed must be above 0".into()));
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap_servers)
        .set("linger.ms", "5")
        .set("acks", "all")
        .create()?;
    let mut town = city::City::new(2026);
    town.bad_every = args.bad_every;
    let now = yujing_ingest::clock::wall_now_ms();
    town.stamp_offset_ms = now - now % 60_000 - city::SCRIPT_START_MS;
    tracing::info!(
        topic = %args.topic,
        speed = args.speed,
        "simulating the city: {} sensors a minute",
        city::sensors().len()
    );
    let started = Instant::now();
    let mut sent = 0u64;
    tokio::pin!(shutdown);
    for minute in 0.. {
        if args.minutes.is_some_and(|m| minute >= m) {
            break;
        }
        // Script minute `minute` goes out once its real time has come.
        let due = Duration::from_secs_f64(minute as f64 * 60.0 / args.speed);
        tokio::select! {
            _ = tokio::time::sleep(due.saturating_sub(started.elapsed())) => {}
            _ = &mut shutdown => break,
        }
        for (key, payload) in town.minute(city::SCRIPT_START_MS + minute as i64 * 60_000) {
            let mut record = FutureRecord::to(&args.topic).key(&key).payload(&payload);
            loop {
                match producer.send_result(record) {
                    Ok(_) => break,
                    Err((e, r)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                        record = r;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(e.into()),
                }
            }
            sent += 1;
        }
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(sent)
}
