//! Prometheus metrics, named and labelled by one rule so that dashboards can be written against them:
//!
//! - names are `vigil_<what>_<unit>`, counters end in `_total`, durations are in `_seconds`;
//! - labels have bounded values only: `stage` (ingest, enrich, detect, publish), `topic` (the
//!   configured topic names), `reason` (the fixed set of rejection and dead-letter reasons), `type`
//!   (finding types: the detectors' fixed catalogue), `severity` (Low, Medium, High, Critical),
//!   `detector` (the built-in baseline detectors' names), `scope` (principal, peer_group,
//!   namespace, cluster, image, workload), `phase` (warm-up, learning, stable, unstable, tracked),
//!   `role` of a list (threat, curated, tor_exits, trusted, asn), `kind` of an input tolerance
//!   (time_lenient, time_epoch, time_inferred, request_uri_inferred, stage_inferred).
//!   Never a principal, an IP, a pod or a message key.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric a stage process exposes.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    pub records_in: IntCounterVec,
    pub records_out: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub skipped: IntCounterVec,
    pub tolerated: IntCounterVec,
    pub processing_seconds: HistogramVec,
    pub delivery_seconds: HistogramVec,
    pub consumer_lag: IntGaugeVec,
    pub in_flight: IntGaugeVec,
    pub consumer_paused: IntGaugeVec,
    pub producer_queue: IntGaugeVec,
    pub state_entries: IntGaugeVec,
    pub state_restored: IntCounterVec,
    pub baseline_profiles: IntGaugeVec,
    pub baseline_capacity: IntGaugeVec,
    pub baseline_cluster_capacity: IntGaugeVec,
    pub baseline_largest_cluster: IntGaugeVec,
    pub baseline_evictions: IntCounterVec,
    pub findings: IntCounterVec,
    pub findings_suppressed: IntCounterVec,
    pub attack_sequences: IntCounterVec,
    pub threat_list_entries: IntGaugeVec,
    pub rebalances: IntCounterVec,
    pub kafka_transmitted_bytes: IntCounterVec,
    pub kafka_received_bytes: IntCounterVec,
    pub kafka_broker_rtt: prometheus::GaugeVec,
    pub threat_list_reloads: IntCounterVec,
    pub ready: IntGauge,
}

