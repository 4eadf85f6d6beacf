//! Behaviour baselines of principals: anomalies fire only when a stable profile meets a
//! security-relevant call it has not seen, explain themselves, and survive a restart.

use vigil_schemas::Event;

use vigil_detect::{DetectConfig, Detector, Engine, StateEntry};
use vigil_schemas::{
    AuditEvent, ClusterDetails, ContainerSpec, Detection, EnrichedEvent, IpIntel, ObjectRef,
    UserInfo, WorkloadSpec,
};

const DAY: i64 = 86_400_000_000;
const HOUR: i64 = 3_600_000_000;
/// 2024-03-04, a Monday, 00:00 UTC.
const MONDAY: i64 = 1_709_510_400_000_000;

struct Call<'a> {
    who: &'a str,
    verb: &'a str,
    resource: &'a str,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
    ip: &'a str,
    agent: &'a str,
}

fn event(call: &Call<'_>, at: i64) -> EnrichedEvent {
    let (resource, subresource) = match call.resource.split_once('/') {
        Some((resource, sub)) => (resource, Some(sub.to_owned())),
        None => (call.resource, None),
    };
    let audit = AuditEvent {
        audit_id: format!("{}-{at}", call.who),
        stage: "ResponseComplete".into(),
        event_time_micros: at,
        verb: call.verb.into(),
        request_uri: format!("/api/v1/{resource}"),
        user: UserInfo {
            username: call.who.into(),
            groups: vec!["system:authenticated".into()],
            ..UserInfo::default()
        },
        source_ips: vec![call.ip.into()],
        user_agent: Some(call.agent.into()),
        object_ref: Some(ObjectRef {
            resource: Some(resource.into()),
            subresource,
            namespace: call.namespace.map(str::to_owned),
            name: call.name.map(str::to_owned),
            ..ObjectRef::default()
        }),
        status_code: Some(if call.resource == "pods/exec" {
            101
        } else {
            200
        }),
        ..AuditEvent::default()
    };
    EnrichedEvent {
        source_ip: Some(IpIntel {
            ip: call.ip.into(),
            scope: if call.ip.starts_with("10.") {
                "private".into()
            } else {
                "public".into()
            },
            ..IpIntel::default()
        }),
        audit: Some(audit),
        cluster: ClusterDetails {
            name: "prod".into(),
            partition: "aws".into(),
            ..ClusterDetails::default()
        },
        ..EnrichedEvent::default()
    }
}

const KUBECTL: &str = "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819";

