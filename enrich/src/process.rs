//! The process table: what each node's sensor said of the processes it saw, so that an event that
//! names only its process and parent can be shown with its whole lineage (parent first, up to the
//! container's init or the host's), and so that an executed binary can be told to have been written
//! inside its container after it started (container drift: `NewBinaryExecuted`).
//!
//! Bounded: processes and written paths live in two generations each; when the current generation
//! is full the older one is dropped, so memory stays under twice the capacity whatever the churn.
//! Lookups look in both generations, so a long-lived parent seen again is kept current.

use std::collections::HashMap;
use std::sync::Arc;

use vigil_schemas::{ProcessInfo, RuntimeEvent, RuntimeKind};

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

/// One process as the table keeps it: what lineage shows, compactly (about a quarter of a
/// `ProcessInfo`): executables are interned, since a node runs the same few hundred binaries.
#[derive(Debug, Clone)]
struct Entry {
    binary: Arc<str>,
    /// Cut to [`MAX_ARGUMENTS`] bytes: lineage shows what started a process, not every flag.
    arguments: Option<Box<str>>,
    parent_exec_id: Option<Box<str>>,
    pid: Option<i64>,
    uid: Option<i64>,
    start_time_micros: Option<i64>,
}

/// Arguments kept per ancestor.
pub const MAX_ARGUMENTS: usize = 256;

fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// Processes by node and sensor id, and paths written inside containers.
#[derive(Debug)]
pub struct ProcessTable {
    /// Node names to small numbers, so that a million keys do not each hold a node name.
    nodes: HashMap<String, u32>,
    /// Interned executables.
    binaries: HashMap<Arc<str>, ()>,
    /// (node, exec_id) → process.
    processes: Generations<(u32, Box<str>), Entry>,
    /// (container id, path) → event time of the write.
    written: Generations<(String, String), i64>,
}

impl Default for ProcessTable {
    /// Up to 400,000 processes (two generations of 200,000) and 200,000 written paths: a few
    /// thousand processes on each of a hundred nodes, with room for churn.
    fn default() -> Self {
        Self::with_capacity(200_000, 100_000)
    }
}

/// Kinds that leave a file changed at its path (or new path).
fn writes_file(kind: &str) -> bool {
    matches!(
        kind,
        "file_write" | "file_rename" | "file_link" | "file_chmod"
    )
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
            nodes: HashMap::new(),
            binaries: HashMap::new(),
            processes: Generations::new(processes),
            written: Generations::new(written_paths),
        }
    }

    /// Processes and written paths held now (both generations).
    pub fn len(&self) -> (usize, usize) {
        (self.processes.len(), self.written.len())
    }

    fn node_id(&mut self, node: &str) -> u32 {
        if let Some(id) = self.nodes.get(node) {
            return *id;
        }
        let id = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
        self.nodes.insert(node.to_owned(), id);
        id
    }

    fn entry(&mut self, info: &ProcessInfo) -> Entry {
        let binary = match self.binaries.get_key_value(info.binary.as_str()) {
            Some((interned, ())) => Arc::clone(interned),
            None => {
                let interned: Arc<str> = Arc::from(info.binary.as_str());
                // Interning is bounded like everything else: past the cap, binaries are not shared.
                if self.binaries.len() < 100_000 {
                    self.binaries.insert(Arc::clone(&interned), ());
                }
                interned
            }
        };
        Entry {
            binary,
            arguments: info
                .arguments
                .as_deref()
                .map(|arguments| cut(arguments, MAX_ARGUMENTS).into()),
            parent_exec_id: info.parent_exec_id.as_deref().map(Into::into),
            pid: info.pid,
            uid: info.uid,
            start_time_micros: info.start_time_micros,
        }
    }

    /// Learns from one event and says what is known of its process.
    pub fn observe(&mut self, event: &RuntimeEvent) -> ProcessContext {
        let node = self.node_id(event.node_name.as_deref().unwrap_or_default());
        // The parent the event carries is the freshest word on it.
        if let Some(parent) = &event.parent
            && let Some(id) = &parent.exec_id
        {
            let entry = self.entry(parent);
            self.processes.insert((node, id.as_str().into()), entry);
        }
        if let Some(id) = &event.process.exec_id {
            let key: (u32, Box<str>) = (node, id.as_str().into());
            if event.runtime_kind() == Some(RuntimeKind::ProcessExec)
                || self.processes.get(&key).is_none()
            {
                let entry = self.entry(&event.process);
                self.processes.insert(key, entry);
            }
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
        let binary_written_in_container = match (&event.container_id, event.runtime_kind()) {
            (Some(container), Some(RuntimeKind::ProcessExec)) => self
                .written
                .get(&(container.clone(), event.process.binary.clone()))
                .is_some(),
            (Some(container), Some(RuntimeKind::LibraryLoad)) => {
                event.file_path.as_ref().is_some_and(|path| {
                    self.written
                        .get(&(container.clone(), path.clone()))
                        .is_some()
                })
            }
            _ => false,
        };
        ProcessContext {
            lineage: self.lineage(node, event),
            binary_written_in_container,
        }
    }

    /// Ancestors of the event's process, parent first.
    fn lineage(&self, node: u32, event: &RuntimeEvent) -> Vec<ProcessInfo> {
        let mut lineage = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        let mut next: Option<&str> = match &event.parent {
            Some(parent) => {
                lineage.push(parent.clone());
                seen.extend(parent.exec_id.as_deref());
                parent.parent_exec_id.as_deref()
            }
            // A sensor that names only the process (a DNS agent): its parent is in the table when
            // the process's exec was seen first.
            None => event.process.parent_exec_id.as_deref().or_else(|| {
                let id = event.process.exec_id.as_deref()?;
                self.processes
                    .get(&(node, id.into()))?
                    .parent_exec_id
                    .as_deref()
            }),
        };
        while let Some(id) = next {
            // A process its own ancestor would be a loop in the sensor's data: stop there.
            if lineage.len() >= MAX_LINEAGE || seen.contains(&id) {
                break;
            }
            let Some(entry) = self.processes.get(&(node, id.into())) else {
                break;
            };
            seen.push(id);
            lineage.push(ProcessInfo {
                pid: entry.pid,
                exec_id: Some(id.to_owned()),
                parent_exec_id: entry.parent_exec_id.as_deref().map(str::to_owned),
                binary: entry.binary.to_string(),
                arguments: entry.arguments.as_deref().map(str::to_owned),
                uid: entry.uid,
                start_time_micros: entry.start_time_micros,
                ..ProcessInfo::default()
            });
            next = entry.parent_exec_id.as_deref();
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
