//! `vigil-detect`: the detectors over enriched events, with their state checkpointed.

use clap::Parser;
use vigil_kafka::stages::DetectStage;
use vigil_kafka::{CommonArgs, Settings, SettingsArgs, service_main};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-detect",
    version,
    about = "Vigil's detect stage: runs every enabled detector and rule (built-in and the settings' rule files) over enriched events and writes detections keyed by finding id. Detector state is checkpointed to a compacted topic and read back at start."
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    settings: SettingsArgs,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    service_main(&args.common, false, |service| {
        let settings = Settings::load(&args.settings)?;
        let engine = vigil_detect::Engine::build(&settings.detect)?;
        tracing::info!(
            detectors = engine.detector_names().len(),
            "detectors and rules loaded"
        );
        service.add_stage(DetectStage::new(
            args.common.topics.clone(),
            service.metrics().clone(),
            engine,
        ));
        Ok(())
    })
}
