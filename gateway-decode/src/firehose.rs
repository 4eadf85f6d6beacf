//! Amazon Data Firehose's HTTP endpoint delivery: `{"requestId", "timestamp", "records": [{"data":
//! base64}]}`. EKS audit logs reach it from CloudWatch Logs through a subscription filter, so a
//! record's data is, depending on how the stream is set up:
//! - a CloudWatch Logs subscription payload, gzipped (Firehose's default) or not (its "decompress"
//!   option): `DATA_MESSAGE` with `logGroup`, `logStream` and `logEvents[].message`, or a
//!   `CONTROL_MESSAGE` (skipped: CloudWatch checks the destination is reachable with it);
//! - the log message alone (the "extract message" option): the audit event, one per line.
//!
//! Each audit event of a subscription payload becomes one record holding a subscription payload
//! with that one log event: ingest then reads it as it reads CloudWatch's own (the cluster from the
//! log group, the AWS origin, the log event's time), and no record grows past Kafka's size limit
//! the way a whole payload could.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::audit::take_value;
use super::{
    BadBody, DecodeLimits, Decoded, Destination, GZIP_MAGIC, GunzipError, RawRecord, Rejected,
    gunzip, json_values, short,
};

/// A Firehose request's id (echoed in the answer) and its records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FirehoseBatch {
    pub request_id: Option<String>,
    pub decoded: Decoded,
}

#[derive(Deserialize)]
struct Request {
    #[serde(rename = "requestId")]
    request_id: Option<String>,
    records: Vec<Record>,
}

#[derive(Deserialize)]
struct Record {
    data: String,
}

#[derive(Deserialize)]
struct Subscription {
    #[serde(rename = "messageType")]
    message_type: String,
    #[serde(rename = "logGroup", default)]
    log_group: String,
    #[serde(rename = "logStream", default)]
    log_stream: String,
    #[serde(rename = "logEvents", default)]
    log_events: Vec<LogEvent>,
    owner: Option<String>,
    #[serde(rename = "subscriptionFilters", default)]
    subscription_filters: Vec<String>,
}

#[derive(Deserialize, Serialize)]
struct LogEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    timestamp: Option<i64>,
    message: String,
}

/// Just enough of a value to tell a subscription payload from an event.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "messageType")]
    message_type: Option<serde::de::IgnoredAny>,
}

/// Reads a Firehose request body (already inflated if its Content-Encoding was gzip).
pub fn firehose(body: &[u8], limits: DecodeLimits) -> Result<FirehoseBatch, BadBody> {
    let request: Request = serde_json::from_slice(body).map_err(|error| {
        BadBody::new(
            if error.is_data() {
                "not_a_firehose_request"
            } else {
                "invalid_json"
            },
            short(&format!(
                "not a Firehose request ({{requestId, timestamp, records: [{{data}}]}}): {error}"
            )),
        )
    })?;
    let mut budget = limits.max_inflated_bytes;
    let mut decoded = Decoded::default();
    for record in &request.records {
        read_record(&record.data, &mut budget, &mut decoded);
    }
    Ok(FirehoseBatch {
        request_id: request.request_id,
        decoded,
    })
}

fn read_record(data: &str, budget: &mut usize, decoded: &mut Decoded) {
    let bytes = match base64::engine::general_purpose::STANDARD.decode(data.trim()) {
        Ok(bytes) => bytes,
        Err(error) => {
            decoded.rejected.push(Rejected {
                reason: "invalid_base64",
                detail: short(&format!("a record's data is not base64: {error}")),
                bytes: data.as_bytes().to_vec(),
            });
            return;
        }
    };
    let bytes = if bytes.starts_with(&GZIP_MAGIC) {
        match gunzip(&bytes, budget) {
            Ok(inflated) => inflated,
            Err(error) => {
                let reason = match error {
                    GunzipError::Invalid(_) => "invalid_gzip",
                    GunzipError::TooLarge => "too_large",
                };
                decoded.rejected.push(Rejected {
                    reason,
                    detail: format!("a record's data {error}"),
                    bytes,
                });
                return;
            }
        }
    } else {
        bytes
    };
    let values = match json_values(&bytes) {
        Ok((values, rejected)) => {
            decoded.rejected.extend(rejected);
            values
        }
        Err(bad) => {
            decoded.rejected.push(Rejected {
                reason: bad.reason,
                detail: format!("a record's data: {}", bad.detail),
                bytes,
            });
            return;
        }
    };
    for value in values {
        let is_subscription = serde_json::from_str::<Probe>(value.get())
            .is_ok_and(|probe| probe.message_type.is_some());
        if is_subscription {
            read_subscription(value, decoded);
        } else {
            take_value(value, 0, None, decoded);
        }
    }
}

/// The EKS control plane's log group is `/aws/eks/CLUSTER/cluster`.
fn eks_cluster(log_group: &str) -> Option<&str> {
    log_group
        .strip_prefix("/aws/eks/")
        .and_then(|rest| rest.strip_suffix("/cluster"))
        .filter(|name| !name.is_empty() && !name.contains('/'))
}

