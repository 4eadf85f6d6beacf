//! The baselines' evaluation (`vigil eval-baselines`), free of I/O like detect itself: weeks of generated, seeded cluster behaviour (people with working hours,
//! applications' service accounts around the clock, CI deployers with a new preview namespace every
//! day, churn), anomalies of each kind injected after the learning period, and per kind whether the
//! baselines found them, with the false findings per day on the ordinary traffic. Runtime behaviour
//! too: one container image per four principals, each running its own programs and reaching its own
//! domains, every fifth a build image that runs something new every day. Deterministic for a seed:
//! the README's numbers come from `vigil eval-baselines --seed 1`.

use std::time::Instant;

use vigil_detect::{DetectConfig, Engine, StateEntry};
use vigil_schemas::{
    AuditEvent, ClusterDetails, ContainerSpec, EnrichedEvent, IpIntel, ObjectRef, ProcessInfo,
    RuntimeEvent, UserInfo, Volume, WorkloadSpec,
};

const DAY: i64 = vigil_schemas::time::DAY_MICROS;
const HOUR: i64 = vigil_schemas::time::HOUR_MICROS;
/// 2024-01-01, a Monday.
const START: i64 = 1_704_067_200_000_000;

/// splitmix64: small, fast and the same everywhere.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        let len = u64::try_from(items.len()).ok()?;
        items.get(usize::try_from(self.below(len)).ok()?)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Human,
    App,
    Ci,
}

#[derive(Debug, Clone)]
struct Principal {
    name: String,
    role: Role,
    namespaces: Vec<String>,
    team: Vec<String>,
    agent: String,
    origins: Vec<String>,
    first_hour: i64,
    execs: bool,
    reads_secrets: bool,
    /// Runs `kubectl auth can-i` now and then (a few permission checks on some days).
    checks_permissions: bool,
    calls_per_day: u64,
    /// Groups beyond `system:authenticated`: people's teams, CI's deployers (peer groups).
    groups: Vec<String>,
    /// A person who joins after the learning period, on this day: judged by the team's habits
    /// while their own are learned.
    joins_on: Option<i64>,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub seed: u64,
    pub principals: usize,
    pub days: i64,
    /// Days of learning before anomalies are injected and false findings counted.
    pub learn_days: i64,
}

/// One kind of injected anomaly and how it went.
#[derive(Debug, Clone)]
pub struct KindResult {
    pub kind: &'static str,
    pub expected_type: &'static str,
    pub injected: usize,
    pub detected: usize,
}

#[derive(Debug, Clone)]
pub struct EvalReport {
    pub principals: usize,
    pub days: i64,
    pub evaluated_days: i64,
    pub ordinary_events: u64,
    pub false_findings: u64,
    /// The first false findings (type: title), for tuning.
    pub false_examples: Vec<String>,
    pub kinds: Vec<KindResult>,
    /// Checkpointed state of the audit baselines (principals, their peer groups, namespaces, the
    /// cluster; and the volume baselines).
    pub state_bytes: usize,
    /// Images profiled and the checkpointed state of their baselines.
    pub images: usize,
    pub image_state_bytes: usize,
    /// Workloads profiled and the checkpointed state of their baselines.
    pub workloads: usize,
    pub workload_state_bytes: usize,
    pub seconds: f64,
}

const NAMESPACES: [&str; 20] = [
    "shop",
    "payments",
    "ledger",
    "search",
    "catalog",
    "checkout",
    "auth",
    "mail",
    "reports",
    "media",
    "cart",
    "orders",
    "inventory",
    "pricing",
    "reviews",
    "shipping",
    "support",
    "analytics",
    "billing",
    "identity",
];
const HUMAN_CALLS: [(&str, &str); 7] = [
    ("list", "pods"),
    ("get", "pods"),
    ("list", "deployments"),
    ("get", "pods/log"),
    ("list", "services"),
    ("get", "configmaps"),
    ("list", "events"),
];
const APP_CALLS: [(&str, &str); 4] = [
    ("get", "configmaps"),
    ("list", "endpoints"),
    ("watch", "endpoints"),
    ("get", "leases"),
];

/// The namespace at `index`, wrapping around.
fn namespace(index: usize) -> String {
    NAMESPACES
        .get(index % NAMESPACES.len())
        .copied()
        .unwrap_or("default")
        .to_owned()
}

fn principals(rng: &mut Rng, count: usize) -> Vec<Principal> {
    let mut all = Vec::with_capacity(count);
    for index in 0..count {
        // 60% people, 33% applications, the rest CI.
        let role = match index % 15 {
            0..=8 => Role::Human,
            9..=13 => Role::App,
            _ => Role::Ci,
        };
        let home = namespace(index);
        let second = namespace(index * 7 + 3);
        let team: Vec<String> = (0..4).map(|offset| namespace(index + offset * 5)).collect();
        let principal = match role {
            Role::Human => Principal {
                name: format!("user-{index}"),
                role,
                namespaces: vec![home, second],
                team,
                agent: format!(
                    "kubectl/v1.{}.{} (linux/amd64) kubernetes/abc",
                    27 + rng.below(4),
                    rng.below(5)
                ),
                origins: if rng.chance(50) {
                    vec!["198.51.100.10".into()]
                } else {
                    vec![
                        "198.51.100.10".into(),
                        format!("10.20.{}.{}", rng.below(4), 2 + rng.below(200)),
                    ]
                },
                first_hour: 7 + i64::try_from(rng.below(4)).unwrap_or(0),
                // Operations teams (0 and 1) exec into pods; the others do not.
                execs: rng.chance(80) && index % 5 < 2,
                reads_secrets: rng.chance(30),
                checks_permissions: index % 3 == 0,
                calls_per_day: 15 + rng.below(35),
                groups: vec![format!("team-{}", index % 5)],
                joins_on: None,
            },
            Role::App => Principal {
                name: format!("system:serviceaccount:{home}:app-{index}"),
                role,
                namespaces: vec![home],
                team: Vec::new(),
                agent: format!("app-{index}/1.{}.0 (linux/amd64)", rng.below(9)),
                origins: (1..=3)
                    .map(|node| format!("10.0.{node}.{}", 10 + index))
                    .collect(),
                first_hour: 0,
                execs: false,
                reads_secrets: rng.chance(50),
                checks_permissions: false,
                calls_per_day: 40 + rng.below(120),
                groups: Vec::new(),
                joins_on: None,
            },
            Role::Ci => Principal {
                name: format!("ci-{index}"),
                role,
                namespaces: vec![home, second],
                team,
                agent: "kubectl/v1.29.2 (linux/amd64) kubernetes/abc".into(),
                origins: vec!["10.0.9.14".into()],
                first_hour: 6,
                execs: false,
                reads_secrets: true,
                checks_permissions: false,
                calls_per_day: 30 + rng.below(30),
                groups: vec!["ci-deployers".into()],
                joins_on: None,
            },
        };
        all.push(principal);
    }
    all
}

