//! Behaviour baselines at runtime: per image and per workload, the programs run, the libraries
//! loaded and the destinations reached.

use crate::baselines::Scope;
use crate::baselines::dimensions::Dimension;
use vigil_schemas::{Detection, EnrichedEvent, IpScope, RuntimeEvent, RuntimeKind};

use crate::detection::{Verdict, severity};
use crate::{Detector, StateEntry};

use super::dimensions::{image_repository, library_family, network_origin};
use super::explain::{anomaly_of, described, unusual_by_scope};
use super::profile::{BaselineConfig, Familiarity, Judged};
use super::store::{ProfileStore, Seen, observe};

/// Behaviour baselines at runtime, at two scopes: per image repository (tags aside: a new version
/// runs the same programs) and per workload (`namespace/deployment`, named from the pod: one image
/// may run as several workloads that do different things), the executables run, the parent→child
/// pairs forked, the shared libraries loaded and the outbound destinations reached, learned like
/// principals' ([`crate::baseline`]).
///
/// - `Execution:Runtime/AnomalousBehavior.NewBinaryInImage` (Vigil type, Medium): an executable
///   that neither the image's nor the workload's stable profile ever saw run (a parent→child pair
///   never seen adds to the explanation).
/// - `Execution:Runtime/AnomalousBehavior.NewLibraryInImage` (Vigil type, Medium): a shared library
///   (version suffix aside) that neither stable profile ever saw loaded: a preloaded or injected
///   library, shipped in the image or not (`NewLibraryLoaded` covers one written in the container).
/// - `UnauthorizedAccess:Runtime/AnomalousBehavior.NewOutboundDestination` (Vigil type, Low): a
///   public network (/24) or domain that neither stable profile ever saw reached; private
///   destinations (the cluster, the VPC) are left out, pods' addresses change all the time.
///
/// A scope still learning (a new workload of a known image, say) leaves the judgement to the other.
/// Aggregation key: image repository, executable (or destination). Images and workloads whose
/// novelty is routine (several new executables a week: build or CI images) are unstable and judge
/// nothing.
#[derive(Debug)]
pub struct ImageBaselines {
    config: BaselineConfig,
    store: ProfileStore,
    workloads: ProfileStore,
}

/// Checkpoint key prefix of the workload scope (image keys are `cluster/repository`).
const WORKLOAD_PREFIX: &str = "workload:";

impl Default for ImageBaselines {
    fn default() -> Self {
        let caps = crate::BaselineCaps::default();
        Self::new(
            BaselineConfig::default(),
            caps.images,
            caps.images_per_cluster,
        )
    }
}

impl ImageBaselines {
    /// Images and workloads are capped alike (a workload runs one image, mostly).
    pub fn new(config: BaselineConfig, max_images: usize, max_per_cluster: usize) -> Self {
        Self {
            config,
            store: ProfileStore::new(max_images, max_per_cluster),
            workloads: ProfileStore::new(max_images, max_per_cluster),
        }
    }

    pub fn images(&self) -> usize {
        self.store.len()
    }

    pub fn workloads(&self) -> usize {
        self.workloads.len()
    }
}

/// What a runtime novelty raises: (dimension, type, severity, what the image did, for the title).
const RUNTIME_NOVELTIES: [(Dimension, &str, f64, &str); 3] = [
    (
        Dimension::Executable,
        "Execution:Runtime/AnomalousBehavior.NewBinaryInImage",
        severity::MEDIUM,
        "ran",
    ),
    (
        Dimension::Library,
        "Execution:Runtime/AnomalousBehavior.NewLibraryInImage",
        severity::MEDIUM,
        "loaded",
    ),
    (
        Dimension::Destination,
        "UnauthorizedAccess:Runtime/AnomalousBehavior.NewOutboundDestination",
        severity::LOW,
        "reached",
    ),
];

/// The first value of `dimension` every judging scope found unseen (and not routinely new), when
/// at least one scope judged.
fn unseen_everywhere<'a>(views: &[&'a Seen], dimension: Dimension) -> Option<&'a Judged> {
    let judging: Vec<&&Seen> = views
        .iter()
        .filter(|seen| !seen.judged.is_empty())
        .collect();
    let mut first = None;
    for seen in &judging {
        let new = seen.judged.iter().find(|judged| {
            judged.dimension == dimension
                && judged.familiarity == Familiarity::Unseen
                && !judged.volatile
        })?;
        first.get_or_insert(new);
    }
    first
}

