//! detect: the rule engine and the built-in GuardDuty EKS audit-log and runtime detectors. Plain state machines
//! over [`EnrichedEvent`]s, free of I/O, so the same code runs in `vigil scan`, the Kafka stage, the
//! tests and the benchmarks.

pub mod audit;
pub mod baselines;
pub mod bounded;
pub mod checkpoint;
pub mod detection;
pub mod facts;
pub mod recent;
pub mod redact;
pub mod registry;
pub mod rules;
pub mod runtime;

use std::collections::BTreeMap;

pub use rules::{Rule, RuleError};
use vigil_schemas::{AuditEvent, Detection, EnrichedEvent, RuntimeEvent};

/// Which events a detector (or rule) looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Kubernetes API requests.
    Audit,
    /// Process, file, network, DNS and mount events from node sensors.
    Runtime,
}

/// One detector: looks at each event of its source and pushes zero or more detections. The engine
/// routes each event to the detectors of its source only, so a detector implements the one
/// `inspect_*` of its [`Source`] and never checks what kind of event it was given.
pub trait Detector: Send + std::fmt::Debug {
    /// Stable, snake_case: used in metrics labels and in `Detection.detector`.
    fn name(&self) -> &'static str;
    /// The events it is given.
    fn source(&self) -> Source;
    /// An audit event, to a detector of [`Source::Audit`]; `enriched` is the whole event.
    fn inspect_audit(
        &mut self,
        _event: &AuditEvent,
        _enriched: &EnrichedEvent,
        _out: &mut Vec<Detection>,
    ) {
    }
    /// A runtime event, to a detector of [`Source::Runtime`]; `enriched` is the whole event.
    fn inspect_runtime(
        &mut self,
        _event: &RuntimeEvent,
        _enriched: &EnrichedEvent,
        _out: &mut Vec<Detection>,
    ) {
    }
    /// State changed since the last call, as key/value pairs to checkpoint (a `None` value deletes
    /// the key). A restarted stage gives them back through [`Detector::restore`], so it neither
    /// forgets nor relearns. Stateless detectors keep the default.
    fn drain_state(&mut self, _out: &mut Vec<StateEntry>) {}
    /// Makes every change held back (a baseline checkpoints counts every few observations) a
    /// change for the next [`Detector::drain_state`]: called before state is committed with the
    /// inputs it holds (exactly-once).
    fn flush_state(&mut self) {}
    /// Puts back one checkpointed entry (`None` is a tombstone: the entry is forgotten). False when
    /// the value no longer decodes ([`checkpoint::decode`] refuses it): the entry is dropped and
    /// relearned, and the caller counts and logs it.
    fn restore(&mut self, _key: &str, _value: Option<&[u8]>) -> bool {
        true
    }
    /// Baseline detectors: per scope, the entities profiled by phase, and how many were evicted at
    /// the cap, for `/metrics`. Walks every profile: call it now and then, not per event.
    fn profiles(&self) -> Vec<ProfileCounts> {
        Vec::new()
    }
}

/// A baseline detector's profiles: how many in each phase, the cap, and evictions at the cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileCounts {
    /// What is profiled: `principal`, `peer_group`, `namespace`, `cluster`, `image`, `workload`.
    pub scope: &'static str,
    /// (phase label, profiles): `warm-up`, `learning`, `stable`, `unstable`; `tracked` for a
    /// detector without phases.
    pub by_phase: Vec<(&'static str, usize)>,
    pub capacity: usize,
    /// Profiles one cluster may hold, and the most any cluster holds now.
    pub capacity_per_cluster: usize,
    pub largest_cluster: usize,
    pub evicted: u64,
    /// Checkpoints that failed to encode since start (their profiles stay unsaved and are tried
    /// again); a non-zero value is a bug to report.
    pub unencodable: u64,
}

/// One checkpointed piece of detector state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    pub key: String,
    /// The [`checkpoint`] bytes; `None` deletes the key (a tombstone on a state topic).
    pub value: Option<Vec<u8>>,
}

impl StateEntry {
    /// The key now holds `state`; a state that does not encode is an error the caller counts.
    pub fn put<C: checkpoint::Checkpoint>(
        key: impl Into<String>,
        state: &C,
    ) -> Result<Self, checkpoint::CheckpointError> {
        Ok(Self {
            key: key.into(),
            value: Some(checkpoint::encode(state)?),
        })
    }

