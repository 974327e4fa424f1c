//! Waiting for something a running yujing does, without fixed sleeps.

use std::time::{Duration, Instant};

/// Wait (up to 60 s) until `done()` holds.
pub async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    wait_until(what, async || done()).await;
}

/// Wait (up to 60 s) until `check().await` holds.
pub async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
