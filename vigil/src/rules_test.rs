//! `vigil rules test`: a user's rules over example events, with what each rule found.

use std::io::Write;
use std::path::PathBuf;

use vigil_pipeline::{Pipeline, Step};

/// One rule firing on one event.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The file and the event's position in it (1-based, events not lines).
    pub place: String,
    pub rule: String,
    pub finding_type: String,
    pub title: String,
    /// The finding it folds into is archived by one of the settings' suppression rules.
    pub archived: bool,
}

#[derive(Debug, Default)]
pub struct Results {
    pub events: usize,
    pub rejected: usize,
    pub hits: Vec<Hit>,
}

/// Runs the pipeline over every event of the files: enriched with the settings' clusters and
/// lists, and published through their suppression rules, as the services do.
pub fn run(paths: &[PathBuf], mut pipeline: Pipeline) -> Result<Results, crate::scan::ScanError> {
    let sources = crate::scan::expand_paths(paths)?;
    let mut results = Results::default();
    for source in sources {
        let label = source.label();
        let reader = source.open()?;
        let mut ordinal = 0usize;
        pipeline.read(reader, &mut |step| match step {
            Step::Rejected(_) => results.rejected += 1,
            Step::Event(_) => {
                ordinal += 1;
                results.events += 1;
            }
            Step::Detected {
                detection,
                archived,
                ..
            } => results.hits.push(Hit {
                place: format!("{label} event {ordinal}"),
                rule: detection.detector.clone(),
                finding_type: detection.finding_type.clone(),
                title: detection.title.clone(),
                archived,
            }),
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
            "{}: {} -> {}: {}{}",
            hit.place,
            hit.rule,
            hit.finding_type,
            hit.title,
            if hit.archived {
                " (archived by a suppression rule)"
            } else {
                ""
            }
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
