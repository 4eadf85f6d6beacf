//! The one place that knows Kafka's semantics. A [`Processor`] turns one input record into output
//! records and knows nothing of Kafka; [`run_stage`] owns the consumer, the producer and the offsets:
//!
//! - **At-least-once.** `enable.auto.offset.store=false`: an input's offset is stored only once every
//!   output it produced is acknowledged by the broker, in consumption order, and the stored offsets
//!   are committed in the background. A crash replays what was not committed; the records downstream
//!   are idempotent (deterministic finding ids, event ids remembered by publish).
//! - **Idempotent producer**, `acks=all`, and no delivery timeout: a broker outage is waited out with
//!   librdkafka's backoff, never turned into a dead letter or a loss.
//! - **State.** A stage's compacted state topic is read back to its end before the first input is
//!   consumed, so a restart neither forgets nor relearns. A checkpointing stage (detect) writes each
//!   checkpoint to the state partition of its input's partition, with the input's offset, after every
//!   earlier output is acknowledged: the inputs a restored checkpoint already holds are passed over.
//! - **Rebalance.** Before partitions are taken away, the stage finishes what it has in flight, stores
//!   those offsets and commits synchronously, so the next owner starts where this one stopped instead of
//!   replaying (the group waits, bounded by `--shutdown-timeout-secs`). After an assignment, the state
//!   of the partitions now owned is read back before their first input.
//! - **Shutdown** (SIGTERM/SIGINT): stop fetching, wait for in-flight deliveries (bounded), store
//!   and commit their offsets synchronously, exit.
//!
//! librdkafka's consumer is polled on a thread of its own, which hands messages to the stage loop
//! through a bounded channel; rebalance callbacks run on that thread and wait for the loop to drain.
//! That thread never blocks on a busy loop for long: when the loop takes nothing for half a second
//! (reading state back after an assignment), it pauses fetching and goes on polling, so the member
//! stays in the group however long the loop is busy (`max.poll.interval.ms` counts polls).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};

use crate::args::{CommonArgs, GroupProtocol, ProcessingGuarantee};
use crate::auth::{self, AuthContext, KafkaAuth, MskIam};
use crate::http::Health;
use crate::metrics::Metrics;
use crate::stage::{
    Acknowledgement, Backend, CommitStrategy, Delivery, InputPosition, LoopLimits, Outgoing,
    Processor, RecordStream, RuntimeError, StageLoop, StateKeeping, TopicSpec, record_headers,
};

fn base_config(common: &CommonArgs) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &common.brokers);
    if common.kafka_auth == KafkaAuth::AwsMskIam {
        // MSK's IAM listeners (port 9098) speak SASL over TLS; `-X` may still say otherwise.
        config
            .set("security.protocol", "SASL_SSL")
            .set("sasl.mechanism", "OAUTHBEARER");
    }
    config
}

/// Makes a client with `context`, handing it a first MSK IAM token when `--kafka-auth
/// aws-msk-iam` is on (see [`MskIam::prime`]).
fn create_client<C, T>(
    config: &ClientConfig,
    context: C,
    common: &CommonArgs,
) -> Result<T, RuntimeError>
where
    C: ClientContext,
    T: rdkafka::config::FromClientConfigAndContext<C> + TakesToken,
{
    let client: T = config.create_with_context(context)?;
    if let Some(iam) = &common.msk_iam {
        client
            .take_token(iam)
            .map_err(|error| RuntimeError::Task(format!("MSK IAM: {error}")))?;
    }
    Ok(client)
}

/// A consumer, a producer or an admin client, to which a token can be handed.
pub trait TakesToken {
    fn take_token(&self, iam: &MskIam) -> Result<(), String>;
}

impl<C: ConsumerContext> TakesToken for BaseConsumer<C> {
    fn take_token(&self, iam: &MskIam) -> Result<(), String> {
        iam.prime(self.client())
    }
}

impl<C: ClientContext + 'static> TakesToken for FutureProducer<C> {
    fn take_token(&self, iam: &MskIam) -> Result<(), String> {
        iam.prime(self.client())
    }
}

impl<C: ClientContext> TakesToken for AdminClient<C> {
    fn take_token(&self, iam: &MskIam) -> Result<(), String> {
        iam.prime(self.inner())
    }
}

/// The user's `-X` settings go last: they win over Vigil's defaults.
fn apply_user_options(config: &mut ClientConfig, common: &CommonArgs) {
    for (key, value) in &common.kafka_options {
        config.set(key, value);
    }
}

/// A client configuration: the brokers (and MSK IAM's SASL settings), then `defaults`, then the
/// user's `-X` settings, which win.
/// For a process that is not a stage (the gateway's producer).
pub fn user_client_config(common: &CommonArgs, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut config = base_config(common);
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    apply_user_options(&mut config, common);
    config
}

/// What the polling thread hands the stage loop.
enum Polled {
    Message(OwnedMessage),
    /// The group is about to take partitions away: drain, store, commit, then answer.
    Revoking(std::sync::mpsc::SyncSender<()>),
}

/// Cumulative librdkafka byte counters last seen, to turn them into counter increments.
#[derive(Debug, Default)]
pub struct ByteTotals {
    transmitted: i64,
    received: i64,
}

