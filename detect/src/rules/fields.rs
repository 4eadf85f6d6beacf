//! The fields a rule can test, each with its doc and how it is read from an event: the table
//! `vigil rules fields` prints.

use std::borrow::Cow;
use std::fmt;

use vigil_schemas::{AuditEvent, EnrichedEvent, RuntimeEvent, UserInfo};

use crate::detection::ThreatPurpose;
use crate::facts::{
    base_name, command_line, is_anonymous, is_system_principal, is_write, object_name,
    runtime_resource, succeeded,
};

/// One value of a field of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    Int(i64),
}

impl FieldValue<'_> {
    pub(super) fn text(&self) -> Cow<'_, str> {
        match self {
            Self::Str(text) => Cow::Borrowed(text.as_ref()),
            Self::Bool(value) => Cow::Owned(value.to_string()),
            Self::Int(value) => Cow::Owned(value.to_string()),
        }
    }
}

/// Hands each value of a field to the visitor: no allocation on the hot path.
pub(super) type Extract = for<'a> fn(&'a EnrichedEvent, &mut dyn FnMut(FieldValue<'a>));

/// A field rules can test, with what it holds.
#[derive(Clone, Copy)]
pub struct FieldDef {
    pub name: &'static str,
    pub doc: &'static str,
    pub(super) extract: Extract,
}

impl fmt::Debug for FieldDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Which events a field is read from: a rule may only test the fields of its own source (an audit
/// rule testing `process.binary` would load and never fire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldSource {
    Audit,
    Runtime,
    /// The cluster and the targeted pod: known for both.
    Both,
}

impl FieldSource {
    /// The cluster and the targeted pod are known for both; a field documented `runtime: ...` is
    /// read from runtime events; the rest from audit events.
    pub fn of(field: &FieldDef) -> Self {
        if field.name.starts_with("cluster.") || field.name.starts_with("target.") {
            Self::Both
        } else if field.doc.starts_with("runtime") {
            Self::Runtime
        } else {
            Self::Audit
        }
    }

    pub const fn label(self) -> &'static str {
        match self {
            Self::Audit => "audit",
            Self::Runtime => "runtime",
            Self::Both => "audit and runtime",
        }
    }
}

/// The Kubernetes API verbs the API server logs (RBAC's special verbs included).
const VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "impersonate",
    "bind",
    "escalate",
    "use",
    "approve",
    "sign",
    "proxy",
    "connect",
];

/// The values a field can hold where they are a closed set: a rule comparing it with anything else
/// (`runtime.kind = "proces_exec"`) is refused at load time instead of never firing.
pub fn domain_of(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "runtime.kind" => vigil_schemas::RUNTIME_KINDS,
        "verb" => VERBS,
        "service.type" => &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"],
        "threat_purpose" => &[
            "CredentialAccess",
            "Discovery",
            "DefenseEvasion",
            "Persistence",
            "Impact",
        ],
        _ => return None,
    })
}

pub(super) fn audit(event: &EnrichedEvent) -> Option<&AuditEvent> {
    event.audit.as_ref()
}

pub(super) fn text<'a>(out: &mut dyn FnMut(FieldValue<'a>), value: &'a str) {
    out(FieldValue::Str(Cow::Borrowed(value)));
}

pub(super) fn maybe<'a>(out: &mut dyn FnMut(FieldValue<'a>), value: Option<&'a String>) {
    if let Some(value) = value {
        text(out, value);
    }
}

pub(super) fn all<'a>(out: &mut dyn FnMut(FieldValue<'a>), values: &'a [String]) {
    for value in values {
        text(out, value);
    }
}

pub(super) fn flag<'a>(out: &mut dyn FnMut(FieldValue<'a>), value: bool) {
    out(FieldValue::Bool(value));
}

