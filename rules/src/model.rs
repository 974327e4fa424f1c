//! What a validated rule says. The YAML that ops teams write, and how it
//! is checked, lives in [`crate::load`]; this module is the result.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use yujing_ingest::{AreaLevel, SessionSpec};

use crate::grade::{Direction, Grade};
use crate::language::{GradedText, Phrase};

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
    pub fn tumbling(size_ms: i64) -> Self {
        WindowSpec {
            size_ms,
            slide_ms: size_ms,
        }
    }

    /// `1h` for tumbling, `24h/1h` for hopping: for logs and metric labels.
    pub fn label(&self) -> String {
        if self.size_ms == self.slide_ms {
            format_ms(self.size_ms)
        } else {
            format!("{}/{}", format_ms(self.size_ms), format_ms(self.slide_ms))
        }
    }
}

/// `90000` → `1m 30s`, for messages.
pub fn format_ms(ms: i64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms.max(0) as u64)).to_string()
}

/// What a warning is about, for subscribers' routing and CAP `<category>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Air, water, noise: the environment itself.
    #[default]
    Env,
    /// Weather.
    Met,
    /// Drains, roads and other infrastructure.
    Infra,
    /// The measurements: silent, stuck or implausible sensors. Kept apart
    /// so a broken sensor is never mistaken for a clean sky.
    Data,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Env => "env",
            Category::Met => "met",
            Category::Infra => "infra",
            Category::Data => "data",
        }
    }
}

/// A data-quality check: the rule grades a sensor's *measurements*, not the
/// environment. Values, per sensor and window:
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quality {
    /// Minutes since the sensor's last reading of the metric (sensors
    /// that have reported since the pipeline started).
    Silent,
    /// 1 when the sensor's readings did not vary at all (at least three)
    /// while another sensor of its grid did vary; else 0.
    Stuck,
    /// How far the window's readings went beyond `[low, high]` (0 inside).
    OutOfRange { low: f64, high: f64 },
    /// |the sensor's mean − the median of its grid's sensor means (itself
    /// included)|, for grids with at least three reporting sensors.
    Outlier,
    /// 1 when the sensor's readings over the window (at least three) spread
    /// by no more than `tolerance` (its resolution: 0 for an exact flat
    /// line); else 0. Needs no neighbours: for a sensor alone.
    FlatLine { tolerance: f64 },
}

impl Quality {
    pub fn as_str(&self) -> &'static str {
        match self {
            Quality::Silent => "silent",
            Quality::Stuck => "stuck",
            Quality::OutOfRange { .. } => "out_of_range",
            Quality::Outlier => "outlier",
            Quality::FlatLine { .. } => "flat_line",
        }
    }
}

/// One grade of a rule: when it is entered and when it is left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    pub grade: Grade,
    /// Crossing this (strictly, in the rule's direction) enters the grade.
    pub threshold: f64,
    /// The grade is kept while the value still crosses this; equal to
    /// `threshold` without hysteresis, less extreme with it.
    pub clear: f64,
    /// How long the threshold must be crossed before the grade is entered.
    pub pending_ms: i64,
}

/// How many sensors of an area must agree before the area warns.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Quorum {
    /// At least this many sensors must cross the grade's threshold.
    pub min_sensors: u32,
    /// At least this fraction (0–1) of the sensors that reported in the
    /// window must cross it.
    pub min_fraction: f64,
}

impl Quorum {
    pub fn is_set(&self) -> bool {
        self.min_sensors > 1 || self.min_fraction > 0.0
    }

    /// Whether `agreeing` of `reporting` sensors are enough.
    pub fn met(&self, agreeing: i64, reporting: i64) -> bool {
        agreeing >= i64::from(self.min_sensors.max(1))
            && agreeing as f64 >= self.min_fraction * reporting as f64 - 1e-9
    }
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    /// Name of the rule group it was written in (`""` for top-level rules).
    pub group: String,
    pub description: String,
    pub category: Category,
    pub metric: String,
    pub unit: String,
    /// Tumbling or hopping windows; for session rules, `size` and `slide`
    /// are the session's `max` (unused).
    pub window: WindowSpec,
    /// Session windows (`window: {gap, max}`) instead of fixed ones.
    pub session: Option<SessionSpec>,
    pub aggregate: Aggregate,
    pub group_by: AreaLevel,
    pub direction: Direction,
    /// Grades present, ordered blue → red.
    pub levels: Vec<Level>,
    /// Windows in a row without data that neither reset a pending grade
    /// nor count towards resolving.
    pub tolerate_missing: u32,
    /// An active warning resolves only after no grade has held this long.
    pub keep_firing_for_ms: i64,
    /// A warning steps down a grade only this long after its last change.
    pub de_escalate_after_ms: i64,
    /// Grade the value the window's linear trend reaches this far past the
    /// window's end, instead of the aggregate.
    pub predict_horizon_ms: Option<i64>,
    /// For area rules: how many sensors must agree.
    pub quorum: Quorum,
    /// For data-quality rules: the check whose value is graded.
    pub quality: Option<Quality>,
    /// For SQL rules: a DataFusion query over the closed window's table
    /// `window`, returning `group_key` and `value` (and optionally
    /// `readings`, `sensors`). `metric` and `metrics` name what it reads.
    pub sql: Option<String>,
    /// More metrics a SQL rule reads, besides `metric`.
    pub metrics: Vec<String>,
    /// Copied onto every alert, after template expansion.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Lateness for this rule's windows; `None` uses the pipeline's.
    pub allowed_lateness_ms: Option<i64>,
    /// Graded by deviation from the group's own past instead of fixed
    /// values: the levels are then deviation multiples.
    pub baseline: Option<crate::baseline::Baseline>,
    /// `description` per language, when given as a map.
    pub descriptions: BTreeMap<String, String>,
    /// `text:` per language: what people read (see [`crate::language`]).
    pub texts: BTreeMap<String, RuleText>,
    /// `tune:`: the search space of `yujing tune` (unused by the engine).
    pub tune: Vec<crate::tune::TuneParam>,
}

