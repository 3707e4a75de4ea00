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
//! Spend to the period's end is the spend so far plus the hours left times a rate: the mean
//! rate over the last 24 h (one daily cycle, so a forecast made at the afternoon peak does not
//! take the peak for the day), or over what there is when the budget has watched for less than
//! a day, or the current run rate in the first hour.
//!
//! # The ladder
//!
//! When the forecast exceeds the amount, the budget climbs to the rung it names and stays there
//! until the forecast falls back under 97 % of the amount (or a new period starts):
//!
//! - `alert`: alerts only.
//! - `prefer_cheaper`: instance-class choices prefer cheaper classes and spot. The engine has no
//!   instance-class choice of its own yet, so on this rung decisions are unchanged and say so.
//! - `cap`: the spend rate is brought to what the rest of the period affords, headroom first.
//!   The affordable fraction of the current pace becomes a *target scale*: utilisation targets
//!   are raised by it (0.7 → 0.82 for a budget 15 % short), up to the budget's
//!   `max_utilization`, so the capacity that was idle headroom is given up before any demand is
//!   left unserved. Only when the raised targets are not enough is capacity cut: each group gets
//!   a cap, the level that clips its last day's capacity profile (24 hourly means) by the
//!   remaining shortfall, so the cut falls on its peaks. The scale follows the spend by feedback
//!   (it is set from the pace measured under the scale of the last day), so it settles where the
//!   budget holds rather than where a model of the workload says it should.
//! - `deny_scale_out`: no scale-out at all.
//!
//! Whatever the rung, a budget never takes a group below `min`, never blocks a scale-in, and
//! never blocks a scale-out up to the group's availability floor (`guards.availability_floor`,
//! default `min`).

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::config::budget::{BudgetConfig, Converter, Rung, decimal_f64};
use crate::config::{PolicyConfig, PolicyFile};
use crate::model::MetricKind;

/// The forecast must fall under this share of the amount for a budget to step off its rung.
const RELEASE: f64 = 0.97;
/// The trailing window of the pace.
const PACE_WINDOW: i64 = 24 * 3600;
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
    /// `web-monthly (cap): forecast 5,400.00 USD over 5,000.00 USD, 3,100.00 spent`.
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
    /// Under `cap`: the target scale applied.
    pub target_scale: f64,
    /// Under `cap`: the share of capacity kept after the target scale (1 = no cut).
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
    /// Mean capacity per hour of day over the last day: (sum of capacity × seconds, seconds).
    profile: [(f64, f64); 24],
    last_seen: Option<DateTime<Utc>>,
    /// The lowest utilisation target of the group's target-tracking policies.
    utilization_target: Option<f64>,
}

