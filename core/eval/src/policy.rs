//! A policy file's group as a replay controller: the real policy engine ([`hoist_engine::decide`])
//! fed with the metrics the replay's pipeline delivers.
//!
//! Every `run.interval` of the policy file the engine gets a [`GroupSnapshot`] (desired, ready,
//! booting) and [`MetricWindows`] with one sample per metric period for the last
//! [`HISTORY_PERIODS`] periods of each signal the group's policies read, each stamped with the time
//! the pipeline delivered it. A period without data (a trace gap, no ready instance) is a `NaN`
//! sample, which the engine treats as missing. Applied decisions are recorded in the engine's
//! memory, as the control loop does.
//!
//! A group with a predictive policy also gets a forecast: at every evaluation the latest
//! (lagged) period of the policy's metric is fed to a [`PredictiveForecast`], stamped with the
//! time it describes; the forecaster refits on the policy's `refresh` schedule and the points go
//! to the engine in [`Observation::forecast`]. The forecaster only knows what the replay showed
//! it: a replay of a window starts without history.

use chrono::{DateTime, TimeDelta, Utc};

use super::ReplayParams;
use super::replay::{Controller, Signal, StartContext, View, requirement_per_step};
use crate::model::{MetricKind, Sample};
use hoist_engine::budget::{BudgetControl, BudgetSteer, GroupLevers};
use hoist_engine::config::budget::Rung;
use hoist_engine::config::{GroupConfig, PolicyConfig};
use hoist_engine::{
    DecisionMemory, ForecastPoint, GroupSnapshot, MetricWindows, Observation, PredictiveForecast,
    decide,
};

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
    metric_lag_seconds: i64,
    capacity_per_instance: f64,
    predictive: Option<(PredictiveForecast, Signal)>,
    last_forecast: Option<f64>,
    /// Scored evaluations of the predictive policy, by what its forecast was: used, or not and
    /// why (numbers in the reason replaced by `N`, so like reasons count together).
    forecast_use: std::collections::BTreeMap<String, u64>,
    /// The last reason the forecast was not used, and its key in `forecast_use`.
    last_fallback: Option<(String, String)>,
    budget: Option<BudgetState>,
    price_per_hour: f64,
}

/// A budget over a replay: periods with their amounts, and the rung it may climb.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayBudget {
    /// `[start, end)` and the amount that may be spent in it, in the replay's money.
    pub periods: Vec<(DateTime<Utc>, DateTime<Utc>, f64)>,
    /// The highest rung.
    pub action: Rung,
    /// How hot a utilisation target may be run under `cap`.
    pub max_utilization: f64,
}

#[derive(Debug, Clone)]
struct BudgetState {
    config: ReplayBudget,
    control: BudgetControl,
    levers: GroupLevers,
    /// Bill before the scored part (the fleet's bill restarts at zero when scoring starts).
    offset: f64,
    last_cost: f64,
    restarted: bool,
    /// Decisions a budget changed, by rung.
    steered: std::collections::BTreeMap<String, u64>,
}

fn signal_of(kind: &MetricKind) -> Option<Signal> {
    Some(match kind {
        MetricKind::Utilization => Signal::Utilization,
        MetricKind::RequestRate => Signal::RequestRate,
        MetricKind::QueueDepth => Signal::QueueDepth,
        MetricKind::LatencyP95 => Signal::LatencyP95,
        MetricKind::LatencyP99 => Signal::LatencyP99,
        MetricKind::ErrorRate => Signal::ErrorRate,
        MetricKind::Custom(_) => return None,
    })
}

impl PolicyController {
    /// `group` of a policy file evaluated every `interval_seconds`. Fails when the group reads
    /// a custom metric the replay cannot produce.
    pub fn new(name: &str, group: GroupConfig, interval_seconds: i64) -> Result<Self, String> {
        let mut kinds = Vec::new();
        for kind in group.metrics_needed() {
            let Some(signal) = signal_of(&kind) else {
                return Err(format!(
                    "group {}: custom metric {:?} cannot be replayed; the replay produces utilization, request_rate, queue_depth, latency_p95, latency_p99 and error_rate",
                    group.name,
                    kind.name()
                ));
            };
            kinds.push((kind, signal));
        }
        let mut predictive = None;
        for policy in &group.policies {
            if let PolicyConfig::Predictive(p) = policy {
                let state = PredictiveForecast::new(p)
                    .map_err(|e| format!("group {}: predictive policy: {e}", group.name))?;
                let signal = signal_of(&p.metric).ok_or_else(|| {
                    format!(
                        "group {}: the predictive metric cannot be replayed",
                        group.name
                    )
                })?;
                predictive = Some((state, signal));
                break;
            }
        }
        Ok(PolicyController {
            name: name.to_owned(),
            group,
            interval_seconds: interval_seconds.max(1),
            memory: DecisionMemory::new(),
            kinds,
            metric_period_seconds: 60,
            metric_lag_seconds: 60,
            capacity_per_instance: 1.0,
            predictive,
            last_forecast: None,
            forecast_use: std::collections::BTreeMap::new(),
            last_fallback: None,
            budget: None,
            price_per_hour: 0.0,
        })
    }

