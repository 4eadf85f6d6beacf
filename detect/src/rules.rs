//! The built-in audit-log detectors. Each states its finding type, severity, trigger and aggregation
//! key (the parameters beyond type and cluster that make two detections one finding).

use std::collections::{HashSet, VecDeque};

use vigil_schemas::{AuditEvent, Detection, EnrichedEvent, KeyValue, WorkloadSpec};

use crate::context::{
    ThreatPurpose, Verdict, detection, is_anonymous, is_controller, is_health_endpoint, is_write,
    object_name, severity, succeeded, workload_identity,
};
use crate::{Detector, StateEntry};

fn resource_of(event: &AuditEvent) -> String {
    let object = event.object_ref.as_ref();
    match (
        object.and_then(|o| o.resource.as_deref()),
        object.and_then(|o| o.subresource.as_deref()),
    ) {
        (Some(resource), Some(sub)) => format!("{resource}/{sub}"),
        (Some(resource), None) => resource.to_owned(),
        _ => event
            .request_uri
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// Every address the request came through is the API server's own host: the node's and the control
/// plane's health checks, which run unauthenticated on many distributions.
fn from_loopback(event: &AuditEvent) -> bool {
    !event.source_ips.is_empty()
        && event.source_ips.iter().all(|ip| {
            ip.trim()
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
        })
}

/// **`<Purpose>:Kubernetes/SuccessfulAnonymousAccess`** — High (Discovery: Medium).
/// Trigger: a request by `system:anonymous` (or the `system:unauthenticated` group) that succeeded,
/// other than the health and version endpoints and calls from loopback (the host's own checks). Purpose per [`ThreatPurpose`].
/// Key: principal, resource (with subresource), source IP.
#[derive(Debug, Default)]
pub struct SuccessfulAnonymousAccess;

impl Detector for SuccessfulAnonymousAccess {
    fn name(&self) -> &'static str {
        "successful_anonymous_access"
    }
    fn inspect(&mut self, enriched: &EnrichedEvent, out: &mut Vec<Detection>) {
        let Some(event) = enriched.audit.as_ref() else {
            return;
        };
        if !is_anonymous(event)
            || !succeeded(event)
            || is_health_endpoint(&event.request_uri)
            || from_loopback(event)
        {
            return;
        }
        let purpose = ThreatPurpose::of(event);
        let level = if purpose == ThreatPurpose::Discovery {
            severity::MEDIUM
        } else {
            severity::HIGH
        };
        let resource = resource_of(event);
        let source = event.source_ips.first().cloned().unwrap_or_default();
        let title = format!(
            "Unauthenticated {} succeeded against {resource}.",
            event.verb
        );
        let description = format!(
            "An unauthenticated caller ({}) from {source} successfully called {} {} in cluster {}. The cluster's RBAC grants anonymous users this access.",
            event.user.username, event.verb, event.request_uri, enriched.cluster.name
        );
        let verdict = Verdict {
            finding_type: format!("{}:Kubernetes/SuccessfulAnonymousAccess", purpose.name()),
            severity: level,
            title,
            description,
            aggregation_key: vec![event.user.username.clone(), resource, source],
        };
        out.push(detection(enriched, event, self.name(), verdict));
    }
}

fn grants_anonymous(event: &AuditEvent) -> bool {
    event.role_binding.as_ref().is_some_and(|binding| {
        binding.subjects.iter().any(|subject| {
            (subject.kind == "User" && subject.name == crate::context::ANONYMOUS_USER)
                || (subject.kind == "Group"
                    && subject.name == crate::context::UNAUTHENTICATED_GROUP)
        })
    })
}

/// **`Policy:Kubernetes/AnonymousAccessGranted`** — High.
/// Trigger: a RoleBinding or ClusterRoleBinding created or changed with `system:anonymous` or
/// `system:unauthenticated` among its subjects.
/// Key: principal, binding.
#[derive(Debug, Default)]
pub struct AnonymousAccessGranted;

impl Detector for AnonymousAccessGranted {
    fn name(&self) -> &'static str {
        "anonymous_access_granted"
    }
    fn inspect(&mut self, enriched: &EnrichedEvent, out: &mut Vec<Detection>) {
        let Some(event) = enriched.audit.as_ref() else {
            return;
        };
        if !is_write(event) || !succeeded(event) || !grants_anonymous(event) {
            return;
        }
        let Some(binding) = event.role_binding.as_ref() else {
            return;
        };
        let name = object_name(event);
        let title = format!(
            "{} {name} grants anonymous users {} {}.",
            binding.kind, binding.role_ref_kind, binding.role_ref_name
        );
        let description = format!(
            "{} bound {} {} to unauthenticated users through {} {name} in cluster {}. Anyone who can reach the API server now has that role.",
            event.user.username,
            binding.role_ref_kind,
            binding.role_ref_name,
            binding.kind,
            enriched.cluster.name
        );
        let verdict = Verdict {
            finding_type: "Policy:Kubernetes/AnonymousAccessGranted".into(),
            severity: severity::HIGH,
            title,
            description,
            aggregation_key: vec![
                event.user.username.clone(),
                format!("{} {name}", binding.kind),
            ],
        };
        out.push(detection(enriched, event, self.name(), verdict));
    }
}

/// **`Execution:Kubernetes/ExecInKubeSystemPod`** — Medium.
/// Trigger: a command run through `pods/exec` in a pod of `kube-system`, allowed by the API server.
/// Key: principal, pod.
#[derive(Debug, Default)]
pub struct ExecInKubeSystemPod;