/// librdkafka statistics into metrics: consumer lag, producer queue, bytes moved, broker round trips.
fn record_statistics(
    metrics: &Metrics,
    stage: &str,
    client: &str,
    statistics: &Statistics,
    last: &std::sync::Mutex<ByteTotals>,
) {
    if let Ok(mut last) = last.lock() {
        let transmitted = statistics.tx_bytes.saturating_sub(last.transmitted).max(0);
        let received = statistics.rx_bytes.saturating_sub(last.received).max(0);
        metrics
            .kafka_transmitted_bytes
            .with_label_values(&[stage, client])
            .inc_by(u64::try_from(transmitted).unwrap_or(0));
        metrics
            .kafka_received_bytes
            .with_label_values(&[stage, client])
            .inc_by(u64::try_from(received).unwrap_or(0));
        last.transmitted = statistics.tx_bytes;
        last.received = statistics.rx_bytes;
    }
    let round_trips: Vec<i64> = statistics
        .brokers
        .values()
        .filter_map(|broker| broker.rtt.as_ref())
        .map(|window| window.avg)
        .filter(|avg| *avg > 0)
        .collect();
    if let Some(slowest) = round_trips.iter().max() {
        #[allow(clippy::cast_precision_loss)]
        metrics
            .kafka_broker_rtt
            .with_label_values(&[stage, client])
            .set(*slowest as f64 / 1e6);
    }
}

/// librdkafka callbacks: statistics into metrics, assignments into readiness, revocations into a
/// drain of the stage loop.
#[derive(Debug)]
pub struct StageContext {
    stage: &'static str,
    metrics: Metrics,
    health: Arc<Health>,
    assigned: AtomicBool,
    /// Set on every assignment: the state of the partitions now owned is read back before the
    /// next input is processed.
    rebalanced: AtomicBool,
    /// The stage loop, while it runs: revocations wait for it to drain.
    to_loop: std::sync::Mutex<Option<mpsc::Sender<Polled>>>,
    /// Polled messages the loop had no room for yet, in order (see [`poll_consumer`]).
    held: std::sync::Mutex<VecDeque<OwnedMessage>>,
    /// Set by the polling thread while fetching is paused; an assignment made meanwhile is paused
    /// in turn. librdkafka keeps a partition's pause across a revocation and a new assignment, so
    /// once any pause happened, an assignment made while not pausing is resumed.
    pausing: AtomicBool,
    ever_paused: AtomicBool,
    drain_timeout: Duration,
    bytes: std::sync::Mutex<ByteTotals>,
    iam: Option<MskIam>,
}

impl std::fmt::Debug for Polled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Message(message) => {
                write!(f, "Message({}/{})", message.partition(), message.offset())
            }
            Self::Revoking(_) => f.write_str("Revoking"),
        }
    }
}

impl ClientContext for StageContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        auth::oauth_token(self.iam.as_ref())
    }

    fn stats(&self, statistics: Statistics) {
        let mut lag: HashMap<&str, i64> = HashMap::new();
        for (name, topic) in &statistics.topics {
            for partition in topic.partitions.values() {
                if partition.partition >= 0 && partition.consumer_lag >= 0 {
                    *lag.entry(name.as_str()).or_default() += partition.consumer_lag;
                }
            }
        }
        for (topic, messages) in lag {
            self.metrics
                .consumer_lag
                .with_label_values(&[self.stage, topic])
                .set(messages);
        }
        record_statistics(
            &self.metrics,
            self.stage,
            "consumer",
            &statistics,
            &self.bytes,
        );
    }
}

impl ConsumerContext for StageContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(partitions) = rebalance else {
            return;
        };
        if partitions.count() == 0 {
            return;
        }
        self.metrics
            .rebalances
            .with_label_values(&[self.stage, "revoke"])
            .inc();
        // Held messages of revoked partitions were never processed: their offsets are not stored,
        // so the partitions' next owner reads them again.
        if let Ok(mut held) = self.held.lock() {
            let revoked: Vec<(String, i32)> = partitions
                .elements()
                .iter()
                .map(|element| (element.topic().to_owned(), element.partition()))
                .collect();
            held.retain(|message| {
                !revoked.iter().any(|(topic, partition)| {
                    topic == message.topic() && *partition == message.partition()
                })
            });
        }
        // Only the polling thread waits here; on any other thread (the consumer closing inside the
        // runtime) there is no loop left to drain.
        if tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        let sender = self.to_loop.lock().ok().and_then(|guard| guard.clone());
        let Some(sender) = sender else {
            return;
        };
        let (reply, answered) = std::sync::mpsc::sync_channel(1);
        let started = Instant::now();
        if sender.blocking_send(Polled::Revoking(reply)).is_err() {
            return;
        }
        match answered.recv_timeout(self.drain_timeout) {
            Ok(()) => tracing::info!(
                stage = self.stage,
                partitions = partitions.count(),
                seconds = started.elapsed().as_secs_f64(),
                "partitions revoked after draining in-flight inputs and committing"
            ),
            Err(_) => tracing::warn!(
                stage = self.stage,
                "in-flight inputs not drained before the revocation; their new owner replays them"
            ),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(_) | Rebalance::Revoke(_) => {
                if matches!(rebalance, Rebalance::Assign(_)) {
                    self.rebalanced.store(true, Ordering::SeqCst);
                    self.carry_pause_over(consumer);
                    self.metrics
                        .rebalances
                        .with_label_values(&[self.stage, "assign"])
                        .inc();
                }
                // Ready once the group has given this member its share, even an empty one: an
                // instance beyond the partition count is a healthy standby. An incremental
                // revocation (cooperative and KIP-848 groups) leaves the rest of the share.
                let partitions = consumer
                    .assignment()
                    .map(|assignment| assignment.count())
                    .unwrap_or(0);
                let now = matches!(rebalance, Rebalance::Assign(_)) || partitions > 0;
                let was = self.assigned.swap(now, Ordering::SeqCst);
                self.health.set_consumer_ready(was, now);
                tracing::info!(
                    stage = self.stage,
                    joined = now,
                    partitions,
                    "partitions rebalanced"
                );
            }
            Rebalance::Error(error) => {
                tracing::warn!(stage = self.stage, %error, "rebalance failed")
            }
        }
    }
}

