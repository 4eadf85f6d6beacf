//! The behaviours added for data Vigil was never shown: bindings to privileged roles beyond
//! cluster-admin, credentials read and files copied through exec, secrets listed across namespaces,
//! Ingresses without TLS, and the precision mends (managed identities from their provider's
//! addresses, anonymous calls from loopback, a wildcard only in apiGroups). Each detector runs
//! alone, with an event that must fire it and one that must not.

use vigil_detect::{DetectConfig, Engine};
use vigil_schemas::{
    AuditEvent, ClusterDetails, EnrichedEvent, IngressSpec, IpIntel, PolicyRule, RoleBindingSpec,
    RoleSpec, Subject,
};

/// A request as [`vigil_testkit::request`] builds it, answered as such a request is (201 for a
/// create, 200 otherwise).
fn request(
    who: &str,
    verb: &str,
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> AuditEvent {
    let code = if verb == "create" { 201 } else { 200 };
    vigil_testkit::request(who, verb, resource, namespace, name, code)
}

fn enriched(event: AuditEvent, scope: &str, network: Option<&str>) -> EnrichedEvent {
    EnrichedEvent {
        source_ip: Some(IpIntel {
            ip: event.source_ips.first().cloned().unwrap_or_default(),
            scope: scope.into(),
            network: network.map(str::to_owned),
            ..IpIntel::default()
        }),
        audit: Some(event),
        cluster: ClusterDetails {
            name: "test".into(),
            partition: "aws".into(),
            ..ClusterDetails::default()
        },
        ..EnrichedEvent::default()
    }
}

fn engine(detector: &str) -> Engine {
    vigil_testkit::only(detector, &DetectConfig::default())
}

fn fired(engine: &mut Engine, event: EnrichedEvent) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    engine.process(&event, &mut out);
    out.into_iter()
        .map(|found| (found.finding_type, found.severity))
        .collect()
}

fn run(detector: &str, event: AuditEvent) -> Vec<(String, f64)> {
    fired(&mut engine(detector), enriched(event, "private", None))
}

fn binding(
    kind: &str,
    role_kind: &str,
    role: &str,
    subjects: &[(&str, &str)],
    who: &str,
) -> AuditEvent {
    let (resource, namespace) = if kind == "RoleBinding" {
        ("rolebindings", Some("shop"))
    } else {
        ("clusterrolebindings", None)
    };
    let mut event = request(who, "create", resource, namespace, Some("b"));
    event.role_binding = Some(RoleBindingSpec {
        kind: kind.into(),
        name: Some("b".into()),
        namespace: namespace.map(str::to_owned),
        role_ref_kind: role_kind.into(),
        role_ref_name: role.into(),
        subjects: subjects
            .iter()
            .map(|(kind, name)| Subject {
                kind: (*kind).into(),
                name: (*name).into(),
                namespace: None,
            })
            .collect(),
        ..RoleBindingSpec::default()
    });
    event
}

const PRIVILEGED: &str = "PrivilegeEscalation:Kubernetes/PrivilegedRoleBinding";

#[test]
fn bindings_of_privileged_built_in_roles_fire() {
    for (kind, role, level) in [
        ("RoleBinding", "admin", 5.0),
        ("RoleBinding", "edit", 5.0),
        ("ClusterRoleBinding", "edit", 8.0),
        (
            "ClusterRoleBinding",
            "system:controller:clusterrole-aggregation-controller",
            8.0,
        ),
        ("ClusterRoleBinding", "system:kube-controller-manager", 8.0),
        ("ClusterRoleBinding", "eks:addon-manager", 8.0),
    ] {
        let event = binding(kind, "ClusterRole", role, &[("User", "mallory")], "alice");
        assert_eq!(
            run("privileged_role_binding", event),
            [(PRIVILEGED.to_owned(), level)],
            "{kind} {role}"
        );
    }
}

#[test]
fn any_role_bound_to_a_group_of_everyone_fires_and_the_discovery_roles_do_not() {
    for group in [
        "system:authenticated",
        "system:serviceaccounts",
        "system:masters",
    ] {
        let event = binding(
            "ClusterRoleBinding",
            "ClusterRole",
            "view",
            &[("Group", group)],
            "alice",
        );
        assert_eq!(
            run("privileged_role_binding", event),
            [(PRIVILEGED.to_owned(), 8.0)],
            "{group}"
        );
    }
    let discovery = binding(
        "ClusterRoleBinding",
        "ClusterRole",
        "system:discovery",
        &[("Group", "system:authenticated")],
        "alice",
    );
    assert!(run("privileged_role_binding", discovery).is_empty());
}

