//! Every built-in detector: an event that must fire it and one that must not.

use vigil_detect::Engine;
use vigil_schemas::{
    AuditEvent, ContainerSpec, Detection, EnrichedEvent, IpIntel, ObjectRef, RoleBindingSpec,
    ServiceSpec, Subject, ThreatMatch, UserInfo, Volume, VolumeMount, WorkloadSpec,
};
use vigil_testkit::{T0, anonymous, enriched, user};

fn call(
    who: UserInfo,
    verb: &str,
    resource: &str,
    namespace: Option<&str>,
    code: i32,
) -> AuditEvent {
    let uri = match namespace {
        Some(ns) => format!("/api/v1/namespaces/{ns}/{resource}"),
        None => format!("/api/v1/{resource}"),
    };
    AuditEvent {
        audit_id: format!("id-{verb}-{resource}"),
        stage: "ResponseComplete".into(),
        event_time_micros: T0,
        verb: verb.into(),
        request_uri: uri,
        user: who,
        source_ips: vec!["10.0.0.7".into()],
        object_ref: Some(ObjectRef {
            resource: Some(resource.into()),
            namespace: namespace.map(str::to_owned),
            ..ObjectRef::default()
        }),
        status_code: Some(code),
        ..AuditEvent::default()
    }
}

/// The detectors this file tests; the others have their own tests (vigil_audit_and_rule_language.rs) and would
/// add their findings for the same events.
const UNDER_TEST: [&str; 10] = [
    "successful_anonymous_access",
    "anonymous_access_granted",
    "exec_in_kube_system_pod",
    "admin_access_to_default_service_account",
    "exposed_dashboard",
    "tor_ip_caller",
    "malicious_ip_caller",
    "malicious_ip_caller_custom",
    "privileged_container",
    "container_with_sensitive_mount",
];

fn engine() -> Engine {
    let mut engine = Engine::default();
    engine.retain(|name| UNDER_TEST.contains(&name));
    engine
}

fn detect(event: EnrichedEvent) -> Vec<Detection> {
    let mut engine = engine();
    let mut out = Vec::new();
    engine.process(&event, &mut out);
    out
}

fn types(detections: &[Detection]) -> Vec<&str> {
    detections
        .iter()
        .map(|detection| detection.finding_type.as_str())
        .collect()
}

// ---- SuccessfulAnonymousAccess

#[test]
fn anonymous_secret_read_that_succeeded_fires_credential_access() {
    let found = detect(enriched(call(
        anonymous(),
        "list",
        "secrets",
        Some("kube-system"),
        200,
    )));
    assert_eq!(
        types(&found),
        ["CredentialAccess:Kubernetes/SuccessfulAnonymousAccess"]
    );
    assert_eq!(found[0].severity, 8.0);
    let discovery = detect(enriched(call(anonymous(), "list", "nodes", None, 200)));
    assert_eq!(
        types(&discovery),
        ["Discovery:Kubernetes/SuccessfulAnonymousAccess"]
    );
    assert_eq!(discovery[0].severity, 5.0);
}

#[test]
fn anonymous_denied_requests_and_health_probes_do_not_fire() {
    assert!(
        detect(enriched(call(
            anonymous(),
            "list",
            "secrets",
            Some("kube-system"),
            403
        )))
        .is_empty()
    );
    let mut probe = call(anonymous(), "get", "healthz", None, 200);
    probe.object_ref = None;
    probe.request_uri = "/healthz".into();
    assert!(detect(enriched(probe)).is_empty());
    // The service-account issuer's discovery document and keys, which outside parties that verify
    // the cluster's tokens fetch unauthenticated.
    for document in ["/.well-known/openid-configuration", "/openid/v1/jwks"] {
        let mut discovery = call(anonymous(), "get", "jwks", None, 200);
        discovery.object_ref = None;
        discovery.request_uri = document.into();
        assert!(detect(enriched(discovery)).is_empty(), "{document}");
    }
    assert!(
        detect(enriched(call(
            user("alice"),
            "list",
            "secrets",
            Some("shop"),
            200
        )))
        .is_empty()
    );
}