#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, MetricsError> {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, MetricsError> {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
) -> Result<HistogramVec, MetricsError> {
    let metric = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), &["stage"])?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    /// Registers a process's own metrics (the gateway's) beside the runtime's.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), MetricsError> {
        self.registry.register(collector)?;
        Ok(())
    }

    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let ready = IntGauge::new(
            "vigil_ready",
            "1 while the process is assigned partitions and not shutting down",
        )?;
        registry.register(Box::new(ready.clone()))?;
        Ok(Self {
            records_in: counter(
                &registry,
                "vigil_records_in_total",
                "Records consumed",
                &["stage", "topic"],
            )?,
            records_out: counter(
                &registry,
                "vigil_records_out_total",
                "Records produced and acknowledged",
                &["stage", "topic"],
            )?,
            dead_letters: counter(
                &registry,
                "vigil_dead_letters_total",
                "Inputs sent to the dead-letter topic",
                &["stage", "reason"],
            )?,
            skipped: counter(
                &registry,
                "vigil_skipped_total",
                "Inputs passed over on purpose (duplicates, non-final stages)",
                &["stage", "reason"],
            )?,
            tolerated: counter(
                &registry,
                "vigil_ingest_tolerated_total",
                "Events read although they left the standard (a time in an export's form or inferred, a missing requestURI or stage)",
                &["kind"],
            )?,
            processing_seconds: histogram(
                &registry,
                "vigil_processing_seconds",
                "Time to process one input record, outputs handed to the producer",
                vec![
                    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1,
                ],
            )?,
            delivery_seconds: histogram(
                &registry,
                "vigil_delivery_seconds",
                "Time from consuming a record to every output being acknowledged",
                vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            )?,
            consumer_lag: gauge(
                &registry,
                "vigil_consumer_lag_messages",
                "Messages behind the high watermark, summed over assigned partitions",
                &["stage", "topic"],
            )?,
            in_flight: gauge(
                &registry,
                "vigil_in_flight_messages",
                "Inputs whose outputs await acknowledgement",
                &["stage"],
            )?,
            consumer_paused: gauge(
                &registry,
                "vigil_consumer_paused",
                "1 while fetching is paused because the stage loop is busy (reading state back, \
                 recalling inputs, waiting on the producer): the consumer keeps polling the group",
                &["stage"],
            )?,
            producer_queue: gauge(
                &registry,
                "vigil_producer_queue_messages",
                "Messages in librdkafka's producer queue",
                &["stage"],
            )?,
            state_entries: gauge(
                &registry,
                "vigil_state_entries",
                "Entries of checkpointed state held in memory",
                &["stage"],
            )?,
            state_restored: counter(
                &registry,
                "vigil_state_restored_total",
                "State entries read back at start or on an assignment, by result: restored, or dropped because it no longer decodes",
                &["stage", "result"],
            )?,
            baseline_profiles: gauge(
                &registry,
                "vigil_baseline_profiles",
                "Entities a baseline detector profiles, by learning phase (updated every 1,000 events)",
                &["detector", "scope", "phase"],
            )?,
            baseline_capacity: gauge(
                &registry,
                "vigil_baseline_capacity",
                "Entities a baseline detector profiles at most before the least recently seen give way",
                &["detector", "scope"],
            )?,
            baseline_cluster_capacity: gauge(
                &registry,
                "vigil_baseline_cluster_capacity",
                "Entities one cluster may hold in a baseline detector before its own least recently seen give way",
                &["detector", "scope"],
            )?,
            baseline_largest_cluster: gauge(
                &registry,
                "vigil_baseline_largest_cluster_profiles",
                "Profiles the cluster with the most holds in a baseline detector",
                &["detector", "scope"],
            )?,
            baseline_evictions: counter(
                &registry,
                "vigil_baseline_evictions_total",
                "Profiles dropped at the cap (the least recently seen), whose entities learn again",
                &["detector", "scope"],
            )?,
            findings: counter(
                &registry,
                "vigil_findings_total",
                "Finding occurrences published",
                &["type", "severity"],
            )?,
            findings_suppressed: counter(
                &registry,
                "vigil_findings_archived_total",
                "Findings archived by suppression rules",
                &["type"],
            )?,
            attack_sequences: counter(
                &registry,
                "vigil_attack_sequences_total",
                "Attack sequences published: raised or grown (updated), or merged into another",
                &["outcome"],
            )?,
            threat_list_entries: gauge(
                &registry,
                "vigil_threat_list_entries",
                "Addresses and CIDR blocks in each loaded threat, curated, Tor exit or trusted list",
                &["list", "role"],
            )?,
            rebalances: counter(
                &registry,
                "vigil_rebalances_total",
                "Consumer group rebalances seen, by kind (assign, revoke)",
                &["stage", "kind"],
            )?,
            kafka_transmitted_bytes: counter(
                &registry,
                "vigil_kafka_transmitted_bytes_total",
                "Bytes sent to brokers, from librdkafka statistics",
                &["stage", "client"],
            )?,
            kafka_received_bytes: counter(
                &registry,
                "vigil_kafka_received_bytes_total",
                "Bytes received from brokers, from librdkafka statistics",
                &["stage", "client"],
            )?,
            kafka_broker_rtt: {
                let metric = prometheus::GaugeVec::new(
                    Opts::new(
                        "vigil_kafka_broker_rtt_seconds",
                        "Average request round trip to the slowest broker over librdkafka's last statistics window",
                    ),
                    &["stage", "client"],
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            threat_list_reloads: counter(
                &registry,
                "vigil_threat_list_reloads_total",
                "Reloads of changed list files, by result (ok, error)",
                &["result"],
            )?,
            ready,
            registry,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }

    pub fn processing_timer(&self, stage: &str) -> Histogram {
        self.processing_seconds.with_label_values(&[stage])
    }
}

/// GuardDuty's severity bands.
pub fn severity_label(severity: f64) -> &'static str {
    vigil_schemas::Severity::of(severity).label()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_in_the_text_format_with_their_labels() {
        let metrics = Metrics::new().unwrap();
        metrics
            .records_in
            .with_label_values(&["ingest", "vigil.audit.raw"])
            .inc_by(3);
        metrics
            .dead_letters
            .with_label_values(&["ingest", "invalid_json"])
            .inc();
        let text = metrics.render();
        assert!(
            text.contains("vigil_records_in_total{stage=\"ingest\",topic=\"vigil.audit.raw\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("vigil_dead_letters_total{reason=\"invalid_json\",stage=\"ingest\"} 1"),
            "{text}"
        );
        assert!(text.contains("# TYPE vigil_ready gauge"));
        assert_eq!(severity_label(8.0), "High");
        assert_eq!(severity_label(5.0), "Medium");
    }
}
