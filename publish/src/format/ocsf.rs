//! OCSF 1.6.0 Detection Finding (class 2004), the shape Security Hub, Security Lake and most SIEMs
//! ingest. Every part of a Vigil finding has a place:
//!
//! - `finding_info`: the finding id (`uid`) and ARN (`uid_alt`), title, description, the GuardDuty
//!   type (`types`), the detector or rule (`analytic`), ATT&CK (`attacks`), event and finding times,
//!   and for an attack sequence its signals (`related_events`);
//! - `severity_id`, `status_id` (archived by a suppression rule: Suppressed), `activity_id` (Create
//!   for a finding's first occurrence or a sequence's first version, Update after, Close for a
//!   sequence merged into another), `count`, `start_time`/`end_time`;
//! - `cloud` (provider, account, region), `resources` (the cluster, the workload, the container),
//!   `evidences` (the API call with its caller, source endpoint and user agent; the process with
//!   its lineage and container; the endpoint it reached), `observables` (addresses, domains, users,
//!   hashes, containers), `anomaly_analyses` (a baseline's observed-versus-usual), `enrichments`
//!   (threat list matches);
//! - `metadata`: OCSF 1.6.0, the product, the GuardDuty type as `event_code`, the profiles applied.
//!
//! What OCSF has no attribute for (the aggregation key, GuardDuty's `additionalInfo`) goes to
//! `unmapped`. Attributes Vigil has no value for are left out.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use vigil_correlate::{LinkKind, SEQUENCE_TYPE, Sequence, Signal};
use vigil_schemas::attack::attack_of_detection;
use vigil_schemas::severity::Severity;
use vigil_schemas::{
    ApiCallAction, ClusterDetails, Detection, Finding, IpIntel, ProcessInfo, RuntimeDetails,
    UserInfo,
};

use super::guardduty::{ENDPOINT_CONTEXT, context_value, without_nulls};

