//! What a backtest writes: the warning timeline (`timeline.jsonl`, the alert
//! topic's schema), `summary.json` for machines, `report.md` for people,
//! and `plots/*.svg`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use yujing_ingest::SensorRegistry;
use yujing_rules::{Grade, WarningTransition};
use yujing_sinks::{AlertMessage, TimeFormat};

use super::BacktestError;
use super::score::{Episode, GradeSummary, Score};

/// The figures of one rule set over the history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleSetFigures {
    pub rule_files: Vec<String>,
    pub readings: u64,
    pub refused: BTreeMap<String, u64>,
    pub seconds: f64,
    pub transitions: usize,
    /// Per rule, per grade (blue … red).
    pub summary: BTreeMap<String, [GradeSummary; 4]>,
    /// With events: per rule and overall (key `*`), per grade.
    pub scores: BTreeMap<String, [Score; 4]>,
    /// With responders' verdicts: per rule and overall (key `*`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub verdicts: BTreeMap<String, super::verdicts::VerdictScore>,
    #[serde(skip)]
    pub episodes: Vec<Episode>,
}

/// What a rule change does to the warnings: episodes of the same rule and
/// group that overlap in time are the same warning (perhaps raised earlier
/// or later); the rest were added or removed.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Diff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Warnings in both rule sets.
    pub kept: usize,
    pub raised_earlier: usize,
    pub raised_later: usize,
    /// Median change of the time raised over kept warnings, in minutes
    /// (positive: later).
    pub median_shift_minutes: Option<f64>,
}

impl Diff {
    pub fn between(old: &[Episode], new: &[Episode], data_end_ms: i64, times: &TimeFormat) -> Diff {
        let span = |e: &Episode| (e.raised_ms, e.resolved_ms.unwrap_or(data_end_ms));
        let mut old_by: BTreeMap<(&str, &str), Vec<(&Episode, bool)>> = BTreeMap::new();
        for e in old {
            old_by
                .entry((&e.rule, &e.group))
                .or_default()
                .push((e, false));
        }
        let show = |e: &Episode| {
            format!(
                "{} on {} raised at {}",
                e.rule,
                e.group,
                times.rfc3339(e.raised_ms)
            )
        };
        let mut diff = Diff::default();
        let mut shifts = Vec::new();
        for e in new {
            let (start, end) = span(e);
            let candidates = old_by.get_mut(&(e.rule.as_str(), e.group.as_str()));
            let matched = candidates.and_then(|c| {
                c.iter_mut().find(|(o, used)| {
                    let (s, t) = span(o);
                    !*used && s <= end && start <= t
                })
            });
            match matched {
                Some((o, used)) => {
                    *used = true;
                    diff.kept += 1;
                    let shift = e.raised_ms - o.raised_ms;
                    diff.raised_later += usize::from(shift > 0);
                    diff.raised_earlier += usize::from(shift < 0);
                    shifts.push(shift as f64 / 60_000.0);
                }
                None => diff.added.push(show(e)),
            }
        }
        for list in old_by.values() {
            diff.removed
                .extend(list.iter().filter(|(_, used)| !used).map(|(o, _)| show(o)));
        }
        diff.removed.sort();
        shifts.sort_by(f64::total_cmp);
        diff.median_shift_minutes = (!shifts.is_empty()).then(|| shifts[shifts.len() / 2]);
        diff
    }
}

/// Everything about the input, for the report's first lines.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InputFigures {
    /// The inputs as given, and how many files they held.
    pub inputs: Vec<String>,
    pub files: usize,
    pub readings: usize,
    pub sensors: usize,
    pub metrics: Vec<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub series_hours: f64,
    pub skipped: u64,
    pub skip_examples: Vec<String>,
    pub events: Option<usize>,
    pub lead_minutes: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub input: InputFigures,
    pub rules: RuleSetFigures,
    pub baseline: Option<RuleSetFigures>,
    pub diff: Option<Diff>,
    /// Failed `--min-recall` / `--max-false-rate` checks.
    pub failed_checks: Vec<String>,
}

/// The timeline as alert messages, one JSON object per line, written as
/// the engine emits them.
pub struct TimelineWriter<'a> {
    path: PathBuf,
    out: BufWriter<File>,
    registry: &'a SensorRegistry,
    times: TimeFormat,
    error: Option<std::io::Error>,
}

impl<'a> TimelineWriter<'a> {
    pub fn create(
        path: &Path,
        registry: &'a SensorRegistry,
        times: TimeFormat,
    ) -> Result<Self, BacktestError> {
        let file = File::create(path).map_err(|e| BacktestError::Write {
            path: path.to_owned(),
            source: e,
        })?;
        Ok(TimelineWriter {
            path: path.to_owned(),
            out: BufWriter::new(file),
            registry,
            times,
            error: None,
        })
    }

