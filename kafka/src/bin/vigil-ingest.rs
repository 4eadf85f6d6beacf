//! `vigil-ingest`: raw audit JSON from Kafka → normalized Avro events; bad input → dead letters.

use clap::Parser;
use vigil_kafka::stages::IngestStage;
use vigil_kafka::{CommonArgs, service_main};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-ingest",
    version,
    about = "Vigil's ingest stage: reads raw Kubernetes audit JSON (any shape `vigil scan` reads) from the raw topic, writes normalized Avro events, and sends what it cannot read to the dead-letter topic with the reason."
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Largest event or line accepted; a Kafka message may be up to four times this.
    #[arg(long, env = "VIGIL_MAX_EVENT_BYTES", default_value_t = 4 * 1024 * 1024)]
    max_event_bytes: usize,
    /// Most bytes one gzip-compressed message may inflate to; past it the rest of the message is
    /// dead-lettered as too large (a gzip bomb: a megabyte that inflates to gigabytes).
    #[arg(long, env = "VIGIL_MAX_INFLATED_BYTES", default_value_t = 64 * 1024 * 1024)]
    max_inflated_bytes: u64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    service_main(&args.common, false, |service| {
        let limits = vigil_ingest::Limits {
            max_event_bytes: args.max_event_bytes,
            max_inflated_bytes: Some(args.max_inflated_bytes),
            ..vigil_ingest::Limits::default()
        };
        service.add_stage(IngestStage::new(
            args.common.topics.clone(),
            service.metrics().clone(),
            limits,
        ));
        Ok(())
    })
}
