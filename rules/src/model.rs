//! The rules file, as ops teams write it.
//!
//! ```yaml
//! rules:
//!   - id: pm25-1h
//!     description: PM2.5 hourly mean, HJ 633-2012 bands
//!     metric: pm25
//!     unit: ug/m3
//!     window: 1h            # tumbling; hopping: {size: 24h, slide: 1h}
//!     aggregate: avg        # avg min max sum count stddev first last rate slope p50 p90 p95 p99
//!     group_by: grid        # sensor | grid | street | district
//!     above: { blue: 75, yellow: 115, orange: 150, red: 250 }
//! ```
//!
//! `below:` instead of `above:` warns when a value falls (e.g. dissolved
//! oxygen). Any grade may be left out; those given must be strictly ordered.
//! Unknown keys are refused, and every error names `file:line:column`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use yujing_ingest::AreaLevel;

use crate::error::RulesError;
use crate::grade::{Direction, Grade};

/// Window aggregate a rule grades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    Avg,
    Min,
    Max,
    Sum,
    Count,
    /// Sample standard deviation.
    Stddev,
    /// Value of the earliest reading (by event time).
    First,
    /// Value of the latest reading (by event time).
    Last,
    /// (last − first) / time between them, per hour.
    Rate,
    /// Least-squares slope of value over event time, per hour.
    Slope,
    /// Percentiles, from mergeable sketches (1 % relative accuracy).
    P50,
    P90,
    P95,
    P99,
}

impl Aggregate {
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Avg => "avg",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::Sum => "sum",
            Aggregate::Count => "count",
            Aggregate::Stddev => "stddev",
            Aggregate::First => "first",
            Aggregate::Last => "last",
            Aggregate::Rate => "rate",
            Aggregate::Slope => "slope",
            Aggregate::P50 => "p50",
            Aggregate::P90 => "p90",
            Aggregate::P95 => "p95",
            Aggregate::P99 => "p99",
        }
    }

    /// The percent of a percentile aggregate.
    pub fn percentile(self) -> Option<u32> {
        match self {
            Aggregate::P50 => Some(50),
            Aggregate::P90 => Some(90),
            Aggregate::P95 => Some(95),
            Aggregate::P99 => Some(99),
            _ => None,
        }
    }
}

/// A rule's windows: tumbling (`slide == size`) or hopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowSpec {
    pub size_ms: i64,
    pub slide_ms: i64,
}

impl WindowSpec {
    /// `1h` for tumbling, `24h/1h` for hopping: for logs and metric labels.
    pub fn label(&self) -> String {
        let d = |ms: i64| {
            humantime::format_duration(std::time::Duration::from_millis(ms as u64)).to_string()
        };
        if self.size_ms == self.slide_ms {
            d(self.size_ms)
        } else {
            format!("{}/{}", d(self.size_ms), d(self.slide_ms))
        }
    }
}

/// `window: 1h` or `window: {size: 24h, slide: 1h}` as written.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WindowText {
    Tumbling(String),
    Keys(BTreeMap<String, String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: String,
    #[serde(default)]
    description: String,
    metric: String,
    #[serde(default)]
    unit: String,
    window: WindowText,
    #[serde(default = "default_aggregate")]
    aggregate: Aggregate,
    #[serde(default = "default_group_by")]
    group_by: AreaLevel,
    above: Option<ThresholdSpec>,
    below: Option<ThresholdSpec>,
    /// Overrides `pipeline.allowed_lateness` for this rule.
    allowed_lateness: Option<String>,
}

fn default_aggregate() -> Aggregate {
    Aggregate::Avg
}

