//! The duty officer's board: one page served by yujing (`GET /board`),
//! with the city's map and its active warnings, live.
//!
//! - [`Board`]: what the page shows, kept by the pipeline as it publishes:
//!   the latest alert message of each active warning and, with a response
//!   loop, each one's response (state, assignee, deadline). No second
//!   source of truth: it is filled from the messages the pipeline sends.
//! - `GET /api/v1/board`: the sensors (from the registry) and that state;
//! - `GET /api/v1/board/events`: server-sent events, one per change, so
//!   the page follows without reloading (and says when the link is lost);
//! - the page and its script are embedded in the binary (`board/`), no
//!   CDN, no fonts, no tiles: it works on a city network without internet.
//!
//! Acting on a warning goes through the responders' API with the unit's
//! token, so the page has exactly the rights of the unit signed in.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use yujing_ingest::SensorRegistry;
use yujing_sinks::AlertMessage;

/// Events kept for a slow page before it must reload its snapshot.
const EVENTS: usize = 4096;

/// The board's state and its stream of changes.
#[derive(Clone)]
pub struct Board {
    inner: Arc<Mutex<Live>>,
    events: broadcast::Sender<Value>,
    sensors: Arc<Value>,
    /// District boundaries (GeoJSON), if the config names them.
    districts: Arc<Value>,
    /// Set when yujing stops: open event streams end, so the server's
    /// graceful shutdown does not wait on a page left open.
    closed: tokio::sync::watch::Sender<bool>,
}

#[derive(Default)]
struct Live {
    /// Warning id → its latest alert message (active warnings only).
    warnings: BTreeMap<String, Value>,
    /// Warning id → its response summary.
    responses: BTreeMap<String, Value>,
    /// The transitions of the last [`HISTORY_MS`] (wall clock when
    /// published), oldest first, at most [`HISTORY_MAX`].
    history: VecDeque<(i64, Value)>,
}

/// How far back the board's timeline goes, and how many transitions it
/// keeps at most.
const HISTORY_MS: i64 = 24 * 3_600_000;
const HISTORY_MAX: usize = 50_000;

impl Board {
    pub fn new(registry: &SensorRegistry, districts: Option<Value>) -> Self {
        let sensors: Vec<Value> = registry
            .sensors()
            .iter()
            .map(|s| {
                json!({
                    "id": s.sensor_id, "kind": s.kind, "lat": s.lat, "lon": s.lon,
                    "grid": s.grid, "street": s.street, "district": s.district,
                    "district_code": s.district_code,
                })
            })
            .collect();
        Board {
            inner: Arc::default(),
            events: broadcast::channel(EVENTS).0,
            sensors: Arc::new(Value::Array(sensors)),
            districts: Arc::new(districts.unwrap_or(Value::Null)),
            closed: tokio::sync::watch::channel(false).0,
        }
    }

    /// End every open event stream (yujing is stopping).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Alerts just published: a resolution removes the warning.
    pub fn on_alerts(&self, alerts: &[AlertMessage]) {
        let mut live = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for a in alerts {
            let Ok(v) = serde_json::to_value(a) else {
                continue;
            };
            if a.grade.is_none() {
                live.warnings.remove(&a.warning_id);
                live.responses.remove(&a.warning_id);
            } else {
                live.warnings.insert(a.warning_id.clone(), v.clone());
            }
            let now = yujing_ingest::clock::wall_now_ms();
            live.history.push_back((
                now,
                json!({
                    "warning_id": a.warning_id, "transition": a.transition,
                    "grade": a.grade, "previous_grade": a.previous_grade,
                    "rule": a.rule.id, "category": a.rule.category,
                    "group": {"by": a.group.by, "key": a.group.key},
                    "event_time": a.event_time, "value": a.value,
                }),
            ));
            while live
                .history
                .front()
                .is_some_and(|(at, _)| *at < now - HISTORY_MS)
                || live.history.len() > HISTORY_MAX
            {
                live.history.pop_front();
            }
            let _ = self.events.send(json!({"kind": "alert", "alert": v}));
        }
    }

    /// A response changed: `summary` has `warning_id`, `state`, `assignee`,
    /// `assignee_level`, `deadline`, `outcome`.
    pub fn on_response(&self, summary: Value) {
        let Some(id) = summary["warning_id"].as_str().map(str::to_owned) else {
            return;
        };
        let mut live = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if live.warnings.contains_key(&id) {
            live.responses.insert(id, summary.clone());
        }
        let _ = self
            .events
            .send(json!({"kind": "response", "response": summary}));
    }

    fn history(&self) -> Value {
        let live = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Value::Array(live.history.iter().map(|(_, v)| v.clone()).collect())
    }

    fn snapshot(&self) -> Value {
        let live = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        json!({
            "sensors": *self.sensors,
            "districts": *self.districts,
            "warnings": live.warnings.values().collect::<Vec<_>>(),
            "responses": live.responses,
        })
    }
}

/// `GET /board`: the page.
pub async fn page() -> impl IntoResponse {
    Html(include_str!("../board/index.html"))
}

/// `GET /board/board.js` and `/board/board.css`.
pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../board/board.js"),
    )
}

pub async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../board/board.css"),
    )
}

/// `GET /api/v1/board`: sensors and the active warnings now.
pub async fn snapshot(State(board): State<Board>) -> impl IntoResponse {
    axum::Json(board.snapshot())
}

/// `GET /api/v1/board/timeline`: the transitions of the last 24 hours,
/// oldest first (the page picks an area's).
pub async fn timeline(State(board): State<Board>) -> impl IntoResponse {
    axum::Json(board.history())
}

/// `GET /api/v1/board/events`: every change from now on, as server-sent
/// events. A page that falls more than [`EVENTS`] behind is told to
/// reload its snapshot (`event: resync`).
pub async fn events(
    State(board): State<Board>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let rx = board.events.subscribe();
    let closed = board.closed.subscribe();
    let stream = futures_util::stream::unfold((rx, closed), |(mut rx, mut closed)| async move {
        if *closed.borrow() {
            return None;
        }
        let event = tokio::select! {
            _ = closed.wait_for(|c| *c) => return None,
            e = rx.recv() => match e {
                Ok(v) => Event::default().data(v.to_string()),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    Event::default().event("resync").data("{}")
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            },
        };
        Some((Ok(event), (rx, closed)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
