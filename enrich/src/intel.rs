//! IP classification and threat intelligence: threat lists (plain text IPs and CIDRs, STIX 2.1 bundles,
//! AlienVault OTX CSV), curated feeds, the Tor exit list (plain addresses or the Tor Project's
//! `exit-addresses` format) and trusted lists that silence IP-based findings. Parsing takes text, so
//! lists can be tested (and fuzzed) without files.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;

use sha2::{Digest, Sha256};
use vigil_schemas::{IpIntel, IpScope, ThreatMatch};

/// A set of addresses and CIDR blocks, looked up by trying each prefix length that is present.
#[derive(Debug, Default, Clone)]
pub struct IpSet {
    /// (prefix length, network address as u128 in IPv6-mapped form)
    prefixes: HashSet<(u8, u128)>,
    lengths: Vec<u8>,
}

use crate::cidr::{Cidr, mapped, mask};

impl IpSet {
    /// Adds `1.2.3.4`, `1.2.3.0/24`, `2001:db8::/32`. Returns false for anything else.
    pub fn insert(&mut self, entry: &str) -> bool {
        // Entries are exact: no spaces inside, as lists are read line by line and trimmed.
        if entry.contains(char::is_whitespace) {
            return false;
        }
        let Some(block) = Cidr::parse(entry) else {
            return false;
        };
        let full = block.length;
        self.prefixes.insert((full, block.network));
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
                } else if let Some(ipv4_length) = length.checked_sub(96).filter(|_| ip.is_ipv4()) {
                    // An IPv6 entry wide enough to hold the IPv4-mapped range (`::/3`, `::/0`)
                    // matches IPv4 addresses too: it is shown as written, not as an IPv4 block.
                    let network = std::net::Ipv4Addr::from_bits(
                        u32::try_from(mask(bits, *length) & 0xFFFF_FFFF).unwrap_or(0),
                    );
                    format!("{network}/{ipv4_length}")
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

/// Domain names, matched exactly or as a parent: `evil.example` matches `a.b.evil.example`.
#[derive(Debug, Default, Clone)]
pub struct DomainSet {
    names: BTreeSet<String>,
}

/// A domain as lists and DNS write it: lowercase, without the root's trailing dot.
fn domain_key(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Letters, digits, hyphens and underscores in dot-separated labels, at least two labels: enough to
/// tell a domain from an address or a typo; lists are not the place to validate DNS.
pub fn looks_like_domain(text: &str) -> bool {
    let name = text.trim_end_matches('.');
    name.contains('.')
        && name.len() <= 253
        && name.parse::<IpAddr>().is_err()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        && name
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.chars().any(|c| c.is_ascii_alphabetic()))
}

impl DomainSet {
    /// Adds a domain; false when the text is not one.
    pub fn insert(&mut self, entry: &str) -> bool {
        let entry = entry.trim().trim_start_matches("*.");
        if !looks_like_domain(entry) {
            return false;
        }
        self.names.insert(domain_key(entry));
        true
    }

    /// The entry that matches `name` or one of its parents.
    pub fn lookup(&self, name: &str) -> Option<String> {
        let name = domain_key(name);
        let mut rest = name.as_str();
        loop {
            if self.names.contains(rest) {
                return Some(rest.to_owned());
            }
            rest = rest.split_once('.')?.1;
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The categories a threat list can declare, which decide the runtime finding types it raises.
pub const LIST_CATEGORIES: [&str; 8] = [
    "c2",
    "mining",
    "drop_point",
    "blackhole",
    "phishing",
    "dga",
    "drive_by",
    "malware",
];

/// The formats a list file can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListFormat {
    /// Sniffed from the content: STIX when it is a JSON object, OTX when the first line is OTX's CSV
    /// header, plain text otherwise (which also reads Tor's `exit-addresses`).
    #[default]
    Auto,
    /// One IP or CIDR a line, `#` comments; Tor's `exit-addresses` lines are read too.
    Plain,
    /// A STIX 2.1 bundle: `indicator` objects whose pattern compares `ipv4-addr:value` or
    /// `ipv6-addr:value`, and `ipv4-addr`/`ipv6-addr` observables. Revoked indicators are skipped.
    Stix,
    /// AlienVault OTX's CSV export (`Indicator type,Indicator,Description`): its IPv4, IPv6 and CIDR rows.
    OtxCsv,
}

/// A parsed list with what GuardDuty shows of it: its name and the SHA-256 of the file.
#[derive(Debug, Clone)]
pub struct NamedList {
    pub name: String,
    pub sha256: String,
    pub set: IpSet,
    /// Entries that were neither blank, comments nor addresses, with their line numbers (STIX: the
    /// object's position in the bundle).
    pub bad_lines: Vec<(usize, String)>,
    /// Indicators of kinds an IP list does not hold (domains, URLs, hashes), skipped.
    pub skipped: usize,
    /// A curated feed (raises `MaliciousIPCaller`) rather than a custom list (`.Custom`).
    pub curated: bool,
    /// Domain entries (plain lines that are domains, STIX `domain-name`, OTX `domain`/`hostname`).
    pub domains: DomainSet,
    /// What the entries are ([`LIST_CATEGORIES`]), as the list's settings say.
    pub category: Option<String>,
    /// SHA-256 file hashes, lowercase hex (plain lines of 64 hex digits, STIX
    /// `file:hashes.'SHA-256'`, OTX `FileHash-SHA256`): executables that raise
    /// `Execution:Runtime/MaliciousFileExecuted`.
    pub hashes: BTreeSet<String>,
}

use vigil_schemas::hash::sha256_hex as sha256_entry;

fn sniff(text: &str) -> ListFormat {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return ListFormat::Stix;
    }
    let first = trimmed.lines().next().unwrap_or_default();
    if first
        .to_ascii_lowercase()
        .replace('"', "")
        .starts_with("indicator type,")
    {
        ListFormat::OtxCsv
    } else {
        ListFormat::Plain
    }
}

/// Splits one CSV line, honouring double quotes (`""` inside quotes is a quote).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (other, _) => field.push(other),
        }
    }
    fields.push(field);
    fields
}

