//! One partition's share of the engine: the state of the sensors read
//! from it (open windows and sessions, silence history, its latest event
//! time) and the warnings of those sensors and of the areas all of whose
//! sensors are read from it. A rebalance hands it to the partition's next
//! owner, which merges it into its own engine instead of re-reading the
//! readings behind those windows.

use std::collections::{BTreeMap, HashMap, HashSet};

use yujing_ingest::{AreaLevel, PartitionProgress, SessionSnapshot, StoreSnapshot};
use yujing_rules::GroupState;

use super::Engine;
use super::silence::LastSeen;

pub const FORMAT: &str = "yujing.partition-state/v1";

#[derive(serde::Serialize, serde::Deserialize)]
pub struct PartitionState {
    pub format: String,
    pub topic: String,
    pub partition: i32,
    /// Sensors, metrics and windows it fits (see `Engine::fingerprint`).
    pub fingerprint: String,
    pub written_at_ms: i64,
    /// Where reading resumes, and the windows the uncommitted readings
    /// wait for (filled in by the pipeline).
    pub progress: Option<PartitionProgress>,
    sensors: Vec<u32>,
    stores: Vec<StoreSnapshot>,
    sessions: Vec<SessionSnapshot>,
    last_seen: Vec<(u32, u16, LastSeen)>,
    max_event_ms: Option<i64>,
    /// Rule id → its groups' warnings and timers.
    warnings: Vec<(String, Vec<(String, GroupState)>)>,
    /// What the pipeline hands over beside the engine's state, by name
    /// (`responses`: the response book's entries for these warnings).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extras: BTreeMap<String, serde_json::Value>,
}

impl PartitionState {
    /// The ids of the active warnings it carries.
    pub fn warning_ids(&self) -> impl Iterator<Item = &str> {
        self.warnings
            .iter()
            .flat_map(|(_, groups)| groups.iter().filter_map(|(_, g)| g.warning_id()))
    }
}

/// What merging a handed-over partition did.
#[derive(Debug, Default, PartialEq)]
pub struct Merged {
    pub sensors: usize,
    pub active_warnings: usize,
    /// Window states whose windows were already final here (lost to
    /// grading), and session groups already open here.
    pub skipped: usize,
}

impl Engine {
    /// Group keys, per rule grouping, of the groups that belong to the
    /// sensors `mine` marks: the sensors themselves, and areas none of
    /// whose other sensors is heard here.
    fn groups_of(&self, mine: &[bool]) -> HashMap<AreaLevel, HashSet<String>> {
        let registry = &self.registry;
        let mut out: HashMap<AreaLevel, HashSet<String>> = HashMap::new();
        for rule in &self.rules.rules {
            let level = rule.group_by;
            out.entry(level).or_insert_with(|| {
                let elsewhere: HashSet<u32> = (0..registry.len() as u32)
                    .filter(|s| !mine[*s as usize] && self.sensor_partitions.is_heard(*s))
                    .map(|s| registry.group_index(level, s))
                    .collect();
                (0..registry.len() as u32)
                    .filter(|s| mine[*s as usize])
                    .map(|s| registry.group_index(level, s))
                    .filter(|g| !elsewhere.contains(g))
                    .map(|g| registry.group_key(level, g).to_owned())
                    .collect()
            });
        }
        out
    }

