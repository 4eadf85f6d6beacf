//! The `vigil` command.

mod catalogue;
mod examples;
mod outputs;
mod report;
mod rules_test;
mod scan;

// Events are allocated on the ingest thread and freed on the publish thread; glibc's allocator spends
// a quarter of a scan on that hand-over, mimalloc a small part of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vigil_detect::Engine;
use vigil_settings::{Settings, SettingsArgs};

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
    /// With no PATH, scans the bundled example: a day of ordinary cluster traffic with an attack in it,
    /// with the example settings (examples/vigil.toml) unless --config is given.
    Scan(ScanArgs),
    #[cfg(feature = "kafka")]
    /// Run all four stages as Kafka services in this process, for small installs: the same stages as
    /// the vigil-ingest, vigil-enrich, vigil-detect and vigil-publish binaries, each in a consumer
    /// group of its own (`<group>-<stage>`), one /metrics endpoint for all.
    Run(Box<RunArgs>),
    /// Write findings as one self-contained HTML file for people: a summary by severity and type,
    /// a filterable, sortable and paged table, each finding's detail (the API call, the process
    /// lineage as a tree, a baseline's observed-versus-usual, the evidence) and attack sequences as
    /// timelines. No network is needed to open it.
    Report(ReportArgs),
    /// Inspect, check and try detection rules.
    ///
    /// Rules are TOML: `[[rule]]` tables with `id`, `type` (ThreatPurpose:Kubernetes/Name),
    /// `severity` (Low, Medium, High, Critical or 1.0-10.0), `title` and `description` (with `{field}`
    /// placeholders), optional `key` (aggregation key fields; default user.username and object),
    /// `enabled`, `doc`, `overrides` (the built-in it replaces, required to raise a built-in's
    /// type), and conditions: `when` (all must hold), `any` (one must), `unless` (none may).
    /// A condition is `{ field = "...", <op> = value }` with op one of eq, neq, in, not_in, prefix,
    /// suffix, contains, matches (wildcards * and ?, as in suppression rules), regex, exists, gt,
    /// lt. Fields: `vigil rules fields` (Sigma's, Falco's and the audit JSON's names work too). The
    /// built-in rules are written the same way (detect/rules/builtin.toml).
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Evaluate the behaviour baselines: generate weeks of seeded cluster behaviour (people with
    /// working hours, applications, CI with daily preview namespaces, churn), inject anomalies of each
    /// kind after the learning period, and report per kind whether they were found, with the false
    /// findings per day on the ordinary traffic and the state's size. Deterministic for a seed.
    EvalBaselines {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 200)]
        principals: usize,
        #[arg(long, default_value_t = 28)]
        days: i64,
        /// Days of learning before anomalies are injected and false findings counted.
        #[arg(long, default_value_t = 14)]
        learn_days: i64,
    },
}

#[derive(Debug, clap::Args)]
struct ReportArgs {
    /// Findings files: GuardDuty finding JSON, one per line (what `vigil scan` writes and the
    /// findings topic carries) or a JSON array; `-` for stdin.
    #[arg(required = true)]
    findings: Vec<PathBuf>,
    /// The HTML file to write.
    #[arg(long, short, value_name = "FILE")]
    output: PathBuf,
    /// The report's title.
    #[arg(long, default_value = "Vigil findings report")]
    title: String,
}

fn write_report(args: &ReportArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut findings = Vec::new();
    let mut skipped = 0;
    for path in &args.findings {
        let text = if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
            text
        } else {
            std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?
        };
        skipped += report::read_findings(&text, &mut findings);
    }
    if skipped > 0 {
        note(&format!(
            "{skipped} lines were not findings and are left out"
        ));
    }
    std::fs::write(&args.output, report::render(&findings, &args.title))
        .map_err(|error| format!("{}: {error}", args.output.display()))?;
    note(&format!(
        "{} findings written to {}",
        findings.len(),
        args.output.display()
    ));
    Ok(())
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Every detector and rule with its finding type, severity, origin and whether it is on, as the
    /// settings leave them.
    List {
        #[command(flatten)]
        settings: SettingsArgs,
        /// Print Markdown tables, audit then runtime, with each one's trigger and aggregation key:
        /// the tables of docs/detectors.md, which a test holds to this output.
        #[arg(long)]
        markdown: bool,
    },
    /// The fields rules can test.
    Fields,
    /// Loads rule files and reports the first mistake of each with its file and line.
    Check {
        /// Rule files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Runs rule files over example events and shows what each rule finds: for each detection, the
    /// event's line, the rule and the finding's title. Exits 1 if a rule named by --expect-fire found
    /// nothing or one named by --expect-quiet found something.
    Test {
        /// Rule files to test.
        #[arg(long = "rules", required = true, value_name = "FILE")]
        rule_files: Vec<PathBuf>,
        /// The settings file whose clusters (names, account, provider and address ranges) and
        /// threat, Tor, trusted and provider lists enrich the events, as in the services; its own
        /// rules are not run, only those under test.
        #[arg(long, env = "VIGIL_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Audit events (any shape vigil scan reads).
        #[arg(required = true)]
        events: Vec<PathBuf>,
        /// A rule that must fire at least once on these events. Repeatable.
        #[arg(long, value_name = "RULE")]
        expect_fire: Vec<String>,
        /// A rule that must not fire on these events. Repeatable.
        #[arg(long, value_name = "RULE")]
        expect_quiet: Vec<String>,
    },
}

