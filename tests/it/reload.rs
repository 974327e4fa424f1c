//! Rules reload under load: readings keep flowing through `yujing run`
//! while the rules are swapped (valid, invalid, valid) over
//! `POST /-/reload`. Nothing is lost, nothing storms, metrics tell each
//! outcome.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

use crate::support::{free_port, read_topic, sample as value, scrape};

const SENSORS: &str = "\
sensor_id,kind,district,district_code,street,grid,lat,lon
a1,air,Yubei,500112,Longxi,g1,29.60,106.50
a2,air,Yubei,500112,Longxi,g1,29.61,106.51
";

const V1: &str = "\
rules:
  - id: pm25-1m
    metric: pm25
    window: 1m
    group_by: grid
    above: { blue: 75, orange: 150 }
";

/// pm25-1m gains a yellow grade (its warning escalates, it is not
/// re-raised); pm25-2m is new, with a pending time.
const V2: &str = "\
rules:
  - id: pm25-1m
    metric: pm25
    window: 1m
    group_by: grid
    above: { blue: 75, yellow: 90, orange: 150 }
  - id: pm25-2m
    metric: pm25
    window: 2m
    group_by: grid
    above: { yellow: 90 }
    for: 30m
";

/// A typo: refused, V2 keeps running.
const V3: &str = "\
rules:
  - id: pm25-1m
    metric: pm25
    window: 1m
    group_by: grid
    abov: { blue: 75 }
";

/// pm25-1m removed: its warning resolves with `rule_removed`.
const V4: &str = "\
rules:
  - id: pm25-2m
    metric: pm25
    window: 2m
    group_by: grid
    above: { yellow: 90 }
    for: 30m
";

const TOKEN: &str = "s3cret-reload-token";

