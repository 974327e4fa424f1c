//! The languages warnings are written in.
//!
//! A [`Language`] holds one language's words: the grades and signals as the
//! public knows them (蓝色预警（IV级）), the transitions (发布, 升级, 降级,
//! 解除), area levels, units, durations, and the default templates of a
//! warning's event, headline, summary and instruction for rules that give
//! none. zh-CN and en are built in (`rules/src/lang/*.yaml`); any other
//! language is a YAML file of the same shape named in the config
//! (`language_files:`), not code.
//!
//! In text templates every placeholder is in the text's language:
//! `{{ grade }}` is 橙色预警 / orange warning, `{{ unit }}` is 毫米 / mm,
//! `{{ window }}` is 1小时 / 1h. Labels and annotations keep the raw values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::grade::Grade;
use crate::template;

/// One word or phrase per grade.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerGrade {
    pub blue: String,
    pub yellow: String,
    pub orange: String,
    pub red: String,
}

impl PerGrade {
    pub fn get(&self, grade: Grade) -> &str {
        match grade {
            Grade::Blue => &self.blue,
            Grade::Yellow => &self.yellow,
            Grade::Orange => &self.orange,
            Grade::Red => &self.red,
        }
    }
}

/// What a warning's transitions are called (`raised` → 发布).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transitions {
    pub raised: String,
    pub escalated: String,
    #[serde(rename = "de-escalated")]
    pub de_escalated: String,
    pub resolved: String,
    pub summary: String,
}

