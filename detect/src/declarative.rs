//! Declarative rules: detections written as data (TOML) instead of code. The simple built-in rules
//! ship in this form (`rules/builtin.toml`), and users add their own files the same way.
//!
//! ```toml
//! [[rule]]
//! id = "exec_in_pod"                        # snake_case, unique across all rule files
//! type = "Execution:Kubernetes/ExecInPod"   # ThreatPurpose:Resource/Name, as GuardDuty names types
//! severity = "Low"                          # Low, Medium, High, Critical, or a number 1.0-10.0
//! title = "Command executed in pod {object}."
//! description = "{user.username} ran a command in pod {object} of cluster {cluster.name}."
//! key = ["user.username", "object"]         # aggregation key (this is the default)
//! enabled = true                            # false: shipped off, switched on in the config file
//! when = [                                  # every condition must hold
//!   { field = "object_ref.subresource", eq = "exec" },
//!   { field = "succeeded", eq = true },
//! ]
//! any = [ ... ]                             # optional: at least one must hold
//! unless = [                                # no condition may hold
//!   { field = "object_ref.namespace", eq = "kube-system" },
//! ]
//! ```
//!
//! A condition names one field ([`FIELDS`]) and one operator: `eq`, `neq`, `in`, `not_in`, `prefix`,
//! `suffix`, `contains` (each takes one string or a list, any may match), `matches` (a regular
//! expression), `exists` (true or false), `gt`, `lt` (numbers). Fields can hold several values (a
//! user's groups, a pod's images): a positive operator holds when any value satisfies it, `neq` and
//! `not_in` when no value equals. A missing field satisfies only `neq`, `not_in` and `exists = false`.
//! Titles and descriptions take `{field}` placeholders. Every mistake is reported at load time with
//! the file and line.

use std::borrow::Cow;
use std::fmt;

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;
use vigil_schemas::{AuditEvent, Detection, EnrichedEvent, KeyValue, RuntimeEvent, UserInfo};

use crate::Detector;
use crate::detection::{ThreatPurpose, Verdict, detection, runtime_detection};
use crate::facts::{base_name, command_line, is_system_principal, runtime_resource};
use crate::facts::{is_anonymous, is_write, object_name, succeeded};

/// The built-in declarative rules, compiled into every binary.
pub const BUILTIN_RULES: &str = include_str!("../rules/builtin.toml");
pub const BUILTIN_RULES_NAME: &str = "builtin.toml";
/// The built-in runtime rules, compiled into every binary.
pub const RUNTIME_RULES: &str = include_str!("../rules/runtime.toml");
pub const RUNTIME_RULES_NAME: &str = "runtime.toml";

/// A rule file that does not load: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct RuleError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// One value of a field of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    Int(i64),
}

impl FieldValue<'_> {
    fn text(&self) -> Cow<'_, str> {
        match self {
            Self::Str(text) => Cow::Borrowed(text.as_ref()),
            Self::Bool(value) => Cow::Owned(value.to_string()),
            Self::Int(value) => Cow::Owned(value.to_string()),
        }
    }
}

/// Hands each value of a field to the visitor: no allocation on the hot path.
type Extract = for<'a> fn(&'a EnrichedEvent, &mut dyn FnMut(FieldValue<'a>));

/// A field rules can test, with what it holds.
#[derive(Clone, Copy)]
pub struct FieldDef {
    pub name: &'static str,
    pub doc: &'static str,
    extract: Extract,
}

impl fmt::Debug for FieldDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

fn audit(event: &EnrichedEvent) -> Option<&AuditEvent> {
    event.audit.as_ref()
}

fn text<'a>(out: &mut dyn FnMut(FieldValue<'a>), value: &'a str) {
    out(FieldValue::Str(Cow::Borrowed(value)));
}

fn maybe<'a>(out: &mut dyn FnMut(FieldValue<'a>), value: Option<&'a String>) {
    if let Some(value) = value {
        text(out, value);
    }
}

