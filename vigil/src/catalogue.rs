//! `vigil rules list --markdown`: the detector tables of docs/detectors.md, from the catalogue, so
//! the documentation and the code have one source.

use std::fmt::Write;

use vigil_detect::{DetectorInfo, Source};
use vigil_schemas::attack::{Attack, attack_of, table};

/// The finding types a catalogue entry's `finding_type` names: `A, B` lists, `X[!DNS]` and
/// `X[.Custom]` both spellings, `P:Runtime/{One,Two}...!DNS` the table's types of those stems.
pub fn kinds(finding_type: &str) -> Vec<String> {
    let mut kinds = Vec::new();
    for part in finding_type.split(", ").map(str::trim) {
        if let Some((base, optional)) = part.strip_suffix(']').and_then(|rest| rest.split_once('['))
        {
            kinds.push(base.to_owned());
            kinds.push(format!("{base}{optional}"));
        } else if let (Some((head, rest)), true) = (part.split_once('{'), part.contains("...")) {
            let (alternatives, tail) = rest.split_once('}').unwrap_or((rest, ""));
            let suffix = tail.trim_start_matches("...");
            for alternative in alternatives.split(',') {
                let stem = format!("{head}{alternative}");
                kinds.extend(
                    table()
                        .types
                        .keys()
                        .filter(|kind| kind.starts_with(&stem) && kind.ends_with(suffix))
                        .map(|kind| (*kind).to_owned()),
                );
            }
        } else {
            kinds.push(part.to_owned());
        }
    }
    kinds
}

/// The ATT&CK tactics and techniques of every type an entry names.
pub fn attack(info: &DetectorInfo) -> Attack {
    let mut all = Attack::default();
    for kind in kinds(&info.finding_type) {
        let attack = attack_of(&kind, &info.tags);
        for entry in attack.tactics {
            if !all.tactics.contains(&entry) {
                all.tactics.push(entry);
            }
        }
        for entry in attack.techniques {
            if !all.techniques.contains(&entry) {
                all.techniques.push(entry);
            }
        }
    }
    all
}

/// ATT&CK in one cell: tactic names, then technique ids.
pub fn attack_cell(info: &DetectorInfo) -> String {
    let attack = attack(info);
    let mut words: Vec<String> = attack
        .tactics
        .iter()
        .map(|entry| entry.name.clone())
        .collect();
    words.extend(attack.techniques.iter().map(|entry| entry.id.clone()));
    words.join(", ")
}

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

/// What publish's correlator raises: attack sequences and the chain rules, as catalogue entries
/// (`origin` says they run in publish; `source` is the log their first step comes from).
pub fn correlation(settings: &vigil_publish::CorrelationSettings) -> Vec<DetectorInfo> {
    let word = |severity: f64| {
        let name = match severity {
            s if s >= 9.0 => "Critical",
            s if s >= 7.0 => "High",
            s if s >= 4.0 => "Medium",
            _ => "Low",
        };
        format!("{name} ({severity})")
    };
    let mut entries = vec![DetectorInfo {
        name: "attack_sequences",
        origin: "correlation (publish)".into(),
        enabled: settings.enabled,
        finding_type: vigil_publish::SEQUENCE_TYPE.into(),
        severity: "Critical (9-10)".into(),
        source: Source::Audit,
        trigger: "Findings and weak signals of one cluster linked by a shared actor, resource or endpoint within a rolling window, spanning ATT&CK tactics in a plausible order or a runtime signal in a workload an API call created or entered (docs/correlation.md).".into(),
        key: "cluster, earliest signal".into(),
        tags: Vec::new(),
    }];
    for rule in &vigil_publish::CHAIN_RULES {
        entries.push(DetectorInfo {
            name: rule.id,
            origin: "correlation (publish)".into(),
            enabled: settings.enabled && settings.chain_rules,
            finding_type: rule.finding_type.into(),
            severity: word(rule.severity),
            source: Source::Audit,
            trigger: rule.doc.into(),
            key: "rule, the shared principal or pod".into(),
            tags: Vec::new(),
        });
    }
    entries
}

