//! Vigil's own audit finding types (beyond GuardDuty's) and the declarative rule engine: for each
//! detector, events that must fire it and events that must not. Each test runs the one detector it
//! is about, so another detector's finding on the same event cannot hide a miss.

use vigil_detect::{BuildError, DetectConfig, Engine, RuleSource};
use vigil_schemas::{
    AuditEvent, ContainerSpec, Detection, EnrichedEvent, PolicyRule, RoleBindingSpec, RoleSpec,
    ServiceSpec, Subject, ThreatMatch, WorkloadSpec,
};
use vigil_testkit::{enriched, only, request};

/// The finding types `detector` raises for `event`.
fn run(detector: &str, event: AuditEvent) -> Vec<String> {
    run_enriched(detector, enriched(event))
}

fn run_enriched(detector: &str, event: EnrichedEvent) -> Vec<String> {
    let mut out = Vec::new();
    only(detector, &DetectConfig::default()).process(&event, &mut out);
    types(&out)
}

fn types(out: &[Detection]) -> Vec<String> {
    out.iter().map(|found| found.finding_type.clone()).collect()
}

// ---- exec, attach, port-forward, ephemeral containers

#[test]
fn exec_attach_and_port_forward_into_pods_fire() {
    for (detector, subresource, expected) in [
        ("exec_in_pod", "exec", "Execution:Kubernetes/ExecInPod"),
        (
            "attach_to_pod",
            "attach",
            "Execution:Kubernetes/AttachToPod",
        ),
        (
            "port_forward_to_pod",
            "portforward",
            "Execution:Kubernetes/PortForwardToPod",
        ),
    ] {
        let event = request(
            "alice",
            "create",
            &format!("pods/{subresource}"),
            Some("shop"),
            Some("web-1"),
            101,
        );
        assert_eq!(run(detector, event), [expected], "{detector}");
    }
    let debug = request(
        "alice",
        "patch",
        "pods/ephemeralcontainers",
        Some("shop"),
        Some("web-1"),
        200,
    );
    assert_eq!(
        run("ephemeral_container_created", debug),
        ["Execution:Kubernetes/EphemeralContainerCreated"]
    );
}

#[test]
fn refused_exec_kube_system_exec_and_plain_pod_reads_do_not_fire_exec_in_pod() {
    let refused = request("alice", "create", "pods/exec", Some("shop"), Some("w"), 403);
    assert!(run("exec_in_pod", refused).is_empty());
    // ExecInKubeSystemPod's, not this rule's.
    let system = request(
        "alice",
        "create",
        "pods/exec",
        Some("kube-system"),
        Some("w"),
        101,
    );
    assert!(run("exec_in_pod", system).is_empty());
    let read = request("alice", "get", "pods", Some("shop"), Some("w"), 200);
    assert!(run("exec_in_pod", read).is_empty());
    let logs = request("alice", "get", "pods/log", Some("shop"), Some("w"), 200);
    assert!(run("attach_to_pod", logs).is_empty());
}

// ---- RBAC

fn binding_event(who: &str, role: &str, subject: &str) -> AuditEvent {
    let mut event = request(
        who,
        "create",
        "clusterrolebindings",
        None,
        Some("grant"),
        201,
    );
    event.role_binding = Some(RoleBindingSpec {
        kind: "ClusterRoleBinding".into(),
        name: Some("grant".into()),
        role_ref_kind: "ClusterRole".into(),
        role_ref_name: role.into(),
        subjects: vec![Subject {
            kind: "User".into(),
            name: subject.into(),
            namespace: None,
        }],
        ..RoleBindingSpec::default()
    });
    event
}

#[test]
fn a_person_granting_cluster_admin_fires() {
    assert_eq!(
        run(
            "cluster_admin_binding",
            binding_event("alice", "cluster-admin", "mallory")
        ),
        ["PrivilegeEscalation:Kubernetes/ClusterAdminBinding"]
    );
}

#[test]
fn other_roles_and_the_control_planes_own_bindings_do_not_fire_cluster_admin_binding() {
    assert!(
        run(
            "cluster_admin_binding",
            binding_event("alice", "view", "carol")
        )
        .is_empty()
    );
    assert!(
        run(
            "cluster_admin_binding",
            binding_event("system:apiserver", "cluster-admin", "system:masters")
        )
        .is_empty()
    );
    let mut failed = binding_event("alice", "cluster-admin", "mallory");
    failed.status_code = Some(403);
    assert!(run("cluster_admin_binding", failed).is_empty());
}

