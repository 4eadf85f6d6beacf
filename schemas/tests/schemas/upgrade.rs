//! Contracts that survive upgrades: records an earlier release wrote (on a topic, or saved as state,
//! as publish saves its findings) decode after an upgrade, the fields added since taking their
//! defaults; and every writer schema an earlier release used is kept in `schemas/history/`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;

use apache_avro::Schema;
use vigil_schemas::codec::{self, HISTORY, SINGLE_OBJECT_MAGIC};
use vigil_schemas::*;

/// What a release writing `writer` put on the wire for `record`: the fields its schema has, in
/// single-object encoding under its fingerprint.
fn written_by(writer: &Schema, record: &impl serde::Serialize) -> Vec<u8> {
    let value = apache_avro::to_value(record).unwrap();
    // Resolving the current value to the earlier schema keeps exactly the fields it had.
    let earlier = value.resolve(writer).unwrap();
    let mut bytes = SINGLE_OBJECT_MAGIC.to_vec();
    bytes.extend_from_slice(&codec::fingerprint(writer).to_le_bytes());
    bytes.extend(apache_avro::to_avro_datum(writer, earlier).unwrap());
    bytes
}

fn audit_event() -> AuditEvent {
    AuditEvent {
        audit_id: "a1".into(),
        stage: "ResponseComplete".into(),
        event_time_micros: 1_709_510_400_000_000,
        verb: "create".into(),
        request_uri: "/api/v1/namespaces/shop/pods/web/exec?command=sh".into(),
        user: UserInfo {
            username: "alice".into(),
            groups: vec!["developers".into()],
            ..UserInfo::default()
        },
        source_ips: vec!["203.0.113.7".into()],
        status_code: Some(101),
        ..AuditEvent::default()
    }
}

fn detection() -> Detection {
    Detection {
        finding_type: "Execution:Kubernetes/ExecInPod".into(),
        detector: "exec_in_pod".into(),
        severity: 2.0,
        title: "t".into(),
        description: "d".into(),
        aggregation_key: vec!["alice".into()],
        event_id: "a1".into(),
        event_time_micros: 1_709_510_400_000_000,
        cluster: ClusterDetails {
            name: "prod".into(),
            partition: "aws".into(),
            ..ClusterDetails::default()
        },
        ..Detection::default()
    }
}

fn check<T>(codec: &Codec, name: &str, writer: &Schema, record: &T)
where
    T: Record + PartialEq + std::fmt::Debug,
{
    let bytes = written_by(writer, record);
    let decoded: T = codec
        .decode(&bytes)
        .unwrap_or_else(|error| panic!("{name} written by an earlier release: {error}"));
    // The record was built with the added fields at their defaults, so it comes back whole.
    assert_eq!(&decoded, record, "{name}");
}

#[test]
fn records_every_earlier_release_wrote_decode_after_the_upgrade() {
    let codec = Codec::new().unwrap();
    let mut checked = BTreeSet::new();
    for (name, file, avsc) in HISTORY {
        let writer = Schema::parse_str(avsc).unwrap();
        match name {
            "io.vigil.AuditEvent" => check(&codec, file, &writer, &audit_event()),
            "io.vigil.RuntimeEvent" => check(
                &codec,
                file,
                &writer,
                &RuntimeEvent {
                    event_id: "tetragon:1".into(),
                    event_time_micros: 1,
                    kind: "process_exec".into(),
                    sensor: "tetragon".into(),
                    process: ProcessInfo {
                        binary: "/bin/sh".into(),
                        ..ProcessInfo::default()
                    },
                    ..RuntimeEvent::default()
                },
            ),
            "io.vigil.EnrichedEvent" => check(
                &codec,
                file,
                &writer,
                &EnrichedEvent {
                    audit: Some(audit_event()),
                    cluster: detection().cluster,
                    ..EnrichedEvent::default()
                },
            ),
            "io.vigil.Detection" => check(&codec, file, &writer, &detection()),
            // Publish's saved state: the findings it aggregates, read back after a restart.
            "io.vigil.Finding" => check(
                &codec,
                file,
                &writer,
                &Finding {
                    id: "52dc215767490cb718759dd6e06a311c".into(),
                    count: 3,
                    created_at_micros: 1,
                    updated_at_micros: 2,
                    event_first_seen_micros: 1,
                    event_last_seen_micros: 2,
                    archived: false,
                    detection: detection(),
                    recent_event_ids: vec!["a1".into()],
                    attack_sequence_arn: None,
                },
            ),
            other => panic!("no sample of {other}: add one"),
        }
        checked.insert(file);
    }
    assert_eq!(checked.len(), HISTORY.len());
}

/// The test above has teeth: a field added without a default cannot be read from an earlier
/// writer's record, and resolution says so.
#[test]
fn a_field_added_without_a_default_would_break_the_upgrade() {
    let (_, _, earlier) = HISTORY
        .iter()
        .find(|(name, _, _)| *name == "io.vigil.Finding")
        .unwrap();
    let earlier = Schema::parse_str(earlier).unwrap();
    // serde_json writes an object's keys in order: `"default"` comes first in a field.
    let current = serde_json::from_str::<serde_json::Value>(Finding::AVSC)
        .unwrap()
        .to_string();
    let without_defaults = current.replace("\"default\":null,", "");
    assert!(
        without_defaults.len() < current.len(),
        "the current schema has defaults"
    );
    let reader = Schema::parse_str(&without_defaults).unwrap();
    let bytes = written_by(
        &earlier,
        &Finding {
            detection: detection(),
            ..Finding::default()
        },
    );
    let datum = &bytes[10..];
    let resolved = apache_avro::from_avro_datum(&earlier, &mut &datum[..], Some(&reader));
    assert!(resolved.is_err(), "{resolved:?}");
}

/// Every file in `schemas/history/` is known to the codec (and the other way round), is named by
/// its fingerprint, and is an earlier schema, not this build's.
#[test]
fn the_history_directory_is_what_the_codec_knows() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("history");
    let mut on_disk = BTreeSet::new();
    for record in std::fs::read_dir(&root).unwrap() {
        let record = record.unwrap();
        if !record.path().is_dir() {
            continue; // the directory's README
        }
        for file in std::fs::read_dir(record.path()).unwrap() {
            let file = file.unwrap().path();
            let relative = file
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            on_disk.insert(relative);
        }
    }
    let listed: BTreeSet<String> = HISTORY
        .iter()
        .map(|(_, file, _)| (*file).to_owned())
        .collect();
    assert_eq!(on_disk, listed, "schemas/history and codec::HISTORY");
    let codec = Codec::new().unwrap();
    let current: BTreeSet<u64> = codec::ALL_SCHEMAS
        .iter()
        .map(|(_, avsc)| codec::fingerprint(&Schema::parse_str(avsc).unwrap()))
        .collect();
    for (name, file, avsc) in HISTORY {
        let fingerprint = codec::fingerprint(&Schema::parse_str(avsc).unwrap());
        assert!(
            file.ends_with(&format!("/{fingerprint:016x}.avsc")),
            "{file} is named by its fingerprint {fingerprint:016x}"
        );
        assert!(file.starts_with(name.trim_start_matches("io.vigil.")));
        assert!(
            !current.contains(&fingerprint),
            "{file} is this build's schema"
        );
        assert!(codec.is_earlier_schema(fingerprint));
    }
}
