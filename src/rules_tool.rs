//! `yujing rules check` and `yujing rules test`: the tools ops teams run
//! before a rules change goes live.
//!
//! A test file (see `docs/rules-guide.md`) names rule files, gives input
//! series in the compact notation of `promtool test rules` and lists the
//! warning transitions expected. The series run through the same
//! [`Engine`] as `yujing run`, in event time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use yujing_ingest::{Measurements, Reading, Sensor, SensorRegistry};
use yujing_rules::series::parse_series;
use yujing_rules::{RuleSet, yaml_error_position};
use yujing_sinks::{AlertMessage, TimeFormat};

use yujing_engine::Engine;
use yujing_engine::{EngineSettings, TimeZone};

/// `yujing rules check`: every problem of every file, then a verdict; a
/// rule written per language must cover every one of `languages`.
/// Returns whether the files are valid.
pub fn check(
    files: &[PathBuf],
    measurements: Option<&Path>,
    languages: &[String],
    out: &mut String,
) -> bool {
    let known = match measurements.map(Measurements::load).transpose() {
        Ok(m) => m.map(|m| m.names()),
        Err(e) => {
            let _ = writeln!(out, "{e}");
            return false;
        }
    };
    match RuleSet::load_checked(files, known.as_deref(), languages) {
        Ok(set) => {
            let _ = writeln!(
                out,
                "ok: {} rules in {} file(s)",
                set.rules.len(),
                set.paths.len()
            );
            true
        }
        Err(e) => {
            let n = e.problems().len().max(1);
            let _ = writeln!(out, "{e}");
            let _ = writeln!(out, "{n} problem(s); nothing was changed");
            false
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    /// Rules files or directories, relative to the test file.
    rule_files: Vec<PathBuf>,
    /// Sensor registry (CSV or YAML), relative to the test file. Without
    /// it, each series' sensor is its own grid `<sensor>-grid` in street
    /// `test-street` of district `test`.
    #[serde(default)]
    sensors: Option<PathBuf>,
    /// Time of the first sample, RFC 3339; default 2026-01-01T00:00+08:00.
    #[serde(default)]
    start: Option<String>,
    /// Local time for window alignment, as in the pipeline config.
    #[serde(default)]
    time_zone: TimeZone,
    tests: Vec<TestCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    name: String,
    /// Time between samples.
    interval: String,
    series: Vec<Series>,
    /// Compare only the transitions of these rules; default: all rules.
    #[serde(default)]
    rules: Vec<String>,
    /// How long to run after the start; default: the series plus the
    /// longest window.
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    expect: Vec<Expected>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Series {
    sensor: String,
    metric: String,
    values: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Expected {
    /// Window end of the transition, as time after `start` (e.g. `1h`).
    at: String,
    rule: String,
    /// Group key; any group when left out.
    #[serde(default)]
    group: Option<String>,
    transition: String,
    /// Grade after the transition; left out for `resolved`.
    #[serde(default)]
    grade: Option<String>,
    /// Resolve reason (`cleared`, `no_data`).
    #[serde(default)]
    reason: Option<String>,
    /// Labels that must be on the alert (others may be too).
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Outcome of one test file.
pub struct TestReport {
    pub passed: usize,
    pub failed: usize,
    pub text: String,
}

/// `yujing rules test FILE`: run every test case of a file.
pub async fn test_file(path: &Path) -> Result<TestReport, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: TestFile = serde_yaml_ng::from_str(&text).map_err(|e| {
        let (line, column, message) = yaml_error_position(&e);
        format!("{}:{line}:{column}: {message}", path.display())
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let rule_paths: Vec<PathBuf> = file.rule_files.iter().map(|p| base.join(p)).collect();
    let rules = RuleSet::load_all(&rule_paths).map_err(|e| e.to_string())?;
    let start_ms = match &file.start {
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|e| format!("{}: start {s:?}: {e}", path.display()))?
            .timestamp_millis(),
        None => 1_767_196_800_000, // 2026-01-01T00:00:00+08:00
    };
    let config = EngineSettings {
        allowed_delay: Duration::ZERO,
        idle_timeout: Some(Duration::from_millis(1)),
        max_age: None,
        max_future_skew: Duration::from_secs(3600),
        time_zone: file.time_zone.clone(),
        ..EngineSettings::default()
    };
    let times = TimeFormat::new(config.time_zone.utc_offset_ms());
    let mut report = TestReport {
        passed: 0,
        failed: 0,
        text: String::new(),
    };
    for case in &file.tests {
        let registry = match &file.sensors {
            Some(p) => SensorRegistry::load(&base.join(p)).map_err(|e| e.to_string())?,
            None => synthetic_registry(&case.series)?,
        };
        let outcome = run_case(case, &rules, registry, &config, start_ms, times).await;
        match outcome {
            Ok(()) => {
                report.passed += 1;
                let _ = writeln!(report.text, "  ok    {}", case.name);
            }
            Err(why) => {
                report.failed += 1;
                let _ = writeln!(report.text, "  FAIL  {}\n{why}", case.name);
            }
        }
    }
    Ok(report)
}

fn synthetic_registry(series: &[Series]) -> Result<SensorRegistry, String> {
    let mut sensors: Vec<Sensor> = Vec::new();
    for s in series {
        if sensors.iter().any(|x| x.sensor_id == s.sensor) {
            continue;
        }
        sensors.push(Sensor {
            sensor_id: s.sensor.clone(),
            kind: "test".into(),
            district: "test".into(),
            district_code: "000000".into(),
            street: "test-street".into(),
            grid: format!("{}-grid", s.sensor),
            lat: 29.56,
            lon: 106.55,
            names: Default::default(),
        });
    }
    SensorRegistry::new(sensors).map_err(|e| e.to_string())
}

fn duration_ms(what: &str, text: &str) -> Result<i64, String> {
    humantime::parse_duration(text)
        .map(|d| d.as_millis() as i64)
        .map_err(|e| format!("{what} {text:?}: {e}"))
}

/// One line per transition, the way expectations are written.
fn describe(e: &Expected) -> String {
    let mut s = format!(
        "at {} {} {} {}",
        e.at,
        e.rule,
        e.group.as_deref().unwrap_or("*"),
        e.transition
    );
    if let Some(g) = &e.grade {
        let _ = write!(s, " {g}");
    }
    if let Some(r) = &e.reason {
        let _ = write!(s, " ({r})");
    }
    if !e.labels.is_empty() {
        let _ = write!(s, " {:?}", e.labels);
    }
    s
}

async fn run_case(
    case: &TestCase,
    rules: &RuleSet,
    registry: SensorRegistry,
    config: &EngineSettings,
    start_ms: i64,
    times: TimeFormat,
) -> Result<(), String> {
    let interval = duration_ms("interval", &case.interval)?;
    if interval <= 0 {
        return Err("    interval must be more than 0".into());
    }
    let mut samples: BTreeMap<i64, Vec<Reading>> = BTreeMap::new();
    let mut steps = 0;
    for s in &case.series {
        let values =
            parse_series(&s.values).map_err(|e| format!("    series {}: {e}", s.sensor))?;
        steps = steps.max(values.len() as i64);
        for (k, v) in values.into_iter().enumerate() {
            if let Some(value) = v {
                let ts_ms = start_ms + k as i64 * interval;
                samples.entry(ts_ms).or_default().push(Reading {
                    sensor_id: s.sensor.clone(),
                    ts_ms,
                    metric: s.metric.clone(),
                    value,
                });
            }
        }
    }
    let longest = rules
        .rules
        .iter()
        .map(|r| r.window.size_ms)
        .max()
        .unwrap_or(0);
    let until = match &case.until {
        Some(u) => start_ms + duration_ms("until", u)?,
        None => start_ms + steps * interval + longest,
    };
    let mut engine = Engine::new(rules, registry.clone(), config);
    let mut got = Vec::new();
    let mut labels = Vec::new();
    let mut now = start_ms;
    while now <= until {
        if let Some(readings) = samples.get(&now) {
            engine
                .place("test", 0, readings, now)
                .map_err(|e| format!("    reading refused: {e}"))?;
        }
        if let Some(closed) = engine
            .close_ready(now + 1)
            .await
            .map_err(|e| e.to_string())?
        {
            for t in closed.transitions {
                if !case.rules.is_empty() && !case.rules.contains(&t.rule.id) {
                    continue;
                }
                let alert = AlertMessage::new(&t, &registry, times, now);
                got.push(Expected {
                    at: yujing_rules::model::format_ms(t.window_end_ms - start_ms),
                    rule: t.rule.id.clone(),
                    group: Some(t.group_key.clone()),
                    transition: t.transition.as_str().to_owned(),
                    grade: t.grade.map(|g| g.as_str().to_owned()),
                    reason: t.resolve_reason.map(|r| r.as_str().to_owned()),
                    labels: BTreeMap::new(),
                });
                labels.push(alert.labels);
            }
        }
        now += interval;
    }
    let matches = |e: &Expected, g: &Expected, l: &BTreeMap<String, String>| {
        let at_ok = duration_ms("at", &e.at).ok() == duration_ms("at", &g.at).ok();
        at_ok
            && e.rule == g.rule
            && e.group.as_ref().is_none_or(|x| Some(x) == g.group.as_ref())
            && e.transition == g.transition
            && e.grade == g.grade
            && e.reason
                .as_ref()
                .is_none_or(|r| Some(r) == g.reason.as_ref())
            && e.labels.iter().all(|(k, v)| l.get(k) == Some(v))
    };
    let ok = got.len() == case.expect.len()
        && case
            .expect
            .iter()
            .zip(got.iter().zip(&labels))
            .all(|(e, (g, l))| matches(e, g, l));
    if ok {
        return Ok(());
    }
    let mut why = String::from("    expected:\n");
    for e in &case.expect {
        let _ = writeln!(why, "      {}", describe(e));
    }
    why.push_str("    got:\n");
    for (g, l) in got.iter().zip(&labels) {
        let mut g = g.clone();
        g.labels = l.clone();
        let _ = writeln!(why, "      {}", describe(&g));
    }
    if got.is_empty() {
        why.push_str("      (no transitions)\n");
    }
    Err(why)
}