fn role_event(who: &str, verbs: &[&str], resources: &[&str]) -> AuditEvent {
    let mut event = request(who, "create", "clusterroles", None, Some("some-role"), 201);
    event.role = Some(RoleSpec {
        kind: "ClusterRole".into(),
        name: Some("some-role".into()),
        rules: vec![PolicyRule {
            verbs: verbs.iter().map(|verb| (*verb).to_owned()).collect(),
            api_groups: vec![String::new()],
            resources: resources.iter().map(|r| (*r).to_owned()).collect(),
            ..PolicyRule::default()
        }],
        ..RoleSpec::default()
    });
    event
}

#[test]
fn roles_with_wildcards_escalation_verbs_or_pod_exec_fire_risky_role() {
    for (verbs, resources) in [
        (&["*"][..], &["pods"][..]),
        (&["get"], &["*"]),
        (&["escalate", "bind"], &["clusterroles"]),
        (&["impersonate"], &["users"]),
        (&["get", "create"], &["pods/exec"]),
    ] {
        assert_eq!(
            run("risky_role_created", role_event("alice", verbs, resources)),
            ["PrivilegeEscalation:Kubernetes/RiskyRoleCreated"],
            "{verbs:?} on {resources:?}"
        );
    }
}

#[test]
fn read_only_roles_and_the_control_planes_roles_are_not_risky() {
    assert!(
        run(
            "risky_role_created",
            role_event("alice", &["get", "list"], &["pods"])
        )
        .is_empty()
    );
    assert!(
        run(
            "risky_role_created",
            role_event("system:kube-controller-manager", &["*"], &["*"])
        )
        .is_empty()
    );
}

#[test]
fn write_privilege_roles_fire_only_once_switched_on() {
    let event = || role_event("alice", &["get", "delete"], &["pods"]);
    let default = Engine::default().detector_names();
    assert!(!default.contains(&"role_with_write_privileges_created"));
    let config = DetectConfig {
        enable: vec!["role_with_write_privileges_created".into()],
        ..DetectConfig::default()
    };
    let mut out = Vec::new();
    only("role_with_write_privileges_created", &config).process(&enriched(event()), &mut out);
    assert_eq!(
        types(&out),
        ["PrivilegeEscalation:Kubernetes/RoleWithWritePrivilegesCreated"]
    );
    out.clear();
    let read_only = role_event("alice", &["get"], &["pods"]);
    only("role_with_write_privileges_created", &config).process(&enriched(read_only), &mut out);
    assert!(out.is_empty());
}

#[test]
fn changing_or_deleting_system_roles_fires() {
    let mut patch = request(
        "minikube-user",
        "patch",
        "clusterroles",
        None,
        Some("system:node-problem-detector"),
        200,
    );
    assert_eq!(
        run("system_role_modified", patch.clone()),
        ["Impact:Kubernetes/SystemRoleModified"]
    );
    patch.verb = "delete".into();
    assert_eq!(run("system_role_modified", patch).len(), 1);
}

#[test]
fn own_roles_and_the_api_servers_reconciliation_do_not_fire_system_role_modified() {
    let own = request(
        "alice",
        "patch",
        "clusterroles",
        None,
        Some("shop-reader"),
        200,
    );
    assert!(run("system_role_modified", own).is_empty());
    let reconcile = request(
        "system:apiserver",
        "update",
        "clusterroles",
        None,
        Some("system:aggregate-to-admin"),
        200,
    );
    assert!(run("system_role_modified", reconcile).is_empty());
    let read = request(
        "alice",
        "get",
        "clusterroles",
        None,
        Some("system:node"),
        200,
    );
    assert!(run("system_role_modified", read).is_empty());
}

// ---- credentials, tokens, certificates

#[test]
fn configmaps_holding_credentials_fire() {
    let mut event = request(
        "alice",
        "create",
        "configmaps",
        Some("shop"),
        Some("cfg"),
        201,
    );
    event.config_map_credential_keys = vec!["access.properties".into()];
    assert_eq!(
        run("credentials_in_configmap", event),
        ["CredentialAccess:Kubernetes/CredentialsInConfigMap"]
    );
}

#[test]
fn configmaps_without_credentials_or_reads_of_one_do_not_fire() {
    let clean = request(
        "alice",
        "create",
        "configmaps",
        Some("shop"),
        Some("cfg"),
        201,
    );
    assert!(run("credentials_in_configmap", clean).is_empty());
    let mut read = request("alice", "get", "configmaps", Some("shop"), Some("cfg"), 200);
    read.config_map_credential_keys = vec!["access.properties".into()];
    assert!(run("credentials_in_configmap", read).is_empty());
}

