//! Runtime detectors that need more than one event's fields: threat intelligence on the addresses
//! and domains a workload talks to, and the verdicts of a sensor that already judged (Falco).
//! The rule-shaped runtime types are declarative (`rules/runtime.toml`).

use vigil_schemas::{
    Detection, EnrichedEvent, KeyValue, RuntimeEvent, RuntimeKind, ThreatMatch, UserInfo,
};

use crate::Detector;
use crate::detection::{Verdict, runtime_detection, severity};
use crate::facts::{base_name, command_line, runtime_resource};

/// A finding type per list category, for a connection (IP) and a DNS query (domain).
/// `None`: the category has no type of that kind (a DGA list holds domains).
fn threat_types(category: Option<&str>) -> (Option<&'static str>, &'static str, f64) {
    use severity::{HIGH, MEDIUM};
    match category {
        Some("c2") => (
            Some("Backdoor:Runtime/C&CActivity.B"),
            "Backdoor:Runtime/C&CActivity.B!DNS",
            HIGH,
        ),
        Some("mining") => (
            Some("CryptoCurrency:Runtime/BitcoinTool.B"),
            "CryptoCurrency:Runtime/BitcoinTool.B!DNS",
            HIGH,
        ),
        Some("drop_point") => (
            Some("Trojan:Runtime/DropPoint"),
            "Trojan:Runtime/DropPoint!DNS",
            MEDIUM,
        ),
        Some("blackhole") => (
            Some("Trojan:Runtime/BlackholeTraffic"),
            "Trojan:Runtime/BlackholeTraffic!DNS",
            MEDIUM,
        ),
        Some("phishing") => (None, "Trojan:Runtime/PhishingDomainRequest!DNS", HIGH),
        Some("dga") => (None, "Trojan:Runtime/DGADomainRequest.C!DNS", HIGH),
        Some("drive_by") => (None, "Trojan:Runtime/DriveBySourceTraffic!DNS", HIGH),
        Some("abused") => (
            None,
            "Impact:Runtime/AbusedDomainRequest.Reputation",
            MEDIUM,
        ),
        // A list that says nothing of its entries, or `malware`: GuardDuty's generic reputation types.
        _ => (
            Some("UnauthorizedAccess:Runtime/MaliciousIPCaller.Custom"),
            "Impact:Runtime/MaliciousDomainRequest.Reputation",
            MEDIUM,
        ),
    }
}

/// Connections to and DNS queries for threat-listed addresses and domains, and connections to Tor.
///
/// - Types: by the list's `category` (`c2` → `Backdoor:Runtime/C&CActivity.B` and `.B!DNS`,
///   `mining` → `CryptoCurrency:Runtime/BitcoinTool.B[!DNS]`, `drop_point` → `Trojan:Runtime/DropPoint[!DNS]`,
///   `blackhole` → `Trojan:Runtime/BlackholeTraffic[!DNS]`, `phishing`, `dga`, `drive_by` →
///   their `Trojan:Runtime/...!DNS` types, `abused` → `Impact:Runtime/AbusedDomainRequest.Reputation`
///   (domains only); no category → `UnauthorizedAccess:Runtime/MaliciousIPCaller.Custom`
///   for addresses, `Impact:Runtime/MaliciousDomainRequest.Reputation` for domains); a Tor exit
///   address, or a relay's OR port from the Tor relay list → `UnauthorizedAccess:Runtime/TorClient`;
///   an inbound connection (`network_accept`) from a relay → `UnauthorizedAccess:Runtime/TorRelay`
///   (relays connect to relays: one reaching in means this workload relays); an executed file
///   whose SHA-256 is on a list → `Execution:Runtime/MaliciousFileExecuted` (a curated feed) or
///   `.Custom` (the user's list).
/// - Severity: the catalogue's (High for C&C, mining, phishing, DGA, drive-by and Tor; Medium else).
/// - Trigger: a `network_connect` whose remote address, or a `dns_query` (or a connection that
///   names its domain) whose name, is on a list; an exec (or an exec check) whose file hash the
///   sensor reported and a list holds. Trusted entries never fire.
/// - Aggregation key: workload, list entry.
#[derive(Debug, Default)]
pub struct RuntimeThreatIntel;

