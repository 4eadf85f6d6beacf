//! An attack sequence: its signals, and what GuardDuty's `service.detection.sequence` shows of them.

use serde::{Deserialize, Serialize};
use vigil_schemas::ClusterDetails;
use vigil_schemas::time::format_rfc3339_millis;

use crate::{Settings, Signal};

/// The stage of an attack a tactic belongs to: 1 getting in (reconnaissance, resource development,
/// initial access, credential access, discovery), 2 taking hold (execution, persistence, privilege
/// escalation, defense evasion, lateral movement), 3 acting (collection, command and control,
/// exfiltration, impact). Credential access is early here, unlike in the ATT&CK matrix: in a
/// cluster, stolen credentials are how an attack starts.
pub fn stage_of(tactic: &str) -> Option<u8> {
    Some(match tactic {
        "TA0043" | "TA0042" | "TA0001" | "TA0006" | "TA0007" => 1,
        "TA0002" | "TA0003" | "TA0004" | "TA0005" | "TA0008" => 2,
        "TA0009" | "TA0011" | "TA0010" | "TA0040" => 3,
        _ => return None,
    })
}

/// Whether a group of linked signals is an attack sequence (see the crate's documentation).
pub(crate) fn qualifies(signals: &[&Signal], settings: &Settings) -> bool {
    signals.len() >= settings.min_signals
        && signals
            .iter()
            .any(|signal| !signal.weak && signal.severity >= settings.min_finding_severity)
        && from_several_events(signals)
        && (ordered_tactics(signals, settings.min_tactics) || api_then_runtime(signals))
}

/// Whether the signals came from more than one event. One API call can raise several findings
/// (an exec that reads a token is an exec and a credential read); that is one step, however many
/// tactics its findings name. A signal that names no event counts as an event of its own.
fn from_several_events(signals: &[&Signal]) -> bool {
    let mut events = signals.iter().flat_map(|signal| {
        if signal.events.is_empty() {
            std::slice::from_ref(&signal.uid)
        } else {
            signal.events.as_slice()
        }
    });
    let Some(first) = events.next() else {
        return false;
    };
    events.any(|event| event != first)
}

fn ordered_tactics(signals: &[&Signal], min_tactics: usize) -> bool {
    let mut tactics: Vec<&str> = signals
        .iter()
        .flat_map(|signal| signal.tactics.iter().map(|(id, _)| id.as_str()))
        .collect();
    tactics.sort_unstable();
    tactics.dedup();
    if tactics.len() < min_tactics {
        return false;
    }
    // An earlier stage's signal that began no later than a later stage's signal ended.
    signals.iter().any(|early| {
        early
            .tactics
            .iter()
            .filter_map(|(id, _)| stage_of(id))
            .any(|from| {
                signals.iter().any(|late| {
                    early.first_seen_micros <= late.last_seen_micros
                        && late
                            .tactics
                            .iter()
                            .filter_map(|(id, _)| stage_of(id))
                            .any(|to| to > from)
                })
            })
    })
}

/// An API call raised a finding as it put a workload in place or entered a pod, and a runtime
/// signal came from that workload or pod later.
fn api_then_runtime(signals: &[&Signal]) -> bool {
    signals.iter().any(|entry| {
        // A weak signal's change (a routine deploy) does not make what follows an attack.
        !entry.weak
            && !entry.entered.is_empty()
            && signals.iter().any(|runtime| {
                runtime.source == "runtime"
                    && runtime.last_seen_micros >= entry.first_seen_micros
                    && runtime
                        .entities
                        .iter()
                        .any(|entity| entry.entered.contains(&entity.key))
            })
    })
}

/// An attack sequence: `AttackSequence:EKS/CompromisedCluster`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sequence {
    /// A digest of the cluster and the earliest signal: the same on every replay.
    pub id: String,
    pub cluster: ClusterDetails,
    /// Oldest first (then by uid); at most `max_signals`.
    pub signals: Vec<Signal>,
    /// Signals beyond `max_signals`, not listed.
    pub signals_left_out: usize,
    /// The earliest signal's first occurrence and the latest signal's last.
    pub created_at_micros: i64,
    pub updated_at_micros: i64,
    pub severity: f64,
    /// Signals it holds (listed or left out past `max_signals`).
    pub count: i64,
    pub description: String,
    /// Set when a link joined this sequence into an earlier one.
    pub merged_into: Option<String>,
    /// How many times the sequence changed after it was first raised: 0 for its first version
    /// (OCSF's Create), more for the versions after (Update).
    #[serde(default)]
    pub revision: u64,
}

