//! Runtime events: Falco's HTTP output (one JSON alert per request, as `falco` with
//! `http_output` and falcosidekick's webhook post it), Tetragon's export objects and Vigil's native
//! `vigil.runtime/v1` events, one object, an array or JSON lines.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::{BadBody, Decoded, Destination, RawRecord, Rejected, json_values, short};

/// What tells the sensors apart (as ingest does), and the node each names.
#[derive(Deserialize)]
struct Shape {
    // Falco: `rule` with `output_fields` or `priority`; the node is `hostname`.
    rule: Option<IgnoredAny>,
    output_fields: Option<IgnoredAny>,
    priority: Option<IgnoredAny>,
    hostname: Option<String>,
    // Tetragon: one event-type key; the node is `node_name`.
    #[serde(
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
    tetragon_event: Option<IgnoredAny>,
    node_name: Option<String>,
    // Vigil's native form: `schema` and `node`.
    schema: Option<String>,
    node: Option<String>,
}

const NATIVE_SCHEMA: &str = "vigil.runtime/v1";

/// Splits a runtime body into one record per event, keyed by the node it names.
pub fn runtime_lines(body: &[u8]) -> Result<Decoded, BadBody> {
    let (values, rejected) = json_values(body)?;
    let mut decoded = Decoded {
        rejected,
        ..Decoded::default()
    };
    for value in values {
        if value.get().starts_with('[') {
            match serde_json::from_str::<Vec<&RawValue>>(value.get()) {
                Ok(elements) => {
                    for element in elements {
                        take_event(element, &mut decoded);
                    }
                }
                Err(error) => decoded.rejected.push(Rejected {
                    reason: "invalid_json",
                    detail: short(&error.to_string()),
                    bytes: value.get().as_bytes().to_vec(),
                }),
            }
        } else {
            take_event(value, &mut decoded);
        }
    }
    if decoded.records.is_empty()
        && let Some(first) = decoded.rejected.first()
    {
        return Err(BadBody::new(first.reason, first.detail.clone()));
    }
    Ok(decoded)
}

fn take_event(value: &RawValue, decoded: &mut Decoded) {
    let text = value.get();
    let reject = |reason: &'static str, detail: String| Rejected {
        reason,
        detail,
        bytes: text.as_bytes().to_vec(),
    };
    if !text.starts_with('{') {
        decoded.rejected.push(reject(
            "not_an_object",
            "a runtime event is a JSON object".to_owned(),
        ));
        return;
    }
    let shape: Shape = match serde_json::from_str(text) {
        Ok(shape) => shape,
        Err(error) => {
            decoded
                .rejected
                .push(reject("invalid_event", short(&error.to_string())));
            return;
        }
    };
    let node =
        if shape.rule.is_some() && (shape.output_fields.is_some() || shape.priority.is_some()) {
            shape.hostname
        } else if shape.tetragon_event.is_some() {
            shape.node_name
        } else if shape.schema.as_deref() == Some(NATIVE_SCHEMA) {
            shape.node
        } else {
            decoded.rejected.push(reject(
                "unknown_shape",
                format!(
                    "neither a Falco alert (rule with output_fields or priority), a Tetragon event \
                 (process_exec, process_kprobe, ...) nor a {NATIVE_SCHEMA} event"
                ),
            ));
            return;
        };
    let mut record = RawRecord::new(Destination::Runtime, text.as_bytes());
    record.node = node.filter(|node| !node.is_empty());
    decoded.records.push(record);
}

#[cfg(test)]
mod tests {
    use super::*;

    const FALCO: &str = r#"{"hostname":"ip-10-0-1-5","output":"12:00:00.000000000: Notice Shell spawned","priority":"Notice","rule":"Terminal shell in container","source":"syscall","tags":["container","shell"],"time":"2026-12-01T12:00:00.000000000Z","output_fields":{"container.id":"abc","proc.cmdline":"sh"}}"#;
    const TETRAGON: &str = r#"{"process_exec":{"process":{"binary":"/bin/sh"}},"node_name":"ip-10-0-2-7","time":"2026-12-01T12:00:00Z"}"#;
    const NATIVE: &str = r#"{"schema":"vigil.runtime/v1","kind":"process_exec","cluster":"prod","node":"ip-10-0-3-9","time":"2026-12-01T12:00:00Z","process":{"binary":"/bin/sh"}}"#;

    #[test]
    fn each_sensor_s_event_becomes_a_record_keyed_by_its_node() {
        for (event, node) in [
            (FALCO, "ip-10-0-1-5"),
            (TETRAGON, "ip-10-0-2-7"),
            (NATIVE, "ip-10-0-3-9"),
        ] {
            let decoded = runtime_lines(event.as_bytes()).unwrap();
            assert_eq!(decoded.records.len(), 1, "{event}");
            let record = &decoded.records[0];
            assert_eq!(record.node.as_deref(), Some(node));
            assert_eq!(record.value, event.as_bytes());
            assert_eq!(record.destination, Destination::Runtime);
        }
    }

    #[test]
    fn json_lines_and_arrays_of_events_are_split() {
        let lines = format!("{FALCO}\n{TETRAGON}\n\n{NATIVE}\n");
        assert_eq!(runtime_lines(lines.as_bytes()).unwrap().records.len(), 3);
        let array = format!("[{FALCO},{NATIVE}]");
        assert_eq!(runtime_lines(array.as_bytes()).unwrap().records.len(), 2);
    }

    #[test]
    fn what_no_sensor_wrote_is_rejected_and_a_body_of_only_that_is_refused() {
        let lines = format!("{FALCO}\n{{\"rule\":\"no fields\"}}\n");
        let decoded = runtime_lines(lines.as_bytes()).unwrap();
        assert_eq!(decoded.records.len(), 1);
        assert_eq!(decoded.rejected[0].reason, "unknown_shape");
        let refused = runtime_lines(br#"{"schema":"other/v9"}"#).unwrap_err();
        assert_eq!(refused.reason, "unknown_shape");
        assert_eq!(
            runtime_lines(b"garbage").unwrap_err().reason,
            "invalid_json"
        );
    }
}
