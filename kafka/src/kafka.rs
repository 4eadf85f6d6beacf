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

use futures::StreamExt;
use futures::stream::FuturesOrdered;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};

use crate::args::CommonArgs;
use crate::http::Health;
use crate::metrics::Metrics;

/// One consumed record, as a processor sees it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
    /// The record's timestamp (create or log-append time) in milliseconds, when it has one: the
    /// time of an event that carries none of its own.
    pub timestamp_millis: Option<i64>,
}

/// One record to produce. A `None` payload is a tombstone (deletes the key of a compacted topic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(&'static str, Vec<u8>)>,
    /// A checkpoint of the stage's state (see [`StateKeeping::Checkpoints`]): written to the state
    /// topic's partition numbered like the input's, with the input's position in its headers, and
    /// only once every other output of this input and of every input consumed before it is
    /// acknowledged.
    pub checkpoint: bool,
}

impl Outgoing {
    pub fn new(topic: &str, key: impl Into<Vec<u8>>, payload: Vec<u8>) -> Self {
        Self {
            topic: topic.to_owned(),
            key: Some(key.into()),
            payload: Some(payload),
            headers: Vec::new(),
            checkpoint: false,
        }
    }

    /// A checkpointed state entry; `None` deletes the key.
    pub fn checkpoint(topic: &str, key: impl Into<Vec<u8>>, payload: Option<Vec<u8>>) -> Self {
        Self {
            topic: topic.to_owned(),
            key: Some(key.into()),
            payload,
            headers: Vec::new(),
            checkpoint: true,
        }
    }
}

/// Headers of a checkpoint: the input topic and offset whose processing wrote it (the partition is
/// the checkpoint's own).
pub const CHECKPOINT_TOPIC_HEADER: &str = "vigil.input.topic";
pub const CHECKPOINT_OFFSET_HEADER: &str = "vigil.input.offset";

/// A topic a stage writes, created when missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    /// `cleanup.policy=compact`: state and latest-value topics.
    pub compacted: bool,
}

/// How a stage keeps its state, and so what the runtime reads back before consuming and after
/// every assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateKeeping {
    /// No state.
    Stateless,
    /// A compacted topic every instance reads whole (enrich's inventory, learned from every
    /// partition's events).
    Shared(String),
    /// A compacted topic keyed like the input, with as many partitions (publish's findings, keyed
    /// by finding id like the detections): only the state partitions numbered like the assigned
    /// input partitions are read back.
    FollowsInput(String),
    /// Checkpoints ([`Outgoing::checkpoint`]), each in the state partition numbered like its
    /// input's. Then a partition's checkpoints are a prefix of its inputs' effects, in order: once
    /// one is acknowledged, so is every output of every input up to the one that wrote it. So after
    /// an assignment the runtime reads back only the state of the assigned partitions, and passes
    /// over the inputs that state already holds (a replay after a crash, between the last commit
    /// and the last checkpoint): they are neither processed twice nor, their outputs being
    /// acknowledged, lost. The state topic needs at least as many partitions as the input (checked
    /// at start).
    Checkpoints(String),
}

impl StateKeeping {
    /// The state topic, if any.
    pub fn topic(&self) -> Option<&str> {
        match self {
            Self::Stateless => None,
            Self::Shared(topic) | Self::FollowsInput(topic) | Self::Checkpoints(topic) => {
                Some(topic)
            }
        }
    }

    /// Only the assigned partitions' state is read back.
    pub fn per_partition(&self) -> bool {
        matches!(self, Self::FollowsInput(_) | Self::Checkpoints(_))
    }

    pub fn checkpoints(&self) -> bool {
        matches!(self, Self::Checkpoints(_))
    }
}

