//! The gateway's answers, with an in-memory sink: no socket, no broker.

use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use base64::Engine as _;
use http_body_util::BodyExt;
use hyper::body::Frame;

use super::*;
use crate::credentials::Credentials;
use crate::sink::MemorySink;

const TOKEN: &str = "prod-apiserver-token";
const FIREHOSE_KEY: &str = "firehose-access-key";

fn policy() -> Policy {
    let text = format!(
        "[[credential]]\nkind = \"bearer\"\ncluster = \"prod\"\ntoken = \"{TOKEN}\"\n\
         [[credential]]\nkind = \"firehose\"\ncluster = \"prod\"\ntoken = \"{FIREHOSE_KEY}\"\n"
    );
    let dir = std::env::temp_dir().join(format!("vigil-gateway-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("credentials-{}.toml", rand_suffix()));
    std::fs::write(&path, text).unwrap();
    Policy {
        credentials: Credentials::load(&path).unwrap(),
        allow_anonymous: false,
    }
}

fn rand_suffix() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn topics() -> RawTopics {
    RawTopics {
        audit: "audit.raw".into(),
        runtime: "runtime.raw".into(),
        deadletter: "dead".into(),
    }
}

fn gateway_with(limits: Limits) -> (Gateway, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::default());
    let metrics = GatewayMetrics::new(vigil_kafka::Metrics::new().unwrap()).unwrap();
    let gateway = Gateway::new(
        policy(),
        Arc::clone(&sink) as Arc<dyn Sink>,
        topics(),
        limits,
        metrics,
    );
    (gateway, sink)
}

fn gateway() -> (Gateway, Arc<MemorySink>) {
    gateway_with(Limits::default())
}

fn event(id: &str) -> String {
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/secrets","verb":"list","user":{{"username":"system:anonymous"}},"sourceIPs":["203.0.113.9"]}}"#
    )
}

fn event_list(ids: &[&str]) -> String {
    let items: Vec<String> = ids.iter().map(|id| event(id)).collect();
    format!(
        r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{}]}}"#,
        items.join(",")
    )
}

fn request(path: &str, token: Option<&str>, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    let mut builder = Request::post(path);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(Full::new(body.into())).unwrap()
}

async fn send(
    gateway: &Gateway,
    request: Request<Full<Bytes>>,
) -> (StatusCode, HeaderMap, serde_json::Value) {
    let response = gateway.handle(request, false).await;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, headers, body)
}

fn header<'a>(record: &'a OutRecord, name: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.as_str())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn an_api_server_batch_is_produced_keyed_by_the_token_s_cluster_and_answered_200() {
    let (gateway, sink) = gateway();
    let (status, _, body) = send(
        &gateway,
        request("/v1/audit", Some(TOKEN), event_list(&["a", "b"])),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 2);
    let records = sink.records.lock().unwrap();
    assert_eq!(records.len(), 2);
    for (record, id) in records.iter().zip(["a", "b"]) {
        assert_eq!(record.topic, "audit.raw");
        assert_eq!(record.key.as_deref(), Some("prod"));
        assert_eq!(record.value, event(id).as_bytes());
        assert_eq!(header(record, CLUSTER_HEADER), Some("prod"));
    }
}

