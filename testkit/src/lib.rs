//! Event builders and engine helpers shared by Vigil's tests. The events are the normalized and
//! enriched records the stages pass on, built directly: the input shapes are ingest's tests' to cover.

use vigil_detect::{DetectConfig, Engine};
use vigil_schemas::{
    AuditEvent, ClusterDetails, EnrichedEvent, IpIntel, ObjectRef, RuntimeEvent, UserInfo,
};

/// An event time: 2023-11-14T22:13:20Z, in microseconds.
pub const T0: i64 = 1_700_000_000_000_000;

/// An authenticated person or service.
pub fn user(name: &str) -> UserInfo {
    UserInfo {
        username: name.into(),
        groups: vec!["system:authenticated".into()],
        ..UserInfo::default()
    }
}

/// `system:anonymous` in `system:unauthenticated`.
pub fn anonymous() -> UserInfo {
    UserInfo {
        username: "system:anonymous".into(),
        groups: vec!["system:unauthenticated".into()],
        ..UserInfo::default()
    }
}

/// A request by `who` from 10.0.0.7 at [`T0`]: `verb` on `resource[/subresource]` in `namespace`,
/// named `name`, answered `code`.
pub fn request(
    who: &str,
    verb: &str,
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
    code: i32,
) -> AuditEvent {
    let (resource, subresource) = match resource.split_once('/') {
        Some((resource, sub)) => (resource, Some(sub.to_owned())),
        None => (resource, None),
    };
    AuditEvent {
        audit_id: format!("{who}-{verb}-{resource}-{}", name.unwrap_or("")),
        stage: "ResponseComplete".into(),
        event_time_micros: T0,
        verb: verb.into(),
        request_uri: format!("/api/v1/{resource}"),
        user: user(who),
        source_ips: vec!["10.0.0.7".into()],
        object_ref: Some(ObjectRef {
            resource: Some(resource.into()),
            subresource,
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
            ..ObjectRef::default()
        }),
        status_code: Some(code),
        ..AuditEvent::default()
    }
}

/// The cluster every test event is in: `test`, on AWS.
pub fn cluster() -> ClusterDetails {
    ClusterDetails {
        name: "test".into(),
        partition: "aws".into(),
        ..ClusterDetails::default()
    }
}

/// An audit event as enrich leaves it: in [`cluster`], its first source address private when it
/// is in 10.0.0.0/8 and public otherwise, on no list.
pub fn enriched(event: AuditEvent) -> EnrichedEvent {
    EnrichedEvent {
        source_ip: event.source_ips.first().map(|ip| IpIntel {
            ip: ip.clone(),
            scope: if ip.starts_with("10.") {
                "private".into()
            } else {
                "public".into()
            },
            ..IpIntel::default()
        }),
        audit: Some(event),
        cluster: cluster(),
        ..EnrichedEvent::default()
    }
}

/// A runtime event as enrich leaves it: in [`cluster`], a pod's event owned by Deployment `web`.
pub fn enriched_runtime(event: RuntimeEvent) -> EnrichedEvent {
    let in_pod = event.pod_name.is_some();
    EnrichedEvent {
        runtime: Some(event),
        cluster: cluster(),
        workload_owner_kind: in_pod.then(|| "Deployment".to_owned()),
        workload_owner_name: in_pod.then(|| "web".to_owned()),
        ..EnrichedEvent::default()
    }
}

/// The engine with only `detector` (switched on if it ships off), so that another detector's
/// finding on the same event cannot hide a miss. Panics, naming it, when there is no such detector.
#[allow(clippy::panic)]
pub fn only(detector: &str, config: &DetectConfig) -> Engine {
    let mut config = config.clone();
    config.enable.push(detector.to_owned());
    let mut engine = match Engine::build(&config) {
        Ok(engine) => engine,
        Err(error) => panic!("{detector}: {error}"),
    };
    engine.retain(|name| name == detector);
    assert_eq!(
        engine.detector_names(),
        [detector],
        "{detector} is not a detector"
    );
    engine
}