/// What a rule says to people in one language; what it leaves out comes
/// from the language's defaults.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleText {
    #[serde(default)]
    pub headline: Phrase,
    /// CAP `<description>`: what happened, with the numbers.
    #[serde(default)]
    pub summary: Phrase,
    /// What people should do, by grade.
    #[serde(default)]
    pub instruction: GradedText,
}

impl Rule {
    /// A plain threshold rule with every option at its default, for code
    /// that builds rules rather than loading them.
    pub fn threshold_rule(
        id: &str,
        metric: &str,
        window: WindowSpec,
        aggregate: Aggregate,
        group_by: AreaLevel,
        direction: Direction,
        thresholds: &[(Grade, f64)],
    ) -> Rule {
        Rule {
            id: id.to_owned(),
            group: String::new(),
            description: String::new(),
            category: Category::Env,
            metric: metric.to_owned(),
            unit: String::new(),
            window,
            session: None,
            aggregate,
            group_by,
            direction,
            levels: thresholds
                .iter()
                .map(|&(grade, threshold)| Level {
                    grade,
                    threshold,
                    clear: threshold,
                    pending_ms: 0,
                })
                .collect(),
            tolerate_missing: DEFAULT_TOLERATE_MISSING,
            keep_firing_for_ms: 0,
            de_escalate_after_ms: 0,
            predict_horizon_ms: None,
            quorum: Quorum::default(),
            quality: None,
            sql: None,
            metrics: Vec::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            baseline: None,
            allowed_lateness_ms: None,
            descriptions: BTreeMap::new(),
            texts: BTreeMap::new(),
            tune: Vec::new(),
        }
    }

    /// What the graded value is, in one word: the aggregate, `forecast`
    /// for `predict` rules, or the data-quality check.
    pub fn measure(&self) -> &'static str {
        if self.is_aqi() {
            return "aqi";
        }
        if self.sql.is_some() {
            return "sql";
        }
        match (&self.quality, self.predict_horizon_ms) {
            (Some(q), _) => q.as_str(),
            (None, Some(_)) => "forecast",
            (None, None) => self.aggregate.as_str(),
        }
    }

    /// Whether the rule grades China's hourly AQI (`metric: aqi`).
    pub fn is_aqi(&self) -> bool {
        self.metric == AQI_METRIC
    }

    /// Metrics whose readings the rule's own window needs.
    pub fn input_metrics(&self) -> Vec<&str> {
        if self.is_aqi() {
            crate::aqi::HOURLY_ITEMS
                .iter()
                .filter(|(_, avg, _)| *avg == "1h")
                .map(|(m, _, _)| *m)
                .collect()
        } else {
            std::iter::once(self.metric.as_str())
                .chain(self.metrics.iter().map(String::as_str))
                .collect()
        }
    }

    pub fn level(&self, grade: Grade) -> Option<&Level> {
        self.levels.iter().find(|l| l.grade == grade)
    }

    pub fn threshold(&self, grade: Grade) -> Option<f64> {
        self.level(grade).map(|l| l.threshold)
    }

    /// Thresholds present, blue → red.
    pub fn thresholds(&self) -> Vec<(Grade, f64)> {
        self.levels.iter().map(|l| (l.grade, l.threshold)).collect()
    }

    /// Whether a change to this rule must restart its warnings: anything
    /// that changes what a group *is* or what its value *means*. Thresholds,
    /// timers, labels and text may change under a running warning.
    pub fn same_series(&self, other: &Rule) -> bool {
        self.id == other.id
            && self.metric == other.metric
            && self.window == other.window
            && self.session == other.session
            && self.aggregate == other.aggregate
            && self.group_by == other.group_by
            && self.direction == other.direction
            && self.predict_horizon_ms == other.predict_horizon_ms
            && self.quality == other.quality
            && self.sql == other.sql
    }
}

/// The derived metric name of China's hourly AQI.
pub const AQI_METRIC: &str = "aqi";

/// One missing window does not reset `for` or resolve a warning.
pub const DEFAULT_TOLERATE_MISSING: u32 = 1;

/// All rules, from one or more files.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleSet {
    /// The files they came from, in load order.
    pub paths: Vec<PathBuf>,
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// Distinct metric names the rules read from readings (an AQI rule
    /// reads every pollutant).
    pub fn metrics(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.rules {
            let names: Vec<&str> = if r.is_aqi() {
                crate::aqi::POLLUTANTS.to_vec()
            } else {
                r.input_metrics()
            };
            for m in names {
                if !out.iter().any(|o| o == m) {
                    out.push(m.to_owned());
                }
            }
        }
        out
    }

    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }
}
