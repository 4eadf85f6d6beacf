//! Volume baselines: how many secret reads, permission checks and denied requests each principal
//! makes in an hour of event time, learned per principal, and a finding when an hour departs from
//! it by far. The other baselines ([`crate::anomaly`]) judge *what* a principal does; these judge
//! *how much*: a service account that reads its two secrets a day and suddenly reads sixty in an
//! hour is a stolen token enumerating what it can reach, although every single call is one it
//! always makes.
//!
//! | burst of | type | severity |
//! |---|---|---|
//! | get/list/watch of secrets | `CredentialAccess:Kubernetes/AnomalousBehavior.SecretsAccessedBurst` | Medium |
//! | self/subject access or rules reviews | `Discovery:Kubernetes/AnomalousBehavior.PermissionCheckedBurst` | Low |
//! | requests refused (403) | `Discovery:Kubernetes/AnomalousBehavior.DeniedRequestsBurst` | Medium |
//!
//! All three are Vigil types in GuardDuty's naming; GuardDuty has no volume variants.
//!
//! Trigger: the principal has been seen (any call) for [`BaselineConfig::learning_days`] of event
//! time, and its count of the category in the current clock hour reaches both the category's floor
//! (20 secret reads, 10 permission checks, 20 denied requests) and [`BURST_FACTOR`] times the
//! busiest hour it learned. It fires once per principal, category and hour. An hour that fired is
//! not learned, so a burst does not raise the bar for the next one; the busiest hour is remembered
//! over two periods of [`PERIOD_HOURS`] so an old peak is forgotten after 15 to 30 days. The
//! control plane, EKS and anonymous callers are not profiled.
//!
//! State per principal is a few hundred bytes at most, checkpointed when an hour closes, when a
//! burst fires and with every counted event ([`CHECKPOINT_EVERY`]). A replay after a crash is not counted
//! twice: the profile remembers the ids of the last [`RECENT_IDS`] events it counted. Events out of
//! time order (several API servers, a shipper's batching) count like the others.
//!
//! Aggregation key: principal (one finding per principal and type, its count the bursts).

use serde::{Deserialize, Serialize};
use vigil_schemas::{AnomalyObservation, AuditEvent, Detection, EnrichedEvent};

use super::dimensions::Dimension;
use super::store::{ProfileStore, Stored};
use crate::baselines::BaselineConfig;
use crate::detection::{Verdict, detection, severity};
use crate::facts::effective_user;
use crate::facts::is_anonymous;
use crate::{Detector, StateEntry};

use vigil_schemas::time::HOUR_MICROS;
/// A burst is this many times the busiest learned hour (and at least the category's floor).
pub const BURST_FACTOR: u32 = 4;
/// The busiest hour is kept for the current and the previous period of this many hours.
pub const PERIOD_HOURS: i64 = 15 * 24;
/// Counted events between checkpoints: every one, since the count is the judgement (a count lost
/// to a crash would delay a burst's finding). Counted events are a small part of the traffic.
pub const CHECKPOINT_EVERY: u32 = 1;
/// The form volume profiles were checkpointed in before the envelope, still read.
const LEGACY_VERSION: u32 = 1;
/// Ids remembered against replays: a checkpoint can hold events whose input offsets were not yet
/// committed when the stage died; they come again and are recognised (a principal with more
/// counted events than this in the input a crash replays is over-counted by the difference).
pub const RECENT_IDS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    SecretReads,
    PermissionChecks,
    DeniedRequests,
}

impl Category {
    /// The fewest events in an hour that can be a burst, however quiet the principal was.
    fn floor(self) -> u32 {
        match self {
            Self::SecretReads | Self::DeniedRequests => 20,
            Self::PermissionChecks => 10,
        }
    }

    fn dimension(self) -> Dimension {
        match self {
            Self::SecretReads => Dimension::SecretReadsPerHour,
            Self::PermissionChecks => Dimension::PermissionChecksPerHour,
            Self::DeniedRequests => Dimension::DeniedRequestsPerHour,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::SecretReads => "secret reads",
            Self::PermissionChecks => "permission checks",
            Self::DeniedRequests => "denied requests",
        }
    }

