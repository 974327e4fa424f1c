//! The response loop through `yujing run` on the mock cluster: a warning
//! acknowledged in time stays with its grid; an ignored one climbs grid →
//! street → district → city with a new assignee and deadline at each rung;
//! the API answers each unit only for its own warnings and says why it
//! refuses; a restart keeps every assignment. On the mock cluster and on
//! a real broker process (tansu).

use std::time::Duration;

use serde_json::Value;

use crate::support::{City, read_topic, run_while, wait_until};

const UNITS: &str = "\
units:
  - id: grid-g0
    level: grid
    areas: [g0]
    token_env: YUJING_TEST_TOKEN_GRID_G0
  - id: grid-g1
    level: grid
    areas: [g1]
  - id: street-st
    level: street
    areas: [st]
  - id: jiangbei
    level: district
    areas: [\"500105\"]
  - id: city
    level: city
    token_env: YUJING_TEST_TOKEN_CITY
deadlines:
  blue: { acknowledge: 2s }
";

async fn response_city(city: City) -> (City, std::path::PathBuf) {
    city.create_topics(&[("responses", 1)]).await;
    std::fs::write(city.dir.path().join("units.yaml"), UNITS).unwrap();
    let config = city.config_with(
        "state_dir: state\nresponse: { units: units.yaml, topic: responses }",
        "  - kind: kafka\n    topic: alerts\n",
    );
    (city, config)
}

async fn api(
    city: &City,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}{path}", city.metrics_port());
    let mut req = match method {
        "GET" => client.get(url),
        _ => client.post(url).body(body.to_owned()),
    };
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn responses(city: &City, n: usize) -> Vec<Value> {
    read_topic(city.bootstrap(), "responses", n, Duration::from_secs(30))
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_are_assigned_answered_or_climb_the_ladder_and_survive_a_restart() {
    answered_climbing_and_restarted(City::new(2)).await;
}

/// The same on a real broker process (tansu).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_real_broker_warnings_are_answered_or_climb_and_survive_a_restart() {
    if let Some(city) = City::on_tansu(2).await {
        answered_climbing_and_restarted(city).await;
    }
}

async fn answered_climbing_and_restarted(city: City) {
    // SAFETY of the test: these variables are read only by these tests'
    // runs, and both set the same values.
    unsafe {
        std::env::set_var("YUJING_TEST_TOKEN_GRID_G0", "token-g0");
        std::env::set_var("YUJING_TEST_TOKEN_CITY", "token-city");
    }
    let (city, config) = response_city(city).await;
    city.produce(&[(0, vec![100.0, 100.0]), (1, vec![100.0, 100.0])])
        .await;
    let (result, metrics) = run_while(config.clone(), async {
        // Both raised: s000's with grid-g0, s001's with grid-g1.
        let mut mine = Vec::new();
        wait_until("grid-g0's warning", async || {
            let (_, list) = api(&city, "GET", "/api/v1/warnings", Some("token-g0"), "").await;
            mine = list["warnings"].as_array().cloned().unwrap_or_default();
            !mine.is_empty()
        })
        .await;
        assert_eq!(mine.len(), 1, "grid-g0 sees only its own: {mine:#?}");
        let id = mine[0]["warning_id"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/warnings/{id}");
        let ack = r#"{"action":"acknowledge","note":"on my way"}"#;
        assert_eq!(api(&city, "POST", &path, None, ack).await.0, 401);
        assert_eq!(api(&city, "POST", &path, Some("wrong"), ack).await.0, 401);
        let (status, body) = api(&city, "POST", &path, Some("token-g0"), ack).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["change"], "acknowledged");
        assert_eq!(
            api(&city, "POST", &path, Some("token-g0"), ack).await.0,
            409
        );
        assert_eq!(
            api(
                &city,
                "POST",
                &path,
                Some("token-g0"),
                "{\"action\":\"fly\"}"
            )
            .await
            .0,
            422
        );
        assert_eq!(
            api(
                &city,
                "POST",
                "/api/v1/warnings/nope",
                Some("token-g0"),
                ack
            )
            .await
            .0,
            404
        );
        // The other warning is not grid-g0's.
        let (_, all) = api(&city, "GET", "/api/v1/warnings", Some("token-city"), "").await;
        let other = all["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["warning_id"] != id.as_str())
            .unwrap()["warning_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, _) = api(
            &city,
            "POST",
            &format!("/api/v1/warnings/{other}"),
            Some("token-g0"),
            ack,
        )
        .await;
        assert_eq!(status, 403);
        // Nobody answers the other: it climbs, 2 s a rung, to the city.
        wait_until("the ignored warning to reach the city", async || {
            let (_, all) = api(&city, "GET", "/api/v1/warnings", Some("token-city"), "").await;
            all["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["warning_id"] == other.as_str() && w["assignee"] == "city")
        })
        .await;
        crate::support::scrape(city.metrics_port()).await
    })
    .await;
    result.expect("stops cleanly");
    let m = |name: &str, labels: &[(&str, &str)]| crate::support::sample(&metrics, name, labels);
    assert_eq!(
        m("yujing_response_changes_total", &[("change", "assigned")]),
        2.0
    );
    assert_eq!(
        m("yujing_response_changes_total", &[("change", "escalated")]),
        3.0
    );
    assert_eq!(
        m(
            "yujing_response_refused_total",
            &[("reason", "unauthenticated")]
        ),
        2.0
    );
    assert_eq!(
        m("yujing_response_refused_total", &[("reason", "forbidden")]),
        1.0
    );
    assert_eq!(
        m(
            "yujing_response_refused_total",
            &[("reason", "impossible_transition")]
        ),
        1.0
    );
    assert_eq!(
        m(
            "yujing_response_seconds_count",
            &[("step", "acknowledge"), ("level", "grid")]
        ),
        1.0
    );
    // Who missed: grid-g1, then the street and the district, once each.
    for unit in ["grid-g1", "street-st", "jiangbei"] {
        assert_eq!(
            m("yujing_response_missed_deadlines_total", &[("unit", unit)]),
            1.0,
            "{unit}"
        );
    }
    assert_eq!(
        m(
            "yujing_response_missed_deadlines_total",
            &[("unit", "grid-g0")]
        ),
        0.0
    );
    // Both still open: one acknowledged at a grid, one at the city.
    assert_eq!(
        m(
            "yujing_response_open_warnings",
            &[("level", "grid"), ("state", "acknowledged")]
        ),
        1.0
    );
    assert_eq!(
        m(
            "yujing_response_open_warnings",
            &[("level", "city"), ("state", "assigned")]
        ),
        1.0
    );

    let published = responses(&city, 7);
    let trail: Vec<(String, String, String)> = published
        .iter()
        .map(|m| {
            (
                m["change"].as_str().unwrap().to_owned(),
                m["assignee"].as_str().unwrap().to_owned(),
                m["missed_by"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    for want in [
        s("assigned", "grid-g0", "-"),
        s("acknowledged", "grid-g0", "-"),
        s("assigned", "grid-g1", "-"),
        s("escalated", "street-st", "grid-g1"),
        s("escalated", "jiangbei", "street-st"),
        s("escalated", "city", "jiangbei"),
    ] {
        assert!(trail.contains(&want), "{want:?} missing from {trail:#?}");
    }
    assert!(
        !trail.contains(&s("escalated", "street-st", "grid-g0")),
        "acknowledged in time: no escalation"
    );
    for m in &published {
        assert_eq!(m["schema"], "yujing.response/v1");
        assert!(m["at"].as_str().unwrap().ends_with("+08:00"), "{m}");
    }

    // A restart takes the book up: the city still holds the ignored one.
    let (result, held) = run_while(config, async {
        let (_, all) = api(&city, "GET", "/api/v1/warnings", Some("token-city"), "").await;
        all["warnings"].as_array().unwrap().clone()
    })
    .await;
    result.expect("stops cleanly");
    assert_eq!(held.len(), 2, "{held:#?}");
    assert!(
        held.iter()
            .any(|w| w["assignee"] == "city" && w["escalations"] == 3)
    );
    assert!(
        held.iter()
            .any(|w| w["assignee"] == "grid-g0" && w["state"] == "acknowledged")
    );
}

/// The responsibility file is reloaded with the rules: a broken one is
/// refused with `file:line:column` and the running units keep answering;
/// a good one is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_responsibility_file_is_refused_on_reload_and_the_running_units_stay() {
    // SAFETY of the test: these variables are read only by these tests'
    // runs, and all set the same values.
    unsafe {
        std::env::set_var("YUJING_TEST_TOKEN_GRID_G0", "token-g0");
        std::env::set_var("YUJING_TEST_TOKEN_CITY", "token-city");
        std::env::set_var("YUJING_TEST_RELOAD_TOKEN_UNITS", "reload-units");
    }
    let city = City::new(2);
    city.create_topics(&[("responses", 1)]).await;
    let units = city.dir.path().join("units.yaml");
    std::fs::write(&units, UNITS).unwrap();
    let config = city.config_with(
        "response: { units: units.yaml, topic: responses }\nreload: { watch: false, http_token_env: YUJING_TEST_RELOAD_TOKEN_UNITS }",
        "  - kind: kafka\n    topic: alerts\n",
    );
    city.produce(&[(0, vec![100.0, 100.0]), (1, vec![100.0, 100.0])])
        .await;
    let reload = async || {
        let resp = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/-/reload", city.metrics_port()))
            .header("authorization", "Bearer reload-units")
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    };
    let (result, ()) = run_while(config, async {
        wait_until("both warnings assigned", async || {
            let (_, all) = api(&city, "GET", "/api/v1/warnings", Some("token-city"), "").await;
            all["warnings"].as_array().is_some_and(|w| w.len() == 2)
        })
        .await;
        let success = async || {
            crate::support::sample(
                &crate::support::scrape(city.metrics_port()).await,
                "yujing_units_last_reload_success",
                &[],
            )
        };
        // A grid team on an area the registry does not know (line 4).
        std::fs::write(
            &units,
            "units:\n  - id: grid-g0\n    level: grid\n    areas: [nowhere]\n    token_env: YUJING_TEST_TOKEN_GRID_G0\n  - { id: city, level: city, token_env: YUJING_TEST_TOKEN_CITY }\n",
        )
        .unwrap();
        let (status, body) = reload().await;
        assert!(status >= 400, "{status} {body}");
        assert!(body.contains("units.yaml:4:"), "{body}");
        assert!(body.contains("running units stay"), "{body}");
        assert_eq!(success().await, 0.0);
        // The running units still answer: grid-g0 still holds its warning.
        let (_, mine) = api(&city, "GET", "/api/v1/warnings", Some("token-g0"), "").await;
        assert_eq!(mine["warnings"].as_array().unwrap().len(), 1, "{mine}");

        std::fs::write(&units, UNITS).unwrap();
        let (status, body) = reload().await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("5 units"), "{body}");
        assert_eq!(success().await, 1.0);
    })
    .await;
    result.expect("stops cleanly");
}

/// Each unit is reached through its route: the alert of a new warning
/// carries its assignee's route labels, and when nobody answers, the
/// warning's alert goes again, with the next unit's labels, to the sinks
/// routed to that unit (and only to them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warning_that_climbs_reaches_the_next_unit_through_its_route() {
    let (grid, street) = (
        crate::support::Receiver::default(),
        crate::support::Receiver::default(),
    );
    let (grid_url, street_url) = (grid.start().await, street.start().await);
    let city = City::new(2);
    city.create_topics(&[("responses", 1)]).await;
    std::fs::write(
        city.dir.path().join("units.yaml"),
        "\
units:
  - { id: grid-g0, level: grid, areas: [g0], route: { unit: grid-g0 } }
  - { id: grid-g1, level: grid, areas: [g1], route: { unit: grid-g1 } }
  - { id: street-st, level: street, areas: [st], route: { unit: street-st } }
  - { id: city, level: city }
deadlines:
  blue: { acknowledge: 2s }
",
    )
    .unwrap();
    let config = city.config_with(
        "response: { units: units.yaml, topic: responses }",
        &format!(
            "  - kind: kafka\n    topic: alerts\n  - kind: webhook\n    url: \"{grid_url}\"\n    route: {{ labels: {{ unit: grid-g1 }} }}\n  - kind: webhook\n    url: \"{street_url}\"\n    route: {{ labels: {{ unit: street-st }} }}\n"
        ),
    );
    city.produce(&[(0, vec![100.0, 100.0]), (1, vec![100.0, 100.0])])
        .await;
    let (result, ()) = run_while(config, async {
        crate::support::wait_for("both warnings at the street office", || {
            street.accepted().len() >= 2
        })
        .await;
    })
    .await;
    result.expect("stops cleanly");
    // The alert topic: each raise once, labelled with its grid team.
    let alerts = city.alerts_within(3, Duration::from_secs(3)).await;
    let mut units: Vec<&str> = alerts
        .iter()
        .map(|a| a["labels"]["unit"].as_str().unwrap())
        .collect();
    units.sort_unstable();
    assert_eq!(units, ["grid-g0", "grid-g1"], "{alerts:#?}");
    // grid-g1's webhook had its raise; the street's both, re-labelled.
    let g = grid.accepted();
    assert_eq!(g.len(), 1, "{g:#?}");
    assert_eq!(g[0]["group"]["key"], "s001");
    let s = street.accepted();
    assert_eq!(s.len(), 2, "{s:#?}");
    assert!(s.iter().all(|a| a["labels"]["unit"] == "street-st"));
    assert!(s.iter().all(|a| a["transition"] == "raised"));
}
