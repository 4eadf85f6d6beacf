//! `/metrics`, `/healthz` and `/readyz` over plain HTTP/1.1. Three read-only endpoints do not need a
//! web framework: a request line is read, one response written, the connection closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// What `/readyz` answers: ready once every consumer of the process has joined its group and been
/// given its share of the partitions (an empty share too: a standby instance is ready), not while
/// shutting down.
#[derive(Debug, Default)]
pub struct Health {
    consumers: AtomicUsize,
    ready_consumers: AtomicUsize,
    shutting_down: AtomicBool,
}

impl Health {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A consumer joins the count of those that must be ready.
    pub fn register(&self) {
        self.consumers.fetch_add(1, Ordering::SeqCst);
    }

    pub fn set_consumer_ready(&self, was: bool, now: bool) {
        match (was, now) {
            (false, true) => {
                self.ready_consumers.fetch_add(1, Ordering::SeqCst);
            }
            (true, false) => {
                self.ready_consumers.fetch_sub(1, Ordering::SeqCst);
            }
            _ => {}
        }
    }

    pub fn shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        let consumers = self.consumers.load(Ordering::SeqCst);
        !self.shutting_down.load(Ordering::SeqCst)
            && consumers > 0
            && self.ready_consumers.load(Ordering::SeqCst) >= consumers
    }
}

fn response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn route(path: &str, metrics: &Metrics, health: &Health) -> Vec<u8> {
    match path.split('?').next().unwrap_or_default() {
        "/metrics" => {
            metrics.ready.set(i64::from(health.is_ready()));
            response("200 OK", "text/plain; version=0.0.4", &metrics.render())
        }
        "/healthz" => response("200 OK", "text/plain", "ok\n"),
        "/readyz" if health.is_ready() => response("200 OK", "text/plain", "ready\n"),
        "/readyz" => response("503 Service Unavailable", "text/plain", "not ready\n"),
        _ => response("404 Not Found", "text/plain", "not found\n"),
    }
}

/// Binds the address now (so a taken port fails the start) and serves until the process ends.
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    health: Arc<Health>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    Ok(tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            let health = Arc::clone(&health);
            tokio::spawn(async move {
                // A request head may arrive in pieces: read until its blank line, within bounds.
                let mut head = Vec::with_capacity(512);
                let mut buffer = [0u8; 1024];
                let complete = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                    while !head.windows(4).any(|window| window == b"\r\n\r\n") && head.len() < 8192
                    {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return false,
                            Ok(read) => {
                                head.extend_from_slice(buffer.get(..read).unwrap_or_default())
                            }
                        }
                    }
                    true
                })
                .await;
                if complete != Ok(true) {
                    return;
                }
                let head = String::from_utf8_lossy(&head);
                let path = head
                    .lines()
                    .next()
                    .and_then(|line| line.split_whitespace().nth(1))
                    .unwrap_or("/");
                let _ = stream.write_all(&route(path, &metrics, &health)).await;
                let _ = stream.shutdown().await;
            });
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_every_consumer_and_shutdown() {
        let health = Health::default();
        assert!(!health.is_ready(), "no consumer yet");
        health.register();
        health.register();
        health.set_consumer_ready(false, true);
        assert!(!health.is_ready(), "one of two ready");
        health.set_consumer_ready(false, true);
        assert!(health.is_ready());
        health.set_consumer_ready(true, false);
        assert!(!health.is_ready(), "a consumer lost its partitions");
        health.set_consumer_ready(false, true);
        health.shutting_down();
        assert!(!health.is_ready());
    }

    #[test]
    fn routes() {
        let metrics = Metrics::new().unwrap();
        let health = Health::default();
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
        assert!(text(route("/healthz", &metrics, &health)).starts_with("HTTP/1.1 200"));
        assert!(text(route("/readyz", &metrics, &health)).starts_with("HTTP/1.1 503"));
        assert!(text(route("/metrics", &metrics, &health)).contains("vigil_ready 0"));
        assert!(text(route("/nope", &metrics, &health)).starts_with("HTTP/1.1 404"));
    }
}
