//! The correlator on hand-made findings: what links, what qualifies, how a sequence grows, merges,
//! leaves the window and survives a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use vigil_schemas::{
    ApiCallAction, ClusterDetails, Detection, Finding, InventoryWorkload, IpIntel, ProcessInfo,
    RuntimeDetails, UserInfo, WorkloadSpec,
};

use super::*;

const T0: i64 = 1_700_000_000_000_000;
const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;

fn cluster() -> ClusterDetails {
    ClusterDetails {
        name: "prod".into(),
        partition: "aws".into(),
        region: Some("us-east-1".into()),
        account_id: Some("111122223333".into()),
        ..ClusterDetails::default()
    }
}

fn finding(id: &str, detection: Detection) -> Finding {
    let at = detection.event_time_micros;
    Finding {
        id: id.into(),
        count: 1,
        created_at_micros: at,
        updated_at_micros: at,
        event_first_seen_micros: at,
        event_last_seen_micros: at,
        archived: false,
        detection,
        recent_event_ids: Vec::new(),
        attack_sequence_arn: None,
    }
}

/// An API call by `user` from `ip` (public unless in 10/8, a Tor exit when it starts with 185.220.).
fn api(id: &str, finding_type: &str, severity: f64, at: i64, user: &str, ip: &str) -> Finding {
    finding(
        id,
        Detection {
            finding_type: finding_type.into(),
            severity,
            title: format!("{finding_type} by {user}"),
            event_time_micros: at,
            cluster: cluster(),
            user: Some(UserInfo {
                username: user.into(),
                ..UserInfo::default()
            }),
            api_call: Some(ApiCallAction {
                verb: "get".into(),
                resource: Some("secrets".into()),
                remote_ip: Some(IpIntel {
                    ip: ip.into(),
                    scope: if ip.starts_with("10.") {
                        "private"
                    } else {
                        "public"
                    }
                    .into(),
                    tor_exit: ip.starts_with("185.220."),
                    ..IpIntel::default()
                }),
                ..ApiCallAction::default()
            }),
            ..Detection::default()
        },
    )
}

/// `user` creates Deployment `namespace/name` (from a private address).
fn deploys(
    id: &str,
    finding_type: &str,
    at: i64,
    user: &str,
    namespace: &str,
    name: &str,
) -> Finding {
    let mut found = api(id, finding_type, 5.0, at, user, "10.0.0.9");
    let detection = &mut found.detection;
    if let Some(call) = &mut detection.api_call {
        call.verb = "create".into();
        call.resource = Some("deployments".into());
    }
    detection.workload = Some(WorkloadSpec {
        kind: "Deployment".into(),
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        ..WorkloadSpec::default()
    });
    found
}

/// `user` execs into pod `namespace/pod` of Deployment `web` (from a private address).
fn execs(id: &str, at: i64, user: &str, namespace: &str, pod: &str) -> Finding {
    let mut found = api(
        id,
        "Execution:Kubernetes/ExecInPod",
        2.0,
        at,
        user,
        "10.0.0.9",
    );
    let detection = &mut found.detection;
    if let Some(call) = &mut detection.api_call {
        call.verb = "create".into();
        call.resource = Some("pods".into());
        call.subresource = Some("exec".into());
    }
    detection.target = Some(pod_of(namespace, pod));
    found
}

fn pod_of(namespace: &str, pod: &str) -> InventoryWorkload {
    InventoryWorkload {
        namespace: namespace.into(),
        pod_name: pod.into(),
        workload_kind: Some("Deployment".into()),
        workload_name: Some("web".into()),
        ..InventoryWorkload::default()
    }
}

/// A runtime finding from a process in pod `namespace/pod` (its own exec id, no shared actor).
fn in_pod(
    id: &str,
    finding_type: &str,
    severity: f64,
    at: i64,
    namespace: &str,
    pod: &str,
) -> Finding {
    finding(
        id,
        Detection {
            finding_type: finding_type.into(),
            severity,
            title: format!("{finding_type} in {pod}"),
            event_time_micros: at,
            cluster: cluster(),
            target: Some(pod_of(namespace, pod)),
            runtime: Some(RuntimeDetails {
                sensor: "tetragon".into(),
                event_kind: "process_exec".into(),
                process: ProcessInfo {
                    exec_id: Some(format!("exec-{id}")),
                    binary: "/bin/sh".into(),
                    ..ProcessInfo::default()
                },
                node_name: Some("node-1".into()),
                pod_name: Some(pod.into()),
                pod_namespace: Some(namespace.into()),
                ..RuntimeDetails::default()
            }),
            ..Detection::default()
        },
    )
}

