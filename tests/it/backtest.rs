//! `yujing backtest`: known answers on a hand-made labelled series, the
//! Beijing and NAB layouts loading with the documented command lines, two
//! rule sets compared, and the same warnings as `yujing run` on the mock
//! cluster for the same history.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use yujing::backtest::{self, BacktestOptions, CsvMapping, MetricColumn, TimeColumns};

use crate::support::{free_port, read_topic};

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

pub(crate) fn options(inputs: Vec<PathBuf>, rules: PathBuf, out: &Path) -> BacktestOptions {
    BacktestOptions {
        inputs,
        rules: vec![rules],
        baseline_rules: Vec::new(),
        groups: Vec::new(),
        sensors: None,
        measurements: None,
        pipeline: serde_yaml_ng::from_str("time_zone: \"+00:00\"").unwrap(),
        csv: CsvMapping {
            missing: vec!["NA".into()],
            ..CsvMapping::default()
        },
        span: (None, None),
        events: None,
        lead: Duration::from_secs(2 * 3600),
        flap_window: Duration::from_secs(3600),
        out: out.to_owned(),
        plots: 4,
        min_recall: None,
        max_false_rate: None,
        progress: false,
    }
}

const THRESHOLD_RULES: &str = "\
rules:
  - id: level-high
    metric: value
    unit: m
    window: 1h
    aggregate: max
    group_by: sensor
    above: { blue: LIMIT }
";

/// One sensor, hourly for 48 hours from 2024-01-01 00:00 UTC: 50, with 150
/// at hours 10-12 (warning raised at 11:00, the end of the 10:00 window;
/// resolved at 14:00) and at hour 30 (raised 31:00). Labelled events:
/// 12:00-14:00 (detected 60 min early, within a 2 h lead) and 40:00-42:00
/// (missed). So: recall 1/2, precision 1/2, one false warning over 47
/// series-hours, lead 60 min.
fn labelled_series(dir: &Path) -> (PathBuf, PathBuf) {
    let mut csv = String::from("timestamp,value\n");
    for h in 0..48 {
        let v = if (10..=12).contains(&h) || h == 30 {
            150
        } else {
            50
        };
        csv.push_str(&format!(
            "2024-01-{:02} {:02}:00:00,{v}\n",
            1 + h / 24,
            h % 24
        ));
    }
    let series = dir.join("gauge-1.csv");
    std::fs::write(&series, csv).unwrap();
    let events = dir.join("events.csv");
    std::fs::write(
        &events,
        "series,start,end\ngauge-1,2024-01-01 12:00:00,2024-01-01 14:00:00\ngauge-1,2024-01-02 16:00:00,2024-01-02 18:00:00\n",
    )
    .unwrap();
    (series, events)
}

fn rules_file(dir: &Path, name: &str, limit: f64) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, THRESHOLD_RULES.replace("LIMIT", &limit.to_string())).unwrap();
    path
}

