//! The alert message: what subscribers of the alert topic receive.
//!
//! One message per transition of a warning, JSON, key = fingerprint. The
//! field list and meaning are documented in `docs/alert-message.md`; the
//! `schema` field names the version (`yujing.alert/v1`), and fields are only
//! ever added within a version.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, TimeZone};
use serde::{Deserialize, Serialize};
use yujing_ingest::SensorRegistry;
use yujing_rules::{Languages, WarningTransition, template};

use crate::texts::AlertText;

/// Version tag carried by every message.
pub const SCHEMA: &str = "yujing.alert/v1";

/// How timestamps are written: RFC 3339 in a fixed local offset.
#[derive(Debug, Clone, Copy)]
pub struct TimeFormat {
    offset: FixedOffset,
}

impl TimeFormat {
    /// `utc_offset_ms` east of UTC, e.g. 8 h for Beijing time.
    pub fn new(utc_offset_ms: i64) -> Self {
        let offset = FixedOffset::east_opt((utc_offset_ms / 1000) as i32)
            .unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC"));
        TimeFormat { offset }
    }

    pub fn datetime(&self, ms: i64) -> DateTime<FixedOffset> {
        self.offset
            .timestamp_millis_opt(ms)
            .single()
            .unwrap_or_else(|| self.offset.timestamp_millis_opt(0).single().expect("epoch"))
    }

    pub fn rfc3339(&self, ms: i64) -> String {
        self.datetime(ms).to_rfc3339()
    }

    /// The local offset, e.g. to read naive local times.
    pub fn offset(&self) -> FixedOffset {
        self.offset
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    pub id: String,
    pub description: String,
    pub metric: String,
    pub aggregate: String,
    pub unit: String,
    pub window_seconds: i64,
    /// Time between window starts; equals `window_seconds` for tumbling windows.
    pub slide_seconds: i64,
    /// `env`, `met`, `infra` or `data` (sensor faults, graded apart).
    #[serde(default = "default_category")]
    pub category: String,
    /// The rule group it belongs to; empty for rules outside any group.
    #[serde(default)]
    pub group: String,
    /// For session-window rules: the quiet time that ends a session
    /// (`window_seconds` is then the longest a session may last).
    #[serde(default)]
    pub session_gap_seconds: Option<i64>,
}

fn default_category() -> String {
    "env".to_owned()
}

/// The trend of a `predict` rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertTrend {
    /// The least-squares line through the window's readings at its end.
    pub value_now: f64,
    /// Its slope, in the rule's unit per hour.
    pub per_hour: f64,
    /// How far ahead `value` is predicted.
    pub horizon_seconds: i64,
    /// When the line crosses `threshold` (the window's end if it already
    /// has); null when it heads away from it.
    pub expected_crossing_at: Option<String>,
}

/// What a baseline rule's `value` (a deviation) was measured from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertBaseline {
    /// The window's aggregate, in the rule's unit.
    pub observed: f64,
    /// The group's usual value: the median of its past windows.
    pub expected: f64,
    /// The spread `value` counts in (1.4826 × MAD of the past windows).
    pub spread: f64,
}

