//! Behaviour profiles: what an entity (a principal, a workload...) normally does, learned from event
//! time, so that what departs from it can be told apart and explained. Plain data and a state
//! machine, free of I/O: the same profile learns in `vigil scan`, in the detect stage and in tests.
//!
//! A profile holds, per dimension (user agent, network origin, namespace, API call, time of week...),
//! the values seen with their counts and first and last sightings, and moves through phases:
//!
//! - **warm-up**: fewer than `warmup_observations` observations; nothing is judged;
//! - **learning**: until `learning_days` of event time have passed since the first observation; every
//!   new value is learned at once;
//! - **stable**: few new values per day; a value first seen now is an **anomaly candidate**: it waits in
//!   the pending set and is learned only after `pending_days` and `pending_sightings`, so an attacker's
//!   behaviour is flagged, not learned away on its first appearance;
//! - **unstable**: many new values per day (a CI principal touching new namespaces daily): values are
//!   learned at once and nothing is judged, since novelty is its normal; it becomes stable again after a
//!   quiet day.
//!
//! Values not seen for `forget_days` are forgotten. Every dimension keeps at most `top_k` values (the
//! least seen give way, counted in `overflow`), and the pending set at most `top_k` too, so a profile's
//! size is bounded whatever its entity does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::dimensions::Dimension;

pub(super) use vigil_schemas::time::DAY_MICROS;

/// The form profiles were checkpointed in before the envelope (`{"version": 1, ...}`), still read.
const LEGACY_VERSION: u32 = 1;

/// How profiles learn. Durations are event time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineConfig {
    pub warmup_observations: u64,
    pub learning_days: i64,
    pub pending_days: i64,
    pub pending_sightings: u64,
    pub forget_days: i64,
    /// New values a day beyond which a profile is unstable.
    pub unstable_new_values_per_day: u32,
    pub top_k: usize,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            warmup_observations: 20,
            learning_days: 7,
            pending_days: 3,
            pending_sightings: 3,
            forget_days: 30,
            unstable_new_values_per_day: 10,
            top_k: 32,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    WarmUp,
    Learning,
    Stable,
    Unstable,
}

impl Phase {
    pub const fn label(self) -> &'static str {
        match self {
            Self::WarmUp => "warm-up",
            Self::Learning => "learning",
            Self::Stable => "stable",
            Self::Unstable => "unstable",
        }
    }
}

/// See [`Profile::judgement_state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JudgementState {
    phase: Phase,
    window_start: i64,
    new_in_window: u32,
    warm_up_observations: u64,
    learned: usize,
    pending: usize,
    pending_sightings: u64,
}

impl Default for JudgementState {
    fn default() -> Self {
        Self {
            phase: Phase::WarmUp,
            window_start: 0,
            new_in_window: 0,
            warm_up_observations: 0,
            learned: 0,
            pending: 0,
            pending_sightings: 0,
        }
    }
}

/// How well a profile knows a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Familiarity {
    /// Never learned (a pending value is still unseen to the baseline).
    Unseen,
    /// Under 1% of the dimension's observations.
    Rare,
    /// Under 10%.
    Infrequent,
    Frequent,
}

