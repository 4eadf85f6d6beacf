//! vigil-gateway: the way events get into Vigil's raw topics over HTTP. The Kubernetes API
//! server's audit webhook, Amazon Data Firehose (CloudWatch Logs subscriptions of EKS audit logs),
//! Falco and falcosidekick post here; each request's events are produced to `vigil.audit.raw` or
//! `vigil.runtime.raw`, and the answer is 200 only once Kafka has acknowledged every one of them,
//! so a sender's retry gives at-least-once delivery end to end.
//!
//! The parts: `decode` (bodies into records, free of I/O), `credentials` (who may send, for which
//! cluster), `sink` (where records go: Kafka, or memory in tests), `server` (HTTP, TLS, limits).

pub mod args;
pub mod credentials;
pub use vigil_gateway_decode as decode;
pub mod metrics;
pub mod server;
pub mod sink;
pub mod tls;