// ---- AnonymousAccessGranted

fn binding(role: &str, subject_kind: &str, subject: &str) -> AuditEvent {
    let mut event = call(user("bob"), "create", "clusterrolebindings", None, 201);
    event.role_binding = Some(RoleBindingSpec {
        kind: "ClusterRoleBinding".into(),
        name: Some("b".into()),
        role_ref_kind: "ClusterRole".into(),
        role_ref_name: role.into(),
        subjects: vec![Subject {
            kind: subject_kind.into(),
            name: subject.into(),
            namespace: Some("shop".into()),
        }],
        ..RoleBindingSpec::default()
    });
    event
}

#[test]
fn binding_to_anonymous_fires_anonymous_access_granted() {
    assert_eq!(
        types(&detect(enriched(binding(
            "view",
            "User",
            "system:anonymous"
        )))),
        ["Policy:Kubernetes/AnonymousAccessGranted"]
    );
    assert_eq!(
        types(&detect(enriched(binding(
            "view",
            "Group",
            "system:unauthenticated"
        )))),
        ["Policy:Kubernetes/AnonymousAccessGranted"]
    );
}

#[test]
fn binding_to_a_named_user_or_a_failed_binding_does_not_grant_anonymous() {
    assert!(detect(enriched(binding("view", "User", "carol"))).is_empty());
    // What the API server binds to everyone at every start, and the issuer discovery binding
    // outside token verifiers need: nothing to fear.
    for role in [
        "system:public-info-viewer",
        "system:service-account-issuer-discovery",
    ] {
        assert!(
            detect(enriched(binding(role, "Group", "system:unauthenticated"))).is_empty(),
            "{role}"
        );
    }
    // A namespaced Role of that name could hold anything.
    let mut role = binding("system:discovery", "Group", "system:unauthenticated");
    if let Some(spec) = role.role_binding.as_mut() {
        spec.role_ref_kind = "Role".into();
    }
    assert_eq!(
        types(&detect(enriched(role))),
        ["Policy:Kubernetes/AnonymousAccessGranted"]
    );
    let mut failed = binding("view", "User", "system:anonymous");
    failed.status_code = Some(403);
    assert!(detect(enriched(failed)).is_empty());
}

// ---- AdminAccessToDefaultServiceAccount

#[test]
fn admin_for_the_default_service_account_fires_in_either_spelling() {
    // RBAC matches a User subject against the authenticated username, which for a service
    // account is system:serviceaccount:NS:NAME: the same grant in another spelling.
    for (role, kind, subject, namespace) in [
        ("cluster-admin", "ServiceAccount", "default", "shop"),
        (
            "admin",
            "User",
            "system:serviceaccount:payments:default",
            "payments",
        ),
    ] {
        let found = detect(enriched(binding(role, kind, subject)));
        assert_eq!(
            types(&found),
            ["Policy:Kubernetes/AdminAccessToDefaultServiceAccount"],
            "{subject}"
        );
        assert!(
            found[0]
                .description
                .contains(&format!("namespace {namespace}")),
            "{}",
            found[0].description
        );
    }
}

#[test]
fn view_for_the_default_account_or_admin_for_another_account_does_not_fire() {
    assert!(detect(enriched(binding("view", "ServiceAccount", "default"))).is_empty());
    assert!(
        detect(enriched(binding(
            "cluster-admin",
            "User",
            "system:serviceaccount:payments:default-reader"
        )))
        .is_empty()
    );
    assert!(detect(enriched(binding("cluster-admin", "User", "default"))).is_empty());
    assert!(
        detect(enriched(binding(
            "cluster-admin",
            "ServiceAccount",
            "argocd"
        )))
        .is_empty()
    );
}

// ---- ExecInKubeSystemPod

