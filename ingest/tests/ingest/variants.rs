//! The same request however it is written and wherever it comes from: AKS and GKE envelopes,
//! Pub/Sub, every patch form, objects named only by `objectRef`, exec commands in URIs and bodies,
//! and the timestamp and field tolerances, each counted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use base64::Engine as _;
use serde_json::{Value, json};
use vigil_ingest::{Ingestor, RejectReason, SkipReason, Tolerance};
use vigil_schemas::AuditEvent;
use vigil_schemas::Event;

struct Run {
    events: Vec<AuditEvent>,
    rejections: Vec<vigil_ingest::Rejection>,
    ingestor: Ingestor,
}

fn run_at(input: &[u8], transport_time: Option<i64>) -> Run {
    let mut ingestor = Ingestor::default();
    let mut events = Vec::new();
    let mut rejections = Vec::new();
    ingestor.ingest_payload_at(input, transport_time, &mut |item| match item {
        Ok(Event::Audit(event)) => events.push(*event),
        Err(rejection) => rejections.push(rejection),
        Ok(Event::Runtime(event)) => panic!("an audit input read as runtime: {event:?}"),
    });
    Run {
        events,
        rejections,
        ingestor,
    }
}

fn run(input: &[u8]) -> Run {
    run_at(input, None)
}

fn tolerated(run: &Run, kind: Tolerance) -> u64 {
    run.ingestor
        .stats()
        .tolerated
        .get(&kind)
        .copied()
        .unwrap_or(0)
}

fn exec_event() -> Value {
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request", "auditID": "x-1",
        "stage": "ResponseStarted",
        "requestURI": "/api/v1/namespaces/shop/pods/web-1/exec?command=cat&command=%2Fvar%2Frun%2Fsecrets%2Fkubernetes.io%2Fserviceaccount%2Ftoken&container=web&stdout=true",
        "verb": "create",
        "user": {"username": "mallory", "groups": ["system:authenticated"]},
        "sourceIPs": ["203.0.113.9"], "userAgent": "kubectl/v1.30.0",
        "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "shop", "name": "web-1", "apiVersion": "v1"},
        "responseStatus": {"code": 101},
        "requestReceivedTimestamp": "2024-05-01T10:00:00.000000Z", "stageTimestamp": "2024-05-01T10:00:00.020000Z"
    })
}

fn patch_event(resource: &str, name: &str, body: Value, response: Option<Value>) -> Value {
    let mut event = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request", "auditID": format!("p-{resource}-{name}"),
        "stage": "ResponseComplete",
        "requestURI": format!("/apis/apps/v1/namespaces/shop/{resource}/{name}"),
        "verb": "patch",
        "user": {"username": "mallory", "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.9"],
        "objectRef": {"resource": resource, "namespace": "shop", "name": name, "apiVersion": "v1"},
        "responseStatus": {"code": 200},
        "stageTimestamp": "2024-05-01T10:00:00.020000Z",
        "requestObject": body
    });
    if let Some(response) = response {
        event["level"] = json!("RequestResponse");
        event["responseObject"] = response;
    }
    event
}

#[test]
fn exec_commands_come_from_the_uri_and_from_older_bodies() {
    let from_uri = run(exec_event().to_string().as_bytes());
    assert_eq!(
        from_uri.events[0].exec_command,
        ["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"]
    );
    let mut older = exec_event();
    older["requestURI"] = json!("/api/v1/namespaces/shop/pods/web-1/exec");
    older["requestObject"] = json!({"kind": "PodExecOptions", "apiVersion": "v1", "command": ["sh", "-c", "env"], "container": "web"});
    let from_body = run(older.to_string().as_bytes());
    assert_eq!(from_body.events[0].exec_command, ["sh", "-c", "env"]);
    let mut listed = exec_event();
    listed["objectRef"]["subresource"] = Value::Null;
    listed["stage"] = json!("ResponseComplete");
    listed["requestURI"] = json!("/api/v1/namespaces/shop/pods?command=sh");
    assert!(
        run(listed.to_string().as_bytes()).events[0]
            .exec_command
            .is_empty()
    );
}

