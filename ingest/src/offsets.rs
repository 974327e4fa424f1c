//! Which offsets may be committed.
//!
//! A message may only be committed once every window holding one of its
//! readings has closed and the resulting warnings were acknowledged by the
//! sinks; otherwise a restart would lose them. For each partition the
//! tracker keeps, per window end still pending, the smallest offset waiting
//! for it. The committable offset is the smallest pending offset, or the
//! next offset to read when nothing is pending.

use std::collections::{BTreeMap, HashMap};

/// One partition's progress in a checkpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartitionProgress {
    pub topic: String,
    pub partition: i32,
    /// The next offset to read.
    pub next: i64,
    /// (window end, smallest offset whose readings wait for it).
    pub pending: Vec<(i64, i64)>,
}

#[derive(Debug, Default)]
struct Partition {
    /// Offset after the last message consumed.
    next: i64,
    /// Window end → smallest offset whose readings wait for it.
    pending: BTreeMap<i64, i64>,
    /// Last offset handed out for commit.
    committed: Option<i64>,
}

impl Partition {
    fn committable(&self) -> i64 {
        self.pending.values().min().copied().unwrap_or(self.next)
    }
}

/// Pending offsets per (topic, partition). Keyed topic first so the hot
/// path looks a topic up by `&str` without allocating.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    topics: HashMap<String, HashMap<i32, Partition>>,
}

