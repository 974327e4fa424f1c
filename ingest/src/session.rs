//! Session windows: a burst of readings per group (a noise event, a
//! storm), open while readings keep coming within `gap` of each other and
//! never longer than `max`.
//!
//! Sessions are kept per group (sensor, grid, street or district, as the
//! rules group) and metric, with one mergeable partial state per sensor, so
//! memory grows with the groups that are active, not with readings. A
//! session closes when the watermark passes its last reading plus `gap`
//! (its end), or when it has lasted `max`; a reading after that starts a
//! new session. A closed session becomes the same Arrow batch as a closed
//! tumbling window, so the same DataFusion aggregates and rules apply.
//!
//! A reading older than the watermark that no open session of its group
//! can take (within `gap`) is late: its session may already have closed.

use rustc_hash::FxHashMap;

use crate::error::IngestError;
use crate::metric::MetricCatalog;
use crate::registry::{AreaLevel, SensorRegistry};
use crate::window::{ClosedWindow, MS_PER_HOUR, PartialState, states_batch};

/// Gap and maximum length of the sessions of one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionSpec {
    pub gap_ms: i64,
    pub max_ms: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    start_ms: i64,
    last_ms: i64,
    /// Time axis origin of the regression sums (the first reading).
    origin_ms: i64,
    states: FxHashMap<u32, PartialState>,
}

impl Session {
    /// When the session closes if nothing more comes.
    fn end_ms(&self, spec: SessionSpec) -> i64 {
        (self.last_ms + spec.gap_ms).min(self.start_ms + spec.max_ms)
    }

    /// Whether a reading at `ts_ms` belongs to this session.
    fn takes(&self, ts_ms: i64, spec: SessionSpec) -> bool {
        ts_ms >= self.start_ms - spec.gap_ms
            && ts_ms <= self.last_ms + spec.gap_ms
            && ts_ms.max(self.last_ms) - ts_ms.min(self.start_ms) < spec.max_ms
    }
}

/// Merge sessions (sorted by start) that a reading brought within `gap`
/// of each other, as long as the merged one stays under `max`.
fn merge_bridged(sessions: &mut Vec<Session>, spec: SessionSpec) {
    sessions.sort_by_key(|s| s.start_ms);
    let mut i = 0;
    while i + 1 < sessions.len() {
        let (a, b) = (&sessions[i], &sessions[i + 1]);
        let bridged = b.start_ms <= a.last_ms + spec.gap_ms
            && b.last_ms.max(a.last_ms) - a.start_ms < spec.max_ms;
        if !bridged {
            i += 1;
            continue;
        }
        let b = sessions.remove(i + 1);
        let a = &mut sessions[i];
        // Re-base b's regression sums onto a's time axis.
        let d = (b.origin_ms - a.origin_ms) as f64 / MS_PER_HOUR;
        for (sensor, mut st) in b.states {
            st.shift_x(d);
            a.states
                .entry(sensor)
                .and_modify(|m| m.merge(&st))
                .or_insert(st);
        }
        a.start_ms = a.start_ms.min(b.start_ms);
        a.last_ms = a.last_ms.max(b.last_ms);
    }
}

/// A closed session and the group it belongs to.
#[derive(Debug, Clone)]
pub struct ClosedSession {
    pub group_key: String,
    pub window: ClosedWindow,
}

/// A [`SessionStore`]'s open sessions in a checkpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionSnapshot {
    pub open: Vec<(u32, u16, Vec<Session>)>,
    pub watermark: i64,
}

/// Open sessions of one spec and grouping.
#[derive(Debug)]
pub struct SessionStore {
    spec: SessionSpec,
    group_by: AreaLevel,
    wants: Vec<bool>,
    /// (group index, see `SensorRegistry::group_index`, metric) → its
    /// open sessions, oldest first (usually one).
    open: FxHashMap<(u32, u16), Vec<Session>>,
    watermark: i64,
}

impl SessionStore {
    pub fn new(
        spec: SessionSpec,
        group_by: AreaLevel,
        catalog: &MetricCatalog,
        metrics: &[u16],
    ) -> Self {
        let mut store = SessionStore {
            spec,
            group_by,
            wants: Vec::new(),
            open: FxHashMap::default(),
            watermark: i64::MIN,
        };
        store.set_metrics(catalog, metrics);
        store
    }

