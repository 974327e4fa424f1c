//! The Alertmanager sink against a real Alertmanager (Debian's
//! `prometheus-alertmanager`, started here on loopback): warnings appear in
//! its API with the documented labels, change grade, stay while yujing
//! re-sends them, and resolve.

use std::time::Duration;

use serde_json::Value;

use crate::support::{City, ExternalProcess, free_port, run_while};

/// Start Alertmanager on a free loopback port; its base URL.
async fn start_alertmanager(dir: &std::path::Path) -> Option<(ExternalProcess, String)> {
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    let port = free_port();
    let process = ExternalProcess::start(
        "prometheus-alertmanager",
        &[
            &format!("--config.file={}", config.display()),
            &format!("--storage.path={}", dir.join("am-data").display()),
            &format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=",
        ],
    )?;
    let url = format!("http://127.0.0.1:{port}");
    process.wait_ready(&format!("{url}/-/ready")).await;
    Some((process, url))
}

/// Active alerts of rule `pm25-1m`.
async fn active(url: &str) -> Vec<Value> {
    let text = crate::support::get_text(format!("{url}/api/v2/alerts")).await;
    let body: Vec<Value> = serde_json::from_str(&text).unwrap();
    body.into_iter()
        .filter(|a| a["labels"]["alertname"] == "pm25-1m")
        .collect()
}

/// Wait until the active alerts' grades are `grades`.
async fn until_grades(url: &str, grades: &[&str]) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..300 {
        last = active(url).await;
        let mut seen: Vec<&str> = last
            .iter()
            .map(|a| a["labels"]["grade"].as_str().unwrap_or(""))
            .collect();
        seen.sort();
        if seen == grades {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Alertmanager never showed grades {grades:?}; last: {last:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_fire_change_grade_stay_and_resolve_in_a_real_alertmanager() {
    let city = City::new(1);
    let Some((_am, am_url)) = start_alertmanager(city.dir.path()).await else {
        return;
    };
    let config = city.config(&format!(
        "  - kind: alertmanager\n    url: \"{am_url}\"\n    resend_every: 1s\n    valid_for: 3s\n    generator_url: \"http://grafana.example/d/yujing\"\n"
    ));
    let (result, ()) = run_while(config, async {
        // Minute 0 at 100 (blue), closed by a reading in minute 1.
        city.produce(&[(0, vec![100.0]), (1, vec![200.0])]).await;
        let firing = until_grades(&am_url, &["blue"]).await;
        let a = &firing[0];
        let labels = &a["labels"];
        assert_eq!(labels["severity"], "minor", "{a:#}");
        assert_eq!(labels["level"], "IV");
        assert_eq!(labels["district"], "Yubei");
        assert_eq!(labels["district_code"], "500112");
        assert_eq!(labels["group_by"], "sensor");
        assert_eq!(labels["group"], "s000");
        assert_eq!(labels["category"], "env");
        assert_eq!(a["status"]["state"], "active");
        assert_eq!(a["generatorURL"], "http://grafana.example/d/yujing");
        assert!(
            a["annotations"]["summary"]
                .as_str()
                .unwrap()
                .contains("blue IV warning"),
            "{a:#}"
        );
        assert_eq!(a["annotations"]["value"], "100");
        assert_eq!(
            a["startsAt"], "2026-07-15T08:01:00.000+08:00",
            "the warning's start"
        );

        // Past its 3 s validity, the alert is still there: re-sent.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(until_grades(&am_url, &["blue"]).await.len(), 1);

        // Minute 1 at 200: orange; the blue alert ends.
        city.produce(&[(2, vec![10.0])]).await;
        let firing = until_grades(&am_url, &["orange"]).await;
        assert_eq!(firing[0]["labels"]["severity"], "severe");

        // Minute 2 at 10: resolved.
        city.produce(&[(3, vec![10.0])]).await;
        until_grades(&am_url, &[]).await;
    })
    .await;
    result.expect("the pipeline stops cleanly");
}
