//! A real broker and real stage processes for the tests: Apache Kafka (KRaft mode, fetched from Maven
//! Central by scripts/kafka/fetch.sh), started on free loopback ports in a scratch directory, and the
//! stage binaries started against it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use vigil_kafka::{Settings, SettingsArgs};
use vigil_pipeline::Pipeline;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace")
        .to_owned()
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-broker-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// The jars of the Apache Kafka broker: `VIGIL_KAFKA_LIBS`, or what `scripts/kafka/fetch.sh` put
/// in `target/kafka/<version>/libs`.
fn kafka_libs() -> PathBuf {
    if let Some(path) = std::env::var_os("VIGIL_KAFKA_LIBS") {
        return PathBuf::from(path);
    }
    let pom =
        std::fs::read_to_string(repo().join("scripts/kafka/pom.xml")).expect("the broker's pom");
    let version = pom
        .split("<kafka.version>")
        .nth(1)
        .and_then(|rest| rest.split("</kafka.version>").next())
        .expect("scripts/kafka/pom.xml names <kafka.version>");
    let libs = repo().join(format!("target/kafka/{version}/libs"));
    assert!(
        libs.join(format!("kafka_2.13-{version}.jar")).is_file(),
        "Apache Kafka {version} is not fetched into {}: run scripts/test.sh or scripts/kafka/fetch.sh \
         (Maven Central, needs java and mvn), or set VIGIL_KAFKA_LIBS to a directory of its jars",
        libs.display()
    );
    libs
}

/// One Apache Kafka node in KRaft mode (broker and controller in one process) on free loopback
/// ports, its log directory in the test's scratch directory (it survives a restart).
struct Node {
    id: usize,
    port: u16,
    /// The MSK IAM test listener's port (SASL_PLAINTEXT with OAUTHBEARER), when the broker has one.
    iam_port: Option<u16>,
    controller_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// Apache Kafka on loopback: one node, or a cluster of several (each a broker and a controller
/// voter); killed when dropped.
pub struct Broker {
    /// The scratch directory: the nodes' directories and the stages' logs.
    pub dir: PathBuf,
    nodes: Vec<Node>,
    /// The broker's jars, found once.
    libs: PathBuf,
    /// Classes beside the jars: the MSK IAM token validator, when the broker has that listener.
    extra_classes: Option<PathBuf>,
}

impl Broker {
    /// One node.
    pub fn start(name: &str) -> Self {
        Self::start_cluster(name, 1)
    }

    /// `count` nodes, each a controller voter; with three, internal and new topics are replicated
    /// three times with `min.insync.replicas=2`, so one node may be gone at any time.
    pub fn start_cluster(name: &str, count: usize) -> Self {
        Self::start_nodes(name, count, false)
    }

    /// One node with a second listener that checks SASL/OAUTHBEARER tokens as Amazon MSK's IAM
    /// access control does (scripts/kafka/msk-iam/VigilMskIamValidator.java, compiled here).
    /// The validator appends each decision to [`Broker::iam_audit`]. The listener makes clients
    /// authenticate again every 5 s (KIP-368), so a refreshed token is used within seconds.
    pub fn start_msk_iam(name: &str) -> Self {
        Self::start_nodes(name, 1, true)
    }

    fn start_nodes(name: &str, count: usize, msk_iam: bool) -> Self {
        let root = scratch(name);
        let nodes: Vec<Node> = (1..=count)
            .map(|id| {
                let dir = root.join(format!("node-{id}"));
                std::fs::create_dir_all(&dir).expect("node directory");
                Node {
                    id,
                    port: free_port(),
                    iam_port: msk_iam.then(free_port),
                    controller_port: free_port(),
                    dir,
                    child: None,
                }
            })
            .collect();
        let libs = kafka_libs();
        let extra_classes = msk_iam.then(|| compile_msk_iam_validator(&libs, &root));
        let mut broker = Self {
            dir: root,
            nodes,
            libs,
            extra_classes,
        };
        for index in 0..count {
            broker.format(index);
        }
        for index in 0..count {
            broker.launch(index);
        }
        for index in 0..count {
            broker.wait_until_serving(index);
        }
        broker
    }

