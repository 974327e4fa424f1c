//! The webhook sink against a real HTTP server on loopback: signed bodies,
//! retries on 5xx and timeouts only, idempotency keys.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use yujing_sinks::webhook::signature;
use yujing_sinks::{AlertMessage, WebhookSettings, WebhookSink};

/// What the receiver saw: (headers, body) per request.
type Seen = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A receiver answering `answers` in turn (then 200); a `None` answer
/// sleeps past the sink's timeout.
async fn receiver(answers: Vec<Option<StatusCode>>) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let answers = Arc::new(Mutex::new(answers.into_iter()));
    let log = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (log, answers) = (log.clone(), answers.clone());
            async move {
                log.lock().unwrap().push((headers, body.to_vec()));
                let answer = answers.lock().unwrap().next();
                match answer {
                    Some(Some(status)) => status,
                    Some(None) => {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        StatusCode::OK
                    }
                    None => StatusCode::OK,
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn sink(url: &str) -> WebhookSink {
    WebhookSink::new(WebhookSettings {
        url: url.to_owned(),
        secret: Some(b"duty-secret".to_vec()),
        timeout: Duration::from_millis(300),
        max_attempts: 4,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        headers: vec![("x-team".into(), "air".into())],
    })
    .unwrap()
}

fn alert() -> AlertMessage {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/hysteresis-flapping/expected.jsonl"),
    )
    .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    v["emitted_at"] = "2026-07-15T08:00:00+08:00".into();
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn transient_failures_are_retried_with_the_same_signed_body() {
    // 503, a timeout, 502, then accepted.
    let (url, seen) = receiver(vec![
        Some(StatusCode::SERVICE_UNAVAILABLE),
        None,
        Some(StatusCode::BAD_GATEWAY),
    ])
    .await;
    let a = alert();
    sink(&url).deliver(std::slice::from_ref(&a)).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 4, "three failures, then delivered");
    let body = serde_json::to_vec(&a).unwrap();
    for (headers, got) in seen.iter() {
        assert_eq!(got, &body, "every attempt sends the alert unchanged");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(
            headers["x-yujing-signature-256"].to_str().unwrap(),
            signature(b"duty-secret", &body)
        );
        assert_eq!(
            headers["idempotency-key"].to_str().unwrap(),
            format!("{}/{}", a.warning_id, a.sequence)
        );
        assert_eq!(headers["x-team"], "air");
    }
}

#[tokio::test]
async fn a_refusal_is_not_retried_and_gives_up_after_max_attempts() {
    let (url, seen) = receiver(vec![Some(StatusCode::BAD_REQUEST)]).await;
    let e = sink(&url).deliver(&[alert()]).await.unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert_eq!(seen.lock().unwrap().len(), 1, "4xx: one attempt");

    let (url, seen) = receiver(vec![Some(StatusCode::INTERNAL_SERVER_ERROR); 10]).await;
    let e = sink(&url).deliver(&[alert()]).await.unwrap_err();
    assert!(
        !e.is_permanent(),
        "a down receiver is worth retrying later: {e}"
    );
    assert!(e.to_string().contains("after 4 attempts"), "{e}");
    assert_eq!(seen.lock().unwrap().len(), 4);
}
