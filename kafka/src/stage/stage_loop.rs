//! The stage loop as a state machine over a [`Backend`]: what happens to a consumed record, to an
//! acknowledgement, to an assignment, before a revocation and at shutdown. It owns the delivery
//! semantics; the driver in [`crate::kafka`] only feeds it what the consumer polls.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::message::{Headers, Message};

use super::backend::{Backend, InputPosition};
use super::{
    CHECKPOINT_OFFSET_HEADER, CHECKPOINT_TOPIC_HEADER, CLUSTER_HEADER, Incoming, Outgoing,
    Processor, RuntimeError, header_text,
};
use crate::metrics::Metrics;

/// For each input partition, the offset of the last input whose effects the checkpoints read back
/// hold: inputs up to it are passed over.
pub type CheckpointPositions = HashMap<(String, i32), i64>;

/// How the loop is bounded.
#[derive(Debug, Clone, Copy)]
pub struct LoopLimits {
    /// Inputs whose outputs may be unacknowledged at once (at-least-once), or inputs in one
    /// transaction (exactly-once); past it the loop takes no input, or commits.
    pub max_in_flight: usize,
    /// How long a shutdown waits for in-flight deliveries.
    pub shutdown_timeout: Duration,
}

/// How the loop makes its inputs' effects durable: the one difference between the two
/// processing guarantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitStrategy {
    /// Each input's offset is stored once every record it wrote is acknowledged (checkpoints
    /// last), and committed in the background. A crash replays from the last commit; downstream,
    /// the replay is recognised (checkpoint positions, remembered event ids, finding ids).
    AtLeastOnce,
    /// The records of the inputs consumed over `interval` (or `max_in_flight` inputs), their
    /// state and their consumed offsets are committed in one Kafka transaction. A crash aborts
    /// the open transaction; readers with `read_committed` never see its records.
    Transactions { interval: Duration },
}

/// The open transaction: what it holds so far.
#[derive(Debug)]
struct Transaction {
    started: Instant,
    inputs: usize,
    /// Per input partition, the offset to consume next.
    positions: HashMap<(String, i32), i64>,
    /// Records sent per topic, counted as written once the transaction commits.
    records: HashMap<String, u64>,
    /// The last input processed in it: the one the processor's flushed checkpoints belong to.
    last_input: Option<(String, i32, i64)>,
}

/// Where one input stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Its outputs are on their way.
    Outputs,
    /// Its checkpoints are on their way (its outputs, and those of every earlier input of its
    /// partition, are acknowledged).
    Checkpoints,
    /// Everything it wrote is acknowledged; its offset is stored once every earlier input of its
    /// partition is done too.
    Done,
}

#[derive(Debug)]
struct InFlight {
    offset: i64,
    consumed_at: Instant,
    phase: Phase,
    /// Deliveries of the current phase not yet acknowledged.
    unacknowledged: usize,
    /// Sent once this input's outputs and every earlier input's of the partition are acknowledged.
    checkpoints: Vec<Outgoing>,
}

/// One input partition's inputs in flight, in consumption order. Acknowledgements are ordered per
/// partition, not across them (offsets are per partition): a slow partition holds up no other.
#[derive(Debug)]
struct PartitionFlight {
    topic: String,
    partition: i32,
    /// Sequence number of `inputs[0]`; each input keeps its number while it is in flight.
    first: u64,
    inputs: VecDeque<InFlight>,
}

/// One record's acknowledgement, addressed to the input that wrote it.
#[derive(Debug)]
pub struct Acknowledgement {
    slot: usize,
    sequence: u64,
    topic: String,
    result: Result<(), String>,
}

/// A labelled counter per topic, looked up once: `with_label_values` hashes its labels on every call.
struct TopicCounters {
    stage: &'static str,
    family: prometheus::IntCounterVec,
    counters: Vec<(String, prometheus::IntCounter)>,
}

