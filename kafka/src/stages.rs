//! The four stages as [`Processor`]s: thin adapters from records to the I/O-free stage libraries.

use std::collections::BTreeMap;

use vigil_schemas::Event;

use vigil_detect::recent::{DUPLICATE_WINDOW, RecentEvents};
use vigil_detect::{Engine, StateEntry};
use vigil_enrich::{Enricher, Inventory, ThreatIntel};
use vigil_ingest::{IngestStats, Ingestor, Limits};
use vigil_publish::format::Format;
use vigil_publish::{Added, Publisher, Sequence};
use vigil_schemas::{
    AuditEvent, Codec, CodecError, Detection, EnrichedEvent, Finding, Record, RuntimeEvent,
};

use crate::args::Topics;
use crate::metrics::{Metrics, severity_label};
use crate::stage::{Incoming, Outgoing, Processor, StateKeeping, TopicSpec, dead_letter};
use vigil_settings::{ListRole, ListSource, ListWatcher, Settings, SettingsArgs, SettingsError};

fn codec() -> Codec {
    // The schemas are compiled in and tested; failing to parse them is a build defect, not input.
    match Codec::new() {
        Ok(codec) => codec,
        Err(error) => unreachable_schema(&error),
    }
}

#[allow(clippy::panic)]
fn unreachable_schema(error: &CodecError) -> ! {
    panic!("the compiled-in Avro schemas do not parse: {error}")
}

/// How many of a message's rejections its dead letter details (all are counted).
const REJECTIONS_IN_DETAIL: usize = 5;

fn codec_reason(error: &CodecError) -> &'static str {
    match error {
        CodecError::UnknownSchema(_) => "unknown_schema",
        CodecError::WrongRecord { .. } => "wrong_record",
        CodecError::NotSingleObject(_) => "not_avro",
        _ => "invalid_record",
    }
}

fn decode<T: Record>(
    codec: &Codec,
    stage: &'static str,
    deadletter: &str,
    metrics: &Metrics,
    input: &Incoming<'_>,
    out: &mut Vec<Outgoing>,
) -> Option<T> {
    match codec.decode::<T>(input.payload) {
        Ok(record) => Some(record),
        Err(error) => {
            let reason = codec_reason(&error);
            metrics
                .dead_letters
                .with_label_values(&[stage, reason])
                .inc();
            out.push(dead_letter(
                deadletter,
                stage,
                input,
                reason,
                &error.to_string(),
            ));
            None
        }
    }
}

/// The key of every normalized event: its cluster. A cluster's events stay in one partition from
/// ingest on, in the order the raw topic gave them, so that every stateful step meets all it
/// needs on one instance: enrich's process table (per node), detect's correlations (a DaemonSet
/// and the pods its controller creates) and its baselines, whose cluster, namespace and peer-group
/// profiles gather many principals' and workloads' events. The scaling unit of enrich and detect
/// is therefore the cluster (see the README's "Scaling").
pub fn partition_key(cluster_hint: Option<&str>) -> &str {
    // Not empty: librdkafka's partitioner scatters empty keys like missing ones.
    match cluster_hint {
        Some(cluster) if !cluster.is_empty() => cluster,
        _ => "(no cluster hint)",
    }
}

/// Decodes an `AuditEvent` or a `RuntimeEvent`, whichever the writer's fingerprint names; anything
/// else is dead-lettered like any undecodable record.
fn decode_normalized(
    codec: &Codec,
    stage: &'static str,
    deadletter: &str,
    metrics: &Metrics,
    input: &Incoming<'_>,
    out: &mut Vec<Outgoing>,
) -> Option<Event> {
    match codec.decode::<AuditEvent>(input.payload) {
        Ok(event) => Some(Event::Audit(Box::new(event))),
        Err(CodecError::WrongRecord { found, .. }) if found == RuntimeEvent::FULL_NAME => {
            decode::<RuntimeEvent>(codec, stage, deadletter, metrics, input, out)
                .map(|event| Event::Runtime(Box::new(event)))
        }
        Err(_) => decode::<AuditEvent>(codec, stage, deadletter, metrics, input, out)
            .map(|event| Event::Audit(Box::new(event))),
    }
}

/// ingest: raw JSON → `AuditEvent`s and `RuntimeEvent`s; rejected input → one dead letter per message.
#[derive(Debug)]
pub struct IngestStage {
    ingestor: Ingestor,
    codec: Codec,
    topics: Topics,
    metrics: Metrics,
    max_message_bytes: usize,
    counted: IngestStats,
}

impl IngestStage {
    pub fn new(topics: Topics, metrics: Metrics, limits: Limits) -> Self {
        Self {
            max_message_bytes: limits.max_event_bytes.saturating_mul(4),
            ingestor: Ingestor::new(limits),
            codec: codec(),
            topics,
            metrics,
            counted: IngestStats::default(),
        }
    }

