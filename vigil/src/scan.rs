//! `vigil scan`: the four stages in one process, each on its own thread, wired by bounded channels
//! that carry batches. No broker: files in, findings out.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread;
use std::time::{Duration, Instant};

use vigil_detect::Engine;
use vigil_enrich::Enricher;
use vigil_ingest::{IngestStats, Ingestor, Rejection};
use vigil_pipeline::{Pipeline, Stages};
use vigil_schemas::{Detection, EnrichedEvent, Event};

use crate::examples;

const BATCH: usize = 512;
const CHANNEL_BATCHES: usize = 16;
/// Rejections shown one by one on stderr before only counting the rest.
const REJECTIONS_SHOWN: usize = 10;
/// Rejections kept as examples, per reason.
const REJECTION_EXAMPLES: usize = 5;

/// Where input comes from.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Stdin,
    /// A bundled example, by name.
    Embedded(&'static str, &'static [u8]),
}

impl Source {
    /// The input's bytes as a reader.
    pub fn open(&self) -> Result<Box<dyn Read + '_>, ScanError> {
        Ok(match self {
            Self::File(path) => Box::new(File::open(path).map_err(|error| ScanError::Open {
                path: self.label(),
                source: error,
            })?),
            Self::Stdin => Box::new(std::io::stdin().lock()),
            Self::Embedded(_, bytes) => Box::new(*bytes),
        })
    }

    pub fn label(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Stdin => "-".to_owned(),
            Self::Embedded(name, _) => format!("(example) {name}"),
        }
    }
}

/// What the scan is asked to do.
#[derive(Debug, Default)]
pub struct ScanOptions {
    pub sources: Vec<Source>,
    /// The stages, built from the settings (and the detectors' restored state).
    pub pipeline: Pipeline,
    pub progress: bool,
    /// Also render the findings as GuardDuty JSON for `--report`, whatever the output format.
    pub report: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("writing findings: {0}")]
    Output(std::io::Error),
    #[error("a pipeline thread failed: {0}")]
    Thread(&'static str),
}

/// Expands files and directories (recursively, sorted, hidden entries left out) in the order given.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<Source>, ScanError> {
    fn walk(path: &Path, out: &mut Vec<Source>) -> Result<(), ScanError> {
        let open_error = |source| ScanError::Open {
            path: path.display().to_string(),
            source,
        };
        let metadata = std::fs::metadata(path).map_err(open_error)?;
        if metadata.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(open_error)?
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|entry| {
                    !entry
                        .file_name()
                        .and_then(|name| name.to_str())
                        .is_some_and(|name| name.starts_with('.'))
                })
                .collect();
            entries.sort();
            for entry in entries {
                walk(&entry, out)?;
            }
        } else {
            out.push(Source::File(path.to_owned()));
        }
        Ok(())
    }
    let mut sources = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            sources.push(Source::Stdin);
        } else {
            walk(path, &mut sources)?;
        }
    }
    Ok(sources)
}

/// The outcome of a scan, for the summary and for tests.
#[derive(Debug, Default)]
pub struct ScanReport {
    pub ingest: IngestStats,
    /// The first few rejections of each reason with the source they came from, as examples; all
    /// of them are counted in `ingest`.
    pub rejections: Vec<(String, Rejection)>,
    pub detections: u64,
    /// The findings written, counted as they went: none is kept in memory.
    pub tally: Tally,
    /// The findings as GuardDuty JSON, what the HTML report reads (when asked for).
    pub report_findings: Vec<serde_json::Value>,
    pub elapsed: Duration,
    pub sources: usize,
    /// The detectors' state changes during the scan (behaviour baselines, burst windows), in order;
    /// an empty value deletes its key.
    pub state_changes: Vec<vigil_detect::StateEntry>,
}

fn ingest_thread(
    mut ingestor: Ingestor,
    sources: Vec<Source>,
    to_enrich: SyncSender<Vec<Event>>,
    read: Arc<AtomicU64>,
) -> Result<(IngestStats, Vec<(String, Rejection)>), ScanError> {
    // The first few rejections of each reason, as examples: every one is counted in the ingest
    // stats, but keeping them all let a stream of garbage fill memory.
    let mut rejections = Vec::new();
    let mut examples: BTreeMap<vigil_ingest::RejectReason, usize> = BTreeMap::new();
    let mut batch = Vec::with_capacity(BATCH);
    for source in sources {
        let label = source.label();
        let reader = source.open()?;
        let mut handle = |item: Result<Event, Rejection>| {
            let event = match item {
                Ok(event) => event,
                Err(rejection) => {
                    let kept = examples.entry(rejection.reason).or_default();
                    if *kept < REJECTION_EXAMPLES {
                        *kept += 1;
                        rejections.push((label.clone(), rejection));
                    }
                    return;
                }
            };
            read.fetch_add(1, Ordering::Relaxed);
            batch.push(event);
            if batch.len() >= BATCH {
                // A closed channel means a later stage stopped; its error is reported from there.
                let _ = to_enrich.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
            }
        };
        ingestor.ingest_reader(reader, &mut handle);
    }
    if !batch.is_empty() {
        let _ = to_enrich.send(batch);
    }
    Ok((ingestor.stats().clone(), rejections))
}