#[test]
fn tokens_minted_by_people_fire_and_by_kubelets_do_not() {
    let person = request(
        "alice",
        "create",
        "serviceaccounts/token",
        Some("shop"),
        Some("builder"),
        201,
    );
    assert_eq!(
        run("service_account_token_created", person),
        ["CredentialAccess:Kubernetes/ServiceAccountTokenCreated"]
    );
    let kubelet = request(
        "system:node:ip-10-0-1-5.ec2.internal",
        "create",
        "serviceaccounts/token",
        Some("shop"),
        Some("builder"),
        201,
    );
    assert!(run("service_account_token_created", kubelet).is_empty());
}

#[test]
fn csr_approval_by_a_person_fires_and_by_the_controller_does_not() {
    let person = request(
        "alice",
        "update",
        "certificatesigningrequests/approval",
        None,
        Some("csr-1"),
        200,
    );
    assert_eq!(
        run("certificate_signing_request_approved", person),
        ["PrivilegeEscalation:Kubernetes/CertificateSigningRequestApproved"]
    );
    let controller = request(
        "system:serviceaccount:kube-system:certificate-controller",
        "update",
        "certificatesigningrequests/approval",
        None,
        Some("csr-2"),
        200,
    );
    assert!(run("certificate_signing_request_approved", controller).is_empty());
}

// ---- exposure, webhooks, namespaces, events

fn service_event(service_type: &str) -> AuditEvent {
    let mut event = request(
        "alice",
        "create",
        "services",
        Some("shop"),
        Some("web"),
        201,
    );
    event.service = Some(ServiceSpec {
        name: Some("web".into()),
        namespace: Some("shop".into()),
        service_type: service_type.into(),
        ..ServiceSpec::default()
    });
    event
}

#[test]
fn nodeport_services_fire_and_cluster_ip_services_do_not() {
    assert_eq!(
        run("nodeport_service_created", service_event("NodePort")),
        ["Policy:Kubernetes/NodePortServiceCreated"]
    );
    assert!(run("nodeport_service_created", service_event("ClusterIP")).is_empty());
}

#[test]
fn load_balancer_services_fire_only_once_switched_on() {
    assert!(
        !Engine::default()
            .detector_names()
            .contains(&"load_balancer_service_created")
    );
    let config = DetectConfig {
        enable: vec!["load_balancer_service_created".into()],
        ..DetectConfig::default()
    };
    let mut out = Vec::new();
    let mut engine = only("load_balancer_service_created", &config);
    engine.process(&enriched(service_event("LoadBalancer")), &mut out);
    engine.process(&enriched(service_event("NodePort")), &mut out);
    assert_eq!(
        types(&out),
        ["Policy:Kubernetes/LoadBalancerServiceCreated"]
    );
}

#[test]
fn webhook_changes_and_deletions_fire() {
    let created = request(
        "alice",
        "create",
        "mutatingwebhookconfigurations",
        None,
        Some("inject"),
        201,
    );
    assert_eq!(
        run("admission_webhook_changed", created),
        ["Persistence:Kubernetes/AdmissionWebhookChanged"]
    );
    let deleted = request(
        "alice",
        "delete",
        "validatingwebhookconfigurations",
        None,
        Some("gatekeeper"),
        200,
    );
    assert_eq!(
        run("admission_webhook_deleted", deleted),
        ["DefenseEvasion:Kubernetes/AdmissionWebhookDeleted"]
    );
}

#[test]
fn webhook_reads_and_the_control_planes_webhook_updates_do_not_fire() {
    let read = request(
        "alice",
        "list",
        "mutatingwebhookconfigurations",
        None,
        None,
        200,
    );
    assert!(run("admission_webhook_changed", read).is_empty());
    let eks = request(
        "eks:addon-manager",
        "update",
        "mutatingwebhookconfigurations",
        None,
        Some("pod-identity-webhook"),
        200,
    );
    assert!(run("admission_webhook_changed", eks).is_empty());
}

#[test]
fn service_accounts_in_system_namespaces_fire_elsewhere_not() {
    let system = request(
        "minikube-user",
        "create",
        "serviceaccounts",
        Some("kube-system"),
        Some("myacct"),
        201,
    );
    assert_eq!(
        run("service_account_in_system_namespace", system),
        ["Persistence:Kubernetes/ServiceAccountInSystemNamespace"]
    );
    let elsewhere = request(
        "alice",
        "create",
        "serviceaccounts",
        Some("shop"),
        Some("a"),
        201,
    );
    assert!(run("service_account_in_system_namespace", elsewhere).is_empty());
    let token = request(
        "alice",
        "create",
        "serviceaccounts/token",
        Some("kube-system"),
        Some("a"),
        201,
    );
    assert!(run("service_account_in_system_namespace", token).is_empty());
}

