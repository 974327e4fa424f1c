//! The candidates of a search: every combination of the rules' `tune:`
//! spaces when there are few (a grid), else a seeded random sample; and
//! each candidate written back into the rules file's YAML.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_yaml_ng::{Mapping, Value};
use yujing_rules::RuleSet;
use yujing_rules::tune::{TuneParam, set};

/// One tuned setting: the rule and the key path.
#[derive(Debug, Clone)]
pub struct Knob {
    pub rule: String,
    pub param: TuneParam,
}

impl Knob {
    /// `rule:path`, as columns and reports name it.
    pub fn name(&self) -> String {
        format!("{}:{}", self.rule, self.param.path)
    }
}

/// Values for every knob, in knob order.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: usize,
    /// `None`: the value as the file writes it (candidate 0, the current
    /// settings).
    pub values: Vec<Option<Value>>,
}

/// Every knob of every rule, in file order.
pub fn knobs(rules: &RuleSet) -> Vec<Knob> {
    rules
        .rules
        .iter()
        .flat_map(|r| {
            r.tune.iter().map(|p| Knob {
                rule: r.id.clone(),
                param: p.clone(),
            })
        })
        .collect()
}

/// How the candidates were chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Search {
    Grid,
    Random,
}

/// Candidate 0 is the current settings; then the grid of `grid_steps`
/// values per range (every choice of a list) when it has at most `budget`
/// points, else `budget` random points drawn with `seed`.
pub fn candidates(
    knobs: &[Knob],
    budget: usize,
    grid_steps: usize,
    seed: u64,
) -> (Search, Vec<Candidate>) {
    let mut out = vec![Candidate {
        id: 0,
        values: vec![None; knobs.len()],
    }];
    let axes: Vec<Vec<Value>> = knobs
        .iter()
        .map(|k| k.param.space.grid(grid_steps))
        .collect();
    let size = axes
        .iter()
        .try_fold(1usize, |n, a| n.checked_mul(a.len()))
        .unwrap_or(usize::MAX);
    if size <= budget {
        for i in 0..size {
            let mut rest = i;
            let values = axes
                .iter()
                .map(|a| {
                    let v = a[rest % a.len()].clone();
                    rest /= a.len();
                    Some(v)
                })
                .collect();
            out.push(Candidate {
                id: out.len(),
                values,
            });
        }
        return (Search::Grid, out);
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    for _ in 0..budget {
        let values = knobs
            .iter()
            .map(|k| Some(k.param.space.at(rng.random::<f64>())))
            .collect();
        out.push(Candidate {
            id: out.len(),
            values,
        });
    }
    (Search::Random, out)
}

/// The rules file with `candidate`'s values written into its rules.
pub fn apply(doc: &Value, knobs: &[Knob], candidate: &Candidate) -> String {
    let mut doc = doc.clone();
    for (knob, value) in knobs.iter().zip(&candidate.values) {
        if let (Some(v), Some(rule)) = (value, rule_mut(&mut doc, &knob.rule)) {
            set(rule, &knob.param.path, v.clone());
        }
    }
    serde_yaml_ng::to_string(&doc).unwrap_or_default()
}

/// A knob's value as the rules file writes it now (in the rule, else in
/// its group's `defaults`), for reports.
pub fn current(doc: &Value, knob: &Knob) -> Option<Value> {
    let lookup = |mut at: &Value| {
        for part in knob.param.path.split('.') {
            at = at.get(part)?;
        }
        Some(at.clone())
    };
    let mut copy = doc.clone();
    let rule = Value::Mapping(rule_mut(&mut copy, &knob.rule)?.clone());
    lookup(&rule).or_else(|| {
        let is = |v: &Value| v.get("id").and_then(Value::as_str) == Some(knob.rule.as_str());
        let group = doc.get("groups")?.as_sequence()?.iter().find(|g| {
            g.get("rules")
                .and_then(Value::as_sequence)
                .is_some_and(|rules| rules.iter().any(is))
        })?;
        lookup(group.get("defaults")?)
    })
}

/// The mapping of the rule with `id`, at the top level or in a group.
fn rule_mut<'a>(doc: &'a mut Value, id: &str) -> Option<&'a mut Mapping> {
    let is = |v: &Value| v.get("id").and_then(Value::as_str) == Some(id);
    let top = doc
        .get("rules")
        .and_then(Value::as_sequence)
        .is_some_and(|l| l.iter().any(is));
    if top {
        return doc
            .get_mut("rules")?
            .as_sequence_mut()?
            .iter_mut()
            .find(|v| is(v))?
            .as_mapping_mut();
    }
    doc.get_mut("groups")?
        .as_sequence_mut()?
        .iter_mut()
        .filter_map(|g| g.get_mut("rules").and_then(Value::as_sequence_mut))
        .flat_map(|rules| rules.iter_mut())
        .find(|v| is(v))?
        .as_mapping_mut()
}