    fn finding(self) -> (&'static str, f64) {
        match self {
            Self::SecretReads => (
                "CredentialAccess:Kubernetes/AnomalousBehavior.SecretsAccessedBurst",
                severity::MEDIUM,
            ),
            Self::PermissionChecks => (
                "Discovery:Kubernetes/AnomalousBehavior.PermissionCheckedBurst",
                severity::LOW,
            ),
            Self::DeniedRequests => (
                "Discovery:Kubernetes/AnomalousBehavior.DeniedRequestsBurst",
                severity::MEDIUM,
            ),
        }
    }

    /// The category of an audit event, if it is one that is counted.
    fn of(event: &AuditEvent) -> Option<Self> {
        if event.status_code == Some(403) {
            return Some(Self::DeniedRequests);
        }
        if !matches!(event.status_code, Some(200..=299) | None) {
            return None;
        }
        let object = event.object_ref.as_ref()?;
        if object.subresource.is_some() {
            return None;
        }
        match (object.resource.as_deref()?, event.verb.as_str()) {
            ("secrets", "get" | "list" | "watch") => Some(Self::SecretReads),
            (
                "selfsubjectaccessreviews"
                | "selfsubjectrulesreviews"
                | "subjectaccessreviews"
                | "localsubjectaccessreviews",
                "create",
            ) => Some(Self::PermissionChecks),
            _ => None,
        }
    }
}

/// One category's volumes in a principal's profile.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CategoryVolume {
    /// Events in the hour being counted.
    count: u32,
    /// Whether the category already fired in that hour.
    fired: bool,
    /// Busiest learned hour in the current period and in the previous one.
    busiest: u32,
    busiest_before: u32,
    /// Learned hours in which the category occurred, and its events in them.
    active_hours: u32,
    learned_events: u64,
}

impl CategoryVolume {
    fn learned_busiest(&self) -> u32 {
        self.busiest.max(self.busiest_before)
    }

    fn mean_of_active_hours(&self) -> f64 {
        if self.active_hours == 0 {
            0.0
        } else {
            self.learned_events as f64 / f64::from(self.active_hours)
        }
    }

    /// Folds the finished hour in (unless it fired) and, on a new period, shifts the busiest hour.
    fn close_hour(&mut self, new_period: Option<bool>) {
        if self.count > 0 && !self.fired {
            self.busiest = self.busiest.max(self.count);
            self.active_hours = self.active_hours.saturating_add(1);
            self.learned_events = self.learned_events.saturating_add(u64::from(self.count));
        }
        if let Some(adjacent) = new_period {
            // Two periods apart or more: the previous period saw nothing either.
            self.busiest_before = if adjacent { self.busiest } else { 0 };
            self.busiest = 0;
        }
        self.count = 0;
        self.fired = false;
    }
}

/// One principal's hourly volumes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct VolumeProfile {
    /// Hour (event time, hours since the epoch) the principal was first seen.
    first_hour: i64,
    /// The hour being counted.
    hour: i64,
    /// The period (of [`PERIOD_HOURS`]) the busiest hours belong to.
    period: i64,
    secret_reads: CategoryVolume,
    permission_checks: CategoryVolume,
    denied_requests: CategoryVolume,
    /// Replay guard: hashes of the ids of the last [`RECENT_IDS`] events counted.
    recent_ids: Vec<u32>,
}

impl VolumeProfile {
    fn new(hour: i64) -> Self {
        Self {
            first_hour: hour,
            hour,
            period: hour.div_euclid(PERIOD_HOURS),
            ..Self::default()
        }
    }

    fn category(&mut self, category: Category) -> &mut CategoryVolume {
        match category {
            Category::SecretReads => &mut self.secret_reads,
            Category::PermissionChecks => &mut self.permission_checks,
            Category::DeniedRequests => &mut self.denied_requests,
        }
    }

    fn learned_events(&self) -> u64 {
        [
            &self.secret_reads,
            &self.permission_checks,
            &self.denied_requests,
        ]
        .iter()
        .map(|volume| volume.learned_events)
        .sum()
    }