fn exec(namespace: &str, code: i32) -> AuditEvent {
    let mut event = call(user("bob"), "create", "pods", Some(namespace), code);
    event.request_uri =
        format!("/api/v1/namespaces/{namespace}/pods/coredns-1/exec?command=sh&container=coredns");
    let object = event.object_ref.as_mut().unwrap();
    object.subresource = Some("exec".into());
    object.name = Some("coredns-1".into());
    // As ingest reads it from the URI.
    event.exec_command = vec!["sh".into()];
    event
}

#[test]
fn exec_into_a_kube_system_pod_fires_with_the_command() {
    let found = detect(enriched(exec("kube-system", 101)));
    assert_eq!(types(&found), ["Execution:Kubernetes/ExecInKubeSystemPod"]);
    assert!(
        found[0]
            .additional_info
            .iter()
            .any(|pair| pair.key == "command" && pair.value == "sh")
    );
}

#[test]
fn exec_elsewhere_or_refused_does_not_fire() {
    assert!(detect(enriched(exec("shop", 101))).is_empty());
    assert!(detect(enriched(exec("kube-system", 403))).is_empty());
}

// ---- ExposedDashboard / KubeflowDashboardExposed

fn service(name: &str, service_type: &str) -> AuditEvent {
    let mut event = call(
        user("bob"),
        "create",
        "services",
        Some("kubernetes-dashboard"),
        201,
    );
    event.service = Some(ServiceSpec {
        name: Some(name.into()),
        service_type: service_type.into(),
        ..ServiceSpec::default()
    });
    event
}

#[test]
fn dashboards_behind_a_load_balancer_fire() {
    assert_eq!(
        types(&detect(enriched(service(
            "kubernetes-dashboard",
            "LoadBalancer"
        )))),
        ["Policy:Kubernetes/ExposedDashboard"]
    );
    assert_eq!(
        types(&detect(enriched(service(
            "centraldashboard",
            "LoadBalancer"
        )))),
        ["Policy:Kubernetes/KubeflowDashboardExposed"]
    );
}

#[test]
fn a_cluster_ip_dashboard_or_another_load_balancer_does_not_fire() {
    assert!(detect(enriched(service("kubernetes-dashboard", "ClusterIP"))).is_empty());
    assert!(detect(enriched(service("shop-frontend", "LoadBalancer"))).is_empty());
}

// ---- TorIPCaller / MaliciousIPCaller.Custom

fn from_public(event: AuditEvent, tor: bool, list: bool, trusted: bool) -> EnrichedEvent {
    let mut enriched = enriched(event);
    enriched.source_ip = Some(IpIntel {
        ip: "185.220.101.4".into(),
        scope: "public".into(),
        tor_exit: tor,
        trusted,
        threat_matches: if list {
            vec![ThreatMatch {
                list_name: "bad".into(),
                entry: "185.220.101.0/24".into(),
                file_sha256: "ab".into(),
                curated: false,
                category: None,
            }]
        } else {
            vec![]
        },
        ..IpIntel::default()
    });
    enriched
}

#[test]
fn tor_and_threat_list_callers_fire_with_their_purpose() {
    let tor = detect(from_public(
        call(user("bob"), "get", "secrets", Some("shop"), 200),
        true,
        false,
        false,
    ));
    assert_eq!(types(&tor), ["CredentialAccess:Kubernetes/TorIPCaller"]);
    let listed = detect(from_public(
        call(user("bob"), "delete", "deployments", Some("shop"), 200),
        false,
        true,
        false,
    ));
    assert_eq!(
        types(&listed),
        ["Impact:Kubernetes/MaliciousIPCaller.Custom"]
    );
    assert_eq!(listed[0].threat_intel[0].list_name, "bad");
    assert_eq!(listed[0].severity, 8.0);
}

#[test]
fn trusted_anonymous_and_clean_callers_do_not_fire_ip_findings() {
    assert!(
        detect(from_public(
            call(user("bob"), "get", "secrets", Some("shop"), 200),
            true,
            true,
            true
        ))
        .is_empty()
    );
    assert!(
        detect(from_public(
            call(user("bob"), "get", "secrets", Some("shop"), 200),
            false,
            false,
            false
        ))
        .is_empty()
    );
    // Anonymous callers surface as SuccessfulAnonymousAccess, not as IP findings.
    let anonymous_from_tor = detect(from_public(
        call(anonymous(), "get", "secrets", Some("shop"), 200),
        true,
        true,
        false,
    ));
    assert_eq!(
        types(&anonymous_from_tor),
        ["CredentialAccess:Kubernetes/SuccessfulAnonymousAccess"]
    );
}