impl Detector for ExecInKubeSystemPod {
    fn name(&self) -> &'static str {
        "exec_in_kube_system_pod"
    }
    fn inspect(&mut self, enriched: &EnrichedEvent, out: &mut Vec<Detection>) {
        let Some(event) = enriched.audit.as_ref() else {
            return;
        };
        let Some(object) = event.object_ref.as_ref() else {
            return;
        };
        if object.subresource.as_deref() != Some("exec")
            || object.namespace.as_deref() != Some("kube-system")
            || !matches!(event.verb.as_str(), "create" | "get")
            || !succeeded(event)
        {
            return;
        }
        let pod = object_name(event);
        let command = &event.exec_command;
        let mut found = detection(
            enriched,
            event,
            self.name(),
            Verdict {
                finding_type: "Execution:Kubernetes/ExecInKubeSystemPod".into(),
                severity: severity::MEDIUM,
                title: format!("Command executed inside kube-system pod {pod}."),
                description: format!(
                    "{} ran a command ({}) inside pod {pod} of the kube-system namespace in cluster {}. System pods hold powerful credentials; exec into them is rarely routine.",
                    event.user.username,
                    if command.is_empty() {
                        "not logged".to_owned()
                    } else {
                        command.join(" ")
                    },
                    enriched.cluster.name
                ),
                aggregation_key: vec![event.user.username.clone(), pod],
            },
        );
        if !command.is_empty() {
            found.additional_info.push(KeyValue {
                key: "command".into(),
                value: command.join(" "),
            });
        }
        out.push(found);
    }
}

const ADMIN_ROLES: [&str; 2] = ["cluster-admin", "admin"];

/// **`Policy:Kubernetes/AdminAccessToDefaultServiceAccount`** — High.
/// Trigger: a binding created or changed that gives a namespace's `default` ServiceAccount the
/// `cluster-admin` or `admin` ClusterRole. Every pod that names no service account runs as it.
/// Key: principal, binding.
#[derive(Debug, Default)]
pub struct AdminAccessToDefaultServiceAccount;

impl Detector for AdminAccessToDefaultServiceAccount {
    fn name(&self) -> &'static str {
        "admin_access_to_default_service_account"
    }
    fn inspect(&mut self, enriched: &EnrichedEvent, out: &mut Vec<Detection>) {
        let Some(event) = enriched.audit.as_ref() else {
            return;
        };
        let Some(binding) = event.role_binding.as_ref() else {
            return;
        };
        if !is_write(event) || !succeeded(event) {
            return;
        }
        let admin = binding.role_ref_kind == "ClusterRole"
            && ADMIN_ROLES.contains(&binding.role_ref_name.as_str());
        let default_account = binding
            .subjects
            .iter()
            .find(|subject| subject.kind == "ServiceAccount" && subject.name == "default");
        let (true, Some(account)) = (admin, default_account) else {
            return;
        };
        let account_namespace = account
            .namespace
            .clone()
            .or(binding.namespace.clone())
            .unwrap_or_default();
        let name = object_name(event);
        let title = format!(
            "Default service account of {account_namespace} granted {}.",
            binding.role_ref_name
        );
        let description = format!(
            "{} bound ClusterRole {} to the default ServiceAccount of namespace {account_namespace} through {} {name} in cluster {}. Any pod in that namespace that names no service account now has admin rights.",
            event.user.username, binding.role_ref_name, binding.kind, enriched.cluster.name
        );
        let verdict = Verdict {
            finding_type: "Policy:Kubernetes/AdminAccessToDefaultServiceAccount".into(),
            severity: severity::HIGH,
            title,
            description,
            aggregation_key: vec![
                event.user.username.clone(),
                format!("{} {name}", binding.kind),
            ],
        };
        out.push(detection(enriched, event, self.name(), verdict));
    }
}

fn mentions(service: &vigil_schemas::ServiceSpec, needle: &str) -> bool {
    service
        .name
        .as_deref()
        .is_some_and(|name| name.contains(needle))
        || service
            .selector
            .iter()
            .chain(&service.labels)
            .any(|pair| pair.value.contains(needle))
}

/// **`Policy:Kubernetes/ExposedDashboard`** — Medium, and **`Policy:Kubernetes/KubeflowDashboardExposed`**
/// — Medium. Trigger: a Service of type `LoadBalancer` created or changed whose name, selector or
/// labels name the Kubernetes Dashboard (or Kubeflow's central dashboard / pipelines UI).
/// Key: principal, service.
#[derive(Debug, Default)]
pub struct ExposedDashboard;

impl Detector for ExposedDashboard {
    fn name(&self) -> &'static str {
        "exposed_dashboard"
    }
    fn inspect(&mut self, enriched: &EnrichedEvent, out: &mut Vec<Detection>) {
        let Some(event) = enriched.audit.as_ref() else {
            return;
        };
        let Some(service) = event.service.as_ref() else {
            return;
        };
        if !is_write(event) || !succeeded(event) || service.service_type != "LoadBalancer" {
            return;
        }
        let (finding_type, what) = if mentions(service, "kubernetes-dashboard") {
            ("Policy:Kubernetes/ExposedDashboard", "Kubernetes Dashboard")
        } else if mentions(service, "centraldashboard") || mentions(service, "ml-pipeline-ui") {
            (
                "Policy:Kubernetes/KubeflowDashboardExposed",
                "Kubeflow dashboard",
            )
        } else {
            return;
        };
        let name = object_name(event);
        let title = format!("{what} exposed to the internet by Service {name}.");
        let description = format!(
            "{} made the {what} reachable through a LoadBalancer Service {name} in cluster {}. Dashboards exposed this way are a common way in.",
            event.user.username, enriched.cluster.name
        );
        let verdict = Verdict {
            finding_type: finding_type.into(),
            severity: severity::MEDIUM,
            title,
            description,
            aggregation_key: vec![event.user.username.clone(), name],
        };
        out.push(detection(enriched, event, self.name(), verdict));
    }
}

