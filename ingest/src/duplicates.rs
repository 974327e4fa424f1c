//! Duplicate readings: the same sensor, metric and timestamp again.
//!
//! Gateways resend after a timeout, and Kafka producers without
//! idempotence can write a message twice; a reading counted twice would
//! skew a window's sum, count and average. Each (sensor, metric) keeps its
//! last [`REMEMBERED`] timestamps; a reading whose timestamp is among them
//! is a duplicate. That catches resends of recent readings in any order
//! among those; a resend of something older than that is not caught (it is
//! usually late by then). Memory: about 48 bytes per (sensor, metric).

use rustc_hash::FxHashMap;

/// Timestamps remembered per (sensor, metric).
pub const REMEMBERED: usize = 4;

#[derive(Debug, Default)]
pub struct RecentReadings {
    seen: FxHashMap<(u32, u16), ([i64; REMEMBERED], u8)>,
}

impl RecentReadings {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether sensor `sensor`'s `metric` at `ts_ms` was seen already;
    /// if not, remember it.
    pub fn is_duplicate(&mut self, sensor: u32, metric: u16, ts_ms: i64) -> bool {
        let (recent, next) = self
            .seen
            .entry((sensor, metric))
            .or_insert(([i64::MIN; REMEMBERED], 0));
        if recent.contains(&ts_ms) {
            return true;
        }
        recent[*next as usize] = ts_ms;
        *next = ((*next as usize + 1) % REMEMBERED) as u8;
        false
    }

    /// Forget the sensors `gone` marks: their readings may come again
    /// later (their partition comes back) and must then count.
    pub fn forget_sensors(&mut self, gone: &[bool]) {
        self.seen
            .retain(|(sensor, _), _| !gone.get(*sensor as usize).copied().unwrap_or(false));
    }

    /// (sensor, metric) pairs remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_of_recent_readings_are_caught_in_any_order() {
        let mut r = RecentReadings::new();
        assert!(!r.is_duplicate(1, 0, 1_000));
        assert!(!r.is_duplicate(1, 0, 2_000));
        assert!(r.is_duplicate(1, 0, 1_000), "resent after a newer one");
        assert!(!r.is_duplicate(1, 1, 1_000), "another metric");
        assert!(!r.is_duplicate(2, 0, 1_000), "another sensor");
        assert!(!r.is_duplicate(1, 0, 3_000));
        assert!(!r.is_duplicate(1, 0, 4_000));
        assert!(!r.is_duplicate(1, 0, 5_000));
        // 1 000 was pushed out by four newer timestamps.
        assert!(!r.is_duplicate(1, 0, 1_000));
        assert_eq!(r.len(), 3);
    }
}
