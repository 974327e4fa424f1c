//! A rule's search space for `yujing tune`, declared next to the rule:
//!
//! ```yaml
//! tune: { above.blue: [2.5, 6], for: [0, 3h], baseline.history: [3d, 7d, 14d] }
//! ```
//!
//! Each key is a path into the rule's own keys (`above.blue` is `blue` in
//! its `above:`); each value is a range `[low, high]` of numbers or of
//! durations, or a list of three or more choices (`{one_of: [a, b]}` for
//! two). Every end of every range and every choice is checked by applying
//! it to the rule and validating the result, so a space that could make a
//! rule invalid is refused when the rules load. The live pipeline ignores
//! `tune:`.

use serde_yaml_ng::{Mapping, Value};

/// One tuned key of a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct TuneParam {
    /// The path as written: `above.blue`.
    pub path: String,
    pub space: Space,
}

/// What a tuned key may take.
#[derive(Debug, Clone, PartialEq)]
pub enum Space {
    /// Numbers from `low` to `high`.
    Numbers { low: f64, high: f64 },
    /// Durations from `low` to `high`, in milliseconds.
    Durations { low: i64, high: i64 },
    /// One of these values.
    Choices(Vec<Value>),
}

impl Space {
    /// `n` values spread over the space (every choice for choices).
    pub fn grid(&self, n: usize) -> Vec<Value> {
        let n = n.max(2);
        match self {
            Space::Numbers { low, high } => (0..n)
                .map(|i| number(low + (high - low) * i as f64 / (n - 1) as f64))
                .collect(),
            Space::Durations { low, high } => (0..n)
                .map(|i| duration(low + (high - low) * i as i64 / (n - 1) as i64))
                .collect(),
            Space::Choices(c) => c.clone(),
        }
    }

    /// A value at `u` in [0, 1) along the space.
    pub fn at(&self, u: f64) -> Value {
        match self {
            Space::Numbers { low, high } => number(low + (high - low) * u),
            Space::Durations { low, high } => {
                duration(low + ((high - low) as f64 * u).round() as i64)
            }
            Space::Choices(c) => c[((u * c.len() as f64) as usize).min(c.len() - 1)].clone(),
        }
    }

    /// The values that bound the space: its ends, or every choice.
    pub fn extremes(&self) -> Vec<Value> {
        match self {
            Space::Choices(c) => c.clone(),
            _ => vec![self.at(0.0), self.at(1.0)],
        }
    }
}

/// A number with three significant digits (a tuned threshold needs no
/// more, and the written rules stay readable).
fn number(v: f64) -> Value {
    if v == 0.0 || !v.is_finite() {
        return Value::from(0.0);
    }
    let digits = 2 - v.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits.max(0));
    Value::from((v * scale).round() / scale)
}

/// A duration as the rules write it, to the minute (`90m`, `0`).
fn duration(ms: i64) -> Value {
    let minutes = (ms as f64 / 60_000.0).round() as i64;
    if minutes == 0 {
        Value::from(0)
    } else {
        Value::from(format!("{minutes}m"))
    }
}

