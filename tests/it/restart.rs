//! Active warnings across a restart of `yujing run` (with `state_dir`): a
//! warning raised before the restart is neither raised again nor
//! forgotten; it resolves after it with the same id and the next sequence.
//! A damaged state file is set aside, reported, and the pipeline runs.

use std::time::Duration;

use serde_json::Value;

use crate::support::{City, metric, run_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_neither_raises_again_nor_forgets_an_active_warning() {
    restart_keeps_warnings(City::new(1)).await;
}

/// The same on a real broker process: commits, group rejoins and the alert
/// topic over the Kafka protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_its_warnings_on_a_real_broker() {
    if let Some(city) = City::on_tansu(1).await {
        restart_keeps_warnings(city).await;
    }
}

async fn restart_keeps_warnings(city: City) {
    let config = city.config_with("state_dir: state", "  - kind: kafka\n    topic: alerts\n");

    // Run 1: minute 0 at 100 closes as blue.
    let text = run_until(&city, &config, async {
        city.produce(&[(0, vec![100.0]), (1, vec![100.0])]).await;
        assert_eq!(city.alerts(1).await.len(), 1);
    })
    .await;
    assert_eq!(
        metric(
            &text,
            "yujing_warning_state_saves_total{outcome=\"failure\"}"
        ),
        0.0
    );
    assert!(city.dir.path().join("state/warnings.json").exists());

    // Run 2: minutes 1 and 2 still blue, minute 3 clear.
    let text = run_until(&city, &config, async {
        city.produce(&[(2, vec![100.0]), (3, vec![10.0]), (4, vec![10.0])])
            .await;
        assert_eq!(city.alerts(2).await.len(), 2);
        // Nothing else arrives (a second raise would).
        tokio::time::sleep(Duration::from_secs(1)).await;
    })
    .await;
    assert_eq!(metric(&text, "yujing_warning_state_restored"), 1.0);
    let alerts = city.alerts_within(3, Duration::from_secs(3)).await;
    let seen: Vec<(&str, &str, u64)> = alerts
        .iter()
        .map(|a: &Value| {
            (
                a["transition"].as_str().unwrap(),
                a["warning_id"].as_str().unwrap(),
                a["sequence"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, "raised");
    assert_eq!(
        seen[1],
        ("resolved", seen[0].1, 2),
        "same warning, next sequence"
    );

    // Run 3: a damaged state file is set aside; the pipeline runs.
    std::fs::write(city.dir.path().join("state/warnings.json"), "garbage").unwrap();
    let text = run_until(&city, &config, async {
        city.produce(&[(5, vec![100.0]), (6, vec![100.0])]).await;
        assert_eq!(city.alerts(3).await.len(), 3);
    })
    .await;
    assert_eq!(metric(&text, "yujing_warning_state_refused"), 1.0);
    assert!(city.dir.path().join("state/warnings.json.bad").exists());
}

/// `state_dir` unusable (here its parent is a file; as root, permissions
/// would not stop the writes): warnings still go out, each failed save is
/// counted, and no offset is committed until saving works again, so a
/// restart would re-read rather than forget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_state_dir_holds_commits_back_and_says_so() {
    let city = City::new(1);
    let blocker = city.dir.path().join("blocker");
    std::fs::write(&blocker, "a file where a directory should be").unwrap();
    let config = city.config_with(
        "state_dir: blocker/state",
        "  - kind: kafka\n    topic: alerts\n",
    );
    let bootstrap = city.bootstrap().to_owned();
    let committed = move || {
        let b = bootstrap.clone();
        tokio::task::spawn_blocking(move || {
            crate::support::committed_offset(&b, "yujing-delivery", "readings")
        })
    };
    let text = run_until(&city, &config, async {
        city.produce(&[(0, vec![100.0]), (1, vec![100.0])]).await;
        assert_eq!(city.alerts(1).await.len(), 1, "warnings still go out");
        // A few commit ticks pass; none may commit.
        let mut failures = 0.0;
        for _ in 0..100 {
            failures = metric(
                &city.get("/metrics").await,
                "yujing_warning_state_saves_total{outcome=\"failure\"}",
            );
            if failures >= 2.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(failures >= 2.0, "failed saves counted");
        let health: serde_json::Value = serde_json::from_str(&city.get("/health").await).unwrap();
        assert_eq!(health["status"], "degraded", "{health}");
        assert_eq!(health["sinks"]["warning-state"]["up"], false, "{health}");
        assert_eq!(committed().await.unwrap(), None, "nothing committed");

        // The disk is fixed: saving and committing resume.
        std::fs::remove_file(&blocker).unwrap();
        let mut offset = None;
        for _ in 0..100 {
            offset = committed().await.unwrap();
            if offset.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(offset.is_some(), "commits resume once the state is saved");
    })
    .await;
    assert!(
        metric(
            &text,
            "yujing_warning_state_saves_total{outcome=\"success\"}"
        ) >= 1.0
    );
    assert!(city.dir.path().join("blocker/state/warnings.json").exists());
}

/// Exactly-once mode saves the book to `warnings.pending.json` before a
/// transaction commits and makes it the saved book after. A crash in
/// between leaves the pending file: at the next start it is taken up only
/// if the group's committed offsets show its transaction committed,
/// otherwise set aside (its alerts were aborted and will be made again).
/// The mock cluster does not store transactional offset commits, so the
/// pending files here are written by hand around a plain commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_book_is_taken_up_only_if_its_offsets_were_committed() {
    use sha2::Digest;
    let city = City::new(1);
    let config = city.config_with("state_dir: state", "  - kind: kafka\n    topic: alerts\n");
    let state = city.dir.path().join("state");

    // Run 1: a warning is raised; minute 1's reading (offset 1) waits in
    // an open window, so offset 1 is committed.
    run_until(&city, &config, async {
        city.produce(&[(0, vec![100.0]), (1, vec![100.0])]).await;
        assert_eq!(city.alerts(1).await.len(), 1);
    })
    .await;
    let saved = std::fs::read(state.join("warnings.json")).unwrap();
    let newline = saved.iter().position(|b| *b == b'\n').unwrap();
    let book: Value = serde_json::from_slice(&saved[newline + 1..]).unwrap();
    let pending = |offset: i64| {
        let body = serde_json::to_vec(
            &serde_json::json!({"offsets": [["readings", 0, offset]], "book": book}),
        )
        .unwrap();
        let sha: String = sha2::Sha256::digest(&body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut file =
            format!("{{\"format\":\"yujing.warnings-pending/v1\",\"sha256\":\"{sha}\"}}\n")
                .into_bytes();
        file.extend(body);
        std::fs::write(state.join("warnings.pending.json"), file).unwrap();
        std::fs::remove_file(state.join("warnings.json")).unwrap();
    };
    // The pipeline reads a new reading, so the start (and the book's
    // restore, which comes before reading) is over.
    let restored_after_start = async |minute: i64| {
        city.produce(&[(minute, vec![100.0])]).await;
        for _ in 0..300 {
            let text = city.get("/metrics").await;
            if metric(&text, "yujing_messages_consumed_total{topic=\"readings\"}") >= 1.0 {
                return metric(&text, "yujing_warning_state_restored");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the pipeline read nothing");
    };

    // Its offsets were committed: the pending book is the saved one now.
    pending(1);
    let mut restored = 0.0;
    run_until(&city, &config, async {
        restored = restored_after_start(2).await;
    })
    .await;
    assert_eq!(restored, 1.0, "the pending book's warning is taken up");
    assert!(state.join("warnings.json").exists());
    assert!(!state.join("warnings.pending.json").exists());

    // Its offsets were not committed: set aside, the warning not taken up.
    pending(999);
    let mut restored = 1.0;
    run_until(&city, &config, async {
        restored = restored_after_start(3).await;
    })
    .await;
    assert_eq!(restored, 0.0);
    assert!(state.join("warnings.pending.json.aborted").exists());
    assert!(!state.join("warnings.pending.json").exists());
}
