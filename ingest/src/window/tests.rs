//! Tests of window alignment, closing, handover, snapshots and lateness.

use super::*;
use arrow::array::{Float64Array, Int64Array, StringArray};

use crate::registry::Sensor;

const HOUR: i64 = 3_600_000;
const CST: i64 = 8 * HOUR;
// 2026-07-15T08:00:00+08:00
const T8: i64 = 1_784_073_600_000;

#[test]
fn windows_align_to_local_boundaries() {
    let hourly = Windows::tumbling(HOUR, CST);
    assert_eq!(hourly.pane_of(T8), T8);
    assert_eq!(hourly.pane_of(T8 + HOUR - 1), T8);
    assert_eq!(hourly.last_end_of(T8 + HOUR - 1), T8 + HOUR);
    assert_eq!(hourly.pane_of(T8 + HOUR), T8 + HOUR);
    let daily = Windows::tumbling(24 * HOUR, CST);
    // Local midnight of 2026-07-15 is 16:00 UTC of 07-14.
    assert_eq!(daily.pane_of(T8), T8 - 8 * HOUR);
    let ten = Windows::tumbling(10 * 60_000, CST);
    assert_eq!(ten.pane_of(T8 + 25 * 60_000), T8 + 20 * 60_000);
    // Before the epoch still floors, not truncates.
    assert_eq!(Windows::tumbling(10, 0).pane_of(-1), -10);
    // A 24 h moving window updated hourly: 24 windows hold each reading.
    let moving = Windows::hopping(24 * HOUR, HOUR, CST);
    let ends: Vec<i64> = moving.ends_of(T8 + 10).collect();
    assert_eq!(ends.len(), 24);
    assert_eq!((ends[0], ends[23]), (T8 + HOUR, T8 + 24 * HOUR));
}

fn fixture() -> (SensorRegistry, MetricCatalog) {
    let s = |id: &str, grid: &str| Sensor {
        sensor_id: id.into(),
        kind: "air".into(),
        district: "Yubei".into(),
        district_code: "500112".into(),
        street: "Longxi".into(),
        grid: grid.into(),
        lat: 29.6,
        lon: 106.5,
        names: Default::default(),
    };
    let reg = SensorRegistry::new(vec![s("a", "g1"), s("b", "g2")]).unwrap();
    (reg, MetricCatalog::new(["pm25", "noise_db"]))
}

#[test]
fn store_closes_in_order_and_refuses_late_readings() {
    let (reg, cat) = fixture();
    let mut store = WindowStore::new(Windows::tumbling(HOUR, CST), &cat, &[0]);
    assert!(store.wants(0) && !store.wants(1));
    assert_eq!(store.insert(0, 0, T8 + 10, 80.0), Ok(T8 + HOUR));
    assert_eq!(store.insert(1, 0, T8 + HOUR + 5, 90.0), Ok(T8 + 2 * HOUR));
    assert_eq!(store.insert(1, 0, T8 + 20, 70.0), Ok(T8 + HOUR));
    assert_eq!(store.next_end(), Some(T8 + HOUR));
    assert_eq!(store.states(), 3, "one state per pane, sensor and metric");

    assert!(
        store
            .close_until(T8 + HOUR - 1, &reg, &cat)
            .unwrap()
            .is_empty()
    );
    let closed = store.close_until(T8 + HOUR, &reg, &cat).unwrap();
    assert_eq!(closed.len(), 1);
    let w = &closed[0];
    assert_eq!((w.start_ms, w.end_ms), (T8, T8 + HOUR));
    assert_eq!(w.batch.num_rows(), 2);
    let grid = w.batch.column_by_name("grid").unwrap();
    let grid = grid.as_any().downcast_ref::<StringArray>().unwrap();
    let mut grids: Vec<_> = grid.iter().flatten().collect();
    grids.sort();
    assert_eq!(grids, ["g1", "g2"]);
    let metric = w.batch.column_by_name("metric").unwrap();
    let metric = metric.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(metric.value(0), "pm25");

    // The first hour is closed: a reading for it is late.
    assert_eq!(store.insert(0, 0, T8 + 30, 1.0), Err(T8 + HOUR));
    assert_eq!(store.next_end(), Some(T8 + 2 * HOUR));
}