fn write_config(dir: &Path, bootstrap: &str, metrics_port: u16) -> std::path::PathBuf {
    std::fs::write(dir.join("rules.yaml"), V1).unwrap();
    std::fs::write(dir.join("sensors.csv"), SENSORS).unwrap();
    std::fs::write(dir.join("reload-token"), format!("{TOKEN}\n")).unwrap();
    let config = format!(
        "kafka:
  bootstrap_servers: \"{bootstrap}\"
  group_id: yujing-reload
  readings_topics: [readings]
  dead_letter_topic: dead-letter
  consumer_properties:
    session.timeout.ms: \"6000\"
rules: rules.yaml
sensors: sensors.csv
pipeline:
  allowed_delay: 0s
  max_age: \"off\"
reload:
  watch: false
  http_token_file: reload-token
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

/// Wait until a metric reaches `at_least`.
async fn wait_for(port: u16, name: &str, labels: &[(&str, &str)], at_least: f64) {
    crate::support::wait_for_metric(port, name, labels, at_least).await;
}

async fn post_reload(port: u16, token: Option<&str>) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut req = client.post(format!("http://127.0.0.1:{port}/-/reload"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_swap_under_load_without_loss_or_storm() {
    let cluster = crate::support::mock_cluster(&["readings", "alerts", "dead-letter"]);
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), &bootstrap, port);

    // A steady stream: both g1 sensors at 100 ug/m3 (blue under V1,
    // yellow under V2), event time 2 s per message, from six hours ago.
    let produced = Arc::new(AtomicU64::new(0));
    let stop_producing = Arc::new(AtomicBool::new(false));
    let producer_task = {
        let (bootstrap, produced, stop) =
            (bootstrap.clone(), produced.clone(), stop_producing.clone());
        tokio::spawn(async move {
            let producer: FutureProducer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .create()
                .unwrap();
            let start = chrono::Utc::now().timestamp_millis() - 6 * 3_600_000;
            let mut i: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let sensor = if i % 2 == 0 { "a1" } else { "a2" };
                let payload = format!(
                    r#"{{"sensor_id":"{sensor}","ts":{},"metric":"pm25","value":100}}"#,
                    start + i * 2_000
                );
                producer
                    .send(
                        FutureRecord::to("readings").key(sensor).payload(&payload),
                        Duration::from_secs(5),
                    )
                    .await
                    .expect("produce");
                produced.fetch_add(1, Ordering::Relaxed);
                i += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pipeline = yujing::cli::run(config, async {
        let _ = stop_rx.await;
    });
    let rules_path = dir.path().join("rules.yaml");
    let driver = async {
        let warnings = "yujing_warnings_total";
        wait_for(
            port,
            warnings,
            &[("rule", "pm25-1m"), ("transition", "raised")],
            1.0,
        )
        .await;

        // Without the token: refused, nothing reloaded.
        assert_eq!(post_reload(port, None).await.0, 401);
        assert_eq!(post_reload(port, Some("guess")).await.0, 401);

        std::fs::write(&rules_path, V2).unwrap();
        // An oversized request, even with the token: refused before the
        // handler (the reload below still finds V2 new).
        let oversized = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/-/reload"))
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(vec![b'x'; 64 * 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(oversized.status().as_u16(), 413);
        let (status, body) = post_reload(port, Some(TOKEN)).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains("2 rules: 1 added, 1 changed, 0 removed"),
            "{body}"
        );
        wait_for(
            port,
            warnings,
            &[("rule", "pm25-1m"), ("transition", "escalated")],
            1.0,
        )
        .await;

        std::fs::write(&rules_path, V3).unwrap();
        let (status, body) = post_reload(port, Some(TOKEN)).await;
        assert_eq!(status, 422, "{body}");
        assert!(
            body.contains("rules.yaml:6:5: rule \"pm25-1m\": unknown key `abov`"),
            "{body}"
        );
        let m = scrape(port).await;
        assert_eq!(value(&m, "yujing_rules_last_reload_success", &[]), 0.0);
        assert_eq!(
            value(&m, "yujing_rules_loaded", &[]),
            2.0,
            "V2 keeps running"
        );

        // V2 still runs: the new rule's grade is pending for its `for`,
        // then it is raised.
        wait_for(port, "yujing_warnings_pending", &[], 1.0).await;
        wait_for(
            port,
            warnings,
            &[("rule", "pm25-2m"), ("transition", "raised")],
            1.0,
        )
        .await;

        std::fs::write(&rules_path, V4).unwrap();
        let (status, body) = post_reload(port, Some(TOKEN)).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains("1 rules: 0 added, 0 changed, 1 removed, 1 unchanged"),
            "{body}"
        );
        // Let V4 grade a few more windows under load.
        tokio::time::sleep(Duration::from_millis(1500)).await;

        stop_producing.store(true, Ordering::Relaxed);
        producer_task.await.unwrap();
        let total = produced.load(Ordering::Relaxed) as f64;
        wait_for(port, "yujing_messages_consumed_total", &[], total).await;
        let m = scrape(port).await;
        let _ = stop_tx.send(());
        (m, total)
    };
    let (summary, (m, total)) = tokio::join!(pipeline, driver);
    let summary = summary.expect("pipeline ran and stopped cleanly");

    // Nothing lost: every reading was placed, none refused.
    assert_eq!(summary.readings as f64, total);
    assert_eq!(summary.bad_messages + summary.late_readings, 0);
    assert_eq!(
        value(
            &m,
            "yujing_rules_reloads_total",
            &[("trigger", "http"), ("outcome", "success")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            "yujing_rules_reloads_total",
            &[("trigger", "http"), ("outcome", "failure")]
        ),
        1.0
    );
    assert_eq!(value(&m, "yujing_rules_last_reload_success", &[]), 1.0);
    assert!(value(&m, "yujing_rules_last_reload_timestamp_seconds", &[]) > 1.7e9);
    assert_eq!(value(&m, "yujing_rules_loaded", &[]), 1.0);

    // No storm: exactly one message per change, in order per warning.
    let alerts = {
        let b = bootstrap.clone();
        tokio::task::spawn_blocking(move || read_topic(&b, "alerts", 4, Duration::from_secs(30)))
            .await
            .unwrap()
    };
    let messages: Vec<Value> = alerts
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect();
    let seen: Vec<String> = messages
        .iter()
        .map(|m| {
            format!(
                "{} {} {} {} {}",
                m["rule"]["id"].as_str().unwrap(),
                m["transition"].as_str().unwrap(),
                m["grade"].as_str().unwrap_or("-"),
                m["sequence"],
                m["resolve_reason"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            "pm25-1m raised blue 1 -",
            "pm25-1m escalated yellow 2 -",
            "pm25-2m raised yellow 1 -",
            "pm25-1m resolved - 3 rule_removed",
        ],
        "{seen:#?}"
    );
    for m in &messages {
        crate::support::assert_valid_alert(m);
    }
    // A subscriber's view: keep the last message per key (what a compacted
    // topic holds); the warnings whose last message is not `resolved` are
    // the active ones.
    let mut last: std::collections::BTreeMap<String, &Value> = Default::default();
    for (record, m) in alerts.iter().zip(&messages) {
        let key = record.key.clone().unwrap();
        assert_eq!(
            key,
            m["fingerprint"].as_str().unwrap(),
            "key is the fingerprint"
        );
        last.insert(key, m);
    }
    let active: Vec<(String, &str)> = last
        .iter()
        .filter(|(_, m)| m["transition"] != "resolved")
        .map(|(k, m)| (k.clone(), m["grade"].as_str().unwrap()))
        .collect();
    assert_eq!(active, [("pm25-2m/grid/g1".to_owned(), "yellow")]);
    assert_eq!(messages[0]["warning_id"], messages[1]["warning_id"]);
    assert_eq!(messages[0]["warning_id"], messages[3]["warning_id"]);
    // Only four: read_topic stops at four, so check nothing else arrived.
    let more = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, "alerts", 5, Duration::from_secs(3))
    })
    .await
    .unwrap();
    assert_eq!(more.len(), 4, "no further alerts");
}