fn weak(mut found: Finding) -> Finding {
    found.detection.signal_only = true;
    found.detection.severity = 2.0;
    found
}

fn correlator() -> Correlator {
    Correlator::new(Settings::default())
}

fn observe_all(correlator: &mut Correlator, findings: &[Finding]) -> Vec<Changes> {
    findings
        .iter()
        .map(|found| correlator.observe(found))
        .collect()
}

fn uids(sequence: &Sequence) -> Vec<&str> {
    sequence
        .signals
        .iter()
        .map(|signal| signal.uid.as_str())
        .collect()
}

/// Stolen credentials used from Tor, then a privileged workload by the same person.
fn stolen_then_privileged() -> Vec<Finding> {
    vec![
        api(
            "tor",
            "CredentialAccess:Kubernetes/TorIPCaller",
            5.0,
            T0,
            "bob",
            "185.220.101.4",
        ),
        deploys(
            "privileged",
            "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
            T0 + 10 * MINUTE,
            "bob",
            "shop",
            "miner",
        ),
    ]
}

#[test]
fn credential_access_then_privilege_escalation_by_one_person_is_a_sequence() {
    let mut correlator = correlator();
    let changes = observe_all(&mut correlator, &stolen_then_privileged());
    assert!(changes[0].is_empty(), "one signal is no sequence");
    let raised = &changes[1];
    assert_eq!(raised.sequences.len(), 1);
    let sequence = correlator.sequences()[0];
    assert_eq!(uids(sequence), ["tor", "privileged"]);
    assert_eq!(sequence.severity, 9.0);
    assert_eq!(sequence.count, 2);
    assert_eq!(sequence.created_at_micros, T0);
    assert_eq!(sequence.updated_at_micros, T0 + 10 * MINUTE);
    // Both findings are told which sequence they are in.
    let arn = sequence.arn();
    assert_eq!(
        raised.associations,
        [
            ("tor".to_owned(), arn.clone()),
            ("privileged".to_owned(), arn.clone())
        ]
    );
    assert!(arn.starts_with("arn:aws:guardduty:us-east-1:111122223333:detector/vigil/finding/"));
    let tactics: Vec<String> = sequence.tactics().into_iter().map(|(id, _)| id).collect();
    assert_eq!(tactics, ["TA0006", "TA0004"]);
    assert!(
        sequence.description.find("TorIPCaller") < sequence.description.find("PrivilegedContainer"),
        "{}",
        sequence.description
    );
}

#[test]
fn the_findings_of_one_event_are_one_step_not_a_sequence() {
    // A privileged Deployment created from a Tor exit: one call, two findings, two tactics.
    let mut steps = stolen_then_privileged();
    for step in &mut steps {
        step.detection.event_id = "audit-1".into();
        step.recent_event_ids = vec!["audit-1".into()];
    }
    let mut correlator = correlator();
    observe_all(&mut correlator, &steps);
    assert!(correlator.sequences().is_empty());
    // The same person's next call is a second step.
    let mut next = steps[1].clone();
    next.count = 2;
    next.detection.event_id = "audit-2".into();
    next.recent_event_ids.push("audit-2".into());
    let changes = correlator.observe(&next);
    assert_eq!(changes.sequences.len(), 1);
    assert_eq!(uids(correlator.sequences()[0]), ["tor", "privileged"]);
}

#[test]
fn the_same_steps_by_different_people_are_not_linked() {
    let mut steps = stolen_then_privileged();
    steps[1] = deploys(
        "privileged",
        "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
        T0 + 10 * MINUTE,
        "carol",
        "shop",
        "miner",
    );
    let mut correlator = correlator();
    observe_all(&mut correlator, &steps);
    assert!(correlator.sequences().is_empty());
    assert_eq!(correlator.window_len(), 2);
}

