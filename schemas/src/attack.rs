//! MITRE ATT&CK for every finding type: tactics and techniques (the Enterprise and Containers
//! matrices), from the data table `schemas/attack/attack.tsv`, one row per type. GuardDuty's finding
//! JSON has no field for them: Vigil shows them in `service.additionalInfo.mitreAttack`, in `vigil
//! rules list`, and (for attack sequences) as `ATTACK_TACTIC` / `ATTACK_TECHNIQUE` indicators.

use std::collections::BTreeMap;
use std::sync::OnceLock;

const TABLE: &str = include_str!("../attack/attack.tsv");

/// A tactic or a technique: its id (`TA0004`, `T1611`) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub id: String,
    pub name: String,
}

/// The tactics and techniques of one finding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attack {
    pub tactics: Vec<Entry>,
    pub techniques: Vec<Entry>,
}

impl Attack {
    pub fn is_empty(&self) -> bool {
        self.tactics.is_empty() && self.techniques.is_empty()
    }

    fn add(&mut self, id: &str, table: &Table) {
        let id = id.trim();
        if id.is_empty() {
            return;
        }
        if id.starts_with("TA") {
            if !self.tactics.iter().any(|entry| entry.id == id) {
                self.tactics.push(Entry {
                    id: id.to_owned(),
                    name: table
                        .tactics
                        .get(id)
                        .copied()
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
        } else if !self.techniques.iter().any(|entry| entry.id == id) {
            self.techniques.push(Entry {
                id: id.to_owned(),
                name: table
                    .techniques
                    .get(id)
                    .copied()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
    }
}

/// The parsed table.
#[derive(Debug, Default)]
pub struct Table {
    pub tactics: BTreeMap<&'static str, &'static str>,
    pub techniques: BTreeMap<&'static str, &'static str>,
    /// Finding type → (tactic ids, technique ids).
    pub types: BTreeMap<&'static str, (Vec<&'static str>, Vec<&'static str>)>,
    /// Lines that are none of the three kinds (the tests require none).
    pub unreadable: Vec<&'static str>,
}

fn ids(cell: Option<&'static str>) -> Vec<&'static str> {
    cell.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .collect()
}

/// The table, parsed once.
pub fn table() -> &'static Table {
    static PARSED: OnceLock<Table> = OnceLock::new();
    PARSED.get_or_init(|| {
        let mut table = Table::default();
        for line in TABLE.lines() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let mut cells = line.split('\t');
            match (cells.next(), cells.next(), cells.next()) {
                (Some("tactic"), Some(id), Some(name)) => {
                    table.tactics.insert(id, name);
                }
                (Some("technique"), Some(id), Some(name)) => {
                    table.techniques.insert(id, name);
                }
                (Some("type"), Some(finding_type), tactics) => {
                    table
                        .types
                        .insert(finding_type, (ids(tactics), ids(cells.next())));
                }
                _ => table.unreadable.push(line),
            }
        }
        table
    })
}

/// The ATT&CK tactic a GuardDuty threat purpose (a finding type's prefix) stands for.
pub fn purpose_tactic(purpose: &str) -> Option<&'static str> {
    Some(match purpose {
        "Recon" | "Reconnaissance" => "TA0043",
        "InitialAccess" | "UnauthorizedAccess" => "TA0001",
        "Execution" => "TA0002",
        "Persistence" => "TA0003",
        "PrivilegeEscalation" => "TA0004",
        "DefenseEvasion" | "Stealth" => "TA0005",
        "CredentialAccess" => "TA0006",
        "Discovery" => "TA0007",
        "LateralMovement" => "TA0008",
        "Collection" => "TA0009",
        "Exfiltration" => "TA0010",
        "Backdoor" | "Trojan" | "CommandAndControl" => "TA0011",
        "Impact" | "CryptoCurrency" => "TA0040",
        _ => return None,
    })
}

/// The tactics and techniques of a finding of `finding_type`: its row (a `<Purpose>:` row for
/// types whose purpose follows the call, with the purpose's tactic), then what the rule that raised
/// it declared in its `tags` (`TA…` tactics, `T…` techniques). A type with neither gets its
/// purpose's tactic.
/// The tactics and techniques of a detection: its type's row with the ids its rule declared
/// (`additionalInfo` `mitreAttack`, comma-separated).
pub fn attack_of_detection(detection: &crate::Detection) -> Attack {
    let declared: Vec<String> = detection
        .additional_info
        .iter()
        .filter(|pair| pair.key == "mitreAttack")
        .flat_map(|pair| pair.value.split(',').map(|tag| tag.trim().to_owned()))
        .collect();
    attack_of(&detection.finding_type, &declared)
}

pub fn attack_of(finding_type: &str, declared: &[String]) -> Attack {
    let table = table();
    let mut attack = Attack::default();
    let (purpose, rest) = finding_type.split_once(':').unwrap_or(("", finding_type));
    let row = table.types.get(finding_type).or_else(|| {
        table
            .types
            .get(format!("<Purpose>:{rest}").as_str())
            .inspect(|_| {
                if let Some(tactic) = purpose_tactic(purpose) {
                    attack.add(tactic, table);
                }
            })
    });
    if let Some((tactics, techniques)) = row {
        for id in tactics.iter().chain(techniques) {
            attack.add(id, table);
        }
    }
    for tag in declared {
        attack.add(tag, table);
    }
    if attack.tactics.is_empty()
        && let Some(tactic) = purpose_tactic(purpose)
    {
        attack.add(tactic, table);
    }
    attack
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_reads_whole_and_names_every_id_its_rows_use() {
        let table = table();
        assert!(table.unreadable.is_empty(), "{:?}", table.unreadable);
        assert_eq!(table.tactics.len(), 14);
        assert!(table.types.len() > 90);
        for (finding_type, (tactics, techniques)) in &table.types {
            for id in tactics {
                assert!(table.tactics.contains_key(id), "{finding_type}: {id}");
            }
            for id in techniques {
                assert!(table.techniques.contains_key(id), "{finding_type}: {id}");
            }
            assert!(
                !techniques.is_empty() || finding_type.starts_with("<Purpose>"),
                "{finding_type} names no technique"
            );
        }
    }

    #[test]
    fn a_type_gets_its_row_with_names() {
        let attack = attack_of("PrivilegeEscalation:Kubernetes/PrivilegedContainer", &[]);
        let tactics: Vec<_> = attack.tactics.iter().map(|e| e.id.as_str()).collect();
        let techniques: Vec<_> = attack.techniques.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(tactics, ["TA0004"]);
        assert_eq!(techniques, ["T1611", "T1610"]);
        assert_eq!(attack.techniques[0].name, "Escape to Host");
    }

    #[test]
    fn purpose_types_take_the_purpose_s_tactic() {
        let attack = attack_of("Discovery:Kubernetes/TorIPCaller", &[]);
        let tactics: Vec<_> = attack.tactics.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(tactics, ["Discovery"]);
        assert!(attack.techniques.iter().any(|e| e.id == "T1090.003"));
        let anonymous = attack_of("Impact:Kubernetes/SuccessfulAnonymousAccess", &[]);
        let tactics: Vec<_> = anonymous.tactics.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(tactics, ["TA0040", "TA0001"]);
    }

    #[test]
    fn a_custom_rule_s_tags_add_to_or_stand_in_for_a_row() {
        let declared = vec!["T1609".to_owned(), "TA0002".to_owned(), "T9999".to_owned()];
        let custom = attack_of("Execution:Kubernetes/ShopDebugShell", &declared);
        let ids: Vec<_> = custom
            .tactics
            .iter()
            .chain(&custom.techniques)
            .map(|e| (e.id.as_str(), e.name.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("TA0002", "Execution"),
                ("T1609", "Container Administration Command"),
                ("T9999", "")
            ]
        );
        let untagged = attack_of("Persistence:Kubernetes/ShopCronJob", &[]);
        assert_eq!(untagged.tactics[0].id, "TA0003");
        assert!(untagged.techniques.is_empty());
        assert!(attack_of("Policy:Kubernetes/ShopLabelMissing", &[]).is_empty());
    }
}
