//! How a detection is assembled from an event: GuardDuty's severities, the threat purpose a call
//! serves (the prefix of its finding type), a detector's verdict, and the detection built from it.

use vigil_schemas::{
    ApiCallAction, AuditEvent, Detection, EnrichedEvent, KeyValue, RuntimeDetails, RuntimeEvent,
    ThreatMatch,
};

/// GuardDuty's default severities as numbers.
pub mod severity {
    use vigil_schemas::Severity;
    pub const LOW: f64 = Severity::Low.score();
    pub const MEDIUM: f64 = Severity::Medium.score();
    pub const HIGH: f64 = Severity::High.score();
}

/// The tactic a Kubernetes API call serves, as GuardDuty prefixes its finding types.
///
/// The mapping, written once here and tested below:
/// - `get`/`list`/`watch` of `secrets`, and `create` of `serviceaccounts/token`: CredentialAccess;
/// - any other `get`/`list`/`watch`, and non-resource reads (`/api`, `/version`): Discovery;
/// - writes to `events` (deleting the trail of what happened): DefenseEvasion;
/// - `create` of workloads, RBAC objects, service accounts, webhooks, and exec/attach/port-forward
///   (they leave a foothold or a running command): Persistence;
/// - every other write (`update`, `patch`, `delete`, `deletecollection`, other creates): Impact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreatPurpose {
    CredentialAccess,
    DefenseEvasion,
    Discovery,
    Impact,
    Persistence,
}

const PERSISTENCE_CREATES: [&str; 14] = [
    "pods",
    "deployments",
    "daemonsets",
    "statefulsets",
    "replicasets",
    "jobs",
    "cronjobs",
    "roles",
    "clusterroles",
    "rolebindings",
    "clusterrolebindings",
    "serviceaccounts",
    "mutatingwebhookconfigurations",
    "validatingwebhookconfigurations",
];

impl ThreatPurpose {
    pub fn of(event: &AuditEvent) -> Self {
        let object = event.object_ref.as_ref();
        let resource = object
            .and_then(|object| object.resource.as_deref())
            .unwrap_or_default();
        let subresource = object.and_then(|object| object.subresource.as_deref());
        match event.verb.as_str() {
            "get" | "list" | "watch" if resource == "secrets" => Self::CredentialAccess,
            "get" | "list" | "watch" => Self::Discovery,
            _ if resource == "events" => Self::DefenseEvasion,
            "create" if resource == "serviceaccounts" && subresource == Some("token") => {
                Self::CredentialAccess
            }
            "create" if matches!(subresource, Some("exec" | "attach" | "portforward")) => {
                Self::Persistence
            }
            "create" if subresource.is_none() && PERSISTENCE_CREATES.contains(&resource) => {
                Self::Persistence
            }
            _ => Self::Impact,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::CredentialAccess => "CredentialAccess",
            Self::DefenseEvasion => "DefenseEvasion",
            Self::Discovery => "Discovery",
            Self::Impact => "Impact",
            Self::Persistence => "Persistence",
        }
    }
}

/// What a detector concluded: the finding's type, severity and words, and the aggregation key.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub finding_type: String,
    pub severity: f64,
    pub title: String,
    pub description: String,
    pub aggregation_key: Vec<String>,
}

/// A detection: the detector's verdict with the details that come from the event itself.
pub fn detection(
    enriched: &EnrichedEvent,
    event: &AuditEvent,
    detector: &str,
    verdict: Verdict,
) -> Detection {
    let Verdict {
        finding_type,
        severity,
        title,
        description,
        aggregation_key,
    } = verdict;
    let object = event.object_ref.clone().unwrap_or_default();
    let parameters = event
        .request_uri
        .split_once('?')
        .map(|(_, query)| query.to_owned());
    Detection {
        finding_type,
        detector: detector.to_owned(),
        severity,
        title,
        description,
        aggregation_key,
        event_id: event.audit_id.clone(),
        event_time_micros: event.event_time_micros,
        cluster: enriched.cluster.clone(),
        user: Some(event.user.clone()),
        impersonated_user: event.impersonated_user.clone(),
        workload: event.workload.clone(),
        target: enriched.target.clone(),
        api_call: Some(ApiCallAction {
            verb: event.verb.clone(),
            request_uri: event.request_uri.clone(),
            resource: object.resource,
            subresource: object.subresource,
            namespace: object.namespace,
            resource_name: object.name,
            status_code: event.status_code,
            source_ips: event.source_ips.clone(),
            user_agent: event.user_agent.clone(),
            parameters,
            remote_ip: enriched.source_ip.clone(),
        }),
        role_binding: event.role_binding.clone(),
        role: event.role.clone(),
        threat_intel: Vec::new(),
        additional_info: vec![KeyValue {
            key: "auditID".into(),
            value: event.audit_id.clone(),
        }],
        runtime: None,
        anomaly: Vec::new(),
        signal_only: false,
    }
}

