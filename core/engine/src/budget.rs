//! Budgets: what each has spent in its period, where the period will end at the current pace,
//! which thresholds that crosses, and what the budget asks of the decisions of its groups.
//!
//! [`BudgetTracker`] is fed what the cost meter charged each group and the capacity each group
//! was given; [`BudgetTracker::evaluate`] returns each budget's [`BudgetStatus`], and
//! [`BudgetTracker::steer_for`] the [`BudgetSteer`] a group's next decision observes. The
//! engine's [`crate::decide`] stays pure: the steer is part of its observation.
//!
//! # The forecast
//!
//! Where a predictive policy runs on every group of a budget and its forecast is trusted, the
//! time the forecast covers costs its forecast capacity at each group's price per instance.
//! The rest of the period is charged hour by hour of the week at the last week's spend in
//! that hour, once every hour of the day has been watched (a daily budget at 15:00 has its
//! evening peak ahead of it, not an average hour; a monthly budget on a Friday has a weekend
//! ahead of it); an hour of the week not watched (in the first week, or blind) is charged at
//! its hour of the day's spend. Before that, the hours left are charged at a pace: the mean
//! rate over what has been watched, or the current run rate in the first hour (or the pace an
//! earlier run recorded in the cost ledger, when the budget carries on from it).
//!
//! Time when no group of the budget had its load seen (its metrics missing, so its groups
//! held their capacity blind) is spent and counted, but the pace and the profile are learnt
//! without it: a capacity held through a day-long metrics outage is not a pattern of the weeks
//! ahead ([`BudgetControl::set_blind`]).
//!
//! # The ladder
//!
//! When the forecast exceeds the amount, the budget climbs to the rung it names and stays there
//! until the forecast falls back under 97 % of the amount (or a new period starts):
//!
//! - `alert`: alerts only.
//! - `prefer_cheaper`: a group's vertical policy takes any saving as worth a move and may
//!   recommend spot (see `control.rs`); horizontal decisions are unchanged and say so.
//! - `cap`: the spend rate is brought to what the rest of the period affords. The budget aims
//!   0.5 % under its amount (0.1 % by the end of its last tenth) and climbs to `cap` when
//!   the forecast crosses that aim. Its *share* is the affordable rate (what is left of the aim,
//!   over the hours left) against the rate its groups would run at unsteered (the run rate
//!   times the target scale in force, averaged over the last week); the share is fed back
//!   through the spend, so it settles where the budget holds. Each group then meets the share
//!   with two levers, chosen by [`GroupLevers`]: running hotter (utilisation targets raised, up to the budget's
//!   `max_utilization`) and a cap on scale-out; it picks the pair that, replayed on its last week
//!   of load, would have left demand unserved least often. In the period's last tenth the cap
//!   is enforced: capacity above it is brought down to it ([`enforces_cap`]).
//! - `deny_scale_out`: no scale-out at all.
//!
//! Whatever the rung, a budget never takes a group below `min`, never blocks a scale-in, and
//! never blocks a scale-out up to the group's availability floor (`guards.availability_floor`,
//! default `min`); an enforced cap does not go under the floor either.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::budget::{BudgetConfig, Converter, Rung, decimal_f64};
use crate::config::{PolicyConfig, PolicyFile};
use crate::model::MetricKind;

/// The forecast must fall under this share of the amount for a budget to step off its rung.
const RELEASE: f64 = 0.97;
/// Pace samples are kept at most this often.
const SAMPLE_EVERY: i64 = 300;

/// What a budget asks of one group's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetSteer {
    /// The budget.
    pub budget: String,
    /// Its rung.
    pub rung: Rung,
    /// Utilisation targets are multiplied by this (1 = unchanged), up to `max_utilization`.
    pub target_scale: f64,
    /// The highest utilisation target the budget lets a policy be raised to.
    pub max_utilization: f64,
    /// Under `cap`, the most instances the budget affords the group now.
    pub cap: Option<u32>,
    /// Under `cap`, whether capacity above the cap is brought down to it (in the last tenth
    /// of the period, see [`enforces_cap`]); otherwise the cap only limits scale-out.
    #[serde(default)]
    pub enforce: bool,
    /// Spent so far in the period, in `currency`.
    pub spent: f64,
    /// Forecast spend at the period's end.
    pub forecast: f64,
    /// The budget's amount.
    pub amount: f64,
    /// The currency of the figures.
    pub currency: String,
}

impl BudgetSteer {
    /// `budget web-monthly (cap): forecast 5400.00 USD against 5000.00, 3100.00 spent`.
    pub fn figures(&self) -> String {
        format!(
            "budget {} ({}): forecast {:.2} {} against {:.2}, {:.2} spent",
            self.budget, self.rung, self.forecast, self.currency, self.amount, self.spent
        )
    }

    /// Whether the steer changes decisions at all.
    pub fn steers(&self) -> bool {
        self.rung >= Rung::Cap
    }
}

/// A budget's state at one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetStatus {
    /// The budget's name.
    pub budget: String,
    /// What it covers (`group web`).
    pub scope: String,
    /// The groups it covers now.
    pub groups: Vec<String>,
    /// The period (`monthly`).
    pub period: String,
    /// Start of the current period.
    pub period_start: DateTime<Utc>,
    /// End of the current period.
    pub period_end: DateTime<Utc>,
    /// The amount, in `currency`.
    pub amount: f64,
    /// The reporting currency.
    pub currency: String,
    /// When the amount was converted: from which currency, at what rate, as of which day.
    pub converted_from: Option<(String, f64, chrono::NaiveDate)>,
    /// Spent so far in the period.
    pub spent: f64,
    /// Spend per hour now (the instances running now).
    pub run_rate_per_hour: f64,
    /// Spend per hour the forecast assumes for the rest of the period.
    pub pace_per_hour: f64,
    /// Forecast spend at the period's end.
    pub forecast: f64,
    /// The rung the budget is on (`None`: the forecast is inside the budget).
    pub rung: Option<Rung>,
    /// Under `cap`: the largest target scale applied to a group.
    pub target_scale: f64,
    /// Under `cap`: the share of the unsteered spend rate the rest of the period affords
    /// (1 = nothing needs to give).
    pub capacity_kept: f64,
    /// Actual-spend thresholds (percent) crossed in this period.
    pub actual_crossed: Vec<f64>,
    /// Forecast thresholds (percent) crossed in this period.
    pub forecast_crossed: Vec<f64>,
    /// When evaluated.
    pub at: DateTime<Utc>,
}

/// A group as budgets see it.
#[derive(Debug, Clone, Default)]
struct GroupCost {
    provider: String,
    labels: BTreeMap<String, String>,
    /// What the meter charged since it first observed the group, in the reporting currency.
    cumulative: f64,
    /// Cost per hour of the instances running now.
    run_rate: f64,
    levers: GroupLevers,
    capacity: u32,
    /// Whether its load was unseen at the last observation (its metrics missing).
    blind: bool,
    /// A predictive policy's forecast capacity ahead, `(from, until, instances)` per point.
    forecast: Vec<(DateTime<Utc>, DateTime<Utc>, f64)>,
}

impl GroupCost {
    /// What the forecast capacity costs over `[from, until)` at the group's price per instance
    /// now; `None` without a forecast reaching `until` or without a price.
    fn forecast_spend(&self, from: DateTime<Utc>, until: DateTime<Utc>) -> Option<f64> {
        if self.capacity == 0 || self.forecast.last().is_none_or(|l| l.1 < until) {
            return None;
        }
        let price = self.run_rate / f64::from(self.capacity);
        let mut spend = 0.0;
        for &(start, end, instances) in &self.forecast {
            let (s, e) = (start.max(from), end.min(until));
            if e > s {
                spend += instances.max(0.0) * price * (e - s).num_seconds() as f64 / 3600.0;
            }
        }
        Some(spend)
    }

    /// Where the forecast ends.
    fn forecast_until(&self) -> Option<DateTime<Utc>> {
        self.forecast.last().map(|l| l.1)
    }
}

/// A group's capacity by hour of day over about the last day, from which a budget's cap is
/// set: the level that clips the profile to the share of capacity-hours the budget keeps.
#[derive(Debug, Clone, Default)]
pub struct CapacityProfile {
    /// (sum of capacity × seconds, seconds) per hour of day.
    hours: [(f64, f64); 24],
    last_seen: Option<DateTime<Utc>>,
}

impl CapacityProfile {
    /// Records that the group had `capacity` from its last observation until `now`.
    pub fn observe(&mut self, now: DateTime<Utc>, capacity: u32) {
        if let Some(last) = self.last_seen {
            let secs = (now - last).num_seconds().clamp(0, 3600) as f64;
            let hour = usize::try_from(chrono::Timelike::hour(&now)).unwrap_or(0) % 24;
            let slot = &mut self.hours[hour];
            // Keep about a day per slot: decay what is older.
            if slot.1 > 3600.0 {
                let keep = 3600.0 / slot.1;
                slot.0 *= keep;
                slot.1 *= keep;
            }
            slot.0 += f64::from(capacity) * secs;
            slot.1 += secs;
        }
        self.last_seen = Some(now);
    }