fn default_group_by() -> AreaLevel {
    AreaLevel::Sensor
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdSpec {
    blue: Option<f64>,
    yellow: Option<f64>,
    orange: Option<f64>,
    red: Option<f64>,
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub description: String,
    pub metric: String,
    pub unit: String,
    pub window: WindowSpec,
    pub aggregate: Aggregate,
    pub group_by: AreaLevel,
    pub direction: Direction,
    /// Thresholds present, ordered blue → red.
    pub thresholds: Vec<(Grade, f64)>,
    /// Lateness for this rule's windows; `None` uses the pipeline's.
    pub allowed_lateness_ms: Option<i64>,
}

impl Rule {
    pub fn threshold(&self, grade: Grade) -> Option<f64> {
        self.thresholds
            .iter()
            .find(|(g, _)| *g == grade)
            .map(|(_, t)| *t)
    }
}

/// All rules of one file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleSet {
    pub path: PathBuf,
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// Read and validate a rules file.
    pub fn load(path: &Path) -> Result<Self, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validate rules text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, RulesError> {
        let file: RuleFile = serde_yaml_ng::from_str(text).map_err(|e| {
            let (line, column, message) = yaml_error_position(&e);
            RulesError::Syntax {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        })?;
        let mut seen = HashSet::new();
        let mut rules = Vec::with_capacity(file.rules.len());
        for spec in file.rules {
            let invalid = |key: &str, message: String| {
                let (line, column) = locate(text, &spec.id, key);
                RulesError::Invalid {
                    path: path.to_owned(),
                    line,
                    column,
                    rule: spec.id.clone(),
                    message,
                }
            };
            if !seen.insert(spec.id.clone()) {
                return Err(invalid("id", "id is used by an earlier rule".into()));
            }
            rules.push(validate(&spec).map_err(|(key, msg)| invalid(key, msg))?);
        }
        Ok(RuleSet {
            path: path.to_owned(),
            rules,
        })
    }

    /// Distinct metric names the rules read.
    pub fn metrics(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.rules {
            if !out.contains(&r.metric) {
                out.push(r.metric.clone());
            }
        }
        out
    }
}

/// Line, column (1-based) and message of a YAML error, the message without
/// serde's trailing "at line … column …" (the caller prints `file:line:col`).
pub fn yaml_error_position(e: &serde_yaml_ng::Error) -> (usize, usize, String) {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    let message = e.to_string();
    let message = match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message,
    };
    (line, column, message)
}

fn validate(spec: &RuleSpec) -> Result<Rule, (&'static str, String)> {
    let id_ok = !spec.id.is_empty()
        && spec
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !id_ok {
        return Err((
            "id",
            "id must be non-empty and use only letters, digits, '-', '_' or '.'".into(),
        ));
    }
    if spec.metric.trim().is_empty() {
        return Err(("metric", "metric must not be empty".into()));
    }
    let window = window_spec(&spec.window).map_err(|m| ("window", m))?;
    let allowed_lateness_ms = match &spec.allowed_lateness {
        Some(text) => Some(
            humantime::parse_duration(text)
                .map_err(|e| {
                    (
                        "allowed_lateness",
                        format!("allowed_lateness {text:?}: {e} (write e.g. 2m)"),
                    )
                })?
                .as_millis() as i64,
        ),
        None => None,
    };
    let (direction, spec_t, key) = match (&spec.above, &spec.below) {
        (Some(t), None) => (Direction::Above, t, "above"),
        (None, Some(t)) => (Direction::Below, t, "below"),
        (Some(_), Some(_)) => {
            return Err(("below", "give either `above` or `below`, not both".into()));
        }
        (None, None) => {
            return Err((
                "id",
                "rule has no thresholds: add `above:` or `below:`".into(),
            ));
        }
    };
    let thresholds: Vec<(Grade, f64)> = [
        (Grade::Blue, spec_t.blue),
        (Grade::Yellow, spec_t.yellow),
        (Grade::Orange, spec_t.orange),
        (Grade::Red, spec_t.red),
    ]
    .into_iter()
    .filter_map(|(g, t)| t.map(|t| (g, t)))
    .collect();
    if thresholds.is_empty() {
        return Err((
            key,
            format!("`{key}` names no grade: give at least one of blue, yellow, orange, red"),
        ));
    }
    if let Some((g, t)) = thresholds.iter().find(|(_, t)| !t.is_finite()) {
        return Err((key, format!("{g} threshold {t} is not a finite number")));
    }
    for pair in thresholds.windows(2) {
        let ((g1, t1), (g2, t2)) = (pair[0], pair[1]);
        let ordered = match direction {
            Direction::Above => t2 > t1,
            Direction::Below => t2 < t1,
        };
        if !ordered {
            let word = if direction == Direction::Above {
                "above"
            } else {
                "below"
            };
            return Err((
                key,
                format!(
                    "{g2} threshold {t2} must be {word} {g1} threshold {t1}: a more serious grade needs a more extreme value"
                ),
            ));
        }
    }
    Ok(Rule {
        id: spec.id.clone(),
        description: spec.description.clone(),
        metric: spec.metric.clone(),
        unit: spec.unit.clone(),
        window,
        aggregate: spec.aggregate,
        group_by: spec.group_by,
        direction,
        thresholds,
        allowed_lateness_ms,
    })
}

