//! Detection cost per event: enrich + every built-in detector over the example day's events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_detect::Engine;
use vigil_enrich::Enricher;
use vigil_ingest::Ingestor;
use vigil_schemas::EnrichedEvent;
use vigil_schemas::Event;

const EXAMPLE: &str = include_str!("../../examples/audit/day-of-traffic.jsonl");

fn detect_per_event(c: &mut Criterion) {
    let mut events = Vec::new();
    Ingestor::default().ingest_payload(EXAMPLE.as_bytes(), &mut |item| {
        if let Ok(Event::Audit(event)) = item {
            events.push(*event);
        }
    });
    let mut enricher = Enricher::default();
    let enriched: Vec<EnrichedEvent> = events
        .iter()
        .cloned()
        .map(|event| enricher.enrich_audit(event))
        .collect();
    let mut group = c.benchmark_group("detect");
    group.throughput(Throughput::Elements(enriched.len() as u64));
    group.bench_function("builtin_rules_per_event", |b| {
        // A fresh engine for every pass (the workload detectors remember what they reported), built
        // outside the timing: loading the rule files is start-up work, not per-event work.
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
    group.bench_function("enrich_per_event", |b| {
        b.iter(|| {
            let mut enricher = Enricher::default();
            for event in &events {
                std::hint::black_box(enricher.enrich_audit(event.clone()));
            }
        });
    });
    group.finish();
}

criterion_group!(benches, detect_per_event);
criterion_main!(benches);
