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
