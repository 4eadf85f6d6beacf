//! Helpers shared by the cross-stage tests.