fn all<'a>(out: &mut dyn FnMut(FieldValue<'a>), values: &'a [String]) {
    for value in values {
        text(out, value);
    }
}

fn flag<'a>(out: &mut dyn FnMut(FieldValue<'a>), value: bool) {
    out(FieldValue::Bool(value));
}

fn user_fields<'a>(out: &mut dyn FnMut(FieldValue<'a>), user: Option<&'a UserInfo>, pick: u8) {
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

fn runtime(event: &EnrichedEvent) -> Option<&RuntimeEvent> {
    event.runtime.as_ref()
}

fn field_named(name: &str) -> Option<&'static FieldDef> {
    FIELDS.iter().find(|field| field.name == name)
}

/// A literal a condition compares with.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Bool(bool),
    Int(i64),
}

impl Literal {
    fn equals(&self, value: &FieldValue<'_>) -> bool {
        match (self, value) {
            (Self::Str(expected), FieldValue::Str(actual)) => expected == actual,
            (Self::Bool(expected), FieldValue::Bool(actual)) => expected == actual,
            (Self::Int(expected), FieldValue::Int(actual)) => expected == actual,
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
enum Operator {
    Eq(Literal),
    Neq(Literal),
    In(Vec<Literal>),
    NotIn(Vec<Literal>),
    Prefix(Vec<String>),
    Suffix(Vec<String>),
    Contains(Vec<String>),
    Matches(Regex),
    Exists(bool),
    Gt(f64),
    Lt(f64),
}

#[derive(Debug, Clone)]
struct Condition {
    field: &'static FieldDef,
    operator: Operator,
}

fn number(value: &FieldValue<'_>) -> Option<f64> {
    match value {
        #[allow(clippy::cast_precision_loss)]
        FieldValue::Int(number) => Some(*number as f64),
        FieldValue::Str(text) => text.parse().ok(),
        FieldValue::Bool(_) => None,
    }
}

impl Condition {
    fn holds(&self, event: &EnrichedEvent) -> bool {
        match &self.operator {
            Operator::Eq(expected) => self.any(event, |value| expected.equals(value)),
            Operator::Neq(expected) => !self.any(event, |value| expected.equals(value)),
            Operator::In(options) => self.any(event, |value| {
                options.iter().any(|option| option.equals(value))
            }),
            Operator::NotIn(options) => !self.any(event, |value| {
                options.iter().any(|option| option.equals(value))
            }),
            Operator::Prefix(options) => {
                self.any_text(event, options, |text, option| text.starts_with(option))
            }
            Operator::Suffix(options) => {
                self.any_text(event, options, |text, option| text.ends_with(option))
            }
            Operator::Contains(options) => {
                self.any_text(event, options, |text, option| text.contains(option))
            }
            Operator::Matches(pattern) => self.any(event, |value| match value {
                FieldValue::Str(text) => pattern.is_match(text),
                _ => false,
            }),
            Operator::Exists(expected) => self.any(event, |_| true) == *expected,
            Operator::Gt(limit) => {
                self.any(event, |value| number(value).is_some_and(|n| n > *limit))
            }
            Operator::Lt(limit) => {
                self.any(event, |value| number(value).is_some_and(|n| n < *limit))
            }
        }
    }

    /// Some text value of the field passes `test` with some option.
    fn any_text(
        &self,
        event: &EnrichedEvent,
        options: &[String],
        test: fn(&str, &str) -> bool,
    ) -> bool {
        self.any(event, |value| match value {
            FieldValue::Str(text) => options.iter().any(|option| test(text, option)),
            _ => false,
        })
    }

    /// Some value of the field passes `test`.
    fn any(&self, event: &EnrichedEvent, test: impl Fn(&FieldValue<'_>) -> bool) -> bool {
        let mut found = false;
        (self.field.extract)(event, &mut |value| {
            if !found && test(&value) {
                found = true;
            }
        });
        found
    }
}

/// One part of a title or description template.
#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Field(&'static FieldDef),
}

#[derive(Debug, Clone)]
struct Template(Vec<Part>);

fn render_field(field: &FieldDef, event: &EnrichedEvent) -> String {
    let mut values = Vec::new();
    (field.extract)(event, &mut |value| values.push(value));
    if values.is_empty() {
        return "-".to_owned();
    }
    values
        .iter()
        .map(FieldValue::text)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Template {
    fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(index) = rest.find(['{', '}']) {
            let (before, after) = rest.split_at(index);
            literal.push_str(before);
            if let Some(after) = after.strip_prefix("{{") {
                literal.push('{');
                rest = after;
            } else if let Some(after) = after.strip_prefix("}}") {
                literal.push('}');
                rest = after;
            } else if let Some(after) = after.strip_prefix('{') {
                let Some((name, after)) = after.split_once('}') else {
                    return Err(format!("unclosed placeholder in {text:?}"));
                };
                let field = field_named(name.trim())
                    .ok_or_else(|| format!("unknown field {{{name}}} in {text:?}"))?;
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(Part::Field(field));
                rest = after;
            } else {
                return Err(format!("a lone '}}' in {text:?} (write '}}}}')"));
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self(parts))
    }

    /// The rendering, unless every field in it is missing (a context entry is then left out).
    fn render_present(&self, event: &EnrichedEvent) -> Option<String> {
        let mut fields = 0;
        let mut present = 0;
        for part in &self.0 {
            if let Part::Field(field) = part {
                fields += 1;
                let mut found = false;
                (field.extract)(event, &mut |_| found = true);
                if found {
                    present += 1;
                }
            }
        }
        (fields == 0 || present > 0).then(|| self.render(event))
    }

    fn render(&self, event: &EnrichedEvent) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field(field) => out.push_str(&render_field(field, event)),
            }
        }
        out
    }
}

/// A loaded declarative rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Leaked once at load: rule names live as long as the process, like the built-in detectors'.
    pub id: &'static str,
    pub finding_type: String,
    pub severity: f64,
    pub enabled: bool,
    /// Where it was written: `file:line`.
    pub origin: String,
    pub doc: Option<String>,
    /// Which events the rule looks at.
    pub source: Source,
    title: Template,
    description: Template,
    key: Vec<&'static FieldDef>,
    /// Runtime rules: `service.runtimeDetails.context` entries, GuardDuty's names to templates.
    context: Vec<(String, Template)>,
    when: Vec<Condition>,
    any: Vec<Condition>,
    unless: Vec<Condition>,
}

