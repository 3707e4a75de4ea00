//! The Kubernetes Horizontal Pod Autoscaler (autoscaling/v2), as a state machine.
//!
//! Follows the controller in `kubernetes/pkg/controller/podautoscaler` and the documentation
//! page "Horizontal Pod Autoscaling" (kubernetes.io/docs/tasks/run-application/
//! horizontal-pod-autoscale/). Each rule below names where it comes from.
//!
//! - **Sync period 15 s** (`--horizontal-pod-autoscaler-sync-period`, default 15 s).
//! - **Replica formula** (`replica_calculator.go`, `GetResourceReplicas`): the usage ratio is
//!   the mean utilisation of ready pods over the target; within the **tolerance** (0.1,
//!   `--horizontal-pod-autoscaler-tolerance`) the current replica count is kept; otherwise
//!   `ceil(ratio × ready pods)`.
//! - **Not-yet-ready pods** (docs, "Algorithm details"; `replica_calculator.go`): when the
//!   ratio says scale up and some pods are not ready (booting instances here), they are counted
//!   as using 0 % and the ratio is recomputed over all pods; if that makes the change vanish
//!   (within tolerance) or flip direction, nothing changes.
//! - **No metrics** (`horizontal.go`, `reconcileAutoscaler`): when the metric cannot be computed
//!   the HPA does not scale and records no recommendation. With zero replicas, autoscaling is off.
//! - **Stabilisation** (`horizontal.go`, `stabilizeRecommendationWithBehaviors`): the raw
//!   recommendation is stored with its time; the result is the current replica count pulled up to
//!   the minimum of recommendations in the scale-up window (default 0 s: the current one) and down
//!   to the maximum in the scale-down window (default **300 s**).
//! - **Rate limits** (`horizontal.go`, `convertDesiredReplicasWithBehaviorRate`,
//!   `calculateScaleUpLimitWithScalingRules`, `calculateScaleDownLimitWithBehaviors`): for each
//!   policy, `periodStartReplicas = current − added + removed` within the policy's period
//!   (events strictly newer than `now − period`); `Pods` adds/removes `value`; `Percent` up is
//!   `ceil(start × (1 + v/100))`, down is `trunc(start × (1 − v/100))`; `selectPolicy: Max`
//!   takes the policy allowing the largest change; a limit stops at the current count, never
//!   reversing the direction. Defaults (docs, "Default behavior"): up `max(4 pods, 100 %)` per
//!   15 s; down 100 % per 15 s after the 300 s window. (An empty `policies` list, which the
//!   Kubernetes API refuses, leaves the direction unlimited.)
//! - Bounds `minReplicas`/`maxReplicas` clamp the result.
//!
//! The metric is the utilisation the replay delivers (lagged and averaged like metrics-server's
//! window). The CPU initialisation period (pods whose first samples are discarded for 5 min after
//! start) is not modelled: a booting instance is simply a not-ready pod until its boot delay ends.
//!
//! Tolerance, stabilisation and rate limits are not implemented here: they are
//! [`hoist_engine::hpa`], the rules the engine's `target_tracking` policy runs, so the baseline
//! and the policy cannot drift apart. This module keeps the replica formula with its
//! not-yet-ready pods, the bounds and the controller's memory (recommendations and scale events).

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use hoist_engine::config::{Behavior, LimitAmount, RateLimit, Select};
use hoist_engine::hpa;
use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;

/// One scaling policy of `behavior.scaleUp` / `behavior.scaleDown`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum HpaPolicy {
    /// At most `value` pods per `period_seconds`.
    Pods {
        /// Pods.
        value: u32,
        /// Period, seconds.
        period_seconds: i64,
    },
    /// At most `value` % of the replicas at the period's start per `period_seconds`.
    Percent {
        /// Percent.
        value: u32,
        /// Period, seconds.
        period_seconds: i64,
    },
}

impl HpaPolicy {
    fn period_seconds(self) -> i64 {
        match self {
            HpaPolicy::Pods { period_seconds, .. } | HpaPolicy::Percent { period_seconds, .. } => {
                period_seconds
            }
        }
    }