#[derive(Debug)]
struct ProducerContext {
    stage: &'static str,
    metrics: Metrics,
    bytes: std::sync::Mutex<ByteTotals>,
    iam: Option<MskIam>,
}

impl ClientContext for ProducerContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        auth::oauth_token(self.iam.as_ref())
    }

    fn stats(&self, statistics: Statistics) {
        record_producer_statistics(&self.metrics, self.stage, &statistics, &self.bytes);
    }
}

/// A producer's statistics into the metrics: its queue, the bytes it moved, broker round trips.
/// Every producer of a Vigil process (a stage's, the gateway's) reports through this.
pub fn record_producer_statistics(
    metrics: &Metrics,
    stage: &str,
    statistics: &Statistics,
    bytes: &std::sync::Mutex<ByteTotals>,
) {
    metrics
        .producer_queue
        .with_label_values(&[stage])
        .set(i64::try_from(statistics.msg_cnt).unwrap_or(i64::MAX));
    record_statistics(metrics, stage, "producer", statistics, bytes);
}

/// How long the polling thread waits for room in the stage loop's channel before it pauses
/// fetching. Well under any sane `max.poll.interval.ms`: a loop busy for long (reading state back
/// after an assignment) must not make librdkafka think the member is gone.
const PAUSE_AFTER: Duration = Duration::from_millis(500);

/// Polls the consumer until `stop`, handing messages to the stage loop. Rebalance callbacks run
/// here, inside `poll`.
///
/// The thread never blocks on the loop for longer than [`PAUSE_AFTER`]: when the loop takes nothing
/// for that long, the messages it could not hand over are held (in order, in the context, so a
/// revocation can drop those of revoked partitions), the assignment is paused, and `poll` goes on
/// being called, which keeps the member in the group, until the loop has room again.
fn poll_consumer(
    consumer: &BaseConsumer<StageContext>,
    to_loop: &mpsc::Sender<Polled>,
    stop: &AtomicBool,
    stage: &'static str,
    runtime: &tokio::runtime::Handle,
) {
    let context = consumer.context();
    let paused_gauge = context.metrics.consumer_paused.with_label_values(&[stage]);
    let mut errors = ConsumeErrorLog::default();
    let mut paused_at = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let pausing = context.pausing.load(Ordering::SeqCst);
        match hand_over_held(context, to_loop, runtime, !pausing) {
            HandOver::LoopGone => return,
            HandOver::AllHandedOver if pausing => {
                context.set_paused(consumer, false);
                paused_gauge.set(0);
                // A pause of a second is backpressure, routine; a long one is worth a line.
                let seconds = paused_at.elapsed().as_secs_f64() + PAUSE_AFTER.as_secs_f64();
                if seconds >= 5.0 {
                    tracing::info!(stage, seconds, "fetching resumed: the stage loop was busy");
                } else {
                    tracing::debug!(stage, seconds, "fetching resumed");
                }
            }
            HandOver::LoopBusy if !pausing => {
                context.set_paused(consumer, true);
                paused_gauge.set(1);
                paused_at = Instant::now();
                tracing::debug!(
                    stage,
                    "the stage loop is busy: fetching paused, the group still polled"
                );
            }
            HandOver::AllHandedOver | HandOver::LoopBusy => {}
        }
        // Never sleep on an error: librdkafka retries by itself, and the events queued behind an
        // error (a broker outage queues dozens) include the group's rebalances, which are served
        // only by polling. Sleeping per error once left a stage unassigned for minutes after the
        // broker came back.
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                errors.recovered(stage);
                if let Ok(mut held) = context.held.lock() {
                    held.push_back(message.detach());
                }
            }
            Some(Err(error)) => errors.failed(stage, &error),
        }
    }
}

