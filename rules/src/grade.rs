//! The national four-level warning scale.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Warning grade, ordered from least to most serious.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grade {
    Blue,
    Yellow,
    Orange,
    Red,
}

impl Grade {
    /// All grades, least serious first.
    pub const ALL: [Grade; 4] = [Grade::Blue, Grade::Yellow, Grade::Orange, Grade::Red];

    /// The grade named `blue`, `yellow`, `orange` or `red`.
    pub fn parse(name: &str) -> Option<Grade> {
        Grade::ALL.into_iter().find(|g| g.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Grade::Blue => "blue",
            Grade::Yellow => "yellow",
            Grade::Orange => "orange",
            Grade::Red => "red",
        }
    }

    /// Level in Roman numerals: blue IV … red I.
    pub fn level(self) -> &'static str {
        match self {
            Grade::Blue => "IV",
            Grade::Yellow => "III",
            Grade::Orange => "II",
            Grade::Red => "I",
        }
    }

    /// CAP 1.2 `<severity>`.
    pub fn cap_severity(self) -> &'static str {
        match self {
            Grade::Blue => "Minor",
            Grade::Yellow => "Moderate",
            Grade::Orange => "Severe",
            Grade::Red => "Extreme",
        }
    }
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a warning is for values rising above or falling below thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Above,
    Below,
}

impl Direction {
    /// Whether `value` crosses `threshold` (strictly).
    pub fn crosses(self, value: f64, threshold: f64) -> bool {
        match self {
            Direction::Above => value > threshold,
            Direction::Below => value < threshold,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Direction::Above => ">",
            Direction::Below => "<",
        }
    }
}

/// The highest grade whose threshold `value` crosses, with that threshold.
/// `thresholds` are ordered blue → red.
pub fn grade_of(
    value: f64,
    direction: Direction,
    thresholds: &[(Grade, f64)],
) -> Option<(Grade, f64)> {
    thresholds
        .iter()
        .rev()
        .find(|(_, t)| direction.crosses(value, *t))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_crossed_grade_wins() {
        let t = [
            (Grade::Blue, 75.0),
            (Grade::Yellow, 115.0),
            (Grade::Orange, 150.0),
            (Grade::Red, 250.0),
        ];
        assert_eq!(grade_of(50.0, Direction::Above, &t), None);
        assert_eq!(grade_of(75.0, Direction::Above, &t), None, "strictly above");
        assert_eq!(
            grade_of(75.1, Direction::Above, &t),
            Some((Grade::Blue, 75.0))
        );
        assert_eq!(
            grade_of(200.0, Direction::Above, &t),
            Some((Grade::Orange, 150.0))
        );
        assert_eq!(
            grade_of(999.0, Direction::Above, &t),
            Some((Grade::Red, 250.0))
        );
    }

    #[test]
    fn below_thresholds_and_gaps() {
        // Dissolved oxygen: lower is worse; no yellow grade defined.
        let t = [(Grade::Blue, 5.0), (Grade::Orange, 2.0), (Grade::Red, 1.0)];
        assert_eq!(grade_of(6.0, Direction::Below, &t), None);
        assert_eq!(
            grade_of(3.0, Direction::Below, &t),
            Some((Grade::Blue, 5.0))
        );
        assert_eq!(
            grade_of(1.5, Direction::Below, &t),
            Some((Grade::Orange, 2.0))
        );
        assert_eq!(grade_of(0.2, Direction::Below, &t), Some((Grade::Red, 1.0)));
    }

    #[test]
    fn scale_names() {
        assert!(Grade::Red > Grade::Orange && Grade::Blue < Grade::Yellow);
        let levels: Vec<_> = Grade::ALL.iter().map(|g| g.level()).collect();
        assert_eq!(levels, ["IV", "III", "II", "I"]);
        assert_eq!(Grade::Orange.cap_severity(), "Severe");
    }
}
