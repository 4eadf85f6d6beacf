//! Profiles by entity, bounded per cluster and in all, with the checkpoints their changes call for;
//! and one scope's view of an observation.

use std::collections::HashMap;

use crate::StateEntry;

use super::caps::EntityCaps;
use super::profile::{BaselineConfig, Judged, Profile};

/// Observations between checkpoints of a profile whose judgement state did not change: only the
/// counts and last sightings of learned values lag, by at most this many observations per entity.
pub(super) const CHECKPOINT_EVERY: u32 = 32;

#[derive(Debug)]
pub(super) struct Tracked {
    pub(super) profile: Profile,
    pub(super) unsaved: u32,
    pub(super) saved: super::profile::JudgementState,
}

impl Tracked {
    pub(super) fn new(profile: Profile) -> Self {
        Self {
            saved: profile.judgement_state(),
            profile,
            unsaved: 0,
        }
    }
}

/// Profiles by entity, bounded ([`crate::caps`]), with the checkpoint entries their changes call
/// for: one store serves every scope (principals, peer groups, namespaces, clusters, images,
/// workloads).
#[derive(Debug)]
pub(super) struct ProfileStore {
    pub(super) profiles: HashMap<String, Tracked>,
    pub(super) caps: EntityCaps,
    pub(super) changes: Vec<StateEntry>,
}

impl ProfileStore {
    pub(super) fn new(max_entities: usize, max_per_cluster: usize) -> Self {
        Self {
            profiles: HashMap::new(),
            caps: EntityCaps::new(max_entities, max_per_cluster),
            changes: Vec::new(),
        }
    }

    pub(super) fn insert(&mut self, key: &str, tracked: Tracked) {
        if self.profiles.insert(key.to_owned(), tracked).is_none() {
            self.caps.added(key);
        }
    }

    pub(super) fn remove(&mut self, key: &str) -> bool {
        if self.profiles.remove(key).is_none() {
            return false;
        }
        self.caps.removed(key);
        true
    }

    pub(super) fn counts(&self, scope: &'static str) -> crate::ProfileCounts {
        use crate::baselines::Phase;
        let mut by_phase = [
            (Phase::WarmUp, 0usize),
            (Phase::Learning, 0),
            (Phase::Stable, 0),
            (Phase::Unstable, 0),
        ];
        for tracked in self.profiles.values() {
            if let Some(slot) = by_phase
                .iter_mut()
                .find(|(phase, _)| *phase == tracked.profile.phase())
            {
                slot.1 += 1;
            }
        }
        crate::ProfileCounts {
            scope,
            by_phase: by_phase
                .iter()
                .map(|(phase, count)| (phase.label(), *count))
                .collect(),
            capacity: self.caps.capacity(),
            capacity_per_cluster: self.caps.capacity_per_cluster(),
            largest_cluster: self.caps.largest_cluster(),
            evicted: self.caps.evicted,
        }
    }

    /// The entity's profile, made (room first: the entities seen least recently, a tenth of the cap
    /// at a time, so eviction is rare; of its own cluster when that cluster is at its cap) when it
    /// is new.
    pub(super) fn entry(&mut self, key: &str, now: i64) -> Option<&mut Tracked> {
        if !self.profiles.contains_key(key) {
            if let Some(eviction) = self.caps.room_for(key, self.profiles.len()) {
                let victims = EntityCaps::victims(
                    &eviction,
                    self.profiles
                        .iter()
                        .map(|(key, tracked)| (key, tracked.profile.last_seen())),
                );
                for old in victims {
                    if self.remove(&old) {
                        self.caps.evicted += 1;
                        self.changes.push(StateEntry {
                            key: old,
                            value: Vec::new(),
                        });
                    }
                }
            }
            self.insert(key, Tracked::new(Profile::new(now)));
        }
        // Looked up by `&str`: a known entity (nearly every event) costs no key allocation.
        self.profiles.get_mut(key)
    }