#[test]
fn events_deleted_by_a_person_fire_and_by_the_control_plane_do_not() {
    let person = request(
        "alice",
        "deletecollection",
        "events",
        Some("shop"),
        None,
        200,
    );
    assert_eq!(
        run("events_deleted", person),
        ["DefenseEvasion:Kubernetes/EventsDeleted"]
    );
    let controller = request(
        "system:kube-controller-manager",
        "delete",
        "events",
        Some("shop"),
        Some("e"),
        200,
    );
    assert!(run("events_deleted", controller).is_empty());
    let read = request("alice", "list", "events", Some("shop"), None, 200);
    assert!(run("events_deleted", read).is_empty());
}

#[test]
fn system_identities_from_public_addresses_fire_from_inside_or_trusted_not() {
    let mut outside = request(
        "system:node:ip-10-0-1-5.ec2.internal",
        "get",
        "secrets",
        Some("shop"),
        Some("s"),
        200,
    );
    outside.source_ips = vec!["198.51.100.20".into()];
    assert_eq!(
        run("system_identity_from_public_ip", outside.clone()),
        ["UnauthorizedAccess:Kubernetes/SystemIdentityFromPublicIP"]
    );
    let inside = request(
        "system:node:ip-10-0-1-5.ec2.internal",
        "get",
        "secrets",
        Some("shop"),
        Some("s"),
        200,
    );
    assert!(run("system_identity_from_public_ip", inside).is_empty());
    let mut trusted = enriched(outside);
    if let Some(ip) = trusted.source_ip.as_mut() {
        ip.trusted = true;
    }
    assert!(run_enriched("system_identity_from_public_ip", trusted).is_empty());
    let mut person = request("alice", "get", "pods", Some("shop"), None, 200);
    person.source_ips = vec!["198.51.100.20".into()];
    assert!(run("system_identity_from_public_ip", person).is_empty());
}

// ---- workloads

fn pod(namespace: &str, image: &str, edit: impl FnOnce(&mut WorkloadSpec)) -> AuditEvent {
    let mut event = request("alice", "create", "pods", Some(namespace), Some("p"), 201);
    let mut workload = WorkloadSpec {
        kind: "Pod".into(),
        name: Some("p".into()),
        namespace: Some(namespace.into()),
        containers: vec![ContainerSpec {
            name: "c".into(),
            image: image.into(),
            ..ContainerSpec::default()
        }],
        ..WorkloadSpec::default()
    };
    edit(&mut workload);
    event.workload = Some(workload);
    event
}

#[test]
fn pods_sharing_host_namespaces_fire() {
    for edit in [
        (|w: &mut WorkloadSpec| w.host_network = true) as fn(&mut WorkloadSpec),
        |w| w.host_pid = true,
        |w| w.host_ipc = true,
    ] {
        assert_eq!(
            run("host_namespace_container", pod("shop", "nginx", edit)),
            ["PrivilegeEscalation:Kubernetes/HostNamespaceContainer"]
        );
    }
}

#[test]
fn isolated_pods_and_trusted_add_ons_on_the_host_network_do_not_fire() {
    assert!(run("host_namespace_container", pod("shop", "nginx", |_| {})).is_empty());
    let cni = pod(
        "kube-system",
        "602401143452.dkr.ecr.us-east-1.amazonaws.com/amazon-k8s-cni:v1.16.0",
        |w| w.host_network = true,
    );
    assert!(run("host_namespace_container", cni).is_empty());
}

#[test]
fn dangerous_capabilities_fire_in_either_spelling() {
    for capability in ["SYS_ADMIN", "CAP_SYS_PTRACE", "sys_module", "ALL"] {
        let event = pod("shop", "debug:1", |w| {
            w.containers[0].capabilities_added = vec![capability.into()];
        });
        assert_eq!(
            run("container_with_dangerous_capabilities", event),
            ["PrivilegeEscalation:Kubernetes/ContainerWithDangerousCapabilities"],
            "{capability}"
        );
    }
}

#[test]
fn harmless_capabilities_and_privileged_containers_do_not_fire_dangerous_capabilities() {
    let harmless = pod("shop", "web:1", |w| {
        w.containers[0].capabilities_added = vec!["NET_BIND_SERVICE".into(), "CHOWN".into()];
    });
    assert!(run("container_with_dangerous_capabilities", harmless).is_empty());
    // A privileged container has every capability already: PrivilegedContainer reports it.
    let privileged = pod("shop", "web:1", |w| {
        w.containers[0].privileged = true;
        w.containers[0].capabilities_added = vec!["SYS_ADMIN".into()];
    });
    assert!(run("container_with_dangerous_capabilities", privileged).is_empty());
}

