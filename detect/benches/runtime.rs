//! Runtime events through normalize (ingest), enrich (process table, intel) and detect (every
//! built-in detector), over the example day's runtime half: each step alone and the three together.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_detect::Engine;
use vigil_enrich::Enricher;
use vigil_ingest::Ingestor;
use vigil_schemas::Event;
use vigil_schemas::{EnrichedEvent, RuntimeEvent};

const TETRAGON: &[u8] = include_bytes!("../../examples/runtime/tetragon.jsonl.gz");
const DNS: &str = include_str!("../../examples/runtime/dns.jsonl");

fn input() -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(TETRAGON)
        .read_to_string(&mut text)
        .unwrap();
    text + DNS
}

fn normalize(text: &str) -> Vec<RuntimeEvent> {
    let mut events = Vec::new();
    Ingestor::default().ingest_payload(text.as_bytes(), &mut |item| {
        if let Ok(Event::Runtime(event)) = item {
            events.push(*event);
        }
    });
    events
}

fn runtime_pipeline(c: &mut Criterion) {
    let text = input();
    let events = normalize(&text);
    let mut enricher = Enricher::default();
    let enriched: Vec<EnrichedEvent> = events
        .iter()
        .cloned()
        .map(|event| enricher.enrich_runtime(event))
        .collect();
    let mut group = c.benchmark_group("runtime");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("normalize", |b| b.iter(|| normalize(&text)));
    group.bench_function("enrich", |b| {
        b.iter(|| {
            let mut enricher = Enricher::default();
            for event in &events {
                std::hint::black_box(enricher.enrich_runtime(event.clone()));
            }
        });
    });
    group.bench_function("detect", |b| {
        b.iter_batched(
            Engine::default,
            |mut engine| {
                let mut detections = Vec::new();
                for event in &enriched {
                    engine.process(event, &mut detections);
                }
                detections
            },
            criterion::BatchSize::SmallInput,
        );
    });
    group.bench_function("normalize_enrich_detect", |b| {
        b.iter_batched(
            || (Enricher::default(), Engine::default()),
            |(mut enricher, mut engine)| {
                let mut detections = Vec::new();
                Ingestor::default().ingest_payload(text.as_bytes(), &mut |item| {
                    if let Ok(Event::Runtime(event)) = item {
                        engine.process(&enricher.enrich_runtime(*event), &mut detections);
                    }
                });
                detections
            },
            criterion::BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, runtime_pipeline);
criterion_main!(benches);
