//! Command line: `yujing demo`, `yujing run --config FILE`,
//! `yujing rules check FILE…`, `yujing rules test FILE…`, `yujing bench`,
//! `yujing backtest`, `yujing replay`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use yujing_ingest::Clock;

use crate::bench::{self, BenchOptions};
use crate::config::Loaded;
use crate::demo::{self, DemoOptions};
use crate::destinations::{Destinations, build_sinks};
use crate::metrics_server::MetricsServer;
use crate::pipeline::{self, ForceStop, PipelineError, RunSummary, Setup};
use crate::telemetry::Metrics;
use crate::{reload, rules_tool};

#[derive(Debug, Parser)]
#[command(
    name = "yujing",
    version,
    about = "预警 early warning: sensor readings on Kafka to graded warnings"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in-process: mock Kafka cluster, synthetic city, real rules.
    Demo {
        /// Real time to run (e.g. 60s, 5m); Ctrl-C stops earlier.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Simulated seconds per real second (600: one city hour every 6 s).
        #[arg(long, default_value_t = 600.0)]
        speed: f64,
        /// Address of the Prometheus endpoint.
        #[arg(long, default_value = "127.0.0.1:9464")]
        metrics: SocketAddr,
        /// Rules file to use instead of deploy/examples/rules.yaml.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Print without colours.
        #[arg(long)]
        no_color: bool,
        /// Language of the printed warnings: zh-CN or en (default from
        /// the environment, LANG).
        #[arg(long)]
        lang: Option<String>,
    },
    /// Run the pipeline against the brokers in a config file.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Measure the window engine and the pipeline; writes a JSON results file.
    Bench {
        /// Sensors, each sending one reading per second of event time.
        #[arg(long, default_value_t = 100_000)]
        sensors: usize,
        /// Minutes of event time fed through the window engine.
        #[arg(long, default_value_t = 30)]
        engine_minutes: i64,
        /// Messages the pipeline part consumes from the mock cluster (at most 1 920 000).
        #[arg(long, default_value_t = 1_920_000)]
        pipeline_messages: usize,
        /// Threshold rules in the rule-evaluation part.
        #[arg(long, default_value_t = 10_000)]
        rules: usize,
        /// Groups (sensors) each of those rules grades per window.
        #[arg(long, default_value_t = 100)]
        rule_groups: usize,
        /// A librdkafka property for the readings consumer, `KEY=VALUE`
        /// (repeatable), e.g. `fetch.queue.backoff.ms=1000`.
        #[arg(long = "consumer-property", value_name = "KEY=VALUE", value_parser = parse_property)]
        consumer_properties: Vec<(String, String)>,
        /// Results file.
        #[arg(long, default_value = "bench-results.json")]
        out: PathBuf,
    },
    /// Run rules over history and score them; compare two rule sets.
    Backtest(Box<crate::backtest::args::BacktestArgs>),
    /// Pick rule settings from history and labels for a false-warning
    /// budget (each rule's `tune:` space), holding out part of the history.
    Tune(Box<crate::tune::args::TuneArgs>),
    /// Publish history (JSONL or CSV) to a Kafka topic as readings.
    Replay(Box<crate::replay::ReplayArgs>),
    /// Publish the demo's synthetic city to a real broker, stamped from now.
    Simulate(crate::demo::simulate::SimulateArgs),
    /// Check a `yujing run` config and everything it names (rules,
    /// sensors, measurements). Exit 0 when valid, 1 otherwise.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check and test rules before deploying them.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Responders' verdicts: export them as backtest labels.
    #[command(subcommand)]
    Feedback(crate::feedback_export::FeedbackCommand),
    /// Same as `rules check` (kept for scripts written before it).
    #[command(hide = true)]
    CheckRules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load the config, its rules, sensor registry and measurements.
    Check { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate rules files (or directories) as one rule set; prints every
    /// problem as file:line:column. Exit 0 when valid, 1 otherwise.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Measurements file: rules on metrics not in it are errors.
        #[arg(long)]
        measurements: Option<PathBuf>,
        /// The languages warnings are written in (the config's
        /// `languages`): a rule whose `description` or `text` is given per
        /// language must have each of them.
        #[arg(long, value_delimiter = ',', default_value = "zh-CN,en")]
        languages: Vec<String>,
    },
    /// Run rule unit tests: input series and the warnings they must give.
    /// Exit 0 when every test passes, 1 otherwise.
    Test {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Entry point used by `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(
        cli.command,
        Command::Demo { .. } | Command::Bench { .. }
    ));
    let default_languages = yujing_rules::language::default_tags();
    let check = match &cli.command {
        Command::CheckRules { files } => Some((files, None, default_languages.as_slice())),
        Command::Rules(RulesCommand::Check {
            files,
            measurements,
            languages,
        }) => Some((files, measurements.as_ref(), languages.as_slice())),
        _ => None,
    };
    if let Command::Config(ConfigCommand::Check { file }) = &cli.command {
        return match crate::config::check(file) {
            Ok(summary) => {
                println!("{}: ok: {summary}", file.display());
                ExitCode::SUCCESS
            }
            Err(problem) => {
                eprintln!("{problem}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Feedback(command) = &cli.command {
        return match crate::feedback_export::run(command) {
            Ok(n) => {
                let crate::feedback_export::FeedbackCommand::Export { out, .. } = command;
                println!("{n} verdicts written to {}", out.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some((files, measurements, languages)) = check {
        let mut out = String::new();
        let ok = rules_tool::check(
            files,
            measurements.map(PathBuf::as_path),
            languages,
            &mut out,
        );
        if ok {
            print!("{out}");
            return ExitCode::SUCCESS;
        }
        eprint!("{out}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Backtest(args) => Ok(crate::backtest::args::main(*args).await),
            Command::Tune(args) => Ok(crate::tune::args::main(*args).await),
            Command::Replay(args) => crate::replay::run(&args)
                .await
                .map(|r| {
                    println!(
                        "{} messages ({} readings) to {} in {:.1} s",
                        r.messages, r.readings, args.topic, r.seconds
                    );
                    if r.unknown_sensors > 0 {
                        eprintln!(
                            "warning: {} messages are of sensors not in {}: keyed by sensor id; the pipeline refuses them as unknown sensors",
                            r.unknown_sensors,
                            args.sensors.as_deref().unwrap_or(std::path::Path::new("")).display()
                        );
                    }
                    ExitCode::SUCCESS
                })
                .map_err(PipelineError::Invalid),
            Command::Simulate(args) => crate::demo::simulate::simulate(&args, shutdown_signal())
                .await
                .map(|sent| {
                    eprintln!("{sent} messages to {}", args.topic);
                    ExitCode::SUCCESS
                }),
            Command::Demo { duration, speed, metrics, rules, no_color, lang } => {
                let opts = DemoOptions {
                    language: lang
                        .clone()
                        .unwrap_or_else(yujing_sinks::terminal::config::language_from_env),
                    duration,
                    speed,
                    metrics_addr: metrics,
                    rules,
                    colour: no_color.then_some(false),
                    print: true,
                };
                demo::run(opts, shutdown_signal()).await.map(|_| ExitCode::SUCCESS)
            }
            Command::Run { config } => {
                let (first, second) = stop_signals();
                run_until(config, first, Some(second)).await
            }
            .map(|s| {
                eprintln!(
                    "stopped: {} messages, {} readings, {} refused, {} windows, {} warning transitions",
                    s.messages, s.readings, s.bad_messages, s.windows_closed, s.transitions
                );
                ExitCode::SUCCESS
            }),
            Command::Bench {
                sensors,
                engine_minutes,
                pipeline_messages,
                rules,
                rule_groups,
                consumer_properties,
                out,
            } => {
                let opts = BenchOptions {
                    sensors,
                    engine_minutes,
                    pipeline_messages,
                    rules,
                    rule_groups,
                    consumer_properties: consumer_properties.into_iter().collect(),
                    out,
                };
                bench::run(opts).await.map(|_| ExitCode::SUCCESS)
            }
            Command::Rules(RulesCommand::Test { files }) => {
                test_rules(&files).await.map(|()| ExitCode::SUCCESS)
            }
            Command::CheckRules { .. }
            | Command::Rules(RulesCommand::Check { .. })
            | Command::Config(_)
            | Command::Feedback(_) => {
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(demo: bool) {
    use tracing_subscriber::EnvFilter;
    // The demo prints warnings on stdout; keep its log to what matters.
    let default = if demo { "warn" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
}

async fn test_rules(files: &[PathBuf]) -> Result<(), PipelineError> {
    let (mut passed, mut failed) = (0, 0);
    for f in files {
        println!("{}:", f.display());
        match rules_tool::test_file(f).await {
            Ok(report) => {
                print!("{}", report.text);
                passed += report.passed;
                failed += report.failed;
            }
            Err(e) => {
                println!("  ERROR {e}");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        return Err(PipelineError::Invalid(format!(
            "{failed} rule test(s) failed"
        )));
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Ctrl-C or SIGTERM, twice: the first future completes at the first
/// signal (stop cleanly), the second at the next one (stop at once).
pub fn stop_signals() -> (impl Future<Output = ()>, ForceStop) {
    let (count_tx, count_rx) = tokio::sync::watch::channel(0u32);
    tokio::spawn(async move {
        loop {
            shutdown_signal().await;
            count_tx.send_modify(|n| *n += 1);
            if *count_tx.borrow() >= 2 {
                return;
            }
        }
    });
    let at = |n: u32| {
        let mut rx = count_rx.clone();
        async move {
            let _ = rx.wait_for(|c| *c >= n).await;
        }
    };
    (at(1), Box::pin(at(2)))
}

/// `yujing run`: load the config and everything it names, serve metrics,
/// run the pipeline until `shutdown`.
pub async fn run(
    config_path: PathBuf,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, PipelineError> {
    run_until(config_path, shutdown, None).await
}

/// [`run`], stopping at once (within `config.shutdown_deadline` anyway)
/// when `force` completes while stopping.
pub async fn run_until(
    config_path: PathBuf,
    shutdown: impl Future<Output = ()>,
    force: Option<ForceStop>,
) -> Result<RunSummary, PipelineError> {
    let Loaded {
        config,
        measurements,
        rules,
        registry,
        units,
        languages,
    } = Loaded::load(&config_path)?;
    let metrics = Metrics::new();
    let Destinations {
        sinks,
        transactions,
    } = build_sinks(&config)?;
    let server = MetricsServer::bind(config.metrics.listen, metrics.clone())
        .await
        .map_err(|e| {
            PipelineError::Invalid(format!(
                "cannot bind metrics endpoint {}: {e}",
                config.metrics.listen
            ))
        })?;
    let addr = server
        .local_addr()
        .map_err(|e| PipelineError::Invalid(e.to_string()))?;
    eprintln!("metrics at http://{addr}/metrics");
    let (reload_tx, reload_rx) = reload::channel();
    reload::spawn_sighup(reload_tx.clone());
    if config.reload.watch {
        // The responsibility file is reloaded with the rules.
        let mut watched = rules.paths.clone();
        watched.extend(config.response.as_ref().map(|r| r.units.clone()));
        reload::spawn_file_watch(watched, config.reload.watch_interval, reload_tx.clone());
    }
    let token = match &config.reload.http_token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| {
                    PipelineError::Invalid(format!("reload token file {}: {e}", f.display()))
                })?
                .trim()
                .to_owned(),
        ),
        None => std::env::var(&config.reload.http_token_env).ok(),
    };
    let mut server = server.with_reload(reload_tx, token);
    let responses = match (units, &config.response) {
        (Some(units), Some(r)) => {
            let (tx, requests) = crate::response_api::channel();
            let tokens = unit_tokens(&units)?;
            server = server.with_responses(crate::response_api::Api {
                tx,
                tokens,
                metrics: metrics.clone(),
            });
            Some(pipeline::ResponseSetup {
                units,
                units_path: Some(r.units.clone()),
                topic: r.topic.clone(),
                feedback_topic: r.feedback_topic.clone(),
                feedback_grace: r.feedback_grace,
                requests,
                cap_sinks: config
                    .sinks
                    .iter()
                    .filter_map(|s| match &s.kind {
                        yujing_sinks::SinkKind::Kafka(k)
                            if matches!(k.format(&[]), yujing_sinks::AlertFormat::Cap(_)) =>
                        {
                            Some((k.clone(), s.route.clone()))
                        }
                        _ => None,
                    })
                    .collect(),
            })
        }
        _ => None,
    };
    let board = match &config.board {
        Some(b) => Some(crate::board::Board::new(
            &registry,
            b.load_districts().map_err(PipelineError::Config)?,
        )),
        None => None,
    };
    if let Some(b) = &board {
        server = server.with_board(b.clone());
        eprintln!("board at http://{addr}/board");
    }
    let feed = config
        .feed
        .clone()
        .map(|f| crate::feed::Feed::new(f, &languages.tags(), config.state_dir.as_deref()));
    if let Some(f) = &feed {
        server = server.with_feed(f.clone());
        eprintln!("CAP feed at http://{addr}/feed/cap.atom");
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_task = tokio::spawn(server.serve(async {
        let _ = stop_rx.await;
    }));
    let setup = Setup {
        kafka: config.kafka.clone(),
        pipeline: config.pipeline.clone(),
        rules,
        reloads: Some(reload_rx),
        measurements,
        registry,
        languages,
        sinks,
        metrics,
        clock: Clock::Wall,
        state_dir: config.state_dir.clone(),
        checkpoint_every: Some(config.checkpoint_every),
        transactions,
        shutdown_deadline: Some(config.shutdown_deadline),
        force_stop: force,
        responses,
        board,
        feed,
    };
    let board_to_close = setup.board.clone();
    let result = pipeline::run(setup, shutdown).await;
    if let Some(b) = board_to_close {
        b.close();
    }
    let _ = stop_tx.send(());
    let _ = server_task.await;
    result
}

/// `KEY=VALUE` on the command line.
fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Each unit's API token, from its `token_env` or `token_file`; units
/// without one cannot use the API (they still get assignments).
fn unit_tokens(units: &yujing_response::Units) -> Result<Vec<(String, String)>, PipelineError> {
    let mut out = Vec::new();
    for u in &units.units {
        let token = match (&u.token_env, &u.token_file) {
            (Some(var), _) => std::env::var(var).ok(),
            (None, Some(f)) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| {
                        PipelineError::Invalid(format!(
                            "unit {}: token file {}: {e}",
                            u.id,
                            f.display()
                        ))
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        match token.filter(|t| !t.is_empty()) {
            Some(t) => out.push((t, u.id.clone())),
            None if u.token_env.is_some() => tracing::warn!(
                unit = %u.id,
                "the unit's token variable is not set: it cannot use the responders' API"
            ),
            None => {}
        }
    }
    Ok(out)
}
