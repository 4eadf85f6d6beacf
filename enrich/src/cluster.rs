//! Cluster metadata from the cluster configuration (TOML):
//!
//! ```toml
//! default_cluster = "prod-east"          # for events that name no cluster; else the first listed
//! [[clusters]]
//! name = "prod-east"
//! account_id = "111122223333"
//! region = "us-east-1"
//! arn = "arn:aws:eks:us-east-1:111122223333:cluster/prod-east"   # derived when left out
//! vpc_id = "vpc-0abc"
//! pod_cidrs = ["100.64.0.0/16"]          # optional: callers from pods are "in-cluster"
//! vpc_cidrs = ["10.0.0.0/16"]            # optional: callers from nodes and the VPC are "vpc"
//! public_cidrs = ["203.0.113.10/32"]     # optional: its NAT gateways and nodes' public addresses
//! provider = "aws"                       # aws (the default), azure or gcp
//! tags = { team = "platform" }
//! ```

use serde::Deserialize;
use vigil_schemas::{ClusterDetails, KeyValue};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    #[serde(default)]
    pub default_cluster: Option<String>,
    #[serde(default)]
    pub clusters: Vec<ClusterEntry>,
    /// Each cluster's pod and VPC ranges, parsed once by [`ClusterConfig::validated`].
    #[serde(skip)]
    networks: Vec<(String, crate::IpSet, crate::IpSet, crate::IpSet)>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterEntry {
    pub name: String,
    pub account_id: Option<String>,
    pub region: Option<String>,
    pub arn: Option<String>,
    pub vpc_id: Option<String>,
    pub partition: Option<String>,
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// The pods' address ranges (an overlay CNI's pod CIDR, or the VPC CNI's pod subnets): a
    /// private caller from them is `in-cluster`.
    #[serde(default)]
    pub pod_cidrs: Vec<String>,
    /// The VPC's ranges (nodes, bastions, other services): a private caller from them, not a pod,
    /// is `vpc`.
    #[serde(default)]
    pub vpc_cidrs: Vec<String>,
    /// The cluster's own public addresses (NAT gateways, nodes with public addresses): a caller from
    /// them is the cluster itself (`IpIntel.network` = `cluster`), not an outsider.
    #[serde(default)]
    pub public_cidrs: Vec<String>,
    /// The cloud the cluster runs in: `aws`, `azure`, `gcp`; else what its log's envelope says.
    #[serde(default)]
    pub provider: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("cluster configuration: {0}")]
pub struct ClusterConfigError(String);

/// The name given to events when no configuration names a cluster.
pub const DEFAULT_CLUSTER_NAME: &str = "default";

impl ClusterConfig {
    /// Clusters from elsewhere (the settings file); [`ClusterConfig::validated`] checks them.
    pub fn new(default_cluster: Option<String>, clusters: Vec<ClusterEntry>) -> Self {
        Self {
            default_cluster,
            clusters,
            networks: Vec::new(),
        }
    }

    pub fn parse(text: &str) -> Result<Self, ClusterConfigError> {
        let config: Self =
            toml::from_str(text).map_err(|error| ClusterConfigError(error.to_string()))?;
        config.validated()
    }

    /// Checks that the default cluster is among the clusters and that their ranges are CIDRs.
    pub fn validated(self) -> Result<Self, ClusterConfigError> {
        let mut config = self;
        config.networks.clear();
        for cluster in &config.clusters {
            let mut ranges = [
                crate::IpSet::default(),
                crate::IpSet::default(),
                crate::IpSet::default(),
            ];
            for (set, (key, cidrs)) in ranges.iter_mut().zip([
                ("pod_cidrs", &cluster.pod_cidrs),
                ("vpc_cidrs", &cluster.vpc_cidrs),
                ("public_cidrs", &cluster.public_cidrs),
            ]) {
                for cidr in cidrs {
                    if !set.insert(cidr) {
                        return Err(ClusterConfigError(format!(
                            "cluster {:?}: {key} entry {cidr:?} is not an IP range",
                            cluster.name
                        )));
                    }
                }
            }
            let [pods, vpc, public] = ranges;
            if !pods.is_empty() || !vpc.is_empty() || !public.is_empty() {
                config
                    .networks
                    .push((cluster.name.clone(), pods, vpc, public));
            }
        }
        if let Some(default) = &config.default_cluster
            && !config
                .clusters
                .iter()
                .any(|cluster| &cluster.name == default)
        {
            return Err(ClusterConfigError(format!(
                "default_cluster {default:?} is not among [[clusters]]"
            )));
        }
        Ok(config)
    }