impl Familiarity {
    pub const fn label(self) -> &'static str {
        match self {
            Self::Unseen => "unseen",
            Self::Rare => "rare",
            Self::Infrequent => "infrequent",
            Self::Frequent => "frequent",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Sightings {
    count: u64,
    first: i64,
    last: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Values {
    learned: BTreeMap<String, Sightings>,
    pending: BTreeMap<String, Sightings>,
    /// Observations of values that gave way to the cap.
    overflow: u64,
    total: u64,
    /// When the latest new values appeared (at most [`RECENT_NEW`]), to tell a dimension whose
    /// novelty is routine (CI's daily preview namespace) from one where novelty is news.
    #[serde(default)]
    recent_new: Vec<i64>,
    /// Learned values that gave way to the cap, remembered approximately (made at the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    given_way: Option<Box<GivenWay>>,
}

/// Bits of one generation of [`GivenWay`]'s filter, and the hashes per value.
const SKETCH_BITS: usize = 2048;
const SKETCH_HASHES: u64 = 3;

/// The long tail of a high-cardinality dimension (a CI principal's hundreds of namespaces, a
/// gateway's destinations) in a Bloom filter: a value that gave way to the top-K cap is still known
/// as seen before, rare rather than unseen, so the cap does not turn the tail into false anomalies.
/// 2,048 bits a generation, three hashes: about 1.6% of never-seen values pass for seen at 200
/// values remembered. Two generations, the older dropped every `forget_days`, so a tail value is
/// forgotten as a learned one is, a period late at most.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct GivenWay {
    current: Vec<u64>,
    previous: Vec<u64>,
    /// When the current generation began.
    since: i64,
}

impl GivenWay {
    fn new(now: i64) -> Self {
        Self {
            current: vec![0; SKETCH_BITS / 64],
            previous: vec![0; SKETCH_BITS / 64],
            since: now,
        }
    }

    /// The bit positions of a value: double hashing over FNV-1a.
    fn positions(value: &str) -> impl Iterator<Item = usize> {
        use vigil_schemas::hash::{FNV64_OFFSET, fnv1a_64_seeded};
        let fnv = |seed: u64| fnv1a_64_seeded(seed, value.as_bytes());
        let (first, second) = (fnv(FNV64_OFFSET), fnv(0x6c62_272e_07bb_0142) | 1);
        (0..SKETCH_HASHES).map(move |index| {
            let bit = first.wrapping_add(index.wrapping_mul(second)) % SKETCH_BITS as u64;
            usize::try_from(bit).unwrap_or(0)
        })
    }

    fn set(bits: &[u64], position: usize) -> bool {
        bits.get(position / 64)
            .is_some_and(|word| word & (1 << (position % 64)) != 0)
    }

    fn insert(&mut self, value: &str) {
        for position in Self::positions(value) {
            if let Some(word) = self.current.get_mut(position / 64) {
                *word |= 1 << (position % 64);
            }
        }
    }

    fn contains(&self, value: &str) -> bool {
        let within =
            |bits: &[u64]| Self::positions(value).all(|position| Self::set(bits, position));
        within(&self.current) || within(&self.previous)
    }

    /// Starts a new generation when the current one is `period` old.
    fn age(&mut self, now: i64, period: i64) {
        if now.saturating_sub(self.since) >= period {
            self.previous = std::mem::replace(&mut self.current, vec![0; SKETCH_BITS / 64]);
            self.since = now;
        }
    }
}

/// New values remembered per dimension for volatility.
const RECENT_NEW: usize = 16;
/// New values within a week that make a dimension volatile.
const VOLATILE_PER_WEEK: usize = 4;

impl Values {
    fn volatile(&self, now: i64) -> bool {
        self.recent_new
            .iter()
            .filter(|at| now.saturating_sub(**at) < 7 * DAY_MICROS)
            .count()
            >= VOLATILE_PER_WEEK
    }

    fn note_new(&mut self, now: i64) {
        self.recent_new.push(now);
        if self.recent_new.len() > RECENT_NEW {
            self.recent_new.remove(0);
        }
    }

    /// Learns a value first seen now, without a wait in the pending set.
    fn learn_at_once(&mut self, value: &str, now: i64, cap: usize) {
        self.learned.insert(
            value.to_owned(),
            Sightings {
                count: 1,
                first: now,
                last: now,
            },
        );
        self.trim_learned(cap, now);
    }

    /// Whether a value not among the learned ones gave way to the cap earlier.
    fn remembers(&self, value: &str) -> bool {
        self.given_way
            .as_ref()
            .is_some_and(|given_way| given_way.contains(value))
    }

    /// Keeps at most `cap` learned values; those that give way are remembered in the sketch.
    fn trim_learned(&mut self, cap: usize, now: i64) {
        let before = self.learned.len();
        if before <= cap {
            return;
        }
        let mut gone = Vec::new();
        self.overflow += Self::trim(&mut self.learned, cap, Some(&mut gone));
        let given_way = self
            .given_way
            .get_or_insert_with(|| Box::new(GivenWay::new(now)));
        for value in gone {
            given_way.insert(&value);
        }
    }

    fn familiarity(&self, value: &str) -> Familiarity {
        let Some(seen) = self.learned.get(value) else {
            // Seen before, beyond the top K: rare, not news.
            return if self.remembers(value) {
                Familiarity::Rare
            } else {
                Familiarity::Unseen
            };
        };
        let share = seen.count.saturating_mul(1000) / self.total.max(1);
        match share {
            0..10 => Familiarity::Rare,
            10..100 => Familiarity::Infrequent,
            _ => Familiarity::Frequent,
        }
    }

    /// The most seen learned values, most first.
    fn top(&self, n: usize) -> Vec<String> {
        let mut values: Vec<(&String, &Sightings)> = self.learned.iter().collect();
        values.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(b.0)));
        values
            .into_iter()
            .take(n)
            .map(|(value, _)| value.clone())
            .collect()
    }