    /// Moves the ingestor's skip and tolerance counts into the metrics.
    fn count_skips(&mut self) {
        let stats = self.ingestor.stats();
        // Most messages skip and tolerate nothing: compare totals before looking at (and copying)
        // the counts.
        let tolerated_total = |stats: &IngestStats| stats.tolerated.values().sum::<u64>();
        if stats.skipped_total() == self.counted.skipped_total()
            && tolerated_total(stats) == tolerated_total(&self.counted)
        {
            return;
        }
        for (kind, count) in &stats.tolerated {
            let before = self.counted.tolerated.get(kind).copied().unwrap_or(0);
            if *count > before {
                self.metrics
                    .tolerated
                    .with_label_values(&[kind.label()])
                    .inc_by(count - before);
            }
        }
        for (reason, count) in &stats.skipped {
            let before = self.counted.skipped.get(reason).copied().unwrap_or(0);
            if *count > before {
                self.metrics
                    .skipped
                    .with_label_values(&["ingest", reason.label()])
                    .inc_by(count - before);
            }
        }
        self.counted = stats.clone();
    }
}

impl Processor for IngestStage {
    fn stage(&self) -> &'static str {
        "ingest"
    }
    fn input_topics(&self) -> Vec<String> {
        vec![
            self.topics.audit_raw.clone(),
            self.topics.runtime_raw.clone(),
        ]
    }
    fn output_topics(&self) -> Vec<TopicSpec> {
        vec![
            TopicSpec {
                name: self.topics.events.clone(),
                compacted: false,
            },
            TopicSpec {
                name: self.topics.deadletter.clone(),
                compacted: false,
            },
        ]
    }
    fn process(&mut self, input: &Incoming<'_>, out: &mut Vec<Outgoing>) {
        if input.payload.len() > self.max_message_bytes {
            self.metrics
                .dead_letters
                .with_label_values(&["ingest", "too_large"])
                .inc();
            let detail = format!(
                "message of {} bytes is over the {} byte limit",
                input.payload.len(),
                self.max_message_bytes
            );
            out.push(dead_letter(
                &self.topics.deadletter,
                "ingest",
                input,
                "too_large",
                &detail,
            ));
            return;
        }
        // The first few rejections of the message, for the dead letter's detail, and how many
        // there were: a message inflating to millions of bad lines must not hold them all.
        let mut rejections = Vec::new();
        let mut rejected = 0usize;
        let mut encoded = Vec::new();
        let codec = &self.codec;
        let transport_time = input
            .timestamp_millis
            .filter(|millis| *millis > 0)
            .and_then(|millis| millis.checked_mul(1000));
        self.ingestor.ingest_payload_from(
            input.payload,
            transport_time,
            input.cluster,
            &mut |item| match item {
                Ok(Event::Audit(event)) => {
                    encoded.push(codec.encode(event.as_ref()).map(|bytes| {
                        (
                            partition_key(event.cluster_hint.as_deref()).to_owned(),
                            bytes,
                        )
                    }));
                }
                Ok(Event::Runtime(event)) => {
                    encoded.push(codec.encode(event.as_ref()).map(|bytes| {
                        (
                            partition_key(event.cluster_hint.as_deref()).to_owned(),
                            bytes,
                        )
                    }));
                }
                Err(rejection) => {
                    self.metrics
                        .dead_letters
                        .with_label_values(&["ingest", rejection.reason.label()])
                        .inc();
                    rejected += 1;
                    if rejections.len() < REJECTIONS_IN_DETAIL {
                        rejections.push(rejection);
                    }
                }
            },
        );
        for result in encoded {
            match result {
                Ok((key, bytes)) => out.push(Outgoing::new(&self.topics.events, key, bytes)),
                Err(error) => {
                    self.metrics
                        .dead_letters
                        .with_label_values(&["ingest", "invalid_record"])
                        .inc();
                    out.push(dead_letter(
                        &self.topics.deadletter,
                        "ingest",
                        input,
                        "invalid_record",
                        &error.to_string(),
                    ));
                }
            }
        }
        if let Some(first) = rejections.first() {
            // One dead letter per message, however many of its events were bad: it carries the
            // original bytes once, the first reason as its label and every reason in its detail.
            let reason = first.reason.label();
            let mut detail = rejections
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            if rejected > rejections.len() {
                detail.push_str(&format!("; and {} more", rejected - rejections.len()));
            }
            let mut letter = dead_letter(&self.topics.deadletter, "ingest", input, reason, &detail);
            letter
                .headers
                .push(("vigil.rejections", rejected.to_string().into_bytes()));
            out.push(letter);
        }
        self.count_skips();
    }
}

/// Reads the settings and the lists they name, and tells the operator, once, what they should know
/// (no threat list, lines that are not addresses).
pub fn load_settings(args: &SettingsArgs) -> Result<(Settings, ThreatIntel), SettingsError> {
    let settings = Settings::load(args)?;
    let mut notes = settings.notes.clone();
    let intel = settings.threat_intel(&mut notes)?;
    for note in notes {
        tracing::warn!("{note}");
    }
    Ok((settings, intel))
}