/// The values a STIX pattern compares IP observables with: `[ipv4-addr:value = '198.51.100.7' OR
/// ipv6-addr:value = '2001:db8::/32']`.
fn stix_pattern_addresses(pattern: &str) -> Vec<&str> {
    stix_pattern_values(pattern, &["ipv4-addr:value", "ipv6-addr:value"])
}

/// The values a STIX pattern compares the given object paths with.
fn stix_pattern_values<'p>(pattern: &'p str, kinds: &[&str]) -> Vec<&'p str> {
    let mut found = Vec::new();
    for kind in kinds {
        let mut rest = pattern;
        while let Some(index) = rest.find(kind) {
            rest = rest.get(index + kind.len()..).unwrap_or_default();
            let after = rest.trim_start();
            let Some(after) = after.strip_prefix('=') else {
                continue;
            };
            let Some(after) = after.trim_start().strip_prefix('\'') else {
                continue;
            };
            if let Some(end) = after.find('\'') {
                found.push(after.get(..end).unwrap_or_default());
            }
        }
    }
    found
}

impl NamedList {
    /// Reads a list in the format its content shows ([`ListFormat::Auto`]).
    pub fn parse(name: &str, text: &str) -> Self {
        Self::parse_as(name, text, ListFormat::Auto)
    }

    pub fn parse_as(name: &str, text: &str, format: ListFormat) -> Self {
        let format = match format {
            ListFormat::Auto => sniff(text),
            other => other,
        };
        let mut list = Self {
            name: name.to_owned(),
            sha256: Sha256::digest(text.as_bytes())
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect(),
            set: IpSet::default(),
            bad_lines: Vec::new(),
            skipped: 0,
            curated: false,
            domains: DomainSet::default(),
            category: None,
            hashes: BTreeSet::new(),
        };
        match format {
            ListFormat::Stix => list.read_stix(text),
            ListFormat::OtxCsv => list.read_otx(text),
            ListFormat::Plain | ListFormat::Auto => list.read_plain(text),
        }
        list
    }

    /// Sets what the list's entries are (one of [`LIST_CATEGORIES`]).
    pub fn category(mut self, category: Option<String>) -> Self {
        self.category = category;
        self
    }

    /// Entries of every kind.
    pub fn len(&self) -> usize {
        self.set.len() + self.domains.len() + self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.domains.is_empty() && self.hashes.is_empty()
    }

    /// Marks the list a curated feed.
    pub fn curated(mut self, curated: bool) -> Self {
        self.curated = curated;
        self
    }

