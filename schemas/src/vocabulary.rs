//! The closed sets of words the records carry as strings (an Avro string keeps the wire simple and
//! readable): one enum each, so that code compares variants, not spellings, and a misspelling is a
//! compile error rather than a condition that never holds.

/// An enum of words with its spelling on the wire, every variant in order, and a parser.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident, $all:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant, in order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// Its spelling on the wire.
            pub const fn label(self) -> &'static str {
                match self {
                    $(Self::$variant => $word,)+
                }
            }

            /// The variant spelled `word`.
            pub fn parse(word: &str) -> Option<Self> {
                match word {
                    $($word => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.label())
            }
        }

        /// Every spelling, in order.
        pub const $all: &[&str] = &[$($word,)+];
    };
}

words! {
    /// What a runtime event is (`RuntimeEvent.kind`).
    RuntimeKind, RUNTIME_KINDS {
        ProcessExec = "process_exec",
        ProcessExit = "process_exit",
        FileOpen = "file_open",
        FileRead = "file_read",
        FileWrite = "file_write",
        FileRename = "file_rename",
        FileUnlink = "file_unlink",
        FileLink = "file_link",
        FileChmod = "file_chmod",
        NetworkConnect = "network_connect",
        NetworkAccept = "network_accept",
        NetworkListen = "network_listen",
        NetworkClose = "network_close",
        DnsQuery = "dns_query",
        ModuleLoad = "module_load",
        LibraryLoad = "library_load",
        Mount = "mount",
        Ptrace = "ptrace",
        ProcessVmWrite = "process_vm_write",
        MemfdCreate = "memfd_create",
        Userfaultfd = "userfaultfd",
        PrivilegeChange = "privilege_change",
        SensorAlert = "sensor_alert",
        /// A sensor event of no kind above (kept, counted, judged by no kind-specific detector).
        Other = "other",
    }
}

words! {
    /// Where an address is, as enrich classifies it (`IpIntel.scope`).
    IpScope, IP_SCOPES {
        /// The host itself (127.0.0.0/8, ::1).
        Loopback = "loopback",
        /// Private, shared, link-local and unique-local ranges: inside a network.
        Private = "private",
        /// Everything else: the internet.
        Public = "public",
    }
}

impl crate::RuntimeEvent {
    /// The event's kind (`None` only for a record no ingest of this build wrote).
    pub fn runtime_kind(&self) -> Option<RuntimeKind> {
        RuntimeKind::parse(&self.kind)
    }
}

/// Whether a sensor alert's `source` is Falco's Kubernetes audit log (the k8saudit plugins:
/// `k8s_audit`, `k8saudit`, `k8saudit-eks`, `k8saudit-gke`, `k8saudit-aks`...): its alerts are
/// about an API call, not a process on a node.
pub fn is_kubernetes_audit_source(source: &str) -> bool {
    let source = source.to_ascii_lowercase();
    source.starts_with("k8s_audit") || source.starts_with("k8saudit")
}

impl crate::IpIntel {
    /// The address's scope (`None` only for a record no enrich of this build wrote).
    pub fn ip_scope(&self) -> Option<IpScope> {
        IpScope::parse(&self.scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_parses_back_to_its_variant() {
        for kind in RuntimeKind::ALL {
            assert_eq!(RuntimeKind::parse(kind.label()), Some(*kind));
        }
        assert_eq!(IpScope::parse("public"), Some(IpScope::Public));
        assert_eq!(RuntimeKind::parse("proces_exec"), None);
    }

    #[test]
    fn falco_s_audit_sources_in_every_spelling() {
        for source in ["k8s_audit", "k8saudit", "k8saudit-eks", "K8SAUDIT-GKE"] {
            assert!(is_kubernetes_audit_source(source), "{source}");
        }
        for source in ["syscall", "aws_cloudtrail", "okta"] {
            assert!(!is_kubernetes_audit_source(source), "{source}");
        }
    }
}
