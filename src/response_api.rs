//! The responders' HTTP API, on the metrics port:
//!
//! - `GET /api/v1/warnings`: the responses the calling unit may act on
//!   (assigned to it, to a unit below it on the ladder, or referred to it);
//! - `POST /api/v1/warnings/{warning_id}` (the id as it is, slashes and
//!   all, or percent-encoded) with a JSON command body, e.g.
//!   `{"action": "acknowledge"}`, `{"action": "dispatch", "to": "team 3"}`,
//!   `{"action": "handled", "outcome": "false_alarm", "note": "…"}`.
//!
//! Each unit has its own bearer token (`token_env`/`token_file` in the
//! responsibility file). Refusals say why: 401 (no or unknown token), 403
//! (not this unit's warning), 404 (unknown warning), 409 (impossible
//! step), 422 (unreadable command). The pipeline task owns the book: a
//! request goes to it over a channel and waits for its answer.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::{mpsc, oneshot};
use yujing_response::{Change, Command, Refusal};

use crate::reload::token_matches;

/// What the API asks the pipeline.
pub enum ApiRequest {
    Command {
        unit: String,
        command: Command,
        reply: oneshot::Sender<Result<Change, Refusal>>,
    },
    List {
        unit: String,
        reply: oneshot::Sender<Vec<serde_json::Value>>,
    },
}

pub type ApiSender = mpsc::Sender<ApiRequest>;
pub type ApiReceiver = mpsc::Receiver<ApiRequest>;

pub fn channel() -> (ApiSender, ApiReceiver) {
    mpsc::channel(64)
}

/// The API's state: where requests go, and each unit's token.
#[derive(Clone)]
pub struct Api {
    pub tx: ApiSender,
    /// (token, unit id).
    pub tokens: Vec<(String, String)>,
    /// Refusals made here (no token, unreadable body) are counted too.
    pub metrics: crate::telemetry::Metrics,
}

impl Api {
    /// The unit whose token the request presents.
    fn unit(&self, headers: &HeaderMap) -> Result<String, Refusal> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Refusal::Unauthenticated("no `Authorization: Bearer` token".into()))?;
        // Every token compared, in constant time each.
        let mut found = None;
        for (token, unit) in &self.tokens {
            if token_matches(presented, token) {
                found = Some(unit.clone());
            }
        }
        found.ok_or_else(|| Refusal::Unauthenticated("the token is no unit's".into()))
    }
}

/// Refused before reaching the pipeline: counted like its refusals.
fn refused_here(api: &Api, unit: &str, r: &Refusal) -> Response {
    crate::telemetry::ResponseCommand {
        source: "api",
        action: "unread",
        unit,
        refusal: Some(r),
    }
    .emit(&api.metrics);
    refused(r)
}

fn refused(r: &Refusal) -> Response {
    let status = StatusCode::from_u16(r.status()).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        Json(serde_json::json!({"error": r.reason(), "message": r.to_string()})),
    )
        .into_response()
}

fn stopped() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the pipeline is not running\n",
    )
        .into_response()
}

pub async fn list(State(api): State<Api>, headers: HeaderMap) -> Response {
    let unit = match api.unit(&headers) {
        Ok(u) => u,
        Err(r) => return refused_here(&api, "-", &r),
    };
    let (reply, answer) = oneshot::channel();
    if api.tx.send(ApiRequest::List { unit, reply }).await.is_err() {
        return stopped();
    }
    match answer.await {
        Ok(list) => Json(serde_json::json!({ "warnings": list })).into_response(),
        Err(_) => stopped(),
    }
}

pub async fn command(
    State(api): State<Api>,
    Path(warning_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let unit = match api.unit(&headers) {
        Ok(u) => u,
        Err(r) => return refused_here(&api, "-", &r),
    };
    let mut value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return refused_here(&api, &unit, &Refusal::Malformed(e.to_string())),
    };
    if let Some(map) = value.as_object_mut() {
        map.insert("warning_id".into(), warning_id.into());
    }
    let command: Command = match serde_json::from_value(value) {
        Ok(c) => c,
        Err(e) => return refused_here(&api, &unit, &Refusal::Malformed(e.to_string())),
    };
    let (reply, answer) = oneshot::channel();
    let request = ApiRequest::Command {
        unit,
        command,
        reply,
    };
    if api.tx.send(request).await.is_err() {
        return stopped();
    }
    match answer.await {
        Ok(Ok(change)) => Json(change).into_response(),
        Ok(Err(r)) => refused(&r),
        Err(_) => stopped(),
    }
}
