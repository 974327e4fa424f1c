//! Watermarks: how far event time has surely progressed.
//!
//! Each partition's watermark is the largest event time seen on it minus the
//! allowed delay; the pipeline's watermark is the minimum over the *active*
//! partitions, so one fast partition cannot close windows that a slower one
//! still feeds.
//!
//! Idle sources never freeze the pipeline:
//! - a partition that delivered nothing for `idle_timeout` (processing time)
//!   stops holding the watermark back;
//! - when every partition is idle, event time is assumed to move on with
//!   processing time: the watermark advances by the quiet time beyond
//!   `idle_timeout`, so the last windows close even if no newer reading ever
//!   arrives. It advances only by time actually spent quiet, so replaying
//!   old data never jumps it to "now".
//!
//! The pipeline watermark never goes backwards.

use std::collections::HashMap;

/// `max_event_ms` of a partition assigned but not heard from yet.
const NO_DATA: i64 = i64::MIN;

#[derive(Debug, Clone, Copy)]
struct Partition {
    max_event_ms: i64,
    /// Processing time of the last reading seen.
    last_seen_ms: i64,
}

/// [`Watermarks`] in a checkpoint: (topic, partition, latest event time)
/// and the pipeline watermark.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WatermarkSnapshot {
    pub partitions: Vec<(String, i32, i64)>,
    pub current: Option<i64>,
}

/// Watermarks per (topic, partition).
#[derive(Debug, Clone)]
pub struct Watermarks {
    allowed_delay_ms: i64,
    idle_timeout_ms: Option<i64>,
    /// Topic → partition → progress (topic first: `&str` lookups on the
    /// hot path allocate nothing).
    topics: HashMap<String, HashMap<i32, Partition>>,
    current: Option<i64>,
}

impl Watermarks {
    /// `idle_timeout_ms = None` disables idleness: every partition holds
    /// the watermark back for ever.
    pub fn new(allowed_delay_ms: i64, idle_timeout_ms: Option<i64>) -> Self {
        Watermarks {
            allowed_delay_ms,
            idle_timeout_ms,
            topics: HashMap::new(),
            current: None,
        }
    }

    /// Record an event time seen on a partition at processing time `now_ms`.
    pub fn observe(&mut self, topic: &str, partition: i32, ts_ms: i64, now_ms: i64) {
        if !self.topics.contains_key(topic) {
            self.topics.insert(topic.to_owned(), HashMap::new());
        }
        let partitions = self.topics.get_mut(topic).expect("inserted above");
        let p = partitions.entry(partition).or_insert(Partition {
            max_event_ms: ts_ms,
            last_seen_ms: now_ms,
        });
        p.max_event_ms = p.max_event_ms.max(ts_ms);
        p.last_seen_ms = p.last_seen_ms.max(now_ms);
    }

    /// A partition that will deliver (assigned by a rebalance): until its
    /// first event time, it holds the pipeline watermark where it is — its
    /// backlog may be older than what other partitions delivered — unless
    /// it stays silent for the idle timeout.
    pub fn expect(&mut self, topic: &str, partition: i32, now_ms: i64) {
        if !self.topics.contains_key(topic) {
            self.topics.insert(topic.to_owned(), HashMap::new());
        }
        let partitions = self.topics.get_mut(topic).expect("inserted above");
        partitions.entry(partition).or_insert(Partition {
            max_event_ms: NO_DATA,
            last_seen_ms: now_ms,
        });
    }

