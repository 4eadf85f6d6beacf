//! Docker cannot run here, so the compose set-up is checked by reading it: every service, binary,
//! mounted file, port, scrape target, topic and dashboard metric it names must exist.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use clap::Parser;
use serde_yaml::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn compose() -> Value {
    serde_yaml::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML")
}

fn services(compose: &Value) -> &serde_yaml::Mapping {
    compose["services"].as_mapping().expect("services")
}

fn name(key: &Value) -> &str {
    key.as_str().unwrap()
}

fn environment(service: &Value) -> HashMap<String, String> {
    service["environment"]
        .as_mapping()
        .map(|map| {
            map.iter()
                .map(|(k, v)| {
                    (
                        name(k).to_owned(),
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| format!("{v:?}")),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

const STAGE_BINARIES: [&str; 6] = [
    "vigil",
    "vigil-ingest",
    "vigil-enrich",
    "vigil-detect",
    "vigil-publish",
    "vigil-gateway",
];

#[test]
fn every_vigil_service_runs_a_binary_the_image_contains() {
    let compose = compose();
    let dockerfile = read("Dockerfile");
    let mut stages = BTreeSet::new();
    for (key, service) in services(&compose) {
        if service["build"].as_str() != Some(".") {
            continue;
        }
        let command: Vec<&str> = service["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|part| part.as_str().unwrap())
            .collect();
        let binary = command[0];
        assert!(
            STAGE_BINARIES.contains(&binary),
            "{}: unknown binary {binary}",
            name(key)
        );
        assert!(
            dockerfile.contains(&format!("/src/target/release/{binary}")),
            "the Dockerfile does not copy {binary}"
        );
        let source = if binary == "vigil" {
            repo().join("vigil/src/main.rs")
        } else if binary == "vigil-gateway" {
            repo().join("gateway/src/main.rs")
        } else {
            repo().join(format!("kafka/src/bin/{binary}.rs"))
        };
        assert!(
            source.exists(),
            "{binary} has no source at {}",
            source.display()
        );
        // Files named on the command line are in the image.
        for part in &command {
            if let Some(inside) = part.strip_prefix("/opt/vigil/") {
                assert!(
                    repo().join(inside).exists(),
                    "{}: {part} is not in the image",
                    name(key)
                );
            }
        }
        let env = environment(service);
        assert_eq!(
            env.get("VIGIL_BROKERS").map(String::as_str),
            Some("kafka:9092"),
            "{}",
            name(key)
        );
        stages.insert(binary);
    }
    assert_eq!(
        stages,
        [
            "vigil-detect",
            "vigil-enrich",
            "vigil-gateway",
            "vigil-ingest",
            "vigil-publish"
        ]
        .into_iter()
        .collect()
    );
    assert!(
        services(&compose).contains_key("kafka")
            && services(&compose).contains_key("prometheus")
            && services(&compose).contains_key("grafana")
    );
    let kafka = environment(&services(&compose)["kafka"]);
    assert!(
        kafka["KAFKA_PROCESS_ROLES"].contains("controller"),
        "Kafka runs in KRaft mode"
    );
}

#[test]
fn mounted_files_exist_and_published_ports_do_not_collide() {
    let compose = compose();
    let mut published = BTreeSet::new();
    for (key, service) in services(&compose) {
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let host = volume.as_str().unwrap().split(':').next().unwrap();
            assert!(
                repo().join(host).exists(),
                "{}: mounts {host}, which does not exist",
                name(key)
            );
        }
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let host_port = port.as_str().unwrap().split(':').next().unwrap().to_owned();
            assert!(
                published.insert(host_port.clone()),
                "host port {host_port} published twice"
            );
        }
    }
}

#[test]
fn prometheus_scrapes_every_stage_on_its_metrics_port() {
    let compose = compose();
    let prometheus: Value = serde_yaml::from_str(&read("deploy/prometheus.yml")).unwrap();
    let targets: BTreeSet<String> = prometheus["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|job| job["static_configs"].as_sequence().unwrap().iter())
        .flat_map(|config| config["targets"].as_sequence().unwrap().iter())
        .map(|target| target.as_str().unwrap().to_owned())
        .collect();
    let mut expected = BTreeSet::new();
    for (key, service) in services(&compose) {
        if let Some(addr) = environment(service).get("VIGIL_METRICS_ADDR") {
            let port = addr.rsplit(':').next().unwrap();
            expected.insert(format!("{}:{port}", name(key)));
        }
    }
    assert_eq!(targets, expected);
}

#[test]
fn the_topic_setup_creates_every_default_topic_and_compacts_the_state_topics() {
    #[derive(Parser)]
    struct Defaults {
        #[command(flatten)]
        common: vigil_kafka::CommonArgs,
    }
    let topics = Defaults::parse_from(["test"]).common.topics;
    let compose = compose();
    let setup = services(&compose)["topics"]["command"]
        .as_sequence()
        .unwrap()[0]
        .as_str()
        .unwrap();
    for topic in [
        &topics.audit_raw,
        &topics.runtime_raw,
        &topics.events,
        &topics.enriched,
        &topics.detections,
        &topics.findings,
        &topics.deadletter,
    ] {
        assert!(
            setup.contains(topic.as_str()),
            "the topic set-up misses {topic}"
        );
    }
    // The OCSF findings topic publish is given is created too.
    let publish = environment(&services(&compose)["publish"]);
    let ocsf = publish
        .get("VIGIL_TOPIC_FINDINGS_OCSF")
        .expect("compose turns the OCSF findings topic on");
    assert!(
        setup.contains(ocsf.as_str()),
        "the topic set-up misses {ocsf}"
    );
    let compacted_line = setup
        .lines()
        .find(|line| line.contains("cleanup.policy=compact"))
        .unwrap();
    assert!(
        compacted_line.contains(&topics.detect_state)
            && compacted_line.contains(&topics.publish_state)
    );
}

#[test]
fn the_grafana_dashboard_queries_metrics_vigil_exports() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("charts/vigil/dashboards/vigil.json")).unwrap();
    let defined = exported_metrics();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|word| word.starts_with("vigil_"))
            {
                let metric = word.trim_end_matches("_bucket");
                assert!(
                    defined.contains(metric),
                    "the dashboard queries {metric}, which Vigil does not export"
                );
                queried += 1;
            }
        }
    }
    assert!(queried >= 10);
    let provisioning: Value =
        serde_yaml::from_str(&read("deploy/grafana/provisioning/dashboards/vigil.yml")).unwrap();
    assert_eq!(
        provisioning["providers"][0]["options"]["path"],
        "/var/lib/grafana/dashboards"
    );
}

