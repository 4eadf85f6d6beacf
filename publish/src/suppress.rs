//! Suppression rules, in the style of GuardDuty's filter criteria: each names finding attributes by
//! their GuardDuty JSON path (`type`, `severity`,
//! `resource.kubernetesDetails.kubernetesUserDetails.username`, ...) and a condition on each. A finding
//! that every criterion of a rule matches is published archived (`service.archived = true`), not
//! dropped, as GuardDuty's suppression rules auto-archive; it stays archived when it is updated.
//! Rules are judged on the finding's GuardDuty view whatever format the findings are written in
//! ([`crate::format`]): one set of paths, the one GuardDuty's users already write filters in.
//!
//! ```toml
//! [[suppression]]
//! name = "alice-debugs-shop"
//! description = "Alice's exec into shop pods is routine."
//! [suppression.criterion]
//! "type" = { eq = ["Execution:Kubernetes/ExecInPod"] }
//! "resource.kubernetesDetails.kubernetesUserDetails.username" = { eq = ["alice"] }
//! "service.action.kubernetesApiCallAction.namespace" = { matches = ["shop*"] }
//! ```
//!
//! Operators (GuardDuty's names are accepted too: `Eq`, `Neq`, `Gt`, `Gte`, `Lt`, `Lte`, `Matches`,
//! `NotMatches`): `eq` (any of the values), `neq` (none of them), `gt`/`gte`/`lt`/`lte` (numbers),
//! `matches`/`not_matches` (`*` and `?` wildcards). Where a path crosses a list (containers, source
//! IPs), any element may match `eq`, `matches` and the comparisons; `neq` and `not_matches` need every
//! element to pass. A missing attribute matches only `neq` and `not_matches`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// A literal in a condition.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Number(f64),
    Text(String),
}

impl Scalar {
    fn equals(&self, value: &Value) -> bool {
        match (self, value) {
            (Self::Bool(expected), Value::Bool(actual)) => expected == actual,
            (Self::Number(expected), Value::Number(actual)) => {
                actual.as_f64().is_some_and(|actual| actual == *expected)
            }
            (Self::Text(expected), Value::String(actual)) => expected == actual,
            // `severity = { eq = ["8"] }` and `count = { eq = [1] }` both read naturally.
            (Self::Text(expected), Value::Number(actual)) => {
                expected.parse::<f64>().ok() == actual.as_f64()
            }
            _ => false,
        }
    }
}

/// The condition on one attribute.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(default, alias = "Eq", alias = "Equals")]
    pub eq: Option<Vec<Scalar>>,
    #[serde(default, alias = "Neq", alias = "NotEquals")]
    pub neq: Option<Vec<Scalar>>,
    #[serde(default, alias = "Gt", alias = "GreaterThan")]
    pub gt: Option<f64>,
    #[serde(default, alias = "Gte", alias = "GreaterThanOrEqual")]
    pub gte: Option<f64>,
    #[serde(default, alias = "Lt", alias = "LessThan")]
    pub lt: Option<f64>,
    #[serde(default, alias = "Lte", alias = "LessThanOrEqual")]
    pub lte: Option<f64>,
    #[serde(default, alias = "Matches")]
    pub matches: Option<Vec<String>>,
    #[serde(default, alias = "NotMatches")]
    pub not_matches: Option<Vec<String>>,
}

/// One suppression rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressionRule {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Attribute path → condition. Every one must match.
    pub criterion: BTreeMap<String, Condition>,
}

/// Top-level attributes of a GuardDuty finding that criteria can start from.
const TOP_LEVEL: [&str; 14] = [
    "accountId",
    "arn",
    "createdAt",
    "description",
    "id",
    "partition",
    "region",
    "resource",
    "schemaVersion",
    "service",
    "severity",
    "title",
    "type",
    "updatedAt",
];

pub use vigil_schemas::wildcard::wildcard_match;

/// Every value at a dotted path, lists flattened at each step.
fn values_at<'a>(json: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![json];
    for segment in path.split('.') {
        let mut next = Vec::new();
        for value in current {
            let expand = |value: &'a Value, out: &mut Vec<&'a Value>| match value {
                Value::Array(items) => out.extend(items.iter()),
                other => out.push(other),
            };
            match value {
                Value::Object(map) => {
                    if let Some(child) = map.get(segment) {
                        expand(child, &mut next);
                    }
                }
                Value::Array(items) => {
                    for item in items {
                        if let Some(child) = item.get(segment) {
                            expand(child, &mut next);
                        }
                    }
                }
                _ => {}
            }
        }
        current = next;
    }
    current
        .into_iter()
        .flat_map(|value| match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        })
        .collect()
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

