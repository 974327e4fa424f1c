//! Two `yujing run` instances in one consumer group: when the second
//! joins, the first loses partitions, drops their offsets and watermarks
//! (so it never commits over the new owner), and between them every
//! message is read.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::support::{free_port, parse_prometheus_text};

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
    std::fs::write(dir.join("rules.yaml"), RULES).unwrap();
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
rules: rules.yaml
sensors: sensors.csv
pipeline:
  allowed_delay: 0s
  max_age: \"off\"
reload: {{ watch: false }}
sinks: [{{ kind: kafka, topic: alerts }}]
metrics: {{ listen: \"127.0.0.1:{port}\" }}
"
        ),
    )
    .unwrap();
    path
}

async fn metric(port: u16, name: &str) -> f64 {
    let Ok(resp) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await else {
        return 0.0;
    };
    let samples: HashMap<String, f64> =
        parse_prometheus_text(&resp.text().await.unwrap_or_default()).unwrap_or_default();
    samples
        .iter()
        .filter(|(k, _)| k.split('{').next() == Some(name))
        .map(|(_, v)| *v)
        .sum()
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
                let body = format!(
                    r#"{{"sensor_id":"{sensor}","ts":{},"metric":"pm25","value":50}}"#,
                    start + i * 1_000
                );
                p.send(
                    FutureRecord::to("readings")
                        .partition(partition)
                        .key(sensor)
                        .payload(&body),
                    Duration::from_secs(5),
                )
                .await
                .expect("produce");
                produced.fetch_add(1, Ordering::Relaxed);
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let (stop_a, rx_a) = tokio::sync::oneshot::channel::<()>();
    let (stop_b, rx_b) = tokio::sync::oneshot::channel::<()>();
    let (start_b, go_b) = tokio::sync::oneshot::channel::<()>();
    // The pipelines are not `Send` (DataFusion sessions): run them on this
    // task, side by side with the driver.
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
    let (a, b, ((a_read, b_read), total)) = tokio::join!(run_a, run_b, driver);
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
