//! Settings every stage binary shares: flags with matching `VIGIL_*` environment variables, and
//! librdkafka settings passed through with `-X key=value` (TLS, SASL, MSK IAM...).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::auth::{AuthError, KafkaAuth, MskIam};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Topic names. The defaults are Vigil's; every one can be renamed.
#[derive(Debug, Clone, Args)]
pub struct Topics {
    /// Raw Kubernetes audit input, JSON in any shape `vigil scan` reads (as log shippers write it).
    #[arg(
        long = "topic-audit-raw",
        env = "VIGIL_TOPIC_AUDIT_RAW",
        default_value = "vigil.audit.raw"
    )]
    pub audit_raw: String,
    /// Raw runtime input (Tetragon, Falco, native JSON). Read by ingest once runtime monitoring lands.
    #[arg(
        long = "topic-runtime-raw",
        env = "VIGIL_TOPIC_RUNTIME_RAW",
        default_value = "vigil.runtime.raw"
    )]
    pub runtime_raw: String,
    /// Normalized events (Avro `AuditEvent`, `RuntimeEvent`), ingest → enrich.
    #[arg(
        long = "topic-events",
        env = "VIGIL_TOPIC_EVENTS",
        default_value = "vigil.events"
    )]
    pub events: String,
    /// Enriched events (Avro `EnrichedEvent`), enrich → detect.
    #[arg(
        long = "topic-enriched",
        env = "VIGIL_TOPIC_ENRICHED",
        default_value = "vigil.enriched"
    )]
    pub enriched: String,
    /// Detections (Avro `Detection`, keyed by finding id), detect → publish.
    #[arg(
        long = "topic-detections",
        env = "VIGIL_TOPIC_DETECTIONS",
        default_value = "vigil.detections"
    )]
    pub detections: String,
    /// Findings keyed by finding id, in the settings' `[output] format` (GuardDuty finding JSON by
    /// default); each update replaces the last.
    #[arg(
        long = "topic-findings",
        env = "VIGIL_TOPIC_FINDINGS",
        default_value = "vigil.findings"
    )]
    pub findings: String,
    /// Also write every finding as an OCSF 1.6.0 Detection Finding (class 2004) to this topic,
    /// keyed by finding id: for Security Hub, Security Lake and SIEMs that read OCSF. Off unless set.
    #[arg(long = "topic-findings-ocsf", env = "VIGIL_TOPIC_FINDINGS_OCSF")]
    pub findings_ocsf: Option<String>,
    /// Dead letters: the original bytes, with stage, reason and source in the headers.
    #[arg(
        long = "topic-deadletter",
        env = "VIGIL_TOPIC_DEADLETTER",
        default_value = "vigil.deadletter"
    )]
    pub deadletter: String,
    /// enrich's pod and workload inventory (compacted).
    #[arg(
        long = "topic-inventory",
        env = "VIGIL_TOPIC_INVENTORY",
        default_value = "vigil.inventory"
    )]
    pub inventory: String,
    /// detect's checkpointed state (compacted).
    #[arg(
        long = "topic-detect-state",
        env = "VIGIL_TOPIC_DETECT_STATE",
        default_value = "vigil.detect.state"
    )]
    pub detect_state: String,
    /// publish's aggregated findings (compacted, Avro `Finding` keyed by id).
    #[arg(
        long = "topic-publish-state",
        env = "VIGIL_TOPIC_PUBLISH_STATE",
        default_value = "vigil.publish.state"
    )]
    pub publish_state: String,
}

