//! The compiler and validator against the OCSF 1.6.0 schema files: events that must pass and events
//! that must fail, one fault each.
#![allow(clippy::panic)]

use serde_json::{Value, json};
use vigil_ocsf::{IssueKind, Schema};

fn schema() -> Schema {
    match Schema::reference() {
        Ok(schema) => schema,
        Err(message) => panic!("{message}"),
    }
}

/// A small valid Detection Finding.
fn minimal() -> Value {
    json!({
        "class_uid": 2004, "class_name": "Detection Finding",
        "category_uid": 2, "category_name": "Findings",
        "activity_id": 1, "activity_name": "Create", "type_uid": 200401,
        "severity_id": 4, "severity": "High",
        "time": 1_700_000_000_000_i64,
        "metadata": {"version": "1.6.0", "product": {"name": "Test", "vendor_name": "Test"}},
        "finding_info": {"uid": "f-1", "title": "A finding"},
    })
}

fn kinds(event: &Value) -> Vec<(IssueKind, String)> {
    schema()
        .validate(event)
        .errors()
        .map(|issue| (issue.kind, issue.path.clone()))
        .collect()
}

fn with(mut event: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    if let Some(Value::Object(fields)) = event.pointer_mut(parent) {
        fields.insert(key.to_owned(), value);
    }
    event
}

fn without(mut event: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    if let Some(Value::Object(fields)) = event.pointer_mut(parent) {
        fields.remove(key);
    }
    event
}

#[test]
fn the_schema_compiles_every_class_and_object() {
    let schema = schema();
    let (classes, objects) = schema.sizes();
    assert!(classes > 60, "{classes} classes");
    assert!(objects > 150, "{objects} objects");
    let class = schema.class(2004).map(|class| class.name.as_str());
    assert_eq!(class, Some("detection_finding"));
    assert_eq!(schema.version, "1.6.0");
}

#[test]
fn the_class_is_compiled_from_its_parents_profiles_and_dictionary() {
    let schema = schema();
    let Some(class) = schema.class(2004) else {
        panic!("no class 2004")
    };
    let attribute = |name: &str| {
        class
            .body
            .attributes
            .get(name)
            .unwrap_or_else(|| panic!("detection_finding has no {name}"))
    };
    // From base_event, finding and detection_finding, merged.
    let activities: Vec<&str> = attribute("activity_id")
        .enum_values
        .iter()
        .flatten()
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(activities, ["0", "1", "2", "3", "99"]);
    assert_eq!(attribute("finding_info").type_name, "finding_info");
    assert!(attribute("evidences").is_array);
    // The cloud profile's attribute, tagged; the class's own confidence_id is not the profile's.
    assert_eq!(attribute("cloud").profile.as_deref(), Some("cloud"));
    assert_eq!(attribute("confidence_id").profile, None);
    let status = attribute("status_id")
        .enum_values
        .clone()
        .unwrap_or_default();
    assert_eq!(status.get("3").map(String::as_str), Some("Suppressed"));
    // An object extends its parent: process takes name and pid from process_entity.
    let process = schema.object("process").map(|process| &process.attributes);
    assert!(process.is_some_and(|a| a.contains_key("pid") && a.contains_key("parent_process")));
}

#[test]
fn a_well_formed_finding_has_no_errors() {
    assert_eq!(kinds(&minimal()), []);
    let full = with(
        with(
            minimal(),
            "/metadata/profiles",
            json!(["cloud", "container"]),
        ),
        "/cloud",
        json!({"provider": "AWS", "region": "eu-west-1", "account": {"uid": "123456789012"}}),
    );
    let full = with(
        full,
        "/evidences",
        json!([{"process": {"pid": 42, "name": "sh", "container": {"uid": "abc"},
                 "lineage": ["/bin/bash"]},
                "src_endpoint": {"ip": "203.0.113.9", "port": 443}}]),
    );
    assert_eq!(kinds(&full), []);
}

#[test]
fn a_missing_required_attribute_is_an_error() {
    assert_eq!(
        kinds(&without(minimal(), "/finding_info/uid")),
        [(IssueKind::MissingRequired, "finding_info.uid".to_owned())]
    );
    assert_eq!(
        kinds(&without(minimal(), "/time")),
        [(IssueKind::MissingRequired, "time".to_owned())]
    );
}

#[test]
fn an_unknown_attribute_is_an_error() {
    assert_eq!(
        kinds(&with(minimal(), "/finding_info/severity", json!("High"))),
        [(
            IssueKind::UnknownAttribute,
            "finding_info.severity".to_owned()
        )]
    );
}

