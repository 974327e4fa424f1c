//! Tuning on one part of the history, reporting on the other: the last
//! share of the time span and/or a share of the series (chosen by a hash
//! of their names, so the same series are held out on every run) are
//! held out. A candidate is chosen by its figures on the tuning part only.

use std::collections::HashMap;

use yujing_rules::Grade;

use crate::backtest::score::{self, Episode, Event, Score};

/// Which part of the history is held out.
#[derive(Debug, Clone)]
pub struct Holdout {
    /// From this time on, everything is held out (`i64::MAX`: nothing).
    pub from_ms: i64,
    /// Series held out over the whole time span.
    pub series: std::collections::HashSet<String>,
}

impl Holdout {
    /// The last `time_share` (0–1) of `[first, last]`, and `series_share`
    /// of the series.
    pub fn new(
        (first, last): (i64, i64),
        time_share: f64,
        series: &[String],
        series_share: f64,
    ) -> Self {
        let from_ms = if time_share > 0.0 {
            last - ((last - first) as f64 * time_share) as i64
        } else {
            i64::MAX
        };
        let per_mille = (series_share * 1000.0).round() as u64;
        Holdout {
            from_ms,
            series: series
                .iter()
                .filter(|s| fnv1a(s) % 1000 < per_mille)
                .cloned()
                .collect(),
        }
    }

    fn held(&self, series: &str, at_ms: i64) -> bool {
        at_ms >= self.from_ms || self.series.contains(series)
    }
}

/// The figures of one candidate on the tuning part and on the held-out part.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figures {
    pub tuning: Score,
    pub held_out: Score,
}

/// Score `episodes` at `grade` on both parts: an episode or event belongs
/// to the part of its first sensor at its start; a series' hours are split
/// at the holdout time.
pub fn figures(
    episodes: &[Episode],
    grade: Grade,
    events: &[Event],
    spans: &HashMap<String, (i64, i64)>,
    holdout: &Holdout,
    (lead_ms, data_end_ms): (i64, i64),
) -> Figures {
    let part = |held: bool| {
        let eps: Vec<&Episode> = episodes
            .iter()
            .filter(|e| {
                e.sensors
                    .first()
                    .is_some_and(|s| holdout.held(s, e.raised_ms) == held)
            })
            .collect();
        let evs: Vec<Event> = events
            .iter()
            .filter(|e| holdout.held(&e.series, e.start_ms) == held)
            .cloned()
            .collect();
        let hours: HashMap<String, f64> = spans
            .iter()
            .filter_map(|(s, &(a, b))| {
                let (from, to) = match (holdout.series.contains(s), held) {
                    (true, true) => (a, b),
                    (true, false) => return None,
                    (false, true) => (a.max(holdout.from_ms), b),
                    (false, false) => (a, b.min(holdout.from_ms)),
                };
                (to > from).then(|| (s.clone(), (to - from) as f64 / 3_600_000.0))
            })
            .collect();
        score::score(&eps, grade, &evs, &hours, (lead_ms, data_end_ms))
    };
    Figures {
        tuning: part(false),
        held_out: part(true),
    }
}

/// A stable hash of a series name (FNV-1a): the same series are held out
/// on every run and every machine.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn events_and_warnings_are_scored_in_their_own_part() {
        let holdout = Holdout::new((0, 100 * H), 0.25, &["a".into()], 0.0);
        assert_eq!(holdout.from_ms, 75 * H);
        let ep = |at: i64| Episode {
            rule: "r".into(),
            group: "a".into(),
            sensors: vec!["a".into()],
            raised_ms: at,
            resolved_ms: Some(at + H),
            grades: vec![(at, Grade::Blue)],
        };
        let ev = |at: i64| Event {
            series: "a".into(),
            start_ms: at,
            end_ms: at + H,
        };
        let spans = HashMap::from([("a".to_owned(), (0, 100 * H))]);
        // Tuning part: one event caught, one false warning; held out: one
        // event missed.
        let f = figures(
            &[ep(10 * H), ep(40 * H)],
            Grade::Blue,
            &[ev(10 * H), ev(80 * H)],
            &spans,
            &holdout,
            (0, 100 * H),
        );
        assert_eq!(
            (f.tuning.events, f.tuning.detected, f.tuning.false_warnings),
            (1, 1, 1)
        );
        assert_eq!(
            (f.held_out.events, f.held_out.detected, f.held_out.warnings),
            (1, 0, 0)
        );
        assert!((f.tuning.series_hours - 75.0).abs() < 1e-9);
        assert!((f.held_out.series_hours - 25.0).abs() < 1e-9);
    }

    #[test]
    fn a_share_of_the_series_is_held_out_the_same_way_every_time() {
        let names: Vec<String> = (0..200).map(|i| format!("s{i}")).collect();
        let a = Holdout::new((0, H), 0.0, &names, 0.3);
        let b = Holdout::new((0, H), 0.0, &names, 0.3);
        assert_eq!(a.series, b.series);
        assert!((40..80).contains(&a.series.len()), "{}", a.series.len());
        assert_eq!(a.from_ms, i64::MAX);
    }
}
