//! Spool, storm control and the Alertmanager plan, on real alert messages.

use std::time::Duration;

use crate::alert::{AlertMessage, TimeFormat};
use crate::alertmanager::{AlertmanagerSettings, AlertmanagerSink};
use crate::spool::Spool;
use crate::storm::{StormGuard, StormLimits};
use crate::tests::messages;

/// 2026-07-15T12:00:00+08:00, after the test messages' event times.
const NOW: i64 = 1_784_088_000_000;

fn numbered(n: usize) -> Vec<AlertMessage> {
    let first = messages(&[Some(100.0)]).remove(0);
    (0..n)
        .map(|i| {
            let mut m = first.clone();
            m.sequence = i as u32 + 1;
            m
        })
        .collect()
}

fn seqs(spool: &Spool) -> Vec<u32> {
    spool
        .head(usize::MAX)
        .iter()
        .map(|s| s.alert.sequence)
        .collect()
}

#[test]
fn spool_keeps_order_across_reopening_and_forgets_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let alerts = numbered(5);
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    spool.append(&alerts[..2]).unwrap();
    spool.append(&alerts[2..]).unwrap();
    assert_eq!(seqs(&spool), [1, 2, 3, 4, 5]);
    let head = spool.head(2);
    spool.ack(head[1].seq).unwrap();
    assert_eq!(seqs(&spool), [3, 4, 5]);
    drop(spool);

    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(
        seqs(&spool),
        [3, 4, 5],
        "what was not acknowledged survives"
    );
    assert_eq!(spool.head(1)[0].alert, alerts[2], "byte for byte");
    spool.append(&alerts[..1]).unwrap();
    assert_eq!(
        seqs(&spool),
        [3, 4, 5, 1],
        "appended after, never reordered"
    );
    let last = spool.head(usize::MAX).last().unwrap().seq;
    spool.ack(last).unwrap();
    assert!(spool.is_empty());
    assert_eq!(spool.bytes(), 0);
    drop(spool);
    assert!(Spool::open(dir.path(), 1 << 20).unwrap().is_empty());
}

#[test]
fn a_torn_last_line_is_skipped_and_the_rest_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    spool.append(&numbered(2)).unwrap();
    drop(spool);
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("segment-"))
        .unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    std::io::Write::write_all(&mut f, b"3\t{\"schema\":\"yujing.al").unwrap();
    drop(f);
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(seqs(&spool), [1, 2]);
    // New alerts go after, readable at the next opening.
    spool.append(&numbered(1)).unwrap();
    drop(spool);
    assert_eq!(seqs(&Spool::open(dir.path(), 1 << 20).unwrap()), [1, 2, 1]);
}

#[test]
fn a_full_spool_says_so_until_alerts_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let alerts = numbered(3);
    let mut spool = Spool::open(dir.path(), 1_000).unwrap();
    assert!(spool.has_room());
    spool.append(&alerts).unwrap();
    assert!(spool.bytes() > 1_000, "one batch may pass the bound");
    assert!(!spool.has_room());
    let head = spool.head(3);
    spool.ack(head[2].seq).unwrap();
    assert!(spool.has_room());
}

/// 500 grid cells in two districts crossing at once.
fn storm_of(n: usize) -> Vec<AlertMessage> {
    let first = messages(&[Some(100.0)]).remove(0);
    assert_eq!(first.transition, "raised");
    (0..n)
        .map(|i| {
            let mut m = first.clone();
            m.group.key = format!("cq-g{i:03}");
            m.fingerprint = format!("pm25-1h/grid/cq-g{i:03}");
            m.warning_id = format!("w{i}");
            m.group.district = Some(if i % 2 == 0 { "Yubei" } else { "Jiangbei" }.into());
            m
        })
        .collect()
}

