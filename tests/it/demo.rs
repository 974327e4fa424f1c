//! The demo a newcomer runs: the synthetic city's episodes must climb
//! through every grade and resolve, with warnings on the alert topic.

use std::net::SocketAddr;
use std::time::Duration;

use yujing::demo::{self, DemoOptions};
use yujing_rules::Grade;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_city_climbs_through_every_grade_and_resolves() {
    let _cores = crate::support::CPU_HEAVY.lock().await;
    let opts = DemoOptions {
        // 13 simulated hours (06:00 to 19:00); the episode's red hour
        // closes at 11:00, 7.5 s in, leaving room for a loaded CI machine.
        duration: Duration::from_secs(20),
        speed: 2_400.0,
        metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        rules: None,
        colour: Some(false),
        print: false,
    };
    let summary = demo::run(opts, std::future::pending())
        .await
        .expect("demo runs");
    for grade in Grade::ALL {
        assert!(
            summary.warnings_by_grade.get(&grade).copied().unwrap_or(0) > 0,
            "no {grade} warning in the demo: {summary:?}"
        );
    }
    assert!(summary.resolved > 0, "{summary:?}");
    assert!(
        summary.bad_messages > 0,
        "the demo plants malformed messages: {summary:?}"
    );
    assert!(summary.readings > 100_000, "{summary:?}");
}
