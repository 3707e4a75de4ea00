//! A policy file's group as a replay controller: the real policy engine ([`crate::engine::decide`])
//! fed with the metrics the replay's pipeline delivers.
//!
//! Every `run.interval` of the policy file the engine gets a [`GroupSnapshot`] (desired, ready,
//! booting) and [`MetricWindows`] with one sample per metric period for the last
//! [`HISTORY_PERIODS`] periods of each signal the group's policies read, each stamped with the time
//! the pipeline delivered it. A period without data (a trace gap, no ready instance) is a `NaN`
//! sample, which the engine treats as missing. Applied decisions are recorded in the engine's
//! memory, as the control loop does.

use chrono::TimeDelta;

use super::ReplayParams;
use super::replay::{Controller, Signal, StartContext, View, requirement_per_step};
use crate::config::GroupConfig;
use crate::engine::{DecisionMemory, GroupSnapshot, MetricWindows, Observation, decide};
use crate::model::{MetricKind, Sample};

/// Periods of history per signal handed to the engine.
pub const HISTORY_PERIODS: usize = 15;

/// One group of a policy file, replayed.
#[derive(Debug, Clone)]
pub struct PolicyController {
    name: String,
    group: GroupConfig,
    interval_seconds: i64,
    memory: DecisionMemory,
    kinds: Vec<(MetricKind, Signal)>,
    metric_period_seconds: i64,
}

impl PolicyController {
    /// `group` of a policy file evaluated every `interval_seconds`. Fails when the group reads
    /// a custom metric the replay cannot produce.
    pub fn new(name: &str, group: GroupConfig, interval_seconds: i64) -> Result<Self, String> {
        let mut kinds = Vec::new();
        for kind in group.metrics_needed() {
            let signal = match kind {
                MetricKind::Utilization => Signal::Utilization,
                MetricKind::RequestRate => Signal::RequestRate,
                MetricKind::QueueDepth => Signal::QueueDepth,
                MetricKind::LatencyP95 => Signal::LatencyP95,
                MetricKind::LatencyP99 => Signal::LatencyP99,
                MetricKind::ErrorRate => Signal::ErrorRate,
                MetricKind::Custom(ref name) => {
                    return Err(format!(
                        "group {}: custom metric {name:?} cannot be replayed; the replay produces utilization, request_rate, queue_depth, latency_p95, latency_p99 and error_rate",
                        group.name
                    ));
                }
            };
            kinds.push((kind, signal));
        }
        Ok(PolicyController {
            name: name.to_owned(),
            group,
            interval_seconds: interval_seconds.max(1),
            memory: DecisionMemory::new(),
            kinds,
            metric_period_seconds: 60,
        })
    }
}

impl Controller for PolicyController {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn period_seconds(&self, _params: &ReplayParams, _step_seconds: i64) -> i64 {
        self.interval_seconds
    }

    fn wants_full_metrics(&self) -> bool {
        self.kinds.iter().any(|(_, s)| *s != Signal::Utilization)
    }

    fn history_periods(&self) -> usize {
        HISTORY_PERIODS
    }

    /// Starts at the requirement of the first step within the group's bounds (a group sized
    /// for the load before the replay began).
    fn start(&mut self, ctx: &StartContext<'_>) -> u32 {
        self.metric_period_seconds = ctx.params.metric_period.as_secs() as i64;
        let first = requirement_per_step(ctx.demand)
            .first()
            .copied()
            .unwrap_or(1);
        first.clamp(self.group.min, self.group.max.max(self.group.min))
    }

    fn decide(&mut self, view: &View<'_>) -> u32 {
        let mut metrics = MetricWindows::new();
        for (kind, signal) in &self.kinds {
            let mut samples = Vec::with_capacity(HISTORY_PERIODS);
            for back in (0..HISTORY_PERIODS).rev() {
                let value = view.signal(*signal, back);
                let at = view.at() - TimeDelta::seconds(self.metric_period_seconds * back as i64);
                if back > 0 && value.is_none() && samples.is_empty() {
                    // Before the replay had data: no sample at all.
                    continue;
                }
                samples.push(Sample {
                    at,
                    value: value.unwrap_or(f64::NAN),
                });
            }
            metrics.insert(kind.clone(), samples);
        }
        let snapshot = GroupSnapshot {
            id: self.group.provider_id().to_owned(),
            desired: view.desired,
            ready: view.ready,
            pending: view.pending,
            provider_min: 0,
            provider_max: u32::MAX,
            instance_class: "replay".to_owned(),
        };
        let observation = Observation {
            now: view.at(),
            group: &snapshot,
            metrics: &metrics,
            forecast: None,
        };
        let decision = decide(&self.group, &observation, &mut self.memory);
        if std::env::var_os("HOIST_EVAL_DEBUG").is_some() && view.tick < 2000 {
            eprintln!(
                "{} {} {:?} {:?}",
                view.at(),
                view.desired,
                decision.desired,
                decision.reasons
            );
        }
        if !decision.dry_run {
            self.memory.record_applied(&decision);
            decision.desired
        } else {
            view.desired
        }
    }
}
