//! From a warning timeline to the figures an ops team reviews: warnings per
//! rule and grade, time in each grade, flaps, and against labelled events,
//! recall, precision, false warnings per 1,000 series-hours and lead time.
//!
//! Definitions (also in `docs/backtest.md`):
//! - an *episode* is one warning from raised to resolved (or to the end of
//!   the data); it reaches grade g at the first window end with g or above;
//! - an event is *detected* at grade g when an episode on one of its
//!   series is at g or above at some time in `[start − lead, end]`; the
//!   *lead time* is the event's start minus the first such time, so at most
//!   `lead` (negative: the warning came after the start);
//! - an episode at g or above at no time in any event's `[start − lead,
//!   end]` of its series is a *false warning*; precision is the share of
//!   episodes reaching g that are not false;
//! - a *flap* is an episode raised within `flap_window` of the previous
//!   episode of the same rule and group resolving.

use std::collections::{BTreeMap, HashMap};

use yujing_ingest::AreaLevel;
use yujing_rules::{Grade, Transition, WarningTransition};

/// What scoring needs of one warning transition (a transition carries its
/// whole rule; a year of noisy rules makes millions of them).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub warning_id: String,
    pub rule: String,
    pub group_by: AreaLevel,
    pub group: String,
    pub transition: Transition,
    pub grade: Option<Grade>,
    /// The window end that caused it.
    pub at_ms: i64,
}

impl From<&WarningTransition> for Change {
    fn from(t: &WarningTransition) -> Self {
        Change {
            warning_id: t.warning_id.clone(),
            rule: t.rule.id.clone(),
            group_by: t.rule.group_by,
            group: t.group_key.clone(),
            transition: t.transition,
            grade: t.grade,
            at_ms: t.window_end_ms,
        }
    }
}

/// A labelled event on one series (a sensor).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub series: String,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// One warning from raised to resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub rule: String,
    pub group: String,
    /// The sensors of the group.
    pub sensors: Vec<String>,
    pub raised_ms: i64,
    /// `None`: still active when the data ended.
    pub resolved_ms: Option<i64>,
    /// Each grade change: (window end, grade).
    pub grades: Vec<(i64, Grade)>,
}

impl Episode {
    /// Each grade step as `(from, until, grade)`; a still active episode
    /// ends at `data_end_ms`.
    pub fn steps(&self, data_end_ms: i64) -> impl Iterator<Item = (i64, i64, Grade)> + '_ {
        let end = self.resolved_ms.unwrap_or(data_end_ms);
        self.grades.iter().enumerate().map(move |(i, &(from, g))| {
            let until = self.grades.get(i + 1).map_or(end, |(next, _)| *next);
            (from, until, g)
        })
    }

    /// The times it was at `grade` or above, as `[from, to)` spans.
    fn spans_at(&self, grade: Grade, data_end_ms: i64) -> Vec<(i64, i64)> {
        let mut out: Vec<(i64, i64)> = Vec::new();
        for (from, until, _) in self.steps(data_end_ms).filter(|s| s.2 >= grade) {
            match out.last_mut() {
                Some(last) if last.1 == from => last.1 = until,
                _ => out.push((from, until)),
            }
        }
        out
    }

    /// When the episode first reached `grade` or above.
    pub fn reached(&self, grade: Grade) -> Option<i64> {
        self.grades
            .iter()
            .find(|(_, g)| *g >= grade)
            .map(|(t, _)| *t)
    }

    /// Time spent at each grade, the episode ending at `end_ms` if still
    /// active.
    fn time_in_grades(&self, data_end_ms: i64) -> [i64; 4] {
        let mut out = [0; 4];
        for (from, until, g) in self.steps(data_end_ms) {
            out[g as usize] += (until - from).max(0);
        }
        out
    }
}

/// Episodes from a timeline, in order of raising. `sensors_of(rule, group)`
/// names the sensors a warning covers.
pub fn episodes(timeline: &[Change], sensors_of: impl Fn(&Change) -> Vec<String>) -> Vec<Episode> {
    let mut open: HashMap<&str, usize> = HashMap::new();
    let mut out: Vec<Episode> = Vec::new();
    for t in timeline {
        match t.transition {
            Transition::Raised => {
                open.insert(&t.warning_id, out.len());
                out.push(Episode {
                    rule: t.rule.clone(),
                    group: t.group.clone(),
                    sensors: sensors_of(t),
                    raised_ms: t.at_ms,
                    resolved_ms: None,
                    grades: t.grade.map(|g| (t.at_ms, g)).into_iter().collect(),
                });
            }
            Transition::Escalated | Transition::DeEscalated => {
                if let (Some(&i), Some(g)) = (open.get(t.warning_id.as_str()), t.grade) {
                    out[i].grades.push((t.at_ms, g));
                }
            }
            Transition::Resolved => {
                if let Some(i) = open.remove(t.warning_id.as_str()) {
                    out[i].resolved_ms = Some(t.at_ms);
                }
            }
        }
    }
    out
}

