//! Responders' verdicts as labels: the response topic's messages folded
//! into one verdict per handled warning, for `yujing feedback export` and
//! `yujing backtest --events`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::book::Outcome;

/// A handled warning and what its responder said of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub warning_id: String,
    pub rule: String,
    /// The group's level (`sensor`, `grid`, …) and key.
    pub level: String,
    pub key: String,
    /// Event time the condition started and ended (RFC 3339); a condition
    /// still going when exported ends where it started.
    pub start: String,
    pub end: String,
    pub outcome: Outcome,
    /// The unit that gave the verdict.
    pub by: String,
}

/// The verdicts in `messages` (`yujing.response/v1`, in topic order): for
/// each warning, its latest message, if that carries a responder's
/// outcome (`unanswered` is no verdict). Messages that are not response
/// changes are skipped.
pub fn fold(messages: impl IntoIterator<Item = serde_json::Value>) -> Vec<Verdict> {
    let mut latest: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut by: BTreeMap<String, String> = BTreeMap::new();
    for m in messages {
        if m["schema"] != "yujing.response/v1" {
            continue;
        }
        let Some(id) = m["warning_id"].as_str().map(str::to_owned) else {
            continue;
        };
        if m["change"] == "handled"
            && let Some(actor) = m["actor"].as_str()
        {
            by.insert(id.clone(), actor.to_owned());
        }
        latest.insert(id, m);
    }
    latest
        .into_iter()
        .filter_map(|(id, m)| {
            let outcome: Outcome = serde_json::from_value(m["outcome"].clone()).ok()?;
            if outcome == Outcome::Unanswered {
                return None;
            }
            let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
            let start = text(&m["started_at"])?;
            Some(Verdict {
                rule: text(&m["rule"])?,
                level: text(&m["group"]["level"])?,
                key: text(&m["group"]["key"])?,
                end: text(&m["ended_at"]).unwrap_or_else(|| start.clone()),
                start,
                outcome,
                by: by.remove(&id).unwrap_or_default(),
                warning_id: id,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(
        id: &str,
        change: &str,
        actor: &str,
        outcome: Option<&str>,
        ended: Option<&str>,
    ) -> serde_json::Value {
        json!({
            "schema": "yujing.response/v1", "warning_id": id, "change": change,
            "actor": actor, "outcome": outcome, "rule": "pm25-1h",
            "group": {"level": "sensor", "key": "s1"},
            "started_at": "2026-01-01T08:00:00+08:00", "ended_at": ended,
        })
    }

    #[test]
    fn each_handled_warning_gives_its_latest_verdict_with_its_span() {
        let messages = vec![
            change("a", "assigned", "system", None, None),
            change("a", "handled", "grid-g1", Some("confirmed"), None),
            change(
                "a",
                "resolved",
                "system",
                Some("confirmed"),
                Some("2026-01-01T10:00:00+08:00"),
            ),
            change("b", "assigned", "system", None, None),
            change("b", "handled", "longxi", Some("false_alarm"), None),
            // Not handled, or nobody answered: no verdict.
            change("c", "acknowledged", "grid-g1", None, None),
            change(
                "d",
                "unanswered",
                "system",
                Some("unanswered"),
                Some("2026-01-01T09:00:00+08:00"),
            ),
            json!({"schema": "yujing.alert/v1", "warning_id": "a"}),
        ];
        let v = fold(messages);
        assert_eq!(v.len(), 2, "{v:#?}");
        assert_eq!(
            (v[0].warning_id.as_str(), v[0].outcome, v[0].by.as_str()),
            ("a", Outcome::Confirmed, "grid-g1")
        );
        assert_eq!(v[0].end, "2026-01-01T10:00:00+08:00");
        assert_eq!((v[0].level.as_str(), v[0].key.as_str()), ("sensor", "s1"));
        assert_eq!(
            (v[1].outcome, v[1].by.as_str()),
            (Outcome::FalseAlarm, "longxi")
        );
        assert_eq!(v[1].end, v[1].start, "still going: ends where it started");
    }
}
