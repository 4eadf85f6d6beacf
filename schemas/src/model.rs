//! The records that cross a stage boundary. Each type mirrors one `schemas/*.avsc` file field for field;
//! `tests/schemas/schema_drift.rs` fails when they part. Plain data only: no I/O, no behaviour beyond accessors.
//!
//! Times are event times in microseconds since the Unix epoch (UTC), taken from the input, never from
//! the wall clock, so that replays are deterministic.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

/// A key and a value, the shape GuardDuty uses for tags and that Avro carries without a map type.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// A Kubernetes identity as the API server authenticated it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct UserInfo {
    pub username: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    /// EKS puts the IAM role session name in `user.extra.sessionName`; GuardDuty reports it.
    pub session_names: Vec<String>,
}

/// The object a request acted on (`objectRef` of the audit event).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct ObjectRef {
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub api_group: Option<String>,
    pub api_version: Option<String>,
}

/// One container of a pod template, reduced to what detection and findings use.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// True for `initContainers` and `ephemeralContainers`.
    pub init: bool,
    pub privileged: bool,
    pub allow_privilege_escalation: Option<bool>,
    pub run_as_user: Option<i64>,
    pub capabilities_added: Vec<String>,
    pub volume_mounts: Vec<VolumeMount>,
    /// `command` followed by `args`, each element cut to a bounded length.
    pub command: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct Volume {
    pub name: String,
    /// `hostPath.path` where the volume is a host path, the one kind detection cares about.
    pub host_path: Option<String>,
}

/// A pod or a workload that carries a pod template (Deployment, DaemonSet, StatefulSet, ReplicaSet,
/// Job, CronJob, ReplicationController), as written in a create/update/patch request or its response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct WorkloadSpec {
    /// The object's `kind`: `Pod`, `Deployment`, ...
    pub kind: String,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub uid: Option<String>,
    pub service_account: Option<String>,
    pub node_name: Option<String>,
    pub host_network: bool,
    pub host_pid: bool,
    pub host_ipc: bool,
    pub containers: Vec<ContainerSpec>,
    pub volumes: Vec<Volume>,
    /// The controlling owner reference (`controller: true`), when there is one.
    pub owner_kind: Option<String>,
    pub owner_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct Subject {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

/// A RoleBinding or ClusterRoleBinding from a create/update/patch request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct RoleBindingSpec {
    pub kind: String,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub uid: Option<String>,
    pub role_ref_kind: String,
    pub role_ref_name: String,
    pub subjects: Vec<Subject>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct PolicyRule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

/// A Role or ClusterRole from a create/update/patch request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct RoleSpec {
    pub kind: String,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub uid: Option<String>,
    pub rules: Vec<PolicyRule>,
    /// True when the role is an aggregated ClusterRole (its rules are filled in by the controller).
    pub aggregated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: i32,
    pub node_port: Option<i32>,
    pub target_port: Option<String>,
}

/// A Service from a create/update/patch request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct ServiceSpec {
    pub name: Option<String>,
    pub namespace: Option<String>,
    /// `ClusterIP` when the request leaves it out, as the API server defaults it.
    pub service_type: String,
    pub ports: Vec<ServicePort>,
    pub selector: Vec<KeyValue>,
    pub labels: Vec<KeyValue>,
}