#[test]
fn unknown_images_in_system_namespaces_fire() {
    for namespace in ["kube-system", "kube-public"] {
        assert_eq!(
            run(
                "workload_in_system_namespace",
                pod(namespace, "docker.io/xmrig/xmrig:6.21.0", |_| {})
            ),
            ["Persistence:Kubernetes/WorkloadInSystemNamespace"]
        );
    }
}

#[test]
fn system_images_in_system_namespaces_and_anything_elsewhere_do_not_fire() {
    for image in [
        "registry.k8s.io/coredns/coredns:v1.11.1",
        "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/kube-proxy:v1.29.0",
        "public.ecr.aws/karpenter/controller:1.0.0",
    ] {
        assert!(
            run(
                "workload_in_system_namespace",
                pod("kube-system", image, |_| {})
            )
            .is_empty(),
            "{image}"
        );
    }
    assert!(
        run(
            "workload_in_system_namespace",
            pod("shop", "docker.io/xmrig/xmrig", |_| {})
        )
        .is_empty()
    );
}

// ---- denied bursts

fn denied(who: &str, verb: &str, resource: &str, namespace: &str, second: i64) -> EnrichedEvent {
    let mut event = request(who, verb, resource, Some(namespace), None, 403);
    event.event_time_micros = 1_700_000_000_000_000 + second * 1_000_000;
    event.audit_id = format!("{who}-{verb}-{resource}-{namespace}-{second}");
    enriched(event)
}

const RESOURCES: [&str; 12] = [
    "secrets",
    "pods",
    "nodes",
    "configmaps",
    "deployments",
    "daemonsets",
    "roles",
    "clusterroles",
    "rolebindings",
    "serviceaccounts",
    "services",
    "jobs",
];

#[test]
fn a_principal_refused_on_many_different_calls_fires_once_per_window() {
    let mut engine = only("denied_requests_burst", &DetectConfig::default());
    let mut out = Vec::new();
    for (index, resource) in RESOURCES.iter().enumerate() {
        engine.process(
            &denied("stolen", "list", resource, "shop", index as i64 * 10),
            &mut out,
        );
    }
    assert_eq!(types(&out), ["Discovery:Kubernetes/DeniedRequestsBurst"]);
    assert_eq!(out[0].aggregation_key, ["stolen"]);
    // A new window, another burst: a second detection of the same finding.
    for (index, resource) in RESOURCES.iter().enumerate() {
        engine.process(
            &denied("stolen", "get", resource, "shop", 3_600 + index as i64),
            &mut out,
        );
    }
    assert_eq!(out.len(), 2);
}

#[test]
fn repeated_identical_refusals_slow_probing_and_anonymous_scanners_do_not_fire() {
    let mut engine = only("denied_requests_burst", &DetectConfig::default());
    let mut out = Vec::new();
    for second in 0..100 {
        engine.process(
            &denied("reports", "list", "configmaps", "shop", second),
            &mut out,
        );
    }
    // Twelve different calls, an hour apart: never ten in one window.
    for (index, resource) in RESOURCES.iter().enumerate() {
        engine.process(
            &denied("slow", "list", resource, "shop", index as i64 * 3_600),
            &mut out,
        );
    }
    for (index, resource) in RESOURCES.iter().enumerate() {
        let mut scan = denied("system:anonymous", "list", resource, "shop", index as i64);
        if let Some(audit) = scan.audit.as_mut() {
            audit.user.groups = vec!["system:unauthenticated".into()];
        }
        engine.process(&scan, &mut out);
    }
    assert!(out.is_empty(), "{:?}", types(&out));
}

#[test]
fn a_restored_burst_window_goes_on_counting() {
    let mut first = only("denied_requests_burst", &DetectConfig::default());
    let mut out = Vec::new();
    for (index, resource) in RESOURCES.iter().take(6).enumerate() {
        first.process(
            &denied("stolen", "list", resource, "shop", index as i64),
            &mut out,
        );
    }
    let mut state = Vec::new();
    first.drain_state(&mut state);
    let mut restarted = only("denied_requests_burst", &DetectConfig::default());
    for entry in &state {
        assert!(restarted.restore(&entry.key, entry.value.as_deref()));
    }
    for (index, resource) in RESOURCES.iter().enumerate().skip(6) {
        restarted.process(
            &denied("stolen", "list", resource, "shop", index as i64),
            &mut out,
        );
    }
    assert_eq!(out.len(), 1, "6 before the restart and 4 after make 10");
}

// ---- curated threat feeds

