//! Workloads written with what lets a container reach its node: privileged containers, sensitive
//! host paths, the node's namespaces, dangerous capabilities, and workloads in system namespaces. A
//! top-level workload is reported once; the pods its controllers make are attributed to it.

use vigil_schemas::{AuditEvent, Detection, EnrichedEvent, WorkloadSpec};

use super::remembered::RememberedKeys;
use crate::detection::{Verdict, detection, severity};
use crate::facts::{is_controller, is_sensitive, is_write, succeeded, workload_identity};
use crate::{Detector, StateEntry};

/// What a workload detector found in a pod spec, in words for the finding.
#[derive(Debug, Clone)]
pub struct WorkloadFinding {
    pub finding_type: &'static str,
    /// "Privileged container launched": the title's start, completed with the workload.
    pub headline: &'static str,
    /// "with privileged container(s) app (nginx)": what the spec holds, after the workload's name.
    pub details: String,
    /// Why it matters, the description's last sentence.
    pub risk: &'static str,
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

/// What differs between the workload detectors: their name and what they look for in a workload
/// written. The rest (a workload reported once, the pods its controllers make attributed to it,
/// the finding's words and key, the checkpoints) is [`WorkloadDetector`]'s.
pub trait WorkloadCheck: Send + std::fmt::Debug {
    const NAME: &'static str;
    fn examine(&self, event: &AuditEvent, workload: &WorkloadSpec) -> Option<WorkloadFinding>;
}

/// A workload detector: one [`WorkloadCheck`] over every workload written.
#[derive(Debug)]
pub struct WorkloadDetector<C> {
    check: C,
    reported: RememberedKeys,
}

impl<C: WorkloadCheck> WorkloadDetector<C> {
    pub fn new(check: C) -> Self {
        Self {
            check,
            reported: RememberedKeys::new(100_000),
        }
    }
}

impl<C: WorkloadCheck> Detector for WorkloadDetector<C> {
    fn name(&self) -> &'static str {
        C::NAME
    }
    fn drain_state(&mut self, out: &mut Vec<StateEntry>) {
        self.reported.drain(out);
    }
    fn restore(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        self.reported.restore(key, value)
    }
    fn source(&self) -> crate::Source {
        crate::Source::Audit
    }
    fn inspect_audit(
        &mut self,
        event: &AuditEvent,
        enriched: &EnrichedEvent,
        out: &mut Vec<Detection>,
    ) {
        let Some(found) = event
            .workload
            .as_ref()
            .and_then(|workload| self.check.examine(event, workload))
        else {
            return;
        };
        out.extend(report_workload(
            enriched,
            &mut self.reported,
            C::NAME,
            found,
        ));
    }
}

fn all_trusted(workload: &WorkloadSpec, trusted_images: &[String]) -> bool {
    !workload.containers.is_empty()
        && workload
            .containers
            .iter()
            .all(|container| image_trusted(&container.image, trusted_images))
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
    pub trusted_images: Vec<String>,
}

impl WorkloadCheck for PrivilegedContainer {
    const NAME: &'static str = "privileged_container";
    fn examine(&self, _event: &AuditEvent, workload: &WorkloadSpec) -> Option<WorkloadFinding> {
        let containers: Vec<String> = workload
            .containers
            .iter()
            .filter(|container| {
                container.privileged && !image_trusted(&container.image, &self.trusted_images)
            })
            .map(|container| format!("{} ({})", container.name, container.image))
            .collect();
        (!containers.is_empty()).then(|| WorkloadFinding {
            finding_type: "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
            headline: "Privileged container launched",
            details: format!("with privileged container(s) {}", containers.join(", ")),
            risk: "A privileged container has root access to its node.",
        })
    }
}

/// **`Persistence:Kubernetes/ContainerWithSensitiveMount`** — Medium (GuardDuty's retired rule-based
/// type; the baseline variant is `...AnomalousBehavior.WorkloadDeployed!ContainerWithSensitiveMount`).
/// Trigger: a pod or pod template created or changed with a container that mounts a `hostPath`
/// volume at or below a sensitive host path ([`default_sensitive_host_paths`]), unless its image is a
/// trusted system image. Controller-created pods of a reported workload are attributed to it.
/// Key: principal, top-level workload.
#[derive(Debug)]
pub struct ContainerWithSensitiveMount {
    pub trusted_images: Vec<String>,
    pub sensitive_paths: Vec<String>,
}