impl Transitions {
    /// The word for a transition as alert messages name it.
    pub fn get(&self, transition: &str) -> &str {
        match transition {
            "raised" => &self.raised,
            "escalated" => &self.escalated,
            "de-escalated" => &self.de_escalated,
            "resolved" => &self.resolved,
            _ => &self.summary,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compared {
    pub above: String,
    pub below: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AreaLevels {
    pub sensor: String,
    pub grid: String,
    pub street: String,
    pub district: String,
}

/// Which end of grid → street → district an area's name starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AreaOrder {
    /// 渝北区龙溪街道1号网格.
    LargeFirst,
    /// Longxi grid 1, Longxi Street, Yubei District.
    SmallFirst,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurationUnits {
    pub d: String,
    pub h: String,
    pub m: String,
    pub s: String,
}

/// Which of a phrase's templates a message uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhraseKind {
    /// Raised, escalated or de-escalated.
    Active,
    /// Active, graded on a predicted value.
    Forecast,
    /// Active, graded on a deviation from the group's own past.
    Baseline,
    /// Resolved: the value is back.
    Resolved,
    /// Resolved for lack of readings.
    NoData,
}

/// A template per kind of message; a plain string serves every kind.
/// `forecast` and `baseline` fall back to `active`, `no_data` to
/// `resolved`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(from = "PhraseForm")]
pub struct Phrase {
    pub active: Option<String>,
    pub forecast: Option<String>,
    pub baseline: Option<String>,
    pub resolved: Option<String>,
    pub no_data: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PhraseForm {
    One(String),
    Kinds(PhraseKinds),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhraseKinds {
    active: Option<String>,
    forecast: Option<String>,
    baseline: Option<String>,
    resolved: Option<String>,
    no_data: Option<String>,
}

impl From<PhraseForm> for Phrase {
    fn from(form: PhraseForm) -> Self {
        match form {
            PhraseForm::One(s) => Phrase {
                active: Some(s.clone()),
                resolved: Some(s),
                ..Phrase::default()
            },
            PhraseForm::Kinds(k) => Phrase {
                active: k.active,
                forecast: k.forecast,
                baseline: k.baseline,
                resolved: k.resolved,
                no_data: k.no_data,
            },
        }
    }
}

impl Phrase {
    /// The template for `kind`, after the fallbacks.
    pub fn pick(&self, kind: PhraseKind) -> Option<&str> {
        let exact = match kind {
            PhraseKind::Active => &self.active,
            PhraseKind::Forecast => &self.forecast,
            PhraseKind::Baseline => &self.baseline,
            PhraseKind::Resolved => &self.resolved,
            PhraseKind::NoData => &self.no_data,
        };
        let fallback = match kind {
            PhraseKind::Forecast | PhraseKind::Baseline => &self.active,
            PhraseKind::NoData => &self.resolved,
            _ => exact,
        };
        exact.as_deref().or(fallback.as_deref())
    }

    /// Every template given, with its kind's name.
    pub fn templates(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("active", &self.active),
            ("forecast", &self.forecast),
            ("baseline", &self.baseline),
            ("resolved", &self.resolved),
            ("no_data", &self.no_data),
        ]
        .into_iter()
        .filter_map(|(k, t)| t.as_deref().map(|t| (k, t)))
    }
}

/// A text chosen by grade: the entry of the highest grade at or below the
/// warning's (`{orange: 减少户外活动}` applies at orange and red). A plain
/// string applies from blue up.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(from = "GradedForm")]
pub struct GradedText(pub BTreeMap<Grade, String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum GradedForm {
    One(String),
    PerGrade(BTreeMap<Grade, String>),
}

impl From<GradedForm> for GradedText {
    fn from(form: GradedForm) -> Self {
        match form {
            GradedForm::One(s) => GradedText(BTreeMap::from([(Grade::Blue, s)])),
            GradedForm::PerGrade(m) => GradedText(m),
        }
    }
}

impl GradedText {
    pub fn pick(&self, grade: Grade) -> Option<&str> {
        self.0.range(..=grade).next_back().map(|(_, t)| t.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One language's words and default templates.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Language {
    /// The language tag (RFC 3066, as CAP `<language>` takes it): `zh-CN`.
    pub tag: String,
    /// `{{ grade }}`: 橙色预警 / orange warning.
    pub grades: PerGrade,
    /// `{{ level }}`: II级 / level II.
    pub levels: PerGrade,
    /// `{{ signal }}`: the public signal, 橙色预警（II级）.
    pub signals: PerGrade,
    /// `{{ transition }}`: 发布, 升级, 降级, 解除.
    pub transitions: Transitions,
    /// `{{ compared }}`: 超过 / above for rules on rising values.
    pub compared: Compared,
    /// `{{ group.by }}` and area names without a registry name.
    pub area_levels: AreaLevels,
    pub area_order: AreaOrder,
    /// Between the parts of an area's name.
    pub area_separator: String,
    pub durations: DurationUnits,
    /// Between the parts of a duration (`1h 30m`).
    pub duration_separator: String,
    /// `{{ aggregate }}` per aggregate or check (`avg` → 平均值).
    #[serde(default)]
    pub measures: BTreeMap<String, String>,
    /// `{{ metric }}` per metric (`o3` → 臭氧).
    #[serde(default)]
    pub metrics: BTreeMap<String, String>,
    /// `{{ unit }}` per rule unit (`mm` → 毫米); others are written as is.
    #[serde(default)]
    pub units: BTreeMap<String, String>,
    /// Written between a number and its unit (`""` in Chinese, `" "` in English).
    #[serde(default)]
    pub unit_separator: String,
    /// `{{ event }}` of a rule without a description in this language.
    pub event: String,
    pub headline: Phrase,
    pub summary: Phrase,
    /// Instructions of rules without their own, per category (`env`, …).
    #[serde(default)]
    pub instructions: BTreeMap<String, GradedText>,
}

const BUILTIN: [(&str, &str); 2] = [
    ("zh-CN", include_str!("lang/zh-CN.yaml")),
    ("en", include_str!("lang/en.yaml")),
];

/// Tags of the built-in languages.
pub const BUILTIN_TAGS: [&str; 2] = ["zh-CN", "en"];

/// The languages a deployment writes when its config names none: the
/// built-in ones, zh-CN first.
pub fn default_tags() -> Vec<String> {
    BUILTIN_TAGS.iter().map(|t| t.to_string()).collect()
}

impl Language {
    /// A built-in language: `zh-CN` or `en`.
    pub fn builtin(tag: &str) -> Option<Language> {
        let (_, text) = BUILTIN.iter().find(|(t, _)| *t == tag)?;
        Some(Language::parse(text).expect("built-in languages are valid"))
    }

    /// Read a language file.
    pub fn load(path: &Path) -> Result<Language, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read language file {}: {e}", path.display()))?;
        Language::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parse and check a language: its templates use known placeholders,
    /// and the headline and summary cover raised and resolved warnings.
    pub fn parse(text: &str) -> Result<Language, String> {
        let lang: Language = serde_yaml_ng::from_str(text).map_err(|e| {
            let (line, column, message) = crate::load::yaml_error_position(&e);
            format!("{line}:{column}: {message}")
        })?;
        template::text_placeholders(&lang.event).map_err(|e| format!("event: {e}"))?;
        for (name, phrase) in [("headline", &lang.headline), ("summary", &lang.summary)] {
            for (kind, t) in phrase.templates() {
                template::text_placeholders(t).map_err(|e| format!("{name}.{kind}: {e}"))?;
            }
            for kind in [PhraseKind::Active, PhraseKind::Resolved] {
                if phrase.pick(kind).is_none() {
                    return Err(format!(
                        "{name} needs templates for active and resolved warnings"
                    ));
                }
            }
        }
        Ok(lang)
    }

    /// `{{ unit }}` of a rule's unit, with its separator from the number.
    pub fn unit(&self, unit: &str) -> String {
        let name = self.units.get(unit).map_or(unit, String::as_str);
        if name.is_empty() {
            String::new()
        } else {
            format!("{}{name}", self.unit_separator)
        }
    }

    pub fn measure<'a>(&'a self, measure: &'a str) -> &'a str {
        self.measures.get(measure).map_or(measure, String::as_str)
    }

    pub fn metric<'a>(&'a self, metric: &'a str) -> &'a str {
        self.metrics.get(metric).map_or(metric, String::as_str)
    }

    /// `5400000` → `1小时30分钟` / `1h 30m`.
    pub fn duration(&self, ms: i64) -> String {
        let mut secs = ms.max(0) / 1000;
        let mut parts = Vec::new();
        for (size, word) in [
            (86_400, &self.durations.d),
            (3_600, &self.durations.h),
            (60, &self.durations.m),
            (1, &self.durations.s),
        ] {
            if secs >= size {
                parts.push(format!("{}{word}", secs / size));
                secs %= size;
            }
        }
        if parts.is_empty() {
            parts.push(format!("0{}", self.durations.s));
        }
        parts.join(&self.duration_separator)
    }

    /// Join an area's name parts, given largest first, in this language's
    /// order; a space goes between parts that would otherwise run two
    /// Latin words together.
    pub fn join_area(&self, mut parts: Vec<String>) -> String {
        if self.area_order == AreaOrder::SmallFirst {
            parts.reverse();
        }
        let mut out = String::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            if !out.is_empty() {
                let latin = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
                if self.area_separator.is_empty()
                    && (latin(out.chars().last()) || latin(part.chars().next()))
                {
                    out.push(' ');
                } else {
                    out.push_str(&self.area_separator);
                }
            }
            out.push_str(&part);
        }
        out
    }
}

/// The languages a deployment writes its warnings in, in order: the first
/// is its main language, and CAP documents carry one `<info>` per language
/// in this order.
#[derive(Debug, Clone, Default)]
pub struct Languages(Vec<Language>);

impl Languages {
    /// `tags` from the built-in languages or from `files` (a file's
    /// language wins over a built-in one of the same tag).
    pub fn new(tags: &[String], files: &[PathBuf]) -> Result<Languages, String> {
        let loaded = files
            .iter()
            .map(|p| Language::load(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::new();
        for tag in tags {
            if out.iter().any(|l: &Language| &l.tag == tag) {
                return Err(format!("language {tag} is listed twice"));
            }
            let lang = loaded
                .iter()
                .find(|l| &l.tag == tag)
                .cloned()
                .or_else(|| Language::builtin(tag))
                .ok_or_else(|| {
                    format!(
                        "unknown language {tag}: built in are {}; add others with language_files",
                        BUILTIN_TAGS.join(", ")
                    )
                })?;
            out.push(lang);
        }
        Ok(Languages(out))
    }

    /// zh-CN, then en: the default.
    pub fn builtin() -> Languages {
        Languages(
            BUILTIN_TAGS
                .iter()
                .filter_map(|t| Language::builtin(t))
                .collect(),
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = &Language> {
        self.0.iter()
    }

    pub fn get(&self, tag: &str) -> Option<&Language> {
        self.0.iter().find(|l| l.tag == tag)
    }

    pub fn tags(&self) -> Vec<String> {
        self.0.iter().map(|l| l.tag.clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_languages_load_and_pick_by_kind_and_grade() {
        let zh = Language::builtin("zh-CN").unwrap();
        assert_eq!(zh.signals.get(Grade::Orange), "橙色预警（II级）");
        assert_eq!(zh.transitions.get("resolved"), "解除");
        assert_eq!(zh.duration(5_400_000), "1小时30分钟");
        assert_eq!(zh.unit("mm"), "毫米");
        assert_eq!(zh.unit("AQI"), "");
        let en = Language::builtin("en").unwrap();
        assert_eq!(en.duration(5_400_000), "1h 30m");
        assert_eq!(en.unit("ug/m3"), " µg/m³");
        assert_eq!(en.unit("furlongs"), " furlongs");
        let env = &zh.instructions["env"];
        assert_eq!(env.pick(Grade::Blue), None);
        assert!(env.pick(Grade::Red).unwrap().contains("避免户外活动"));
        assert_eq!(
            zh.summary.pick(PhraseKind::NoData),
            zh.summary.no_data.as_deref()
        );
        assert_eq!(
            en.headline.pick(PhraseKind::Forecast),
            en.headline.active.as_deref()
        );
        assert_eq!(
            zh.join_area(vec!["渝北区".into(), "龙溪街道".into(), "网格 g1".into()]),
            "渝北区龙溪街道网格 g1"
        );
        assert_eq!(
            en.join_area(vec!["Yubei".into(), "Longxi".into(), "grid g1".into()]),
            "grid g1, Longxi, Yubei"
        );
        assert_eq!(Languages::builtin().tags(), ["zh-CN", "en"]);
    }

    #[test]
    fn a_language_file_adds_a_language() {
        let dir = std::env::temp_dir().join(format!("yujing-lang-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("zh-HK.yaml");
        let text = include_str!("lang/zh-CN.yaml")
            .replace("tag: zh-CN", "tag: zh-HK")
            .replace("蓝色预警（IV级）", "藍色預警（IV級）");
        std::fs::write(&path, text).unwrap();
        let langs = Languages::new(&["zh-HK".into(), "en".into()], &[path]).unwrap();
        assert_eq!(langs.tags(), ["zh-HK", "en"]);
        let hk = langs.get("zh-HK").unwrap();
        assert_eq!(hk.signals.get(Grade::Blue), "藍色預警（IV級）");
        let e = Language::load(&dir.join("missing.yaml")).unwrap_err();
        assert!(e.contains("cannot read language file"), "{e}");
    }

    #[test]
    fn unknown_or_repeated_languages_are_refused() {
        let e = Languages::new(&["fr".into()], &[]).unwrap_err();
        assert!(e.contains("unknown language fr"), "{e}");
        let e = Languages::new(&["en".into(), "en".into()], &[]).unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let bad = include_str!("lang/en.yaml").replace("{{ area }}", "{{ araa }}");
        let e = Language::parse(&bad).unwrap_err();
        assert!(e.contains("araa"), "{e}");
    }
}
