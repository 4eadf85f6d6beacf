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
//! Unusual means: what is unseen weighs enough, over the scopes that judge (see [`WEIGHTS`]): a call
//! the principal (or, while it is young, its peer group) never made (`create pods/exec`, `list
//! secrets`), a namespace it never touched, a permission it never asked about, or an image never run
//! privileged in the cluster weighs enough alone; a new user agent, network origin, image or
//! registry only in pairs. One new network or one new client alone is not enough (a person working
//! from home), and a dimension where new values are routine (several a week: CI's daily preview
//! namespaces) does not count. Time of week is reported when unusual but weighs nothing: people work
//! late. The control plane, EKS and anonymous callers are not profiled (the audit rules cover them).
//! Refused calls are a principal's history (its age, client, network, hours, and the call as a
//! `refusedCall`, which weighs nothing), never judged: an identity refused for weeks is not new when
//! its first write succeeds. The permissions asked about are also learned per cluster, so a
//! newcomer in no peer group asking about an escalating permission nobody here asked about is news.
//!
//! Aggregation key: principal, type's object (the pod, the namespace's secrets, the role, the
//! permission asked about...).

use crate::baselines::Scope;
use crate::baselines::dimensions::Dimension;
use vigil_schemas::{AuditEvent, Detection, EnrichedEvent, WorkloadSpec};

use crate::detection::{Verdict, detection};
use crate::facts::{effective_user, is_anonymous, is_public_by_design, is_sensitive, succeeded};
use crate::{Detector, StateEntry};

mod judging;

use judging::{ANOMALY_WEIGHT, relevant, weigh};

use crate::baselines::dimensions::{
    caller_origin, image_registry, image_repository, time_of_week, user_agent_family,
};
use crate::baselines::explain::{Unusual, anomaly_of, described};
use crate::baselines::profile::{BaselineConfig, Phase};
use crate::baselines::store::{ProfileStore, Seen, observe};

/// Checkpoint key prefixes of the scopes beyond the principal (whose keys are `cluster/user`, as
/// before scopes were added, so learned principals survive the upgrade). A cluster's name cannot
/// hold a colon, so no principal key starts with one of these.
const PEERS_PREFIX: &str = "peers:";
const NAMESPACE_PREFIX: &str = "namespace:";
const CLUSTER_PREFIX: &str = "cluster:";
/// The cluster's second profile (`cluster:prod/questions`): the permissions asked about.
const QUESTIONS_ENTITY: &str = "questions";

/// A peer group needs this many learned members besides the one judged before it judges: the habits
/// of two or three people are theirs, not a team's (a new member whose three teammates never read
/// secrets is not flagged for reading them).
const MIN_PEERS: usize = 4;

