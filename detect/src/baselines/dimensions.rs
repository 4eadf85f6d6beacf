//! The values a profile learns, as its dimensions spell them: a user agent's family, a caller's
//! network origin, the time of week, an image's repository and registry, a library's family.

use super::profile::DAY_MICROS;

/// What a profile learns values of: one word each, spelled on the wire (checkpoints and findings'
/// `anomaly.dimension`) as GuardDuty spells its own (camelCase).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// A kind of call: verb and resource (`create pods/exec`).
    ApiCall,
    /// A kind of call the principal was refused.
    RefusedCall,
    /// The namespace acted in (`(cluster)` for cluster-wide calls).
    Namespace,
    /// The client's family and major version (`kubectl/1`).
    UserAgent,
    /// Where the caller called from: an autonomous system, a cloud, a private /16, in-cluster.
    NetworkOrigin,
    /// An image repository run in a workload the principal deployed.
    Image,
    /// A permission asked about (`kubectl auth can-i`).
    PermissionChecked,
    /// A registry images come from.
    Registry,
    /// An image run privileged.
    PrivilegedImage,
    /// An image given the host's namespaces or paths.
    HostAccessImage,
    /// The hour of the week.
    TimeOfWeek,
    /// A peer group's members.
    Member,
    /// Who acts in a namespace.
    Principal,
    /// An executable run in an image.
    Executable,
    /// A parent and child executable pair (`sh>curl`).
    ProcessTree,
    /// A shared library loaded, its version aside.
    Library,
    /// An outbound destination: a domain, or a public /24.
    Destination,
    /// Secret reads in an hour (the volume baselines).
    SecretReadsPerHour,
    /// Permission checks in an hour (the volume baselines).
    PermissionChecksPerHour,
    /// Denied requests in an hour (the volume baselines).
    DeniedRequestsPerHour,
}

impl Dimension {
    /// The spelling in checkpoints and findings.
    pub const fn label(self) -> &'static str {
        match self {
            Self::ApiCall => "apiCall",
            Self::RefusedCall => "refusedCall",
            Self::Namespace => "namespace",
            Self::UserAgent => "userAgent",
            Self::NetworkOrigin => "networkOrigin",
            Self::Image => "image",
            Self::PermissionChecked => "permissionChecked",
            Self::Registry => "registry",
            Self::PrivilegedImage => "privilegedImage",
            Self::HostAccessImage => "hostAccessImage",
            Self::TimeOfWeek => "timeOfWeek",
            Self::Member => "member",
            Self::Principal => "principal",
            Self::Executable => "executable",
            Self::ProcessTree => "processTree",
            Self::Library => "library",
            Self::Destination => "destination",
            Self::SecretReadsPerHour => "secretReadsPerHour",
            Self::PermissionChecksPerHour => "permissionChecksPerHour",
            Self::DeniedRequestsPerHour => "deniedRequestsPerHour",
        }
    }
}

impl std::fmt::Display for Dimension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// `kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819` → `kubectl/1`; `python-requests/2.31.0` →
/// `python-requests/2`: a client's product and major version, so that upgrades do not look new but a
/// different client does.
pub fn user_agent_family(agent: &str) -> String {
    let product = agent.split_whitespace().next().unwrap_or_default();
    let (name, version) = product.split_once('/').unwrap_or((product, ""));
    let major = version
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .next()
        .unwrap_or_default();
    if major.is_empty() {
        name.to_owned()
    } else {
        format!("{name}/{major}")
    }
}

/// Where a call came from. Public addresses by /24 (IPv6 /48): a new network is a new place. Private
/// ones (in-cluster, VPC) by /16: pods move between nodes and their subnets daily, which is not news.
pub fn network_origin(ip: &str, scope: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            if scope == "public" {
                format!("{scope} {a}.{b}.{c}.0/24")
            } else {
                format!("{scope} {a}.{b}.0.0/16")
            }
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let [a, b, c, ..] = v6.segments();
            format!("{scope} {a:x}:{b:x}:{c:x}::/48")
        }
        Err(_) => format!("{scope} {ip}"),
    }
}

/// Where a caller came from: a public address by its autonomous system when the user's ASN database
/// names one (`public AS16509 AMAZON-02`: a person's home ISP hands out new /24s, not new ASNs); a
/// private one as `in-cluster` (any pod: pods move between nodes and subnets all the time) or `vpc
/// 10.0.0.0/16` when the cluster's ranges are configured; otherwise as [`network_origin`] says.
pub fn caller_origin(ip: &vigil_schemas::IpIntel) -> String {
    match (ip.scope.as_str(), ip.asn, ip.network.as_deref()) {
        ("public", Some(asn), _) => match ip.as_organization.as_deref() {
            Some(organization) => format!("public AS{asn} {organization}"),
            None => format!("public AS{asn}"),
        },
        ("private", _, Some("in-cluster")) => "in-cluster".to_owned(),
        ("private", _, Some(network)) => network_origin(&ip.ip, network),
        _ => network_origin(&ip.ip, &ip.scope),
    }
}

