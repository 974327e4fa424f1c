//! Rules files, as ops teams write them, checked all at once.
//!
//! ```yaml
//! groups:
//!   - name: air
//!     defaults: { group_by: grid, for: 20m, keep_firing_for: 30m }
//!     rules:
//!       - id: pm25-1h
//!         metric: pm25
//!         window: 1h
//!         aggregate: avg
//!         above: { blue: 75, yellow: 115, orange: 150, red: 250 }
//!         clear_margin: 10
//! rules:            # rules outside any group are fine too
//!   - id: ...
//! ```
//!
//! Every key of every rule is read on its own, so one run reports every
//! problem in every file, each as `file:line:column: rule "id": message`.
//! The full language is in `docs/rules-guide.md`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_yaml_ng::{Mapping, Value};
use yujing_ingest::AreaLevel;

use crate::error::{Problem, RulesError};
use crate::locate::{locate_in_item, locate_top_key};
use crate::model::{Rule, RuleSet};
use crate::validate::validate;

/// Every key a rule (or a group's `defaults`) may have.
pub const RULE_KEYS: &[&str] = &[
    "id",
    "description",
    "category",
    "metric",
    "unit",
    "window",
    "aggregate",
    "group_by",
    "above",
    "below",
    "for",
    "tolerate_missing",
    "clear",
    "clear_margin",
    "keep_firing_for",
    "de_escalate_after",
    "predict",
    "min_sensors",
    "min_fraction",
    "quality",
    "range",
    "tolerance",
    "sql",
    "metrics",
    "labels",
    "annotations",
    "allowed_lateness",
    "baseline",
    "text",
    "tune",
];

/// Keys `tune:` may not search: what a rule is and what it says.
const UNTUNABLE: &[&str] = &[
    "id",
    "tune",
    "text",
    "description",
    "labels",
    "annotations",
    "metric",
    "metrics",
    "sql",
    "category",
];

impl RuleSet {
    /// Read and validate a rules file, or every `*.yaml`/`*.yml` file of a
    /// directory.
    pub fn load(path: &Path) -> Result<Self, RulesError> {
        Self::load_all(&[path.to_owned()])
    }

    /// Read and validate several files or directories as one rule set; rule
    /// ids must be unique across all of them.
    pub fn load_all(paths: &[PathBuf]) -> Result<Self, RulesError> {
        Self::load_checked(paths, None, &[])
    }

    /// As [`load_all`](Self::load_all); with `known` metric names, a rule on
    /// any other metric is a problem too, and so is a rule whose
    /// `description` or `text` (when given per language) lacks one of
    /// `languages`, the languages the deployment writes.
    pub fn load_checked(
        paths: &[PathBuf],
        known: Option<&[String]>,
        languages: &[String],
    ) -> Result<Self, RulesError> {
        let mut set = RuleSet::default();
        let mut problems = Vec::new();
        let mut seen: HashMap<String, PathBuf> = HashMap::new();
        for path in expand(paths)? {
            let text = std::fs::read_to_string(&path).map_err(|source| RulesError::Io {
                path: path.clone(),
                source,
            })?;
            let before = set.rules.len();
            parse_into(&path, &text, &mut set.rules, &mut problems);
            if let Some(known) = known {
                known_metrics(&path, &text, &set.rules[before..], known, &mut problems);
            }
            unique_ids(&path, &text, &set.rules[before..], &mut seen, &mut problems);
            translated(&path, &text, &set.rules[before..], languages, &mut problems);
            set.paths.push(path);
        }
        if problems.is_empty() {
            Ok(set)
        } else {
            Err(RulesError::Rejected(problems))
        }
    }

    /// Validate rules text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, RulesError> {
        let mut rules = Vec::new();
        let mut problems = Vec::new();
        parse_into(path, text, &mut rules, &mut problems);
        unique_ids(path, text, &rules, &mut HashMap::new(), &mut problems);
        if problems.is_empty() {
            Ok(RuleSet {
                paths: vec![path.to_owned()],
                rules,
            })
        } else {
            Err(RulesError::Rejected(problems))
        }
    }
}

/// Report rules whose per-language `description` or `text` lacks one of
/// `languages`.
fn translated(
    path: &Path,
    text: &str,
    rules: &[Rule],
    languages: &[String],
    problems: &mut Vec<Problem>,
) {
    for rule in rules {
        let given = [
            ("description", rule.descriptions.keys().collect::<Vec<_>>()),
            ("text", rule.texts.keys().collect::<Vec<_>>()),
        ];
        for (key, present) in given {
            if present.is_empty() {
                continue;
            }
            for lang in languages.iter().filter(|l| !present.contains(l)) {
                let (line, column) = locate_in_item(text, "id", &rule.id, key);
                problems.push(Problem {
                    path: path.to_owned(),
                    line,
                    column,
                    rule: Some(rule.id.clone()),
                    message: format!(
                        "{key} has no {lang} text; warnings are written in {}",
                        languages.join(", ")
                    ),
                });
            }
        }
    }
}