#[test]
fn anonymous_callers_are_not_one_actor() {
    // Two unauthenticated callers from different addresses: anyone can be system:anonymous.
    let steps = [
        api(
            "read",
            "CredentialAccess:Kubernetes/SuccessfulAnonymousAccess",
            8.0,
            T0,
            "system:anonymous",
            "198.51.100.7",
        ),
        api(
            "bind",
            "Persistence:Kubernetes/SuccessfulAnonymousAccess",
            8.0,
            T0 + 10 * MINUTE,
            "system:anonymous",
            "203.0.113.200",
        ),
    ];
    let mut correlator = correlator();
    observe_all(&mut correlator, &steps);
    assert!(correlator.sequences().is_empty());
    // From one address they are one caller.
    let mut same_address = steps.clone();
    same_address[1] = api(
        "bind",
        "Persistence:Kubernetes/SuccessfulAnonymousAccess",
        8.0,
        T0 + 10 * MINUTE,
        "system:anonymous",
        "198.51.100.7",
    );
    let mut correlator = self::correlator();
    observe_all(&mut correlator, &same_address);
    assert_eq!(correlator.sequences().len(), 1);
}

#[test]
fn two_tactics_of_the_same_stage_are_not_an_attack_in_order() {
    // Credential access and discovery from Tor: both are how an attack starts.
    let steps = [
        api(
            "tor-secrets",
            "CredentialAccess:Kubernetes/TorIPCaller",
            5.0,
            T0,
            "bob",
            "185.220.101.4",
        ),
        api(
            "tor-list",
            "Discovery:Kubernetes/TorIPCaller",
            5.0,
            T0 + MINUTE,
            "bob",
            "185.220.101.4",
        ),
    ];
    let mut correlator = correlator();
    observe_all(&mut correlator, &steps);
    assert!(correlator.sequences().is_empty());
}

#[test]
fn a_later_stage_before_an_earlier_one_is_not_a_plausible_order() {
    let mut steps = stolen_then_privileged();
    steps[0].detection.event_time_micros = T0 + 2 * HOUR;
    steps[0].event_first_seen_micros = T0 + 2 * HOUR;
    steps[0].event_last_seen_micros = T0 + 2 * HOUR;
    let mut correlator = correlator();
    observe_all(&mut correlator, &steps);
    assert!(correlator.sequences().is_empty());
}

#[test]
fn low_findings_and_weak_signals_alone_raise_no_sequence() {
    let mut steps = stolen_then_privileged();
    for step in &mut steps {
        step.detection.severity = 3.0;
    }
    let mut correlator = correlator();
    observe_all(&mut correlator, &steps);
    assert!(correlator.sequences().is_empty(), "nothing at Medium");
    let mut correlator = self::correlator();
    let weak_steps: Vec<Finding> = stolen_then_privileged().into_iter().map(weak).collect();
    observe_all(&mut correlator, &weak_steps);
    assert!(correlator.sequences().is_empty(), "no finding at all");
}

#[test]
fn an_exec_through_the_api_then_a_shell_in_that_pod_is_a_sequence() {
    // One tactic only (execution): what links them is the pod the API call entered.
    let steps = [
        execs("exec", T0, "dave", "shop", "web-1"),
        in_pod(
            "shell",
            "Execution:Runtime/SuspiciousShellCreated",
            5.0,
            T0 + 2 * MINUTE,
            "shop",
            "web-1",
        ),
    ];
    let mut correlator = correlator();
    observe_all(&mut correlator, &steps);
    assert_eq!(uids(correlator.sequences()[0]), ["exec", "shell"]);

    // The same shell three hours after the exec: a pod lives long, the link does not.
    let mut later = steps.clone();
    later[1] = in_pod(
        "shell",
        "Execution:Runtime/SuspiciousShellCreated",
        5.0,
        T0 + 3 * HOUR,
        "shop",
        "web-1",
    );
    let mut correlator = self::correlator();
    observe_all(&mut correlator, &later);
    assert!(correlator.sequences().is_empty());

    // A shell in another pod of the same Deployment is linked by the workload.
    let mut other_pod = steps.clone();
    other_pod[1] = in_pod(
        "shell",
        "Execution:Runtime/SuspiciousShellCreated",
        5.0,
        T0 + 2 * MINUTE,
        "shop",
        "web-2",
    );
    let mut correlator = self::correlator();
    observe_all(&mut correlator, &other_pod);
    assert_eq!(correlator.sequences().len(), 1);
}

