//! Tetragon's JSON export (`tetra getevents -o json`, the export file, or its gRPC stream relayed as
//! JSON): one object per event, keyed by the event type, with `node_name` and `time` beside it.
//!
//! Kprobes, tracepoints and LSM hooks are told apart by the hooked function: the syscall and kernel
//! function names of Tetragon's reference policies map to Vigil's kinds (file, network, module,
//! mount, ptrace, memory and privilege events); any other hook is kept as kind `other` with its
//! function in `sensor_rule`, never refused, since policies are the user's to write.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use vigil_schemas::time::parse_rfc3339_micros;
use vigil_schemas::{NetworkInfo, ProcessInfo, RuntimeEvent};

use super::{MAX_LIST, bounded, bounded_opt, container_id, digest_id, protocol_name, sha256_hex};
use crate::{RejectReason, Rejection};

#[derive(Debug, Deserialize)]
struct Envelope {
    node_name: Option<String>,
    cluster_name: Option<String>,
    time: Option<String>,
    process_exec: Option<Body>,
    process_exit: Option<Body>,
    process_kprobe: Option<Body>,
    process_tracepoint: Option<Body>,
    process_lsm: Option<Body>,
    process_uprobe: Option<Body>,
    process_loader: Option<Body>,
    process_connect: Option<Body>,
    process_close: Option<Body>,
    process_listen: Option<Body>,
}

