//! The judging half of the conformance run, kept apart from the process handling so it can be tested:
//! what each corpus expectation requires of Vigil, and whether a scan met it.

use serde_json::Value;

/// What one `vigil scan` of a corpus file produced.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub events: u64,
    pub rejected: u64,
    pub findings: Vec<Value>,
}

/// What an expectation asks of Vigil.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A finding of one of these types (a `*:` prefix stands for any threat purpose), every event
    /// accepted.
    Finding(Vec<String>),
    /// A finding of one of these types from a rule that ships off because it is noisy, scanned with
    /// that rule switched on (`--enable-rule`), as a user who wants the behaviour would.
    FindingWhenEnabled { rule: String, types: Vec<String> },
    /// Every event accepted, none rejected; no finding owed.
    Accept,
    /// Every event accepted and no finding at all.
    Quiet,
    /// Benign traffic: every event accepted, no finding at Medium or above.
    QuietAtMedium,
    /// The input must be rejected with a reason.
    Reject,
    /// Vigil has no way to meet it yet; the reason says why.
    Unsupported(String),
}

impl Requirement {
    pub fn category(&self) -> &'static str {
        match self {
            Self::Finding(_) => "threat finding",
            Self::FindingWhenEnabled { .. } => "threat finding, rule switched on",
            Self::Accept => "accepted (no finding owed)",
            Self::Quiet => "no finding",
            Self::QuietAtMedium => "benign: none at Medium+",
            Self::Reject => "rejected with a reason",
            Self::Unsupported(_) => "not yet supported",
        }
    }

    /// The rule the scan must switch on, if any.
    pub fn enables(&self) -> Option<&str> {
        match self {
            Self::FindingWhenEnabled { rule, .. } => Some(rule),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Finding(types) => format!("finding {}", types.join(" or ")),
            Self::FindingWhenEnabled { rule, types } => {
                format!("finding {} with --enable-rule {rule}", types.join(" or "))
            }
            other => other.category().to_owned(),
        }
    }
}

/// `falco-rules.tsv`: Falco rule name to requirement.
#[derive(Debug, Default)]
pub struct RuleMap {
    rules: Vec<(String, Requirement)>,
}

impl RuleMap {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (rule, rest) = line
                .split_once('\t')
                .ok_or(format!("falco-rules.tsv line {}: no tab", index + 1))?;
            // A third column, when present, says why.
            let requirement = rest.split('\t').next().unwrap_or_default();
            let requirement = match requirement.trim() {
                "accept" => Requirement::Accept,
                "quiet-at-medium" => Requirement::QuietAtMedium,
                other if other.starts_with("finding-when-enabled ") => {
                    let mut words = other.split_whitespace().skip(1);
                    match (words.next(), words.next()) {
                        (Some(rule), Some(types)) => Requirement::FindingWhenEnabled {
                            rule: rule.to_owned(),
                            types: types.split('|').map(str::to_owned).collect(),
                        },
                        _ => {
                            return Err(format!(
                                "falco-rules.tsv line {}: write finding-when-enabled RULE TYPE",
                                index + 1
                            ));
                        }
                    }
                }
                other => match other.strip_prefix("finding ") {
                    Some(types) => {
                        Requirement::Finding(types.split('|').map(str::to_owned).collect())
                    }
                    None => {
                        return Err(format!(
                            "falco-rules.tsv line {}: unknown requirement {other:?}",
                            index + 1
                        ));
                    }
                },
            };
            rules.push((rule.to_owned(), requirement));
        }
        Ok(Self { rules })
    }

    pub fn get(&self, rule: &str) -> Option<&Requirement> {
        self.rules
            .iter()
            .find(|(name, _)| name == rule)
            .map(|(_, requirement)| requirement)
    }
}

/// Falco rule files that only adapt Falco itself, not the threat model: a "no alert" verdict under
/// them still means the event is harmless.
const NEUTRAL_FALCO_CONFIG: [&str; 2] =
    ["disallow_kactivity.yaml", "engine_v4_k8s_audit_rules.yaml"];