    /// The key is deleted.
    pub fn delete(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: None,
        }
    }
}

/// A rule file's name (for error messages) and text.
#[derive(Debug, Clone)]
pub struct RuleSource {
    pub name: String,
    pub text: String,
}

/// Settings of the built-in detectors, and the user's rules and switches.
#[derive(Debug, Clone)]
pub struct DetectConfig {
    /// Image prefixes whose privileged containers and host mounts are expected.
    pub trusted_system_images: Vec<String>,
    /// Host paths that are sensitive to mount, at and below.
    pub sensitive_host_paths: Vec<String>,
    /// Image prefixes expected in system namespaces, beyond the trusted system images.
    pub system_namespace_images: Vec<String>,
    /// Distinct denied calls within the window that make a burst.
    pub denied_burst_threshold: usize,
    pub denied_burst_window_secs: i64,
    /// Detectors and rules switched on (those shipped off) or off, by name.
    pub enable: Vec<String>,
    pub disable: Vec<String>,
    /// The user's declarative rule files.
    pub rule_files: Vec<RuleSource>,
    /// How the baselines learn (event time), and how many entities they profile.
    pub baselines: baselines::BaselineConfig,
    pub baseline_caps: BaselineCaps,
}

/// How many entities the baseline detectors profile, in all and per cluster; the least recently
/// seen give way beyond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaselineCaps {
    pub principals: usize,
    pub principals_per_cluster: usize,
    pub images: usize,
    pub images_per_cluster: usize,
}

impl Default for BaselineCaps {
    fn default() -> Self {
        Self {
            principals: 100_000,
            principals_per_cluster: 50_000,
            images: 20_000,
            images_per_cluster: 10_000,
        }
    }
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            trusted_system_images: audit::default_trusted_system_images(),
            sensitive_host_paths: facts::default_sensitive_host_paths(),
            system_namespace_images: audit::default_system_namespace_images(),
            denied_burst_threshold: 10,
            denied_burst_window_secs: 600,
            enable: Vec::new(),
            disable: Vec::new(),
            rule_files: Vec::new(),
            baselines: baselines::BaselineConfig::default(),
            baseline_caps: BaselineCaps::default(),
        }
    }
}

/// Why a detector set could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error(
        "{0:?} in the rules' enable/disable lists names no detector or rule (`vigil rules list` names them)"
    )]
    UnknownName(String),
    #[error("{0:?} is both enabled and disabled")]
    Contradiction(String),
    #[error("rule id {id:?} at {origin} is already taken by a built-in detector or rule")]
    Duplicate { id: String, origin: String },
    #[error(
        "rule {id:?} at {origin} raises {finding_type}, which the built-in {builtin:?} raises: its \
         findings would merge into the built-in's and rewrite their title, description and \
         severity. Give the rule a type of its own, or say `overrides = \"{builtin}\"` to replace \
         the built-in (which is then off)"
    )]
    TakesOverBuiltin {
        id: String,
        origin: String,
        finding_type: String,
        builtin: String,
    },
    #[error(
        "rule {id:?} at {origin} overrides {name:?}, which is no built-in raising {finding_type}"
    )]
    BadOverride {
        id: String,
        origin: String,
        name: String,
        finding_type: String,
    },
}

/// Whether a catalogue entry's type (`<Purpose>:Kubernetes/TorIPCaller`,
/// `Backdoor:Runtime/C&CActivity.B[!DNS]`, `Trojan:Runtime/{Phishing,DGA}...!DNS`, several
/// separated by `, `) names `finding_type`.
fn names_type(catalogue_type: &str, finding_type: &str) -> bool {
    catalogue_type.split(", ").map(str::trim).any(|part| {
        if let Some(rest) = part.strip_prefix("<Purpose>:") {
            return finding_type
                .split_once(':')
                .is_some_and(|(_, tail)| tail == rest);
        }
        if let Some((base, optional)) = part.strip_suffix(']').and_then(|rest| rest.split_once('['))
        {
            return finding_type == base || finding_type.strip_prefix(base) == Some(optional);
        }
        if let (Some((head, rest)), true) = (part.split_once('{'), part.contains("...")) {
            let (alternatives, tail) = rest.split_once('}').unwrap_or((rest, ""));
            let suffix = tail.trim_start_matches("...");
            return alternatives.split(',').any(|alternative| {
                finding_type.starts_with(&format!("{head}{alternative}"))
                    && finding_type.ends_with(suffix)
            });
        }
        part == finding_type
    })
}