    /// Keeps at most `cap` entries, dropping the least seen (oldest last sighting on ties), into
    /// `gone` when given.
    fn trim(
        map: &mut BTreeMap<String, Sightings>,
        cap: usize,
        mut gone: Option<&mut Vec<String>>,
    ) -> u64 {
        let mut dropped = 0;
        while map.len() > cap {
            let Some(weakest) = map
                .iter()
                .min_by(|a, b| a.1.count.cmp(&b.1.count).then(a.1.last.cmp(&b.1.last)))
                .map(|(value, _)| value.clone())
            else {
                break;
            };
            if let Some(removed) = map.remove(&weakest) {
                dropped += removed.count;
                if let Some(gone) = gone.as_deref_mut() {
                    gone.push(weakest);
                }
            }
        }
        dropped
    }
}

/// What one observation looked like against the profile, per dimension, judged before it was
/// learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    pub dimension: Dimension,
    pub observed: String,
    pub familiarity: Familiarity,
    pub baseline: Vec<String>,
    /// New values are routine in this dimension for this entity (several a week).
    pub volatile: bool,
}

/// One entity's profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    phase: Phase,
    first_seen: i64,
    last_seen: i64,
    observations: u64,
    /// Start of the current day-long window and the new values seen in it.
    window_start: i64,
    new_in_window: u32,
    dimensions: BTreeMap<String, Values>,
}