    fn read_plain(&mut self, text: &str) {
        for (index, line) in text.lines().enumerate() {
            // `#` comments, and `;` ones as Spamhaus's DROP lists write them.
            let line = line.split(['#', ';']).next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let entries: &[&str] = match fields.as_slice() {
                ["ExitAddress", address, ..] => std::slice::from_ref(address),
                ["ExitNode" | "Published" | "LastStatus", ..] => continue,
                // A hosts file (URLhaus, StevenBlack): the names it points at a sink address are
                // the entries, not the sink.
                ["0.0.0.0" | "127.0.0.1" | "::" | "::1", names @ ..] if !names.is_empty() => names,
                // "1.2.3.4,comment" and "1.2.3.4 comment" style lines: the first field
                [first, ..] => std::slice::from_ref(first),
                [] => continue,
            };
            for entry in entries {
                let entry = entry.split(',').next().unwrap_or_default();
                if let Some(hash) = sha256_entry(entry) {
                    self.hashes.insert(hash);
                    continue;
                }
                if !self.set.insert(entry) && !self.domains.insert(entry) {
                    self.bad_lines
                        .push((index + 1, line.chars().take(80).collect()));
                }
            }
        }
    }

    fn read_otx(&mut self, text: &str) {
        let mut lines = text.lines().enumerate();
        let Some((_, header)) = lines.next() else {
            return;
        };
        let header: Vec<String> = csv_fields(header)
            .iter()
            .map(|field| field.trim().to_ascii_lowercase())
            .collect();
        let column = |name: &str| header.iter().position(|field| field == name);
        let (Some(kind_column), Some(value_column)) =
            (column("indicator type"), column("indicator"))
        else {
            self.bad_lines
                .push((1, "no `Indicator type` and `Indicator` columns".into()));
            return;
        };
        for (index, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let fields = csv_fields(line);
            let kind = fields.get(kind_column).map(|kind| kind.trim());
            let value = fields.get(value_column).map_or("", |value| value.trim());
            match kind {
                Some("IPv4" | "IPv6" | "CIDR") => {
                    if !self.set.insert(value) {
                        self.bad_lines
                            .push((index + 1, line.chars().take(80).collect()));
                    }
                }
                Some("domain" | "hostname") => {
                    if !self.domains.insert(value) {
                        self.bad_lines
                            .push((index + 1, line.chars().take(80).collect()));
                    }
                }
                Some("FileHash-SHA256") => match sha256_entry(value) {
                    Some(hash) => {
                        self.hashes.insert(hash);
                    }
                    None => self
                        .bad_lines
                        .push((index + 1, line.chars().take(80).collect())),
                },
                Some(_) => self.skipped += 1,
                None => self
                    .bad_lines
                    .push((index + 1, line.chars().take(80).collect())),
            }
        }
    }

    fn read_stix(&mut self, text: &str) {
        let bundle: serde_json::Value = match serde_json::from_str(text) {
            Ok(bundle) => bundle,
            Err(error) => {
                self.bad_lines
                    .push((error.line(), format!("not a STIX JSON bundle: {error}")));
                return;
            }
        };
        let objects = match bundle.get("objects").and_then(|objects| objects.as_array()) {
            Some(objects) => objects.as_slice(),
            // A single indicator rather than a bundle.
            None => std::slice::from_ref(&bundle),
        };
        for (index, object) in objects.iter().enumerate() {
            let kind = object.get("type").and_then(|kind| kind.as_str());
            let revoked = object.get("revoked").and_then(|revoked| revoked.as_bool()) == Some(true);
            let addresses: Vec<&str> = match kind {
                Some("indicator") if !revoked => {
                    let stix_pattern = object
                        .get("pattern_type")
                        .and_then(|kind| kind.as_str())
                        .is_none_or(|kind| kind == "stix");
                    let pattern = object
                        .get("pattern")
                        .and_then(|pattern| pattern.as_str())
                        .filter(|_| stix_pattern);
                    match pattern {
                        Some(pattern) => {
                            let domains = stix_pattern_values(pattern, &["domain-name:value"]);
                            for name in &domains {
                                if !self.domains.insert(name) {
                                    self.bad_lines
                                        .push((index + 1, name.chars().take(80).collect()));
                                }
                            }
                            let hashes = stix_pattern_values(
                                pattern,
                                &[
                                    "file:hashes.'SHA-256'",
                                    "file:hashes.\"SHA-256\"",
                                    "file:hashes.SHA256",
                                    "file:hashes.'SHA256'",
                                ],
                            );
                            for hash in &hashes {
                                match sha256_entry(hash) {
                                    Some(hash) => {
                                        self.hashes.insert(hash);
                                    }
                                    None => self
                                        .bad_lines
                                        .push((index + 1, hash.chars().take(80).collect())),
                                }
                            }
                            let addresses = stix_pattern_addresses(pattern);
                            if addresses.is_empty() && !(domains.is_empty() && hashes.is_empty()) {
                                continue;
                            }
                            addresses
                        }
                        None => {
                            self.skipped += 1;
                            continue;
                        }
                    }
                }
                Some("domain-name") => {
                    if let Some(name) = object.get("value").and_then(|value| value.as_str())
                        && !self.domains.insert(name)
                    {
                        self.bad_lines
                            .push((index + 1, name.chars().take(80).collect()));
                    }
                    continue;
                }
                Some("ipv4-addr" | "ipv6-addr") => object
                    .get("value")
                    .and_then(|value| value.as_str())
                    .into_iter()
                    .collect(),
                _ => continue,
            };
            if addresses.is_empty() {
                // An indicator of a domain, URL or file hash: not for an IP list.
                self.skipped += 1;
            }
            for address in addresses {
                if !self.set.insert(address) {
                    self.bad_lines
                        .push((index + 1, address.chars().take(80).collect()));
                }
            }
        }
    }
}