/// The body of any event type: the fields each type has, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Body {
    process: Option<Process>,
    parent: Option<Process>,
    // kprobe, lsm, uprobe
    function_name: Option<String>,
    // lsm with `imaHash: true` in the policy: `sha256:HEX` of the file the hook checked
    ima_hash: Option<String>,
    args: Vec<Value>,
    // tracepoint
    subsys: Option<String>,
    event: Option<String>,
    // loader
    path: Option<String>,
    // process_connect / close / listen (before kprobe-based networking)
    source_ip: Option<String>,
    source_port: Option<i64>,
    destination_ip: Option<String>,
    destination_port: Option<i64>,
    protocol: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Process {
    exec_id: Option<String>,
    pid: Option<i64>,
    uid: Option<i64>,
    cwd: Option<String>,
    binary: Option<String>,
    arguments: Option<String>,
    flags: Option<String>,
    start_time: Option<String>,
    pod: Option<Pod>,
    parent_exec_id: Option<String>,
    cap: Option<Capabilities>,
    ns: Option<BTreeMap<String, Namespace>>,
    process_credentials: Option<Credentials>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Pod {
    namespace: Option<String>,
    name: Option<String>,
    container: Option<Container>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Container {
    id: Option<String>,
    name: Option<String>,
    image: Option<Image>,
    start_time: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Image {
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Capabilities {
    effective: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Namespace {
    is_host: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Credentials {
    euid: Option<i64>,
}

fn process_info(process: &Process) -> ProcessInfo {
    ProcessInfo {
        pid: process.pid,
        exec_id: process.exec_id.clone(),
        parent_exec_id: process.parent_exec_id.clone(),
        binary: bounded(process.binary.clone().unwrap_or_default()),
        arguments: bounded_opt(process.arguments.clone()),
        cwd: bounded_opt(process.cwd.clone()),
        uid: process.uid,
        euid: process
            .process_credentials
            .as_ref()
            .and_then(|credentials| credentials.euid),
        start_time_micros: process.start_time.as_deref().and_then(parse_rfc3339_micros),
        flags: process.flags.clone(),
    }
}

/// A hook's function name without the architecture's syscall prefix: tracepoints are
/// `sys_enter_NAME`, kprobes `__x64_sys_NAME` and their kin.
fn bare_hook(function: &str) -> &str {
    [
        "sys_enter_",
        "__x64_sys_",
        "__arm64_sys_",
        "__ia32_sys_",
        "__se_sys_",
        "ksys_",
        "sys_",
    ]
    .iter()
    .find_map(|prefix| function.strip_prefix(prefix))
    .unwrap_or(function)
}

/// Kernel and syscall function names to a kind, without the architecture's syscall prefix.
fn hook_kind(function: &str) -> &'static str {
    match bare_hook(function) {
        "write"
        | "pwrite64"
        | "writev"
        | "pwritev"
        | "pwritev2"
        | "vfs_write"
        | "truncate"
        | "ftruncate"
        | "security_file_truncate"
        | "security_path_truncate"
        | "do_truncate" => "file_write",
        "read" | "pread64" | "readv" | "preadv" | "vfs_read" => "file_read",
        "creat" => "file_write",
        "open"
        | "openat"
        | "openat2"
        | "fd_install"
        | "security_file_open"
        | "file_open"
        | "do_sys_open"
        | "do_sys_openat2"
        | "security_file_permission"
        | "security_mmap_file"
        | "mmap_file" => "file_open",
        "rename"
        | "renameat"
        | "renameat2"
        | "security_path_rename"
        | "vfs_rename"
        | "security_inode_rename" => "file_rename",
        "unlink"
        | "unlinkat"
        | "rmdir"
        | "security_path_unlink"
        | "vfs_unlink"
        | "security_inode_unlink" => "file_unlink",
        "link"
        | "linkat"
        | "symlink"
        | "symlinkat"
        | "security_path_link"
        | "security_path_symlink" => "file_link",
        "chmod"
        | "fchmod"
        | "fchmodat"
        | "security_path_chmod"
        | "chown"
        | "fchownat"
        | "security_path_chown" => "file_chmod",
        "connect" | "tcp_connect" | "security_socket_connect" | "udp_sendmsg" => "network_connect",
        "accept" | "accept4" | "inet_csk_accept" | "security_socket_accept" => "network_accept",
        "listen" | "inet_csk_listen_start" | "security_socket_listen" => "network_listen",
        "tcp_close" | "close" => "network_close",
        "ptrace" | "security_ptrace_access_check" => "ptrace",
        "process_vm_writev" => "process_vm_write",
        "init_module"
        | "finit_module"
        | "do_init_module"
        | "load_module"
        | "security_kernel_module_request"
        | "security_kernel_load_data" => "module_load",
        "mount" | "fsmount" | "move_mount" | "security_sb_mount" | "path_mount" | "do_mount" => {
            "mount"
        }
        "setuid" | "setreuid" | "setresuid" | "setfsuid" | "commit_creds" => "privilege_change",
        "memfd_create" => "memfd_create",
        "userfaultfd" => "userfaultfd",
        _ => "other",
    }
}

/// `MAY_WRITE` and `MAY_READ` of `security_file_permission`'s mask.
const MAY_WRITE: i64 = 0x2;
const MAY_READ: i64 = 0x4;
/// `PROT_WRITE` and `PROT_EXEC` of `security_mmap_file`'s protection.
const PROT_WRITE: i64 = 0x2;
const PROT_EXEC: i64 = 0x4;
/// `O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND`: an open that can change the file.
const OPEN_FOR_WRITE: i64 = 0x1 | 0x2 | 0x40 | 0x200 | 0x400;

/// The kind an access hook's arguments make of it, as Tetragon's documented file policies write
/// them: `security_file_permission(file, int mask)` is a write with `MAY_WRITE`, a read with
/// `MAY_READ`; `security_mmap_file(file, uint32 prot, ...)` maps a file writable (a write) or
/// executable (a library loaded); an open (`sys_openat(int, string, int flags)`, `sys_open(string,
/// int flags)`, `fd_install(int, file)` with the file's flags) is a write when its flags can change
/// the file. Everything else keeps the hook's kind.
fn refined_kind(hook: &str, kind: &'static str, arguments: &Arguments) -> &'static str {
    let name = bare_hook(hook);
    let int = |index: usize| arguments.ints.get(index).copied();
    match name {
        "security_file_permission" => match int(0) {
            Some(mask) if mask & MAY_WRITE != 0 => "file_write",
            Some(mask) if mask & MAY_READ != 0 => "file_read",
            _ => kind,
        },
        "security_mmap_file" | "mmap_file" => match int(0) {
            Some(prot) if prot & PROT_WRITE != 0 => "file_write",
            Some(prot) if prot & PROT_EXEC != 0 => "library_load",
            _ => kind,
        },
        _ if kind == "file_open" => {
            let flags = match name {
                "openat" => int(1),
                "open" => int(0),
                _ => None,
            };
            let written_flags = arguments.file_flags.iter().any(|flags| {
                ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"]
                    .iter()
                    .any(|flag| flags.contains(flag))
            });
            if written_flags || flags.is_some_and(|flags| flags & OPEN_FOR_WRITE != 0) {
                "file_write"
            } else {
                kind
            }
        }
        _ => kind,
    }
}

/// Tetragon prints a file's path from the root without its leading slash in some versions.
fn absolute(path: &str) -> String {
    if path.starts_with('/') || path.is_empty() {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

use crate::json::{int as int_of, text as text_of};

/// The ptrace requests that matter for detection, by number (`linux/ptrace.h`).
fn ptrace_request_name(request: i64) -> String {
    match request {
        0 => "PTRACE_TRACEME".into(),
        4 => "PTRACE_POKETEXT".into(),
        5 => "PTRACE_POKEDATA".into(),
        6 => "PTRACE_POKEUSER".into(),
        13 => "PTRACE_SETREGS".into(),
        16 => "PTRACE_ATTACH".into(),
        0x4206 => "PTRACE_SEIZE".into(),
        other => format!("PTRACE_{other}"),
    }
}

/// What a hook's arguments say, by the argument types Tetragon writes.
#[derive(Default)]
struct Arguments {
    paths: Vec<String>,
    texts: Vec<String>,
    ints: Vec<i64>,
    network: Option<NetworkInfo>,
    module: Option<String>,
    /// The open flags a `file` argument carries (`O_WRONLY|O_CREAT`), where Tetragon writes them.
    file_flags: Vec<String>,
}

fn read_arguments(args: &[Value]) -> Arguments {
    let mut found = Arguments::default();
    for arg in args.iter().take(MAX_LIST) {
        let Value::Object(map) = arg else { continue };
        for (key, value) in map {
            match key.as_str() {
                "file_arg" | "path_arg" | "linux_binprm_arg" => {
                    if let Some(path) = value.get("path").and_then(Value::as_str) {
                        found.paths.push(absolute(path));
                    }
                    if let Some(flags) = value.get("flags").and_then(Value::as_str) {
                        found.file_flags.push(flags.to_owned());
                    }
                }
                "string_arg" => found.texts.extend(text_of(value)),
                "int_arg" | "long_arg" | "uint_arg" | "size_arg" => {
                    found.ints.extend(int_of(value))
                }
                "sock_arg" | "sockaddr_arg" => {
                    let field = |name: &str| value.get(name).and_then(text_of);
                    found.network = Some(NetworkInfo {
                        protocol: field("protocol")
                            .map(|protocol| protocol_name(&protocol))
                            .unwrap_or_else(|| "tcp".into()),
                        source_ip: field("saddr"),
                        source_port: value.get("sport").and_then(int_of).and_then(port),
                        destination_ip: field("daddr").or_else(|| field("addr")),
                        destination_port: value
                            .get("dport")
                            .or_else(|| value.get("port"))
                            .and_then(int_of)
                            .and_then(port),
                        destination_domain: None,
                    });
                }
                "module_arg" => {
                    found.module = value.get("name").and_then(Value::as_str).map(str::to_owned);
                }
                _ => {}
            }
        }
    }
    found
}

fn port(value: i64) -> Option<i32> {
    i32::try_from(value).ok().filter(|port| *port >= 0)
}

/// Parses one Tetragon export object. `text` is the object as read, for the deterministic id.
pub(crate) fn parse(text: &str) -> Result<RuntimeEvent, Rejection> {
    let envelope: Envelope = serde_json::from_str(text).map_err(|error| {
        Rejection::new(
            RejectReason::InvalidEvent,
            format!("not a valid Tetragon event: {error}"),
        )
    })?;
    let (event_type, body) = [
        ("process_exec", envelope.process_exec),
        ("process_exit", envelope.process_exit),
        ("process_kprobe", envelope.process_kprobe),
        ("process_tracepoint", envelope.process_tracepoint),
        ("process_lsm", envelope.process_lsm),
        ("process_uprobe", envelope.process_uprobe),
        ("process_loader", envelope.process_loader),
        ("process_connect", envelope.process_connect),
        ("process_close", envelope.process_close),
        ("process_listen", envelope.process_listen),
    ]
    .into_iter()
    .find_map(|(name, body)| body.map(|body| (name, body)))
    .ok_or_else(|| {
        Rejection::new(
            RejectReason::UnknownShape,
            "a Tetragon export object without an event type Vigil reads",
        )
    })?;
    let process = body.process.as_ref().ok_or_else(|| {
        Rejection::new(
            RejectReason::InvalidEvent,
            format!("Tetragon {event_type} without a process"),
        )
    })?;
    if process.binary.as_deref().is_none_or(str::is_empty) {
        return Err(Rejection::new(
            RejectReason::InvalidEvent,
            format!("Tetragon {event_type} whose process has no binary"),
        ));
    }
    // An exec is its process's start; other events without `time` have no time of their own.
    let time = envelope
        .time
        .as_deref()
        .or(if event_type == "process_exec" {
            process.start_time.as_deref()
        } else {
            None
        })
        .ok_or_else(|| {
            Rejection::new(
                RejectReason::InvalidEvent,
                format!("Tetragon {event_type} without a time"),
            )
        })?;
    let event_time_micros = parse_rfc3339_micros(time).ok_or_else(|| {
        Rejection::new(
            RejectReason::InvalidEvent,
            format!("Tetragon {event_type} time {time:?} is not RFC 3339"),
        )
    })?;

    let pod = process.pod.as_ref();
    let container = pod.and_then(|pod| pod.container.as_ref());
    let mut event = RuntimeEvent {
        event_id: digest_id("tetragon", text),
        event_time_micros,
        kind: String::new(),
        sensor: "tetragon".into(),
        cluster_hint: envelope.cluster_name,
        node_name: envelope.node_name,
        container_id: container
            .and_then(|container| container.id.as_deref())
            .map(container_id),
        container_name: container.and_then(|container| container.name.clone()),
        image: container
            .and_then(|container| container.image.as_ref())
            .and_then(|image| image.name.clone()),
        container_started_micros: container
            .and_then(|container| container.start_time.as_deref())
            .and_then(parse_rfc3339_micros),
        pod_name: pod.and_then(|pod| pod.name.clone()),
        pod_namespace: pod.and_then(|pod| pod.namespace.clone()),
        process: process_info(process),
        parent: body.parent.as_ref().map(process_info),
        capabilities: process
            .cap
            .as_ref()
            .map(|cap| cap.effective.iter().take(MAX_LIST).cloned().collect())
            .unwrap_or_default(),
        host_namespaces: process
            .ns
            .as_ref()
            .map(|namespaces| {
                namespaces
                    .iter()
                    .filter(|(_, namespace)| namespace.is_host)
                    .map(|(name, _)| name.clone())
                    .take(MAX_LIST)
                    .collect()
            })
            .unwrap_or_default(),
        file_sha256: body.ima_hash.as_deref().and_then(sha256_hex),
        ..RuntimeEvent::default()
    };

    let legacy_network = || NetworkInfo {
        protocol: body
            .protocol
            .as_deref()
            .map_or_else(|| "tcp".into(), protocol_name),
        source_ip: body.source_ip.clone(),
        source_port: body.source_port.and_then(port),
        destination_ip: body.destination_ip.clone(),
        destination_port: body.destination_port.and_then(port),
        destination_domain: None,
    };
    match event_type {
        "process_exec" => event.kind = "process_exec".into(),
        "process_exit" => event.kind = "process_exit".into(),
        "process_connect" => {
            event.kind = "network_connect".into();
            event.network = Some(legacy_network());
        }
        "process_close" => {
            event.kind = "network_close".into();
            event.network = Some(legacy_network());
        }
        "process_listen" => {
            event.kind = "network_listen".into();
            event.network = Some(legacy_network());
        }
        "process_loader" => {
            event.kind = "library_load".into();
            event.file_path = bounded_opt(body.path.clone());
        }
        _ => {
            let function = match event_type {
                "process_tracepoint" => format!(
                    "{}/{}",
                    body.subsys.as_deref().unwrap_or_default(),
                    body.event.as_deref().unwrap_or_default()
                ),
                _ => body.function_name.clone().unwrap_or_default(),
            };
            let hook = function.rsplit('/').next().unwrap_or_default();
            let mut arguments = read_arguments(&body.args);
            let kind = refined_kind(hook, hook_kind(hook), &arguments);
            event.kind = kind.into();
            event.sensor_rule = Some(bounded(function.clone()));
            let mut paths = arguments.paths.drain(..);
            match kind {
                "mount" => {
                    // mount(source, target, fstype, ...): strings or paths, in order.
                    let mut texts = paths.chain(arguments.texts.drain(..));
                    event.mount_source = texts.next();
                    event.mount_target = texts.next();
                    event.mount_fs_type = texts.next();
                }
                "ptrace" => {
                    event.ptrace_request = arguments.ints.first().copied().map(ptrace_request_name);
                    event.target_pid = arguments.ints.get(1).copied();
                }
                "process_vm_write" => event.target_pid = arguments.ints.first().copied(),
                "privilege_change" => event.new_uid = arguments.ints.first().copied(),
                "module_load" => {
                    event.file_path = paths.next();
                    event.module_name = arguments.module.take().or_else(|| {
                        event.file_path.as_deref().and_then(|path| {
                            path.rsplit('/')
                                .next()
                                .map(|file| file.trim_end_matches(".ko").to_owned())
                        })
                    });
                }
                "memfd_create" => event.file_path = arguments.texts.first().cloned(),
                _ => {
                    event.file_path = paths.next();
                    event.file_new_path = paths.next();
                    event.network = arguments.network.take();
                }
            }
        }
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::{hook_kind, read_arguments, refined_kind};
    use serde_json::json;

    fn kind_of(hook: &str, args: serde_json::Value) -> &'static str {
        let args: Vec<serde_json::Value> = serde_json::from_value(args).unwrap_or_default();
        refined_kind(hook, hook_kind(hook), &read_arguments(&args))
    }

    #[test]
    fn the_documented_file_policies_hooks_say_write_read_or_load() {
        let file = json!({"file_arg": {"path": "/usr/bin/x", "permission": "-rwxr-xr-x"}});
        assert_eq!(
            kind_of("security_file_permission", json!([file, {"int_arg": 2}])),
            "file_write"
        );
        assert_eq!(
            kind_of("security_file_permission", json!([file, {"int_arg": 4}])),
            "file_read"
        );
        assert_eq!(
            kind_of("security_mmap_file", json!([file, {"uint_arg": 3}])),
            "file_write"
        );
        assert_eq!(
            kind_of("security_mmap_file", json!([file, {"uint_arg": 5}])),
            "library_load"
        );
        assert_eq!(
            kind_of("security_mmap_file", json!([file, {"uint_arg": 1}])),
            "file_open"
        );
        assert_eq!(
            kind_of(
                "security_path_truncate",
                json!([{"path_arg": {"path": "/etc/x"}}])
            ),
            "file_write"
        );
        assert_eq!(
            kind_of(
                "__x64_sys_openat",
                json!([{"int_arg": -100}, {"string_arg": "/tmp/x"}, {"int_arg": 65}])
            ),
            "file_write"
        );
        assert_eq!(
            kind_of(
                "__x64_sys_openat",
                json!([{"int_arg": -100}, {"string_arg": "/tmp/x"}, {"int_arg": 0}])
            ),
            "file_open"
        );
        assert_eq!(
            kind_of(
                "fd_install",
                json!([{"int_arg": 3}, {"file_arg": {"path": "/tmp/x", "flags": "O_WRONLY|O_CREAT"}}])
            ),
            "file_write"
        );
        assert_eq!(
            kind_of(
                "fd_install",
                json!([{"int_arg": 3}, {"file_arg": {"path": "/tmp/x"}}])
            ),
            "file_open"
        );
    }

    #[test]
    fn hooks_map_to_kinds_whatever_the_architecture_prefix() {
        assert_eq!(hook_kind("__x64_sys_write"), "file_write");
        assert_eq!(hook_kind("__arm64_sys_openat"), "file_open");
        assert_eq!(hook_kind("sys_enter_ptrace"), "ptrace");
        assert_eq!(hook_kind("tcp_connect"), "network_connect");
        assert_eq!(hook_kind("security_sb_mount"), "mount");
        assert_eq!(hook_kind("do_init_module"), "module_load");
        assert_eq!(hook_kind("something_else"), "other");
    }
}