/// Warnings of one rule (or all) at one grade and above.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct GradeSummary {
    /// Episodes reaching the grade.
    pub warnings: usize,
    /// Hours spent at exactly this grade.
    pub hours: f64,
    /// Episodes raised again soon after the previous one resolved.
    pub flaps: usize,
}

/// Per rule, per grade (blue … red).
pub fn summarise(
    episodes: &[Episode],
    data_end_ms: i64,
    flap_window_ms: i64,
) -> BTreeMap<String, [GradeSummary; 4]> {
    let mut out: BTreeMap<String, [GradeSummary; 4]> = BTreeMap::new();
    let mut last_resolved: HashMap<(&str, &str), i64> = HashMap::new();
    for e in episodes {
        let row = out.entry(e.rule.clone()).or_default();
        let times = e.time_in_grades(data_end_ms);
        let flap = last_resolved
            .get(&(e.rule.as_str(), e.group.as_str()))
            .is_some_and(|&r| e.raised_ms - r <= flap_window_ms);
        let first = e.grades.first().map(|(_, g)| *g);
        for g in Grade::ALL {
            let s = &mut row[g as usize];
            if e.reached(g).is_some() {
                s.warnings += 1;
                if flap && first.is_some_and(|f| f >= g) {
                    s.flaps += 1;
                }
            }
            s.hours += times[g as usize] as f64 / 3_600_000.0;
        }
        if let Some(r) = e.resolved_ms {
            last_resolved.insert((&e.rule, &e.group), r);
        }
    }
    out
}

/// Detection figures at one grade and above.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Score {
    pub events: usize,
    pub detected: usize,
    pub warnings: usize,
    pub false_warnings: usize,
    pub series_hours: f64,
    /// Detected / events; `None` without events.
    pub recall: Option<f64>,
    /// True / all warnings; `None` without warnings.
    pub precision: Option<f64>,
    pub false_per_1000_series_hours: f64,
    /// Median lead time in minutes over detected events.
    pub lead_minutes_median: Option<f64>,
    pub lead_minutes_mean: Option<f64>,
}