#[test]
fn a_json_patch_is_judged_as_the_object_it_makes() {
    let body = json!([
        {"op": "replace", "path": "/spec/type", "value": "LoadBalancer"},
        {"op": "add", "path": "/spec/ports/0/nodePort", "value": 30080}
    ]);
    let result = run(patch_event("services", "web", body, None)
        .to_string()
        .as_bytes());
    let service = result.events[0]
        .service
        .as_ref()
        .expect("service from the patch");
    assert_eq!(service.service_type, "LoadBalancer");
    assert_eq!(service.name.as_deref(), Some("web"), "name from objectRef");
    assert_eq!(service.namespace.as_deref(), Some("shop"));
    assert_eq!(service.ports[0].node_port, Some(30080));

    let privileged = json!([
        {"op": "add", "path": "/spec/template/spec/containers/0/securityContext", "value": {"privileged": true}},
        {"op": "add", "path": "/spec/template/spec/hostPID", "value": true},
        {"op": "add", "path": "/spec/template/spec/volumes/-", "value": {"name": "root", "hostPath": {"path": "/"}}},
        {"op": "remove", "path": "/spec/template/spec/containers/0/resources"}
    ]);
    let result = run(patch_event("deployments", "web", privileged, None)
        .to_string()
        .as_bytes());
    let workload = result.events[0]
        .workload
        .as_ref()
        .expect("workload from the patch");
    assert_eq!(workload.kind, "Deployment");
    assert_eq!(workload.name.as_deref(), Some("web"));
    assert!(workload.containers[0].privileged);
    assert!(workload.host_pid);
    assert_eq!(workload.volumes[0].host_path.as_deref(), Some("/"));

    let subject = json!([{"op": "add", "path": "/subjects/-", "value": {"kind": "Group", "name": "system:authenticated"}}]);
    let mut binding = patch_event("clusterrolebindings", "ops", subject, None);
    binding["objectRef"]["namespace"] = Value::Null;
    let result = run(binding.to_string().as_bytes());
    let spec = result.events[0]
        .role_binding
        .as_ref()
        .expect("binding from the patch");
    assert_eq!(spec.subjects[0].name, "system:authenticated");
    assert_eq!(spec.name.as_deref(), Some("ops"));
}

