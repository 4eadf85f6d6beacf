//! A rule's conditions: one field, one operator, a literal; what a missing or many-valued field
//! satisfies.

use regex::Regex;
use vigil_schemas::EnrichedEvent;

use super::fields::{FieldDef, FieldValue};

/// A literal a condition compares with.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Literal {
    Str(String),
    Bool(bool),
    Int(i64),
}

impl Literal {
    pub(super) fn equals(&self, value: &FieldValue<'_>) -> bool {
        match (self, value) {
            (Self::Str(expected), FieldValue::Str(actual)) => expected == actual,
            (Self::Bool(expected), FieldValue::Bool(actual)) => expected == actual,
            (Self::Int(expected), FieldValue::Int(actual)) => expected == actual,
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) enum Operator {
    Eq(Literal),
    Neq(Literal),
    In(Vec<Literal>),
    NotIn(Vec<Literal>),
    Prefix(Vec<String>),
    Suffix(Vec<String>),
    Contains(Vec<String>),
    /// Wildcard patterns (`*`, `?`), the whole value: the meaning `matches` has in suppression.
    Matches(Vec<String>),
    Regex(Regex),
    Exists(bool),
    Gt(f64),
    Lt(f64),
}

#[derive(Debug, Clone)]
pub(super) struct Condition {
    pub(super) field: &'static FieldDef,
    pub(super) operator: Operator,
}

pub(super) fn number(value: &FieldValue<'_>) -> Option<f64> {
    match value {
        #[allow(clippy::cast_precision_loss)]
        FieldValue::Int(number) => Some(*number as f64),
        FieldValue::Str(text) => text.parse().ok(),
        FieldValue::Bool(_) => None,
    }
}

impl Condition {
    pub(super) fn holds(&self, event: &EnrichedEvent) -> bool {
        match &self.operator {
            Operator::Eq(expected) => self.any(event, |value| expected.equals(value)),
            Operator::Neq(expected) => !self.any(event, |value| expected.equals(value)),
            Operator::In(options) => self.any(event, |value| {
                options.iter().any(|option| option.equals(value))
            }),
            Operator::NotIn(options) => !self.any(event, |value| {
                options.iter().any(|option| option.equals(value))
            }),
            Operator::Prefix(options) => {
                self.any_text(event, options, |text, option| text.starts_with(option))
            }
            Operator::Suffix(options) => {
                self.any_text(event, options, |text, option| text.ends_with(option))
            }
            Operator::Contains(options) => {
                self.any_text(event, options, |text, option| text.contains(option))
            }
            Operator::Matches(patterns) => self.any_text(event, patterns, |text, pattern| {
                vigil_schemas::wildcard::wildcard_match(pattern, text)
            }),
            Operator::Regex(pattern) => self.any(event, |value| match value {
                FieldValue::Str(text) => pattern.is_match(text),
                _ => false,
            }),
            Operator::Exists(expected) => self.any(event, |_| true) == *expected,
            Operator::Gt(limit) => {
                self.any(event, |value| number(value).is_some_and(|n| n > *limit))
            }
            Operator::Lt(limit) => {
                self.any(event, |value| number(value).is_some_and(|n| n < *limit))
            }
        }
    }

    /// Some text value of the field passes `test` with some option.
    pub(super) fn any_text(
        &self,
        event: &EnrichedEvent,
        options: &[String],
        test: fn(&str, &str) -> bool,
    ) -> bool {
        self.any(event, |value| match value {
            FieldValue::Str(text) => options.iter().any(|option| test(text, option)),
            _ => false,
        })
    }

    /// Some value of the field passes `test`.
    pub(super) fn any(
        &self,
        event: &EnrichedEvent,
        test: impl Fn(&FieldValue<'_>) -> bool,
    ) -> bool {
        let mut found = false;
        (self.field.extract)(event, &mut |value| {
            if !found && test(&value) {
                found = true;
            }
        });
        found
    }
}
