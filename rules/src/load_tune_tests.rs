//! `tune:` spaces checked when the rules load.

use super::*;

fn problems(text: &str) -> Vec<String> {
    RuleSet::parse(Path::new("rules.yaml"), text)
        .unwrap_err()
        .problems()
        .iter()
        .map(|p| format!("{}:{}: {}", p.line, p.column, p.message))
        .collect()
}

const RULE: &str = "\
rules:
  - id: dev
    metric: value
    window: 1h
    baseline: { method: robust, history: 7d }
    above: { blue: 3, yellow: 4, orange: 6, red: 8 }
    tune:
      above.blue: [2.5, 3.5]
      for: [0, 3h]
      baseline.history: [3d, 7d, 14d]
";

#[test]
fn a_valid_space_is_read_with_the_rule() {
    let set = RuleSet::parse(Path::new("rules.yaml"), RULE).unwrap();
    let tune = &set.rules[0].tune;
    assert_eq!(tune.len(), 3);
    assert_eq!(tune[0].path, "above.blue");
}

#[test]
fn a_malformed_space_is_refused_at_its_key() {
    let p = problems(&RULE.replace("[2.5, 3.5]", "[3.5, 2.5]"));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].starts_with("8:7: tune.above.blue: the range [3.5, 2.5] is empty"),
        "{p:#?}"
    );
    // A range whose end makes the rule invalid: blue above yellow.
    let p = problems(&RULE.replace("[2.5, 3.5]", "[2.5, 5]"));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].starts_with("8:7: tune.above.blue: with 5.0 the rule is invalid"),
        "{p:#?}"
    );
    let p = problems(&RULE.replace("above.blue: [2.5, 3.5]", "id: [a, b, c]"));
    assert!(
        p[0].contains("`id` is not a setting tune can search"),
        "{p:#?}"
    );
    let p = problems(&RULE.replace("for: [0, 3h]", "for: [0, soon]"));
    assert!(p[0].contains("two numbers or two durations"), "{p:#?}");
}
