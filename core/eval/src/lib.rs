//! Scoring scaling policies on demand traces: the replay model, the metrics, the oracles and the
//! baselines of `EVALUATION.md`.
//!
//! A [`Demand`] is a trace scaled to instances (`D(t) = ceil(d(t) / capacity)`). [`replay`] plays
//! it step by step against a [`Controller`] (a baseline, an oracle, or a policy file through the
//! policy engine) and returns a [`Score`]: θ_U, θ_O, τ_U, τ_O, jitter, under- and over-provisioned
//! instance-hours, cost and scaling actions. [`simulate`] runs one policy together with the two
//! oracles and gives the cost ratios.
//!
//! # Relationship with the simulated cloud
//!
//! `hoist_sim` is a per-instance simulated cloud provider (instances with ids, states,
//! zones, spot interruptions) behind the provider traits; `hoist run` drives it. Scoring needs
//! something else: millions of steps per second, so the replay here keeps supply as counts and
//! a queue of booting cohorts, with no per-instance objects and no async calls. Both follow the
//! same model (boot delay, billing from the request, removal stops billing at once), so a policy
//! behaves the same way in both; this module is the one that measures it.
//!
//! # The model in brief
//!
//! - Time advances in ticks of `tick_seconds`, the greatest common divisor of the trace step, the
//!   controller's period, the boot delay, the metric lag and the metric period, so every event
//!   falls on a tick. Demand is constant over a trace step.
//! - An instance asked for at `t` is ready at `t + boot_delay` and billed from `t`; a removed
//!   instance stops serving and being billed at once. Billing is per second with a minimum charge
//!   or per started hour (see [`Billing`]).
//! - Controllers see metrics averaged over the metric period and delayed by the metric lag; a
//!   trace gap is a missing metric, never zero demand, and gap steps are not scored.
//! - The replay has no random element (spot interruptions are not modelled), so a run is fully
//!   determined by its parameters; the seed is recorded for future random elements.

mod baselines;
pub mod budget;
pub mod compare;
mod fleet;
pub mod hpa;
pub mod oracle;
pub mod policy;
mod replay;
pub mod rightsize;
mod score;
pub mod svg;
pub mod target_tracking;
pub mod tracegen;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use hoist_sim::trace::Trace;

// The provider SDK's modules under the names this crate's code uses.
pub(crate) use hoist_api::{duration, model};

pub use baselines::{Baseline, StaticCapacity};
pub use fleet::Removal;
pub use replay::{
    Controller, QUEUE_LIMIT_SECONDS, ReplayOptions, ReplayOutcome, SeriesPoint, Signal,
    StartContext, View, replay, requirement_per_step, tick_seconds,
};
pub use score::Score;

/// How instances are billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Billing {
    /// By the second, with a minimum charge per instance (AWS, Azure and GCP Linux VMs: 60 s).
    PerSecond {
        /// The minimum billed time per instance, seconds.
        minimum_seconds: u64,
    },
    /// By started hour (every started hour is billed in full).
    PerHour,
}

impl Billing {
    /// Parses `per-second`, `per-second:90s` (a minimum other than 60 s) or `per-hour`.
    pub fn parse(text: &str) -> Result<Billing, String> {
        let text = text.trim();
        if text == "per-hour" {
            return Ok(Billing::PerHour);
        }
        if text == "per-second" {
            return Ok(Billing::PerSecond {
                minimum_seconds: 60,
            });
        }
        if let Some(minimum) = text.strip_prefix("per-second:") {
            let minimum = crate::duration::parse_duration(minimum)?;
            return Ok(Billing::PerSecond {
                minimum_seconds: minimum.as_secs(),
            });
        }
        Err(format!(
            "unknown billing model {text:?}; use `per-second`, `per-second:<minimum>` (e.g. per-second:60s) or `per-hour`"
        ))
    }

    /// What one instance costs for `age_seconds` of life at `price_per_hour`.
    pub fn charge(self, age_seconds: i64, price_per_hour: f64) -> f64 {
        let age = age_seconds.max(0);
        match self {
            Billing::PerSecond { minimum_seconds } => {
                age.max(minimum_seconds as i64) as f64 * price_per_hour / 3600.0
            }
            Billing::PerHour => ((age.max(1) + 3599) / 3600) as f64 * price_per_hour,
        }
    }
}

