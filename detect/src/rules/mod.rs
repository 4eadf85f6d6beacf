//! Declarative rules: detections written as data (TOML) instead of code. The simple built-in rules
//! ship in this form (`rules/builtin.toml`), and users add their own files the same way.
//!
//! ```toml
//! [[rule]]
//! id = "exec_in_pod"                        # snake_case, unique across all rule files
//! type = "Execution:Kubernetes/ExecInPod"   # ThreatPurpose:Resource/Name, as GuardDuty names types
//! severity = "Low"                          # Low, Medium, High, Critical, or a number 1.0-10.0
//! title = "Command executed in pod {object}."
//! description = "{user.username} ran a command in pod {object} of cluster {cluster.name}."
//! key = ["user.username", "object"]         # aggregation key (this is the default)
//! enabled = true                            # false: shipped off, switched on in the config file
//! tags = ["T1609"]                          # MITRE ATT&CK ids, into the findings' additionalInfo
//! references = ["https://attack.mitre.org/techniques/T1609/"]
//! signal = false                            # true: a weak signal, no finding; only correlated
//! when = [                                  # every condition must hold
//!   { field = "object_ref.subresource", eq = "exec" },
//!   { field = "succeeded", eq = true },
//! ]
//! any = [ ... ]                             # optional: at least one must hold
//! unless = [                                # no condition may hold
//!   { field = "object_ref.namespace", eq = "kube-system" },
//! ]
//! ```
//!
//! A condition names one field ([`FIELDS`]) and one operator: `eq`, `neq`, `in`, `not_in`, `prefix`,
//! `suffix`, `contains`, `matches` (each takes one string or a list, any may match; `matches` is a
//! wildcard pattern over the whole value, `*` and `?`, as in suppression rules), `regex` (a regular
//! expression, found anywhere unless anchored), `exists` (true or false), `gt`, `lt` (numbers).
//! Sigma's spellings `startswith`, `endswith` and `re` are accepted, and fields may be named as the
//! audit JSON, Sigma or Falco name them ([`FIELD_ALIASES`]). Fields can hold several values (a
//! user's groups, a pod's images): a positive operator holds when any value satisfies it, `neq` and
//! `not_in` when no value equals. A missing field satisfies only `neq`, `not_in` and `exists = false`.
//! Titles and descriptions take `{field}` placeholders. Every mistake is reported at load time with
//! the file and line.

mod compile;
mod condition;
mod fields;
mod load;
mod template;

pub use fields::{FIELD_ALIASES, FIELDS, FieldDef, FieldValue};
pub use load::{
    BUILTIN_RULES, BUILTIN_RULES_NAME, RUNTIME_RULES, RUNTIME_RULES_NAME, RuleError, parse_rules,
};

use vigil_schemas::{Detection, EnrichedEvent, KeyValue};

use crate::Detector;
use crate::detection::{Verdict, detection, runtime_detection};

use self::condition::Condition;
use self::template::{Template, render_field};

/// A loaded declarative rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Interned at load: rule names live as long as the process, like the built-in detectors'.
    pub id: &'static str,
    pub finding_type: String,
    pub severity: f64,
    pub enabled: bool,
    /// Where it was written: `file:line`.
    pub origin: String,
    pub doc: Option<String>,
    /// Which events the rule looks at.
    pub source: Source,
    title: Template,
    description: Template,
    key: Vec<&'static FieldDef>,
    /// Runtime rules: `service.runtimeDetails.context` entries, GuardDuty's names to templates.
    context: Vec<(String, Template)>,
    /// MITRE ATT&CK ids, upper-cased (`T1609`, `TA0006`).
    pub tags: Vec<String>,
    pub references: Vec<String>,
    /// A weak signal: its detections are marked `signal_only`, so publish raises no finding for
    /// them and only its correlator reads them (see `vigil-correlate`).
    pub signal: bool,
    /// The built-in this rule replaces (`overrides = "id"`).
    pub overrides: Option<String>,
    when: Vec<Condition>,
    any: Vec<Condition>,
    unless: Vec<Condition>,
}

pub use crate::Source;

impl Rule {
    /// The fields of its aggregation key, by name.
    pub fn key_fields(&self) -> Vec<&'static str> {
        self.key.iter().map(|field| field.name).collect()
    }

    /// The conditions hold for this event (of the rule's source: the engine gives it no other).
    pub fn matches(&self, event: &EnrichedEvent) -> bool {
        self.when.iter().all(|condition| condition.holds(event))
            && (self.any.is_empty() || self.any.iter().any(|condition| condition.holds(event)))
            && !self.unless.iter().any(|condition| condition.holds(event))
    }
}

impl Detector for Rule {
    fn name(&self) -> &'static str {
        self.id
    }
    fn source(&self) -> Source {
        self.source
    }
    fn inspect_audit(
        &mut self,
        _event: &vigil_schemas::AuditEvent,
        enriched: &EnrichedEvent,
        out: &mut Vec<Detection>,
    ) {
        self.inspect(enriched, out);
    }
    fn inspect_runtime(
        &mut self,
        _event: &vigil_schemas::RuntimeEvent,
        enriched: &EnrichedEvent,
        out: &mut Vec<Detection>,
    ) {
        self.inspect(enriched, out);
    }
}

impl Rule {
    /// A rule reads its fields from the whole enriched event, whichever its source.
    fn inspect(&mut self, enriched: &EnrichedEvent, out: &mut Vec<Detection>) {
        if !self.matches(enriched) {
            return;
        }
        let verdict = Verdict {
            finding_type: self.finding_type.clone(),
            severity: self.severity,
            title: self.title.render(enriched),
            description: self.description.render(enriched),
            aggregation_key: self
                .key
                .iter()
                .map(|field| render_field(field, enriched))
                .collect(),
        };
        let start = out.len();
        if let Some(event) = enriched.audit.as_ref() {
            out.push(detection(enriched, event, self.id, verdict));
        } else if let Some(event) = enriched.runtime.as_ref() {
            let context = self
                .context
                .iter()
                .filter_map(|(key, template)| {
                    template.render_present(enriched).map(|value| KeyValue {
                        key: key.clone(),
                        value,
                    })
                })
                .collect();
            out.push(runtime_detection(
                enriched, event, self.id, verdict, context,
            ));
        }
        // The rule's ATT&CK ids and references, in the finding's additionalInfo.
        for found in out.iter_mut().skip(start) {
            found.signal_only = self.signal;
            for (key, values) in [
                ("mitreAttack", &self.tags),
                ("references", &self.references),
            ] {
                if !values.is_empty() {
                    found.additional_info.push(KeyValue {
                        key: key.into(),
                        value: values.join(", "),
                    });
                }
            }
        }
    }
}