/// One detector or rule as `vigil rules list` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorInfo {
    pub name: &'static str,
    /// Where it comes from: `rust`, or the rule file and line.
    pub origin: String,
    pub enabled: bool,
    /// The finding type (a `<Purpose>` prefix for types that follow the call's threat purpose).
    pub finding_type: String,
    pub severity: String,
    pub source: Source,
    /// What makes it fire (Markdown): a Rust detector's registry entry, a rule's `doc`.
    pub trigger: String,
    /// What, beyond type and cluster, makes two detections one finding.
    pub key: String,
    /// The MITRE ATT&CK ids a rule declares in its `tags` (Rust detectors rely on the ATT&CK table
    /// of their types, `vigil_schemas::attack`).
    pub tags: Vec<String>,
}

fn severity_word(severity: f64) -> String {
    format!(
        "{} ({severity})",
        vigil_schemas::Severity::of(severity).label()
    )
}

/// The built-in rule files, parsed and compiled once per process: every engine build (each test,
/// each `vigil rules test`, each fuzz input) clones them instead of compiling their patterns again.
fn builtin_rules() -> Result<Vec<Rule>, RuleError> {
    static BUILTIN: std::sync::OnceLock<Result<Vec<Rule>, RuleError>> = std::sync::OnceLock::new();
    BUILTIN
        .get_or_init(|| {
            let mut builtin = rules::parse_rules(rules::BUILTIN_RULES_NAME, rules::BUILTIN_RULES)?;
            builtin.extend(rules::parse_rules(
                rules::RUNTIME_RULES_NAME,
                rules::RUNTIME_RULES,
            )?);
            Ok(builtin)
        })
        .clone()
}

/// Every detector and rule the configuration names, in order, and whether it is on.
fn resolve(config: &DetectConfig) -> Result<Vec<(DetectorInfo, Option<Rule>)>, BuildError> {
    let mut all: Vec<(DetectorInfo, Option<Rule>)> = registry::RUST_DETECTORS
        .iter()
        .map(|detector| {
            (
                DetectorInfo {
                    name: detector.name,
                    origin: "rust".into(),
                    enabled: true,
                    finding_type: detector.finding_types.into(),
                    severity: detector.severity.into(),
                    source: detector.source,
                    trigger: detector.trigger.into(),
                    key: detector.key.into(),
                    tags: Vec::new(),
                },
                None,
            )
        })
        .collect();
    let builtin = builtin_rules()?;
    let mut custom = Vec::new();
    for source in &config.rule_files {
        custom.extend(rules::parse_rules(&source.name, &source.text)?);
    }
    // Built-ins whose findings a custom rule replaces: off.
    let mut overridden: Vec<String> = Vec::new();
    {
        let builtin_types: Vec<(&str, &str)> = all
            .iter()
            .map(|(info, _)| (info.name, info.finding_type.as_str()))
            .chain(
                builtin
                    .iter()
                    .map(|rule| (rule.id, rule.finding_type.as_str())),
            )
            .collect();
        for rule in &custom {
            let takes_over: Vec<&str> = builtin_types
                .iter()
                .filter(|(_, kind)| names_type(kind, &rule.finding_type))
                .map(|(name, _)| *name)
                .collect();
            match (&rule.overrides, takes_over.first()) {
                (None, None) => {}
                (None, Some(builtin)) => {
                    return Err(BuildError::TakesOverBuiltin {
                        id: rule.id.to_owned(),
                        origin: rule.origin.clone(),
                        finding_type: rule.finding_type.clone(),
                        builtin: (*builtin).to_owned(),
                    });
                }
                (Some(name), _) if takes_over.contains(&name.as_str()) => {
                    overridden.push(name.clone());
                }
                (Some(name), _) => {
                    return Err(BuildError::BadOverride {
                        id: rule.id.to_owned(),
                        origin: rule.origin.clone(),
                        name: name.clone(),
                        finding_type: rule.finding_type.clone(),
                    });
                }
            }
        }
    }
    for rule in builtin.into_iter().chain(custom) {
        if all.iter().any(|(info, _)| info.name == rule.id) {
            return Err(BuildError::Duplicate {
                id: rule.id.to_owned(),
                origin: rule.origin,
            });
        }
        all.push((
            DetectorInfo {
                name: rule.id,
                origin: rule.origin.clone(),
                enabled: rule.enabled,
                finding_type: rule.finding_type.clone(),
                severity: severity_word(rule.severity),
                source: rule.source,
                trigger: rule.doc.clone().unwrap_or_default(),
                key: rule.key_fields().join(", "),
                tags: rule.tags.clone(),
            },
            Some(rule),
        ));
    }
    for (info, _) in &mut all {
        if overridden.iter().any(|name| name == info.name) {
            info.enabled = false;
        }
    }
    for name in &config.enable {
        if config.disable.contains(name) {
            return Err(BuildError::Contradiction(name.clone()));
        }
    }
    for (names, on) in [(&config.enable, true), (&config.disable, false)] {
        for name in names {
            let (info, _) = all
                .iter_mut()
                .find(|(info, _)| info.name == name.as_str())
                .ok_or_else(|| BuildError::UnknownName(name.clone()))?;
            info.enabled = on;
        }
    }
    Ok(all)
}

