//! detect: the rule engine and the built-in GuardDuty EKS audit-log detectors. Plain state machines
//! over [`EnrichedEvent`]s, free of I/O, so the same code runs in `vigil scan`, the Kafka stage, the
//! tests and the benchmarks.

pub mod context;
pub mod rules;

use std::collections::BTreeMap;

use vigil_schemas::{Detection, EnrichedEvent};

/// One detector: looks at each event and pushes zero or more detections.
pub trait Detector: Send + std::fmt::Debug {
    /// Stable, snake_case: used in metrics labels and in `Detection.detector`.
    fn name(&self) -> &'static str;
    fn inspect(&mut self, event: &EnrichedEvent, out: &mut Vec<Detection>);
    /// State changed since the last call, as key/value pairs to checkpoint (an empty value deletes
    /// the key). A restarted stage gives them back through [`Detector::restore`], so it neither
    /// forgets nor relearns. Stateless detectors keep the default.
    fn drain_state(&mut self, _out: &mut Vec<StateEntry>) {}
    /// Puts back one checkpointed entry.
    fn restore(&mut self, _key: &str, _value: &[u8]) {}
}

/// One checkpointed piece of detector state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    pub key: String,
    /// Empty: the key is deleted.
    pub value: Vec<u8>,
}

/// Settings of the built-in detectors.
#[derive(Debug, Clone)]
pub struct DetectConfig {
    /// Image prefixes whose privileged containers and host mounts are expected.
    pub trusted_system_images: Vec<String>,
    /// Host paths that are sensitive to mount, at and below.
    pub sensitive_host_paths: Vec<String>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            trusted_system_images: rules::default_trusted_system_images(),
            sensitive_host_paths: rules::default_sensitive_host_paths(),
        }
    }
}

/// Runs every detector over every event and counts what fired.
#[derive(Debug)]
pub struct Engine {
    detectors: Vec<Box<dyn Detector>>,
    fired: BTreeMap<&'static str, u64>,
    events: u64,
}

impl Default for Engine {
    fn default() -> Self {
        Self::with_builtin_rules(&DetectConfig::default())
    }
}

impl Engine {
    pub fn new(detectors: Vec<Box<dyn Detector>>) -> Self {
        Self {
            detectors,
            fired: BTreeMap::new(),
            events: 0,
        }
    }

    pub fn with_builtin_rules(config: &DetectConfig) -> Self {
        Self::new(vec![
            Box::new(rules::SuccessfulAnonymousAccess),
            Box::new(rules::AnonymousAccessGranted),
            Box::new(rules::ExecInKubeSystemPod),
            Box::new(rules::AdminAccessToDefaultServiceAccount),
            Box::new(rules::ExposedDashboard),
            Box::new(rules::TorIpCaller),
            Box::new(rules::MaliciousIpCallerCustom),
            Box::new(rules::PrivilegedContainer::new(
                config.trusted_system_images.clone(),
            )),
            Box::new(rules::ContainerWithSensitiveMount::new(
                config.trusted_system_images.clone(),
                config.sensitive_host_paths.clone(),
            )),
        ])
    }

    pub fn detector_names(&self) -> Vec<&'static str> {
        self.detectors
            .iter()
            .map(|detector| detector.name())
            .collect()
    }

    /// Detections of one event, appended to `out`.
    pub fn process(&mut self, event: &EnrichedEvent, out: &mut Vec<Detection>) {
        self.events += 1;
        for detector in &mut self.detectors {
            let before = out.len();
            detector.inspect(event, out);
            let fired = out.len() - before;
            if fired > 0 {
                *self.fired.entry(detector.name()).or_default() += fired as u64;
            }
        }
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
    /// (state of a detector since removed), which the caller counts and skips.
    pub fn restore(&mut self, key: &str, value: &[u8]) -> bool {
        let Some((name, rest)) = key.split_once('/') else {
            return false;
        };
        match self
            .detectors
            .iter_mut()
            .find(|detector| detector.name() == name)
        {
            Some(detector) => {
                detector.restore(rest, value);
                true
            }
            None => false,
        }
    }

    pub fn events_seen(&self) -> u64 {
        self.events
    }

    /// Detections per detector so far.
    pub fn fired(&self) -> &BTreeMap<&'static str, u64> {
        &self.fired
    }
}