/// All the lists enrich consults.
#[derive(Debug, Clone, Default)]
pub struct ThreatIntel {
    pub threat_lists: Vec<NamedList>,
    pub tor_exits: Option<NamedList>,
    pub trusted: Vec<NamedList>,
    /// The user's ASN database, shared (it can hold a million ranges; intel is cloned on reload).
    pub asn: Option<std::sync::Arc<crate::AsnDatabase>>,
    /// Cloud providers' published ranges (`ip-ranges.json` and its kin), shared like the ASN
    /// database.
    pub providers: Vec<std::sync::Arc<crate::providers::ProviderRanges>>,
    /// The user's Tor relay list (addresses and OR ports), shared like the ASN database.
    pub tor_relays: Option<std::sync::Arc<crate::TorRelays>>,
}

/// Loopback, private (inside a cluster or VPC) or public.
pub fn scope_of(ip: IpAddr) -> IpScope {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() || v4.is_unspecified() {
                IpScope::Loopback
            } else if v4.is_private() || v4.is_link_local() || (a == 100 && (64..128).contains(&b))
            {
                IpScope::Private
            } else {
                IpScope::Public
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return scope_of(IpAddr::V4(v4));
            }
            let first = v6.segments().first().copied().unwrap_or_default();
            if v6.is_loopback() || v6.is_unspecified() {
                IpScope::Loopback
            } else if (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80 {
                IpScope::Private
            } else {
                IpScope::Public
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
        let public = scope == IpScope::Public;
        let trusted = self.trusted.iter().any(|list| list.set.contains(ip));
        let tor_exit = public
            && self
                .tor_exits
                .as_ref()
                .is_some_and(|list| list.set.contains(ip));
        let relay_or_ports = self
            .tor_relays
            .as_ref()
            .filter(|_| public)
            .and_then(|relays| relays.lookup(ip));
        let threat_matches = if public {
            self.threat_lists
                .iter()
                .filter_map(|list| {
                    list.set.lookup(ip).map(|entry| ThreatMatch {
                        list_name: list.name.clone(),
                        entry,
                        file_sha256: list.sha256.clone(),
                        curated: list.curated,
                        category: list.category.clone(),
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        let announced = self
            .asn
            .as_ref()
            .filter(|_| public)
            .and_then(|database| database.lookup(ip));
        Some(IpIntel {
            ip: ip.to_string(),
            scope: scope.label().to_owned(),
            tor_exit,
            trusted,
            tor_relay: relay_or_ports.is_some(),
            tor_relay_or_ports: relay_or_ports
                .unwrap_or_default()
                .iter()
                .map(|port| i32::from(*port))
                .collect(),
            threat_matches,
            asn: announced.map(|(asn, _)| i64::from(asn)),
            as_organization: announced
                .map(|(_, organization)| organization.to_owned())
                .filter(|organization| !organization.is_empty()),
            // A public address in a provider's published ranges is the provider's; a private one is
            // placed in the cluster's network by the enricher, which knows the cluster.
            network: self
                .providers
                .iter()
                .filter(|_| public)
                .find(|ranges| ranges.set.contains(ip))
                .map(|ranges| ranges.provider.clone()),
        })
    }
}

impl ThreatIntel {
    /// The threat-list entries (SHA-256 hashes) an executed file's hash matches.
    pub fn classify_file(&self, sha256: &str) -> Vec<ThreatMatch> {
        let Some(hash) = sha256_entry(sha256) else {
            return Vec::new();
        };
        if self.trusted.iter().any(|list| list.hashes.contains(&hash)) {
            return Vec::new();
        }
        self.threat_lists
            .iter()
            .filter(|list| list.hashes.contains(&hash))
            .map(|list| ThreatMatch {
                list_name: list.name.clone(),
                entry: hash.clone(),
                file_sha256: list.sha256.clone(),
                curated: list.curated,
                category: list.category.clone(),
            })
            .collect()
    }

    /// The threat-list entries a domain (a DNS query, a connection's name) matches. A domain on a
    /// trusted list matches nothing: trusted beats threat, as in GuardDuty.
    pub fn classify_domain(&self, name: &str) -> Vec<ThreatMatch> {
        if self
            .trusted
            .iter()
            .any(|list| list.domains.lookup(name).is_some())
        {
            return Vec::new();
        }
        self.threat_lists
            .iter()
            .filter_map(|list| {
                list.domains.lookup(name).map(|entry| ThreatMatch {
                    list_name: list.name.clone(),
                    entry,
                    file_sha256: list.sha256.clone(),
                    curated: list.curated,
                    category: list.category.clone(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzzer's find: an IPv6 entry holding the IPv4-mapped range made an IPv4 lookup
    /// subtract 96 from its prefix length (an overflow; a `/163` block in release builds).
    #[test]
    fn an_ipv6_entry_wide_enough_to_hold_ipv4_is_shown_as_written() {
        let list = NamedList::parse(
            "wide", "::/3
",
        );
        assert_eq!(
            list.set.lookup("198.51.100.7".parse().unwrap()).as_deref(),
            Some("::/3")
        );
        let mapped = NamedList::parse(
            "mapped",
            "::ffff:0:0/96
",
        );
        assert_eq!(
            mapped
                .set
                .lookup("198.51.100.7".parse().unwrap())
                .as_deref(),
            Some("0.0.0.0/0")
        );
    }

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
    fn spamhaus_drop_and_hosts_file_lists() {
        let drop = NamedList::parse(
            "drop",
            "; Spamhaus DROP List 2026/11/20\n198.51.100.0/24 ; SBL123456\n",
        );
        assert!(drop.bad_lines.is_empty(), "{:?}", drop.bad_lines);
        assert!(drop.set.contains("198.51.100.9".parse().unwrap()));
        let hosts = NamedList::parse(
            "urlhaus",
            "# URLhaus hostfile\n0.0.0.0 evil.example\n127.0.0.1 c2.example payload.example\n",
        );
        assert!(hosts.bad_lines.is_empty(), "{:?}", hosts.bad_lines);
        // The sink addresses are not listed; the names are.
        assert!(!hosts.set.contains("0.0.0.0".parse().unwrap()));
        assert!(!hosts.set.contains("127.0.0.1".parse().unwrap()));
        assert_eq!(hosts.domains.len(), 3);
        // An address alone is an entry, whatever it is.
        let alone = NamedList::parse("odd", "127.0.0.1\n");
        assert!(alone.set.contains("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn stix_bundles_give_their_ip_and_domain_indicators() {
        let bundle = r#"{"type": "bundle", "id": "bundle--1", "objects": [
            {"type": "indicator", "spec_version": "2.1", "id": "indicator--a", "pattern_type": "stix",
             "pattern": "[ipv4-addr:value = '198.51.100.7' OR ipv4-addr:value = '203.0.113.0/24']"},
            {"type": "indicator", "id": "indicator--b", "pattern": "[ipv6-addr:value = '2001:db8::/32']"},
            {"type": "indicator", "id": "indicator--c", "revoked": true, "pattern": "[ipv4-addr:value = '192.0.2.1']"},
            {"type": "indicator", "id": "indicator--d", "pattern": "[domain-name:value = 'evil.example']"},
            {"type": "indicator", "id": "indicator--e", "pattern_type": "sigma", "pattern": "title: x"},
            {"type": "ipv4-addr", "id": "ipv4-addr--f", "value": "192.0.2.99"},
            {"type": "indicator", "id": "indicator--g", "pattern": "[ipv4-addr:value = 'not-an-ip']"},
            {"type": "malware", "id": "malware--h", "name": "x"}
        ]}"#;
        let list = NamedList::parse("stix", bundle);
        assert!(list.set.contains("198.51.100.7".parse().unwrap()));
        assert!(list.set.contains("203.0.113.200".parse().unwrap()));
        assert!(list.set.contains("2001:db8::5".parse().unwrap()));
        assert!(list.set.contains("192.0.2.99".parse().unwrap()));
        assert!(!list.set.contains("192.0.2.1".parse().unwrap()), "revoked");
        assert_eq!(list.set.len(), 4);
        assert_eq!(list.skipped, 1, "the sigma indicator");
        assert_eq!(
            list.domains.lookup("www.evil.example").as_deref(),
            Some("evil.example")
        );
        assert_eq!(list.bad_lines, [(7, "not-an-ip".to_owned())]);

        let broken = NamedList::parse_as("stix", "{ not json", ListFormat::Stix);
        assert!(broken.set.is_empty());
        assert_eq!(broken.bad_lines.len(), 1);
    }

    #[test]
    fn otx_csv_gives_its_ip_and_domain_rows() {
        let csv = "Indicator type,Indicator,Description\nIPv4,198.51.100.7,\"scanner, seen twice\"\ndomain,evil.example,c2\nCIDR,203.0.113.0/24,\nIPv6,2001:db8::1,x\nIPv4,999.1.1.1,typo\n";
        let list = NamedList::parse("otx", csv);
        assert!(list.set.contains("198.51.100.7".parse().unwrap()));
        assert!(list.set.contains("203.0.113.9".parse().unwrap()));
        assert!(list.set.contains("2001:db8::1".parse().unwrap()));
        assert_eq!(list.set.len(), 3);
        assert_eq!(list.skipped, 0);
        assert!(list.domains.lookup("evil.example").is_some());
        assert_eq!(list.bad_lines.len(), 1);
        assert_eq!(csv_fields("a,\"b,c\",\"d\"\"e\""), ["a", "b,c", "d\"e"]);
    }

    #[test]
    fn domains_match_themselves_and_their_subdomains_and_trusted_beats_threat() {
        let list = NamedList::parse(
            "c2",
            "# c2 domains
evil.example
*.bad.example.
198.51.100.7
not a domain
",
        )
        .category(Some("c2".into()));
        assert_eq!(list.domains.len(), 2);
        assert_eq!(list.set.len(), 1);
        assert_eq!(list.bad_lines.len(), 1);
        let mut intel = ThreatIntel {
            threat_lists: vec![list],
            ..ThreatIntel::default()
        };
        let found = intel.classify_domain("Beacon.EVIL.example.");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].entry, "evil.example");
        assert_eq!(found[0].category.as_deref(), Some("c2"));
        assert!(intel.classify_domain("x.bad.example").len() == 1);
        assert!(intel.classify_domain("notevil.example").is_empty());
        assert!(intel.classify_domain("example").is_empty());
        intel.trusted = vec![NamedList::parse(
            "ours",
            "beacon.evil.example
",
        )];
        assert!(intel.classify_domain("beacon.evil.example").is_empty());
        assert_eq!(intel.classify_domain("other.evil.example").len(), 1);
        assert!(looks_like_domain("a-b.example.com"));
        assert!(!looks_like_domain("10.0.0.1"));
        assert!(!looks_like_domain("localhost"));
        assert!(!looks_like_domain("a..b"));
    }

    #[test]
    fn curated_lists_mark_their_matches() {
        let intel = ThreatIntel {
            threat_lists: vec![
                NamedList::parse("feed", "198.51.100.7\n").curated(true),
                NamedList::parse("mine", "198.51.100.7\n"),
            ],
            ..ThreatIntel::default()
        };
        let found = intel.classify("198.51.100.7").unwrap();
        let curated: Vec<bool> = found.threat_matches.iter().map(|m| m.curated).collect();
        assert_eq!(curated, [true, false]);
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
            asn: None,
            providers: Vec::new(),
            tor_relays: Some(std::sync::Arc::new(crate::TorRelays::parse(
                "203.0.113.7:9001\n10.1.2.3:9001\n",
            ))),
        };
        let private = intel.classify("10.1.2.3").unwrap();
        assert!(!private.tor_relay, "a private address is no relay");
        assert_eq!(private.scope, "private");
        assert!(private.threat_matches.is_empty());
        let public = intel.classify("203.0.113.7").unwrap();
        assert_eq!(public.scope, "public");
        assert!(public.tor_exit && public.trusted);
        assert!(public.tor_relay);
        assert_eq!(public.tor_relay_or_ports, [9001]);
        assert_eq!(public.threat_matches[0].list_name, "bad");
        assert_eq!(intel.classify("::1").unwrap().scope, "loopback");
        assert_eq!(intel.classify("100.64.3.2").unwrap().scope, "private");
        assert_eq!(public.network, None);
    }

    #[test]
    fn public_addresses_in_a_providers_ranges_are_the_providers() {
        let ranges = crate::ProviderRanges::parse(
            r#"{"syncToken": "1", "prefixes": [{"ip_prefix": "52.94.0.0/22", "region": "us-east-1", "service": "AMAZON"}]}"#,
        )
        .unwrap();
        let intel = ThreatIntel {
            providers: vec![std::sync::Arc::new(ranges)],
            ..ThreatIntel::default()
        };
        let aws = intel.classify("52.94.1.9").unwrap();
        assert_eq!(
            (aws.scope.as_str(), aws.network.as_deref()),
            ("public", Some("aws"))
        );
        assert_eq!(intel.classify("198.51.100.1").unwrap().network, None);
        assert!(intel.classify("not an ip").is_none());
    }

    #[test]
    fn public_addresses_are_given_their_autonomous_system_and_private_ones_are_not() {
        let intel = ThreatIntel {
            asn: Some(std::sync::Arc::new(crate::AsnDatabase::parse(
                "203.0.113.0/24,64500,Example Net\n10.0.0.0/8,64501,Not public\n198.51.100.0/24,64502,\n",
            ))),
            ..ThreatIntel::default()
        };
        let public = intel.classify("203.0.113.7").unwrap();
        assert_eq!(public.asn, Some(64500));
        assert_eq!(public.as_organization.as_deref(), Some("Example Net"));
        let private = intel.classify("10.1.2.3").unwrap();
        assert_eq!((private.asn, private.as_organization), (None, None));
        let unnamed = intel.classify("198.51.100.1").unwrap();
        assert_eq!((unnamed.asn, unnamed.as_organization), (Some(64502), None));
        let unknown = intel.classify("192.0.2.1").unwrap();
        assert_eq!(unknown.asn, None);
    }

    const HASH: &str = "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";
    const OTHER: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn file_hashes_are_read_from_every_list_format_and_matched_by_executed_files() {
        let plain = NamedList::parse(
            "hashes",
            &format!(
                "# miners\n{HASH}\nsha256:{}\n203.0.113.7\n",
                OTHER.to_ascii_uppercase()
            ),
        )
        .curated(true);
        assert_eq!(plain.hashes.len(), 2);
        assert_eq!(plain.set.len(), 1);
        assert!(plain.bad_lines.is_empty(), "{:?}", plain.bad_lines);
        let stix = NamedList::parse(
            "stix",
            &format!(
                r#"{{"type": "bundle", "objects": [{{"type": "indicator", "spec_version": "2.1", "id": "indicator--h",
                "pattern_type": "stix", "pattern": "[file:hashes.'SHA-256' = '{HASH}']"}}]}}"#
            ),
        );
        assert!(stix.hashes.contains(HASH), "{stix:?}");
        let otx = NamedList::parse(
            "otx",
            &format!(
                "Indicator type,Indicator,Description\nFileHash-SHA256,{HASH},miner\nFileHash-MD5,0123,x\n"
            ),
        );
        assert!(otx.hashes.contains(HASH));
        assert_eq!(otx.skipped, 1);
        let mut intel = ThreatIntel {
            threat_lists: vec![plain],
            ..ThreatIntel::default()
        };
        let found = intel.classify_file(&HASH.to_ascii_uppercase());
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].entry.as_str(), found[0].curated), (HASH, true));
        assert!(intel.classify_file("not a hash").is_empty());
        assert!(
            intel
                .classify_file("0000000000000000000000000000000000000000000000000000000000000000")
                .is_empty()
        );
        intel.trusted = vec![NamedList::parse("ours", HASH)];
        assert!(intel.classify_file(HASH).is_empty(), "trusted beats threat");
    }
}
