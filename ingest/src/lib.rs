//! ingest: raw Kubernetes audit input and runtime sensor events, in every shape users have, to
//! normalized [`AuditEvent`]s and [`RuntimeEvent`]s.
//!
//! Shapes understood, in a Kafka message or a file (plain or gzip, told apart by the gzip magic bytes):
//! - one `audit.k8s.io/v1` or `v1beta1` Event, or an EventList (the audit webhook's batch);
//! - JSON lines, pretty-printed objects one after another, or a JSON array of any of these;
//! - CloudWatch Logs subscription records (`logEvents[].message`), one or many concatenated as
//!   Firehose delivers them; and exported log lines, `TIMESTAMP {event}`.
//!
//! - runtime events: Tetragon's JSON export, Falco's JSON alerts and Vigil's native runtime form
//!   (see the `runtime` module), in any of the framings above.
//!
//! Audit events are kept at their final stage (`ResponseComplete`, `Panic`; `ResponseStarted` for exec,
//! attach and port-forward, whose completion can come hours later) and deduplicated by `auditID`
//! within a bounded window. Anything malformed becomes a [`Rejection`] with a reason and the stream
//! goes on. The crate does no I/O of its own: it reads what it is handed.

mod cloud;
mod dedup;
mod json;
mod normalize;
mod raw;
mod reader;
mod runtime;
mod slim;

use std::collections::BTreeMap;

pub use dedup::Dedup;

use reader::read_stream;
pub use vigil_schemas::Event;
use vigil_schemas::{AuditEvent, RuntimeEvent};

/// Why an input was refused. The label is a bounded set, used in metrics and dead-letter headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// Not JSON, or JSON cut short.
    InvalidJson,
    /// Bytes that are not UTF-8 text.
    NotUtf8,
    /// JSON, but neither an audit Event, an EventList, a CloudWatch Logs record nor a runtime event.
    UnknownShape,
    /// An audit or runtime event with a missing or wrongly typed field.
    InvalidEvent,
    /// Over the size limit for one event or line.
    TooLarge,
    /// A gzip stream that is corrupt or cut short.
    BadCompression,
    /// The input could not be read to its end.
    Unreadable,
}

impl RejectReason {
    pub const fn label(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::NotUtf8 => "not_utf8",
            Self::UnknownShape => "unknown_shape",
            Self::InvalidEvent => "invalid_event",
            Self::TooLarge => "too_large",
            Self::BadCompression => "bad_compression",
            Self::Unreadable => "unreadable",
        }
    }
}

/// An input that could not become an event, with the reason and where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
    /// 1-based line of the input where the rejected text starts, when reading a stream.
    pub line: Option<u64>,
}

impl Rejection {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
            line: None,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} at line {line}: {}", self.reason.label(), self.detail),
            None => write!(f, "{}: {}", self.reason.label(), self.detail),
        }
    }
}

/// Why a well-formed event was not passed on. Counted, never an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// The same `auditID` was seen within the dedup window.
    Duplicate,
    /// `RequestReceived`, or `ResponseStarted` of a request that also completes.
    NonFinalStage,
    /// A CloudWatch Logs control message (sent when a subscription is created).
    ControlMessage,
    /// An Azure Monitor diagnostic record of a category other than the audit log (the API server's
    /// own log, `guard`, the controller manager).
    OtherLogCategory,
}

impl SkipReason {
    pub const fn label(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::NonFinalStage => "non_final_stage",
            Self::ControlMessage => "control_message",
            Self::OtherLogCategory => "other_log_category",
        }
    }
}

/// Where an event was read although it left the standard: kept, and counted per kind so that a
/// feed that drifted shows in the metrics (`vigil_ingest_tolerated_total{kind}`) and in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tolerance {
    /// A time in an export's form (a space for the `T`, no zone read as UTC, `+0200`).
    TimeLenient,
    /// A time as an epoch number (seconds, milliseconds, microseconds or nanoseconds).
    TimeEpoch,
    /// No time of its own: the transport's (the Kafka record's timestamp, CloudWatch's ingestion
    /// time) stands in.
    TimeInferred,
    /// No `requestURI`: rebuilt from `objectRef`.
    RequestUriInferred,
    /// No `stage`: taken as `ResponseComplete`.
    StageInferred,
    /// An `auditID` (or runtime event id) an earlier, different event had: processed, since the
    /// client sets the id (`Audit-ID`) and a reused one would otherwise hide its call.
    IdReused,
    /// An event over the size limit read without its request and response objects (the facts
    /// detection needs are elsewhere in it).
    OversizedObjectDropped,
}

