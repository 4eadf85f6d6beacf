//! `vigil-bench`: pushes generated audit events through the broker-backed pipeline and reports
//! throughput and end-to-end latency, beside a bare consume-and-produce copy through the same broker,
//! so the pipeline's overhead reads as a ratio. `scripts/bench-kafka.sh` starts a broker and runs it.
//!
//! Events are the example day's ordinary events with fresh ids; every 100th is a marker (an anonymous
//! secret read) whose finding carries its auditID back, which times the whole path.
//!
//! With `VIGIL_BENCH_METRICS` set, `--mode each-stage` prints the stages' Prometheus metrics at the
//! end (to stderr): `vigil_processing_seconds` against the run's time says how much of it was the
//! stage's own work.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use futures::StreamExt;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::watch;
use vigil_kafka::args::ProcessingGuarantee;
use vigil_kafka::stages::{DetectStage, EnrichStage, IngestStage, PublishStage};
use vigil_kafka::{CommonArgs, Health, Metrics, Topics, kafka};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Bare consume-and-produce copy of preloaded events: the broker's and client's ceiling.
    Copy,
    /// Four bare copies chained (raw → 1 → 2 → 3 → 4), all running at once on the same cores:
    /// what moving every record through four hops costs before any stage does any work.
    CopyChain,
    /// The four stages over preloaded events: throughput.
    Pipeline,
    /// Ingest, enrich and detect one at a time, each alone over its preloaded input, beside a bare
    /// copy of that same input: each stage's throughput as a share of the transport's, which is
    /// the pipeline's where every stage has cores of its own.
    EachStage,
    /// The four stages over events produced at `--rate`: end-to-end latency.
    Latency,
}

#[derive(Debug, Parser)]
#[command(
    name = "vigil-bench",
    about = "Throughput and latency of Vigil's Kafka pipeline against a running broker."
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Events per second to produce in latency mode.
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// The stages' processing guarantee (pipeline and latency modes).
    #[arg(long, value_enum, default_value = "at-least-once")]
    guarantee: ProcessingGuarantee,
}

impl Args {
    fn guarantee_label(&self) -> &'static str {
        match self.guarantee {
            ProcessingGuarantee::AtLeastOnce => "at-least-once",
            ProcessingGuarantee::ExactlyOnce => "exactly-once",
        }
    }
}

const MARKER_EVERY: usize = 100;

fn now_rfc3339() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    vigil_schemas::time::format_rfc3339_millis(micros)
}

fn is_marker_id(id: &str) -> bool {
    id.strip_prefix("bench-")
        .and_then(|index| index.parse::<usize>().ok())
        .is_some_and(|index| index % MARKER_EVERY == MARKER_EVERY - 1)
}

/// Event `index`: ordinary, or a marker whose auditID comes back in a finding.
fn event(templates: &[serde_json::Value], index: usize) -> (bool, Vec<u8>) {
    let marker = index % MARKER_EVERY == MARKER_EVERY - 1;
    let mut event = if marker {
        serde_json::json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "stage": "ResponseComplete",
            "verb": "list", "requestURI": "/api/v1/namespaces/kube-system/secrets",
            "user": {"username": "system:anonymous", "groups": ["system:unauthenticated"]},
            // One address per marker: markers sharing an address would share a finding, whose
            // published details name only the latest occurrence.
            "sourceIPs": [format!("198.51.{}.{}", index / MARKER_EVERY / 250 % 250, index / MARKER_EVERY % 250)], "userAgent": "bench",
            "objectRef": {"resource": "secrets", "namespace": "kube-system"}, "responseStatus": {"code": 200},
        })
    } else {
        templates
            .get(index % templates.len().max(1))
            .cloned()
            .unwrap_or_default()
    };
    if let Some(object) = event.as_object_mut() {
        object.insert(
            "auditID".into(),
            serde_json::json!(format!("bench-{index}")),
        );
        object.insert("stageTimestamp".into(), serde_json::json!(now_rfc3339()));
    }
    (marker, event.to_string().into_bytes())
}

