//! `yujing bench`: throughput, window-close latency and peak memory of the
//! window engine alone and of the whole pipeline on the mock cluster.
//!
//! The workload is the one the city sizes for: `--sensors` sensors (100 000
//! by default) each sending one PM2.5 reading per second of event time,
//! graded by a 1 h window sliding every 10 min (avg) and a 5 min tumbling
//! window (max), both per sensor. Results are written as JSON to `--out`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde::Serialize;
use yujing_ingest::{
    AreaLevel, Clock, MetricCatalog, Sensor, SensorRegistry, WindowStore, Windows,
};
use yujing_rules::{Aggregate, Direction, Grade, Rule, RuleSet, WindowAggregator, WindowSpec};

mod rules;

pub use rules::RulesResult;

use crate::config::{KafkaConfig, PipelineConfig};
use crate::pipeline::{self, PipelineError, Setup};
use crate::telemetry::Metrics;

/// Bench settings (the `yujing bench` flags).
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub sensors: usize,
    /// Event time fed through the window engine.
    pub engine_minutes: i64,
    /// Messages (one reading each) the pipeline part consumes.
    pub pipeline_messages: usize,
    /// Threshold rules in the rule-evaluation part, and the groups
    /// (sensors) each one grades.
    pub rules: usize,
    pub rule_groups: usize,
    /// librdkafka properties for the readings consumer (and the bare
    /// consumers measured beside it), e.g. `fetch.queue.backoff.ms=1000`.
    pub consumer_properties: BTreeMap<String, String>,
    pub out: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct EngineResult {
    pub sensors: usize,
    pub readings: u64,
    pub seconds: f64,
    pub readings_per_second: f64,
    /// Share of the time spent closing windows (merge + DataFusion).
    pub close_seconds: f64,
    pub windows_closed: u64,
    pub close_latency_ms_p50: f64,
    pub close_latency_ms_max: f64,
    pub peak_states: usize,
    pub peak_rss_mb: f64,
}

#[derive(Debug, Serialize)]
pub struct PipelineResult {
    pub sensors: usize,
    pub seconds: f64,
    pub messages: u64,
    pub readings: u64,
    pub readings_per_second: f64,
    pub windows_closed: u64,
    pub refused_messages: u64,
    pub late_readings: u64,
    pub peak_rss_mb: f64,
}

/// The same messages read by a bare rdkafka `StreamConsumer` that does
/// nothing with them: the ceiling the pipeline works under.
#[derive(Debug, Serialize)]
pub struct ConsumerBaseline {
    pub messages: u64,
    pub seconds: f64,
    pub messages_per_second: f64,
    /// The same with a `BaseConsumer` polled in a loop on its own thread.
    pub base_consumer_messages_per_second: f64,
}

#[derive(Debug, Serialize)]
pub struct BenchResults {
    pub machine: String,
    pub engine: EngineResult,
    pub pipeline: PipelineResult,
    pub consumer_baseline: ConsumerBaseline,
    pub rules: RulesResult,
}

const METRIC: &str = "pm25";

fn rules() -> Vec<Rule> {
    let rule = |id: &str, window: WindowSpec, aggregate| {
        let mut r = Rule::threshold_rule(
            id,
            METRIC,
            window,
            aggregate,
            AreaLevel::Sensor,
            Direction::Above,
            &[(Grade::Blue, 75.0), (Grade::Red, 250.0)],
        );
        r.unit = "ug/m3".into();
        r
    };
    vec![
        rule(
            "avg-1h-10m",
            WindowSpec {
                size_ms: 3_600_000,
                slide_ms: 600_000,
            },
            Aggregate::Avg,
        ),
        rule(
            "max-5m",
            WindowSpec {
                size_ms: 300_000,
                slide_ms: 300_000,
            },
            Aggregate::Max,
        ),
    ]
}

pub(crate) fn registry(sensors: usize) -> SensorRegistry {
    let list = (0..sensors)
        .map(|i| Sensor {
            sensor_id: format!("s{i:06}"),
            kind: "air".into(),
            district: format!("d{}", i % 10),
            district_code: "500000".into(),
            street: format!("st{}", i % 200),
            grid: format!("g{}", i % 5_000),
            lat: 29.5,
            lon: 106.5,
            names: Default::default(),
        })
        .collect();
    SensorRegistry::new(list).expect("unique ids")
}

