//! The `yujing` binary as a user runs it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn yujing() -> Command {
    Command::new(env!("CARGO_BIN_EXE_yujing"))
}

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples");

#[test]
fn rules_check_accepts_the_examples_and_reports_every_error() {
    let ok = yujing()
        .args(["rules", "check", &format!("{EXAMPLES}/rules.yaml")])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ok: 16 rules in 1 file(s)"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("rules.yaml");
    std::fs::write(
        &bad,
        "rules:\n  - id: x\n    metric: pm25\n    window: 1h\n    abve: {red: 1}\n  - id: y\n    metric: pm25\n    window: 7m\n    above: {blue: 5, red: 2}\n",
    )
    .unwrap();
    // The old spelling still works for scripts.
    for args in [vec!["rules", "check"], vec!["check-rules"]] {
        let out = yujing().args(&args).arg(&bad).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert!(
            lines[0]
                .ends_with("rules.yaml:5:5: rule \"x\": unknown key `abve`; did you mean `above`?"),
            "{err}"
        );
        assert!(
            lines[1].ends_with(
                "rules.yaml:2:5: rule \"x\": rule has no thresholds: add `above:` or `below:`"
            ),
            "{err}"
        );
        assert!(
            lines[2].ends_with("rules.yaml:9:5: rule \"y\": red threshold 2 must be above blue threshold 5: a more serious grade needs a more extreme value"),
            "{err}"
        );
        assert_eq!(lines[3], "3 problem(s); nothing was changed", "{err}");
    }
}

#[test]
fn rules_test_runs_the_example_tests_and_shows_failures() {
    let out = yujing()
        .args(["rules", "test", &format!("{EXAMPLES}/rules.test.yaml")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("5 passed, 0 failed"), "{stdout}");

    // The same tests against rules without hysteresis: the flapping test
    // must fail and say what it got.
    let dir = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(format!("{EXAMPLES}/rules.yaml")).unwrap();
    std::fs::write(
        dir.path().join("rules.yaml"),
        rules.replace("clear_margin: 5", "clear_margin: 0"),
    )
    .unwrap();
    std::fs::copy(
        format!("{EXAMPLES}/sensors.csv"),
        dir.path().join("sensors.csv"),
    )
    .unwrap();
    std::fs::copy(
        format!("{EXAMPLES}/rules.test.yaml"),
        dir.path().join("rules.test.yaml"),
    )
    .unwrap();
    let out = yujing()
        .args(["rules", "test"])
        .arg(dir.path().join("rules.test.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  PM2.5 hovering around orange"),
        "{stdout}"
    );
    assert!(
        stdout.contains("at 2h pm25-1h cq-yz-g01 de-escalated yellow"),
        "{stdout}"
    );
    assert!(stdout.contains("4 passed, 1 failed"), "{stdout}");
}

#[test]
fn sigterm_stops_the_demo_cleanly_with_a_summary() {
    let child = yujing()
        .args([
            "demo",
            "--duration",
            "120s",
            "--metrics",
            "127.0.0.1:0",
            "--no-color",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(6));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{err}", out.status);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "stopped promptly"
    );
    assert!(err.contains("metrics  http://127.0.0.1:"), "{err}");
    assert!(
        err.contains("summary") && err.contains("readings processed"),
        "{err}"
    );
}

/// `GET /metrics` over a plain TCP connection: (name with labels, value).
fn scrape(port: u16) -> Option<std::collections::HashMap<String, f64>> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    crate::support::parse_prometheus_text(body).ok()
}

fn wait_for_metric(port: u16, name: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = scrape(port).and_then(|m| m.get(name).copied());
        if got == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} = {got:?}, waiting for {want}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sighup_reloads_the_rules_of_a_running_pipeline() {
    let cluster = crate::support::mock_cluster(&["readings", "alerts", "dead-letter"]);
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let rule = |id: &str| {
        format!("  - id: {id}\n    metric: pm25\n    window: 1m\n    above: {{ blue: 75 }}\n")
    };
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, format!("rules:\n{}", rule("one"))).unwrap();
    std::fs::copy(
        format!("{EXAMPLES}/sensors.csv"),
        dir.path().join("sensors.csv"),
    )
    .unwrap();
    let config = dir.path().join("yujing.yaml");
    std::fs::write(
        &config,
        format!(
            "kafka:\n  bootstrap_servers: \"{}\"\n  readings_topics: [readings]\n  dead_letter_topic: dead-letter\nrules: rules.yaml\nsensors: sensors.csv\nreload: {{ watch: false }}\nsinks: [{{ kind: kafka, topic: alerts }}]\nmetrics: {{ listen: \"127.0.0.1:{port}\" }}\n",
            cluster.bootstrap_servers()
        ),
    )
    .unwrap();
    let child = yujing()
        .arg("run")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let hup = || {
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    wait_for_metric(port, "yujing_rules_loaded", 1.0);

    std::fs::write(&rules, format!("rules:\n{}{}", rule("one"), rule("two"))).unwrap();
    hup();
    wait_for_metric(port, "yujing_rules_loaded", 2.0);
    wait_for_metric(
        port,
        "yujing_rules_reloads_total{outcome=\"success\",trigger=\"signal\"}",
        1.0,
    );

    std::fs::write(&rules, "rules:\n  - id: broken\n    metric: pm25\n").unwrap();
    hup();
    wait_for_metric(port, "yujing_rules_last_reload_success", 0.0);
    assert_eq!(
        scrape(port).unwrap()["yujing_rules_loaded"],
        2.0,
        "the running rules stay"
    );

    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{err}", out.status);
    assert!(err.contains("rules reload refused"), "{err}");
    assert!(err.contains("rule \"broken\""), "{err}");
}