impl RuntimeThreatIntel {
    fn raise(
        enriched: &EnrichedEvent,
        event: &RuntimeEvent,
        finding_type: &str,
        severity: f64,
        what: &str,
        found: &ThreatMatch,
        out: &mut Vec<Detection>,
    ) {
        let resource = runtime_resource(enriched);
        let verdict = Verdict {
            finding_type: finding_type.to_owned(),
            severity,
            title: format!(
                "{what} from {resource} is on threat list {}.",
                found.list_name
            ),
            description: format!(
                "{} (`{}`) in {resource} {} {what}, an entry of threat list {} ({}).",
                event.process.binary,
                command_line(&event.process),
                if event.runtime_kind() == Some(RuntimeKind::DnsQuery) {
                    "queried"
                } else {
                    "connected to"
                },
                found.list_name,
                found.entry
            ),
            aggregation_key: vec![resource, found.entry.clone()],
        };
        out.push(Self::listed(enriched, event, verdict, found, Vec::new()));
    }

    /// A detection of a list entry: the list's name in the context (before `context`) and the
    /// match as the finding's threat intelligence.
    fn listed(
        enriched: &EnrichedEvent,
        event: &RuntimeEvent,
        verdict: Verdict,
        found: &ThreatMatch,
        context: Vec<KeyValue>,
    ) -> Detection {
        let context = std::iter::once(KeyValue {
            key: "threatListName".into(),
            value: found.list_name.clone(),
        })
        .chain(context)
        .collect();
        let mut detection =
            runtime_detection(enriched, event, "runtime_threat_intel", verdict, context);
        detection.threat_intel = vec![found.clone()];
        detection
    }
}

/// An exec, or a hook that checks one (Tetragon's LSM `bprm_check_security` and its kin, whose
/// IMA hash is the executed file's).
fn executes(event: &RuntimeEvent) -> bool {
    event.runtime_kind() == Some(RuntimeKind::ProcessExec)
        || event
            .sensor_rule
            .as_deref()
            .is_some_and(|hook| hook.contains("bprm_"))
}

impl RuntimeThreatIntel {
    /// `Execution:Runtime/MaliciousFileExecuted` (a curated feed's hash) or `.Custom` (the user's).
    fn malicious_file(
        enriched: &EnrichedEvent,
        event: &RuntimeEvent,
        hash: &str,
        found: &ThreatMatch,
        out: &mut Vec<Detection>,
    ) {
        let resource = runtime_resource(enriched);
        let file = event
            .file_path
            .as_deref()
            .filter(|_| event.runtime_kind() != Some(RuntimeKind::ProcessExec))
            .unwrap_or(&event.process.binary);
        let finding_type = if found.curated {
            "Execution:Runtime/MaliciousFileExecuted"
        } else {
            "Execution:Runtime/MaliciousFileExecuted.Custom"
        };
        let verdict = Verdict {
            finding_type: finding_type.to_owned(),
            severity: severity::HIGH,
            title: format!("A known malicious file {file} was executed in {resource}."),
            description: format!(
                "{file} (SHA-256 {hash}) was executed in {resource}, and its hash is on threat \
                 list {}.",
                found.list_name
            ),
            aggregation_key: vec![resource, hash.to_owned()],
        };
        let context = vec![
            KeyValue {
                key: "executablePath".into(),
                value: file.to_owned(),
            },
            KeyValue {
                key: "executableSha256".into(),
                value: hash.to_owned(),
            },
        ];
        out.push(Self::listed(enriched, event, verdict, found, context));
    }
}

