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
