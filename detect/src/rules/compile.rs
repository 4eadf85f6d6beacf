//! One condition of a rule file compiled: its operator (named lists expanded, patterns checked),
//! its field held to the rule's source and its literals to the field's values.

use regex::Regex;
use serde::Deserialize;

use super::Source;
use super::condition::{Condition, Literal, Operator};
use super::fields::{FieldDef, FieldSource, domain_of, field_named};

/// Named lists by name.
pub(super) type Lists = std::collections::HashMap<String, Vec<String>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCondition {
    field: String,
    eq: Option<toml::Value>,
    neq: Option<toml::Value>,
    #[serde(rename = "in")]
    in_list: Option<toml::Value>,
    not_in: Option<toml::Value>,
    /// Sigma's modifiers are accepted under their own names (`startswith`, `endswith`, `re`).
    #[serde(alias = "startswith")]
    prefix: Option<OneOrMany>,
    #[serde(alias = "endswith")]
    suffix: Option<OneOrMany>,
    contains: Option<OneOrMany>,
    matches: Option<OneOrMany>,
    #[serde(alias = "re")]
    regex: Option<String>,
    exists: Option<bool>,
    gt: Option<f64>,
    lt: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(super) fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

pub(super) fn literal(value: toml::Value) -> Result<Literal, String> {
    match value {
        toml::Value::String(text) => Ok(Literal::Str(text)),
        toml::Value::Boolean(flag) => Ok(Literal::Bool(flag)),
        toml::Value::Integer(number) => Ok(Literal::Int(number)),
        other => Err(format!(
            "compare with a string, a boolean or an integer, not {}",
            other.type_str()
        )),
    }
}

/// Values of a list operator, with `@name` entries replaced by the named list's items.
fn expanded(values: Vec<toml::Value>, lists: &Lists) -> Result<Vec<toml::Value>, String> {
    let mut out = Vec::with_capacity(values.len());
    for value in values {
        match value.as_str().and_then(|text| text.strip_prefix('@')) {
            Some(name) => {
                let items = lists.get(name).ok_or_else(|| {
                    format!("no list named {name:?} (define it with [[list]] name = {name:?})")
                })?;
                out.extend(items.iter().cloned().map(toml::Value::String));
            }
            None => out.push(value),
        }
    }
    Ok(out)
}

/// A list operator's values: an array, or one value (`in = "@shell_binaries"`).
fn values_of(value: toml::Value, lists: &Lists) -> Result<Vec<toml::Value>, String> {
    let values = match value {
        toml::Value::Array(values) => values,
        one => vec![one],
    };
    expanded(values, lists)
}

/// A string operator's values (`prefix`, `suffix`, `contains`), lists expanded.
fn strings_of(values: OneOrMany, lists: &Lists) -> Result<Vec<String>, String> {
    let values = values
        .into_vec()
        .into_iter()
        .map(toml::Value::String)
        .collect();
    Ok(expanded(values, lists)?
        .into_iter()
        .filter_map(|value| value.as_str().map(str::to_owned))
        .collect())
}

/// Syntax only a regular expression has: a `matches` written with it was meant as `regex`, and
/// would silently never match as a wildcard.
fn looks_like_a_regex(pattern: &str) -> bool {
    pattern.contains(['^', '$', '\\', '(', ')', '[', ']', '{', '}', '|', '+'])
        || pattern.contains(".*")
}

pub(super) fn condition(raw: RawCondition, lists: &Lists) -> Result<Condition, String> {
    let field = field_named(&raw.field).ok_or_else(|| {
        format!(
            "unknown field {:?} (`vigil rules fields` lists them)",
            raw.field
        )
    })?;
    let mut operators = Vec::new();
    if let Some(value) = raw.eq {
        operators.push(Operator::Eq(literal(value)?));
    }
    if let Some(value) = raw.neq {
        operators.push(Operator::Neq(literal(value)?));
    }
    if let Some(values) = raw.in_list {
        operators.push(Operator::In(
            values_of(values, lists)?
                .into_iter()
                .map(literal)
                .collect::<Result<_, _>>()?,
        ));
    }
    if let Some(values) = raw.not_in {
        operators.push(Operator::NotIn(
            values_of(values, lists)?
                .into_iter()
                .map(literal)
                .collect::<Result<_, _>>()?,
        ));
    }
    if let Some(values) = raw.prefix {
        operators.push(Operator::Prefix(strings_of(values, lists)?));
    }
    if let Some(values) = raw.suffix {
        operators.push(Operator::Suffix(strings_of(values, lists)?));
    }
    if let Some(values) = raw.contains {
        operators.push(Operator::Contains(strings_of(values, lists)?));
    }
    if let Some(values) = raw.matches {
        let patterns = strings_of(values, lists)?;
        if let Some(pattern) = patterns.iter().find(|pattern| looks_like_a_regex(pattern)) {
            return Err(format!(
                "matches = {pattern:?}: `matches` is a wildcard pattern over the whole value (`*` any run of characters, `?` one), as in suppression rules; for a regular expression write regex = {pattern:?}"
            ));
        }
        operators.push(Operator::Matches(patterns));
    }
    if let Some(pattern) = raw.regex {
        let compiled =
            Regex::new(&pattern).map_err(|error| format!("bad pattern {pattern:?}: {error}"))?;
        operators.push(Operator::Regex(compiled));
    }
    if let Some(flag) = raw.exists {
        operators.push(Operator::Exists(flag));
    }
    if let Some(limit) = raw.gt {
        operators.push(Operator::Gt(limit));
    }
    if let Some(limit) = raw.lt {
        operators.push(Operator::Lt(limit));
    }
    match operators.len() {
        1 => Ok(Condition {
            field,
            operator: operators.remove(0),
        }),
        0 => Err(format!(
            "condition on {:?} has no operator (eq, neq, in, not_in, prefix, suffix, contains, matches, regex, exists, gt, lt)",
            raw.field
        )),
        _ => Err(format!(
            "condition on {:?} has several operators; write one condition each",
            raw.field
        )),
    }
}

/// A field the rule's source has: an audit rule cannot read a process, nor a runtime rule a verb.
pub(super) fn of_source(
    field: &'static FieldDef,
    source: Source,
) -> Result<&'static FieldDef, String> {
    let rule_source = match source {
        Source::Audit => FieldSource::Audit,
        Source::Runtime => FieldSource::Runtime,
    };
    match FieldSource::of(field) {
        FieldSource::Both => Ok(field),
        own if own == rule_source => Ok(field),
        own => Err(format!(
            "field {:?} is read from {} events, and this rule's source is {}{}",
            field.name,
            own.label(),
            rule_source.label(),
            if own == FieldSource::Runtime {
                " (write source = \"runtime\")"
            } else {
                ""
            }
        )),
    }
}

