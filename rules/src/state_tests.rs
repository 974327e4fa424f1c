use super::*;
use crate::model::{Aggregate, Quorum, WindowSpec};
use yujing_ingest::AreaLevel;

fn rule() -> Rule {
    Rule::threshold_rule(
        "pm25-1h",
        "pm25",
        WindowSpec::tumbling(10),
        Aggregate::Avg,
        AreaLevel::Grid,
        Direction::Above,
        &[
            (Grade::Blue, 75.0),
            (Grade::Yellow, 115.0),
            (Grade::Orange, 150.0),
            (Grade::Red, 250.0),
        ],
    )
}

fn agg(group: &str, end: i64, value: f64) -> WindowAggregate {
    WindowAggregate {
        rule_id: "pm25-1h".into(),
        group_key: group.into(),
        window_start_ms: end - 10,
        window_end_ms: end,
        value,
        readings: 3,
        sensors: 2,
        trend: None,
        agreeing: Vec::new(),
        primary_pollutant: None,
        deviation: None,
    }
}

type Seen = (
    Transition,
    Option<Grade>,
    Option<Grade>,
    u32,
    Option<ResolveReason>,
);

fn step_with(book: &mut WarningBook, rule: &Rule, end: i64, value: Option<f64>) -> Vec<Seen> {
    let aggs: Vec<_> = value.map(|v| agg("g1", end, v)).into_iter().collect();
    book.apply(rule, end - 10, end, &aggs)
        .into_iter()
        .map(|t| {
            (
                t.transition,
                t.grade,
                t.previous_grade,
                t.sequence,
                t.resolve_reason,
            )
        })
        .collect()
}

/// Feed `values` (one per window of 10 ms, `None` for a window without
/// data) and return the transitions as `(window end, transition, grade)`.
fn run(rule: &Rule, values: &[Option<f64>]) -> Vec<(i64, Transition, Option<Grade>)> {
    let mut book = WarningBook::new();
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let end = 10 * (i as i64 + 1);
        let aggs: Vec<_> = v.map(|v| agg("g1", end, v)).into_iter().collect();
        for t in book.apply(rule, end - 10, end, &aggs) {
            out.push((end, t.transition, t.grade));
        }
    }
    out
}

#[test]
fn full_lifecycle_one_message_per_change() {
    use Grade::*;
    use Transition::*;
    let r = rule();
    let mut book = WarningBook::new();
    assert_eq!(step_with(&mut book, &r, 10, Some(50.0)), vec![]);
    assert_eq!(
        step_with(&mut book, &r, 20, Some(80.0)),
        vec![(Raised, Some(Blue), None, 1, None)]
    );
    assert_eq!(
        step_with(&mut book, &r, 30, Some(90.0)),
        vec![],
        "same grade"
    );
    assert_eq!(
        step_with(&mut book, &r, 40, Some(300.0)),
        vec![(Escalated, Some(Red), Some(Blue), 2, None)]
    );
    assert_eq!(
        step_with(&mut book, &r, 50, Some(120.0)),
        vec![(DeEscalated, Some(Yellow), Some(Red), 3, None)]
    );
    assert_eq!(
        step_with(&mut book, &r, 60, Some(40.0)),
        vec![(
            Resolved,
            None,
            Some(Yellow),
            4,
            Some(ResolveReason::Cleared)
        )]
    );
    assert_eq!(book.active_count(), 0);
    // A new episode gets a new id and starts at sequence 1.
    let t = book.apply(&r, 60, 70, &[agg("g1", 70, 160.0)]);
    assert_eq!(
        (t[0].sequence, t[0].warning_id.as_str()),
        (1, "pm25-1h/grid/g1@70")
    );
    assert_eq!(t[0].fingerprint, "pm25-1h/grid/g1");
    assert_eq!(t[0].threshold, Some(150.0));
}

