//! `vigil scan` from the outside, as a user runs it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-scan-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn findings(output: &Output) -> Vec<Value> {
    assert!(
        output.status.success(),
        "vigil failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn types(findings: &[Value]) -> BTreeSet<String> {
    findings
        .iter()
        .map(|finding| finding["type"].as_str().unwrap().to_owned())
        .collect()
}

const ATTACK_TYPES: [&str; 24] = [
    // The example's own rule (examples/rules/shop.toml), loaded by the example settings.
    "CredentialAccess:Kubernetes/SecretsReadFromPublicAddress",
    // The stolen web token used from the listed address (the audit half of the runtime attack).
    "CredentialAccess:Kubernetes/MaliciousIPCaller.Custom",
    "CredentialAccess:Kubernetes/SuccessfulAnonymousAccess",
    "CredentialAccess:Kubernetes/TorIPCaller",
    "DefenseEvasion:Kubernetes/EventsDeleted",
    "DefenseEvasion:Kubernetes/SuccessfulAnonymousAccess",
    "Discovery:Kubernetes/SuccessfulAnonymousAccess",
    "Discovery:Kubernetes/TorIPCaller",
    "Execution:Kubernetes/ExecInKubeSystemPod",
    // The same exec reads CoreDNS's service-account token.
    "CredentialAccess:Kubernetes/CredentialsReadThroughExec",
    "Impact:Kubernetes/TorIPCaller",
    "Persistence:Kubernetes/ContainerWithSensitiveMount",
    "Persistence:Kubernetes/MaliciousIPCaller.Custom",
    "Persistence:Kubernetes/SuccessfulAnonymousAccess",
    "Persistence:Kubernetes/TorIPCaller",
    "Persistence:Kubernetes/WorkloadInSystemNamespace",
    "Policy:Kubernetes/AdminAccessToDefaultServiceAccount",
    "Policy:Kubernetes/AnonymousAccessGranted",
    "Policy:Kubernetes/ExposedDashboard",
    "PrivilegeEscalation:Kubernetes/ClusterAdminBinding",
    "PrivilegeEscalation:Kubernetes/HostNamespaceContainer",
    "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
    // Chain rules: bob's cluster-admin binding, then his DaemonSet seven minutes later; the web
    // pod's token read at 14:40, then used from outside at 14:46.
    "PrivilegeEscalation:Kubernetes/RBACChangeThenWorkloadChange",
    "CredentialAccess:Kubernetes/CredentialUsedFromNewNetwork",
];

/// The runtime half: the shop's web pod exploited at 14:40.
const RUNTIME_ATTACK_TYPES: [&str; 8] = [
    "Backdoor:Runtime/C&CActivity.B",
    "CredentialAccess:Runtime/SensitiveFileRead",
    "Execution:Runtime/NewBinaryExecuted",
    "Execution:Runtime/SuspiciousCommand",
    "Execution:Runtime/SuspiciousShellCreated",
    "Impact:Runtime/BitcoinDomainRequest.Reputation",
    "Impact:Runtime/CryptoMinerExecuted",
    "UnauthorizedAccess:Runtime/MaliciousIPCaller.Custom",
];

/// The one finding the ordinary traffic of the example day raises: alice's routine exec into a shop
/// pod, at Low.
const ORDINARY_TYPE: &str = "Execution:Kubernetes/ExecInPod";

const SEQUENCE_TYPE: &str = "AttackSequence:EKS/CompromisedCluster";

/// One sequence ties the audit half and the runtime half together; every attack finding names it,
/// and nothing of the ordinary traffic (before 14:00, or alice's exec) is in it.
fn the_attack_is_one_sequence(found: &[Value], sequences: &[Value]) {
    assert_eq!(
        sequences.len(),
        1,
        "one attack, one sequence: {sequences:?}"
    );
    let sequence = &sequences[0];
    assert!(sequence["severity"].as_f64().unwrap() >= 9.0);
    assert_eq!(sequence["service"]["archived"], false);
    let detail = &sequence["service"]["detection"]["sequence"];
    let signals = detail["signals"].as_array().unwrap();
    let arn = sequence["arn"].as_str().unwrap();
    let in_sequence: BTreeSet<&str> = signals
        .iter()
        .map(|signal| signal["uid"].as_str().unwrap())
        .collect();
    for finding in found {
        let member = in_sequence.contains(finding["arn"].as_str().unwrap());
        if finding["type"] == ORDINARY_TYPE {
            assert!(!member, "alice's exec is not part of the attack");
            assert!(finding.get("associatedAttackSequenceArn").is_none());
        } else {
            assert!(
                member,
                "every attack finding is a signal: {}",
                finding["type"]
            );
            assert_eq!(
                finding["associatedAttackSequenceArn"], arn,
                "{}",
                finding["type"]
            );
        }
    }
    // Both halves, stitched: the stolen credentials from Tor through to the web pod's beacon.
    let names: BTreeSet<&str> = signals
        .iter()
        .map(|signal| signal["name"].as_str().unwrap())
        .collect();
    for step in [
        "Discovery:Kubernetes/TorIPCaller",
        "Policy:Kubernetes/AnonymousAccessGranted",
        "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
        "Execution:Runtime/SuspiciousShellCreated",
        "Impact:Runtime/CryptoMinerExecuted",
        "Backdoor:Runtime/C&CActivity.B",
    ] {
        assert!(names.contains(step), "{step} missing from {names:?}");
    }
    // The attack ran from 14:00 to 14:46 UTC; the ordinary day's traffic before and after it (CI
    // rolling out the web Deployment at 15:05) stays out.
    let (attack_start, attack_end) = (1_710_252_000_000_i64, 1_710_254_761_000_i64);
    for signal in signals {
        assert!(
            signal["firstSeenAt"].as_i64().unwrap() >= attack_start
                && signal["lastSeenAt"].as_i64().unwrap() <= attack_end,
            "ordinary traffic in the sequence: {signal}"
        );
    }
    let tactics: BTreeSet<&str> = detail["sequenceIndicators"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|indicator| indicator["key"] == "ATTACK_TACTIC")
        .flat_map(|indicator| indicator["values"].as_array().unwrap())
        .map(|value| value.as_str().unwrap())
        .collect();
    for tactic in ["Credential Access", "Privilege Escalation", "Impact"] {
        assert!(tactics.contains(tactic), "{tactics:?}");
    }
    let description = detail["description"].as_str().unwrap();
    assert!(
        description.find("Tor exit node") < description.find("Cryptocurrency miner"),
        "the story is told in order: {description}"
    );
}

