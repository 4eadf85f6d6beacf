//! Runtime sensor input: Tetragon's export, Falco's alerts and the native form, each to the
//! normalized `RuntimeEvent`, and every malformed shape to a rejection with its reason.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use proptest::prelude::*;
use vigil_ingest::{Ingestor, RejectReason, Rejection};
use vigil_schemas::Event;
use vigil_schemas::RuntimeEvent;

fn ingest(input: &str) -> (Vec<RuntimeEvent>, Vec<Rejection>) {
    let mut ingestor = Ingestor::default();
    let mut events = Vec::new();
    let mut rejections = Vec::new();
    ingestor.ingest_payload(input.as_bytes(), &mut |item| match item {
        Ok(Event::Runtime(event)) => events.push(*event),
        Err(rejection) => rejections.push(rejection),
        Ok(Event::Audit(event)) => panic!("runtime input read as audit: {event:?}"),
    });
    (events, rejections)
}

fn one(input: &str) -> RuntimeEvent {
    let (events, rejections) = ingest(input);
    assert!(rejections.is_empty(), "{rejections:?}");
    assert_eq!(events.len(), 1);
    events.into_iter().next().unwrap()
}

const POD: &str = r#""pod":{"namespace":"shop","name":"web-7d9f","container":{"id":"containerd://0123abcd","name":"web","image":{"id":"registry.example/shop/web@sha256:00","name":"registry.example/shop/web:1.4"},"start_time":"2026-11-30T09:00:00Z","pid":7}}"#;

fn tetragon(kind: &str, body: &str) -> String {
    format!(
        r#"{{"{kind}":{{"process":{{"exec_id":"bm9kZToxOjQy","pid":42,"uid":0,"cwd":"/","binary":"/bin/sh","arguments":"-c id","flags":"execve clone","start_time":"2026-11-30T10:00:00.000Z",{POD},"parent_exec_id":"bm9kZToxOjQx","cap":{{"effective":["CAP_CHOWN","CAP_SYS_ADMIN"]}},"ns":{{"mnt":{{"inum":1,"is_host":true}},"net":{{"inum":2,"is_host":false}}}}}},"parent":{{"exec_id":"bm9kZToxOjQx","pid":41,"binary":"/usr/sbin/nginx","arguments":"-g daemon off;","parent_exec_id":"bm9kZToxOjE="}}{body}}},"node_name":"ip-10-0-1-5","cluster_name":"shop-prod","time":"2026-11-30T10:00:01.500Z"}}"#
    )
}

#[test]
fn a_tetragon_exec_keeps_process_parent_pod_container_and_namespaces() {
    let event = one(&tetragon("process_exec", ""));
    assert_eq!(event.kind, "process_exec");
    assert_eq!(event.sensor, "tetragon");
    assert!(event.event_id.starts_with("tetragon:"));
    assert_eq!(event.event_time_micros, 1_796_032_801_500_000);
    assert_eq!(event.node_name.as_deref(), Some("ip-10-0-1-5"));
    assert_eq!(event.cluster_hint.as_deref(), Some("shop-prod"));
    assert_eq!(event.container_id.as_deref(), Some("0123abcd"));
    assert_eq!(
        event.image.as_deref(),
        Some("registry.example/shop/web:1.4")
    );
    assert_eq!(event.container_started_micros, Some(1_796_029_200_000_000));
    assert_eq!(event.pod_namespace.as_deref(), Some("shop"));
    assert_eq!(event.process.binary, "/bin/sh");
    assert_eq!(event.process.arguments.as_deref(), Some("-c id"));
    assert_eq!(event.process.exec_id.as_deref(), Some("bm9kZToxOjQy"));
    assert_eq!(event.parent.as_ref().unwrap().binary, "/usr/sbin/nginx");
    assert_eq!(event.capabilities, ["CAP_CHOWN", "CAP_SYS_ADMIN"]);
    assert_eq!(event.host_namespaces, ["mnt"]);
}

