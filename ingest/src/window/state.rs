//! [`PartialState`]: the mergeable summary of one sensor's readings of one
//! metric in one pane, and its exact on-disk form.

/// Mergeable summary of the readings of one sensor and metric in one pane.
/// In a checkpoint it is a compact array with the floats as their bits,
/// so a restored state is exactly the saved one.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(into = "StateRecord", from = "StateRecord")]
pub struct PartialState {
    pub n: i64,
    pub sum: f64,
    pub sumsq: f64,
    pub min: f64,
    pub max: f64,
    pub first_ts: i64,
    pub first: f64,
    pub last_ts: i64,
    pub last: f64,
    /// Σx, Σx², Σxy with x = hours since the store's origin, y = value.
    pub sx: f64,
    pub sxx: f64,
    pub sxy: f64,
    /// Quantile sketch, when the store's rules need percentiles.
    pub sketch: Option<Box<crate::sketch::Sketch>>,
}

/// [`PartialState`] on disk: count, first and last times, the nine floats
/// as IEEE-754 bits (sum, sumsq, min, max, first, last, sx, sxx, sxy), the
/// sketch.
#[derive(serde::Serialize, serde::Deserialize)]
struct StateRecord(i64, i64, i64, [u64; 9], Option<Box<crate::sketch::Sketch>>);

impl From<PartialState> for StateRecord {
    fn from(s: PartialState) -> Self {
        let floats = [
            s.sum, s.sumsq, s.min, s.max, s.first, s.last, s.sx, s.sxx, s.sxy,
        ];
        StateRecord(
            s.n,
            s.first_ts,
            s.last_ts,
            floats.map(f64::to_bits),
            s.sketch,
        )
    }
}

impl From<StateRecord> for PartialState {
    fn from(StateRecord(n, first_ts, last_ts, bits, sketch): StateRecord) -> Self {
        let [sum, sumsq, min, max, first, last, sx, sxx, sxy] = bits.map(f64::from_bits);
        PartialState {
            n,
            sum,
            sumsq,
            min,
            max,
            first_ts,
            first,
            last_ts,
            last,
            sx,
            sxx,
            sxy,
            sketch,
        }
    }
}

impl PartialState {
    pub(crate) fn new(ts_ms: i64, value: f64, x: f64) -> Self {
        PartialState {
            n: 1,
            sum: value,
            sumsq: value * value,
            min: value,
            max: value,
            first_ts: ts_ms,
            first: value,
            last_ts: ts_ms,
            last: value,
            sx: x,
            sxx: x * x,
            sxy: x * value,
            sketch: None,
        }
    }

    /// Fold in the state of a later pane (ties in time keep `self`'s).
    pub fn merge(&mut self, other: &PartialState) {
        self.n += other.n;
        self.sum += other.sum;
        self.sumsq += other.sumsq;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.first_ts < self.first_ts {
            self.first_ts = other.first_ts;
            self.first = other.first;
        }
        if other.last_ts > self.last_ts {
            self.last_ts = other.last_ts;
            self.last = other.last;
        }
        self.sx += other.sx;
        self.sxx += other.sxx;
        self.sxy += other.sxy;
        if let Some(o) = &other.sketch {
            self.sketch.get_or_insert_with(Default::default).merge(o);
        }
    }

    /// Move the regression sums to a time axis whose zero lies `d` hours
    /// earlier (every x grows by d).
    pub(crate) fn shift_x(&mut self, d: f64) {
        let n = self.n as f64;
        self.sxx += 2.0 * d * self.sx + n * d * d;
        self.sxy += d * self.sum;
        self.sx += n * d;
    }

    pub(crate) fn add(&mut self, ts_ms: i64, value: f64, x: f64) {
        self.n += 1;
        self.sum += value;
        self.sumsq += value * value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        // Ties keep the reading that arrived first.
        if ts_ms < self.first_ts {
            self.first_ts = ts_ms;
            self.first = value;
        }
        if ts_ms > self.last_ts {
            self.last_ts = ts_ms;
            self.last = value;
        }
        self.sx += x;
        self.sxx += x * x;
        self.sxy += x * value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_state_keeps_order_statistics_by_event_time() {
        let mut s = PartialState::new(2_000, 5.0, 2.0);
        s.add(1_000, 7.0, 1.0);
        s.add(3_000, 1.0, 3.0);
        s.add(3_000, 9.0, 3.0);
        assert_eq!((s.n, s.sum, s.sumsq), (4, 22.0, 25.0 + 49.0 + 1.0 + 81.0));
        assert_eq!((s.min, s.max), (1.0, 9.0));
        assert_eq!((s.first_ts, s.first), (1_000, 7.0));
        assert_eq!(
            (s.last_ts, s.last),
            (3_000, 1.0),
            "ties keep the first arrival"
        );
        assert_eq!((s.sx, s.sxx, s.sxy), (9.0, 23.0, 10.0 + 7.0 + 3.0 + 27.0));
    }

    #[test]
    fn shifting_the_time_axis_matches_recomputing() {
        // Readings at hours 1, 2, 4 (x from origin 0) vs from origin 1.
        let readings = [(1.0, 5.0), (2.0, 7.0), (4.0, 3.0)];
        let state = |origin: f64| {
            let mut st = PartialState::new(0, readings[0].1, readings[0].0 - origin);
            for (h, v) in &readings[1..] {
                st.add(0, *v, h - origin);
            }
            st
        };
        let mut shifted = state(1.0);
        shifted.shift_x(1.0);
        let direct = state(0.0);
        for (a, b) in [
            (shifted.sx, direct.sx),
            (shifted.sxx, direct.sxx),
            (shifted.sxy, direct.sxy),
        ] {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
    }

    #[test]
    fn merging_states_equals_adding_the_readings() {
        let readings = [(1_000, 5.0), (4_000, 2.0), (2_000, 8.0), (3_000, 1.0)];
        let x = |ts: i64| ts as f64 / 1_000.0;
        let mut all = PartialState::new(readings[0].0, readings[0].1, x(readings[0].0));
        for (ts, v) in &readings[1..] {
            all.add(*ts, *v, x(*ts));
        }
        let mut left = PartialState::new(1_000, 5.0, 1.0);
        left.add(4_000, 2.0, 4.0);
        let mut right = PartialState::new(2_000, 8.0, 2.0);
        right.add(3_000, 1.0, 3.0);
        left.merge(&right);
        assert_eq!(left, all);
    }
}