    /// The same limit as the engine's policy files write it.
    fn rate_limit(self) -> RateLimit {
        let amount = match self {
            HpaPolicy::Pods { value, .. } => LimitAmount::Instances(value),
            HpaPolicy::Percent { value, .. } => LimitAmount::Percent(f64::from(value)),
        };
        RateLimit {
            amount,
            period: seconds(self.period_seconds()),
        }
    }
}

fn seconds(s: i64) -> HumanDuration {
    HumanDuration::from_secs(u64::try_from(s).unwrap_or(0))
}

/// `selectPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HpaSelect {
    /// The policy allowing the largest change (the default).
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// `behavior.scaleUp` or `behavior.scaleDown`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HpaRules {
    /// Stabilisation window, seconds.
    pub stabilization_window_seconds: i64,
    /// Rate-limit policies.
    pub policies: Vec<HpaPolicy>,
    /// How policies combine.
    pub select: HpaSelect,
}

impl HpaRules {
    /// The same rules as the engine's policy files write them.
    fn behavior(&self) -> Behavior {
        Behavior {
            stabilization_window: seconds(self.stabilization_window_seconds),
            limits: self.policies.iter().map(|p| p.rate_limit()).collect(),
            select: match self.select {
                HpaSelect::Max => Select::Max,
                HpaSelect::Min => Select::Min,
                HpaSelect::Disabled => Select::Disabled,
            },
        }
    }
}

/// An HPA's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HpaConfig {
    /// Target mean utilisation, 0..=1.
    pub target_utilization: f64,
    /// Tolerance around a ratio of 1.
    pub tolerance: f64,
    /// Controller sync period, seconds.
    pub sync_period_seconds: i64,
    /// Scale-up behaviour.
    pub scale_up: HpaRules,
    /// Scale-down behaviour.
    pub scale_down: HpaRules,
    /// `minReplicas`.
    pub min_replicas: u32,
    /// `maxReplicas`.
    pub max_replicas: u32,
}

impl HpaConfig {
    /// The Kubernetes defaults: tolerance 0.1, 15 s sync, up `max(4 pods, 100 %)` per 15 s
    /// with no window, down 100 % per 15 s with a 300 s window.
    pub fn kubernetes_default(
        target_utilization: f64,
        min_replicas: u32,
        max_replicas: u32,
    ) -> Self {
        HpaConfig {
            target_utilization,
            tolerance: 0.1,
            sync_period_seconds: 15,
            scale_up: HpaRules {
                stabilization_window_seconds: 0,
                policies: vec![
                    HpaPolicy::Pods {
                        value: 4,
                        period_seconds: 15,
                    },
                    HpaPolicy::Percent {
                        value: 100,
                        period_seconds: 15,
                    },
                ],
                select: HpaSelect::Max,
            },
            scale_down: HpaRules {
                stabilization_window_seconds: 300,
                policies: vec![HpaPolicy::Percent {
                    value: 100,
                    period_seconds: 15,
                }],
                select: HpaSelect::Max,
            },
            min_replicas,
            max_replicas,
        }
    }
}

/// Both directions' rules as the engine writes them.
#[derive(Debug, Clone)]
struct Behaviors {
    scale_up: Behavior,
    scale_down: Behavior,
}

/// The HPA's state: stored recommendations and scale events.
#[derive(Debug, Clone)]
pub struct Hpa {
    config: HpaConfig,
    /// `config.scale_up` and `config.scale_down` for [`hoist_engine::hpa`].
    behavior: Box<Behaviors>,
    recommendations: VecDeque<(i64, u32)>,
    scale_up_events: VecDeque<(i64, u32)>,
    scale_down_events: VecDeque<(i64, u32)>,
}