/// The events a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Audit,
    Runtime,
}

impl Rule {
    /// The conditions hold for this event.
    pub fn matches(&self, event: &EnrichedEvent) -> bool {
        let applies = match self.source {
            Source::Audit => event.audit.is_some(),
            Source::Runtime => event.runtime.is_some(),
        };
        if !applies {
            return false;
        }
        self.when.iter().all(|condition| condition.holds(event))
            && (self.any.is_empty() || self.any.iter().any(|condition| condition.holds(event)))
            && !self.unless.iter().any(|condition| condition.holds(event))
    }
}

impl Detector for Rule {
    fn name(&self) -> &'static str {
        self.id
    }
    fn inspect(&mut self, enriched: &EnrichedEvent, out: &mut Vec<Detection>) {
        if !self.matches(enriched) {
            return;
        }
        let verdict = Verdict {
            finding_type: self.finding_type.clone(),
            severity: self.severity,
            title: self.title.render(enriched),
            description: self.description.render(enriched),
            aggregation_key: self
                .key
                .iter()
                .map(|field| render_field(field, enriched))
                .collect(),
        };
        if let Some(event) = enriched.audit.as_ref() {
            out.push(detection(enriched, event, self.id, verdict));
        } else if let Some(event) = enriched.runtime.as_ref() {
            let context = self
                .context
                .iter()
                .filter_map(|(key, template)| {
                    template.render_present(enriched).map(|value| KeyValue {
                        key: key.clone(),
                        value,
                    })
                })
                .collect();
            out.push(runtime_detection(
                enriched, event, self.id, verdict, context,
            ));
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    #[serde(rename = "type")]
    finding_type: Spanned<String>,
    severity: Spanned<toml::Value>,
    title: Spanned<String>,
    description: Spanned<String>,
    #[serde(default)]
    doc: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    key: Option<Spanned<Vec<String>>>,
    /// `audit` (the default) or `runtime`.
    #[serde(default)]
    source: Option<Spanned<String>>,
    #[serde(default)]
    context: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    #[serde(default)]
    when: Vec<Spanned<RawCondition>>,
    #[serde(default)]
    any: Vec<Spanned<RawCondition>>,
    #[serde(default)]
    unless: Vec<Spanned<RawCondition>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    field: String,
    eq: Option<toml::Value>,
    neq: Option<toml::Value>,
    #[serde(rename = "in")]
    in_list: Option<Vec<toml::Value>>,
    not_in: Option<Vec<toml::Value>>,
    prefix: Option<OneOrMany>,
    suffix: Option<OneOrMany>,
    contains: Option<OneOrMany>,
    matches: Option<String>,
    exists: Option<bool>,
    gt: Option<f64>,
    lt: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

fn literal(value: toml::Value) -> Result<Literal, String> {
    match value {
        toml::Value::String(text) => Ok(Literal::Str(text)),
        toml::Value::Boolean(flag) => Ok(Literal::Bool(flag)),
        toml::Value::Integer(number) => Ok(Literal::Int(number)),
        other => Err(format!(
            "compare with a string, a boolean or an integer, not {}",
            other.type_str()
        )),
    }
}

fn condition(raw: RawCondition) -> Result<Condition, String> {
    let field = field_named(&raw.field).ok_or_else(|| {
        format!(
            "unknown field {:?} (`vigil rules fields` lists them)",
            raw.field
        )
    })?;
    let mut operators = Vec::new();
    if let Some(value) = raw.eq {
        operators.push(Operator::Eq(literal(value)?));
    }
    if let Some(value) = raw.neq {
        operators.push(Operator::Neq(literal(value)?));
    }
    if let Some(values) = raw.in_list {
        operators.push(Operator::In(
            values.into_iter().map(literal).collect::<Result<_, _>>()?,
        ));
    }
    if let Some(values) = raw.not_in {
        operators.push(Operator::NotIn(
            values.into_iter().map(literal).collect::<Result<_, _>>()?,
        ));
    }
    if let Some(values) = raw.prefix {
        operators.push(Operator::Prefix(values.into_vec()));
    }
    if let Some(values) = raw.suffix {
        operators.push(Operator::Suffix(values.into_vec()));
    }
    if let Some(values) = raw.contains {
        operators.push(Operator::Contains(values.into_vec()));
    }
    if let Some(pattern) = raw.matches {
        let compiled =
            Regex::new(&pattern).map_err(|error| format!("bad pattern {pattern:?}: {error}"))?;
        operators.push(Operator::Matches(compiled));
    }
    if let Some(flag) = raw.exists {
        operators.push(Operator::Exists(flag));
    }
    if let Some(limit) = raw.gt {
        operators.push(Operator::Gt(limit));
    }
    if let Some(limit) = raw.lt {
        operators.push(Operator::Lt(limit));
    }
    match operators.len() {
        1 => Ok(Condition {
            field,
            operator: operators.remove(0),
        }),
        0 => Err(format!(
            "condition on {:?} has no operator (eq, neq, in, not_in, prefix, suffix, contains, matches, exists, gt, lt)",
            raw.field
        )),
        _ => Err(format!(
            "condition on {:?} has several operators; write one condition each",
            raw.field
        )),
    }
}

/// Severity words as GuardDuty's numbers; a number is taken as written.
pub fn parse_severity(value: &toml::Value) -> Result<f64, String> {
    let number = match value {
        toml::Value::String(word) => match word.to_ascii_lowercase().as_str() {
            "low" => crate::detection::severity::LOW,
            "medium" => crate::detection::severity::MEDIUM,
            "high" => crate::detection::severity::HIGH,
            "critical" => 9.0,
            _ => {
                return Err(format!(
                    "severity {word:?}: write Low, Medium, High or Critical"
                ));
            }
        },
        toml::Value::Float(number) => *number,
        #[allow(clippy::cast_precision_loss)]
        toml::Value::Integer(number) => *number as f64,
        other => {
            return Err(format!(
                "severity is a word or a number, not {}",
                other.type_str()
            ));
        }
    };
    if (1.0..=10.0).contains(&number) {
        Ok(number)
    } else {
        Err(format!("severity {number} is outside 1.0-10.0"))
    }
}

fn valid_type(finding_type: &str) -> bool {
    let Some((purpose, rest)) = finding_type.split_once(':') else {
        return false;
    };
    let Some((resource, name)) = rest.split_once('/') else {
        return false;
    };
    let word = |text: &str| !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric());
    word(purpose)
        && word(resource)
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '!' | '_' | '&'))
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |before| before.matches('\n').count() + 1)
}