/// Recommended OCSF attributes Vigil leaves out of its Detection Findings, each with the reason:
/// what the events do not say, or what another attribute already holds. The tests fail on any
/// other recommended attribute left out.
pub const LEFT_OUT: &[(&str, &str)] = &[
    (
        "observation.count",
        "a baseline keeps which values it saw, not how often each",
    ),
    (
        "observation.timespan",
        "a baseline's extent is in unmapped.anomaly_profiles (observations, days)",
    ),
    ("account.name", "accounts are known by id"),
    ("actor.process", "an API call's actor is a user"),
    (
        "api.response",
        "a call the audit log recorded without a status",
    ),
    (
        "api.version",
        "the audit event's API version is not kept on the finding",
    ),
    ("attack.sub_technique", "a technique with no sub-technique"),
    ("attack.technique", "a tactic with no technique"),
    (
        "autonomous_system.name",
        "the ASN database names some networks only",
    ),
    ("container.hash", "the image digest is not in every event"),
    ("container.name", "not every sensor names the container"),
    ("container.size", "no sensor reports it"),
    (
        "detection_finding.action_id",
        "Vigil observes; it blocks nothing",
    ),
    (
        "detection_finding.confidence_id",
        "Vigil's findings carry no confidence, as GuardDuty's carry none",
    ),
    (
        "detection_finding.disposition_id",
        "Vigil observes; it blocks nothing",
    ),
    (
        "detection_finding.status_code",
        "a finding has no status code of its own",
    ),
    (
        "detection_finding.status_detail",
        "a finding has no status detail of its own",
    ),
    (
        "detection_finding.timezone_offset",
        "times are UTC epoch milliseconds",
    ),
    ("device.container", "the container is the process's"),
    (
        "device.instance_uid",
        "the node's instance id is not in the events",
    ),
    (
        "device.interface_name",
        "the node's interfaces are not in the events",
    ),
    (
        "device.interface_uid",
        "the node's interfaces are not in the events",
    ),
    ("device.namespace_pid", "the container is the process's"),
    ("device.owner", "the node's owner is not in the events"),
    ("device.uid", "the node's instance id is not in the events"),
    (
        "device.vendor_name",
        "the node's vendor is not in the events",
    ),
    ("dns_query.class", "sensors report the name looked up only"),
    (
        "dns_query.opcode_id",
        "sensors report the name looked up only",
    ),
    (
        "dns_query.packet_uid",
        "sensors report the name looked up only",
    ),
    ("dns_query.type", "sensors report the name looked up only"),
    ("enrichment.created_time", "the list's time is not kept"),
    ("enrichment.src_url", "a threat list is a file"),
    ("evidences.actor", "a runtime event's actor is its process"),
    ("evidences.api", "not an API call"),
    ("evidences.connection_info", "not a connection"),
    ("evidences.container", "not a runtime event"),
    ("evidences.database", "no database"),
    ("evidences.databucket", "no bucket"),
    ("evidences.device", "the node is the finding's device"),
    ("evidences.dst_endpoint", "not a connection"),
    ("evidences.email", "no email"),
    ("evidences.file", "the file is the process's"),
    ("evidences.http_request", "not an API call"),
    (
        "evidences.http_response",
        "the audit log keeps no response headers",
    ),
    ("evidences.ja4_fingerprint_list", "no TLS fingerprint"),
    ("evidences.job", "no job"),
    ("evidences.process", "not a runtime event"),
    ("evidences.query", "not a lookup"),
    ("evidences.resources", "a call on no named object"),
    ("evidences.script", "no script"),
    ("evidences.src_endpoint", "a runtime event or an actor"),
    ("evidences.tls", "no TLS details"),
    ("evidences.url", "the API path is in http_request"),
    ("evidences.user", "the caller is the actor"),
    ("feature.uid", "a feature is named"),
    ("feature.version", "a feature is versioned with the product"),
    ("file.ext", "executables have no extension"),
    (
        "file.hashes",
        "the executable's hash is known only from a hash list's match",
    ),
    ("group.uid", "Kubernetes groups are names"),
    (
        "http_request.http_headers",
        "the audit log records no headers",
    ),
    (
        "http_request.http_method",
        "the audit log records the verb, in api.operation",
    ),
    (
        "http_request.version",
        "the audit log records no HTTP version",
    ),
    ("key_value_object.values", "a tag has one value, in value"),
    (
        "metadata.original_time",
        "findings are Vigil's own; the events' times are start_time and end_time",
    ),
    (
        "metadata.tenant_uid",
        "tenancy is the cloud account, in cloud.account",
    ),
    (
        "network_connection_info.boundary_id",
        "not reported by sensors",
    ),
    (
        "network_connection_info.protocol_num",
        "the sensor names the protocol",
    ),
    (
        "network_connection_info.protocol_ver_id",
        "not reported by sensors",
    ),
    ("network_connection_info.uid", "not reported by sensors"),
    (
        "network_endpoint.container",
        "the container is the process's",
    ),
    ("network_endpoint.hostname", "addresses only"),
    ("network_endpoint.instance_uid", "addresses only"),
    ("network_endpoint.interface_name", "addresses only"),
    ("network_endpoint.interface_uid", "addresses only"),
    ("network_endpoint.ip", "a domain endpoint"),
    ("network_endpoint.name", "addresses only"),
    (
        "network_endpoint.namespace_pid",
        "the container is the process's",
    ),
    ("network_endpoint.owner", "addresses only"),
    (
        "network_endpoint.port",
        "the audit log records the caller's address, not its port",
    ),
    (
        "network_endpoint.svc_name",
        "no service name for a caller or a destination",
    ),
    ("network_endpoint.type_id", "addresses only"),
    ("network_endpoint.uid", "addresses only"),
    ("process.cmd_line", "a process with no arguments"),
    (
        "process.container",
        "a sequence's process stands for its signals'",
    ),
    ("process.cpid", "no sensor reports a common process id"),
    (
        "process.created_time",
        "not every sensor reports a start time",
    ),
    ("process.file", "an ancestor's executable is its path"),
    ("process.namespace_pid", "sensors report host pids"),
    (
        "process.parent_process",
        "a process whose parent the sensor did not report",
    ),
    ("process.pid", "a sequence names a process by its exec id"),
    ("process.user", "not every sensor reports the user"),
    ("process_entity.cmd_line", "a process with no arguments"),
    (
        "process_entity.cpid",
        "no sensor reports a common process id",
    ),
    (
        "process_entity.created_time",
        "not every sensor reports a start time",
    ),
    (
        "process_entity.pid",
        "not every sensor reports the pid of an ancestor",
    ),
    ("process_entity.uid", "not every sensor reports exec ids"),
    (
        "related_event.type_uid",
        "a weak signal has no finding of its own",
    ),
    (
        "resource_details.hostname",
        "a Kubernetes resource has no hostname",
    ),
    (
        "resource_details.ip",
        "a Kubernetes resource has no address",
    ),
    (
        "resource_details.owner",
        "owners of Kubernetes objects are not in the audit log",
    ),
    (
        "resource_details.uid",
        "the audit log gives some objects' uids only",
    ),
    ("response.error", "a call that succeeded"),
    ("response.error_message", "a call that succeeded"),
    (
        "response.message",
        "the status message is not kept on the finding",
    ),
    (
        "service.uid",
        "the API server has no id of its own in the audit log",
    ),
    (
        "service.version",
        "the Kubernetes version is not in the audit log",
    ),
    ("url.category_ids", "no URL categories"),
    ("url.hostname", "the audit log records the path only"),
    ("url.port", "the audit log records the path only"),
    (
        "url.query_string",
        "kept in the path, as the audit log writes it",
    ),
    ("url.scheme", "the audit log records the path only"),
    ("url.url_string", "the audit log records the path only"),
    ("user.has_mfa", "the audit log does not say"),
    ("user.name", "a process user known by uid only"),
    ("user.uid", "the audit log has uids for some users only"),
];

/// The OCSF version written in `metadata.version`.
pub const VERSION: &str = "1.6.0";
const CLASS_UID: i64 = 2004;
const CATEGORY_UID: i64 = 2;

fn millis(micros: i64) -> i64 {
    micros.div_euclid(1_000)
}

