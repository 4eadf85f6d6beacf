//! GuardDuty's finding JSON (schema version 2.0), section by section: the finding's head, its
//! `resource` (the cluster, the Kubernetes user and workload, the container), and its `service`
//! (the API call or the runtime process, the evidence, the anomaly explanation, `additionalInfo`).
//! Fields Vigil has no value for are left out, as GuardDuty leaves them out.

use serde_json::{Map, Value, json};
use vigil_schemas::time::format_rfc3339_millis;
use vigil_schemas::{Detection, Finding, ProcessInfo, RuntimeDetails, UserInfo, WorkloadSpec};

/// The finding as GuardDuty exports it to EventBridge and S3 (the `Finding` API shape).
pub fn render(finding: &Finding) -> Value {
    without_nulls(with_nulls(finding))
}

fn strings(values: &[String]) -> Value {
    Value::Array(values.iter().cloned().map(Value::String).collect())
}

fn insert_some(map: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(value) = value {
        map.insert(key.to_owned(), value.into());
    }
}

fn user_details(user: &UserInfo, impersonated: Option<&UserInfo>) -> Value {
    let mut details = Map::new();
    details.insert("username".into(), json!(user.username));
    insert_some(&mut details, "uid", user.uid.clone());
    details.insert("groups".into(), strings(&user.groups));
    if !user.session_names.is_empty() {
        details.insert("sessionName".into(), strings(&user.session_names));
    }
    if let Some(impersonated) = impersonated {
        details.insert(
            "impersonatedUser".into(),
            json!({"username": impersonated.username, "groups": strings(&impersonated.groups)}),
        );
    }
    Value::Object(details)
}

/// `resource.eksClusterDetails`, for findings and attack sequences alike.
pub(crate) fn eks_cluster_details(cluster: &vigil_schemas::ClusterDetails) -> Value {
    json!({
        "name": cluster.name, "arn": cluster.arn, "vpcId": cluster.vpc_id, "status": "ACTIVE",
        "tags": cluster.tags.iter().map(|tag| json!({"key": tag.key, "value": tag.value})).collect::<Vec<_>>(),
        // Vigil's addition: the cloud the cluster runs in (aws, azure, gcp), when known.
        "cloudProvider": cluster.provider,
    })
}

/// `nginx:1.25` → `nginx`, `602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/kube-proxy:v1` →
/// `602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/kube-proxy`: the image without tag or digest,
/// what GuardDuty calls `imagePrefix` and what suppression rules match on.
pub fn image_prefix(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |index| index + 1);
    match without_digest
        .get(last_slash..)
        .and_then(|name| name.find(':'))
    {
        Some(colon) => without_digest
            .get(..last_slash + colon)
            .unwrap_or(without_digest),
        None => without_digest,
    }
}

