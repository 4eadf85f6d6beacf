//! Bindings that hand out more than they seem to: privileged roles other than `cluster-admin` (which
//! `ClusterAdminBinding` covers), roles seen granting the RBAC escalation verbs, and any role bound
//! to a group that is everyone.
//! And admin roles bound to a namespace's default service account.

use vigil_schemas::{AuditEvent, Detection, EnrichedEvent};

use crate::detection::{Verdict, detection, severity};
use crate::facts::{is_harmless_role, is_system_principal, is_write, object_name, succeeded};
use crate::{Detector, StateEntry};
use vigil_schemas::{PolicyRule, RoleBindingSpec, RoleSpec};

use super::remembered::RememberedKeys;

const ADMIN_ROLES: [&str; 2] = ["cluster-admin", "admin"];

/// **`Policy:Kubernetes/AdminAccessToDefaultServiceAccount`** — High.
/// Trigger: a binding created or changed that gives a namespace's `default` ServiceAccount the
/// `cluster-admin` or `admin` ClusterRole, as a `ServiceAccount` subject or as the `User`
/// `system:serviceaccount:NS:default`. Every pod that names no service account runs as it.
/// Key: principal, binding.
#[derive(Debug, Default)]
pub struct AdminAccessToDefaultServiceAccount;

impl Detector for AdminAccessToDefaultServiceAccount {
    fn name(&self) -> &'static str {
        "admin_access_to_default_service_account"
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
        let Some(binding) = event.role_binding.as_ref() else {
            return;
        };
        if !is_write(event) || !succeeded(event) {
            return;
        }
        let admin = binding.role_ref_kind == "ClusterRole"
            && ADMIN_ROLES.contains(&binding.role_ref_name.as_str());
        let Some(account_namespace) = binding
            .subjects
            .iter()
            .find_map(|subject| default_account_namespace(subject, binding))
            .filter(|_| admin)
        else {
            return;
        };
        let name = object_name(event);
        let title = format!(
            "Default service account of {account_namespace} granted {}.",
            binding.role_ref_name
        );
        let description = format!(
            "{} bound ClusterRole {} to the default ServiceAccount of namespace {account_namespace} through {} {name} in cluster {}. Any pod in that namespace that names no service account now has admin rights.",
            event.user.username, binding.role_ref_name, binding.kind, enriched.cluster.name
        );
        let verdict = Verdict {
            finding_type: "Policy:Kubernetes/AdminAccessToDefaultServiceAccount".into(),
            severity: severity::HIGH,
            title,
            description,
            aggregation_key: vec![
                event.user.username.clone(),
                format!("{} {name}", binding.kind),
            ],
        };
        out.push(detection(enriched, event, self.name(), verdict));
    }
}

/// The namespace whose `default` ServiceAccount `subject` names, in either spelling RBAC honours:
/// a `ServiceAccount` subject (its namespace, else the binding's), or a `User` subject named as
/// the authenticator names the account (`system:serviceaccount:NS:default`).
fn default_account_namespace(
    subject: &vigil_schemas::Subject,
    binding: &RoleBindingSpec,
) -> Option<String> {
    match subject.kind.as_str() {
        "ServiceAccount" if subject.name == "default" => Some(
            subject
                .namespace
                .clone()
                .or_else(|| binding.namespace.clone())
                .unwrap_or_default(),
        ),
        "User" => subject
            .name
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.strip_suffix(":default"))
            .filter(|namespace| !namespace.is_empty() && !namespace.contains(':'))
            .map(str::to_owned),
        _ => None,
    }
}

/// Built-in ClusterRoles that grant control of a namespace or of the cluster's machinery.
const PRIVILEGED_ROLES: [&str; 6] = [
    "admin",
    "edit",
    "system:kube-controller-manager",
    "system:kube-scheduler",
    "system:node",
    "system:aggregate-to-admin",
];

/// Prefixes of control-plane roles: each controller's role can create pods, read secrets or
/// mint tokens somewhere (`system:controller:*`), and EKS's own (`eks:*`).
const PRIVILEGED_ROLE_PREFIXES: [&str; 2] = ["system:controller:", "eks:"];

/// Groups that are everyone, or every identity of a kind. `system:anonymous` and
/// `system:unauthenticated` are `AnonymousAccessGranted`'s.
const BROAD_GROUPS: [&str; 4] = [
    "system:authenticated",
    "system:serviceaccounts",
    "system:masters",
    "system:nodes",
];

/// Verbs that let the holder grant itself more (`escalate`, `bind`), act as anyone
/// (`impersonate`), or do anything (`*`).
const ESCALATING_VERBS: [&str; 4] = ["escalate", "bind", "impersonate", "*"];

/// Roles remembered as escalating, per cluster.
const REMEMBERED_ROLES: usize = 50_000;

fn escalates(rule: &PolicyRule) -> bool {
    rule.verbs
        .iter()
        .any(|verb| ESCALATING_VERBS.contains(&verb.as_str()))
        || (rule.resources.iter().any(|resource| resource == "*")
            && !rule.verbs.is_empty()
            && rule.non_resource_urls.is_empty())
}

fn role_key(cluster: &str, kind: &str, namespace: Option<&str>, name: &str) -> String {
    // A ClusterRole is cluster-wide whatever binding names it; a Role lives in its namespace.
    let namespace = if kind == "ClusterRole" {
        ""
    } else {
        namespace.unwrap_or_default()
    };
    format!("{cluster}|{kind}|{namespace}|{name}")
}