fn alice(verb: &'static str, resource: &'static str, namespace: &'static str) -> Call<'static> {
    Call {
        who: "alice",
        verb,
        resource,
        namespace: Some(namespace),
        name: Some("web-6f7d9c8b5-x7k2p"),
        ip: "10.20.4.17",
        agent: KUBECTL,
    }
}

fn engine() -> Engine {
    let mut engine = Engine::build(&DetectConfig::default()).unwrap();
    engine.retain(|name| name == "principal_baselines");
    engine
}

/// `days` working days of alice's routine from `start`: lists and gets in shop and payments, an exec
/// into a shop pod, secrets read in shop.
fn routine(engine: &mut Engine, start: i64, days: i64) -> Vec<Detection> {
    let mut out = Vec::new();
    for day in 0..days {
        for hour in 9..17 {
            let at = start + day * DAY + hour * HOUR;
            let namespace = if hour % 2 == 0 { "shop" } else { "payments" };
            engine.process(&event(&alice("list", "pods", namespace), at), &mut out);
            engine.process(
                &event(&alice("get", "deployments", namespace), at + 60_000_000),
                &mut out,
            );
        }
        let at = start + day * DAY + 11 * HOUR;
        engine.process(&event(&alice("create", "pods/exec", "shop"), at), &mut out);
        engine.process(
            &event(&alice("get", "secrets", "shop"), at + HOUR),
            &mut out,
        );
    }
    out
}

#[test]
fn a_stable_principals_unusual_exec_is_an_explained_anomaly() {
    let mut engine = engine();
    assert!(
        routine(&mut engine, MONDAY, 10).is_empty(),
        "routine never fires"
    );
    let at = MONDAY + 10 * DAY + 14 * HOUR;
    let mut out = Vec::new();
    // The same exec as every day: nothing.
    engine.process(&event(&alice("create", "pods/exec", "shop"), at), &mut out);
    assert!(out.is_empty(), "{out:#?}");
    // alice's credentials exec into kube-system from a public address with another client.
    let odd = Call {
        namespace: Some("kube-system"),
        name: Some("coredns-5d8d9f7b4c-h2x9q"),
        ip: "203.0.113.66",
        agent: "python-requests/2.31.0",
        ..alice("create", "pods/exec", "shop")
    };
    engine.process(&event(&odd, at + HOUR), &mut out);
    assert_eq!(out.len(), 1, "{out:#?}");
    let found = &out[0];
    assert_eq!(
        found.finding_type,
        "Execution:Kubernetes/AnomalousBehavior.ExecInPod"
    );
    let unusual: Vec<(&str, &str)> = found
        .anomaly
        .iter()
        .map(|a| (a.dimension.as_str(), a.familiarity.as_str()))
        .collect();
    assert!(unusual.contains(&("namespace", "unseen")), "{unusual:?}");
    assert!(unusual.contains(&("userAgent", "unseen")), "{unusual:?}");
    assert!(
        unusual.contains(&("networkOrigin", "unseen")),
        "{unusual:?}"
    );
    let namespace = anomaly_in(found, "namespace");
    assert_eq!(namespace.observed, "kube-system");
    assert!(namespace.baseline.contains(&"shop".to_owned()));
    assert!(namespace.profile_observations > 100 && namespace.profile_days >= 9);
    assert!(
        found.description.contains("usually"),
        "{}",
        found.description
    );
}

#[test]
fn nothing_is_flagged_while_a_principal_is_still_being_learned() {
    let mut engine = engine();
    let mut out = routine(&mut engine, MONDAY, 3);
    let odd = Call {
        namespace: Some("kube-system"),
        ..alice("create", "pods/exec", "shop")
    };
    engine.process(&event(&odd, MONDAY + 3 * DAY + 10 * HOUR), &mut out);
    assert!(out.is_empty(), "{out:#?}");
}

#[test]
fn unusual_secret_reads_roles_and_workloads_have_their_own_types() {
    let mut engine = engine();
    routine(&mut engine, MONDAY, 10);
    let at = MONDAY + 10 * DAY + 10 * HOUR;
    let mut out = Vec::new();
    // Secrets in shop, as every day: quiet. In kube-system: an anomaly.
    engine.process(&event(&alice("get", "secrets", "shop"), at), &mut out);
    assert!(out.is_empty(), "{out:#?}");
    engine.process(
        &event(&alice("get", "secrets", "kube-system"), at + 1),
        &mut out,
    );
    assert_eq!(
        out.pop().unwrap().finding_type,
        "CredentialAccess:Kubernetes/AnomalousBehavior.SecretsAccessed"
    );
    engine.process(
        &event(&alice("create", "clusterrolebindings", "shop"), at + 2),
        &mut out,
    );
    assert_eq!(
        out.pop().unwrap().finding_type,
        "PrivilegeEscalation:Kubernetes/AnomalousBehavior.RoleBindingCreated"
    );
    engine.process(
        &event(&alice("create", "selfsubjectrulesreviews", "shop"), at + 3),
        &mut out,
    );
    assert_eq!(
        out.pop().unwrap().finding_type,
        "Discovery:Kubernetes/AnomalousBehavior.PermissionChecked"
    );
    let mut deploy = event(&alice("create", "daemonsets", "shop"), at + 4);
    deploy.audit.as_mut().unwrap().workload = Some(WorkloadSpec {
        kind: "DaemonSet".into(),
        name: Some("agent".into()),
        namespace: Some("shop".into()),
        containers: vec![ContainerSpec {
            name: "agent".into(),
            image: "docker.io/xmrig/xmrig:6.21.0".into(),
            privileged: true,
            ..ContainerSpec::default()
        }],
        ..WorkloadSpec::default()
    });
    engine.process(&deploy, &mut out);
    let found = out.pop().unwrap();
    assert_eq!(
        found.finding_type,
        "PrivilegeEscalation:Kubernetes/AnomalousBehavior.WorkloadDeployed!PrivilegedContainer"
    );
    assert!(found.severity >= 7.0);
    assert!(
        found
            .anomaly
            .iter()
            .any(|a| a.dimension == "image" && a.observed == "docker.io/xmrig/xmrig")
    );
    // Reads of pods in a new namespace are unusual but not security-relevant: no finding, a weak
    // signal for publish's correlator only.
    engine.process(
        &event(&alice("list", "pods", "monitoring"), at + 5),
        &mut out,
    );
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].signal_only, "{out:#?}");
    assert_eq!(
        out[0].finding_type,
        "Discovery:Kubernetes/AnomalousBehavior.UnusualCall"
    );
}

#[test]
fn a_principal_whose_novelty_is_normal_raises_nothing() {
    let mut engine = engine();
    let ci = |namespace: &'static str| Call {
        who: "ci-deployer",
        verb: "get",
        resource: "secrets",
        namespace: Some(namespace),
        name: None,
        ip: "10.0.9.14",
        agent: KUBECTL,
    };
    let namespaces: Vec<&'static str> = (0..400)
        .map(|index| &*Box::leak(format!("preview-{index}").into_boxed_str()))
        .collect();
    let mut out = Vec::new();
    for (index, namespace) in namespaces.iter().enumerate() {
        let at = MONDAY + i64::try_from(index).unwrap() * (DAY / 20);
        engine.process(&event(&ci(namespace), at), &mut out);
    }
    assert!(
        out.is_empty(),
        "a new preview namespace a few times a day is this principal's normal: {out:#?}"
    );
}

#[test]
fn a_restarted_engine_keeps_its_baselines_and_flags_what_the_first_would() {
    let mut first = engine();
    routine(&mut first, MONDAY, 10);
    let mut state: Vec<StateEntry> = Vec::new();
    first.drain_state(&mut state);
    assert!(!state.is_empty());
    // The checkpoint, as the compacted topic keeps it: the latest value per key.
    let mut latest = std::collections::BTreeMap::new();
    for entry in state {
        latest.insert(entry.key, entry.value);
    }
    let mut second = engine();
    for (key, value) in &latest {
        assert!(second.restore(key, value.as_deref()), "{key}");
    }
    let at = MONDAY + 10 * DAY + 10 * HOUR;
    let mut out = Vec::new();
    // No storm after the restart: the routine is still known...
    second.process(&event(&alice("create", "pods/exec", "shop"), at), &mut out);
    second.process(&event(&alice("get", "secrets", "shop"), at + 1), &mut out);
    assert!(out.is_empty(), "{out:#?}");
    // ...and the unusual still stands out.
    second.process(
        &event(&alice("get", "secrets", "kube-system"), at + 2),
        &mut out,
    );
    assert_eq!(out.len(), 1);
    // A profile of another version is relearned, not misread, and said to be dropped (the stage
    // counts and logs it); a tombstone is not a drop.
    let mut detector = vigil_detect::baselines::PrincipalBaselines::default();
    assert!(!detector.restore("prod/alice", Some(b"{\"version\":99}")));
    assert_eq!(detector.principals(), 0);
    assert!(detector.restore("prod/alice", None));
    assert!(!second.restore("principal_baselines/prod/alice", Some(b"not a profile")));
}