impl Profile {
    pub fn new(now: i64) -> Self {
        Self {
            phase: Phase::WarmUp,
            first_seen: now,
            last_seen: now,
            observations: 0,
            window_start: now,
            new_in_window: 0,
            dimensions: BTreeMap::new(),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn observations(&self) -> u64 {
        self.observations
    }

    pub fn last_seen(&self) -> i64 {
        self.last_seen
    }

    /// Whole days of event time the profile spans.
    pub fn days(&self) -> i64 {
        (self.last_seen - self.first_seen) / DAY_MICROS
    }

    /// Whether a value is learned in a dimension.
    pub fn knows(&self, dimension: Dimension, value: &str) -> bool {
        self.dimensions
            .get(dimension.label())
            .is_some_and(|known| known.learned.contains_key(value))
    }

    /// Values learned in one dimension (a peer group's members, say).
    pub fn learned_in(&self, dimension: Dimension) -> usize {
        self.dimensions
            .get(dimension.label())
            .map_or(0, |known| known.learned.len())
    }

    /// What decides the profile's future judgements, apart from the counts of learned values: its
    /// phase, its learned and pending values with the pending ones' sightings, the day window and
    /// its novelty, and warm-up progress. A checkpoint is written whenever this changes, so a
    /// restart never judges differently from an uninterrupted run; only the counts and last
    /// sightings of learned values (how frequent, not whether known) may lag by a few observations.
    pub fn judgement_state(&self) -> JudgementState {
        let mut state = JudgementState {
            phase: self.phase,
            window_start: self.window_start,
            new_in_window: self.new_in_window,
            warm_up_observations: if self.phase == Phase::WarmUp {
                self.observations
            } else {
                0
            },
            ..JudgementState::default()
        };
        for dimension in self.dimensions.values() {
            state.learned += dimension.learned.len();
            state.pending += dimension.pending.len();
            state.pending_sightings += dimension
                .pending
                .values()
                .map(|seen| seen.count)
                .sum::<u64>();
        }
        state
    }

    /// Values held, learned and pending, across dimensions (for the state-size metric and bounds).
    pub fn values_held(&self) -> usize {
        self.dimensions
            .values()
            .map(|dimension| dimension.learned.len() + dimension.pending.len())
            .sum()
    }

    /// Judges one observation (`(dimension, value)` pairs) against what was learned, then learns from
    /// it. Judgements are returned only while the profile is stable: in warm-up and learning nothing
    /// is known well enough, and an unstable profile's novelty is its normal. `now` is event time;
    /// events out of order by less than the windows are fine.
    pub fn observe(
        &mut self,
        now: i64,
        values: &[(Dimension, String)],
        config: &BaselineConfig,
    ) -> Vec<Judged> {
        let judging = self.phase == Phase::Stable;
        let mut judged = Vec::new();
        if judging {
            for (name, value) in values {
                let dimension = self.dimensions.get(name.label());
                let familiarity =
                    dimension.map_or(Familiarity::Unseen, |known| known.familiarity(value));
                judged.push(Judged {
                    dimension: *name,
                    observed: value.clone(),
                    familiarity,
                    baseline: dimension.map(|known| known.top(5)).unwrap_or_default(),
                    volatile: dimension.is_some_and(|known| known.volatile(now)),
                });
            }
        }
        self.learn(now, values, config);
        judged
    }

    fn learn(&mut self, now: i64, values: &[(Dimension, String)], config: &BaselineConfig) {
        self.observations += 1;
        self.last_seen = self.last_seen.max(now);
        if now.saturating_sub(self.window_start) >= DAY_MICROS {
            // A day has passed: decide stability from the day that ended, then start a new one.
            self.settle_phase(config);
            self.window_start = now;
            self.new_in_window = 0;
            self.forget(now, config);
        }
        let stable = self.phase == Phase::Stable;
        for (name, value) in values {
            let dimension = self.dimensions.entry(name.label().to_owned()).or_default();
            dimension.total += 1;
            if let Some(seen) = dimension.learned.get_mut(value) {
                seen.count += 1;
                seen.last = seen.last.max(now);
                continue;
            }
            // A tail value that gave way to the cap is known: learned again, not new.
            if dimension.remembers(value) {
                dimension.learn_at_once(value, now, config.top_k);
                continue;
            }
            // Novelty is a value never met before; a pending value met again is not new again.
            if !dimension.pending.contains_key(value) {
                self.new_in_window = self.new_in_window.saturating_add(1);
                dimension.note_new(now);
            }
            if !stable {
                dimension.learn_at_once(value, now, config.top_k);
                continue;
            }
            // Stable: a new value waits until it has been around long enough and often enough.
            let pending = dimension.pending.entry(value.clone()).or_insert(Sightings {
                count: 0,
                first: now,
                last: now,
            });
            pending.count += 1;
            pending.last = pending.last.max(now);
            let ripe = now.saturating_sub(pending.first) >= config.pending_days * DAY_MICROS
                && pending.count >= config.pending_sightings;
            if ripe && let Some(promoted) = dimension.pending.remove(value) {
                dimension.learned.insert(value.clone(), promoted);
                dimension.trim_learned(config.top_k, now);
            } else {
                // Pending values were never learned: those that give way are not remembered.
                dimension.overflow += Values::trim(&mut dimension.pending, config.top_k, None);
            }
        }
        if self.phase == Phase::WarmUp && self.observations >= config.warmup_observations {
            self.phase = Phase::Learning;
        }
    }

    fn settle_phase(&mut self, config: &BaselineConfig) {
        let noisy = self.new_in_window > config.unstable_new_values_per_day;
        self.phase = match self.phase {
            Phase::WarmUp => Phase::WarmUp,
            Phase::Learning
                if self.last_seen.saturating_sub(self.first_seen)
                    < config.learning_days * DAY_MICROS =>
            {
                Phase::Learning
            }
            _ if noisy => Phase::Unstable,
            _ => Phase::Stable,
        };
    }

    fn forget(&mut self, now: i64, config: &BaselineConfig) {
        let horizon = now.saturating_sub(config.forget_days * DAY_MICROS);
        for dimension in self.dimensions.values_mut() {
            dimension.learned.retain(|_, seen| seen.last >= horizon);
            dimension.pending.retain(|_, seen| seen.last >= horizon);
            if let Some(given_way) = dimension.given_way.as_mut() {
                given_way.age(now, config.forget_days * DAY_MICROS);
            }
        }
        self.dimensions
            .retain(|_, dimension| !dimension.learned.is_empty() || !dimension.pending.is_empty());
    }
}

impl crate::checkpoint::Checkpoint for Profile {
    const KIND: &'static str = "baseline_profile";
    const VERSION: u32 = 1;
    fn legacy(bytes: &[u8]) -> Option<Self> {
        legacy_json(bytes, LEGACY_VERSION)
    }
}

/// A profile checkpointed before the envelope: its JSON with a `version` of its own.
pub(super) fn legacy_json<T: serde::de::DeserializeOwned>(bytes: &[u8], version: u32) -> Option<T> {
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let versioned: Versioned = serde_json::from_slice(bytes).ok()?;
    if versioned.version != version {
        return None;
    }
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint;

    const HOUR: i64 = 3_600_000_000;

    fn config() -> BaselineConfig {
        BaselineConfig::default()
    }

    /// Ten days of the same routine, a few times an hour in working hours.
    fn routine(profile: &mut Profile, start: i64, days: i64) -> i64 {
        let mut now = start;
        for day in 0..days {
            for hour in 9..17 {
                now = start + day * DAY_MICROS + hour * HOUR;
                profile.observe(
                    now,
                    &[
                        (Dimension::UserAgent, "kubectl/1".into()),
                        (
                            Dimension::Namespace,
                            if hour % 2 == 0 { "shop" } else { "payments" }.into(),
                        ),
                    ],
                    &config(),
                );
            }
        }
        now
    }

    #[test]
    fn phases_move_with_event_time_and_volume() {
        let mut profile = Profile::new(0);
        assert_eq!(profile.phase(), Phase::WarmUp);
        routine(&mut profile, 0, 3);
        assert_eq!(profile.phase(), Phase::Learning);
        routine(&mut profile, 3 * DAY_MICROS, 7);
        assert_eq!(profile.phase(), Phase::Stable);
    }

    #[test]
    fn nothing_is_judged_before_the_profile_is_stable() {
        let mut profile = Profile::new(0);
        let judged = profile.observe(0, &[(Dimension::Namespace, "x".into())], &config());
        assert!(judged.is_empty());
    }

    #[test]
    fn a_new_value_after_stability_is_unseen_and_waits_before_it_is_learned() {
        let mut profile = Profile::new(0);
        let end = routine(&mut profile, 0, 10);
        let attack = |profile: &mut Profile, at: i64| {
            profile.observe(
                at,
                &[(Dimension::Namespace, "kube-system".into())],
                &config(),
            )
        };
        let first = attack(&mut profile, end + HOUR);
        assert_eq!(first[0].familiarity, Familiarity::Unseen);
        assert_eq!(first[0].baseline.len(), 2);
        // Seen again the same day: still unseen (pending), so a burst is not learned away.
        let again = attack(&mut profile, end + 2 * HOUR);
        assert_eq!(again[0].familiarity, Familiarity::Unseen);
        // Around for pending_days with enough sightings: learned.
        routine(&mut profile, end + DAY_MICROS, 4);
        attack(&mut profile, end + 4 * DAY_MICROS + 20 * HOUR);
        let later = attack(&mut profile, end + 4 * DAY_MICROS + 21 * HOUR);
        assert_ne!(later[0].familiarity, Familiarity::Unseen);
        let known = profile.observe(
            end + 5 * DAY_MICROS,
            &[(Dimension::Namespace, "shop".into())],
            &config(),
        );
        assert_eq!(known[0].familiarity, Familiarity::Frequent);
    }

    #[test]
    fn a_profile_full_of_novelty_is_unstable_and_judges_nothing() {
        let mut profile = Profile::new(0);
        let end = routine(&mut profile, 0, 10);
        for index in 0..40 {
            profile.observe(
                end + HOUR + index,
                &[(Dimension::Namespace, format!("ci-{index}"))],
                &config(),
            );
        }
        // The next day settles the noisy one: unstable, and from then on nothing is judged.
        profile.observe(
            end + DAY_MICROS + 2 * HOUR,
            &[(Dimension::Namespace, "ci-new".into())],
            &config(),
        );
        assert_eq!(profile.phase(), Phase::Unstable);
        let judged = profile.observe(
            end + DAY_MICROS + 3 * HOUR,
            &[(Dimension::Namespace, "ci-newer".into())],
            &config(),
        );
        assert!(judged.is_empty());
        // A quiet day after it: stable again.
        routine(&mut profile, end + 2 * DAY_MICROS, 2);
        assert_eq!(profile.phase(), Phase::Stable);
    }

    #[test]
    fn unseen_values_are_forgotten_and_the_profile_stays_bounded() {
        let config = BaselineConfig {
            top_k: 8,
            ..BaselineConfig::default()
        };
        let mut profile = Profile::new(0);
        for index in 0..1000 {
            profile.observe(
                index * HOUR,
                &[(Dimension::Namespace, format!("ns-{index}"))],
                &config,
            );
        }
        assert!(profile.values_held() <= 16, "{}", profile.values_held());
        let mut quiet = Profile::new(0);
        routine(&mut quiet, 0, 10);
        quiet.observe(
            60 * DAY_MICROS,
            &[(Dimension::UserAgent, "kubectl/2".into())],
            &config,
        );
        assert_eq!(quiet.values_held(), 1, "the old values were forgotten");
    }

    #[test]
    fn values_that_gave_way_to_the_cap_are_rare_not_unseen() {
        let config = BaselineConfig {
            top_k: 8,
            ..BaselineConfig::default()
        };
        let mut profile = Profile::new(0);
        // Ten days of forty namespaces, each every day: 32 of them give way to the cap of 8.
        for day in 0..10 {
            for index in 0..40 {
                profile.observe(
                    day * DAY_MICROS + index * 60_000_000,
                    &[(Dimension::Namespace, format!("tenant-{index}"))],
                    &config,
                );
            }
        }
        assert_eq!(profile.phase(), Phase::Stable);
        let judge = |profile: &mut Profile, value: &str| {
            profile.observe(
                10 * DAY_MICROS + HOUR,
                &[(Dimension::Namespace, value.to_owned())],
                &config,
            )[0]
            .familiarity
        };
        let tail: Vec<Familiarity> = (0..40)
            .map(|index| judge(&mut profile.clone(), &format!("tenant-{index}")))
            .collect();
        assert!(
            tail.iter()
                .all(|familiarity| *familiarity != Familiarity::Unseen),
            "{tail:?}"
        );
        assert!(tail.contains(&Familiarity::Rare), "{tail:?}");
        assert_eq!(
            judge(&mut profile.clone(), "kube-system"),
            Familiarity::Unseen
        );
        // The sketch survives a checkpoint, and bounds the profile.
        let restored: Profile = checkpoint::decode(&checkpoint::encode(&profile).unwrap()).unwrap();
        assert_eq!(restored, profile);
        let size = checkpoint::encode(&profile).unwrap().len();
        assert!(size < 4_000, "{size}");
        // Forgotten as learned values are: two periods on, the tail is gone.
        let mut later = profile.clone();
        for step in 1..=3 {
            later.observe(
                10 * DAY_MICROS + step * config.forget_days * DAY_MICROS,
                &[(Dimension::UserAgent, "kubectl/1".into())],
                &config,
            );
        }
        assert_eq!(judge(&mut later, "tenant-3"), Familiarity::Unseen);
    }

    #[test]
    fn checkpoints_round_trip_read_the_form_before_the_envelope_and_refuse_other_versions() {
        let mut profile = Profile::new(0);
        routine(&mut profile, 0, 10);
        let bytes = checkpoint::encode(&profile).unwrap();
        assert_eq!(checkpoint::decode::<Profile>(&bytes).unwrap(), profile);
        let other =
            String::from_utf8(bytes)
                .unwrap()
                .replacen("\"version\":1", "\"version\":99", 1);
        assert!(checkpoint::decode::<Profile>(other.as_bytes()).is_err());
        assert!(checkpoint::decode::<Profile>(b"not json").is_err());
        // What an earlier release wrote: the profile's JSON with a version of its own.
        let mut legacy = serde_json::to_value(&profile).unwrap();
        legacy["version"] = 1.into();
        let legacy = serde_json::to_vec(&legacy).unwrap();
        assert_eq!(checkpoint::decode::<Profile>(&legacy).unwrap(), profile);
        let mut future = serde_json::to_value(&profile).unwrap();
        future["version"] = 2.into();
        assert!(checkpoint::decode::<Profile>(&serde_json::to_vec(&future).unwrap()).is_err());
    }
}
