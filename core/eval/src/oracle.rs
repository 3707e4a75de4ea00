//! The oracles: O1 (perfect and instant) and O2 (perfect foresight under real constraints).
//!
//! # O1
//!
//! S(t) = D(t) at every step, changed instantly, billed by the second with no minimum: the cost
//! of exactly the instance-seconds demand needs. No autoscaler can pay less without leaving
//! demand unserved: any plan with S ≥ D pays at least ∫S ≥ ∫D. In a gap O1 keeps the last known
//! D (a gap is no data, not zero demand), and O2 covers the same requirement.
//!
//! # O2
//!
//! Knows the future, but each instance is billed from its request, serves only `boot_delay`
//! later, is billed with the minimum charge (or per started hour), and capacity stays within
//! `[min_instances, max_instances]`. O2 is the cheapest plan that is never under-provisioned
//! (where the requirement exceeds `max_instances`, it holds `max_instances`).
//!
//! **Construction (levels).** Write the requirement r(t) as a stack of levels: level k is needed
//! on N_k = {t : r(t) ≥ k}, a union of intervals. Each level gets its own instances: for level
//! k, consecutive need intervals are grouped into runs; a run covering intervals i..j asks for an
//! instance at `s_i − boot_delay` (or has it ready from the start when that is before the start)
//! and removes it at `e_j`. Between two intervals of one run the instance idles through the gap
//! (a short dip is cheaper to ride out than to pay another boot and minimum charge). The grouping
//! per level is a dynamic programme over the intervals with the true billing function
//! (`Billing::charge`): `best[j] = min_i best[i] + charge(e_j − start_i)`. A run never bridges a
//! gap longer than `boot_delay + minimum` (or `boot_delay + 1 h` per hour): splitting there is
//! never dearer, since `ceil(x) + ceil(y) ≤ ceil(x + y) + 1`. The look-back is capped at
//! [`MAX_LOOKBACK`] intervals.
//!
//! **Lower bound and proof of optimality.** Let S(t) be the ready count of *any* feasible plan and
//! S_k(t) = [S(t) ≥ k]. Every instance is billed at least for its boot delay plus the time it
//! serves, so cost ≥ p · (∫S + b · L) where L counts launches. A rise of S_k at τ > 0 needs an
//! instance that became ready at τ, i.e. a distinct launch at τ − b ≥ 0, and S_k ≥ [r ≥ k].
//! Hence cost ≥ p · Σ_k min over indicator functions f ≥ [r ≥ k] (rising only at 0 or after b)
//! of (∫f + b · rises(f)), and that minimum has the closed form
//! `LB_k = |N_k| + min(s_1, b) + Σ_gaps min(gap, b)` (ride out a gap iff it is no longer than a
//! boot; start from the beginning iff the first need comes before one boot). The levels' plan
//! attains `Σ_k LB_k` whenever no instance is charged more than its lifetime (with per-second
//! billing and a minimum no longer than the boot delay plus one tick: the defaults, 60 s
//! minimum and 120 s boot), so it is optimal then. [`O2::lower_bound_cost`] returns this bound;
//! a run reports O2 as exact when the replayed cost equals it. With a minimum longer than the
//! boot delay, or per-hour billing, staggering instances across levels can beat any
//! level-by-level plan; O2 is then the best level plan and the report says it is not proven
//! optimal, with the bound beside it.
//!
//! **Replay.** The plan is a desired capacity per tick; the replay removes the oldest instances
//! first. Its launches at a tick never exceed the plan's (it launches the net increase only), so
//! its ready count is never below the plan's: O2 is never under-provisioned.

use super::fleet::Removal;
use super::replay::{Controller, StartContext, View, requirement_per_step};
use super::score::{Score, ScoreAcc};
use super::{Billing, Demand, ReplayParams, SeriesPoint};

/// The most need intervals one O2 run may span when grouping (see the module docs).
pub const MAX_LOOKBACK: usize = 512;

/// O1's score on `demand`: S = D at every step, cost = price × instance-seconds of the
/// requirement.
pub fn o1_score(demand: &Demand, params: &ReplayParams) -> Score {
    let mut acc = ScoreAcc::default();
    let requirement = requirement_per_step(demand);
    let mut actions = 0u64;
    let mut instance_steps = 0u64;
    for (s, (&need, &r)) in demand.needed.iter().zip(&requirement).enumerate() {
        acc.push(need, need.unwrap_or(r), 1);
        instance_steps += u64::from(r);
        if s > 0 && requirement[s - 1] != r {
            actions += 1;
        }
    }
    let cost = instance_steps as f64 * demand.step_seconds as f64 * params.price_per_hour / 3600.0;
    acc.finish(demand.step_seconds, cost, actions)
}

/// O1's per-step series (for charts), billed at `price_per_hour` per instance.
pub fn o1_series(demand: &Demand, price_per_hour: f64) -> Vec<SeriesPoint> {
    let requirement = requirement_per_step(demand);
    let per_step = demand.step_seconds as f64 * price_per_hour / 3600.0;
    let mut cost = 0.0;
    (0..demand.len())
        .map(|s| {
            cost += f64::from(requirement[s]) * per_step;
            SeriesPoint {
                at: demand.start + chrono::TimeDelta::seconds(demand.step_seconds) * s as i32,
                demand: demand.instances[s],
                needed: demand.needed[s],
                ready: requirement[s],
                desired: requirement[s],
                forecast: None,
                cost,
            }
        })
        .collect()
}

