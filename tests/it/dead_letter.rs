//! A message the dead-letter topic will not take never pins its partition:
//! refused for good, its head goes there with its size and SHA-256; if
//! even that is refused, its coordinates go to a local file; a transient
//! failure is retried while `/health` says which partition waits.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use sha2::{Digest, Sha256};

use crate::support::{City, T0, committed_offset, parse_prometheus_text, read_topic, run_until};

fn reading(ts: i64, v: f64) -> String {
    format!(r#"{{"sensor_id":"s000","ts":{ts},"metric":"pm25","value":{v}}}"#)
}

/// Put `payload` on the readings topic under `key`, however large.
async fn produce_large(city: &City, key: &str, payload: &[u8]) {
    let producer: FutureProducer = city
        .client()
        .set("message.max.bytes", "10000000")
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to("readings").key(key).payload(payload),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_too_large_for_the_dead_letter_topic_goes_there_cut_and_the_offset_moves() {
    too_large_goes_cut(City::new(1)).await;
}

/// The same on a real broker process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_too_large_for_the_dead_letter_topic_goes_there_cut_on_a_real_broker() {
    if let Some(city) = City::on_tansu(1).await {
        too_large_goes_cut(city).await;
    }
}

async fn too_large_goes_cut(city: City) {
    let config = city.config("  - kind: kafka\n    topic: alerts\n");
    // 3 MB: the readings topic takes it, yujing refuses it as oversized
    // (over 1 MiB), and the dead-letter producer cannot send it whole.
    let big = vec![b'x'; 3_000_000];
    let text = run_until(&city, &config, async {
        produce_large(&city, "k", &big).await;
        city.produce_raw(&reading(T0 + 1_000, 100.0)).await;
        city.produce_raw(&reading(T0 + 61_000, 100.0)).await;
        assert_eq!(city.alerts(1).await.len(), 1, "the stream went on");
        // The offsets move past the big message once its window closed.
        let b = city.bootstrap().to_owned();
        for _ in 0..100 {
            let b = b.clone();
            let committed = tokio::task::spawn_blocking(move || {
                committed_offset(&b, "yujing-delivery", "readings")
            })
            .await
            .unwrap();
            if committed >= Some(2) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;

    let samples = parse_prometheus_text(&text).unwrap();
    assert_eq!(
        samples["yujing_dead_letter_truncated_total{to=\"dead-letter\"}"], 1.0,
        "{text}"
    );
    let b = city.bootstrap().to_owned();
    let committed =
        tokio::task::spawn_blocking(move || committed_offset(&b, "yujing-delivery", "readings"))
            .await
            .unwrap();
    assert!(
        committed >= Some(2),
        "committed past the big message: {committed:?}"
    );
    let b = city.bootstrap().to_owned();
    let dead = tokio::task::spawn_blocking(move || {
        read_topic(&b, "dead-letter", 1, Duration::from_secs(30))
    })
    .await
    .unwrap();
    assert_eq!(dead.len(), 1);
    let h = &dead[0].headers;
    assert_eq!(h["yujing.reason"], "oversized");
    assert_eq!(h["yujing.truncated"], "true");
    assert_eq!(h["yujing.original.bytes"], "3000000");
    let digest: String = Sha256::digest(&big)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(h["yujing.original.sha256"], digest);
    assert_eq!(dead[0].payload.len(), 64 * 1024);
    assert!(dead[0].payload.iter().all(|b| *b == b'x'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_dead_letter_topic_refuses_even_cut_is_recorded_locally() {
    let city = City::new(1);
    // The producers take nothing over 1000 bytes (librdkafka's least),
    // and the message's key alone is that long: no copy fits, not even a
    // 512-byte head. The alerts go to a file, so only the dead-letter
    // copies meet the limit.
    let config = city.config_with(
        "state_dir: state",
        "  - kind: file\n    path: alerts.jsonl\n",
    );
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "  consumer_properties:",
        "  producer_properties:\n    message.max.bytes: \"1000\"\n  consumer_properties:",
    );
    std::fs::write(&config, text).unwrap();
    let state = config.parent().unwrap().join("state");
    // Not JSON, 5 kB: refused as malformed.
    let junk = vec![b'{'; 5_000];
    let text = run_until(&city, &config, async {
        produce_large(&city, &"k".repeat(1_000), &junk).await;
        city.produce_raw(&reading(T0 + 1_000, 100.0)).await;
        city.produce_raw(&reading(T0 + 61_000, 100.0)).await;
        let alerts = config.parent().unwrap().join("alerts.jsonl");
        crate::support::wait_for("the warning", || {
            std::fs::read_to_string(&alerts).is_ok_and(|t| t.lines().count() >= 1)
        })
        .await;
    })
    .await;

    let samples = parse_prometheus_text(&text).unwrap();
    assert_eq!(
        samples["yujing_dead_letter_recorded_locally_total{to=\"dead-letter\"}"], 1.0,
        "{text}"
    );
    let record = std::fs::read_to_string(state.join("dead-letter-refused.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(record.trim()).unwrap();
    assert_eq!(line["topic"], "readings");
    assert_eq!(line["partition"], 0);
    assert_eq!(line["offset"], 0);
    assert_eq!(line["bytes"], 5000);
    assert_eq!(line["dead_letter_topic"], "dead-letter");
    assert!(line["reason"].as_str().is_some_and(|r| !r.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_dead_letter_failure_is_retried_and_shown_until_it_clears() {
    let city = City::new(1);
    // The dead-letter topic does not exist yet and may not be created by
    // the producer: every copy fails with a transient error.
    let config = city.config("  - kind: kafka\n    topic: alerts\n");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("dead_letter_topic: dead-letter", "dead_letter_topic: dead-letter-later")
        .replace(
            "  consumer_properties:",
            "  producer_properties:\n    allow.auto.create.topics: \"false\"\n    message.timeout.ms: \"1000\"\n  consumer_properties:",
        );
    std::fs::write(&config, text).unwrap();
    run_until(&city, &config, async {
        city.produce_raw("not json").await;
        let mut health = String::new();
        for _ in 0..200 {
            health = city.get("/health").await;
            if health.contains("held since") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let metrics = city.get("/metrics").await;
        assert!(
            metrics.contains("yujing_dead_letter_held_since_timestamp_seconds{partition=\"0\",topic=\"readings\"} 1"),
            "{metrics}"
        );
        city.mock().unwrap().create_topic("dead-letter-later", 1, 1).unwrap();
        city.produce_raw(&reading(T0 + 1_000, 100.0)).await;
        city.produce_raw(&reading(T0 + 61_000, 100.0)).await;
        assert_eq!(city.alerts(1).await.len(), 1, "the stream went on");
        // `health` as it was while held.
        let after = city.get("/health").await;
        assert!(!after.contains("held since"), "{after}");
        let b = city.bootstrap().to_owned();
        let dead = tokio::task::spawn_blocking(move || {
            read_topic(&b, "dead-letter-later", 1, Duration::from_secs(30))
        })
        .await
        .unwrap();
        assert_eq!(dead.len(), 1, "the copy went through once the topic existed");
        assert_eq!(dead[0].payload, b"not json");
        let h: serde_json::Value = serde_json::from_str(&health).unwrap();
        let held = h["sinks"]["dead-letter"]["last_error"].as_str().unwrap();
        assert!(held.starts_with("readings/0 held since"), "{held}");
    })
    .await;
}
