//! `vigil-publish`: aggregates detections into GuardDuty-shaped findings.

use clap::Parser;
use vigil_kafka::stages::PublishStage;
use vigil_kafka::{CommonArgs, Settings, SettingsArgs, service_main};
use vigil_publish::Publisher;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-publish",
    version,
    about = "Vigil's publish stage: aggregates detections into findings with deterministic ids and writes GuardDuty finding JSON to the findings topic, keyed by id. Findings that a suppression rule matches are published archived. Aggregation state is kept in a compacted topic, so a restart neither loses nor re-counts occurrences."
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
        if !settings.suppression.is_empty() {
            tracing::info!(
                rules = settings.suppression.len(),
                "suppression rules loaded"
            );
        }
        service.add_stage(PublishStage::new(
            args.common.topics.clone(),
            service.metrics().clone(),
            Publisher::new(settings.suppression, settings.correlation.clone()),
            settings.format,
        ));
        Ok(())
    })
}
