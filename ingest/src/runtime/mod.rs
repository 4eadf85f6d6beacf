//! Runtime events from node and container sensors, into [`RuntimeEvent`]s:
//! - Tetragon's JSON export ([`tetragon`]): `process_exec`, `process_exit`, `process_kprobe`,
//!   `process_tracepoint`, `process_lsm`, `process_uprobe`, `process_loader`, and the older
//!   `process_connect` / `process_close` / `process_listen` events;
//! - Falco's JSON output ([`falco`]): each alert becomes a `sensor_alert` with its rule, priority and
//!   fields;
//! - Vigil's native JSON form ([`native`]) for any other agent.
//!
//! Ids are deterministic (the sensor's own, or a digest of the input), so a redelivered message
//! is recognised by the dedup window like a repeated audit event.

pub(crate) mod falco;
pub(crate) mod native;
pub(crate) mod tetragon;

use sha2::{Digest, Sha256};
use vigil_schemas::KeyValue;

/// Bounds on what a sensor hands over, so one odd event cannot grow every record after it.
pub(crate) const MAX_TEXT: usize = 4096;
pub(crate) const MAX_LIST: usize = 64;

/// `sensor:` and the first 128 bits of the input's SHA-256, in hex.
pub(crate) fn digest_id(sensor: &str, text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut id = String::with_capacity(sensor.len() + 33);
    id.push_str(sensor);
    id.push(':');
    for byte in digest.iter().take(16) {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// Cuts a text to the bound on a character boundary.
pub(crate) fn bounded(text: String) -> String {
    crate::json::truncated(text, MAX_TEXT)
}

pub(crate) fn bounded_opt(text: Option<String>) -> Option<String> {
    text.filter(|value| !value.is_empty()).map(bounded)
}

pub(crate) fn key_value(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: bounded(value),
    }
}

/// `IPPROTO_TCP`, `TCP`, `tcp`, `6` → `tcp`.
pub(crate) use vigil_schemas::hash::sha256_hex;

pub(crate) fn protocol_name(protocol: &str) -> String {
    let lower = protocol.trim_start_matches("IPPROTO_").to_ascii_lowercase();
    match lower.as_str() {
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        _ => lower,
    }
}

/// A container id without its runtime prefix (`containerd://`, `docker://`, `cri-o://`).
pub(crate) fn container_id(id: &str) -> String {
    id.split_once("://").map_or(id, |(_, rest)| rest).to_owned()
}
