//! Closing what the watermark passed: windows and sessions, the window
//! ends a tracked warning must still see, and grading them in event-time
//! order.

use std::collections::{BTreeSet, HashMap};

use yujing_ingest::ClosedWindow;
use yujing_rules::aqi::AqiSets;
use yujing_rules::{PerWindow, Quality, Rule, WindowAggregate, WindowSet, WindowSpec};

use super::{AQI_MOVING, Closed, Engine, SeriesKey, StoreKey, series_key};
use crate::EngineError;

/// Aggregates computed for one close: rule `r` of store `i` reads
/// `results[slots[(i, r)]]`; silence rules have no slot.
#[derive(Default)]
struct Computed {
    results: Vec<PerWindow>,
    slots: HashMap<(usize, usize), usize>,
}

impl Engine {
    /// Advance the watermark to processing time `now_ms`; close every window
    /// it passed, aggregate and grade them. `None` when nothing closed.
    pub async fn close_ready(&mut self, now_ms: i64) -> Result<Option<Closed>, EngineError> {
        let Some(watermark) = self.watermarks.advance(now_ms) else {
            return Ok(None);
        };
        let session_transitions = self.close_sessions(watermark).await?;
        // Due: a window with readings, or a window end without any that a
        // tracked warning must still see (so silence resolves it).
        // Cheap tests first: this runs for every message, and looking up
        // whether any of a group's rules is tracked costs one lookup per
        // rule; a new window end comes only once per slide.
        let ready = self.groups.iter().any(|g| {
            g.store.next_end().is_some_and(|end| end <= watermark)
                || (g
                    .evaluated_until
                    .is_some_and(|u| g.latest_end(watermark) > u)
                    && g.is_tracked(&self.book))
        });
        if !ready {
            for g in &mut self.groups {
                g.store.advance_to(watermark);
            }
            if session_transitions.is_empty() {
                return Ok(None);
            }
            return Ok(Some(Closed {
                watermark,
                windows: Vec::new(),
                transitions: session_transitions,
            }));
        }
        // Windows of all sizes, in order of their end, so that warnings go
        // out in event-time order.
        let mut due: Vec<(i64, usize, Option<ClosedWindow>)> = Vec::new();
        for (i, g) in self.groups.iter_mut().enumerate() {
            let windows = g
                .store
                .close_until(watermark, &self.registry, &self.catalog)?;
            let latest = g.latest_end(watermark);
            let slide = g.store.windows().slide_ms;
            let with_data: BTreeSet<i64> = windows
                .iter()
                .filter(|w| !w.correction)
                .map(|w| w.end_ms)
                .collect();
            // Window ends without readings are graded where a warning may
            // be tracked: one already is, or one may be raised by this
            // batch's windows, before a gap in the readings (a backtest
            // closes a long stretch of history at once).
            let is_tracked = g.is_tracked(&self.book) || !with_data.is_empty();
            let from = g
                .evaluated_until
                .or_else(|| with_data.first().map(|first| first - slide));
            if let (Some(from), true) = (from, is_tracked) {
                let limit = g.empty_run_limit();
                let (mut end, mut run) = (from + slide, 0);
                while end <= latest {
                    if with_data.contains(&end) {
                        run = 0;
                    } else if run < limit {
                        due.push((end, i, None));
                        run += 1;
                    } else {
                        // Nothing left to change until the next readings.
                        match with_data.range(end..).next() {
                            Some(&next) => {
                                end = next;
                                continue;
                            }
                            None => break,
                        }
                    }
                    end += slide;
                }
            }
            g.evaluated_until = Some(g.evaluated_until.map_or(latest, |u| u.max(latest)));
            due.extend(windows.into_iter().map(|w| (w.end_ms, i, Some(w))));
        }
        due.sort_by_key(|(end, i, w)| (*end, *i, w.as_ref().is_some_and(|w| !w.correction)));
        let mut out = Closed {
            watermark,
            ..Closed::default()
        };
        let computed = self.aggregate_due(&due).await?;
        for (end, i, window) in &due {
            let group = &self.groups[*i];
            if *end < group.grade_from {
                if let Some(w) = window {
                    out.windows.push((group.label.clone(), w.correction));
                }
                continue;
            }
            let Some(window) = window else {
                let start = end - group.store.windows().size_ms;
                for rule in &group.rules {
                    let silence = self.silence(rule, start, *end);
                    out.transitions
                        .extend(self.book.apply(rule, start, *end, &silence));
                }
                continue;
            };
            out.windows.push((group.label.clone(), window.correction));
            for (r, rule) in group.rules.iter().enumerate() {
                let own;
                let mut aggregates: &[WindowAggregate] = match computed.slots.get(&(*i, r)) {
                    Some(&slot) => computed.results[slot].get(end).map_or(&[], Vec::as_slice),
                    None => {
                        own = self.silence(rule, window.start_ms, window.end_ms);
                        &own
                    }
                };
                // Baseline rules grade the deviation from each group's past
                // (a correction replaces the window's value in that past).
                let deviations;
                if rule.baseline.is_some() {
                    deviations = self.baselines.deviations(rule, *end, aggregates);
                    aggregates = &deviations;
                }
                // A correction is graded like any window: the rule layer
                // may raise, escalate or resolve on it.
                let transitions = self
                    .book
                    .apply(rule, window.start_ms, window.end_ms, aggregates);
                out.transitions.extend(transitions.into_iter().map(|mut t| {
                    t.correction = window.correction;
                    t
                }));
            }
        }
        for seen in self.last_seen.values_mut() {
            seen.settle(watermark);
        }
        if !session_transitions.is_empty() {
            out.transitions.extend(session_transitions);
            // Sessions end at any time: keep warnings in event-time order.
            out.transitions.sort_by_key(|t| t.window_end_ms);
        }
        Ok(Some(out))
    }

