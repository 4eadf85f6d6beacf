//! A bounded, checkpointed set of keys shared by the detectors that remember what they reported or
//! learned.

use crate::StateEntry;
use crate::bounded::FifoSet;
use crate::checkpoint::{self, Checkpoint};

/// What a remembered key's checkpoint holds: nothing but that it is remembered.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Remembered {}

impl Checkpoint for Remembered {
    const KIND: &'static str = "remembered_key";
    const VERSION: u32 = 1;
    /// Before the envelope a remembered key was the single byte 1.
    fn legacy(bytes: &[u8]) -> Option<Self> {
        (bytes == [1]).then_some(Self {})
    }
}

/// A bounded, checkpointed set of keys (the oldest give way at the capacity). The workload detectors
/// remember which top-level workloads they reported, so that the pods and ReplicaSets their
/// controllers create are not reported again under the controller's name; the binding detector
/// remembers which roles grant escalation.
#[derive(Debug)]
pub(crate) struct RememberedKeys {
    keys: FifoSet<String>,
    /// Changes not yet checkpointed.
    changes: Vec<StateEntry>,
}

impl RememberedKeys {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            keys: FifoSet::new(capacity),
            changes: Vec::new(),
        }
    }
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.keys.contains(key)
    }
    pub(crate) fn insert(&mut self, key: String) {
        self.remember(key, true);
    }

    pub(crate) fn remember(&mut self, key: String, checkpoint: bool) {
        // An empty struct always encodes; were it ever to fail, the key is only remembered in
        // memory, as an unchecked key would be.
        let Some(evicted) = self.keys.insert(key.clone()) else {
            return;
        };
        if checkpoint && let Ok(entry) = StateEntry::put(key, &Remembered {}) {
            self.changes.push(entry);
        }
        self.changes.extend(evicted.map(StateEntry::delete));
    }

    /// Forgets a key (a role deleted, or rewritten without what made it remembered).
    pub(crate) fn forget(&mut self, key: &str) {
        if self.keys.remove(key) {
            self.changes.push(StateEntry::delete(key));
        }
    }

    pub(crate) fn drain(&mut self, out: &mut Vec<StateEntry>) {
        out.append(&mut self.changes);
    }

    /// False when the value no longer decodes: the key is forgotten (and relearned).
    pub(crate) fn restore(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        match value.map(checkpoint::decode::<Remembered>) {
            Some(Ok(_)) => {
                self.remember(key.to_owned(), false);
                true
            }
            None => {
                self.keys.remove(key);
                true
            }
            Some(Err(_)) => {
                self.keys.remove(key);
                false
            }
        }
    }
}