    /// Folds the finished hour into what is learned and starts `hour`.
    fn roll_to(&mut self, hour: i64) {
        let period = hour.div_euclid(PERIOD_HOURS);
        let new_period = (period != self.period).then_some(period == self.period + 1);
        for volume in [
            &mut self.secret_reads,
            &mut self.permission_checks,
            &mut self.denied_requests,
        ] {
            volume.close_hour(new_period);
        }
        self.period = period;
        self.hour = hour;
    }

    /// True when the event was counted before (a replay).
    fn already_counted(&self, id: u32) -> bool {
        self.recent_ids.contains(&id)
    }

    fn remember(&mut self, id: u32) {
        if self.recent_ids.len() >= RECENT_IDS {
            self.recent_ids.remove(0);
        }
        self.recent_ids.push(id);
    }
}

impl crate::checkpoint::Checkpoint for VolumeProfile {
    const KIND: &'static str = "volume_profile";
    const VERSION: u32 = 1;
    fn legacy(bytes: &[u8]) -> Option<Self> {
        super::profile::legacy_json(bytes, LEGACY_VERSION)
    }
}

/// FNV-1a: stable across processes, for the replay guard's ids (32 bits: collisions among a few
/// dozen recent ids are negligible, and the checkpoint stays small).
fn stable_hash(text: &str) -> u32 {
    vigil_schemas::hash::fnv1a_32(text.as_bytes())
}

/// Volume profiles live in the store every baseline uses; their "time" is the hour counted, and
/// every counted event is checkpointed.
impl Stored for VolumeProfile {
    type State = ();
    const CHECKPOINT_EVERY: u32 = CHECKPOINT_EVERY;
    const PHASES: &'static [&'static str] = &["tracked"];
    fn started(hour: i64) -> Self {
        Self::new(hour)
    }
    fn last_seen(&self) -> i64 {
        self.hour
    }
    fn state(&self) -> Self::State {}
    fn phase_label(&self) -> &'static str {
        "tracked"
    }
}

/// Hourly volume profiles per principal, and the burst findings they give.
#[derive(Debug)]
pub struct VolumeBaselines {
    config: BaselineConfig,
    /// The principals' profiles, capped in all and per cluster as the principal baselines are.
    store: ProfileStore<VolumeProfile>,
}

impl VolumeBaselines {
    pub fn new(config: BaselineConfig, max_principals: usize, max_per_cluster: usize) -> Self {
        Self {
            config,
            store: ProfileStore::new(max_principals, max_per_cluster),
        }
    }

    /// Principals profiled now.
    pub fn principals(&self) -> usize {
        self.store.len()
    }
}

impl Default for VolumeBaselines {
    fn default() -> Self {
        let caps = crate::BaselineCaps::default();
        Self::new(
            BaselineConfig::default(),
            caps.principals,
            caps.principals_per_cluster,
        )
    }
}