#[test]
fn a_weak_signal_joins_only_the_steps_near_it_and_only_by_who_or_where() {
    // The web pod's ServiceAccount reads secrets: routine hours before, and right after the shell.
    let secret_read = |id: &str, at: i64| {
        weak(api(
            id,
            "CredentialAccess:Kubernetes/SecretReadByWorkloadIdentity",
            2.0,
            at,
            "system:serviceaccount:shop:web",
            "10.0.0.9",
        ))
    };
    let mut shell = in_pod(
        "shell",
        "Execution:Runtime/SuspiciousShellCreated",
        5.0,
        T0 + MINUTE,
        "shop",
        "web-1",
    );
    if let Some(target) = &mut shell.detection.target {
        target.service_account = Some("web".into());
    }
    // A weak signal of the same pod but of no shared actor or endpoint (a routine change).
    let mut rollout = weak(deploys(
        "rollout",
        "Execution:Kubernetes/WorkloadChanged",
        T0 + 3 * MINUTE,
        "ci-deployer",
        "shop",
        "web",
    ));
    rollout.detection.severity = 2.0;
    let steps = [
        secret_read("routine", T0 - 5 * HOUR),
        execs("exec", T0, "dave", "shop", "web-1"),
        shell,
        secret_read("after-shell", T0 + 2 * MINUTE),
        rollout,
    ];
    let mut correlator = correlator();
    let changes = observe_all(&mut correlator, &steps);
    assert_eq!(
        uids(correlator.sequences()[0]),
        ["exec", "shell", "after-shell"]
    );
    // A weak signal is never told of its sequence: it is not published.
    assert!(
        changes[3].associations.is_empty(),
        "{:?}",
        changes[3].associations
    );
}

#[test]
fn a_sequence_grows_under_one_id_as_the_attack_goes_on() {
    let mut correlator = correlator();
    observe_all(&mut correlator, &stolen_then_privileged());
    let first = correlator.sequences()[0].clone();
    // The Tor caller again (its finding counted twice now), then a miner in the new workload.
    let mut again = stolen_then_privileged()[0].clone();
    again.count = 2;
    again.event_last_seen_micros = T0 + 20 * MINUTE;
    let changes = correlator.observe(&again);
    assert_eq!(changes.sequences, std::slice::from_ref(&first.id));
    assert!(changes.associations.is_empty(), "already a member");
    let mut miner = in_pod(
        "miner",
        "Impact:Runtime/CryptoMinerExecuted",
        8.0,
        T0 + 30 * MINUTE,
        "shop",
        "miner-7d9c",
    );
    if let Some(target) = &mut miner.detection.target {
        target.workload_name = Some("miner".into());
    }
    let changes = correlator.observe(&miner);
    assert_eq!(changes.sequences, std::slice::from_ref(&first.id));
    assert_eq!(changes.associations, [("miner".to_owned(), first.arn())]);
    let grown = correlator.sequences()[0];
    assert_eq!(grown.id, first.id);
    // Its first version, then one revision per change: Create, then Update.
    assert_eq!(first.revision, 0);
    assert_eq!(grown.revision, 2);
    assert_eq!(uids(grown), ["tor", "privileged", "miner"]);
    assert_eq!(grown.count, 3, "its signals");
    assert_eq!(grown.updated_at_micros, T0 + 30 * MINUTE);
    assert!(grown.severity > first.severity, "a third tactic");
    // Observing it unchanged changes nothing.
    assert!(correlator.observe(&miner).is_empty());
}

#[test]
fn a_link_between_two_sequences_merges_the_later_into_the_earlier() {
    let mut steps = stolen_then_privileged();
    steps.push(api(
        "tor-carol",
        "CredentialAccess:Kubernetes/TorIPCaller",
        5.0,
        T0 + HOUR,
        "carol",
        "185.220.101.9",
    ));
    steps.push(deploys(
        "privileged-carol",
        "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
        T0 + HOUR + MINUTE,
        "carol",
        "ops",
        "tool",
    ));
    let mut correlator = correlator();
    observe_all(&mut correlator, &steps);
    assert_eq!(correlator.sequences().len(), 2);
    let earlier = correlator.sequences()[0].id.clone();
    let later = correlator.sequences()[1].id.clone();
    // bob calls from carol's Tor exit: one attacker behind both.
    let bridge = api(
        "bridge",
        "Discovery:Kubernetes/TorIPCaller",
        5.0,
        T0 + 2 * HOUR,
        "bob",
        "185.220.101.9",
    );
    let changes = correlator.observe(&bridge);
    assert_eq!(changes.sequences, std::slice::from_ref(&earlier));
    assert_eq!(changes.merged.len(), 1);
    assert_eq!(changes.merged[0].id, later);
    assert_eq!(
        changes.merged[0].merged_into.as_deref(),
        Some(earlier.as_str())
    );
    let arn = correlator.sequences()[0].arn();
    for moved in ["tor-carol", "privileged-carol", "bridge"] {
        assert!(
            changes
                .associations
                .contains(&(moved.to_owned(), arn.clone())),
            "{moved}: {:?}",
            changes.associations
        );
    }
    assert_eq!(correlator.sequences().len(), 1);
    assert_eq!(correlator.sequences()[0].signals.len(), 5);
}

