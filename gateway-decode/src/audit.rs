//! The Kubernetes API server's audit webhook: `POST` of an `audit.k8s.io/v1` `EventList` (the
//! webhook backend's batch mode), or, from other senders, one `Event`, an array of them or JSON lines.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::{BadBody, Decoded, Destination, RawRecord, Rejected, json_values, short};

/// The fields that tell an EventList from an Event. Everything else is left unparsed.
#[derive(Deserialize)]
struct Envelope<'a> {
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    items: Option<Vec<&'a RawValue>>,
    #[serde(rename = "auditID")]
    audit_id: Option<IgnoredAny>,
    verb: Option<IgnoredAny>,
    #[serde(rename = "requestURI")]
    request_uri: Option<IgnoredAny>,
}

/// Splits an audit webhook body into one record per event.
pub fn audit_webhook(body: &[u8]) -> Result<Decoded, BadBody> {
    let (values, rejected) = json_values(body)?;
    let mut decoded = Decoded {
        rejected,
        ..Decoded::default()
    };
    for value in values {
        take_value(value, 0, None, &mut decoded);
    }
    if decoded.records.is_empty()
        && let Some(first) = decoded.rejected.first()
        && decoded.skipped.is_empty()
    {
        // Nothing in the body was an event: the sender should hear why, not a 200.
        return Err(BadBody::new(first.reason, first.detail.clone()));
    }
    Ok(decoded)
}

/// Envelopes (an array, an EventList) nest at most this deep.
const MAX_DEPTH: u8 = 2;

/// One JSON value of a body: an event becomes a record (of `cluster`, when the envelope named
/// one); an EventList or an array gives its elements.
pub(super) fn take_value(
    value: &RawValue,
    depth: u8,
    cluster: Option<&str>,
    decoded: &mut Decoded,
) {
    let text = value.get();
    if text.starts_with('[') && depth < MAX_DEPTH {
        match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(elements) => {
                for element in elements {
                    take_value(element, depth + 1, cluster, decoded);
                }
            }
            Err(error) => decoded.rejected.push(reject("invalid_json", &error, text)),
        }
        return;
    }
    if !text.starts_with('{') {
        decoded.rejected.push(Rejected {
            reason: "not_an_object",
            detail: "an audit event is a JSON object".to_owned(),
            bytes: text.as_bytes().to_vec(),
        });
        return;
    }
    match serde_json::from_str::<Envelope<'_>>(text) {
        Ok(Envelope {
            items: Some(items), ..
        }) if depth < MAX_DEPTH => {
            for item in items {
                take_value(item, depth + 1, cluster, decoded);
            }
        }
        Ok(Envelope {
            items: None, kind, ..
        }) if kind.as_deref() == Some("EventList") => {}
        Ok(envelope)
            if envelope.audit_id.is_some()
                || envelope.verb.is_some()
                || envelope.request_uri.is_some()
                || envelope.kind.as_deref() == Some("Event") =>
        {
            let mut record = RawRecord::new(Destination::Audit, text.as_bytes());
            record.cluster = cluster.map(str::to_owned);
            decoded.records.push(record);
        }
        Ok(_) => decoded.rejected.push(Rejected {
            reason: "not_an_audit_event",
            detail: "an object with neither auditID, verb, requestURI nor kind Event".to_owned(),
            bytes: text.as_bytes().to_vec(),
        }),
        Err(error) => decoded.rejected.push(reject("invalid_event", &error, text)),
    }
}

fn reject(reason: &'static str, error: &serde_json::Error, text: &str) -> Rejected {
    Rejected {
        reason,
        detail: short(&error.to_string()),
        bytes: text.as_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, verb: &str) -> String {
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/secrets","verb":"{verb}","user":{{"username":"alice"}},"sourceIPs":["10.0.0.1"]}}"#
        )
    }

    fn values(decoded: &Decoded) -> Vec<String> {
        decoded
            .records
            .iter()
            .map(|record| String::from_utf8(record.value.clone()).unwrap())
            .collect()
    }

    #[test]
    fn an_event_list_from_the_api_server_becomes_one_record_per_item_byte_for_byte() {
        let items = [event("a", "list"), event("b", "get")];
        let body = format!(
            r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{}]}}"#,
            items.join(",")
        );
        let decoded = audit_webhook(body.as_bytes()).unwrap();
        assert_eq!(values(&decoded), items);
        assert!(
            decoded
                .records
                .iter()
                .all(|record| record.destination == Destination::Audit)
        );
        assert!(decoded.rejected.is_empty());
    }

    #[test]
    fn single_events_arrays_and_json_lines_are_read_too() {
        let one = event("a", "list");
        let got = values(&audit_webhook(one.as_bytes()).unwrap());
        assert_eq!(got, [one]);
        let array = format!("[{},{}]", event("a", "list"), event("b", "get"));
        assert_eq!(audit_webhook(array.as_bytes()).unwrap().records.len(), 2);
        let lines = format!("{}\n{}\n", event("a", "list"), event("b", "get"));
        assert_eq!(audit_webhook(lines.as_bytes()).unwrap().records.len(), 2);
    }

    #[test]
    fn a_bad_line_is_rejected_alone_and_the_next_line_still_goes_through() {
        let lines = format!(
            "{}\n{{\"kind\":\"Ev\n{}\n",
            event("a", "list"),
            event("b", "get")
        );
        let decoded = audit_webhook(lines.as_bytes()).unwrap();
        assert_eq!(decoded.records.len(), 2);
        assert_eq!(decoded.rejected.len(), 1);
        assert_eq!(decoded.rejected[0].reason, "invalid_json");
        assert_eq!(decoded.rejected[0].bytes, b"{\"kind\":\"Ev");
    }

    #[test]
    fn items_that_are_not_audit_events_are_rejected_with_their_bytes() {
        let body = format!(
            r#"{{"kind":"EventList","items":[{},42,{{"hello":"world"}}]}}"#,
            event("a", "list")
        );
        let decoded = audit_webhook(body.as_bytes()).unwrap();
        assert_eq!(decoded.records.len(), 1);
        let reasons: Vec<_> = decoded.rejected.iter().map(|r| r.reason).collect();
        assert_eq!(reasons, ["not_an_object", "not_an_audit_event"]);
        assert_eq!(decoded.rejected[0].bytes, b"42");
    }

    #[test]
    fn a_body_that_is_not_an_audit_batch_is_refused_with_the_reason() {
        for (body, reason) in [
            (&b""[..], "empty"),
            (b"   \n", "empty"),
            (b"not json", "invalid_json"),
            (b"{\"items\": [", "invalid_json"),
            (b"{\"hello\":\"world\"}", "not_an_audit_event"),
            (b"\"text\"", "not_an_object"),
        ] {
            let error = audit_webhook(body).unwrap_err();
            assert_eq!(error.reason, reason, "{:?}", String::from_utf8_lossy(body));
            assert!(!error.detail.is_empty());
        }
    }

    #[test]
    fn an_empty_event_list_is_accepted_with_nothing_to_produce() {
        let decoded = audit_webhook(br#"{"kind":"EventList","items":[]}"#).unwrap();
        assert!(decoded.records.is_empty() && decoded.rejected.is_empty());
    }
}
