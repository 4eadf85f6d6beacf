//! Every input shape the README promises, and every way input can be bad.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use proptest::prelude::*;
use serde_json::{Value, json};
use vigil_ingest::{Ingestor, Limits, RejectReason, SkipReason};
use vigil_schemas::AuditEvent;
use vigil_schemas::Event;

fn event(id: &str) -> Value {
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": id,
        "stage": "ResponseComplete", "requestURI": "/api/v1/namespaces/default/pods", "verb": "list",
        "user": {"username": "alice", "groups": ["system:authenticated"], "extra": {"sessionName": ["alice-session"]}},
        "sourceIPs": ["10.0.1.5"], "userAgent": "kubectl/v1.29.1 (linux/amd64) kubernetes/abc",
        "objectRef": {"resource": "pods", "namespace": "default", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2024-03-01T10:00:00.000000Z", "stageTimestamp": "2024-03-01T10:00:00.010000Z",
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC"}
    })
}

struct Run {
    events: Vec<AuditEvent>,
    rejections: Vec<vigil_ingest::Rejection>,
    ingestor: Ingestor,
}

fn run_with(input: &[u8], limits: Limits) -> Run {
    let mut ingestor = Ingestor::new(limits);
    let mut events = Vec::new();
    let mut rejections = Vec::new();
    ingestor.ingest_payload(input, &mut |item| match item {
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
    run_with(input, Limits::default())
}

fn ids(run: &Run) -> Vec<&str> {
    run.events
        .iter()
        .map(|event| event.audit_id.as_str())
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn one_v1_event_is_normalized() {
    let result = run(event("a1").to_string().as_bytes());
    assert!(result.rejections.is_empty(), "{:?}", result.rejections);
    let event = &result.events[0];
    assert_eq!(event.audit_id, "a1");
    assert_eq!(event.verb, "list");
    assert_eq!(event.user.username, "alice");
    assert_eq!(event.user.session_names, ["alice-session"]);
    assert_eq!(event.source_ips, ["10.0.1.5"]);
    assert_eq!(event.status_code, Some(200));
    assert_eq!(event.authz_decision.as_deref(), Some("allow"));
    // stageTimestamp wins over requestReceivedTimestamp
    assert_eq!(event.event_time_micros, 1_709_287_200_010_000);
    assert_eq!(
        event.object_ref.as_ref().unwrap().resource.as_deref(),
        Some("pods")
    );
}

#[test]
fn v1beta1_events_fall_back_to_their_timestamp_fields() {
    let mut old = event("b1");
    let object = old.as_object_mut().unwrap();
    object.insert("apiVersion".into(), json!("audit.k8s.io/v1beta1"));
    object.remove("stageTimestamp");
    object.remove("requestReceivedTimestamp");
    object.insert("timestamp".into(), json!("2018-10-25T14:09:12Z"));
    let mut only_metadata = event("b2");
    let object = only_metadata.as_object_mut().unwrap();
    object.remove("stageTimestamp");
    object.remove("requestReceivedTimestamp");
    object.insert(
        "metadata".into(),
        json!({"creationTimestamp": "2018-10-25T14:09:13Z"}),
    );
    let result = run(format!("{old}\n{only_metadata}\n").as_bytes());
    assert_eq!(ids(&result), ["b1", "b2"]);
    assert_eq!(result.events[0].event_time_micros, 1_540_476_552_000_000);
    assert_eq!(result.events[1].event_time_micros, 1_540_476_553_000_000);
}

#[test]
fn an_event_list_from_the_audit_webhook() {
    let list = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": [event("l1"), event("l2")]});
    assert_eq!(ids(&run(list.to_string().as_bytes())), ["l1", "l2"]);
}

#[test]
fn json_lines_with_blank_lines_and_crlf() {
    let text = format!("{}\r\n\n{}\n\n", event("j1"), event("j2"));
    let result = run(text.as_bytes());
    assert_eq!(ids(&result), ["j1", "j2"]);
    assert!(result.rejections.is_empty());
}

#[test]
fn a_pretty_printed_json_array_and_pretty_printed_objects() {
    let array = serde_json::to_string_pretty(&json!([event("p1"), event("p2")])).unwrap();
    assert_eq!(ids(&run(array.as_bytes())), ["p1", "p2"]);
    let objects = format!(
        "{}\n{}\n",
        serde_json::to_string_pretty(&event("p3")).unwrap(),
        serde_json::to_string_pretty(&event("p4")).unwrap()
    );
    let result = run(objects.as_bytes());
    assert_eq!(ids(&result), ["p3", "p4"]);
    assert!(result.rejections.is_empty(), "{:?}", result.rejections);
}

fn cloudwatch_record(messages: &[Value]) -> Value {
    json!({
        "messageType": "DATA_MESSAGE", "owner": "111122223333", "logGroup": "/aws/eks/prod-east/cluster",
        "logStream": "kube-apiserver-audit-abc", "subscriptionFilters": ["vigil"],
        "logEvents": messages.iter().enumerate().map(|(index, message)| json!({
            "id": index.to_string(), "timestamp": 1_709_287_300_000i64, "message": message.to_string()
        })).collect::<Vec<_>>()
    })
}

#[test]
fn cloudwatch_subscription_records_plain_and_gzip_name_the_cluster() {
    let record = cloudwatch_record(&[event("c1"), event("c2")]);
    for payload in [
        record.to_string().into_bytes(),
        gzip(record.to_string().as_bytes()),
    ] {
        let result = run(&payload);
        assert_eq!(ids(&result), ["c1", "c2"]);
        assert_eq!(result.events[0].cluster_hint.as_deref(), Some("prod-east"));
    }
}

#[test]
fn cloudwatch_ingestion_time_stands_in_for_a_missing_event_time() {
    let mut bare = event("t1");
    let object = bare.as_object_mut().unwrap();
    object.remove("stageTimestamp");
    object.remove("requestReceivedTimestamp");
    let result = run(cloudwatch_record(&[bare]).to_string().as_bytes());
    assert_eq!(result.events[0].event_time_micros, 1_709_287_300_000_000);
}

#[test]
fn firehose_concatenated_records_and_control_messages() {
    let control = json!({"messageType": "CONTROL_MESSAGE", "logGroup": "", "logEvents": [{"id": "", "timestamp": 1, "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}]});
    let concatenated = format!(
        "{}{}{}",
        cloudwatch_record(&[event("f1")]),
        control,
        cloudwatch_record(&[event("f2")])
    );
    let result = run(&gzip(concatenated.as_bytes()));
    assert_eq!(ids(&result), ["f1", "f2"]);
    assert!(result.rejections.is_empty(), "{:?}", result.rejections);
    assert_eq!(
        result
            .ingestor
            .stats()
            .skipped
            .get(&SkipReason::ControlMessage),
        Some(&1)
    );
}

#[test]
fn exported_log_lines_with_a_timestamp_prefix() {
    let mut bare = event("x1");
    bare.as_object_mut().unwrap().remove("stageTimestamp");
    bare.as_object_mut()
        .unwrap()
        .remove("requestReceivedTimestamp");
    let text = format!(
        "2024-03-01T11:00:00.000Z {bare}\n2024-03-01T11:00:01.000Z {}\n",
        event("x2")
    );
    let result = run(text.as_bytes());
    assert_eq!(ids(&result), ["x1", "x2"]);
    assert_eq!(result.events[0].event_time_micros, 1_709_290_800_000_000);
}

#[test]
fn lines_log_shippers_carried_unparsed_are_read_from_their_envelope() {
    // Fluent Bit and Docker's json-file driver: {"log": LINE}; Vector: {"message": LINE}; a
    // container's log read raw: the CRI prefix, in the file or inside the envelope.
    let text = [
        json!({"log": format!("{}\n", event("f1")), "stream": "stdout", "time": "2024-03-01T10:00:00.1Z"})
            .to_string(),
        json!({"message": event("v1").to_string(), "source_type": "file", "timestamp": "2024-03-01T10:00:00Z"})
            .to_string(),
        format!("2024-03-01T10:00:00.123456789Z stdout F {}", event("c1")),
        json!({"log": format!("2024-03-01T10:00:00.123456789Z stderr F {}", event("c2"))}).to_string(),
        // Splunk's HTTP Event Collector: the event as an object or as its line.
        json!({"time": 1_709_287_200, "sourcetype": "kube:apiserver:audit", "event": event("s1")}).to_string(),
        json!({"time": 1_709_287_200, "event": event("s2").to_string()}).to_string(),
    ]
    .join("\n");
    let result = run(text.as_bytes());
    assert_eq!(ids(&result), ["f1", "v1", "c1", "c2", "s1", "s2"]);
    assert!(result.rejections.is_empty(), "{:?}", result.rejections);
}

#[test]
fn a_shipped_line_that_holds_no_event_is_refused_saying_so() {
    let text = [
        json!({"log": "I1201 10:00:00.000000 1 main.go:42] starting", "stream": "stderr"})
            .to_string(),
        // A line the runtime split at 16 KiB: its JSON is cut.
        json!({"message": "2024-03-01T10:00:00.1Z stdout P {\"kind\":\"Ev"}).to_string(),
        // A message that is an object is not a shipped line.
        json!({"log": {"kind": "Event"}}).to_string(),
    ]
    .join("\n");
    let result = run(text.as_bytes());
    assert!(result.events.is_empty());
    assert_eq!(result.rejections.len(), 3, "{:?}", result.rejections);
    for rejection in &result.rejections[..2] {
        assert_eq!(rejection.reason, RejectReason::UnknownShape);
        assert!(
            rejection.detail.contains("log shipper"),
            "{}",
            rejection.detail
        );
    }
}

#[test]
fn duplicates_and_non_final_stages_are_counted_not_passed_on() {
    let mut received = event("s1");
    received["stage"] = json!("RequestReceived");
    let text = format!(
        "{received}\n{}\n{}\n{}\n",
        event("s1"),
        event("s1"),
        event("s2")
    );
    let result = run(text.as_bytes());
    assert_eq!(ids(&result), ["s1", "s2"]);
    let stats = result.ingestor.stats();
    assert_eq!(stats.skipped.get(&SkipReason::Duplicate), Some(&1));
    assert_eq!(stats.skipped.get(&SkipReason::NonFinalStage), Some(&1));
}

#[test]
fn exec_is_taken_at_response_started_and_its_completion_is_a_duplicate() {
    let mut started = event("e1");
    started["stage"] = json!("ResponseStarted");
    started["verb"] = json!("create");
    started["objectRef"] =
        json!({"resource": "pods", "subresource": "exec", "namespace": "default", "name": "web-1"});
    let mut complete = started.clone();
    complete["stage"] = json!("ResponseComplete");
    let mut get_started = event("e2");
    get_started["stage"] = json!("ResponseStarted");
    let result = run(format!("{started}\n{complete}\n{get_started}\n").as_bytes());
    assert_eq!(ids(&result), ["e1"]);
    assert_eq!(result.events[0].stage, "ResponseStarted");
}

#[test]
fn events_without_an_audit_id_get_a_stable_content_id() {
    let mut anonymous = event("z");
    anonymous.as_object_mut().unwrap().remove("auditID");
    anonymous["kind"] = json!("Event");
    let text = format!("{anonymous}\n{anonymous}\n");
    let result = run(text.as_bytes());
    assert_eq!(result.events.len(), 1);
    assert!(result.events[0].audit_id.starts_with("sha256:"));
}

#[test]
fn bad_input_is_rejected_with_a_reason_and_good_input_flows_around_it() {
    let text = format!(
        "{}\nthis is not json\n{{\"kind\": 0}}\n{{\"kind\":\"Event\",\"apiVersion\":\"v1\",\"reason\":\"Scheduled\"}}\n{{\"hello\":\"world\"}}\n{}\n{{\"kind\":\"Event\",\"auditID\":\"n\",\"verb\":\"get\",\"requestURI\":\"/\"}}\n{{\"truncated\": \n",
        event("g1"),
        event("g2")
    );
    let result = run(text.as_bytes());
    assert_eq!(ids(&result), ["g1", "g2"]);
    let reasons: Vec<(RejectReason, Option<u64>)> = result
        .rejections
        .iter()
        .map(|r| (r.reason, r.line))
        .collect();
    assert_eq!(
        reasons,
        [
            (RejectReason::InvalidJson, Some(2)),
            (RejectReason::InvalidEvent, Some(3)),
            (RejectReason::UnknownShape, Some(4)),
            (RejectReason::UnknownShape, Some(5)),
            (RejectReason::InvalidEvent, Some(7)),
            (RejectReason::InvalidJson, Some(8)),
        ]
    );
    assert!(
        result.rejections[1].detail.contains("invalid type"),
        "{}",
        result.rejections[1].detail
    );
    assert!(
        result.rejections[4].detail.contains("timestamp"),
        "{}",
        result.rejections[4].detail
    );
    assert_eq!(result.ingestor.stats().rejected_total(), 6);
}

#[test]
fn non_utf8_and_oversized_lines() {
    let mut input = event("u1").to_string().into_bytes();
    input.extend_from_slice(b"\n{\"a\": \"\xff\xfe\"}\n");
    input.extend_from_slice(format!("{{\"pad\": \"{}\"}}\n", "x".repeat(5000)).as_bytes());
    input.extend_from_slice(format!("{}\n", event("u2")).as_bytes());
    let limits = Limits {
        max_event_bytes: 4096,
        ..Limits::default()
    };
    let result = run_with(&input, limits);
    assert_eq!(ids(&result), ["u1", "u2"]);
    let reasons: Vec<RejectReason> = result.rejections.iter().map(|r| r.reason).collect();
    assert_eq!(reasons, [RejectReason::NotUtf8, RejectReason::TooLarge]);
}

#[test]
fn empty_input_garbage_and_truncated_gzip() {
    assert!(run(b"").events.is_empty() && run(b"").rejections.is_empty());
    assert!(run(b"  \n\n").rejections.is_empty());
    let garbage = run(&[0u8, 159, 146, 150, 1, 2, 3]);
    assert_eq!(garbage.rejections.len(), 1);
    let whole = gzip(format!("{}\n{}\n", event("t1"), event("t2")).as_bytes());
    let truncated = run(&whole[..whole.len() - 12]);
    assert!(
        truncated
            .rejections
            .iter()
            .any(|r| r.reason == RejectReason::BadCompression),
        "{:?}",
        truncated.rejections
    );
    let broken_array = run(format!("[{}, {{\"kind\": ", event("a1")).as_bytes());
    assert_eq!(ids(&broken_array), ["a1"]);
    assert_eq!(broken_array.rejections[0].reason, RejectReason::InvalidJson);
}

fn with_objects(
    mut base: Value,
    resource: &str,
    verb: &str,
    request: Value,
    response: Option<Value>,
) -> Value {
    base["verb"] = json!(verb);
    base["objectRef"] = json!({"resource": resource, "namespace": "default", "apiVersion": "v1"});
    base["requestObject"] = request;
    if let Some(response) = response {
        base["responseObject"] = response;
    }
    base
}

#[test]
fn a_pod_spec_is_extracted_from_the_response_when_it_is_the_pod() {
    let request = json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"generateName": "web-"}, "spec": {
        "hostPID": true,
        "containers": [{"name": "app", "image": "nginx:1.25", "securityContext": {"privileged": true, "capabilities": {"add": ["SYS_ADMIN"]}},
                        "volumeMounts": [{"name": "root", "mountPath": "/host"}], "command": ["sh", "-c"], "args": ["sleep 1"]}],
        "volumes": [{"name": "root", "hostPath": {"path": "/", "type": ""}}]}});
    let mut response = request.clone();
    response["metadata"] = json!({"name": "web-x1", "namespace": "default", "uid": "u-1",
        "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d9f", "controller": true}]});
    response["spec"]["serviceAccountName"] = json!("default");
    let result = run(
        with_objects(event("w1"), "pods", "create", request, Some(response))
            .to_string()
            .as_bytes(),
    );
    let workload = result.events[0]
        .workload
        .as_ref()
        .expect("workload extracted");
    assert_eq!(workload.kind, "Pod");
    assert_eq!(workload.name.as_deref(), Some("web-x1"));
    assert_eq!(workload.owner_kind.as_deref(), Some("ReplicaSet"));
    assert_eq!(workload.service_account.as_deref(), Some("default"));
    assert!(workload.host_pid && !workload.host_network);
    let container = &workload.containers[0];
    assert!(container.privileged);
    assert_eq!(container.capabilities_added, ["SYS_ADMIN"]);
    assert_eq!(container.command, ["sh", "-c", "sleep 1"]);
    assert_eq!(workload.volumes[0].host_path.as_deref(), Some("/"));
    assert!(result.events[0].request_object.is_some());
}

#[test]
fn pod_templates_of_deployments_and_cronjobs_are_found() {
    let deployment = json!({"kind": "Deployment", "metadata": {"name": "api"}, "spec": {"template": {"spec": {
        "hostNetwork": true, "containers": [{"name": "c", "image": "api:1"}]}}}});
    let cronjob = json!({"kind": "CronJob", "metadata": {"name": "nightly"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "miner:latest", "securityContext": {"privileged": true}}]}}}}}});
    let text = format!(
        "{}\n{}\n",
        with_objects(event("d1"), "deployments", "create", deployment, None),
        with_objects(event("d2"), "cronjobs", "create", cronjob, None)
    );
    let result = run(text.as_bytes());
    let deployment = result.events[0].workload.as_ref().unwrap();
    assert_eq!(
        (deployment.kind.as_str(), deployment.host_network),
        ("Deployment", true)
    );
    let cronjob = result.events[1].workload.as_ref().unwrap();
    assert_eq!(cronjob.kind, "CronJob");
    assert!(cronjob.containers[0].privileged);
}