/// The O2 oracle as a controller: plans at start, then replays the plan.
#[derive(Debug, Default, Clone)]
pub struct O2 {
    plan: Vec<u32>,
    lower_bound_cost: f64,
}

impl O2 {
    /// The certified lower bound on the cost of any plan that never under-provisions (valid after
    /// the replay started).
    pub fn lower_bound_cost(&self) -> f64 {
        self.lower_bound_cost
    }
}

impl Controller for O2 {
    fn name(&self) -> String {
        "o2".to_owned()
    }

    fn period_seconds(&self, params: &ReplayParams, step_seconds: i64) -> i64 {
        let boot = params.boot_delay.as_secs() as i64;
        if boot == 0 {
            step_seconds
        } else {
            gcd(step_seconds, boot)
        }
    }

    fn removal(&self) -> Removal {
        Removal::OldestFirst
    }

    fn reads_demand(&self) -> bool {
        true
    }

    fn start(&mut self, ctx: &StartContext<'_>) -> u32 {
        let (plan, initial, lower_bound_ticks) = plan(ctx);
        self.plan = plan;
        self.lower_bound_cost =
            lower_bound_ticks as f64 * ctx.tick_seconds as f64 * ctx.params.price_per_hour / 3600.0;
        initial
    }

    fn decide(&mut self, view: &View<'_>) -> u32 {
        self.plan.get(view.tick).copied().unwrap_or(view.desired)
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Builds O2's plan: desired capacity per tick, the instances ready at the start, and the lower
/// bound in instance-ticks.
fn plan(ctx: &StartContext<'_>) -> (Vec<u32>, u32, u64) {
    let params = ctx.params;
    let tick = ctx.tick_seconds;
    let ticks_per_step = (ctx.demand.step_seconds / tick) as usize;
    let n_ticks = ctx.ticks;
    let boot = (params.boot_delay.as_secs() as i64 / tick) as usize;
    let requirement: Vec<u32> = requirement_per_step(ctx.demand)
        .into_iter()
        .map(|r| r.clamp(params.min_instances, params.max_instances))
        .collect();

    // Need intervals per level, in ticks: intervals[k] for level k + 1.
    let top = requirement.iter().copied().max().unwrap_or(0) as usize;
    let mut intervals: Vec<Vec<(usize, usize)>> = vec![Vec::new(); top];
    let mut open = vec![0usize; top];
    let mut prev = 0usize;
    for (s, &r) in requirement.iter().enumerate() {
        let r = r as usize;
        let t = s * ticks_per_step;
        if r > prev {
            for o in &mut open[prev..r] {
                *o = t;
            }
        } else {
            for k in r..prev {
                intervals[k].push((open[k], t));
            }
        }
        prev = r;
    }
    for k in 0..prev {
        intervals[k].push((open[k], n_ticks));
    }

    let bridge_limit_seconds = params.boot_delay.as_secs() as i64
        + match params.billing {
            Billing::PerSecond { minimum_seconds } => minimum_seconds as i64,
            Billing::PerHour => 3600,
        };
    let bridge_limit = (bridge_limit_seconds / tick).max(0) as usize;
    let charge = |ticks: usize| params.billing.charge(ticks as i64 * tick, 1.0);

    let mut diff = vec![0i64; n_ticks + 1];
    let mut initial = 0u32;
    let mut lower_bound = 0u64;
    let mut best: Vec<f64> = Vec::new();
    let mut choice: Vec<usize> = Vec::new();
    for level in &intervals {
        // Lower bound for this level.
        let (s0, _) = level[0];
        lower_bound += s0.min(boot) as u64;
        for (j, &(s, e)) in level.iter().enumerate() {
            lower_bound += (e - s) as u64;
            if j > 0 {
                lower_bound += (s - level[j - 1].1).min(boot) as u64;
            }
        }
        // Grouping by dynamic programme.
        let n = level.len();
        best.clear();
        best.resize(n + 1, f64::INFINITY);
        best[0] = 0.0;
        choice.clear();
        choice.resize(n + 1, 0);
        let mut lo = 0usize;
        for j in 0..n {
            if j > 0 && level[j].0 - level[j - 1].1 > bridge_limit {
                lo = j;
            }
            let first = lo.max(j.saturating_sub(MAX_LOOKBACK - 1));
            let e = level[j].1;
            for i in first..=j {
                let start = level[i].0.saturating_sub(boot);
                let c = best[i] + charge(e - start);
                if c < best[j + 1] {
                    best[j + 1] = c;
                    choice[j + 1] = i;
                }
            }
        }
        // Recover runs.
        let mut j = n;
        while j > 0 {
            let i = choice[j];
            let (s, _) = level[i];
            let e = level[j - 1].1;
            let start = s.saturating_sub(boot);
            if s < boot {
                initial += 1;
            }
            diff[start] += 1;
            diff[e] -= 1;
            j = i;
        }
    }
    let mut plan = Vec::with_capacity(n_ticks);
    let mut level = 0i64;
    for d in diff.iter().take(n_ticks) {
        level += d;
        plan.push(level.max(0) as u32);
    }
    (plan, initial, lower_bound)
}