fn record_lists(metrics: &Metrics, sources: &[ListSource], intel: &ThreatIntel) {
    if let (Some(database), Some(source)) = (
        &intel.asn,
        sources.iter().find(|source| source.role == ListRole::Asn),
    ) {
        // Announced ranges, under the list gauge: one more file enrich reads and reloads.
        metrics
            .threat_list_entries
            .with_label_values(&[source.name.as_str(), "asn"])
            .set(i64::try_from(database.len()).unwrap_or(i64::MAX));
    }
    if let (Some(relays), Some(source)) = (
        &intel.tor_relays,
        sources
            .iter()
            .find(|source| source.role == ListRole::TorRelays),
    ) {
        metrics
            .threat_list_entries
            .with_label_values(&[source.name.as_str(), "tor_relays"])
            .set(i64::try_from(relays.len()).unwrap_or(i64::MAX));
    }
    let lists = intel
        .threat_lists
        .iter()
        .chain(&intel.tor_exits)
        .chain(&intel.trusted);
    for list in lists {
        let role = sources
            .iter()
            .find(|source| source.name == list.name)
            .map_or("threat", |source| source.role.label());
        metrics
            .threat_list_entries
            .with_label_values(&[list.name.as_str(), role])
            .set(i64::try_from(list.len()).unwrap_or(i64::MAX));
    }
}

/// enrich: `AuditEvent` or `RuntimeEvent` → `EnrichedEvent`, same key.
#[derive(Debug)]
pub struct EnrichStage {
    enricher: Enricher,
    lists: ListWatcher,
    codec: Codec,
    topics: Topics,
    metrics: Metrics,
    changes: Vec<(String, Option<Vec<u8>>)>,
}

impl EnrichStage {
    pub fn new(topics: Topics, metrics: Metrics, settings: &Settings, intel: ThreatIntel) -> Self {
        record_lists(&metrics, &settings.lists, &intel);
        Self {
            enricher: Enricher::new(settings.clusters.clone(), intel, Inventory::default()),
            lists: ListWatcher::new(settings.lists.clone(), settings.reload_every),
            codec: codec(),
            topics,
            metrics,
            changes: Vec::new(),
        }
    }
}

impl Processor for EnrichStage {
    fn stage(&self) -> &'static str {
        "enrich"
    }
    fn input_topics(&self) -> Vec<String> {
        vec![self.topics.events.clone()]
    }
    fn output_topics(&self) -> Vec<TopicSpec> {
        vec![
            TopicSpec {
                name: self.topics.enriched.clone(),
                compacted: false,
            },
            TopicSpec {
                name: self.topics.deadletter.clone(),
                compacted: false,
            },
            TopicSpec {
                name: self.topics.inventory.clone(),
                compacted: true,
            },
        ]
    }
    fn state(&self) -> StateKeeping {
        // The inventory is learned from every partition's events: each instance reads all of it.
        StateKeeping::Shared(self.topics.inventory.clone())
    }
    fn restore(&mut self, _partition: i32, key: &[u8], value: Option<&[u8]>) -> bool {
        std::str::from_utf8(key).is_ok_and(|key| self.enricher.restore(key, value))
    }
    fn state_size(&self) -> usize {
        self.enricher.inventory().pods_known()
    }
    fn process(&mut self, input: &Incoming<'_>, out: &mut Vec<Outgoing>) {
        self.reload_lists();
        let Some(event) = decode_normalized(
            &self.codec,
            "enrich",
            &self.topics.deadletter,
            &self.metrics,
            input,
            out,
        ) else {
            return;
        };
        let enriched = self.enricher.enrich(event);
        self.changes.clear();
        self.enricher.drain_state(&mut self.changes);
        for (key, payload) in self.changes.drain(..) {
            out.push(Outgoing {
                topic: self.topics.inventory.clone(),
                key: Some(key.into_bytes()),
                payload,
                headers: Vec::new(),
                checkpoint: false,
            });
        }
        match self.codec.encode(&enriched) {
            Ok(bytes) => out.push(Outgoing {
                topic: self.topics.enriched.clone(),
                key: input.key.map(<[u8]>::to_vec),
                payload: Some(bytes),
                headers: Vec::new(),
                checkpoint: false,
            }),
            Err(error) => {
                self.metrics
                    .dead_letters
                    .with_label_values(&["enrich", "invalid_record"])
                    .inc();
                out.push(dead_letter(
                    &self.topics.deadletter,
                    "enrich",
                    input,
                    "invalid_record",
                    &error.to_string(),
                ));
            }
        }
    }
}

