//! `yujing tune` end to end on a small labelled sample (the two NAB series
//! in tests/data): the chosen settings meet the budget on the tuning part,
//! the held-out part is scored apart, the same seed repeats the search
//! exactly, and an impossible budget exits with 3.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

const RULES: &str = "\
groups:
  - name: anomaly
    defaults: { group_by: sensor, aggregate: avg, window: 1h }
    rules:
      - id: value-deviation
        metric: value
        baseline: { method: robust, history: 3d }
        above: { blue: 3 }
        for: 1h
        tune:
          above.blue: [2, 8]
          for: [0, 3h]
";

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

fn tune(dir: &Path, out: &str, extra: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_yujing"))
        .arg("tune")
        .arg(data("nab/realTraffic"))
        .arg(data("nab/artificialWithAnomaly"))
        .arg("--rules")
        .arg(dir.join("rules.yaml"))
        .arg("--events")
        .arg(data("nab/combined_windows.json"))
        .args(["--time-zone", "+00:00", "--lead", "2h", "--no-progress"])
        .args(["--candidates", "8", "--seed", "7", "--holdout-time", "0.3"])
        .arg("--out")
        .arg(dir.join(out))
        .args(extra)
        .output()
        .unwrap()
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap()
}

#[test]
fn tune_meets_the_budget_reports_the_held_out_part_and_repeats_exactly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), RULES).unwrap();
    let first = tune(dir.path(), "a", &["--max-false-rate", "40"]);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let summary: Value = serde_json::from_str(&read(dir.path(), "a/summary.json")).unwrap();
    assert_eq!(summary["search"], "random");
    assert_eq!(summary["candidates"], 9, "the current settings and 8 more");
    let chosen = &summary["chosen"];
    let tuning = &chosen["tuning"];
    assert!(
        tuning["false_per_1000_series_hours"].as_f64().unwrap() <= 40.0,
        "{summary:#}"
    );
    assert!(tuning["detected"].as_u64().unwrap() >= 1, "{summary:#}");
    // The held-out part is scored on its own events and hours.
    let held_out = &chosen["held_out"];
    let hours = |s: &Value| s["series_hours"].as_f64().unwrap();
    assert!(
        hours(held_out) > 0.0 && hours(tuning) > hours(held_out),
        "{summary:#}"
    );
    assert_eq!(
        tuning["events"].as_u64().unwrap() + held_out["events"].as_u64().unwrap(),
        5,
        "every NAB event in one part or the other"
    );
    assert!(stdout.contains("held out"), "{stdout}");
    // The tuned rules load, with the chosen settings in them.
    let tuned = read(dir.path(), "a/tuned-rules.yaml");
    let set = yujing_rules::RuleSet::parse(Path::new("tuned-rules.yaml"), &tuned).unwrap();
    let blue = set.rules[0].levels[0].threshold;
    let setting: f64 = chosen["settings"]["value-deviation:above.blue"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(setting, blue);
    assert_eq!(read(dir.path(), "a/candidates.csv").lines().count(), 10);
    assert!(read(dir.path(), "a/tradeoff.svg").contains("Pareto front"));

    // The same seed: the same candidates, the same figures, the same choice.
    let again = tune(dir.path(), "b", &["--max-false-rate", "40", "--jobs", "1"]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(
        read(dir.path(), "a/summary.json"),
        read(dir.path(), "b/summary.json")
    );
    assert_eq!(
        read(dir.path(), "a/candidates.csv"),
        read(dir.path(), "b/candidates.csv")
    );
}

#[test]
fn an_impossible_budget_exits_with_3() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), RULES).unwrap();
    // The rule never warns red: no candidate detects anything at red.
    let out = tune(
        dir.path(),
        "out",
        &["--max-false-rate", "40", "--grade", "red"],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no candidate meets the budget"));
    let summary: Value = serde_json::from_str(&read(dir.path(), "out/summary.json")).unwrap();
    assert_eq!(summary["chosen"], Value::Null);
    assert!(!dir.path().join("out/tuned-rules.yaml").exists());
    // Without a budget, tune refuses to start.
    let none = tune(dir.path(), "none", &[]);
    assert_eq!(none.status.code(), Some(2), "clap's usage error");
}
