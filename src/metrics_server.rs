//! The Prometheus endpoint: `GET /metrics` (text exposition format),
//! `GET /healthz` (the process answers), `GET /health` (JSON: each sink up
//! or failing, and its spool); with `yujing run`, also `POST /-/reload`
//! (rules reload, bearer token required) and, with a responsibility file,
//! the responders' API (`/api/v1/warnings`, see [`crate::response_api`]).
//! A body declared larger than [`MAX_REQUEST_BODY`], or sent chunked, is
//! refused (413) before any handler runs; hyper bounds the request head.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::reload::{ReloadRequest, ReloadSender, ReloadTrigger, token_matches};
use crate::telemetry::Metrics;

/// A bound metrics endpoint; [`serve`](MetricsServer::serve) runs it.
pub struct MetricsServer {
    listener: TcpListener,
    state: AppState,
    api: Option<crate::response_api::Api>,
    board: Option<crate::board::Board>,
    feed: Option<crate::feed::Feed>,
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    /// Where reload requests go, and the token they need (`None`: the
    /// endpoint answers 403).
    reload: Option<(ReloadSender, Option<String>)>,
}

impl MetricsServer {
    /// Bind now so the caller can print the address (port 0 picks one).
    pub async fn bind(addr: SocketAddr, metrics: Metrics) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let state = AppState {
            metrics,
            reload: None,
        };
        Ok(MetricsServer {
            listener,
            state,
            api: None,
            board: None,
            feed: None,
        })
    }

    /// Serve `POST /-/reload`, sending requests to `tx`; callers must
    /// present `Authorization: Bearer <token>`. Without a token the
    /// endpoint exists but refuses (403), so an open port cannot swap the
    /// city's rules.
    pub fn with_reload(mut self, tx: ReloadSender, token: Option<String>) -> Self {
        self.state.reload = Some((tx, token.filter(|t| !t.is_empty())));
        self
    }

    /// Serve the public CAP feed (`/feed/cap.atom`, `/feed/cap/{id}.xml`).
    pub fn with_feed(mut self, feed: crate::feed::Feed) -> Self {
        self.feed = Some(feed);
        self
    }

    /// Serve the board (`/board`, its snapshot and events).
    pub fn with_board(mut self, board: crate::board::Board) -> Self {
        self.board = Some(board);
        self
    }

    /// Serve the responders' API, answered by the pipeline through `api`.
    pub fn with_responses(mut self, api: crate::response_api::Api) -> Self {
        self.api = Some(api);
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let mut app = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/health", get(health))
            .route("/-/reload", post(reload))
            .with_state(self.state);
        if let Some(api) = self.api {
            use crate::response_api::{command, list};
            app = app.merge(
                Router::new()
                    .route("/api/v1/warnings", get(list))
                    .route("/api/v1/warnings/{*warning_id}", post(command))
                    .with_state(api),
            );
        }
        if let Some(board) = self.board {
            use crate::board::{events, page, script, snapshot, style, timeline};
            app = app.merge(
                Router::new()
                    .route("/board", get(page))
                    .route("/board/board.js", get(script))
                    .route("/board/board.css", get(style))
                    .route("/api/v1/board", get(snapshot))
                    .route("/api/v1/board/events", get(events))
                    .route("/api/v1/board/timeline", get(timeline))
                    .with_state(board),
            );
        }
        if let Some(feed) = self.feed {
            use crate::feed::http::{atom, document};
            app = app.merge(
                Router::new()
                    .route("/feed/cap.atom", get(atom))
                    .route("/feed/cap/{file}", get(document))
                    .with_state(feed),
            );
        }
        let app = app.layer(axum::middleware::from_fn(limit_body));
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// The largest request body accepted (a responder's command).
pub const MAX_REQUEST_BODY: u64 = 1024;

async fn limit_body(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if headers.contains_key(header::TRANSFER_ENCODING)
        || declared.is_some_and(|n| n > MAX_REQUEST_BODY)
    {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {MAX_REQUEST_BODY} bytes (or chunked): refused\n"),
        )
            .into_response();
    }
    next.run(request).await
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        s.metrics.render(),
    )
}

/// `{"status": "ok" | "degraded", "sinks": {name: {up, spooled_alerts,
/// spool_bytes, last_error}}}`. Always 200 while the process runs: a
/// destination being down is shown, not a reason to restart yujing.
async fn health(State(s): State<AppState>) -> impl IntoResponse {
    let (ok, sinks) = s.metrics.health.report();
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "degraded" },
        "sinks": sinks,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
}

async fn reload(State(s): State<AppState>, headers: HeaderMap) -> (StatusCode, String) {
    let Some((tx, token)) = s.reload else {
        return (StatusCode::NOT_FOUND, "no rules to reload here\n".into());
    };
    let Some(token) = token else {
        return (
            StatusCode::FORBIDDEN,
            "reload over HTTP is off: set the token variable named by reload.http_token_env\n"
                .into(),
        );
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !token_matches(presented, &token) {
        return (
            StatusCode::UNAUTHORIZED,
            "bad or missing bearer token\n".into(),
        );
    }
    let (reply, answer) = oneshot::channel();
    let req = ReloadRequest {
        trigger: ReloadTrigger::Http,
        reply: Some(reply),
    };
    if tx.send(req).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "pipeline is stopping\n".into(),
        );
    }
    match answer.await {
        Ok(Ok(summary)) => (StatusCode::OK, format!("{summary}\n")),
        Ok(Err(problems)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("refused; the running rules stay:\n{problems}\n"),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "pipeline is stopping\n".into(),
        ),
    }
}