impl Detector for VolumeBaselines {
    fn name(&self) -> &'static str {
        "volume_baselines"
    }

    fn drain_state(&mut self, out: &mut Vec<StateEntry>) {
        self.store.drain(out);
    }

    fn flush_state(&mut self) {
        self.store.flush();
    }

    fn profiles(&self) -> Vec<crate::ProfileCounts> {
        vec![self.store.counts(super::Scope::Principal)]
    }

    fn restore(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        self.store.restore(key, value)
    }

    fn source(&self) -> crate::Source {
        crate::Source::Audit
    }
    fn inspect_audit(
        &mut self,
        event: &AuditEvent,
        enriched: &EnrichedEvent,
        out: &mut Vec<Detection>,
    ) {
        let category = Category::of(event);
        let user = effective_user(event);
        if is_anonymous(event)
            || user.username.is_empty()
            || crate::facts::is_system_username(&user.username)
        {
            return;
        }
        let micros = event.event_time_micros;
        let hour = micros.div_euclid(HOUR_MICROS);
        let key = format!("{}/{}", enriched.cluster.name, user.username);
        // Any call starts the principal's learning period, so that a first-ever burst of refusals
        // from a principal known for weeks is judged; other calls are not counted.
        if !self.store.profiles.contains_key(&key) && self.store.entry(&key, hour).is_some() {
            self.store.save(&key);
        }
        let Some(category) = category else {
            return;
        };
        let Some(tracked) = self.store.profiles.get_mut(&key) else {
            return;
        };
        let profile = &mut tracked.profile;
        let id = stable_hash(&event.audit_id);
        if profile.already_counted(id) {
            return;
        }
        profile.remember(id);
        let mut save = false;
        // A late event (an earlier hour than the one counted) counts in the current hour: hours
        // only move forward, so a replayed or reordered stream cannot reopen a closed one.
        if hour > profile.hour {
            profile.roll_to(hour);
            save = true;
        }
        let learning_hours = self.config.learning_days.saturating_mul(24);
        let stable = profile.hour - profile.first_hour >= learning_hours;
        let days = (profile.hour - profile.first_hour) / 24;
        let learned_events = profile.learned_events();
        let volume = profile.category(category);
        volume.count = volume.count.saturating_add(1);
        let count = volume.count;
        let busiest = volume.learned_busiest();
        let bar = category.floor().max(busiest.saturating_mul(BURST_FACTOR));
        if stable && !volume.fired && count >= bar {
            volume.fired = true;
            save = true;
            let burst = Burst {
                category,
                count,
                busiest,
                mean: volume.mean_of_active_hours(),
                active: volume.active_hours,
                hour,
                days,
                learned_events,
            };
            out.push(burst_detection(enriched, event, &user.username, &burst));
        }
        if save {
            self.store.save(&key);
        } else {
            self.store.checkpoint(&key);
        }
    }
}

/// One principal's burst in one category of calls, with the numbers its finding quotes.
struct Burst {
    category: Category,
    count: u32,
    busiest: u32,
    mean: f64,
    active: u32,
    hour: i64,
    days: i64,
    learned_events: u64,
}

