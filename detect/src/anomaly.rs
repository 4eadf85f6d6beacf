//! Behaviour baselines of principals: each human or workload identity's profile of what it does
//! (user agent, network origin, namespace, API call, time of week, images it deploys), learned from
//! event time ([`crate::baseline`]), and GuardDuty's `AnomalousBehavior` findings when a
//! security-relevant call departs from it. A finding explains itself: which dimensions were unusual,
//! what was observed and what the baseline held (`service.detection.anomaly`).
//!
//! Security-relevant calls, and the types they raise when unusual:
//!
//! | call | type | severity |
//! |---|---|---|
//! | `pods/exec` | `Execution:Kubernetes/AnomalousBehavior.ExecInPod` | Medium |
//! | get/list/watch of secrets | `CredentialAccess:Kubernetes/AnomalousBehavior.SecretsAccessed` | Medium |
//! | Role/ClusterRole created or changed | `PrivilegeEscalation:Kubernetes/AnomalousBehavior.RoleCreated` | Low |
//! | (Cluster)RoleBinding created or changed | `PrivilegeEscalation:Kubernetes/AnomalousBehavior.RoleBindingCreated` | Medium (High for admin, cluster-admin) |
//! | self/subject access or rules review | `Discovery:Kubernetes/AnomalousBehavior.PermissionChecked` | Low |
//! | workload created or changed | `Execution:Kubernetes/AnomalousBehavior.WorkloadDeployed` | Low |
//! | ... with a privileged container | `PrivilegeEscalation:Kubernetes/AnomalousBehavior.WorkloadDeployed!PrivilegedContainer` | High |
//! | ... with a sensitive host mount | `Persistence:Kubernetes/AnomalousBehavior.WorkloadDeployed!ContainerWithSensitiveMount` | High |
//!
//! Unusual means: the principal's profile is stable, and the call is one it never made (API call,
//! such as `create pods/exec` or `list secrets`, unseen), or in a namespace it never touched, or two
//! of user agent, network origin and (for workloads) image are unseen together. One new network or one
//! new client alone is not enough (a person working from home), and a dimension where new values are
//! routine (several a week: CI's daily preview namespaces) does not count. Time of week is reported
//! when unusual but weighs nothing: people work late. The control plane, EKS and anonymous callers are
//! not profiled (the audit rules cover them).
//!
//! Aggregation key: principal, type's object (the pod, the namespace's secrets, the role...).

use std::collections::HashMap;

use vigil_schemas::{AnomalyObservation, AuditEvent, Detection, EnrichedEvent};

use crate::baseline::{
    BaselineConfig, Familiarity, Judged, Profile, network_origin, time_of_week, user_agent_family,
};
use crate::context::{
    Verdict, detection, is_anonymous, is_health_endpoint, object_name, severity, succeeded,
};
use crate::rules::{effective_user, is_sensitive};
use crate::{Detector, StateEntry};

/// What an unseen value of a dimension weighs. A call is anomalous from [`ANOMALY_WEIGHT`]: a kind of
/// call the principal never made, or a namespace it never touched, weighs that much alone (unless new
/// namespaces are routine for it: CI's daily preview namespaces); a new client, network or image
/// weighs half, so one of them alone (a person working from home, a new tool) is not enough, and two
/// together (a known call from a new network with a new client) are. Time of week weighs nothing:
/// people work late; it is reported when unusual.
const WEIGHTS: [(&str, u32); 5] = [
    ("apiCall", 2),
    ("namespace", 2),
    ("userAgent", 1),
    ("networkOrigin", 1),
    ("image", 1),
];
const ANOMALY_WEIGHT: u32 = 2;

/// Observations between checkpoints of an unchanged profile: counts lost to a crash are at most
/// this many per principal, and a replay cannot double them (the state written with an input's
/// outputs already holds that input).
const CHECKPOINT_EVERY: u32 = 32;

#[derive(Debug)]
struct Tracked {
    profile: Profile,
    unsaved: u32,
    values_at_save: usize,
    phase_at_save: crate::baseline::Phase,
}