    /// The cluster an event belongs to: the one it names if configured, else the default.
    pub fn resolve(&self, hint: Option<&str>) -> ClusterDetails {
        let configured = hint
            .and_then(|hint| self.clusters.iter().find(|cluster| cluster.name == hint))
            .or_else(|| match &self.default_cluster {
                Some(default) if hint.is_none() => self
                    .clusters
                    .iter()
                    .find(|cluster| &cluster.name == default),
                _ if hint.is_none() => self.clusters.first(),
                _ => None,
            });
        match configured {
            Some(entry) => details(entry),
            None => ClusterDetails {
                name: hint.unwrap_or(DEFAULT_CLUSTER_NAME).to_owned(),
                partition: "aws".to_owned(),
                ..ClusterDetails::default()
            },
        }
    }
}

impl ClusterConfig {
    /// Where in a cluster's network a private address is: `in-cluster` (its pods), `vpc` (its VPC),
    /// or `None` when the cluster's ranges are not configured or hold it not.
    pub fn network_of(&self, cluster: &str, ip: std::net::IpAddr) -> Option<&'static str> {
        let (_, pods, vpc, _) = self.networks.iter().find(|(name, ..)| name == cluster)?;
        if pods.contains(ip) {
            Some("in-cluster")
        } else if vpc.contains(ip) {
            Some("vpc")
        } else {
            None
        }
    }
}

impl ClusterConfig {
    /// The public address is one of the cluster's own (`public_cidrs`).
    pub fn owns_public(&self, cluster: &str, ip: std::net::IpAddr) -> bool {
        self.networks
            .iter()
            .find(|(name, ..)| name == cluster)
            .is_some_and(|(.., public)| public.contains(ip))
    }
}

fn details(entry: &ClusterEntry) -> ClusterDetails {
    let partition = entry.partition.clone().unwrap_or_else(|| "aws".to_owned());
    let on_aws = entry
        .provider
        .as_deref()
        .is_none_or(|provider| provider == "aws");
    let arn = entry
        .arn
        .clone()
        .or_else(|| match (&entry.region, &entry.account_id) {
            _ if !on_aws => None,
            (Some(region), Some(account)) => Some(format!(
                "arn:{partition}:eks:{region}:{account}:cluster/{}",
                entry.name
            )),
            _ => None,
        });
    ClusterDetails {
        name: entry.name.clone(),
        account_id: entry.account_id.clone(),
        region: entry.region.clone(),
        arn,
        vpc_id: entry.vpc_id.clone(),
        provider: entry.provider.clone(),
        partition,
        tags: entry
            .tags
            .iter()
            .map(|(key, value)| KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
default_cluster = "prod"
[[clusters]]
name = "staging"
[[clusters]]
name = "prod"
account_id = "111122223333"
region = "eu-west-1"
tags = { team = "platform" }
"#;

    #[test]
    fn events_take_their_named_cluster_or_the_default() {
        let config = ClusterConfig::parse(CONFIG).unwrap();
        let prod = config.resolve(None);
        assert_eq!(prod.name, "prod");
        assert_eq!(
            prod.arn.as_deref(),
            Some("arn:aws:eks:eu-west-1:111122223333:cluster/prod")
        );
        assert_eq!(
            prod.tags,
            [KeyValue {
                key: "team".into(),
                value: "platform".into()
            }]
        );
        assert_eq!(config.resolve(Some("staging")).name, "staging");
        // A cluster named by the input but not configured keeps its own name.
        assert_eq!(config.resolve(Some("other")).name, "other");
        assert_eq!(
            ClusterConfig::default().resolve(None).name,
            DEFAULT_CLUSTER_NAME
        );
    }

    #[test]
    fn pods_and_the_vpc_are_told_apart_by_the_configured_ranges() {
        let config = ClusterConfig::parse(
            "[[clusters]]\nname = \"prod\"\npod_cidrs = [\"100.64.0.0/16\"]\nvpc_cidrs = [\"10.0.0.0/16\", \"100.64.0.0/10\"]\n[[clusters]]\nname = \"other\"\n",
        )
        .unwrap();
        let ip = |text: &str| text.parse().unwrap();
        assert_eq!(
            config.network_of("prod", ip("100.64.3.7")),
            Some("in-cluster")
        );
        assert_eq!(config.network_of("prod", ip("100.65.0.1")), Some("vpc"));
        assert_eq!(config.network_of("prod", ip("10.0.9.9")), Some("vpc"));
        assert_eq!(config.network_of("prod", ip("192.168.1.1")), None);
        assert_eq!(config.network_of("other", ip("100.64.3.7")), None);
        let error = ClusterConfig::parse("[[clusters]]\nname = \"a\"\npod_cidrs = [\"pods\"]\n")
            .unwrap_err();
        assert!(
            error.to_string().contains("pod_cidrs entry \"pods\""),
            "{error}"
        );
    }

    #[test]
    fn a_bad_configuration_says_what_is_wrong() {
        let error = ClusterConfig::parse("default_cluster = \"x\"\n").unwrap_err();
        assert!(error.to_string().contains("\"x\""), "{error}");
        let error =
            ClusterConfig::parse("[[clusters]]\nname = \"a\"\nregoin = \"typo\"\n").unwrap_err();
        assert!(error.to_string().contains("regoin"), "{error}");
    }
}
