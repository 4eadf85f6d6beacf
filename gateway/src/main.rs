//! `vigil-gateway`: events over HTTP into Vigil's raw topics.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::sync::watch;
use vigil_gateway::args::GatewayArgs;
use vigil_gateway::credentials::{Credentials, Policy};
use vigil_gateway::metrics::GatewayMetrics;
use vigil_gateway::server::{Gateway, RawTopics, serve};
use vigil_gateway::sink::{KafkaSink, Sink};
use vigil_kafka::{Health, Metrics, TopicSpec};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = GatewayArgs::parse();
    vigil_kafka::process_main(args.common.log_format, run(args))
}

async fn run(mut args: GatewayArgs) -> Result<(), String> {
    args.common
        .start_authentication()
        .await
        .map_err(|error| error.to_string())?;
    let metrics = Metrics::new().map_err(|error| error.to_string())?;
    let gateway_metrics =
        GatewayMetrics::new(metrics.clone()).map_err(|error| error.to_string())?;
    let credentials = match &args.credentials {
        Some(path) => Credentials::load(path).map_err(|error| error.to_string())?,
        None => Credentials::default(),
    };
    if credentials.is_empty() && args.client_ca.is_none() && !args.allow_anonymous {
        return Err(
            "no way for a sender to authenticate: give --credentials, --client-ca, or \
             --allow-anonymous for a gateway that only trusted senders can reach"
                .to_owned(),
        );
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(certificate), Some(key)) => Some(
            vigil_gateway::tls::acceptor(certificate, key, args.client_ca.as_deref())
                .map_err(|error| error.to_string())?,
        ),
        _ => None,
    };
    // Bound before anything connects to Kafka (whose connections take ephemeral ports, which a
    // port chosen beforehand may be) and before readiness is served: a ready gateway accepts.
    // Port 0 takes a free port; the log says which.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", args.listen))?;
    let listening = listener
        .local_addr()
        .map_err(|error| format!("cannot listen on {}: {error}", args.listen))?;
    tracing::info!(
        addr = %listening,
        tls = tls.is_some(),
        client_certificates = args.client_ca.is_some(),
        anonymous = args.allow_anonymous,
        "accepting events"
    );
    let topics = &args.common.topics;
    let raw = RawTopics {
        audit: topics.audit_raw.clone(),
        runtime: topics.runtime_raw.clone(),
        deadletter: topics.deadletter.clone(),
    };
    let specs: Vec<TopicSpec> = [&raw.audit, &raw.runtime, &raw.deadletter]
        .into_iter()
        .map(|name| TopicSpec {
            name: name.clone(),
            compacted: false,
        })
        .collect();
    vigil_kafka::kafka::ensure_topics(&args.common, &specs)
        .await
        .map_err(|error| error.to_string())?;
    let sink = Arc::new(
        KafkaSink::new(
            &args.common,
            &metrics,
            Duration::from_millis(args.delivery_timeout_ms),
            args.producer_queue_messages,
        )
        .map_err(|error| error.to_string())?,
    );
    let probe = sink.spawn_probe();
    let policy = Policy {
        credentials,
        allow_anonymous: args.allow_anonymous,
    };
    let gateway = Arc::new(Gateway::new(
        policy,
        Arc::clone(&sink) as Arc<dyn Sink>,
        raw,
        args.limits(),
        gateway_metrics,
    ));
    let health = Health::new();
    health.register();
    let endpoints =
        vigil_kafka::http::serve(args.common.metrics_addr, metrics, Arc::clone(&health))
            .await
            .map_err(|error| format!("cannot serve on {}: {error}", args.common.metrics_addr))?;
    let readiness = {
        let gateway = Arc::clone(&gateway);
        let health = Arc::clone(&health);
        tokio::spawn(async move {
            let mut was = false;
            loop {
                let now = gateway.is_ready();
                health.set_consumer_ready(was, now);
                was = now;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining"),
            () = async { match terminate.as_mut() { Some(stream) => { stream.recv().await; } None => std::future::pending::<()>().await } } => tracing::info!("SIGTERM: draining"),
        }
        let _ = stop.send(true);
    });
    let drain = Duration::from_secs(args.common.shutdown_timeout_secs);
    serve(Arc::clone(&gateway), listener, tls, stopped, drain).await;
    health.shutting_down();
    sink.flush(Duration::from_secs(5));
    readiness.abort();
    probe.abort();
    endpoints.abort();
    tracing::info!("stopped");
    Ok(())
}