// ---- PrivilegedContainer / ContainerWithSensitiveMount

fn workload_event(
    who: UserInfo,
    kind: &str,
    name: &str,
    owner: Option<(&str, &str)>,
    container: ContainerSpec,
    host_path: Option<&str>,
) -> AuditEvent {
    let resource = format!("{}s", kind.to_ascii_lowercase());
    let mut event = call(who, "create", &resource, Some("kube-system"), 201);
    event.audit_id = format!("id-{name}");
    event.workload = Some(WorkloadSpec {
        kind: kind.into(),
        name: Some(name.into()),
        namespace: Some("kube-system".into()),
        containers: vec![container],
        volumes: host_path
            .map(|path| {
                vec![Volume {
                    name: "host".into(),
                    host_path: Some(path.into()),
                }]
            })
            .unwrap_or_default(),
        owner_kind: owner.map(|(kind, _)| kind.into()),
        owner_name: owner.map(|(_, name)| name.into()),
        ..WorkloadSpec::default()
    });
    event
}

fn container(image: &str, privileged: bool, mount: bool) -> ContainerSpec {
    ContainerSpec {
        name: "c".into(),
        image: image.into(),
        privileged,
        volume_mounts: if mount {
            vec![VolumeMount {
                name: "host".into(),
                mount_path: "/host".into(),
                read_only: false,
            }]
        } else {
            vec![]
        },
        ..ContainerSpec::default()
    }
}

#[test]
fn privileged_and_host_root_mounting_workloads_fire() {
    let found = detect(enriched(workload_event(
        user("bob"),
        "DaemonSet",
        "agent",
        None,
        container("xmrig/xmrig", true, true),
        Some("/"),
    )));
    assert_eq!(
        types(&found),
        [
            "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
            "Persistence:Kubernetes/ContainerWithSensitiveMount"
        ]
    );
    assert!(
        found[1].description.contains("read-write"),
        "{}",
        found[1].description
    );
}

#[test]
fn unprivileged_harmless_mounts_and_trusted_system_images_do_not_fire() {
    assert!(
        detect(enriched(workload_event(
            user("bob"),
            "Pod",
            "p",
            None,
            container("nginx", false, true),
            Some("/data")
        )))
        .is_empty()
    );
    let cni = "602401143452.dkr.ecr.us-east-1.amazonaws.com/amazon-k8s-cni:v1.16.0";
    assert!(
        detect(enriched(workload_event(
            user("bob"),
            "Pod",
            "p",
            None,
            container(cni, true, true),
            Some("/etc")
        )))
        .is_empty()
    );
    // A harmless path declared and mounted by no container: nothing either.
    assert!(
        detect(enriched(workload_event(
            user("bob"),
            "Pod",
            "p",
            None,
            container("nginx", false, false),
            Some("/data")
        )))
        .is_empty()
    );
}

/// A sensitive host path declared as a pod volume is the grant, mounted or not yet (an ephemeral
/// container or a later patch can mount it; Pod Security's baseline refuses the volume itself, and
/// Falco judges pod volumes): it fires, saying no container mounts it.
#[test]
fn a_sensitive_host_path_volume_no_container_mounts_still_fires() {
    let found = detect(enriched(workload_event(
        user("bob"),
        "Pod",
        "p",
        None,
        container("nginx", false, false),
        Some("/var/run/docker.sock"),
    )));
    assert_eq!(
        types(&found),
        ["Persistence:Kubernetes/ContainerWithSensitiveMount"]
    );
    assert!(
        found[0].description.contains("mounted by no container"),
        "{}",
        found[0].description
    );
}

