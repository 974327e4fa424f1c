use super::*;
use crate::aggregate::WindowAggregate;
use crate::grade::{Direction, Grade};
use crate::model::{Aggregate, Rule, WindowSpec};
use yujing_ingest::AreaLevel;

const H: i64 = 3_600_000;

/// No second opinion, no level shifts.
const PLAIN: Baseline = Baseline {
    method: BaselineMethod::Robust,
    history_ms: 0,
    period_ms: 0,
    side: Side::Both,
    min_history: 1,
    confirm: None,
    confirm_over_ms: None,
    shift: None,
};

fn rule(baseline: Baseline) -> Rule {
    let mut r = Rule::threshold_rule(
        "r",
        "noise",
        WindowSpec::tumbling(H),
        Aggregate::Avg,
        AreaLevel::Sensor,
        Direction::Above,
        &[(Grade::Blue, 3.0)],
    );
    r.baseline = Some(baseline);
    r
}

fn agg(r: &Rule, end: i64, value: f64) -> WindowAggregate {
    WindowAggregate::plain(r, "s1".into(), (end - H, end), value, 1, 1)
}

#[test]
fn robust_deviation_from_the_trailing_median() {
    let r = rule(Baseline {
        method: BaselineMethod::Robust,
        history_ms: 24 * H,
        period_ms: 0,
        side: Side::Both,
        min_history: 4,
        ..PLAIN
    });
    let mut book = BaselineBook::new();
    // 10, 12, 10, 12 …: median 11, MAD 1.
    for i in 1..=10 {
        let v = if i % 2 == 0 { 12.0 } else { 10.0 };
        let out = book.deviations(&r, i * H, &[agg(&r, i * H, v)]);
        assert_eq!(
            out.is_empty(),
            i <= 4,
            "hour {i}: graded only with 4 values"
        );
    }
    let out = book.deviations(&r, 11 * H, &[agg(&r, 11 * H, 5.0)]);
    let d = out[0].deviation.unwrap();
    assert_eq!((d.observed, d.expected), (5.0, 11.0));
    assert!((d.spread - 1.4826).abs() < 1e-9, "{d:?}");
    // A fall of 6 spreads of 1.4826: graded by its size on side both.
    assert!((out[0].value - 6.0 / 1.4826).abs() < 1e-9);
    // Older than the history is forgotten.
    assert!(book.len() <= 24);
}

#[test]
fn seasonal_compares_the_same_hour_of_day() {
    let r = rule(Baseline {
        method: BaselineMethod::Seasonal,
        history_ms: 7 * 24 * H,
        period_ms: 24 * H,
        side: Side::Above,
        min_history: 3,
        ..PLAIN
    });
    let mut book = BaselineBook::new();
    // A daily rhythm: 100 at 08:00, 10 otherwise, for 5 days.
    let mut last = Vec::new();
    for h in 1..=(5 * 24) {
        let v = if h % 24 == 8 { 100.0 } else { 10.0 };
        last = book.deviations(&r, h * H, &[agg(&r, h * H, v)]);
    }
    assert!(last[0].value.abs() < 1e-6, "the rhythm itself is normal");
    let end = (5 * 24 + 8) * H;
    let rush = book.deviations(&r, end, &[agg(&r, end, 100.0)]);
    assert!(
        rush[0].value.abs() < 1e-6,
        "08:00 compared with past 08:00s"
    );
    let quiet = book.deviations(&r, end + H, &[agg(&r, end + H, 100.0)]);
    assert!(
        quiet[0].value > 1e6,
        "100 at 09:00 is far off: {:?}",
        quiet[0]
    );
}

#[test]
fn specs_are_checked() {
    let v = |s: &str| serde_yaml_ng::from_str::<Value>(s).unwrap();
    let b = parse(v("{method: seasonal, history: 28d}"), H).unwrap();
    assert_eq!((b.period_ms, b.min_history), (24 * H, 3));
    assert!(parse(v("{method: robust, history: 7d, period: 1d}"), H).is_err());
    assert!(
        parse(v("{method: seasonal, history: 2d}"), H).is_err(),
        "2 periods < 3"
    );
    assert!(parse(v("{method: seasonal, history: 28d, period: 90m}"), H).is_err());
    assert!(parse(v("{method: mean, history: 7d}"), H).is_err());
}