#[allow(clippy::too_many_arguments)]
fn call(
    who: &str,
    verb: &str,
    resource: &str,
    namespace: Option<&str>,
    ip: &str,
    agent: &str,
    at: i64,
    id: String,
) -> EnrichedEvent {
    let (resource, subresource) = match resource.split_once('/') {
        Some((resource, sub)) => (resource, Some(sub.to_owned())),
        None => (resource, None),
    };
    let public = !ip.starts_with("10.");
    EnrichedEvent {
        audit: Some(AuditEvent {
            audit_id: id,
            stage: "ResponseComplete".into(),
            event_time_micros: at,
            verb: verb.into(),
            request_uri: format!("/api/v1/{resource}"),
            user: UserInfo {
                username: who.into(),
                groups: vec!["system:authenticated".into()],
                ..UserInfo::default()
            },
            source_ips: vec![ip.into()],
            user_agent: Some(agent.into()),
            object_ref: Some(ObjectRef {
                resource: Some(resource.into()),
                subresource: subresource.clone(),
                namespace: namespace.map(str::to_owned),
                name: Some("target-7d9f8c6b5-x2k4p".into()),
                ..ObjectRef::default()
            }),
            status_code: Some(if subresource.as_deref() == Some("exec") {
                101
            } else {
                200
            }),
            ..AuditEvent::default()
        }),
        source_ip: Some(IpIntel {
            ip: ip.into(),
            scope: if public { "public" } else { "private" }.into(),
            ..IpIntel::default()
        }),
        cluster: eval_cluster(),
        ..EnrichedEvent::default()
    }
}

/// The generated cluster.
fn eval_cluster() -> ClusterDetails {
    ClusterDetails {
        name: "eval".into(),
        partition: "aws".into(),
        ..ClusterDetails::default()
    }
}

/// One day of one principal's ordinary behaviour, as a member of its groups.
fn ordinary_day(rng: &mut Rng, principal: &Principal, day: i64, out: &mut Vec<EnrichedEvent>) {
    let start = out.len();
    ordinary_calls(rng, principal, day, out);
    // Before joining, the day is drawn and dropped, so that the others' days are the same with or
    // without newcomers.
    if principal.joins_on.is_some_and(|joined| day < joined) {
        out.truncate(start);
    }
    if let Some(events) = out.get_mut(start..) {
        as_member(events, &principal.groups);
    }
}

/// Adds the principal's groups to its calls.
fn as_member(events: &mut [EnrichedEvent], groups: &[String]) {
    for event in events {
        if let Some(audit) = event.audit.as_mut() {
            audit.user.groups.extend(groups.iter().cloned());
        }
    }
}

/// What a CI deployer writes: its team's service, a new build every day.
fn deployment(principal: &Principal, namespace: &str, day: i64) -> WorkloadSpec {
    let team = principal.name.len() % 7;
    WorkloadSpec {
        kind: "Deployment".into(),
        name: Some(format!("svc-{}", day % 4)),
        namespace: Some(namespace.to_owned()),
        containers: vec![ContainerSpec {
            name: "app".into(),
            image: format!("registry.example/team-{team}/svc-{}:build-{day}", day % 4),
            ..ContainerSpec::default()
        }],
        ..WorkloadSpec::default()
    }
}

