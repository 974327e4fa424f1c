//! Responders' commands on the feedback topic through `yujing run`: good
//! ones are applied, every kind of bad one is refused, dead-lettered with
//! its original bytes and reason, and changes nothing; the verdicts then
//! come back out through `yujing feedback export` as labels that `yujing
//! backtest --events` scores each rule against.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use yujing::feedback_export::{self, FeedbackCommand};

use crate::support::kafka::Record;
use crate::support::{City, T0, read_topic, run_while, scrape, wait_until};

const UNITS: &str = "\
units:
  - { id: grid-g0, level: grid, areas: [g0] }
  - { id: grid-g1, level: grid, areas: [g1] }
  - { id: street-st, level: street, areas: [st] }
  - { id: city, level: city }
";

fn messages(city: &City, topic: &str, n: usize) -> Vec<Record> {
    read_topic(city.bootstrap(), topic, n, Duration::from_secs(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_is_applied_or_dead_lettered_and_verdicts_score_the_rules_in_a_backtest() {
    let city = City::new(2);
    city.create_topics(&[("responses", 1), ("feedback", 1), ("cap", 1)])
        .await;
    std::fs::write(city.dir.path().join("units.yaml"), UNITS).unwrap();
    let config = city.config_with(
        "state_dir: state\nresponse: { units: units.yaml, topic: responses, feedback_topic: feedback, feedback_grace: 1s }",
        "  - kind: kafka\n    topic: alerts\n  - kind: kafka\n    topic: cap\n    format: cap\n    cap: { sender: yujing@eeb.test }\n",
    );
    city.produce(&[(0, vec![100.0, 100.0]), (1, vec![100.0, 100.0])])
        .await;
    let producer: FutureProducer = city.client().create().unwrap();
    let send = async |key: &str, body: &str| {
        producer
            .send(
                FutureRecord::to("feedback").key(key).payload(body),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    };
    let (result, (g0, sent, metrics)) = run_while(config.clone(), async {
        crate::support::wait_for_metric(
            city.metrics_port(),
            "yujing_response_changes_total",
            &[("change", "assigned")],
            2.0,
        )
        .await;
        // (Read off the pipeline's task: it runs beside this future.)
        let bootstrap = city.bootstrap().to_owned();
        let assigned = tokio::task::spawn_blocking(move || {
            read_topic(&bootstrap, "responses", 2, Duration::from_secs(20))
        })
        .await
        .unwrap();
        let g0 = assigned
            .iter()
            .map(|r| serde_json::from_slice::<Value>(&r.payload).unwrap())
            .find(|m| m["assignee"] == "grid-g0")
            .unwrap()["warning_id"]
            .as_str()
            .unwrap()
            .to_owned();
        // (key, body, the reason it is refused, or none: applied)
        let sent: Vec<(String, String, Option<&str>)> = vec![
            (g0.clone(), "not json".into(), Some("malformed")),
            (
                g0.clone(),
                r#"{"unit":"grid-g1","action":"acknowledge"}"#.into(),
                Some("forbidden"),
            ),
            (
                g0.clone(),
                r#"{"unit":"nobody","action":"acknowledge"}"#.into(),
                Some("unauthenticated"),
            ),
            (
                g0.clone(),
                r#"{"unit":"grid-g0","action":"dispatch","to":"team 2"}"#.into(),
                Some("impossible_transition"),
            ),
            (
                g0.clone(),
                r#"{"unit":"grid-g0","action":"acknowledge","note":"via kafka"}"#.into(),
                None,
            ),
            (
                g0.clone(),
                r#"{"unit":"grid-g0","action":"acknowledge"}"#.into(),
                Some("impossible_transition"),
            ),
            (
                g0.clone(),
                r#"{"unit":"grid-g0","action":"handled","outcome":"false_alarm","note":"road dust"}"#.into(),
                None,
            ),
            (
                g0.clone(),
                r#"{"unit":"grid-g0","action":"on_site"}"#.into(),
                Some("impossible_transition"),
            ),
            (
                "no-such-warning".into(),
                r#"{"unit":"grid-g0","action":"acknowledge"}"#.into(),
                Some("unknown_warning"),
            ),
        ];
        for (key, body, _) in &sent {
            send(key, body).await;
        }
        let refused = sent.iter().filter(|s| s.2.is_some()).count() as f64;
        wait_until("every bad command refused", async || {
            crate::support::sample(
                &scrape(city.metrics_port()).await,
                "yujing_response_refused_total",
                &[],
            ) >= refused
        })
        .await;
        (g0, sent, scrape(city.metrics_port()).await)
    })
    .await;
    result.expect("stops cleanly");

    // Refused: each on the dead-letter topic, as sent, with the reason.
    let refused: Vec<_> = sent.iter().filter(|s| s.2.is_some()).collect();
    let dead = messages(&city, "dead-letter", refused.len());
    assert_eq!(dead.len(), refused.len());
    let mut got: Vec<(String, String)> = dead
        .iter()
        .map(|r| {
            assert_eq!(r.headers["yujing.source.topic"], "feedback");
            assert!(!r.headers["yujing.error"].is_empty());
            (
                String::from_utf8(r.payload.clone()).unwrap(),
                r.headers["yujing.reason"].clone(),
            )
        })
        .collect();
    let mut want: Vec<(String, String)> = refused
        .iter()
        .map(|(_, body, reason)| (body.clone(), reason.unwrap().to_owned()))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let m = |name: &str, labels: &[(&str, &str)]| crate::support::sample(&metrics, name, labels);
    for (reason, n) in [
        ("malformed", 1.0),
        ("forbidden", 1.0),
        ("unauthenticated", 1.0),
        ("impossible_transition", 3.0),
        ("unknown_warning", 1.0),
    ] {
        assert_eq!(
            m("yujing_response_refused_total", &[("reason", reason)]),
            n,
            "{reason}"
        );
    }
    for (outcome, n) in [("applied", 2.0), ("refused", refused.len() as f64)] {
        assert_eq!(
            m(
                "yujing_response_commands_total",
                &[("source", "kafka"), ("outcome", outcome)]
            ),
            n,
            "{outcome}"
        );
    }
    assert_eq!(
        m(
            "yujing_response_commands_total",
            &[("source", "kafka"), ("action", "unread")]
        ),
        1.0,
        "the one that is not JSON"
    );
    assert_eq!(
        m(
            "yujing_response_verdicts_total",
            &[("rule", "pm25-1m"), ("outcome", "false_alarm")]
        ),
        1.0
    );
    assert_eq!(
        m(
            "yujing_response_verdicts_total",
            &[("rule", "pm25-1m"), ("outcome", "confirmed")]
        ),
        0.0,
        "started at 0, so a first verdict shows in increase()"
    );

    // Applied: only the two good commands changed grid-g0's warning.
    let trail: Vec<Value> = messages(&city, "responses", 10)
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .filter(|m: &Value| m["warning_id"] == g0.as_str())
        .collect();
    let changes: Vec<&str> = trail
        .iter()
        .map(|m| m["change"].as_str().unwrap())
        .collect();
    assert_eq!(changes, ["assigned", "acknowledged", "handled"]);
    assert_eq!(trail[1]["actor"], "grid-g0");
    assert_eq!(trail[1]["note"], "via kafka");
    assert_eq!(trail[2]["outcome"], "false_alarm");
    assert_eq!(trail[2]["group"]["key"], "s000");

    // CAP subscribers get each response change as a restricted Update of
    // the warning: 2 raised, then 4 response changes (2 assigned, the
    // acknowledgement and the verdict).
    let cap: Vec<String> = messages(&city, "cap", 6)
        .iter()
        .map(|r| String::from_utf8(r.payload.clone()).unwrap())
        .collect();
    assert_eq!(cap.len(), 6);
    let acknowledged = cap
        .iter()
        .find(|d| d.contains("<note>acknowledged by grid-g0"))
        .expect("the acknowledgement as CAP");
    assert!(acknowledged.contains("<msgType>Update</msgType>"));
    assert!(acknowledged.contains("<scope>Restricted</scope>"));
    assert!(
        acknowledged.contains("<note>acknowledged by grid-g0; held by grid-g0: via kafka</note>")
    );
    assert!(acknowledged.contains("<references>yujing@eeb.test,"));
    assert!(cap.iter().any(|d| d.contains("outcome false_alarm")));

    // Out as labels, into a backtest of the same readings.
    let out = city.dir.path().join("verdicts.csv");
    let n = tokio::task::spawn_blocking({
        let (config, out) = (config.clone(), out.clone());
        move || {
            feedback_export::run(&FeedbackCommand::Export {
                config,
                out,
                timeout: Duration::from_secs(30),
            })
        }
    })
    .await
    .unwrap()
    .expect("export");
    assert_eq!(n, 1, "one verdict: grid-g1's warning was never handled");
    let csv = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "series,start,end,outcome,rule,warning_id,by");
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(
        rows[1].starts_with("s000,")
            && rows[1].ends_with(&format!(",false_alarm,pm25-1m,{g0},grid-g0")),
        "{csv}"
    );

    let history = city.dir.path().join("history.jsonl");
    let mut lines = String::new();
    for minute in 0..2 {
        for s in 0..2 {
            let ts = T0 + minute * 60_000 + 1_000;
            lines.push_str(&format!(
                "{{\"sensor_id\":\"s{s:03}\",\"ts\":{ts},\"metric\":\"pm25\",\"value\":100}}\n"
            ));
        }
    }
    std::fs::write(&history, lines).unwrap();
    let report = city.dir.path().join("backtest");
    let mut o =
        crate::backtest::options(vec![history], city.dir.path().join("rules.yaml"), &report);
    // As `yujing run` was configured (the city's config).
    o.pipeline = serde_yaml_ng::from_str("max_age: \"off\"\nallowed_delay: 0s").unwrap();
    o.sensors = Some(city.dir.path().join("sensors.csv"));
    o.events = Some(out);
    let summary = yujing::backtest::backtest(&o).await.unwrap();
    let v = &summary.rules.verdicts["pm25-1m"];
    assert_eq!(
        (v.confirmed, v.false_alarms, v.unjudged, v.precision),
        (0, 1, 1, Some(0.0)),
        "s000's warning is the responder's false alarm; s001's was never judged"
    );
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("## Against responders' verdicts"), "{md}");
}