fn purpose_severity(purpose: ThreatPurpose) -> f64 {
    match purpose {
        ThreatPurpose::Discovery | ThreatPurpose::Persistence => severity::MEDIUM,
        _ => severity::HIGH,
    }
}

/// **`<Purpose>:Kubernetes/TorIPCaller`** — High (Discovery, Persistence: Medium).
/// Trigger: an authenticated request from a Tor exit node (anonymous callers surface as
/// SuccessfulAnonymousAccess). Trusted addresses never fire.
/// Key: principal, source IP.
#[derive(Debug, Default)]
pub struct TorIpCaller;

impl Detector for TorIpCaller {
    fn name(&self) -> &'static str {
        "tor_ip_caller"
    }
    fn inspect(&mut self, enriched: &EnrichedEvent, out: &mut Vec<Detection>) {
        let Some(event) = enriched.audit.as_ref() else {
            return;
        };
        let Some(ip) = enriched.source_ip.as_ref() else {
            return;
        };
        if !ip.tor_exit || ip.trusted || is_anonymous(event) {
            return;
        }
        let purpose = ThreatPurpose::of(event);
        let title = format!("Kubernetes API called from Tor exit node {}.", ip.ip);
        let description = format!(
            "{} called {} {} in cluster {} from {}, a Tor exit node. The caller is hiding where it comes from.",
            event.user.username, event.verb, event.request_uri, enriched.cluster.name, ip.ip
        );
        let verdict = Verdict {
            finding_type: format!("{}:Kubernetes/TorIPCaller", purpose.name()),
            severity: purpose_severity(purpose),
            title,
            description,
            aggregation_key: vec![event.user.username.clone(), ip.ip.clone()],
        };
        out.push(detection(enriched, event, self.name(), verdict));
    }
}

/// **`<Purpose>:Kubernetes/MaliciousIPCaller`** and **`<Purpose>:Kubernetes/MaliciousIPCaller.Custom`**
/// — High (Discovery, Persistence: Medium).
/// Trigger: an authenticated request from an address on a threat list (anonymous callers surface as
/// SuccessfulAnonymousAccess). `MaliciousIPCaller` comes from the curated feeds the operator
/// subscribes to (GuardDuty's own feeds are not public; Vigil takes any list in the formats it reads,
/// marked `curated`), `.Custom` from the user's own threat lists. Trusted addresses never fire.
/// Key: principal, source IP.
#[derive(Debug)]
pub struct MaliciousIpCaller {
    curated: bool,
}

impl MaliciousIpCaller {
    /// `MaliciousIPCaller`, from curated feeds.
    pub const fn curated() -> Self {
        Self { curated: true }
    }
    /// `MaliciousIPCaller.Custom`, from the user's threat lists.
    pub const fn custom() -> Self {
        Self { curated: false }
    }
}

impl Detector for MaliciousIpCaller {
    fn name(&self) -> &'static str {
        if self.curated {
            "malicious_ip_caller"
        } else {
            "malicious_ip_caller_custom"
        }
    }
    fn inspect(&mut self, enriched: &EnrichedEvent, out: &mut Vec<Detection>) {
        let Some(event) = enriched.audit.as_ref() else {
            return;
        };
        let Some(ip) = enriched.source_ip.as_ref() else {
            return;
        };
        if ip.trusted || is_anonymous(event) {
            return;
        }
        let matches: Vec<_> = ip
            .threat_matches
            .iter()
            .filter(|found| found.curated == self.curated)
            .cloned()
            .collect();
        if matches.is_empty() {
            return;
        }
        let purpose = ThreatPurpose::of(event);
        let lists: Vec<&str> = matches
            .iter()
            .map(|found| found.list_name.as_str())
            .collect();
        let (suffix, kind) = if self.curated {
            ("", "threat intelligence feed")
        } else {
            (".Custom", "custom threat list")
        };
        let mut found = detection(
            enriched,
            event,
            self.name(),
            Verdict {
                finding_type: format!("{}:Kubernetes/MaliciousIPCaller{suffix}", purpose.name()),
                severity: purpose_severity(purpose),
                title: format!(
                    "Kubernetes API called from {}, on threat list {}.",
                    ip.ip,
                    lists.join(", ")
                ),
                description: format!(
                    "{} called {} {} in cluster {} from {}, which is on the {kind} {}.",
                    event.user.username,
                    event.verb,
                    event.request_uri,
                    enriched.cluster.name,
                    ip.ip,
                    lists.join(", ")
                ),
                aggregation_key: vec![event.user.username.clone(), ip.ip.clone()],
            },
        );
        found.threat_intel = matches;
        out.push(found);
    }
}

/// A bounded, checkpointed set of keys (the oldest give way at the capacity). The workload detectors
/// remember which top-level workloads they reported, so that the pods and ReplicaSets their
/// controllers create are not reported again under the controller's name; the binding detector
/// remembers which roles grant escalation.
#[derive(Debug)]
pub(crate) struct RememberedKeys {
    capacity: usize,
    seen: HashSet<String>,
    order: VecDeque<String>,
    /// Changes not yet checkpointed.
    changes: Vec<StateEntry>,
}

