//! What the response loop adds to the rest of the pipeline: the route
//! labels of the unit answering for each alert, re-notification through
//! the new unit's route when a warning climbs, the responses handed over
//! with their partition, and the responsibility file reloaded with the
//! rules.

use std::collections::BTreeMap;

use yujing_response::Units;
use yujing_sinks::AlertMessage;

use super::{PipelineError, State};
use crate::telemetry::UnitsReloaded;

impl State {
    /// Put the route labels of the unit answering for each warning (the
    /// unit it is, or will be, assigned to) on its alert, so a sink routed
    /// on those labels reaches that unit.
    pub(super) fn label_assignees(&self, alerts: &mut [AlertMessage]) {
        let Some(r) = &self.responses else {
            return;
        };
        for a in alerts {
            let unit = match r.book.get(&a.warning_id) {
                Some(resp) => Some(resp.assignee.clone()),
                None if a.grade.is_some() => yujing_response::first_assignee(
                    self.engine.registry(),
                    &r.units,
                    yujing_ingest::AreaLevel::parse(&a.group.by)
                        .unwrap_or(yujing_ingest::AreaLevel::Sensor),
                    &a.group.key,
                    &a.rule.category,
                ),
                None => None,
            };
            if let Some(u) = unit.as_deref().and_then(|u| r.units.get(u)) {
                put_route_labels(a, &u.route);
            }
        }
    }

    /// A warning climbed to a unit: send its latest alert, with the new
    /// unit's route labels, to the sinks that reach the new unit and did
    /// not reach the one before (sinks routed on labels only; the others
    /// had it already).
    pub(super) async fn renotify(
        &mut self,
        warning_id: &str,
        missed_by: &str,
    ) -> Result<(), PipelineError> {
        let Some(r) = &self.responses else {
            return Ok(());
        };
        let (Some(alert), Some(resp)) = (r.alerts.get(warning_id), r.book.get(warning_id)) else {
            return Ok(());
        };
        let labelled = |unit: &str| {
            let mut a = alert.clone();
            if let Some(u) = r.units.get(unit) {
                put_route_labels(&mut a, &u.route);
            }
            a
        };
        let (now, before) = (labelled(&resp.assignee), labelled(missed_by));
        let mut pending = Vec::new();
        for sink in self
            .sinks
            .iter_mut()
            .filter(|s| s.newly_takes(&now, &before))
        {
            if let Some(p) = sink.submit(std::slice::from_ref(&now)).await? {
                pending.push(p);
            }
        }
        for p in pending {
            p.wait().await?;
        }
        Ok(())
    }
}

/// Put a unit's route labels on an alert (replacing labels of the same
/// name: the rule's, or the previous unit's).
fn put_route_labels(a: &mut AlertMessage, route: &BTreeMap<String, String>) {
    for (k, v) in route {
        a.labels.insert(k.clone(), v.clone());
    }
}

/// The name of the response book's part in a handed-over partition state,
/// and of the latest alert of each of its warnings.
const EXTRA: &str = "responses";
const EXTRA_ALERTS: &str = "response_alerts";

impl State {
    /// Put the responses of `state`'s warnings into it: moved out of the
    /// book when the partition is handed over (`take`), copied for a
    /// checkpoint.
    pub(super) fn attach_responses(
        &mut self,
        state: &mut yujing_engine::PartitionState,
        take: bool,
    ) {
        let Some(r) = &mut self.responses else {
            return;
        };
        let moved = r.book.extract(state.warning_ids(), take);
        if moved.is_empty() {
            return;
        }
        let alerts: BTreeMap<&str, &AlertMessage> = moved
            .iter()
            .filter_map(|m| {
                r.alerts
                    .get(&m.warning_id)
                    .map(|a| (m.warning_id.as_str(), a))
            })
            .collect();
        if let Ok(v) = serde_json::to_value(&alerts) {
            state.extras.insert(EXTRA_ALERTS.into(), v);
        }
        if take {
            for m in &moved {
                r.alerts.remove(&m.warning_id);
            }
        }
        match serde_json::to_value(&moved) {
            Ok(v) => {
                state.extras.insert(EXTRA.into(), v);
            }
            Err(e) => tracing::error!("cannot hand the responses over: {e}"),
        }
        if take && let Err(e) = r.save() {
            tracing::error!("{e}");
        }
    }

    /// Responses handed over with a partition this instance takes over.
    pub(super) fn take_responses(&mut self, extras: &mut BTreeMap<String, serde_json::Value>) {
        let (Some(r), Some(v)) = (&mut self.responses, extras.remove(EXTRA)) else {
            return;
        };
        if let Some(alerts) = extras
            .remove(EXTRA_ALERTS)
            .and_then(|a| serde_json::from_value::<BTreeMap<String, AlertMessage>>(a).ok())
        {
            r.alerts.extend(alerts);
        }
        match serde_json::from_value::<Vec<yujing_response::Response>>(v) {
            Ok(list) => {
                let n = r.book.merge(list);
                tracing::info!(responses = n, "took over responses with the partition");
                if let Err(e) = r.save() {
                    tracing::error!("{e}");
                }
            }
            Err(e) => tracing::error!("handed-over responses cannot be read: {e}"),
        }
    }
}

impl State {
    /// Read the responsibility file again with the rules: swap it in, or
    /// keep the running units. `None` without one.
    pub(super) fn reload_units(&mut self, trigger: &str) -> Option<Result<String, String>> {
        let r = self.responses.as_mut()?;
        let path = r.units_path.as_ref()?;
        let outcome = match Units::load(path, self.engine.registry()) {
            Ok(units) => {
                let n = units.units.len();
                r.units = units;
                UnitsReloaded {
                    trigger,
                    outcome: Ok(n),
                }
                .emit(&self.metrics);
                Ok(format!("{n} units"))
            }
            Err(e) => {
                let problems = e.to_string();
                UnitsReloaded {
                    trigger,
                    outcome: Err(&problems),
                }
                .emit(&self.metrics);
                Err(problems)
            }
        };
        Some(outcome)
    }
}
