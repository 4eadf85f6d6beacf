//! The stage loop's delivery semantics on the in-memory backend: when an offset is stored, when a
//! checkpoint goes, what a restart reads back and passes over, what a revocation and a shutdown
//! leave committed.

use std::time::Duration;

use futures::FutureExt;

use super::memory::MemoryBackend;
use super::{
    CHECKPOINT_OFFSET_HEADER, CHECKPOINT_TOPIC_HEADER, CommitStrategy, Incoming, LoopLimits,
    Outgoing, Processor, RuntimeError, StageLoop, StateKeeping, TopicSpec,
};
use crate::metrics::Metrics;

const INPUT: &str = "in";
const OUTPUT: &str = "out";
const STATE: &str = "state";

/// Writes one output per input (two for the payload `twice`, none for `quiet`), and with
/// [`StateKeeping::Checkpoints`] one checkpoint per input keyed by its partition, holding its
/// offset; records what the loop hands it.
#[derive(Debug)]
struct Recorder {
    keeping: StateKeeping,
    recall_window: usize,
    processed: Vec<(i32, i64)>,
    recalled: Vec<(i32, i64)>,
    restored: Vec<(i32, String)>,
    retained: Vec<Vec<i32>>,
    /// Inputs processed since the last flush (the state it holds back).
    held_back: usize,
}

impl Recorder {
    fn new(keeping: StateKeeping) -> Self {
        Self {
            keeping,
            recall_window: 0,
            processed: Vec::new(),
            recalled: Vec::new(),
            restored: Vec::new(),
            retained: Vec::new(),
            held_back: 0,
        }
    }
}

impl Processor for Recorder {
    fn stage(&self) -> &'static str {
        "test"
    }
    fn input_topics(&self) -> Vec<String> {
        vec![INPUT.to_owned()]
    }
    fn output_topics(&self) -> Vec<TopicSpec> {
        Vec::new()
    }
    fn state(&self) -> StateKeeping {
        self.keeping.clone()
    }
    fn restore(&mut self, partition: i32, key: &[u8], value: Option<&[u8]>) -> bool {
        if value == Some(b"garbage".as_slice()) {
            return false;
        }
        self.restored
            .push((partition, String::from_utf8_lossy(key).into_owned()));
        true
    }
    fn retain_partitions(&mut self, assigned: &[i32]) {
        self.retained.push(assigned.to_vec());
    }
    fn recall_window(&self) -> usize {
        self.recall_window
    }
    fn recall(&mut self, input: &Incoming<'_>) {
        self.recalled.push((input.partition, input.offset));
    }
    fn flush(&mut self, out: &mut Vec<Outgoing>) {
        if self.held_back > 0 {
            out.push(Outgoing::checkpoint(
                STATE,
                "held",
                Some(self.held_back.to_string().into_bytes()),
            ));
            self.held_back = 0;
        }
    }
    fn process(&mut self, input: &Incoming<'_>, out: &mut Vec<Outgoing>) {
        self.processed.push((input.partition, input.offset));
        self.held_back += 1;
        let key = format!("{}-{}", input.partition, input.offset);
        let copies = match input.payload {
            b"quiet" => 0,
            b"twice" => 2,
            _ => 1,
        };
        for copy in 0..copies {
            out.push(Outgoing::new(
                OUTPUT,
                format!("{key}.{copy}"),
                input.payload.to_vec(),
            ));
        }
        if self.keeping.checkpoints() {
            out.push(Outgoing::checkpoint(
                STATE,
                format!("p{}", input.partition),
                Some(input.offset.to_string().into_bytes()),
            ));
        }
    }
}

fn stage_loop(processor: Recorder) -> (StageLoop<Recorder, MemoryBackend>, MemoryBackend) {
    stage_loop_committing(processor, CommitStrategy::AtLeastOnce)
}

fn stage_loop_committing(
    processor: Recorder,
    strategy: CommitStrategy,
) -> (StageLoop<Recorder, MemoryBackend>, MemoryBackend) {
    let backend = MemoryBackend::default();
    let limits = LoopLimits {
        max_in_flight: 8,
        shutdown_timeout: Duration::from_millis(200),
    };
    let metrics = Metrics::new().unwrap_or_else(|error| panic!("metrics: {error}"));
    (
        StageLoop::new(processor, backend.clone(), limits, strategy, &metrics),
        backend,
    )
}

