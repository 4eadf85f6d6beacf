//! Runtime detectors that need more than one event's fields: threat intelligence on the addresses
//! and domains a workload talks to, and the verdicts of a sensor that already judged (Falco).
//! The rule-shaped runtime types are declarative (`rules/runtime.toml`).

use vigil_schemas::{Detection, EnrichedEvent, KeyValue, RuntimeEvent, ThreatMatch};

use crate::Detector;
use crate::context::{Verdict, runtime_detection, severity};
use crate::declarative::{base_name, command_line, runtime_resource};

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
///   their `Trojan:Runtime/...!DNS` types; no category → `UnauthorizedAccess:Runtime/MaliciousIPCaller.Custom`
///   for addresses, `Impact:Runtime/MaliciousDomainRequest.Reputation` for domains); a Tor exit
///   address → `UnauthorizedAccess:Runtime/TorClient`.
/// - Severity: the catalogue's (High for C&C, mining, phishing, DGA, drive-by and Tor; Medium else).
/// - Trigger: a `network_connect` whose remote address, or a `dns_query` (or a connection that
///   names its domain) whose name, is on a list. Trusted addresses never fire.
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
                if event.kind == "dns_query" {
                    "queried"
                } else {
                    "connected to"
                },
                found.list_name,
                found.entry
            ),
            aggregation_key: vec![resource, found.entry.clone()],
        };
        let context = vec![KeyValue {
            key: "threatListName".into(),
            value: found.list_name.clone(),
        }];
        let mut detection =
            runtime_detection(enriched, event, "runtime_threat_intel", verdict, context);
        detection.threat_intel = vec![found.clone()];
        out.push(detection);
    }
}

impl Detector for RuntimeThreatIntel {
    fn name(&self) -> &'static str {
        "runtime_threat_intel"
    }

    fn inspect(&mut self, enriched: &EnrichedEvent, out: &mut Vec<Detection>) {
        let Some(event) = enriched.runtime.as_ref() else {
            return;
        };
        let connects = event.kind == "network_connect";
        if connects && let Some(remote) = enriched.destination_ip.as_ref().filter(|ip| !ip.trusted)
        {
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
            } else if remote.tor_exit {
                let found = ThreatMatch {
                    list_name: "tor_exits".into(),
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
        if (connects || event.kind == "dns_query")
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

    fn inspect(&mut self, enriched: &EnrichedEvent, out: &mut Vec<Detection>) {
        let Some(event) = enriched
            .runtime
            .as_ref()
            .filter(|e| e.kind == "sensor_alert")
        else {
            return;
        };
        let rule = event
            .sensor_rule
            .clone()
            .unwrap_or_else(|| "unnamed".into());
        let tags = event
            .sensor_fields
            .iter()
            .find(|field| field.key == "tags")
            .map_or("", |field| field.value.as_str());
        let output = event
            .sensor_fields
            .iter()
            .find(|field| field.key == "output")
            .map_or(String::new(), |field| field.value.clone());
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