/// The node agents' pods, written every day by the DaemonSet controller as nodes come and go:
/// privileged and on the host network, as CNI and proxy pods are. What the cluster scope learns
/// runs privileged.
fn node_agent_pods(day: i64, out: &mut Vec<EnrichedEvent>) {
    let start = START + day * DAY;
    for (index, (name, image)) in [
        (
            "aws-node",
            "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.18.1",
        ),
        (
            "kube-proxy",
            "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/kube-proxy:v1.29.0",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        for node in 0..3i64 {
            let at = start + (node * 4 + 1) * HOUR + i64::try_from(index).unwrap_or(0);
            let mut event = call(
                "system:serviceaccount:kube-system:daemon-set-controller",
                "create",
                "pods",
                Some("kube-system"),
                "10.0.0.5",
                "kube-controller-manager/v1.29.0 (linux/amd64) kubernetes/abc",
                at,
                format!("{name}-{day}-{node}"),
            );
            if let Some(audit) = event.audit.as_mut() {
                audit.status_code = Some(201);
                audit.workload = Some(WorkloadSpec {
                    kind: "Pod".into(),
                    name: Some(format!("{name}-{day}{node}")),
                    namespace: Some("kube-system".into()),
                    host_network: true,
                    containers: vec![ContainerSpec {
                        name: name.into(),
                        image: image.into(),
                        privileged: true,
                        ..ContainerSpec::default()
                    }],
                    ..WorkloadSpec::default()
                });
            }
            out.push(event);
        }
    }
}

/// One day of one principal's calls.
fn ordinary_calls(rng: &mut Rng, principal: &Principal, day: i64, out: &mut Vec<EnrichedEvent>) {
    let weekday = day % 7 < 5;
    let start = START + day * DAY;
    let mut id = 0u64;
    let mut next_id = |name: &str| {
        id += 1;
        format!("{name}-{day}-{id}")
    };
    match principal.role {
        Role::Human => {
            if !weekday && !rng.chance(5) {
                return;
            }
            // Now and then from home, and now and then a teammate's namespace: the churn that
            // makes false findings if the baselines are too eager.
            let origin = if rng.chance(2) {
                format!("203.0.{}.{}", 100 + rng.below(50), rng.below(250))
            } else {
                rng.pick(&principal.origins).cloned().unwrap_or_default()
            };
            let visiting = rng
                .chance(4)
                .then(|| rng.pick(&principal.team).cloned())
                .flatten();
            for _ in 0..principal.calls_per_day {
                let at = start
                    + (principal.first_hour * HOUR)
                    + i64::try_from(rng.below(9 * 3600)).unwrap_or(0) * 1_000_000;
                let namespace = match &visiting {
                    Some(team) if rng.chance(20) => team.clone(),
                    _ => rng.pick(&principal.namespaces).cloned().unwrap_or_default(),
                };
                let (verb, resource) = *rng.pick(&HUMAN_CALLS).unwrap_or(&("list", "pods"));
                out.push(call(
                    &principal.name,
                    verb,
                    resource,
                    Some(&namespace),
                    &origin,
                    &principal.agent,
                    at,
                    next_id(&principal.name),
                ));
            }
            if principal.execs {
                for _ in 0..(1 + rng.below(2)) {
                    let at = start
                        + (principal.first_hour + 2) * HOUR
                        + i64::try_from(rng.below(5 * 3600)).unwrap_or(0) * 1_000_000;
                    let namespace = rng.pick(&principal.namespaces).cloned().unwrap_or_default();
                    out.push(call(
                        &principal.name,
                        "create",
                        "pods/exec",
                        Some(&namespace),
                        &origin,
                        &principal.agent,
                        at,
                        next_id(&principal.name),
                    ));
                }
            }
            if principal.reads_secrets && rng.chance(60) {
                let at = start + (principal.first_hour + 1) * HOUR;
                let namespace = rng.pick(&principal.namespaces).cloned().unwrap_or_default();
                out.push(call(
                    &principal.name,
                    "get",
                    "secrets",
                    Some(&namespace),
                    &origin,
                    &principal.agent,
                    at,
                    next_id(&principal.name),
                ));
            }
            // Refused now and then: a teammate's namespace the person has no rights in.
            if rng.chance(25) {
                let namespace = rng.pick(&principal.team).cloned().unwrap_or_default();
                for _ in 0..(1 + rng.below(3)) {
                    let at = start
                        + principal.first_hour * HOUR
                        + i64::try_from(rng.below(9 * 3600)).unwrap_or(0) * 1_000_000;
                    let (verb, resource) = *rng.pick(&HUMAN_CALLS).unwrap_or(&("list", "pods"));
                    let mut refused = call(
                        &principal.name,
                        verb,
                        resource,
                        Some(&namespace),
                        &origin,
                        &principal.agent,
                        at,
                        next_id(&principal.name),
                    );
                    if let Some(audit) = refused.audit.as_mut() {
                        audit.status_code = Some(403);
                    }
                    out.push(refused);
                }
            }
            if principal.checks_permissions && rng.chance(50) {
                let at = start + (principal.first_hour + 3) * HOUR;
                for index in 0..(1 + rng.below(4)) {
                    let mut check = call(
                        &principal.name,
                        "create",
                        "selfsubjectaccessreviews",
                        None,
                        &origin,
                        &principal.agent,
                        at + i64::try_from(index).unwrap_or(0) * 20_000_000,
                        next_id(&principal.name),
                    );
                    if let Some(audit) = check.audit.as_mut() {
                        audit.status_code = Some(201);
                        // What people ask of their own namespace before they act.
                        let home = principal.namespaces.first().cloned().unwrap_or_default();
                        audit.permission_checked = Some(if index % 2 == 0 {
                            format!("get pods in {home}")
                        } else {
                            format!("patch deployments in {home}")
                        });
                    }
                    out.push(check);
                }
            }
        }
        Role::App => {
            for _ in 0..principal.calls_per_day {
                let at = start + i64::try_from(rng.below(86_400)).unwrap_or(0) * 1_000_000;
                let origin = rng.pick(&principal.origins).cloned().unwrap_or_default();
                let (verb, resource) = *rng.pick(&APP_CALLS).unwrap_or(&("get", "configmaps"));
                out.push(call(
                    &principal.name,
                    verb,
                    resource,
                    principal.namespaces.first().map(String::as_str),
                    &origin,
                    &principal.agent,
                    at,
                    next_id(&principal.name),
                ));
            }
            if principal.reads_secrets {
                for hour in [3, 15] {
                    let origin = rng.pick(&principal.origins).cloned().unwrap_or_default();
                    out.push(call(
                        &principal.name,
                        "get",
                        "secrets",
                        principal.namespaces.first().map(String::as_str),
                        &origin,
                        &principal.agent,
                        start + hour * HOUR,
                        next_id(&principal.name),
                    ));
                }
            }
        }
        Role::Ci => {
            if !weekday {
                return;
            }
            // A preview namespace of its own every day, deployed into and read from: novelty is
            // this principal's normal.
            let preview = format!("preview-{}-{day}", principal.name);
            for index in 0..principal.calls_per_day {
                let at = start
                    + principal.first_hour * HOUR
                    + i64::try_from(index * 600).unwrap_or(0) * 1_000_000;
                let namespace = if index % 3 == 0 {
                    preview.clone()
                } else {
                    rng.pick(&principal.namespaces).cloned().unwrap_or_default()
                };
                let (verb, resource) = if index % 2 == 0 {
                    ("patch", "deployments")
                } else {
                    ("get", "secrets")
                };
                let origin = principal.origins.first().cloned().unwrap_or_default();
                let mut event = call(
                    &principal.name,
                    verb,
                    resource,
                    Some(&namespace),
                    &origin,
                    &principal.agent,
                    at,
                    next_id(&principal.name),
                );
                if let Some(audit) = event.audit.as_mut()
                    && verb == "patch"
                {
                    audit.workload = Some(deployment(principal, &namespace, day));
                }
                out.push(event);
            }
        }
    }
}

/// Whether the person's team is one whose members exec into pods.
fn execing_team(principal: &Principal) -> bool {
    ["team-0", "team-1"]
        .iter()
        .any(|team| principal.groups.iter().any(|group| group == team))
}

/// The anomalies, each injected for a few principals of the role it suits.
fn injections(principals: &[Principal], day: i64, rng: &mut Rng) -> Vec<Injection> {
    let at = START + day * DAY + 14 * HOUR;
    let humans: Vec<&Principal> = principals
        .iter()
        .filter(|p| p.role == Role::Human && p.joins_on.is_none())
        .collect();
    let apps: Vec<&Principal> = principals.iter().filter(|p| p.role == Role::App).collect();
    let deployers: Vec<&Principal> = principals.iter().filter(|p| p.role == Role::Ci).collect();
    let mut out = Vec::new();
    let mut inject = |kind: &'static str, expected: &'static str, event: EnrichedEvent| {
        out.push((kind, expected, vec![event]));
    };
    for sample in 0..5 {
        let stolen = |index: usize| format!("203.0.113.{}", 10 + index);
        if let Some(human) = humans.iter().filter(|h| h.execs).nth(sample) {
            let event = call(
                &human.name,
                "create",
                "pods/exec",
                Some("kube-system"),
                &stolen(sample),
                "python-requests/2.31.0",
                at,
                format!("inject-exec-{sample}"),
            );
            inject(
                "exec into kube-system from a new place",
                "Execution:Kubernetes/AnomalousBehavior.ExecInPod",
                event,
            );
        }
        // Someone of a team that never execs: a teammate's habit would be no news.
        if let Some(human) = humans
            .iter()
            .filter(|h| !h.execs && !execing_team(h))
            .nth(sample)
        {
            let namespace = human.namespaces.first().cloned().unwrap_or_default();
            let origin = human.origins.first().cloned().unwrap_or_default();
            let event = call(
                &human.name,
                "create",
                "pods/exec",
                Some(&namespace),
                &origin,
                &human.agent,
                at + 1,
                format!("inject-first-exec-{sample}"),
            );
            inject(
                "first exec ever, usual place and client",
                "Execution:Kubernetes/AnomalousBehavior.ExecInPod",
                event,
            );
        }
        if let Some(human) = humans.get(sample * 3 + 1) {
            let origin = human.origins.first().cloned().unwrap_or_default();
            let event = call(
                &human.name,
                "list",
                "secrets",
                Some("kube-system"),
                &origin,
                &human.agent,
                at + 2,
                format!("inject-secrets-{sample}"),
            );
            inject(
                "secrets listed in kube-system",
                "CredentialAccess:Kubernetes/AnomalousBehavior.SecretsAccessed",
                event,
            );
        }
        if let Some(app) = apps.iter().filter(|a| a.reads_secrets).nth(sample) {
            let event = call(
                &app.name,
                "get",
                "secrets",
                app.namespaces.first().map(String::as_str),
                &stolen(sample + 20),
                "curl/8.5.0",
                at + 3,
                format!("inject-token-{sample}"),
            );
            inject(
                "service-account token used from outside",
                "CredentialAccess:Kubernetes/AnomalousBehavior.SecretsAccessed",
                event,
            );
        }
        if let Some(human) = humans.get(sample * 3 + 2) {
            let origin = human.origins.first().cloned().unwrap_or_default();
            let event = call(
                &human.name,
                "create",
                "clusterrolebindings",
                None,
                &origin,
                &human.agent,
                at + 4,
                format!("inject-binding-{sample}"),
            );
            inject(
                "cluster role binding created",
                "PrivilegeEscalation:Kubernetes/AnomalousBehavior.RoleBindingCreated",
                event,
            );
            let event = call(
                &human.name,
                "create",
                "clusterroles",
                None,
                &origin,
                &human.agent,
                at + 5,
                format!("inject-role-{sample}"),
            );
            inject(
                "cluster role created",
                "PrivilegeEscalation:Kubernetes/AnomalousBehavior.RoleCreated",
                event,
            );
        }
        if let Some(app) = apps.get(sample * 2) {
            let origin = app.origins.first().cloned().unwrap_or_default();
            let event = call(
                &app.name,
                "create",
                "selfsubjectrulesreviews",
                None,
                &origin,
                &app.agent,
                at + 6,
                format!("inject-can-i-{sample}"),
            );
            inject(
                "permissions checked by an app's token",
                "Discovery:Kubernetes/AnomalousBehavior.PermissionChecked",
                event,
            );
        }
        if let Some(human) = humans.get(sample * 3) {
            let origin = human.origins.first().cloned().unwrap_or_default();
            let namespace = human.namespaces.first().cloned().unwrap_or_default();
            for (kind, expected, privileged, mount) in [
                (
                    "privileged workload deployed",
                    "PrivilegeEscalation:Kubernetes/AnomalousBehavior.WorkloadDeployed!PrivilegedContainer",
                    true,
                    None,
                ),
                (
                    "workload mounting the node's root",
                    "Persistence:Kubernetes/AnomalousBehavior.WorkloadDeployed!ContainerWithSensitiveMount",
                    false,
                    Some("/"),
                ),
            ] {
                let mut event = call(
                    &human.name,
                    "create",
                    "daemonsets",
                    Some(&namespace),
                    &origin,
                    &human.agent,
                    at + 7 + i64::from(privileged),
                    format!("inject-workload-{sample}-{privileged}"),
                );
                if let Some(audit) = event.audit.as_mut() {
                    audit.workload = Some(WorkloadSpec {
                        kind: "DaemonSet".into(),
                        name: Some(format!("agent-{}", rng.below(1000))),
                        namespace: Some(namespace.clone()),
                        containers: vec![ContainerSpec {
                            name: "agent".into(),
                            image: "docker.io/library/alpine:3.19".into(),
                            privileged,
                            ..ContainerSpec::default()
                        }],
                        volumes: mount
                            .map(|path| Volume {
                                name: "host".into(),
                                host_path: Some(path.into()),
                            })
                            .into_iter()
                            .collect(),
                        ..WorkloadSpec::default()
                    });
                }
                inject(kind, expected, event);
            }
        }
    }
    // Someone who asks `kubectl auth can-i` about their namespace now and then asks whether they
    // can bind cluster roles: reconnaissance before a privilege escalation.
    let checkers: Vec<&&Principal> = humans.iter().filter(|h| h.checks_permissions).collect();
    for sample in 0..3 {
        if let Some(human) = checkers.get(sample) {
            let origin = human.origins.first().cloned().unwrap_or_default();
            let mut event = call(
                &human.name,
                "create",
                "selfsubjectaccessreviews",
                None,
                &origin,
                &human.agent,
                at + 11,
                format!("inject-can-i-bind-{sample}"),
            );
            if let Some(audit) = event.audit.as_mut() {
                audit.status_code = Some(201);
                audit.permission_checked = Some("create clusterrolebindings".into());
            }
            out.push((
                "a person asks whether they can bind cluster roles",
                "Discovery:Kubernetes/AnomalousBehavior.PermissionChecked",
                vec![event],
            ));
        }
    }
    for sample in 0..3 {
        if let Some(deployer) = deployers.get(sample) {
            let namespace = deployer.namespaces.first().cloned().unwrap_or_default();
            let origin = deployer.origins.first().cloned().unwrap_or_default();
            let mut event = call(
                &deployer.name,
                "patch",
                "deployments",
                Some(&namespace),
                &origin,
                &deployer.agent,
                at + 9,
                format!("inject-ci-privileged-{sample}"),
            );
            if let Some(audit) = event.audit.as_mut() {
                let mut workload = deployment(deployer, &namespace, day);
                for container in &mut workload.containers {
                    container.privileged = true;
                }
                audit.workload = Some(workload);
            }
            out.push((
                "a deployer's usual image, now privileged",
                "PrivilegeEscalation:Kubernetes/AnomalousBehavior.WorkloadDeployed!PrivilegedContainer",
                vec![event],
            ));
        }
        // A person new to a team (no baseline of their own) who, after a morning of the team's
        // ordinary calls, lists the secrets of a namespace the team never touches.
        let team = format!("team-{sample}");
        let newcomer = format!("user-new-{sample}");
        let home = namespace(sample);
        let mut events: Vec<EnrichedEvent> = (0..25)
            .map(|index| {
                call(
                    &newcomer,
                    "list",
                    "pods",
                    Some(&home),
                    "198.51.100.10",
                    "kubectl/v1.29.2 (linux/amd64) kubernetes/abc",
                    at - 4 * HOUR + index * 60_000_000,
                    format!("newcomer-{sample}-warm-up-{index}"),
                )
            })
            .collect();
        events.push(call(
            &newcomer,
            "list",
            "secrets",
            Some("kube-system"),
            "198.51.100.10",
            "kubectl/v1.29.2 (linux/amd64) kubernetes/abc",
            at + 10,
            format!("inject-newcomer-secrets-{sample}"),
        ));
        as_member(&mut events, &[team]);
        out.push((
            "a newcomer to a team lists secrets its team never reads",
            "CredentialAccess:Kubernetes/AnomalousBehavior.SecretsAccessed",
            events,
        ));
    }
    out.extend(bursts(principals, at + 30 * 60 * 1_000_000));
    // The known principals' calls carry their groups, as the API server writes them.
    for (_, _, events) in &mut out {
        for event in events.iter_mut() {
            let Some(audit) = event.audit.as_mut() else {
                continue;
            };
            if let Some(principal) = principals.iter().find(|p| p.name == audit.user.username) {
                audit.user.groups.extend(principal.groups.iter().cloned());
            }
        }
    }
    out
}

/// The volume anomalies: bursts of calls each of which the principal makes routinely or could.
fn bursts(principals: &[Principal], at: i64) -> Vec<Injection> {
    let humans: Vec<&Principal> = principals
        .iter()
        .filter(|p| p.role == Role::Human && p.joins_on.is_none())
        .collect();
    let readers: Vec<&Principal> = principals
        .iter()
        .filter(|p| p.role == Role::App && p.reads_secrets)
        .collect();
    let apps: Vec<&Principal> = principals.iter().filter(|p| p.role == Role::App).collect();
    let second = 1_000_000;
    let mut out = Vec::new();
    let mut burst = |principal: &Principal,
                     kind: &'static str,
                     expected: &'static str,
                     calls: &[(&str, &str)],
                     status: i32,
                     count: i64,
                     sample: usize| {
        let origin = principal.origins.first().cloned().unwrap_or_default();
        let events = (0..count)
            .map(|index| {
                let (verb, resource) = calls
                    .get(usize::try_from(index).unwrap_or(0) % calls.len().max(1))
                    .copied()
                    .unwrap_or(("get", "secrets"));
                let namespace = (!resource.ends_with("reviews"))
                    .then(|| principal.namespaces.first().cloned())
                    .flatten();
                let mut event = call(
                    &principal.name,
                    verb,
                    resource,
                    namespace.as_deref(),
                    &origin,
                    &principal.agent,
                    at + index * 10 * second,
                    format!("inject-burst-{sample}-{kind}-{index}"),
                );
                if let Some(audit) = event.audit.as_mut() {
                    audit.status_code = Some(status);
                }
                event
            })
            .collect();
        out.push((kind, expected, events));
    };
    for sample in 0..3 {
        if let Some(app) = readers.get(sample) {
            burst(
                app,
                "burst of secret reads by an app's token",
                "CredentialAccess:Kubernetes/AnomalousBehavior.SecretsAccessedBurst",
                &[("get", "secrets"), ("list", "secrets")],
                200,
                60,
                sample,
            );
        }
        if let Some(human) = humans.get(sample * 2 + 1) {
            burst(
                human,
                "burst of permission checks",
                "Discovery:Kubernetes/AnomalousBehavior.PermissionCheckedBurst",
                &[
                    ("create", "selfsubjectaccessreviews"),
                    ("create", "selfsubjectrulesreviews"),
                ],
                201,
                30,
                sample,
            );
        }
        if let Some(app) = apps.get(sample * 2 + 1) {
            burst(
                app,
                "burst of denied requests",
                "Discovery:Kubernetes/AnomalousBehavior.DeniedRequestsBurst",
                &[
                    ("list", "secrets"),
                    ("list", "pods"),
                    ("create", "pods"),
                    ("list", "clusterroles"),
                ],
                403,
                40,
                sample,
            );
        }
    }
    out
}

/// A container image of the generated cluster: its own programs and destinations; a build image
/// runs something new every day (novelty is its normal).
struct Image {
    repository: String,
    programs: Vec<String>,
    domains: Vec<String>,
    /// Shared libraries its programs load (without their version suffix).
    libraries: Vec<String>,
    build: bool,
}

fn images(count: usize) -> Vec<Image> {
    (0..count)
        .map(|index| Image {
            repository: format!("registry.example/team-{}/svc-{index}", index % 7),
            programs: (0..8)
                .map(|program| format!("/usr/local/bin/svc-{index}-{program}"))
                .chain(["/bin/sh".to_owned(), "/usr/bin/curl".to_owned()])
                .collect(),
            domains: (0..4)
                .map(|domain| format!("api-{domain}.partner-{}.example", index % 11))
                .collect(),
            libraries: ["libc", "libssl", "libz", "libpq"]
                .iter()
                .map(|name| format!("/usr/lib/x86_64-linux-gnu/{name}.so"))
                .collect(),
            build: index % 5 == 4,
        })
        .collect()
}

fn runtime_event(image: &Image, kind: &str, binary: &str, parent: &str, at: i64) -> EnrichedEvent {
    EnrichedEvent {
        runtime: Some(RuntimeEvent {
            event_id: format!("{}-{kind}-{binary}-{at}", image.repository),
            event_time_micros: at,
            kind: kind.into(),
            sensor: "tetragon".into(),
            node_name: Some("node-1".into()),
            container_id: Some(format!("c-{}", image.repository)),
            image: Some(format!("{}:1.{}", image.repository, at / DAY % 3)),
            // Each image runs as one Deployment named after it.
            pod_name: Some(format!(
                "{}-6f7d9c8b5-x7k2p",
                image.repository.rsplit('/').next().unwrap_or("app")
            )),
            pod_namespace: Some("shop".into()),
            process: ProcessInfo {
                binary: binary.into(),
                ..ProcessInfo::default()
            },
            parent: Some(ProcessInfo {
                binary: parent.into(),
                ..ProcessInfo::default()
            }),
            ..RuntimeEvent::default()
        }),
        cluster: eval_cluster(),
        ..EnrichedEvent::default()
    }
}

/// One image's day: every hour a couple of its programs forked by others of them, a domain resolved;
/// a build image also runs the day's freshly built tools.
fn runtime_day(rng: &mut Rng, image: &Image, day: i64, out: &mut Vec<EnrichedEvent>) {
    let start = START + day * DAY;
    for hour in 0..24 {
        let at = start + hour * HOUR + i64::try_from(rng.below(600)).unwrap_or(0) * 1_000_000;
        for offset in 0..2 {
            // A process tree has a shape: each program is started by the same parent every time.
            let index = usize::try_from(rng.below(image.programs.len() as u64)).unwrap_or(0);
            let binary = image.programs.get(index).cloned().unwrap_or_default();
            let parent = image.programs.get(index / 3).cloned().unwrap_or_default();
            out.push(runtime_event(
                image,
                "process_exec",
                &binary,
                &parent,
                at + offset,
            ));
        }
        // Its programs load their libraries, a patch release now and then changing the version.
        if let Some(library) = rng.pick(&image.libraries) {
            let mut load = runtime_event(image, "library_load", "/bin/sh", "/usr/bin/runc", at + 3);
            if let Some(runtime) = load.runtime.as_mut() {
                runtime.file_path = Some(format!("{library}.{}", day / 10));
            }
            out.push(load);
        }
        if let Some(domain) = rng.pick(&image.domains) {
            let mut query = runtime_event(image, "dns_query", "/usr/bin/curl", "/bin/sh", at + 2);
            if let Some(runtime) = query.runtime.as_mut() {
                runtime.dns_query = Some(domain.clone());
            }
            out.push(query);
        }
    }
    if image.build {
        for tool in 0..3 {
            let at = start + 10 * HOUR + tool * 60_000_000;
            let binary = format!("/workspace/out/tool-{day}-{tool}");
            out.push(runtime_event(image, "process_exec", &binary, "/bin/sh", at));
        }
    }
}

/// The runtime anomalies: a program never run in a stable image, and a destination it never
/// reached.
fn runtime_injections(images: &[Image], day: i64) -> Vec<Injection> {
    let at = START + day * DAY + 15 * HOUR;
    let steady: Vec<&Image> = images.iter().filter(|image| !image.build).collect();
    let mut out = Vec::new();
    for sample in 0..3 {
        if let Some(image) = steady.get(sample * 2) {
            out.push((
                "new program run in a stable image",
                "Execution:Runtime/AnomalousBehavior.NewBinaryInImage",
                vec![runtime_event(
                    image,
                    "process_exec",
                    "/tmp/.cache/kworkerds",
                    "/bin/sh",
                    at,
                )],
            ));
        }
        if let Some(image) = steady.get(sample * 2 + 8) {
            let mut load = runtime_event(image, "library_load", "/bin/sh", "/usr/bin/runc", at + 2);
            if let Some(runtime) = load.runtime.as_mut() {
                runtime.file_path = Some("/usr/lib/x86_64-linux-gnu/libprocesshider.so".into());
            }
            out.push((
                "new library loaded in a stable image",
                "Execution:Runtime/AnomalousBehavior.NewLibraryInImage",
                vec![load],
            ));
        }
        if let Some(image) = steady.get(sample * 2 + 1) {
            let mut query = runtime_event(image, "dns_query", "/usr/bin/curl", "/bin/sh", at + 1);
            if let Some(runtime) = query.runtime.as_mut() {
                runtime.dns_query = Some("xmr.pool-eu.example".into());
            }
            out.push((
                "new destination for a stable image",
                "UnauthorizedAccess:Runtime/AnomalousBehavior.NewOutboundDestination",
                vec![query],
            ));
        }
    }
    out
}

fn event_time(event: &EnrichedEvent) -> i64 {
    event
        .audit
        .as_ref()
        .map(|audit| audit.event_time_micros)
        .or_else(|| {
            event
                .runtime
                .as_ref()
                .map(|runtime| runtime.event_time_micros)
        })
        .unwrap_or(0)
}

/// The generated audit stream in time order: every ordinary audit event, and the injected ones
/// (their `auditID`s start with `inject-`), for feeding Vigil from outside (the Kafka tests).
pub fn stream(options: &EvalOptions) -> Vec<AuditEvent> {
    let mut all = Vec::new();
    generate(options, |_, ordinary, injected| {
        let mut day: Vec<&EnrichedEvent> = ordinary
            .iter()
            .chain(injected.iter().flat_map(|(_, _, events)| events))
            .collect();
        day.sort_by_key(|event| event_time(event));
        all.extend(day.into_iter().filter_map(|event| event.audit.clone()));
    });
    all
}

/// The ordinary events only (audit and runtime, enriched), in time order, day by day: a busy
/// cluster with nothing wrong in it.
pub fn ordinary(options: &EvalOptions, mut visit: impl FnMut(&[EnrichedEvent])) {
    generate(options, |_, ordinary, _| visit(ordinary));
}

/// An injected anomaly: its kind, the finding type it should raise, its events (one, or a burst).
type Injection = (&'static str, &'static str, Vec<EnrichedEvent>);

/// Generates the days in order, handing each day's ordinary events (in time order) and, on the
/// injection day, the injected ones to `visit`.
fn generate(options: &EvalOptions, mut visit: impl FnMut(i64, &[EnrichedEvent], Vec<Injection>)) {
    let mut rng = Rng(options.seed);
    // The runtime half draws from its own generator, so the audit half is the same with or without it.
    let mut runtime_rng = Rng(options.seed ^ 0x005e_ed0f_c0de);
    let mut principals = principals(&mut rng, options.principals);
    // Churn: one person in 45 joins a team after the learning period.
    for (index, principal) in principals.iter_mut().enumerate() {
        if principal.role == Role::Human && index % 45 == 3 {
            principal.joins_on =
                Some(options.learn_days + 1 + i64::try_from(index / 45 % 5).unwrap_or(0));
        }
    }
    let images = images(options.principals.div_ceil(4));
    let inject_day = options.learn_days + (options.days - options.learn_days) / 2;
    let mut day_events = Vec::new();
    for day in 0..options.days {
        day_events.clear();
        for principal in &principals {
            ordinary_day(&mut rng, principal, day, &mut day_events);
        }
        node_agent_pods(day, &mut day_events);
        for image in &images {
            runtime_day(&mut runtime_rng, image, day, &mut day_events);
        }
        day_events.sort_by_key(event_time);
        let injected = if day == inject_day {
            let mut injected = injections(&principals, day, &mut rng);
            injected.extend(runtime_injections(&images, day));
            injected
        } else {
            Vec::new()
        };
        visit(day, &day_events, injected);
    }
}

/// An audit event as the API server writes it (`audit.k8s.io/v1`), with its workload as the request
/// object: what ingest reads back into the same event.
pub fn audit_json(event: &AuditEvent) -> String {
    let object = event.object_ref.clone().unwrap_or_default();
    let stamp = vigil_schemas::time::format_rfc3339_millis(event.event_time_micros);
    let mut object_ref = serde_json::json!({"apiVersion": "v1"});
    if let Some(map) = object_ref.as_object_mut() {
        for (key, value) in [
            ("resource", object.resource),
            ("subresource", object.subresource),
            ("namespace", object.namespace),
            ("name", object.name),
        ] {
            if let Some(value) = value {
                map.insert(key.into(), value.into());
            }
        }
    }
    let exec = event
        .object_ref
        .as_ref()
        .and_then(|object| object.subresource.as_deref())
        == Some("exec");
    let mut json = serde_json::json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
        "auditID": event.audit_id,
        "stage": if exec { "ResponseStarted" } else { "ResponseComplete" },
        "requestURI": event.request_uri, "verb": event.verb,
        "user": {"username": event.user.username, "groups": event.user.groups},
        "sourceIPs": event.source_ips, "userAgent": event.user_agent,
        "objectRef": object_ref,
        "responseStatus": {"code": event.status_code},
        "requestReceivedTimestamp": stamp, "stageTimestamp": stamp,
    });
    if let (Some(asked), Some(map)) = (&event.permission_checked, json.as_object_mut()) {
        // `verb resource[/sub][ in namespace]`, as ingest reads it back.
        let (question, namespace) = match asked.split_once(" in ") {
            Some((question, namespace)) => (question, Some(namespace)),
            None => (asked.as_str(), None),
        };
        let (verb, resource) = question.split_once(' ').unwrap_or((question, "*"));
        let (resource, subresource) = match resource.split_once('/') {
            Some((resource, sub)) => (resource, Some(sub)),
            None => (resource, None),
        };
        map.insert(
            "requestObject".into(),
            serde_json::json!({
                "kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                "spec": {"resourceAttributes": {"verb": verb, "resource": resource,
                    "subresource": subresource, "namespace": namespace}},
            }),
        );
    }
    if let (Some(workload), Some(map)) = (&event.workload, json.as_object_mut()) {
        let containers: Vec<serde_json::Value> = workload
            .containers
            .iter()
            .map(|container| {
                serde_json::json!({"name": container.name, "image": container.image,
                    "securityContext": {"privileged": container.privileged}})
            })
            .collect();
        let volumes: Vec<serde_json::Value> = workload
            .volumes
            .iter()
            .map(|volume| serde_json::json!({"name": volume.name, "hostPath": {"path": volume.host_path}}))
            .collect();
        map.insert(
            "requestObject".into(),
            serde_json::json!({
                "kind": workload.kind, "apiVersion": "apps/v1",
                "metadata": {"name": workload.name, "namespace": workload.namespace},
                "spec": {"template": {"spec": {"containers": containers, "volumes": volumes}}},
            }),
        );
    }
    json.to_string()
}

