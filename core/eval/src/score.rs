//! The elasticity metrics of `EVALUATION.md` (SPEC Research Group), plus cost and actions.
//!
//! With D the instances demand needs and S the ready instances, over the scored time T (gap
//! steps excluded) in ticks of Δt:
//!
//! - θ_U = (1/T) Σ max(D−S, 0) / max(D, 1) · Δt, in %
//! - θ_O = (1/T) Σ max(S−D, 0) / max(D, 1) · Δt, in %
//! - τ_U = (1/T) Σ [S < D] · Δt, in %;  τ_O = (1/T) Σ [S > D] · Δt, in %
//! - jitter = (supply changes − demand changes) per hour of T; a change is counted between two
//!   consecutive scored ticks, so changes across a gap are not counted
//! - under/over instance-hours = Σ max(D−S, 0) · Δt / 3600 and Σ max(S−D, 0) · Δt / 3600.

use serde::{Deserialize, Serialize};

/// One run's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// θ_U, %.
    pub theta_u: f64,
    /// θ_O, %.
    pub theta_o: f64,
    /// τ_U, %.
    pub tau_u: f64,
    /// τ_O, %.
    pub tau_o: f64,
    /// Supply changes minus demand changes, per hour.
    pub jitter: f64,
    /// Instance-hours of demand without capacity.
    pub under_instance_hours: f64,
    /// Instance-hours of capacity without demand.
    pub over_instance_hours: f64,
    /// Money spent over the whole replay (gaps included), in the price's currency.
    pub cost: f64,
    /// Scaling calls made to the provider.
    pub actions: u64,
    /// Hours scored (steps with data).
    pub scored_hours: f64,
}

/// Accumulates a [`Score`] tick by tick.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScoreAcc {
    ticks_known: u64,
    under_rel: f64,
    over_rel: f64,
    ticks_under: u64,
    ticks_over: u64,
    under_units: u64,
    over_units: u64,
    supply_changes: u64,
    demand_changes: u64,
    prev: Option<(u32, u32)>,
}

impl ScoreAcc {
    /// Adds `weight` ticks with demand `need` (None: a gap) and supply `supply`.
    #[inline]
    pub(crate) fn push(&mut self, need: Option<u32>, supply: u32, weight: u64) {
        let Some(d) = need else {
            self.prev = None;
            return;
        };
        if let Some((pd, ps)) = self.prev {
            self.demand_changes += u64::from(pd != d);
            self.supply_changes += u64::from(ps != supply);
        }
        self.prev = Some((d, supply));
        self.ticks_known += weight;
        let w = weight as f64;
        if supply < d {
            let gap = d - supply;
            self.ticks_under += weight;
            self.under_units += u64::from(gap) * weight;
            self.under_rel += f64::from(gap) / f64::from(d.max(1)) * w;
        } else if supply > d {
            let gap = supply - d;
            self.ticks_over += weight;
            self.over_units += u64::from(gap) * weight;
            self.over_rel += f64::from(gap) / f64::from(d.max(1)) * w;
        }
    }

    /// The score, with ticks of `tick_seconds`.
    pub(crate) fn finish(&self, tick_seconds: i64, cost: f64, actions: u64) -> Score {
        let t = self.ticks_known.max(1) as f64;
        let pct = |x: f64| 100.0 * x / t;
        let scored_hours = self.ticks_known as f64 * tick_seconds as f64 / 3600.0;
        let hours = |units: u64| units as f64 * tick_seconds as f64 / 3600.0;
        Score {
            theta_u: pct(self.under_rel),
            theta_o: pct(self.over_rel),
            tau_u: pct(self.ticks_under as f64),
            tau_o: pct(self.ticks_over as f64),
            jitter: if scored_hours > 0.0 {
                (self.supply_changes as f64 - self.demand_changes as f64) / scored_hours
            } else {
                0.0
            },
            under_instance_hours: hours(self.under_units),
            over_instance_hours: hours(self.over_units),
            cost,
            actions,
            scored_hours,
        }
    }
}