impl Tracked {
    fn new(profile: Profile) -> Self {
        Self {
            values_at_save: profile.values_held(),
            phase_at_save: profile.phase(),
            profile,
            unsaved: 0,
        }
    }
}

/// Profiles by entity, bounded, with the checkpoint entries their changes call for: one store serves
/// every scope (principals, images).
#[derive(Debug)]
struct ProfileStore {
    profiles: HashMap<String, Tracked>,
    max_entities: usize,
    /// Profiles one cluster may hold, so that a noisy cluster (a flood of new service accounts)
    /// cannot push the others' baselines out.
    max_per_cluster: usize,
    /// Profiles held per cluster (the key's part before its first `/`).
    per_cluster: HashMap<String, usize>,
    changes: Vec<StateEntry>,
    evicted: u64,
}

/// The cluster part of a profile key (`cluster/entity`).
fn cluster_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(cluster, _)| cluster)
}

impl ProfileStore {
    fn new(max_entities: usize, max_per_cluster: usize) -> Self {
        Self {
            profiles: HashMap::new(),
            max_entities: max_entities.max(1),
            max_per_cluster: max_per_cluster.clamp(1, max_entities.max(1)),
            per_cluster: HashMap::new(),
            changes: Vec::new(),
            evicted: 0,
        }
    }

    fn insert(&mut self, key: &str, tracked: Tracked) {
        if self.profiles.insert(key.to_owned(), tracked).is_none() {
            *self
                .per_cluster
                .entry(cluster_of(key).to_owned())
                .or_default() += 1;
        }
    }

    fn remove(&mut self, key: &str) -> bool {
        if self.profiles.remove(key).is_none() {
            return false;
        }
        let cluster = cluster_of(key);
        if let Some(count) = self.per_cluster.get_mut(cluster) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_cluster.remove(cluster);
            }
        }
        true
    }

    /// Drops the `count` profiles seen least recently (of `cluster` only, when given), and says so
    /// to the checkpoint.
    fn evict(&mut self, cluster: Option<&str>, count: usize) {
        let mut by_age: Vec<(i64, String)> = self
            .profiles
            .iter()
            .filter(|(key, _)| cluster.is_none_or(|cluster| cluster_of(key) == cluster))
            .map(|(key, tracked)| (tracked.profile.last_seen(), key.clone()))
            .collect();
        by_age.sort();
        for (_, old) in by_age.into_iter().take(count) {
            if self.remove(&old) {
                self.evicted += 1;
                self.changes.push(StateEntry {
                    key: old,
                    value: Vec::new(),
                });
            }
        }
    }

    fn counts(&self) -> crate::ProfileCounts {
        use crate::baseline::Phase;
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
            by_phase: by_phase
                .iter()
                .map(|(phase, count)| (phase.label(), *count))
                .collect(),
            capacity: self.max_entities,
            capacity_per_cluster: self.max_per_cluster,
            largest_cluster: self.per_cluster.values().copied().max().unwrap_or(0),
            evicted: self.evicted,
        }
    }

    /// The entity's profile, made (room first: the entities seen least recently, a tenth of the cap
    /// at a time, so eviction is rare; of its own cluster when that cluster is at its cap) when it
    /// is new.
    fn entry(&mut self, key: &str, now: i64) -> Option<&mut Tracked> {
        if !self.profiles.contains_key(key) {
            let cluster = cluster_of(key);
            if self.per_cluster.get(cluster).copied().unwrap_or(0) >= self.max_per_cluster {
                let cluster = cluster.to_owned();
                self.evict(Some(&cluster), self.max_per_cluster / 10 + 1);
            } else if self.profiles.len() >= self.max_entities {
                self.evict(None, self.max_entities / 10 + 1);
            }
            self.insert(key, Tracked::new(Profile::new(now)));
        }
        // Looked up by `&str`: a known entity (nearly every event) costs no key allocation.
        self.profiles.get_mut(key)
    }

    /// Writes the profile when it changed materially (a value learned, pending or forgotten, a phase
    /// left) or every [`CHECKPOINT_EVERY`] observations.
    fn checkpoint(&mut self, key: &str) {
        let Some(tracked) = self.profiles.get_mut(key) else {
            return;
        };
        tracked.unsaved += 1;
        let values = tracked.profile.values_held();
        let phase = tracked.profile.phase();
        if tracked.unsaved >= CHECKPOINT_EVERY
            || values != tracked.values_at_save
            || phase != tracked.phase_at_save
        {
            tracked.unsaved = 0;
            tracked.values_at_save = values;
            tracked.phase_at_save = phase;
            self.changes.push(StateEntry {
                key: key.to_owned(),
                value: tracked.profile.encode(),
            });
        }
    }

    fn restore(&mut self, key: &str, value: &[u8]) {
        match Profile::decode(value) {
            Some(profile) => self.insert(key, Tracked::new(profile)),
            None => {
                self.remove(key);
            }
        }
    }

    fn drain(&mut self, out: &mut Vec<StateEntry>) {
        out.append(&mut self.changes);
    }

    fn len(&self) -> usize {
        self.profiles.len()
    }
}