    /// The capacity that clips the profile to `kept` of its capacity-hours; `None` before
    /// anything was observed.
    pub fn cap_level(&self, kept: f64) -> Option<u32> {
        let hours: Vec<f64> = self
            .hours
            .iter()
            .filter(|(_, secs)| *secs > 0.0)
            .map(|(sum, secs)| sum / secs)
            .collect();
        if hours.is_empty() {
            return None;
        }
        let total: f64 = hours.iter().sum();
        let goal = total * kept.clamp(0.0, 1.0);
        let clipped = |level: f64| hours.iter().map(|h| h.min(level)).sum::<f64>();
        let (mut lo, mut hi) = (0.0, hours.iter().copied().fold(0.0, f64::max));
        for _ in 0..50 {
            let mid = (lo + hi) / 2.0;
            if clipped(mid) > goal {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(lo.floor().max(0.0) as u32)
    }
}

/// Samples of the load are kept as means over this many seconds.
const LOAD_BUCKET: i64 = 300;
/// Utilisation at or above this is saturated: the demand may be more than the load seen.
const SATURATED: f64 = 0.98;

/// Samples of one bucket kept (the first ones, then the newest in turn when the interval is
/// under `LOAD_BUCKET / BUCKET_SAMPLES`).
const BUCKET_SAMPLES: usize = 8;

/// One observation of the group: busy instances (utilisation × ready), ready instances, and
/// the capacity that load met unsteered: what the group would have had unsteered (its
/// capacity times the target scale in force) as decided at the observation before, since a
/// decision serves the load that comes after it.
#[derive(Debug, Clone, Copy, Default)]
struct LoadSample {
    busy: f32,
    ready: f32,
    unsteered: f32,
}

impl LoadSample {
    /// Whether `capacity` instances would have left this sample short: under its load, or
    /// (for a saturated sample, whose demand may be more than the load seen) no more than
    /// the group had then.
    fn short_at(&self, capacity: f64) -> bool {
        let (busy, ready) = (f64::from(self.busy), f64::from(self.ready));
        capacity < busy || (ready > 0.0 && busy >= SATURATED * ready && capacity <= ready)
    }
}

/// The samples of one bucket. Time short is judged sample by sample, against the capacity
/// the group really had (with its policies' reaction lag and scale-in delays): a bucket's
/// mean hides the minutes above it, and the load over the target understates the capacity
/// a policy keeps, so a cap set from either cuts more than the budget needs.
#[derive(Debug, Clone, Copy, Default)]
struct LoadBucket {
    samples: [LoadSample; BUCKET_SAMPLES],
    len: u8,
    /// Samples seen (more than kept when the interval is short).
    seen: u32,
}

impl LoadBucket {
    fn add(&mut self, sample: LoadSample) {
        let len = usize::from(self.len);
        let slot = if len < BUCKET_SAMPLES {
            self.len += 1;
            len
        } else {
            self.seen as usize % BUCKET_SAMPLES
        };
        self.seen += 1;
        self.samples[slot] = sample;
    }

    fn samples(&self) -> &[LoadSample] {
        &self.samples[..usize::from(self.len)]
    }

    fn unsteered_sum(&self) -> f64 {
        self.samples().iter().map(|s| f64::from(s.unsteered)).sum()
    }
}

/// A week of load buckets.
const LOAD_BUCKETS: usize = (LEVER_WINDOW / LOAD_BUCKET) as usize;
/// Raised targets tried between 1 and the largest allowed.
const SCALE_STEPS: usize = 10;
/// How long a lever plan is reused while the budget's share moves by less than 1 %.
const PLAN_REUSE: i64 = 3600;
/// The window the levers and the unsteered rate are judged on: a week, so a weekly cycle and
/// more than one day's peaks are in it.
const LEVER_WINDOW: i64 = 7 * 86_400;
/// How long a budget keeps its history: the lever window, and two days and six hours more
/// for the level shift to compare the last hours with the week before.
const HISTORY_KEPT: i64 = LEVER_WINDOW + 2 * 86_400 + 6 * 3600;

/// The two levers a budget on `cap` has on one group, and the choice between them.
///
/// Spend can come down by running hotter (a raised utilisation target: every hour gives up a
/// little headroom) or by a cap (the peaks give up capacity). Which costs less service depends
/// on the workload: on a smooth daily curve a cap starves every broad peak while a raised
/// target costs nothing until utilisation nears 100 %; on a noisy load the headroom is what
/// absorbs the noise and a cap on rare peaks is cheaper. So the group keeps a week of its load
/// (busy instances: utilisation × ready, up to eight samples per 5 minutes) and, for the share
/// of spend the budget affords, replays that week under each raised target (with the cap that
/// then meets the share) and picks the pair that would have left demand unserved least often.
/// Each sample of load is judged against the capacity decided at the observation before it
/// (the reaction lag of a reactive policy): judged against the capacity decided on itself, a
/// raised target looked free on a noisy load, whose rises it meets a step late.
/// Without a load history (no utilisation policy, or less than an hour watched) it raises the
/// target first, then caps by the capacity profile.
#[derive(Debug, Clone, Default)]
pub struct GroupLevers {
    /// The lowest utilisation target of the group's target-tracking policies.
    target: Option<f64>,
    loads: VecDeque<LoadBucket>,
    /// The sum of the unsteered capacities in `loads`, and how many: their mean is asked
    /// at every step a budget caps the group.
    loads_unsteered: (f64, usize),
    /// The bucket being filled, and its slot.
    bucket: Option<(i64, LoadBucket)>,
    profile: CapacityProfile,
    /// The target scale in force.
    last_scale: f64,
    /// The cap in force.
    cap: Option<u32>,
    /// The capacity the group would have had unsteered at the last observation.
    last_unsteered: Option<f64>,
    plan: Option<(DateTime<Utc>, f64, f64, LeverPlan)>,
}

/// What the levers were set to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeverPlan {
    /// Utilisation targets are multiplied by this.
    pub target_scale: f64,
    /// The most instances the group is given, if capped.
    pub cap: Option<u32>,
    /// The share of the last week's time the plan would have left demand unserved, when it
    /// was estimated from the load.
    pub estimated_under: Option<f64>,
    /// The capacity without the cap over the capacity with it (1 without a cap).
    pub cut: f64,
}

impl GroupLevers {
    /// Levers for a group whose lowest utilisation target is `target`.
    pub fn new(target: Option<f64>) -> Self {
        GroupLevers {
            target,
            last_scale: 1.0,
            ..GroupLevers::default()
        }
    }

    /// Records the group at `now`: its capacity, and when known its load as (busy instances,
    /// ready instances): utilisation × ready, and ready.
    pub fn observe(&mut self, now: DateTime<Utc>, capacity: u32, load: Option<(f64, u32)>) {
        self.profile.observe(now, capacity);
        let Some((busy, ready)) = load.filter(|(l, _)| l.is_finite() && *l >= 0.0) else {
            return;
        };
        // Unsteered, the group would have its capacity times the target scale; at the cap it
        // would have had more, as much as its load over the target asks (the capacity alone
        // would teach the levers that the cap's level was all the group wanted), and never
        // more than its capacity at full utilisation over the target, whatever the load
        // reported.
        let mut unsteered = f64::from(capacity) * self.last_scale.max(1.0);
        if let (Some(cap), Some(target)) = (self.cap, self.target)
            && capacity >= cap
            && target > 0.0
        {
            let asked = busy.min(f64::from(capacity)) / target;
            unsteered = unsteered.max(asked);
        }
        // This load met the capacity decided before it.
        let met = self.last_unsteered.replace(unsteered).unwrap_or(unsteered);
        let sample = LoadSample {
            busy: busy as f32,
            ready: ready as f32,
            unsteered: met as f32,
        };
        let slot = now.timestamp().div_euclid(LOAD_BUCKET);
        match &mut self.bucket {
            Some((at, bucket)) if *at == slot => bucket.add(sample),
            open => {
                if let Some((_, bucket)) = open.take() {
                    let (sum, count) = &mut self.loads_unsteered;
                    *sum += bucket.unsteered_sum();
                    *count += bucket.samples().len();
                    self.loads.push_back(bucket);
                    while self.loads.len() > LOAD_BUCKETS {
                        if let Some(gone) = self.loads.pop_front() {
                            *sum -= gone.unsteered_sum();
                            *count -= gone.samples().len();
                        }
                    }
                }
                let mut bucket = LoadBucket::default();
                bucket.add(sample);
                *open = Some((slot, bucket));
            }
        }
    }

    /// The cost per hour the group would run at if no budget steered it: its run rate now
    /// times the capacity it would have unsteered over the capacity it has (the target scale
    /// in force, or at the cap its load over the target; see [`GroupLevers::observe`]).
    pub fn unsteered_rate(&self, run_rate: f64, capacity: u32) -> f64 {
        match self.last_unsteered {
            Some(unsteered) if capacity > 0 => {
                run_rate * (unsteered / f64::from(capacity)).max(1.0)
            }
            _ => run_rate * self.last_scale.max(1.0),
        }
    }

    /// What the group's next decision is steered by: the target scale and the cap in force
    /// (1 and `None` when nothing steers it). What the group would have had unsteered is
    /// judged from them.
    pub fn steered_by(&mut self, target_scale: f64, cap: Option<u32>) {
        self.last_scale = if target_scale.is_finite() {
            target_scale.max(1.0)
        } else {
            1.0
        };
        self.cap = cap;
    }

    /// The mean of the capacities the group would have had unsteered over the samples the
    /// levers are planned on (`None` before any).
    pub fn mean_unsteered(&self) -> Option<f64> {
        let (sum, count) = self.loads_unsteered;
        (count > 0).then(|| sum / count as f64)
    }

    /// The levers for a budget that affords `share` of the unsteered spend, raising targets
    /// at most to `max_utilization`. The share is of the mean of the levers' own samples (see
    /// [`frame`]).
    pub fn plan(&mut self, now: DateTime<Utc>, share: f64, max_utilization: f64) -> LeverPlan {
        if let Some((at, s, m, plan)) = self.plan
            && (now - at).num_seconds() < PLAN_REUSE
            && (s - share).abs() < 0.01
            && m == max_utilization
        {
            return plan;
        }
        let plan = self.compute(share, max_utilization);
        self.plan = Some((now, share, max_utilization, plan));
        plan
    }

    fn compute(&self, share: f64, max_utilization: f64) -> LeverPlan {
        let none = LeverPlan {
            target_scale: 1.0,
            cap: None,
            estimated_under: None,
            cut: 1.0,
        };
        if !(share.is_finite() && share < 1.0) {
            return none;
        }
        let share = share.max(0.0);
        let max_scale = self.target.map_or(1.0, |t| (max_utilization / t).max(1.0));
        if self.target.is_some() && self.loads.len() >= 12 {
            return self.optimise(share, max_scale);
        }
        // No load: headroom first, then the profile's peaks.
        let want = 1.0 / share.max(1e-6);
        let scale = want.min(max_scale);
        let kept = scale / want;
        let cap = (kept < 1.0).then(|| self.profile.cap_level(kept)).flatten();
        LeverPlan {
            target_scale: scale,
            cap,
            estimated_under: None,
            cut: if cap.is_some() {
                1.0 / kept.max(1e-3)
            } else {
                1.0
            },
        }
    }

