//! Aggregation, identity and the GuardDuty JSON shape.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::Value;
use vigil_publish::{Aggregator, finding_id, image_prefix, to_guardduty_json};
use vigil_schemas::{
    ApiCallAction, ClusterDetails, ContainerSpec, Detection, IpIntel, ThreatMatch, UserInfo,
    Volume, WorkloadSpec,
};

fn detection(principal: &str, resource: &str, time: i64, ip: &str) -> Detection {
    Detection {
        finding_type: "Execution:Kubernetes/ExecInKubeSystemPod".into(),
        detector: "exec_in_kube_system_pod".into(),
        severity: 5.0,
        title: "t".into(),
        description: "d".into(),
        aggregation_key: vec![principal.into(), resource.into()],
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
            username: principal.into(),
            groups: vec!["g".into()],
            ..UserInfo::default()
        }),
        api_call: Some(ApiCallAction {
            verb: "create".into(),
            request_uri: "/api/v1/namespaces/kube-system/pods/p/exec?command=sh".into(),
            source_ips: vec![ip.into()],
            remote_ip: Some(IpIntel {
                ip: ip.into(),
                scope: "public".into(),
                ..IpIntel::default()
            }),
            ..ApiCallAction::default()
        }),
        ..Detection::default()
    }
}

#[test]
fn repeats_aggregate_into_one_finding_whose_details_are_the_latest() {
    let mut aggregator = Aggregator::default();
    let first_id = aggregator
        .add(detection("bob", "kube-system/p", 1_000_000, "1.1.1.1"))
        .1
        .id
        .clone();
    aggregator.add(detection("bob", "kube-system/p", 3_000_000, "3.3.3.3"));
    // A late occurrence counts but leaves the latest details in place.
    let finding = aggregator
        .add(detection("bob", "kube-system/p", 2_000_000, "2.2.2.2"))
        .1
        .clone();
    assert_eq!(aggregator.len(), 1);
    assert_eq!(finding.id, first_id);
    assert_eq!(finding.count, 3);
    assert_eq!(
        (finding.created_at_micros, finding.updated_at_micros),
        (1_000_000, 3_000_000)
    );
    assert_eq!(finding.detection.api_call.unwrap().source_ips, ["3.3.3.3"]);
}

#[test]
fn different_principals_or_resources_never_merge() {
    let mut aggregator = Aggregator::default();
    aggregator.add(detection("bob", "kube-system/p", 1, "1.1.1.1"));
    aggregator.add(detection("alice", "kube-system/p", 2, "1.1.1.1"));
    aggregator.add(detection("bob", "kube-system/q", 3, "1.1.1.1"));
    assert_eq!(aggregator.len(), 3);
    // Length-prefixed parts: ["ab", "c"] and ["a", "bc"] are different keys.
    let mut split_one = detection("ab", "c", 1, "1.1.1.1");
    let split_two = detection("a", "bc", 1, "1.1.1.1");
    assert_ne!(finding_id(&split_one), finding_id(&split_two));
    split_one.cluster.name = "other".into();
    assert_ne!(
        finding_id(&split_one),
        finding_id(&detection("ab", "c", 1, "1.1.1.1"))
    );
}

#[test]
fn ids_are_deterministic_32_hex_digits() {
    let id = finding_id(&detection("bob", "kube-system/p", 1, "1.1.1.1"));
    assert_eq!(id.len(), 32);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    // Time, event and details are not part of the identity.
    assert_eq!(
        id,
        finding_id(&detection("bob", "kube-system/p", 99, "9.9.9.9"))
    );
    // Pinned: changing the id scheme changes every stored finding's id, which must be deliberate.
    assert_eq!(id, "32ca7b0e208790053bacf373592554b3");
}

fn has_no_nulls(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Array(items) => items.iter().all(has_no_nulls),
        Value::Object(map) => map.values().all(has_no_nulls),
        _ => true,
    }
}