/// A stable profile's judgement of one observation, with the numbers the explanation quotes.
fn observe(
    store: &mut ProfileStore,
    key: &str,
    now: i64,
    values: &[(&str, String)],
    config: &BaselineConfig,
) -> (Vec<Judged>, i64, i64) {
    let Some(tracked) = store.entry(key, now) else {
        return (Vec::new(), 0, 0);
    };
    let judged = tracked.profile.observe(now, values, config);
    let observations = i64::try_from(tracked.profile.observations()).unwrap_or(i64::MAX);
    let days = tracked.profile.days();
    store.checkpoint(key);
    (judged, observations, days)
}

/// The unusual dimensions as a finding's `anomaly`.
fn explanation(
    scope: &str,
    entity: &str,
    unusual: &[&Judged],
    observations: i64,
    days: i64,
) -> Vec<AnomalyObservation> {
    unusual
        .iter()
        .map(|judged| AnomalyObservation {
            scope: scope.into(),
            entity: entity.to_owned(),
            dimension: judged.dimension.clone(),
            observed: judged.observed.clone(),
            familiarity: judged.familiarity.label().into(),
            baseline: judged.baseline.clone(),
            profile_observations: observations,
            profile_days: days,
        })
        .collect()
}

/// The principals' profiles and the anomaly findings they give.
#[derive(Debug)]
pub struct PrincipalBaselines {
    config: BaselineConfig,
    sensitive_paths: Vec<String>,
    store: ProfileStore,
}

impl PrincipalBaselines {
    pub fn new(
        config: BaselineConfig,
        sensitive_paths: Vec<String>,
        max_principals: usize,
        max_per_cluster: usize,
    ) -> Self {
        Self {
            config,
            sensitive_paths,
            store: ProfileStore::new(max_principals, max_per_cluster),
        }
    }

    /// Principals profiled now.
    pub fn principals(&self) -> usize {
        self.store.len()
    }
}

impl Default for PrincipalBaselines {
    fn default() -> Self {
        let caps = crate::BaselineCaps::default();
        Self::new(
            BaselineConfig::default(),
            crate::rules::default_sensitive_host_paths(),
            caps.principals,
            caps.principals_per_cluster,
        )
    }
}