/// Every metric name the binaries define: the runtime's and the gateway's.
pub fn exported_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for source in ["kafka/src/metrics.rs", "gateway/src/metrics.rs"] {
        for quoted in read(source).split('"').skip(1).step_by(2) {
            if quoted.starts_with("vigil_")
                && quoted
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                names.insert(quoted.to_owned());
            }
        }
    }
    names
}

#[test]
fn every_metric_the_chart_s_alerts_name_is_one_the_binaries_export() {
    let rules = read("charts/vigil/templates/prometheusrule.yaml");
    let defined = exported_metrics();
    let named: BTreeSet<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("vigil_"))
        .collect();
    assert!(named.len() >= 6, "the alerts name {named:?}");
    for metric in named {
        assert!(
            defined.contains(metric),
            "an alert names {metric}, which no binary exports"
        );
    }
    // Every alert has a summary and a description, and a severity label.
    let alerts = rules.matches("- alert: ").count();
    assert!(alerts >= 6);
    assert_eq!(rules.matches("summary:").count(), alerts);
    assert_eq!(rules.matches("description:").count(), alerts);
    assert_eq!(rules.matches("severity:").count(), alerts);
}

#[test]
fn the_chart_ships_the_dashboard_compose_mounts() {
    let template = read("charts/vigil/templates/dashboard.yaml");
    assert!(template.contains(".Files.Get \"dashboards/vigil.json\""));
    let compose = compose();
    let mounts: Vec<&str> = services(&compose)["grafana"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|volume| volume.as_str().unwrap())
        .collect();
    assert!(
        mounts
            .iter()
            .any(|mount| mount.starts_with("./charts/vigil/dashboards:")),
        "{mounts:?}"
    );
}