/// What Vigil owes a corpus expectation. Falco's verdicts on audit files go through `rules`
/// (falco-rules.tsv); the runtime corpus asserts no verdicts, only descriptions, so what Vigil owes
/// each runtime file is written down once in `runtime` (runtime-behaviours.tsv, keyed by file).
pub fn requirement_for(
    file: &str,
    expected: &str,
    source: &str,
    rules: &RuleMap,
    runtime: &RuleMap,
) -> Requirement {
    if file.starts_with("runtime/") {
        return runtime.get(file).cloned().unwrap_or_else(|| {
            Requirement::Unsupported(format!(
                "no requirement written for {file} in runtime-behaviours.tsv"
            ))
        });
    }
    if expected.contains("data not recognized") {
        return Requirement::Reject;
    }
    if let Some(rest) = expected.strip_prefix("falco rule \"") {
        let rule = rest.split('"').next().unwrap_or_default();
        return rules.get(rule).cloned().unwrap_or_else(|| {
            Requirement::Unsupported(format!("Falco rule {rule:?} is not in falco-rules.tsv"))
        });
    }
    if expected.starts_with("NO falco alert expected") {
        // `[rules: a.yaml+b.yaml +extra.yaml]`: files after the space are test-specific configuration.
        let extras = source
            .split("[rules:")
            .nth(1)
            .unwrap_or_default()
            .trim_end_matches(']')
            .split(['+', ' '])
            .filter(|name| name.ends_with(".yaml"))
            .filter(|name| !matches!(*name, "falco_rules.yaml" | "k8s_audit_rules.yaml"))
            .filter(|name| !NEUTRAL_FALCO_CONFIG.contains(name))
            .count();
        return if extras == 0 {
            Requirement::Quiet
        } else {
            Requirement::Accept
        };
    }
    if expected.contains("benign") {
        return Requirement::QuietAtMedium;
    }
    Requirement::Unsupported(format!("no rule for the expectation {expected:?}"))
}

fn type_matches(pattern: &str, finding_type: &str) -> bool {
    match pattern.strip_prefix("*:") {
        Some(suffix) => finding_type
            .split_once(':')
            .is_some_and(|(_, rest)| rest == suffix),
        None => pattern == finding_type,
    }
}