/// Consume errors logged without flooding: the first of a run at once, then at most one line every
/// [`ConsumeErrorLog::EVERY`] with how many were left out, and a line when messages flow again.
#[derive(Debug, Default)]
struct ConsumeErrorLog {
    since: Option<Instant>,
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl ConsumeErrorLog {
    const EVERY: Duration = Duration::from_secs(5);

    fn failed(&mut self, stage: &'static str, error: &KafkaError) {
        let now = Instant::now();
        self.since.get_or_insert(now);
        if self
            .last_logged
            .is_some_and(|logged| now.duration_since(logged) < Self::EVERY)
        {
            self.unlogged += 1;
            return;
        }
        tracing::warn!(stage, %error, left_out = self.unlogged, "consume failed; librdkafka retries");
        self.last_logged = Some(now);
        self.unlogged = 0;
    }

    fn recovered(&mut self, stage: &'static str) {
        if let Some(since) = self.since.take() {
            tracing::info!(
                stage,
                seconds = since.elapsed().as_secs_f64(),
                "consuming again after errors"
            );
            self.last_logged = None;
            self.unlogged = 0;
        }
    }
}

enum HandOver {
    AllHandedOver,
    LoopBusy,
    LoopGone,
}

/// Hands the held messages to the loop in order, waiting up to [`PAUSE_AFTER`] for room when
/// `may_wait` (not yet paused), else only taking the room there is.
fn hand_over_held(
    context: &StageContext,
    to_loop: &mpsc::Sender<Polled>,
    runtime: &tokio::runtime::Handle,
    may_wait: bool,
) -> HandOver {
    loop {
        let Some(message) = context
            .held
            .lock()
            .ok()
            .and_then(|mut held| held.pop_front())
        else {
            return HandOver::AllHandedOver;
        };
        let message = match to_loop.try_send(Polled::Message(message)) {
            Ok(()) => continue,
            Err(mpsc::error::TrySendError::Closed(_)) => return HandOver::LoopGone,
            Err(mpsc::error::TrySendError::Full(message)) => message,
        };
        // The channel is full: the loop has plenty to do. Waits for room for a batch, not a
        // slot: waiting for one slot woke this thread (a futex call on the loop's side) for every
        // message the loop took, a tenth of the loop's time.
        let room = if may_wait {
            runtime.block_on(async {
                tokio::time::timeout(PAUSE_AFTER, to_loop.reserve_many(REFILL_BATCH))
                    .await
                    .map(|reserved| reserved.ok())
                    .map_err(drop)
            })
        } else {
            Err(())
        };
        match room {
            Ok(Some(mut permits)) => {
                // The rest of the room goes back to the channel as the permits drop: the next
                // held messages go by `try_send` above.
                if let Some(permit) = permits.next() {
                    permit.send(message);
                }
            }
            Ok(None) => return HandOver::LoopGone,
            Err(_) => {
                if let (Polled::Message(message), Ok(mut held)) = (message, context.held.lock()) {
                    held.push_front(message);
                }
                return HandOver::LoopBusy;
            }
        }
    }
}

impl StageContext {
    /// Pauses or resumes fetching for the whole assignment. Called on the polling thread only,
    /// like the rebalance callbacks, so the two never race.
    fn set_paused(&self, consumer: &BaseConsumer<Self>, pause: bool) {
        self.pausing.store(pause, Ordering::SeqCst);
        if pause {
            self.ever_paused.store(true, Ordering::SeqCst);
        }
        self.apply_pause(consumer, pause);
    }

    /// After an assignment: the new partitions follow the current pause, and a pause librdkafka
    /// kept from an earlier assignment does not outlive it.
    fn carry_pause_over(&self, consumer: &BaseConsumer<Self>) {
        let pausing = self.pausing.load(Ordering::SeqCst);
        if pausing || self.ever_paused.load(Ordering::SeqCst) {
            self.apply_pause(consumer, pausing);
        }
    }

