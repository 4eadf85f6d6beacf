//! enrich: joins onto each event the cluster it came from, what the inventory knows of the pods it
//! touches, and what threat intelligence says of the caller's address. No I/O: configuration and
//! lists arrive as text, and the inventory is learned from the audit stream itself.

pub mod asn;
pub mod cidr;
pub mod cluster;
pub mod intel;
pub mod inventory;
pub mod process;
pub mod providers;
pub mod tor_relays;

pub use asn::AsnDatabase;
pub use cluster::{ClusterConfig, ClusterConfigError};
pub use intel::{IpSet, ListFormat, NamedList, ThreatIntel};
pub use inventory::Inventory;
pub use process::ProcessTable;
pub use providers::ProviderRanges;
pub use tor_relays::TorRelays;
use vigil_schemas::{AuditEvent, EnrichedEvent, Event, IpIntel, IpScope, RuntimeEvent};

/// The enrich stage's state.
#[derive(Debug, Default)]
pub struct Enricher {
    clusters: ClusterConfig,
    intel: ThreatIntel,
    inventory: Inventory,
    processes: ProcessTable,
}

impl Enricher {
    pub fn new(clusters: ClusterConfig, intel: ThreatIntel, inventory: Inventory) -> Self {
        Self {
            clusters,
            intel,
            inventory,
            processes: ProcessTable::default(),
        }
    }

    pub fn processes(&self) -> &ProcessTable {
        &self.processes
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

    /// A private address placed in the cluster's network (pods, VPC) when its ranges are configured;
    /// a public one that is the cluster's own (its NAT gateways, its nodes' public addresses) is
    /// `cluster`, whatever provider announces it.
    fn placed(&self, cluster: &str, mut intel: IpIntel) -> IpIntel {
        if let Ok(ip) = intel.ip.parse() {
            if intel.ip_scope() == Some(IpScope::Private) {
                intel.network = self.clusters.network_of(cluster, ip).map(str::to_owned);
            } else if intel.ip_scope() == Some(IpScope::Public)
                && self.clusters.owns_public(cluster, ip)
            {
                intel.network = Some("cluster".to_owned());
            }
        }
        intel
    }

    /// An event of either source.
    pub fn enrich(&mut self, event: Event) -> EnrichedEvent {
        match event {
            Event::Audit(event) => self.enrich_audit(*event),
            Event::Runtime(event) => self.enrich_runtime(*event),
        }
    }

    pub fn enrich_audit(&mut self, event: AuditEvent) -> EnrichedEvent {
        let mut cluster = self.clusters.resolve(event.cluster_hint.as_deref());
        if cluster.provider.is_none() {
            cluster.provider.clone_from(&event.cloud_provider);
        }
        // Every address is judged. `sourceIPs` is X-Forwarded-For (which the client writes), then
        // X-Real-Ip, then the peer the API server saw (last): a first entry may be anything the
        // caller chose. The caller is taken to be the address that says most: one on a threat list
        // or a Tor exit anywhere in the list, else a public one not trusted, else a trusted public
        // one, else any; among equals the last, the one nearest the API server. A private or
        // trusted address written first cannot make a public caller look internal or trusted.
        let source_ip = event
            .source_ips
            .iter()
            .filter_map(|ip| self.intel.classify(ip))
            .map(|intel| self.placed(&cluster.name, intel))
            .enumerate()
            .max_by_key(|(position, intel)| (caller_weight(intel), *position))
            .map(|(_, intel)| intel);
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
            ..EnrichedEvent::default()
        }
    }

    /// A runtime event with its cluster, its pod as the inventory knows it, its process lineage,
    /// whether its binary was written in the container, and what the lists say of the remote
    /// address and domain it talked to.
    pub fn enrich_runtime(&mut self, event: RuntimeEvent) -> EnrichedEvent {
        let cluster = self.clusters.resolve(event.cluster_hint.as_deref());
        let context = self.processes.observe(&event);
        let target = match (&event.pod_namespace, &event.pod_name) {
            (Some(namespace), Some(pod)) => {
                let mut workload = self
                    .inventory
                    .pod(&cluster.name, namespace, pod)
                    .unwrap_or_else(|| vigil_schemas::InventoryWorkload {
                        namespace: namespace.clone(),
                        pod_name: pod.clone(),
                        ..Default::default()
                    });
                if workload.node_name.is_none() {
                    workload.node_name = event.node_name.clone();
                }
                if workload.images.is_empty() {
                    workload.images.extend(event.image.clone());
                }
                Some(workload)
            }
            _ => None,
        };
        let remote = event
            .network
            .as_ref()
            .and_then(|network| network.destination_ip.as_deref())
            .or_else(|| event.dns_answers.first().map(String::as_str));
        let destination_ip = remote
            .and_then(|ip| self.intel.classify(ip))
            .map(|intel| self.placed(&cluster.name, intel));
        let domain = event.dns_query.as_deref().or_else(|| {
            event
                .network
                .as_ref()
                .and_then(|network| network.destination_domain.as_deref())
        });
        let domain_matches = domain
            .map(|name| self.intel.classify_domain(name))
            .unwrap_or_default();
        let file_matches = event
            .file_sha256
            .as_deref()
            .map(|hash| self.intel.classify_file(hash))
            .unwrap_or_default();
        EnrichedEvent {
            workload_owner_kind: target.as_ref().and_then(|t| t.workload_kind.clone()),
            workload_owner_name: target.as_ref().and_then(|t| t.workload_name.clone()),
            runtime: Some(event),
            cluster,
            target,
            lineage: context.lineage,
            binary_written_in_container: context.binary_written_in_container,
            destination_ip,
            domain_matches,
            file_matches,
            ..EnrichedEvent::default()
        }
    }
}

/// How much an address of `sourceIPs` says about the caller: listed (a threat list, a Tor exit or
/// relay) 3, public and neither trusted nor the cluster's own (its NAT gateways) 2, another public
/// one 1, anything else 0.
fn caller_weight(intel: &IpIntel) -> u8 {
    if intel.tor_exit || intel.tor_relay || !intel.threat_matches.is_empty() {
        3
    } else if intel.ip_scope() == Some(IpScope::Public)
        && !intel.trusted
        && intel.network.as_deref() != Some("cluster")
    {
        2
    } else if intel.ip_scope() == Some(IpScope::Public) {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_callers_are_placed_in_their_clusters_network() {
        let clusters = ClusterConfig::parse(
            "[[clusters]]\nname = \"prod\"\npod_cidrs = [\"100.64.0.0/16\"]\nvpc_cidrs = [\"10.0.0.0/16\"]\n",
        )
        .unwrap_or_default();
        let mut enricher = Enricher::new(clusters, ThreatIntel::default(), Inventory::default());
        let from = |ip: &str| AuditEvent {
            audit_id: ip.into(),
            cluster_hint: Some("prod".into()),
            source_ips: vec![ip.into()],
            ..AuditEvent::default()
        };
        let network = |enricher: &mut Enricher, ip: &str| {
            enricher
                .enrich_audit(from(ip))
                .source_ip
                .and_then(|intel| intel.network)
        };
        assert_eq!(
            network(&mut enricher, "100.64.3.7").as_deref(),
            Some("in-cluster")
        );
        assert_eq!(network(&mut enricher, "10.0.4.1").as_deref(), Some("vpc"));
        assert_eq!(network(&mut enricher, "192.168.0.1"), None);
        assert_eq!(
            network(&mut enricher, "203.0.113.9"),
            None,
            "public: not placed"
        );
    }
}