/// Handles every acknowledgement already answered, without waiting for more.
async fn settle(stage: &mut StageLoop<Recorder, MemoryBackend>) -> Result<(), RuntimeError> {
    while let Some(acknowledgement) = stage.next_acknowledgement().now_or_never() {
        stage.on_acknowledgement(acknowledgement).await?;
    }
    Ok(())
}

async fn consume(
    stage: &mut StageLoop<Recorder, MemoryBackend>,
    backend: &MemoryBackend,
    partition: i32,
    payload: &str,
) -> i64 {
    let message = backend.append(INPUT, partition, "k", payload);
    let offset = rdkafka::Message::offset(&message);
    if let Err(error) = stage.on_message(&message).await {
        panic!("input {partition}/{offset}: {error}");
    }
    offset
}

/// Acknowledges until nothing is in flight (outputs, then the checkpoints they release).
async fn acknowledge_all(stage: &mut StageLoop<Recorder, MemoryBackend>, backend: &MemoryBackend) {
    while stage.in_flight() > 0 {
        assert!(
            backend.acknowledge(everything) > 0,
            "inputs in flight with nothing waiting for an answer"
        );
        settle(stage).await.unwrap_or_else(|e| panic!("{e}"));
    }
}

fn everything(_: &str, _: i32, _: &str) -> bool {
    true
}

fn of_partition(partition: i32) -> impl Fn(&str, i32, &str) -> bool {
    // Outputs are keyed "{partition}-{offset}.{copy}", checkpoints "p{partition}".
    move |_, _, key| key.starts_with(&format!("{partition}-")) || key == format!("p{partition}")
}

#[tokio::test]
async fn an_offset_is_stored_only_once_every_output_of_its_input_is_acknowledged() {
    let (mut stage, backend) = stage_loop(Recorder::new(StateKeeping::Stateless));
    consume(&mut stage, &backend, 0, "twice").await;
    assert_eq!(backend.waiting().len(), 2);
    backend.acknowledge(|_, _, key| key.ends_with(".0"));
    settle(&mut stage).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        backend.stored(INPUT, 0),
        None,
        "one of two outputs acknowledged"
    );
    backend.acknowledge(everything);
    settle(&mut stage).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(backend.stored(INPUT, 0), Some(0));
    assert_eq!(stage.in_flight(), 0);
}

#[tokio::test]
async fn an_input_without_outputs_is_stored_in_its_turn() {
    let (mut stage, backend) = stage_loop(Recorder::new(StateKeeping::Stateless));
    consume(&mut stage, &backend, 0, "one").await;
    consume(&mut stage, &backend, 0, "quiet").await;
    settle(&mut stage).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        backend.stored(INPUT, 0),
        None,
        "the quiet input waits for the one before"
    );
    backend.acknowledge(everything);
    settle(&mut stage).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(backend.stored(INPUT, 0), Some(1));
}

#[tokio::test]
async fn within_a_partition_offsets_are_stored_in_consumption_order() {
    let (mut stage, backend) = stage_loop(Recorder::new(StateKeeping::Stateless));
    consume(&mut stage, &backend, 0, "first").await;
    consume(&mut stage, &backend, 0, "second").await;
    backend.acknowledge(|_, _, key| key == "0-1.0");
    settle(&mut stage).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        backend.stored(INPUT, 0),
        None,
        "the later input is acknowledged, the earlier not: nothing may be stored"
    );
    backend.acknowledge(everything);
    settle(&mut stage).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(backend.stored(INPUT, 0), Some(1));
}

#[tokio::test]
async fn a_slow_partition_holds_up_no_other() {
    let (mut stage, backend) = stage_loop(Recorder::new(StateKeeping::Stateless));
    consume(&mut stage, &backend, 0, "slow").await;
    consume(&mut stage, &backend, 1, "fast").await;
    consume(&mut stage, &backend, 1, "fast").await;
    backend.acknowledge(of_partition(1));
    settle(&mut stage).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(backend.stored(INPUT, 1), Some(1));
    assert_eq!(backend.stored(INPUT, 0), None);
    assert_eq!(stage.in_flight(), 1);
}