impl WorkloadCheck for ContainerWithSensitiveMount {
    const NAME: &'static str = "container_with_sensitive_mount";
    fn examine(&self, _event: &AuditEvent, workload: &WorkloadSpec) -> Option<WorkloadFinding> {
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
        if !all_trusted(workload, &self.trusted_images) {
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
        (!mounts.is_empty()).then(|| WorkloadFinding {
            finding_type: "Persistence:Kubernetes/ContainerWithSensitiveMount",
            headline: "Container with a sensitive host path mounted",
            details: format!("mounting host path {}", mounts.join("; ")),
            risk: "Such a mount lets the container read or change its node.",
        })
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
    pub trusted_images: Vec<String>,
}

impl WorkloadCheck for HostNamespaceContainer {
    const NAME: &'static str = "host_namespace_container";
    fn examine(&self, _event: &AuditEvent, workload: &WorkloadSpec) -> Option<WorkloadFinding> {
        let shared: Vec<&str> = [
            (workload.host_network, "network"),
            (workload.host_pid, "process (PID)"),
            (workload.host_ipc, "IPC"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, what)| *what)
        .collect();
        if shared.is_empty() || all_trusted(workload, &self.trusted_images) {
            return None;
        }
        let images: Vec<&str> = workload
            .containers
            .iter()
            .map(|container| container.image.as_str())
            .collect();
        Some(WorkloadFinding {
            finding_type: "PrivilegeEscalation:Kubernetes/HostNamespaceContainer",
            headline: "Pod sharing its node's namespaces launched",
            details: format!(
                "sharing the node's {} namespace (images {})",
                shared.join(", "),
                images.join(", ")
            ),
            risk: "Such a pod sees the node's network traffic, processes or shared memory.",
        })
    }
}

/// **`PrivilegeEscalation:Kubernetes/ContainerWithDangerousCapabilities`** — Medium (Vigil type).
/// Trigger: a pod or pod template created or changed with a container that adds one of the
/// [`DANGEROUS_CAPABILITIES`], unless its image is a trusted system image. Privileged containers are
/// PrivilegedContainer's. Controller-created pods of a reported workload are attributed to it.
/// Key: principal, top-level workload.
#[derive(Debug)]
pub struct ContainerWithDangerousCapabilities {
    pub trusted_images: Vec<String>,
}

impl WorkloadCheck for ContainerWithDangerousCapabilities {
    const NAME: &'static str = "container_with_dangerous_capabilities";
    fn examine(&self, _event: &AuditEvent, workload: &WorkloadSpec) -> Option<WorkloadFinding> {
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
        (!containers.is_empty()).then(|| WorkloadFinding {
            finding_type: "PrivilegeEscalation:Kubernetes/ContainerWithDangerousCapabilities",
            headline: "Container with dangerous capabilities launched",
            details: format!("with container(s) {}", containers.join("; ")),
            risk: "These capabilities are enough to break out of the container onto its node.",
        })
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
    /// The trusted system images and the images expected in system namespaces.
    pub expected_images: Vec<String>,
}

impl WorkloadCheck for WorkloadInSystemNamespace {
    const NAME: &'static str = "workload_in_system_namespace";
    fn examine(&self, event: &AuditEvent, workload: &WorkloadSpec) -> Option<WorkloadFinding> {
        let namespace = workload
            .namespace
            .as_deref()
            .or_else(|| event.object_ref.as_ref()?.namespace.as_deref())
            .unwrap_or_default();
        if event.verb != "create" || !SYSTEM_NAMESPACES.contains(&namespace) {
            return None;
        }
        let unexpected: Vec<&str> = workload
            .containers
            .iter()
            .map(|container| container.image.as_str())
            .filter(|image| !image_trusted(image, &self.expected_images))
            .collect();
        (!unexpected.is_empty()).then(|| WorkloadFinding {
            finding_type: "Persistence:Kubernetes/WorkloadInSystemNamespace",
            headline: "Workload launched in a system namespace",
            details: format!(
                "in system namespace {namespace} with image(s) {}",
                unexpected.join(", ")
            ),
            risk: "System namespaces hold the cluster's own components; a workload there blends in and often runs with their privileges.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