#[test]
fn curated_feeds_raise_malicious_ip_caller_and_custom_lists_do_not() {
    let listed = |curated: bool| {
        let mut event = request("bob", "get", "secrets", Some("shop"), Some("db"), 200);
        event.source_ips = vec!["198.51.100.7".into()];
        let mut enriched = enriched(event);
        if let Some(ip) = enriched.source_ip.as_mut() {
            ip.threat_matches = vec![ThreatMatch {
                list_name: "feed".into(),
                entry: "198.51.100.7".into(),
                file_sha256: "00".into(),
                curated,
                category: None,
            }];
        }
        enriched
    };
    assert_eq!(
        run_enriched("malicious_ip_caller", listed(true)),
        ["CredentialAccess:Kubernetes/MaliciousIPCaller"]
    );
    assert!(run_enriched("malicious_ip_caller", listed(false)).is_empty());
    assert_eq!(
        run_enriched("malicious_ip_caller_custom", listed(false)),
        ["CredentialAccess:Kubernetes/MaliciousIPCaller.Custom"]
    );
}

// ---- the user's own rules

const CUSTOM: &str = r#"
[[rule]]
id = "prod_secret_reads_by_people"
type = "CredentialAccess:Kubernetes/ProdSecretRead"
severity = "Medium"
title = "{user.username} read secret {object}."
description = "{user.username} read {object} in {cluster.name}."
key = ["user.username", "object_ref.namespace"]
when = [
  { field = "object_ref.resource", eq = "secrets" },
  { field = "verb", in = ["get", "list"] },
  { field = "object_ref.namespace", prefix = "prod-" },
  { field = "user.groups", neq = "system:serviceaccounts" },
]
"#;

#[test]
fn a_custom_rule_file_fires_with_its_words_and_key() {
    let config = DetectConfig {
        rule_files: vec![RuleSource {
            name: "mine.toml".into(),
            text: CUSTOM.into(),
        }],
        ..DetectConfig::default()
    };
    let mut engine = only("prod_secret_reads_by_people", &config);
    let mut out = Vec::new();
    engine.process(
        &enriched(request(
            "carol",
            "get",
            "secrets",
            Some("prod-db"),
            Some("root"),
            200,
        )),
        &mut out,
    );
    assert_eq!(types(&out), ["CredentialAccess:Kubernetes/ProdSecretRead"]);
    assert_eq!(out[0].title, "carol read secret prod-db/root.");
    assert_eq!(out[0].aggregation_key, ["carol", "prod-db"]);
    assert_eq!(out[0].severity, 5.0);
    assert_eq!(out[0].detector, "prod_secret_reads_by_people");
}

#[test]
fn a_custom_rule_stays_quiet_where_a_condition_fails() {
    let config = DetectConfig {
        rule_files: vec![RuleSource {
            name: "mine.toml".into(),
            text: CUSTOM.into(),
        }],
        ..DetectConfig::default()
    };
    let mut engine = only("prod_secret_reads_by_people", &config);
    let mut out = Vec::new();
    engine.process(
        &enriched(request(
            "carol",
            "get",
            "secrets",
            Some("staging"),
            Some("root"),
            200,
        )),
        &mut out,
    );
    let mut service_account = request(
        "system:serviceaccount:prod-db:app",
        "get",
        "secrets",
        Some("prod-db"),
        Some("root"),
        200,
    );
    service_account
        .user
        .groups
        .push("system:serviceaccounts".into());
    engine.process(&enriched(service_account), &mut out);
    engine.process(
        &enriched(request(
            "carol",
            "delete",
            "secrets",
            Some("prod-db"),
            Some("root"),
            200,
        )),
        &mut out,
    );
    assert!(out.is_empty(), "{:?}", types(&out));
}

#[test]
fn bad_configurations_are_refused_with_a_reason() {
    let unknown = DetectConfig {
        disable: vec!["no_such_rule".into()],
        ..DetectConfig::default()
    };
    assert!(matches!(
        Engine::build(&unknown),
        Err(BuildError::UnknownName(name)) if name == "no_such_rule"
    ));
    let clash = DetectConfig {
        rule_files: vec![RuleSource {
            name: "mine.toml".into(),
            text: CUSTOM.replace("prod_secret_reads_by_people", "exec_in_pod"),
        }],
        ..DetectConfig::default()
    };
    let error = Engine::build(&clash).unwrap_err();
    assert!(error.to_string().contains("mine.toml:2"), "{error}");
    let broken = DetectConfig {
        rule_files: vec![RuleSource {
            name: "mine.toml".into(),
            text: CUSTOM.replace("prefix = \"prod-\"", "prefx = \"prod-\""),
        }],
        ..DetectConfig::default()
    };
    let error = Engine::build(&broken).unwrap_err().to_string();
    assert!(error.starts_with("mine.toml:12: "), "{error}");
    let disabled = DetectConfig {
        disable: vec!["exec_in_pod".into()],
        ..DetectConfig::default()
    };
    assert!(
        !Engine::build(&disabled)
            .unwrap()
            .detector_names()
            .contains(&"exec_in_pod")
    );
}

