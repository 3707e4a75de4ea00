//! The `routes:` section of a policy file: rules that send a unit of work to a pool by its kind,
//! its labels and what it declares it needs; the checks [`validate_rules`] makes; and how a rule
//! matches a request ([`RouteMatch::matches`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use hoist_api::input::number;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One routing rule: requests it matches go to `pool`. Rules are tried in the file's order and
/// the first that matches wins.
///
/// ```yaml
/// routes:
///   - name: heavy-queries
///     match: { kind: query, fits: { cpu: 16, memory_gib: 64 } }
///     pool: analytics
///   - match: { kind: query }
///     pool: web
///     balance: least_outstanding
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// A name for the rule, shown in routing answers and metrics (default: its place in the
    /// list, `routes[2]`). Unique among the rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Which requests the rule takes: all of what it states must hold (an empty `match`, or
    /// none, takes every request).
    #[serde(rename = "match", default)]
    pub match_: RouteMatch,
    /// The pool the matched requests go to (a `name` of `pools`).
    pub pool: String,
    /// Whether a request with a `session` goes where its session went before (consistent
    /// hashing with bounded loads). Default true; when false, sessions are ignored and every
    /// request is placed by `balance`.
    #[serde(default = "default_sticky")]
    pub sticky: bool,
    /// How a request without a session is placed among the pool's endpoints:
    /// `power_of_two` (default) or `least_outstanding`.
    #[serde(default)]
    pub balance: Balance,
    /// The bounded-load factor `c` of sticky sessions: no endpoint takes a session's request
    /// while its work in flight is at `ceil(c × (pool's work in flight + 1) × its weight ÷
    /// the pool's weight)`; the request goes to the next endpoint on the ring instead. At
    /// least 1 (perfect balance, more sessions move); default 1.25.
    #[serde(default = "default_load_bound")]
    pub load_bound: f64,
    /// The least bound of sticky sessions, in units of work in flight: an endpoint takes its
    /// sessions' requests while it holds fewer than this, whatever `load_bound` gives. At low
    /// load, `ceil(c × (work in flight + 1) / n)` is 1, so an endpoint with one request in
    /// flight would turn its own sessions away; the floor keeps them home when nothing is
    /// overloaded. 1 is the bound of the paper alone; default 2.
    #[serde(default = "default_min_bound")]
    pub min_bound: u32,
}

fn default_min_bound() -> u32 {
    DEFAULT_MIN_BOUND
}

/// The default least bound of sticky sessions (see [`RouteRule::min_bound`]).
pub const DEFAULT_MIN_BOUND: u32 = 2;

fn default_sticky() -> bool {
    true
}

/// The default bounded-load factor `c`: at most 25 % above the mean (as Vimeo's deployment of
/// the algorithm and HAProxy's `hash-balance-factor 125`).
pub const DEFAULT_LOAD_BOUND: f64 = 1.25;

fn default_load_bound() -> f64 {
    DEFAULT_LOAD_BOUND
}

impl RouteRule {
    /// A rule sending every request to `pool`, with the defaults.
    pub fn to_pool(pool: impl Into<String>) -> Self {
        RouteRule {
            name: None,
            match_: RouteMatch::default(),
            pool: pool.into(),
            sticky: true,
            balance: Balance::default(),
            load_bound: DEFAULT_LOAD_BOUND,
            min_bound: DEFAULT_MIN_BOUND,
        }
    }

    /// The rule's label in answers and metrics: its name, else `routes[INDEX]`.
    pub fn label(&self, index: usize) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => format!("routes[{index}]"),
        }
    }
}

/// How a rule places a request without a session among a pool's endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Two endpoints drawn at random, the one with less work in flight per unit of weight
    /// taken: nearly the balance of `least_outstanding` at constant cost, and no herd on one
    /// endpoint when loads are reported late.
    #[default]
    PowerOfTwo,
    /// The endpoint with the least work in flight per unit of weight (ties broken at random):
    /// a scan of the pool's endpoints per request.
    LeastOutstanding,
}

impl Balance {
    /// The name written in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            Balance::PowerOfTwo => "power_of_two",
            Balance::LeastOutstanding => "least_outstanding",
        }
    }
}

/// What a rule matches: every part given must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// The request's kind (`query`, `task`, `feature`, `protocol`, or any word the callers use);
    /// a request without a kind does not match a rule that names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Labels the request must carry, each with this value (the request may carry others).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The most a request may declare it needs: a request matches when each need it declares
    /// is at most the value given here (a need left out here is not limited; a need the
    /// request does not declare is not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fits: Option<Needs>,
}

impl RouteMatch {
    /// Whether a request of `kind` with `labels` and `needs` matches.
    pub fn matches(
        &self,
        kind: Option<&str>,
        labels: &BTreeMap<String, String>,
        needs: &Needs,
    ) -> bool {
        if let Some(want) = &self.kind
            && kind != Some(want.as_str())
        {
            return false;
        }
        if !self
            .labels
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
        {
            return false;
        }
        match &self.fits {
            Some(fits) => needs.fit_within(fits),
            None => true,
        }
    }

    /// Whether the match takes every request.
    pub fn is_catch_all(&self) -> bool {
        self.kind.is_none() && self.labels.is_empty() && self.fits.is_none()
    }
}