impl RememberedKeys {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            seen: HashSet::new(),
            order: VecDeque::new(),
            changes: Vec::new(),
        }
    }
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.seen.contains(key)
    }
    pub(crate) fn insert(&mut self, key: String) {
        self.remember(key, true);
    }

    pub(crate) fn remember(&mut self, key: String, checkpoint: bool) {
        if self.seen.insert(key.clone()) {
            if checkpoint {
                self.changes.push(StateEntry {
                    key: key.clone(),
                    value: vec![1],
                });
            }
            self.order.push_back(key);
            if self.order.len() > self.capacity
                && let Some(oldest) = self.order.pop_front()
            {
                self.seen.remove(&oldest);
                self.changes.push(StateEntry {
                    key: oldest,
                    value: Vec::new(),
                });
            }
        }
    }

    /// Forgets a key (a role deleted, or rewritten without what made it remembered).
    pub(crate) fn forget(&mut self, key: &str) {
        if self.seen.remove(key) {
            self.order.retain(|kept| kept != key);
            self.changes.push(StateEntry {
                key: key.to_owned(),
                value: Vec::new(),
            });
        }
    }

    pub(crate) fn drain(&mut self, out: &mut Vec<StateEntry>) {
        out.append(&mut self.changes);
    }

    pub(crate) fn restore(&mut self, key: &str, value: &[u8]) {
        if value.is_empty() {
            self.seen.remove(key);
        } else {
            self.remember(key.to_owned(), false);
        }
    }
}

/// What a workload detector found in a pod spec, in words for the finding.
struct WorkloadFinding {
    finding_type: &'static str,
    /// "Privileged container launched": the title's start, completed with the workload.
    headline: &'static str,
    /// "with privileged container(s) app (nginx)": what the spec holds, after the workload's name.
    details: String,
    /// Why it matters, the description's last sentence.
    risk: &'static str,
}

/// Reports a workload finding, unless it is a controller creating pods or ReplicaSets for a workload
/// this detector already reported (those fold into that finding). Key: principal, top-level workload.
fn report_workload(
    enriched: &EnrichedEvent,
    reported: &mut RememberedKeys,
    detector: &str,
    found: WorkloadFinding,
) -> Option<Detection> {
    let event = enriched.audit.as_ref()?;
    let workload = event.workload.as_ref()?;
    if !is_write(event) || !succeeded(event) {
        return None;
    }
    let target = workload_identity(enriched, workload);
    let remembered = format!("{}|{target}", enriched.cluster.name);
    let owned = workload.owner_kind.is_some();
    if owned && is_controller(event) && reported.contains(&remembered) {
        return None;
    }
    reported.insert(remembered);
    let action = if event.verb == "create" {
        "created"
    } else {
        "changed"
    };
    let description = format!(
        "{} {action} {target} in cluster {} {}. {}",
        event.user.username, enriched.cluster.name, found.details, found.risk
    );
    let verdict = Verdict {
        finding_type: found.finding_type.to_owned(),
        severity: severity::MEDIUM,
        title: format!("{} in {target}.", found.headline),
        description,
        aggregation_key: vec![event.user.username.clone(), target],
    };
    Some(detection(enriched, event, detector, verdict))
}

fn image_trusted(image: &str, trusted_prefixes: &[String]) -> bool {
    trusted_prefixes
        .iter()
        .any(|prefix| image.starts_with(prefix.as_str()))
}

/// Container images of EKS add-ons that run privileged or with host mounts by design (the VPC CNI,
/// kube-proxy, the EBS and EFS CSI drivers): everything from the EKS add-on registry account, and the
/// same repositories on ECR Public.
pub fn default_trusted_system_images() -> Vec<String> {
    [
        "602401143452.dkr.ecr.",
        "public.ecr.aws/eks/kube-proxy",
        "public.ecr.aws/eks/aws-ebs-csi-driver",
        "public.ecr.aws/eks/aws-efs-csi-driver",
        "public.ecr.aws/eks-distro/kubernetes-csi/",
        "public.ecr.aws/amazon-k8s-cni",
    ]
    .iter()
    .map(|prefix| (*prefix).to_owned())
    .collect()
}

/// **`PrivilegeEscalation:Kubernetes/PrivilegedContainer`** — Medium (Vigil keeps GuardDuty's retired
/// rule-based type; the baseline variant is `...AnomalousBehavior.WorkloadDeployed!PrivilegedContainer`).
/// Trigger: a pod or pod template created or changed with a container whose `securityContext.privileged`
/// is true, unless every privileged image is a trusted system image. Pods that controllers create for an
/// already-reported workload are attributed to it.
/// Key: principal, top-level workload.
#[derive(Debug)]
pub struct PrivilegedContainer {
    trusted_images: Vec<String>,
    reported: RememberedKeys,
}

impl PrivilegedContainer {
    pub fn new(trusted_images: Vec<String>) -> Self {
        Self {
            trusted_images,
            reported: RememberedKeys::new(100_000),
        }
    }
}

