//! Routing work to pools: where should this unit of work run?
//!
//! A policy file's `routes:` are rules ([`RouteRule`]) tried in order: the first whose `match`
//! holds for a request's kind, labels and declared needs sends it to its pool. Within the pool
//! ([`Router`]), a request with a session on a sticky rule goes to the session's owner on a
//! consistent-hash ring unless that endpoint is at its load bound (consistent hashing with
//! bounded loads, Mirrokni, Thorup and Zadimoghaddam, 2017), so a session stays on its instance
//! unless the instance is overloaded or gone; any other request goes to the less loaded of two
//! endpoints drawn at random (power of two choices, Mitzenmacher 2001) or to the least loaded
//! endpoint, load being work in flight per unit of weight. Each pool's work in flight
//! ([`Router::pool_load`]) is a metric the pool's scaling policies can scale on.
//!
//! The router does no I/O and keeps no table of sessions: a session's place is a function of
//! the ring and the loads, so it survives a restart of the router as long as the endpoints do.
//! `hoist route` serves it over HTTP (`POST /v1/route`) and keeps every pool's endpoints in
//! step with its member groups' running instances.
//!
//! ```
//! use hoist_engine::route::{Endpoint, RouteRequest, RouteRule, Router};
//!
//! let rules: Vec<RouteRule> = serde_saphyr::from_str(
//!     "- { name: big, match: { fits: { cpu: 64 }, kind: query }, pool: analytics }\n- { pool: web }\n",
//! ).unwrap();
//! let router = Router::new(rules);
//! router.set_endpoints("web", vec![Endpoint::new("i-1", "web", "aws")]).unwrap();
//! router.set_endpoints("analytics", vec![Endpoint::new("i-9", "olap", "gcp").with_weight(16.0)]).unwrap();
//! let mut request = RouteRequest::of_kind("query");
//! request.needs.cpu = Some(8.0);
//! assert_eq!(router.route(&request).unwrap().pool, "analytics");
//! assert_eq!(router.route(&RouteRequest::of_kind("task")).unwrap().pool, "web");
//! ```

mod hash;
mod request;
mod ring;
mod router;
mod rules;
#[cfg(test)]
mod tests;

pub use request::{
    Endpoint, EndpointLoad, EndpointsChange, PoolLoad, RouteError, RouteRequest, Routed, RuleLoad,
};
pub use ring::VNODES_PER_ENDPOINT;
pub use router::Router;
pub use rules::{
    Balance, DEFAULT_LOAD_BOUND, NeedLevel, Needs, RouteMatch, RouteRule, validate_rules,
};
