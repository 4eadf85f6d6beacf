//! A signal: what the correlator knows of one finding or weak signal. Its links are the actors
//! (principals, service accounts, processes), resources (workloads, pods, containers, nodes) and
//! endpoints (public addresses, domains) it names; two signals that share one are linked.

use serde::{Deserialize, Serialize};
use vigil_schemas::attack::attack_of_detection;
use vigil_schemas::{Detection, Finding};

/// What a link key names. Resource links are weaker than the others (a pod lives long and many
/// people touch it), so they hold only between signals close in time (`resource_link_minutes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    Actor,
    Resource,
    Endpoint,
}

/// An actor, resource or endpoint a signal names: `key` is what links (`user:bob`,
/// `pod:shop/web-1`, `ip:203.0.113.66`), the rest is what the sequence shows of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entity {
    pub kind: LinkKind,
    pub key: String,
    /// GuardDuty's type for it: `KUBERNETES_USER`, `PROCESS`, `KUBERNETES_WORKLOAD`, `CONTAINER`,
    /// `EC2_INSTANCE` (a node), `IP`, `DOMAIN`.
    pub entity_type: String,
    /// Its name as shown: the username, `namespace/name`, the address.
    pub name: String,
    /// Extra facts for the sequence's entry: a workload's namespace and kind, a container's image.
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    /// Whether this entity links signals. A node links only signals about the node itself, not
    /// those of the containers on it (one node runs many unrelated pods).
    pub links: bool,
}

/// A `signalIndicators` entry: `TOR_IP`, `MALICIOUS_IP`, `ATTACK_TACTIC`...
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Indicator {
    pub key: String,
    pub values: Vec<String>,
}

/// One finding or weak signal as the correlator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// The finding id (a weak signal's is computed the same way).
    pub uid: String,
    /// The finding's ARN, which a sequence lists as the signal's uid.
    pub arn: String,
    /// A weak signal (no finding of its own).
    pub weak: bool,
    /// `audit` or `runtime`.
    pub source: String,
    /// The finding type.
    pub name: String,
    pub title: String,
    pub description: String,
    pub severity: f64,
    pub count: i64,
    pub first_seen_micros: i64,
    pub last_seen_micros: i64,
    /// ATT&CK tactic ids (`TA0006`) and technique ids (`T1552.007`) with names.
    pub tactics: Vec<(String, String)>,
    pub techniques: Vec<(String, String)>,
    pub entities: Vec<Entity>,
    pub indicators: Vec<Indicator>,
    /// Audit signals that put a workload in place or entered a pod (create, patch, exec, attach):
    /// the workload and pod keys. A runtime signal in one of them is what the API set up.
    pub entered: Vec<String>,
    /// The ids of the events behind its latest occurrences (publish's bounded recent ids): the
    /// findings one event raised are one step of an attack, not a sequence of them.
    #[serde(default)]
    pub events: Vec<String>,
}

impl Signal {
    /// The signal of a finding as it now stands (its latest occurrence's details).
    pub fn of(finding: &Finding) -> Self {
        let detection = &finding.detection;
        let arn = detection.cluster.finding_arn(&finding.id);
        let attack = attack_of_detection(detection);
        let mut signal = Self {
            uid: finding.id.clone(),
            arn,
            weak: detection.signal_only,
            source: if detection.runtime.is_some() {
                "runtime"
            } else {
                "audit"
            }
            .to_owned(),
            name: detection.finding_type.clone(),
            title: detection.title.clone(),
            description: detection.description.clone(),
            severity: detection.severity,
            count: finding.count,
            first_seen_micros: finding.event_first_seen_micros,
            last_seen_micros: finding.event_last_seen_micros,
            tactics: attack
                .tactics
                .iter()
                .map(|entry| (entry.id.clone(), entry.name.clone()))
                .collect(),
            techniques: attack
                .techniques
                .iter()
                .map(|entry| (entry.id.clone(), entry.name.clone()))
                .collect(),
            entities: Vec::new(),
            indicators: Vec::new(),
            entered: Vec::new(),
            events: if finding.recent_event_ids.is_empty() {
                vec![detection.event_id.clone()]
            } else {
                finding.recent_event_ids.clone()
            },
        };
        signal.events.retain(|event| !event.is_empty());
        signal.read_audit(detection);
        signal.read_runtime(detection);
        signal.read_threat_intel(detection);
        signal.indicators.push(Indicator {
            key: "ATTACK_TACTIC".into(),
            values: signal
                .tactics
                .iter()
                .map(|(_, name)| name.clone())
                .collect(),
        });
        signal.indicators.push(Indicator {
            key: "ATTACK_TECHNIQUE".into(),
            values: signal
                .techniques
                .iter()
                .map(|(id, name)| format!("{id}: {name}"))
                .collect(),
        });
        signal
            .indicators
            .retain(|indicator| !indicator.values.is_empty());
        signal.entities.sort();
        signal.entities.dedup_by(|a, b| a.key == b.key);
        signal.entered.sort();
        signal.entered.dedup();
        signal
    }