/// Three tables, audit, runtime and correlation, each detector and rule in the order the engine
/// runs them.
pub fn markdown(catalogue: &[DetectorInfo], correlation: &[DetectorInfo]) -> String {
    let mut out = String::new();
    for (entries, source, heading) in [
        (
            catalogue,
            Some(Source::Audit),
            "Audit-log detectors and rules",
        ),
        (
            catalogue,
            Some(Source::Runtime),
            "Runtime detectors and rules",
        ),
        (correlation, None, "Correlation (publish)"),
    ] {
        let _ = writeln!(out, "### {heading}\n");
        out.push_str(
            "| name | finding type | severity | on | trigger | aggregation key | ATT&CK |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|\n");
        for info in entries
            .iter()
            .filter(|info| source.is_none_or(|source| info.source == source))
        {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} | {} |",
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
                cell(&attack_cell(info)),
            );
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_detect::{DetectConfig, Engine};

    #[test]
    fn every_type_the_catalogue_raises_has_an_att_ck_row() {
        let catalogue = Engine::catalogue(&DetectConfig::default()).unwrap();
        let rows = &table().types;
        let mut checked = 0;
        for info in &catalogue {
            let kinds = kinds(&info.finding_type);
            assert!(!kinds.is_empty(), "{}: {}", info.name, info.finding_type);
            for kind in kinds {
                let (_, rest) = kind.split_once(':').unwrap();
                assert!(
                    rows.contains_key(kind.as_str())
                        || rows.contains_key(format!("<Purpose>:{rest}").as_str()),
                    "{} raises {kind}, which has no row in schemas/attack/attack.tsv",
                    info.name
                );
                checked += 1;
            }
            let attack = attack(info);
            assert!(
                !attack.tactics.is_empty() || info.finding_type.starts_with("<Purpose>"),
                "{} has no tactic",
                info.name
            );
        }
        assert!(checked > 90, "{checked}");
    }

    /// Every active audit and runtime type of GuardDuty's catalogue (its Kubernetes and Runtime
    /// Monitoring finding types, as published), raised by a detector, a rule or the correlator.
    #[test]
    fn every_active_guardduty_type_has_a_detector() {
        let mut entries = Engine::catalogue(&DetectConfig::default()).unwrap();
        entries.extend(correlation(&vigil_publish::CorrelationSettings::default()));
        let raised: Vec<String> = entries
            .iter()
            .flat_map(|info| kinds(&info.finding_type))
            .collect();
        let covered = |wanted: &str| {
            let (purpose, rest) = wanted.split_once(':').unwrap();
            raised.iter().any(|kind| {
                kind == wanted
                    // `<Purpose>:Kubernetes/SuccessfulAnonymousAccess`: the purpose is the call's.
                    || (kind == &format!("<Purpose>:{rest}") && !purpose.is_empty())
            })
        };
        let missing: Vec<&str> = [
            "CredentialAccess:Kubernetes/MaliciousIPCaller",
            "CredentialAccess:Kubernetes/MaliciousIPCaller.Custom",
            "CredentialAccess:Kubernetes/SuccessfulAnonymousAccess",
            "CredentialAccess:Kubernetes/TorIPCaller",
            "DefenseEvasion:Kubernetes/MaliciousIPCaller",
            "DefenseEvasion:Kubernetes/MaliciousIPCaller.Custom",
            "DefenseEvasion:Kubernetes/SuccessfulAnonymousAccess",
            "DefenseEvasion:Kubernetes/TorIPCaller",
            "Discovery:Kubernetes/MaliciousIPCaller",
            "Discovery:Kubernetes/MaliciousIPCaller.Custom",
            "Discovery:Kubernetes/SuccessfulAnonymousAccess",
            "Discovery:Kubernetes/TorIPCaller",
            "Impact:Kubernetes/MaliciousIPCaller",
            "Impact:Kubernetes/MaliciousIPCaller.Custom",
            "Impact:Kubernetes/SuccessfulAnonymousAccess",
            "Impact:Kubernetes/TorIPCaller",
            "Persistence:Kubernetes/MaliciousIPCaller",
            "Persistence:Kubernetes/MaliciousIPCaller.Custom",
            "Persistence:Kubernetes/SuccessfulAnonymousAccess",
            "Persistence:Kubernetes/TorIPCaller",
            "CredentialAccess:Kubernetes/AnomalousBehavior.SecretsAccessed",
            "Discovery:Kubernetes/AnomalousBehavior.PermissionChecked",
            "Execution:Kubernetes/ExecInKubeSystemPod",
            "Execution:Kubernetes/AnomalousBehavior.ExecInPod",
            "Execution:Kubernetes/AnomalousBehavior.WorkloadDeployed",
            "Persistence:Kubernetes/AnomalousBehavior.WorkloadDeployed!ContainerWithSensitiveMount",
            "Policy:Kubernetes/AdminAccessToDefaultServiceAccount",
            "Policy:Kubernetes/AnonymousAccessGranted",
            "Policy:Kubernetes/ExposedDashboard",
            "Policy:Kubernetes/KubeflowDashboardExposed",
            "PrivilegeEscalation:Kubernetes/AnomalousBehavior.RoleBindingCreated",
            "PrivilegeEscalation:Kubernetes/AnomalousBehavior.RoleCreated",
            "PrivilegeEscalation:Kubernetes/AnomalousBehavior.WorkloadDeployed!PrivilegedContainer",
            "Backdoor:Runtime/C&CActivity.B",
            "Backdoor:Runtime/C&CActivity.B!DNS",
            "CryptoCurrency:Runtime/BitcoinTool.B",
            "CryptoCurrency:Runtime/BitcoinTool.B!DNS",
            "DefenseEvasion:Runtime/FilelessExecution",
            "DefenseEvasion:Runtime/KernelModuleLoaded",
            "DefenseEvasion:Runtime/ProcessInjection.Proc",
            "DefenseEvasion:Runtime/ProcessInjection.Ptrace",
            "DefenseEvasion:Runtime/ProcessInjection.VirtualMemoryWrite",
            "DefenseEvasion:Runtime/PtraceAntiDebugging",
            "DefenseEvasion:Runtime/SuspiciousCommand",
            "DefenseEvasion:Runtime/SensitiveFileModified",
            "Discovery:Runtime/SuspiciousCommand",
            "Execution:Runtime/MaliciousFileExecuted",
            "Execution:Runtime/MaliciousFileExecuted.Custom",
            "Execution:Runtime/NewBinaryExecuted",
            "Execution:Runtime/NewLibraryLoaded",
            "Execution:Runtime/ReverseShell",
            "Execution:Runtime/SuspiciousCommand",
            "Execution:Runtime/SuspiciousShellCreated",
            "Execution:Runtime/SuspiciousTool",
            "Impact:Runtime/AbusedDomainRequest.Reputation",
            "Impact:Runtime/BitcoinDomainRequest.Reputation",
            "Impact:Runtime/CryptoMinerExecuted",
            "Impact:Runtime/MaliciousDomainRequest.Reputation",
            "Impact:Runtime/SuspiciousDomainRequest.Reputation",
            "Persistence:Runtime/SuspiciousCommand",
            "Persistence:Runtime/SensitiveFileModified",
            "PrivilegeEscalation:Runtime/CGroupsReleaseAgentModified",
            "PrivilegeEscalation:Runtime/ContainerMountsHostDirectory",
            "PrivilegeEscalation:Runtime/DockerSocketAccessed",
            "PrivilegeEscalation:Runtime/ElevationToRoot",
            "PrivilegeEscalation:Runtime/RuncContainerEscape",
            "PrivilegeEscalation:Runtime/SuspiciousCommand",
            "PrivilegeEscalation:Runtime/SensitiveFileModified",
            "PrivilegeEscalation:Runtime/UserfaultfdUsage",
            "Trojan:Runtime/BlackholeTraffic",
            "Trojan:Runtime/BlackholeTraffic!DNS",
            "Trojan:Runtime/DGADomainRequest.C!DNS",
            "Trojan:Runtime/DriveBySourceTraffic!DNS",
            "Trojan:Runtime/DropPoint",
            "Trojan:Runtime/DropPoint!DNS",
            "Trojan:Runtime/PhishingDomainRequest!DNS",
            "UnauthorizedAccess:Runtime/MetadataDNSRebind",
            "UnauthorizedAccess:Runtime/TorClient",
            "UnauthorizedAccess:Runtime/TorRelay",
            "AttackSequence:EKS/CompromisedCluster",
        ]
        .into_iter()
        .filter(|wanted| !covered(wanted))
        .collect();
        assert!(missing.is_empty(), "no detector raises {missing:?}");
    }

    #[test]
    fn catalogue_spellings_expand_to_the_types_they_stand_for() {
        assert_eq!(
            kinds(
                "Backdoor:Runtime/C&CActivity.B[!DNS], Impact:Runtime/CryptoMinerExecuted, \
                 Execution:Runtime/MaliciousFileExecuted[.Custom]"
            ),
            [
                "Backdoor:Runtime/C&CActivity.B",
                "Backdoor:Runtime/C&CActivity.B!DNS",
                "Impact:Runtime/CryptoMinerExecuted",
                "Execution:Runtime/MaliciousFileExecuted",
                "Execution:Runtime/MaliciousFileExecuted.Custom"
            ]
        );
        assert_eq!(
            kinds("Trojan:Runtime/{Phishing,DGA}...!DNS"),
            [
                "Trojan:Runtime/PhishingDomainRequest!DNS",
                "Trojan:Runtime/DGADomainRequest.C!DNS"
            ]
        );
    }
}
