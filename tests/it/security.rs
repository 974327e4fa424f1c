//! yujing against a broker that requires SASL/SCRAM over mutual TLS: the
//! settings of docs/operations.md ("Security") on a real Kafka-protocol
//! broker (tansu) behind a TLS listener made for the test.
//!
//! tansu 0.6 authenticates SASL itself (SCRAM credentials in its store) but
//! does not terminate TLS (its `--cert`/`--key` are not wired to its
//! listener), so a proxy here terminates TLS with a certificate from a CA
//! made in the test and asks clients for one of that CA, and the broker
//! advertises the proxy: every connection a client makes, bootstrap or
//! not, goes through it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;

use crate::delivery::three_transitions;
use crate::support::{City, Cluster, TOPICS, TestCa, external_program, free_port, run_while};

const PASSWORD: &str = "cq-duty-7f3a-S3CRET";

/// A TLS listener on loopback that passes each session's bytes to the
/// broker on `broker_port`; returns its port and the number of TLS
/// sessions it accepted.
async fn tls_proxy(
    acceptor: tokio_rustls::TlsAcceptor,
    broker_port: u16,
) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sessions = Arc::new(AtomicUsize::new(0));
    let count = sessions.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, count) = (acceptor.clone(), count.clone());
            tokio::spawn(async move {
                // A client that does not speak TLS, or does not trust the
                // certificate, ends here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(mut broker) =
                    tokio::net::TcpStream::connect(("127.0.0.1", broker_port)).await
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
            });
        }
    });
    (port, sessions)
}

/// yujing's /health, once it answers.
async fn health(port: u16) -> Option<Value> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .ok()?;
    serde_json::from_str(&r.text().await.ok()?).ok()
}

