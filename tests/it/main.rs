//! Black-box tests of yujing through its real parts: librdkafka's mock
//! Kafka cluster, the `yujing run` path, real HTTP for metrics.
//!
//! One test crate with modules: a binary linking DataFusion is slow to link.

mod alertmanager;
mod aqi;
mod backtest;
mod bad_input;
mod board;
mod checkpoint;
mod cli;
mod dead_letter;
mod delivery;
mod demo;
mod deploy;
mod e2e;
mod faults;
mod feed;
mod feedback;
mod golden;
mod prometheus;
mod rebalance;
mod reload;
mod response_handover;
mod responses;
mod restart;
mod security;
mod stop;
mod support;
mod tune;
mod webhook;
mod windows;