/// Six-hour blocks of the week, weekdays and weekends apart: `weekday 06-12`, `weekend 18-24`.
pub fn time_of_week(micros: i64) -> String {
    let days = micros.div_euclid(DAY_MICROS);
    // 1970-01-01 was a Thursday (day 3 of a week starting Monday).
    let weekday = (days + 3).rem_euclid(7);
    let hour = micros.rem_euclid(DAY_MICROS) / vigil_schemas::time::HOUR_MICROS;
    let block = hour / 6 * 6;
    let part = if weekday >= 5 { "weekend" } else { "weekday" };
    format!("{part} {block:02}-{:02}", block + 6)
}

/// The registry of an image repository: `registry.example:5000/shop/web` → `registry.example:5000`;
/// Docker Hub's short forms (`nginx`, `bitnami/redis`) → `docker.io`.
pub(super) fn image_registry(repository: &str) -> &str {
    match repository.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// An image without its tag or digest: `registry.example/shop/web`.
pub(super) fn image_repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rsplit_once(':') {
        // A colon after the last slash is a tag; before it, a registry port.
        Some((repository, tag)) if !tag.contains('/') => repository,
        _ => image,
    }
}

/// A shared library without its version suffix (`/usr/lib/libssl.so.3.0.2` → `/usr/lib/libssl.so`),
/// so that a patch release of the image does not look like a new library; its directory is kept (a
/// library loaded from `/tmp` is not the one in `/usr/lib`).
pub(super) fn library_family(path: &str) -> &str {
    match path.find(".so.") {
        Some(at) => path.get(..at + 3).unwrap_or(path),
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimension_values() {
        assert_eq!(
            user_agent_family("kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819"),
            "kubectl/1"
        );
        assert_eq!(
            user_agent_family("python-requests/2.31.0"),
            "python-requests/2"
        );
        assert_eq!(user_agent_family("curl"), "curl");
        assert_eq!(
            network_origin("10.0.3.17", "private"),
            "private 10.0.0.0/16"
        );
        assert_eq!(
            network_origin("203.0.113.9", "public"),
            "public 203.0.113.0/24"
        );
        assert_eq!(
            network_origin("2001:db8:1:2::5", "public"),
            "public 2001:db8:1::/48"
        );
        let caller = |ip: &str, scope: &str, asn: Option<i64>, network: Option<&str>| {
            caller_origin(&vigil_schemas::IpIntel {
                ip: ip.into(),
                scope: scope.into(),
                asn,
                as_organization: asn.map(|_| "Example".to_owned()),
                network: network.map(str::to_owned),
                ..vigil_schemas::IpIntel::default()
            })
        };
        assert_eq!(
            caller("203.0.113.9", "public", Some(64500), None),
            "public AS64500 Example"
        );
        assert_eq!(
            caller("203.0.113.9", "public", None, None),
            "public 203.0.113.0/24"
        );
        assert_eq!(
            caller("100.64.7.3", "private", None, Some("in-cluster")),
            "in-cluster"
        );
        assert_eq!(
            caller("10.0.9.14", "private", None, Some("vpc")),
            "vpc 10.0.0.0/16"
        );
        assert_eq!(
            caller("10.0.9.14", "private", None, None),
            "private 10.0.0.0/16"
        );
        // 2024-03-12 (a Tuesday) 14:00 UTC.
        assert_eq!(time_of_week(1_710_252_000_000_000), "weekday 12-18");
        // 2024-03-16, a Saturday, 03:00.
        assert_eq!(time_of_week(1_710_558_000_000_000), "weekend 00-06");
    }

    #[test]
    fn library_versions_are_one_library_and_directories_stay_apart() {
        assert_eq!(
            library_family("/usr/lib/x86_64-linux-gnu/libssl.so.3"),
            "/usr/lib/x86_64-linux-gnu/libssl.so"
        );
        assert_eq!(
            library_family("/usr/lib/libz.so.1.2.13"),
            "/usr/lib/libz.so"
        );
        assert_eq!(library_family("/tmp/libz.so.1"), "/tmp/libz.so");
        assert_eq!(library_family("/opt/app/plugin.so"), "/opt/app/plugin.so");
        assert_eq!(library_family("so."), "so.");
    }
}
