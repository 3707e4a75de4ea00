//! The control loop around the pure engine: observe each group through its provider, decide,
//! act, and record the decision in the audit log and the event stream.
//!
//! The loop reads time only from its [`Clock`], so on the simulated cloud it runs in virtual
//! time, as fast as the machine allows, and in production it waits on the wall clock.
//!
//! A group with a predictive policy keeps a [`PredictiveForecast`]: on its first evaluation the
//! loop fetches the policy's metric back to the policy's `history` (at a coarser step), then
//! feeds it the samples of every evaluation; the forecast (refitted on the policy's `refresh`
//! schedule) goes to the engine, and an [`Event::Forecast`] is emitted at each refit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::audit::{AuditLog, AuditRecord};
use crate::clock::Clock;
use crate::config::GroupConfig;
use crate::config::PolicyConfig;
use crate::error::{Error, Result};
use crate::events::{Event, EventSink};
use crate::model::{CapacityType, InstanceState, MetricKind, MetricQuery, ScalingGroup, TimeRange};
use crate::provider::{MetricsSource, ProviderSet};
use crate::{
    Decision, DecisionMemory, ForecastInput, GroupSnapshot, MetricWindows, Observation,
    PredictiveForecast, Reason,
};

/// Step of the history fetched for a predictive policy on its first evaluation, seconds (14 days
/// at 5 minutes is 4,032 points, within Prometheus's per-query limit).
const HISTORY_STEP_SECONDS: u32 = 300;

/// One group under the loop's control.
#[derive(Debug)]
pub struct ManagedGroup {
    /// The group's policy.
    pub config: GroupConfig,
    /// The provider it lives on.
    pub provider: ProviderSet,
    /// Where its metrics come from (the provider's own source unless the policy names another).
    pub metrics: Option<Arc<dyn MetricsSource>>,
    /// What the engine remembers about it.
    pub memory: DecisionMemory,
    /// The forecasting state of its predictive policy, if it has one.
    pub forecast: Option<PredictiveForecast>,
    /// Whether the predictive policy's history has been fetched.
    pub forecast_backfilled: bool,
}

impl ManagedGroup {
    /// A group on `provider`, reading metrics from the provider's own source.
    pub fn new(config: GroupConfig, provider: ProviderSet) -> Self {
        let metrics = provider.metrics.clone();
        let forecast = config.policies.iter().find_map(|p| match p {
            PolicyConfig::Predictive(p) => PredictiveForecast::new(p).ok(),
            _ => None,
        });
        ManagedGroup {
            config,
            provider,
            metrics,
            memory: DecisionMemory::new(),
            forecast,
            forecast_backfilled: false,
        }
    }
}

/// What happened to one group in one evaluation.
#[derive(Debug)]
pub enum GroupOutcome {
    /// The group could not be observed; nothing was decided.
    ObserveFailed {
        /// Provider name.
        provider: String,
        /// Group name.
        group: String,
        /// Why.
        error: Error,
    },
    /// A decision was made.
    Decided {
        /// Provider name.
        provider: String,
        /// The decision.
        decision: Decision,
        /// What was done with it.
        action: Action,
    },
}

/// What was done with a decision.
#[derive(Debug)]
pub enum Action {
    /// No change was needed.
    Unchanged,
    /// Recorded only (dry run).
    DryRun,
    /// The provider accepted the change.
    Applied,
    /// The provider refused or failed.
    Failed(Error),
}

impl Action {
    /// The audit-log word for it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Unchanged => "unchanged",
            Action::DryRun => "dry_run",
            Action::Applied => "applied",
            Action::Failed(_) => "failed",
        }
    }
}

/// The loop.
#[derive(Debug)]
pub struct ControlLoop {
    groups: Vec<ManagedGroup>,
    clock: Arc<dyn Clock>,
    events: Arc<dyn EventSink>,
    audit: Arc<AuditLog>,
    interval: Duration,
    dry_run: bool,
    metric_step_seconds: u32,
    prices: HashMap<(String, String), Option<(f64, String)>>,
}

impl ControlLoop {
    /// A loop over `groups`, reading time from `clock`.
    pub fn new(groups: Vec<ManagedGroup>, clock: Arc<dyn Clock>, interval: Duration) -> Self {
        ControlLoop {
            groups,
            clock,
            events: Arc::new(crate::events::NoEvents),
            audit: Arc::new(AuditLog::disabled()),
            interval,
            dry_run: false,
            metric_step_seconds: 60,
            prices: HashMap::new(),
        }
    }