#[test]
fn the_evaluation_stream_written_as_audit_json_reads_back_to_the_same_anomalies() {
    use vigil_pipeline::{Pipeline, Stages, Step};
    use vigil_sim::{EvalOptions, audit_json, stream};
    let options = EvalOptions {
        seed: 3,
        principals: 30,
        days: 21,
        learn_days: 10,
    };
    let events = stream(&options);
    // An injection is one event, or a burst whose events' ids end in their index.
    let injection = |id: &str| -> String {
        match id.strip_prefix("inject-burst-") {
            Some(_) => id.rsplit_once('-').map_or(id, |(stem, _)| stem).to_owned(),
            None => id.to_owned(),
        }
    };
    let injected: std::collections::BTreeSet<String> = events
        .iter()
        .filter(|event| event.audit_id.starts_with("inject-"))
        .map(|event| injection(&event.audit_id))
        .collect();
    assert!(injected.len() >= 12, "{injected:?}");
    let text: String = events
        .iter()
        .map(|event| audit_json(event) + "\n")
        .collect();
    let mut engine = Engine::build(&DetectConfig::default()).unwrap();
    engine.retain(|name| name == "principal_baselines" || name == "volume_baselines");
    let mut pipeline = Pipeline::from_stages(Stages {
        engine,
        ..Stages::default()
    });
    let mut out = Vec::new();
    let mut rejected = 0;
    pipeline.read_payload(text.as_bytes(), &mut |step| match step {
        Step::Detected { detection, .. } => out.push(detection.clone()),
        Step::Rejected(_) => rejected += 1,
        Step::Event(_) => {}
    });
    assert_eq!(rejected, 0);
    let found: std::collections::BTreeSet<String> = out
        .iter()
        .filter(|d| d.event_id.starts_with("inject-"))
        .map(|d| injection(&d.event_id))
        .collect();
    let false_findings = out
        .iter()
        .filter(|d| !d.event_id.starts_with("inject-"))
        .count();
    assert_eq!(found, injected, "every injected anomaly found");
    assert_eq!(false_findings, 0, "{out:#?}");
}

fn runtime_event(kind: &str, binary: &str, parent: &str, at: i64) -> EnrichedEvent {
    use vigil_schemas::{ProcessInfo, RuntimeEvent};
    EnrichedEvent {
        runtime: Some(RuntimeEvent {
            event_id: format!("{kind}-{binary}-{at}"),
            event_time_micros: at,
            kind: kind.into(),
            sensor: "tetragon".into(),
            node_name: Some("node-1".into()),
            container_id: Some("c1".into()),
            image: Some("registry.example/shop/web:1.4".into()),
            pod_name: Some("web-6f7d9c8b5-x7k2p".into()),
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
        cluster: ClusterDetails {
            name: "prod".into(),
            partition: "aws".into(),
            ..ClusterDetails::default()
        },
        ..EnrichedEvent::default()
    }
}

fn dns(query: &str, at: i64) -> EnrichedEvent {
    let mut event = runtime_event(
        "dns_query",
        "/usr/local/sbin/php-fpm",
        "/usr/sbin/nginx",
        at,
    );
    event.runtime.as_mut().unwrap().dns_query = Some(query.into());
    event
}

#[test]
fn an_images_stable_profile_flags_a_new_binary_and_a_new_destination() {
    let mut engine = Engine::build(&DetectConfig::default()).unwrap();
    engine.retain(|name| name == "image_baselines");
    let mut out = Vec::new();
    for day in 0..10 {
        for hour in 0..24 {
            let at = MONDAY + day * DAY + hour * HOUR;
            engine.process(
                &runtime_event("process_exec", "/bin/sh", "/usr/bin/runc", at),
                &mut out,
            );
            engine.process(
                &runtime_event("process_exec", "/usr/bin/wget", "/bin/sh", at + 1),
                &mut out,
            );
            engine.process(&dns("api.stripe.com", at + 2), &mut out);
        }
    }
    assert!(out.is_empty(), "{out:#?}");
    let at = MONDAY + 10 * DAY + 14 * HOUR;
    engine.process(
        &runtime_event("process_exec", "/usr/bin/wget", "/bin/sh", at),
        &mut out,
    );
    engine.process(&dns("api.stripe.com", at + 1), &mut out);
    assert!(out.is_empty(), "the routine stays quiet: {out:#?}");
    engine.process(
        &runtime_event("process_exec", "/tmp/kworker", "/bin/sh", at + 2),
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].finding_type,
        "Execution:Runtime/AnomalousBehavior.NewBinaryInImage"
    );
    assert_eq!(
        out[0].aggregation_key,
        ["registry.example/shop/web", "/tmp/kworker"]
    );
    let explained = anomaly_in(&out[0], "executable");
    assert_eq!(explained.familiarity, "unseen");
    assert!(explained.baseline.contains(&"/bin/sh".to_owned()));
    engine.process(&dns("pool.supportxmr.com", at + 3), &mut out);
    assert_eq!(
        out[1].finding_type,
        "UnauthorizedAccess:Runtime/AnomalousBehavior.NewOutboundDestination"
    );
    // Another tag of the same image shares the profile.
    let mut retagged = runtime_event("process_exec", "/usr/bin/wget", "/bin/sh", at + 4);
    retagged.runtime.as_mut().unwrap().image = Some("registry.example/shop/web:1.5".into());
    engine.process(&retagged, &mut out);
    assert_eq!(out.len(), 2);
}

#[test]
fn the_learning_period_is_a_setting() {
    // Ten days of routine: stable under the default week, still learning when the setting asks for
    // two weeks, so the same unusual read is flagged by one and learned by the other.
    let unusual = event(
        &alice("get", "secrets", "kube-system"),
        MONDAY + 10 * DAY + 10 * HOUR,
    );
    let mut default = engine();
    routine(&mut default, MONDAY, 10);
    let mut out = Vec::new();
    default.process(&unusual, &mut out);
    assert_eq!(out.len(), 1, "{out:#?}");

    let mut config = DetectConfig::default();
    config.baselines.learning_days = 14;
    let mut tuned = Engine::build(&config).unwrap();
    tuned.retain(|name| name == "principal_baselines");
    routine(&mut tuned, MONDAY, 10);
    let mut out = Vec::new();
    tuned.process(&unusual, &mut out);
    assert!(out.is_empty(), "{out:#?}");
}

/// What a finding says of one dimension of its anomaly.
fn anomaly_in<'a>(found: &'a Detection, dimension: &str) -> &'a vigil_schemas::AnomalyObservation {
    found
        .anomaly
        .iter()
        .find(|a| a.dimension == dimension)
        .unwrap_or_else(|| panic!("no {dimension} in {:#?}", found.anomaly))
}