/// On a storm-control `summary`: the warnings it stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertStorm {
    /// Transitions held back and summarised here.
    pub held_back: u64,
    /// What the groups are (`grid`, `sensor`, …).
    pub groups_by: String,
    /// Their keys, sorted (the first 50).
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertGroup {
    /// `sensor`, `grid`, `street` or `district`.
    pub by: String,
    pub key: String,
    pub district: Option<String>,
    pub district_code: Option<String>,
    pub street: Option<String>,
    pub grid: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub radius_km: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertWindow {
    pub start: String,
    pub end: String,
}

/// One alert message (`yujing.alert/v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertMessage {
    pub schema: String,
    pub warning_id: String,
    pub fingerprint: String,
    pub sequence: u32,
    /// `raised`, `escalated`, `de-escalated` or `resolved`; `summary`
    /// for storm control's stand-in for many warnings.
    pub transition: String,
    /// Grade after the transition; null when resolved.
    pub grade: Option<String>,
    /// `IV`..`I`; null when resolved.
    pub level: Option<String>,
    /// CAP severity `Minor`..`Extreme`; null when resolved.
    pub severity: Option<String>,
    pub previous_grade: Option<String>,
    pub rule: AlertRule,
    pub group: AlertGroup,
    pub window: AlertWindow,
    /// The window aggregate; null when resolved for lack of data.
    pub value: Option<f64>,
    /// Threshold of `grade` (of `previous_grade` when resolved).
    pub threshold: Option<f64>,
    /// `above` or `below`.
    pub direction: String,
    pub readings: i64,
    pub sensors: i64,
    pub started_at: String,
    /// Event time of the transition: the end of the window that caused it.
    pub event_time: String,
    /// Wall-clock time the message was built.
    pub emitted_at: String,
    /// `cleared` or `no_data` when resolved, else null.
    pub resolve_reason: Option<String>,
    /// True when the window was re-emitted after late readings (within the
    /// allowed lateness) changed it.
    #[serde(default)]
    pub correction: bool,
    /// Set for `predict` rules: `value` is then the predicted value.
    #[serde(default)]
    pub trend: Option<AlertTrend>,
    /// For AQI rules: the pollutant with the highest IAQI (AQI > 50).
    #[serde(default)]
    pub primary_pollutant: Option<String>,
    /// For baseline rules (`value` is then a deviation in spreads): the
    /// observed aggregate and the baseline it was compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<AlertBaseline>,
    /// On `summary` messages (storm control): what was held back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm: Option<AlertStorm>,
    /// The rule's labels, templates expanded: route on these.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The rule's annotations, templates expanded.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// One line for people: the rule's `summary` annotation if it has one
    /// (English; `texts` has each language's).
    pub summary: String,
    /// Event time of this warning's previous message (its CAP update
    /// references it); null for `raised`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_event_time: Option<String>,
    /// What the warning says to people, per language the deployment
    /// writes (`zh-CN`, `en`, …): event, area, signal, headline, summary,
    /// instruction.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub texts: BTreeMap<String, AlertText>,
}