fn workload_details(workload: &WorkloadSpec) -> Value {
    json!({
        "name": workload.name,
        // GuardDuty names the type by the resource: "pods", "deployments", "daemonsets".
        "type": workload.kind.to_ascii_lowercase() + "s",
        "uid": workload.uid,
        "namespace": workload.namespace,
        "serviceAccountName": workload.service_account,
        "hostNetwork": workload.host_network,
        "hostPID": workload.host_pid,
        "hostIPC": workload.host_ipc,
        "containers": workload.containers.iter().map(|container| json!({
            "name": container.name,
            "image": container.image,
            "imagePrefix": image_prefix(&container.image),
            "securityContext": {
                "privileged": container.privileged,
                "allowPrivilegeEscalation": container.allow_privilege_escalation,
            },
            "volumeMounts": container.volume_mounts.iter().map(|mount| json!({
                "name": mount.name, "mountPath": mount.mount_path,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "volumes": workload.volumes.iter().map(|volume| {
            let mut entry = json!({"name": volume.name});
            if let (Some(path), Some(object)) = (&volume.host_path, entry.as_object_mut()) {
                object.insert("hostPath".into(), json!({"path": path}));
            }
            entry
        }).collect::<Vec<_>>(),
    })
}

/// GuardDuty leaves absent fields out rather than writing `null`; SIEM parsers expect the same.
/// `service.runtimeDetails.process` and each of its `lineage` entries.
fn process_json(process: &ProcessInfo) -> Value {
    json!({
        "name": process.binary.rsplit('/').next().unwrap_or_default(),
        "executablePath": process.binary,
        "commandLine": process.arguments,
        "pid": process.pid,
        "pwd": process.cwd,
        "startTime": process.start_time_micros.map(format_rfc3339_millis),
        "uuid": process.exec_id,
        "parentUuid": process.parent_exec_id,
        "userId": process.uid,
        "euid": process.euid,
    })
}

/// A runtime finding's container, as `resource.containerDetails` and in the workload's containers.
fn container_json(runtime: &RuntimeDetails) -> Value {
    json!({
        "id": runtime.container_id,
        "name": runtime.container_name,
        "image": runtime.image,
        "imagePrefix": runtime.image.as_deref().map(image_prefix),
    })
}

pub(crate) fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(key, value)| (key, without_nulls(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

fn with_nulls(finding: &Finding) -> Value {
    let detection = &finding.detection;
    let cluster = &detection.cluster;
    let account = cluster.account_id.clone().unwrap_or_default();
    let region = cluster.region.clone().unwrap_or_default();
    let kubernetes = kubernetes_details(detection);
    let service = service(finding, api_call_action(detection));
    let arn = cluster.finding_arn(&finding.id);
    json!({
        "schemaVersion": "2.0",
        "accountId": account,
        "region": region,
        "partition": cluster.partition,
        "id": finding.id,
        "arn": arn,
        "associatedAttackSequenceArn": finding.attack_sequence_arn,
        "type": detection.finding_type,
        "severity": detection.severity,
        "title": detection.title,
        "description": detection.description,
        "createdAt": format_rfc3339_millis(finding.created_at_micros),
        "updatedAt": format_rfc3339_millis(finding.updated_at_micros),
        "resource": {
            "resourceType": "EKSCluster",
            "eksClusterDetails": eks_cluster_details(cluster),
            "kubernetesDetails": kubernetes,
            "containerDetails": detection.runtime.as_ref().filter(|runtime| runtime.container_id.is_some()).map(container_json),
        },
        "service": service,
    })
}

/// `resource.kubernetesDetails`: the user, and the workload written or targeted.
fn kubernetes_details(detection: &Detection) -> Map<String, Value> {
    let mut kubernetes = Map::new();
    if let Some(user) = &detection.user {
        kubernetes.insert(
            "kubernetesUserDetails".into(),
            user_details(user, detection.impersonated_user.as_ref()),
        );
    }
    if let Some(workload) = &detection.workload {
        kubernetes.insert(
            "kubernetesWorkloadDetails".into(),
            workload_details(workload),
        );
    } else if let (Some(runtime), Some(target)) = (&detection.runtime, &detection.target) {
        kubernetes.insert(
            "kubernetesWorkloadDetails".into(),
            json!({
                "name": target.workload_name.clone().unwrap_or_else(|| target.pod_name.clone()),
                "type": target.workload_kind.as_deref().map_or("pods".to_owned(), |kind| format!("{}s", kind.to_ascii_lowercase())),
                "namespace": target.namespace,
                "serviceAccountName": target.service_account,
                "containers": [container_json(runtime)],
            }),
        );
    } else if let Some(target) = &detection.target {
        kubernetes.insert(
            "kubernetesWorkloadDetails".into(),
            json!({
                "name": target.pod_name, "type": "pods", "namespace": target.namespace,
                "serviceAccountName": target.service_account,
                // Images are known only for pods the inventory saw created.
                "containers": (!target.images.is_empty()).then(|| target.images.iter().map(|image| json!({"image": image, "imagePrefix": image_prefix(image)})).collect::<Vec<_>>()),
            }),
        );
    }

    kubernetes
}

/// `service.action`: the API call with the caller's address, and the binding or role it wrote.
fn api_call_action(detection: &Detection) -> Map<String, Value> {
    let mut action = Map::new();
    if let Some(call) = &detection.api_call {
        let mut api = json!({
            "verb": call.verb,
            "requestUri": call.request_uri,
            "resource": call.resource,
            "subresource": call.subresource,
            "namespace": call.namespace,
            "resourceName": call.resource_name,
            "statusCode": call.status_code,
            "sourceIPs": strings(&call.source_ips),
            "userAgent": call.user_agent,
            "parameters": call.parameters,
        });
        if let (Some(remote), Some(object)) = (&call.remote_ip, api.as_object_mut()) {
            let family = if remote.ip.contains(':') {
                "ipAddressV6"
            } else {
                "ipAddressV4"
            };
            let mut details = json!({family: remote.ip, "ipScope": remote.scope});
            // GuardDuty's `organization`, from the user's ASN database when one is configured.
            if let (Some(asn), Some(map)) = (remote.asn, details.as_object_mut()) {
                let mut organization = json!({"asn": asn.to_string()});
                if let (Some(name), Some(fields)) =
                    (&remote.as_organization, organization.as_object_mut())
                {
                    fields.insert("asnOrg".into(), json!(name));
                }
                map.insert("organization".into(), organization);
            }
            object.insert("remoteIpDetails".into(), details);
        }
        action.insert("actionType".into(), json!("KUBERNETES_API_CALL"));
        action.insert("kubernetesApiCallAction".into(), api);
    }
    if let Some(binding) = &detection.role_binding {
        action.insert(
            "kubernetesRoleBindingDetails".into(),
            json!({"kind": binding.kind, "name": binding.name, "uid": binding.uid,
                   "roleRefKind": binding.role_ref_kind, "roleRefName": binding.role_ref_name}),
        );
    }
    if let Some(role) = &detection.role {
        action.insert(
            "kubernetesRoleDetails".into(),
            json!({"kind": role.kind, "name": role.name, "uid": role.uid}),
        );
    }

    action
}

/// `service.additionalInfo`'s object, and `service.detection` for an anomaly finding.
fn additional_info(detection: &Detection) -> (Map<String, Value>, Option<Value>) {
    let mut additional = Map::new();
    additional.insert("detector".into(), json!(detection.detector));
    additional.insert("aggregationKey".into(), strings(&detection.aggregation_key));
    let mut declared = Vec::new();
    for pair in &detection.additional_info {
        if pair.key == "mitreAttack" {
            // A rule's `tags`: joined with the type's row below.
            declared.extend(pair.value.split(',').map(|tag| tag.trim().to_owned()));
            continue;
        }
        additional.insert(pair.key.clone(), json!(pair.value));
    }
    let attack = vigil_schemas::attack::attack_of(&detection.finding_type, &declared);
    if !attack.is_empty() {
        let entries = |entries: &[vigil_schemas::attack::Entry]| {
            entries
                .iter()
                .map(|entry| json!({"id": entry.id, "name": entry.name}))
                .collect::<Vec<_>>()
        };
        additional.insert(
            "mitreAttack".into(),
            json!({"tactics": entries(&attack.tactics), "techniques": entries(&attack.techniques)}),
        );
    }
    if let Some(runtime) = &detection.runtime {
        additional.insert(
            "agentDetails".into(),
            json!({"agentId": runtime.sensor, "agentVersion": Value::Null}),
        );
        additional.insert("eventKind".into(), json!(runtime.event_kind));
        insert_some(&mut additional, "nodeName", runtime.node_name.clone());
    }
    let mut anomaly: Option<Value> = None;
    // Anomaly findings explain themselves as GuardDuty's `service.detection.anomaly` does, with its
    // API types: `profiles` maps a dimension to the profiled entity to what the baseline held (a list
    // of `AnomalyObject`s), `unusual.behavior` maps the entity to the dimension to what was observed.
    // `profileType` is always `FREQUENCY`; `profileSubtype` is FREQUENT, INFREQUENT, RARE or UNSEEN.
    // How much the profile rests on (observations, days) is not in GuardDuty's shape: it goes to
    // `additionalInfo` as `anomalyProfiles`.
    if !detection.anomaly.is_empty() {
        let mut profiles = Map::new();
        let mut behavior = Map::new();
        let mut weights = Map::new();
        for unusual in &detection.anomaly {
            let entity = format!("{}:{}", unusual.scope, unusual.entity);
            let held = json!([{
                "profileType": "FREQUENCY",
                "profileSubtype": "FREQUENT",
                "observations": {"text": unusual.baseline},
            }]);
            if let Some(by_entity) = profiles
                .entry(unusual.dimension.clone())
                .or_insert_with(|| json!({}))
                .as_object_mut()
            {
                by_entity.insert(entity.clone(), held);
            }
            if let Some(dimensions) = behavior
                .entry(entity.clone())
                .or_insert_with(|| json!({}))
                .as_object_mut()
            {
                dimensions.insert(
                    unusual.dimension.clone(),
                    json!({
                        "profileType": "FREQUENCY",
                        "profileSubtype": unusual.familiarity.to_ascii_uppercase(),
                        "observations": {"text": [unusual.observed]},
                    }),
                );
            }
            weights.insert(
                entity,
                json!({"observations": unusual.profile_observations, "days": unusual.profile_days}),
            );
        }
        additional.insert("anomalyProfiles".into(), Value::Object(weights));
        anomaly =
            Some(json!({"anomaly": {"profiles": profiles, "unusual": {"behavior": behavior}}}));
    }
    (additional, anomaly)
}

/// The context keys detect writes for the endpoint a runtime event reached; GuardDuty shows them
/// as the finding's network or DNS action, not in `runtimeDetails.context`.
pub(crate) const ENDPOINT_CONTEXT: [&str; 5] = [
    "remoteIp",
    "remoteIpScope",
    "remotePort",
    "protocol",
    "domain",
];

/// A runtime context's value.
pub(crate) fn context_value<'a>(runtime: &'a RuntimeDetails, key: &str) -> Option<&'a str> {
    runtime
        .context
        .iter()
        .find(|pair| pair.key == key)
        .map(|pair| pair.value.as_str())
}

/// `service.action` of a runtime finding on a connection (`networkConnectionAction`) or a lookup
/// (`dnsRequestAction`).
fn runtime_action(runtime: &RuntimeDetails) -> Option<Value> {
    let protocol = context_value(runtime, "protocol").map(str::to_ascii_uppercase);
    if let Some(ip) = context_value(runtime, "remoteIp") {
        let family = if ip.contains(':') {
            "ipAddressV6"
        } else {
            "ipAddressV4"
        };
        let port = context_value(runtime, "remotePort").and_then(|port| port.parse::<i64>().ok());
        return Some(json!({
            "actionType": "NETWORK_CONNECTION",
            "networkConnectionAction": {
                "connectionDirection": "OUTBOUND",
                "blocked": false,
                "protocol": protocol,
                "remoteIpDetails": {family: ip, "ipScope": context_value(runtime, "remoteIpScope")},
                "remotePortDetails": port.map(|port| json!({"port": port})),
            },
        }));
    }
    context_value(runtime, "domain").map(|domain| {
        json!({
            "actionType": "DNS_REQUEST",
            "dnsRequestAction": {"domain": domain, "protocol": protocol.unwrap_or_else(|| "UDP".into()), "blocked": false},
        })
    })
}

/// `service`: counts, times, the action, the evidence, the explanation and the runtime details.
fn service(finding: &Finding, action: Map<String, Value>) -> Value {
    let detection = &finding.detection;
    let (additional, anomaly) = additional_info(detection);
    let feature = super::feature_name(detection);
    let mut service = json!({
        "serviceName": "guardduty",
        "detectorId": "vigil",
        "featureName": feature,
        "action": action,
        "count": finding.count,
        "archived": finding.archived,
        "resourceRole": "TARGET",
        "eventFirstSeen": format_rfc3339_millis(finding.event_first_seen_micros),
        "eventLastSeen": format_rfc3339_millis(finding.event_last_seen_micros),
        "additionalInfo": {"type": "default", "value": Value::Object(additional).to_string()},
    });
    if !detection.threat_intel.is_empty()
        && let Some(object) = service.as_object_mut()
    {
        object.insert(
                "evidence".into(),
                json!({"threatIntelligenceDetails": detection.threat_intel.iter().map(|found| json!({
                    "threatListName": found.list_name, "threatNames": [found.entry], "threatFileSha256": found.file_sha256,
                })).collect::<Vec<_>>()}),
            );
    }
    if let (Some(anomaly), Some(object)) = (anomaly, service.as_object_mut()) {
        object.insert("detection".into(), anomaly);
    }
    // Runtime findings have no API call: GuardDuty leaves `action` out rather than empty.
    if let Some(object) = service.as_object_mut()
        && object
            .get("action")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        object.remove("action");
    }
    if let (Some(runtime), Some(object)) = (&detection.runtime, service.as_object_mut()) {
        if let Some(action) = runtime_action(runtime) {
            object.insert("action".into(), action);
        }
        let context: Map<String, Value> = runtime
            .context
            .iter()
            .filter(|pair| !ENDPOINT_CONTEXT.contains(&pair.key.as_str()))
            .map(|pair| (pair.key.clone(), json!(pair.value)))
            .collect();
        let mut process = process_json(&runtime.process);
        if let Some(process) = process.as_object_mut() {
            process.insert(
                "lineage".into(),
                runtime.lineage.iter().map(process_json).collect(),
            );
        }
        object.insert(
            "runtimeDetails".into(),
            json!({"process": process, "context": context}),
        );
    }
    service
}