    /// The state of (topic, partition)'s sensors. With `take`, it leaves
    /// this engine (the partition was revoked): window and session states,
    /// silence and duplicate history and warnings are dropped here,
    /// without transitions, and the partition no longer holds the
    /// watermark.
    pub fn partition_state(&mut self, topic: &str, partition: i32, take: bool) -> PartitionState {
        let max_event_ms = self
            .watermarks
            .snapshot()
            .partitions
            .into_iter()
            .find(|(t, p, _)| t == topic && *p == partition)
            .map(|(_, _, m)| m);
        if take {
            self.watermarks.remove(topic, partition);
        }
        let mine = self
            .sensor_partitions
            .sensors_of(topic, partition)
            .unwrap_or_else(|| vec![false; self.registry.len()]);
        let groups = self.groups_of(&mine);
        let mut warnings = Vec::new();
        for rule in &self.rules.rules {
            let keys = &groups[&rule.group_by];
            let which = |key: &str| keys.contains(key);
            let taken = if take {
                self.book.take_groups(&rule.id, &which)
            } else {
                self.book.copy_groups(&rule.id, &which)
            };
            if !taken.is_empty() {
                warnings.push((rule.id.clone(), taken));
            }
        }
        let state = PartitionState {
            format: FORMAT.to_owned(),
            topic: topic.to_owned(),
            partition,
            fingerprint: self.fingerprint(),
            written_at_ms: yujing_ingest::clock::wall_now_ms(),
            progress: None,
            sensors: (0..mine.len() as u32)
                .filter(|s| mine[*s as usize])
                .collect(),
            stores: self
                .groups
                .iter()
                .map(|g| g.store.snapshot_sensors(&mine))
                .collect(),
            sessions: self
                .sessions
                .iter()
                .map(|s| s.store.snapshot_sensors(&mine))
                .collect(),
            last_seen: self
                .last_seen
                .iter()
                .filter(|((s, _), _)| mine[*s as usize])
                .map(|(&(s, m), seen)| (s, m, seen.clone()))
                .collect(),
            max_event_ms,
            warnings,
            extras: BTreeMap::new(),
        };
        if take && mine.contains(&true) {
            self.sensor_partitions
                .take_sensors(&self.registry, topic, partition);
            for g in &mut self.groups {
                g.store.forget_sensors(&mine);
            }
            for s in &mut self.sessions {
                s.store.forget_sensors(&mine);
            }
            self.recent.forget_sensors(&mine);
            self.last_seen.retain(|(s, _), _| !mine[*s as usize]);
            self.last_values.forget(|s| mine[s as usize]);
        }
        state
    }

    /// Stop tracking a partition this instance no longer reads, and drop
    /// the state of its sensors: open windows and sessions, silence and
    /// duplicate history, and the warnings of those sensors and of areas
    /// no sensor heard here belongs to any more (without transitions).
    /// The new owner rebuilds them from the readings not yet committed.
    /// Returns the number of active warnings forgotten.
    pub fn forget_partition(&mut self, topic: &str, partition: i32) -> usize {
        self.partition_state(topic, partition, true)
            .active_warnings()
    }

    /// Take over a partition another instance handed over (or this one
    /// wrote before a restart). `Err` if it was written for other
    /// sensors, metrics or windows.
    pub fn merge_partition_state(
        &mut self,
        state: PartitionState,
        now_ms: i64,
    ) -> Result<Merged, String> {
        if state.format != FORMAT {
            return Err(format!(
                "format {:?}, this yujing reads {FORMAT:?}",
                state.format
            ));
        }
        if state.fingerprint != self.fingerprint() {
            return Err("written for other sensors, metrics or windows".into());
        }
        let mut merged = Merged {
            sensors: state.sensors.len(),
            ..Merged::default()
        };
        let index = self.sensor_partitions.index(&state.topic, state.partition);
        for sensor in &state.sensors {
            self.sensor_partitions.saw(&self.registry, *sensor, index);
        }
        for (g, snapshot) in self.groups.iter_mut().zip(state.stores) {
            merged.skipped += g.store.merge(snapshot);
        }
        for (s, snapshot) in self.sessions.iter_mut().zip(state.sessions) {
            merged.skipped += s.store.merge(snapshot);
        }
        for (sensor, metric, seen) in state.last_seen {
            self.last_seen.insert((sensor, metric), seen);
        }
        if let Some(max) = state.max_event_ms {
            self.watermarks
                .observe(&state.topic, state.partition, max, now_ms);
        }
        for (rule, groups) in state.warnings {
            merged.active_warnings += self.book.put_groups(&rule, groups);
        }
        Ok(merged)
    }
}

impl PartitionState {
    /// Active warnings among the handed-over groups.
    pub fn active_warnings(&self) -> usize {
        self.warnings
            .iter()
            .flat_map(|(_, groups)| groups)
            .filter(|(_, g)| g.is_active())
            .count()
    }
}
