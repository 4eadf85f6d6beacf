//! The Rust detectors, each in one place: its name, the finding types it raises, its severity as
//! `vigil rules list` shows it, and how it is built from the settings. The declarative rules
//! (`rules/*.toml`) say the same of themselves in their files. Adding a Rust detector is its module,
//! its entry here and its tests; a test holds each entry's name to the detector it builds.

use crate::audit::WorkloadDetector;
use crate::{DetectConfig, Detector, Source, audit, baselines, runtime};

/// One Rust detector: what `vigil rules list` shows of it, and its constructor.
#[derive(Debug, Clone, Copy)]
pub struct RustDetector {
    /// The detector's name: its `Detector::name`, its state keys' prefix, its metrics label.
    pub name: &'static str,
    /// The events it is given (its `Detector::source`).
    pub source: Source,
    /// The finding type(s) it raises (`<Purpose>` for types that follow the call's threat purpose).
    pub finding_types: &'static str,
    pub severity: &'static str,
    /// What makes it fire, for `vigil rules list` and docs/detectors.md (Markdown).
    pub trigger: &'static str,
    /// What, beyond type and cluster, makes two detections one finding.
    pub key: &'static str,
    pub build: fn(&DetectConfig) -> Box<dyn Detector>,
}

fn trusted(config: &DetectConfig) -> Vec<String> {
    config.trusted_system_images.clone()
}

