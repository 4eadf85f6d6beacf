//! The gateway's flags, each with its `VIGIL_*` variable, beside the runtime's common ones
//! (brokers, `-X` Kafka settings, metrics address, log format, topic names).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use vigil_kafka::CommonArgs;

use crate::decode::DecodeLimits;
use crate::server::Limits;

#[derive(Debug, clap::Parser)]
#[command(
    name = "vigil-gateway",
    version,
    about = "Vigil's HTTP gateway: receives the Kubernetes API server's audit webhook, Amazon Data \
             Firehose deliveries (CloudWatch Logs subscriptions of EKS audit logs) and Falco, \
             falcosidekick, Tetragon or native runtime events, and produces them to the raw topics. \
             A request is answered 200 only once Kafka has acknowledged every one of its events."
)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where to accept events (HTTP/1.1 and HTTP/2; TLS with --tls-cert and --tls-key). Port 0
    /// takes a free port, which the "accepting events" log line names.
    #[arg(long, env = "VIGIL_GATEWAY_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// The server certificate chain (PEM). With --tls-key, the gateway speaks TLS only.
    #[arg(
        long,
        env = "VIGIL_GATEWAY_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The server certificate's private key (PEM).
    #[arg(
        long,
        env = "VIGIL_GATEWAY_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// A CA (PEM) whose client certificates authenticate a sender (mTLS); the cluster then comes
    /// from the path, `/v1/audit/{cluster}`.
    #[arg(
        long,
        env = "VIGIL_GATEWAY_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub client_ca: Option<PathBuf>,
    /// The credentials file (TOML): bearer tokens and Firehose access keys, each mapped to the
    /// cluster it sends for (see docs/gateway.md).
    #[arg(long, env = "VIGIL_GATEWAY_CREDENTIALS", value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Accept requests that present no credential (a gateway on loopback, or behind a proxy that
    /// authenticates). Credentials that are presented are still checked.
    #[arg(long, env = "VIGIL_GATEWAY_ALLOW_ANONYMOUS")]
    pub allow_anonymous: bool,
    /// Largest request body accepted, as received; larger ones are answered 413.
    #[arg(long, env = "VIGIL_GATEWAY_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Most a request may inflate to (gzip bodies and CloudWatch records, together).
    #[arg(long, env = "VIGIL_GATEWAY_MAX_INFLATED_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_inflated_bytes: usize,
    /// A request's body must have arrived within this many seconds (408 otherwise).
    #[arg(long, env = "VIGIL_GATEWAY_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub body_timeout_secs: u64,
    /// A request head, and a TLS handshake, must arrive within this many seconds.
    #[arg(long, env = "VIGIL_GATEWAY_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// How long a request waits for Kafka's acknowledgements before it is answered 503 (also
    /// librdkafka's `message.timeout.ms`).
    #[arg(
        long,
        env = "VIGIL_GATEWAY_DELIVERY_TIMEOUT_MS",
        default_value_t = 15_000
    )]
    pub delivery_timeout_ms: u64,
    /// Requests handled at once; more are answered 503 with Retry-After.
    #[arg(
        long,
        env = "VIGIL_GATEWAY_MAX_CONCURRENT_REQUESTS",
        default_value_t = 128
    )]
    pub max_concurrent_requests: usize,
    /// Connections held at once; more are closed at accept.
    #[arg(long, env = "VIGIL_GATEWAY_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Records the producer may hold unacknowledged; past it requests are answered 503.
    #[arg(
        long,
        env = "VIGIL_GATEWAY_PRODUCER_QUEUE_MESSAGES",
        default_value_t = 200_000
    )]
    pub producer_queue_messages: usize,
}

impl GatewayArgs {
    pub fn limits(&self) -> Limits {
        let delivery_timeout = Duration::from_millis(self.delivery_timeout_ms);
        Limits {
            max_body_bytes: self.max_body_bytes,
            decode: DecodeLimits {
                max_inflated_bytes: self.max_inflated_bytes,
            },
            body_timeout: Duration::from_secs(self.body_timeout_secs),
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            // A little past librdkafka's own timeout, so its answer (a delivery error) comes first.
            delivery_timeout: delivery_timeout + Duration::from_secs(1),
            max_concurrent_requests: self.max_concurrent_requests,
            max_connections: self.max_connections,
        }
    }
}
