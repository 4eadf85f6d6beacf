//! Round trips and refusals of the single-object codec.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use proptest::prelude::*;
use vigil_schemas::codec::SINGLE_OBJECT_MAGIC;
use vigil_schemas::*;

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9:/._-]{0,12}"
}

fn user() -> impl Strategy<Value = UserInfo> {
    (
        text(),
        proptest::option::of(text()),
        proptest::collection::vec(text(), 0..3),
    )
        .prop_map(|(username, uid, groups)| UserInfo {
            username,
            uid,
            groups,
            session_names: vec![],
        })
}

fn container() -> impl Strategy<Value = ContainerSpec> {
    (
        text(),
        text(),
        any::<bool>(),
        proptest::option::of(any::<bool>()),
        proptest::collection::vec(text(), 0..2),
    )
        .prop_map(
            |(name, image, privileged, allow_privilege_escalation, capabilities_added)| {
                ContainerSpec {
                    name: name.clone(),
                    image,
                    init: false,
                    privileged,
                    allow_privilege_escalation,
                    run_as_user: Some(0),
                    capabilities_added,
                    volume_mounts: vec![VolumeMount {
                        name,
                        mount_path: "/host".into(),
                        read_only: false,
                    }],
                    command: vec!["sh".into(), "-c".into()],
                }
            },
        )
}

prop_compose! {
    fn audit_event()(
        audit_id in text(), verb in text(), uri in text(), time in any::<i64>(), user in user(),
        impersonated in proptest::option::of(user()), ips in proptest::collection::vec(text(), 0..3),
        code in proptest::option::of(any::<i32>()), containers in proptest::collection::vec(container(), 0..3),
        host_network in any::<bool>(), request_object in proptest::option::of(".{0,40}"),
        permission_checked in proptest::option::of(".{0,40}"),
    ) -> AuditEvent {
        AuditEvent {
            audit_id, stage: "ResponseComplete".into(), level: "Request".into(), event_time_micros: time,
            cluster_hint: None, verb, request_uri: uri, user, impersonated_user: impersonated, source_ips: ips,
            user_agent: Some("kubectl/v1.29.0".into()),
            object_ref: Some(ObjectRef { resource: Some("pods".into()), ..ObjectRef::default() }),
            status_code: code, status_reason: None, status_message: None, authz_decision: Some("allow".into()),
            authz_reason: None,
            workload: Some(WorkloadSpec { kind: "Pod".into(), containers, host_network, ..WorkloadSpec::default() }),
            role_binding: None, role: None, service: None, config_map_credential_keys: vec![],
            permission_checked, request_object, response_object: None, objects_truncated: false,
            cloud_provider: Some("gcp".into()), exec_command: vec!["sh".into(), "-c".into()],
            ingress: Some(IngressSpec { hosts: vec!["shop.example".into()], tls: false, ..IngressSpec::default() }),
            audit_id_reused: true,
        }
    }
}

fn detection_of(event: &AuditEvent, severity: f64) -> Detection {
    Detection {
        finding_type: "Execution:Kubernetes/ExecInKubeSystemPod".into(),
        detector: "exec_in_kube_system_pod".into(),
        severity,
        title: "t".into(),
        description: "d".into(),
        aggregation_key: vec![event.user.username.clone()],
        event_id: event.audit_id.clone(),
        event_time_micros: event.event_time_micros,
        cluster: ClusterDetails {
            name: "c".into(),
            partition: "aws".into(),
            ..ClusterDetails::default()
        },
        user: Some(event.user.clone()),
        workload: event.workload.clone(),
        threat_intel: vec![ThreatMatch {
            list_name: "l".into(),
            entry: "1.2.3.4".into(),
            file_sha256: "00".into(),
            curated: false,
            category: None,
        }],
        ..Detection::default()
    }
}

proptest! {
    #[test]
    fn audit_events_round_trip(event in audit_event()) {
        let codec = Codec::new().unwrap();
        let bytes = codec.encode(&event).unwrap();
        prop_assert_eq!(&bytes, &codec.encode_through_value(&event).unwrap());
        prop_assert_eq!(&bytes[..2], &SINGLE_OBJECT_MAGIC[..]);
        prop_assert_eq!(codec.decode::<AuditEvent>(&bytes).unwrap(), event);
        prop_assert_eq!(codec.decode_through_value::<AuditEvent>(&bytes).unwrap(), codec.decode::<AuditEvent>(&bytes).unwrap());
    }

    /// A record with a few bytes overwritten: whatever the direct reader accepts, the `Value` path
    /// accepts too, as the same record (it may refuse what the `Value` path takes: apache-avro reads
    /// a string or boolean cut short as a null).
    #[test]
    fn the_direct_reader_accepts_nothing_the_value_path_refuses(
        event in audit_event(),
        overwrites in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let codec = Codec::new().unwrap();
        let mut bytes = codec.encode(&event).unwrap();
        let datum_len = bytes.len() - 10;
        for (index, byte) in overwrites {
            bytes[10 + index.index(datum_len)] = byte;
        }
        if let Ok(direct) = codec.decode::<AuditEvent>(&bytes) {
            prop_assert_eq!(codec.decode_through_value::<AuditEvent>(&bytes).ok(), Some(direct));
        }
    }

    #[test]
    fn enriched_events_and_findings_round_trip(event in audit_event(), severity in 1.0f64..10.0, count in 1i64..1000) {
        let codec = Codec::new().unwrap();
        let enriched = EnrichedEvent {
            audit: Some(event.clone()),
            cluster: ClusterDetails { name: "prod".into(), partition: "aws".into(), ..ClusterDetails::default() },
            source_ip: Some(IpIntel { ip: "1.2.3.4".into(), scope: "public".into(), ..IpIntel::default() }),
            ..EnrichedEvent::default()
        };
        prop_assert_eq!(codec.encode(&enriched).unwrap(), codec.encode_through_value(&enriched).unwrap());
        prop_assert_eq!(&codec.decode::<EnrichedEvent>(&codec.encode(&enriched).unwrap()).unwrap(), &enriched);
        prop_assert_eq!(codec.decode_through_value::<EnrichedEvent>(&codec.encode(&enriched).unwrap()).unwrap(), enriched);
        let finding = Finding { id: "abc".into(), count, detection: detection_of(&event, severity), ..Finding::default() };
        prop_assert_eq!(codec.encode(&finding).unwrap(), codec.encode_through_value(&finding).unwrap());
        prop_assert_eq!(&codec.decode::<Finding>(&codec.encode(&finding).unwrap()).unwrap(), &finding);
        prop_assert_eq!(codec.decode_through_value::<Finding>(&codec.encode(&finding).unwrap()).unwrap(), finding);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let codec = Codec::new().unwrap();
        let _ = codec.decode::<AuditEvent>(&bytes);
        let mut framed = SINGLE_OBJECT_MAGIC.to_vec();
        framed.extend_from_slice(&codec.fingerprint_of::<AuditEvent>().unwrap().to_le_bytes());
        framed.extend_from_slice(&bytes);
        let _ = codec.decode::<AuditEvent>(&framed);
    }
}

