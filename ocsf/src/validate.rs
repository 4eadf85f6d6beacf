//! Validating an event against its compiled class.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

use crate::schema::{Attribute, ObjectDef, Primitive, Requirement, Schema};

/// What is wrong (or could be better) at one place in an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IssueKind {
    NotAnEvent,
    UnknownClass,
    UnknownAttribute,
    ProfileNotApplied,
    MissingRequired,
    WrongType,
    NotInEnum,
    SiblingMismatch,
    Constraint,
    TypeUid,
    Version,
    Null,
    MissingRecommended,
    Deprecated,
}

impl IssueKind {
    /// Warnings leave an event valid.
    pub const fn is_warning(self) -> bool {
        matches!(self, Self::MissingRecommended | Self::Deprecated)
    }
}

/// One finding of the validator.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Issue {
    pub kind: IssueKind,
    /// Where, as `finding_info.attacks[0].tactic.uid`.
    pub path: String,
    /// The object (or class) the attribute belongs to and the attribute: `resource_details.owner`.
    pub attribute: String,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Everything the validator found in one event.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub issues: Vec<Issue>,
}

impl Report {
    pub fn errors(&self) -> impl Iterator<Item = &Issue> {
        self.issues.iter().filter(|issue| !issue.kind.is_warning())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Issue> {
        self.issues.iter().filter(|issue| issue.kind.is_warning())
    }

    pub fn is_valid(&self) -> bool {
        self.errors().next().is_none()
    }

    fn push(&mut self, kind: IssueKind, path: &str, attribute: String, message: String) {
        self.issues.push(Issue {
            kind,
            path: if path.is_empty() {
                "(event)".to_owned()
            } else {
                path.to_owned()
            },
            attribute,
            message,
        });
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// An enum key for a value: integers by their decimal form, strings as they are.
fn enum_key(value: &Value) -> Option<String> {
    match value {
        Value::Number(number) => number.as_i64().map(|n| n.to_string()),
        Value::String(text) => Some(text.clone()),
        _ => None,
    }
}

struct Walk<'a> {
    schema: &'a Schema,
    profiles: BTreeSet<String>,
    report: Report,
}

impl Walk<'_> {
    fn object(&mut self, path: &str, definition: &ObjectDef, fields: &Map<String, Value>) {
        // `object` is OCSF's open object (`unmapped`, `xattributes`): anything goes inside.
        if definition.name == "object" {
            return;
        }
        for (key, value) in fields {
            let at = join(path, key);
            let Some(attribute) = definition.attributes.get(key) else {
                self.report.push(
                    IssueKind::UnknownAttribute,
                    &at,
                    format!("{}.{key}", definition.name),
                    format!("{} has no attribute {key:?}", definition.name),
                );
                continue;
            };
            if let Some(profile) = &attribute.profile
                && !self.profiles.contains(profile)
            {
                self.report.push(
                    IssueKind::ProfileNotApplied,
                    &at,
                    format!("{}.{key}", definition.name),
                    format!("{key} belongs to the {profile} profile, which metadata.profiles does not list"),
                );
            }
            if let Some(note) = &attribute.deprecated {
                self.report.push(
                    IssueKind::Deprecated,
                    &at,
                    format!("{}.{key}", definition.name),
                    format!("{key} is deprecated: {note}"),
                );
            }
            self.value(&at, definition, attribute, value);
        }
        for attribute in definition.attributes.values() {
            if fields.contains_key(&attribute.name) {
                continue;
            }
            let applies = attribute
                .profile
                .as_ref()
                .is_none_or(|profile| self.profiles.contains(profile));
            let kind = match attribute.requirement {
                Requirement::Required if applies => IssueKind::MissingRequired,
                Requirement::Recommended if applies => IssueKind::MissingRecommended,
                _ => continue,
            };
            self.report.push(
                kind,
                &join(path, &attribute.name),
                format!("{}.{}", definition.name, attribute.name),
                format!(
                    "{} {} is missing",
                    if kind == IssueKind::MissingRequired {
                        "required"
                    } else {
                        "recommended"
                    },
                    attribute.name
                ),
            );
        }
        let present = |names: &[String]| {
            names
                .iter()
                .filter(|name| fields.get(*name).is_some_and(|value| !value.is_null()))
                .count()
        };
        let constraints = [
            (
                &definition.at_least_one,
                "at least one",
                present(&definition.at_least_one) > 0,
            ),
            (
                &definition.just_one,
                "exactly one",
                present(&definition.just_one) == 1,
            ),
        ];
        for (names, how_many, met) in constraints {
            if !names.is_empty() && !met {
                self.report.push(
                    IssueKind::Constraint,
                    path,
                    definition.name.clone(),
                    format!(
                        "{} needs {how_many} of {}",
                        definition.name,
                        names.join(", ")
                    ),
                );
            }
        }
        // A sibling's caption says what its id says (Other leaves the caption to the source).
        for attribute in definition.attributes.values() {
            let (Some(sibling), Some(values), Some(id)) = (
                &attribute.sibling,
                &attribute.enum_values,
                fields.get(&attribute.name).and_then(enum_key),
            ) else {
                continue;
            };
            let Some(caption) = fields.get(sibling).and_then(Value::as_str) else {
                continue;
            };
            if id != "99"
                && let Some(expected) = values.get(&id)
                && expected != caption
            {
                self.report.push(
                    IssueKind::SiblingMismatch,
                    &join(path, sibling),
                    format!("{}.{sibling}", definition.name),
                    format!(
                        "{sibling} is {caption:?} but {} {id} is {expected:?}",
                        attribute.name
                    ),
                );
            }
        }
    }

    fn value(&mut self, path: &str, owner: &ObjectDef, attribute: &Attribute, value: &Value) {
        if attribute.is_array {
            let Value::Array(items) = value else {
                self.wrong(path, owner, attribute, "an array");
                return;
            };
            for (index, item) in items.iter().enumerate() {
                self.single(&format!("{path}[{index}]"), owner, attribute, item);
            }
        } else {
            self.single(path, owner, attribute, value);
        }
    }

    fn wrong(&mut self, path: &str, owner: &ObjectDef, attribute: &Attribute, expected: &str) {
        self.report.push(
            IssueKind::WrongType,
            path,
            format!("{}.{}", owner.name, attribute.name),
            format!(
                "{} must be {expected} ({})",
                attribute.name, attribute.type_name
            ),
        );
    }

    fn single(&mut self, path: &str, owner: &ObjectDef, attribute: &Attribute, value: &Value) {
        if value.is_null() {
            self.report.push(
                IssueKind::Null,
                path,
                format!("{}.{}", owner.name, attribute.name),
                format!("{} is null: leave an attribute out instead", attribute.name),
            );
            return;
        }
        let schema = self.schema;
        if let Some(object) = schema.objects.get(&attribute.type_name) {
            match value {
                Value::Object(fields) => self.object(path, object, fields),
                _ => self.wrong(path, owner, attribute, "an object"),
            }
            return;
        }
        let Some(data_type) = schema.types.get(&attribute.type_name) else {
            return;
        };
        let fits = match data_type.primitive {
            Primitive::String => value.is_string(),
            Primitive::Integer => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
            Primitive::Long => value.is_i64() || value.is_u64(),
            Primitive::Float => value.is_number(),
            Primitive::Boolean => value.is_boolean(),
            Primitive::Json => true,
        };
        if !fits {
            let expected = match data_type.primitive {
                Primitive::String => "a string",
                Primitive::Integer => "a 32-bit integer",
                Primitive::Long => "an integer",
                Primitive::Float => "a number",
                Primitive::Boolean => "true or false",
                Primitive::Json => "JSON",
            };
            self.wrong(path, owner, attribute, expected);
            return;
        }
        if let Some(text) = value.as_str() {
            if let Some(pattern) = &data_type.regex
                && !pattern.is_match(text)
            {
                self.wrong(path, owner, attribute, "in the type's format");
            }
            if let Some(max_len) = data_type.max_len
                && text.len() > max_len
            {
                self.wrong(path, owner, attribute, "no longer than the type allows");
            }
        }
        if let (Some((low, high)), Some(number)) = (data_type.range, value.as_f64())
            && !(low..=high).contains(&number)
        {
            self.wrong(path, owner, attribute, "within the type's range");
        }
        if let Some(values) = &attribute.enum_values {
            let known = enum_key(value).is_some_and(|key| values.contains_key(&key));
            if !known {
                self.report.push(
                    IssueKind::NotInEnum,
                    path,
                    format!("{}.{}", owner.name, attribute.name),
                    format!(
                        "{value} is not one of {}'s values ({})",
                        attribute.name,
                        values.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
    }
}

impl Schema {
    /// Validates one event: its class from `class_uid`, its profiles from `metadata.profiles`.
    pub fn validate(&self, event: &Value) -> Report {
        let mut walk = Walk {
            schema: self,
            profiles: event
                .pointer("/metadata/profiles")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            report: Report::default(),
        };
        let Some(fields) = event.as_object() else {
            walk.report.push(
                IssueKind::NotAnEvent,
                "",
                String::new(),
                "an event is a JSON object".into(),
            );
            return walk.report;
        };
        let class_uid = fields.get("class_uid").and_then(Value::as_i64);
        let Some(class) = class_uid.and_then(|uid| self.class(uid)) else {
            walk.report.push(
                IssueKind::UnknownClass,
                "class_uid",
                "class_uid".into(),
                format!(
                    "class_uid {} is not a class of OCSF {}",
                    fields.get("class_uid").unwrap_or(&Value::Null),
                    self.version
                ),
            );
            return walk.report;
        };
        walk.object("", &class.body, fields);
        let activity = fields.get("activity_id").and_then(Value::as_i64);
        let type_uid = fields.get("type_uid").and_then(Value::as_i64);
        if let (Some(activity), Some(type_uid)) = (activity, type_uid)
            && type_uid != class.class_uid * 100 + activity
        {
            walk.report.push(
                IssueKind::TypeUid,
                "type_uid",
                format!("{}.type_uid", class.name),
                format!(
                    "type_uid {type_uid} is not class_uid * 100 + activity_id ({})",
                    class.class_uid * 100 + activity
                ),
            );
        }
        if let Some(version) = event.pointer("/metadata/version").and_then(Value::as_str)
            && version != self.version
        {
            walk.report.push(
                IssueKind::Version,
                "metadata.version",
                "metadata.version".into(),
                format!(
                    "metadata.version is {version:?}, the schema is {}",
                    self.version
                ),
            );
        }
        walk.report.issues.sort();
        walk.report
    }
}