    fn java(&self, dir: &Path) -> Command {
        let mut command = Command::new("java");
        command
            .args([
                "-Xms256m",
                "-Xmx512m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
            ])
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                repo().join("scripts/kafka/log4j2.yaml").display()
            ))
            .arg("-cp")
            .arg(match &self.extra_classes {
                Some(classes) => format!("{}/*:{}", self.libs.display(), classes.display()),
                None => format!("{}/*", self.libs.display()),
            })
            .current_dir(dir);
        command
    }

    /// Writes a node's server properties and formats its KRaft log directory, once.
    fn format(&self, index: usize) {
        let node = &self.nodes[index];
        let voters: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("{}@127.0.0.1:{}", node.id, node.controller_port))
            .collect();
        let (replication, min_isr) = if self.nodes.len() >= 3 {
            ("3", "2")
        } else {
            ("1", "1")
        };
        let properties = std::fs::read_to_string(repo().join("scripts/kafka/server.properties"))
            .expect("scripts/kafka/server.properties")
            .replace("@NODE_ID@", &node.id.to_string())
            .replace("@PORT@", &node.port.to_string())
            .replace("@CONTROLLER_PORT@", &node.controller_port.to_string())
            .replace("@VOTERS@", &voters.join(","))
            .replace("@REPLICATION@", replication)
            .replace("@MIN_ISR@", min_isr)
            .replace(
                "@LOG_DIRS@",
                &node.dir.join("kafka-logs").display().to_string(),
            );
        let properties = match node.iam_port {
            Some(iam_port) => {
                with_msk_iam_listener(&properties, node.port, iam_port, &self.iam_audit())
            }
            None => properties,
        };
        std::fs::write(node.dir.join("server.properties"), properties).expect("server.properties");
        let output = self
            .java(&node.dir)
            .args([
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                "dmlnaWwtdGVzdC1icm9rZQ",
                "--config",
                "server.properties",
            ])
            .output()
            .expect("java runs (the real-broker tests need a JDK 17 or later)");
        assert!(
            output.status.success(),
            "formatting the Kafka log directory failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn launch(&mut self, index: usize) {
        let dir = self.nodes[index].dir.clone();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("kafka.log"))
            .expect("broker log file");
        let child = self
            .java(&dir)
            .args(["kafka.Kafka", "server.properties"])
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("java starts the Kafka broker");
        self.nodes[index].child = Some(child);
    }

    /// Until the node answers metadata requests with itself among the brokers: the port opens
    /// before the controller quorum has elected a leader and the broker has registered.
    fn wait_until_serving(&mut self, index: usize) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let node = &mut self.nodes[index];
        let address = format!("127.0.0.1:{}", node.port);
        loop {
            if let Some(child) = node.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "Kafka node {} exited with {status}; see {}",
                    node.id,
                    node.dir.join("kafka.log").display()
                );
            }
            let serving = TcpStream::connect(("127.0.0.1", node.port)).is_ok()
                && ClientConfig::new()
                    .set("bootstrap.servers", &address)
                    .create::<BaseConsumer>()
                    .ok()
                    .and_then(|client| {
                        client
                            .fetch_metadata(None, Duration::from_secs(2))
                            .ok()
                            .map(|metadata| {
                                metadata
                                    .brokers()
                                    .iter()
                                    .any(|broker| broker.port() == i32::from(node.port))
                            })
                    })
                    .unwrap_or(false);
            if serving {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Kafka node {} did not serve on port {} within 90 s; see {}",
                node.id,
                node.port,
                node.dir.join("kafka.log").display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The MSK IAM listener's bootstrap address.
    pub fn iam_address(&self) -> String {
        self.nodes
            .iter()
            .filter_map(|node| node.iam_port)
            .map(|port| format!("127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The MSK IAM validator's decisions: `ACCEPT <access key>` or `REJECT <access key> <why>`.
    pub fn iam_audit(&self) -> PathBuf {
        self.dir.join("msk-iam-audit.log")
    }

    /// The replication factor of topics on this cluster (three nodes and more: 3).
    pub fn replication(&self) -> i32 {
        if self.nodes.len() >= 3 { 3 } else { 1 }
    }

    /// The bootstrap servers: every node.
    pub fn address(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// SIGKILL of one node (by index): no controlled shutdown, as a crashed broker.
    pub fn kill_node(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed node again and waits until it serves.
    pub fn start_node(&mut self, index: usize) {
        self.launch(index);
        self.wait_until_serving(index);
    }

    /// The index of the node leading most partitions of `topics`: the busiest one to kill.
    pub fn busiest_leader(&self, topics: &[&str]) -> usize {
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.address())
            .create()
            .expect("metadata client");
        let metadata = client
            .fetch_metadata(None, Duration::from_secs(10))
            .expect("cluster metadata");
        let mut led = vec![0usize; self.nodes.len()];
        for topic in metadata
            .topics()
            .iter()
            .filter(|topic| topics.contains(&topic.name()))
        {
            for partition in topic.partitions() {
                if let Some(index) = self
                    .nodes
                    .iter()
                    .position(|node| i32::try_from(node.id).ok() == Some(partition.leader()))
                {
                    led[index] += 1;
                }
            }
        }
        (0..led.len()).max_by_key(|index| led[*index]).unwrap_or(0)
    }

    /// SIGKILL of every node.
    pub fn stop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill_node(index);
        }
    }

    /// Every node killed, then started again.
    pub fn restart(&mut self) {
        self.stop();
        for index in 0..self.nodes.len() {
            self.launch(index);
        }
        for index in 0..self.nodes.len() {
            self.wait_until_serving(index);
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The stages' consumer group session timeout in the tests.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// Waits until the group coordinator has expired the members of SIGKILLed stages (their session
/// timeout), so that restarted stages join groups without them.
///
/// Apache Kafka gives a restarted member its share once the dead one expires in any case; waiting
/// keeps the tests to one rebalance and off any broker's handling of a join beside a dead member
/// (tansu 0.6.0, the previous test broker, left the restarted member with nothing).
pub fn wait_for_killed_members_to_expire() {
    std::thread::sleep(SESSION_TIMEOUT + Duration::from_secs(2));
}

/// Compiles the MSK IAM token validator against the broker's jars, into the scratch directory.
fn compile_msk_iam_validator(libs: &Path, root: &Path) -> PathBuf {
    let classes = root.join("msk-iam-classes");
    std::fs::create_dir_all(&classes).expect("classes directory");
    let output = Command::new("javac")
        .arg("-cp")
        .arg(format!("{}/*", libs.display()))
        .arg("-d")
        .arg(&classes)
        .arg(repo().join("scripts/kafka/msk-iam/VigilMskIamValidator.java"))
        .output()
        .expect(
            "javac runs (the MSK IAM broker test compiles its token validator; it needs a JDK)",
        );
    assert!(
        output.status.success(),
        "compiling the MSK IAM validator failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    classes
}

/// A node's properties with a second listener, `IAM`, on `iam_port`: SASL_PLAINTEXT with
/// OAUTHBEARER tokens checked by the validator, and re-authentication every 5 s.
fn with_msk_iam_listener(properties: &str, port: u16, iam_port: u16, audit: &Path) -> String {
    let plaintext = format!("PLAINTEXT://127.0.0.1:{port}");
    let both = format!("{plaintext},IAM://127.0.0.1:{iam_port}");
    let mut properties = properties
        .replace(
            &format!("listeners={plaintext}"),
            &format!("listeners={both}"),
        )
        .replace(
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,IAM:SASL_PLAINTEXT,",
        );
    assert!(
        properties.contains(&format!("advertised.listeners={both}"))
            && properties.contains("IAM:SASL_PLAINTEXT"),
        "scripts/kafka/server.properties no longer has the listener lines the MSK IAM test extends"
    );
    properties.push_str(&format!(
        "listener.name.iam.sasl.enabled.mechanisms=OAUTHBEARER\n\
         listener.name.iam.oauthbearer.sasl.server.callback.handler.class=VigilMskIamValidator\n\
         listener.name.iam.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub=\"broker\" auditLog=\"{}\";\n\
         listener.name.iam.oauthbearer.connections.max.reauth.ms=5000\n",
        audit.display()
    ));
    properties
}

/// A stage binary; killed when dropped.
pub struct Stage {
    pub name: &'static str,
    child: Option<Child>,
    args: Vec<String>,
    /// Environment variables set for the process, beside the test's own.
    env: Vec<(String, String)>,
    pub metrics_port: u16,
    log: PathBuf,
}

/// A stage's binary: the one this test build made, or, when `VIGIL_STAGE_BIN_DIR` names a
/// directory, the one there. `scripts/test.sh` points it at `target/release`: the binaries as they
/// ship, and light enough that the broker, on a 2-core machine, keeps answering the groups'
/// heartbeats while eight debug builds would keep it starved.
pub fn stage_binary(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("VIGIL_STAGE_BIN_DIR") {
        let binary = PathBuf::from(dir).join(format!("vigil-{name}"));
        assert!(
            binary.is_file(),
            "VIGIL_STAGE_BIN_DIR has no {}: build it (cargo build --release -p vigil-kafka --bins) \
             or unset VIGIL_STAGE_BIN_DIR to test this build's binaries",
            binary.display()
        );
        return binary;
    }
    if name == "gateway" {
        // Another package's binary: the test build cannot name it, the workspace's target can.
        let binary = repo().join("target/debug/vigil-gateway");
        assert!(
            binary.is_file(),
            "{} is missing: build it (cargo build -p vigil-gateway), or set VIGIL_STAGE_BIN_DIR \
             to a directory holding every vigil binary (cargo build --release --bins)",
            binary.display()
        );
        return binary;
    }
    PathBuf::from(match name {
        "ingest" => env!("CARGO_BIN_EXE_vigil-ingest"),
        "enrich" => env!("CARGO_BIN_EXE_vigil-enrich"),
        "detect" => env!("CARGO_BIN_EXE_vigil-detect"),
        "publish" => env!("CARGO_BIN_EXE_vigil-publish"),
        other => panic!("no stage {other}"),
    })
}

impl Stage {
    pub fn start(name: &'static str, broker: &Broker, extra: &[String]) -> Self {
        Self::start_with(name, broker, &broker.address(), extra, &[])
    }

    /// A stage on the bootstrap servers `brokers` (one of `broker`'s listeners) with `env` set.
    pub fn start_with(
        name: &'static str,
        broker: &Broker,
        brokers: &str,
        extra: &[String],
        env: &[(&str, &str)],
    ) -> Self {
        let metrics_port = free_port();
        let mut args = vec![
            "--brokers".to_owned(),
            brokers.to_owned(),
            "--metrics-addr".to_owned(),
            format!("127.0.0.1:{metrics_port}"),
            // 6 s is the broker's least session timeout (group.min.session.timeout.ms); a rebalance
            // timeout (max.poll.interval.ms) well above the heartbeat interval lets a member join a
            // running group without waiting out a long one.
            "--session-timeout-ms".to_owned(),
            SESSION_TIMEOUT.as_millis().to_string(),
            "-X".to_owned(),
            "max.poll.interval.ms=10000".to_owned(),
            "--partitions".to_owned(),
            "3".to_owned(),
            "--shutdown-timeout-secs".to_owned(),
            "10".to_owned(),
        ];
        args.extend(extra.iter().cloned());
        let log = broker.dir.join(format!("{name}-{metrics_port}.log"));
        let mut stage = Self {
            name,
            child: None,
            args,
            env: env
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
            metrics_port,
            log,
        };
        stage.launch();
        stage
    }

    fn launch(&mut self) {
        // Appended to: a restarted stage's log follows the one it had before being killed.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("stage log file");
        let child = Command::new(stage_binary(self.name))
            .args(&self.args)
            .current_dir(repo())
            .env("RUST_LOG", "info")
            // Never the machine's own AWS identity: a test that wants credentials gives them.
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
            .env_remove("AWS_ROLE_ARN")
            .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("stage starts");
        self.child = Some(child);
    }

    /// SIGKILL: no drain, no commit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within 30 s of SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// The most memory the running process has held (`VmHWM`), in MiB.
    pub fn peak_rss_mib(&self) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib / 1024)
            .expect("VmHWM in /proc/PID/status")
    }

    /// Whether the process started last is still running (it neither failed nor exited).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET a path of the stage's HTTP endpoint: (status code, body), or what went wrong.
    pub fn http_get(&self, path: &str) -> Result<(u16, String), String> {
        http_exchange(
            self.metrics_port,
            path,
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
            Duration::from_secs(5),
        )
    }

    /// The sum of a metric's series whose line starts with `series` (name and any leading labels).
    pub fn metric(&self, series: &str) -> f64 {
        self.http_get("/metrics")
            .map(|(_, body)| {
                body.lines()
                    .filter(|line| line.starts_with(series))
                    .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum()
            })
            .unwrap_or(0.0)
    }

    /// Polls `done` every `every` until it holds; fails after `timeout`, saying `what` and
    /// showing the stage's log.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        every: Duration,
        done: impl Fn() -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{} {what} within {timeout:?}; log:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(every);
        }
    }

    /// Waits until [`Stage::metric`] of `series` reaches `at_least`.
    pub fn wait_for_metric(&self, series: &str, at_least: f64, timeout: Duration) {
        self.wait_until(
            &format!("did not reach {at_least} {series}"),
            timeout,
            Duration::from_millis(20),
            || self.metric(series) >= at_least,
        );
    }

    pub fn wait_ready(&self, timeout: Duration) {
        self.wait_until("not ready", timeout, Duration::from_millis(100), || {
            self.http_get("/readyz").map(|(status, _)| status) == Ok(200)
        });
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn client_config(broker: &Broker) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", broker.address());
    config
}

/// Creates topics the test writes before any stage has (producing to a missing topic does not
/// create it on every broker). The raw audit topic gets one partition: it is the audit log as one
/// ordered stream, as a shipper reading one log writes it. Across partitions of unkeyed raw input
/// there is no order, and a controller's pods read before the workload that made them are reported
/// under the controller's name (see the Kafka issue's notes).
pub fn create_topics(broker: &Broker, topics: &[&str]) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> =
        client_config(broker).create().expect("admin client");
    let specs: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|topic| {
            let partitions = if *topic == "vigil.audit.raw" { 1 } else { 3 };
            NewTopic::new(
                topic,
                partitions,
                TopicReplication::Fixed(broker.replication()),
            )
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results = runtime
        .block_on(admin.create_topics(
            specs.iter(),
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .expect("create topics");
    for result in results {
        if let Err((topic, code)) = result {
            assert_eq!(
                code,
                rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists,
                "creating {topic}"
            );
        }
    }
}

/// Produces records (key, value) and waits for every acknowledgement.
pub fn produce(broker: &Broker, topic: &str, records: &[(Option<Vec<u8>>, Vec<u8>)]) {
    let producer: ThreadedProducer<DefaultProducerContext> = client_config(broker)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for (key, value) in records {
        let mut record: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(topic).payload(value.as_slice());
        if let Some(key) = key {
            record = record.key(key.as_slice());
        }
        let mut pending = record;
        loop {
            match producer.send(pending) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    returned,
                )) => {
                    pending = returned;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((error, _)) => panic!("producing to {topic}: {error}"),
            }
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("every record acknowledged");
}

/// Every record of `topic` now, read committed, once `quiet` has passed without a new one.
pub fn read_all(broker: &Broker, topic: &str, quiet: Duration) -> Vec<Record> {
    let mut last = (0, Instant::now());
    consume_until(broker, topic, Duration::from_secs(120), &mut |records| {
        if records.len() != last.0 {
            last = (records.len(), Instant::now());
        }
        last.1.elapsed() >= quiet
    })
}

/// How many records of `topic` the consumer group `group` has not committed yet, summed over the
/// topic's partitions (the high watermark minus the committed offset; a partition with records and
/// no committed offset counts whole). Read with an offset fetch: the caller does not join the group.
pub fn group_lag(broker: &Broker, group: &str, topic: &str) -> Option<i64> {
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = client_config(broker)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .ok()?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let partitions: Vec<i32> = metadata
        .topics()
        .first()?
        .partitions()
        .iter()
        .map(rdkafka::metadata::MetadataPartition::id)
        .collect();
    let mut wanted = TopicPartitionList::new();
    for partition in &partitions {
        wanted.add_partition(topic, *partition);
    }
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(5))
        .ok()?;
    let mut lag = 0;
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(5))
            .ok()?;
        let at = match committed.find_partition(topic, partition)?.offset() {
            Offset::Offset(offset) => offset,
            _ => low,
        };
        lag += (high - at).max(0);
    }
    Some(lag)
}

/// One consumed record with its headers.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: BTreeMap<String, String>,
}

/// Reads a topic from the start (all partitions, no group) until `done` says so or `timeout` passes.
pub fn consume_until(
    broker: &Broker,
    topic: &str,
    timeout: Duration,
    done: &mut dyn FnMut(&[Record]) -> bool,
) -> Vec<Record> {
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = client_config(broker)
        .set("group.id", format!("vigil-test-reader-{}", free_port()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let deadline = Instant::now() + timeout;
    // The topic may not exist yet: wait for its metadata.
    let partitions = loop {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
        if let Ok(metadata) = metadata {
            let count = metadata
                .topics()
                .first()
                .map_or(0, |found| found.partitions().len());
            if count > 0 {
                break count;
            }
        }
        assert!(Instant::now() < deadline, "topic {topic} never appeared");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(
                topic,
                i32::try_from(partition).expect("partition count"),
                Offset::Beginning,
            )
            .expect("assignment");
    }
    consumer.assign(&assignment).expect("assign");
    let mut records = Vec::new();
    while Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let headers = message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|header| {
                            (
                                header.key.to_owned(),
                                String::from_utf8_lossy(header.value.unwrap_or_default())
                                    .into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            records.push(Record {
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec),
                headers,
            });
            continue;
        }
        if done(&records) {
            break;
        }
    }
    records
}

/// The last finding JSON per id on the findings topic: id → (type, count). Attack sequences are
/// findings too; one merged into another (published a last time, archived, naming it) is gone.
pub fn latest_findings(records: &[Record]) -> BTreeMap<String, (String, i64)> {
    latest_by(records, |finding| {
        (
            finding["id"].as_str().expect("id").to_owned(),
            finding["type"].as_str().expect("type").to_owned(),
            finding["service"]["count"].as_i64().expect("count"),
            finding["type"] == vigil_publish::SEQUENCE_TYPE
                && finding["service"]["archived"] == true,
        )
    })
}

/// The latest state of each OCSF Detection Finding on a topic, as [`latest_findings`] reads
/// GuardDuty's: id, GuardDuty type (`metadata.event_code`), count; a sequence closed by a merge
/// (`activity_id` 3) is left out.
pub fn latest_ocsf_findings(records: &[Record]) -> BTreeMap<String, (String, i64)> {
    latest_by(records, |finding| {
        assert_eq!(finding["class_uid"], 2004, "a Detection Finding");
        (
            finding["finding_info"]["uid"]
                .as_str()
                .expect("uid")
                .to_owned(),
            finding["metadata"]["event_code"]
                .as_str()
                .expect("event_code")
                .to_owned(),
            finding["count"].as_i64().expect("count"),
            finding["activity_id"] == 3,
        )
    })
}

/// Each finding's latest state from its records: `read` gives id, type, count and whether the
/// record closes it (a sequence merged into another, left out).
fn latest_by(
    records: &[Record],
    read: impl Fn(&serde_json::Value) -> (String, String, i64, bool),
) -> BTreeMap<String, (String, i64)> {
    let mut latest = BTreeMap::new();
    let mut closed = Vec::new();
    for record in records {
        let Some(value) = &record.value else { continue };
        let finding: serde_json::Value = serde_json::from_slice(value).expect("finding JSON");
        let (id, kind, count, closes) = read(&finding);
        if closes {
            closed.push(id.clone());
        }
        // Counts only grow: the highest seen is the finding's current state whatever the partition order.
        let entry = latest.entry(id).or_insert((kind, 0));
        entry.1 = entry.1.max(count);
    }
    for id in closed {
        latest.remove(&id);
    }
    latest
}

/// What `vigil scan` finds in the same input with the same settings, computed with the same stage
/// libraries in-process.
pub fn expected_findings(inputs: &[&[u8]], settings: &Settings) -> BTreeMap<String, (String, i64)> {
    let intel = settings
        .threat_intel(&mut Vec::new())
        .expect("threat lists");
    let mut pipeline = Pipeline::new(settings, intel).expect("detectors");
    for input in inputs {
        pipeline.read_payload(input, &mut |_| {});
    }
    let sequences = pipeline.sequences().into_iter().map(|sequence| {
        (
            sequence.id.clone(),
            (vigil_publish::SEQUENCE_TYPE.to_owned(), sequence.count),
        )
    });
    pipeline
        .findings()
        .into_iter()
        .map(|finding| {
            (
                finding.id.clone(),
                (finding.detection.finding_type.clone(), finding.count),
            )
        })
        .chain(sequences)
        .collect()
}

/// The example day, one event a Kafka message, keyed as a log shipper would not bother to.
pub fn example_lines() -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    std::fs::read_to_string(repo().join("examples/audit/day-of-traffic.jsonl"))
        .expect("example day")
        .lines()
        .map(|line| (None, line.as_bytes().to_vec()))
        .collect()
}

/// One audit line as a CloudWatch Logs subscription record of `cluster`'s log group
/// (`/aws/eks/NAME/cluster`), keyed by cluster as a shipper would.
fn cloudwatch_record(cluster: &str, line: &str) -> (Option<Vec<u8>>, Vec<u8>) {
    let record = serde_json::json!({
        "messageType": "DATA_MESSAGE",
        "logGroup": format!("/aws/eks/{cluster}/cluster"),
        "logEvents": [{ "message": line }],
    });
    (
        Some(cluster.as_bytes().to_vec()),
        record.to_string().into_bytes(),
    )
}

/// `vigil scan`'s findings, with the example settings, over the values of `records`.
fn expected_for_records(records: &Records) -> FindingCounts {
    let settings = Settings::load(&SettingsArgs {
        config: Some(repo().join("examples/vigil.toml")),
        ..SettingsArgs::default()
    })
    .expect("example settings");
    let text: Vec<u8> = records
        .iter()
        .flat_map(|(_, value)| value.iter().copied().chain([b'\n']))
        .collect();
    expected_findings(&[&text], &settings)
}

/// The example day spread over `clusters` EKS clusters, each line in a CloudWatch Logs subscription
/// record of its cluster's log group and keyed by cluster as a shipper would, and the findings
/// `vigil scan` gives for the same records.
pub fn example_lines_in_clusters(clusters: usize) -> (Records, FindingCounts) {
    let day = std::fs::read_to_string(repo().join("examples/audit/day-of-traffic.jsonl"))
        .expect("example day");
    let records: Records = day
        .lines()
        .enumerate()
        .map(|(index, line)| cloudwatch_record(&format!("cluster-{}", index % clusters), line))
        .collect();
    let expected = expected_for_records(&records);
    (records, expected)
}

/// The baseline stream of [`baseline_stream`] played in each of `clusters` (the same behaviour, each
/// cluster learning its own), interleaved in time, each event in a CloudWatch Logs record of its
/// cluster's log group, keyed by cluster; and `vigil scan`'s findings over the same records.
pub fn baseline_stream_in_clusters(clusters: &[&str]) -> (Records, FindingCounts) {
    use vigil_sim::{audit_json, stream};
    let events = stream(&baseline_stream_options());
    let mut records: Records = Vec::with_capacity(events.len() * clusters.len());
    for event in &events {
        let line = audit_json(event);
        records.extend(
            clusters
                .iter()
                .map(|cluster| cloudwatch_record(cluster, &line)),
        );
    }
    let expected = expected_for_records(&records);
    (records, expected)
}

/// The example settings (clusters, lists, suppression), as every stage that uses them takes them.
pub fn settings_args() -> Vec<String> {
    vec!["--config".into(), "examples/vigil.toml".into()]
}

pub fn example_expected() -> BTreeMap<String, (String, i64)> {
    let settings = Settings::load(&SettingsArgs {
        config: Some(repo().join("examples/vigil.toml")),
        ..SettingsArgs::default()
    })
    .expect("example settings");
    let input =
        std::fs::read(repo().join("examples/audit/day-of-traffic.jsonl")).expect("example day");
    expected_findings(&[&input], &settings)
}

/// The example day's runtime half (Tetragon's export and the DNS agent's events), one event a
/// message, keyed by node as a shipper keeps a node's events in order (a binary's write before its
/// exec).
pub fn example_runtime_lines() -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(repo().join("examples/runtime/tetragon.jsonl.gz")).expect("tetragon"),
    )
    .read_to_string(&mut text)
    .expect("tetragon export");
    text.push_str(
        &std::fs::read_to_string(repo().join("examples/runtime/dns.jsonl")).expect("dns events"),
    );
    text.lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("example JSON");
            let node = value["node_name"]
                .as_str()
                .or_else(|| value["node"].as_str())
                .unwrap_or_default();
            (Some(node.as_bytes().to_vec()), line.as_bytes().to_vec())
        })
        .collect()
}

