//! Everything the black-box tests share, in one place. A new test of
//! `yujing run` takes a [`City`], writes its config with
//! [`City::config`]/[`City::config_with`] (sinks and extra settings only),
//! produces readings, and reads what came out with the helpers below.
//!
//! # Layout
//! - [`city`]: a small city on the mock cluster or a real broker (tansu),
//!   its `yujing.yaml` builder, and a webhook receiver;
//! - [`kafka`]: topics read back, committed offsets;
//! - [`metrics`]: Prometheus text checked, scraped, summed by label, and
//!   waited on;
//! - [`wait`]: waiting for a condition, with a deadline;
//! - [`alerts`]: alert messages checked against the published schema;
//! - [`beijing`]: the one reader of the Beijing air samples in `tests/data/`;
//! - [`external`]: programs from the machine started for a test;
//! - [`tls`]: a certificate authority made in the test.

pub mod alerts;
pub mod beijing;
pub mod city;
pub mod external;
pub mod kafka;
pub mod metrics;
pub mod tls;
pub mod wait;

pub use alerts::{assert_valid_alert, assert_valid_cap};
pub(crate) use city::{City, Cluster, Receiver, T0, TOPICS};
pub use external::{CPU_HEAVY, ExternalProcess, external_program};
pub use kafka::{committed_offset, read_topic, read_topic_with};
pub use metrics::{metric, parse_prometheus_text, sample, scrape, wait_for_metric};
pub use tls::TestCa;
pub use wait::{wait_for, wait_until};

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Run `yujing run` on `config` while `driver` runs, and stop it (as
/// SIGTERM would) once the driver is done: what the run returned, and what
/// the driver did.
pub async fn run_while<T>(
    config: std::path::PathBuf,
    driver: impl std::future::Future<Output = T>,
) -> (
    Result<yujing::pipeline::RunSummary, yujing::pipeline::PipelineError>,
    T,
) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pipeline = yujing::cli::run(config, async {
        let _ = stop_rx.await;
    });
    let driver = async {
        let out = driver.await;
        let _ = stop_tx.send(());
        out
    };
    tokio::join!(pipeline, driver)
}

/// [`run_while`] for a [`City`]: run until `until` is done, expect a clean
/// stop, and return the metrics text scraped just before stopping.
pub async fn run_until(
    city: &City,
    config: &std::path::Path,
    until: impl std::future::Future<Output = ()>,
) -> String {
    let (result, text) = run_while(config.to_owned(), async {
        until.await;
        city.get("/metrics").await
    })
    .await;
    result.expect("the pipeline stops cleanly");
    text
}

/// `GET url`: the body (panics when the server does not answer).
pub async fn get_text(url: impl reqwest::IntoUrl) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// librdkafka's mock cluster (one broker) with `topics`, one partition
/// each.
pub fn mock_cluster(
    topics: &[&str],
) -> rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    for topic in topics {
        cluster.create_topic(topic, 1, 1).unwrap();
    }
    cluster
}