#[test]
fn access_reviews_say_what_permission_was_asked() {
    let asked = |spec: Value| json!({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "spec": spec});
    let text = [
        with_objects(event("a1"), "selfsubjectaccessreviews", "create",
            asked(json!({"resourceAttributes": {"verb": "create", "group": "rbac.authorization.k8s.io", "resource": "clusterrolebindings"}})), None),
        with_objects(event("a2"), "subjectaccessreviews", "create",
            asked(json!({"resourceAttributes": {"namespace": "shop", "verb": "create", "resource": "pods", "subresource": "exec"}, "user": "bob"})), None),
        with_objects(event("a3"), "selfsubjectaccessreviews", "create",
            asked(json!({"nonResourceAttributes": {"path": "/metrics", "verb": "get"}})), None),
        with_objects(event("a4"), "selfsubjectaccessreviews", "create",
            asked(json!({"resourceAttributes": {"verb": "list"}})), None),
        with_objects(event("a5"), "selfsubjectaccessreviews", "create", json!([1, 2]), None),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let result = run(text.as_bytes());
    let asked: Vec<Option<&str>> = result
        .events
        .iter()
        .map(|event| event.permission_checked.as_deref())
        .collect();
    assert_eq!(
        asked,
        [
            Some("create clusterrolebindings"),
            Some("create pods/exec in shop"),
            Some("get /metrics"),
            Some("list *"),
            // Not an access review's shape: the event stands, without the fact.
            None,
        ]
    );
}

#[test]
fn bindings_roles_services_and_configmap_credentials() {
    let binding = json!({"kind": "ClusterRoleBinding", "metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "name": "system:anonymous"}]});
    let role = json!({"kind": "ClusterRole", "metadata": {"name": "r"}, "rules": [{"verbs": ["*"], "apiGroups": [""], "resources": ["*"]}]});
    let service = json!({"kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080, "targetPort": 8080}], "selector": {"app": "web"}}});
    let config = json!({"kind": "ConfigMap", "data": {"access.properties": "aws_access_key_id = X\n", "ui.properties": "color=blue"}});
    let text = [
        with_objects(event("r1"), "clusterrolebindings", "create", binding, None),
        with_objects(event("r2"), "clusterroles", "create", role, None),
        with_objects(event("r3"), "services", "create", service, None),
        with_objects(event("r4"), "configmaps", "create", config, None),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let result = run(text.as_bytes());
    let binding = result.events[0].role_binding.as_ref().unwrap();
    assert_eq!(
        (
            binding.role_ref_name.as_str(),
            binding.subjects[0].name.as_str()
        ),
        ("cluster-admin", "system:anonymous")
    );
    assert_eq!(
        result.events[1].role.as_ref().unwrap().rules[0].verbs,
        ["*"]
    );
    let service = result.events[2].service.as_ref().unwrap();
    assert_eq!(
        (service.service_type.as_str(), service.ports[0].node_port),
        ("NodePort", Some(30080))
    );
    assert_eq!(service.ports[0].target_port.as_deref(), Some("8080"));
    assert_eq!(
        result.events[3].config_map_credential_keys,
        ["access.properties"]
    );
}

#[test]
fn objects_over_the_bound_are_left_out_but_their_facts_kept() {
    let big = json!({"kind": "Pod", "metadata": {"name": "big", "annotations": {"blob": "y".repeat(2000)}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": true}}]}});
    let limits = Limits {
        max_object_bytes: 1000,
        ..Limits::default()
    };
    let result = run_with(
        with_objects(event("big"), "pods", "create", big, None)
            .to_string()
            .as_bytes(),
        limits,
    );
    let event = &result.events[0];
    assert!(event.objects_truncated);
    assert!(event.request_object.is_none());
    assert!(event.workload.as_ref().unwrap().containers[0].privileged);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let result = run(&bytes);
        let stats = result.ingestor.stats();
        prop_assert_eq!(stats.events, result.events.len() as u64);
        prop_assert_eq!(stats.rejected_total(), result.rejections.len() as u64);
    }

    #[test]
    fn mutated_events_never_panic(cut in 0usize..600, insert in any::<u8>()) {
        let mut bytes = event("m").to_string().into_bytes();
        let at = cut.min(bytes.len());
        bytes.insert(at, insert);
        let _ = run(&bytes);
        let _ = run(&bytes[..at]);
    }
}

#[test]
fn a_transport_s_cluster_goes_to_events_whose_envelope_names_none() {
    let bare = event("bare").to_string();
    let envelope = json!({
        "messageType": "DATA_MESSAGE", "logGroup": "/aws/eks/from-the-log-group/cluster",
        "logStream": "kube-apiserver-audit-1",
        "logEvents": [{"id": "1", "timestamp": 1, "message": event("enveloped").to_string()}]
    })
    .to_string();
    let mut ingestor = Ingestor::new(Limits::default());
    let mut clusters = Vec::new();
    for payload in [&bare, &envelope] {
        ingestor.ingest_payload_from(
            payload.as_bytes(),
            None,
            Some("from-the-gateway"),
            &mut |item| {
                if let Ok(Event::Audit(event)) = item {
                    clusters.push((event.audit_id.clone(), event.cluster_hint.clone()));
                }
            },
        );
    }
    assert_eq!(
        clusters,
        [
            ("bare".to_owned(), Some("from-the-gateway".to_owned())),
            (
                "enveloped".to_owned(),
                Some("from-the-log-group".to_owned())
            ),
        ]
    );
    let mut without = None;
    Ingestor::new(Limits::default()).ingest_payload_from(
        bare.as_bytes(),
        None,
        None,
        &mut |item| {
            if let Ok(Event::Audit(event)) = item {
                without = Some(event.cluster_hint.clone());
            }
        },
    );
    assert_eq!(without, Some(None));
}

#[test]
fn a_pretty_printed_value_is_parsed_once_not_at_every_line() {
    // 300 pretty-printed events of about 30 lines each: one parse per event. Parsing each value
    // again from its start at every line made 3,479 such events take minutes.
    let text: String = (0..300)
        .map(|index| serde_json::to_string_pretty(&event(&format!("p{index}"))).unwrap() + "\n")
        .collect();
    assert!(text.lines().count() > 300 * 25);
    let result = run(text.as_bytes());
    assert_eq!(result.events.len(), 300);
    assert!(result.rejections.is_empty(), "{:?}", result.rejections);
    assert_eq!(result.ingestor.multiline_parses(), 300);
}

#[test]
fn a_line_cut_short_is_rejected_alone_and_the_next_line_is_read() {
    let whole = event("cut").to_string();
    // Cut inside a string, cut after a value, cut after an opening brace: each followed by a good
    // event on the next line, which must be read.
    for cut in [
        whole.find("kubectl").unwrap() + 3,
        whole.find(",\"user\"").unwrap(),
        whole.find("{\"extra\"").unwrap() + 1,
    ] {
        let text = format!("{}\n{}\n{}\n", &whole[..cut], event("next"), event("after"));
        let result = run(text.as_bytes());
        assert_eq!(
            ids(&result),
            ["next", "after"],
            "cut at {cut}: {:?}",
            result.rejections
        );
        assert_eq!(result.rejections.len(), 1, "{:?}", result.rejections);
        assert_eq!(result.rejections[0].line, Some(1));
        assert_eq!(result.rejections[0].reason, RejectReason::InvalidJson);
    }
    // A pretty-printed value cut short, then a good line.
    let pretty = serde_json::to_string_pretty(&event("cut")).unwrap();
    let half: Vec<&str> = pretty.lines().take(8).collect();
    let text = format!("{}\n{}\n", half.join("\n"), event("next"));
    let result = run(text.as_bytes());
    assert_eq!(ids(&result), ["next"], "{:?}", result.rejections);
    assert_eq!(result.rejections.len(), 1);
}

#[test]
fn a_reused_audit_id_with_another_event_is_read_and_counted() {
    // The client sets Audit-ID: an attacker's call that reuses an earlier event's id is its own
    // event, not a redelivery.
    let first = event("reused-id");
    let mut attack = event("reused-id");
    attack["user"]["username"] = json!("system:anonymous");
    attack["verb"] = json!("get");
    attack["objectRef"]["resource"] = json!("secrets");
    let text = format!("{first}\n{attack}\n{first}\n{attack}\n");
    let result = run(text.as_bytes());
    let users: Vec<&str> = result
        .events
        .iter()
        .map(|event| event.user.username.as_str())
        .collect();
    assert_eq!(users, ["alice", "system:anonymous"]);
    // The reused one says so, for detection (DefenseEvasion:Kubernetes/AuditIdReused).
    let reused: Vec<bool> = result
        .events
        .iter()
        .map(|event| event.audit_id_reused)
        .collect();
    assert_eq!(reused, [false, true]);
    let stats = result.ingestor.stats();
    assert_eq!(
        stats
            .tolerated
            .get(&vigil_ingest::Tolerance::IdReused)
            .copied(),
        Some(1)
    );
    // The exact repeats are redeliveries.
    assert_eq!(stats.skipped.get(&SkipReason::Duplicate).copied(), Some(2));
}

fn bounded(max_inflated_bytes: u64) -> Limits {
    Limits {
        max_inflated_bytes: Some(max_inflated_bytes),
        ..Limits::default()
    }
}

/// A gzip bomb: a few hundred kilobytes that inflate to 100 MB of one line. Bounded, the stream
/// stops at the budget with one too_large rejection; the events before it are kept.
#[test]
fn a_gzip_bomb_stops_at_the_inflated_budget_keeping_what_came_before() {
    let mut text = format!("{}\n{}\n", event("b1"), event("b2")).into_bytes();
    text.resize(text.len() + 100 * 1024 * 1024, b'x');
    let bomb = gzip(&text);
    assert!(bomb.len() < 1024 * 1024, "{} bytes compressed", bomb.len());
    let result = run_with(&bomb, bounded(8 * 1024 * 1024));
    assert_eq!(ids(&result), ["b1", "b2"]);
    let reasons: Vec<RejectReason> = result.rejections.iter().map(|r| r.reason).collect();
    assert_eq!(reasons, [RejectReason::TooLarge], "{:?}", result.rejections);
    assert!(
        result.rejections[0].detail.contains("inflates past"),
        "{}",
        result.rejections[0].detail
    );

    // A stream that ends exactly at the budget is whole, and a JSON array is bounded the same way.
    let exact = format!("{}\n", event("e1"));
    let result = run_with(&gzip(exact.as_bytes()), bounded(exact.len() as u64));
    assert_eq!((ids(&result), result.rejections.len()), (vec!["e1"], 0));
    let mut array = format!("[{},", event("a1")).into_bytes();
    array.extend(std::iter::repeat_n(b' ', 20 * 1024 * 1024));
    let result = run_with(&gzip(&array), bounded(1024 * 1024));
    assert_eq!(ids(&result), ["a1"]);
    assert_eq!(result.rejections[0].reason, RejectReason::TooLarge);
}

/// Millions of garbage lines inflated from one small message: each is rejected (counted), up to
/// the budget.
#[test]
fn garbage_lines_inflated_from_a_small_message_are_counted_up_to_the_budget() {
    let lines = "not json\n".repeat(2_000_000);
    let result = run_with(&gzip(lines.as_bytes()), bounded(900_000));
    let invalid = result
        .rejections
        .iter()
        .filter(|r| r.reason == RejectReason::InvalidJson)
        .count();
    assert_eq!(invalid, 100_000, "900,000 bytes hold 100,000 lines of nine");
    assert_eq!(
        result.rejections.last().map(|r| r.reason),
        Some(RejectReason::TooLarge)
    );
    assert_eq!(
        result.ingestor.stats().rejected_total(),
        result.rejections.len() as u64
    );
}

/// Nesting deeper than the JSON parser's recursion bound, as an array and as a line: rejected, not
/// a stack overflow.
#[test]
fn nesting_a_hundred_thousand_deep_is_rejected() {
    let deep_array = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let result = run(deep_array.as_bytes());
    assert!(result.events.is_empty());
    assert_eq!(result.rejections.len(), 1, "{:?}", result.rejections);
    let deep_object = format!(
        "{}1{}\n{}\n",
        "{\"a\":".repeat(100_000),
        "}".repeat(100_000),
        event("after")
    );
    let result = run(deep_object.as_bytes());
    assert_eq!(ids(&result), ["after"]);
    assert_eq!(result.rejections.len(), 1, "{:?}", result.rejections);
}
