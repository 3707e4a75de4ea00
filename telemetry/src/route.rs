//! The HTTP endpoint of `hoist route`: a [`Router`] answering where work should run, with its
//! load as Prometheus metrics, and [`load`], the load generator that measures it.
//!
//! | method and path | in | out |
//! |---|---|---|
//! | `POST /v1/route` | a [`RouteRequest`] as JSON | `200` and a [`Routed`](hoist_engine::route::Routed); `422` and `{"error": "..."}` for bad JSON or no matching rule; `503` when the pool has no endpoints |
//! | `POST /v1/done` | `{"pool": "web", "endpoint": "i-1"}` | `200` and `{"released": true}`; `404` for an unknown pool or endpoint, `409` when it has nothing in flight |
//! | `GET /v1/pools` | | `{"pools": [PoolLoad, ...], "rules": [RuleLoad, ...]}` |
//! | `GET /metrics` | | Prometheus text |
//! | `GET /healthz` | | `ok` |
//!
//! Request bodies over [`MAX_BODY_BYTES`] are refused with `413`. Binds to loopback by default
//! ([`DEFAULT_ADDRESS`]).
//!
//! Metrics: `hoist_route_requests_total{pool,rule}` (requests each rule routed),
//! `hoist_route_in_flight{pool}` (work routed and not yet done: what a pool's policies scale
//! on), `hoist_route_sticky_moves_total{pool}` (session requests whose owner was at its load
//! bound), `hoist_route_endpoints{pool}`, `hoist_route_endpoint_in_flight{pool,provider,group,
//! endpoint}`, `hoist_route_errors_total{reason}` (`no_match`, `no_endpoints`,
//! `invalid_request`, `too_large`).

pub mod load;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hoist_api::{Error, Result};
use hoist_engine::route::{RouteError, RouteRequest, Router};
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::http::{self, BufferedRequest, HttpResponse, RunningServer};

/// Where `hoist route` listens unless told otherwise: loopback only.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:9300";

/// The largest request body taken, in bytes; a larger one is refused with `413`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Content type of `/metrics`: the Prometheus text format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const JSON: &str = "application/json";
const PLAIN: &str = "text/plain; charset=utf-8";

/// The body of `POST /v1/done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoneRequest {
    /// The pool of the answer.
    pub pool: String,
    /// The endpoint's id in the answer.
    pub endpoint: String,
}

/// Requests refused, by reason, for `hoist_route_errors_total`.
#[derive(Debug, Default)]
struct Refusals {
    no_match: AtomicU64,
    no_endpoints: AtomicU64,
    invalid_request: AtomicU64,
    too_large: AtomicU64,
}

#[derive(Debug)]
struct Service {
    router: Arc<Router>,
    refusals: Refusals,
}

/// The running endpoint. Stop it with [`RouteServer::shutdown`]; dropping it also stops
/// accepting connections.
///
/// ```no_run
/// # async fn demo() -> hoist_api::Result<()> {
/// use std::sync::Arc;
/// use hoist_engine::route::{Endpoint, RouteRule, Router};
/// use hoist_telemetry::route::RouteServer;
///
/// let router = Arc::new(Router::new(vec![RouteRule::to_pool("web")]));
/// router.set_endpoints("web", vec![Endpoint::new("i-1", "web", "aws")]).unwrap();
/// let server = RouteServer::start("127.0.0.1:9300".parse().unwrap(), Arc::clone(&router)).await?;
/// println!("routing on http://{}/v1/route", server.local_addr());
/// // ... keep the pools' endpoints up to date with router.set_endpoints ...
/// server.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RouteServer {
    server: RunningServer,
}

impl RouteServer {
    /// Binds `address` (port 0 picks a free port) and serves `router` in a spawned task. Fails
    /// with [`hoist_api::ErrorKind::Config`] when the address cannot be bound.
    pub async fn start(address: SocketAddr, router: Arc<Router>) -> Result<Self> {
        let listener = TcpListener::bind(address).await.map_err(|e| {
            Error::config(format!("routing endpoint: cannot listen on {address}: {e}"))
        })?;
        Self::from_listener(listener, router)
    }

