//! An in-memory broker under the stage loop, for its unit tests: topics are vectors of records,
//! sent records wait until the test acknowledges (or refuses) them, stored and committed offsets
//! are plain maps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::StreamExt;
use rdkafka::Timestamp;
use rdkafka::message::{Message, OwnedHeaders, OwnedMessage};
use tokio::sync::oneshot;

use super::backend::{Backend, Delivery, InputPosition, RecordStream, record_headers};
use super::{Outgoing, RuntimeError};

/// Partitions of every topic of the in-memory broker.
pub const PARTITIONS: i32 = 4;

/// A record sent and not yet answered.
#[derive(Debug)]
struct Waiting {
    message: OwnedMessage,
    reply: oneshot::Sender<Result<(), String>>,
}

#[derive(Debug, Default)]
struct Memory {
    /// Per topic, per partition, the records written.
    log: HashMap<String, Vec<Vec<OwnedMessage>>>,
    waiting: Vec<Waiting>,
    stored: HashMap<(String, i32), i64>,
    committed: HashMap<(String, i32), i64>,
    commits: usize,
    assignment: Vec<(String, i32)>,
    /// The open transaction's records, written only when it commits.
    transaction: Option<Vec<OwnedMessage>>,
    /// The next commits to refuse, with this reason.
    refuse_commits: Option<String>,
}

impl Memory {
    fn write(&mut self, message: OwnedMessage) -> i64 {
        let partitions = self
            .log
            .entry(message.topic().to_owned())
            .or_insert_with(|| vec![Vec::new(); PARTITIONS as usize]);
        let partition = &mut partitions[usize::try_from(message.partition()).unwrap_or(0)];
        let offset = i64::try_from(partition.len()).unwrap_or(i64::MAX);
        partition.push(message.set_offset(offset));
        offset
    }
}

/// Shared by the test and the loop it drives.
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    memory: Arc<Mutex<Memory>>,
}

/// A record to build a message from.
fn message(
    topic: &str,
    partition: i32,
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    headers: Option<OwnedHeaders>,
) -> OwnedMessage {
    OwnedMessage::new(
        payload.map(<[u8]>::to_vec),
        key.map(<[u8]>::to_vec),
        topic.to_owned(),
        Timestamp::CreateTime(1_700_000_000_000),
        partition,
        -1,
        headers,
    )
}

impl MemoryBackend {
    fn memory(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes a record as a producer outside the stage would; returns it with its offset.
    pub fn append(&self, topic: &str, partition: i32, key: &str, payload: &str) -> OwnedMessage {
        let mut memory = self.memory();
        let offset = memory.write(message(
            topic,
            partition,
            Some(key.as_bytes()),
            Some(payload.as_bytes()),
            None,
        ));
        memory.log[topic][usize::try_from(partition).unwrap_or(0)]
            [usize::try_from(offset).unwrap_or(0)]
        .clone()
    }

    /// The partitions the group gives this member.
    pub fn assign(&self, partitions: &[(&str, i32)]) {
        self.memory().assignment = partitions
            .iter()
            .map(|(topic, partition)| ((*topic).to_owned(), *partition))
            .collect();
    }

    /// Acknowledges the waiting records `which` selects (topic, partition, key); returns how many.
    pub fn acknowledge(&self, which: impl Fn(&str, i32, &str) -> bool) -> usize {
        self.answer(which, None)
    }

    /// Refuses the waiting records `which` selects, with `reason`.
    pub fn refuse(&self, which: impl Fn(&str, i32, &str) -> bool, reason: &str) -> usize {
        self.answer(which, Some(reason))
    }

    fn answer(&self, which: impl Fn(&str, i32, &str) -> bool, refusal: Option<&str>) -> usize {
        let mut memory = self.memory();
        let (chosen, kept): (Vec<Waiting>, Vec<Waiting>) = std::mem::take(&mut memory.waiting)
            .into_iter()
            .partition(|waiting| {
                let key = String::from_utf8_lossy(waiting.message.key().unwrap_or_default());
                which(waiting.message.topic(), waiting.message.partition(), &key)
            });
        memory.waiting = kept;
        let answered = chosen.len();
        for waiting in chosen {
            match refusal {
                None => {
                    memory.write(waiting.message);
                    let _ = waiting.reply.send(Ok(()));
                }
                Some(reason) => {
                    let _ = waiting.reply.send(Err(reason.to_owned()));
                }
            }
        }
        answered
    }

    /// Waiting records as (topic, partition, key), in the order they were sent.
    pub fn waiting(&self) -> Vec<(String, i32, String)> {
        self.memory()
            .waiting
            .iter()
            .map(|waiting| {
                (
                    waiting.message.topic().to_owned(),
                    waiting.message.partition(),
                    String::from_utf8_lossy(waiting.message.key().unwrap_or_default()).into_owned(),
                )
            })
            .collect()
    }

    /// Records written to a topic, every partition, as (partition, key, payload).
    pub fn written(&self, topic: &str) -> Vec<(i32, String, Option<String>)> {
        self.memory()
            .log
            .get(topic)
            .into_iter()
            .flatten()
            .flatten()
            .map(|message| {
                (
                    message.partition(),
                    String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                    message
                        .payload()
                        .map(|payload| String::from_utf8_lossy(payload).into_owned()),
                )
            })
            .collect()
    }

    /// The header of a written record.
    pub fn header(&self, topic: &str, partition: i32, offset: usize, name: &str) -> Option<String> {
        let memory = self.memory();
        let message = memory
            .log
            .get(topic)?
            .get(usize::try_from(partition).ok()?)?
            .get(offset)?;
        let headers = message.headers()?;
        (0..rdkafka::message::Headers::count(headers)).find_map(|index| {
            let header = rdkafka::message::Headers::get(headers, index);
            (header.key == name)
                .then(|| String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned())
        })
    }

    pub fn stored(&self, topic: &str, partition: i32) -> Option<i64> {
        self.memory()
            .stored
            .get(&(topic.to_owned(), partition))
            .copied()
    }

    pub fn committed(&self, topic: &str, partition: i32) -> Option<i64> {
        self.memory()
            .committed
            .get(&(topic.to_owned(), partition))
            .copied()
    }

    pub fn commits(&self) -> usize {
        self.memory().commits
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.memory().transaction.is_some()
    }

    /// Refuses every commit from now on, with `reason` (a fenced or timed-out transaction).
    pub fn refuse_commits(&self, reason: &str) {
        self.memory().refuse_commits = Some(reason.to_owned());
    }

    fn read(&self, topic: &str, keep: impl Fn(&OwnedMessage) -> bool) -> RecordStream {
        let records: Vec<Result<OwnedMessage, RuntimeError>> = self
            .memory()
            .log
            .get(topic)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|message| keep(message))
            .cloned()
            .map(Ok)
            .collect();
        futures::stream::iter(records).boxed()
    }
}