impl Detector for PrivilegedContainer {
    fn name(&self) -> &'static str {
        "privileged_container"
    }
    fn drain_state(&mut self, out: &mut Vec<StateEntry>) {
        self.reported.drain(out);
    }
    fn restore(&mut self, key: &str, value: &[u8]) -> bool {
        self.reported.restore(key, value);
        true
    }
    fn inspect(&mut self, enriched: &EnrichedEvent, out: &mut Vec<Detection>) {
        let privileged = |workload: &WorkloadSpec| -> Vec<String> {
            workload
                .containers
                .iter()
                .filter(|container| {
                    container.privileged && !image_trusted(&container.image, &self.trusted_images)
                })
                .map(|container| format!("{} ({})", container.name, container.image))
                .collect()
        };
        let Some(workload) = enriched
            .audit
            .as_ref()
            .and_then(|event| event.workload.as_ref())
        else {
            return;
        };
        let containers = privileged(workload);
        if containers.is_empty() {
            return;
        }
        let found = WorkloadFinding {
            finding_type: "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
            headline: "Privileged container launched",
            details: format!("with privileged container(s) {}", containers.join(", ")),
            risk: "A privileged container has root access to its node.",
        };
        let detector = self.name();
        out.extend(report_workload(
            enriched,
            &mut self.reported,
            detector,
            found,
        ));
    }
}

/// Host paths that give a container its node: the root, configuration, credentials, the container
/// runtime's sockets, the kubelet's state. A path at or below any of these is sensitive.
pub fn default_sensitive_host_paths() -> Vec<String> {
    [
        "/",
        "/etc",
        "/root",
        "/home",
        "/proc",
        "/sys",
        "/dev",
        "/boot",
        "/var/run/docker.sock",
        "/var/run/containerd",
        "/run/containerd",
        "/var/run/crio",
        "/run/crio",
        "/var/lib/kubelet",
        "/var/lib/docker",
        "/var/lib/containerd",
        "/etc/kubernetes",
        "/var/run",
        "/run",
    ]
    .iter()
    .map(|path| (*path).to_owned())
    .collect()
}

pub(crate) fn is_sensitive(path: &str, sensitive: &[String]) -> bool {
    let path = path.trim_end_matches('/');
    let path = if path.is_empty() { "/" } else { path };
    sensitive.iter().any(|root| {
        let root = root.trim_end_matches('/');
        if root.is_empty() {
            path == "/"
        } else {
            path == root || path.starts_with(&format!("{root}/"))
        }
    })
}

/// **`Persistence:Kubernetes/ContainerWithSensitiveMount`** — Medium (GuardDuty's retired rule-based
/// type; the baseline variant is `...AnomalousBehavior.WorkloadDeployed!ContainerWithSensitiveMount`).
/// Trigger: a pod or pod template created or changed with a container that mounts a `hostPath`
/// volume at or below a sensitive host path ([`default_sensitive_host_paths`]), unless its image is a
/// trusted system image. Controller-created pods of a reported workload are attributed to it.
/// Key: principal, top-level workload.
#[derive(Debug)]
pub struct ContainerWithSensitiveMount {
    trusted_images: Vec<String>,
    sensitive_paths: Vec<String>,
    reported: RememberedKeys,
}

impl ContainerWithSensitiveMount {
    pub fn new(trusted_images: Vec<String>, sensitive_paths: Vec<String>) -> Self {
        Self {
            trusted_images,
            sensitive_paths,
            reported: RememberedKeys::new(100_000),
        }
    }
}

impl Detector for ContainerWithSensitiveMount {
    fn name(&self) -> &'static str {
        "container_with_sensitive_mount"
    }
    fn drain_state(&mut self, out: &mut Vec<StateEntry>) {
        self.reported.drain(out);
    }
    fn restore(&mut self, key: &str, value: &[u8]) -> bool {
        self.reported.restore(key, value);
        true
    }
    fn inspect(&mut self, enriched: &EnrichedEvent, out: &mut Vec<Detection>) {
        let Some(workload) = enriched
            .audit
            .as_ref()
            .and_then(|event| event.workload.as_ref())
        else {
            return;
        };
        let mut mounts = Vec::new();
        let mut mounted_by_any: Vec<&str> = Vec::new();
        for container in &workload.containers {
            mounted_by_any.extend(
                container
                    .volume_mounts
                    .iter()
                    .map(|mount| mount.name.as_str()),
            );
            if image_trusted(&container.image, &self.trusted_images) {
                continue;
            }
            for mount in &container.volume_mounts {
                let host_path = workload
                    .volumes
                    .iter()
                    .find(|volume| volume.name == mount.name)
                    .and_then(|volume| volume.host_path.as_deref());
                if let Some(path) =
                    host_path.filter(|path| is_sensitive(path, &self.sensitive_paths))
                {
                    let access = if mount.read_only {
                        "read-only"
                    } else {
                        "read-write"
                    };
                    mounts.push(format!(
                        "{path} at {} in {} ({access})",
                        mount.mount_path, container.name
                    ));
                }
            }
        }
        // A sensitive host path declared as a volume that no container mounts (yet: an ephemeral
        // container or a later patch can) is the same grant, as Falco judges pod volumes; unless
        // every container runs a trusted image.
        let all_trusted = !workload.containers.is_empty()
            && workload
                .containers
                .iter()
                .all(|container| image_trusted(&container.image, &self.trusted_images));
        if !all_trusted {
            for volume in &workload.volumes {
                if let Some(path) = volume
                    .host_path
                    .as_deref()
                    .filter(|path| is_sensitive(path, &self.sensitive_paths))
                    .filter(|_| !mounted_by_any.contains(&volume.name.as_str()))
                {
                    mounts.push(format!(
                        "{path} as volume {} (mounted by no container)",
                        volume.name
                    ));
                }
            }
        }
        if mounts.is_empty() {
            return;
        }
        let found = WorkloadFinding {
            finding_type: "Persistence:Kubernetes/ContainerWithSensitiveMount",
            headline: "Container with a sensitive host path mounted",
            details: format!("mounting host path {}", mounts.join("; ")),
            risk: "Such a mount lets the container read or change its node.",
        };
        let detector = self.name();
        out.extend(report_workload(
            enriched,
            &mut self.reported,
            detector,
            found,
        ));
    }
}

