//! How long a unit has for each step, by grade. A missed deadline climbs
//! the ladder.
//!
//! | grade | acknowledge | on site | handled |
//! |---|---|---|---|
//! | red | 5 min | 30 min | 4 h |
//! | orange | 15 min | 1 h | 8 h |
//! | yellow | 30 min | 2 h | 24 h |
//! | blue | 2 h | 8 h | 72 h |
//!
//! A referral to a department gives it the acknowledge deadline to report
//! in. The file may override any cell:
//! `deadlines: { red: { acknowledge: 3m } }`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use yujing_rules::Grade;

/// The steps a deadline is set for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// From assignment (or escalation, or referral) to acknowledgement.
    Acknowledge,
    /// From acknowledgement to someone on site.
    OnSite,
    /// From acknowledgement to handled.
    Handled,
}

impl Step {
    pub const ALL: [Step; 3] = [Step::Acknowledge, Step::OnSite, Step::Handled];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Acknowledge => "acknowledge",
            Step::OnSite => "on_site",
            Step::Handled => "handled",
        }
    }
}

/// Deadlines per grade and step, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Deadlines(BTreeMap<(Grade, Step), i64>);

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

impl Default for Deadlines {
    fn default() -> Self {
        let rows = [
            (Grade::Red, [5 * MIN, 30 * MIN, 4 * HOUR]),
            (Grade::Orange, [15 * MIN, HOUR, 8 * HOUR]),
            (Grade::Yellow, [30 * MIN, 2 * HOUR, 24 * HOUR]),
            (Grade::Blue, [2 * HOUR, 8 * HOUR, 72 * HOUR]),
        ];
        let mut table = BTreeMap::new();
        for (grade, cells) in rows {
            for (step, ms) in Step::ALL.into_iter().zip(cells) {
                table.insert((grade, step), ms);
            }
        }
        Deadlines(table)
    }
}

/// The file's `deadlines:` section: grade → step → duration.
pub type DeadlineOverrides = BTreeMap<Grade, BTreeMap<Step, String>>;

impl Deadlines {
    /// The defaults with `overrides` applied; each bad duration is named.
    pub fn with(overrides: &DeadlineOverrides) -> Result<Self, Vec<(Grade, Step, String)>> {
        let mut out = Deadlines::default();
        let mut bad = Vec::new();
        for (grade, steps) in overrides {
            for (step, text) in steps {
                match humantime::parse_duration(text) {
                    Ok(d) if d > Duration::ZERO => {
                        out.0.insert((*grade, *step), d.as_millis() as i64);
                    }
                    Ok(_) => bad.push((*grade, *step, format!("{text:?} must be more than 0"))),
                    Err(e) => {
                        bad.push((*grade, *step, format!("{text:?}: {e} (write e.g. 5m, 2h)")))
                    }
                }
            }
        }
        if bad.is_empty() { Ok(out) } else { Err(bad) }
    }

    /// How long `step` may take at `grade`.
    pub fn get(&self, grade: Grade, step: Step) -> i64 {
        self.0[&(grade, step)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn red_is_answered_in_minutes_blue_in_hours_and_cells_can_be_overridden() {
        let d = Deadlines::default();
        assert_eq!(d.get(Grade::Red, Step::Acknowledge), 5 * MIN);
        assert_eq!(d.get(Grade::Red, Step::OnSite), 30 * MIN);
        assert_eq!(d.get(Grade::Blue, Step::Acknowledge), 2 * HOUR);
        for step in Step::ALL {
            for pair in Grade::ALL.windows(2) {
                assert!(
                    d.get(pair[0], step) >= d.get(pair[1], step),
                    "a graver grade never has longer: {pair:?} {step:?}"
                );
            }
        }
        let overrides: DeadlineOverrides =
            serde_yaml_ng::from_str("red: { acknowledge: 3m }\nblue: { handled: 1d }").unwrap();
        let d = Deadlines::with(&overrides).unwrap();
        assert_eq!(d.get(Grade::Red, Step::Acknowledge), 3 * MIN);
        assert_eq!(
            d.get(Grade::Red, Step::OnSite),
            30 * MIN,
            "others keep their default"
        );
        assert_eq!(d.get(Grade::Blue, Step::Handled), 24 * HOUR);
        let bad: DeadlineOverrides =
            serde_yaml_ng::from_str("red: { acknowledge: soon, on_site: 0s }").unwrap();
        let e = Deadlines::with(&bad).unwrap_err();
        assert_eq!(e.len(), 2, "every bad cell: {e:?}");
    }
}
