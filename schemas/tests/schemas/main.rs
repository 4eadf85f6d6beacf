//! schemas' integration tests, one binary: the codec, the `.avsc` files held to the Rust types, and
//! records of earlier releases read by this one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod codec;
mod schema_drift;
mod upgrade;
