//! publish: detections to findings. Repeats of the same finding (same type, cluster and aggregation
//! key: the principal and resource each detector names) aggregate into one finding whose `id` is a
//! digest of those parameters, so it is the same on every replay and in every process. Its `count` and
//! `eventLastSeen` grow; its details are those of the latest occurrence, as GuardDuty's are.
//! Aggregation runs on event time: `createdAt`/`updatedAt` are the first and latest occurrence.

pub mod format;
pub mod publisher;
pub mod suppress;

pub use format::Format;
pub use format::guardduty::{image_prefix, render as to_guardduty_json};
pub use publisher::{Published, Publisher};
pub use vigil_correlate::{
    CHAIN_RULES, ChainRule, SEQUENCE_TYPE, Sequence, Settings as CorrelationSettings,
};

use std::collections::HashMap;

use vigil_schemas::{Detection, Finding};

/// The finding id: 32 hex digits of SHA-256 over type, cluster and aggregation key, each
/// length-prefixed so that no two different keys can run together into the same bytes.
pub fn finding_id(detection: &Detection) -> String {
    vigil_schemas::hash::id_digest(
        [detection.finding_type.as_str(), detection.cluster.key()]
            .into_iter()
            .chain(detection.aggregation_key.iter().map(String::as_str)),
    )
}

/// How many event ids of recent occurrences a finding remembers to recognise redeliveries.
pub const RECENT_EVENT_IDS: usize = 256;

/// The findings kept so far, by id, and the suppression rules that archive some of them.
#[derive(Debug, Default)]
pub struct Aggregator {
    findings: HashMap<String, Finding>,
    suppression: suppress::Suppression,
    suppressed: u64,
    /// When each finding was last updated, in order of updates: the least recently updated is
    /// the first to go when a cap bounds the store.
    touched: HashMap<String, u64>,
    by_touch: std::collections::BTreeMap<u64, String>,
    clock: u64,
}

/// What adding a detection did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// A finding was created.
    New,
    /// An existing finding counted one more occurrence.
    Updated,
    /// The detection's event was already counted (a redelivery); nothing changed.
    Repeated,
}

impl Aggregator {
    /// An aggregator whose findings are archived when a suppression rule matches them.
    pub fn with_suppression(suppression: suppress::Suppression) -> Self {
        Self {
            suppression,
            ..Self::default()
        }
    }

    /// Findings archived by a suppression rule so far (each counted once, when it was archived).
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Puts back a finding from saved state (a restart).
    pub fn restore(&mut self, finding: Finding) {
        self.touch(&finding.id);
        self.findings.insert(finding.id.clone(), finding);
    }

    fn touch(&mut self, id: &str) {
        self.clock += 1;
        if let Some(before) = self.touched.insert(id.to_owned(), self.clock) {
            self.by_touch.remove(&before);
        }
        self.by_touch.insert(self.clock, id.to_owned());
    }

    /// Takes out the least recently updated finding.
    pub fn evict_least_recent(&mut self) -> Option<Finding> {
        let (_, id) = self.by_touch.pop_first()?;
        self.touched.remove(&id);
        self.findings.remove(&id)
    }

    /// Folds one detection in; returns what happened and the finding as it now stands.
    pub fn add(&mut self, detection: Detection) -> (Added, &Finding) {
        let id = finding_id(&detection);
        let repeated = self
            .findings
            .get(&id)
            .is_some_and(|found| found.recent_event_ids.contains(&detection.event_id));
        if !repeated {
            self.touch(&id);
        }
        let time = detection.event_time_micros;
        let finding = self.findings.entry(id.clone()).or_insert_with(|| Finding {
            id,
            count: 0,
            created_at_micros: time,
            updated_at_micros: time,
            event_first_seen_micros: time,
            event_last_seen_micros: time,
            archived: false,
            detection: Detection::default(),
            recent_event_ids: Vec::new(),
            attack_sequence_arn: None,
        });
        if repeated {
            return (Added::Repeated, finding);
        }
        let added = if finding.count == 0 {
            Added::New
        } else {
            Added::Updated
        };
        finding.count += 1;
        if finding.recent_event_ids.len() >= RECENT_EVENT_IDS {
            finding.recent_event_ids.remove(0);
        }
        finding.recent_event_ids.push(detection.event_id.clone());
        finding.created_at_micros = finding.created_at_micros.min(time);
        finding.event_first_seen_micros = finding.event_first_seen_micros.min(time);
        // An occurrence older than the latest (a late event) counts, but does not replace the details.
        if finding.count == 1 || time >= finding.event_last_seen_micros {
            finding.event_last_seen_micros = time;
            finding.updated_at_micros = time;
            finding.detection = detection;
        }
        // A suppressed finding stays archived through its updates, as in GuardDuty. Suppression
        // rules are GuardDuty filter criteria: judged on the GuardDuty view, whatever the output.
        if !finding.archived
            && !self.suppression.is_empty()
            && self
                .suppression
                .matching(&Format::GuardDuty.render(finding))
                .is_some()
        {
            finding.archived = true;
            self.suppressed += 1;
        }
        (added, finding)
    }

    pub fn len(&self) -> usize {
        self.findings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.findings.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Finding> {
        self.findings.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Finding> {
        self.findings.get_mut(id)
    }

    /// Forgets the findings of a cluster (its partition went to another instance).
    pub(crate) fn forget_cluster(&mut self, cluster_key: &str) {
        let gone: Vec<String> = self
            .findings
            .values()
            .filter(|finding| finding.detection.cluster.key() == cluster_key)
            .map(|finding| finding.id.clone())
            .collect();
        for id in &gone {
            self.remove(id);
        }
    }

    fn remove(&mut self, id: &str) -> Option<Finding> {
        if let Some(at) = self.touched.remove(id) {
            self.by_touch.remove(&at);
        }
        self.findings.remove(id)
    }

    /// Forgets the findings last seen before `micros`; returns their ids.
    pub(crate) fn remove_older_than(&mut self, micros: i64) -> Vec<String> {
        let mut old: Vec<String> = self
            .findings
            .values()
            .filter(|finding| finding.event_last_seen_micros < micros)
            .map(|finding| finding.id.clone())
            .collect();
        old.sort();
        for id in &old {
            self.remove(id);
        }
        old
    }

    /// Every finding, oldest first (then by id), for a stable output order.
    pub fn findings(&self) -> Vec<&Finding> {
        let mut all: Vec<&Finding> = self.findings.values().collect();
        all.sort_by(|a, b| {
            a.created_at_micros
                .cmp(&b.created_at_micros)
                .then_with(|| a.id.cmp(&b.id))
        });
        all
    }
}