impl Detector for ImageBaselines {
    fn name(&self) -> &'static str {
        "image_baselines"
    }

    fn drain_state(&mut self, out: &mut Vec<StateEntry>) {
        self.store.drain(out);
        self.workloads.drain(out);
    }

    fn flush_state(&mut self) {
        self.store.flush();
        self.workloads.flush();
    }

    fn restore(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        if key.starts_with(WORKLOAD_PREFIX) {
            self.workloads.restore(key, value)
        } else {
            self.store.restore(key, value)
        }
    }

    fn profiles(&self) -> Vec<crate::ProfileCounts> {
        vec![
            self.store.counts(Scope::Image),
            self.workloads.counts(Scope::Workload),
        ]
    }

    fn source(&self) -> crate::Source {
        crate::Source::Runtime
    }
    fn inspect_runtime(
        &mut self,
        event: &RuntimeEvent,
        enriched: &EnrichedEvent,
        out: &mut Vec<Detection>,
    ) {
        let Some(image) = event
            .image
            .as_deref()
            .filter(|_| event.container_id.is_some())
        else {
            return;
        };
        let Some(values) = observed_values(event, enriched) else {
            return;
        };
        let now = event.event_time_micros;
        let cluster = enriched.cluster.name.as_str();
        let repository = image_repository(image);
        let key = format!("{cluster}/{repository}");
        let image_view = observe(
            &mut self.store,
            (Scope::Image, repository),
            &key,
            now,
            &values,
            &self.config,
        );
        let resource = crate::facts::runtime_resource(enriched);
        // A workload is a pod's controller; a process on the node itself has none.
        let workload_view = (event.pod_name.is_some() && event.pod_namespace.is_some())
            .then(|| {
                let key = format!("{WORKLOAD_PREFIX}{cluster}/{resource}");
                observe(
                    &mut self.workloads,
                    (Scope::Workload, &resource),
                    &key,
                    now,
                    &values,
                    &self.config,
                )
            })
            .flatten();
        let views: Vec<&Seen> = [image_view.as_ref(), workload_view.as_ref()]
            .into_iter()
            .flatten()
            .collect();
        // The first dimension, in this order, whose value every judging scope finds new.
        let Some((new, (_, finding_type, severity, what))) = RUNTIME_NOVELTIES
            .iter()
            .find_map(|novelty| Some((unseen_everywhere(&views, novelty.0)?, novelty)))
        else {
            return;
        };
        out.push(novelty_detection(
            self.name(),
            enriched,
            event,
            repository,
            (new, *finding_type, *severity, what),
            &views,
        ));
    }
}

/// What a runtime event says about its image's behaviour, by dimension: the executable and the
/// process tree of an exec, a loaded library's family, an outbound destination; `None` for what
/// the baselines do not profile.
fn observed_values(
    event: &RuntimeEvent,
    enriched: &EnrichedEvent,
) -> Option<Vec<(Dimension, String)>> {
    let values = match event.runtime_kind()? {
        RuntimeKind::ProcessExec => {
            let mut values = vec![(Dimension::Executable, event.process.binary.clone())];
            if let Some(parent) = &event.parent {
                values.push((
                    Dimension::ProcessTree,
                    format!(
                        "{}>{}",
                        crate::facts::base_name(&parent.binary),
                        crate::facts::base_name(&event.process.binary)
                    ),
                ));
            }
            values
        }
        RuntimeKind::LibraryLoad => match event.file_path.as_deref() {
            Some(path) => vec![(Dimension::Library, library_family(path).to_owned())],
            None => return None,
        },
        RuntimeKind::NetworkConnect | RuntimeKind::DnsQuery => {
            let public = enriched
                .destination_ip
                .as_ref()
                .filter(|ip| ip.ip_scope() == Some(IpScope::Public));
            let domain = event.dns_query.clone().or_else(|| {
                event
                    .network
                    .as_ref()
                    .and_then(|network| network.destination_domain.clone())
            });
            match (domain, public) {
                (Some(domain), _) => vec![(Dimension::Destination, domain.to_ascii_lowercase())],
                (None, Some(ip)) => {
                    vec![(Dimension::Destination, network_origin(&ip.ip, &ip.scope))]
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(values)
}

/// The finding for the first dimension every judging scope found new, explained scope by scope.
fn novelty_detection(
    detector: &'static str,
    enriched: &EnrichedEvent,
    event: &RuntimeEvent,
    repository: &str,
    (new, finding_type, severity, what): (&Judged, &'static str, f64, &str),
    views: &[&Seen],
) -> Detection {
    let resource = crate::facts::runtime_resource(enriched);
    let subject = new.observed.clone();
    let title = format!("Image {repository} {what} {subject} for the first time.");
    let unusual = unusual_by_scope(views);
    let described = described(&unusual);
    let baselines: Vec<String> = views
        .iter()
        .filter(|seen| !seen.judged.is_empty())
        .map(|seen| {
            format!(
                "{} {}'s baseline of {} observations over {} days",
                seen.scope.label(),
                seen.entity,
                seen.observations,
                seen.days
            )
        })
        .collect();
    let verdict = Verdict {
        finding_type: finding_type.to_owned(),
        severity,
        title,
        description: format!(
            "In {resource}, `{}` did what {} does not hold. Unusual: {}.",
            crate::facts::command_line(&event.process),
            baselines.join(" and "),
            described.join("; ")
        ),
        aggregation_key: vec![repository.to_owned(), subject],
    };
    let mut found =
        crate::detection::runtime_detection(enriched, event, detector, verdict, Vec::new());
    found.anomaly = anomaly_of(&unusual);
    found.anomaly = anomaly_of(&unusual);
    found
}
