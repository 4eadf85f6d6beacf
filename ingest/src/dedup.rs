//! A bounded memory of recently seen `auditID`s. Two generations of hashes: when the current one is
//! full it becomes the previous one and the old previous one is forgotten, so memory stays bounded
//! while anything seen in the last `window` to `2 * window` events is still recognised. Audit logs
//! repeat an event when a shipper retries or a Kafka message is redelivered, which is always soon.

use std::collections::HashSet;

#[derive(Debug)]
pub struct Dedup {
    window: usize,
    current: HashSet<u64>,
    previous: HashSet<u64>,
}

/// FNV-1a: stable across runs and processes, unlike the std hasher's random keys.
fn fnv1a(text: &str) -> u64 {
    vigil_schemas::hash::fnv1a_64(text.as_bytes())
}

impl Dedup {
    pub fn new(window: usize) -> Self {
        let window = window.max(1);
        Self {
            window,
            current: HashSet::with_capacity(window.min(1 << 16)),
            previous: HashSet::new(),
        }
    }

    /// True the first time an id is seen within the window.
    pub fn first_sighting(&mut self, id: &str) -> bool {
        let hash = fnv1a(id);
        if self.current.contains(&hash) || self.previous.contains(&hash) {
            return false;
        }
        if self.current.len() >= self.window {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(hash);
        true
    }

    /// Ids remembered now (at most twice the window).
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_within_the_window_and_forgets_beyond_it() {
        let mut dedup = Dedup::new(2);
        assert!(dedup.first_sighting("a"));
        assert!(!dedup.first_sighting("a"));
        assert!(dedup.first_sighting("b"));
        assert!(dedup.first_sighting("c")); // "a", "b" move to the previous generation
        assert!(!dedup.first_sighting("a"));
        assert!(dedup.first_sighting("d"));
        assert!(dedup.first_sighting("e")); // "a", "b" forgotten
        assert!(dedup.first_sighting("a"));
        assert!(dedup.len() <= 4);
    }
}
