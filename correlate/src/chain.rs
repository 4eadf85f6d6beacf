//! Chain rules: two signals of one cluster, in order and close in time, linked by the principal or
//! pod they share, that together say what neither says alone. Each raises a finding of its own
//! (types GuardDuty does not have), which publish aggregates, suppresses and correlates like any
//! other. The steps are findings or weak signals (`signal = true` rules in detect).

use vigil_schemas::{Detection, Finding, KeyValue};

/// A chain rule's two steps found: the caller raises its finding with [`ChainRule::detection`],
/// from the second step's finding.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainMatch {
    pub rule: &'static ChainRule,
    /// The actor or pod the steps share (a link key: `user:bob`, `pod:shop/web-1`).
    pub key: String,
    pub first: Signal,
    pub then: Signal,
}

impl ChainMatch {
    /// One occurrence per rule and shared key: whether a chain was completed does not depend on
    /// the order a cluster's signals arrive in (through Kafka, raw partitions interleave), how
    /// many pairs completed it does; so a chain is raised once and its count stays 1.
    pub fn event_id(&self) -> String {
        format!("chain/{}/{}", self.rule.id, self.key)
    }

    /// The chain's finding, with the details of `then_finding` (the finding of [`Self::then`]).
    pub fn detection(&self, then_finding: &Finding) -> Detection {
        self.rule
            .detection(then_finding, &self.key, &self.first, &self.then)
    }
}

use crate::{LinkKind, Signal};

/// One chain rule: a first step, a second step, what they must share, how far apart they may be.
#[derive(Debug)]
pub struct ChainRule {
    pub id: &'static str,
    pub finding_type: &'static str,
    pub severity: f64,
    /// What it finds and why it matters (`vigil rules list`, docs/correlation.md).
    pub doc: &'static str,
    /// The link keys a signal offers as the first step (none: it is not one).
    first: fn(&Signal) -> Vec<String>,
    /// The link keys a signal offers as the second step.
    then: fn(&Signal) -> Vec<String>,
    /// The second step may start at most this long after the first ended (`None`: the window).
    within_minutes: Option<i64>,
    /// A further condition on the pair (first, then).
    pair: fn(&Signal, &Signal) -> bool,
    /// The finding's title, naming the shared key.
    title: fn(&str) -> String,
}

/// Every chain rule.
pub const CHAIN_RULES: [ChainRule; 3] = [
    ChainRule {
        id: "rbac_change_then_workload_change",
        finding_type: "PrivilegeEscalation:Kubernetes/RBACChangeThenWorkloadChange",
        severity: 5.0,
        doc: "A person changes a Role, ClusterRole or binding and within 10 minutes creates or changes a workload: permissions widened, then used to put code in the cluster. ServiceAccounts (Argo CD, Flux, CI) are left out: they do this on every sync.",
        first: |signal| {
            if calls(signal, &["create", "update", "patch"], RBAC) {
                people(signal)
            } else {
                Vec::new()
            }
        },
        then: |signal| {
            if calls(signal, &["create", "update", "patch"], WORKLOADS) {
                people(signal)
            } else {
                Vec::new()
            }
        },
        within_minutes: Some(10),
        pair: |_, _| true,
        title: |key| format!("{} changed RBAC, then a workload.", display(key)),
    },
    ChainRule {
        id: "credential_read_then_used_from_new_network",
        finding_type: "CredentialAccess:Kubernetes/CredentialUsedFromNewNetwork",
        severity: 7.0,
        doc: "A ServiceAccount's credential is read (its token in a pod, or secrets read with it) and within the window the same ServiceAccount calls the API from a public network it did not use before: a token taken out of the cluster. People are left out: they change networks all day.",
        first: |signal| {
            let reads = signal.tactics.iter().any(|(id, _)| id == "TA0006")
                || calls(signal, &["get", "list", "watch"], &["secrets"]);
            if reads {
                service_accounts(signal)
            } else {
                Vec::new()
            }
        },
        then: |signal| {
            if signal.source == "audit" && !public_networks(signal).is_empty() {
                service_accounts(signal)
            } else {
                Vec::new()
            }
        },
        within_minutes: None,
        pair: |first, then| {
            let before = public_networks(first);
            public_networks(then)
                .iter()
                .any(|network| !before.contains(network))
        },
        title: |key| format!("{}'s credential used from a new network.", display(key)),
    },
    ChainRule {
        id: "exec_then_new_outbound_connection",
        finding_type: "Execution:Kubernetes/ExecThenNewOutboundConnection",
        severity: 5.0,
        doc: "Someone execs or attaches into a pod and within 30 minutes a process of that pod reaches a public address: a session inside the pod that talks to the outside.",
        first: |signal| {
            signal
                .entered
                .iter()
                .filter(|key| key.starts_with("pod:"))
                .cloned()
                .collect()
        },
        then: |signal| {
            let reaches_out = signal.source == "runtime"
                && signal
                    .entities
                    .iter()
                    .any(|entity| entity.kind == LinkKind::Endpoint);
            if reaches_out {
                keys(signal, |key| key.starts_with("pod:"))
            } else {
                Vec::new()
            }
        },
        within_minutes: Some(30),
        pair: |_, _| true,
        title: |key| format!("Exec into {}, then a connection out.", display(key)),
    },
];