/// Linux capabilities that break a container's isolation: mounting filesystems and most of the
/// kernel's administration (SYS_ADMIN), reading other processes' memory (SYS_PTRACE), loading kernel
/// modules (SYS_MODULE), reading any file (DAC_READ_SEARCH), reconfiguring the node's network
/// (NET_ADMIN), raw device and memory access (SYS_RAWIO), eBPF (BPF, PERFMON), or all of them (ALL).
pub const DANGEROUS_CAPABILITIES: [&str; 9] = [
    "SYS_ADMIN",
    "SYS_PTRACE",
    "SYS_MODULE",
    "DAC_READ_SEARCH",
    "NET_ADMIN",
    "SYS_RAWIO",
    "BPF",
    "PERFMON",
    "ALL",
];

fn dangerous_capability(capability: &str) -> bool {
    let upper = capability.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    DANGEROUS_CAPABILITIES.contains(&bare)
}

/// **`PrivilegeEscalation:Kubernetes/HostNamespaceContainer`** — Medium (Vigil type).
/// Trigger: a pod or pod template created or changed that shares its node's network, process or IPC
/// namespace (`hostNetwork`, `hostPID`, `hostIPC`), unless every container's image is a trusted
/// system image. Controller-created pods of a reported workload are attributed to it.
/// Key: principal, top-level workload.
#[derive(Debug)]
pub struct HostNamespaceContainer {
    trusted_images: Vec<String>,
    reported: RememberedKeys,
}

impl HostNamespaceContainer {
    pub fn new(trusted_images: Vec<String>) -> Self {
        Self {
            trusted_images,
            reported: RememberedKeys::new(100_000),
        }
    }
}

impl Detector for HostNamespaceContainer {
    fn name(&self) -> &'static str {
        "host_namespace_container"
    }
    fn drain_state(&mut self, out: &mut Vec<StateEntry>) {
        self.reported.drain(out);
    }
    fn restore(&mut self, key: &str, value: &[u8]) -> bool {
        self.reported.restore(key, value);
        true
    }
    fn inspect(&mut self, enriched: &EnrichedEvent, out: &mut Vec<Detection>) {
        let Some(workload) = enriched
            .audit
            .as_ref()
            .and_then(|event| event.workload.as_ref())
        else {
            return;
        };
        let shared: Vec<&str> = [
            (workload.host_network, "network"),
            (workload.host_pid, "process (PID)"),
            (workload.host_ipc, "IPC"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, what)| *what)
        .collect();
        let all_trusted = !workload.containers.is_empty()
            && workload
                .containers
                .iter()
                .all(|container| image_trusted(&container.image, &self.trusted_images));
        if shared.is_empty() || all_trusted {
            return;
        }
        let images: Vec<&str> = workload
            .containers
            .iter()
            .map(|container| container.image.as_str())
            .collect();
        let found = WorkloadFinding {
            finding_type: "PrivilegeEscalation:Kubernetes/HostNamespaceContainer",
            headline: "Pod sharing its node's namespaces launched",
            details: format!(
                "sharing the node's {} namespace (images {})",
                shared.join(", "),
                images.join(", ")
            ),
            risk: "Such a pod sees the node's network traffic, processes or shared memory.",
        };
        let detector = self.name();
        out.extend(report_workload(
            enriched,
            &mut self.reported,
            detector,
            found,
        ));
    }
}

/// **`PrivilegeEscalation:Kubernetes/ContainerWithDangerousCapabilities`** — Medium (Vigil type).
/// Trigger: a pod or pod template created or changed with a container that adds one of the
/// [`DANGEROUS_CAPABILITIES`], unless its image is a trusted system image. Privileged containers are
/// PrivilegedContainer's. Controller-created pods of a reported workload are attributed to it.
/// Key: principal, top-level workload.
#[derive(Debug)]
pub struct ContainerWithDangerousCapabilities {
    trusted_images: Vec<String>,
    reported: RememberedKeys,
}

impl ContainerWithDangerousCapabilities {
    pub fn new(trusted_images: Vec<String>) -> Self {
        Self {
            trusted_images,
            reported: RememberedKeys::new(100_000),
        }
    }
}

impl Detector for ContainerWithDangerousCapabilities {
    fn name(&self) -> &'static str {
        "container_with_dangerous_capabilities"
    }
    fn drain_state(&mut self, out: &mut Vec<StateEntry>) {
        self.reported.drain(out);
    }
    fn restore(&mut self, key: &str, value: &[u8]) -> bool {
        self.reported.restore(key, value);
        true
    }
    fn inspect(&mut self, enriched: &EnrichedEvent, out: &mut Vec<Detection>) {
        let Some(workload) = enriched
            .audit
            .as_ref()
            .and_then(|event| event.workload.as_ref())
        else {
            return;
        };
        let containers: Vec<String> = workload
            .containers
            .iter()
            .filter(|container| {
                !container.privileged && !image_trusted(&container.image, &self.trusted_images)
            })
            .filter_map(|container| {
                let dangerous: Vec<&str> = container
                    .capabilities_added
                    .iter()
                    .map(String::as_str)
                    .filter(|capability| dangerous_capability(capability))
                    .collect();
                (!dangerous.is_empty()).then(|| {
                    format!(
                        "{} ({}) adding {}",
                        container.name,
                        container.image,
                        dangerous.join(", ")
                    )
                })
            })
            .collect();
        if containers.is_empty() {
            return;
        }
        let found = WorkloadFinding {
            finding_type: "PrivilegeEscalation:Kubernetes/ContainerWithDangerousCapabilities",
            headline: "Container with dangerous capabilities launched",
            details: format!("with container(s) {}", containers.join("; ")),
            risk: "These capabilities are enough to break out of the container onto its node.",
        };
        let detector = self.name();
        out.extend(report_workload(
            enriched,
            &mut self.reported,
            detector,
            found,
        ));
    }
}