/// Report rules reading metrics not in `known`, with the nearest name.
fn known_metrics(
    path: &Path,
    text: &str,
    rules: &[Rule],
    known: &[String],
    problems: &mut Vec<Problem>,
) {
    for rule in rules {
        let read: Vec<&str> = if rule.is_aqi() {
            Vec::new()
        } else {
            rule.input_metrics()
        };
        for m in read {
            if known.iter().any(|k| k == m) {
                continue;
            }
            let close = known
                .iter()
                .map(|k| (edit_distance(k, m), k))
                .min()
                .filter(|(d, _)| *d <= 2);
            let hint = match close {
                Some((_, k)) => format!("; did you mean `{k}`?"),
                None => format!(" (known: {})", known.join(", ")),
            };
            let key = if m == rule.metric {
                "metric"
            } else {
                "metrics"
            };
            let (line, column) = locate_in_item(text, "id", &rule.id, key);
            problems.push(Problem {
                path: path.to_owned(),
                line,
                column,
                rule: Some(rule.id.clone()),
                message: format!("unknown metric `{m}`: not in the measurements file{hint}"),
            });
        }
    }
}

/// Report rules whose id an earlier rule (in `seen`) already has.
fn unique_ids(
    path: &Path,
    text: &str,
    rules: &[Rule],
    seen: &mut HashMap<String, PathBuf>,
    problems: &mut Vec<Problem>,
) {
    for rule in rules {
        match seen.get(&rule.id) {
            Some(first) => {
                // The second rule with this id: search from the first's line.
                let (line, column) = locate_nth_id(text, &rule.id, first == path);
                problems.push(Problem {
                    path: path.to_owned(),
                    line,
                    column,
                    rule: Some(rule.id.clone()),
                    message: format!("id is already used by a rule in {}", first.display()),
                });
            }
            None => {
                seen.insert(rule.id.clone(), path.to_owned());
            }
        }
    }
}

/// Position of a rule's `id:` line; the second such line when the first
/// one is in the same file.
fn locate_nth_id(text: &str, id: &str, second: bool) -> (usize, usize) {
    let (line, column) = locate_in_item(text, "id", id, "id");
    if !second {
        return (line, column);
    }
    let rest: String = text.lines().skip(line).map(|l| format!("{l}\n")).collect();
    match locate_in_item(&rest, "id", id, "id") {
        (1, 1) => (line, column),
        (l, c) => (line + l, c),
    }
}

/// Files named by `paths`, directories expanded to their YAML files in
/// name order.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, RulesError> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let io = |source| RulesError::Io {
                path: path.clone(),
                source,
            };
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
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

fn parse_into(path: &Path, text: &str, rules: &mut Vec<Rule>, problems: &mut Vec<Problem>) {
    let problem = |line, column, rule: Option<&str>, message: String| Problem {
        path: path.to_owned(),
        line,
        column,
        rule: rule.map(str::to_owned),
        message,
    };
    let doc: Value = match serde_yaml_ng::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let (line, column, message) = yaml_error_position(&e);
            problems.push(problem(line, column, None, message));
            return;
        }
    };
    let Some(top) = doc.as_mapping() else {
        problems.push(problem(
            1,
            1,
            None,
            "expected a mapping with `rules:` and/or `groups:`".into(),
        ));
        return;
    };
    let mut any = false;
    for (key, value) in top {
        match key.as_str() {
            Some("rules") => {
                any = true;
                read_rules(path, text, value, "", &Mapping::new(), rules, problems);
            }
            Some("groups") => {
                any = true;
                let Some(groups) = value.as_sequence() else {
                    let (line, column) = locate_top_key(text, "groups");
                    problems.push(problem(
                        line,
                        column,
                        None,
                        "`groups` must be a list".into(),
                    ));
                    continue;
                };
                for group in groups {
                    read_group(path, text, group, rules, problems);
                }
            }
            other => {
                let name = other.map_or_else(|| format!("{key:?}"), str::to_owned);
                let (line, column) = locate_top_key(text, &name);
                problems.push(problem(
                    line,
                    column,
                    None,
                    format!("unknown top-level key `{name}`, expected `rules` or `groups`"),
                ));
            }
        }
    }
    if !any {
        problems.push(problem(
            1,
            1,
            None,
            "no `rules:` or `groups:` in the file".into(),
        ));
    }
}

