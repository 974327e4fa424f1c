//! What `yujing tune` writes: `candidates.csv` (every candidate's settings
//! and figures on both parts), `tradeoff.svg` (recall against false
//! warnings on the tuning part, the Pareto front drawn), `tuned-rules.yaml`
//! (the chosen settings written into the rules file) and `summary.json`.

use std::fmt::Write as _;

use serde_json::json;

use super::space::{self, shown};
use super::{TuneOptions, Tuned};
use crate::backtest::report::write;
use crate::backtest::score::Score;
use crate::feedback_export::csv_cell;

pub fn write_all(options: &TuneOptions, t: &Tuned) -> Result<(), crate::backtest::BacktestError> {
    std::fs::create_dir_all(&options.out).map_err(|e| crate::backtest::BacktestError::Write {
        path: options.out.clone(),
        source: e,
    })?;
    write(&options.out.join("candidates.csv"), &candidates_csv(t))?;
    write(&options.out.join("tradeoff.svg"), &tradeoff_svg(options, t))?;
    write(
        &options.out.join("summary.json"),
        &serde_json::to_string_pretty(&summary(options, t)).expect("serialises"),
    )?;
    let tuned = options.out.join("tuned-rules.yaml");
    match t.chosen {
        Some(i) => {
            let c = &t.outcomes[i].candidate;
            let mut text = format!(
                "# Written by `yujing tune` (candidate {}, seed {}): {}\n",
                c.id,
                options.seed,
                changes(t, i).join("; ")
            );
            text.push_str(&space::apply(&t.doc, &t.knobs, c));
            write(&tuned, &text)?;
        }
        None => {
            let _ = std::fs::remove_file(&tuned);
        }
    }
    Ok(())
}

/// `rule:path old → new` for each knob the candidate changes.
pub fn changes(t: &Tuned, i: usize) -> Vec<String> {
    let c = &t.outcomes[i].candidate;
    t.knobs
        .iter()
        .zip(&c.values)
        .filter_map(|(k, v)| {
            let new = v.as_ref()?;
            let old = space::current(&t.doc, k);
            (old.as_ref() != Some(new)).then(|| {
                format!(
                    "{} {} → {}",
                    k.name(),
                    old.as_ref().map_or("(unset)".into(), shown),
                    shown(new)
                )
            })
        })
        .collect()
}

fn cell(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v:.4}"))
}

fn candidates_csv(t: &Tuned) -> String {
    let mut out = String::from("candidate");
    for k in &t.knobs {
        let _ = write!(out, ",{}", k.name());
    }
    for part in ["tuning", "held_out"] {
        for f in [
            "recall",
            "precision",
            "false_per_1000_series_hours",
            "lead_minutes_median",
            "warnings",
        ] {
            let _ = write!(out, ",{part}_{f}");
        }
    }
    out.push_str(",meets_budget,chosen\n");
    for (i, o) in t.outcomes.iter().enumerate() {
        let _ = write!(out, "{}", o.candidate.id);
        for (k, v) in t.knobs.iter().zip(&o.candidate.values) {
            let v = v.clone().or_else(|| space::current(&t.doc, k));
            let _ = write!(
                out,
                ",{}",
                csv_cell(&v.as_ref().map_or(String::new(), shown))
            );
        }
        for s in [&o.figures.tuning, &o.figures.held_out] {
            let _ = write!(
                out,
                ",{},{},{:.4},{},{}",
                cell(s.recall),
                cell(s.precision),
                s.false_per_1000_series_hours,
                cell(s.lead_minutes_median),
                s.warnings
            );
        }
        let _ = writeln!(out, ",{},{}", o.meets_budget, t.chosen == Some(i));
    }
    out
}

fn figures(s: &Score) -> serde_json::Value {
    json!({
        "events": s.events, "detected": s.detected, "warnings": s.warnings,
        "false_warnings": s.false_warnings, "series_hours": s.series_hours,
        "recall": s.recall, "precision": s.precision,
        "false_per_1000_series_hours": s.false_per_1000_series_hours,
        "lead_minutes_median": s.lead_minutes_median,
    })
}