impl TopicCounters {
    fn new(stage: &'static str, family: &prometheus::IntCounterVec) -> Self {
        Self {
            stage,
            family: family.clone(),
            counters: Vec::new(),
        }
    }

    fn inc(&mut self, topic: &str) {
        self.add(topic, 1);
    }

    fn add(&mut self, topic: &str, count: u64) {
        if let Some((_, counter)) = self.counters.iter().find(|(name, _)| name == topic) {
            counter.inc_by(count);
            return;
        }
        let counter = self.family.with_label_values(&[self.stage, topic]);
        counter.inc_by(count);
        self.counters.push((topic.to_owned(), counter));
    }
}

/// The loop's metrics, looked up once.
struct Instruments {
    metrics: Metrics,
    in_flight: prometheus::IntGauge,
    processing: prometheus::Histogram,
    delivery: prometheus::Histogram,
    passed_over: prometheus::IntCounter,
    state_entries: prometheus::IntGauge,
    records_in: TopicCounters,
    records_out: TopicCounters,
}

/// One stage's loop: a [`Processor`] over a [`Backend`].
///
/// - `on_message` processes an input (or passes over one the restored checkpoints hold) and sends
///   its outputs; `on_acknowledgement` counts a broker's answer. An input's checkpoints are sent
///   once its outputs and every earlier input's of its partition are acknowledged; its offset is
///   stored once its checkpoints are too.
/// - `on_assigned` reads back the state of the partitions owned (after draining what is in
///   flight), and notes the new partitions whose recent inputs are recalled before their first.
/// - `on_revoking` drains and commits, so the partitions' next owner starts where this one stopped.
/// - `shutdown` drains (bounded) and commits.
pub struct StageLoop<P, B> {
    processor: P,
    backend: B,
    limits: LoopLimits,
    strategy: CommitStrategy,
    transaction: Option<Transaction>,
    instruments: Instruments,
    partitions: Vec<PartitionFlight>,
    /// Inputs in flight, across partitions.
    in_flight: usize,
    deliveries: FuturesUnordered<BoxFuture<'static, Acknowledgement>>,
    outputs: Vec<Outgoing>,
    /// Per input partition, the last offset the restored checkpoints hold. An entry goes once its
    /// partition has moved past it.
    held_by_checkpoints: CheckpointPositions,
    /// Partitions owned, and the newly assigned ones whose recent inputs are still to be recalled.
    owned: Vec<(String, i32)>,
    to_recall: Vec<(String, i32)>,
}

impl<P: Processor, B: Backend> std::fmt::Debug for StageLoop<P, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageLoop")
            .field("stage", &self.processor.stage())
            .field("in_flight", &self.in_flight)
            .field("partitions", &self.partitions.len())
            .finish_non_exhaustive()
    }
}

impl<P: Processor, B: Backend> StageLoop<P, B> {
    pub fn new(
        processor: P,
        backend: B,
        limits: LoopLimits,
        strategy: CommitStrategy,
        metrics: &Metrics,
    ) -> Self {
        let stage = processor.stage();
        let instruments = Instruments {
            metrics: metrics.clone(),
            in_flight: metrics.in_flight.with_label_values(&[stage]),
            processing: metrics.processing_timer(stage),
            delivery: metrics.delivery_seconds.with_label_values(&[stage]),
            passed_over: metrics.skipped.with_label_values(&[stage, "in_checkpoint"]),
            state_entries: metrics.state_entries.with_label_values(&[stage]),
            records_in: TopicCounters::new(stage, &metrics.records_in),
            records_out: TopicCounters::new(stage, &metrics.records_out),
        };
        Self {
            processor,
            backend,
            limits,
            strategy,
            transaction: None,
            instruments,
            partitions: Vec::new(),
            in_flight: 0,
            deliveries: FuturesUnordered::new(),
            outputs: Vec::new(),
            held_by_checkpoints: CheckpointPositions::new(),
            owned: Vec::new(),
            to_recall: Vec::new(),
        }
    }

