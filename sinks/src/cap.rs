//! CAP 1.2 (OASIS Common Alerting Protocol) XML for a warning transition.
//!
//! - `msgType`: `Alert` when a warning is raised, `Update` when it changes
//!   grade, `Cancel` (with `responseType` AllClear) when it resolves;
//!   updates and cancels carry `<references>` to the warning's first
//!   message and to the message they follow.
//! - One `<info>` per language (the deployment's `languages`, zh-CN
//!   first by default): event, headline, description, instruction and
//!   `areaDesc` from the alert's texts in that language.
//! - `expires`: a warning in force `valid_for` (24 h) after its message;
//!   a cancel one hour after it.
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

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat};

use crate::alert::AlertMessage;
use crate::texts::AlertText;

/// Who issues the alerts.
#[derive(Debug, Clone)]
pub struct CapSender {
    /// CAP `<sender>`, e.g. `yujing@eeb.cq.example`.
    pub sender: String,
    /// CAP `<senderName>`.
    pub name: String,
    /// `<senderName>` per language, where it differs from `name`.
    pub names: BTreeMap<String, String>,
    /// Languages of the `<info>` blocks, in order; empty: every language
    /// the alert has texts in.
    pub languages: Vec<String>,
    /// GB/T 35965.1 issuer code after the division code: 3-digit industry,
    /// 3-digit unit, 2-digit extension.
    pub issuer_code: String,
    /// `<expires>` of a warning in force: this many seconds after its
    /// message.
    pub valid_for_s: i64,
}

impl Default for CapSender {
    fn default() -> Self {
        CapSender {
            sender: "yujing@localhost".into(),
            name: "yujing early warning".into(),
            names: BTreeMap::new(),
            languages: Vec::new(),
            issuer_code: "00000000".into(),
            valid_for_s: 24 * 3600,
        }
    }
}