    /// Aggregates of every rule over the windows with readings in `due`:
    /// one DataFusion query per store and rule (or shared series) for all
    /// of them, however many windows closed at once.
    async fn aggregate_due(
        &self,
        due: &[(i64, usize, Option<ClosedWindow>)],
    ) -> Result<Computed, EngineError> {
        // The stores an hourly AQI reads its moving means from.
        let aqi_sources: Vec<StoreKey> = self
            .groups
            .iter()
            .filter(|g| g.rules.iter().any(Rule::is_aqi))
            .flat_map(|g| AQI_MOVING.map(|(spec, _)| (spec, g.key.1)))
            .collect();
        let mut by_store: HashMap<usize, Vec<&ClosedWindow>> = HashMap::new();
        for (end, i, window) in due {
            let g = &self.groups[*i];
            // Silence is graded from reading times: no query, no stacking.
            let queried = !g.only_silence() || aqi_sources.contains(&g.key);
            if let (Some(w), true) = (window, *end >= g.grade_from && queried) {
                by_store.entry(*i).or_default().push(w);
            }
        }
        let mut sets: HashMap<usize, WindowSet> = HashMap::new();
        for (i, windows) in by_store {
            sets.insert(i, WindowSet::new(windows)?);
        }
        let mut computed = Computed::default();
        for (&i, set) in &sets {
            let group = &self.groups[i];
            // Rules that read the same series (metric, aggregate, grouping,
            // forecast) share one computation: thousands of rules must not
            // mean thousands of scans.
            let mut shared: HashMap<SeriesKey, usize> = HashMap::new();
            for (r, rule) in group.rules.iter().enumerate() {
                let result = match series_key(rule) {
                    _ if rule.quality == Some(Quality::Silent) => continue,
                    _ if rule.is_aqi() => {
                        let moving = |spec: WindowSpec| {
                            let key = (spec, group.key.1);
                            self.groups
                                .iter()
                                .position(|g| g.key == key)
                                .and_then(|j| sets.get(&j))
                        };
                        let aqi = AqiSets {
                            hourly: set,
                            o3_8h: moving(AQI_MOVING[0].0),
                            pm_24h: moving(AQI_MOVING[1].0),
                        };
                        self.aggregator.aqi_set(aqi, rule).await?
                    }
                    Some(key) => {
                        if let Some(&slot) = shared.get(&key) {
                            computed.slots.insert((i, r), slot);
                            continue;
                        }
                        shared.insert(key, computed.results.len());
                        self.aggregator.aggregate_set(set, rule).await?
                    }
                    None => self.aggregator.aggregate_set(set, rule).await?,
                };
                computed.slots.insert((i, r), computed.results.len());
                computed.results.push(result);
            }
        }
        Ok(computed)
    }
}
