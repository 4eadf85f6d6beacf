//! Memory of the process table per million processes tracked: the resident set before and after one
//! million exec events from 100 nodes, each with a realistic binary, arguments and ids, against a
//! table sized to hold them all (capacity 1,000,000 per generation). Linux only (reads
//! /proc/self/statm). `cargo bench -p vigil-enrich --bench process_table`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss
)]

use std::time::Instant;

use vigil_enrich::ProcessTable;
use vigil_schemas::{ProcessInfo, RuntimeEvent};

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("resident pages");
    pages * 4096
}

fn main() {
    const PROCESSES: usize = 1_000_000;
    let mut table = ProcessTable::with_capacity(PROCESSES, 100_000);
    let before = resident_bytes();
    let started = Instant::now();
    let mut event = RuntimeEvent {
        kind: "process_exec".into(),
        sensor: "tetragon".into(),
        container_id: Some(
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
        ),
        ..RuntimeEvent::default()
    };
    for index in 0..PROCESSES {
        let node = format!("ip-10-0-{}-{}.ec2.internal", index % 10, index % 100);
        event.node_name = Some(node);
        // Tetragon's exec ids: base64 of node:ktime:pid, about 56 characters.
        event.process = ProcessInfo {
            pid: Some(i64::try_from(index).unwrap()),
            exec_id: Some(format!(
                "aXAtMTAtMC0xLTIzLmVjMi5pbnRlcm5hbDoxNzEwMjU0NDM1MDAwMDAwMDA6{index:08}"
            )),
            parent_exec_id: Some(format!(
                "aXAtMTAtMC0xLTIzLmVjMi5pbnRlcm5hbDoxNzEwMjU0NDM1MDAwMDAwMDA6{:08}",
                index / 4
            )),
            binary: "/usr/local/bin/python3".into(),
            arguments: Some("-m gunicorn app:server --workers 4 --bind 0.0.0.0:8080".into()),
            cwd: Some("/app".into()),
            uid: Some(1000),
            start_time_micros: Some(1_710_254_435_000_000),
            ..ProcessInfo::default()
        };
        std::hint::black_box(table.observe(&event));
    }
    let elapsed = started.elapsed();
    let after = resident_bytes();
    let (processes, _) = table.len();
    println!(
        "process table: {processes} processes held, {:.0} MiB resident for them ({:.0} bytes a process), {:.0} exec events/s observed",
        (after.saturating_sub(before)) as f64 / (1024.0 * 1024.0),
        (after.saturating_sub(before)) as f64 / processes as f64,
        PROCESSES as f64 / elapsed.as_secs_f64()
    );
}
