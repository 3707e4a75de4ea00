//! The router: the first matching rule picks the pool, then a load-aware choice picks the
//! endpoint in it. Shared by threads (`Send + Sync`): each pool's endpoints and ring sit behind
//! a read-write lock taken for reading on every decision and for writing only when the
//! endpoints are replaced; all counts are atomics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use hoist_api::input::number;

use super::hash::{FnvMap, SplitMix, below, hash64};
use super::request::{
    Endpoint, EndpointLoad, EndpointsChange, PoolLoad, RouteError, RouteRequest, Routed, RuleLoad,
};
use super::ring::Ring;
use super::rules::{Balance, DEFAULT_LOAD_BOUND, RouteRule};

/// Per-endpoint counts, shared between the pool's successive sets of endpoints so that an
/// endpoint kept across a replacement keeps them.
#[derive(Debug, Default)]
struct Counters {
    in_flight: AtomicU64,
    routed: AtomicU64,
}

#[derive(Debug)]
struct Slot {
    endpoint: Endpoint,
    /// The endpoint's share of the pool's weight, in (0, 1].
    share: f64,
    counters: Arc<Counters>,
}

impl Slot {
    fn in_flight(&self) -> u64 {
        self.counters.in_flight.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
struct PoolState {
    slots: Vec<Slot>,
    by_id: FnvMap<String, usize>,
    ring: Ring,
}

#[derive(Debug)]
struct Pool {
    name: String,
    state: RwLock<PoolState>,
    in_flight: AtomicU64,
    routed: AtomicU64,
    sticky_moves: AtomicU64,
}

#[derive(Debug)]
struct Rule {
    rule: RouteRule,
    label: String,
    pool: usize,
    load_bound: f64,
    routed: AtomicU64,
}

/// The router: rules in order, and per pool its endpoints, its ring and its work in flight.
///
/// ```
/// use hoist_engine::route::{Endpoint, RouteRequest, RouteRule, Router};
///
/// let router = Router::new(vec![RouteRule::to_pool("web")]);
/// router
///     .set_endpoints("web", vec![Endpoint::new("i-1", "web-aws", "aws"), Endpoint::new("i-2", "web-gcp", "gcp")])
///     .unwrap();
/// let routed = router.route(&RouteRequest::of_kind("query").in_session("user-42")).unwrap();
/// assert_eq!(routed.pool, "web");
/// // The same session goes to the same instance while it has room.
/// let again = router.route(&RouteRequest::of_kind("query").in_session("user-42")).unwrap();
/// assert_eq!(again.endpoint.id, routed.endpoint.id);
/// router.done(&routed).unwrap();
/// router.done(&again).unwrap();
/// assert_eq!(router.pool_load("web").unwrap().in_flight, 0);
/// ```
#[derive(Debug)]
pub struct Router {
    rules: Vec<Rule>,
    pools: Vec<Pool>,
    pool_index: FnvMap<String, usize>,
    rng: SplitMix,
}

/// The seed of [`Router::new`]'s generator.
const DEFAULT_SEED: u64 = 0x686f_6973_7452_6f75;

impl Router {
    /// A router over `rules`, with a pool for every pool they name, each without endpoints
    /// until [`Router::set_endpoints`]. The rules are taken as they are: check them first with
    /// [`super::validate_rules`] (a `load_bound` that is not a finite number of at least 1
    /// counts as the default, 1.25).
    pub fn new(rules: Vec<RouteRule>) -> Self {
        Self::with_seed(rules, DEFAULT_SEED)
    }

    /// As [`Router::new`], with the seed of the generator behind the power of two choices.
    pub fn with_seed(rules: Vec<RouteRule>, seed: u64) -> Self {
        let mut pools = Vec::new();
        let mut pool_index = FnvMap::default();
        let rules = rules
            .into_iter()
            .enumerate()
            .map(|(index, rule)| {
                let pool = *pool_index.entry(rule.pool.clone()).or_insert_with(|| {
                    pools.push(Pool {
                        name: rule.pool.clone(),
                        state: RwLock::new(PoolState::default()),
                        in_flight: AtomicU64::new(0),
                        routed: AtomicU64::new(0),
                        sticky_moves: AtomicU64::new(0),
                    });
                    pools.len() - 1
                });
                let load_bound = if rule.load_bound.is_finite() && rule.load_bound >= 1.0 {
                    rule.load_bound
                } else {
                    DEFAULT_LOAD_BOUND
                };
                Rule {
                    label: rule.label(index),
                    rule,
                    pool,
                    load_bound,
                    routed: AtomicU64::new(0),
                }
            })
            .collect();
        Router {
            rules,
            pools,
            pool_index,
            rng: SplitMix::new(seed),
        }
    }

    /// The rules, in order.
    pub fn rules(&self) -> impl Iterator<Item = &RouteRule> {
        self.rules.iter().map(|r| &r.rule)
    }

    /// The pools the rules name, in the order they are first named.
    pub fn pools(&self) -> Vec<&str> {
        self.pools.iter().map(|p| p.name.as_str()).collect()
    }

    fn pool(&self, name: &str) -> Result<&Pool, RouteError> {
        match self.pool_index.get(name) {
            Some(&index) => Ok(&self.pools[index]),
            None => Err(RouteError::UnknownPool {
                pool: name.to_owned(),
                known: self.pools.iter().map(|p| p.name.clone()).collect(),
            }),
        }
    }

    /// Replaces `pool`'s endpoints. An endpoint whose id was already in the pool keeps its
    /// work in flight and its total (and, its id being what places it on the ring, its
    /// sessions); the work in flight of an endpoint that left no longer counts. Later
    /// duplicates of an id are ignored; a weight that is not a positive finite number counts
    /// as 1. Fails when no rule names `pool`.
    pub fn set_endpoints(
        &self,
        pool: &str,
        endpoints: Vec<Endpoint>,
    ) -> Result<EndpointsChange, RouteError> {
        let pool = self.pool(pool)?;
        let mut change = EndpointsChange::default();
        let mut by_id: FnvMap<String, usize> =
            FnvMap::with_capacity_and_hasher(endpoints.len(), Default::default());
        let mut kept_endpoints = Vec::with_capacity(endpoints.len());
        for mut endpoint in endpoints {
            if by_id.contains_key(&endpoint.id) {
                change.duplicates += 1;
                continue;
            }
            if !(endpoint.weight.is_finite() && endpoint.weight > 0.0) {
                endpoint.weight = 1.0;
            }
            by_id.insert(endpoint.id.clone(), kept_endpoints.len());
            kept_endpoints.push(endpoint);
        }
        let total_weight: f64 = kept_endpoints.iter().map(|e| e.weight).sum();
        let keys: Vec<(&str, f64)> = kept_endpoints
            .iter()
            .map(|e| (e.id.as_str(), e.weight))
            .collect();
        let ring = Ring::build(&keys);

        let mut state = pool.state.write().unwrap_or_else(PoisonError::into_inner);
        let slots: Vec<Slot> = kept_endpoints
            .into_iter()
            .map(|endpoint| {
                let counters = match state.by_id.get(&endpoint.id) {
                    Some(&old) => {
                        change.kept += 1;
                        Arc::clone(&state.slots[old].counters)
                    }
                    None => {
                        change.added += 1;
                        Arc::default()
                    }
                };
                Slot {
                    share: endpoint.weight / total_weight,
                    endpoint,
                    counters,
                }
            })
            .collect();
        let mut gone_in_flight = 0;
        for old in &state.slots {
            if !by_id.contains_key(&old.endpoint.id) {
                change.removed += 1;
                gone_in_flight += old.in_flight();
            }
        }
        saturating_sub(&pool.in_flight, gone_in_flight);
        *state = PoolState { slots, by_id, ring };
        Ok(change)
    }

    /// Where `request` should run: the first rule that matches picks the pool; in it, a request
    /// with a session on a sticky rule goes to the session's owner on the ring unless the owner
    /// is at its load bound, in which case to the next endpoint clockwise with room; any other
    /// goes by the rule's `balance`. The endpoint's work in flight grows by one until
    /// [`Router::done`].
    pub fn route(&self, request: &RouteRequest) -> Result<Routed, RouteError> {
        if let Some((field, message)) = request.needs.problems().into_iter().next() {
            return Err(RouteError::InvalidRequest(format!(
                "needs.{field}: {message}"
            )));
        }
        let Some((rule_index, rule)) = self.rules.iter().enumerate().find(|(_, r)| {
            r.rule
                .match_
                .matches(request.kind.as_deref(), &request.labels, &request.needs)
        }) else {
            return Err(RouteError::NoMatch {
                kind: request.kind.clone(),
                labels: request.labels.clone(),
                needs: request.needs.clone(),
                tried: self.rules.len(),
            });
        };
        let pool = &self.pools[rule.pool];
        let state = pool.state.read().unwrap_or_else(PoisonError::into_inner);
        if state.slots.is_empty() {
            return Err(RouteError::NoEndpoints {
                pool: pool.name.clone(),
                rule: rule.label.clone(),
            });
        }
        let (chosen, sticky, reason) = match request.session.as_deref() {
            Some(session) if rule.rule.sticky => self.by_session(
                pool,
                &state,
                session,
                (rule.load_bound, rule.rule.min_bound),
            ),
            _ => match rule.rule.balance {
                Balance::PowerOfTwo => self.power_of_two(&state),
                Balance::LeastOutstanding => self.least_outstanding(&state),
            },
        };
        let slot = &state.slots[chosen];
        slot.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        slot.counters.routed.fetch_add(1, Ordering::Relaxed);
        pool.in_flight.fetch_add(1, Ordering::Relaxed);
        pool.routed.fetch_add(1, Ordering::Relaxed);
        rule.routed.fetch_add(1, Ordering::Relaxed);
        Ok(Routed {
            pool: pool.name.clone(),
            rule: rule.label.clone(),
            rule_index,
            endpoint: slot.endpoint.clone(),
            sticky,
            reason,
        })
    }

    /// Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam, 2017).
    fn by_session(
        &self,
        pool: &Pool,
        state: &PoolState,
        session: &str,
        (load_bound, min_bound): (f64, u32),
    ) -> (usize, bool, String) {
        let slots = &state.slots;
        let ring = &state.ring;
        let start = ring.position(hash64(&[session.as_bytes()]));
        let owner = ring.owner_at(start);
        // The bound for the request being placed: c × (work in flight + 1), the endpoint's
        // share of it, rounded up.
        let total = pool.in_flight.load(Ordering::Relaxed) as f64 + 1.0;
        // A bound is a whole number of units (at most 2^53 in flight are counted exactly).
        let bound = |slot: &Slot| {
            ((load_bound * total * slot.share).ceil() as u64).max(u64::from(min_bound))
        };
        let owner_load = slots[owner].in_flight();
        let owner_bound = bound(&slots[owner]);
        if owner_load < owner_bound {
            return (
                owner,
                true,
                format!(
                    "the session's owner on the ring ({owner_load} in flight, bound {owner_bound})"
                ),
            );
        }
        pool.sticky_moves.fetch_add(1, Ordering::Relaxed);
        let mut seen = vec![false; slots.len()];
        seen[owner] = true;
        let mut left = slots.len() - 1;
        let mut position = start;
        while left > 0 {
            position += 1;
            let candidate = ring.owner_at(position);
            if seen[candidate] {
                continue;
            }
            seen[candidate] = true;
            left -= 1;
            let load = slots[candidate].in_flight();
            let candidate_bound = bound(&slots[candidate]);
            if load < candidate_bound {
                return (
                    candidate,
                    false,
                    format!(
                        "the session's owner {} is at its load bound ({owner_load} in flight, bound {owner_bound}); the next endpoint on the ring with room has {load} in flight (bound {candidate_bound})",
                        slots[owner].endpoint.id
                    ),
                );
            }
        }
        // Only when counts changed under the walk: every endpoint at its bound.
        let (chosen, _, _) = self.least_outstanding(state);
        (
            chosen,
            false,
            format!(
                "every endpoint was at its load bound while the session's owner {} was; the least loaded taken",
                slots[owner].endpoint.id
            ),
        )
    }

    /// Two distinct endpoints at random; the one with less work in flight per unit of weight.
    fn power_of_two(&self, state: &PoolState) -> (usize, bool, String) {
        let slots = &state.slots;
        let n = slots.len();
        if n == 1 {
            return (0, false, "the pool's only endpoint".to_owned());
        }
        let bits = self.rng.next_u64();
        let a = below(bits as u32, n);
        let b = (a + 1 + below((bits >> 32) as u32, n - 1)) % n;
        let (load_a, load_b) = (slots[a].in_flight(), slots[b].in_flight());
        // load_a / weight_a <= load_b / weight_b, without dividing.
        let a_wins =
            load_a as f64 * slots[b].endpoint.weight <= load_b as f64 * slots[a].endpoint.weight;
        let (won, lost, won_load, lost_load) = if a_wins {
            (a, b, load_a, load_b)
        } else {
            (b, a, load_b, load_a)
        };
        (
            won,
            false,
            if slots[won].endpoint.weight == slots[lost].endpoint.weight {
                format!(
                    "power of two choices: {won_load} in flight against {lost_load} on {}",
                    slots[lost].endpoint.id
                )
            } else {
                format!(
                    "power of two choices: {won_load} in flight at weight {} against {lost_load} at weight {} on {}",
                    number(slots[won].endpoint.weight),
                    number(slots[lost].endpoint.weight),
                    slots[lost].endpoint.id
                )
            },
        )
    }

    /// The endpoint with the least work in flight per unit of weight; the scan starts at a
    /// random endpoint, so ties go to any of them.
    fn least_outstanding(&self, state: &PoolState) -> (usize, bool, String) {
        let slots = &state.slots;
        let n = slots.len();
        let start = below(self.rng.next_u64() as u32, n);
        let mut best = start;
        let mut best_load = slots[start].in_flight() as f64 / slots[start].endpoint.weight;
        for offset in 1..n {
            let index = (start + offset) % n;
            let load = slots[index].in_flight() as f64 / slots[index].endpoint.weight;
            if load < best_load {
                best = index;
                best_load = load;
            }
        }
        (
            best,
            false,
            format!(
                "least outstanding work of {n} endpoint{}: {} in flight at weight {}",
                if n == 1 { "" } else { "s" },
                slots[best].in_flight(),
                number(slots[best].endpoint.weight)
            ),
        )
    }

    /// Releases the unit of work `routed` placed.
    pub fn done(&self, routed: &Routed) -> Result<(), RouteError> {
        self.release(&routed.pool, &routed.endpoint.id)
    }

    /// Releases one unit of work in flight on endpoint `endpoint` of `pool`. Fails when the
    /// pool or the endpoint is unknown (an endpoint that left the pool took its work with it)
    /// or the endpoint has nothing in flight.
    pub fn release(&self, pool: &str, endpoint: &str) -> Result<(), RouteError> {
        let pool_ref = self.pool(pool)?;
        let state = pool_ref
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(&index) = state.by_id.get(endpoint) else {
            return Err(RouteError::UnknownEndpoint {
                pool: pool.to_owned(),
                endpoint: endpoint.to_owned(),
            });
        };
        let released = state.slots[index].counters.in_flight.fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            |n| n.checked_sub(1),
        );
        if released.is_err() {
            return Err(RouteError::NothingInFlight {
                pool: pool.to_owned(),
                endpoint: endpoint.to_owned(),
            });
        }
        saturating_sub(&pool_ref.in_flight, 1);
        Ok(())
    }

    /// `pool`'s routed work and each endpoint's; `None` when no rule names it.
    pub fn pool_load(&self, pool: &str) -> Option<PoolLoad> {
        let pool = self.pool(pool).ok()?;
        let state = pool.state.read().unwrap_or_else(PoisonError::into_inner);
        Some(PoolLoad {
            pool: pool.name.clone(),
            in_flight: pool.in_flight.load(Ordering::Relaxed),
            routed_total: pool.routed.load(Ordering::Relaxed),
            sticky_moves: pool.sticky_moves.load(Ordering::Relaxed),
            endpoints: state
                .slots
                .iter()
                .map(|slot| EndpointLoad {
                    endpoint: slot.endpoint.clone(),
                    in_flight: slot.in_flight(),
                    routed_total: slot.counters.routed.load(Ordering::Relaxed),
                })
                .collect(),
        })
    }

    /// Every pool's load, in the order of [`Router::pools`].
    pub fn pool_loads(&self) -> Vec<PoolLoad> {
        self.pools
            .iter()
            .filter_map(|p| self.pool_load(&p.name))
            .collect()
    }

    /// How many requests each rule has routed, in order.
    pub fn rule_loads(&self) -> Vec<RuleLoad> {
        self.rules
            .iter()
            .map(|r| RuleLoad {
                rule: r.label.clone(),
                pool: r.rule.pool.clone(),
                routed_total: r.routed.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// Subtracts `n` from `counter`, stopping at 0.
fn saturating_sub(counter: &AtomicU64, n: u64) {
    if n == 0 {
        return;
    }
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}