/// The principals' profiles at four scopes, and the anomaly findings they give.
///
/// - **principal** (`cluster/user`): each identity's own habits.
/// - **peer group**: identities that share their groups (`groups developers,oncall`) or, for
///   service accounts, their name across namespaces (`serviceaccount fluent-bit`). A peer group
///   judges a member whose own profile is still in warm-up or learning, so a new identity (a new
///   person, a freshly made service account: an attacker's favourite) is not a blind spot for its
///   first week.
/// - **namespace**: who acts in it and which registries its workloads come from.
/// - **cluster**: the registries of every workload written (controllers' included), and the images
///   run privileged or with host access: the first image ever run privileged in a stable cluster is
///   news by itself.
#[derive(Debug)]
pub struct PrincipalBaselines {
    config: BaselineConfig,
    sensitive_paths: Vec<String>,
    store: ProfileStore,
    peers: ProfileStore,
    namespaces: ProfileStore,
    clusters: ProfileStore,
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
            // Peer groups and namespaces are fewer than principals; a cluster is two profiles
            // (its workloads, the questions asked in it).
            peers: ProfileStore::new(max_principals / 4 + 1, max_per_cluster / 4 + 1),
            namespaces: ProfileStore::new(max_principals / 4 + 1, max_per_cluster / 4 + 1),
            clusters: ProfileStore::new(max_principals / 50 + 2, 2),
        }
    }

    /// Principals profiled now.
    pub fn principals(&self) -> usize {
        self.store.len()
    }

    fn store_of(&mut self, key: &str) -> &mut ProfileStore {
        if key.starts_with(PEERS_PREFIX) {
            &mut self.peers
        } else if key.starts_with(NAMESPACE_PREFIX) {
            &mut self.namespaces
        } else if key.starts_with(CLUSTER_PREFIX) {
            &mut self.clusters
        } else {
            &mut self.store
        }
    }

    /// The cluster's view of a workload write, by anyone (controllers' pods included: they are what
    /// runs): registries, and images run privileged or with host access.
    fn observe_cluster(&mut self, enriched: &EnrichedEvent, event: &AuditEvent) -> Option<Seen> {
        let workload = event.workload.as_ref()?;
        if !matches!(event.verb.as_str(), "create" | "update" | "patch") {
            return None;
        }
        let host_access = workload.host_network
            || workload.host_pid
            || workload.host_ipc
            || workload.volumes.iter().any(|volume| {
                volume
                    .host_path
                    .as_deref()
                    .is_some_and(|path| is_sensitive(path, &self.sensitive_paths))
            });
        let mut values: Vec<(Dimension, String)> =
            Vec::with_capacity(workload.containers.len() * 2);
        for container in &workload.containers {
            let repository = image_repository(&container.image);
            values.push((Dimension::Registry, image_registry(repository).to_owned()));
            if container.privileged {
                values.push((Dimension::PrivilegedImage, repository.to_owned()));
            }
            if host_access {
                values.push((Dimension::HostAccessImage, repository.to_owned()));
            }
        }
        let cluster = enriched.cluster.name.as_str();
        let key = format!("{CLUSTER_PREFIX}{cluster}");
        observe(
            &mut self.clusters,
            (Scope::Cluster, cluster),
            &key,
            event.event_time_micros,
            &values,
            &self.config,
        )
    }
}

impl PrincipalBaselines {
    /// A refused request still belongs to its principal's history: an identity whose every call
    /// for two weeks was refused (a misconfigured exporter getting 403s) is an old identity, and
    /// its first successful write of a role or binding is a call its stable profile never held,
    /// not a newcomer's warm-up. The call is learned in a dimension of its own (`refusedCall`,
    /// which weighs nothing), so trying is never mistaken for doing, and a namespace it was refused
    /// in is not one it touched; its client, network and hours are its habits all the same. Only the
    /// principal's own profile learns it, and nothing is judged (a refused call changed nothing).
    fn observe_refused(&mut self, enriched: &EnrichedEvent, event: &AuditEvent) {
        let user = effective_user(event);
        if is_anonymous(event) || crate::facts::is_system_username(&user.username) {
            return;
        }
        let mut values: Vec<(Dimension, String)> = habits(enriched, event, api_call(event))
            .into_iter()
            .filter_map(|(dimension, value)| match dimension {
                Dimension::ApiCall => Some((Dimension::RefusedCall, value)),
                Dimension::Namespace => None,
                _ => Some((dimension, value)),
            })
            .collect();
        values.push((Dimension::TimeOfWeek, time_of_week(event.event_time_micros)));
        let cluster = enriched.cluster.name.as_str();
        let username = user.username.as_str();
        let key = format!("{cluster}/{username}");
        let now = event.event_time_micros;
        let _ = observe(
            &mut self.store,
            (Scope::Principal, username),
            &key,
            now,
            &values,
            &self.config,
        );
    }

