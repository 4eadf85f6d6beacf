//! The gateway's own metrics, registered beside the runtime's (`vigil_records_out_total`,
//! `vigil_dead_letters_total`, `vigil_skipped_total`, the producer's queue and bytes), all with
//! `stage="gateway"`. Label values are bounded: `endpoint` is one of [`Endpoint::label`], `code` an
//! HTTP status the gateway answers, `reason` one of the decoders' fixed reasons.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts};
use vigil_kafka::Metrics;
use vigil_kafka::metrics::MetricsError;

/// What a request was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    AuditWebhook,
    Firehose,
    Runtime,
}

impl Endpoint {
    pub fn label(self) -> &'static str {
        match self {
            Self::AuditWebhook => "audit_webhook",
            Self::Firehose => "firehose",
            Self::Runtime => "runtime",
        }
    }
}

#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    pub runtime: Metrics,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub events: IntCounterVec,
    pub requests_in_flight: IntGauge,
}

impl GatewayMetrics {
    pub fn new(runtime: Metrics) -> Result<Self, MetricsError> {
        let requests = IntCounterVec::new(
            Opts::new(
                "vigil_gateway_requests_total",
                "HTTP requests answered, by endpoint and status code",
            ),
            &["endpoint", "code"],
        )?;
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "vigil_gateway_request_seconds",
                "Time from a request's arrival to its answer (Kafka's acknowledgements included)",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["endpoint"],
        )?;
        let events = IntCounterVec::new(
            Opts::new(
                "vigil_gateway_events_total",
                "Events accepted (produced and acknowledged), by endpoint",
            ),
            &["endpoint"],
        )?;
        let requests_in_flight = IntGauge::new(
            "vigil_gateway_requests_in_flight",
            "Requests being read, produced or awaiting acknowledgement",
        )?;
        runtime.register(Box::new(requests.clone()))?;
        runtime.register(Box::new(request_seconds.clone()))?;
        runtime.register(Box::new(events.clone()))?;
        runtime.register(Box::new(requests_in_flight.clone()))?;
        Ok(Self {
            runtime,
            requests,
            request_seconds,
            events,
            requests_in_flight,
        })
    }
}