/// What kind of security-relevant call an event is, if any: (type, severity, what it acted on).
fn relevant(event: &AuditEvent, sensitive_paths: &[String]) -> Option<(&'static str, f64, String)> {
    let object = event.object_ref.as_ref()?;
    let resource = object.resource.as_deref()?;
    let subresource = object.subresource.as_deref();
    let verb = event.verb.as_str();
    let writes = matches!(verb, "create" | "update" | "patch");
    let target = object_name(event);
    Some(match (resource, subresource) {
        ("pods", Some("exec")) => (
            "Execution:Kubernetes/AnomalousBehavior.ExecInPod",
            severity::MEDIUM,
            target,
        ),
        ("secrets", None) if matches!(verb, "get" | "list" | "watch") => (
            "CredentialAccess:Kubernetes/AnomalousBehavior.SecretsAccessed",
            severity::MEDIUM,
            target,
        ),
        ("roles" | "clusterroles", None) if writes => (
            "PrivilegeEscalation:Kubernetes/AnomalousBehavior.RoleCreated",
            severity::LOW,
            target,
        ),
        ("rolebindings" | "clusterrolebindings", None) if writes => {
            let admin = event.role_binding.as_ref().is_some_and(|binding| {
                matches!(binding.role_ref_name.as_str(), "admin" | "cluster-admin")
            });
            (
                "PrivilegeEscalation:Kubernetes/AnomalousBehavior.RoleBindingCreated",
                if admin {
                    severity::HIGH
                } else {
                    severity::MEDIUM
                },
                target,
            )
        }
        (
            "selfsubjectaccessreviews"
            | "selfsubjectrulesreviews"
            | "subjectaccessreviews"
            | "localsubjectaccessreviews",
            None,
        ) if verb == "create" => (
            "Discovery:Kubernetes/AnomalousBehavior.PermissionChecked",
            severity::LOW,
            target,
        ),
        _ if writes && subresource.is_none() => {
            let workload = event.workload.as_ref()?;
            let privileged = workload
                .containers
                .iter()
                .any(|container| container.privileged);
            let mounted = workload.volumes.iter().any(|volume| {
                volume
                    .host_path
                    .as_deref()
                    .is_some_and(|path| is_sensitive(path, sensitive_paths))
            });
            if privileged {
                (
                    "PrivilegeEscalation:Kubernetes/AnomalousBehavior.WorkloadDeployed!PrivilegedContainer",
                    severity::HIGH,
                    target,
                )
            } else if mounted {
                (
                    "Persistence:Kubernetes/AnomalousBehavior.WorkloadDeployed!ContainerWithSensitiveMount",
                    severity::HIGH,
                    target,
                )
            } else {
                (
                    "Execution:Kubernetes/AnomalousBehavior.WorkloadDeployed",
                    severity::LOW,
                    target,
                )
            }
        }
        _ => return None,
    })
}

/// An image without its tag or digest: `registry.example/shop/web`.
fn image_repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rsplit_once(':') {
        // A colon after the last slash is a tag; before it, a registry port.
        Some((repository, tag)) if !tag.contains('/') => repository,
        _ => image,
    }
}

fn describe(judged: &Judged) -> String {
    let usual = if judged.baseline.is_empty() {
        "nothing yet".to_owned()
    } else {
        judged.baseline.join(", ")
    };
    format!(
        "{} {} ({}; usually {usual})",
        judged.dimension,
        judged.observed,
        judged.familiarity.label()
    )
}