pub(super) fn user_fields<'a>(
    out: &mut dyn FnMut(FieldValue<'a>),
    user: Option<&'a UserInfo>,
    pick: u8,
) {
    if let Some(user) = user {
        match pick {
            0 => text(out, &user.username),
            1 => all(out, &user.groups),
            _ => maybe(out, user.uid.as_ref()),
        }
    }
}

macro_rules! field {
    ($name:literal, $doc:literal, |$event:ident, $out:ident| $body:expr) => {
        FieldDef {
            name: $name,
            doc: $doc,
            extract: |$event, $out| {
                $body;
            },
        }
    };
}

/// Every field a rule can test. Audit fields are empty for runtime events and the other way round.
pub const FIELDS: &[FieldDef] = &[
    field!(
        "verb",
        "API verb: get, list, watch, create, update, patch, delete, deletecollection",
        |e, out| if let Some(a) = audit(e) {
            text(out, &a.verb)
        }
    ),
    field!(
        "request_uri",
        "request path and query",
        |e, out| if let Some(a) = audit(e) {
            text(out, &a.request_uri)
        }
    ),
    field!("user.username", "the authenticated caller", |e, out| {
        user_fields(out, audit(e).map(|a| &a.user), 0)
    }),
    field!("user.groups", "the caller's groups", |e, out| user_fields(
        out,
        audit(e).map(|a| &a.user),
        1
    )),
    field!("user.uid", "the caller's uid", |e, out| user_fields(
        out,
        audit(e).map(|a| &a.user),
        2
    )),
    field!(
        "impersonated_user.username",
        "the user impersonated, when the request impersonates",
        |e, out| user_fields(out, audit(e).and_then(|a| a.impersonated_user.as_ref()), 0)
    ),
    field!(
        "impersonated_user.groups",
        "the groups impersonated (Impersonate-Group), when the request impersonates",
        |e, out| user_fields(out, audit(e).and_then(|a| a.impersonated_user.as_ref()), 1)
    ),
    field!(
        "source_ips",
        "source addresses of the request",
        |e, out| if let Some(a) = audit(e) {
            all(out, &a.source_ips)
        }
    ),
    field!(
        "user_agent",
        "the client's user agent",
        |e, out| if let Some(a) = audit(e) {
            maybe(out, a.user_agent.as_ref())
        }
    ),
    field!(
        "status_code",
        "HTTP status of the response",
        |e, out| if let Some(code) = audit(e).and_then(|a| a.status_code) {
            out(FieldValue::Int(i64::from(code)))
        }
    ),
    field!(
        "authz_decision",
        "the authorizer's decision: allow or forbid",
        |e, out| if let Some(a) = audit(e) {
            maybe(out, a.authz_decision.as_ref())
        }
    ),
    field!(
        "object_ref.resource",
        "resource: pods, secrets, clusterroles...",
        |e, out| if let Some(o) = audit(e).and_then(|a| a.object_ref.as_ref()) {
            maybe(out, o.resource.as_ref())
        }
    ),
    field!(
        "object_ref.subresource",
        "subresource: exec, attach, portforward, token, approval...",
        |e, out| if let Some(o) = audit(e).and_then(|a| a.object_ref.as_ref()) {
            maybe(out, o.subresource.as_ref())
        }
    ),
    field!(
        "object_ref.namespace",
        "namespace of the object",
        |e, out| if let Some(o) = audit(e).and_then(|a| a.object_ref.as_ref()) {
            maybe(out, o.namespace.as_ref())
        }
    ),
    field!(
        "object_ref.name",
        "name of the object",
        |e, out| if let Some(o) = audit(e).and_then(|a| a.object_ref.as_ref()) {
            maybe(out, o.name.as_ref())
        }
    ),
    field!(
        "object_ref.api_group",
        "API group of the object",
        |e, out| if let Some(o) = audit(e).and_then(|a| a.object_ref.as_ref()) {
            maybe(out, o.api_group.as_ref())
        }
    ),
    field!(
        "workload.kind",
        "kind of the workload in the request: Pod, Deployment, DaemonSet...",
        |e, out| if let Some(w) = audit(e).and_then(|a| a.workload.as_ref()) {
            text(out, &w.kind)
        }
    ),
    field!(
        "workload.name",
        "name of the workload in the request",
        |e, out| if let Some(w) = audit(e).and_then(|a| a.workload.as_ref()) {
            maybe(out, w.name.as_ref())
        }
    ),
    field!(
        "workload.namespace",
        "namespace of the workload in the request",
        |e, out| if let Some(w) = audit(e).and_then(|a| a.workload.as_ref()) {
            maybe(out, w.namespace.as_ref())
        }
    ),
    field!(
        "workload.service_account",
        "service account the workload runs as",
        |e, out| if let Some(w) = audit(e).and_then(|a| a.workload.as_ref()) {
            maybe(out, w.service_account.as_ref())
        }
    ),
    field!(
        "workload.host_network",
        "the pod shares its node's network namespace",
        |e, out| if let Some(w) = audit(e).and_then(|a| a.workload.as_ref()) {
            flag(out, w.host_network)
        }
    ),
    field!(
        "workload.host_pid",
        "the pod shares its node's process namespace",
        |e, out| if let Some(w) = audit(e).and_then(|a| a.workload.as_ref()) {
            flag(out, w.host_pid)
        }
    ),
    field!(
        "workload.host_ipc",
        "the pod shares its node's IPC namespace",
        |e, out| if let Some(w) = audit(e).and_then(|a| a.workload.as_ref()) {
            flag(out, w.host_ipc)
        }
    ),
    field!(
        "workload.containers.name",
        "container names",
        |e, out| if let Some(w) = audit(e).and_then(|a| a.workload.as_ref()) {
            for c in &w.containers {
                text(out, &c.name)
            }
        }
    ),
    field!(
        "workload.containers.image",
        "container images",
        |e, out| if let Some(w) = audit(e).and_then(|a| a.workload.as_ref()) {
            for c in &w.containers {
                text(out, &c.image)
            }
        }
    ),
    field!(
        "workload.containers.privileged",
        "a container is privileged",
        |e, out| if let Some(w) = audit(e).and_then(|a| a.workload.as_ref()) {
            for c in &w.containers {
                flag(out, c.privileged)
            }
        }
    ),
    field!(
        "workload.containers.capabilities_added",
        "Linux capabilities added to containers",
        |e, out| if let Some(w) = audit(e).and_then(|a| a.workload.as_ref()) {
            for c in &w.containers {
                all(out, &c.capabilities_added)
            }
        }
    ),
    field!(
        "workload.containers.command",
        "container commands and arguments, each word a value",
        |e, out| if let Some(w) = audit(e).and_then(|a| a.workload.as_ref()) {
            for c in &w.containers {
                all(out, &c.command)
            }
        }
    ),
    field!(
        "workload.volumes.host_path",
        "hostPath volumes",
        |e, out| if let Some(w) = audit(e).and_then(|a| a.workload.as_ref()) {
            for v in &w.volumes {
                maybe(out, v.host_path.as_ref())
            }
        }
    ),
    field!(
        "role_binding.kind",
        "RoleBinding or ClusterRoleBinding",
        |e, out| if let Some(b) = audit(e).and_then(|a| a.role_binding.as_ref()) {
            text(out, &b.kind)
        }
    ),
    field!(
        "role_binding.role_ref_kind",
        "Role or ClusterRole the binding grants",
        |e, out| if let Some(b) = audit(e).and_then(|a| a.role_binding.as_ref()) {
            text(out, &b.role_ref_kind)
        }
    ),
    field!(
        "role_binding.role_ref_name",
        "name of the role the binding grants",
        |e, out| if let Some(b) = audit(e).and_then(|a| a.role_binding.as_ref()) {
            text(out, &b.role_ref_name)
        }
    ),
    field!(
        "role_binding.subjects.kind",
        "subject kinds: User, Group, ServiceAccount",
        |e, out| if let Some(b) = audit(e).and_then(|a| a.role_binding.as_ref()) {
            for s in &b.subjects {
                text(out, &s.kind)
            }
        }
    ),
    field!(
        "role_binding.subjects.name",
        "subject names",
        |e, out| if let Some(b) = audit(e).and_then(|a| a.role_binding.as_ref()) {
            for s in &b.subjects {
                text(out, &s.name)
            }
        }
    ),
    field!(
        "role.kind",
        "Role or ClusterRole",
        |e, out| if let Some(r) = audit(e).and_then(|a| a.role.as_ref()) {
            text(out, &r.kind)
        }
    ),
    field!(
        "role.rules.verbs",
        "verbs a role grants",
        |e, out| if let Some(r) = audit(e).and_then(|a| a.role.as_ref()) {
            for rule in &r.rules {
                all(out, &rule.verbs)
            }
        }
    ),
    field!(
        "role.rules.resources",
        "resources a role grants",
        |e, out| if let Some(r) = audit(e).and_then(|a| a.role.as_ref()) {
            for rule in &r.rules {
                all(out, &rule.resources)
            }
        }
    ),
    field!(
        "role.rules.api_groups",
        "API groups a role grants",
        |e, out| if let Some(r) = audit(e).and_then(|a| a.role.as_ref()) {
            for rule in &r.rules {
                all(out, &rule.api_groups)
            }
        }
    ),
    field!(
        "service.type",
        "Service type: ClusterIP, NodePort, LoadBalancer, ExternalName",
        |e, out| if let Some(s) = audit(e).and_then(|a| a.service.as_ref()) {
            text(out, &s.service_type)
        }
    ),
    field!("service.name", "Service name", |e, out| if let Some(s) =
        audit(e).and_then(|a| a.service.as_ref())
    {
        maybe(out, s.name.as_ref())
    }),
    field!(
        "ingress.hosts",
        "hosts an Ingress serves (* for a rule without a host)",
        |e, out| if let Some(i) = audit(e).and_then(|a| a.ingress.as_ref()) {
            all(out, &i.hosts)
        }
    ),
    field!(
        "ingress.tls",
        "the Ingress has a tls section",
        |e, out| if let Some(i) = audit(e).and_then(|a| a.ingress.as_ref()) {
            flag(out, i.tls)
        }
    ),
    field!("ingress.name", "Ingress name", |e, out| if let Some(i) =
        audit(e).and_then(|a| a.ingress.as_ref())
    {
        maybe(out, i.name.as_ref())
    }),
    field!(
        "exec_command",
        "the command of an exec (pods/exec), one value per word",
        |e, out| if let Some(a) = audit(e) {
            all(out, &a.exec_command)
        }
    ),
    field!(
        "cloud_provider",
        "the cloud whose log carried the event: aws, azure, gcp",
        |e, out| if let Some(a) = audit(e) {
            maybe(out, a.cloud_provider.as_ref())
        }
    ),
    field!(
        "config_map_credential_keys",
        "ConfigMap data keys whose contents look like credentials",
        |e, out| if let Some(a) = audit(e) {
            all(out, &a.config_map_credential_keys)
        }
    ),
    field!("cluster.name", "the cluster's name", |e, out| text(
        out,
        &e.cluster.name
    )),
    field!(
        "cluster.account_id",
        "the cluster's AWS account",
        |e, out| maybe(out, e.cluster.account_id.as_ref())
    ),
    field!(
        "source_ip.ip",
        "the caller's address",
        |e, out| if let Some(ip) = &e.source_ip {
            text(out, &ip.ip)
        }
    ),
    field!(
        "source_ip.scope",
        "loopback, private (in-cluster, VPC) or public",
        |e, out| if let Some(ip) = &e.source_ip {
            text(out, &ip.scope)
        }
    ),
    field!(
        "source_ip.network",
        "where the caller's address is: in-cluster or vpc (private), a cloud provider's published ranges (aws, gcp, azure) or the cluster's own public addresses (cluster)",
        |e, out| if let Some(network) = e.source_ip.as_ref().and_then(|ip| ip.network.as_ref()) {
            text(out, network)
        }
    ),
    field!(
        "source_ip.tor_exit",
        "the caller's address is a Tor exit node",
        |e, out| if let Some(ip) = &e.source_ip {
            flag(out, ip.tor_exit)
        }
    ),
    field!(
        "source_ip.trusted",
        "the caller's address is on a trusted list",
        |e, out| if let Some(ip) = &e.source_ip {
            flag(out, ip.trusted)
        }
    ),
    field!(
        "source_ip.threat_lists",
        "threat lists the caller's address is on",
        |e, out| if let Some(ip) = &e.source_ip {
            for m in &ip.threat_matches {
                text(out, &m.list_name)
            }
        }
    ),
    field!(
        "target.workload_name",
        "top-level workload of the pod a request targets (exec, attach...)",
        |e, out| if let Some(t) = &e.target {
            maybe(out, t.workload_name.as_ref())
        }
    ),
    field!(
        "target.images",
        "images of the pod a request targets",
        |e, out| if let Some(t) = &e.target {
            all(out, &t.images)
        }
    ),
    field!(
        "object",
        "derived: namespace/name of the object acted on",
        |e, out| if let Some(a) = audit(e) {
            out(FieldValue::Str(Cow::Owned(object_name(a))))
        }
    ),
    field!(
        "audit_id_reused",
        "its auditID came before with another request (a client-set Audit-ID reused)",
        |e, out| if let Some(a) = audit(e) {
            flag(out, a.audit_id_reused)
        }
    ),
    field!(
        "succeeded",
        "derived: the API server carried the request out (2xx or 101)",
        |e, out| if let Some(a) = audit(e) {
            flag(out, succeeded(a))
        }
    ),
    field!(
        "write",
        "derived: the verb is create, update or patch",
        |e, out| if let Some(a) = audit(e) {
            flag(out, is_write(a))
        }
    ),
    field!(
        "anonymous",
        "derived: the caller is system:anonymous or unauthenticated",
        |e, out| if let Some(a) = audit(e) {
            flag(out, is_anonymous(a))
        }
    ),
    field!(
        "system_principal",
        "derived: the caller is the control plane or EKS (system:*, eks:*, controllers)",
        |e, out| if let Some(a) = audit(e) {
            flag(out, is_system_principal(a))
        }
    ),
    field!(
        "threat_purpose",
        "derived: CredentialAccess, Discovery, DefenseEvasion, Persistence or Impact",
        |e, out| if let Some(a) = audit(e) {
            text(out, ThreatPurpose::of(a).name())
        }
    ),
    // ---- runtime events ----
    field!(
        "runtime.kind",
        "runtime: process_exec, file_write, network_connect, dns_query, module_load, mount, ptrace... (`RUNTIME_KINDS`)",
        |e, out| if let Some(r) = runtime(e) {
            text(out, &r.kind)
        }
    ),
    field!(
        "runtime.sensor",
        "runtime: tetragon, falco or native",
        |e, out| if let Some(r) = runtime(e) {
            text(out, &r.sensor)
        }
    ),
    field!(
        "runtime.resource",
        "runtime, derived: `namespace/workload` the process ran in (from the pod's name), else `node NAME`",
        |e, out| if runtime(e).is_some() {
            out(FieldValue::Str(Cow::Owned(runtime_resource(e))))
        }
    ),
    field!(
        "in_container",
        "runtime, derived: the process ran in a container (not on the node itself)",
        |e, out| if let Some(r) = runtime(e) {
            flag(out, r.container_id.is_some())
        }
    ),
    field!(
        "process.binary",
        "runtime: the executable's path",
        |e, out| if let Some(r) = runtime(e) {
            text(out, &r.process.binary)
        }
    ),
    field!(
        "process.name",
        "runtime, derived: the executable's file name",
        |e, out| if let Some(r) = runtime(e) {
            text(out, base_name(&r.process.binary))
        }
    ),
    field!(
        "process.arguments",
        "runtime: the arguments, as one string",
        |e, out| if let Some(r) = runtime(e) {
            maybe(out, r.process.arguments.as_ref())
        }
    ),
    field!(
        "process.command_line",
        "runtime, derived: the executable's name followed by the arguments",
        |e, out| if let Some(r) = runtime(e) {
            out(FieldValue::Str(Cow::Owned(command_line(&r.process))))
        }
    ),
    field!(
        "process.cwd",
        "runtime: the working directory",
        |e, out| if let Some(r) = runtime(e) {
            maybe(out, r.process.cwd.as_ref())
        }
    ),
    field!(
        "process.uid",
        "runtime: the user id",
        |e, out| if let Some(uid) = runtime(e).and_then(|r| r.process.uid) {
            out(FieldValue::Int(uid))
        }
    ),
    field!(
        "process.pid",
        "runtime: the process id",
        |e, out| if let Some(pid) = runtime(e).and_then(|r| r.process.pid) {
            out(FieldValue::Int(pid))
        }
    ),
    field!(
        "parent.binary",
        "runtime: the parent's executable path",
        |e, out| if let Some(p) = runtime(e).and_then(|r| r.parent.as_ref()) {
            text(out, &p.binary)
        }
    ),
    field!(
        "parent.name",
        "runtime, derived: the parent's executable file name",
        |e, out| if let Some(p) = runtime(e).and_then(|r| r.parent.as_ref()) {
            text(out, base_name(&p.binary))
        }
    ),
    field!(
        "parent.arguments",
        "runtime: the parent's arguments",
        |e, out| if let Some(p) = runtime(e).and_then(|r| r.parent.as_ref()) {
            maybe(out, p.arguments.as_ref())
        }
    ),
    field!(
        "lineage.names",
        "runtime: file names of every known ancestor, parent first",
        |e, out| if runtime(e).is_some() {
            for ancestor in &e.lineage {
                text(out, base_name(&ancestor.binary))
            }
        }
    ),
    field!(
        "lineage.command_lines",
        "runtime: command lines of every known ancestor, parent first",
        |e, out| if runtime(e).is_some() {
            for ancestor in &e.lineage {
                out(FieldValue::Str(Cow::Owned(command_line(ancestor))))
            }
        }
    ),
    field!(
        "binary_written_in_container",
        "runtime, derived: the executed or loaded file was written in its container after it started",
        |e, out| if runtime(e).is_some() {
            flag(out, e.binary_written_in_container)
        }
    ),
    field!(
        "container.image",
        "runtime: the container's image",
        |e, out| if let Some(r) = runtime(e) {
            maybe(out, r.image.as_ref())
        }
    ),
    field!(
        "container.name",
        "runtime: the container's name",
        |e, out| if let Some(r) = runtime(e) {
            maybe(out, r.container_name.as_ref())
        }
    ),
    field!(
        "container.id",
        "runtime: the container's id, without its runtime prefix",
        |e, out| if let Some(r) = runtime(e) {
            maybe(out, r.container_id.as_ref())
        }
    ),
    field!(
        "pod.name",
        "runtime: the pod the process ran in",
        |e, out| if let Some(r) = runtime(e) {
            maybe(out, r.pod_name.as_ref())
        }
    ),
    field!(
        "pod.namespace",
        "runtime: the pod's namespace",
        |e, out| if let Some(r) = runtime(e) {
            maybe(out, r.pod_namespace.as_ref())
        }
    ),
    field!(
        "node.name",
        "runtime: the node",
        |e, out| if let Some(r) = runtime(e) {
            maybe(out, r.node_name.as_ref())
        }
    ),
    field!(
        "capabilities",
        "runtime: the process's effective capabilities (CAP_SYS_ADMIN...)",
        |e, out| if let Some(r) = runtime(e) {
            all(out, &r.capabilities)
        }
    ),
    field!(
        "host_namespaces",
        "runtime: namespaces the process shares with the host (mnt, pid, net...), when the sensor says",
        |e, out| if let Some(r) = runtime(e) {
            all(out, &r.host_namespaces)
        }
    ),
    field!(
        "file.path",
        "runtime: the file opened, read, written, renamed, unlinked or loaded",
        |e, out| if let Some(r) = runtime(e) {
            maybe(out, r.file_path.as_ref())
        }
    ),
    field!(
        "file.new_path",
        "runtime: the new name of a renamed or linked file",
        |e, out| if let Some(r) = runtime(e) {
            maybe(out, r.file_new_path.as_ref())
        }
    ),
    field!(
        "network.protocol",
        "runtime: tcp, udp...",
        |e, out| if let Some(n) = runtime(e).and_then(|r| r.network.as_ref()) {
            text(out, &n.protocol)
        }
    ),
    field!(
        "network.destination_ip",
        "runtime: the remote address of a connection",
        |e, out| if let Some(n) = runtime(e).and_then(|r| r.network.as_ref()) {
            maybe(out, n.destination_ip.as_ref())
        }
    ),
    field!(
        "network.destination_port",
        "runtime: the remote port of a connection",
        |e, out| if let Some(port) = runtime(e)
            .and_then(|r| r.network.as_ref())
            .and_then(|n| n.destination_port)
        {
            out(FieldValue::Int(i64::from(port)))
        }
    ),
    field!(
        "network.destination_scope",
        "runtime, derived: loopback, private (in-cluster, VPC) or public",
        |e, out| if let Some(ip) = e.destination_ip.as_ref().filter(|_| runtime(e).is_some()) {
            text(out, &ip.scope)
        }
    ),
    field!(
        "dns.query",
        "runtime: the name a DNS query asked for",
        |e, out| if let Some(r) = runtime(e) {
            maybe(out, r.dns_query.as_ref())
        }
    ),
    field!(
        "dns.answers",
        "runtime: addresses the DNS answer held",
        |e, out| if let Some(r) = runtime(e) {
            all(out, &r.dns_answers)
        }
    ),
    field!(
        "module.name",
        "runtime: the kernel module loaded",
        |e, out| if let Some(r) = runtime(e) {
            maybe(out, r.module_name.as_ref())
        }
    ),
    field!(
        "mount.source",
        "runtime: what was mounted",
        |e, out| if let Some(r) = runtime(e) {
            maybe(out, r.mount_source.as_ref())
        }
    ),
    field!(
        "mount.target",
        "runtime: where it was mounted",
        |e, out| if let Some(r) = runtime(e) {
            maybe(out, r.mount_target.as_ref())
        }
    ),
    field!(
        "mount.fs_type",
        "runtime: the mounted file system's type",
        |e, out| if let Some(r) = runtime(e) {
            maybe(out, r.mount_fs_type.as_ref())
        }
    ),
    field!(
        "target_pid",
        "runtime: the process acted on by ptrace or a memory write",
        |e, out| if let Some(pid) = runtime(e).and_then(|r| r.target_pid) {
            out(FieldValue::Int(pid))
        }
    ),
    field!(
        "ptrace.request",
        "runtime: PTRACE_POKETEXT, PTRACE_ATTACH, PTRACE_TRACEME...",
        |e, out| if let Some(r) = runtime(e) {
            maybe(out, r.ptrace_request.as_ref())
        }
    ),
    field!(
        "new_uid",
        "runtime: the uid a privilege change moved to",
        |e, out| if let Some(uid) = runtime(e).and_then(|r| r.new_uid) {
            out(FieldValue::Int(uid))
        }
    ),
    field!(
        "sensor.rule",
        "runtime: the sensor's rule or hook (Falco rule, Tetragon kprobe function)",
        |e, out| if let Some(r) = runtime(e) {
            maybe(out, r.sensor_rule.as_ref())
        }
    ),
    field!(
        "sensor.priority",
        "runtime: the sensor's priority (Falco)",
        |e, out| if let Some(r) = runtime(e) {
            maybe(out, r.sensor_priority.as_ref())
        }
    ),
];