impl Hpa {
    /// A fresh HPA.
    pub fn new(config: HpaConfig) -> Self {
        Hpa {
            behavior: Box::new(Behaviors {
                scale_up: config.scale_up.behavior(),
                scale_down: config.scale_down.behavior(),
            }),
            config,
            recommendations: VecDeque::new(),
            scale_up_events: VecDeque::new(),
            scale_down_events: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HpaConfig {
        &self.config
    }

    /// The replica count from the metric alone (`GetResourceReplicas`), before stabilisation and
    /// rate limits; `None` when there is no metric.
    pub fn metric_replicas(
        &self,
        current: u32,
        ready: u32,
        unready: u32,
        utilization: Option<f64>,
    ) -> Option<u32> {
        let u = utilization?;
        if ready == 0 {
            return None;
        }
        let tol = self.config.tolerance;
        let usage_ratio = u / self.config.target_utilization;
        let scale_up_with_unready = unready > 0 && usage_ratio > 1.0;
        if !scale_up_with_unready {
            if hpa::within_tolerance(usage_ratio, tol) {
                return Some(current);
            }
            return Some(ceil_u32(usage_ratio * f64::from(ready)));
        }
        // Not-yet-ready pods count as 0 % of the target.
        let all = f64::from(ready + unready);
        let new_ratio = u * f64::from(ready) / (all * self.config.target_utilization);
        if hpa::within_tolerance(new_ratio, tol) || new_ratio < 1.0 {
            return Some(current);
        }
        let new_replicas = ceil_u32(new_ratio * all);
        if new_replicas < current {
            return Some(current);
        }
        Some(new_replicas)
    }

    /// One reconciliation at `now_seconds` with `current` = the scale's `spec.replicas`;
    /// returns the new replica count.
    pub fn reconcile(
        &mut self,
        now_seconds: i64,
        current: u32,
        ready: u32,
        unready: u32,
        utilization: Option<f64>,
    ) -> u32 {
        let (min, max) = (self.config.min_replicas, self.config.max_replicas);
        if current == 0 {
            return 0;
        }
        let desired = if current > max {
            max
        } else if current < min {
            min
        } else {
            let Some(raw) = self.metric_replicas(current, ready, unready, utilization) else {
                return current;
            };
            let stabilized = self.stabilize(now_seconds, current, raw);
            let limited = hpa::rate_limit(
                current,
                stabilized,
                &self.behavior.scale_up,
                &self.behavior.scale_down,
                |period| self.changes(now_seconds, period.num_seconds()),
            );
            limited.clamp(min, max)
        };
        self.record_event(now_seconds, current, desired);
        desired
    }

    fn stabilize(&mut self, now: i64, current: u32, raw: u32) -> u32 {
        let stabilized = hpa::stabilize(
            current,
            raw,
            time(now),
            &self.behavior.scale_up,
            &self.behavior.scale_down,
            self.recommendations
                .iter()
                .map(|&(at, rec)| (time(at), rec)),
        );
        let oldest = now
            - self
                .config
                .scale_up
                .stabilization_window_seconds
                .max(self.config.scale_down.stabilization_window_seconds);
        while self
            .recommendations
            .front()
            .is_some_and(|&(at, _)| at <= oldest)
        {
            self.recommendations.pop_front();
        }
        self.recommendations.push_back((now, raw));
        stabilized
    }

    /// Replicas added and removed in `(now − period, now]`.
    fn changes(&self, now: i64, period: i64) -> (i64, i64) {
        (
            i64::from(Self::change_in_period(&self.scale_up_events, now, period)),
            i64::from(Self::change_in_period(&self.scale_down_events, now, period)),
        )
    }

    fn change_in_period(events: &VecDeque<(i64, u32)>, now: i64, period: i64) -> u32 {
        let cutoff = now - period;
        events
            .iter()
            .rev()
            .take_while(|&&(at, _)| at > cutoff)
            .map(|&(_, n)| n)
            .sum()
    }

    fn record_event(&mut self, now: i64, before: u32, after: u32) {
        let longest = |rules: &HpaRules| {
            rules
                .policies
                .iter()
                .map(|p| p.period_seconds())
                .max()
                .unwrap_or(0)
        };
        let keep_up = longest(&self.config.scale_up);
        let keep_down = longest(&self.config.scale_down);
        while self
            .scale_up_events
            .front()
            .is_some_and(|&(at, _)| at <= now - keep_up)
        {
            self.scale_up_events.pop_front();
        }
        while self
            .scale_down_events
            .front()
            .is_some_and(|&(at, _)| at <= now - keep_down)
        {
            self.scale_down_events.pop_front();
        }
        if after > before {
            self.scale_up_events.push_back((now, after - before));
        } else if after < before {
            self.scale_down_events.push_back((now, before - after));
        }
    }
}

/// Seconds since the epoch as a time, for [`hoist_engine::hpa`].
fn time(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

fn ceil_u32(x: f64) -> u32 {
    let c = x.ceil();
    if c <= 0.0 {
        0
    } else if c >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        c as u32
    }
}