#[test]
fn a_role_seen_granting_escalation_makes_its_bindings_privileged_until_it_no_longer_does() {
    let mut engine = engine("privileged_role_binding");
    let role = |verb: &str, verbs: &[&str]| {
        let mut event = request("alice", verb, "clusterroles", None, Some("ops"));
        event.role = Some(RoleSpec {
            kind: "ClusterRole".into(),
            name: Some("ops".into()),
            rules: vec![PolicyRule {
                verbs: verbs.iter().map(|verb| (*verb).to_owned()).collect(),
                api_groups: vec!["rbac.authorization.k8s.io".into()],
                resources: vec!["clusterroles".into()],
                ..PolicyRule::default()
            }],
            ..RoleSpec::default()
        });
        enriched(event, "private", None)
    };
    let bind = || {
        enriched(
            binding(
                "RoleBinding",
                "ClusterRole",
                "ops",
                &[("User", "mallory")],
                "bob",
            ),
            "private",
            None,
        )
    };
    assert!(
        fired(&mut engine, bind()).is_empty(),
        "an unknown role is not judged privileged"
    );
    assert!(fired(&mut engine, role("create", &["get", "escalate"])).is_empty());
    assert_eq!(fired(&mut engine, bind()), [(PRIVILEGED.to_owned(), 5.0)]);
    // Checkpointed: a restarted detector still knows.
    let mut state = Vec::new();
    engine.drain_state(&mut state);
    let mut restarted = self::engine("privileged_role_binding");
    for entry in &state {
        assert!(restarted.restore(&entry.key, entry.value.as_deref()));
    }
    assert_eq!(
        fired(&mut restarted, bind()),
        [(PRIVILEGED.to_owned(), 5.0)]
    );
    assert!(fired(&mut restarted, role("update", &["get", "list"])).is_empty());
    assert!(
        fired(&mut restarted, bind()).is_empty(),
        "rewritten without escalation"
    );
}

#[test]
fn ordinary_bindings_and_the_control_plane_stay_quiet() {
    for event in [
        binding(
            "RoleBinding",
            "ClusterRole",
            "view",
            &[("User", "carol")],
            "alice",
        ),
        binding(
            "RoleBinding",
            "Role",
            "app-reader",
            &[("ServiceAccount", "app")],
            "alice",
        ),
        // cluster-admin is ClusterAdminBinding's.
        binding(
            "ClusterRoleBinding",
            "ClusterRole",
            "cluster-admin",
            &[("User", "carol")],
            "alice",
        ),
        binding(
            "ClusterRoleBinding",
            "ClusterRole",
            "admin",
            &[("User", "carol")],
            "system:kube-controller-manager",
        ),
        binding(
            "ClusterRoleBinding",
            "ClusterRole",
            "edit",
            &[("User", "carol")],
            "aksService",
        ),
    ] {
        assert!(
            run("privileged_role_binding", event.clone()).is_empty(),
            "{event:?}"
        );
    }
}

fn exec(who: &str, namespace: &str, command: &[&str]) -> AuditEvent {
    let mut event = request(who, "create", "pods/exec", Some(namespace), Some("web-1"));
    event.status_code = Some(101);
    event.exec_command = command.iter().map(|part| (*part).to_owned()).collect();
    event
}

#[test]
fn credentials_read_through_exec_fire_beside_exec_and_routine_commands_do_not() {
    let detector = "credentials_read_through_exec";
    let kind = "CredentialAccess:Kubernetes/CredentialsReadThroughExec";
    assert_eq!(
        run(
            detector,
            exec(
                "alice",
                "shop",
                &["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"]
            )
        ),
        [(kind.to_owned(), 5.0)]
    );
    assert_eq!(
        run(detector, exec("alice", "kube-system", &["sh", "-c", "env"])),
        [(kind.to_owned(), 8.0)]
    );
    assert_eq!(
        run(
            detector,
            exec(
                "alice",
                "shop",
                &[
                    "sh",
                    "-c",
                    "cat /var/run/secrets/eks.amazonaws.com/serviceaccount/token"
                ]
            )
        )
        .len(),
        1
    );
    assert!(run(detector, exec("alice", "shop", &["ls", "/tmp"])).is_empty());
    assert!(
        run(detector, exec("alice", "shop", &[])).is_empty(),
        "no command logged"
    );
    let mut denied = exec("alice", "shop", &["env"]);
    denied.status_code = Some(403);
    assert!(run(detector, denied).is_empty());
}