    pub fn write(&mut self, t: &WarningTransition) {
        if self.error.is_some() {
            return;
        }
        // Emitted at the event time: a backtest is reproducible.
        let message = AlertMessage::new(t, self.registry, self.times, t.window_end_ms);
        let written = serde_json::to_writer(&mut self.out, &message)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        self.error = written.err();
    }

    pub fn finish(mut self) -> Result<(), BacktestError> {
        let flushed = self.out.flush();
        match self.error.take().map_or(flushed, Err) {
            Ok(()) => Ok(()),
            Err(e) => Err(BacktestError::Write {
                path: self.path,
                source: e,
            }),
        }
    }
}

pub fn write(path: &Path, text: &str) -> Result<(), BacktestError> {
    std::fs::write(path, text).map_err(|e| BacktestError::Write {
        path: path.to_owned(),
        source: e,
    })
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.1}%", v * 100.0))
}

fn minutes(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.0}"))
}

/// The Markdown report; `plots` are paths relative to the report.
pub fn markdown(summary: &Summary, plots: &[String]) -> String {
    let mut s = String::new();
    let i = &summary.input;
    let _ = writeln!(s, "# Backtest report\n");
    let _ = writeln!(
        s,
        "**Input**: {} readings of {} sensors ({}) from {} file(s), {} to {}, {:.0} series-hours.",
        i.readings,
        i.sensors,
        i.metrics.join(", "),
        i.files,
        i.from.as_deref().unwrap_or("–"),
        i.to.as_deref().unwrap_or("–"),
        i.series_hours
    );
    if i.skipped > 0 {
        let _ = writeln!(
            s,
            "\n{} input lines or cells skipped, e.g.:\n\n```\n{}\n```",
            i.skipped,
            i.skip_examples.join("\n")
        );
    }
    for (name, figures) in std::iter::once(("Rules", &summary.rules))
        .chain(summary.baseline.iter().map(|b| ("Baseline rules", b)))
    {
        let refused: Vec<String> = figures
            .refused
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        let _ = writeln!(
            s,
            "\n**{name}**: {} — {} readings graded in {:.2} s ({:.0} readings/s), {} transitions{}.",
            figures.rule_files.join(", "),
            figures.readings,
            figures.seconds,
            figures.readings as f64 / figures.seconds.max(1e-9),
            figures.transitions,
            if refused.is_empty() {
                String::new()
            } else {
                format!(
                    "; refused as the live pipeline would: {}",
                    refused.join(", ")
                )
            }
        );
    }
    let _ = writeln!(s, "\n## Warnings by rule and grade\n");
    let _ = writeln!(
        s,
        "Warnings reaching each grade, hours spent at it, and flaps (raised again soon after resolving).\n"
    );
    let _ = writeln!(s, "| rule | grade | warnings | hours at grade | flaps |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|");
    for (rule, grades) in &summary.rules.summary {
        for g in Grade::ALL {
            let x = &grades[g as usize];
            if x.warnings == 0 && x.hours == 0.0 {
                continue;
            }
            let _ = writeln!(
                s,
                "| {rule} | {} | {} | {:.1} | {} |",
                g.as_str(),
                x.warnings,
                x.hours,
                x.flaps
            );
        }
    }
    if summary.rules.summary.is_empty() {
        let _ = writeln!(s, "| (no warnings) | | | | |");
    }
    if let Some(events) = i.events {
        let _ = writeln!(
            s,
            "\n## Detection against {events} labelled events (lead {:.0} min)\n",
            i.lead_minutes
        );
        let _ = writeln!(
            s,
            "A warning detects an event when it is at the grade at some time between the event's start minus the lead and the event's end; lead time is the event's start minus the first such time, so at most the lead (negative: late). A warning at the grade outside every event is false.\n"
        );
        let _ = writeln!(
            s,
            "| rule | grade | detected | recall | warnings | false | precision | false / 1000 series-h | lead median (min) | lead mean (min) |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (rule, grades) in &summary.rules.scores {
            for g in Grade::ALL {
                let x = &grades[g as usize];
                if rule != "*" && x.warnings == 0 {
                    continue;
                }
                let name = if rule == "*" { "**all rules**" } else { rule };
                let _ = writeln!(
                    s,
                    "| {name} | {} | {}/{} | {} | {} | {} | {} | {:.2} | {} | {} |",
                    g.as_str(),
                    x.detected,
                    x.events,
                    pct(x.recall),
                    x.warnings,
                    x.false_warnings,
                    pct(x.precision),
                    x.false_per_1000_series_hours,
                    minutes(x.lead_minutes_median),
                    minutes(x.lead_minutes_mean)
                );
            }
        }
    }
    if !summary.rules.verdicts.is_empty() {
        let _ = writeln!(s, "\n## Against responders' verdicts\n");
        let _ = writeln!(
            s,
            "A warning is judged by the verdicts of its rule on its sensors that overlap it: confirmed if one confirmed it, else a false alarm if one said so; precision is confirmed / judged. Unjudged warnings are ones responders never closed (or new ones of a proposed rule).\n"
        );
        let _ = writeln!(
            s,
            "| rule | confirmed | false alarms | precision | unjudged |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        for (rule, v) in &summary.rules.verdicts {
            let name = if rule == "*" { "**all rules**" } else { rule };
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {} |",
                v.confirmed,
                v.false_alarms,
                pct(v.precision),
                v.unjudged
            );
        }
    }
    if let (Some(base), Some(diff)) = (&summary.baseline, &summary.diff) {
        comparison(&mut s, base, &summary.rules, diff);
    }
    if !plots.is_empty() {
        let _ = writeln!(s, "\n## Series\n");
        let _ = writeln!(
            s,
            "Grey: the range of values per pixel and their mean; dashed: thresholds; shaded: warnings by grade; hatched: labelled events.\n"
        );
        for p in plots {
            let _ = writeln!(s, "![{p}]({p})\n");
        }
    }
    s
}