/// `who`'s call as a member of `groups`.
fn member(call: &Call<'_>, groups: &[&str], at: i64) -> EnrichedEvent {
    let mut enriched = event(call, at);
    if let Some(audit) = enriched.audit.as_mut() {
        audit
            .user
            .groups
            .extend(groups.iter().map(|group| (*group).to_owned()));
    }
    enriched
}

fn as_who(who: &'static str, call: Call<'static>) -> Call<'static> {
    Call { who, ..call }
}

/// Ten working days of a team of developers: lists and gets in shop and payments, secrets read in
/// shop; `execs` of them exec into shop pods too.
fn team_routine(engine: &mut Engine, members: &[&'static str], execs: &[&'static str]) {
    let mut out = Vec::new();
    for day in 0..10 {
        for who in members {
            for hour in 9..17 {
                let at = MONDAY + day * DAY + hour * HOUR;
                let namespace = if hour % 2 == 0 { "shop" } else { "payments" };
                let call = as_who(who, alice("list", "pods", namespace));
                engine.process(&member(&call, &["developers"], at), &mut out);
            }
            let at = MONDAY + day * DAY + 11 * HOUR;
            let read = as_who(who, alice("get", "secrets", "shop"));
            engine.process(&member(&read, &["developers"], at), &mut out);
            if execs.contains(who) {
                let exec = as_who(who, alice("create", "pods/exec", "shop"));
                engine.process(&member(&exec, &["developers"], at + HOUR), &mut out);
            }
        }
    }
    assert!(out.is_empty(), "routine never fires: {out:#?}");
}

/// Erin, new among the developers, lists pods in shop for ten minutes from `at`.
fn erins_first_morning(engine: &mut Engine, at: i64, out: &mut Vec<Detection>) {
    for minute in 0..10 {
        let call = as_who("erin", alice("list", "pods", "shop"));
        engine.process(
            &member(&call, &["developers"], at + minute * 60_000_000),
            out,
        );
    }
}

#[test]
fn a_newcomer_without_a_baseline_is_judged_by_its_peer_group() {
    let mut engine = engine();
    team_routine(
        &mut engine,
        &["bob", "carol", "dave", "grace", "heidi"],
        &[],
    );
    let at = MONDAY + 10 * DAY + 9 * HOUR;
    let mut out = Vec::new();
    // Erin joins the developers: the team's routine is no news, though erin has no baseline.
    erins_first_morning(&mut engine, at, &mut out);
    let read = as_who("erin", alice("get", "secrets", "shop"));
    engine.process(&member(&read, &["developers"], at + HOUR), &mut out);
    assert!(out.is_empty(), "{out:#?}");
    // Erin lists kube-system's secrets, which no developer ever touches.
    let odd = as_who("erin", alice("list", "secrets", "kube-system"));
    engine.process(&member(&odd, &["developers"], at + 2 * HOUR), &mut out);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(
        out[0].finding_type,
        "CredentialAccess:Kubernetes/AnomalousBehavior.SecretsAccessed"
    );
    let peers: Vec<(&str, &str, &str)> = out[0]
        .anomaly
        .iter()
        .filter(|a| a.scope == "peerGroup")
        .map(|a| {
            (
                a.entity.as_str(),
                a.dimension.as_str(),
                a.familiarity.as_str(),
            )
        })
        .collect();
    assert!(
        peers.contains(&("groups developers", "namespace", "unseen")),
        "{peers:?}"
    );
    assert!(
        out[0].description.contains("erin is new"),
        "{}",
        out[0].description
    );
    // Someone in no group of their own has no peers to be judged by: nothing is known, nothing
    // flagged (the audit rules still see them).
    let mut out = Vec::new();
    let alone = as_who("frank", alice("list", "secrets", "kube-system"));
    engine.process(&event(&alone, at + 3 * HOUR), &mut out);
    assert!(out.is_empty(), "{out:#?}");
}