impl fmt::Display for Billing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Billing::PerSecond { minimum_seconds } => {
                write!(f, "per-second (minimum {minimum_seconds} s)")
            }
            Billing::PerHour => f.write_str("per-hour"),
        }
    }
}

/// The parameters of a replay: everything needed to re-run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayParams {
    /// The trace is scaled so that the peak of the whole trace needs this many instances.
    pub peak_instances: u32,
    /// Time from asking for an instance to it serving.
    #[serde(with = "seconds")]
    pub boot_delay: Duration,
    /// Delay of the metric pipeline.
    #[serde(with = "seconds")]
    pub metric_lag: Duration,
    /// Averaging period of the metrics.
    #[serde(with = "seconds")]
    pub metric_period: Duration,
    /// Billing model.
    pub billing: Billing,
    /// Price of one instance per hour.
    pub price_per_hour: f64,
    /// Lower bound of capacity for every controller except O1.
    pub min_instances: u32,
    /// Upper bound of capacity for every controller except O1.
    pub max_instances: u32,
    /// Work units per second one instance serves at 100 % utilisation (for the request-rate,
    /// queue and latency signals a policy file may scale on).
    pub capacity_per_instance: f64,
    /// Target utilisation of the reactive baselines.
    pub target_utilization: f64,
    /// Seed (the replay has no random element yet; recorded so a run can be repeated).
    pub seed: u64,
}

impl Default for ReplayParams {
    fn default() -> Self {
        ReplayParams {
            peak_instances: 100,
            boot_delay: Duration::from_secs(120),
            metric_lag: Duration::from_secs(60),
            metric_period: Duration::from_secs(60),
            billing: Billing::PerSecond {
                minimum_seconds: 60,
            },
            price_per_hour: 0.10,
            min_instances: 1,
            max_instances: 10_000,
            capacity_per_instance: 100.0,
            target_utilization: 0.7,
            seed: 0,
        }
    }
}

impl ReplayParams {
    /// Checks the parameters, naming the wrong one.
    pub fn validate(&self) -> Result<(), EvalError> {
        let bad = |what: String| Err(EvalError::Parameter(what));
        use hoist_api::input::{MAX_AMOUNT, MAX_INSTANCES, MAX_PRICE_PER_HOUR, number};
        if self.peak_instances == 0 {
            return bad("peak instances must be at least 1".into());
        }
        for (name, n) in [
            ("peak instances", self.peak_instances),
            ("max instances", self.max_instances),
        ] {
            if n > MAX_INSTANCES {
                return bad(format!(
                    "{name} {n} is above the limit of {MAX_INSTANCES} instances a group may have"
                ));
            }
        }
        if self.min_instances > self.max_instances {
            return bad(format!(
                "min instances {} is above max instances {}",
                self.min_instances, self.max_instances
            ));
        }
        if !(self.price_per_hour.is_finite()
            && (0.0..=MAX_PRICE_PER_HOUR).contains(&self.price_per_hour))
        {
            return bad(format!(
                "price per hour {} must be in [0, {MAX_PRICE_PER_HOUR}]",
                number(self.price_per_hour)
            ));
        }
        if !(self.capacity_per_instance.is_finite()
            && (1e-6..=MAX_AMOUNT).contains(&self.capacity_per_instance))
        {
            return bad(format!(
                "capacity per instance {} must be in [1e-6, {MAX_AMOUNT:e}]",
                number(self.capacity_per_instance)
            ));
        }
        if !(self.target_utilization >= 0.01 && self.target_utilization <= 1.0) {
            return bad(format!(
                "target utilisation {} must be in [0.01, 1]",
                number(self.target_utilization)
            ));
        }
        if self.metric_period.as_secs() == 0 {
            return bad("metric period must be at least 1 s".into());
        }
        for (name, d) in [
            ("boot delay", self.boot_delay),
            ("metric lag", self.metric_lag),
            ("metric period", self.metric_period),
        ] {
            if d.subsec_nanos() != 0 {
                return bad(format!("{name} must be whole seconds, got {d:?}"));
            }
            // The replay keeps a ring of every tick of the lag and the period.
            if d > std::time::Duration::from_secs(86_400) {
                return bad(format!(
                    "{name} must be at most 1d, got {}",
                    hoist_api::duration::format_duration(d)
                ));
            }
        }
        Ok(())
    }
}

mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

/// What went wrong while preparing or running an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A parameter is out of range.
    #[error("invalid parameter: {0}")]
    Parameter(String),
    /// The trace cannot be replayed.
    #[error("trace {name}: {what}")]
    Trace {
        /// Trace name.
        name: String,
        /// What is wrong.
        what: String,
    },
}

/// How a trace maps to instances: fixed on the whole trace so that train and test windows share
/// one scale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scale {
    /// Instances needed per unit of the trace's value (`peak_instances / trace peak`).
    pub instances_per_unit: f64,
    /// The peak of the whole trace, in its own unit.
    pub trace_peak: f64,
    /// Instances the whole trace's peak needs.
    pub peak_instances: u32,
    /// Mean of D(t) over the whole trace (gaps skipped), instances.
    pub mean_instances: f64,
}

impl Scale {
    /// The scale that makes the peak of `whole` need `peak_instances`.
    pub fn for_peak(whole: &Trace, peak_instances: u32) -> Result<Scale, EvalError> {
        let peak = whole.max().ok_or_else(|| EvalError::Trace {
            name: whole.name.clone(),
            what: "has no data".into(),
        })?;
        if peak <= 0.0 {
            return Err(EvalError::Trace {
                name: whole.name.clone(),
                what: "peak is 0: nothing to scale".into(),
            });
        }
        let instances_per_unit = f64::from(peak_instances) / peak;
        let (sum, n) = whole
            .values
            .iter()
            .flatten()
            .fold((0.0, 0usize), |(s, n), v| {
                (
                    s + f64::from(instances_needed(v * instances_per_unit)),
                    n + 1,
                )
            });
        Ok(Scale {
            instances_per_unit,
            trace_peak: peak,
            peak_instances,
            mean_instances: sum / n.max(1) as f64,
        })
    }
}

/// `ceil(x)` in instances, forgiving the rounding error of the scale (so the peak needs exactly
/// `peak_instances`, not one more).
pub fn instances_needed(instances: f64) -> u32 {
    let x = (instances - 1e-9).ceil();
    if x <= 0.0 {
        0
    } else if x >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        x as u32
    }
}

/// A demand trace scaled to instances: what a replay consumes.
#[derive(Debug, Clone, PartialEq)]
pub struct Demand {
    /// Trace name.
    pub name: String,
    /// Time of the first step.
    pub start: chrono::DateTime<chrono::Utc>,
    /// Trace step, seconds.
    pub step_seconds: i64,
    /// Demand per step in instances (fractional `d(t) / capacity`); `None` is a gap.
    pub instances: Vec<Option<f64>>,
    /// D(t) per step (`ceil` of `instances`).
    pub needed: Vec<Option<u32>>,
    /// The scale used.
    pub scale: Scale,
}

impl Demand {
    /// Scales `trace` (usually a window of the trace `scale` was computed on).
    pub fn new(trace: &Trace, scale: Scale) -> Result<Demand, EvalError> {
        let step_seconds = trace.step.num_seconds();
        if step_seconds <= 0 || trace.step.subsec_nanos() != 0 {
            return Err(EvalError::Trace {
                name: trace.name.clone(),
                what: format!("step {} is not a whole number of seconds", trace.step),
            });
        }
        if trace.values.iter().all(Option::is_none) {
            return Err(EvalError::Trace {
                name: trace.name.clone(),
                what: "the window has no data".into(),
            });
        }
        let instances: Vec<Option<f64>> = trace
            .values
            .iter()
            .map(|v| v.map(|v| v * scale.instances_per_unit))
            .collect();
        let needed = instances.iter().map(|v| v.map(instances_needed)).collect();
        Ok(Demand {
            name: trace.name.clone(),
            start: trace.start,
            step_seconds,
            instances,
            needed,
            scale,
        })
    }

