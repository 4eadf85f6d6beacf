//! What a stage is to the runtime: a [`Processor`] turns one input record into output records and
//! knows nothing of Kafka beyond plain records; it says which topics it reads and writes and how it
//! keeps its state.

use rdkafka::error::KafkaError;

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
    /// The cluster the record's producer named in its [`CLUSTER_HEADER`] (the gateway does):
    /// events whose own envelope names none belong to it.
    pub cluster: Option<&'a str>,
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

/// The header in which a raw record's producer names the cluster its events come from.
pub const CLUSTER_HEADER: &str = "vigil.cluster";

/// A header's value as text, when the record has it and it is UTF-8.
pub fn header_text<'a>(message: &'a impl rdkafka::message::Message, name: &str) -> Option<&'a str> {
    use rdkafka::message::Headers;
    message
        .headers()?
        .iter()
        .find(|header| header.key == name)
        .and_then(|header| std::str::from_utf8(header.value?).ok())
        .filter(|value| !value.is_empty())
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
    /// Checkpoints of state changes held back (a stage may checkpoint some state every few
    /// inputs), as if the last input processed had written them. Under exactly-once, called before
    /// each transaction commits and before an input of another partition than the last: the
    /// state committed then holds every effect of the inputs committed with it.
    fn flush(&mut self, _out: &mut Vec<Outgoing>) {}
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
    #[error("transaction: {0}; the stage restarts from its last committed transaction")]
    Transaction(String),
    #[error("a stage task failed: {0}")]
    Task(String),
    #[error("state topic {topic}: {problem}")]
    StateTopic { topic: String, problem: String },
}
