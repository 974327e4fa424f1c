//! CAP 1.2 (OASIS Common Alerting Protocol) XML for a warning transition.
//!
//! - `msgType`: `Alert` when a warning is raised, `Update` when it changes
//!   grade, `Cancel` when it resolves; updates and cancels carry
//!   `<references>` to the warning's first message.
//! - `severity` from the grade (blue Minor, yellow Moderate, orange Severe,
//!   red Extreme; a cancel keeps the grade it ends); `urgency` `Immediate`
//!   for measured values, `Expected` with `<onset>` for forecasts;
//!   `certainty` `Observed` or, for forecasts, `Likely`.
//! - `category` from the rule: Env, Met, Infra (data-quality: Other).
//! - `<area>`: the group's name, its division code as a `geocode`, and a
//!   circle around its sensors from the sensor registry.
//! - `identifier` in the GB/T 35965.1 layout (division code, issuer code,
//!   Beijing time, number), so every message of every warning has its own,
//!   and a replay reproduces it.
//!
//! Times are the event time (`sent` = the window's end), so a replay
//! produces the same document; CAP forbids fractional seconds and `Z`.
//!
//! A change of a warning's response (acknowledged, escalated, handled…)
//! is an `Update` restricted to the responders, referencing the warning's
//! first message ([`response_update_xml`]).

use chrono::{DateTime, SecondsFormat};

use crate::alert::AlertMessage;

/// Who issues the alerts.
#[derive(Debug, Clone)]
pub struct CapSender {
    /// CAP `<sender>`, e.g. `yujing@eeb.cq.example`.
    pub sender: String,
    /// CAP `<senderName>`.
    pub name: String,
    /// `<language>` of the texts.
    pub language: String,
    /// GB/T 35965.1 issuer code after the division code: 3-digit industry,
    /// 3-digit unit, 2-digit extension.
    pub issuer_code: String,
}

impl Default for CapSender {
    fn default() -> Self {
        CapSender {
            sender: "yujing@localhost".into(),
            name: "yujing early warning".into(),
            language: "en-US".into(),
            issuer_code: "00000000".into(),
        }
    }
}

/// CAP `dateTime`: RFC 3339 with an explicit offset and whole seconds.
fn cap_time(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, false))
        .unwrap_or_else(|_| rfc3339.to_owned())
}

/// The GB/T 35965.1 layout `ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N`: the group's
/// division code (GB/T 2260), the issuer's 8-digit industry, unit and
/// extension code, the time in Beijing time, and `N` = 12 digits of a hash
/// of the warning id followed by the warning's sequence number. Digits and
/// underscores only (CAP forbids spaces, commas and markup); unique per
/// message (two warnings of one district in one second differ in the
/// hash), and a replay reproduces it.
pub fn identifier(alert: &AlertMessage, issuer: &str, sequence: u32, at: &str) -> String {
    numbered(alert, issuer, &alert.warning_id, u64::from(sequence), at)
}

/// The layout of [`identifier`], numbered from a hash of `series`.
fn numbered(alert: &AlertMessage, issuer: &str, series: &str, sequence: u64, at: &str) -> String {
    let code = alert.group.district_code.as_deref().unwrap_or("000000");
    let beijing = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8");
    let stamp = DateTime::parse_from_rfc3339(at)
        .map(|t| t.with_timezone(&beijing).format("%Y%m%d%H%M%S").to_string())
        .unwrap_or_else(|_| "00000000000000".to_owned());
    let hash = fnv1a(series) % 1_000_000_000_000;
    format!("{code}{issuer}_{stamp}_{hash:012}{sequence}")
}

/// A change of a warning's response (who holds it, who answered), sent to
/// the CAP sinks as an `Update` of the warning, restricted to responders.
#[derive(Debug, Clone)]
pub struct ResponseNote<'a> {
    /// `acknowledged`, `dispatched`, `escalated`, `handled`, …
    pub change: &'a str,
    /// The response's own sequence number (1 for the assignment).
    pub sequence: u64,
    /// When it changed (RFC 3339).
    pub at: &'a str,
    pub actor: &'a str,
    pub assignee: &'a str,
    pub outcome: Option<&'a str>,
    pub note: Option<&'a str>,
}