impl EnrichStage {
    /// Swaps in the lists when their files changed (checked at most once per reload interval).
    fn reload_lists(&mut self) {
        match self.lists.poll() {
            None => {}
            Some(Ok((intel, notes))) => {
                for note in notes {
                    tracing::warn!("{note}");
                }
                record_lists(&self.metrics, self.lists.sources(), &intel);
                tracing::info!("threat lists changed on disk: reloaded");
                self.metrics
                    .threat_list_reloads
                    .with_label_values(&["ok"])
                    .inc();
                self.enricher.set_intel(intel);
            }
            Some(Err(error)) => {
                tracing::error!(%error, "a changed threat list does not read; the previous lists stay in use");
                self.metrics
                    .threat_list_reloads
                    .with_label_values(&["error"])
                    .inc();
            }
        }
    }
}

/// detect: `EnrichedEvent` → `Detection`s keyed by finding id; detector state checkpointed.
#[derive(Debug)]
pub struct DetectStage {
    engine: Engine,
    codec: Codec,
    topics: Topics,
    metrics: Metrics,
    /// Keys of the checkpointed state, with the input partition whose events wrote them: the state
    /// of a partition this instance no longer owns is dropped.
    state: BTreeMap<String, i32>,
    /// The partition of the last input processed: the one its state changes checkpoint to.
    last_partition: i32,
    changes: Vec<StateEntry>,
    recent: RecentEvents,
    /// Inputs since the baseline gauges were last set (walking every profile is not per event).
    since_profile_report: u32,
    /// Evictions already added to the counter, per detector and scope.
    evictions_reported: std::collections::HashMap<(&'static str, &'static str), u64>,
}

/// Inputs between updates of the baseline gauges.
const PROFILE_REPORT_EVERY: u32 = 1_000;

impl DetectStage {
    fn report_profiles(&mut self) {
        for (detector, counts) in self.engine.profile_counts() {
            for (phase, profiles) in &counts.by_phase {
                self.metrics
                    .baseline_profiles
                    .with_label_values(&[detector, counts.scope, phase])
                    .set(i64::try_from(*profiles).unwrap_or(i64::MAX));
            }
            self.metrics
                .baseline_capacity
                .with_label_values(&[detector, counts.scope])
                .set(i64::try_from(counts.capacity).unwrap_or(i64::MAX));
            self.metrics
                .baseline_cluster_capacity
                .with_label_values(&[detector, counts.scope])
                .set(i64::try_from(counts.capacity_per_cluster).unwrap_or(i64::MAX));
            self.metrics
                .baseline_largest_cluster
                .with_label_values(&[detector, counts.scope])
                .set(i64::try_from(counts.largest_cluster).unwrap_or(i64::MAX));
            if counts.unencodable > 0 {
                tracing::error!(
                    detector,
                    scope = counts.scope,
                    unencodable = counts.unencodable,
                    "baseline profiles failed to encode as checkpoints (kept unsaved, retried)"
                );
            }
            let reported = self
                .evictions_reported
                .entry((detector, counts.scope))
                .or_default();
            if counts.evicted > *reported {
                self.metrics
                    .baseline_evictions
                    .with_label_values(&[detector, counts.scope])
                    .inc_by(counts.evicted - *reported);
                *reported = counts.evicted;
            }
        }
    }
}

impl DetectStage {
    /// The state changes drained into `self.changes`, as checkpoints of the last input's partition.
    fn checkpoint_changes(&mut self, out: &mut Vec<Outgoing>) {
        for change in self.changes.drain(..) {
            let payload = change.value;
            if payload.is_some() {
                self.state.insert(change.key.clone(), self.last_partition);
            } else {
                self.state.remove(&change.key);
            }
            out.push(Outgoing::checkpoint(
                &self.topics.detect_state,
                change.key.into_bytes(),
                payload,
            ));
        }
    }

    pub fn new(topics: Topics, metrics: Metrics, engine: Engine) -> Self {
        Self {
            engine,
            codec: codec(),
            topics,
            metrics,
            state: BTreeMap::new(),
            last_partition: 0,
            changes: Vec::new(),
            recent: RecentEvents::new(DUPLICATE_WINDOW),
            since_profile_report: PROFILE_REPORT_EVERY,
            evictions_reported: std::collections::HashMap::new(),
        }
    }
}

