//! Storm control: when too many warnings are raised at once, people get
//! one summary instead of a message per group.
//!
//! A sink with `storm` limits counts the warnings it announced in the last
//! minute, per rule and in all. A `raised` warning beyond either limit is
//! held back: it and its later changes are not sent on their own; instead,
//! each batch with held-back warnings carries one `summary` message per
//! rule, grade and district ("37 grid cells in Yubei over pm25 orange").
//! A held-back warning that resolves is dropped quietly. Everything held
//! back is counted.
//!
//! Machines that must see every warning (the bureau's alert topic) take
//! no limits; people's channels (terminal, webhook) do.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::Deserialize;

use crate::alert::{AlertGroup, AlertMessage, AlertStorm};

/// The window the limits count over.
const MINUTE_MS: i64 = 60_000;

/// How many group keys a summary lists.
const LISTED_GROUPS: usize = 50;

/// New warnings announced per minute before the rest are summarised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StormLimits {
    /// Per rule.
    #[serde(default)]
    pub per_rule_per_minute: Option<u32>,
    /// Over all rules.
    #[serde(default)]
    pub global_per_minute: Option<u32>,
}

/// What one batch held back, for counters.
#[derive(Debug, Default, PartialEq)]
pub struct Suppressed {
    /// Transitions held back, per rule.
    pub by_rule: BTreeMap<String, u64>,
    pub summaries: u64,
}

/// A sink's storm state.
#[derive(Debug)]
pub struct StormGuard {
    limits: StormLimits,
    /// When each recent announcement was made, and its rule.
    announced: VecDeque<(i64, String)>,
    /// Warnings held back, by fingerprint.
    held: HashSet<String>,
}

impl StormGuard {
    pub fn new(limits: StormLimits) -> Self {
        StormGuard {
            limits,
            announced: VecDeque::new(),
            held: HashSet::new(),
        }
    }

    /// Warnings currently held back.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The alerts to send for `alerts` at wall time `now_ms`, with
    /// summaries in place of the ones held back.
    pub fn filter(
        &mut self,
        alerts: Vec<AlertMessage>,
        now_ms: i64,
    ) -> (Vec<AlertMessage>, Suppressed) {
        while self
            .announced
            .front()
            .is_some_and(|(at, _)| *at <= now_ms - MINUTE_MS)
        {
            self.announced.pop_front();
        }
        let mut per_rule: HashMap<String, u32> = HashMap::new();
        for (_, rule) in &self.announced {
            *per_rule.entry(rule.clone()).or_default() += 1;
        }
        let mut out = Vec::with_capacity(alerts.len());
        let mut suppressed = Suppressed::default();
        // (rule, grade, district) → the held-back alerts.
        let mut buckets: BTreeMap<(String, String, String), Vec<AlertMessage>> = BTreeMap::new();
        for alert in alerts {
            let rule = alert.rule.id.clone();
            let hold = if self.held.contains(&alert.fingerprint) {
                if alert.grade.is_none() {
                    self.held.remove(&alert.fingerprint);
                }
                true
            } else if alert.transition == "raised" {
                let rule_count = per_rule.get(&rule).copied().unwrap_or(0);
                let over = self
                    .limits
                    .per_rule_per_minute
                    .is_some_and(|l| rule_count >= l)
                    || self
                        .limits
                        .global_per_minute
                        .is_some_and(|l| self.announced.len() >= l as usize);
                if over {
                    self.held.insert(alert.fingerprint.clone());
                } else {
                    self.announced.push_back((now_ms, rule.clone()));
                    *per_rule.entry(rule.clone()).or_default() += 1;
                }
                over
            } else {
                false
            };
            if !hold {
                out.push(alert);
                continue;
            }
            *suppressed.by_rule.entry(rule.clone()).or_default() += 1;
            if let Some(grade) = alert.grade.clone() {
                let district = alert.group.district.clone().unwrap_or_default();
                buckets
                    .entry((rule, grade, district))
                    .or_default()
                    .push(alert);
            }
        }
        for held in buckets.into_values() {
            out.push(summary(&held, &self.limits));
            suppressed.summaries += 1;
        }
        (out, suppressed)
    }
}

/// `grid` → `grid cells`.
fn plural(by: &str, n: usize) -> String {
    let one = match by {
        "grid" => "grid cell",
        other => other,
    };
    if n == 1 {
        one.to_owned()
    } else {
        format!("{one}s")
    }
}

/// One message standing for `held` (same rule, grade and district).
fn summary(held: &[AlertMessage], limits: &StormLimits) -> AlertMessage {
    let first = &held[0];
    let grade = first.grade.clone().unwrap_or_default();
    let district = first.group.district.clone();
    let mut groups: Vec<String> = held.iter().map(|a| a.group.key.clone()).collect();
    groups.sort();
    groups.dedup();
    let n = groups.len();
    let place = district.as_deref().unwrap_or("the city");
    let limit = match (limits.per_rule_per_minute, limits.global_per_minute) {
        (Some(r), Some(g)) => format!("{r} a minute per rule, {g} in all"),
        (Some(r), None) => format!("{r} a minute per rule"),
        (None, Some(g)) => format!("{g} a minute in all"),
        (None, None) => "none".to_owned(),
    };
    let value = held
        .iter()
        .filter_map(|a| a.value)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    // `rule/district/<district>/storm/<grade>`: the fingerprint layout
    // subscribers parse, never equal to a real warning's.
    let fingerprint = format!(
        "{}/district/{}/storm/{grade}",
        first.rule.id,
        district.as_deref().unwrap_or("all")
    );
    let mut m = first.clone();
    m.warning_id = format!("{fingerprint}@{}", first.event_time);
    m.fingerprint = fingerprint;
    m.sequence = 1;
    m.transition = "summary".to_owned();
    m.previous_grade = None;
    m.value = value;
    m.readings = held.iter().map(|a| a.readings).sum();
    m.sensors = held.iter().map(|a| a.sensors).sum();
    m.resolve_reason = None;
    m.trend = None;
    m.baseline = None;
    m.group = AlertGroup {
        by: "district".to_owned(),
        key: district.clone().unwrap_or_else(|| "all".to_owned()),
        district: district.clone(),
        district_code: first.group.district_code.clone(),
        street: None,
        grid: None,
        lat: None,
        lon: None,
        radius_km: None,
    };
    m.summary = format!(
        "{n} {} in {place} over {} {grade} (storm control, limit {limit}: held back and summarised)",
        plural(&first.group.by, n),
        first.rule.metric,
    );
    // Each language's text stands for the district, not the first group.
    for text in m.texts.values_mut() {
        if let Some(d) = &text.district {
            text.area = d.clone();
        }
        let signal = text.signal.as_deref().unwrap_or_default();
        text.headline = format!("{} · {} · {signal} ×{n}", text.area, text.event);
        let listed: Vec<&str> = groups
            .iter()
            .take(LISTED_GROUPS)
            .map(String::as_str)
            .collect();
        text.summary = format!("{} ({})", text.headline, listed.join(", "));
    }
    m.storm = Some(AlertStorm {
        held_back: held.len() as u64,
        groups_by: first.group.by.clone(),
        groups: groups.into_iter().take(LISTED_GROUPS).collect(),
    });
    m
}
