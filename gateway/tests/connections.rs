//! The gateway over real sockets: TLS with a client certificate or a token, HTTP/1.1 and HTTP/2
//! (ALPN), plain HTTP, a client that never sends its head, and the drain on shutdown. Records go
//! to an in-memory sink; the broker tests in `kafka/tests` send them to Kafka.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use vigil_gateway::credentials::{Credentials, Policy};
use vigil_gateway::metrics::GatewayMetrics;
use vigil_gateway::server::{Gateway, Limits, RawTopics, serve};
use vigil_gateway::sink::{MemorySink, Sink};

const TOKEN: &str = "apiserver-token-for-prod";

struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A CA, a server certificate for localhost signed by it, a client certificate signed by it, and a
/// client certificate signed by a CA the gateway does not trust.
fn pki(name: &str) -> Pki {
    let dir = std::env::temp_dir().join(format!("vigil-gateway-pki-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = |common_name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let certificate = params.self_signed(&key).unwrap();
        (certificate, key)
    };
    let (ca_certificate, ca_key) = ca("vigil test CA");
    let (other_certificate, other_key) = ca("someone else's CA");
    let leaf =
        |names: Vec<String>, client: bool, issuer: &rcgen::Certificate, issuer_key: &KeyPair| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            if client {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
                params
                    .distinguished_name
                    .push(DnType::CommonName, "kube-apiserver");
            } else {
                params
                    .subject_alt_names
                    .push(SanType::IpAddress([127, 0, 0, 1].into()));
            }
            let certificate = params.signed_by(&key, issuer, issuer_key).unwrap();
            (certificate.pem(), key.serialize_pem())
        };
    let (server, server_key) = leaf(vec!["localhost".into()], false, &ca_certificate, &ca_key);
    let (client, client_key) = leaf(Vec::new(), true, &ca_certificate, &ca_key);
    let (stranger, stranger_key) = leaf(Vec::new(), true, &other_certificate, &other_key);
    for (file, text) in [
        ("ca.pem", ca_certificate.pem()),
        ("server.pem", server),
        ("server-key.pem", server_key),
        ("client.pem", client),
        ("client-key.pem", client_key),
        ("stranger.pem", stranger),
        ("stranger-key.pem", stranger_key),
    ] {
        std::fs::write(dir.join(file), text).unwrap();
    }
    Pki { dir }
}

fn policy(dir: &Path) -> Policy {
    let path = dir.join("credentials.toml");
    std::fs::write(
        &path,
        format!("[[credential]]\nkind = \"bearer\"\ncluster = \"prod\"\ntoken = \"{TOKEN}\"\n"),
    )
    .unwrap();
    Policy {
        credentials: Credentials::load(&path).unwrap(),
        allow_anonymous: false,
    }
}

struct Running {
    addr: SocketAddr,
    sink: Arc<MemorySink>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

async fn start(tls: Option<&Pki>, policy: Policy, limits: Limits) -> Running {
    let sink = Arc::new(MemorySink::default());
    let metrics = GatewayMetrics::new(vigil_kafka::Metrics::new().unwrap()).unwrap();
    let gateway = Arc::new(Gateway::new(
        policy,
        Arc::clone(&sink) as Arc<dyn Sink>,
        RawTopics {
            audit: "audit".into(),
            runtime: "runtime".into(),
            deadletter: "dead".into(),
        },
        limits,
        metrics,
    ));
    let acceptor = tls.map(|pki| {
        vigil_gateway::tls::acceptor(
            &pki.path("server.pem"),
            &pki.path("server-key.pem"),
            Some(&pki.path("ca.pem")),
        )
        .unwrap()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(serve(
        gateway,
        listener,
        acceptor,
        stopped,
        Duration::from_secs(5),
    ));
    Running {
        addr,
        sink,
        stop,
        server,
    }
}

fn client_config(pki: &Pki, certificate: Option<&str>, alpn: &[u8]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(pki.path("ca.pem")).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match certificate {
        Some(name) => {
            let chain: Vec<_> = CertificateDer::pem_file_iter(pki.path(&format!("{name}.pem")))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_file(pki.path(&format!("{name}-key.pem"))).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    config
}

fn audit_batch() -> String {
    r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"kind":"Event","auditID":"1","stage":"ResponseComplete","verb":"get","requestURI":"/api/v1/pods","user":{"username":"alice"}}]}"#.to_owned()
}

fn post(path: &str, token: Option<&str>) -> Request<Full<Bytes>> {
    let mut builder = Request::post(path).header("host", "localhost");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(Full::new(Bytes::from(audit_batch()))).unwrap()
}

/// One request over TLS with HTTP/1.1 or HTTP/2 (by ALPN); the status, or the TLS error.
async fn send_tls(
    addr: SocketAddr,
    config: rustls::ClientConfig,
    request: Request<Full<Bytes>>,
) -> Result<u16, String> {
    let http2 = config.alpn_protocols == [b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|error| error.to_string())?;
    let io = TokioIo::new(stream);
    let response = if http2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|error| error.to_string())?;
        tokio::spawn(connection);
        sender.send_request(request).await
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|error| error.to_string())?;
        tokio::spawn(connection);
        sender.send_request(request).await
    }
    .map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    Ok(status)
}