#[test]
fn silence_resolves_after_the_tolerated_gap() {
    use Transition::*;
    let r = rule();
    // One missing window is tolerated; the second resolves as no data.
    assert_eq!(
        run(&r, &[Some(200.0), None, Some(200.0), None, None]),
        vec![(10, Raised, Some(Grade::Orange)), (50, Resolved, None)]
    );
    let mut strict = rule();
    strict.tolerate_missing = 0;
    assert_eq!(
        run(&strict, &[Some(200.0), None]),
        vec![(10, Raised, Some(Grade::Orange)), (20, Resolved, None)]
    );
    let mut book = WarningBook::new();
    book.apply(
        &strict,
        0,
        10,
        &[agg("g2", 10, 200.0), agg("g1", 10, 100.0)],
    );
    let t = book.apply(&strict, 10, 20, &[agg("g1", 20, 100.0)]);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].group_key, "g2");
    assert_eq!(t[0].resolve_reason, Some(ResolveReason::NoData));
    assert_eq!((t[0].value, t[0].threshold), (None, Some(150.0)));
    assert_eq!(
        book.active().collect::<Vec<_>>(),
        vec![("pm25-1h", Grade::Blue)]
    );
}

#[test]
fn pending_time_counts_windows_and_tolerates_a_gap() {
    use Transition::*;
    let mut r = rule();
    for l in &mut r.levels {
        l.pending_ms = 30; // three windows of 10
    }
    // Two crossing windows are not enough; a non-crossing one resets.
    assert_eq!(
        run(&r, &[Some(200.0), Some(200.0), Some(50.0), Some(200.0)]),
        vec![]
    );
    let mut book = WarningBook::new();
    step_with(&mut book, &r, 10, Some(200.0));
    assert_eq!(book.pending_count(), 1);
    // A missing window does not reset the timer: it fires at 30
    // (crossing since 10, 30 − 10 + 10 ≥ 30), the first window with data.
    assert_eq!(
        run(&r, &[Some(200.0), None, Some(200.0), Some(200.0)]),
        vec![(30, Raised, Some(Grade::Orange))]
    );
    // Two missing windows (beyond the tolerance of one) do.
    assert_eq!(
        run(&r, &[Some(200.0), None, None, Some(200.0), Some(200.0)]),
        vec![]
    );
    // Red has no pending time: it is entered at once, orange waits.
    r.levels[3].pending_ms = 0;
    assert_eq!(
        run(&r, &[Some(300.0), Some(200.0), Some(200.0), Some(200.0)]),
        vec![
            (10, Raised, Some(Grade::Red)),
            (20, DeEscalated, Some(Grade::Orange))
        ]
    );
}

#[test]
fn hysteresis_stops_a_flapping_signal() {
    use Transition::*;
    let flapping: Vec<Option<f64>> = (0..20)
        .map(|i| Some(if i % 2 == 0 { 152.0 } else { 147.0 }))
        .collect();
    // Without hysteresis: a message every window.
    assert_eq!(run(&rule(), &flapping).len(), 20);
    let mut r = rule();
    for l in &mut r.levels {
        l.clear = l.threshold - 10.0;
    }
    assert_eq!(run(&r, &flapping), vec![(10, Raised, Some(Grade::Orange))]);
    // It clears below 140.
    let mut values = flapping.clone();
    values.push(Some(139.0));
    let out = run(&r, &values);
    assert_eq!(out[1], (210, DeEscalated, Some(Grade::Yellow)));
}

#[test]
fn keep_firing_and_de_escalation_timers() {
    use Transition::*;
    let mut r = rule();
    r.keep_firing_for_ms = 20;
    assert_eq!(
        run(
            &r,
            &[Some(200.0), Some(50.0), Some(200.0), Some(50.0), Some(50.0)]
        ),
        vec![(10, Raised, Some(Grade::Orange)), (50, Resolved, None)],
        "a short dip keeps firing"
    );
    let mut r = rule();
    r.de_escalate_after_ms = 30;
    assert_eq!(
        run(&r, &[Some(300.0), Some(120.0), Some(120.0), Some(120.0)]),
        vec![
            (10, Raised, Some(Grade::Red)),
            (40, DeEscalated, Some(Grade::Yellow))
        ]
    );
}

