//! enrich: joins onto each event the cluster it came from, what the inventory knows of the pods it
//! touches, and what threat intelligence says of the caller's address. No I/O: configuration and
//! lists arrive as text, and the inventory is learned from the audit stream itself.

pub mod cluster;
pub mod intel;
pub mod inventory;

pub use cluster::{ClusterConfig, ClusterConfigError};
pub use intel::{IpSet, ListFormat, NamedList, ThreatIntel};
pub use inventory::Inventory;
use vigil_schemas::{AuditEvent, EnrichedEvent};

/// The enrich stage's state.
#[derive(Debug, Default)]
pub struct Enricher {
    clusters: ClusterConfig,
    intel: ThreatIntel,
    inventory: Inventory,
}

impl Enricher {
    pub fn new(clusters: ClusterConfig, intel: ThreatIntel, inventory: Inventory) -> Self {
        Self {
            clusters,
            intel,
            inventory,
        }
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    pub fn intel(&self) -> &ThreatIntel {
        &self.intel
    }

    /// Inventory changes since the last call, to checkpoint (`None` deletes the key).
    pub fn drain_state(&mut self, out: &mut Vec<(String, Option<Vec<u8>>)>) {
        self.inventory.drain_state(out);
    }

    /// Puts back one checkpointed inventory entry; false when it cannot be read.
    pub fn restore(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        self.inventory.restore(key, value)
    }

    /// Replaces the threat lists (after their files changed).
    pub fn set_intel(&mut self, intel: ThreatIntel) {
        self.intel = intel;
    }

    pub fn enrich_audit(&mut self, event: AuditEvent) -> EnrichedEvent {
        let cluster = self.clusters.resolve(event.cluster_hint.as_deref());
        // The first source IP is the client; later ones are proxies it passed through.
        let source_ip = event
            .source_ips
            .first()
            .and_then(|ip| self.intel.classify(ip));
        self.inventory.learn(&cluster.name, &event);
        let target = self.inventory.target_of(&cluster.name, &event);
        let owner = self.inventory.top_owner_of(&cluster.name, &event);
        EnrichedEvent {
            workload_owner_kind: owner.as_ref().map(|(kind, _)| kind.clone()),
            workload_owner_name: owner.map(|(_, name)| name),
            audit: Some(event),
            runtime: None,
            cluster,
            source_ip,
            target,
        }
    }
}