#[tokio::test]
async fn a_checkpoint_goes_only_after_its_partitions_earlier_outputs_are_acknowledged() {
    let (mut stage, backend) =
        stage_loop(Recorder::new(StateKeeping::Checkpoints(STATE.to_owned())));
    consume(&mut stage, &backend, 2, "a").await;
    consume(&mut stage, &backend, 2, "b").await;
    let sent = |backend: &MemoryBackend| {
        backend
            .waiting()
            .into_iter()
            .filter(|(topic, _, _)| topic == STATE)
            .count()
    };
    assert_eq!(sent(&backend), 0, "no output acknowledged yet");
    backend.acknowledge(|_, _, key| key == "2-1.0");
    settle(&mut stage).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        sent(&backend),
        0,
        "the first input's output is not acknowledged"
    );
    backend.acknowledge(|_, _, key| key == "2-0.0");
    settle(&mut stage).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sent(&backend), 2, "both inputs' checkpoints released");
    assert_eq!(
        backend.stored(INPUT, 2),
        None,
        "checkpoints not yet acknowledged"
    );
    backend.acknowledge(everything);
    settle(&mut stage).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(backend.stored(INPUT, 2), Some(1));
    // In the state partition numbered like the input's, with the input's position.
    let written = backend.written(STATE);
    assert_eq!(written.len(), 2);
    assert!(written.iter().all(|(partition, _, _)| *partition == 2));
    assert_eq!(
        backend
            .header(STATE, 2, 1, CHECKPOINT_TOPIC_HEADER)
            .as_deref(),
        Some(INPUT)
    );
    assert_eq!(
        backend
            .header(STATE, 2, 1, CHECKPOINT_OFFSET_HEADER)
            .as_deref(),
        Some("1")
    );
}

#[tokio::test]
async fn after_an_assignment_inputs_the_checkpoints_hold_are_passed_over_not_processed() {
    // A first life: three inputs processed and checkpointed, and the offsets never committed
    // (a crash between the checkpoint and the commit).
    let (mut first, backend) =
        stage_loop(Recorder::new(StateKeeping::Checkpoints(STATE.to_owned())));
    for payload in ["a", "b", "c"] {
        consume(&mut first, &backend, 1, payload).await;
    }
    acknowledge_all(&mut first, &backend).await;
    assert_eq!(backend.written(STATE).len(), 3);
    drop(first);

    let metrics = Metrics::new().unwrap_or_else(|error| panic!("metrics: {error}"));
    let limits = LoopLimits {
        max_in_flight: 8,
        shutdown_timeout: Duration::from_millis(200),
    };
    let mut second = StageLoop::new(
        Recorder::new(StateKeeping::Checkpoints(STATE.to_owned())),
        backend.clone(),
        limits,
        CommitStrategy::AtLeastOnce,
        &metrics,
    );
    backend.assign(&[(INPUT, 1), (INPUT, 3)]);
    second.on_assigned().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second.processor().retained, vec![vec![1, 3]]);
    assert_eq!(second.processor().restored.len(), 3);
    // The replay from the last commit: offsets 0..=2 are held, offset 3 is new.
    let replayed: Vec<_> = (0..3)
        .map(|offset| {
            rdkafka::message::OwnedMessage::new(
                Some(b"x".to_vec()),
                Some(b"k".to_vec()),
                INPUT.to_owned(),
                rdkafka::Timestamp::NotAvailable,
                1,
                offset,
                None,
            )
        })
        .collect();
    for message in &replayed {
        second
            .on_message(message)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    consume(&mut second, &backend, 1, "d").await;
    assert_eq!(second.processor().recalled, vec![(1, 0), (1, 1), (1, 2)]);
    assert_eq!(second.processor().processed, vec![(1, 3)]);
    assert_eq!(
        backend.stored(INPUT, 1),
        Some(2),
        "passed-over inputs are stored"
    );
    assert_eq!(
        metrics
            .skipped
            .with_label_values(&["test", "in_checkpoint"])
            .get(),
        3
    );
}

#[tokio::test]
async fn a_state_entry_that_no_longer_decodes_is_dropped_and_counted() {
    let (mut stage, backend) = stage_loop(Recorder::new(StateKeeping::Shared(STATE.to_owned())));
    backend.append(STATE, 0, "good", "1");
    backend.append(STATE, 3, "old", "garbage");
    backend.assign(&[(INPUT, 0)]);
    stage.on_assigned().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stage.processor().restored, vec![(0, "good".to_owned())]);
    assert!(
        stage.processor().retained.is_empty(),
        "shared state is read whole, never trimmed to the assignment"
    );
}

