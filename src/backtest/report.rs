//! What a backtest writes: the warning timeline (`timeline.jsonl`, the alert
//! topic's schema), `summary.json` for machines, `report.md` for people,
//! and `plots/*.svg`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::Path;

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
    #[serde(skip)]
    pub episodes: Vec<Episode>,
}

/// Episodes in one rule set and not the other.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Diff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl Diff {
    /// Episodes matched by rule, group and time raised.
    pub fn between(old: &[Episode], new: &[Episode], times: &TimeFormat) -> Diff {
        let key = |e: &Episode| (e.rule.clone(), e.group.clone(), e.raised_ms);
        let olds: BTreeSet<_> = old.iter().map(key).collect();
        let news: BTreeSet<_> = new.iter().map(key).collect();
        let show = |(rule, group, at): &(String, String, i64)| {
            format!("{rule} on {group} raised at {}", times.rfc3339(*at))
        };
        Diff {
            added: news.difference(&olds).map(show).collect(),
            removed: olds.difference(&news).map(show).collect(),
        }
    }
}

/// Everything about the input, for the report's first lines.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InputFigures {
    pub files: Vec<String>,
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

/// The timeline as alert messages, one JSON object per line.
pub fn write_timeline(
    path: &Path,
    timeline: &[WarningTransition],
    registry: &SensorRegistry,
    times: TimeFormat,
) -> Result<(), BacktestError> {
    let mut text = String::new();
    for t in timeline {
        // Emitted at the event time: a backtest is reproducible.
        let message = AlertMessage::new(t, registry, times, t.window_end_ms);
        text.push_str(&serde_json::to_string(&message).expect("alert messages serialise"));
        text.push('\n');
    }
    write(path, &text)
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
        i.files.len(),
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
            "A warning counts for an event when it reaches the grade between the event's start minus the lead and its end; lead time is the event's start minus that moment (negative: late).\n"
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
        "{} warnings added, {} removed (matched by rule, group and the time raised).\n",
        diff.added.len(),
        diff.removed.len()
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
