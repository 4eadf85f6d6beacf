//! Rule files read and checked: every mistake is reported at load time with the file and line.

use serde::Deserialize;
use toml::Spanned;

use super::compile::{Lists, RawCondition, checked, condition, of_source};
use super::condition::Condition;
use super::fields::{FieldDef, field_named};
use super::template::Template;
use super::{Rule, Source};

/// The built-in declarative rules, compiled into every binary.
pub const BUILTIN_RULES: &str = include_str!("../../rules/builtin.toml");
pub const BUILTIN_RULES_NAME: &str = "builtin.toml";
/// The built-in runtime rules, compiled into every binary.
pub const RUNTIME_RULES: &str = include_str!("../../rules/runtime.toml");
pub const RUNTIME_RULES_NAME: &str = "runtime.toml";
/// The built-in named lists, available to every rule file.
pub const BUILTIN_LISTS: &str = include_str!("../../rules/lists.toml");
pub const LISTS_NAME: &str = "lists.toml";

/// A rule's id as the `&'static str` a detector's name is. Each distinct id is allocated once for
/// the process and kept in this set, so building the engine again (`vigil rules test`, a reload, a
/// fuzzer's millions of builds) does not allocate it again.
fn interned(id: String) -> &'static str {
    static IDS: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut ids = IDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = ids.get(id.as_str()) {
        return known;
    }
    let id: &'static str = Box::leak(id.into_boxed_str());
    ids.insert(id);
    id
}

/// A rule file that does not load: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct RuleError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    list: Vec<Spanned<RawList>>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

/// A named list of values (`[[list]] name = "shell_binaries"`), used in conditions as
/// `in = "@shell_binaries"` (or as one element of a list: `in = ["@shell_binaries", "busybox"]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawList {
    name: String,
    items: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    id: Spanned<String>,
    #[serde(rename = "type")]
    finding_type: Spanned<String>,
    severity: Spanned<toml::Value>,
    title: Spanned<String>,
    description: Spanned<String>,
    #[serde(default)]
    doc: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    key: Option<Spanned<Vec<String>>>,
    /// `audit` (the default) or `runtime`.
    #[serde(default)]
    source: Option<Spanned<String>>,
    #[serde(default)]
    context: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    /// MITRE ATT&CK technique and tactic ids (`T1609`, `T1552.007`, `TA0006`; Sigma's
    /// `attack.t1609` too), carried into the findings.
    #[serde(default)]
    tags: Vec<Spanned<String>>,
    /// Where the behaviour is described (advisories, write-ups), carried into the findings.
    #[serde(default)]
    references: Vec<String>,
    /// A weak signal: raises no finding, only feeds the correlator's attack sequences.
    #[serde(default)]
    signal: bool,
    /// The built-in detector or rule this rule replaces (which is then off): required when the
    /// rule raises a finding type a built-in raises, whose findings it would otherwise take over.
    #[serde(default)]
    overrides: Option<String>,
    #[serde(default)]
    when: Vec<Spanned<RawCondition>>,
    #[serde(default)]
    any: Vec<Spanned<RawCondition>>,
    #[serde(default)]
    unless: Vec<Spanned<RawCondition>>,
}

/// A MITRE ATT&CK technique (`T1609`, `T1552.007`) or tactic (`TA0006`) id, upper-cased; Sigma's
/// `attack.t1609` form is read too.
fn attack_id(tag: &str) -> Option<String> {
    let tag = tag.trim();
    let id = tag
        .get(..7)
        .filter(|prefix| prefix.eq_ignore_ascii_case("attack."))
        .map_or(tag, |_| tag.get(7..).unwrap_or_default())
        .to_ascii_uppercase();
    let digits = |text: &str, count: usize| {
        text.len() == count && text.bytes().all(|byte| byte.is_ascii_digit())
    };
    let valid = match id.strip_prefix("TA") {
        Some(tactic) => digits(tactic, 4),
        None => id
            .strip_prefix('T')
            .is_some_and(|technique| match technique.split_once('.') {
                Some((base, sub)) => digits(base, 4) && digits(sub, 3),
                None => digits(technique, 4),
            }),
    };
    valid.then_some(id)
}