fn enrich_thread(
    mut enricher: Enricher,
    from_ingest: Receiver<Vec<Event>>,
    to_detect: SyncSender<Vec<EnrichedEvent>>,
) {
    for batch in from_ingest {
        let enriched: Vec<EnrichedEvent> = batch
            .into_iter()
            .map(|event| enricher.enrich(event))
            .collect();
        if to_detect.send(enriched).is_err() {
            return;
        }
    }
}

/// Runs the detectors; gives the engine back at the end, so that its state can be saved.
fn detect_thread(
    mut engine: Engine,
    from_enrich: Receiver<Vec<EnrichedEvent>>,
    to_publish: SyncSender<Vec<Detection>>,
) -> Engine {
    let mut detections = Vec::new();
    for batch in from_enrich {
        for event in &batch {
            engine.process(event, &mut detections);
        }
        if !detections.is_empty() && to_publish.send(std::mem::take(&mut detections)).is_err() {
            break;
        }
    }
    engine
}

/// The findings written so far, counted for the summary: by severity and type (archived apart), and
/// how many were evicted early because the store was full.
#[derive(Debug, Default)]
pub struct Tally {
    pub written: u64,
    pub archived: u64,
    pub evicted: u64,
    /// Not archived, by (severity, type).
    pub by_type: BTreeMap<(String, String), u64>,
}

/// Writes findings as JSON lines as they are done, counting them.
struct FindingWriter<'a> {
    out: std::io::BufWriter<&'a mut dyn Write>,
    format: vigil_publish::Format,
    /// GuardDuty JSON of every finding, kept only for `--report`.
    report: Option<Vec<serde_json::Value>>,
    tally: Tally,
}

impl FindingWriter<'_> {
    fn line(&mut self, value: &serde_json::Value) -> Result<(), ScanError> {
        serde_json::to_writer(&mut self.out, value)
            .map_err(|error| ScanError::Output(error.into()))?;
        self.out.write_all(b"\n").map_err(ScanError::Output)
    }

    fn count(&mut self, kind: &str, severity: f64, archived: bool) {
        self.tally.written += 1;
        if archived {
            self.tally.archived += 1;
        } else {
            *self
                .tally
                .by_type
                .entry((severity_name(severity).to_owned(), kind.to_owned()))
                .or_default() += 1;
        }
    }

    /// Writes a finding or sequence rendered by `render` in the output format, and keeps its
    /// GuardDuty JSON for `--report`.
    fn write(
        &mut self,
        render: impl Fn(vigil_publish::Format) -> serde_json::Value,
    ) -> Result<(), ScanError> {
        let rendered = render(self.format);
        self.line(&rendered)?;
        if let Some(report) = &mut self.report {
            report.push(match self.format {
                vigil_publish::Format::GuardDuty => rendered,
                _ => render(vigil_publish::Format::GuardDuty),
            });
        }
        Ok(())
    }

    fn finding(&mut self, finding: &vigil_schemas::Finding) -> Result<(), ScanError> {
        self.count(
            &finding.detection.finding_type,
            finding.detection.severity,
            finding.archived,
        );
        self.write(|format| format.render(finding))
    }

    fn sequence(&mut self, sequence: &vigil_publish::Sequence) -> Result<(), ScanError> {
        self.count(vigil_publish::SEQUENCE_TYPE, sequence.severity, false);
        self.write(|format| format.render_sequence(sequence))
    }
}