impl Detector for PrincipalBaselines {
    fn name(&self) -> &'static str {
        "principal_baselines"
    }

    fn drain_state(&mut self, out: &mut Vec<StateEntry>) {
        self.store.drain(out);
    }

    fn restore(&mut self, key: &str, value: &[u8]) {
        self.store.restore(key, value);
    }

    fn profiles(&self) -> Option<crate::ProfileCounts> {
        Some(self.store.counts())
    }

    fn inspect(&mut self, enriched: &EnrichedEvent, out: &mut Vec<Detection>) {
        let Some(event) = enriched.audit.as_ref() else {
            return;
        };
        let user = effective_user(event);
        if is_anonymous(event)
            || crate::declarative::is_system_username(&user.username)
            || is_health_endpoint(&event.request_uri)
            || !succeeded(event)
        {
            return;
        }
        let mut values: Vec<(&str, String)> = Vec::with_capacity(6);
        let object = event.object_ref.as_ref();
        let api_call = match object {
            Some(object) => format!(
                "{} {}{}",
                event.verb,
                object.resource.as_deref().unwrap_or("-"),
                object
                    .subresource
                    .as_deref()
                    .map(|sub| format!("/{sub}"))
                    .unwrap_or_default()
            ),
            None => format!(
                "{} {}",
                event.verb,
                event.request_uri.split('?').next().unwrap_or("")
            ),
        };
        values.push(("apiCall", api_call));
        values.push((
            "namespace",
            object
                .and_then(|object| object.namespace.clone())
                .unwrap_or_else(|| "(cluster)".into()),
        ));
        if let Some(agent) = &event.user_agent {
            values.push(("userAgent", user_agent_family(agent)));
        }
        if let Some(ip) = &enriched.source_ip {
            values.push(("networkOrigin", network_origin(&ip.ip, &ip.scope)));
        }
        values.push(("timeOfWeek", time_of_week(event.event_time_micros)));
        if let Some(workload) = &event.workload
            && matches!(event.verb.as_str(), "create" | "update" | "patch")
        {
            for container in &workload.containers {
                values.push(("image", image_repository(&container.image).to_owned()));
            }
        }

        let key = format!("{}/{}", enriched.cluster.name, user.username);
        let (judged, observations, days) = observe(
            &mut self.store,
            &key,
            event.event_time_micros,
            &values,
            &self.config,
        );

        let Some((finding_type, severity, target)) = relevant(event, &self.sensitive_paths) else {
            return;
        };
        let unusual: Vec<&Judged> = judged
            .iter()
            .filter(|judged| judged.familiarity <= Familiarity::Rare)
            .collect();
        // Each dimension counts once, however many of its values (a workload's images) were new.
        let mut weighed: Vec<&str> = Vec::new();
        let weight: u32 = unusual
            .iter()
            .filter(|judged| judged.familiarity == Familiarity::Unseen && !judged.volatile)
            .filter_map(|judged| {
                let dimension = judged.dimension.as_str();
                if weighed.contains(&dimension) {
                    return None;
                }
                weighed.push(dimension);
                WEIGHTS
                    .iter()
                    .find(|(name, _)| *name == dimension)
                    .map(|(_, weight)| *weight)
            })
            .sum();
        if weight < ANOMALY_WEIGHT {
            return;
        }
        let explained: Vec<String> = unusual.iter().map(|judged| describe(judged)).collect();
        let verdict = Verdict {
            finding_type: finding_type.to_owned(),
            severity,
            title: format!("Unusual {} by {} on {target}.", event.verb, user.username),
            description: format!(
                "{} made a call its baseline of {observations} observations over {days} days does not hold: {}. Unusual: {}.",
                user.username,
                values
                    .first()
                    .map_or(String::new(), |(_, call)| call.clone()),
                explained.join("; ")
            ),
            aggregation_key: vec![user.username.clone(), target],
        };
        let mut found = detection(enriched, event, self.name(), verdict);
        found.anomaly = explanation("principal", &user.username, &unusual, observations, days);
        out.push(found);
    }
}

/// Behaviour baselines of container images at runtime: per image repository (tags aside: a new
/// version runs the same programs), the executables it runs, the parent→child pairs it forks and the
/// outbound destinations it reaches, learned like principals' ([`crate::baseline`]).
///
/// - `Execution:Runtime/AnomalousBehavior.NewBinaryInImage` (Vigil type, Medium): an executable the
///   stable profile never saw run (a parent→child pair it never saw adds to the explanation).
/// - `UnauthorizedAccess:Runtime/AnomalousBehavior.NewOutboundDestination` (Vigil type, Low): a
///   public network (/24) or domain the stable profile never reached; private destinations (the
///   cluster, the VPC) are left out, pods' addresses change all the time.
///
/// Aggregation key: image repository, executable (or destination). Images whose novelty is routine
/// (several new executables a week: build or CI images) are unstable and judge nothing.
#[derive(Debug)]
pub struct ImageBaselines {
    config: BaselineConfig,
    store: ProfileStore,
}

impl Default for ImageBaselines {
    fn default() -> Self {
        let caps = crate::BaselineCaps::default();
        Self::new(
            BaselineConfig::default(),
            caps.images,
            caps.images_per_cluster,
        )
    }
}

impl ImageBaselines {
    pub fn new(config: BaselineConfig, max_images: usize, max_per_cluster: usize) -> Self {
        Self {
            config,
            store: ProfileStore::new(max_images, max_per_cluster),
        }
    }

    pub fn images(&self) -> usize {
        self.store.len()
    }
}