/// The CAP 1.2 `Update` for a response change: it references the
/// warning's first message, keeps the warning's `<info>` (event, severity,
/// area), says what changed in `<note>` and in parameters, and is
/// `Restricted` to the responding units (it is not a public warning).
/// Its identifier is numbered apart from the warning's own messages.
pub fn response_update_xml(alert: &AlertMessage, r: &ResponseNote<'_>, from: &CapSender) -> String {
    let mut x = cap_xml(alert, from);
    let id = numbered(
        alert,
        &from.issuer_code,
        &format!("{}/response", alert.warning_id),
        r.sequence,
        r.at,
    );
    let first = identifier(alert, &from.issuer_code, 1, &alert.started_at);
    let mut head = String::new();
    el(&mut head, 2, "identifier", &id);
    el(&mut head, 2, "sender", &from.sender);
    el(&mut head, 2, "sent", &cap_time(r.at));
    el(&mut head, 2, "status", "Actual");
    el(&mut head, 2, "msgType", "Update");
    el(&mut head, 2, "scope", "Restricted");
    el(
        &mut head,
        2,
        "restriction",
        "the units responding to this warning",
    );
    let mut what = format!("{} by {}; held by {}", r.change, r.actor, r.assignee);
    if let Some(o) = r.outcome {
        what.push_str(&format!("; outcome {o}"));
    }
    if let Some(n) = r.note {
        what.push_str(&format!(": {n}"));
    }
    el(&mut head, 2, "note", &what);
    el(
        &mut head,
        2,
        "references",
        &format!("{},{first},{}", from.sender, cap_time(&alert.started_at)),
    );
    // The alert's own header is replaced; its <info> is kept.
    let info_at = x.find("  <info>").unwrap_or(x.len());
    let body_at = x
        .find("<alert ")
        .and_then(|i| x[i..].find('\n').map(|j| i + j + 1));
    if let Some(b) = body_at {
        x.replace_range(b..info_at, &head);
    }
    let mut params = String::new();
    for (name, value) in [
        ("response_change", Some(r.change)),
        ("response_actor", Some(r.actor)),
        ("response_assignee", Some(r.assignee)),
        ("response_outcome", r.outcome),
    ] {
        if let Some(v) = value {
            params.push_str("    <parameter>\n");
            params.push_str(&format!("      <valueName>{name}</valueName>\n"));
            params.push_str(&format!("      <value>{}</value>\n", escape(v)));
            params.push_str("    </parameter>\n");
        }
    }
    if let Some(area_at) = x.find("    <area>") {
        x.insert_str(area_at, &params);
    }
    x
}

