//! The HTTP side: routes, credentials, limits, and the answer each sender retries on.
//!
//! | Path | Sender | Topic |
//! |---|---|---|
//! | `POST /v1/audit[/{cluster}]` | the API server's audit webhook (an EventList) | audit raw |
//! | `POST /v1/firehose[/{cluster}]` | Amazon Data Firehose (CloudWatch Logs subscription records) | audit raw |
//! | `POST /v1/runtime[/{cluster}]`, `/v1/falco[/{cluster}]` | Falco, falcosidekick, Tetragon or native JSON lines | runtime raw |
//! | `GET /healthz`, `/readyz` | load balancers | |
//!
//! 200 only after Kafka has acknowledged every record of the request; 503 with `Retry-After` when
//! the producer queue is full, too many requests are in flight or the brokers cannot be reached;
//! 413 over the body limit; 408 for a body that does not arrive in time; 400 with the reason for a
//! body that is none of the shapes (dead-lettered with its bytes); 401/403 for a missing, unknown
//! or misused credential (the credential itself is never logged or echoed).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::credentials::{Policy, Presented, Refusal};
use crate::decode::{self, BadBody, DecodeLimits, Decoded, Destination, GZIP_MAGIC, GunzipError};
use crate::metrics::{Endpoint, GatewayMetrics};
use crate::sink::{OutRecord, STAGE, Sink, SinkError};

/// Bounds on every request and connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A body as received (before gzip is undone).
    pub max_body_bytes: usize,
    pub decode: DecodeLimits,
    /// The whole body must have arrived within this, from the request's head.
    pub body_timeout: Duration,
    /// A request head must have arrived within this (HTTP/1), and a TLS handshake.
    pub header_timeout: Duration,
    /// How long a request waits for Kafka's acknowledgements before it is answered 503.
    pub delivery_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            decode: DecodeLimits::default(),
            body_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            delivery_timeout: Duration::from_secs(15),
            max_concurrent_requests: 128,
            max_connections: 1024,
        }
    }
}

/// The topics the gateway writes.
#[derive(Debug, Clone)]
pub struct RawTopics {
    pub audit: String,
    pub runtime: String,
    pub deadletter: String,
}

/// One gateway: the policy, the sink, the limits.
pub struct Gateway {
    policy: Policy,
    sink: Arc<dyn Sink>,
    topics: RawTopics,
    limits: Limits,
    metrics: GatewayMetrics,
    requests: Arc<Semaphore>,
    shutting_down: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("topics", &self.topics)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Retry-After when the queue or the request slots are full: soon.
const RETRY_SOON_SECS: u64 = 1;
/// Retry-After when the brokers cannot be reached: a little later.
const RETRY_LATER_SECS: u64 = 5;

/// What a request's answer says, before it is written in its endpoint's shape.
struct Outcome {
    status: StatusCode,
    message: String,
    accepted: usize,
    rejected: usize,
    retry_after: Option<u64>,
}

impl Outcome {
    fn error(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            accepted: 0,
            rejected: 0,
            retry_after: None,
        }
    }