impl Detector for RuntimeThreatIntel {
    fn name(&self) -> &'static str {
        "runtime_threat_intel"
    }

    fn source(&self) -> crate::Source {
        crate::Source::Runtime
    }
    fn inspect_runtime(
        &mut self,
        event: &RuntimeEvent,
        enriched: &EnrichedEvent,
        out: &mut Vec<Detection>,
    ) {
        if let (Some(hash), Some(found)) = (&event.file_sha256, enriched.file_matches.first())
            && executes(event)
        {
            Self::malicious_file(enriched, event, hash, found, out);
        }
        let connects = event.runtime_kind() == Some(RuntimeKind::NetworkConnect);
        let accepts = event.runtime_kind() == Some(RuntimeKind::NetworkAccept);
        if accepts
            && let Some(remote) = enriched
                .destination_ip
                .as_ref()
                .filter(|ip| ip.tor_relay && !ip.trusted)
        {
            // Tor relays connect to other relays' OR ports: a relay reaching in means this
            // workload (or node) is one of them.
            let found = ThreatMatch {
                list_name: "tor_relays".into(),
                entry: remote.ip.clone(),
                ..ThreatMatch::default()
            };
            Self::raise(
                enriched,
                event,
                "UnauthorizedAccess:Runtime/TorRelay",
                severity::HIGH,
                &remote.ip,
                &found,
                out,
            );
        }
        if connects && let Some(remote) = enriched.destination_ip.as_ref().filter(|ip| !ip.trusted)
        {
            let port = event
                .network
                .as_ref()
                .and_then(|network| network.destination_port);
            // A relay's OR port (any port, when the list does not give them): where a Tor client
            // enters the network (its guard) or fetches the directory.
            let to_relay = remote.tor_relay
                && (remote.tor_relay_or_ports.is_empty()
                    || port.is_some_and(|port| remote.tor_relay_or_ports.contains(&port)));
            if let Some(found) = remote.threat_matches.first() {
                let (ip_type, _, severity) = threat_types(found.category.as_deref());
                if let Some(finding_type) = ip_type {
                    Self::raise(
                        enriched,
                        event,
                        finding_type,
                        severity,
                        &remote.ip,
                        found,
                        out,
                    );
                }
            } else if remote.tor_exit || to_relay {
                let found = ThreatMatch {
                    list_name: if remote.tor_exit {
                        "tor_exits"
                    } else {
                        "tor_relays"
                    }
                    .into(),
                    entry: remote.ip.clone(),
                    ..ThreatMatch::default()
                };
                Self::raise(
                    enriched,
                    event,
                    "UnauthorizedAccess:Runtime/TorClient",
                    severity::HIGH,
                    &remote.ip,
                    &found,
                    out,
                );
            }
        }
        let domain = event.dns_query.as_deref().or_else(|| {
            event
                .network
                .as_ref()
                .and_then(|network| network.destination_domain.as_deref())
        });
        if (connects || event.runtime_kind() == Some(RuntimeKind::DnsQuery))
            && let (Some(domain), Some(found)) = (domain, enriched.domain_matches.first())
        {
            let (_, dns_type, severity) = threat_types(found.category.as_deref());
            Self::raise(enriched, event, dns_type, severity, domain, found, out);
        }
    }
}

/// A runtime sensor's own alert (Falco's rules), passed on as a finding so that alerts land beside
/// GuardDuty-style findings, aggregated and suppressible the same way.
///
/// - Type: `<Purpose>:Runtime/SensorAlert`, the purpose from the alert's MITRE tags
///   (`mitre_execution` → Execution, `mitre_privilege_escalation` → PrivilegeEscalation, ...;
///   Execution when it has none).
/// - Severity: from the sensor's priority: Emergency, Alert, Critical → High (8); Error, Warning →
///   Medium (5); Notice and below → Low (2).
/// - Trigger: every `sensor_alert` event.
/// - Aggregation key: sensor rule, workload, executable.
/// - An alert of Falco's Kubernetes audit sources (the k8saudit plugins) is about an API call:
///   `<Purpose>:Kubernetes/SensorAlert`, keyed on rule, user and object, with the user's details.
#[derive(Debug, Default)]
pub struct SensorAlert;

fn purpose_of(tags: &str) -> &'static str {
    for tag in tags.split(',') {
        let purpose = match tag.trim().to_ascii_lowercase().as_str() {
            "mitre_execution" => "Execution",
            "mitre_persistence" => "Persistence",
            "mitre_privilege_escalation" => "PrivilegeEscalation",
            "mitre_defense_evasion" => "DefenseEvasion",
            "mitre_credential_access" => "CredentialAccess",
            "mitre_discovery" => "Discovery",
            "mitre_lateral_movement" => "LateralMovement",
            "mitre_collection" => "Collection",
            "mitre_command_and_control" => "Backdoor",
            "mitre_exfiltration" => "Exfiltration",
            "mitre_impact" => "Impact",
            "mitre_initial_access" => "InitialAccess",
            _ => continue,
        };
        return purpose;
    }
    "Execution"
}

fn priority_severity(priority: Option<&str>) -> f64 {
    match priority.map(str::to_ascii_lowercase).as_deref() {
        Some("emergency" | "alert" | "critical") => severity::HIGH,
        Some("error" | "warning") => severity::MEDIUM,
        _ => severity::LOW,
    }
}

