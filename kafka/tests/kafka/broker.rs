//! The four stages as Kafka services against a real broker (Apache Kafka in KRaft mode on
//! free loopback ports).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use crate::harness::*;

pub const FINDINGS_TIMEOUT: Duration = Duration::from_secs(120);

fn start_pipeline(broker: &Broker) -> Vec<Stage> {
    start_pipeline_with(broker, &[])
}

fn start_pipeline_with(broker: &Broker, ingest_args: &[String]) -> Vec<Stage> {
    vec![
        Stage::start("ingest", broker, ingest_args),
        Stage::start("enrich", broker, &settings_args()),
        Stage::start("detect", broker, &settings_args()),
        Stage::start("publish", broker, &settings_args()),
    ]
}

/// The consumer group protocol flags of a test: classic (none), or KIP-848's.
fn protocol_args(kip848: bool) -> Vec<String> {
    if kip848 {
        vec!["--group-protocol".to_owned(), "consumer".to_owned()]
    } else {
        Vec::new()
    }
}

/// The four stages, each with the settings (but ingest) and `extra`.
fn start_pipeline_in(broker: &Broker, extra: &[String]) -> Vec<Stage> {
    let with_settings: Vec<String> = settings_args()
        .into_iter()
        .chain(extra.iter().cloned())
        .collect();
    vec![
        Stage::start("ingest", broker, extra),
        Stage::start("enrich", broker, &with_settings),
        Stage::start("detect", broker, &with_settings),
        Stage::start("publish", broker, &with_settings),
    ]
}

pub fn wait_for_findings(
    broker: &Broker,
    expected: &std::collections::BTreeMap<String, (String, i64)>,
) -> std::collections::BTreeMap<String, (String, i64)> {
    let records = consume_until(broker, "vigil.findings", FINDINGS_TIMEOUT, &mut |records| {
        latest_findings(records) == *expected
    });
    latest_findings(&records)
}

