//! Checkpoints of the open windows across restarts of `yujing run`: a
//! restart carries on from the checkpoint without re-reading the readings
//! behind its open windows, and gets the same result as a run that never
//! stopped. A damaged checkpoint is set aside and the committed offsets
//! are replayed; one written for other windows is not used.

use std::time::Duration;

use crate::support::{City, metric, run_until};

const CONSUMED: &str = "yujing_messages_consumed_total{topic=\"readings\"}";

/// Wait until the metric `name` reaches `want`.
async fn wait_for(city: &City, name: &str, want: f64) {
    crate::support::wait_for_metric(city.metrics_port(), name, &[], want).await;
}

fn rules(city: &City, window: &str) {
    std::fs::write(
        city.dir.path().join("rules.yaml"),
        format!(
            "rules:\n  - id: pm25-avg\n    metric: pm25\n    window: {window}\n    group_by: sensor\n    above: {{ blue: 75, orange: 150 }}\n"
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_carries_on_from_the_checkpoint_without_replaying() {
    let city = City::new(1);
    rules(&city, "10m");
    let config = city.config_with(
        "state_dir: state\ncheckpoint_every: 1s",
        "  - kind: kafka\n    topic: alerts\n",
    );
    let checkpoint = city.dir.path().join("state/checkpoint.json");

    // Run 1: the first half of a 10-minute window, at 220.
    let text = run_until(&city, &config, async {
        let first: Vec<(i64, Vec<f64>)> = (0..5).map(|m| (m, vec![220.0])).collect();
        city.produce(&first).await;
        wait_for(&city, CONSUMED, 5.0).await;
    })
    .await;
    assert_eq!(metric(&text, CONSUMED), 5.0);
    assert!(checkpoint.exists(), "written at shutdown at the latest");

    // Run 2: the second half at 100, and a reading that closes the window.
    // The window's average covers both halves (160: orange); without the
    // checkpoint's state it would be 100 (blue).
    let text = run_until(&city, &config, async {
        let second: Vec<(i64, Vec<f64>)> = (5..11).map(|m| (m, vec![100.0])).collect();
        city.produce(&second).await;
        let alerts = city.alerts(1).await;
        assert_eq!(alerts[0]["grade"], "orange", "{:#}", alerts[0]);
        assert_eq!(alerts[0]["value"].as_f64(), Some(160.0), "{:#}", alerts[0]);
        wait_for(&city, CONSUMED, 6.0).await;
    })
    .await;
    assert_eq!(
        metric(
            &text,
            "yujing_checkpoint_restores_total{outcome=\"restored\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&text, CONSUMED),
        6.0,
        "only the readings after the checkpoint were read"
    );
    assert!(metric(&text, "yujing_checkpoint_saves_total{outcome=\"success\"}") >= 1.0);
    assert!(metric(&text, "yujing_checkpoint_bytes") > 0.0);

    // Run 3: a damaged checkpoint is set aside; the committed offset (the
    // open window's first reading, minute 10) is replayed, and the result
    // is still right: the window of minutes 10-19 averages 10 and the
    // warning resolves.
    let mut bytes = std::fs::read(&checkpoint).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x20;
    std::fs::write(&checkpoint, bytes).unwrap();
    let text = run_until(&city, &config, async {
        let third: Vec<(i64, Vec<f64>)> = (11..21).map(|m| (m, vec![10.0])).collect();
        city.produce(&third).await;
        let alerts = city.alerts(2).await;
        assert_eq!(alerts[1]["transition"], "resolved", "{:#}", alerts[1]);
        wait_for(&city, CONSUMED, 11.0).await;
    })
    .await;
    assert_eq!(
        metric(
            &text,
            "yujing_checkpoint_restores_total{outcome=\"damaged\"}"
        ),
        1.0
    );
    assert_eq!(metric(&text, CONSUMED), 11.0, "minute 10 read again");
    assert!(city.dir.path().join("state/checkpoint.json.bad").exists());
    // Nothing was graded twice: two transitions in all.
    assert_eq!(city.alerts_within(3, Duration::from_secs(2)).await.len(), 2);

    // Run 4: other windows than the checkpoint was written for: not used.
    rules(&city, "5m");
    let text = run_until(&city, &config, async {
        city.produce(&[(21, vec![10.0])]).await;
        wait_for(&city, CONSUMED, 1.0).await;
    })
    .await;
    assert_eq!(
        metric(
            &text,
            "yujing_checkpoint_restores_total{outcome=\"incompatible\"}"
        ),
        1.0
    );
}