    fn apply_pause(&self, consumer: &BaseConsumer<Self>, pause: bool) {
        let result = consumer.assignment().and_then(|assignment| {
            if pause {
                consumer.pause(&assignment)
            } else {
                consumer.resume(&assignment)
            }
        });
        if let Err(error) = result {
            tracing::warn!(stage = self.stage, %error, pause, "pausing or resuming the assignment");
        }
    }
}

/// Creates the topics that are missing; ones that exist are left as they are.
pub async fn ensure_topics(common: &CommonArgs, topics: &[TopicSpec]) -> Result<(), RuntimeError> {
    let mut config = base_config(common);
    apply_user_options(&mut config, common);
    let admin: AdminClient<AuthContext> = create_client(
        &config,
        AuthContext {
            iam: common.msk_iam.clone(),
        },
        common,
    )?;
    let specs: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|topic| {
            let new = NewTopic::new(
                &topic.name,
                common.partitions,
                TopicReplication::Fixed(common.replication_factor),
            );
            if topic.compacted {
                new.set("cleanup.policy", "compact")
            } else {
                new
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics(specs.iter(), &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(RuntimeError::CreateTopic {
                    topic,
                    error: code.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// A consumer that reads assigned partitions outside the group. It reports reaching the end of a
/// partition: a compacted topic's last offsets may hold no record to read.
fn reading_consumer(
    common: &CommonArgs,
    group: String,
) -> Result<BaseConsumer<AuthContext>, RuntimeError> {
    let mut config = base_config(common);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        // It never joins the group, but librdkafka checks the user's -X settings against these.
        .set("session.timeout.ms", common.session_timeout_ms.to_string());
    apply_user_options(&mut config, common);
    create_client(
        &config,
        AuthContext {
            iam: common.msk_iam.clone(),
        },
        common,
    )
}

/// How long a just-created topic's metadata may take to show its partitions.
const METADATA_SETTLE: Duration = Duration::from_secs(30);

/// A checkpointing stage writes each checkpoint to the state partition numbered like its input's:
/// the state topic needs as many partitions as the widest input.
async fn check_state_partitions(
    common: &CommonArgs,
    state: String,
    inputs: Vec<String>,
) -> Result<(), RuntimeError> {
    let common = common.clone();
    tokio::task::spawn_blocking(move || {
        let consumer = reading_consumer(&common, format!("vigil-check-{state}"))?;
        // A topic created a moment ago (by this stage or a sibling starting beside it) can show no
        // partitions, or an error, until the metadata reaches every broker: look again for a while
        // before judging it, so that stages started together do not refuse each other's topics.
        let count = |topic: &str| -> Result<usize, RuntimeError> {
            let deadline = Instant::now() + METADATA_SETTLE;
            loop {
                let metadata = patiently(topic, "reading a topic's metadata", || {
                    consumer.fetch_metadata(Some(topic), Duration::from_secs(30))
                })?;
                let partitions: usize = metadata
                    .topics()
                    .iter()
                    .filter(|found| found.error().is_none())
                    .map(|found| found.partitions().len())
                    .sum();
                if partitions > 0 || Instant::now() >= deadline {
                    return Ok(partitions);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        };
        let state_partitions = count(&state)?;
        for input in &inputs {
            let input_partitions = count(input)?;
            if state_partitions < input_partitions {
                return Err(RuntimeError::StateTopic {
                    topic: state.clone(),
                    problem: format!(
                        "{state_partitions} partitions, fewer than the {input_partitions} of input {input}: \
                         each input partition checkpoints to the state partition of its number; \
                         add partitions to the state topic (or recreate it with {input_partitions})"
                    ),
                });
            }
        }
        Ok(())
    })
    .await
    .map_err(|error| RuntimeError::Task(error.to_string()))?
}

/// librdkafka under a [`StageLoop`]: the stage's producer and group consumer, and consumers of
/// their own to read state and recent inputs back.
pub struct KafkaBackend {
    common: CommonArgs,
    stage: &'static str,
    producer: FutureProducer<ProducerContext>,
    consumer: Arc<BaseConsumer<StageContext>>,
}

impl std::fmt::Debug for KafkaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBackend")
            .field("brokers", &self.common.brokers)
            .finish_non_exhaustive()
    }
}

impl KafkaBackend {
    /// Reads records on a blocking thread (the reading consumer blocks), handing them over as a
    /// stream; a bounded channel keeps a large state topic from piling up in memory.
    fn reading(
        &self,
        name: String,
        read: impl FnOnce(
            &BaseConsumer<AuthContext>,
            &mpsc::Sender<Result<OwnedMessage, RuntimeError>>,
        ) -> Result<(), RuntimeError>
        + Send
        + 'static,
    ) -> RecordStream {
        let (sender, receiver) = mpsc::channel(1024);
        let common = self.common.clone();
        tokio::task::spawn_blocking(move || {
            let result =
                reading_consumer(&common, name).and_then(|consumer| read(&consumer, &sender));
            if let Err(error) = result {
                let _ = sender.blocking_send(Err(error));
            }
        });
        futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        })
        .boxed()
    }
}

impl Backend for KafkaBackend {
    async fn send(
        &self,
        output: &Outgoing,
        checkpoint_of: Option<InputPosition<'_>>,
    ) -> Result<Delivery, RuntimeError> {
        let future = send(&self.producer, output, checkpoint_of).await?;
        Ok(Box::pin(async move {
            match future.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) => Err(error.to_string()),
                Err(_) => Err("the producer was dropped".to_owned()),
            }
        }))
    }

    fn store_offset(&self, topic: &str, partition: i32, offset: i64) {
        if let Err(error) = self.consumer.store_offset(topic, partition, offset) {
            // The partition was revoked meanwhile: its new owner replays from the last commit.
            tracing::debug!(%error, "offset not stored (partition no longer assigned)");
        }
    }

    fn commit(&self) {
        if let Err(error) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            // Nothing stored since the last commit is not an error worth failing for.
            tracing::debug!(%error, "commit");
        }
    }

    fn assignment(&self) -> Result<Vec<(String, i32)>, RuntimeError> {
        Ok(self
            .consumer
            .assignment()?
            .elements()
            .iter()
            .map(|element| (element.topic().to_owned(), element.partition()))
            .collect())
    }

    fn read_state(&self, topic: &str, only_partitions: Option<Vec<i32>>) -> RecordStream {
        let topic = topic.to_owned();
        self.reading(format!("vigil-restore-{topic}"), move |consumer, sender| {
            read_state(consumer, &topic, only_partitions.as_deref(), sender)
        })
    }

    fn read_inputs(&self, topic: &str, partition: i32, from: i64, to: i64) -> RecordStream {
        let topic = topic.to_owned();
        self.reading(format!("vigil-recall-{topic}"), move |consumer, sender| {
            read_inputs(consumer, &topic, partition, from, to, sender)
        })
    }

    fn begin_transaction(&self) -> Result<(), RuntimeError> {
        self.producer
            .begin_transaction()
            .map_err(|error| RuntimeError::Transaction(error.to_string()))
    }

    async fn commit_transaction(
        &self,
        positions: Vec<(String, i32, i64)>,
    ) -> Result<(), RuntimeError> {
        let producer = self.producer.clone();
        let consumer = Arc::clone(&self.consumer);
        let stage = self.stage;
        tokio::task::spawn_blocking(move || {
            let mut offsets = TopicPartitionList::new();
            for (topic, partition, next) in &positions {
                offsets.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
            }
            let metadata = consumer.group_metadata().ok_or_else(|| {
                RuntimeError::Transaction("the consumer has no group metadata".to_owned())
            })?;
            transactional(stage, "sending offsets", || {
                producer.send_offsets_to_transaction(&offsets, &metadata, TRANSACTION_CALL)
            })?;
            transactional(stage, "committing", || {
                producer.commit_transaction(TRANSACTION_CALL)
            })
        })
        .await
        .map_err(|error| RuntimeError::Task(error.to_string()))?
    }
}

/// How long one transactional call may block before it is retried.
const TRANSACTION_CALL: Duration = Duration::from_secs(10);

/// Runs a transactional call, again while librdkafka says it may be retried (a broker away, a
/// coordinator moving); any other error fails the stage, whose restart resumes from the last
/// committed transaction.
fn transactional(
    stage: &'static str,
    what: &'static str,
    call: impl Fn() -> KafkaResult<()>,
) -> Result<(), RuntimeError> {
    retrying(
        call,
        |error| matches!(error, KafkaError::Transaction(error) if error.is_retriable()),
        Duration::from_millis(100),
        |attempts, error| tracing::warn!(stage, what, attempts, %error, "transaction call retried"),
    )
    .map_err(|error| RuntimeError::Transaction(format!("{what}: {error}")))
}

/// Calls `call` until it succeeds or fails in a way `retriable` refuses, pausing `pause` between
/// attempts; `warn` hears of the first retry and of every tenth.
fn retrying<T>(
    call: impl Fn() -> KafkaResult<T>,
    retriable: impl Fn(&KafkaError) -> bool,
    pause: Duration,
    warn: impl Fn(u32, &KafkaError),
) -> KafkaResult<T> {
    let mut attempts = 0u32;
    loop {
        match call() {
            Ok(value) => return Ok(value),
            Err(error) if retriable(&error) => {
                attempts += 1;
                if attempts == 1 || attempts.is_multiple_of(10) {
                    warn(attempts, &error);
                }
                std::thread::sleep(pause);
            }
            Err(error) => return Err(error),
        }
    }
}

/// Exactly-once: registers the stage's transactional id with the broker, fencing a previous life
/// of this instance and aborting the transaction it left open.
async fn init_transactions(
    producer: &FutureProducer<ProducerContext>,
    stage: &'static str,
) -> Result<(), RuntimeError> {
    let producer = producer.clone();
    tokio::task::spawn_blocking(move || {
        transactional(stage, "initialising transactions", || {
            producer.init_transactions(TRANSACTION_CALL)
        })
    })
    .await
    .map_err(|error| RuntimeError::Task(error.to_string()))?
}

/// How long a blocking metadata call is tried again before the stage gives up: longer than any
/// broker outage a stage is meant to ride out, short of hiding a lasting misconfiguration.
const PATIENCE: Duration = Duration::from_secs(600);

/// Runs a blocking broker call again while it fails (a broker gone, a leader moving, a coordinator
/// loading), for up to [`PATIENCE`]: a stage reading state back during an outage waits it out
/// instead of failing.
fn patiently<T>(
    topic: &str,
    what: &'static str,
    call: impl Fn() -> KafkaResult<T>,
) -> Result<T, RuntimeError> {
    let started = Instant::now();
    retrying(
        call,
        |_| started.elapsed() < PATIENCE,
        Duration::from_millis(500),
        |attempts, error| {
            tracing::warn!(%topic, what, attempts, %error, "broker call failed; retrying");
        },
    )
    .map_err(RuntimeError::from)
}

/// Reads a state topic from its start to the end it had when called.
fn read_state(
    consumer: &BaseConsumer<AuthContext>,
    topic: &str,
    only_partitions: Option<&[i32]>,
    sender: &mpsc::Sender<Result<OwnedMessage, RuntimeError>>,
) -> Result<(), RuntimeError> {
    let timeout = Duration::from_secs(30);
    let metadata = patiently(topic, "reading the state topic's metadata", || {
        consumer.fetch_metadata(Some(topic), timeout)
    })?;
    let mut remaining: HashMap<i32, i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    let wanted = |id: i32| only_partitions.is_none_or(|only| only.contains(&id));
    for partition in metadata
        .topics()
        .iter()
        .flat_map(|found| found.partitions())
        .filter(|partition| wanted(partition.id()))
    {
        let (low, high) = patiently(topic, "reading the state partition's bounds", || {
            consumer.fetch_watermarks(topic, partition.id(), timeout)
        })?;
        if high > low {
            remaining.insert(partition.id(), high);
            assignment.add_partition_offset(topic, partition.id(), Offset::Offset(low))?;
        }
    }
    if remaining.is_empty() {
        return Ok(());
    }
    consumer.assign(&assignment)?;
    while !remaining.is_empty() {
        match consumer.poll(Duration::from_secs(5)) {
            Some(Ok(message)) => {
                if let Some(high) = remaining.get(&message.partition())
                    && message.offset() + 1 >= *high
                {
                    remaining.remove(&message.partition());
                }
                if sender.blocking_send(Ok(message.detach())).is_err() {
                    return Ok(());
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                remaining.remove(&partition);
            }
            Some(Err(error)) => tracing::warn!(%topic, %error, "reading state; retrying"),
            None => {
                tracing::debug!(%topic, partitions = remaining.len(), "waiting for state records")
            }
        }
    }
    Ok(())
}

/// Reads the records of one partition in `[from, to)`.
fn read_inputs(
    consumer: &BaseConsumer<AuthContext>,
    topic: &str,
    partition: i32,
    from: i64,
    to: i64,
    sender: &mpsc::Sender<Result<OwnedMessage, RuntimeError>>,
) -> Result<(), RuntimeError> {
    let (low, _) = patiently(topic, "reading the input partition's bounds", || {
        consumer.fetch_watermarks(topic, partition, Duration::from_secs(30))
    })?;
    let from = from.max(low);
    if from >= to {
        return Ok(());
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(from))?;
    consumer.assign(&assignment)?;
    loop {
        match consumer.poll(Duration::from_secs(5)) {
            Some(Ok(message)) => {
                let offset = message.offset();
                if offset >= to || sender.blocking_send(Ok(message.detach())).is_err() {
                    return Ok(());
                }
                if offset + 1 >= to {
                    return Ok(());
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(()),
            Some(Err(error)) => tracing::warn!(%topic, %error, "reading recent inputs; retrying"),
            None => tracing::debug!(%topic, partition, "waiting for recent inputs"),
        }
    }
}

/// Hands one record to the producer, waiting while its queue is full. A checkpoint goes to the
/// partition of its input and carries the input's position in its headers.
async fn send(
    producer: &FutureProducer<ProducerContext>,
    output: &Outgoing,
    checkpoint_of: Option<InputPosition<'_>>,
) -> Result<DeliveryFuture, RuntimeError> {
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&output.topic);
    if let Some(position) = checkpoint_of {
        record = record.partition(position.partition);
    }
    let headers = record_headers(output, checkpoint_of);
    record = record.headers(headers);
    if let Some(key) = &output.key {
        record = record.key(key.as_slice());
    }
    if let Some(payload) = &output.payload {
        record = record.payload(payload.as_slice());
    }
    loop {
        match producer.send_result(record) {
            Ok(future) => return Ok(future),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err((error, _)) => {
                return Err(RuntimeError::Delivery {
                    topic: output.topic.clone(),
                    error: error.to_string(),
                });
            }
        }
    }
}

/// Resolves at `deadline`; never without one.
async fn at(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// What the stage loop turns to next.
enum Next {
    Shutdown,
    CommitDue,
    Acknowledged(Acknowledgement),
    Polled(Option<Polled>),
}

/// Runs one stage until `shutdown` turns true or a delivery fails for good.
pub async fn run_stage<P: Processor>(
    processor: P,
    common: CommonArgs,
    metrics: Metrics,
    health: Arc<Health>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RuntimeError> {
    let stage = processor.stage();
    health.register();
    let mut topics = processor.output_topics();
    topics.extend(processor.input_topics().into_iter().map(|name| TopicSpec {
        name,
        compacted: false,
    }));
    ensure_topics(&common, &topics).await?;
    if let StateKeeping::Checkpoints(state) = processor.state() {
        check_state_partitions(&common, state, processor.input_topics()).await?;
    }
    let producer = stage_producer(&common, stage, &metrics)?;
    let strategy = match common.processing_guarantee {
        ProcessingGuarantee::AtLeastOnce => CommitStrategy::AtLeastOnce,
        ProcessingGuarantee::ExactlyOnce => {
            init_transactions(&producer, stage).await?;
            CommitStrategy::Transactions {
                interval: Duration::from_millis(common.transaction_interval_ms.max(1)),
            }
        }
    };
    let (to_loop, mut polled) = mpsc::channel::<Polled>(POLLED_BUFFER);
    let consumer = stage_consumer(&common, stage, &metrics, &health, to_loop.clone())?;
    let inputs = processor.input_topics();
    let input_names: Vec<&str> = inputs.iter().map(String::as_str).collect();
    consumer.subscribe(&input_names)?;
    tracing::info!(stage, inputs = ?input_names, "consuming");
    let stop_polling = Arc::new(AtomicBool::new(false));
    let poller = {
        let consumer = Arc::clone(&consumer);
        let stop = Arc::clone(&stop_polling);
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name(format!("{stage}-poll"))
            .spawn(move || poll_consumer(&consumer, &to_loop, &stop, stage, &runtime))
            .map_err(|error| RuntimeError::Task(error.to_string()))?
    };
    let limits = LoopLimits {
        max_in_flight: common.max_in_flight,
        shutdown_timeout: common.shutdown_timeout(),
    };
    let backend = KafkaBackend {
        common: common.clone(),
        stage,
        producer,
        consumer: Arc::clone(&consumer),
    };
    let mut stage_loop = StageLoop::new(processor, backend, limits, strategy, &metrics);

    loop {
        let commit_deadline = stage_loop.commit_deadline();
        let next = tokio::select! {
            biased;
            _ = shutdown.changed() => Next::Shutdown,
            () = at(commit_deadline) => Next::CommitDue,
            acknowledgement = stage_loop.next_acknowledgement(), if stage_loop.in_flight() > 0 => {
                Next::Acknowledged(acknowledgement)
            }
            received = polled.recv(), if stage_loop.has_room() => Next::Polled(received),
        };
        match next {
            Next::Shutdown => break,
            Next::CommitDue => stage_loop.on_commit_due().await?,
            Next::Acknowledged(acknowledgement) => {
                stage_loop.on_acknowledgement(acknowledgement).await?;
                // The answers already in, at once: one turn of the select per batch, not per record.
                while let Some(acknowledgement) = stage_loop.next_acknowledgement().now_or_never() {
                    stage_loop.on_acknowledgement(acknowledgement).await?;
                }
            }
            Next::Polled(Some(Polled::Message(message))) => {
                if consumer.context().rebalanced.swap(false, Ordering::SeqCst) {
                    stage_loop.on_assigned().await?;
                }
                stage_loop.on_message(&message).await?;
            }
            Next::Polled(Some(Polled::Revoking(reply))) => {
                stage_loop.on_revoking().await?;
                let _ = reply.send(());
            }
            Next::Polled(None) => {
                return Err(RuntimeError::Task(
                    "the consumer's polling thread stopped".into(),
                ));
            }
        }
    }

    health.shutting_down();
    // Stop fetching; a rebalance from here on (the consumer closing) has no loop to wait for.
    stop_polling.store(true, Ordering::SeqCst);
    if let Ok(mut to_loop) = consumer.context().to_loop.lock() {
        to_loop.take();
    }
    let backend_producer = stage_loop.backend().producer.clone();
    stage_loop.shutdown().await?;
    let _ = backend_producer.flush(Duration::from_secs(5));
    // Inputs still queued for the loop were never processed: their offsets are not stored.
    drop(polled);
    let _ = tokio::task::spawn_blocking(move || poller.join()).await;
    tracing::info!(stage, "stopped");
    Ok(())
}

/// The stage's idempotent producer: every record acknowledged by all in-sync replicas, and no
/// delivery timeout, so a broker outage is waited out rather than turned into a loss.
fn stage_producer(
    common: &CommonArgs,
    stage: &'static str,
    metrics: &Metrics,
) -> Result<FutureProducer<ProducerContext>, RuntimeError> {
    let mut config = base_config(common);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("statistics.interval.ms", "5000");
    match common.processing_guarantee {
        ProcessingGuarantee::AtLeastOnce => {
            config.set("message.timeout.ms", "0");
        }
        // A record's timeout is bounded by the transaction's (librdkafka's rule): an outage
        // longer than the transaction timeout aborts it and fails the stage, whose restart
        // resumes from the last commit.
        ProcessingGuarantee::ExactlyOnce => {
            config.set("transactional.id", common.transactional_id(stage));
        }
    }
    apply_user_options(&mut config, common);
    create_client(
        &config,
        ProducerContext {
            stage,
            metrics: metrics.clone(),
            bytes: std::sync::Mutex::new(ByteTotals::default()),
            iam: common.msk_iam.clone(),
        },
        common,
    )
}

/// The stage's group consumer: offsets stored by the loop only, committed in the background.
fn stage_consumer(
    common: &CommonArgs,
    stage: &'static str,
    metrics: &Metrics,
    health: &Arc<Health>,
    to_loop: mpsc::Sender<Polled>,
) -> Result<Arc<BaseConsumer<StageContext>>, RuntimeError> {
    let mut config = base_config(common);
    config
        .set("group.id", common.group(stage))
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Records of open or aborted transactions are never read (librdkafka's default, said).
        .set("isolation.level", "read_committed")
        // Each stage is one hop of four: librdkafka's 500 ms default wait for a fetch to fill would
        // add up to two seconds end to end when traffic is light.
        .set("fetch.wait.max.ms", "50")
        .set("statistics.interval.ms", "5000");
    match common.processing_guarantee {
        ProcessingGuarantee::AtLeastOnce => config
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000"),
        // Offsets are committed inside each transaction.
        ProcessingGuarantee::ExactlyOnce => config.set("enable.auto.commit", "false"),
    };
    match common.group_protocol {
        GroupProtocol::Classic => config
            .set("session.timeout.ms", common.session_timeout_ms.to_string())
            .set(
                "heartbeat.interval.ms",
                (common.session_timeout_ms / 4).max(100).to_string(),
            ),
        // KIP-848: the broker assigns partitions and owns the session and heartbeat settings.
        GroupProtocol::Consumer => config.set("group.protocol", "consumer"),
    };
    apply_user_options(&mut config, common);
    let context = StageContext {
        stage,
        metrics: metrics.clone(),
        health: Arc::clone(health),
        assigned: AtomicBool::new(false),
        rebalanced: AtomicBool::new(false),
        to_loop: std::sync::Mutex::new(Some(to_loop)),
        held: std::sync::Mutex::new(VecDeque::new()),
        pausing: AtomicBool::new(false),
        ever_paused: AtomicBool::new(false),
        drain_timeout: common.shutdown_timeout(),
        bytes: std::sync::Mutex::new(ByteTotals::default()),
        iam: common.msk_iam.clone(),
    };
    Ok(Arc::new(create_client(&config, context, common)?))
}

/// Messages the polling thread may hold ready for the loop.
const POLLED_BUFFER: usize = 64;

/// Room the polling thread waits for when the loop's channel is full: half of it.
const REFILL_BATCH: usize = POLLED_BUFFER / 2;

#[cfg(test)]
mod tests {
    use rdkafka::ClientConfig;
    use rdkafka::producer::BaseProducer;

    /// The settings of docs/kafka.md's managed services must be accepted by the librdkafka the
    /// binaries link: TLS, SASL/SCRAM and OAUTHBEARER need OpenSSL built in, and zstd-compressed
    /// batches (which shippers write) need zstd.
    #[test]
    fn the_linked_librdkafka_speaks_tls_scram_oauthbearer_and_zstd() {
        for (mechanism, protocol) in [
            ("SCRAM-SHA-512", "SASL_SSL"),
            ("SCRAM-SHA-256", "SASL_SSL"),
            ("PLAIN", "SASL_SSL"),
            ("OAUTHBEARER", "SASL_SSL"),
        ] {
            let created = ClientConfig::new()
                .set("bootstrap.servers", "127.0.0.1:9")
                .set("security.protocol", protocol)
                .set("sasl.mechanism", mechanism)
                .set("sasl.username", "vigil")
                .set("sasl.password", "secret")
                .set("compression.type", "zstd")
                .create::<BaseProducer>();
            assert!(
                created.is_ok(),
                "{protocol} with {mechanism}: {:?}",
                created.err()
            );
        }
        let tls = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:9")
            .set("security.protocol", "SSL")
            .create::<BaseProducer>();
        assert!(tls.is_ok(), "SSL: {:?}", tls.err());
    }
}