#[test]
fn tar_to_stdout_through_exec_is_a_copy_out_and_tar_from_stdin_is_not() {
    let detector = "files_copied_from_pod";
    assert_eq!(
        run(
            detector,
            exec("alice", "shop", &["tar", "cf", "-", "/var/lib/app"])
        ),
        [("Exfiltration:Kubernetes/FilesCopiedFromPod".to_owned(), 2.0)]
    );
    assert!(
        run(
            detector,
            exec("alice", "shop", &["tar", "-xmf", "-", "-C", "/tmp"])
        )
        .is_empty()
    );
}

#[test]
fn secrets_listed_across_namespaces_fire_and_namespaced_or_system_lists_do_not() {
    let detector = "secrets_listed_across_namespaces";
    for verb in ["list", "watch"] {
        assert_eq!(
            run(detector, request("mallory", verb, "secrets", None, None)).len(),
            1,
            "{verb}"
        );
    }
    assert!(
        run(
            detector,
            request("mallory", "list", "secrets", Some("shop"), None)
        )
        .is_empty()
    );
    assert!(
        run(
            detector,
            request(
                "system:kube-controller-manager",
                "list",
                "secrets",
                None,
                None
            )
        )
        .is_empty()
    );
    assert!(
        run(
            detector,
            request("mallory", "list", "configmaps", None, None)
        )
        .is_empty()
    );
}

#[test]
fn ingresses_without_tls_fire_when_switched_on() {
    let detector = "ingress_without_tls";
    let ingress = |tls: bool| {
        let mut event = request("alice", "create", "ingresses", Some("shop"), Some("web"));
        event.ingress = Some(IngressSpec {
            name: Some("web".into()),
            hosts: vec!["shop.example.com".into()],
            tls,
            ..IngressSpec::default()
        });
        event
    };
    assert_eq!(run(detector, ingress(false)).len(), 1);
    assert!(run(detector, ingress(true)).is_empty());
    let ships_off = Engine::default().detector_names().contains(&detector);
    assert!(!ships_off, "noisy on ordinary clusters: ships off");
}

#[test]
fn managed_identities_calling_from_their_providers_addresses_are_not_public_callers() {
    let detector = "system_identity_from_public_ip";
    let mut event = request(
        "eks:addon-manager",
        "get",
        "configmaps",
        Some("kube-system"),
        Some("x"),
    );
    event.source_ips = vec!["52.94.1.9".into()];
    let mut engine = engine(detector);
    assert_eq!(
        fired(&mut engine, enriched(event.clone(), "public", None)).len(),
        1
    );
    for network in ["aws", "cluster"] {
        assert!(
            fired(
                &mut engine,
                enriched(event.clone(), "public", Some(network))
            )
            .is_empty(),
            "{network}"
        );
    }
}

#[test]
fn anonymous_calls_from_loopback_are_the_hosts_own_checks() {
    let detector = "successful_anonymous_access";
    let mut event = request(
        "system:anonymous",
        "get",
        "configmaps",
        Some("kube-system"),
        Some("x"),
    );
    event.user.groups = vec!["system:unauthenticated".into()];
    event.source_ips = vec!["127.0.0.1".into()];
    assert!(run(detector, event.clone()).is_empty());
    event.source_ips = vec!["::1".into()];
    assert!(run(detector, event.clone()).is_empty());
    event.source_ips = vec!["127.0.0.1".into(), "198.51.100.4".into()];
    assert_eq!(
        run(detector, event).len(),
        1,
        "a proxied outside caller is not loopback"
    );
}

#[test]
fn a_wildcard_only_in_api_groups_is_not_a_risky_role() {
    let detector = "risky_role_created";
    let role = |resources: &[&str]| {
        let mut event = request("alice", "create", "clusterroles", None, Some("r"));
        event.role = Some(RoleSpec {
            kind: "ClusterRole".into(),
            name: Some("r".into()),
            rules: vec![PolicyRule {
                verbs: vec!["get".into(), "list".into()],
                api_groups: vec!["*".into()],
                resources: resources.iter().map(|r| (*r).to_owned()).collect(),
                ..PolicyRule::default()
            }],
            ..RoleSpec::default()
        });
        event
    };
    assert!(run(detector, role(&["deployments", "services"])).is_empty());
    assert_eq!(run(detector, role(&["*"])).len(), 1);
}
