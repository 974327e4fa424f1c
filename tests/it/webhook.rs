//! The webhook sink against a real HTTP server on loopback: signed bodies,
//! retries on 5xx and timeouts only, idempotency keys.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use yujing_sinks::webhook::signature;
use yujing_sinks::{AlertMessage, WebhookSettings, WebhookSink};

use crate::support::{TestCa, run_while};

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
        extra_roots_pem: None,
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

/// Through `yujing run`: a webhook that refuses every alert (HTTP 400) is
/// counted in `yujing_sink_failures_total` and does not stop the Kafka
/// sink beside it from getting the warnings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_webhook_is_counted_and_delivery_goes_on() {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let (url, seen) = receiver(vec![Some(StatusCode::BAD_REQUEST); 100]).await;
    let cluster =
        crate::support::mock_cluster(&["readings", "alerts", "dead-letter", "late-readings"]);
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yaml"),
        "rules:\n  - id: pm25-1m\n    metric: pm25\n    window: 1m\n    group_by: sensor\n    above: { blue: 75 }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sensors.csv"),
        "sensor_id,kind,district,district_code,street,grid,lat,lon\na1,air,Yubei,500112,Longxi,g1,29.6,106.5\n",
    )
    .unwrap();
    let metrics_port = crate::support::free_port();
    let config = dir.path().join("yujing.yaml");
    std::fs::write(
        &config,
        format!(
            "kafka:
  bootstrap_servers: \"{bootstrap}\"
  group_id: yujing-webhook
  readings_topics: [readings]
  dead_letter_topic: dead-letter
  late_topic: late-readings
rules: rules.yaml
sensors: sensors.csv
pipeline:
  max_age: \"off\"
  allowed_delay: 0s
sinks:
  - kind: webhook
    url: \"{url}\"
    max_attempts: 1
  - kind: kafka
    topic: alerts
metrics:
  listen: \"127.0.0.1:{metrics_port}\"
"
        ),
    )
    .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    // 2026-07-15 08:00 +08:00: 100 in minute 0; minute 1 closes minute 0.
    let t0: i64 = 1_784_073_600_000;
    for (ts, v) in [(t0 + 1_000, 100.0), (t0 + 61_000, 100.0)] {
        let payload = format!(r#"{{"sensor_id":"a1","ts":{ts},"metric":"pm25","value":{v}}}"#);
        producer
            .send(
                FutureRecord::to("readings").key("a1").payload(&payload),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    }
    let (result, (alerts, text)) = run_while(config, async {
        let b = bootstrap.clone();
        let alerts = tokio::task::spawn_blocking(move || {
            crate::support::read_topic(&b, "alerts", 1, Duration::from_secs(60))
        })
        .await
        .unwrap();
        let text =
            crate::support::get_text(format!("http://127.0.0.1:{metrics_port}/metrics")).await;
        (alerts, text)
    })
    .await;
    result.expect("the pipeline keeps running and stops cleanly");
    assert_eq!(alerts.len(), 1, "the Kafka sink still got the warning");
    assert_eq!(seen.lock().unwrap().len(), 1, "refused once, not retried");
    let samples = crate::support::parse_prometheus_text(&text).unwrap();
    let failures: f64 = samples
        .iter()
        .filter(|(k, _)| k.starts_with("yujing_sink_failures_total") && k.contains("webhook:"))
        .map(|(_, v)| *v)
        .sum();
    assert_eq!(failures, 1.0, "{text}");
}

/// An HTTPS receiver with a certificate from a CA made here; returns its
/// URL, the CA certificate (PEM), and the requests it read.
async fn tls_receiver() -> (String, String, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let TestCa {
        ca_pem, acceptor, ..
    } = TestCa::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}/hook",
        listener.local_addr().unwrap().port()
    );
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                // A handshake the client refuses ends here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Read the head, then the body by its content-length.
                loop {
                    let n = tls.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            log.lock().unwrap().push(text);
                            break;
                        }
                    }
                }
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (url, ca_pem, seen)
}

#[tokio::test]
async fn https_needs_a_trusted_certificate_and_then_delivers() {
    let (url, ca_pem, seen) = tls_receiver().await;
    let settings = |roots: Option<Vec<u8>>| WebhookSettings {
        url: url.clone(),
        secret: Some(b"duty-secret".to_vec()),
        timeout: Duration::from_secs(5),
        max_attempts: 1,
        backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
        headers: Vec::new(),
        extra_roots_pem: roots,
    };
    let a = alert();

    // The Mozilla roots alone do not know this CA: refused handshake.
    let e = WebhookSink::new(settings(None))
        .unwrap()
        .deliver(std::slice::from_ref(&a))
        .await
        .unwrap_err();
    assert!(!e.is_permanent(), "{e}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the receiver"
    );

    // With the city's CA (ca_file): delivered over TLS, signed.
    WebhookSink::new(settings(Some(ca_pem.into_bytes())))
        .unwrap()
        .deliver(std::slice::from_ref(&a))
        .await
        .unwrap();
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let (head, body) = requests[0].split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("POST /hook HTTP/1.1"), "{head}");
    let sig = signature(b"duty-secret", body.as_bytes());
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("x-yujing-signature-256: {sig}")),
        "{head}"
    );
    let delivered: AlertMessage = serde_json::from_str(body).unwrap();
    assert_eq!(delivered, a);
}
