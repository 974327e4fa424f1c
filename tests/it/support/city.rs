//! A small city on a Kafka cluster for black-box tests of `yujing run`:
//! the mock cluster in-process, or a real broker (tansu) started for the
//! test; and a webhook receiver that can be taken down.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

use super::{ExternalProcess, free_port, read_topic_with};

/// 2026-07-15 08:00 +08:00.
pub(crate) const T0: i64 = 1_784_073_600_000;
const MINUTE: i64 = 60_000;

/// A webhook receiver that answers 503 while `down` is set.
#[derive(Clone, Default)]
pub(crate) struct Receiver {
    pub(crate) down: Arc<AtomicBool>,
    /// (status answered, headers, body) per request.
    seen: Arc<Mutex<Vec<(u16, HeaderMap, Value)>>>,
}

impl Receiver {
    pub(crate) async fn start(&self) -> String {
        let me = self.clone();
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let me = me.clone();
                async move {
                    let status = if me.down.load(Ordering::SeqCst) {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    };
                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    me.seen
                        .lock()
                        .unwrap()
                        .push((status.as_u16(), headers, body));
                    status
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    /// The bodies it accepted (200), in arrival order.
    pub(crate) fn accepted(&self) -> Vec<Value> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(s, _, _)| *s == 200)
            .map(|(_, _, b)| b.clone())
            .collect()
    }

    pub(crate) fn refused(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _, _)| *s != 200)
            .count()
    }
}

/// Where a test's topics live: librdkafka's mock cluster in the test
/// process, or a real broker process (tansu) killed when the test ends.
pub(crate) enum Cluster {
    Mock(MockCluster<'static, rdkafka::producer::DefaultProducerContext>),
    Broker(Mutex<ExternalProcess>, String),
}

impl Cluster {
    pub(crate) fn mock() -> Self {
        Cluster::Mock(MockCluster::new(1).unwrap())
    }

    /// tansu, started here on loopback with in-memory storage. `None`
    /// (skipped) only when tansu is not installed and
    /// `YUJING_SKIP_EXTERNAL` is set.
    pub(crate) async fn tansu() -> Option<Self> {
        Self::tansu_at(free_port(), "memory://tansu/").await
    }

    /// tansu on `port` with `storage` (`sqlite://FILE` survives a restart).
    pub(crate) async fn tansu_at(port: u16, storage: &str) -> Option<Self> {
        let url = format!("tcp://127.0.0.1:{port}");
        Self::tansu_serving(port, storage, &url, &[]).await
    }

    /// tansu listening on `port`, telling clients to connect to
    /// `advertised`, with `extra` arguments (`--authentication`).
    pub(crate) async fn tansu_serving(
        port: u16,
        storage: &str,
        advertised: &str,
        extra: &[&str],
    ) -> Option<Self> {
        let url = format!("tcp://127.0.0.1:{port}");
        let mut args = vec![
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            advertised,
            "--storage-engine",
            storage,
        ];
        args.extend_from_slice(extra);
        let broker = ExternalProcess::start("tansu", &args)?;
        broker.wait_port(port).await;
        Some(Cluster::Broker(
            Mutex::new(broker),
            format!("127.0.0.1:{port}"),
        ))
    }

    pub(crate) fn bootstrap(&self) -> String {
        match self {
            Cluster::Mock(m) => m.bootstrap_servers(),
            Cluster::Broker(_, b) => b.clone(),
        }
    }

    /// Create `(topic, partitions)`; on a real broker over the admin API.
    pub(crate) async fn create_topics(&self, topics: &[(&str, i32)]) {
        match self {
            Cluster::Mock(m) => {
                for (t, p) in topics {
                    m.create_topic(t, *p, 1).unwrap();
                }
            }
            Cluster::Broker(_, bootstrap) => {
                let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                    .set("bootstrap.servers", bootstrap)
                    .create()
                    .unwrap();
                let new: Vec<NewTopic> = topics
                    .iter()
                    .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1)))
                    .collect();
                let created = admin
                    .create_topics(
                        &new,
                        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("broker at {bootstrap}: cannot create topics: {e}"));
                for r in created {
                    r.unwrap_or_else(|(t, e)| panic!("broker: cannot create topic {t}: {e}"));
                }
            }
        }
    }
}

/// A city of `sensors` air sensors in two districts, one 1-minute rule.
pub(crate) struct City {
    _cluster: Cluster,
    bootstrap: String,
    pub(crate) dir: tempfile::TempDir,
    metrics_port: u16,
    /// Settings the test's own Kafka clients add (TLS, SASL).
    client_properties: Vec<(String, String)>,
    /// Lines added to the `kafka:` section of the config.
    kafka_extra: String,
}

pub(crate) const TOPICS: [(&str, i32); 3] = [("readings", 1), ("alerts", 1), ("dead-letter", 1)];

impl City {
    /// On librdkafka's in-process mock cluster.
    pub(crate) fn new(sensors: usize) -> Self {
        let cluster = MockCluster::new(1).unwrap();
        for (topic, partitions) in TOPICS {
            cluster.create_topic(topic, partitions, 1).unwrap();
        }
        let bootstrap = cluster.bootstrap_servers();
        Self::with(Cluster::Mock(cluster), bootstrap, sensors)
    }

    /// On a real Kafka-protocol broker (tansu).
    pub(crate) async fn on_tansu(sensors: usize) -> Option<Self> {
        Self::on_cluster(Cluster::tansu().await?, sensors).await
    }

