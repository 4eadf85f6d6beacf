//! What the stage loop needs of a broker, and nothing more: send a record and learn when it is
//! acknowledged, store and commit an input offset, say which partitions are assigned, and read a
//! topic's records back. [`crate::kafka::KafkaBackend`] is librdkafka; the loop's unit tests run
//! on an in-memory backend.

use std::future::Future;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};

use super::{CHECKPOINT_OFFSET_HEADER, CHECKPOINT_TOPIC_HEADER, Outgoing, RuntimeError};

/// Where a checkpoint comes from: the input whose processing wrote it. The checkpoint goes to the
/// state partition numbered like the input's and carries the input's topic and offset in its
/// headers ([`super::CHECKPOINT_TOPIC_HEADER`], [`super::CHECKPOINT_OFFSET_HEADER`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputPosition<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// Resolves once the broker has answered for one record: `Err` with the broker's reason when it
/// was refused for good.
pub type Delivery = BoxFuture<'static, Result<(), String>>;

/// Records read back, in offset order per partition.
pub type RecordStream = BoxStream<'static, Result<OwnedMessage, RuntimeError>>;

/// The broker under a stage loop.
pub trait Backend {
    /// Hands one record to the producer, waiting while its queue is full. A checkpoint carries the
    /// position of the input that wrote it.
    fn send(
        &self,
        output: &Outgoing,
        checkpoint_of: Option<InputPosition<'_>>,
    ) -> impl Future<Output = Result<Delivery, RuntimeError>> + Send;

    /// Stores `offset` as processed: the next commit moves the group past it.
    fn store_offset(&self, topic: &str, partition: i32, offset: i64);

    /// Commits the stored offsets now, before the call returns.
    fn commit(&self);

    /// The input partitions this member owns now.
    fn assignment(&self) -> Result<Vec<(String, i32)>, RuntimeError>;

    /// Every record of `topic` (of `only_partitions`, when given) from its start to the end it had
    /// when called.
    fn read_state(&self, topic: &str, only_partitions: Option<Vec<i32>>) -> RecordStream;

    /// The records of one partition in `[from, to)`, `from` raised to the partition's start.
    fn read_inputs(&self, topic: &str, partition: i32, from: i64, to: i64) -> RecordStream;

    /// Exactly-once: opens a transaction; every record sent until the commit belongs to it.
    fn begin_transaction(&self) -> Result<(), RuntimeError>;

    /// Commits the open transaction together with the consumed positions of its inputs (per
    /// partition, the offset to read next): its records and the group's move past its inputs
    /// become visible together, or neither does.
    fn commit_transaction(
        &self,
        positions: Vec<(String, i32, i64)>,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
}

/// The headers a record goes out with: its own, and a checkpoint's input position (what
/// [`super::StageLoop`] reads back after an assignment). Every backend writes them so.
pub fn record_headers(output: &Outgoing, checkpoint_of: Option<InputPosition<'_>>) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new_with_capacity(output.headers.len() + 2);
    for (key, value) in &output.headers {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    if let Some(position) = checkpoint_of {
        let offset = position.offset.to_string();
        headers = headers
            .insert(Header {
                key: CHECKPOINT_TOPIC_HEADER,
                value: Some(position.topic),
            })
            .insert(Header {
                key: CHECKPOINT_OFFSET_HEADER,
                value: Some(&offset),
            });
    }
    headers
}
