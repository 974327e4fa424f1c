//! The demo a newcomer runs: the synthetic city's episodes must climb
//! through every grade and resolve, with warnings on the alert topic, and
//! simulated responders close the loop.

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
        language: "zh-CN".into(),
    };
    let demo = demo::run(opts, std::future::pending())
        .await
        .expect("demo runs");
    let summary = &demo.run;
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

    // The response loop: responders answered through the feedback topic,
    // one warning climbed from its grid up, one was a false alarm.
    let r = &demo.responses;
    assert!(
        r.acknowledged.keys().any(|u| u.starts_with("grid-")),
        "grid teams acknowledged: {r:?}"
    );
    let levels: Vec<&str> = r.climbed.iter().map(|(_, to)| to.as_str()).collect();
    assert!(
        levels.len() >= 2 && levels[0].starts_with("street-") && levels[1].starts_with("district-"),
        "the ignored warning climbs grid → street → district: {r:?}"
    );
    assert!(
        r.climbed[0].0.starts_with("grid-"),
        "its grid missed first: {r:?}"
    );
    assert!(
        r.verdicts
            .values()
            .any(|(_, false_alarms)| *false_alarms == 1),
        "one false alarm: {r:?}"
    );
    assert!(
        r.verdicts.values().any(|(confirmed, _)| *confirmed > 0),
        "confirmed warnings: {r:?}"
    );
}