#[test]
fn tetragon_hooks_become_file_network_ptrace_mount_and_module_events() {
    let write = one(&tetragon(
        "process_kprobe",
        r#","function_name":"__x64_sys_write","args":[{"file_arg":{"path":"etc/passwd"}},{"bytes_arg":"AA=="},{"size_arg":"1"}],"action":"KPROBE_ACTION_POST""#,
    ));
    assert_eq!(write.kind, "file_write");
    assert_eq!(write.file_path.as_deref(), Some("/etc/passwd"));
    assert_eq!(write.sensor_rule.as_deref(), Some("__x64_sys_write"));

    let connect = one(&tetragon(
        "process_kprobe",
        r#","function_name":"tcp_connect","args":[{"sock_arg":{"family":"AF_INET","type":"SOCK_STREAM","protocol":"IPPROTO_TCP","saddr":"10.0.1.9","daddr":"203.0.113.9","sport":40000,"dport":4444}}]"#,
    ));
    assert_eq!(connect.kind, "network_connect");
    let network = connect.network.unwrap();
    assert_eq!(network.protocol, "tcp");
    assert_eq!(network.destination_ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(network.destination_port, Some(4444));

    let ptrace = one(&tetragon(
        "process_kprobe",
        r#","function_name":"__x64_sys_ptrace","args":[{"int_arg":4},{"int_arg":1}]"#,
    ));
    assert_eq!(ptrace.kind, "ptrace");
    assert_eq!(ptrace.ptrace_request.as_deref(), Some("PTRACE_POKETEXT"));
    assert_eq!(ptrace.target_pid, Some(1));

    let mount = one(&tetragon(
        "process_kprobe",
        r#","function_name":"__x64_sys_mount","args":[{"string_arg":"/dev/nvme0n1p1"},{"string_arg":"/mnt/host"},{"string_arg":"xfs"}]"#,
    ));
    assert_eq!(mount.kind, "mount");
    assert_eq!(mount.mount_source.as_deref(), Some("/dev/nvme0n1p1"));
    assert_eq!(mount.mount_target.as_deref(), Some("/mnt/host"));
    assert_eq!(mount.mount_fs_type.as_deref(), Some("xfs"));

    let module = one(&tetragon(
        "process_kprobe",
        r#","function_name":"do_init_module","args":[{"module_arg":{"name":"diamorphine"}}]"#,
    ));
    assert_eq!(module.kind, "module_load");
    assert_eq!(module.module_name.as_deref(), Some("diamorphine"));

    let tracepoint = one(&tetragon(
        "process_tracepoint",
        r#","subsys":"syscalls","event":"sys_enter_userfaultfd","args":[{"int_arg":0}]"#,
    ));
    assert_eq!(tracepoint.kind, "userfaultfd");

    let loader = one(&tetragon("process_loader", r#","path":"/tmp/evil.so""#));
    assert_eq!(loader.kind, "library_load");
    assert_eq!(loader.file_path.as_deref(), Some("/tmp/evil.so"));

    // A hook of the user's own policy that Vigil has no kind for is kept, not refused.
    let custom = one(&tetragon(
        "process_kprobe",
        r#","function_name":"security_bpf","args":[]"#,
    ));
    assert_eq!(custom.kind, "other");
    assert_eq!(custom.sensor_rule.as_deref(), Some("security_bpf"));
}

#[test]
fn the_older_tetragon_network_events_and_an_exec_without_time() {
    let connect = one(&tetragon(
        "process_connect",
        r#","source_ip":"10.0.1.9","source_port":40000,"destination_ip":"203.0.113.9","destination_port":443,"protocol":"TCP""#,
    ));
    assert_eq!(connect.kind, "network_connect");
    assert_eq!(
        connect.network.unwrap().destination_ip.as_deref(),
        Some("203.0.113.9")
    );
    // Exports of exec events without `time` (the testdata shape): the process's start is the time.
    let untimed = tetragon("process_exec", "").replace(r#","time":"2026-11-30T10:00:01.500Z""#, "");
    assert_eq!(one(&untimed).event_time_micros, 1_796_032_800_000_000);
    let untimed_exit =
        tetragon("process_exit", "").replace(r#","time":"2026-11-30T10:00:01.500Z""#, "");
    let (events, rejections) = ingest(&untimed_exit);
    assert!(events.is_empty());
    assert_eq!(rejections[0].reason, RejectReason::InvalidEvent);
    assert!(
        rejections[0].detail.contains("without a time"),
        "{}",
        rejections[0].detail
    );
}

#[test]
fn pretty_printed_tetragon_objects_one_after_another() {
    let pretty = serde_json::to_string_pretty(
        &serde_json::from_str::<serde_json::Value>(&tetragon("process_exec", "")).unwrap(),
    )
    .unwrap();
    let other = tetragon("process_exit", "").replace("bm9kZToxOjQy", "bm9kZToxOjQz");
    let (events, rejections) = ingest(&format!("{pretty}\n{other}\n"));
    assert!(rejections.is_empty(), "{rejections:?}");
    assert_eq!(events.len(), 2);
}

#[test]
fn sensor_output_tailed_by_a_log_shipper_is_read_from_its_envelope() {
    // Tetragon's export tailed by Fluent Bit without a parser; the same from the pod's CRI log.
    let exec = tetragon("process_exec", "");
    let shipped = serde_json::json!({"log": format!("{exec}\n"), "stream": "stdout"}).to_string();
    let same = one(&shipped);
    assert_eq!(same, one(&exec));
    let cri = format!("2026-11-30T10:00:01.600000000Z stdout F {exec}");
    assert_eq!(one(&cri), same);
}

#[test]
fn a_redelivered_runtime_event_is_recognised_by_its_id() {
    let line = tetragon("process_exec", "");
    let (events, _) = ingest(&format!("{line}\n{line}\n"));
    assert_eq!(events.len(), 1);
}

#[test]
fn malformed_tetragon_events_are_rejected_with_a_reason() {
    let no_binary = tetragon("process_exec", "").replace(r#""binary":"/bin/sh","#, "");
    let wrong_type = tetragon("process_exec", "").replace(r#""pid":42"#, r#""pid":"many""#);
    let no_process = r#"{"process_exec":{"parent":{}},"time":"2026-11-30T10:00:00Z"}"#.to_owned();
    let bad_time = tetragon("process_exec", "").replace("2026-11-30T10:00:01.500Z", "yesterday");
    for (input, needle) in [
        (no_binary, "no binary"),
        (wrong_type, "not a valid Tetragon event"),
        (no_process, "without a process"),
        (bad_time, "not RFC 3339"),
    ] {
        let (events, rejections) = ingest(&input);
        assert!(events.is_empty());
        assert_eq!(rejections.len(), 1);
        assert_eq!(rejections[0].reason, RejectReason::InvalidEvent);
        assert!(
            rejections[0].detail.contains(needle),
            "{}",
            rejections[0].detail
        );
    }
}

const FALCO: &str = r#"{"hostname":"ip-10-0-1-5","output":"10:00:00.000000000: Notice A shell was spawned in a container with an attached terminal (user=root container=web shell=bash)","priority":"Notice","rule":"Terminal shell in container","source":"syscall","tags":["container","mitre_execution","shell"],"time":"2026-11-30T10:00:00.123456789Z","output_fields":{"container.id":"0123abcd4567","container.image.repository":"registry.example/shop/web","container.image.tag":"1.4","container.name":"web","evt.time":1796032800123456789,"k8s.ns.name":"shop","k8s.pod.name":"web-7d9f","proc.cmdline":"bash -i","proc.exepath":"/bin/bash","proc.pid":4242,"proc.pname":"runc","user.uid":0,"user.name":"root","fd.name":"<NA>"}}"#;

#[test]
fn a_falco_audit_log_alert_names_no_node() {
    // The k8saudit plugins' hostname is Falco's own pod: nothing ran there.
    let audit = r#"{"hostname":"falco-k8saudit-0","output":"Warning privileged pod","priority":"Warning","rule":"Create Privileged Pod","source":"k8saudit-eks","tags":["k8s"],"time":"2026-11-30T10:00:00Z","output_fields":{"ka.user.name":"alice","ka.target.namespace":"shop"}}"#;
    let event = one(audit);
    assert_eq!(event.kind, "sensor_alert");
    assert_eq!(event.node_name, None);
    assert_eq!(one(FALCO).node_name.as_deref(), Some("ip-10-0-1-5"));
}

#[test]
fn a_falco_alert_becomes_a_sensor_alert_with_its_rule_priority_and_fields() {
    let event = one(FALCO);
    assert_eq!(event.kind, "sensor_alert");
    assert_eq!(event.sensor, "falco");
    assert_eq!(
        event.sensor_rule.as_deref(),
        Some("Terminal shell in container")
    );
    assert_eq!(event.sensor_priority.as_deref(), Some("Notice"));
    assert_eq!(event.event_time_micros, 1_796_032_800_123_456);
    assert_eq!(
        event.image.as_deref(),
        Some("registry.example/shop/web:1.4")
    );
    assert_eq!(event.pod_name.as_deref(), Some("web-7d9f"));
    assert_eq!(event.process.binary, "/bin/bash");
    assert_eq!(event.process.arguments.as_deref(), Some("-i"));
    assert_eq!(event.parent.unwrap().binary, "runc");
    assert!(event.file_path.is_none(), "<NA> is Falco's empty value");
    let tags = event
        .sensor_fields
        .iter()
        .find(|kv| kv.key == "tags")
        .unwrap();
    assert_eq!(tags.value, "container,mitre_execution,shell");
    let (_, rejections) = ingest(
        &FALCO
            .replace(r#""time":"2026-11-30T10:00:00.123456789Z","#, "")
            .replace(r#""evt.time":1796032800123456789,"#, ""),
    );
    assert_eq!(rejections[0].reason, RejectReason::InvalidEvent);
}

#[test]
fn native_events_of_every_kind() {
    let base = |kind: &str, extra: &str| {
        format!(
            r#"{{"schema":"vigil.runtime/v1","time":"2026-11-30T10:00:00Z","kind":"{kind}","node":"n1","cluster":"shop-prod","container":{{"id":"docker://abc","name":"web","image":"nginx:1.27","started_at":"2026-11-30T09:00:00Z"}},"pod":{{"name":"web-1","namespace":"shop"}},"process":{{"pid":7,"binary":"/bin/sh","args":"-c id","uid":0}}{extra}}}"#
        )
    };
    for kind in vigil_schemas::RUNTIME_KINDS {
        let event = one(&base(kind, ""));
        assert_eq!(event.kind, *kind);
        assert_eq!(event.sensor, "native");
        assert_eq!(event.container_id.as_deref(), Some("abc"));
    }
    let dns = one(&base(
        "dns_query",
        r#","dns":{"query":"rbndr.example","answers":["169.254.169.254"]}"#,
    ));
    assert_eq!(dns.dns_query.as_deref(), Some("rbndr.example"));
    assert_eq!(dns.dns_answers, ["169.254.169.254"]);
    let with_id = one(&base("process_exec", r#","id":"agent-42""#));
    assert_eq!(with_id.event_id, "native:agent-42");
    let network = one(&base(
        "network_connect",
        r#","network":{"protocol":"TCP","dst_ip":"203.0.113.9","dst_port":4444,"domain":"c2.example"}"#,
    ));
    let info = network.network.unwrap();
    assert_eq!(info.protocol, "tcp");
    assert_eq!(info.destination_domain.as_deref(), Some("c2.example"));

    for (input, reason, needle) in [
        (
            base("teleport", ""),
            RejectReason::InvalidEvent,
            "is not one of",
        ),
        (
            base("process_exec", r#","colour":"red""#),
            RejectReason::InvalidEvent,
            "unknown field",
        ),
        (
            base("process_exec", "").replace(r#""binary":"/bin/sh","#, ""),
            RejectReason::InvalidEvent,
            "binary",
        ),
        (
            base("process_exec", "").replace("vigil.runtime/v1", "vigil.runtime/v9"),
            RejectReason::UnknownShape,
            "vigil.runtime/v9",
        ),
    ] {
        let (events, rejections) = ingest(&input);
        assert!(events.is_empty(), "{input}");
        assert_eq!(rejections[0].reason, reason, "{input}");
        assert!(
            rejections[0].detail.contains(needle),
            "{}",
            rejections[0].detail
        );
    }
}

proptest! {
    /// Whatever a Tetragon-shaped object holds, ingest answers with an event or a rejection.
    #[test]
    fn arbitrary_tetragon_shaped_objects_never_panic(
        kind in prop::sample::select(vec!["process_exec", "process_kprobe", "process_exit", "process_tracepoint"]),
        body in prop::collection::btree_map("[a-z_]{1,12}", prop_oneof![
            Just(serde_json::json!(null)), any::<i64>().prop_map(|n| serde_json::json!(n)),
            "[ -~]{0,20}".prop_map(|s| serde_json::json!(s)),
            Just(serde_json::json!({"binary": "/bin/sh"})),
            Just(serde_json::json!([{"file_arg": {"path": 7}}, {"int_arg": "x"}, {"sock_arg": {"dport": -1}}])),
        ], 0..6),
        time in prop::option::of("[0-9TZ:.-]{0,30}"),
    ) {
        let mut object = serde_json::Map::new();
        object.insert(kind.to_owned(), serde_json::Value::Object(body.into_iter().collect()));
        if let Some(time) = time {
            object.insert("time".into(), serde_json::json!(time));
        }
        let text = serde_json::Value::Object(object).to_string();
        let (events, rejections) = ingest(&text);
        prop_assert_eq!(events.len() + rejections.len(), 1);
    }
}

const HASH: &str = "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

#[test]
fn executed_files_keep_the_sha256_their_sensor_reports() {
    // Tetragon's LSM exec check with `imaHash: true`: `sha256:HEX`, in any case.
    let checked = one(&tetragon(
        "process_lsm",
        &format!(
            r#","function_name":"bprm_check_security","policy_name":"file-integrity","ima_hash":"sha256:{}","args":[{{"linux_binprm_arg":{{"path":"/tmp/xmrig"}}}}]"#,
            HASH.to_ascii_uppercase()
        ),
    ));
    assert_eq!(checked.file_sha256.as_deref(), Some(HASH));
    assert_eq!(checked.file_path.as_deref(), Some("/tmp/xmrig"));
    // Another algorithm is not a SHA-256.
    let md5 = one(&tetragon(
        "process_lsm",
        r#","function_name":"bprm_check_security","ima_hash":"md5:0123456789abcdef0123456789abcdef""#,
    ));
    assert_eq!(md5.file_sha256, None);
    // The native form: the executable's hash on an exec, the file's on a file event.
    let native = |kind: &str, extra: &str| {
        format!(
            r#"{{"schema":"vigil.runtime/v1","time":"2026-11-30T10:00:00Z","kind":"{kind}","node":"n1","process":{{"pid":7,"binary":"/tmp/xmrig","sha256":"{HASH}"}}{extra}}}"#
        )
    };
    assert_eq!(
        one(&native("process_exec", "")).file_sha256.as_deref(),
        Some(HASH)
    );
    assert_eq!(one(&native("file_read", "")).file_sha256, None);
    let written = one(&native(
        "file_write",
        &format!(r#","file":{{"path":"/tmp/x","sha256":"sha256:{HASH}"}}"#),
    ));
    assert_eq!(written.file_sha256.as_deref(), Some(HASH));
    // A native hash that is not one is refused, saying so.
    let (events, rejections) = ingest(&native("process_exec", "").replace(HASH, "abc123"));
    assert!(events.is_empty());
    assert!(
        rejections[0].detail.contains("64 hexadecimal"),
        "{rejections:?}"
    );
}
