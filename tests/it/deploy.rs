//! The deployment kit (`deploy/`), checked as far as this machine allows
//! (no Docker, no Kubernetes): every file parses, every file a compose
//! service, the Dockerfile or kustomize names exists, the yujing configs
//! in it pass `yujing config check`, ports agree across the pieces,
//! Alertmanager's config passes `amtool check-config`, and the city
//! simulator the compose kit runs publishes readings the shipped config
//! accepts, and warns about.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Parser;
use serde_yaml_ng::Value;

use crate::support::{external_program, read_topic};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The port of `host:port`.
fn port(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .unwrap()
        .trim_matches('"')
        .parse()
        .unwrap()
}

#[test]
fn compose_kit_is_complete_and_consistent() {
    let dir = deploy();
    let compose = yaml(&dir.join("compose.yaml"));
    let services = compose["services"].as_mapping().unwrap();
    for name in [
        "kafka",
        "kafka-init",
        "yujing",
        "simulator",
        "prometheus",
        "alertmanager",
        "grafana",
    ] {
        assert!(services.contains_key(name), "compose has no {name}");
    }
    // Every bind mount's source exists.
    for (name, service) in services {
        for volume in strings(&service["volumes"]) {
            let source = volume.split(':').next().unwrap();
            if source.starts_with('.') {
                assert!(
                    dir.join(source).exists(),
                    "{name:?}: mounts {source}, which does not exist"
                );
            }
        }
        assert!(service["image"].as_str().is_some(), "{name:?} has no image");
    }
    let build = &compose["services"]["yujing"]["build"];
    let context = dir.join(build["context"].as_str().unwrap());
    assert!(
        context
            .join(build["dockerfile"].as_str().unwrap())
            .is_file()
    );

    // yujing's command names a config in the mounted examples, which passes
    // `yujing config check`.
    let command = strings(&compose["services"]["yujing"]["command"]);
    let config_in_container = command.last().unwrap();
    let file = config_in_container.strip_prefix("/etc/yujing/").unwrap();
    assert!(
        strings(&compose["services"]["yujing"]["volumes"])
            .contains(&"./examples:/etc/yujing:ro".to_owned())
    );
    let config_path = dir.join("examples").join(file);
    let summary = yujing::config::check(&config_path).unwrap_or_else(|e| panic!("{e}"));
    assert!(summary.contains("kafka:9092"), "{summary}");
    let config = yujing::config::Config::load(&config_path).unwrap();

    // The simulator's command is one yujing accepts.
    let mut argv = vec!["yujing".to_owned()];
    argv.extend(strings(&compose["services"]["simulator"]["command"]));
    yujing::cli::Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));

    // Ports agree: yujing's metrics, Prometheus's target, the published port.
    let metrics_port = config.metrics.listen.port();
    assert!(
        strings(&compose["services"]["yujing"]["ports"])
            .contains(&format!("{metrics_port}:{metrics_port}"))
    );
    let prometheus = yaml(&dir.join("prometheus/prometheus.yml"));
    let targets: Vec<String> = prometheus["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|j| j["job_name"] == "yujing")
        .flat_map(|j| strings(&j["static_configs"][0]["targets"]))
        .collect();
    assert_eq!(targets, [format!("yujing:{metrics_port}")]);
    // Prometheus loads the alert rules from where compose mounts them.
    let rule_file = strings(&prometheus["rule_files"]).remove(0);
    assert!(
        strings(&compose["services"]["prometheus"]["volumes"])
            .iter()
            .any(|v| v.ends_with(&format!(":{rule_file}:ro")))
    );
    // Alertmanager: where Prometheus and yujing send.
    let am_target =
        strings(&prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"])
            .remove(0);
    assert!(
        strings(&compose["services"]["alertmanager"]["ports"])
            .contains(&format!("{0}:{0}", port(&am_target)))
    );
    let grafana_ds = yaml(&dir.join("grafana/provisioning/datasources/prometheus.yml"));
    let ds_url = grafana_ds["datasources"][0]["url"].as_str().unwrap();
    assert!(
        strings(&compose["services"]["prometheus"]["ports"])
            .contains(&format!("{0}:{0}", port(ds_url)))
    );
    // The dashboard uses the provisioned data source, where it is mounted.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("grafana/dashboards/yujing.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(dashboard["uid"], "yujing");
    let ds_uid = grafana_ds["datasources"][0]["uid"].as_str().unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], ds_uid, "{}", panel["title"]);
            assert!(
                panel["fieldConfig"]["defaults"]["unit"].is_string(),
                "{}",
                panel["title"]
            );
        }
    }
    let provider = yaml(&dir.join("grafana/provisioning/dashboards/yujing.yml"));
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    assert!(
        strings(&compose["services"]["grafana"]["volumes"])
            .contains(&format!("./grafana/dashboards:{path}:ro"))
    );
}

