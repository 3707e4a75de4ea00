//! Budgets in a replay: what each period was allowed and spent, and the budget bar: a policy
//! under a budget's ladder against the simplest alternative, its `max` lowered until every
//! period fits.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::policy::{PolicyController, ReplayBudget};
use super::replay::{Controller, ReplayOptions, SeriesPoint};
use super::score::Score;
use super::{Demand, EvalError, ReplayParams, replay_warm};
use hoist_engine::config::GroupConfig;
use hoist_engine::config::budget::{BudgetPeriod, Rung};

/// The periods of `period` that overlap `[from, until)`, clipped to it.
pub fn periods_of(
    period: &BudgetPeriod,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut at = from;
    while at < until {
        let (_, end) = period.containing(at);
        let end = end.min(until);
        if end <= at {
            break;
        }
        out.push((at, end));
        at = end;
    }
    out
}

/// Whether a period is long enough in the replay to say whether its budget held: a day.
pub fn judged((start, end): (DateTime<Utc>, DateTime<Utc>)) -> bool {
    end - start >= chrono::TimeDelta::days(1)
}

/// What a replay's series spent in each period (its steps' bills, by the step's end).
pub fn spend_per_period(
    series: &[SeriesPoint],
    step_seconds: i64,
    periods: &[(DateTime<Utc>, DateTime<Utc>)],
) -> Vec<f64> {
    let mut spend = vec![0.0; periods.len()];
    let mut before = 0.0;
    for point in series {
        let end = point.at + chrono::TimeDelta::seconds(step_seconds);
        let step_cost = point.cost - before;
        before = point.cost;
        if let Some(i) = periods.iter().position(|(s, e)| *s < end && end <= *e) {
            spend[i] += step_cost;
        }
    }
    spend
}

/// One period of the bar.
#[derive(Debug, Clone, Serialize)]
pub struct PeriodBudget {
    /// Start.
    pub start: DateTime<Utc>,
    /// End (the end of the scored part for the last one).
    pub end: DateTime<Utc>,
    /// What the reference spent in it.
    pub reference: f64,
    /// The budget: `fraction` of the reference.
    pub budget: f64,
}

/// One run of the bar.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetRun {
    /// What ran.
    pub name: String,
    /// Spend per period.
    pub spend: Vec<f64>,
    /// Whether every period stayed inside its budget.
    pub held: bool,
    /// The score over the scored part.
    pub score: Score,
}

/// The budget bar on one trace.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetBar {
    /// The budget per period.
    pub amount: BudgetAmount,
    /// The periods.
    pub periods: Vec<PeriodBudget>,
    /// The reference (the HPA at the run's target), without a budget.
    pub reference: BudgetRun,
    /// The policy without a budget.
    pub unbudgeted: BudgetRun,
    /// The policy under the budget's ladder.
    pub ladder: BudgetRun,
    /// The policy with its `max` lowered until every period fits, and that `max`.
    pub static_max: Option<(u32, BudgetRun)>,
}

impl BudgetBar {
    /// Whether the ladder held the budget with no more under-provisioning (τ_U) than the
    /// static `max`.
    pub fn ladder_wins(&self) -> bool {
        self.ladder.held
            && self
                .static_max
                .as_ref()
                .is_none_or(|(_, s)| self.ladder.score.tau_u <= s.score.tau_u)
    }
}

/// What a replay's budget is per period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetAmount {
    /// This much per full period (a period cut short by the replay's end gets its share).
    Fixed(f64),
    /// This share of what the reference (the HPA) spends in each period.
    OfReference(f64),
}

impl BudgetAmount {
    /// `1200` or `85%`.
    pub fn parse(text: &str) -> Result<BudgetAmount, String> {
        let t = text.trim();
        if let Some(pct) = t.strip_suffix('%') {
            let v: f64 = pct
                .trim()
                .parse()
                .map_err(|_| format!("`{text}`: a share is a number of percent, like 85%"))?;
            if !(v > 0.0 && v <= 100.0) {
                return Err(format!(
                    "`{text}`: a share of the HPA's spend is in (0, 100] %"
                ));
            }
            return Ok(BudgetAmount::OfReference(v / 100.0));
        }
        let v: f64 = t.parse().map_err(|_| {
            format!("`{text}`: an amount per period (1200) or a share of what the HPA spends (85%)")
        })?;
        if !(v.is_finite() && v > 0.0) {
            return Err(format!("`{text}`: a budget must be positive"));
        }
        Ok(BudgetAmount::Fixed(v))
    }
}

/// The settings of a bar.
#[derive(Debug, Clone)]
pub struct BarSettings {
    /// The budget per period.
    pub amount: BudgetAmount,
    /// The budget period.
    pub period: BudgetPeriod,
    /// The rung the ladder may climb.
    pub action: Rung,
    /// How hot utilisation targets may run under `cap`.
    pub max_utilization: f64,
    /// Warm-up steps before the scored part.
    pub warmup_steps: usize,
    /// The policy's evaluation interval, seconds.
    pub interval_seconds: i64,
}

fn run(
    demand: &Demand,
    params: &ReplayParams,
    controller: &mut dyn Controller,
    warmup_steps: usize,
    periods: &[(DateTime<Utc>, DateTime<Utc>)],
    budgets: Option<&[f64]>,
) -> Result<BudgetRun, EvalError> {
    let outcome = replay_warm(
        demand,
        params,
        controller,
        ReplayOptions {
            record_series: true,
            warmup_steps,
        },
    )?;
    let spend = spend_per_period(&outcome.series, demand.step_seconds, periods);
    // A cent of slack: the bill is floating point. A period the replay covers for less than a
    // day (the first days of a month the trace ends in) is reported but not judged: a budget
    // for the rest of that month cannot be said to have ended inside or outside it.
    let held = budgets.is_none_or(|b| {
        spend
            .iter()
            .zip(b)
            .zip(periods)
            .all(|((s, b), p)| !judged(*p) || *s <= b + 0.01)
    });
    Ok(BudgetRun {
        name: controller.name(),
        spend,
        held,
        score: outcome.score,
    })
}

