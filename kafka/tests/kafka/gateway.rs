//! vigil-gateway in front of the four stages on the broker: the example day posted as the API
//! server's audit webhook posts it and as Firehose delivers it from CloudWatch Logs, with the
//! runtime events as Falco/Tetragon senders post them; and the broker gone while requests arrive.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::broker::{assert_same_findings, wait_for_findings};
use crate::harness::*;

const TOKEN: &str = "shop-prod-apiserver-token";
const FIREHOSE_KEY: &str = "shop-prod-firehose-key";
/// The example settings' default cluster: events the gateway stamps with it are read as `vigil
/// scan` reads events that name no cluster.
const CLUSTER: &str = "shop-prod";

fn credentials(broker: &Broker) -> String {
    let path = broker.dir.join("gateway-credentials.toml");
    std::fs::write(
        &path,
        format!(
            "[[credential]]\nkind = \"bearer\"\ncluster = \"{CLUSTER}\"\ntoken = \"{TOKEN}\"\n\n\
             [[credential]]\nkind = \"firehose\"\ncluster = \"{CLUSTER}\"\ntoken = \"{FIREHOSE_KEY}\"\n"
        ),
    )
    .expect("credentials file");
    path.display().to_string()
}

fn start_gateway(broker: &Broker, extra: &[&str]) -> (Stage, u16) {
    // Port 0: a port chosen here and handed over could be taken, before the gateway binds it, by
    // any process's outgoing connection (the stages' and the gateway's own to the broker).
    let mut args = vec![
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--log-format".to_owned(),
        "json".to_owned(),
        "--credentials".to_owned(),
        credentials(broker),
    ];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let gateway = Stage::start("gateway", broker, &args);
    gateway.wait_ready(Duration::from_secs(60));
    let port = listening_port(&gateway.log()).unwrap_or_else(|| {
        panic!(
            "no \"accepting events\" line in the gateway's log:\n{}",
            gateway.log()
        )
    });
    (gateway, port)
}

/// The port of the gateway's "accepting events" log line (JSON log format).
fn listening_port(log: &str) -> Option<u16> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["message"] == "accepting events")
        .and_then(|line| line["addr"].as_str()?.parse::<std::net::SocketAddr>().ok())
        .map(|addr| addr.port())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// An audit batch as the API server's webhook backend posts it.
fn event_list(events: &[&str]) -> Vec<u8> {
    format!(
        r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{}]}}"#,
        events.join(",")
    )
    .into_bytes()
}

/// A CloudWatch Logs subscription payload of the EKS audit log stream.
fn subscription(events: &[&str], first_id: usize) -> String {
    let log_events: Vec<serde_json::Value> = events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            serde_json::json!({
                "id": format!("{}", first_id + index),
                "timestamp": 1_700_000_000_000_i64,
                "message": event,
            })
        })
        .collect();
    serde_json::json!({
        "messageType": "DATA_MESSAGE",
        "owner": "111122223333",
        "logGroup": format!("/aws/eks/{CLUSTER}/cluster"),
        "logStream": "kube-apiserver-audit-6f2b1c",
        "subscriptionFilters": ["vigil"],
        "logEvents": log_events,
    })
    .to_string()
}

/// A Firehose HTTP endpoint request: each record's data a gzipped subscription payload.
fn firehose_request(request_id: &str, payloads: &[Vec<u8>]) -> Vec<u8> {
    let records: Vec<serde_json::Value> = payloads
        .iter()
        .map(|payload| {
            serde_json::json!({
                "data": base64::engine::general_purpose::STANDARD.encode(gzip(payload)),
            })
        })
        .collect();
    serde_json::json!({
        "requestId": request_id,
        "timestamp": 1_700_000_000_000_i64,
        "records": records,
    })
    .to_string()
    .into_bytes()
}

