//! The `.avsc` files are the contract; the Rust types must say the same thing. Each type derives its
//! Avro schema from its fields, and the derived schema's parsing canonical form must equal the file's.
//!
//! After an intended change to a type, `VIGIL_WRITE_SCHEMAS=1 cargo test -p vigil-schemas --test
//! schema_drift` rewrites the files from the types; review the diff like any contract change.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use apache_avro::{AvroSchema, Schema};
use vigil_schemas::{AuditEvent, Detection, EnrichedEvent, Finding, Record, RuntimeEvent};

fn check<T: Record + AvroSchema>(file_name: &str) {
    let derived = T::get_schema();
    let path = format!("{}/{file_name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("VIGIL_WRITE_SCHEMAS").is_some() {
        let pretty = serde_json::to_string_pretty(&derived).expect("schema serializes");
        std::fs::write(&path, pretty + "\n").expect("schema file is writable");
        return;
    }
    let written =
        Schema::parse_str(T::AVSC).unwrap_or_else(|error| panic!("{path} does not parse: {error}"));
    assert_eq!(
        derived.canonical_form(),
        written.canonical_form(),
        "the Rust type {} and {path} disagree",
        T::FULL_NAME
    );
}

#[test]
fn audit_event_matches_its_avsc() {
    check::<AuditEvent>("AuditEvent.avsc");
}

#[test]
fn runtime_event_matches_its_avsc() {
    check::<RuntimeEvent>("RuntimeEvent.avsc");
}

#[test]
fn enriched_event_matches_its_avsc() {
    check::<EnrichedEvent>("EnrichedEvent.avsc");
}

#[test]
fn detection_matches_its_avsc() {
    check::<Detection>("Detection.avsc");
}

#[test]
fn finding_matches_its_avsc() {
    check::<Finding>("Finding.avsc");
}