#[test]
fn the_json_has_guardduty_shape() {
    let mut aggregator = Aggregator::default();
    let mut with_workload = detection(
        "bob",
        "kube-system/ds",
        1_710_252_600_000_000,
        "203.0.113.66",
    );
    with_workload.workload = Some(WorkloadSpec {
        kind: "DaemonSet".into(),
        name: Some("agent".into()),
        namespace: Some("kube-system".into()),
        host_pid: true,
        containers: vec![ContainerSpec {
            name: "c".into(),
            image: "docker.io/xmrig/xmrig:6.21.0".into(),
            privileged: true,
            ..ContainerSpec::default()
        }],
        volumes: vec![Volume {
            name: "host".into(),
            host_path: Some("/".into()),
        }],
        ..WorkloadSpec::default()
    });
    if let Some(remote) = with_workload
        .api_call
        .as_mut()
        .and_then(|call| call.remote_ip.as_mut())
    {
        remote.asn = Some(64500);
        remote.as_organization = Some("Example Net".into());
    }
    with_workload.threat_intel = vec![ThreatMatch {
        list_name: "bad".into(),
        entry: "203.0.113.64/28".into(),
        file_sha256: "ff".into(),
        curated: false,
        category: None,
    }];
    let json = to_guardduty_json(aggregator.add(with_workload).1);
    assert!(has_no_nulls(&json), "{json}");
    assert_eq!(json["schemaVersion"], "2.0");
    assert_eq!(json["severity"], 5.0);
    assert_eq!(json["createdAt"], "2024-03-12T14:10:00.000Z");
    assert_eq!(json["resource"]["resourceType"], "EKSCluster");
    assert_eq!(json["resource"]["eksClusterDetails"]["name"], "prod");
    assert_eq!(
        json["resource"]["kubernetesDetails"]["kubernetesUserDetails"]["username"],
        "bob"
    );
    let workload = &json["resource"]["kubernetesDetails"]["kubernetesWorkloadDetails"];
    assert_eq!(workload["type"], "daemonsets");
    assert_eq!(workload["hostPID"], true);
    assert_eq!(
        workload["containers"][0]["imagePrefix"],
        "docker.io/xmrig/xmrig"
    );
    assert_eq!(
        workload["containers"][0]["securityContext"]["privileged"],
        true
    );
    assert_eq!(workload["volumes"][0]["hostPath"]["path"], "/");
    let service = &json["service"];
    assert_eq!(service["count"], 1);
    assert_eq!(service["archived"], false);
    assert_eq!(service["action"]["actionType"], "KUBERNETES_API_CALL");
    assert_eq!(
        service["action"]["kubernetesApiCallAction"]["remoteIpDetails"]["ipAddressV4"],
        "203.0.113.66"
    );
    assert_eq!(
        service["action"]["kubernetesApiCallAction"]["remoteIpDetails"]["organization"],
        serde_json::json!({"asn": "64500", "asnOrg": "Example Net"})
    );
    assert_eq!(
        service["evidence"]["threatIntelligenceDetails"][0]["threatListName"],
        "bad"
    );
    assert_eq!(service["eventFirstSeen"], service["eventLastSeen"]);
    assert_eq!(
        json["arn"],
        format!(
            "arn:aws:guardduty:us-east-1:111122223333:detector/vigil/finding/{}",
            json["id"].as_str().unwrap()
        )
    );
}

#[test]
fn image_prefixes_drop_tags_and_digests_but_keep_registry_ports() {
    assert_eq!(image_prefix("nginx:1.25"), "nginx");
    assert_eq!(image_prefix("nginx"), "nginx");
    assert_eq!(
        image_prefix("registry.local:5000/team/app:v2"),
        "registry.local:5000/team/app"
    );
    assert_eq!(
        image_prefix("registry.local:5000/team/app"),
        "registry.local:5000/team/app"
    );
    assert_eq!(image_prefix("busybox@sha256:abcd"), "busybox");
    assert_eq!(
        image_prefix("602401143452.dkr.ecr.us-east-1.amazonaws.com/eks/kube-proxy:v1.29.0"),
        "602401143452.dkr.ecr.us-east-1.amazonaws.com/eks/kube-proxy"
    );
}

#[test]
fn a_redelivered_detection_is_not_counted_twice() {
    use vigil_publish::Added;
    let mut aggregator = Aggregator::default();
    assert_eq!(
        aggregator
            .add(detection("bob", "kube-system/p", 1, "1.1.1.1"))
            .0,
        Added::New
    );
    assert_eq!(
        aggregator
            .add(detection("bob", "kube-system/p", 2, "1.1.1.1"))
            .0,
        Added::Updated
    );
    let (added, finding) = aggregator.add(detection("bob", "kube-system/p", 1, "1.1.1.1"));
    assert_eq!((added, finding.count), (Added::Repeated, 2));
    // Restored state remembers what it counted.
    let saved = finding.clone();
    let mut restarted = Aggregator::default();
    restarted.restore(saved);
    assert_eq!(
        restarted
            .add(detection("bob", "kube-system/p", 2, "1.1.1.1"))
            .0,
        Added::Repeated
    );
    assert_eq!(
        restarted
            .add(detection("bob", "kube-system/p", 3, "1.1.1.1"))
            .1
            .count,
        3
    );
}

