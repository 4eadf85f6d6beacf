//! The `vigil` command's tests, one binary: `vigil scan` and `vigil rules` end to end, and the
//! variation harness.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod ocsf;
mod scan;
mod variants;
