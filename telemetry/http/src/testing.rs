//! Test support (feature `testkit`): [`RecordingReceiver`], a local HTTP server that records
//! every request and answers with a chosen status, standing in for Slack, PagerDuty, a webhook
//! or Alertmanager's webhook receiver.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate as http;
use crate::RunningServer;
pub use crate::blocking::BlockingEndpoint;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Headers, names in lower case.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: Bytes,
}

impl RecordedRequest {
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A local HTTP receiver that records requests.
#[derive(Debug)]
pub struct RecordingReceiver {
    server: Option<RunningServer>,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    arrived: Arc<Notify>,
    status: Arc<AtomicU16>,
    reply: Arc<Mutex<Bytes>>,
}

impl RecordingReceiver {
    /// Starts on a free port of 127.0.0.1, answering 200.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("a valid address"))
            .await
            .expect("bind a free loopback port")
    }

    /// Starts on `address` (a fixed port a server's configuration points at).
    pub async fn start_on(address: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(address).await?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let status = Arc::new(AtomicU16::new(200));
        let reply = Arc::new(Mutex::new(Bytes::from_static(b"ok")));
        let (r, a, s, b) = (
            Arc::clone(&requests),
            Arc::clone(&arrived),
            Arc::clone(&status),
            Arc::clone(&reply),
        );
        let server = http::spawn(listener, move |request| {
            let (r, a, s, b) = (
                Arc::clone(&r),
                Arc::clone(&a),
                Arc::clone(&s),
                Arc::clone(&b),
            );
            async move {
                let (parts, body) = request.into_parts();
                let headers = parts
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect();
                r.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(RecordedRequest {
                        method: parts.method.to_string(),
                        path: parts.uri.path().to_owned(),
                        headers,
                        body,
                    });
                a.notify_waiters();
                let status = StatusCode::from_u16(s.load(Ordering::Relaxed))
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let body = b.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let content_type = if body.starts_with(b"{") || body.starts_with(b"[") {
                    "application/json"
                } else {
                    "text/plain"
                };
                http::text(status, content_type, body)
            }
        })?;
        Ok(RecordingReceiver {
            server: Some(server),
            requests,
            arrived,
            status,
            reply,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr())
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server
            .as_ref()
            .map(|s| s.local_addr)
            .expect("the receiver is running")
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The status later requests get.
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::Relaxed);
    }

    /// The status and body later requests get (JSON bodies are labelled `application/json`).
    pub fn set_reply(&self, status: u16, body: impl Into<Bytes>) {
        self.set_status(status);
        *self.reply.lock().unwrap_or_else(|e| e.into_inner()) = body.into();
    }

    /// Waits up to `timeout` for a request that satisfies `predicate` (including ones already
    /// received); returns it, or `None` on timeout.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        predicate: impl Fn(&RecordedRequest) -> bool,
    ) -> Option<RecordedRequest> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            if let Some(found) = self.requests().into_iter().find(|r| predicate(r)) {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.requests().into_iter().find(|r| predicate(r));
            }
        }
    }

    /// Stops the receiver.
    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}
