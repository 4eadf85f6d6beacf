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
}

#[derive(Debug, thiserror::Error)]
#[error("cluster configuration: {0}")]
pub struct ClusterConfigError(String);

/// The name given to events when no configuration names a cluster.
pub const DEFAULT_CLUSTER_NAME: &str = "default";

impl ClusterConfig {
    pub fn parse(text: &str) -> Result<Self, ClusterConfigError> {
        let config: Self =
            toml::from_str(text).map_err(|error| ClusterConfigError(error.to_string()))?;
        config.validated()
    }

    /// Checks that the default cluster is among the clusters.
    pub fn validated(self) -> Result<Self, ClusterConfigError> {
        let config = self;
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

fn details(entry: &ClusterEntry) -> ClusterDetails {
    let partition = entry.partition.clone().unwrap_or_else(|| "aws".to_owned());
    let arn = entry
        .arn
        .clone()
        .or_else(|| match (&entry.region, &entry.account_id) {
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
    fn a_bad_configuration_says_what_is_wrong() {
        let error = ClusterConfig::parse("default_cluster = \"x\"\n").unwrap_err();
        assert!(error.to_string().contains("\"x\""), "{error}");
        let error =
            ClusterConfig::parse("[[clusters]]\nname = \"a\"\nregoin = \"typo\"\n").unwrap_err();
        assert!(error.to_string().contains("regoin"), "{error}");
    }
}
