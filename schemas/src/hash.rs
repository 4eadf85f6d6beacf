//! One stable hash for every stage: FNV-1a, the same across processes, machines and versions (the
//! standard library's hasher is keyed at random per process). What it hashes may be checkpointed
//! (burst windows, replay guards, the baselines' sketches), so its values must never change.

/// FNV-1a's 64-bit offset basis.
pub const FNV64_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV64_PRIME: u64 = 0x0000_0100_0000_01b3;
const FNV32_OFFSET: u32 = 0x811c_9dc5;
const FNV32_PRIME: u32 = 0x0100_0193;

/// 64-bit FNV-1a of `bytes`, starting from `seed` (use [`FNV64_OFFSET`] for the standard hash; a
/// second seed gives an independent-enough second hash for double hashing).
pub fn fnv1a_64_seeded(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(seed, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(FNV64_PRIME)
    })
}

/// 64-bit FNV-1a.
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    fnv1a_64_seeded(FNV64_OFFSET, bytes)
}

/// 32-bit FNV-1a, where a checkpoint keeps many hashes and a few collisions are harmless.
pub fn fnv1a_32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(FNV32_OFFSET, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(FNV32_PRIME)
    })
}

/// A [`std::hash::Hasher`] over 64-bit FNV-1a, for hashing several parts with `Hash` (strings add
/// their `0xff` terminator, so `("ab", "c")` and `("a", "bc")` differ).
#[derive(Debug, Clone, Copy)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        Self(FNV64_OFFSET)
    }
}

impl std::hash::Hasher for StableHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = fnv1a_64_seeded(self.0, bytes);
    }
}

/// A finding's or sequence's id: 32 hex digits of SHA-256 over the parts, each length-prefixed so
/// that no two different lists of parts run together into the same bytes. Ids are published and
/// checkpointed: this must never change.
pub fn id_digest<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A SHA-256 as 64 lowercase hex digits, from the spellings sensors and threat lists use
/// (`sha256:HEX`, upper or lower case); `None` for anything else (another algorithm, a truncated
/// digest).
pub fn sha256_hex(text: &str) -> Option<String> {
    let text = text.trim();
    let hex = match text.split_once(':') {
        Some((algorithm, hex)) if algorithm.eq_ignore_ascii_case("sha256") => hex,
        Some(_) => return None,
        None => text,
    };
    (hex.len() == 64 && hex.bytes().all(|byte| byte.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use std::hash::{Hash, Hasher};

    use super::*;

    /// The published FNV-1a test vectors: the values are part of checkpoints and must never move.
    #[test]
    fn known_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn the_hasher_separates_parts() {
        let of = |parts: &[&str]| {
            let mut hasher = StableHasher::default();
            for part in parts {
                part.hash(&mut hasher);
            }
            hasher.finish()
        };
        assert_ne!(of(&["ab", "c"]), of(&["a", "bc"]));
        assert_eq!(of(&["ab", "c"]), of(&["ab", "c"]));
    }
}