    fn retry(message: impl Into<String>, after: u64) -> Self {
        Self {
            retry_after: Some(after),
            ..Self::error(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }
}

impl Gateway {
    pub fn new(
        policy: Policy,
        sink: Arc<dyn Sink>,
        topics: RawTopics,
        limits: Limits,
        metrics: GatewayMetrics,
    ) -> Self {
        Self {
            policy,
            sink,
            topics,
            requests: Arc::new(Semaphore::new(limits.max_concurrent_requests.max(1))),
            limits,
            metrics,
            shutting_down: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.sink.is_available() && !self.shutting_down.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Answers one request. `client_certificate`: the TLS layer verified one.
    pub async fn handle<B>(
        &self,
        request: Request<B>,
        client_certificate: bool,
    ) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let started = Instant::now();
        let path = request.uri().path().to_owned();
        let (endpoint, path_cluster) = match route(request.method(), &path) {
            Route::Endpoint(endpoint, cluster) => (endpoint, cluster),
            Route::Health => return plain(StatusCode::OK, "ok\n"),
            Route::Ready if self.is_ready() => return plain(StatusCode::OK, "ready\n"),
            Route::Ready => return plain(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
            Route::MethodNotAllowed => {
                return plain(StatusCode::METHOD_NOT_ALLOWED, "POST events here\n");
            }
            Route::NotFound => return plain(StatusCode::NOT_FOUND, "not found\n"),
        };
        self.metrics.requests_in_flight.inc();
        let request_id = header_text(request.headers(), "x-amz-firehose-request-id");
        let (outcome, body_request_id) = self
            .accept(request, endpoint, path_cluster, client_certificate)
            .await;
        self.metrics.requests_in_flight.dec();
        let request_id = request_id.or(body_request_id);
        self.metrics
            .requests
            .with_label_values(&[endpoint.label(), outcome.status.as_str()])
            .inc();
        self.metrics
            .request_seconds
            .with_label_values(&[endpoint.label()])
            .observe(started.elapsed().as_secs_f64());
        if outcome.status.is_server_error() {
            tracing::warn!(endpoint = endpoint.label(), status = outcome.status.as_u16(), reason = %outcome.message, "request not accepted");
        } else if !outcome.status.is_success() {
            tracing::info!(endpoint = endpoint.label(), status = outcome.status.as_u16(), reason = %outcome.message, "request refused");
        }
        answer(endpoint, &outcome, request_id.as_deref())
    }

    /// Everything between the route and the answer. Returns the outcome and the Firehose request
    /// id the body carried, if any.
    async fn accept<B>(
        &self,
        request: Request<B>,
        endpoint: Endpoint,
        path_cluster: Option<String>,
        client_certificate: bool,
    ) -> (Outcome, Option<String>)
    where
        B: Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let Ok(_slot) = Arc::clone(&self.requests).try_acquire_owned() else {
            return (
                Outcome::retry("too many requests in flight", RETRY_SOON_SECS),
                None,
            );
        };
        let (parts, body) = request.into_parts();
        let presented = Presented {
            client_certificate,
            bearer: bearer_token(&parts.headers),
            firehose_key: parts
                .headers
                .get("x-amz-firehose-access-key")
                .and_then(|value| value.to_str().ok()),
        };
        let cluster = match self.policy.authorize(presented, path_cluster.as_deref()) {
            Ok(cluster) => cluster,
            Err(Refusal::Unauthorized(why)) => {
                return (Outcome::error(StatusCode::UNAUTHORIZED, why), None);
            }
            Err(Refusal::Forbidden(why)) => {
                return (Outcome::error(StatusCode::FORBIDDEN, why), None);
            }
        };
        if !self.sink.is_available() {
            return (
                Outcome::retry("Kafka cannot be reached", RETRY_LATER_SECS),
                None,
            );
        }
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok());
        if declared.is_some_and(|length| length > self.limits.max_body_bytes) {
            return (self.too_large(), None);
        }
        let received = match tokio::time::timeout(
            self.limits.body_timeout,
            Limited::new(body, self.limits.max_body_bytes).collect(),
        )
        .await
        {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
                return (self.too_large(), None);
            }
            Ok(Err(error)) => {
                return (
                    Outcome::error(
                        StatusCode::BAD_REQUEST,
                        format!("the body could not be read: {error}"),
                    ),
                    None,
                );
            }
            Err(_) => {
                return (
                    Outcome::error(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "the body did not arrive within {:?}",
                            self.limits.body_timeout
                        ),
                    ),
                    None,
                );
            }
        };
        let encoding = header_text(&parts.headers, "content-encoding");
        let mut budget = self.limits.decode.max_inflated_bytes;
        let inflated = match encoding.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("gzip" | "x-gzip") => decode::gunzip(&received, &mut budget),
            None | Some("identity" | "") if received.starts_with(&GZIP_MAGIC) => {
                decode::gunzip(&received, &mut budget)
            }
            None | Some("identity" | "") => Ok(received.to_vec()),
            Some(other) => {
                return (
                    Outcome::error(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        format!("Content-Encoding {other:?} is not gzip or identity"),
                    ),
                    None,
                );
            }
        };
        let inflated = match inflated {
            Ok(inflated) => inflated,
            Err(GunzipError::TooLarge) => return (self.too_large(), None),
            Err(GunzipError::Invalid(why)) => {
                let bad = BadBody {
                    reason: "invalid_gzip",
                    detail: format!("the body is not valid gzip: {why}"),
                };
                return (
                    self.refuse(endpoint, cluster.as_deref(), &received, bad)
                        .await,
                    None,
                );
            }
        };
        let limits = DecodeLimits {
            max_inflated_bytes: budget,
        };
        let (decoded, body_request_id) = match endpoint {
            Endpoint::AuditWebhook => (decode::audit_webhook(&inflated), None),
            Endpoint::Runtime => (decode::runtime_lines(&inflated), None),
            Endpoint::Firehose => match decode::firehose(&inflated, limits) {
                Ok(batch) => (Ok(batch.decoded), batch.request_id),
                Err(bad) => (Err(bad), None),
            },
        };
        let decoded = match decoded {
            Ok(decoded) => decoded,
            Err(bad) => {
                return (
                    self.refuse(endpoint, cluster.as_deref(), &received, bad)
                        .await,
                    body_request_id,
                );
            }
        };
        (
            self.produce(endpoint, cluster.as_deref(), decoded).await,
            body_request_id,
        )
    }

    fn too_large(&self) -> Outcome {
        Outcome::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is over the {} byte limit (or inflates past {})",
                self.limits.max_body_bytes, self.limits.decode.max_inflated_bytes
            ),
        )
    }

    /// A body that is none of the shapes: dead-lettered whole, then answered 400 with the reason.
    async fn refuse(
        &self,
        endpoint: Endpoint,
        cluster: Option<&str>,
        received: &[u8],
        bad: BadBody,
    ) -> Outcome {
        let letter = self.dead_letter(
            endpoint,
            cluster,
            bad.reason,
            &bad.detail,
            received.to_vec(),
        );
        match self.deliver(vec![letter]).await {
            Ok(()) => {
                self.count_dead_letter(bad.reason);
                Outcome::error(
                    StatusCode::BAD_REQUEST,
                    format!("{}: {}", bad.reason, bad.detail),
                )
            }
            Err(outcome) => outcome,
        }
    }

    fn count_dead_letter(&self, reason: &str) {
        self.metrics
            .runtime
            .dead_letters
            .with_label_values(&[STAGE, reason])
            .inc();
        self.metrics
            .runtime
            .records_out
            .with_label_values(&[STAGE, &self.topics.deadletter])
            .inc();
    }

    fn dead_letter(
        &self,
        endpoint: Endpoint,
        cluster: Option<&str>,
        reason: &'static str,
        detail: &str,
        bytes: Vec<u8>,
    ) -> OutRecord {
        let mut headers = vec![
            ("vigil.stage", STAGE.to_owned()),
            ("vigil.reason", reason.to_owned()),
            ("vigil.detail", detail.chars().take(1000).collect()),
            ("vigil.source.endpoint", endpoint.label().to_owned()),
        ];
        if let Some(cluster) = cluster {
            headers.push((CLUSTER_HEADER, cluster.to_owned()));
        }
        OutRecord {
            topic: self.topics.deadletter.clone(),
            key: cluster.map(str::to_owned),
            value: bytes,
            headers,
            timestamp_millis: None,
        }
    }

    /// Produces a request's records and dead letters; 200 once all are acknowledged.
    async fn produce(
        &self,
        endpoint: Endpoint,
        cluster: Option<&str>,
        decoded: Decoded,
    ) -> Outcome {
        let accepted = decoded.records.len();
        let rejected = decoded.rejected.len();
        let runtime_records = decoded
            .records
            .iter()
            .filter(|record| record.destination == Destination::Runtime)
            .count();
        let mut records = Vec::with_capacity(accepted + rejected);
        for record in decoded.records {
            let cluster = record.cluster.as_deref().or(cluster);
            let (topic, key) = match record.destination {
                Destination::Audit => (&self.topics.audit, cluster.map(str::to_owned)),
                Destination::Runtime => (
                    &self.topics.runtime,
                    record.node.or_else(|| cluster.map(str::to_owned)),
                ),
            };
            let mut headers = vec![("vigil.source.endpoint", endpoint.label().to_owned())];
            if let Some(cluster) = cluster {
                headers.push((CLUSTER_HEADER, cluster.to_owned()));
            }
            records.push(OutRecord {
                topic: topic.clone(),
                key,
                value: record.value,
                headers,
                timestamp_millis: record.timestamp_millis,
            });
        }
        let reasons: Vec<&'static str> = decoded.rejected.iter().map(|part| part.reason).collect();
        for part in decoded.rejected {
            records.push(self.dead_letter(
                endpoint,
                cluster,
                part.reason,
                &part.detail,
                part.bytes,
            ));
        }
        if let Err(outcome) = self.deliver(records).await {
            return outcome;
        }
        for (topic, count) in [
            (&self.topics.audit, accepted - runtime_records),
            (&self.topics.runtime, runtime_records),
        ] {
            if count > 0 {
                self.metrics
                    .runtime
                    .records_out
                    .with_label_values(&[STAGE, topic])
                    .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
            }
        }
        for reason in reasons {
            self.count_dead_letter(reason);
        }
        for reason in decoded.skipped {
            self.metrics
                .runtime
                .skipped
                .with_label_values(&[STAGE, reason])
                .inc();
        }
        self.metrics
            .events
            .with_label_values(&[endpoint.label()])
            .inc_by(u64::try_from(accepted).unwrap_or(u64::MAX));
        Outcome {
            status: StatusCode::OK,
            message: String::new(),
            accepted,
            rejected,
            retry_after: None,
        }
    }

    /// Hands records to the sink and waits for their acknowledgements, within the delivery timeout.
    async fn deliver(&self, records: Vec<OutRecord>) -> Result<(), Outcome> {
        if records.is_empty() {
            return Ok(());
        }
        match tokio::time::timeout(self.limits.delivery_timeout, self.sink.deliver(records)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(SinkError::Full)) => Err(Outcome::retry(
                "the producer queue is full",
                RETRY_SOON_SECS,
            )),
            Ok(Err(SinkError::Unavailable(why))) => Err(Outcome::retry(
                format!("Kafka did not acknowledge the records: {why}"),
                RETRY_LATER_SECS,
            )),
            Err(_) => Err(Outcome::retry(
                format!(
                    "Kafka did not acknowledge the records within {:?}",
                    self.limits.delivery_timeout
                ),
                RETRY_LATER_SECS,
            )),
        }
    }
}

