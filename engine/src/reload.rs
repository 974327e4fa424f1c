//! Swapping the rules of a running engine.
//!
//! A reload happens between windows (the pipeline calls it between message
//! bursts), so no window is graded half by old and half by new rules.
//! - Window stores whose size, slide and lateness are still used keep
//!   their state; their rules and metrics are updated.
//! - A rule whose id stays keeps its warnings and pending timers, even if
//!   its thresholds, timers or text changed: no resolve-and-re-raise storm.
//!   The next window is graded by the new version.
//! - A removed rule, or one whose grouping changed (its group keys mean
//!   something else now), resolves its warnings with `rule_removed`.
//! - A store the new rules need that did not exist starts empty; its first
//!   windows, which only saw readings since the reload, are not graded.

use std::collections::HashMap;

use yujing_rules::{RuleSet, WarningTransition};

use super::{Engine, StoreKey, WindowGroup, by_store, metric_ids, new_group, wants_sketches};

/// What a reload changed.
#[derive(Debug, Default)]
pub struct Reload {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
    /// Resolutions of the removed rules' warnings.
    pub transitions: Vec<WarningTransition>,
}

impl Engine {
    /// Replace the rules with `rules` (already validated).
    pub fn reload(&mut self, rules: &RuleSet) -> Reload {
        let at_ms = self.watermark().unwrap_or(0);
        let mut out = Reload::default();
        for old in &self.rules.rules {
            match rules.get(&old.id) {
                None => {
                    out.removed.push(old.id.clone());
                    out.transitions.extend(self.book.retire(old, at_ms));
                }
                Some(new) if new.group_by != old.group_by => {
                    out.changed.push(old.id.clone());
                    out.transitions.extend(self.book.retire(old, at_ms));
                }
                Some(new) if new != old => out.changed.push(old.id.clone()),
                Some(_) => out.unchanged += 1,
            }
        }
        for new in &rules.rules {
            if self.rules.get(&new.id).is_none() {
                out.added.push(new.id.clone());
            }
        }

        // Baselines are kept only for rules whose baseline and series stay.
        let old_rules = &self.rules;
        self.baselines.retain(|id| {
            old_rules.get(id).zip(rules.get(id)).is_some_and(|(o, n)| {
                o.baseline == n.baseline
                    && o.metric == n.metric
                    && o.aggregate == n.aggregate
                    && o.window == n.window
                    && o.group_by == n.group_by
            })
        });
        self.catalog = self.catalog.extended(rules.metrics());
        let mut old: HashMap<StoreKey, WindowGroup> =
            self.groups.drain(..).map(|g| (g.key, g)).collect();
        for (key, plan) in by_store(rules, self.default_lateness_ms) {
            let group = match old.remove(&key) {
                Some(mut g) => {
                    g.store
                        .set_metrics(&self.catalog, &metric_ids(&plan, &self.catalog));
                    if wants_sketches(&plan.rules) {
                        g.store.set_sketches(true);
                    }
                    g.rules = plan.rules;
                    g
                }
                None => {
                    let (spec, _) = key;
                    // The first window entirely after the reload.
                    let windows = yujing_ingest::Windows::hopping(
                        spec.size_ms,
                        spec.slide_ms,
                        self.utc_offset_ms,
                    );
                    let grade_from = windows.pane_of(at_ms) + spec.slide_ms + spec.size_ms;
                    new_group(key, plan, &self.catalog, self.utc_offset_ms, grade_from)
                }
            };
            self.groups.push(group);
        }
        let mut old_sessions: HashMap<_, _> = self.sessions.drain(..).map(|g| (g.key, g)).collect();
        for (key, session_rules) in super::sessions::by_session_store(rules) {
            let group = match old_sessions.remove(&key) {
                Some(mut g) => {
                    g.set_rules(session_rules, &self.catalog);
                    g
                }
                None => super::sessions::new_session_group(key, session_rules, &self.catalog),
            };
            self.sessions.push(group);
        }
        self.silent_metrics = super::silence::silent_metrics(rules, &self.catalog);
        self.limits = super::limits::by_metric(&self.catalog, self.measurements.as_ref());
        self.rules = rules.clone();
        out
    }
}
