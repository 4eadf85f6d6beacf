//! Baselines' memory and speed: bytes of checkpointed state per tracked principal (the evaluation's
//! 200 principals over 28 days, all audit scopes) and per tracked image and workload (200 images
//! run as 200 Deployments, each with its own
//! executables, process tree and destinations over 14 days), and events per second through detect
//! with the image baselines on. The byte counts are printed before criterion's timings.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::indexing_slicing
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_detect::{DetectConfig, Engine, StateEntry};
use vigil_schemas::{ClusterDetails, EnrichedEvent, ProcessInfo, RuntimeEvent};
use vigil_sim::{EvalOptions, evaluate};

const DAY: i64 = 86_400_000_000;
const START: i64 = 1_709_510_400_000_000;
const IMAGES: usize = 200;

/// One image's day: its entrypoint forks its usual programs, which resolve their usual domains.
fn image_day(image: usize, day: i64, out: &mut Vec<EnrichedEvent>) {
    let binaries: Vec<String> = (0..15)
        .map(|b| format!("/usr/bin/tool-{image}-{b}"))
        .collect();
    for step in 0..40i64 {
        let at = START + day * DAY + step * 2_000_000_000 + i64::try_from(image).unwrap();
        let index = usize::try_from(step).unwrap();
        let binary = &binaries[index % binaries.len()];
        let parent = &binaries[(index * 7 + 3) % binaries.len()];
        let mut runtime = RuntimeEvent {
            event_id: format!("{image}-{day}-{step}"),
            event_time_micros: at,
            kind: if step % 5 == 4 {
                "dns_query"
            } else {
                "process_exec"
            }
            .into(),
            sensor: "tetragon".into(),
            container_id: Some(format!("c{image}")),
            image: Some(format!("registry.example/team/app-{image}:1.{day}")),
            pod_name: Some(format!("app-{image}-6f7d9c8b5-x7k2p")),
            pod_namespace: Some("shop".into()),
            process: ProcessInfo {
                binary: binary.clone(),
                ..ProcessInfo::default()
            },
            parent: Some(ProcessInfo {
                binary: parent.clone(),
                ..ProcessInfo::default()
            }),
            ..RuntimeEvent::default()
        };
        if step % 5 == 4 {
            runtime.dns_query = Some(format!("api-{}.partner-{image}.example", step % 8));
        }
        out.push(EnrichedEvent {
            runtime: Some(runtime),
            cluster: ClusterDetails {
                name: "bench".into(),
                ..ClusterDetails::default()
            },
            ..EnrichedEvent::default()
        });
    }
}

fn image_events(days: std::ops::Range<i64>) -> Vec<EnrichedEvent> {
    let mut events = Vec::new();
    for day in days {
        for image in 0..IMAGES {
            image_day(image, day, &mut events);
        }
    }
    events
}

fn image_engine() -> Engine {
    let mut engine = Engine::build(&DetectConfig::default()).unwrap();
    engine.retain(|name| name == "image_baselines");
    engine
}

/// (entities, bytes) of the image scope and of the workload scope.
fn state_bytes(engine: &mut Engine) -> ((usize, usize), (usize, usize)) {
    let mut state: Vec<StateEntry> = Vec::new();
    engine.drain_state(&mut state);
    let mut latest = std::collections::BTreeMap::new();
    for entry in state {
        latest.insert(entry.key, entry.value.map_or(0, |value| value.len()));
    }
    let scope = |workloads: bool| {
        let sizes: Vec<usize> = latest
            .iter()
            .filter(|(key, _)| key.contains("/workload:") == workloads)
            .map(|(_, bytes)| *bytes)
            .collect();
        (sizes.len(), sizes.iter().sum())
    };
    (scope(false), scope(true))
}

fn baselines(c: &mut Criterion) {
    let report = evaluate(&EvalOptions {
        seed: 1,
        principals: 200,
        days: 28,
        learn_days: 14,
    })
    .unwrap();
    println!(
        "audit baselines (principal, peer group, namespace, cluster, volume): {} principals, {} bytes of state, {:.0} bytes a principal",
        report.principals,
        report.state_bytes,
        report.state_bytes as f64 / report.principals as f64
    );

    let learning = image_events(0..14);
    let mut engine = image_engine();
    let mut out = Vec::new();
    for event in &learning {
        engine.process(event, &mut out);
    }
    let ((images, bytes), (workloads, workload_bytes)) = state_bytes(&mut engine);
    println!(
        "image baselines: {images} images, {bytes} bytes of state, {:.0} bytes an image; {workloads} workloads, {:.0} bytes a workload; {} findings while learning",
        bytes as f64 / images.max(1) as f64,
        workload_bytes as f64 / workloads.max(1) as f64,
        out.len()
    );

    // A learned day through detect with the image baselines on.
    let day = image_events(14..15);
    let mut group = c.benchmark_group("baselines");
    group.throughput(Throughput::Elements(day.len() as u64));
    group.bench_function("image_baselines_learned_day", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            for event in &day {
                engine.process(event, &mut out);
            }
            out.len()
        });
    });
    group.finish();
}

criterion_group!(benches, baselines);
criterion_main!(benches);
