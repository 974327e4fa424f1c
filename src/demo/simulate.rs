//! `yujing simulate`: the demo's synthetic city as a producer only, for a
//! real broker (the compose kit runs it beside yujing).
//!
//! Readings are never stamped ahead of the wall clock, so the shipped
//! configuration accepts them at any speed: the city's script starts
//! `--backdate` before now (default 6 h) and plays `--speed` script minutes
//! per real minute (default 600) until it has caught up with the clock,
//! then in real time. The back-dated hours hold the demo's first warnings,
//! so a yujing reading the topic shows warnings within a minute.

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
    /// Script minutes per real minute while catching up with the clock
    /// (600: a city hour every 6 s); real time once caught up.
    #[arg(long, default_value_t = 600.0)]
    pub speed: f64,
    /// The first reading is stamped this long before now (at most a day:
    /// the shipped `pipeline.max_age` is a week).
    #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
    pub backdate: Duration,
    /// Create the readings topic if it does not exist (1 partition per
    /// district, replication 1), instead of refusing to start.
    #[arg(long)]
    pub create_topics: bool,
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
    if args.backdate > Duration::from_secs(24 * 3600) {
        return Err(PipelineError::Invalid(
            "--backdate is at most 1d (older readings may pass pipeline.max_age)".into(),
        ));
    }
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &args.bootstrap_servers);
    let districts: std::collections::BTreeSet<String> = city::sensors()
        .into_iter()
        .map(|s| s.district_code)
        .collect();
    crate::topics::ensure(
        &client,
        &args.topic,
        args.create_topics,
        districts.len() as i32,
    )
    .await?;
    let producer: FutureProducer = client
        .clone()
        .set("linger.ms", "5")
        .set("acks", "all")
        .create()?;
    let mut town = city::City::new(2026);
    town.bad_every = args.bad_every;
    let now = yujing_ingest::clock::wall_now_ms();
    let first_stamp = now - now % 60_000 - args.backdate.as_millis() as i64;
    town.stamp_offset_ms = first_stamp - city::SCRIPT_START_MS;
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
        // Script minute `minute` goes out once its real time has come at
        // `speed`, and never before the wall clock has passed the whole
        // minute it is stamped with.
        let at_speed = Duration::from_secs_f64(minute as f64 * 60.0 / args.speed);
        let minute_over_ms = first_stamp + (minute as i64 + 1) * 60_000 - now;
        let due = at_speed.max(Duration::from_millis(minute_over_ms.max(0) as u64));
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
