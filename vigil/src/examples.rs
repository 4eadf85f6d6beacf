//! The bundled example, compiled in so that `vigil scan` runs anywhere with nothing beside it. The
//! same files are in `examples/` for reading and for `vigil scan examples/`.

/// Audit logs, in scan order.
pub const AUDIT: [(&str, &[u8]); 1] = [(
    "examples/audit/day-of-traffic.jsonl",
    include_bytes!("../../examples/audit/day-of-traffic.jsonl"),
)];

pub const CLUSTER_CONFIG: &str = include_str!("../../examples/cluster.toml");
pub const THREAT_LIST: &str = include_str!("../../examples/intel/threat-list.txt");
pub const TOR_EXITS: &str = include_str!("../../examples/intel/tor-exit-addresses.txt");
