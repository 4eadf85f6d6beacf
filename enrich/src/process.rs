//! The process table: what each node's sensor said of the processes it saw, so that an event that
//! names only its process and parent can be shown with its whole lineage (parent first, up to the
//! container's init or the host's), and so that an executed binary can be told to have been written
//! inside its container after it started (container drift: `NewBinaryExecuted`).
//!
//! Bounded: processes and written paths live in two generations each; when the current generation
//! is full the older one is dropped, so memory stays under twice the capacity whatever the churn.
//! Lookups look in both generations, so a long-lived parent seen again is kept current.

use std::collections::HashMap;

use vigil_schemas::{ProcessInfo, RuntimeEvent};

/// Ancestors shown at most: deep enough for `containerd-shim → init → sh → sh → tool` chains.
pub const MAX_LINEAGE: usize = 12;

/// Two generations of a map, the older dropped when the current one fills.
#[derive(Debug)]
struct Generations<K, V> {
    current: HashMap<K, V>,
    previous: HashMap<K, V>,
    capacity: usize,
}

impl<K: std::hash::Hash + Eq, V> Generations<K, V> {
    fn new(capacity: usize) -> Self {
        Self {
            current: HashMap::new(),
            previous: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    fn insert(&mut self, key: K, value: V) {
        if self.current.len() >= self.capacity && !self.current.contains_key(&key) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, value);
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.current.get(key).or_else(|| self.previous.get(key))
    }

    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

/// One process as the table keeps it: the fields lineage shows, nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    info: ProcessInfo,
}

/// Processes by node and sensor id, and paths written inside containers.
#[derive(Debug)]
pub struct ProcessTable {
    /// (node, exec_id) → process.
    processes: Generations<(String, String), Entry>,
    /// (container id, path) → event time of the write.
    written: Generations<(String, String), i64>,
}

impl Default for ProcessTable {
    fn default() -> Self {
        Self::with_capacity(500_000, 100_000)
    }
}

/// Kinds that leave a file changed at its path (or new path).
fn writes_file(kind: &str) -> bool {
    matches!(
        kind,
        "file_write" | "file_rename" | "file_link" | "file_chmod"
    )
}

/// The parent's id, whichever field says it.
fn parent_id(info: &ProcessInfo) -> Option<&String> {
    info.parent_exec_id.as_ref()
}

/// What the table says of one event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessContext {
    pub lineage: Vec<ProcessInfo>,
    pub binary_written_in_container: bool,
}

impl ProcessTable {
    /// At most `processes` per generation of the process map and `written_paths` per generation
    /// of the written-paths map.
    pub fn with_capacity(processes: usize, written_paths: usize) -> Self {
        Self {
            processes: Generations::new(processes),
            written: Generations::new(written_paths),
        }
    }

    /// Processes and written paths held now (both generations).
    pub fn len(&self) -> (usize, usize) {
        (self.processes.len(), self.written.len())
    }

    /// Learns from one event and says what is known of its process.
    pub fn observe(&mut self, event: &RuntimeEvent) -> ProcessContext {
        let node = event.node_name.clone().unwrap_or_default();
        // The parent the event carries is the freshest word on it.
        if let Some(parent) = &event.parent
            && let Some(id) = &parent.exec_id
        {
            self.processes.insert(
                (node.clone(), id.clone()),
                Entry {
                    info: parent.clone(),
                },
            );
        }
        if let Some(id) = &event.process.exec_id
            && (event.kind == "process_exec"
                || self.processes.get(&(node.clone(), id.clone())).is_none())
        {
            self.processes.insert(
                (node.clone(), id.clone()),
                Entry {
                    info: event.process.clone(),
                },
            );
        }
        if let Some(container) = &event.container_id
            && writes_file(&event.kind)
        {
            for path in [&event.file_path, &event.file_new_path]
                .into_iter()
                .flatten()
            {
                self.written
                    .insert((container.clone(), path.clone()), event.event_time_micros);
            }
        }
        let binary_written_in_container = match (&event.container_id, event.kind.as_str()) {
            (Some(container), "process_exec") => self
                .written
                .get(&(container.clone(), event.process.binary.clone()))
                .is_some(),
            (Some(container), "library_load") => event.file_path.as_ref().is_some_and(|path| {
                self.written
                    .get(&(container.clone(), path.clone()))
                    .is_some()
            }),
            _ => false,
        };
        ProcessContext {
            lineage: self.lineage(&node, event),
            binary_written_in_container,
        }
    }