/// The header naming the cluster of a raw record; ingest gives it to events whose envelope names
/// none.
pub const CLUSTER_HEADER: &str = "vigil.cluster";

enum Route {
    Endpoint(Endpoint, Option<String>),
    Health,
    Ready,
    MethodNotAllowed,
    NotFound,
}

/// A cluster name in a path: what Kubernetes and EKS allow in names, bounded.
fn valid_cluster(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

fn route(method: &Method, path: &str) -> Route {
    let mut segments = path.trim_end_matches('/').split('/').skip(1);
    let first = segments.next().unwrap_or_default();
    match first {
        "healthz" if method == Method::GET => return Route::Health,
        "readyz" if method == Method::GET => return Route::Ready,
        "v1" => {}
        _ => return Route::NotFound,
    }
    let endpoint = match segments.next() {
        Some("audit") => Endpoint::AuditWebhook,
        Some("firehose") => Endpoint::Firehose,
        Some("runtime" | "falco") => Endpoint::Runtime,
        _ => return Route::NotFound,
    };
    let cluster = segments.next().map(str::to_owned);
    if segments.next().is_some() || cluster.as_deref().is_some_and(|name| !valid_cluster(name)) {
        return Route::NotFound;
    }
    if method != Method::POST {
        return Route::MethodNotAllowed;
    }
    Route::Endpoint(endpoint, cluster)
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}

fn now_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or_default()
}