/// Score `episodes` (of one rule, or all) reaching `grade` against
/// `events`. Every series in `series_hours` counts as labelled: a series
/// with no events has none.
pub fn score(
    episodes: &[&Episode],
    grade: Grade,
    events: &[Event],
    series_hours: &HashMap<String, f64>,
    (lead_ms, data_end_ms): (i64, i64),
) -> Score {
    let reached: Vec<(&Episode, Vec<(i64, i64)>)> = episodes
        .iter()
        .filter(|e| e.sensors.iter().any(|s| series_hours.contains_key(s)))
        .map(|e| (*e, e.spans_at(grade, data_end_ms)))
        .filter(|(_, spans)| !spans.is_empty())
        .collect();
    // The first time in the event's window the episode was at the grade.
    let first_in = |event: &Event, e: &Episode, spans: &[(i64, i64)]| {
        let from = event.start_ms - lead_ms;
        if !e.sensors.contains(&event.series) {
            return None;
        }
        spans
            .iter()
            .filter(|(a, b)| *a <= event.end_ms && *b > from)
            .map(|(a, _)| (*a).max(from))
            .min()
    };
    // Indexes by series: years of history make many episodes and events.
    let mut episodes_on: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (e, _)) in reached.iter().enumerate() {
        for s in &e.sensors {
            episodes_on.entry(s).or_default().push(i);
        }
    }
    let mut events_on: HashMap<&str, Vec<&Event>> = HashMap::new();
    for ev in events {
        events_on.entry(&ev.series).or_default().push(ev);
    }
    let mut leads = Vec::new();
    for event in events {
        let first = episodes_on
            .get(event.series.as_str())
            .into_iter()
            .flatten()
            .filter_map(|&i| first_in(event, reached[i].0, &reached[i].1))
            .min();
        if let Some(at) = first {
            leads.push((event.start_ms - at) as f64 / 60_000.0);
        }
    }
    let false_warnings = reached
        .iter()
        .filter(|(e, spans)| {
            !e.sensors.iter().any(|s| {
                events_on
                    .get(s.as_str())
                    .is_some_and(|evs| evs.iter().any(|ev| first_in(ev, e, spans).is_some()))
            })
        })
        .count();
    let hours: f64 = series_hours.values().sum();
    let mut sorted = leads.clone();
    sorted.sort_by(f64::total_cmp);
    let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
    Score {
        events: events.len(),
        detected: leads.len(),
        warnings: reached.len(),
        false_warnings,
        series_hours: hours,
        recall: ratio(leads.len(), events.len()),
        precision: ratio(reached.len() - false_warnings, reached.len()),
        false_per_1000_series_hours: if hours > 0.0 {
            false_warnings as f64 * 1000.0 / hours
        } else {
            0.0
        },
        lead_minutes_median: (!sorted.is_empty()).then(|| sorted[sorted.len() / 2]),
        lead_minutes_mean: (!leads.is_empty())
            .then(|| leads.iter().sum::<f64>() / leads.len() as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn episode(raised: i64, resolved: Option<i64>, grades: &[(i64, Grade)]) -> Episode {
        Episode {
            rule: "r".into(),
            group: "s1".into(),
            sensors: vec!["s1".into()],
            raised_ms: raised,
            resolved_ms: resolved,
            grades: grades.to_vec(),
        }
    }

    /// Two events on s1 over 100 hours; three warnings: one an hour before
    /// the first event (within a 2 h lead), one inside the second reaching
    /// orange 30 min after its start, one far from both.
    #[test]
    fn hand_computed_recall_false_rate_and_lead() {
        let events = vec![
            Event {
                series: "s1".into(),
                start_ms: 10 * H,
                end_ms: 12 * H,
            },
            Event {
                series: "s1".into(),
                start_ms: 50 * H,
                end_ms: 55 * H,
            },
        ];
        let eps = [
            episode(9 * H, Some(13 * H), &[(9 * H, Grade::Blue)]),
            episode(
                50 * H,
                Some(54 * H),
                &[(50 * H, Grade::Yellow), (50 * H + H / 2, Grade::Orange)],
            ),
            episode(80 * H, Some(81 * H), &[(80 * H, Grade::Blue)]),
        ];
        let refs: Vec<&Episode> = eps.iter().collect();
        let hours = HashMap::from([("s1".to_owned(), 100.0)]);
        let blue = score(&refs, Grade::Blue, &events, &hours, (2 * H, 100 * H));
        assert_eq!(
            (
                blue.events,
                blue.detected,
                blue.warnings,
                blue.false_warnings
            ),
            (2, 2, 3, 1)
        );
        assert_eq!(blue.recall, Some(1.0));
        assert_eq!(blue.precision, Some(2.0 / 3.0));
        assert_eq!(blue.false_per_1000_series_hours, 10.0);
        // Leads: +60 min and 0 min.
        assert_eq!(blue.lead_minutes_mean, Some(30.0));
        let orange = score(&refs, Grade::Orange, &events, &hours, (2 * H, 100 * H));
        assert_eq!(
            (orange.detected, orange.warnings, orange.false_warnings),
            (1, 1, 0)
        );
        assert_eq!(orange.recall, Some(0.5));
        assert_eq!(orange.lead_minutes_median, Some(-30.0));
        // Without lead, the first warning still covers its event, from the
        // event's start: detected, with no lead time.
        let strict = score(&refs, Grade::Blue, &events, &hours, (0, 100 * H));
        assert_eq!((strict.detected, strict.false_warnings), (2, 1));
        assert_eq!(strict.lead_minutes_mean, Some(0.0));
        // One raised 5 h early and still on: counted from the lead's start.
        let early = [episode(5 * H, Some(11 * H), &[(5 * H, Grade::Blue)])];
        let refs: Vec<&Episode> = early.iter().collect();
        let s = score(&refs, Grade::Blue, &events[..1], &hours, (2 * H, 100 * H));
        assert_eq!(
            (s.detected, s.false_warnings, s.lead_minutes_mean),
            (1, 0, Some(120.0))
        );
    }

    #[test]
    fn time_in_grade_and_flaps() {
        let eps = [
            episode(0, Some(3 * H), &[(0, Grade::Blue), (H, Grade::Yellow)]),
            episode(3 * H + H / 2, None, &[(3 * H + H / 2, Grade::Blue)]),
        ];
        let s = summarise(&eps, 5 * H, H);
        let r = &s["r"];
        assert_eq!(r[Grade::Blue as usize].warnings, 2);
        assert_eq!(r[Grade::Yellow as usize].warnings, 1);
        assert_eq!(r[Grade::Blue as usize].hours, 1.0 + 1.5);
        assert_eq!(r[Grade::Yellow as usize].hours, 2.0);
        assert_eq!(r[Grade::Blue as usize].flaps, 1);
        assert_eq!(r[Grade::Yellow as usize].flaps, 0);
    }
}