#[test]
fn a_merge_patch_and_the_response_object_say_what_the_object_became() {
    let merge = json!({"spec": {"type": "NodePort"}});
    let result = run(patch_event("services", "web", merge, None)
        .to_string()
        .as_bytes());
    assert_eq!(
        result.events[0].service.as_ref().unwrap().service_type,
        "NodePort"
    );

    // A label change on a service that already is a LoadBalancer: the response is the object.
    let label = json!({"metadata": {"labels": {"team": "shop"}}});
    let response = json!({"kind": "Service", "apiVersion": "v1",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
    let result = run(patch_event("services", "web", label, Some(response))
        .to_string()
        .as_bytes());
    assert_eq!(
        result.events[0].service.as_ref().unwrap().service_type,
        "LoadBalancer"
    );
}

#[test]
fn ingresses_say_whether_they_terminate_tls() {
    let mut plain = patch_event(
        "ingresses",
        "shop",
        json!({"kind": "Ingress", "spec": {"rules": [{"host": "shop.example.com"}, {}]}}),
        None,
    );
    plain["verb"] = json!("create");
    let result = run(plain.to_string().as_bytes());
    let ingress = result.events[0].ingress.as_ref().expect("ingress");
    assert_eq!(ingress.hosts, ["shop.example.com", "*"]);
    assert!(!ingress.tls);
    let mut secured = plain.clone();
    secured["requestObject"]["spec"]["tls"] =
        json!([{"hosts": ["shop.example.com"], "secretName": "tls"}]);
    let result = run(secured.to_string().as_bytes());
    let ingress = result.events[0].ingress.as_ref().expect("ingress");
    assert!(ingress.tls);
    assert_eq!(ingress.tls_hosts, ["shop.example.com"]);
}

fn aks_record(event: &Value, category: &str) -> Value {
    json!({
        "category": category,
        "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
        "resourceId": "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/SHOP/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/SHOP-AKS",
        "time": "2024-05-01T10:00:01.0000000Z",
        "properties": {"log": event.to_string(), "stream": "stdout", "pod": "kube-apiserver-6b9c"}
    })
}

#[test]
fn aks_diagnostic_records_one_at_a_time_and_in_event_hub_batches() {
    let one = run(aks_record(&exec_event(), "kube-audit")
        .to_string()
        .as_bytes());
    assert_eq!(one.events.len(), 1);
    let event = &one.events[0];
    assert_eq!(event.cluster_hint.as_deref(), Some("shop-aks"));
    assert_eq!(event.cloud_provider.as_deref(), Some("azure"));
    assert_eq!(event.user.username, "mallory");
    assert_eq!(event.exec_command[0], "cat");

    let mut second = exec_event();
    second["auditID"] = json!("x-2");
    let batch = json!({"records": [
        aks_record(&exec_event(), "kube-audit"),
        aks_record(&second, "kube-audit-admin"),
        aks_record(&json!({"msg": "I0501 apiserver started"}), "kube-apiserver"),
    ]});
    let result = run(batch.to_string().as_bytes());
    assert_eq!(result.events.len(), 2);
    assert!(result.rejections.is_empty());
    assert_eq!(
        result
            .ingestor
            .stats()
            .skipped
            .get(&SkipReason::OtherLogCategory),
        Some(&1)
    );
}

fn gke_entry() -> Value {
    json!({
        "insertId": "5e1f3c6a-77b2-4c31-9a8e-0d3c2b1a0f9e",
        "logName": "projects/shop-prod/logs/cloudaudit.googleapis.com%2Factivity",
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "authenticationInfo": {"principalEmail": "mallory@example.com"},
            "authorizationInfo": [{"granted": true, "permission": "io.k8s.core.v1.pods.create",
                                   "resource": "core/v1/namespaces/shop/pods/miner"}],
            "methodName": "io.k8s.core.v1.pods.create",
            "requestMetadata": {"callerIp": "198.51.100.7", "callerSuppliedUserAgent": "kubectl/v1.30.0 (linux/amd64)"},
            "resourceName": "core/v1/namespaces/shop/pods/miner",
            "serviceName": "k8s.io",
            "status": {},
            "request": {"@type": "core.k8s.io/v1.Pod", "metadata": {"name": "miner", "namespace": "shop"},
                        "spec": {"hostNetwork": true, "containers": [{"name": "m", "image": "xmrig/xmrig",
                                 "securityContext": {"privileged": true}}]}}
        },
        "resource": {"type": "k8s_cluster", "labels": {"cluster_name": "shop-gke", "location": "europe-west1", "project_id": "shop-prod"}},
        "timestamp": "2024-05-01T10:00:00.123456789Z",
        "receiveTimestamp": "2024-05-01T10:00:01.5Z",
        "labels": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC: allowed"}
    })
}

#[test]
fn gke_cloud_audit_log_entries_become_the_events_they_record() {
    let result = run(gke_entry().to_string().as_bytes());
    assert!(result.rejections.is_empty(), "{:?}", result.rejections);
    let event = &result.events[0];
    assert_eq!(event.verb, "create");
    assert_eq!(event.user.username, "mallory@example.com");
    assert_eq!(event.source_ips, ["198.51.100.7"]);
    assert_eq!(event.cluster_hint.as_deref(), Some("shop-gke"));
    assert_eq!(event.cloud_provider.as_deref(), Some("gcp"));
    assert_eq!(event.status_code, Some(200));
    assert_eq!(event.authz_decision.as_deref(), Some("allow"));
    assert_eq!(event.event_time_micros, 1_714_557_600_123_456);
    let object = event.object_ref.as_ref().unwrap();
    assert_eq!(object.resource.as_deref(), Some("pods"));
    assert_eq!(object.namespace.as_deref(), Some("shop"));
    assert_eq!(object.name.as_deref(), Some("miner"));
    assert_eq!(event.request_uri, "/api/v1/namespaces/shop/pods/miner");
    let workload = event
        .workload
        .as_ref()
        .expect("the pod from protoPayload.request");
    assert_eq!(workload.kind, "Pod");
    assert!(workload.host_network && workload.containers[0].privileged);

    let mut denied = gke_entry();
    denied["insertId"] = json!("denied-1");
    denied["protoPayload"]["status"] = json!({"code": 7, "message": "PERMISSION_DENIED"});
    let result = run(denied.to_string().as_bytes());
    assert_eq!(result.events[0].status_code, Some(403));

    let mut exec = gke_entry();
    exec["insertId"] = json!("exec-1");
    exec["protoPayload"]["methodName"] = json!("io.k8s.core.v1.pods.exec.create");
    exec["protoPayload"]["resourceName"] = json!("core/v1/namespaces/shop/pods/web-1/exec");
    exec["protoPayload"]["request"] = json!({"@type": "core.k8s.io/v1.PodExecOptions", "command": ["sh", "-c", "cat /var/run/secrets/kubernetes.io/serviceaccount/token"]});
    let result = run(exec.to_string().as_bytes());
    let event = &result.events[0];
    assert_eq!(
        event.object_ref.as_ref().unwrap().subresource.as_deref(),
        Some("exec")
    );
    assert_eq!(event.exec_command[0], "sh");
}

#[test]
fn gke_entries_in_pubsub_push_and_pull_messages_and_json_lines() {
    let data = base64::engine::general_purpose::STANDARD.encode(gke_entry().to_string());
    let push = json!({"message": {"data": data, "messageId": "1", "publishTime": "2024-05-01T10:00:02Z"},
                      "subscription": "projects/shop-prod/subscriptions/vigil"});
    let pushed = run(push.to_string().as_bytes());
    assert_eq!(pushed.events.len(), 1, "{:?}", pushed.rejections);
    assert_eq!(pushed.events[0].cluster_hint.as_deref(), Some("shop-gke"));

    let pull = json!({"receivedMessages": [{"ackId": "a", "message": {"data": data}}]});
    assert_eq!(run(pull.to_string().as_bytes()).events.len(), 1);

    let mut second = gke_entry();
    second["insertId"] = json!("second");
    let lines = format!("{}\n{}\n", gke_entry(), second);
    assert_eq!(run(lines.as_bytes()).events.len(), 2);

    let garbage = json!({"message": {"data": "not base64 !!"}});
    let result = run(garbage.to_string().as_bytes());
    assert_eq!(result.rejections[0].reason, RejectReason::InvalidEvent);
}

#[test]
fn timestamps_in_export_forms_are_read_and_counted() {
    let forms = [
        (json!("2024-05-01 10:00:00.020"), Tolerance::TimeLenient),
        (json!("2024-05-01T10:00:00.020"), Tolerance::TimeLenient),
        (json!(1_714_557_600.02), Tolerance::TimeEpoch),
        (json!(1_714_557_600_020_i64), Tolerance::TimeEpoch),
        (json!("1714557600020"), Tolerance::TimeEpoch),
    ];
    for (stamp, kind) in forms {
        let mut event = exec_event();
        event["stageTimestamp"] = stamp.clone();
        event
            .as_object_mut()
            .unwrap()
            .remove("requestReceivedTimestamp");
        let result = run(event.to_string().as_bytes());
        assert_eq!(result.events.len(), 1, "{stamp}: {:?}", result.rejections);
        assert_eq!(
            result.events[0].event_time_micros, 1_714_557_600_020_000,
            "{stamp}"
        );
        assert_eq!(tolerated(&result, kind), 1, "{stamp}");
    }
}

#[test]
fn an_event_without_a_time_takes_the_transports_and_a_file_rejects_it() {
    let mut event = exec_event();
    let object = event.as_object_mut().unwrap();
    object.remove("requestReceivedTimestamp");
    object.remove("stageTimestamp");
    let from_kafka = run_at(event.to_string().as_bytes(), Some(1_714_557_999_000_000));
    assert_eq!(
        from_kafka.events[0].event_time_micros,
        1_714_557_999_000_000
    );
    assert_eq!(tolerated(&from_kafka, Tolerance::TimeInferred), 1);
    let from_file = run(event.to_string().as_bytes());
    assert!(from_file.events.is_empty());
    assert_eq!(from_file.rejections[0].reason, RejectReason::InvalidEvent);
}

#[test]
fn a_missing_request_uri_or_stage_does_not_lose_the_event() {
    let mut event = exec_event();
    let object = event.as_object_mut().unwrap();
    object.remove("requestURI");
    object.remove("stage");
    let result = run(event.to_string().as_bytes());
    assert_eq!(result.events.len(), 1, "{:?}", result.rejections);
    assert_eq!(
        result.events[0].request_uri,
        "/api/v1/namespaces/shop/pods/web-1/exec"
    );
    assert_eq!(tolerated(&result, Tolerance::RequestUriInferred), 1);
    assert_eq!(tolerated(&result, Tolerance::StageInferred), 1);

    let mut nothing = exec_event();
    let object = nothing.as_object_mut().unwrap();
    object.remove("requestURI");
    object.remove("objectRef");
    let result = run(nothing.to_string().as_bytes());
    assert_eq!(result.rejections[0].reason, RejectReason::InvalidEvent);
}
