//! The telemetry HTTP endpoint of `hoist run`: `/metrics` (OpenMetrics text for Prometheus),
//! `/healthz` (the process answers) and `/readyz` (the first evaluation finished, or this
//! replica is a standby). Binds to loopback by default ([`DEFAULT_ADDRESS`]).

use std::net::SocketAddr;

use hoist_api::{Error, Result};
use hyper::{Method, StatusCode};
use tokio::net::TcpListener;

use crate::http::{self, BufferedRequest, HttpResponse, RunningServer};
use crate::metrics::Telemetry;

/// Where the endpoint listens unless configured otherwise: loopback only.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:9464";

/// Content type of `/metrics`: the OpenMetrics text format prometheus-client writes.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The running endpoint. Stop it with [`TelemetryServer::shutdown`]; dropping it also stops
/// accepting connections.
///
/// ```no_run
/// # async fn demo() -> hoist_api::Result<()> {
/// use hoist_telemetry::{Telemetry, TelemetryServer};
///
/// let telemetry = Telemetry::new();
/// let server = TelemetryServer::start("127.0.0.1:9464".parse().unwrap(), telemetry.clone()).await?;
/// println!("metrics on http://{}/metrics", server.local_addr());
/// // ... run the control loop with `telemetry` as (one of) its event sinks ...
/// server.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TelemetryServer {
    server: RunningServer,
}

impl TelemetryServer {
    /// Binds `address` (port 0 picks a free port) and serves in a spawned task. Fails with
    /// [`hoist_api::ErrorKind::Config`] when the address cannot be bound.
    pub async fn start(address: SocketAddr, telemetry: Telemetry) -> Result<Self> {
        let listener = TcpListener::bind(address).await.map_err(|e| {
            Error::config(format!(
                "telemetry endpoint: cannot listen on {address}: {e}"
            ))
        })?;
        Self::from_listener(listener, telemetry)
    }

    /// Serves on an already bound listener.
    pub fn from_listener(listener: TcpListener, telemetry: Telemetry) -> Result<Self> {
        let server = http::spawn(listener, move |request| {
            let telemetry = telemetry.clone();
            async move { route(&telemetry, &request) }
        })
        .map_err(|e| Error::config(format!("telemetry endpoint: {e}")))?;
        tracing::info!(address = %server.local_addr, "telemetry endpoint listening (/metrics, /healthz, /readyz)");
        Ok(TelemetryServer { server })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr
    }

    /// Stops accepting connections and closes open ones.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

fn route(telemetry: &Telemetry, request: &BufferedRequest) -> HttpResponse {
    let plain = "text/plain; charset=utf-8";
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return http::text(StatusCode::METHOD_NOT_ALLOWED, plain, "use GET\n");
    }
    match request.uri().path() {
        "/metrics" => http::text(StatusCode::OK, METRICS_CONTENT_TYPE, telemetry.encode()),
        "/healthz" => http::text(StatusCode::OK, plain, "ok\n"),
        "/readyz" => {
            if telemetry.is_ready() {
                http::text(StatusCode::OK, plain, "ready\n")
            } else {
                http::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    plain,
                    "not ready: the first evaluation has not finished\n",
                )
            }
        }
        _ => http::text(
            StatusCode::NOT_FOUND,
            plain,
            "not found; try /metrics, /healthz or /readyz\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use hoist_engine::events::{Event, EventSink};

    use super::*;

    async fn get(client: &reqwest::Client, url: String) -> (u16, String, String) {
        let response = client.get(url).send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, content_type, response.text().await.unwrap())
    }

    #[tokio::test]
    async fn serves_metrics_health_and_readiness() {
        let telemetry = Telemetry::new();
        let server = TelemetryServer::start("127.0.0.1:0".parse().unwrap(), telemetry.clone())
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr());
        let client = reqwest::Client::new();

        let (status, _, body) = get(&client, format!("{base}/healthz")).await;
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        let (status, _, _) = get(&client, format!("{base}/readyz")).await;
        assert_eq!(status, 503);

        telemetry.emit(&Event::Circuit {
            provider: "aws".into(),
            open: true,
        });
        let (status, content_type, body) = get(&client, format!("{base}/metrics")).await;
        assert_eq!(status, 200);
        assert!(content_type.starts_with("application/openmetrics-text"));
        assert!(body.contains("hoist_provider_circuit_open{provider=\"aws\"} 1"));

        telemetry.mark_evaluated();
        let (status, _, _) = get(&client, format!("{base}/readyz")).await;
        assert_eq!(status, 200);
        let (status, _, _) = get(&client, format!("{base}/nope")).await;
        assert_eq!(status, 404);
        server.shutdown().await;
        assert!(client.get(format!("{base}/healthz")).send().await.is_err());
    }

    #[tokio::test]
    async fn standby_replicas_are_ready() {
        let telemetry = Telemetry::new();
        assert!(!telemetry.is_ready());
        telemetry.set_standby(true);
        assert!(telemetry.is_ready());
        telemetry.set_standby(false);
        assert!(!telemetry.is_ready());
    }

    #[tokio::test]
    async fn a_taken_address_is_a_config_error() {
        let first = TelemetryServer::start("127.0.0.1:0".parse().unwrap(), Telemetry::new())
            .await
            .unwrap();
        let err = TelemetryServer::start(first.local_addr(), Telemetry::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), hoist_api::ErrorKind::Config);
        assert!(err.to_string().contains(&first.local_addr().to_string()));
    }
}