fn templates() -> Vec<serde_json::Value> {
    let example = include_str!("../../../examples/audit/day-of-traffic.jsonl");
    example
        .lines()
        .filter(|line| {
            line.len() < 1600 && !line.contains("\"bob\"") && !line.contains("203.0.113.66")
        })
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// One bare hop: consumes `events` records of `from` and produces each payload to `to`, as fast as
/// the broker and librdkafka allow; `started` is set at the first record any hop sees.
fn copy_hop(
    brokers: &str,
    group: String,
    from: String,
    to: String,
    events: usize,
    started: Arc<std::sync::OnceLock<Instant>>,
) -> impl Future<Output = Result<(), String>> + Send + 'static {
    let brokers = brokers.to_owned();
    async move {
        let producer = producer(&brokers)?;
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("max.poll.interval.ms", "10000")
            .create()
            .map_err(|error| error.to_string())?;
        consumer
            .subscribe(&[from.as_str()])
            .map_err(|error| error.to_string())?;
        let mut stream = consumer.stream();
        let mut copied = 0;
        while copied < events {
            let Some(Ok(message)) = stream.next().await else {
                continue;
            };
            started.get_or_init(Instant::now);
            produce(&producer, &to, message.payload().unwrap_or_default()).await?;
            copied += 1;
        }
        producer
            .flush(Duration::from_secs(120))
            .map_err(|error| error.to_string())
    }
}

fn producer(brokers: &str) -> Result<FutureProducer, String> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "0")
        .create()
        .map_err(|error| error.to_string())
}

async fn produce(producer: &FutureProducer, topic: &str, payload: &[u8]) -> Result<(), String> {
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).payload(payload);
    loop {
        match producer.send_result(record) {
            Ok(_) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                returned,
            )) => {
                record = returned;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err((error, _)) => return Err(error.to_string()),
        }
    }
}

fn common_args(args: &Args, topics: Topics) -> CommonArgs {
    let (brokers, partitions) = (args.brokers.as_str(), args.partitions);
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        common: CommonArgs,
    }
    let mut common = Wrapper::parse_from([
        "bench",
        "--brokers",
        brokers,
        "--metrics-addr",
        "127.0.0.1:0",
    ])
    .common;
    common.topics = topics;
    common.partitions = partitions;
    common.group_id = Some(format!("bench-{}", std::process::id()));
    common.processing_guarantee = args.guarantee;
    common.instance_id = Some("bench".to_owned());
    common
}

fn topics(prefix: &str) -> Topics {
    let name = |suffix: &str| format!("{prefix}.{suffix}");
    Topics {
        audit_raw: name("audit.raw"),
        runtime_raw: name("runtime.raw"),
        events: name("events"),
        enriched: name("enriched"),
        detections: name("detections"),
        findings: name("findings"),
        findings_ocsf: None,
        deadletter: name("deadletter"),
        inventory: name("inventory"),
        detect_state: name("detect.state"),
        publish_state: name("publish.state"),
    }
}

/// Nearest-rank percentile, `per_mille` of 1000.
fn percentile(sorted: &[f64], per_mille: usize) -> f64 {
    let rank = sorted.len().saturating_sub(1) * per_mille.min(1000) / 1000;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}

async fn start_pipeline(
    common: &CommonArgs,
) -> Result<
    (
        watch::Sender<bool>,
        Arc<Health>,
        Vec<tokio::task::JoinHandle<Result<(), vigil_kafka::RuntimeError>>>,
    ),
    String,
