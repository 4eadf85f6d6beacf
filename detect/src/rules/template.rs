//! Titles and descriptions with `{field}` placeholders, parsed once at load time.

use vigil_schemas::EnrichedEvent;

use super::fields::{FieldDef, FieldValue, field_named};

/// One part of a title or description template.
#[derive(Debug, Clone)]
pub(super) enum Part {
    Text(String),
    Field(&'static FieldDef),
}

#[derive(Debug, Clone)]
pub(super) struct Template(Vec<Part>);

pub(super) fn render_field(field: &FieldDef, event: &EnrichedEvent) -> String {
    let mut values = Vec::new();
    (field.extract)(event, &mut |value| values.push(value));
    if values.is_empty() {
        return "-".to_owned();
    }
    values
        .iter()
        .map(FieldValue::text)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Template {
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(index) = rest.find(['{', '}']) {
            let (before, after) = rest.split_at(index);
            literal.push_str(before);
            if let Some(after) = after.strip_prefix("{{") {
                literal.push('{');
                rest = after;
            } else if let Some(after) = after.strip_prefix("}}") {
                literal.push('}');
                rest = after;
            } else if let Some(after) = after.strip_prefix('{') {
                let Some((name, after)) = after.split_once('}') else {
                    return Err(format!("unclosed placeholder in {text:?}"));
                };
                let field = field_named(name.trim())
                    .ok_or_else(|| format!("unknown field {{{name}}} in {text:?}"))?;
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(Part::Field(field));
                rest = after;
            } else {
                return Err(format!("a lone '}}' in {text:?} (write '}}}}')"));
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self(parts))
    }

    /// The rendering, unless every field in it is missing (a context entry is then left out).
    pub(super) fn render_present(&self, event: &EnrichedEvent) -> Option<String> {
        let mut fields = 0;
        let mut present = 0;
        for part in &self.0 {
            if let Part::Field(field) = part {
                fields += 1;
                let mut found = false;
                (field.extract)(event, &mut |_| found = true);
                if found {
                    present += 1;
                }
            }
        }
        (fields == 0 || present > 0).then(|| self.render(event))
    }

    pub(super) fn render(&self, event: &EnrichedEvent) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field(field) => out.push_str(&render_field(field, event)),
            }
        }
        out
    }
}
