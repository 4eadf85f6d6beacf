//! Dashboards exposed outside the cluster: the Kubernetes Dashboard and Kubeflow's behind a
//! LoadBalancer or NodePort.

use vigil_schemas::{Detection, EnrichedEvent};

use crate::Detector;
use crate::detection::{Verdict, detection, severity};
use crate::facts::{is_write, object_name, succeeded};

fn mentions(service: &vigil_schemas::ServiceSpec, needle: &str) -> bool {
    service
        .name
        .as_deref()
        .is_some_and(|name| name.contains(needle))
        || service
            .selector
            .iter()
            .chain(&service.labels)
            .any(|pair| pair.value.contains(needle))
}

/// **`Policy:Kubernetes/ExposedDashboard`** — Medium, and **`Policy:Kubernetes/KubeflowDashboardExposed`**
/// — Medium. Trigger: a Service of type `LoadBalancer` created or changed whose name, selector or
/// labels name the Kubernetes Dashboard (or Kubeflow's central dashboard / pipelines UI).
/// Key: principal, service.
#[derive(Debug, Default)]
pub struct ExposedDashboard;

impl Detector for ExposedDashboard {
    fn name(&self) -> &'static str {
        "exposed_dashboard"
    }
    fn source(&self) -> crate::Source {
        crate::Source::Audit
    }
    fn inspect_audit(
        &mut self,
        event: &vigil_schemas::AuditEvent,
        enriched: &EnrichedEvent,
        out: &mut Vec<Detection>,
    ) {
        let Some(service) = event.service.as_ref() else {
            return;
        };
        if !is_write(event) || !succeeded(event) || service.service_type != "LoadBalancer" {
            return;
        }
        let (finding_type, what) = if mentions(service, "kubernetes-dashboard") {
            ("Policy:Kubernetes/ExposedDashboard", "Kubernetes Dashboard")
        } else if mentions(service, "centraldashboard") || mentions(service, "ml-pipeline-ui") {
            (
                "Policy:Kubernetes/KubeflowDashboardExposed",
                "Kubeflow dashboard",
            )
        } else {
            return;
        };
        let name = object_name(event);
        let title = format!("{what} exposed to the internet by Service {name}.");
        let description = format!(
            "{} made the {what} reachable through a LoadBalancer Service {name} in cluster {}. Dashboards exposed this way are a common way in.",
            event.user.username, enriched.cluster.name
        );
        let verdict = Verdict {
            finding_type: finding_type.into(),
            severity: severity::MEDIUM,
            title,
            description,
            aggregation_key: vec![event.user.username.clone(), name],
        };
        out.push(detection(enriched, event, self.name(), verdict));
    }
}