#[test]
fn the_bundled_example_finds_the_attack_chain_and_only_it() {
    let output = vigil(&["scan"]);
    let (found, sequences): (Vec<Value>, Vec<Value>) = findings(&output)
        .into_iter()
        .partition(|finding| finding["type"] != SEQUENCE_TYPE);
    the_attack_is_one_sequence(&found, &sequences);
    let mut expected: BTreeSet<String> = ATTACK_TYPES
        .iter()
        .chain(&RUNTIME_ATTACK_TYPES)
        .map(|kind| (*kind).to_owned())
        .collect();
    expected.insert(ORDINARY_TYPE.to_owned());
    assert_eq!(types(&found), expected);
    for finding in &found {
        if finding["type"].as_str().unwrap().contains(":Runtime/") {
            // Every runtime finding is the attack in the web Deployment, with the process shown.
            let workload = &finding["resource"]["kubernetesDetails"]["kubernetesWorkloadDetails"];
            assert_eq!(workload["name"], "web", "{finding}");
            assert_eq!(workload["namespace"], "shop", "{finding}");
            assert_eq!(finding["service"]["featureName"], "RuntimeMonitoring");
            let process = &finding["service"]["runtimeDetails"]["process"];
            assert!(process["executablePath"].is_string(), "{finding}");
            // Tetragon's events carry their parents; the DNS agent's name only the process, whose
            // lineage is known only when its exec arrived first (the files are read in name order).
            let agent = finding["service"]["additionalInfo"]["value"]
                .as_str()
                .unwrap();
            if agent.contains("\"agentId\":\"tetragon\"") {
                assert!(
                    process["lineage"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|ancestor| ancestor["name"] == "nginx"),
                    "the lineage reaches nginx: {finding}"
                );
            }
            continue;
        }
        let user = finding["resource"]["kubernetesDetails"]["kubernetesUserDetails"]["username"]
            .as_str()
            .unwrap();
        if finding["type"] == ORDINARY_TYPE {
            assert_eq!(user, "alice", "{finding}");
            assert!(finding["severity"].as_f64().unwrap() < 4.0, "{finding}");
            // The example settings suppress it: published, archived.
            assert_eq!(finding["service"]["archived"], true, "{finding}");
        } else {
            assert_eq!(finding["service"]["archived"], false, "{finding}");
            assert!(
                ["bob", "system:anonymous", "system:serviceaccount:shop:web"].contains(&user),
                "a finding on ordinary traffic: {finding}"
            );
        }
    }
    // The DaemonSet's create and the exec came from the same listed address: one finding, counted twice.
    let listed = found
        .iter()
        .find(|f| f["type"] == "Persistence:Kubernetes/MaliciousIPCaller.Custom")
        .unwrap();
    assert_eq!(listed["service"]["count"], 2);
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(summary.contains("12810 events"), "{summary}");
    assert!(summary.contains("rejected: 0"), "{summary}");
    assert!(
        summary.contains("and 1 archived by suppression rules"),
        "{summary}"
    );
}