    /// The steps from `from` on (all of them when `from` is 0, none past the end).
    pub fn tail(&self, from: usize) -> Demand {
        let from = from.min(self.len());
        Demand {
            name: self.name.clone(),
            start: self.start + chrono::TimeDelta::seconds(self.step_seconds * from as i64),
            step_seconds: self.step_seconds,
            instances: self.instances[from..].to_vec(),
            needed: self.needed[from..].to_vec(),
            scale: self.scale,
        }
    }

    /// Steps, gaps included.
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// Whether there are no steps.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }
}

/// A built-in policy: the oracles and the baselines of `EVALUATION.md`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuiltIn {
    /// Perfect and instant: S(t) = D(t).
    O1,
    /// Perfect foresight under boot delay, bounds and billing; cost-optimal, never under.
    O2,
    /// Max D of the whole trace, constant.
    StaticPeak,
    /// Mean D of the whole trace, constant.
    StaticMean,
    /// The Kubernetes Horizontal Pod Autoscaler algorithm.
    Hpa,
    /// AWS-style target tracking.
    TargetTracking,
}

impl BuiltIn {
    /// Every built-in, in report order.
    pub const ALL: [BuiltIn; 6] = [
        BuiltIn::O1,
        BuiltIn::O2,
        BuiltIn::StaticPeak,
        BuiltIn::StaticMean,
        BuiltIn::Hpa,
        BuiltIn::TargetTracking,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BuiltIn::O1 => "o1",
            BuiltIn::O2 => "o2",
            BuiltIn::StaticPeak => "static-peak",
            BuiltIn::StaticMean => "static-mean",
            BuiltIn::Hpa => "hpa",
            BuiltIn::TargetTracking => "target-tracking",
        }
    }

    /// The built-in called `name`, if any.
    pub fn parse(name: &str) -> Option<BuiltIn> {
        BuiltIn::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Whether this is a reactive baseline with a target utilisation (swept for the frontier).
    pub fn is_reactive(self) -> bool {
        matches!(self, BuiltIn::Hpa | BuiltIn::TargetTracking)
    }

    /// A controller for this built-in (O1 has none: it is computed in closed form).
    pub fn controller(self, params: &ReplayParams, scale: &Scale) -> Option<Box<dyn Controller>> {
        let min = params.min_instances;
        let max = params.max_instances;
        let target = params.target_utilization;
        match self {
            BuiltIn::O1 => None,
            BuiltIn::O2 => Some(Box::new(oracle::O2::default())),
            BuiltIn::StaticPeak => Some(Box::new(StaticCapacity::new(
                "static-peak",
                scale.peak_instances,
            ))),
            BuiltIn::StaticMean => Some(Box::new(StaticCapacity::new(
                "static-mean",
                instances_needed(scale.mean_instances),
            ))),
            BuiltIn::Hpa => Some(Box::new(Baseline::Hpa(hpa::Hpa::new(
                hpa::HpaConfig::kubernetes_default(target, min, max),
            )))),
            BuiltIn::TargetTracking => Some(Box::new(Baseline::TargetTracking(
                target_tracking::TargetTracking::new(
                    target_tracking::TargetTrackingConfig::aws_default(target, min, max),
                ),
            ))),
        }
    }
}

/// The result of [`simulate`]: one policy's score with its cost ratios to both oracles.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimulationResult {
    /// The policy's name.
    pub policy: String,
    /// Its score.
    pub score: Score,
    /// Cost / cost of O1.
    pub cost_ratio_o1: f64,
    /// Cost / cost of O2.
    pub cost_ratio_o2: f64,
    /// O1's cost.
    pub o1_cost: f64,
    /// O2's cost.
    pub o2_cost: f64,
    /// O2's certified lower bound; O2 is proven optimal when its cost equals it.
    pub o2_lower_bound_cost: f64,
    /// Whether O2's cost equals the lower bound (so O2 is exactly optimal on this run).
    pub o2_exact: bool,
    /// The replay tick, seconds.
    pub tick_seconds: i64,
    /// Per-step series, when asked for.
    #[serde(skip)]
    pub series: Vec<SeriesPoint>,
    /// What the controller's scored decisions rested on ([`Controller::tally`]).
    #[serde(skip)]
    pub tally: Vec<(String, u64)>,
}

