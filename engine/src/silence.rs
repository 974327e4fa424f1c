//! Silence rules: how long each sensor has sent nothing, measured at each
//! window end from the time of its last reading before that end, so many
//! windows closed at once (a backlog, a backtest) grade as one at a time.

use yujing_ingest::MetricCatalog;
use yujing_rules::{Quality, Rule, RuleSet, WindowAggregate};

use super::Engine;

/// When a sensor last read a metric, as of any window end not yet graded:
/// when many windows close at once (a backlog, a backtest), each one's
/// silence is measured from the last reading before its end.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct LastSeen {
    /// The latest reading at or before the last graded window end.
    settled: Option<i64>,
    /// Reading times after it, sorted (readings mostly come in order, so
    /// keeping them sorted is an append).
    recent: Vec<i64>,
}

impl LastSeen {
    pub(super) fn saw(&mut self, ts_ms: i64) {
        if self.settled.is_some_and(|s| ts_ms <= s) {
            return;
        }
        let at = self.recent.partition_point(|&t| t <= ts_ms);
        if self.recent.get(at.wrapping_sub(1)) != Some(&ts_ms) {
            self.recent.insert(at, ts_ms);
        }
    }

    /// The latest reading at or before `end_ms`.
    pub(super) fn at(&self, end_ms: i64) -> Option<i64> {
        let n = self.recent.partition_point(|&t| t <= end_ms);
        if n > 0 {
            Some(self.recent[n - 1])
        } else {
            self.settled
        }
    }

    /// Window ends up to `until_ms` are graded: fold their readings.
    pub(super) fn settle(&mut self, until_ms: i64) {
        let n = self.recent.partition_point(|&t| t <= until_ms);
        if n > 0 {
            self.settled = Some(self.recent[n - 1]);
            self.recent.drain(..n);
        }
    }
}

/// Metric ids some silence rule reads.
pub(super) fn silent_metrics(rules: &RuleSet, catalog: &MetricCatalog) -> Vec<u16> {
    rules
        .rules
        .iter()
        .filter(|r| r.quality == Some(Quality::Silent))
        .filter_map(|r| catalog.id(&r.metric))
        .collect()
}

impl Engine {
    /// A silence rule's values at window end `end`: minutes since each
    /// sensor's last reading of the metric (0 if it read at or after it).
    pub(super) fn silence(&self, rule: &Rule, start: i64, end: i64) -> Vec<WindowAggregate> {
        if rule.quality != Some(Quality::Silent) {
            return Vec::new();
        }
        let Some(metric) = self.catalog.id(&rule.metric) else {
            return Vec::new();
        };
        let sensors = self.registry.sensors();
        let mut out: Vec<WindowAggregate> = self
            .last_seen
            .iter()
            .filter(|((_, m), _)| *m == metric)
            .filter_map(|(&(sensor, _), seen)| Some((sensor, seen.at(end)?)))
            .map(|(sensor, seen)| {
                WindowAggregate::plain(
                    rule,
                    sensors[sensor as usize].sensor_id.clone(),
                    (start, end),
                    ((end - seen) as f64 / 60_000.0).max(0.0),
                    0,
                    1,
                )
            })
            .collect();
        out.sort_by(|a, b| a.group_key.cmp(&b.group_key));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::LastSeen;

    #[test]
    fn last_reading_as_of_each_window_end() {
        let mut seen = LastSeen::default();
        for t in [10, 30, 20, 30, 50] {
            seen.saw(t);
        }
        assert_eq!(seen.at(5), None);
        assert_eq!(seen.at(25), Some(20), "out of order, still found");
        assert_eq!(seen.at(49), Some(30));
        seen.settle(40);
        assert_eq!(seen.at(45), Some(30), "settled readings still count");
        assert_eq!(seen.at(60), Some(50));
        // A late reading before the settled one changes nothing.
        seen.saw(15);
        assert_eq!(seen.at(45), Some(30));
    }
}
