//! Delivery through `yujing run` on the mock cluster: a webhook that goes
//! down (its alerts spooled on disk, delivered in order once it is back,
//! across a restart too) and storm control.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use crate::support::{
    City, Receiver, assert_valid_alert, parse_prometheus_text, run_while, sample, wait_for,
};

fn ids(alerts: &[Value]) -> Vec<(String, u64)> {
    alerts
        .iter()
        .map(|a| {
            (
                a["warning_id"].as_str().unwrap().to_owned(),
                a["sequence"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn spool_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("segment-"))
        })
        .count()
    })
}

/// Three sensors: raised blue, escalated orange, resolved = 9 alerts.
pub(crate) fn three_transitions() -> Vec<(i64, Vec<f64>)> {
    vec![
        (0, vec![100.0; 3]),
        (1, vec![200.0; 3]),
        (2, vec![10.0; 3]),
        (3, vec![10.0; 3]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_outage_is_spooled_and_delivered_in_order_once_it_is_back() {
    webhook_outage(City::new(3)).await;
}

/// The same with readings and alerts on a real broker process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_outage_on_a_real_broker_loses_nothing() {
    if let Some(city) = City::on_tansu(3).await {
        webhook_outage(city).await;
    }
}

async fn webhook_outage(city: City) {
    let receiver = Receiver::default();
    receiver.down.store(true, Ordering::SeqCst);
    let url = receiver.start().await;
    let spool = city.dir.path().join("spool/duty");
    let config = city.config(&format!(
        "  - kind: webhook\n    url: \"{url}\"\n    max_attempts: 1\n    spool: {{ dir: spool/duty }}\n  - kind: kafka\n    topic: alerts\n"
    ));
    city.produce(&three_transitions()).await;

    let (result, (on_kafka, text, health)) = run_while(config, async {
        // The pipeline goes on while the webhook is down: the bureau's
        // topic gets every warning.
        let on_kafka = city.alerts(9).await;
        assert_eq!(on_kafka.len(), 9);
        wait_for("refused attempts", || receiver.refused() >= 2).await;
        let health: Value = serde_json::from_str(&city.get("/health").await).unwrap();
        assert_eq!(health["status"], "degraded", "{health}");
        let duty = &health["sinks"][format!("webhook:{url}")];
        assert_eq!(duty["up"], false, "{health}");
        assert_eq!(duty["spooled_alerts"], 9, "{health}");
        assert!(spool_files(&spool) >= 1);

        receiver.down.store(false, Ordering::SeqCst);
        wait_for("the spool to drain", || receiver.accepted().len() >= 9).await;
        let mut health = Value::Null;
        for _ in 0..100 {
            health = serde_json::from_str(&city.get("/health").await).unwrap();
            if health["status"] == "ok" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let text = city.get("/metrics").await;
        (on_kafka, text, health)
    })
    .await;
    result.expect("the pipeline stops cleanly");

    let delivered = receiver.accepted();
    for a in &delivered {
        assert_valid_alert(a);
    }
    assert_eq!(
        ids(&delivered),
        ids(&on_kafka),
        "every alert once, in the order the pipeline made them"
    );
    assert_eq!(health["status"], "ok", "{health}");
    let samples = parse_prometheus_text(&text).unwrap();
    let sink = format!("webhook:{url}");
    let metric = |name: &str| sample(&samples, name, &[("sink", &sink)]);
    assert_eq!(metric("yujing_sink_spooled_alerts_total"), 9.0, "{text}");
    assert_eq!(metric("yujing_sink_alerts_total"), 9.0);
    assert_eq!(metric("yujing_sink_spool_alerts"), 0.0);
    assert_eq!(metric("yujing_sink_up"), 1.0);
    assert!(metric("yujing_sink_failures_total") >= 2.0);
    assert!(metric("yujing_sink_retries_total") >= 2.0);
    assert_eq!(metric("yujing_sink_delivery_seconds_count"), 9.0);
    let quick: f64 = samples
        .iter()
        .filter(|(k, _)| {
            k.starts_with("yujing_sink_delivery_seconds_bucket{")
                && k.contains(&sink)
                && k.contains("le=\"0.25\"")
        })
        .map(|(_, v)| *v)
        .sum();
    assert_eq!(quick, 0.0, "every alert waited out the outage: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_alerts_survive_a_restart_and_are_not_made_twice() {
    let receiver = Receiver::default();
    receiver.down.store(true, Ordering::SeqCst);
    let url = receiver.start().await;
    let city = City::new(3);
    let spool = city.dir.path().join("spool/duty");
    let config = city.config(&format!(
        "  - kind: webhook\n    url: \"{url}\"\n    max_attempts: 1\n    spool: {{ dir: spool/duty }}\n  - kind: kafka\n    topic: alerts\n"
    ));
    city.produce(&three_transitions()).await;

    // First run: the webhook is down throughout.
    let (result, on_kafka) = run_while(config.clone(), async {
        let on_kafka = city.alerts(9).await;
        wait_for("a refused attempt", || receiver.refused() >= 1).await;
        on_kafka
    })
    .await;
    result.expect("first run stops cleanly");
    assert!(receiver.accepted().is_empty());
    assert!(spool_files(&spool) >= 1, "the alerts wait on disk");

    // Second run: the webhook is back; no new readings.
    receiver.down.store(false, Ordering::SeqCst);
    let (result, ()) = run_while(config, async {
        wait_for("the spool to drain", || receiver.accepted().len() >= 9).await;
        // Give a wrong re-read of the readings time to show itself.
        tokio::time::sleep(Duration::from_secs(2)).await;
    })
    .await;
    result.expect("second run stops cleanly");
    assert_eq!(ids(&receiver.accepted()), ids(&on_kafka));
    assert_eq!(
        city.alerts_within(10, Duration::from_secs(5)).await.len(),
        9,
        "offsets were committed once spooled: the readings were not graded again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_500_groups_reaches_people_as_a_few_messages_and_the_topic_whole() {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let city = City::new(500);
    let config = city.config(&format!(
        "  - kind: webhook\n    url: \"{url}\"\n    storm: {{ per_rule_per_minute: 20, global_per_minute: 100 }}\n  - kind: kafka\n    topic: alerts\n"
    ));
    city.produce(&[(0, vec![100.0; 500]), (1, vec![100.0; 1])])
        .await;
    let (result, (on_kafka, text)) = run_while(config, async {
        let on_kafka = city.alerts(500).await;
        wait_for("the webhook's messages", || receiver.accepted().len() >= 22).await;
        let text = city.get("/metrics").await;
        (on_kafka, text)
    })
    .await;
    result.expect("the pipeline stops cleanly");

    assert_eq!(on_kafka.len(), 500, "the bureau's topic takes no limits");
    let people = receiver.accepted();
    for a in &people {
        assert_valid_alert(a);
    }
    let raised = people
        .iter()
        .filter(|a| a["transition"] == "raised")
        .count();
    let summaries: Vec<&Value> = people
        .iter()
        .filter(|a| a["transition"] == "summary")
        .collect();
    assert_eq!(raised, 20);
    assert_eq!(summaries.len(), 2, "one per district: {people:#?}");
    let held: u64 = summaries
        .iter()
        .map(|a| a["storm"]["held_back"].as_u64().unwrap())
        .sum();
    assert_eq!(held, 480);
    for a in &summaries {
        let text = format!(
            "{} sensors in {} over pm25 blue",
            a["storm"]["held_back"],
            a["group"]["district"].as_str().unwrap()
        );
        assert!(a["summary"].as_str().unwrap().starts_with(&text), "{a:#}");
    }
    let samples = parse_prometheus_text(&text).unwrap();
    let sink = format!("webhook:{url}");
    let total = |name: &str| sample(&samples, name, &[("sink", &sink)]);
    assert_eq!(total("yujing_storm_held_back_total"), 480.0, "{text}");
    assert_eq!(total("yujing_storm_summaries_total"), 2.0);
    assert_eq!(total("yujing_sink_alerts_total"), 22.0);
}

/// A sink routed to orange and above, with storm limits and a spool:
/// blue warnings outside its route neither count toward its storm limits
/// nor reach its spool (they used to, so 497 blue warnings it never
/// delivers throttled its three orange ones into a summary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_outside_a_route_neither_count_toward_the_storm_nor_reach_the_spool() {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let city = City::new(500);
    let config = city.config(&format!(
        "  - kind: webhook\n    url: \"{url}\"\n    route: {{ min_grade: orange }}\n    storm: {{ per_rule_per_minute: 5 }}\n    spool: {{ dir: spool/duty }}\n  - kind: kafka\n    topic: alerts\n"
    ));
    let mut first = vec![100.0; 497];
    first.extend([200.0; 3]);
    city.produce(&[(0, first), (1, vec![100.0; 1])]).await;
    let (result, (on_kafka, text)) = run_while(config, async {
        let on_kafka = city.alerts(500).await;
        wait_for("the webhook's messages", || receiver.accepted().len() >= 3).await;
        let text = city.get("/metrics").await;
        (on_kafka, text)
    })
    .await;
    result.expect("the pipeline stops cleanly");

    assert_eq!(
        on_kafka.len(),
        500,
        "the unrouted topic takes every warning"
    );
    let people = receiver.accepted();
    let grades: Vec<(&str, &str)> = people
        .iter()
        .map(|a| {
            (
                a["transition"].as_str().unwrap(),
                a["grade"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(grades, [("raised", "orange"); 3], "{people:#?}");
    let samples = parse_prometheus_text(&text).unwrap();
    let sink = format!("webhook:{url}");
    let total = |name: &str| sample(&samples, name, &[("sink", &sink)]);
    assert_eq!(total("yujing_storm_held_back_total"), 0.0, "{text}");
    assert_eq!(total("yujing_storm_summaries_total"), 0.0, "{text}");
    assert_eq!(total("yujing_sink_spooled_alerts_total"), 3.0, "{text}");
    assert_eq!(total("yujing_sink_alerts_total"), 3.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grouped_webhook_gets_one_request_per_district() {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let city = City::new(6);
    let config = city.config(&format!(
        "  - kind: webhook\n    url: \"{url}\"\n    spool: {{ dir: spool/grouped }}\n    group: {{ by: [district], wait: 1s }}\n"
    ));
    city.produce(&[(0, vec![100.0; 6]), (1, vec![100.0; 1])])
        .await;
    let (result, ()) = run_while(config, async {
        wait_for("two grouped requests", || receiver.accepted().len() >= 2).await;
        // Nothing more comes.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    })
    .await;
    result.expect("the pipeline stops cleanly");
    let bodies = receiver.accepted();
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    let mut districts = Vec::new();
    for b in &bodies {
        assert_eq!(b["schema"], "yujing.alert-group/v1");
        let district = b["group"]["district"].as_str().unwrap();
        let alerts = b["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 3, "{b:#}");
        for a in alerts {
            assert_valid_alert(a);
            assert_eq!(a["group"]["district"], district);
            assert_eq!(a["transition"], "raised");
        }
        districts.push(district.to_owned());
    }
    districts.sort();
    assert_eq!(districts, ["Jiangbei", "Yubei"]);
}