    /// The latest event time per partition, and the watermark, for a
    /// checkpoint.
    pub fn snapshot(&self) -> WatermarkSnapshot {
        let mut partitions: Vec<(String, i32, i64)> = self
            .topics
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |(p, s)| (t.clone(), *p, s.max_event_ms)))
            .filter(|(_, _, max)| *max != NO_DATA)
            .collect();
        partitions.sort();
        WatermarkSnapshot {
            partitions,
            current: self.current,
        }
    }

    /// Take up a checkpoint's progress, as if its partitions had just
    /// delivered their latest event times at `now_ms`.
    pub fn restore(&mut self, snapshot: &WatermarkSnapshot, now_ms: i64) {
        for (topic, partition, max_event_ms) in &snapshot.partitions {
            self.observe(topic, *partition, *max_event_ms, now_ms);
        }
        self.current = self.current.max(snapshot.current);
    }

    /// Forget a partition (revoked in a rebalance).
    pub fn remove(&mut self, topic: &str, partition: i32) {
        if let Some(t) = self.topics.get_mut(topic) {
            t.remove(&partition);
        }
    }

    /// Recompute the pipeline watermark at processing time `now_ms`; `None`
    /// before any data.
    pub fn advance(&mut self, now_ms: i64) -> Option<i64> {
        let idle = |p: &Partition| {
            self.idle_timeout_ms
                .is_some_and(|t| now_ms.saturating_sub(p.last_seen_ms) >= t)
        };
        let active_min = self
            .partitions()
            .filter(|p| !idle(p))
            .map(|p| p.max_event_ms)
            .min();
        let candidate = match (active_min, self.idle_timeout_ms) {
            // An assigned partition without data yet holds everything.
            (Some(NO_DATA), _) => None,
            (Some(min), _) => Some(min.saturating_sub(self.allowed_delay_ms)),
            // Everything is quiet: let event time follow processing time
            // from the most advanced partition.
            (None, Some(timeout)) => self
                .partitions()
                .filter(|p| p.max_event_ms != NO_DATA)
                .map(|p| {
                    let quiet = now_ms.saturating_sub(p.last_seen_ms) - timeout;
                    p.max_event_ms.saturating_add(quiet.max(0)) - self.allowed_delay_ms
                })
                .max(),
            (None, None) => None,
        };
        self.current = match (self.current, candidate) {
            (Some(c), Some(n)) => Some(c.max(n)),
            (c, n) => c.or(n),
        };
        self.current
    }

    /// The pipeline watermark as last computed by [`advance`](Self::advance).
    pub fn current(&self) -> Option<i64> {
        self.current
    }

    fn partitions(&self) -> impl Iterator<Item = &Partition> {
        self.topics.values().flat_map(|t| t.values())
    }

    /// Largest event time seen on any partition.
    pub fn max_event(&self) -> Option<i64> {
        self.partitions()
            .map(|p| p.max_event_ms)
            .filter(|m| *m != NO_DATA)
            .max()
    }

    /// Partitions currently counted as idle.
    pub fn idle_partitions(&self, now_ms: i64) -> usize {
        match self.idle_timeout_ms {
            Some(t) => self
                .partitions()
                .filter(|p| now_ms.saturating_sub(p.last_seen_ms) >= t)
                .count(),
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_over_partitions_minus_delay() {
        let mut w = Watermarks::new(30, None);
        assert_eq!(w.advance(0), None);
        w.observe("r", 0, 1_000, 0);
        assert_eq!(w.advance(0), Some(970));
        w.observe("r", 1, 500, 0);
        // Never backwards, even when a slower partition appears.
        assert_eq!(w.advance(0), Some(970));
        w.observe("r", 1, 1_500, 0);
        w.observe("r", 0, 2_000, 0);
        assert_eq!(w.advance(0), Some(1_470));
        // Out-of-order data does not move a watermark back.
        w.observe("r", 1, 400, 0);
        assert_eq!(w.advance(0), Some(1_470));
        assert_eq!(w.max_event(), Some(2_000));
        w.remove("r", 1);
        assert_eq!(w.advance(0), Some(1_970));
    }

    #[test]
    fn an_assigned_partition_holds_the_watermark_until_it_delivers() {
        let mut w = Watermarks::new(0, Some(10_000));
        w.expect("r", 0, 0);
        w.expect("r", 1, 0);
        // Partition 1's backlog is read first: up to minute 40.
        w.observe("r", 1, 2_400_000, 100);
        assert_eq!(w.advance(100), None, "partition 0 may hold older readings");
        w.observe("r", 0, 60_000, 200);
        assert_eq!(w.advance(200), Some(60_000));
        // An assigned partition that never delivers stops holding after
        // the idle timeout.
        w.expect("r", 2, 300);
        assert_eq!(w.advance(10_250), Some(60_000), "partition 2 holds it");
        // At 10 300 every partition is idle: event time follows the clock
        // from the most advanced one.
        assert_eq!(w.advance(10_300), Some(2_400_200));
        assert_eq!(w.max_event(), Some(2_400_000));
    }

    #[test]
    fn idle_partition_stops_holding_back() {
        let mut w = Watermarks::new(0, Some(10_000));
        w.observe("r", 0, 1_000, 0);
        w.observe("r", 1, 5_000, 0);
        assert_eq!(w.advance(1_000), Some(1_000));
        // Partition 1 keeps delivering; partition 0 falls silent.
        w.observe("r", 1, 20_000, 9_000);
        assert_eq!(w.advance(9_000), Some(1_000), "not idle yet");
        assert_eq!(w.advance(10_000), Some(20_000), "partition 0 idle");
        assert_eq!(w.idle_partitions(10_000), 1);
        // It comes back with older data: the watermark does not go back.
        w.observe("r", 0, 2_000, 11_000);
        assert_eq!(w.advance(11_000), Some(20_000));
    }

    #[test]
    fn quiet_stream_advances_with_processing_time() {
        let mut w = Watermarks::new(30_000, Some(60_000));
        w.observe("r", 0, 1_000_000, 0);
        assert_eq!(w.advance(0), Some(970_000));
        assert_eq!(
            w.advance(59_000),
            Some(970_000),
            "within the idle timeout nothing moves"
        );
        // 5 minutes of silence: event time assumed to move 4 minutes past
        // the idle timeout.
        assert_eq!(w.advance(300_000), Some(1_000_000 + 240_000 - 30_000));
        // Disabled idleness: silence freezes the watermark.
        let mut frozen = Watermarks::new(30_000, None);
        frozen.observe("r", 0, 1_000_000, 0);
        assert_eq!(frozen.advance(10_000_000), Some(970_000));
    }
}