/// One event through one detector, routed as the engine routes it: nothing when the event is not
/// of the detector's source. For tests and tools that hold a single detector.
pub fn inspect(detector: &mut dyn Detector, event: &EnrichedEvent, out: &mut Vec<Detection>) {
    match (detector.source(), &event.audit, &event.runtime) {
        (Source::Audit, Some(audit), _) => detector.inspect_audit(audit, event, out),
        (Source::Runtime, None, Some(runtime)) => detector.inspect_runtime(runtime, event, out),
        _ => {}
    }
}

/// Runs every detector over every event of its source and counts what fired.
#[derive(Debug)]
pub struct Engine {
    detectors: Vec<Box<dyn Detector>>,
    /// Indexes into `detectors` of each source's detectors, in order: the routing table.
    audit: Vec<usize>,
    runtime: Vec<usize>,
    fired: BTreeMap<&'static str, u64>,
    events: u64,
}

impl Default for Engine {
    /// The built-in detectors and rules with their default settings.
    #[allow(clippy::expect_used)]
    fn default() -> Self {
        // The built-in rule file is compiled in and loaded by a unit test: it cannot fail here.
        Self::build(&DetectConfig::default()).expect("built-in rules load")
    }
}

impl Engine {
    pub fn new(detectors: Vec<Box<dyn Detector>>) -> Self {
        let mut engine = Self {
            detectors,
            audit: Vec::new(),
            runtime: Vec::new(),
            fired: BTreeMap::new(),
            events: 0,
        };
        engine.route();
        engine
    }

    fn route(&mut self) {
        let of = |source| {
            self.detectors
                .iter()
                .enumerate()
                .filter(|(_, detector)| detector.source() == source)
                .map(|(index, _)| index)
                .collect()
        };
        self.audit = of(Source::Audit);
        self.runtime = of(Source::Runtime);
    }

    /// The enabled built-in detectors and rules, then the user's rules.
    pub fn build(config: &DetectConfig) -> Result<Self, BuildError> {
        let mut detectors: Vec<Box<dyn Detector>> = Vec::new();
        for (info, rule) in resolve(config)? {
            if !info.enabled {
                continue;
            }
            match rule {
                Some(rule) => detectors.push(Box::new(rule)),
                None => detectors
                    .extend(registry::find(info.name).map(|detector| (detector.build)(config))),
            }
        }
        Ok(Self::new(detectors))
    }

    /// Every detector and rule, enabled or not, as the configuration leaves them.
    pub fn catalogue(config: &DetectConfig) -> Result<Vec<DetectorInfo>, BuildError> {
        Ok(resolve(config)?.into_iter().map(|(info, _)| info).collect())
    }