/// The answer in the endpoint's shape: Firehose's `{requestId, timestamp, errorMessage}`, or
/// `{accepted, rejected}` / `{error}` for the others.
fn answer(
    endpoint: Endpoint,
    outcome: &Outcome,
    request_id: Option<&str>,
) -> Response<Full<Bytes>> {
    let body = match endpoint {
        Endpoint::Firehose => {
            let mut body = serde_json::Map::new();
            body.insert("requestId".into(), request_id.unwrap_or_default().into());
            body.insert(
                "timestamp".into(),
                u64::try_from(now_millis()).unwrap_or(u64::MAX).into(),
            );
            if !outcome.status.is_success() {
                body.insert("errorMessage".into(), outcome.message.as_str().into());
            }
            serde_json::Value::Object(body)
        }
        _ if outcome.status.is_success() => serde_json::json!({
            "accepted": outcome.accepted,
            "rejected": outcome.rejected,
        }),
        _ => serde_json::json!({ "error": outcome.message }),
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = outcome.status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Some(after) = outcome.retry_after {
        headers.insert(header::RETRY_AFTER, http::HeaderValue::from(after));
    }
    if outcome.status == StatusCode::UNAUTHORIZED {
        headers.insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"vigil-gateway\""),
        );
    }
    response
}

/// Accepts connections until `shutdown` turns true, then stops accepting and lets the requests in
/// progress finish (at most `drain`): a sender whose request was cut retries it.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let limits = gateway.limits;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(u32::try_from(limits.max_concurrent_requests).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let Ok((stream, _)) = accepted else { continue };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            // Over the connection limit: closed at once; the sender retries.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let gateway = Arc::clone(&gateway);
        let builder = Arc::clone(&builder);
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let client_certificate = stream.get_ref().1.peer_certificates().is_some();
                    let service = service(gateway, client_certificate);
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(connection).await;
                }
                None => {
                    let service = service(gateway, false);
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(connection).await;
                }
            }
        });
    }
    gateway
        .shutting_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in progress at the end of the drain: their senders retry");
    }
}

fn service(
    gateway: Arc<Gateway>,
    client_certificate: bool,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |request| {
        let gateway = Arc::clone(&gateway);
        async move { Ok::<_, Infallible>(gateway.handle(request, client_certificate).await) }
    })
}

#[cfg(test)]
mod tests;
