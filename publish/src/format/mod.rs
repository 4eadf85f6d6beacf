//! How findings are written out: the seam between the aggregated [`Finding`] record and the documents
//! SIEMs read. GuardDuty's JSON and OCSF's Detection Finding; a format is a module here with a `render` and a variant below.
//! Suppression rules are judged on the GuardDuty view whatever the output format (they are GuardDuty
//! filter criteria over its JSON paths: `crate::suppress`).

pub mod guardduty;
pub mod ocsf;
pub mod sequence;

use serde_json::Value;
use vigil_correlate::Sequence;
use vigil_schemas::{Detection, Finding};

/// An output format, chosen once from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// GuardDuty's finding JSON, schema version 2.0.
    #[default]
    GuardDuty,
    /// OCSF 1.6.0 Detection Finding (class 2004), as Security Hub and Security Lake store findings.
    Ocsf,
}

impl Format {
    /// Every format, for `--help` and the settings' checks.
    pub const ALL: [Self; 2] = [Self::GuardDuty, Self::Ocsf];

    /// The name the settings and flags use: `guardduty`, `ocsf`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::GuardDuty => "guardduty",
            Self::Ocsf => "ocsf",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|format| format.name() == name)
    }

    pub fn render(self, finding: &Finding) -> Value {
        match self {
            Self::GuardDuty => guardduty::render(finding),
            Self::Ocsf => ocsf::render(finding),
        }
    }

    /// An attack sequence, as this format writes `AttackSequence:EKS/CompromisedCluster`.
    pub fn render_sequence(self, sequence: &Sequence) -> Value {
        match self {
            Self::GuardDuty => sequence::render(sequence),
            Self::Ocsf => ocsf::render_sequence(sequence),
        }
    }
}

/// GuardDuty's `featureName` of a finding: runtime monitoring for what a sensor saw on a node, the
/// audit-log feature for API calls, a sensor's alert about an API call (Falco's audit sources,
/// raised as a `Kubernetes` type) among them.
pub(crate) fn feature_name(detection: &Detection) -> &'static str {
    if detection.runtime.is_some() && !detection.finding_type.contains(":Kubernetes/") {
        "RuntimeMonitoring"
    } else {
        "EksAuditLogs"
    }
}
