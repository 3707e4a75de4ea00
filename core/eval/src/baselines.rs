//! The baselines as replay controllers: static capacity, and adapters for the HPA and target
//! tracking algorithms (which live in their own modules as plain state machines).

use super::ReplayParams;
use super::fleet::Removal;
use super::hpa::Hpa;
use super::replay::{Controller, StartContext, View, requirement_per_step};
use super::target_tracking::TargetTracking;

/// A fixed capacity for the whole replay (static peak, static mean).
#[derive(Debug, Clone)]
pub struct StaticCapacity {
    name: String,
    instances: u32,
}

impl StaticCapacity {
    /// `instances` for ever.
    pub fn new(name: &str, instances: u32) -> Self {
        StaticCapacity {
            name: name.to_owned(),
            instances,
        }
    }
}

impl Controller for StaticCapacity {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn period_seconds(&self, _params: &ReplayParams, step_seconds: i64) -> i64 {
        step_seconds
    }

    fn start(&mut self, _ctx: &StartContext<'_>) -> u32 {
        self.instances
    }

    fn decide(&mut self, _view: &View<'_>) -> u32 {
        self.instances
    }
}

/// A reactive baseline in the replay.
#[derive(Debug, Clone)]
pub enum Baseline {
    /// The Kubernetes HPA.
    Hpa(Hpa),
    /// AWS-style target tracking.
    TargetTracking(TargetTracking),
}

impl Controller for Baseline {
    fn name(&self) -> String {
        match self {
            Baseline::Hpa(_) => "hpa".to_owned(),
            Baseline::TargetTracking(_) => "target-tracking".to_owned(),
        }
    }

    fn period_seconds(&self, _params: &ReplayParams, _step_seconds: i64) -> i64 {
        match self {
            Baseline::Hpa(h) => h.config().sync_period_seconds,
            Baseline::TargetTracking(t) => t.config().period_seconds,
        }
    }

    fn removal(&self) -> Removal {
        match self {
            // The ReplicaSet controller deletes not-ready pods first, then newer ones.
            Baseline::Hpa(_) => Removal::NewestFirst,
            Baseline::TargetTracking(_) => Removal::OldestFirst,
        }
    }

    /// Reactive baselines start with the capacity the first step needs at their target
    /// (`ceil(D / target)`), as a group that was sized for the load before the replay began.
    fn start(&mut self, ctx: &StartContext<'_>) -> u32 {
        let first = requirement_per_step(ctx.demand)
            .first()
            .copied()
            .unwrap_or(0);
        let first_demand = ctx
            .demand
            .instances
            .iter()
            .flatten()
            .next()
            .copied()
            .unwrap_or(f64::from(first));
        let target = match self {
            Baseline::Hpa(h) => h.config().target_utilization,
            Baseline::TargetTracking(t) => t.config().target_utilization,
        };
        super::instances_needed(first_demand / target).max(1)
    }

    fn decide(&mut self, view: &View<'_>) -> u32 {
        match self {
            Baseline::Hpa(h) => h.reconcile(
                view.now_seconds,
                view.desired,
                view.ready,
                view.pending,
                view.utilization(),
            ),
            Baseline::TargetTracking(t) => {
                let warmup = t.config().warmup_seconds;
                let warming = view.launched_within(warmup);
                // Ready instances still in warm-up are left out of the metric; the load is
                // spread evenly, so the mean over the others is the same unless none is left.
                let warming_ready = warming.saturating_sub(view.pending);
                let datapoint = if view.ready > warming_ready {
                    view.utilization()
                } else {
                    None
                };
                // The load the datapoint describes: utilisation × the capacity it was measured on.
                let measured = view
                    .signal(super::Signal::ReadyInstances, 0)
                    .unwrap_or(f64::from(view.ready));
                t.evaluate(view.desired, measured, warming, datapoint)
            }
        }
    }
}
