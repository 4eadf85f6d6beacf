//! The stages on a three-node Apache Kafka cluster (topics replicated three times,
//! `min.insync.replicas=2`) while brokers fail: the leader of the most partitions killed mid-stream
//! and gone for 30 s, then the whole cluster killed and started again.

use std::time::{Duration, Instant};

use crate::broker::{FINDINGS_TIMEOUT, assert_same_findings, wait_for_findings};
use crate::harness::*;

/// Every topic the pipeline reads or writes.
const TOPICS: [&str; 10] = [
    "vigil.audit.raw",
    "vigil.runtime.raw",
    "vigil.events",
    "vigil.enriched",
    "vigil.detections",
    "vigil.findings",
    "vigil.deadletter",
    "vigil.inventory",
    "vigil.detect.state",
    "vigil.publish.state",
];

/// How long the killed leader stays away.
const OUTAGE: Duration = Duration::from_secs(30);

#[test]
fn on_three_brokers_the_stages_ride_out_a_lost_leader_and_a_whole_cluster_restart() {
    let mut cluster = Broker::start_cluster("cluster", 3);
    create_topics(&cluster, &["vigil.audit.raw"]);
    let replicated = ["--replication-factor".to_owned(), "3".to_owned()];
    let with_settings: Vec<String> = settings_args()
        .into_iter()
        .chain(replicated.clone())
        .collect();
    let mut stages = vec![
        Stage::start("ingest", &cluster, &replicated),
        Stage::start("enrich", &cluster, &with_settings),
        Stage::start("detect", &cluster, &with_settings),
        Stage::start("publish", &cluster, &with_settings),
    ];
    for stage in &stages {
        stage.wait_ready(Duration::from_secs(90));
    }
    let lines = example_lines();
    let third = lines.len() / 3;
    let (first, rest) = lines.split_at(third);
    let (second, last) = rest.split_at(third);
    produce(&cluster, "vigil.audit.raw", first);
    // Mid-stream: the stages have work in flight when the node leading the most partitions dies
    // (the first third of the day is ordinary traffic: detect sees it, publish has nothing yet).
    stages[2].wait_for_metric(
        "vigil_records_in_total{stage=\"detect\"",
        1.0,
        FINDINGS_TIMEOUT,
    );
    let busiest = cluster.busiest_leader(&TOPICS);
    cluster.kill_node(busiest);
    let gone = Instant::now();
    produce(&cluster, "vigil.audit.raw", second);
    std::thread::sleep(OUTAGE.saturating_sub(gone.elapsed()));
    cluster.start_node(busiest);
    produce(&cluster, "vigil.audit.raw", last);
    std::thread::sleep(Duration::from_secs(1));
    // Then every node at once, and back.
    cluster.restart();

    let expected = example_expected();
    let found = wait_for_findings(&cluster, &expected);
    assert_same_findings(&found, &expected, &stages);
    let dead_letters = read_all(&cluster, "vigil.deadletter", Duration::from_secs(3));
    assert!(
        dead_letters.is_empty(),
        "broker failures turned {} records into dead letters: {:?}",
        dead_letters.len(),
        dead_letters
            .iter()
            .map(|r| header(r, "vigil.reason"))
            .collect::<Vec<_>>()
    );
    for stage in &mut stages {
        let name = stage.name;
        assert!(
            stage.running(),
            "{name} exited during the broker failures; log:\n{}",
            stage.log()
        );
    }
}