#[cfg(feature = "kafka")]
#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    common: vigil_kafka::CommonArgs,
    #[command(flatten)]
    settings: SettingsArgs,
    /// Largest event or line ingest accepts; a Kafka message may be up to four times this.
    #[arg(long, env = "VIGIL_MAX_EVENT_BYTES", default_value_t = 4 * 1024 * 1024)]
    max_event_bytes: usize,
    /// Most bytes one gzip-compressed message may inflate to (a gzip bomb's defence), as the
    /// ingest stage's flag of the same name.
    #[arg(long, env = "VIGIL_MAX_INFLATED_BYTES", default_value_t = 64 * 1024 * 1024)]
    max_inflated_bytes: u64,
}

#[cfg(feature = "kafka")]
fn run(args: &RunArgs) -> ExitCode {
    use vigil_kafka::stages::{DetectStage, EnrichStage, IngestStage, PublishStage, load_settings};
    vigil_kafka::service_main(&args.common, true, |service| {
        let (settings, intel) = load_settings(&args.settings)?;
        let engine = Engine::build(&settings.detect)?;
        let topics = args.common.topics.clone();
        let metrics = service.metrics().clone();
        let limits = vigil_ingest::Limits {
            max_event_bytes: args.max_event_bytes,
            max_inflated_bytes: Some(args.max_inflated_bytes),
            ..vigil_ingest::Limits::default()
        };
        service.add_stage(IngestStage::new(topics.clone(), metrics.clone(), limits));
        service.add_stage(EnrichStage::new(
            topics.clone(),
            metrics.clone(),
            &settings,
            intel,
        ));
        service.add_stage(DetectStage::new(topics.clone(), metrics.clone(), engine));
        service.add_stage(PublishStage::new(
            topics,
            metrics,
            vigil_publish::Publisher::new(settings.suppression, settings.correlation),
            settings.format,
        ));
        Ok(())
    })
}

#[derive(Debug, clap::Args)]
struct ScanArgs {
    /// Audit log files or directories (read recursively, in name order), or `-` for stdin. Read in the
    /// order given, so last month's logs then today's teach and then test. Any shape: JSON lines, JSON
    /// arrays, EventLists, CloudWatch Logs records or exports; plain or gzip.
    paths: Vec<PathBuf>,
    /// The same settings the Kafka stages take.
    #[command(flatten)]
    settings: SettingsArgs,
    /// Write findings to FILE instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// The findings' format: `guardduty` (GuardDuty's finding JSON) or `ocsf` (OCSF 1.6.0 Detection
    /// Finding, class 2004). Replaces the settings' `[output] format`.
    #[arg(long, value_name = "FORMAT", value_parser = parse_format)]
    format: Option<vigil_publish::Format>,
    /// Also write the findings as a self-contained HTML report to FILE (see `vigil report`).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Largest event or line read; a larger one is rejected (counted, with its reason), as the
    /// Kafka ingest stage's flag of the same name does.
    #[arg(long, env = "VIGIL_MAX_EVENT_BYTES", default_value_t = 4 * 1024 * 1024)]
    max_event_bytes: usize,
    /// Most bytes one gzip-compressed input may inflate to; past it the rest of that input is
    /// rejected as too large. No bound unless given: a day's compressed log is gigabytes.
    #[arg(long, value_name = "BYTES")]
    max_inflated_bytes: Option<u64>,
    /// Most findings held at once. Past it the least recently updated is written out and
    /// forgotten, so memory stays flat however many distinct findings the input raises; one raised
    /// again is written again, its count starting afresh (the output then holds it twice, and its
    /// counts add up).
    #[arg(long, default_value_t = 20_000)]
    max_findings: usize,
    /// Also write the summary's numbers as JSON to FILE, for scripts and CI.
    #[arg(long, value_name = "FILE")]
    stats: Option<PathBuf>,
    /// The detectors' state (behaviour baselines, burst windows): read from FILE before the scan
    /// when it exists, written back after it. Learn from last month's logs, then scan today's:
    /// `vigil scan --state s.json last-month/` then `vigil scan --state s.json today.json`.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
}

