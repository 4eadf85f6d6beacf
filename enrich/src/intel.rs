//! IP classification and threat intelligence: custom threat lists (plain text IPs and CIDRs), the Tor
//! exit list (plain addresses or the Tor Project's `exit-addresses` format) and trusted lists that
//! silence IP-based findings. Parsing takes text, so lists can be tested without files.

use std::collections::HashSet;
use std::net::IpAddr;

use sha2::{Digest, Sha256};
use vigil_schemas::{IpIntel, ThreatMatch};

/// A set of addresses and CIDR blocks, looked up by trying each prefix length that is present.
#[derive(Debug, Default, Clone)]
pub struct IpSet {
    /// (prefix length, network address as u128 in IPv6-mapped form)
    prefixes: HashSet<(u8, u128)>,
    lengths: Vec<u8>,
}

fn mapped(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().to_bits(),
        IpAddr::V6(v6) => v6.to_bits(),
    }
}

fn mask(bits: u128, length: u8) -> u128 {
    if length == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(length)))
    }
}

impl IpSet {
    /// Adds `1.2.3.4`, `1.2.3.0/24`, `2001:db8::/32`. Returns false for anything else.
    pub fn insert(&mut self, entry: &str) -> bool {
        let (address, length) = match entry.split_once('/') {
            Some((address, length)) => match length.parse::<u8>() {
                Ok(length) => (address, Some(length)),
                Err(_) => return false,
            },
            None => (entry, None),
        };
        let Ok(ip) = address.parse::<IpAddr>() else {
            return false;
        };
        let (offset, max) = if ip.is_ipv4() { (96u8, 32u8) } else { (0, 128) };
        let length = length.unwrap_or(max);
        if length > max {
            return false;
        }
        let full = offset + length;
        self.prefixes.insert((full, mask(mapped(ip), full)));
        if !self.lengths.contains(&full) {
            self.lengths.push(full);
            self.lengths.sort_unstable_by(|a, b| b.cmp(a));
        }
        true
    }

    /// The matching entry with the longest prefix, rendered back as text.
    pub fn lookup(&self, ip: IpAddr) -> Option<String> {
        let bits = mapped(ip);
        self.lengths
            .iter()
            .find(|length| self.prefixes.contains(&(**length, mask(bits, **length))))
            .map(|length| {
                if *length == 128 {
                    ip.to_string()
                } else if ip.is_ipv4() {
                    let network = std::net::Ipv4Addr::from_bits(
                        u32::try_from(mask(bits, *length) & 0xFFFF_FFFF).unwrap_or(0),
                    );
                    format!("{network}/{}", length - 96)
                } else {
                    format!(
                        "{}/{length}",
                        std::net::Ipv6Addr::from_bits(mask(bits, *length))
                    )
                }
            })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.lookup(ip).is_some()
    }

    pub fn len(&self) -> usize {
        self.prefixes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }
}

/// A parsed list with what GuardDuty shows of it: its name and the SHA-256 of the file.
#[derive(Debug, Clone)]
pub struct NamedList {
    pub name: String,
    pub sha256: String,
    pub set: IpSet,
    /// Lines that were neither blank, comments nor addresses, with their line numbers.
    pub bad_lines: Vec<(usize, String)>,
}

impl NamedList {
    /// Plain text: one IP or CIDR a line, `#` comments, blank lines ignored. Tor's `exit-addresses`
    /// format is read too: only its `ExitAddress IP DATE` lines carry addresses.
    pub fn parse(name: &str, text: &str) -> Self {
        let mut set = IpSet::default();
        let mut bad_lines = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let entry = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["ExitAddress", address, ..] => *address,
                ["ExitNode" | "Published" | "LastStatus", ..] => continue,
                [entry] => entry,
                // "1.2.3.4,comment" style lines: the first field
                _ => line.split([',', ' ', '\t']).next().unwrap_or_default(),
            };
            let entry = entry.split(',').next().unwrap_or_default();
            if !set.insert(entry) {
                bad_lines.push((index + 1, line.chars().take(80).collect()));
            }
        }
        let digest = Sha256::digest(text.as_bytes());
        Self {
            name: name.to_owned(),
            sha256: digest.iter().map(|byte| format!("{byte:02x}")).collect(),
            set,
            bad_lines,
        }
    }
}

