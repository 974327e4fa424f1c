//! `yujing demo`: the whole product on one machine with nothing installed.
//!
//! Starts librdkafka's in-process mock cluster, creates the readings,
//! alert and dead-letter topics, plays the synthetic [`city`] on a
//! simulated clock, and runs the real pipeline against it: a consumer
//! group reads the readings topic, warnings are printed and published as
//! JSON on the alert topic, and metrics are served over HTTP. Simulated
//! [`responders`] answer the warnings on the feedback topic, so the
//! response loop runs too.

pub mod city;
pub mod responders;
pub mod simulate;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::watch;
use yujing_ingest::{Clock, Measurements};
use yujing_rules::{Languages, RuleSet};
use yujing_sinks::{KafkaAlertSink, Sink, TerminalSink, TimeFormat};

use crate::config::{KafkaConfig, PipelineConfig};
use crate::metrics_server::MetricsServer;
use crate::pipeline::{self, PipelineError, RunSummary, Setup};
use crate::telemetry::Metrics;

/// The rules the demo runs: the example deployment's, compiled in so the
/// demo works from any directory.
pub const DEFAULT_RULES: &str = include_str!("../../deploy/examples/rules.yaml");
/// The measurements the demo checks readings and rules against.
pub const DEFAULT_MEASUREMENTS: &str = include_str!("../../deploy/examples/measurements.yaml");

pub const READINGS_TOPIC: &str = "city.readings";
pub const ALERTS_TOPIC: &str = "city.alerts";
pub const DEAD_LETTER_TOPIC: &str = "city.readings.dead-letter";
pub const RESPONSES_TOPIC: &str = "city.responses";
pub const FEEDBACK_TOPIC: &str = "city.feedback";
/// The city centre's token for the responders' API in the demo.
pub const DEMO_CITY_TOKEN: &str = "demo-city";

/// What a demo run did: the pipeline's summary and the responders'.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    pub run: RunSummary,
    pub responses: responders::ResponderReport,
}

/// Demo settings (the `yujing demo` flags).
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Real time to run before stopping on its own.
    pub duration: Duration,
    /// Simulated seconds per real second.
    pub speed: f64,
    pub metrics_addr: SocketAddr,
    /// Rules file instead of the built-in example rules.
    pub rules: Option<PathBuf>,
    /// Force terminal colours on or off.
    pub colour: Option<bool>,
    /// Print warnings to standard output.
    pub print: bool,
    /// Language of the printed warnings (`zh-CN` or `en`).
    pub language: String,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            duration: Duration::from_secs(60),
            speed: 600.0,
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9464)),
            rules: None,
            colour: None,
            print: true,
            language: "en".to_owned(),
        }
    }
}