#[test]
fn runtime_events_round_trip() {
    let codec = Codec::new().unwrap();
    let event = RuntimeEvent {
        event_id: "e1".into(),
        kind: "process_exec".into(),
        sensor: "tetragon".into(),
        process: ProcessInfo {
            binary: "/bin/sh".into(),
            pid: Some(42),
            ..ProcessInfo::default()
        },
        network: Some(NetworkInfo {
            protocol: "tcp".into(),
            destination_port: Some(443),
            ..NetworkInfo::default()
        }),
        ..RuntimeEvent::default()
    };
    assert_eq!(
        codec
            .decode::<RuntimeEvent>(&codec.encode(&event).unwrap())
            .unwrap(),
        event
    );
}

#[test]
fn an_unknown_writer_schema_is_refused_by_fingerprint() {
    let codec = Codec::new().unwrap();
    let mut bytes = codec.encode(&AuditEvent::default()).unwrap();
    bytes[2] ^= 0xFF;
    let error = codec.decode::<AuditEvent>(&bytes).unwrap_err();
    assert!(matches!(error, CodecError::UnknownSchema(_)), "{error}");
    assert!(
        error
            .to_string()
            .contains("unknown writer schema fingerprint")
    );
}

#[test]
fn a_record_of_another_type_is_refused() {
    let codec = Codec::new().unwrap();
    let bytes = codec.encode(&AuditEvent::default()).unwrap();
    let error = codec.decode::<Finding>(&bytes).unwrap_err();
    assert!(
        matches!(
            error,
            CodecError::WrongRecord {
                found: "io.vigil.AuditEvent",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn plain_json_and_truncated_records_are_refused() {
    let codec = Codec::new().unwrap();
    assert!(matches!(
        codec.decode::<AuditEvent>(b"{\"kind\":\"Event\"}"),
        Err(CodecError::NotSingleObject(_))
    ));
    let bytes = codec
        .encode(&AuditEvent {
            audit_id: "x".repeat(50),
            ..AuditEvent::default()
        })
        .unwrap();
    assert!(
        codec
            .decode::<AuditEvent>(&bytes[..bytes.len() - 5])
            .is_err()
    );
    let mut extended = bytes;
    extended.push(0);
    assert!(codec.decode::<AuditEvent>(&extended).is_err());
}

#[test]
fn fingerprints_are_those_of_the_avsc_files() {
    let codec = Codec::new().unwrap();
    let schema = apache_avro::Schema::parse_str(AuditEvent::AVSC).unwrap();
    assert_eq!(
        codec.fingerprint_of::<AuditEvent>().unwrap(),
        codec::fingerprint(&schema)
    );
    let distinct: std::collections::HashSet<u64> = [
        codec.fingerprint_of::<AuditEvent>().unwrap(),
        codec.fingerprint_of::<RuntimeEvent>().unwrap(),
        codec.fingerprint_of::<EnrichedEvent>().unwrap(),
        codec.fingerprint_of::<Detection>().unwrap(),
        codec.fingerprint_of::<Finding>().unwrap(),
    ]
    .into();
    assert_eq!(distinct.len(), 5);
}

/// Every input that once crashed the Avro fuzz target (`fuzz/regressions/avro/`: a byte choosing
/// the record type, then the record) decodes to a value or an error, as each record type.
#[test]
fn inputs_that_crashed_the_fuzzer_are_refused_or_decoded() {
    let codec = Codec::new().unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/avro");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let record = &bytes[1..];
        let _ = codec.decode::<AuditEvent>(record);
        let _ = codec.decode::<RuntimeEvent>(record);
        let _ = codec.decode::<EnrichedEvent>(record);
        let _ = codec.decode::<Detection>(record);
        let _ = codec.decode::<Finding>(record);
        replayed += 1;
    }
    assert!(replayed >= 1, "no regression inputs in {}", dir.display());
}

/// The first of them: a Detection whose array declares billions of items in a few bytes, which
/// made apache-avro reserve tens of gigabytes and abort the process.
#[test]
fn a_record_declaring_more_items_than_it_holds_is_refused_before_decoding() {
    let codec = Codec::new().unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions/avro/detection-array-count-of-billions");
    let bytes = std::fs::read(path).unwrap();
    let error = codec.decode::<Detection>(&bytes[1..]).unwrap_err();
    assert!(matches!(error, CodecError::Overstated { .. }), "{error}");
}