const RBAC: &[&str] = &[
    "roles",
    "rolebindings",
    "clusterroles",
    "clusterrolebindings",
];
const WORKLOADS: &[&str] = &[
    "pods",
    "deployments",
    "daemonsets",
    "statefulsets",
    "replicasets",
    "jobs",
    "cronjobs",
];

/// An audit signal's call is one of these verbs on one of these resources (no subresource).
fn calls(signal: &Signal, verbs: &[&str], resources: &[&str]) -> bool {
    signal.source == "audit"
        && signal
            .indicators
            .iter()
            .filter(|indicator| indicator.key == "HIGH_RISK_API")
            .flat_map(|indicator| &indicator.values)
            .any(|call| {
                call.split_once(' ').is_some_and(|(verb, resource)| {
                    verbs.contains(&verb) && resources.contains(&resource)
                })
            })
}

fn keys(signal: &Signal, wanted: impl Fn(&str) -> bool) -> Vec<String> {
    signal
        .entities
        .iter()
        .filter(|entity| entity.links && wanted(&entity.key))
        .map(|entity| entity.key.clone())
        .collect()
}

/// The users that are people (not `system:` identities, not EKS's own).
fn people(signal: &Signal) -> Vec<String> {
    keys(signal, |key| {
        key.strip_prefix("user:")
            .is_some_and(|name| !name.starts_with("system:") && !name.starts_with("eks:"))
    })
}

fn service_accounts(signal: &Signal) -> Vec<String> {
    keys(signal, |key| key.starts_with("user:system:serviceaccount:"))
}

/// The public networks a signal's addresses are in: an IPv4 address's /24, an IPv6 address's /48.
fn public_networks(signal: &Signal) -> Vec<String> {
    signal
        .entities
        .iter()
        .filter_map(|entity| entity.key.strip_prefix("ip:"))
        .filter_map(|ip| match ip.parse::<std::net::IpAddr>().ok()? {
            std::net::IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                Some(format!("{a}.{b}.{c}.0/24"))
            }
            std::net::IpAddr::V6(v6) => {
                let s = v6.segments();
                Some(format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]))
            }
        })
        .collect()
}

/// A link key as people read it: `bob`, `shop/web-1`.
fn display(key: &str) -> &str {
    key.split_once(':').map_or(key, |(_, rest)| rest)
}

/// Rules are told apart by id (their predicates are functions, which do not compare).
impl PartialEq for ChainRule {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl ChainRule {
    /// The second step `then` may follow the first step `first` (each occurrence span
    /// `[first_seen, last_seen]`): some occurrence of `then` starts no earlier than one of `first`
    /// and at most `within` after it.
    fn in_time(&self, first: &Signal, then: &Signal, window_minutes: i64) -> bool {
        let within = self
            .within_minutes
            .unwrap_or(window_minutes)
            .saturating_mul(60_000_000);
        then.last_seen_micros >= first.first_seen_micros
            && then
                .first_seen_micros
                .saturating_sub(first.last_seen_micros)
                <= within
    }

    /// The shared key, when `first` then `then` is this rule's chain.
    pub(crate) fn matches(
        &self,
        first: &Signal,
        then: &Signal,
        window_minutes: i64,
    ) -> Option<String> {
        // A chain's own finding is no step of another: chains do not stack.
        let chained = |signal: &Signal| {
            CHAIN_RULES
                .iter()
                .any(|rule| rule.finding_type == signal.name)
        };
        if first.uid == then.uid
            || chained(first)
            || chained(then)
            || !self.in_time(first, then, window_minutes)
        {
            return None;
        }
        let first_keys = (self.first)(first);
        let key = (self.then)(then)
            .into_iter()
            .find(|key| first_keys.contains(key))?;
        (self.pair)(first, then).then_some(key)
    }

    /// Whether `signal` can be a first or a second step of this rule at all.
    pub(crate) fn step_keys(&self, signal: &Signal) -> Vec<String> {
        let mut keys = (self.first)(signal);
        keys.extend((self.then)(signal));
        keys.sort();
        keys.dedup();
        keys
    }

    /// The finding a match raises: the details of `base` (the second step's finding, so they do
    /// not depend on which step arrived last), the rule's type, severity and words, one finding per
    /// rule and shared key, raised once.
    pub fn detection(&self, base: &Finding, key: &str, first: &Signal, then: &Signal) -> Detection {
        let mut detection = base.detection.clone();
        detection.finding_type = self.finding_type.to_owned();
        detection.detector = self.id.to_owned();
        detection.severity = self.severity;
        detection.signal_only = false;
        detection.title = (self.title)(key);
        let minutes = (then
            .first_seen_micros
            .saturating_sub(first.first_seen_micros)
            .max(0)
            + 30_000_000)
            / 60_000_000;
        detection.description = format!(
            "{} Then, {minutes} minute(s) later: {} {}",
            first.title.trim_end(),
            then.title.trim_end(),
            self.doc
        );
        detection.aggregation_key = vec![self.id.to_owned(), key.to_owned()];
        detection.event_id = format!("chain/{}/{key}", self.id);
        detection.event_time_micros = then.first_seen_micros.max(first.first_seen_micros);
        detection.additional_info = vec![KeyValue {
            key: "correlatedFindings".into(),
            value: format!("{},{}", first.arn, then.arn),
        }];
        detection
    }
}
