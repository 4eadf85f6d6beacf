//! The pod and workload inventory, learned from the audit stream: which workload owns a pod, with
//! which images and service account, on which node. Bounded: beyond its capacity the entries learned
//! first are forgotten first.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use vigil_schemas::{AuditEvent, InventoryWorkload};

#[derive(Debug)]
struct Bounded<K, V> {
    capacity: usize,
    map: HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn insert(&mut self, key: K, value: V) {
        if self.map.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
            while self.map.len() > self.capacity {
                match self.order.pop_front() {
                    Some(oldest) => {
                        self.map.remove(&oldest);
                    }
                    None => break,
                }
            }
        }
        // Keys removed from the map leave stale entries in `order`; compact when they dominate.
        if self.order.len() > self.capacity * 2 {
            let map = &self.map;
            self.order.retain(|key| map.contains_key(key));
        }
    }

    fn remove(&mut self, key: &K) {
        self.map.remove(key);
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }
}

type PodKey = (String, String, String);
type OwnerKey = (String, String, String, String);

/// What enrich remembers of pods and intermediate controllers.
#[derive(Debug)]
pub struct Inventory {
    pods: Bounded<PodKey, InventoryWorkload>,
    /// ReplicaSet → Deployment, Job → CronJob, as their create requests said.
    owners: Bounded<OwnerKey, (String, String)>,
    /// Changes not yet checkpointed: key, and the value (`None` deletes the key).
    changes: Vec<(String, Option<Vec<u8>>)>,
}

/// Checkpoint keys: `pod|CLUSTER|NAMESPACE|NAME` and `owner|CLUSTER|NAMESPACE|KIND|NAME`. Kubernetes
/// names never contain `|`.
fn pod_key(key: &PodKey) -> String {
    format!("pod|{}|{}|{}", key.0, key.1, key.2)
}

fn owner_key(key: &OwnerKey) -> String {
    format!("owner|{}|{}|{}|{}", key.0, key.1, key.2, key.3)
}

impl Default for Inventory {
    fn default() -> Self {
        Self::with_capacity(200_000)
    }
}

fn succeeded(event: &AuditEvent) -> bool {
    event
        .status_code
        .is_none_or(|code| (200..300).contains(&code))
}

/// `web-7d9f8c6b5` → `web`: a ReplicaSet made by a Deployment is named after it plus the pod-template
/// hash; a Job made by a CronJob after it plus the scheduled minute.
pub fn conventional_owner(kind: &str, name: &str) -> Option<(String, String)> {
    let (base, suffix) = name.rsplit_once('-')?;
    let all_alnum = suffix
        .bytes()
        .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit());
    match kind {
        "ReplicaSet" if all_alnum && (5..=10).contains(&suffix.len()) => {
            Some(("Deployment".into(), base.into()))
        }
        "Job" if suffix.bytes().all(|byte| byte.is_ascii_digit()) && suffix.len() >= 8 => {
            Some(("CronJob".into(), base.into()))
        }
        _ => None,
    }
}