fn comparison(s: &mut String, old: &RuleSetFigures, new: &RuleSetFigures, diff: &Diff) {
    let _ = writeln!(s, "\n## Change against the baseline rules\n");
    let _ = writeln!(
        s,
        "{} warnings added, {} removed, {} kept ({} raised earlier, {} later; median shift {} min). A warning is kept when one of the same rule and group overlaps it in time.\n",
        diff.added.len(),
        diff.removed.len(),
        diff.kept,
        diff.raised_earlier,
        diff.raised_later,
        minutes(diff.median_shift_minutes),
    );
    let _ = writeln!(s, "| rule | grade | warnings | hours at grade | flaps |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    let rules: BTreeSet<&String> = old.summary.keys().chain(new.summary.keys()).collect();
    let none = <[GradeSummary; 4]>::default();
    for rule in rules {
        let (a, b) = (
            old.summary.get(rule).unwrap_or(&none),
            new.summary.get(rule).unwrap_or(&none),
        );
        for g in Grade::ALL {
            let (a, b) = (&a[g as usize], &b[g as usize]);
            if a == b {
                continue;
            }
            let _ = writeln!(
                s,
                "| {rule} | {} | {} → {} | {:.1} → {:.1} | {} → {} |",
                g.as_str(),
                a.warnings,
                b.warnings,
                a.hours,
                b.hours,
                a.flaps,
                b.flaps
            );
        }
    }
    if let (Some(a), Some(b)) = (old.scores.get("*"), new.scores.get("*")) {
        let _ = writeln!(s, "\nDetection, all rules:\n");
        let _ = writeln!(
            s,
            "| grade | recall | precision | false / 1000 series-h | lead median (min) |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|");
        for g in Grade::ALL {
            let (a, b) = (&a[g as usize], &b[g as usize]);
            let _ = writeln!(
                s,
                "| {} | {} → {} | {} → {} | {:.2} → {:.2} | {} → {} |",
                g.as_str(),
                pct(a.recall),
                pct(b.recall),
                pct(a.precision),
                pct(b.precision),
                a.false_per_1000_series_hours,
                b.false_per_1000_series_hours,
                minutes(a.lead_minutes_median),
                minutes(b.lead_minutes_median)
            );
        }
    }
    for (what, list) in [("Added", &diff.added), ("Removed", &diff.removed)] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{what} warnings (first 20):\n");
        for e in list.iter().take(20) {
            let _ = writeln!(s, "- {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn episode(group: &str, raised: i64, resolved: i64) -> Episode {
        Episode {
            rule: "r".into(),
            group: group.into(),
            sensors: vec![group.into()],
            raised_ms: raised,
            resolved_ms: Some(resolved),
            grades: vec![(raised, Grade::Blue)],
        }
    }

    #[test]
    fn overlapping_warnings_are_kept_and_their_shift_measured() {
        let old = [
            episode("a", 10 * H, 14 * H),
            episode("a", 30 * H, 31 * H),
            episode("b", H, 2 * H),
        ];
        // The change delays a's first warning by 2 h, drops its second and
        // b's, and adds one on c.
        let new = [episode("a", 12 * H, 14 * H), episode("c", 5 * H, 6 * H)];
        let d = Diff::between(&old, &new, 48 * H, &TimeFormat::new(0));
        assert_eq!((d.kept, d.raised_later, d.raised_earlier), (1, 1, 0));
        assert_eq!(d.median_shift_minutes, Some(120.0));
        assert_eq!(d.added, ["r on c raised at 1970-01-01T05:00:00+00:00"]);
        assert_eq!(
            d.removed,
            [
                "r on a raised at 1970-01-02T06:00:00+00:00",
                "r on b raised at 1970-01-01T01:00:00+00:00"
            ]
        );
    }
}