/// The built-in named lists (`rules/lists.toml`), which every rule file may use. The file is compiled
/// in and loaded by a test, so a list that does not parse is an error of this build; it yields no
/// lists rather than a panic.
fn builtin_lists() -> Lists {
    toml::from_str::<RawFile>(BUILTIN_LISTS)
        .map(|raw| {
            raw.list
                .into_iter()
                .map(|list| {
                    let list = list.into_inner();
                    (list.name, list.items)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Severity words as GuardDuty's numbers; a number is taken as written.
pub(crate) fn parse_severity(value: &toml::Value) -> Result<f64, String> {
    let number = match value {
        toml::Value::String(word) => match vigil_schemas::Severity::from_name(word) {
            Some(band) => band.score(),
            None => {
                return Err(format!(
                    "severity {word:?}: write Low, Medium, High or Critical"
                ));
            }
        },
        toml::Value::Float(number) => *number,
        #[allow(clippy::cast_precision_loss)]
        toml::Value::Integer(number) => *number as f64,
        other => {
            return Err(format!(
                "severity is a word or a number, not {}",
                other.type_str()
            ));
        }
    };
    if (1.0..=10.0).contains(&number) {
        Ok(number)
    } else {
        Err(format!("severity {number} is outside 1.0-10.0"))
    }
}

pub(super) fn valid_type(finding_type: &str) -> bool {
    let Some((purpose, rest)) = finding_type.split_once(':') else {
        return false;
    };
    let Some((resource, name)) = rest.split_once('/') else {
        return false;
    };
    let word = |text: &str| !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric());
    word(purpose)
        && word(resource)
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '!' | '_' | '&'))
}

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |before| before.matches('\n').count() + 1)
}

/// Loads the rules of one file. `file` names it in errors.
pub fn parse_rules(file: &str, text: &str) -> Result<Vec<Rule>, RuleError> {
    let loader = Loader { file, text };
    let raw: RawFile = toml::from_str(text).map_err(|parse| {
        let offset = parse.span().map_or(0, |span| span.start);
        loader.error(offset, parse.message().to_owned())
    })?;
    let lists = loader.lists(&raw.list)?;
    let mut rules: Vec<Rule> = Vec::new();
    for spanned in raw.rule {
        let id = &spanned.get_ref().id;
        if rules.iter().any(|earlier| earlier.id == id.get_ref()) {
            return Err(loader.error(
                id.span().start,
                format!("rule id {:?} is used twice", id.get_ref()),
            ));
        }
        rules.push(loader.rule(spanned, &lists)?);
    }
    Ok(rules)
}

fn good_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// One rule file being loaded: every error names the file and the line.
struct Loader<'a> {
    file: &'a str,
    text: &'a str,
}

