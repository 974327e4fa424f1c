//! The alert contract: messages checked against docs/alert.schema.json.

use std::sync::LazyLock;

static ALERT_SCHEMA: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let text = include_str!("../../../docs/alert.schema.json");
    let schema: serde_json::Value = serde_json::from_str(text).expect("schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
});

/// Panic unless `alert` matches the published schema, docs/alert.schema.json.
pub fn assert_valid_alert(alert: &serde_json::Value) {
    let errors: Vec<String> = ALERT_SCHEMA
        .iter_errors(alert)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "alert does not match docs/alert.schema.json: {errors:#?}\n{alert:#}"
    );
}

/// Panic unless `xml` validates against the official CAP 1.2 schema
/// (xmllint, from Debian's libxml2-utils, which `.ci/run` installs).
pub fn assert_valid_cap(xml: &str) {
    use std::io::Write;
    let xsd = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/CAP-v1.2.xsd");
    let mut child = std::process::Command::new("xmllint")
        .args(["--noout", "--schema", xsd, "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("xmllint (libxml2-utils) validates CAP documents");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(xml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "CAP document does not validate:\n{}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn schema_rejects_a_broken_alert() {
    let mut alert: serde_json::Value =
        serde_json::from_str(include_str!("../../data/alert-example.json")).unwrap();
    assert_valid_alert(&alert);
    alert["grade"] = serde_json::json!("purple");
    assert!(!ALERT_SCHEMA.is_valid(&alert));
    alert["grade"] = serde_json::json!(null);
    assert!(
        !ALERT_SCHEMA.is_valid(&alert),
        "an escalation must carry a grade"
    );
}
