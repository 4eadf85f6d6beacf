//! `vigil-detect`: the detectors over enriched events, with their state checkpointed.

use clap::Parser;
use vigil_runtime::stages::DetectStage;
use vigil_runtime::{CommonArgs, service_main};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-detect",
    version,
    about = "Vigil's detect stage: runs every detector over enriched events and writes detections keyed by finding id. Detector state is checkpointed to a compacted topic and read back at start."
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    service_main(&args.common, false, |service| {
        service.spawn(DetectStage::new(
            args.common.topics.clone(),
            service.metrics().clone(),
            vigil_detect::Engine::default(),
        ));
        Ok(())
    })
}
