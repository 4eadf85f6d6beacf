//! vigil-gateway-decode: what a gateway request body holds, as records for the raw topics. Free of
//! I/O and of Kafka: bytes in, records and rejections out, so every shape gets fast tests and a
//! fuzzer (`fuzz/`) without a server, a broker or librdkafka.
//!
//! The gateway checks the envelope (an EventList, a Firehose request, JSON lines) and splits it
//! into one record per event; it does not judge the events: ingest does that, behind the topic,
//! and dead-letters what it cannot read, as it does for every other producer.

mod audit;
mod firehose;
mod runtime;

pub use audit::audit_webhook;
pub use firehose::{FirehoseBatch, firehose};
pub use runtime::runtime_lines;

use serde_json::value::RawValue;

/// The raw topic a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    /// `vigil.audit.raw`: Kubernetes audit events.
    Audit,
    /// `vigil.runtime.raw`: Falco alerts, Tetragon events, Vigil's native runtime events.
    Runtime,
}

/// One event to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub destination: Destination,
    /// The event's bytes as the sender wrote them (a CloudWatch log event: in a subscription
    /// payload of its own, see `firehose`).
    pub value: Vec<u8>,
    /// The cluster the envelope names (a CloudWatch log group `/aws/eks/NAME/cluster`), which wins
    /// over the request's.
    pub cluster: Option<String>,
    /// The node the event happened on (runtime events), their partition key.
    pub node: Option<String>,
    /// When the envelope says the event was logged (CloudWatch's `timestamp`), in milliseconds:
    /// the record's timestamp, which ingest gives an event that carries no time of its own.
    pub timestamp_millis: Option<i64>,
}

impl RawRecord {
    fn new(destination: Destination, value: &[u8]) -> Self {
        Self {
            destination,
            value: value.to_vec(),
            cluster: None,
            node: None,
            timestamp_millis: None,
        }
    }
}

/// A part of a request that is not an event Vigil can read; dead-lettered with its bytes while the
/// rest of the request goes through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// A bounded label: `invalid_json`, `invalid_base64`, `invalid_gzip`, `not_an_object`, ...
    pub reason: &'static str,
    pub detail: String,
    pub bytes: Vec<u8>,
}

/// Why a whole body was refused (answered 400 and dead-lettered whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct BadBody {
    /// A bounded label for the metric and the dead letter.
    pub reason: &'static str,
    pub detail: String,
}

impl BadBody {
    fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// What a body held: its records, the parts rejected, and the parts skipped on purpose.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub records: Vec<RawRecord>,
    pub rejected: Vec<Rejected>,
    /// Counted by reason (`control_message`, `not_an_audit_log_stream`), never produced.
    pub skipped: Vec<&'static str>,
}

/// Limits on what one body may expand to. Gzip inside a body (Firehose's whole body, CloudWatch's
/// records) is inflated only up to `max_inflated_bytes` in all: a small bomb cannot fill memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    pub max_inflated_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_inflated_bytes: 64 * 1024 * 1024,
        }
    }
}

pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Inflates gzip (all members) into at most `budget` bytes, taking what it used from the budget.
pub fn gunzip(bytes: &[u8], budget: &mut usize) -> Result<Vec<u8>, GunzipError> {
    use std::io::Read;
    let mut inflated = Vec::with_capacity(bytes.len().saturating_mul(4).min(*budget));
    let limit = u64::try_from(*budget).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::MultiGzDecoder::new(bytes)
        .take(limit)
        .read_to_end(&mut inflated)
        .map_err(|error| GunzipError::Invalid(error.to_string()))?;
    if inflated.len() > *budget {
        return Err(GunzipError::TooLarge);
    }
    *budget -= inflated.len();
    Ok(inflated)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GunzipError {
    #[error("not valid gzip: {0}")]
    Invalid(String),
    #[error("inflates past the limit")]
    TooLarge,
}

/// The JSON values of a body: one value, several concatenated, or JSON lines. When the whole does
/// not parse and it has several lines, each line is read on its own: a bad line is rejected alone
/// and the others go through. A body with no value at all is refused.
fn json_values(body: &[u8]) -> Result<(Vec<&RawValue>, Vec<Rejected>), BadBody> {
    if first_byte(body).is_none() {
        return Err(BadBody::new("empty", "the body is empty"));
    }
    let whole: Result<Vec<&RawValue>, _> = serde_json::Deserializer::from_slice(body)
        .into_iter::<&RawValue>()
        .collect();
    match whole {
        Ok(values) => Ok((values, Vec::new())),
        Err(error) if !body.contains(&b'\n') => Err(BadBody::new(
            "invalid_json",
            short(&format!("not JSON: {error}")),
        )),
        Err(_) => {
            let mut values = Vec::new();
            let mut rejected = Vec::new();
            for line in body.split(|byte| *byte == b'\n') {
                if first_byte(line).is_none() {
                    continue;
                }
                match serde_json::from_slice::<&RawValue>(line) {
                    Ok(value) => values.push(value),
                    Err(error) => rejected.push(Rejected {
                        reason: "invalid_json",
                        detail: short(&format!("a line is not JSON: {error}")),
                        bytes: line.to_vec(),
                    }),
                }
            }
            if values.is_empty() {
                let detail = rejected
                    .first()
                    .map_or_else(|| "no JSON value".to_owned(), |first| first.detail.clone());
                return Err(BadBody::new("invalid_json", detail));
            }
            Ok((values, rejected))
        }
    }
}

/// A JSON text's first significant byte.
fn first_byte(bytes: &[u8]) -> Option<u8> {
    bytes
        .iter()
        .copied()
        .find(|byte| !byte.is_ascii_whitespace())
}

/// At most 300 characters of a detail, for answers and dead letters.
fn short(detail: &str) -> String {
    detail.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    pub fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gunzip_stops_at_its_budget() {
        let big = vec![b'a'; 10_000];
        let mut budget = 20_000;
        assert_eq!(
            super::gunzip(&gzip(&big), &mut budget).unwrap().len(),
            10_000
        );
        assert_eq!(budget, 10_000);
        let mut small = 9_999;
        assert_eq!(
            super::gunzip(&gzip(&big), &mut small),
            Err(super::GunzipError::TooLarge)
        );
        assert!(matches!(
            super::gunzip(b"\x1f\x8bnot gzip", &mut 100),
            Err(super::GunzipError::Invalid(_))
        ));
    }
}