impl GroupCost {
    /// The capacity that clips this group's daily profile to `kept` of its capacity-hours.
    fn cap_level(&self, kept: f64) -> Option<u32> {
        let hours: Vec<f64> = self
            .profile
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

/// One budget's running state.
#[derive(Debug, Clone)]
struct Tracked {
    config: BudgetConfig,
    amount: f64,
    converted_from: Option<(String, f64, chrono::NaiveDate)>,
    control: BudgetControl,
}

/// The feedback state of one budget, independent of where its figures come from (the control
/// loop's meter, or a replay's bill).
#[derive(Debug, Clone)]
pub struct BudgetControl {
    max_rung: Rung,
    max_scale: f64,
    period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Cumulative spend of the scope at the period's start.
    base: f64,
    /// (time, cumulative spend, the run rate without the raised targets) samples over the
    /// pace window.
    history: VecDeque<(DateTime<Utc>, f64, f64)>,
    rung: Option<Rung>,
    scale: f64,
    kept: f64,
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
    /// The target scale in force.
    pub target_scale: f64,
    /// The share of capacity kept after the scale.
    pub capacity_kept: f64,
}

impl BudgetControl {
    /// A budget that may climb to `max_rung`, raising utilisation targets by at most
    /// `max_scale`.
    pub fn new(max_rung: Rung, max_scale: f64) -> Self {
        BudgetControl {
            max_rung,
            max_scale: max_scale.max(1.0),
            period: None,
            base: 0.0,
            history: VecDeque::new(),
            rung: None,
            scale: 1.0,
            kept: 1.0,
        }
    }

    /// One evaluation at `now` in the period `[start, end)` with budget `amount`: `cumulative`
    /// is what the scope has cost since it was first watched, `run_rate` its cost per hour now.
    pub fn step(
        &mut self,
        now: DateTime<Utc>,
        (start, end): (DateTime<Utc>, DateTime<Utc>),
        amount: f64,
        cumulative: f64,
        run_rate: f64,
    ) -> ControlStep {
        if self.period != Some((start, end)) {
            // A new period: spend counts from here, the rung is released, the pace is kept
            // (it describes the workload, not the period).
            self.period = Some((start, end));
            self.base = cumulative;
            self.rung = None;
            self.scale = 1.0;
            self.kept = 1.0;
        }
        let spent = (cumulative - self.base).max(0.0);
        if self
            .history
            .back()
            .is_none_or(|(at, _, _)| (now - *at).num_seconds() >= SAMPLE_EVERY)
        {
            // The rate the scope would run at without the raised targets: capacity goes as
            // one over the target.
            self.history
                .push_back((now, cumulative, run_rate.max(0.0) * self.scale));
        }
        while self
            .history
            .front()
            .is_some_and(|(at, _, _)| (now - *at).num_seconds() > PACE_WINDOW)
        {
            self.history.pop_front();
        }
        // The pace: the trailing mean rate, or the run rate before an hour is watched.
        let unscaled =
            self.history.iter().map(|h| h.2).sum::<f64>() / self.history.len().max(1) as f64;
        let pace = match self.history.front() {
            Some((at, cum, _)) if (now - *at).num_seconds() >= 3600 => {
                let hours = (now - *at).num_seconds() as f64 / 3600.0;
                ((cumulative - cum) / hours).max(0.0)
            }
            _ => run_rate.max(0.0),
        };
        let hours_left = (end - now).num_seconds().max(0) as f64 / 3600.0;
        let forecast = spent + pace * hours_left;
        let over = forecast > amount;
        let release = forecast < amount * RELEASE;
        if over {
            self.rung = Some(self.max_rung);
        } else if release && self.rung.is_some() && self.scale <= 1.0 && self.kept >= 1.0 {
            self.rung = None;
        }
        if self.rung >= Some(Rung::Cap) && self.max_rung == Rung::Cap {
            // What the rest of the period affords per hour, against the pace it would have
            // without any scale.
            let affordable = if hours_left > 0.0 {
                ((amount - spent) / hours_left).max(0.0)
            } else {
                0.0
            };
            let wanted = if affordable > 0.0 {
                unscaled / affordable
            } else {
                f64::INFINITY
            };
            self.scale = wanted.clamp(1.0, self.max_scale);
            self.kept = if wanted > self.max_scale {
                (self.max_scale / wanted).clamp(0.0, 1.0)
            } else {
                1.0
            };
            if release && self.scale <= 1.0 {
                self.rung = None;
            }
        } else {
            self.scale = 1.0;
            self.kept = 1.0;
        }
        ControlStep {
            spent,
            pace_per_hour: pace,
            forecast,
            rung: self.rung,
            target_scale: self.scale,
            capacity_kept: self.kept,
        }
    }
}

/// Every budget of a policy file, fed by the cost meter.
#[derive(Debug, Clone)]
pub struct BudgetTracker {
    budgets: Vec<Tracked>,
    groups: BTreeMap<String, GroupCost>,
    converter: Converter,
    last: Vec<BudgetStatus>,
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
                    utilization_target,
                    ..GroupCost::default()
                },
            );
        }
        let budgets = policy
            .budgets
            .iter()
            .map(|b| {
                let currency = b.currency.as_deref().unwrap_or(converter.currency());
                let converted = converter.converted(decimal_f64(b.amount), currency);
                let (amount, converted_from) = match converted {
                    Some(c) => (c.amount, c.via),
                    None => (decimal_f64(b.amount), None),
                };
                // How far a target may be raised: to max_utilization from the lowest
                // utilisation target among the budget's groups.
                let lowest = policy
                    .groups
                    .iter()
                    .filter(|g| b.scope.covers(&g.name, &g.provider, &g.labels))
                    .filter_map(|g| {
                        groups
                            .get(&g.name)
                            .and_then(|c: &GroupCost| c.utilization_target)
                    })
                    .reduce(f64::min);
                let max_scale = lowest.map_or(1.0, |t| (b.max_utilization / t).max(1.0));
                Tracked {
                    control: BudgetControl::new(b.action, max_scale),
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
        }
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
    /// observed and `run_rate` per hour now, both in `currency`, and the capacity it has.
    /// Amounts in a currency without a rate are ignored (validation refuses such files).
    pub fn observe_group(
        &mut self,
        group: &str,
        now: DateTime<Utc>,
        cumulative: f64,
        run_rate: f64,
        currency: &str,
        capacity: u32,
    ) {
        let Some(rate) = self.converter.rate(currency).map(decimal_f64) else {
            return;
        };
        let Some(state) = self.groups.get_mut(group) else {
            return;
        };
        state.cumulative = cumulative * rate;
        state.run_rate = run_rate * rate;
        if let Some(last) = state.last_seen {
            let secs = (now - last).num_seconds().clamp(0, 3600) as f64;
            let hour = usize::try_from(chrono::Timelike::hour(&now)).unwrap_or(0) % 24;
            let slot = &mut state.profile[hour];
            // Keep about a day per slot: decay what is older.
            if slot.1 > 3600.0 {
                let keep = 3600.0 / slot.1;
                slot.0 *= keep;
                slot.1 *= keep;
            }
            slot.0 += f64::from(capacity) * secs;
            slot.1 += secs;
        }
        state.last_seen = Some(now);
    }

    /// Each budget's state at `now`.
    pub fn evaluate(&mut self, now: DateTime<Utc>) -> Vec<BudgetStatus> {
        let mut out = Vec::with_capacity(self.budgets.len());
        for tracked in &mut self.budgets {
            let b = &tracked.config;
            let covered: Vec<(&String, &GroupCost)> = self
                .groups
                .iter()
                .filter(|(name, g)| b.scope.covers(name, &g.provider, &g.labels))
                .collect();
            let cumulative: f64 = covered.iter().map(|(_, g)| g.cumulative).sum();
            let run_rate: f64 = covered.iter().map(|(_, g)| g.run_rate).sum();
            let period = b.period.containing(now);
            let step = tracked
                .control
                .step(now, period, tracked.amount, cumulative, run_rate);
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
                groups: covered.iter().map(|(n, _)| (*n).clone()).collect(),
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
                target_scale: step.target_scale,
                capacity_kept: step.capacity_kept,
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
    pub fn steer_for(&self, group: &str) -> Option<BudgetSteer> {
        let state = self.groups.get(group)?;
        let mut best: Option<BudgetSteer> = None;
        for (tracked, status) in self.budgets.iter().zip(&self.last) {
            let b = &tracked.config;
            if !b.scope.covers(group, &state.provider, &state.labels) {
                continue;
            }
            let Some(rung) = status.rung else { continue };
            let cap = if rung == Rung::Cap && status.capacity_kept < 1.0 {
                state.cap_level(status.capacity_kept)
            } else {
                None
            };
            let steer = BudgetSteer {
                budget: b.name.clone(),
                rung,
                target_scale: status.target_scale,
                max_utilization: b.max_utilization,
                cap,
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
    }
    hi
}

/// Seconds in a delta, for callers that build periods by hand.
pub fn hours(delta: TimeDelta) -> f64 {
    delta.num_seconds() as f64 / 3600.0
}