    /// The cluster's view of the permissions people and workloads ask about (`kubectl auth can-i`,
    /// the namespace aside), in a profile of its own beside the workloads' (system callers' reviews
    /// on others' behalf are not questions anyone asked). A brand-new identity in no peer group is
    /// judged by it: the first question about an escalating permission the cluster ever heard is
    /// news, whoever asks.
    fn observe_cluster_questions(
        &mut self,
        enriched: &EnrichedEvent,
        event: &AuditEvent,
        asked: &str,
    ) -> Option<Seen> {
        let question = asked
            .split_once(" in ")
            .map_or(asked, |(question, _)| question);
        let cluster = enriched.cluster.name.as_str();
        let key = format!("{CLUSTER_PREFIX}{cluster}/{QUESTIONS_ENTITY}");
        observe(
            &mut self.clusters,
            (Scope::Cluster, cluster),
            &key,
            event.event_time_micros,
            &[(Dimension::PermissionChecked, question.to_owned())],
            &self.config,
        )
    }
}

/// The call an event makes, as a principal's `apiCall` dimension learns it: `create pods/exec`,
/// `get /version` for a non-resource request.
fn api_call(event: &AuditEvent) -> String {
    match event.object_ref.as_ref() {
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
    }
}

/// The call and the caller's habits around it: namespace, client, network origin.
fn habits(enriched: &EnrichedEvent, event: &AuditEvent, call: String) -> Vec<(Dimension, String)> {
    let mut values: Vec<(Dimension, String)> = Vec::with_capacity(6);
    values.push((Dimension::ApiCall, call));
    let namespace = event
        .object_ref
        .as_ref()
        .and_then(|object| object.namespace.as_deref());
    values.push((
        Dimension::Namespace,
        namespace.unwrap_or("(cluster)").to_owned(),
    ));
    if let Some(agent) = &event.user_agent {
        values.push((Dimension::UserAgent, user_agent_family(agent)));
    }
    if let Some(ip) = &enriched.source_ip {
        values.push((Dimension::NetworkOrigin, caller_origin(ip)));
    }
    values
}

impl Default for PrincipalBaselines {
    fn default() -> Self {
        let caps = crate::BaselineCaps::default();
        Self::new(
            BaselineConfig::default(),
            crate::facts::default_sensitive_host_paths(),
            caps.principals,
            caps.principals_per_cluster,
        )
    }
}

/// Whom a principal is judged with when its own profile is young: service accounts of the same
/// name (one application deployed in many namespaces), people of the same groups. `None` for an
/// identity in no group of its own.
fn peer_group(username: &str, groups: &[String]) -> Option<String> {
    if let Some(rest) = username.strip_prefix("system:serviceaccount:") {
        let (_, name) = rest.split_once(':')?;
        return Some(format!("serviceaccount {name}"));
    }
    let mut own: Vec<&str> = groups
        .iter()
        .map(String::as_str)
        .filter(|group| {
            !matches!(*group, "system:authenticated" | "system:unauthenticated")
                && !group.starts_with("system:serviceaccounts")
        })
        .collect();
    if own.is_empty() {
        return None;
    }
    own.sort_unstable();
    own.dedup();
    Some(format!("groups {}", own.join(",")))
}

