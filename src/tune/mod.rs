//! `yujing tune`: rule settings chosen from history and labels for a
//! false-warning budget.
//!
//! - this module: loading once, running every candidate through the
//!   engine of `backtest` (in parallel across cores), choosing;
//! - [`space`]: the candidates (grid or seeded random) from the rules'
//!   `tune:` spaces, written back into the rules file;
//! - [`split`]: the held-out part of the history and the figures on each
//!   part;
//! - [`report`]: the candidates table, the trade-off plot (SVG), the tuned
//!   rules file and `summary.json`;
//! - [`args`]: the command line and its exit codes.
//!
//! The objective: the highest event recall at `grade` on the tuning part
//! among candidates that meet the budget there (at most `max_false_rate`
//! false warnings per 1,000 series-hours, or at least `min_precision`) and
//! detect at least one event; ties go to fewer false warnings, then to the
//! longer median lead.

pub mod args;
pub mod report;
pub mod space;
pub mod split;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_yaml_ng::Value;
use yujing_rules::{Grade, RuleSet};

use crate::backtest::{self, BacktestError, BacktestOptions, Prepared, score};
use space::{Candidate, Knob, Search};
use split::{Figures, Holdout};

/// What `yujing tune` was asked to do.
#[derive(Debug, Clone)]
pub struct TuneOptions {
    /// History, sensors, measurements, events, lead (`rules` names the one
    /// rules file to tune).
    pub backtest: BacktestOptions,
    pub grade: Grade,
    pub budget: Budget,
    /// At most this many candidates besides the current settings.
    pub candidates: usize,
    /// Values per range in a grid search.
    pub grid_steps: usize,
    pub seed: u64,
    /// Share (0–1) of the time span held out, from its end.
    pub holdout_time: f64,
    /// Share (0–1) of the series held out.
    pub holdout_series: f64,
    /// Candidates run at once (default: the cores).
    pub jobs: usize,
    pub out: PathBuf,
    pub progress: bool,
}

/// What a candidate must meet on the tuning part.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    MaxFalseRate(f64),
    MinPrecision(f64),
}