    /// Sends events to `sink`.
    pub fn with_events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.events = sink;
        self
    }

    /// Appends every decision to `audit`.
    pub fn with_audit(mut self, audit: Arc<AuditLog>) -> Self {
        self.audit = audit;
        self
    }

    /// Decides but never acts.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// The clock the loop reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The groups under control.
    pub fn groups(&self) -> &[ManagedGroup] {
        &self.groups
    }

    /// Observes, decides and acts on every group once.
    pub async fn evaluate_once(&mut self) -> Vec<GroupOutcome> {
        let now = self.clock.now();
        let mut outcomes = Vec::with_capacity(self.groups.len());
        for index in 0..self.groups.len() {
            outcomes.push(self.evaluate_group(index, now).await);
        }
        outcomes
    }

    /// Evaluates every `interval` until `until` (or forever), calling `on_outcome` for each
    /// group's outcome as it happens.
    pub async fn run(
        &mut self,
        until: Option<DateTime<Utc>>,
        mut on_outcome: impl FnMut(&GroupOutcome),
    ) -> Result<()> {
        let step = TimeDelta::from_std(self.interval)
            .map_err(|_| Error::config("run interval too long"))?;
        let mut next = self.clock.now();
        loop {
            for outcome in self.evaluate_once().await {
                on_outcome(&outcome);
            }
            next += step;
            if until.is_some_and(|end| next > end) {
                return Ok(());
            }
            self.clock.sleep_until(next).await;
        }
    }

    async fn evaluate_group(&mut self, index: usize, now: DateTime<Utc>) -> GroupOutcome {
        let dry_run_all = self.dry_run;
        let provider_name = self.groups[index].provider.name.clone();
        let group_id = self.groups[index].config.provider_id().to_owned();

        let described = self.groups[index]
            .provider
            .scaling
            .describe_group(&group_id)
            .await;
        let group = match described {
            Ok(group) => group,
            Err(error) => {
                return GroupOutcome::ObserveFailed {
                    provider: provider_name,
                    group: self.groups[index].config.name.clone(),
                    error,
                };
            }
        };
        let snapshot = snapshot_of(&group);
        let cost = self.hourly_cost(index, &group).await;
        self.events.emit(&Event::GroupObserved {
            provider: provider_name.clone(),
            group: snapshot.clone(),
            min: self.groups[index].config.min,
            max: self.groups[index].config.max,
            cost_per_hour: cost.as_ref().map(|c| c.0),
            currency: cost.map(|c| c.1),
        });

        let (windows, metric_problems) = self.fetch_metrics(index, now).await;
        for (metric, reason) in &metric_problems {
            self.events.emit(&Event::MetricsMissing {
                provider: provider_name.clone(),
                group: group_id.clone(),
                metric: metric.clone(),
                reason: reason.clone(),
            });
        }

        let forecast = self.update_forecast(index, now, &snapshot, &windows).await;
        if let Some(f) = &forecast
            && f.refreshed
        {
            self.events.emit(&Event::Forecast {
                provider: provider_name.clone(),
                group: group_id.clone(),
                points: f.all_points.clone(),
            });
        }
        let (points, note) = match &forecast {
            Some(f) => (f.points.as_deref(), f.note.as_deref()),
            None => (None, None),
        };
        let managed = &mut self.groups[index];
        let observation = Observation {
            now,
            group: &snapshot,
            metrics: &windows,
            forecast: points,
            forecast_note: note,
        };
        let mut decision = crate::decide(&managed.config, &observation, &mut managed.memory);
        for (metric, reason) in metric_problems {
            decision.reasons.push(Reason {
                source: format!("metrics.{metric}"),
                recommended: None,
                message: reason,
            });
        }
        decision.dry_run |= dry_run_all;
        self.events.emit(&Event::Decided {
            provider: provider_name.clone(),
            decision: decision.clone(),
        });

        let action = if decision.desired == decision.current {
            Action::Unchanged
        } else if decision.dry_run {
            Action::DryRun
        } else {
            match managed
                .provider
                .scaling
                .set_desired_capacity(&group_id, decision.desired)
                .await
            {
                Ok(()) => {
                    managed.memory.record_applied(&decision);
                    Action::Applied
                }
                Err(error) => Action::Failed(error),
            }
        };
        if matches!(action, Action::Applied | Action::Failed(_)) {
            self.events.emit(&Event::Acted {
                provider: provider_name.clone(),
                group: group_id.clone(),
                from: decision.current,
                to: decision.desired,
                error: match &action {
                    Action::Failed(e) => Some((e.kind(), e.to_string())),
                    _ => None,
                },
            });
        }
        let error_text = match &action {
            Action::Failed(e) => Some(e.to_string()),
            _ => None,
        };
        if let Err(e) = self.audit.append(&AuditRecord::Decision {
            provider: &provider_name,
            decision: &decision,
            outcome: action.as_str(),
            error: error_text.as_deref(),
        }) {
            tracing::error!(error = %e, "audit log write failed");
        }
        GroupOutcome::Decided {
            provider: provider_name,
            decision,
            action,
        }
    }

    /// Fetches every metric the group's policies read; problems are returned, not fatal.
    async fn fetch_metrics(
        &self,
        index: usize,
        now: DateTime<Utc>,
    ) -> (MetricWindows, Vec<(MetricKind, String)>) {
        let managed = &self.groups[index];
        let mut windows = MetricWindows::new();
        let mut problems = Vec::new();
        let needed = managed.config.metrics_needed();
        if needed.is_empty() {
            return (windows, problems);
        }
        let Some(source) = &managed.metrics else {
            for metric in needed {
                problems.push((
                    metric,
                    format!(
                        "provider `{}` offers no metrics and the group names no metrics source",
                        managed.provider.name
                    ),
                ));
            }
            return (windows, problems);
        };
        let lookback = managed
            .config
            .guards
            .metric_max_age
            .as_delta()
            .max(TimeDelta::minutes(10))
            + TimeDelta::from_std(self.interval).unwrap_or_default() * 5;
        let range = TimeRange {
            start: now - lookback,
            end: now + TimeDelta::seconds(1),
        };
        let group_id = managed.config.provider_id();
        for metric in needed {
            let expression = managed
                .config
                .metrics
                .as_ref()
                .and_then(|m| m.queries.get(metric.name()))
                .map(|q| q.replace("{group}", group_id));
            let query = MetricQuery {
                group: group_id.to_owned(),
                metric: metric.clone(),
                expression,
            };
            match source
                .query_range(&query, range, self.metric_step_seconds)
                .await
            {
                Ok(series) if series.len() > 1 => problems.push((
                    metric,
                    format!(
                        "the query returned {} series; a scaling signal must be one series",
                        series.len()
                    ),
                )),
                Ok(mut series) => {
                    if let Some(one) = series.pop() {
                        windows.insert(metric, one.samples);
                    }
                }
                Err(error) => problems.push((metric, format!("metrics query failed: {error}"))),
            }
        }
        (windows, problems)
    }

    /// Feeds the group's predictive forecaster (fetching its history on the first call) and
    /// returns the forecast now. `None` when the group has no predictive policy.
    async fn update_forecast(
        &mut self,
        index: usize,
        now: DateTime<Utc>,
        snapshot: &GroupSnapshot,
        windows: &MetricWindows,
    ) -> Option<ForecastInput> {
        let managed = &self.groups[index];
        let state = managed.forecast.as_ref()?;
        let metric = state.policy().metric.clone();
        let span = state.history_span();
        let mut backfill = Vec::new();
        let mut backfill_problem = None;
        if !managed.forecast_backfilled
            && let Some(source) = &managed.metrics
        {
            let group_id = managed.config.provider_id();
            let expression = managed
                .config
                .metrics
                .as_ref()
                .and_then(|m| m.queries.get(metric.name()))
                .map(|q| q.replace("{group}", group_id));
            let query = MetricQuery {
                group: group_id.to_owned(),
                metric: metric.clone(),
                expression,
            };
            let range = TimeRange {
                start: now - span,
                end: now + TimeDelta::seconds(1),
            };
            match source
                .query_range(&query, range, HISTORY_STEP_SECONDS)
                .await
            {
                Ok(mut series) if series.len() == 1 => {
                    backfill = series.pop().map(|s| s.samples).unwrap_or_default();
                }
                Ok(series) => {
                    backfill_problem = Some(format!(
                        "the history query returned {} series, expected one",
                        series.len()
                    ));
                }
                Err(error) => backfill_problem = Some(format!("history query failed: {error}")),
            }
        }
        let managed = &mut self.groups[index];
        managed.forecast_backfilled = true;
        let state = managed.forecast.as_mut()?;
        // Utilisation becomes a load (busy instances) with the ready count now: the loop does not
        // know the count at each past sample.
        let ready = f64::from(snapshot.ready);
        state.observe(&backfill, |_| ready);
        if let Some(samples) = windows.get(&metric) {
            state.observe(samples, |_| ready);
        }
        let mut input = state.forecast(now);
        if let Some(problem) = backfill_problem
            && input.points.is_none()
        {
            let note = input.note.take().unwrap_or_default();
            input.note = Some(format!("{note} ({problem})"));
        }
        Some(input)
    }

    /// Estimated hourly cost of the group's active instances, cached per class.
    async fn hourly_cost(&mut self, index: usize, group: &ScalingGroup) -> Option<(f64, String)> {
        let provider = &self.groups[index].provider;
        let catalog = provider.catalog.clone()?;
        let key = (provider.name.clone(), group.instance_class.clone());
        if !self.prices.contains_key(&key) {
            let price = match catalog.instance_class(&group.instance_class).await {
                Ok(class) => class
                    .cheapest(CapacityType::OnDemand)
                    .map(|o| (o.price.per_hour(), o.price.amount.currency.0.clone())),
                Err(_) => None,
            };
            self.prices.insert(key.clone(), price);
        }
        let (per_hour, currency) = self.prices.get(&key)?.clone()?;
        let active = group
            .instances
            .iter()
            .filter(|i| i.state.is_active())
            .count() as f64;
        Some((per_hour * active, currency))
    }
}

/// The engine's view of a provider's group.
pub fn snapshot_of(group: &ScalingGroup) -> GroupSnapshot {
    GroupSnapshot {
        id: group.id.clone(),
        desired: group.desired_capacity,
        ready: group.count_in(InstanceState::Running),
        pending: group.count_in(InstanceState::Pending),
        provider_min: group.min_size,
        provider_max: group.max_size,
        instance_class: group.instance_class.clone(),
    }
}