impl Loader<'_> {
    fn error(&self, offset: usize, message: String) -> RuleError {
        RuleError {
            file: self.file.to_owned(),
            line: line_of(self.text, offset),
            message,
        }
    }

    /// The built-in lists and the file's own. The built-in lists file starts from nothing; every
    /// other file from the built-in lists, whose names it may not take.
    fn lists(&self, raw: &[Spanned<RawList>]) -> Result<Lists, RuleError> {
        let builtin = if self.file == LISTS_NAME {
            Lists::new()
        } else {
            builtin_lists()
        };
        let mut lists = builtin.clone();
        for spanned in raw {
            let list = spanned.get_ref();
            let problem = if !good_name(&list.name) {
                Some("use lowercase letters, digits and '_'")
            } else if builtin.contains_key(&list.name) {
                Some("is a built-in list; name yours differently")
            } else if lists
                .insert(list.name.clone(), list.items.clone())
                .is_some()
            {
                Some("is defined twice")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(self.error(
                    spanned.span().start,
                    format!("list {:?}: {problem}", list.name),
                ));
            }
        }
        Ok(lists)
    }

    fn rule(&self, spanned: Spanned<RawRule>, lists: &Lists) -> Result<Rule, RuleError> {
        let rule_start = spanned.span().start;
        let raw = spanned.into_inner();
        let id = raw.id.get_ref();
        if !good_name(id) {
            return Err(self.error(
                raw.id.span().start,
                format!("rule id {id:?}: use lowercase letters, digits and '_'"),
            ));
        }
        if !valid_type(raw.finding_type.get_ref()) {
            return Err(self.error(
                raw.finding_type.span().start,
                format!(
                    "finding type {:?}: write ThreatPurpose:Resource/Name, such as Execution:Kubernetes/ExecInPod",
                    raw.finding_type.get_ref()
                ),
            ));
        }
        if raw.when.is_empty() {
            return Err(self.error(
                rule_start,
                format!("rule {id:?} has no `when` condition: it would fire on every event"),
            ));
        }
        let at = |spanned_start: usize| move |message: String| self.error(spanned_start, message);
        let severity =
            parse_severity(raw.severity.get_ref()).map_err(at(raw.severity.span().start))?;
        let title = Template::parse(raw.title.get_ref()).map_err(at(raw.title.span().start))?;
        let description =
            Template::parse(raw.description.get_ref()).map_err(at(raw.description.span().start))?;
        let source = self.source(raw.source.as_ref())?;
        Ok(Rule {
            finding_type: raw.finding_type.into_inner(),
            severity,
            enabled: raw.enabled.unwrap_or(true),
            origin: format!("{}:{}", self.file, line_of(self.text, rule_start)),
            doc: raw.doc,
            source,
            title,
            description,
            key: self.key(raw.key, source)?,
            context: self.context(raw.context, source)?,
            tags: self.tags(&raw.tags)?,
            references: raw.references,
            signal: raw.signal,
            overrides: raw.overrides,
            when: self.conditions(raw.when, lists, source)?,
            any: self.conditions(raw.any, lists, source)?,
            unless: self.conditions(raw.unless, lists, source)?,
            id: interned(raw.id.into_inner()),
        })
    }

    fn source(&self, raw: Option<&Spanned<String>>) -> Result<Source, RuleError> {
        match raw.map(|source| (source.span().start, source.get_ref().as_str())) {
            None | Some((_, "audit")) => Ok(Source::Audit),
            Some((_, "runtime")) => Ok(Source::Runtime),
            Some((start, other)) => Err(self.error(
                start,
                format!("source {other:?}: write \"audit\" or \"runtime\""),
            )),
        }
    }

    /// Runtime rules' `service.runtimeDetails.context` entries.
    fn context(
        &self,
        raw: Option<Spanned<std::collections::BTreeMap<String, String>>>,
        source: Source,
    ) -> Result<Vec<(String, Template)>, RuleError> {
        let Some(context) = raw else {
            return Ok(Vec::new());
        };
        let start = context.span().start;
        if source != Source::Runtime {
            return Err(self.error(
                start,
                "`context` is for runtime rules (source = \"runtime\")".into(),
            ));
        }
        context
            .into_inner()
            .into_iter()
            .map(|(key, text)| {
                Template::parse(&text)
                    .map(|template| (key, template))
                    .map_err(|message| self.error(start, message))
            })
            .collect()
    }

    /// The aggregation key's fields, or the source's default (principal and object; workload and
    /// executable).
    fn key(
        &self,
        raw: Option<Spanned<Vec<String>>>,
        source: Source,
    ) -> Result<Vec<&'static FieldDef>, RuleError> {
        let Some(key) = raw else {
            let default = match source {
                Source::Audit => ["user.username", "object"],
                Source::Runtime => ["runtime.resource", "process.binary"],
            };
            return Ok(default
                .iter()
                .filter_map(|name| field_named(name))
                .collect());
        };
        let start = key.span().start;
        key.into_inner()
            .iter()
            .map(|name| {
                let field = field_named(name)
                    .ok_or_else(|| self.error(start, format!("unknown key field {name:?}")))?;
                of_source(field, source).map_err(|message| self.error(start, message))
            })
            .collect()
    }

    fn tags(&self, raw: &[Spanned<String>]) -> Result<Vec<String>, RuleError> {
        raw.iter()
            .map(|tag| {
                attack_id(tag.get_ref()).ok_or_else(|| {
                    self.error(
                        tag.span().start,
                        format!(
                            "tag {:?}: write a MITRE ATT&CK id (T1609, T1552.007, TA0006) or Sigma's attack.t1609",
                            tag.get_ref()
                        ),
                    )
                })
            })
            .collect()
    }

    fn conditions(
        &self,
        raw: Vec<Spanned<RawCondition>>,
        lists: &Lists,
        source: Source,
    ) -> Result<Vec<Condition>, RuleError> {
        raw.into_iter()
            .map(|spanned| {
                let start = spanned.span().start;
                condition(spanned.into_inner(), lists)
                    .and_then(|condition| checked(condition, source))
                    .map_err(|message| self.error(start, message))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use vigil_schemas::{AuditEvent, EnrichedEvent, UserInfo};

    use super::*;

    #[test]
    fn builtin_rules_load() {
        let rules = parse_rules(BUILTIN_RULES_NAME, BUILTIN_RULES).unwrap();
        assert!(rules.len() >= 10, "{}", rules.len());
    }

    /// The fuzzer found each engine build leaking its rules' ids (a detector's name is
    /// `&'static str`): loading the same rules again must reuse them.
    #[test]
    fn loading_rules_again_reuses_their_ids() {
        let first = parse_rules(BUILTIN_RULES_NAME, BUILTIN_RULES).unwrap();
        let again = parse_rules(BUILTIN_RULES_NAME, BUILTIN_RULES).unwrap();
        for (first, again) in first.iter().zip(&again) {
            assert!(
                std::ptr::eq(first.id, again.id),
                "{} allocated again",
                first.id
            );
        }
    }

    #[test]
    fn errors_name_the_line() {
        let text = "[[rule]]\nid = \"x\"\ntype = \"Execution:Kubernetes/X\"\nseverity = \"Low\"\ntitle = \"t\"\ndescription = \"d\"\nwhen = [\n  { field = \"verb\", eq = \"get\" },\n  { field = \"nope\", eq = \"get\" },\n]\n";
        let error = parse_rules("mine.toml", text).unwrap_err();
        assert_eq!(error.line, 9, "{error}");
        assert!(error.message.contains("unknown field \"nope\""), "{error}");
        assert!(error.to_string().starts_with("mine.toml:9: "), "{error}");

        let bad_severity = text.replace("\"Low\"", "\"Severe\"");
        let error = parse_rules("mine.toml", &bad_severity).unwrap_err();
        assert_eq!(error.line, 4, "{error}");

        let two_operators = text.replace(
            "eq = \"get\" },\n  { field = \"nope\", eq = \"get\" }",
            "eq = \"get\", neq = \"list\" }",
        );
        let error = parse_rules("mine.toml", &two_operators).unwrap_err();
        assert!(error.message.contains("several operators"), "{error}");

        let syntax = "[[rule]]\nid = \"x\nseverity = 1\n";
        let error = parse_rules("mine.toml", syntax).unwrap_err();
        assert_eq!(error.line, 2, "{error}");

        let unknown_key = text.replace("title = \"t\"", "titel = \"t\"");
        let error = parse_rules("mine.toml", &unknown_key).unwrap_err();
        assert!(error.message.contains("titel"), "{error}");

        let bad_placeholder = text.replace("title = \"t\"", "title = \"{user.nam}\"");
        let error = parse_rules("mine.toml", &bad_placeholder).unwrap_err();
        assert_eq!(error.line, 5, "{error}");
    }

    fn rule(source: &str, conditions: &str, key: &str) -> String {
        format!(
            "[[rule]]\nid = \"x\"\ntype = \"Execution:Runtime/X\"\nseverity = \"Low\"\n{source}title = \"t\"\ndescription = \"d\"\n{key}when = [\n{conditions}\n]\n"
        )
    }

    /// A rule that would load and never fire is refused, with the line and what to write instead.
    #[test]
    fn a_field_of_the_other_source_or_a_value_outside_a_fields_domain_is_refused() {
        let runtime = "source = \"runtime\"\n";
        let typo = rule(
            runtime,
            "  { field = \"runtime.kind\", eq = \"proces_exec\" },",
            "",
        );
        let error = parse_rules("mine.toml", &typo).unwrap_err();
        assert_eq!(error.line, 9, "{error}");
        assert!(
            error.message.contains("did you mean \"process_exec\""),
            "{error}"
        );
        let in_list = rule(
            runtime,
            "  { field = \"runtime.kind\", in = [\"process_exec\", \"file_wrote\"] },",
            "",
        );
        assert!(parse_rules("mine.toml", &in_list).is_err());
        let audit_reads_process = rule(
            "",
            "  { field = \"process.binary\", eq = \"/bin/sh\" },",
            "",
        );
        let error = parse_rules("mine.toml", &audit_reads_process).unwrap_err();
        assert!(
            error.message.contains("read from runtime events")
                && error.message.contains("source = \"runtime\""),
            "{error}"
        );
        let runtime_reads_verb = rule(runtime, "  { field = \"verb\", eq = \"get\" },", "");
        assert!(parse_rules("mine.toml", &runtime_reads_verb).is_err());
        let audit_keyed_on_process = rule(
            "",
            "  { field = \"verb\", eq = \"get\" },",
            "key = [\"process.binary\"]\n",
        );
        assert!(parse_rules("mine.toml", &audit_keyed_on_process).is_err());
        let bad_verb = rule("", "  { field = \"verb\", in = [\"get\", \"lsit\"] },", "");
        let error = parse_rules("mine.toml", &bad_verb).unwrap_err();
        assert!(error.message.contains("did you mean \"list\""), "{error}");
    }

    /// A rule's ATT&CK ids (in either spelling) and references reach its findings' additionalInfo;
    /// a tag that is no ATT&CK id is refused at load time.
    #[test]
    fn tags_and_references_are_carried_into_findings() {
        let text = rule(
            "tags = [\"T1609\", \"attack.t1552.007\", \"TA0006\"]\nreferences = [\"https://attack.mitre.org/techniques/T1609/\"]\n",
            "  { field = \"verb\", eq = \"get\" },",
            "",
        );
        let mut rules = parse_rules("mine.toml", &text).unwrap();
        assert_eq!(rules[0].tags, ["T1609", "T1552.007", "TA0006"]);
        let event = EnrichedEvent {
            audit: Some(AuditEvent {
                verb: "get".into(),
                user: UserInfo {
                    username: "bob".into(),
                    ..UserInfo::default()
                },
                ..AuditEvent::default()
            }),
            ..EnrichedEvent::default()
        };
        let mut out = Vec::new();
        rules[0].inspect(&event, &mut out);
        let info: Vec<(&str, &str)> = out[0]
            .additional_info
            .iter()
            .map(|pair| (pair.key.as_str(), pair.value.as_str()))
            .collect();
        assert!(
            info.contains(&("mitreAttack", "T1609, T1552.007, TA0006")),
            "{info:?}"
        );
        assert!(
            info.contains(&("references", "https://attack.mitre.org/techniques/T1609/")),
            "{info:?}"
        );
        for bad in [
            "execution",
            "T160",
            "T1609.1",
            "attack.execution",
            "TA00061",
        ] {
            let text = rule(
                &format!("tags = [\"{bad}\"]\n"),
                "  { field = \"verb\", eq = \"get\" },",
                "",
            );
            let error = parse_rules("mine.toml", &text).unwrap_err();
            assert!(error.message.contains("MITRE ATT&CK id"), "{bad}: {error}");
        }
    }

    /// Named lists: the built-in ones in every file, a file's own beside them, `@name` alone or
    /// inside a list; an unknown list and one shadowing a built-in are refused.
    #[test]
    fn named_lists_expand_where_they_are_used() {
        assert!(parse_rules(LISTS_NAME, BUILTIN_LISTS).is_ok_and(|rules| rules.is_empty()));
        assert!(
            builtin_lists()
                .get("shell_binaries")
                .is_some_and(|items| items.contains(&"bash".to_owned()))
        );
        let runtime = "source = \"runtime\"\n";
        let own = format!(
            "[[list]]\nname = \"our_tools\"\nitems = [\"kubectl\", \"helm\"]\n\n{}",
            rule(
                runtime,
                "  { field = \"process.name\", in = [\"@shell_binaries\", \"@our_tools\", \"busybox\"] },",
                "",
            )
        );
        let rules = parse_rules("mine.toml", &own).unwrap();
        let matches = |name: &str| {
            let event = EnrichedEvent {
                runtime: Some(vigil_schemas::RuntimeEvent {
                    kind: "process_exec".into(),
                    process: vigil_schemas::ProcessInfo {
                        binary: format!("/usr/bin/{name}"),
                        ..vigil_schemas::ProcessInfo::default()
                    },
                    ..vigil_schemas::RuntimeEvent::default()
                }),
                ..EnrichedEvent::default()
            };
            rules[0].matches(&event)
        };
        assert!(matches("fish") && matches("helm") && matches("busybox"));
        assert!(!matches("curl"));

        let unknown = rule(
            runtime,
            "  { field = \"process.name\", in = \"@shells\" },",
            "",
        );
        let error = parse_rules("mine.toml", &unknown).unwrap_err();
        assert!(
            error.message.contains("no list named \"shells\""),
            "{error}"
        );
        let shadowing = format!(
            "[[list]]\nname = \"shell_binaries\"\nitems = [\"sh\"]\n\n{}",
            rule(
                runtime,
                "  { field = \"process.name\", in = \"@shell_binaries\" },",
                ""
            )
        );
        let error = parse_rules("mine.toml", &shadowing).unwrap_err();
        assert!(error.message.contains("built-in list"), "{error}");
    }

    #[test]
    fn fields_of_the_rules_source_and_values_in_domain_load() {
        let runtime = "source = \"runtime\"\n";
        for (source, conditions) in [
            (
                runtime,
                "  { field = \"runtime.kind\", in = [\"process_exec\", \"file_write\"] },\n  { field = \"cluster.name\", eq = \"prod\" },",
            ),
            (
                runtime,
                "  { field = \"runtime.kind\", prefix = \"file_\" },",
            ),
            (
                "",
                "  { field = \"verb\", neq = \"escalate\" },\n  { field = \"service.type\", eq = \"NodePort\" },",
            ),
            (
                "",
                "  { field = \"threat_purpose\", eq = \"Impact\" },\n  { field = \"target.images\", contains = \"nginx\" },",
            ),
        ] {
            let text = rule(source, conditions, "");
            assert!(parse_rules("mine.toml", &text).is_ok(), "{text}");
        }
    }

    #[test]
    fn templates_render_fields_and_escapes() {
        let template = Template::parse("{{literal}} {verb} by {user.username}").unwrap();
        let event = EnrichedEvent {
            audit: Some(AuditEvent {
                verb: "get".into(),
                user: UserInfo {
                    username: "alice".into(),
                    ..UserInfo::default()
                },
                ..AuditEvent::default()
            }),
            ..EnrichedEvent::default()
        };
        assert_eq!(template.render(&event), "{literal} get by alice");
        assert!(Template::parse("{verb").is_err());
        assert!(Template::parse("a } b").is_err());
    }
}