impl Budget {
    pub fn met(&self, s: &score::Score) -> bool {
        s.detected > 0
            && match *self {
                Budget::MaxFalseRate(max) => s.false_per_1000_series_hours <= max,
                Budget::MinPrecision(min) => s.precision.is_some_and(|p| p >= min),
            }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    #[error(transparent)]
    Backtest(#[from] BacktestError),
    #[error("{0}: no rule has a `tune:` space to search")]
    NothingToTune(PathBuf),
    #[error("{path}: {message}")]
    Rules { path: PathBuf, message: String },
    #[error("no labelled events: tune needs --events")]
    NoEvents,
}

/// One candidate's result.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub candidate: Candidate,
    pub figures: Figures,
    pub meets_budget: bool,
}

/// The search's result: every candidate, the chosen one (if any met the
/// budget), and what was searched.
pub struct Tuned {
    pub knobs: Vec<Knob>,
    pub search: Search,
    pub outcomes: Vec<Outcome>,
    pub chosen: Option<usize>,
    /// The rules file as written, parsed.
    pub doc: Value,
    pub holdout: Holdout,
}

/// What every candidate's run shares.
struct Shared {
    prepared: Prepared,
    groups: HashMap<(yujing_ingest::AreaLevel, String), Vec<String>>,
    spans: HashMap<String, (i64, i64)>,
    events: Vec<score::Event>,
    holdout: Holdout,
    grade: Grade,
    lead_ms: i64,
    rules_path: PathBuf,
}

/// Run the search and write its outputs to `options.out`.
pub async fn tune(options: &TuneOptions) -> Result<Tuned, TuneError> {
    let rules_path = options.backtest.rules.first().cloned().unwrap_or_default();
    let text = std::fs::read_to_string(&rules_path).map_err(|e| TuneError::Rules {
        path: rules_path.clone(),
        message: e.to_string(),
    })?;
    let rules = RuleSet::parse(&rules_path, &text).map_err(BacktestError::Rules)?;
    let doc: Value = serde_yaml_ng::from_str(&text).map_err(|e| TuneError::Rules {
        path: rules_path.clone(),
        message: e.to_string(),
    })?;
    let knobs = space::knobs(&rules);
    if knobs.is_empty() {
        return Err(TuneError::NothingToTune(rules_path));
    }
    let prepared = backtest::prepare(&options.backtest)?;
    let events = prepared.events.clone().ok_or(TuneError::NoEvents)?;
    let first = prepared.history.points.first().map_or(0, |p| p.ts_ms);
    let holdout = Holdout::new(
        (first, prepared.data_end),
        options.holdout_time,
        &prepared.history.sensors,
        options.holdout_series,
    );
    let spans = prepared
        .history
        .sensors
        .iter()
        .zip(&prepared.spans)
        .filter(|(s, _)| prepared.series_hours.contains_key(*s))
        .filter_map(|(s, span)| span.map(|span| (s.clone(), span)))
        .collect();
    let (search, candidates) =
        space::candidates(&knobs, options.candidates, options.grid_steps, options.seed);
    let shared = Arc::new(Shared {
        groups: backtest::sensors_by_group(&prepared.registry),
        prepared,
        spans,
        events,
        holdout: holdout.clone(),
        grade: options.grade,
        lead_ms: options.backtest.lead.as_millis() as i64,
        rules_path,
    });
    let bar = options
        .progress
        .then(|| backtest::progress_bar(candidates.len() as u64, "candidates"));
    let permits = Arc::new(tokio::sync::Semaphore::new(options.jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for c in candidates {
        let text = space::apply(&doc, &knobs, &c);
        let (shared, permits) = (shared.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("never closed");
            let figures = evaluate(&shared, &text).await;
            (c, figures)
        });
    }
    let mut outcomes = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (candidate, figures) = done.expect("a candidate's run does not panic");
        if let Some(b) = &bar {
            b.inc(1);
        }
        let figures = figures?;
        outcomes.push(Outcome {
            meets_budget: options.budget.met(&figures.tuning),
            candidate,
            figures,
        });
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    outcomes.sort_by_key(|o| o.candidate.id);
    let chosen = choose(&outcomes);
    let tuned = Tuned {
        knobs,
        search,
        outcomes,
        chosen,
        doc,
        holdout,
    };
    report::write_all(options, &tuned)?;
    Ok(tuned)
}

/// One candidate's rules over the whole history, scored on both parts.
async fn evaluate(shared: &Shared, text: &str) -> Result<Figures, TuneError> {
    let p = &shared.prepared;
    let rules = RuleSet::parse(&shared.rules_path, text).map_err(|e| TuneError::Rules {
        path: shared.rules_path.clone(),
        message: format!("a candidate is not a valid rules file: {e}"),
    })?;
    let outcome = backtest::run_rules(
        &p.history,
        &rules,
        &p.registry,
        &p.settings,
        p.measurements.as_ref(),
        None,
        |_| {},
    )
    .await?;
    let episodes = score::episodes(&outcome.changes, |t| {
        shared
            .groups
            .get(&(t.group_by, t.group.clone()))
            .cloned()
            .unwrap_or_else(|| vec![t.group.clone()])
    });
    Ok(split::figures(
        &episodes,
        shared.grade,
        &shared.events,
        &shared.spans,
        &shared.holdout,
        (shared.lead_ms, p.data_end),
    ))
}

/// The best candidate meeting the budget: highest recall, then fewest
/// false warnings, then the longest median lead, then the lowest id.
pub fn choose(outcomes: &[Outcome]) -> Option<usize> {
    let key = |o: &Outcome| {
        let s = &o.figures.tuning;
        (
            s.recall.unwrap_or(0.0),
            -s.false_per_1000_series_hours,
            s.lead_minutes_median.unwrap_or(f64::MIN),
        )
    };
    outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| o.meets_budget)
        .max_by(|(_, a), (_, b)| {
            let (ka, kb) = (key(a), key(b));
            ka.0.total_cmp(&kb.0)
                .then(ka.1.total_cmp(&kb.1))
                .then(ka.2.total_cmp(&kb.2))
                .then(b.candidate.id.cmp(&a.candidate.id))
        })
        .map(|(i, _)| i)
}