#[test]
fn signals_more_than_a_window_apart_are_not_linked() {
    let mut steps = stolen_then_privileged();
    let late = T0 + 25 * HOUR;
    steps[1].detection.event_time_micros = late;
    steps[1].event_first_seen_micros = late;
    steps[1].event_last_seen_micros = late;
    let mut correlator = correlator();
    observe_all(&mut correlator, &steps);
    assert!(correlator.sequences().is_empty());
    assert_eq!(correlator.window_len(), 1, "the first left the window");
}

#[test]
fn an_archived_finding_is_not_a_signal() {
    let mut steps = stolen_then_privileged();
    steps[0].archived = true;
    let mut correlator = correlator();
    observe_all(&mut correlator, &steps);
    assert!(correlator.sequences().is_empty());
    // Archived after it was observed: it leaves the window.
    let mut correlator = self::correlator();
    let mut steps = stolen_then_privileged();
    correlator.observe(&steps[0]);
    steps[0].archived = true;
    correlator.observe(&steps[0]);
    correlator.observe(&steps[1]);
    assert!(correlator.sequences().is_empty());
}

#[test]
fn correlation_switched_off_raises_nothing() {
    let mut correlator = Correlator::new(Settings {
        enabled: false,
        ..Settings::default()
    });
    observe_all(&mut correlator, &stolen_then_privileged());
    assert!(correlator.sequences().is_empty());
    assert_eq!(correlator.window_len(), 0);
}

#[test]
fn past_the_signal_limit_findings_are_kept_before_weak_signals() {
    let settings = Settings {
        max_signals: 3,
        max_window_signals: 100,
        ..Settings::default()
    };
    let mut correlator = Correlator::new(settings);
    let mut steps = vec![weak(api(
        "early-weak",
        "CredentialAccess:Kubernetes/SecretReadByWorkloadIdentity",
        2.0,
        T0 - MINUTE,
        "bob",
        "10.0.0.9",
    ))];
    steps.extend(stolen_then_privileged());
    steps.push(api(
        "tor-again",
        "Discovery:Kubernetes/TorIPCaller",
        5.0,
        T0 + 20 * MINUTE,
        "bob",
        "185.220.101.4",
    ));
    observe_all(&mut correlator, &steps);
    let sequence = correlator.sequences()[0];
    assert_eq!(uids(sequence), ["tor", "privileged", "tor-again"]);
    assert_eq!(sequence.signals_left_out, 1);
}

/// The state a restart reads back: every finding as it stands, and the sequences.
fn restart(before: &Correlator, findings: &[Finding]) -> Correlator {
    let mut after = correlator();
    for found in findings {
        after.restore_signal(found);
    }
    for sequence in before.sequences() {
        after.restore_sequence(sequence.clone());
    }
    after
}

#[test]
fn an_attack_split_across_a_restart_gives_the_same_sequence() {
    let mut attack = stolen_then_privileged();
    attack.push(in_pod(
        "miner",
        "Impact:Runtime/CryptoMinerExecuted",
        8.0,
        T0 + 30 * MINUTE,
        "shop",
        "miner-1",
    ));
    if let Some(target) = &mut attack[2].detection.target {
        target.workload_name = Some("miner".into());
    }
    attack.push(api(
        "tor-again",
        "Discovery:Kubernetes/TorIPCaller",
        5.0,
        T0 + 40 * MINUTE,
        "bob",
        "185.220.101.4",
    ));
    let mut uninterrupted = correlator();
    observe_all(&mut uninterrupted, &attack);
    for split in 1..attack.len() {
        let mut before = correlator();
        observe_all(&mut before, &attack[..split]);
        let mut after = restart(&before, &attack[..split]);
        observe_all(&mut after, &attack[split..]);
        assert_eq!(
            after.sequences(),
            uninterrupted.sequences(),
            "split after {split}"
        );
    }
}

