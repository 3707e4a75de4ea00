//! What goes in and out of the [`super::Router`]: endpoints, requests and their answers, the
//! loads it reports, and its errors. Requests and answers are the JSON of `POST /v1/route`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::rules::Needs;

/// Where work can be sent: one instance of a pool's member group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// The instance's id, unique within the pool.
    pub id: String,
    /// The member group it belongs to (its id on the provider).
    pub group: String,
    /// The provider of that group (a name of the policy file's `providers`).
    pub provider: String,
    /// How much work it takes relative to the others (its vCPUs, say). Default 1; a value
    /// that is not a positive finite number counts as 1.
    #[serde(default = "default_weight")]
    pub weight: f64,
}

fn default_weight() -> f64 {
    1.0
}

impl Endpoint {
    /// An endpoint of weight 1.
    pub fn new(
        id: impl Into<String>,
        group: impl Into<String>,
        provider: impl Into<String>,
    ) -> Self {
        Endpoint {
            id: id.into(),
            group: group.into(),
            provider: provider.into(),
            weight: 1.0,
        }
    }

    /// The same endpoint with `weight`.
    pub fn with_weight(mut self, weight: f64) -> Self {
        self.weight = weight;
        self
    }
}

/// A unit of work asking where to run (JSON in on `POST /v1/route`).
///
/// ```json
/// {"kind": "query", "labels": {"tenant": "acme"}, "needs": {"cpu": 2, "io": "high"}, "session": "user-42"}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRequest {
    /// What kind of work it is (`query`, `task`, `feature`, `protocol`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Labels rules may select on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// What it declares it needs.
    #[serde(default, skip_serializing_if = "Needs::is_empty")]
    pub needs: Needs,
    /// A session key: requests of one session go to one endpoint while it has room and is
    /// there (when the rule is sticky).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

impl RouteRequest {
    /// A request of `kind` with nothing else.
    pub fn of_kind(kind: impl Into<String>) -> Self {
        RouteRequest {
            kind: Some(kind.into()),
            ..RouteRequest::default()
        }
    }

    /// The same request in `session`.
    pub fn in_session(mut self, session: impl Into<String>) -> Self {
        self.session = Some(session.into());
        self
    }
}

/// Where a unit of work goes (JSON out of `POST /v1/route`). Hand it back to
/// [`Router::done`](super::Router::done) when the work is finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Routed {
    /// The pool.
    pub pool: String,
    /// The rule that matched: its name, else `routes[INDEX]`.
    pub rule: String,
    /// The rule's place in the list, from 0.
    pub rule_index: usize,
    /// The endpoint chosen.
    pub endpoint: Endpoint,
    /// Whether the request's session went to its owner on the ring (false without a session,
    /// and when the owner was at its load bound).
    pub sticky: bool,
    /// Why this endpoint, in words.
    pub reason: String,
}

/// One endpoint's work, in [`PoolLoad`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointLoad {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// Work routed to it and not yet done.
    pub in_flight: u64,
    /// Work routed to it since it joined the pool.
    pub routed_total: u64,
}

/// A pool's routed work: the metric its scaling policies can use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolLoad {
    /// The pool.
    pub pool: String,
    /// Work routed to the pool and not yet done (on endpoints still in it).
    pub in_flight: u64,
    /// Work routed to the pool since the router started.
    pub routed_total: u64,
    /// Requests of a session that did not go to the session's owner on the ring, which was at
    /// its load bound.
    pub sticky_moves: u64,
    /// Each endpoint, in the order they were set.
    pub endpoints: Vec<EndpointLoad>,
}

/// How many requests a rule has taken, for metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleLoad {
    /// The rule: its name, else `routes[INDEX]`.
    pub rule: String,
    /// Its pool.
    pub pool: String,
    /// Requests it matched and routed.
    pub routed_total: u64,
}

/// What replacing a pool's endpoints changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointsChange {
    /// Endpoints new to the pool.
    pub added: usize,
    /// Endpoints that left it (their work in flight is no longer counted).
    pub removed: usize,
    /// Endpoints kept, with their counts.
    pub kept: usize,
    /// Endpoints ignored because an earlier one in the list had the same id.
    pub duplicates: usize,
}

/// Why a request could not be routed, or work not released.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteError {
    /// No rule matches the request.
    NoMatch {
        /// The request's kind.
        kind: Option<String>,
        /// Its labels.
        labels: BTreeMap<String, String>,
        /// Its needs.
        needs: Needs,
        /// How many rules were tried.
        tried: usize,
    },
    /// The matching rule's pool has no endpoint in service.
    NoEndpoints {
        /// The pool.
        pool: String,
        /// The rule that chose it.
        rule: String,
    },
    /// The request itself is wrong (a need that is not a finite number of at least 0).
    InvalidRequest(String),
    /// No rule names this pool, so the router does not know it.
    UnknownPool {
        /// The pool asked for.
        pool: String,
        /// The pools the router knows.
        known: Vec<String>,
    },
    /// The pool has no endpoint of this id (it may have left the pool).
    UnknownEndpoint {
        /// The pool.
        pool: String,
        /// The endpoint asked for.
        endpoint: String,
    },
    /// The endpoint has no work in flight to release.
    NothingInFlight {
        /// The pool.
        pool: String,
        /// The endpoint.
        endpoint: String,
    },
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::NoMatch {
                kind,
                labels,
                needs,
                tried,
            } => {
                let kind = match kind {
                    Some(kind) => format!("kind `{kind}`"),
                    None => "no kind".to_owned(),
                };
                let labels = if labels.is_empty() {
                    "no labels".to_owned()
                } else {
                    let list: Vec<String> =
                        labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    format!("labels {{{}}}", list.join(", "))
                };
                write!(
                    f,
                    "no routing rule matches a request of {kind}, {labels}, needs: {needs} ({tried} rule{} tried, in order; add a rule for it, or a last rule without `match` to catch everything)",
                    if *tried == 1 { "" } else { "s" }
                )
            }
            RouteError::NoEndpoints { pool, rule } => write!(
                f,
                "pool `{pool}` (chosen by rule `{rule}`) has no endpoints in service; its member groups have no running instances, or they have not been described yet"
            ),
            RouteError::InvalidRequest(message) => write!(f, "invalid request: {message}"),
            RouteError::UnknownPool { pool, known } => {
                let list: Vec<String> = known.iter().map(|p| format!("`{p}`")).collect();
                write!(
                    f,
                    "no routing rule names pool `{pool}`; the router's pools are {}",
                    if list.is_empty() {
                        "none".to_owned()
                    } else {
                        list.join(", ")
                    }
                )
            }
            RouteError::UnknownEndpoint { pool, endpoint } => write!(
                f,
                "pool `{pool}` has no endpoint `{endpoint}` (it may have left the pool, and its work with it)"
            ),
            RouteError::NothingInFlight { pool, endpoint } => write!(
                f,
                "endpoint `{endpoint}` of pool `{pool}` has no work in flight to release"
            ),
        }
    }
}

impl std::error::Error for RouteError {}
