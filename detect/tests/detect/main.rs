//! detect's integration tests, one binary: each module tests one part, with an event that must fire
//! each detector and one that must not.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod guardduty_audit;
mod principal_and_image_baselines;
mod runtime;
mod unseen_data;
mod vigil_audit_and_rule_language;
mod volume_baselines;
