//! Pools: one service's capacity over member groups on several providers (`pools:`).
//!
//! ```yaml
//! pools:
//!   - name: web
//!     min: 4
//!     max: 60
//!     policies:
//!       - target_tracking: { metric: utilization, target: 0.6 }
//!     members:
//!       - { provider: cheap, group: web, max: 40 }
//!       - { provider: steady, group: web, min: 2, max: 40, min_share: 0.25 }
//! ```
//!
//! The pool's policies decide its total desired capacity exactly as a group's do; the splitter
//! ([`crate::pool`]) places it over the members, cheapest first, and moves it away from a member
//! that fails and back when it recovers.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{GroupConfig, GroupMetricsConfig, GuardsConfig, PolicyConfig};
use crate::duration::HumanDuration;
use hoist_api::input::number;

/// The provider name a pool's decisions are recorded under (audit log, events, metrics). No
/// provider of a policy file with pools may take it.
pub const POOL_PROVIDER: &str = "pool";

/// A pool (`pools:` entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// The pool's name (unique among pools).
    pub name: String,
    /// Never fewer instances than this over all members.
    pub min: u32,
    /// Never more instances than this over all members.
    pub max: u32,
    /// The member groups, on any providers.
    pub members: Vec<PoolMemberConfig>,
    /// How the pool's total is split over its members.
    #[serde(default)]
    pub split: SplitStrategy,
    /// When a member counts as failed, and how capacity returns to it.
    #[serde(default)]
    pub failover: FailoverConfig,
    /// Where the pool's metrics come from. Default: each healthy member's own provider, the
    /// samples combined (utilisation and latency weighted by ready instances, rates and queue
    /// depths summed).
    #[serde(default)]
    pub metrics: Option<GroupMetricsConfig>,
    /// The policies deciding the pool's total, as a group's.
    pub policies: Vec<PolicyConfig>,
    /// Cooldowns, protection, dry run and freshness limits, as a group's.
    #[serde(default)]
    pub guards: GuardsConfig,
    /// Labels that budgets select by.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One member of a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolMemberConfig {
    /// The provider it lives on (a key of `providers`).
    pub provider: String,
    /// The group's id on that provider. The same id may appear on several providers.
    pub group: String,
    /// Never fewer instances than this on this member (while it is healthy). Default 0.
    #[serde(default)]
    pub min: u32,
    /// Never more instances than this on this member.
    pub max: u32,
    /// With `split: weighted`, this member's share of the pool is its weight over the sum of
    /// the healthy members' weights. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// At least this share (0–1) of the pool's total on this member while it is healthy, for
    /// example to keep a warm foothold on a second cloud. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_share: Option<f64>,
    /// Members with a lower number are filled first; equal numbers are ordered by price.
    /// Default 0.
    #[serde(default)]
    pub priority: u32,
    /// Spot interruptions per hour expected on this member; each one is costed as
    /// `interruption_cost` hours of the member's price when members are ordered by price.
    /// Default 0 (on-demand).
    #[serde(default)]
    pub interruptions_per_hour: f64,
}

impl PoolMemberConfig {
    /// The group's id on its provider.
    pub fn group_id(&self) -> &str {
        &self.group
    }

    /// `provider/group`, how the member is named in records and messages.
    pub fn key(&self) -> String {
        format!("{}/{}", self.provider, self.group)
    }
}

/// How a pool's total is split over its healthy members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SplitStrategy {
    /// Each member's `min` and `min_share` first, then the rest to the cheapest member (by
    /// priority, then the catalog's price with spot interruptions costed) up to its max, then
    /// the next.
    #[default]
    Cheapest,
    /// In proportion to the members' weights, within their bounds.
    Weighted,
}

