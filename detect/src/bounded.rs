//! A set that keeps its newest members up to a capacity, forgetting the oldest first: the one
//! bounded collection the detectors' memories (remembered keys, recent events) share.

use std::borrow::Borrow;
use std::collections::{HashSet, VecDeque};
use std::hash::Hash;

/// Members in insertion order, at most `capacity` of them.
#[derive(Debug, Clone)]
pub struct FifoSet<T: Hash + Eq + Clone> {
    capacity: usize,
    members: HashSet<T>,
    order: VecDeque<T>,
}

impl<T: Hash + Eq + Clone> FifoSet<T> {
    /// A set of at most `capacity` members (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            members: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    pub fn contains<Q: Hash + Eq + ?Sized>(&self, member: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        self.members.contains(member)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Adds `member`: `None` when it was there already (nothing changes), else `Some` with the
    /// oldest member it pushed out at the capacity, if any.
    pub fn insert(&mut self, member: T) -> Option<Option<T>> {
        if !self.members.insert(member.clone()) {
            return None;
        }
        self.order.push_back(member);
        let evicted = if self.order.len() > self.capacity {
            self.order.pop_front()
        } else {
            None
        };
        if let Some(oldest) = &evicted {
            self.members.remove(oldest);
        }
        Some(evicted)
    }

    /// Forgets `member`; true when it was there. Linear in the set's size: for the rare removal.
    pub fn remove<Q: Hash + Eq + ?Sized>(&mut self, member: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        if self.members.remove(member) {
            self.order.retain(|kept| kept.borrow() != member);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_member_gives_way_at_the_capacity() {
        let mut set = FifoSet::new(2);
        assert_eq!(set.insert("a"), Some(None));
        assert_eq!(set.insert("a"), None, "already there");
        assert_eq!(set.insert("b"), Some(None));
        assert_eq!(set.insert("c"), Some(Some("a")));
        assert!(!set.contains(&"a") && set.contains(&"b") && set.contains(&"c"));
        assert!(set.remove(&"b"));
        assert!(!set.remove(&"b"));
        assert_eq!(set.insert("d"), Some(None), "room made by the removal");
        assert_eq!(set.len(), 2);
    }
}