    fn optimise(&self, share: f64, max_scale: f64) -> LeverPlan {
        let samples: Vec<LoadSample> = self
            .loads
            .iter()
            .flat_map(|b| b.samples().iter().copied())
            .collect();
        let base: Vec<f64> = samples.iter().map(|s| f64::from(s.unsteered)).collect();
        let n = base.len().max(1) as f64;
        let unsteered = base.iter().sum::<f64>() / n;
        let goal = unsteered * share;
        // The capacities in order with their running sums: the mean under a level is then a
        // search, not a pass over the week (the level is searched ten times per plan).
        let mut sorted = base.clone();
        sorted.sort_by(f64::total_cmp);
        let mut below = Vec::with_capacity(sorted.len() + 1);
        below.push(0.0);
        for b in &sorted {
            below.push(below.last().copied().unwrap_or(0.0) + b);
        }
        let mut best: Option<(f64, LeverPlan)> = None;
        // From the most headroom given up down: a cap is taken only where it would have left
        // demand unserved less often (on a tie, headroom goes first: it costs nothing until
        // utilisation nears 100 %, while a cap only limits scale-out and lets spend run over).
        for k in (0..SCALE_STEPS).rev() {
            let scale = 1.0 + (max_scale - 1.0) * k as f64 / (SCALE_STEPS - 1) as f64;
            // The mean of each capacity over the scale, under `level`: summed over the week,
            // and by a search where that is decided the same way (its sums are in another
            // order, so a mean within rounding of the goal is summed as the week is).
            let mean_at = |level: f64| base.iter().map(|b| (b / scale).min(level)).sum::<f64>() / n;
            let above_goal = |level: f64| {
                let under = sorted.partition_point(|b| b / scale <= level);
                let quick = (below[under] / scale + level * (sorted.len() - under) as f64) / n;
                if (quick - goal).abs() > 1e-9 * goal.abs().max(1e-300) {
                    quick > goal
                } else {
                    mean_at(level) > goal
                }
            };
            let top = sorted.last().map_or(0.0, |b| (b / scale).max(0.0));
            let level = if mean_at(f64::INFINITY) <= goal {
                f64::INFINITY
            } else {
                let (mut lo, mut hi) = (0.0, top);
                for _ in 0..30 {
                    let mid = (lo + hi) / 2.0;
                    if above_goal(mid) {
                        hi = mid;
                    } else {
                        lo = mid;
                    }
                }
                lo
            };
            // Each sample is short under the plan when the capacity the plan leaves it (what
            // the group had unsteered, over the scale, under the cap) is short of its load.
            let under = base
                .iter()
                .zip(&samples)
                .filter(|(b, s)| s.short_at((*b / scale).min(level)))
                .count() as f64
                / n;
            if best.as_ref().is_none_or(|(u, _)| under < *u) {
                best = Some((
                    under,
                    LeverPlan {
                        target_scale: scale,
                        cap: level.is_finite().then(|| level.floor().max(0.0) as u32),
                        estimated_under: Some(under),
                        cut: if level.is_finite() {
                            mean_at(f64::INFINITY) / mean_at(level).max(1e-9)
                        } else {
                            1.0
                        },
                    },
                ));
            }
        }
        best.map_or(
            LeverPlan {
                target_scale: 1.0,
                cap: None,
                estimated_under: None,
                cut: 1.0,
            },
            |(_, p)| p,
        )
    }
}

/// One budget's running state.
#[derive(Debug, Clone)]
struct Tracked {
    config: BudgetConfig,
    amount: f64,
    converted_from: Option<(String, f64, chrono::NaiveDate)>,
    control: BudgetControl,
    /// The budget's unsteered rate over the rate its groups' lever samples give (see
    /// [`frame`]), at the last evaluation.
    frame: f64,
}

/// The feedback state of one budget, independent of where its figures come from (the control
/// loop's meter, or a replay's bill).
#[derive(Debug, Clone)]
pub struct BudgetControl {
    max_rung: Rung,
    period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Cumulative spend of the scope at the period's start.
    base: f64,
    /// Samples over the pace window.
    history: VecDeque<Watched>,
    /// Whether the scope's load is unseen now (see [`BudgetControl::set_blind`]).
    blind: bool,
    rung: Option<Rung>,
    /// What an earlier run recorded: the period, the spend in it, the pace, when.
    seed: Option<Seed>,
    /// The spend a predictive policy's forecast capacity says the time until `.0` will cost.
    ahead: Option<(DateTime<Utc>, f64)>,
    /// What the history teaches, kept until the history changes (a sample every
    /// [`SAMPLE_EVERY`], while a step may come every minute).
    learnt: Option<Learnt>,
    /// A level shift in force: the first hour at the new level (hours since the epoch) and
    /// the ratio of the new level to the old (see [`BudgetControl::step`]).
    shift: Option<(i64, f64)>,
    /// The level shift read from the history, kept until a new hour completes.
    level: Option<Level>,
}

/// What a [`BudgetControl`]'s history teaches (see [`BudgetControl::step`]).
#[derive(Debug, Clone)]
struct Learnt {
    /// The mean unsteered rate.
    unsteered: f64,
    /// Spend and hours over the time that counts, for the pace.
    spend: f64,
    hours: f64,
    /// The rates per hour of the week, once known.
    profile: Option<Vec<(f64, f64)>>,
}

/// What a [`BudgetControl`]'s hourly unsteered spend shows of a level shift, for the hours it
/// was read at (see [`BudgetControl::level`]).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Level {
    /// The first and last hour of the history (hours since the epoch), and whether blind time
    /// was left out: the hourly series changes only when one of them does.
    key: (i64, i64, bool),
    /// The ratio of the last hours' unsteered spend to the same hours a week before, when it
    /// has just left its usual level.
    shift: Option<f64>,
    /// The same ratio whether or not it left its usual level (`None` without the hours).
    week_ratio: Option<f64>,
}

/// One sample of a budget's scope.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Watched {
    at: DateTime<Utc>,
    /// Whole seconds since the sample before (0 for the first), and the hour of the week of
    /// `at` (UTC, from Monday): kept, so the profile is summed without calendar arithmetic.
    secs: i64,
    slot: usize,
    /// Cumulative spend.
    cumulative: f64,
    /// The rate the scope would spend at unsteered.
    unsteered: f64,
    /// Whether the scope's load was unseen from here to the next sample.
    blind: bool,
}

/// What a budget had spent in a period, from an earlier run's ledger.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seed {
    period: (DateTime<Utc>, DateTime<Utc>),
    spent: f64,
    pace: f64,
}

/// What one step of a [`BudgetControl`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControlStep {
    /// Spent in the period.
    pub spent: f64,
    /// The pace the forecast assumes, per hour.
    pub pace_per_hour: f64,
    /// Forecast spend at the period's end.
    pub forecast: f64,
    /// The rung in force.
    pub rung: Option<Rung>,
    /// Under `cap`: the share of the unsteered spend rate that the rest of the period affords
    /// (1 when nothing needs to give).
    pub share: f64,
}

/// The share of a period after which a cap is enforced (see [`enforces_cap`]).
const ENFORCE_AFTER: f64 = 0.9;

/// Whether a budget on `cap` at `now` in the period `[start, end)` brings capacity above the
/// cap down to it, rather than only limiting scale-out: in the period's last tenth. Until
/// then a group above its cap keeps what it has until its load lets it scale in, which costs
/// less service; near the end there is no time left to wait for that, and a cap that only
/// limits scale-out can let the period end over its budget. (Measured with the budget_bar
/// example on the shared and generated traces: a cap never enforced let five of 23 budgets
/// end over; enforced throughout, all held but with more time short on 13; from the last
/// quarter or the last tenth, all held with the same wins.)
pub fn enforces_cap(now: DateTime<Utc>, (start, end): (DateTime<Utc>, DateTime<Utc>)) -> bool {
    let length = (end - start).num_seconds().max(1) as f64;
    (now - start).num_seconds() as f64 >= ENFORCE_AFTER * length
}

/// The budget aims this far under its amount, so that what the forecast of the rest of the
/// period misses does not carry it over.
const MARGIN: f64 = 0.005;
/// In the period's last tenth, where the cap is enforced and holds the spend, the margin
/// shrinks with the time left down to this share of [`MARGIN`] (0.1 % of the amount): an
/// enforced cap holds the spend of the last hours, but not to the cent of a billing rule's
/// rounding.
const MARGIN_FLOOR: f64 = 0.2;

/// The share of the amount a budget keeps in hand with `hours_left` of a period of
/// `period_hours` to go: [`MARGIN`], shrinking over the last tenth (see [`MARGIN_FLOOR`]).
fn margin(hours_left: f64, period_hours: f64) -> f64 {
    let tenth = (1.0 - ENFORCE_AFTER) * period_hours;
    if tenth > 0.0 {
        MARGIN * (hours_left / tenth).clamp(MARGIN_FLOOR, 1.0)
    } else {
        MARGIN
    }
}

/// The factor that turns a budget's share of its unsteered rate into the share of its groups'
/// lever samples: `budget_unsteered` (per hour, the budget's own measure over its history)
/// over `levers_unsteered` (the same groups' lever samples' mean capacity, each at its price
/// per instance-hour). The two are the same quantity sampled differently (the budget every
/// 5 minutes, the levers at every observation, a decision later), and on a noisy load they
/// differ by a per cent or two. A share of the budget's measure applied to the levers' mean
/// planned a capacity 1.5 % under what the budget afforded, which was then spent late in the
/// period under a higher cap. 1 when either is unknown; within 0.5 to 2.
pub fn frame(budget_unsteered: Option<f64>, levers_unsteered: f64) -> f64 {
    match budget_unsteered {
        Some(b)
            if b.is_finite()
                && b > 0.0
                && levers_unsteered.is_finite()
                && levers_unsteered > 0.0 =>
        {
            (b / levers_unsteered).clamp(0.5, 2.0)
        }
        _ => 1.0,
    }
}

impl BudgetControl {
    /// The mean rate (per hour) the scope would have spent at unsteered over the history the
    /// last [`BudgetControl::step`] learnt from, if any.
    pub fn unsteered_rate(&self) -> Option<f64> {
        self.learnt.as_ref().map(|l| l.unsteered)
    }

    /// A budget that may climb to `max_rung`.
    pub fn new(max_rung: Rung) -> Self {
        BudgetControl {
            max_rung,
            period: None,
            base: 0.0,
            history: VecDeque::new(),
            blind: false,
            rung: None,
            seed: None,
            ahead: None,
            learnt: None,
            shift: None,
            level: None,
        }
    }

    /// The spend of the time until `until` from a predictive policy's forecast capacity (for
    /// the next [`BudgetControl::step`]): the forecast covers it, the pace the rest.
    pub fn set_ahead(&mut self, ahead: Option<(DateTime<Utc>, f64)>) {
        self.ahead = ahead.filter(|(_, spend)| spend.is_finite() && *spend >= 0.0);
    }

    /// Whether the scope's load is unseen from now on (its metrics missing, so its groups hold
    /// their capacity blind), until the next call. Blind time is spent, and counted in the
    /// period's spend, but it is not a pattern of the time ahead: the pace, the hourly profile
    /// and the unsteered rate are learnt from the time the load was seen (from all of it when
    /// none was seen). A capacity held through a day-long metrics outage would otherwise be
    /// forecast to come back every week.
    pub fn set_blind(&mut self, blind: bool) {
        self.blind = blind;
    }

    /// Starts from what an earlier run recorded for `period` (from the cost ledger): `spent`
    /// in it so far and the `pace` per hour it forecast with. Without it a restarted
    /// autoscaler would count the period from zero. The pace is used until an hour is watched.
    pub fn seed(&mut self, period: (DateTime<Utc>, DateTime<Utc>), spent: f64, pace: f64) {
        if spent.is_finite() && spent >= 0.0 && pace.is_finite() && pace >= 0.0 {
            self.seed = Some(Seed {
                period,
                spent,
                pace,
            });
        }
    }

