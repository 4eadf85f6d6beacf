//! Falco's JSON output (`json_output: true`, as falcosidekick and Falco's own HTTP and file outputs
//! write it): one alert per object. An alert is already a verdict, so it becomes a `sensor_alert`
//! carrying Falco's rule, priority, tags and fields; the process, container and pod are read from the
//! well-known output fields so that findings show them like any other runtime finding.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use vigil_schemas::time::parse_rfc3339_micros;
use vigil_schemas::{NetworkInfo, ProcessInfo, RuntimeEvent, RuntimeKind};

use super::{MAX_LIST, bounded, bounded_opt, container_id, digest_id, key_value, protocol_name};
use crate::{RejectReason, Rejection};

#[derive(Debug, Deserialize)]
struct Alert {
    rule: String,
    priority: Option<String>,
    time: Option<String>,
    output: Option<String>,
    hostname: Option<String>,
    source: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    output_fields: BTreeMap<String, Value>,
}

use crate::json::{int, text};

/// Parses one Falco alert. `text` is the object as read, for the deterministic id.
pub(crate) fn parse(text_in: &str) -> Result<RuntimeEvent, Rejection> {
    let alert: Alert = serde_json::from_str(text_in).map_err(|error| {
        Rejection::new(
            RejectReason::InvalidEvent,
            format!("not a valid Falco alert: {error}"),
        )
    })?;
    let fields = &alert.output_fields;
    let field = |name: &str| {
        fields
            .get(name)
            .and_then(text)
            .filter(|value| value != "<NA>")
    };
    let number = |name: &str| fields.get(name).and_then(int);
    // Falco writes `time` as RFC 3339 with nanoseconds; `evt.time` (nanoseconds) is the fallback.
    let event_time_micros = alert
        .time
        .as_deref()
        .and_then(parse_rfc3339_micros)
        .or_else(|| number("evt.time").map(|nanos| nanos / 1000))
        .ok_or_else(|| {
            Rejection::new(
                RejectReason::InvalidEvent,
                format!("Falco alert {:?} without a valid time", alert.rule),
            )
        })?;
    let image = match (
        field("container.image.repository"),
        field("container.image.tag"),
    ) {
        (Some(repository), Some(tag)) => Some(format!("{repository}:{tag}")),
        (Some(repository), None) => Some(repository),
        _ => field("container.image"),
    };
    let binary = field("proc.exepath")
        .or_else(|| field("proc.exe"))
        .or_else(|| field("proc.name"))
        .unwrap_or_default();
    let arguments = field("proc.cmdline").map(|cmdline| {
        // `proc.cmdline` is `name arg1 arg2`; the arguments are what follows the name.
        cmdline
            .split_once(' ')
            .map_or(String::new(), |(_, rest)| rest.to_owned())
    });
    let parent_binary = field("proc.pexepath").or_else(|| field("proc.pname"));
    let network = field("fd.rip")
        .or_else(|| field("fd.sip"))
        .map(|remote| NetworkInfo {
            protocol: field("fd.l4proto")
                .map(|protocol| protocol_name(&protocol))
                .unwrap_or_else(|| "tcp".into()),
            source_ip: field("fd.lip").or_else(|| field("fd.cip")),
            source_port: number("fd.lport")
                .or_else(|| number("fd.cport"))
                .and_then(|port| i32::try_from(port).ok()),
            destination_ip: Some(remote),
            destination_port: number("fd.rport")
                .or_else(|| number("fd.sport"))
                .and_then(|port| i32::try_from(port).ok()),
            destination_domain: None,
        });
    // The k8saudit plugins' alerts are about an API call: the hostname is Falco's own pod, not a
    // node where something ran.
    let audit_source = alert
        .source
        .as_deref()
        .is_some_and(vigil_schemas::is_kubernetes_audit_source);
    let mut sensor_fields: Vec<_> = fields
        .iter()
        .filter_map(|(key, value)| text(value).map(|value| key_value(key, value)))
        .take(MAX_LIST)
        .collect();
    if !alert.tags.is_empty() {
        sensor_fields.push(key_value("tags", alert.tags.join(",")));
    }
    if let Some(source) = alert.source {
        sensor_fields.push(key_value("source", source));
    }
    if let Some(output) = alert.output {
        sensor_fields.push(key_value("output", output));
    }
    Ok(RuntimeEvent {
        event_id: digest_id("falco", text_in),
        event_time_micros,
        kind: RuntimeKind::SensorAlert.label().into(),
        sensor: "falco".into(),
        cluster_hint: field("k8s.cluster.name"),
        node_name: alert.hostname.filter(|_| !audit_source),
        container_id: field("container.id")
            .filter(|id| id != "host")
            .map(|id| container_id(&id)),
        container_name: field("container.name").filter(|name| name != "host"),
        image,
        container_started_micros: None,
        pod_name: field("k8s.pod.name"),
        pod_namespace: field("k8s.ns.name"),
        process: ProcessInfo {
            pid: number("proc.pid"),
            binary: bounded(binary),
            arguments: bounded_opt(arguments),
            cwd: bounded_opt(field("proc.cwd")),
            uid: number("user.uid"),
            ..ProcessInfo::default()
        },
        parent: parent_binary.map(|binary| ProcessInfo {
            pid: number("proc.ppid"),
            binary: bounded(binary),
            arguments: bounded_opt(field("proc.pcmdline").map(|cmdline| {
                cmdline
                    .split_once(' ')
                    .map_or(String::new(), |(_, rest)| rest.to_owned())
            })),
            ..ProcessInfo::default()
        }),
        file_path: bounded_opt(field("fd.name").filter(|name| name.starts_with('/'))),
        network,
        sensor_rule: Some(bounded(alert.rule)),
        sensor_priority: alert.priority,
        sensor_fields,
        ..RuntimeEvent::default()
    })
}