    /// Serves on an already bound listener.
    pub fn from_listener(listener: TcpListener, router: Arc<Router>) -> Result<Self> {
        let service = Arc::new(Service {
            router,
            refusals: Refusals::default(),
        });
        let server = http::spawn(listener, move |request| {
            let service = Arc::clone(&service);
            async move { service.handle(&request) }
        })
        .map_err(|e| Error::config(format!("routing endpoint: {e}")))?;
        tracing::info!(address = %server.local_addr, "routing endpoint listening (/v1/route, /v1/done, /v1/pools, /metrics, /healthz)");
        Ok(RouteServer { server })
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

/// `{"error": message}` with `status`.
fn error(status: StatusCode, message: impl std::fmt::Display) -> HttpResponse {
    let body = serde_json::json!({ "error": message.to_string() });
    http::text(status, JSON, body.to_string())
}

fn json<T: Serialize>(value: &T) -> HttpResponse {
    match serde_json::to_vec(value) {
        Ok(body) => http::text(StatusCode::OK, JSON, body),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write the answer: {e}"),
        ),
    }
}

impl Service {
    fn handle(&self, request: &BufferedRequest) -> HttpResponse {
        let path = request.uri().path();
        let method = request.method();
        let post = |handler: fn(&Service, &[u8]) -> HttpResponse| {
            if method != Method::POST {
                return error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{path} takes POST with a JSON body"),
                );
            }
            if request.body().len() > MAX_BODY_BYTES {
                self.refusals.too_large.fetch_add(1, Ordering::Relaxed);
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the body has {} bytes; at most {MAX_BODY_BYTES} are taken",
                        request.body().len()
                    ),
                );
            }
            handler(self, request.body())
        };
        let get = |handler: fn(&Service) -> HttpResponse| {
            if method != Method::GET && method != Method::HEAD {
                return error(StatusCode::METHOD_NOT_ALLOWED, format!("{path} takes GET"));
            }
            handler(self)
        };
        match path {
            "/v1/route" => post(Service::route),
            "/v1/done" => post(Service::done),
            "/v1/pools" => get(|s| {
                json(&serde_json::json!({
                    "pools": s.router.pool_loads(),
                    "rules": s.router.rule_loads(),
                }))
            }),
            "/metrics" => get(|s| http::text(StatusCode::OK, METRICS_CONTENT_TYPE, s.metrics())),
            "/healthz" => get(|_| http::text(StatusCode::OK, PLAIN, "ok\n")),
            _ => error(
                StatusCode::NOT_FOUND,
                format!(
                    "no such path {path}; try POST /v1/route, POST /v1/done, GET /v1/pools, /metrics or /healthz"
                ),
            ),
        }
    }

    fn route(&self, body: &[u8]) -> HttpResponse {
        let request: RouteRequest = match serde_json::from_slice(body) {
            Ok(request) => request,
            Err(e) => {
                self.refusals
                    .invalid_request
                    .fetch_add(1, Ordering::Relaxed);
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "the body is not a routing request: {e}; send JSON such as {{\"kind\": \"query\", \"labels\": {{}}, \"needs\": {{\"cpu\": 2}}, \"session\": \"user-42\"}}"
                    ),
                );
            }
        };
        match self.router.route(&request) {
            Ok(routed) => json(&routed),
            Err(e) => {
                let (counter, status) = match e {
                    RouteError::NoEndpoints { .. } => {
                        (&self.refusals.no_endpoints, StatusCode::SERVICE_UNAVAILABLE)
                    }
                    RouteError::NoMatch { .. } => {
                        (&self.refusals.no_match, StatusCode::UNPROCESSABLE_ENTITY)
                    }
                    _ => (
                        &self.refusals.invalid_request,
                        StatusCode::UNPROCESSABLE_ENTITY,
                    ),
                };
                counter.fetch_add(1, Ordering::Relaxed);
                error(status, e)
            }
        }
    }

    fn done(&self, body: &[u8]) -> HttpResponse {
        let done: DoneRequest = match serde_json::from_slice(body) {
            Ok(done) => done,
            Err(e) => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "the body is not a release: {e}; send the answer's pool and endpoint id, {{\"pool\": \"web\", \"endpoint\": \"i-1\"}}"
                    ),
                );
            }
        };
        match self.router.release(&done.pool, &done.endpoint) {
            Ok(()) => json(&serde_json::json!({ "released": true })),
            Err(e @ (RouteError::UnknownPool { .. } | RouteError::UnknownEndpoint { .. })) => {
                error(StatusCode::NOT_FOUND, e)
            }
            Err(e) => error(StatusCode::CONFLICT, e),
        }
    }

    /// Prometheus text exposition of the router's counts.
    fn metrics(&self) -> String {
        let mut out = String::with_capacity(4096);
        let pools = self.router.pool_loads();
        let mut family = |name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            "hoist_route_requests_total",
            "counter",
            "Requests routed, by pool and the rule that matched.",
        );
        for rule in self.router.rule_loads() {
            let _ = writeln!(
                out,
                "hoist_route_requests_total{{pool=\"{}\",rule=\"{}\"}} {}",
                escape(&rule.pool),
                escape(&rule.rule),
                rule.routed_total
            );
        }
        let mut sample = |name: &str, kind: &str, help: &str, value: &dyn Fn(&_) -> u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for pool in &pools {
                let _ = writeln!(
                    out,
                    "{name}{{pool=\"{}\"}} {}",
                    escape(&pool.pool),
                    value(pool)
                );
            }
        };
        sample(
            "hoist_route_in_flight",
            "gauge",
            "Work routed to the pool and not yet done.",
            &|p: &hoist_engine::route::PoolLoad| p.in_flight,
        );
        sample(
            "hoist_route_sticky_moves_total",
            "counter",
            "Session requests sent past their owner on the ring, which was at its load bound.",
            &|p: &hoist_engine::route::PoolLoad| p.sticky_moves,
        );
        sample(
            "hoist_route_endpoints",
            "gauge",
            "Endpoints (instances in service) of the pool.",
            &|p: &hoist_engine::route::PoolLoad| p.endpoints.len() as u64,
        );
        let _ = writeln!(
            out,
            "# HELP hoist_route_endpoint_in_flight Work routed to the endpoint and not yet done.\n# TYPE hoist_route_endpoint_in_flight gauge"
        );
        for pool in &pools {
            for endpoint in &pool.endpoints {
                let _ = writeln!(
                    out,
                    "hoist_route_endpoint_in_flight{{pool=\"{}\",provider=\"{}\",group=\"{}\",endpoint=\"{}\"}} {}",
                    escape(&pool.pool),
                    escape(&endpoint.endpoint.provider),
                    escape(&endpoint.endpoint.group),
                    escape(&endpoint.endpoint.id),
                    endpoint.in_flight
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP hoist_route_errors_total Requests refused, by reason.\n# TYPE hoist_route_errors_total counter"
        );
        for (reason, counter) in [
            ("no_match", &self.refusals.no_match),
            ("no_endpoints", &self.refusals.no_endpoints),
            ("invalid_request", &self.refusals.invalid_request),
            ("too_large", &self.refusals.too_large),
        ] {
            let _ = writeln!(
                out,
                "hoist_route_errors_total{{reason=\"{reason}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        out
    }
}

/// A label value in the text format: backslash, double quote and line feed escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use hoist_engine::route::{Endpoint, RouteRule};

    use super::*;

    async fn start() -> (RouteServer, Arc<Router>, String) {
        let rules: Vec<RouteRule> = serde_saphyr::from_str(
            "- { name: queries, match: { kind: query }, pool: web }\n- { name: tasks, match: { kind: task }, pool: batch }\n",
        )
        .unwrap();
        let router = Arc::new(Router::new(rules));
        router
            .set_endpoints(
                "web",
                vec![
                    Endpoint::new("i-1", "web-a", "sim-a"),
                    Endpoint::new("i-\"2\"", "web-b", "sim-b"),
                ],
            )
            .unwrap();
        let server = RouteServer::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&router))
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr());
        (server, router, base)
    }

    async fn post(client: &reqwest::Client, url: String, body: &str) -> (u16, serde_json::Value) {
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    #[tokio::test]
    async fn routes_releases_and_refuses_with_json_errors() {
        let (server, router, base) = start().await;
        let client = reqwest::Client::new();
        let (status, routed) = post(
            &client,
            format!("{base}/v1/route"),
            r#"{"kind":"query","session":"user-1"}"#,
        )
        .await;
        assert_eq!(status, 200, "{routed}");
        assert_eq!(routed["pool"], "web");
        assert_eq!(routed["rule"], "queries");
        assert_eq!(routed["sticky"], true);
        assert_eq!(router.pool_load("web").unwrap().in_flight, 1);

        let done = serde_json::json!({"pool": "web", "endpoint": routed["endpoint"]["id"]});
        let (status, body) = post(&client, format!("{base}/v1/done"), &done.to_string()).await;
        assert_eq!((status, &body["released"]), (200, &serde_json::json!(true)));
        let (status, body) = post(&client, format!("{base}/v1/done"), &done.to_string()).await;
        assert_eq!(status, 409, "{body}");

        for (body, want, says) in [
            (
                r#"{"kind":"feature"}"#,
                422,
                "no routing rule matches a request of kind `feature`",
            ),
            (r#"{"kind":"task"}"#, 503, "pool `batch`"),
            (r#"{"kind": 5}"#, 422, "not a routing request"),
            (
                r#"{"kind":"query","sesion":"x"}"#,
                422,
                "unknown field `sesion`",
            ),
            ("not json", 422, "not a routing request"),
            (r#"{"needs":{"cpu":-2}}"#, 422, "needs.cpu"),
        ] {
            let (status, answer) = post(&client, format!("{base}/v1/route"), body).await;
            assert_eq!(status, want, "{body}: {answer}");
            let message = answer["error"].as_str().unwrap();
            assert!(message.contains(says), "{body}: {message}");
        }
        let huge = format!(r#"{{"session":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        let (status, _) = post(&client, format!("{base}/v1/route"), &huge).await;
        assert_eq!(status, 413);
        let response = client.get(format!("{base}/v1/route")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 405);
        let (status, _) = post(
            &client,
            format!("{base}/v1/done"),
            r#"{"pool":"nope","endpoint":"i-1"}"#,
        )
        .await;
        assert_eq!(status, 404);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn serves_pools_metrics_and_health() {
        let (server, _router, base) = start().await;
        let client = reqwest::Client::new();
        for _ in 0..3 {
            post(&client, format!("{base}/v1/route"), r#"{"kind":"query"}"#).await;
        }
        post(&client, format!("{base}/v1/route"), r#"{"kind":"nothing"}"#).await;
        let pools: serde_json::Value = client
            .get(format!("{base}/v1/pools"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(pools["pools"][0]["pool"], "web");
        assert_eq!(pools["pools"][0]["in_flight"], 3);
        assert_eq!(pools["pools"][0]["endpoints"].as_array().unwrap().len(), 2);
        assert_eq!(pools["rules"][0]["routed_total"], 3);

        let response = client.get(format!("{base}/metrics")).send().await.unwrap();
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        let text = response.text().await.unwrap();
        for line in [
            "hoist_route_requests_total{pool=\"web\",rule=\"queries\"} 3",
            "hoist_route_requests_total{pool=\"batch\",rule=\"tasks\"} 0",
            "hoist_route_in_flight{pool=\"web\"} 3",
            "hoist_route_in_flight{pool=\"batch\"} 0",
            "hoist_route_sticky_moves_total{pool=\"web\"} 0",
            "hoist_route_endpoints{pool=\"web\"} 2",
            "endpoint=\"i-\\\"2\\\"\"}",
            "hoist_route_errors_total{reason=\"no_match\"} 1",
            "# TYPE hoist_route_in_flight gauge",
        ] {
            assert!(text.contains(line), "no {line} in\n{text}");
        }
        let health = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.text().await.unwrap(), "ok\n");
        let missing = client.get(format!("{base}/nope")).send().await.unwrap();
        assert_eq!(missing.status().as_u16(), 404);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn the_load_generator_measures_latency_balance_and_stickiness() {
        let (server, _router, base) = start().await;
        let report = load::run(&load::LoadTest {
            url: base,
            requests: 400,
            concurrency: 1,
            sessions: 20,
            kind: Some("query".into()),
            ..load::LoadTest::default()
        })
        .await
        .unwrap();
        assert_eq!(report.ok, 400, "{report}");
        assert_eq!(report.per_endpoint.values().sum::<u64>(), 400);
        assert!(report.balance.unwrap() >= 1.0);
        // One request at a time, each released at once: every session stays on its owner.
        assert_eq!(report.sticky_share, Some(1.0), "{report}");
        assert_eq!(report.stayed_share, Some(1.0), "{report}");
        assert!(report.latency_p99 >= report.latency_p50);
        let text = report.to_string();
        assert!(text.contains("p50"), "{text}");
        server.shutdown().await;
    }
}