#[tokio::test]
async fn credentials_are_checked_and_never_echoed() {
    let (gateway, sink) = gateway();
    let body = event_list(&["a"]);
    let (status, headers, answer) = send(
        &gateway,
        request("/v1/audit", Some("stolen-guess"), body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key(header::WWW_AUTHENTICATE));
    assert!(!answer.to_string().contains("stolen-guess"));
    let (status, _, _) = send(&gateway, request("/v1/audit", None, body.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, answer) = send(
        &gateway,
        request("/v1/audit/dev", Some(TOKEN), body.clone()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a prod token may not send for dev: {answer}"
    );
    let (status, _, _) = send(&gateway, request("/v1/audit/prod", Some(TOKEN), body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        sink.records.lock().unwrap().len(),
        1,
        "only the allowed request produced"
    );
}

#[tokio::test]
async fn a_client_certificate_authenticates_and_the_path_names_the_cluster() {
    let (gateway, sink) = gateway();
    let response = gateway
        .handle(request("/v1/audit/edge-1", None, event_list(&["a"])), true)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        sink.records.lock().unwrap()[0].key.as_deref(),
        Some("edge-1")
    );
}

fn firehose_body(records: &[Vec<u8>]) -> String {
    let records: Vec<String> = records
        .iter()
        .map(|data| {
            format!(
                r#"{{"data":"{}"}}"#,
                base64::engine::general_purpose::STANDARD.encode(data)
            )
        })
        .collect();
    format!(
        r#"{{"requestId":"req-7","timestamp":1700000000000,"records":[{}]}}"#,
        records.join(",")
    )
}

fn subscription(message_type: &str, messages: &[String]) -> Vec<u8> {
    let events: Vec<String> = messages
        .iter()
        .enumerate()
        .map(|(index, message)| {
            format!(
                r#"{{"id":"{index}","timestamp":1700000000123,"message":{}}}"#,
                serde_json::to_string(message).unwrap()
            )
        })
        .collect();
    gzip(
        format!(
            r#"{{"messageType":"{message_type}","owner":"111122223333","logGroup":"/aws/eks/prod/cluster","logStream":"kube-apiserver-audit-9f","subscriptionFilters":["vigil"],"logEvents":[{}]}}"#,
            events.join(",")
        )
        .as_bytes(),
    )
}

fn firehose_request(key: &str, body: Vec<u8>, gzipped: bool) -> Request<Full<Bytes>> {
    let mut builder = Request::post("/v1/firehose")
        .header("x-amz-firehose-access-key", key)
        .header("x-amz-firehose-request-id", "req-7")
        .header("content-type", "application/json");
    let body = if gzipped {
        builder = builder.header("content-encoding", "gzip");
        gzip(&body)
    } else {
        body
    };
    builder.body(Full::new(Bytes::from(body))).unwrap()
}

#[tokio::test]
async fn firehose_deliveries_of_cloudwatch_records_are_answered_in_firehose_s_shape() {
    let (gateway, sink) = gateway();
    let body = firehose_body(&[
        subscription("DATA_MESSAGE", &[event("a"), event("b")]),
        subscription(
            "CONTROL_MESSAGE",
            &["CWL CONTROL MESSAGE: Checking health".to_owned()],
        ),
    ]);
    let (status, _, answer) = send(
        &gateway,
        firehose_request(FIREHOSE_KEY, body.into_bytes(), true),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["requestId"], "req-7");
    assert!(answer["timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    assert!(answer.get("errorMessage").is_none());
    let records = sink.records.lock().unwrap();
    assert_eq!(
        records.len(),
        2,
        "the control message is answered, not produced"
    );
    assert_eq!(records[0].timestamp_millis, Some(1_700_000_000_123));
    assert_eq!(records[0].key.as_deref(), Some("prod"));
}

#[tokio::test]
async fn firehose_errors_carry_the_request_id_and_an_error_message() {
    let (gateway, _) = gateway();
    let body = firehose_body(&[subscription("DATA_MESSAGE", &[event("a")])]);
    let (status, _, answer) = send(
        &gateway,
        firehose_request("wrong-key", body.into_bytes(), false),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer["requestId"], "req-7");
    assert!(
        answer["errorMessage"]
            .as_str()
            .unwrap()
            .contains("access key")
    );
}

#[tokio::test]
async fn a_body_that_is_none_of_the_shapes_is_dead_lettered_and_answered_400_with_the_reason() {
    let (gateway, sink) = gateway();
    let (status, _, answer) = send(
        &gateway,
        request("/v1/audit", Some(TOKEN), "this is not json"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid_json"),
        "{answer}"
    );
    let records = sink.records.lock().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].topic, "dead");
    assert_eq!(records[0].value, b"this is not json");
    assert_eq!(header(&records[0], "vigil.reason"), Some("invalid_json"));
    assert_eq!(header(&records[0], "vigil.stage"), Some("gateway"));
}

#[tokio::test]
async fn parts_that_are_not_events_are_dead_lettered_while_the_rest_is_accepted() {
    let (gateway, sink) = gateway();
    let body = format!(
        r#"{{"kind":"EventList","items":[{},{{"not":"an event"}}]}}"#,
        event("a")
    );
    let (status, _, answer) = send(&gateway, request("/v1/audit", Some(TOKEN), body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    let topics: Vec<String> = sink
        .records
        .lock()
        .unwrap()
        .iter()
        .map(|record| record.topic.clone())
        .collect();
    assert_eq!(topics, ["audit.raw", "dead"]);
}

#[tokio::test]
async fn bodies_over_the_limit_are_answered_413_declared_or_not() {
    let (gateway, sink) = gateway_with(Limits {
        max_body_bytes: 100,
        ..Limits::default()
    });
    let big = event_list(&["a", "b"]);
    assert!(big.len() > 100);
    let declared = Request::post("/v1/audit")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-length", big.len())
        .body(Full::new(Bytes::from(big.clone())))
        .unwrap();
    assert_eq!(
        send(&gateway, declared).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let (status, _, _) = send(&gateway, request("/v1/audit", Some(TOKEN), big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(sink.records.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_gzip_body_that_inflates_past_the_limit_is_answered_413() {
    let (gateway, _) = gateway_with(Limits {
        decode: DecodeLimits {
            max_inflated_bytes: 10_000,
        },
        ..Limits::default()
    });
    let bomb = Request::post("/v1/audit")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-encoding", "gzip")
        .body(Full::new(Bytes::from(gzip(&vec![b' '; 1_000_000]))))
        .unwrap();
    assert_eq!(send(&gateway, bomb).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn when_kafka_cannot_take_the_records_the_answer_is_503_with_retry_after() {
    let (gateway, sink) = gateway();
    sink.unavailable.store(true, Ordering::SeqCst);
    let (status, headers, _) = send(
        &gateway,
        request("/v1/audit", Some(TOKEN), event_list(&["a"])),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "5");
    assert!(!gateway.is_ready());
    sink.unavailable.store(false, Ordering::SeqCst);
    for (failure, retry_after) in [
        (SinkError::Full, "1"),
        (SinkError::Unavailable("broker gone".into()), "5"),
    ] {
        *sink.fail_with.lock().unwrap() = Some(failure);
        let (status, headers, _) = send(
            &gateway,
            request("/v1/audit", Some(TOKEN), event_list(&["a"])),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::RETRY_AFTER], retry_after);
    }
    *sink.fail_with.lock().unwrap() = None;
    let (status, _, _) = send(
        &gateway,
        request("/v1/audit", Some(TOKEN), event_list(&["a"])),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "recovers once Kafka takes records again"
    );
}

#[tokio::test]
async fn falco_alerts_go_to_the_runtime_topic_keyed_by_their_node() {
    let (gateway, sink) = gateway();
    let alert = r#"{"hostname":"ip-10-0-1-5","output":"Shell spawned","priority":"Notice","rule":"Terminal shell in container","time":"2026-12-01T12:00:00Z","output_fields":{"proc.cmdline":"sh"}}"#;
    let (status, _, _) = send(&gateway, request("/v1/falco", Some(TOKEN), alert)).await;
    assert_eq!(status, StatusCode::OK);
    let records = sink.records.lock().unwrap();
    assert_eq!(records[0].topic, "runtime.raw");
    assert_eq!(records[0].key.as_deref(), Some("ip-10-0-1-5"));
    assert_eq!(header(&records[0], CLUSTER_HEADER), Some("prod"));
}

#[tokio::test]
async fn routes_methods_and_cluster_names() {
    let (gateway, _) = gateway();
    let get = Request::get("/v1/audit")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&gateway, get).await.0, StatusCode::METHOD_NOT_ALLOWED);
    for path in [
        "/v2/audit",
        "/v1/other",
        "/v1/audit/a/b",
        "/v1/audit/bad%20name",
    ] {
        let (status, _, _) = send(&gateway, request(path, Some(TOKEN), event_list(&["a"]))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let health = Request::get("/healthz")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(gateway.handle(health, false).await.status(), StatusCode::OK);
    let ready = Request::get("/readyz")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(gateway.handle(ready, false).await.status(), StatusCode::OK);
}

/// A body whose bytes never come.
struct Stalled;

impl Body for Stalled {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Pending
    }
}

#[tokio::test]
async fn a_body_that_does_not_arrive_is_answered_408_and_frees_its_slot() {
    let (gateway, _) = gateway_with(Limits {
        body_timeout: Duration::from_millis(200),
        max_concurrent_requests: 1,
        ..Limits::default()
    });
    let gateway = Arc::new(gateway);
    let stalled = Request::post("/v1/audit")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Stalled)
        .unwrap();
    let slow = tokio::spawn({
        let gateway = Arc::clone(&gateway);
        async move { gateway.handle(stalled, false).await.status() }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, headers, _) = send(
        &gateway,
        request("/v1/audit", Some(TOKEN), event_list(&["a"])),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the one slot is taken"
    );
    assert!(headers.contains_key(header::RETRY_AFTER));
    assert_eq!(slow.await.unwrap(), StatusCode::REQUEST_TIMEOUT);
    let (status, _, _) = send(
        &gateway,
        request("/v1/audit", Some(TOKEN), event_list(&["a"])),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}
