//! Scoring against responders' verdicts (`yujing feedback export`): each
//! warning of a rule that overlaps a verdict of that rule on one of its
//! sensors is judged — confirmed if any such verdict confirmed it, a false
//! alarm if one said so — and the rule's precision is confirmed / judged.
//! Warnings no verdict covers are counted apart: responders never saw
//! them (a proposed rule's new warnings).

use std::collections::HashMap;

use super::score::Episode;

/// A responder's verdict on a span of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub series: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub rule: String,
    /// Confirmed (true) or a false alarm (false); other outcomes (sensor
    /// fault, duplicate) are not kept.
    pub confirmed: bool,
}

/// One rule's (or all rules') warnings against the verdicts.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct VerdictScore {
    pub confirmed: usize,
    pub false_alarms: usize,
    /// Warnings no verdict covers.
    pub unjudged: usize,
    /// Confirmed / (confirmed + false alarms); `None` when none is judged.
    pub precision: Option<f64>,
}

/// Score `episodes` against `verdicts` (matched on rule, series and time).
pub fn score(episodes: &[&Episode], verdicts: &[Verdict], data_end_ms: i64) -> VerdictScore {
    let mut on: HashMap<(&str, &str), Vec<&Verdict>> = HashMap::new();
    for v in verdicts {
        on.entry((v.rule.as_str(), v.series.as_str()))
            .or_default()
            .push(v);
    }
    let mut s = VerdictScore::default();
    for e in episodes {
        let (from, until) = (e.raised_ms, e.resolved_ms.unwrap_or(data_end_ms));
        let mut judged: Option<bool> = None;
        for sensor in &e.sensors {
            for v in on
                .get(&(e.rule.as_str(), sensor.as_str()))
                .into_iter()
                .flatten()
            {
                if v.start_ms <= until && v.end_ms >= from {
                    judged = Some(judged.unwrap_or(false) || v.confirmed);
                }
            }
        }
        match judged {
            Some(true) => s.confirmed += 1,
            Some(false) => s.false_alarms += 1,
            None => s.unjudged += 1,
        }
    }
    let judged = s.confirmed + s.false_alarms;
    s.precision = (judged > 0).then(|| s.confirmed as f64 / judged as f64);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use yujing_rules::Grade;

    const H: i64 = 3_600_000;

    fn episode(rule: &str, sensor: &str, raised: i64, resolved: i64) -> Episode {
        Episode {
            rule: rule.into(),
            group: sensor.into(),
            sensors: vec![sensor.into()],
            raised_ms: raised,
            resolved_ms: Some(resolved),
            grades: vec![(raised, Grade::Blue)],
        }
    }

    fn verdict(rule: &str, sensor: &str, at: i64, confirmed: bool) -> Verdict {
        Verdict {
            series: sensor.into(),
            start_ms: at,
            end_ms: at + H,
            rule: rule.into(),
            confirmed,
        }
    }

    #[test]
    fn warnings_are_judged_by_the_verdicts_of_their_rule_on_their_sensors() {
        let eps = [
            episode("pm25", "s1", 0, H),           // confirmed
            episode("pm25", "s1", 10 * H, 11 * H), // false alarm
            episode("pm25", "s2", 0, H),           // no verdict on s2
            episode("pm25", "s1", 20 * H, 21 * H), // none then
        ];
        let verdicts = [
            verdict("pm25", "s1", 0, true),
            verdict("pm25", "s1", 10 * H, false),
            // Another rule's verdict says nothing of pm25's warnings.
            verdict("noise", "s1", 20 * H, true),
        ];
        let refs: Vec<&Episode> = eps.iter().collect();
        let s = score(&refs, &verdicts, 30 * H);
        assert_eq!((s.confirmed, s.false_alarms, s.unjudged), (1, 1, 2));
        assert_eq!(s.precision, Some(0.5));
        assert_eq!(score(&refs[2..], &verdicts, 30 * H).precision, None);
    }
}
