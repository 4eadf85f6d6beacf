//! How the principal baselines judge: which calls are security-relevant, and what an unseen value
//! weighs by scope and dimension.

use vigil_schemas::AuditEvent;

use crate::baselines::dimensions::Dimension;
use crate::baselines::explain::{Unusual, unusual_by_scope};
use crate::baselines::store::Seen;
use crate::baselines::{Familiarity, Scope};
use crate::detection::severity;
use crate::facts::{is_sensitive, object_name};

/// What an unseen value weighs, by scope and dimension. A call is anomalous from
/// [`ANOMALY_WEIGHT`], each dimension counted once however many scopes (or values: a workload's
/// images) found it new. At the principal's scope (or its peers', for a young principal): a kind
/// of call never made, a namespace never touched, or an escalating permission never asked about
/// (`kubectl auth can-i create clusterrolebindings`; an ordinary question weighs nothing), weighs
/// that much alone (unless new values are routine there:
/// CI's daily preview namespaces); a new client, network or image weighs half, so
/// one alone (a person working from home, a new tool) is not enough, and two together are. At the
/// cluster's scope, an image run privileged or with host access for the first time weighs enough
/// alone; a registry never used in the namespace or the cluster weighs half. Time of week and
/// who acts in a namespace weigh nothing (people work late; the principal's own namespace
/// dimension carries that fact); they are reported when unusual.
const WEIGHTS: [(Scope, Dimension, u32); 16] = [
    (Scope::Principal, Dimension::ApiCall, 2),
    (Scope::Principal, Dimension::Namespace, 2),
    (Scope::Principal, Dimension::UserAgent, 1),
    (Scope::Principal, Dimension::NetworkOrigin, 1),
    (Scope::Principal, Dimension::Image, 1),
    (Scope::Principal, Dimension::PermissionChecked, 2),
    (Scope::PeerGroup, Dimension::ApiCall, 2),
    (Scope::PeerGroup, Dimension::Namespace, 2),
    (Scope::PeerGroup, Dimension::UserAgent, 1),
    (Scope::PeerGroup, Dimension::NetworkOrigin, 1),
    (Scope::PeerGroup, Dimension::PermissionChecked, 2),
    (Scope::Namespace, Dimension::Registry, 1),
    (Scope::Cluster, Dimension::Registry, 1),
    (Scope::Cluster, Dimension::PrivilegedImage, 2),
    (Scope::Cluster, Dimension::HostAccessImage, 2),
    (Scope::Cluster, Dimension::PermissionChecked, 2),
];
pub(super) const ANOMALY_WEIGHT: u32 = 2;

/// What the unseen values of the judging scopes weigh together, each dimension once; and the
/// unusual judgements (unseen and rare, weighed or not) per scope, for the explanation. `peers`, for
/// a principal old enough to judge itself: a value new to the principal that its peer group has
/// learned (a teammate's routine: their namespace, their kind of call) weighs nothing; the team
/// vouches for it.
pub(super) fn weigh<'a>(views: &[&'a Seen], peers: Option<&Seen>) -> (u32, Unusual<'a>) {
    let mut weighed: Vec<Dimension> = Vec::new();
    let mut weight = 0;
    let unusual = unusual_by_scope(views);
    for (seen, judgements) in &unusual {
        for judged in judgements {
            let dimension = judged.dimension;
            if judged.familiarity != Familiarity::Unseen
                || judged.volatile
                || weighed.contains(&dimension)
            {
                continue;
            }
            // A question about an ordinary permission (`patch deployments in shop`) is people
            // checking before they act; one about escalating (`create clusterrolebindings`) is news.
            if dimension == Dimension::PermissionChecked
                && !is_escalating_permission(&judged.observed)
            {
                continue;
            }
            if let Some((_, _, value)) = WEIGHTS
                .iter()
                .find(|(scope, name, _)| *scope == seen.scope && *name == dimension)
            {
                let routine_for_peers = seen.scope == Scope::Principal
                    && peers.is_some_and(|peers| {
                        peers.judged.iter().any(|known| {
                            known.dimension == dimension
                                && known.observed == judged.observed
                                && known.familiarity > Familiarity::Unseen
                        })
                    });
                weighed.push(dimension);
                if !routine_for_peers {
                    weight += value;
                }
            }
        }
    }
    (weight, unusual)
}

/// Whether an access review asked about a permission that escalates or reaches credentials: RBAC
/// writes, `bind`, `escalate`, `impersonate`, service-account tokens, exec and attach, the node
/// proxy, CSRs, admission webhooks, secrets, or anything (`*`). Reads `verb resource[/sub][ in ns]`.
fn is_escalating_permission(asked: &str) -> bool {
    let question = asked
        .split_once(" in ")
        .map_or(asked, |(question, _)| question);
    let (verb, resource) = question.split_once(' ').unwrap_or((question, ""));
    let writes = matches!(verb, "create" | "update" | "patch" | "*");
    matches!(verb, "bind" | "escalate" | "impersonate")
        || resource == "*"
        || resource.starts_with("secrets")
        || (writes
            && matches!(
                resource,
                "roles"
                    | "clusterroles"
                    | "rolebindings"
                    | "clusterrolebindings"
                    | "serviceaccounts/token"
                    | "pods/exec"
                    | "pods/attach"
                    | "pods/ephemeralcontainers"
                    | "certificatesigningrequests"
                    | "mutatingwebhookconfigurations"
                    | "validatingwebhookconfigurations"
            ))
        || resource == "nodes/proxy"
}

/// What kind of security-relevant call an event is, if any: (type, severity, what it acted on).
pub(super) fn relevant(
    event: &AuditEvent,
    sensitive_paths: &[String],
) -> Option<(&'static str, f64, String)> {
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
            // What was asked says more than the review's (empty) name.
            event.permission_checked.clone().unwrap_or(target),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalating_permissions_are_told_from_ordinary_ones() {
        for asked in [
            "create clusterrolebindings",
            "bind clusterroles",
            "impersonate users",
            "get secrets in kube-system",
            "create pods/exec in shop",
            "create serviceaccounts/token in ci",
            "get nodes/proxy",
            "* *",
            "list *",
        ] {
            assert!(is_escalating_permission(asked), "{asked}");
        }
        for asked in [
            "get pods in shop",
            "patch deployments in shop",
            "list rolebindings",
            "get /metrics",
            "",
        ] {
            assert!(!is_escalating_permission(asked), "{asked}");
        }
    }
}