> {
    let metrics = Metrics::new().map_err(|error| error.to_string())?;
    let health = Health::new();
    let (stop, stopped) = watch::channel(false);
    let mut stage_common = common.clone();
    let mut tasks = Vec::new();
    let group = |stage: &str| {
        Some(format!(
            "{}-{stage}",
            common.group_id.clone().unwrap_or_default()
        ))
    };
    stage_common.group_id = group("ingest");
    tasks.push(tokio::spawn(kafka::run_stage(
        IngestStage::new(
            common.topics.clone(),
            metrics.clone(),
            vigil_ingest::Limits::default(),
        ),
        stage_common.clone(),
        metrics.clone(),
        Arc::clone(&health),
        stopped.clone(),
    )));
    stage_common.group_id = group("enrich");
    tasks.push(tokio::spawn(kafka::run_stage(
        EnrichStage::new(
            common.topics.clone(),
            metrics.clone(),
            &vigil_kafka::Settings::default(),
            Default::default(),
        ),
        stage_common.clone(),
        metrics.clone(),
        Arc::clone(&health),
        stopped.clone(),
    )));
    stage_common.group_id = group("detect");
    tasks.push(tokio::spawn(kafka::run_stage(
        DetectStage::new(
            common.topics.clone(),
            metrics.clone(),
            vigil_detect::Engine::default(),
        ),
        stage_common.clone(),
        metrics.clone(),
        Arc::clone(&health),
        stopped.clone(),
    )));
    stage_common.group_id = group("publish");
    tasks.push(tokio::spawn(kafka::run_stage(
        PublishStage::new(
            common.topics.clone(),
            metrics.clone(),
            vigil_publish::Publisher::default(),
            Default::default(),
        ),
        stage_common,
        metrics,
        Arc::clone(&health),
        stopped,
    )));
    Ok((stop, health, tasks))
}

/// Consumes the findings topic until every marker came back; returns when each was seen.
async fn await_markers(
    common: &CommonArgs,
    markers: usize,
    timeout: Duration,
) -> Result<HashMap<String, Instant>, String> {
    // Assigned, not subscribed: no group join delays the first markers.
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &common.brokers)
        .set("group.id", format!("bench-reader-{}", std::process::id()))
        .set("fetch.wait.max.ms", "50")
        .create()
        .map_err(|error| error.to_string())?;
    let mut assignment = rdkafka::TopicPartitionList::new();
    for partition in 0..common.partitions {
        assignment
            .add_partition_offset(
                &common.topics.findings,
                partition,
                rdkafka::Offset::Beginning,
            )
            .map_err(|error| error.to_string())?;
    }
    consumer
        .assign(&assignment)
        .map_err(|error| error.to_string())?;
    let mut seen = HashMap::new();
    let deadline = Instant::now() + timeout;
    let mut stream = consumer.stream();
    let mut last_report = Instant::now();
    while seen.len() < markers && Instant::now() < deadline {
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            tracing::info!(back = seen.len(), markers, "waiting for markers");
        }
        let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_secs(1), stream.next()).await
        else {
            continue;
        };
        let Some(payload) = message.payload() else {
            continue;
        };
        let Ok(finding) = serde_json::from_slice::<serde_json::Value>(payload) else {
            continue;
        };
        let info = finding
            .pointer("/service/additionalInfo/value")
            .and_then(serde_json::Value::as_str)
            .and_then(|info| serde_json::from_str::<serde_json::Value>(info).ok());
        // Ordinary events raise findings too (an exec into a pod, at Low): only markers count.
        if let Some(id) = info
            .as_ref()
            .and_then(|info| info.get("auditID"))
            .and_then(serde_json::Value::as_str)
            .filter(|id| is_marker_id(id))
        {
            seen.entry(id.to_owned()).or_insert_with(Instant::now);
        }
    }
    Ok(seen)
}