// ---- suppression

fn suppression(toml_text: &str) -> Result<vigil_publish::suppress::Suppression, String> {
    #[derive(serde::Deserialize)]
    struct File {
        suppression: Vec<vigil_publish::suppress::SuppressionRule>,
    }
    let file: File = toml::from_str(toml_text).map_err(|error| error.to_string())?;
    vigil_publish::suppress::Suppression::new(file.suppression).map_err(|error| error.to_string())
}

const BOB_FROM_ONE_ADDRESS: &str = r#"
[[suppression]]
name = "bob-from-vpn"
[suppression.criterion]
"resource.kubernetesDetails.kubernetesUserDetails.username" = { Eq = ["bob"] }
"service.action.kubernetesApiCallAction.remoteIpDetails.ipAddressV4" = { matches = ["1.1.1.*"] }
"severity" = { gte = 4 }
"#;

#[test]
fn a_matching_finding_is_archived_counted_once_and_stays_archived() {
    let mut aggregator = Aggregator::with_suppression(suppression(BOB_FROM_ONE_ADDRESS).unwrap());
    let (_, finding) = aggregator.add(detection("bob", "kube-system/p", 1_000_000, "1.1.1.1"));
    assert!(finding.archived);
    assert_eq!(to_guardduty_json(finding)["service"]["archived"], true);
    // A later occurrence from elsewhere no longer matches, but the finding stays archived.
    let (_, finding) = aggregator.add(detection("bob", "kube-system/p", 2_000_000, "9.9.9.9"));
    assert!(finding.archived);
    assert_eq!(finding.count, 2, "suppressed findings still count");
    assert_eq!(aggregator.suppressed(), 1);
}

#[test]
fn a_finding_that_one_criterion_misses_is_not_archived() {
    let mut aggregator = Aggregator::with_suppression(suppression(BOB_FROM_ONE_ADDRESS).unwrap());
    assert!(
        !aggregator
            .add(detection("alice", "kube-system/p", 1, "1.1.1.1"))
            .1
            .archived
    );
    assert!(
        !aggregator
            .add(detection("bob", "kube-system/q", 2, "2.1.1.1"))
            .1
            .archived
    );
    let mut low = detection("bob", "kube-system/r", 3, "1.1.1.1");
    low.severity = 2.0;
    assert!(!aggregator.add(low).1.archived);
    assert_eq!(aggregator.suppressed(), 0);
}

#[test]
fn negative_operators_and_lists_follow_guardduty() {
    let rules = suppression(
        r#"
[[suppression]]
name = "not-bob-not-kube-system"
[suppression.criterion]
"resource.kubernetesDetails.kubernetesUserDetails.username" = { neq = ["bob"] }
"service.action.kubernetesApiCallAction.requestUri" = { not_matches = ["*kube-system*"] }
"service.action.kubernetesApiCallAction.sourceIPs" = { eq = ["3.3.3.3"] }
"#,
    )
    .unwrap();
    let mut aggregator = Aggregator::with_suppression(rules);
    let mut elsewhere = detection("carol", "shop/p", 1, "3.3.3.3");
    if let Some(call) = elsewhere.api_call.as_mut() {
        call.request_uri = "/api/v1/namespaces/shop/pods/p/exec".into();
    }
    assert!(aggregator.add(elsewhere.clone()).1.archived);
    let mut bobs = elsewhere.clone();
    bobs.user = detection("bob", "", 0, "").user;
    bobs.aggregation_key = vec!["bob".into()];
    assert!(!aggregator.add(bobs).1.archived);
    let mut system = elsewhere;
    system.aggregation_key = vec!["carol".into(), "kube-system/p".into()];
    system.api_call = detection("carol", "", 0, "3.3.3.3").api_call;
    assert!(!aggregator.add(system).1.archived);
}

#[test]
fn rules_that_could_not_have_been_meant_are_refused() {
    let empty = suppression("[[suppression]]\nname = \"all\"\n[suppression.criterion]\n");
    assert!(empty.unwrap_err().contains("no criterion"));
    let outside = suppression(
        "[[suppression]]\nname = \"x\"\n[suppression.criterion]\n\"username\" = { eq = [\"bob\"] }\n",
    );
    assert!(outside.unwrap_err().contains("not a finding attribute"));
    let no_operator =
        suppression("[[suppression]]\nname = \"x\"\n[suppression.criterion]\n\"type\" = {}\n");
    assert!(no_operator.unwrap_err().contains("no operator"));
    let unknown_operator = suppression(
        "[[suppression]]\nname = \"x\"\n[suppression.criterion]\n\"type\" = { like = [\"a\"] }\n",
    );
    assert!(unknown_operator.unwrap_err().contains("like"));
    let twice = suppression(
        "[[suppression]]\nname = \"x\"\n[suppression.criterion]\n\"type\" = { eq = [\"a\"] }\n[[suppression]]\nname = \"x\"\n[suppression.criterion]\n\"type\" = { eq = [\"b\"] }\n",
    );
    assert!(twice.unwrap_err().contains("twice"));
}

