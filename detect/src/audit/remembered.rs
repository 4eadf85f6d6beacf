//! A bounded, checkpointed set of keys shared by the detectors that remember what they reported or
//! learned.

use std::collections::{HashSet, VecDeque};

use crate::StateEntry;

/// A bounded, checkpointed set of keys (the oldest give way at the capacity). The workload detectors
/// remember which top-level workloads they reported, so that the pods and ReplicaSets their
/// controllers create are not reported again under the controller's name; the binding detector
/// remembers which roles grant escalation.
#[derive(Debug)]
pub(crate) struct RememberedKeys {
    capacity: usize,
    seen: HashSet<String>,
    order: VecDeque<String>,
    /// Changes not yet checkpointed.
    changes: Vec<StateEntry>,
}

impl RememberedKeys {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            seen: HashSet::new(),
            order: VecDeque::new(),
            changes: Vec::new(),
        }
    }
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.seen.contains(key)
    }
    pub(crate) fn insert(&mut self, key: String) {
        self.remember(key, true);
    }

    pub(crate) fn remember(&mut self, key: String, checkpoint: bool) {
        if self.seen.insert(key.clone()) {
            if checkpoint {
                self.changes.push(StateEntry {
                    key: key.clone(),
                    value: vec![1],
                });
            }
            self.order.push_back(key);
            if self.order.len() > self.capacity
                && let Some(oldest) = self.order.pop_front()
            {
                self.seen.remove(&oldest);
                self.changes.push(StateEntry {
                    key: oldest,
                    value: Vec::new(),
                });
            }
        }
    }

    /// Forgets a key (a role deleted, or rewritten without what made it remembered).
    pub(crate) fn forget(&mut self, key: &str) {
        if self.seen.remove(key) {
            self.order.retain(|kept| kept != key);
            self.changes.push(StateEntry {
                key: key.to_owned(),
                value: Vec::new(),
            });
        }
    }

    pub(crate) fn drain(&mut self, out: &mut Vec<StateEntry>) {
        out.append(&mut self.changes);
    }

    pub(crate) fn restore(&mut self, key: &str, value: &[u8]) {
        if value.is_empty() {
            self.seen.remove(key);
        } else {
            self.remember(key.to_owned(), false);
        }
    }
}