/// The budget of each period: a fixed amount (its share, for a period the replay cuts short)
/// or a share of what the reference spent in it.
pub fn budgets_of(
    amount: BudgetAmount,
    period: &BudgetPeriod,
    spans: &[(DateTime<Utc>, DateTime<Utc>)],
    reference_spend: &[f64],
) -> Vec<f64> {
    spans
        .iter()
        .zip(reference_spend)
        .map(|(&(start, end), &reference)| match amount {
            BudgetAmount::OfReference(f) => reference * f,
            BudgetAmount::Fixed(a) => {
                let (full_start, full_end) = period.containing(start);
                let full = (full_end - full_start).num_seconds().max(1) as f64;
                a * ((end - start).num_seconds() as f64 / full).min(1.0)
            }
        })
        .collect()
}

/// The periods of the scored part of `demand` with their budgets (a share of what `reference`
/// spends in each is one replay of it; a fixed amount needs none).
pub fn budget_periods(
    demand: &Demand,
    params: &ReplayParams,
    reference: &mut dyn Controller,
    settings: &BarSettings,
) -> Result<Vec<PeriodBudget>, EvalError> {
    let warmup = settings.warmup_steps.min(demand.len());
    let from = demand.start + chrono::TimeDelta::seconds(demand.step_seconds * warmup as i64);
    let until =
        demand.start + chrono::TimeDelta::seconds(demand.step_seconds * demand.len() as i64);
    let spans = periods_of(&settings.period, from, until);
    let reference_spend = match settings.amount {
        BudgetAmount::OfReference(_) => run(demand, params, reference, warmup, &spans, None)?.spend,
        BudgetAmount::Fixed(_) => vec![0.0; spans.len()],
    };
    let budgets = budgets_of(settings.amount, &settings.period, &spans, &reference_spend);
    Ok(spans
        .iter()
        .zip(reference_spend.iter().zip(&budgets))
        .map(|(&(start, end), (&reference, &budget))| PeriodBudget {
            start,
            end,
            reference,
            budget,
        })
        .collect())
}

/// Whether every judged period's spend is inside its budget (a cent of slack: the bill is
/// floating point; see [`judged`]).
pub fn held(periods: &[PeriodBudget], spend: &[f64]) -> bool {
    periods
        .iter()
        .zip(spend)
        .all(|(p, s)| !judged((p.start, p.end)) || *s <= p.budget + 0.01)
}

/// The budget bar of `group` on `demand`: the budget of each period is `settings.amount`
/// (a share of what `reference`, the HPA at target 0.7, spends in it, or a fixed amount); the policy runs under the ladder, and
/// with its `max` lowered (by bisection) to the largest that keeps every period inside.
pub fn budget_bar(
    demand: &Demand,
    params: &ReplayParams,
    group: &GroupConfig,
    reference: &mut dyn Controller,
    settings: &BarSettings,
) -> Result<BudgetBar, EvalError> {
    let warmup = settings.warmup_steps.min(demand.len());
    let from = demand.start + chrono::TimeDelta::seconds(demand.step_seconds * warmup as i64);
    let until =
        demand.start + chrono::TimeDelta::seconds(demand.step_seconds * demand.len() as i64);
    let spans = periods_of(&settings.period, from, until);
    let reference_run = run(demand, params, reference, warmup, &spans, None)?;
    let budgets = budgets_of(
        settings.amount,
        &settings.period,
        &spans,
        &reference_run.spend,
    );
    let periods: Vec<PeriodBudget> = spans
        .iter()
        .zip(reference_run.spend.iter().zip(&budgets))
        .map(|(&(start, end), (&reference, &budget))| PeriodBudget {
            start,
            end,
            reference,
            budget,
        })
        .collect();
    let controller = |g: &GroupConfig| {
        PolicyController::new(&g.name, g.clone(), settings.interval_seconds)
            .map_err(EvalError::Parameter)
    };
    let mut plain = controller(group)?;
    let unbudgeted = run(demand, params, &mut plain, warmup, &spans, Some(&budgets))?;
    let mut laddered = controller(group)?.with_budget(ReplayBudget {
        periods: periods.iter().map(|p| (p.start, p.end, p.budget)).collect(),
        action: settings.action,
        max_utilization: settings.max_utilization,
    });
    let mut ladder = run(
        demand,
        params,
        &mut laddered,
        warmup,
        &spans,
        Some(&budgets),
    )?;
    ladder.name = format!("{} + budget ({})", ladder.name, settings.action);

    // The largest max that holds every period: bisection between min and what the policy
    // reached unbudgeted.
    let mut lo = group.min.max(1);
    let mut hi = group.max.min(params.max_instances).max(lo);
    let mut best: Option<(u32, BudgetRun)> = None;
    while lo <= hi {
        let mid = lo + (hi - lo) / 2;
        let mut g = group.clone();
        g.max = mid;
        let mut c = controller(&g)?;
        let r = run(demand, params, &mut c, warmup, &spans, Some(&budgets))?;
        if r.held {
            best = Some((mid, r));
            lo = mid + 1;
        } else {
            if mid == 0 {
                break;
            }
            hi = mid - 1;
        }
    }
    let static_max = best.map(|(m, mut r)| {
        r.name = format!("{} with max {m}", r.name);
        (m, r)
    });
    Ok(BudgetBar {
        amount: settings.amount,
        periods,
        reference: reference_run,
        unbudgeted,
        ladder,
        static_max,
    })
}
