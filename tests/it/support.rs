//! Helpers shared by the black-box tests.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Held by the tests that need the machine's cores for real-time work (the
/// demo plays a city against the wall clock; the backtest equivalence test
/// grades a week in a debug build): run side by side on 2 cores, the demo
/// falls behind its clock and its readings turn late.
pub static CPU_HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One message read back from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

/// Read partition 0 of `topic` from the start until `n` messages arrived or
/// `timeout` passed.
pub fn read_topic(bootstrap: &str, topic: &str, n: usize, timeout: Duration) -> Vec<Record> {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", bootstrap);
    read_topic_with(client, topic, n, timeout)
}

/// The same through `client` (bootstrap servers and any security settings).
pub fn read_topic_with(
    mut client: ClientConfig,
    topic: &str,
    n: usize,
    timeout: Duration,
) -> Vec<Record> {
    let consumer: BaseConsumer = client
        .set("group.id", format!("test-reader-{topic}"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            let v = h
                                .value
                                .map(|v| String::from_utf8_lossy(v).into_owned())
                                .unwrap_or_default();
                            (h.key.to_owned(), v)
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Record {
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
    }
    out
}

/// Offset committed by `group` on partition 0 of `topic`.
pub fn committed_offset(bootstrap: &str, group: &str, topic: &str) -> Option<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .ok()?;
    match committed.find_partition(topic, 0)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Check Prometheus text exposition format (0.0.4) line by line and return
/// the samples as `name{labels}` → value (labels in the order printed).
pub fn parse_prometheus_text(text: &str) -> Result<HashMap<String, f64>, String> {
    let mut samples = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), Some(_)) if valid_name(name) => {}
                (Some("TYPE"), Some(name), Some(kind))
                    if valid_name(name)
                        && ["counter", "gauge", "histogram", "summary", "untyped"]
                            .contains(&kind) =>
                {
                    typed.insert(name.to_owned());
                }
                _ => return Err(format!("line {n}: bad comment {line:?}")),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or(format!("line {n}: no value: {line:?}"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .map_err(|_| format!("line {n}: bad value {v:?}"))?,
        };
        let name = series.split('{').next().unwrap();
        if !valid_name(name) {
            return Err(format!("line {n}: bad metric name {name:?}"));
        }
        let labels = &series[name.len()..];
        if !labels.is_empty() {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .ok_or(format!("line {n}: bad labels {labels:?}"))?;
            for pair in inner.split("\",").filter(|p| !p.is_empty()) {
                let (k, _) = pair
                    .split_once("=\"")
                    .ok_or(format!("line {n}: bad label {pair:?}"))?;
                if !valid_name(k) || k.contains(':') {
                    return Err(format!("line {n}: bad label name {k:?}"));
                }
            }
        }
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| typed.contains(*b)))
            .unwrap_or(name);
        if !typed.contains(base) {
            return Err(format!("line {n}: sample {name} has no # TYPE line"));
        }
        samples.insert(series.to_owned(), value);
    }
    Ok(samples)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[test]
fn prometheus_text_checker_rejects_garbage() {
    assert!(parse_prometheus_text("# TYPE a counter\na 1\n").is_ok());
    assert!(
        parse_prometheus_text("a 1\n").is_err(),
        "sample without TYPE"
    );
    assert!(parse_prometheus_text("# TYPE a counter\na one\n").is_err());
    assert!(parse_prometheus_text("# TYPE 1a counter\n").is_err());
    assert!(parse_prometheus_text("# TYPE a counter\na{x=\"1\" 1\n").is_err());
}

static ALERT_SCHEMA: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let text = include_str!("../../docs/alert.schema.json");
    let schema: serde_json::Value = serde_json::from_str(text).expect("schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
});

/// Panic unless `alert` matches the published schema, docs/alert.schema.json.
pub fn assert_valid_alert(alert: &serde_json::Value) {
    let errors: Vec<String> = ALERT_SCHEMA
        .iter_errors(alert)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "alert does not match docs/alert.schema.json: {errors:#?}\n{alert:#}"
    );
}