/// Feed hourly `values` (hours 1, 2, …) and return each hour's graded
/// value (`None` when not graded).
fn run(book: &mut BaselineBook, r: &Rule, values: &[f64]) -> Vec<Option<f64>> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let end = (i as i64 + 1) * H;
            book.deviations(r, end, &[agg(r, end, *v)])
                .first()
                .map(|a| a.value)
        })
        .collect()
}

/// A daily rhythm over `days`: 100 from 08:00 to 10:00, 10 otherwise,
/// ± 1 noise.
fn rhythm(days: usize) -> Vec<f64> {
    (0..days * 24)
        .map(|h| {
            let base = if (8..10).contains(&((h + 1) % 24)) {
                100.0
            } else {
                10.0
            };
            base + if h % 3 == 0 { 1.0 } else { -1.0 }
        })
        .collect()
}

#[test]
fn a_second_method_must_agree() {
    let robust = rule(Baseline {
        history_ms: 7 * 24 * H,
        min_history: 12,
        ..PLAIN
    });
    let agreeing = rule(Baseline {
        confirm: Some(BaselineMethod::Seasonal),
        period_ms: 24 * H,
        ..robust.baseline.unwrap()
    });
    let mut values = rhythm(8);
    // Day 8's rush hour is normal; at 14:00 it is 100: off both.
    let odd = 7 * 24 + 13;
    values[odd] = 100.0;
    let alone = run(&mut BaselineBook::new(), &robust, &values);
    let both = run(&mut BaselineBook::new(), &agreeing, &values);
    let rush = 7 * 24 + 8;
    assert!(
        alone[rush].unwrap() > 3.0,
        "a centre calls the rush hour off"
    );
    assert!(
        both[rush].unwrap() < 1.0,
        "the same hour of past days does not"
    );
    assert!(both[odd].unwrap() > 3.0, "off both: graded {:?}", both[odd]);
    // The graded value is the smaller opinion.
    assert!(both[odd].unwrap() <= alone[odd].unwrap());
}