    fn entity(
        &mut self,
        kind: LinkKind,
        key: String,
        entity_type: &str,
        name: String,
    ) -> &mut Entity {
        let entity = Entity {
            kind,
            key,
            entity_type: entity_type.to_owned(),
            name,
            namespace: None,
            detail: None,
            links: true,
        };
        self.entities.push(entity);
        // Just pushed: `last_mut` is `Some`; the fallback only satisfies the types.
        match self.entities.last_mut() {
            Some(entity) => entity,
            None => unreachable!("an entity was just pushed"),
        }
    }

    fn indicator(&mut self, key: &str, value: String) {
        match self
            .indicators
            .iter_mut()
            .find(|indicator| indicator.key == key)
        {
            Some(indicator) => {
                if !indicator.values.contains(&value) {
                    indicator.values.push(value);
                }
            }
            None => self.indicators.push(Indicator {
                key: key.to_owned(),
                values: vec![value],
            }),
        }
    }

    fn workload(&mut self, namespace: &str, kind: &str, name: &str) -> String {
        // Kinds as the API writes them (`DaemonSet`), whichever side named them.
        let key = format!("workload:{namespace}/{}/{name}", kind.to_ascii_lowercase());
        self.kubernetes_workload(key, namespace, name, kind)
    }

    fn pod(&mut self, namespace: &str, name: &str) -> String {
        self.kubernetes_workload(format!("pod:{namespace}/{name}"), namespace, name, "Pod")
    }

    /// A workload or pod entity (GuardDuty's `KUBERNETES_WORKLOAD`, its kind as the detail).
    fn kubernetes_workload(
        &mut self,
        key: String,
        namespace: &str,
        name: &str,
        kind: &str,
    ) -> String {
        let entity = self.entity(
            LinkKind::Resource,
            key.clone(),
            "KUBERNETES_WORKLOAD",
            format!("{namespace}/{name}"),
        );
        entity.namespace = Some(namespace.to_owned());
        entity.detail = Some(kind.to_owned());
        key
    }

    fn user(&mut self, username: &str) {
        let entity_type = if username.starts_with("system:serviceaccount:") {
            "KUBERNETES_SERVICE_ACCOUNT"
        } else {
            "KUBERNETES_USER"
        };
        let entity = self.entity(
            LinkKind::Actor,
            format!("user:{username}"),
            entity_type,
            username.to_owned(),
        );
        // Anyone can be anonymous: two unauthenticated callers are not one actor. Their calls
        // link by the address they came from, or not at all.
        entity.links = !matches!(username, "system:anonymous" | "system:unauthenticated");
    }

    fn address(&mut self, ip: &str) {
        self.entity(LinkKind::Endpoint, format!("ip:{ip}"), "IP", ip.to_owned());
    }