    /// Keeps only the detectors `keep` accepts: tests and `vigil rules test` look at a few at a time.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.detectors.retain(|detector| keep(detector.name()));
        self.route();
    }

    pub fn detector_names(&self) -> Vec<&'static str> {
        self.detectors
            .iter()
            .map(|detector| detector.name())
            .collect()
    }

    /// Detections of one event, appended to `out`: the event goes to the detectors of its source.
    pub fn process(&mut self, event: &EnrichedEvent, out: &mut Vec<Detection>) {
        self.events += 1;
        let routed = match (&event.audit, &event.runtime) {
            (Some(_), _) => &self.audit,
            (None, Some(_)) => &self.runtime,
            // An enriched record carries one or the other; one with neither has nothing to judge.
            (None, None) => return,
        };
        for &index in routed {
            let Some(detector) = self.detectors.get_mut(index) else {
                continue;
            };
            let before = out.len();
            inspect(detector.as_mut(), event, out);
            let fired = out.len() - before;
            if fired > 0 {
                *self.fired.entry(detector.name()).or_default() += fired as u64;
                // No secret from a URI or a command line leaves detect in a finding.
                for detection in out.iter_mut().skip(before) {
                    redact::redact_detection(detection);
                }
            }
        }
    }

    /// Every state change, the ones held back included ([`Detector::flush_state`]): what to
    /// commit so that the state holds the effect of every event processed.
    pub fn flush_state(&mut self, out: &mut Vec<StateEntry>) {
        for detector in &mut self.detectors {
            detector.flush_state();
        }
        self.drain_state(out);
    }

    /// State changes of every detector since the last call; keys are prefixed `detector/`.
    pub fn drain_state(&mut self, out: &mut Vec<StateEntry>) {
        for detector in &mut self.detectors {
            let start = out.len();
            detector.drain_state(out);
            for entry in out.iter_mut().skip(start) {
                entry.key = format!("{}/{}", detector.name(), entry.key);
            }
        }
    }

    /// Routes a checkpointed entry back to its detector. Returns false for a key no detector owns
    /// (state of a detector since removed) and for a value its detector can no longer decode,
    /// which the caller counts and skips.
    pub fn restore(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        let Some((name, rest)) = key.split_once('/') else {
            return false;
        };
        match self
            .detectors
            .iter_mut()
            .find(|detector| detector.name() == name)
        {
            Some(detector) => detector.restore(rest, value),
            None => false,
        }
    }

    /// Every baseline detector's [`ProfileCounts`] per scope, by detector name.
    pub fn profile_counts(&self) -> Vec<(&'static str, ProfileCounts)> {
        self.detectors
            .iter()
            .flat_map(|detector| {
                detector
                    .profiles()
                    .into_iter()
                    .map(|counts| (detector.name(), counts))
            })
            .collect()
    }

    pub fn events_seen(&self) -> u64 {
        self.events
    }

    /// Detections per detector so far.
    pub fn fired(&self) -> &BTreeMap<&'static str, u64> {
        &self.fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the events it is given, by source.
    #[derive(Debug)]
    struct Counting {
        source: Source,
        audit: usize,
        runtime: usize,
    }

    impl Detector for Counting {
        fn name(&self) -> &'static str {
            match self.source {
                Source::Audit => "counting_audit",
                Source::Runtime => "counting_runtime",
            }
        }
        fn source(&self) -> Source {
            self.source
        }
        fn inspect_audit(&mut self, _: &AuditEvent, _: &EnrichedEvent, _: &mut Vec<Detection>) {
            self.audit += 1;
        }
        fn inspect_runtime(&mut self, _: &RuntimeEvent, _: &EnrichedEvent, _: &mut Vec<Detection>) {
            self.runtime += 1;
        }
    }

    #[test]
    fn each_event_reaches_only_the_detectors_of_its_source() {
        let counting = |source| Counting {
            source,
            audit: 0,
            runtime: 0,
        };
        let mut engine = Engine::new(vec![
            Box::new(counting(Source::Audit)),
            Box::new(counting(Source::Runtime)),
        ]);
        let audit = EnrichedEvent {
            audit: Some(AuditEvent::default()),
            ..EnrichedEvent::default()
        };
        let runtime = EnrichedEvent {
            runtime: Some(RuntimeEvent::default()),
            ..EnrichedEvent::default()
        };
        let mut out = Vec::new();
        for event in [&audit, &audit, &runtime, &EnrichedEvent::default()] {
            engine.process(event, &mut out);
        }
        let seen: Vec<String> = engine
            .detectors
            .iter()
            .map(|detector| format!("{detector:?}"))
            .collect();
        assert_eq!(
            seen,
            [
                "Counting { source: Audit, audit: 2, runtime: 0 }",
                "Counting { source: Runtime, audit: 0, runtime: 1 }"
            ]
        );
        // After a retain the routing table follows.
        engine.retain(|name| name == "counting_runtime");
        engine.process(&runtime, &mut out);
        assert_eq!(
            format!("{:?}", engine.detectors),
            "[Counting { source: Runtime, audit: 0, runtime: 2 }]"
        );
    }
}