    /// Ancestors of the event's process, parent first.
    fn lineage(&self, node: &str, event: &RuntimeEvent) -> Vec<ProcessInfo> {
        let mut lineage = Vec::new();
        let mut next = match &event.parent {
            Some(parent) => {
                lineage.push(parent.clone());
                parent_id(parent).cloned()
            }
            // A sensor that names only the process (a DNS agent): its parent is in the table when the
            // process's exec was seen first.
            None => parent_id(&event.process).cloned().or_else(|| {
                let id = event.process.exec_id.as_ref()?;
                let known = self.processes.get(&(node.to_owned(), id.clone()))?;
                parent_id(&known.info).cloned()
            }),
        };
        while let Some(id) = next {
            if lineage.len() >= MAX_LINEAGE {
                break;
            }
            let Some(entry) = self.processes.get(&(node.to_owned(), id.clone())) else {
                break;
            };
            // A process its own ancestor would be a loop in the sensor's data: stop there.
            if lineage
                .iter()
                .any(|known| known.exec_id.as_ref() == Some(&id))
            {
                break;
            }
            lineage.push(entry.info.clone());
            next = parent_id(&entry.info).cloned();
        }
        lineage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(id: &str, parent: &str, binary: &str) -> RuntimeEvent {
        RuntimeEvent {
            kind: "process_exec".into(),
            node_name: Some("node-1".into()),
            container_id: Some("c1".into()),
            process: ProcessInfo {
                exec_id: Some(id.into()),
                parent_exec_id: Some(parent.into()),
                binary: binary.into(),
                ..ProcessInfo::default()
            },
            ..RuntimeEvent::default()
        }
    }

    #[test]
    fn lineage_walks_up_through_known_processes() {
        let mut table = ProcessTable::default();
        table.observe(&exec("1", "0", "/usr/sbin/nginx"));
        table.observe(&exec("2", "1", "/bin/sh"));
        let context = table.observe(&exec("3", "2", "/usr/bin/curl"));
        let names: Vec<_> = context.lineage.iter().map(|p| p.binary.as_str()).collect();
        assert_eq!(names, ["/bin/sh", "/usr/sbin/nginx"]);
    }

    #[test]
    fn a_loop_in_the_sensors_ids_ends_the_walk() {
        let mut table = ProcessTable::default();
        table.observe(&exec("1", "2", "/a"));
        table.observe(&exec("2", "1", "/b"));
        let context = table.observe(&exec("3", "2", "/c"));
        assert_eq!(context.lineage.len(), 2);
    }

    #[test]
    fn a_binary_written_in_the_container_then_run_is_drift() {
        let mut table = ProcessTable::default();
        let mut write = exec("5", "1", "/usr/bin/curl");
        write.kind = "file_write".into();
        write.file_path = Some("/tmp/x".into());
        table.observe(&write);
        assert!(
            table
                .observe(&exec("6", "1", "/tmp/x"))
                .binary_written_in_container
        );
        // The same path in another container was not written there.
        let mut elsewhere = exec("7", "1", "/tmp/x");
        elsewhere.container_id = Some("c2".into());
        assert!(!table.observe(&elsewhere).binary_written_in_container);
    }

    #[test]
    fn memory_stays_bounded_by_two_generations() {
        let mut table = ProcessTable::with_capacity(100, 10);
        for index in 0..10_000 {
            table.observe(&exec(&index.to_string(), "0", "/bin/true"));
        }
        assert!(table.len().0 <= 200);
    }
}
