//! The built-in audit-log detectors. Each states its finding type, severity, trigger and aggregation
//! key (the parameters beyond type and cluster that make two detections one finding).

mod anonymous;
mod dashboard;
mod denied;
mod exec;
mod rbac;
mod remembered;
mod threat_intel;
mod workloads;

pub use anonymous::{AnonymousAccessGranted, SuccessfulAnonymousAccess};
pub use dashboard::ExposedDashboard;
pub use denied::DeniedRequestsBurst;
pub use exec::{
    CredentialsReadThroughExec, ExecInKubeSystemPod, FilesCopiedFromPod, copies_files_out,
    credential_read, simple_commands,
};
pub use rbac::{AdminAccessToDefaultServiceAccount, PrivilegedRoleBinding};
pub use threat_intel::{MaliciousIpCaller, TorIpCaller};
pub use workloads::{
    ContainerWithDangerousCapabilities, ContainerWithSensitiveMount, DANGEROUS_CAPABILITIES,
    HostNamespaceContainer, PrivilegedContainer, SYSTEM_NAMESPACES, WorkloadCheck,
    WorkloadDetector, WorkloadFinding, WorkloadInSystemNamespace, default_system_namespace_images,
    default_trusted_system_images,
};
