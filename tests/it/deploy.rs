//! The deployment kit (`deploy/`), checked as far as this machine allows
//! (no Docker, no Kubernetes): every file parses, every file a compose
//! service, the Dockerfile or kustomize names exists, the yujing configs
//! in it pass `yujing config check`, ports agree across the pieces,
//! Alertmanager's config passes `amtool check-config`, and the city
//! simulator the compose kit runs publishes readings stamped from now.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_publishes_the_city_stamped_from_now() {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    cluster.create_topic("city.readings", 1, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let args = yujing::demo::simulate::SimulateArgs {
        bootstrap_servers: bootstrap.clone(),
        topic: "city.readings".into(),
        speed: 600.0,
        minutes: Some(3),
        bad_every: 0,
    };
    let before = yujing_ingest::clock::wall_now_ms();
    let sent = yujing::demo::simulate::simulate(&args, std::future::pending())
        .await
        .unwrap();
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
            let ahead = reading.ts_ms - before;
            assert!(
                (-60_000..4 * 60_000).contains(&ahead),
                "stamped {ahead} ms from the start"
            );
        }
    }
}