impl Sequence {
    /// The sequence of these signals (any order).
    pub(crate) fn build(
        cluster: &ClusterDetails,
        mut signals: Vec<Signal>,
        settings: &Settings,
    ) -> Self {
        signals.sort_by(|a, b| {
            a.first_seen_micros
                .cmp(&b.first_seen_micros)
                .then_with(|| a.uid.cmp(&b.uid))
        });
        let id = signals
            .first()
            .map(|earliest| sequence_id(cluster, &earliest.uid))
            .unwrap_or_default();
        let created_at_micros = signals.first().map_or(0, |signal| signal.first_seen_micros);
        let updated_at_micros = signals
            .iter()
            .map(|signal| signal.last_seen_micros)
            .max()
            .unwrap_or(created_at_micros);
        // The signals it holds (listed or left out): each signal's own count is in its entry, and
        // a sum of them would depend on when each was last seen inside the window.
        let count = i64::try_from(signals.len()).unwrap_or(i64::MAX);
        let mut tactics: Vec<String> = signals
            .iter()
            .flat_map(|signal| signal.tactics.iter().map(|(id, _)| id.clone()))
            .collect();
        tactics.sort_unstable();
        tactics.dedup();
        #[allow(clippy::cast_precision_loss)]
        let severity = (9.0 + 0.1 * tactics.len().saturating_sub(2) as f64).min(10.0);
        // Past GuardDuty's limit, findings before weak signals, each the earliest first.
        let signals_left_out = signals.len().saturating_sub(settings.max_signals);
        if signals_left_out > 0 {
            let mut kept: Vec<Signal> = signals.iter().filter(|s| !s.weak).cloned().collect();
            kept.extend(signals.iter().filter(|s| s.weak).cloned());
            kept.truncate(settings.max_signals);
            kept.sort_by(|a, b| {
                a.first_seen_micros
                    .cmp(&b.first_seen_micros)
                    .then_with(|| a.uid.cmp(&b.uid))
            });
            signals = kept;
        }
        let description = describe(cluster, &signals, &tactics);
        Self {
            id,
            cluster: cluster.clone(),
            signals,
            signals_left_out,
            created_at_micros,
            updated_at_micros,
            severity: (severity * 10.0).round() / 10.0,
            count,
            description,
            merged_into: None,
            revision: 0,
        }
    }

    pub fn arn(&self) -> String {
        self.cluster.finding_arn(&self.id)
    }

    /// The ATT&CK tactics of its signals, in the order the attack reached them.
    pub fn tactics(&self) -> Vec<(String, String)> {
        let mut seen: Vec<(String, String)> = Vec::new();
        for signal in &self.signals {
            for tactic in &signal.tactics {
                if !seen.contains(tactic) {
                    seen.push(tactic.clone());
                }
            }
        }
        seen
    }

    pub fn techniques(&self) -> Vec<(String, String)> {
        let mut seen: Vec<(String, String)> = Vec::new();
        for signal in &self.signals {
            for technique in &signal.techniques {
                if !seen.contains(technique) {
                    seen.push(technique.clone());
                }
            }
        }
        seen
    }
}

/// 32 hex digits of SHA-256 over the type, the cluster and the earliest signal's id, each
/// length-prefixed as finding ids are.
fn sequence_id(cluster: &ClusterDetails, earliest: &str) -> String {
    vigil_schemas::hash::id_digest([crate::SEQUENCE_TYPE, cluster.key(), earliest])
}

/// The story in order, in one paragraph (at most 4,096 characters, GuardDuty's limit).
fn describe(cluster: &ClusterDetails, signals: &[Signal], tactics: &[String]) -> String {
    let table = vigil_schemas::attack::table();
    let tactic_names: Vec<&str> = tactics
        .iter()
        .filter_map(|id| table.tactics.get(id.as_str()).copied())
        .collect();
    let (first, last) = (
        signals.first().map_or(0, |s| s.first_seen_micros),
        signals
            .iter()
            .map(|s| s.last_seen_micros)
            .max()
            .unwrap_or(0),
    );
    let findings = signals.iter().filter(|signal| !signal.weak).count();
    let mut text = format!(
        "A multi-stage attack in cluster {} between {} and {}: {} findings and {} other signals linked by shared actors, resources and endpoints, across {} ({}).",
        cluster.name,
        format_rfc3339_millis(first),
        format_rfc3339_millis(last),
        findings,
        signals.len() - findings,
        if tactic_names.len() == 1 {
            "one tactic".to_owned()
        } else {
            format!("{} tactics", tactic_names.len())
        },
        tactic_names.join(", "),
    );
    for (index, signal) in signals.iter().enumerate() {
        let time = format_rfc3339_millis(signal.first_seen_micros);
        let time = time.get(11..19).unwrap_or(&time);
        let step = format!(
            " {} {time}, {}{}",
            if index == 0 { "First, at" } else { "Then at" },
            signal.title.trim_end_matches('.'),
            if signal.weak {
                " (a weak signal)."
            } else {
                "."
            }
        );
        if text.len() + step.len() > 4_000 {
            text.push_str(&format!(" And {} more.", signals.len() - index));
            break;
        }
        text.push_str(&step);
    }
    text
}