#[tokio::test]
async fn over_tls_a_client_certificate_or_a_token_authenticates_on_http1_and_http2() {
    let pki = pki("auth");
    let running = start(Some(&pki), policy(&pki.dir), Limits::default()).await;
    // The API server's webhook kubeconfig with a client certificate; the path names the cluster.
    let with_certificate = client_config(&pki, Some("client"), b"http/1.1");
    assert_eq!(
        send_tls(
            running.addr,
            with_certificate,
            post("/v1/audit/edge-1", None)
        )
        .await,
        Ok(200)
    );
    // A token instead, over HTTP/2.
    let with_token = client_config(&pki, None, b"h2");
    assert_eq!(
        send_tls(
            running.addr,
            with_token.clone(),
            post("/v1/audit", Some(TOKEN))
        )
        .await,
        Ok(200)
    );
    // Neither: 401.
    assert_eq!(
        send_tls(running.addr, with_token, post("/v1/audit", None)).await,
        Ok(401)
    );
    // A certificate from a CA the gateway does not trust fails the handshake.
    let stranger = client_config(&pki, Some("stranger"), b"http/1.1");
    assert!(
        send_tls(running.addr, stranger, post("/v1/audit/edge-1", None))
            .await
            .is_err()
    );
    let keys: Vec<Option<String>> = running
        .sink
        .records
        .lock()
        .unwrap()
        .iter()
        .map(|record| record.key.clone())
        .collect();
    assert_eq!(keys, [Some("edge-1".to_owned()), Some("prod".to_owned())]);
    let _ = running.stop.send(true);
    running.server.await.unwrap();
}

async fn raw_http(addr: SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer)).await;
    answer
}

#[tokio::test]
async fn plain_http_serves_and_a_client_that_never_sends_its_head_is_cut_off() {
    let pki_dir = std::env::temp_dir().join(format!("vigil-gateway-plain-{}", std::process::id()));
    std::fs::create_dir_all(&pki_dir).unwrap();
    let running = start(
        None,
        policy(&pki_dir),
        Limits {
            header_timeout: Duration::from_millis(500),
            ..Limits::default()
        },
    )
    .await;
    let body = audit_batch();
    let answer = raw_http(
        running.addr,
        &format!(
            "POST /v1/audit HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Connects and sends half a head: the server closes the connection after the header timeout
    // instead of holding it.
    let started = std::time::Instant::now();
    let mut stream = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    stream
        .write_all(b"POST /v1/audit HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection is still held after 10 s");
    assert!(started.elapsed() < Duration::from_secs(5));
    let _ = running.stop.send(true);
    running.server.await.unwrap();
}

#[tokio::test]
async fn on_shutdown_the_gateway_stops_accepting_and_finishes_what_it_has() {
    let pki_dir = std::env::temp_dir().join(format!("vigil-gateway-drain-{}", std::process::id()));
    std::fs::create_dir_all(&pki_dir).unwrap();
    let running = start(None, policy(&pki_dir), Limits::default()).await;
    let addr = running.addr;
    // A request whose body arrives slowly is in progress when the shutdown comes.
    let body = audit_batch();
    let (head, tail) = body.split_at(body.len() / 2);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /v1/audit HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = running.stop.send(true);
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.write_all(tail.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    running.server.await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
    assert_eq!(running.sink.records.lock().unwrap().len(), 1);
}