#[test]
fn the_example_files_on_disk_give_what_the_embedded_copy_gives_every_time() {
    let embedded = vigil(&["scan"]);
    let from_files = vigil(&[
        "scan",
        "--config",
        "examples/vigil.toml",
        "examples/audit",
        "examples/runtime",
    ]);
    let again = vigil(&["scan"]);
    let summarize = |output: &Output| -> Vec<(String, String, i64)> {
        findings(output)
            .iter()
            .map(|f| {
                (
                    f["id"].as_str().unwrap().to_owned(),
                    f["type"].as_str().unwrap().to_owned(),
                    f["service"]["count"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(summarize(&embedded), summarize(&from_files));
    assert_eq!(findings(&embedded), findings(&from_files));
    assert_eq!(embedded.stdout, again.stdout, "a scan is deterministic");
}

#[test]
fn ordinary_runtime_traffic_alone_yields_no_finding() {
    use std::io::Read;
    let mut tetragon = String::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(repo().join("examples/runtime/tetragon.jsonl.gz")).unwrap(),
    )
    .read_to_string(&mut tetragon)
    .unwrap();
    let dns = std::fs::read_to_string(repo().join("examples/runtime/dns.jsonl")).unwrap();
    // The attack is the minute from 14:40 (examples/runtime_events.py); everything else is ordinary.
    let ordinary: String = tetragon
        .lines()
        .chain(dns.lines())
        .filter(|line| !line.contains("\"time\":\"2024-03-12T14:40:"))
        .map(|line| format!("{line}\n"))
        .collect();
    let events = ordinary.lines().count();
    assert!(events > 9000, "{events}");
    let dir = scratch("ordinary-runtime");
    let path = dir.join("ordinary.jsonl");
    std::fs::write(&path, &ordinary).unwrap();
    let output = vigil(&[
        "scan",
        "--config",
        "examples/vigil.toml",
        path.to_str().unwrap(),
    ]);
    let found = findings(&output);
    // The README's runtime noise figure: none on this day.
    assert!(
        found.is_empty(),
        "findings on ordinary runtime traffic: {found:#?}"
    );
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(summary.contains(&format!("{events} events")), "{summary}");
    assert!(summary.contains("rejected: 0"), "{summary}");
}

#[test]
fn ordinary_traffic_alone_yields_nothing_at_medium_or_above() {
    let example =
        std::fs::read_to_string(repo().join("examples/audit/day-of-traffic.jsonl")).unwrap();
    let ordinary: String = example
        .lines()
        // The attack: bob, the anonymous caller from the listed address, and the miner's pods.
        .filter(|line| {
            !["\"bob\"", "203.0.113.66", "node-metrics-agent"]
                .iter()
                .any(|mark| line.contains(mark))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let dir = scratch("ordinary");
    let path = dir.join("ordinary.jsonl");
    std::fs::write(&path, &ordinary).unwrap();
    let output = vigil(&[
        "scan",
        "--threat-list",
        "examples/intel/threat-list.txt",
        "--tor-exits",
        "examples/intel/tor-exit-addresses.txt",
        path.to_str().unwrap(),
    ]);
    let found = findings(&output);
    let loud: Vec<&str> = found
        .iter()
        .filter(|finding| finding["severity"].as_f64().unwrap() >= 4.0)
        .map(|finding| finding["title"].as_str().unwrap())
        .collect();
    assert!(
        loud.is_empty(),
        "Medium+ findings on ordinary traffic: {loud:?}"
    );
    // The README's noise figure: one Low finding (alice's exec) on this day.
    assert_eq!(
        types(&found),
        BTreeSet::from([ORDINARY_TYPE.to_owned()]),
        "{found:?}"
    );
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(
        summary.contains("rejected: 0") && summary.contains("34"),
        "{summary}"
    );
}

#[test]
fn garbage_empty_and_truncated_gzip_files_are_reported_not_fatal() {
    let dir = scratch("bad");
    std::fs::write(dir.join("a-empty.json"), b"").unwrap();
    std::fs::write(
        dir.join("b-garbage.bin"),
        [0u8, 1, 2, 255, 254, b'\n', b'x'],
    )
    .unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(&std::fs::read(repo().join("examples/audit/day-of-traffic.jsonl")).unwrap())
        .unwrap();
    let gz = encoder.finish().unwrap();
    std::fs::write(dir.join("c-truncated.jsonl.gz"), &gz[..gz.len() / 2]).unwrap();
    let output = vigil(&["scan", dir.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(summary.contains("bad_compression: 1"), "{summary}");
    assert!(summary.contains("b-garbage.bin"), "{summary}");
    assert!(summary.contains("c-truncated.jsonl.gz"), "{summary}");
    // What came before the cut is still scanned.
    assert!(!summary.contains(" 0 events"), "{summary}");
}

#[test]
fn stdin_and_output_file() {
    let dir = scratch("stdin");
    let out_path = dir.join("findings.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["scan", "--output", out_path.to_str().unwrap(), "-"])
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let event = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"s1","stage":"ResponseComplete","verb":"list","requestURI":"/api/v1/namespaces/kube-system/secrets","user":{"username":"system:anonymous","groups":["system:unauthenticated"]},"sourceIPs":["192.0.2.9"],"objectRef":{"resource":"secrets","namespace":"kube-system"},"responseStatus":{"code":200},"stageTimestamp":"2024-01-01T00:00:00Z"}"#;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(event.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert!(
        output.stdout.is_empty(),
        "findings went to the file, not stdout"
    );
    let written = std::fs::read_to_string(&out_path).unwrap();
    let finding: Value = serde_json::from_str(written.lines().next().unwrap()).unwrap();
    assert_eq!(
        finding["type"],
        "CredentialAccess:Kubernetes/SuccessfulAnonymousAccess"
    );
    assert_eq!(finding["resource"]["eksClusterDetails"]["name"], "default");
}

#[test]
fn a_missing_file_or_bad_settings_are_a_clear_error() {
    let output = vigil(&["scan", "no/such/file.json"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no/such/file.json"));
    let dir = scratch("config");
    let config = dir.join("clusters.toml");
    std::fs::write(&config, "[[clusters]]\nnmae = \"x\"\n").unwrap();
    let output = vigil(&[
        "scan",
        "--cluster-config",
        config.to_str().unwrap(),
        "examples/audit",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("clusters.toml") && stderr.contains("nmae"),
        "{stderr}"
    );
}

#[test]
fn a_settings_file_with_a_mistake_names_its_line() {
    let dir = scratch("settings-line");
    let settings = dir.join("vigil.toml");
    std::fs::write(
        &settings,
        "[threat_intel]\nreload_secs = 5\n\n[rules]\nenable = [\"no_such_rule\"]\n",
    )
    .unwrap();
    let output = vigil(&[
        "scan",
        "--config",
        settings.to_str().unwrap(),
        "examples/audit",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no_such_rule"), "{stderr}");
    std::fs::write(&settings, "[rules]\nenable = []\nfiles = 3\n").unwrap();
    let output = vigil(&[
        "scan",
        "--config",
        settings.to_str().unwrap(),
        "examples/audit",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("vigil.toml:3"), "{stderr}");
}

#[test]
fn suppression_archives_without_dropping_and_switches_turn_rules_on_and_off() {
    let dir = scratch("suppress");
    let settings = dir.join("vigil.toml");
    let example = std::fs::read_to_string(repo().join("examples/vigil.toml")).unwrap();
    // The example's settings, its lists found from the scratch copy, plus a rule that archives every
    // Tor finding of bob's.
    let text = example
        .replace("intel/", &format!("{}/examples/intel/", repo().display()))
        .replace("rules/", &format!("{}/examples/rules/", repo().display()))
        + "\n[[suppression]]\nname = \"tor\"\n[suppression.criterion]\n\"type\" = { matches = [\"*:Kubernetes/TorIPCaller\"] }\n\"resource.kubernetesDetails.kubernetesUserDetails.username\" = { eq = [\"bob\"] }\n";
    std::fs::write(&settings, text).unwrap();
    let stats = dir.join("stats.json");
    let output = vigil(&[
        "scan",
        "--config",
        settings.to_str().unwrap(),
        "--disable-rule",
        "events_deleted",
        "--stats",
        stats.to_str().unwrap(),
        "examples/audit",
    ]);
    let found = findings(&output);
    let tor: Vec<&Value> = found
        .iter()
        .filter(|f| f["type"].as_str().unwrap().ends_with("/TorIPCaller"))
        .collect();
    assert_eq!(tor.len(), 4, "still published");
    assert!(tor.iter().all(|f| f["service"]["archived"] == true));
    assert!(
        found
            .iter()
            .filter(|f| !f["type"].as_str().unwrap().ends_with("/TorIPCaller"))
            .filter(|f| f["type"] != ORDINARY_TYPE)
            .all(|f| f["service"]["archived"] == false)
    );
    assert!(!types(&found).contains("DefenseEvasion:Kubernetes/EventsDeleted"));
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(stats["archived"], 5, "{stats}");
}

#[test]
fn rules_check_and_test_report_on_a_users_rule_file() {
    let dir = scratch("rules");
    let rules = dir.join("ours.toml");
    std::fs::write(
        &rules,
        r#"
[[rule]]
id = "secrets_listed_in_kube_system"
type = "CredentialAccess:Kubernetes/KubeSystemSecretsListed"
severity = "Medium"
title = "{user.username} listed secrets in kube-system."
description = "{user.username} listed the secrets of kube-system from {source_ips}."
when = [
  { field = "object_ref.resource", eq = "secrets" },
  { field = "verb", eq = "list" },
  { field = "object_ref.namespace", eq = "kube-system" },
  { field = "succeeded", eq = true },
]

[[rule]]
id = "never"
type = "Impact:Kubernetes/Never"
severity = "Low"
title = "t"
description = "d"
when = [{ field = "object_ref.resource", eq = "no-such-resource" }]
"#,
    )
    .unwrap();
    let check = vigil(&["rules", "check", rules.to_str().unwrap()]);
    assert!(check.status.success());
    assert!(String::from_utf8_lossy(&check.stdout).contains("2 rule(s), ok"));

    let test = |extra: &[&str]| {
        let mut args = vec!["rules", "test", "--rules", rules.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push("examples/audit");
        vigil(&args)
    };
    let passing = test(&[
        "--expect-fire",
        "secrets_listed_in_kube_system",
        "--expect-quiet",
        "never",
    ]);
    let stdout = String::from_utf8_lossy(&passing.stdout);
    assert!(passing.status.success(), "{stdout}");
    assert!(
        stdout.contains("secrets_listed_in_kube_system -> CredentialAccess:Kubernetes/KubeSystemSecretsListed: system:anonymous listed secrets in kube-system."),
        "{stdout}"
    );
    let failing = test(&["--expect-fire", "never"]);
    assert_eq!(failing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failing.stdout).contains("expected to fire: FAILED"));

    let broken = dir.join("broken.toml");
    std::fs::write(&broken, "[[rule]]\nid = \"x\"\ntype = \"Bad\"\n").unwrap();
    let check = vigil(&["rules", "check", broken.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(stdout.contains("broken.toml:"), "{stdout}");

    let list = vigil(&["rules", "list", "--rules", rules.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&list.stdout);
    assert!(stdout.contains("secrets_listed_in_kube_system"), "{stdout}");
    let line = stdout
        .lines()
        .find(|line| line.starts_with("load_balancer_service_created "))
        .unwrap();
    assert!(line.contains(" off "), "{line}");
}

/// `vigil rules test --config` enriches the events with the settings' clusters and lists as the
/// services do: a rule on Tor callers fires with the example's Tor list and not without it.
#[test]
fn rules_test_enriches_with_the_settings_clusters_and_lists() {
    let dir = scratch("rules-config");
    let rules = dir.join("tor.toml");
    std::fs::write(
        &rules,
        r#"
[[rule]]
id = "tor_caller_in_shop_prod"
type = "UnauthorizedAccess:Kubernetes/TorCallerInShopProd"
severity = "High"
title = "{user.username} called from Tor."
description = "{user.username} called {cluster.name} from {source_ip.ip}."
when = [
  { field = "source_ip.tor_exit", eq = true },
  { field = "cluster.name", eq = "shop-prod" },
]
"#,
    )
    .unwrap();
    let test = |config: &[&str]| {
        let mut args = vec!["rules", "test", "--rules", rules.to_str().unwrap()];
        args.extend_from_slice(config);
        args.extend_from_slice(&["--expect-fire", "tor_caller_in_shop_prod", "examples/audit"]);
        vigil(&args)
    };
    let with_settings = test(&["--config", "examples/vigil.toml"]);
    let stdout = String::from_utf8_lossy(&with_settings.stdout);
    assert!(with_settings.status.success(), "{stdout}");
    assert!(stdout.contains("called from Tor"), "{stdout}");
    // The example settings' own rule (shop.toml) is not under test: it is not run.
    assert!(
        !stdout.contains("secrets_read_from_public_address"),
        "{stdout}"
    );
    let without = test(&[]);
    assert_eq!(
        without.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&without.stdout)
    );
}

/// `vigil rules test --config` publishes through the settings' suppression rules: a hit whose
/// finding a suppression rule archives says so; without the settings it does not.
#[test]
fn rules_test_shows_which_hits_the_settings_suppression_archives() {
    let dir = scratch("rules-suppression");
    let rules = dir.join("secrets.toml");
    std::fs::write(
        &rules,
        r#"
[[rule]]
id = "secret_read_by_test"
type = "CredentialAccess:Kubernetes/SecretReadByTest"
severity = "Low"
title = "{user.username} read a secret."
description = "{user.username} read {object_ref.name}."
when = [
  { field = "verb", eq = "get" },
  { field = "object_ref.resource", eq = "secrets" },
]
"#,
    )
    .unwrap();
    let config = dir.join("vigil.toml");
    std::fs::write(
        &config,
        "[[suppression]]\nname = \"reads-are-fine\"\n[suppression.criterion]\n\"type\" = { eq = [\"CredentialAccess:Kubernetes/SecretReadByTest\"] }\n",
    )
    .unwrap();
    let test = |extra: &[&str]| {
        let mut args = vec!["rules", "test", "--rules", rules.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push("examples/audit");
        let output = vigil(&args);
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let suppressed = test(&["--config", config.to_str().unwrap()]);
    let hits: Vec<&str> = suppressed
        .lines()
        .filter(|line| line.contains("secret_read_by_test ->"))
        .collect();
    assert!(!hits.is_empty(), "{suppressed}");
    assert!(
        hits.iter()
            .all(|line| line.ends_with("(archived by a suppression rule)")),
        "{suppressed}"
    );
    let plain = test(&[]);
    assert!(plain.contains("secret_read_by_test ->"), "{plain}");
    assert!(!plain.contains("archived"), "{plain}");
}

#[test]
fn the_baseline_evaluation_finds_every_injected_anomaly_without_false_findings() {
    let output = vigil(&[
        "eval-baselines",
        "--seed",
        "7",
        "--principals",
        "100",
        "--days",
        "21",
        "--learn-days",
        "10",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = String::from_utf8_lossy(&output.stdout);
    let rows: Vec<&str> = report
        .lines()
        .filter(|line| line.starts_with("| ") && line.contains('`'))
        .collect();
    assert_eq!(
        rows.len(),
        18,
        "every kind of anomaly is injected: {report}"
    );
    for row in rows {
        let found = row.rsplit('|').nth(1).unwrap().trim();
        let (detected, injected) = found.split_once(" of ").unwrap();
        assert_eq!(detected, injected, "{row}");
    }
    let false_line = report
        .lines()
        .find(|line| line.starts_with("false findings"))
        .unwrap();
    let per_day: f64 = false_line
        .rsplit(" = ")
        .next()
        .unwrap()
        .trim_end_matches(" a day")
        .parse()
        .unwrap();
    assert!(per_day < 1.0, "{false_line}");
}

/// One audit event as the API server writes it, by alice from the office, at `micros`.
fn audit_line(
    micros: i64,
    verb: &str,
    resource: &str,
    namespace: &str,
    ip: &str,
    agent: &str,
) -> String {
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    let seconds = micros / 1_000_000;
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let stamp = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000000Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    let sub = if subresource.is_empty() {
        String::new()
    } else {
        format!(",\"subresource\":\"{subresource}\"")
    };
    let code = if subresource == "exec" { 101 } else { 200 };
    let stage = if subresource == "exec" {
        "ResponseStarted"
    } else {
        "ResponseComplete"
    };
    format!(
        "{{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"level\":\"Metadata\",\"auditID\":\"{micros}-{verb}-{resource}-{namespace}\",\"stage\":\"{stage}\",\"requestURI\":\"/api/v1/namespaces/{namespace}/{resource}\",\"verb\":\"{verb}\",\"user\":{{\"username\":\"alice\",\"groups\":[\"system:authenticated\"]}},\"sourceIPs\":[\"{ip}\"],\"userAgent\":\"{agent}\",\"objectRef\":{{\"resource\":\"{resource}\",\"namespace\":\"{namespace}\",\"name\":\"web-6f7d9c8b5-x7k2p\",\"apiVersion\":\"v1\"{sub}}},\"responseStatus\":{{\"code\":{code}}},\"requestReceivedTimestamp\":\"{stamp}\",\"stageTimestamp\":\"{stamp}\"}}\n"
    )
}

#[test]
fn a_state_file_carries_what_last_month_taught_into_todays_scan() {
    const DAY: i64 = 86_400_000_000;
    const HOUR: i64 = 3_600_000_000;
    let monday = 1_709_510_400_000_000; // 2024-03-04
    let kubectl = "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819";
    let mut month = String::new();
    for day in 0..14 {
        for hour in 9..17 {
            let at = monday + day * DAY + hour * HOUR;
            let namespace = if hour % 2 == 0 { "shop" } else { "payments" };
            month += &audit_line(at, "list", "pods", namespace, "10.20.4.17", kubectl);
            month += &audit_line(
                at + 60_000_000,
                "get",
                "deployments",
                namespace,
                "10.20.4.17",
                kubectl,
            );
        }
        month += &audit_line(
            monday + day * DAY + 11 * HOUR,
            "create",
            "pods/exec",
            "shop",
            "10.20.4.17",
            kubectl,
        );
    }
    let today_at = monday + 14 * DAY + 10 * HOUR;
    let today = audit_line(
        today_at,
        "create",
        "pods/exec",
        "shop",
        "10.20.4.17",
        kubectl,
    ) + &audit_line(
        today_at + HOUR,
        "create",
        "pods/exec",
        "kube-system",
        "203.0.113.66",
        "python-requests/2.31.0",
    );
    let dir = scratch("state");
    let (month_path, today_path, state_path) = (
        dir.join("month.jsonl"),
        dir.join("today.jsonl"),
        dir.join("state.json"),
    );
    std::fs::write(&month_path, month).unwrap();
    std::fs::write(&today_path, today).unwrap();
    let _ = std::fs::remove_file(&state_path);
    let anomalies = |output: &Output| -> Vec<(String, String)> {
        findings(output)
            .iter()
            .filter(|f| f["type"].as_str().unwrap().contains("AnomalousBehavior"))
            .map(|f| {
                (
                    f["id"].as_str().unwrap().to_owned(),
                    f["type"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let (month_arg, today_arg, state_arg) = (
        month_path.to_str().unwrap(),
        today_path.to_str().unwrap(),
        state_path.to_str().unwrap(),
    );
    // Both at once: the month teaches, today's odd exec stands out.
    let together = anomalies(&vigil(&["scan", month_arg, today_arg]));
    assert_eq!(together.len(), 1, "{together:?}");
    assert_eq!(
        together[0].1,
        "Execution:Kubernetes/AnomalousBehavior.ExecInPod"
    );
    // Today alone knows nothing of alice.
    assert!(anomalies(&vigil(&["scan", today_arg])).is_empty());
    // Learn from the month into a state file, then scan today with it: the same finding.
    assert!(anomalies(&vigil(&["scan", "--state", state_arg, month_arg])).is_empty());
    let state = std::fs::read_to_string(&state_path).unwrap();
    assert!(state.contains("principal_baselines/"), "{state}");
    let with_state = vigil(&["scan", "--state", state_arg, today_arg]);
    assert!(String::from_utf8_lossy(&with_state.stderr).contains("restored"));
    assert_eq!(anomalies(&with_state), together);
    // A state file from elsewhere is refused with a clear error.
    std::fs::write(&state_path, "{\"version\": 9}").unwrap();
    let refused = vigil(&["scan", "--state", state_arg, today_arg]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("another version"));
}

/// docs/detectors.md's tables are `vigil rules list --markdown`: one source for the code and the
/// manual. `VIGIL_WRITE_DOCS=1` rewrites the section instead of failing.
#[test]
fn the_detector_tables_in_the_manual_are_what_rules_list_prints() {
    const BEGIN: &str = "<!-- BEGIN vigil rules list --markdown -->\n";
    const END: &str = "<!-- END vigil rules list --markdown -->";
    let output = vigil(&["rules", "list", "--markdown"]);
    assert!(output.status.success(), "{output:?}");
    let generated = String::from_utf8(output.stdout).unwrap();
    let path = repo().join("docs/detectors.md");
    let manual = std::fs::read_to_string(&path).unwrap();
    let start = manual.find(BEGIN).expect("the BEGIN marker") + BEGIN.len();
    let end = manual.find(END).expect("the END marker");
    let documented = &manual[start..end];
    let wanted = format!("{}\n", generated.trim_end());
    if documented != wanted && std::env::var_os("VIGIL_WRITE_DOCS").is_some() {
        std::fs::write(
            &path,
            format!("{}{wanted}{}", &manual[..start], &manual[end..]),
        )
        .unwrap();
        return;
    }
    assert!(
        documented == wanted,
        "docs/detectors.md differs from `vigil rules list --markdown`; rewrite it with VIGIL_WRITE_DOCS=1 cargo test -p vigil --test vigil"
    );
}

#[test]
fn outputs_are_checked_before_the_scan_and_never_overwrite_an_input() {
    let dir = scratch("outputs");
    let input = dir.join("audit.jsonl");
    std::fs::copy(repo().join("examples/audit/day-of-traffic.jsonl"), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    // -o onto the input: refused, the input intact.
    let output = vigil(&[
        "scan",
        input.to_str().unwrap(),
        "-o",
        input.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("one of the inputs"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(std::fs::read(&input).unwrap(), before);
    // A --stats path that cannot be written fails first: no findings were printed.
    let missing = dir.join("no-such-dir/stats.json");
    let output = vigil(&[
        "scan",
        input.to_str().unwrap(),
        "--stats",
        missing.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(
        output.stdout.is_empty(),
        "the scan ran before the bad path was found"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("no-such-dir"));
    // Written whole: the state file in place, no temporary file left beside it.
    let state = dir.join("state.json");
    let output = vigil(&[
        "scan",
        input.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ]);
    assert!(output.status.success());
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(
        std::fs::read_to_string(&state)
            .unwrap()
            .contains("\"version\"")
    );
}

#[test]
fn rejections_are_counted_and_only_a_few_kept_as_examples() {
    let dir = scratch("garbage");
    let input = dir.join("garbage.txt");
    let garbage: String = (0..50_000)
        .map(|line| format!("not json {line}\n"))
        .collect();
    std::fs::write(&input, garbage).unwrap();
    let stats = dir.join("stats.json");
    let output = vigil(&[
        "scan",
        input.to_str().unwrap(),
        "--stats",
        stats.to_str().unwrap(),
    ]);
    assert!(output.status.success());
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(stats["rejected"]["invalid_json"], 50_000);
    let examples = stats["rejections"].as_array().unwrap();
    assert_eq!(examples.len(), 5, "{examples:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("... and 49995 more"));
}

#[test]
fn the_event_size_limit_is_a_flag() {
    let dir = scratch("max-event-bytes");
    let input = dir.join("audit.jsonl");
    let line = std::fs::read_to_string(repo().join("examples/audit/day-of-traffic.jsonl"))
        .unwrap()
        .lines()
        .find(|line| line.len() > 600)
        .unwrap()
        .to_owned();
    std::fs::write(&input, format!("{line}\n")).unwrap();
    let stats = dir.join("stats.json");
    let read = |limit: &str| -> Value {
        let output = vigil(&[
            "scan",
            input.to_str().unwrap(),
            "--max-event-bytes",
            limit,
            "--stats",
            stats.to_str().unwrap(),
        ]);
        assert!(output.status.success());
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap()
    };
    assert_eq!(read("500")["rejected"]["too_large"], 1);
    assert_eq!(read("1000000")["events"], 1);
}

/// An anonymous `list secrets` answered with 5 MiB of Secrets: over the 4 MiB limit, read without
/// its response object (counted), so the call it records raises its findings. An event that is
/// large elsewhere (its user agent) is still refused.
#[test]
fn an_event_over_the_limit_is_read_without_its_objects_so_its_call_is_seen() {
    let dir = scratch("oversized-objects");
    let input = dir.join("audit.jsonl");
    let secret = serde_json::json!({"metadata": {"name": "s"}, "data": {"k": "x".repeat(1024)}});
    let secrets: Vec<_> = (0..5 * 1024).map(|_| secret.clone()).collect();
    let event = |id: &str, agent: &str, response: Value| {
        serde_json::json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse", "auditID": id,
            "stage": "ResponseComplete", "requestURI": "/api/v1/namespaces/kube-system/secrets", "verb": "list",
            "user": {"username": "system:anonymous", "groups": ["system:unauthenticated"]},
            "sourceIPs": ["203.0.113.77"], "userAgent": agent,
            "objectRef": {"resource": "secrets", "namespace": "kube-system", "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": 200},
            "responseObject": response,
            "stageTimestamp": "2024-03-12T09:00:00.000000Z",
        })
        .to_string()
    };
    let large_response = event(
        "big-1",
        "curl/8.5.0",
        serde_json::json!({"kind": "SecretList", "items": secrets}),
    );
    let large_agent = event("big-2", &"a".repeat(5 * 1024 * 1024), Value::Null);
    assert!(large_response.len() > 5 * 1024 * 1024);
    std::fs::write(&input, format!("{large_response}\n{large_agent}\n")).unwrap();
    let stats = dir.join("stats.json");
    let output = vigil(&[
        "scan",
        input.to_str().unwrap(),
        "--stats",
        stats.to_str().unwrap(),
    ]);
    assert!(output.status.success());
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(stats["events"], 1, "{stats}");
    assert_eq!(stats["tolerated"]["oversized_object_dropped"], 1, "{stats}");
    assert_eq!(stats["rejected"]["too_large"], 1, "{stats}");
    let findings = String::from_utf8(output.stdout).unwrap();
    assert!(
        findings.contains("CredentialAccess:Kubernetes/SuccessfulAnonymousAccess"),
        "{findings}"
    );
}

#[test]
fn a_spoofed_first_source_ip_hides_no_caller() {
    // X-Forwarded-For is the client's to write: a private first entry before a Tor exit (the peer
    // the API server saw), or a Tor exit behind a private load balancer, is a Tor caller.
    let dir = scratch("spoofed-xff");
    let event = |id: &str, ips: &[&str]| {
        serde_json::json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": id,
            "stage": "ResponseComplete", "requestURI": "/api/v1/namespaces/shop/secrets", "verb": "list",
            "user": {"username": format!("user-{id}"), "groups": ["system:authenticated"]},
            "sourceIPs": ips, "userAgent": "kubectl/v1.29.1",
            "objectRef": {"resource": "secrets", "namespace": "shop", "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": 200},
            "requestReceivedTimestamp": "2024-03-12T09:00:00.000000Z",
            "stageTimestamp": "2024-03-12T09:00:00.010000Z",
        })
        .to_string()
    };
    let input = dir.join("audit.jsonl");
    std::fs::write(
        &input,
        [
            event("spoofed", &["10.0.0.7", "185.220.101.4"]),
            event("behind-lb", &["185.220.101.4", "10.0.0.8"]),
            event("internal", &["10.0.0.9"]),
        ]
        .join("\n"),
    )
    .unwrap();
    let found = findings(&vigil(&[
        "scan",
        "--config",
        "examples/vigil.toml",
        input.to_str().unwrap(),
    ]));
    let tor_callers: BTreeSet<String> = found
        .iter()
        .filter(|finding| finding["type"] == "CredentialAccess:Kubernetes/TorIPCaller")
        .map(|finding| {
            let call = &finding["service"]["action"]["kubernetesApiCallAction"];
            assert_eq!(call["remoteIpDetails"]["ipAddressV4"], "185.220.101.4");
            finding["resource"]["kubernetesDetails"]["kubernetesUserDetails"]["username"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        tor_callers,
        BTreeSet::from(["user-spoofed".to_owned(), "user-behind-lb".to_owned()])
    );
    // Every address is in the finding.
    let spoofed = found
        .iter()
        .find(|finding| {
            finding["resource"]["kubernetesDetails"]["kubernetesUserDetails"]["username"]
                == "user-spoofed"
        })
        .unwrap();
    assert_eq!(
        spoofed["service"]["action"]["kubernetesApiCallAction"]["sourceIPs"],
        serde_json::json!(["10.0.0.7", "185.220.101.4"])
    );
}

#[test]
fn secrets_in_commands_and_uris_do_not_reach_findings() {
    let dir = scratch("redaction");
    let jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a3ViZS1zeXN0ZW06ZGVmYXVsdCJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
    let uri = format!(
        "/api/v1/namespaces/kube-system/pods/coredns-1/exec?command=curl&command=-H&command=Authorization%3A+Bearer+{jwt}&command=https%3A%2F%2Fkubernetes&command=--password%3Dhunter22&container=coredns&stdout=true"
    );
    let event = serde_json::json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": "redact-1",
        "stage": "ResponseStarted", "requestURI": uri, "verb": "create",
        "user": {"username": "bob", "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.5"], "userAgent": "kubectl/v1.29.1",
        "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "kube-system", "name": "coredns-1", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 101},
        "requestReceivedTimestamp": "2024-03-12T09:00:00.000000Z", "stageTimestamp": "2024-03-12T09:00:00.010000Z",
    });
    let input = dir.join("audit.jsonl");
    std::fs::write(&input, event.to_string()).unwrap();
    for format in ["guardduty", "ocsf"] {
        let output = vigil(&["scan", "--format", format, input.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success());
        assert!(text.contains("ExecInKubeSystemPod"), "{text}");
        assert!(!text.contains(jwt), "{format}: the token is in a finding");
        assert!(
            !text.contains("hunter22"),
            "{format}: the password is in a finding"
        );
        assert!(text.contains("[REDACTED:jwt:"), "{text}");
    }
    let found = findings(&vigil(&["scan", input.to_str().unwrap()]));
    let additional: Value = serde_json::from_str(
        found[0]["service"]["additionalInfo"]["value"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    // The finding says what it redacted.
    let redacted = additional["redacted"].as_str().unwrap();
    assert!(
        redacted.contains("jwt") && redacted.contains("credential"),
        "{redacted}"
    );
}

#[test]
fn the_finding_store_is_bounded_and_what_leaves_it_is_written_not_lost() {
    // 300 anonymous reads from 300 (spoofable) addresses: 300 distinct findings, with room for 50.
    let dir = scratch("bounded-findings");
    let input = dir.join("audit.jsonl");
    let lines: Vec<String> = (0..300)
        .map(|index| {
            serde_json::json!({
                "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
                "auditID": format!("anon-{index}"), "stage": "ResponseComplete",
                "requestURI": "/api/v1/namespaces/shop/configmaps", "verb": "list",
                "user": {"username": "system:anonymous", "groups": ["system:unauthenticated"]},
                "sourceIPs": [format!("198.51.{}.{}", 100 + index / 250, index % 250 + 1)],
                "objectRef": {"resource": "configmaps", "namespace": "shop", "apiVersion": "v1"},
                "responseStatus": {"metadata": {}, "code": 200},
                "requestReceivedTimestamp": format!("2024-03-12T09:{:02}:{:02}.000000Z", index / 60, index % 60),
                "stageTimestamp": format!("2024-03-12T09:{:02}:{:02}.010000Z", index / 60, index % 60),
            })
            .to_string()
        })
        .collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let stats = dir.join("stats.json");
    let scan = |cap: &str| {
        let output = vigil(&[
            "scan",
            input.to_str().unwrap(),
            "--max-findings",
            cap,
            "--stats",
            stats.to_str().unwrap(),
        ]);
        let found = findings(&output);
        let stats: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
        (found, stats)
    };
    let (bounded, bounded_stats) = scan("50");
    let (unbounded, _) = scan("100000");
    let ids = |found: &[Value]| -> BTreeSet<String> {
        found
            .iter()
            .map(|finding| finding["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // Every finding is written, whether it left the store early or not.
    assert!(unbounded.len() >= 300, "{}", unbounded.len());
    assert_eq!(ids(&bounded), ids(&unbounded));
    assert_eq!(bounded.len(), unbounded.len());
    assert!(
        bounded_stats["evicted"].as_u64().unwrap() >= 250,
        "{bounded_stats}"
    );
}
