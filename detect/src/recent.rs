//! detect's guard against upstream replays: events an at-least-once stage wrote twice are seen
//! once.

use vigil_schemas::EnrichedEvent;

use crate::bounded::FifoSet;

/// Events remembered per input partition by detect's duplicate guard. An upstream stage killed
/// and restarted writes again what it wrote since its last commit (a second or two of its input,
/// plus what was in flight); the window is far beyond that at the rates one partition carries.
pub const DUPLICATE_WINDOW: usize = 50_000;

/// The events of the last [`DUPLICATE_WINDOW`] inputs of each partition, by a hash of their
/// identity (an audit event's `auditID` and stage, a runtime event's id). Ingest and enrich are
/// at-least-once: after a crash they write again the events since their last commit, and the
/// baselines must not count those twice. A cluster's events share one partition from ingest on,
/// so a duplicate lands on the partition of its original, a little after it. Rebuilt after an
/// assignment from the inputs before the resume point (the Kafka runtime's recall).
#[derive(Debug)]
pub struct RecentEvents {
    window: usize,
    partitions: std::collections::HashMap<i32, FifoSet<u64>>,
}

impl RecentEvents {
    pub fn new(window: usize) -> Self {
        Self {
            window,
            partitions: std::collections::HashMap::new(),
        }
    }

    pub fn window(&self) -> usize {
        self.window
    }

    /// Remembers the event; false when it is among the partition's recent ones already.
    pub fn first_time(&mut self, partition: i32, event: &EnrichedEvent) -> bool {
        let Some(id) = event_identity(event) else {
            return true;
        };
        let window = self.window;
        self.partitions
            .entry(partition)
            .or_insert_with(|| FifoSet::new(window))
            .insert(id)
            .is_some()
    }

    pub fn retain_partitions(&mut self, assigned: &[i32]) {
        self.partitions
            .retain(|partition, _| assigned.contains(partition));
    }
}

/// A hash of what makes an event itself (`None` for a record carrying neither kind).
fn event_identity(event: &EnrichedEvent) -> Option<u64> {
    use vigil_schemas::hash::{FNV64_OFFSET, fnv1a_64_seeded};
    // Clusters share partitions: one cluster's id says nothing of another's. Parts are hashed in
    // turn with a byte no name holds between them, so ("ab", "c") and ("a", "bc") differ; no
    // allocation on this per-event path.
    //
    // An audit id is set by the client (the `Audit-ID` header): an attacker reusing one must not
    // pass as a replay of the original, so the request itself is part of the identity (a replay
    // is the same record again, equal in every field).
    let mut hash = fnv1a_64_seeded(FNV64_OFFSET, event.cluster.name.as_bytes());
    let mut add = |part: &[u8]| hash = fnv1a_64_seeded(fnv1a_64_seeded(hash, b"\0"), part);
    if let Some(audit) = &event.audit {
        add(b"audit");
        add(audit.audit_id.as_bytes());
        add(audit.stage.as_bytes());
        add(&audit.event_time_micros.to_le_bytes());
        add(audit.verb.as_bytes());
        add(audit.request_uri.as_bytes());
        add(audit.user.username.as_bytes());
        for ip in &audit.source_ips {
            add(ip.as_bytes());
        }
        add(audit.user_agent.as_deref().unwrap_or_default().as_bytes());
    } else if let Some(runtime) = &event.runtime {
        add(b"runtime");
        add(runtime.event_id.as_bytes());
    } else {
        return None;
    }
    Some(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_schemas::{AuditEvent, RuntimeEvent};

    fn audit(id: &str, stage: &str) -> EnrichedEvent {
        EnrichedEvent {
            audit: Some(AuditEvent {
                audit_id: id.into(),
                stage: stage.into(),
                ..AuditEvent::default()
            }),
            ..EnrichedEvent::default()
        }
    }

    #[test]
    fn an_event_written_again_is_recognised_and_a_new_one_is_not() {
        let mut recent = RecentEvents::new(3);
        assert!(recent.first_time(0, &audit("a", "ResponseComplete")));
        assert!(!recent.first_time(0, &audit("a", "ResponseComplete")));
        // The two stages of one exec request are two events; another partition has its own memory.
        assert!(recent.first_time(0, &audit("a", "ResponseStarted")));
        assert!(recent.first_time(1, &audit("a", "ResponseComplete")));
        // The same id on another request (a client sets it): not a replay.
        let mut reused = audit("a", "ResponseComplete");
        reused.audit.as_mut().unwrap().user.username = "mallory".into();
        assert!(recent.first_time(0, &reused));
        assert!(!recent.first_time(0, &reused));
        let runtime = EnrichedEvent {
            runtime: Some(RuntimeEvent {
                event_id: "a".into(),
                ..RuntimeEvent::default()
            }),
            ..EnrichedEvent::default()
        };
        assert!(recent.first_time(0, &runtime));
        assert!(!recent.first_time(0, &runtime));
    }

    #[test]
    fn the_window_forgets_the_oldest_and_an_unassigned_partition_is_forgotten() {
        let mut recent = RecentEvents::new(2);
        for id in ["a", "b", "c"] {
            assert!(recent.first_time(0, &audit(id, "ResponseComplete")));
        }
        // "a" fell out of a window of two; "c" is still remembered.
        assert!(recent.first_time(0, &audit("a", "ResponseComplete")));
        assert!(!recent.first_time(0, &audit("c", "ResponseComplete")));
        recent.retain_partitions(&[1]);
        assert!(recent.first_time(0, &audit("c", "ResponseComplete")));
    }
}
