//! The four stages wired once, in one process: settings in, bytes in, findings out.
//!
//! [`Pipeline`] builds ingest, enrich, detect and publish from [`Settings`] the way the Kafka services
//! build them (clusters and lists for enrich, rules and baselines for detect, suppression for publish)
//! and runs an event through all four in order. `vigil scan` takes the same stages apart
//! ([`Pipeline::into_stages`]) to run each on its own thread; `vigil rules test`, the broker tests'
//! expectation and the detect tests call it directly. There is one wiring, so they cannot disagree.

use std::io::Read;

use vigil_detect::{BuildError, Engine, StateEntry};
use vigil_enrich::{Enricher, Inventory, ThreatIntel};
use vigil_ingest::{IngestStats, Ingestor, Rejection};
use vigil_publish::format::Format;
use vigil_publish::{Added, Publisher, Sequence};
use vigil_schemas::{Detection, Event, Finding};
use vigil_settings::Settings;

/// The four stages' state, for a runner that drives them itself (`vigil scan`'s threads).
#[derive(Debug, Default)]
pub struct Stages {
    pub ingestor: Ingestor,
    pub enricher: Enricher,
    pub engine: Engine,
    pub publisher: Publisher,
    /// How findings are written out.
    pub format: Format,
}

/// What happened to one input record, for callers that report more than the findings.
#[derive(Debug)]
pub enum Step<'a> {
    /// An event passed ingest; its detections (if any) follow as `Detected`.
    Event(&'a Event),
    /// Ingest refused a record, with the reason.
    Rejected(&'a Rejection),
    /// A detector or rule fired on the last event; `archived` says whether the finding it folded
    /// into is archived by a suppression rule.
    Detected {
        detection: &'a Detection,
        added: Added,
        archived: bool,
    },
}

/// Ingest, enrich, detect and publish in one process, in order, one event at a time.
#[derive(Debug, Default)]
pub struct Pipeline {
    stages: Stages,
    detections: u64,
    /// Reused between events: the detections of the event in hand.
    scratch: Vec<Detection>,
}

impl Pipeline {
    /// The stages as the settings say, with the threat intelligence already read from the
    /// settings' lists; the detectors are built from the settings.
    pub fn new(settings: &Settings, intel: ThreatIntel) -> Result<Self, BuildError> {
        Ok(Self::with_engine(
            settings,
            intel,
            Engine::build(&settings.detect)?,
        ))
    }

    /// The same with detectors built (or restored from saved state) by the caller.
    pub fn with_engine(settings: &Settings, intel: ThreatIntel, engine: Engine) -> Self {
        Self::from_stages(Stages {
            ingestor: Ingestor::default(),
            enricher: Enricher::new(settings.clusters.clone(), intel, Inventory::default()),
            engine,
            publisher: Publisher::new(settings.suppression.clone(), settings.correlation.clone()),
            format: settings.format,
        })
    }

    /// Holds at most `cap` findings in publish (`vigil scan --max-findings`).
    pub fn bound_findings(&mut self, cap: usize) {
        let publisher = std::mem::take(&mut self.stages.publisher);
        self.stages.publisher = publisher.with_max_findings(cap);
    }

    /// The same with ingest's size bounds (`--max-event-bytes`).
    #[must_use]
    pub fn with_ingest_limits(mut self, limits: vigil_ingest::Limits) -> Self {
        self.stages.ingestor = Ingestor::new(limits);
        self
    }

    pub fn from_stages(stages: Stages) -> Self {
        Self {
            stages,
            detections: 0,
            scratch: Vec::new(),
        }
    }

    /// Reads every record of one input (any shape ingest reads), all the way through publish.
    pub fn read(&mut self, input: impl Read, observe: &mut dyn FnMut(Step<'_>)) {
        let Self {
            stages, scratch, ..
        } = self;
        let mut detections = 0;
        let Stages {
            ingestor,
            enricher,
            engine,
            publisher,
            ..
        } = stages;
        ingestor.ingest_reader(input, &mut |item| {
            detections += run_event(enricher, engine, publisher, scratch, item, observe);
        });
        self.detections += detections;
    }

    /// One input record (a Kafka message's value, a file's bytes), all the way through publish.
    pub fn read_payload(&mut self, payload: &[u8], observe: &mut dyn FnMut(Step<'_>)) {
        self.read(payload, observe);
    }

    /// Every finding so far, oldest first, archived ones included (they say so).
    pub fn findings(&self) -> Vec<&Finding> {
        self.stages.publisher.findings()
    }

    /// Every attack sequence so far, oldest first.
    pub fn sequences(&self) -> Vec<&Sequence> {
        self.stages.publisher.sequences()
    }

    /// Detections so far (a finding counts one or more).
    pub fn detections(&self) -> u64 {
        self.detections
    }

    pub fn ingest_stats(&self) -> &IngestStats {
        self.stages.ingestor.stats()
    }

    /// The detectors' state changes since the last call (baselines, windows), for a state file.
    pub fn drain_state(&mut self, out: &mut Vec<StateEntry>) {
        self.stages.engine.drain_state(out);
    }

    /// The stages, for a runner that drives them itself.
    pub fn into_stages(self) -> Stages {
        self.stages
    }
}

/// Enrich, detect and publish one ingest result; returns the number of detections.
fn run_event(
    enricher: &mut Enricher,
    engine: &mut Engine,
    publisher: &mut Publisher,
    scratch: &mut Vec<Detection>,
    item: Result<Event, Rejection>,
    observe: &mut dyn FnMut(Step<'_>),
) -> u64 {
    let event = match item {
        Ok(event) => event,
        Err(rejection) => {
            observe(Step::Rejected(&rejection));
            return 0;
        }
    };
    observe(Step::Event(&event));
    scratch.clear();
    engine.process(&enricher.enrich(event), scratch);
    let mut count = 0;
    for detection in scratch.drain(..) {
        // The finding keeps the latest occurrence's details, not necessarily this one's.
        let published = publisher.add(detection.clone());
        if published.weak {
            continue; // a weak signal is no detection of its own
        }
        count += 1;
        observe(Step::Detected {
            detection: &detection,
            added: published.added,
            archived: published.archived,
        });
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_settings::SettingsArgs;

    const ANONYMOUS_LIST: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"4d2c8b1e-0000-4000-8000-000000000001","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/secrets","verb":"list","user":{"username":"system:anonymous","groups":["system:unauthenticated"]},"sourceIPs":["198.51.100.23"],"userAgent":"curl/8.5.0","objectRef":{"resource":"secrets","namespace":"shop","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-11-02T10:00:00.000000Z","stageTimestamp":"2026-11-02T10:00:00.010000Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}"#;

    fn settings(text: &str) -> Settings {
        let no_files: ReadFileFn<'_> = &|path| {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} is not part of this test", path.display()),
            ))
        };
        Settings::from_text("test.toml", text, None, &SettingsArgs::default(), no_files)
            .expect("settings")
    }

    type ReadFileFn<'a> = vigil_settings::ReadFile<'a>;

    /// Runs `input` and returns (events, rejections, detections with their archived flag).
    fn run(pipeline: &mut Pipeline, input: &str) -> (usize, usize, Vec<(String, bool)>) {
        let (mut events, mut rejected, mut detected) = (0, 0, Vec::new());
        pipeline.read(input.as_bytes(), &mut |step| match step {
            Step::Event(_) => events += 1,
            Step::Rejected(_) => rejected += 1,
            Step::Detected {
                detection,
                archived,
                ..
            } => detected.push((detection.finding_type.clone(), archived)),
        });
        (events, rejected, detected)
    }

    #[test]
    fn an_event_goes_through_every_stage_and_a_bad_line_is_rejected_alone() {
        let mut pipeline = Pipeline::new(&settings(""), ThreatIntel::default()).unwrap();
        let input = format!("{ANONYMOUS_LIST}\n{{\"kind\": \"Event\", \"truncated\n");
        let (events, rejected, detected) = run(&mut pipeline, &input);
        assert_eq!((events, rejected), (1, 1));
        assert!(
            detected.iter().any(|(kind, archived)| kind
                == "CredentialAccess:Kubernetes/SuccessfulAnonymousAccess"
                && !archived),
            "{detected:?}"
        );
        assert_eq!(pipeline.detections(), detected.len() as u64);
        assert_eq!(pipeline.findings().len(), detected.len());
        assert_eq!(pipeline.ingest_stats().events, 1);
    }

    #[test]
    fn the_settings_suppression_archives_what_the_pipeline_publishes() {
        let mut pipeline = Pipeline::new(
            &settings(
                "[[suppression]]\nname = \"anonymous-ok\"\n[suppression.criterion]\n\"type\" = { eq = [\"CredentialAccess:Kubernetes/SuccessfulAnonymousAccess\"] }\n",
            ),
            ThreatIntel::default(),
        )
        .unwrap();
        let (_, _, detected) = run(&mut pipeline, ANONYMOUS_LIST);
        let anonymous: Vec<bool> = detected
            .iter()
            .filter(|(kind, _)| kind == "CredentialAccess:Kubernetes/SuccessfulAnonymousAccess")
            .map(|(_, archived)| *archived)
            .collect();
        assert_eq!(anonymous, vec![true]);
        // Redelivered: the same finding, not a second one, and no second count.
        let before: Vec<(String, i64)> = pipeline
            .findings()
            .iter()
            .map(|finding| (finding.id.clone(), finding.count))
            .collect();
        run(&mut pipeline, ANONYMOUS_LIST);
        let after: Vec<(String, i64)> = pipeline
            .findings()
            .iter()
            .map(|finding| (finding.id.clone(), finding.count))
            .collect();
        assert_eq!(before, after);
    }
}
