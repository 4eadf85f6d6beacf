//! The `vigil` command.

mod examples;
mod scan;

// Events are allocated on the ingest thread and freed on the publish thread; glibc's allocator spends
// a quarter of a scan on that hand-over, mimalloc a small part of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vigil_enrich::{ClusterConfig, NamedList};

#[derive(Debug, Parser)]
#[command(
    name = "vigil",
    version,
    about = "Threat detection for Kubernetes audit logs and runtime events, GuardDuty EKS Protection's open counterpart."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole pipeline (ingest, enrich, detect, publish) in this process over files, without a
    /// broker. Findings go to stdout as GuardDuty finding JSON, one per line; a summary goes to stderr.
    /// With no PATH, scans the bundled example: a day of ordinary cluster traffic with an attack in it.
    Scan(ScanArgs),
    /// Run all four stages as Kafka services in this process, for small installs: the same stages as
    /// the vigil-ingest, vigil-enrich, vigil-detect and vigil-publish binaries, each in a consumer
    /// group of its own (`<group>-<stage>`), one /metrics endpoint for all.
    Run(Box<RunArgs>),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    common: vigil_runtime::CommonArgs,
    #[command(flatten)]
    intel: vigil_runtime::IntelArgs,
    /// Largest event or line ingest accepts; a Kafka message may be up to four times this.
    #[arg(long, env = "VIGIL_MAX_EVENT_BYTES", default_value_t = 4 * 1024 * 1024)]
    max_event_bytes: usize,
}

fn run(args: &RunArgs) -> ExitCode {
    use vigil_runtime::stages::{DetectStage, EnrichStage, IngestStage, PublishStage, load_intel};
    vigil_runtime::service_main(&args.common, true, |service| {
        let (clusters, intel) = load_intel(&args.intel)?;
        let topics = args.common.topics.clone();
        let metrics = service.metrics().clone();
        let limits = vigil_ingest::Limits {
            max_event_bytes: args.max_event_bytes,
            ..vigil_ingest::Limits::default()
        };
        service.spawn(IngestStage::new(topics.clone(), metrics.clone(), limits));
        service.spawn(EnrichStage::new(
            topics.clone(),
            metrics.clone(),
            clusters,
            intel,
        ));
        service.spawn(DetectStage::new(
            topics.clone(),
            metrics.clone(),
            vigil_detect::Engine::default(),
        ));
        service.spawn(PublishStage::new(topics, metrics));
        Ok(())
    })
}

#[derive(Debug, clap::Args)]
struct ScanArgs {
    /// Audit log files or directories (read recursively, in name order), or `-` for stdin. Read in the
    /// order given, so last month's logs then today's teach and then test. Any shape: JSON lines, JSON
    /// arrays, EventLists, CloudWatch Logs records or exports; plain or gzip.
    paths: Vec<PathBuf>,
    /// The same cluster and threat-list files the Kafka stages take.
    #[command(flatten)]
    intel: vigil_runtime::IntelArgs,
    /// Write findings to FILE instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Also write the summary's numbers as JSON to FILE, for scripts and CI.
    #[arg(long, value_name = "FILE")]
    stats: Option<PathBuf>,
}

fn warn_bad_lines(list: &NamedList) {
    for (line, text) in list.bad_lines.iter().take(5) {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "vigil: list {}: line {line} is not an IP or CIDR, ignored: {text:?}",
                list.name
            );
        }
    }
}

fn scan(args: ScanArgs) -> Result<(), Box<dyn std::error::Error>> {
    let embedded = args.paths.is_empty();
    let sources = if embedded {
        scan::embedded_sources()
    } else {
        scan::expand_paths(&args.paths)?
    };
    let (mut clusters, mut intel) = vigil_runtime::stages::load_intel(&args.intel)?;
    if embedded {
        if args.intel.cluster_config.is_none() {
            clusters = ClusterConfig::parse(examples::CLUSTER_CONFIG)?;
        }
        if intel.threat_lists.is_empty() {
            intel
                .threat_lists
                .push(NamedList::parse("threat-list", examples::THREAT_LIST));
        }
        if intel.tor_exits.is_none() {
            intel.tor_exits = Some(NamedList::parse("tor-exit-addresses", examples::TOR_EXITS));
        }
    }
    for list in intel
        .threat_lists
        .iter()
        .chain(&intel.tor_exits)
        .chain(&intel.trusted)
    {
        warn_bad_lines(list);
    }
    let output = args.output.clone();
    let report = scan::run(scan::ScanOptions {
        sources,
        clusters,
        intel,
        output: output.clone(),
        progress: scan::wants_progress(),
    })?;
    if output.is_none() {
        scan::write_findings(&mut std::io::stdout().lock(), &report.findings)?;
    }
    if let Some(path) = &args.stats {
        std::fs::write(path, scan::stats_json(&report).to_string())
            .map_err(|error| format!("{}: {error}", path.display()))?;
    }
    #[allow(clippy::print_stderr)]
    {
        eprint!("{}", scan::summary(&report));
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Scan(args) => scan(args),
        Command::Run(args) => return run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("vigil: {error}");
            }
            ExitCode::from(2)
        }
    }
}