/// A stage's logic, free of Kafka types beyond plain records.
pub trait Processor: Send + 'static {
    /// `ingest`, `enrich`, `detect`, `publish`: the `stage` metrics label.
    fn stage(&self) -> &'static str;
    fn input_topics(&self) -> Vec<String>;
    /// Every topic the stage writes (outputs, dead letters, state).
    fn output_topics(&self) -> Vec<TopicSpec>;
    /// How the stage keeps its state.
    fn state(&self) -> StateKeeping {
        StateKeeping::Stateless
    }
    /// One checkpointed record read back from the state partition `partition` (`None`: a
    /// tombstone). False when it no longer decodes (written by an incompatible version): dropped,
    /// and counted as `vigil_state_restored_total{result="dropped"}`.
    fn restore(&mut self, _partition: i32, _key: &[u8], _value: Option<&[u8]>) -> bool {
        true
    }
    /// Drops the state of every partition not in `assigned`, before the state of the partitions
    /// just assigned is read back: what another instance owned meanwhile is stale here.
    fn retain_partitions(&mut self, _assigned: &[i32]) {}
    /// How many inputs before where a newly assigned partition resumes are handed to
    /// [`Processor::recall`] (0: none).
    fn recall_window(&self) -> usize {
        0
    }
    /// An input already processed (before this instance owned the partition, or before a restart,
    /// or held by the restored checkpoints): seen again only to rebuild the memory of recent inputs
    /// (detect's guard against the duplicates an upstream stage's replay writes). No outputs.
    fn recall(&mut self, _input: &Incoming<'_>) {}
    /// Entries of state held, for the `vigil_state_entries` gauge.
    fn state_size(&self) -> usize {
        0
    }
    /// Turns one input into outputs. Must not fail: bad input becomes a dead-letter output.
    fn process(&mut self, input: &Incoming<'_>, out: &mut Vec<Outgoing>);
}

/// A dead letter: the original bytes and key, with where they came from and why in the headers.
pub fn dead_letter(
    topic: &str,
    stage: &str,
    input: &Incoming<'_>,
    reason: &str,
    detail: &str,
) -> Outgoing {
    let detail: String = detail.chars().take(1000).collect();
    Outgoing {
        topic: topic.to_owned(),
        key: input.key.map(<[u8]>::to_vec),
        payload: Some(input.payload.to_vec()),
        checkpoint: false,
        headers: vec![
            ("vigil.stage", stage.as_bytes().to_vec()),
            ("vigil.reason", reason.as_bytes().to_vec()),
            ("vigil.detail", detail.into_bytes()),
            ("vigil.source.topic", input.topic.as_bytes().to_vec()),
            (
                "vigil.source.partition",
                input.partition.to_string().into_bytes(),
            ),
            ("vigil.source.offset", input.offset.to_string().into_bytes()),
        ],
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("creating topic {topic}: {error}")]
    CreateTopic { topic: String, error: String },
    #[error(
        "delivery to {topic} failed: {error}; inputs from the last commit on will be reprocessed after a restart"
    )]
    Delivery { topic: String, error: String },
    #[error("a stage task failed: {0}")]
    Task(String),
    #[error("state topic {topic}: {problem}")]
    StateTopic { topic: String, problem: String },
}

fn base_config(common: &CommonArgs) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &common.brokers);
    config
}

/// The user's `-X` settings go last: they win over Vigil's defaults.
fn apply_user_options(config: &mut ClientConfig, common: &CommonArgs) {
    for (key, value) in &common.kafka_options {
        config.set(key, value);
    }
}

/// What the polling thread hands the stage loop.
enum Polled {
    Message(OwnedMessage),
    /// The group is about to take partitions away: drain, store, commit, then answer.
    Revoking(std::sync::mpsc::SyncSender<()>),
}

/// Cumulative librdkafka byte counters last seen, to turn them into counter increments.
#[derive(Debug, Default)]
struct ByteTotals {
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
                // instance beyond the partition count is a healthy standby.
                let now = matches!(rebalance, Rebalance::Assign(_));
                let partitions = consumer
                    .assignment()
                    .map(|assignment| assignment.count())
                    .unwrap_or(0);
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
}