fn read_group(
    path: &Path,
    text: &str,
    group: &Value,
    rules: &mut Vec<Rule>,
    problems: &mut Vec<Problem>,
) {
    let name = group
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let at = |key: &str| locate_in_item(text, "name", &name, key);
    let mut push = |(line, column): (usize, usize), message: String| {
        problems.push(Problem {
            path: path.to_owned(),
            line,
            column,
            rule: None,
            message: format!("group {name:?}: {message}"),
        })
    };
    let Some(map) = group.as_mapping() else {
        push(
            (1, 1),
            "a group must be a mapping with `name` and `rules`".into(),
        );
        return;
    };
    if name.is_empty() {
        push(at("rules"), "a group needs a `name`".into());
    }
    let mut defaults = Mapping::new();
    let mut body = None;
    for (key, value) in map {
        match key.as_str().unwrap_or_default() {
            "name" => {}
            "rules" => body = Some(value),
            "defaults" => match value.as_mapping() {
                Some(d) => {
                    for (k, v) in d {
                        let k = k.as_str().unwrap_or_default();
                        if k == "id" {
                            push(at("defaults"), "`id` cannot be a default".into());
                        } else if !RULE_KEYS.contains(&k) {
                            push(at(k), unknown_key_message(k));
                        } else {
                            defaults.insert(Value::from(k), v.clone());
                        }
                    }
                }
                None => push(at("defaults"), "`defaults` must be a mapping".into()),
            },
            other => push(
                at(other),
                format!("unknown group key `{other}`, expected `name`, `defaults` or `rules`"),
            ),
        }
    }
    match body {
        Some(body) => {
            let before = problems.len();
            read_rules(path, text, body, &name, &defaults, rules, problems);
            // A bad default shows up once per rule: keep the first.
            let mut seen = std::collections::HashSet::new();
            let mut i = before;
            while i < problems.len() {
                let p = &problems[i];
                let key = (p.line, p.column, p.message.clone());
                if p.message.starts_with("(from the group's defaults) ") && !seen.insert(key) {
                    problems.remove(i);
                } else {
                    i += 1;
                }
            }
        }
        None => push(at("name"), "a group needs `rules`".into()),
    }
}

fn read_rules(
    path: &Path,
    text: &str,
    body: &Value,
    group: &str,
    defaults: &Mapping,
    rules: &mut Vec<Rule>,
    problems: &mut Vec<Problem>,
) {
    let Some(items) = body.as_sequence() else {
        let (line, column) = locate_top_key(text, "rules");
        problems.push(Problem {
            path: path.to_owned(),
            line,
            column,
            rule: None,
            message: "`rules` must be a list of rules".into(),
        });
        return;
    };
    for (n, item) in items.iter().enumerate() {
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut fields = Fields::new(defaults);
        match item.as_mapping() {
            Some(map) => {
                for (k, v) in map {
                    let k = k.as_str().unwrap_or_default();
                    if RULE_KEYS.contains(&k) {
                        fields.rule.insert(k.to_owned(), v.clone());
                    } else {
                        fields.fail_at(Origin::Rule, k, unknown_key_message(k));
                    }
                }
            }
            None => fields.fail_at(
                Origin::Rule,
                "id",
                "a rule must be a mapping of keys".into(),
            ),
        }
        let mut rule = validate(&mut fields, group);
        if let (Some(r), Some(map)) = (&rule, item.as_mapping()) {
            let tuned = tune_problems(map, defaults, group, &r.tune);
            if !tuned.is_empty() {
                rule = None;
            }
            fields
                .problems
                .extend(tuned.into_iter().map(|(k, m)| (Origin::Rule, k, m)));
        }
        for (origin, key, message) in fields.problems {
            let (line, column) = match origin {
                Origin::Rule if id.is_empty() => (1, 1),
                Origin::Rule => locate_in_item(text, "id", &id, &key),
                Origin::Defaults => locate_in_item(text, "name", group, &key),
            };
            let message = match origin {
                Origin::Defaults => format!("(from the group's defaults) {message}"),
                Origin::Rule if id.is_empty() => format!("rule #{} of the list: {message}", n + 1),
                Origin::Rule => message,
            };
            problems.push(Problem {
                path: path.to_owned(),
                line,
                column,
                rule: (!id.is_empty()).then(|| id.clone()),
                message,
            });
        }
        if let Some(rule) = rule {
            rules.push(rule);
        }
    }
}

