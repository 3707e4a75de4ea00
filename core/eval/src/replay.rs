//! The replay loop: a demand, a controller, a fleet of counts, the metric pipeline and the score.
//!
//! Each tick, in order: booting cohorts whose boot delay has passed become ready; on the
//! controller's period it decides a desired capacity from what it can see (metrics that end
//! `metric_lag` before now, averaged over `metric_period`); the fleet launches or removes the
//! difference; the tick is scored with the ready count; the tick's metrics enter the pipeline.
//! Nothing here allocates per tick, so a year of one-minute steps replays in well under a
//! second (see `core/benches/replay.rs`).

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};

use super::fleet::{Fleet, Removal};
use super::score::{Score, ScoreAcc};
use super::{Demand, EvalError, ReplayParams};

/// What a controller is asked at the start of a replay.
#[derive(Debug, Clone, Copy)]
pub struct StartContext<'a> {
    /// The demand being replayed (oracles read it; reactive controllers must not).
    pub demand: &'a Demand,
    /// The run's parameters.
    pub params: &'a ReplayParams,
    /// The replay's tick, seconds.
    pub tick_seconds: i64,
    /// Ticks in the replay.
    pub ticks: usize,
}

/// A signal of the metric pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Mean utilisation of ready instances, 0..=1 (measured CPU cannot pass 100 %, so demand
    /// above capacity shows as 1.0).
    Utilization = 0,
    /// Work units per second arriving (served or not).
    RequestRate = 1,
    /// Work units waiting in the queue in front of the instances.
    QueueDepth = 2,
    /// 95th percentile response time, seconds.
    LatencyP95 = 3,
    /// 99th percentile response time, seconds.
    LatencyP99 = 4,
    /// Share of arriving work shed because the queue was full, 0..=1.
    ErrorRate = 5,
    /// Mean ready instances over the period: the capacity the utilisation was measured on.
    ReadyInstances = 6,
}

const SIGNALS: usize = 7;

/// Seconds of ready capacity the queue holds before it sheds work.
pub const QUEUE_LIMIT_SECONDS: f64 = 60.0;

/// What a controller sees when it decides. Metrics end `metric_lag` before `now` and are
/// averaged over the metric period; a period without data (a trace gap, no ready instance) is
/// `None`.
#[derive(Debug)]
pub struct View<'a> {
    /// Tick index.
    pub tick: usize,
    /// Seconds since the replay started.
    pub now_seconds: i64,
    /// Capacity asked for (ready + booting).
    pub desired: u32,
    /// Ready instances.
    pub ready: u32,
    /// Booting instances.
    pub pending: u32,
    start: DateTime<Utc>,
    fleet: &'a Fleet,
    signals: &'a Signals,
    lag_ticks: usize,
    period_ticks: usize,
}

impl View<'_> {
    /// Wall time of this tick.
    pub fn at(&self) -> DateTime<Utc> {
        self.start + TimeDelta::seconds(self.now_seconds)
    }

    /// The mean utilisation of ready instances over the last metric period (lagged).
    pub fn utilization(&self) -> Option<f64> {
        self.signal(Signal::Utilization, 0)
    }

    /// `signal` averaged over the metric period that ended `periods_back` periods before the
    /// latest one the pipeline has delivered.
    pub fn signal(&self, signal: Signal, periods_back: usize) -> Option<f64> {
        let until = self
            .tick
            .checked_sub(self.lag_ticks + periods_back * self.period_ticks)?;
        if until == 0 {
            return None;
        }
        let from = until.saturating_sub(self.period_ticks);
        self.signals.average(signal as usize, from, until)
    }

    /// Instances (booting or ready) launched less than `seconds` ago.
    pub fn launched_within(&self, seconds: i64) -> u32 {
        self.fleet.launched_within(self.now_seconds, seconds)
    }

    /// The metric period, in ticks.
    pub fn period_ticks(&self) -> usize {
        self.period_ticks
    }

    /// The bill so far: from the first scored step once scoring has started, from the start
    /// of the replay during the warm-up.
    pub fn cost(&self) -> f64 {
        self.fleet.cost_at(self.now_seconds)
    }
}

