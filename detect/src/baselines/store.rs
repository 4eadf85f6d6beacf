//! Profiles by entity, bounded per cluster and in all, with the checkpoints their changes call for;
//! and one scope's view of an observation.

use std::collections::{BTreeSet, HashMap};

use crate::StateEntry;

use super::caps::EntityCaps;
use super::dimensions::Dimension;
use super::profile::{BaselineConfig, Judged, Profile};

/// A profile a [`ProfileStore`] keeps: made at a time, evicted by when it was last seen, written as
/// bytes whenever what decides its judgements changes and every [`Stored::CHECKPOINT_EVERY`]
/// observations otherwise.
pub(super) trait Stored: crate::checkpoint::Checkpoint {
    /// What decides the profile's judgements: a change is checkpointed at once.
    type State: Copy + PartialEq + std::fmt::Debug;
    /// Observations between checkpoints of a profile whose state did not change: only what does
    /// not decide a judgement (counts, last sightings) lags, by at most this many per entity.
    const CHECKPOINT_EVERY: u32;
    /// The phases `/metrics` counts profiles by, in order.
    const PHASES: &'static [&'static str];
    fn started(now: i64) -> Self;
    fn last_seen(&self) -> i64;
    fn state(&self) -> Self::State;
    fn phase_label(&self) -> &'static str;
}

impl Stored for Profile {
    type State = super::profile::JudgementState;
    const CHECKPOINT_EVERY: u32 = 32;
    const PHASES: &'static [&'static str] = &["warm-up", "learning", "stable", "unstable"];
    fn started(now: i64) -> Self {
        Self::new(now)
    }
    fn last_seen(&self) -> i64 {
        Profile::last_seen(self)
    }
    fn state(&self) -> Self::State {
        self.judgement_state()
    }
    fn phase_label(&self) -> &'static str {
        self.phase().label()
    }
}

#[derive(Debug)]
pub(super) struct Tracked<P: Stored> {
    pub(super) profile: P,
    pub(super) unsaved: u32,
    pub(super) saved: P::State,
}

impl<P: Stored> Tracked<P> {
    pub(super) fn new(profile: P) -> Self {
        Self {
            saved: profile.state(),
            profile,
            unsaved: 0,
        }
    }
}

/// Profiles by entity, bounded ([`crate::baselines::caps`]), with the checkpoint entries their
/// changes call for: one store serves every baseline (principals, peer groups, namespaces,
/// clusters, images, workloads, volumes).
#[derive(Debug)]
pub(super) struct ProfileStore<P: Stored = Profile> {
    pub(super) profiles: HashMap<String, Tracked<P>>,
    pub(super) caps: EntityCaps,
    pub(super) changes: Vec<StateEntry>,
    /// Profiles with observations not yet checkpointed (held back, [`Stored::CHECKPOINT_EVERY`]),
    /// for [`ProfileStore::flush`]. At most one entry per profile.
    pub(super) unsaved: BTreeSet<String>,
    /// Checkpoints that failed to encode (kept unsaved and tried again); never expected.
    pub(super) unencodable: u64,
}

impl<P: Stored> ProfileStore<P> {
    pub(super) fn new(max_entities: usize, max_per_cluster: usize) -> Self {
        Self {
            profiles: HashMap::new(),
            caps: EntityCaps::new(max_entities, max_per_cluster),
            changes: Vec::new(),
            unsaved: BTreeSet::new(),
            unencodable: 0,
        }
    }

    pub(super) fn insert(&mut self, key: &str, tracked: Tracked<P>) {
        if self.profiles.insert(key.to_owned(), tracked).is_none() {
            self.caps.added(key);
        }
    }

    pub(super) fn remove(&mut self, key: &str) -> bool {
        if self.profiles.remove(key).is_none() {
            return false;
        }
        self.unsaved.remove(key);
        self.caps.removed(key);
        true
    }