#[tokio::test]
async fn state_that_follows_the_input_is_read_back_for_the_assigned_partitions_only() {
    let (mut stage, backend) =
        stage_loop(Recorder::new(StateKeeping::FollowsInput(STATE.to_owned())));
    for partition in 0..4 {
        backend.append(STATE, partition, &format!("f{partition}"), "{}");
    }
    backend.assign(&[(INPUT, 1), (INPUT, 2)]);
    stage.on_assigned().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        stage.processor().restored,
        vec![(1, "f1".to_owned()), (2, "f2".to_owned())]
    );
}

#[tokio::test]
async fn a_new_partitions_recent_inputs_are_recalled_before_its_first_input() {
    let mut recorder = Recorder::new(StateKeeping::Checkpoints(STATE.to_owned()));
    recorder.recall_window = 2;
    let (mut stage, backend) = stage_loop(recorder);
    for payload in ["old", "older", "recent", "latest"] {
        backend.append(INPUT, 0, "k", payload);
    }
    backend.assign(&[(INPUT, 0)]);
    stage.on_assigned().await.unwrap_or_else(|e| panic!("{e}"));
    consume(&mut stage, &backend, 0, "next").await;
    assert_eq!(stage.processor().recalled, vec![(0, 2), (0, 3)]);
    assert_eq!(stage.processor().processed, vec![(0, 4)]);
    // Owned already: a later assignment recalls nothing again.
    acknowledge_all(&mut stage, &backend).await;
    stage.on_assigned().await.unwrap_or_else(|e| panic!("{e}"));
    consume(&mut stage, &backend, 0, "after").await;
    assert_eq!(stage.processor().recalled.len(), 2);
}

#[tokio::test]
async fn before_a_revocation_everything_in_flight_is_drained_stored_and_committed() {
    let (mut stage, backend) = stage_loop(Recorder::new(StateKeeping::Stateless));
    consume(&mut stage, &backend, 0, "a").await;
    consume(&mut stage, &backend, 1, "b").await;
    let acknowledging = backend.clone();
    let broker = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        acknowledging.acknowledge(everything)
    });
    stage.on_revoking().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(broker.await.ok(), Some(2));
    assert_eq!(stage.in_flight(), 0);
    assert_eq!(backend.committed(INPUT, 0), Some(0));
    assert_eq!(backend.committed(INPUT, 1), Some(0));
}

#[tokio::test]
async fn at_max_in_flight_the_loop_takes_no_more_input() {
    let (mut stage, backend) = stage_loop(Recorder::new(StateKeeping::Stateless));
    for _ in 0..8 {
        assert!(stage.has_room());
        consume(&mut stage, &backend, 0, "a").await;
    }
    assert!(!stage.has_room(), "eight inputs in flight, the limit");
    backend.acknowledge(|_, _, key| key == "0-0.0");
    settle(&mut stage).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(stage.has_room());
}

#[tokio::test]
async fn a_shutdown_commits_what_is_acknowledged_and_leaves_the_rest_for_a_replay() {
    let (mut stage, backend) = stage_loop(Recorder::new(StateKeeping::Stateless));
    consume(&mut stage, &backend, 0, "a").await;
    consume(&mut stage, &backend, 1, "b").await;
    backend.acknowledge(of_partition(0));
    // Partition 1's output is never answered: the shutdown waits its timeout, then commits.
    stage.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(backend.committed(INPUT, 0), Some(0));
    assert_eq!(backend.committed(INPUT, 1), None);
    assert_eq!(backend.commits(), 1);
}

#[tokio::test]
async fn a_refused_record_stops_the_stage_with_nothing_stored() {
    let (mut stage, backend) = stage_loop(Recorder::new(StateKeeping::Stateless));
    consume(&mut stage, &backend, 0, "a").await;
    backend.refuse(everything, "record too large");
    let result = settle(&mut stage).await;
    assert!(
        matches!(&result, Err(RuntimeError::Delivery { topic, error }) if topic == OUTPUT && error == "record too large"),
        "{result:?}"
    );
    assert_eq!(backend.stored(INPUT, 0), None);
}

fn transactions() -> CommitStrategy {
    CommitStrategy::Transactions {
        interval: Duration::from_secs(3600),
    }
}

