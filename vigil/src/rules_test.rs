//! `vigil rules test`: a user's rules over example events, with what each rule found.

use std::io::Write;
use std::path::PathBuf;

use vigil_detect::Engine;
use vigil_enrich::{ClusterConfig, Enricher, Inventory, Normalized, ThreatIntel};
use vigil_ingest::{Ingested, Ingestor};

/// One rule firing on one event.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The file and the event's position in it (1-based, events not lines).
    pub place: String,
    pub rule: String,
    pub finding_type: String,
    pub title: String,
}

#[derive(Debug, Default)]
pub struct Results {
    pub events: usize,
    pub rejected: usize,
    pub hits: Vec<Hit>,
}

/// Runs the engine over every event of the files, enriched with the settings' clusters and lists
/// as the services enrich them.
pub fn run(
    paths: &[PathBuf],
    mut engine: Engine,
    clusters: ClusterConfig,
    intel: ThreatIntel,
) -> Result<Results, String> {
    let sources = crate::scan::expand_paths(paths).map_err(|error| error.to_string())?;
    let mut ingestor = Ingestor::default();
    let mut enricher = Enricher::new(clusters, intel, Inventory::default());
    let mut results = Results::default();
    let mut detections = Vec::new();
    for source in sources {
        let label = source.label();
        let reader = source.open().map_err(|error| error.to_string())?;
        let mut ordinal = 0usize;
        ingestor.ingest_reader(reader, &mut |item| {
            let event = match item {
                Ingested::Event(event) => Normalized::Audit(event),
                Ingested::Runtime(event) => Normalized::Runtime(event),
                Ingested::Rejected(_) => {
                    results.rejected += 1;
                    return;
                }
            };
            {
                ordinal += 1;
                results.events += 1;
                detections.clear();
                engine.process(&enricher.enrich(event), &mut detections);
                for detection in detections.drain(..) {
                    results.hits.push(Hit {
                        place: format!("{label} event {ordinal}"),
                        rule: detection.detector,
                        finding_type: detection.finding_type,
                        title: detection.title,
                    });
                }
            }
        });
    }
    Ok(results)
}

/// Prints the hits and a line per rule; returns whether every expectation held.
pub fn report(
    out: &mut dyn Write,
    rules: &[String],
    results: &Results,
    expect_fire: &[String],
    expect_quiet: &[String],
) -> std::io::Result<bool> {
    for hit in &results.hits {
        writeln!(
            out,
            "{}: {} -> {}: {}",
            hit.place, hit.rule, hit.finding_type, hit.title
        )?;
    }
    writeln!(
        out,
        "{} events ({} rejected), {} detections",
        results.events,
        results.rejected,
        results.hits.len()
    )?;
    let mut held = true;
    for rule in rules {
        let count = results.hits.iter().filter(|hit| &hit.rule == rule).count();
        let expectation = if expect_fire.contains(rule) {
            let ok = count > 0;
            held &= ok;
            if ok {
                "expected to fire: ok"
            } else {
                "expected to fire: FAILED"
            }
        } else if expect_quiet.contains(rule) {
            let ok = count == 0;
            held &= ok;
            if ok {
                "expected quiet: ok"
            } else {
                "expected quiet: FAILED"
            }
        } else {
            ""
        };
        writeln!(out, "  {rule}: {count} detection(s) {expectation}")?;
    }
    Ok(held)
}
