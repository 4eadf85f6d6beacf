//! Vigil's native runtime JSON: one object per event, for any agent a user runs (an eBPF sensor of
//! their own, auditd through Vector or Fluent Bit). Documented in the README, field by field:
//!
//! ```json
//! {"schema": "vigil.runtime/v1", "time": "2026-11-30T10:00:00.123Z", "kind": "process_exec",
//!  "id": "optional, the agent's own event id",
//!  "cluster": "prod", "node": "ip-10-0-1-5.ec2.internal",
//!  "container": {"id": "containerd://0123...", "name": "web", "image": "nginx:1.27",
//!                "started_at": "2026-11-30T09:00:00Z"},
//!  "pod": {"name": "web-7d9f-abcde", "namespace": "shop"},
//!  "process": {"pid": 4242, "exec_id": "...", "parent_exec_id": "...", "binary": "/bin/sh",
//!              "args": "-c id", "cwd": "/", "uid": 0, "euid": 0, "start_time": "...", "flags": ""},
//!  "parent": {"binary": "/usr/sbin/nginx", "...": "same fields as process"},
//!  "capabilities": ["CAP_SYS_ADMIN"], "host_namespaces": ["mnt", "pid"],
//!  "file": {"path": "/etc/shadow", "new_path": null},
//!  "network": {"protocol": "tcp", "src_ip": "10.0.1.5", "src_port": 40000,
//!              "dst_ip": "203.0.113.9", "dst_port": 4444, "domain": "c2.example"},
//!  "dns": {"query": "pool.example", "answers": ["203.0.113.9"]},
//!  "module": {"name": "rootkit"},
//!  "mount": {"source": "/dev/sda1", "target": "/mnt/host", "fs_type": "ext4"},
//!  "target_pid": 1, "ptrace_request": "PTRACE_POKETEXT", "new_uid": 0}
//! ```
//!
//! `kind` is one of `RUNTIME_KINDS`; only `schema`, `time`, `kind` and `process.binary` are required.

use serde::Deserialize;
use vigil_schemas::time::parse_rfc3339_micros;
use vigil_schemas::{NetworkInfo, ProcessInfo, RUNTIME_KINDS, RuntimeEvent, RuntimeKind};

use super::{MAX_LIST, bounded, bounded_opt, container_id, digest_id, protocol_name};
use crate::{RejectReason, Rejection};