/// When a pool member counts as failed, and how capacity returns to it (`failover:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailoverConfig {
    /// Consecutive failed calls to a member's provider that make it failed (a circuit breaker
    /// that is open counts at once). Default 2.
    #[serde(default = "default_failures")]
    pub failures: u32,
    /// Instances asked of a member that are not ready after this long make it failed for new
    /// capacity. Default `10m`.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout: HumanDuration,
    /// After a member reports no capacity (a stockout, a quota) or fails its ready timeout, how
    /// long before it is asked for more again. Default `15m`.
    #[serde(default = "default_backoff")]
    pub backoff: HumanDuration,
    /// How long a failed member must answer again before capacity returns to it. Default `5m`.
    #[serde(default = "default_recovery")]
    pub recovery: HumanDuration,
    /// At most this many instances move back to a recovered member per evaluation (no
    /// flapping). Default 2.
    #[serde(default = "default_return_step")]
    pub return_step: u32,
    /// Hours of a member's price each spot interruption is costed at when members are ordered
    /// by price. Default 1.
    #[serde(default = "default_interruption_cost")]
    pub interruption_cost: f64,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            failures: default_failures(),
            ready_timeout: default_ready_timeout(),
            backoff: default_backoff(),
            recovery: default_recovery(),
            return_step: default_return_step(),
            interruption_cost: default_interruption_cost(),
        }
    }
}

fn default_failures() -> u32 {
    2
}

fn default_ready_timeout() -> HumanDuration {
    HumanDuration::from_secs(600)
}

fn default_backoff() -> HumanDuration {
    HumanDuration::from_secs(900)
}

fn default_recovery() -> HumanDuration {
    HumanDuration::from_secs(300)
}

fn default_return_step() -> u32 {
    2
}

fn default_interruption_cost() -> f64 {
    1.0
}

impl PoolConfig {
    /// The pool as a group of the [`POOL_PROVIDER`]: what the policies, the control loop, the
    /// audit log and the budgets see.
    pub fn as_group(&self) -> GroupConfig {
        GroupConfig {
            name: self.name.clone(),
            provider: POOL_PROVIDER.to_owned(),
            id: None,
            min: self.min,
            max: self.max,
            metrics: self.metrics.clone(),
            policies: self.policies.clone(),
            guards: self.guards.clone(),
            drain: None,
            labels: self.labels.clone(),
            cost: None,
            vertical: None,
        }
    }
}