#[test]
fn a_teammates_routine_is_vouched_for_by_the_peer_group() {
    let mut team = engine();
    // Carol and dave exec into shop pods every day; bob never has.
    team_routine(
        &mut team,
        &["bob", "carol", "dave", "grace", "heidi"],
        &["carol", "dave"],
    );
    let at = MONDAY + 10 * DAY + 14 * HOUR;
    let mut out = Vec::new();
    let exec = as_who("bob", alice("create", "pods/exec", "shop"));
    team.process(&member(&exec, &["developers"], at), &mut out);
    assert!(
        out.is_empty(),
        "bob's first exec is his team's routine: {out:#?}"
    );
    // The same first exec in a team where nobody execs is news.
    let mut other = engine();
    team_routine(&mut other, &["bob", "carol", "dave", "grace", "heidi"], &[]);
    other.process(&member(&exec, &["developers"], at), &mut out);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(
        out[0].finding_type,
        "Execution:Kubernetes/AnomalousBehavior.ExecInPod"
    );
}

/// A workload write: `who` writes `kind` `name` in `namespace` running `image`.
fn workload_write(
    who: &'static str,
    resource: &'static str,
    namespace: &'static str,
    image: &str,
    privileged: bool,
    at: i64,
) -> EnrichedEvent {
    let call = Call {
        who,
        verb: if resource == "pods" {
            "create"
        } else {
            "patch"
        },
        resource,
        namespace: Some(namespace),
        name: Some("web"),
        ip: "10.0.9.14",
        agent: KUBECTL,
    };
    let mut enriched = event(&call, at);
    if let Some(audit) = enriched.audit.as_mut() {
        audit.workload = Some(WorkloadSpec {
            kind: if resource == "pods" {
                "Pod"
            } else {
                "Deployment"
            }
            .into(),
            name: Some("web".into()),
            namespace: Some(namespace.into()),
            host_network: privileged,
            containers: vec![ContainerSpec {
                name: "main".into(),
                image: image.into(),
                privileged,
                ..ContainerSpec::default()
            }],
            ..WorkloadSpec::default()
        });
    }
    enriched
}

const CNI: &str = "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.18.1";
const WEB: &str = "registry.example/shop/web";

#[test]
fn the_first_image_ever_run_privileged_in_a_stable_cluster_is_news_by_itself() {
    let mut engine = engine();
    let mut out = Vec::new();
    // Ten days: the DaemonSet controller starts the CNI agent's privileged pods; a deployer ships
    // the web service, unprivileged, a new build a day.
    for day in 0..10 {
        for node in 0..3 {
            let at = MONDAY + day * DAY + node * HOUR;
            engine.process(
                &workload_write(
                    "system:serviceaccount:kube-system:daemon-set-controller",
                    "pods",
                    "kube-system",
                    CNI,
                    true,
                    at,
                ),
                &mut out,
            );
        }
        for hour in 9..13 {
            let at = MONDAY + day * DAY + hour * HOUR;
            let image = format!("{WEB}:build-{day}");
            engine.process(
                &workload_write("deployer", "deployments", "shop", &image, false, at),
                &mut out,
            );
        }
    }
    assert!(out.is_empty(), "{out:#?}");
    let at = MONDAY + 10 * DAY + 10 * HOUR;
    // Its usual image, a new build: nothing.
    engine.process(
        &workload_write(
            "deployer",
            "deployments",
            "shop",
            &format!("{WEB}:build-10"),
            false,
            at,
        ),
        &mut out,
    );
    assert!(out.is_empty(), "{out:#?}");
    // The same image, now privileged: nothing new to the deployer, but never run privileged here.
    engine.process(
        &workload_write(
            "deployer",
            "deployments",
            "shop",
            &format!("{WEB}:build-10"),
            true,
            at + HOUR,
        ),
        &mut out,
    );
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(
        out[0].finding_type,
        "PrivilegeEscalation:Kubernetes/AnomalousBehavior.WorkloadDeployed!PrivilegedContainer"
    );
    let cluster: Vec<(&str, &str, &str)> = out[0]
        .anomaly
        .iter()
        .filter(|a| a.scope == "cluster")
        .map(|a| (a.entity.as_str(), a.dimension.as_str(), a.observed.as_str()))
        .collect();
    assert!(
        cluster.contains(&("prod", "privilegedImage", WEB)),
        "{cluster:?}"
    );
    assert!(
        cluster.contains(&("prod", "hostAccessImage", WEB)),
        "{cluster:?}"
    );
    let baseline = &anomaly_in(&out[0], "privilegedImage").baseline;
    assert_eq!(
        baseline,
        &["602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni"]
    );
}

