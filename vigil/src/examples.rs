//! The bundled example, compiled in so that `vigil scan` runs anywhere with nothing beside it. The
//! same files are in `examples/` for reading and for `vigil scan examples/`.

/// Audit logs and runtime events, in scan order: the audit log first, so that the inventory knows
/// the pods the runtime events ran in.
pub const SOURCES: [(&str, &[u8]); 3] = [
    (
        "examples/audit/day-of-traffic.jsonl",
        include_bytes!("../../examples/audit/day-of-traffic.jsonl"),
    ),
    (
        "examples/runtime/dns.jsonl",
        include_bytes!("../../examples/runtime/dns.jsonl"),
    ),
    (
        "examples/runtime/tetragon.jsonl.gz",
        include_bytes!("../../examples/runtime/tetragon.jsonl.gz"),
    ),
];

/// The example settings, and the files they name, by the path they have in the repository.
pub const SETTINGS_NAME: &str = "examples/vigil.toml";
pub const SETTINGS: &str = include_str!("../../examples/vigil.toml");
const FILES: [(&str, &str); 5] = [
    (
        "examples/rules/shop.toml",
        include_str!("../../examples/rules/shop.toml"),
    ),
    (
        "examples/intel/threat-list.txt",
        include_str!("../../examples/intel/threat-list.txt"),
    ),
    (
        "examples/intel/c2-servers.txt",
        include_str!("../../examples/intel/c2-servers.txt"),
    ),
    (
        "examples/intel/tor-exit-addresses.txt",
        include_str!("../../examples/intel/tor-exit-addresses.txt"),
    ),
    (
        "examples/intel/ip-ranges.json",
        include_str!("../../examples/intel/ip-ranges.json"),
    ),
];

/// Reads a file the example settings name from the compiled-in copy.
pub fn read(path: &std::path::Path) -> std::io::Result<String> {
    FILES
        .iter()
        .find(|(name, _)| std::path::Path::new(name) == path)
        .map(|(_, text)| (*text).to_owned())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not part of the bundled example",
            )
        })
}
