//! Watermarks: how far event time has surely progressed.
//!
//! Each partition's watermark is the largest event time seen on it minus the
//! allowed delay; the pipeline's watermark is the minimum over the partitions
//! that have delivered data, so one fast partition cannot close windows that
//! a slower one still feeds.

use std::collections::HashMap;

/// Watermarks per (topic, partition).
#[derive(Debug, Clone)]
pub struct Watermarks {
    allowed_delay_ms: i64,
    max_event_ms: HashMap<(String, i32), i64>,
}

impl Watermarks {
    pub fn new(allowed_delay_ms: i64) -> Self {
        Watermarks {
            allowed_delay_ms,
            max_event_ms: HashMap::new(),
        }
    }

    /// Record an event time seen on a partition.
    pub fn observe(&mut self, topic: &str, partition: i32, ts_ms: i64) {
        match self.max_event_ms.get_mut(&(topic.to_owned(), partition)) {
            Some(max) => *max = (*max).max(ts_ms),
            None => {
                self.max_event_ms
                    .insert((topic.to_owned(), partition), ts_ms);
            }
        }
    }

    /// Forget a partition (revoked in a rebalance).
    pub fn remove(&mut self, topic: &str, partition: i32) {
        self.max_event_ms.remove(&(topic.to_owned(), partition));
    }

    /// The pipeline watermark, or `None` before any data.
    pub fn current(&self) -> Option<i64> {
        self.max_event_ms
            .values()
            .min()
            .map(|m| m.saturating_sub(self.allowed_delay_ms))
    }

    /// Largest event time seen on any partition.
    pub fn max_event(&self) -> Option<i64> {
        self.max_event_ms.values().max().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_over_partitions_minus_delay() {
        let mut w = Watermarks::new(30);
        assert_eq!(w.current(), None);
        w.observe("r", 0, 1_000);
        assert_eq!(w.current(), Some(970));
        w.observe("r", 1, 500);
        assert_eq!(w.current(), Some(470));
        // Out-of-order data does not move a watermark back.
        w.observe("r", 1, 400);
        assert_eq!(w.current(), Some(470));
        w.observe("r", 1, 2_000);
        assert_eq!(w.current(), Some(970));
        assert_eq!(w.max_event(), Some(2_000));
        w.remove("r", 0);
        assert_eq!(w.current(), Some(1_970));
    }
}