/// O1 and O2 on one demand: computed once, shared by every policy scored on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Oracles {
    /// O1's score.
    pub o1: Score,
    /// O2's score.
    pub o2: Score,
    /// O2's certified lower bound on cost.
    pub o2_lower_bound_cost: f64,
}

impl Oracles {
    /// Computes both oracles on `demand`.
    pub fn compute(demand: &Demand, params: &ReplayParams) -> Result<Oracles, EvalError> {
        let o1 = oracle::o1_score(demand, params);
        let mut o2 = oracle::O2::default();
        let outcome = replay(demand, params, &mut o2, ReplayOptions::default())?;
        Ok(Oracles {
            o1,
            o2: outcome.score,
            o2_lower_bound_cost: o2.lower_bound_cost(),
        })
    }

    /// Whether O2's replayed cost equals its lower bound (relative tolerance 1e-9).
    pub fn o2_exact(&self) -> bool {
        self.o2.cost <= self.o2_lower_bound_cost * (1.0 + 1e-9) + 1e-12
    }

    /// Scores `score` against the oracles.
    pub fn result(
        &self,
        policy: &str,
        score: Score,
        tick_seconds: i64,
        series: Vec<SeriesPoint>,
    ) -> SimulationResult {
        SimulationResult {
            policy: policy.to_owned(),
            cost_ratio_o1: ratio(score.cost, self.o1.cost),
            cost_ratio_o2: ratio(score.cost, self.o2.cost),
            score,
            o1_cost: self.o1.cost,
            o2_cost: self.o2.cost,
            o2_lower_bound_cost: self.o2_lower_bound_cost,
            o2_exact: self.o2_exact(),
            tick_seconds,
            series,
            tally: Vec::new(),
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else if a > 0.0 {
        f64::INFINITY
    } else {
        1.0
    }
}

/// Replays `controller` on `demand` and scores it against both oracles. For O1 pass `None`.
///
/// The first `options.warmup_steps` steps of `demand` are the warm-up: a controller that does
/// not read the demand runs through them unscored; the oracles, and controllers that read the
/// demand, see only the scored steps.
pub fn simulate(
    demand: &Demand,
    params: &ReplayParams,
    name: &str,
    controller: Option<Box<dyn Controller>>,
    options: ReplayOptions,
) -> Result<SimulationResult, EvalError> {
    params.validate()?;
    let scored = demand.tail(options.warmup_steps);
    let oracles = Oracles::compute(&scored, params)?;
    match controller {
        None => {
            let series = if options.record_series {
                oracle::o1_series(&scored, params.price_per_hour)
            } else {
                Vec::new()
            };
            Ok(oracles.result(name, oracles.o1.clone(), scored.step_seconds, series))
        }
        Some(mut controller) => {
            let outcome = replay_warm(demand, params, &mut *controller, options)?;
            let mut result =
                oracles.result(name, outcome.score, outcome.tick_seconds, outcome.series);
            result.tally = outcome.tally;
            Ok(result)
        }
    }
}

/// [`replay`] with the warm-up of `options`, except for a controller that reads the demand
/// ([`Controller::reads_demand`]): that one is replayed on the scored steps alone.
pub fn replay_warm(
    demand: &Demand,
    params: &ReplayParams,
    controller: &mut dyn Controller,
    options: ReplayOptions,
) -> Result<ReplayOutcome, EvalError> {
    if controller.reads_demand() && options.warmup_steps > 0 {
        let scored = demand.tail(options.warmup_steps);
        let options = ReplayOptions {
            warmup_steps: 0,
            ..options
        };
        replay(&scored, params, controller, options)
    } else {
        replay(demand, params, controller, options)
    }
}