fn parse_format(name: &str) -> Result<vigil_publish::Format, String> {
    vigil_publish::Format::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = vigil_publish::Format::ALL
            .iter()
            .map(|format| format.name())
            .collect();
        format!("{name:?} is not one of: {}", known.join(", "))
    })
}

#[allow(clippy::print_stderr)]
fn note(text: &str) {
    eprintln!("vigil: {text}");
}

/// The settings of a scan: the files and flags given, or for the bundled example with no --config,
/// the example settings read from the copy compiled in.
fn scan_settings(
    args: &SettingsArgs,
    embedded: bool,
) -> Result<(Settings, vigil_enrich::ThreatIntel, Vec<String>), vigil_settings::SettingsError> {
    let settings = if embedded && args.config.is_none() {
        Settings::from_text(
            examples::SETTINGS_NAME,
            examples::SETTINGS,
            Some(Path::new("examples")),
            args,
            &examples::read,
        )?
    } else {
        Settings::load(args)?
    };
    let mut notes = settings.notes.clone();
    let intel = if embedded && args.config.is_none() {
        settings.threat_intel_with(&mut notes, &examples::read)?
    } else {
        settings.threat_intel(&mut notes)?
    };
    Ok((settings, intel, notes))
}

fn scan(args: ScanArgs) -> Result<(), Box<dyn std::error::Error>> {
    // Every file the scan writes, checked and opened before any input is read.
    let named: Vec<(&str, &Path)> = [
        ("-o", args.output.as_deref()),
        ("--report", args.report.as_deref()),
        ("--stats", args.stats.as_deref()),
        ("--state", args.state.as_deref()),
    ]
    .into_iter()
    .filter_map(|(flag, path)| Some((flag, path?)))
    .collect();
    outputs::refuse_overlap(&args.paths, &named)?;
    let open = |path: &Option<PathBuf>| {
        path.as_deref()
            .map(outputs::PendingFile::create)
            .transpose()
    };
    let mut output_file = open(&args.output)?;
    let report_file = open(&args.report)?;
    let stats_file = open(&args.stats)?;
    let state_file = open(&args.state)?;
    let embedded = args.paths.is_empty();
    let sources = if embedded {
        scan::embedded_sources()
    } else {
        scan::expand_paths(&args.paths)?
    };
    let (mut settings, intel, notes) = scan_settings(&args.settings, embedded)?;
    for text in &notes {
        note(text);
    }
    if let Some(format) = args.format {
        settings.format = format;
    }
    let mut engine = Engine::build(&settings.detect)?;
    let mut state = std::collections::BTreeMap::new();
    if let Some(path) = args.state.as_ref().filter(|path| path.exists()) {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("{}: {error}", path.display()))?;
        let entries =
            scan::read_state(&text).map_err(|error| format!("{}: {error}", path.display()))?;
        let total = entries.len();
        let unknown = entries
            .iter()
            .filter(|(key, value)| !engine.restore(key, Some(value)))
            .count();
        state.extend(entries);
        note(&format!(
            "restored {} detector state entries from {}{}",
            total - unknown,
            path.display(),
            if unknown > 0 {
                format!(
                    " ({unknown} skipped: of detectors no longer on, or no longer decoding; \
                     relearned)"
                )
            } else {
                String::new()
            }
        ));
    }
    let mut pipeline = vigil_pipeline::Pipeline::with_engine(&settings, intel, engine)
        .with_ingest_limits(vigil_ingest::Limits {
            max_event_bytes: args.max_event_bytes,
            max_inflated_bytes: args.max_inflated_bytes,
            ..vigil_ingest::Limits::default()
        });
    pipeline.bound_findings(args.max_findings);
    let options = scan::ScanOptions {
        sources,
        pipeline,
        progress: scan::wants_progress(),
        report: report_file.is_some(),
    };
    let report = match output_file.as_mut() {
        Some(file) => scan::run(options, file.writer()?)?,
        None => scan::run(options, &mut std::io::stdout().lock())?,
    };
    if let Some(file) = output_file {
        file.commit()?;
    }
    if let Some(file) = report_file {
        let path = file.path().display().to_string();
        file.commit_with(
            report::render(&report.report_findings, "Vigil findings report").as_bytes(),
        )?;
        note(&format!("report written to {path}"));
    }
    if let Some(file) = state_file {
        // What was restored, with what this scan changed on top.
        for change in &report.state_changes {
            match &change.value {
                Some(value) => state.insert(change.key.clone(), value.clone()),
                None => state.remove(&change.key),
            };
        }
        file.commit_with(scan::write_state(&state).as_bytes())?;
    }
    if let Some(file) = stats_file {
        file.commit_with(scan::stats_json(&report).to_string().as_bytes())?;
    }
    #[allow(clippy::print_stderr)]
    {
        eprint!("{}", scan::summary(&report));
    }
    Ok(())
}