    /// Records the scope's spend at `now` outside any period of the budget (a replay's
    /// warm-up, before its first period), so that the pace and the profile of the first
    /// period are known from its start, as they are for a budget that has been running.
    /// [`BudgetControl::step`] records the same.
    pub fn watch(&mut self, now: DateTime<Utc>, cumulative: f64, unsteered_rate: f64) {
        if self
            .history
            .back()
            .is_none_or(|w| (now - w.at).num_seconds() >= SAMPLE_EVERY)
        {
            let secs = self
                .history
                .back()
                .map_or(0, |w| (now - w.at).num_seconds());
            self.history.push_back(Watched {
                at: now,
                secs,
                slot: slot_of_hour(now.timestamp().div_euclid(3600), HOURS_OF_WEEK),
                cumulative,
                unsteered: unsteered_rate.max(0.0),
                blind: self.blind,
            });
            self.learnt = None;
        } else if self.blind
            && let Some(last) = self.history.back_mut()
            && !last.blind
        {
            // Blind at any step of a sample's interval: the interval is.
            last.blind = true;
            self.learnt = None;
        }
        while self
            .history
            .front()
            .is_some_and(|w| (now - w.at).num_seconds() > HISTORY_KEPT)
        {
            self.history.pop_front();
            self.learnt = None;
        }
    }

    /// One evaluation at `now` in the period `[start, end)` with budget `amount`: `cumulative`
    /// is what the scope has cost since it was first watched, `run_rate` its cost per hour now
    /// and `unsteered_rate` what it would cost per hour now if no budget steered it.
    pub fn step(
        &mut self,
        now: DateTime<Utc>,
        (start, end): (DateTime<Utc>, DateTime<Utc>),
        amount: f64,
        cumulative: f64,
        (run_rate, unsteered_rate): (f64, f64),
    ) -> ControlStep {
        if self.period != Some((start, end)) {
            // A new period: spend counts from here and the rung is released; the pace is kept
            // (it describes the workload, not the period).
            self.period = Some((start, end));
            self.base = cumulative;
            self.rung = None;
            if let Some(seed) = self.seed.filter(|s| s.period == (start, end)) {
                self.base = cumulative - seed.spent;
            }
        }
        let spent = (cumulative - self.base).max(0.0);
        self.watch(now, cumulative, unsteered_rate);
        let learnt = match self.learnt.take() {
            Some(learnt) => learnt,
            None => self.learn(),
        };
        let (unsteered, spend, hours) = (learnt.unsteered, learnt.spend, learnt.hours);
        // The pace: the mean rate over the last week's seen time, or the run rate before an
        // hour of it is watched.
        let pace = match hours {
            h if h >= 1.0 => (spend / h).max(0.0),
            _ => self
                .seed
                .filter(|s| Some(s.period) == self.period)
                .map_or(run_rate.max(0.0), |s| s.pace),
        };
        let hours_left = (end - now).num_seconds().max(0) as f64 / 3600.0;
        let period_hours = (end - start).num_seconds().max(0) as f64 / 3600.0;
        // The rest of the period, hour by hour of the week once a whole day is watched (see
        // `hourly_profile`), else at the flat pace.
        let now_hour = now.timestamp().div_euclid(3600);
        let level = self.level();
        self.follow_shift(now_hour, level.shift, level.week_ratio);
        let shift = self.shift;
        let profile = &learnt.profile;
        let rest_between = |from: DateTime<Utc>| match profile {
            Some(profile) => rest_of(from, end, profile, shift.map(|(at, r)| (now_hour, at, r))),
            None => {
                let hours = (end - from).num_seconds().max(0) as f64 / 3600.0;
                (pace * hours, unsteered * hours)
            }
        };
        let (rest, rest_unsteered) = match self.ahead.take().filter(|(until, _)| *until > now) {
            // The forecast capacity is what the policies will ask for, unsteered.
            Some((until, spend)) => {
                let (after, after_unsteered) = rest_between(until.min(end));
                (spend + after, spend + after_unsteered)
            }
            None => rest_between(now),
        };
        let forecast = spent + rest;
        // `cap` aims under the amount, so it climbs as the forecast crosses that aim: climbing
        // at the amount itself, late in a period, it cut the whole margin out of the hours
        // left at once.
        let line = if self.max_rung == Rung::Cap {
            amount * (1.0 - margin(hours_left, period_hours))
        } else {
            amount
        };
        if forecast > line {
            self.rung = Some(self.max_rung);
        }
        let mut share = 1.0;
        if self.rung == Some(Rung::Cap) {
            // What the rest of the period affords per hour, against what the scope would
            // spend per hour unsteered.
            let affordable = (amount * (1.0 - margin(hours_left, period_hours)) - spent).max(0.0);
            share = if rest_unsteered > 0.0 {
                (affordable / rest_unsteered).min(1.0)
            } else if hours_left > 0.0 {
                1.0
            } else {
                0.0
            };
            if forecast < amount * RELEASE && share >= 1.0 {
                self.rung = None;
            }
        } else if self.rung.is_some() && forecast < amount * RELEASE {
            self.rung = None;
        }
        self.learnt = Some(learnt);
        ControlStep {
            spent,
            pace_per_hour: pace,
            forecast,
            rung: self.rung,
            share,
        }
    }
}

impl BudgetControl {
    /// What the history teaches: the mean unsteered rate, the spend and hours for the pace,
    /// and the hourly profile, in one pass over it. Blind samples are left out unless it has
    /// nothing else.
    fn learn(&self) -> Learnt {
        let skip_blind = self.has_seen();
        let (mut sum, mut count) = (0.0, 0usize);
        let (mut spend, mut hours) = (0.0, 0.0);
        // Per hour of the week and of the day: spend, unsteered spend and hours watched.
        let mut week = [(0.0f64, 0.0f64, 0.0f64); HOURS_OF_WEEK];
        let mut day = [(0.0f64, 0.0f64, 0.0f64); HOURS_OF_DAY];
        // The last week only: the history kept before it is for the level shift.
        let newest = self.history.back().map_or(0, |w| w.at.timestamp());
        let first = self
            .history
            .partition_point(|w| w.at.timestamp() < newest - LEVER_WINDOW);
        let mut before: Option<&Watched> = None;
        for w in self.history.range(first..) {
            if !(skip_blind && w.blind) {
                sum += w.unsteered;
                count += 1;
            }
            if let Some(a) = before
                && let Some(secs) = interval((a, w), skip_blind)
            {
                let spent = (w.cumulative - a.cumulative).max(0.0);
                let h = secs / 3600.0;
                spend += spent;
                hours += h;
                for slot in [&mut week[a.slot], &mut day[a.slot % HOURS_OF_DAY]] {
                    slot.0 += spent;
                    slot.1 += w.unsteered * h;
                    slot.2 += h;
                }
            }
            before = Some(w);
        }
        Learnt {
            unsteered: sum / count.max(1) as f64,
            spend,
            hours,
            profile: hourly_profile(&week, &day),
        }
    }

    /// What the hourly unsteered spend shows of a level shift (the forecaster's
    /// `level_shift` rule). The series holds the complete hours of the history, its first
    /// hour left out as partly dropped, so it changes only when an hour completes or the
    /// history's first hour moves: it is read again only then, not at every sample.
    fn level(&mut self) -> Level {
        let skip_blind = self.has_seen();
        let first_hour = self
            .history
            .front()
            .map_or(0, |w| w.at.timestamp().div_euclid(3600));
        let last_hour = self
            .history
            .back()
            .map_or(0, |w| w.at.timestamp().div_euclid(3600));
        let key = (first_hour, last_hour, skip_blind);
        if let Some(level) = self.level.filter(|l| l.key == key) {
            return level;
        }
        // Unsteered spend per hour (`None`: not watched, or blind), the hour in progress and
        // the first hour left out.
        let mut hourly: Vec<Option<f64>> =
            vec![None; usize::try_from(last_hour - first_hour).unwrap_or(0)];
        let mut before: Option<&Watched> = None;
        for w in &self.history {
            if let Some(a) = before
                && let Some(secs) = interval((a, w), skip_blind)
                && let Some(slot) = usize::try_from(a.at.timestamp().div_euclid(3600) - first_hour)
                    .ok()
                    .filter(|i| *i > 0)
                    .and_then(|i| hourly.get_mut(i))
            {
                *slot = Some(slot.unwrap_or(0.0) + w.unsteered * secs / 3600.0);
            }
            before = Some(w);
        }
        let level = Level {
            key,
            shift: crate::forecast::auto::level_shift(&hourly, chrono::TimeDelta::hours(1)),
            week_ratio: week_ratio(&hourly),
        };
        self.level = Some(level);
        level
    }

    /// Keeps the level shift in force at `now_hour` from what the history shows: `seen`, a
    /// shift found now (its ratio), and `ratio`, the last hours over the same hours a week
    /// before. A shift is found only while the new level is unusual against the week before,
    /// about a day; the week's profile holds hours from before it for a week. So a shift is
    /// kept from its first hour until a week has passed, while the last hours stay nearer
    /// its ratio than the old level (a load that came back drops it).
    fn follow_shift(&mut self, now_hour: i64, seen: Option<f64>, ratio: Option<f64>) {
        let span = SHIFT_HOURS;
        self.shift = match (self.shift, seen) {
            // Seen again within two days, the same way: the same shift, at its latest ratio.
            (Some((at, old)), Some(r)) if r.ln() * old.ln() > 0.0 && now_hour - at < 48 => {
                Some((at, r))
            }
            (_, Some(r)) => Some((now_hour - span, r)),
            (Some((at, r)), None) => {
                // Nearer the shift's ratio than the old level's.
                let holds = ratio.is_some_and(|now| (now.ln() - r.ln()).abs() < now.ln().abs());
                (now_hour - at < HOURS_OF_WEEK as i64 && (now_hour - at < 2 * span || holds))
                    .then_some((at, r))
            }
            (None, None) => None,
        };
    }

    /// Whether any of the history was watched with the load seen: blind time is then left
    /// out of what the history teaches.
    fn has_seen(&self) -> bool {
        self.history.iter().any(|w| !w.blind)
    }
}

