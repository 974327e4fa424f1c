//! Saving and restoring the active warnings across restarts.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct WarningStateMetrics {
    pub saves: IntCounterVec,
    pub restored: IntGauge,
    pub refused: IntGauge,
}

impl WarningStateMetrics {
    pub fn register(registry: &Registry) -> Self {
        let saves = IntCounterVec::new(
            Opts::new(
                "yujing_warning_state_saves_total",
                "Saves of the active warnings before an offset commit, by outcome (success, failure: offsets are then not committed).",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let restored = IntGauge::new(
            "yujing_warning_state_restored",
            "Active warnings taken up from the saved state at start.",
        )
        .expect("valid metric");
        let refused = IntGauge::new(
            "yujing_warning_state_refused",
            "1 if the saved warning state was damaged or of another format at start (set aside; started with none).",
        )
        .expect("valid metric");
        for m in [
            Box::new(saves.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(restored.clone()),
            Box::new(refused.clone()),
        ] {
            registry.register(m).expect("unique metric");
        }
        WarningStateMetrics {
            saves,
            restored,
            refused,
        }
    }
}

/// The active warnings were saved, or could not be.
pub struct WarningStateSaved<'a> {
    pub error: Option<&'a str>,
}

impl WarningStateSaved<'_> {
    /// Report how a save went; whether it worked.
    pub fn report<E: std::fmt::Display>(saved: &Result<(), E>, m: &super::Metrics) -> bool {
        WarningStateSaved {
            error: saved.as_ref().err().map(ToString::to_string).as_deref(),
        }
        .emit(m);
        saved.is_ok()
    }

    pub fn emit(&self, m: &super::Metrics) {
        let outcome = match self.error {
            None => "success",
            Some(e) => {
                tracing::error!(
                    "cannot save the active warnings, so offsets are not committed (a restart re-reads from the last save): {e}"
                );
                "failure"
            }
        };
        // Shown in /health beside the sinks while saving fails.
        m.health.update("warning-state", |h| {
            h.up = self.error.is_none();
            h.last_error = self.error.map(str::to_owned);
        });
        m.warning_state.saves.with_label_values(&[outcome]).inc();
    }
}

/// The saved warnings were taken up at start, or refused.
pub struct WarningStateRestored<'a> {
    pub active: usize,
    pub dropped_rules: &'a [String],
    pub error: Option<&'a str>,
}

impl WarningStateRestored<'_> {
    pub fn emit(&self, m: &super::Metrics) {
        if let Some(e) = self.error {
            tracing::error!(
                "the saved warning state is unusable and was set aside (warnings.json.bad); starting with no active warnings: {e}"
            );
            m.warning_state.refused.set(1);
            return;
        }
        if !self.dropped_rules.is_empty() {
            tracing::warn!(
                rules = ?self.dropped_rules,
                "saved warnings of rules no longer configured were dropped; their last alert stays on the alert topic"
            );
        }
        tracing::info!(
            active = self.active,
            "took up the active warnings of the previous run"
        );
        m.warning_state.restored.set(self.active as i64);
    }
}