impl Inventory {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            pods: Bounded::new(capacity),
            owners: Bounded::new(capacity),
            changes: Vec::new(),
        }
    }

    pub fn pods_known(&self) -> usize {
        self.pods.map.len()
    }

    /// Follows a controller chain to its top: a pod's ReplicaSet to its Deployment.
    fn resolve_owner(
        &self,
        cluster: &str,
        namespace: &str,
        kind: &str,
        name: &str,
    ) -> (String, String) {
        let mut current = (kind.to_owned(), name.to_owned());
        for _ in 0..4 {
            let key = (
                cluster.to_owned(),
                namespace.to_owned(),
                current.0.clone(),
                current.1.clone(),
            );
            match self
                .owners
                .get(&key)
                .cloned()
                .or_else(|| conventional_owner(&current.0, &current.1))
            {
                Some(next) if next != current => current = next,
                _ => break,
            }
        }
        current
    }

    pub fn learn(&mut self, cluster: &str, event: &AuditEvent) {
        if !succeeded(event) {
            return;
        }
        let object = event.object_ref.as_ref();
        let namespace = object
            .and_then(|object| object.namespace.clone())
            .unwrap_or_default();
        if event.verb == "delete" {
            if let Some(name) = object
                .filter(|o| o.resource.as_deref() == Some("pods"))
                .and_then(|o| o.name.clone())
            {
                let key = (cluster.to_owned(), namespace, name);
                if self.pods.get(&key).is_some() {
                    self.changes.push((pod_key(&key), None));
                }
                self.pods.remove(&key);
            }
            return;
        }
        let Some(workload) = event.workload.as_ref() else {
            return;
        };
        if !matches!(event.verb.as_str(), "create" | "update") {
            return;
        }
        let namespace = workload.namespace.clone().unwrap_or(namespace);
        let Some(name) = workload.name.clone() else {
            return;
        };
        match workload.kind.as_str() {
            "Pod" => {
                let owner = workload
                    .owner_kind
                    .as_deref()
                    .zip(workload.owner_name.as_deref())
                    .map(|(kind, owner)| self.resolve_owner(cluster, &namespace, kind, owner));
                let entry = InventoryWorkload {
                    namespace: namespace.clone(),
                    pod_name: name.clone(),
                    workload_kind: owner.as_ref().map(|(kind, _)| kind.clone()),
                    workload_name: owner.map(|(_, name)| name),
                    service_account: workload.service_account.clone(),
                    node_name: workload.node_name.clone(),
                    images: workload
                        .containers
                        .iter()
                        .map(|container| container.image.clone())
                        .collect(),
                };
                let key = (cluster.to_owned(), namespace, name);
                if let Ok(value) = serde_json::to_vec(&entry) {
                    self.changes.push((pod_key(&key), Some(value)));
                }
                self.pods.insert(key, entry);
            }
            kind => {
                if let (Some(owner_kind), Some(owner_name)) =
                    (&workload.owner_kind, &workload.owner_name)
                {
                    let key = (cluster.to_owned(), namespace, kind.to_owned(), name);
                    let owner = (owner_kind.clone(), owner_name.clone());
                    if let Ok(value) = serde_json::to_vec(&owner) {
                        self.changes.push((owner_key(&key), Some(value)));
                    }
                    self.owners.insert(key, owner);
                }
            }
        }
    }

    /// Changes since the last call, to checkpoint (a `None` value deletes the key).
    pub fn drain_state(&mut self, out: &mut Vec<(String, Option<Vec<u8>>)>) {
        out.append(&mut self.changes);
    }

    /// Puts back one checkpointed entry. Returns false for a key or value it cannot read.
    pub fn restore(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        let parts: Vec<&str> = key.split('|').collect();
        match (parts.as_slice(), value) {
            (["pod", cluster, namespace, name], value) => {
                let key = (
                    (*cluster).to_owned(),
                    (*namespace).to_owned(),
                    (*name).to_owned(),
                );
                match value.map(serde_json::from_slice::<InventoryWorkload>) {
                    Some(Ok(entry)) => self.pods.insert(key, entry),
                    Some(Err(_)) => return false,
                    None => self.pods.remove(&key),
                }
                true
            }
            (["owner", cluster, namespace, kind, name], Some(value)) => {
                let key = (
                    (*cluster).to_owned(),
                    (*namespace).to_owned(),
                    (*kind).to_owned(),
                    (*name).to_owned(),
                );
                match serde_json::from_slice::<(String, String)>(value) {
                    Ok(owner) => {
                        self.owners.insert(key, owner);
                        true
                    }
                    Err(_) => false,
                }
            }
            (["owner", ..], None) => true,
            _ => false,
        }
    }

    /// What the inventory knows of one pod.
    pub fn pod(&self, cluster: &str, namespace: &str, name: &str) -> Option<InventoryWorkload> {
        self.pods
            .get(&(cluster.to_owned(), namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// The pod a request targets (exec, attach, port-forward, get, delete of a named pod).
    pub fn target_of(&self, cluster: &str, event: &AuditEvent) -> Option<InventoryWorkload> {
        let object = event.object_ref.as_ref()?;
        if object.resource.as_deref() != Some("pods") {
            return None;
        }
        let namespace = object.namespace.clone()?;
        let name = object.name.clone()?;
        let key = (cluster.to_owned(), namespace.clone(), name.clone());
        Some(self.pods.get(&key).cloned().unwrap_or(InventoryWorkload {
            namespace,
            pod_name: name,
            ..InventoryWorkload::default()
        }))
    }

    /// The top-level controller of the workload in a request, when it has an owner.
    pub fn top_owner_of(&self, cluster: &str, event: &AuditEvent) -> Option<(String, String)> {
        let workload = event.workload.as_ref()?;
        let namespace = workload
            .namespace
            .clone()
            .or_else(|| {
                event
                    .object_ref
                    .as_ref()
                    .and_then(|object| object.namespace.clone())
            })
            .unwrap_or_default();
        let (kind, name) = (
            workload.owner_kind.as_deref()?,
            workload.owner_name.as_deref()?,
        );
        Some(self.resolve_owner(cluster, &namespace, kind, name))
    }
}

#[cfg(test)]
mod tests {
    use vigil_schemas::{ContainerSpec, ObjectRef, WorkloadSpec};

    use super::*;

    fn create(kind: &str, name: &str, owner: Option<(&str, &str)>) -> AuditEvent {
        AuditEvent {
            verb: "create".into(),
            status_code: Some(201),
            object_ref: Some(ObjectRef {
                namespace: Some("shop".into()),
                ..ObjectRef::default()
            }),
            workload: Some(WorkloadSpec {
                kind: kind.into(),
                name: Some(name.into()),
                namespace: Some("shop".into()),
                service_account: Some("web-sa".into()),
                containers: vec![ContainerSpec {
                    image: "web:2".into(),
                    ..ContainerSpec::default()
                }],
                owner_kind: owner.map(|(kind, _)| kind.into()),
                owner_name: owner.map(|(_, name)| name.into()),
                ..WorkloadSpec::default()
            }),
            ..AuditEvent::default()
        }
    }

    fn exec_into(pod: &str) -> AuditEvent {
        AuditEvent {
            verb: "create".into(),
            object_ref: Some(ObjectRef {
                resource: Some("pods".into()),
                subresource: Some("exec".into()),
                namespace: Some("shop".into()),
                name: Some(pod.into()),
                ..ObjectRef::default()
            }),
            ..AuditEvent::default()
        }
    }

    #[test]
    fn pods_resolve_to_their_deployment_through_the_replicaset() {
        let mut inventory = Inventory::default();
        inventory.learn(
            "c",
            &create(
                "ReplicaSet",
                "frontend-abc",
                Some(("Deployment", "frontend")),
            ),
        );
        inventory.learn(
            "c",
            &create(
                "Pod",
                "frontend-abc-x1",
                Some(("ReplicaSet", "frontend-abc")),
            ),
        );
        let target = inventory
            .target_of("c", &exec_into("frontend-abc-x1"))
            .unwrap();
        assert_eq!(target.workload_kind.as_deref(), Some("Deployment"));
        assert_eq!(target.workload_name.as_deref(), Some("frontend"));
        assert_eq!(target.images, ["web:2"]);
        assert_eq!(target.service_account.as_deref(), Some("web-sa"));
        // Unknown pods are still named, with nothing more known.
        let unknown = inventory.target_of("c", &exec_into("other")).unwrap();
        assert_eq!(
            (unknown.pod_name.as_str(), unknown.workload_kind),
            ("other", None)
        );
    }

    #[test]
    fn conventional_names_resolve_when_the_replicaset_was_not_seen() {
        let inventory = Inventory::default();
        let pod = create(
            "Pod",
            "api-7d9f8c6b5-qwert",
            Some(("ReplicaSet", "api-7d9f8c6b5")),
        );
        assert_eq!(
            inventory.top_owner_of("c", &pod),
            Some(("Deployment".into(), "api".into()))
        );
        let job_pod = create(
            "Pod",
            "nightly-28391234-abcde",
            Some(("Job", "nightly-28391234")),
        );
        assert_eq!(
            inventory.top_owner_of("c", &job_pod),
            Some(("CronJob".into(), "nightly".into()))
        );
        let standalone = create("Pod", "solo", Some(("StatefulSet", "db")));
        assert_eq!(
            inventory.top_owner_of("c", &standalone),
            Some(("StatefulSet".into(), "db".into()))
        );
    }

    #[test]
    fn a_restored_inventory_knows_what_the_checkpointed_one_knew() {
        let mut inventory = Inventory::default();
        inventory.learn(
            "c",
            &create(
                "ReplicaSet",
                "frontend-abc",
                Some(("Deployment", "frontend")),
            ),
        );
        inventory.learn(
            "c",
            &create(
                "Pod",
                "frontend-abc-x1",
                Some(("ReplicaSet", "frontend-abc")),
            ),
        );
        let mut state = Vec::new();
        inventory.drain_state(&mut state);
        assert_eq!(state.len(), 2);
        let mut restored = Inventory::default();
        for (key, value) in &state {
            assert!(restored.restore(key, value.as_deref()), "{key}");
        }
        assert_eq!(
            restored.target_of("c", &exec_into("frontend-abc-x1")),
            inventory.target_of("c", &exec_into("frontend-abc-x1"))
        );
        assert!(!restored.restore("pod|c|shop|x", Some(b"not json")));
        assert!(!restored.restore("unknown|key", Some(b"1")));
        // A deleted pod is checkpointed as a tombstone.
        let mut delete = exec_into("frontend-abc-x1");
        delete.verb = "delete".into();
        delete.object_ref.as_mut().unwrap().subresource = None;
        inventory.learn("c", &delete);
        let mut more = Vec::new();
        inventory.drain_state(&mut more);
        assert_eq!(more, [("pod|c|shop|frontend-abc-x1".to_owned(), None)]);
    }

    #[test]
    fn capacity_bounds_what_is_remembered() {
        let mut inventory = Inventory::with_capacity(2);
        for name in ["a", "b", "c"] {
            inventory.learn("c", &create("Pod", name, None));
        }
        assert_eq!(inventory.pods_known(), 2);
        assert!(
            inventory
                .target_of("c", &exec_into("a"))
                .unwrap()
                .images
                .is_empty()
        );
        assert_eq!(
            inventory.target_of("c", &exec_into("c")).unwrap().images,
            ["web:2"]
        );
    }
}