/// A value for a table cell or a line of the report, on one line: a
/// mapping or list in YAML's flow style (`{drift: 0.5, limit: 40}`).
pub fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Mapping(m) => {
            let pairs: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", shown(k), shown(v)))
                .collect();
            format!("{{{}}}", pairs.join(", "))
        }
        Value::Sequence(items) => {
            let items: Vec<String> = items.iter().map(shown).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Tagged(t) => shown(&t.value),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = "groups:\n  - name: g\n    defaults: { for: 2h }\n    rules:\n      - id: dev\n        metric: value\n        window: 1h\n        baseline: { method: robust, history: 7d }\n        above: { blue: 3, red: 8 }\n        tune: { above.blue: [2, 4], baseline.history: [3d, 7d, 14d] }\n";

    fn knobs_of(set: &RuleSet) -> Vec<Knob> {
        knobs(set)
    }

    fn setup() -> (Value, Vec<Knob>) {
        let set = RuleSet::parse(std::path::Path::new("r.yaml"), RULES).unwrap();
        (serde_yaml_ng::from_str(RULES).unwrap(), knobs(&set))
    }

    #[test]
    fn a_small_space_is_a_grid_and_a_large_one_a_seeded_sample() {
        let (_, knobs) = setup();
        let (search, c) = candidates(&knobs, 100, 5, 1);
        assert_eq!(search, Search::Grid);
        assert_eq!(c.len(), 1 + 5 * 3);
        assert_eq!(c[0].values, vec![None, None]);
        let (search, a) = candidates(&knobs, 10, 5, 7);
        assert_eq!(search, Search::Random);
        assert_eq!(a.len(), 11);
        assert_eq!(
            a,
            candidates(&knobs, 10, 5, 7).1,
            "the same seed, the same sample"
        );
        assert_ne!(a, candidates(&knobs, 10, 5, 8).1);
    }

    #[test]
    fn a_candidate_is_written_into_its_rule() {
        let (doc, knobs) = setup();
        let c = Candidate {
            id: 1,
            values: vec![Some(Value::from(2.5)), Some(Value::from("14d"))],
        };
        let text = apply(&doc, &knobs, &c);
        let set = RuleSet::parse(std::path::Path::new("r.yaml"), &text).unwrap();
        assert_eq!(set.rules[0].levels[0].threshold, 2.5);
        assert_eq!(current(&doc, &knobs[0]), Some(Value::from(3)));
        assert_eq!(shown(&current(&doc, &knobs[1]).unwrap()), "7d");
        let shift: Value = serde_yaml_ng::from_str("{drift: 0.5, limit: 40}").unwrap();
        assert_eq!(shown(&shift), "{drift: 0.5, limit: 40}");
        // A setting the rule takes from its group's defaults.
        let set = RuleSet::parse(
            std::path::Path::new("r.yaml"),
            &RULES.replace("baseline.history: [3d, 7d, 14d]", "for: [0, 3h]"),
        )
        .unwrap();
        let from_defaults = &knobs_of(&set)[1];
        assert_eq!(current(&doc, from_defaults), Some(Value::from("2h")));
    }
}