/// Why a rule's `tune:` space could make it invalid: each end of each
/// range and each choice is applied to the rule and the result validated.
fn tune_problems(
    item: &Mapping,
    defaults: &Mapping,
    group: &str,
    params: &[crate::tune::TuneParam],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in params {
        let key = format!("tune.{}", p.path);
        let top = p.path.split('.').next().unwrap_or_default();
        if !RULE_KEYS.contains(&top) || UNTUNABLE.contains(&top) {
            out.push((
                key.clone(),
                format!("{key}: `{top}` is not a setting tune can search"),
            ));
            continue;
        }
        for value in p.space.extremes() {
            let mut rule = item.clone();
            rule.remove("tune");
            let shown = serde_yaml_ng::to_string(&value).unwrap_or_default();
            let shown = shown.trim();
            if !crate::tune::set(&mut rule, &p.path, value.clone()) {
                out.push((key.clone(), format!("{key}: no such setting in the rule")));
                break;
            }
            let mut f = Fields::new(defaults);
            for (k, v) in &rule {
                f.rule
                    .insert(k.as_str().unwrap_or_default().to_owned(), v.clone());
            }
            validate(&mut f, group);
            if let Some((_, _, why)) = f.problems.first() {
                out.push((
                    key.clone(),
                    format!("{key}: with {shown} the rule is invalid: {why}"),
                ));
                break;
            }
        }
    }
    out
}

fn unknown_key_message(key: &str) -> String {
    let close = RULE_KEYS
        .iter()
        .map(|k| (edit_distance(k, key), *k))
        .min()
        .filter(|(d, _)| *d <= 2);
    match close {
        Some((_, k)) => format!("unknown key `{key}`; did you mean `{k}`?"),
        None => format!("unknown key `{key}`"),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Where a key's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Rule,
    Defaults,
}

/// A rule's keys (its own over its group's defaults) and the problems found
/// reading them.
pub(crate) struct Fields<'a> {
    rule: BTreeMap<String, Value>,
    defaults: &'a Mapping,
    pub(crate) problems: Vec<(Origin, String, String)>,
}

impl<'a> Fields<'a> {
    fn new(defaults: &'a Mapping) -> Self {
        Fields {
            rule: BTreeMap::new(),
            defaults,
            problems: Vec::new(),
        }
    }

    fn lookup(&self, key: &str) -> Option<(&Value, Origin)> {
        match self.rule.get(key) {
            Some(v) => Some((v, Origin::Rule)),
            None => self.defaults.get(key).map(|v| (v, Origin::Defaults)),
        }
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.lookup(key).is_some()
    }

    /// The raw value of `key`, if given.
    pub(crate) fn raw(&self, key: &str) -> Option<Value> {
        self.lookup(key).map(|(v, _)| v.clone())
    }

    /// `key` read as `T`; a wrong type is recorded and gives `None`.
    pub(crate) fn get<T: DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        let (value, origin) = self.lookup(key)?;
        match serde_yaml_ng::from_value::<T>(value.clone()) {
            Ok(v) => Some(v),
            Err(e) => {
                let e = e.to_string();
                // Point at an unknown nested key (`purple:` inside `above:`)
                // rather than at its parent.
                let at = e
                    .strip_prefix("unknown field `")
                    .and_then(|rest| rest.split('`').next())
                    .unwrap_or(key)
                    .to_owned();
                self.problems.push((origin, at, format!("{key}: {e}")));
                None
            }
        }
    }

    /// Record a problem with `key` (its value is wrong).
    pub(crate) fn fail(&mut self, key: &str, message: String) {
        self.fail_within(key, "", message);
    }

    /// Record a problem with `inner` inside `key`'s value (`baseline.shift`),
    /// or with `key` itself when `inner` is empty.
    pub(crate) fn fail_within(&mut self, key: &str, inner: &str, message: String) {
        let origin = self.lookup(key).map_or(Origin::Rule, |(_, o)| o);
        let at = if inner.is_empty() {
            key.to_owned()
        } else {
            format!("{key}.{inner}")
        };
        self.problems.push((origin, at, message));
    }

    fn fail_at(&mut self, origin: Origin, key: &str, message: String) {
        self.problems.push((origin, key.to_owned(), message));
    }

    pub(crate) fn group_by(&mut self) -> AreaLevel {
        self.get("group_by").unwrap_or(AreaLevel::Sensor)
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "load_text_tests.rs"]
mod text_tests;

#[cfg(test)]
#[path = "load_tune_tests.rs"]
mod tune_tests;
