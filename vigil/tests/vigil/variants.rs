//! The variation harness: every behaviour Vigil claims for the audit log, written every way the
//! API server and the clouds write it, must raise the same finding (or, where the audit level leaves
//! the object out, claim none). For each behaviour it generates the request's spellings (create,
//! update, a strategic-merge or JSON merge patch, a JSON Patch, server-side apply; RequestResponse,
//! Request and Metadata levels; `get` and `create` for exec, `list` and `watch` for reads), wraps
//! each in every envelope (a JSON line, an EventList, a pretty-printed object, a CloudWatch Logs
//! record, an Azure Monitor record and an Event Hub batch, a Cloud Audit Logs entry and a Pub/Sub
//! push message), and writes it with its fields in the usual order and reversed, once whole and
//! once without the optional fields. One `vigil scan` reads them all; each variant calls from an
//! address of its own, by which its findings are told apart.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stderr
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::{Value, json};

/// One behaviour: the request that shows it and the finding it must raise.
struct Behaviour {
    name: &'static str,
    finding: &'static str,
    /// `create` for a write (its spellings are generated), or the read or connect verb.
    verb: &'static str,
    api_group: &'static str,
    resource: &'static str,
    subresource: Option<&'static str>,
    namespace: Option<&'static str>,
    /// The object as it is after the request (for writes).
    object: Option<Value>,
    query: &'static str,
    /// The caller: `None` for a person of the variant's own.
    user: Option<&'static str>,
    /// Some verbs the behaviour is also written with (exec's `get`, a read's `watch`).
    also_verbs: &'static [&'static str],
    status: i64,
    /// The finding needs nothing from the object's body (a webhook changed is a webhook changed):
    /// Metadata-level spellings must raise it too.
    metadata_enough: bool,
}

fn pod_spec(extra: Value) -> Value {
    let mut spec =
        json!({"containers": [{"name": "app", "image": "registry.example.com/tools/app:1.4"}]});
    merge(&mut spec, extra);
    spec
}

fn merge(target: &mut Value, extra: Value) {
    match (target, extra) {
        (Value::Object(target), Value::Object(extra)) => {
            for (key, value) in extra {
                match target.get_mut(&key) {
                    Some(slot) if slot.is_object() && value.is_object() => merge(slot, value),
                    _ => {
                        target.insert(key, value);
                    }
                }
            }
        }
        (target, extra) => *target = extra,
    }
}

fn deployment(spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": "shop"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "x"}},
                    "template": {"metadata": {"labels": {"app": "x"}}, "spec": spec}}})
}

fn privileged_container() -> Value {
    json!({"containers": [{"name": "app", "image": "registry.example.com/tools/app:1.4",
                           "securityContext": {"privileged": true}}]})
}

