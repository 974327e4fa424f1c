//! Running one rule set over the history: the engine of `yujing run`, fed
//! in event time, its transitions written to the timeline as they come and
//! kept in a compact form for scoring.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use yujing_ingest::{AreaLevel, Measurements, Sensor, SensorRegistry};
use yujing_rules::{RuleSet, WarningTransition};

use super::score::Change;
use super::{BacktestError, History};
use yujing_engine::{Engine, EngineSettings};

/// Readings per engine close: the engine closes (and DataFusion
/// aggregates) every window the watermark passed in one go, so fewer,
/// larger steps are faster; the result is the same for any step.
const CLOSE_EVERY: usize = 100_000;

/// One rule set's run over the history.
pub struct RunOutcome {
    /// Every warning transition, in the order the engine emitted them.
    pub changes: Vec<Change>,
    pub readings: u64,
    /// Readings the live pipeline would have dead-lettered, by reason.
    pub refused: HashMap<&'static str, u64>,
    pub elapsed: Duration,
}

/// A registry for history without one: each sensor its own grid, street
/// and district, so area rules grade each series on its own.
pub fn registry_for(history: &History) -> Result<SensorRegistry, BacktestError> {
    let sensors = history
        .sensors
        .iter()
        .map(|id| Sensor {
            sensor_id: id.clone(),
            kind: "history".into(),
            district: id.clone(),
            district_code: "000000".into(),
            street: id.clone(),
            grid: id.clone(),
            lat: 0.0,
            lon: 0.0,
            names: Default::default(),
        })
        .collect();
    SensorRegistry::new(sensors).map_err(BacktestError::Sensors)
}

/// Run `rules` over `history` through the engine, in event time: readings
/// of one sensor at one instant form one message (as a gateway sends
/// them), the single synthetic partition's event time is the clock.
pub async fn run_rules(
    history: &History,
    rules: &RuleSet,
    registry: &SensorRegistry,
    settings: &EngineSettings,
    measurements: Option<&Measurements>,
    progress: Option<&ProgressBar>,
    mut on_transition: impl FnMut(&WarningTransition),
) -> Result<RunOutcome, BacktestError> {
    let started = Instant::now();
    let mut settings = settings.clone();
    // The clock is event time: nothing is too old or too far ahead.
    settings.max_age = None;
    let mut engine = Engine::new(rules, registry.clone(), &settings);
    if let Some(m) = measurements {
        engine = engine.with_measurements(m.clone());
    }
    let mut out = RunOutcome {
        changes: Vec::new(),
        readings: 0,
        refused: HashMap::new(),
        elapsed: Duration::ZERO,
    };
    let points = &history.points;
    let mut message = Vec::new();
    let (mut i, mut since_close) = (0, 0);
    while i < points.len() {
        let first = points[i];
        let mut j = i;
        message.clear();
        while j < points.len() && points[j].ts_ms == first.ts_ms && points[j].sensor == first.sensor
        {
            message.push(history.reading(&points[j]));
            j += 1;
        }
        match engine.place("backtest", 0, &message, first.ts_ms) {
            Ok(placed) => {
                out.readings += placed.accepted;
                if let Some((e, n)) = placed.late {
                    *out.refused.entry(e.reason()).or_default() += n;
                }
            }
            Err(e) => *out.refused.entry(e.reason()).or_default() += message.len() as u64,
        }
        since_close += j - i;
        i = j;
        if since_close >= CLOSE_EVERY || i == points.len() {
            if let Some(closed) = engine.close_ready(first.ts_ms).await? {
                for t in &closed.transitions {
                    on_transition(t);
                    out.changes.push(Change::from(t));
                }
            }
            if let Some(p) = progress {
                p.inc(since_close as u64);
            }
            since_close = 0;
        }
    }
    out.elapsed = started.elapsed();
    Ok(out)
}

/// A progress bar on stderr; hidden when stderr is not a terminal.
pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{msg} [{bar:40}] {human_pos}/{human_len} readings ({per_sec}, {eta} left)",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar
}

/// The sensors each (level, group key) covers.
pub fn sensors_by_group(registry: &SensorRegistry) -> HashMap<(AreaLevel, String), Vec<String>> {
    let mut out: HashMap<(AreaLevel, String), Vec<String>> = HashMap::new();
    for level in [
        AreaLevel::Sensor,
        AreaLevel::Grid,
        AreaLevel::Street,
        AreaLevel::District,
    ] {
        for (i, s) in registry.sensors().iter().enumerate() {
            let key = registry
                .group_key(level, registry.group_index(level, i as u32))
                .to_owned();
            out.entry((level, key))
                .or_default()
                .push(s.sensor_id.clone());
        }
    }
    out
}