fn read_subscription(value: &RawValue, decoded: &mut Decoded) {
    let subscription: Subscription = match serde_json::from_str(value.get()) {
        Ok(subscription) => subscription,
        Err(error) => {
            decoded.rejected.push(Rejected {
                reason: "invalid_subscription",
                detail: short(&format!(
                    "not a CloudWatch Logs subscription payload: {error}"
                )),
                bytes: value.get().as_bytes().to_vec(),
            });
            return;
        }
    };
    match subscription.message_type.as_str() {
        "DATA_MESSAGE" => {}
        "CONTROL_MESSAGE" => {
            decoded.skipped.push("control_message");
            return;
        }
        _ => {
            decoded.rejected.push(Rejected {
                reason: "invalid_subscription",
                detail: short(&format!(
                    "messageType {:?} is neither DATA_MESSAGE nor CONTROL_MESSAGE",
                    subscription.message_type
                )),
                bytes: value.get().as_bytes().to_vec(),
            });
            return;
        }
    }
    let cluster = eks_cluster(&subscription.log_group);
    // The EKS control-plane log group also holds the API server's, the authenticator's, the
    // scheduler's and the controller managers' logs when they are turned on; only the audit
    // streams hold audit events.
    if cluster.is_some() && !subscription.log_stream.starts_with("kube-apiserver-audit") {
        decoded.skipped.extend(
            subscription
                .log_events
                .iter()
                .map(|_| "not_an_audit_log_stream"),
        );
        return;
    }
    for event in &subscription.log_events {
        let message = event.message.trim();
        let value = match serde_json::from_str::<&RawValue>(message) {
            Ok(value) => value,
            Err(error) => {
                decoded.rejected.push(Rejected {
                    reason: "invalid_json",
                    detail: short(&format!("a log event's message is not JSON: {error}")),
                    bytes: message.as_bytes().to_vec(),
                });
                continue;
            }
        };
        let mut checked = Decoded::default();
        take_value(value, 1, cluster, &mut checked);
        decoded.rejected.append(&mut checked.rejected);
        if checked.records.is_empty() {
            continue;
        }
        // The event goes on in a subscription payload of its own, so ingest reads it exactly as
        // it reads CloudWatch's: the log group's cluster, the AWS origin, the log event's time.
        let single = SingleEvent {
            message_type: "DATA_MESSAGE",
            owner: subscription.owner.as_deref(),
            log_group: &subscription.log_group,
            log_stream: &subscription.log_stream,
            subscription_filters: &subscription.subscription_filters,
            log_events: [event],
        };
        match serde_json::to_vec(&single) {
            Ok(bytes) => decoded.records.push(RawRecord {
                destination: Destination::Audit,
                value: bytes,
                cluster: cluster.map(str::to_owned),
                node: None,
                timestamp_millis: event.timestamp,
            }),
            Err(error) => decoded.rejected.push(Rejected {
                reason: "invalid_event",
                detail: short(&error.to_string()),
                bytes: message.as_bytes().to_vec(),
            }),
        }
    }
}

/// One log event in a subscription payload of its own.
#[derive(Serialize)]
struct SingleEvent<'a> {
    #[serde(rename = "messageType")]
    message_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<&'a str>,
    #[serde(rename = "logGroup")]
    log_group: &'a str,
    #[serde(rename = "logStream")]
    log_stream: &'a str,
    #[serde(rename = "subscriptionFilters")]
    subscription_filters: &'a [String],
    #[serde(rename = "logEvents")]
    log_events: [&'a LogEvent; 1],
}

