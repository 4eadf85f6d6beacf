//! `vigil report`: findings (GuardDuty finding JSON, as `vigil scan` and the findings topic write
//! them) as one self-contained HTML file a responder opens in a browser, from a USB stick if need
//! be: no network, no CDN, the data and the page's script inline.
//!
//! The findings are projected here to what the page shows (a few hundred bytes each, not the
//! finding's whole JSON), so 100,000 of them stay a file a browser opens; the page draws one page
//! of the table at a time. Every string reaches the page as JSON data inside a
//! `<script type="application/json">` element with `<`, `>` and `&` escaped, and the page's script
//! puts strings into the document with `textContent` only: runtime fields are attacker-controlled.

// `value["key"]` on a serde_json Value yields Null for a missing key or a non-object: it cannot
// panic, and it keeps the projection of a loosely shaped finding readable.
#![allow(clippy::indexing_slicing)]

use serde_json::{Map, Value, json};

const TEMPLATE: &str = include_str!("template.html");
const DATA_MARK: &str = "__VIGIL_REPORT_DATA__";

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// Puts `key` in `map` when the value is there.
fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value.filter(|value| !value.is_null()) {
        map.insert(key.to_owned(), value);
    }
}

fn process(process: &Value) -> Value {
    json!({
        "path": process["executablePath"],
        "cmd": process["commandLine"],
        "pid": process["pid"],
        "user": process["userId"],
    })
}

/// What the page shows of one finding.
fn project(finding: &Value) -> Value {
    let service = &finding["service"];
    let kubernetes = &finding["resource"]["kubernetesDetails"];
    let call = &service["action"]["kubernetesApiCallAction"];
    let mut row = Map::new();
    for (key, path) in [
        ("id", "/id"),
        ("type", "/type"),
        ("severity", "/severity"),
        ("title", "/title"),
        ("description", "/description"),
        ("count", "/service/count"),
        ("first", "/service/eventFirstSeen"),
        ("last", "/service/eventLastSeen"),
        ("archived", "/service/archived"),
        ("cluster", "/resource/eksClusterDetails/name"),
        ("sequence", "/associatedAttackSequenceArn"),
    ] {
        put(&mut row, key, finding.pointer(path).cloned());
    }
    put(
        &mut row,
        "user",
        kubernetes
            .pointer("/kubernetesUserDetails/username")
            .cloned(),
    );
    let workload = &kubernetes["kubernetesWorkloadDetails"];
    if workload.is_object() {
        put(
            &mut row,
            "workload",
            Some(json!(format!(
                "{} {}/{}",
                text(&workload["type"]).unwrap_or_default(),
                text(&workload["namespace"]).unwrap_or_default(),
                text(&workload["name"]).unwrap_or_default()
            ))),
        );
    }
    if call.is_object() {
        let remote = &call["remoteIpDetails"];
        put(
            &mut row,
            "api",
            Some(json!({
                "verb": call["verb"], "uri": call["requestUri"], "status": call["statusCode"],
                "sourceIPs": call["sourceIPs"], "userAgent": call["userAgent"],
                "ip": remote.get("ipAddressV4").or_else(|| remote.get("ipAddressV6")),
                "scope": remote["ipScope"],
                "asn": remote.pointer("/organization/asnOrg"),
            })),
        );
    }
    let runtime = &service["runtimeDetails"];
    if runtime.is_object() {
        put(
            &mut row,
            "process",
            Some(json!({
                "process": process(&runtime["process"]),
                "lineage": runtime["process"]["lineage"].as_array().map(|lineage| lineage.iter().map(process).collect::<Vec<_>>()),
                "container": finding["resource"]["containerDetails"],
                "context": runtime["context"],
            })),
        );
    }
    let network = &service["action"]["networkConnectionAction"];
    if network.is_object() {
        let remote = &network["remoteIpDetails"];
        put(
            &mut row,
            "connection",
            Some(json!({
                "ip": remote.get("ipAddressV4").or_else(|| remote.get("ipAddressV6")),
                "port": network["remotePortDetails"]["port"],
                "protocol": network["protocol"],
            })),
        );
    }
    put(
        &mut row,
        "domain",
        service.pointer("/action/dnsRequestAction/domain").cloned(),
    );
    put(
        &mut row,
        "intel",
        service
            .pointer("/evidence/threatIntelligenceDetails")
            .cloned(),
    );
    // GuardDuty's anomaly shape turned back into rows: entity, dimension, observed, usual.
    let anomaly = &service["detection"]["anomaly"];
    if let Some(behavior) = anomaly["unusual"]["behavior"].as_object() {
        let mut rows = Vec::new();
        for (entity, dimensions) in behavior {
            for (dimension, unusual) in dimensions.as_object().into_iter().flatten() {
                rows.push(json!({
                    "entity": entity,
                    "dimension": dimension,
                    "observed": unusual["observations"]["text"],
                    "familiarity": unusual["profileSubtype"],
                    "usual": anomaly["profiles"][dimension][entity][0]["observations"]["text"],
                }));
            }
        }
        row.insert("anomaly".into(), Value::Array(rows));
    }
    if let Some(additional) = service
        .pointer("/additionalInfo/value")
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
    {
        put(&mut row, "attack", additional.get("mitreAttack").cloned());
        put(&mut row, "detector", additional.get("detector").cloned());
    }
    let sequence = &service["detection"]["sequence"];
    if sequence.is_object() {
        row.insert(
            "signals".into(),
            Value::Array(
                sequence["signals"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|signal| {
                        let name = text(&signal["name"]).unwrap_or_default();
                        json!({
                            "uid": signal["uid"], "name": name, "title": signal["title"],
                            "description": signal["description"], "severity": signal["severity"],
                            "first": signal["firstSeenAt"], "last": signal["lastSeenAt"],
                            "count": signal["count"],
                            "source": if name.contains("Runtime/") || signal["type"] == "RUNTIME_MONITORING" { "runtime" } else { "audit" },
                            "weak": signal["type"] != "FINDING",
                        })
                    })
                    .collect(),
            ),
        );
        row.insert(
            "actors".into(),
            Value::Array(
                sequence["actors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|actor| {
                        actor["user"]["name"]
                            .as_str()
                            .map(|name| json!(format!("user {name}")))
                            .or_else(|| {
                                actor["process"]["path"]
                                    .as_str()
                                    .map(|path| json!(format!("process {path}")))
                            })
                            .unwrap_or(Value::Null)
                    })
                    .filter(|actor| !actor.is_null())
                    .collect(),
            ),
        );
        row.insert(
            "resources".into(),
            Value::Array(
                sequence["resources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|resource| {
                        json!(format!(
                            "{} {}",
                            text(&resource["resourceType"]).unwrap_or_default(),
                            text(&resource["name"]).unwrap_or_default()
                        ))
                    })
                    .collect(),
            ),
        );
        row.insert(
            "endpoints".into(),
            Value::Array(
                sequence["endpoints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|endpoint| {
                        endpoint
                            .get("ip")
                            .or_else(|| endpoint.get("domain"))
                            .cloned()
                    })
                    .collect(),
            ),
        );
    }
    Value::Object(row)
}

