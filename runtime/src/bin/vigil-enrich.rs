//! `vigil-enrich`: joins cluster metadata, the workload inventory and threat intelligence.

use clap::Parser;
use vigil_runtime::stages::{EnrichStage, load_intel};
use vigil_runtime::{CommonArgs, IntelArgs, service_main};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-enrich",
    version,
    about = "Vigil's enrich stage: adds the cluster, the pod inventory learned from the audit stream and threat intelligence (threat lists, Tor exits, trusted addresses) to each normalized event."
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    intel: IntelArgs,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    service_main(&args.common, false, |service| {
        let (clusters, intel) = load_intel(&args.intel)?;
        service.spawn(EnrichStage::new(
            args.common.topics.clone(),
            service.metrics().clone(),
            clusters,
            intel,
        ));
        Ok(())
    })
}