impl OffsetTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A message was consumed. `done_at` is the latest end of the windows its
    /// readings went into, or `None` when it needs nothing more (for
    /// example it was dead-lettered and acknowledged).
    pub fn consumed(&mut self, topic: &str, partition: i32, offset: i64, done_at: Option<i64>) {
        if !self.topics.contains_key(topic) {
            self.topics.insert(topic.to_owned(), HashMap::new());
        }
        let p = self
            .topics
            .get_mut(topic)
            .expect("inserted above")
            .entry(partition)
            .or_default();
        p.next = p.next.max(offset + 1);
        if let Some(end) = done_at {
            let min = p.pending.entry(end).or_insert(offset);
            *min = (*min).min(offset);
        }
    }

    /// Every window ending at or before `closed_until` has closed and its
    /// warnings were acknowledged.
    pub fn windows_closed(&mut self, closed_until: i64) {
        for p in self.topics.values_mut().flat_map(|t| t.values_mut()) {
            let still_open = p.pending.split_off(&(closed_until + 1));
            p.pending = still_open;
        }
    }

    /// Whether some partition's offset advanced since the last commit.
    pub fn has_commits(&self) -> bool {
        self.topics
            .values()
            .flat_map(|t| t.values())
            .any(|p| p.committed.is_none_or(|c| c < p.committable()))
    }

    /// Offsets that advanced since the last commit, as (topic, partition,
    /// next offset to read) — Kafka's commit convention — without marking
    /// them committed (see [`mark_committed`](Self::mark_committed)).
    pub fn commits(&self) -> Vec<(String, i32, i64)> {
        let mut out = Vec::new();
        for (topic, partitions) in &self.topics {
            for (partition, p) in partitions {
                let offset = p.committable();
                if p.committed.is_none_or(|c| c < offset) {
                    out.push((topic.clone(), *partition, offset));
                }
            }
        }
        out.sort();
        out
    }

    /// These offsets were committed.
    pub fn mark_committed(&mut self, commits: &[(String, i32, i64)]) {
        for (topic, partition, offset) in commits {
            if let Some(p) = self
                .topics
                .get_mut(topic)
                .and_then(|t| t.get_mut(partition))
            {
                p.committed = Some(p.committed.map_or(*offset, |c| c.max(*offset)));
            }
        }
    }

    /// [`commits`](Self::commits), marked committed.
    pub fn take_commits(&mut self) -> Vec<(String, i32, i64)> {
        let out = self.commits();
        self.mark_committed(&out);
        out
    }

    /// Per partition: the next offset to read and the pending window ends
    /// with their smallest offsets, for a checkpoint.
    pub fn snapshot(&self) -> Vec<PartitionProgress> {
        let mut out: Vec<PartitionProgress> = self
            .topics
            .iter()
            .flat_map(|(topic, ps)| {
                ps.iter().map(move |(partition, p)| PartitionProgress {
                    topic: topic.clone(),
                    partition: *partition,
                    next: p.next,
                    pending: p.pending.iter().map(|(e, o)| (*e, *o)).collect(),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out
    }

    /// One partition's progress (see [`snapshot`](Self::snapshot)).
    pub fn progress(&self, topic: &str, partition: i32) -> Option<PartitionProgress> {
        let p = self.topics.get(topic)?.get(&partition)?;
        Some(PartitionProgress {
            topic: topic.to_owned(),
            partition,
            next: p.next,
            pending: p.pending.iter().map(|(e, o)| (*e, *o)).collect(),
        })
    }

    /// Take up a checkpoint's progress: reading resumes at each `next`,
    /// and commits still wait for the windows the checkpoint's readings
    /// are in (so the committed offsets stay a safe place to replay from).
    pub fn restore(&mut self, progress: &[PartitionProgress]) {
        for p in progress {
            let partition = self
                .topics
                .entry(p.topic.clone())
                .or_default()
                .entry(p.partition)
                .or_default();
            partition.next = partition.next.max(p.next);
            for (end, offset) in &p.pending {
                let min = partition.pending.entry(*end).or_insert(*offset);
                *min = (*min).min(*offset);
            }
        }
    }

    /// Forget a partition (revoked in a rebalance).
    pub fn remove(&mut self, topic: &str, partition: i32) {
        if let Some(t) = self.topics.get_mut(topic) {
            t.remove(&partition);
        }
    }

    /// Per partition with messages consumed but not committed: the offset
    /// a restart reads from (the last commit, if any) and the next offset
    /// to read, sorted. What a stop that cannot commit leaves to replay.
    pub fn not_committed(&self) -> Vec<(String, i32, Option<i64>, i64)> {
        let mut out: Vec<(String, i32, Option<i64>, i64)> = self
            .topics
            .iter()
            .flat_map(|(topic, ps)| {
                ps.iter()
                    .filter(|(_, p)| p.committed.is_none_or(|c| c < p.next))
                    .map(move |(partition, p)| (topic.clone(), *partition, p.committed, p.next))
            })
            .collect();
        out.sort();
        out
    }

    /// Messages consumed but not yet committable, over all partitions (an
    /// upper bound: counts offsets between the committable and next offset).
    pub fn uncommitted(&self) -> i64 {
        self.topics
            .values()
            .flat_map(|t| t.values())
            .map(|p| p.next - p.committable())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_wait_for_windows() {
        let mut t = OffsetTracker::new();
        t.consumed("r", 0, 10, Some(100));
        t.consumed("r", 0, 11, Some(200));
        t.consumed("r", 0, 12, None);
        t.consumed("r", 0, 13, Some(100));
        // Offset 10 waits for window 100: nothing beyond it may be committed.
        assert_eq!(t.take_commits(), vec![("r".into(), 0, 10)]);
        assert_eq!(t.uncommitted(), 4);
        t.windows_closed(100);
        assert_eq!(t.take_commits(), vec![("r".into(), 0, 11)]);
        assert!(t.take_commits().is_empty(), "no change, no commit");
        t.windows_closed(250);
        assert_eq!(t.take_commits(), vec![("r".into(), 0, 14)]);
        assert_eq!(t.uncommitted(), 0);
    }

    #[test]
    fn restored_progress_keeps_commits_waiting_for_the_checkpointed_windows() {
        let mut t = OffsetTracker::new();
        t.consumed("r", 0, 10, Some(100));
        t.consumed("r", 0, 11, Some(200));
        let saved = t.snapshot();
        assert_eq!(saved[0].next, 12);

        let mut after = OffsetTracker::new();
        after.restore(&saved);
        after.consumed("r", 0, 12, None);
        assert_eq!(after.take_commits(), vec![("r".into(), 0, 10)]);
        after.windows_closed(200);
        assert_eq!(after.take_commits(), vec![("r".into(), 0, 13)]);
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::new();
        t.consumed("r", 0, 5, Some(100));
        t.consumed("r", 1, 7, None);
        assert_eq!(
            t.take_commits(),
            vec![("r".into(), 0, 5), ("r".into(), 1, 8)]
        );
        t.remove("r", 0);
        t.windows_closed(100);
        assert!(t.take_commits().is_empty());
    }
}
