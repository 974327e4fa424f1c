//! Golden files: `tests/golden/<case>/` holds `rules.yaml`, `input.jsonl`
//! and `expected.jsonl` (and optionally `case.yaml` with pipeline settings,
//! `measurements.yaml`, and `sensors.csv`; the default registry is
//! `tests/golden/sensors.csv`).
//! The input runs through the same engine `yujing run` uses; each output
//! line is an alert message (without `emitted_at`) or a refusal.
//!
//! Input lines are reading messages, or envelopes:
//! - `{"partition": 1, "message": {…}}`: a message read from partition 1
//!   (plain lines are partition 0);
//! - `{"tick": "10m"}`: processing time passes with no message.
//!
//! Processing time follows the stream: it starts at the first reading's
//! event time and never falls behind the latest event time seen.
//!
//! A case whose `case.yaml` names `languages: [zh-CN, en]` also checks the
//! alerts' texts in those languages, and each alert's CAP document against
//! `expected-cap/<n>-<transition>.xml` (each validated against the CAP 1.2
//! schema); other cases leave the texts out.
//!
//! `YUJING_BLESS=1 cargo test --test it golden` rewrites the expected files;
//! review the diff before committing it.

use std::path::{Path, PathBuf};

use serde_json::Value;
use yujing_engine::{Engine, EngineSettings};
use yujing_ingest::{Measurements, SensorRegistry, decode_readings};
use yujing_rules::Languages;
use yujing_rules::RuleSet;
use yujing_sinks::cap::{CapSender, cap_xml};
use yujing_sinks::{AlertMessage, TimeFormat};

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

