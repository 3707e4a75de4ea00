//! AWS-style target tracking (EC2 Auto Scaling), as a state machine.
//!
//! Rules and where they come from (Amazon EC2 Auto Scaling User Guide, "Target tracking scaling
//! policies" and "Set the default instance warmup"):
//!
//! - The policy owns two CloudWatch alarms on the metric's 1-minute datapoints: the scale-out
//!   alarm fires when **3 consecutive** datapoints are above the target, the scale-in alarm when
//!   **15 consecutive** datapoints are below it. A missing datapoint breaks a streak.
//! - Capacity is adjusted in proportion to the metric: the capacity needed is
//!   `measured instances × metric / target`; the policy **rounds up the instances to add** and **rounds down
//!   the instances to remove** (so it never removes the capacity that would bring the metric over
//!   target), which with a whole current capacity gives `ceil(needed)` both ways.
//! - **Warm-up** (default 300 s from launch): instances in warm-up are not counted in the
//!   group's aggregated metric, they count toward desired capacity (so a scale-out during
//!   warm-up only adds what is still missing), and **scale-in does not happen while any
//!   instance is warming up**.
//! - While the scale-out alarm stays in ALARM the policy is re-evaluated every period.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Target tracking settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetTrackingConfig {
    /// Target utilisation, 0..=1.
    pub target_utilization: f64,
    /// Datapoint period (and evaluation period), seconds.
    pub period_seconds: i64,
    /// Consecutive datapoints above target to scale out.
    pub scale_out_periods: usize,
    /// Consecutive datapoints below target to scale in.
    pub scale_in_periods: usize,
    /// Instance warm-up from launch, seconds.
    pub warmup_seconds: i64,
    /// Group minimum.
    pub min_capacity: u32,
    /// Group maximum.
    pub max_capacity: u32,
}

impl TargetTrackingConfig {
    /// AWS's rules: 1-minute datapoints, 3 to scale out, 15 to scale in, 300 s warm-up.
    pub fn aws_default(target_utilization: f64, min_capacity: u32, max_capacity: u32) -> Self {
        TargetTrackingConfig {
            target_utilization,
            period_seconds: 60,
            scale_out_periods: 3,
            scale_in_periods: 15,
            warmup_seconds: 300,
            min_capacity,
            max_capacity,
        }
    }
}

/// The policy's state: recent datapoints.
#[derive(Debug, Clone)]
pub struct TargetTracking {
    config: TargetTrackingConfig,
    datapoints: VecDeque<Option<f64>>,
}

impl TargetTracking {
    /// A fresh policy.
    pub fn new(config: TargetTrackingConfig) -> Self {
        TargetTracking {
            config,
            datapoints: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TargetTrackingConfig {
        &self.config
    }

    fn streak<F: Fn(f64) -> bool>(&self, n: usize, breach: F) -> bool {
        self.datapoints.len() >= n
            && self
                .datapoints
                .iter()
                .rev()
                .take(n)
                .all(|d| d.is_some_and(&breach))
    }

    /// One evaluation with a new datapoint (`None`: missing). `desired` is the group's desired
    /// capacity, `measured` the in-service instances the datapoint was measured on (their mean
    /// over its period), `warming` those (booting or ready) still in
    /// warm-up. Returns the new desired capacity.
    pub fn evaluate(
        &mut self,
        desired: u32,
        measured: f64,
        warming: u32,
        datapoint: Option<f64>,
    ) -> u32 {
        let keep = self
            .config
            .scale_out_periods
            .max(self.config.scale_in_periods);
        self.datapoints.push_back(datapoint);
        while self.datapoints.len() > keep {
            self.datapoints.pop_front();
        }
        let target = self.config.target_utilization;
        let (min, max) = (self.config.min_capacity, self.config.max_capacity);
        let Some(latest) = datapoint else {
            return desired.clamp(min, max);
        };
        // Capacity needed; 1e-9 forgives float error so that e.g. 10 × 0.98 / 0.7 is 14, not
        // 14.000000000000002.
        let needed = latest * measured / target - 1e-9;
        if self.streak(self.config.scale_out_periods, |v| v > target) {
            // Round up the instances to add.
            let add = (needed - f64::from(desired)).ceil();
            if add > 0.0 {
                return (f64::from(desired) + add).min(f64::from(max)) as u32;
            }
        } else if warming == 0 && self.streak(self.config.scale_in_periods, |v| v < target) {
            // Round down the instances to remove.
            let remove = (f64::from(desired) - needed).floor();
            if remove > 0.0 {
                return (f64::from(desired) - remove).max(f64::from(min)) as u32;
            }
        }
        desired.clamp(min, max)
    }
}