/// A detection of a runtime event: the verdict with the process, its lineage, the container and pod,
/// and the type's `service.runtimeDetails.context` entries.
pub fn runtime_detection(
    enriched: &EnrichedEvent,
    event: &RuntimeEvent,
    detector: &str,
    verdict: Verdict,
    context: Vec<KeyValue>,
) -> Detection {
    let Verdict {
        finding_type,
        severity,
        title,
        description,
        aggregation_key,
    } = verdict;
    let mut threat_intel: Vec<ThreatMatch> = enriched.domain_matches.clone();
    if let Some(remote) = &enriched.destination_ip {
        threat_intel.extend(remote.threat_matches.iter().cloned());
    }
    // The endpoint the event reached, ahead of the detector's own context: findings on a connection
    // or a lookup name what was reached (the GuardDuty format writes it as the network or DNS
    // action, the correlator links public ones).
    let mut endpoint = Vec::new();
    if let Some(network) = &event.network {
        let mut pair = |key: &str, value: String| {
            endpoint.push(KeyValue {
                key: key.into(),
                value,
            });
        };
        if let Some(ip) = &network.destination_ip {
            pair("remoteIp", ip.clone());
            if let Some(remote) = &enriched.destination_ip {
                pair("remoteIpScope", remote.scope.clone());
            }
        }
        if let Some(port) = network.destination_port {
            pair("remotePort", port.to_string());
        }
        if !network.protocol.is_empty() {
            pair("protocol", network.protocol.clone());
        }
        if let Some(domain) = &network.destination_domain {
            pair("domain", domain.clone());
        }
    }
    if let Some(query) = &event.dns_query
        && !endpoint.iter().any(|pair| pair.key == "domain")
    {
        endpoint.push(KeyValue {
            key: "domain".into(),
            value: query.clone(),
        });
    }
    let context = endpoint.into_iter().chain(context).collect();
    let mut additional_info = vec![
        KeyValue {
            key: "eventId".into(),
            value: event.event_id.clone(),
        },
        KeyValue {
            key: "sensor".into(),
            value: event.sensor.clone(),
        },
    ];
    if let Some(rule) = &event.sensor_rule {
        additional_info.push(KeyValue {
            key: "sensorRule".into(),
            value: rule.clone(),
        });
    }
    Detection {
        finding_type,
        detector: detector.to_owned(),
        severity,
        title,
        description,
        aggregation_key,
        event_id: event.event_id.clone(),
        event_time_micros: event.event_time_micros,
        cluster: enriched.cluster.clone(),
        target: enriched.target.clone(),
        threat_intel,
        additional_info,
        runtime: Some(RuntimeDetails {
            sensor: event.sensor.clone(),
            event_kind: event.kind.clone(),
            process: event.process.clone(),
            lineage: enriched.lineage.clone(),
            node_name: event.node_name.clone(),
            container_id: event.container_id.clone(),
            container_name: event.container_name.clone(),
            image: event.image.clone(),
            pod_name: event.pod_name.clone(),
            pod_namespace: event.pod_namespace.clone(),
            context,
        }),
        ..Detection::default()
    }
}

#[cfg(test)]
mod tests {
    use vigil_schemas::ObjectRef;

    use super::*;

    fn call(verb: &str, resource: &str, subresource: Option<&str>) -> AuditEvent {
        AuditEvent {
            verb: verb.into(),
            object_ref: Some(ObjectRef {
                resource: Some(resource.into()),
                subresource: subresource.map(str::to_owned),
                ..ObjectRef::default()
            }),
            ..AuditEvent::default()
        }
    }

    #[test]
    fn threat_purpose_follows_verb_and_resource() {
        use ThreatPurpose::*;
        let table = [
            (call("get", "secrets", None), CredentialAccess),
            (call("list", "secrets", None), CredentialAccess),
            (
                call("create", "serviceaccounts", Some("token")),
                CredentialAccess,
            ),
            (call("list", "pods", None), Discovery),
            (call("watch", "nodes", None), Discovery),
            (
                AuditEvent {
                    verb: "get".into(),
                    ..AuditEvent::default()
                },
                Discovery,
            ),
            (call("delete", "events", None), DefenseEvasion),
            (call("deletecollection", "events", None), DefenseEvasion),
            (call("create", "pods", None), Persistence),
            (call("create", "clusterrolebindings", None), Persistence),
            (call("create", "pods", Some("exec")), Persistence),
            (call("create", "cronjobs", None), Persistence),
            (call("delete", "pods", None), Impact),
            (call("patch", "deployments", None), Impact),
            (call("update", "configmaps", None), Impact),
            (call("create", "configmaps", None), Impact),
        ];
        for (event, purpose) in table {
            assert_eq!(
                ThreatPurpose::of(&event),
                purpose,
                "{} {:?}",
                event.verb,
                event.object_ref
            );
        }
    }
}
