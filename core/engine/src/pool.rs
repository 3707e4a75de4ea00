//! Pools at run time: one service's capacity over member groups on several providers.
//!
//! A [`Pool`] is itself a provider (scaling, metrics and catalog) whose one group is the pool:
//! the control loop observes it, the pool's policies decide its total exactly as a group's do,
//! and [`Pool::place`] splits that total over the members ([`split`]): each member's `min` and
//! `min_share` first, then the rest cheapest first (by priority, then the catalog's price with
//! spot interruptions costed), within each member's bounds.
//!
//! Members have a health, kept from what their providers answer:
//!
//! | state | when | capacity |
//! |---|---|---|
//! | healthy | answering | up to its max |
//! | limited | it reported no capacity (a stockout, a quota) or its instances were not ready within `ready_timeout` | no more than it has ready, until `backoff` has passed |
//! | down | `failures` consecutive calls failed, or its circuit breaker is open | none: its need moves to the others at once |
//! | returning | it answered again for `recovery` (down), or its backoff passed (limited) | what it has plus `return_step` per evaluation, until the split wants no more |
//!
//! Every change of a member's state and every move of capacity between members is an
//! [`Event::PoolSplit`] and a `pool_split` record in the audit log, with its reason.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::join_all;
use hoist_api::model::{CapacityType, InstanceClass, MetricKind, Sample, ScalingGroup, TimeSeries};
use hoist_api::provider::{
    CatalogCapabilities, InstanceCatalog, MetricsCapabilities, MetricsSource, ProviderSet,
    RangeQuery, ScalingCapabilities, ScalingProvider,
};
use hoist_api::{Clock, Error, ErrorKind, Result};
use serde::Serialize;

use crate::audit::{AuditLog, AuditRecord};
use crate::config::pool::{POOL_PROVIDER, PoolConfig, SplitStrategy};
use crate::events::{Event, EventSink, NoEvents};

/// A member's health, as the splitter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Answering; takes capacity up to its max.
    Healthy,
    /// No new capacity (a stockout, a quota, instances not ready in time) until its backoff ends.
    Limited,
    /// Its provider keeps failing; it takes no capacity.
    Down,
    /// Recovered; capacity moves back to it at a bounded rate.
    Returning,
}

impl MemberState {
    /// The word used in records and output.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Healthy => "healthy",
            MemberState::Limited => "limited",
            MemberState::Down => "down",
            MemberState::Returning => "returning",
        }
    }
}

/// What the splitter knows of one member.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitMember {
    /// `provider/group`.
    pub key: String,
    /// Its state.
    pub state: MemberState,
    /// Its bounds.
    pub min: u32,
    /// Its bounds.
    pub max: u32,
    /// The most it may take now (its max, or less while limited or returning).
    pub cap: u32,
    /// Its least share of the pool.
    pub min_share: f64,
    /// Its weight (weighted split).
    pub weight: f64,
    /// Lower first.
    pub priority: u32,
    /// Its effective price per instance-hour (interruptions costed), when known.
    pub price: Option<f64>,
}