#[test]
fn every_scope_is_checkpointed_and_restored() {
    let mut first = engine();
    team_routine(&mut first, &["bob", "carol", "dave", "grace", "heidi"], &[]);
    let mut state: Vec<StateEntry> = Vec::new();
    first.drain_state(&mut state);
    let mut latest = std::collections::BTreeMap::new();
    for entry in state {
        latest.insert(entry.key, entry.value);
    }
    for prefix in [
        "principal_baselines/prod/bob",
        "principal_baselines/peers:prod/groups developers",
        "principal_baselines/namespace:prod/shop",
    ] {
        assert!(latest.contains_key(prefix), "{prefix}: {:?}", latest.keys());
    }
    let mut second = engine();
    for (key, value) in &latest {
        assert!(second.restore(key, value.as_deref()), "{key}");
    }
    let counts: Vec<(&str, usize)> = second
        .profile_counts()
        .iter()
        .map(|(_, counts)| {
            (
                counts.scope,
                counts.by_phase.iter().map(|(_, count)| count).sum(),
            )
        })
        .collect();
    assert!(counts.contains(&("principal", 5)), "{counts:?}");
    assert!(counts.contains(&("peer_group", 1)), "{counts:?}");
    assert!(counts.contains(&("namespace", 2)), "{counts:?}");
    // The restored peer group judges a newcomer as the first would have.
    let mut out = Vec::new();
    let at = MONDAY + 10 * DAY + 9 * HOUR;
    erins_first_morning(&mut second, at, &mut out);
    let odd = as_who("erin", alice("list", "secrets", "kube-system"));
    second.process(&member(&odd, &["developers"], at + HOUR), &mut out);
    assert_eq!(out.len(), 1, "{out:#?}");
}

#[test]
fn a_workload_is_judged_with_its_image_and_a_program_either_knows_is_no_news() {
    let mut engine = Engine::build(&DetectConfig::default()).unwrap();
    engine.retain(|name| name == "image_baselines");
    // One image, two Deployments: web runs a shell, worker runs a shell and python.
    let in_workload = |pod: &str, binary: &str, at: i64| {
        let mut event = runtime_event("process_exec", binary, "/usr/bin/runc", at);
        event.runtime.as_mut().unwrap().pod_name = Some(pod.into());
        event
    };
    let mut out = Vec::new();
    for day in 0..10 {
        for hour in 0..24 {
            let at = MONDAY + day * DAY + hour * HOUR;
            engine.process(&in_workload("web-6f7d9c8b5-x7k2p", "/bin/sh", at), &mut out);
            engine.process(
                &in_workload("worker-7c9d8f6b4-q2w4e", "/bin/sh", at + 1),
                &mut out,
            );
            engine.process(
                &in_workload("worker-7c9d8f6b4-q2w4e", "/usr/bin/python3", at + 2),
                &mut out,
            );
        }
    }
    assert!(out.is_empty(), "{out:#?}");
    let at = MONDAY + 10 * DAY + 14 * HOUR;
    // python3 is new to web, but the image runs it every hour (in worker): no news.
    engine.process(
        &in_workload("web-6f7d9c8b5-x7k2p", "/usr/bin/python3", at),
        &mut out,
    );
    assert!(out.is_empty(), "{out:#?}");
    // A program neither has ever run: flagged, and explained at both scopes.
    engine.process(
        &in_workload("web-6f7d9c8b5-x7k2p", "/tmp/kworker", at + 1),
        &mut out,
    );
    assert_eq!(out.len(), 1, "{out:#?}");
    let scopes: Vec<(&str, &str)> = out[0]
        .anomaly
        .iter()
        .filter(|a| a.dimension == "executable")
        .map(|a| (a.scope.as_str(), a.entity.as_str()))
        .collect();
    assert_eq!(
        scopes,
        [
            ("image", "registry.example/shop/web"),
            ("workload", "shop/web")
        ]
    );
    assert!(
        out[0].description.contains("workload shop/web's baseline"),
        "{}",
        out[0].description
    );
}

#[test]
fn with_an_asn_database_a_new_network_of_the_same_autonomous_system_is_no_news() {
    // Alice works from the office's public address, in AS 64500.
    let from = |ip: &'static str, agent: &'static str, asn: Option<i64>, at: i64| {
        let mut enriched = event(
            &Call {
                ip,
                agent,
                ..alice("create", "pods/exec", "shop")
            },
            at,
        );
        if let Some(source) = enriched.source_ip.as_mut() {
            source.asn = asn;
            source.as_organization = asn.map(|_| "Example ISP".to_owned());
        }
        enriched
    };
    let learn = |asn: Option<i64>| {
        let mut engine = engine();
        let mut out = Vec::new();
        for day in 0..10 {
            for hour in 9..17 {
                let at = MONDAY + day * DAY + hour * HOUR;
                engine.process(&from("198.51.100.10", KUBECTL, asn, at), &mut out);
            }
        }
        assert!(out.is_empty(), "{out:#?}");
        engine
    };
    // Day 11: another /24 of the same provider, with a new client.
    let at = MONDAY + 10 * DAY + 10 * HOUR;
    let moved = |asn| from("198.51.101.7", "kubectl-debug/2.0", asn, at);
    let mut out = Vec::new();
    learn(Some(64500)).process(&moved(Some(64500)), &mut out);
    assert!(
        out.is_empty(),
        "same autonomous system, one new client: {out:#?}"
    );
    // Without the database, the new /24 and the new client are two unseen dimensions.
    learn(None).process(&moved(None), &mut out);
    assert_eq!(out.len(), 1, "{out:#?}");
    let origin = anomaly_in(&out[0], "networkOrigin");
    assert_eq!(origin.observed, "public 198.51.101.0/24");
    // With it, another provider is named in the explanation.
    let mut out = Vec::new();
    learn(Some(64500)).process(
        &from("203.0.113.9", "kubectl-debug/2.0", Some(64999), at),
        &mut out,
    );
    assert_eq!(out.len(), 1, "{out:#?}");
    let origin = anomaly_in(&out[0], "networkOrigin");
    assert_eq!(origin.observed, "public AS64999 Example ISP");
    assert_eq!(origin.baseline, ["public AS64500 Example ISP"]);
}