/// One Kubernetes API request, normalized from an `audit.k8s.io` Event (schema `AuditEvent.avsc`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct AuditEvent {
    /// `auditID`; where the input has none, `sha256:` and a digest of the raw event.
    pub audit_id: String,
    /// `ResponseComplete`, `Panic`, or `ResponseStarted` for connect requests (exec, attach,
    /// port-forward) whose completion may come hours later.
    pub stage: String,
    pub level: String,
    /// Event time: `stageTimestamp`, else `requestReceivedTimestamp`, else `timestamp`, else
    /// `metadata.creationTimestamp`, else the CloudWatch ingestion time.
    pub event_time_micros: i64,
    /// The cluster the input names, such as the EKS log group `/aws/eks/NAME/cluster`.
    pub cluster_hint: Option<String>,
    pub verb: String,
    pub request_uri: String,
    pub user: UserInfo,
    pub impersonated_user: Option<UserInfo>,
    pub source_ips: Vec<String>,
    pub user_agent: Option<String>,
    pub object_ref: Option<ObjectRef>,
    pub status_code: Option<i32>,
    pub status_reason: Option<String>,
    /// `responseStatus.message`, bounded in length.
    pub status_message: Option<String>,
    /// `authorization.k8s.io/decision` annotation (`allow` / `forbid`).
    pub authz_decision: Option<String>,
    pub authz_reason: Option<String>,
    pub workload: Option<WorkloadSpec>,
    pub role_binding: Option<RoleBindingSpec>,
    pub role: Option<RoleSpec>,
    pub service: Option<ServiceSpec>,
    /// Keys of ConfigMap `data` with values judged to hold credentials (key names only, never values).
    pub config_map_credential_keys: Vec<String>,
    /// What an access review asked (`kubectl auth can-i`): `create clusterrolebindings`,
    /// `get secrets in kube-system`, `create pods/exec in shop`, `get /metrics` (a non-resource
    /// path); `*` where the review left a part empty.
    pub permission_checked: Option<String>,
    /// `requestObject` as JSON, kept only when within the size bound.
    pub request_object: Option<String>,
    /// `responseObject` as JSON, kept only when within the size bound.
    pub response_object: Option<String>,
    /// True when a request or response object was over the bound and left out (its extracted
    /// workload/role/binding/service fields above are still complete).
    pub objects_truncated: bool,
    /// The cloud whose log the event came in: `aws` (CloudWatch Logs), `azure` (Azure Monitor
    /// diagnostic records), `gcp` (Cloud Audit Logs); unset for a plain audit Event.
    #[serde(default)]
    #[avro(default = "null")]
    pub cloud_provider: Option<String>,
    /// The command of an exec (`pods/exec`): the `command=` parameters of the request URI, or the
    /// `PodExecOptions` body older API servers and Cloud Audit Logs carry. Each element bounded.
    #[serde(default)]
    #[avro(default = "[]")]
    pub exec_command: Vec<String>,
    /// An Ingress created or changed, as it is after the request.
    #[serde(default)]
    #[avro(default = "null")]
    pub ingress: Option<IngressSpec>,
    /// Its `auditID` came before with another request: the client sets the id (`Audit-ID`), and
    /// one reused hides a call from deduplication by id. Set by ingest, which passes it on.
    #[serde(default)]
    #[avro(default = "false")]
    pub audit_id_reused: bool,
}

/// An Ingress from a create/update/patch request or its response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct IngressSpec {
    pub name: Option<String>,
    pub namespace: Option<String>,
    /// The hosts its rules serve (`*` for a rule without a host).
    pub hosts: Vec<String>,
    /// The hosts its `tls` section covers.
    pub tls_hosts: Vec<String>,
    /// True when it has a `tls` section at all.
    pub tls: bool,
}

/// A process as a runtime sensor reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct ProcessInfo {
    pub pid: Option<i64>,
    /// Sensor-unique process id (Tetragon `exec_id`), stable across pid reuse.
    pub exec_id: Option<String>,
    pub parent_exec_id: Option<String>,
    /// Absolute path of the executable (`/memfd:...` or `/proc/self/fd/N` for fileless execution).
    pub binary: String,
    pub arguments: Option<String>,
    pub cwd: Option<String>,
    pub uid: Option<i64>,
    pub euid: Option<i64>,
    pub start_time_micros: Option<i64>,
    /// The sensor's exec flags (Tetragon `flags`: `execve rootcwd clone`, `procFS`...).
    pub flags: Option<String>,
}
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct NetworkInfo {
    pub protocol: String,
    pub source_ip: Option<String>,
    pub source_port: Option<i32>,
    pub destination_ip: Option<String>,
    pub destination_port: Option<i32>,
    pub destination_domain: Option<String>,
}

