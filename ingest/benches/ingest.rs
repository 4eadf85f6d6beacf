//! Parse + normalize throughput over the example day's events: one JSON line at a time, and the
//! same events pretty-printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_ingest::{Ingestor, Limits};
use vigil_schemas::Event;

const EXAMPLE: &str = include_str!("../../examples/audit/day-of-traffic.jsonl");

fn parse_and_normalize(c: &mut Criterion) {
    let lines: Vec<&str> = EXAMPLE.lines().collect();
    let bytes: usize = lines.iter().map(|line| line.len() + 1).sum();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("example_day_per_event", |b| {
        b.iter(|| {
            // A window of 1 makes every event new again for the next iteration.
            let mut ingestor = Ingestor::new(Limits {
                dedup_window: 1 << 20,
                ..Limits::default()
            });
            let mut events = 0u64;
            ingestor.ingest_payload(EXAMPLE.as_bytes(), &mut |item| {
                if let Ok(Event::Audit(_)) = item {
                    events += 1;
                }
            });
            assert_eq!(events, lines.len() as u64);
        });
    });
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("example_day_bytes", |b| {
        b.iter(|| {
            let mut ingestor = Ingestor::default();
            ingestor.ingest_payload(EXAMPLE.as_bytes(), &mut |_| {});
        });
    });
    // The same day pretty-printed, one value over many lines as `kubectl -o json` and `jq` write
    // it: read in one pass, it should cost about what the JSON lines cost.
    let pretty: String = lines
        .iter()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            serde_json::to_string_pretty(&value).unwrap() + "\n"
        })
        .collect();
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("example_day_pretty_printed_per_event", |b| {
        b.iter(|| {
            let mut ingestor = Ingestor::new(Limits {
                dedup_window: 1 << 20,
                ..Limits::default()
            });
            let mut events = 0u64;
            ingestor.ingest_payload(pretty.as_bytes(), &mut |item| {
                if let Ok(Event::Audit(_)) = item {
                    events += 1;
                }
            });
            assert_eq!(events, lines.len() as u64);
        });
    });
    group.finish();
}

criterion_group!(benches, parse_and_normalize);
criterion_main!(benches);