impl Condition {
    fn operator_count(&self) -> usize {
        [
            self.eq.is_some(),
            self.neq.is_some(),
            self.gt.is_some(),
            self.gte.is_some(),
            self.lt.is_some(),
            self.lte.is_some(),
            self.matches.is_some(),
            self.not_matches.is_some(),
        ]
        .iter()
        .filter(|set| **set)
        .count()
    }

    /// Every operator given must hold.
    pub fn holds(&self, values: &[&Value]) -> bool {
        let numbers = || values.iter().filter_map(|value| value.as_f64());
        let texts = || values.iter().filter_map(|value| text_of(value));
        self.eq.as_ref().is_none_or(|options| {
            values
                .iter()
                .any(|value| options.iter().any(|option| option.equals(value)))
        }) && self.neq.as_ref().is_none_or(|options| {
            !values
                .iter()
                .any(|value| options.iter().any(|option| option.equals(value)))
        }) && self.gt.is_none_or(|limit| numbers().any(|n| n > limit))
            && self.gte.is_none_or(|limit| numbers().any(|n| n >= limit))
            && self.lt.is_none_or(|limit| numbers().any(|n| n < limit))
            && self.lte.is_none_or(|limit| numbers().any(|n| n <= limit))
            && self.matches.as_ref().is_none_or(|patterns| {
                texts().any(|text| patterns.iter().any(|p| wildcard_match(p, &text)))
            })
            && self.not_matches.as_ref().is_none_or(|patterns| {
                !texts().any(|text| patterns.iter().any(|p| wildcard_match(p, &text)))
            })
    }
}

impl SuppressionRule {
    /// Every criterion matches the finding's GuardDuty JSON.
    pub fn matches(&self, finding: &Value) -> bool {
        self.criterion
            .iter()
            .all(|(path, condition)| condition.holds(&values_at(finding, path)))
    }
}

/// A suppression rule that could never have been meant, with the rule's name (or position) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SuppressionError(String);

/// The configured rules, checked once.
#[derive(Debug, Clone, Default)]
pub struct Suppression {
    rules: Vec<SuppressionRule>,
}

impl Suppression {
    /// Refuses rules that could never have been meant: no criterion, a condition without an operator,
    /// an attribute outside the finding, a name used twice.
    pub fn new(rules: Vec<SuppressionRule>) -> Result<Self, SuppressionError> {
        Self::checked(&rules).map_err(SuppressionError)?;
        Ok(Self { rules })
    }

    fn checked(rules: &[SuppressionRule]) -> Result<(), String> {
        for (index, rule) in rules.iter().enumerate() {
            let name = &rule.name;
            if name.trim().is_empty() {
                return Err(format!("suppression rule #{} has no name", index + 1));
            }
            if rules
                .iter()
                .take(index)
                .any(|earlier| &earlier.name == name)
            {
                return Err(format!("suppression rule {name:?} is defined twice"));
            }
            if rule.criterion.is_empty() {
                return Err(format!(
                    "suppression rule {name:?} has no criterion: it would archive every finding"
                ));
            }
            for (path, condition) in &rule.criterion {
                let top = path.split('.').next().unwrap_or_default();
                if !TOP_LEVEL.contains(&top) {
                    return Err(format!(
                        "suppression rule {name:?}: {path:?} is not a finding attribute (paths start with one of {})",
                        TOP_LEVEL.join(", ")
                    ));
                }
                if condition.operator_count() == 0 {
                    return Err(format!(
                        "suppression rule {name:?}: the condition on {path:?} has no operator (eq, neq, gt, gte, lt, lte, matches, not_matches)"
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// The first rule that suppresses this finding, by name.
    pub fn matching(&self, finding: &Value) -> Option<&str> {
        self.rules
            .iter()
            .find(|rule| rule.matches(finding))
            .map(|rule| rule.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_cross_lists() {
        let finding = json!({"resource": {"kubernetesDetails": {"kubernetesWorkloadDetails": {
            "containers": [{"image": "nginx"}, {"image": "busybox"}]}}}});
        let values = values_at(
            &finding,
            "resource.kubernetesDetails.kubernetesWorkloadDetails.containers.image",
        );
        assert_eq!(values, [&json!("nginx"), &json!("busybox")]);
        assert!(values_at(&finding, "resource.nothing.here").is_empty());
    }
}
