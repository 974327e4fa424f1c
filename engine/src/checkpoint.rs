//! The engine's state in a checkpoint: open windows and sessions, the
//! watermark, silence and baseline history. Restored, the engine carries
//! on as if it had never stopped, without re-reading the readings behind
//! its open windows.
//!
//! Sensors and metrics are kept by index, so a snapshot only fits an
//! engine with the same sensors, metrics and window stores: the
//! [`EngineSnapshot::fingerprint`] says which. Rules may change thresholds,
//! timers or labels between runs; a change of windows, metrics or sensors
//! makes the snapshot unusable and the pipeline replays instead.

use sha2::{Digest, Sha256};
use yujing_ingest::{SessionSnapshot, StoreSnapshot, WatermarkSnapshot};
use yujing_rules::BaselineBook;

use super::Engine;
use super::silence::LastSeen;

/// One window store's state: which store (its label and key, for the
/// fingerprint), its windows, and how far its rules were graded.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct GroupSnapshot {
    label: String,
    store: StoreSnapshot,
    evaluated_until: Option<i64>,
    grade_from: i64,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct SessionGroupSnapshot {
    store: SessionSnapshot,
    /// (rule id, group key, last session end graded).
    evaluated: Vec<(String, String, i64)>,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct EngineSnapshot {
    /// What the snapshot fits: see the module documentation.
    pub fingerprint: String,
    groups: Vec<GroupSnapshot>,
    sessions: Vec<SessionGroupSnapshot>,
    sessions_closed_at: i64,
    watermarks: WatermarkSnapshot,
    /// (sensor index, metric id, when it was last heard from).
    last_seen: Vec<(u32, u16, LastSeen)>,
    baselines: BaselineBook,
}

impl EngineSnapshot {
    /// Window states held (pane × sensor × metric), for the log.
    pub fn states(&self) -> usize {
        self.groups
            .iter()
            .flat_map(|g| &g.store.panes)
            .map(|(_, s)| s.len())
            .sum()
    }
}

impl Engine {
    /// Sensors (in registry order), metrics (in catalog order), the time
    /// zone and every window and session store, hashed.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for s in self.registry.sensors() {
            h.update(s.sensor_id.as_bytes());
            h.update([0]);
        }
        h.update(b"\x01metrics");
        for m in self.catalog.names().iter().flatten() {
            h.update(m.as_bytes());
            h.update([0]);
        }
        h.update(format!("\x01utc{}", self.utc_offset_ms).as_bytes());
        for g in &self.groups {
            let (spec, lateness) = g.key;
            h.update(format!("\x01w{}/{}/{}", spec.size_ms, spec.slide_ms, lateness).as_bytes());
        }
        for s in &self.sessions {
            let (spec, level) = s.key;
            h.update(format!("\x01s{}/{}/{}", spec.gap_ms, spec.max_ms, level.as_str()).as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Everything to carry on from here after a restart.
    pub fn snapshot(&self) -> EngineSnapshot {
        let mut last_seen: Vec<(u32, u16, LastSeen)> = self
            .last_seen
            .iter()
            .map(|(&(sensor, metric), seen)| (sensor, metric, seen.clone()))
            .collect();
        last_seen.sort_by_key(|(s, m, _)| (*s, *m));
        EngineSnapshot {
            fingerprint: self.fingerprint(),
            groups: self
                .groups
                .iter()
                .map(|g| GroupSnapshot {
                    label: g.label.clone(),
                    store: g.store.snapshot(),
                    evaluated_until: g.evaluated_until,
                    grade_from: g.grade_from,
                })
                .collect(),
            sessions: self
                .sessions
                .iter()
                .map(|s| SessionGroupSnapshot {
                    store: s.store.snapshot(),
                    evaluated: s
                        .evaluated
                        .iter()
                        .map(|((rule, group), end)| (rule.clone(), group.clone(), *end))
                        .collect(),
                })
                .collect(),
            sessions_closed_at: self.sessions_closed_at,
            watermarks: self.watermarks.snapshot(),
            last_seen,
            baselines: self.baselines.clone(),
        }
    }

    /// Carry on from `snapshot`, which must have this engine's
    /// [`fingerprint`](Self::fingerprint) (the caller checks, to report a
    /// mismatch its own way). `now_ms` is processing time, for idleness.
    pub fn restore(&mut self, snapshot: EngineSnapshot, now_ms: i64) {
        debug_assert_eq!(snapshot.fingerprint, self.fingerprint());
        for (g, s) in self.groups.iter_mut().zip(snapshot.groups) {
            debug_assert_eq!(g.label, s.label);
            g.store.restore(s.store);
            g.evaluated_until = s.evaluated_until;
            g.grade_from = s.grade_from;
        }
        for (g, s) in self.sessions.iter_mut().zip(snapshot.sessions) {
            g.store.restore(s.store);
            g.evaluated = s
                .evaluated
                .into_iter()
                .map(|(rule, group, end)| ((rule, group), end))
                .collect();
        }
        self.sessions_closed_at = snapshot.sessions_closed_at;
        self.watermarks.restore(&snapshot.watermarks, now_ms);
        self.last_seen = snapshot
            .last_seen
            .into_iter()
            .map(|(sensor, metric, seen)| ((sensor, metric), seen))
            .collect();
        self.baselines = snapshot.baselines;
    }
}
