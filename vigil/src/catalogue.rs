//! `vigil rules list --markdown`: the detector tables of docs/detectors.md, from the catalogue, so
//! the documentation and the code have one source.

use std::fmt::Write;

use vigil_detect::{DetectorInfo, Source};

/// A table cell: one line, with the pipes Markdown would take for column breaks escaped.
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous = ' ';
    for character in text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
    {
        if character == '|' && previous != '\\' {
            out.push('\\');
        }
        out.push(character);
        previous = character;
    }
    out
}

/// Two tables, audit then runtime, each detector and rule in the order the engine runs them.
pub fn markdown(catalogue: &[DetectorInfo]) -> String {
    let mut out = String::new();
    for (source, heading) in [
        (Source::Audit, "Audit-log detectors and rules"),
        (Source::Runtime, "Runtime detectors and rules"),
    ] {
        let _ = writeln!(out, "### {heading}\n");
        out.push_str("| name | finding type | severity | on | trigger | aggregation key |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for info in catalogue.iter().filter(|info| info.source == source) {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                info.name,
                info.finding_type
                    .split(", ")
                    .map(|kind| format!("`{kind}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                cell(&info.severity),
                if info.enabled { "on" } else { "**off**" },
                cell(&info.trigger),
                cell(&info.key),
            );
        }
        out.push('\n');
    }
    out
}