fn rules(command: RulesCommand) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut out = std::io::stdout().lock();
    match command {
        RulesCommand::List { settings, markdown } => {
            let settings = Settings::load(&settings)?;
            if markdown {
                write!(
                    out,
                    "{}",
                    catalogue::markdown(
                        &Engine::catalogue(&settings.detect)?,
                        &catalogue::correlation(&settings.correlation)
                    )
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "{:<40} {:<3} {:<28} {:<68} {:<28} ATT&CK",
                "name", "on", "severity", "finding type", "origin"
            )?;
            let mut entries = Engine::catalogue(&settings.detect)?;
            entries.extend(catalogue::correlation(&settings.correlation));
            for info in entries {
                writeln!(
                    out,
                    "{:<40} {:<3} {:<38} {:<68} {:<28} {}",
                    info.name,
                    if info.enabled { "on" } else { "off" },
                    info.severity,
                    info.finding_type,
                    info.origin,
                    catalogue::attack_cell(&info)
                )?;
            }
        }
        RulesCommand::Fields => {
            for field in vigil_detect::rules::FIELDS {
                writeln!(out, "{:<36} {}", field.name, field.doc)?;
            }
        }
        RulesCommand::Check { files } => {
            let mut failed = false;
            for path in &files {
                let text = std::fs::read_to_string(path)
                    .map_err(|error| format!("{}: {error}", path.display()))?;
                match vigil_detect::rules::parse_rules(&path.display().to_string(), &text) {
                    Ok(rules) => writeln!(out, "{}: {} rule(s), ok", path.display(), rules.len())?,
                    Err(error) => {
                        failed = true;
                        writeln!(out, "{error}")?;
                    }
                }
            }
            return Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            });
        }
        RulesCommand::Test {
            rule_files,
            config,
            events,
            expect_fire,
            expect_quiet,
        } => {
            let settings = Settings::load(&SettingsArgs {
                config,
                rule_files: rule_files.clone(),
                ..SettingsArgs::default()
            })?;
            let mut notes = settings.notes.clone();
            let intel = settings.threat_intel(&mut notes)?;
            let under_test: Vec<String> = rule_files
                .iter()
                .map(|path| path.display().to_string())
                .collect();
            let theirs: Vec<String> = settings
                .detect
                .rule_files
                .iter()
                .filter(|source| under_test.contains(&source.name))
                .map(|source| vigil_detect::rules::parse_rules(&source.name, &source.text))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .flatten()
                .map(|rule| rule.id.to_owned())
                .collect();
            for name in expect_fire.iter().chain(&expect_quiet) {
                if !theirs.contains(name) {
                    return Err(format!("{name:?} is not a rule of the files under test").into());
                }
            }
            // Rules under test run even where they ship off.
            let detect = vigil_detect::DetectConfig {
                enable: theirs.clone(),
                ..settings.detect.clone()
            };
            let mut engine = Engine::build(&detect)?;
            engine.retain(|name| theirs.iter().any(|rule| rule == name));
            let pipeline = vigil_pipeline::Pipeline::with_engine(&settings, intel, engine);
            let results = rules_test::run(&events, pipeline)?;
            let verdict =
                rules_test::report(&mut out, &theirs, &results, &expect_fire, &expect_quiet)?;
            return Ok(if verdict {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Scan(args) => scan(args),
        Command::Report(args) => write_report(&args),
        #[cfg(feature = "kafka")]
        Command::Run(args) => return run(&args),
        Command::Rules { command } => match rules(command) {
            Ok(code) => return code,
            Err(error) => Err(error),
        },
        Command::EvalBaselines {
            seed,
            principals,
            days,
            learn_days,
        } => vigil_sim::evaluate(&vigil_sim::EvalOptions {
            seed,
            principals,
            days,
            learn_days: learn_days.clamp(1, days.max(2) - 1),
        })
        .map(|report| {
            #[allow(clippy::print_stdout)]
            {
                print!("{}", vigil_sim::render(&report));
            }
        })
        .map_err(Into::into),
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
