//! Correlation: the findings and weak signals of one cluster linked into attack sequences, as
//! GuardDuty's Extended Threat Detection raises `AttackSequence:EKS/CompromisedCluster`. Free of I/O:
//! publish feeds it every finding that is not archived and every weak signal, in `vigil scan` and in
//! the Kafka service alike, and writes out what it returns.
//!
//! How a sequence forms (every number is a [`Settings`] field, `[correlation]` in the settings file):
//!
//! 1. **Window.** Per cluster, signals whose last occurrence is within `window_hours` (24) of the
//!    latest event time seen are kept; older ones leave the window (a sequence already raised keeps
//!    them).
//! 2. **Links.** Two signals are linked when they name the same actor (a principal, a ServiceAccount,
//!    a process), endpoint (a public address, a domain) or, within `resource_link_minutes` (60) of
//!    each other, the same resource (a workload, a pod, a container; a node only for signals about
//!    the node itself). A weak signal (one hour's occurrences) links only by actor or endpoint,
//!    within `resource_link_minutes`. A group is what links reach.
//! 3. **Qualifying.** A group becomes a sequence when it has at least `min_signals` (2) signals
//!    raised by more than one event (the findings of one API call are one step), at least one of
//!    them a finding at `min_finding_severity` (4.0, Medium) or above, and either
//!    - it spans `min_tactics` (2) ATT&CK tactics in a plausible order: a signal of an earlier stage
//!      (reconnaissance, initial access, credential access, discovery) no later than one of a later
//!      stage (execution, persistence, privilege escalation, defense evasion, lateral movement; then
//!      collection, command and control, exfiltration, impact), or
//!    - an API call put a workload in place or entered a pod (create, patch, exec, attach) and a
//!      runtime signal came from that workload or pod afterwards.
//! 4. **Identity.** A sequence's id is a digest of the cluster and its earliest signal, so a replay
//!    or a restart updates the same sequence. When a new link joins two sequences, the one whose
//!    earliest signal is earlier takes the other's signals; the other is published once more,
//!    archived, saying which sequence it merged into.
//! 5. **Severity.** Critical: 9.0, plus 0.1 for each tactic past the second, at most 10.

mod chain;
mod sequence;
mod signal;

pub use chain::{CHAIN_RULES, ChainMatch, ChainRule};
pub use sequence::{Sequence, stage_of};
pub use signal::{Entity, Indicator, LinkKind, Signal};

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use vigil_schemas::Finding;

/// The finding type of an attack sequence.
pub const SEQUENCE_TYPE: &str = "AttackSequence:EKS/CompromisedCluster";

/// The correlator's thresholds (`[correlation]` in the settings file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Off: no sequence is raised, no chain rule fires and no weak signal is kept.
    pub enabled: bool,
    /// The chain rules ([`CHAIN_RULES`]): findings of two linked steps in order.
    pub chain_rules: bool,
    /// The rolling window of event time, per cluster.
    pub window_hours: i64,
    /// How close in time two signals must be for a shared workload, pod or container to link them.
    pub resource_link_minutes: i64,
    pub min_signals: usize,
    pub min_tactics: usize,
    /// At least one finding (not a weak signal) at this severity or above.
    pub min_finding_severity: f64,
    /// GuardDuty's limit: a sequence lists at most 100 signals (findings first, then the earliest).
    pub max_signals: usize,
    /// Signals kept per cluster; past it the least recent leave the window early (bounded memory).
    pub max_window_signals: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            chain_rules: true,
            window_hours: 24,
            resource_link_minutes: 60,
            min_signals: 2,
            min_tactics: 2,
            min_finding_severity: 4.0,
            max_signals: 100,
            max_window_signals: 20_000,
        }
    }
}