/// The problems of the pools of `policy` beyond the group rules their [`PoolConfig::as_group`]
/// is checked against: members on unknown providers or listed twice, a member that is also a
/// group of `groups:`, bounds the members cannot hold, shares and weights out of range.
pub(super) fn validate_pools(policy: &super::PolicyFile, push: &mut impl FnMut(String, String)) {
    let mut names = std::collections::BTreeSet::new();
    if !policy.pools.is_empty() && policy.providers.contains_key(POOL_PROVIDER) {
        push(
            format!("providers.{POOL_PROVIDER}"),
            format!(
                "`{POOL_PROVIDER}` is the name pools are recorded under in a file with `pools:`; give this provider another name"
            ),
        );
    }
    for (p, pool) in policy.pools.iter().enumerate() {
        let at = |field: &str| format!("pools[{p}].{field}");
        if !names.insert(pool.name.as_str()) {
            push(at("name"), format!("duplicate pool name `{}`", pool.name));
        }
        if pool.members.is_empty() {
            push(
                at("members"),
                "a pool needs at least one member group".into(),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        let (mut min_sum, mut max_sum, mut share_sum) = (0u64, 0u64, 0.0f64);
        for (m, member) in pool.members.iter().enumerate() {
            let at = |field: &str| format!("pools[{p}].members[{m}].{field}");
            if !policy.providers.contains_key(&member.provider) {
                let known: Vec<&str> = policy.providers.keys().map(String::as_str).collect();
                push(
                    at("provider"),
                    format!(
                        "unknown provider `{}`; declared providers: {}",
                        member.provider,
                        known.join(", ")
                    ),
                );
            }
            if !seen.insert((member.provider.as_str(), member.group.as_str())) {
                push(
                    at("group"),
                    format!("`{}` is listed twice in this pool", member.key()),
                );
            }
            if let Some((g, _)) = policy
                .groups
                .iter()
                .enumerate()
                .find(|(_, g)| g.provider == member.provider && g.provider_id() == member.group)
            {
                push(
                    at("group"),
                    format!(
                        "`{}` is also scaled on its own (groups[{g}]); a group is a pool member or a group, not both",
                        member.key()
                    ),
                );
            }
            for (q, other) in policy.pools.iter().enumerate().take(p) {
                if other
                    .members
                    .iter()
                    .any(|o| o.provider == member.provider && o.group == member.group)
                {
                    push(
                        at("group"),
                        format!("`{}` is already a member of pools[{q}]", member.key()),
                    );
                }
            }
            if member.min > member.max {
                push(
                    at("min"),
                    format!("min ({}) is greater than max ({})", member.min, member.max),
                );
            }
            if member.max > hoist_api::input::MAX_INSTANCES {
                push(
                    at("max"),
                    format!(
                        "max ({}) is above the limit of {} instances a group may have",
                        member.max,
                        hoist_api::input::MAX_INSTANCES
                    ),
                );
            }
            if let Some(w) = member.weight
                && !(w.is_finite() && w > 0.0 && w <= 1e6)
            {
                push(
                    at("weight"),
                    format!("must be > 0 and at most 1e6, got {}", number(w)),
                );
            }
            if let Some(s) = member.min_share {
                if !(0.0..=1.0).contains(&s) {
                    push(
                        at("min_share"),
                        format!("must be between 0 and 1, got {}", number(s)),
                    );
                } else {
                    share_sum += s;
                }
            }
            if !(member.interruptions_per_hour.is_finite()
                && (0.0..=60.0).contains(&member.interruptions_per_hour))
            {
                push(
                    at("interruptions_per_hour"),
                    format!(
                        "must be between 0 and 60, got {}",
                        number(member.interruptions_per_hour)
                    ),
                );
            }
            min_sum += u64::from(member.min);
            max_sum += u64::from(member.max);
        }
        if !pool.members.is_empty() {
            if max_sum < u64::from(pool.max) {
                push(
                    at("max"),
                    format!(
                        "the pool's max ({}) cannot be held: its members' max add up to {max_sum}; raise a member's max or lower the pool's",
                        pool.max
                    ),
                );
            }
            if min_sum > u64::from(pool.min) {
                push(
                    at("min"),
                    format!(
                        "the members' min add up to {min_sum}, more than the pool's min ({}); the pool's min must cover them",
                        pool.min
                    ),
                );
            }
        }
        if share_sum > 1.0 + 1e-9 {
            push(
                at("members"),
                format!("the members' min_share add up to {share_sum:.2}, more than 1"),
            );
        }
        if pool.split == SplitStrategy::Weighted && pool.members.iter().all(|m| m.weight.is_none())
        {
            push(
                at("split"),
                "`split: weighted` needs a `weight` on the members (the others count 1)".into(),
            );
        }
        let f = &pool.failover;
        if f.failures == 0 {
            push(at("failover.failures"), "must be at least 1".into());
        }
        if f.return_step == 0 {
            push(
                at("failover.return_step"),
                "must be at least 1 (capacity would never return)".into(),
            );
        }
        if !(f.interruption_cost.is_finite() && (0.0..=1000.0).contains(&f.interruption_cost)) {
            push(
                at("failover.interruption_cost"),
                format!(
                    "must be between 0 and 1000 hours, got {}",
                    number(f.interruption_cost)
                ),
            );
        }
        for (field, d) in [
            ("ready_timeout", f.ready_timeout),
            ("backoff", f.backoff),
            ("recovery", f.recovery),
        ] {
            if d.get() > std::time::Duration::from_secs(7 * 86_400) {
                push(
                    at(&format!("failover.{field}")),
                    format!("must be at most 7d, got {d}"),
                );
            }
        }
    }
}
