//! ingest's integration tests, one binary: every input shape, every runtime sensor's format, and
//! every spelling of the same request.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod runtime;
mod shapes;
mod variants;
