//! The input as it is written: the fields of `audit.k8s.io/v1` and `v1beta1` Events that Vigil reads,
//! and the envelopes they arrive in (EventList, CloudWatch Logs subscription records). Strings borrow
//! from the input where they have no escapes. Unknown fields are ignored; a known field of the wrong
//! type fails the event with serde's message, which names the field's line and column.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use vigil_schemas::time::{TimeForm, epoch_micros, parse_timestamp};

type Text<'a> = Cow<'a, str>;

/// One JSON object of the input, read once: every field that tells the shapes apart and every field
/// of an audit Event, all optional, so that a single parse serves whichever shape it is.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawObject<'a> {
    #[serde(borrow)]
    pub kind: Option<Text<'a>>,
    #[serde(borrow)]
    pub api_version: Option<Text<'a>>,
    // EventList
    #[serde(borrow)]
    pub items: Option<Vec<&'a RawValue>>,
    // CloudWatch Logs subscription record (also what Firehose delivers, concatenated)
    #[serde(borrow)]
    pub message_type: Option<Text<'a>>,
    #[serde(borrow)]
    pub log_group: Option<Text<'a>>,
    #[serde(borrow)]
    pub log_events: Option<Vec<RawLogEvent<'a>>>,
    // audit Event
    #[serde(borrow, rename = "auditID")]
    pub audit_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub stage: Option<Text<'a>>,
    #[serde(borrow)]
    pub level: Option<Text<'a>>,
    #[serde(borrow)]
    pub verb: Option<Text<'a>>,
    #[serde(borrow, rename = "requestURI")]
    pub request_uri: Option<Text<'a>>,
    #[serde(borrow)]
    pub user: Option<RawUser<'a>>,
    #[serde(borrow)]
    pub impersonated_user: Option<RawUser<'a>>,
    #[serde(borrow, rename = "sourceIPs")]
    pub source_ips: Option<Vec<Text<'a>>>,
    #[serde(borrow)]
    pub user_agent: Option<Text<'a>>,
    #[serde(borrow)]
    pub object_ref: Option<RawObjectRef<'a>>,
    #[serde(borrow)]
    pub response_status: Option<RawStatus<'a>>,
    #[serde(borrow)]
    pub request_object: Option<&'a RawValue>,
    #[serde(borrow)]
    pub response_object: Option<&'a RawValue>,
    #[serde(borrow)]
    pub request_received_timestamp: Option<RawTime<'a>>,
    #[serde(borrow)]
    pub stage_timestamp: Option<RawTime<'a>>,
    /// `v1beta1` only (and, in a Cloud Audit Logs entry, the entry's time).
    #[serde(borrow)]
    pub timestamp: Option<RawTime<'a>>,
    #[serde(borrow)]
    pub metadata: Option<RawMeta<'a>>,
    #[serde(borrow)]
    pub annotations: Option<RawAnnotations<'a>>,
    // Azure Monitor diagnostic records (AKS): one record, or an Event Hub batch `{"records": [...]}`.
    #[serde(borrow)]
    pub records: Option<Vec<&'a RawValue>>,
    #[serde(borrow)]
    pub category: Option<Text<'a>>,
    #[serde(borrow, alias = "Properties")]
    pub properties: Option<&'a RawValue>,
    // Google Cloud Audit Logs entries (GKE), and the Pub/Sub messages that carry them.
    #[serde(borrow)]
    pub proto_payload: Option<&'a RawValue>,
    /// A Pub/Sub push request's message (`message.data`, base64).
    #[serde(borrow)]
    pub message: Option<&'a RawValue>,
    /// A Pub/Sub pull response: `receivedMessages[].message`.
    #[serde(borrow)]
    pub received_messages: Option<Vec<&'a RawValue>>,
    // Runtime sensors: only what tells them apart; the sensor's parser reads the object again.
    /// A Tetragon export object: keyed by its event type (an object has exactly one).
    #[serde(
        borrow,
        rename = "process_exec",
        alias = "process_exit",
        alias = "process_kprobe",
        alias = "process_tracepoint",
        alias = "process_lsm",
        alias = "process_uprobe",
        alias = "process_loader",
        alias = "process_connect",
        alias = "process_close",
        alias = "process_listen"
    )]
    pub tetragon_event: Option<&'a RawValue>,
    /// A Falco alert: `rule` with `output_fields` or `priority`.
    #[serde(borrow)]
    pub rule: Option<&'a RawValue>,
    #[serde(borrow, rename = "output_fields")]
    pub output_fields: Option<&'a RawValue>,
    #[serde(borrow)]
    pub priority: Option<&'a RawValue>,
    /// Vigil's native runtime form: `"schema": "vigil.runtime/v1"`.
    #[serde(borrow)]
    pub schema: Option<Text<'a>>,
    /// A log shipper's record of a line it did not parse: the line as a string in `log` (Fluent
    /// Bit, Fluentd, Docker's json-file driver) or `message` (Vector, above).
    #[serde(borrow)]
    pub log: Option<&'a RawValue>,
    /// Splunk's HTTP Event Collector envelope (`{"time": ..., "sourcetype": ..., "event": EVENT}`),
    /// the event an object or its line as a string.
    #[serde(borrow)]
    pub event: Option<&'a RawValue>,
}

