//! Rules reloaded while the pipeline runs (file watch, SIGHUP, `POST
//! /-/reload`): the new rules are swapped in between two messages, or
//! refused with the running ones kept. The responsibility file, with a
//! response loop, is read again at the same time, the same way.

use std::path::PathBuf;

use yujing_rules::RuleSet;

use super::{PipelineError, State};
use crate::reload::{ReloadReceiver, ReloadRequest};
use crate::telemetry::{RulesReloadRefused, RulesReloaded};

/// The next reload request; never, when reloading is not wired up.
pub(super) async fn next(reloads: &mut Option<ReloadReceiver>) -> Option<ReloadRequest> {
    match reloads {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl State {
    /// Read the rules again and swap them in, or refuse them and keep the
    /// running ones. Only a failing sink (for the removed rules'
    /// resolutions) is an error.
    pub(super) async fn reload(
        &mut self,
        paths: &[PathBuf],
        known_metrics: Option<&[String]>,
        req: ReloadRequest,
    ) -> Result<(), PipelineError> {
        let trigger = req.trigger.as_str();
        let languages = self.languages.tags();
        let outcome = match RuleSet::load_checked(paths, known_metrics, &languages) {
            Ok(rules) => {
                let r = self.engine.reload(&rules);
                if let Some(h) = &self.handover {
                    // Partitions assigned from now on take only states
                    // that fit the new windows.
                    *h.fingerprint.lock().unwrap_or_else(|e| e.into_inner()) =
                        self.engine.fingerprint();
                }
                let summary = format!(
                    "{} rules: {} added, {} changed, {} removed, {} unchanged",
                    rules.rules.len(),
                    r.added.len(),
                    r.changed.len(),
                    r.removed.len(),
                    r.unchanged
                );
                RulesReloaded {
                    trigger,
                    summary: &summary,
                    rules: rules.rules.len(),
                }
                .emit(&self.metrics);
                self.publish(&r.transitions).await?;
                // Removed rules' gauges would otherwise keep their last value.
                self.metrics.active_warnings.reset();
                self.update_active_gauge();
                Ok(summary)
            }
            Err(e) => {
                let problems = e.to_string();
                RulesReloadRefused {
                    trigger,
                    problems: &problems,
                }
                .emit(&self.metrics);
                Err(problems)
            }
        };
        let outcome = match (outcome, self.reload_units(trigger)) {
            (outcome, None) => outcome,
            (Ok(rules), Some(Ok(units))) => Ok(format!("{rules}; {units}")),
            (Ok(rules), Some(Err(problems))) => Err(format!(
                "rules reloaded ({rules}), but the responsibility file is refused; the running units stay:\n{problems}"
            )),
            (Err(problems), Some(Ok(units))) => {
                Err(format!("{problems}\n(units reloaded: {units})"))
            }
            (Err(rules), Some(Err(units))) => Err(format!("{rules}\n{units}")),
        };
        if let Some(reply) = req.reply {
            let _ = reply.send(outcome);
        }
        Ok(())
    }
}