/// A scaling controller replayed against a demand: a baseline, an oracle or a policy file.
pub trait Controller: fmt::Debug {
    /// A short name for reports.
    fn name(&self) -> String;

    /// Seconds between decisions (the controller's sync period).
    fn period_seconds(&self, params: &ReplayParams, step_seconds: i64) -> i64;

    /// Which instances a scale-in removes.
    fn removal(&self) -> Removal {
        Removal::OldestFirst
    }

    /// Whether the controller reads signals other than utilisation (they cost a little time).
    fn wants_full_metrics(&self) -> bool {
        false
    }

    /// How many metric periods of history, beyond the latest, the controller reads.
    fn history_periods(&self) -> usize {
        0
    }

    /// Called once before the first tick; returns the ready instances the replay starts with.
    fn start(&mut self, ctx: &StartContext<'_>) -> u32;

    /// The desired capacity now.
    fn decide(&mut self, view: &View<'_>) -> u32;

    /// The controller's latest forecast of demand in instances, when it forecasts.
    fn forecast(&self) -> Option<f64> {
        None
    }

    /// Whether the controller reads the demand itself (an oracle, a static capacity): such a
    /// controller is replayed on the scored steps only, never warmed up on the steps before.
    fn reads_demand(&self) -> bool {
        false
    }

    /// Called when the scored part begins (after the warm-up, if any).
    fn scoring_starts(&mut self) {}

    /// What the controller's decisions rested on, counted over the scored decisions (for a
    /// predictive policy: acting on the forecast, or falling back and why); empty when it has
    /// nothing to say.
    fn tally(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
}

/// Options of a replay.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayOptions {
    /// Record one [`SeriesPoint`] per scored trace step (for charts).
    pub record_series: bool,
    /// Steps at the start of the demand that are replayed but not scored: the controller runs
    /// on them (a predictive policy learns from them, a reactive one settles), and the score,
    /// the cost and the actions count from the first step after them. The instances running at
    /// that moment are billed from it on.
    pub warmup_steps: usize,
}

/// The state at the end of one trace step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesPoint {
    /// Step time.
    pub at: DateTime<Utc>,
    /// Demand in instances (fractional), `None` in a gap.
    pub demand: Option<f64>,
    /// D(t).
    pub needed: Option<u32>,
    /// Ready instances at the end of the step.
    pub ready: u32,
    /// Capacity asked for (ready + booting).
    pub desired: u32,
    /// The controller's forecast, when it has one.
    pub forecast: Option<f64>,
    /// The bill from the first scored step to the end of this step.
    pub cost: f64,
}

/// What a replay returns.
#[derive(Debug, Clone)]
pub struct ReplayOutcome {
    /// The score.
    pub score: Score,
    /// The tick used, seconds.
    pub tick_seconds: i64,
    /// Per-step series, when asked for.
    pub series: Vec<SeriesPoint>,
    /// The controller's [`Controller::tally`] at the end.
    pub tally: Vec<(String, u64)>,
}

/// The most ticks one replay may take: 20 million, 38 years of one-minute ticks. The replay's
/// work is proportional to its ticks, so a trace whose few rows claim a century is refused
/// rather than replayed for minutes.
pub const MAX_REPLAY_TICKS: usize = 20_000_000;

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The replay tick: the greatest common divisor of the trace step, the controller period, the
/// boot delay, the metric lag and the metric period (zero durations ignored).
pub fn tick_seconds(step_seconds: i64, period_seconds: i64, params: &ReplayParams) -> i64 {
    [
        period_seconds,
        params.boot_delay.as_secs() as i64,
        params.metric_lag.as_secs() as i64,
        params.metric_period.as_secs() as i64,
    ]
    .into_iter()
    .filter(|&s| s > 0)
    .fold(step_seconds, gcd)
    .max(1)
}

/// D(t) per step with gaps filled by the last known value (leading gaps by the first): what the
/// oracles must cover. A gap is not zero demand, so the oracles keep serving through it.
pub fn requirement_per_step(demand: &Demand) -> Vec<u32> {
    let first = demand.needed.iter().flatten().copied().next().unwrap_or(0);
    let mut last = first;
    demand
        .needed
        .iter()
        .map(|n| {
            if let Some(n) = n {
                last = *n;
            }
            last
        })
        .collect()
}

/// Replays `controller` on `demand`.
pub fn replay(
    demand: &Demand,
    params: &ReplayParams,
    controller: &mut dyn Controller,
    options: ReplayOptions,
) -> Result<ReplayOutcome, EvalError> {
    params.validate()?;
    let step = demand.step_seconds;
    let period = controller.period_seconds(params, step).max(1);
    let tick = tick_seconds(step, period, params);
    let ticks_per_step = (step / tick) as usize;
    let warmup_steps = options.warmup_steps.min(demand.len());
    let scored_from = warmup_steps * ticks_per_step;
    let n_ticks = demand
        .len()
        .checked_mul(ticks_per_step)
        .filter(|n| *n <= MAX_REPLAY_TICKS)
        .ok_or_else(|| EvalError::Trace {
            name: demand.name.clone(),
            what: format!(
                "replaying {} steps of {} s at a tick of {tick} s takes {} ticks, more than the limit of {MAX_REPLAY_TICKS}; the trace spans more time than its rows can describe (check its timestamps), or use a coarser step",
                demand.len(),
                step,
                (demand.len() as u128) * (ticks_per_step as u128),
            ),
        })?;
    let period_every = (period / tick) as usize;
    let lag_ticks = (params.metric_lag.as_secs() as i64 / tick) as usize;
    let period_ticks = ((params.metric_period.as_secs() as i64 / tick) as usize).max(1);
    let (min, max) = (params.min_instances, params.max_instances);

    let ctx = StartContext {
        demand,
        params,
        tick_seconds: tick,
        ticks: n_ticks,
    };
    let initial = controller.start(&ctx).clamp(min, max);
    let removal = controller.removal();
    let mut fleet = Fleet::new(
        params.boot_delay.as_secs() as i64,
        params.billing,
        params.price_per_hour,
    );
    fleet.start_ready(0, initial);
    let ring = lag_ticks + period_ticks * (2 + controller.history_periods()) + 2;
    let mut signals = Signals::new(
        ring,
        controller.wants_full_metrics(),
        params.capacity_per_instance,
        tick as f64,
    );
    let mut score = ScoreAcc::default();
    let mut actions = 0u64;
    let mut series = Vec::with_capacity(if options.record_series {
        demand.len() - warmup_steps
    } else {
        0
    });

    for s in 0..demand.len() {
        let need = demand.needed[s];
        let d = demand.instances[s];
        for j in 0..ticks_per_step {
            let i = s * ticks_per_step + j;
            let now = i as i64 * tick;
            if i == scored_from && i > 0 {
                fleet.start_billing(now);
                controller.scoring_starts();
            }
            fleet.advance(now);
            if i.is_multiple_of(period_every) {
                let view = View {
                    tick: i,
                    now_seconds: now,
                    start: demand.start,
                    desired: fleet.total(),
                    ready: fleet.n_ready,
                    pending: fleet.n_booting,
                    fleet: &fleet,
                    signals: &signals,
                    lag_ticks,
                    period_ticks,
                };
                let want = controller.decide(&view).clamp(min, max);
                let total = fleet.total();
                if want != total {
                    actions += u64::from(i >= scored_from);
                    if want > total {
                        fleet.launch(now, want - total);
                    } else {
                        fleet.remove(now, total - want, removal);
                    }
                }
            }
            let ready = fleet.n_ready;
            if i >= scored_from {
                score.push(need, ready, 1);
            }
            signals.push(d, ready);
        }
        if options.record_series && s >= warmup_steps {
            series.push(SeriesPoint {
                at: demand.start + TimeDelta::seconds(step) * s as i32,
                demand: d,
                needed: need,
                ready: fleet.n_ready,
                desired: fleet.total(),
                forecast: controller.forecast(),
                cost: fleet.cost_at((s as i64 + 1) * step),
            });
        }
    }
    let cost = fleet.close(n_ticks as i64 * tick);
    Ok(ReplayOutcome {
        score: score.finish(tick, cost, actions),
        tick_seconds: tick,
        series,
        tally: controller.tally(),
    })
}

/// The metric pipeline: per-tick values kept as running sums in a ring, so any window average
/// is O(1).
#[derive(Debug)]
pub(crate) struct Signals {
    ring: usize,
    pushed: usize,
    sums: Vec<[f64; SIGNALS]>,
    counts: Vec<[u32; SIGNALS]>,
    full: bool,
    capacity_per_instance: f64,
    tick_seconds: f64,
    backlog: f64,
}

impl Signals {
    fn new(ring: usize, full: bool, capacity_per_instance: f64, tick_seconds: f64) -> Self {
        Signals {
            ring,
            pushed: 0,
            sums: vec![[0.0; SIGNALS]; ring],
            counts: vec![[0; SIGNALS]; ring],
            full,
            capacity_per_instance,
            tick_seconds,
            backlog: 0.0,
        }
    }