fn behaviours() -> Vec<Behaviour> {
    let write = |name, finding, api_group, resource, namespace, object| Behaviour {
        name,
        finding,
        verb: "create",
        api_group,
        resource,
        subresource: None,
        namespace,
        object: Some(object),
        query: "",
        user: None,
        also_verbs: &[],
        status: 201,
        metadata_enough: false,
    };
    let mut all = vec![
        write(
            "privileged deployment",
            "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
            "apps",
            "deployments",
            Some("shop"),
            deployment(pod_spec(privileged_container())),
        ),
        write(
            "privileged daemonset",
            "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
            "apps",
            "daemonsets",
            Some("shop"),
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "x", "namespace": "shop"},
                   "spec": {"template": {"spec": pod_spec(privileged_container())}}}),
        ),
        write(
            "privileged statefulset",
            "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
            "apps",
            "statefulsets",
            Some("shop"),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "x", "namespace": "shop"},
                   "spec": {"serviceName": "x", "template": {"spec": pod_spec(privileged_container())}}}),
        ),
        write(
            "privileged cronjob",
            "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
            "batch",
            "cronjobs",
            Some("shop"),
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "x", "namespace": "shop"},
                   "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": pod_spec(privileged_container())}}}}}),
        ),
        write(
            "privileged job",
            "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
            "batch",
            "jobs",
            Some("shop"),
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x", "namespace": "shop"},
                   "spec": {"template": {"spec": pod_spec(privileged_container())}}}),
        ),
        write(
            "host network pod",
            "PrivilegeEscalation:Kubernetes/HostNamespaceContainer",
            "",
            "pods",
            Some("shop"),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": "shop"},
                   "spec": pod_spec(json!({"hostNetwork": true, "hostPID": true}))}),
        ),
        write(
            "root host path",
            "Persistence:Kubernetes/ContainerWithSensitiveMount",
            "apps",
            "deployments",
            Some("shop"),
            deployment(json!({
                "containers": [{"name": "app", "image": "registry.example.com/tools/app:1.4",
                                "volumeMounts": [{"name": "root", "mountPath": "/host"}]}],
                "volumes": [{"name": "root", "hostPath": {"path": "/"}}]})),
        ),
        write(
            "sys_admin capability",
            "PrivilegeEscalation:Kubernetes/ContainerWithDangerousCapabilities",
            "",
            "pods",
            Some("shop"),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": "shop"},
                   "spec": {"containers": [{"name": "app", "image": "registry.example.com/tools/app:1.4",
                            "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]}}),
        ),
        write(
            "nodeport service",
            "Policy:Kubernetes/NodePortServiceCreated",
            "",
            "services",
            Some("shop"),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "shop"},
                   "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80, "nodePort": 30080}]}}),
        ),
        write(
            "dashboard load balancer",
            "Policy:Kubernetes/ExposedDashboard",
            "",
            "services",
            Some("kubernetes-dashboard"),
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "kubernetes-dashboard", "namespace": "kubernetes-dashboard"},
                   "spec": {"type": "LoadBalancer", "selector": {"k8s-app": "kubernetes-dashboard"}, "ports": [{"port": 443}]}}),
        ),
        write(
            "cluster-admin binding",
            "PrivilegeEscalation:Kubernetes/ClusterAdminBinding",
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            None,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "x"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                   "subjects": [{"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}]}),
        ),
        write(
            "anonymous granted",
            "Policy:Kubernetes/AnonymousAccessGranted",
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            None,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "x"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                   "subjects": [{"kind": "Group", "name": "system:unauthenticated", "apiGroup": "rbac.authorization.k8s.io"}]}),
        ),
        write(
            "admin role binding",
            "PrivilegeEscalation:Kubernetes/PrivilegedRoleBinding",
            "rbac.authorization.k8s.io",
            "rolebindings",
            Some("shop"),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "x", "namespace": "shop"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
                   "subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": "shop"}]}),
        ),
        write(
            "risky cluster role",
            "PrivilegeEscalation:Kubernetes/RiskyRoleCreated",
            "rbac.authorization.k8s.io",
            "clusterroles",
            None,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "x"},
                   "rules": [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]}),
        ),
        write(
            "credentials in configmap",
            "CredentialAccess:Kubernetes/CredentialsInConfigMap",
            "",
            "configmaps",
            Some("shop"),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "shop"},
                   "data": {"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}}),
        ),
        // A webhook configuration written is the finding, whatever its body says.
        Behaviour {
            metadata_enough: true,
            ..write(
                "mutating webhook",
                "Persistence:Kubernetes/AdmissionWebhookChanged",
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
                None,
                json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration", "metadata": {"name": "x"},
                   "webhooks": [{"name": "x.example.com", "clientConfig": {"url": "https://203.0.113.50/mutate"}}]}),
            )
        },
    ];
    let exec = |name, finding, namespace, command: &'static str| Behaviour {
        name,
        finding,
        verb: "create",
        api_group: "",
        resource: "pods",
        subresource: Some("exec"),
        namespace: Some(namespace),
        object: None,
        query: command,
        user: None,
        also_verbs: &["get"],
        status: 101,
        metadata_enough: true,
    };
    all.push(exec(
        "exec in kube-system",
        "Execution:Kubernetes/ExecInKubeSystemPod",
        "kube-system",
        "command=sh&container=app&stdin=true&stdout=true&tty=true",
    ));
    all.push(exec(
        "token read through exec",
        "CredentialAccess:Kubernetes/CredentialsReadThroughExec",
        "shop",
        "command=cat&command=%2Fvar%2Frun%2Fsecrets%2Fkubernetes.io%2Fserviceaccount%2Ftoken&container=app&stdout=true",
    ));
    all.push(exec(
        "kubectl cp out",
        "Exfiltration:Kubernetes/FilesCopiedFromPod",
        "shop",
        "command=tar&command=cf&command=-&command=%2Fvar%2Flib%2Fdata&container=app&stdout=true",
    ));
    all.push(Behaviour {
        name: "secrets listed everywhere",
        finding: "CredentialAccess:Kubernetes/SecretsListedAcrossNamespaces",
        verb: "list",
        api_group: "",
        resource: "secrets",
        subresource: None,
        namespace: None,
        object: None,
        query: "limit=500",
        user: None,
        also_verbs: &["watch"],
        status: 200,
        metadata_enough: true,
    });
    all.push(Behaviour {
        name: "anonymous secrets read",
        finding: "CredentialAccess:Kubernetes/SuccessfulAnonymousAccess",
        verb: "list",
        api_group: "",
        resource: "secrets",
        subresource: None,
        namespace: Some("kube-system"),
        object: None,
        query: "",
        user: Some("system:anonymous"),
        also_verbs: &["watch", "get"],
        status: 200,
        metadata_enough: true,
    });
    all
}

