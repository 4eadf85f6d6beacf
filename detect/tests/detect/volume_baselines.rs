//! Volume baselines: a burst of secret reads, permission checks or denied requests far above a
//! principal's own learned hourly habit is an explained anomaly; the habit itself, a burst while
//! learning and a busy principal's busy hour are not; a replay after a crash is not counted twice.

use vigil_detect::{DetectConfig, Engine, StateEntry};
use vigil_schemas::{
    AuditEvent, ClusterDetails, Detection, EnrichedEvent, IpIntel, ObjectRef, UserInfo,
};

const DAY: i64 = 86_400_000_000;
const HOUR: i64 = 3_600_000_000;
const SECOND: i64 = 1_000_000;
/// 2024-03-04, a Monday, 00:00 UTC.
const MONDAY: i64 = 1_709_510_400_000_000;
const APP: &str = "system:serviceaccount:shop:web";

fn call(who: &str, verb: &str, resource: &str, status: i32, at: i64) -> EnrichedEvent {
    EnrichedEvent {
        audit: Some(AuditEvent {
            audit_id: format!("{who}-{verb}-{resource}-{at}"),
            stage: "ResponseComplete".into(),
            event_time_micros: at,
            verb: verb.into(),
            request_uri: format!("/api/v1/namespaces/shop/{resource}"),
            user: UserInfo {
                username: who.into(),
                groups: vec!["system:authenticated".into()],
                ..UserInfo::default()
            },
            source_ips: vec!["10.0.1.20".into()],
            user_agent: Some("web/1.4.0 (linux/amd64)".into()),
            object_ref: Some(ObjectRef {
                resource: Some(resource.into()),
                namespace: Some("shop".into()),
                name: Some("db-credentials".into()),
                ..ObjectRef::default()
            }),
            status_code: Some(status),
            ..AuditEvent::default()
        }),
        source_ip: Some(IpIntel {
            ip: "10.0.1.20".into(),
            scope: "private".into(),
            ..IpIntel::default()
        }),
        cluster: ClusterDetails {
            name: "prod".into(),
            ..ClusterDetails::default()
        },
        ..EnrichedEvent::default()
    }
}

fn engine() -> Engine {
    let mut engine = Engine::build(&DetectConfig::default()).unwrap();
    engine.retain(|name| name == "volume_baselines");
    engine
}

/// Ten days of the app's habit: its secret read at 03:00 and 15:00, `per_hour` of them each time.
fn habit(engine: &mut Engine, per_hour: i64) -> Vec<Detection> {
    let mut out = Vec::new();
    for day in 0..10 {
        for hour in [3, 15] {
            for index in 0..per_hour {
                let at = MONDAY + day * DAY + hour * HOUR + index * SECOND;
                engine.process(&call(APP, "get", "secrets", 200, at), &mut out);
            }
        }
    }
    out
}

/// `count` calls one second apart from `at`.
fn burst(
    engine: &mut Engine,
    verb: &str,
    resource: &str,
    status: i32,
    at: i64,
    count: i64,
) -> Vec<Detection> {
    let mut out = Vec::new();
    for index in 0..count {
        engine.process(
            &call(APP, verb, resource, status, at + index * SECOND),
            &mut out,
        );
    }
    out
}

const AFTER_LEARNING: i64 = MONDAY + 10 * DAY + 11 * HOUR;

#[test]
fn a_burst_of_secret_reads_far_above_the_habit_is_one_explained_finding() {
    let mut engine = engine();
    assert!(habit(&mut engine, 2).is_empty(), "the habit raises nothing");
    let found = burst(&mut engine, "get", "secrets", 200, AFTER_LEARNING, 60);
    assert_eq!(found.len(), 1, "once an hour: {found:#?}");
    let finding = &found[0];
    assert_eq!(
        finding.finding_type,
        "CredentialAccess:Kubernetes/AnomalousBehavior.SecretsAccessedBurst"
    );
    let anomaly = &finding.anomaly[0];
    assert_eq!(anomaly.dimension, "secretReadsPerHour");
    assert!(
        anomaly.observed.starts_with("20 in the hour from"),
        "{anomaly:?}"
    );
    assert!(
        anomaly.baseline.contains(&"busiest hour: 2".to_owned()),
        "{anomaly:?}"
    );
    assert!(
        finding.description.contains("busiest hour held 2"),
        "{}",
        finding.description
    );
    // The next hour is a new hour: a burst that goes on is counted again.
    let later = burst(
        &mut engine,
        "get",
        "secrets",
        200,
        AFTER_LEARNING + HOUR,
        25,
    );
    assert_eq!(later.len(), 1);
}