/// Run the demo until `duration` passes or `shutdown` completes.
pub async fn run(
    opts: DemoOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<DemoSummary, PipelineError> {
    let measurements = Measurements::parse(
        Path::new("deploy/examples/measurements.yaml"),
        DEFAULT_MEASUREMENTS,
    )?;
    let rules = match &opts.rules {
        Some(p) => RuleSet::load_checked(
            std::slice::from_ref(p),
            Some(&measurements.names()),
            &yujing_rules::language::default_tags(),
        )?,
        None => RuleSet::parse(Path::new("deploy/examples/rules.yaml"), DEFAULT_RULES)?,
    };
    let cluster = MockCluster::new(1)?;
    cluster.create_topic(READINGS_TOPIC, 3, 1)?;
    cluster.create_topic(ALERTS_TOPIC, 3, 1)?;
    cluster.create_topic(DEAD_LETTER_TOPIC, 1, 1)?;
    cluster.create_topic(RESPONSES_TOPIC, 1, 1)?;
    cluster.create_topic(FEEDBACK_TOPIC, 1, 1)?;
    let registry = city::registry();
    let units_path = Path::new("demo-units.yaml");
    let units =
        yujing_response::Units::parse(units_path, &responders::units_yaml(&registry), &registry)
            .map_err(|e| PipelineError::Invalid(format!("the demo's units: {e}")))?;
    let (api_tx, api_requests) = crate::response_api::channel();
    let bootstrap = cluster.bootstrap_servers();

    let metrics = Metrics::new();
    let api = crate::response_api::Api {
        tx: api_tx,
        tokens: vec![(DEMO_CITY_TOKEN.into(), "city".into())],
        metrics: metrics.clone(),
    };
    let board = crate::board::Board::new(&registry, None);
    let server = match MetricsServer::bind(opts.metrics_addr, metrics.clone()).await {
        Ok(s) => s.with_responses(api.clone()).with_board(board.clone()),
        Err(e) => {
            eprintln!(
                "note: {} is taken ({e}); serving metrics on a free port instead",
                opts.metrics_addr
            );
            MetricsServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), metrics.clone())
                .await
                .map_err(|e| PipelineError::Invalid(format!("cannot bind metrics endpoint: {e}")))?
                .with_responses(api)
                .with_board(board.clone())
        }
    };
    let metrics_addr = server
        .local_addr()
        .map_err(|e| PipelineError::Invalid(e.to_string()))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut server_stop = stop_rx.clone();
    tokio::spawn(server.serve(async move {
        let _ = server_stop.changed().await;
    }));

    let clock = Clock::simulated(city::SCRIPT_START_MS, opts.speed);
    let start = TimeFormat::new(8 * 3_600_000).rfc3339(city::SCRIPT_START_MS);
    eprintln!("yujing demo");
    eprintln!("  kafka    in-process mock cluster at {bootstrap}");
    eprintln!(
        "           readings → {READINGS_TOPIC}, warnings → {ALERTS_TOPIC}, refused → {DEAD_LETTER_TOPIC}"
    );
    eprintln!(
        "  city     {} sensors in 6 districts of Chongqing; {} rules",
        city::sensors().len(),
        rules.rules.len()
    );
    eprintln!(
        "  clock    simulated ×{} from {start}, for {} real",
        opts.speed,
        humantime::format_duration(opts.duration)
    );
    eprintln!("           responses → {RESPONSES_TOPIC}, responders' commands ← {FEEDBACK_TOPIC}");
    eprintln!(
        "  board    http://{metrics_addr}/board  (sign in with the token {DEMO_CITY_TOKEN} to act)"
    );
    eprintln!("  metrics  http://{metrics_addr}/metrics");
    eprintln!(
        "  api      curl -H 'Authorization: Bearer {DEMO_CITY_TOKEN}' http://{metrics_addr}/api/v1/warnings"
    );
    eprintln!();

    let generator = tokio::spawn(generate(bootstrap.clone(), clock.clone(), stop_rx.clone()));
    let responders = tokio::spawn({
        let (bootstrap, clock, stop, print) = (
            bootstrap.clone(),
            clock.clone(),
            stop_rx.clone(),
            opts.print,
        );
        async move {
            responders::respond(
                bootstrap,
                RESPONSES_TOPIC,
                FEEDBACK_TOPIC,
                clock,
                stop,
                print,
            )
            .await
        }
    });

    let mut sinks = vec![Sink::Kafka(
        KafkaAlertSink::new(&bootstrap, ALERTS_TOPIC, &BTreeMap::new())
            .map_err(|e| PipelineError::Invalid(e.to_string()))?,
    )];
    if opts.print {
        let terminal = match opts.colour {
            Some(c) => TerminalSink::new(Box::new(std::io::stdout()), c),
            None => TerminalSink::stdout(),
        };
        sinks.push(Sink::Terminal(
            terminal.with_language(opts.language.clone()),
        ));
    }
    let setup = Setup {
        kafka: KafkaConfig {
            bootstrap_servers: bootstrap.clone(),
            group_id: "yujing-demo".into(),
            readings_topics: vec![READINGS_TOPIC.into()],
            dead_letter_topic: DEAD_LETTER_TOPIC.into(),
            late_topic: None,
            properties: BTreeMap::new(),
            consumer_properties: BTreeMap::new(),
            producer_properties: BTreeMap::new(),
            transactional_id: None,
            state_topic: None,
            state_chunk_bytes: crate::config::default_state_chunk_bytes(),
            secret_properties: BTreeMap::new(),
        },
        pipeline: PipelineConfig {
            allowed_delay: Duration::from_secs(30),
            allowed_lateness: Duration::from_secs(60),
            max_future_skew: Duration::from_secs(300),
            idle_timeout: Some(Duration::from_secs(600)),
            max_age: None,
            time_zone: yujing_engine::TimeZone::default(),
            max_message_bytes: 1024 * 1024,
        },
        rules,
        registry,
        languages: Languages::builtin(),
        sinks: sinks.into_iter().map(Into::into).collect(),
        metrics: metrics.clone(),
        clock,
        reloads: None,
        measurements: Some(measurements),
        state_dir: None,
        checkpoint_every: None,
        transactions: None,
        shutdown_deadline: None,
        force_stop: None,
        responses: Some(pipeline::ResponseSetup {
            units,
            units_path: None,
            topic: RESPONSES_TOPIC.into(),
            feedback_topic: Some(FEEDBACK_TOPIC.into()),
            feedback_grace: Duration::from_secs(30),
            requests: api_requests,
            cap_sinks: Vec::new(),
        }),
        board: Some(board),
        feed: None,
    };
    let stop = async {
        tokio::select! {
            _ = shutdown => {},
            _ = tokio::time::sleep(opts.duration) => {},
        }
    };
    let board_to_close = setup.board.clone();
    let result = pipeline::run(setup, stop).await;
    if let Some(b) = board_to_close {
        b.close();
    }
    let _ = stop_tx.send(true);
    let _ = generator.await;
    let responses = responders.await.unwrap_or_default();
    let summary = result?;
    print_summary(&summary, &metrics);
    print_responses(&responses);
    drop(cluster);
    Ok(DemoSummary {
        run: summary,
        responses,
    })
}