#[test]
fn thresholds_are_checked() {
    assert!(Settings::default().check().is_ok());
    for wrong in [
        Settings {
            window_hours: 0,
            ..Settings::default()
        },
        Settings {
            min_signals: 1,
            ..Settings::default()
        },
        Settings {
            max_signals: 101,
            ..Settings::default()
        },
        Settings {
            resource_link_minutes: -1,
            ..Settings::default()
        },
        Settings {
            max_signals: 50,
            max_window_signals: 10,
            ..Settings::default()
        },
    ] {
        assert!(wrong.check().is_err(), "{wrong:?}");
    }
}

#[test]
fn the_node_s_container_runtime_and_init_link_no_two_pods() {
    // Two pods on one node, each with a shell; their lineages meet only at the node's runtime.
    let mut steps = vec![
        execs("exec", T0, "dave", "shop", "web-1"),
        in_pod(
            "shell",
            "Execution:Runtime/SuspiciousShellCreated",
            5.0,
            T0 + MINUTE,
            "ledger",
            "ledger-1",
        ),
    ];
    let shared_ancestors = [
        ("/usr/bin/containerd-shim-runc-v2", "shim"),
        ("/usr/bin/containerd", "containerd"),
        ("/sbin/init", "init"),
    ];
    for (binary, exec_id) in shared_ancestors {
        if let Some(runtime) = &mut steps[1].detection.runtime {
            runtime.lineage.push(ProcessInfo {
                exec_id: Some(exec_id.into()),
                binary: binary.into(),
                ..ProcessInfo::default()
            });
        }
    }
    let mut other = in_pod(
        "miner",
        "Impact:Runtime/CryptoMinerExecuted",
        8.0,
        T0 + 2 * MINUTE,
        "shop",
        "web-1",
    );
    if let Some(runtime) = &mut other.detection.runtime {
        runtime.lineage = steps[1]
            .detection
            .runtime
            .as_ref()
            .map(|runtime| runtime.lineage.clone())
            .unwrap_or_default();
    }
    steps.push(other);
    let mut correlator = correlator();
    observe_all(&mut correlator, &steps);
    // The exec and the miner in web-1 are one sequence; ledger's shell is not in it.
    assert_eq!(correlator.sequences().len(), 1);
    assert_eq!(uids(correlator.sequences()[0]), ["exec", "miner"]);
}

#[test]
fn indicators_say_what_they_are() {
    let mut tor = api(
        "tor",
        "CredentialAccess:Kubernetes/TorIPCaller",
        5.0,
        T0,
        "bob",
        "185.220.101.4",
    );
    let signal = Signal::of(&tor);
    let keys: Vec<&str> = signal.indicators.iter().map(|i| i.key.as_str()).collect();
    assert!(keys.contains(&"TOR_IP"), "{keys:?}");
    assert!(!keys.contains(&"SUSPICIOUS_USER_AGENT"), "no agent given");
    if let Some(call) = &mut tor.detection.api_call {
        call.user_agent = Some("kubectl/v1.30.0 (linux/amd64)".into());
    }
    let signal = Signal::of(&tor);
    assert!(
        signal
            .indicators
            .iter()
            .all(|indicator| indicator.key != "SUSPICIOUS_USER_AGENT"),
        "kubectl is not a suspicious agent"
    );
    if let Some(call) = &mut tor.detection.api_call {
        call.user_agent = Some("python-requests/2.31.0".into());
    }
    assert!(
        Signal::of(&tor)
            .indicators
            .iter()
            .any(|indicator| indicator.key == "SUSPICIOUS_USER_AGENT")
    );
    // A listed network is no domain: the address that matched it is the endpoint.
    let mut listed = in_pod(
        "listed",
        "UnauthorizedAccess:Runtime/MaliciousIPCaller.Custom",
        5.0,
        T0,
        "shop",
        "web-1",
    );
    listed.detection.threat_intel = vec![vigil_schemas::ThreatMatch {
        entry: "203.0.113.64/28".into(),
        ..vigil_schemas::ThreatMatch::default()
    }];
    let signal = Signal::of(&listed);
    assert!(
        signal
            .entities
            .iter()
            .all(|entity| entity.entity_type != "DOMAIN"),
        "{:?}",
        signal.entities
    );
    assert!(signal.indicators.iter().any(
        |indicator| indicator.key == "MALICIOUS_IP" && indicator.values == ["203.0.113.64/28"]
    ));
}