    /// The open sessions, for a checkpoint: (group index, metric id, its
    /// sessions) and the watermark they were last closed at.
    pub fn snapshot(&self) -> SessionSnapshot {
        SessionSnapshot {
            open: self
                .open
                .iter()
                .map(|(&(group, metric), s)| (group, metric, s.clone()))
                .collect(),
            watermark: self.watermark,
        }
    }

    /// Replace the open sessions with a snapshot's.
    pub fn restore(&mut self, snapshot: SessionSnapshot) {
        self.open = snapshot
            .open
            .into_iter()
            .map(|(group, metric, s)| ((group, metric), s))
            .collect();
        self.watermark = snapshot.watermark;
    }

    /// The open sessions holding any sensor `which` marks (one partition's
    /// sensors, handed to the partition's next owner).
    pub fn snapshot_sensors(&self, which: &[bool]) -> SessionSnapshot {
        let picked = |sensor: &u32| which.get(*sensor as usize).copied().unwrap_or(false);
        let mut snapshot = self.snapshot();
        snapshot
            .open
            .retain(|(_, _, sessions)| sessions.iter().any(|s| s.states.keys().any(picked)));
        snapshot
    }

    /// Take over open sessions of groups this store has none open for;
    /// returns the number of groups skipped because they had.
    pub fn merge(&mut self, snapshot: SessionSnapshot) -> usize {
        let mut skipped = 0;
        for (group, metric, sessions) in snapshot.open {
            match self.open.entry((group, metric)) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(sessions);
                }
                std::collections::hash_map::Entry::Occupied(_) => skipped += 1,
            }
        }
        skipped
    }

    /// Drop the states of the sensors `gone` marks from every open session
    /// (and sessions left empty).
    pub fn forget_sensors(&mut self, gone: &[bool]) {
        for sessions in self.open.values_mut() {
            for s in sessions.iter_mut() {
                s.states
                    .retain(|sensor, _| !gone.get(*sensor as usize).copied().unwrap_or(false));
            }
            sessions.retain(|s| !s.states.is_empty());
        }
        self.open.retain(|_, s| !s.is_empty());
    }

    pub fn spec(&self) -> SessionSpec {
        self.spec
    }

    pub fn group_by(&self) -> AreaLevel {
        self.group_by
    }

    pub fn set_metrics(&mut self, catalog: &MetricCatalog, metrics: &[u16]) {
        self.wants = vec![false; catalog.len()];
        for &m in metrics {
            self.wants[m as usize] = true;
        }
    }

    pub fn wants(&self, metric: u16) -> bool {
        self.wants.get(metric as usize).copied().unwrap_or(false)
    }

    /// Open sessions held.
    pub fn sessions(&self) -> usize {
        self.open.values().map(Vec::len).sum()
    }

    /// Names of the groups with a session open (a burst going on).
    pub fn open_group_keys<'r>(
        &self,
        registry: &'r SensorRegistry,
    ) -> std::collections::HashSet<&'r str> {
        self.open
            .keys()
            .map(|(group, _)| registry.group_key(self.group_by, *group))
            .collect()
    }

    /// Partial states held.
    pub fn states(&self) -> usize {
        self.open.values().flatten().map(|s| s.states.len()).sum()
    }

    /// Add a reading of `sensor` (an index into `registry`). `Ok` gives the
    /// latest time its session can close (start + max), for offset
    /// tracking; `Err` gives the watermark when the reading is late.
    pub fn insert(
        &mut self,
        registry: &SensorRegistry,
        sensor: u32,
        metric: u16,
        ts_ms: i64,
        value: f64,
    ) -> Result<i64, i64> {
        let group = registry.group_index(self.group_by, sensor);
        let spec = self.spec;
        let sessions = self.open.entry((group, metric)).or_default();
        if let Some(s) = sessions.iter_mut().find(|s| s.takes(ts_ms, spec)) {
            s.start_ms = s.start_ms.min(ts_ms);
            s.last_ms = s.last_ms.max(ts_ms);
            let x = (ts_ms - s.origin_ms) as f64 / MS_PER_HOUR;
            s.states
                .entry(sensor)
                .and_modify(|st| st.add(ts_ms, value, x))
                .or_insert_with(|| PartialState::new(ts_ms, value, x));
            // An out-of-order reading can bridge two sessions.
            merge_bridged(sessions, spec);
            let s = sessions
                .iter()
                .find(|s| s.start_ms <= ts_ms && ts_ms <= s.last_ms)
                .expect("the reading's session");
            return Ok(s.start_ms + spec.max_ms + spec.gap_ms);
        }
        if ts_ms < self.watermark {
            if sessions.is_empty() {
                self.open.remove(&(group, metric));
            }
            return Err(self.watermark);
        }
        let mut states = FxHashMap::default();
        states.insert(sensor, PartialState::new(ts_ms, value, 0.0));
        sessions.push(Session {
            start_ms: ts_ms,
            last_ms: ts_ms,
            origin_ms: ts_ms,
            states,
        });
        sessions.sort_by_key(|s| s.start_ms);
        Ok(ts_ms + spec.max_ms + spec.gap_ms)
    }

    /// Close every session whose end the watermark passed, oldest first.
    pub fn close_until(
        &mut self,
        watermark: i64,
        registry: &SensorRegistry,
        catalog: &MetricCatalog,
    ) -> Result<Vec<ClosedSession>, IngestError> {
        self.watermark = self.watermark.max(watermark);
        let spec = self.spec;
        let mut due: Vec<((u32, u16), Session)> = Vec::new();
        self.open.retain(|key, sessions| {
            let (closed, open): (Vec<Session>, Vec<Session>) = std::mem::take(sessions)
                .into_iter()
                .partition(|s| s.end_ms(spec) <= watermark);
            due.extend(closed.into_iter().map(|s| (*key, s)));
            *sessions = open;
            !sessions.is_empty()
        });
        due.sort_by_key(|(k, s)| (s.end_ms(spec), *k));
        let mut out = Vec::with_capacity(due.len());
        for (key, s) in due {
            let end_ms = s.end_ms(spec);
            let batch = states_batch(
                s.states
                    .into_iter()
                    .map(|(sensor, st)| ((sensor, key.1), st)),
                registry,
                catalog,
            )?;
            out.push(ClosedSession {
                group_key: registry.group_key(self.group_by, key.0).to_owned(),
                window: ClosedWindow {
                    start_ms: s.start_ms,
                    end_ms,
                    batch,
                    correction: false,
                    x_origin_ms: s.origin_ms,
                },
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Sensor;

    const MIN: i64 = 60_000;

    fn registry() -> SensorRegistry {
        let s = |id: &str, grid: &str| Sensor {
            sensor_id: id.into(),
            kind: "noise".into(),
            district: "Yubei".into(),
            district_code: "500112".into(),
            street: "Longxi".into(),
            grid: grid.into(),
            lat: 29.6,
            lon: 106.5,
            names: Default::default(),
        };
        SensorRegistry::new(vec![s("n1", "g1"), s("n2", "g1"), s("n3", "g2")]).unwrap()
    }

    fn summary(closed: &[ClosedSession]) -> Vec<(String, i64, i64, usize)> {
        closed
            .iter()
            .map(|c| {
                (
                    c.group_key.clone(),
                    c.window.start_ms / MIN,
                    c.window.end_ms / MIN,
                    c.window.batch.num_rows(),
                )
            })
            .collect()
    }

    #[test]
    fn bursts_per_group_close_after_the_gap_or_at_max() {
        let reg = registry();
        let cat = MetricCatalog::new(["noise_db"]);
        let spec = SessionSpec {
            gap_ms: 5 * MIN,
            max_ms: 30 * MIN,
        };
        let mut store = SessionStore::new(spec, AreaLevel::Grid, &cat, &[0]);
        // g1: n1 at 0, 3 (out of order after n2 at 6), n2 at 6 → one burst,
        // ends 6 + 5 = 11. Then n1 at 20: a new burst.
        for (sensor, t) in [(0, 0), (1, 6), (0, 3), (0, 20)] {
            store.insert(&reg, sensor, 0, t * MIN, 70.0).unwrap();
        }
        // g2: n3 every 4 minutes from 0 to 40: hits max at 30.
        for t in (0..=40).step_by(4) {
            store.insert(&reg, 2, 0, t * MIN, 80.0).unwrap();
        }
        assert_eq!(store.sessions(), 4);
        let closed = store.close_until(11 * MIN, &reg, &cat).unwrap();
        assert_eq!(summary(&closed), [("g1".into(), 0, 11, 2)]);
        let closed = store.close_until(60 * MIN, &reg, &cat).unwrap();
        assert_eq!(
            summary(&closed),
            [
                ("g1".into(), 20, 25, 1),
                ("g2".into(), 0, 30, 1),
                ("g2".into(), 32, 45, 1)
            ]
        );
        assert_eq!(store.sessions(), 0);
        // Older than the watermark with no session to join: late.
        assert_eq!(store.insert(&reg, 0, 0, 50 * MIN, 1.0), Err(60 * MIN));
    }
}
