//! Rule evaluation at scale: 10 000 threshold rules over one stream.
//!
//! Every rule reads the same metric on the same 1-minute windows, grouped
//! by sensor, each with its own thresholds (some cross, most do not), as
//! when one rule per sensor type or station is generated from a table.
//! Rules that read the same series share one DataFusion computation per
//! window; what remains per rule is grading every group.

use std::time::Instant;

use serde::Serialize;
use yujing_ingest::{AreaLevel, Reading};
use yujing_rules::{Aggregate, Direction, Grade, Rule, RuleSet, WindowSpec};

use super::registry;
use crate::pipeline::PipelineError;
use yujing_engine::{Engine, EngineSettings};

#[derive(Debug, Serialize)]
pub struct RulesResult {
    pub rules: usize,
    pub groups: usize,
    pub windows: u64,
    /// Rule × group gradings.
    pub evaluations: u64,
    pub transitions: u64,
    /// Time closing windows: aggregating and grading.
    pub seconds: f64,
    pub evaluations_per_second: f64,
    /// Process CPU time over the same span (user + system), from
    /// /proc/self/stat; 0 where unavailable.
    pub cpu_seconds: f64,
}

/// Process CPU seconds so far (Linux, 100 Hz clock ticks).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line: 11 and 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

pub async fn rules(
    rules: usize,
    sensors: usize,
    windows: i64,
) -> Result<RulesResult, PipelineError> {
    let set = RuleSet {
        paths: Vec::new(),
        rules: (0..rules)
            .map(|i| {
                // Blue from 80 to 180: a few rules cross on most windows.
                let blue = 80.0 + (i % 101) as f64;
                Rule::threshold_rule(
                    &format!("r{i:05}"),
                    "pm25",
                    WindowSpec::tumbling(60_000),
                    Aggregate::Avg,
                    AreaLevel::Sensor,
                    Direction::Above,
                    &[(Grade::Blue, blue), (Grade::Red, blue + 100.0)],
                )
            })
            .collect(),
    };
    let settings = EngineSettings {
        allowed_delay: std::time::Duration::ZERO,
        idle_timeout: None,
        max_age: None,
        ..EngineSettings::default()
    };
    let mut engine = Engine::new(&set, registry(sensors), &settings);
    let ids: Vec<String> = (0..sensors).map(|i| format!("s{i:06}")).collect();
    let t0: i64 = 1_784_073_600_000;
    let (mut seconds, mut cpu, mut transitions, mut closed) = (0.0, 0.0, 0u64, 0u64);
    for minute in 0..=windows {
        // Six readings per sensor per minute. Each sensor sits at its own
        // level (60 to 209) and wobbles by up to 2 from minute to minute, so
        // every window a few rules near a sensor's level change grade.
        let mut batch = Vec::with_capacity(sensors * 6);
        for (s, id) in ids.iter().enumerate() {
            for k in 0..6 {
                let value = 60.0 + ((s * 7) % 150) as f64 + (minute % 3) as f64;
                batch.push(Reading {
                    sensor_id: id.clone(),
                    ts_ms: t0 + minute * 60_000 + k * 10_000,
                    metric: "pm25".into(),
                    value,
                });
            }
        }
        let now = t0 + minute * 60_000 + 59_000;
        engine
            .place("bench", 0, &batch, now)
            .map_err(|e| PipelineError::Invalid(e.to_string()))?;
        let (wall, cpu0) = (Instant::now(), cpu_seconds());
        if let Some(c) = engine.close_ready(now).await? {
            closed += c.windows.len() as u64;
            transitions += c.transitions.len() as u64;
        }
        seconds += wall.elapsed().as_secs_f64();
        cpu += cpu_seconds() - cpu0;
    }
    let evaluations = closed * (rules * sensors) as u64;
    Ok(RulesResult {
        rules,
        groups: sensors,
        windows: closed,
        evaluations,
        transitions,
        seconds,
        evaluations_per_second: evaluations as f64 / seconds.max(1e-9),
        cpu_seconds: cpu,
    })
}