/// One spelling of a behaviour's request, as the audit Event it is.
struct Spelling {
    label: String,
    event: Value,
    /// False where the spelling hides the fact (a Metadata-level write carries no object).
    shows_behaviour: bool,
}

/// A write's spelling: label, verb, query, request object, response object.
type SpellingRow<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<&'a Value>,
    Option<&'a Value>,
);

/// Every leaf of an object as a JSON Patch `add` (arrays of objects by index, other arrays whole).
fn json_patch(value: &Value, path: &str, out: &mut Vec<Value>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                json_patch(inner, &format!("{path}/{escaped}"), out);
            }
        }
        Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
            for (index, inner) in items.iter().enumerate() {
                json_patch(inner, &format!("{path}/{index}"), out);
            }
        }
        other => out.push(json!({"op": "add", "path": path, "value": other})),
    }
}

fn without_metadata(object: &Value) -> Value {
    let mut object = object.clone();
    if let Value::Object(map) = &mut object {
        map.remove("metadata");
        map.remove("apiVersion");
        map.remove("kind");
    }
    object
}

fn uri(behaviour: &Behaviour, name: Option<&str>, query: &str) -> String {
    let mut uri = if behaviour.api_group.is_empty() {
        "/api/v1".to_owned()
    } else {
        format!("/apis/{}/v1", behaviour.api_group)
    };
    if let Some(namespace) = behaviour.namespace {
        uri += &format!("/namespaces/{namespace}");
    }
    uri += &format!("/{}", behaviour.resource);
    if let Some(name) = name {
        uri += &format!("/{name}");
        if let Some(sub) = behaviour.subresource {
            uri += &format!("/{sub}");
        }
    }
    if !query.is_empty() {
        uri += &format!("?{query}");
    }
    uri
}

fn base_event(behaviour: &Behaviour, verb: &str, name: Option<&str>, query: &str) -> Value {
    let mut object_ref = json!({"resource": behaviour.resource, "apiVersion": "v1"});
    if !behaviour.api_group.is_empty() {
        object_ref["apiGroup"] = json!(behaviour.api_group);
    }
    if let Some(sub) = behaviour.subresource {
        object_ref["subresource"] = json!(sub);
    }
    if let Some(namespace) = behaviour.namespace {
        object_ref["namespace"] = json!(namespace);
    }
    if let Some(name) = name {
        object_ref["name"] = json!(name);
    }
    let status = if verb == "create" {
        behaviour.status
    } else if behaviour.status == 201 {
        200
    } else {
        behaviour.status
    };
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request",
        "stage": if behaviour.subresource == Some("exec") { "ResponseStarted" } else { "ResponseComplete" },
        "requestURI": uri(behaviour, name, query),
        "verb": verb,
        "user": {"username": "", "groups": ["developers", "system:authenticated"]},
        "userAgent": "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350",
        "objectRef": object_ref,
        "responseStatus": {"metadata": {}, "code": status},
        "requestReceivedTimestamp": "2024-06-03T09:15:00.000000Z",
        "stageTimestamp": "2024-06-03T09:15:00.040000Z",
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC: allowed"}
    })
}