/// All the lists enrich consults.
#[derive(Debug, Clone, Default)]
pub struct ThreatIntel {
    pub threat_lists: Vec<NamedList>,
    pub tor_exits: Option<NamedList>,
    pub trusted: Vec<NamedList>,
}

/// `loopback`, `private` (inside a cluster or VPC) or `public`.
pub fn scope_of(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() || v4.is_unspecified() {
                "loopback"
            } else if v4.is_private() || v4.is_link_local() || (a == 100 && (64..128).contains(&b))
            {
                "private"
            } else {
                "public"
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return scope_of(IpAddr::V4(v4));
            }
            let first = v6.segments().first().copied().unwrap_or_default();
            if v6.is_loopback() || v6.is_unspecified() {
                "loopback"
            } else if (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80 {
                "private"
            } else {
                "public"
            }
        }
    }
}

impl ThreatIntel {
    /// What is known of one address. Threat lists and Tor are consulted only for public addresses:
    /// a private address on a list is a list error, not an attacker.
    pub fn classify(&self, text: &str) -> Option<IpIntel> {
        let ip: IpAddr = text.trim().parse().ok()?;
        let scope = scope_of(ip);
        let public = scope == "public";
        let trusted = self.trusted.iter().any(|list| list.set.contains(ip));
        let tor_exit = public
            && self
                .tor_exits
                .as_ref()
                .is_some_and(|list| list.set.contains(ip));
        let threat_matches = if public {
            self.threat_lists
                .iter()
                .filter_map(|list| {
                    list.set.lookup(ip).map(|entry| ThreatMatch {
                        list_name: list.name.clone(),
                        entry,
                        file_sha256: list.sha256.clone(),
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        Some(IpIntel {
            ip: ip.to_string(),
            scope: scope.to_owned(),
            tor_exit,
            trusted,
            threat_matches,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lists_with_cidrs_and_comments() {
        let list = NamedList::parse(
            "bad",
            "# header\n203.0.113.7\n198.51.100.0/24  # scanners\n\nnot-an-ip\n2001:db8::/32\n",
        );
        assert_eq!(list.set.len(), 3);
        assert_eq!(list.bad_lines, [(5, "not-an-ip".to_owned())]);
        assert_eq!(
            list.set.lookup("198.51.100.99".parse().unwrap()).as_deref(),
            Some("198.51.100.0/24")
        );
        assert_eq!(
            list.set.lookup("203.0.113.7".parse().unwrap()).as_deref(),
            Some("203.0.113.7")
        );
        assert!(list.set.contains("2001:db8::1".parse().unwrap()));
        assert!(!list.set.contains("203.0.113.8".parse().unwrap()));
        assert_eq!(list.sha256.len(), 64);
    }

    #[test]
    fn tor_exit_addresses_format() {
        let text = "ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\nPublished 2024-03-01 10:00:00\nLastStatus 2024-03-01 11:00:00\nExitAddress 185.220.101.4 2024-03-01 11:05:00\n";
        let list = NamedList::parse("tor", text);
        assert!(list.bad_lines.is_empty(), "{:?}", list.bad_lines);
        assert!(list.set.contains("185.220.101.4".parse().unwrap()));
    }

    #[test]
    fn private_addresses_are_never_threats_and_trusted_wins() {
        let intel = ThreatIntel {
            threat_lists: vec![NamedList::parse("bad", "10.0.0.0/8\n203.0.113.7\n")],
            tor_exits: Some(NamedList::parse("tor", "203.0.113.7\n")),
            trusted: vec![NamedList::parse("ours", "203.0.113.0/24\n")],
        };
        let private = intel.classify("10.1.2.3").unwrap();
        assert_eq!(private.scope, "private");
        assert!(private.threat_matches.is_empty());
        let public = intel.classify("203.0.113.7").unwrap();
        assert_eq!(public.scope, "public");
        assert!(public.tor_exit && public.trusted);
        assert_eq!(public.threat_matches[0].list_name, "bad");
        assert_eq!(intel.classify("::1").unwrap().scope, "loopback");
        assert_eq!(intel.classify("100.64.3.2").unwrap().scope, "private");
        assert!(intel.classify("not an ip").is_none());
    }
}