#[test]
fn a_sensor_handed_to_another_store_closes_as_if_it_had_been_there() {
    let (reg, cat) = fixture();
    let windows = Windows::tumbling(HOUR, CST);
    // The old owner saw sensor 1 first (its time axis starts at T8);
    // the new owner's axis starts an hour earlier.
    let mut old = WindowStore::new(windows, &cat, &[0]);
    old.insert(1, 0, T8 + 60_000, 10.0).unwrap();
    old.insert(1, 0, T8 + 120_000, 20.0).unwrap();
    let mut new = WindowStore::new(windows, &cat, &[0]);
    new.insert(0, 0, T8 - HOUR + 5, 50.0).unwrap();
    new.close_until(T8, &reg, &cat).unwrap();
    let handed = old.snapshot_sensors(&[false, true]);
    old.forget_sensors(&[false, true]);
    assert_eq!(old.states(), 0);
    assert_eq!(new.merge(handed), 0);
    new.insert(1, 0, T8 + 180_000, 30.0).unwrap();

    // The same readings in one store from the start.
    let mut whole = WindowStore::new(windows, &cat, &[0]);
    whole.insert(0, 0, T8 - HOUR + 5, 50.0).unwrap();
    whole.close_until(T8, &reg, &cat).unwrap();
    for (ts, v) in [(60_000, 10.0), (120_000, 20.0), (180_000, 30.0)] {
        whole.insert(1, 0, T8 + ts, v).unwrap();
    }
    let a = new.close_until(T8 + HOUR, &reg, &cat).unwrap();
    let b = whole.close_until(T8 + HOUR, &reg, &cat).unwrap();
    assert_eq!((a.len(), b.len()), (1, 1));
    let column = |w: &ClosedWindow, name: &str| {
        let c = w.batch.column_by_name(name).unwrap();
        c.as_any().downcast_ref::<Float64Array>().unwrap().value(0)
    };
    for name in ["sum", "sx", "sxx", "sxy"] {
        let (x, y) = (column(&a[0], name), column(&b[0], name));
        assert!((x - y).abs() < 1e-9, "{name}: {x} vs {y}");
    }

    // A state whose windows are all final here is skipped, and counted.
    let mut late = WindowStore::new(windows, &cat, &[0]);
    late.insert(1, 0, T8 - 2 * HOUR, 1.0).unwrap();
    assert_eq!(new.merge(late.snapshot_sensors(&[false, true])), 1);
}

#[test]
fn a_restored_store_closes_the_same_windows_as_the_original() {
    let (reg, cat) = fixture();
    let windows = Windows::hopping(HOUR, HOUR / 2, CST);
    let mut original = WindowStore::new(windows, &cat, &[0]).with_sketches(true);
    for (sensor, ts, v) in [(0, 10, 80.0), (1, 20, 70.0), (0, HOUR / 2 + 5, 95.0)] {
        original.insert(sensor, 0, T8 + ts, v).unwrap();
    }
    original.close_until(T8 + HOUR / 2, &reg, &cat).unwrap();
    // Through JSON, as a checkpoint file carries it.
    let json = serde_json::to_string(&original.snapshot()).unwrap();
    let mut restored = WindowStore::new(windows, &cat, &[0]).with_sketches(true);
    restored.restore(serde_json::from_str(&json).unwrap());
    assert_eq!(restored.snapshot(), original.snapshot());
    assert_eq!(restored.next_end(), original.next_end());
    // Both refuse the same late reading and take the same new one.
    assert_eq!(
        restored.insert(0, 0, T8 - 1, 1.0),
        original.insert(0, 0, T8 - 1, 1.0)
    );
    let more = (1, 0, T8 + HOUR / 2 + 9, 60.0);
    assert_eq!(
        restored.insert(more.0, more.1, more.2, more.3),
        original.insert(more.0, more.1, more.2, more.3)
    );
    let a = original.close_until(T8 + 2 * HOUR, &reg, &cat).unwrap();
    let b = restored.close_until(T8 + 2 * HOUR, &reg, &cat).unwrap();
    assert_eq!((a.len(), b.len()), (2, 2));
    for (a, b) in a.iter().zip(&b) {
        assert_eq!((a.start_ms, a.end_ms), (b.start_ms, b.end_ms));
        assert_eq!(a.batch, b.batch);
    }
}

mod hopping_tests {
    use super::*;
    use crate::registry::Sensor;

    /// One air sensor `a` in grid `g1`, and the `pm25` metric.
    pub(super) fn one_sensor() -> (SensorRegistry, MetricCatalog) {
        let s = Sensor {
            sensor_id: "a".into(),
            kind: "air".into(),
            district: "Yubei".into(),
            district_code: "500112".into(),
            street: "Longxi".into(),
            grid: "g1".into(),
            lat: 29.6,
            lon: 106.5,
            names: Default::default(),
        };
        (
            SensorRegistry::new(vec![s]).unwrap(),
            MetricCatalog::new(["pm25"]),
        )
    }

    const MIN: i64 = 60_000;

    fn fixture() -> (SensorRegistry, MetricCatalog) {
        one_sensor()
    }

    /// Sum of the readings in a closed window (over its pane states).
    fn total(w: &ClosedWindow) -> f64 {
        let v = w.batch.column_by_name("sum").unwrap();
        let v = v.as_any().downcast_ref::<Float64Array>().unwrap();
        v.values().iter().sum()
    }