#[test]
fn dockerfile_copies_files_that_exist_and_runs_as_non_root() {
    let root = deploy().parent().unwrap().to_owned();
    let text = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    let mut copies = 0;
    for line in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            assert!(
                root.join(source).exists(),
                "Dockerfile copies {source}, which does not exist"
            );
            copies += 1;
        }
    }
    assert!(copies >= 8);
    // Every workspace member is copied into the build stage, or the build
    // fails in the image only.
    let manifest: toml_members::Members = toml_members::read(&root.join("Cargo.toml"));
    for member in &manifest.0 {
        assert!(
            text.contains(&format!("COPY {member} {member}")),
            "the Dockerfile does not copy workspace member {member}"
        );
    }
    // The runtime image gets a stripped binary (debug tables are 600 MB).
    let build = text.split("\nFROM ").nth(1).expect("a build stage");
    assert!(
        build.contains("--strip-debug") && build.contains("--only-keep-debug"),
        "the build stage strips the binary and keeps its debug part apart"
    );
    assert!(text.contains("USER 10001"));
    assert!(text.contains("EXPOSE 9464"));
}

#[test]
fn kubernetes_manifests_parse_and_their_config_checks() {
    let dir = deploy().join("kubernetes");
    let kustomization = yaml(&dir.join("kustomization.yaml"));
    for r in strings(&kustomization["resources"]) {
        let doc = yaml(&dir.join(&r));
        assert!(doc["kind"].as_str().is_some(), "{r}");
    }
    // Assemble the ConfigMap's files as the pod sees them in /etc/yujing.
    let mounted = tempfile::tempdir().unwrap();
    for f in strings(&kustomization["configMapGenerator"][0]["files"]) {
        let source = dir.join(&f);
        let name = source.file_name().unwrap();
        std::fs::copy(&source, mounted.path().join(name)).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    let config = mounted.path().join("yujing.yaml");
    yujing::config::check(&config).unwrap_or_else(|e| panic!("{e}"));
    let listen = yujing::config::Config::load(&config)
        .unwrap()
        .metrics
        .listen;

    let deployment = yaml(&dir.join("deployment.yaml"));
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        strings(&container["args"]),
        ["run", "--config", "/etc/yujing/yujing.yaml"]
    );
    assert_eq!(
        container["ports"][0]["containerPort"].as_u64(),
        Some(listen.port() as u64)
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/health");
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
    let pdb = yaml(&dir.join("poddisruptionbudget.yaml"));
    assert_eq!(pdb["kind"], "PodDisruptionBudget");
}

#[test]
fn alertmanager_config_passes_amtool() {
    if !external_program("amtool") {
        return;
    }
    let out = Command::new("amtool")
        .args(["check-config"])
        .arg(deploy().join("alertmanager/alertmanager.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn simulate_args(bootstrap: &str, minutes: u64) -> yujing::demo::simulate::SimulateArgs {
    yujing::demo::simulate::SimulateArgs {
        bootstrap_servers: bootstrap.to_owned(),
        topic: "city.readings".into(),
        speed: 6000.0,
        backdate: Duration::from_secs(3 * 3600),
        minutes: Some(minutes),
        bad_every: 0,
        create_topics: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_publishes_the_city_never_ahead_of_the_clock() {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    cluster.create_topic("city.readings", 1, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let args = simulate_args(&bootstrap, 3);
    let before = yujing_ingest::clock::wall_now_ms();
    let sent = yujing::demo::simulate::simulate(&args, std::future::pending())
        .await
        .unwrap();
    let after = yujing_ingest::clock::wall_now_ms();
    let sensors = yujing::demo::city::sensors().len() as u64;
    assert_eq!(sent, 3 * sensors, "every sensor once a minute");
    let records = tokio::task::spawn_blocking(move || {
        read_topic(
            &bootstrap,
            "city.readings",
            3 * sensors as usize,
            Duration::from_secs(30),
        )
    })
    .await
    .unwrap();
    assert_eq!(records.len() as u64, sent);
    for r in &records {
        let decoded = yujing_ingest::decode_readings(&r.payload)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&r.payload)));
        for reading in decoded {
            let back = before - reading.ts_ms;
            assert!(
                (3 * 3_600_000 - 3 * 60_000..=3 * 3_600_000 + 60_000).contains(&back),
                "stamped {back} ms before the start: the script starts 3 h back"
            );
            assert!(reading.ts_ms <= after, "stamped ahead of the clock");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_names_a_missing_topic() {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let mut args = simulate_args(&bootstrap, 1);
    args.topic = "city.readings.absent".into();
    let e = yujing::demo::simulate::simulate(&args, std::future::pending())
        .await
        .expect_err("a missing topic is refused")
        .to_string();
    assert!(
        e.contains("\"city.readings.absent\" does not exist")
            && e.contains("--create-topics")
            && e.contains("kafka-topics.sh"),
        "{e}"
    );
}

/// `--create-topics` on a real broker (librdkafka's mock cluster does not
/// take CreateTopics).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_creates_a_missing_topic_when_asked_on_a_real_broker() {
    let Some(cluster) = crate::support::Cluster::tansu().await else {
        return;
    };
    let mut args = simulate_args(&cluster.bootstrap(), 1);
    args.topic = "city.readings.new".into();
    args.create_topics = true;
    let sent = yujing::demo::simulate::simulate(&args, std::future::pending())
        .await
        .unwrap();
    assert_eq!(sent, yujing::demo::city::sensors().len() as u64);
    // Asked again, the topic is there: nothing to create.
    let sent = yujing::demo::simulate::simulate(&args, std::future::pending())
        .await
        .unwrap();
    assert_eq!(sent, yujing::demo::city::sensors().len() as u64);
}

/// The README's walk-through: `yujing run` with the shipped example config
/// and `yujing simulate` beside it. Warnings come out and nothing is
/// refused for being stamped in the future.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_config_warns_about_what_the_simulator_publishes() {
    let cluster = crate::support::mock_cluster(&[
        "city.readings",
        "city.alerts",
        "city.alerts.cap",
        "city.readings.dead-letter",
        "city.readings.late",
    ]);
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    for f in ["rules.yaml", "sensors.csv", "measurements.yaml"] {
        std::fs::copy(deploy().join("examples").join(f), dir.path().join(f)).unwrap();
    }
    let port = crate::support::free_port();
    let config = std::fs::read_to_string(deploy().join("examples/yujing.yaml"))
        .unwrap()
        .replace("127.0.0.1:9092", &bootstrap)
        .replace("127.0.0.1:9464", &format!("127.0.0.1:{port}"))
        .replace(
            "  - kind: terminal\n",
            "  - kind: file\n    path: alerts.jsonl\n",
        );
    assert!(config.contains(&bootstrap) && config.contains(&port.to_string()));
    let path = dir.path().join("yujing.yaml");
    std::fs::write(&path, config).unwrap();

    let args = simulate_args(&bootstrap, 180);
    yujing::demo::simulate::simulate(&args, std::future::pending())
        .await
        .unwrap();
    let reader = bootstrap.clone();
    let (result, (alerts, samples)) = crate::support::run_while(path, async move {
        let alerts = tokio::task::spawn_blocking(move || {
            read_topic(&reader, "city.alerts", 1, Duration::from_secs(60))
        })
        .await
        .unwrap();
        (alerts, crate::support::scrape(port).await)
    })
    .await;
    result.expect("yujing run stops cleanly");
    assert!(!alerts.is_empty(), "the walk-through shows warnings");
    let refused = |reason| {
        crate::support::sample(&samples, "yujing_bad_messages_total", &[("reason", reason)])
    };
    assert_eq!(refused("future_timestamp"), 0.0, "{samples:?}");
    assert_eq!(refused("too_old"), 0.0, "{samples:?}");
}

/// The `[workspace] members` of a Cargo manifest (a line-based read: the
/// list is one line in ours).
mod toml_members {
    pub struct Members(pub Vec<String>);

    pub fn read(path: &std::path::Path) -> Members {
        let text = std::fs::read_to_string(path).unwrap();
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("members"))
            .expect("a members line");
        let list = line.split_once('[').unwrap().1.split_once(']').unwrap().0;
        Members(
            list.split(',')
                .map(|m| m.trim().trim_matches('"').to_owned())
                .filter(|m| !m.is_empty())
                .collect(),
        )
    }
}

#[test]
fn the_example_responsibility_file_checks_against_the_example_registry() {
    let examples = deploy().join("examples");
    let registry = yujing_ingest::SensorRegistry::load(&examples.join("sensors.csv")).unwrap();
    let units = yujing_response::Units::load(&examples.join("units.yaml"), &registry)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(units.get("city").is_some());
    assert_eq!(units.community_of["cq-yb-g01"], "Longxi-1");
}