/// Peak resident memory of this process so far, in MB (Linux).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Feed the window engine directly: insert, close on the watermark,
/// aggregate closed windows with DataFusion.
pub async fn engine(sensors: usize, minutes: i64) -> Result<EngineResult, PipelineError> {
    let reg = registry(sensors);
    let catalog = MetricCatalog::new([METRIC]);
    let rules = rules();
    let mut stores: Vec<(WindowStore, &Rule)> = rules
        .iter()
        .map(|r| {
            let w = Windows::hopping(r.window.size_ms, r.window.slide_ms, 8 * 3_600_000);
            (WindowStore::new(w, &catalog, &[0]), r)
        })
        .collect();
    let aggregator = WindowAggregator::new();
    let origin = 1_784_066_400_000_i64;
    let mut readings = 0u64;
    let mut close_time = Duration::ZERO;
    let mut latencies = Vec::new();
    let mut peak_states = 0;
    let started = Instant::now();
    for second in 0..minutes * 60 {
        let base = origin + second * 1_000;
        for i in 0..sensors {
            let ts = base + (i % 1_000) as i64;
            let value = 40.0 + (i % 97) as f64 + (second % 60) as f64 * 0.1;
            for (store, _) in &mut stores {
                // Readings are always on time here: the watermark trails.
                let _ = store.insert(i as u32, 0, ts, value);
            }
        }
        readings += sensors as u64;
        // Advance the watermark every 10 s of event time, 5 s behind.
        if second % 10 == 9 {
            peak_states = peak_states.max(stores.iter().map(|(s, _)| s.states()).sum());
            let watermark = base - 5_000;
            for (store, rule) in &mut stores {
                let t = Instant::now();
                let closed = store.close_until(watermark, &reg, &catalog)?;
                for w in &closed {
                    let t_window = Instant::now();
                    let groups = aggregator.aggregate(w, rule).await?;
                    std::hint::black_box(groups);
                    latencies.push(t_window.elapsed().as_secs_f64() * 1000.0);
                }
                close_time += t.elapsed();
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ok(EngineResult {
        sensors,
        readings,
        seconds,
        readings_per_second: readings as f64 / seconds,
        close_seconds: close_time.as_secs_f64(),
        windows_closed: latencies.len() as u64,
        close_latency_ms_p50: latencies.get(latencies.len() / 2).copied().unwrap_or(0.0),
        close_latency_ms_max: latencies.last().copied().unwrap_or(0.0),
        peak_states,
        peak_rss_mb: peak_rss_mb(),
    })
}

/// Partitions of the bench readings topic: the mock broker keeps only
/// about 4 MB (≈50 000 small readings) per partition, so the messages are
/// spread over enough partitions to be produced up front.
const PARTITIONS: i32 = 48;
const PER_PARTITION: usize = 40_000;

/// The whole pipeline on the mock cluster. `messages` readings are produced
/// first (one per sensor per event second); the pipeline then consumes
/// them, and only its time from the first to the last reading counts.
pub async fn pipeline_throughput(
    sensors: usize,
    messages: usize,
    consumer_properties: &BTreeMap<String, String>,
) -> Result<PipelineResult, PipelineError> {
    let messages = messages.min(PARTITIONS as usize * PER_PARTITION);
    let cluster = MockCluster::new(1)?;
    cluster.create_topic("bench.readings", PARTITIONS, 1)?;
    cluster.create_topic("bench.alerts", 1, 1)?;
    cluster.create_topic("bench.dead-letter", 1, 1)?;
    let bootstrap = cluster.bootstrap_servers();
    {
        let bootstrap = bootstrap.clone();
        tokio::task::spawn_blocking(move || produce(&bootstrap, sensors, messages))
            .await
            .map_err(|e| PipelineError::Invalid(e.to_string()))??;
    }
    let metrics = Metrics::new();
    let setup = Setup {
        kafka: KafkaConfig {
            bootstrap_servers: bootstrap.clone(),
            group_id: "bench".into(),
            readings_topics: vec!["bench.readings".into()],
            dead_letter_topic: "bench.dead-letter".into(),
            late_topic: None,
            properties: BTreeMap::new(),
            consumer_properties: consumer_properties.clone(),
            producer_properties: BTreeMap::new(),
            transactional_id: None,
            state_topic: None,
            state_chunk_bytes: crate::config::default_state_chunk_bytes(),
            secret_properties: BTreeMap::new(),
        },
        pipeline: PipelineConfig {
            allowed_delay: Duration::from_secs(5),
            allowed_lateness: Duration::ZERO,
            max_future_skew: Duration::from_secs(365 * 24 * 3600),
            idle_timeout: None,
            max_age: None,
            time_zone: yujing_engine::TimeZone::default(),
            max_message_bytes: 1024 * 1024,
        },
        rules: RuleSet {
            paths: vec![PathBuf::from("bench")],
            rules: rules(),
        },
        registry: registry(sensors),
        languages: yujing_rules::Languages::builtin(),
        sinks: vec![],
        metrics: metrics.clone(),
        clock: Clock::Wall,
        reloads: None,
        measurements: None,
        state_dir: None,
        checkpoint_every: None,
        transactions: None,
        shutdown_deadline: None,
        force_stop: None,
        responses: None,
        board: None,
        feed: None,
    };
    // Time from the first reading to the last (the group join takes seconds).
    let counted = metrics
        .messages_consumed
        .with_label_values(&["bench.readings"]);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let run = pipeline::run(setup, async move {
        while counted.get() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let started = Instant::now();
        let deadline = started + Duration::from_secs(120);
        while counted.get() < messages as u64 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let _ = tx.send(started.elapsed());
    });
    let summary = run.await?;
    let elapsed = rx
        .await
        .map_err(|_| PipelineError::Invalid("bench window lost".into()))?
        .as_secs_f64();
    let readings = summary.readings;
    drop(cluster);
    Ok(PipelineResult {
        sensors,
        seconds: elapsed,
        messages: summary.messages,
        readings,
        readings_per_second: readings as f64 / elapsed,
        windows_closed: summary.windows_closed,
        refused_messages: summary.bad_messages,
        late_readings: summary.late_readings,
        peak_rss_mb: peak_rss_mb(),
    })
}

/// Read the bench messages with a bare consumer (same group settings as the
/// pipeline), counting only.
pub async fn consumer_baseline(
    sensors: usize,
    messages: usize,
    consumer_properties: &BTreeMap<String, String>,
) -> Result<ConsumerBaseline, PipelineError> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let messages = messages.min(PARTITIONS as usize * PER_PARTITION);
    let cluster = MockCluster::new(1)?;
    cluster.create_topic("bench.readings", PARTITIONS, 1)?;
    let bootstrap = cluster.bootstrap_servers();
    {
        let bootstrap = bootstrap.clone();
        tokio::task::spawn_blocking(move || produce(&bootstrap, sensors, messages))
            .await
            .map_err(|e| PipelineError::Invalid(e.to_string()))??;
    }
    let consumer: StreamConsumer =
        baseline_config(&bootstrap, "bench-baseline", consumer_properties).create()?;
    consumer.subscribe(&["bench.readings"])?;
    let mut count = 0u64;
    let mut started = None;
    while count < messages as u64 {
        let m = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .map_err(|_| PipelineError::Invalid("baseline consumer stalled".into()))??;
        std::hint::black_box(rdkafka::Message::payload(&m));
        started.get_or_insert_with(Instant::now);
        count += 1;
    }
    let seconds = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    drop(consumer);
    let base = {
        let bootstrap = bootstrap.clone();
        let props = consumer_properties.clone();
        tokio::task::spawn_blocking(move || base_consumer_rate(&bootstrap, messages as u64, &props))
            .await
            .map_err(|e| PipelineError::Invalid(e.to_string()))??
    };
    drop(cluster);
    Ok(ConsumerBaseline {
        messages: count,
        seconds,
        messages_per_second: count as f64 / seconds,
        base_consumer_messages_per_second: base,
    })
}

/// A bare consumer's settings: the readings consumer's defaults (so the
/// comparison is fair) and the bench's `--consumer-property` values.
fn baseline_config(
    bootstrap: &str,
    group: &str,
    properties: &BTreeMap<String, String>,
) -> ClientConfig {
    yujing_ingest::kafka::client_config(
        bootstrap,
        yujing_ingest::kafka::READINGS_CONSUMER_DEFAULTS,
        properties,
        &[("group.id", group), ("enable.auto.commit", "false")],
    )
}

/// Messages per second a `BaseConsumer` polled in a tight loop reads.
fn base_consumer_rate(
    bootstrap: &str,
    messages: u64,
    properties: &BTreeMap<String, String>,
) -> Result<f64, PipelineError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer =
        baseline_config(bootstrap, "bench-baseline-base", properties).create()?;
    consumer.subscribe(&["bench.readings"])?;
    let (mut count, mut started) = (0u64, None);
    let deadline = Instant::now() + Duration::from_secs(120);
    while count < messages && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m?;
            std::hint::black_box(rdkafka::Message::payload(&m));
            started.get_or_insert_with(Instant::now);
            count += 1;
        }
    }
    let seconds = started.map_or(1.0, |s: Instant| s.elapsed().as_secs_f64());
    Ok(count as f64 / seconds)
}

