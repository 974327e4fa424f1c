//! The end-to-end path: readings produced to a Kafka topic (librdkafka's
//! mock cluster) → `yujing run` → alert messages read back from the alert
//! topic, refused messages from the dead-letter topic, metrics over HTTP.

use std::path::Path;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

use crate::support::{
    committed_offset, free_port, parse_prometheus_text, read_topic, run_while, sample,
};

/// 2026-07-15T08:00:00+08:00
const T0: i64 = 1_784_073_600_000;
const MIN: i64 = 60_000;

const RULES: &str = "\
rules:
  - id: pm25-1m
    description: PM2.5 one-minute mean
    metric: pm25
    unit: ug/m3
    window: 1m
    aggregate: avg
    group_by: grid
    above: { blue: 75, yellow: 115, orange: 150, red: 250 }
";

const SENSORS: &str = "\
sensor_id,kind,district,district_code,street,grid,lat,lon
a1,air,Yubei,500112,Longxi,g1,29.60,106.50
a2,air,Yubei,500112,Longxi,g1,29.61,106.51
b1,air,Yuzhong,500103,Jiefangbei,g2,29.55,106.57
";

fn epoch(sensor: &str, ts: i64, value: f64) -> String {
    format!(
        r#"{{"sensor_id":"{sensor}","ts":{ts},"metric":"pm25","value":{value},"unit":"ug/m3"}}"#
    )
}