impl Detector for PrincipalBaselines {
    fn name(&self) -> &'static str {
        "principal_baselines"
    }

    fn drain_state(&mut self, out: &mut Vec<StateEntry>) {
        for store in [
            &mut self.store,
            &mut self.peers,
            &mut self.namespaces,
            &mut self.clusters,
        ] {
            store.drain(out);
        }
    }

    fn flush_state(&mut self) {
        for store in [
            &mut self.store,
            &mut self.peers,
            &mut self.namespaces,
            &mut self.clusters,
        ] {
            store.flush();
        }
    }

    fn restore(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        self.store_of(key).restore(key, value)
    }

    fn profiles(&self) -> Vec<crate::ProfileCounts> {
        vec![
            self.store.counts(Scope::Principal),
            self.peers.counts(Scope::PeerGroup),
            self.namespaces.counts(Scope::Namespace),
            self.clusters.counts(Scope::Cluster),
        ]
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
        if is_public_by_design(&event.request_uri) {
            return;
        }
        if !succeeded(event) {
            self.observe_refused(enriched, event);
            return;
        }
        let cluster_view = self.observe_cluster(enriched, event);
        let user = effective_user(event);
        if is_anonymous(event) || crate::facts::is_system_username(&user.username) {
            return;
        }
        let deployed = event
            .workload
            .as_ref()
            .filter(|_| matches!(event.verb.as_str(), "create" | "update" | "patch"));
        let (values, shared) = principal_values(enriched, event, deployed);
        let who = Who {
            cluster: enriched.cluster.name.as_str(),
            username: user.username.as_str(),
            now: event.event_time_micros,
        };
        let key = format!("{}/{}", who.cluster, who.username);
        let principal_view = observe(
            &mut self.store,
            (Scope::Principal, who.username),
            &key,
            who.now,
            &values,
            &self.config,
        );
        let peer_view = peer_group(who.username, &user.groups).and_then(|group| {
            self.observe_peers(&who, &group, values.get(..shared).unwrap_or_default())
        });
        let namespace = event
            .object_ref
            .as_ref()
            .and_then(|object| object.namespace.as_deref());
        let namespace_view =
            namespace.and_then(|namespace| self.observe_namespace(&who, namespace, deployed));
        let questions_view = event
            .permission_checked
            .as_deref()
            .and_then(|asked| self.observe_cluster_questions(enriched, event, asked));

        let judged = relevant(event, &self.sensitive_paths);
        let Some(principal_view) = principal_view else {
            return;
        };
        // A call that is not security-relevant is judged only for a stable principal, and only as
        // a weak signal: no finding, but a step publish's correlator can link into an attack.
        if judged.is_none() && principal_view.phase != Phase::Stable {
            return;
        }
        // Peers judge a principal too young to judge itself (not an unstable one: novelty is its
        // normal), and temper an older one's judgement; only when they are a group.
        let young = matches!(principal_view.phase, Phase::WarmUp | Phase::Learning);
        let peer_view = peer_view.filter(|peers| peers.members >= MIN_PEERS);
        let (judging_peers, tempering_peers) = match peer_view {
            Some(peers) if young => (Some(peers), None),
            other => (None, other),
        };
        let views: Vec<&Seen> = [
            Some(&principal_view),
            judging_peers.as_ref(),
            namespace_view.as_ref(),
            cluster_view.as_ref(),
            questions_view.as_ref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let (weight, unusual) = weigh(&views, tempering_peers.as_ref());
        if weight < ANOMALY_WEIGHT {
            return;
        }
        let call = values.first().map_or("", |(_, call)| call.as_str());
        let Some(judged) = judged else {
            let mut weak = anomaly_detection(
                enriched,
                event,
                &who,
                &principal_view,
                (
                    UNUSUAL_CALL,
                    crate::detection::severity::LOW,
                    crate::facts::object_name(event),
                ),
                call,
                &unusual,
            );
            weak.signal_only = true;
            out.push(weak);
            return;
        };
        out.push(anomaly_detection(
            enriched,
            event,
            &who,
            &principal_view,
            judged,
            call,
            &unusual,
        ));
    }
}

/// The weak signal of a stable principal's unusual call that is not security-relevant (a kind of
/// call it never made, from a new client and network): no finding of its own (`signal_only`).
pub const UNUSUAL_CALL: &str = "Discovery:Kubernetes/AnomalousBehavior.UnusualCall";