/// `severity_id` and its caption from GuardDuty's number.
fn severity(score: f64) -> (i64, &'static str) {
    match Severity::of(score) {
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// `activity_id`, `activity_name` and the `type_uid` that goes with them.
fn activity(id: i64) -> (i64, &'static str) {
    let name = match id {
        1 => "Create",
        2 => "Update",
        3 => "Close",
        _ => "Unknown",
    };
    (id, name)
}

/// OCSF's provider names; other providers as they are.
fn provider(cluster: &ClusterDetails) -> Option<String> {
    let provider = cluster.provider.as_deref().or_else(|| {
        // An account id and an ARN partition say AWS when the cluster did not.
        cluster.account_id.as_ref().map(|_| "aws")
    })?;
    Some(match provider.to_ascii_lowercase().as_str() {
        "aws" => "AWS".to_owned(),
        "azure" => "Azure".to_owned(),
        "gcp" | "google" => "GCP".to_owned(),
        other => other.to_owned(),
    })
}

fn cloud(cluster: &ClusterDetails) -> Option<Value> {
    let provider = provider(cluster)?;
    Some(json!({
        "provider": provider,
        "region": cluster.region,
        "cloud_partition": (provider == "AWS").then_some(cluster.partition.as_str()),
        "account": cluster.account_id.as_ref().map(|account| json!({
            "uid": account,
            // 10: AWS Account; other clouds' accounts say their type by name.
            "type_id": if provider == "AWS" { 10 } else { 99 },
            "type": if provider == "AWS" { "AWS Account".to_owned() } else { format!("{provider} account") },
        })),
    }))
}

fn tags(cluster: &ClusterDetails) -> Value {
    Value::Array(
        cluster
            .tags
            .iter()
            .map(|tag| json!({"name": tag.key, "value": tag.value}))
            .collect(),
    )
}

/// `resources[0]`: the cluster.
fn cluster_resource(cluster: &ClusterDetails) -> Value {
    json!({
        "type": "EKSCluster",
        "uid": cluster.arn.clone().unwrap_or_else(|| cluster.name.clone()),
        "name": cluster.name,
        "region": cluster.region,
        "cloud_partition": cluster.account_id.as_ref().map(|_| cluster.partition.clone()),
        "tags": (!cluster.tags.is_empty()).then(|| tags(cluster)),
        "labels": cluster.vpc_id.as_ref().map(|vpc| vec![format!("vpc:{vpc}")]),
        "role_id": 1, "role": "Target",
    })
}

/// The finding's metadata: the product, the GuardDuty-style type, the profiles applied.
fn metadata(uid: &str, finding_type: &str, profiles: &[&str], feature: &str) -> Value {
    json!({
        "version": VERSION,
        "uid": uid,
        "event_code": finding_type,
        "product": {
            "name": "Vigil",
            "vendor_name": "Vigil",
            "uid": "vigil",
            "version": env!("CARGO_PKG_VERSION"),
            "url_string": "https://github.com/vigil-k8s/vigil",
            "feature": {"name": feature},
        },
        "profiles": profiles,
        "log_name": "findings",
        "log_provider": "Vigil",
    })
}

/// `finding_info.attacks`: one entry per technique (or per tactic when a type names no technique),
/// each with the finding's tactics.
fn attacks(tactics: &[(String, String)], techniques: &[(String, String)]) -> Value {
    let entry = |(uid, name): &(String, String)| json!({"uid": uid, "name": name});
    let tactic_list: Vec<Value> = tactics.iter().map(entry).collect();
    let mut attacks = Vec::new();
    for technique in techniques {
        let mut attack =
            json!({"version": "16", "tactics": tactic_list, "tactic": tactics.first().map(entry)});
        if let Some(fields) = attack.as_object_mut() {
            // A sub-technique (T1552.007) names its technique (T1552) by id.
            match technique.0.split_once('.') {
                Some((parent, _)) => {
                    fields.insert("sub_technique".into(), entry(technique));
                    // ATT&CK names a sub-technique "Technique: Sub-technique".
                    let parent_name = technique.1.split(": ").next().unwrap_or_default();
                    fields.insert(
                        "technique".into(),
                        json!({"uid": parent, "name": parent_name}),
                    );
                }
                None => {
                    fields.insert("technique".into(), entry(technique));
                }
            }
        }
        attacks.push(attack);
    }
    if techniques.is_empty() {
        for tactic in tactics {
            attacks.push(json!({"version": "16", "tactic": entry(tactic)}));
        }
    }
    Value::Array(attacks)
}

fn user(user: &UserInfo) -> Value {
    // OCSF's user types: a ServiceAccount is a Service, the control plane's and nodes' identities
    // (`system:kube-scheduler`, `system:node:...`) System, anyone else a User.
    let (type_id, kind) = if user.username.starts_with("system:serviceaccount:") {
        (4, "Service")
    } else if user.username.starts_with("system:") {
        (3, "System")
    } else {
        (1, "User")
    };
    json!({
        "name": user.username,
        "uid": user.uid,
        "groups": (!user.groups.is_empty()).then(|| user.groups.iter().map(|group| json!({"name": group})).collect::<Vec<_>>()),
        "type_id": type_id,
        "type": kind,
    })
}

fn endpoint(remote: &IpIntel) -> Value {
    json!({
        "ip": remote.ip,
        "autonomous_system": remote.asn.map(|number| json!({"number": number, "name": remote.as_organization})),
    })
}

/// The evidence of an API call: the call, its caller, the address and agent it came from, the
/// object it named.
fn api_evidence(detection: &Detection, call: &ApiCallAction) -> Value {
    let actor = detection.user.as_ref().map(|caller| {
        let mut actor = json!({"user": user(caller)});
        if let (Some(impersonated), Some(fields)) =
            (&detection.impersonated_user, actor.as_object_mut())
        {
            // The caller acted as someone else: OCSF's `invoked_by` names the impersonator.
            fields.insert("user".into(), user(impersonated));
            fields.insert("invoked_by".into(), json!(caller.username));
        }
        actor
    });
    let object = call.resource.as_ref().map(|resource| {
        json!({
            "type": match &call.subresource { Some(sub) => format!("{resource}/{sub}"), None => resource.clone() },
            // A call on a collection (`list secrets`) names no object: the collection stands in.
            "name": call.resource_name.clone().unwrap_or_else(|| resource.clone()),
            "namespace": call.namespace,
            "role_id": 1, "role": "Target",
        })
    });
    json!({
        "api": {
            "operation": call.verb,
            "service": {"name": "kubernetes"},
            "request": {"uid": detection.event_id, "data": call.parameters},
            "response": call.status_code.map(|code| json!({"code": code})),
        },
        "actor": actor,
        "src_endpoint": call.remote_ip.as_ref().map(endpoint),
        "http_request": {
            "user_agent": call.user_agent,
            "url": {"path": call.request_uri},
            "x_forwarded_for": (call.source_ips.len() > 1).then(|| call.source_ips.clone()),
        },
        "resources": object.map(|object| vec![object]),
    })
}

fn process_name(process: &ProcessInfo) -> &str {
    process.binary.rsplit('/').next().unwrap_or_default()
}

/// A process as OCSF's `process_entity` (an ancestor) or the base of a `process`.
fn process_entity(process: &ProcessInfo) -> Map<String, Value> {
    let mut entity = Map::new();
    entity.insert("name".into(), json!(process_name(process)));
    entity.insert("path".into(), json!(process.binary));
    let mut put = |key: &str, value: Value| {
        if !value.is_null() {
            entity.insert(key.into(), value);
        }
    };
    put("cmd_line", json!(process.arguments));
    put("pid", json!(process.pid));
    put("uid", json!(process.exec_id));
    put("created_time", json!(process.start_time_micros.map(millis)));
    entity
}

/// `evidences[].process`: the process with its parent, its ancestry (newest first, as OCSF orders
/// it) and its executable's path lineage, in its container.
fn process(runtime: &RuntimeDetails, container: Option<&Value>) -> Value {
    let mut process = process_entity(&runtime.process);
    let with_user = |process: &ProcessInfo, fields: &mut Map<String, Value>| {
        if let Some(uid) = process.uid {
            // Root is the one Linux user a uid alone names.
            let user = if uid == 0 {
                json!({"uid": "0", "name": "root", "type_id": 2, "type": "Admin"})
            } else {
                json!({"uid": uid.to_string(), "type_id": 0, "type": "Unknown"})
            };
            fields.insert("user".into(), user);
        }
        if let Some(cwd) = &process.cwd {
            fields.insert("working_directory".into(), json!(cwd));
        }
    };
    with_user(&runtime.process, &mut process);
    process.insert(
        "file".into(),
        json!({"name": process_name(&runtime.process), "path": runtime.process.binary, "type_id": 1, "type": "Regular File"}),
    );
    if let Some(parent) = runtime.lineage.first() {
        let mut parent_process = process_entity(parent);
        with_user(parent, &mut parent_process);
        process.insert("parent_process".into(), Value::Object(parent_process));
    }
    if !runtime.lineage.is_empty() {
        process.insert(
            "ancestry".into(),
            runtime
                .lineage
                .iter()
                .map(|ancestor| Value::Object(process_entity(ancestor)))
                .collect(),
        );
        process.insert(
            "lineage".into(),
            runtime
                .lineage
                .iter()
                .map(|ancestor| json!(ancestor.binary))
                .collect(),
        );
    }
    if let Some(container) = container {
        process.insert("container".into(), container.clone());
    }
    Value::Object(process)
}

/// The runtime finding's container, with its pod and image.
fn container(runtime: &RuntimeDetails) -> Option<Value> {
    if runtime.container_id.is_none() && runtime.container_name.is_none() {
        return None;
    }
    Some(json!({
        "uid": runtime.container_id,
        "name": runtime.container_name,
        "image": runtime.image.as_ref().map(|image| json!({
            "uid": image,
            "name": super::guardduty::image_prefix(image),
            "tag": image.rsplit_once(':').map(|(_, tag)| tag).filter(|tag| !tag.contains('/')),
        })),
        "orchestrator": "Kubernetes",
        "labels": runtime.pod_name.as_ref().map(|pod| vec![format!(
            "pod:{}/{pod}", runtime.pod_namespace.as_deref().unwrap_or_default()
        )]),
    }))
}

/// The evidence of a runtime event: the process, its container, and what it reached.
fn runtime_evidence(runtime: &RuntimeDetails) -> Value {
    let container = container(runtime);
    let destination = context_value(runtime, "remoteIp").map(|ip| {
        json!({
            "ip": ip,
            "port": context_value(runtime, "remotePort").and_then(|port| port.parse::<i64>().ok()),
        })
    });
    let domain = context_value(runtime, "domain");
    // A connection's protocol; a lookup's is the resolver's, not shown as a connection.
    let connection = context_value(runtime, "protocol")
        .filter(|_| destination.is_some())
        .map(|protocol| {
            json!({"protocol_name": protocol.to_ascii_lowercase(), "direction_id": 2, "direction": "Outbound"})
        });
    json!({
        // A sensor's alert about an API call names no process.
        "process": (!runtime.process.binary.is_empty()).then(|| process(runtime, container.as_ref())),
        "container": container,
        "dst_endpoint": destination.or_else(|| domain.map(|domain| json!({"domain": domain}))),
        "connection_info": connection,
        "query": domain.map(|domain| json!({"hostname": domain})),
        "name": runtime.event_kind,
    })
}

/// `resources[1..]`: the workload written or targeted, and the container.
fn workload_resources(detection: &Detection) -> Vec<Value> {
    let mut resources = Vec::new();
    if let Some(workload) = &detection.workload {
        resources.push(json!({
            "type": workload.kind, "name": workload.name, "namespace": workload.namespace,
            "uid": workload.uid, "role_id": 1, "role": "Target",
            "labels": workload.service_account.as_ref().map(|account| vec![format!("serviceAccount:{account}")]),
        }));
    } else if let Some(target) = &detection.target {
        let (kind, name) = match (&target.workload_kind, &target.workload_name) {
            (Some(kind), Some(name)) => (kind.clone(), name.clone()),
            _ => ("Pod".to_owned(), target.pod_name.clone()),
        };
        resources.push(json!({
            "type": kind, "name": name, "namespace": target.namespace, "role_id": 1, "role": "Target",
            "labels": target.service_account.as_ref().map(|account| vec![format!("serviceAccount:{account}")]),
        }));
    }
    if let Some(binding) = &detection.role_binding {
        resources.push(json!({
            "type": binding.kind, "name": binding.name, "namespace": binding.namespace,
            "uid": binding.uid, "role_id": 1, "role": "Target",
            "labels": [format!("roleRef:{}/{}", binding.role_ref_kind, binding.role_ref_name)],
        }));
    }
    if let Some(role) = &detection.role {
        resources.push(json!({
            "type": role.kind, "name": role.name, "namespace": role.namespace,
            "uid": role.uid, "role_id": 1, "role": "Target",
        }));
    }
    if let Some(runtime) = &detection.runtime
        && let Some(id) = &runtime.container_id
    {
        resources.push(json!({
            "type": "Container", "uid": id, "name": runtime.container_name,
            "namespace": runtime.pod_namespace, "role_id": 1, "role": "Target",
        }));
    }
    resources
}

/// The observables: every address, domain, user, hash and container the finding names, by the
/// attribute path that holds it (`evidences.src_endpoint.ip`).
#[derive(Default)]
struct Observables {
    seen: BTreeSet<(String, String)>,
    list: Vec<Value>,
}

impl Observables {
    /// `type_id`s from the OCSF dictionary: 1 Hostname, 2 IP Address, 4 User Name, 8 Hash,
    /// 20 Endpoint... only the ones used here.
    fn add(&mut self, name: &str, type_id: i64, value: &str) {
        if value.is_empty() || !self.seen.insert((name.to_owned(), value.to_owned())) {
            return;
        }
        self.list
            .push(json!({"name": name, "type_id": type_id, "value": value}));
    }

    fn of_detection(detection: &Detection) -> Self {
        let mut observables = Self::default();
        if let Some(caller) = &detection.user {
            observables.add("evidences.actor.user.name", 4, &caller.username);
        }
        if let Some(impersonated) = &detection.impersonated_user {
            observables.add("evidences.actor.user.name", 4, &impersonated.username);
        }
        if let Some(call) = &detection.api_call
            && let Some(remote) = &call.remote_ip
        {
            observables.add("evidences.src_endpoint.ip", 2, &remote.ip);
        }
        if let Some(call) = &detection.api_call {
            for address in call.source_ips.iter().filter(|_| call.source_ips.len() > 1) {
                if address.parse::<std::net::IpAddr>().is_ok() {
                    observables.add("evidences.http_request.x_forwarded_for", 2, address);
                }
            }
            if let Some(agent) = &call.user_agent {
                observables.add("evidences.http_request.user_agent", 16, agent);
            }
        }
        if let Some(runtime) = &detection.runtime {
            if let Some(ip) = context_value(runtime, "remoteIp") {
                observables.add("evidences.dst_endpoint.ip", 2, ip);
            }
            if let Some(domain) = context_value(runtime, "domain") {
                observables.add("evidences.query.hostname", 1, domain);
            }
            if let Some(id) = &runtime.container_id {
                observables.add("evidences.container.uid", 27, id);
            }
            observables.add("evidences.process.name", 9, process_name(&runtime.process));
            observables.add("evidences.process.file.path", 45, &runtime.process.binary);
        }
        for found in &detection.threat_intel {
            let entry = found.entry.trim();
            if entry.len() == 64 && entry.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                observables.add("evidences.process.file.hashes.value", 8, entry);
            }
        }
        observables
    }
}

/// Threat list matches as `enrichments`.
fn enrichments(detection: &Detection) -> Option<Value> {
    if detection.threat_intel.is_empty() {
        return None;
    }
    let matched = detection
        .api_call
        .as_ref()
        .and_then(|call| call.remote_ip.as_ref())
        .map(|remote| ("evidences.src_endpoint.ip", remote.ip.clone()))
        .or_else(|| {
            let runtime = detection.runtime.as_ref()?;
            context_value(runtime, "remoteIp")
                .map(|ip| ("evidences.dst_endpoint.ip", ip.to_owned()))
                .or_else(|| {
                    context_value(runtime, "domain")
                        .map(|domain| ("evidences.query.hostname", domain.to_owned()))
                })
        });
    Some(Value::Array(
        detection
            .threat_intel
            .iter()
            .map(|found| {
                let (name, value) = matched
                    .clone()
                    .unwrap_or(("threat_list.entry", found.entry.clone()));
                json!({
                    "name": name,
                    "value": value,
                    "type": "threat_list",
                    "provider": found.list_name,
                    "short_desc": format!("an entry of threat list {}", found.list_name),
                    "data": {"list": found.list_name, "entry": found.entry, "file_sha256": found.file_sha256, "category": found.category},
                })
            })
            .collect(),
    ))
}

/// A baseline's explanation: per profiled entity, what was observed against what it usually does.
fn anomaly_analyses(detection: &Detection) -> Option<Value> {
    if detection.anomaly.is_empty() {
        return None;
    }
    Some(Value::Array(
        detection
            .anomaly
            .iter()
            .map(|unusual| {
                json!({
                    "analysis_targets": [{"name": unusual.entity, "type": unusual.scope}],
                    "anomalies": [{
                        "observation_parameter": unusual.dimension,
                        "observation_type": "Frequency",
                        "observed_pattern": unusual.familiarity.to_ascii_uppercase(),
                        "observations": [{"value": unusual.observed, "count": 1}],
                    }],
                    "baselines": [{
                        "observation_parameter": unusual.dimension,
                        "observation_type": "Frequency",
                        "observed_pattern": "FREQUENT",
                        "observations": unusual.baseline.iter().map(|value| json!({"value": value})).collect::<Vec<_>>(),
                    }],
                })
            })
            .collect(),
    ))
}

/// `analytic`: the detector or rule, and how it judges (a rule, or a learned baseline).
fn analytic(detection: &Detection) -> Value {
    let (type_id, kind) = if detection.anomaly.is_empty() {
        (1, "Rule")
    } else {
        (2, "Behavioral")
    };
    json!({"uid": detection.detector, "name": detection.detector, "type_id": type_id, "type": kind})
}

/// The profiles an event applies: cloud when the cloud is known, container for processes.
fn profiles(cloud: bool, runtime: bool) -> Vec<&'static str> {
    let mut profiles = Vec::new();
    if cloud {
        profiles.push("cloud");
    }
    if runtime {
        profiles.push("container");
    }
    profiles.push("security_control");
    profiles
}