#[test]
fn a_library_never_loaded_in_a_stable_image_is_flagged_and_a_new_version_is_not() {
    let mut engine = Engine::build(&DetectConfig::default()).unwrap();
    engine.retain(|name| name == "image_baselines");
    let load = |path: &str, at: i64| {
        let mut event = runtime_event("library_load", "/usr/sbin/nginx", "/usr/bin/runc", at);
        event.runtime.as_mut().unwrap().file_path = Some(path.into());
        event
    };
    let mut out = Vec::new();
    for day in 0..10 {
        for hour in 0..24 {
            let at = MONDAY + day * DAY + hour * HOUR;
            engine.process(&load("/usr/lib/libssl.so.3.0.2", at), &mut out);
            engine.process(&load("/usr/lib/libz.so.1", at + 1), &mut out);
        }
    }
    assert!(out.is_empty(), "{out:#?}");
    let at = MONDAY + 10 * DAY + 14 * HOUR;
    // A patch release of the image: the same libraries, other versions.
    engine.process(&load("/usr/lib/libssl.so.3.0.13", at), &mut out);
    engine.process(&load("/usr/lib/libz.so.1.3", at + 1), &mut out);
    assert!(out.is_empty(), "{out:#?}");
    // A library the image never loaded: an LD_PRELOAD rootkit shipped in a layer.
    engine.process(&load("/usr/lib/libprocesshider.so", at + 2), &mut out);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(
        out[0].finding_type,
        "Execution:Runtime/AnomalousBehavior.NewLibraryInImage"
    );
    let library = out[0]
        .anomaly
        .iter()
        .find(|a| a.dimension == "library" && a.scope == "image")
        .unwrap();
    assert_eq!(library.observed, "/usr/lib/libprocesshider.so");
    assert!(library.baseline.contains(&"/usr/lib/libssl.so".to_owned()));
}

/// `kubectl auth can-i` by `who`: a self-subject access review asking `asked`.
fn can_i_by(who: &'static str, asked: &str, at: i64) -> EnrichedEvent {
    let call = Call {
        who,
        namespace: None,
        name: None,
        ..alice("create", "selfsubjectaccessreviews", "shop")
    };
    let mut enriched = event(&call, at);
    let audit = enriched.audit.as_mut().unwrap();
    audit.status_code = Some(201);
    audit.permission_checked = Some(asked.into());
    enriched
}

#[test]
fn a_permission_never_asked_about_is_flagged_and_the_usual_question_is_not() {
    let mut engine = engine();
    let can_i = |asked: &str, at: i64| can_i_by("alice", asked, at);
    let mut out = Vec::new();
    for day in 0..10 {
        out.extend(routine(&mut engine, MONDAY + day * DAY, 1));
        let at = MONDAY + day * DAY + 16 * HOUR;
        engine.process(&can_i("create pods/exec in shop", at), &mut out);
    }
    assert!(out.is_empty(), "{out:#?}");
    let at = MONDAY + 10 * DAY + 16 * HOUR;
    engine.process(&can_i("create pods/exec in shop", at), &mut out);
    assert!(out.is_empty(), "the usual question: {out:#?}");
    engine.process(&can_i("create clusterrolebindings", at + HOUR), &mut out);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(
        out[0].finding_type,
        "Discovery:Kubernetes/AnomalousBehavior.PermissionChecked"
    );
    assert_eq!(
        out[0].aggregation_key,
        ["alice", "create clusterrolebindings"]
    );
    let asked = anomaly_in(&out[0], "permissionChecked");
    assert_eq!(asked.familiarity, "unseen");
    assert_eq!(asked.baseline, ["create pods/exec in shop"]);
}

/// The detect stage killed at any point and restored from what it had checkpointed raises exactly
/// the findings an uninterrupted run raises: what a profile holds only in memory (counts between
/// checkpoints) must never change a judgement.
#[test]
fn a_restart_at_any_point_changes_no_finding() {
    use vigil_enrich::Enricher;
    use vigil_ingest::Ingestor;
    use vigil_sim::{EvalOptions, audit_json, stream};
    let options = EvalOptions {
        seed: 11,
        principals: 20,
        days: 21,
        learn_days: 10,
    };
    let text: String = stream(&options)
        .iter()
        .map(|event| audit_json(event) + "\n")
        .collect();
    let mut enricher = Enricher::default();
    let mut events = Vec::new();
    Ingestor::default().ingest_payload(text.as_bytes(), &mut |item| {
        if let Ok(Event::Audit(event)) = item {
            events.push(enricher.enrich_audit(*event));
        }
    });
    let baselines = || {
        let mut engine = Engine::build(&DetectConfig::default()).unwrap();
        engine.retain(|name| name.ends_with("_baselines"));
        engine
    };
    let key = |d: &Detection| format!("{} {:?} {}", d.finding_type, d.aggregation_key, d.event_id);
    let mut whole = baselines();
    let mut expected = Vec::new();
    for event in &events {
        let mut out = Vec::new();
        whole.process(event, &mut out);
        expected.extend(out.iter().map(key));
    }
    assert!(!expected.is_empty());
    // Sixteen kill points over the three weeks, some inside the injected bursts.
    for kill in (1..17).map(|part| events.len() * part / 17) {
        let mut first = baselines();
        let mut latest = std::collections::BTreeMap::new();
        let mut found = Vec::new();
        for event in &events[..kill] {
            let mut out = Vec::new();
            first.process(event, &mut out);
            found.extend(out.iter().map(key));
            let mut state = Vec::new();
            first.drain_state(&mut state);
            for entry in state {
                latest.insert(entry.key, entry.value);
            }
        }
        let mut second = baselines();
        for (key, value) in &latest {
            if value.is_some() {
                second.restore(key, value.as_deref());
            }
        }
        for event in &events[kill..] {
            let mut out = Vec::new();
            second.process(event, &mut out);
            found.extend(out.iter().map(key));
        }
        let missing: Vec<&String> = expected.iter().filter(|k| !found.contains(k)).collect();
        let extra: Vec<&String> = found.iter().filter(|k| !expected.contains(k)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "killed at event {kill} of {}: missing {missing:?}, extra {extra:?}",
            events.len()
        );
    }
}