#[test]
fn storm_control_sends_the_first_warnings_then_one_summary_per_district() {
    let limits = StormLimits {
        per_rule_per_minute: Some(20),
        global_per_minute: Some(100),
    };
    let mut guard = StormGuard::new(limits);
    let storm = storm_of(500);
    let (out, held) = guard.filter(storm.clone(), NOW);
    let raised: Vec<_> = out.iter().filter(|m| m.transition == "raised").collect();
    let summaries: Vec<_> = out.iter().filter(|m| m.transition == "summary").collect();
    assert_eq!(raised.len(), 20);
    assert_eq!(summaries.len(), 2, "one per district");
    assert_eq!(held.summaries, 2);
    assert_eq!(held.by_rule["pm25-1h"], 480);
    let held_back: u64 = summaries
        .iter()
        .map(|m| m.storm.as_ref().unwrap().held_back)
        .sum();
    assert_eq!(held_back, 480);
    let yubei = summaries
        .iter()
        .find(|m| m.group.district.as_deref() == Some("Yubei"))
        .unwrap();
    assert_eq!(
        yubei.summary,
        "240 grid cells in Yubei over pm25 blue (storm control, limit 20 a minute per rule, 100 in all: held back and summarised)"
    );
    assert_eq!(yubei.storm.as_ref().unwrap().groups.len(), 50);
    assert_eq!(guard.held(), 480);

    // Within the minute, more raises are held back too.
    let (out, held) = guard.filter(storm_of(501)[500..].to_vec(), NOW + 30_000);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].transition, "summary");
    assert_eq!(held.by_rule["pm25-1h"], 1);

    // A held-back warning resolving is dropped; an announced one is sent.
    let resolve = |m: &AlertMessage| {
        let mut r = m.clone();
        r.transition = "resolved".into();
        r.previous_grade = r.grade.take();
        r
    };
    let (out, _) = guard.filter(vec![resolve(&storm[499]), resolve(&storm[0])], NOW + 31_000);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].fingerprint, storm[0].fingerprint);
    assert_eq!(guard.held(), 480);

    // A minute later the limits start over.
    let mut fresh = storm_of(600)[550..].to_vec();
    fresh.truncate(25);
    let (out, _) = guard.filter(fresh, NOW + 61_000);
    assert_eq!(out.iter().filter(|m| m.transition == "raised").count(), 20);
    assert_eq!(out.iter().filter(|m| m.transition == "summary").count(), 2);
}

#[test]
fn without_limits_nothing_is_held_back() {
    let mut guard = StormGuard::new(StormLimits::default());
    let (out, held) = guard.filter(storm_of(500), NOW);
    assert_eq!(out.len(), 500);
    assert_eq!(held.summaries, 0);
}

fn alertmanager() -> AlertmanagerSink {
    AlertmanagerSink::new(
        AlertmanagerSettings {
            url: "http://127.0.0.1:9".into(),
            timeout: Duration::from_secs(1),
            resend_every: Duration::from_secs(60),
            valid_for: Duration::from_secs(300),
            generator_url: None,
        },
        TimeFormat::new(8 * 3_600_000),
    )
    .unwrap()
}

#[test]
fn alertmanager_gets_one_alert_per_grade_and_resolves_the_old_grade() {
    // blue, orange (escalated), then resolved.
    let msgs = messages(&[Some(100.0), Some(200.0), Some(20.0)]);
    assert_eq!(
        msgs.iter()
            .map(|m| m.transition.as_str())
            .collect::<Vec<_>>(),
        ["raised", "escalated", "resolved"]
    );
    let sink = alertmanager();
    let (post, _) = sink.plan(&msgs[..1], NOW);
    assert_eq!(post.len(), 1);
    let firing = &post[0];
    assert_eq!(firing.labels["alertname"], "pm25-1h");
    assert_eq!(firing.labels["grade"], "blue");
    assert_eq!(firing.labels["severity"], "minor");
    assert_eq!(firing.labels["district"], "Yubei");
    assert_eq!(firing.labels["district_code"], "500112");
    assert_eq!(firing.labels["group"], "cq-yb-g01");
    assert_eq!(firing.starts_at, msgs[0].started_at);
    assert_eq!(
        firing.ends_at, "2026-07-15T12:05:00+08:00",
        "now + valid_for"
    );
    assert_eq!(firing.annotations["summary"], msgs[0].summary);

    let (post, changes) = sink.plan(&msgs, NOW);
    let grades: Vec<(&str, &str)> = post
        .iter()
        .map(|a| (a.labels["grade"].as_str(), a.ends_at.as_str()))
        .collect();
    assert_eq!(
        grades,
        [
            ("blue", "2026-07-15T12:05:00+08:00"),
            ("blue", msgs[1].event_time.as_str()),
            ("orange", "2026-07-15T12:05:00+08:00"),
            ("orange", msgs[2].event_time.as_str()),
        ],
        "escalating ends the blue alert; resolving ends the orange one"
    );
    assert_eq!(changes[&msgs[0].fingerprint], None, "nothing left active");
}