impl Settings {
    /// What is wrong with these thresholds, if anything.
    pub fn check(&self) -> Result<(), String> {
        if self.window_hours < 1 {
            return Err("correlation.window_hours must be at least 1".into());
        }
        if self.resource_link_minutes < 0 {
            return Err("correlation.resource_link_minutes must not be negative".into());
        }
        if self.min_signals < 2 {
            return Err(
                "correlation.min_signals must be at least 2: a sequence links signals".into(),
            );
        }
        if !(1..=100).contains(&self.max_signals) {
            return Err("correlation.max_signals must be 1 to 100 (GuardDuty's limit)".into());
        }
        if self.max_window_signals < self.max_signals {
            return Err("correlation.max_window_signals must be at least max_signals".into());
        }
        Ok(())
    }
}

/// What one observation changed, by id: the caller publishes and saves them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Changes {
    /// Sequences raised or grown (ids).
    pub sequences: Vec<String>,
    /// Sequences merged into another: published once more, archived, then forgotten.
    pub merged: Vec<Sequence>,
    /// Findings that joined a sequence (or moved to another): (finding id, the sequence's ARN).
    pub associations: Vec<(String, String)>,
    /// Chain rules that matched: the caller raises their findings ([`ChainMatch::detection`]).
    pub chained: Vec<ChainMatch>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.sequences.is_empty()
            && self.merged.is_empty()
            && self.associations.is_empty()
            && self.chained.is_empty()
    }
}

/// One cluster's window of signals and its sequences.
#[derive(Debug, Default)]
struct ClusterWindow {
    signals: HashMap<String, Signal>,
    /// Link key → the signals that name it.
    index: HashMap<String, BTreeSet<String>>,
    /// (last seen, uid): the order signals leave the window in.
    by_time: BTreeSet<(i64, String)>,
    /// The latest event time seen in this cluster.
    watermark: i64,
    sequences: BTreeMap<String, Sequence>,
    /// Signal uid → the sequence it is in.
    member_of: HashMap<String, String>,
}

/// The correlator: a window of signals per cluster.
#[derive(Debug, Default)]
pub struct Correlator {
    settings: Settings,
    clusters: HashMap<String, ClusterWindow>,
}