/// What every stage binary takes.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Kafka bootstrap servers, `HOST:PORT[,HOST:PORT...]`.
    #[arg(long, env = "VIGIL_BROKERS", default_value = "localhost:9092")]
    pub brokers: String,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(long, env = "VIGIL_METRICS_ADDR", default_value = "0.0.0.0:9100")]
    pub metrics_addr: SocketAddr,
    /// Consumer group; by default `vigil-<stage>`. Instances in one group share the partitions.
    #[arg(long, env = "VIGIL_GROUP_ID")]
    pub group_id: Option<String>,
    /// Log lines as text or JSON. The level comes from `RUST_LOG` (default `info`).
    #[arg(long, env = "VIGIL_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// A librdkafka setting passed through, `-X security.protocol=SASL_SSL`. Repeatable; applies to
    /// the consumer, the producer and the admin client.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub kafka_options: Vec<(String, String)>,
    /// Partitions of the topics a stage creates when they are missing.
    #[arg(long, env = "VIGIL_PARTITIONS", default_value_t = 6)]
    pub partitions: i32,
    /// Replication factor of the topics a stage creates (3 on a production cluster).
    #[arg(long, env = "VIGIL_REPLICATION_FACTOR", default_value_t = 1)]
    pub replication_factor: i32,
    /// Consumer session timeout. A group (re)join takes about half of it on some brokers.
    #[arg(long, env = "VIGIL_SESSION_TIMEOUT_MS", default_value_t = 10_000)]
    pub session_timeout_ms: u64,
    /// On SIGTERM/SIGINT: how long to wait for in-flight deliveries before exiting anyway.
    #[arg(long, env = "VIGIL_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,
    /// At most this many input messages awaiting delivery of their outputs at once (under
    /// exactly-once: in one transaction).
    #[arg(long, env = "VIGIL_MAX_IN_FLIGHT", default_value_t = 10_000)]
    pub max_in_flight: usize,
    /// `at-least-once` (any Kafka-compatible broker) or `exactly-once` (Kafka transactions: each
    /// stage commits its outputs, state and consumed offsets together).
    #[arg(
        long,
        env = "VIGIL_PROCESSING_GUARANTEE",
        value_enum,
        default_value = "at-least-once"
    )]
    pub processing_guarantee: ProcessingGuarantee,
    /// Exactly-once: how often a stage commits its transaction (the floor of its latency).
    #[arg(long, env = "VIGIL_TRANSACTION_INTERVAL_MS", default_value_t = 100)]
    pub transaction_interval_ms: u64,
    /// Exactly-once: this instance's name, stable across its restarts and distinct from its
    /// siblings' (a StatefulSet pod's name). The transactional id is `<group>-<instance-id>`: a
    /// restarted instance fences its previous life and aborts the transaction it left open.
    /// Defaults to `HOSTNAME`.
    #[arg(long, env = "VIGIL_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// The consumer group protocol: `classic`, or `consumer` (KIP-848, Apache Kafka 4.0 and
    /// later: the broker assigns partitions incrementally; session and heartbeat are then the
    /// broker's settings).
    #[arg(
        long,
        env = "VIGIL_GROUP_PROTOCOL",
        value_enum,
        default_value = "classic"
    )]
    pub group_protocol: GroupProtocol,
    /// How the Kafka clients authenticate: `librdkafka` (as the `-X` settings say: none, TLS,
    /// SASL/SCRAM, PLAIN, OAUTHBEARER with OIDC) or `aws-msk-iam` (Amazon MSK's IAM access
    /// control: SASL_SSL with OAUTHBEARER tokens signed with the process's AWS credentials, from
    /// IRSA, EKS Pod Identity, an instance profile or the environment).
    #[arg(
        long,
        env = "VIGIL_KAFKA_AUTH",
        value_enum,
        default_value = "librdkafka"
    )]
    pub kafka_auth: KafkaAuth,
    /// MSK IAM: the cluster's region. By default read off MSK broker addresses, then `AWS_REGION`
    /// and the AWS profile.
    #[arg(long, env = "VIGIL_AWS_REGION")]
    pub aws_region: Option<String>,
    /// MSK IAM: the token source every client shares, started by
    /// [`CommonArgs::start_authentication`].
    #[arg(skip)]
    pub msk_iam: Option<MskIam>,
    #[command(flatten)]
    pub topics: Topics,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProcessingGuarantee {
    AtLeastOnce,
    ExactlyOnce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GroupProtocol {
    Classic,
    Consumer,
}

impl CommonArgs {
    /// Starts what `--kafka-auth` needs before the first client is made: with `aws-msk-iam`, the
    /// AWS credentials (the process does not start without them) and their refresh.
    pub async fn start_authentication(&mut self) -> Result<(), AuthError> {
        if self.kafka_auth == KafkaAuth::AwsMskIam && self.msk_iam.is_none() {
            self.msk_iam = Some(MskIam::start(self.aws_region.as_deref(), &self.brokers).await?);
        }
        Ok(())
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    /// The consumer group of `stage`.
    pub fn group(&self, stage: &str) -> String {
        self.group_id
            .clone()
            .unwrap_or_else(|| format!("vigil-{stage}"))
    }

    /// Exactly-once: the transactional id of `stage` in this instance.
    pub fn transactional_id(&self, stage: &str) -> String {
        let instance = self
            .instance_id
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "vigil".to_owned());
        format!("{}-{instance}", self.group(stage))
    }
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// Sets up `tracing` output once per process.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second call (tests, `vigil run`) finds a subscriber already set; that is fine.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_options_need_a_key_and_an_equals_sign() {
        assert_eq!(parse_key_value("a.b=c=d"), Ok(("a.b".into(), "c=d".into())));
        assert_eq!(
            parse_key_value("sasl.password="),
            Ok(("sasl.password".into(), String::new()))
        );
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=x").is_err());
    }
}