/// One OS-level event from a node or container (schema `RuntimeEvent.avsc`), whatever sensor saw it
/// (Tetragon, Falco, or an agent writing Vigil's native JSON). `kind` says which of the optional
/// fields are filled.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct RuntimeEvent {
    /// Deterministic: the sensor's own id, or a digest of the input, so a redelivery keeps its id.
    pub event_id: String,
    pub event_time_micros: i64,
    /// A [`crate::vocabulary::RuntimeKind`] (`runtime_kind()` reads it).
    pub kind: String,
    /// `tetragon`, `falco`, `native`.
    pub sensor: String,
    pub cluster_hint: Option<String>,
    pub node_name: Option<String>,
    pub container_id: Option<String>,
    pub container_name: Option<String>,
    pub image: Option<String>,
    /// When the container started: a binary written after it is container drift.
    pub container_started_micros: Option<i64>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    pub process: ProcessInfo,
    pub parent: Option<ProcessInfo>,
    /// Effective capabilities of the process, as the sensor names them (`CAP_SYS_ADMIN`).
    pub capabilities: Vec<String>,
    /// Linux namespaces the process shares with the host (`mnt`, `pid`, `net`...), when the sensor
    /// reports them: a container process in the host's namespaces has escaped.
    pub host_namespaces: Vec<String>,
    /// The file opened, read, written, renamed (its old name), unlinked, loaded or executed.
    pub file_path: Option<String>,
    /// The new name of a renamed or linked file.
    pub file_new_path: Option<String>,
    pub network: Option<NetworkInfo>,
    pub dns_query: Option<String>,
    /// Addresses a DNS answer resolved to.
    pub dns_answers: Vec<String>,
    pub module_name: Option<String>,
    pub mount_source: Option<String>,
    pub mount_target: Option<String>,
    pub mount_fs_type: Option<String>,
    /// The process acted on by ptrace, process_vm_writev or a `/proc/PID/mem` write.
    pub target_pid: Option<i64>,
    /// `PTRACE_POKETEXT`, `PTRACE_TRACEME`...; the request of a ptrace call.
    pub ptrace_request: Option<String>,
    /// The uid a privilege change moved to.
    pub new_uid: Option<i64>,
    /// The sensor's own rule or hook name (Falco rule, Tetragon kprobe function).
    pub sensor_rule: Option<String>,
    /// The sensor's own priority (Falco `priority`).
    pub sensor_priority: Option<String>,
    /// The sensor's own fields (Falco `output_fields`), bounded in number and length.
    pub sensor_fields: Vec<KeyValue>,
    /// SHA-256 (64 lowercase hex digits) of the file the event is about, when the sensor hashed
    /// it: the executable of an exec, the file an exec check or a file event names (Tetragon's IMA
    /// hash, the native form's `process.sha256` or `file.sha256`).
    #[serde(default)]
    #[avro(default = "null")]
    pub file_sha256: Option<String>,
}

/// The cluster an event belongs to, from the cluster configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct ClusterDetails {
    pub name: String,
    pub account_id: Option<String>,
    pub region: Option<String>,
    pub arn: Option<String>,
    pub vpc_id: Option<String>,
    pub partition: String,
    pub tags: Vec<KeyValue>,
    /// The cloud it runs in: `aws`, `azure`, `gcp`, from the configuration or the log's envelope
    /// (CloudWatch Logs, Azure Monitor, Cloud Audit Logs); unset when neither says.
    #[serde(default)]
    #[avro(default = "null")]
    pub provider: Option<String>,
}

impl ClusterDetails {
    /// What findings of this cluster are keyed by: its ARN when known, its name otherwise.
    pub fn key(&self) -> &str {
        self.arn.as_deref().unwrap_or(&self.name)
    }

    /// The ARN of finding `id` of this cluster, in GuardDuty's form (the detector is `vigil`).
    pub fn finding_arn(&self, id: &str) -> String {
        format!(
            "arn:{}:guardduty:{}:{}:detector/vigil/finding/{id}",
            self.partition,
            self.region.as_deref().unwrap_or_default(),
            self.account_id.as_deref().unwrap_or_default()
        )
    }
}

/// A threat list entry that matched.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct ThreatMatch {
    pub list_name: String,
    /// The entry that matched (an address or a CIDR).
    pub entry: String,
    /// SHA-256 of the list file, as GuardDuty's `threatFileSha256`.
    pub file_sha256: String,
    /// From a curated feed (raises `MaliciousIPCaller`) rather than a custom list (`.Custom`).
    #[serde(default)]
    pub curated: bool,
    /// What the list says its entries are: `c2`, `mining`, `drop_point`, `blackhole`, `phishing`,
    /// `dga`, `drive_by`, `malware`. Runtime finding types follow it.
    #[serde(default)]
    pub category: Option<String>,
}