/// The head every Vigil finding shares: class, activity, severity, status, times, cloud.
struct Head<'a> {
    uid: &'a str,
    finding_type: &'a str,
    title: &'a str,
    severity: f64,
    activity_id: i64,
    archived: bool,
    updated_at_micros: i64,
    first_seen_micros: i64,
    last_seen_micros: i64,
    count: i64,
    cluster: &'a ClusterDetails,
    runtime: bool,
    feature: &'a str,
}

impl Head<'_> {
    fn render(&self) -> Map<String, Value> {
        let (severity_id, severity) = severity(self.severity);
        let (activity_id, activity_name) = activity(self.activity_id);
        let (status_id, status) = if self.archived {
            (3, "Suppressed")
        } else {
            (1, "New")
        };
        let cloud = cloud(self.cluster);
        let mut head = Map::new();
        let mut put = |key: &str, value: Value| {
            head.insert(key.into(), value);
        };
        put("class_uid", json!(CLASS_UID));
        put("class_name", json!("Detection Finding"));
        put("category_uid", json!(CATEGORY_UID));
        put("category_name", json!("Findings"));
        put("activity_id", json!(activity_id));
        put("activity_name", json!(activity_name));
        put("type_uid", json!(CLASS_UID * 100 + activity_id));
        put(
            "type_name",
            json!(format!("Detection Finding: {activity_name}")),
        );
        put("severity_id", json!(severity_id));
        put("severity", json!(severity));
        put("status_id", json!(status_id));
        put("status", json!(status));
        put("time", json!(millis(self.updated_at_micros)));
        put("start_time", json!(millis(self.first_seen_micros)));
        put("end_time", json!(millis(self.last_seen_micros)));
        put("count", json!(self.count));
        put("message", json!(self.title));
        // An archived finding is kept, not raised.
        put("is_alert", json!(!self.archived));
        put(
            "metadata",
            metadata(
                self.uid,
                self.finding_type,
                &profiles(cloud.is_some(), self.runtime),
                self.feature,
            ),
        );
        if let Some(cloud) = cloud {
            put("cloud", cloud);
        }
        head
    }
}

