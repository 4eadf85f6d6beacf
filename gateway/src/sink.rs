//! Where a request's records go: Kafka in the service, memory in tests. A request is answered 200
//! only once [`Sink::deliver`] has resolved `Ok`, that is once every record is acknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use vigil_kafka::{CommonArgs, Metrics};

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    pub topic: String,
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
    pub timestamp_millis: Option<i64>,
}

/// Why records were not all acknowledged. Both are answered 503: the sender retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    #[error("the producer queue is full")]
    Full,
    #[error("Kafka is unavailable: {0}")]
    Unavailable(String),
}

pub trait Sink: Send + Sync + 'static {
    /// Whether the brokers can be reached now; while not, requests are answered 503 at once
    /// instead of waiting for a delivery timeout.
    fn is_available(&self) -> bool;

    /// Hands every record to the producer now (in order), and resolves once each is acknowledged
    /// or one has failed. Records handed over before a failure may still be delivered: the
    /// sender's retry then repeats them, which downstream ids absorb.
    fn deliver(&self, records: Vec<OutRecord>) -> BoxFuture<'static, Result<(), SinkError>>;
}

/// librdkafka's callbacks for the gateway's producer: statistics into the shared metrics, and
/// whether any broker is up.
#[derive(Debug)]
pub struct GatewayContext {
    metrics: Metrics,
    bytes: std::sync::Mutex<vigil_kafka::kafka::ByteTotals>,
    brokers_up: Arc<AtomicBool>,
    iam: Option<vigil_kafka::auth::MskIam>,
}

impl ClientContext for GatewayContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        vigil_kafka::auth::oauth_token(self.iam.as_ref())
    }

    fn stats(&self, statistics: Statistics) {
        vigil_kafka::kafka::record_producer_statistics(
            &self.metrics,
            STAGE,
            &statistics,
            &self.bytes,
        );
        // Bootstrap entries have no node id; a broker known by id and UP can take records. Only
        // a sign of life: a broker that is not connected may just be idle (librdkafka connects
        // when it has something to send); `AllBrokersDown` says when they are gone.
        if statistics
            .brokers
            .values()
            .any(|broker| broker.nodeid >= 0 && broker.state == "UP")
        {
            self.brokers_up.store(true, Ordering::SeqCst);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AllBrokersDown)
        ) {
            self.brokers_up.store(false, Ordering::SeqCst);
        }
        tracing::warn!(%error, reason, "librdkafka");
    }
}

/// The label the gateway's runtime metrics carry.
pub const STAGE: &str = "gateway";

/// Records to Kafka through one idempotent producer (`acks=all`).
pub struct KafkaSink {
    producer: FutureProducer<GatewayContext>,
    brokers_up: Arc<AtomicBool>,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink").finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// `delivery_timeout` bounds how long a record may wait for the brokers (librdkafka's
    /// `message.timeout.ms`): past it the request is answered 503.
    pub fn new(
        common: &CommonArgs,
        metrics: &Metrics,
        delivery_timeout: Duration,
        queue_messages: usize,
    ) -> Result<Self, KafkaError> {
        let timeout = delivery_timeout.as_millis().to_string();
        let queue = queue_messages.to_string();
        let config = vigil_kafka::kafka::user_client_config(
            common,
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "5"),
                ("compression.type", "zstd"),
                ("message.timeout.ms", &timeout),
                ("queue.buffering.max.messages", &queue),
                ("statistics.interval.ms", "1000"),
            ],
        );
        let brokers_up = Arc::new(AtomicBool::new(false));
        let producer: FutureProducer<GatewayContext> =
            config.create_with_context(GatewayContext {
                metrics: metrics.clone(),
                bytes: std::sync::Mutex::default(),
                brokers_up: Arc::clone(&brokers_up),
                iam: common.msk_iam.clone(),
            })?;
        if let Some(iam) = &common.msk_iam {
            iam.prime(producer.client())
                .map_err(|error| KafkaError::ClientCreation(format!("MSK IAM: {error}")))?;
        }
        Ok(Self {
            producer,
            brokers_up,
        })
    }

    /// While the brokers are thought gone, asks one for metadata every second: the gateway refuses
    /// records meanwhile, so without this nothing would make librdkafka connect again and the
    /// gateway would answer 503 after the brokers are back.
    pub fn spawn_probe(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let sink = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if sink.is_available() {
                    continue;
                }
                let probing = Arc::clone(&sink);
                let reached = tokio::task::spawn_blocking(move || {
                    probing
                        .producer
                        .client()
                        .fetch_metadata(None, Duration::from_secs(2))
                        .is_ok()
                })
                .await
                .unwrap_or(false);
                if reached {
                    tracing::info!("Kafka reachable again");
                    sink.brokers_up.store(true, Ordering::SeqCst);
                }
            }
        })
    }

    /// Waits for in-flight records on shutdown.
    pub fn flush(&self, timeout: Duration) {
        if let Err(error) = self.producer.flush(timeout) {
            tracing::warn!(%error, "records still queued at shutdown");
        }
    }
}

impl Sink for KafkaSink {
    fn is_available(&self) -> bool {
        self.brokers_up.load(Ordering::SeqCst)
    }

    fn deliver(&self, records: Vec<OutRecord>) -> BoxFuture<'static, Result<(), SinkError>> {
        let mut deliveries = Vec::with_capacity(records.len());
        for record in &records {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (key, value) in &record.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                });
            }
            let mut future_record = FutureRecord::<String, Vec<u8>>::to(&record.topic)
                .payload(&record.value)
                .headers(headers);
            if let Some(key) = &record.key {
                future_record = future_record.key(key);
            }
            if let Some(millis) = record.timestamp_millis {
                future_record = future_record.timestamp(millis);
            }
            match self.producer.send_result(future_record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((error, _)) => {
                    let full = matches!(
                        error.rdkafka_error_code(),
                        Some(RDKafkaErrorCode::QueueFull)
                    );
                    return Box::pin(async move {
                        Err(if full {
                            SinkError::Full
                        } else {
                            SinkError::Unavailable(error.to_string())
                        })
                    });
                }
            }
        }
        let brokers_up = Arc::clone(&self.brokers_up);
        Box::pin(async move {
            for delivery in deliveries {
                match delivery.await {
                    Ok(Ok(_)) => brokers_up.store(true, Ordering::SeqCst),
                    Ok(Err((error, _))) => return Err(SinkError::Unavailable(error.to_string())),
                    Err(_) => {
                        return Err(SinkError::Unavailable("the producer was closed".into()));
                    }
                }
            }
            Ok(())
        })
    }
}

/// Records kept in memory: for tests, and to see what a request would produce.
#[derive(Debug, Default)]
pub struct MemorySink {
    pub records: std::sync::Mutex<Vec<OutRecord>>,
    /// When set, `deliver` fails with it.
    pub fail_with: std::sync::Mutex<Option<SinkError>>,
    pub unavailable: AtomicBool,
}

impl Sink for MemorySink {
    fn is_available(&self) -> bool {
        !self.unavailable.load(Ordering::SeqCst)
    }

    fn deliver(&self, records: Vec<OutRecord>) -> BoxFuture<'static, Result<(), SinkError>> {
        let failure = self
            .fail_with
            .lock()
            .ok()
            .and_then(|failure| failure.clone());
        let result = match failure {
            Some(error) => Err(error),
            None => {
                if let Ok(mut kept) = self.records.lock() {
                    kept.extend(records);
                }
                Ok(())
            }
        };
        Box::pin(async move { result })
    }
}
