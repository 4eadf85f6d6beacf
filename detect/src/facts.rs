//! The facts every detector asks of an event, each written once: who called (anonymous, a system
//! principal, a controller, the effective user), whether the call succeeded or wrote, what it acted
//! on, which host paths are sensitive, and what a runtime event's process and workload are. Enrich
//! and the baselines ask the same questions through these functions, so they never disagree.

use vigil_schemas::{AuditEvent, EnrichedEvent, ProcessInfo, RoleBindingSpec, WorkloadSpec};

pub const ANONYMOUS_USER: &str = "system:anonymous";
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";

/// Endpoints anonymous callers may read by design: health and version (the
/// `system:public-info-viewer` role), and the service-account issuer's OpenID discovery document
/// and signing keys (`system:service-account-issuer-discovery`, which clusters bind to
/// `system:unauthenticated` so that outside parties can verify service-account tokens): public
/// keys and metadata, nothing about the cluster's workloads.
pub fn is_public_by_design(uri: &str) -> bool {
    let path = uri.split('?').next().unwrap_or_default();
    ["/healthz", "/livez", "/readyz", "/version"]
        .iter()
        .any(|prefix| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        || ["/.well-known/openid-configuration", "/openid/v1/jwks"]
            .iter()
            .any(|document| path.trim_end_matches('/') == *document)
}

/// ClusterRoles the API server binds to everyone, anonymous callers included, by design (or that
/// clusters do, for the service-account issuer's outside verifiers): binding them again grants
/// nothing to fear. A namespaced Role of the same name could hold anything, so only ClusterRoles.
pub fn is_harmless_role(binding: &RoleBindingSpec) -> bool {
    const HARMLESS_ROLES: [&str; 4] = [
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
        "system:service-account-issuer-discovery",
    ];
    binding.role_ref_kind == "ClusterRole"
        && HARMLESS_ROLES.contains(&binding.role_ref_name.as_str())
}

pub fn is_anonymous(event: &AuditEvent) -> bool {
    event.user.username == ANONYMOUS_USER
        || event
            .user
            .groups
            .iter()
            .any(|group| group == UNAUTHENTICATED_GROUP)
}

/// The API server carried the request out: 2xx, or 101 for an upgraded (exec/attach) connection. An
/// event logged without a status (a Metadata-level `ResponseStarted`) counts as allowed unless the
/// authorizer said otherwise.
pub fn succeeded(event: &AuditEvent) -> bool {
    match event.status_code {
        Some(code) => (200..300).contains(&code) || code == 101,
        None => event.authz_decision.as_deref() != Some("forbid"),
    }
}

pub fn is_write(event: &AuditEvent) -> bool {
    matches!(event.verb.as_str(), "create" | "update" | "patch")
}

/// Kubernetes controllers act on behalf of whoever created the object they reconcile.
pub fn is_controller(event: &AuditEvent) -> bool {
    is_controller_name(&event.user.username)
}

/// [`is_controller`] by name alone.
pub fn is_controller_name(user: &str) -> bool {
    user == "system:kube-controller-manager"
        || user
            .strip_prefix("system:serviceaccount:kube-system:")
            .is_some_and(|account| account.ends_with("-controller"))
}

/// The resource a request acted on, with its subresource (`pods/exec`), or its path for a
/// non-resource request (`/version`).
pub fn resource_of(event: &AuditEvent) -> String {
    let object = event.object_ref.as_ref();
    match (
        object.and_then(|o| o.resource.as_deref()),
        object.and_then(|o| o.subresource.as_deref()),
    ) {
        (Some(resource), Some(sub)) => format!("{resource}/{sub}"),
        (Some(resource), None) => resource.to_owned(),
        _ => event
            .request_uri
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// `namespace/name` of the object a request acted on, for aggregation keys and descriptions.
pub fn object_name(event: &AuditEvent) -> String {
    let object = event.object_ref.as_ref();
    let namespace = object.and_then(|object| object.namespace.as_deref());
    let name = object
        .and_then(|object| object.name.as_deref())
        .or_else(|| {
            event
                .workload
                .as_ref()
                .and_then(|workload| workload.name.as_deref())
        })
        .or_else(|| {
            event
                .role_binding
                .as_ref()
                .and_then(|binding| binding.name.as_deref())
        })
        .or_else(|| {
            event
                .service
                .as_ref()
                .and_then(|service| service.name.as_deref())
        })
        .unwrap_or("*");
    match namespace {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_owned(),
    }
}

/// `kind namespace/name` of the top-level workload: the Deployment rather than its pod.
pub fn workload_identity(enriched: &EnrichedEvent, workload: &WorkloadSpec) -> String {
    let namespace = workload.namespace.as_deref().unwrap_or("");
    match (&enriched.workload_owner_kind, &enriched.workload_owner_name) {
        (Some(kind), Some(name)) => format!("{kind} {namespace}/{name}"),
        _ => format!(
            "{} {namespace}/{}",
            workload.kind,
            workload.name.as_deref().unwrap_or("*")
        ),
    }
}

/// The principal a request acts as: the impersonated user when there is one.
pub(crate) fn effective_user(event: &AuditEvent) -> &vigil_schemas::UserInfo {
    event.impersonated_user.as_ref().unwrap_or(&event.user)
}

/// Usernames of the control plane and of EKS itself: the API server, controllers, schedulers, nodes
/// and the `eks:` components. Rules that watch people and workloads leave them out.
///
/// Service accounts other than the controllers' are not system principals: a stolen add-on token is
/// exactly what these rules should see.
/// [`is_system_principal`] for a user by name (anonymous callers are told apart by the caller).
pub fn is_system_username(user: &str) -> bool {
    (user.starts_with("system:")
        && !user.starts_with("system:serviceaccount:")
        && user != ANONYMOUS_USER)
        || user.starts_with("eks:")
        || is_managed_control_plane(user)
        || is_controller_name(user)
}

/// The identities AKS and GKE run their control planes as: AKS's `aksService`, `masterclient`,
/// `nodeclient` and `aks-support`; GKE's `kubelet` and its Google-managed service agents
/// (`...@container-engine-robot.iam.gserviceaccount.com`, `...@gcp-sa-*.iam.gserviceaccount.com`).
fn is_managed_control_plane(user: &str) -> bool {
    matches!(
        user,
        "aksService" | "masterclient" | "nodeclient" | "aks-support" | "kubelet"
    ) || user.split_once('@').is_some_and(|(_, domain)| {
        domain == "container-engine-robot.iam.gserviceaccount.com"
            || (domain.starts_with("gcp-sa-") && domain.ends_with(".iam.gserviceaccount.com"))
    })
}

/// [`is_system_username`] for an event: a `system:` name in the `system:unauthenticated` group is an
/// anonymous caller, not the control plane.
pub fn is_system_principal(event: &AuditEvent) -> bool {
    let user = event.user.username.as_str();
    is_system_username(user) && !(user.starts_with("system:") && is_anonymous(event))
}

/// The last path component: `/usr/bin/nc` → `nc`.
pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `name arguments`, as a person would type it.
pub fn command_line(process: &ProcessInfo) -> String {
    match process.arguments.as_deref() {
        Some(arguments) if !arguments.is_empty() => {
            format!("{} {arguments}", base_name(&process.binary))
        }
        _ => base_name(&process.binary).to_owned(),
    }
}

/// The workload a runtime event ran in, as findings aggregate on it: `namespace/workload`, the
/// workload named from the pod's name the way its controller names pods (`web-6f7d9c8b5-x7k2p` of
/// Deployment `web`, `aws-node-b7m2q` of DaemonSet `aws-node`), so that restarts and rollouts do not
/// scatter one behaviour over many findings, and so that the key never depends on whether the
/// inventory had seen the pod created yet (replays and the Kafka stages give the same ids).
/// On the node itself: `node NAME`.
pub fn runtime_resource(event: &EnrichedEvent) -> String {
    let runtime = event.runtime.as_ref();
    match (
        runtime.and_then(|r| r.pod_namespace.as_deref()),
        runtime.and_then(|r| r.pod_name.as_deref()),
    ) {
        (Some(namespace), Some(pod)) => format!("{namespace}/{}", workload_of_pod(pod)),
        _ => format!(
            "node {}",
            runtime
                .and_then(|r| r.node_name.as_deref())
                .unwrap_or("unknown")
        ),
    }
}

/// The characters of the random suffixes Kubernetes gives generated names (no vowels, no 0, 1, 3).
fn generated(part: &str, lengths: std::ops::RangeInclusive<usize>) -> bool {
    lengths.contains(&part.len())
        && part
            .chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
}

/// `web-6f7d9c8b5-x7k2p` → `web` (Deployment), `aws-node-b7m2q` → `aws-node` (DaemonSet, Job),
/// anything else (a StatefulSet's `db-0`, a bare pod) → itself.
pub fn workload_of_pod(pod: &str) -> &str {
    let mut parts = pod.rsplitn(3, '-');
    let (last, middle, rest) = (parts.next(), parts.next(), parts.next());
    match (last, middle, rest) {
        (Some(last), Some(middle), Some(rest))
            if generated(last, 5..=5) && generated(middle, 6..=10) =>
        {
            rest
        }
        (Some(last), Some(_), _) if generated(last, 5..=5) => {
            pod.get(..pod.len() - last.len() - 1).unwrap_or(pod)
        }
        _ => pod,
    }
}

/// Host paths that give a container its node: the root, configuration, credentials, the container
/// runtime's sockets, the kubelet's state. A path at or below any of these is sensitive.
pub fn default_sensitive_host_paths() -> Vec<String> {
    [
        "/",
        "/etc",
        "/root",
        "/home",
        "/proc",
        "/sys",
        "/dev",
        "/boot",
        "/var/run/docker.sock",
        "/var/run/containerd",
        "/run/containerd",
        "/var/run/crio",
        "/run/crio",
        "/var/lib/kubelet",
        "/var/lib/docker",
        "/var/lib/containerd",
        "/etc/kubernetes",
        "/var/run",
        "/run",
    ]
    .iter()
    .map(|path| (*path).to_owned())
    .collect()
}

pub(crate) fn is_sensitive(path: &str, sensitive: &[String]) -> bool {
    let path = path.trim_end_matches('/');
    let path = if path.is_empty() { "/" } else { path };
    sensitive.iter().any(|root| {
        let root = root.trim_end_matches('/');
        if root.is_empty() {
            path == "/"
        } else {
            path == root || path.starts_with(&format!("{root}/"))
        }
    })
}

#[cfg(test)]
mod workload_of_pod_tests {
    use super::workload_of_pod;

    #[test]
    fn workloads_from_pod_names() {
        assert_eq!(workload_of_pod("web-6f7d9c8b5-x7k2p"), "web");
        assert_eq!(workload_of_pod("shop-api-nzjbctnd4-gmlvk"), "shop-api");
        assert_eq!(workload_of_pod("aws-node-b7m2q"), "aws-node");
        assert_eq!(
            workload_of_pod("ledger-backup-28505520-x4k2j"),
            "ledger-backup-28505520"
        );
        assert_eq!(workload_of_pod("postgres-0"), "postgres-0");
        assert_eq!(workload_of_pod("privileged-pod"), "privileged-pod");
        assert_eq!(workload_of_pod("a-b-c"), "a-b-c");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_endpoints_and_controllers() {
        assert!(is_public_by_design("/healthz"));
        assert!(is_public_by_design("/readyz/etcd?verbose"));
        assert!(is_public_by_design("/version"));
        assert!(is_public_by_design("/.well-known/openid-configuration"));
        assert!(is_public_by_design("/openid/v1/jwks/"));
        assert!(!is_public_by_design("/api/v1/secrets"));
        assert!(!is_public_by_design("/versions-of-things"));
        assert!(!is_public_by_design("/openid/v1/jwks/../../api/v1/secrets"));
        let controller = AuditEvent {
            user: vigil_schemas::UserInfo {
                username: "system:serviceaccount:kube-system:replicaset-controller".into(),
                ..Default::default()
            },
            ..AuditEvent::default()
        };
        assert!(is_controller(&controller));
        let person = AuditEvent {
            user: vigil_schemas::UserInfo {
                username: "system:serviceaccount:kube-system:evil".into(),
                ..Default::default()
            },
            ..AuditEvent::default()
        };
        assert!(!is_controller(&person));
    }

    #[test]
    fn sensitive_paths_match_at_and_below_their_roots_only() {
        let sensitive = default_sensitive_host_paths();
        for path in [
            "/",
            "/etc",
            "/etc/",
            "/etc/kubernetes/manifests",
            "/var/run/docker.sock",
            "/proc/1",
        ] {
            assert!(is_sensitive(path, &sensitive), "{path}");
        }
        for path in [
            "/data",
            "/var/log/app",
            "/mnt/cache",
            "/etcetera",
            "/opt/app",
        ] {
            assert!(!is_sensitive(path, &sensitive), "{path}");
        }
    }
}