    pub fn processor(&self) -> &P {
        &self.processor
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Inputs whose effects are not all acknowledged yet, or not committed yet.
    pub fn in_flight(&self) -> usize {
        match &self.transaction {
            Some(transaction) => transaction.inputs,
            None => self.in_flight,
        }
    }

    /// When the open transaction is due to commit.
    pub fn commit_deadline(&self) -> Option<Instant> {
        match (self.strategy, &self.transaction) {
            (CommitStrategy::Transactions { interval }, Some(transaction)) => {
                Some(transaction.started + interval)
            }
            _ => None,
        }
    }

    /// Whether the loop takes another input now (backpressure: else the driver pauses fetching).
    pub fn has_room(&self) -> bool {
        self.in_flight() < self.limits.max_in_flight
    }

    /// The next broker answer, once one arrives; pending forever while nothing is in flight.
    pub async fn next_acknowledgement(&mut self) -> Acknowledgement {
        match self.deliveries.next().await {
            Some(acknowledgement) => acknowledgement,
            None => std::future::pending().await,
        }
    }

    /// One consumed input.
    pub async fn on_message(&mut self, message: &impl Message) -> Result<(), RuntimeError> {
        let consumed_at = Instant::now();
        let input = Incoming {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key(),
            payload: message.payload().unwrap_or_default(),
            timestamp_millis: message.timestamp().to_millis(),
            cluster: header_text(message, CLUSTER_HEADER),
        };
        self.instruments.records_in.inc(input.topic);
        if let Some(index) = self
            .to_recall
            .iter()
            .position(|(topic, partition)| topic == input.topic && *partition == input.partition)
        {
            let (topic, partition) = self.to_recall.swap_remove(index);
            self.recall(&topic, partition, input.offset).await?;
        }
        // What the processor held back belongs to the last input's partition: flushed before an
        // input of another one is processed.
        let other_partition = self
            .transaction
            .as_ref()
            .and_then(|transaction| transaction.last_input.as_ref())
            .is_some_and(|(topic, partition, _)| {
                *partition != input.partition || topic != input.topic
            });
        if other_partition {
            self.flush_transaction().await?;
        }
        let slot = self.slot(input.topic, input.partition);
        let mut outputs = std::mem::take(&mut self.outputs);
        outputs.clear();
        if self.passes_over(&input) {
            // Processed before the crash, its outputs all acknowledged (a checkpoint written after
            // it was): only remembered, its offset stored in turn.
            self.processor.recall(&input);
            self.instruments.passed_over.inc();
        } else {
            let _timer = self.instruments.processing.start_timer();
            self.processor.process(&input, &mut outputs);
        }
        let result = match self.strategy {
            CommitStrategy::AtLeastOnce => {
                let records = outputs.iter().filter(|output| !output.checkpoint).count();
                let sequence = self.push(slot, input.offset, consumed_at, records);
                match self.send_outputs(slot, sequence, &mut outputs).await {
                    Ok(()) => self.advance(slot).await,
                    Err(error) => Err(error),
                }
            }
            CommitStrategy::Transactions { .. } => {
                self.send_in_transaction(&input, &mut outputs).await
            }
        };
        self.outputs = outputs;
        result?;
        self.instruments
            .state_entries
            .set(i64::try_from(self.processor.state_size()).unwrap_or(i64::MAX));
        Ok(())
    }

    /// One broker answer: a refusal stops the stage (its inputs are reprocessed after a restart,
    /// from the last commit); an acknowledgement may release checkpoints and offsets.
    pub async fn on_acknowledgement(
        &mut self,
        acknowledgement: Acknowledgement,
    ) -> Result<(), RuntimeError> {
        let Acknowledgement {
            slot,
            sequence,
            topic,
            result,
        } = acknowledgement;
        if let Err(error) = result {
            return Err(RuntimeError::Delivery { topic, error });
        }
        self.instruments.records_out.inc(&topic);
        let Some(flight) = self.partitions.get_mut(slot) else {
            return Ok(());
        };
        let index = usize::try_from(sequence.saturating_sub(flight.first)).unwrap_or(usize::MAX);
        if let Some(input) = flight.inputs.get_mut(index) {
            input.unacknowledged = input.unacknowledged.saturating_sub(1);
        }
        self.advance(slot).await
    }

    /// Partitions were assigned: finish what is in flight (its state is then all acknowledged),
    /// read back the state the partitions now owned hold, and note the new ones whose recent
    /// inputs are recalled before their first input.
    pub async fn on_assigned(&mut self) -> Result<(), RuntimeError> {
        let state = self.processor.state();
        let Some(topic) = state.topic().map(str::to_owned) else {
            return Ok(());
        };
        self.drain().await?;
        let assigned = self.backend.assignment()?;
        let only = state.per_partition().then(|| {
            let mut numbers: Vec<i32> = assigned.iter().map(|(_, partition)| *partition).collect();
            numbers.sort_unstable();
            numbers.dedup();
            numbers
        });
        if let Some(numbers) = &only {
            let processor = &mut self.processor;
            off_the_runtime(|| processor.retain_partitions(numbers));
        }
        let positions = self.restore(&topic, only).await?;
        self.held_by_checkpoints = if state.checkpoints() {
            positions
        } else {
            CheckpointPositions::new()
        };
        self.to_recall = if self.processor.recall_window() > 0 {
            assigned
                .iter()
                .filter(|partition| !self.owned.contains(partition))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        self.owned = assigned;
        Ok(())
    }

    /// Partitions are about to be taken away: everything consumed before finishes here and is
    /// committed, so the partitions' next owner starts after it.
    pub async fn on_revoking(&mut self) -> Result<(), RuntimeError> {
        self.drain().await?;
        self.commit_stored();
        Ok(())
    }

    /// The open transaction's time is up.
    pub async fn on_commit_due(&mut self) -> Result<(), RuntimeError> {
        self.commit_transaction().await
    }

    /// Waits until every input in flight is done: outputs, then the checkpoints they release,
    /// offsets stored; or commits the open transaction.
    pub async fn drain(&mut self) -> Result<(), RuntimeError> {
        self.commit_transaction().await?;
        while self.in_flight > 0 {
            let acknowledgement = self.next_acknowledgement().await;
            self.on_acknowledgement(acknowledgement).await?;
        }
        self.instruments.in_flight.set(0);
        Ok(())
    }

    /// Drains for at most the shutdown timeout, then commits what is stored. Inputs not done by
    /// then are reprocessed after a restart. Returns the processor.
    pub async fn shutdown(mut self) -> Result<P, RuntimeError> {
        let stage = self.processor.stage();
        tracing::info!(
            stage,
            in_flight = self.in_flight,
            "shutting down: draining deliveries"
        );
        match tokio::time::timeout(self.limits.shutdown_timeout, self.drain()).await {
            Ok(result) => result?,
            Err(_) => tracing::warn!(
                stage,
                in_flight = self.in_flight,
                "shutdown timeout: undelivered inputs will be reprocessed after restart"
            ),
        }
        self.commit_stored();
        Ok(self.processor)
    }

    /// Commits the stored offsets (at-least-once; a transaction commits its own).
    fn commit_stored(&self) {
        if self.strategy == CommitStrategy::AtLeastOnce {
            self.backend.commit();
        }
    }

    /// Sends an input's records in the open transaction (opening one when none is), and commits
    /// once it holds as many inputs as may be in flight.
    async fn send_in_transaction(
        &mut self,
        input: &Incoming<'_>,
        outputs: &mut Vec<Outgoing>,
    ) -> Result<(), RuntimeError> {
        if self.transaction.is_none() {
            self.backend.begin_transaction()?;
            self.transaction = Some(Transaction {
                started: Instant::now(),
                inputs: 0,
                positions: HashMap::new(),
                records: HashMap::new(),
                last_input: None,
            });
        }
        let position = InputPosition {
            topic: input.topic,
            partition: input.partition,
            offset: input.offset,
        };
        self.send_transactional(outputs, position).await?;
        let full = match self.transaction.as_mut() {
            Some(transaction) => {
                transaction
                    .positions
                    .insert((input.topic.to_owned(), input.partition), input.offset + 1);
                transaction.last_input =
                    Some((input.topic.to_owned(), input.partition, input.offset));
                transaction.inputs += 1;
                transaction.inputs >= self.limits.max_in_flight
            }
            None => false,
        };
        if full {
            self.commit_transaction().await?;
        }
        Ok(())
    }

    /// Sends records in the open transaction; a checkpoint goes with `position`. The commit
    /// stands for every acknowledgement: deliveries are not awaited one by one (a refused record
    /// fails the commit).
    async fn send_transactional(
        &mut self,
        outputs: &mut Vec<Outgoing>,
        position: InputPosition<'_>,
    ) -> Result<(), RuntimeError> {
        for output in outputs.drain(..) {
            let _delivery = self
                .backend
                .send(&output, output.checkpoint.then_some(position))
                .await?;
            if let Some(transaction) = self.transaction.as_mut() {
                *transaction.records.entry(output.topic).or_default() += 1;
            }
        }
        Ok(())
    }

    /// Sends the processor's held-back checkpoints in the open transaction, as the last input's.
    async fn flush_transaction(&mut self) -> Result<(), RuntimeError> {
        let Some((topic, partition, offset)) = self
            .transaction
            .as_ref()
            .and_then(|transaction| transaction.last_input.clone())
        else {
            return Ok(());
        };
        let mut flushed = Vec::new();
        self.processor.flush(&mut flushed);
        let position = InputPosition {
            topic: &topic,
            partition,
            offset,
        };
        self.send_transactional(&mut flushed, position).await
    }

    /// Commits the open transaction, if any, with its inputs' positions.
    async fn commit_transaction(&mut self) -> Result<(), RuntimeError> {
        self.flush_transaction().await?;
        let Some(transaction) = self.transaction.take() else {
            return Ok(());
        };
        let positions = transaction
            .positions
            .into_iter()
            .map(|((topic, partition), next)| (topic, partition, next))
            .collect();
        self.backend.commit_transaction(positions).await?;
        for (topic, count) in transaction.records {
            self.instruments.records_out.add(&topic, count);
        }
        self.instruments
            .delivery
            .observe(transaction.started.elapsed().as_secs_f64());
        Ok(())
    }

    /// The slot of an input partition, made on its first input.
    fn slot(&mut self, topic: &str, partition: i32) -> usize {
        if let Some(slot) = self
            .partitions
            .iter()
            .position(|flight| flight.partition == partition && flight.topic == topic)
        {
            return slot;
        }
        self.partitions.push(PartitionFlight {
            topic: topic.to_owned(),
            partition,
            first: 0,
            inputs: VecDeque::new(),
        });
        self.partitions.len() - 1
    }

    /// Whether the restored checkpoints already hold this input.
    fn passes_over(&mut self, input: &Incoming<'_>) -> bool {
        if self.held_by_checkpoints.is_empty() {
            return false;
        }
        let position = (input.topic.to_owned(), input.partition);
        match self.held_by_checkpoints.get(&position) {
            Some(through) if input.offset <= *through => true,
            Some(_) => {
                self.held_by_checkpoints.remove(&position);
                false
            }
            None => false,
        }
    }

    /// Queues an input whose `records` outputs are about to be sent; returns its sequence number.
    fn push(&mut self, slot: usize, offset: i64, consumed_at: Instant, records: usize) -> u64 {
        let Some(flight) = self.partitions.get_mut(slot) else {
            return 0;
        };
        flight.inputs.push_back(InFlight {
            offset,
            consumed_at,
            phase: Phase::Outputs,
            unacknowledged: records,
            checkpoints: Vec::new(),
        });
        self.in_flight += 1;
        self.instruments
            .in_flight
            .set(i64::try_from(self.in_flight).unwrap_or(i64::MAX));
        flight.first + flight.inputs.len() as u64 - 1
    }

    /// Sends an input's outputs and keeps its checkpoints with it, for later.
    async fn send_outputs(
        &mut self,
        slot: usize,
        sequence: u64,
        outputs: &mut Vec<Outgoing>,
    ) -> Result<(), RuntimeError> {
        let mut checkpoints = Vec::new();
        for output in outputs.drain(..) {
            if output.checkpoint {
                checkpoints.push(output);
                continue;
            }
            let delivery = self.backend.send(&output, None).await?;
            self.deliveries
                .push(addressed(delivery, slot, sequence, output.topic));
        }
        if let Some(input) = self
            .partitions
            .get_mut(slot)
            .and_then(|flight| flight.inputs.back_mut())
        {
            input.checkpoints = checkpoints;
        }
        Ok(())
    }

    /// Moves a partition's inputs on: the checkpoints of every input whose outputs and earlier
    /// inputs' outputs are acknowledged are sent; the leading inputs that are done are stored.
    ///
    /// A checkpoint may go before the previous input's checkpoints are acknowledged: the
    /// idempotent producer keeps a partition's records in order, so an acknowledged checkpoint
    /// means every earlier one of its partition is written too.
    async fn advance(&mut self, slot: usize) -> Result<(), RuntimeError> {
        let Some(flight) = self.partitions.get_mut(slot) else {
            return Ok(());
        };
        for (index, input) in flight.inputs.iter_mut().enumerate() {
            if input.phase == Phase::Outputs {
                if input.unacknowledged > 0 {
                    break;
                }
                let checkpoints = std::mem::take(&mut input.checkpoints);
                input.phase = Phase::Checkpoints;
                input.unacknowledged = checkpoints.len();
                let position = InputPosition {
                    topic: &flight.topic,
                    partition: flight.partition,
                    offset: input.offset,
                };
                let sequence = flight.first + index as u64;
                for checkpoint in &checkpoints {
                    let delivery = self.backend.send(checkpoint, Some(position)).await?;
                    self.deliveries.push(addressed(
                        delivery,
                        slot,
                        sequence,
                        checkpoint.topic.clone(),
                    ));
                }
            }
            if input.phase == Phase::Checkpoints && input.unacknowledged == 0 {
                input.phase = Phase::Done;
            }
        }
        let mut stored = None;
        while flight
            .inputs
            .front()
            .is_some_and(|input| input.phase == Phase::Done)
        {
            if let Some(input) = flight.inputs.pop_front() {
                flight.first += 1;
                self.in_flight -= 1;
                self.instruments
                    .delivery
                    .observe(input.consumed_at.elapsed().as_secs_f64());
                stored = Some(input.offset);
            }
        }
        if let Some(offset) = stored {
            self.backend
                .store_offset(&flight.topic, flight.partition, offset);
            self.instruments
                .in_flight
                .set(i64::try_from(self.in_flight).unwrap_or(i64::MAX));
        }
        Ok(())
    }

    /// Reads the state topic back into the processor; returns the input positions its checkpoints
    /// hold.
    async fn restore(
        &mut self,
        topic: &str,
        only: Option<Vec<i32>>,
    ) -> Result<CheckpointPositions, RuntimeError> {
        let stage = self.processor.stage();
        let started = Instant::now();
        let mut records = self
            .backend
            .read_state(topic, only)
            .ready_chunks(RESTORE_CHUNK);
        let mut positions = CheckpointPositions::new();
        let (mut kept, mut dropped) = (0u64, 0u64);
        while let Some(chunk) = records.next().await {
            let chunk = chunk.into_iter().collect::<Result<Vec<_>, _>>()?;
            let processor = &mut self.processor;
            let restored = off_the_runtime(|| restore_records(processor, topic, &chunk));
            kept += restored.kept;
            dropped += restored.dropped;
            for record in &chunk {
                if let Some((input, offset)) = checkpoint_position(record) {
                    let held = positions
                        .entry((input, record.partition()))
                        .or_insert(offset);
                    *held = (*held).max(offset);
                }
            }
        }
        for (result, count) in [("restored", kept), ("dropped", dropped)] {
            self.instruments
                .metrics
                .state_restored
                .with_label_values(&[stage, result])
                .inc_by(count);
        }
        tracing::info!(
            stage,
            restored = kept,
            dropped,
            checkpointed_partitions = positions.len(),
            seconds = started.elapsed().as_secs_f64(),
            "state read back"
        );
        Ok(positions)
    }

    /// Hands the inputs of a partition just assigned that come before `to` (up to the processor's
    /// recall window) to [`Processor::recall`].
    async fn recall(&mut self, topic: &str, partition: i32, to: i64) -> Result<(), RuntimeError> {
        let stage = self.processor.stage();
        let started = Instant::now();
        let window = i64::try_from(self.processor.recall_window()).unwrap_or(i64::MAX);
        let from = to.saturating_sub(window);
        let mut records = self
            .backend
            .read_inputs(topic, partition, from, to)
            .ready_chunks(RESTORE_CHUNK);
        let mut recalled = 0u64;
        while let Some(chunk) = records.next().await {
            let chunk = chunk.into_iter().collect::<Result<Vec<_>, _>>()?;
            let processor = &mut self.processor;
            off_the_runtime(|| {
                for record in chunk.iter().filter(|record| record.offset() < to) {
                    processor.recall(&Incoming {
                        topic,
                        partition,
                        offset: record.offset(),
                        key: record.key(),
                        payload: record.payload().unwrap_or_default(),
                        timestamp_millis: record.timestamp().to_millis(),
                        cluster: header_text(record, CLUSTER_HEADER),
                    });
                    recalled += 1;
                }
            });
        }
        tracing::info!(
            stage,
            partition,
            before = to,
            recalled,
            seconds = started.elapsed().as_secs_f64(),
            "recent inputs recalled"
        );
        Ok(())
    }
}

/// State records (and recalled inputs) decoded per turn: decoding is CPU work, done off the async
/// workers in chunks.
const RESTORE_CHUNK: usize = 512;

/// State entries read back: kept, and dropped because they no longer decode.
#[derive(Debug, Default, Clone, Copy)]
struct Restored {
    kept: u64,
    dropped: u64,
}

/// Hands state records to the processor.
fn restore_records<P: Processor>(
    processor: &mut P,
    topic: &str,
    records: &[rdkafka::message::OwnedMessage],
) -> Restored {
    let mut restored = Restored::default();
    for record in records {
        let key = record.key().unwrap_or_default();
        if processor.restore(record.partition(), key, record.payload()) {
            restored.kept += 1;
        } else {
            restored.dropped += 1;
            tracing::warn!(
                %topic,
                partition = record.partition(),
                offset = record.offset(),
                key = %String::from_utf8_lossy(key),
                "a state entry no longer decodes; dropped (it is relearned)"
            );
        }
    }
    restored
}

/// Runs CPU-bound work where it blocks no async worker: on a multi-threaded runtime the worker
/// hands its other tasks over first (a large state read back must not starve the other stages of
/// `vigil run`, nor the timers the consumer thread waits on); elsewhere (unit tests) in place.
fn off_the_runtime<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

fn addressed(
    delivery: super::backend::Delivery,
    slot: usize,
    sequence: u64,
    topic: String,
) -> BoxFuture<'static, Acknowledgement> {
    Box::pin(async move {
        Acknowledgement {
            slot,
            sequence,
            topic,
            result: delivery.await,
        }
    })
}

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