/// Noise in [-1, 1], independent from hour to hour (splitmix64).
fn noise(h: u64) -> f64 {
    let mut x = h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

#[test]
fn a_longer_scale_must_agree() {
    let base = Baseline {
        history_ms: 3 * 24 * H,
        min_history: 12,
        ..PLAIN
    };
    let short = rule(base);
    let confirmed = rule(Baseline {
        confirm_over_ms: Some(3 * H),
        ..base
    });
    // 10 ± 1, wandering slowly (as most measurements do: this hour is
    // much like the last), with a little noise.
    let mut values: Vec<f64> = (0..72)
        .map(|h| 10.0 + (h as f64 / 4.0).sin() + 0.2 * noise(h))
        .collect();
    // One hour of 14: a spike; then 14 for three hours: a rise that lasts.
    values.push(14.0);
    values.extend([10.0, 10.0, 10.0, 14.0, 14.0, 14.0]);
    let alone = run(&mut BaselineBook::new(), &short, &values);
    let both = run(&mut BaselineBook::new(), &confirmed, &values);
    assert!(
        alone[72].unwrap() > 3.0 && both[72].unwrap() < 3.0,
        "{:?}",
        (&alone[72..], &both[72..])
    );
    assert!(
        both[78].unwrap() > 3.0,
        "the lasting rise is confirmed: {:?}",
        &both[72..]
    );
}

#[test]
fn a_level_shift_becomes_the_baseline() {
    let plain = rule(Baseline {
        history_ms: 2 * 24 * H,
        min_history: 12,
        ..PLAIN
    });
    let shifting = rule(Baseline {
        shift: Some(Shift {
            drift: 0.5,
            limit: 20.0,
        }),
        ..plain.baseline.unwrap()
    });
    let mut values: Vec<f64> = (0..48)
        .map(|h| if h % 2 == 0 { 11.0 } else { 9.0 })
        .collect();
    // A step from 10 to 20 that stays.
    values.extend((0..24).map(|h| if h % 2 == 0 { 21.0 } else { 19.0 }));
    let alone = run(&mut BaselineBook::new(), &plain, &values);
    let mut book = BaselineBook::new();
    let adopted = run(&mut book, &shifting, &values);
    let over = |graded: &[Option<f64>]| {
        let hours = graded[48..].iter().enumerate();
        hours
            .filter(|(_, z)| z.unwrap() > 3.0)
            .map(|(h, _)| h)
            .collect::<Vec<_>>()
    };
    // Without: the new level flaps across blue as it fills the history.
    assert_eq!(over(&alone), [0, 1, 2, 4, 6, 8], "{:?}", &alone[48..]);
    // With: found at the fifth window (the sum passes 20 spreads); from
    // then on the new level is normal.
    assert_eq!(over(&adopted), [0, 1, 2, 4], "{:?}", &adopted[48..]);
    assert!(adopted[53..].iter().all(|z| z.unwrap().abs() < 1.5));
    // Restored from its record, the book carries on exactly.
    let json = serde_json::to_string(&book).unwrap();
    let restored: BaselineBook = serde_json::from_str(&json).unwrap();
    assert_eq!(restored, book);
}

#[test]
fn a_record_written_before_level_shifts_reads() {
    let old = r#"{"r": {"s1": [[3600000, 4621819117588971520]]}}"#;
    let book: BaselineBook = serde_json::from_str(old).unwrap();
    assert_eq!(book.len(), 1);
}

#[test]
fn new_keys_are_checked_where_they_are() {
    let v = |s: &str| serde_yaml_ng::from_str::<Value>(s).unwrap();
    let key = |s: &str| parse(v(s), H).unwrap_err().0;
    assert_eq!(
        key("{method: robust, history: 7d, confirm: robust}"),
        "confirm"
    );
    assert_eq!(
        key("{method: robust, history: 7d, confirm: median}"),
        "confirm"
    );
    assert_eq!(
        key("{method: robust, history: 7d, confirm_over: 1h}"),
        "confirm_over"
    );
    assert_eq!(
        key("{method: robust, history: 7d, confirm_over: 90m}"),
        "confirm_over"
    );
    assert_eq!(
        key("{method: robust, history: 4h, min_history: 2, confirm_over: 3h}"),
        "confirm_over"
    );
    assert_eq!(
        key("{method: robust, history: 7d, shift: {limit: 0}}"),
        "shift"
    );
    assert_eq!(
        key("{method: robust, history: 7d, shift: {size: 3}}"),
        "shift"
    );
    assert_eq!(key("{method: trend, history: 7d, period: 1d}"), "period");
    let b = parse(
        v("{method: robust, history: 7d, confirm: seasonal, confirm_over: 3h, shift: {}}"),
        H,
    )
    .unwrap();
    assert_eq!(b.period_ms, 24 * H, "the seasonal opinion's default period");
    assert_eq!(b.confirm_over_ms, Some(3 * H));
    assert_eq!(
        b.shift,
        Some(Shift {
            drift: 0.5,
            limit: 20.0
        })
    );
    let off = parse(
        v("{method: robust, history: 7d, confirm: none, shift: off}"),
        H,
    )
    .unwrap();
    assert_eq!((off.confirm, off.shift), (None, None));
}

#[test]
fn a_corrected_window_counts_once_toward_a_level_shift() {
    let r = rule(Baseline {
        history_ms: 2 * 24 * H,
        min_history: 12,
        shift: Some(Shift {
            drift: 0.5,
            limit: 20.0,
        }),
        ..PLAIN
    });
    let normal: Vec<f64> = (0..48)
        .map(|h| if h % 2 == 0 { 11.0 } else { 9.0 })
        .collect();
    let mut once = BaselineBook::new();
    run(&mut once, &r, &normal);
    let mut twice = once.clone();
    // Two windows of 20, the second closed again by late readings.
    for book in [&mut once, &mut twice] {
        for end in [49 * H, 50 * H] {
            book.deviations(&r, end, &[agg(&r, end, 20.0)]);
        }
    }
    twice.deviations(&r, 50 * H, &[agg(&r, 50 * H, 20.0)]);
    assert_eq!(twice, once, "the correction is not a third window");
}
