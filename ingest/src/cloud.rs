//! The envelopes AKS and GKE deliver audit events in, opened down to an `audit.k8s.io` Event:
//!
//! - Azure Monitor diagnostic records (AKS): `category` `kube-audit` or `kube-audit-admin`, the
//!   Event as a JSON string (or object) in `properties.log`, the cluster at the end of `resourceId`
//!   (`.../managedClusters/NAME`). One record, or an Event Hub batch `{"records": [...]}` (read by the
//!   reader, which hands each record here). Records of other categories (the API server's own log,
//!   `guard`, the controller manager) are counted as skipped.
//! - Google Cloud Audit Logs entries (GKE): `protoPayload` of type `AuditLog` with `methodName`
//!   (`io.k8s.core.v1.pods.exec.create`), `resourceName` (`core/v1/namespaces/NS/pods/NAME/exec`),
//!   `authenticationInfo.principalEmail`, `requestMetadata.callerIp` and `callerSuppliedUserAgent`,
//!   `status` (a `google.rpc.Status`), `request` and `response`; the cluster in
//!   `resource.labels.cluster_name`. Rewritten as the Event it records and read like any other.
//! - Pub/Sub messages (a push request's `message`, a pull response's `receivedMessages[]`), whose
//!   base64 `data` is any of the shapes Vigil reads.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::reader::{Origin, handle_document};
use crate::{Ingested, Ingestor, RejectReason, Rejection, SkipReason};

/// The diagnostic categories that carry audit events.
const AZURE_AUDIT_CATEGORIES: [&str; 2] = ["kube-audit", "kube-audit-admin"];

#[derive(Deserialize)]
struct AzureRecord<'a> {
    #[serde(borrow)]
    category: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, alias = "Properties")]
    properties: Option<AzureProperties<'a>>,
    #[serde(borrow, rename = "resourceId", alias = "ResourceId")]
    resource_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    time: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AzureProperties<'a> {
    #[serde(borrow)]
    log: Option<&'a RawValue>,
}

/// `.../providers/Microsoft.ContainerService/managedClusters/NAME`: NAME, lower-cased (Azure writes
/// resource ids in upper case in its diagnostic records; resource names are case-insensitive).
fn azure_cluster(resource_id: &str) -> Option<String> {
    let lower = resource_id.to_ascii_lowercase();
    let (_, rest) = lower.split_once("/managedclusters/")?;
    let name = rest.split('/').next().filter(|name| !name.is_empty())?;
    Some(name.to_owned())
}