impl Detector for ImageBaselines {
    fn name(&self) -> &'static str {
        "image_baselines"
    }

    fn drain_state(&mut self, out: &mut Vec<StateEntry>) {
        self.store.drain(out);
    }

    fn restore(&mut self, key: &str, value: &[u8]) {
        self.store.restore(key, value);
    }

    fn profiles(&self) -> Option<crate::ProfileCounts> {
        Some(self.store.counts())
    }

    fn inspect(&mut self, enriched: &EnrichedEvent, out: &mut Vec<Detection>) {
        let Some(event) = enriched.runtime.as_ref() else {
            return;
        };
        let Some(image) = event
            .image
            .as_deref()
            .filter(|_| event.container_id.is_some())
        else {
            return;
        };
        let values: Vec<(&str, String)> = match event.kind.as_str() {
            "process_exec" => {
                let mut values = vec![("executable", event.process.binary.clone())];
                if let Some(parent) = &event.parent {
                    values.push((
                        "processTree",
                        format!(
                            "{}>{}",
                            crate::declarative::base_name(&parent.binary),
                            crate::declarative::base_name(&event.process.binary)
                        ),
                    ));
                }
                values
            }
            "network_connect" | "dns_query" => {
                let public = enriched
                    .destination_ip
                    .as_ref()
                    .filter(|ip| ip.scope == "public");
                let domain = event.dns_query.clone().or_else(|| {
                    event
                        .network
                        .as_ref()
                        .and_then(|network| network.destination_domain.clone())
                });
                match (domain, public) {
                    (Some(domain), _) => vec![("destination", domain.to_ascii_lowercase())],
                    (None, Some(ip)) => vec![("destination", network_origin(&ip.ip, &ip.scope))],
                    _ => return,
                }
            }
            _ => return,
        };
        let key = format!("{}/{}", enriched.cluster.name, image_repository(image));
        let (judged, observations, days) = observe(
            &mut self.store,
            &key,
            event.event_time_micros,
            &values,
            &self.config,
        );
        let unseen = |dimension: &str| {
            judged.iter().find(|judged| {
                judged.dimension == dimension
                    && judged.familiarity == Familiarity::Unseen
                    && !judged.volatile
            })
        };
        let repository = image_repository(image).to_owned();
        let resource = crate::declarative::runtime_resource(enriched);
        let (finding_type, severity, subject, title) = if let Some(new) = unseen("executable") {
            (
                "Execution:Runtime/AnomalousBehavior.NewBinaryInImage",
                severity::MEDIUM,
                new.observed.clone(),
                format!(
                    "{} ran in image {repository} for the first time.",
                    new.observed
                ),
            )
        } else if let Some(new) = unseen("destination") {
            (
                "UnauthorizedAccess:Runtime/AnomalousBehavior.NewOutboundDestination",
                severity::LOW,
                new.observed.clone(),
                format!(
                    "Image {repository} reached {} for the first time.",
                    new.observed
                ),
            )
        } else {
            return;
        };
        let unusual: Vec<&Judged> = judged
            .iter()
            .filter(|judged| judged.familiarity <= Familiarity::Rare)
            .collect();
        let verdict = Verdict {
            finding_type: finding_type.to_owned(),
            severity,
            title,
            description: format!(
                "In {resource}, `{}` did what image {repository}'s baseline of {observations} observations over {days} days does not hold. Unusual: {}.",
                crate::declarative::command_line(&event.process),
                unusual
                    .iter()
                    .map(|judged| describe(judged))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            aggregation_key: vec![repository.clone(), subject],
        };
        let mut found =
            crate::context::runtime_detection(enriched, event, self.name(), verdict, Vec::new());
        found.anomaly = explanation("image", &repository, &unusual, observations, days);
        out.push(found);
    }
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
        assert_eq!(store.per_cluster.get("a"), Some(&4));
        assert_eq!(store.per_cluster.get("b"), Some(&3));
        assert!(store.profiles.contains_key("a/7") && !store.profiles.contains_key("a/0"));
        assert_eq!(store.evicted, 4);
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
        assert_eq!(store.per_cluster.values().sum::<usize>(), store.len());
    }
}
