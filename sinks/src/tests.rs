//! Alert message and terminal line, built from real warning transitions.

use yujing_ingest::{AreaLevel, Sensor, SensorRegistry};
use yujing_rules::{Aggregate, Direction, Grade, Rule, WarningBook, WindowAggregate};

use crate::alert::{AlertMessage, TimeFormat, fmt_value};
use crate::terminal::line;

/// 2026-07-15T09:00:00+08:00
const T9: i64 = 1_784_077_200_000;
const HOUR: i64 = 3_600_000;

fn registry() -> SensorRegistry {
    let s = |id: &str, lat: f64| Sensor {
        sensor_id: id.into(),
        kind: "air".into(),
        district: "Yubei".into(),
        district_code: "500112".into(),
        street: "Longxi".into(),
        grid: "cq-yb-g01".into(),
        lat,
        lon: 106.5,
        names: [
            ("district@zh-CN", "渝北区"),
            ("street@zh-CN", "龙溪街道"),
            ("grid@zh-CN", "龙溪1号网格"),
            ("street@en", "Longxi Street"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    };
    SensorRegistry::new(vec![s("a", 29.60), s("b", 29.62)]).unwrap()
}

fn rule() -> Rule {
    let mut r = Rule::threshold_rule(
        "pm25-1h",
        "pm25",
        yujing_rules::WindowSpec::tumbling(HOUR),
        Aggregate::Avg,
        AreaLevel::Grid,
        Direction::Above,
        &[(Grade::Blue, 75.0), (Grade::Orange, 150.0)],
    );
    r.description = "PM2.5 hourly mean".into();
    r.unit = "ug/m3".into();
    r
}

pub(crate) fn rule_for_texts() -> Rule {
    rule()
}

pub(crate) fn messages(values: &[Option<f64>]) -> Vec<AlertMessage> {
    messages_of(&rule(), values)
}

pub(crate) fn messages_of(rule: &Rule, values: &[Option<f64>]) -> Vec<AlertMessage> {
    let mut book = WarningBook::new();
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let end = T9 + i as i64 * HOUR;
        let aggs: Vec<WindowAggregate> = v
            .iter()
            .map(|value| WindowAggregate {
                rule_id: "pm25-1h".into(),
                group_key: "cq-yb-g01".into(),
                window_start_ms: end - HOUR,
                window_end_ms: end,
                value: *value,
                readings: 120,
                sensors: 2,
                trend: rule.predict_horizon_ms.map(|_| yujing_rules::Trend {
                    now: value - 30.0,
                    per_hour: 60.0,
                }),
                agreeing: Vec::new(),
                primary_pollutant: None,
                deviation: None,
            })
            .collect();
        for t in book.apply(rule, end - HOUR, end, &aggs) {
            out.push(
                AlertMessage::new(&t, &registry(), TimeFormat::new(8 * HOUR), end + 1_500)
                    .with_texts(&t, &registry(), &yujing_rules::Languages::builtin()),
            );
        }
    }
    out
}

#[test]
fn raised_message_carries_area_grade_and_times() {
    let m = &messages(&[Some(162.34)])[0];
    assert_eq!(m.schema, "yujing.alert/v1");
    assert_eq!(m.transition, "raised");
    assert_eq!(
        (
            m.grade.as_deref(),
            m.level.as_deref(),
            m.severity.as_deref()
        ),
        (Some("orange"), Some("II"), Some("Severe"))
    );
    assert_eq!(m.threshold, Some(150.0));
    assert_eq!(m.window.start, "2026-07-15T08:00:00+08:00");
    assert_eq!(m.window.end, "2026-07-15T09:00:00+08:00");
    assert_eq!(m.event_time, m.window.end);
    assert_eq!(m.emitted_at, "2026-07-15T09:00:01.500+08:00");
    assert_eq!(m.group.district_code.as_deref(), Some("500112"));
    assert_eq!(m.group.street.as_deref(), Some("Longxi"));
    assert!((m.group.lat.unwrap() - 29.61).abs() < 1e-9);
    assert_eq!(m.rule.window_seconds, 3600);
    assert_eq!(
        m.summary,
        "PM2.5 hourly mean in grid cq-yb-g01 (Yubei) raised: orange II warning, 162.3 ug/m3 > 150 ug/m3"
    );
    // Round-trips through JSON unchanged: the contract subscribers parse.
    let json = serde_json::to_string(m).unwrap();
    assert_eq!(&serde_json::from_str::<AlertMessage>(&json).unwrap(), m);
}

#[test]
fn resolved_for_lack_of_data_says_so() {
    // One missing window is tolerated; the second resolves.
    let ms = messages(&[Some(80.0), None, None]);
    assert_eq!(ms.len(), 2);
    let r = &ms[1];
    assert_eq!(r.transition, "resolved");
    assert_eq!((r.grade.as_deref(), r.level.as_deref()), (None, None));
    assert_eq!(r.previous_grade.as_deref(), Some("blue"));
    assert_eq!(r.resolve_reason.as_deref(), Some("no_data"));
    assert_eq!(r.value, None);
    assert_eq!(r.sequence, 2);
    assert!(r.summary.contains("no readings"), "{}", r.summary);
}

#[test]
fn terminal_line_is_readable() {
    let ms = messages(&[Some(162.34), Some(40.0)]);
    assert_eq!(
        line(&ms[0], false),
        "2026-07-15 09:00 +08:00  ORANGE II   raised        pm25-1h  grid cq-yb-g01 (Yubei)  avg pm25 162.3 > 150 ug/m3  [08:00–09:00]"
    );
    assert!(
        line(&ms[1], false).contains("CLEAR       resolved      pm25-1h"),
        "{}",
        line(&ms[1], false)
    );
    assert!(line(&ms[1], false).contains("40 ug/m3, was orange"));
    let coloured = line(&ms[0], true);
    assert!(coloured.contains("\x1b[") && coloured.contains("\x1b[0m"));
}

#[test]
fn values_never_print_equal_to_the_threshold_they_cross() {
    assert_eq!(fmt_value(75.04, Some(75.0)), "75.04");
    assert_eq!(fmt_value(150.0001, Some(150.0)), "150.0001");
    assert_eq!(fmt_value(87.44, Some(75.0)), "87.4");
    assert_eq!(fmt_value(80.0, Some(75.0)), "80");
}

#[test]
fn labels_and_annotations_are_expanded() {
    let mut r = rule();
    r.labels
        .insert("team".into(), "air-{{ group.district }}".into());
    r.annotations.insert(
        "summary".into(),
        "PM2.5 {{ value }} {{ unit }} over {{ threshold }} in {{ group }}".into(),
    );
    r.annotations
        .insert("runbook".into(), "see {{ rule }}; {{ crossing }}".into());
    let m = &messages_of(&r, &[Some(162.34)])[0];
    assert_eq!(m.labels["team"], "air-Yubei");
    assert_eq!(m.summary, "PM2.5 162.3 ug/m3 over 150 in cq-yb-g01");
    assert_eq!(m.annotations["summary"], m.summary);
    assert_eq!(
        m.annotations["runbook"], "see pm25-1h; ",
        "no crossing: empty"
    );
}

#[test]
fn predicted_warning_reports_trend_and_crossing() {
    let mut r = rule();
    r.predict_horizon_ms = Some(HOUR);
    // Predicted 160 in an hour; the line is at 130 now, rising 60 per hour:
    // it crosses orange (150) 20 minutes after the window's end.
    let m = &messages_of(&r, &[Some(160.0)])[0];
    let trend = m.trend.as_ref().unwrap();
    assert_eq!(
        (trend.value_now, trend.per_hour, trend.horizon_seconds),
        (130.0, 60.0, 3600)
    );
    assert_eq!(
        trend.expected_crossing_at.as_deref(),
        Some("2026-07-15T09:20:00+08:00")
    );
    assert!(
        m.summary
            .ends_with("160 ug/m3 predicted in 1h > 150 ug/m3, crossing at 09:20"),
        "{}",
        m.summary
    );
}

/// Validate a document against the official CAP 1.2 schema with xmllint
/// (Debian's libxml2-utils; `.ci/run` installs it).
fn assert_valid_cap(xml: &str) {
    use std::io::Write;
    let xsd = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/CAP-v1.2.xsd");
    let mut child = match std::process::Command::new("xmllint")
        .args(["--noout", "--schema", xsd, "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("xmllint not found ({e}): install libxml2-utils to validate CAP output"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(xml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "CAP document does not validate:\n{}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cap_documents_follow_the_warning_and_validate() {
    use crate::cap::{CapSender, cap_xml};
    let from = CapSender {
        sender: "yujing@eeb.cq.example".into(),
        name: "Chongqing environmental early warning".into(),
        names: [("zh-CN".to_owned(), "重庆市生态环境预警".to_owned())].into(),
        languages: vec!["zh-CN".into(), "en-US".into()],
        issuer_code: "12345600".into(),
        ..CapSender::default()
    };
    // Raised blue, escalated orange, resolved.
    let ms = messages(&[Some(100.0), Some(162.0), Some(40.0)]);
    assert_eq!(ms.len(), 3);
    let docs: Vec<String> = ms.iter().map(|m| cap_xml(m, &from)).collect();
    for d in &docs {
        assert_valid_cap(d);
    }
    assert!(docs[0].contains("<msgType>Alert</msgType>"));
    assert!(docs[0].contains("<severity>Minor</severity>"));
    assert!(docs[0].contains("<urgency>Immediate</urgency>"));
    assert!(docs[0].contains("<certainty>Observed</certainty>"));
    assert!(docs[0].contains("<sent>2026-07-15T09:00:00+08:00</sent>"));
    assert!(docs[0].contains("<value>500112</value>"), "division code");
    assert!(!docs[0].contains("<references>"));
    assert!(docs[1].contains("<msgType>Update</msgType>"));
    assert!(docs[1].contains("<severity>Severe</severity>"));
    assert!(docs[2].contains("<msgType>Cancel</msgType>"));
    assert!(docs[2].contains("<responseType>AllClear</responseType>"));
    // Updates and the cancel point at the first message and at the one
    // they follow.
    let id_of = |d: &str| {
        d.split("<identifier>")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap()
            .to_owned()
    };
    let first_id = id_of(&docs[0]);
    let second_id = id_of(&docs[1]);
    assert!(
        docs[1].contains(&format!(
            "<references>yujing@eeb.cq.example,{first_id},2026-07-15T09:00:00+08:00</references>"
        )),
        "{}",
        docs[1]
    );
    assert!(
        docs[2].contains(&format!(
            "<references>yujing@eeb.cq.example,{first_id},2026-07-15T09:00:00+08:00 \
             yujing@eeb.cq.example,{second_id},2026-07-15T10:00:00+08:00</references>"
        )),
        "{}",
        docs[2]
    );
    // One <info> per language, Chinese first, each in its language.
    for d in &docs {
        let zh = d.find("<language>zh-CN</language>").expect("zh-CN info");
        let en = d.find("<language>en-US</language>").expect("en-US info");
        assert!(zh < en, "{d}");
        assert_eq!(d.matches("<info>").count(), 2);
    }
    assert!(docs[0].contains("<senderName>重庆市生态环境预警</senderName>"));
    assert!(docs[0].contains("<senderName>Chongqing environmental early warning</senderName>"));
    assert!(
        docs[0].contains("<areaDesc>渝北区龙溪街道龙溪1号网格</areaDesc>"),
        "{}",
        docs[0]
    );
    assert!(
        docs[0].contains("<areaDesc>grid cq-yb-g01, Longxi Street, Yubei</areaDesc>"),
        "{}",
        docs[0]
    );
    assert!(
        docs[1].contains(
            "<headline>渝北区龙溪街道龙溪1号网格升级PM2.5（1小时平均值）橙色预警（II级）</headline>"
        ),
        "{}",
        docs[1]
    );
    assert!(docs[1].contains("<expires>2026-07-16T10:00:00+08:00</expires>"));
    assert!(docs[2].contains("<expires>2026-07-15T12:00:00+08:00</expires>"));
    assert!(docs[1].contains("<instruction>"), "orange: what to do");
    assert!(!docs[2].contains("<instruction>"), "lifted: nothing to do");
    // Every message has its own identifier.
    let ids: std::collections::HashSet<_> = docs
        .iter()
        .map(|d| {
            d.split("<identifier>")
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 3);
    // GB/T 35965.1: division code + issuer code, Beijing time, number.
    let first_id = first_id.to_owned();
    let parts: Vec<&str> = first_id.split('_').collect();
    assert_eq!(parts.len(), 3, "{first_id}");
    assert_eq!(parts[0], "50011212345600");
    assert_eq!(parts[1], "20260715090000");
    assert!(
        parts[2].len() == 13 && parts[2].ends_with('1'),
        "{first_id}"
    );
    assert!(parts[2].bytes().all(|b| b.is_ascii_digit()));

    // A forecast: expected, likely, with the onset.
    let mut r = rule();
    r.predict_horizon_ms = Some(HOUR);
    let m = &messages_of(&r, &[Some(160.0)])[0];
    let d = cap_xml(m, &from);
    assert_valid_cap(&d);
    assert!(
        d.contains("<urgency>Expected</urgency>") && d.contains("<certainty>Likely</certainty>")
    );
    assert!(
        d.contains("<onset>2026-07-15T09:20:00+08:00</onset>"),
        "{d}"
    );
    // Text is escaped.
    let mut r = rule();
    r.description = "PM2.5 <hourly> & \"mean\"".into();
    let d = cap_xml(&messages_of(&r, &[Some(162.0)])[0], &from);
    assert_valid_cap(&d);
    assert!(d.contains("PM2.5 &lt;hourly&gt; &amp; &quot;mean&quot;"));
}

#[test]
fn a_response_change_is_a_restricted_cap_update_of_the_warning() {
    use crate::cap::{CapSender, ResponseNote, cap_xml, response_update_xml};
    let from = CapSender {
        sender: "yujing@eeb.cq.example".into(),
        issuer_code: "12345600".into(),
        ..CapSender::default()
    };
    let raised = &messages(&[Some(100.0)])[0];
    let first = cap_xml(raised, &from);
    let first_id = first
        .split("<identifier>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap();
    let note = ResponseNote {
        change: "handled",
        sequence: 3,
        at: "2026-07-15T09:12:30+08:00",
        actor: "grid-g01",
        assignee: "grid-g01",
        outcome: Some("false_alarm"),
        note: Some("dust from <road> works"),
    };
    let d = response_update_xml(raised, &note, &from);
    assert_valid_cap(&d);
    assert!(d.contains("<msgType>Update</msgType>"), "{d}");
    assert!(d.contains("<scope>Restricted</scope>"), "{d}");
    assert!(d.contains("<sent>2026-07-15T09:12:30+08:00</sent>"), "{d}");
    assert!(
        d.contains(&format!(
            "<references>yujing@eeb.cq.example,{first_id},2026-07-15T09:00:00+08:00</references>"
        )),
        "{d}"
    );
    assert!(
        d.contains("<note>handled by grid-g01; held by grid-g01; outcome false_alarm: dust from &lt;road&gt; works</note>"),
        "{d}"
    );
    assert!(d.contains("<valueName>response_outcome</valueName>"), "{d}");
    // The warning's info is kept: its severity and area.
    assert!(d.contains("<severity>Minor</severity>") && d.contains("<value>500112</value>"));
    // Its own identifier, apart from the warning's messages 1, 2, 3…
    let id = d
        .split("<identifier>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap();
    assert_ne!(id, first_id);
    let second = response_update_xml(
        raised,
        &ResponseNote {
            sequence: 4,
            ..note
        },
        &from,
    );
    assert_ne!(
        second
            .split("<identifier>")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap(),
        id
    );
}

#[test]
fn routes_pick_warnings_by_grade_area_rule_and_label() {
    use crate::route::{Route, topic_for};
    let mut r = rule();
    r.labels.insert("team".into(), "air".into());
    // blue raised, orange escalated, blue de-escalated, resolved.
    let ms = messages_of(&r, &[Some(100.0), Some(162.0), Some(90.0), Some(40.0)]);
    let taken = |route: &Route| -> Vec<String> {
        ms.iter()
            .filter(|m| route.matches(m))
            .map(|m| m.transition.clone())
            .collect()
    };
    let orange = Route {
        min_grade: Some(yujing_rules::Grade::Orange),
        ..Route::default()
    };
    // The orange sink hears the escalation and the step back down, not
    // the blue raise or the blue resolution.
    assert_eq!(taken(&orange), ["escalated", "de-escalated"]);
    let yubei = Route {
        districts: vec!["500112".into()],
        labels: [("team".to_owned(), "air".to_owned())].into(),
        ..Route::default()
    };
    assert_eq!(taken(&yubei).len(), 4);
    let elsewhere = Route {
        districts: vec!["Yuzhong".into()],
        ..Route::default()
    };
    assert!(taken(&elsewhere).is_empty());
    let other_rule = Route {
        rules: vec!["no2-1h".into()],
        ..Route::default()
    };
    assert!(taken(&other_rule).is_empty());
    let purple = serde_json::from_str::<Route>(r#"{"min_grade": "purple"}"#).unwrap_err();
    assert!(purple.to_string().contains("not a grade"), "{purple}");
    assert_eq!(topic_for("alerts.{grade}", &ms[1]), "alerts.orange");
    assert_eq!(
        topic_for("alerts.{grade}", &ms[3]),
        "alerts.blue",
        "a resolution goes where its grade went"
    );
    assert_eq!(
        topic_for("alerts.district.{district_code}", &ms[0]),
        "alerts.district.500112"
    );
}

/// A few alert messages for other modules' tests.
pub(crate) fn sample_alerts() -> Vec<AlertMessage> {
    messages(&[Some(100.0), Some(162.0), Some(40.0)])
}
