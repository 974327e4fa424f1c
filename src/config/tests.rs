//! Tests of config loading and validation.

use super::*;

#[test]
fn secret_properties_come_from_the_environment_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "file-secret\n").unwrap();
    let path = dir.path().join("yujing.yaml");
    std::fs::write(
            &path,
            "kafka:\n  bootstrap_servers: x:9092\n  readings_topics: [r]\n  properties: { sasl.username: yujing }\n  secret_properties:\n    sasl.password: { file: pw }\n    ssl.key.password: { env: YUJING_TEST_KEY_PASSWORD_SET }\nrules: r.yaml\nsensors: s.csv\nsinks: [{kind: terminal}]\n",
        )
        .unwrap();
    let c = Config::load(&path).unwrap();
    // SAFETY: only this test reads or writes this variable.
    unsafe { std::env::set_var("YUJING_TEST_KEY_PASSWORD_SET", "env-secret") };
    let props = c.kafka.client_properties().unwrap();
    assert_eq!(props["sasl.username"], "yujing");
    assert_eq!(props["sasl.password"], "file-secret");
    assert_eq!(props["ssl.key.password"], "env-secret");
    // SAFETY: as above.
    unsafe { std::env::remove_var("YUJING_TEST_KEY_PASSWORD_SET") };
    let e = c.kafka.client_properties().unwrap_err();
    assert!(e.contains("YUJING_TEST_KEY_PASSWORD_SET is not set"), "{e}");
    assert!(!format!("{:?}", c.kafka).contains("file-secret"));
}

#[test]
fn time_zone_is_parsed_with_the_config() {
    // The parsing itself is tested in yujing-engine (settings.rs).
    let c: PipelineConfig = serde_yaml_ng::from_str("time_zone: \"+05:30\"").unwrap();
    assert_eq!(c.utc_offset_ms(), 5 * 3_600_000 + 30 * 60_000);
    assert_eq!(PipelineConfig::default().utc_offset_ms(), 8 * 3_600_000);
    let e = serde_yaml_ng::from_str::<PipelineConfig>("time_zone: Europe/Berlin")
        .unwrap_err()
        .to_string();
    assert!(e.contains("daylight saving"), "{e}");
}

#[test]
fn sink_routes_and_topics_are_checked() {
    let dir = std::env::temp_dir().join(format!("yujing-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("y.yaml");
    let write = |sinks: &str| {
        std::fs::write(
                &path,
                format!("kafka:\n  bootstrap_servers: x:9092\n  readings_topics: [r]\nrules: r.yaml\nsensors: s.csv\nsinks: {sinks}\n"),
            )
            .unwrap();
        Config::load(&path).map(|_| ()).map_err(|e| e.to_string())
    };
    assert!(write("[{kind: kafka, topic: \"alerts.{grade}\", route: {min_grade: red, districts: [\"500112\"]}}]").is_ok());
    let e = write("[{kind: kafka, topic: \"alerts.{colour}\"}]").unwrap_err();
    assert!(e.contains("placeholders are"), "{e}");
    let e = write("[{kind: terminal, route: {min_grade: purple}}]").unwrap_err();
    assert!(e.contains("not a grade"), "{e}");
    let e = write("[{kind: kafka, topic: a, format: cap}]").unwrap_err();
    assert!(e.contains("needs `cap"), "{e}");
    let e = write("[{kind: kafka, topic: a, route: {min_grad: red}}]").unwrap_err();
    assert!(e.contains("min_grad"), "{e}");
    assert!(write("[{kind: webhook, url: \"https://duty.example/h\", secret_env: S, timeout: 2s, route: {min_grade: yellow}}]").is_ok());
    let e = write("[{kind: webhook, url: duty.example}]").unwrap_err();
    assert!(e.contains("must start with http"), "{e}");
    let e = write("[{kind: webhook, url: \"http://x\", max_attempts: 0}]").unwrap_err();
    assert!(e.contains("max_attempts"), "{e}");
    let e =
        write("[{kind: webhook, url: \"http://x\", secret_env: A, secret_file: b}]").unwrap_err();
    assert!(e.contains("not both"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/yujing.yaml");
    let c = Config::load(&path).unwrap();
    assert!(
        c.rules.len() == 1 && c.rules[0].ends_with("rules.yaml") && c.rules[0].exists(),
        "{:?}",
        c.rules
    );
    assert!(c.sensors.exists(), "{:?}", c.sensors);
    assert_eq!(c.pipeline.allowed_delay, Duration::from_secs(60));
    assert!(
        !c.kafka.properties.is_empty(),
        "shows pass-through properties"
    );
}

#[test]
fn unknown_keys_are_refused_with_position() {
    let dir = std::env::temp_dir().join(format!("yujing-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.yaml");
    std::fs::write(
            &p,
            "kafka:\n  bootstrap_servers: x:9092\n  readings_topics: [r]\n  group: y\nrules: r.yaml\nsensors: s.csv\nsinks: [{kind: terminal}]\n",
        )
        .unwrap();
    let e = Config::load(&p).unwrap_err().to_string();
    assert!(
        e.contains("bad.yaml:4:3: kafka: unknown field `group`"),
        "{e}"
    );
}
