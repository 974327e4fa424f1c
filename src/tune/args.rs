//! The `yujing tune` command line: 0 a candidate met the budget, 1 an
//! error, 3 no candidate met it.

use std::path::PathBuf;
use std::time::Duration;

use yujing_rules::Grade;

use super::{Budget, TuneOptions};
use crate::backtest::BacktestOptions;
use crate::backtest::args::HistoryArgs;

/// Pick rule settings from history and labelled events for a
/// false-warning budget; the rules file declares what to search
/// (`tune:` next to each rule).
#[derive(Debug, clap::Args)]
pub struct TuneArgs {
    #[command(flatten)]
    pub history: HistoryArgs,
    /// The rules file to tune (its rules' `tune:` spaces are searched).
    #[arg(long)]
    pub rules: PathBuf,
    /// Sensor registry (CSV); without it each sensor is its own area.
    #[arg(long)]
    pub sensors: Option<PathBuf>,
    /// Measurements file: out-of-range readings are refused as live.
    #[arg(long)]
    pub measurements: Option<PathBuf>,
    /// Labelled events (NAB windows, CSV series,start,end) or the
    /// verdicts `yujing feedback export` writes.
    #[arg(long)]
    pub events: PathBuf,
    /// A warning this long before an event's start still detects it.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub lead: Duration,
    /// The grade scored (this grade and above).
    #[arg(long, default_value = "blue", value_parser = parse_grade)]
    pub grade: Grade,
    /// Budget: at most this many false warnings per 1,000 series-hours on
    /// the tuning part.
    #[arg(
        long,
        conflicts_with = "min_precision",
        required_unless_present = "min_precision"
    )]
    pub max_false_rate: Option<f64>,
    /// Budget: at least this precision (0–1) on the tuning part.
    #[arg(long)]
    pub min_precision: Option<f64>,
    /// At most this many candidates besides the current settings: a grid
    /// when the space has no more points, else a random sample.
    #[arg(long, default_value_t = 200)]
    pub candidates: usize,
    /// Values per range in a grid.
    #[arg(long, default_value_t = 5)]
    pub grid_steps: usize,
    /// Seed of the random sample: the same seed, the same search.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Share of the time span held out, from its end (0–1).
    #[arg(long, default_value_t = 0.3)]
    pub holdout_time: f64,
    /// Share of the series held out over the whole span (0–1).
    #[arg(long, default_value_t = 0.0)]
    pub holdout_series: f64,
    /// Candidates run at once (default: one per core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Output directory: candidates.csv, tradeoff.svg, tuned-rules.yaml,
    /// summary.json.
    #[arg(long, default_value = "tune-out")]
    pub out: PathBuf,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

fn parse_grade(s: &str) -> Result<Grade, String> {
    Grade::parse(s).ok_or_else(|| format!("{s:?}: expected blue, yellow, orange or red"))
}

impl TuneArgs {
    pub fn options(self) -> Result<TuneOptions, String> {
        let share = |v: f64, name: &str| {
            if (0.0..1.0).contains(&v) {
                Ok(v)
            } else {
                Err(format!("--{name} {v}: a share from 0 to below 1"))
            }
        };
        let holdout_time = share(self.holdout_time, "holdout-time")?;
        let holdout_series = share(self.holdout_series, "holdout-series")?;
        let (csv, _, span) = self.history.mapping()?;
        let budget = match (self.max_false_rate, self.min_precision) {
            (Some(m), _) => Budget::MaxFalseRate(m),
            (None, Some(p)) => Budget::MinPrecision(p),
            (None, None) => return Err("give --max-false-rate or --min-precision".into()),
        };
        let backtest = BacktestOptions {
            pipeline: self.history.pipeline(),
            inputs: self.history.inputs,
            rules: vec![self.rules],
            baseline_rules: Vec::new(),
            groups: Vec::new(),
            sensors: self.sensors,
            measurements: self.measurements,
            csv,
            span,
            events: Some(self.events),
            lead: self.lead,
            flap_window: Duration::from_secs(3600),
            out: self.out.clone(),
            plots: 0,
            min_recall: None,
            max_false_rate: None,
            progress: false,
        };
        Ok(TuneOptions {
            backtest,
            grade: self.grade,
            budget,
            candidates: self.candidates,
            grid_steps: self.grid_steps,
            seed: self.seed,
            holdout_time,
            holdout_series,
            jobs: self.jobs.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
            }),
            out: self.out,
            progress: !self.no_progress,
        })
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.1}%", v * 100.0))
}

/// `yujing tune`.
pub async fn main(args: TuneArgs) -> std::process::ExitCode {
    let options = match args.options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let started = std::time::Instant::now();
    let tuned = match super::tune(&options).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "{} candidates ({:?} search, seed {}) in {:.1} s, {} meet the budget; outputs in {}",
        tuned.outcomes.len(),
        tuned.search,
        options.seed,
        started.elapsed().as_secs_f64(),
        tuned.outcomes.iter().filter(|o| o.meets_budget).count(),
        options.out.display()
    );
    let line = |name: &str, s: &crate::backtest::score::Score| {
        println!(
            "  {name:<9} recall {:>6}  precision {:>6}  {:>7.2} false / 1000 series-h  lead median {} min",
            pct(s.recall),
            pct(s.precision),
            s.false_per_1000_series_hours,
            s.lead_minutes_median
                .map_or("–".into(), |v| format!("{v:.0}"))
        );
    };
    let current = &tuned.outcomes[0];
    println!("current settings:");
    line("tuning", &current.figures.tuning);
    line("held out", &current.figures.held_out);
    let Some(i) = tuned.chosen else {
        eprintln!("no candidate meets the budget on the tuning part");
        return std::process::ExitCode::from(3);
    };
    let chosen = &tuned.outcomes[i];
    println!("chosen: candidate {}", chosen.candidate.id);
    for c in super::report::changes(&tuned, i) {
        println!("  {c}");
    }
    line("tuning", &chosen.figures.tuning);
    line("held out", &chosen.figures.held_out);
    println!(
        "tuned rules: {}",
        options.out.join("tuned-rules.yaml").display()
    );
    std::process::ExitCode::SUCCESS
}