impl Processor for DetectStage {
    fn stage(&self) -> &'static str {
        "detect"
    }
    fn input_topics(&self) -> Vec<String> {
        vec![self.topics.enriched.clone()]
    }
    fn output_topics(&self) -> Vec<TopicSpec> {
        vec![
            TopicSpec {
                name: self.topics.detections.clone(),
                compacted: false,
            },
            TopicSpec {
                name: self.topics.deadletter.clone(),
                compacted: false,
            },
            TopicSpec {
                name: self.topics.detect_state.clone(),
                compacted: true,
            },
        ]
    }
    fn state(&self) -> StateKeeping {
        StateKeeping::Checkpoints(self.topics.detect_state.clone())
    }
    fn restore(&mut self, partition: i32, key: &[u8], value: Option<&[u8]>) -> bool {
        let Ok(key) = std::str::from_utf8(key) else {
            return false;
        };
        let restored = self.engine.restore(key, value);
        if restored && value.is_some() {
            self.state.insert(key.to_owned(), partition);
        } else {
            self.state.remove(key);
        }
        restored
    }
    fn retain_partitions(&mut self, assigned: &[i32]) {
        for key in unassigned(&self.state, assigned) {
            // As a tombstone would: the detector forgets the entry.
            self.engine.restore(&key, None);
            self.state.remove(&key);
        }
        self.recent.retain_partitions(assigned);
    }
    fn recall_window(&self) -> usize {
        self.recent.window()
    }
    fn recall(&mut self, input: &Incoming<'_>) {
        if let Ok(event) = self.codec.decode::<EnrichedEvent>(input.payload) {
            self.recent.first_time(input.partition, &event);
        }
    }
    fn state_size(&self) -> usize {
        self.state.len()
    }
    fn process(&mut self, input: &Incoming<'_>, out: &mut Vec<Outgoing>) {
        let Some(event) = decode::<EnrichedEvent>(
            &self.codec,
            "detect",
            &self.topics.deadletter,
            &self.metrics,
            input,
            out,
        ) else {
            return;
        };
        if !self.recent.first_time(input.partition, &event) {
            // Written again by an upstream stage's replay after a crash: its detections were
            // made the first time, and the baselines must not count it twice.
            self.metrics
                .skipped
                .with_label_values(&["detect", "duplicate_event"])
                .inc();
            tracing::debug!(
                partition = input.partition,
                offset = input.offset,
                "an event seen among the recent ones again; passed over"
            );
            return;
        }
        let mut detections: Vec<Detection> = Vec::new();
        self.engine.process(&event, &mut detections);
        self.since_profile_report += 1;
        if self.since_profile_report >= PROFILE_REPORT_EVERY {
            self.since_profile_report = 0;
            self.report_profiles();
        }
        for detection in &detections {
            match self.codec.encode(detection) {
                // Keyed by cluster: one publish instance holds a cluster's findings and its
                // correlation window whole.
                Ok(bytes) => out.push(Outgoing::new(
                    &self.topics.detections,
                    detection.cluster.key(),
                    bytes,
                )),
                Err(error) => {
                    self.metrics
                        .dead_letters
                        .with_label_values(&["detect", "invalid_record"])
                        .inc();
                    out.push(dead_letter(
                        &self.topics.deadletter,
                        "detect",
                        input,
                        "invalid_record",
                        &error.to_string(),
                    ));
                }
            }
        }
        // State goes out as checkpoints of this input: after its detections (and every earlier
        // input's) are acknowledged, and before its offset is stored.
        self.last_partition = input.partition;
        self.changes.clear();
        self.engine.drain_state(&mut self.changes);
        self.checkpoint_changes(out);
    }
    fn flush(&mut self, out: &mut Vec<Outgoing>) {
        self.changes.clear();
        self.engine.flush_state(&mut self.changes);
        self.checkpoint_changes(out);
    }
}

/// The keys whose input partition is not among `assigned`: state another instance owns now.
fn unassigned(owners: &BTreeMap<String, i32>, assigned: &[i32]) -> Vec<String> {
    owners
        .iter()
        .filter(|(_, partition)| !assigned.contains(partition))
        .map(|(key, _)| key.clone())
        .collect()
}

/// publish: `Detection`s → findings and attack sequences as JSON keyed by id. Detections arrive
/// keyed by cluster, so one instance holds a cluster's findings, weak signals and correlation
/// window whole; they are checkpointed to the compacted state topic (findings and weak signals as
/// Avro `Finding`s keyed by id, sequences as JSON keyed `sequence:<id>`), so a restarted publish
/// neither loses nor re-counts occurrences and raises the same sequences.
#[derive(Debug)]
pub struct PublishStage {
    /// Each findings topic with its format: the findings topic in the settings' format, and the
    /// OCSF topic when one is named.
    outputs: Vec<(Format, String)>,
    publisher: Publisher,
    codec: Codec,
    topics: Topics,
    metrics: Metrics,
    /// The input partition each cluster's detections come from: a cluster whose partition went to
    /// another instance is forgotten here.
    clusters: BTreeMap<String, i32>,
}

/// State keys of saved sequences start with this; findings' and weak signals' are their ids.
const SEQUENCE_KEY_PREFIX: &str = "sequence:";

impl PublishStage {
    pub fn new(topics: Topics, metrics: Metrics, publisher: Publisher, format: Format) -> Self {
        let mut outputs = vec![(format, topics.findings.clone())];
        if let Some(topic) = &topics.findings_ocsf
            && !outputs.contains(&(Format::Ocsf, topic.clone()))
        {
            outputs.push((Format::Ocsf, topic.clone()));
        }
        Self {
            outputs,
            publisher,
            codec: codec(),
            topics,
            metrics,
            clusters: BTreeMap::new(),
        }
    }

