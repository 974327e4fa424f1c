//! Bad input through `yujing run`: a reading sent twice is counted once
//! (the repeat skipped, counted, and copied to the dead-letter topic with
//! the reason), and an oversized message is refused undecoded.

use std::time::Duration;

use serde_json::Value;

use crate::support::{City, T0, parse_prometheus_text, read_topic, run_while};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_count_once_and_oversized_messages_are_refused() {
    let city = City::new(1);
    // Indented: lands in the `pipeline:` section of the test config.
    let config = city.config_with(
        "  max_message_bytes: 300",
        "  - kind: kafka\n    topic: alerts\n",
    );
    let reading = |ts: i64, v: f64| {
        format!(r#"{{"sensor_id":"s000","ts":{ts},"metric":"pm25","value":{v}}}"#)
    };
    let (result, (alerts, text)) = run_while(config, async {
        // Minute 0: two readings, the first sent three times (alone, then
        // in a batch beside the second).
        let first = reading(T0 + 1_000, 100.0);
        city.produce_raw(&first).await;
        city.produce_raw(&first).await;
        city.produce_raw(&format!("[{first},{}]", reading(T0 + 2_000, 100.0)))
            .await;
        // Oversized: a valid reading padded past 300 bytes.
        let padded = format!(
            r#"{{"sensor_id":"s000","ts":{},"metric":"pm25","value":100,"unit":"{}"}}"#,
            T0 + 3_000,
            "x".repeat(400)
        );
        city.produce_raw(&padded).await;
        // Minute 1 closes minute 0.
        city.produce_raw(&reading(T0 + 61_000, 100.0)).await;
        let alerts = city.alerts(1).await;
        let text = city.get("/metrics").await;
        (alerts, text)
    })
    .await;
    result.expect("the pipeline stops cleanly");

    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0]["readings"], 2,
        "each reading once: {:#}",
        alerts[0]
    );
    let samples = parse_prometheus_text(&text).unwrap();
    assert_eq!(
        samples["yujing_duplicate_readings_total{topic=\"readings\"}"], 2.0,
        "{text}"
    );
    assert_eq!(
        samples["yujing_bad_messages_total{reason=\"oversized\"}"],
        1.0
    );

    let bootstrap = city.bootstrap().to_owned();
    let dead = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, "dead-letter", 3, Duration::from_secs(30))
    })
    .await
    .unwrap();
    let reasons: Vec<&str> = dead
        .iter()
        .map(|r| r.headers["yujing.reason"].as_str())
        .collect();
    assert_eq!(reasons, ["duplicate", "duplicate", "oversized"]);
    // The original bytes, untouched.
    let second: Value = serde_json::from_slice(&dead[1].payload).unwrap();
    assert_eq!(second.as_array().unwrap().len(), 2);
    assert!(dead[2].payload.len() > 400);
    assert_eq!(dead[0].headers["yujing.source.offset"], "1");
}

/// A readings topic that does not exist is named, with how to create it,
/// on `/health` (yujing waits for it rather than failing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_readings_topic_is_named_on_health_with_how_to_create_it() {
    let city = City::new(1);
    let path = city.config("  - kind: kafka\n    topic: alerts\n");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "readings_topics: [readings]",
        "readings_topics: [readings-absent]",
    );
    std::fs::write(&path, text).unwrap();
    let (result, health) = run_while(path, async {
        let mut health = String::new();
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let Ok(r) =
                reqwest::get(format!("http://127.0.0.1:{}/health", city.metrics_port())).await
            else {
                continue;
            };
            health = r.text().await.unwrap();
            if health.contains("kafka-topics") {
                break;
            }
        }
        health
    })
    .await;
    result.expect("stops cleanly");
    let h: Value = serde_json::from_str(&health).unwrap_or_else(|e| panic!("{e}: {health}"));
    assert_eq!(h["status"], "degraded", "{h:#}");
    let topics = &h["sinks"]["kafka-topics"];
    assert_eq!(topics["up"], false, "{h:#}");
    let error = topics["last_error"].as_str().unwrap();
    assert!(
        error.contains("\"readings-absent\" does not exist") && error.contains("--create"),
        "{error}"
    );
}
