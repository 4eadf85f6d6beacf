//! Hostile records on the topics, as an attacker with produce rights (or a broken shipper) writes
//! them: each becomes a dead letter with its reason or the finding it deserves, memory stays
//! bounded, and no stage stops.

use std::io::Write;
use std::time::Duration;

use crate::broker::FINDINGS_TIMEOUT;
use crate::harness::*;

fn gzip_best(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

fn audit(id: &str, user: &str, verb: &str, uri: &str, resource: &str, ip: &str) -> String {
    serde_json::json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": id,
        "stage": "ResponseComplete", "verb": verb, "requestURI": uri,
        "user": {"username": user, "groups": if user == "system:anonymous" {
            vec!["system:unauthenticated"] } else { vec!["system:authenticated"] }},
        "sourceIPs": [ip],
        "objectRef": {"resource": resource, "namespace": "kube-system"},
        "responseStatus": {"code": 200},
        "stageTimestamp": "2024-05-01T10:00:00Z",
    })
    .to_string()
}

/// An AuditEvent whose `source_ips` array declares a billion items in a few bytes (the shape of
/// the Avro fuzz target's first find): apache-avro reserved room for them and aborted the stage
/// that decoded it, at every restart.
fn lying_audit_event() -> Vec<u8> {
    let event = vigil_schemas::AuditEvent {
        audit_id: "lying-1".to_owned(),
        source_ips: vec!["MARKER".to_owned()],
        ..Default::default()
    };
    let mut record = vigil_schemas::Codec::new().unwrap().encode(&event).unwrap();
    // One item (zig-zag 2), a six-byte string (12), the marker: the count becomes a billion.
    let at = record
        .windows(8)
        .position(|window| window == b"\x02\x0cMARKER")
        .expect("the array in the record");
    let billion = [0x80, 0xa8, 0xd6, 0xb9, 0x07];
    record.splice(at..=at, billion);
    record
}

#[test]
fn gzip_bombs_deep_nesting_a_lying_avro_record_and_reused_audit_ids_get_their_answers() {
    let broker = Broker::start("hostile");
    create_topics(&broker, &["vigil.audit.raw", "vigil.events"]);
    let mut stages = vec![
        Stage::start(
            "ingest",
            &broker,
            &["--max-inflated-bytes".to_owned(), "16777216".to_owned()],
        ),
        Stage::start("enrich", &broker, &settings_args()),
        Stage::start("detect", &broker, &settings_args()),
        Stage::start("publish", &broker, &settings_args()),
    ];
    for stage in &stages {
        stage.wait_ready(Duration::from_secs(60));
    }

    // A 100 MB line in 100 KB; 180 MB of garbage lines in 200 KB; nesting 100,000 deep.
    let line_bomb = gzip_best(&vec![b'x'; 100 * 1024 * 1024]);
    let garbage_bomb = gzip_best("not json\n".repeat(20_000_000).as_bytes());
    let deep = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    // Alice's read, then mallory's anonymous secrets list under alice's audit id (a client sets
    // the Audit-ID header), then alice's event again (a redelivery: skipped).
    let alice = audit(
        "reused-1",
        "alice",
        "get",
        "/api/v1/namespaces/kube-system/pods/p",
        "pods",
        "10.0.0.5",
    );
    let mallory = audit(
        "reused-1",
        "system:anonymous",
        "list",
        "/api/v1/namespaces/kube-system/secrets",
        "secrets",
        "203.0.113.50",
    );
    produce(
        &broker,
        "vigil.audit.raw",
        &[
            (Some(b"line-bomb".to_vec()), line_bomb),
            (Some(b"garbage-bomb".to_vec()), garbage_bomb),
            (Some(b"deep".to_vec()), deep.into_bytes()),
            (None, alice.clone().into_bytes()),
            (None, mallory.into_bytes()),
            (None, alice.into_bytes()),
        ],
    );
    produce(&broker, "vigil.events", &[(None, lying_audit_event())]);

    let letters = consume_until(
        &broker,
        "vigil.deadletter",
        Duration::from_secs(120),
        &mut |records| records.len() >= 4,
    );
    let by_key = |key: &[u8]| {
        letters
            .iter()
            .find(|letter| letter.key.as_deref() == Some(key))
            .unwrap_or_else(|| panic!("no dead letter for {}", String::from_utf8_lossy(key)))
    };
    let line_bomb = by_key(b"line-bomb");
    assert_eq!(header(line_bomb, "vigil.reason"), "too_large");
    assert!(
        header(line_bomb, "vigil.detail").contains("inflates past"),
        "{}",
        header(line_bomb, "vigil.detail")
    );
    let garbage = by_key(b"garbage-bomb");
    assert_eq!(header(garbage, "vigil.reason"), "invalid_json");
    let rejected: u64 = header(garbage, "vigil.rejections").parse().unwrap();
    // 16 MiB of nine-byte lines, and the too_large that ends it.
    assert!(
        (1_860_000..=1_864_200).contains(&rejected),
        "{rejected} rejections"
    );
    assert!(
        header(garbage, "vigil.detail").len() < 4096,
        "the detail names the first few, not millions: {} bytes",
        header(garbage, "vigil.detail").len()
    );
    // Read without descending (the parser skips what no field asks for), then refused: no kind.
    assert_eq!(header(by_key(b"deep"), "vigil.reason"), "unknown_shape");
    let lying = letters
        .iter()
        .find(|letter| header(letter, "vigil.stage") == "enrich")
        .expect("enrich's dead letter for the lying Avro record");
    assert_eq!(header(lying, "vigil.reason"), "invalid_record");

    let findings = consume_until(
        &broker,
        "vigil.findings",
        FINDINGS_TIMEOUT,
        &mut |records| {
            latest_findings(records)
                .values()
                .any(|(kind, _)| kind == "DefenseEvasion:Kubernetes/AuditIdReused")
        },
    );
    let kinds: std::collections::BTreeSet<String> = latest_findings(&findings)
        .into_values()
        .map(|(kind, _)| kind)
        .collect();
    assert!(
        kinds.contains("CredentialAccess:Kubernetes/SuccessfulAnonymousAccess"),
        "mallory's call is seen under alice's id: {kinds:?}"
    );

    for stage in &mut stages {
        assert!(stage.running(), "{} stopped:\n{}", stage.name, stage.log());
    }
    let peak = stages[0].peak_rss_mib();
    assert!(peak < 256, "ingest held {peak} MiB");
    let metrics = stages[0].http_get("/metrics").unwrap().1;
    assert!(
        metrics.contains("vigil_ingest_tolerated_total{kind=\"audit_id_reused\"} 1"),
        "{metrics}"
    );
}