/// A Vigil finding as an OCSF Detection Finding.
pub fn render(finding: &Finding) -> Value {
    let detection = &finding.detection;
    let cluster = &detection.cluster;
    let attack = attack_of_detection(detection);
    let pairs = |entries: &[vigil_schemas::attack::Entry]| -> Vec<(String, String)> {
        entries
            .iter()
            .map(|entry| (entry.id.clone(), entry.name.clone()))
            .collect()
    };
    let feature = super::feature_name(detection);
    let mut event = Head {
        uid: &finding.id,
        finding_type: &detection.finding_type,
        title: &detection.title,
        severity: detection.severity,
        // A finding's first version is its first occurrence; later ones update it.
        activity_id: if finding.count > 1 { 2 } else { 1 },
        archived: finding.archived,
        updated_at_micros: finding.updated_at_micros,
        first_seen_micros: finding.event_first_seen_micros,
        last_seen_micros: finding.event_last_seen_micros,
        count: finding.count,
        cluster,
        runtime: detection.runtime.is_some(),
        feature,
    }
    .render();
    let mut info = json!({
        "uid": finding.id,
        "uid_alt": cluster.finding_arn(&finding.id),
        "title": detection.title,
        "desc": detection.description,
        "types": [detection.finding_type],
        "analytic": analytic(detection),
        "first_seen_time": millis(finding.event_first_seen_micros),
        "last_seen_time": millis(finding.event_last_seen_micros),
        "created_time": millis(finding.created_at_micros),
        "modified_time": millis(finding.updated_at_micros),
    });
    if !attack.is_empty()
        && let Some(fields) = info.as_object_mut()
    {
        fields.insert(
            "attacks".into(),
            attacks(&pairs(&attack.tactics), &pairs(&attack.techniques)),
        );
    }
    if let (Some(sequence), Some(fields)) = (&finding.attack_sequence_arn, info.as_object_mut()) {
        // The sequence this finding is a signal of.
        fields.insert(
            "related_events".into(),
            json!([{"uid": sequence, "type": SEQUENCE_TYPE, "title": "Attack sequence",
                     "type_uid": CLASS_UID * 100 + 1, "severity_id": 5, "severity": "Critical"}]),
        );
    }
    event.insert("finding_info".into(), info);
    let mut resources = vec![cluster_resource(cluster)];
    resources.extend(workload_resources(detection));
    event.insert("resources".into(), Value::Array(resources));
    let mut evidences = Vec::new();
    if let Some(call) = &detection.api_call {
        evidences.push(api_evidence(detection, call));
    }
    if let Some(runtime) = &detection.runtime {
        evidences.push(runtime_evidence(runtime));
        if let Some(node) = &runtime.node_name {
            event.insert(
                "device".into(),
                json!({"hostname": node, "name": node, "type_id": 6, "type": "Virtual", "region": cluster.region}),
            );
        }
    }
    if !evidences.is_empty() {
        event.insert("evidences".into(), Value::Array(evidences));
    }
    let observables = Observables::of_detection(detection);
    if !observables.list.is_empty() {
        event.insert("observables".into(), Value::Array(observables.list));
    }
    if let Some(enrichments) = enrichments(detection) {
        event.insert("enrichments".into(), enrichments);
    }
    if let Some(analyses) = anomaly_analyses(detection) {
        event.insert("anomaly_analyses".into(), analyses);
    }
    let mut unmapped = Map::new();
    unmapped.insert("aggregation_key".into(), json!(detection.aggregation_key));
    for pair in &detection.additional_info {
        if pair.key != "mitreAttack" {
            unmapped.insert(pair.key.clone(), json!(pair.value));
        }
    }
    if !detection.anomaly.is_empty() {
        let profiles: Map<String, Value> = detection
            .anomaly
            .iter()
            .map(|unusual| {
                (
                    format!("{}:{}", unusual.scope, unusual.entity),
                    json!({"observations": unusual.profile_observations, "days": unusual.profile_days}),
                )
            })
            .collect();
        unmapped.insert("anomaly_profiles".into(), Value::Object(profiles));
    }
    if let Some(runtime) = &detection.runtime {
        for pair in &runtime.context {
            if !ENDPOINT_CONTEXT.contains(&pair.key.as_str()) {
                unmapped.insert(pair.key.clone(), json!(pair.value));
            }
        }
    }
    event.insert("unmapped".into(), Value::Object(unmapped));
    without_nulls(Value::Object(event))
}

