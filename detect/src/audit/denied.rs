//! A principal refused on many different calls in a short window of event time: someone (or
//! something) feeling out what a stolen identity may do.

use vigil_schemas::{AuditEvent, Detection, EnrichedEvent};

use crate::checkpoint::{self, Checkpoint};
use crate::detection::{Verdict, detection, severity};
use crate::facts::{effective_user, is_anonymous, is_system_username, resource_of};
use crate::{Detector, StateEntry};

/// A principal's denied requests in the current window.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct DeniedWindow {
    start_micros: i64,
    fired: bool,
    /// Hashes of the distinct (verb, resource, namespace) denied.
    distinct: Vec<u64>,
}

impl Checkpoint for DeniedWindow {
    const KIND: &'static str = "denied_window";
    const VERSION: u32 = 1;
    /// Before the envelope: `start|fired|hash,hash,...`.
    fn legacy(value: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(value).ok()?;
        let mut parts = text.splitn(3, '|');
        let start_micros = parts.next()?.parse().ok()?;
        let fired = parts.next()? == "1";
        let distinct = parts
            .next()?
            .split(',')
            .filter(|part| !part.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        Some(Self {
            start_micros,
            fired,
            distinct,
        })
    }
}

/// **`Discovery:Kubernetes/DeniedRequestsBurst`** — Medium (Vigil type).
/// Trigger: one principal (the impersonated user when there is one) refused (403) on at least
/// `threshold` distinct (verb, resource, namespace) combinations within `window` of event time: a
/// stolen credential being tried against what it might reach. A misconfigured client retrying one
/// forbidden call repeats one combination and never fires. Anonymous callers (internet scanners)
/// and the control plane are left out. Fires once per window.
/// Key: principal.
#[derive(Debug)]
pub struct DeniedRequestsBurst {
    threshold: usize,
    window_micros: i64,
    capacity: usize,
    windows: std::collections::HashMap<String, DeniedWindow>,
    changes: Vec<StateEntry>,
}

impl DeniedRequestsBurst {
    /// `threshold` distinct denied calls within `window_secs`; at most `capacity` principals tracked.
    pub fn new(threshold: usize, window_secs: i64, capacity: usize) -> Self {
        Self {
            threshold: threshold.max(2),
            window_micros: window_secs.max(1).saturating_mul(1_000_000),
            capacity: capacity.max(1),
            windows: std::collections::HashMap::new(),
            changes: Vec::new(),
        }
    }

    fn evict_expired(&mut self, now_micros: i64) {
        let window = self.window_micros;
        let expired: Vec<String> = self
            .windows
            .iter()
            .filter(|(_, state)| now_micros.saturating_sub(state.start_micros) > window)
            .map(|(key, _)| key.clone())
            .collect();
        for key in expired {
            self.windows.remove(&key);
            self.changes.push(StateEntry::delete(key));
        }
    }
}

impl Default for DeniedRequestsBurst {
    fn default() -> Self {
        Self::new(10, 600, 50_000)
    }
}

fn combination_hash(event: &AuditEvent) -> u64 {
    use std::hash::{Hash, Hasher};
    // Stable across processes and versions: the windows are checkpointed.
    let mut hasher = vigil_schemas::hash::StableHasher::default();
    let object = event.object_ref.as_ref();
    event.verb.hash(&mut hasher);
    resource_of(event).hash(&mut hasher);
    object
        .and_then(|object| object.namespace.as_deref())
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

impl Detector for DeniedRequestsBurst {
    fn name(&self) -> &'static str {
        "denied_requests_burst"
    }
    fn drain_state(&mut self, out: &mut Vec<StateEntry>) {
        out.append(&mut self.changes);
    }
    fn restore(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        match value.map(checkpoint::decode::<DeniedWindow>) {
            Some(Ok(window)) => {
                self.windows.insert(key.to_owned(), window);
                true
            }
            None => {
                self.windows.remove(key);
                true
            }
            Some(Err(_)) => {
                self.windows.remove(key);
                false
            }
        }
    }
    fn source(&self) -> crate::Source {
        crate::Source::Audit
    }
    fn inspect_audit(
        &mut self,
        event: &AuditEvent,
        enriched: &EnrichedEvent,
        out: &mut Vec<Detection>,
    ) {
        if event.status_code != Some(403) || is_anonymous(event) {
            return;
        }
        let user = effective_user(event);
        if is_system_username(&user.username) {
            return;
        }
        let key = format!("{}|{}", enriched.cluster.name, user.username);
        let now = event.event_time_micros;
        if !self.windows.contains_key(&key) && self.windows.len() >= self.capacity {
            self.evict_expired(now);
            if self.windows.len() >= self.capacity {
                return;
            }
        }
        let window_micros = self.window_micros;
        let state = self.windows.entry(key.clone()).or_default();
        if state.distinct.is_empty() || now.saturating_sub(state.start_micros) > window_micros {
            *state = DeniedWindow {
                start_micros: now,
                ..DeniedWindow::default()
            };
        }
        let combination = combination_hash(event);
        if state.distinct.contains(&combination) {
            return;
        }
        state.distinct.push(combination);
        let crossed = !state.fired && state.distinct.len() >= self.threshold;
        if crossed {
            state.fired = true;
            // The distinct set is no longer needed once the window has fired.
            state.distinct.truncate(self.threshold);
        }
        // A window that fails to encode stays in memory only: a restart would lose its count,
        // never a finding already raised.
        if let Ok(entry) = StateEntry::put(key, &*state) {
            self.changes.push(entry);
        }
        if !crossed {
            return;
        }
        let verdict = Verdict {
            finding_type: "Discovery:Kubernetes/DeniedRequestsBurst".into(),
            severity: severity::MEDIUM,
            title: format!(
                "{} was refused {} different API calls in a short time.",
                user.username, self.threshold
            ),
            description: format!(
                "{} was refused (403) on {} different combinations of verb, resource and namespace within {} minutes in cluster {}, the latest {} {}. Someone is trying out what a credential can reach.",
                user.username,
                self.threshold,
                self.window_micros / vigil_schemas::time::MINUTE_MICROS,
                enriched.cluster.name,
                event.verb,
                event.request_uri
            ),
            aggregation_key: vec![user.username.clone()],
        };
        out.push(detection(enriched, event, self.name(), verdict));
    }
}