/// Committed records in `topic`, counted by reading it: under exactly-once, a topic's offsets
/// include transaction markers, so its watermarks overstate it.
fn records_in_topic(brokers: &str, topic: &str, partitions: i32) -> Result<i64, String> {
    let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("bench-count-{}", std::process::id()))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|error| error.to_string())?;
    let mut assignment = rdkafka::TopicPartitionList::new();
    let mut ends = Vec::new();
    for partition in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(30))
            .map_err(|error| error.to_string())?;
        ends.push((partition, high));
        assignment
            .add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
            .map_err(|error| error.to_string())?;
    }
    consumer
        .assign(&assignment)
        .map_err(|error| error.to_string())?;
    let mut records = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(_)) => records += 1,
            Some(Err(error)) => return Err(error.to_string()),
            None => {
                let position = consumer.position().map_err(|error| error.to_string())?;
                let at_end = ends.iter().all(|(partition, high)| {
                    *high == 0
                        || position
                            .find_partition(topic, *partition)
                            .and_then(|element| element.offset().to_raw())
                            .is_some_and(|offset| offset >= *high)
                });
                if at_end {
                    return Ok(records);
                }
            }
        }
    }
    Err(format!("{topic} was not read to its end within 120 s"))
}

/// Runs one stage alone until it has taken every one of the `records` of `input` and every
/// output of them is acknowledged (exactly-once: committed); events per second from its first
/// input on.
async fn run_stage_alone<P: vigil_kafka::Processor>(
    processor: P,
    common: &CommonArgs,
    metrics: Metrics,
    input: &str,
    records: i64,
) -> Result<f64, String> {
    let stage = processor.stage();
    let health = Health::new();
    let (stop, stopped) = watch::channel(false);
    let mut stage_common = common.clone();
    stage_common.group_id = Some(format!(
        "{}-alone-{stage}",
        common.group_id.clone().unwrap_or_default()
    ));
    let task = tokio::spawn(kafka::run_stage(
        processor,
        stage_common,
        metrics.clone(),
        health,
        stopped,
    ));
    let taken = metrics.records_in.with_label_values(&[stage, input]);
    let in_flight = metrics.in_flight.with_label_values(&[stage]);
    // Exactly-once, every transaction commit is observed here: the first commit after the last
    // input was taken holds it.
    let commits = metrics.delivery_seconds.with_label_values(&[stage]);
    let mut commits_when_all_taken = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut started = None;
    loop {
        if task.is_finished() || Instant::now() > deadline {
            let _ = stop.send(true);
            return Err(format!("{stage} took {} of {records} records", taken.get()));
        }
        let count = i64::try_from(taken.get()).unwrap_or(i64::MAX);
        if count > 0 && started.is_none() {
            started = Some(Instant::now());
        }
        let done = match common.processing_guarantee {
            ProcessingGuarantee::AtLeastOnce => count >= records && in_flight.get() == 0,
            ProcessingGuarantee::ExactlyOnce => {
                if count >= records && commits_when_all_taken.is_none() {
                    commits_when_all_taken = Some(commits.get_sample_count());
                }
                commits_when_all_taken.is_some_and(|then| commits.get_sample_count() > then)
            }
        };
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let seconds = started.map_or(0.0, |started| started.elapsed().as_secs_f64());
    let _ = stop.send(true);
    let _ = task.await;
    Ok(records as f64 / seconds)
}

/// A bare copy of `input`'s `records` to a topic of its own; events per second.
async fn copy_alone(
    brokers: &str,
    group: String,
    input: &str,
    to: String,
    records: i64,
) -> Result<f64, String> {
    let started = Arc::new(std::sync::OnceLock::new());
    copy_hop(
        brokers,
        group,
        input.to_owned(),
        to,
        usize::try_from(records).unwrap_or(0),
        Arc::clone(&started),
    )
    .await?;
    let seconds = started
        .get()
        .map_or(0.0, |started: &Instant| started.elapsed().as_secs_f64());
    Ok(records as f64 / seconds)
}

/// Each of ingest, enrich and detect alone over its input (the previous stage's output), beside
/// a bare copy of the same input. Publish is left out: its input is the detections, about one in
/// fifty events here, so it is never the pipeline's slowest stage.
#[allow(clippy::print_stdout, clippy::print_stderr)]
async fn each_stage(args: &Args, common: &CommonArgs, prefix: &str) -> Result<(), String> {
    let metrics = Metrics::new().map_err(|error| error.to_string())?;
    let topics = &common.topics;
    for stage in ["ingest", "enrich", "detect"] {
        let input = match stage {
            "ingest" => &topics.audit_raw,
            "enrich" => &topics.events,
            _ => &topics.enriched,
        };
        let records = records_in_topic(&args.brokers, input, args.partitions)?;
        let copied = copy_alone(
            &args.brokers,
            format!("{prefix}-copy-{stage}"),
            input,
            format!("{prefix}.copy-{stage}"),
            records,
        )
        .await?;
        let processed = match stage {
            "ingest" => {
                run_stage_alone(
                    IngestStage::new(
                        topics.clone(),
                        metrics.clone(),
                        vigil_ingest::Limits::default(),
                    ),
                    common,
                    metrics.clone(),
                    input,
                    records,
                )
                .await?
            }
            "enrich" => {
                run_stage_alone(
                    EnrichStage::new(
                        topics.clone(),
                        metrics.clone(),
                        &vigil_kafka::Settings::default(),
                        Default::default(),
                    ),
                    common,
                    metrics.clone(),
                    input,
                    records,
                )
                .await?
            }
            _ => {
                run_stage_alone(
                    DetectStage::new(
                        topics.clone(),
                        metrics.clone(),
                        vigil_detect::Engine::default(),
                    ),
                    common,
                    metrics.clone(),
                    input,
                    records,
                )
                .await?
            }
        };
        println!(
            "| bare copy of {stage}'s input | - | {records} | {copied:.0} | | | |\n\
             | {stage} alone ({:.2} of that copy) | {} | {records} | {processed:.0} | | | |",
            processed / copied,
            args.guarantee_label(),
        );
    }
    if std::env::var_os("VIGIL_BENCH_METRICS").is_some() {
        eprintln!("{}", metrics.render());
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn run(args: Args) -> Result<(), String> {
    let prefix = format!(
        "bench-{}-{:?}-{:?}",
        std::process::id(),
        args.mode,
        args.guarantee
    )
    .to_lowercase();
    let common = common_args(&args, topics(&prefix));
    let mut all_topics: Vec<vigil_kafka::TopicSpec> = [
        &common.topics.audit_raw,
        &common.topics.events,
        &common.topics.findings,
    ]
    .into_iter()
    .map(|name| vigil_kafka::TopicSpec {
        name: name.clone(),
        compacted: false,
    })
    .collect();
    for hop in [
        "copy",
        "copy1",
        "copy2",
        "copy3",
        "copy4",
        "copy-ingest",
        "copy-enrich",
        "copy-detect",
    ] {
        all_topics.push(vigil_kafka::TopicSpec {
            name: format!("{prefix}.{hop}"),
            compacted: false,
        });
    }
    kafka::ensure_topics(&common, &all_topics)
        .await
        .map_err(|error| error.to_string())?;
    let templates = templates();
    let producer = producer(&args.brokers)?;
    let markers = args.events / MARKER_EVERY;

    match args.mode {
        Mode::Copy | Mode::CopyChain | Mode::Pipeline | Mode::EachStage => {
            for index in 0..args.events {
                produce(
                    &producer,
                    &common.topics.audit_raw,
                    &event(&templates, index).1,
                )
                .await?;
            }
            producer
                .flush(Duration::from_secs(120))
                .map_err(|error| error.to_string())?;
            if args.mode == Mode::Copy {
                let copied = copy_alone(
                    &args.brokers,
                    format!("{prefix}-copy"),
                    &common.topics.audit_raw,
                    format!("{prefix}.copy"),
                    i64::try_from(args.events).unwrap_or(i64::MAX),
                )
                .await?;
                println!(
                    "| bare copy (consume, produce) | - | {} | {copied:.0} | | | |",
                    args.events,
                );
            } else if args.mode == Mode::EachStage {
                each_stage(&args, &common, &prefix).await?;
            } else if args.mode == Mode::CopyChain {
                let started = Arc::new(std::sync::OnceLock::new());
                let hops = [
                    common.topics.audit_raw.clone(),
                    format!("{prefix}.copy1"),
                    format!("{prefix}.copy2"),
                    format!("{prefix}.copy3"),
                    format!("{prefix}.copy4"),
                ];
                let tasks: Vec<_> = hops
                    .iter()
                    .zip(hops.iter().skip(1))
                    .enumerate()
                    .map(|(index, (from, to))| {
                        let (from, to) = (from.clone(), to.clone());
                        tokio::spawn(copy_hop(
                            &args.brokers,
                            format!("{prefix}-copy-hop{index}"),
                            from,
                            to,
                            args.events,
                            Arc::clone(&started),
                        ))
                    })
                    .collect();
                for task in tasks {
                    task.await.map_err(|error| error.to_string())??;
                }
                let seconds = started
                    .get()
                    .map_or(0.0, |started: &Instant| started.elapsed().as_secs_f64());
                println!(
                    "| four bare copies chained, at once | - | {} | {:.0} | | | |",
                    args.events,
                    args.events as f64 / seconds
                );
            } else {
                let (stop, health, tasks) = start_pipeline(&common).await?;
                while !health.is_ready() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let started = Instant::now();
                let seen = await_markers(&common, markers, Duration::from_secs(600)).await?;
                let seconds = seen
                    .values()
                    .max()
                    .map_or(0.0, |last| last.duration_since(started).as_secs_f64());
                if seen.len() < markers {
                    return Err(format!(
                        "only {} of {markers} markers came back",
                        seen.len()
                    ));
                }
                println!(
                    "| four stages, throughput | {} | {} | {:.0} | | | |",
                    args.guarantee_label(),
                    args.events,
                    args.events as f64 / seconds,
                );
                let _ = stop.send(true);
                for task in tasks {
                    let _ = task.await;
                }
            }
        }
        Mode::Latency => {
            let (stop, health, tasks) = start_pipeline(&common).await?;
            while !health.is_ready() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let reader = tokio::spawn({
                let common = common.clone();
                async move { await_markers(&common, markers, Duration::from_secs(600)).await }
            });
            let mut sent_at = HashMap::new();
            let started = Instant::now();
            for index in 0..args.events {
                let due = started + Duration::from_secs_f64(index as f64 / args.rate as f64);
                tokio::time::sleep_until(due.into()).await;
                let (marker, payload) = event(&templates, index);
                produce(&producer, &common.topics.audit_raw, &payload).await?;
                if marker {
                    sent_at.insert(format!("bench-{index}"), Instant::now());
                }
            }
            let seen = reader.await.map_err(|error| error.to_string())??;
            let mut latencies: Vec<f64> = seen
                .iter()
                .filter_map(|(id, at)| {
                    sent_at
                        .get(id)
                        .map(|sent| at.duration_since(*sent).as_secs_f64() * 1000.0)
                })
                .collect();
            latencies.sort_by(f64::total_cmp);
            if latencies.len() < markers {
                return Err(format!(
                    "only {} of {markers} markers came back",
                    latencies.len()
                ));
            }
            println!(
                "| four stages, latency at {} events/s | {} | {} | | {:.0} | {:.0} | {:.0} |",
                args.rate,
                args.guarantee_label(),
                args.events,
                percentile(&latencies, 500),
                percentile(&latencies, 990),
                percentile(&latencies, 999),
            );
            let _ = stop.send(true);
            for task in tasks {
                let _ = task.await;
            }
        }
    }
    Ok(())
}

#[allow(clippy::print_stderr)]
fn main() -> std::process::ExitCode {
    let args = Args::parse();
    vigil_kafka::args::init_logging(vigil_kafka::LogFormat::Text);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("vigil-bench: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vigil-bench: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