#[tokio::test]
async fn a_transactions_records_state_and_offsets_become_visible_together_at_its_commit() {
    let (mut stage, backend) = stage_loop_committing(
        Recorder::new(StateKeeping::Checkpoints(STATE.to_owned())),
        transactions(),
    );
    consume(&mut stage, &backend, 0, "a").await;
    consume(&mut stage, &backend, 1, "twice").await;
    assert!(backend.in_transaction());
    assert!(
        backend.written(OUTPUT).is_empty(),
        "nothing visible before the commit"
    );
    assert!(backend.written(STATE).is_empty());
    assert_eq!(backend.committed(INPUT, 0), None);
    assert_eq!(stage.in_flight(), 2);
    assert!(stage.commit_deadline().is_some());
    stage
        .on_commit_due()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(backend.written(OUTPUT).len(), 3);
    let checkpoints = backend.written(STATE);
    assert_eq!(
        checkpoints
            .iter()
            .filter(|(_, key, _)| key.starts_with('p'))
            .count(),
        2
    );
    assert_eq!(backend.committed(INPUT, 0), Some(0));
    assert_eq!(backend.committed(INPUT, 1), Some(0));
    assert_eq!(stage.in_flight(), 0);
    assert_eq!(stage.commit_deadline(), None, "no transaction open");
    assert_eq!(
        backend.stored(INPUT, 0),
        None,
        "offsets go in the transaction only"
    );
}

#[tokio::test]
async fn a_transaction_commits_once_it_holds_max_in_flight_inputs() {
    let (mut stage, backend) =
        stage_loop_committing(Recorder::new(StateKeeping::Stateless), transactions());
    for _ in 0..7 {
        consume(&mut stage, &backend, 0, "a").await;
    }
    assert_eq!(backend.commits(), 0);
    consume(&mut stage, &backend, 0, "a").await;
    assert_eq!(
        backend.commits(),
        1,
        "the eighth input fills the transaction"
    );
    assert_eq!(backend.committed(INPUT, 0), Some(7));
    assert!(stage.has_room());
}

#[tokio::test]
async fn before_a_revocation_and_at_shutdown_the_open_transaction_commits() {
    let (mut stage, backend) =
        stage_loop_committing(Recorder::new(StateKeeping::Stateless), transactions());
    consume(&mut stage, &backend, 0, "a").await;
    stage.on_revoking().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(backend.committed(INPUT, 0), Some(0));
    consume(&mut stage, &backend, 0, "b").await;
    stage.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(backend.committed(INPUT, 0), Some(1));
    assert_eq!(
        backend.commits(),
        2,
        "no consumer commit beside the transactions"
    );
}

#[tokio::test]
async fn a_refused_commit_stops_the_stage_and_leaves_nothing_visible() {
    let (mut stage, backend) =
        stage_loop_committing(Recorder::new(StateKeeping::Stateless), transactions());
    consume(&mut stage, &backend, 0, "a").await;
    backend.refuse_commits("fenced by a newer instance");
    let result = stage.on_commit_due().await;
    assert!(
        matches!(&result, Err(RuntimeError::Transaction(reason)) if reason.contains("fenced")),
        "{result:?}"
    );
    assert!(backend.written(OUTPUT).is_empty());
    assert_eq!(backend.committed(INPUT, 0), None);
}

#[tokio::test]
async fn held_back_state_is_flushed_before_a_commit_and_before_another_partitions_input() {
    let (mut stage, backend) =
        stage_loop_committing(Recorder::new(StateKeeping::Stateless), transactions());
    consume(&mut stage, &backend, 1, "a").await;
    consume(&mut stage, &backend, 1, "b").await;
    consume(&mut stage, &backend, 2, "c").await;
    stage
        .on_commit_due()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let held: Vec<(i32, Option<String>)> = backend
        .written(STATE)
        .into_iter()
        .filter(|(_, key, _)| key == "held")
        .map(|(partition, _, value)| (partition, value))
        .collect();
    // Partition 1's two inputs flushed to its state partition when partition 2's came, then
    // partition 2's one at the commit.
    assert_eq!(
        held,
        vec![(1, Some("2".to_owned())), (2, Some("1".to_owned()))]
    );
    assert_eq!(
        backend
            .header(STATE, 1, 0, CHECKPOINT_OFFSET_HEADER)
            .as_deref(),
        Some("1"),
        "as the last input of partition 1 wrote it"
    );
}