/// Generates, injects and scores.
pub fn evaluate(options: &EvalOptions) -> Result<EvalReport, vigil_detect::BuildError> {
    let started = Instant::now();
    let mut engine = Engine::build(&DetectConfig::default())?;
    engine.retain(|name| {
        matches!(
            name,
            "principal_baselines" | "volume_baselines" | "image_baselines"
        )
    });
    let mut kinds: Vec<KindResult> = Vec::new();
    let mut ordinary_events = 0u64;
    let mut false_findings = 0u64;
    let mut false_examples = Vec::new();
    let mut detections = Vec::new();
    generate(options, |day, ordinary, injected| {
        for event in ordinary {
            ordinary_events += 1;
            detections.clear();
            engine.process(event, &mut detections);
            if day >= options.learn_days {
                // Weak signals raise no finding: only publish's correlator reads them.
                detections.retain(|found| !found.signal_only);
                false_findings += detections.len() as u64;
                for found in detections.iter().take(10 - false_examples.len().min(10)) {
                    false_examples.push(format!(
                        "{}: {} {}",
                        found.finding_type, found.title, found.description
                    ));
                }
            }
        }
        for (kind, expected, events) in injected {
            detections.clear();
            for event in &events {
                engine.process(event, &mut detections);
            }
            let found = detections.iter().any(|d| d.finding_type == expected);
            match kinds.iter_mut().find(|result| result.kind == kind) {
                Some(result) => {
                    result.injected += 1;
                    result.detected += usize::from(found);
                }
                None => kinds.push(KindResult {
                    kind,
                    expected_type: expected,
                    injected: 1,
                    detected: usize::from(found),
                }),
            }
        }
    });
    let mut state: Vec<StateEntry> = Vec::new();
    engine.drain_state(&mut state);
    let mut latest = std::collections::BTreeMap::new();
    for entry in state {
        latest.insert(entry.key, entry.value.map_or(0, |value| value.len()));
    }
    let runtime_state = |workloads: bool| -> Vec<usize> {
        latest
            .iter()
            .filter_map(|(key, bytes)| {
                let key = key.strip_prefix("image_baselines/")?;
                (key.starts_with("workload:") == workloads).then_some(*bytes)
            })
            .collect()
    };
    let image_state = runtime_state(false);
    let workload_state = runtime_state(true);
    let image_state_bytes: usize = image_state.iter().sum();
    let workload_state_bytes: usize = workload_state.iter().sum();
    Ok(EvalReport {
        images: image_state.len(),
        image_state_bytes,
        workloads: workload_state.len(),
        workload_state_bytes,
        principals: options.principals,
        days: options.days,
        evaluated_days: options.days - options.learn_days,
        ordinary_events,
        false_findings,
        false_examples,
        kinds,
        state_bytes: latest.values().sum::<usize>() - image_state_bytes - workload_state_bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The report as the README shows it.
pub fn render(report: &EvalReport) -> String {
    let mut text = format!(
        "{} principals, {} days ({} of learning), {} ordinary events in {:.1} s ({:.0} events/s through detect with baselines)\n\n| injected anomaly | expected finding | found |\n|---|---|---|\n",
        report.principals,
        report.days,
        report.days - report.evaluated_days,
        report.ordinary_events,
        report.seconds,
        report.ordinary_events as f64 / report.seconds.max(1e-9)
    );
    for kind in &report.kinds {
        text += &format!(
            "| {} | `{}` | {} of {} |\n",
            kind.kind, kind.expected_type, kind.detected, kind.injected
        );
    }
    text += &format!(
        "\nfalse findings on ordinary traffic after learning: {} in {} days = {:.2} a day\nbaseline state: {} bytes, {:.0} bytes a principal (all audit scopes); {} images, {:.0} bytes an image; {} workloads, {:.0} bytes a workload\n",
        report.false_findings,
        report.evaluated_days,
        report.false_findings as f64 / report.evaluated_days.max(1) as f64,
        report.state_bytes,
        report.state_bytes as f64 / report.principals.max(1) as f64,
        report.images,
        report.image_state_bytes as f64 / report.images.max(1) as f64,
        report.workloads,
        report.workload_state_bytes as f64 / report.workloads.max(1) as f64
    );
    for example in &report.false_examples {
        text += &format!("false finding: {example}\n");
    }
    text
}
