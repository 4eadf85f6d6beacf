//! One raw audit Event to one [`AuditEvent`]: the fields detection reads, the workload, role, binding,
//! service and ConfigMap facts pulled out of the request and response objects, and the objects
//! themselves kept only within a size bound.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use vigil_schemas::time::TimeForm;
use vigil_schemas::{
    AuditEvent, ContainerSpec, IngressSpec, KeyValue, ObjectRef, PolicyRule, RoleBindingSpec,
    RoleSpec, ServicePort, ServiceSpec, Subject, UserInfo, Volume, VolumeMount, WorkloadSpec,
};

use crate::raw::{
    PodLike, PodLikeSpec, RawConfigMap, RawContainer, RawObject, RawRole, RawRoleBinding,
    RawService, RawTime, RawUser,
};
use crate::reader::Origin;
use crate::{Limits, RejectReason, Rejection, Tolerance};

/// Longest `responseStatus.message` and container command element kept.
const MAX_TEXT: usize = 1024;

/// Resources whose objects carry a pod spec, with the `kind` their objects have.
const WORKLOAD_RESOURCES: [(&str, &str); 8] = [
    ("pods", "Pod"),
    ("deployments", "Deployment"),
    ("daemonsets", "DaemonSet"),
    ("statefulsets", "StatefulSet"),
    ("replicasets", "ReplicaSet"),
    ("jobs", "Job"),
    ("cronjobs", "CronJob"),
    ("replicationcontrollers", "ReplicationController"),
];

/// Substrings (lower-cased) of a ConfigMap key or value that mean it holds a credential.
const CREDENTIAL_MARKERS: [&str; 10] = [
    "aws_access_key_id",
    "aws-access-key-id",
    "aws_s3_access_key_id",
    "aws-s3-access-key-id",
    "aws_secret_access_key",
    "aws-secret-access-key",
    "password",
    "passphrase",
    "private key-----",
    "client_secret",
];

fn text(value: Option<Cow<'_, str>>) -> Option<String> {
    value.map(Cow::into_owned).filter(|value| !value.is_empty())
}

use crate::json::truncated as bounded;

fn user(raw: RawUser<'_>) -> UserInfo {
    UserInfo {
        username: raw.username.map(Cow::into_owned).unwrap_or_default(),
        uid: text(raw.uid),
        groups: raw
            .groups
            .unwrap_or_default()
            .into_iter()
            .map(Cow::into_owned)
            .collect(),
        session_names: raw
            .extra
            .and_then(|extra| extra.session_name)
            .unwrap_or_default()
            .into_iter()
            .map(Cow::into_owned)
            .collect(),
    }
}

