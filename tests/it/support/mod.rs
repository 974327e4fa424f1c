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
//! - [`external`]: programs from the machine started for a test;
//! - [`tls`]: a certificate authority made in the test.

pub mod alerts;
pub mod city;
pub mod external;
pub mod kafka;
pub mod metrics;
pub mod tls;
pub mod wait;

pub use alerts::assert_valid_alert;
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