/// Two series two years apart in one run: a warning raised in the first
/// series' last hour resolves two hours later (one missing window is
/// tolerated, the second resolves it: `tolerate_missing: 1`), as the live
/// pipeline's idle clock would resolve it, not when the second series
/// starts (it was counted as 17,498 hours at blue).
#[tokio::test]
async fn time_moves_through_a_gap_in_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let hourly = |year: i32, last: u32| {
        let mut csv = String::from("timestamp,value\n");
        for h in 0..48 {
            let v = if h == 47 { last } else { 50 };
            csv.push_str(&format!(
                "{year}-01-{:02} {:02}:00:00,{v}\n",
                1 + h / 24,
                h % 24
            ));
        }
        csv
    };
    let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
    std::fs::write(&a, hourly(2024, 150)).unwrap();
    std::fs::write(&b, hourly(2026, 50)).unwrap();
    let out = dir.path().join("out");
    let o = options(vec![a, b], rules_file(dir.path(), "r.yaml", 100.0), &out);
    let summary = backtest::backtest(&o).await.unwrap();
    let rule = &summary.rules.summary["level-high"][0];
    assert_eq!((rule.warnings, rule.hours), (1, 2.0), "{rule:?}");
    let timeline = std::fs::read_to_string(out.join("timeline.jsonl")).unwrap();
    let ends: Vec<(String, String)> = timeline
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|m| {
            (
                m["transition"].as_str().unwrap().to_owned(),
                m["window"]["end"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        ends,
        [
            ("raised".to_owned(), "2024-01-03T00:00:00+00:00".to_owned()),
            (
                "resolved".to_owned(),
                "2024-01-03T02:00:00+00:00".to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn scores_a_labelled_series_as_computed_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let (series, events) = labelled_series(dir.path());
    let out = dir.path().join("out");
    let mut o = options(vec![series], rules_file(dir.path(), "r.yaml", 100.0), &out);
    o.events = Some(events);
    let summary = backtest::backtest(&o).await.unwrap();

    let all = &summary.rules.scores["*"][0];
    assert_eq!(
        (all.events, all.detected, all.warnings, all.false_warnings),
        (2, 1, 2, 1)
    );
    assert_eq!(all.recall, Some(0.5));
    assert_eq!(all.precision, Some(0.5));
    assert!((all.series_hours - 47.0).abs() < 1e-9);
    assert!((all.false_per_1000_series_hours - 1000.0 / 47.0).abs() < 1e-9);
    assert_eq!(all.lead_minutes_median, Some(60.0));
    let rule = &summary.rules.summary["level-high"][0];
    // 11:00-14:00 and 31:00-32:00 at blue.
    assert_eq!((rule.warnings, rule.hours, rule.flaps), (2, 4.0, 0));

    // The timeline is alert messages, in the alert topic's schema.
    let timeline = std::fs::read_to_string(out.join("timeline.jsonl")).unwrap();
    let messages: Vec<Value> = timeline
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seen: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| {
            (
                m["transition"].as_str().unwrap(),
                m["event_time"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("raised", "2024-01-01T11:00:00+00:00"),
            ("resolved", "2024-01-01T14:00:00+00:00"),
            ("raised", "2024-01-02T07:00:00+00:00"),
            ("resolved", "2024-01-02T08:00:00+00:00"),
        ]
    );
    for m in &messages {
        crate::support::assert_valid_alert(m);
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("| **all rules** | blue | 1/2 | 50.0% |"),
        "{report}"
    );
    let svg = std::fs::read_to_string(out.join("plots/gauge-1-value.svg")).unwrap();
    assert!(
        svg.starts_with("<svg")
            && svg.contains("labelled event")
            && svg.contains("level-high blue")
    );
}

#[tokio::test]
async fn a_time_span_scores_only_the_events_it_covers() {
    let dir = tempfile::tempdir().unwrap();
    let (series, events) = labelled_series(dir.path());
    let mut o = options(
        vec![series],
        rules_file(dir.path(), "r.yaml", 100.0),
        dir.path(),
    );
    o.events = Some(events);
    // 2024-01-01 only: the second event (on the 2nd) is outside the history.
    o.span = (None, Some(1_704_153_600_000));
    let summary = backtest::backtest(&o).await.unwrap();
    let all = &summary.rules.scores["*"][0];
    assert_eq!(
        (all.events, all.detected, all.warnings, all.false_warnings),
        (1, 1, 1, 0)
    );
    assert_eq!(
        summary.input.to.as_deref(),
        Some("2024-01-01T23:00:00+00:00")
    );
}

#[tokio::test]
async fn a_rule_change_is_reported_against_the_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let (series, events) = labelled_series(dir.path());
    let out = dir.path().join("out");
    // Today 160 (never crossed); the change lowers it to 100.
    let mut o = options(
        vec![series],
        rules_file(dir.path(), "new.yaml", 100.0),
        &out,
    );
    o.baseline_rules = vec![rules_file(dir.path(), "old.yaml", 160.0)];
    o.events = Some(events);
    let summary = backtest::backtest(&o).await.unwrap();
    let diff = summary.diff.as_ref().unwrap();
    assert_eq!(
        diff.added,
        [
            "level-high on gauge-1 raised at 2024-01-01T11:00:00+00:00",
            "level-high on gauge-1 raised at 2024-01-02T07:00:00+00:00",
        ]
    );
    assert!(diff.removed.is_empty());
    let old = &summary.baseline.as_ref().unwrap().scores["*"][0];
    assert_eq!((old.recall, old.warnings), (Some(0.0), 0));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("2 warnings added, 0 removed, 0 kept"),
        "{report}"
    );
    assert!(report.contains("| blue | 0.0% → 50.0% |"), "{report}");
    assert!(out.join("baseline-timeline.jsonl").exists());
}

#[tokio::test]
async fn beijing_and_nab_layouts_load() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - id: pm25-1h\n    metric: pm25\n    window: 1h\n    group_by: sensor\n    above: { blue: 75 }\n",
    )
    .unwrap();
    // The UCI layout: year, month, day, hour columns, a station column, NA.
    let mut o = options(vec![data("beijing-air-raw-2013-03.csv")], rules, dir.path());
    o.csv = CsvMapping {
        time: TimeColumns::parse("year,month,day,hour").unwrap(),
        sensor_column: Some("station".into()),
        metrics: MetricColumn::parse_list("PM2.5=pm25,CO=co*0.001").unwrap(),
        missing: vec!["NA".into()],
        sensor_id: None,
    };
    o.pipeline = serde_yaml_ng::from_str("time_zone: Asia/Shanghai").unwrap();
    let summary = backtest::backtest(&o).await.unwrap();
    let input = &summary.input;
    assert_eq!(input.sensors, 2);
    assert_eq!(input.metrics, ["pm25", "co"]);
    // 2 stations x 168 hours x 2 metrics, less the NA cells.
    let na = std::fs::read_to_string(data("beijing-air-raw-2013-03.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            [5, 9].iter().filter(|&&i| f[i] == "NA").count()
        })
        .sum::<usize>();
    assert_eq!(input.readings, 2 * 168 * 2 - na);
    assert_eq!(input.from.as_deref(), Some("2013-03-01T00:00:00+08:00"));
    assert!(summary.rules.transitions > 0);

    // NAB: one series per file, named after it; windows from the NAB labels.
    let anomaly =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/backtest/anomaly-rules.yaml");
    let mut o = options(
        vec![data("nab/realTraffic"), data("nab/artificialWithAnomaly")],
        anomaly,
        dir.path(),
    );
    o.events = Some(data("nab/combined_windows.json"));
    let summary = backtest::backtest(&o).await.unwrap();
    assert_eq!(summary.input.sensors, 2);
    assert_eq!(summary.input.events, Some(5));
    let all = &summary.rules.scores["*"][0];
    assert!(
        all.detected >= 1,
        "the jump in art_daily_jumpsup is found: {all:?}"
    );
}

/// 12-18 December 2013 of the Beijing sample (Guanyuan misses an hour of
/// PM2.5) as reading messages, one per station and hour, in time order.
/// A week only: the live pipeline of a debug build takes a fifth of a
/// second to grade each hour as it closes.
fn beijing_messages() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(data("beijing-air-2013-12.csv")).unwrap();
    let mut rows: Vec<(i64, String, String)> = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if !(12..=18).contains(&f[3].parse::<u32>().unwrap()) {
            continue;
        }
        let local = chrono::NaiveDate::from_ymd_opt(
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
        )
        .unwrap()
        .and_hms_opt(f[4].parse().unwrap(), 0, 0)
        .unwrap();
        let ts = local.and_utc().timestamp_millis() - 8 * 3_600_000;
        let values: Vec<String> = [("pm25", 5), ("pm10", 6), ("no2", 7)]
            .iter()
            .filter_map(|(m, i)| f[*i].parse::<f64>().ok().map(|v| format!("\"{m}\":{v}")))
            .collect();
        if values.is_empty() {
            continue;
        }
        let message = format!(
            r#"{{"sensor_id":"{}","ts":{ts},"values":{{{}}}}}"#,
            f[0],
            values.join(",")
        );
        rows.push((ts, f[0].to_owned(), message));
    }
    rows.sort();
    rows.into_iter().map(|(_, s, m)| (s, m)).collect()
}