/// The finding for an anomalous call: what the principal's baseline holds and, scope by scope,
/// what was unusual.
fn anomaly_detection(
    enriched: &EnrichedEvent,
    event: &AuditEvent,
    who: &Who<'_>,
    principal_view: &Seen,
    (finding_type, severity, target): (&'static str, f64, String),
    call: &str,
    unusual: &Unusual<'_>,
) -> Detection {
    let verdict = Verdict {
        finding_type: finding_type.to_owned(),
        severity,
        title: format!("Unusual {} by {} on {target}.", event.verb, who.username),
        description: format!(
            "{}: {call}. Unusual: {}.",
            baseline_in_words(who.username, principal_view),
            described(unusual).join("; ")
        ),
        aggregation_key: vec![who.username.to_owned(), target],
    };
    let mut found = detection(enriched, event, "principal_baselines", verdict);
    found.anomaly = anomaly_of(unusual);
    found
}

/// Whose call a principal's views judge, and when.
struct Who<'a> {
    cluster: &'a str,
    username: &'a str,
    now: i64,
}

impl PrincipalBaselines {
    /// The peer group's view: the habits its members share (`shared`: the call, namespace, client,
    /// network and question), and who its members are.
    fn observe_peers(
        &mut self,
        who: &Who<'_>,
        group: &str,
        shared: &[(Dimension, String)],
    ) -> Option<Seen> {
        let mut peer_values: Vec<(Dimension, String)> = shared
            .iter()
            .map(|(dimension, value)| match *dimension {
                // A team asks about its members' own namespaces: the question, not where.
                Dimension::PermissionChecked => (
                    *dimension,
                    value
                        .split_once(" in ")
                        .map_or(value.as_str(), |(question, _)| question)
                        .to_owned(),
                ),
                _ => (*dimension, value.clone()),
            })
            .collect();
        peer_values.push((Dimension::Member, who.username.to_owned()));
        let key = format!("{PEERS_PREFIX}{}/{group}", who.cluster);
        observe(
            &mut self.peers,
            (Scope::PeerGroup, group),
            &key,
            who.now,
            &peer_values,
            &self.config,
        )
    }

    /// The namespace's view: who acts in it, and the registries of the workloads written to it.
    fn observe_namespace(
        &mut self,
        who: &Who<'_>,
        namespace: &str,
        deployed: Option<&WorkloadSpec>,
    ) -> Option<Seen> {
        let mut namespace_values = vec![(Dimension::Principal, who.username.to_owned())];
        for container in deployed.iter().flat_map(|workload| &workload.containers) {
            namespace_values.push((
                Dimension::Registry,
                image_registry(image_repository(&container.image)).to_owned(),
            ));
        }
        let key = format!("{NAMESPACE_PREFIX}{}/{namespace}", who.cluster);
        observe(
            &mut self.namespaces,
            (Scope::Namespace, namespace),
            &key,
            who.now,
            &namespace_values,
            &self.config,
        )
    }
}

/// A principal's values for one successful call: its habits and the question it asked (the part a
/// peer group shares, its length returned), then the time of week and the images it deployed.
fn principal_values(
    enriched: &EnrichedEvent,
    event: &AuditEvent,
    deployed: Option<&WorkloadSpec>,
) -> (Vec<(Dimension, String)>, usize) {
    let mut values = habits(enriched, event, api_call(event));
    if let Some(asked) = &event.permission_checked {
        values.push((Dimension::PermissionChecked, asked.clone()));
    }
    let shared = values.len();
    values.push((Dimension::TimeOfWeek, time_of_week(event.event_time_micros)));
    for container in deployed.iter().flat_map(|workload| &workload.containers) {
        values.push((
            Dimension::Image,
            image_repository(&container.image).to_owned(),
        ));
    }
    (values, shared)
}

/// How much the principal's judgement rests on, for a finding's description.
fn baseline_in_words(username: &str, view: &Seen) -> String {
    if view.judged.is_empty() {
        format!(
            "{username} is new ({} observations over {} days)",
            view.observations, view.days
        )
    } else {
        format!(
            "{username} made a call its baseline of {} observations over {} days does not hold",
            view.observations, view.days
        )
    }
}