/// The mean spend rate and unsteered rate per hour of the week (UTC) from the sums per hour
/// of the `week` and of the `day`, once every hour of the day has been watched; `None`
/// before. An hour of the week watched has its own rates; one not watched (in the first week,
/// or blind) has those of its hour of the day.
fn hourly_profile(
    week: &[(f64, f64, f64); HOURS_OF_WEEK],
    day: &[(f64, f64, f64); HOURS_OF_DAY],
) -> Option<Vec<(f64, f64)>> {
    if day.iter().any(|s| s.2 <= 0.0) {
        return None;
    }
    let rates = |s: &(f64, f64, f64)| (s.0 / s.2, s.1 / s.2);
    Some(
        week.iter()
            .enumerate()
            .map(|(slot, s)| {
                if s.2 > 0.0 {
                    rates(s)
                } else {
                    rates(&day[slot % HOURS_OF_DAY])
                }
            })
            .collect(),
    )
}

/// The seconds between two consecutive samples, when they count: `None` for no time, or for
/// blind time when `skip_blind`.
fn interval((a, b): (&Watched, &Watched), skip_blind: bool) -> Option<f64> {
    let secs = b.secs;
    (secs > 0 && !(skip_blind && a.blind)).then_some(secs as f64)
}

const HOURS_OF_DAY: usize = 24;
const HOURS_OF_WEEK: usize = 7 * 24;

/// The slot of the hour `hour` (hours since the Unix epoch, UTC) in a profile of `slots`
/// hours: its hour of the day, or of the week (from Monday; the epoch was a Thursday).
fn slot_of_hour(hour: i64, slots: usize) -> usize {
    let of_day = hour.rem_euclid(24);
    let slot = if slots == HOURS_OF_WEEK {
        (hour.div_euclid(24) + 3).rem_euclid(7) * 24 + of_day
    } else {
        of_day
    };
    usize::try_from(slot).unwrap_or(0) % slots.max(1)
}

/// The spend and unsteered spend of `[now, end)` by the hourly `profile` (a day or a week).
/// Called at every step for the rest of the period, so in whole seconds rather than calendar
/// arithmetic.
fn rest_of(
    now: DateTime<Utc>,
    end: DateTime<Utc>,
    profile: &[(f64, f64)],
    shift: Option<(i64, i64, f64)>,
) -> (f64, f64) {
    let (mut spend, mut unsteered) = (0.0, 0.0);
    let (mut at, end) = (now.timestamp(), end.timestamp());
    if profile.is_empty() {
        return (spend, unsteered);
    }
    let mut hour = at.div_euclid(3600);
    // Hour after hour, the slot after slot (a day or a week wraps round).
    let mut slot = slot_of_hour(hour, profile.len());
    // With a level shift: an hour's profile was watched the last time its slot came round
    // before `now`, a cycle (or more) before it, so whether it predates the shift repeats
    // every cycle: the first `cutoff` hours of each cycle from `now` do.
    let cycle = profile.len() as i64;
    let (cutoff, ratio) = shift.map_or((0, 1.0), |(now_hour, from, ratio)| {
        (from + cycle - now_hour, ratio)
    });
    let mut phase = shift.map_or(0, |(now_hour, _, _)| (hour - now_hour).rem_euclid(cycle));
    while at < end {
        let until = ((hour + 1) * 3600).min(end);
        let mut hours = (until - at) as f64 / 3600.0;
        // An hour whose profile was watched before a level shift is at the new level.
        if phase < cutoff {
            hours *= ratio;
        }
        phase = if phase + 1 == cycle { 0 } else { phase + 1 };
        spend += profile[slot].0 * hours;
        unsteered += profile[slot].1 * hours;
        at = until;
        hour += 1;
        slot = if slot + 1 == profile.len() {
            0
        } else {
            slot + 1
        };
    }
    (spend, unsteered)
}

/// The hours a level shift is judged over (the forecaster's `SHIFT_SPAN`).
const SHIFT_HOURS: i64 = 6;

/// The last [`SHIFT_HOURS`] complete hours of `hourly` over the same hours a week before;
/// `None` on a gap, a zero or too short a history.
fn week_ratio(hourly: &[Option<f64>]) -> Option<f64> {
    let week = HOURS_OF_WEEK;
    let span = SHIFT_HOURS as usize;
    let n = hourly.len();
    if n < week + span {
        return None;
    }
    let (mut now, mut before) = (0.0, 0.0);
    for t in n - span..n {
        now += hourly[t]?;
        before += hourly[t - week]?;
    }
    (now > 0.0 && before > 0.0)
        .then(|| now / before)
        .filter(|r| r.is_finite())
}

/// Every budget of a policy file, fed by the cost meter.
#[derive(Debug, Clone)]
pub struct BudgetTracker {
    budgets: Vec<Tracked>,
    groups: BTreeMap<String, GroupCost>,
    converter: Converter,
    last: Vec<BudgetStatus>,
    /// The lever plan of each (budget, group) on `cap`, from the last evaluation.
    plans: BTreeMap<(usize, String), LeverPlan>,
}

impl BudgetTracker {
    /// The budgets of `policy` (already validated: every budget's currency converts).
    pub fn new(policy: &PolicyFile) -> Self {
        let converter = Converter::new(&policy.costs);
        let mut groups = BTreeMap::new();
        for g in &policy.groups {
            let utilization_target = g
                .policies
                .iter()
                .filter_map(|p| match p {
                    PolicyConfig::TargetTracking(tt) if tt.metric == MetricKind::Utilization => {
                        Some(tt.target)
                    }
                    _ => None,
                })
                .reduce(f64::min);
            groups.insert(
                g.name.clone(),
                GroupCost {
                    provider: g.provider.clone(),
                    labels: g.labels.clone(),
                    cumulative: 0.0,
                    run_rate: 0.0,
                    levers: GroupLevers::new(utilization_target),
                    capacity: 0,
                    blind: false,
                    forecast: Vec::new(),
                },
            );
        }
        let budgets = policy
            .budgets
            .iter()
            .map(|b| {
                let currency = b.currency.as_deref().unwrap_or(converter.currency());
                // Converted in decimals (30 EUR at 1.08 is 32.40, not 32.400000000000006).
                let amount = converter
                    .convert(b.amount, currency)
                    .map_or_else(|| decimal_f64(b.amount), decimal_f64);
                let converted_from = converter
                    .converted(decimal_f64(b.amount), currency)
                    .and_then(|c| c.via);
                Tracked {
                    control: BudgetControl::new(b.action),
                    frame: 1.0,
                    config: b.clone(),
                    amount,
                    converted_from,
                }
            })
            .collect();
        BudgetTracker {
            budgets,
            groups,
            converter,
            last: Vec::new(),
            plans: BTreeMap::new(),
        }
    }

    /// Starts each budget from the last state an earlier run recorded (`hoist run`'s cost
    /// ledger) for the period it is in at `now`: its spend so far and its pace. Records from
    /// another period, or later than `now` (a simulated run's), are ignored. Returns how many
    /// budgets were seeded.
    pub fn seed(&mut self, now: DateTime<Utc>, records: &[BudgetStatus]) -> usize {
        let mut seeded = 0;
        for tracked in &mut self.budgets {
            let period = tracked.config.period.containing(now);
            let last = records
                .iter()
                .filter(|r| {
                    r.budget == tracked.config.name
                        && r.at <= now
                        && (r.period_start, r.period_end) == period
                })
                .max_by_key(|r| r.at);
            if let Some(r) = last {
                tracked.control.seed(period, r.spent, r.pace_per_hour);
                seeded += 1;
            }
        }
        seeded
    }

    /// Whether the policy file has any budget.
    pub fn is_empty(&self) -> bool {
        self.budgets.is_empty()
    }

    /// The reporting currency.
    pub fn currency(&self) -> &str {
        self.converter.currency()
    }

    /// What the meter says of `group` at `now`: `cumulative` charged since it was first
    /// observed and `run_rate` per hour now, both in `currency`; the capacity it has, and its
    /// load when known: busy instances (utilisation × ready) and ready instances. Amounts in
    /// a currency without a rate in `costs.exchange_rates` cannot be counted and are left out
    /// (a provider's catalog currency is only known once it answers; `hoist cost` names such
    /// currencies).
    #[allow(clippy::too_many_arguments)]
    pub fn observe_group(
        &mut self,
        group: &str,
        now: DateTime<Utc>,
        (cumulative, run_rate, currency): (f64, f64, &str),
        capacity: u32,
        load: Option<(f64, u32)>,
    ) {
        let Some(rate) = self.converter.rate(currency).map(decimal_f64) else {
            return;
        };
        let Some(state) = self.groups.get_mut(group) else {
            return;
        };
        state.cumulative = cumulative * rate;
        state.run_rate = run_rate * rate;
        state.levers.observe(now, capacity, load);
        state.capacity = capacity;
        state.blind = load.is_none();
    }