    /// On `cluster`, creating the topics.
    pub(crate) async fn on_cluster(cluster: Cluster, sensors: usize) -> Option<Self> {
        cluster.create_topics(&TOPICS).await;
        let bootstrap = cluster.bootstrap();
        Some(Self::with(cluster, bootstrap, sensors))
    }

    pub(crate) fn with(cluster: Cluster, bootstrap: String, sensors: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rules.yaml"),
            "rules:\n  - id: pm25-1m\n    metric: pm25\n    window: 1m\n    group_by: sensor\n    above: { blue: 75, orange: 150 }\n",
        )
        .unwrap();
        let mut csv = "sensor_id,kind,district,district_code,street,grid,lat,lon\n".to_owned();
        for i in 0..sensors {
            let (district, code) = if i % 2 == 0 {
                ("Yubei", "500112")
            } else {
                ("Jiangbei", "500105")
            };
            csv.push_str(&format!(
                "s{i:03},air,{district},{code},st,g{i},29.6,106.5\n"
            ));
        }
        std::fs::write(dir.path().join("sensors.csv"), csv).unwrap();
        City {
            _cluster: cluster,
            bootstrap,
            dir,
            metrics_port: free_port(),
            client_properties: Vec::new(),
            kafka_extra: String::new(),
        }
    }

    /// The same city behind a secured broker: the test's clients use
    /// `client_properties`, yujing's config gets `kafka_extra` (indented
    /// lines of the `kafka:` section).
    pub(crate) fn secured(mut self, client_properties: &[(&str, &str)], kafka_extra: &str) -> Self {
        self.client_properties = client_properties
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.kafka_extra = kafka_extra.to_owned();
        self
    }

    /// A client config for the test's own producers and readers.
    pub(crate) fn client(&self) -> ClientConfig {
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", &self.bootstrap);
        for (k, v) in &self.client_properties {
            client.set(k, v);
        }
        client
    }

    /// Write `yujing.yaml` with these sinks (YAML list items).
    pub(crate) fn config(&self, sinks: &str) -> PathBuf {
        self.config_with("", sinks)
    }

    /// The same, with `extra` top-level settings.
    pub(crate) fn config_with(&self, extra: &str, sinks: &str) -> PathBuf {
        let path = self.dir.path().join("yujing.yaml");
        std::fs::write(
            &path,
            format!(
                "kafka:
  bootstrap_servers: \"{}\"
  group_id: yujing-delivery
  readings_topics: [readings]
  dead_letter_topic: dead-letter
  # A run stopped right after joining its group may not leave it on the
  # mock cluster; the next run then waits out the old member's session.
  consumer_properties:
    session.timeout.ms: \"6000\"
    statistics.interval.ms: \"1000\"
{}
rules: rules.yaml
sensors: sensors.csv
pipeline:
  max_age: \"off\"
  allowed_delay: 0s
{extra}
sinks:
{sinks}
metrics:
  listen: \"127.0.0.1:{}\"
",
                self.bootstrap, self.kafka_extra, self.metrics_port
            ),
        )
        .unwrap();
        path
    }

    /// One reading per sensor and minute: `values[m][s]` at minute `m`.
    pub(crate) async fn produce(&self, minutes: &[(i64, Vec<f64>)]) {
        let producer: FutureProducer = self.client().create().unwrap();
        for (minute, values) in minutes {
            for (s, v) in values.iter().enumerate() {
                let ts = T0 + minute * MINUTE + 1_000;
                let payload =
                    format!(r#"{{"sensor_id":"s{s:03}","ts":{ts},"metric":"pm25","value":{v}}}"#);
                producer
                    .send(
                        FutureRecord::to("readings").key("k").payload(&payload),
                        Duration::from_secs(5),
                    )
                    .await
                    .unwrap();
            }
        }
    }

    /// One message on the readings topic, as given.
    pub(crate) async fn produce_raw(&self, payload: &str) {
        let producer: FutureProducer = self.client().create().unwrap();
        producer
            .send(
                FutureRecord::to("readings").key("k").payload(payload),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    }

    /// More topics on the city's cluster.
    pub(crate) async fn create_topics(&self, topics: &[(&str, i32)]) {
        self._cluster.create_topics(topics).await;
    }

    /// Kill the real broker process (SIGKILL), as a crash would.
    pub(crate) fn kill_broker(&self) {
        if let Cluster::Broker(process, _) = &self._cluster {
            process.lock().unwrap().kill();
        }
    }

    /// The mock cluster, to take its broker down and up.
    pub(crate) fn mock(
        &self,
    ) -> Option<&MockCluster<'static, rdkafka::producer::DefaultProducerContext>> {
        match &self._cluster {
            Cluster::Mock(m) => Some(m),
            Cluster::Broker(..) => None,
        }
    }

    pub(crate) fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    pub(crate) fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    pub(crate) async fn get(&self, path: &str) -> String {
        crate::support::get_text(format!("http://127.0.0.1:{}{path}", self.metrics_port)).await
    }

    pub(crate) async fn alerts(&self, n: usize) -> Vec<Value> {
        self.alerts_within(n, Duration::from_secs(60)).await
    }

    pub(crate) async fn alerts_within(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let client = self.client();
        tokio::task::spawn_blocking(move || read_topic_with(client, "alerts", n, timeout))
            .await
            .unwrap()
            .into_iter()
            .map(|r| serde_json::from_slice(&r.payload).unwrap())
            .collect()
    }
}