    #[test]
    fn hopping_windows_share_panes_and_close_in_order() {
        let (reg, cat) = fixture();
        // 3-minute windows every minute.
        let mut store = WindowStore::new(Windows::hopping(3 * MIN, MIN, 0), &cat, &[0]);
        assert_eq!(store.insert(0, 0, 10, 1.0), Ok(3 * MIN));
        assert_eq!(store.insert(0, 0, MIN + 10, 2.0), Ok(4 * MIN));
        assert_eq!(store.insert(0, 0, 2 * MIN + 10, 3.0), Ok(5 * MIN));
        assert_eq!(store.next_end(), Some(MIN));

        let closed = store.close_until(3 * MIN, &reg, &cat).unwrap();
        let spans: Vec<(i64, i64)> = closed.iter().map(|w| (w.start_ms, w.end_ms)).collect();
        assert_eq!(spans, [(-2 * MIN, MIN), (-MIN, 2 * MIN), (0, 3 * MIN)]);
        assert_eq!(total(&closed[0]), 1.0);
        assert_eq!(total(&closed[1]), 1.0 + 2.0);
        assert_eq!(total(&closed[2]), 1.0 + 2.0 + 3.0);
        // Pane 0 is covered by no open window any more.
        assert_eq!(store.panes(), 2);
        assert_eq!(store.next_end(), Some(4 * MIN));

        // Its windows are closed, so a reading for minute 0 is late…
        assert_eq!(store.insert(0, 0, 20, 9.0), Err(3 * MIN));
        // …but one for minute 1 still counts in the windows ending at 4 and 5.
        assert_eq!(store.insert(0, 0, MIN + 20, 4.0), Ok(4 * MIN));

        let closed = store.close_until(10 * MIN, &reg, &cat).unwrap();
        let spans: Vec<(i64, i64)> = closed.iter().map(|w| (w.start_ms, w.end_ms)).collect();
        assert_eq!(spans, [(MIN, 4 * MIN), (2 * MIN, 5 * MIN)]);
        assert_eq!(total(&closed[0]), 2.0 + 4.0 + 3.0);
        assert_eq!(
            closed[0].batch.num_rows(),
            1,
            "panes merged: one row per sensor and metric"
        );
        assert_eq!(total(&closed[1]), 3.0);
        assert_eq!(store.panes(), 0);
        assert_eq!(store.next_end(), None);
    }

    #[test]
    fn windows_without_readings_are_not_emitted() {
        let (reg, cat) = fixture();
        let mut store = WindowStore::new(Windows::hopping(2 * MIN, MIN, 0), &cat, &[0]);
        store.insert(0, 0, 10, 1.0).unwrap();
        store.insert(0, 0, 10 * MIN + 10, 2.0).unwrap();
        let closed = store.close_until(20 * MIN, &reg, &cat).unwrap();
        let ends: Vec<i64> = closed.iter().map(|w| w.end_ms).collect();
        assert_eq!(ends, [MIN, 2 * MIN, 11 * MIN, 12 * MIN]);
    }
}

mod lateness_tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn late_reading_within_lateness_corrects_the_closed_window() {
        let (reg, cat) = super::hopping_tests::one_sensor();
        let mut store =
            WindowStore::new(Windows::tumbling(MIN, 0), &cat, &[0]).with_lateness(30_000);
        store.insert(0, 0, 10_000, 1.0).unwrap();
        let first = store.close_until(MIN + 5_000, &reg, &cat).unwrap();
        assert_eq!(first.len(), 1);
        assert!(!first[0].correction);
        // 25 s after the window closed: within the 30 s lateness.
        assert_eq!(store.insert(0, 0, 20_000, 2.0), Ok(MIN));
        assert_eq!(store.next_end(), Some(MIN), "a correction is due");
        let again = store.close_until(MIN + 25_000, &reg, &cat).unwrap();
        assert_eq!(again.len(), 1);
        assert!(again[0].correction);
        assert_eq!((again[0].start_ms, again[0].end_ms), (0, MIN));
        let n = again[0].batch.column_by_name("n").unwrap();
        assert_eq!(n.as_any().downcast_ref::<Int64Array>().unwrap().value(0), 2);
        // Past the lateness the window is final: late beyond lateness.
        store.close_until(MIN + 31_000, &reg, &cat).unwrap();
        assert_eq!(store.insert(0, 0, 30_000, 3.0), Err(MIN));
        assert_eq!(store.panes(), 0);
        // Lateness is capped at the slide.
        let capped =
            WindowStore::new(Windows::tumbling(MIN, 0), &cat, &[0]).with_lateness(10 * MIN);
        assert_eq!(capped.lateness_ms, MIN);
    }
}