/// Namespaces that belong to the cluster itself.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// Images expected in system namespaces beyond the trusted system images: the Kubernetes project's
/// registry (CoreDNS, metrics-server, cluster-autoscaler) and the EKS and Karpenter repositories.
pub fn default_system_namespace_images() -> Vec<String> {
    [
        "registry.k8s.io/",
        "public.ecr.aws/eks/",
        "public.ecr.aws/eks-distro/",
        "public.ecr.aws/karpenter/",
        "public.ecr.aws/aws-observability/",
    ]
    .iter()
    .map(|prefix| (*prefix).to_owned())
    .collect()
}

/// **`Persistence:Kubernetes/WorkloadInSystemNamespace`** — Medium (Vigil type).
/// Trigger: a pod or pod template created in `kube-system`, `kube-public` or `kube-node-lease` with
/// a container image that is neither a trusted system image nor an expected system-namespace image
/// ([`default_system_namespace_images`]): a workload hiding among the cluster's own. Controller-created
/// pods of a reported workload are attributed to it.
/// Key: principal, top-level workload.
#[derive(Debug)]
pub struct WorkloadInSystemNamespace {
    expected_images: Vec<String>,
    reported: RememberedKeys,
}

impl WorkloadInSystemNamespace {
    pub fn new(trusted_images: Vec<String>, system_namespace_images: Vec<String>) -> Self {
        let mut expected_images = trusted_images;
        expected_images.extend(system_namespace_images);
        Self {
            expected_images,
            reported: RememberedKeys::new(100_000),
        }
    }
}

impl Detector for WorkloadInSystemNamespace {
    fn name(&self) -> &'static str {
        "workload_in_system_namespace"
    }
    fn drain_state(&mut self, out: &mut Vec<StateEntry>) {
        self.reported.drain(out);
    }
    fn restore(&mut self, key: &str, value: &[u8]) -> bool {
        self.reported.restore(key, value);
        true
    }
    fn inspect(&mut self, enriched: &EnrichedEvent, out: &mut Vec<Detection>) {
        let Some(event) = enriched.audit.as_ref() else {
            return;
        };
        let Some(workload) = event.workload.as_ref() else {
            return;
        };
        let namespace = workload
            .namespace
            .as_deref()
            .or_else(|| event.object_ref.as_ref()?.namespace.as_deref())
            .unwrap_or_default();
        if event.verb != "create" || !SYSTEM_NAMESPACES.contains(&namespace) {
            return;
        }
        let unexpected: Vec<&str> = workload
            .containers
            .iter()
            .map(|container| container.image.as_str())
            .filter(|image| !image_trusted(image, &self.expected_images))
            .collect();
        if unexpected.is_empty() {
            return;
        }
        let found = WorkloadFinding {
            finding_type: "Persistence:Kubernetes/WorkloadInSystemNamespace",
            headline: "Workload launched in a system namespace",
            details: format!(
                "in system namespace {namespace} with image(s) {}",
                unexpected.join(", ")
            ),
            risk: "System namespaces hold the cluster's own components; a workload there blends in and often runs with their privileges.",
        };
        let detector = self.name();
        out.extend(report_workload(
            enriched,
            &mut self.reported,
            detector,
            found,
        ));
    }
}

/// The principal a request acts as: the impersonated user when there is one.
pub(crate) fn effective_user(event: &AuditEvent) -> &vigil_schemas::UserInfo {
    event.impersonated_user.as_ref().unwrap_or(&event.user)
}

/// A principal's denied requests in the current window.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct DeniedWindow {
    start_micros: i64,
    fired: bool,
    /// Hashes of the distinct (verb, resource, namespace) denied.
    distinct: Vec<u64>,
}

impl DeniedWindow {
    fn encode(&self) -> Vec<u8> {
        let hashes: Vec<String> = self.distinct.iter().map(u64::to_string).collect();
        format!(
            "{}|{}|{}",
            self.start_micros,
            u8::from(self.fired),
            hashes.join(",")
        )
        .into_bytes()
    }

