//! Callers from Tor exits and from addresses on threat lists (curated feeds and your own), typed by
//! the threat purpose of the call.

use vigil_schemas::{Detection, EnrichedEvent};

use crate::Detector;
use crate::detection::{ThreatPurpose, Verdict, detection, severity};
use crate::facts::is_anonymous;

fn purpose_severity(purpose: ThreatPurpose) -> f64 {
    match purpose {
        ThreatPurpose::Discovery | ThreatPurpose::Persistence => severity::MEDIUM,
        _ => severity::HIGH,
    }
}

/// **`<Purpose>:Kubernetes/TorIPCaller`** — High (Discovery, Persistence: Medium).
/// Trigger: an authenticated request from a Tor exit node (anonymous callers surface as
/// SuccessfulAnonymousAccess). Trusted addresses never fire.
/// Key: principal, source IP.
#[derive(Debug, Default)]
pub struct TorIpCaller;

impl Detector for TorIpCaller {
    fn name(&self) -> &'static str {
        "tor_ip_caller"
    }
    fn source(&self) -> crate::Source {
        crate::Source::Audit
    }
    fn inspect_audit(
        &mut self,
        event: &vigil_schemas::AuditEvent,
        enriched: &EnrichedEvent,
        out: &mut Vec<Detection>,
    ) {
        let Some(ip) = enriched.source_ip.as_ref() else {
            return;
        };
        if !ip.tor_exit || ip.trusted || is_anonymous(event) {
            return;
        }
        let purpose = ThreatPurpose::of(event);
        let title = format!("Kubernetes API called from Tor exit node {}.", ip.ip);
        let description = format!(
            "{} called {} {} in cluster {} from {}, a Tor exit node. The caller is hiding where it comes from.",
            event.user.username, event.verb, event.request_uri, enriched.cluster.name, ip.ip
        );
        let verdict = Verdict {
            finding_type: format!("{}:Kubernetes/TorIPCaller", purpose.name()),
            severity: purpose_severity(purpose),
            title,
            description,
            aggregation_key: vec![event.user.username.clone(), ip.ip.clone()],
        };
        out.push(detection(enriched, event, self.name(), verdict));
    }
}

/// **`<Purpose>:Kubernetes/MaliciousIPCaller`** and **`<Purpose>:Kubernetes/MaliciousIPCaller.Custom`**
/// — High (Discovery, Persistence: Medium).
/// Trigger: an authenticated request from an address on a threat list (anonymous callers surface as
/// SuccessfulAnonymousAccess). `MaliciousIPCaller` comes from the curated feeds the operator
/// subscribes to (GuardDuty's own feeds are not public; Vigil takes any list in the formats it reads,
/// marked `curated`), `.Custom` from the user's own threat lists. Trusted addresses never fire.
/// Key: principal, source IP.
#[derive(Debug)]
pub struct MaliciousIpCaller {
    curated: bool,
}

impl MaliciousIpCaller {
    /// `MaliciousIPCaller`, from curated feeds.
    pub const fn curated() -> Self {
        Self { curated: true }
    }
    /// `MaliciousIPCaller.Custom`, from the user's threat lists.
    pub const fn custom() -> Self {
        Self { curated: false }
    }
}

impl Detector for MaliciousIpCaller {
    fn name(&self) -> &'static str {
        if self.curated {
            "malicious_ip_caller"
        } else {
            "malicious_ip_caller_custom"
        }
    }
    fn source(&self) -> crate::Source {
        crate::Source::Audit
    }
    fn inspect_audit(
        &mut self,
        event: &vigil_schemas::AuditEvent,
        enriched: &EnrichedEvent,
        out: &mut Vec<Detection>,
    ) {
        let Some(ip) = enriched.source_ip.as_ref() else {
            return;
        };
        if ip.trusted || is_anonymous(event) {
            return;
        }
        let matches: Vec<_> = ip
            .threat_matches
            .iter()
            .filter(|found| found.curated == self.curated)
            .cloned()
            .collect();
        if matches.is_empty() {
            return;
        }
        let purpose = ThreatPurpose::of(event);
        let lists: Vec<&str> = matches
            .iter()
            .map(|found| found.list_name.as_str())
            .collect();
        let (suffix, kind) = if self.curated {
            ("", "threat intelligence feed")
        } else {
            (".Custom", "custom threat list")
        };
        let mut found = detection(
            enriched,
            event,
            self.name(),
            Verdict {
                finding_type: format!("{}:Kubernetes/MaliciousIPCaller{suffix}", purpose.name()),
                severity: purpose_severity(purpose),
                title: format!(
                    "Kubernetes API called from {}, on threat list {}.",
                    ip.ip,
                    lists.join(", ")
                ),
                description: format!(
                    "{} called {} {} in cluster {} from {}, which is on the {kind} {}.",
                    event.user.username,
                    event.verb,
                    event.request_uri,
                    enriched.cluster.name,
                    ip.ip,
                    lists.join(", ")
                ),
                aggregation_key: vec![event.user.username.clone(), ip.ip.clone()],
            },
        );
        found.threat_intel = matches;
        out.push(found);
    }
}