/// What enrich knows of the caller's address.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct IpIntel {
    pub ip: String,
    /// `loopback`, `private` (RFC 1918, RFC 6598, link-local, ULA: in-cluster or VPC) or `public`.
    pub scope: String,
    pub tor_exit: bool,
    /// On a trusted list: IP-based findings are not raised for it.
    pub trusted: bool,
    pub threat_matches: Vec<ThreatMatch>,
    /// The autonomous system announcing a public address, from the user's ASN database (none
    /// configured: unset).
    pub asn: Option<i64>,
    pub as_organization: Option<String>,
    /// For a private address, where in the cluster's network it is, when the cluster's ranges are
    /// configured: `in-cluster` (a pod) or `vpc` (a node, the VPC).
    pub network: Option<String>,
    /// On the user's Tor relay list (a consensus or Onionoo export).
    #[serde(default)]
    #[avro(default = "false")]
    pub tor_relay: bool,
    /// The relay's OR ports, when the list gives them (empty: not known).
    #[serde(default)]
    #[avro(default = "[]")]
    pub tor_relay_or_ports: Vec<i32>,
}

/// A pod the request targets (exec, attach, port-forward, delete...), from the inventory enrich keeps.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct InventoryWorkload {
    pub namespace: String,
    pub pod_name: String,
    /// Top-level controller: a Deployment rather than its ReplicaSet, a CronJob rather than its Job.
    pub workload_kind: Option<String>,
    pub workload_name: Option<String>,
    pub service_account: Option<String>,
    pub node_name: Option<String>,
    pub images: Vec<String>,
}

/// An event with everything the detectors need beside it (schema `EnrichedEvent.avsc`). Exactly one
/// of `audit` and `runtime` is set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct EnrichedEvent {
    pub audit: Option<AuditEvent>,
    pub runtime: Option<RuntimeEvent>,
    pub cluster: ClusterDetails,
    pub source_ip: Option<IpIntel>,
    /// The pod the request targets, or the pod the runtime event ran in.
    pub target: Option<InventoryWorkload>,
    /// The top-level owner of the workload in the request (a pod's Deployment), from the inventory.
    pub workload_owner_kind: Option<String>,
    pub workload_owner_name: Option<String>,
    /// Runtime: the process's ancestors, parent first, as far as the node's process table knows them
    /// (up to the container's init or the host's).
    pub lineage: Vec<ProcessInfo>,
    /// Runtime: the executed or loaded file was written after its container started (drift).
    pub binary_written_in_container: bool,
    /// Runtime: what enrich knows of the remote address of a connection or of a DNS answer.
    pub destination_ip: Option<IpIntel>,
    /// Runtime: threat-list entries the queried or connected domain matched.
    pub domain_matches: Vec<ThreatMatch>,
    /// Runtime: threat-list entries (SHA-256 hashes) the executed file matched.
    #[serde(default)]
    #[avro(default = "[]")]
    pub file_matches: Vec<ThreatMatch>,
}

/// `service.action.kubernetesApiCallAction` of a finding.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct ApiCallAction {
    pub verb: String,
    pub request_uri: String,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub resource_name: Option<String>,
    pub status_code: Option<i32>,
    pub source_ips: Vec<String>,
    pub user_agent: Option<String>,
    pub parameters: Option<String>,
    pub remote_ip: Option<IpIntel>,
}

