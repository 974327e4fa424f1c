//! yujing with a real Prometheus (Debian's `prometheus` and `promtool`):
//! the metrics pass `promtool check metrics`, a scrape finds the documented
//! series with their types and labels, every query of the Grafana
//! dashboard parses and returns data, and the meta-monitoring alert rules
//! pass `promtool check rules` and their unit tests.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{
    City, ExternalProcess, Receiver, T0, external_program, free_port, run_while, wait_for,
};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn alert_rules_check_and_each_fires_on_a_synthetic_series() {
    if !external_program("promtool") {
        return;
    }
    let dir = repo().join("deploy/prometheus");
    for args in [
        vec!["check", "rules", "yujing-alerts.yml"],
        vec!["test", "rules", "yujing-alerts.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Prometheus scraping `target` every second.
async fn start_prometheus(dir: &Path, target: &str) -> Option<(ExternalProcess, String)> {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: yujing\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let process = ExternalProcess::start(
        "prometheus",
        &[
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            &format!("--web.listen-address=127.0.0.1:{port}"),
        ],
    )?;
    let url = format!("http://127.0.0.1:{port}");
    process.wait_ready(&format!("{url}/-/ready")).await;
    Some((process, url))
}

/// An instant query's result vector.
async fn query(prometheus: &str, promql: &str) -> Result<Vec<Value>, String> {
    let url = reqwest::Url::parse_with_params(
        &format!("{prometheus}/api/v1/query"),
        &[("query", promql)],
    )
    .unwrap();
    let body: Value = serde_json::from_str(
        &reqwest::get(url)
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(format!("{body}"));
    }
    Ok(body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// Every PromQL expression of the dashboard, with Grafana's variables
/// replaced as Grafana would for "All" instances.
fn dashboard_queries() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(repo().join("deploy/grafana/dashboards/yujing.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "30s")
                .replace("$instance", ".*");
            out.push((panel["title"].as_str().unwrap().to_owned(), expr));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_yujing_and_every_dashboard_query_returns_data() {
    if !external_program("promtool") {
        return;
    }
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let city = City::new(4);
    // The response loop too, for the dashboard's "Response" row.
    city.create_topics(&[("responses", 1)]).await;
    std::fs::write(
        city.dir.path().join("units.yaml"),
        "units:\n  - { id: street-st, level: street, areas: [st] }\n  - { id: city, level: city, token_env: YUJING_TEST_TOKEN_PROMETHEUS }\n",
    )
    .unwrap();
    // SAFETY of the test: read only by this test's run.
    unsafe { std::env::set_var("YUJING_TEST_TOKEN_PROMETHEUS", "prometheus-city") };
    let config = city.config_with(
        "response: { units: units.yaml, topic: responses }",
        &format!(
            "  - kind: kafka\n    topic: alerts\n  - kind: webhook\n    url: \"{url}\"\n    spool: {{ dir: spool/duty }}\n    storm: {{ per_rule_per_minute: 1 }}\n"
        ),
    );
    let Some((_prometheus, prom)) = start_prometheus(
        city.dir.path(),
        &format!("127.0.0.1:{}", city.metrics_port()),
    )
    .await
    else {
        return;
    };
    let (result, (lint_ok, problems, metadata, results, series)) = run_while(config, async {
        // Four sensors warned, one message refused, one reading late.
        city.produce(&[
            (0, vec![100.0; 4]),
            (1, vec![100.0; 4]),
            (2, vec![100.0; 4]),
        ])
        .await;
        city.produce_raw("not json").await;
        // (Not at minute 0's own timestamp: that would be a duplicate.)
        city.produce_raw(&format!(
            r#"{{"sensor_id":"s000","ts":{},"metric":"pm25","value":1}}"#,
            T0 + 2_000
        ))
        .await;
        assert_eq!(city.alerts(4).await.len(), 4);
        wait_for("the webhook", || receiver.accepted().len() >= 2).await;
        // The city centre answers one warning and confirms it.
        let api = format!("http://127.0.0.1:{}/api/v1/warnings", city.metrics_port());
        let client = reqwest::Client::new();
        let auth = ("authorization", "Bearer prometheus-city");
        let mut listed = Value::Null;
        crate::support::wait_until("the warnings assigned", async || {
            let text = client
                .get(&api)
                .header(auth.0, auth.1)
                .send()
                .await
                .unwrap();
            listed = serde_json::from_str(&text.text().await.unwrap()).unwrap();
            listed["warnings"].as_array().is_some_and(|w| w.len() == 4)
        })
        .await;
        let id = listed["warnings"][0]["warning_id"]
            .as_str()
            .unwrap()
            .to_owned();
        for body in [
            r#"{"action":"acknowledge"}"#,
            r#"{"action":"handled","outcome":"confirmed"}"#,
        ] {
            let resp = client
                .post(format!("{api}/{id}"))
                .header(auth.0, auth.1)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200, "{body}");
        }

        // Our own check of the exposition, then promtool's.
        let text = city.get("/metrics").await;
        let mut lint = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        lint.stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let lint = lint.wait_with_output().unwrap();
        let problems = format!(
            "{}{}",
            String::from_utf8_lossy(&lint.stdout),
            String::from_utf8_lossy(&lint.stderr)
        );

        // Let Prometheus take enough scrapes for rates over 30 s.
        let mut up = Vec::new();
        for _ in 0..100 {
            up = query(&prom, "up{job=\"yujing\"} == 1").await.unwrap();
            if !up.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(up.len(), 1, "Prometheus scrapes yujing");
        tokio::time::sleep(Duration::from_secs(4)).await;

        let metadata: Value = serde_json::from_str(
            &crate::support::get_text(format!("{prom}/api/v1/metadata")).await,
        )
        .unwrap();
        let mut results = BTreeMap::new();
        for (title, expr) in dashboard_queries() {
            results.insert((title, expr.clone()), query(&prom, &expr).await);
        }
        let series = query(&prom, "yujing_sink_up").await.unwrap();
        (lint.status.success(), problems, metadata, results, series)
    })
    .await;
    result.expect("the pipeline stops cleanly");

    assert!(
        lint_ok && problems.trim().is_empty(),
        "promtool check metrics:\n{problems}"
    );

    // The documented series, with their types.
    let kind = |name: &str| {
        metadata["data"][name][0]["type"]
            .as_str()
            .map(str::to_owned)
    };
    for (name, expected) in [
        ("yujing_readings_total", "counter"),
        ("yujing_messages_consumed_total", "counter"),
        ("yujing_bad_messages_total", "counter"),
        ("yujing_late_readings_total", "counter"),
        ("yujing_warnings_total", "counter"),
        ("yujing_active_warnings", "gauge"),
        ("yujing_active_warnings_by_district", "gauge"),
        ("yujing_consumer_lag_messages", "gauge"),
        ("yujing_watermark_lag_seconds", "gauge"),
        ("yujing_window_processing_seconds", "histogram"),
        ("yujing_sink_alerts_total", "counter"),
        ("yujing_sink_spool_alerts", "gauge"),
        ("yujing_sink_delivery_seconds", "histogram"),
        ("yujing_storm_held_back_total", "counter"),
        ("yujing_rules_last_reload_success", "gauge"),
        ("yujing_response_changes_total", "counter"),
        ("yujing_response_seconds", "histogram"),
        ("yujing_response_verdicts_total", "counter"),
        ("yujing_response_missed_deadlines_total", "counter"),
        ("yujing_response_open_warnings", "gauge"),
        ("yujing_response_overdue_warnings", "gauge"),
    ] {
        assert_eq!(kind(name).as_deref(), Some(expected), "type of {name}");
    }
    let sinks: Vec<&str> = series
        .iter()
        .map(|s| s["metric"]["sink"].as_str().unwrap())
        .collect();
    assert!(sinks.contains(&"kafka:alerts"), "{sinks:?}");
    assert!(
        sinks.contains(&format!("webhook:{url}").as_str()),
        "{sinks:?}"
    );

    // Every dashboard query parses and returns data.
    let failing: Vec<String> = results
        .iter()
        .filter_map(|((title, expr), r)| match r {
            Ok(v) if !v.is_empty() => None,
            Ok(_) => Some(format!("{title}: no data: {expr}")),
            Err(e) => Some(format!("{title}: {e}: {expr}")),
        })
        .collect();
    assert!(failing.is_empty(), "{failing:#?}");
    assert!(results.len() >= 25, "{} queries", results.len());
}
