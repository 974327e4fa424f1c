//! Stopping `yujing run` when a destination is gone: the shutdown deadline
//! (and a second signal) end the stop, name what was not delivered or
//! committed, and a restart replays it.

use std::time::{Duration, Instant};

use crate::delivery::three_transitions;
use crate::support::{City, Receiver, run_while, wait_for, wait_for_metric};

/// A webhook that accepts connections and never answers.
async fn silent_webhook() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}/hook")
}

fn webhook_sink(url: &str) -> String {
    format!("  - kind: webhook\n    url: \"{url}\"\n    timeout: 60s\n")
}

/// Until the webhook has been handed the first window's alerts.
async fn wait_until_delivering(city: &City) {
    wait_for_metric(city.metrics_port(), "yujing_windows_closed_total", &[], 1.0).await;
}

async fn replayed_after_restart(city: &City) {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let config = city.config_with("shutdown_deadline: 5s", &webhook_sink(&url));
    let (result, ()) = run_while(config, async {
        wait_for("the replayed alerts", || receiver.accepted().len() >= 9).await;
    })
    .await;
    result.expect("the restarted pipeline stops cleanly");
    let transitions: Vec<String> = receiver
        .accepted()
        .iter()
        .map(|a| a["transition"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(transitions.len(), 9, "{transitions:?}");
    assert_eq!(transitions[..3], ["raised", "raised", "raised"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_with_a_destination_gone_ends_at_the_deadline_and_names_what_is_replayed() {
    let city = City::new(3);
    let url = silent_webhook().await;
    let config = city.config_with("shutdown_deadline: 2s", &webhook_sink(&url));
    city.produce(&three_transitions()).await;
    let (result, stopped_at) = run_while(config, async {
        wait_until_delivering(&city).await;
        Instant::now()
    })
    .await;
    let took = stopped_at.elapsed();
    let e = result.expect_err("a cut-short stop is an error (exit code 1)");
    let text = e.to_string();
    assert!(text.contains("shutdown deadline of 2s passed"), "{text}");
    assert!(
        text.contains(&format!("not acknowledged by webhook:{url}")),
        "{text}"
    );
    assert!(text.contains("not committed: readings/0"), "{text}");
    assert!(text.contains("read again on the next start"), "{text}");
    assert!(took < Duration::from_secs(30), "the stop took {took:?}");

    replayed_after_restart(&city).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_at_once_with_the_same_account() {
    let city = City::new(3);
    let url = silent_webhook().await;
    // No deadline to speak of: only the second signal ends the stop.
    let config = city.config_with("shutdown_deadline: 1h", &webhook_sink(&url));
    city.produce(&three_transitions()).await;
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    let (second_tx, second_rx) = tokio::sync::oneshot::channel::<()>();
    let force: yujing::pipeline::ForceStop = Box::pin(async {
        let _ = second_rx.await;
    });
    let pipeline = yujing::cli::run_until(
        config,
        async {
            let _ = first_rx.await;
        },
        Some(force),
    );
    let driver = async {
        wait_until_delivering(&city).await;
        let _ = first_tx.send(());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = second_tx.send(());
    };
    let (result, ()) = tokio::join!(pipeline, driver);
    let text = result.expect_err("a forced stop is an error").to_string();
    assert!(text.contains("a second stop signal came"), "{text}");
    assert!(text.contains("not committed: readings/0"), "{text}");

    replayed_after_restart(&city).await;
}