    /// A predictive policy's forecast for `group` at `now` (`None`: none, or not trusted):
    /// each point's capacity holds until the next point; budgets forecast the spend of the
    /// time it covers from it.
    pub fn observe_forecast(
        &mut self,
        group: &str,
        now: DateTime<Utc>,
        points: Option<&[crate::ForecastPoint]>,
    ) {
        let Some(state) = self.groups.get_mut(group) else {
            return;
        };
        state.forecast.clear();
        let Some(points) = points else { return };
        let usable: Vec<&crate::ForecastPoint> = points
            .iter()
            .filter(|p| p.instances.is_finite() && p.instances >= 0.0)
            .collect();
        for pair in usable.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if b.at > a.at && b.at > now {
                state.forecast.push((a.at.max(now), b.at, a.instances));
            }
        }
    }

    /// Each budget's state at `now`.
    pub fn evaluate(&mut self, now: DateTime<Utc>) -> Vec<BudgetStatus> {
        let mut out = Vec::with_capacity(self.budgets.len());
        for (index, tracked) in self.budgets.iter_mut().enumerate() {
            let b = &tracked.config;
            let covered: Vec<String> = self
                .groups
                .iter()
                .filter(|(name, g)| b.scope.covers(name, &g.provider, &g.labels))
                .map(|(name, _)| name.clone())
                .collect();
            let (mut cumulative, mut run_rate, mut unsteered) = (0.0, 0.0, 0.0);
            // The groups' lever samples at their prices, for the frame.
            let mut sampled = 0.0;
            for name in &covered {
                let g = &self.groups[name];
                cumulative += g.cumulative;
                run_rate += g.run_rate;
                unsteered += g.levers.unsteered_rate(g.run_rate, g.capacity);
                if g.capacity > 0 {
                    sampled += g.levers.mean_unsteered().unwrap_or(0.0) * g.run_rate
                        / f64::from(g.capacity);
                }
            }
            let period = b.period.containing(now);
            // Where every group in scope has a forecast, the spend of the time it covers.
            let until = covered
                .iter()
                .map(|n| self.groups[n].forecast_until())
                .collect::<Option<Vec<_>>>()
                .and_then(|ends| ends.into_iter().min())
                .map(|u| u.min(period.1))
                .filter(|u| *u > now && !covered.is_empty());
            let ahead = until.and_then(|until| {
                covered
                    .iter()
                    .map(|n| self.groups[n].forecast_spend(now, until))
                    .sum::<Option<f64>>()
                    .map(|spend| (until, spend))
            });
            tracked.control.set_ahead(ahead);
            // Blind when no group of the scope has its load seen.
            tracked
                .control
                .set_blind(!covered.is_empty() && covered.iter().all(|n| self.groups[n].blind));
            let step = tracked.control.step(
                now,
                period,
                tracked.amount,
                cumulative,
                (run_rate, unsteered),
            );
            tracked.frame = frame(tracked.control.unsteered_rate(), sampled);
            // The levers are planned per group when the group asks (`steer_for`), so a budget
            // over thousands of groups does not plan them all at once; the status shows the
            // largest target scale of the plans made so far in this rung.
            let target_scale = if step.rung == Some(Rung::Cap) && step.share < 1.0 {
                covered
                    .iter()
                    .filter_map(|n| self.plans.get(&(index, n.clone())))
                    .map(|p| p.target_scale)
                    .fold(1.0, f64::max)
            } else {
                self.plans.retain(|(i, _), _| *i != index);
                1.0
            };
            let crossed = |list: &[f64], value: f64| -> Vec<f64> {
                let mut v: Vec<f64> = list
                    .iter()
                    .copied()
                    .filter(|t| tracked.amount > 0.0 && value >= tracked.amount * t / 100.0)
                    .collect();
                v.sort_by(f64::total_cmp);
                v
            };
            out.push(BudgetStatus {
                budget: b.name.clone(),
                scope: b.scope.to_string(),
                groups: covered.clone(),
                period: b.period.label(),
                period_start: period.0,
                period_end: period.1,
                amount: tracked.amount,
                currency: self.converter.currency().to_owned(),
                converted_from: tracked.converted_from.clone(),
                spent: step.spent,
                run_rate_per_hour: run_rate,
                pace_per_hour: step.pace_per_hour,
                forecast: step.forecast,
                rung: step.rung,
                target_scale,
                capacity_kept: step.share,
                actual_crossed: crossed(&b.alert_on.actual, step.spent),
                forecast_crossed: crossed(&b.alert_on.forecast, step.forecast),
                at: now,
            });
        }
        self.last.clone_from(&out);
        out
    }

    /// The last statuses [`BudgetTracker::evaluate`] returned.
    pub fn statuses(&self) -> &[BudgetStatus] {
        &self.last
    }

    /// What the budgets covering `group` ask of its next decision: the strictest of them (the
    /// highest rung; under `cap`, the largest target scale and the smallest cap). `None` when
    /// no budget covering it is on a rung.
    pub fn steer_for(&mut self, group: &str) -> Option<BudgetSteer> {
        let state = self.groups.get_mut(group)?;
        let mut best: Option<BudgetSteer> = None;
        for (index, (tracked, status)) in self.budgets.iter().zip(&self.last).enumerate() {
            let b = &tracked.config;
            if !b.scope.covers(group, &state.provider, &state.labels) {
                continue;
            }
            let Some(rung) = status.rung else { continue };
            let plan = if rung == Rung::Cap && status.capacity_kept < 1.0 {
                // Planned here, per group; reused for up to an hour while the share holds.
                let plan = state.levers.plan(
                    status.at,
                    status.capacity_kept * tracked.frame,
                    b.max_utilization,
                );
                self.plans.insert((index, group.to_owned()), plan);
                Some(plan)
            } else {
                None
            };
            let plan = plan.as_ref();
            let steer = BudgetSteer {
                budget: b.name.clone(),
                rung,
                target_scale: plan.map_or(1.0, |p| p.target_scale),
                max_utilization: b.max_utilization,
                cap: plan.and_then(|p| p.cap),
                enforce: rung == Rung::Cap
                    && enforces_cap(status.at, (status.period_start, status.period_end)),
                spent: status.spent,
                forecast: status.forecast,
                amount: status.amount,
                currency: status.currency.clone(),
            };
            best = Some(match best {
                None => steer,
                Some(prev) => stricter(prev, steer),
            });
        }
        match &best {
            Some(steer) if steer.rung == Rung::Cap => {
                state.levers.steered_by(steer.target_scale, steer.cap);
            }
            _ => state.levers.steered_by(1.0, None),
        }
        best
    }
}