/// A service account whose every call for two weeks was refused (a misconfigured exporter, 403 on
/// each scrape) has a history: its first successful role write is unseen behaviour of a stable
/// principal. An exporter that keeps being refused raises nothing.
#[test]
fn a_principal_known_only_by_refused_calls_is_judged_on_its_first_successful_write() {
    let exporter = |verb: &'static str, resource: &'static str| Call {
        who: "system:serviceaccount:monitoring:exporter",
        verb,
        resource,
        namespace: Some("monitoring"),
        name: None,
        ip: "10.20.7.9",
        agent: "exporter/2.1.0",
    };
    let refused = |call: &Call<'_>, at: i64| {
        let mut enriched = event(call, at);
        enriched.audit.as_mut().unwrap().status_code = Some(403);
        enriched
    };
    let mut engine = engine();
    let mut out = Vec::new();
    for day in 0..14 {
        for hour in 0..24 {
            let at = MONDAY + day * DAY + hour * HOUR;
            engine.process(&refused(&exporter("list", "secrets"), at), &mut out);
            engine.process(
                &refused(&exporter("list", "nodes"), at + 60_000_000),
                &mut out,
            );
        }
    }
    let at = MONDAY + 14 * DAY + 3 * HOUR;
    engine.process(&refused(&exporter("create", "roles"), at), &mut out);
    assert!(out.is_empty(), "refused calls change nothing: {out:#?}");

    let mut role = event(&exporter("create", "roles"), at + HOUR);
    role.audit.as_mut().unwrap().status_code = Some(201);
    engine.process(&role, &mut out);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(
        out[0].finding_type,
        "PrivilegeEscalation:Kubernetes/AnomalousBehavior.RoleCreated"
    );
    let call = anomaly_in(&out[0], "apiCall");
    assert_eq!(
        (
            call.scope.as_str(),
            call.familiarity.as_str(),
            call.profile_days
        ),
        ("principal", "unseen", 14)
    );
    assert!(
        out[0]
            .anomaly
            .iter()
            .all(|judged| matches!(judged.dimension.as_str(), "apiCall" | "namespace")),
        "its client, network and hours are its habits: {:#?}",
        out[0].anomaly
    );
    // Refused calls weigh nothing, however new: the exporter refused something it never tried
    // before raises nothing.
    engine.process(
        &refused(&exporter("delete", "namespaces"), at + 2 * HOUR),
        &mut out,
    );
    assert_eq!(out.len(), 1, "{out:#?}");
}

/// A brand-new identity in no peer group that asks about an escalating permission nobody in the
/// cluster ever asked about is judged by the cluster; one that asks what people here ask (or an
/// ordinary question) is not.
#[test]
fn a_newcomers_escalating_question_the_cluster_never_heard_is_flagged() {
    let can_i = can_i_by;
    let mut engine = engine();
    let mut out = Vec::new();
    // Ten days in which alice and bob ask their usual questions, one of them escalating.
    for day in 0..10 {
        let at = MONDAY + day * DAY + 10 * HOUR;
        for (minute, who) in [(0, "alice"), (30, "bob")] {
            for (offset, asked) in [
                "create pods/exec in shop",
                "create rolebindings in shop",
                "patch deployments in shop",
            ]
            .iter()
            .enumerate()
            {
                let at = at + minute * 60_000_000 + i64::try_from(offset).unwrap() * 1_000_000;
                engine.process(&can_i(who, asked, at), &mut out);
            }
        }
    }
    assert!(out.is_empty(), "{out:#?}");
    let at = MONDAY + 10 * DAY + 15 * HOUR;
    // A new identity asking what people here ask, and an ordinary new question: nothing.
    engine.process(
        &can_i("mallory", "create rolebindings in payments", at),
        &mut out,
    );
    engine.process(
        &can_i("mallory", "list configmaps in payments", at + 1),
        &mut out,
    );
    assert!(out.is_empty(), "{out:#?}");
    // The first question about impersonation this cluster ever heard.
    engine.process(&can_i("mallory", "impersonate users", at + 2), &mut out);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(
        out[0].finding_type,
        "Discovery:Kubernetes/AnomalousBehavior.PermissionChecked"
    );
    let asked = anomaly_in(&out[0], "permissionChecked");
    assert_eq!(
        (asked.scope.as_str(), asked.familiarity.as_str()),
        ("cluster", "unseen")
    );
    assert!(
        asked.baseline.contains(&"create rolebindings".to_owned()),
        "{asked:?}"
    );
}