fn privileged_role(name: &str) -> bool {
    PRIVILEGED_ROLES.contains(&name)
        || PRIVILEGED_ROLE_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

/// **`PrivilegeEscalation:Kubernetes/PrivilegedRoleBinding`** — High for a ClusterRoleBinding or
/// a group that is everyone, Medium for a RoleBinding.
/// Trigger: a RoleBinding or ClusterRoleBinding created or changed, by anyone but the control
/// plane, that binds
/// - a privileged built-in role other than `cluster-admin`: `admin`, `edit`, a control-plane role
///   (`system:controller:*`, `system:kube-controller-manager`, `system:kube-scheduler`,
///   `system:node`) or an `eks:*` role;
/// - a role this detector saw written granting `escalate`, `bind`, `impersonate` or `*` verbs, or
///   every resource;
/// - any role but the discovery ones to `system:authenticated`, `system:serviceaccounts`,
///   `system:nodes` or `system:masters`.
///
/// Key: principal, binding.
#[derive(Debug)]
pub struct PrivilegedRoleBinding {
    escalating_roles: RememberedKeys,
}

impl Default for PrivilegedRoleBinding {
    fn default() -> Self {
        Self {
            escalating_roles: RememberedKeys::new(REMEMBERED_ROLES),
        }
    }
}

impl PrivilegedRoleBinding {
    /// Learns from a role written (or deleted) whether binding it escalates.
    fn learn_role(&mut self, cluster: &str, event: &AuditEvent, role: Option<&RoleSpec>) {
        let Some(object) = event.object_ref.as_ref() else {
            return;
        };
        let kind = match object.resource.as_deref() {
            Some("clusterroles") => "ClusterRole",
            Some("roles") => "Role",
            _ => return,
        };
        if object.subresource.is_some() || !succeeded(event) {
            return;
        }
        let name = role
            .and_then(|role| role.name.as_deref())
            .or(object.name.as_deref());
        let Some(name) = name else {
            return;
        };
        let namespace = role
            .and_then(|role| role.namespace.as_deref())
            .or(object.namespace.as_deref());
        let key = role_key(cluster, kind, namespace, name);
        match (event.verb.as_str(), role) {
            ("delete", _) => self.escalating_roles.forget(&key),
            // A patch carries only what it changes: it can add an escalating rule, not prove
            // there is none left.
            ("patch", Some(role)) if role.rules.iter().any(escalates) => {
                self.escalating_roles.insert(key)
            }
            ("create" | "update", Some(role)) => {
                if role.rules.iter().any(escalates) {
                    self.escalating_roles.insert(key);
                } else if !role.aggregated {
                    self.escalating_roles.forget(&key);
                }
            }
            _ => {}
        }
    }

    fn why_privileged(&self, cluster: &str, binding: &RoleBindingSpec) -> Option<String> {
        let name = binding.role_ref_name.as_str();
        if privileged_role(name) {
            return Some(format!(
                "{} {name} is a privileged built-in role",
                binding.role_ref_kind
            ));
        }
        let key = role_key(
            cluster,
            &binding.role_ref_kind,
            binding.namespace.as_deref(),
            name,
        );
        self.escalating_roles.contains(&key).then(|| {
            format!(
                "{} {name} grants escalate, bind, impersonate or every verb or resource",
                binding.role_ref_kind
            )
        })
    }
}

impl Detector for PrivilegedRoleBinding {
    fn name(&self) -> &'static str {
        "privileged_role_binding"
    }
    fn drain_state(&mut self, out: &mut Vec<StateEntry>) {
        self.escalating_roles.drain(out);
    }
    fn restore(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        self.escalating_roles.restore(key, value)
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
        let cluster = enriched.cluster.name.as_str();
        self.learn_role(cluster, event, event.role.as_ref());
        let Some(binding) = event.role_binding.as_ref() else {
            return;
        };
        if !is_write(event)
            || !succeeded(event)
            || is_system_principal(event)
            || binding.role_ref_name == "cluster-admin"
            || binding.role_ref_name.is_empty()
        {
            return;
        }
        let broad: Vec<&str> = binding
            .subjects
            .iter()
            .filter(|subject| {
                subject.kind == "Group" && BROAD_GROUPS.contains(&subject.name.as_str())
            })
            .map(|subject| subject.name.as_str())
            .collect();
        let harmless = is_harmless_role(binding);
        let privileged = self.why_privileged(cluster, binding);
        let reason = match (&privileged, broad.is_empty() || harmless) {
            (Some(why), true) => why.clone(),
            (Some(why), false) => format!("{why}, bound to {}", broad.join(", ")),
            (None, false) => format!(
                "{} {} is bound to {}, which is every such identity",
                binding.role_ref_kind,
                binding.role_ref_name,
                broad.join(", ")
            ),
            (None, true) => return,
        };
        let level = if binding.kind == "ClusterRoleBinding" || (!broad.is_empty() && !harmless) {
            severity::HIGH
        } else {
            severity::MEDIUM
        };
        let name = object_name(event);
        let subjects: Vec<String> = binding
            .subjects
            .iter()
            .map(|subject| format!("{} {}", subject.kind, subject.name))
            .collect();
        let verdict = Verdict {
            finding_type: "PrivilegeEscalation:Kubernetes/PrivilegedRoleBinding".into(),
            severity: level,
            title: format!(
                "{} {name} grants privileged {} {}.",
                binding.kind, binding.role_ref_kind, binding.role_ref_name
            ),
            description: format!(
                "{} bound {} {} to {} through {} {name} in cluster {cluster}: {reason}. Its subjects can now take over more of the cluster.",
                event.user.username,
                binding.role_ref_kind,
                binding.role_ref_name,
                if subjects.is_empty() {
                    "no subject yet".to_owned()
                } else {
                    subjects.join(", ")
                },
                binding.kind,
            ),
            aggregation_key: vec![
                event.user.username.clone(),
                format!("{} {name}", binding.kind),
            ],
        };
        out.push(detection(enriched, event, self.name(), verdict));
    }
}
