//! `yujing backtest`: history through the engine `yujing run` uses, in
//! event time, as fast as the machine goes; then the warning timeline, the
//! figures, and a report.
//!
//! - this module: options, loading, running one rule set over the history;
//! - [`args`]: its command line and exit codes;
//! - [`input`]: JSONL and CSV history, with a column mapping;
//! - [`events`]: labelled events (NAB windows, CSV, exported verdicts);
//! - [`score`]: episodes, per-rule summaries, detection scores;
//! - [`verdicts`]: each rule's precision against responders' verdicts;
//! - [`run`]: one rule set through the engine;
//! - [`report`]: the Markdown report, `summary.json` and the timeline;
//! - [`plot`]: one SVG per series: values, thresholds, warnings, events.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use yujing_ingest::{Measurements, SensorRegistry};
use yujing_rules::RuleSet;

use crate::config::PipelineConfig;

pub mod args;
pub mod events;
pub mod input;
pub mod plot;
pub mod report;
pub mod run;
pub mod score;
pub mod verdicts;

pub use input::{CsvMapping, History, MetricColumn, Span, TimeColumns};
pub use run::{RunOutcome, progress_bar, registry_for, run_rules, sensors_by_group};

#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Csv { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Events { path: PathBuf, message: String },
    #[error("no input files")]
    NoInput,
    #[error("sensors: {0}")]
    Sensors(String),
    #[error(transparent)]
    Rules(#[from] yujing_rules::RulesError),
    #[error(transparent)]
    Ingest(#[from] yujing_ingest::IngestError),
    #[error(transparent)]
    Engine(#[from] yujing_engine::EngineError),
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What `yujing backtest` was asked to do.
#[derive(Debug, Clone)]
pub struct BacktestOptions {
    pub inputs: Vec<PathBuf>,
    pub rules: Vec<PathBuf>,
    pub baseline_rules: Vec<PathBuf>,
    /// Only the rules of these groups (all when empty).
    pub groups: Vec<String>,
    pub sensors: Option<PathBuf>,
    pub measurements: Option<PathBuf>,
    pub pipeline: PipelineConfig,
    pub csv: CsvMapping,
    /// Only readings in `[from, to)`, if given.
    pub span: Span,
    pub events: Option<PathBuf>,
    /// How long before an event a warning still counts for it.
    pub lead: Duration,
    /// A warning raised this soon after the last one resolved is a flap.
    pub flap_window: Duration,
    pub out: PathBuf,
    /// At most this many series pictures.
    pub plots: usize,
    pub min_recall: Option<f64>,
    pub max_false_rate: Option<f64>,
    pub progress: bool,
}

/// The history and labels loaded once, for a backtest or a tuning search.
pub struct Prepared {
    pub settings: yujing_engine::EngineSettings,
    pub times: yujing_sinks::TimeFormat,
    pub history: History,
    pub registry: SensorRegistry,
    pub measurements: Option<Measurements>,
    /// Each sensor's first and last reading.
    pub spans: Vec<Option<(i64, i64)>>,
    /// The last reading's time.
    pub data_end: i64,
    /// Labelled events the history covers, if labels were given.
    pub events: Option<Vec<score::Event>>,
    /// Responders' verdicts among the labels.
    pub verdicts: Vec<verdicts::Verdict>,
    /// Series-hours of the labelled series (all series without labels).
    pub series_hours: HashMap<String, f64>,
}

/// Load the history, the registry, the measurements and the labels.
pub fn prepare(options: &BacktestOptions) -> Result<Prepared, BacktestError> {
    let settings = options.pipeline.engine_settings();
    let utc_offset_ms = settings.time_zone.utc_offset_ms();
    let times = yujing_sinks::TimeFormat::new(utc_offset_ms);
    let offset = times.offset();
    let mut history = History::load(&options.inputs, &options.csv, utc_offset_ms)?;
    history.restrict(options.span);
    let registry = match &options.sensors {
        Some(path) => {
            SensorRegistry::load(path).map_err(|e| BacktestError::Sensors(e.to_string()))?
        }
        None => registry_for(&history)?,
    };
    let measurements = options
        .measurements
        .as_ref()
        .map(|p| Measurements::load(p))
        .transpose()
        .map_err(BacktestError::Ingest)?;
    let spans = history.spans();
    let data_end = history.points.last().map_or(0, |p| p.ts_ms);
    let (events, labelled, verdicts) = match &options.events {
        Some(path) => {
            let events::Labels {
                mut events,
                series,
                verdicts,
            } = events::load(path, offset)?;
            // Only events the history covers can be detected or missed.
            events.retain(|e| {
                history
                    .sensor_index(&e.series)
                    .and_then(|i| spans[i])
                    .is_some_and(|(first, last)| e.start_ms <= last && e.end_ms >= first)
            });
            (Some(events), Some(series), verdicts)
        }
        None => (None, None, Vec::new()),
    };
    let series_hours: HashMap<String, f64> = history
        .sensors
        .iter()
        .zip(&spans)
        .filter(|(id, _)| labelled.as_ref().is_none_or(|l| l.contains(id)))
        .filter_map(|(id, span)| span.map(|(a, b)| (id.clone(), (b - a) as f64 / 3_600_000.0)))
        .collect();
    Ok(Prepared {
        settings,
        times,
        history,
        registry,
        measurements,
        spans,
        data_end,
        events,
        verdicts,
        series_hours,
    })
}

/// Run the backtest, write its outputs to `options.out`, and return the
/// summary (whose `failed_checks` decide the exit code).
pub async fn backtest(options: &BacktestOptions) -> Result<report::Summary, BacktestError> {
    let Prepared {
        settings,
        times,
        history,
        registry,
        measurements,
        spans: _,
        data_end,
        events,
        verdicts,
        series_hours,
    } = prepare(options)?;
    let utc_offset_ms = settings.time_zone.utc_offset_ms();
    let groups = sensors_by_group(&registry);
    let figures = |paths: &[PathBuf], outcome: RunOutcome| {
        let episodes = score::episodes(&outcome.changes, |t| {
            groups
                .get(&(t.group_by, t.group.clone()))
                .cloned()
                .unwrap_or_else(|| vec![t.group.clone()])
        });
        let summary = score::summarise(&episodes, data_end, options.flap_window.as_millis() as i64);
        let mut scores = std::collections::BTreeMap::new();
        if let Some(events) = &events {
            let lead = options.lead.as_millis() as i64;
            let grade_scores = |eps: &[&score::Episode]| {
                yujing_rules::Grade::ALL
                    .map(|g| score::score(eps, g, events, &series_hours, (lead, data_end)))
            };
            let all: Vec<&score::Episode> = episodes.iter().collect();
            scores.insert("*".to_owned(), grade_scores(&all));
            for rule in summary.keys() {
                let mine: Vec<&score::Episode> =
                    episodes.iter().filter(|e| &e.rule == rule).collect();
                scores.insert(rule.clone(), grade_scores(&mine));
            }
        }
        let mut against_verdicts = std::collections::BTreeMap::new();
        if !verdicts.is_empty() {
            let all: Vec<&score::Episode> = episodes.iter().collect();
            against_verdicts.insert("*".to_owned(), verdicts::score(&all, &verdicts, data_end));
            for rule in summary.keys() {
                let mine: Vec<&score::Episode> =
                    episodes.iter().filter(|e| &e.rule == rule).collect();
                against_verdicts.insert(rule.clone(), verdicts::score(&mine, &verdicts, data_end));
            }
        }
        report::RuleSetFigures {
            verdicts: against_verdicts,
            rule_files: paths.iter().map(|p| p.display().to_string()).collect(),
            readings: outcome.readings,
            refused: outcome
                .refused
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            seconds: outcome.elapsed.as_secs_f64(),
            transitions: outcome.changes.len(),
            summary,
            scores,
            episodes,
        }
    };
    std::fs::create_dir_all(options.out.join("plots")).map_err(|e| BacktestError::Write {
        path: options.out.clone(),
        source: e,
    })?;
    let run = |paths: &[PathBuf], what: &str, file_prefix: &str| {
        let rules = RuleSet::load_all(paths)
            .map_err(BacktestError::Rules)
            .map(|mut set| {
                if !options.groups.is_empty() {
                    set.rules.retain(|r| options.groups.contains(&r.group));
                }
                set
            });
        let bar = options
            .progress
            .then(|| progress_bar(history.points.len() as u64, what));
        let settings = &settings;
        let (history, registry, measurements) = (&history, &registry, measurements.as_ref());
        let timeline = options.out.join(format!("{}timeline.jsonl", file_prefix));
        async move {
            let rules = rules?;
            let mut writer = report::TimelineWriter::create(&timeline, registry, times)?;
            let outcome = run_rules(
                history,
                &rules,
                registry,
                settings,
                measurements,
                bar.as_ref(),
                |t| writer.write(t),
            )
            .await;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            writer.finish()?;
            Ok::<_, BacktestError>((rules, outcome?))
        }
    };
    let (rules, outcome) = run(&options.rules, "rules", "").await?;
    let new = figures(&options.rules, outcome);
    let baseline = if options.baseline_rules.is_empty() {
        None
    } else {
        let (_, outcome) = run(&options.baseline_rules, "baseline", "baseline-").await?;
        Some(figures(&options.baseline_rules, outcome))
    };
    let diff = baseline
        .as_ref()
        .map(|b| report::Diff::between(&b.episodes, &new.episodes, data_end, &times));
    let plots = plot_series(
        options,
        &history,
        &rules,
        &new,
        events.as_deref().unwrap_or(&[]),
        (data_end, utc_offset_ms),
    )?;
    let mut failed_checks = Vec::new();
    if let Some(overall) = new.scores.get("*") {
        let blue = &overall[yujing_rules::Grade::Blue as usize];
        if let Some(min) = options.min_recall
            && blue.recall.unwrap_or(1.0) < min
        {
            failed_checks.push(format!(
                "recall {:.3} is below --min-recall {min}",
                blue.recall.unwrap_or(0.0)
            ));
        }
        if let Some(max) = options.max_false_rate
            && blue.false_per_1000_series_hours > max
        {
            failed_checks.push(format!(
                "{:.3} false warnings per 1000 series-hours is above --max-false-rate {max}",
                blue.false_per_1000_series_hours
            ));
        }
    } else if options.min_recall.is_some() || options.max_false_rate.is_some() {
        failed_checks.push("--min-recall and --max-false-rate need --events".into());
    }
    let summary = report::Summary {
        input: report::InputFigures {
            files: history.files,
            inputs: options
                .inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            readings: history.points.len(),
            sensors: history.sensors.len(),
            metrics: history.metrics.clone(),
            from: history.points.first().map(|p| times.rfc3339(p.ts_ms)),
            to: history.points.last().map(|p| times.rfc3339(p.ts_ms)),
            series_hours: series_hours.values().sum(),
            skipped: history.skipped,
            skip_examples: history.skip_examples.clone(),
            events: events.as_ref().map(Vec::len),
            lead_minutes: options.lead.as_secs_f64() / 60.0,
        },
        rules: new,
        baseline,
        diff,
        failed_checks,
    };
    report::write(
        &options.out.join("summary.json"),
        &serde_json::to_string_pretty(&summary).expect("the summary serialises"),
    )?;
    report::write(
        &options.out.join("report.md"),
        &report::markdown(&summary, &plots),
    )?;
    Ok(summary)
}

/// Pictures of the series worth looking at first: those with labelled
/// events, then those with the most warnings. Returns their paths relative
/// to the report.
fn plot_series(
    options: &BacktestOptions,
    history: &History,
    rules: &RuleSet,
    figures: &report::RuleSetFigures,
    events: &[score::Event],
    (data_end, utc_offset_ms): (i64, i64),
) -> Result<Vec<String>, BacktestError> {
    if options.plots == 0 {
        return Ok(Vec::new());
    }
    let used: Vec<&str> = rules.rules.iter().flat_map(|r| r.input_metrics()).collect();
    // Events and warnings per sensor, counted once.
    let mut counts: HashMap<&str, (usize, usize)> = HashMap::new();
    for e in events {
        counts.entry(&e.series).or_default().0 += 1;
    }
    for e in &figures.episodes {
        for s in &e.sensors {
            counts.entry(s).or_default().1 += 1;
        }
    }
    let mut candidates: Vec<(usize, usize, u32, u16)> = Vec::new();
    for (s, sensor) in history.sensors.iter().enumerate() {
        let (n_events, n_warnings) = counts.get(sensor.as_str()).copied().unwrap_or_default();
        for (m, metric) in history.metrics.iter().enumerate() {
            if !used.contains(&metric.as_str()) {
                continue;
            }
            candidates.push((n_events, n_warnings, s as u32, m as u16));
        }
    }
    candidates.sort_by(|a, b| (b.0, b.1, a.2, a.3).cmp(&(a.0, a.1, b.2, b.3)));
    candidates.truncate(options.plots);
    let mut values: HashMap<(u32, u16), Vec<(i64, f64)>> = candidates
        .iter()
        .map(|c| ((c.2, c.3), Vec::new()))
        .collect();
    for p in &history.points {
        if let Some(v) = values.get_mut(&(p.sensor, p.metric)) {
            v.push((p.ts_ms, p.value));
        }
    }
    let mut out = Vec::new();
    for (_, _, s, m) in candidates {
        let (sensor, metric) = (&history.sensors[s as usize], &history.metrics[m as usize]);
        let thresholds = rules
            .rules
            .iter()
            .filter(|r| {
                &r.metric == metric
                    && r.quality.is_none()
                    && r.sql.is_none()
                    && r.baseline.is_none()
            })
            .flat_map(|r| {
                r.levels
                    .iter()
                    .map(|l| (r.id.clone(), l.grade, l.threshold))
            })
            .collect();
        let rule_reads = |id: &str| {
            rules
                .rules
                .iter()
                .any(|r| r.id == id && r.input_metrics().contains(&metric.as_str()))
        };
        let plot = plot::SeriesPlot {
            title: format!("{sensor} · {metric}"),
            values: values.remove(&(s, m)).unwrap_or_default(),
            thresholds,
            episodes: figures
                .episodes
                .iter()
                .filter(|e| e.sensors.contains(sensor) && rule_reads(&e.rule))
                .collect(),
            events: events.iter().filter(|e| &e.series == sensor).collect(),
            data_end_ms: data_end,
            utc_offset_ms,
        };
        let name = format!("plots/{}-{}.svg", file_safe(sensor), file_safe(metric));
        report::write(&options.out.join(&name), &plot.svg())?;
        out.push(name);
    }
    Ok(out)
}

fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
