//! Two `yujing run` instances in one consumer group: when the second
//! joins, the first loses partitions, drops their offsets and watermarks
//! (so it never commits over the new owner), and between them every
//! message is read.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::support::{Cluster, free_port, wait_until};

const RULES: &str = "\
rules:
  - id: pm25-1m
    metric: pm25
    window: 1m
    group_by: grid
    above: { blue: 75 }
";

const SENSORS: &str = "\
sensor_id,kind,district,district_code,street,grid,lat,lon
a1,air,Yubei,500112,Longxi,g1,29.60,106.50
b1,air,Yuzhong,500103,Jiefangbei,g2,29.55,106.57
";

fn config(dir: &Path, name: &str, bootstrap: &str, port: u16) -> std::path::PathBuf {
    config_with(dir, name, bootstrap, port, RULES, "")
}

/// The same with other rules and extra `kafka:` settings.
fn config_with(
    dir: &Path,
    name: &str,
    bootstrap: &str,
    port: u16,
    rules: &str,
    kafka: &str,
) -> std::path::PathBuf {
    config_full(dir, name, bootstrap, port, rules, kafka, "")
}

/// The same with `extra` top-level settings too.
pub(crate) fn config_full(
    dir: &Path,
    name: &str,
    bootstrap: &str,
    port: u16,
    rules: &str,
    kafka: &str,
    extra: &str,
) -> std::path::PathBuf {
    std::fs::write(dir.join("rules.yaml"), rules).unwrap();
    std::fs::write(dir.join("sensors.csv"), SENSORS).unwrap();
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "kafka:
  bootstrap_servers: \"{bootstrap}\"
  group_id: yujing-pair
  readings_topics: [readings]
  dead_letter_topic: dead-letter
  consumer_properties:
    session.timeout.ms: \"6000\"
    heartbeat.interval.ms: \"500\"
{kafka}
rules: rules.yaml
sensors: sensors.csv
pipeline:
  allowed_delay: 0s
  max_age: \"off\"
reload: {{ watch: false }}
{extra}
sinks: [{{ kind: kafka, topic: alerts }}]
metrics: {{ listen: \"127.0.0.1:{port}\" }}
"
        ),
    )
    .unwrap();
    path
}

/// Starts B and stops each instance of a [`pair`].
pub(crate) struct Pair {
    pub start_b: tokio::sync::oneshot::Sender<()>,
    pub stop_a: tokio::sync::oneshot::Sender<()>,
    pub stop_b: tokio::sync::oneshot::Sender<()>,
}

pub(crate) type Run = Result<yujing::pipeline::RunSummary, yujing::pipeline::PipelineError>;

/// Instances A (running at once) and B (once `start_b` is sent) in one
/// group. The pipelines are not `Send` (DataFusion sessions): the future
/// runs them on the caller's task, side by side with its driver.
pub(crate) fn pair(
    config_a: PathBuf,
    config_b: PathBuf,
) -> (impl Future<Output = (Run, Option<Run>)>, Pair) {
    let (stop_a, rx_a) = tokio::sync::oneshot::channel::<()>();
    let (stop_b, rx_b) = tokio::sync::oneshot::channel::<()>();
    let (start_b, go_b) = tokio::sync::oneshot::channel::<()>();
    let runs = async move {
        let run_a = yujing::cli::run(config_a, async {
            let _ = rx_a.await;
        });
        let run_b = async {
            if go_b.await.is_err() {
                return None;
            }
            Some(
                yujing::cli::run(config_b, async {
                    let _ = rx_b.await;
                })
                .await,
            )
        };
        tokio::join!(run_a, run_b)
    };
    (
        runs,
        Pair {
            start_b,
            stop_a,
            stop_b,
        },
    )
}