/// The finding for a burst, explained against the principal's busiest learned hour.
fn burst_detection(
    enriched: &EnrichedEvent,
    event: &AuditEvent,
    username: &str,
    burst: &Burst,
) -> Detection {
    let Burst {
        category,
        count,
        busiest,
        mean,
        active,
        hour,
        days,
        learned_events,
    } = *burst;
    let hour_start = vigil_schemas::time::format_rfc3339_millis(hour * HOUR_MICROS);
    let baseline = vec![
        format!("busiest hour: {busiest}"),
        format!("mean of active hours: {mean:.1}"),
        format!("active hours: {active}"),
    ];
    let (finding_type, severity) = category.finding();
    let verdict = Verdict {
        finding_type: finding_type.to_owned(),
        severity,
        title: format!(
            "Burst of {} by {}: {count} in an hour.",
            category.what(),
            username
        ),
        description: format!(
            "{} made {count} {} in the hour from {hour_start}; in {days} days of baseline its busiest hour held {busiest} and an hour with any held {mean:.1} on average. A burst this far above its own habit is how a stolen credential enumerates what it can reach.",
            username,
            category.what()
        ),
        aggregation_key: vec![username.to_owned()],
    };
    let mut found = detection(enriched, event, "volume_baselines", verdict);
    found.anomaly = vec![AnomalyObservation {
        scope: super::Scope::Principal.label().into(),
        entity: username.to_owned(),
        dimension: category.dimension().label().into(),
        observed: format!("{count} in the hour from {hour_start}"),
        familiarity: "unseen".into(),
        baseline,
        profile_observations: i64::try_from(learned_events).unwrap_or(i64::MAX),
        profile_days: days,
    }];
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_in(cluster: &str, user: &str, at: i64) -> EnrichedEvent {
        EnrichedEvent {
            audit: Some(AuditEvent {
                audit_id: format!("{cluster}-{user}-{at}"),
                event_time_micros: at,
                verb: "get".into(),
                user: vigil_schemas::UserInfo {
                    username: user.into(),
                    ..vigil_schemas::UserInfo::default()
                },
                object_ref: Some(vigil_schemas::ObjectRef {
                    resource: Some("secrets".into()),
                    ..vigil_schemas::ObjectRef::default()
                }),
                status_code: Some(200),
                ..AuditEvent::default()
            }),
            cluster: vigil_schemas::ClusterDetails {
                name: cluster.into(),
                ..vigil_schemas::ClusterDetails::default()
            },
            ..EnrichedEvent::default()
        }
    }

    #[test]
    fn a_cluster_flooding_new_principals_evicts_its_own() {
        let mut volume = VolumeBaselines::new(BaselineConfig::default(), 10, 4);
        let mut out = Vec::new();
        for (index, user) in ["b1", "b2", "b3"].iter().enumerate() {
            crate::inspect(
                &mut volume,
                &call_in("b", user, i64::try_from(index).unwrap_or(0) * HOUR_MICROS),
                &mut out,
            );
        }
        for index in 0..8i64 {
            crate::inspect(
                &mut volume,
                &call_in("a", &format!("a{index}"), (10 + index) * HOUR_MICROS),
                &mut out,
            );
        }
        let counts = volume.profiles();
        assert_eq!(counts[0].largest_cluster, 4);
        assert_eq!(counts[0].capacity_per_cluster, 4);
        assert!(
            volume.store.profiles.contains_key("b/b1")
                && volume.store.profiles.contains_key("a/a7")
        );
        assert!(!volume.store.profiles.contains_key("a/a0"));
        assert_eq!(volume.principals(), 7);
        assert_eq!(volume.store.caps.counted(), volume.principals());
        let mut state = Vec::new();
        volume.drain_state(&mut state);
        let dropped: Vec<&str> = state
            .iter()
            .filter(|entry| entry.value.is_none())
            .map(|entry| entry.key.as_str())
            .collect();
        assert_eq!(dropped, ["a/a0", "a/a1", "a/a2", "a/a3"]);
    }

    #[test]
    fn categories_are_read_from_the_call_and_its_status() {
        let mut event = AuditEvent {
            verb: "get".into(),
            status_code: Some(200),
            object_ref: Some(vigil_schemas::ObjectRef {
                resource: Some("secrets".into()),
                ..Default::default()
            }),
            ..AuditEvent::default()
        };
        assert_eq!(Category::of(&event), Some(Category::SecretReads));
        event.status_code = Some(403);
        assert_eq!(Category::of(&event), Some(Category::DeniedRequests));
        event.status_code = Some(404);
        assert_eq!(Category::of(&event), None);
        event.status_code = Some(200);
        event.verb = "delete".into();
        assert_eq!(Category::of(&event), None);
    }

    #[test]
    fn a_profile_round_trips_and_an_unknown_version_is_refused() {
        use crate::checkpoint;
        let mut profile = VolumeProfile::new(10);
        profile.secret_reads.count = 3;
        profile.denied_requests.count = 1;
        let bytes = checkpoint::encode(&profile).unwrap();
        assert_eq!(
            checkpoint::decode::<VolumeProfile>(&bytes).unwrap(),
            profile
        );
        let mut legacy = serde_json::to_value(&profile).unwrap();
        legacy["version"] = 1.into();
        let legacy = serde_json::to_vec(&legacy).unwrap();
        assert_eq!(
            checkpoint::decode::<VolumeProfile>(&legacy).unwrap(),
            profile
        );
        let other =
            String::from_utf8(bytes)
                .unwrap()
                .replacen("\"version\":1", "\"version\":99", 1);
        assert!(checkpoint::decode::<VolumeProfile>(other.as_bytes()).is_err());
        assert!(
            checkpoint::decode::<crate::baselines::Profile>(&legacy).is_err(),
            "another kind"
        );
    }

    #[test]
    fn the_busiest_hour_is_forgotten_after_two_periods() {
        let mut profile = VolumeProfile::new(0);
        profile.secret_reads.count = 9;
        profile.roll_to(1);
        assert_eq!(profile.secret_reads.learned_busiest(), 9);
        profile.roll_to(PERIOD_HOURS + 1);
        assert_eq!(
            profile.secret_reads.learned_busiest(),
            9,
            "kept through the next period"
        );
        profile.roll_to(2 * PERIOD_HOURS + 1);
        assert_eq!(profile.secret_reads.learned_busiest(), 0, "gone after two");
    }
}