/// Loads the rules of one file. `file` names it in errors.
pub fn parse_rules(file: &str, text: &str) -> Result<Vec<Rule>, RuleError> {
    let error = |offset: usize, message: String| RuleError {
        file: file.to_owned(),
        line: line_of(text, offset),
        message,
    };
    let raw: RawFile = toml::from_str(text).map_err(|parse| {
        let offset = parse.span().map_or(0, |span| span.start);
        error(offset, parse.message().to_owned())
    })?;
    let mut rules = Vec::new();
    for spanned in raw.rule {
        let rule_start = spanned.span().start;
        let raw = spanned.into_inner();
        let id = raw.id.get_ref();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(error(
                raw.id.span().start,
                format!("rule id {id:?}: use lowercase letters, digits and '_'"),
            ));
        }
        if rules.iter().any(|rule: &Rule| rule.id == id) {
            return Err(error(
                raw.id.span().start,
                format!("rule id {id:?} is used twice"),
            ));
        }
        if !valid_type(raw.finding_type.get_ref()) {
            return Err(error(
                raw.finding_type.span().start,
                format!(
                    "finding type {:?}: write ThreatPurpose:Resource/Name, such as Execution:Kubernetes/ExecInPod",
                    raw.finding_type.get_ref()
                ),
            ));
        }
        let severity = parse_severity(raw.severity.get_ref())
            .map_err(|message| error(raw.severity.span().start, message))?;
        let title = Template::parse(raw.title.get_ref())
            .map_err(|message| error(raw.title.span().start, message))?;
        let description = Template::parse(raw.description.get_ref())
            .map_err(|message| error(raw.description.span().start, message))?;
        let source = match &raw.source {
            None => Source::Audit,
            Some(source) => match source.get_ref().as_str() {
                "audit" => Source::Audit,
                "runtime" => Source::Runtime,
                other => {
                    return Err(error(
                        source.span().start,
                        format!("source {other:?}: write \"audit\" or \"runtime\""),
                    ));
                }
            },
        };
        let context = match raw.context {
            None => Vec::new(),
            Some(context) => {
                let start = context.span().start;
                if source != Source::Runtime {
                    return Err(error(
                        start,
                        "`context` is for runtime rules (source = \"runtime\")".into(),
                    ));
                }
                context
                    .into_inner()
                    .into_iter()
                    .map(|(key, text)| {
                        Template::parse(&text)
                            .map(|template| (key, template))
                            .map_err(|message| error(start, message))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        let key = match raw.key {
            Some(key) => {
                let start = key.span().start;
                key.into_inner()
                    .iter()
                    .map(|name| {
                        field_named(name)
                            .ok_or_else(|| error(start, format!("unknown key field {name:?}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            None => match source {
                Source::Audit => ["user.username", "object"].as_slice(),
                Source::Runtime => ["runtime.resource", "process.binary"].as_slice(),
            }
            .iter()
            .filter_map(|name| field_named(name))
            .collect(),
        };
        if raw.when.is_empty() {
            return Err(error(
                rule_start,
                format!("rule {id:?} has no `when` condition: it would fire on every event"),
            ));
        }
        let compile = |conditions: Vec<Spanned<RawCondition>>| {
            conditions
                .into_iter()
                .map(|spanned| {
                    let start = spanned.span().start;
                    condition(spanned.into_inner()).map_err(|message| error(start, message))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let when = compile(raw.when)?;
        let any = compile(raw.any)?;
        let unless = compile(raw.unless)?;
        rules.push(Rule {
            id: Box::leak(raw.id.into_inner().into_boxed_str()),
            finding_type: raw.finding_type.into_inner(),
            severity,
            enabled: raw.enabled.unwrap_or(true),
            origin: format!("{file}:{}", line_of(text, rule_start)),
            doc: raw.doc,
            source,
            title,
            description,
            key,
            context,
            when,
            any,
            unless,
        });
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_load() {
        let rules = parse_rules(BUILTIN_RULES_NAME, BUILTIN_RULES).unwrap();
        assert!(rules.len() >= 10, "{}", rules.len());
    }

    #[test]
    fn errors_name_the_line() {
        let text = "[[rule]]\nid = \"x\"\ntype = \"Execution:Kubernetes/X\"\nseverity = \"Low\"\ntitle = \"t\"\ndescription = \"d\"\nwhen = [\n  { field = \"verb\", eq = \"get\" },\n  { field = \"nope\", eq = \"get\" },\n]\n";
        let error = parse_rules("mine.toml", text).unwrap_err();
        assert_eq!(error.line, 9, "{error}");
        assert!(error.message.contains("unknown field \"nope\""), "{error}");
        assert!(error.to_string().starts_with("mine.toml:9: "), "{error}");

        let bad_severity = text.replace("\"Low\"", "\"Severe\"");
        let error = parse_rules("mine.toml", &bad_severity).unwrap_err();
        assert_eq!(error.line, 4, "{error}");

        let two_operators = text.replace(
            "eq = \"get\" },\n  { field = \"nope\", eq = \"get\" }",
            "eq = \"get\", neq = \"list\" }",
        );
        let error = parse_rules("mine.toml", &two_operators).unwrap_err();
        assert!(error.message.contains("several operators"), "{error}");

        let syntax = "[[rule]]\nid = \"x\nseverity = 1\n";
        let error = parse_rules("mine.toml", syntax).unwrap_err();
        assert_eq!(error.line, 2, "{error}");

        let unknown_key = text.replace("title = \"t\"", "titel = \"t\"");
        let error = parse_rules("mine.toml", &unknown_key).unwrap_err();
        assert!(error.message.contains("titel"), "{error}");

        let bad_placeholder = text.replace("title = \"t\"", "title = \"{user.nam}\"");
        let error = parse_rules("mine.toml", &bad_placeholder).unwrap_err();
        assert_eq!(error.line, 5, "{error}");
    }

    #[test]
    fn templates_render_fields_and_escapes() {
        let template = Template::parse("{{literal}} {verb} by {user.username}").unwrap();
        let event = EnrichedEvent {
            audit: Some(AuditEvent {
                verb: "get".into(),
                user: UserInfo {
                    username: "alice".into(),
                    ..UserInfo::default()
                },
                ..AuditEvent::default()
            }),
            ..EnrichedEvent::default()
        };
        assert_eq!(template.render(&event), "{literal} get by alice");
        assert!(Template::parse("{verb").is_err());
        assert!(Template::parse("a } b").is_err());
    }
}