fn spellings(behaviour: &Behaviour) -> Vec<Spelling> {
    let mut out = Vec::new();
    let Some(object) = &behaviour.object else {
        let name = behaviour.subresource.map(|_| "app-7d9f8-x2k4q");
        for verb in std::iter::once(&behaviour.verb).chain(behaviour.also_verbs) {
            for level in ["Request", "Metadata"] {
                let mut event = base_event(behaviour, verb, name, behaviour.query);
                event["level"] = json!(level);
                out.push(Spelling {
                    label: format!("{verb} at {level}"),
                    event,
                    shows_behaviour: true,
                });
            }
            // Older API servers put the exec command in the body.
            if behaviour.subresource == Some("exec") {
                let mut event = base_event(behaviour, verb, name, "container=app&stdout=true");
                let command: Vec<String> = behaviour
                    .query
                    .split('&')
                    .filter_map(|pair| pair.strip_prefix("command="))
                    .map(|part| part.replace("%2F", "/"))
                    .collect();
                event["requestObject"] = json!({"kind": "PodExecOptions", "apiVersion": "v1", "command": command, "container": "app"});
                out.push(Spelling {
                    label: format!("{verb} with the command in the body"),
                    event,
                    shows_behaviour: true,
                });
            }
        }
        return out;
    };
    let name = object["metadata"]["name"].as_str();
    let full = object.clone();
    let partial = without_metadata(object);
    let mut operations = Vec::new();
    json_patch(&partial, "", &mut operations);
    let patch_ops = Value::Array(operations);
    let label_only = json!({"metadata": {"labels": {"touched": "yes"}}});
    // (label, verb, query, requestObject, responseObject): the level follows from the bodies
    // logged (none: Metadata, a response: RequestResponse, else Request), and so does whether the
    // spelling can show the behaviour.
    let table: [SpellingRow<'_>; 11] = [
        (
            "create, RequestResponse",
            "create",
            "",
            Some(&full),
            Some(&full),
        ),
        ("create, Request", "create", "", Some(&full), None),
        ("create, Metadata", "create", "", None, None),
        ("update, Request", "update", "", Some(&full), None),
        (
            "update, RequestResponse",
            "update",
            "",
            Some(&full),
            Some(&full),
        ),
        (
            "strategic merge patch, Request",
            "patch",
            "",
            Some(&partial),
            None,
        ),
        (
            "merge patch, RequestResponse",
            "patch",
            "",
            Some(&label_only),
            Some(&full),
        ),
        ("JSON Patch, Request", "patch", "", Some(&patch_ops), None),
        (
            "JSON Patch, RequestResponse",
            "patch",
            "",
            Some(&patch_ops),
            Some(&full),
        ),
        (
            "server-side apply, Request",
            "patch",
            "fieldManager=kubectl&force=true",
            Some(&full),
            None,
        ),
        ("patch, Metadata", "patch", "", None, None),
    ];
    for (label, verb, query, request, response) in table {
        let level = match (request, response) {
            (None, None) => "Metadata",
            (_, Some(_)) => "RequestResponse",
            (Some(_), None) => "Request",
        };
        let mut event = base_event(
            behaviour,
            verb,
            if verb == "create" { None } else { name },
            query,
        );
        if verb == "create" && level == "Metadata" {
            // A create's objectRef names the object when the server logs it after admission.
            event["objectRef"]["name"] = json!(name);
        }
        event["level"] = json!(level);
        if let Some(request) = request {
            event["requestObject"] = request.clone();
        }
        if let Some(response) = response {
            event["responseObject"] = response.clone();
        }
        out.push(Spelling {
            label: label.to_owned(),
            event,
            shows_behaviour: level != "Metadata" || behaviour.metadata_enough,
        });
    }
    out
}