#[test]
fn an_anomaly_explains_itself_in_guarddutys_anomaly_shape() {
    let mut aggregator = Aggregator::default();
    let mut found = detection("alice", "kube-system/p", 1_000_000, "203.0.113.9");
    found.finding_type = "Execution:Kubernetes/AnomalousBehavior.ExecInPod".into();
    found.anomaly = vec![
        vigil_schemas::AnomalyObservation {
            scope: "principal".into(),
            entity: "alice".into(),
            dimension: "namespace".into(),
            observed: "kube-system".into(),
            familiarity: "unseen".into(),
            baseline: vec!["shop".into(), "payments".into()],
            profile_observations: 812,
            profile_days: 14,
        },
        vigil_schemas::AnomalyObservation {
            scope: "principal".into(),
            entity: "alice".into(),
            dimension: "userAgent".into(),
            observed: "python-requests/2".into(),
            familiarity: "unseen".into(),
            baseline: vec!["kubectl/1".into()],
            profile_observations: 812,
            profile_days: 14,
        },
    ];
    let json = to_guardduty_json(aggregator.add(found).1);
    let anomaly = &json["service"]["detection"]["anomaly"];
    // profiles: dimension → entity → [AnomalyObject]; unusual.behavior: entity → dimension →
    // AnomalyObject (GuardDuty's API types).
    assert_eq!(
        anomaly["profiles"]["namespace"]["principal:alice"],
        serde_json::json!([{
            "profileType": "FREQUENCY",
            "profileSubtype": "FREQUENT",
            "observations": {"text": ["shop", "payments"]},
        }])
    );
    assert_eq!(
        anomaly["unusual"]["behavior"]["principal:alice"]["userAgent"],
        serde_json::json!({
            "profileType": "FREQUENCY",
            "profileSubtype": "UNSEEN",
            "observations": {"text": ["python-requests/2"]},
        })
    );
    assert_eq!(
        anomaly["unusual"]["behavior"]["principal:alice"]
            .as_object()
            .unwrap()
            .len(),
        2
    );
    let additional: Value =
        serde_json::from_str(json["service"]["additionalInfo"]["value"].as_str().unwrap()).unwrap();
    assert_eq!(
        additional["anomalyProfiles"]["principal:alice"],
        serde_json::json!({"observations": 812, "days": 14})
    );
    // A finding without an anomaly has no `detection`.
    let plain = to_guardduty_json(
        Aggregator::default()
            .add(detection("bob", "kube-system/p", 1, "1.1.1.1"))
            .1,
    );
    assert!(plain["service"].get("detection").is_none());
}

fn additional_info(json: &Value) -> Value {
    serde_json::from_str(json["service"]["additionalInfo"]["value"].as_str().unwrap()).unwrap()
}

#[test]
fn every_finding_names_its_att_ck_tactics_and_techniques() {
    let json = to_guardduty_json(
        Aggregator::default()
            .add(detection(
                "alice",
                "kube-system/p",
                1_000_000,
                "203.0.113.9",
            ))
            .1,
    );
    assert_eq!(
        additional_info(&json)["mitreAttack"],
        serde_json::json!({
            "tactics": [{"id": "TA0002", "name": "Execution"}],
            "techniques": [{"id": "T1609", "name": "Container Administration Command"}],
        })
    );
}

#[test]
fn a_rule_s_declared_tags_join_its_type_s_att_ck() {
    let mut found = detection("alice", "kube-system/p", 1_000_000, "203.0.113.9");
    found.finding_type = "Execution:Kubernetes/ShopDebugShell".into();
    found.additional_info = vec![vigil_schemas::KeyValue {
        key: "mitreAttack".into(),
        value: "T1059.004, TA0002".into(),
    }];
    let json = to_guardduty_json(Aggregator::default().add(found).1);
    let attack = &additional_info(&json)["mitreAttack"];
    assert_eq!(attack["tactics"][0]["name"], "Execution");
    assert_eq!(attack["techniques"][0]["id"], "T1059.004");
    assert_eq!(attack["tactics"].as_array().unwrap().len(), 1);
}