/// `Ok(observation)` when the scan met the requirement, `Err(observation)` when not.
pub fn judge(requirement: &Requirement, scan: &Scan) -> Result<String, String> {
    let types: Vec<&str> = scan
        .findings
        .iter()
        .filter_map(|finding| finding["type"].as_str())
        .collect();
    let observed = format!(
        "{} events, {} rejected, findings: [{}]",
        scan.events,
        scan.rejected,
        types.join(", ")
    );
    let accepted = scan.rejected == 0 && scan.events > 0;
    let held = match requirement {
        Requirement::Finding(wanted) | Requirement::FindingWhenEnabled { types: wanted, .. } => {
            accepted
                && types
                    .iter()
                    .any(|found| wanted.iter().any(|pattern| type_matches(pattern, found)))
        }
        Requirement::Accept => accepted,
        Requirement::Quiet => accepted && types.is_empty(),
        Requirement::QuietAtMedium => {
            accepted
                && scan
                    .findings
                    .iter()
                    .all(|finding| finding["severity"].as_f64().unwrap_or(10.0) < 4.0)
        }
        Requirement::Reject => scan.rejected > 0 && scan.events == 0,
        Requirement::Unsupported(why) => return Err(why.clone()),
    };
    if held { Ok(observed) } else { Err(observed) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn scan(events: u64, rejected: u64, findings: &[(&str, f64)]) -> Scan {
        Scan {
            events,
            rejected,
            findings: findings
                .iter()
                .map(|(kind, severity)| json!({"type": kind, "severity": severity}))
                .collect(),
        }
    }

    #[test]
    fn rule_rows_become_requirements() {
        let rules = RuleMap::parse(
            "# c\nCreate Privileged Pod\tfinding A:K/P|B:K/Q\nK8s Secret Created\taccept\n",
        )
        .unwrap();
        assert_eq!(
            requirement_for(
                "audit/x.json",
                "falco rule \"Create Privileged Pod\" fires x1",
                "",
                &rules,
                &RuleMap::default()
            ),
            Requirement::Finding(vec!["A:K/P".into(), "B:K/Q".into()])
        );
        assert_eq!(
            requirement_for(
                "audit/x.json",
                "falco rule \"K8s Secret Created\" fires x1",
                "",
                &rules,
                &RuleMap::default()
            ),
            Requirement::Accept
        );
        assert!(matches!(
            requirement_for(
                "audit/x.json",
                "falco rule \"Other\" fires",
                "",
                &rules,
                &RuleMap::default()
            ),
            Requirement::Unsupported(_)
        ));
        assert!(RuleMap::parse("no tab here\n").is_err());
        let switched = RuleMap::parse("Noisy\tfinding-when-enabled noisy_rule A:K/N\n").unwrap();
        let requirement = requirement_for(
            "audit/x.json",
            "falco rule \"Noisy\" fires",
            "",
            &switched,
            &RuleMap::default(),
        );
        assert_eq!(requirement.enables(), Some("noisy_rule"));
        assert!(judge(&requirement, &scan(1, 0, &[("A:K/N", 2.0)])).is_ok());
        assert!(judge(&requirement, &scan(1, 0, &[])).is_err());
        assert!(RuleMap::parse("Noisy\tfinding-when-enabled only_a_rule\n").is_err());
    }

    #[test]
    fn runtime_files_are_judged_by_the_requirement_written_for_them() {
        let runtime = RuleMap::parse(
            "runtime/a.json\tfinding Execution:Runtime/ReverseShell\nruntime/b.json\tquiet-at-medium\n",
        )
        .unwrap();
        let rules = RuleMap::default();
        assert_eq!(
            requirement_for("runtime/a.json", "anything", "", &rules, &runtime),
            Requirement::Finding(vec!["Execution:Runtime/ReverseShell".into()])
        );
        assert_eq!(
            requirement_for("runtime/b.json", "benign", "", &rules, &runtime),
            Requirement::QuietAtMedium
        );
        assert!(matches!(
            requirement_for("runtime/c.json", "x", "", &rules, &runtime),
            Requirement::Unsupported(_)
        ));
    }

    #[test]
    fn no_alert_rows_are_quiet_unless_falco_was_configured_for_the_test() {
        let rules = RuleMap::default();
        let base = "test \"x\" [rules: falco_rules.yaml+k8s_audit_rules.yaml]";
        let neutral =
            "test \"x\" [rules: falco_rules.yaml+k8s_audit_rules.yaml +disallow_kactivity.yaml]";
        let trusted =
            "test \"x\" [rules: falco_rules.yaml+k8s_audit_rules.yaml +trust_nginx_container.yaml]";
        assert_eq!(
            requirement_for(
                "audit/x",
                "NO falco alert expected",
                base,
                &rules,
                &RuleMap::default()
            ),
            Requirement::Quiet
        );
        assert_eq!(
            requirement_for(
                "audit/x",
                "NO falco alert expected",
                neutral,
                &rules,
                &RuleMap::default()
            ),
            Requirement::Quiet
        );
        assert_eq!(
            requirement_for(
                "audit/x",
                "NO falco alert expected",
                trusted,
                &rules,
                &RuleMap::default()
            ),
            Requirement::Accept
        );
        assert_eq!(
            requirement_for(
                "audit/x",
                "NO falco alert expected; stderr contains 'data not recognized as a k8s audit event'",
                base,
                &rules,
                &RuleMap::default()
            ),
            Requirement::Reject
        );
    }

    #[test]
    fn verdicts() {
        let wanted = Requirement::Finding(vec!["*:Kubernetes/SuccessfulAnonymousAccess".into()]);
        assert!(
            judge(
                &wanted,
                &scan(
                    1,
                    0,
                    &[("Impact:Kubernetes/SuccessfulAnonymousAccess", 8.0)]
                )
            )
            .is_ok()
        );
        assert!(
            judge(
                &wanted,
                &scan(1, 0, &[("Impact:Kubernetes/TorIPCaller", 8.0)])
            )
            .is_err()
        );
        assert!(
            judge(
                &wanted,
                &scan(
                    1,
                    1,
                    &[("Impact:Kubernetes/SuccessfulAnonymousAccess", 8.0)]
                )
            )
            .is_err()
        );
        assert!(judge(&Requirement::Quiet, &scan(1, 0, &[])).is_ok());
        assert!(judge(&Requirement::Quiet, &scan(1, 0, &[("X:Kubernetes/Y", 2.0)])).is_err());
        assert!(
            judge(
                &Requirement::QuietAtMedium,
                &scan(5, 0, &[("X:Kubernetes/Y", 2.0)])
            )
            .is_ok()
        );
        assert!(
            judge(
                &Requirement::QuietAtMedium,
                &scan(5, 0, &[("X:Kubernetes/Y", 5.0)])
            )
            .is_err()
        );
        assert!(judge(&Requirement::Reject, &scan(0, 1, &[])).is_ok());
        assert!(judge(&Requirement::Reject, &scan(1, 0, &[])).is_err());
        assert!(
            judge(&Requirement::Accept, &scan(0, 0, &[])).is_err(),
            "an empty scan accepted nothing"
        );
    }
}