fn chained_types(changes: &[Changes]) -> Vec<(&'static str, String)> {
    changes
        .iter()
        .flat_map(|change| &change.chained)
        .map(|found| (found.rule.finding_type, found.key.clone()))
        .collect()
}

/// `user` does `verb` on `resource` (from a private address).
fn call_by(id: &str, at: i64, user: &str, verb: &str, resource: &str) -> Finding {
    let mut found = weak(api(
        id,
        "Persistence:Kubernetes/RBACChanged",
        2.0,
        at,
        user,
        "10.0.0.9",
    ));
    if let Some(call) = &mut found.detection.api_call {
        call.verb = verb.into();
        call.resource = Some(resource.into());
    }
    found
}

#[test]
fn an_rbac_change_then_a_workload_change_by_one_person_is_a_chain() {
    let steps = [
        call_by("binding", T0, "bob", "create", "clusterrolebindings"),
        call_by("deploy", T0 + 4 * MINUTE, "bob", "patch", "deployments"),
    ];
    let mut correlator = correlator();
    let changes = observe_all(&mut correlator, &steps);
    assert_eq!(
        chained_types(&changes),
        [(
            "PrivilegeEscalation:Kubernetes/RBACChangeThenWorkloadChange",
            "user:bob".to_owned()
        )]
    );
    let found = &changes[1].chained[0];
    assert_eq!(
        (found.first.uid.as_str(), found.then.uid.as_str()),
        ("binding", "deploy")
    );
    let detection = found.detection(&steps[1]);
    assert_eq!(detection.severity, 5.0);
    assert!(!detection.signal_only);
    assert_eq!(
        detection.user.as_ref().map(|u| u.username.as_str()),
        Some("bob")
    );
    assert!(
        detection.description.contains("4 minute(s) later"),
        "{}",
        detection.description
    );

    // Quiet: the other order, too far apart, another person, a ServiceAccount (a GitOps sync).
    for quiet in [
        [
            call_by("deploy", T0, "bob", "patch", "deployments"),
            call_by(
                "binding",
                T0 + 4 * MINUTE,
                "bob",
                "create",
                "clusterrolebindings",
            ),
        ],
        [
            call_by("binding", T0, "bob", "create", "clusterrolebindings"),
            call_by("deploy", T0 + 15 * MINUTE, "bob", "patch", "deployments"),
        ],
        [
            call_by("binding", T0, "bob", "create", "clusterrolebindings"),
            call_by("deploy", T0 + 4 * MINUTE, "carol", "patch", "deployments"),
        ],
        [
            call_by(
                "binding",
                T0,
                "system:serviceaccount:argocd:argocd-application-controller",
                "create",
                "rolebindings",
            ),
            call_by(
                "deploy",
                T0 + MINUTE,
                "system:serviceaccount:argocd:argocd-application-controller",
                "patch",
                "deployments",
            ),
        ],
    ] {
        let mut correlator = self::correlator();
        let changes = observe_all(&mut correlator, &quiet);
        assert!(
            chained_types(&changes).is_empty(),
            "{:?}",
            chained_types(&changes)
        );
    }
}