/// Produce `messages` readings, one per sensor per event second (keyed by
/// sensor), and wait until the broker has them all.
fn produce(bootstrap: &str, sensors: usize, messages: usize) -> Result<(), PipelineError> {
    use std::fmt::Write;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "2000000")
        .create()?;
    let origin = yujing_ingest::clock::wall_now_ms() - 24 * 3_600_000;
    let mut payload = String::with_capacity(128);
    let mut key = String::with_capacity(16);
    for n in 0..messages {
        let (second, i) = ((n / sensors) as i64, n % sensors);
        payload.clear();
        key.clear();
        let _ = write!(key, "s{i:06}");
        let _ = write!(
            payload,
            r#"{{"sensor_id":"{key}","ts":{},"metric":"pm25","value":{}}}"#,
            origin + second * 1_000 + (i % 1_000) as i64,
            40 + i % 97
        );
        // Spread evenly; the partition is what keying by sensor would give.
        let partition = (i % PARTITIONS as usize) as i32;
        let record = BaseRecord::to("bench.readings")
            .key(&key)
            .payload(&payload)
            .partition(partition);
        if let Err((e, _)) = producer.send(record) {
            return Err(PipelineError::Kafka(e));
        }
        if n % 10_000 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(())
}

/// Run both parts and write the results file.
pub async fn run(opts: BenchOptions) -> Result<BenchResults, PipelineError> {
    eprintln!(
        "window engine: {} sensors, {} min of event time …",
        opts.sensors, opts.engine_minutes
    );
    let engine = engine(opts.sensors, opts.engine_minutes).await?;
    eprintln!(
        "  {:.0} readings/s, {} windows closed (p50 {:.1} ms, max {:.1} ms), peak {} states, peak RSS {:.0} MB",
        engine.readings_per_second,
        engine.windows_closed,
        engine.close_latency_ms_p50,
        engine.close_latency_ms_max,
        engine.peak_states,
        engine.peak_rss_mb
    );
    eprintln!(
        "pipeline on the mock cluster: {} sensors, {} messages …",
        opts.sensors, opts.pipeline_messages
    );
    let pipeline = pipeline_throughput(
        opts.sensors,
        opts.pipeline_messages,
        &opts.consumer_properties,
    )
    .await?;
    eprintln!(
        "  {:.0} readings/s ({} readings in {:.1} s), peak RSS {:.0} MB",
        pipeline.readings_per_second, pipeline.readings, pipeline.seconds, pipeline.peak_rss_mb
    );
    let consumer_baseline = consumer_baseline(
        opts.sensors,
        opts.pipeline_messages,
        &opts.consumer_properties,
    )
    .await?;
    eprintln!(
        "bare consumer on the same messages: {:.0} messages/s (StreamConsumer), {:.0}/s (BaseConsumer polled on a thread)",
        consumer_baseline.messages_per_second, consumer_baseline.base_consumer_messages_per_second
    );
    eprintln!(
        "rule evaluation: {} threshold rules over {} groups …",
        opts.rules, opts.rule_groups
    );
    let rules = rules::rules(opts.rules, opts.rule_groups, 10).await?;
    eprintln!(
        "  {:.0} rule evaluations/s ({} windows, {:.2} s wall, {:.2} s CPU, {} transitions)",
        rules.evaluations_per_second,
        rules.windows,
        rules.seconds,
        rules.cpu_seconds,
        rules.transitions
    );
    let results = BenchResults {
        machine: format!(
            "{} cores, {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            if cfg!(debug_assertions) {
                "debug build (use --release for figures)"
            } else {
                "release build"
            }
        ),
        engine,
        pipeline,
        consumer_baseline,
        rules,
    };
    let json = serde_json::to_string_pretty(&results)
        .map_err(|e| PipelineError::Invalid(e.to_string()))?;
    std::fs::write(&opts.out, json + "\n")
        .map_err(|e| PipelineError::Invalid(format!("cannot write {}: {e}", opts.out.display())))?;
    eprintln!("results written to {}", opts.out.display());
    Ok(results)
}
