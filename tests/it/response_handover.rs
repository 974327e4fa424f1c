//! The response book moves with its partitions: two `yujing run`
//! instances with a state topic; a warning acknowledged on A is still
//! acknowledged, by whichever instance holds it after B joins, and the
//! responders' next commands on the feedback topic are applied by each
//! warning's owner, once, and refused by nobody.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

use crate::rebalance::{Pair, both_took_a_partition_over, config_full, metric, pair, send_reading};
use crate::support::{Cluster, free_port, read_topic, wait_until};

const RULES: &str = "\
rules:
  - id: pm25-1m
    metric: pm25
    window: 1m
    above: { blue: 75 }
";

const UNITS: &str = "\
units:
  - { id: grid-g1, level: grid, areas: [g1] }
  - { id: grid-g2, level: grid, areas: [g2] }
  - { id: city, level: city, token_env: YUJING_TEST_TOKEN_HANDOVER }
";

async fn listed(port: u16) -> Vec<Value> {
    let text = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/warnings"))
        .header("authorization", "Bearer handover-city")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["warnings"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_move_with_their_partition_and_commands_reach_the_owner() {
    // SAFETY of the test: read only by this test's runs.
    unsafe { std::env::set_var("YUJING_TEST_TOKEN_HANDOVER", "handover-city") };
    let cluster = Cluster::mock();
    cluster
        .create_topics(&[
            ("readings", 2),
            ("alerts", 1),
            ("dead-letter", 1),
            ("yujing-state", 2),
            ("responses", 1),
            ("feedback", 1),
        ])
        .await;
    let bootstrap = cluster.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("units.yaml"), UNITS).unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let kafka = "  state_topic: yujing-state";
    let response = "response: { units: units.yaml, topic: responses, feedback_topic: feedback, feedback_grace: 2s }";
    let config_a = config_full(
        dir.path(),
        "a",
        &bootstrap,
        port_a,
        RULES,
        kafka,
        &format!("state_dir: state-a\n{response}"),
    );
    let config_b = config_full(
        dir.path(),
        "b",
        &bootstrap,
        port_b,
        RULES,
        kafka,
        &format!("state_dir: state-b\n{response}"),
    );
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let command = async |warning_id: &str, body: &str| {
        producer
            .send(
                FutureRecord::to("feedback").key(warning_id).payload(body),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    };
    let read = |topic: &'static str, n: usize| {
        let b = bootstrap.clone();
        tokio::task::spawn_blocking(move || read_topic(&b, topic, n, Duration::from_secs(10)))
    };
    let changes = async |change: &str| {
        let mut n = 0.0;
        for port in [port_a, port_b] {
            let samples = crate::support::scrape(port).await;
            n += crate::support::sample(
                &samples,
                "yujing_response_changes_total",
                &[("change", change)],
            );
        }
        n
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
        // 2026-07-15 08:00 +08:00: a1 on partition 0, b1 on 1, both blue.
        for m in 0..2 {
            let ts = 1_784_073_600_000_i64 + m * 60_000 + 1_000;
            send_reading(&producer, "a1", 0, ts, 100.0).await;
            send_reading(&producer, "b1", 1, ts, 100.0).await;
        }
        wait_until("A to assign both warnings", async || {
            changes("assigned").await >= 2.0
        })
        .await;
        let assigned: Vec<Value> = read("responses", 2)
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::from_slice(&r.payload).unwrap())
            .collect();
        let id_of = |unit: &str| {
            assigned.iter().find(|m| m["assignee"] == unit).unwrap()["warning_id"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let (a1, b1) = (id_of("grid-g1"), id_of("grid-g2"));
        command(&a1, r#"{"unit":"grid-g1","action":"acknowledge"}"#).await;
        wait_until("A to apply the acknowledgement", async || {
            changes("acknowledged").await >= 1.0
        })
        .await;

        let _ = start_b.send(());
        both_took_a_partition_over(port_a, port_b).await;
        // Each instance holds the response of its partition's warning.
        let (on_a, on_b) = (listed(port_a).await, listed(port_b).await);
        assert_eq!((on_a.len(), on_b.len()), (1, 1), "{on_a:#?}\n{on_b:#?}");
        let all: Vec<&Value> = on_a.iter().chain(&on_b).collect();
        let held = |id: &str| *all.iter().find(|w| w["warning_id"] == id).unwrap();
        assert_eq!(
            held(&a1)["state"],
            "acknowledged",
            "kept through the handover"
        );
        assert_eq!(held(&b1)["state"], "assigned");

        // Commands go to every instance; each is applied by its owner.
        command(
            &a1,
            r#"{"unit":"grid-g1","action":"dispatch","to":"team 1"}"#,
        )
        .await;
        command(&b1, r#"{"unit":"grid-g2","action":"acknowledge"}"#).await;
        wait_until("both commands applied", async || {
            changes("dispatched").await >= 1.0 && changes("acknowledged").await >= 2.0
        })
        .await;
        // Past the grace: the instance that does not own a warning leaves
        // its command alone.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let refused = metric(port_a, "yujing_response_refused_total").await
            + metric(port_b, "yujing_response_refused_total").await;
        let applied = (changes("dispatched").await, changes("acknowledged").await);
        let _ = stop_a.send(());
        let _ = stop_b.send(());
        (a1, b1, refused, applied)
    };
    let ((a, b), (a1, b1, refused, applied)) = tokio::join!(runs, driver);
    a.expect("instance A stopped cleanly");
    b.expect("instance B started")
        .expect("instance B stopped cleanly");
    assert_eq!(
        refused, 0.0,
        "no command refused by the instance that did not own it"
    );
    assert_eq!(applied, (1.0, 2.0), "each command applied once");
    let dead = read("dead-letter", 1).await.unwrap();
    assert!(dead.is_empty(), "nothing dead-lettered: {dead:?}");
    let trail: Vec<(String, String)> = read("responses", 20)
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.payload).unwrap())
        .map(|m| {
            (
                m["warning_id"].as_str().unwrap().to_owned(),
                m["change"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let of = |id: &str| -> Vec<&str> {
        trail
            .iter()
            .filter(|(w, _)| w == id)
            .map(|(_, c)| c.as_str())
            .collect()
    };
    assert_eq!(of(&a1), ["assigned", "acknowledged", "dispatched"]);
    assert_eq!(of(&b1), ["assigned", "acknowledged"]);
}
