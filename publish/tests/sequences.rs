//! The publisher's attack sequences: what a busy ordinary week raises (nothing), how members learn
//! their sequence, and the sequence finding's GuardDuty shape.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::Value;
use vigil_detect::{DetectConfig, Engine};
use vigil_publish::suppress::{Suppression, SuppressionRule};
use vigil_publish::{CorrelationSettings, Format, Publisher};
use vigil_schemas::{ApiCallAction, ClusterDetails, Detection, IpIntel, UserInfo, WorkloadSpec};

const T0: i64 = 1_700_000_000_000_000;
const MINUTE: i64 = 60_000_000;

#[test]
fn a_busy_ordinary_week_and_a_half_raises_no_sequence() {
    let mut engine = Engine::build(&DetectConfig::default()).unwrap();
    let mut publisher = Publisher::new(Suppression::default(), CorrelationSettings::default());
    let options = vigil_sim::EvalOptions {
        seed: 7,
        principals: 250,
        // A week and a half: the baselines' principals are stable for the last days, so their
        // unusual calls are weak signals too.
        days: 10,
        learn_days: 7,
    };
    let (mut events, mut findings, mut weak) = (0_u64, 0_u64, 0_u64);
    let mut detections = Vec::new();
    vigil_sim::ordinary(&options, |day| {
        for event in day {
            events += 1;
            detections.clear();
            engine.process(event, &mut detections);
            for detection in detections.drain(..) {
                if detection.signal_only {
                    weak += 1;
                } else {
                    findings += 1;
                }
                publisher.add(detection);
            }
        }
    });
    // Not an empty week: the correlator had signals to link.
    assert!(events > 100_000, "{events} events");
    assert!(
        weak > 0 && findings > 0,
        "{weak} weak signals, {findings} findings"
    );
    let sequences: Vec<String> = publisher
        .sequences()
        .iter()
        .map(|sequence| sequence.description.clone())
        .collect();
    assert!(sequences.is_empty(), "ordinary traffic: {sequences:#?}");
    // Nor a chain rule's finding: people's RBAC changes, deploys and execs of an ordinary week do
    // not line up into one.
    let chained: Vec<String> = publisher
        .findings()
        .iter()
        .filter(|finding| {
            vigil_publish::CHAIN_RULES
                .iter()
                .any(|rule| rule.finding_type == finding.detection.finding_type)
        })
        .map(|finding| finding.detection.description.clone())
        .collect();
    assert!(chained.is_empty(), "ordinary traffic: {chained:#?}");

    // Every finding of the busy week is a valid OCSF Detection Finding.
    let schema = vigil_ocsf::Schema::reference().unwrap_or_else(|message| panic!("{message}"));
    let left_out: Vec<&str> = vigil_publish::format::ocsf::LEFT_OUT
        .iter()
        .map(|(attribute, _)| *attribute)
        .collect();
    let mut problems = std::collections::BTreeSet::new();
    for finding in publisher.findings() {
        let ocsf = Format::Ocsf.render(finding);
        let report = schema.validate(&ocsf);
        for issue in &report.issues {
            let unexplained = issue.kind == vigil_ocsf::IssueKind::MissingRecommended
                && !left_out.contains(&issue.attribute.as_str());
            if !issue.kind.is_warning() || unexplained {
                problems.insert(format!("{}: {issue}", finding.detection.finding_type));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

fn cluster() -> ClusterDetails {
    ClusterDetails {
        name: "prod".into(),
        account_id: Some("111122223333".into()),
        region: Some("us-east-1".into()),
        partition: "aws".into(),
        ..ClusterDetails::default()
    }
}

fn call(finding_type: &str, detector: &str, time: i64, user: &str, ip: &str) -> Detection {
    Detection {
        finding_type: finding_type.into(),
        detector: detector.into(),
        severity: 5.0,
        title: format!("{finding_type} by {user}"),
        description: "d".into(),
        aggregation_key: vec![user.into(), ip.into()],
        event_id: format!("{detector}-{time}"),
        event_time_micros: time,
        cluster: cluster(),
        user: Some(UserInfo {
            username: user.into(),
            ..UserInfo::default()
        }),
        api_call: Some(ApiCallAction {
            verb: "list".into(),
            resource: Some("secrets".into()),
            user_agent: Some("kubectl/v1.30.0".into()),
            remote_ip: Some(IpIntel {
                ip: ip.into(),
                scope: "public".into(),
                tor_exit: true,
                ..IpIntel::default()
            }),
            ..ApiCallAction::default()
        }),
        ..Detection::default()
    }
}

fn privileged(time: i64, user: &str) -> Detection {
    let mut detection = call(
        "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
        "privileged_container",
        time,
        user,
        "10.0.0.9",
    );
    detection.aggregation_key = vec!["shop".into(), "miner".into()];
    if let Some(call) = &mut detection.api_call {
        call.verb = "create".into();
        call.resource = Some("deployments".into());
        call.remote_ip = None;
    }
    detection.workload = Some(WorkloadSpec {
        kind: "Deployment".into(),
        name: Some("miner".into()),
        namespace: Some("shop".into()),
        ..WorkloadSpec::default()
    });
    detection
}

fn tor(time: i64, user: &str) -> Detection {
    call(
        "CredentialAccess:Kubernetes/TorIPCaller",
        "tor_ip_caller",
        time,
        user,
        "185.220.101.4",
    )
}

#[test]
fn members_name_their_sequence_and_the_sequence_reads_as_guardduty_writes_it() {
    let mut publisher = Publisher::new(Suppression::default(), CorrelationSettings::default());
    let first = publisher.add(tor(T0, "bob"));
    assert!(first.sequences.is_empty() && first.associated.is_empty());
    let second = publisher.add(privileged(T0 + 5 * MINUTE, "bob"));
    assert_eq!(second.sequences.len(), 1);
    assert_eq!(second.associated.len(), 2, "both findings publish again");
    let sequence = publisher.sequences()[0].clone();
    for id in &second.associated {
        assert_eq!(
            publisher.finding(id).unwrap().attack_sequence_arn,
            Some(sequence.arn())
        );
        let json = Format::GuardDuty.render(publisher.finding(id).unwrap());
        assert_eq!(json["associatedAttackSequenceArn"], sequence.arn());
    }
    // A redelivered detection changes nothing.
    let again = publisher.add(tor(T0, "bob"));
    assert!(again.sequences.is_empty() && again.associated.is_empty());

    let json = Format::GuardDuty.render_sequence(&sequence);
    assert_eq!(json["type"], "AttackSequence:EKS/CompromisedCluster");
    assert_eq!(json["id"], sequence.id);
    assert_eq!(json["arn"], sequence.arn());
    assert_eq!(json["severity"], 9.0);
    assert_eq!(json["schemaVersion"], "2.0");
    assert_eq!(json["resource"]["resourceType"], "EKSCluster");
    assert_eq!(json["service"]["count"], 2);
    assert_eq!(json["service"]["archived"], false);
    let detail = &json["service"]["detection"]["sequence"];
    assert_eq!(detail["uid"], sequence.id);
    assert!(detail["description"].as_str().unwrap().contains("bob"));
    let signals = detail["signals"].as_array().unwrap();
    assert_eq!(signals.len(), 2);
    for signal in signals {
        assert_eq!(signal["type"], "FINDING");
        assert!(
            signal["firstSeenAt"].is_i64(),
            "epoch milliseconds: {signal}"
        );
        assert!(signal["lastSeenAt"].is_i64(), "{signal}");
        assert_eq!(signal["count"], 1);
        assert!(
            !signal["actorIds"].as_array().unwrap().is_empty(),
            "{signal}"
        );
        assert!(
            !signal["resourceUids"].as_array().unwrap().is_empty(),
            "{signal}"
        );
    }
    assert_eq!(signals[0]["firstSeenAt"], T0 / 1_000);
    let actor_names: Vec<&Value> = detail["actors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|actor| &actor["user"]["name"])
        .collect();
    assert!(
        actor_names.contains(&&Value::from("bob")),
        "{actor_names:?}"
    );
    assert!(
        detail["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|endpoint| endpoint["ip"] == "185.220.101.4"),
        "{}",
        detail["endpoints"]
    );
    let indicator = |key: &str| -> Vec<String> {
        detail["sequenceIndicators"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|indicator| indicator["key"] == key)
            .flat_map(|indicator| indicator["values"].as_array().unwrap().clone())
            .map(|value| value.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        indicator("ATTACK_TACTIC"),
        ["Credential Access", "Privilege Escalation"]
    );
    assert!(!indicator("ATTACK_TECHNIQUE").is_empty());
    assert_eq!(indicator("TOR_IP"), ["185.220.101.4"]);
}

#[test]
fn a_suppressed_finding_is_not_a_signal() {
    let rule: SuppressionRule = toml::from_str(
        r#"
        name = "bob's Tor use is a red-team exercise"
        criterion = { "type" = { eq = ["CredentialAccess:Kubernetes/TorIPCaller"] } }
        "#,
    )
    .unwrap();
    let mut publisher = Publisher::new(
        Suppression::new(vec![rule]).unwrap(),
        CorrelationSettings::default(),
    );
    assert!(publisher.add(tor(T0, "bob")).archived);
    let privileged = publisher.add(privileged(T0 + 5 * MINUTE, "bob"));
    assert!(privileged.sequences.is_empty());
    assert!(publisher.sequences().is_empty());
}

#[test]
fn weak_signals_are_kept_apart_from_findings_and_leave_after_the_window() {
    let mut publisher = Publisher::new(Suppression::default(), CorrelationSettings::default());
    let mut weak = call(
        "CredentialAccess:Kubernetes/SecretReadByWorkloadIdentity",
        "secret_read_by_workload_identity",
        T0,
        "system:serviceaccount:shop:web",
        "10.0.0.9",
    );
    weak.signal_only = true;
    let added = publisher.add(weak.clone());
    assert!(added.weak);
    assert!(
        publisher.findings().is_empty(),
        "a weak signal is no finding"
    );
    assert!(publisher.signal(&added.id).is_some());
    // A day and more later, it has left.
    let later = publisher.add(tor(T0 + 25 * 60 * MINUTE, "bob"));
    assert_eq!(later.retired, std::slice::from_ref(&added.id));
    assert!(publisher.signal(&added.id).is_none());
    // With correlation off, weak signals are not kept at all.
    let mut off = Publisher::new(
        Suppression::default(),
        CorrelationSettings {
            enabled: false,
            ..CorrelationSettings::default()
        },
    );
    let added = off.add(weak);
    assert!(off.signal(&added.id).is_none() && off.is_empty());
}
