//! The publish stage's logic in one place: detections fold into findings (aggregated, suppressed),
//! weak signals into signals, and both feed the correlator, whose sequences name their findings
//! back (`associatedAttackSequenceArn`). `vigil scan`, the pipeline and the Kafka service all drive
//! this type, so they publish the same findings and sequences.

use vigil_correlate::{Correlator, Sequence};
use vigil_schemas::{Detection, Finding};

use crate::suppress::Suppression;
use crate::{Added, Aggregator, finding_id};

/// What one detection changed, by id, for the caller to write out.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub added: Added,
    /// The finding it folded into is archived by a suppression rule.
    pub archived: bool,
    /// It was archived by this detection (counted once).
    pub newly_archived: bool,
    /// The finding, or weak signal, it folded into.
    pub id: String,
    pub weak: bool,
    /// Findings that joined a sequence (this one among them, perhaps): to publish again.
    pub associated: Vec<String>,
    /// Sequences raised or grown, by id.
    pub sequences: Vec<String>,
    /// Sequences merged into another: to publish once more, archived, and forget.
    pub merged: Vec<Sequence>,
    /// Weak signals that left the window: their saved state goes.
    pub retired: Vec<String>,
    /// Findings a chain rule raised or counted again on this detection: to publish.
    pub chained: Vec<String>,
}

/// Findings, weak signals and the sequences they form.
#[derive(Debug)]
pub struct Publisher {
    findings: Aggregator,
    signals: Aggregator,
    correlator: Correlator,
    /// The latest event time seen, and when weak signals were last pruned.
    watermark: i64,
    pruned_at: i64,
    /// At most this many findings are held; past it the least recently updated is handed out
    /// (`take_evicted`) and forgotten. `None`: no cap (the Kafka stage, whose state is a topic).
    max_findings: Option<usize>,
    evicted: Vec<Finding>,
    evicted_total: u64,
}

impl Default for Publisher {
    /// No suppression rules, correlation on with its default thresholds.
    fn default() -> Self {
        Self::new(Suppression::default(), vigil_correlate::Settings::default())
    }
}

impl Publisher {
    pub fn new(suppression: Suppression, correlation: vigil_correlate::Settings) -> Self {
        Self {
            findings: Aggregator::with_suppression(suppression),
            signals: Aggregator::default(),
            correlator: Correlator::new(correlation),
            watermark: i64::MIN,
            pruned_at: i64::MIN,
            max_findings: None,
            evicted: Vec::new(),
            evicted_total: 0,
        }
    }

    /// Holds at most `cap` findings: memory stays flat however many distinct findings the input
    /// raises. A finding evicted and raised again starts counting afresh under the same id.
    #[must_use]
    pub fn with_max_findings(mut self, cap: usize) -> Self {
        self.max_findings = Some(cap.max(1));
        self
    }

    /// The findings evicted since the last call, least recently updated first: to write out now.
    pub fn take_evicted(&mut self) -> Vec<Finding> {
        std::mem::take(&mut self.evicted)
    }

    /// Findings evicted so far.
    pub fn evicted_total(&self) -> u64 {
        self.evicted_total
    }

