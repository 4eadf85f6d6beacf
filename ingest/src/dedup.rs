//! A bounded memory of recently seen `auditID`s, each with a digest of its event. Two generations:
//! when the current one is full it becomes the previous one and the old previous one is forgotten,
//! so memory stays bounded while anything seen in the last `window` to `2 * window` events is still
//! recognised. Audit logs repeat an event when a shipper retries or a Kafka message is redelivered,
//! which is always soon.
//!
//! An id alone does not make a repeat: the client sets `Audit-ID` in its request header, so an
//! attacker can give every call of theirs an id an earlier event had. Only the same id with the same
//! event (the digest of the normalized event, what detection reads) is a repeat; the same id with
//! another event is processed, and counted as reused.

use std::collections::HashSet;

/// What an id and its event's digest were, against the ones remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sighting {
    /// An id not seen within the window.
    First,
    /// The same id with the same event: a redelivery.
    Repeat,
    /// The same id with another event: a reused (client-set) id.
    Reused,
}

#[derive(Debug, Default)]
struct Generation {
    /// Ids seen.
    ids: HashSet<u64>,
    /// Ids with the digest of an event seen with them.
    events: HashSet<(u64, u64)>,
}

#[derive(Debug)]
pub struct Dedup {
    window: usize,
    current: Generation,
    previous: Generation,
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
            current: Generation {
                ids: HashSet::with_capacity(window.min(1 << 16)),
                events: HashSet::with_capacity(window.min(1 << 16)),
            },
            previous: Generation::default(),
        }
    }

    /// Whether `id`, carried by an event whose digest is `content`, is new, a repeat or reused.
    pub fn sighting(&mut self, id: &str, content: u64) -> Sighting {
        let id = fnv1a(id);
        let pair = (id, content);
        if self.current.events.contains(&pair) || self.previous.events.contains(&pair) {
            return Sighting::Repeat;
        }
        let seen = self.current.ids.contains(&id) || self.previous.ids.contains(&id);
        if self.current.events.len() >= self.window {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.ids.insert(id);
        self.current.events.insert(pair);
        if seen {
            Sighting::Reused
        } else {
            Sighting::First
        }
    }

    /// Ids remembered now (at most twice the window).
    pub fn len(&self) -> usize {
        self.current.events.len() + self.previous.events.len()
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
        let first = |dedup: &mut Dedup, id: &str| dedup.sighting(id, 7) == Sighting::First;
        assert!(first(&mut dedup, "a"));
        assert!(!first(&mut dedup, "a"));
        assert!(first(&mut dedup, "b"));
        assert!(first(&mut dedup, "c")); // "a", "b" move to the previous generation
        assert!(!first(&mut dedup, "a"));
        assert!(first(&mut dedup, "d"));
        assert!(first(&mut dedup, "e")); // "a", "b" forgotten
        assert!(first(&mut dedup, "a"));
        assert!(dedup.len() <= 4);
    }

    #[test]
    fn the_same_id_with_another_event_is_reused_not_repeated() {
        let mut dedup = Dedup::new(16);
        assert_eq!(dedup.sighting("a", 1), Sighting::First);
        assert_eq!(dedup.sighting("a", 1), Sighting::Repeat);
        assert_eq!(dedup.sighting("a", 2), Sighting::Reused);
        // Each event's own redelivery is a repeat, in any order.
        assert_eq!(dedup.sighting("a", 2), Sighting::Repeat);
        assert_eq!(dedup.sighting("a", 1), Sighting::Repeat);
    }
}