#[test]
fn a_profile_attribute_needs_its_profile() {
    let event = with(minimal(), "/cloud", json!({"provider": "AWS"}));
    assert_eq!(
        kinds(&event),
        [(IssueKind::ProfileNotApplied, "cloud".to_owned())]
    );
    // Applied, the profile's required attribute is required.
    let event = with(minimal(), "/metadata/profiles", json!(["cloud"]));
    assert_eq!(
        kinds(&event),
        [(IssueKind::MissingRequired, "cloud".to_owned())]
    );
}

#[test]
fn values_outside_an_enum_are_errors() {
    assert_eq!(
        kinds(&with(minimal(), "/status_id", json!(7))),
        [(IssueKind::NotInEnum, "status_id".to_owned())]
    );
    let event = with(
        minimal(),
        "/finding_info/analytic",
        json!({"name": "x", "type_id": 12}),
    );
    assert_eq!(
        kinds(&event),
        [(
            IssueKind::NotInEnum,
            "finding_info.analytic.type_id".to_owned()
        )]
    );
}

#[test]
fn a_caption_that_disagrees_with_its_id_is_an_error() {
    assert_eq!(
        kinds(&with(minimal(), "/severity", json!("Low"))),
        [(IssueKind::SiblingMismatch, "severity".to_owned())]
    );
}

#[test]
fn type_uid_follows_class_and_activity() {
    // 200402 is a valid type_uid, but not for activity 1.
    let errors = kinds(&with(minimal(), "/type_uid", json!(200402)));
    assert!(errors.contains(&(IssueKind::TypeUid, "type_uid".to_owned())));
}

#[test]
fn wrong_types_and_formats_are_errors() {
    assert_eq!(
        kinds(&with(minimal(), "/time", json!("2024-01-01T00:00:00Z"))),
        [(IssueKind::WrongType, "time".to_owned())]
    );
    let event = with(
        minimal(),
        "/evidences",
        json!([{"src_endpoint": {"ip": "not-an-address", "port": 70000}}]),
    );
    assert_eq!(
        kinds(&event),
        [
            (
                IssueKind::WrongType,
                "evidences[0].src_endpoint.ip".to_owned()
            ),
            (
                IssueKind::WrongType,
                "evidences[0].src_endpoint.port".to_owned()
            ),
        ]
    );
    assert_eq!(
        kinds(&with(minimal(), "/count", json!(null))),
        [(IssueKind::Null, "count".to_owned())]
    );
}

#[test]
fn constraints_are_checked() {
    // An evidence needs at least one of its artefacts; an attack one of tactic or technique.
    let event = with(minimal(), "/evidences", json!([{"name": "nothing"}]));
    assert_eq!(
        kinds(&event),
        [(IssueKind::Constraint, "evidences[0]".to_owned())]
    );
    let event = with(
        minimal(),
        "/finding_info/attacks",
        json!([{"version": "16"}]),
    );
    assert_eq!(
        kinds(&event),
        [(IssueKind::Constraint, "finding_info.attacks[0]".to_owned())]
    );
}

#[test]
fn the_version_must_be_the_schemas() {
    assert_eq!(
        kinds(&with(minimal(), "/metadata/version", json!("1.1.0"))),
        [(IssueKind::Version, "metadata.version".to_owned())]
    );
}

#[test]
fn missing_recommended_attributes_are_warnings() {
    let report = schema().validate(&minimal());
    assert!(report.is_valid());
    let warned: Vec<&str> = report
        .warnings()
        .map(|issue| issue.attribute.as_str())
        .collect();
    for expected in [
        "detection_finding.status_id",
        "detection_finding.evidences",
        "finding_info.analytic",
    ] {
        assert!(warned.contains(&expected), "{expected} not in {warned:?}");
    }
}

#[test]
fn observable_types_come_from_the_schema() {
    let event = with(
        minimal(),
        "/observables",
        json!([{"name": "src_endpoint.ip", "type_id": 2, "value": "203.0.113.9"}]),
    );
    assert_eq!(kinds(&event), []);
    let event = with(
        minimal(),
        "/observables",
        json!([{"name": "x", "type_id": 4242, "value": "y"}]),
    );
    assert_eq!(
        kinds(&event),
        [(IssueKind::NotInEnum, "observables[0].type_id".to_owned())]
    );
}