fn summary(options: &TuneOptions, t: &Tuned) -> serde_json::Value {
    let chosen = t.chosen.map(|i| {
        let o = &t.outcomes[i];
        json!({
            "candidate": o.candidate.id,
            "settings": t.knobs.iter().zip(&o.candidate.values).map(|(k, v)| {
                (k.name(), v.clone().or_else(|| space::current(&t.doc, k)).map(|v| shown(&v)))
            }).collect::<std::collections::BTreeMap<_, _>>(),
            "changes": changes(t, i),
            "tuning": figures(&o.figures.tuning),
            "held_out": figures(&o.figures.held_out),
        })
    });
    let current = &t.outcomes[0];
    json!({
        "rules": options.backtest.rules,
        "grade": options.grade.as_str(),
        "budget": options.budget,
        "search": t.search,
        "seed": options.seed,
        "candidates": t.outcomes.len(),
        "meeting_budget": t.outcomes.iter().filter(|o| o.meets_budget).count(),
        "holdout": {
            "time_share": options.holdout_time,
            "series_share": options.holdout_series,
            "held_out_series": t.holdout.series.len(),
        },
        "current": {
            "meets_budget": current.meets_budget,
            "tuning": figures(&current.figures.tuning),
            "held_out": figures(&current.figures.held_out),
        },
        "chosen": chosen,
    })
}

/// Recall against false warnings per 1,000 series-hours on the tuning
/// part: every candidate a dot, the Pareto front a line, the budget a
/// dashed line, the chosen one and the current settings marked.
fn tradeoff_svg(options: &TuneOptions, t: &Tuned) -> String {
    let (w, h, m) = (640.0, 420.0, 56.0);
    let points: Vec<(f64, f64)> = t
        .outcomes
        .iter()
        .map(|o| {
            let s = &o.figures.tuning;
            (s.false_per_1000_series_hours, s.recall.unwrap_or(0.0))
        })
        .collect();
    let max_x = points
        .iter()
        .map(|p| p.0)
        .fold(1.0_f64, f64::max)
        .max(match options.budget {
            super::Budget::MaxFalseRate(b) => b * 1.2,
            _ => 0.0,
        });
    let x = |v: f64| m + (w - 2.0 * m) * v / max_x;
    let y = |v: f64| h - m - (h - 2.0 * m) * v;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{m}\" y=\"20\">Recall ({}+) against false warnings, tuning part: {} candidates</text>\n\
         <line x1=\"{m}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{m}\" y1=\"{m}\" x2=\"{m}\" y2=\"{}\" stroke=\"black\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">false warnings per 1,000 series-hours (0 – {max_x:.1})</text>\n\
         <text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">event recall (0 – 1)</text>\n",
        options.grade.as_str(),
        t.outcomes.len(),
        h - m,
        w - m,
        h - m,
        h - m,
        w / 2.0,
        h - 16.0,
        h / 2.0,
        h / 2.0,
    );
    if let super::Budget::MaxFalseRate(b) = options.budget {
        let _ = writeln!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{m}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"#c00\" stroke-dasharray=\"4 3\"/>",
            x(b),
            h - m
        );
    }
    // The Pareto front: no other candidate has more recall for as few
    // false warnings.
    let mut front: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|&(fx, fy)| {
            !points
                .iter()
                .any(|&(ox, oy)| (ox <= fx && oy > fy) || (ox < fx && oy >= fy))
        })
        .collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    front.dedup();
    let path: Vec<String> = front
        .iter()
        .map(|&(fx, fy)| format!("{:.1},{:.1}", x(fx), y(fy)))
        .collect();
    let _ = writeln!(
        s,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\"/>",
        path.join(" ")
    );
    for (i, &(fx, fy)) in points.iter().enumerate() {
        let (r, fill) = if t.chosen == Some(i) {
            (6.0, "#d62728")
        } else if i == 0 {
            (5.0, "#2ca02c")
        } else {
            (3.0, "#888")
        };
        let _ = writeln!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{r}\" fill=\"{fill}\"><title>candidate {}</title></circle>",
            x(fx),
            y(fy),
            t.outcomes[i].candidate.id
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"40\" text-anchor=\"end\"><tspan fill=\"#d62728\">● chosen</tspan>  <tspan fill=\"#2ca02c\">● current</tspan>  <tspan fill=\"#1f77b4\">— Pareto front</tspan></text>\n</svg>",
        w - m
    );
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_csv_field_with_a_comma_is_quoted() {
        assert_eq!(super::csv_cell("7d"), "7d");
        assert_eq!(
            super::csv_cell("{drift: 0.5, limit: 40}"),
            "\"{drift: 0.5, limit: 40}\""
        );
        assert_eq!(super::csv_cell("a \"b\", c"), "\"a \"\"b\"\", c\"");
    }
}