    fn decode(value: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(value).ok()?;
        let mut parts = text.splitn(3, '|');
        let start_micros = parts.next()?.parse().ok()?;
        let fired = parts.next()? == "1";
        let distinct = parts
            .next()?
            .split(',')
            .filter(|part| !part.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        Some(Self {
            start_micros,
            fired,
            distinct,
        })
    }
}

/// **`Discovery:Kubernetes/DeniedRequestsBurst`** — Medium (Vigil type).
/// Trigger: one principal (the impersonated user when there is one) refused (403) on at least
/// `threshold` distinct (verb, resource, namespace) combinations within `window` of event time: a
/// stolen credential being tried against what it might reach. A misconfigured client retrying one
/// forbidden call repeats one combination and never fires. Anonymous callers (internet scanners)
/// and the control plane are left out. Fires once per window.
/// Key: principal.
#[derive(Debug)]
pub struct DeniedRequestsBurst {
    threshold: usize,
    window_micros: i64,
    capacity: usize,
    windows: std::collections::HashMap<String, DeniedWindow>,
    changes: Vec<StateEntry>,
}

impl DeniedRequestsBurst {
    /// `threshold` distinct denied calls within `window_secs`; at most `capacity` principals tracked.
    pub fn new(threshold: usize, window_secs: i64, capacity: usize) -> Self {
        Self {
            threshold: threshold.max(2),
            window_micros: window_secs.max(1).saturating_mul(1_000_000),
            capacity: capacity.max(1),
            windows: std::collections::HashMap::new(),
            changes: Vec::new(),
        }
    }

    fn evict_expired(&mut self, now_micros: i64) {
        let window = self.window_micros;
        let expired: Vec<String> = self
            .windows
            .iter()
            .filter(|(_, state)| now_micros.saturating_sub(state.start_micros) > window)
            .map(|(key, _)| key.clone())
            .collect();
        for key in expired {
            self.windows.remove(&key);
            self.changes.push(StateEntry {
                key,
                value: Vec::new(),
            });
        }
    }
}

impl Default for DeniedRequestsBurst {
    fn default() -> Self {
        Self::new(10, 600, 50_000)
    }
}

fn combination_hash(event: &AuditEvent) -> u64 {
    use std::hash::{Hash, Hasher};
    // Stable across processes and versions (checkpointed): FNV-1a over the parts.
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for byte in bytes {
                self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
    let object = event.object_ref.as_ref();
    event.verb.hash(&mut hasher);
    resource_of(event).hash(&mut hasher);
    object
        .and_then(|object| object.namespace.as_deref())
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

impl Detector for DeniedRequestsBurst {
    fn name(&self) -> &'static str {
        "denied_requests_burst"
    }
    fn drain_state(&mut self, out: &mut Vec<StateEntry>) {
        out.append(&mut self.changes);
    }
    fn restore(&mut self, key: &str, value: &[u8]) -> bool {
        match DeniedWindow::decode(value) {
            Some(window) if !value.is_empty() => {
                self.windows.insert(key.to_owned(), window);
                true
            }
            _ => {
                self.windows.remove(key);
                value.is_empty()
            }
        }
    }
    fn inspect(&mut self, enriched: &EnrichedEvent, out: &mut Vec<Detection>) {
        let Some(event) = enriched.audit.as_ref() else {
            return;
        };
        if event.status_code != Some(403) || is_anonymous(event) {
            return;
        }
        let user = effective_user(event);
        if crate::declarative::is_system_username(&user.username) {
            return;
        }
        let key = format!("{}|{}", enriched.cluster.name, user.username);
        let now = event.event_time_micros;
        if !self.windows.contains_key(&key) && self.windows.len() >= self.capacity {
            self.evict_expired(now);
            if self.windows.len() >= self.capacity {
                return;
            }
        }
        let window_micros = self.window_micros;
        let state = self.windows.entry(key.clone()).or_default();
        if state.distinct.is_empty() || now.saturating_sub(state.start_micros) > window_micros {
            *state = DeniedWindow {
                start_micros: now,
                ..DeniedWindow::default()
            };
        }
        let combination = combination_hash(event);
        if state.distinct.contains(&combination) {
            return;
        }
        state.distinct.push(combination);
        let crossed = !state.fired && state.distinct.len() >= self.threshold;
        if crossed {
            state.fired = true;
            // The distinct set is no longer needed once the window has fired.
            state.distinct.truncate(self.threshold);
        }
        self.changes.push(StateEntry {
            key,
            value: state.encode(),
        });
        if !crossed {
            return;
        }
        let verdict = Verdict {
            finding_type: "Discovery:Kubernetes/DeniedRequestsBurst".into(),
            severity: severity::MEDIUM,
            title: format!(
                "{} was refused {} different API calls in a short time.",
                user.username, self.threshold
            ),
            description: format!(
                "{} was refused (403) on {} different combinations of verb, resource and namespace within {} minutes in cluster {}, the latest {} {}. Someone is trying out what a credential can reach.",
                user.username,
                self.threshold,
                self.window_micros / 60_000_000,
                enriched.cluster.name,
                event.verb,
                event.request_uri
            ),
            aggregation_key: vec![user.username.clone()],
        };
        out.push(detection(enriched, event, self.name(), verdict));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_paths_match_at_and_below_their_roots_only() {
        let sensitive = default_sensitive_host_paths();
        for path in [
            "/",
            "/etc",
            "/etc/",
            "/etc/kubernetes/manifests",
            "/var/run/docker.sock",
            "/proc/1",
        ] {
            assert!(is_sensitive(path, &sensitive), "{path}");
        }
        for path in [
            "/data",
            "/var/log/app",
            "/mnt/cache",
            "/etcetera",
            "/opt/app",
        ] {
            assert!(!is_sensitive(path, &sensitive), "{path}");
        }
    }

    #[test]
    fn default_trusted_images_cover_eks_add_ons_in_both_registries() {
        let trusted = default_trusted_system_images();
        assert!(image_trusted(
            "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.18.1",
            &trusted
        ));
        assert!(image_trusted(
            "public.ecr.aws/eks/kube-proxy:v1.29.0",
            &trusted
        ));
        assert!(!image_trusted("docker.io/library/nginx:1.25", &trusted));
    }
}