/// One rule or model firing on one event (schema `Detection.avsc`). publish turns detections that share
/// an aggregation key into one finding.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct Detection {
    /// GuardDuty's finding type, such as `Execution:Kubernetes/ExecInKubeSystemPod`.
    pub finding_type: String,
    /// The detector that fired, for metrics and suppression.
    pub detector: String,
    /// GuardDuty's numeric severity (Low 1-3.9, Medium 4-6.9, High 7-8.9, Critical 9-10).
    pub severity: f64,
    pub title: String,
    pub description: String,
    /// The parameters beyond type and cluster that make two detections the same finding, such as the
    /// principal and the resource. Documented per detector.
    pub aggregation_key: Vec<String>,
    pub event_id: String,
    pub event_time_micros: i64,
    pub cluster: ClusterDetails,
    pub user: Option<UserInfo>,
    pub impersonated_user: Option<UserInfo>,
    pub workload: Option<WorkloadSpec>,
    pub target: Option<InventoryWorkload>,
    pub api_call: Option<ApiCallAction>,
    pub role_binding: Option<RoleBindingSpec>,
    pub role: Option<RoleSpec>,
    pub threat_intel: Vec<ThreatMatch>,
    /// Free-form context for the finding's `service.additionalInfo`.
    pub additional_info: Vec<KeyValue>,
    /// Runtime findings: the process, its lineage and the container it ran in.
    pub runtime: Option<RuntimeDetails>,
    /// Anomaly findings: what was unusual and what the baseline held (`service.detection.anomaly`).
    pub anomaly: Vec<AnomalyObservation>,
    /// A weak signal: it raises no finding of its own, but publish's correlator links it with
    /// findings into an attack sequence (a secret read by a workload identity, a new destination).
    #[serde(default)]
    #[avro(default = "false")]
    pub signal_only: bool,
}

/// One unusual dimension of an anomaly: what was observed and what the learned profile held.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct AnomalyObservation {
    /// Whose profile: `principal`, `namespace`, `workload`...
    pub scope: String,
    /// The profiled entity, such as the principal's name.
    pub entity: String,
    /// The profiled dimension: `userAgent`, `networkOrigin`, `namespace`, `apiCall`, `timeOfWeek`...
    pub dimension: String,
    pub observed: String,
    /// How the baseline knew the observed value: `unseen`, `rare`, `infrequent` or `frequent`.
    pub familiarity: String,
    /// The values the baseline holds most often, most frequent first (bounded).
    pub baseline: Vec<String>,
    /// Observations in the profile and days it spans, for the reader's sense of its weight.
    pub profile_observations: i64,
    pub profile_days: i64,
}

/// `service.runtimeDetails` of a runtime finding, and the container and node it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct RuntimeDetails {
    pub sensor: String,
    pub event_kind: String,
    pub process: ProcessInfo,
    /// Ancestors, parent first.
    pub lineage: Vec<ProcessInfo>,
    pub node_name: Option<String>,
    pub container_id: Option<String>,
    pub container_name: Option<String>,
    pub image: Option<String>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    /// `service.runtimeDetails.context`: only the fields that matter for the type, under GuardDuty's
    /// names (`filePath`, `moduleName`, `socketPath`, `toolName`...).
    pub context: Vec<KeyValue>,
}

/// A finding as publish keeps it: the latest detection of its aggregation key plus the aggregation
/// counters (schema `Finding.avsc`). Its GuardDuty JSON rendering is derived from it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.vigil")]
pub struct Finding {
    /// Deterministic: a digest of type, cluster and aggregation key.
    pub id: String,
    pub count: i64,
    /// Event time of the first occurrence.
    pub created_at_micros: i64,
    /// Event time of the latest occurrence.
    pub updated_at_micros: i64,
    pub event_first_seen_micros: i64,
    pub event_last_seen_micros: i64,
    /// Set by suppression rules: still published, marked archived.
    pub archived: bool,
    /// The latest occurrence, whose details the finding shows (as GuardDuty overwrites them).
    pub detection: Detection,
    /// Event ids of the latest occurrences (bounded), so that a redelivered detection is recognised
    /// and not counted twice.
    pub recent_event_ids: Vec<String>,
    /// The ARN of the attack sequence this finding is a signal of (`associatedAttackSequenceArn`).
    #[serde(default)]
    #[avro(default = "null")]
    pub attack_sequence_arn: Option<String>,
}

/// A normalized event of either source: what ingest emits and enrich takes. Each source keeps its own
/// record (and topic); this is how code that handles both says so in its type.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A Kubernetes API request, from the audit log.
    Audit(Box<AuditEvent>),
    /// A process, file, network, DNS or mount event from a node sensor.
    Runtime(Box<RuntimeEvent>),
}

impl Event {
    /// The source's name, as used in metric labels and rule files.
    pub const fn source(&self) -> &'static str {
        match self {
            Self::Audit(_) => "audit",
            Self::Runtime(_) => "runtime",
        }
    }
}
