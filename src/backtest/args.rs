//! The `yujing backtest` command line.

use std::path::PathBuf;
use std::time::Duration;

use super::{BacktestOptions, CsvMapping, History, MetricColumn, Span, TimeColumns};
use yujing_engine::TimeZone;

use crate::config::PipelineConfig;

/// Where history comes from and how to read it: shared by `backtest` and
/// `replay`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// History files, or directories of `.csv`/`.jsonl` files.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Local time of windows and of naive CSV times.
    #[arg(long, default_value = "Asia/Shanghai", value_parser = TimeZone::parse)]
    pub time_zone: TimeZone,
    /// CSV time: one column (`timestamp`), or `year,month,day,hour[,minute]`.
    #[arg(long, default_value = "timestamp")]
    pub time: String,
    /// CSV column naming the sensor; without it, each file is one sensor.
    #[arg(long)]
    pub sensor_column: Option<String>,
    /// Sensor id for a one-sensor CSV (default: the file's name).
    #[arg(long)]
    pub sensor_id: Option<String>,
    /// CSV value columns as `COLUMN=metric[*factor]`, comma separated
    /// (default: `value`).
    #[arg(long, default_value = "")]
    pub metrics: String,
    /// CSV cells meaning "no value", besides an empty cell.
    #[arg(long, default_value = "NA,NaN,nan,null")]
    pub missing: String,
    /// Only readings at or after this local time (`2016-11-01`, or with a
    /// time of day).
    #[arg(long)]
    pub from: Option<String>,
    /// Only readings before this local time.
    #[arg(long)]
    pub to: Option<String>,
}

impl HistoryArgs {
    /// Pipeline settings for the history's time zone.
    pub(crate) fn pipeline(&self) -> PipelineConfig {
        PipelineConfig {
            time_zone: self.time_zone.clone(),
            ..PipelineConfig::default()
        }
    }

    /// The CSV mapping, the UTC offset of the time zone, and the time span.
    pub fn mapping(&self) -> Result<(CsvMapping, i64, Span), String> {
        let utc_offset_ms = self.time_zone.utc_offset_ms();
        let offset = yujing_sinks::TimeFormat::new(utc_offset_ms).offset();
        let bound = |t: &Option<String>, name: &str| -> Result<Option<i64>, String> {
            t.as_deref()
                .map(|t| {
                    let full = if t.len() == 10 {
                        format!("{t} 00:00:00")
                    } else {
                        t.to_owned()
                    };
                    super::input::parse_time(&[&full], offset).map_err(|e| format!("--{name}: {e}"))
                })
                .transpose()
        };
        let span = (bound(&self.from, "from")?, bound(&self.to, "to")?);
        let csv = CsvMapping {
            time: TimeColumns::parse(&self.time)?,
            sensor_column: self.sensor_column.clone(),
            sensor_id: self.sensor_id.clone(),
            metrics: MetricColumn::parse_list(&self.metrics)?,
            missing: self.missing.split(',').map(str::to_owned).collect(),
        };
        Ok((csv, utc_offset_ms, span))
    }

    /// Load the history, restricted to the span.
    pub fn load(&self) -> Result<(History, i64), String> {
        let (csv, utc_offset_ms, span) = self.mapping()?;
        let mut history =
            History::load(&self.inputs, &csv, utc_offset_ms).map_err(|e| e.to_string())?;
        history.restrict(span);
        Ok((history, utc_offset_ms))
    }
}

/// Run rules over history (JSONL readings or CSV) through the live engine;
/// write the warning timeline, scores against labelled events and a report.
#[derive(Debug, clap::Args)]
pub struct BacktestArgs {
    #[command(flatten)]
    pub history: HistoryArgs,
    /// Rules file (or directory) to run; repeat for several.
    #[arg(long, required = true)]
    pub rules: Vec<PathBuf>,
    /// Rules to compare with (today's rules, when `--rules` is a change);
    /// repeat for several.
    #[arg(long)]
    pub baseline_rules: Vec<PathBuf>,
    /// Run only the rules of these groups (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// Sensor registry (CSV); without it each sensor is its own grid,
    /// street and district.
    #[arg(long)]
    pub sensors: Option<PathBuf>,
    /// Measurements file: readings outside a metric's range are refused as
    /// the live pipeline would.
    #[arg(long)]
    pub measurements: Option<PathBuf>,
    /// Labelled events: NAB `combined_windows.json`, or CSV series,start,end.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// A warning this long before an event's start still detects it.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub lead: Duration,
    /// A warning raised this soon after the previous one resolved is a flap.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub flap_window: Duration,
    /// Output directory: report.md, summary.json, timeline.jsonl, plots/.
    #[arg(long, default_value = "backtest-out")]
    pub out: PathBuf,
    /// At most this many series pictures.
    #[arg(long, default_value_t = 12)]
    pub plots: usize,
    /// Exit 3 when the overall recall (blue and above) is below this (0-1).
    #[arg(long)]
    pub min_recall: Option<f64>,
    /// Exit 3 when false warnings per 1000 series-hours exceed this.
    #[arg(long)]
    pub max_false_rate: Option<f64>,
    /// No progress bar (it is hidden anyway when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

impl BacktestArgs {
    pub fn options(self) -> Result<BacktestOptions, String> {
        let (csv, _, span) = self.history.mapping()?;
        let pipeline = self.history.pipeline();
        Ok(BacktestOptions {
            inputs: self.history.inputs,
            rules: self.rules,
            baseline_rules: self.baseline_rules,
            groups: self.groups,
            sensors: self.sensors,
            measurements: self.measurements,
            pipeline,
            csv,
            span,
            events: self.events,
            lead: self.lead,
            flap_window: self.flap_window,
            out: self.out,
            plots: self.plots,
            min_recall: self.min_recall,
            max_false_rate: self.max_false_rate,
            progress: !self.no_progress,
        })
    }
}

/// `yujing backtest`: 0 done, 1 error, 3 a `--min-recall` or
/// `--max-false-rate` check failed.
pub async fn main(args: BacktestArgs) -> std::process::ExitCode {
    let options = match args.options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let summary = match super::backtest(&options).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let r = &summary.rules;
    println!(
        "{} readings, {} warning transitions in {:.2} s; report: {}",
        r.readings,
        r.transitions,
        r.seconds,
        options.out.join("report.md").display()
    );
    if let Some(all) = r.scores.get("*") {
        for g in yujing_rules::Grade::ALL {
            let s = &all[g as usize];
            println!(
                "{:>6}+: recall {}, precision {}, {:.2} false / 1000 series-h, lead median {} min",
                g.as_str(),
                s.recall
                    .map_or("–".into(), |v| format!("{:.1}%", v * 100.0)),
                s.precision
                    .map_or("–".into(), |v| format!("{:.1}%", v * 100.0)),
                s.false_per_1000_series_hours,
                s.lead_minutes_median
                    .map_or("–".into(), |v| format!("{v:.0}"))
            );
        }
    }
    if let Some(d) = &summary.diff {
        println!(
            "against the baseline: {} warnings added, {} removed",
            d.added.len(),
            d.removed.len()
        );
    }
    for f in &summary.failed_checks {
        eprintln!("check failed: {f}");
    }
    if summary.failed_checks.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(3)
    }
}
