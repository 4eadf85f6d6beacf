//! The OCSF Detection Finding format on hand-made findings: each checked against the OCSF 1.6.0
//! schema, and each mapping that the example day does not exercise.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::Value;
use vigil_ocsf::{IssueKind, Schema};
use vigil_publish::suppress::Suppression;
use vigil_publish::{Aggregator, CorrelationSettings, Format, Publisher};
use vigil_schemas::{
    AnomalyObservation, ApiCallAction, ClusterDetails, Detection, IpIntel, UserInfo,
};

fn schema() -> Schema {
    Schema::reference().unwrap_or_else(|message| panic!("{message}"))
}

/// Renders and validates: no schema error, no recommended attribute left out without a reason.
fn valid(finding: &Value) -> &Value {
    let left_out: Vec<&str> = vigil_publish::format::ocsf::LEFT_OUT
        .iter()
        .map(|(attribute, _)| *attribute)
        .collect();
    let problems: Vec<String> = schema()
        .validate(finding)
        .issues
        .into_iter()
        .filter(|issue| {
            !issue.kind.is_warning()
                || (issue.kind == IssueKind::MissingRecommended
                    && !left_out.contains(&issue.attribute.as_str()))
        })
        .map(|issue| issue.to_string())
        .collect();
    assert!(problems.is_empty(), "{problems:#?}\n{finding:#}");
    finding
}

fn detection(user: &str, time: i64) -> Detection {
    Detection {
        finding_type: "Execution:Kubernetes/AnomalousBehavior.ExecInPod".into(),
        detector: "principal_baselines".into(),
        severity: 5.0,
        title: "An unusual exec".into(),
        description: "d".into(),
        aggregation_key: vec![user.into()],
        event_id: format!("e-{time}"),
        event_time_micros: time,
        cluster: ClusterDetails {
            name: "prod".into(),
            account_id: Some("111122223333".into()),
            region: Some("us-east-1".into()),
            partition: "aws".into(),
            ..ClusterDetails::default()
        },
        user: Some(UserInfo {
            username: user.into(),
            ..UserInfo::default()
        }),
        api_call: Some(ApiCallAction {
            verb: "create".into(),
            request_uri: "/api/v1/namespaces/kube-system/pods/p/exec".into(),
            resource: Some("pods".into()),
            subresource: Some("exec".into()),
            namespace: Some("kube-system".into()),
            resource_name: Some("p".into()),
            // X-Forwarded-For first, the peer last: both kept.
            source_ips: vec!["10.0.0.1".into(), "203.0.113.9".into()],
            remote_ip: Some(IpIntel {
                ip: "203.0.113.9".into(),
                scope: "public".into(),
                asn: Some(64_500),
                as_organization: Some("Example Net".into()),
                ..IpIntel::default()
            }),
            user_agent: Some("<script>alert(1)</script>".into()),
            ..ApiCallAction::default()
        }),
        anomaly: vec![AnomalyObservation {
            scope: "principal".into(),
            entity: user.into(),
            dimension: "namespace".into(),
            observed: "kube-system".into(),
            familiarity: "unseen".into(),
            baseline: vec!["shop".into(), "payments".into()],
            profile_observations: 812,
            profile_days: 14,
        }],
        ..Detection::default()
    }
}

#[test]
fn an_anomaly_is_explained_as_observed_against_the_baseline() {
    let mut aggregator = Aggregator::default();
    let ocsf = Format::Ocsf.render(aggregator.add(detection("alice", 1_000_000)).1);
    let ocsf = valid(&ocsf);
    let analysis = &ocsf["anomaly_analyses"][0];
    assert_eq!(analysis["analysis_targets"][0]["name"], "alice");
    assert_eq!(
        analysis["anomalies"][0]["observation_parameter"],
        "namespace"
    );
    assert_eq!(
        analysis["anomalies"][0]["observations"][0]["value"],
        "kube-system"
    );
    assert_eq!(
        analysis["baselines"][0]["observations"][1]["value"],
        "payments"
    );
    assert_eq!(ocsf["finding_info"]["analytic"]["type_id"], 2, "Behavioral");
    // Every address the API server recorded, the peer as the source endpoint.
    let evidence = &ocsf["evidences"][0];
    assert_eq!(evidence["src_endpoint"]["ip"], "203.0.113.9");
    assert_eq!(
        evidence["src_endpoint"]["autonomous_system"]["number"],
        64_500
    );
    assert_eq!(
        evidence["http_request"]["x_forwarded_for"],
        serde_json::json!(["10.0.0.1", "203.0.113.9"])
    );
    // An attacker's user agent is a string like any other (the report escapes it).
    assert_eq!(
        evidence["http_request"]["user_agent"],
        "<script>alert(1)</script>"
    );
}