/// Secrets given to `yujing run` (a webhook's signing secret, an API key in
/// its URL's query and in a header, the reload token) never appear in its
/// log, even at debug level and while the webhook fails, nor in
/// `/metrics` or `/health`.
#[test]
fn secrets_stay_out_of_logs_and_metrics() {
    let cluster = crate::support::mock_cluster(&["readings", "alerts", "dead-letter"]);
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    std::fs::write(
        dir.path().join("rules.yaml"),
        "rules:\n  - id: pm25-1m\n    metric: pm25\n    window: 1m\n    group_by: sensor\n    above: { blue: 75 }\n",
    )
    .unwrap();
    std::fs::copy(
        format!("{EXAMPLES}/sensors.csv"),
        dir.path().join("sensors.csv"),
    )
    .unwrap();
    // Nothing listens on the webhook's port: every delivery fails.
    let dead_port = crate::support::free_port();
    let config = dir.path().join("yujing.yaml");
    std::fs::write(
        &config,
        format!(
            "kafka:
  bootstrap_servers: \"{}\"
  readings_topics: [readings]
  dead_letter_topic: dead-letter
  secret_properties:
    sasl.password: {{ env: TEST_KAFKA_PASSWORD }}
rules: rules.yaml
sensors: sensors.csv
pipeline: {{ max_age: \"off\", allowed_delay: 0s }}
reload: {{ watch: false, http_token_env: TEST_RELOAD_TOKEN }}
sinks:
  - kind: kafka
    topic: alerts
  - kind: webhook
    url: \"http://127.0.0.1:{dead_port}/hook?api_key=QUERY-S3CRET\"
    secret_env: TEST_WEBHOOK_SECRET
    headers: {{ X-Api-Key: HEADER-S3CRET }}
    max_attempts: 1
    spool: {{ dir: spool }}
metrics: {{ listen: \"127.0.0.1:{port}\" }}
",
            cluster.bootstrap_servers()
        ),
    )
    .unwrap();
    let child = yujing()
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "debug")
        .env("TEST_WEBHOOK_SECRET", "HMAC-S3CRET")
        .env("TEST_RELOAD_TOKEN", "TOKEN-S3CRET")
        .env("TEST_KAFKA_PASSWORD", "KAFKA-S3CRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let producer: rdkafka::producer::BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create()
        .unwrap();
    let t0: i64 = 1_784_073_600_000;
    for (ts, sensor) in [
        (t0 + 1_000, "cq-yz-aq-0001"),
        (t0 + 61_000, "cq-yz-aq-0001"),
    ] {
        let payload =
            format!(r#"{{"sensor_id":"{sensor}","ts":{ts},"metric":"pm25","value":200}}"#);
        producer
            .send(
                rdkafka::producer::BaseRecord::to("readings")
                    .key("k")
                    .payload(&payload),
            )
            .unwrap();
    }
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(5)).unwrap();
    // Failing deliveries have been logged once the failure counter moves.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut failed = false;
    while Instant::now() < deadline && !failed {
        failed = scrape(port).is_some_and(|m| {
            m.iter().any(|(k, v)| {
                k.starts_with("yujing_sink_failures_total") && k.contains("webhook") && *v >= 2.0
            })
        });
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(failed, "the webhook deliveries failed and were logged");
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        std::io::Write::write_all(
            &mut s,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut body = String::new();
        std::io::Read::read_to_string(&mut s, &mut body).unwrap();
        body
    };
    let exposed = format!("{}{}", get("/metrics"), get("/health"));
    assert!(
        exposed.contains("webhook:http://127.0.0.1"),
        "the sink is there, by name"
    );
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        log.contains("sink delivery failed"),
        "debug log captured:\n{log}"
    );
    for secret in [
        "QUERY-S3CRET",
        "HEADER-S3CRET",
        "HMAC-S3CRET",
        "TOKEN-S3CRET",
        "KAFKA-S3CRET",
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        assert!(
            !exposed.contains(secret),
            "{secret} in /metrics or /health:\n{exposed}"
        );
    }
}

/// `yujing bench` runs as BENCHMARKS.md documents (a small workload here:
/// its figures are not checked, only that every part ran on everything
/// it was given and the results file says so).
#[test]
fn bench_runs_every_part_and_writes_its_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench.json");
    let run = yujing()
        .args([
            "bench",
            "--sensors",
            "1000",
            "--engine-minutes",
            "6",
            "--pipeline-messages",
            "20000",
            "--rules",
            "20",
            "--rule-groups",
            "10",
            "--consumer-property",
            "fetch.wait.max.ms=100",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    // 1 000 sensors × 360 s of event time; the 5 min windows closed.
    assert_eq!(results["engine"]["readings"], 360_000);
    assert!(results["engine"]["windows_closed"].as_u64().unwrap() > 0);
    assert_eq!(results["pipeline"]["messages"], 20_000);
    assert_eq!(results["pipeline"]["readings"], 20_000);
    assert_eq!(results["pipeline"]["refused_messages"], 0);
    assert_eq!(results["consumer_baseline"]["messages"], 20_000);
    assert_eq!(results["rules"]["evaluations"], 20 * 10 * 10);
    for figure in [
        &results["engine"]["readings_per_second"],
        &results["pipeline"]["readings_per_second"],
        &results["consumer_baseline"]["base_consumer_messages_per_second"],
    ] {
        assert!(figure.as_f64().unwrap() > 0.0, "{results:#}");
    }

    let bad = yujing()
        .args(["bench", "--consumer-property", "no-equals-sign"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected KEY=VALUE"));
}
