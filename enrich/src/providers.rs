//! Cloud providers' published address ranges, from a file the user supplies: AWS's `ip-ranges.json`
//! (`prefixes[].ip_prefix`, `ipv6_prefixes[].ipv6_prefix`), Google Cloud's `cloud.json` and
//! `goog.json` (`prefixes[].ipv4Prefix` / `ipv6Prefix`) and Azure's Service Tags file
//! (`values[].properties.addressPrefixes`), told apart by content. An address in them is the
//! provider's (`IpIntel.network` = `aws`, `gcp`, `azure`), not an unknown public caller: EKS's own
//! identities call the API server from AWS-owned addresses every minute.

use serde::Deserialize;

use crate::IpSet;

/// One provider's ranges.
#[derive(Debug, Clone, Default)]
pub struct ProviderRanges {
    /// `aws`, `gcp` or `azure`.
    pub provider: String,
    pub set: IpSet,
    /// Prefixes that were not CIDRs, ignored (counted for the operator's notes).
    pub bad_prefixes: usize,
}

#[derive(Deserialize)]
struct RangesFile {
    #[serde(default)]
    prefixes: Vec<Prefix>,
    #[serde(default)]
    ipv6_prefixes: Vec<Prefix>,
    #[serde(default)]
    values: Vec<AzureValue>,
    #[serde(default, rename = "syncToken")]
    sync_token: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Prefix {
    ip_prefix: Option<String>,
    ipv6_prefix: Option<String>,
    #[serde(rename = "ipv4Prefix")]
    ipv4_prefix_gcp: Option<String>,
    #[serde(rename = "ipv6Prefix")]
    ipv6_prefix_gcp: Option<String>,
}

#[derive(Deserialize)]
struct AzureValue {
    properties: Option<AzureProperties>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AzureProperties {
    #[serde(default)]
    address_prefixes: Vec<String>,
}

/// Why a provider ranges file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProviderRangesError {
    #[error("not a provider ranges file (ip-ranges.json, cloud.json, ServiceTags): {0}")]
    NotRanges(#[from] serde_json::Error),
    #[error("no address range read: the file has no prefixes")]
    Empty,
}

impl ProviderRanges {
    /// Reads one ranges file. Fails when it is not JSON of one of the three shapes or holds no range.
    pub fn parse(text: &str) -> Result<Self, ProviderRangesError> {
        let file: RangesFile = serde_json::from_str(text)?;
        let aws = file.sync_token.is_some()
            || file
                .prefixes
                .iter()
                .chain(&file.ipv6_prefixes)
                .any(|prefix| prefix.ip_prefix.is_some() || prefix.ipv6_prefix.is_some());
        let provider = if !file.values.is_empty() {
            "azure"
        } else if aws {
            "aws"
        } else {
            "gcp"
        };
        let mut ranges = Self {
            provider: provider.to_owned(),
            ..Self::default()
        };
        let prefixes = file
            .prefixes
            .into_iter()
            .chain(file.ipv6_prefixes)
            .flat_map(|prefix| {
                [
                    prefix.ip_prefix,
                    prefix.ipv6_prefix,
                    prefix.ipv4_prefix_gcp,
                    prefix.ipv6_prefix_gcp,
                ]
            })
            .flatten()
            .chain(
                file.values
                    .into_iter()
                    .filter_map(|value| value.properties)
                    .flat_map(|properties| properties.address_prefixes),
            );
        for prefix in prefixes {
            if !ranges.set.insert(&prefix) {
                ranges.bad_prefixes += 1;
            }
        }
        if ranges.set.is_empty() {
            return Err(ProviderRangesError::Empty);
        }
        Ok(ranges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> std::net::IpAddr {
        text.parse().unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn aws_google_and_azure_files_are_told_apart_and_read() {
        let aws = ProviderRanges::parse(
            r#"{"syncToken": "1", "createDate": "2024-05-01-00-00-00", "prefixes": [
                {"ip_prefix": "52.94.0.0/22", "region": "us-east-1", "service": "AMAZON", "network_border_group": "us-east-1"},
                {"ip_prefix": "bogus", "region": "us-east-1", "service": "EC2"}],
                "ipv6_prefixes": [{"ipv6_prefix": "2600:1f18::/33", "region": "us-east-1", "service": "EC2"}]}"#,
        )
        .unwrap_or_default();
        assert_eq!(aws.provider, "aws");
        assert!(aws.set.contains(ip("52.94.1.7")));
        assert!(aws.set.contains(ip("2600:1f18::1")));
        assert!(!aws.set.contains(ip("52.95.0.1")));
        assert_eq!(aws.bad_prefixes, 1);

        let gcp = ProviderRanges::parse(
            r#"{"creationTime": "2024-05-01T00:00:00", "prefixes": [{"ipv4Prefix": "34.80.0.0/15", "service": "Google Cloud", "scope": "asia-east1"}]}"#,
        )
        .unwrap_or_default();
        assert_eq!(gcp.provider, "gcp");
        assert!(gcp.set.contains(ip("34.81.2.3")));

        let azure = ProviderRanges::parse(
            r#"{"changeNumber": 1, "cloud": "Public", "values": [{"name": "AzureCloud", "properties": {"addressPrefixes": ["20.33.0.0/16"]}}]}"#,
        )
        .unwrap_or_default();
        assert_eq!(azure.provider, "azure");
        assert!(azure.set.contains(ip("20.33.4.5")));
    }

    #[test]
    fn files_without_ranges_are_refused() {
        assert!(ProviderRanges::parse("not json").is_err());
        assert!(ProviderRanges::parse(r#"{"prefixes": []}"#).is_err());
    }
}