impl Correlator {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            clusters: HashMap::new(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A sequence by id.
    pub fn sequence(&self, cluster_key: &str, id: &str) -> Option<&Sequence> {
        self.clusters.get(cluster_key)?.sequences.get(id)
    }

    /// Every sequence, oldest first.
    pub fn sequences(&self) -> Vec<&Sequence> {
        let mut all: Vec<&Sequence> = self
            .clusters
            .values()
            .flat_map(|window| window.sequences.values())
            .collect();
        all.sort_by(|a, b| {
            a.created_at_micros
                .cmp(&b.created_at_micros)
                .then_with(|| a.id.cmp(&b.id))
        });
        all
    }

    /// Signals in the windows now (for metrics).
    pub fn window_len(&self) -> usize {
        self.clusters
            .values()
            .map(|window| window.signals.len())
            .sum()
    }

    /// Forgets a cluster's window and sequences (its partition went to another instance).
    pub fn forget_cluster(&mut self, cluster_key: &str) {
        self.clusters.remove(cluster_key);
    }

    /// Puts back a finding or weak signal from saved state (a restart), without raising anything:
    /// the sequences it took part in are restored beside it.
    pub fn restore_signal(&mut self, finding: &Finding) {
        if !self.settings.enabled || finding.archived {
            return;
        }
        let signal = Signal::of(finding);
        let window = self
            .clusters
            .entry(finding.detection.cluster.key().to_owned())
            .or_default();
        window.insert(signal);
    }

    /// Puts back a saved sequence.
    pub fn restore_sequence(&mut self, sequence: Sequence) {
        if sequence.merged_into.is_some() {
            return;
        }
        let window = self
            .clusters
            .entry(sequence.cluster.key().to_owned())
            .or_default();
        for signal in &sequence.signals {
            window
                .member_of
                .insert(signal.uid.clone(), sequence.id.clone());
        }
        window.sequences.insert(sequence.id.clone(), sequence);
    }

    /// Folds a finding (or weak signal) as it now stands into its cluster's window; returns what
    /// changed. An archived finding is not a signal, and leaves the window if it was in it.
    pub fn observe(&mut self, finding: &Finding) -> Changes {
        let mut changes = Changes::default();
        if !self.settings.enabled {
            return changes;
        }
        let cluster = &finding.detection.cluster;
        let window = self.clusters.entry(cluster.key().to_owned()).or_default();
        if finding.archived {
            window.remove(&finding.id);
            return changes;
        }
        let signal = Signal::of(finding);
        let uid = signal.uid.clone();
        window.watermark = window.watermark.max(signal.last_seen_micros);
        window.insert(signal);
        window.evict(&self.settings);
        if !window.signals.contains_key(&uid) {
            return changes; // already outside the window (a late occurrence)
        }
        if self.settings.chain_rules {
            changes.chained = window.chains(&uid, self.settings.window_hours * 60);
        }
        let group = window.group(&uid, &self.settings);
        let members: Vec<&Signal> = group
            .iter()
            .filter_map(|uid| window.signals.get(uid))
            .collect();
        let touched: BTreeSet<String> = group
            .iter()
            .filter_map(|uid| window.member_of.get(uid).cloned())
            .collect();
        if touched.is_empty() && !sequence::qualifies(&members, &self.settings) {
            return changes;
        }
        // The sequence's signals: the group now, and what the sequences it touches held (signals
        // that have left the window stay in them).
        let mut signals: BTreeMap<String, Signal> = BTreeMap::new();
        for id in &touched {
            if let Some(existing) = window.sequences.get(id) {
                for signal in &existing.signals {
                    signals.insert(signal.uid.clone(), signal.clone());
                }
            }
        }
        for signal in members {
            signals.insert(signal.uid.clone(), signal.clone());
        }
        let sequence = Sequence::build(cluster, signals.into_values().collect(), &self.settings);
        for id in &touched {
            if *id != sequence.id
                && let Some(mut merged) = window.sequences.remove(id)
            {
                merged.merged_into = Some(sequence.id.clone());
                changes.merged.push(merged);
            }
        }
        let arn = sequence.arn();
        for signal in &sequence.signals {
            let previous = window
                .member_of
                .insert(signal.uid.clone(), sequence.id.clone());
            if previous.as_deref() != Some(sequence.id.as_str()) && !signal.weak {
                changes.associations.push((signal.uid.clone(), arn.clone()));
            }
        }
        let mut sequence = sequence;
        let previous = window.sequences.get(&sequence.id);
        sequence.revision = previous.map_or(0, |previous| previous.revision);
        let changed = previous != Some(&sequence);
        if changed {
            sequence.revision += u64::from(previous.is_some());
            changes.sequences.push(sequence.id.clone());
            window.sequences.insert(sequence.id.clone(), sequence);
        }
        changes
    }
}

impl ClusterWindow {
    fn insert(&mut self, signal: Signal) {
        self.remove(&signal.uid);
        for (key, _) in signal.links() {
            self.index
                .entry(key.to_owned())
                .or_default()
                .insert(signal.uid.clone());
        }
        self.watermark = self.watermark.max(signal.last_seen_micros);
        self.by_time
            .insert((signal.last_seen_micros, signal.uid.clone()));
        self.signals.insert(signal.uid.clone(), signal);
    }

    fn remove(&mut self, uid: &str) {
        let Some(old) = self.signals.remove(uid) else {
            return;
        };
        self.by_time
            .remove(&(old.last_seen_micros, old.uid.clone()));
        for (key, _) in old.links() {
            if let Some(uids) = self.index.get_mut(key) {
                uids.remove(uid);
                if uids.is_empty() {
                    self.index.remove(key);
                }
            }
        }
    }

