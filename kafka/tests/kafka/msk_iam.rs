//! Amazon MSK's IAM access control, played by Apache Kafka: a listener whose SASL/OAUTHBEARER
//! tokens are checked as MSK checks them (a SigV4 presigned `kafka-cluster:Connect` URL, signature
//! computed again from the access key's secret; scripts/kafka/msk-iam/VigilMskIamValidator.java),
//! and credentials served as EKS Pod Identity serves them (a container credentials endpoint with
//! an authorization token), rotating every ten seconds. The four stages run with
//! `--kafka-auth aws-msk-iam` and nothing else about AWS.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::broker::{assert_same_findings, wait_for_findings};
use crate::harness::*;

/// How often the credentials endpoint hands out a new access key; each is valid for twice that.
const ROTATION: Duration = Duration::from_secs(10);
const AUTHORIZATION: &str = "pod-identity-token-for-vigil";

/// The EKS Pod Identity agent, as the test plays it: `GET` with the pod's authorization token
/// answers temporary credentials. Keys start with `ASIAVIGILTEST` (the validator knows them); the
/// secret is the one the validator expects, or, for a forger, another.
struct CredentialsEndpoint {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl CredentialsEndpoint {
    fn start(key_infix: &'static str, right_secret: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("credentials endpoint");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let started = Instant::now();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                stream.set_nonblocking(false).expect("blocking");
                let mut reader = BufReader::new(stream.try_clone().expect("stream"));
                let mut authorized = false;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("authorization")
                        && value.trim() == AUTHORIZATION
                    {
                        authorized = true;
                    }
                }
                let generation = started.elapsed().as_secs() / ROTATION.as_secs();
                let key = format!("ASIAVIGIL{key_infix}{generation:07}");
                let secret = if right_secret {
                    format!("secret-for-{key}")
                } else {
                    "a-secret-the-validator-does-not-know".to_owned()
                };
                let expires = SystemTime::now() + 2 * ROTATION;
                let micros = expires
                    .duration_since(UNIX_EPOCH)
                    .expect("clock")
                    .as_micros();
                let body = serde_json::json!({
                    "AccessKeyId": key,
                    "SecretAccessKey": secret,
                    "Token": format!("session/token+{generation}="),
                    "Expiration": vigil_schemas::time::format_rfc3339_millis(
                        i64::try_from(micros).expect("micros")
                    ),
                })
                .to_string();
                let response = if authorized {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_owned()
                };
                let mut stream = reader.into_inner();
                let _ = stream.write_all(response.as_bytes());
            }
        });
        Self { port, stop }
    }

    /// What EKS Pod Identity puts in a pod's environment.
    fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI".to_owned(),
                format!("http://127.0.0.1:{}/v1/credentials", self.port),
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN".to_owned(),
                AUTHORIZATION.to_owned(),
            ),
            // Nothing else of the machine's: no profile files, no instance metadata.
            ("AWS_CONFIG_FILE".to_owned(), "/nonexistent".to_owned()),
            (
                "AWS_SHARED_CREDENTIALS_FILE".to_owned(),
                "/nonexistent".to_owned(),
            ),
            ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
        ]
    }
}

