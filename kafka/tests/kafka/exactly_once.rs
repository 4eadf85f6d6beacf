//! `--processing-guarantee exactly-once` on Apache Kafka: every stage SIGKILLed at a random point
//! (several seeds) while the example day flows, and a `read_committed` reader of the findings sees
//! exactly the records an uninterrupted run writes (no duplicate, no gap), and the state topics hold
//! exactly what they hold after it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::broker::{assert_same_findings, wait_for_findings};
use crate::harness::*;

const STATE_TOPICS: [&str; 3] = [
    "vigil.inventory",
    "vigil.detect.state",
    "vigil.publish.state",
];

/// What a run leaves behind.
#[derive(Debug, PartialEq, Eq)]
struct Written {
    /// Per finding id, every record written for it, in order.
    findings: BTreeMap<String, Vec<String>>,
    /// Per state topic and key, the last value (None: deleted).
    state: BTreeMap<(String, String), Option<Vec<u8>>>,
}

/// A small deterministic generator (xorshift64*): the kill points of one seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

fn exactly_once(stage: &str, extra: &[String]) -> Vec<String> {
    let mut args = vec![
        "--processing-guarantee".to_owned(),
        "exactly-once".to_owned(),
        // Stable across the restarts of this instance: a restart fences its previous life.
        "--instance-id".to_owned(),
        format!("test-{stage}"),
    ];
    args.extend(extra.iter().cloned());
    args
}

/// Runs the example day through the exactly-once pipeline; with a seed, SIGKILLs each stage once,
/// in a random order, at random points, restarting it at once.
fn run(seed: Option<u64>) -> Written {
    let name = seed.map_or_else(
        || "exactly-once".to_owned(),
        |seed| format!("exactly-once-{seed}"),
    );
    let broker = Broker::start(&name);
    create_topics(&broker, &["vigil.audit.raw"]);
    let mut stages = vec![
        Stage::start("ingest", &broker, &exactly_once("ingest", &[])),
        Stage::start("enrich", &broker, &exactly_once("enrich", &settings_args())),
        Stage::start("detect", &broker, &exactly_once("detect", &settings_args())),
        Stage::start(
            "publish",
            &broker,
            &exactly_once("publish", &settings_args()),
        ),
    ];
    for stage in &stages {
        stage.wait_ready(Duration::from_secs(60));
    }
    let lines = example_lines();
    let mut random = seed.map(|seed| Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1));
    let mut order: Vec<usize> = (0..stages.len()).collect();
    if let Some(random) = random.as_mut() {
        for index in (1..order.len()).rev() {
            let other = usize::try_from(random.below(index as u64 + 1)).unwrap_or(0);
            order.swap(index, other);
        }
    }
    for (chunk, victim) in lines.chunks(lines.len().div_ceil(order.len())).zip(&order) {
        produce(&broker, "vigil.audit.raw", chunk);
        if let Some(random) = random.as_mut() {
            std::thread::sleep(Duration::from_millis(random.below(2_000)));
            stages[*victim].restart();
        }
    }
    let expected = example_expected();
    let found = wait_for_findings(&broker, &expected);
    assert_same_findings(&found, &expected, &stages);

    let quiet = Duration::from_secs(3);
    let mut findings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in read_all(&broker, "vigil.findings", quiet) {
        let key = String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
        let value =
            String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned();
        findings.entry(key).or_default().push(value);
    }
    let mut state = BTreeMap::new();
    for topic in STATE_TOPICS {
        for record in read_all(&broker, topic, quiet) {
            let key =
                String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
            state.insert((topic.to_owned(), key), record.value);
        }
    }
    for stage in &mut stages {
        assert!(stage.terminate().success(), "{} exits cleanly", stage.name);
    }
    Written { findings, state }
}

/// One side of two values, from a little before where they first differ.
fn around_difference(found: Option<Vec<u8>>, clean: Option<Vec<u8>>, found_side: bool) -> String {
    let found = String::from_utf8_lossy(&found.unwrap_or_default()).into_owned();
    let clean = String::from_utf8_lossy(&clean.unwrap_or_default()).into_owned();
    let at = found
        .bytes()
        .zip(clean.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| found.len().min(clean.len()));
    let side = if found_side { &found } else { &clean };
    let from = at.saturating_sub(80);
    side.get(from..side.len().min(at + 160))
        .unwrap_or(side)
        .to_owned()
}

/// What differs between two runs, readably.
fn difference(found: &Written, clean: &Written) -> String {
    let mut lines = Vec::new();
    for (id, records) in &clean.findings {
        match found.findings.get(id) {
            None => lines.push(format!("finding {id}: no record")),
            Some(seen) if seen != records => lines.push(format!(
                "finding {id}: {} records, the uninterrupted run wrote {}",
                seen.len(),
                records.len()
            )),
            Some(_) => {}
        }
    }
    for id in found
        .findings
        .keys()
        .filter(|id| !clean.findings.contains_key(*id))
    {
        lines.push(format!(
            "finding {id}: not written by the uninterrupted run"
        ));
    }
    for (key, value) in &clean.state {
        let seen = found.state.get(key);
        if seen != Some(value) {
            lines.push(format!(
                "state {key:?} differs:\n  found {}\n  clean {}",
                around_difference(seen.cloned().flatten(), value.clone(), true),
                around_difference(seen.cloned().flatten(), value.clone(), false)
            ));
        }
    }
    for key in found
        .state
        .keys()
        .filter(|key| !clean.state.contains_key(*key))
    {
        lines.push(format!("state {key:?} is extra"));
    }
    lines.join("\n")
}

#[test]
fn exactly_once_stages_killed_at_random_points_write_what_an_uninterrupted_run_writes() {
    let clean = run(None);
    assert!(!clean.findings.is_empty() && !clean.state.is_empty());
    for seed in [1, 2, 3] {
        let interrupted = run(Some(seed));
        assert!(
            interrupted == clean,
            "seed {seed}: the records differ from an uninterrupted run's:\n{}",
            difference(&interrupted, &clean)
        );
    }
}