/// JSON that is safe inside a `<script>` element: no `</script>`, no `<!--`, no entity.
fn script_safe(json: &str) -> String {
    let mut safe = String::with_capacity(json.len() + json.len() / 16);
    for character in json.chars() {
        match character {
            '<' => safe.push_str("\\u003c"),
            '>' => safe.push_str("\\u003e"),
            '&' => safe.push_str("\\u0026"),
            '\u{2028}' => safe.push_str("\\u2028"),
            '\u{2029}' => safe.push_str("\\u2029"),
            other => safe.push(other),
        }
    }
    safe
}

/// The report of these findings (GuardDuty finding JSON, sequences included).
pub fn render(findings: &[Value], title: &str) -> String {
    let data = json!({
        "title": title,
        "findings": findings.iter().map(project).collect::<Vec<_>>(),
    });
    TEMPLATE.replacen(DATA_MARK, &script_safe(&data.to_string()), 1)
}

/// Findings from the text of a findings file: JSON lines, or one JSON array. Lines that are not a
/// finding are counted, not fatal.
pub fn read_findings(text: &str, findings: &mut Vec<Value>) -> usize {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[')
        && let Ok(Value::Array(items)) = serde_json::from_str::<Value>(trimmed)
    {
        let (total, before) = (items.len(), findings.len());
        findings.extend(items.into_iter().filter(|item| item["id"].is_string()));
        return total - (findings.len() - before);
    }
    let mut skipped = 0;
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(finding) if finding["id"].is_string() && finding["type"].is_string() => {
                findings.push(finding);
            }
            _ => skipped += 1,
        }
    }
    skipped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_cannot_close_the_data_element() {
        let finding =
            json!({"id": "a", "type": "T", "title": "</script><script>alert(1)</script>&amp;"});
        let page = render(&[finding], "t");
        let open = "<script id=\"vigil-data\" type=\"application/json\">";
        let start = page.find(open).unwrap() + open.len();
        let data = &page[start..];
        let data = &data[..data.find("</script>").unwrap()];
        assert!(!data.contains('<') && !data.contains('&'), "{data}");
        assert!(page.contains("\\u003c/script\\u003e\\u003cscript\\u003ealert(1)"));
        assert!(!page.contains("&amp;amp;"));
    }

    #[test]
    fn the_projection_keeps_what_the_page_shows() {
        let finding = json!({
            "id": "f", "type": "Execution:Runtime/SuspiciousShellCreated", "severity": 5.0,
            "title": "t", "description": "d",
            "service": {"count": 2, "eventFirstSeen": "2024-03-12T14:40:00.000Z", "archived": false,
                "runtimeDetails": {"process": {"executablePath": "/bin/sh", "lineage": [{"executablePath": "/usr/sbin/nginx"}]}, "context": {}}},
            "resource": {"eksClusterDetails": {"name": "prod"}},
        });
        let row = project(&finding);
        assert_eq!(row["process"]["process"]["path"], "/bin/sh");
        assert_eq!(row["process"]["lineage"][0]["path"], "/usr/sbin/nginx");
        assert_eq!(row["count"], 2);
        assert_eq!(row["cluster"], "prod");
        assert!(row.get("api").is_none());
    }

    #[test]
    fn findings_are_read_from_lines_or_an_array_and_garbage_is_counted() {
        let mut findings = Vec::new();
        let skipped = read_findings(
            "{\"id\":\"a\",\"type\":\"T\"}\nnot json\n\n{\"id\":\"b\",\"type\":\"T\"}\n",
            &mut findings,
        );
        assert_eq!((findings.len(), skipped), (2, 1));
        findings.clear();
        read_findings("[{\"id\":\"a\",\"type\":\"T\"}]", &mut findings);
        assert_eq!(findings.len(), 1);
    }
}
