//! The settings file (`--config vigil.toml`) and the flags that add to it: clusters, threat
//! intelligence, detection rules and their switches, suppression. Every binary and `vigil scan` take
//! the same settings; each uses its part (enrich the clusters and lists, detect the rules, publish the
//! suppression rules). Paths in the file are relative to the file.
//!
//! ```toml
//! default_cluster = "shop-prod"
//! [[clusters]]
//! name = "shop-prod"
//! account_id = "111122223333"
//! region = "us-east-1"
//!
//! [threat_intel]
//! threat_lists = ["intel/threat-list.txt", { path = "intel/otx.csv", name = "otx", format = "otx-csv" },
//!                 { path = "intel/c2-domains.txt", category = "c2" }]
//! curated_feeds = [{ path = "intel/feed.json", format = "stix" }]
//! tor_exits = "intel/tor-exit-addresses.txt"
//! tor_relays = "intel/tor-consensus"   # optional: relays and OR ports (consensus, Onionoo, lines)
//! trusted = ["intel/office.txt"]
//! asn_database = "intel/GeoLite2-ASN-Blocks-IPv4.csv"
//! provider_ranges = ["intel/ip-ranges.json"]   # AWS ip-ranges.json, Google cloud.json, Azure ServiceTags
//! reload_secs = 60
//!
//! [rules]
//! files = ["rules/ours.toml"]
//! enable = ["load_balancer_service_created"]
//! disable = ["exec_in_pod"]
//!
//! [[suppression]]
//! name = "alice-debugs-shop"
//! [suppression.criterion]
//! "type" = { eq = ["Execution:Kubernetes/ExecInPod"] }
//!
//! [correlation]                 # attack sequences (every field optional; these are the defaults)
//! window_hours = 24
//! resource_link_minutes = 60
//! min_signals = 2
//! min_tactics = 2
//! min_finding_severity = 4.0
//! ```

mod error;
mod lists;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use vigil_detect::{DetectConfig, RuleSource};
use vigil_enrich::ThreatIntel;
use vigil_enrich::cluster::{ClusterConfig, ClusterEntry};
use vigil_publish::format::Format;
use vigil_publish::suppress::{Suppression, SuppressionRule};

pub use error::{ReadFile, SettingsError};
pub use lists::{
    ListCategory, ListRole, ListSource, ListWatcher, list_notes, load_lists, read_list,
};
use lists::{ListEntry, read, read_with, resolve, source};

/// Settings flags shared by every binary and `vigil scan`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SettingsArgs {
    /// The settings file (TOML): clusters, threat lists and feeds, rules and their switches,
    /// suppression rules. Paths in it are relative to it. The flags below add to it.
    #[arg(long, env = "VIGIL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Cluster metadata (TOML: default_cluster, [[clusters]] with name, account_id, region, arn,
    /// vpc_id, tags). Replaces the settings file's clusters.
    #[arg(long, env = "VIGIL_CLUSTER_CONFIG", value_name = "FILE")]
    pub cluster_config: Option<PathBuf>,
    /// A custom threat list (`MaliciousIPCaller.Custom`): plain IPs/CIDRs, a STIX 2.1 bundle or an
    /// AlienVault OTX CSV export, told apart by content. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub threat_list: Vec<PathBuf>,
    /// A curated threat feed (`MaliciousIPCaller`), in the same formats. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub curated_feed: Vec<PathBuf>,
    /// Tor exit addresses: plain addresses or the Tor Project's `exit-addresses` format.
    #[arg(long, env = "VIGIL_TOR_EXITS", value_name = "FILE")]
    pub tor_exits: Option<PathBuf>,
    /// Tor relays and their OR ports (`UnauthorizedAccess:Runtime/TorRelay`, and `TorClient` for
    /// connections to relays): the Tor Project's consensus, an Onionoo details document or
    /// `address[:port]` lines. Replaces the file's.
    #[arg(long, env = "VIGIL_TOR_RELAYS", value_name = "FILE")]
    pub tor_relays: Option<PathBuf>,
    /// Trusted IPs and CIDRs: no IP-based finding is raised for them. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub trusted_ips: Vec<PathBuf>,
    /// An ASN database (MaxMind GeoLite2-ASN CSV or iptoasn.com TSV): public callers' network
    /// origin is then profiled by autonomous system, and findings name it. Replaces the file's.
    #[arg(long, env = "VIGIL_ASN_DATABASE", value_name = "FILE")]
    pub asn_database: Option<PathBuf>,
    /// A cloud provider's published address ranges (AWS `ip-ranges.json`, Google Cloud `cloud.json`,
    /// Azure Service Tags JSON): a system identity calling from them is calling from the provider,
    /// not from an unknown public address. Repeatable; adds to the file's.
    #[arg(long, value_name = "FILE")]
    pub provider_ranges: Vec<PathBuf>,
    /// A file of your own detection rules (see `vigil rules --help`). Repeatable.
    #[arg(long = "rules", value_name = "FILE")]
    pub rule_files: Vec<PathBuf>,
    /// Switch on a detector or rule that ships off (`vigil rules list`). Repeatable.
    #[arg(long, value_name = "NAME")]
    pub enable_rule: Vec<String>,
    /// Switch off a detector or rule. Repeatable.
    #[arg(long, value_name = "NAME")]
    pub disable_rule: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    #[serde(default)]
    default_cluster: Option<String>,
    #[serde(default)]
    clusters: Vec<ClusterEntry>,
    #[serde(default)]
    threat_intel: IntelSection,
    #[serde(default)]
    rules: RulesSection,
    #[serde(default)]
    baselines: BaselinesSection,
    #[serde(default)]
    suppression: Vec<SuppressionRule>,
    #[serde(default)]
    output: OutputSection,
    #[serde(default)]
    correlation: vigil_publish::CorrelationSettings,
}