    /// Writes the profile whenever what decides its judgements changed (a value learned, pending,
    /// seen again while pending or forgotten, a phase left, a day begun, warm-up progress), and
    /// every [`CHECKPOINT_EVERY`] observations otherwise.
    pub(super) fn checkpoint(&mut self, key: &str) {
        let Some(tracked) = self.profiles.get_mut(key) else {
            return;
        };
        tracked.unsaved += 1;
        let state = tracked.profile.judgement_state();
        if tracked.unsaved >= CHECKPOINT_EVERY || state != tracked.saved {
            tracked.unsaved = 0;
            tracked.saved = state;
            self.changes.push(StateEntry {
                key: key.to_owned(),
                value: tracked.profile.encode(),
            });
        }
    }

    /// False when a value (not a tombstone) no longer decodes: the profile is dropped.
    pub(super) fn restore(&mut self, key: &str, value: &[u8]) -> bool {
        match Profile::decode(value) {
            Some(profile) => {
                self.insert(key, Tracked::new(profile));
                true
            }
            None => {
                self.remove(key);
                value.is_empty()
            }
        }
    }

    pub(super) fn drain(&mut self, out: &mut Vec<StateEntry>) {
        out.append(&mut self.changes);
    }

    pub(super) fn len(&self) -> usize {
        self.profiles.len()
    }
}

/// One scope's view of an observation: what its profile judged (nothing unless it is stable), and
/// the numbers an explanation quotes.
#[derive(Debug)]
pub(super) struct Seen {
    pub(super) scope: &'static str,
    pub(super) entity: String,
    pub(super) judged: Vec<Judged>,
    pub(super) phase: crate::baselines::Phase,
    pub(super) observations: i64,
    pub(super) days: i64,
    /// Members learned in the `member` dimension, the observed one aside (a peer group's size).
    pub(super) members: usize,
}

/// Judges one observation against the entity's profile at one scope, then learns from it.
pub(super) fn observe(
    store: &mut ProfileStore,
    (scope, entity): (&'static str, &str),
    key: &str,
    now: i64,
    values: &[(&str, String)],
    config: &BaselineConfig,
) -> Option<Seen> {
    let tracked = store.entry(key, now)?;
    let judged = tracked.profile.observe(now, values, config);
    // A peer group's members other than the one observed: its own habits are not its peers'.
    let observed_member = values
        .iter()
        .find(|(dimension, _)| *dimension == "member")
        .is_some_and(|(_, member)| tracked.profile.knows("member", member));
    let seen = Seen {
        scope,
        entity: entity.to_owned(),
        judged,
        phase: tracked.profile.phase(),
        observations: i64::try_from(tracked.profile.observations()).unwrap_or(i64::MAX),
        days: tracked.profile.days(),
        members: tracked
            .profile
            .learned_in("member")
            .saturating_sub(usize::from(observed_member)),
    };
    store.checkpoint(key);
    Some(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_at_its_cap_gives_way_within_itself_and_leaves_the_others_alone() {
        let mut store = ProfileStore::new(10, 4);
        for (index, name) in ["b/1", "b/2", "b/3"].iter().enumerate() {
            store.entry(name, i64::try_from(index).unwrap_or(0));
        }
        // A flood of new entities in cluster a: it keeps its four most recent, b keeps its three.
        for index in 0..8i64 {
            store.entry(&format!("a/{index}"), 100 + index);
        }
        assert_eq!(store.caps.in_cluster("a"), 4);
        assert_eq!(store.caps.in_cluster("b"), 3);
        assert!(store.profiles.contains_key("a/7") && !store.profiles.contains_key("a/0"));
        assert_eq!(store.caps.evicted, 4);
        let dropped: Vec<&str> = store
            .changes
            .iter()
            .filter(|change| change.value.is_empty())
            .map(|change| change.key.as_str())
            .collect();
        assert_eq!(dropped, ["a/0", "a/1", "a/2", "a/3"]);
        // The store's own cap still holds across clusters.
        for index in 0..4i64 {
            store.entry(&format!("c/{index}"), 200 + index);
        }
        assert!(store.len() <= 10, "{}", store.len());
        assert_eq!(store.caps.counted(), store.len());
    }
}