/// What a unit of work needs, as the caller declares it; every part optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Needs {
    /// CPU, in cores (fractions allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Memory, in GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_gib: Option<f64>,
    /// Disk or storage I/O: `low`, `medium` or `high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io: Option<NeedLevel>,
    /// Network: `low`, `medium` or `high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NeedLevel>,
}

impl Needs {
    /// Whether every need declared here is at most what `limit` allows (a need `limit` leaves
    /// out is not limited).
    pub fn fit_within(&self, limit: &Needs) -> bool {
        fn within<T: PartialOrd>(need: Option<T>, limit: Option<T>) -> bool {
            match (need, limit) {
                (Some(need), Some(limit)) => need <= limit,
                _ => true,
            }
        }
        within(self.cpu, limit.cpu)
            && within(self.memory_gib, limit.memory_gib)
            && within(self.io, limit.io)
            && within(self.network, limit.network)
    }

    /// Whether nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.cpu.is_none()
            && self.memory_gib.is_none()
            && self.io.is_none()
            && self.network.is_none()
    }

    /// Problems with the numbers, as (field, message): a quantity must be a finite number of at
    /// least 0.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        for (field, value, unit) in [
            ("cpu", self.cpu, "cores"),
            ("memory_gib", self.memory_gib, "GiB"),
        ] {
            if let Some(value) = value
                && !(value.is_finite() && value >= 0.0)
            {
                problems.push((
                    field,
                    format!(
                        "`{field}` must be a finite number of {unit}, at least 0; got {}",
                        number(value)
                    ),
                ));
            }
        }
        problems
    }
}

impl fmt::Display for Needs {
    /// `cpu 4, memory_gib 8, io high`, or `none declared`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none declared");
        }
        let mut parts = Vec::with_capacity(4);
        if let Some(cpu) = self.cpu {
            parts.push(format!("cpu {}", number(cpu)));
        }
        if let Some(memory) = self.memory_gib {
            parts.push(format!("memory_gib {}", number(memory)));
        }
        if let Some(io) = self.io {
            parts.push(format!("io {}", io.as_str()));
        }
        if let Some(network) = self.network {
            parts.push(format!("network {}", network.as_str()));
        }
        f.write_str(&parts.join(", "))
    }
}

/// A coarse amount of a resource, ordered `low` < `medium` < `high`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NeedLevel {
    /// Little.
    Low,
    /// Some.
    Medium,
    /// Much.
    High,
}

impl NeedLevel {
    /// The name written in policy files and requests.
    pub fn as_str(self) -> &'static str {
        match self {
            NeedLevel::Low => "low",
            NeedLevel::Medium => "medium",
            NeedLevel::High => "high",
        }
    }
}

/// Every problem with `rules`, as (field path, message), the paths relative to the policy file
/// (`routes[2].pool`), for the loader to turn into lines. `pools` are the names of the file's
/// pools. Checked: a rule naming no known pool, a bounded-load factor below 1 or not finite, a
/// negative or non-finite need in `fits`, two rules of one name, and a rule after one that
/// takes every request (it is never reached).
pub fn validate_rules(rules: &[RouteRule], pools: &[&str]) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let known: BTreeSet<&str> = pools.iter().copied().collect();
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut catch_all: Option<usize> = None;
    for (index, rule) in rules.iter().enumerate() {
        let at = |field: &str| format!("routes[{index}].{field}");
        if !known.contains(rule.pool.as_str()) {
            let message = if known.is_empty() {
                format!(
                    "no pool named `{}`: the file defines no pools; add it under `pools:`",
                    rule.pool
                )
            } else {
                let list: Vec<String> = known.iter().map(|p| format!("`{p}`")).collect();
                format!(
                    "no pool named `{}`; the pools are {}",
                    rule.pool,
                    list.join(", ")
                )
            };
            problems.push((at("pool"), message));
        }
        if rule.min_bound == 0 {
            problems.push((
                at("min_bound"),
                "must be at least 1 (1 is the paper's bound alone)".to_owned(),
            ));
        }
        if !(rule.load_bound.is_finite() && rule.load_bound >= 1.0) {
            problems.push((
                at("load_bound"),
                format!(
                    "the bounded-load factor must be a finite number of at least 1 (1 is perfect balance, {DEFAULT_LOAD_BOUND} the default); got {}",
                    number(rule.load_bound)
                ),
            ));
        }
        if let Some(fits) = &rule.match_.fits {
            for (field, message) in fits.problems() {
                problems.push((at(&format!("match.fits.{field}")), message));
            }
        }
        if let Some(name) = rule.name.as_deref() {
            if name.trim().is_empty() {
                problems.push((
                    at("name"),
                    "a rule's name must not be empty; remove `name` to use `routes[INDEX]`"
                        .to_owned(),
                ));
            } else if let Some(first) = names.get(name) {
                problems.push((
                    at("name"),
                    format!(
                        "rule name `{name}` is also the name of routes[{first}]; names are unique"
                    ),
                ));
            } else {
                names.insert(name, index);
            }
        }
        if let Some(first) = catch_all {
            problems.push((
                at("match"),
                format!(
                    "this rule is never used: routes[{first}] before it matches every request (it has no `kind`, `labels` or `fits`); move the catch-all rule last"
                ),
            ));
        } else if rule.match_.is_catch_all() {
            catch_all = Some(index);
        }
    }
    problems
}
