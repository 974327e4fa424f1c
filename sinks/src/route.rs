//! Which warnings a sink takes: by grade, area, rule, category or label.
//!
//! ```yaml
//! route: { min_grade: red, districts: ["500112"], labels: { team: air-quality } }
//! ```
//!
//! Every condition given must hold. A change is judged by the grade before
//! and after it, so a sink that takes red warnings also hears when one
//! steps down below red or resolves, and never keeps a stale red.
//!
//! The pipeline applies a sink's route once, before its storm control and
//! its spool: alerts outside the route neither count toward the storm
//! limits nor take room in the spool. Sinks themselves deliver what they
//! are given.

use std::collections::BTreeMap;

use serde::Deserialize;

use yujing_rules::Grade;

use crate::alert::AlertMessage;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Only warnings at this grade or above (before or after the change).
    #[serde(default, deserialize_with = "grade")]
    pub min_grade: Option<Grade>,
    /// Only these districts: names or division codes.
    #[serde(default)]
    pub districts: Vec<String>,
    /// Only these rule ids.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Only these rule categories (`env`, `met`, `infra`, `data`).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Only alerts carrying all these labels with these values.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn grade<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Grade>, D::Error> {
    let name = String::deserialize(d)?;
    Grade::parse(&name).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "route.min_grade `{name}` is not a grade (blue, yellow, orange, red)"
        ))
    })
}

impl Route {
    /// Why the route is wrong, if it is.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(c) = self
            .categories
            .iter()
            .find(|c| !matches!(c.as_str(), "env" | "met" | "infra" | "data"))
        {
            return Err(format!(
                "route.categories: `{c}` is not a category (env, met, infra, data)"
            ));
        }
        Ok(())
    }

    pub fn matches(&self, a: &AlertMessage) -> bool {
        let grade_ok = match self.min_grade {
            None => true,
            Some(min) => [a.grade.as_deref(), a.previous_grade.as_deref()]
                .into_iter()
                .flatten()
                .filter_map(Grade::parse)
                .any(|g| g >= min),
        };
        let district_ok = self.districts.is_empty()
            || self.districts.iter().any(|d| {
                a.group.district.as_deref() == Some(d.as_str())
                    || a.group.district_code.as_deref() == Some(d.as_str())
            });
        let rule_ok = self.rules.is_empty() || self.rules.contains(&a.rule.id);
        let category_ok = self.categories.is_empty() || self.categories.contains(&a.rule.category);
        let labels_ok = self.labels.iter().all(|(k, v)| a.labels.get(k) == Some(v));
        grade_ok && district_ok && rule_ok && category_ok && labels_ok
    }
}

/// A Kafka topic name with `{grade}`, `{district_code}`, `{rule}` or
/// `{category}` filled in from the alert (`{grade}` of a resolution is the
/// grade it ends), e.g. `alerts.{grade}` or `alerts.district.{district_code}`.
pub fn topic_for(template: &str, a: &AlertMessage) -> String {
    if !template.contains('{') {
        return template.to_owned();
    }
    let grade = a
        .grade
        .as_deref()
        .or(a.previous_grade.as_deref())
        .unwrap_or("none");
    template
        .replace("{grade}", grade)
        .replace(
            "{district_code}",
            a.group.district_code.as_deref().unwrap_or("unknown"),
        )
        .replace("{rule}", &a.rule.id)
        .replace("{category}", &a.rule.category)
}

/// Placeholders a topic template may use.
pub const TOPIC_PLACEHOLDERS: &[&str] = &["{grade}", "{district_code}", "{rule}", "{category}"];