/// One pm25 reading of `sensor` on `partition` of the readings topic.
pub(crate) async fn send_reading(
    p: &FutureProducer,
    sensor: &str,
    partition: i32,
    ts: i64,
    value: f64,
) {
    let body = format!(r#"{{"sensor_id":"{sensor}","ts":{ts},"metric":"pm25","value":{value}}}"#);
    p.send(
        FutureRecord::to("readings")
            .partition(partition)
            .key(sensor)
            .payload(&body),
        Duration::from_secs(5),
    )
    .await
    .expect("produce");
}

/// Wait until instances A and B (metrics on these ports) each took a
/// partition's state over from the state topic.
pub(crate) async fn both_took_a_partition_over(port_a: u16, port_b: u16) {
    wait_until(
        "both instances to take a partition's state over",
        async || {
            metric(port_a, "yujing_partition_states_taken_total").await >= 1.0
                && metric(port_b, "yujing_partition_states_taken_total").await >= 1.0
        },
    )
    .await;
}

/// The sum of a metric's series, or one series (`name{label="value"}`).
pub(crate) async fn metric(port: u16, name: &str) -> f64 {
    crate::support::sample(&crate::support::scrape(port).await, name, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_takes_partitions_over_without_loss() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("readings", 2, 1).unwrap();
    cluster.create_topic("alerts", 1, 1).unwrap();
    cluster.create_topic("dead-letter", 1, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let config_a = config(dir.path(), "a", &bootstrap, port_a);
    let config_b = config(dir.path(), "b", &bootstrap, port_b);

    // Readings on both partitions, event time 1 s per message.
    let produced = Arc::new(AtomicU64::new(0));
    let stop_producing = Arc::new(AtomicBool::new(false));
    let producer = {
        let (bootstrap, produced, stop) =
            (bootstrap.clone(), produced.clone(), stop_producing.clone());
        tokio::spawn(async move {
            let p: FutureProducer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .create()
                .unwrap();
            let start = chrono::Utc::now().timestamp_millis() - 3_600_000;
            let mut i: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let (sensor, partition) = if i % 2 == 0 { ("a1", 0) } else { ("b1", 1) };
                send_reading(&p, sensor, partition, start + i * 1_000, 50.0).await;
                produced.fetch_add(1, Ordering::Relaxed);
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let (
        runs,
        Pair {
            start_b,
            stop_a,
            stop_b,
        },
    ) = pair(config_a, config_b);
    let driver = async {
        wait_until("instance A to read", async || {
            metric(port_a, "yujing_messages_consumed_total").await > 0.0
        })
        .await;
        let _ = start_b.send(());
        wait_until("a rebalance to revoke A's partitions", async || {
            metric(port_a, "yujing_partitions_revoked_total").await >= 1.0
        })
        .await;
        wait_until("instance B to read", async || {
            metric(port_b, "yujing_messages_consumed_total").await > 0.0
        })
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop_producing.store(true, Ordering::Relaxed);
        producer.await.unwrap();
        let total = produced.load(Ordering::Relaxed) as f64;
        wait_until("every message to be read", async || {
            metric(port_a, "yujing_messages_consumed_total").await
                + metric(port_b, "yujing_messages_consumed_total").await
                >= total
        })
        .await;
        let read = (
            metric(port_a, "yujing_messages_consumed_total").await,
            metric(port_b, "yujing_messages_consumed_total").await,
        );
        let _ = stop_a.send(());
        let _ = stop_b.send(());
        (read, total)
    };
    let ((a, b), ((a_read, b_read), total)) = tokio::join!(runs, driver);
    let a = a.expect("instance A stopped cleanly");
    let b = b
        .expect("instance B started")
        .expect("instance B stopped cleanly");
    assert!(
        b_read > 0.0 && a_read > 0.0,
        "both read: A {a_read}, B {b_read}"
    );
    // At least once: re-reads after the handover are allowed, losses not.
    assert!(a.messages + b.messages >= total as u64);
    assert_eq!(a.bad_messages + b.bad_messages, 0);
}

/// With `kafka.state_topic`, a rebalance hands the partitions' open
/// windows and warnings to their next owners: half of a 10-minute window
/// is read by A alone, B joins, the second half is read after the
/// handover. Each sensor's window covers both halves (160: orange), each
/// warning is raised once, and no message is read twice (without the
/// handover both partitions would be re-read from their committed
/// offsets, the start of the open window).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_hands_the_open_windows_to_the_next_owner() {
    hand_over_half_a_window(Cluster::mock(), ["", ""]).await;
}

/// The same on a real broker process (tansu): its group coordinator, not
/// the mock's, runs the rebalance. The states are cut into 200-byte
/// chunks, as a city's large partitions are into records under the
/// broker's message size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_real_broker_a_rebalance_hands_the_open_windows_over_in_chunks() {
    if let Some(cluster) = Cluster::tansu().await {
        hand_over_half_a_window(cluster, [CHUNKED, CHUNKED]).await;
    }
}

const CHUNKED: &str = "  state_chunk_bytes: 200";

/// The same in exactly-once mode: the states are written inside each
/// instance's transaction, which the old owner commits before the
/// rebalance goes on (the mock cluster keeps no aborted transactions, so
/// only the committed path is exercised here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_exactly_once_mode_the_handover_is_committed_with_the_alerts() {
    hand_over_half_a_window(
        Cluster::mock(),
        [
            "  transactional_id: yujing-pair-a\n  state_chunk_bytes: 200",
            "  transactional_id: yujing-pair-b\n  state_chunk_bytes: 200",
        ],
    )
    .await;
}

/// Two instances, each with its `kafka:` settings besides the state topic.
async fn hand_over_half_a_window(cluster: Cluster, kafka: [&str; 2]) {
    cluster
        .create_topics(&[
            ("readings", 2),
            ("alerts", 1),
            ("dead-letter", 1),
            ("yujing-state", 3),
        ])
        .await;
    let bootstrap = cluster.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let rules = "rules:\n  - id: pm25-avg\n    metric: pm25\n    window: 10m\n    above: { blue: 75, orange: 150 }\n";
    let [kafka_a, kafka_b] = kafka.map(|k| format!("  state_topic: yujing-state\n{k}"));
    let config_a = config_with(dir.path(), "a", &bootstrap, port_a, rules, &kafka_a);
    let config_b = config_with(dir.path(), "b", &bootstrap, port_b, rules, &kafka_b);

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    // 2026-07-15 08:00 +08:00, minute by minute; a1 on partition 0, b1 on 1.
    let produce = async |minutes: std::ops::Range<i64>, value: f64| {
        for m in minutes {
            for (sensor, partition) in [("a1", 0), ("b1", 1)] {
                let ts = 1_784_073_600_000_i64 + m * 60_000 + 1_000;
                send_reading(&producer, sensor, partition, ts, value).await;
            }
        }
    };

    let (
        runs,
        Pair {
            start_b,
            stop_a,
            stop_b,
        },
    ) = pair(config_a, config_b);
    let consumed = async || {
        metric(port_a, "yujing_messages_consumed_total").await
            + metric(port_b, "yujing_messages_consumed_total").await
    };
    let driver = async {
        produce(0..5, 220.0).await;
        wait_until("instance A to read the first half", async || {
            metric(port_a, "yujing_messages_consumed_total").await >= 10.0
        })
        .await;
        let _ = start_b.send(());
        both_took_a_partition_over(port_a, port_b).await;
        produce(5..11, 100.0).await;
        wait_until("every message to be read", async || {
            consumed().await >= 22.0
        })
        .await;
        wait_until("the windows to close", async || {
            metric(port_a, "yujing_warnings_total").await
                + metric(port_b, "yujing_warnings_total").await
                >= 2.0
        })
        .await;
        // Nothing more arrives (a repeat or a partial window would).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let b = bootstrap.clone();
        let alerts = tokio::task::spawn_blocking(move || {
            crate::support::read_topic(&b, "alerts", 3, Duration::from_secs(3))
        })
        .await
        .unwrap();
        let alerts: Vec<serde_json::Value> = alerts
            .iter()
            .map(|r| serde_json::from_slice(&r.payload).unwrap())
            .collect();
        let read = consumed().await;
        // A wrote the state of the partition it gave up.
        let written = r#"yujing_partition_states_written_total{outcome="success"}"#;
        assert!(metric(port_a, written).await >= 1.0);
        // Chunked when asked to: no record over the limit, chunk keys there.
        // Readings partition 0's states are on state partition 0, and
        // only they.
        let b = bootstrap.clone();
        let records = tokio::task::spawn_blocking(move || {
            crate::support::read_topic(&b, "yujing-state", 1000, Duration::from_secs(3))
        })
        .await
        .unwrap();
        let chunked = records
            .iter()
            .any(|r| r.key.as_deref().is_some_and(|k| k.contains('#')));
        assert!(!records.is_empty());
        assert!(
            records.iter().all(|r| r
                .key
                .as_deref()
                .is_some_and(|k| k.starts_with("readings/0"))),
            "{:?}",
            records.iter().map(|r| r.key.clone()).collect::<Vec<_>>()
        );
        assert_eq!(chunked, kafka[0].contains("state_chunk_bytes"));
        if chunked {
            assert!(records.iter().all(|r| r.payload.len() <= 200));
        }
        let _ = stop_a.send(());
        let _ = stop_b.send(());
        (alerts, read)
    };
    let ((a, b), (alerts, read)) = tokio::join!(runs, driver);
    a.expect("instance A stopped cleanly");
    b.expect("instance B started")
        .expect("instance B stopped cleanly");
    assert_eq!(read, 22.0, "no message read twice");
    let mut seen: Vec<(String, String, f64)> = alerts
        .iter()
        .map(|a| {
            (
                a["group"]["key"].as_str().unwrap().to_owned(),
                a["grade"].as_str().unwrap().to_owned(),
                a["value"].as_f64().unwrap(),
            )
        })
        .collect();
    seen.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        seen,
        vec![
            ("a1".to_owned(), "orange".to_owned(), 160.0),
            ("b1".to_owned(), "orange".to_owned(), 160.0)
        ]
    );
}

/// A state topic that does not exist is refused at start with what to do,
/// rather than handovers that silently find nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_state_topic_is_refused_at_start() {
    let cluster = crate::support::mock_cluster(&["readings", "alerts", "dead-letter"]);
    let dir = tempfile::tempdir().unwrap();
    let kafka = "  state_topic: no-such-state-topic";
    let config = config_with(
        dir.path(),
        "a",
        &cluster.bootstrap_servers(),
        free_port(),
        RULES,
        kafka,
    );
    let e = yujing::cli::run(config, std::future::ready(()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no-such-state-topic") && e.contains("create it"),
        "{e}"
    );
}
