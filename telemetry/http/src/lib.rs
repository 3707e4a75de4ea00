//! # hoist-http
//!
//! A minimal HTTP/1.1 server on hyper, shared by the telemetry endpoint (`/metrics`, `/healthz`)
//! and, behind the `testkit` feature, [`testing::RecordingReceiver`], the local HTTP server that
//! tests use in place of Slack, PagerDuty, Alertmanager or Prometheus: accept connections on a
//! bound listener, read each request's body (bounded), answer with a handler, stop accepting
//! when told to. A crate of its own so a provider's tests can use the receiver without
//! depending on telemetry (and through it on the engine).

#[cfg(feature = "testkit")]
mod blocking;
#[cfg(feature = "testkit")]
pub mod testing;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// Largest request body read, in bytes.
const MAX_BODY_BYTES: usize = 1 << 20;

/// A request with its body read.
pub type BufferedRequest = Request<Bytes>;

/// The response type handlers return.
pub type HttpResponse = Response<Full<Bytes>>;

/// A plain-text response.
pub fn text(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// A running server; dropping it stops accepting new connections.
#[derive(Debug)]
pub struct RunningServer {
    pub local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting, closes open connections and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves `handler` on `listener` from a spawned task until [`RunningServer::shutdown`].
pub fn spawn<H, F>(listener: TcpListener, handler: H) -> std::io::Result<RunningServer>
where
    H: Fn(BufferedRequest) -> F + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let local_addr = listener.local_addr()?;
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let handler = Arc::new(handler);
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                accepted = listener.accept() => {
                    let (stream, _peer) = match accepted {
                        Ok(pair) => pair,
                        Err(error) => {
                            tracing::warn!(%error, "telemetry HTTP accept failed");
                            continue;
                        }
                    };
                    let handler = Arc::clone(&handler);
                    connections.spawn(async move {
                        let service = service_fn(move |request: Request<Incoming>| {
                            let handler = Arc::clone(&handler);
                            async move { Ok::<_, Infallible>(handle(request, &*handler).await) }
                        });
                        if let Err(error) = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                        {
                            tracing::debug!(%error, "telemetry HTTP connection ended with an error");
                        }
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        connections.shutdown().await;
    });
    Ok(RunningServer {
        local_addr,
        stop: Some(stop_tx),
        task: Some(task),
    })
}

async fn handle<H, F>(request: Request<Incoming>, handler: &H) -> HttpResponse
where
    H: Fn(BufferedRequest) -> F,
    F: Future<Output = HttpResponse>,
{
    let (parts, body) = request.into_parts();
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => handler(Request::from_parts(parts, collected.to_bytes())).await,
        Err(error) => text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text/plain; charset=utf-8",
            format!("could not read the request body: {error}\n"),
        ),
    }
}