impl Backend for MemoryBackend {
    async fn send(
        &self,
        output: &Outgoing,
        checkpoint_of: Option<InputPosition<'_>>,
    ) -> Result<Delivery, RuntimeError> {
        let headers = record_headers(output, checkpoint_of);
        let partition = checkpoint_of.map_or(0, |position| position.partition);
        let record = message(
            &output.topic,
            partition,
            output.key.as_deref(),
            output.payload.as_deref(),
            Some(headers),
        );
        let mut memory = self.memory();
        if let Some(transaction) = memory.transaction.as_mut() {
            transaction.push(record);
            return Ok(Box::pin(async { Ok(()) }));
        }
        let (reply, answered) = oneshot::channel();
        memory.waiting.push(Waiting {
            message: record,
            reply,
        });
        Ok(Box::pin(async move {
            answered
                .await
                .unwrap_or_else(|_| Err("the broker went away".to_owned()))
        }))
    }

    fn store_offset(&self, topic: &str, partition: i32, offset: i64) {
        self.memory()
            .stored
            .insert((topic.to_owned(), partition), offset);
    }

    fn commit(&self) {
        let mut memory = self.memory();
        memory.committed = memory.stored.clone();
        memory.commits += 1;
    }

    fn assignment(&self) -> Result<Vec<(String, i32)>, RuntimeError> {
        Ok(self.memory().assignment.clone())
    }

    fn read_state(&self, topic: &str, only_partitions: Option<Vec<i32>>) -> RecordStream {
        self.read(topic, |message| {
            only_partitions
                .as_ref()
                .is_none_or(|only| only.contains(&message.partition()))
        })
    }

    fn read_inputs(&self, topic: &str, partition: i32, from: i64, to: i64) -> RecordStream {
        self.read(topic, |message| {
            message.partition() == partition && (from..to).contains(&message.offset())
        })
    }

    fn begin_transaction(&self) -> Result<(), RuntimeError> {
        let mut memory = self.memory();
        if memory.transaction.is_some() {
            return Err(RuntimeError::Transaction(
                "a transaction is open already".to_owned(),
            ));
        }
        memory.transaction = Some(Vec::new());
        Ok(())
    }

    async fn commit_transaction(
        &self,
        positions: Vec<(String, i32, i64)>,
    ) -> Result<(), RuntimeError> {
        let mut memory = self.memory();
        let Some(records) = memory.transaction.take() else {
            return Err(RuntimeError::Transaction(
                "no transaction is open".to_owned(),
            ));
        };
        if let Some(reason) = memory.refuse_commits.clone() {
            return Err(RuntimeError::Transaction(reason));
        }
        for record in records {
            memory.write(record);
        }
        for (topic, partition, next) in positions {
            // Kept as the last offset processed, as the stored offsets are.
            memory.committed.insert((topic, partition), next - 1);
        }
        memory.commits += 1;
        Ok(())
    }
}
