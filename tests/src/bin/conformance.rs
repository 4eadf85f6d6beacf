//! The conformance run: `vigil scan` over each file of the shared third-party corpus, judged against
//! the corpus's expectations (`expectations.tsv`), printing per expectation whether it held. Fails when
//! the share that held is below the committed floor, which is only ever raised.
//!
//! `conformance --vigil target/release/vigil --corpus ../shared/corpus --floor .ci/conformance-floor
//!  [--markdown FILE]`

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use serde_json::Value;
use vigil_tests::{Requirement, RuleMap, Scan, judge, requirement_for};

struct Args {
    vigil: PathBuf,
    corpus: PathBuf,
    floor: PathBuf,
    markdown: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut vigil = None;
    let mut corpus = None;
    let mut floor = None;
    let mut markdown = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--vigil" => vigil = Some(PathBuf::from(value)),
            "--corpus" => corpus = Some(PathBuf::from(value)),
            "--floor" => floor = Some(PathBuf::from(value)),
            "--markdown" => markdown = Some(PathBuf::from(value)),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(Args {
        vigil: vigil.ok_or("--vigil PATH is required")?,
        corpus: corpus.ok_or("--corpus DIR is required")?,
        floor: floor.ok_or("--floor FILE is required")?,
        markdown,
    })
}

fn scan(vigil: &Path, file: &Path, enable: Option<&str>, scratch: &Path) -> Result<Scan, String> {
    let stats_path = scratch.join("stats.json");
    let mut command = Command::new(vigil);
    command.arg("scan").arg("--stats").arg(&stats_path);
    if let Some(rule) = enable {
        command.arg("--enable-rule").arg(rule);
    }
    let output = command
        .arg(file)
        .output()
        .map_err(|error| format!("cannot run {}: {error}", vigil.display()))?;
    if !output.status.success() {
        return Err(format!(
            "vigil scan {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let findings: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|error| {
            format!(
                "vigil scan {} wrote a line that is not JSON: {error}",
                file.display()
            )
        })?;
    let stats: Value = serde_json::from_str(
        &std::fs::read_to_string(&stats_path).map_err(|error| error.to_string())?,
    )
    .map_err(|error| error.to_string())?;
    let rejected = stats
        .get("rejected")
        .and_then(Value::as_object)
        .map(|reasons| reasons.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    Ok(Scan {
        events: stats.get("events").and_then(Value::as_u64).unwrap_or(0),
        rejected,
        findings,
    })
}

#[allow(clippy::print_stdout, clippy::print_stderr)]
fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("conformance: {error}");
            return ExitCode::from(2);
        }
    };
    let run = || -> Result<bool, String> {
        let expectations_path = args.corpus.join("expectations.tsv");
        let expectations = std::fs::read_to_string(&expectations_path).map_err(|error| {
            format!(
                "{}: {error} (is ../shared beside the checkout?)",
                expectations_path.display()
            )
        })?;
        let rules = RuleMap::parse(include_str!("../../conformance/falco-rules.tsv"))?;
        let runtime = RuleMap::parse(include_str!("../../conformance/runtime-behaviours.tsv"))?;
        let floor: f64 = std::fs::read_to_string(&args.floor)
            .map_err(|error| format!("{}: {error}", args.floor.display()))?
            .trim()
            .parse()
            .map_err(|error| format!("{}: not a number: {error}", args.floor.display()))?;
        let scratch =
            std::env::temp_dir().join(format!("vigil-conformance-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).map_err(|error| error.to_string())?;

        let mut scans: HashMap<(String, Option<String>), Scan> = HashMap::new();
        let mut held = 0usize;
        let mut total = 0usize;
        let mut by_requirement: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        let mut lines = Vec::new();
        for row in expectations
            .lines()
            .skip(1)
            .filter(|line| !line.trim().is_empty())
        {
            let columns: Vec<&str> = row.split('\t').collect();
            let [file, _index, expected, source, ..] = columns.as_slice() else {
                return Err(format!(
                    "expectations.tsv: a row without four columns: {row}"
                ));
            };
            let requirement = requirement_for(file, expected, source, &rules, &runtime);
            let verdict = match &requirement {
                Requirement::Unsupported(why) => Err(why.clone()),
                _ => {
                    let key = ((*file).to_owned(), requirement.enables().map(str::to_owned));
                    if !scans.contains_key(&key) {
                        let result = scan(
                            &args.vigil,
                            &args.corpus.join(file),
                            requirement.enables(),
                            &scratch,
                        )?;
                        scans.insert(key.clone(), result);
                    }
                    let result = scans.get(&key).ok_or("scan result missing")?;
                    judge(&requirement, result)
                }
            };
            total += 1;
            let tally = by_requirement
                .entry(requirement.category().to_owned())
                .or_default();
            tally.1 += 1;
            let (mark, note) = match verdict {
                Ok(note) => {
                    held += 1;
                    tally.0 += 1;
                    ("HELD  ", note)
                }
                Err(note) => ("MISSED", note),
            };
            let line = format!("{mark} {file}  [{}]  {note}", requirement.describe());
            println!("{line}");
            lines.push((
                mark.trim().to_owned(),
                (*file).to_owned(),
                requirement.describe(),
                note,
            ));
        }
        let _ = std::fs::remove_dir_all(&scratch);
        let recall = if total == 0 {
            0.0
        } else {
            held as f64 / total as f64
        };
        println!();
        for (category, (category_held, category_total)) in &by_requirement {
            println!("  {category:<28} {category_held:>3} of {category_total:>3} held");
        }
        println!(
            "conformance: {held} of {total} expectations held ({:.1}%), floor {:.1}%",
            recall * 100.0,
            floor * 100.0
        );
        if let Some(path) = &args.markdown {
            let mut text =
                String::from("| held | file | requirement | observed |\n|---|---|---|---|\n");
            for (mark, file, requirement, note) in &lines {
                text += &format!("| {mark} | `{file}` | {requirement} | {note} |\n");
            }
            std::fs::write(path, text).map_err(|error| error.to_string())?;
        }
        Ok(recall + 1e-9 >= floor)
    };
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("conformance: below the floor");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("conformance: {error}");
            ExitCode::from(2)
        }
    }
}
