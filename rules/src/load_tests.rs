use super::*;
use crate::grade::{Direction, Grade};
use crate::model::{Aggregate, Category, WindowSpec};

fn parse(text: &str) -> Result<RuleSet, RulesError> {
    RuleSet::parse(Path::new("rules.yaml"), text)
}

fn errors(text: &str) -> Vec<String> {
    parse(text)
        .unwrap_err()
        .problems()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn one_error(text: &str) -> String {
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    e[0].clone()
}

const GOOD: &str = "\
rules:
  - id: pm25-1h
    description: PM2.5 hourly mean
    metric: pm25
    window: 1h
    aggregate: avg
    group_by: grid
    above: { blue: 75, yellow: 115, orange: 150, red: 250 }
  - id: do-low
    metric: do_mgl
    window: 10m
    below: { blue: 5, red: 2 }
";

#[test]
fn loads_a_valid_file() {
    let set = parse(GOOD).unwrap();
    assert_eq!(set.rules.len(), 2);
    let pm = &set.rules[0];
    assert_eq!(pm.window, WindowSpec::tumbling(3_600_000));
    assert_eq!(pm.group_by, AreaLevel::Grid);
    assert_eq!(pm.threshold(Grade::Orange), Some(150.0));
    assert_eq!(
        pm.level(Grade::Orange).unwrap().clear,
        150.0,
        "no hysteresis"
    );
    let dox = &set.rules[1];
    assert_eq!(dox.direction, Direction::Below);
    assert_eq!(dox.group_by, AreaLevel::Sensor, "default group");
    assert_eq!(dox.aggregate, Aggregate::Avg, "default aggregate");
    assert_eq!(
        dox.thresholds(),
        vec![(Grade::Blue, 5.0), (Grade::Red, 2.0)]
    );
    assert_eq!(dox.tolerate_missing, 1);
    assert_eq!(set.metrics(), ["pm25", "do_mgl"]);
}

#[test]
fn hopping_windows_and_new_aggregates() {
    let text = GOOD
        .replace("window: 1h", "window: {size: 24h, slide: 1h}")
        .replace("aggregate: avg", "aggregate: slope");
    let set = parse(&text).unwrap();
    let w = set.rules[0].window;
    assert_eq!((w.size_ms, w.slide_ms), (86_400_000, 3_600_000));
    assert_eq!(w.label(), "1day/1h");
    assert_eq!(set.rules[0].aggregate, Aggregate::Slope);
    assert_eq!(set.rules[1].window.label(), "10m");
}

#[test]
fn timers_hysteresis_quorum_and_templates() {
    let text = "\
groups:
  - name: air
    defaults:
      group_by: district
      for: 20m
      keep_firing_for: 30m
      category: env
      labels: { team: air }
    rules:
      - id: pm25
        metric: pm25
        window: 10m
        above: { blue: 75, orange: 150, red: 250 }
        for: { red: 0s }
        clear: { orange: 140 }
        clear_margin: 5%
        de_escalate_after: 1h
        tolerate_missing: 2
        min_sensors: 3
        min_fraction: 0.5
        annotations: { summary: '{{ value }} over {{ threshold }} in {{ group.district }}' }
  - name: water
    rules:
      - id: level-trend
        category: infra
        metric: level_m
        window: 30m
        predict: { horizon: 1h }
        above: { red: 2.5 }
";
    let set = parse(text).unwrap();
    let pm = set.get("pm25").unwrap();
    assert_eq!(pm.group, "air");
    assert_eq!(pm.group_by, AreaLevel::District, "from defaults");
    let orange = pm.level(Grade::Orange).unwrap();
    assert_eq!((orange.clear, orange.pending_ms), (140.0, 0));
    let blue = pm.level(Grade::Blue).unwrap();
    assert_eq!(blue.clear, 75.0 - 3.75, "5 % margin");
    assert_eq!(
        pm.level(Grade::Red).unwrap().pending_ms,
        0,
        "the rule's own `for` replaces the default"
    );
    assert_eq!(pm.keep_firing_for_ms, 1_800_000);
    assert_eq!(pm.de_escalate_after_ms, 3_600_000);
    assert_eq!(pm.tolerate_missing, 2);
    assert_eq!((pm.quorum.min_sensors, pm.quorum.min_fraction), (3, 0.5));
    assert_eq!(pm.labels["team"], "air");
    let trend = set.get("level-trend").unwrap();
    assert_eq!(trend.predict_horizon_ms, Some(3_600_000));
    assert_eq!(trend.category, Category::Infra);
    assert_eq!(trend.group, "water");
}

#[test]
fn a_per_grade_for_and_a_default_for() {
    let text = GOOD.replace(
        "    group_by: grid\n",
        "    group_by: grid\n    for: { yellow: 20m, red: 5m }\n",
    );
    let pm = parse(&text).unwrap().rules.remove(0);
    let pending: Vec<i64> = pm.levels.iter().map(|l| l.pending_ms).collect();
    assert_eq!(pending, [0, 1_200_000, 0, 300_000]);
}

#[test]
fn typo_in_a_key_points_at_its_line() {
    let e = one_error(&GOOD.replace("aggregate: avg", "agregate: avg"));
    assert_eq!(
        e,
        "rules.yaml:6:5: rule \"pm25-1h\": unknown key `agregate`; did you mean `aggregate`?"
    );
}

#[test]
fn unknown_grade_and_bad_yaml() {
    let e = one_error(&GOOD.replace("red: 250", "purple: 250"));
    assert!(
        e.starts_with("rules.yaml:8:50: ") && e.contains("purple"),
        "{e}"
    );
    let e = one_error("rules:\n  - id: x\n   metric: [\n");
    assert!(e.starts_with("rules.yaml:"), "{e}");
}

#[test]
fn every_error_is_reported_at_once() {
    let text = GOOD
        .replace("orange: 150", "orange: 100")
        .replace("aggregate: avg", "aggregate: mean")
        .replace("window: 10m", "window: ten minutes")
        .replace(
            "below: { blue: 5, red: 2 }",
            "below: { blue: 5, red: 2 }\n    for: soon",
        );
    let e = errors(&text);
    assert_eq!(e.len(), 4, "{e:#?}");
    assert!(
        e[0].starts_with("rules.yaml:6:5: rule \"pm25-1h\": aggregate: unknown variant `mean`"),
        "{e:#?}"
    );
    assert!(
        e[1].starts_with("rules.yaml:8:5: rule \"pm25-1h\": orange threshold 100 must be above yellow threshold 115"),
        "{e:#?}"
    );
    assert!(
        e[2].starts_with("rules.yaml:11:5: rule \"do-low\": window"),
        "{e:#?}"
    );
    assert!(
        e[3].starts_with("rules.yaml:13:5: rule \"do-low\": for \"soon\""),
        "{e:#?}"
    );
}

#[test]
fn semantic_errors_name_rule_and_key_position() {
    let bad_window = |w: &str| one_error(&GOOD.replace("window: 10m", w));
    let e = bad_window("window: {size: 1h, slide: 7m}");
    assert!(e.contains("whole multiple of its slide"), "{e}");
    let e = bad_window("window: {size: 1h, step: 10m}");
    assert!(
        e.starts_with("rules.yaml:11:5:") && e.contains("unknown window key `step`"),
        "{e}"
    );
    let e = bad_window("window: {gap: 15m, max: 10m}");
    assert!(e.contains("must be longer than its `gap`"), "{e}");
    let e = bad_window("window: {gap: 15m, size: 1h}");
    assert!(e.contains("unknown session window key `size`"), "{e}");
    let set = parse(&GOOD.replace("window: 10m", "window: {gap: 15m, max: 6h}")).unwrap();
    let s = set.rules[1].session.unwrap();
    assert_eq!((s.gap_ms, s.max_ms), (900_000, 21_600_000));

    let e = one_error(&GOOD.replace("do-low", "pm25-1h"));
    assert!(e.contains("already used"), "{e}");

    let e = one_error("rules:\n  - id: a\n    metric: m\n    window: 1h\n");
    assert!(e.contains("no thresholds"), "{e}");
    let e = one_error("rules:\n  - id: a\n    metric: m\n    window: 1h\n    above: {}\n");
    assert!(
        e.starts_with("rules.yaml:5:5:") && e.contains("names no grade"),
        "{e}"
    );
}

#[test]
fn option_errors() {
    let with = |extra: &str| {
        one_error(&GOOD.replace(
            "    group_by: grid\n",
            &format!("    group_by: grid\n{extra}\n"),
        ))
    };
    let e = with("    clear: { orange: 160 }");
    assert!(
        e.starts_with(
            "rules.yaml:8:5: rule \"pm25-1h\": orange clear threshold 160 must be at or below"
        ),
        "{e}"
    );
    let e = with("    clear: { purple: 1 }");
    assert!(e.contains("`purple` is not a grade"), "{e}");
    let e = with("    for: { blue: 10m, violet: 5m }");
    assert!(e.contains("`violet` is not a grade"), "{e}");
    let e = with("    min_fraction: 2");
    assert!(e.contains("must be in (0, 1]"), "{e}");
    let e = with("    annotations: { summary: '{{ valeu }}' }");
    assert!(
        e.starts_with("rules.yaml:8:5:") && e.contains("unknown template variable `valeu`"),
        "{e}"
    );
    let e = with("    predict: { horizon: 30m }");
    assert!(e.contains("remove `aggregate`"), "{e}");
    let e = with("    keep_firing_for: 5");
    assert!(e.contains("keep_firing_for must be a duration"), "{e}");
    let e = one_error(&GOOD.replace("group_by: grid", "group_by: sensor\n    min_sensors: 2"));
    assert!(e.contains("a quorum needs an area"), "{e}");
}

#[test]
fn group_errors() {
    let text = "\
groups:
  - name: air
    defaults: { for: soon, colour: red }
    rules:
      - id: a
        metric: m
        window: 1h
        above: { red: 1 }
      - id: b
        metric: m
        window: 1h
        above: { red: 1 }
  - name: water
    rulez: []
";
    let e = errors(text);
    // A bad default is reported once, not once per rule.
    assert_eq!(e.len(), 4, "{e:#?}");
    assert!(
        e[0].starts_with("rules.yaml:3:28: group \"air\": unknown key `colour`"),
        "{e:#?}"
    );
    assert!(
        e[1].starts_with("rules.yaml:3:17: rule \"a\": (from the group's defaults) for \"soon\""),
        "{e:#?}"
    );
    assert!(
        e[2].contains("group \"water\": unknown group key `rulez`"),
        "{e:#?}"
    );
    assert!(
        e[3].contains("group \"water\": a group needs `rules`"),
        "{e:#?}"
    );
}

#[test]
fn several_files_and_directories() {
    let dir = std::env::temp_dir().join(format!("yujing-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.yaml"), GOOD).unwrap();
    std::fs::write(dir.join("notes.txt"), "not rules").unwrap();
    std::fs::write(
        dir.join("b.yml"),
        "rules:\n  - id: noise\n    metric: noise_db\n    window: 15m\n    above: { blue: 70 }\n",
    )
    .unwrap();
    let set = RuleSet::load(&dir).unwrap();
    let ids: Vec<_> = set.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["pm25-1h", "do-low", "noise"]);
    std::fs::write(
        dir.join("c.yaml"),
        "rules:\n  - id: noise\n    metric: noise_db\n    window: 15m\n    above: { blue: 70 }\n",
    )
    .unwrap();
    let e = RuleSet::load(&dir).unwrap_err().to_string();
    assert!(
        e.contains("c.yaml:2:") && e.contains("already used by a rule in"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn data_quality_rules() {
    let text = "\
rules:
  - id: silent
    quality: silent
    metric: pm25
    window: 10m
    above: { yellow: 30 }
  - id: range
    quality: out_of_range
    range: [0, 1000]
    metric: pm25
    window: 10m
    above: { orange: 0 }
";
    let set = parse(text).unwrap();
    assert_eq!(set.rules[0].quality, Some(crate::model::Quality::Silent));
    assert_eq!(set.rules[0].category, Category::Data, "implied");
    assert_eq!(set.rules[0].measure(), "silent");
    assert_eq!(
        set.rules[1].quality,
        Some(crate::model::Quality::OutOfRange {
            low: 0.0,
            high: 1000.0
        })
    );
    let e = one_error(&text.replace("quality: silent", "quality: sleepy"));
    assert!(
        e.starts_with("rules.yaml:3:5:") && e.contains("unknown quality check `sleepy`"),
        "{e}"
    );
    let e = one_error(&text.replace("range: [0, 1000]", "range: [1000, 0]"));
    assert!(e.contains("low < high"), "{e}");
    let e = one_error(&text.replace("    range: [0, 1000]\n", ""));
    assert!(e.contains("needs `range"), "{e}");
    let e = one_error(&text.replace("quality: silent", "quality: silent\n    group_by: grid"));
    assert!(e.contains("use `group_by: sensor`"), "{e}");
    let e = one_error(&text.replace("quality: silent", "quality: silent\n    category: env"));
    assert!(e.contains("category `data`"), "{e}");
    let e = one_error(&text.replace("quality: silent", "quality: silent\n    aggregate: max"));
    assert!(e.contains("remove `aggregate`"), "{e}");
}

#[test]
fn sql_rules() {
    let text = "\
rules:
  - id: spread
    metric: pm25
    window: 1h
    group_by: grid
    sql: |
      SELECT grid AS group_key, max(max) - min(min) AS value, count(*) AS sensors
      FROM window WHERE metric = 'pm25' GROUP BY grid
    above: { yellow: 80 }
";
    let rule = parse(text).unwrap().rules.remove(0);
    assert!(rule.sql.as_deref().unwrap().contains("max(max) - min(min)"));
    assert_eq!(rule.measure(), "sql");
    let e = one_error(&text.replace("max(max) - min(min)", "max(maximum)"));
    assert!(
        e.starts_with("rules.yaml:6:5: rule \"spread\": sql: "),
        "{e}"
    );
    assert!(e.contains("maximum"), "{e}");
    let e = one_error(&text.replace("SELECT grid", "SELEKT grid"));
    assert!(e.contains("sql: "), "{e}");
    let e = one_error(&text.replace(
        "    group_by: grid\n",
        "    group_by: grid\n    aggregate: max\n",
    ));
    assert!(e.contains("a SQL rule computes its own value"), "{e}");
    let e = errors(&text.replace("    sql: |", "    metrics: [pm10]\n    sqlx: |"));
    assert!(
        e[0].contains("unknown key `sqlx`; did you mean `sql`?"),
        "{e:?}"
    );
    assert!(
        e[1].contains("`metrics` lists what a `sql` query reads"),
        "{e:?}"
    );
}

#[test]
fn unknown_metrics_against_a_measurements_list() {
    let dir = std::env::temp_dir().join(format!("yujing-known-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rules.yaml");
    std::fs::write(&file, GOOD.replace("metric: pm25", "metric: pm2.5")).unwrap();
    let known: Vec<String> = ["pm25", "do_mgl"].iter().map(|s| s.to_string()).collect();
    let e = RuleSet::load_checked(std::slice::from_ref(&file), Some(&known), &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with("rules.yaml:4:5: rule \"pm25-1h\": unknown metric `pm2.5`: not in the measurements file; did you mean `pm25`?"),
        "{e}"
    );
    // Without a list every metric is fine.
    assert!(RuleSet::load_all(&[file]).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Inputs the fuzzer found (and seeds) in tests/fuzz/regressions: loaded or
/// refused with located problems, never a panic.
#[test]
fn fuzz_regressions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fuzz/regressions/rules_parse");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = RuleSet::parse(&path, &text) {
            assert!(!e.to_string().is_empty());
        }
        n += 1;
    }
    assert!(n >= 2, "{n} inputs in {}", dir.display());
}

#[test]
fn a_baseline_second_opinion_is_refused_where_it_is_wrong() {
    let e = one_error(
        "\
rules:
  - id: noise
    metric: noise_db
    window: 1h
    baseline:
      method: robust
      history: 7d
      confirm_over: 90m
    above: { blue: 3 }
",
    );
    assert!(
        e.starts_with("rules.yaml:8:7: rule \"noise\": ")
            && e.contains(
                "confirm_over: 1h 30m must be a whole number (2 or more) of window slides (1h)"
            ),
        "{e}"
    );
    let e = one_error(
        "\
rules:
  - id: noise
    metric: noise_db
    window: 1h
    baseline: { method: trend, history: 7d, shift: { limit: -1 } }
    above: { blue: 3 }
",
    );
    assert!(e.starts_with("rules.yaml:5:45: "), "{e}");
    assert!(e.contains("limit -1 above 0"), "{e}");
}
