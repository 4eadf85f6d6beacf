//! What publish raises does not depend on the order a cluster's detections arrive in: through
//! Kafka, a raw topic's partitions interleave as the consumers read them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

mod common;

use vigil_pipeline::Step;
use vigil_publish::Publisher;
use vigil_schemas::Detection;

fn detections() -> Vec<Detection> {
    let options = vigil_sim::EvalOptions {
        seed: 11,
        principals: 20,
        days: 21,
        learn_days: 10,
    };
    let text: String = vigil_sim::stream(&options)
        .iter()
        .map(|event| vigil_sim::audit_json(event) + "\n")
        .collect();
    let mut pipeline = common::example_pipeline();
    let mut found = Vec::new();
    pipeline.read_payload(text.as_bytes(), &mut |step| {
        if let Step::Detected { detection, .. } = step {
            found.push(detection.clone());
        }
    });
    found
}

fn published(detections: impl IntoIterator<Item = Detection>) -> BTreeMap<String, (String, i64)> {
    let mut publisher = Publisher::default();
    for detection in detections {
        publisher.add(detection);
    }
    let mut all: BTreeMap<String, (String, i64)> = publisher
        .findings()
        .iter()
        .map(|f| (f.id.clone(), (f.detection.finding_type.clone(), f.count)))
        .collect();
    for sequence in publisher.sequences() {
        all.insert(
            sequence.id.clone(),
            (vigil_publish::SEQUENCE_TYPE.to_owned(), sequence.count),
        );
    }
    all
}

#[test]
fn findings_chains_and_sequences_do_not_depend_on_arrival_order() {
    let detections = detections();
    let in_order = published(detections.clone());
    assert!(
        in_order
            .values()
            .any(|(kind, _)| kind.contains("AnomalousBehavior")),
        "{in_order:?}"
    );
    // Partitions read in turns of a few records: each chunk of 16 or 8 detections reversed (hours
    // of this stream's event time; disorder beyond the correlation window, a day, drops the late
    // signals from correlation: docs/correlation.md).
    for chunk in [8, 16] {
        let shuffled: Vec<Detection> = detections
            .chunks(chunk)
            .flat_map(|records| records.iter().rev().cloned())
            .collect();
        assert_eq!(in_order, published(shuffled), "chunks of {chunk} reversed");
    }
    assert!(
        in_order
            .values()
            .any(|(kind, _)| kind == vigil_publish::SEQUENCE_TYPE),
        "the injected anomalies make an attack sequence: {in_order:?}"
    );
}
