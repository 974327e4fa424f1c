//! What an alert says to people, in each language the deployment writes:
//! the event, the area's name, the public signal, a headline, a summary
//! and what to do. The pure part; CAP and the terminal read these texts.
//!
//! Each text comes from the rule's own template for the language
//! (`text: {zh-CN: {headline: …}}`), else from the language's default
//! ([`yujing_rules::Language`]). Every placeholder is written in the
//! text's language (`{{ grade }}` 橙色预警, `{{ unit }}` 毫米).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use yujing_ingest::{Area, AreaLevel};
use yujing_rules::{Grade, Language, Languages, PhraseKind, ResolveReason, WarningTransition};

use crate::alert::{AlertMessage, variable};

/// An alert's texts in one language (`texts` of `yujing.alert/v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertText {
    /// What the warning is about (CAP `<event>`): the rule's description.
    pub event: String,
    /// The area's name (CAP `<areaDesc>`).
    pub area: String,
    /// The district's name.
    #[serde(default)]
    pub district: Option<String>,
    /// The public signal, 橙色预警（II级）; for a resolution, the signal it
    /// lifts.
    pub signal: Option<String>,
    /// One line (CAP `<headline>`).
    pub headline: String,
    /// What happened, with the numbers (CAP `<description>`).
    pub summary: String,
    /// What people should do (CAP `<instruction>`); none once resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
}

/// The texts of `m` (built from `t`) in every language.
pub fn texts(
    m: &AlertMessage,
    t: &WarningTransition,
    area: Option<&Area>,
    languages: &Languages,
) -> BTreeMap<String, AlertText> {
    languages
        .iter()
        .map(|lang| (lang.tag.clone(), text(m, t, area, lang)))
        .collect()
}

/// Which template a message uses.
fn kind(m: &AlertMessage, t: &WarningTransition) -> PhraseKind {
    match (t.grade, t.resolve_reason) {
        (None, Some(ResolveReason::NoData)) => PhraseKind::NoData,
        (None, _) => PhraseKind::Resolved,
        _ if m.baseline.is_some() => PhraseKind::Baseline,
        _ if m.trend.is_some() => PhraseKind::Forecast,
        _ => PhraseKind::Active,
    }
}

fn text(
    m: &AlertMessage,
    t: &WarningTransition,
    area: Option<&Area>,
    lang: &Language,
) -> AlertText {
    let rule = &t.rule;
    let tag = lang.tag.as_str();
    let grade = t.grade.or(t.previous_grade);
    let (place, district) = area_name(rule.group_by, &t.group_key, area, lang);
    let own = rule.texts.get(tag);
    // A plain `description` is taken as English; other languages without
    // their own build the event from their words.
    let described = rule.descriptions.get(tag).cloned().or_else(|| {
        (rule.descriptions.is_empty() && tag.starts_with("en") && !rule.description.is_empty())
            .then(|| rule.description.clone())
    });
    let base = |name: &str| -> Option<String> {
        Some(match name {
            "grade" => lang.grades.get(grade?).to_owned(),
            "level" => lang.levels.get(grade?).to_owned(),
            "previous_grade" => lang.grades.get(t.previous_grade?).to_owned(),
            "signal" => lang.signals.get(grade?).to_owned(),
            "transition" => lang.transitions.get(&m.transition).to_owned(),
            "compared" => match rule.direction {
                yujing_rules::Direction::Above => lang.compared.above.clone(),
                yujing_rules::Direction::Below => lang.compared.below.clone(),
            },
            "unit" => lang.unit(&rule.unit),
            "window" => lang.duration(rule.window.size_ms),
            "horizon" => lang.duration(rule.predict_horizon_ms?),
            "aggregate" => lang.measure(rule.measure()).to_owned(),
            "metric" => lang.metric(&rule.metric).to_owned(),
            "area" => place.clone(),
            "group.by" => level_word(rule.group_by, lang).to_owned(),
            "group.district" => district.clone()?,
            "group.street" => area
                .and_then(|a| a.name(AreaLevel::Street, tag).map(str::to_owned))
                .or_else(|| m.group.street.clone())?,
            "group.grid" => area
                .and_then(|a| a.name(AreaLevel::Grid, tag).map(str::to_owned))
                .or_else(|| m.group.grid.clone())?,
            other => variable(m, t, other)?,
        })
    };
    let event = described.unwrap_or_else(|| yujing_rules::template::render(&lang.event, base));
    let lookup = |name: &str| match name {
        "event" => Some(event.clone()),
        other => base(other),
    };
    let kind = kind(m, t);
    let pick = |own: Option<&yujing_rules::language::Phrase>,
                default: &yujing_rules::language::Phrase| {
        own.and_then(|p| p.pick(kind))
            .or_else(|| default.pick(kind))
            .unwrap_or_default()
            .to_owned()
    };
    let headline = pick(own.map(|o| &o.headline), &lang.headline);
    let summary = pick(own.map(|o| &o.summary), &lang.summary);
    let instruction = t
        .grade
        .and_then(|g| instruction(own, lang, rule.category.as_str(), g));
    AlertText {
        headline: yujing_rules::template::render(&headline, lookup),
        summary: yujing_rules::template::render(&summary, lookup),
        instruction: instruction.map(|i| yujing_rules::template::render(i, lookup)),
        signal: grade.map(|g| lang.signals.get(g).to_owned()),
        area: place,
        district,
        event,
    }
}

/// The rule's instruction for `grade`, else the language's for the
/// rule's category.
fn instruction<'a>(
    own: Option<&'a yujing_rules::RuleText>,
    lang: &'a Language,
    category: &str,
    grade: Grade,
) -> Option<&'a str> {
    match own {
        Some(o) if !o.instruction.is_empty() => o.instruction.pick(grade),
        _ => lang.instructions.get(category)?.pick(grade),
    }
}

fn level_word(level: AreaLevel, lang: &Language) -> &str {
    match level {
        AreaLevel::Sensor => &lang.area_levels.sensor,
        AreaLevel::Grid => &lang.area_levels.grid,
        AreaLevel::Street => &lang.area_levels.street,
        AreaLevel::District => &lang.area_levels.district,
    }
}

/// The area's name in `lang` from its district down to its own level,
/// and its district's name. Parts the registry does not name are their
/// keys; a grid or sensor key is preceded by its level's word.
fn area_name(
    level: AreaLevel,
    key: &str,
    area: Option<&Area>,
    lang: &Language,
) -> (String, Option<String>) {
    let Some(area) = area else {
        return (format!("{} {key}", level_word(level, lang)), None);
    };
    let tag = lang.tag.as_str();
    let keyed = |l: AreaLevel, k: &str| format!("{} {k}", level_word(l, lang));
    let district = area
        .name(AreaLevel::District, tag)
        .map_or_else(|| area.district.clone(), str::to_owned);
    let mut parts = vec![district.clone()];
    if level <= AreaLevel::Street
        && let Some(street) = &area.street
    {
        parts.push(
            area.name(AreaLevel::Street, tag)
                .map_or_else(|| street.clone(), str::to_owned),
        );
    }
    if level <= AreaLevel::Grid
        && let Some(grid) = &area.grid
    {
        parts.push(
            area.name(AreaLevel::Grid, tag)
                .map_or_else(|| keyed(AreaLevel::Grid, grid), str::to_owned),
        );
    }
    if level == AreaLevel::Sensor {
        parts.push(keyed(AreaLevel::Sensor, key));
    }
    (lang.join_area(parts), Some(district))
}

#[cfg(test)]
#[path = "texts_tests.rs"]
mod tests;