/// Whether a client with these settings gets the cluster's metadata.
async fn can_read_metadata(client: rdkafka::ClientConfig) -> Result<(), String> {
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client.create().map_err(|e| e.to_string())?;
        consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_and_warnings_flow_over_mutual_tls_with_scram_authentication() {
    if !external_program("tansu") {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    // tansu drops one leading slash of the path.
    let storage = format!("sqlite:///{}", store.path().join("tansu.db").display());
    let port = free_port();

    // An administrator sets the broker up while it is still open: the
    // topics, a SCRAM-SHA-256 user for yujing and a SCRAM-SHA-512 one.
    {
        let open = Cluster::tansu_at(port, &storage).await.unwrap();
        open.create_topics(&TOPICS).await;
        for (user, mechanism) in [("yujing", "scram256"), ("bureau", "scram512")] {
            let out = std::process::Command::new("tansu")
                .args(["user", "create", "--broker"])
                .arg(format!("tcp://127.0.0.1:{port}"))
                .args(["--mechanism", mechanism, user, PASSWORD])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "tansu user create: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    // Then it requires SASL, behind mutual TLS (clients show a certificate
    // of the city's CA too).
    let ca = TestCa::new();
    let (tls_port, tls_sessions) = tls_proxy(ca.mutual_acceptor(), port).await;
    let advertised = format!("tcp://127.0.0.1:{tls_port}");
    let cluster = Cluster::tansu_serving(port, &storage, &advertised, &["--authentication"])
        .await
        .unwrap();
    let city = City::with(cluster, format!("127.0.0.1:{tls_port}"), 3);
    let file = |name: &str, content: &str| {
        let path = city.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    };
    let ca_file = file("ca.pem", &ca.ca_pem);
    let (cert, key) = ca.client_certificate("yujing");
    let (cert_file, key_file) = (file("client.pem", &cert), file("client.key", &key));
    file("kafka-password", PASSWORD);
    let tls = [
        ("security.protocol", "SASL_SSL"),
        ("ssl.ca.location", ca_file.as_str()),
        ("ssl.certificate.location", cert_file.as_str()),
        ("ssl.key.location", key_file.as_str()),
    ];
    let client = |mechanism: &str, user: &str, password: &str| {
        let mut client = city.client();
        for (k, v) in tls {
            client.set(k, v);
        }
        client
            .set("sasl.mechanisms", mechanism)
            .set("sasl.username", user)
            .set("sasl.password", password);
        client
    };

    // The broker and the listener really check: a wrong password, no TLS
    // or no client certificate gets nothing.
    can_read_metadata(client("SCRAM-SHA-256", "yujing", "not-the-password"))
        .await
        .unwrap_err();
    let mut plaintext = client("SCRAM-SHA-256", "yujing", PASSWORD);
    plaintext.set("security.protocol", "SASL_PLAINTEXT");
    can_read_metadata(plaintext).await.unwrap_err();
    let mut no_certificate = client("SCRAM-SHA-256", "yujing", PASSWORD);
    no_certificate
        .remove("ssl.certificate.location")
        .remove("ssl.key.location");
    can_read_metadata(no_certificate).await.unwrap_err();
    can_read_metadata(client("SCRAM-SHA-256", "yujing", PASSWORD))
        .await
        .unwrap();
    can_read_metadata(client("SCRAM-SHA-512", "bureau", PASSWORD))
        .await
        .unwrap();

    let mut test_clients: Vec<(&str, &str)> = tls.to_vec();
    test_clients.extend([
        ("sasl.mechanisms", "SCRAM-SHA-256"),
        ("sasl.username", "yujing"),
        ("sasl.password", PASSWORD),
    ]);
    let city = city.secured(
        &test_clients,
        &format!(
            "  properties:
    security.protocol: SASL_SSL
    sasl.mechanisms: SCRAM-SHA-256
    sasl.username: yujing
    ssl.ca.location: \"{ca_file}\"
    ssl.certificate.location: \"{cert_file}\"
    ssl.key.location: \"{key_file}\"
  secret_properties:
    sasl.password: {{ file: kafka-password }}"
        ),
    );
    let config = city.config("  - kind: kafka\n    topic: alerts\n");
    city.produce(&three_transitions()).await;

    // A wrong password: yujing does not get in, and says so on /health
    // (and in its log), without the password.
    let password_file = city.dir.path().join("kafka-password");
    std::fs::write(&password_file, "not-the-password").unwrap();
    {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let pipeline = yujing::cli::run(config.clone(), async {
            let _ = stop_rx.await;
        });
        let port = city.metrics_port();
        let driver = async {
            let refused = |h: &Value| {
                h["sinks"]["kafka-consumer"]["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("Authentication"))
            };
            for _ in 0..300 {
                if health(port).await.is_some_and(|h| refused(&h)) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // librdkafka reports "all brokers down" after the refusal and
            // again at each retry: the refusal stays in sight.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let health = health(port).await.unwrap();
            let consumer = &health["sinks"]["kafka-consumer"];
            assert_eq!(consumer["up"], false, "{health}");
            assert!(refused(&health), "{health}");
            assert!(!health.to_string().contains("not-the-password"));
            let _ = stop_tx.send(());
        };
        let (run, ()) = tokio::join!(pipeline, driver);
        run.expect("a refused run stops cleanly");
    }
    std::fs::write(&password_file, PASSWORD).unwrap();
    let before = tls_sessions.load(Ordering::SeqCst);

    let (run, ()) = run_while(config, async {
        // 3 sensors: raised blue, escalated orange, resolved.
        let alerts = city.alerts(9).await;
        assert_eq!(alerts.len(), 9, "{alerts:?}");
        let mut grades: Vec<(String, String)> = alerts
            .iter()
            .map(|a| {
                (
                    a["transition"].as_str().unwrap().to_owned(),
                    a["grade"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        grades.sort();
        grades.dedup();
        assert_eq!(grades.len(), 3, "{grades:?}");
        let health: Value = serde_json::from_str(&city.get("/health").await).unwrap();
        assert_eq!(health["status"], "ok", "{health}");
        let metrics = city.get("/metrics").await;
        assert!(!metrics.contains(PASSWORD));
    })
    .await;
    run.unwrap();
    // yujing's consumer, producer and admin clients came in through TLS.
    assert!(
        tls_sessions.load(Ordering::SeqCst) > before,
        "yujing's clients did not connect through the TLS listener"
    );
}