    #[inline]
    fn push(&mut self, demand_instances: Option<f64>, ready: u32) {
        let mut values = [f64::NAN; SIGNALS];
        values[Signal::ReadyInstances as usize] = f64::from(ready);
        if let Some(d) = demand_instances {
            if ready > 0 {
                values[Signal::Utilization as usize] = (d / f64::from(ready)).min(1.0);
            }
            if self.full {
                self.queue_model(d, ready, &mut values);
            }
        }
        let prev = self.pushed % self.ring;
        let next = (self.pushed + 1) % self.ring;
        for (k, &v) in values.iter().enumerate() {
            if !self.full && k != 0 && k != Signal::ReadyInstances as usize {
                continue;
            }
            let known = !v.is_nan();
            self.sums[next][k] = self.sums[prev][k] + if known { v } else { 0.0 };
            self.counts[next][k] = self.counts[prev][k] + u32::from(known);
        }
        self.pushed += 1;
    }

    /// A FIFO queue in front of the instances, fed with the demand and drained at ready
    /// capacity, holding at most [`QUEUE_LIMIT_SECONDS`] of capacity; response time per
    /// instance as in an M/M/1 queue (p-quantile `ln(1/(1-p)) / (μ − λ)`) plus the wait in the
    /// backlog.
    fn queue_model(&mut self, d: f64, ready: u32, values: &mut [f64; SIGNALS]) {
        let cap = self.capacity_per_instance;
        let rate = d * cap;
        let capacity_rate = f64::from(ready) * cap;
        let arrivals = rate * self.tick_seconds;
        let served = (self.backlog + arrivals).min(capacity_rate * self.tick_seconds);
        self.backlog += arrivals - served;
        let limit = capacity_rate * QUEUE_LIMIT_SECONDS;
        let shed = (self.backlog - limit).max(0.0);
        self.backlog -= shed;
        let (p95, p99) = if capacity_rate > 0.0 {
            let rho = (rate / capacity_rate).min(0.99);
            let wait = self.backlog / capacity_rate;
            (
                20f64.ln() / (cap * (1.0 - rho)) + wait,
                100f64.ln() / (cap * (1.0 - rho)) + wait,
            )
        } else {
            (QUEUE_LIMIT_SECONDS, QUEUE_LIMIT_SECONDS)
        };
        values[Signal::RequestRate as usize] = rate;
        values[Signal::QueueDepth as usize] = self.backlog;
        values[Signal::LatencyP95 as usize] = p95;
        values[Signal::LatencyP99 as usize] = p99;
        values[Signal::ErrorRate as usize] = if arrivals > 0.0 { shed / arrivals } else { 0.0 };
    }

    /// The mean of signal `k` over ticks `[from, until)`, `None` without data.
    fn average(&self, k: usize, from: usize, until: usize) -> Option<f64> {
        if until > self.pushed || until <= from || self.pushed - from >= self.ring {
            return None;
        }
        let (a, b) = (from % self.ring, until % self.ring);
        let n = self.counts[b][k] - self.counts[a][k];
        (n > 0).then(|| (self.sums[b][k] - self.sums[a][k]) / f64::from(n))
    }
}