/// A one-rule file whose `when` is `conditions`, as a config with it on.
fn rule_with(conditions: &str) -> DetectConfig {
    DetectConfig {
        rule_files: vec![RuleSource {
            name: "ported.toml".into(),
            text: format!(
                "[[rule]]\nid = \"ported\"\ntype = \"Discovery:Kubernetes/Ported\"\nseverity = \"Low\"\ntitle = \"t\"\ndescription = \"d\"\nwhen = [{conditions}]\n"
            ),
        }],
        ..DetectConfig::default()
    }
}

/// Which of the events the one-rule file fires on, by the secret's name.
fn fired_on(conditions: &str, names: &[&str]) -> Vec<String> {
    let mut engine = only("ported", &rule_with(conditions));
    let mut fired = Vec::new();
    for name in names {
        let mut out = Vec::new();
        engine.process(
            &enriched(request(
                "carol",
                "get",
                "secrets",
                Some("prod"),
                Some(name),
                200,
            )),
            &mut out,
        );
        if !out.is_empty() {
            fired.push((*name).to_owned());
        }
    }
    fired
}

#[test]
fn matches_is_a_wildcard_over_the_whole_value_as_in_suppression_and_regex_is_a_regex() {
    let names = ["db-password", "db-passwords-old", "web-password", "db"];
    assert_eq!(
        fired_on(
            r#"{ field = "object_ref.name", matches = "db-*word" }"#,
            &names
        ),
        ["db-password"]
    );
    assert_eq!(
        fired_on(
            r#"{ field = "object_ref.name", matches = ["d?", "web-*"] }"#,
            &names
        ),
        ["web-password", "db"]
    );
    // A regular expression is found anywhere unless anchored.
    assert_eq!(
        fired_on(
            r#"{ field = "object_ref.name", regex = "pass(word)?s?$" }"#,
            &names
        ),
        ["db-password", "web-password"]
    );
}

#[test]
fn a_regular_expression_written_as_matches_is_refused_with_the_operator_to_use() {
    let error = Engine::build(&rule_with(
        r#"{ field = "object_ref.name", matches = "^db-(password|token)$" }"#,
    ))
    .unwrap_err()
    .to_string();
    assert!(error.starts_with("ported.toml:7: "), "{error}");
    assert!(error.contains("regex = "), "{error}");
}

#[test]
fn rules_ported_from_sigma_or_falco_keep_their_field_names_and_modifiers() {
    let names = ["db-password", "web-token"];
    for conditions in [
        r#"{ field = "objectRef.name", startswith = "db-" }"#,
        r#"{ field = "ka.target.name", prefix = "db-" }"#,
        r#"{ field = "objectRef.name", re = "^db-" }"#,
        r#"{ field = "object_ref.name", endswith = "password" }"#,
    ] {
        assert_eq!(
            fired_on(conditions, &names),
            ["db-password"],
            "{conditions}"
        );
    }
    // An alias names the field of its source: a runtime field stays refused in an audit rule.
    let error = Engine::build(&rule_with(
        r#"{ field = "verb", eq = "get" }, { field = "CommandLine", contains = "curl" }"#,
    ))
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("\"process.command_line\" is read from runtime events"),
        "{error}"
    );
    for (alias, field) in vigil_detect::rules::FIELD_ALIASES {
        assert!(
            vigil_detect::rules::FIELDS
                .iter()
                .any(|known| known.name == *field),
            "{alias} -> {field}"
        );
    }
}

// ---- rule files are user input: no text may panic the loader

mod loading_never_panics {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_text(text in "\\PC{0,300}") {
            let _ = vigil_detect::rules::parse_rules("fuzz.toml", &text);
        }

        #[test]
        fn rule_shaped_text(
            id in "[a-z_]{0,8}",
            kind in "[A-Za-z:/.!]{0,30}",
            severity in "(\"Low\"|\"High\"|\"x\"|[0-9]{1,2}(\\.[0-9])?)",
            title in "[a-z {}.]{0,20}",
            field in "[a-z_.]{0,20}",
            operator in "(eq|neq|in|prefix|matches|regex|startswith|exists|gt|bogus)",
            value in "(\"[a-z(*\\[]{0,6}\"|true|3|\\[\"a\"\\])",
        ) {
            let text = format!(
                "[[rule]]\nid = \"{id}\"\ntype = \"{kind}\"\nseverity = {severity}\ntitle = \"{title}\"\ndescription = \"d\"\nwhen = [{{ field = \"{field}\", {operator} = {value} }}]\n"
            );
            if let Err(error) = vigil_detect::rules::parse_rules("fuzz.toml", &text) {
                prop_assert!(error.line >= 1 && error.line <= 8, "{}", error);
            }
        }
    }
}