    /// A finding (or weak signal) as it stands: its JSON on the findings topic (not for weak
    /// signals, which are no findings) and its checkpoint.
    fn write_finding(&self, id: &str, weak: bool, out: &mut Vec<Outgoing>) {
        let finding = if weak {
            self.publisher.signal(id)
        } else {
            self.publisher.finding(id)
        };
        let Some(finding) = finding else {
            return;
        };
        if !weak {
            for (format, topic) in &self.outputs {
                let json = format.render(finding).to_string().into_bytes();
                out.push(Outgoing::new(topic, finding.id.clone(), json));
            }
        }
        match self.codec.encode(finding) {
            Ok(bytes) => out.push(Outgoing::checkpoint(
                &self.topics.publish_state,
                finding.id.clone(),
                Some(bytes),
            )),
            Err(error) => {
                tracing::error!(%error, id = %finding.id, "finding state does not encode");
            }
        }
    }

    /// A sequence as it stands (or, merged, one last time, archived): its JSON on the findings
    /// topic and its checkpoint (a tombstone once merged).
    fn write_sequence(&self, sequence: &Sequence, out: &mut Vec<Outgoing>) {
        for (format, topic) in &self.outputs {
            let json = format.render_sequence(sequence).to_string().into_bytes();
            out.push(Outgoing::new(topic, sequence.id.clone(), json));
        }
        let key = format!("{SEQUENCE_KEY_PREFIX}{}", sequence.id);
        let saved = if sequence.merged_into.is_some() {
            None
        } else {
            match serde_json::to_vec(sequence) {
                Ok(bytes) => Some(bytes),
                Err(error) => {
                    tracing::error!(%error, id = %sequence.id, "sequence state does not encode");
                    return;
                }
            }
        };
        out.push(Outgoing::checkpoint(&self.topics.publish_state, key, saved));
        self.metrics
            .attack_sequences
            .with_label_values(&[if sequence.merged_into.is_some() {
                "merged"
            } else {
                "updated"
            }])
            .inc();
    }
}