#[cfg(test)]
mod tests {
    use super::super::Destination;
    use super::super::tests::gzip;
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn audit_event(id: &str) -> String {
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"{id}","stage":"ResponseComplete","verb":"get","requestURI":"/api/v1/pods","user":{{"username":"bob"}}}}"#
        )
    }

    fn subscription(group: &str, stream: &str, messages: &[String]) -> String {
        let events: Vec<String> = messages
            .iter()
            .enumerate()
            .map(|(index, message)| {
                format!(
                    r#"{{"id":"{index}","timestamp":{},"message":{}}}"#,
                    1_700_000_000_000_i64 + i64::try_from(index).unwrap(),
                    serde_json::to_string(message).unwrap()
                )
            })
            .collect();
        format!(
            r#"{{"messageType":"DATA_MESSAGE","owner":"111122223333","logGroup":"{group}","logStream":"{stream}","subscriptionFilters":["audit"],"logEvents":[{}]}}"#,
            events.join(",")
        )
    }

    fn request(datas: &[Vec<u8>]) -> String {
        let records: Vec<String> = datas
            .iter()
            .map(|data| format!(r#"{{"data":"{}"}}"#, b64(data)))
            .collect();
        format!(
            r#"{{"requestId":"ed4acda5-034f-9f42-bba1-f29aea6d7d8f","timestamp":1578090901599,"records":[{}]}}"#,
            records.join(",")
        )
    }

    #[test]
    fn gzipped_cloudwatch_payloads_become_one_audit_record_per_log_event() {
        let messages = [audit_event("a"), audit_event("b")];
        let payload = subscription(
            "/aws/eks/prod-east/cluster",
            "kube-apiserver-audit-0f1e",
            &messages,
        );
        let body = request(&[gzip(payload.as_bytes())]);
        let batch = firehose(body.as_bytes(), DecodeLimits::default()).unwrap();
        assert_eq!(
            batch.request_id.as_deref(),
            Some("ed4acda5-034f-9f42-bba1-f29aea6d7d8f")
        );
        let records = &batch.decoded.records;
        assert_eq!(records.len(), 2);
        let first: serde_json::Value = serde_json::from_slice(&records[0].value).unwrap();
        assert_eq!(first["logGroup"], "/aws/eks/prod-east/cluster");
        assert_eq!(first["logStream"], "kube-apiserver-audit-0f1e");
        assert_eq!(first["owner"], "111122223333");
        assert_eq!(first["logEvents"].as_array().unwrap().len(), 1);
        assert_eq!(first["logEvents"][0]["message"], messages[0].as_str());
        assert_eq!(first["logEvents"][0]["timestamp"], 1_700_000_000_000_i64);
        assert_eq!(records[0].cluster.as_deref(), Some("prod-east"));
        assert_eq!(records[0].destination, Destination::Audit);
        assert_eq!(records[1].timestamp_millis, Some(1_700_000_000_001));
        assert!(batch.decoded.rejected.is_empty());
    }

    #[test]
    fn control_messages_and_other_control_plane_streams_are_skipped() {
        let control = r#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}"#;
        let authenticator = subscription(
            "/aws/eks/prod/cluster",
            "authenticator-0f1e",
            &["time=\"2026\" level=info msg=\"access granted\"".to_owned()],
        );
        let body = request(&[gzip(control.as_bytes()), authenticator.into_bytes()]);
        let batch = firehose(body.as_bytes(), DecodeLimits::default()).unwrap();
        assert!(batch.decoded.records.is_empty());
        assert!(batch.decoded.rejected.is_empty());
        assert_eq!(
            batch.decoded.skipped,
            ["control_message", "not_an_audit_log_stream"]
        );
    }

    #[test]
    fn extracted_messages_and_decompressed_payloads_are_read_as_well() {
        let extracted = format!("{}\n{}\n", audit_event("a"), audit_event("b"));
        let plain = subscription(
            "/aws/eks/dev/cluster",
            "kube-apiserver-audit-1",
            &[audit_event("c")],
        );
        let body = request(&[extracted.into_bytes(), plain.into_bytes()]);
        let batch = firehose(body.as_bytes(), DecodeLimits::default()).unwrap();
        let clusters: Vec<_> = batch
            .decoded
            .records
            .iter()
            .map(|record| record.cluster.as_deref())
            .collect();
        assert_eq!(clusters, [None, None, Some("dev")]);
    }

    #[test]
    fn a_bad_record_is_rejected_alone_with_its_reason() {
        let good = gzip(
            subscription(
                "/aws/eks/p/cluster",
                "kube-apiserver-audit-1",
                &[audit_event("a")],
            )
            .as_bytes(),
        );
        let mut body = request(&[good, b"\x1f\x8bbroken".to_vec(), b"not json".to_vec()]);
        body = body.replacen(r#""records":["#, r#""records":[{"data":"%%%"},"#, 1);
        let batch = firehose(body.as_bytes(), DecodeLimits::default()).unwrap();
        assert_eq!(batch.decoded.records.len(), 1);
        let reasons: Vec<_> = batch.decoded.rejected.iter().map(|r| r.reason).collect();
        assert_eq!(reasons, ["invalid_base64", "invalid_gzip", "invalid_json"]);
    }

    #[test]
    fn a_gzip_bomb_is_stopped_at_the_inflation_limit() {
        let bomb = gzip(&vec![b' '; 1_000_000]);
        let body = request(&[bomb]);
        let limits = DecodeLimits {
            max_inflated_bytes: 100_000,
        };
        let batch = firehose(body.as_bytes(), limits).unwrap();
        assert_eq!(batch.decoded.rejected[0].reason, "too_large");
    }

    #[test]
    fn a_body_that_is_not_a_firehose_request_is_refused() {
        assert_eq!(
            firehose(b"{\"hello\":1}", DecodeLimits::default())
                .unwrap_err()
                .reason,
            "not_a_firehose_request"
        );
        assert_eq!(
            firehose(b"{\"records\":", DecodeLimits::default())
                .unwrap_err()
                .reason,
            "invalid_json"
        );
    }

    #[test]
    fn only_eks_control_plane_log_groups_name_a_cluster() {
        assert_eq!(eks_cluster("/aws/eks/prod/cluster"), Some("prod"));
        assert_eq!(eks_cluster("/aws/eks//cluster"), None);
        assert_eq!(eks_cluster("/aws/eks/a/b/cluster"), None);
        assert_eq!(eks_cluster("/aws/lambda/x"), None);
    }
}