// ---- impersonation of privileged identities

fn impersonating(who: &str, as_user: &str, groups: &[&str]) -> AuditEvent {
    let mut event = request("alice", "list", "secrets", Some("kube-system"), None, 200);
    event.user.username = who.into();
    event.impersonated_user = Some(vigil_schemas::UserInfo {
        username: as_user.into(),
        groups: groups.iter().map(|group| (*group).to_owned()).collect(),
        ..vigil_schemas::UserInfo::default()
    });
    event
}

#[test]
fn acting_as_a_cluster_administrator_or_a_control_plane_identity_fires() {
    for (as_user, groups) in [
        ("ops-robot", vec!["system:masters", "system:authenticated"]),
        ("system:kube-controller-manager", vec![]),
        ("system:node:ip-10-0-1-5.ec2.internal", vec!["system:nodes"]),
        ("kubernetes-admin", vec![]),
        ("eks:cluster-bootstrap", vec![]),
    ] {
        assert_eq!(
            run(
                "privileged_identity_impersonated",
                impersonating("mallory", as_user, &groups)
            ),
            ["PrivilegeEscalation:Kubernetes/PrivilegedIdentityImpersonated"],
            "{as_user}"
        );
    }
}

#[test]
fn acting_as_an_ordinary_user_or_being_refused_does_not_fire() {
    for event in [
        impersonating("alice", "bob", &["developers"]),
        impersonating("alice", "system:serviceaccount:shop:web", &[]),
        request("alice", "list", "secrets", Some("kube-system"), None, 200),
    ] {
        assert!(run("privileged_identity_impersonated", event).is_empty());
    }
    let mut refused = impersonating("mallory", "kubernetes-admin", &["system:masters"]);
    refused.status_code = Some(403);
    assert!(run("privileged_identity_impersonated", refused).is_empty());
}

fn rule_config(finding_type: &str, overrides: Option<&str>) -> DetectConfig {
    let overrides = overrides.map_or(String::new(), |name| format!("overrides = \"{name}\"\n"));
    let text = format!(
        r#"
[[rule]]
id = "my_rule"
type = "{finding_type}"
severity = "Low"
title = "mine"
description = "mine"
{overrides}when = [{{ field = "verb", eq = "get" }}]
"#
    );
    DetectConfig {
        rule_files: vec![RuleSource {
            name: "mine.toml".into(),
            text,
        }],
        ..DetectConfig::default()
    }
}

fn with_rule(finding_type: &str, overrides: Option<&str>) -> Result<Engine, BuildError> {
    Engine::build(&rule_config(finding_type, overrides))
}

#[test]
fn a_custom_rule_may_not_take_over_a_built_in_s_findings_unless_it_says_so() {
    // A built-in's type, spelled as it raises it, or as a `<Purpose>:` type: refused, naming the
    // built-in (its findings would merge and take the rule's title and severity).
    for (kind, builtin) in [
        (
            "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
            "privileged_container",
        ),
        ("Discovery:Kubernetes/TorIPCaller", ""),
        ("Backdoor:Runtime/C&CActivity.B!DNS", ""),
    ] {
        let error = with_rule(kind, None).expect_err(kind).to_string();
        assert!(error.contains("overrides"), "{error}");
        assert!(error.contains(builtin), "{error}");
    }
    // A type of its own: fine.
    assert!(with_rule("CredentialAccess:Kubernetes/MyOwnThing", None).is_ok());
    // Saying it replaces the built-in: accepted, and the built-in is off.
    let config = rule_config(
        "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
        Some("privileged_container"),
    );
    assert!(Engine::build(&config).is_ok());
    let catalogue = Engine::catalogue(&config).unwrap();
    let builtin = catalogue
        .iter()
        .find(|info| info.name == "privileged_container")
        .unwrap();
    assert!(!builtin.enabled);
    // Overriding something that does not raise the type is a mistake.
    let error = with_rule(
        "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
        Some("exec_in_kube_system_pod"),
    )
    .expect_err("a wrong override")
    .to_string();
    assert!(error.contains("no built-in raising"), "{error}");
}

// ---- audit ids

#[test]
fn a_reused_audit_id_fires_and_a_fresh_one_does_not() {
    let mut reused = request("mallory", "get", "secrets", Some("shop"), Some("db"), 200);
    reused.audit_id_reused = true;
    assert_eq!(
        run("audit_id_reused", reused),
        ["DefenseEvasion:Kubernetes/AuditIdReused"]
    );
    let fresh = request("mallory", "get", "secrets", Some("shop"), Some("db"), 200);
    assert!(run("audit_id_reused", fresh).is_empty());
}