/// What `vigil scan` finds in the whole example day, audit and runtime.
pub fn example_expected_with_runtime() -> BTreeMap<String, (String, i64)> {
    let settings = Settings::load(&SettingsArgs {
        config: Some(repo().join("examples/vigil.toml")),
        ..SettingsArgs::default()
    })
    .expect("example settings");
    let audit =
        std::fs::read(repo().join("examples/audit/day-of-traffic.jsonl")).expect("example day");
    let runtime: Vec<u8> = example_runtime_lines()
        .into_iter()
        .flat_map(|(_, mut line)| {
            line.push(b'\n');
            line
        })
        .collect();
    expected_findings(&[&audit, &runtime], &settings)
}

pub fn header<'r>(record: &'r Record, name: &str) -> &'r str {
    record.headers.get(name).map_or("", String::as_str)
}

/// Kafka records (key, value).
pub type Records = Vec<(Option<Vec<u8>>, Vec<u8>)>;
/// Findings by id: type and count.
pub type FindingCounts = BTreeMap<String, (String, i64)>;

/// Three weeks of seeded cluster behaviour with anomalies injected after ten days of learning
/// (vigil_sim), one audit event a message, and what `vigil scan` finds in it.
pub fn baseline_stream() -> (Records, FindingCounts) {
    use vigil_sim::{audit_json, stream};
    // One key, as a shipper forwarding one cluster's audit log writes it: one partition, the file's
    // order, which the pipeline keeps (a cluster's events share a partition from ingest on).
    let records: Records = stream(&baseline_stream_options())
        .iter()
        .map(|event| {
            (
                Some(b"eval-cluster".to_vec()),
                audit_json(event).into_bytes(),
            )
        })
        .collect();
    let expected = expected_for_records(&records);
    (records, expected)
}

/// Twenty principals over three weeks, ten days of learning: the baseline tests' stream.
fn baseline_stream_options() -> vigil_sim::EvalOptions {
    vigil_sim::EvalOptions {
        seed: 11,
        principals: 20,
        days: 21,
        learn_days: 10,
    }
}

/// POST `body` to `path` on `port` of loopback (HTTP/1.1, one request per connection):
/// (status code, body), or what went wrong.
pub fn http_post(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String), String> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut request = request.into_bytes();
    request.extend_from_slice(body);
    http_exchange(port, path, &request, Duration::from_secs(60))
}

/// Writes one request to `port` of loopback and reads the answer to the end: (status code, body).
fn http_exchange(
    port: u16,
    path: &str,
    request: &[u8],
    timeout: Duration,
) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|error| error.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|error| error.to_string())?;
    stream
        .write_all(request)
        .map_err(|error| error.to_string())?;
    let mut bytes = Vec::new();
    stream
        .read_to_end(&mut bytes)
        .map_err(|error| format!("reading the answer to {path}: {error}"))?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            format!(
                "no HTTP status in {:?}",
                text.chars().take(200).collect::<String>()
            )
        })?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