impl AlertMessage {
    pub fn new(
        t: &WarningTransition,
        registry: &SensorRegistry,
        times: TimeFormat,
        emitted_at_ms: i64,
    ) -> Self {
        let area = registry.area(t.rule.group_by, &t.group_key);
        let group = AlertGroup {
            by: t.rule.group_by.as_str().to_owned(),
            key: t.group_key.clone(),
            district: area.map(|a| a.district.clone()),
            district_code: area.map(|a| a.district_code.clone()),
            street: area.and_then(|a| a.street.clone()),
            grid: area.and_then(|a| a.grid.clone()),
            lat: area.map(|a| a.lat),
            lon: area.map(|a| a.lon),
            radius_km: area.map(|a| (a.radius_km * 1000.0).round() / 1000.0),
        };
        let mut message = AlertMessage {
            schema: SCHEMA.to_owned(),
            warning_id: t.warning_id.clone(),
            fingerprint: t.fingerprint.clone(),
            sequence: t.sequence,
            transition: t.transition.as_str().to_owned(),
            grade: t.grade.map(|g| g.as_str().to_owned()),
            level: t.grade.map(|g| g.level().to_owned()),
            severity: t.grade.map(|g| g.cap_severity().to_owned()),
            previous_grade: t.previous_grade.map(|g| g.as_str().to_owned()),
            rule: AlertRule {
                id: t.rule.id.clone(),
                description: t.rule.description.clone(),
                metric: t.rule.metric.clone(),
                aggregate: t.rule.measure().to_owned(),
                unit: t.rule.unit.clone(),
                window_seconds: t.rule.window.size_ms / 1000,
                slide_seconds: t.rule.window.slide_ms / 1000,
                category: t.rule.category.as_str().to_owned(),
                group: t.rule.group.clone(),
                session_gap_seconds: t.rule.session.map(|s| s.gap_ms / 1000),
            },
            window: AlertWindow {
                start: times.rfc3339(t.window_start_ms),
                end: times.rfc3339(t.window_end_ms),
            },
            value: t.value,
            threshold: t.threshold,
            direction: match t.direction() {
                yujing_rules::Direction::Above => "above".to_owned(),
                yujing_rules::Direction::Below => "below".to_owned(),
            },
            readings: t.readings,
            sensors: t.sensors,
            started_at: times.rfc3339(t.started_at_ms),
            event_time: times.rfc3339(t.window_end_ms),
            emitted_at: times.rfc3339(emitted_at_ms),
            resolve_reason: t.resolve_reason.map(|r| r.as_str().to_owned()),
            summary: String::new(),
            correction: t.correction,
            trend: t.trend.map(|trend| AlertTrend {
                value_now: trend.now,
                per_hour: trend.per_hour,
                horizon_seconds: t.rule.predict_horizon_ms.unwrap_or(0) / 1000,
                expected_crossing_at: t.expected_crossing_ms.map(|ms| times.rfc3339(ms)),
            }),
            primary_pollutant: t.primary_pollutant.clone(),
            baseline: t.deviation.map(|d| AlertBaseline {
                observed: d.observed,
                expected: d.expected,
                spread: d.spread,
            }),
            storm: None,
            previous_event_time: t.previous_at_ms.map(|ms| times.rfc3339(ms)),
            texts: BTreeMap::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            group,
        };
        let lookup = |name: &str| variable(&message, t, name);
        let labels = expand(&t.rule.labels, &lookup);
        let annotations = expand(&t.rule.annotations, &lookup);
        message.labels = labels;
        message.annotations = annotations;
        message.summary = match message.annotations.get("summary") {
            Some(s) => s.clone(),
            None => summary(t, message.group.district.as_deref(), &message),
        };
        message
    }

    /// With its texts in each of `languages` (see [`crate::texts`]).
    pub fn with_texts(
        mut self,
        t: &WarningTransition,
        registry: &SensorRegistry,
        languages: &Languages,
    ) -> Self {
        let area = registry.area(t.rule.group_by, &t.group_key);
        self.texts = crate::texts::texts(&self, t, area, languages);
        self
    }

    /// The text in `language`, else in the first language it has.
    pub fn text(&self, language: &str) -> Option<&AlertText> {
        self.texts
            .get(language)
            .or_else(|| self.texts.values().next())
    }

    /// A short area label: `grid cq-yb-g03 (Yubei)`.
    pub fn area_label(&self) -> String {
        area_label(
            &self.group.by,
            &self.group.key,
            self.group.district.as_deref(),
        )
    }
}

/// `grid cq-yb-g03 (Yubei)`; a district names itself.
fn area_label(by: &str, key: &str, district: Option<&str>) -> String {
    match district {
        Some(d) if by != "district" => format!("{by} {key} ({d})"),
        _ => format!("{by} {key}"),
    }
}