/// A signal of a sequence as a `related_events` entry.
fn related_event(signal: &Signal) -> Value {
    let (severity_id, severity) = severity(signal.severity);
    json!({
        "uid": signal.uid,
        "product_uid": "vigil",
        "type": signal.name,
        "title": signal.title,
        "desc": signal.description,
        "severity_id": severity_id,
        "severity": severity,
        "count": signal.count,
        "first_seen_time": millis(signal.first_seen_micros),
        "last_seen_time": millis(signal.last_seen_micros),
        // A weak signal has no finding of its own: OCSF's type_uid is left out for it.
        "type_uid": (!signal.weak).then_some(CLASS_UID * 100 + 1),
        "attacks": (!signal.tactics.is_empty() || !signal.techniques.is_empty()).then(|| attacks(&signal.tactics, &signal.techniques)),
        "tags": [{"name": "source", "value": signal.source}, {"name": "weak", "value": signal.weak.to_string()}],
    })
}

/// An attack sequence as an OCSF Detection Finding: its signals as `related_events`, its actors
/// and endpoints as evidence, its resources as resources.
pub fn render_sequence(sequence: &Sequence) -> Value {
    let cluster = &sequence.cluster;
    let title = "Potential cluster compromise indicated by a sequence of actions";
    let activity_id = if sequence.merged_into.is_some() {
        3
    } else if sequence.revision == 0 {
        1
    } else {
        2
    };
    let mut event = Head {
        uid: &sequence.id,
        finding_type: SEQUENCE_TYPE,
        title,
        severity: sequence.severity,
        activity_id,
        archived: false,
        updated_at_micros: sequence.updated_at_micros,
        first_seen_micros: sequence.created_at_micros,
        last_seen_micros: sequence.updated_at_micros,
        count: sequence.count,
        cluster,
        runtime: false,
        feature: "ExtendedThreatDetection",
    }
    .render();
    let mut tactics: Vec<(String, String)> = Vec::new();
    let mut techniques: Vec<(String, String)> = Vec::new();
    for signal in &sequence.signals {
        for tactic in &signal.tactics {
            if !tactics.contains(tactic) {
                tactics.push(tactic.clone());
            }
        }
        for technique in &signal.techniques {
            if !techniques.contains(technique) {
                techniques.push(technique.clone());
            }
        }
    }
    event.insert(
        "finding_info".into(),
        json!({
            "uid": sequence.id,
            "uid_alt": sequence.arn(),
            "title": title,
            "desc": sequence.description,
            "types": [SEQUENCE_TYPE],
            "analytic": {"uid": "correlation", "name": "correlation", "type_id": 99, "type": "Correlation"},
            "attacks": attacks(&tactics, &techniques),
            "first_seen_time": millis(sequence.created_at_micros),
            "last_seen_time": millis(sequence.updated_at_micros),
            "created_time": millis(sequence.created_at_micros),
            "modified_time": millis(sequence.updated_at_micros),
            "related_events": sequence.signals.iter().map(related_event).collect::<Vec<_>>(),
            "related_events_count": sequence.count,
        }),
    );
    let mut seen = BTreeSet::new();
    let mut resources = vec![cluster_resource(cluster)];
    let mut evidences = Vec::new();
    let mut observables = Observables::default();
    for entity in sequence.signals.iter().flat_map(|signal| &signal.entities) {
        if !seen.insert(entity.key.clone()) {
            continue;
        }
        match (entity.kind, entity.entity_type.as_str()) {
            (LinkKind::Actor, "PROCESS") => {
                evidences.push(json!({"process": {"name": entity.name, "path": entity.detail, "uid": entity.key}}));
                observables.add("evidences.process.name", 9, &entity.name);
            }
            (LinkKind::Actor, _) => {
                evidences.push(json!({"actor": {"user": {"name": entity.name, "type": entity.entity_type, "type_id": 99}}}));
                observables.add("evidences.actor.user.name", 4, &entity.name);
            }
            (LinkKind::Endpoint, "IP") => {
                evidences.push(json!({"src_endpoint": {"ip": entity.name}}));
                observables.add("evidences.src_endpoint.ip", 2, &entity.name);
            }
            (LinkKind::Endpoint, _) => {
                evidences.push(json!({"dst_endpoint": {"domain": entity.name}}));
                observables.add("evidences.dst_endpoint.domain", 1, &entity.name);
            }
            (LinkKind::Resource, kind) => {
                resources.push(json!({
                    "type": kind, "name": entity.name, "namespace": entity.namespace,
                    "uid": entity.key, "role_id": 1, "role": "Target",
                }));
            }
        }
    }
    event.insert("resources".into(), Value::Array(resources));
    if !evidences.is_empty() {
        event.insert("evidences".into(), Value::Array(evidences));
    }
    if !observables.list.is_empty() {
        event.insert("observables".into(), Value::Array(observables.list));
    }
    event.insert(
        "unmapped".into(),
        json!({"signals_left_out": sequence.signals_left_out, "merged_into": sequence.merged_into, "revision": sequence.revision}),
    );
    without_nulls(Value::Object(event))
}
