//! Session-window rules in the engine: one session store per gap, maximum
//! and grouping; each closed session is graded for its group alone.
//!
//! A group with a warning that sees no session for a whole `gap` counts a
//! missing window (so `tolerate_missing` and `keep_firing_for` work as for
//! fixed windows); its warning then resolves as `cleared`: the burst is
//! over.

use std::collections::{BTreeMap, HashMap};

use yujing_ingest::{AreaLevel, MetricCatalog, SessionSpec, SessionStore};
use yujing_rules::{Rule, RuleSet, WarningTransition};

use super::Engine;
use crate::EngineError;

pub(super) type SessionKey = (SessionSpec, AreaLevel);

pub(super) struct SessionGroup {
    pub key: SessionKey,
    pub store: SessionStore,
    pub rules: Vec<Rule>,
    /// (rule id, group key) → the last session end (or quiet gap) graded.
    pub evaluated: HashMap<(String, String), i64>,
}

fn metric_ids(rules: &[Rule], catalog: &MetricCatalog) -> Vec<u16> {
    rules
        .iter()
        .flat_map(|r| r.input_metrics())
        .filter_map(|m| catalog.id(m))
        .collect()
}

/// Session rules by store.
pub(super) fn by_session_store(rules: &RuleSet) -> BTreeMap<SessionKey, Vec<Rule>> {
    let mut out: BTreeMap<SessionKey, Vec<Rule>> = BTreeMap::new();
    for rule in &rules.rules {
        if let Some(spec) = rule.session {
            out.entry((spec, rule.group_by))
                .or_default()
                .push(rule.clone());
        }
    }
    out
}

pub(super) fn new_session_group(
    key: SessionKey,
    rules: Vec<Rule>,
    catalog: &MetricCatalog,
) -> SessionGroup {
    SessionGroup {
        key,
        store: SessionStore::new(key.0, key.1, catalog, &metric_ids(&rules, catalog)),
        rules,
        evaluated: HashMap::new(),
    }
}

impl SessionGroup {
    /// New rules for an existing store (a reload).
    pub(super) fn set_rules(&mut self, rules: Vec<Rule>, catalog: &MetricCatalog) {
        self.store
            .set_metrics(catalog, &metric_ids(&rules, catalog));
        self.rules = rules;
    }
}

impl Engine {
    /// Close the sessions the watermark passed and grade them; grade the
    /// quiet gaps of groups with a warning. Transitions in no particular
    /// order (the caller sorts by event time).
    pub(super) async fn close_sessions(
        &mut self,
        watermark: i64,
    ) -> Result<Vec<WarningTransition>, EngineError> {
        let mut out = Vec::new();
        // Called for every message: nothing can close or go quiet unless
        // the watermark moved.
        if self.sessions.is_empty() || self.sessions_closed_at >= watermark {
            return Ok(out);
        }
        self.sessions_closed_at = watermark;
        for sg in &mut self.sessions {
            let gap = sg.key.0.gap_ms;
            for closed in sg
                .store
                .close_until(watermark, &self.registry, &self.catalog)?
            {
                let w = &closed.window;
                for rule in &sg.rules {
                    let aggregates = self.aggregator.aggregate(w, rule).await?;
                    let aggregate = aggregates.iter().find(|a| a.group_key == closed.group_key);
                    out.extend(self.book.apply_group(
                        rule,
                        w.start_ms,
                        w.end_ms,
                        &closed.group_key,
                        aggregate,
                    ));
                    sg.evaluated
                        .insert((rule.id.clone(), closed.group_key.clone()), w.end_ms);
                }
            }
            // Groups with a warning or a pending grade and no burst going
            // on: every quiet gap is a missing window.
            let bursting = sg.store.open_group_keys(&self.registry);
            for rule in &sg.rules {
                for key in self.book.tracked_groups(&rule.id) {
                    if bursting.contains(key.as_str()) {
                        continue;
                    }
                    let last = sg
                        .evaluated
                        .entry((rule.id.clone(), key.clone()))
                        .or_insert(watermark);
                    while *last + gap <= watermark {
                        *last += gap;
                        out.extend(self.book.apply_group(rule, *last - gap, *last, &key, None));
                        if !self.book.tracked_groups(&rule.id).contains(&key) {
                            break;
                        }
                    }
                }
            }
            let book = &self.book;
            sg.evaluated
                .retain(|(rule, key), _| book.tracked_groups(rule).contains(key));
        }
        Ok(out)
    }
}