/// Runs the pipeline's stages, each on its own thread, to the end of the input, writing the
/// findings to `output` as JSON lines (a finding evicted from a full store as it goes, the rest
/// at the end, oldest first, then the attack sequences) and returns the statistics.
pub fn run(options: ScanOptions, output: &mut dyn Write) -> Result<ScanReport, ScanError> {
    let Stages {
        ingestor,
        enricher,
        engine,
        mut publisher,
        format,
    } = options.pipeline.into_stages();
    let started = Instant::now();
    let sources = options.sources.len();
    let (to_enrich, enrich_input) = sync_channel(CHANNEL_BATCHES);
    let (to_detect, detect_input) = sync_channel(CHANNEL_BATCHES);
    let (to_publish, publish_input) = sync_channel::<Vec<Detection>>(CHANNEL_BATCHES);
    let read = Arc::new(AtomicU64::new(0));

    let ingest = {
        let read = Arc::clone(&read);
        let sources = options.sources;
        thread::Builder::new()
            .name("ingest".into())
            .spawn(move || ingest_thread(ingestor, sources, to_enrich, read))
            .map_err(|_| ScanError::Thread("ingest"))?
    };
    let enrich = thread::Builder::new()
        .name("enrich".into())
        .spawn(move || enrich_thread(enricher, enrich_input, to_detect))
        .map_err(|_| ScanError::Thread("enrich"))?;
    let detect = thread::Builder::new()
        .name("detect".into())
        .spawn(move || detect_thread(engine, detect_input, to_publish))
        .map_err(|_| ScanError::Thread("detect"))?;

    let mut writer = FindingWriter {
        out: std::io::BufWriter::new(output),
        format,
        report: options.report.then(Vec::new),
        tally: Tally::default(),
    };
    // publish runs here, with the progress line.
    let mut detections = 0u64;
    let mut last_progress = Instant::now();
    loop {
        match publish_input.recv_timeout(Duration::from_millis(200)) {
            Ok(batch) => {
                for detection in batch {
                    if !publisher.add(detection).weak {
                        detections += 1;
                    }
                    for finding in publisher.take_evicted() {
                        writer.tally.evicted += 1;
                        writer.finding(&finding)?;
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if options.progress && last_progress.elapsed() >= Duration::from_millis(200) {
            last_progress = Instant::now();
            let events = read.load(Ordering::Relaxed);
            let rate = events as f64 / started.elapsed().as_secs_f64().max(1e-6);
            #[allow(clippy::print_stderr)]
            {
                eprint!(
                    "\r\x1b[2Kscanning: {events} events, {} findings, {rate:.0} events/s",
                    publisher.findings_len()
                );
            }
        }
    }
    if options.progress {
        #[allow(clippy::print_stderr)]
        {
            eprint!("\r\x1b[2K");
        }
    }
    let (ingest_stats, rejections) = ingest.join().map_err(|_| ScanError::Thread("ingest"))??;
    enrich.join().map_err(|_| ScanError::Thread("enrich"))?;
    let mut engine = detect.join().map_err(|_| ScanError::Thread("detect"))?;
    let mut state_changes = Vec::new();
    engine.drain_state(&mut state_changes);

    // The findings held, oldest first, then the attack sequences they form.
    for finding in publisher.findings() {
        writer.finding(finding)?;
    }
    for sequence in publisher.sequences() {
        writer.sequence(sequence)?;
    }
    writer.out.flush().map_err(ScanError::Output)?;
    let FindingWriter { report, tally, .. } = writer;
    Ok(ScanReport {
        ingest: ingest_stats,
        rejections,
        detections,
        tally,
        report_findings: report.unwrap_or_default(),
        elapsed: started.elapsed(),
        sources,
        state_changes,
    })
}

/// The state file's version.
const STATE_FILE_VERSION: u64 = 1;

/// Reads a state file written by [`write_state`]: `{"version": 1, "entries": {key: value}}`, values as
/// text when they are UTF-8 (the baselines' JSON) and `hex:` otherwise.
pub fn read_state(text: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|error| format!("not a vigil state file: {error}"))?;
    if value.get("version").and_then(serde_json::Value::as_u64) != Some(STATE_FILE_VERSION) {
        return Err(format!(
            "a state file of another version (this vigil writes version {STATE_FILE_VERSION})"
        ));
    }
    let entries = value
        .get("entries")
        .and_then(serde_json::Value::as_object)
        .ok_or("a state file without entries")?;
    let mut out = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let text = value
            .as_str()
            .ok_or_else(|| format!("state entry {key:?} is not a string"))?;
        let bytes = match text.strip_prefix("hex:") {
            Some(hex) => (0..hex.len())
                .step_by(2)
                .map(|at| {
                    hex.get(at..at + 2)
                        .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                        .ok_or_else(|| format!("state entry {key:?} has bad hex"))
                })
                .collect::<Result<Vec<u8>, String>>()?,
            None => text.as_bytes().to_vec(),
        };
        out.push((key.clone(), bytes));
    }
    Ok(out)
}

/// The detectors' state as a file `read_state` reads back.
pub fn write_state(state: &BTreeMap<String, Vec<u8>>) -> String {
    let entries: serde_json::Map<String, serde_json::Value> = state
        .iter()
        .map(|(key, value)| {
            let text = match std::str::from_utf8(value) {
                Ok(text) if !text.starts_with("hex:") => text.to_owned(),
                _ => format!(
                    "hex:{}",
                    value
                        .iter()
                        .map(|byte| format!("{byte:02x}"))
                        .collect::<String>()
                ),
            };
            (key.clone(), serde_json::Value::String(text))
        })
        .collect();
    serde_json::json!({"version": STATE_FILE_VERSION, "entries": entries}).to_string()
}

fn severity_name(severity: f64) -> &'static str {
    vigil_schemas::Severity::of(severity).label()
}

/// The summary printed on stderr.
pub fn summary(report: &ScanReport) -> String {
    let stats = &report.ingest;
    let seconds = report.elapsed.as_secs_f64().max(1e-6);
    let mut text = format!(
        "vigil scan: {} events from {} source(s) in {:.2} s ({:.0} events/s)\n",
        stats.events,
        report.sources,
        seconds,
        stats.events as f64 / seconds
    );
    let list = |counts: Vec<(&str, u64)>| {
        counts
            .iter()
            .map(|(label, count)| format!("{label}: {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    text += &format!(
        "  rejected: {}{}\n",
        stats.rejected_total(),
        if stats.rejected.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                list(
                    stats
                        .rejected
                        .iter()
                        .map(|(reason, count)| (reason.label(), *count))
                        .collect()
                )
            )
        }
    );
    for (source, rejection) in report.rejections.iter().take(REJECTIONS_SHOWN) {
        text += &format!("    {source}: {rejection}\n");
    }
    let shown = report.rejections.len().min(REJECTIONS_SHOWN) as u64;
    if stats.rejected_total() > shown {
        text += &format!("    ... and {} more\n", stats.rejected_total() - shown);
    }
    if !stats.skipped.is_empty() {
        text += &format!(
            "  skipped: {} ({})\n",
            stats.skipped_total(),
            list(
                stats
                    .skipped
                    .iter()
                    .map(|(reason, count)| (reason.label(), *count))
                    .collect()
            )
        );
    }
    if !stats.tolerated.is_empty() {
        text += &format!(
            "  tolerated: {} ({})\n",
            stats.tolerated.values().sum::<u64>(),
            list(
                stats
                    .tolerated
                    .iter()
                    .map(|(kind, count)| (kind.label(), *count))
                    .collect()
            )
        );
    }
    let tally = &report.tally;
    let archived = tally.archived;
    text += &format!(
        "  findings: {} (from {} detections){}\n",
        tally.written - archived,
        report.detections,
        if archived > 0 {
            format!(", and {archived} archived by suppression rules")
        } else {
            String::new()
        }
    );
    if tally.evicted > 0 {
        text += &format!(
            "  {} findings were written early and forgotten, the store being full \
             (--max-findings): one raised again is written again, counting afresh\n",
            tally.evicted
        );
    }
    for ((severity, kind), count) in &tally.by_type {
        text += &format!("    {severity:<8} {kind}  x{count}\n");
    }
    text
}

/// The summary's numbers as JSON: `events`, `rejected` and `skipped` by reason, `tolerated` by kind, `detections`,
/// `findings` by type (archived ones apart, under `archived`), `evicted`, `seconds`.
pub fn stats_json(report: &ScanReport) -> serde_json::Value {
    let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
    for ((_, kind), count) in &report.tally.by_type {
        *by_type.entry(kind.as_str()).or_default() += count;
    }
    serde_json::json!({
        "events": report.ingest.events,
        "rejected": report.ingest.rejected.iter().map(|(reason, count)| (reason.label(), *count)).collect::<BTreeMap<_, _>>(),
        "skipped": report.ingest.skipped.iter().map(|(reason, count)| (reason.label(), *count)).collect::<BTreeMap<_, _>>(),
        "tolerated": report.ingest.tolerated.iter().map(|(kind, count)| (kind.label(), *count)).collect::<BTreeMap<_, _>>(),
        "rejections": report.rejections.iter().map(|(source, rejection)| format!("{source}: {rejection}")).collect::<Vec<_>>(),
        "detections": report.detections,
        "findings": by_type,
        "archived": report.tally.archived,
        "evicted": report.tally.evicted,
        "seconds": report.elapsed.as_secs_f64(),
    })
}

/// The bundled example when no path is given.
pub fn embedded_sources() -> Vec<Source> {
    examples::SOURCES
        .iter()
        .map(|(name, bytes)| Source::Embedded(name, bytes))
        .collect()
}

pub fn wants_progress() -> bool {
    std::io::stderr().is_terminal()
}
