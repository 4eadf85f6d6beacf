//! `vigil-enrich`: joins cluster metadata, the workload inventory and threat intelligence.

use clap::Parser;
use vigil_kafka::stages::{EnrichStage, load_settings};
use vigil_kafka::{CommonArgs, SettingsArgs, service_main};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-enrich",
    version,
    about = "Vigil's enrich stage: adds the cluster, the pod inventory learned from the audit stream and threat intelligence (threat lists, curated feeds, Tor exits, trusted addresses; reloaded when their files change) to each normalized event."
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
        let (settings, intel) = load_settings(&args.settings)?;
        service.add_stage(EnrichStage::new(
            args.common.topics.clone(),
            service.metrics().clone(),
            &settings,
            intel,
        ));
        Ok(())
    })
}
