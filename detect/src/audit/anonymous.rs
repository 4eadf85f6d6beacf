//! Anonymous callers: a request `system:anonymous` carried out, and a binding that grants anonymous
//! callers a role.

use vigil_schemas::{AuditEvent, Detection, EnrichedEvent};

use crate::Detector;
use crate::detection::{ThreatPurpose, Verdict, detection, severity};
use crate::facts::{
    ANONYMOUS_USER, UNAUTHENTICATED_GROUP, is_anonymous, is_harmless_role, is_public_by_design,
    is_write, object_name, resource_of, succeeded,
};

/// Every address the request came through is the API server's own host: the node's and the control
/// plane's health checks, which run unauthenticated on many distributions.
fn from_loopback(event: &AuditEvent) -> bool {
    !event.source_ips.is_empty()
        && event.source_ips.iter().all(|ip| {
            ip.trim()
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
        })
}

/// **`<Purpose>:Kubernetes/SuccessfulAnonymousAccess`** — High (Discovery: Medium).
/// Trigger: a request by `system:anonymous` (or the `system:unauthenticated` group) that succeeded,
/// other than the endpoints public by design (health, version, the service-account issuer's
/// discovery document and keys) and calls from loopback (the host's own checks). Purpose per [`ThreatPurpose`].
/// Key: principal, resource (with subresource), source IP.
#[derive(Debug, Default)]
pub struct SuccessfulAnonymousAccess;

impl Detector for SuccessfulAnonymousAccess {
    fn name(&self) -> &'static str {
        "successful_anonymous_access"
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
        if !is_anonymous(event)
            || !succeeded(event)
            || is_public_by_design(&event.request_uri)
            || from_loopback(event)
        {
            return;
        }
        let purpose = ThreatPurpose::of(event);
        let level = if purpose == ThreatPurpose::Discovery {
            severity::MEDIUM
        } else {
            severity::HIGH
        };
        let resource = resource_of(event);
        // The address enrich judged the caller's (the most telling of `sourceIPs`, whose first
        // entries the client writes).
        let source = enriched
            .source_ip
            .as_ref()
            .map(|intel| intel.ip.clone())
            .or_else(|| event.source_ips.last().cloned())
            .unwrap_or_default();
        let title = format!(
            "Unauthenticated {} succeeded against {resource}.",
            event.verb
        );
        let description = format!(
            "An unauthenticated caller ({}) from {source} successfully called {} {} in cluster {}. The cluster's RBAC grants anonymous users this access.",
            event.user.username, event.verb, event.request_uri, enriched.cluster.name
        );
        let verdict = Verdict {
            finding_type: format!("{}:Kubernetes/SuccessfulAnonymousAccess", purpose.name()),
            severity: level,
            title,
            description,
            aggregation_key: vec![event.user.username.clone(), resource, source],
        };
        out.push(detection(enriched, event, self.name(), verdict));
    }
}

fn grants_anonymous(event: &AuditEvent) -> bool {
    event.role_binding.as_ref().is_some_and(|binding| {
        binding.subjects.iter().any(|subject| {
            (subject.kind == "User" && subject.name == ANONYMOUS_USER)
                || (subject.kind == "Group" && subject.name == UNAUTHENTICATED_GROUP)
        })
    })
}

/// **`Policy:Kubernetes/AnonymousAccessGranted`** — High.
/// Trigger: a RoleBinding or ClusterRoleBinding created or changed with `system:anonymous` or
/// `system:unauthenticated` among its subjects, of a ClusterRole other than those bound to
/// everyone by design (`system:public-info-viewer`, `system:discovery`, `system:basic-user`,
/// `system:service-account-issuer-discovery`).
/// Key: principal, binding.
#[derive(Debug, Default)]
pub struct AnonymousAccessGranted;

impl Detector for AnonymousAccessGranted {
    fn name(&self) -> &'static str {
        "anonymous_access_granted"
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
        if !is_write(event) || !succeeded(event) || !grants_anonymous(event) {
            return;
        }
        let Some(binding) = event.role_binding.as_ref() else {
            return;
        };
        // The API server's own public-info bindings, made again at every start, and the issuer
        // discovery binding that outside token verifiers need.
        if is_harmless_role(binding) {
            return;
        }
        let name = object_name(event);
        let title = format!(
            "{} {name} grants anonymous users {} {}.",
            binding.kind, binding.role_ref_kind, binding.role_ref_name
        );
        let description = format!(
            "{} bound {} {} to unauthenticated users through {} {name} in cluster {}. Anyone who can reach the API server now has that role.",
            event.user.username,
            binding.role_ref_kind,
            binding.role_ref_name,
            binding.kind,
            enriched.cluster.name
        );
        let verdict = Verdict {
            finding_type: "Policy:Kubernetes/AnonymousAccessGranted".into(),
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