/// [`http_post`] to the gateway; a request that gets no answer fails the test with whether the
/// gateway is still running and its log, which say why.
fn post(
    gateway: &mut Stage,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    match http_post(port, path, headers, body) {
        Ok(answer) => answer,
        Err(error) => panic!(
            "POST {path}: {error}; the gateway is {}; its log:\n{}",
            if gateway.running() { "running" } else { "gone" },
            gateway.log()
        ),
    }
}

/// Posts until answered 200, as a sender retries (503 and connection errors), up to `timeout`;
/// returns the answers other than 200 it met.
fn post_until_accepted(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut refused = Vec::new();
    loop {
        match http_post(port, path, headers, body) {
            Ok((200, _)) => return refused,
            Ok((503, answer)) => refused.push(format!("503 {answer}")),
            Ok((status, answer)) => panic!("{path}: {status} {answer}"),
            Err(error) => refused.push(error),
        }
        assert!(
            Instant::now() < deadline,
            "{path} was not accepted within {timeout:?}: {refused:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn the_example_day_through_the_gateway_as_the_api_server_and_firehose_send_it_gives_what_vigil_scan_gives()
 {
    let broker = Broker::start("gateway-e2e");
    let stages = vec![
        Stage::start("ingest", &broker, &[]),
        Stage::start("enrich", &broker, &settings_args()),
        Stage::start("detect", &broker, &settings_args()),
        Stage::start("publish", &broker, &settings_args()),
    ];
    let (mut gateway, port) = start_gateway(&broker, &["--max-body-bytes", "2097152"]);
    for stage in &stages {
        stage.wait_ready(Duration::from_secs(60));
    }
    let day = std::fs::read_to_string(repo().join("examples/audit/day-of-traffic.jsonl"))
        .expect("example day");
    let lines: Vec<&str> = day.lines().filter(|line| !line.trim().is_empty()).collect();
    let (webhook_half, firehose_half) = lines.split_at(lines.len() / 2);
    let bearer = format!("Bearer {TOKEN}");
    let webhook_headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    // The API server's webhook backend: batches of up to 400 events (its --audit-webhook-batch-max-size).
    for batch in webhook_half.chunks(400) {
        let (status, answer) = post(
            &mut gateway,
            port,
            "/v1/audit",
            &webhook_headers,
            &event_list(batch),
        );
        assert_eq!(status, 200, "{answer}\n{}", gateway.log());
    }
    // Firehose: requests of 20 records, each a subscription payload of up to 25 log events; the
    // first request opens with CloudWatch's control message.
    let mut payloads: Vec<Vec<u8>> = vec![
        serde_json::json!({
            "messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "",
            "logStream": "", "subscriptionFilters": [],
            "logEvents": [{"id": "", "timestamp": 1, "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}],
        })
        .to_string()
        .into_bytes(),
    ];
    let mut scanned_firehose_half = Vec::new();
    for (index, events) in firehose_half.chunks(25).enumerate() {
        let payload = subscription(events, index * 25);
        scanned_firehose_half.extend_from_slice(payload.as_bytes());
        scanned_firehose_half.push(b'\n');
        payloads.push(payload.into_bytes());
    }
    for (index, request) in payloads.chunks(20).enumerate() {
        let request_id = format!("request-{index}");
        let (status, answer) = post(
            &mut gateway,
            port,
            "/v1/firehose",
            &[
                ("X-Amz-Firehose-Access-Key", FIREHOSE_KEY),
                ("X-Amz-Firehose-Request-Id", &request_id),
                ("X-Amz-Firehose-Protocol-Version", "1.0"),
            ],
            &firehose_request(&request_id, request),
        );
        assert_eq!(status, 200, "{answer}\n{}", gateway.log());
        let answer: serde_json::Value = serde_json::from_str(&answer).expect("Firehose's answer");
        assert_eq!(answer["requestId"], request_id.as_str());
        assert!(answer["timestamp"].as_u64().is_some(), "{answer}");
    }
    // The runtime sensors' events as JSON lines, 500 a request.
    let runtime: Vec<Vec<u8>> = example_runtime_lines()
        .into_iter()
        .map(|(_, line)| line)
        .collect();
    for batch in runtime.chunks(500) {
        let body: Vec<u8> = batch
            .iter()
            .flat_map(|line| line.iter().copied().chain([b'\n']))
            .collect();
        let (status, answer) = post(
            &mut gateway,
            port,
            "/v1/runtime",
            &[("Authorization", &bearer)],
            &body,
        );
        assert_eq!(status, 200, "{answer}");
    }

    // What vigil scan finds in the same events, as the senders wrote them.
    let settings = vigil_kafka::Settings::load(&vigil_kafka::SettingsArgs {
        config: Some(repo().join("examples/vigil.toml")),
        ..vigil_kafka::SettingsArgs::default()
    })
    .expect("example settings");
    let webhook_text: Vec<u8> = webhook_half
        .iter()
        .flat_map(|line| line.bytes().chain([b'\n']))
        .collect();
    let runtime_text: Vec<u8> = runtime
        .iter()
        .flat_map(|line| line.iter().copied().chain([b'\n']))
        .collect();
    let expected = expected_findings(
        &[&webhook_text, &scanned_firehose_half, &runtime_text],
        &settings,
    );
    assert!(expected.len() >= 30, "the example's findings: {expected:?}");
    let found = wait_for_findings(&broker, &expected);
    assert_same_findings(&found, &expected, &stages);

    // Nothing dead-lettered; every event counted by its endpoint.
    let dead = read_all(&broker, "vigil.deadletter", Duration::from_secs(1));
    assert!(dead.is_empty(), "dead letters: {dead:?}");
    #[allow(clippy::cast_precision_loss)]
    for (endpoint, events) in [
        ("audit_webhook", webhook_half.len()),
        ("firehose", firehose_half.len()),
        ("runtime", runtime.len()),
    ] {
        assert_eq!(
            gateway.metric(&format!(
                "vigil_gateway_events_total{{endpoint=\"{endpoint}\"}}"
            )),
            events as f64,
            "{endpoint}"
        );
    }
    assert_eq!(
        gateway.metric("vigil_skipped_total{reason=\"control_message\",stage=\"gateway\"}"),
        1.0
    );
}

#[test]
fn a_bad_body_a_bad_credential_and_a_body_over_the_limit_get_their_answers_and_a_dead_letter() {
    let broker = Broker::start("gateway-refusals");
    let (mut gateway, port) = start_gateway(
        &broker,
        &[
            "--max-body-bytes",
            "65536",
            "--max-inflated-bytes",
            "1048576",
        ],
    );
    let bearer = format!("Bearer {TOKEN}");
    let (status, answer) = post(
        &mut gateway,
        port,
        "/v1/audit",
        &[("Authorization", &bearer)],
        b"{\"kind\": tru",
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("invalid_json"), "{answer}");
    let (status, answer) = post(
        &mut gateway,
        port,
        "/v1/audit",
        &[("Authorization", "Bearer not-the-token")],
        &event_list(&[]),
    );
    assert_eq!(status, 401, "{answer}");
    assert!(
        !gateway.log().contains("not-the-token"),
        "the credential is never logged"
    );
    let (status, _) = post(
        &mut gateway,
        port,
        "/v1/firehose",
        &[("X-Amz-Firehose-Access-Key", "wrong")],
        &firehose_request("r", &[]),
    );
    assert_eq!(status, 401);
    let (status, _) = post(
        &mut gateway,
        port,
        "/v1/audit",
        &[("Authorization", &bearer)],
        &vec![b' '; 100_000],
    );
    assert_eq!(status, 413);
    // A gzip bomb: 50 KB on the wire, 50 MB inflated. Refused at the inflated budget.
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    bomb.write_all(&vec![b'x'; 50 * 1024 * 1024]).unwrap();
    let bomb = bomb.finish().unwrap();
    assert!(bomb.len() < 65536, "{} bytes", bomb.len());
    let (status, answer) = post(
        &mut gateway,
        port,
        "/v1/audit",
        &[("Authorization", &bearer), ("Content-Encoding", "gzip")],
        &bomb,
    );
    assert_eq!(status, 413, "{answer}");
    // Nesting 20,000 deep: refused as JSON the parser will not descend into, not a stack overflow.
    let deep = format!(
        "{{\"kind\":\"EventList\",\"items\":[{}{}]}}",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    let (status, answer) = post(
        &mut gateway,
        port,
        "/v1/audit",
        &[("Authorization", &bearer)],
        deep.as_bytes(),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        gateway.running(),
        "the gateway is still up: {}",
        gateway.log()
    );
    assert!(
        gateway.peak_rss_mib() < 200,
        "the gateway held {} MiB",
        gateway.peak_rss_mib()
    );
    let dead = read_all(&broker, "vigil.deadletter", Duration::from_secs(2));
    assert_eq!(dead.len(), 2, "{dead:?}");
    let malformed = dead
        .iter()
        .find(|letter| letter.value.as_deref() == Some(&b"{\"kind\": tru"[..]))
        .expect("the malformed body's dead letter");
    assert_eq!(header(malformed, "vigil.reason"), "invalid_json");
    assert_eq!(header(malformed, "vigil.stage"), "gateway");
    assert_eq!(header(malformed, "vigil.cluster"), CLUSTER);
}

#[test]
fn with_the_broker_gone_requests_are_answered_503_and_once_it_is_back_nothing_is_lost() {
    let mut broker = Broker::start("gateway-outage");
    create_topics(&broker, &["vigil.audit.raw"]);
    let (mut gateway, port) = start_gateway(&broker, &["--delivery-timeout-ms", "3000"]);
    let day = std::fs::read_to_string(repo().join("examples/audit/day-of-traffic.jsonl"))
        .expect("example day");
    let lines: Vec<&str> = day.lines().filter(|line| !line.trim().is_empty()).collect();
    let batches: Vec<&[&str]> = lines.chunks(100).take(30).collect();
    let bearer = format!("Bearer {TOKEN}");
    let headers = [("Authorization", bearer.as_str())];
    let mut refused = Vec::new();
    for (index, batch) in batches.iter().enumerate() {
        if index == 10 {
            broker.stop();
        }
        if index == 10 {
            // While the broker is away, a sender is told to come back later, not kept waiting
            // forever and not told its batch was taken.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let (status, answer) = post(
                    &mut gateway,
                    port,
                    "/v1/audit",
                    &headers,
                    &event_list(batch),
                );
                assert_ne!(status, 200, "accepted with no broker: {answer}");
                if status == 503 {
                    refused.push(answer);
                    break;
                }
                assert!(Instant::now() < deadline, "{status} {answer}");
            }
            broker.restart();
        }
        refused.extend(post_until_accepted(
            port,
            "/v1/audit",
            &headers,
            &event_list(batch),
            Duration::from_secs(180),
        ));
    }
    assert!(!refused.is_empty(), "the outage was seen by the sender");
    assert!(
        gateway.running(),
        "the gateway rode the outage out:\n{}",
        gateway.log()
    );
    // Every event of every batch is in the topic; a batch retried after a 503 may be there twice,
    // which ingest's audit-id deduplication absorbs.
    let sent: BTreeSet<String> = batches
        .iter()
        .flat_map(|batch| batch.iter())
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).expect("example JSON");
            event["auditID"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    let records = read_all(&broker, "vigil.audit.raw", Duration::from_secs(3));
    let stored: BTreeSet<String> = records
        .iter()
        .map(|record| {
            let event: serde_json::Value =
                serde_json::from_slice(record.value.as_deref().unwrap_or_default()).expect("JSON");
            event["auditID"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(stored, sent, "nothing lost");
    assert!(records.len() >= sent.len());
    assert_eq!(gateway.terminate().code(), Some(0));
}