    pub(super) fn counts(&self, scope: super::Scope) -> crate::ProfileCounts {
        let by_phase = P::PHASES
            .iter()
            .map(|phase| {
                let count = self
                    .profiles
                    .values()
                    .filter(|tracked| tracked.profile.phase_label() == *phase)
                    .count();
                (*phase, count)
            })
            .collect();
        crate::ProfileCounts {
            scope: scope.metric_label(),
            by_phase,
            capacity: self.caps.capacity(),
            capacity_per_cluster: self.caps.capacity_per_cluster(),
            largest_cluster: self.caps.largest_cluster(),
            evicted: self.caps.evicted,
            unencodable: self.unencodable,
        }
    }

    /// The entity's profile, made (room first: the entities seen least recently, a tenth of the cap
    /// at a time, so eviction is rare; of its own cluster when that cluster is at its cap) when it
    /// is new.
    pub(super) fn entry(&mut self, key: &str, now: i64) -> Option<&mut Tracked<P>> {
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
                        self.changes.push(StateEntry::delete(old));
                    }
                }
            }
            self.insert(key, Tracked::new(P::started(now)));
        }
        // Looked up by `&str`: a known entity (nearly every event) costs no key allocation.
        self.profiles.get_mut(key)
    }

    /// Writes the profile whenever what decides its judgements changed, and every
    /// [`Stored::CHECKPOINT_EVERY`] observations otherwise.
    pub(super) fn checkpoint(&mut self, key: &str) {
        let Some(tracked) = self.profiles.get_mut(key) else {
            return;
        };
        tracked.unsaved += 1;
        let state = tracked.profile.state();
        if tracked.unsaved >= P::CHECKPOINT_EVERY || state != tracked.saved {
            self.save(key);
        } else if tracked.unsaved == 1 {
            self.unsaved.insert(key.to_owned());
        }
    }

    /// Writes every profile with observations held back: under exactly-once, before each
    /// transaction commits, so that the state committed with the inputs holds all their effects.
    pub(super) fn flush(&mut self) {
        for key in std::mem::take(&mut self.unsaved) {
            if self
                .profiles
                .get(&key)
                .is_some_and(|tracked| tracked.unsaved > 0)
            {
                self.save(&key);
            }
        }
    }

    /// Writes the profile now.
    pub(super) fn save(&mut self, key: &str) {
        let Some(tracked) = self.profiles.get_mut(key) else {
            return;
        };
        match StateEntry::put(key, &tracked.profile) {
            Ok(entry) => {
                tracked.unsaved = 0;
                tracked.saved = tracked.profile.state();
                self.changes.push(entry);
            }
            // Kept unsaved, so the next observation tries again; counted for /metrics.
            Err(_) => self.unencodable += 1,
        }
    }

    /// False when a value (not a tombstone) no longer decodes: the profile is dropped.
    pub(super) fn restore(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        let Some(bytes) = value else {
            self.remove(key);
            return true;
        };
        match crate::checkpoint::decode::<P>(bytes) {
            Ok(profile) => {
                self.insert(key, Tracked::new(profile));
                true
            }
            Err(_) => {
                self.remove(key);
                false
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
    pub(super) scope: super::Scope,
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
    (scope, entity): (super::Scope, &str),
    key: &str,
    now: i64,
    values: &[(Dimension, String)],
    config: &BaselineConfig,
) -> Option<Seen> {
    let tracked = store.entry(key, now)?;
    let judged = tracked.profile.observe(now, values, config);
    // A peer group's members other than the one observed: its own habits are not its peers'.
    let observed_member = values
        .iter()
        .find(|(dimension, _)| *dimension == Dimension::Member)
        .is_some_and(|(_, member)| tracked.profile.knows(Dimension::Member, member));
    let seen = Seen {
        scope,
        entity: entity.to_owned(),
        judged,
        phase: tracked.profile.phase(),
        observations: i64::try_from(tracked.profile.observations()).unwrap_or(i64::MAX),
        days: tracked.profile.days(),
        members: tracked
            .profile
            .learned_in(Dimension::Member)
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
        let mut store: ProfileStore = ProfileStore::new(10, 4);
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
            .filter(|change| change.value.is_none())
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