impl Tolerance {
    pub const fn label(self) -> &'static str {
        match self {
            Self::TimeLenient => "time_lenient",
            Self::TimeEpoch => "time_epoch",
            Self::TimeInferred => "time_inferred",
            Self::RequestUriInferred => "request_uri_inferred",
            Self::StageInferred => "stage_inferred",
            Self::IdReused => "audit_id_reused",
            Self::OversizedObjectDropped => "oversized_object_dropped",
        }
    }
}

/// Size bounds. An event or line over `max_event_bytes` is rejected as too large; request and
/// response objects over `max_object_bytes` are left out of the event (the facts extracted from them
/// are kept whole).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_event_bytes: usize,
    pub max_object_bytes: usize,
    /// auditIDs remembered per generation of the dedup window (two generations are kept).
    pub dedup_window: usize,
    /// The most bytes one gzip input may inflate to; past it the rest of the input is rejected as
    /// too large (what came before is kept). A Kafka message of a megabyte can inflate to gigabytes
    /// (a gzip bomb); the Kafka ingest stage bounds it, `vigil scan` reading files does not.
    pub max_inflated_bytes: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: 4 * 1024 * 1024,
            max_object_bytes: 16 * 1024,
            dedup_window: 250_000,
            max_inflated_bytes: None,
        }
    }
}

/// What ingest did, for the summary and for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestStats {
    pub events: u64,
    pub rejected: BTreeMap<RejectReason, u64>,
    pub skipped: BTreeMap<SkipReason, u64>,
    pub tolerated: BTreeMap<Tolerance, u64>,
}

impl IngestStats {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
    pub fn merge(&mut self, other: &Self) {
        self.events += other.events;
        for (reason, count) in &other.rejected {
            *self.rejected.entry(*reason).or_default() += count;
        }
        for (reason, count) in &other.skipped {
            *self.skipped.entry(*reason).or_default() += count;
        }
        for (kind, count) in &other.tolerated {
            *self.tolerated.entry(*kind).or_default() += count;
        }
    }
}

/// One result of ingesting: an event to pass on, or a rejection to dead-letter or report.
pub type Ingested = Result<Event, Rejection>;

/// The ingest stage's state: limits, the dedup window, counters.
#[derive(Debug)]
pub struct Ingestor {
    limits: Limits,
    dedup: Dedup,
    stats: IngestStats,
    /// The time the transport gave the message being read (a Kafka record's timestamp), for events
    /// that carry none of their own.
    transport_time: Option<i64>,
    /// Times a value spanning several lines was handed to the JSON parser: once per value, which
    /// the tests hold (a value re-parsed at every line made pretty-printed input quadratic).
    multiline_parses: u64,
}

