//! `vigil scan --format ocsf`: every finding and sequence of the example day is an OCSF 1.6.0
//! Detection Finding the schema (compiled from ../shared/reference/ocsf-schema-1.6.0) accepts, with
//! the recommended attributes Vigil can fill filled, and each part of a Vigil finding in its place.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;
use vigil_ocsf::{IssueKind, Schema};

fn ocsf_findings() -> Vec<Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["scan", "--format", "ocsf"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "vigil scan --format ocsf failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn schema() -> Schema {
    Schema::reference().unwrap_or_else(|message| panic!("{message}"))
}

#[test]
fn every_finding_of_the_example_is_a_valid_detection_finding() {
    let schema = schema();
    let findings = ocsf_findings();
    assert_eq!(findings.len(), 37, "35 findings and one sequence");
    let allowed: BTreeMap<&str, &str> = vigil_publish::format::ocsf::LEFT_OUT
        .iter()
        .copied()
        .collect();
    let mut errors = Vec::new();
    let mut unexplained = BTreeSet::new();
    for finding in &findings {
        let report = schema.validate(finding);
        let uid = finding["finding_info"]["uid"].as_str().unwrap_or("?");
        errors.extend(report.errors().map(|issue| format!("{uid}: {issue}")));
        for warning in report.warnings() {
            if warning.kind != IssueKind::MissingRecommended {
                continue;
            }
            if !allowed.contains_key(warning.attribute.as_str()) {
                unexplained.insert(format!("{} ({})", warning.attribute, warning.path));
            }
        }
    }
    assert!(errors.is_empty(), "schema errors:\n{}", errors.join("\n"));
    assert!(
        unexplained.is_empty(),
        "recommended attributes missing with no reason given:\n{}",
        unexplained.into_iter().collect::<Vec<_>>().join("\n")
    );
}

fn guardduty_findings() -> BTreeMap<String, Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["scan", "--format", "guardduty"])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .map(|finding| (finding["id"].as_str().unwrap().to_owned(), finding))
        .collect()
}

