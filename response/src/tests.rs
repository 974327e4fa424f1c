//! The ladder, assignment, commands and escalation on a small city, with
//! the clock passed in.

use std::path::Path;

use yujing_ingest::{AreaLevel, Sensor, SensorRegistry};
use yujing_rules::Grade;

use crate::*;

const MIN: i64 = 60_000;

fn registry() -> SensorRegistry {
    let s = |id: &str, street: &str, grid: &str| Sensor {
        sensor_id: id.into(),
        kind: "air".into(),
        district: "Yubei".into(),
        district_code: "500112".into(),
        street: street.into(),
        grid: grid.into(),
        lat: 29.6,
        lon: 106.5,
        names: Default::default(),
    };
    SensorRegistry::new(vec![
        s("a1", "Longxi", "g1"),
        s("a2", "Longxi", "g2"),
        s("a3", "Huilong", "g3"),
    ])
    .unwrap()
}

const UNITS: &str = "\
units:
  - id: grid-g1
    level: grid
    areas: [g1]
  - id: longxi-1
    level: community
    areas: [Longxi-1]
  - id: longxi
    level: street
    areas: [Longxi]
  - id: yubei
    level: district
    areas: [\"500112\"]
  - id: city
    level: city
  - id: yb-eeb
    level: department
    areas: [Yubei]
    categories: [env]
communities:
  - name: Longxi-1
    grids: [g1, g2]
deadlines:
  red: { acknowledge: 5m, on_site: 30m }
";

fn units(text: &str) -> Units {
    Units::parse(Path::new("units.yaml"), text, &registry()).unwrap()
}

fn raise(
    book: &mut ResponseBook,
    units: &Units,
    id: &str,
    grade: Grade,
    key: &str,
    at: i64,
) -> Vec<Change> {
    book.on_warning(
        &WarningEvent {
            warning_id: id,
            rule: "pm25-1h",
            category: "env",
            grade: Some(grade),
            level: AreaLevel::Sensor,
            key,
            started_ms: at,
            event_ms: at,
        },
        &registry(),
        units,
        at,
    )
}

fn command(id: &str, json: &str) -> Command {
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["warning_id"] = id.into();
    serde_json::from_value(v).unwrap()
}

#[test]
fn the_ladder_climbs_from_the_grid_with_and_without_a_community() {
    let with = units(UNITS);
    let rungs: Vec<(UnitLevel, String)> = ladder(&registry(), &with, AreaLevel::Sensor, "a1")
        .into_iter()
        .map(|r| (r.level, r.area))
        .collect();
    assert_eq!(
        rungs,
        [
            (UnitLevel::Grid, "g1".to_owned()),
            (UnitLevel::Community, "Longxi-1".to_owned()),
            (UnitLevel::Street, "Longxi".to_owned()),
            (UnitLevel::District, "Yubei".to_owned()),
            (UnitLevel::City, String::new()),
        ]
    );
    // g3 is in no community: grid → street.
    let levels: Vec<UnitLevel> = ladder(&registry(), &with, AreaLevel::Sensor, "a3")
        .into_iter()
        .map(|r| r.level)
        .collect();
    assert_eq!(
        levels,
        [
            UnitLevel::Grid,
            UnitLevel::Street,
            UnitLevel::District,
            UnitLevel::City
        ]
    );
    // A street warning starts at the street.
    assert_eq!(
        ladder(&registry(), &with, AreaLevel::Street, "Longxi")[0].level,
        UnitLevel::Street
    );
}

#[test]
fn an_answered_warning_stays_and_an_ignored_one_climbs_level_by_level() {
    let u = units(UNITS);
    let mut book = ResponseBook::default();
    let t0 = 1_000 * MIN;
    let a = raise(&mut book, &u, "w-answered", Grade::Red, "a1", t0);
    assert_eq!(
        (a[0].change.as_str(), a[0].assignee.as_str()),
        ("assigned", "grid-g1")
    );
    assert_eq!(a[0].deadline_ms, Some(t0 + 5 * MIN));
    let ack = book
        .command(
            "grid-g1",
            &command("w-answered", r#"{"action":"acknowledge"}"#),
            &u,
            t0 + 4 * MIN,
        )
        .unwrap();
    assert_eq!(
        ack.deadline_ms,
        Some(t0 + 34 * MIN),
        "on site within 30 min of the acknowledgement"
    );
    assert!(
        book.tick(&u, t0 + 10 * MIN).is_empty(),
        "acknowledged in time: no escalation"
    );

    raise(&mut book, &u, "w-ignored", Grade::Red, "a1", t0);
    let mut seen = Vec::new();
    let mut now = t0;
    for _ in 0..6 {
        now += 5 * MIN;
        for c in book.tick(&u, now) {
            if c.warning_id == "w-ignored" {
                seen.push((
                    c.assignee.clone(),
                    c.missed_by.clone().unwrap(),
                    c.deadline_ms,
                ));
            }
        }
    }
    assert_eq!(
        seen,
        [
            (
                "longxi-1".to_owned(),
                "grid-g1".to_owned(),
                Some(t0 + 10 * MIN)
            ),
            (
                "longxi".to_owned(),
                "longxi-1".to_owned(),
                Some(t0 + 15 * MIN)
            ),
            ("yubei".to_owned(), "longxi".to_owned(), Some(t0 + 20 * MIN)),
            ("city".to_owned(), "yubei".to_owned(), Some(t0 + 25 * MIN)),
            ("city".to_owned(), "city".to_owned(), None),
        ],
        "one rung per missed deadline, said once at the top"
    );
    assert_eq!(book.get("w-ignored").unwrap().escalations, 4);
}

#[test]
fn units_act_on_their_own_and_lower_warnings_and_impossible_steps_are_refused() {
    let u = units(UNITS);
    let mut book = ResponseBook::default();
    raise(&mut book, &u, "w", Grade::Blue, "a1", 0);
    let ack = command("w", r#"{"action":"acknowledge"}"#);
    let other = Units::parse(
        Path::new("u.yaml"),
        &UNITS.replace(
            "  - id: city\n",
            "  - id: grid-g3\n    level: grid\n    areas: [g3]\n  - id: city\n",
        ),
        &registry(),
    )
    .unwrap();
    assert_eq!(
        book.command("grid-g3", &ack, &other, 1)
            .unwrap_err()
            .status(),
        403
    );
    assert_eq!(
        book.command("nobody", &ack, &u, 1).unwrap_err().status(),
        401
    );
    assert_eq!(
        book.command(
            "longxi",
            &command("x", r#"{"action":"acknowledge"}"#),
            &u,
            1
        )
        .unwrap_err()
        .status(),
        404
    );
    let on_site = command("w", r#"{"action":"on_site"}"#);
    assert_eq!(
        book.command("grid-g1", &on_site, &u, 1)
            .unwrap_err()
            .status(),
        409,
        "acknowledge first"
    );
    // The street is above the grid: it may act.
    assert_eq!(
        book.command("longxi", &ack, &u, 2).unwrap().change,
        "acknowledged"
    );
    assert_eq!(
        book.command("grid-g1", &ack, &u, 3).unwrap_err().status(),
        409
    );
    let done = command(
        "w",
        r#"{"action":"handled","outcome":"false_alarm","note":"dust from road works"}"#,
    );
    let c = book.command("grid-g1", &done, &u, 4).unwrap();
    assert_eq!(
        (c.state, c.outcome),
        (State::Handled, Some(Outcome::FalseAlarm))
    );
    assert_eq!(c.note.as_deref(), Some("dust from road works"));
    assert_eq!(
        book.command("grid-g1", &done, &u, 5).unwrap_err().status(),
        409,
        "already handled"
    );
}

#[test]
fn a_department_must_report_in_or_the_warning_climbs() {
    let u = units(UNITS);
    let mut book = ResponseBook::default();
    let t0 = 0;
    raise(&mut book, &u, "w", Grade::Red, "a1", t0);
    book.command(
        "grid-g1",
        &command("w", r#"{"action":"acknowledge"}"#),
        &u,
        t0 + MIN,
    )
    .unwrap();
    let refer = command("w", r#"{"action":"refer","department":"yb-eeb"}"#);
    let c = book.command("grid-g1", &refer, &u, t0 + 2 * MIN).unwrap();
    assert_eq!(
        (c.change.as_str(), c.deadline_ms),
        ("referred", Some(t0 + 7 * MIN))
    );
    let up = book.tick(&u, t0 + 7 * MIN);
    assert_eq!(up.len(), 1);
    assert_eq!(
        (up[0].missed_by.as_deref(), up[0].assignee.as_str()),
        (Some("yb-eeb"), "longxi-1")
    );
    // Referred again, the department reports in this time.
    book.command(
        "longxi-1",
        &command("w", r#"{"action":"acknowledge"}"#),
        &u,
        t0 + 8 * MIN,
    )
    .unwrap();
    book.command("longxi-1", &refer, &u, t0 + 9 * MIN).unwrap();
    let reported = book
        .command(
            "yb-eeb",
            &command("w", r#"{"action":"acknowledge"}"#),
            &u,
            t0 + 10 * MIN,
        )
        .unwrap();
    assert_eq!(reported.change, "reported_in");
    let bad = command("w", r#"{"action":"refer","department":"longxi"}"#);
    assert_eq!(
        book.command("longxi-1", &bad, &u, t0 + 11 * MIN)
            .unwrap_err()
            .status(),
        422
    );
}

#[test]
fn a_condition_gone_before_anyone_answered_is_recorded_unanswered() {
    let u = units(UNITS);
    let mut book = ResponseBook::default();
    raise(&mut book, &u, "w", Grade::Yellow, "a2", 0);
    let gone = book.on_warning(
        &WarningEvent {
            warning_id: "w",
            rule: "pm25-1h",
            category: "env",
            grade: None,
            level: AreaLevel::Sensor,
            key: "a2",
            started_ms: 0,
            event_ms: MIN,
        },
        &registry(),
        &u,
        MIN,
    );
    assert_eq!(gone[0].change, "unanswered");
    assert_eq!(gone[0].outcome, Some(Outcome::Unanswered));
    assert!(book.tick(&u, 1_000 * MIN).is_empty(), "no escalation after");
    // The book survives a restart as JSON.
    let saved = serde_json::to_string(&book).unwrap();
    assert_eq!(serde_json::from_str::<ResponseBook>(&saved).unwrap(), book);
}

#[test]
fn every_problem_of_the_file_is_reported_with_its_place() {
    let text = "\
units:
  - id: g
    level: grid
    areas: [nowhere]
  - id: g
    level: street
    areas: [Longxi]
    categories: [weather]
  - id: d
    level: department
    areas: [Yubei]
  - id: t
    level: grid
    areas: [g1]
    token_env: A
    token_file: b
deadlines: { red: { acknowledge: soon } }
";
    let e = Units::parse(Path::new("units.yaml"), text, &registry()).unwrap_err();
    let lines: Vec<String> = e.to_string().lines().map(str::to_owned).collect();
    let want = [
        "units.yaml:1:1: no `level: city` unit",
        "units.yaml:4:5: unit \"g\": area \"nowhere\" is not a grid",
        "units.yaml:5:5: unit \"g\": a second unit with this id",
        "units.yaml:8:5: unit \"g\": `weather` is not a category",
        "units.yaml:9:5: unit \"d\": a department names the categories",
        "units.yaml:16:5: unit \"t\": give token_env or token_file",
        "units.yaml:17:1: deadlines.red.acknowledge: \"soon\"",
    ];
    assert_eq!(lines.len(), want.len(), "{lines:#?}");
    for (line, want) in lines.iter().zip(want) {
        assert!(line.starts_with(want), "{line} / {want}");
    }
    let e = Units::parse(
        Path::new("units.yaml"),
        "units:\n  - id: x\n    levl: grid\n",
        &registry(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("units.yaml:3:5:") && e.contains("levl"),
        "{e}"
    );
}

#[test]
fn responses_move_with_their_partition_and_the_later_copy_wins() {
    let u = units(UNITS);
    let mut here = ResponseBook::default();
    raise(&mut here, &u, "w", Grade::Red, "a1", 0);
    raise(&mut here, &u, "v", Grade::Blue, "a3", 0);
    let copy = here.extract(["w"].into_iter(), false);
    assert!(here.get("w").is_some(), "a checkpoint copies");
    let moved = here.extract(["w", "gone"].into_iter(), true);
    assert_eq!(moved, copy);
    assert!(here.get("w").is_none() && here.get("v").is_some());

    let mut there = ResponseBook::default();
    assert_eq!(there.merge(moved.clone()), 1);
    there
        .command(
            "grid-g1",
            &command("w", r#"{"action":"acknowledge"}"#),
            &u,
            MIN,
        )
        .unwrap();
    // An older copy (a checkpoint written before) does not undo it.
    assert_eq!(there.merge(moved), 0);
    assert_eq!(there.get("w").unwrap().state, State::Acknowledged);
}