/// A time as exports write it: RFC 3339 and its lenient relatives as text, or an epoch number
/// (seconds, milliseconds, microseconds or nanoseconds). See [`vigil_schemas::time::parse_timestamp`].
#[derive(Debug, Clone)]
pub(crate) enum RawTime<'a> {
    Text(Text<'a>),
    Number(f64),
}

impl RawTime<'_> {
    pub fn micros(&self) -> Option<(i64, TimeForm)> {
        match self {
            Self::Text(text) => parse_timestamp(text),
            Self::Number(value) => epoch_micros(*value).map(|micros| (micros, TimeForm::Epoch)),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawTime<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimeVisitor;
        impl<'de> serde::de::Visitor<'de> for TimeVisitor {
            type Value = RawTime<'de>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a timestamp string or an epoch number")
            }
            fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(RawTime::Text(Cow::Borrowed(value)))
            }
            fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
                Ok(RawTime::Text(Cow::Owned(value.to_owned())))
            }
            fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
                Ok(RawTime::Text(Cow::Owned(value)))
            }
            #[allow(clippy::cast_precision_loss)]
            fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
                Ok(RawTime::Number(value as f64))
            }
            #[allow(clippy::cast_precision_loss)]
            fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
                Ok(RawTime::Number(value as f64))
            }
            fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
                Ok(RawTime::Number(value))
            }
        }
        deserializer.deserialize_any(TimeVisitor)
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawLogEvent<'a> {
    /// Milliseconds since the epoch: when CloudWatch received the line.
    pub timestamp: Option<i64>,
    #[serde(borrow)]
    pub message: Text<'a>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawUser<'a> {
    #[serde(borrow)]
    pub username: Option<Text<'a>>,
    #[serde(borrow)]
    pub uid: Option<Text<'a>>,
    #[serde(borrow)]
    pub groups: Option<Vec<Text<'a>>>,
    #[serde(borrow)]
    pub extra: Option<RawUserExtra<'a>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawUserExtra<'a> {
    #[serde(borrow, rename = "sessionName")]
    pub session_name: Option<Vec<Text<'a>>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawObjectRef<'a> {
    #[serde(borrow)]
    pub resource: Option<Text<'a>>,
    #[serde(borrow)]
    pub subresource: Option<Text<'a>>,
    #[serde(borrow)]
    pub namespace: Option<Text<'a>>,
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
    #[serde(borrow)]
    pub api_group: Option<Text<'a>>,
    #[serde(borrow)]
    pub api_version: Option<Text<'a>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawStatus<'a> {
    pub code: Option<i32>,
    #[serde(borrow)]
    pub reason: Option<Text<'a>>,
    #[serde(borrow)]
    pub message: Option<Text<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawMeta<'a> {
    #[serde(borrow)]
    pub creation_timestamp: Option<RawTime<'a>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawAnnotations<'a> {
    #[serde(borrow, rename = "authorization.k8s.io/decision")]
    pub decision: Option<Text<'a>>,
    #[serde(borrow, rename = "authorization.k8s.io/reason")]
    pub reason: Option<Text<'a>>,
}

// ---- Kubernetes objects inside requestObject / responseObject ----

/// A (self, local) subject access review: what was asked.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawAccessReview {
    pub spec: Option<RawAccessReviewSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RawAccessReviewSpec {
    pub resource_attributes: Option<RawResourceAttributes>,
    pub non_resource_attributes: Option<RawNonResourceAttributes>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawResourceAttributes {
    pub namespace: Option<String>,
    pub verb: Option<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawNonResourceAttributes {
    pub path: Option<String>,
    pub verb: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct K8sMeta {
    pub name: Option<String>,
    pub generate_name: Option<String>,
    pub namespace: Option<String>,
    pub uid: Option<String>,
    pub owner_references: Vec<OwnerReference>,
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct OwnerReference {
    pub kind: String,
    pub name: String,
    pub controller: Option<bool>,
}

/// A Pod, or any workload whose pod template sits at `spec.template` (or, for CronJobs, at
/// `spec.jobTemplate.spec.template`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PodLike {
    pub kind: Option<String>,
    pub metadata: K8sMeta,
    pub spec: Option<PodLikeSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct PodLikeSpec {
    // A pod's own spec
    pub containers: Vec<RawContainer>,
    pub init_containers: Vec<RawContainer>,
    pub ephemeral_containers: Vec<RawContainer>,
    pub volumes: Vec<RawVolume>,
    pub host_network: Option<bool>,
    #[serde(rename = "hostPID")]
    pub host_pid: Option<bool>,
    #[serde(rename = "hostIPC")]
    pub host_ipc: Option<bool>,
    pub service_account_name: Option<String>,
    pub service_account: Option<String>,
    pub node_name: Option<String>,
    // A workload's pod template
    pub template: Option<Box<PodTemplate>>,
    pub job_template: Option<Box<JobTemplate>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PodTemplate {
    pub spec: Option<PodLikeSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct JobTemplate {
    pub spec: Option<PodLikeSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RawContainer {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub security_context: Option<RawSecurityContext>,
    pub volume_mounts: Vec<RawVolumeMount>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RawSecurityContext {
    pub privileged: Option<bool>,
    pub allow_privilege_escalation: Option<bool>,
    pub run_as_user: Option<i64>,
    pub capabilities: Option<RawCapabilities>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawCapabilities {
    pub add: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RawVolumeMount {
    pub name: String,
    pub mount_path: String,
    pub read_only: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RawVolume {
    pub name: String,
    pub host_path: Option<RawHostPath>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawHostPath {
    pub path: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RawRoleBinding {
    pub kind: Option<String>,
    pub metadata: K8sMeta,
    pub role_ref: Option<RawRoleRef>,
    pub subjects: Option<Vec<RawSubject>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawRoleRef {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawSubject {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RawRole {
    pub kind: Option<String>,
    pub metadata: K8sMeta,
    pub rules: Option<Vec<RawPolicyRule>>,
    pub aggregation_rule: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RawPolicyRule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    #[serde(rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawService {
    pub kind: Option<String>,
    pub metadata: K8sMeta,
    pub spec: Option<RawServiceSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawServiceSpec {
    #[serde(rename = "type")]
    pub service_type: Option<String>,
    pub ports: Vec<RawServicePort>,
    pub selector: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RawServicePort {
    pub name: Option<String>,
    pub port: i32,
    pub node_port: Option<i32>,
    pub target_port: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawConfigMap {
    pub kind: Option<String>,
    pub data: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawIngress {
    pub metadata: K8sMeta,
    pub spec: Option<RawIngressSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawIngressSpec {
    pub rules: Vec<RawIngressRule>,
    /// Absent: no TLS at all. Present (even empty): the controller's default certificate may serve.
    pub tls: Option<Vec<RawIngressTls>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawIngressRule {
    pub host: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawIngressTls {
    pub hosts: Vec<String>,
}