#[test]
fn pods_a_controller_creates_for_a_reported_workload_are_attributed_not_repeated() {
    let mut engine = engine();
    let mut out = Vec::new();
    let controller = user("system:serviceaccount:kube-system:daemon-set-controller");
    engine.process(
        &enriched(workload_event(
            user("bob"),
            "DaemonSet",
            "agent",
            None,
            container("xmrig", true, false),
            None,
        )),
        &mut out,
    );
    assert_eq!(out.len(), 1);
    let mut pod = enriched(workload_event(
        controller.clone(),
        "Pod",
        "agent-x1",
        Some(("DaemonSet", "agent")),
        container("xmrig", true, false),
        None,
    ));
    pod.workload_owner_kind = Some("DaemonSet".into());
    pod.workload_owner_name = Some("agent".into());
    engine.process(&pod, &mut out);
    assert_eq!(
        out.len(),
        1,
        "the controller's pod is part of bob's finding"
    );
    // A controller's pod whose workload was never reported is reported, under the controller's name.
    let mut orphan = enriched(workload_event(
        controller,
        "Pod",
        "other-x1",
        Some(("DaemonSet", "other")),
        container("xmrig", true, false),
        None,
    ));
    orphan.workload_owner_kind = Some("DaemonSet".into());
    orphan.workload_owner_name = Some("other".into());
    engine.process(&orphan, &mut out);
    assert_eq!(out.len(), 2);
}

#[test]
fn every_builtin_detector_is_registered_once() {
    let names = Engine::default().detector_names();
    let unique: std::collections::HashSet<_> = names.iter().collect();
    assert_eq!(names.len(), unique.len());
    let catalogue = Engine::catalogue(&vigil_detect::DetectConfig::default()).unwrap();
    let enabled: Vec<&str> = catalogue
        .iter()
        .filter(|info| info.enabled)
        .map(|info| info.name)
        .collect();
    assert_eq!(names, enabled);
    for name in UNDER_TEST {
        assert!(names.contains(&name), "{name}");
    }
    let off: Vec<&str> = catalogue
        .iter()
        .filter(|info| !info.enabled)
        .map(|info| info.name)
        .collect();
    assert_eq!(
        off,
        [
            "role_with_write_privileges_created",
            "ingress_without_tls",
            "load_balancer_service_created",
            "ptrace_anti_debugging"
        ]
    );
}

#[test]
fn a_restarted_engine_restored_from_its_checkpoint_still_attributes_controller_pods() {
    let controller = user("system:serviceaccount:kube-system:daemon-set-controller");
    let mut first = engine();
    let mut out = Vec::new();
    first.process(
        &enriched(workload_event(
            user("bob"),
            "DaemonSet",
            "agent",
            None,
            container("xmrig", true, false),
            None,
        )),
        &mut out,
    );
    let mut state = Vec::new();
    first.drain_state(&mut state);
    assert!(
        state
            .iter()
            .all(|entry| entry.key.starts_with("privileged_container/")),
        "{state:?}"
    );
    assert!(!state.is_empty());
    let mut drained_again = Vec::new();
    first.drain_state(&mut drained_again);
    assert!(drained_again.is_empty(), "changes are drained once");

    let mut restarted = engine();
    for entry in &state {
        assert!(restarted.restore(&entry.key, entry.value.as_deref()));
    }
    assert!(!restarted.restore("retired_detector/x", Some(b"1")));
    let mut pod = enriched(workload_event(
        controller,
        "Pod",
        "agent-x1",
        Some(("DaemonSet", "agent")),
        container("xmrig", true, false),
        None,
    ));
    pod.workload_owner_kind = Some("DaemonSet".into());
    pod.workload_owner_name = Some("agent".into());
    let mut after = Vec::new();
    restarted.process(&pod, &mut after);
    assert!(
        after.is_empty(),
        "the pod belongs to bob's finding: {:?}",
        types(&after)
    );
    // Without the checkpoint the same pod would be reported under the controller's name.
    let mut forgetful = engine();
    forgetful.process(&pod, &mut after);
    assert_eq!(after.len(), 1);
}
