//! `vigil-gateway-bench`: how many audit events per second the gateway accepts, and how long a
//! request takes, against a running broker. The gateway runs in this process on a loopback port
//! (its Kafka producer as in the service: idempotent, `acks=all`); clients on keep-alive HTTP/1.1
//! connections post `EventList`s as the API server's webhook does, each answered once Kafka has
//! acknowledged every event. `scripts/bench-kafka.sh` starts a broker and runs it; it prints one
//! row of the bench's table. Memory: the process's resident set after a quarter of the requests and
//! at the end (flat when nothing accumulates).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::sync::{Mutex, watch};
use vigil_gateway::credentials::Policy;
use vigil_gateway::metrics::GatewayMetrics;
use vigil_gateway::server::{Gateway, Limits, RawTopics, serve};
use vigil_gateway::sink::{KafkaSink, Sink};
use vigil_kafka::{CommonArgs, Metrics, TopicSpec};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-gateway-bench",
    about = "Accepted audit events per second and request latency of vigil-gateway against a running broker."
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Events to post in all.
    #[arg(long = "events", default_value_t = 400_000)]
    total_events: usize,
    /// Events per request (the API server's webhook batch).
    #[arg(long, default_value_t = 400)]
    batch: usize,
    /// Client connections posting at once.
    #[arg(long, default_value_t = 8)]
    connections: usize,
}

fn templates() -> Vec<serde_json::Value> {
    include_str!("../../../examples/audit/day-of-traffic.jsonl")
        .lines()
        .filter(|line| line.len() < 1600)
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// `count` distinct EventList bodies of `batch` events each, with fresh audit ids.
fn bodies(count: usize, batch: usize) -> Vec<Bytes> {
    let templates = templates();
    let mut next = 0usize;
    (0..count)
        .map(|_| {
            let items: Vec<serde_json::Value> = (0..batch)
                .map(|_| {
                    let mut event = templates
                        .get(next % templates.len().max(1))
                        .cloned()
                        .unwrap_or_default();
                    if let Some(object) = event.as_object_mut() {
                        object.insert("auditID".into(), format!("bench-{next}").into());
                    }
                    next += 1;
                    event
                })
                .collect();
            let list = serde_json::json!({
                "kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items,
            });
            Bytes::from(list.to_string())
        })
        .collect()
}

fn resident_megabytes() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kilobytes| kilobytes.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kilobytes| kilobytes / 1024.0)
}

fn percentile(sorted: &[f64], per_mille: usize) -> f64 {
    let rank = sorted.len().saturating_sub(1) * per_mille.min(1000) / 1000;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}

async fn run(args: Args) -> Result<(), String> {
    let mut common = args.common.clone();
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or_default();
    common.topics.audit_raw = format!("bench-gateway-{run_id}.audit.raw");
    common.topics.deadletter = format!("bench-gateway-{run_id}.deadletter");
    let topics = RawTopics {
        audit: common.topics.audit_raw.clone(),
        runtime: common.topics.runtime_raw.clone(),
        deadletter: common.topics.deadletter.clone(),
    };
    let specs: Vec<TopicSpec> = [&topics.audit, &topics.deadletter]
        .into_iter()
        .map(|name| TopicSpec {
            name: name.clone(),
            compacted: false,
        })
        .collect();
    vigil_kafka::kafka::ensure_topics(&common, &specs)
        .await
        .map_err(|error| error.to_string())?;
    let metrics = Metrics::new().map_err(|error| error.to_string())?;
    let sink = Arc::new(
        KafkaSink::new(&common, &metrics, Duration::from_secs(15), 200_000)
            .map_err(|error| error.to_string())?,
    );
    let gateway = Arc::new(Gateway::new(
        Policy {
            allow_anonymous: true,
            ..Policy::default()
        },
        Arc::clone(&sink) as Arc<dyn Sink>,
        topics,
        Limits::default(),
        GatewayMetrics::new(metrics).map_err(|error| error.to_string())?,
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sink.is_available() {
        if Instant::now() > deadline {
            return Err("the broker did not come up within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|error| error.to_string())?;
    let addr = listener.local_addr().map_err(|error| error.to_string())?;
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(serve(
        gateway,
        listener,
        None,
        stopped,
        Duration::from_secs(10),
    ));

    let batch = args.batch.max(1);
    let requests = args.total_events.div_ceil(batch);
    let bodies = Arc::new(bodies(64.min(requests.max(1)), batch));
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(requests)));
    let quarter_rss = Arc::new(Mutex::new(f64::NAN));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..args.connections.max(1) {
        let (bodies, next, latencies, quarter_rss) = (
            Arc::clone(&bodies),
            Arc::clone(&next),
            Arc::clone(&latencies),
            Arc::clone(&quarter_rss),
        );
        clients.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|error| error.to_string())?;
            let _ = stream.set_nodelay(true);
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|error| error.to_string())?;
            tokio::spawn(connection);
            loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= requests {
                    return Ok::<(), String>(());
                }
                if index == requests / 4 {
                    *quarter_rss.lock().await = resident_megabytes();
                }
                let body = bodies
                    .get(index % bodies.len())
                    .cloned()
                    .unwrap_or_default();
                loop {
                    let request = hyper::Request::post("/v1/audit/bench")
                        .header("host", "localhost")
                        .header("content-type", "application/json")
                        .body(Full::new(body.clone()))
                        .map_err(|error| error.to_string())?;
                    let sent = Instant::now();
                    sender.ready().await.map_err(|error| error.to_string())?;
                    let response = sender
                        .send_request(request)
                        .await
                        .map_err(|error| error.to_string())?;
                    let status = response.status().as_u16();
                    let _ = response.into_body().collect().await;
                    match status {
                        200 => {
                            latencies
                                .lock()
                                .await
                                .push(sent.elapsed().as_secs_f64() * 1000.0);
                            break;
                        }
                        503 => tokio::time::sleep(Duration::from_millis(100)).await,
                        other => return Err(format!("answered {other}")),
                    }
                }
            }
        }));
    }
    for client in clients {
        client
            .await
            .map_err(|error| error.to_string())?
            .map_err(|error| format!("a client: {error}"))?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let end_rss = resident_megabytes();
    let _ = stop.send(true);
    let _ = server.await;
    sink.flush(Duration::from_secs(10));
    let mut latencies = latencies.lock().await.clone();
    latencies.sort_by(f64::total_cmp);
    let events = requests * batch;
    #[allow(clippy::cast_precision_loss)]
    let rate = events as f64 / elapsed;
    let quarter = *quarter_rss.lock().await;
    let mut out = std::io::stdout().lock();
    use std::io::Write as _;
    writeln!(
        out,
        "| gateway: EventLists of {batch} over {} connections (RSS {quarter:.0} MB at a quarter, {end_rss:.0} MB at the end) | acks=all | {events} | {rate:.0} | {:.0} | {:.0} | {:.0} |",
        args.connections,
        percentile(&latencies, 500),
        percentile(&latencies, 990),
        percentile(&latencies, 999),
    )
    .map_err(|error| error.to_string())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    vigil_kafka::process_main(args.common.log_format, run(args))
}