impl ClientContext for ProducerContext {
    fn stats(&self, statistics: Statistics) {
        self.metrics
            .producer_queue
            .with_label_values(&[self.stage])
            .set(i64::try_from(statistics.msg_cnt).unwrap_or(i64::MAX));
        record_statistics(
            &self.metrics,
            self.stage,
            "producer",
            &statistics,
            &self.bytes,
        );
    }
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
        let room = if may_wait {
            runtime.block_on(async {
                tokio::time::timeout(PAUSE_AFTER, to_loop.reserve())
                    .await
                    .map(|reserved| reserved.ok())
                    .map_err(drop)
            })
        } else {
            Err(())
        };
        match room {
            Ok(Some(permit)) => permit.send(message),
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
    let admin: AdminClient<DefaultClientContext> = config.create()?;
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

/// For each input partition, the offset of the last input whose effects the checkpoints read back
/// hold: inputs up to it are passed over.
pub type CheckpointPositions = HashMap<(String, i32), i64>;

/// The input position a checkpoint carries in its headers.
fn checkpoint_position(message: &impl Message) -> Option<(String, i64)> {
    let headers = message.headers()?;
    let mut topic = None;
    let mut offset = None;
    for header in headers.iter() {
        match header.key {
            CHECKPOINT_TOPIC_HEADER => {
                topic = header.value.and_then(|v| std::str::from_utf8(v).ok())
            }
            CHECKPOINT_OFFSET_HEADER => {
                offset = header
                    .value
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse::<i64>().ok());
            }
            _ => {}
        }
    }
    Some((topic?.to_owned(), offset?))
}

/// A consumer that reads assigned partitions outside the group. It reports reaching the end of a
/// partition: a compacted topic's last offsets may hold no record to read.
fn reading_consumer(common: &CommonArgs, group: String) -> Result<BaseConsumer, RuntimeError> {
    let mut config = base_config(common);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        // It never joins the group, but librdkafka checks the user's -X settings against these.
        .set("session.timeout.ms", common.session_timeout_ms.to_string());
    apply_user_options(&mut config, common);
    Ok(config.create()?)
}

/// Reads a state topic from its start to the end it had when called, handing each record over,
/// and returns how many were read and the input positions the checkpoints among them hold.
/// State entries read back: kept, and dropped because they no longer decode.
#[derive(Debug, Default, Clone, Copy)]
struct Restored {
    kept: u64,
    dropped: u64,
}

fn restore_state<P: Processor>(
    common: &CommonArgs,
    topic: &str,
    only_partitions: Option<&[i32]>,
    processor: &mut P,
) -> Result<(Restored, CheckpointPositions), RuntimeError> {
    let consumer = reading_consumer(common, format!("vigil-restore-{topic}"))?;
    let timeout = Duration::from_secs(30);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut remaining: HashMap<i32, i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    let mut positions = CheckpointPositions::new();
    let wanted = |id: i32| only_partitions.is_none_or(|only| only.contains(&id));
    for partition in metadata
        .topics()
        .iter()
        .flat_map(|found| found.partitions())
        .filter(|partition| wanted(partition.id()))
    {
        let (low, high) = consumer.fetch_watermarks(topic, partition.id(), timeout)?;
        if high > low {
            remaining.insert(partition.id(), high);
            assignment.add_partition_offset(topic, partition.id(), Offset::Offset(low))?;
        }
    }
    if remaining.is_empty() {
        return Ok((Restored::default(), positions));
    }
    consumer.assign(&assignment)?;
    let mut restored = Restored::default();
    while !remaining.is_empty() {
        match consumer.poll(Duration::from_secs(5)) {
            Some(Ok(message)) => {
                let key = message.key().unwrap_or_default();
                if processor.restore(message.partition(), key, message.payload()) {
                    restored.kept += 1;
                } else {
                    restored.dropped += 1;
                    tracing::warn!(
                        %topic,
                        partition = message.partition(),
                        offset = message.offset(),
                        key = %String::from_utf8_lossy(key),
                        "a state entry no longer decodes; dropped (it is relearned)"
                    );
                }
                if let Some((input, offset)) = checkpoint_position(&message) {
                    let held = positions
                        .entry((input, message.partition()))
                        .or_insert(offset);
                    *held = (*held).max(offset);
                }
                if let Some(high) = remaining.get(&message.partition())
                    && message.offset() + 1 >= *high
                {
                    remaining.remove(&message.partition());
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
    Ok((restored, positions))
}

/// Hands the inputs of `partition` in `[from, to)` to [`Processor::recall`].
fn recall_inputs<P: Processor>(
    common: &CommonArgs,
    topic: &str,
    partition: i32,
    to: i64,
    processor: &mut P,
) -> Result<u64, RuntimeError> {
    let window = i64::try_from(processor.recall_window()).unwrap_or(i64::MAX);
    let consumer = reading_consumer(common, format!("vigil-recall-{topic}"))?;
    let (low, _) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(30))?;
    let from = to.saturating_sub(window).max(low);
    if from >= to {
        return Ok(0);
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(from))?;
    consumer.assign(&assignment)?;
    let mut recalled = 0u64;
    loop {
        match consumer.poll(Duration::from_secs(5)) {
            Some(Ok(message)) => {
                if message.offset() >= to {
                    break;
                }
                processor.recall(&Incoming {
                    topic,
                    partition,
                    offset: message.offset(),
                    key: message.key(),
                    payload: message.payload().unwrap_or_default(),
                    timestamp_millis: message.timestamp().to_millis(),
                });
                recalled += 1;
                if message.offset() + 1 >= to {
                    break;
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(error)) => tracing::warn!(%topic, %error, "reading recent inputs; retrying"),
            None => tracing::debug!(%topic, partition, "waiting for recent inputs"),
        }
    }
    Ok(recalled)
}

/// Reads state back on a blocking thread (the reading consumer blocks) and hands the processor back.
async fn restore_processor<P: Processor>(
    mut processor: P,
    common: &CommonArgs,
    metrics: &Metrics,
    only_partitions: Option<Vec<i32>>,
) -> Result<(P, CheckpointPositions), RuntimeError> {
    let Some(topic) = processor.state().topic().map(str::to_owned) else {
        return Ok((processor, CheckpointPositions::new()));
    };
    let stage = processor.stage();
    let started = Instant::now();
    let common = common.clone();
    let (restored, processor) = tokio::task::spawn_blocking(move || {
        if let Some(assigned) = &only_partitions {
            processor.retain_partitions(assigned);
        }
        let restored = restore_state(&common, &topic, only_partitions.as_deref(), &mut processor);
        (restored, processor)
    })
    .await
    .map_err(|error| RuntimeError::Task(error.to_string()))?;
    let (restored, positions) = restored?;
    for (result, count) in [("restored", restored.kept), ("dropped", restored.dropped)] {
        metrics
            .state_restored
            .with_label_values(&[stage, result])
            .inc_by(count);
    }
    tracing::info!(
        stage,
        restored = restored.kept,
        dropped = restored.dropped,
        checkpointed_partitions = positions.len(),
        seconds = started.elapsed().as_secs_f64(),
        "state read back"
    );
    Ok((processor, positions))
}

/// Recalls the inputs before `to` of a partition just assigned, on a blocking thread.
async fn recall_processor<P: Processor>(
    mut processor: P,
    common: &CommonArgs,
    topic: String,
    partition: i32,
    to: i64,
) -> Result<P, RuntimeError> {
    let stage = processor.stage();
    let started = Instant::now();
    let common = common.clone();
    let (recalled, processor) = tokio::task::spawn_blocking(move || {
        let recalled = recall_inputs(&common, &topic, partition, to, &mut processor);
        (recalled, processor)
    })
    .await
    .map_err(|error| RuntimeError::Task(error.to_string()))?;
    let recalled = recalled?;
    tracing::info!(
        stage,
        partition,
        before = to,
        recalled,
        seconds = started.elapsed().as_secs_f64(),
        "recent inputs recalled"
    );
    Ok(processor)
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
                let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(30))?;
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

type DeliveryResults = Vec<(String, Result<(), String>)>;

/// A labelled counter per topic, looked up once: `with_label_values` hashes its labels on every call.
struct TopicCounters {
    stage: &'static str,
    family: prometheus::IntCounterVec,
    counters: std::sync::Mutex<Vec<(String, prometheus::IntCounter)>>,
}

impl TopicCounters {
    fn new(stage: &'static str, family: &prometheus::IntCounterVec) -> Self {
        Self {
            stage,
            family: family.clone(),
            counters: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn inc(&self, topic: &str) {
        let mut counters = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, counter)) = counters.iter().find(|(name, _)| name == topic) {
            counter.inc();
            return;
        }
        let counter = self.family.with_label_values(&[self.stage, topic]);
        counter.inc();
        counters.push((topic.to_owned(), counter));
    }
}

struct Pending {
    topic: String,
    partition: i32,
    offset: i64,
    consumed_at: Instant,
    /// Sent once the other outputs of this input and of every earlier one are acknowledged.
    checkpoints: Vec<Outgoing>,
}

/// An input's records on their way: resolves once the broker has answered for each.
type Delivering = futures::future::BoxFuture<'static, (Pending, DeliveryResults)>;

fn delivering(pending: Pending, deliveries: Vec<(String, DeliveryFuture)>) -> Delivering {
    Box::pin(async move {
        let mut results = Vec::with_capacity(deliveries.len());
        for (topic, future) in deliveries {
            let result = match future.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) => Err(error.to_string()),
                Err(_) => Err("the producer was dropped".to_owned()),
            };
            results.push((topic, result));
        }
        (pending, results)
    })
}

/// Hands one record to the producer, waiting while its queue is full. A checkpoint goes to the
/// partition of `position` and carries it in its headers.
async fn send(
    producer: &FutureProducer<ProducerContext>,
    output: &Outgoing,
    position: Option<(&str, i32, i64)>,
) -> Result<(String, DeliveryFuture), RuntimeError> {
    let mut headers = output
        .headers
        .iter()
        .fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value),
            })
        });
    let offset_text;
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&output.topic);
    if let Some((topic, partition, offset)) = position {
        offset_text = offset.to_string();
        headers = headers
            .insert(Header {
                key: CHECKPOINT_TOPIC_HEADER,
                value: Some(topic),
            })
            .insert(Header {
                key: CHECKPOINT_OFFSET_HEADER,
                value: Some(&offset_text),
            });
        record = record.partition(partition);
    }
    record = record.headers(headers);
    if let Some(key) = &output.key {
        record = record.key(key.as_slice());
    }
    if let Some(payload) = &output.payload {
        record = record.payload(payload.as_slice());
    }
    loop {
        match producer.send_result(record) {
            Ok(future) => return Ok((output.topic.clone(), future)),
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

/// Sends an input's checkpoints, its other outputs being acknowledged.
async fn send_checkpoints(
    producer: &FutureProducer<ProducerContext>,
    mut pending: Pending,
) -> Result<Delivering, RuntimeError> {
    let checkpoints = std::mem::take(&mut pending.checkpoints);
    let mut deliveries = Vec::with_capacity(checkpoints.len());
    for checkpoint in &checkpoints {
        let position = (pending.topic.as_str(), pending.partition, pending.offset);
        deliveries.push(send(producer, checkpoint, Some(position)).await?);
    }
    Ok(delivering(pending, deliveries))
}

/// Runs one stage until `shutdown` turns true or a delivery fails for good.
pub async fn run_stage<P: Processor>(
    mut processor: P,
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

    let mut producer_config = base_config(&common);
    producer_config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "0")
        .set("statistics.interval.ms", "5000");
    apply_user_options(&mut producer_config, &common);
    let producer: FutureProducer<ProducerContext> =
        producer_config.create_with_context(ProducerContext {
            stage,
            metrics: metrics.clone(),
            bytes: std::sync::Mutex::new(ByteTotals::default()),
        })?;

    let mut consumer_config = base_config(&common);
    consumer_config
        .set(
            "group.id",
            common
                .group_id
                .clone()
                .unwrap_or_else(|| format!("vigil-{stage}")),
        )
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Each stage is one hop of four: librdkafka's 500 ms default wait for a fetch to fill would
        // add up to two seconds end to end when traffic is light.
        .set("fetch.wait.max.ms", "50")
        .set("session.timeout.ms", common.session_timeout_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (common.session_timeout_ms / 4).max(100).to_string(),
        )
        .set("statistics.interval.ms", "5000");
    apply_user_options(&mut consumer_config, &common);
    let (to_loop, mut polled) = mpsc::channel::<Polled>(POLLED_BUFFER);
    let context = StageContext {
        stage,
        metrics: metrics.clone(),
        health: Arc::clone(&health),
        assigned: AtomicBool::new(false),
        rebalanced: AtomicBool::new(false),
        to_loop: std::sync::Mutex::new(Some(to_loop.clone())),
        held: std::sync::Mutex::new(VecDeque::new()),
        pausing: AtomicBool::new(false),
        ever_paused: AtomicBool::new(false),
        drain_timeout: common.shutdown_timeout(),
        bytes: std::sync::Mutex::new(ByteTotals::default()),
    };
    let consumer: Arc<BaseConsumer<StageContext>> =
        Arc::new(consumer_config.create_with_context(context)?);
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

    let in_flight_gauge = metrics.in_flight.with_label_values(&[stage]);
    let processing = metrics.processing_timer(stage);
    let delivery = metrics.delivery_seconds.with_label_values(&[stage]);
    let passed_over = metrics.skipped.with_label_values(&[stage, "in_checkpoint"]);
    // Inputs whose outputs are on their way, then (checkpointing stages) their checkpoints: both in
    // consumption order, so a checkpoint is sent only after every earlier output is acknowledged.
    let mut outputs_in_flight: FuturesOrdered<Delivering> = FuturesOrdered::new();
    let mut checkpoints_in_flight: FuturesOrdered<Delivering> = FuturesOrdered::new();
    let mut outputs: Vec<Outgoing> = Vec::new();
    // Per input partition, the last offset the restored checkpoints hold: inputs up to it are
    // passed over. An entry goes once its partition has moved past it.
    let mut held_by_checkpoints = CheckpointPositions::new();
    // Partitions owned, and the newly assigned ones whose recent inputs are still to be recalled.
    let mut owned: Vec<(String, i32)> = Vec::new();
    let mut to_recall: Vec<(String, i32)> = Vec::new();

    let records_in = TopicCounters::new(stage, &metrics.records_in);
    let records_out = TopicCounters::new(stage, &metrics.records_out);
    let state_entries = metrics.state_entries.with_label_values(&[stage]);
    let acknowledged = |results: DeliveryResults| -> Result<(), RuntimeError> {
        for (topic, result) in results {
            match result {
                Ok(()) => records_out.inc(&topic),
                Err(error) => return Err(RuntimeError::Delivery { topic, error }),
            }
        }
        Ok(())
    };
    let store = |pending: &Pending| {
        delivery.observe(pending.consumed_at.elapsed().as_secs_f64());
        match consumer.store_offset(&pending.topic, pending.partition, pending.offset) {
            Ok(()) => {}
            // The partition was revoked meanwhile: its new owner replays from the last commit.
            Err(error) => {
                tracing::debug!(stage, %error, "offset not stored (partition no longer assigned)")
            }
        }
    };
    // Waits for everything in flight: outputs, then the checkpoints they release, offsets stored.
    macro_rules! drain {
        () => {
            while let Some((pending, results)) = outputs_in_flight.next().await {
                acknowledged(results)?;
                checkpoints_in_flight.push_back(send_checkpoints(&producer, pending).await?);
            }
            while let Some((pending, results)) = checkpoints_in_flight.next().await {
                acknowledged(results)?;
                store(&pending);
            }
        };
    }

    loop {
        let in_flight = outputs_in_flight.len() + checkpoints_in_flight.len();
        in_flight_gauge.set(i64::try_from(in_flight).unwrap_or(i64::MAX));
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            Some((pending, results)) = checkpoints_in_flight.next(), if !checkpoints_in_flight.is_empty() => {
                acknowledged(results)?;
                store(&pending);
            }
            Some((pending, results)) = outputs_in_flight.next(), if !outputs_in_flight.is_empty() => {
                acknowledged(results)?;
                checkpoints_in_flight.push_back(send_checkpoints(&producer, pending).await?);
            }
            received = polled.recv(), if in_flight < common.max_in_flight => {
                let message = match received {
                    Some(Polled::Message(message)) => message,
                    Some(Polled::Revoking(reply)) => {
                        // Everything consumed before the revocation finishes here and is committed,
                        // so the partitions' next owner starts after it.
                        drain!();
                        if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
                            tracing::debug!(stage, %error, "commit before revocation");
                        }
                        let _ = reply.send(());
                        continue;
                    }
                    None => {
                        return Err(RuntimeError::Task("the consumer's polling thread stopped".into()));
                    }
                };
                // Newly assigned partitions: finish what is in flight (its state is then all
                // acknowledged), read back the state those partitions own, then go on.
                if consumer.context().rebalanced.swap(false, Ordering::SeqCst) && processor.state().topic().is_some() {
                    drain!();
                    let assigned: Vec<(String, i32)> = consumer
                        .assignment()?
                        .elements()
                        .iter()
                        .map(|element| (element.topic().to_owned(), element.partition()))
                        .collect();
                    let only = if processor.state().per_partition() {
                        let mut numbers: Vec<i32> = assigned.iter().map(|(_, partition)| *partition).collect();
                        numbers.sort_unstable();
                        numbers.dedup();
                        Some(numbers)
                    } else {
                        None
                    };
                    let (restored, positions) = restore_processor(processor, &common, &metrics, only).await?;
                    processor = restored;
                    held_by_checkpoints = if processor.state().checkpoints() { positions } else { CheckpointPositions::new() };
                    to_recall = if processor.recall_window() > 0 {
                        assigned.iter().filter(|partition| !owned.contains(partition)).cloned().collect()
                    } else {
                        Vec::new()
                    };
                    owned = assigned;
                }
                let consumed_at = Instant::now();
                let input = Incoming {
                    topic: message.topic(),
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key(),
                    payload: message.payload().unwrap_or_default(),
                    timestamp_millis: message.timestamp().to_millis(),
                };
                records_in.inc(input.topic);
                if let Some(index) = to_recall
                    .iter()
                    .position(|(topic, partition)| topic == input.topic && *partition == input.partition)
                {
                    let (topic, partition) = to_recall.swap_remove(index);
                    processor = recall_processor(processor, &common, topic, partition, input.offset).await?;
                }
                let mut pending = Pending {
                    topic: input.topic.to_owned(),
                    partition: input.partition,
                    offset: input.offset,
                    consumed_at,
                    checkpoints: Vec::new(),
                };
                if !held_by_checkpoints.is_empty() {
                    let position = (pending.topic.clone(), pending.partition);
                    match held_by_checkpoints.get(&position) {
                        Some(through) if input.offset <= *through => {
                            // Processed before the crash, its outputs all acknowledged (a checkpoint
                            // written after it was): only remembered, its offset stored in turn.
                            processor.recall(&input);
                            passed_over.inc();
                            outputs_in_flight.push_back(delivering(pending, Vec::new()));
                            continue;
                        }
                        Some(_) => {
                            held_by_checkpoints.remove(&position);
                        }
                        None => {}
                    }
                }
                outputs.clear();
                {
                    let _timer = processing.start_timer();
                    processor.process(&input, &mut outputs);
                }
                let mut deliveries = Vec::with_capacity(outputs.len());
                for output in outputs.drain(..) {
                    if output.checkpoint {
                        pending.checkpoints.push(output);
                    } else {
                        deliveries.push(send(&producer, &output, None).await?);
                    }
                }
                outputs_in_flight.push_back(delivering(pending, deliveries));
                state_entries.set(i64::try_from(processor.state_size()).unwrap_or(i64::MAX));
            }
        }
    }

    health.shutting_down();
    // Stop fetching; a rebalance from here on (the consumer closing) has no loop to wait for.
    stop_polling.store(true, Ordering::SeqCst);
    if let Ok(mut to_loop) = consumer.context().to_loop.lock() {
        to_loop.take();
    }
    tracing::info!(
        stage,
        in_flight = outputs_in_flight.len() + checkpoints_in_flight.len(),
        "shutting down: draining deliveries"
    );
    let drained = tokio::time::timeout(common.shutdown_timeout(), async {
        drain!();
        Ok::<(), RuntimeError>(())
    })
    .await;
    match drained {
        Ok(result) => result?,
        Err(_) => tracing::warn!(
            stage,
            "shutdown timeout: undelivered inputs will be reprocessed after restart"
        ),
    }
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        // Nothing stored since the last commit is not an error worth failing the exit for.
        tracing::debug!(stage, %error, "final commit");
    }
    let _ = producer.flush(Duration::from_secs(5));
    // Inputs still queued for the loop were never processed: their offsets are not stored.
    drop(polled);
    let _ = tokio::task::spawn_blocking(move || poller.join()).await;
    tracing::info!(stage, "stopped");
    Ok(())
}

/// Messages the polling thread may hold ready for the loop.
const POLLED_BUFFER: usize = 64;