pub(super) fn runtime(event: &EnrichedEvent) -> Option<&RuntimeEvent> {
    event.runtime.as_ref()
}

/// A field by its name or by another spelling of it ([`FIELD_ALIASES`]).
pub(super) fn field_named(name: &str) -> Option<&'static FieldDef> {
    let name = FIELD_ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, field)| field);
    FIELDS.iter().find(|field| field.name == name)
}

/// Other spellings of fields, as rules ported from elsewhere write them: the Kubernetes audit
/// event's own JSON names (Sigma's Kubernetes rules use them), Sigma's process, file, DNS and
/// network fields, and Falco's `ka.*` and `proc.*` fields. A test holds every target to a field.
pub const FIELD_ALIASES: &[(&str, &str)] = &[
    // Kubernetes audit JSON (and Sigma's `kubernetes`/`audit` log source).
    ("requestURI", "request_uri"),
    ("sourceIPs", "source_ips"),
    ("userAgent", "user_agent"),
    ("responseStatus.code", "status_code"),
    ("impersonatedUser.username", "impersonated_user.username"),
    ("impersonatedUser.groups", "impersonated_user.groups"),
    ("objectRef.resource", "object_ref.resource"),
    ("objectRef.subresource", "object_ref.subresource"),
    ("objectRef.namespace", "object_ref.namespace"),
    ("objectRef.name", "object_ref.name"),
    ("objectRef.apiGroup", "object_ref.api_group"),
    (
        "annotations.authorization.k8s.io/decision",
        "authz_decision",
    ),
    // Sigma: process_creation, file_event, dns_query, network_connection.
    ("Image", "process.binary"),
    ("CommandLine", "process.command_line"),
    ("CurrentDirectory", "process.cwd"),
    ("ProcessId", "process.pid"),
    ("ParentImage", "parent.binary"),
    ("TargetFilename", "file.path"),
    ("QueryName", "dns.query"),
    ("DestinationIp", "network.destination_ip"),
    ("DestinationPort", "network.destination_port"),
    // Falco: k8s_audit fields.
    ("ka.verb", "verb"),
    ("ka.uri", "request_uri"),
    ("ka.user.name", "user.username"),
    ("ka.user.groups", "user.groups"),
    ("ka.impuser.name", "impersonated_user.username"),
    ("ka.sourceips", "source_ips"),
    ("ka.useragent", "user_agent"),
    ("ka.response.code", "status_code"),
    ("ka.target.resource", "object_ref.resource"),
    ("ka.target.subresource", "object_ref.subresource"),
    ("ka.target.namespace", "object_ref.namespace"),
    ("ka.target.name", "object_ref.name"),
    // Falco: syscall fields.
    ("proc.exepath", "process.binary"),
    ("proc.name", "process.name"),
    ("proc.cmdline", "process.command_line"),
    ("proc.args", "process.arguments"),
    ("proc.cwd", "process.cwd"),
    ("proc.pid", "process.pid"),
    ("proc.pname", "parent.name"),
    ("fd.name", "file.path"),
    ("k8s.ns.name", "pod.namespace"),
    ("k8s.pod.name", "pod.name"),
];