#[test]
fn the_habit_a_burst_while_learning_and_a_busy_principals_busy_hour_raise_nothing() {
    // While learning: a burst on the second day is part of what is learned.
    let mut engine = engine();
    let early = burst(&mut engine, "get", "secrets", 200, MONDAY + DAY, 60);
    assert!(early.is_empty(), "{early:#?}");
    // A principal that reads fifteen an hour: forty is under four times its busiest hour.
    let mut busy = self::engine();
    assert!(habit(&mut busy, 15).is_empty());
    let found = burst(&mut busy, "get", "secrets", 200, AFTER_LEARNING, 40);
    assert!(found.is_empty(), "{found:#?}");
    // Other calls are not counted at all.
    let mut quiet = self::engine();
    habit(&mut quiet, 2);
    let found = burst(&mut quiet, "list", "pods", 200, AFTER_LEARNING, 80);
    assert!(found.is_empty());
}

#[test]
fn permission_checks_and_denied_requests_have_their_own_bursts() {
    let mut engine = engine();
    habit(&mut engine, 2);
    let checks = burst(
        &mut engine,
        "create",
        "selfsubjectrulesreviews",
        201,
        AFTER_LEARNING,
        12,
    );
    assert_eq!(checks.len(), 1);
    assert_eq!(
        checks[0].finding_type,
        "Discovery:Kubernetes/AnomalousBehavior.PermissionCheckedBurst"
    );
    let denied = burst(
        &mut engine,
        "list",
        "secrets",
        403,
        AFTER_LEARNING + 60 * SECOND,
        25,
    );
    assert_eq!(denied.len(), 1);
    assert_eq!(
        denied[0].finding_type,
        "Discovery:Kubernetes/AnomalousBehavior.DeniedRequestsBurst"
    );
    // A few refusals (a mistyped namespace) stay under the floor.
    let mut other = self::engine();
    habit(&mut other, 2);
    assert!(burst(&mut other, "get", "pods", 403, AFTER_LEARNING, 5).is_empty());
}

#[test]
fn a_replay_after_a_restart_is_not_counted_twice() {
    // A principal that reads ten an hour: a burst is forty. The profile is checkpointed when the
    // hour opens and every 32 counted reads, so after 39 reads the checkpoint holds the first 33.
    let mut first = engine();
    habit(&mut first, 10);
    assert!(burst(&mut first, "get", "secrets", 200, AFTER_LEARNING, 39).is_empty());
    let mut state: Vec<StateEntry> = Vec::new();
    first.drain_state(&mut state);
    let mut latest = std::collections::BTreeMap::new();
    for entry in state {
        latest.insert(entry.key, entry.value);
    }
    let mut second = engine();
    for (key, value) in &latest {
        assert!(second.restore(key, value.as_deref()), "{key}");
    }
    // The input after the last committed offset comes again, from the 21st read on: the thirteen
    // the checkpoint holds are not counted again (counted, they would make a burst now), the six
    // after it are counted as they were the first time, and the fortieth read fires, as without
    // the crash.
    let mut out = Vec::new();
    for index in 20..39 {
        second.process(
            &call(APP, "get", "secrets", 200, AFTER_LEARNING + index * SECOND),
            &mut out,
        );
    }
    assert!(out.is_empty(), "{out:#?}");
    second.process(
        &call(APP, "get", "secrets", 200, AFTER_LEARNING + 39 * SECOND),
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert!(
        out[0].anomaly[0].observed.starts_with("40 in the hour"),
        "{:?}",
        out[0].anomaly
    );
}