impl Detector for SensorAlert {
    fn name(&self) -> &'static str {
        "sensor_alert"
    }

    fn source(&self) -> crate::Source {
        crate::Source::Runtime
    }

    fn inspect_runtime(
        &mut self,
        event: &RuntimeEvent,
        enriched: &EnrichedEvent,
        out: &mut Vec<Detection>,
    ) {
        if event.runtime_kind() != Some(RuntimeKind::SensorAlert) {
            return;
        }
        let rule = event
            .sensor_rule
            .clone()
            .unwrap_or_else(|| "unnamed".into());
        let tags = sensor_field(event, "tags").unwrap_or_default();
        let output = sensor_field(event, "output").unwrap_or_default().to_owned();
        if sensor_field(event, "source").is_some_and(vigil_schemas::is_kubernetes_audit_source) {
            self.api_call_alert(event, enriched, &rule, tags, output, out);
            return;
        }
        let resource = runtime_resource(enriched);
        let verdict = Verdict {
            finding_type: format!("{}:Runtime/SensorAlert", purpose_of(tags)),
            severity: priority_severity(event.sensor_priority.as_deref()),
            title: format!("{} alert \"{rule}\" in {resource}.", event.sensor),
            description: if output.is_empty() {
                format!(
                    "{} rule \"{rule}\" fired for {} in {resource}.",
                    event.sensor,
                    base_name(&event.process.binary)
                )
            } else {
                output
            },
            aggregation_key: vec![rule.clone(), resource, event.process.binary.clone()],
        };
        let context = vec![KeyValue {
            key: "sensorRule".into(),
            value: rule,
        }];
        out.push(runtime_detection(
            enriched,
            event,
            self.name(),
            verdict,
            context,
        ));
    }
}

/// One of the fields a sensor's alert carried (its output fields, `tags`, `source`, `output`).
fn sensor_field<'a>(event: &'a RuntimeEvent, key: &str) -> Option<&'a str> {
    event
        .sensor_fields
        .iter()
        .find(|field| field.key == key)
        .map(|field| field.value.as_str())
}