#[test]
fn each_part_of_a_finding_has_its_place() {
    let guardduty = guardduty_findings();
    let ocsf = ocsf_findings();
    assert_eq!(ocsf.len(), guardduty.len());
    for finding in &ocsf {
        let uid = finding["finding_info"]["uid"].as_str().unwrap();
        let original = &guardduty[uid];
        let service = &original["service"];
        // The GuardDuty type, twice: as the finding's type and as the product's event code.
        assert_eq!(finding["finding_info"]["types"][0], original["type"]);
        assert_eq!(finding["metadata"]["event_code"], original["type"]);
        assert_eq!(finding["finding_info"]["uid_alt"], original["arn"]);
        let band = match original["severity"].as_f64().unwrap() {
            s if s >= 9.0 => 5,
            s if s >= 7.0 => 4,
            s if s >= 4.0 => 3,
            _ => 2,
        };
        assert_eq!(finding["severity_id"], band, "{uid}");
        let archived = service["archived"].as_bool().unwrap_or(false);
        assert_eq!(finding["status_id"], if archived { 3 } else { 1 }, "{uid}");
        assert_eq!(finding["is_alert"], !archived);
        assert_eq!(finding["cloud"]["account"]["uid"], original["accountId"]);
        assert_eq!(finding["cloud"]["region"], original["region"]);
        assert_eq!(finding["resources"][0]["name"], "shop-prod");
        if original["type"] != "AttackSequence:EKS/CompromisedCluster" {
            assert_eq!(finding["count"], service["count"]);
            let activity = if service["count"].as_i64().unwrap() > 1 {
                2
            } else {
                1
            };
            assert_eq!(finding["activity_id"], activity, "{uid}");
            assert_eq!(finding["type_uid"], 200_400 + activity);
            assert!(
                !finding["finding_info"]["attacks"]
                    .as_array()
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(
                finding["finding_info"]["related_events"][0]["uid"],
                original["associatedAttackSequenceArn"],
                "{uid}"
            );
        }
    }
    let archived = ocsf
        .iter()
        .filter(|finding| finding["status_id"] == 3)
        .count();
    assert!(
        archived >= 1,
        "the example's suppression rule archives a finding"
    );
}

#[test]
fn the_sequence_lists_its_signals_and_tactics() {
    let ocsf = ocsf_findings();
    let sequence = ocsf
        .iter()
        .find(|finding| {
            finding["metadata"]["event_code"] == "AttackSequence:EKS/CompromisedCluster"
        })
        .unwrap();
    let info = &sequence["finding_info"];
    assert_eq!(info["uid"], "503811fd70a95973dce99017cff65a8f");
    assert_eq!(sequence["severity_id"], 5);
    let signals = info["related_events"].as_array().unwrap();
    assert_eq!(signals.len(), 40);
    assert_eq!(info["related_events_count"], 40);
    let findings: BTreeSet<&str> = ocsf
        .iter()
        .filter_map(|finding| finding["finding_info"]["uid"].as_str())
        .collect();
    // Every signal that is a finding is one of the output's; weak signals have no finding.
    for signal in signals {
        let weak = signal["tags"][1]["value"] == "true";
        let uid = signal["uid"].as_str().unwrap();
        assert_eq!(findings.contains(uid), !weak, "{signal}");
    }
    let tactics: BTreeSet<&str> = info["attacks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|attack| attack["tactics"].as_array().into_iter().flatten())
        .filter_map(|tactic| tactic["uid"].as_str())
        .collect();
    assert_eq!(tactics.len(), 9, "{tactics:?}");
    // Audit and runtime halves, the actors and endpoints as evidence.
    let sources: BTreeSet<&str> = signals
        .iter()
        .filter_map(|signal| signal["tags"][0]["value"].as_str())
        .collect();
    assert_eq!(sources, BTreeSet::from(["audit", "runtime"]));
    let evidences = sequence["evidences"].as_array().unwrap();
    assert!(
        evidences
            .iter()
            .any(|evidence| evidence["src_endpoint"]["ip"].is_string())
    );
    assert!(
        evidences
            .iter()
            .any(|evidence| evidence["actor"]["user"]["name"].is_string())
    );
}

#[test]
fn a_runtime_finding_carries_its_process_lineage_container_and_node() {
    let ocsf = ocsf_findings();
    let shell = ocsf
        .iter()
        .find(|finding| {
            finding["metadata"]["event_code"] == "Execution:Runtime/SuspiciousShellCreated"
        })
        .unwrap();
    let process = &shell["evidences"][0]["process"];
    assert_eq!(process["path"], "/bin/sh");
    assert_eq!(process["parent_process"]["path"], "/usr/sbin/nginx");
    assert_eq!(process["ancestry"][0]["path"], "/usr/sbin/nginx");
    assert_eq!(process["lineage"][0], "/usr/sbin/nginx");
    assert_eq!(
        process["container"]["uid"],
        "b3fa5ea314b219802a3179885f1bde76e598d25034ce7d9551838916fb84584b"
    );
    assert_eq!(shell["device"]["hostname"], "ip-10-0-1-23.ec2.internal");
    assert_eq!(
        shell["metadata"]["profiles"],
        serde_json::json!(["cloud", "container", "security_control"])
    );
    // A connection to a listed address: the destination, its observable and the list's match.
    let c2 = ocsf
        .iter()
        .find(|finding| finding["metadata"]["event_code"] == "Backdoor:Runtime/C&CActivity.B")
        .unwrap();
    assert_eq!(c2["evidences"][0]["dst_endpoint"]["ip"], "198.51.100.200");
    assert_eq!(c2["evidences"][0]["dst_endpoint"]["port"], 443);
    assert_eq!(c2["enrichments"][0]["provider"], "c2-servers");
    assert!(
        c2["observables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|observable| {
                observable["type_id"] == 2 && observable["value"] == "198.51.100.200"
            })
    );
    let lookup = ocsf
        .iter()
        .find(|finding| {
            finding["metadata"]["event_code"] == "Impact:Runtime/BitcoinDomainRequest.Reputation"
        })
        .unwrap();
    assert_eq!(
        lookup["evidences"][0]["query"]["hostname"],
        "pool.supportxmr.com"
    );
}

#[test]
fn an_api_call_finding_carries_the_call_caller_address_and_agent() {
    let ocsf = ocsf_findings();
    let tor = ocsf
        .iter()
        .find(|finding| finding["metadata"]["event_code"] == "Discovery:Kubernetes/TorIPCaller")
        .unwrap();
    let evidence = &tor["evidences"][0];
    assert!(evidence["api"]["operation"].is_string());
    assert!(evidence["actor"]["user"]["name"].is_string());
    assert!(evidence["src_endpoint"]["ip"].is_string());
    assert!(evidence["http_request"]["user_agent"].is_string());
    assert!(
        evidence["http_request"]["url"]["path"]
            .as_str()
            .unwrap()
            .starts_with('/')
    );
}