const BEIJING_SENSORS: &str = "\
sensor_id,kind,district,district_code,street,grid,lat,lon
Dongsi,air,Dongcheng,110101,Dongsi,east,39.929,116.417
Tiantan,air,Dongcheng,110101,Tiantan,east,39.886,116.407
Guanyuan,air,Dongcheng,110101,Guanyuan,west,39.929,116.339
";

/// The shipped air rules, a silence check (the sample misses a few hours
/// of PM2.5) and a baseline rule.
fn equivalence_rules(dir: &Path) -> PathBuf {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/rules.yaml"),
    )
    .unwrap();
    let air = &shipped[shipped.find("groups:").unwrap()..shipped.find("  - name: water").unwrap()];
    let extra = "  - name: extra
    defaults: { group_by: sensor }
    rules:
      - id: station-silent
        quality: silent
        metric: pm25
        unit: min
        window: 1h
        above: { blue: 45 }
      - id: pm25-unusual
        metric: pm25
        window: 1h
        baseline: { method: robust, history: 3d }
        above: { blue: 3, yellow: 5 }
";
    let path = dir.join("rules.yaml");
    std::fs::write(&path, format!("{air}{extra}")).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backtest_and_the_live_pipeline_give_the_same_warnings() {
    let _cores = crate::support::CPU_HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = equivalence_rules(dir.path());
    std::fs::write(dir.path().join("sensors.csv"), BEIJING_SENSORS).unwrap();
    let messages = beijing_messages();
    let history = dir.path().join("history.jsonl");
    let lines: Vec<&str> = messages.iter().map(|(_, m)| m.as_str()).collect();
    std::fs::write(&history, lines.join("\n")).unwrap();

    // The backtest.
    let out = dir.path().join("out");
    let mut o = options(vec![history], rules, &out);
    o.sensors = Some(dir.path().join("sensors.csv"));
    o.pipeline = serde_yaml_ng::from_str("time_zone: Asia/Shanghai").unwrap();
    let summary = backtest::backtest(&o).await.unwrap();
    let backtested: Vec<Value> = std::fs::read_to_string(out.join("timeline.jsonl"))
        .unwrap()
        .lines()
        .map(|l| comparable(serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(backtested.len(), summary.rules.transitions);
    let rules_seen: std::collections::BTreeSet<&str> = backtested
        .iter()
        .map(|m| m["rule"]["id"].as_str().unwrap())
        .collect();
    for rule in ["pm25-1h", "aqi-hourly", "station-silent", "pm25-unusual"] {
        assert!(
            rules_seen.contains(rule),
            "{rule} never warned: {rules_seen:?}"
        );
    }

    // The live pipeline, on the mock cluster, one message at a time.
    let cluster =
        crate::support::mock_cluster(&["readings", "alerts", "dead-letter", "late-readings"]);
    let bootstrap = cluster.bootstrap_servers();
    let config = dir.path().join("yujing.yaml");
    std::fs::write(
        &config,
        format!(
            "kafka:
  bootstrap_servers: \"{bootstrap}\"
  group_id: yujing-equivalence
  readings_topics: [readings]
  dead_letter_topic: dead-letter
  late_topic: late-readings
rules: rules.yaml
sensors: sensors.csv
pipeline:
  max_age: \"off\"
  idle_timeout: \"off\"
  time_zone: Asia/Shanghai
sinks:
  - kind: kafka
    topic: alerts
metrics:
  listen: \"127.0.0.1:{}\"
",
            free_port()
        ),
    )
    .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    for (key, payload) in &messages {
        producer
            .send(
                FutureRecord::to("readings").key(key).payload(payload),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pipeline = yujing::cli::run(config, async {
        let _ = stop_rx.await;
    });
    let n = backtested.len();
    let driver = async {
        let b = bootstrap.clone();
        let live = tokio::task::spawn_blocking(move || {
            // One more than expected, briefly: nothing extra may come.
            let mut got = read_topic(&b, "alerts", n, Duration::from_secs(300));
            got.extend(
                read_topic(&b, "alerts", n + 1, Duration::from_secs(3))
                    .into_iter()
                    .skip(n),
            );
            got
        })
        .await
        .unwrap();
        let _ = stop_tx.send(());
        live
    };
    let (result, live) = tokio::join!(pipeline, driver);
    result.unwrap();
    let live: Vec<Value> = live
        .iter()
        .map(|r| comparable(serde_json::from_slice(&r.payload).unwrap()))
        .collect();
    assert_eq!(
        live.len(),
        n,
        "the live pipeline sent a different number of messages"
    );
    for (i, (a, b)) in backtested.iter().zip(&live).enumerate() {
        assert_eq!(a, b, "transition {i} differs");
    }
}

/// An alert without the wall-clock time it was sent, and without its
/// texts: the live pipeline writes them in the config's languages, a
/// backtest timeline (for scoring) leaves them out; both are rendered from
/// the fields compared here.
fn comparable(mut m: Value) -> Value {
    let fields = m.as_object_mut().unwrap();
    fields.remove("emitted_at");
    fields.remove("texts");
    m
}

#[test]
fn failed_checks_exit_with_3() {
    let dir = tempfile::tempdir().unwrap();
    let (series, events) = labelled_series(dir.path());
    let rules = rules_file(dir.path(), "r.yaml", 100.0);
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_yujing"))
            .arg("backtest")
            .arg(&series)
            .arg("--rules")
            .arg(&rules)
            .arg("--events")
            .arg(&events)
            .args(["--time-zone", "+00:00", "--lead", "2h", "--out"])
            .arg(dir.path().join("out"))
            .args(extra)
            .output()
            .unwrap()
    };
    let ok = run(&["--min-recall", "0.5", "--max-false-rate", "25"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("recall 50.0%"));
    let failed = run(&["--min-recall", "0.9"]);
    assert_eq!(failed.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("recall 0.500 is below --min-recall 0.9")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_publishes_history_as_reading_messages() {
    use clap::Parser;
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("replayed", 1, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: yujing::replay::ReplayArgs,
    }
    let series = data("nab/realTraffic/speed_7578.csv");
    let cli = Cli::parse_from([
        "replay",
        series.to_str().unwrap(),
        "--brokers",
        &bootstrap,
        "--topic",
        "replayed",
        "--time-zone",
        "+00:00",
    ]);
    let sent = yujing::replay::run(&cli.args).await.unwrap();
    let rows: Vec<String> = std::fs::read_to_string(&series)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect();
    assert_eq!(sent.messages as usize, rows.len());
    let n = rows.len();
    let b = bootstrap.clone();
    let got =
        tokio::task::spawn_blocking(move || read_topic(&b, "replayed", n, Duration::from_secs(30)))
            .await
            .unwrap();
    assert_eq!(got.len(), n);
    // In event-time order, keyed by sensor, decodable by the pipeline.
    let mut last = i64::MIN;
    for (record, row) in got.iter().zip(&rows) {
        assert_eq!(record.key.as_deref(), Some("speed_7578"));
        let readings = yujing_ingest::decode_readings(&record.payload).unwrap();
        let (ts, value) = row.split_once(',').unwrap();
        assert_eq!(readings.len(), 1);
        assert_eq!(readings[0].value, value.parse::<f64>().unwrap());
        let expected = chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp_millis();
        assert_eq!(readings[0].ts_ms, expected);
        assert!(readings[0].ts_ms >= last);
        last = readings[0].ts_ms;
    }

    // With the city's registry: keyed by district code, so a district's
    // readings share a partition.
    let dir = tempfile::tempdir().unwrap();
    let sensors = dir.path().join("sensors.csv");
    std::fs::write(
        &sensors,
        "sensor_id,kind,district,district_code,street,grid,lat,lon\nspeed_7578,traffic,Yubei,500112,Longxi,g1,29.6,106.5\n",
    )
    .unwrap();
    cluster.create_topic("by-district", 1, 1).unwrap();
    let cli = Cli::parse_from([
        "replay",
        series.to_str().unwrap(),
        "--brokers",
        &bootstrap,
        "--topic",
        "by-district",
        "--time-zone",
        "+00:00",
        "--sensors",
        sensors.to_str().unwrap(),
    ]);
    let sent = yujing::replay::run(&cli.args).await.unwrap();
    assert_eq!((sent.messages as usize, sent.unknown_sensors), (n, 0));
    let b = bootstrap.clone();
    let got = tokio::task::spawn_blocking(move || {
        read_topic(&b, "by-district", n, Duration::from_secs(30))
    })
    .await
    .unwrap();
    assert_eq!(got.len(), n);
    assert!(got.iter().all(|r| r.key.as_deref() == Some("500112")));
}
