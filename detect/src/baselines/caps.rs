//! The bound on a baseline detector's entities, in all and per cluster, shared by every store of
//! profiles: keys are `cluster/entity`; when a new entity finds its cluster at the per-cluster cap,
//! the least recently seen tenth of that cluster gives way (a cluster flooding the detector with new
//! identities evicts its own, not the others'); when the whole store is full, the least recently
//! seen tenth of all. Evicting a tenth at a time keeps eviction rare.

use std::collections::HashMap;

/// The cluster part of a key (`cluster/entity`; a scope prefix such as `peers:` stays with it).
pub fn cluster_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(cluster, _)| cluster)
}

/// How many entities a store holds, per cluster, against its caps.
#[derive(Debug)]
pub struct EntityCaps {
    max_entities: usize,
    max_per_cluster: usize,
    per_cluster: HashMap<String, usize>,
    /// Entities dropped at a cap since start.
    pub evicted: u64,
}

/// What must give way before a new entity is added.
#[derive(Debug, PartialEq, Eq)]
pub struct Eviction {
    /// Only this cluster's entities (it is at its cap), or anyone's (`None`: the store is full).
    pub cluster: Option<String>,
    pub count: usize,
}

impl EntityCaps {
    pub fn new(max_entities: usize, max_per_cluster: usize) -> Self {
        let max_entities = max_entities.max(1);
        Self {
            max_entities,
            max_per_cluster: max_per_cluster.clamp(1, max_entities),
            per_cluster: HashMap::new(),
            evicted: 0,
        }
    }

    pub fn added(&mut self, key: &str) {
        *self
            .per_cluster
            .entry(cluster_of(key).to_owned())
            .or_default() += 1;
    }

    pub fn removed(&mut self, key: &str) {
        let cluster = cluster_of(key);
        if let Some(count) = self.per_cluster.get_mut(cluster) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_cluster.remove(cluster);
            }
        }
    }

    /// Before `key` joins a store of `held` entities: what must give way, if anything.
    pub fn room_for(&self, key: &str, held: usize) -> Option<Eviction> {
        let cluster = cluster_of(key);
        if self.per_cluster.get(cluster).copied().unwrap_or(0) >= self.max_per_cluster {
            Some(Eviction {
                cluster: Some(cluster.to_owned()),
                count: self.max_per_cluster / 10 + 1,
            })
        } else if held >= self.max_entities {
            Some(Eviction {
                cluster: None,
                count: self.max_entities / 10 + 1,
            })
        } else {
            None
        }
    }

    /// The keys that give way: the `eviction.count` seen least recently among `entries` (key, last
    /// seen), of the eviction's cluster only when it names one.
    pub fn victims<'a>(
        eviction: &Eviction,
        entries: impl Iterator<Item = (&'a String, i64)>,
    ) -> Vec<String> {
        let mut by_age: Vec<(i64, &String)> = entries
            .filter(|(key, _)| {
                eviction
                    .cluster
                    .as_deref()
                    .is_none_or(|cluster| cluster_of(key) == cluster)
            })
            .map(|(key, seen)| (seen, key))
            .collect();
        by_age.sort();
        by_age
            .into_iter()
            .take(eviction.count)
            .map(|(_, key)| key.clone())
            .collect()
    }

    pub fn capacity(&self) -> usize {
        self.max_entities
    }

    pub fn capacity_per_cluster(&self) -> usize {
        self.max_per_cluster
    }

    pub fn in_cluster(&self, cluster: &str) -> usize {
        self.per_cluster.get(cluster).copied().unwrap_or(0)
    }

    /// The most entities any cluster holds.
    pub fn largest_cluster(&self) -> usize {
        self.per_cluster.values().copied().max().unwrap_or(0)
    }

    /// Entities counted in all clusters (equals the store's size while the store reports every
    /// addition and removal).
    pub fn counted(&self) -> usize {
        self.per_cluster.values().sum()
    }
}