/// Splits `total` over `members` (same order in the result). A down member gets nothing; the
/// others get their `min` and `min_share` first, then the rest by `strategy`, never above their
/// `cap`. Returns the targets and what could not be placed.
pub fn split(total: u32, members: &[SplitMember], strategy: SplitStrategy) -> (Vec<u32>, u32) {
    let mut out = vec![0u32; members.len()];
    let live: Vec<usize> = (0..members.len())
        .filter(|&i| members[i].state != MemberState::Down)
        .collect();
    let mut left = total;
    // Floors: min and min_share, within the cap.
    for &i in &live {
        let m = &members[i];
        let share = (m.min_share * f64::from(total)).ceil() as u32;
        let floor = m.min.max(share).min(m.cap).min(left);
        out[i] = floor;
        left -= floor;
    }
    if left == 0 {
        return (out, 0);
    }
    match strategy {
        SplitStrategy::Cheapest => {
            let mut order = live.clone();
            order.sort_by(|&a, &b| {
                let (x, y) = (&members[a], &members[b]);
                x.priority
                    .cmp(&y.priority)
                    .then(
                        x.price
                            .unwrap_or(f64::MAX)
                            .total_cmp(&y.price.unwrap_or(f64::MAX)),
                    )
                    .then(x.key.cmp(&y.key))
            });
            for i in order {
                let room = members[i].cap.saturating_sub(out[i]);
                let take = room.min(left);
                out[i] += take;
                left -= take;
                if left == 0 {
                    break;
                }
            }
        }
        SplitStrategy::Weighted => {
            // Water-filling: each round hands out the rest in proportion to the weights of the
            // members with room (largest remainder), until nothing is left or no room is.
            loop {
                let open: Vec<usize> = live
                    .iter()
                    .copied()
                    .filter(|&i| out[i] < members[i].cap)
                    .collect();
                if open.is_empty() || left == 0 {
                    break;
                }
                let weights: f64 = open.iter().map(|&i| members[i].weight).sum();
                let mut given = 0u32;
                let mut remainders: Vec<(f64, usize)> = Vec::new();
                for &i in &open {
                    let exact = f64::from(left) * members[i].weight / weights;
                    let whole = (exact.floor() as u32).min(members[i].cap - out[i]);
                    out[i] += whole;
                    given += whole;
                    remainders.push((exact - exact.floor(), i));
                }
                let mut rest = left - given;
                remainders.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                for (_, i) in remainders {
                    if rest == 0 {
                        break;
                    }
                    if out[i] < members[i].cap {
                        out[i] += 1;
                        rest -= 1;
                        given += 1;
                    }
                }
                left -= given;
                if given == 0 {
                    break;
                }
            }
        }
    }
    (out, left)
}

/// One member's line of a [`PoolSplitRecord`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberLine {
    /// `provider/group`.
    pub member: String,
    /// Its state.
    pub state: MemberState,
    /// Its desired capacity before.
    pub from: u32,
    /// Its desired capacity now.
    pub to: u32,
    /// Why it is in that state, when it is not healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A change of a pool's split: states that changed and capacity that moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolSplitRecord {
    /// When.
    pub at: DateTime<Utc>,
    /// The pool.
    pub pool: String,
    /// The pool's total desired capacity.
    pub total: u32,
    /// What could not be placed (every member at its cap).
    pub unplaced: u32,
    /// Every member, with what changed.
    pub members: Vec<MemberLine>,
    /// Why, in words.
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
struct Health {
    failures: u32,
    down_reason: Option<String>,
    answering_since: Option<DateTime<Utc>>,
    limited_until: Option<DateTime<Utc>>,
    limited_reason: Option<String>,
    returning: bool,
    /// While returning: what it may hold before this evaluation's step.
    allowance: u32,
    /// While limited: what it may hold (what it had when it refused, or what was ready).
    limit_cap: u32,
    short_since: Option<DateTime<Utc>>,
    last: Option<ScalingGroup>,
    price: Option<f64>,
}

impl Health {
    fn state(&self) -> MemberState {
        if self.down_reason.is_some() {
            MemberState::Down
        } else if self.limited_reason.is_some() {
            MemberState::Limited
        } else if self.returning {
            MemberState::Returning
        } else {
            MemberState::Healthy
        }
    }

    fn note(&self) -> Option<String> {
        self.down_reason
            .clone()
            .or_else(|| self.limited_reason.clone())
    }

    fn desired(&self) -> u32 {
        self.last.as_ref().map_or(0, |g| g.desired_capacity)
    }

    fn ready(&self) -> u32 {
        self.last.as_ref().map_or(0, ScalingGroup::ready)
    }
}

#[derive(Debug)]
struct Member {
    key: String,
    config: crate::config::pool::PoolMemberConfig,
    set: ProviderSet,
}

#[derive(Debug, Default)]
struct Hooks {
    events: Option<Arc<dyn EventSink>>,
    audit: Option<Arc<AuditLog>>,
}

#[derive(Debug)]
struct Inner {
    config: PoolConfig,
    members: Vec<Member>,
    clock: Arc<dyn Clock>,
    health: Mutex<Vec<Health>>,
    hooks: Mutex<Hooks>,
    /// State changes seen since the last record, in words.
    pending: Mutex<Vec<String>>,
    /// The total last asked of [`Pool::place`].
    total: Mutex<Option<u32>>,
}