/// The case's `case.yaml`: the `pipeline:` section of a yujing config,
/// and optionally `languages:`.
fn config(dir: &Path) -> (EngineSettings, Languages) {
    let path = dir.join("case.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| "{}".into());
    let mut yaml: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(&text).unwrap();
    let languages: Vec<String> = yaml
        .remove("languages")
        .map(|v| serde_yaml_ng::from_value(v).unwrap())
        .unwrap_or_default();
    let settings = serde_yaml_ng::from_value::<yujing::config::PipelineConfig>(yaml.into())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .engine_settings();
    (settings, Languages::new(&languages, &[]).unwrap())
}

/// Who issues the golden CAP documents.
fn cap_sender(languages: &Languages) -> CapSender {
    CapSender {
        sender: "yujing@eeb.cq.example".into(),
        name: "Chongqing ecological early warning".into(),
        names: [("zh-CN".to_owned(), "重庆市生态环境预警".to_owned())].into(),
        languages: languages.tags(),
        issuer_code: "12345600".into(),
        ..CapSender::default()
    }
}

struct CaseOutput {
    lines: Vec<Value>,
    /// `(file name, document)` per alert, for cases with languages.
    cap: Vec<(String, String)>,
}

async fn run_case(dir: &Path) -> CaseOutput {
    let rules =
        RuleSet::load_checked(&[dir.join("rules.yaml")], None, &config(dir).1.tags()).unwrap();
    let sensors = [
        dir.join("sensors.csv"),
        dir.parent().unwrap().join("sensors.csv"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap();
    let registry = SensorRegistry::load(&sensors).unwrap();
    let (config, languages) = config(dir);
    let mut cap = Vec::new();
    let times = TimeFormat::new(config.time_zone.utc_offset_ms());
    let mut engine = Engine::new(&rules, registry.clone(), &config);
    let measurements = dir.join("measurements.yaml");
    if measurements.exists() {
        engine = engine.with_measurements(Measurements::load(&measurements).unwrap());
    }
    let input = std::fs::read_to_string(dir.join("input.jsonl")).unwrap();
    let mut now: Option<i64> = None;
    let mut out = Vec::new();
    for (n, line) in input.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with("//") {
            continue;
        }
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("input line {}: {e}", n + 1));
        if let Some(tick) = value.get("tick").and_then(Value::as_str) {
            let d = humantime::parse_duration(tick).unwrap().as_millis() as i64;
            now = now.map(|t| t + d);
        } else if let Some(p) = value.get("revoke").and_then(Value::as_i64) {
            // A rebalance gave the partition to another instance.
            let forgotten = engine.forget_partition("readings", p as i32);
            out.push(
                serde_json::json!({"line": n + 1, "revoked": p, "forgotten_warnings": forgotten}),
            );
        } else {
            let (partition, message) = match value.get("message") {
                Some(m) => (
                    value.get("partition").and_then(Value::as_i64).unwrap_or(0) as i32,
                    m.to_string(),
                ),
                None => (0, line.to_owned()),
            };
            match decode_readings(message.as_bytes()) {
                Err(e) => out.push(serde_json::json!({"line": n + 1, "refused": e.reason()})),
                Ok(readings) => {
                    let max_ts = readings.iter().map(|r| r.ts_ms).max().unwrap();
                    now = Some(now.map_or(max_ts, |t| t.max(max_ts)));
                    match engine.place("readings", partition, &readings, now.unwrap()) {
                        Err(e) => {
                            out.push(serde_json::json!({"line": n + 1, "refused": e.reason()}))
                        }
                        Ok(placed) => {
                            if let Some((e, count)) = placed.late {
                                out.push(serde_json::json!({"line": n + 1, "refused": e.reason(), "readings": count}));
                            }
                        }
                    }
                }
            }
        }
        let Some(now) = now else { continue };
        if let Some(closed) = engine.close_ready(now).await.unwrap() {
            for t in &closed.transitions {
                let message =
                    AlertMessage::new(t, &registry, times, 0).with_texts(t, &registry, &languages);
                if !languages.is_empty() {
                    let name = format!("{}-{}.xml", cap.len() + 1, message.transition);
                    cap.push((name, cap_xml(&message, &cap_sender(&languages))));
                }
                let mut alert = serde_json::to_value(message).unwrap();
                crate::support::assert_valid_alert(&alert);
                alert.as_object_mut().unwrap().remove("emitted_at");
                out.push(alert);
            }
        }
    }
    CaseOutput { lines: out, cap }
}

#[tokio::test]
async fn golden_files() {
    let bless = std::env::var_os("YUJING_BLESS").is_some();
    let mut failures = Vec::new();
    let cases = cases();
    assert!(cases.len() >= 5, "golden cases found: {cases:?}");
    for dir in cases {
        let CaseOutput { lines: got, cap } = run_case(&dir).await;
        if let Some(f) = check_cap(&dir, &cap, bless) {
            failures.push(f);
        }
        let got_text: String = got.iter().map(|v| format!("{v}\n")).collect();
        let expected_path = dir.join("expected.jsonl");
        if bless {
            std::fs::write(&expected_path, &got_text).unwrap();
            continue;
        }
        let expected_text = std::fs::read_to_string(&expected_path).unwrap_or_default();
        let expected: Vec<Value> = expected_text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if got != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected_text}--- got\n{got_text}",
                dir.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Compare (or bless) a case's CAP documents; each must be valid CAP 1.2.
fn check_cap(dir: &Path, docs: &[(String, String)], bless: bool) -> Option<String> {
    let cap_dir = dir.join("expected-cap");
    if bless && !docs.is_empty() {
        let _ = std::fs::remove_dir_all(&cap_dir);
        std::fs::create_dir_all(&cap_dir).unwrap();
    }
    let mut problems = Vec::new();
    for (name, doc) in docs {
        crate::support::assert_valid_cap(doc);
        let path = cap_dir.join(name);
        if bless {
            std::fs::write(&path, doc).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(doc.as_str()) {
            problems.push(format!("{}:\n--- got\n{doc}", path.display()));
        }
    }
    let expected = std::fs::read_dir(&cap_dir).map_or(0, |d| d.count());
    if !bless && expected != docs.len() {
        problems.push(format!(
            "{}: {expected} expected CAP documents, got {}",
            cap_dir.display(),
            docs.len()
        ));
    }
    (!problems.is_empty()).then(|| problems.join("\n"))
}