fn stricter(a: BudgetSteer, b: BudgetSteer) -> BudgetSteer {
    let (mut hi, lo) = if b.rung > a.rung { (b, a) } else { (a, b) };
    if lo.rung == hi.rung {
        hi.target_scale = hi.target_scale.max(lo.target_scale);
        hi.cap = match (hi.cap, lo.cap) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        hi.enforce |= lo.enforce;
    }
    hi
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, hour, minute, 0).unwrap()
    }

    /// A workload that costs 4 an hour from 12:00 to 18:00 and 1 an hour otherwise (42 a day),
    /// fed every 5 minutes from 2 March 00:00 until `until`; returns the last step.
    fn feed(control: &mut BudgetControl, amount: f64, until: DateTime<Utc>) -> ControlStep {
        let mut now = at(2, 0, 0);
        let mut cumulative = 0.0;
        let mut last = None;
        while now <= until {
            let hour = chrono::Timelike::hour(&now);
            let rate = if (12..18).contains(&hour) { 4.0 } else { 1.0 };
            let period = BudgetPeriod::Daily.containing(now);
            last = Some(control.step(now, period, amount, cumulative, (rate, rate)));
            cumulative += rate * 5.0 / 60.0;
            now += TimeDelta::minutes(5);
        }
        last.unwrap()
    }

    use crate::config::budget::BudgetPeriod;
    use chrono::TimeDelta;

    #[test]
    fn after_a_day_the_forecast_follows_the_hours_ahead() {
        // At 09:00 on the second day: 9 hours at 1 spent; ahead, 6 hours at 4 and 9 at 1.
        let mut control = BudgetControl::new(Rung::Alert);
        let step = feed(&mut control, 1000.0, at(3, 9, 0));
        assert!((step.spent - 9.0).abs() < 0.2, "{step:?}");
        assert!((step.forecast - 42.0).abs() < 0.5, "{step:?}");
        // A flat pace (42 / 24 an hour) would have said 9 + 15 × 1.75 = 35.25.
    }

    #[test]
    fn cap_asks_the_whole_cut_at_once_and_enforces_it_in_the_last_tenth() {
        // A budget of 30 a day for a workload of 42: over, so the budget is on `cap`.
        let mut control = BudgetControl::new(Rung::Cap);
        let early = feed(&mut control, 30.0, at(3, 1, 0));
        assert_eq!(early.rung, Some(Rung::Cap));
        // At 01:00 on the second day, 1 spent: 29.85 − 1 is affordable (the budget aims 0.5 %
        // under) against 41 ahead (6 hours at 4, 17 at 1), all of it asked now.
        assert!((early.share - 28.85 / 41.0).abs() < 0.01, "{early:?}");
        let mut control = BudgetControl::new(Rung::Cap);
        let late = feed(&mut control, 30.0, at(3, 20, 0));
        // At 20:00 the day has cost 12 + 24 + 2 = 38 (the feed does not react to the cap),
        // past the 30: nothing is affordable, so the whole cut is asked (a share of 0).
        assert_eq!(late.rung, Some(Rung::Cap));
        assert!((late.spent - 38.0).abs() < 0.2, "{late:?}");
        assert!(late.share.abs() < 1e-9, "{late:?}");
        // The cap is enforced (capacity above it brought down) from 21:36, the last tenth.
        let day = BudgetPeriod::Daily.containing(at(3, 12, 0));
        assert!(!enforces_cap(at(3, 21, 35), day));
        assert!(enforces_cap(at(3, 21, 36), day));
    }

    /// 2 an hour on weekdays and 0.5 at weekends, fed every 5 minutes from Monday 2 March to
    /// Friday 13 March at 00:00 under a monthly budget, blind when `blind` says; the last step.
    fn feed_weekdays(blind: impl Fn(DateTime<Utc>) -> bool) -> ControlStep {
        let mut control = BudgetControl::new(Rung::Alert);
        let mut now = at(2, 0, 0);
        let mut cumulative = 0.0;
        let mut last = None;
        while now <= at(13, 0, 0) {
            let weekend = chrono::Datelike::weekday(&now).number_from_monday() > 5;
            let rate = if weekend { 0.5 } else { 2.0 };
            control.set_blind(blind(now));
            let period = BudgetPeriod::Monthly.containing(now);
            last = Some(control.step(now, period, 5000.0, cumulative, (rate, rate)));
            cumulative += rate * 5.0 / 60.0;
            now += TimeDelta::minutes(5);
        }
        last.unwrap()
    }

    #[test]
    fn after_a_week_the_forecast_knows_the_weekend() {
        // Spent by Friday 13 March: 9 weekdays × 48 + 2 weekend days × 12 = 456. Ahead: 13
        // weekdays × 48 + 6 weekend days × 12 = 696. An average day (37.7) for the 19 days
        // left would say 716.6.
        let step = feed_weekdays(|_| false);
        assert!((step.spent - 456.0).abs() < 0.5, "{step:?}");
        assert!((step.forecast - (456.0 + 696.0)).abs() < 1.0, "{step:?}");
    }

    #[test]
    fn hours_of_the_week_not_watched_take_their_hour_of_the_day() {
        // As above, but Wednesday 11 March from 12:00 to 18:00 was blind. Those six hours of
        // the week take the rate of their hours of the day, (5 × 2 + 2 × 0.5) / 7 = 11/7, on
        // the two Wednesdays ahead: 696 − 12 × (2 − 11/7) ahead. The rest of the week keeps
        // its own hours; falling back to the day's profile for all of them would say 716.6.
        let step = feed_weekdays(|now| now >= at(11, 12, 0) && now < at(11, 18, 0));
        let ahead = 696.0 - 12.0 * (2.0 - 11.0 / 7.0);
        assert!((step.spent - 456.0).abs() < 0.5, "{step:?}");
        assert!((step.forecast - (456.0 + ahead)).abs() < 1.0, "{step:?}");
    }

    #[test]
    fn the_cap_is_set_from_the_capacity_the_group_had_not_its_mean_load() {
        // A steady 7 busy instances; the policy keeps 10 or 14 minute by minute (as one does
        // on a noisy load, holding its peaks). Affording 90 % of that (a mean of 12) takes
        // 10.8 on average: a cap of 11 (10 and 11 in turn), not the 9 that 90 % of the load
        // over the target (7 / 0.7 = 10) would give.
        let mut levers = GroupLevers::new(Some(0.7));
        let mut now = at(2, 0, 0);
        for i in 0..(24 * 60) {
            let capacity = if i % 2 == 0 { 10 } else { 14 };
            levers.observe(now, capacity, Some((7.0, capacity)));
            now += TimeDelta::minutes(1);
        }
        let plan = levers.plan(now, 0.9, 0.7);
        assert_eq!(plan.target_scale, 1.0, "{plan:?}");
        assert_eq!(plan.cap, Some(11), "{plan:?}");
        assert_eq!(plan.estimated_under, Some(0.0), "{plan:?}");
    }

    #[test]
    fn at_the_cap_the_unsteered_capacity_is_the_load_over_the_target() {
        // Held at a cap of 10 with 9.8 busy, the group would have had 14 unsteered (9.8 / 0.7):
        // its unsteered rate is 1.4 times its run rate. Not at the cap, or with no cap in
        // force, it is its run rate.
        let mut levers = GroupLevers::new(Some(0.7));
        levers.steered_by(1.0, Some(10));
        levers.observe(at(2, 0, 0), 10, Some((9.8, 10)));
        assert!((levers.unsteered_rate(10.0, 10) - 14.0).abs() < 1e-6);
        levers.observe(at(2, 0, 1), 8, Some((5.0, 8)));
        assert!((levers.unsteered_rate(8.0, 8) - 8.0).abs() < 1e-6);
        levers.steered_by(1.0, None);
        levers.observe(at(2, 0, 2), 10, Some((9.8, 10)));
        assert!((levers.unsteered_rate(10.0, 10) - 10.0).abs() < 1e-6);
        // A raised target scales it too.
        levers.steered_by(1.25, None);
        levers.observe(at(2, 0, 3), 8, Some((7.0, 8)));
        assert!((levers.unsteered_rate(8.0, 8) - 10.0).abs() < 1e-6);
        // An absurd load at the cap asks no more than the whole capacity over the target.
        levers.steered_by(1.0, Some(10));
        levers.observe(at(2, 0, 4), 10, Some((1e12, 10)));
        assert!((levers.unsteered_rate(10.0, 10) - 10.0 / 0.7).abs() < 1e-6);
    }

    #[test]
    fn spend_watched_before_a_period_forecasts_its_first_hours() {
        // A week watched at 1 an hour before a ten-day period starts: at its first step the
        // forecast is the week's profile (about 240), not the run rate of the moment (5 an
        // hour, 1200) that a budget with no history would have to go by.
        let start = at(10, 0, 0);
        let period = (start, start + TimeDelta::days(10));
        let mut watched = BudgetControl::new(Rung::Alert);
        let mut fresh = BudgetControl::new(Rung::Alert);
        let mut now = start - TimeDelta::days(7);
        let mut cumulative = 0.0;
        while now < start {
            watched.watch(now, cumulative, 1.0);
            cumulative += 5.0 / 60.0;
            now += TimeDelta::minutes(5);
        }
        let step = watched.step(start, period, 1000.0, cumulative, (5.0, 5.0));
        assert!((step.forecast - 240.0).abs() < 5.0, "{step:?}");
        let step = fresh.step(start, period, 1000.0, cumulative, (5.0, 5.0));
        assert!((step.forecast - 1200.0).abs() < 1.0, "{step:?}");
    }

    #[test]
    fn time_with_the_load_unseen_is_spent_but_not_taken_as_the_pattern_ahead() {
        // A week at 1 an hour before a ten-day period from Tuesday 10 March, except its last
        // two days (Sunday and Monday), when the metrics were missing and the group held a
        // peak's capacity blind, at 10 an hour. Taken as a pattern, every Sunday and Monday
        // ahead would cost 240: 8 days × 24 + 2 × 240 = 672. Left out, their hours of the week
        // take the rate of their hour of the day: 240.
        let start = at(10, 0, 0);
        let period = (start, start + TimeDelta::days(10));
        let blind_from = start - TimeDelta::days(2);
        let forecast = |skip_blind: bool| {
            let mut control = BudgetControl::new(Rung::Alert);
            let mut now = start - TimeDelta::days(7);
            let mut cumulative = 0.0;
            while now < start {
                let blind = now >= blind_from;
                control.set_blind(skip_blind && blind);
                let rate = if blind { 10.0 } else { 1.0 };
                control.watch(now, cumulative, rate);
                cumulative += rate * 5.0 / 60.0;
                now += TimeDelta::minutes(5);
            }
            control.set_blind(false);
            let step = control.step(start, period, 1000.0, cumulative, (1.0, 1.0));
            // The blind spend was spent all the same (before the period here).
            assert!((cumulative - (5.0 * 24.0 + 2.0 * 240.0)).abs() < 1e-6);
            step
        };
        let step = forecast(true);
        assert!((step.forecast - 240.0).abs() < 2.0, "{step:?}");
        assert!((step.pace_per_hour - 1.0).abs() < 0.01, "{step:?}");
        let step = forecast(false);
        assert!((step.forecast - 672.0).abs() < 5.0, "{step:?}");
    }

    #[test]
    fn blind_spend_in_the_period_counts_and_all_blind_history_is_still_used() {
        // A scope never seen (no utilisation signal at all): its history is all blind, and is
        // used as it is, not dropped. Its spend in the period counts.
        let start = at(10, 0, 0);
        let period = (start, start + TimeDelta::days(10));
        let mut control = BudgetControl::new(Rung::Alert);
        control.set_blind(true);
        let mut now = start - TimeDelta::days(7);
        let mut cumulative = 0.0;
        while now < start + TimeDelta::days(1) {
            if now >= start {
                control.step(now, period, 1000.0, cumulative, (2.0, 2.0));
            } else {
                control.watch(now, cumulative, 2.0);
            }
            cumulative += 2.0 * 5.0 / 60.0;
            now += TimeDelta::minutes(5);
        }
        let step = control.step(now, period, 1000.0, cumulative, (2.0, 2.0));
        assert!((step.spent - 48.0).abs() < 0.5, "{step:?}");
        assert!((step.forecast - 480.0).abs() < 2.0, "{step:?}");
    }

    #[test]
    fn each_load_is_judged_against_the_capacity_decided_before_it() {
        // Every 5 minutes the load climbs from 6.9 busy to 8.9, 11.4 and 14.3, then drops
        // back for two minutes; the group follows it, 10 to 21 instances at 0.7. Judged
        // against the capacity decided on its own minute, a target raised by 1.25 looked free
        // (each minute's capacity over 1.25 is still above its load) and was chosen with no
        // cap. Each rise meets the capacity decided a minute before it, so a target raised so
        // far is short on three minutes of five; affording 80 %, the plan keeps the rises
        // (raised by no more than 10 / 8.9) and caps the top, short on one.
        let mut levers = GroupLevers::new(Some(0.7));
        let mut now = at(2, 0, 0);
        for i in 0..(24 * 60) {
            let busy = [6.9, 8.9, 11.4, 14.3, 6.9][i % 5];
            let capacity = (busy / 0.7f64).ceil() as u32;
            levers.observe(now, capacity, Some((busy, capacity)));
            now += TimeDelta::minutes(1);
        }
        let plan = levers.plan(now, 0.8, 0.9);
        assert!(plan.target_scale <= 10.0 / 8.9, "{plan:?}");
        assert!(plan.cap.is_some_and(|c| c < 14), "{plan:?}");
        let under = plan.estimated_under.expect("estimated from the load");
        assert!((under - 0.2).abs() < 0.01, "{plan:?}");
    }

    #[test]
    fn saturated_samples_count_as_short_in_the_lever_estimate() {
        // Each 5 minutes: four samples at half utilisation of 10 ready, one saturated. The
        // mean load (6 busy) is under any plan's capacity, but the saturated fifth of the time
        // had more demand than the 10 ready: a plan that gives no more than 10 is short then.
        let mut levers = GroupLevers::new(Some(0.7));
        let mut now = at(2, 0, 0);
        for i in 0..(24 * 60) {
            let busy = if i % 5 == 4 { 10.0 } else { 5.0 };
            levers.observe(now, 10, Some((busy, 10)));
            now += TimeDelta::minutes(1);
        }
        let plan = levers.plan(now, 0.9, 0.9);
        let under = plan.estimated_under.expect("estimated from the load");
        assert!((under - 0.2).abs() < 0.01, "{plan:?}");
    }

    #[test]
    fn a_forecast_capacity_gives_the_spend_of_the_time_it_covers() {
        // In the first hour (pace = run rate 1.0), at 02:00 with 22 hours left: without a
        // forecast, 22 × 1; with one saying the next 10 hours cost 30, 30 + 12 × 1.
        let period = BudgetPeriod::Daily.containing(at(2, 2, 0));
        let mut plain = BudgetControl::new(Rung::Alert);
        let step = plain.step(at(2, 2, 0), period, 100.0, 0.0, (1.0, 1.0));
        assert!((step.forecast - 22.0).abs() < 1e-9, "{step:?}");
        let mut ahead = BudgetControl::new(Rung::Alert);
        ahead.set_ahead(Some((at(2, 12, 0), 30.0)));
        let step = ahead.step(at(2, 2, 0), period, 100.0, 0.0, (1.0, 1.0));
        assert!((step.forecast - 42.0).abs() < 1e-9, "{step:?}");
        // It is used for one step only: the next one without it is back to the pace.
        let step = ahead.step(at(2, 2, 1), period, 100.0, 0.0, (1.0, 1.0));
        assert!(step.forecast < 23.0, "{step:?}");
    }

    #[test]
    fn a_seed_carries_the_spend_of_an_earlier_run_into_the_same_period() {
        let mut control = BudgetControl::new(Rung::Alert);
        let period = BudgetPeriod::Daily.containing(at(2, 12, 0));
        control.seed(period, 20.0, 2.0);
        let step = control.step(at(2, 12, 0), period, 100.0, 0.0, (1.0, 1.0));
        assert!((step.spent - 20.0).abs() < 1e-9, "{step:?}");
        // In its first hour the budget forecasts at the seeded pace: 20 + 12 h × 2.
        assert!((step.forecast - 44.0).abs() < 1e-9, "{step:?}");
        // Another period ignores it.
        let mut control = BudgetControl::new(Rung::Alert);
        control.seed(period, 20.0, 2.0);
        let next = BudgetPeriod::Daily.containing(at(3, 1, 0));
        let step = control.step(at(3, 1, 0), next, 100.0, 0.0, (1.0, 1.0));
        assert_eq!(step.spent, 0.0);
    }

    #[test]
    fn hours_of_the_week_follow_the_calendar() {
        // From 1901 to 2100, negative Unix times included, every 7 h and 13 min: each slot is
        // the weekday from Monday × 24 + the hour, as the calendar has it.
        let mut t = Utc.with_ymd_and_hms(1901, 1, 1, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap();
        let mut checked = 0;
        while t < end {
            let hour = t.timestamp().div_euclid(3600);
            let weekday = chrono::Datelike::weekday(&t).num_days_from_monday() as usize;
            let of_day = chrono::Timelike::hour(&t) as usize;
            assert_eq!(
                slot_of_hour(hour, HOURS_OF_WEEK),
                weekday * 24 + of_day,
                "{t}"
            );
            assert_eq!(slot_of_hour(hour, HOURS_OF_DAY), of_day, "{t}");
            t += TimeDelta::minutes(7 * 60 + 13);
            checked += 1;
        }
        assert!(checked > 200_000);
    }

    #[test]
    fn the_rest_of_a_period_is_summed_hour_by_hour_of_the_week() {
        // Slot k spends k + 1 per hour and would spend twice that unsteered. From Tuesday
        // 10:30 to Wednesday 01:15: half of slot 34, slots 35 to 48 whole and a quarter of
        // slot 49 (Wednesday 01:00).
        let profile: Vec<(f64, f64)> = (0..HOURS_OF_WEEK)
            .map(|k| (k as f64 + 1.0, 2.0 * (k as f64 + 1.0)))
            .collect();
        let rate = |slot: u32| f64::from(slot) + 1.0;
        // 1970-01-06 was a Tuesday.
        let from = Utc.with_ymd_and_hms(1970, 1, 6, 10, 30, 0).unwrap();
        let until = Utc.with_ymd_and_hms(1970, 1, 7, 1, 15, 0).unwrap();
        let want = 0.5 * rate(34) + (35..=48).map(rate).sum::<f64>() + 0.25 * rate(49);
        let (spend, unsteered) = rest_of(from, until, &profile, None);
        assert!((spend - want).abs() < 1e-9, "{spend} against {want}");
        assert!((unsteered - 2.0 * want).abs() < 1e-9, "{unsteered}");
        assert_eq!(rest_of(until, from, &profile, None), (0.0, 0.0));
        // Across the end of the week: Sunday 22:30 to Monday 01:00 is half of slot 166, slot
        // 167 and slot 0.
        let from = Utc.with_ymd_and_hms(1970, 1, 4, 22, 30, 0).unwrap();
        let until = Utc.with_ymd_and_hms(1970, 1, 5, 1, 0, 0).unwrap();
        let want = 0.5 * rate(166) + rate(167) + rate(0);
        let (spend, _) = rest_of(from, until, &profile, None);
        assert!((spend - want).abs() < 1e-9, "{spend} against {want}");
    }

    #[test]
    fn cap_climbs_where_the_forecast_crosses_its_aim() {
        // The workload costs 42 a day; a budget of 42.1 aims 0.5 % under it at 01:00, at
        // 41.89: `cap` climbs, with a share just under 1 (the cut is gentle),
        // where waiting for the amount itself would climb only once the spend had run past
        // the aim, and then cut the whole margin out of the hours left.
        let mut control = BudgetControl::new(Rung::Cap);
        let step = feed(&mut control, 42.1, at(3, 1, 0));
        assert_eq!(step.rung, Some(Rung::Cap), "{step:?}");
        let aim = 42.1 * (1.0 - 0.005);
        assert!((step.share - (aim - 1.0) / 41.0).abs() < 0.002, "{step:?}");
        assert!(step.share > 0.99 && step.share < 1.0, "{step:?}");
        // Another rung climbs at the amount.
        let mut control = BudgetControl::new(Rung::Alert);
        assert_eq!(feed(&mut control, 42.1, at(3, 1, 0)).rung, None);
    }

    #[test]
    fn a_level_shift_is_followed_until_the_load_comes_back() {
        // 1 an hour for nine and a half days, then 2 an hour (a launch, or a holiday's end):
        // eight hours later the rest of March is forecast at 2 an hour, though the week's
        // profile still holds 1 for all but those hours. When the load falls back to 1, the
        // shift is dropped.
        let mut control = BudgetControl::new(Rung::Alert);
        let mut now = at(1, 0, 0);
        let mut cumulative = 0.0;
        let mut run = |control: &mut BudgetControl, until: DateTime<Utc>, rate: f64| {
            let mut last = None;
            while now <= until {
                let period = BudgetPeriod::Monthly.containing(now);
                last = Some(control.step(now, period, 1e9, cumulative, (rate, rate)));
                cumulative += rate * 5.0 / 60.0;
                now += TimeDelta::minutes(5);
            }
            last.unwrap()
        };
        let end = at(31, 0, 0) + TimeDelta::days(1);
        let before = run(&mut control, at(10, 12, 0), 1.0);
        let left = |t: DateTime<Utc>| (end - t).num_seconds() as f64 / 3600.0;
        let rest = before.forecast - before.spent;
        assert!(
            (rest - left(at(10, 12, 0))).abs() < 0.02 * rest,
            "{before:?}"
        );
        let shifted = run(&mut control, at(10, 20, 0), 2.0);
        let rest = shifted.forecast - shifted.spent;
        let want = 2.0 * left(at(10, 20, 0));
        assert!((rest - want).abs() < 0.02 * want, "{rest} against {want}");
        // A day and a half later the shift is no longer unusual week on week, and the rest
        // is still forecast at the new level.
        let later = run(&mut control, at(12, 8, 0), 2.0);
        let rest = later.forecast - later.spent;
        let want = 2.0 * left(at(12, 8, 0));
        assert!((rest - want).abs() < 0.02 * want, "{rest} against {want}");
        // Back at 1 for twelve hours: the shift is dropped, and the rest is forecast by the
        // week's profile alone (at 2 for the 56 hours of it at 2, at 1 for the others).
        let back = run(&mut control, at(12, 20, 0), 1.0);
        let rest = back.forecast - back.spent;
        let hours = left(at(12, 20, 0));
        assert!(rest > hours && rest < 1.5 * hours, "{rest} against {hours}");
    }

    #[test]
    fn the_margin_shrinks_over_the_last_tenth_to_a_floor() {
        // A 30-day month: the last tenth is 72 hours.
        let month = 720.0;
        for (left, want) in [
            (700.0, 0.005),
            (72.0, 0.005),
            (36.0, 0.0025),
            (7.2, 0.001),
            (1.0, 0.001),
            (0.0, 0.001),
        ] {
            assert!((margin(left, month) - want).abs() < 1e-12, "{left}");
        }
        // A day: the last 2.4 hours.
        assert!((margin(12.0, 24.0) - 0.005).abs() < 1e-12);
        assert!((margin(1.2, 24.0) - 0.0025).abs() < 1e-12);
        assert!((margin(0.0, 0.0) - 0.005).abs() < 1e-12);
    }

    #[test]
    fn a_share_of_the_budgets_rate_plans_the_capacity_the_budget_affords() {
        // A day of a noisy load whose lever samples average `m` instances, while the budget,
        // sampling the same group every 5 minutes, measured 2 % more. At a share of 0.8 the
        // budget affords 0.8 × 1.02 × m instances: the frame plans a cap whose mean capacity
        // over the samples brackets that, where the bare share plans one under it.
        let mut levers = GroupLevers::new(Some(0.7));
        let mut now = at(2, 0, 0);
        let mut seed: u64 = 5;
        for _ in 0..(24 * 60) {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let noise = (seed >> 11) as f64 / (1u64 << 53) as f64;
            let busy = 40.0 + 30.0 * noise;
            let capacity = (busy / 0.7).ceil() as u32;
            levers.observe(now, capacity, Some((busy, capacity)));
            now += TimeDelta::minutes(1);
        }
        let m = levers.mean_unsteered().unwrap();
        let base: Vec<f64> = levers
            .loads
            .iter()
            .flat_map(|b| b.samples().iter().map(|s| f64::from(s.unsteered)))
            .collect();
        assert!((base.iter().sum::<f64>() / base.len() as f64 - m).abs() < 1e-9);
        let mean_under =
            |cap: u32| base.iter().map(|b| b.min(f64::from(cap))).sum::<f64>() / base.len() as f64;
        let price = 0.1;
        let affords = 0.8 * 1.02 * m;
        let f = frame(Some(1.02 * m * price), m * price);
        assert!((f - 1.02).abs() < 1e-9, "{f}");
        let framed = levers.compute(0.8 * f, 0.7).cap.unwrap();
        assert!(
            mean_under(framed) <= affords && affords <= mean_under(framed + 1),
            "cap {framed}: {} .. {} against {affords}",
            mean_under(framed),
            mean_under(framed + 1)
        );
        let bare = levers.compute(0.8, 0.7).cap.unwrap();
        assert!(mean_under(bare + 1) < affords, "cap {bare}");
        // Unknown or absurd measures leave the share as it is.
        assert_eq!(frame(None, 5.0), 1.0);
        assert_eq!(frame(Some(5.0), 0.0), 1.0);
        assert_eq!(frame(Some(f64::NAN), 5.0), 1.0);
        assert_eq!(frame(Some(100.0), 1.0), 2.0);
    }

    #[test]
    fn the_lever_plan_finds_the_cap_a_pass_over_every_sample_finds() {
        // A week of a noisy daily load, planned at many shares: the cap of each plan is the
        // level at which the mean capacity under it (each sample's capacity over the plan's
        // scale) meets the share, found by halving over every sample's sum as well.
        let mut levers = GroupLevers::new(Some(0.7));
        let mut now = at(1, 0, 0);
        let mut seed: u64 = 11;
        for i in 0..(7 * 24 * 12) {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let noise = (seed >> 11) as f64 / (1u64 << 53) as f64;
            let day = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
            let busy = 20.0 + 12.0 * day.sin() + 6.0 * noise;
            let capacity = (busy / 0.7).ceil() as u32;
            levers.observe(now, capacity, Some((busy, capacity)));
            now += TimeDelta::minutes(5);
        }
        let base: Vec<f64> = levers
            .loads
            .iter()
            .flat_map(|b| b.samples().iter().map(|s| f64::from(s.unsteered)))
            .collect();
        let n = base.len() as f64;
        let mut capped = 0;
        for step in 0..40 {
            let share = 0.5 + 0.0125 * f64::from(step);
            let plan = levers.compute(share, 0.9);
            let Some(cap) = plan.cap else { continue };
            capped += 1;
            let scale = plan.target_scale;
            let goal = base.iter().sum::<f64>() / n * share;
            let mean_at = |level: f64| base.iter().map(|b| (b / scale).min(level)).sum::<f64>() / n;
            let (mut lo, mut hi) = (0.0, base.iter().fold(0.0f64, |m, b| m.max(b / scale)));
            for _ in 0..30 {
                let mid = (lo + hi) / 2.0;
                if mean_at(mid) > goal {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            assert_eq!(cap, lo.floor() as u32, "share {share}: {plan:?}");
        }
        assert!(capped > 10, "{capped} plans capped");
    }
}
