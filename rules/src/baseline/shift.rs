//! Level shifts: a two-sided CUSUM (Page's cumulative sum) of a group's
//! deviations. Each side adds the deviation beyond `drift` spreads and
//! never goes below zero; a side past `limit` is a level shift, whose
//! size is the mean deviation since that side last left zero. A window
//! adds at most half the limit, so however far one spike goes it is not
//! a shift: a shift takes three windows or more.

use super::Shift;

/// One group's two sums, and what each side has seen since it left zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct ShiftSums {
    up: Run,
    down: Run,
}

/// One direction's sum and the run behind it.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Run {
    sum: f64,
    /// The first window end of the current run (while `sum > 0`).
    since: i64,
    /// Σ (observed − expected) over the run, and its windows.
    step: f64,
    windows: u32,
}

impl Run {
    /// Add one window; `true` when the sum passes the limit.
    fn add(&mut self, spec: Shift, end: i64, z: f64, residual: f64) -> bool {
        let sum = self.sum + z.min(spec.limit / 2.0) - spec.drift;
        if sum <= 0.0 {
            *self = Run::default();
            return false;
        }
        if self.sum == 0.0 {
            self.since = end;
        }
        self.sum = sum;
        self.step += residual;
        self.windows += 1;
        self.sum > spec.limit
    }
}

/// A level shift found: the run's first window end and the step's size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Step {
    pub since: i64,
    pub size: f64,
}

impl ShiftSums {
    /// Add window `end`'s signed deviation `z` and its `residual`
    /// (observed − expected). A shift found resets both sides.
    pub(super) fn add(&mut self, spec: Shift, end: i64, z: f64, residual: f64) -> Option<Step> {
        let up = self.up.add(spec, end, z, residual);
        let down = self.down.add(spec, end, -z, residual);
        let side = match (up, down) {
            (true, _) => self.up,
            (false, true) => self.down,
            (false, false) => return None,
        };
        *self = ShiftSums::default();
        Some(Step {
            since: side.since,
            size: side.step / f64::from(side.windows.max(1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Shift = Shift {
        drift: 0.5,
        limit: 10.0,
    };

    #[test]
    fn a_step_is_found_after_enough_windows_and_a_spike_is_not() {
        let mut sums = ShiftSums::default();
        // A spike of 8 spreads, then normal: 7.5 summed, then drained.
        assert_eq!(sums.add(SPEC, 1, 8.0, 8.0), None);
        for end in 2..20 {
            assert_eq!(sums.add(SPEC, end, 0.0, 0.0), None, "end {end}");
        }
        assert_eq!(sums, ShiftSums::default(), "drained back to zero");
        // A step of 4 spreads (3.5 a window past the drift): found at the
        // third window, sized by the mean residual since the first.
        assert_eq!(sums.add(SPEC, 20, 4.0, 2.0), None);
        assert_eq!(sums.add(SPEC, 21, 4.0, 2.0), None);
        let step = sums.add(SPEC, 22, 4.0, 2.6).unwrap();
        assert_eq!(step.since, 20);
        assert!((step.size - 6.6 / 3.0).abs() < 1e-12, "{step:?}");
        assert_eq!(sums, ShiftSums::default());
        // Downwards alike; 6 spreads count as 5 (half the limit).
        assert!(sums.add(SPEC, 30, -6.0, -3.0).is_none());
        assert!(sums.add(SPEC, 31, -6.0, -3.0).is_none());
        let down = sums.add(SPEC, 32, -6.0, -3.0).unwrap();
        assert_eq!((down.since, down.size), (30, -3.0));
        // One spike of any size is not a shift.
        assert_eq!(sums.add(SPEC, 40, 1e6, 1e6), None);
    }
}