/// What one raw Event becomes; `fallback_time` is the envelope's time (CloudWatch ingestion time)
/// for events that carry none of their own.
pub(crate) fn normalize(
    raw: RawObject<'_>,
    raw_json: &str,
    fallback_time: Option<i64>,
    origin: Origin<'_>,
    limits: &Limits,
    tolerated: &mut Vec<Tolerance>,
) -> Result<AuditEvent, Rejection> {
    let own_time = [
        &raw.stage_timestamp,
        &raw.request_received_timestamp,
        &raw.timestamp,
        &raw.metadata
            .as_ref()
            .and_then(|meta| meta.creation_timestamp.clone()),
    ]
    .into_iter()
    .find_map(|stamp| stamp.as_ref().and_then(RawTime::micros));
    let event_time_micros = match own_time {
        Some((micros, form)) => {
            match form {
                TimeForm::Rfc3339 => {}
                TimeForm::Lenient => tolerated.push(Tolerance::TimeLenient),
                TimeForm::Epoch => tolerated.push(Tolerance::TimeEpoch),
            }
            micros
        }
        None => {
            let inferred = fallback_time.ok_or_else(|| {
                Rejection::new(
                    RejectReason::InvalidEvent,
                    "audit event has no parseable stageTimestamp, requestReceivedTimestamp, timestamp or metadata.creationTimestamp",
                )
            })?;
            tolerated.push(Tolerance::TimeInferred);
            inferred
        }
    };
    let verb = text(raw.verb)
        .ok_or_else(|| Rejection::new(RejectReason::InvalidEvent, "audit event has no verb"))?;
    let object_ref = raw.object_ref.map(|object| ObjectRef {
        resource: text(object.resource),
        subresource: text(object.subresource),
        namespace: text(object.namespace),
        name: text(object.name),
        api_group: text(object.api_group),
        api_version: text(object.api_version),
    });
    let request_uri = match text(raw.request_uri) {
        Some(uri) => uri,
        None => {
            let uri = object_ref.as_ref().and_then(uri_of).ok_or_else(|| {
                Rejection::new(
                    RejectReason::InvalidEvent,
                    "audit event has neither a requestURI nor an objectRef naming its resource",
                )
            })?;
            tolerated.push(Tolerance::RequestUriInferred);
            uri
        }
    };
    if raw.stage.is_none() {
        tolerated.push(Tolerance::StageInferred);
    }
    let audit_id = match text(raw.audit_id) {
        Some(id) => id,
        None => content_id(raw_json),
    };
    let (status_code, status_reason, status_message) = match raw.response_status {
        Some(status) => (
            status.code,
            text(status.reason),
            text(status.message).map(|message| bounded(message, MAX_TEXT)),
        ),
        None => (None, None, None),
    };
    let (authz_decision, authz_reason) = match raw.annotations {
        Some(annotations) => (text(annotations.decision), text(annotations.reason)),
        None => (None, None),
    };

    let mut event = AuditEvent {
        audit_id,
        stage: text(raw.stage).unwrap_or_else(|| "ResponseComplete".to_owned()),
        level: text(raw.level).unwrap_or_default(),
        event_time_micros,
        cluster_hint: origin.cluster.map(str::to_owned),
        cloud_provider: origin.provider.map(str::to_owned),
        verb,
        request_uri,
        user: raw.user.map(user).unwrap_or_default(),
        impersonated_user: raw.impersonated_user.map(user),
        source_ips: raw
            .source_ips
            .unwrap_or_default()
            .into_iter()
            .map(Cow::into_owned)
            .collect(),
        user_agent: text(raw.user_agent),
        object_ref,
        status_code,
        status_reason,
        status_message,
        authz_decision,
        authz_reason,
        ..AuditEvent::default()
    };
    event.exec_command = exec_command(&event, raw.request_object);
    // A JSON Patch body (`[{"op": "replace", "path": "/spec/type", "value": "LoadBalancer"}]`) says
    // what the object becomes in operations; applied to an empty object it says it in the object's
    // own shape, which every extraction below reads like a merge patch.
    let patched = (event.verb == "patch")
        .then_some(raw.request_object)
        .flatten()
        .filter(|body| body.get().trim_start().starts_with('['))
        .and_then(|body| json_patch_as_object(body.get()));
    let request = patched.as_deref().or(raw.request_object);
    extract_objects(&mut event, request, raw.response_object);
    for (slot, object) in [
        (&mut event.request_object, raw.request_object),
        (&mut event.response_object, raw.response_object),
    ] {
        if let Some(object) = object.map(RawValue::get).filter(|json| *json != "null") {
            if object.len() <= limits.max_object_bytes {
                *slot = Some(object.to_owned());
            } else {
                event.objects_truncated = true;
            }
        }
    }
    Ok(event)
}

/// Longest exec command kept, in elements.
const MAX_COMMAND_PARTS: usize = 64;

/// The command of an exec: the `command=` parameters of the URI, else a `PodExecOptions` body.
fn exec_command(event: &AuditEvent, request: Option<&RawValue>) -> Vec<String> {
    let is_exec = event
        .object_ref
        .as_ref()
        .is_some_and(|object| object.subresource.as_deref() == Some("exec"));
    if !is_exec {
        return Vec::new();
    }
    let from_uri: Vec<String> = event
        .request_uri
        .split_once('?')
        .map(|(_, query)| {
            query
                .split('&')
                .filter_map(|pair| pair.strip_prefix("command="))
                .take(MAX_COMMAND_PARTS)
                .map(|value| bounded(query_decode(value), MAX_TEXT))
                .collect()
        })
        .unwrap_or_default();
    if !from_uri.is_empty() {
        return from_uri;
    }
    #[derive(Deserialize)]
    struct ExecOptions {
        #[serde(default)]
        command: Vec<String>,
    }
    request
        .and_then(|body| serde_json::from_str::<ExecOptions>(body.get()).ok())
        .map(|options| {
            options
                .command
                .into_iter()
                .take(MAX_COMMAND_PARTS)
                .map(|part| bounded(part, MAX_TEXT))
                .collect()
        })
        .unwrap_or_default()
}