fn rfc3339(sensor: &str, ts: i64, value: f64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(ts)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339();
    format!(r#"{{"sensor_id":"{sensor}","ts":"{t}","metric":"pm25","value":{value}}}"#)
}

/// The scripted input, in production order, with why each message is there.
fn script() -> Vec<(&'static str, String)> {
    vec![
        ("a1", epoch("a1", T0 + 10_000, 80.0)),
        ("a2", rfc3339("a2", T0 + 20_000, 90.0)),
        ("b1", format!("[{}]", epoch("b1", T0 + 30_000, 50.0))),
        // Gateway form; pm10 is a metric no rule uses.
        (
            "a1",
            format!(
                r#"{{"sensor_id":"a1","ts":{},"values":{{"pm25":100,"pm10":150}}}}"#,
                T0 + MIN + 10_000
            ),
        ),
        // Closes minute 0 (watermark = 2:05 - 10s delay = 1:55).
        ("a1", epoch("a1", T0 + 2 * MIN + 5_000, 160.0)),
        // Out of order but within the allowed delay: must count in minute 1
        // (without it minute 1 would average 100, blue, and not escalate).
        ("a2", rfc3339("a2", T0 + MIN + 50_000, 140.0)),
        ("a1", r#"{"sensor_id":"a1","ts":"#.to_owned()),
        ("zz", epoch("zz", T0 + 2 * MIN + 6_000, 500.0)),
        ("a2", epoch("a2", T0 + 2 * MIN + 20_000, 170.0)),
        ("b1", epoch("b1", T0 + 2 * MIN + 30_000, 300.0)),
        ("a1", epoch("a1", T0 + 3 * MIN + 10_000, 260.0)),
        ("a2", epoch("a2", T0 + 3 * MIN + 20_000, 280.0)),
        ("b1", rfc3339("b1", T0 + 3 * MIN + 30_000, 40.0)),
        ("a1", epoch("a1", T0 + 4 * MIN + 15_000, 100.0)),
        // Minute 1 closed long ago: late, to the dead-letter topic.
        ("a1", epoch("a1", T0 + MIN + 30_000, 999.0)),
        ("a2", epoch("a2", T0 + 4 * MIN + 20_000, 110.0)),
        ("a1", epoch("a1", T0 + 5 * MIN + 15_000, 20.0)),
        ("a2", epoch("a2", T0 + 5 * MIN + 20_000, 30.0)),
        // Closes minute 5; its own window (minute 6) stays open.
        ("a1", epoch("a1", T0 + 6 * MIN + 30_000, 20.0)),
    ]
}

/// A mock cluster with the topics the tests' config names.
fn cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    crate::support::mock_cluster(&["readings", "alerts", "dead-letter", "late-readings"])
}

/// Produce keyed readings in order, each acknowledged before the next.
async fn produce(bootstrap: &str, messages: Vec<(&str, String)>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for (key, payload) in messages {
        producer
            .send(
                FutureRecord::to("readings").key(key).payload(&payload),
                Duration::from_secs(5),
            )
            .await
            .expect("produce reading");
    }
}

fn write_config(
    dir: &Path,
    bootstrap: &str,
    metrics_port: u16,
    pipeline: &str,
) -> std::path::PathBuf {
    std::fs::write(dir.join("rules.yaml"), RULES).unwrap();
    std::fs::write(dir.join("sensors.csv"), SENSORS).unwrap();
    let config = format!(
        "kafka:
  bootstrap_servers: \"{bootstrap}\"
  group_id: yujing-e2e
  readings_topics: [readings]
  dead_letter_topic: dead-letter
  late_topic: late-readings
  consumer_properties:
    session.timeout.ms: \"6000\"
    statistics.interval.ms: \"1000\"
  producer_properties:
    message.timeout.ms: \"3000\"
rules: rules.yaml
sensors: sensors.csv
pipeline:
  max_age: \"off\"
{pipeline}
sinks:
  - kind: kafka
    topic: alerts
metrics:
  listen: \"127.0.0.1:{metrics_port}\"
"
    );
    let path = dir.join("yujing.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

/// (transition, grade, previous grade, group key, value, threshold, window start)
type Expected = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
    f64,
    f64,
    i64,
);

fn expected() -> Vec<Expected> {
    vec![
        ("raised", Some("blue"), None, "g1", 85.0, 75.0, 0),
        (
            "escalated",
            Some("yellow"),
            Some("blue"),
            "g1",
            120.0,
            115.0,
            1,
        ),
        (
            "escalated",
            Some("orange"),
            Some("yellow"),
            "g1",
            165.0,
            150.0,
            2,
        ),
        ("raised", Some("red"), None, "g2", 300.0, 250.0, 2),
        (
            "escalated",
            Some("red"),
            Some("orange"),
            "g1",
            270.0,
            250.0,
            3,
        ),
        ("resolved", None, Some("red"), "g2", 40.0, 250.0, 3),
        (
            "de-escalated",
            Some("blue"),
            Some("red"),
            "g1",
            105.0,
            75.0,
            4,
        ),
        ("resolved", None, Some("blue"), "g1", 25.0, 75.0, 5),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_become_graded_warnings_on_the_alert_topic() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let config = write_config(dir.path(), &bootstrap, metrics_port, "  allowed_delay: 10s");

    let (summary, (alerts, dead, content_type, body)) = run_while(config, async {
        produce(&bootstrap, script()).await;
        let alerts = {
            let b = bootstrap.clone();
            tokio::task::spawn_blocking(move || {
                read_topic(&b, "alerts", 8, Duration::from_secs(60))
            })
            .await
            .unwrap()
        };
        let dead = {
            let b = bootstrap.clone();
            tokio::task::spawn_blocking(move || {
                let mut refused = read_topic(&b, "dead-letter", 2, Duration::from_secs(30));
                refused.extend(read_topic(&b, "late-readings", 1, Duration::from_secs(30)));
                refused
            })
            .await
            .unwrap()
        };
        // Let the pipeline's periodic commit run before scraping and stopping.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let response = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .await
            .expect("metrics endpoint answers");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.text().await.unwrap();
        (alerts, dead, content_type, body)
    })
    .await;
    let summary = summary.expect("pipeline ran and stopped cleanly");

    // --- the alert topic: exactly the expected transitions, in order ---
    let messages: Vec<Value> = alerts
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect();
    let got: Vec<String> = messages
        .iter()
        .map(|m| format!("{} {} {}", m["transition"], m["grade"], m["group"]["key"]))
        .collect();
    assert_eq!(alerts.len(), 8, "alert messages: {got:#?}");
    let time = |m: i64| {
        chrono::DateTime::from_timestamp_millis(T0 + m * MIN)
            .unwrap()
            .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
            .to_rfc3339()
    };
    for (i, (record, (transition, grade, previous, group, value, threshold, minute))) in
        alerts.iter().zip(expected()).enumerate()
    {
        let m = &messages[i];
        crate::support::assert_valid_alert(m);
        let ctx = format!("message {i}: {m}");
        assert_eq!(m["schema"], "yujing.alert/v1", "{ctx}");
        assert_eq!(m["transition"], transition, "{ctx}");
        assert_eq!(m["grade"].as_str(), grade, "{ctx}");
        assert_eq!(m["previous_grade"].as_str(), previous, "{ctx}");
        assert_eq!(m["group"]["by"], "grid", "{ctx}");
        assert_eq!(m["group"]["key"], group, "{ctx}");
        assert_eq!(m["value"].as_f64(), Some(value), "{ctx}");
        assert_eq!(m["threshold"].as_f64(), Some(threshold), "{ctx}");
        assert_eq!(m["window"]["start"], time(minute), "{ctx}");
        assert_eq!(m["window"]["end"], time(minute + 1), "{ctx}");
        assert_eq!(m["event_time"], time(minute + 1), "{ctx}");
        assert_eq!(m["rule"]["id"], "pm25-1m", "{ctx}");
        let fingerprint = format!("pm25-1m/grid/{group}");
        assert_eq!(m["fingerprint"], fingerprint, "{ctx}");
        assert_eq!(
            record.key.as_deref(),
            Some(fingerprint.as_str()),
            "key is the fingerprint"
        );
        assert_eq!(record.headers["rule"], "pm25-1m");
        assert_eq!(record.headers["grade"], grade.unwrap_or(""));
        assert_eq!(record.headers["transition"], transition);
        if transition == "resolved" {
            assert_eq!(m["resolve_reason"], "cleared", "{ctx}");
            assert!(m["level"].is_null() && m["severity"].is_null(), "{ctx}");
        }
        assert!(!m["summary"].as_str().unwrap().is_empty());
    }
    // The g1 episode: one warning id, sequence 1..=6, levels and severities.
    let g1: Vec<&Value> = messages
        .iter()
        .filter(|m| m["group"]["key"] == "g1")
        .collect();
    assert!(g1.iter().all(|m| m["warning_id"] == g1[0]["warning_id"]));
    let seq: Vec<u64> = g1.iter().map(|m| m["sequence"].as_u64().unwrap()).collect();
    assert_eq!(seq, [1, 2, 3, 4, 5, 6]);
    assert_eq!(
        (
            messages[0]["level"].as_str(),
            messages[0]["severity"].as_str()
        ),
        (Some("IV"), Some("Minor"))
    );
    assert_eq!(
        (
            messages[4]["level"].as_str(),
            messages[4]["severity"].as_str()
        ),
        (Some("I"), Some("Extreme"))
    );
    assert_eq!(messages[0]["group"]["district_code"], "500112");
    assert_eq!(messages[0]["started_at"], time(1));

    // --- refused input: original bytes and reasons on the dead-letter topic ---
    let reasons: Vec<&str> = dead
        .iter()
        .map(|r| r.headers["yujing.reason"].as_str())
        .collect();
    // Bad input on the dead-letter topic, the late reading on the late topic.
    assert_eq!(reasons, ["malformed", "unknown_sensor", "late"]);
    assert_eq!(
        dead[2].payload,
        epoch("a1", T0 + MIN + 30_000, 999.0).into_bytes()
    );
    assert_eq!(
        dead[0].payload,
        br#"{"sensor_id":"a1","ts":"#.to_vec(),
        "original bytes untouched"
    );
    assert_eq!(dead[0].headers["yujing.source.topic"], "readings");
    assert_eq!(dead[0].headers["yujing.source.offset"], "6");
    assert!(
        dead[0].headers["yujing.error"].contains("EOF"),
        "{:?}",
        dead[0].headers
    );

    // --- metrics: valid Prometheus text, counters advanced ---
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let samples = parse_prometheus_text(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
    assert_eq!(
        sample(
            &samples,
            "yujing_messages_consumed_total",
            &[("topic", "readings")]
        ),
        19.0
    );
    assert_eq!(
        sample(
            &samples,
            "yujing_bad_messages_total",
            &[("reason", "malformed")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            "yujing_bad_messages_total",
            &[("reason", "unknown_sensor")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            "yujing_late_readings_total",
            &[("topic", "readings")]
        ),
        1.0
    );
    assert_eq!(sample(&samples, "yujing_readings_unused_total", &[]), 1.0);
    assert_eq!(sample(&samples, "yujing_windows_closed_total", &[]), 6.0);
    assert_eq!(
        sample(
            &samples,
            "yujing_warnings_total",
            &[
                ("rule", "pm25-1m"),
                ("grade", "blue"),
                ("transition", "raised")
            ]
        ),
        1.0
    );
    assert_eq!(sample(&samples, "yujing_warnings_total", &[]), 8.0);
    assert_eq!(
        sample(
            &samples,
            "yujing_sink_alerts_total",
            &[("sink", "kafka:alerts")]
        ),
        8.0
    );
    assert_eq!(sample(&samples, "yujing_active_warnings", &[]), 0.0);
    assert!(sample(&samples, "yujing_window_processing_seconds_count", &[]) >= 1.0);
    assert!(sample(&samples, "yujing_watermark_seconds", &[]) > 1.7e9);
    // The script's event time (July 2026) trails the wall clock: a large lag.
    assert!(sample(&samples, "yujing_watermark_lag_seconds", &[]) > 3_600.0);
    assert!(
        sample(&samples, "yujing_window_state_bytes", &[]) > 0.0,
        "minute 6 is open"
    );
    // Offsets: committed at least once; one message (minute 6) still pending.
    assert!(sample(&samples, "yujing_offset_commits_total", &[]) >= 1.0);
    assert_eq!(sample(&samples, "yujing_uncommitted_messages", &[]), 1.0);
    assert_eq!(
        sample(&samples, "yujing_open_panes", &[]),
        1.0,
        "only minute 6"
    );
    assert_eq!(
        sample(&samples, "yujing_window_states", &[]),
        1.0,
        "a1 in minute 6"
    );
    assert_eq!(sample(&samples, "yujing_idle_partitions", &[]), 0.0);
    assert_eq!(
        sample(&samples, "yujing_window_corrections_total", &[]),
        0.0
    );
    assert_eq!(sample(&samples, "yujing_sink_failures_total", &[]), 0.0);
    // librdkafka statistics (interval passed through the config): all read.
    let lag = samples.iter().find(|(k, _)| {
        k.starts_with("yujing_consumer_lag_messages{") && k.contains("topic=\"readings\"")
    });
    assert_eq!(lag.map(|(_, v)| *v), Some(0.0), "consumer lag gauge");

    assert_eq!(summary.messages, 19);
    assert_eq!(summary.bad_messages, 2);
    assert_eq!(summary.late_readings, 1);

    // --- offsets: committed up to the first message whose window is open ---
    let b = bootstrap.clone();
    let committed =
        tokio::task::spawn_blocking(move || committed_offset(&b, "yujing-e2e", "readings"))
            .await
            .unwrap();
    assert_eq!(
        committed,
        Some(18),
        "minute 6 is still open: its reading (offset 18) must be re-read after a restart"
    );
    drop(cluster);
}

/// A stream that falls silent must not freeze its last window: with every
/// partition idle, the watermark moves on with processing time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_stream_still_closes_its_last_window() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = "  allowed_delay: 1s\n  idle_timeout: 1s";
    let config = write_config(dir.path(), &bootstrap, free_port(), pipeline);

    let (result, alerts) = run_while(config, async {
        let readings = vec![
            ("a1", epoch("a1", T0 + 10_000, 200.0)),
            ("a2", epoch("a2", T0 + 58_000, 220.0)),
        ];
        produce(&bootstrap, readings).await;
        // No later reading ever comes. Minute 0 must still close.
        let b = bootstrap.clone();
        tokio::task::spawn_blocking(move || read_topic(&b, "alerts", 1, Duration::from_secs(40)))
            .await
            .unwrap()
    })
    .await;
    result.unwrap();
    assert_eq!(
        alerts.len(),
        1,
        "the silent stream's last window never closed"
    );
    let m: Value = serde_json::from_slice(&alerts[0].payload).unwrap();
    assert_eq!(
        (m["transition"].as_str(), m["grade"].as_str()),
        (Some("raised"), Some("orange"))
    );
    assert_eq!(m["value"].as_f64(), Some(210.0));
    drop(cluster);
}

/// When the dead-letter topic refuses a message for good (not authorised),
/// the failure is counted, the message's coordinates are recorded (here in
/// the log: no `state_dir`), and the stream and its offsets go on: the
/// message no longer pins its partition (issue 20; it used to hold the
/// committed offset at 1 forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_topic_refusing_for_good_does_not_pin_the_offset() {
    let cluster = cluster();
    cluster
        .topic_error(
            "dead-letter",
            rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        )
        .unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let config = write_config(dir.path(), &bootstrap, metrics_port, "  allowed_delay: 1s");

    let (result, (alerts, body)) = run_while(config, async {
        let readings = vec![
            ("a1", epoch("a1", T0 + 10_000, 200.0)),
            ("a1", r#"{"sensor_id":"a1","ts":"#.to_owned()),
            ("a1", epoch("a1", T0 + MIN + 30_000, 10.0)),
        ];
        produce(&bootstrap, readings).await;
        // Minute 0 still closes and warns after the failed dead-letter write.
        let b = bootstrap.clone();
        let alerts = tokio::task::spawn_blocking(move || {
            read_topic(&b, "alerts", 1, Duration::from_secs(40))
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let body =
            crate::support::get_text(format!("http://127.0.0.1:{metrics_port}/metrics")).await;
        (alerts, body)
    })
    .await;
    result.unwrap();
    assert_eq!(alerts.len(), 1, "the pipeline went on past the failure");
    let samples = parse_prometheus_text(&body).unwrap();
    assert_eq!(
        sample(&samples, "yujing_dead_letter_failures_total", &[]),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            "yujing_bad_messages_total",
            &[("reason", "malformed")]
        ),
        1.0
    );
    let committed =
        tokio::task::spawn_blocking(move || committed_offset(&bootstrap, "yujing-e2e", "readings"))
            .await
            .unwrap();
    assert_eq!(
        sample(
            &samples,
            "yujing_dead_letter_recorded_locally_total",
            &[("to", "dead-letter")]
        ),
        1.0
    );
    assert_eq!(
        committed,
        Some(2),
        "committed past the malformed message (offset 1), up to minute 1's open window"
    );
    drop(cluster);
}