/// A number for people: one decimal, trailing `.0` dropped.
pub fn fmt_number(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

/// A measured value shown next to its threshold: with enough decimals that
/// a value just over the threshold never prints equal to it.
pub fn fmt_value(v: f64, threshold: Option<f64>) -> String {
    let short = fmt_number(v);
    let Some(t) = threshold else { return short };
    let shows_threshold = |s: &str| s.parse::<f64>().ok() == Some(t);
    if v == t || !shows_threshold(&short) {
        return short;
    }
    (2..=6)
        .map(|decimals| format!("{v:.decimals$}"))
        .find(|s| !shows_threshold(s))
        .unwrap_or_else(|| v.to_string())
}

fn expand(
    templates: &BTreeMap<String, String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<String, String> {
    templates
        .iter()
        .map(|(k, v)| (k.clone(), template::render(v, lookup)))
        .collect()
}

/// A template variable's text for this message.
pub(crate) fn variable(m: &AlertMessage, t: &WarningTransition, name: &str) -> Option<String> {
    Some(match name {
        "value" => fmt_value(t.value?, t.threshold),
        "threshold" => fmt_number(t.threshold?),
        "grade" => m.grade.clone()?,
        "level" => m.level.clone()?,
        "previous_grade" => m.previous_grade.clone()?,
        "transition" => m.transition.clone(),
        "rule" => t.rule.id.clone(),
        "metric" => t.rule.metric.clone(),
        "unit" => t.rule.unit.clone(),
        "aggregate" => t.rule.measure().to_owned(),
        "window" => t.rule.window.label(),
        "group" | "group.key" => m.group.key.clone(),
        "group.by" => m.group.by.clone(),
        "group.grid" => m.group.grid.clone()?,
        "group.street" => m.group.street.clone()?,
        "group.district" => m.group.district.clone()?,
        "sensors" => t.sensors.to_string(),
        "readings" => t.readings.to_string(),
        "crossing" => m.trend.as_ref()?.expected_crossing_at.clone()?,
        "primary" => m.primary_pollutant.clone()?,
        "observed" => fmt_number(m.baseline.as_ref()?.observed),
        "expected" => fmt_number(m.baseline.as_ref()?.expected),
        _ => return None,
    })
}

fn summary(t: &WarningTransition, district: Option<&str>, m: &AlertMessage) -> String {
    let what = if t.rule.description.is_empty() {
        format!("{} {}", t.rule.measure(), t.rule.metric)
    } else {
        t.rule.description.clone()
    };
    let place = area_label(t.rule.group_by.as_str(), &t.group_key, district);
    let unit = if t.rule.unit.is_empty() {
        String::new()
    } else {
        format!(" {}", t.rule.unit)
    };
    let sym = t.rule.direction.symbol();
    let predicted = match &m.trend {
        Some(trend) => format!(
            " predicted in {}",
            yujing_rules::model::format_ms(trend.horizon_seconds * 1000)
        ),
        None => String::new(),
    };
    let crossing = match m
        .trend
        .as_ref()
        .and_then(|tr| tr.expected_crossing_at.as_deref())
    {
        Some(at) if t.grade.is_some() => format!(", crossing at {}", at.get(11..16).unwrap_or(at)),
        _ => String::new(),
    };
    let primary = match &m.primary_pollutant {
        Some(p) if t.grade.is_some() => format!(", primary pollutant {p}"),
        _ => String::new(),
    };
    if let (Some(g), Some(v), Some(b)) = (t.grade, t.value, &m.baseline) {
        return format!(
            "{what} in {place} {}: {} {} warning, {}{unit} against a usual {}{unit} ({v:.1} spreads of {})",
            t.transition.as_str(),
            g.as_str(),
            g.level(),
            fmt_number(b.observed),
            fmt_number(b.expected),
            fmt_number(b.spread),
        );
    }
    match (t.grade, t.value, t.threshold) {
        (Some(g), Some(v), Some(th)) => format!(
            "{what} in {place} {}: {} {} warning, {}{unit}{predicted} {sym} {}{unit}{crossing}{primary}",
            t.transition.as_str(),
            g.as_str(),
            g.level(),
            fmt_value(v, Some(th)),
            fmt_number(th),
        ),
        (None, _, _) if t.resolve_reason == Some(yujing_rules::ResolveReason::RuleRemoved) => {
            format!(
                "{what} in {place} resolved: the rule was removed, was {}",
                t.previous_grade.map(|g| g.as_str()).unwrap_or("-"),
            )
        }
        (None, Some(v), _) => format!(
            "{what} in {place} back to normal: {}{unit}, was {}",
            fmt_number(v),
            t.previous_grade.map(|g| g.as_str()).unwrap_or("-"),
        ),
        _ => format!(
            "{what} in {place} resolved: no readings in the window, was {}",
            t.previous_grade.map(|g| g.as_str()).unwrap_or("-"),
        ),
    }
}
