//! An attack sequence as GuardDuty writes `AttackSequence:EKS/CompromisedCluster`: the finding's head
//! and cluster like any finding's, and `service.detection.sequence` with its actors, resources,
//! endpoints, signals and indicators (times inside `sequence` in epoch milliseconds, as the API has
//! them). Ids of actors, resources and endpoints are short digests of what they name, so they are
//! the same on every replay.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use vigil_correlate::{Entity, LinkKind, SEQUENCE_TYPE, Sequence};
use vigil_schemas::time::format_rfc3339_millis;

fn millis(micros: i64) -> i64 {
    micros.div_euclid(1_000)
}

/// A short stable id for an actor, resource or endpoint.
fn entity_id(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn actor(entity: &Entity) -> Value {
    let mut actor = json!({"id": entity_id(&entity.key)});
    if let Some(object) = actor.as_object_mut() {
        if entity.entity_type == "PROCESS" {
            object.insert(
                "process".into(),
                json!({"name": entity.name, "path": entity.detail}),
            );
        } else {
            object.insert(
                "user".into(),
                json!({"name": entity.name, "uid": entity.name, "type": entity.entity_type}),
            );
        }
    }
    actor
}

fn resource(entity: &Entity, sequence: &Sequence) -> Value {
    let cluster = &sequence.cluster;
    let mut data = Map::new();
    match entity.entity_type.as_str() {
        "CONTAINER" => {
            data.insert("container".into(), json!({"image": entity.detail}));
        }
        "KUBERNETES_WORKLOAD" => {
            data.insert(
                "kubernetesWorkload".into(),
                json!({"namespace": entity.namespace, "type": entity.detail}),
            );
        }
        _ => {}
    }
    json!({
        "uid": entity.key,
        "name": entity.name,
        "resourceType": entity.entity_type,
        "accountId": cluster.account_id,
        "region": cluster.region,
        "cloudPartition": cluster.partition,
        "service": if entity.entity_type == "EC2_INSTANCE" { "EC2" } else { "EKS" },
        "data": data,
    })
}

fn endpoint(entity: &Entity) -> Value {
    let mut endpoint = json!({"id": entity_id(&entity.key)});
    if let Some(object) = endpoint.as_object_mut() {
        let field = if entity.entity_type == "DOMAIN" {
            "domain"
        } else {
            "ip"
        };
        object.insert(field.into(), json!(entity.name));
    }
    endpoint
}

/// The sequence's finding JSON.
pub fn render(sequence: &Sequence) -> Value {
    let cluster = &sequence.cluster;
    // Every actor, resource and endpoint of its signals, once each, in a stable order.
    let mut actors = BTreeMap::new();
    let mut resources = BTreeMap::new();
    let mut endpoints = BTreeMap::new();
    let mut indicators: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let cluster_uid = cluster.arn.clone().unwrap_or_else(|| cluster.name.clone());
    let signals: Vec<Value> = sequence
        .signals
        .iter()
        .map(|signal| {
            let (mut actor_ids, mut resource_ids, mut endpoint_ids) =
                (Vec::new(), vec![cluster_uid.clone()], Vec::new());
            for entity in &signal.entities {
                match entity.kind {
                    LinkKind::Actor => {
                        actor_ids.push(entity_id(&entity.key));
                        actors
                            .entry(entity.key.clone())
                            .or_insert_with(|| actor(entity));
                    }
                    LinkKind::Resource => {
                        resource_ids.push(entity.key.clone());
                        resources
                            .entry(entity.key.clone())
                            .or_insert_with(|| resource(entity, sequence));
                    }
                    LinkKind::Endpoint => {
                        endpoint_ids.push(entity_id(&entity.key));
                        endpoints
                            .entry(entity.key.clone())
                            .or_insert_with(|| endpoint(entity));
                    }
                }
            }
            for indicator in &signal.indicators {
                let values = indicators.entry(indicator.key.as_str()).or_default();
                for value in &indicator.values {
                    if !values.contains(value) {
                        values.push(value.clone());
                    }
                }
            }
            json!({
                "uid": signal.arn,
                // A weak signal is not a finding: its type is the log it came from.
                "type": if signal.weak {
                    if signal.source == "runtime" { "RUNTIME_MONITORING" } else { "EKS_AUDIT_LOGS" }
                } else {
                    "FINDING"
                },
                "name": signal.name,
                "description": signal.description,
                "createdAt": millis(signal.first_seen_micros),
                "updatedAt": millis(signal.last_seen_micros),
                "firstSeenAt": millis(signal.first_seen_micros),
                "lastSeenAt": millis(signal.last_seen_micros),
                "severity": signal.severity,
                "count": signal.count,
                "resourceUids": resource_ids,
                "actorIds": actor_ids,
                "endpointIds": endpoint_ids,
                "signalIndicators": signal.indicators.iter().map(|indicator| json!({
                    "key": indicator.key, "values": indicator.values,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let eks_cluster = json!({
        "uid": cluster_uid,
        "name": cluster.name,
        "resourceType": "EKS_CLUSTER",
        "accountId": cluster.account_id,
        "region": cluster.region,
        "cloudPartition": cluster.partition,
        "service": "EKS",
        "data": {"eksCluster": {"arn": cluster.arn, "status": "ACTIVE", "vpcId": cluster.vpc_id}},
    });
    let tactics = sequence.tactics();
    let techniques = sequence.techniques();
    // The ATT&CK indicators of the whole sequence, in the order the attack reached them.
    indicators.insert(
        "ATTACK_TACTIC",
        tactics.iter().map(|(_, name)| name.clone()).collect(),
    );
    indicators.insert(
        "ATTACK_TECHNIQUE",
        techniques
            .iter()
            .map(|(id, name)| format!("{id}: {name}"))
            .collect(),
    );
    let sequence_indicators: Vec<Value> = indicators
        .into_iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(key, values)| json!({"key": key, "values": values}))
        .collect();
    let additional = json!({
        "detector": "correlation",
        "mitreAttack": {
            "tactics": tactics.iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>(),
            "techniques": techniques.iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>(),
        },
        "signalsLeftOut": sequence.signals_left_out,
        "mergedInto": sequence.merged_into.as_ref().map(|id| cluster.finding_arn(id)),
    });
    let finding = json!({
        "schemaVersion": "2.0",
        "accountId": cluster.account_id.clone().unwrap_or_default(),
        "region": cluster.region.clone().unwrap_or_default(),
        "partition": cluster.partition,
        "id": sequence.id,
        "arn": sequence.arn(),
        "type": SEQUENCE_TYPE,
        "severity": sequence.severity,
        "title": format!("Potential attack sequence in cluster {}: {} signals across {} tactics.", cluster.name, sequence.signals.len(), tactics.len()),
        "description": sequence.description,
        "createdAt": format_rfc3339_millis(sequence.created_at_micros),
        "updatedAt": format_rfc3339_millis(sequence.updated_at_micros),
        "resource": {
            "resourceType": "EKSCluster",
            "eksClusterDetails": super::guardduty::eks_cluster_details(cluster),
        },
        "service": {
            "serviceName": "guardduty",
            "detectorId": "vigil",
            "count": sequence.count,
            // Merged into an earlier sequence: archived, so consumers keep only the one.
            "archived": sequence.merged_into.is_some(),
            "resourceRole": "TARGET",
            "eventFirstSeen": format_rfc3339_millis(sequence.created_at_micros),
            "eventLastSeen": format_rfc3339_millis(sequence.updated_at_micros),
            "detection": {"sequence": {
                "uid": sequence.id,
                "description": sequence.description,
                "actors": actors.into_values().collect::<Vec<_>>(),
                "resources": std::iter::once(eks_cluster).chain(resources.into_values()).collect::<Vec<_>>(),
                "endpoints": endpoints.into_values().collect::<Vec<_>>(),
                "signals": signals,
                "sequenceIndicators": sequence_indicators,
            }},
            "additionalInfo": {"type": "default", "value": additional.to_string()},
        },
    });
    super::guardduty::without_nulls(finding)
}