#[test]
fn a_token_read_in_a_pod_then_used_from_outside_is_a_chain() {
    let mut token_read = in_pod(
        "token",
        "CredentialAccess:Runtime/SensitiveFileRead",
        5.0,
        T0,
        "shop",
        "web-1",
    );
    if let Some(target) = &mut token_read.detection.target {
        target.service_account = Some("web".into());
    }
    let used_outside = weak(api(
        "outside",
        "CredentialAccess:Kubernetes/WorkloadIdentityFromPublicAddress",
        2.0,
        T0 + 3 * HOUR,
        "system:serviceaccount:shop:web",
        "203.0.113.66",
    ));
    let mut correlator = correlator();
    let changes = observe_all(&mut correlator, &[token_read.clone(), used_outside.clone()]);
    assert_eq!(
        chained_types(&changes),
        [(
            "CredentialAccess:Kubernetes/CredentialUsedFromNewNetwork",
            "user:system:serviceaccount:shop:web".to_owned()
        )]
    );
    // The same whichever arrives first (the audit and runtime halves travel apart).
    let mut correlator = self::correlator();
    let reversed = observe_all(&mut correlator, &[used_outside.clone(), token_read]);
    assert_eq!(reversed[1].chained.len(), 1);
    assert_eq!(
        reversed[1].chained[0].event_id(),
        changes[1].chained[0].event_id()
    );

    // Quiet: the same ServiceAccount from the network it read the secret from.
    let mut read_outside = used_outside.clone();
    read_outside.id = "read".into();
    read_outside.detection.event_time_micros = T0;
    read_outside.event_first_seen_micros = T0;
    read_outside.event_last_seen_micros = T0;
    if let Some(call) = &mut read_outside.detection.api_call {
        call.resource = Some("secrets".into());
        if let Some(remote) = &mut call.remote_ip {
            remote.ip = "203.0.113.70".into(); // the same /24
        }
    }
    let mut correlator = self::correlator();
    let changes = observe_all(&mut correlator, &[read_outside, used_outside]);
    assert!(
        chained_types(&changes).is_empty(),
        "{:?}",
        chained_types(&changes)
    );
    // Quiet: a person (people change networks all day).
    let steps = [
        api(
            "read",
            "CredentialAccess:Kubernetes/TorIPCaller",
            5.0,
            T0,
            "bob",
            "198.51.100.1",
        ),
        api(
            "again",
            "Discovery:Kubernetes/TorIPCaller",
            5.0,
            T0 + HOUR,
            "bob",
            "203.0.113.66",
        ),
    ];
    let mut correlator = self::correlator();
    let changes = observe_all(&mut correlator, &steps);
    assert!(
        chained_types(&changes).is_empty(),
        "{:?}",
        chained_types(&changes)
    );
}

#[test]
fn an_exec_then_a_connection_out_of_that_pod_is_a_chain() {
    let mut connection = weak(in_pod(
        "connect",
        "CommandAndControl:Runtime/NewOutboundDestination",
        2.0,
        T0 + 5 * MINUTE,
        "shop",
        "web-1",
    ));
    if let Some(runtime) = &mut connection.detection.runtime {
        runtime.context = vec![
            vigil_schemas::KeyValue {
                key: "remoteIp".into(),
                value: "198.51.100.7".into(),
            },
            vigil_schemas::KeyValue {
                key: "remoteIpScope".into(),
                value: "public".into(),
            },
        ];
    }
    let steps = [
        execs("exec", T0, "dave", "shop", "web-1"),
        connection.clone(),
    ];
    let mut correlator = correlator();
    let changes = observe_all(&mut correlator, &steps);
    assert_eq!(
        chained_types(&changes),
        [(
            "Execution:Kubernetes/ExecThenNewOutboundConnection",
            "pod:shop/web-1".to_owned()
        )]
    );
    // Quiet: another pod, or an hour later.
    let mut elsewhere = connection.clone();
    if let Some(target) = &mut elsewhere.detection.target {
        target.pod_name = "web-2".into();
    }
    if let Some(runtime) = &mut elsewhere.detection.runtime {
        runtime.pod_name = Some("web-2".into());
    }
    let mut later = connection;
    later.event_first_seen_micros = T0 + HOUR;
    later.event_last_seen_micros = T0 + HOUR;
    for then in [elsewhere, later] {
        let mut correlator = self::correlator();
        let changes = observe_all(&mut correlator, &[steps[0].clone(), then]);
        assert!(
            chained_types(&changes).is_empty(),
            "{:?}",
            chained_types(&changes)
        );
    }
}

#[test]
fn chain_rules_switched_off_raise_nothing() {
    let mut correlator = Correlator::new(Settings {
        chain_rules: false,
        ..Settings::default()
    });
    let changes = observe_all(
        &mut correlator,
        &[
            call_by("binding", T0, "bob", "create", "clusterrolebindings"),
            call_by("deploy", T0 + MINUTE, "bob", "patch", "deployments"),
        ],
    );
    assert!(chained_types(&changes).is_empty());
}
