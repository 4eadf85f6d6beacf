//! The threat-intelligence files the settings name (threat lists, curated feeds, Tor exits, trusted
//! ranges, the ASN database, provider ranges): where each is, what it is for, reading them, and
//! reloading them when they change.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use vigil_enrich::{ListFormat, NamedList, ThreatIntel};

use crate::error::{ReadFile, SettingsError};

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum ListEntry {
    Path(PathBuf),
    Detailed(ListDetails),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListDetails {
    path: PathBuf,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    format: ListFormat,
    /// What the entries are: decides the runtime finding types a match raises.
    #[serde(default)]
    category: Option<ListCategory>,
}

/// What a threat list's entries are (`category = "c2"` in the settings file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListCategory {
    /// Command-and-control servers: `Backdoor:Runtime/C&CActivity.B[!DNS]`.
    C2,
    /// Mining pools: `CryptoCurrency:Runtime/BitcoinTool.B[!DNS]`.
    Mining,
    /// Where malware drops stolen data: `Trojan:Runtime/DropPoint[!DNS]`.
    DropPoint,
    /// Sinkholes: `Trojan:Runtime/BlackholeTraffic[!DNS]`.
    Blackhole,
    /// `Trojan:Runtime/PhishingDomainRequest!DNS`.
    Phishing,
    /// Generated domains: `Trojan:Runtime/DGADomainRequest.C!DNS`.
    Dga,
    /// Drive-by download hosts: `Trojan:Runtime/DriveBySourceTraffic!DNS`.
    DriveBy,
    /// Commonly abused services (free dynamic DNS, tunnels, paste and file-drop sites):
    /// `Impact:Runtime/AbusedDomainRequest.Reputation`.
    Abused,
    /// Anything else malicious: `...MaliciousIPCaller.Custom`, `Impact:Runtime/MaliciousDomainRequest.Reputation`.
    Malware,
}

impl ListCategory {
    pub const fn label(self) -> &'static str {
        match self {
            Self::C2 => "c2",
            Self::Mining => "mining",
            Self::DropPoint => "drop_point",
            Self::Blackhole => "blackhole",
            Self::Phishing => "phishing",
            Self::Dga => "dga",
            Self::DriveBy => "drive_by",
            Self::Abused => "abused",
            Self::Malware => "malware",
        }
    }
}

/// What a list is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListRole {
    Threat,
    Curated,
    TorExits,
    Trusted,
    /// Not a list: the ASN database, watched and reloaded like one.
    Asn,
    /// Not a list: a cloud provider's published ranges, watched and reloaded like one.
    Provider,
    /// Tor relays with their OR ports (a consensus, an Onionoo document or address lines).
    TorRelays,
}

impl ListRole {
    pub const fn label(self) -> &'static str {
        match self {
            Self::Threat => "threat",
            Self::Curated => "curated",
            Self::TorExits => "tor_exits",
            Self::Trusted => "trusted",
            Self::Asn => "asn",
            Self::Provider => "provider",
            Self::TorRelays => "tor_relays",
        }
    }
}

/// A list file and how to read it.
#[derive(Debug, Clone)]
pub struct ListSource {
    pub path: PathBuf,
    pub name: String,
    pub format: ListFormat,
    pub role: ListRole,
    pub category: Option<ListCategory>,
}