fn duration_ms(key: &str, text: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("{key} {text:?}: {e} (write e.g. 10m, 1h, 1d)"))?;
    let ms = d.as_millis() as i64;
    if ms < 1_000 {
        return Err(format!("{key} must be at least 1s"));
    }
    Ok(ms)
}

fn window_spec(text: &WindowText) -> Result<WindowSpec, String> {
    let (size_ms, slide_ms) = match text {
        WindowText::Tumbling(size) => {
            let size = duration_ms("window", size)?;
            (size, size)
        }
        WindowText::Keys(keys) => {
            if keys.contains_key("gap") || keys.contains_key("max") {
                return Err("session windows (gap/max) are not supported yet; use `window: 10m` or `window: {size: 1h, slide: 10m}`".into());
            }
            if let Some(k) = keys
                .keys()
                .find(|k| !["size", "slide"].contains(&k.as_str()))
            {
                return Err(format!(
                    "unknown window key `{k}`, expected `size` and `slide`"
                ));
            }
            let size = keys.get("size").ok_or("window needs a `size`")?;
            let size = duration_ms("window size", size)?;
            let slide = match keys.get("slide") {
                Some(s) => duration_ms("window slide", s)?,
                None => size,
            };
            (size, slide)
        }
    };
    if slide_ms > size_ms || size_ms % slide_ms != 0 {
        return Err(format!(
            "window size must be a whole multiple of its slide (size {size_ms} ms, slide {slide_ms} ms)"
        ));
    }
    Ok(WindowSpec { size_ms, slide_ms })
}