/// Read a rule's `tune:` mapping; the problems, each with its key path.
pub fn parse(tune: &Value) -> Result<Vec<TuneParam>, Vec<(String, String)>> {
    let Some(map) = tune.as_mapping() else {
        return Err(vec![(
            "tune".into(),
            "tune: expected a mapping of key paths to ranges or choices".into(),
        )]);
    };
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (k, v) in map {
        let path = k.as_str().unwrap_or_default().to_owned();
        match space(v) {
            Ok(space) if !path.is_empty() => out.push(TuneParam { path, space }),
            Ok(_) => problems.push((
                "tune".into(),
                "tune: a key must be a path such as above.blue".into(),
            )),
            Err(m) => problems.push((format!("tune.{path}"), format!("tune.{path}: {m}"))),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn space(v: &Value) -> Result<Space, String> {
    if let Some(choices) = v.get("one_of").and_then(Value::as_sequence) {
        return if choices.len() >= 2 {
            Ok(Space::Choices(choices.clone()))
        } else {
            Err("one_of needs at least two choices".into())
        };
    }
    let Some(list) = v.as_sequence() else {
        return Err("expected [low, high], a list of choices, or {one_of: [...]}".into());
    };
    match list.as_slice() {
        [low, high] => {
            if let (Some(a), Some(b)) = (low.as_f64(), high.as_f64()) {
                return if a < b {
                    Ok(Space::Numbers { low: a, high: b })
                } else {
                    Err(format!(
                        "the range [{a}, {b}] is empty: low must be below high"
                    ))
                };
            }
            let ms = |v: &Value| -> Option<i64> {
                match v {
                    Value::Number(n) if n.as_f64() == Some(0.0) => Some(0),
                    Value::String(s) => humantime::parse_duration(s.trim())
                        .ok()
                        .map(|d| d.as_millis() as i64),
                    _ => None,
                }
            };
            match (ms(low), ms(high)) {
                (Some(a), Some(b)) if a < b => Ok(Space::Durations { low: a, high: b }),
                (Some(_), Some(_)) => Err("the range is empty: low must be below high".into()),
                _ => Err(
                    "a range is two numbers or two durations ([2.5, 6], [0, 3h]); for two choices write {one_of: [a, b]}"
                        .into(),
                ),
            }
        }
        l if l.len() >= 3 => Ok(Space::Choices(l.to_vec())),
        _ => Err("expected [low, high] or three or more choices".into()),
    }
}

/// Set `path` (`above.blue`) in a rule's mapping to `value`; `false` when
/// the path does not lead into a mapping of the rule.
pub fn set(rule: &mut Mapping, path: &str, value: Value) -> bool {
    let mut parts = path.split('.').peekable();
    let mut at = rule;
    while let Some(part) = parts.next() {
        let key = Value::from(part);
        if parts.peek().is_none() {
            at.insert(key, value);
            return true;
        }
        let next = at
            .entry(key)
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        let Some(m) = next.as_mapping_mut() else {
            return false;
        };
        at = m;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn reads_ranges_durations_and_choices() {
        let p = parse(&yaml("{above.blue: [2.5, 6], for: [0, 3h], baseline.history: [3d, 7d, 14d], window: {one_of: [1h, 2h]}}")).unwrap();
        assert_eq!(
            p[0].space,
            Space::Numbers {
                low: 2.5,
                high: 6.0
            }
        );
        assert_eq!(
            p[1].space,
            Space::Durations {
                low: 0,
                high: 10_800_000
            }
        );
        assert_eq!(p[2].space.extremes().len(), 3);
        assert_eq!(
            p[3].space.extremes(),
            [Value::from("1h"), Value::from("2h")]
        );
        assert_eq!(
            p[0].space.grid(3),
            [Value::from(2.5), Value::from(4.25), Value::from(6.0)]
        );
        assert_eq!(p[1].space.at(0.5), Value::from("90m"));
        assert_eq!(number(4.56789), Value::from(4.57));
        assert_eq!(number(1234.5), Value::from(1235.0));
    }

    #[test]
    fn a_malformed_space_names_its_key() {
        for (text, wanted) in [
            ("{above.blue: [6, 2.5]}", "empty"),
            ("{above.blue: [1, 2h]}", "two numbers or two durations"),
            ("{above.blue: 3}", "expected [low, high]"),
            ("{above.blue: [3]}", "expected [low, high]"),
            ("[1, 2]", "expected a mapping"),
        ] {
            let e = parse(&yaml(text)).unwrap_err();
            assert!(e[0].1.contains(wanted), "{text}: {e:?}");
        }
    }

    #[test]
    fn sets_a_nested_key() {
        let mut rule = yaml("{id: a, above: {blue: 3, red: 8}}")
            .as_mapping()
            .unwrap()
            .clone();
        assert!(set(&mut rule, "above.blue", Value::from(4.5)));
        assert!(set(&mut rule, "for", Value::from("2h")));
        assert_eq!(
            rule.get("above").unwrap().get("blue"),
            Some(&Value::from(4.5))
        );
        assert_eq!(rule.get("above").unwrap().get("red"), Some(&Value::from(8)));
        assert!(!set(&mut rule, "id.x", Value::from(1)));
    }
}