    fn read_audit(&mut self, detection: &Detection) {
        let Some(call) = &detection.api_call else {
            return;
        };
        if let Some(user) = &detection.user {
            self.user(&user.username);
        }
        if let Some(user) = &detection.impersonated_user {
            self.user(&user.username);
        }
        // The address the API server saw, when it is a public one: private addresses (NAT, the
        // VPC) are shared by too much to link.
        if let Some(remote) = &call.remote_ip {
            if remote.scope == "public" {
                self.address(&remote.ip);
            }
            if remote.tor_exit {
                self.indicator("TOR_IP", remote.ip.clone());
            }
            for found in &remote.threat_matches {
                self.indicator("MALICIOUS_IP", remote.ip.clone());
                if found.category.as_deref() == Some("mining") {
                    self.indicator("CRYPTOMINING_IP", remote.ip.clone());
                }
            }
        }
        let resource = call.resource.as_deref().unwrap_or_default();
        self.indicator(
            "HIGH_RISK_API",
            match &call.subresource {
                Some(subresource) => format!("{} {resource}/{subresource}", call.verb),
                None => format!("{} {resource}", call.verb),
            },
        );
        if let Some(agent) = call
            .user_agent
            .as_deref()
            .filter(|agent| suspicious_agent(agent))
        {
            self.indicator("SUSPICIOUS_USER_AGENT", agent.to_owned());
        }
        let writes = matches!(call.verb.as_str(), "create" | "update" | "patch");
        if let Some(workload) = &detection.workload
            && let (Some(namespace), Some(name)) = (&workload.namespace, &workload.name)
        {
            let key = self.workload(namespace, &workload.kind, name);
            if writes {
                self.entered.push(key);
            }
            if let Some(service_account) = &workload.service_account {
                // Pods run as their ServiceAccount: what the workload does, it does as this actor.
                self.user(&format!(
                    "system:serviceaccount:{namespace}:{service_account}"
                ));
            }
        }
        if let Some(target) = &detection.target {
            let key = self.pod(&target.namespace, &target.pod_name);
            let enters = matches!(
                call.subresource.as_deref(),
                Some("exec" | "attach" | "ephemeralcontainers")
            );
            if enters {
                self.entered.push(key);
            }
            if let (Some(kind), Some(name)) = (&target.workload_kind, &target.workload_name) {
                let key = self.workload(&target.namespace, kind, name);
                if enters {
                    self.entered.push(key);
                }
            }
        }
    }