/// A pool: a provider whose one group is the pool (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// The pool `config` over the built `providers` (by name, already layered). Fails when a
    /// member's provider is not there or offers no scaling groups.
    pub fn new(
        config: PoolConfig,
        providers: &BTreeMap<String, ProviderSet>,
        clock: Arc<dyn Clock>,
    ) -> Result<Pool> {
        let mut members = Vec::with_capacity(config.members.len());
        for m in &config.members {
            let set = providers.get(&m.provider).ok_or_else(|| {
                Error::config(format!(
                    "pool `{}`: member `{}` names provider `{}`, which is not built",
                    config.name,
                    m.key(),
                    m.provider
                ))
            })?;
            if set.scaling.is_none() {
                return Err(Error::config(format!(
                    "pool `{}`: provider `{}` offers no scaling groups",
                    config.name, m.provider
                )));
            }
            members.push(Member {
                key: m.key(),
                config: m.clone(),
                set: set.clone(),
            });
        }
        let health = vec![Health::default(); members.len()];
        Ok(Pool {
            inner: Arc::new(Inner {
                config,
                members,
                clock,
                health: Mutex::new(health),
                hooks: Mutex::new(Hooks::default()),
                pending: Mutex::new(Vec::new()),
                total: Mutex::new(None),
            }),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// The pool as a provider set named [`POOL_PROVIDER`]: scaling (the pool as one group),
    /// metrics (the members' combined) and catalog (the members' classes).
    pub fn provider_set(&self) -> ProviderSet {
        ProviderSet::new(POOL_PROVIDER)
            .with_scaling(Arc::new(self.clone()))
            .with_metrics(Arc::new(self.clone()))
            .with_catalog(Arc::new(self.clone()))
    }

    /// Where the pool reports its events.
    pub fn set_events(&self, events: Arc<dyn EventSink>) {
        self.hooks().events = Some(events);
    }

    /// Where the pool records its moves.
    pub fn set_audit(&self, audit: Arc<AuditLog>) {
        self.hooks().audit = Some(audit);
    }

    fn hooks(&self) -> std::sync::MutexGuard<'_, Hooks> {
        self.inner
            .hooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Vec<Health>> {
        self.inner
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn note(&self, text: String) {
        tracing::info!(pool = %self.name(), "{text}");
        self.inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(text);
    }

    /// Each member's key, state and desired capacity as last seen.
    pub fn members(&self) -> Vec<(String, MemberState, u32)> {
        let health = self.health();
        self.inner
            .members
            .iter()
            .zip(health.iter())
            .map(|(m, h)| (m.key.clone(), h.state(), h.desired()))
            .collect()
    }

    /// A failed call to member `i`: counts toward `down`.
    fn failed(&self, i: usize, error: &Error, now: DateTime<Utc>) {
        let failover = &self.inner.config.failover;
        let key = self.inner.members[i].key.clone();
        let mut health = self.health();
        let h = &mut health[i];
        h.answering_since = None;
        if matches!(
            error.kind(),
            ErrorKind::CapacityUnavailable | ErrorKind::QuotaExceeded
        ) {
            let until = now + failover.backoff.as_delta();
            let fresh = h.limited_reason.is_none();
            if fresh {
                h.limit_cap = h.desired();
            }
            h.limited_until = Some(until);
            h.limited_reason = Some(format!("no capacity: {}", error.message()));
            h.returning = false;
            drop(health);
            if fresh {
                self.note(format!(
                    "{key} is limited (no new capacity until {until}): {}",
                    error.message()
                ));
            }
            return;
        }
        h.failures += 1;
        let circuit_open = error.message().contains("circuit open")
            || error.message().contains("circuit half-open");
        if h.down_reason.is_none() && (h.failures >= failover.failures || circuit_open) {
            let reason = format!(
                "{} consecutive failed calls, the last: {}",
                h.failures,
                error.message()
            );
            h.down_reason = Some(reason.clone());
            h.returning = false;
            drop(health);
            self.note(format!(
                "{key} is down ({reason}); its capacity moves to the others"
            ));
        }
    }

    /// A successful description of member `i`.
    fn answered(&self, i: usize, group: ScalingGroup, now: DateTime<Utc>) {
        let failover = &self.inner.config.failover;
        let key = self.inner.members[i].key.clone();
        let mut notes = Vec::new();
        {
            let mut health = self.health();
            let h = &mut health[i];
            h.failures = 0;
            if h.down_reason.is_some() {
                let since = *h.answering_since.get_or_insert(now);
                if now - since >= failover.recovery.as_delta() {
                    h.down_reason = None;
                    h.answering_since = None;
                    h.returning = true;
                    // Its instances did not serve while it was down: it starts again from
                    // nothing and grows by the step.
                    h.allowance = 0;
                    h.short_since = None;
                    notes.push(format!(
                        "{key} recovered (answering for {}); capacity returns at {} per evaluation",
                        failover.recovery, failover.return_step
                    ));
                }
            }
            if let Some(until) = h.limited_until
                && now >= until
            {
                h.limited_until = None;
                h.limited_reason = None;
                h.returning = true;
                h.allowance = h.limit_cap;
                h.short_since = None;
                notes.push(format!(
                    "{key}'s backoff ended; capacity returns at {} per evaluation",
                    failover.return_step
                ));
            }
            // Asked-for instances that do not become ready: one booting for longer than the
            // timeout, or capacity asked for and not launched for that long.
            let timeout = failover.ready_timeout.as_delta();
            let active = group
                .instances
                .iter()
                .filter(|i| i.state.is_active())
                .count() as u32;
            let stuck = group.instances.iter().any(|i| {
                i.state == hoist_api::model::InstanceState::Pending
                    && now - i.launched_at >= timeout
            });
            let unlaunched = group.desired_capacity > active;
            if unlaunched {
                h.short_since.get_or_insert(now);
            } else {
                h.short_since = None;
            }
            let waited = h.short_since.is_some_and(|since| now - since >= timeout);
            if (stuck || waited) && h.down_reason.is_none() && h.limited_reason.is_none() {
                let until = now + failover.backoff.as_delta();
                h.limited_until = Some(until);
                h.limit_cap = group.ready();
                h.limited_reason = Some(format!(
                    "{} of {} instances not ready after {}",
                    group.desired_capacity.saturating_sub(group.ready()),
                    group.desired_capacity,
                    failover.ready_timeout
                ));
                h.returning = false;
                h.short_since = None;
                notes.push(format!(
                    "{key} is limited until {until}: instances not ready after {}",
                    failover.ready_timeout
                ));
            }
            h.last = Some(group);
        }
        for n in notes {
            self.note(n);
        }
    }

    /// The members as the splitter sees them now.
    async fn split_members(&self) -> Vec<SplitMember> {
        let failover = &self.inner.config.failover;
        // Prices, once per member (the catalog's, for the class the member runs).
        let need: Vec<(usize, String, CapacityType)> = {
            let health = self.health();
            health
                .iter()
                .enumerate()
                .filter(|(_, h)| h.price.is_none())
                .filter_map(|(i, h)| {
                    let g = h.last.as_ref()?;
                    let capacity = g
                        .instances
                        .first()
                        .map_or(CapacityType::OnDemand, |i| i.capacity_type);
                    Some((i, g.instance_class.clone(), capacity))
                })
                .collect()
        };
        for (i, class, capacity) in need {
            let Some(catalog) = self.inner.members[i].set.catalog.clone() else {
                continue;
            };
            if let Ok(c) = catalog.instance_class(&class).await
                && let Some(o) = c
                    .cheapest(capacity)
                    .or_else(|| c.cheapest(CapacityType::OnDemand))
            {
                let rate = self.inner.members[i].config.interruptions_per_hour;
                let price = o.price.per_hour() * (1.0 + rate * failover.interruption_cost);
                self.health()[i].price = Some(price);
            }
        }
        let health = self.health();
        self.inner
            .members
            .iter()
            .zip(health.iter())
            .map(|(m, h)| {
                let state = h.state();
                let cap = match state {
                    MemberState::Healthy => m.config.max,
                    MemberState::Down => 0,
                    MemberState::Limited => h.limit_cap.min(m.config.max),
                    MemberState::Returning => h
                        .allowance
                        .saturating_add(failover.return_step)
                        .min(m.config.max),
                };
                SplitMember {
                    key: m.key.clone(),
                    state,
                    min: m.config.min.min(cap),
                    max: m.config.max,
                    cap,
                    min_share: m.config.min_share.unwrap_or(0.0),
                    weight: m.config.weight.unwrap_or(1.0),
                    priority: m.config.priority,
                    price: h.price,
                }
            })
            .collect()
    }

    /// Places `total` over the members: splits it, writes each member whose target changed
    /// (growth first, then shrinking), and when a member refuses for want of capacity, marks it
    /// limited and splits again. Records the split when anything moved or a member's state
    /// changed. Fails when not all of `total` could be placed.
    pub async fn place(&self, total: u32) -> Result<()> {
        let now = self.inner.clock.now();
        *self
            .inner
            .total
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(total);
        let mut attempts = 0;
        let mut before: Option<Vec<u32>> = None;
        let (targets, unplaced, members) = loop {
            attempts += 1;
            let members = self.split_members().await;
            let (targets, unplaced) = split(total, &members, self.inner.config.split);
            let current: Vec<u32> = self.health().iter().map(Health::desired).collect();
            before.get_or_insert_with(|| current.clone());
            let mut order: Vec<usize> = (0..members.len())
                .filter(|&i| members[i].state != MemberState::Down && targets[i] != current[i])
                .collect();
            // Growth first: capacity arrives before any leaves.
            order.sort_by_key(|&i| (targets[i] < current[i], i));
            let mut refused = false;
            for i in order {
                let member = &self.inner.members[i];
                let result = match member.set.scaling_provider() {
                    Ok(scaling) => {
                        scaling
                            .set_desired_capacity(&member.config.group, targets[i])
                            .await
                    }
                    Err(e) => Err(e),
                };
                match result {
                    Ok(()) => {
                        if let Some(g) = self.health()[i].last.as_mut() {
                            g.desired_capacity = targets[i];
                        }
                    }
                    Err(e) => {
                        self.failed(i, &e, now);
                        refused = true;
                    }
                }
            }
            {
                let mut health = self.health();
                for (i, h) in health.iter_mut().enumerate() {
                    if h.returning && h.desired() == targets[i] {
                        h.allowance = targets[i];
                        if targets[i] < members[i].cap || targets[i] >= members[i].max {
                            // The split wants no more of it: fully back.
                            h.returning = false;
                        }
                    }
                }
            }
            if !refused || attempts > self.inner.members.len() {
                break (targets, unplaced, members);
            }
        };
        let after: Vec<u32> = self.health().iter().map(Health::desired).collect();
        let before = before.unwrap_or_else(|| after.clone());
        self.record(now, total, unplaced, &members, &before, &after);
        let _ = targets;
        if unplaced > 0 {
            return Err(Error::new(
                ErrorKind::CapacityUnavailable,
                format!(
                    "pool `{}` placed {} of {total} instances: every member is at its max or without capacity",
                    self.name(),
                    total - unplaced
                ),
            ));
        }
        Ok(())
    }

    /// Moves capacity between members without changing the total (a member down, limited or
    /// returning); a no-op when the split is as it should be.
    pub async fn rebalance(&self) -> Result<()> {
        let asked = *self
            .inner
            .total
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let total = asked.unwrap_or_else(|| {
            self.health()
                .iter()
                .filter(|h| h.down_reason.is_none())
                .map(Health::desired)
                .sum()
        });
        self.place(total.clamp(self.inner.config.min, self.inner.config.max))
            .await
    }

    fn record(
        &self,
        now: DateTime<Utc>,
        total: u32,
        unplaced: u32,
        members: &[SplitMember],
        before: &[u32],
        after: &[u32],
    ) {
        let notes: Vec<String> = std::mem::take(
            &mut *self
                .inner
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if notes.is_empty() && before == after {
            return;
        }
        let health = self.health().clone();
        let lines: Vec<MemberLine> = members
            .iter()
            .enumerate()
            .map(|(i, m)| MemberLine {
                member: m.key.clone(),
                state: health[i].state(),
                from: before[i],
                to: after[i],
                note: health[i].note(),
            })
            .collect();
        let reason = if notes.is_empty() {
            match self.inner.config.split {
                SplitStrategy::Cheapest => "split cheapest first".to_owned(),
                SplitStrategy::Weighted => "split by weight".to_owned(),
            }
        } else {
            notes.join("; ")
        };
        let record = PoolSplitRecord {
            at: now,
            pool: self.name().to_owned(),
            total,
            unplaced,
            members: lines,
            reason,
        };
        let hooks = self.hooks();
        if let Some(audit) = &hooks.audit
            && let Err(e) = audit.append(&AuditRecord::PoolSplit { split: &record })
        {
            tracing::error!(error = %e, "audit log write failed");
        }
        hooks
            .events
            .clone()
            .unwrap_or_else(|| Arc::new(NoEvents))
            .emit(&Event::PoolSplit(record));
    }

    fn own_group(&self, group: &str) -> Result<()> {
        if group == self.name() {
            Ok(())
        } else {
            Err(Error::not_found(format!(
                "pool `{}` has one group, itself; no group `{group}`",
                self.name()
            )))
        }
    }
}

#[async_trait]
impl ScalingProvider for Pool {
    fn name(&self) -> &str {
        POOL_PROVIDER
    }

    fn capabilities(&self) -> ScalingCapabilities {
        ScalingCapabilities {
            set_desired_capacity: true,
            remove_instances: false,
            set_instance_class: false,
            activities: false,
        }
    }

    async fn list_groups(&self) -> Result<Vec<ScalingGroup>> {
        Ok(vec![
            self.describe_group(&self.inner.config.name.clone()).await?,
        ])
    }

    /// Describes every member (at once) and keeps their health; the pool's desired capacity and
    /// instances are those of the members that are not down.
    async fn describe_group(&self, group: &str) -> Result<ScalingGroup> {
        self.own_group(group)?;
        let now = self.inner.clock.now();
        let results = join_all(self.inner.members.iter().map(|m| async move {
            match m.set.scaling_provider() {
                Ok(scaling) => scaling.describe_group(&m.config.group).await,
                Err(e) => Err(e),
            }
        }))
        .await;
        let mut last_error = None;
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(g) => self.answered(i, g, now),
                Err(e) => {
                    self.failed(i, &e, now);
                    last_error = Some(e);
                }
            }
        }
        let health = self.health();
        let live: Vec<&ScalingGroup> = health
            .iter()
            .filter(|h| h.down_reason.is_none())
            .filter_map(|h| h.last.as_ref())
            .collect();
        if live.is_empty() {
            return Err(last_error.unwrap_or_else(|| {
                Error::new(
                    ErrorKind::Transient,
                    format!("pool `{}`: no member answered", self.name()),
                )
            }));
        }
        let mut zones: Vec<String> = live.iter().flat_map(|g| g.zones.clone()).collect();
        zones.sort();
        zones.dedup();
        let cheapest = health
            .iter()
            .filter(|h| h.down_reason.is_none() && h.last.is_some())
            .min_by(|a, b| {
                a.price
                    .unwrap_or(f64::MAX)
                    .total_cmp(&b.price.unwrap_or(f64::MAX))
            })
            .and_then(|h| h.last.as_ref());
        Ok(ScalingGroup {
            id: self.name().to_owned(),
            min_size: self.inner.config.min,
            max_size: self.inner.config.max,
            desired_capacity: live.iter().map(|g| g.desired_capacity).sum(),
            instance_class: cheapest
                .map(|g| g.instance_class.clone())
                .unwrap_or_default(),
            zones,
            instances: live.iter().flat_map(|g| g.instances.clone()).collect(),
            tags: BTreeMap::from([("hoist:pool".to_owned(), self.name().to_owned())]),
        })
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<()> {
        self.own_group(group)?;
        hoist_api::checks::desired_within_bounds(
            group,
            desired,
            self.inner.config.min,
            self.inner.config.max,
        )?;
        self.place(desired).await
    }
}

/// How a signal of several members combines into the pool's.
fn summed(metric: &MetricKind) -> bool {
    matches!(
        metric,
        MetricKind::RequestRate | MetricKind::QueueDepth | MetricKind::Custom(_)
    )
}

#[async_trait]
impl MetricsSource for Pool {
    fn capabilities(&self) -> MetricsCapabilities {
        MetricsCapabilities {
            builtin: vec![
                MetricKind::Utilization,
                MetricKind::RequestRate,
                MetricKind::QueueDepth,
                MetricKind::LatencyP95,
                MetricKind::LatencyP99,
                MetricKind::ErrorRate,
            ],
            expressions: false,
        }
    }

    /// The members' samples of the signal combined, for members not down: rates, queue depths
    /// and custom counts summed, utilisation, latency and error rate averaged with each member's
    /// ready instances as weights. Samples are matched by time, to the query's step.
    async fn query_range(&self, request: &RangeQuery) -> Result<Vec<TimeSeries>> {
        self.own_group(&request.query.group)?;
        let now = self.inner.clock.now();
        let targets: Vec<(usize, f64)> = {
            let health = self.health();
            health
                .iter()
                .enumerate()
                .filter(|(_, h)| h.down_reason.is_none())
                .map(|(i, h)| (i, f64::from(h.ready())))
                .collect()
        };
        let queries = targets.iter().map(|&(i, _)| {
            let member = &self.inner.members[i];
            let mut query = request.clone();
            query.query.group = member.config.group.clone();
            async move {
                match &member.set.metrics {
                    Some(source) => source.query_range(&query).await,
                    None => Err(Error::new(
                        ErrorKind::Unsupported,
                        format!("provider `{}` offers no metrics", member.config.provider),
                    )),
                }
            }
        });
        let results = join_all(queries).await;
        let step = i64::from(request.step_seconds.max(1));
        let sum = summed(&request.query.metric);
        // time bucket -> (weighted sum, weight)
        let mut buckets: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
        let mut answered = 0;
        let mut last_error = None;
        for ((i, ready), result) in targets.iter().zip(results) {
            match result {
                Ok(series) => {
                    answered += 1;
                    let weight = if sum { 1.0 } else { ready.max(0.0) };
                    for s in series.iter().flat_map(|s| &s.samples) {
                        if !s.value.is_finite() {
                            continue;
                        }
                        let key = s.at.timestamp().div_euclid(step);
                        let b = buckets.entry(key).or_insert((0.0, 0.0));
                        b.0 += s.value * weight;
                        b.1 += weight;
                    }
                }
                Err(e) => {
                    if e.kind() != ErrorKind::Unsupported {
                        self.failed(*i, &e, now);
                    }
                    last_error = Some(e);
                }
            }
        }
        if answered == 0 {
            return Err(last_error.unwrap_or_else(|| {
                Error::new(
                    ErrorKind::Transient,
                    format!("pool `{}`: no member to ask for metrics", self.name()),
                )
            }));
        }
        let samples = buckets
            .into_iter()
            .filter_map(|(key, (total, weight))| {
                let value = if sum {
                    total
                } else if weight > 0.0 {
                    total / weight
                } else {
                    return None;
                };
                let at = DateTime::<Utc>::from_timestamp(key * step, 0)?;
                Some(Sample { at, value })
            })
            .collect();
        Ok(vec![TimeSeries {
            labels: BTreeMap::from([("pool".to_owned(), self.name().to_owned())]),
            samples,
        }])
    }
}

#[async_trait]
impl InstanceCatalog for Pool {
    fn capabilities(&self) -> CatalogCapabilities {
        CatalogCapabilities::default()
    }

    /// Every member provider's classes (the first provider's where names repeat).
    async fn instance_classes(&self) -> Result<Vec<InstanceClass>> {
        let mut out: Vec<InstanceClass> = Vec::new();
        for m in &self.inner.members {
            if let Some(catalog) = &m.set.catalog
                && let Ok(classes) = catalog.instance_classes().await
            {
                for c in classes {
                    if !out.iter().any(|o| o.name == c.name) {
                        out.push(c);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The class from the first member provider that knows it.
    async fn instance_class(&self, name: &str) -> Result<InstanceClass> {
        for m in &self.inner.members {
            if let Some(catalog) = &m.set.catalog
                && let Ok(class) = catalog.instance_class(name).await
            {
                return Ok(class);
            }
        }
        Err(Error::not_found(format!(
            "no member provider of pool `{}` has instance class `{name}`",
            self.name()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(key: &str, min: u32, max: u32, price: f64) -> SplitMember {
        SplitMember {
            key: key.to_owned(),
            state: MemberState::Healthy,
            min,
            max,
            cap: max,
            min_share: 0.0,
            weight: 1.0,
            priority: 0,
            price: Some(price),
        }
    }

    #[test]
    fn cheapest_first_within_bounds_and_floors() {
        let members = vec![
            member("a/web", 0, 10, 0.10),
            member("b/web", 2, 10, 0.05),
            member("c/web", 1, 10, 0.20),
        ];
        let (t, left) = split(15, &members, SplitStrategy::Cheapest);
        // Floors 0, 2, 1; the rest (12) to b (room 8), then a (4).
        assert_eq!(t, vec![4, 10, 1]);
        assert_eq!(left, 0);
    }

    #[test]
    fn min_share_and_priority() {
        let mut members = vec![member("a/web", 0, 20, 0.10), member("b/web", 0, 20, 0.05)];
        members[0].min_share = 0.25;
        members[0].priority = 0;
        members[1].priority = 1;
        let (t, _) = split(12, &members, SplitStrategy::Cheapest);
        // a first by priority despite the price; its share floor is 3 anyway.
        assert_eq!(t, vec![12, 0]);
        members[0].max = 5;
        members[0].cap = 5;
        let (t, _) = split(12, &members, SplitStrategy::Cheapest);
        assert_eq!(t, vec![5, 7]);
    }

    #[test]
    fn down_member_gets_nothing_and_limited_keeps_its_cap() {
        let mut members = vec![
            member("a/web", 1, 10, 0.05),
            member("b/web", 0, 10, 0.10),
            member("c/web", 0, 10, 0.20),
        ];
        members[0].state = MemberState::Down;
        members[0].cap = 0;
        members[0].min = 0;
        members[1].state = MemberState::Limited;
        members[1].cap = 3;
        let (t, left) = split(8, &members, SplitStrategy::Cheapest);
        assert_eq!(t, vec![0, 3, 5]);
        assert_eq!(left, 0);
        let (t, left) = split(25, &members, SplitStrategy::Cheapest);
        assert_eq!(t, vec![0, 3, 10]);
        assert_eq!(left, 12);
    }

    #[test]
    fn weighted_split_is_proportional_and_exact() {
        let mut members = vec![member("a/web", 0, 100, 1.0), member("b/web", 0, 100, 1.0)];
        members[0].weight = 3.0;
        let (t, _) = split(10, &members, SplitStrategy::Weighted);
        assert_eq!(t.iter().sum::<u32>(), 10);
        assert!(t[0] == 7 || t[0] == 8, "{t:?}");
        members[0].cap = 4;
        let (t, _) = split(10, &members, SplitStrategy::Weighted);
        assert_eq!(t, vec![4, 6]);
    }

    #[test]
    fn total_is_always_placed_when_room_allows() {
        // Every total up to the sum of caps is placed in full, for both strategies.
        let members = vec![
            member("a/x", 1, 7, 0.3),
            member("b/x", 0, 5, 0.1),
            member("c/x", 2, 9, 0.2),
        ];
        for strategy in [SplitStrategy::Cheapest, SplitStrategy::Weighted] {
            for total in 3..=21 {
                let (t, left) = split(total, &members, strategy);
                assert_eq!(left, 0, "{strategy:?} {total}");
                assert_eq!(t.iter().sum::<u32>(), total);
                for (v, m) in t.iter().zip(&members) {
                    assert!(*v <= m.cap && *v >= m.min, "{strategy:?} {total}: {t:?}");
                }
            }
        }
    }
}
