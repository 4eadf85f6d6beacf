//! The codec's direct serde writer writes the same bytes as apache-avro's `Value` path, and its
//! direct reader reads back the same record, for every record a real run produces: the example day
//! (audit and runtime), and three weeks of simulated traffic with its detections and findings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use vigil_pipeline::Step;
use vigil_schemas::codec::{Codec, Record};
use vigil_schemas::model::Event;

fn same_bytes<T: Record + std::fmt::Debug + PartialEq>(codec: &Codec, record: &T) {
    let direct = codec.encode(record).expect("direct encoding");
    let through_value = codec.encode_through_value(record).expect("Value encoding");
    assert_eq!(direct, through_value, "{record:?}");
    let read_back: T = codec.decode(&direct).expect("direct reading");
    let read_through_value: T = codec.decode_through_value(&direct).expect("Value reading");
    assert_eq!(&read_back, record);
    assert_eq!(read_back, read_through_value);
}

#[test]
fn the_direct_writer_and_reader_agree_with_the_value_path() {
    let mut pipeline = common::example_pipeline();
    let repo = common::repo();
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for dir in ["examples/audit", "examples/runtime"] {
        for entry in std::fs::read_dir(repo.join(dir)).unwrap() {
            inputs.push(std::fs::read(entry.unwrap().path()).unwrap());
        }
    }
    let options = vigil_sim::EvalOptions {
        seed: 5,
        principals: 12,
        days: 21,
        learn_days: 10,
    };
    inputs.push(
        vigil_sim::stream(&options)
            .iter()
            .map(|event| vigil_sim::audit_json(event) + "\n")
            .collect::<String>()
            .into_bytes(),
    );
    let codec = Codec::new().unwrap();
    let (mut audit, mut runtime, mut detections) = (0, 0, 0);
    for input in &inputs {
        pipeline.read_payload(input, &mut |step| match step {
            Step::Event(Event::Audit(event)) => {
                same_bytes(&codec, event.as_ref());
                audit += 1;
            }
            Step::Event(Event::Runtime(event)) => {
                same_bytes(&codec, event.as_ref());
                runtime += 1;
            }
            Step::Detected { detection, .. } => {
                same_bytes(&codec, detection);
                detections += 1;
            }
            Step::Rejected(_) => {}
        });
    }
    let findings = pipeline.findings();
    for finding in &findings {
        same_bytes(&codec, *finding);
    }
    assert!(
        audit > 1000 && runtime > 10 && detections > 50 && findings.len() > 30,
        "too little material: {audit} audit, {runtime} runtime, {detections} detections, {} findings",
        findings.len()
    );
}