#[test]
fn schema_rejects_a_broken_alert() {
    let mut alert: serde_json::Value =
        serde_json::from_str(include_str!("../data/alert-example.json")).unwrap();
    assert_valid_alert(&alert);
    alert["grade"] = serde_json::json!("purple");
    assert!(!ALERT_SCHEMA.is_valid(&alert));
    alert["grade"] = serde_json::json!(null);
    assert!(
        !ALERT_SCHEMA.is_valid(&alert),
        "an escalation must carry a grade"
    );
}

/// A server program from the machine (Alertmanager, Prometheus), killed
/// when dropped. `.ci/run` installs them; a developer without them sets
/// `YUJING_SKIP_EXTERNAL=1` to skip those tests knowingly.
pub struct ExternalProcess {
    child: std::process::Child,
    name: String,
    log: tempfile::NamedTempFile,
}

/// Whether a program from the machine is there; `false` (test skipped)
/// only when it is missing and `YUJING_SKIP_EXTERNAL` is set, else a
/// missing program fails the test.
pub fn external_program(program: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()));
    if !found {
        if std::env::var_os("YUJING_SKIP_EXTERNAL").is_some() {
            eprintln!("skipped: {program} is not installed (YUJING_SKIP_EXTERNAL is set)");
            return false;
        }
        panic!(
            "{program} is not installed: `.ci/run` installs it (docs/testing.md says how), \
             or set YUJING_SKIP_EXTERNAL=1 to skip the tests that need it"
        );
    }
    true
}

impl ExternalProcess {
    /// Start `program` with `args`; `None` (test skipped) only when it is
    /// missing and `YUJING_SKIP_EXTERNAL` is set.
    pub fn start(program: &str, args: &[&str]) -> Option<Self> {
        if !external_program(program) {
            return None;
        }
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = std::process::Command::new(program)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        Some(ExternalProcess {
            child,
            name: program.to_owned(),
            log,
        })
    }

    /// Stop it now with SIGKILL (as a crash would).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait until the program accepts TCP connections on `port`, or fail
    /// with its log.
    pub async fn wait_port(&self, port: u16) {
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        panic!(
            "{} did not listen on port {port}; its log:\n{log}",
            self.name
        );
    }

    /// Wait until `url` answers 200, or fail with the program's log.
    pub async fn wait_ready(&self, url: &str) {
        for _ in 0..200 {
            if let Ok(r) = reqwest::get(url).await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        panic!("{} did not come up at {url}; its log:\n{log}", self.name);
    }
}

impl Drop for ExternalProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate authority made for one test, and a server certificate it
/// signed for `localhost` and `127.0.0.1`.
pub struct TestCa {
    /// The CA certificate, PEM: what a client is told to trust.
    pub ca_pem: String,
    /// Accepts TLS with the server certificate.
    pub acceptor: tokio_rustls::TlsAcceptor,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    server: (rustls_pki::CertificateDer<'static>, Vec<u8>),
}

use tokio_rustls::rustls::pki_types as rustls_pki;

impl TestCa {
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "yujing test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let server = (leaf.der().clone(), leaf_key.serialize_der());
        let builder = Self::server_config_builder();
        let config = builder
            .with_no_client_auth()
            .with_single_cert(
                vec![server.0.clone()],
                rustls_pki::PrivateKeyDer::Pkcs8(server.1.clone().into()),
            )
            .unwrap();
        TestCa {
            ca_pem: ca.pem(),
            acceptor: tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
            ca,
            ca_key,
            server,
        }
    }

    fn server_config_builder() -> tokio_rustls::rustls::ConfigBuilder<
        tokio_rustls::rustls::ServerConfig,
        tokio_rustls::rustls::WantsVerifier,
    > {
        tokio_rustls::rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
    }

    /// Accepts TLS only from clients with a certificate this CA signed
    /// (mutual TLS).
    pub fn mutual_acceptor(&self) -> tokio_rustls::TlsAcceptor {
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let config = Self::server_config_builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![self.server.0.clone()],
                rustls_pki::PrivateKeyDer::Pkcs8(self.server.1.clone().into()),
            )
            .unwrap();
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
    }

    /// A client certificate for `name` and its key, both PEM.
    pub fn client_certificate(&self, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}