#[test]
fn quorum_keeps_one_sensor_from_raising_an_area() {
    let mut r = rule();
    r.quorum = Quorum {
        min_sensors: 2,
        min_fraction: 0.0,
    };
    let mut book = WarningBook::new();
    // The area's mean is red, but only one sensor crosses red; two cross
    // blue.
    let mut a = agg("g1", 10, 300.0);
    a.agreeing = vec![(2, 2), (1, 1), (1, 1), (1, 1)];
    let t = book.apply(&r, 0, 10, &[a]);
    assert_eq!(t[0].grade, Some(Grade::Blue));
}

/// Found by a backtest (docs/backtest.md): one of a grid's two stations
/// went silent for 19 hours at 300-600 ug/m3, and the grid's warning
/// "cleared" at 341.
#[test]
fn quorum_without_enough_sensors_is_missing_data_not_a_clear() {
    let mut r = rule();
    r.quorum = Quorum {
        min_sensors: 2,
        min_fraction: 0.0,
    };
    let mut book = WarningBook::new();
    let both = |end: i64, v: f64| {
        let mut a = agg("g1", end, v);
        a.agreeing = vec![(2, 2); 4];
        a
    };
    let alone = |end: i64, v: f64| {
        let mut a = agg("g1", end, v);
        a.sensors = 1;
        a.agreeing = vec![(1, 1); 4];
        a
    };
    assert_eq!(
        book.apply(&r, 0, 10, &[both(10, 300.0)])[0].grade,
        Some(Grade::Red)
    );
    // One window alone is tolerated; the next is missing data.
    assert!(book.apply(&r, 10, 20, &[alone(20, 341.0)]).is_empty());
    let t = book.apply(&r, 20, 30, &[alone(30, 341.0)]);
    assert_eq!(t[0].transition, Transition::Resolved);
    assert_eq!(t[0].resolve_reason, Some(ResolveReason::NoData));
    assert_eq!(t[0].value, None, "341 is not what the area measured");
}

#[test]
fn predicted_crossing_and_retire() {
    let mut r = rule();
    r.predict_horizon_ms = Some(3_600_000);
    let mut book = WarningBook::new();
    let mut a = agg("g1", 10, 160.0);
    // 100 now, +60 per hour: orange (150) in 50 minutes.
    a.trend = Some(Trend {
        now: 100.0,
        per_hour: 60.0,
    });
    let t = book.apply(&r, 0, 10, &[a]);
    assert_eq!(t[0].grade, Some(Grade::Orange));
    assert_eq!(t[0].expected_crossing_ms, Some(10 + 50 * 60_000));
    let t = book.retire(&r, 20);
    assert_eq!(t[0].resolve_reason, Some(ResolveReason::RuleRemoved));
    assert_eq!(book.active_count(), 0);
}

#[test]
fn a_resumed_book_does_not_evaluate_again_what_it_evaluated_before_a_restart() {
    let r = rule();
    let mut book = WarningBook::new();
    // Windows 10 (below), 20 (blue), 30 (blue) evaluated, then saved.
    assert!(step_with(&mut book, &r, 10, Some(50.0)).is_empty());
    assert_eq!(step_with(&mut book, &r, 20, Some(100.0)).len(), 1);
    assert!(step_with(&mut book, &r, 30, Some(100.0)).is_empty());
    let saved = book.clone();

    // The restart re-reads the readings of windows 10..30 (their offsets
    // were not committed yet) and then goes on.
    let mut resumed = saved;
    resumed.resume();
    assert!(
        step_with(&mut resumed, &r, 10, Some(50.0)).is_empty(),
        "window 10 is not evaluated again: it would resolve the warning"
    );
    assert!(step_with(&mut resumed, &r, 20, Some(100.0)).is_empty());
    assert!(step_with(&mut resumed, &r, 30, Some(100.0)).is_empty());
    let next = step_with(&mut resumed, &r, 40, Some(200.0));
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].0, Transition::Escalated);
    assert_eq!(next[0].3, 2, "the warning's sequence goes on");
}