fn print_responses(r: &responders::ResponderReport) {
    eprintln!("  responses");
    for (unit, minutes) in &r.acknowledged {
        let mean = minutes.iter().sum::<f64>() / minutes.len().max(1) as f64;
        eprintln!(
            "    {unit:<28} acknowledged {:>3}, {mean:.0} min after the raise on average",
            minutes.len()
        );
    }
    if !r.climbed.is_empty() {
        let path: Vec<&str> = std::iter::once(r.climbed[0].0.as_str())
            .chain(r.climbed.iter().map(|(_, to)| to.as_str()))
            .collect();
        eprintln!("    ignored warning climbed {}", path.join(" → "));
    }
    eprintln!(
        "    unanswered before the condition ended: {}",
        r.unanswered
    );
    for (rule, (confirmed, false_alarms)) in &r.verdicts {
        let judged = confirmed + false_alarms;
        eprintln!(
            "    precision of {rule:<24} {:.0}% ({confirmed} confirmed, {false_alarms} false alarms)",
            100.0 * f64::from(*confirmed) / f64::from(judged.max(1))
        );
    }
}

fn print_summary(s: &RunSummary, metrics: &Metrics) {
    let alerts: u64 = metrics
        .sinks
        .alerts
        .with_label_values(&[&format!("kafka:{ALERTS_TOPIC}")])
        .get();
    eprintln!();
    eprintln!("summary");
    eprintln!("  messages consumed   {}", s.messages);
    eprintln!("  readings processed  {}", s.readings);
    eprintln!(
        "  refused             {} bad messages, {} late readings (copied to {DEAD_LETTER_TOPIC})",
        s.bad_messages, s.late_readings
    );
    eprintln!("  windows closed      {}", s.windows_closed);
    let by: Vec<String> = s
        .warnings_by_grade
        .iter()
        .map(|(g, n)| format!("{g} {n}"))
        .collect();
    eprintln!(
        "  warnings by grade   {}",
        if by.is_empty() {
            "none".into()
        } else {
            by.join(", ")
        }
    );
    eprintln!("  resolved            {}", s.resolved);
    eprintln!("  still active        {}", s.active_at_end);
    eprintln!("  alert messages      {alerts} published to {ALERTS_TOPIC}");
}

/// Produce the city's readings as simulated time passes.
async fn generate(bootstrap: String, clock: Clock, mut stop: watch::Receiver<bool>) {
    let producer: FutureProducer = match ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
    {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("demo generator cannot start: {e}");
            return;
        }
    };
    let mut city = city::City::new(2026);
    let mut minute = city::SCRIPT_START_MS;
    loop {
        while minute + 60_000 <= clock.now_ms() {
            for (key, payload) in city.minute(minute) {
                let mut record = FutureRecord::to(READINGS_TOPIC).key(&key).payload(&payload);
                loop {
                    match producer.send_result(record) {
                        Ok(_delivery) => break,
                        Err((e, r))
                            if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) =>
                        {
                            record = r;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err((e, _)) => {
                            tracing::warn!("demo generator: {e}");
                            break;
                        }
                    }
                }
            }
            minute += 60_000;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.changed() => break,
        }
    }
}