/// The event with its top-level fields in reverse order (serde_json writes them sorted).
fn reversed(event: &Value) -> String {
    let Value::Object(map) = event else {
        return event.to_string();
    };
    let fields: Vec<String> = map
        .iter()
        .rev()
        .map(|(key, value)| format!("{}: {value}", Value::String(key.clone())))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

fn without_optional(event: &Value) -> Value {
    let mut event = event.clone();
    if let Value::Object(map) = &mut event {
        for key in [
            "userAgent",
            "requestReceivedTimestamp",
            "annotations",
            "auditID",
            "level",
            "apiVersion",
            "kind",
        ] {
            map.remove(key);
        }
    }
    event
}

fn method_name(event: &Value) -> String {
    let object = &event["objectRef"];
    let group = match object["apiGroup"].as_str() {
        None => "core".to_owned(),
        Some(group) => group
            .strip_suffix(".k8s.io")
            .map_or(group.to_owned(), |short| {
                short.split('.').rev().collect::<Vec<_>>().join(".")
            }),
    };
    let mut method = format!("io.k8s.{group}.v1.{}", object["resource"].as_str().unwrap());
    if let Some(sub) = object["subresource"].as_str() {
        method += &format!(".{sub}");
    }
    method + "." + event["verb"].as_str().unwrap()
}

fn resource_name(event: &Value) -> String {
    let object = &event["objectRef"];
    let mut name = format!("{}/v1", object["apiGroup"].as_str().unwrap_or("core"));
    if let Some(namespace) = object["namespace"].as_str() {
        name += &format!("/namespaces/{namespace}");
    }
    name += &format!("/{}", object["resource"].as_str().unwrap());
    if let Some(object_name) = object["name"].as_str() {
        name += &format!("/{object_name}");
        if let Some(sub) = object["subresource"].as_str() {
            name += &format!("/{sub}");
        }
    }
    name
}

/// The Cloud Audit Logs entry GKE writes for the request (no groups: GKE does not log them).
fn gke_entry(event: &Value, cluster: &str) -> Value {
    let code = event["responseStatus"]["code"].as_i64().unwrap_or(200);
    let mut request = event.get("requestObject").cloned();
    if let Some(query) = event["requestURI"]
        .as_str()
        .and_then(|uri| uri.split_once('?'))
        .map(|(_, q)| q)
        && request.is_none()
    {
        let command: Vec<String> = query
            .split('&')
            .filter_map(|pair| pair.strip_prefix("command="))
            .map(|part| part.replace("%2F", "/"))
            .collect();
        if !command.is_empty() {
            request = Some(json!({"@type": "core.k8s.io/v1.PodExecOptions", "command": command}));
        }
    }
    let mut payload = json!({
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "authenticationInfo": {"principalEmail": event["user"]["username"]},
        "methodName": method_name(event),
        "resourceName": resource_name(event),
        "serviceName": "k8s.io",
        "requestMetadata": {"callerIp": event["sourceIPs"][0], "callerSuppliedUserAgent": event["userAgent"]},
        "status": if (200..300).contains(&code) || code == 101 { json!({}) } else { json!({"code": 7}) },
    });
    if let Some(request) = request {
        payload["request"] = request;
    }
    if let Some(response) = event.get("responseObject") {
        payload["response"] = response.clone();
    }
    json!({
        "insertId": event.get("auditID").cloned().unwrap_or(Value::Null),
        "logName": "projects/p/logs/cloudaudit.googleapis.com%2Factivity",
        "protoPayload": payload,
        "resource": {"type": "k8s_cluster", "labels": {"cluster_name": cluster, "location": "europe-west1", "project_id": "p"}},
        "timestamp": event["stageTimestamp"],
    })
}

/// The event in each envelope: (label, text of the file).
fn envelopes(event: &Value, text: &str) -> Vec<(&'static str, String)> {
    let aks = |event: &str| {
        json!({"category": "kube-audit", "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
               "resourceId": "/SUBSCRIPTIONS/0/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/SHOP-AKS",
               "time": "2024-06-03T09:15:01.0000000Z", "properties": {"log": event, "stream": "stdout"}})
    };
    let gke = gke_entry(event, "shop-gke");
    vec![
        ("JSON line", format!("{text}\n")),
        ("EventList", format!("{{\"kind\": \"EventList\", \"apiVersion\": \"audit.k8s.io/v1\", \"items\": [{text}]}}")),
        ("pretty-printed", serde_json::to_string_pretty(event).unwrap()),
        (
            "CloudWatch Logs record",
            json!({"messageType": "DATA_MESSAGE", "owner": "111122223333", "logGroup": "/aws/eks/shop-eks/cluster",
                   "logStream": "kube-apiserver-audit-1", "subscriptionFilters": ["vigil"],
                   "logEvents": [{"id": "1", "timestamp": 1_717_406_101_000_i64, "message": text}]})
            .to_string(),
        ),
        ("Azure Monitor record", aks(text).to_string()),
        ("Event Hub batch", json!({"records": [aks(text)]}).to_string()),
        ("Cloud Audit Logs entry", gke.to_string()),
        (
            "Pub/Sub push",
            json!({"message": {"data": base64::engine::general_purpose::STANDARD.encode(gke.to_string()), "messageId": "1"}, "subscription": "projects/p/subscriptions/vigil"})
                .to_string(),
        ),
    ]
}

#[derive(Debug)]
struct Variant {
    behaviour: &'static str,
    finding: &'static str,
    spelling: String,
    envelope: &'static str,
    form: &'static str,
    shows_behaviour: bool,
}

fn address(index: usize) -> String {
    format!(
        "10.{}.{}.{}",
        100 + index / 65_536,
        (index / 256) % 256,
        index % 256
    )
}

/// Envelopes each spelling is written in (see [`envelopes`]).
const ENVELOPES: usize = 8;

fn write_variants(dir: &Path) -> Vec<Variant> {
    let mut variants = Vec::new();
    for behaviour in behaviours() {
        for spelling in spellings(&behaviour) {
            for form in ["as written", "fields reversed", "optional fields absent"] {
                for envelope in 0..ENVELOPES {
                    let index = variants.len();
                    let mut event = spelling.event.clone();
                    event["sourceIPs"] = json!([address(index)]);
                    event["auditID"] = json!(format!("variant-{index}"));
                    match behaviour.user {
                        Some(user) => {
                            event["user"]["username"] = json!(user);
                            event["user"]["groups"] = json!(["system:unauthenticated"]);
                        }
                        None => event["user"]["username"] = json!(format!("dev-{index}")),
                    }
                    if form == "optional fields absent" {
                        event = without_optional(&event);
                    }
                    let text = if form == "fields reversed" {
                        reversed(&event)
                    } else {
                        event.to_string()
                    };
                    let (label, content) = envelopes(&event, &text).swap_remove(envelope);
                    std::fs::write(dir.join(format!("{index:05}.json")), content).unwrap();
                    variants.push(Variant {
                        behaviour: behaviour.name,
                        finding: behaviour.finding,
                        spelling: spelling.label.clone(),
                        envelope: label,
                        form,
                        shows_behaviour: spelling.shows_behaviour,
                    });
                }
            }
        }
    }
    variants
}

fn index_of_address(ip: &str) -> Option<usize> {
    let parts: Vec<usize> = ip
        .split('.')
        .map(|part| part.parse().ok())
        .collect::<Option<_>>()?;
    Some((parts.get(1)? - 100) * 65_536 + parts.get(2)? * 256 + parts.get(3)?)
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-variants-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_spelling_of_every_behaviour_raises_the_same_finding() {
    let dir = scratch();
    let variants = write_variants(&dir);
    let stats = dir.join(".stats.json");
    let output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("scan")
        .arg("--stats")
        .arg(&stats)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "vigil scan failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let rejections: Vec<&Value> = stats["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .take(5)
        .collect();
    assert_eq!(stats["rejected"], json!({}), "{rejections:?}");
    let mut found: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let finding: Value = serde_json::from_str(line).unwrap();
        let action = &finding["service"]["action"]["kubernetesApiCallAction"];
        if let Some(index) = action["sourceIPs"][0].as_str().and_then(index_of_address) {
            found
                .entry(index)
                .or_default()
                .insert(finding["type"].as_str().unwrap().to_owned());
        }
    }
    let mut failures = Vec::new();
    for (index, variant) in variants.iter().enumerate() {
        let raised = found
            .get(&index)
            .is_some_and(|types| types.contains(variant.finding));
        if raised != variant.shows_behaviour {
            failures.push(format!(
                "{}: {} {} as {} ({}): {}",
                index,
                variant.behaviour,
                variant.spelling,
                variant.envelope,
                variant.form,
                if raised {
                    format!("claimed {} from a body that is not there", variant.finding)
                } else {
                    format!(
                        "{} not raised (raised {:?})",
                        variant.finding,
                        found.get(&index)
                    )
                }
            ));
        }
    }
    let behaviours: BTreeSet<&str> = variants.iter().map(|variant| variant.behaviour).collect();
    eprintln!(
        "variation harness: {} variants of {} behaviours tried, {} holding",
        variants.len(),
        behaviours.len(),
        variants.len() - failures.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} of {} variants did not hold:\n{}",
        failures.len(),
        variants.len(),
        failures
            .iter()
            .take(60)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