impl SensorAlert {
    /// An alert of Falco's Kubernetes audit sources: about an API call by a user on an object,
    /// so a `Kubernetes` type keyed on rule, user and object, with the user's details.
    fn api_call_alert(
        &self,
        event: &RuntimeEvent,
        enriched: &EnrichedEvent,
        rule: &str,
        tags: &str,
        output: String,
        out: &mut Vec<Detection>,
    ) {
        let field = |key: &str| sensor_field(event, key).map(str::to_owned);
        let user = field("ka.user.name").unwrap_or_else(|| "unknown".into());
        let target = [
            field("ka.target.resource"),
            field("ka.target.namespace"),
            field("ka.target.name"),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("/");
        let verdict = Verdict {
            finding_type: format!("{}:Kubernetes/SensorAlert", purpose_of(tags)),
            severity: priority_severity(event.sensor_priority.as_deref()),
            title: format!(
                "{} alert \"{rule}\" on the Kubernetes API by {user}.",
                event.sensor
            ),
            description: if output.is_empty() {
                format!(
                    "{} rule \"{rule}\" fired for a call by {user} on {target} in cluster {}.",
                    event.sensor, enriched.cluster.name
                )
            } else {
                output
            },
            aggregation_key: vec![rule.to_owned(), user.clone(), target],
        };
        let context = vec![KeyValue {
            key: "sensorRule".into(),
            value: rule.to_owned(),
        }];
        let mut detection = runtime_detection(enriched, event, self.name(), verdict, context);
        detection.user = Some(UserInfo {
            username: user,
            groups: field("ka.user.groups")
                .map(|groups| {
                    groups
                        .trim_matches(|c| c == '(' || c == ')' || c == '[' || c == ']')
                        .split([',', ' '])
                        .map(|group| group.trim_matches('"').to_owned())
                        .filter(|group| !group.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            ..UserInfo::default()
        });
        out.push(detection);
    }
}

/// Suffixes under which machine-made names are normal: cloud endpoints, cluster DNS, CDNs.
const ORDINARY_SUFFIXES: [&str; 16] = [
    ".amazonaws.com",
    ".amazonaws.com.cn",
    ".aws",
    ".cluster.local",
    ".svc",
    ".internal",
    ".local",
    ".cloudfront.net",
    ".akamaiedge.net",
    ".akamaized.net",
    ".googleapis.com",
    ".gvt1.com",
    ".azure.com",
    ".windows.net",
    ".fastly.net",
    ".cloudflare.net",
];

/// Shannon entropy of a label, in bits per character.
fn entropy(label: &str) -> f64 {
    let mut counts = [0u32; 128];
    let mut total = 0u32;
    for byte in label.bytes().filter(u8::is_ascii) {
        if let Some(slot) = counts.get_mut(usize::from(byte)) {
            *slot += 1;
            total += 1;
        }
    }
    if total == 0 {
        return 0.0;
    }
    let total = f64::from(total);
    counts
        .iter()
        .filter(|count| **count > 0)
        .map(|count| {
            let p = f64::from(*count) / total;
            -p * p.log2()
        })
        .sum()
}

/// The label of `name` that looks machine-generated, if one does: long, high-entropy, few vowels
/// for its length (a generated `xjw3k9qzt2vbn4` rather than a word-made `checkout-service`).
pub fn generated_label(name: &str) -> Option<&str> {
    let name = name.trim_end_matches('.');
    let lower = name.to_ascii_lowercase();
    if ORDINARY_SUFFIXES
        .iter()
        .any(|suffix| lower.ends_with(suffix))
    {
        return None;
    }
    // The top-level domain says nothing; every other label is a candidate.
    let labels: Vec<&str> = name.split('.').collect();
    let (_, candidates) = labels.split_last()?;
    candidates.iter().copied().find(|label| {
        let letters = label.chars().filter(char::is_ascii_alphabetic).count();
        let vowels = label.chars().filter(|c| "aeiouAEIOU".contains(*c)).count();
        let digits = label.chars().filter(char::is_ascii_digit).count();
        label.len() >= 12
            && !label.contains('-')
            && entropy(label) >= 3.3
            && letters > 0
            && (vowels * 100 / letters.max(1) < 25 || (digits >= 2 && digits * 4 < label.len()))
    })
}

/// DNS queries for names that look machine-generated, the way domain-generation algorithms make them.
///
/// - Type: `Impact:Runtime/SuspiciousDomainRequest.Reputation` (GuardDuty's type for young or rare
///   low-reputation domains resembling malicious ones; Vigil has no reputation feed, so it judges
///   the name: a label of at least 12 characters, no hyphen, entropy of 3.3 bits a character or
///   more, and under a quarter vowels or a sprinkling of digits). Cloud, cluster and CDN names,
///   which are machine-made by design, are left out.
/// - Severity: Low, as GuardDuty's.
/// - Trigger: a `dns_query` (or a connection naming its domain) whose name has such a label.
/// - Aggregation key: workload, the queried name's registrable part (the last two labels).
#[derive(Debug, Default)]
pub struct GeneratedDomainRequest;

impl Detector for GeneratedDomainRequest {
    fn name(&self) -> &'static str {
        "generated_domain_request"
    }

    fn source(&self) -> crate::Source {
        crate::Source::Runtime
    }
    fn inspect_runtime(
        &mut self,
        event: &RuntimeEvent,
        enriched: &EnrichedEvent,
        out: &mut Vec<Detection>,
    ) {
        let Some(domain) = event.dns_query.as_deref() else {
            return;
        };
        let Some(label) = generated_label(domain) else {
            return;
        };
        let resource = runtime_resource(enriched);
        let registrable: Vec<&str> = domain
            .trim_end_matches('.')
            .rsplitn(3, '.')
            .take(2)
            .collect();
        let registrable = registrable.into_iter().rev().collect::<Vec<_>>().join(".");
        let verdict = Verdict {
            finding_type: "Impact:Runtime/SuspiciousDomainRequest.Reputation".into(),
            severity: severity::LOW,
            title: format!("Generated-looking domain {domain} queried from {resource}."),
            description: format!(
                "{} in {resource} looked up {domain}, whose label {label:?} looks machine-generated (long, random, few vowels), as domain-generation algorithms make them.",
                event.process.binary
            ),
            aggregation_key: vec![resource, registrable],
        };
        let context = vec![KeyValue {
            key: "domain".into(),
            value: domain.to_owned(),
        }];
        out.push(runtime_detection(
            enriched,
            event,
            self.name(),
            verdict,
            context,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::generated_label;

    #[test]
    fn generated_labels_and_ordinary_names() {
        assert_eq!(
            generated_label("raiz3gjkgtfhkkc.not-reverse-shell.com"),
            Some("raiz3gjkgtfhkkc")
        );
        assert!(generated_label("xjw3k9qztvbnplk.info").is_some());
        for ordinary in [
            "api.stripe.com",
            "ledger-db.cluster-c9x2k1.us-east-1.rds.amazonaws.com",
            "d3k9x2v8q1zpl7.cloudfront.net",
            "checkout-service.shop.svc.cluster.local",
            "www.google.com",
            "documentation.example.org",
            "internationalization.example",
        ] {
            assert_eq!(generated_label(ordinary), None, "{ordinary}");
        }
    }
}