    /// Signals leave the window when their last occurrence is older than the window, or when the
    /// window holds more than its bound (the least recent first).
    fn evict(&mut self, settings: &Settings) {
        let oldest_kept = self
            .watermark
            .saturating_sub(settings.window_hours.saturating_mul(3_600_000_000));
        while let Some((last_seen, uid)) = self.by_time.first().cloned() {
            if last_seen >= oldest_kept && self.signals.len() <= settings.max_window_signals {
                break;
            }
            self.remove(&uid);
            // A signal out of the window no longer moves its sequence; the sequence keeps it.
            self.member_of.remove(&uid);
        }
    }

    /// The chain rules `uid` completes with a signal in the window, as either step.
    fn chains(&self, uid: &str, window_minutes: i64) -> Vec<ChainMatch> {
        let Some(signal) = self.signals.get(uid) else {
            return Vec::new();
        };
        let mut found: Vec<ChainMatch> = Vec::new();
        for rule in &CHAIN_RULES {
            for key in rule.step_keys(signal) {
                let Some(others) = self.index.get(&key) else {
                    continue;
                };
                for other in others.iter().filter_map(|other| self.signals.get(other)) {
                    for (first, then) in [(other, signal), (signal, other)] {
                        if let Some(key) = rule.matches(first, then, window_minutes) {
                            found.push(ChainMatch {
                                rule,
                                key,
                                first: first.clone(),
                                then: then.clone(),
                            });
                        }
                    }
                }
            }
        }
        // Of the pairs of one rule and key, the first by uids: the same whichever came last.
        found.sort_by(|a, b| {
            a.event_id()
                .cmp(&b.event_id())
                .then_with(|| a.first.uid.cmp(&b.first.uid))
                .then_with(|| a.then.uid.cmp(&b.then.uid))
        });
        found.dedup_by(|a, b| a.event_id() == b.event_id());
        found
    }

    /// The uids linked to `start`, directly or through others (bounded: a group stops growing at
    /// four times the largest sequence, which only a flood of alike signals reaches).
    fn group(&self, start: &str, settings: &Settings) -> BTreeSet<String> {
        let limit = settings.max_signals.saturating_mul(4);
        let resource_gap = settings.resource_link_minutes.saturating_mul(60_000_000);
        let mut group = BTreeSet::from([start.to_owned()]);
        let mut queue = vec![start.to_owned()];
        while let Some(uid) = queue.pop() {
            let Some(signal) = self.signals.get(&uid) else {
                continue;
            };
            for (key, kind) in signal.links() {
                let Some(linked) = self.index.get(key) else {
                    continue;
                };
                for other_uid in linked {
                    if group.len() >= limit {
                        return group;
                    }
                    if group.contains(other_uid) {
                        continue;
                    }
                    let Some(other) = self.signals.get(other_uid) else {
                        continue;
                    };
                    // Weak signals are context: they join only steps close to them in time, and
                    // only through who did them or where they went, not through the workload
                    // (CI rolling out the web Deployment is not part of its compromise).
                    let weak = signal.weak || other.weak;
                    if weak && kind == LinkKind::Resource {
                        continue;
                    }
                    let bounded = kind == LinkKind::Resource || weak;
                    if bounded && gap(signal, other) > resource_gap {
                        continue;
                    }
                    group.insert(other_uid.clone());
                    queue.push(other_uid.clone());
                }
            }
        }
        group
    }
}

/// The time between two signals' occurrences (0 when they overlap). Spans only grow as
/// occurrences arrive, so a link, once made, holds whatever order they arrive in (a weak signal is
/// one hour's occurrences: publish keys it by the hour).
fn gap(a: &Signal, b: &Signal) -> i64 {
    if a.last_seen_micros < b.first_seen_micros {
        b.first_seen_micros - a.last_seen_micros
    } else if b.last_seen_micros < a.first_seen_micros {
        a.first_seen_micros - b.last_seen_micros
    } else {
        0
    }
}

#[cfg(test)]
mod tests;