    /// The group it replays.
    pub fn group(&self) -> &GroupConfig {
        &self.group
    }

    /// The same controller with the group's `min` and `max` replaced, so that it is scored
    /// under the same bounds as the controllers it is compared with (an availability floor
    /// above the new `max` is lowered to it).
    pub fn with_bounds(mut self, min: u32, max: u32) -> Self {
        self.group.min = min;
        self.group.max = max.max(min);
        if let Some(floor) = self.group.guards.availability_floor.as_mut() {
            *floor = (*floor).clamp(min, max.max(min));
        }
        self
    }

    /// Seconds between its evaluations.
    pub fn interval_seconds(&self) -> i64 {
        self.interval_seconds
    }

    /// The same controller under `budget`: before each decision the budget is stepped with the
    /// bill so far, and what it asks of the group goes to the engine as
    /// [`Observation::budget`], as the control loop does with the cost meter.
    pub fn with_budget(mut self, budget: ReplayBudget) -> Self {
        let target = self
            .group
            .policies
            .iter()
            .filter_map(|p| match p {
                PolicyConfig::TargetTracking(tt) if tt.metric == MetricKind::Utilization => {
                    Some(tt.target)
                }
                _ => None,
            })
            .reduce(f64::min);
        self.budget = Some(BudgetState {
            control: BudgetControl::new(budget.action),
            config: budget,
            levers: GroupLevers::new(target),
            offset: 0.0,
            last_cost: 0.0,
            restarted: false,
            steered: std::collections::BTreeMap::new(),
        });
        self
    }

