//! What a baseline profiles: one enum, with the two spellings its two readers need.

/// The entity a profile is kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One identity.
    Principal,
    /// Identities sharing their groups, or service accounts sharing a name across namespaces.
    PeerGroup,
    /// Everyone's calls in one namespace.
    Namespace,
    /// Everyone's calls in one cluster.
    Cluster,
    /// One image repository, tags aside.
    Image,
    /// One workload (a pod's controller).
    Workload,
}

impl Scope {
    /// As findings name it (`service.detection.anomaly`, GuardDuty's camelCase).
    pub const fn label(self) -> &'static str {
        match self {
            Self::Principal => "principal",
            Self::PeerGroup => "peerGroup",
            Self::Namespace => "namespace",
            Self::Cluster => "cluster",
            Self::Image => "image",
            Self::Workload => "workload",
        }
    }

    /// As `/metrics` labels it (snake_case, like every label value there).
    pub const fn metric_label(self) -> &'static str {
        match self {
            Self::PeerGroup => "peer_group",
            other => other.label(),
        }
    }
}
