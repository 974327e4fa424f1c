//! Commands from the feedback topic: JSON keyed by `warning_id`, naming
//! the acting unit, e.g.
//! `{"unit": "grid-g01", "action": "dispatch", "to": "team 3", "note": "…"}`.
//! The key is the warning id; a `warning_id` field, if present, must match
//! it. The topic's ACLs decide who may write as which unit.

use crate::book::Command;
use crate::error::Refusal;

/// The acting unit and the command of a feedback message, or why it
/// cannot be read.
pub fn parse(key: Option<&[u8]>, payload: &[u8]) -> Result<(String, Command), Refusal> {
    let malformed = |m: String| Refusal::Malformed(m);
    let mut value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| malformed(format!("not JSON: {e}")))?;
    let map = value
        .as_object_mut()
        .ok_or_else(|| malformed("a command is a JSON object".into()))?;
    let unit = match map.remove("unit") {
        Some(serde_json::Value::String(u)) if !u.is_empty() => u,
        _ => return Err(malformed("no `unit` (the acting unit's id)".into())),
    };
    let key = key
        .map(|k| std::str::from_utf8(k).map_err(|_| malformed("the key is not UTF-8".into())))
        .transpose()?;
    match (key, map.get("warning_id").and_then(|v| v.as_str())) {
        (Some(k), Some(id)) if k != id => {
            return Err(malformed(format!(
                "the key {k:?} and warning_id {id:?} differ"
            )));
        }
        (Some(k), None) => {
            map.insert("warning_id".into(), k.into());
        }
        (None, None) => {
            return Err(malformed(
                "no warning id (the message key, or `warning_id`)".into(),
            ));
        }
        _ => {}
    }
    let command: Command = serde_json::from_value(value).map_err(|e| malformed(e.to_string()))?;
    Ok((unit, command))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{Action, Outcome};

    #[test]
    fn a_command_names_its_unit_and_takes_the_warning_from_the_key() {
        let (unit, c) = parse(
            Some(b"w-1"),
            br#"{"unit":"grid-g1","action":"handled","outcome":"false_alarm","note":"dust"}"#,
        )
        .unwrap();
        assert_eq!(unit, "grid-g1");
        assert_eq!(c.warning_id, "w-1");
        assert_eq!(
            c.action,
            Action::Handled {
                outcome: Outcome::FalseAlarm
            }
        );
        assert_eq!(c.note.as_deref(), Some("dust"));
        let (_, c) = parse(
            None,
            br#"{"unit":"u","warning_id":"w-2","action":"on_site"}"#,
        )
        .unwrap();
        assert_eq!((c.warning_id.as_str(), c.action), ("w-2", Action::OnSite));
    }

    #[test]
    fn every_unreadable_command_is_refused_as_malformed_with_the_reason() {
        for (key, payload, why) in [
            (Some(&b"w"[..]), &b"not json"[..], "not JSON"),
            (Some(b"w"), b"[1]", "JSON object"),
            (Some(b"w"), br#"{"action":"acknowledge"}"#, "unit"),
            (
                None,
                br#"{"unit":"u","action":"acknowledge"}"#,
                "warning id",
            ),
            (
                Some(b"w"),
                br#"{"unit":"u","warning_id":"v","action":"acknowledge"}"#,
                "differ",
            ),
            (Some(b"w"), br#"{"unit":"u","action":"fly"}"#, "fly"),
            (
                Some(b"\xff"),
                br#"{"unit":"u","action":"acknowledge"}"#,
                "UTF-8",
            ),
        ] {
            let refusal = parse(key, payload).unwrap_err();
            assert_eq!(refusal.status(), 422, "{refusal}");
            assert!(refusal.to_string().contains(why), "{refusal} lacks {why}");
        }
    }
}