    /// What the budget asks of the decision at `view`, after stepping it.
    fn budget_steer(
        &mut self,
        view: &View<'_>,
        ahead: Option<&[ForecastPoint]>,
    ) -> Option<BudgetSteer> {
        let price = self.price_per_hour;
        let state = self.budget.as_mut()?;
        let now = view.at();
        let cost = view.cost();
        if state.restarted {
            state.restarted = false;
            state.offset += state.last_cost;
        }
        state.last_cost = cost;
        let cumulative = state.offset + cost;
        let load = match (
            view.signal(Signal::Utilization, 0),
            view.signal(Signal::ReadyInstances, 0),
        ) {
            (Some(u), Some(r)) if r.is_finite() && r >= 0.0 => Some((u * r, r.round() as u32)),
            _ => None,
        };
        state.levers.observe(now, view.desired, load);
        // With no load seen (a gap in the trace), the group holds its capacity blind.
        state.control.set_blind(load.is_none());
        let run_rate = f64::from(view.desired) * price;
        let unsteered = state.levers.unsteered_rate(run_rate, view.desired);
        let Some(&(start, end, amount)) = state
            .config
            .periods
            .iter()
            .find(|(s, e, _)| *s <= now && now < *e)
        else {
            // Outside every period (the warm-up): watched, not steered.
            state.control.watch(now, cumulative, unsteered);
            return None;
        };
        // A predictive policy's forecast capacity gives the spend of the time it covers, as in
        // the control loop.
        let ahead = ahead.and_then(|points| {
            let until = points.last()?.at.min(end);
            let mut spend = 0.0;
            for pair in points.windows(2) {
                let (from, to) = (pair[0].at.max(now), pair[1].at.min(until));
                if to > from && pair[0].instances.is_finite() {
                    spend += pair[0].instances.max(0.0) * price * (to - from).num_seconds() as f64
                        / 3600.0;
                }
            }
            (until > now).then_some((until, spend))
        });
        state.control.set_ahead(ahead);
        let step = state
            .control
            .step(now, (start, end), amount, cumulative, (run_rate, unsteered));
        let plan = (step.rung == Some(Rung::Cap) && step.share < 1.0).then(|| {
            let frame = hoist_engine::budget::frame(
                state.control.unsteered_rate(),
                state.levers.mean_unsteered().unwrap_or(0.0) * price,
            );
            state
                .levers
                .plan(now, step.share * frame, state.config.max_utilization)
        });
        state.levers.steered_by(
            plan.map_or(1.0, |p| p.target_scale),
            plan.and_then(|p| p.cap),
        );
        let rung = step.rung?;
        Some(BudgetSteer {
            budget: "replay".into(),
            rung,
            target_scale: plan.map_or(1.0, |p| p.target_scale),
            max_utilization: state.config.max_utilization,
            cap: plan.and_then(|p| p.cap),
            enforce: rung == Rung::Cap && hoist_engine::budget::enforces_cap(now, (start, end)),
            spent: step.spent,
            forecast: step.forecast,
            amount,
            currency: "USD".into(),
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
        self.metric_lag_seconds = ctx.params.metric_lag.as_secs() as i64;
        self.capacity_per_instance = ctx.params.capacity_per_instance;
        self.price_per_hour = ctx.params.price_per_hour;
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
        let forecast = self.forecast_input(view);
        let (points, note) = match &forecast {
            Some(f) => (f.points.as_deref(), f.note.as_deref()),
            None => (None, None),
        };
        let steer = self.budget_steer(view, forecast.as_ref().and_then(|f| f.points.as_deref()));
        let observation = Observation {
            now: view.at(),
            group: &snapshot,
            metrics: &metrics,
            forecast: points,
            forecast_note: note,
            budget: steer.as_ref(),
        };
        let (decision, update) = decide(&self.group, &observation, &self.memory);
        if let Some(state) = self.budget.as_mut() {
            let changed = decision
                .reasons
                .iter()
                .any(|r| r.source.starts_with("budget.") || r.message.contains("raised to"));
            let key = match &steer {
                Some(steer) if changed => format!("budget: decided on rung {}", steer.rung),
                Some(steer) => format!("budget: on rung {}, decision unchanged", steer.rung),
                None => "budget: inside, decision unchanged".to_owned(),
            };
            *state.steered.entry(key).or_default() += 1;
        }
        self.memory.apply(&update);
        if let Some(f) = &forecast {
            // A reason stays the same between refits: its key is made once.
            let key: &str = match (&f.points, &f.note) {
                (Some(_), _) => "forecast used",
                (None, Some(note)) => {
                    if self.last_fallback.as_ref().is_none_or(|(n, _)| n != note) {
                        self.last_fallback =
                            Some((note.clone(), format!("fell back: {}", numbers_as_n(note))));
                    }
                    self.last_fallback
                        .as_ref()
                        .map_or("fell back", |(_, k)| k.as_str())
                }
                (None, None) => "fell back",
            };
            match self.forecast_use.get_mut(key) {
                Some(count) => *count += 1,
                None => {
                    self.forecast_use.insert(key.to_owned(), 1);
                }
            }
        }
        if !decision.dry_run {
            self.memory.record_applied(&decision);
            decision.desired
        } else {
            view.desired
        }
    }

    fn forecast(&self) -> Option<f64> {
        self.last_forecast
    }

    fn scoring_starts(&mut self) {
        self.forecast_use.clear();
        if let Some(state) = self.budget.as_mut() {
            state.restarted = true;
            state.steered.clear();
        }
    }

    fn tally(&self) -> Vec<(String, u64)> {
        let mut tally: Vec<(String, u64)> = self
            .forecast_use
            .iter()
            .chain(self.budget.iter().flat_map(|b| b.steered.iter()))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        tally.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        tally
    }
}

/// `text` with every number (digits, with a sign or a decimal part) replaced by `N`.
fn numbers_as_n(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        while i < chars.len()
            && (chars[i].is_ascii_digit()
                || chars[i] == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            i += 1;
        }
        if out.ends_with(['-', '+']) {
            out.pop();
        }
        out.push('N');
    }
    out
}

impl PolicyController {
    /// Feeds the predictive policy's forecaster the latest period of its metric and asks it for
    /// the forecast now (refitted only on the policy's schedule).
    fn forecast_input(&mut self, view: &View<'_>) -> Option<hoist_engine::ForecastInput> {
        let (state, signal) = self.predictive.as_mut()?;
        let now = view.at();
        if let Some(value) = view.signal(*signal, 0) {
            let load = if *signal == Signal::Utilization {
                view.signal(Signal::ReadyInstances, 0)
                    .map(|ready| value * ready)
            } else {
                Some(value)
            };
            if let Some(load) = load.filter(|l| l.is_finite()) {
                let at = now
                    - TimeDelta::seconds(self.metric_lag_seconds + self.metric_period_seconds / 2);
                let saturated = *signal == Signal::Utilization && value >= 0.99;
                state.observe_load(at, load, saturated);
            }
        }
        let input = state.forecast(now);
        let target = state.policy().target;
        // The chart's forecast line is demand in instances: busy instances for utilisation,
        // the rate over one instance's capacity otherwise.
        let per_instance = if *signal == Signal::Utilization {
            1.0
        } else {
            self.capacity_per_instance
        };
        self.last_forecast = state
            .cached_at(now)
            .map(|instances| instances * target / per_instance);
        Some(input)
    }
}

#[cfg(test)]
mod tests {
    use super::numbers_as_n;

    #[test]
    fn numbers_become_n_and_the_rest_stays() {
        assert_eq!(
            numbers_as_n("history spans 30.5 h: confirmed from 48 h on."),
            "history spans N h: confirmed from N h on."
        );
        assert_eq!(numbers_as_n("MASE -1.25 (limit 1.00)"), "MASE N (limit N)");
        assert_eq!(numbers_as_n("no cycle"), "no cycle");
    }
}