/// Line and column (1-based) of `key:` inside the rule with this id, falling
/// back to the id's line. Serde does not keep positions of values, so the
/// text is searched; rules are short, a linear scan is fine.
fn locate(text: &str, rule_id: &str, key: &str) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let is_id_line = |l: &str| {
        let t = l.trim_start().trim_start_matches("- ").trim_start();
        t.strip_prefix("id:")
            .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'') == rule_id)
            .unwrap_or(false)
    };
    let Some(start) = lines.iter().position(|l| is_id_line(l)) else {
        return (1, 1);
    };
    let id_col = lines[start].find("id:").unwrap_or(0);
    let item_indent = lines[start].len() - lines[start].trim_start().len();
    for (i, line) in lines.iter().enumerate().skip(start) {
        let indent = line.len() - line.trim_start().len();
        if i > start && line.trim_start().starts_with("- ") && indent <= item_indent {
            break;
        }
        let body = line.trim_start().trim_start_matches("- ");
        if body.starts_with(&format!("{key}:")) {
            let col = line.find(&format!("{key}:")).unwrap_or(0);
            return (i + 1, col + 1);
        }
    }
    (start + 1, id_col + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RuleSet, RulesError> {
        RuleSet::parse(Path::new("rules.yaml"), text)
    }

    const GOOD: &str = "\
rules:
  - id: pm25-1h
    description: PM2.5 hourly mean
    metric: pm25
    window: 1h
    aggregate: avg
    group_by: grid
    above: { blue: 75, yellow: 115, orange: 150, red: 250 }
  - id: do-low
    metric: do_mgl
    window: 10m
    below: { blue: 5, red: 2 }
";

    #[test]
    fn loads_a_valid_file() {
        let set = parse(GOOD).unwrap();
        assert_eq!(set.rules.len(), 2);
        let pm = &set.rules[0];
        assert_eq!(
            pm.window,
            WindowSpec {
                size_ms: 3_600_000,
                slide_ms: 3_600_000
            }
        );
        assert_eq!(pm.group_by, AreaLevel::Grid);
        assert_eq!(pm.threshold(Grade::Orange), Some(150.0));
        let dox = &set.rules[1];
        assert_eq!(dox.direction, Direction::Below);
        assert_eq!(dox.group_by, AreaLevel::Sensor, "default group");
        assert_eq!(dox.aggregate, Aggregate::Avg, "default aggregate");
        assert_eq!(dox.thresholds, vec![(Grade::Blue, 5.0), (Grade::Red, 2.0)]);
        assert_eq!(set.metrics(), ["pm25", "do_mgl"]);
    }

    #[test]
    fn hopping_windows_and_new_aggregates() {
        let text = GOOD
            .replace("window: 1h", "window: {size: 24h, slide: 1h}")
            .replace("aggregate: avg", "aggregate: slope");
        let set = parse(&text).unwrap();
        let w = set.rules[0].window;
        assert_eq!((w.size_ms, w.slide_ms), (86_400_000, 3_600_000));
        assert_eq!(w.label(), "1day/1h");
        assert_eq!(set.rules[0].aggregate, Aggregate::Slope);
        assert_eq!(set.rules[1].window.label(), "10m");
    }

    #[test]
    fn typo_in_a_key_points_at_its_line() {
        let text = GOOD.replace("aggregate: avg", "agregate: avg");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.starts_with("rules.yaml:6:5: "), "{e}");
        assert!(e.contains("unknown field `agregate`"), "{e}");
    }

    #[test]
    fn unknown_grade_and_bad_yaml() {
        let e = parse(&GOOD.replace("red: 250", "purple: 250"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("rules.yaml:8:") && e.contains("purple"), "{e}");
        let e = parse("rules:\n  - id: x\n   metric: [\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("rules.yaml:"), "{e}");
    }

    #[test]
    fn semantic_errors_name_rule_and_key_position() {
        let e = parse(&GOOD.replace("orange: 150", "orange: 100"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("rules.yaml:8:5: rule \"pm25-1h\": "), "{e}");
        assert!(
            e.contains("orange threshold 100 must be above yellow threshold 115"),
            "{e}"
        );

        let e = parse(&GOOD.replace("window: 10m", "window: ten minutes"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("rules.yaml:11:5: rule \"do-low\": window"),
            "{e}"
        );
        let bad_window = |w: &str| {
            parse(&GOOD.replace("window: 10m", w))
                .unwrap_err()
                .to_string()
        };
        let e = bad_window("window: {size: 1h, slide: 7m}");
        assert!(e.contains("whole multiple of its slide"), "{e}");
        let e = bad_window("window: {size: 1h, step: 10m}");
        assert!(
            e.starts_with("rules.yaml:11:5:") && e.contains("unknown window key `step`"),
            "{e}"
        );
        let e = bad_window("window: {gap: 15m}");
        assert!(e.contains("session windows"), "{e}");

        let e = parse(&GOOD.replace("do-low", "pm25-1h"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("rules.yaml:2:") && e.contains("earlier rule"),
            "{e}"
        );

        let e = parse("rules:\n  - id: a\n    metric: m\n    window: 1h\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no thresholds"), "{e}");
        let e = parse("rules:\n  - id: a\n    metric: m\n    window: 1h\n    above: {}\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("rules.yaml:5:5:") && e.contains("names no grade"),
            "{e}"
        );
    }
}