/// Decodes one query-string value: `+` is a space, `%2F` a slash. Malformed escapes stay as written.
pub(crate) fn query_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok());
        match (byte, hex.and_then(|hex| u8::from_str_radix(hex, 16).ok())) {
            (b'%', Some(value)) => {
                decoded.push(value);
                index += 3;
            }
            (b'+', _) => {
                decoded.push(b' ');
                index += 1;
            }
            (other, _) => {
                decoded.push(other);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Largest array index a JSON Patch path may create: padding beyond it is an attack on memory.
const MAX_PATCH_INDEX: usize = 256;

/// A JSON Patch (RFC 6902) applied to an empty object: the `add` and `replace` operations become
/// the fields they set, arrays created (and padded with empty objects) where a path has an index or
/// `-`. `remove`, `move`, `copy` and `test` say nothing about what the object gains. `None` when the
/// body is not a patch.
fn json_patch_as_object(body: &str) -> Option<Box<RawValue>> {
    #[derive(Deserialize)]
    struct Operation {
        op: String,
        path: String,
        value: Option<serde_json::Value>,
    }
    let operations = serde_json::from_str::<Vec<Operation>>(body).ok()?;
    let mut object = serde_json::Value::Object(serde_json::Map::new());
    for operation in operations {
        if !matches!(operation.op.as_str(), "add" | "replace") {
            continue;
        }
        let Some(value) = operation.value else {
            continue;
        };
        let segments: Vec<String> = operation
            .path
            .split('/')
            .skip(1)
            .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
            .collect();
        set_path(&mut object, &segments, value);
    }
    serde_json::value::to_raw_value(&object).ok()
}

fn set_path(target: &mut serde_json::Value, segments: &[String], value: serde_json::Value) {
    use serde_json::Value;
    let Some((first, rest)) = segments.split_first() else {
        *target = value;
        return;
    };
    let index = if first == "-" {
        Some(usize::MAX)
    } else {
        first.parse::<usize>().ok()
    };
    if let Some(index) = index {
        if !target.is_array() {
            *target = Value::Array(Vec::new());
        }
        let Value::Array(items) = target else {
            return;
        };
        let index = if index == usize::MAX {
            items.len()
        } else {
            index
        };
        if index > MAX_PATCH_INDEX {
            return;
        }
        while items.len() <= index {
            items.push(Value::Object(serde_json::Map::new()));
        }
        if let Some(slot) = items.get_mut(index) {
            set_path(slot, rest, value);
        }
        return;
    }
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(map) = target {
        let slot = map.entry(first.clone()).or_insert(Value::Null);
        set_path(slot, rest, value);
    }
}

/// The request path an object reference stands for, for events exported without their `requestURI`:
/// `/api/v1/namespaces/NS/pods/NAME/exec`, `/apis/GROUP/VERSION/...` for named groups.
fn uri_of(object: &ObjectRef) -> Option<String> {
    let resource = object.resource.as_deref()?;
    let version = object.api_version.as_deref().unwrap_or("v1");
    let mut uri = match object.api_group.as_deref() {
        None | Some("") | Some("core") => format!("/api/{version}"),
        Some(group) => format!("/apis/{group}/{version}"),
    };
    if let Some(namespace) = object.namespace.as_deref() {
        uri.push_str("/namespaces/");
        uri.push_str(namespace);
    }
    uri.push('/');
    uri.push_str(resource);
    if let Some(name) = object.name.as_deref() {
        uri.push('/');
        uri.push_str(name);
        if let Some(subresource) = object.subresource.as_deref() {
            uri.push('/');
            uri.push_str(subresource);
        }
    }
    Some(uri)
}

/// A stable id for an event that has no `auditID`, so that a redelivery of it is still a duplicate.
fn content_id(raw_json: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(raw_json.as_bytes());
    let mut id = String::with_capacity(7 + 32);
    id.push_str("sha256:");
    for byte in digest.iter().take(16) {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// The object to read facts from: the response when it is the object itself (it carries the
/// server-filled name, namespace, uid and defaults), else the request.
fn pick<'a>(
    request: Option<&'a RawValue>,
    response: Option<&'a RawValue>,
    kind: &str,
) -> Option<&'a RawValue> {
    #[derive(Deserialize)]
    struct KindOnly<'b> {
        #[serde(borrow)]
        kind: Option<Cow<'b, str>>,
    }
    let is_kind = |value: &&RawValue| {
        serde_json::from_str::<KindOnly<'_>>(value.get())
            .ok()
            .and_then(|object| object.kind)
            .is_some_and(|found| found == kind)
    };
    response
        .filter(is_kind)
        .or(request.filter(|value| value.get() != "null"))
}

fn extract_objects(
    event: &mut AuditEvent,
    request: Option<&RawValue>,
    response: Option<&RawValue>,
) {
    let Some(object_ref) = event.object_ref.as_ref() else {
        return;
    };
    if request.is_none() && response.is_none() {
        return;
    }
    let resource = object_ref.resource.as_deref().unwrap_or_default();
    let subresource = object_ref.subresource.as_deref();
    let namespace = object_ref.namespace.clone();
    let name = object_ref.name.clone();
    let writes = matches!(event.verb.as_str(), "create" | "update" | "patch");
    if !writes {
        return;
    }
    // Parse failures of an embedded object only lose the extracted facts, not the event: a patch body
    // may be a JSON patch array, which carries no object shape.
    if let Some((_, kind)) = WORKLOAD_RESOURCES
        .iter()
        .find(|(name, _)| *name == resource)
    {
        if (subresource.is_none() || subresource == Some("ephemeralcontainers"))
            && let Some(object) = pick(request, response, kind)
                .and_then(|value| serde_json::from_str::<PodLike>(value.get()).ok())
        {
            event.workload = Some(workload(object, kind, namespace, name));
        }
        return;
    }
    if subresource.is_some() {
        return;
    }
    match resource {
        "rolebindings" | "clusterrolebindings" => {
            let kind = if resource == "rolebindings" {
                "RoleBinding"
            } else {
                "ClusterRoleBinding"
            };
            if let Some(binding) = pick(request, response, kind)
                .and_then(|value| serde_json::from_str::<RawRoleBinding>(value.get()).ok())
            {
                event.role_binding = Some(role_binding(binding, kind, namespace, name));
            }
        }
        "roles" | "clusterroles" => {
            let kind = if resource == "roles" {
                "Role"
            } else {
                "ClusterRole"
            };
            if let Some(role) = pick(request, response, kind)
                .and_then(|value| serde_json::from_str::<RawRole>(value.get()).ok())
            {
                event.role = Some(role_spec(role, kind, namespace, name));
            }
        }
        "services" => {
            if let Some(service) = pick(request, response, "Service")
                .and_then(|value| serde_json::from_str::<RawService>(value.get()).ok())
            {
                event.service = Some(service_spec(service, namespace, name));
            }
        }
        "selfsubjectaccessreviews" | "subjectaccessreviews" | "localsubjectaccessreviews" => {
            event.permission_checked = request
                .and_then(|value| {
                    serde_json::from_str::<crate::raw::RawAccessReview>(value.get()).ok()
                })
                .and_then(|review| review.spec)
                .and_then(|spec| permission_asked(&spec));
        }
        "ingresses" => {
            if let Some(ingress) = pick(request, response, "Ingress")
                .and_then(|value| serde_json::from_str::<crate::raw::RawIngress>(value.get()).ok())
            {
                event.ingress = Some(ingress_spec(ingress, namespace, name));
            }
        }
        "configmaps" => {
            if let Some(config_map) = pick(request, response, "ConfigMap")
                .and_then(|value| serde_json::from_str::<RawConfigMap>(value.get()).ok())
            {
                event.config_map_credential_keys = credential_keys(&config_map);
            }
        }
        _ => {}
    }
}

/// What an access review asked, in a few words: `create clusterrolebindings`, `get secrets in
/// kube-system`, `create pods/exec in shop`, `get /metrics` (a non-resource path); `*` for a part
/// left empty. Bounded: each part is cut to 63 characters.
fn permission_asked(spec: &crate::raw::RawAccessReviewSpec) -> Option<String> {
    let part = |value: &Option<String>| -> String {
        value
            .as_deref()
            .filter(|text| !text.is_empty())
            .unwrap_or("*")
            .chars()
            .take(63)
            .collect()
    };
    if let Some(attributes) = &spec.resource_attributes {
        let mut asked = format!("{} {}", part(&attributes.verb), part(&attributes.resource));
        if let Some(subresource) = attributes.subresource.as_ref().filter(|s| !s.is_empty()) {
            asked.push('/');
            asked.push_str(&part(&Some(subresource.clone())));
        }
        if let Some(namespace) = attributes.namespace.as_ref().filter(|n| !n.is_empty()) {
            asked.push_str(" in ");
            asked.push_str(&part(&Some(namespace.clone())));
        }
        return Some(asked);
    }
    spec.non_resource_attributes
        .as_ref()
        .map(|attributes| format!("{} {}", part(&attributes.verb), part(&attributes.path)))
}

fn name_of(meta: &crate::raw::K8sMeta) -> Option<String> {
    meta.name
        .clone()
        .or_else(|| meta.generate_name.clone())
        .filter(|name| !name.is_empty())
}

fn workload(
    object: PodLike,
    kind: &str,
    namespace: Option<String>,
    name: Option<String>,
) -> WorkloadSpec {
    let owner = object
        .metadata
        .owner_references
        .iter()
        .find(|owner| owner.controller == Some(true))
        .or(object.metadata.owner_references.first());
    let mut spec = WorkloadSpec {
        kind: object.kind.clone().unwrap_or_else(|| kind.to_owned()),
        name: name_of(&object.metadata).or(name),
        namespace: object.metadata.namespace.clone().or(namespace),
        uid: object.metadata.uid.clone(),
        owner_kind: owner.map(|owner| owner.kind.clone()),
        owner_name: owner.map(|owner| owner.name.clone()),
        ..WorkloadSpec::default()
    };
    let Some(outer) = object.spec else {
        return spec;
    };
    // The pod spec is the object's own (Pod), its template's, or a CronJob's job template's template.
    let pod_spec: PodLikeSpec = if let Some(template) = outer.template {
        template.spec.unwrap_or_default()
    } else if let Some(job) = outer.job_template {
        job.spec
            .and_then(|job| job.template)
            .and_then(|template| template.spec)
            .unwrap_or_default()
    } else {
        outer
    };
    spec.service_account = pod_spec.service_account_name.or(pod_spec.service_account);
    spec.node_name = pod_spec.node_name;
    spec.host_network = pod_spec.host_network.unwrap_or(false);
    spec.host_pid = pod_spec.host_pid.unwrap_or(false);
    spec.host_ipc = pod_spec.host_ipc.unwrap_or(false);
    let containers = pod_spec
        .containers
        .into_iter()
        .map(|container| (container, false));
    let init = pod_spec
        .init_containers
        .into_iter()
        .chain(pod_spec.ephemeral_containers)
        .map(|container| (container, true));
    spec.containers = containers
        .chain(init)
        .map(|(container, init)| container_spec(container, init))
        .collect();
    spec.volumes = pod_spec
        .volumes
        .into_iter()
        .map(|volume| Volume {
            name: volume.name,
            host_path: volume.host_path.map(|host| host.path),
        })
        .collect();
    spec
}

fn container_spec(container: RawContainer, init: bool) -> ContainerSpec {
    let security = container.security_context.unwrap_or_default();
    ContainerSpec {
        name: container.name,
        image: container.image,
        init,
        privileged: security.privileged.unwrap_or(false),
        allow_privilege_escalation: security.allow_privilege_escalation,
        run_as_user: security.run_as_user,
        capabilities_added: security
            .capabilities
            .map(|caps| caps.add)
            .unwrap_or_default(),
        volume_mounts: container
            .volume_mounts
            .into_iter()
            .map(|mount| VolumeMount {
                name: mount.name,
                mount_path: mount.mount_path,
                read_only: mount.read_only.unwrap_or(false),
            })
            .collect(),
        command: container
            .command
            .into_iter()
            .chain(container.args)
            .take(64)
            .map(|part| bounded(part, MAX_TEXT))
            .collect(),
    }
}

fn role_binding(
    binding: RawRoleBinding,
    kind: &str,
    namespace: Option<String>,
    name: Option<String>,
) -> RoleBindingSpec {
    let role_ref = binding.role_ref.unwrap_or_default();
    RoleBindingSpec {
        kind: binding.kind.unwrap_or_else(|| kind.to_owned()),
        name: name_of(&binding.metadata).or(name),
        namespace: binding.metadata.namespace.clone().or(namespace),
        uid: binding.metadata.uid.clone(),
        role_ref_kind: role_ref.kind,
        role_ref_name: role_ref.name,
        subjects: binding
            .subjects
            .unwrap_or_default()
            .into_iter()
            .map(|subject| Subject {
                kind: subject.kind,
                name: subject.name,
                namespace: subject.namespace,
            })
            .collect(),
    }
}

fn role_spec(
    role: RawRole,
    kind: &str,
    namespace: Option<String>,
    name: Option<String>,
) -> RoleSpec {
    RoleSpec {
        kind: role.kind.unwrap_or_else(|| kind.to_owned()),
        name: name_of(&role.metadata).or(name),
        namespace: role.metadata.namespace.clone().or(namespace),
        uid: role.metadata.uid.clone(),
        aggregated: role.aggregation_rule.is_some(),
        rules: role
            .rules
            .unwrap_or_default()
            .into_iter()
            .map(|rule| PolicyRule {
                verbs: rule.verbs,
                api_groups: rule.api_groups,
                resources: rule.resources,
                resource_names: rule.resource_names,
                non_resource_urls: rule.non_resource_urls,
            })
            .collect(),
    }
}

fn key_values(map: std::collections::BTreeMap<String, String>) -> Vec<KeyValue> {
    map.into_iter()
        .map(|(key, value)| KeyValue { key, value })
        .collect()
}

fn service_spec(
    service: RawService,
    namespace: Option<String>,
    name: Option<String>,
) -> ServiceSpec {
    let spec = service.spec.unwrap_or_default();
    ServiceSpec {
        name: name_of(&service.metadata).or(name),
        namespace: service.metadata.namespace.clone().or(namespace),
        service_type: spec.service_type.unwrap_or_else(|| "ClusterIP".to_owned()),
        ports: spec
            .ports
            .into_iter()
            .map(|port| ServicePort {
                name: port.name,
                port: port.port,
                node_port: port.node_port,
                target_port: port.target_port.map(|target| match target {
                    serde_json::Value::String(name) => name,
                    other => other.to_string(),
                }),
            })
            .collect(),
        selector: key_values(spec.selector.unwrap_or_default()),
        labels: key_values(service.metadata.labels),
    }
}

fn ingress_spec(
    ingress: crate::raw::RawIngress,
    namespace: Option<String>,
    name: Option<String>,
) -> IngressSpec {
    let spec = ingress.spec.unwrap_or_default();
    let tls = spec.tls;
    IngressSpec {
        name: name_of(&ingress.metadata).or(name),
        namespace: ingress.metadata.namespace.clone().or(namespace),
        hosts: spec
            .rules
            .into_iter()
            .map(|rule| {
                rule.host
                    .filter(|host| !host.is_empty())
                    .unwrap_or_else(|| "*".to_owned())
            })
            .collect(),
        tls: tls.is_some(),
        tls_hosts: tls
            .unwrap_or_default()
            .into_iter()
            .flat_map(|entry| entry.hosts)
            .collect(),
    }
}

fn credential_keys(config_map: &RawConfigMap) -> Vec<String> {
    let Some(data) = config_map.data.as_ref() else {
        return Vec::new();
    };
    data.iter()
        .filter(|(key, value)| {
            let key = key.to_ascii_lowercase();
            let value = value.to_ascii_lowercase();
            CREDENTIAL_MARKERS
                .iter()
                .any(|marker| key.contains(marker) || value.contains(marker))
        })
        .map(|(key, _)| key.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_commands_are_decoded_from_the_query_string() {
        assert_eq!(
            query_decode("cat+%2Fvar%2Frun%2Fsecrets"),
            "cat /var/run/secrets"
        );
        assert_eq!(query_decode("100%"), "100%");
        assert_eq!(query_decode("%zz%2"), "%zz%2");
    }

    #[test]
    fn json_patches_pad_arrays_within_a_bound() {
        let made = json_patch_as_object(
            r#"[{"op": "add", "path": "/a/2/b", "value": 1}, {"op": "add", "path": "/c/99999", "value": 2}, {"op": "test", "path": "/d", "value": 3}]"#,
        )
        .map(|raw| raw.get().to_owned());
        assert_eq!(made.as_deref(), Some(r#"{"a":[{},{},{"b":1}],"c":[]}"#));
        assert!(json_patch_as_object(r#"{"spec": {}}"#).is_none());
    }
}