impl Drop for CredentialsEndpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn audit_lines(broker: &Broker) -> Vec<String> {
    std::fs::read_to_string(broker.iam_audit())
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn iam_stage(
    name: &'static str,
    broker: &Broker,
    endpoint: &CredentialsEndpoint,
    extra: &[String],
) -> Stage {
    let args: Vec<String> = [
        "--kafka-auth",
        "aws-msk-iam",
        "--aws-region",
        "us-east-1",
        // The test listener has no TLS; MSK's has (SASL_SSL is what --kafka-auth sets).
        "-X",
        "security.protocol=SASL_PLAINTEXT",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(extra.iter().cloned())
    .collect();
    let env = endpoint.env();
    let env: Vec<(&str, &str)> = env
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    Stage::start_with(name, broker, &broker.iam_address(), &args, &env)
}

#[test]
fn the_pipeline_authenticates_to_msk_iam_with_rotating_pod_identity_credentials() {
    let broker = Broker::start_msk_iam("msk-iam");
    create_topics(&broker, &["vigil.audit.raw", "vigil.runtime.raw"]);
    let endpoint = CredentialsEndpoint::start("TEST", true);
    // Every stage creates its topics (the admin client), reads its state back and joins its group
    // through the IAM listener only.
    let stages = vec![
        iam_stage("ingest", &broker, &endpoint, &[]),
        iam_stage("enrich", &broker, &endpoint, &settings_args()),
        iam_stage("detect", &broker, &endpoint, &settings_args()),
        iam_stage("publish", &broker, &endpoint, &settings_args()),
    ];
    for stage in &stages {
        stage.wait_ready(Duration::from_secs(90));
    }
    produce(&broker, "vigil.audit.raw", &example_lines());
    produce(&broker, "vigil.runtime.raw", &example_runtime_lines());
    let expected = example_expected_with_runtime();
    let found = wait_for_findings(&broker, &expected);
    assert_same_findings(&found, &expected, &stages);

    // The credentials rotate every 10 s and the listener makes clients authenticate again every
    // 5 s: tokens signed with at least three access keys are accepted over the run, so the stages
    // refreshed credentials and tokens while they ran.
    let deadline = Instant::now() + Duration::from_secs(60);
    let accepted_keys = loop {
        let keys: std::collections::BTreeSet<String> = audit_lines(&broker)
            .iter()
            .filter_map(|line| line.strip_prefix("ACCEPT ").map(str::to_owned))
            .collect();
        if keys.len() >= 3 || Instant::now() > deadline {
            break keys;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let rejected: Vec<String> = audit_lines(&broker)
        .into_iter()
        .filter(|line| line.starts_with("REJECT"))
        .collect();
    assert!(
        accepted_keys.len() >= 3 && rejected.is_empty(),
        "accepted keys {accepted_keys:?}, rejected tokens {rejected:?}; logs:\n{}",
        stages.iter().map(Stage::log).collect::<Vec<_>>().join("\n")
    );
    assert!(
        read_all(&broker, "vigil.deadletter", Duration::from_secs(2)).is_empty(),
        "no dead letter"
    );
    // Rotated keys are taken up by re-authenticating on the open connections (the principal, the
    // role, stays): the broker refused no client's authentication. A connection that drops in the
    // middle of one (librdkafka: "SaslAuthenticateRequest failed: ... Broker transport failure")
    // is a lost connection, not a refusal, and is reconnected.
    for stage in &stages {
        let log = stage.log();
        let refusals: Vec<&str> = log
            .lines()
            .filter(|line| {
                line.contains("SASL authentication error") && !line.contains("transport failure")
            })
            .collect();
        assert!(
            refusals.is_empty(),
            "the broker refused {}'s authentication: {refusals:#?}",
            stage.name
        );
    }
    for mut stage in stages {
        assert!(stage.running(), "{} exited:\n{}", stage.name, stage.log());
    }

    // Tokens signed with a secret that is not the access key's are refused, and a stage holding
    // only those never becomes ready.
    let forger = CredentialsEndpoint::start("TESTFORGED", false);
    let forged = iam_stage(
        "ingest",
        &broker,
        &forger,
        &["--group-id".to_owned(), "vigil-forged".to_owned()],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !audit_lines(&broker)
        .iter()
        .any(|line| line.starts_with("REJECT ASIAVIGILTESTFORGED") && line.contains("signature"))
    {
        assert!(
            Instant::now() < deadline,
            "no forged token refused within 30 s; audit:\n{}\nlog:\n{}",
            audit_lines(&broker).join("\n"),
            forged.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_ne!(
        forged.http_get("/readyz").map(|(status, _)| status),
        Ok(200),
        "a stage with forged tokens must not be ready"
    );
}