pub(crate) fn read(path: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

/// A file's text through `read_file`, its failure naming the file.
pub(crate) fn read_with(read_file: ReadFile<'_>, path: &Path) -> Result<String, SettingsError> {
    read_file(path).map_err(|error| SettingsError::read(path, error))
}

pub(crate) fn resolve(base: Option<&Path>, path: &Path) -> PathBuf {
    match base {
        Some(base) if path.is_relative() => base.join(path),
        _ => path.to_owned(),
    }
}

fn list_name(path: &Path) -> String {
    path.file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("list")
        .to_owned()
}

pub(crate) fn source(base: Option<&Path>, entry: ListEntry, role: ListRole) -> ListSource {
    let (path, name, format, category) = match entry {
        ListEntry::Path(path) => (path, None, ListFormat::Auto, None),
        ListEntry::Detailed(details) => {
            (details.path, details.name, details.format, details.category)
        }
    };
    let path = resolve(base, &path);
    ListSource {
        name: name.unwrap_or_else(|| list_name(&path)),
        path,
        format,
        role,
        category,
    }
}

/// Reads one list file.
pub fn read_list(source: &ListSource, read_file: ReadFile<'_>) -> Result<NamedList, SettingsError> {
    let text = read_with(read_file, &source.path)?;
    Ok(NamedList::parse_as(&source.name, &text, source.format)
        .curated(source.role == ListRole::Curated)
        .category(source.category.map(|category| category.label().to_owned())))
}

/// What is wrong in a list, for the operator.
pub fn list_notes(list: &NamedList, out: &mut Vec<String>) {
    for (line, text) in list.bad_lines.iter().take(5) {
        out.push(format!(
            "list {}: entry {line} is not an IP, CIDR or domain, ignored: {text:?}",
            list.name
        ));
    }
    if list.bad_lines.len() > 5 {
        out.push(format!(
            "list {}: {} more entries ignored",
            list.name,
            list.bad_lines.len() - 5
        ));
    }
}

/// Builds the threat intelligence from list files.
pub fn load_lists(
    sources: &[ListSource],
    notes: &mut Vec<String>,
    read_file: ReadFile<'_>,
) -> Result<ThreatIntel, SettingsError> {
    let mut intel = ThreatIntel::default();
    for source in sources {
        if source.role == ListRole::Asn {
            let database = vigil_enrich::AsnDatabase::parse(&read_with(read_file, &source.path)?);
            for (line, text) in database.bad_lines.iter().take(5) {
                notes.push(format!(
                    "ASN database {}: line {line} is neither GeoLite2-ASN CSV nor iptoasn TSV, ignored: {text:?}",
                    source.path.display()
                ));
            }
            if database.is_empty() {
                return Err(SettingsError::List {
                    path: source.path.clone(),
                    message: "no announced range read: not a GeoLite2-ASN CSV or iptoasn TSV file"
                        .to_owned(),
                });
            }
            intel.asn = Some(std::sync::Arc::new(database));
            continue;
        }
        if source.role == ListRole::Provider {
            let ranges = vigil_enrich::ProviderRanges::parse(&read_with(read_file, &source.path)?)
                .map_err(|error| SettingsError::List {
                    path: source.path.clone(),
                    message: error.to_string(),
                })?;
            if ranges.bad_prefixes > 0 {
                notes.push(format!(
                    "provider ranges {}: {} prefixes are not IP ranges, ignored",
                    source.path.display(),
                    ranges.bad_prefixes
                ));
            }
            intel.providers.push(std::sync::Arc::new(ranges));
            continue;
        }
        if source.role == ListRole::TorRelays {
            let relays = vigil_enrich::TorRelays::parse(&read_with(read_file, &source.path)?);
            for (line, text) in relays.bad_lines.iter().take(5) {
                notes.push(format!(
                    "Tor relay list {}: line {line} is not a relay (consensus r/a line, Onionoo or_addresses, address[:port]), ignored: {text:?}",
                    source.path.display()
                ));
            }
            if relays.is_empty() {
                return Err(SettingsError::List {
                    path: source.path.clone(),
                    message: "no relay read: not a Tor consensus, an Onionoo details document or address lines".to_owned(),
                });
            }
            intel.tor_relays = Some(std::sync::Arc::new(relays));
            continue;
        }
        let list = read_list(source, read_file)?;
        list_notes(&list, notes);
        match source.role {
            ListRole::Threat | ListRole::Curated => intel.threat_lists.push(list),
            ListRole::TorExits => intel.tor_exits = Some(list),
            ListRole::Trusted => intel.trusted.push(list),
            ListRole::Asn | ListRole::Provider | ListRole::TorRelays => {}
        }
    }
    Ok(intel)
}

/// Reloads the threat lists when one of their files changes, at most once per interval, so enrich
/// picks up a new feed without a restart. A file that fails to read keeps the lists as they were.
#[derive(Debug)]
pub struct ListWatcher {
    sources: Vec<ListSource>,
    stamps: Vec<Option<(SystemTime, u64)>>,
    every: Duration,
    last_check: Instant,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

impl ListWatcher {
    pub fn new(sources: Vec<ListSource>, every: Duration) -> Self {
        let stamps = sources.iter().map(|source| stamp(&source.path)).collect();
        Self {
            sources,
            stamps,
            every,
            last_check: Instant::now(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// New threat intelligence if a file changed since the last look (and the interval passed);
    /// an error if it changed but does not read.
    pub fn poll(&mut self) -> Option<Result<(ThreatIntel, Vec<String>), SettingsError>> {
        if self.sources.is_empty() || self.last_check.elapsed() < self.every {
            return None;
        }
        self.last_check = Instant::now();
        self.check()
    }

    /// Looks now, whatever the interval.
    pub fn check(&mut self) -> Option<Result<(ThreatIntel, Vec<String>), SettingsError>> {
        let stamps: Vec<_> = self
            .sources
            .iter()
            .map(|source| stamp(&source.path))
            .collect();
        if stamps == self.stamps {
            return None;
        }
        let mut notes = Vec::new();
        let loaded = load_lists(&self.sources, &mut notes, &read);
        if loaded.is_ok() {
            self.stamps = stamps;
        }
        Some(loaded.map(|intel| (intel, notes)))
    }

    pub fn sources(&self) -> &[ListSource] {
        &self.sources
    }
}