/// `[output]`: how findings are written (`format = "guardduty"`, the default).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputSection {
    #[serde(default)]
    format: Option<String>,
}

impl OutputSection {
    fn format(&self, file: &str) -> Result<Format, SettingsError> {
        let Some(name) = &self.format else {
            return Ok(Format::default());
        };
        Format::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = Format::ALL.iter().map(|format| format.name()).collect();
            SettingsError::invalid(
                file,
                format!(
                    "[output] format {name:?} is not one of: {}",
                    known.join(", ")
                ),
            )
        })
    }
}

/// `[baselines]`: how the behaviour baselines learn (days of event time) and how many entities they
/// profile. Every key is optional; the defaults are the README's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselinesSection {
    warmup_observations: Option<u64>,
    learning_days: Option<i64>,
    pending_days: Option<i64>,
    pending_sightings: Option<u64>,
    forget_days: Option<i64>,
    unstable_new_values_per_day: Option<u32>,
    top_k: Option<usize>,
    max_principals: Option<usize>,
    max_principals_per_cluster: Option<usize>,
    max_images: Option<usize>,
    max_images_per_cluster: Option<usize>,
}

impl BaselinesSection {
    /// The section over the defaults; a setting that cannot work (no learning period, a cap of
    /// zero, forgetting before learning is over) is refused with its name.
    fn apply(
        self,
        config: &mut vigil_detect::baselines::BaselineConfig,
        caps: &mut vigil_detect::BaselineCaps,
    ) -> Result<(), String> {
        fn positive<T: PartialOrd + Default + Copy>(
            name: &str,
            value: Option<T>,
            into: &mut T,
        ) -> Result<(), String> {
            if let Some(value) = value {
                if value <= T::default() {
                    return Err(format!("[baselines] {name} must be above zero"));
                }
                *into = value;
            }
            Ok(())
        }
        positive(
            "warmup_observations",
            self.warmup_observations,
            &mut config.warmup_observations,
        )?;
        positive(
            "learning_days",
            self.learning_days,
            &mut config.learning_days,
        )?;
        positive("pending_days", self.pending_days, &mut config.pending_days)?;
        positive(
            "pending_sightings",
            self.pending_sightings,
            &mut config.pending_sightings,
        )?;
        positive("forget_days", self.forget_days, &mut config.forget_days)?;
        positive(
            "unstable_new_values_per_day",
            self.unstable_new_values_per_day,
            &mut config.unstable_new_values_per_day,
        )?;
        positive("top_k", self.top_k, &mut config.top_k)?;
        positive("max_principals", self.max_principals, &mut caps.principals)?;
        positive(
            "max_principals_per_cluster",
            self.max_principals_per_cluster,
            &mut caps.principals_per_cluster,
        )?;
        positive("max_images", self.max_images, &mut caps.images)?;
        positive(
            "max_images_per_cluster",
            self.max_images_per_cluster,
            &mut caps.images_per_cluster,
        )?;
        if config.forget_days <= config.learning_days {
            return Err(format!(
                "[baselines] forget_days ({}) must be longer than learning_days ({}): a profile would forget what it is still learning",
                config.forget_days, config.learning_days
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntelSection {
    #[serde(default)]
    threat_lists: Vec<ListEntry>,
    #[serde(default)]
    curated_feeds: Vec<ListEntry>,
    #[serde(default)]
    tor_exits: Option<ListEntry>,
    #[serde(default)]
    tor_relays: Option<PathBuf>,
    #[serde(default)]
    trusted: Vec<ListEntry>,
    #[serde(default)]
    asn_database: Option<PathBuf>,
    #[serde(default)]
    provider_ranges: Vec<PathBuf>,
    #[serde(default)]
    reload_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesSection {
    #[serde(default)]
    files: Vec<PathBuf>,
    #[serde(default)]
    enable: Vec<String>,
    #[serde(default)]
    disable: Vec<String>,
    /// Added to the built-in trusted system images.
    #[serde(default)]
    trusted_system_images: Vec<String>,
    /// Added to the built-in sensitive host paths.
    #[serde(default)]
    sensitive_host_paths: Vec<String>,
    /// Added to the images expected in system namespaces.
    #[serde(default)]
    system_namespace_images: Vec<String>,
    #[serde(default)]
    denied_burst_threshold: Option<usize>,
    #[serde(default)]
    denied_burst_window_secs: Option<i64>,
}

/// Everything the settings say, read and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub clusters: ClusterConfig,
    pub lists: Vec<ListSource>,
    /// How often enrich looks for changed list files.
    pub reload_every: Duration,
    pub detect: DetectConfig,
    pub suppression: Suppression,
    /// The findings' output format, chosen here once for `vigil scan` and the publish stage.
    pub format: Format,
    /// Attack sequences: the correlator's window and thresholds.
    pub correlation: vigil_publish::CorrelationSettings,
    /// Things the operator should hear once at start-up (lists missing, bad lines).
    pub notes: Vec<String>,
}

impl Default for Settings {
    /// No settings file and no flags: the built-in detectors, no lists, no suppression.
    fn default() -> Self {
        Self {
            clusters: ClusterConfig::default(),
            lists: Vec::new(),
            reload_every: Duration::from_secs(60),
            detect: DetectConfig::default(),
            suppression: Suppression::default(),
            format: Format::default(),
            correlation: vigil_publish::CorrelationSettings::default(),
            notes: Vec::new(),
        }
    }
}

impl Settings {
    /// Reads the settings file (if any) and the flags. Errors name the file and what is wrong.
    pub fn load(args: &SettingsArgs) -> Result<Self, SettingsError> {
        match &args.config {
            Some(path) => {
                let text = read_with(&read, path)?;
                Self::from_text(
                    &path.display().to_string(),
                    &text,
                    path.parent(),
                    args,
                    &read,
                )
            }
            None => Self::from_text("settings", "", None, args, &read),
        }
    }

    /// The settings in `text` (named `name` in errors, its paths relative to `base`) and the flags;
    /// rule files are read through `read_file`, so an embedded example needs no files on disk.
    pub fn from_text(
        name: &str,
        text: &str,
        base: Option<&Path>,
        args: &SettingsArgs,
        read_file: ReadFile<'_>,
    ) -> Result<Self, SettingsError> {
        let file: SettingsFile = toml::from_str(text).map_err(|error| {
            let line = error
                .span()
                .and_then(|span| text.get(..span.start))
                .map_or(1, |before| before.matches('\n').count() + 1);
            SettingsError::Syntax {
                file: name.to_owned(),
                line,
                message: error.message().to_owned(),
            }
        })?;
        let config_name = name.to_owned();

        let clusters = match &args.cluster_config {
            Some(path) => ClusterConfig::parse(&read_with(&read, path)?)
                .map_err(|error| SettingsError::invalid(&path.display().to_string(), error))?,
            None => ClusterConfig::new(file.default_cluster, file.clusters)
                .validated()
                .map_err(|error| SettingsError::invalid(&config_name, error))?,
        };

        let intel = file.threat_intel;
        let mut lists = Vec::new();
        for entry in intel.threat_lists {
            lists.push(source(base, entry, ListRole::Threat));
        }
        for path in &args.threat_list {
            lists.push(source(
                None,
                ListEntry::Path(path.clone()),
                ListRole::Threat,
            ));
        }
        for entry in intel.curated_feeds {
            lists.push(source(base, entry, ListRole::Curated));
        }
        for path in &args.curated_feed {
            lists.push(source(
                None,
                ListEntry::Path(path.clone()),
                ListRole::Curated,
            ));
        }
        match (&args.tor_exits, intel.tor_exits) {
            (Some(path), _) => lists.push(source(
                None,
                ListEntry::Path(path.clone()),
                ListRole::TorExits,
            )),
            (None, Some(entry)) => lists.push(source(base, entry, ListRole::TorExits)),
            (None, None) => {}
        }
        for entry in intel.trusted {
            lists.push(source(base, entry, ListRole::Trusted));
        }
        for path in &args.trusted_ips {
            lists.push(source(
                None,
                ListEntry::Path(path.clone()),
                ListRole::Trusted,
            ));
        }
        match (&args.asn_database, intel.asn_database) {
            (Some(path), _) => {
                lists.push(source(None, ListEntry::Path(path.clone()), ListRole::Asn))
            }
            (None, Some(path)) => lists.push(source(base, ListEntry::Path(path), ListRole::Asn)),
            (None, None) => {}
        }
        match (&args.tor_relays, intel.tor_relays) {
            (Some(path), _) => lists.push(source(
                None,
                ListEntry::Path(path.clone()),
                ListRole::TorRelays,
            )),
            (None, Some(path)) => {
                lists.push(source(base, ListEntry::Path(path), ListRole::TorRelays))
            }
            (None, None) => {}
        }
        for path in intel.provider_ranges {
            lists.push(source(base, ListEntry::Path(path), ListRole::Provider));
        }
        for path in &args.provider_ranges {
            lists.push(source(
                None,
                ListEntry::Path(path.clone()),
                ListRole::Provider,
            ));
        }
        let mut notes = Vec::new();
        if !lists
            .iter()
            .any(|list| matches!(list.role, ListRole::Threat | ListRole::Curated))
        {
            notes.push(
                "no threat list or curated feed is configured: MaliciousIPCaller findings stay silent (GuardDuty's own feeds are not public; see README, Threat intelligence)"
                    .into(),
            );
        }
        if !lists.iter().any(|list| list.role == ListRole::TorExits) {
            notes.push(
                "no Tor exit list is configured: TorIPCaller findings stay silent (https://check.torproject.org/exit-addresses)".into(),
            );
        }

        let rules = file.rules;
        let mut rule_files = Vec::new();
        for path in rules
            .files
            .iter()
            .map(|path| resolve(base, path))
            .chain(args.rule_files.iter().cloned())
        {
            rule_files.push(RuleSource {
                name: path.display().to_string(),
                text: read_with(read_file, &path)?,
            });
        }
        let mut detect = DetectConfig {
            rule_files,
            enable: rules.enable,
            disable: rules.disable,
            ..DetectConfig::default()
        };
        detect.enable.extend(args.enable_rule.iter().cloned());
        detect.disable.extend(args.disable_rule.iter().cloned());
        detect
            .trusted_system_images
            .extend(rules.trusted_system_images);
        detect
            .sensitive_host_paths
            .extend(rules.sensitive_host_paths);
        detect
            .system_namespace_images
            .extend(rules.system_namespace_images);
        if let Some(threshold) = rules.denied_burst_threshold {
            detect.denied_burst_threshold = threshold;
        }
        if let Some(window) = rules.denied_burst_window_secs {
            detect.denied_burst_window_secs = window;
        }
        file.baselines
            .apply(&mut detect.baselines, &mut detect.baseline_caps)
            .map_err(|error| SettingsError::invalid(&config_name, error))?;
        // Build once here so that a bad rule file or switch stops start-up with its reason.
        vigil_detect::Engine::build(&detect)?;

        let suppression = Suppression::new(file.suppression)
            .map_err(|error| SettingsError::invalid(&config_name, error))?;
        file.correlation
            .check()
            .map_err(|error| SettingsError::invalid(&config_name, error))?;

        Ok(Self {
            clusters,
            lists,
            reload_every: Duration::from_secs(intel.reload_secs.unwrap_or(60).max(1)),
            detect,
            suppression,
            format: file.output.format(&config_name)?,
            correlation: file.correlation,
            notes,
        })
    }

    /// Reads the lists now.
    pub fn threat_intel(&self, notes: &mut Vec<String>) -> Result<ThreatIntel, SettingsError> {
        load_lists(&self.lists, notes, &read)
    }

    /// Reads the lists through `read_file`.
    pub fn threat_intel_with(
        &self,
        notes: &mut Vec<String>,
        read_file: ReadFile<'_>,
    ) -> Result<ThreatIntel, SettingsError> {
        load_lists(&self.lists, notes, read_file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vigil-settings-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_settings_file_with_every_section_loads_relative_to_itself() {
        let dir = scratch("full");
        std::fs::create_dir_all(dir.join("intel")).unwrap();
        std::fs::write(dir.join("intel/bad.txt"), "203.0.113.0/24\nnope\n").unwrap();
        std::fs::write(
            dir.join("intel/feed.csv"),
            "Indicator type,Indicator,Description\nIPv4,198.51.100.7,x\n",
        )
        .unwrap();
        std::fs::write(dir.join("intel/c2.txt"), "beacon.example\n203.0.113.66\n").unwrap();
        std::fs::write(
            dir.join("intel/tor.txt"),
            "ExitAddress 185.220.101.4 2024-01-01 00:00:00\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("intel/consensus"),
            "network-status-version 3\nr relay AAAA BBBB 2026-12-06 21:00:00 192.0.2.44 9001 0\ns Guard Running\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("ours.toml"),
            "[[rule]]\nid = \"ours\"\ntype = \"Discovery:Kubernetes/Ours\"\nseverity = \"Low\"\ntitle = \"t\"\ndescription = \"d\"\nwhen = [{ field = \"verb\", eq = \"list\" }]\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("vigil.toml"),
            r#"
default_cluster = "prod"
[[clusters]]
name = "prod"
account_id = "111122223333"

[threat_intel]
threat_lists = ["intel/bad.txt", { path = "intel/c2.txt", category = "c2" }]
curated_feeds = [{ path = "intel/feed.csv", name = "otx", format = "otx-csv" }]
tor_exits = "intel/tor.txt"
tor_relays = "intel/consensus"
reload_secs = 5

[rules]
files = ["ours.toml"]
enable = ["load_balancer_service_created"]
disable = ["exec_in_pod"]
trusted_system_images = ["registry.example.com/platform/"]

[[suppression]]
name = "alice"
[suppression.criterion]
"resource.kubernetesDetails.kubernetesUserDetails.username" = { eq = ["alice"] }
"#,
        )
        .unwrap();
        let settings = Settings::load(&SettingsArgs {
            config: Some(dir.join("vigil.toml")),
            ..SettingsArgs::default()
        })
        .unwrap();
        assert_eq!(settings.clusters.default_cluster.as_deref(), Some("prod"));
        assert_eq!(settings.lists.len(), 5);
        assert_eq!(settings.reload_every, Duration::from_secs(5));
        assert_eq!(settings.suppression.len(), 1);
        assert!(settings.notes.is_empty(), "{:?}", settings.notes);
        let engine = vigil_detect::Engine::build(&settings.detect).unwrap();
        let names = engine.detector_names();
        assert!(names.contains(&"ours"));
        assert!(names.contains(&"load_balancer_service_created"));
        assert!(!names.contains(&"exec_in_pod"));
        let mut notes = Vec::new();
        let intel = settings.threat_intel(&mut notes).unwrap();
        assert_eq!(notes.len(), 1, "the bad line: {notes:?}");
        let found = intel.classify("198.51.100.7").unwrap();
        assert!(
            found
                .threat_matches
                .iter()
                .all(|m| m.curated && m.list_name == "otx")
        );
        assert!(intel.classify("185.220.101.4").unwrap().tor_exit);
        assert_eq!(
            intel.classify("192.0.2.44").unwrap().tor_relay_or_ports,
            [9001]
        );
        let c2 = intel.classify_domain("x.beacon.example");
        assert_eq!(c2[0].category.as_deref(), Some("c2"));
        let listed = intel.classify("203.0.113.66").unwrap().threat_matches;
        assert!(
            listed
                .iter()
                .any(|m| m.list_name == "c2" && m.category.as_deref() == Some("c2")),
            "{listed:?}"
        );
    }

    #[test]
    fn mistakes_name_the_file_and_line() {
        let dir = scratch("bad");
        std::fs::write(
            dir.join("vigil.toml"),
            "[rules]\nenable = [\"x\"]\nfiles = 3\n",
        )
        .unwrap();
        let error = Settings::load(&SettingsArgs {
            config: Some(dir.join("vigil.toml")),
            ..SettingsArgs::default()
        })
        .unwrap_err();
        assert!(error.to_string().contains("vigil.toml:3"), "{error}");

        std::fs::write(
            dir.join("vigil.toml"),
            "[rules]\nenable = [\"no_such_rule\"]\n",
        )
        .unwrap();
        let error = Settings::load(&SettingsArgs {
            config: Some(dir.join("vigil.toml")),
            ..SettingsArgs::default()
        })
        .unwrap_err();
        assert!(error.to_string().contains("no_such_rule"), "{error}");

        std::fs::write(
            dir.join("vigil.toml"),
            "[[suppression]]\nname = \"all\"\n[suppression.criterion]\n",
        )
        .unwrap();
        let error = Settings::load(&SettingsArgs {
            config: Some(dir.join("vigil.toml")),
            ..SettingsArgs::default()
        })
        .unwrap_err();
        assert!(error.to_string().contains("no criterion"), "{error}");

        std::fs::write(
            dir.join("vigil.toml"),
            "[threat_intel]\nthreat_lists = [{ path = \"x.txt\", category = \"spam\" }]\n",
        )
        .unwrap();
        let error = Settings::load(&SettingsArgs {
            config: Some(dir.join("vigil.toml")),
            ..SettingsArgs::default()
        })
        .unwrap_err();
        assert!(error.to_string().contains("vigil.toml:2"), "{error}");

        let error = Settings::load(&SettingsArgs {
            threat_list: vec![dir.join("missing.txt")],
            ..SettingsArgs::default()
        })
        .and_then(|settings| settings.threat_intel(&mut Vec::new()).map(|_| ()))
        .unwrap_err();
        assert!(error.to_string().contains("missing.txt"), "{error}");
    }

    #[test]
    fn the_baselines_section_tunes_learning_and_caps_and_refuses_what_cannot_work() {
        let dir = scratch("baselines");
        let path = dir.join("vigil.toml");
        std::fs::write(
            &path,
            "[baselines]\nlearning_days = 3\nforget_days = 60\nmax_principals = 500\nmax_principals_per_cluster = 200\n",
        )
        .unwrap();
        let load = || {
            Settings::load(&SettingsArgs {
                config: Some(path.clone()),
                ..SettingsArgs::default()
            })
        };
        let settings = load().unwrap();
        assert_eq!(settings.detect.baselines.learning_days, 3);
        assert_eq!(settings.detect.baselines.forget_days, 60);
        assert_eq!(settings.detect.baselines.pending_days, 3, "a default kept");
        assert_eq!(settings.detect.baseline_caps.principals, 500);
        assert_eq!(settings.detect.baseline_caps.principals_per_cluster, 200);
        assert_eq!(settings.detect.baseline_caps.images, 20_000);

        std::fs::write(&path, "[baselines]\nmax_images = 0\n").unwrap();
        let error = load().unwrap_err();
        assert!(
            error.to_string().contains("max_images must be above zero"),
            "{error}"
        );
        std::fs::write(&path, "[baselines]\nlearning_days = 40\n").unwrap();
        let error = load().unwrap_err();
        assert!(error.to_string().contains("forget_days (30)"), "{error}");
        std::fs::write(&path, "[baselines]\nlerning_days = 4\n").unwrap();
        let error = load().unwrap_err();
        assert!(error.to_string().contains("vigil.toml:2"), "{error}");
    }

    #[test]
    fn the_output_format_is_chosen_in_the_settings_and_an_unknown_one_refused() {
        let read = |text: &str| {
            Settings::from_text(
                "vigil.toml",
                text,
                None,
                &SettingsArgs::default(),
                &|_: &Path| Err(std::io::Error::other("no files here")),
            )
        };
        assert_eq!(read("").unwrap().format, Format::GuardDuty);
        assert_eq!(
            read("[output]\nformat = \"guardduty\"\n").unwrap().format,
            Format::GuardDuty
        );
        let error = read("[output]\nformat = \"splunk\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("vigil.toml: [output] format \"splunk\" is not one of: guardduty"),
            "{error}"
        );
    }

    #[test]
    fn no_lists_is_said_once_not_refused() {
        let settings = Settings::load(&SettingsArgs::default()).unwrap();
        assert_eq!(settings.notes.len(), 2, "{:?}", settings.notes);
        assert!(settings.lists.is_empty());
    }

    #[test]
    fn a_changed_list_file_is_reloaded_and_a_broken_one_keeps_the_old_lists() {
        let dir = scratch("reload");
        let path = dir.join("list.txt");
        std::fs::write(&path, "203.0.113.7\n").unwrap();
        let source = ListSource {
            path: path.clone(),
            name: "list".into(),
            format: vigil_enrich::ListFormat::Auto,
            role: ListRole::Threat,
            category: None,
        };
        let mut watcher = ListWatcher::new(vec![source], Duration::from_secs(3600));
        assert!(watcher.check().is_none(), "nothing changed");
        // A different length is a change even within the file system's timestamp granularity.
        std::fs::write(&path, "203.0.113.7\n198.51.100.9\n").unwrap();
        let (intel, _) = watcher.check().unwrap().unwrap();
        assert!(
            !intel
                .classify("198.51.100.9")
                .unwrap()
                .threat_matches
                .is_empty()
        );
        assert!(watcher.check().is_none(), "reloaded once");
        assert!(watcher.poll().is_none(), "the interval has not passed");
        std::fs::remove_file(&path).unwrap();
        assert!(watcher.check().unwrap().is_err());
    }

    #[test]
    fn an_asn_database_is_read_relative_to_the_file_reloaded_and_refused_when_unreadable() {
        let dir = scratch("asn");
        std::fs::create_dir_all(dir.join("intel")).unwrap();
        let database = dir.join("intel/asn.csv");
        std::fs::write(
            &database,
            "network,autonomous_system_number,autonomous_system_organization\n203.0.113.0/24,64500,Example Net\n",
        )
        .unwrap();
        let config = dir.join("vigil.toml");
        std::fs::write(
            &config,
            "[threat_intel]\nasn_database = \"intel/asn.csv\"\n",
        )
        .unwrap();
        let args = SettingsArgs {
            config: Some(config),
            ..SettingsArgs::default()
        };
        let settings = Settings::load(&args).unwrap();
        let mut notes = Vec::new();
        let intel = settings.threat_intel(&mut notes).unwrap();
        let caller = intel.classify("203.0.113.9").unwrap();
        assert_eq!(caller.asn, Some(64500));
        assert_eq!(caller.as_organization.as_deref(), Some("Example Net"));
        // Watched like the lists: a new announcement is picked up.
        let mut watcher = ListWatcher::new(settings.lists.clone(), Duration::from_secs(3600));
        std::fs::write(
            &database,
            "203.0.113.0/24,64500,Example Net\n198.51.100.0/24,64501,Other Net\n",
        )
        .unwrap();
        let (intel, _) = watcher.check().unwrap().unwrap();
        assert_eq!(intel.classify("198.51.100.1").unwrap().asn, Some(64501));
        // A file that is no ASN database at all is refused, not silently empty.
        std::fs::write(&database, "this is not a database\n").unwrap();
        let error = watcher.check().unwrap().unwrap_err();
        assert!(error.to_string().contains("no announced range"), "{error}");
    }
}