    fn read_runtime(&mut self, detection: &Detection) {
        let Some(runtime) = &detection.runtime else {
            return;
        };
        let mut in_container = false;
        if let Some(id) = &runtime.container_id {
            in_container = true;
            let entity = self.entity(
                LinkKind::Resource,
                format!("container:{id}"),
                "CONTAINER",
                runtime.container_name.clone().unwrap_or_else(|| id.clone()),
            );
            entity.detail = runtime.image.clone();
        }
        if let Some(target) = &detection.target {
            in_container = true;
            self.pod(&target.namespace, &target.pod_name);
            if let (Some(kind), Some(name)) = (&target.workload_kind, &target.workload_name) {
                self.workload(&target.namespace, kind, name);
            }
            if let Some(service_account) = &target.service_account {
                self.user(&format!(
                    "system:serviceaccount:{}:{service_account}",
                    target.namespace
                ));
            }
        } else if let (Some(namespace), Some(pod)) = (&runtime.pod_namespace, &runtime.pod_name) {
            in_container = true;
            self.pod(namespace, pod);
        }
        if let Some(node) = &runtime.node_name {
            let entity = self.entity(
                LinkKind::Resource,
                format!("node:{node}"),
                "EC2_INSTANCE",
                node.clone(),
            );
            entity.links = !in_container;
        }
        for process in std::iter::once(&runtime.process).chain(&runtime.lineage) {
            if host_runtime_process(&process.binary) {
                // The container runtime and the node's init are every container's ancestors on
                // the node: they would link unrelated pods.
                continue;
            }
            if let Some(exec_id) = &process.exec_id {
                let entity = self.entity(
                    LinkKind::Actor,
                    format!("process:{exec_id}"),
                    "PROCESS",
                    process
                        .binary
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
                entity.detail = Some(process.binary.clone());
            }
        }
        self.indicator("SUSPICIOUS_PROCESS", runtime.process.binary.clone());
        if detection.finding_type.contains("CryptoMiner") {
            self.indicator("CRYPTOMINING_PROCESS", runtime.process.binary.clone());
        }
        for pair in &runtime.context {
            match pair.key.as_str() {
                // The address a process reached, when public: private ones (the cluster's DNS,
                // the API server) are shared by too much to link.
                "remoteIp"
                    if runtime
                        .context
                        .iter()
                        .any(|scope| scope.key == "remoteIpScope" && scope.value == "public") =>
                {
                    self.address(&pair.value);
                }
                "domain" => {
                    self.entity(
                        LinkKind::Endpoint,
                        format!("domain:{}", pair.value),
                        "DOMAIN",
                        pair.value.clone(),
                    );
                }
                _ => {}
            }
        }
    }

    fn read_threat_intel(&mut self, detection: &Detection) {
        for found in &detection.threat_intel {
            let entry = found.entry.trim();
            if entry.is_empty() {
                continue;
            }
            if entry.len() == 64 && entry.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                // A file hash list's entry: the executed file's SHA-256.
                self.indicator("MALICIOUS_FILE", entry.to_ascii_lowercase());
                continue;
            }
            let crypto = found.category.as_deref() == Some("mining")
                || detection.finding_type.contains("Bitcoin")
                || detection.finding_type.contains("CryptoCurrency");
            if let Some((network, _prefix)) = entry.split_once('/')
                && network.parse::<std::net::IpAddr>().is_ok()
            {
                // A listed network: the address that matched it is the signal's endpoint already.
                self.indicator(
                    if crypto {
                        "CRYPTOMINING_IP"
                    } else {
                        "MALICIOUS_IP"
                    },
                    entry.to_owned(),
                );
                continue;
            }
            if entry.parse::<std::net::IpAddr>().is_ok() {
                self.address(entry);
                self.indicator(
                    if crypto {
                        "CRYPTOMINING_IP"
                    } else {
                        "MALICIOUS_IP"
                    },
                    entry.to_owned(),
                );
            } else {
                let domain = entry.to_ascii_lowercase();
                self.entity(
                    LinkKind::Endpoint,
                    format!("domain:{domain}"),
                    "DOMAIN",
                    domain.clone(),
                );
                self.indicator(
                    if crypto {
                        "CRYPTOMINING_DOMAIN"
                    } else {
                        "MALICIOUS_DOMAIN"
                    },
                    domain,
                );
            }
        }
    }

    /// The keys this signal links by, with their kind.
    pub fn links(&self) -> impl Iterator<Item = (&str, LinkKind)> {
        self.entities
            .iter()
            .filter(|entity| entity.links)
            .map(|entity| (entity.key.as_str(), entity.kind))
    }
}

/// A process every container on a node descends from (the container runtime, the node's init):
/// not an actor of any one attack.
fn host_runtime_process(binary: &str) -> bool {
    let name = binary.rsplit('/').next().unwrap_or(binary);
    name.starts_with("containerd")
        || name.starts_with("docker")
        || matches!(
            name,
            "runc" | "crun" | "conmon" | "crio" | "systemd" | "init" | "kubelet"
        )
}

/// A user agent of a tool people script attacks with, not of kubectl, a client library or a
/// Kubernetes component: GuardDuty's `SUSPICIOUS_USER_AGENT`.
fn suspicious_agent(agent: &str) -> bool {
    const TOOLS: [&str; 16] = [
        "curl/",
        "wget/",
        "python",
        "go-http-client",
        "postman",
        "insomnia",
        "kali",
        "parrot",
        "nmap",
        "sqlmap",
        "kube-hunter",
        "peirates",
        "kubiscan",
        "okhttp",
        "powershell",
        "ruby",
    ];
    let agent = agent.to_ascii_lowercase();
    TOOLS.iter().any(|tool| agent.contains(tool))
}