    /// Folds one detection in; returns what changed.
    pub fn add(&mut self, mut detection: Detection) -> Published {
        let weak = detection.signal_only;
        if weak {
            // A weak signal is one hour's occurrences: it spans at most an hour of event time, so
            // a workload's routine all day long never overlaps an attack's hour by aggregation.
            const HOUR: i64 = 3_600_000_000;
            let hour = detection.event_time_micros.div_euclid(HOUR);
            detection.aggregation_key.push(format!("hour:{hour}"));
        }
        if weak && !self.correlator.settings().enabled {
            // Nothing reads weak signals when correlation is off.
            return Published {
                added: Added::Repeated,
                archived: false,
                newly_archived: false,
                id: finding_id(&detection),
                weak,
                associated: Vec::new(),
                sequences: Vec::new(),
                merged: Vec::new(),
                retired: Vec::new(),
                chained: Vec::new(),
            };
        }
        self.watermark = self.watermark.max(detection.event_time_micros);
        let store = if weak {
            &mut self.signals
        } else {
            &mut self.findings
        };
        let was_archived = store
            .get(&finding_id(&detection))
            .is_some_and(|finding| finding.archived);
        let (added, finding) = store.add(detection);
        let archived = finding.archived;
        let id = finding.id.clone();
        let changes = if added == Added::Repeated {
            vigil_correlate::Changes::default()
        } else {
            self.correlator.observe(finding)
        };
        let mut associated = Vec::new();
        for (member, arn) in changes.associations {
            if let Some(finding) = self.findings.get_mut(&member) {
                finding.attack_sequence_arn = Some(arn);
                associated.push(member);
            }
        }
        let mut published = Published {
            added,
            archived,
            newly_archived: archived && !was_archived,
            id,
            weak,
            associated,
            sequences: changes.sequences,
            merged: changes.merged,
            retired: self.prune(),
            chained: Vec::new(),
        };
        // A chain rule's finding is a finding like any other: aggregated, suppressed, correlated
        // (chains do not stack, so this goes one level deep).
        for found in changes.chained {
            let then_finding = self
                .findings
                .get(&found.then.uid)
                .or_else(|| self.signals.get(&found.then.uid));
            let Some(detection) = then_finding.map(|then| found.detection(then)) else {
                continue;
            };
            let inner = self.add(detection);
            if inner.added != Added::Repeated {
                published.chained.push(inner.id);
            }
            published.associated.extend(inner.associated);
            published.merged.extend(inner.merged);
            published.retired.extend(inner.retired);
            published.chained.extend(inner.chained);
            for sequence in inner.sequences {
                if !published.sequences.contains(&sequence) {
                    published.sequences.push(sequence);
                }
            }
        }
        published.associated.sort();
        published.associated.dedup();
        if let Some(cap) = self.max_findings {
            while self.findings.len() > cap {
                let Some(finding) = self.findings.evict_least_recent() else {
                    break;
                };
                self.evicted_total += 1;
                self.evicted.push(finding);
            }
        }
        published
    }

    /// Weak signals older than the correlation window leave (checked once an hour of event time).
    fn prune(&mut self) -> Vec<String> {
        const HOUR: i64 = 3_600_000_000;
        if self.watermark.saturating_sub(self.pruned_at) < HOUR {
            return Vec::new();
        }
        self.pruned_at = self.watermark;
        let window = self.correlator.settings().window_hours.saturating_mul(HOUR);
        self.signals
            .remove_older_than(self.watermark.saturating_sub(window))
    }

    /// Puts back a saved finding or weak signal (a restart).
    pub fn restore(&mut self, finding: Finding) {
        self.watermark = self.watermark.max(finding.event_last_seen_micros);
        self.correlator.restore_signal(&finding);
        if finding.detection.signal_only {
            self.signals.restore(finding);
        } else {
            self.findings.restore(finding);
        }
    }

    /// Forgets a cluster's findings, weak signals and sequences: its partition went to another
    /// instance, which reads them back from the saved state.
    pub fn forget_cluster(&mut self, cluster_key: &str) {
        self.findings.forget_cluster(cluster_key);
        self.signals.forget_cluster(cluster_key);
        self.correlator.forget_cluster(cluster_key);
    }

    /// Puts back a saved sequence.
    pub fn restore_sequence(&mut self, sequence: Sequence) {
        self.correlator.restore_sequence(sequence);
    }

    pub fn finding(&self, id: &str) -> Option<&Finding> {
        self.findings.get(id)
    }

    /// A weak signal, as saved.
    pub fn signal(&self, id: &str) -> Option<&Finding> {
        self.signals.get(id)
    }

    pub fn sequence(&self, cluster_key: &str, id: &str) -> Option<&Sequence> {
        self.correlator.sequence(cluster_key, id)
    }

    /// Every finding, oldest first (weak signals are not findings).
    pub fn findings(&self) -> Vec<&Finding> {
        self.findings.findings()
    }

    /// Every attack sequence, oldest first.
    pub fn sequences(&self) -> Vec<&Sequence> {
        self.correlator.sequences()
    }

    /// Findings, weak signals and sequences held (for the state-size gauge).
    pub fn len(&self) -> usize {
        self.findings.len() + self.signals.len() + self.correlator.sequences().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Findings held (not weak signals, not sequences).
    pub fn findings_len(&self) -> usize {
        self.findings.len()
    }

    /// Findings archived by a suppression rule so far.
    pub fn suppressed(&self) -> u64 {
        self.findings.suppressed()
    }
}
