//! vigil-kafka's integration tests, one binary: the stages on a real Apache Kafka broker (the harness
//! starts it), and the compose file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod broker;
mod cluster;
mod compose;
mod exactly_once;
mod gateway;
mod harness;
mod hostile;
mod msk_iam;