/// Every Rust detector, on by default, in the order they run.
pub const RUST_DETECTORS: &[RustDetector] = &[
    RustDetector {
        name: "successful_anonymous_access",
        source: Source::Audit,
        finding_types: "<Purpose>:Kubernetes/SuccessfulAnonymousAccess",
        severity: "High (Discovery: Medium)",
        trigger: "a request by `system:anonymous` / `system:unauthenticated` that succeeded, health, version and service-account issuer discovery endpoints aside",
        key: "principal, resource, source IP",
        build: |_| Box::new(audit::SuccessfulAnonymousAccess),
    },
    RustDetector {
        name: "anonymous_access_granted",
        source: Source::Audit,
        finding_types: "Policy:Kubernetes/AnonymousAccessGranted",
        severity: "High",
        trigger: "a (Cluster)RoleBinding created or changed with an anonymous subject, of a ClusterRole other than those bound to everyone by design",
        key: "principal, binding",
        build: |_| Box::new(audit::AnonymousAccessGranted),
    },
    RustDetector {
        name: "exec_in_kube_system_pod",
        source: Source::Audit,
        finding_types: "Execution:Kubernetes/ExecInKubeSystemPod",
        severity: "Medium",
        trigger: "`pods/exec` allowed in `kube-system`",
        key: "principal, pod",
        build: |_| Box::new(audit::ExecInKubeSystemPod),
    },
    RustDetector {
        name: "credentials_read_through_exec",
        source: Source::Audit,
        finding_types: "CredentialAccess:Kubernetes/CredentialsReadThroughExec",
        severity: "Medium (kube-system: High)",
        trigger: "an exec whose command reads a service-account, IRSA, Pod Identity or Azure workload token, a cloud credential file, a kubeconfig or node keys, asks a metadata endpoint, or dumps the environment (`env`, `printenv`, `/proc/*/environ`); the command from the URI (`command=`, repeated) or an older API server's body; a shell's `-c` script read command by command",
        key: "principal, pod",
        build: |_| Box::new(audit::CredentialsReadThroughExec),
    },
    RustDetector {
        name: "files_copied_from_pod",
        source: Source::Audit,
        finding_types: "Exfiltration:Kubernetes/FilesCopiedFromPod",
        severity: "Low (kube-system: Medium)",
        trigger: "an exec of `tar` creating an archive on its output (what `kubectl cp POD:PATH .` runs)",
        key: "principal, pod",
        build: |_| Box::new(audit::FilesCopiedFromPod),
    },
    RustDetector {
        name: "privileged_role_binding",
        source: Source::Audit,
        finding_types: "PrivilegeEscalation:Kubernetes/PrivilegedRoleBinding",
        severity: "High (ClusterRoleBinding or a group of everyone), Medium (RoleBinding)",
        trigger: "a binding, not by a system principal, of `admin`, `edit`, a control-plane role (`system:controller:*`, `system:kube-controller-manager`, `system:kube-scheduler`, `system:node`), an `eks:*` role, a role seen written with `escalate`, `bind`, `impersonate` or `*` (remembered per cluster, checkpointed), or of any role but the discovery ones to `system:authenticated`, `system:serviceaccounts`, `system:nodes` or `system:masters`; `cluster-admin` is ClusterAdminBinding's, anonymous subjects AnonymousAccessGranted's",
        key: "principal, binding",
        build: |_| Box::new(audit::PrivilegedRoleBinding::default()),
    },
    RustDetector {
        name: "admin_access_to_default_service_account",
        source: Source::Audit,
        finding_types: "Policy:Kubernetes/AdminAccessToDefaultServiceAccount",
        severity: "High",
        trigger: "a binding of `cluster-admin` or `admin` to a `default` ServiceAccount (or to the User `system:serviceaccount:NS:default`, the same account)",
        key: "principal, binding",
        build: |_| Box::new(audit::AdminAccessToDefaultServiceAccount),
    },
    RustDetector {
        name: "exposed_dashboard",
        source: Source::Audit,
        finding_types: "Policy:Kubernetes/ExposedDashboard, Policy:Kubernetes/KubeflowDashboardExposed",
        severity: "Medium",
        trigger: "a `LoadBalancer` Service for the Kubernetes (or Kubeflow) dashboard",
        key: "principal, service",
        build: |_| Box::new(audit::ExposedDashboard),
    },
    RustDetector {
        name: "tor_ip_caller",
        source: Source::Audit,
        finding_types: "<Purpose>:Kubernetes/TorIPCaller",
        severity: "High (Discovery, Persistence: Medium)",
        trigger: "an authenticated request from a Tor exit",
        key: "principal, source IP",
        build: |_| Box::new(audit::TorIpCaller),
    },
    RustDetector {
        name: "malicious_ip_caller",
        source: Source::Audit,
        finding_types: "<Purpose>:Kubernetes/MaliciousIPCaller",
        severity: "High (Discovery, Persistence: Medium)",
        trigger: "an authenticated request from an address on a curated feed",
        key: "principal, source IP",
        build: |_| Box::new(audit::MaliciousIpCaller::curated()),
    },
    RustDetector {
        name: "malicious_ip_caller_custom",
        source: Source::Audit,
        finding_types: "<Purpose>:Kubernetes/MaliciousIPCaller.Custom",
        severity: "High (Discovery, Persistence: Medium)",
        trigger: "an authenticated request from an address on your threat list",
        key: "principal, source IP",
        build: |_| Box::new(audit::MaliciousIpCaller::custom()),
    },
    RustDetector {
        name: "privileged_container",
        source: Source::Audit,
        finding_types: "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
        severity: "Medium",
        trigger: "a pod or pod template with a privileged container, trusted system images aside",
        key: "principal, top-level workload",
        build: |config| {
            Box::new(WorkloadDetector::new(audit::PrivilegedContainer {
                trusted_images: trusted(config),
            }))
        },
    },
    RustDetector {
        name: "container_with_sensitive_mount",
        source: Source::Audit,
        finding_types: "Persistence:Kubernetes/ContainerWithSensitiveMount",
        severity: "Medium",
        trigger: "a container mounting a sensitive `hostPath` (`/`, `/etc`, `/proc`, runtime sockets, kubelet state...), trusted system images aside",
        key: "principal, top-level workload",
        build: |config| {
            Box::new(WorkloadDetector::new(audit::ContainerWithSensitiveMount {
                trusted_images: trusted(config),
                sensitive_paths: config.sensitive_host_paths.clone(),
            }))
        },
    },
    RustDetector {
        name: "host_namespace_container",
        source: Source::Audit,
        finding_types: "PrivilegeEscalation:Kubernetes/HostNamespaceContainer",
        severity: "Medium",
        trigger: "a pod sharing the node's network, PID or IPC namespace, trusted system images aside",
        key: "principal, top-level workload",
        build: |config| {
            Box::new(WorkloadDetector::new(audit::HostNamespaceContainer {
                trusted_images: trusted(config),
            }))
        },
    },
    RustDetector {
        name: "container_with_dangerous_capabilities",
        source: Source::Audit,
        finding_types: "PrivilegeEscalation:Kubernetes/ContainerWithDangerousCapabilities",
        severity: "Medium",
        trigger: "a non-privileged container adding SYS_ADMIN, SYS_PTRACE, SYS_MODULE, DAC_READ_SEARCH, NET_ADMIN, SYS_RAWIO, BPF, PERFMON or ALL",
        key: "principal, top-level workload",
        build: |config| {
            Box::new(WorkloadDetector::new(
                audit::ContainerWithDangerousCapabilities {
                    trusted_images: trusted(config),
                },
            ))
        },
    },
    RustDetector {
        name: "workload_in_system_namespace",
        source: Source::Audit,
        finding_types: "Persistence:Kubernetes/WorkloadInSystemNamespace",
        severity: "Medium",
        trigger: "a workload created in kube-system, kube-public or kube-node-lease with an image that is neither a trusted system image nor an expected one (registry.k8s.io, EKS and Karpenter repositories)",
        key: "principal, top-level workload",
        build: |config| {
            let mut expected_images = trusted(config);
            expected_images.extend(config.system_namespace_images.iter().cloned());
            Box::new(WorkloadDetector::new(audit::WorkloadInSystemNamespace {
                expected_images,
            }))
        },
    },
    RustDetector {
        name: "denied_requests_burst",
        source: Source::Audit,
        finding_types: "Discovery:Kubernetes/DeniedRequestsBurst",
        severity: "Medium",
        trigger: "one principal refused (403) on 10 different verb/resource/namespace combinations within 10 minutes of event time (anonymous scanners and repeats of one call aside); state checkpointed",
        key: "principal",
        build: |config| {
            Box::new(audit::DeniedRequestsBurst::new(
                config.denied_burst_threshold,
                config.denied_burst_window_secs,
                50_000,
            ))
        },
    },
    RustDetector {
        name: "runtime_threat_intel",
        source: Source::Runtime,
        finding_types: "Backdoor:Runtime/C&CActivity.B[!DNS], CryptoCurrency:Runtime/BitcoinTool.B[!DNS], Trojan:Runtime/DropPoint[!DNS], Trojan:Runtime/BlackholeTraffic[!DNS], Trojan:Runtime/{Phishing,DGA,DriveBySource}...!DNS, UnauthorizedAccess:Runtime/TorClient, UnauthorizedAccess:Runtime/TorRelay, UnauthorizedAccess:Runtime/MaliciousIPCaller.Custom, Impact:Runtime/MaliciousDomainRequest.Reputation, Impact:Runtime/AbusedDomainRequest.Reputation, Execution:Runtime/MaliciousFileExecuted[.Custom]",
        severity: "by list category (High: C&C, mining, phishing, DGA, drive-by, Tor; Medium: others)",
        trigger: "a connection to, or DNS query for, an entry of a threat list, by the list's category (`c2`, `mining`, `drop_point`, `blackhole`, `phishing`, `dga`, `drive_by`, `abused`: AbusedDomainRequest.Reputation; none or `malware`: MaliciousIPCaller.Custom, MaliciousDomainRequest.Reputation), a connection to a Tor exit or to a relay's OR port (TorClient), an inbound connection from a Tor relay (TorRelay; the relay list in the consensus or Onionoo form), or the exec of a file whose SHA-256 (reported by the sensor) is on a list: MaliciousFileExecuted (curated feed) or .Custom",
        key: "workload, list entry",
        build: |_| Box::new(runtime::RuntimeThreatIntel),
    },
    RustDetector {
        name: "sensor_alert",
        source: Source::Runtime,
        finding_types: "<Purpose>:Runtime/SensorAlert, <Purpose>:Kubernetes/SensorAlert",
        severity: "by the sensor's priority",
        trigger: "a Falco alert; the purpose from its MITRE tags; `Kubernetes` for Falco's audit-log sources (k8saudit plugins)",
        key: "rule, workload, executable; rule, user, object for audit-log alerts",
        build: |_| Box::new(runtime::SensorAlert),
    },
    RustDetector {
        name: "principal_baselines",
        source: Source::Audit,
        finding_types: "Execution:Kubernetes/AnomalousBehavior.ExecInPod, CredentialAccess:Kubernetes/AnomalousBehavior.SecretsAccessed, PrivilegeEscalation:Kubernetes/AnomalousBehavior.RoleCreated, PrivilegeEscalation:Kubernetes/AnomalousBehavior.RoleBindingCreated, Discovery:Kubernetes/AnomalousBehavior.PermissionChecked, Execution:Kubernetes/AnomalousBehavior.WorkloadDeployed, PrivilegeEscalation:Kubernetes/AnomalousBehavior.WorkloadDeployed!PrivilegedContainer, Persistence:Kubernetes/AnomalousBehavior.WorkloadDeployed!ContainerWithSensitiveMount, Discovery:Kubernetes/AnomalousBehavior.UnusualCall",
        severity: "Low to High by call (see detect/src/baselines/principal/mod.rs)",
        trigger: "a stable principal (and its peer group, namespace and cluster) doing what its profile never held: exec, secret reads, roles and bindings, permission checks and workloads of a kind, namespace, client or network origin it has not used ([baselines](baselines.md)); any other call of a stable principal that departs as much is a weak signal (UnusualCall: no finding, a step for attack sequences)",
        key: "principal, object",
        build: |config| {
            Box::new(baselines::PrincipalBaselines::new(
                config.baselines.clone(),
                config.sensitive_host_paths.clone(),
                config.baseline_caps.principals,
                config.baseline_caps.principals_per_cluster,
            ))
        },
    },
    RustDetector {
        name: "volume_baselines",
        source: Source::Audit,
        finding_types: "CredentialAccess:Kubernetes/AnomalousBehavior.SecretsAccessedBurst, Discovery:Kubernetes/AnomalousBehavior.PermissionCheckedBurst, Discovery:Kubernetes/AnomalousBehavior.DeniedRequestsBurst",
        severity: "Medium (secrets, denied), Low (permission checks)",
        trigger: "a principal reading secrets, checking permissions or being refused far more in an hour than its busiest learned hour ([baselines](baselines.md))",
        key: "principal",
        build: |config| {
            Box::new(baselines::VolumeBaselines::new(
                config.baselines.clone(),
                config.baseline_caps.principals,
                config.baseline_caps.principals_per_cluster,
            ))
        },
    },
    RustDetector {
        name: "image_baselines",
        source: Source::Runtime,
        finding_types: "Execution:Runtime/AnomalousBehavior.NewBinaryInImage, Execution:Runtime/AnomalousBehavior.NewLibraryInImage, UnauthorizedAccess:Runtime/AnomalousBehavior.NewOutboundDestination",
        severity: "Medium (new binary, new library), Low (new destination)",
        trigger: "a stable image (and workload) running an executable, loading a library or reaching a destination its profile never held ([baselines](baselines.md))",
        key: "workload, executable or destination",
        build: |config| {
            Box::new(baselines::ImageBaselines::new(
                config.baselines.clone(),
                config.baseline_caps.images,
                config.baseline_caps.images_per_cluster,
            ))
        },
    },
    RustDetector {
        name: "generated_domain_request",
        source: Source::Runtime,
        finding_types: "Impact:Runtime/SuspiciousDomainRequest.Reputation",
        severity: "Low",
        trigger: "a DNS query for a generated-looking name (a long, high-entropy, vowel-poor label; cloud, cluster and CDN names aside)",
        key: "workload, registrable domain",
        build: |_| Box::new(runtime::GeneratedDomainRequest),
    },
];

/// The Rust detector of that name.
pub fn find(name: &str) -> Option<&'static RustDetector> {
    RUST_DETECTORS.iter().find(|detector| detector.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_builds_the_detector_it_names_of_its_source_and_names_are_unique() {
        let config = DetectConfig::default();
        let mut names = std::collections::BTreeSet::new();
        for entry in RUST_DETECTORS {
            let built = (entry.build)(&config);
            assert_eq!(built.name(), entry.name);
            assert_eq!(built.source(), entry.source, "{}", entry.name);
            assert!(names.insert(entry.name), "{} twice", entry.name);
            assert!(!entry.finding_types.is_empty() && !entry.severity.is_empty());
        }
    }
}