/// A condition whose field belongs to the rule's source and whose literals are values the field
/// can hold, where its values are a closed set.
pub(super) fn checked(condition: Condition, source: Source) -> Result<Condition, String> {
    of_source(condition.field, source)?;
    let Some(domain) = domain_of(condition.field.name) else {
        return Ok(condition);
    };
    let literals: &[Literal] = match &condition.operator {
        Operator::Eq(literal) | Operator::Neq(literal) => std::slice::from_ref(literal),
        Operator::In(literals) | Operator::NotIn(literals) => literals,
        _ => &[],
    };
    for literal in literals {
        let Literal::Str(value) = literal else {
            continue;
        };
        if !domain.contains(&value.as_str()) {
            let nearest = domain
                .iter()
                .map(|known| (edit_distance(known, value), *known))
                .min()
                .filter(|(distance, _)| *distance <= 3)
                .map(|(_, known)| format!(" (did you mean {known:?}?)"))
                .unwrap_or_default();
            return Err(format!(
                "{:?} is not a value of {}{nearest}; it holds one of: {}",
                value,
                condition.field.name,
                domain.join(", ")
            ));
        }
    }
    Ok(condition)
}

/// Levenshtein distance, for suggesting the value a typo meant.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row.first().copied().unwrap_or(i);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or(usize::MAX);
            let left = row.get(j).copied().unwrap_or(usize::MAX);
            let cost = usize::from(ca != *cb);
            let value = (diagonal + cost).min(above + 1).min(left + 1);
            diagonal = above;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = value;
            }
        }
    }
    row.last().copied().unwrap_or(0)
}