/// Fails with what differs (missing, extra, miscounted findings) ahead of the stages' logs, so a
/// failure reads without scrolling through them.
pub fn assert_same_findings(found: &FindingCounts, expected: &FindingCounts, stages: &[Stage]) {
    if found == expected {
        return;
    }
    let mut difference = String::new();
    for (id, (kind, count)) in expected {
        match found.get(id) {
            None => difference.push_str(&format!("missing {kind} {id} (count {count})\n")),
            Some((_, seen)) if seen != count => {
                difference.push_str(&format!("count of {kind} {id}: {seen}, expected {count}\n"))
            }
            Some(_) => {}
        }
    }
    for (id, (kind, count)) in found {
        if !expected.contains_key(id) {
            difference.push_str(&format!("extra {kind} {id} (count {count})\n"));
        }
    }
    panic!(
        "the findings differ from vigil scan's:\n{difference}\nlogs:\n{}",
        stages.iter().map(Stage::log).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_example_day_through_kafka_gives_what_vigil_scan_gives() {
    let broker = Broker::start("e2e");
    create_topics(&broker, &["vigil.audit.raw", "vigil.runtime.raw"]);
    // publish writes both formats, each to its own topic.
    let publish_args: Vec<String> = settings_args()
        .into_iter()
        .chain([
            "--topic-findings-ocsf".to_owned(),
            "vigil.findings.ocsf".to_owned(),
        ])
        .collect();
    let stages = vec![
        Stage::start("ingest", &broker, &[]),
        Stage::start("enrich", &broker, &settings_args()),
        Stage::start("detect", &broker, &settings_args()),
        Stage::start("publish", &broker, &publish_args),
    ];
    for stage in &stages {
        stage.wait_ready(Duration::from_secs(60));
    }
    produce(&broker, "vigil.audit.raw", &example_lines());
    produce(&broker, "vigil.runtime.raw", &example_runtime_lines());
    let expected = example_expected_with_runtime();
    // The audit attack chain's 25 findings (three from the example's own rule) and 2 from chain
    // rules, alice's exec, which the example settings archive, the runtime attack's 8, and the
    // attack sequence that ties the two halves together.
    assert_eq!(expected.len(), 37, "the example's findings");
    assert_eq!(
        expected
            .values()
            .filter(|(kind, _)| kind == vigil_publish::SEQUENCE_TYPE)
            .count(),
        1
    );
    assert_eq!(
        expected
            .values()
            .filter(|(kind, _)| kind.contains(":Runtime/"))
            .count(),
        8
    );
    let found = wait_for_findings(&broker, &expected);
    assert_same_findings(&found, &expected, &stages);
    // The same findings as OCSF Detection Findings on their own topic.
    let records = consume_until(
        &broker,
        "vigil.findings.ocsf",
        FINDINGS_TIMEOUT,
        &mut |records| latest_ocsf_findings(records) == expected,
    );
    assert_same_findings(&latest_ocsf_findings(&records), &expected, &stages);

    // Every binary serves its metrics and health, and stops cleanly on SIGTERM.
    for mut stage in stages {
        let (status, metrics) = stage.http_get("/metrics").unwrap_or_else(|error| {
            panic!("{}: /metrics: {error}; log:\n{}", stage.name, stage.log())
        });
        assert_eq!(status, 200);
        assert!(
            metrics.contains(&format!("vigil_records_in_total{{stage=\"{}\"", stage.name)),
            "{metrics}"
        );
        match stage.name {
            "publish" => {
                assert!(
                    metrics.contains(
                        "vigil_findings_archived_total{type=\"Execution:Kubernetes/ExecInPod\"} 1"
                    ),
                    "the suppression rule archived alice's exec: {metrics}"
                );
                assert!(
                    metrics.contains("vigil_attack_sequences_total{outcome=\"updated\"}"),
                    "{metrics}"
                );
            }
            "enrich" => assert!(
                metrics.contains(
                    "vigil_threat_list_entries{list=\"tor-exit-addresses\",role=\"tor_exits\"}"
                ),
                "{metrics}"
            ),
            _ => {}
        }
        assert_eq!(
            stage.http_get("/healthz").map(|(status, _)| status),
            Ok(200)
        );
        let exit = stage.terminate();
        assert!(
            exit.success(),
            "{} exited with {exit}; log:\n{}",
            stage.name,
            stage.log()
        );
    }
}

#[test]
fn bad_input_goes_to_the_dead_letter_topic_with_its_reason_while_good_input_flows() {
    let broker = Broker::start("deadletters");
    create_topics(&broker, &["vigil.audit.raw", "vigil.events"]);
    // Events up to 4 KiB, messages up to 16 KiB: small enough to test the limit with a message the
    // broker itself accepts.
    let stages = start_pipeline_with(
        &broker,
        &["--max-event-bytes".to_owned(), "4096".to_owned()],
    );
    for stage in &stages {
        stage.wait_ready(Duration::from_secs(60));
    }
    let anonymous_read = br#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"good-1","stage":"ResponseComplete","verb":"list","requestURI":"/api/v1/namespaces/kube-system/secrets","user":{"username":"system:anonymous","groups":["system:unauthenticated"]},"sourceIPs":["192.0.2.9"],"objectRef":{"resource":"secrets","namespace":"kube-system"},"responseStatus":{"code":200},"stageTimestamp":"2024-01-01T00:00:00Z"}"#.to_vec();
    let oversized = format!("{{\"pad\":\"{}\"}}", "x".repeat(20 * 1024)).into_bytes();
    let raw = vec![
        (Some(b"k1".to_vec()), b"{not json".to_vec()),
        (
            None,
            br#"{"kind":"Event","apiVersion":"v1","reason":"Scheduled"}"#.to_vec(),
        ),
        (None, vec![b'{', b'"', 0xff, 0xfe, b'"', b'}']),
        (None, oversized),
        (None, anonymous_read),
    ];
    produce(&broker, "vigil.audit.raw", &raw);
    // A record on the Avro topic whose writer schema nobody knows.
    produce(
        &broker,
        "vigil.events",
        &[(None, vec![0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0])],
    );

    let letters = consume_until(
        &broker,
        "vigil.deadletter",
        Duration::from_secs(90),
        &mut |records| records.len() >= 5,
    );
    let mut reasons: Vec<(String, String)> = letters
        .iter()
        .map(|letter| {
            (
                header(letter, "vigil.stage").to_owned(),
                header(letter, "vigil.reason").to_owned(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            ("enrich".to_owned(), "unknown_schema".to_owned()),
            ("ingest".to_owned(), "invalid_json".to_owned()),
            ("ingest".to_owned(), "not_utf8".to_owned()),
            ("ingest".to_owned(), "too_large".to_owned()),
            ("ingest".to_owned(), "unknown_shape".to_owned()),
        ]
    );
    let malformed = letters
        .iter()
        .find(|letter| header(letter, "vigil.reason") == "invalid_json")
        .unwrap();
    assert_eq!(
        malformed.value.as_deref(),
        Some(&b"{not json"[..]),
        "the original bytes"
    );
    assert_eq!(malformed.key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(header(malformed, "vigil.source.topic"), "vigil.audit.raw");
    assert!(!header(malformed, "vigil.source.offset").is_empty());
    assert!(!header(malformed, "vigil.detail").is_empty());

    // The good record among them still became its findings: GuardDuty's type and the one of the
    // example's own rule (secrets read from a public address).
    let findings = consume_until(
        &broker,
        "vigil.findings",
        FINDINGS_TIMEOUT,
        &mut |records| latest_findings(records).len() >= 2,
    );
    let found = latest_findings(&findings);
    let mut kinds: Vec<&str> = found.values().map(|(kind, _)| kind.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "CredentialAccess:Kubernetes/SecretsReadFromPublicAddress",
            "CredentialAccess:Kubernetes/SuccessfulAnonymousAccess"
        ]
    );
    let ingest_metrics = stages[0].http_get("/metrics").unwrap().1;
    assert!(
        ingest_metrics
            .contains("vigil_dead_letters_total{reason=\"too_large\",stage=\"ingest\"} 1"),
        "{ingest_metrics}"
    );
}

#[test]
fn stages_killed_mid_stream_and_restarted_lose_nothing_and_add_nothing() {
    let broker = Broker::start("sigkill");
    create_topics(&broker, &["vigil.audit.raw"]);
    let mut stages = start_pipeline(&broker);
    for stage in &stages {
        stage.wait_ready(Duration::from_secs(60));
    }
    let lines = example_lines();
    let (first, second) = lines.split_at(lines.len() / 2);
    produce(&broker, "vigil.audit.raw", first);
    std::thread::sleep(Duration::from_millis(1500));
    // SIGKILL every stage: nothing drained, nothing committed beyond what was acknowledged.
    for stage in &mut stages {
        stage.kill();
    }
    produce(&broker, "vigil.audit.raw", second);
    wait_for_killed_members_to_expire();
    for stage in &mut stages {
        stage.restart();
    }
    let expected = example_expected();
    let found = wait_for_findings(&broker, &expected);
    assert_same_findings(&found, &expected, &stages);
}

#[test]
fn baselines_learned_before_a_sigkill_still_flag_what_departs_from_them_after_it() {
    let broker = Broker::start("baselines");
    create_topics(&broker, &["vigil.audit.raw"]);
    let mut stages = start_pipeline(&broker);
    for stage in &stages {
        stage.wait_ready(Duration::from_secs(60));
    }
    let (lines, expected) = baseline_stream();
    let anomalies = expected
        .values()
        .filter(|(kind, _)| kind.contains("AnomalousBehavior"))
        .count();
    assert!(anomalies >= 9, "the injected anomalies: {expected:?}");
    // Two weeks of learning, then every stage killed while detect is half-way through them: the
    // baselines must come back from the state topic, or the anomalies injected in the third week
    // go unseen (a fresh profile judges nothing) and their findings are missing; and what is
    // replayed (detect's inputs since its last commit, the events ingest and enrich write again)
    // must not be counted twice.
    let (learning, rest) = lines.split_at(lines.len() * 2 / 3);
    produce(&broker, "vigil.audit.raw", learning);
    #[allow(clippy::cast_precision_loss)]
    let half_way = (learning.len() / 2) as f64;
    stages[2].wait_for_metric(
        "vigil_records_in_total{stage=\"detect\"",
        half_way,
        FINDINGS_TIMEOUT,
    );
    for stage in &mut stages {
        stage.kill();
    }
    produce(&broker, "vigil.audit.raw", rest);
    wait_for_killed_members_to_expire();
    for stage in &mut stages {
        stage.restart();
    }
    // Exactly vigil scan's findings. A forgotten baseline is a storm of extra findings after the
    // restart; a lost one misses the anomalies; inputs replayed after the kill (detect's since its
    // last commit, and the events ingest and enrich write again) counted twice ripen pending values
    // early and drop findings.
    let found = wait_for_findings(&broker, &expected);
    assert_same_findings(&found, &expected, &stages);
    // Not asserted (they depend on where the kill lands), but shown: the guards at work.
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "detect passed over {} inputs its checkpoints held and {} events written again",
            stages[2].metric("vigil_skipped_total{reason=\"in_checkpoint\",stage=\"detect\"}"),
            stages[2].metric("vigil_skipped_total{reason=\"duplicate_event\",stage=\"detect\"}"),
        );
    }
    // The restarted detect reports the baselines it holds: stable principals, read back.
    let metrics = stages[2].http_get("/metrics").unwrap().1;
    let stable = stages[2].metric(
        "vigil_baseline_profiles{detector=\"principal_baselines\",phase=\"stable\",scope=\"principal\"}",
    );
    assert!(
        stable >= 10.0,
        "{stable} stable principal profiles in /metrics:\n{metrics}"
    );
    assert!(metrics.contains(
        "vigil_baseline_capacity{detector=\"volume_baselines\",scope=\"principal\"} 100000"
    ));
    for scope in ["peer_group", "namespace", "cluster"] {
        assert!(
            metrics.contains(&format!(
                "vigil_baseline_capacity{{detector=\"principal_baselines\",scope=\"{scope}\"}}"
            )),
            "the {scope} scope is reported:\n{metrics}"
        );
    }
}

#[test]
fn two_detect_instances_share_the_clusters_baselines_and_one_takes_over_when_the_other_stops() {
    takeover(false);
}

#[test]
fn with_kip848_groups_one_detect_instance_takes_over_the_others_baselines() {
    takeover(true);
}

fn takeover(kip848: bool) {
    let broker = Broker::start(if kip848 {
        "takeover-kip848"
    } else {
        "takeover"
    });
    create_topics(&broker, &["vigil.audit.raw"]);
    let protocol = protocol_args(kip848);
    let mut stages = start_pipeline_in(&broker, &protocol);
    for stage in &stages {
        stage.wait_ready(Duration::from_secs(60));
    }
    let detect_args: Vec<String> = settings_args().into_iter().chain(protocol).collect();
    let second_detect = Stage::start("detect", &broker, &detect_args);
    second_detect.wait_ready(Duration::from_secs(180));
    stages.push(second_detect);
    let (lines, expected) = baseline_stream_in_clusters(&["cluster-0", "cluster-14"]);
    let anomalies = expected
        .values()
        .filter(|(kind, _)| kind.contains("AnomalousBehavior"))
        .count();
    assert!(anomalies >= 18, "both clusters' anomalies: {expected:?}");
    let (learning, rest) = lines.split_at(lines.len() * 2 / 3);
    produce(&broker, "vigil.audit.raw", learning);
    // The instance doing the work stopped a quarter of the way through the learning (scaled down:
    // SIGTERM, so the takeover starts at once instead of after a session timeout): the other takes its partitions over,
    // reads their checkpoints back and goes on where they stop, with the profiles it learned.
    let consumed = |stage: &Stage| stage.metric("vigil_records_in_total{stage=\"detect\"");
    #[allow(clippy::cast_precision_loss)]
    let a_quarter = (learning.len() / 4) as f64;
    let deadline = std::time::Instant::now() + FINDINGS_TIMEOUT;
    while consumed(&stages[2]) + consumed(&stages[4]) < a_quarter {
        assert!(
            std::time::Instant::now() < deadline,
            "detect consumed too little"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let busier = if consumed(&stages[2]) >= consumed(&stages[4]) {
        2
    } else {
        4
    };
    assert!(stages[busier].terminate().success());
    // The rest is produced once the survivor has caught up with the learning, so that a broker on
    // two busy cores (reading back a partition's state and recent inputs while every stage writes
    // at full speed) is not asked to answer heartbeats under the heaviest load (tansu 0.6.0 left
    // them unanswered for over six seconds). The takeover itself is as above.
    // Caught up: ingest has read the learning, enrich has read what ingest wrote, and the detect
    // group has committed every record enrich wrote (the survivor's offsets; the stopped one's last
    // commit). Only the timing of the rest hangs on this, not the verdict.
    let survivor = &stages[6 - busier];
    let (ingest, enrich) = (&stages[0], &stages[1]);
    #[allow(clippy::cast_precision_loss)]
    let learning_records = learning.len() as f64;
    let deadline = std::time::Instant::now() + FINDINGS_TIMEOUT;
    loop {
        let ingested = ingest.metric("vigil_records_in_total{stage=\"ingest\"");
        let enriched = enrich.metric("vigil_records_in_total{stage=\"enrich\"");
        let events =
            ingest.metric("vigil_records_out_total{stage=\"ingest\",topic=\"vigil.events\"");
        let detect_lag = group_lag(&broker, "vigil-detect", "vigil.enriched");
        if ingested >= learning_records && enriched >= events && detect_lag == Some(0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "detect did not catch up with the learning within {FINDINGS_TIMEOUT:?}: ingest read \
             {ingested} of {learning_records}, enrich {enriched} of {events}, the detect group's \
             lag {detect_lag:?}; the survivor's log:\n{}",
            survivor.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    produce(&broker, "vigil.audit.raw", rest);
    let found = wait_for_findings(&broker, &expected);
    assert_same_findings(&found, &expected, &stages);
}

#[test]
fn two_instances_of_each_stage_share_the_partitions_and_find_the_same() {
    two_instances(false);
}

/// KIP-848: the broker assigns incrementally; a first instance gives up only the partitions the
/// second takes, after draining.
#[test]
fn with_kip848_groups_two_instances_of_each_stage_share_the_partitions_and_find_the_same() {
    two_instances(true);
}

fn two_instances(kip848: bool) {
    let broker = Broker::start(if kip848 {
        "two-instances-kip848"
    } else {
        "two-instances"
    });
    create_topics(&broker, &["vigil.audit.raw"]);
    let protocol = protocol_args(kip848);
    let mut stages = start_pipeline_in(&broker, &protocol);
    for stage in &stages {
        stage.wait_ready(Duration::from_secs(60));
    }
    // The second instances join running groups: each group rebalances to share the partitions.
    let second = start_pipeline_in(&broker, &protocol);
    for stage in &second {
        stage.wait_ready(Duration::from_secs(180));
    }
    // Each first instance gave partitions up only after draining and committing what it had taken.
    for stage in &stages {
        assert!(
            stage
                .log()
                .contains("partitions revoked after draining in-flight inputs and committing"),
            "{} did not drain before its revocation; log:\n{}",
            stage.name,
            stage.log()
        );
    }
    stages.extend(second);
    // Several clusters: a cluster is the unit of partitioning from ingest on, so each instance of
    // enrich, detect and publish owns some clusters' events (and detect their state).
    // Twenty names, so that every partition of three has some (by the hash of their keys).
    let (lines, expected) = example_lines_in_clusters(20);
    produce(&broker, "vigil.audit.raw", &lines);
    let found = wait_for_findings(&broker, &expected);
    assert_same_findings(&found, &expected, &stages);
    // Both instances of each stage after ingest did part of the work.
    for stage in stages.iter().filter(|stage| stage.name != "ingest") {
        let consumed = stage.metric("vigil_records_in_total{");
        assert!(
            consumed > 0.0,
            "an instance of {} consumed nothing; log:\n{}",
            stage.name,
            stage.log()
        );
    }
}

#[test]
fn the_pipeline_resumes_after_the_broker_is_stopped_and_started_again() {
    let mut broker = Broker::start("broker-restart");
    create_topics(&broker, &["vigil.audit.raw"]);
    let stages = start_pipeline(&broker);
    for stage in &stages {
        stage.wait_ready(Duration::from_secs(60));
    }
    let lines = example_lines();
    let (first, second) = lines.split_at(lines.len() / 2);
    produce(&broker, "vigil.audit.raw", first);
    std::thread::sleep(Duration::from_millis(500));
    broker.stop();
    std::thread::sleep(Duration::from_secs(3));
    broker.restart();
    produce(&broker, "vigil.audit.raw", second);
    let expected = example_expected();
    let found = wait_for_findings(&broker, &expected);
    assert_same_findings(&found, &expected, &stages);
}

/// Echoes each input to `busy.out`. Its first assignment keeps the stage loop busy, as reading a
/// large state back does, for longer than `max.poll.interval.ms`.
struct BusyOnFirstAssignment {
    busy_for: Duration,
    was_busy: bool,
}

impl vigil_kafka::Processor for BusyOnFirstAssignment {
    fn stage(&self) -> &'static str {
        "busy"
    }
    fn input_topics(&self) -> Vec<String> {
        vec!["busy.in".to_owned()]
    }
    fn output_topics(&self) -> Vec<vigil_kafka::TopicSpec> {
        vec![
            vigil_kafka::TopicSpec {
                name: "busy.out".to_owned(),
                compacted: false,
            },
            vigil_kafka::TopicSpec {
                name: "busy.state".to_owned(),
                compacted: true,
            },
        ]
    }
    fn state(&self) -> vigil_kafka::StateKeeping {
        vigil_kafka::StateKeeping::FollowsInput("busy.state".to_owned())
    }
    // Called on the assignment, before the state is read back.
    fn retain_partitions(&mut self, _assigned: &[i32]) {
        if !self.was_busy {
            self.was_busy = true;
            std::thread::sleep(self.busy_for);
        }
    }
    fn process(&mut self, input: &vigil_kafka::Incoming<'_>, out: &mut Vec<vigil_kafka::Outgoing>) {
        out.push(vigil_kafka::Outgoing::new(
            "busy.out",
            input.key.unwrap_or_default(),
            input.payload.to_vec(),
        ));
    }
}

#[derive(clap::Parser)]
struct CommonOnly {
    #[command(flatten)]
    common: vigil_kafka::CommonArgs,
}

#[test]
fn a_stage_loop_busy_for_longer_than_the_poll_interval_keeps_its_partitions() {
    use clap::Parser;
    let broker = Broker::start("busy-loop");
    create_topics(&broker, &["busy.in"]);
    // Far more than the loop's channel holds: without pausing, the polling thread would block on
    // it for as long as the loop is busy, and stop polling.
    let inputs: Records = (0..600)
        .map(|n| {
            (
                Some(format!("k{n}").into_bytes()),
                format!("v{n}").into_bytes(),
            )
        })
        .collect();
    produce(&broker, "busy.in", &inputs);
    let max_poll_interval = Duration::from_secs(7);
    let common = CommonOnly::parse_from([
        "test".to_owned(),
        "--brokers".to_owned(),
        broker.address(),
        "--session-timeout-ms".to_owned(),
        SESSION_TIMEOUT.as_millis().to_string(),
        "-X".to_owned(),
        format!("max.poll.interval.ms={}", max_poll_interval.as_millis()),
        "--partitions".to_owned(),
        "3".to_owned(),
    ])
    .common;
    let metrics = vigil_kafka::Metrics::new().unwrap();
    let processor = BusyOnFirstAssignment {
        busy_for: max_poll_interval * 2,
        was_busy: false,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let stage = runtime.spawn(vigil_kafka::run_stage(
        processor,
        common,
        metrics.clone(),
        vigil_kafka::Health::new(),
        shutdown_rx,
    ));
    let echoed = consume_until(&broker, "busy.out", FINDINGS_TIMEOUT, &mut |records| {
        records.len() >= inputs.len()
    });
    assert_eq!(echoed.len(), inputs.len(), "every input echoed");
    // A member that stopped polling for longer than max.poll.interval.ms is put out of the group:
    // its partitions are revoked (and what it had not committed is read again, echoed twice).
    let revocations = || {
        metrics
            .rebalances
            .with_label_values(&["busy", "revoke"])
            .get()
    };
    assert_eq!(revocations(), 0, "the busy member kept its partitions");
    std::thread::sleep(SESSION_TIMEOUT);
    assert_eq!(revocations(), 0, "the busy member kept its partitions");
    shutdown.send(true).unwrap();
    runtime.block_on(stage).unwrap().unwrap();
    let echoed = consume_until(
        &broker,
        "busy.out",
        Duration::from_secs(10),
        &mut |records| records.len() >= inputs.len(),
    );
    let mut values: Vec<Vec<u8>> = echoed
        .into_iter()
        .filter_map(|record| record.value)
        .collect();
    values.sort();
    let mut expected: Vec<Vec<u8>> = inputs.into_iter().map(|(_, value)| value).collect();
    expected.sort();
    assert_eq!(values, expected, "each input echoed exactly once");
}