pub(crate) fn azure_record(
    ingestor: &mut Ingestor,
    text: &str,
    fallback_time: Option<i64>,
    origin: Origin<'_>,
    depth: u8,
    out: &mut dyn FnMut(Ingested),
) {
    let record = match serde_json::from_str::<AzureRecord<'_>>(text) {
        Ok(record) => record,
        Err(error) => {
            let rejection = Rejection::new(
                RejectReason::InvalidEvent,
                format!("not a valid Azure Monitor diagnostic record: {error}"),
            );
            ingestor.reject(rejection, out);
            return;
        }
    };
    let category = record.category.as_deref().unwrap_or_default();
    if !AZURE_AUDIT_CATEGORIES
        .iter()
        .any(|audit| audit.eq_ignore_ascii_case(category))
    {
        ingestor.skip(SkipReason::OtherLogCategory);
        return;
    }
    let Some(log) = record.properties.and_then(|properties| properties.log) else {
        let rejection = Rejection::new(
            RejectReason::InvalidEvent,
            "Azure Monitor kube-audit record has no properties.log",
        );
        ingestor.reject(rejection, out);
        return;
    };
    let cluster = record.resource_id.as_deref().and_then(azure_cluster);
    let time = record
        .time
        .as_deref()
        .and_then(vigil_schemas::time::parse_timestamp)
        .map(|(micros, _)| micros)
        .or(fallback_time);
    let inner = origin.within(cluster.as_deref(), "azure");
    // The Event is a JSON string in the record (an object in some exports).
    match serde_json::from_str::<String>(log.get()) {
        Ok(event) => handle_document(ingestor, &event, time, inner, depth + 1, out),
        Err(_) => handle_document(ingestor, log.get(), time, inner, depth + 1, out),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GcpEntry {
    proto_payload: GcpAuditLog,
    insert_id: Option<String>,
    timestamp: Option<String>,
    receive_timestamp: Option<String>,
    resource: Option<GcpResource>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct GcpResource {
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GcpAuditLog {
    method_name: Option<String>,
    resource_name: Option<String>,
    authentication_info: Option<GcpAuthentication>,
    request_metadata: Option<GcpRequestMetadata>,
    status: Option<GcpStatus>,
    #[serde(default)]
    authorization_info: Vec<GcpAuthorization>,
    request: Option<Value>,
    response: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GcpAuthentication {
    principal_email: Option<String>,
    principal_subject: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GcpRequestMetadata {
    caller_ip: Option<String>,
    caller_supplied_user_agent: Option<String>,
}

#[derive(Deserialize)]
struct GcpStatus {
    code: Option<i64>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct GcpAuthorization {
    granted: Option<bool>,
}

/// A `google.rpc.Code` as the HTTP status the API server answered with.
fn http_status(code: i64) -> i64 {
    match code {
        0 => 200,
        1 => 499,
        3 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        9 => 422,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

/// What a request's resource name and method name say: API group and version, namespace, resource,
/// name and subresource, and the verb.
#[derive(Debug, Default, PartialEq, Eq)]
struct GcpTarget {
    api_group: Option<String>,
    api_version: Option<String>,
    namespace: Option<String>,
    resource: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
    verb: Option<String>,
}

fn is_api_version(part: &str) -> bool {
    let Some(rest) = part.strip_prefix('v') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let tail = rest.get(digits..).unwrap_or_default();
    digits > 0
        && (tail.is_empty()
            || ["alpha", "beta"].iter().any(|stage| {
                tail.strip_prefix(stage)
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            }))
}

/// `core/v1/namespaces/NS/pods/NAME/exec`, `rbac.authorization.k8s.io/v1/clusterrolebindings/NAME`,
/// `core/v1/namespaces/NS` (a namespace itself), with the verb the last part of `methodName`
/// (`io.k8s.core.v1.pods.exec.create`), whose middle names the resource where the resource name
/// says too little.
fn gcp_target(resource_name: Option<&str>, method_name: Option<&str>) -> GcpTarget {
    let mut target = GcpTarget::default();
    let method: Vec<&str> = method_name
        .map(|m| m.split('.').collect())
        .unwrap_or_default();
    target.verb = method.last().map(|verb| (*verb).to_owned());
    if let Some(name) = resource_name {
        let parts: Vec<&str> = name.split('/').filter(|part| !part.is_empty()).collect();
        if let Some(version_at) = parts.iter().position(|part| is_api_version(part)) {
            let group = parts
                .get(..version_at)
                .map(|g| g.join("/"))
                .unwrap_or_default();
            target.api_group = (!group.is_empty() && group != "core").then_some(group);
            target.api_version = parts.get(version_at).map(|v| (*v).to_owned());
            let mut rest = parts.get(version_at + 1..).unwrap_or_default();
            if let [first, namespace, tail @ ..] = rest
                && *first == "namespaces"
                && !tail.is_empty()
                && !matches!(tail, ["status" | "finalize"])
            {
                target.namespace = Some((*namespace).to_owned());
                rest = tail;
            }
            let owned = |index: usize| rest.get(index).map(|part| (*part).to_owned());
            target.resource = owned(0);
            target.name = owned(1);
            target.subresource = owned(2);
        }
    }
    if target.resource.is_none() {
        // `io.k8s.GROUP...VERSION.RESOURCE[.SUBRESOURCE].VERB`
        if let Some(version_at) = method.iter().position(|part| is_api_version(part)) {
            let middle = method
                .get(version_at + 1..method.len().saturating_sub(1))
                .unwrap_or_default();
            target.api_version = method.get(version_at).map(|v| (*v).to_owned());
            target.resource = middle.first().map(|r| (*r).to_owned());
            target.subresource = middle.get(1).map(|s| (*s).to_owned());
        }
    }
    target
}

/// A Cloud Audit Logs object carries its type in `@type` (`core.k8s.io/v1.Pod`); the Kubernetes
/// object it is has `kind` and `apiVersion`, which are filled in from it where missing.
fn gcp_object(mut value: Value) -> Value {
    if let Value::Object(object) = &mut value {
        let type_url = object
            .get("@type")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(type_url) = type_url
            && let Some((group_version, kind)) = type_url.rsplit_once('.')
        {
            object
                .entry("kind")
                .or_insert_with(|| Value::String(kind.to_owned()));
            let api_version = match group_version.split_once('/') {
                Some(("core.k8s.io", version)) => version.to_owned(),
                Some((group, version)) => {
                    let group = group.strip_suffix(".k8s.io").unwrap_or(group);
                    format!("{group}/{version}")
                }
                None => group_version.to_owned(),
            };
            object
                .entry("apiVersion")
                .or_insert_with(|| Value::String(api_version));
        }
        object.remove("@type");
    }
    value
}

/// The `audit.k8s.io/v1` Event a Cloud Audit Logs entry records.
fn gcp_event(entry: GcpEntry) -> (Value, Option<String>) {
    let log = entry.proto_payload;
    let target = gcp_target(log.resource_name.as_deref(), log.method_name.as_deref());
    let authentication = log.authentication_info;
    let username = authentication
        .as_ref()
        .and_then(|auth| {
            auth.principal_email
                .clone()
                .or(auth.principal_subject.clone())
        })
        .unwrap_or_default();
    let metadata = log.request_metadata;
    let denied = log
        .authorization_info
        .iter()
        .any(|authorization| authorization.granted == Some(false));
    let (code, message) = match log.status {
        Some(GcpStatus {
            code: Some(code),
            message,
        }) if code != 0 => (http_status(code), message),
        _ if denied => (403, None),
        _ => (200, None),
    };
    let mut object_ref = Map::new();
    for (key, value) in [
        ("resource", &target.resource),
        ("subresource", &target.subresource),
        ("namespace", &target.namespace),
        ("name", &target.name),
        ("apiGroup", &target.api_group),
        ("apiVersion", &target.api_version),
    ] {
        if let Some(value) = value {
            object_ref.insert(key.to_owned(), Value::String(value.clone()));
        }
    }
    let mut event = json!({
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": if log.request.is_some() || log.response.is_some() { "RequestResponse" } else { "Metadata" },
        "stage": "ResponseComplete",
        "verb": target.verb.unwrap_or_default(),
        "user": { "username": username },
        "sourceIPs": metadata.as_ref().and_then(|m| m.caller_ip.clone()).into_iter().collect::<Vec<_>>(),
        "objectRef": Value::Object(object_ref),
        "responseStatus": { "code": code },
    });
    let fields = [
        ("auditID", entry.insert_id.map(Value::String)),
        (
            "userAgent",
            metadata
                .and_then(|m| m.caller_supplied_user_agent)
                .map(Value::String),
        ),
        (
            "stageTimestamp",
            entry
                .timestamp
                .or(entry.receive_timestamp)
                .map(Value::String),
        ),
        ("requestObject", log.request.map(gcp_object)),
        ("responseObject", log.response.map(gcp_object)),
    ];
    if let Value::Object(map) = &mut event {
        for (key, value) in fields {
            if let Some(value) = value {
                map.insert(key.to_owned(), value);
            }
        }
        if let Some(message) = message
            && let Some(Value::Object(status)) = map.get_mut("responseStatus")
        {
            status.insert("message".into(), Value::String(message));
        }
        let annotations: Map<String, Value> = entry
            .labels
            .unwrap_or_default()
            .into_iter()
            .filter(|(key, _)| key.starts_with("authorization.k8s.io/"))
            .map(|(key, value)| (key, Value::String(value)))
            .collect();
        if !annotations.is_empty() {
            map.insert("annotations".into(), Value::Object(annotations));
        }
    }
    let cluster = entry
        .resource
        .and_then(|resource| resource.labels)
        .and_then(|labels| labels.get("cluster_name").cloned());
    (event, cluster)
}

pub(crate) fn gcp_entry(
    ingestor: &mut Ingestor,
    text: &str,
    origin: Origin<'_>,
    depth: u8,
    out: &mut dyn FnMut(Ingested),
) {
    let entry = match serde_json::from_str::<GcpEntry>(text) {
        Ok(entry) => entry,
        Err(error) => {
            let rejection = Rejection::new(
                RejectReason::InvalidEvent,
                format!("not a valid Cloud Audit Logs entry: {error}"),
            );
            ingestor.reject(rejection, out);
            return;
        }
    };
    if entry.proto_payload.method_name.is_none() && entry.proto_payload.resource_name.is_none() {
        let rejection = Rejection::new(
            RejectReason::InvalidEvent,
            "Cloud Audit Logs entry has neither protoPayload.methodName nor resourceName",
        );
        ingestor.reject(rejection, out);
        return;
    }
    let (event, cluster) = gcp_event(entry);
    let inner = origin.within(cluster.as_deref(), "gcp");
    handle_document(ingestor, &event.to_string(), None, inner, depth + 1, out);
}

#[derive(Deserialize)]
struct PubsubMessage {
    data: Option<String>,
}

pub(crate) fn pubsub_message(
    ingestor: &mut Ingestor,
    text: &str,
    origin: Origin<'_>,
    depth: u8,
    out: &mut dyn FnMut(Ingested),
) {
    // A pull response wraps each message once more: `{"ackId": ..., "message": {...}}`.
    #[derive(Deserialize)]
    struct Received<'a> {
        #[serde(borrow)]
        message: Option<&'a RawValue>,
    }
    if let Ok(Received {
        message: Some(inner),
    }) = serde_json::from_str::<Received<'_>>(text)
    {
        return pubsub_message(ingestor, inner.get(), origin, depth + 1, out);
    }
    let data = serde_json::from_str::<PubsubMessage>(text)
        .ok()
        .and_then(|message| message.data);
    let Some(data) = data else {
        let rejection = Rejection::new(RejectReason::UnknownShape, "Pub/Sub message without data");
        ingestor.reject(rejection, out);
        return;
    };
    let decoded = match base64::engine::general_purpose::STANDARD.decode(data.trim()) {
        Ok(decoded) => decoded,
        Err(error) => {
            let rejection = Rejection::new(
                RejectReason::InvalidEvent,
                format!("Pub/Sub message data is not base64: {error}"),
            );
            ingestor.reject(rejection, out);
            return;
        }
    };
    match std::str::from_utf8(&decoded) {
        Ok(text) => handle_document(ingestor, text, None, origin, depth + 1, out),
        Err(_) => ingestor.reject(
            Rejection::new(RejectReason::NotUtf8, "Pub/Sub message data is not UTF-8"),
            out,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_and_method_names_say_what_was_asked() {
        let exec = gcp_target(
            Some("core/v1/namespaces/shop/pods/web-1/exec"),
            Some("io.k8s.core.v1.pods.exec.create"),
        );
        assert_eq!(exec.namespace.as_deref(), Some("shop"));
        assert_eq!(exec.resource.as_deref(), Some("pods"));
        assert_eq!(exec.name.as_deref(), Some("web-1"));
        assert_eq!(exec.subresource.as_deref(), Some("exec"));
        assert_eq!(exec.verb.as_deref(), Some("create"));
        assert_eq!(exec.api_group, None);

        let binding = gcp_target(
            Some("rbac.authorization.k8s.io/v1/clusterrolebindings/ops"),
            Some("io.k8s.authorization.rbac.v1.clusterrolebindings.create"),
        );
        assert_eq!(
            binding.api_group.as_deref(),
            Some("rbac.authorization.k8s.io")
        );
        assert_eq!(binding.resource.as_deref(), Some("clusterrolebindings"));
        assert_eq!(binding.name.as_deref(), Some("ops"));
        assert_eq!(binding.namespace, None);

        let namespace = gcp_target(
            Some("core/v1/namespaces/shop"),
            Some("io.k8s.core.v1.namespaces.delete"),
        );
        assert_eq!(namespace.resource.as_deref(), Some("namespaces"));
        assert_eq!(namespace.name.as_deref(), Some("shop"));

        let listed = gcp_target(Some("core/v1/secrets"), Some("io.k8s.core.v1.secrets.list"));
        assert_eq!(listed.resource.as_deref(), Some("secrets"));
        assert_eq!(listed.name, None);

        let from_method = gcp_target(None, Some("io.k8s.core.v1.pods.exec.get"));
        assert_eq!(from_method.resource.as_deref(), Some("pods"));
        assert_eq!(from_method.subresource.as_deref(), Some("exec"));
        assert_eq!(from_method.verb.as_deref(), Some("get"));
    }

    #[test]
    fn api_versions_are_told_from_names() {
        for version in ["v1", "v2", "v1beta1", "v2alpha3"] {
            assert!(is_api_version(version), "{version}");
        }
        for other in ["v", "vx", "v1beta", "view", "pods", "velero"] {
            assert!(!is_api_version(other), "{other}");
        }
    }

    #[test]
    fn azure_resource_ids_name_the_cluster() {
        assert_eq!(
            azure_cluster(
                "/SUBSCRIPTIONS/0000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/SHOP-AKS"
            ),
            Some("shop-aks".to_owned())
        );
        assert_eq!(azure_cluster("/subscriptions/0000/resourceGroups/rg"), None);
    }

    #[test]
    fn rpc_codes_map_to_http_statuses() {
        assert_eq!(http_status(0), 200);
        assert_eq!(http_status(7), 403);
        assert_eq!(http_status(16), 401);
        assert_eq!(http_status(5), 404);
        assert_eq!(http_status(99), 500);
    }
}