impl Default for Ingestor {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Ingestor {
    pub fn new(limits: Limits) -> Self {
        Self {
            dedup: Dedup::new(limits.dedup_window),
            limits,
            stats: IngestStats::default(),
            transport_time: None,
            multiline_parses: 0,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// How many times a value spanning several lines was parsed (see the field).
    pub fn multiline_parses(&self) -> u64 {
        self.multiline_parses
    }

    /// Ingests one message (a Kafka record's value): any shape above, gzip or plain.
    pub fn ingest_payload(&mut self, payload: &[u8], out: &mut dyn FnMut(Ingested)) {
        self.ingest_reader(payload, out);
    }

    /// Ingests one message with the time its transport gave it (a Kafka record's timestamp, in
    /// microseconds): an event with no time of its own takes it, counted as `time_inferred`.
    pub fn ingest_payload_at(
        &mut self,
        payload: &[u8],
        transport_time_micros: Option<i64>,
        out: &mut dyn FnMut(Ingested),
    ) {
        self.transport_time = transport_time_micros;
        self.ingest_reader(payload, out);
        self.transport_time = None;
    }

    /// Ingests one message whose transport named its cluster (a Kafka record's `vigil.cluster`
    /// header): events whose own envelope names no cluster take it.
    pub fn ingest_payload_from(
        &mut self,
        payload: &[u8],
        transport_time_micros: Option<i64>,
        cluster: Option<&str>,
        out: &mut dyn FnMut(Ingested),
    ) {
        self.transport_time = transport_time_micros;
        match cluster {
            Some(cluster) => {
                let mut with_cluster = |item: Ingested| match item {
                    Ok(Event::Audit(mut event)) => {
                        if event.cluster_hint.is_none() {
                            event.cluster_hint = Some(cluster.to_owned());
                        }
                        out(Ok(Event::Audit(event)));
                    }
                    Ok(Event::Runtime(mut event)) => {
                        if event.cluster_hint.is_none() {
                            event.cluster_hint = Some(cluster.to_owned());
                        }
                        out(Ok(Event::Runtime(event)));
                    }
                    other => out(other),
                };
                self.ingest_reader(payload, &mut with_cluster);
            }
            None => self.ingest_reader(payload, out),
        }
        self.transport_time = None;
    }

    pub(crate) fn transport_time(&self) -> Option<i64> {
        self.transport_time
    }

    pub(crate) fn tolerate(&mut self, kind: Tolerance) {
        *self.stats.tolerated.entry(kind).or_default() += 1;
    }

    /// Ingests a whole stream (a file, stdin). A problem that ends the stream early (a corrupt gzip,
    /// a broken JSON array) is the last rejection emitted; what came before it is kept.
    pub fn ingest_reader<R: std::io::Read>(&mut self, input: R, out: &mut dyn FnMut(Ingested)) {
        if let Err(rejection) = read_stream(self, input, out) {
            self.reject(rejection, out);
        }
    }

    pub(crate) fn reject(&mut self, rejection: Rejection, out: &mut dyn FnMut(Ingested)) {
        *self.stats.rejected.entry(rejection.reason).or_default() += 1;
        out(Err(rejection));
    }

    pub(crate) fn skip(&mut self, reason: SkipReason) {
        *self.stats.skipped.entry(reason).or_default() += 1;
    }

    /// Whether an event goes on: not a repeat of its id with the same content (a redelivery,
    /// skipped as a duplicate); a reused id with other content goes on, counted.
    fn sighting(&mut self, id: &str, event: &impl serde::Serialize) -> dedup::Sighting {
        let sighting = self.dedup.sighting(id, digest(event));
        match sighting {
            dedup::Sighting::First => {}
            dedup::Sighting::Repeat => self.skip(SkipReason::Duplicate),
            dedup::Sighting::Reused => self.tolerate(Tolerance::IdReused),
        }
        sighting
    }

    /// Passes an event on unless its stage is not final or it is a duplicate.
    pub(crate) fn accept(&mut self, mut event: AuditEvent, out: &mut dyn FnMut(Ingested)) {
        if !is_final_stage(&event) {
            self.skip(SkipReason::NonFinalStage);
            return;
        }
        // The request, not its stage: an exec's ResponseStarted and ResponseComplete are one call.
        let request = (
            &event.verb,
            &event.request_uri,
            &event.user,
            &event.impersonated_user,
            &event.source_ips,
            &event.user_agent,
            &event.object_ref,
        );
        match self.sighting(&event.audit_id, &request) {
            dedup::Sighting::First => {}
            dedup::Sighting::Repeat => return,
            dedup::Sighting::Reused => event.audit_id_reused = true,
        }
        self.stats.events += 1;
        out(Ok(Event::Audit(Box::new(event))));
    }
}

impl Ingestor {
    /// Passes a parsed runtime event on (unless a duplicate), or rejects it.
    pub(crate) fn finish_runtime(
        &mut self,
        parsed: Result<RuntimeEvent, Rejection>,
        cluster_hint: Option<&str>,
        out: &mut dyn FnMut(Ingested),
    ) {
        match parsed {
            Ok(mut event) => {
                if event.cluster_hint.is_none() {
                    event.cluster_hint = cluster_hint.map(str::to_owned);
                }
                if self.sighting(&event.event_id, &event) == dedup::Sighting::Repeat {
                    return;
                }
                self.stats.events += 1;
                out(Ok(Event::Runtime(Box::new(event))));
            }
            Err(rejection) => self.reject(rejection, out),
        }
    }
}

/// A digest of a normalized event (or of the request an audit event records): what detection
/// reads, so the same event in another envelope or field order digests the same.
fn digest(event: &impl serde::Serialize) -> u64 {
    struct Digest(vigil_schemas::hash::StableHasher);
    impl std::io::Write for Digest {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            std::hash::Hasher::write(&mut self.0, bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut digest = Digest(vigil_schemas::hash::StableHasher::default());
    // Serializing plain data into a writer that cannot fail does not fail; were it to, the event
    // counts as new rather than being dropped.
    if serde_json::to_writer(&mut digest, event).is_err() {
        return 0;
    }
    std::hash::Hasher::finish(&digest.0)
}

/// Connect requests whose `ResponseStarted` is the moment that matters.
const CONNECT_SUBRESOURCES: [&str; 3] = ["exec", "attach", "portforward"];

fn is_final_stage(event: &AuditEvent) -> bool {
    match event.stage.as_str() {
        "ResponseComplete" | "Panic" => true,
        "ResponseStarted" => event
            .object_ref
            .as_ref()
            .and_then(|object| object.subresource.as_deref())
            .is_some_and(|subresource| CONNECT_SUBRESOURCES.contains(&subresource)),
        _ => false,
    }
}