#[test]
fn a_finding_is_created_then_updated_and_suppressed_when_archived() {
    let mut aggregator = Aggregator::default();
    let first = Format::Ocsf.render(aggregator.add(detection("alice", 1_000_000)).1);
    assert_eq!(valid(&first)["activity_id"], 1);
    assert_eq!(first["type_uid"], 200_401);
    assert_eq!(first["status_id"], 1);
    let second = Format::Ocsf.render(aggregator.add(detection("alice", 2_000_000)).1);
    assert_eq!(valid(&second)["activity_id"], 2);
    assert_eq!(second["type_uid"], 200_402);
    assert_eq!(second["count"], 2);
    assert_eq!(second["start_time"], 1_000);
    assert_eq!(second["end_time"], 2_000);

    #[derive(serde::Deserialize)]
    struct File {
        suppression: Vec<vigil_publish::suppress::SuppressionRule>,
    }
    let rules = r#"
[[suppression]]
name = "alice-is-allowed"
[suppression.criterion]
"resource.kubernetesDetails.kubernetesUserDetails.username" = { Eq = ["alice"] }
"#;
    let file: File = toml::from_str(rules).unwrap();
    let suppression = Suppression::new(file.suppression).unwrap();
    let mut aggregator = Aggregator::with_suppression(suppression);
    let archived = Format::Ocsf.render(aggregator.add(detection("alice", 1_000_000)).1);
    assert_eq!(valid(&archived)["status_id"], 3);
    assert_eq!(archived["status"], "Suppressed");
    assert_eq!(archived["is_alert"], false);
}

#[test]
fn a_cluster_of_no_known_cloud_applies_no_cloud_profile() {
    let mut found = detection("alice", 1_000_000);
    found.cluster = ClusterDetails {
        name: "lab".into(),
        partition: "aws".into(),
        ..ClusterDetails::default()
    };
    let ocsf = Format::Ocsf.render(Aggregator::default().add(found).1);
    let ocsf = valid(&ocsf);
    assert!(ocsf.get("cloud").is_none());
    assert_eq!(
        ocsf["metadata"]["profiles"],
        serde_json::json!(["security_control"])
    );
}

#[test]
fn a_sequence_is_created_then_updated() {
    let mut publisher = Publisher::new(Suppression::default(), CorrelationSettings::default());
    let minute = 60_000_000;
    let mut versions = Vec::new();
    let steps = [
        ("Discovery:Kubernetes/TorIPCaller", "discovery", 5.0),
        ("CredentialAccess:Kubernetes/TorIPCaller", "secrets", 8.0),
        ("Persistence:Kubernetes/TorIPCaller", "persistence", 8.0),
        ("Impact:Kubernetes/TorIPCaller", "impact", 8.0),
    ];
    for (index, (kind, detector, severity)) in (1_i64..).zip(steps) {
        let mut step = detection("mallory", index * minute);
        step.finding_type = kind.into();
        step.detector = detector.into();
        step.severity = severity;
        step.anomaly.clear();
        step.aggregation_key = vec!["mallory".into(), detector.into()];
        publisher.add(step);
        if let Some(sequence) = publisher.sequences().first() {
            versions.push(Format::Ocsf.render_sequence(sequence));
        }
    }
    assert!(versions.len() >= 2, "{} versions", versions.len());
    let first = valid(&versions[0]);
    assert_eq!(first["activity_id"], 1);
    let last = valid(versions.last().unwrap());
    assert_eq!(last["activity_id"], 2);
    assert_eq!(
        last["finding_info"]["related_events"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}