impl Processor for PublishStage {
    fn stage(&self) -> &'static str {
        "publish"
    }
    fn input_topics(&self) -> Vec<String> {
        vec![self.topics.detections.clone()]
    }
    fn output_topics(&self) -> Vec<TopicSpec> {
        let mut topics: Vec<TopicSpec> = self
            .outputs
            .iter()
            .map(|(_, topic)| TopicSpec {
                name: topic.clone(),
                compacted: false,
            })
            .collect();
        topics.push(TopicSpec {
            name: self.topics.deadletter.clone(),
            compacted: false,
        });
        topics.push(TopicSpec {
            name: self.topics.publish_state.clone(),
            compacted: true,
        });
        topics
    }
    fn state(&self) -> StateKeeping {
        StateKeeping::Checkpoints(self.topics.publish_state.clone())
    }
    fn restore(&mut self, partition: i32, key: &[u8], value: Option<&[u8]>) -> bool {
        let Some(value) = value else {
            // A tombstone: a merged sequence or a weak signal that left the window, already gone.
            return true;
        };
        if let Some(id) = key.strip_prefix(SEQUENCE_KEY_PREFIX.as_bytes()) {
            return match serde_json::from_slice::<Sequence>(value) {
                Ok(sequence) => {
                    self.clusters
                        .insert(sequence.cluster.key().to_owned(), partition);
                    self.publisher.restore_sequence(sequence);
                    true
                }
                Err(error) => {
                    let id = String::from_utf8_lossy(id);
                    tracing::warn!(%error, %id, "a saved attack sequence does not decode");
                    false
                }
            };
        }
        // Findings saved by an earlier release decode through the codec's schema history.
        match self.codec.decode::<Finding>(value) {
            Ok(finding) => {
                self.clusters
                    .insert(finding.detection.cluster.key().to_owned(), partition);
                self.publisher.restore(finding);
                true
            }
            Err(error) => {
                tracing::warn!(%error, "a saved finding does not decode");
                false
            }
        }
    }
    fn retain_partitions(&mut self, assigned: &[i32]) {
        for cluster in unassigned(&self.clusters, assigned) {
            self.publisher.forget_cluster(&cluster);
            self.clusters.remove(&cluster);
        }
    }
    fn state_size(&self) -> usize {
        self.publisher.len()
    }
    fn process(&mut self, input: &Incoming<'_>, out: &mut Vec<Outgoing>) {
        let Some(detection) = decode::<Detection>(
            &self.codec,
            "publish",
            &self.topics.deadletter,
            &self.metrics,
            input,
            out,
        ) else {
            return;
        };
        let cluster = detection.cluster.key().to_owned();
        self.clusters.insert(cluster.clone(), input.partition);
        let finding_type = detection.finding_type.clone();
        let severity = severity_label(detection.severity);
        let published = self.publisher.add(detection);
        if published.newly_archived {
            self.metrics
                .findings_suppressed
                .with_label_values(&[finding_type.as_str()])
                .inc();
        }
        if published.added != Added::Repeated && !published.weak {
            self.metrics
                .findings
                .with_label_values(&[finding_type.as_str(), severity])
                .inc();
        }
        // A repeated detection still republishes: if the first attempt's finding was lost before
        // its acknowledgement, this puts it back; if not, the same record again changes nothing.
        self.write_finding(&published.id, published.weak, out);
        // Findings that joined a sequence publish again, naming it.
        for id in published
            .associated
            .iter()
            .filter(|id| **id != published.id)
        {
            self.write_finding(id, false, out);
        }
        for merged in &published.merged {
            self.write_sequence(merged, out);
        }
        for id in &published.sequences {
            if let Some(sequence) = self.publisher.sequence(&cluster, id) {
                self.write_sequence(sequence, out);
            }
        }
        for id in &published.retired {
            out.push(Outgoing::checkpoint(
                &self.topics.publish_state,
                id.clone(),
                None,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn events_without_a_cluster_hint_share_a_key_that_is_not_empty() {
        assert_eq!(partition_key(Some("prod")), "prod");
        assert_eq!(partition_key(None), partition_key(Some("")));
        assert!(!partition_key(None).is_empty());
    }

    /// The default topics, as the flags give them, and a fresh registry of metrics.
    fn topics_and_metrics() -> (Topics, Metrics) {
        #[derive(clap::Parser)]
        struct TopicArgs {
            #[command(flatten)]
            topics: Topics,
        }
        let topics = <TopicArgs as clap::Parser>::parse_from(["test"]).topics;
        (topics, Metrics::new().expect("metrics register"))
    }

    /// detect as a plain processor, with the default topics and detectors.
    fn detect_stage() -> DetectStage {
        let (topics, metrics) = topics_and_metrics();
        DetectStage::new(topics, metrics, Engine::default())
    }

    #[test]
    fn events_an_upstream_replay_writes_again_change_nothing_in_detect() {
        use vigil_sim::{EvalOptions, stream};
        let options = EvalOptions {
            seed: 5,
            principals: 20,
            days: 12,
            learn_days: 10,
        };
        let codec = codec();
        let records: Vec<Vec<u8>> = stream(&options)
            .into_iter()
            .map(|audit| {
                let event = EnrichedEvent {
                    audit: Some(audit),
                    ..EnrichedEvent::default()
                };
                codec.encode(&event).expect("encodes")
            })
            .collect();
        let mut stage = detect_stage();
        let mut out = Vec::new();
        let mut offset = 0;
        let mut feed = |stage: &mut DetectStage, payload: &[u8], out: &mut Vec<Outgoing>| {
            stage.process(
                &Incoming {
                    topic: "vigil.enriched",
                    partition: 0,
                    offset,
                    key: None,
                    payload,
                    timestamp_millis: None,
                    cluster: None,
                },
                out,
            );
            offset += 1;
        };
        for record in &records {
            feed(&mut stage, record, &mut out);
        }
        assert!(
            out.iter().any(|output| output.checkpoint),
            "the stream changes detect's state"
        );
        // Enrich killed and restarted writes its last few thousand events again, at new offsets:
        // about a hundred a principal, beyond the volume baselines' own memory of 32 ids.
        out.clear();
        let replayed = &records[records.len() - 2_000..];
        for record in replayed {
            feed(&mut stage, record, &mut out);
        }
        assert_eq!(
            out,
            Vec::new(),
            "a replayed event changed state or raised a detection"
        );
        let skipped = stage
            .metrics
            .skipped
            .with_label_values(&["detect", "duplicate_event"])
            .get();
        assert_eq!(skipped, 2_000);
    }

    /// The example day's detections in the order `vigil scan` makes them, and its settings.
    fn example_detections() -> (Settings, Vec<Detection>) {
        use std::io::Read;
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the repository")
            .to_owned();
        let settings = Settings::load(&SettingsArgs {
            config: Some(repo.join("examples/vigil.toml")),
            ..SettingsArgs::default()
        })
        .expect("example settings");
        let intel = settings
            .threat_intel(&mut Vec::new())
            .expect("threat lists");
        let mut pipeline = vigil_pipeline::Pipeline::new(&settings, intel).expect("detectors");
        let mut runtime = Vec::new();
        flate2::read::GzDecoder::new(
            std::fs::File::open(repo.join("examples/runtime/tetragon.jsonl.gz")).expect("tetragon"),
        )
        .read_to_end(&mut runtime)
        .expect("tetragon export");
        runtime.extend(std::fs::read(repo.join("examples/runtime/dns.jsonl")).expect("dns"));
        let audit = std::fs::read(repo.join("examples/audit/day-of-traffic.jsonl")).expect("day");
        let mut detections = Vec::new();
        for input in [audit, runtime] {
            pipeline.read_payload(&input, &mut |step| {
                if let vigil_pipeline::Step::Detected { detection, .. } = step {
                    detections.push(detection.clone());
                }
            });
        }
        (settings, detections)
    }

    fn publish_stage(settings: &Settings) -> PublishStage {
        let (topics, metrics) = topics_and_metrics();
        PublishStage::new(
            topics,
            metrics,
            Publisher::new(settings.suppression.clone(), settings.correlation.clone()),
            settings.format,
        )
    }

    /// Feeds detections to publish as one partition's records; returns what it wrote.
    fn publish_all(stage: &mut PublishStage, detections: &[Detection]) -> Vec<Outgoing> {
        let codec = codec();
        let mut out = Vec::new();
        for (offset, detection) in (0_i64..).zip(detections) {
            let payload = codec.encode(detection).expect("encodes");
            stage.process(
                &Incoming {
                    topic: "vigil.detections",
                    partition: 0,
                    offset,
                    key: None,
                    payload: &payload,
                    timestamp_millis: None,
                    cluster: None,
                },
                &mut out,
            );
        }
        out
    }

    /// The last record per key of `topic`, as compaction (or a consumer keeping the latest) sees it.
    fn latest(outputs: &[Outgoing], topic: &str) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        outputs
            .iter()
            .filter(|output| output.topic == topic)
            .map(|output| {
                (
                    output.key.clone().unwrap_or_default(),
                    output.payload.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn publish_writes_each_format_to_its_own_topic_when_asked() {
        let (settings, detections) = example_detections();
        let (mut topics, metrics) = topics_and_metrics();
        let guardduty_only = {
            let mut stage = PublishStage::new(
                topics.clone(),
                metrics.clone(),
                Publisher::new(settings.suppression.clone(), settings.correlation.clone()),
                settings.format,
            );
            publish_all(&mut stage, &detections)
        };
        assert!(
            guardduty_only
                .iter()
                .all(|out| out.topic != "vigil.findings.ocsf")
        );
        topics.findings_ocsf = Some("vigil.findings.ocsf".into());
        let mut stage = PublishStage::new(
            topics,
            metrics,
            Publisher::new(settings.suppression.clone(), settings.correlation.clone()),
            settings.format,
        );
        assert!(
            stage
                .output_topics()
                .iter()
                .any(|topic| topic.name == "vigil.findings.ocsf")
        );
        let both = publish_all(&mut stage, &detections);
        let guardduty = latest(&both, "vigil.findings");
        let ocsf = latest(&both, "vigil.findings.ocsf");
        // The same findings by id, each in its format.
        assert_eq!(
            guardduty.keys().collect::<Vec<_>>(),
            ocsf.keys().collect::<Vec<_>>()
        );
        assert_eq!(guardduty, latest(&guardduty_only, "vigil.findings"));
        for payload in ocsf.values().flatten() {
            let json: serde_json::Value = serde_json::from_slice(payload).expect("JSON");
            assert_eq!(json["class_uid"], 2004);
        }
    }

    #[test]
    fn publish_restarted_in_the_middle_of_the_attack_publishes_what_an_uninterrupted_run_does() {
        let (settings, detections) = example_detections();
        let mut uninterrupted = publish_stage(&settings);
        let all = publish_all(&mut uninterrupted, &detections);
        let findings_topic = uninterrupted.topics.findings.clone();
        let state_topic = uninterrupted.topics.publish_state.clone();
        let expected = latest(&all, &findings_topic);
        let sequences: Vec<serde_json::Value> = expected
            .values()
            .flatten()
            .map(|json| serde_json::from_slice(json).expect("JSON"))
            .filter(|json: &serde_json::Value| {
                json["type"] == vigil_publish::SEQUENCE_TYPE && json["service"]["archived"] == false
            })
            .collect();
        // The runtime half forms its own sequence first, which the audit half's earlier one takes
        // in when the stolen token links them (published once more, archived).
        assert_eq!(sequences.len(), 1, "the example's one attack sequence");
        assert!(
            all.iter().any(|output| output.checkpoint
                && output
                    .key
                    .as_deref()
                    .is_some_and(|key| key.starts_with(b"sequence:"))),
            "the sequence is checkpointed"
        );
        // Stopped at several points of the attack (the example day's detections are the attack's,
        // bar one): the next instance reads the saved state back and goes on.
        for split in [
            detections.len() / 4,
            detections.len() / 2,
            detections.len() * 3 / 4,
        ] {
            let mut before = publish_stage(&settings);
            let mut written = publish_all(&mut before, &detections[..split]);
            let mut after = publish_stage(&settings);
            after.retain_partitions(&[0]);
            for (key, value) in latest(&written, &state_topic) {
                assert!(after.restore(0, &key, value.as_deref()), "state restores");
            }
            assert_eq!(
                after.state_size(),
                before.state_size(),
                "findings, weak signals and sequences all read back"
            );
            written.extend(publish_all(&mut after, &detections[split..]));
            let found = latest(&written, &findings_topic);
            assert!(
                found == expected,
                "after a restart at detection {split} of {}, publish wrote other findings",
                detections.len()
            );
        }
        // An instance that loses the partition forgets its clusters.
        uninterrupted.retain_partitions(&[1]);
        assert_eq!(uninterrupted.state_size(), 0);
    }
}