impl CapSender {
    /// `<senderName>` in `language`.
    pub fn name_in(&self, language: &str) -> &str {
        self.names.get(language).unwrap_or(&self.name)
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
    let x = cap_xml(alert, from);
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
    let mut x = x;
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
    // In every language's <info>.
    x.replace("    <area>\n", &format!("{params}    <area>\n"))
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

/// The CAP 1.2 document for one alert message: one `<info>` per language
/// of its texts, in the sender's order (the alert's texts in alphabetical
/// order when the sender names none); an alert without texts gets one
/// English `<info>` from its plain summary.
pub fn cap_xml(alert: &AlertMessage, from: &CapSender) -> String {
    let sent = cap_time(&alert.event_time);
    let id = identifier(alert, &from.issuer_code, alert.sequence, &alert.event_time);
    let msg_type = match alert.transition.as_str() {
        "raised" | "summary" => "Alert",
        "resolved" => "Cancel",
        _ => "Update",
    };
    let mut x = String::with_capacity(4096);
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str("<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">\n");
    el(&mut x, 2, "identifier", &id);
    el(&mut x, 2, "sender", &from.sender);
    el(&mut x, 2, "sent", &sent);
    el(&mut x, 2, "status", "Actual");
    el(&mut x, 2, "msgType", msg_type);
    el(&mut x, 2, "scope", "Public");
    if alert.sequence > 1 {
        el(&mut x, 2, "references", &references(alert, from));
    }
    let languages: Vec<(&str, &AlertText)> = if from.languages.is_empty() {
        alert.texts.iter().map(|(l, t)| (l.as_str(), t)).collect()
    } else {
        from.languages
            .iter()
            .filter_map(|l| Some((l.as_str(), text_for(alert, l)?)))
            .collect()
    };
    if languages.is_empty() {
        let area = match (&alert.group.district, alert.group.by.as_str()) {
            (Some(d), by) if by != "district" => format!("{by} {} ({d})", alert.group.key),
            _ => format!("{} {}", alert.group.by, alert.group.key),
        };
        let plain = AlertText {
            event: if alert.rule.description.is_empty() {
                alert.rule.id.clone()
            } else {
                alert.rule.description.clone()
            },
            area,
            district: alert.group.district.clone(),
            signal: None,
            headline: alert.summary.clone(),
            summary: alert.summary.clone(),
            instruction: None,
        };
        info(&mut x, alert, from, msg_type, "en", &plain);
    }
    for (lang, text) in languages {
        info(&mut x, alert, from, msg_type, lang, text);
    }
    x.push_str("</alert>\n");
    x
}

/// The alert's text in `language`, or in a language of the same primary
/// subtag (`en` for `en-US`).
fn text_for<'a>(alert: &'a AlertMessage, language: &str) -> Option<&'a AlertText> {
    let primary = |l: &str| l.split('-').next().unwrap_or(l).to_ascii_lowercase();
    alert.texts.get(language).or_else(|| {
        alert
            .texts
            .iter()
            .find(|(l, _)| primary(l) == primary(language))
            .map(|(_, t)| t)
    })
}

/// `<references>`: the warning's first message and, when it is another
/// one, the message this one follows (`sender,identifier,sent` each).
fn references(alert: &AlertMessage, from: &CapSender) -> String {
    let first = identifier(alert, &from.issuer_code, 1, &alert.started_at);
    let mut refs = format!("{},{first},{}", from.sender, cap_time(&alert.started_at));
    if let Some(prev_at) = &alert.previous_event_time
        && alert.sequence > 2
    {
        let prev = identifier(alert, &from.issuer_code, alert.sequence - 1, prev_at);
        refs.push_str(&format!(" {},{prev},{}", from.sender, cap_time(prev_at)));
    }
    refs
}

/// One `<info>` block in `lang`.
fn info(
    x: &mut String,
    alert: &AlertMessage,
    from: &CapSender,
    msg_type: &str,
    lang: &str,
    text: &AlertText,
) {
    let sent = cap_time(&alert.event_time);
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
    x.push_str("  <info>\n");
    el(x, 4, "language", lang);
    el(x, 4, "category", category);
    el(x, 4, "event", &text.event);
    let response = if msg_type == "Cancel" {
        "AllClear"
    } else {
        "Monitor"
    };
    el(x, 4, "responseType", response);
    el(
        x,
        4,
        "urgency",
        if forecast { "Expected" } else { "Immediate" },
    );
    el(x, 4, "severity", severity);
    el(
        x,
        4,
        "certainty",
        if forecast { "Likely" } else { "Observed" },
    );
    el(x, 4, "effective", &sent);
    if let Some(onset) = alert
        .trend
        .as_ref()
        .and_then(|t| t.expected_crossing_at.as_deref())
    {
        el(x, 4, "onset", &cap_time(onset));
    }
    el(x, 4, "expires", &expires(&alert.event_time, msg_type, from));
    el(x, 4, "senderName", from.name_in(lang));
    let headline: String = text.headline.chars().take(160).collect();
    el(x, 4, "headline", &headline);
    el(x, 4, "description", &text.summary);
    if let Some(i) = &text.instruction {
        el(x, 4, "instruction", i);
    }
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
    if let Some(s) = &text.signal {
        params.push(("signal", s.clone()));
    }
    for (name, value) in params {
        x.push_str("    <parameter>\n");
        x.push_str(&format!("      <valueName>{}</valueName>\n", escape(name)));
        x.push_str(&format!("      <value>{}</value>\n", escape(&value)));
        x.push_str("    </parameter>\n");
    }
    x.push_str("    <area>\n");
    x.push_str(&format!(
        "      <areaDesc>{}</areaDesc>\n",
        escape(&text.area)
    ));
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
    x.push_str("  </info>\n");
}

/// `<expires>`: `from.valid_for` after the message for a warning in force
/// (a warning still in force is updated or cancelled by a later message;
/// this bounds how long a lost cancel leaves it shown), one hour after a
/// cancel so that pollers see the all-clear.
fn expires(event_time: &str, msg_type: &str, from: &CapSender) -> String {
    let valid = if msg_type == "Cancel" {
        chrono::Duration::hours(1)
    } else {
        chrono::Duration::seconds(from.valid_for_s)
    };
    DateTime::parse_from_rfc3339(event_time)
        .map(|t| (t + valid).to_rfc3339_opts(SecondsFormat::Secs, false))
        .unwrap_or_else(|_| cap_time(event_time))
}
