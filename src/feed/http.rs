//! The feed over HTTP: the Atom index and the CAP documents it links.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::Deserialize;
use yujing_rules::Grade;

use super::{Entry, Feed};

/// A poller's narrowing of the feed: `?category=env,met&min_grade=orange`.
#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    /// Comma-separated rule categories.
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub min_grade: Option<String>,
}

impl Filter {
    pub(super) fn admits(&self, e: &Entry) -> bool {
        let category = self
            .category
            .as_deref()
            .is_none_or(|c| c.split(',').any(|c| c.trim() == e.category));
        let grade = self
            .min_grade
            .as_deref()
            .and_then(Grade::parse)
            .is_none_or(|g| e.grade >= g);
        category && grade
    }

    fn check(&self) -> Result<(), String> {
        match self.min_grade.as_deref() {
            Some(g) if Grade::parse(g).is_none() => Err(format!(
                "min_grade {g:?}: expected blue, yellow, orange or red"
            )),
            _ => Ok(()),
        }
    }
}

/// `GET /feed/cap.atom`: the current CAP messages. Answers `304 Not
/// Modified` when `If-None-Match` names the current `ETag`.
pub async fn atom(
    State(feed): State<Feed>,
    Query(filter): Query<Filter>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = filter.check() {
        return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let base = format!("http://{host}");
    let (entries, changed_at_ms) = feed.entries(&filter);
    let body = render(&feed, &entries, changed_at_ms, &base);
    let etag = format!("\"{:016x}\"", fnv1a(&body));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                "application/atom+xml; charset=utf-8".to_owned(),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
        ],
        body,
    )
        .into_response()
}

/// `GET /feed/cap/{identifier}.xml`: one listed CAP message.
pub async fn document(State(feed): State<Feed>, Path(file): Path<String>) -> Response {
    let id = file.strip_suffix(".xml").unwrap_or(&file);
    match feed.document(id) {
        Some(doc) => (
            [(header::CONTENT_TYPE, "application/cap+xml; charset=utf-8")],
            doc,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!("no CAP message {id} in the feed\n"),
        )
            .into_response(),
    }
}

/// The Atom 1.0 document (RFC 4287).
fn render(feed: &Feed, entries: &[Entry], changed_at_ms: i64, base: &str) -> String {
    let lang = feed.language();
    let updated = entries
        .iter()
        .map(|e| atom_time(&e.sent))
        .max()
        .unwrap_or_else(|| {
            Utc.timestamp_millis_opt(changed_at_ms)
                .single()
                .unwrap_or_default()
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        });
    let sender = feed.sender();
    let mut x = String::with_capacity(1024 + entries.len() * 768);
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<feed xmlns=\"http://www.w3.org/2005/Atom\" xml:lang=\"{}\">\n",
        escape(lang)
    ));
    x.push_str(&format!(
        "  <id>urn:yujing:feed:{}</id>\n",
        escape(&sender.sender)
    ));
    x.push_str(&format!(
        "  <title>{}</title>\n",
        escape(&feed.config().title(lang))
    ));
    x.push_str(&format!("  <updated>{updated}</updated>\n"));
    x.push_str(&format!(
        "  <author><name>{}</name></author>\n",
        escape(sender.name_in(lang))
    ));
    x.push_str(&format!(
        "  <link rel=\"self\" type=\"application/atom+xml\" href=\"{}/feed/cap.atom\"/>\n",
        escape(base)
    ));
    for e in entries {
        let href = format!("{base}/feed/cap/{}.xml", e.identifier);
        x.push_str("  <entry>\n");
        x.push_str(&format!(
            "    <id>urn:yujing:cap:{}</id>\n",
            escape(&e.identifier)
        ));
        x.push_str(&format!("    <title>{}</title>\n", escape(&e.title)));
        x.push_str(&format!("    <updated>{}</updated>\n", atom_time(&e.sent)));
        x.push_str(&format!(
            "    <published>{}</published>\n",
            atom_time(&e.raised)
        ));
        x.push_str(&format!("    <summary>{}</summary>\n", escape(&e.summary)));
        x.push_str(&format!(
            "    <category term=\"{}\" label=\"category\"/>\n",
            escape(&e.category)
        ));
        x.push_str(&format!(
            "    <category term=\"{}\" label=\"grade\"/>\n",
            e.grade.as_str()
        ));
        if e.cancelled {
            x.push_str("    <category term=\"cancelled\" label=\"status\"/>\n");
        }
        x.push_str(&format!(
            "    <link rel=\"alternate\" type=\"application/cap+xml\" href=\"{}\"/>\n",
            escape(&href)
        ));
        x.push_str("  </entry>\n");
    }
    x.push_str("</feed>\n");
    x
}

/// RFC 3339 as Atom writes it (whole seconds, offset kept).
fn atom_time(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|_| rfc3339.to_owned())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