/// The value of `schema` that marks the native form.
pub(crate) const SCHEMA: &str = "vigil.runtime/v1";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Native {
    #[allow(dead_code)]
    schema: String,
    id: Option<String>,
    time: String,
    kind: String,
    cluster: Option<String>,
    node: Option<String>,
    container: Option<NativeContainer>,
    pod: Option<NativePod>,
    process: NativeProcess,
    parent: Option<NativeProcess>,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    host_namespaces: Vec<String>,
    file: Option<NativeFile>,
    network: Option<NativeNetwork>,
    dns: Option<NativeDns>,
    module: Option<NativeModule>,
    mount: Option<NativeMount>,
    target_pid: Option<i64>,
    ptrace_request: Option<String>,
    new_uid: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeContainer {
    id: Option<String>,
    name: Option<String>,
    image: Option<String>,
    started_at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativePod {
    name: Option<String>,
    namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeProcess {
    pid: Option<i64>,
    exec_id: Option<String>,
    parent_exec_id: Option<String>,
    binary: String,
    args: Option<String>,
    cwd: Option<String>,
    uid: Option<i64>,
    euid: Option<i64>,
    start_time: Option<String>,
    flags: Option<String>,
    /// The executable's SHA-256.
    sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeFile {
    path: Option<String>,
    new_path: Option<String>,
    /// The file's SHA-256.
    sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeNetwork {
    protocol: Option<String>,
    src_ip: Option<String>,
    src_port: Option<i32>,
    dst_ip: Option<String>,
    dst_port: Option<i32>,
    domain: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeDns {
    query: String,
    #[serde(default)]
    answers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeModule {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeMount {
    source: Option<String>,
    target: Option<String>,
    fs_type: Option<String>,
}

fn process_info(process: NativeProcess) -> ProcessInfo {
    ProcessInfo {
        pid: process.pid,
        exec_id: process.exec_id,
        parent_exec_id: process.parent_exec_id,
        binary: bounded(process.binary),
        arguments: bounded_opt(process.args),
        cwd: bounded_opt(process.cwd),
        uid: process.uid,
        euid: process.euid,
        start_time_micros: process.start_time.as_deref().and_then(parse_rfc3339_micros),
        flags: process.flags,
    }
}

/// Parses one native event. `text` is the object as read, for the id when the agent gives none.
pub(crate) fn parse(text: &str) -> Result<RuntimeEvent, Rejection> {
    let native: Native = serde_json::from_str(text).map_err(|error| {
        Rejection::new(
            RejectReason::InvalidEvent,
            format!("not a valid {SCHEMA} event: {error}"),
        )
    })?;
    if RuntimeKind::parse(&native.kind).is_none() {
        return Err(Rejection::new(
            RejectReason::InvalidEvent,
            format!(
                "{SCHEMA} kind {:?} is not one of {}",
                native.kind,
                RUNTIME_KINDS.join(", ")
            ),
        ));
    }
    if native.process.binary.is_empty() {
        return Err(Rejection::new(
            RejectReason::InvalidEvent,
            format!("{SCHEMA} event without process.binary"),
        ));
    }
    let event_time_micros = parse_rfc3339_micros(&native.time).ok_or_else(|| {
        Rejection::new(
            RejectReason::InvalidEvent,
            format!("{SCHEMA} time {:?} is not RFC 3339", native.time),
        )
    })?;
    let event_id = match native.id {
        Some(id) if !id.is_empty() => format!("native:{}", bounded(id)),
        _ => digest_id("native", text),
    };
    let container = native.container;
    // The hash of the file the event is about: the file's, or for an exec its executable's.
    let declared_sha256 = native
        .file
        .as_ref()
        .and_then(|file| file.sha256.clone())
        .or_else(|| {
            (native.kind == "process_exec")
                .then(|| native.process.sha256.clone())
                .flatten()
        });
    let file_sha256 = match declared_sha256 {
        Some(text) => Some(super::sha256_hex(&text).ok_or_else(|| {
            Rejection::new(
                RejectReason::InvalidEvent,
                format!("{SCHEMA} sha256 {text:?} is not 64 hexadecimal digits"),
            )
        })?),
        None => None,
    };
    let (file_path, file_new_path) = native
        .file
        .map_or((None, None), |file| (file.path, file.new_path));
    let (dns_query, dns_answers) = native
        .dns
        .map_or((None, Vec::new()), |dns| (Some(dns.query), dns.answers));
    let (mount_source, mount_target, mount_fs_type) =
        native.mount.map_or((None, None, None), |mount| {
            (mount.source, mount.target, mount.fs_type)
        });
    Ok(RuntimeEvent {
        event_id,
        event_time_micros,
        kind: native.kind,
        sensor: "native".into(),
        cluster_hint: native.cluster,
        node_name: native.node,
        container_id: container
            .as_ref()
            .and_then(|container| container.id.as_deref())
            .map(container_id),
        container_name: container
            .as_ref()
            .and_then(|container| container.name.clone()),
        image: container
            .as_ref()
            .and_then(|container| container.image.clone()),
        container_started_micros: container
            .as_ref()
            .and_then(|container| container.started_at.as_deref())
            .and_then(parse_rfc3339_micros),
        pod_name: native.pod.as_ref().and_then(|pod| pod.name.clone()),
        pod_namespace: native.pod.and_then(|pod| pod.namespace),
        process: process_info(native.process),
        parent: native.parent.map(process_info),
        capabilities: native.capabilities.into_iter().take(MAX_LIST).collect(),
        host_namespaces: native.host_namespaces.into_iter().take(MAX_LIST).collect(),
        file_path: bounded_opt(file_path),
        file_new_path: bounded_opt(file_new_path),
        network: native.network.map(|network| NetworkInfo {
            protocol: network
                .protocol
                .as_deref()
                .map_or_else(|| "tcp".into(), protocol_name),
            source_ip: network.src_ip,
            source_port: network.src_port,
            destination_ip: network.dst_ip,
            destination_port: network.dst_port,
            destination_domain: network.domain,
        }),
        dns_query: bounded_opt(dns_query),
        dns_answers: dns_answers.into_iter().take(MAX_LIST).collect(),
        module_name: native.module.map(|module| bounded(module.name)),
        mount_source: bounded_opt(mount_source),
        mount_target: bounded_opt(mount_target),
        mount_fs_type,
        file_sha256,
        target_pid: native.target_pid,
        ptrace_request: native.ptrace_request,
        new_uid: native.new_uid,
        ..RuntimeEvent::default()
    })
}