/// A stable 64-bit hash of the warning id (FNV-1a; no randomness, so the
/// same warning gets the same identifier on every run).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `<name>value</name>` on its own line.
fn el(x: &mut String, indent: usize, name: &str, value: &str) {
    x.push_str(&" ".repeat(indent));
    x.push_str(&format!("<{name}>{}</{name}>\n", escape(value)));
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// The CAP 1.2 document for one alert message.
pub fn cap_xml(alert: &AlertMessage, from: &CapSender) -> String {
    let sent = cap_time(&alert.event_time);
    let id = identifier(alert, &from.issuer_code, alert.sequence, &alert.event_time);
    let msg_type = match alert.transition.as_str() {
        "raised" | "summary" => "Alert",
        "resolved" => "Cancel",
        _ => "Update",
    };
    let grade = alert.grade.as_deref().or(alert.previous_grade.as_deref());
    let severity = match grade {
        Some("blue") => "Minor",
        Some("yellow") => "Moderate",
        Some("orange") => "Severe",
        Some("red") => "Extreme",
        _ => "Unknown",
    };
    let forecast = alert.trend.is_some();
    let category = match alert.rule.category.as_str() {
        "met" => "Met",
        "infra" => "Infra",
        "data" => "Other",
        _ => "Env",
    };
    let event = if alert.rule.description.is_empty() {
        alert.rule.id.clone()
    } else {
        alert.rule.description.clone()
    };
    let headline: String = alert.summary.chars().take(160).collect();
    let mut x = String::with_capacity(2048);
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str("<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">\n");
    el(&mut x, 2, "identifier", &id);
    el(&mut x, 2, "sender", &from.sender);
    el(&mut x, 2, "sent", &sent);
    el(&mut x, 2, "status", "Actual");
    el(&mut x, 2, "msgType", msg_type);
    el(&mut x, 2, "scope", "Public");
    if alert.sequence > 1 {
        // The warning's first message: its identifier and sent time (the
        // event time it was raised).
        let first = identifier(alert, &from.issuer_code, 1, &alert.started_at);
        el(
            &mut x,
            2,
            "references",
            &format!("{},{first},{}", from.sender, cap_time(&alert.started_at)),
        );
    }
    x.push_str("  <info>\n");
    el(&mut x, 4, "language", &from.language);
    el(&mut x, 4, "category", category);
    el(&mut x, 4, "event", &event);
    el(
        &mut x,
        4,
        "responseType",
        if msg_type == "Cancel" {
            "AllClear"
        } else {
            "Monitor"
        },
    );
    el(
        &mut x,
        4,
        "urgency",
        if forecast { "Expected" } else { "Immediate" },
    );
    el(&mut x, 4, "severity", severity);
    el(
        &mut x,
        4,
        "certainty",
        if forecast { "Likely" } else { "Observed" },
    );
    el(&mut x, 4, "effective", &sent);
    if let Some(onset) = alert
        .trend
        .as_ref()
        .and_then(|t| t.expected_crossing_at.as_deref())
    {
        el(&mut x, 4, "onset", &cap_time(onset));
    }
    el(&mut x, 4, "senderName", &from.name);
    el(&mut x, 4, "headline", &headline);
    el(&mut x, 4, "description", &alert.summary);
    let mut params: Vec<(&str, String)> = vec![
        ("warning_id", alert.warning_id.clone()),
        ("fingerprint", alert.fingerprint.clone()),
        ("transition", alert.transition.clone()),
        ("grade", grade.unwrap_or("").to_owned()),
        ("level", alert.level.clone().unwrap_or_default()),
        ("rule", alert.rule.id.clone()),
    ];
    if let Some(v) = alert.value {
        params.push(("value", v.to_string()));
    }
    if let Some(t) = alert.threshold {
        params.push(("threshold", t.to_string()));
    }
    for (name, value) in params {
        x.push_str("    <parameter>\n");
        x.push_str(&format!("      <valueName>{}</valueName>\n", escape(name)));
        x.push_str(&format!("      <value>{}</value>\n", escape(&value)));
        x.push_str("    </parameter>\n");
    }
    x.push_str("    <area>\n");
    let desc = match (&alert.group.district, alert.group.by.as_str()) {
        (Some(d), by) if by != "district" => format!("{by} {} ({d})", alert.group.key),
        _ => format!("{} {}", alert.group.by, alert.group.key),
    };
    x.push_str(&format!("      <areaDesc>{}</areaDesc>\n", escape(&desc)));
    if let (Some(lat), Some(lon)) = (alert.group.lat, alert.group.lon) {
        // A circle "lat,lon radius" in km, at least 100 m around a point.
        let radius = alert.group.radius_km.unwrap_or(0.0).max(0.1);
        x.push_str(&format!("      <circle>{lat},{lon} {radius}</circle>\n"));
    }
    if let Some(code) = &alert.group.district_code {
        x.push_str("      <geocode>\n");
        x.push_str("        <valueName>GB/T 2260</valueName>\n");
        x.push_str(&format!("        <value>{}</value>\n", escape(code)));
        x.push_str("      </geocode>\n");
    }
    x.push_str("    </area>\n");
    x.push_str("  </info>\n</alert>\n");
    x
}
