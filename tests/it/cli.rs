//! The `yujing` binary as a user runs it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn yujing() -> Command {
    Command::new(env!("CARGO_BIN_EXE_yujing"))
}

#[test]
fn check_rules_accepts_the_example_and_points_at_errors() {
    let ok = yujing()
        .args([
            "check-rules",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/rules.yaml"),
        ])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ok, 8 rules"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("rules.yaml");
    std::fs::write(
        &bad,
        "rules:\n  - id: x\n    metric: pm25\n    window: 1h\n    abve: {red: 1}\n",
    )
    .unwrap();
    let out = yujing().arg("check-rules").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rules.yaml:5:5: rules[0]: unknown field `abve`"),
        "{err}"
    );
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
