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
//!
//! # No cloud can stall the loop
//!
//! Groups are evaluated concurrently, at most [`ControlLoop::with_concurrency`] at a time
//! (default [`DEFAULT_CONCURRENCY`]), within the loop's own task: a provider that hangs, or
//! answers only when its timeout and retries give up, delays its own groups and no other.
//! In [`ControlLoop::run`] every group keeps its own rhythm: at each interval, every group that
//! is not still busy starts an evaluation, and a group whose previous evaluation has not
//! finished skips that interval (with a warning) rather than holding the others back. Outcomes,
//! events and audit records are written as each group finishes.
//!
//! # Reconciling the meter with the bill
//!
//! With [`ControlLoop::with_reconciliation`], the provider's cost meter is checkpointed at every
//! UTC midnight, and each complete day is set against the provider's own bill (when its billing
//! reports actual cost) once: see [`crate::reconcile`]. The bill is asked from a group's
//! evaluation, after its decision was acted on, with no lock held.
//!
//! On the simulated cloud nothing ever waits (its calls answer at once and its clock is
//! virtual), so the groups finish in their order in the policy file and a replay is
//! bit-identical, as it was when groups were evaluated one after the other.
//! [`ControlLoop::evaluate_once`] returns its outcomes in the groups' order whatever the cloud.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::stream::{self, FuturesUnordered, StreamExt};

use crate::audit::{AuditLog, AuditRecord};
use crate::budget::{BudgetSteer, BudgetTracker};
use crate::clock::Clock;
use crate::config::GroupConfig;
use crate::config::PolicyConfig;
use crate::error::{Error, Result};
use crate::events::{Event, EventSink};
use crate::meter::{CostMeter, MeterReading};
use crate::model::{CapacityType, InstanceState, MetricKind, MetricQuery, ScalingGroup, TimeRange};
use crate::provider::{MetricsSource, ProviderSet, RangeQuery};
use crate::reconcile::{Reconciler, billed_days, compare};
use crate::{
    Decision, DecisionMemory, ForecastInput, GroupSnapshot, MetricWindows, Observation,
    PredictiveForecast, Reason,
};
use hoist_api::Decimal;

/// Step of the history fetched for a predictive policy on its first evaluation, seconds (14 days
/// at 5 minutes is 4,032 points, within Prometheus's per-query limit).
const HISTORY_STEP_SECONDS: u32 = 300;

/// How many groups the loop evaluates at once unless told otherwise.
pub const DEFAULT_CONCURRENCY: usize = 16;

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
    /// A failed write whose effect could not be read back at once: the decision, to count at
    /// the next observation whatever part of it the cloud carried out.
    unconfirmed: Option<Decision>,
    /// The vertical policy's samples over its lookback.
    vertical_load: VecDeque<VerticalSample>,
    /// The vertical move under way (instances still being replaced), if any.
    vertical_move: Option<VerticalMove>,
    /// When the vertical policy last looked.
    last_vertical: Option<DateTime<Utc>>,
    /// The pool this group is, when it is one (its provider is the pool itself): the loop lets
    /// it move capacity between its members when the total does not change.
    pub pool: Option<crate::pool::Pool>,
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
            unconfirmed: None,
            vertical_load: VecDeque::new(),
            vertical_move: None,
            last_vertical: None,
            pool: None,
        }
    }

    /// The pool `pool`, as a group the loop controls.
    pub fn for_pool(pool: crate::pool::Pool, config: GroupConfig) -> Self {
        let mut managed = ManagedGroup::new(config, pool.provider_set());
        managed.pool = Some(pool);
        managed
    }
}

/// One observation of a group for its vertical policy.
#[derive(Debug, Clone)]
struct VerticalSample {
    at: DateTime<Utc>,
    /// Busy instances (utilisation × ready instances).
    busy: Option<f64>,
    /// The share of each instance's memory in use (the policy's `memory_metric`).
    memory_share: Option<f64>,
    /// Ready instances.
    ready: u32,
    /// The class they run.
    class: String,
}

/// A vertical move whose replacement the loop follows, step by step, in the audit log.
#[derive(Debug, Clone)]
struct VerticalMove {
    to_class: String,
    budget: hoist_api::DisruptionBudget,
    /// Instances not yet of `to_class` at the last look.
    remaining: u32,
}

/// The memory a vertical policy sizes for (its `memory_metric`'s peak over the lookback).
#[derive(Debug, Clone, Copy, PartialEq)]
struct VerticalMemory {
    /// Bytes in use on one instance at the peak.
    per_instance_peak: f64,
    /// Bytes in use over the group at the peak.
    total_peak: f64,
    /// The share of a class's memory the peak may fill.
    target: f64,
    /// Bytes one instance must have: `per_instance_peak / target`.
    per_instance_need: f64,
}

impl VerticalMemory {
    /// The peaks of `samples` (share of memory in use, ready instances, the class's MiB);
    /// `None` without a sample.
    fn peak(samples: impl Iterator<Item = (f64, u32, u64)>, target: f64) -> Option<Self> {
        const MIB: f64 = 1024.0 * 1024.0;
        let mut out: Option<VerticalMemory> = None;
        for (share, ready, mib) in samples {
            let per_instance = share.max(0.0) * mib as f64 * MIB;
            let total = per_instance * f64::from(ready);
            let m = out.get_or_insert(VerticalMemory {
                per_instance_peak: 0.0,
                total_peak: 0.0,
                target,
                per_instance_need: 0.0,
            });
            m.per_instance_peak = m.per_instance_peak.max(per_instance);
            m.total_peak = m.total_peak.max(total);
        }
        out.map(|m| VerticalMemory {
            per_instance_need: m.per_instance_peak / target,
            ..m
        })
    }

    /// The fewest instances, at least `count`, of a class of `memory_mib` that hold the memory
    /// in use in all at the target; `None` when one instance cannot hold one instance's peak.
    fn count(&self, memory_mib: u64, count: u32) -> Option<u32> {
        let usable = memory_mib as f64 * 1024.0 * 1024.0 * self.target;
        if usable <= 0.0 || self.per_instance_need > memory_mib as f64 * 1024.0 * 1024.0 + 1e-6 {
            return None;
        }
        let needed = (self.total_peak / usable - 1e-9).ceil().max(0.0);
        (needed <= f64::from(u32::MAX)).then(|| (needed as u32).max(count))
    }
}

/// How [`ControlLoop::run_until_reload`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// It covered the time it was given.
    Completed,
    /// A reload was requested; nothing is in flight.
    Reload,
}

/// Asks a running [`ControlLoop::run_until_reload`] to return between two rounds. Cheap to
/// clone; every clone is the same signal.
#[derive(Debug, Clone, Default)]
pub struct ReloadSignal {
    inner: Arc<(std::sync::atomic::AtomicBool, tokio::sync::Notify)>,
}

impl ReloadSignal {
    /// A signal not yet requested.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the loop to return before its next round (at once when it is waiting for it).
    pub fn request(&self) {
        self.inner
            .0
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.1.notify_one();
    }

    /// Whether a reload was requested since the last call, clearing it.
    fn take(&self) -> bool {
        self.inner
            .0
            .swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    /// Resolves when a reload is requested (never without a signal).
    async fn requested(signal: Option<&ReloadSignal>) {
        match signal {
            Some(signal) => {
                while !signal.inner.0.load(std::sync::atomic::Ordering::SeqCst) {
                    signal.inner.1.notified().await;
                }
            }
            None => std::future::pending().await,
        }
    }
}

/// What [`ControlLoop::adopt`] did with the groups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Adopted {
    /// Groups in both files, whose memory carried over.
    pub kept: usize,
    /// Groups new in the file.
    pub added: usize,
    /// Groups no longer in the file (no longer scaled).
    pub removed: usize,
}

/// What [`ControlLoop::restore_state`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoredState {
    /// Groups whose memory was restored.
    pub groups: usize,
    /// Budgets whose period spend was restored.
    pub budgets: usize,
}

/// The budgets' states in `store`, if it holds any.
async fn load_budgets(
    store: &dyn crate::state::StateStore,
) -> Result<Option<Vec<crate::budget::BudgetStatus>>> {
    let records = store.load_prefix(crate::state::BUDGETS_KEY).await?;
    let Some((_, bytes)) = records
        .into_iter()
        .find(|(k, _)| k == crate::state::BUDGETS_KEY)
    else {
        return Ok(None);
    };
    match serde_json::from_slice(&bytes) {
        Ok(statuses) => Ok(Some(statuses)),
        Err(e) => {
            tracing::warn!(error = %e, "the stored budget states cannot be read; budgets start from the ledger or afresh");
            Ok(None)
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
    /// Not applied: another replica holds the leadership (or this one could not confirm it).
    Standby,
}

impl Action {
    /// The audit-log word for it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Unchanged => "unchanged",
            Action::DryRun => "dry_run",
            Action::Applied => "applied",
            Action::Failed(_) => "failed",
            Action::Standby => "standby",
        }
    }
}

/// The loop.
#[derive(Debug)]
pub struct ControlLoop {
    groups: Vec<ManagedGroup>,
    shared: Shared,
    concurrency: usize,
}

/// What every group's evaluation reads, apart from the group itself, so that several
/// evaluations can borrow it at once.
#[derive(Debug)]
struct Shared {
    clock: Arc<dyn Clock>,
    events: Arc<dyn EventSink>,
    audit: Arc<AuditLog>,
    interval: Duration,
    dry_run: bool,
    metric_step_seconds: u32,
    prices: Mutex<Prices>,
    meters: Mutex<HashMap<String, CostMeter>>,
    budgets: Mutex<Option<(BudgetTracker, Option<DateTime<Utc>>)>>,
    leadership: Arc<dyn hoist_api::leadership::Leadership>,
    /// How often the meter is reconciled with the providers' bills; `None`: never.
    reconcile_every: Option<TimeDelta>,
    reconciler: Mutex<Reconciler>,
    /// How long after a day ends its bill is asked for.
    reconcile_settle: TimeDelta,
    /// Where the groups' memory is kept across restarts, if anywhere.
    state: Option<Arc<dyn crate::state::StateStore>>,
    /// Group states written since the last flush, by key.
    pending_state: Mutex<HashMap<String, Vec<u8>>>,
    /// Whether leadership is elected (not [`hoist_api::leadership::Alone`]).
    elected: bool,
    /// Whether this replica was the leader at the last round's start.
    was_leader: std::sync::atomic::AtomicBool,
}

/// Price per hour and currency by (provider, instance class); `None` when there is none.
type Prices = HashMap<(String, String, CapacityType), Option<(Decimal, String)>>;

/// A group's evaluation in [`ControlLoop::run`]: the group's index, the group lent to it, and the
/// outcome.
type Finished<'a> = (usize, &'a mut ManagedGroup, GroupOutcome);

impl ControlLoop {
    /// A loop over `groups`, reading time from `clock`.
    pub fn new(groups: Vec<ManagedGroup>, clock: Arc<dyn Clock>, interval: Duration) -> Self {
        ControlLoop {
            groups,
            shared: Shared {
                clock,
                events: Arc::new(crate::events::NoEvents),
                audit: Arc::new(AuditLog::disabled()),
                interval,
                dry_run: false,
                metric_step_seconds: 60,
                prices: Mutex::new(HashMap::new()),
                meters: Mutex::new(HashMap::new()),
                budgets: Mutex::new(None),
                leadership: Arc::new(hoist_api::leadership::Alone),
                reconcile_every: None,
                reconciler: Mutex::new(Reconciler::new()),
                reconcile_settle: TimeDelta::zero(),
                state: None,
                pending_state: Mutex::new(HashMap::new()),
                elected: false,
                was_leader: std::sync::atomic::AtomicBool::new(true),
            },
            concurrency: DEFAULT_CONCURRENCY,
        }
    }

    /// Sends events to `sink`.
    pub fn with_events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.shared.events = sink;
        self.hook_pools();
        self
    }

    /// Appends every decision to `audit`.
    pub fn with_audit(mut self, audit: Arc<AuditLog>) -> Self {
        self.shared.audit = audit;
        self.hook_pools();
        self
    }

    /// Gives the pools among the groups this loop's events and audit log.
    fn hook_pools(&self) {
        for pool in self.groups.iter().filter_map(|g| g.pool.as_ref()) {
            pool.set_events(Arc::clone(&self.shared.events));
            pool.set_audit(Arc::clone(&self.shared.audit));
        }
    }

    /// Acts only while `leadership` says this process may ([`Leadership::may_act`], asked
    /// right before every write); otherwise decisions are recorded as [`Action::Standby`].
    ///
    /// [`Leadership::may_act`]: hoist_api::leadership::Leadership::may_act
    pub fn with_leadership(
        mut self,
        leadership: Arc<dyn hoist_api::leadership::Leadership>,
    ) -> Self {
        self.shared.leadership = leadership;
        self.shared.elected = true;
        self.shared
            .was_leader
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// Keeps each group's memory (cooldowns, stabilisation and rate-limit windows), its
    /// predictive history, its last decision and the budgets' states in `store`, written once
    /// per round (see [`crate::state`]). [`ControlLoop::restore_state`] reads them back at
    /// start. Under elected leadership only the leader writes, and a replica that becomes the
    /// leader reads the store again before its first round as leader, so it decides as the old
    /// leader would have.
    pub fn with_state(mut self, store: Arc<dyn crate::state::StateStore>) -> Self {
        self.shared.state = Some(store);
        self
    }

    /// Restores what the state store holds for the groups under control and the budgets, and
    /// returns how many groups were restored. A record that cannot be used is skipped with a
    /// warning (that group starts afresh); a store that cannot be read is an error.
    pub async fn restore_state(&mut self) -> Result<RestoredState> {
        let mut restored = RestoredState::default();
        let Some(store) = self.shared.state.clone() else {
            return Ok(restored);
        };
        let states = self.shared.load_states(store.as_ref()).await?;
        for managed in &mut self.groups {
            if Shared::apply_state(managed, &states) {
                restored.groups += 1;
            }
        }
        if let Some(budgets) = load_budgets(store.as_ref()).await? {
            restored.budgets = self.seed_budgets(&budgets);
        }
        Ok(restored)
    }

    /// Takes over the groups and settings of `next`, a loop built from a changed policy file,
    /// between two rounds (see [`ControlLoop::run_until_reload`]). What a group learnt carries
    /// over when the new file still has it (same provider and name): its decision memory
    /// (cooldowns, windows; a group whose number of policies changed starts its windows
    /// afresh), and its forecaster when its predictive policy is unchanged. Budgets carry their
    /// period's spend over by name. The clock, events, audit log, leadership, state store and
    /// cost meters stay this loop's.
    pub fn adopt(&mut self, next: ControlLoop) -> Adopted {
        let ControlLoop {
            groups,
            shared,
            concurrency,
        } = next;
        let mut old: HashMap<(String, String), ManagedGroup> = std::mem::take(&mut self.groups)
            .into_iter()
            .map(|g| ((g.provider.name.clone(), g.config.name.clone()), g))
            .collect();
        let mut adopted = Adopted::default();
        for mut group in groups {
            let key = (group.provider.name.clone(), group.config.name.clone());
            match old.remove(&key) {
                Some(previous) => {
                    adopted.kept += 1;
                    group.memory = previous.memory;
                    if let (Some(new), Some(was)) = (&group.forecast, &previous.forecast)
                        && new.policy() == was.policy()
                    {
                        group.forecast = previous.forecast;
                        group.forecast_backfilled = previous.forecast_backfilled;
                    }
                }
                None => adopted.added += 1,
            }
            self.groups.push(group);
        }
        adopted.removed = old.len();
        let statuses = self.budget_statuses();
        let budgets = shared
            .budgets
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        *self
            .shared
            .budgets
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = budgets;
        self.seed_budgets(&statuses);
        self.shared.interval = shared.interval;
        self.shared.dry_run = shared.dry_run;
        self.shared.reconcile_every = shared.reconcile_every;
        self.shared.reconcile_settle = shared.reconcile_settle;
        self.shared.prices().clear();
        self.concurrency = concurrency;
        self.hook_pools();
        adopted
    }

    /// Writes the state gathered since the last write to the state store now (the loop does
    /// so after every round).
    pub async fn flush_state(&self) {
        self.shared.flush_state().await;
    }

    /// Tracks `budgets` (fed by the cost meter, evaluated once per round, reported as
    /// [`Event::Budget`]) and lets them steer the decisions of the groups they cover. A tracker
    /// without budgets is not kept.
    pub fn with_budgets(self, budgets: BudgetTracker) -> Self {
        if !budgets.is_empty() {
            *self
                .shared
                .budgets
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some((budgets, None));
        }
        self
    }

    /// Reconciles the cost meter with the bill of every provider whose billing reports actual
    /// cost ([`BillingCapabilities::actual_cost`]), one complete UTC day at a time (see
    /// [`crate::reconcile`]): as soon as a day is complete and then at most every `every`, the
    /// days not reconciled yet are asked in one daily cost query, and each day the bill has is
    /// reported as [`Event::CostReconciled`], once. A day the bill does not have yet, or a
    /// failed query (logged), is asked again `every` later. Off unless called.
    ///
    /// [`BillingCapabilities::actual_cost`]: crate::provider::BillingCapabilities::actual_cost
    pub fn with_reconciliation(self, every: Duration) -> Self {
        self.with_reconciliation_after(every, Duration::ZERO)
    }

    /// [`ControlLoop::with_reconciliation`], asking the bill for a day only once it ended at
    /// least `settle` ago: a real cloud's bill of a day keeps growing for hours after it ends
    /// (Cost Explorer's for up to a day), and each day is reconciled once.
    pub fn with_reconciliation_after(mut self, every: Duration, settle: Duration) -> Self {
        self.shared.reconcile_settle = TimeDelta::from_std(settle).unwrap_or(TimeDelta::zero());
        let every = TimeDelta::from_std(every).unwrap_or(TimeDelta::days(366));
        self.shared.reconcile_every = Some(every.max(TimeDelta::seconds(1)));
        self
    }

    /// Starts the budgets from an earlier run's records (see [`BudgetTracker::seed`]) at the
    /// loop's time; returns how many were seeded.
    pub fn seed_budgets(&self, records: &[crate::budget::BudgetStatus]) -> usize {
        let now = self.shared.clock.now();
        self.shared
            .budgets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .map_or(0, |(t, _)| t.seed(now, records))
    }

    /// Each budget's state at its last evaluation.
    pub fn budget_statuses(&self) -> Vec<crate::budget::BudgetStatus> {
        self.shared
            .budgets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(t, _)| t.statuses().to_vec())
            .unwrap_or_default()
    }

    /// Decides but never acts.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.shared.dry_run = dry_run;
        self
    }

    /// Evaluates at most `groups` groups at once (at least one; default
    /// [`DEFAULT_CONCURRENCY`]). One is the old behaviour: one group after the other, so a
    /// provider that hangs holds up every group behind it.
    pub fn with_concurrency(mut self, groups: usize) -> Self {
        self.concurrency = groups.max(1);
        self
    }

    /// The clock the loop reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    /// What the cost meter charged for `provider`'s groups since the loop first observed them,
    /// and the currency of its prices; `None` before the loop observed any of them.
    pub fn metered_cost(&self, provider: &str) -> Option<(MeterReading, Option<String>)> {
        let now = self.shared.clock.now();
        let reading = self
            .shared
            .meters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(provider)?
            .total_since_first_observed(now)?;
        let currency = self
            .shared
            .prices()
            .iter()
            .filter(|((p, _, _), _)| p == provider)
            .find_map(|(_, v)| v.as_ref().map(|(_, c)| c.clone()));
        Some((reading, currency))
    }

    /// The groups under control.
    pub fn groups(&self) -> &[ManagedGroup] {
        &self.groups
    }

    /// Observes, decides and acts on every group once,
    /// [concurrently](self#no-cloud-can-stall-the-loop), and returns the outcomes in the groups'
    /// order.
    pub async fn evaluate_once(&mut self) -> Vec<GroupOutcome> {
        let shared = &self.shared;
        shared.start_round(self.groups.iter_mut()).await;
        let mut outcomes: Vec<(usize, GroupOutcome)> =
            stream::iter(self.groups.iter_mut().enumerate())
                .map(
                    |(index, managed)| async move { (index, shared.evaluate_group(managed).await) },
                )
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
        outcomes.sort_by_key(|(index, _)| *index);
        shared.flush_state().await;
        outcomes.into_iter().map(|(_, outcome)| outcome).collect()
    }

    /// Evaluates every `interval` until `until` (or forever), calling `on_outcome` for each
    /// group's outcome as it happens. Each group keeps its own rhythm: one that is still being
    /// evaluated when the next interval comes skips it, and the others go ahead (see the
    /// [module docs](self#no-cloud-can-stall-the-loop)). With `until`, the last evaluations
    /// started are awaited before returning.
    pub async fn run(
        &mut self,
        until: Option<DateTime<Utc>>,
        on_outcome: impl FnMut(&GroupOutcome),
    ) -> Result<()> {
        self.run_until_reload(until, None, on_outcome)
            .await
            .map(|_| ())
    }

    /// [`ControlLoop::run`], returning [`RunEnd::Reload`] at the start of the first round after
    /// `reload` was [requested](ReloadSignal::request): the evaluations in flight are finished
    /// and the state is written first, so the caller can [adopt](ControlLoop::adopt) a new
    /// configuration between two rounds and call this again.
    pub async fn run_until_reload(
        &mut self,
        until: Option<DateTime<Utc>>,
        reload: Option<&ReloadSignal>,
        mut on_outcome: impl FnMut(&GroupOutcome),
    ) -> Result<RunEnd> {
        let step = TimeDelta::from_std(self.shared.interval)
            .map_err(|_| Error::config("run interval too long"))?;
        let ControlLoop {
            groups,
            shared,
            concurrency,
        } = self;
        let shared = &*shared;
        let limit = *concurrency;
        let names: Vec<String> = groups.iter().map(|g| g.config.name.clone()).collect();
        // A group is idle (its slot holds it), due (idle and queued for a free evaluation slot)
        // or running (lent to its evaluation).
        let mut idle: Vec<Option<&mut ManagedGroup>> = groups.iter_mut().map(Some).collect();
        let mut queued = vec![false; idle.len()];
        let mut due: VecDeque<usize> = VecDeque::new();
        let mut running = FuturesUnordered::new();
        let mut next = shared.clock.now();
        loop {
            if reload.is_some_and(ReloadSignal::take) {
                // Finish what is in flight, then hand over between two rounds.
                while let Some((index, managed, outcome)) = running.next().await {
                    idle[index] = Some(managed);
                    on_outcome(&outcome);
                }
                shared.flush_state().await;
                return Ok(RunEnd::Reload);
            }
            // What finished since the last write (a group whose provider hangs must not keep the
            // others' state from being written).
            shared.flush_state().await;
            // A clock stepped back (corrected by NTP) or forward (a suspended host, a pause)
            // by more than an interval: the schedule starts again from now, rather than every
            // group waiting out the step, or running one round per missed interval at once.
            let now = shared.clock.now();
            if now < next - step || now >= next + step {
                tracing::warn!(
                    scheduled = %next,
                    now = %now,
                    "the clock moved by more than an interval; the schedule restarts from now"
                );
                next = now;
            }
            shared
                .start_round(idle.iter_mut().filter_map(|slot| slot.as_deref_mut()))
                .await;
            for (index, slot) in idle.iter().enumerate() {
                if slot.is_none() {
                    tracing::warn!(
                        group = %names[index],
                        "the group's previous evaluation has not finished; skipping this interval"
                    );
                } else if !queued[index] {
                    queued[index] = true;
                    due.push_back(index);
                }
            }
            next += step;
            let last = until.is_some_and(|end| next > end);
            loop {
                // Start what the bound allows, in the groups' order.
                while running.len() < limit
                    && let Some(index) = due.pop_front()
                {
                    queued[index] = false;
                    if let Some(managed) = idle[index].take() {
                        running.push(shared.evaluate_lent(index, managed));
                    }
                }
                let finished: Finished<'_> = if last {
                    match running.next().await {
                        Some(finished) => finished,
                        None => {
                            shared.flush_state().await;
                            return Ok(RunEnd::Completed);
                        }
                    }
                } else {
                    // Outcomes first: the simulated cloud's clock jumps ahead when asked to sleep.
                    tokio::select! {
                        biased;
                        Some(finished) = running.next(), if !running.is_empty() => finished,
                        // At most one interval: a clock stepped back meanwhile is noticed at the
                        // next round's start instead of stalling every group.
                        () = shared.clock.sleep_until(next.min(shared.clock.now() + step)) => break,
                        () = ReloadSignal::requested(reload), if running.is_empty() => break,
                    }
                };
                let (index, managed, outcome) = finished;
                idle[index] = Some(managed);
                on_outcome(&outcome);
                if running.is_empty() && due.is_empty() {
                    // The round is complete: keep what it learnt.
                    shared.flush_state().await;
                }
            }
        }
    }
}

impl Shared {
    /// At the start of a round under elected leadership: asks whether this replica leads and,
    /// when it has just become the leader, restores the given (idle) groups from the state
    /// store, so it carries on from what the old leader wrote.
    async fn start_round<'g>(&self, groups: impl Iterator<Item = &'g mut ManagedGroup>) {
        use std::sync::atomic::Ordering;
        if !self.elected {
            return;
        }
        let Some(store) = self.state.clone() else {
            return;
        };
        let leader = self.leadership.may_act().await;
        let was = self.was_leader.swap(leader, Ordering::Relaxed);
        if !leader || was {
            return;
        }
        match self.load_states(store.as_ref()).await {
            Ok(states) => {
                let mut restored = 0;
                for group in groups {
                    restored += usize::from(Self::apply_state(group, &states));
                }
                tracing::info!(
                    restored,
                    store = %store.describe(),
                    "became the leader: restored the groups' state from the store"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "became the leader but cannot read the state store; deciding from this replica's own memory");
            }
        }
        match load_budgets(store.as_ref()).await {
            Ok(Some(budgets)) => {
                let now = self.clock.now();
                if let Some((tracker, _)) = self
                    .budgets
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_mut()
                {
                    tracker.seed(now, &budgets);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the budgets' state"),
        }
    }

    /// Every group state in `store`, by key; records that cannot be used are skipped with a
    /// warning.
    async fn load_states(
        &self,
        store: &dyn crate::state::StateStore,
    ) -> Result<HashMap<String, crate::state::GroupState>> {
        let mut states = HashMap::new();
        for (key, bytes) in store.load_prefix(crate::state::GROUP_PREFIX).await? {
            match crate::state::GroupState::decode(&bytes) {
                Ok(state) => {
                    states.insert(key, state);
                }
                Err(reason) => tracing::warn!(
                    key = %key,
                    %reason,
                    "a stored group state cannot be used; the group starts afresh"
                ),
            }
        }
        Ok(states)
    }

    /// Gives `managed` its stored state, if `states` has one; `true` when it did.
    fn apply_state(
        managed: &mut ManagedGroup,
        states: &HashMap<String, crate::state::GroupState>,
    ) -> bool {
        let key = crate::state::group_key(&managed.provider.name, &managed.config.name);
        let Some(state) = states.get(&key) else {
            return false;
        };
        managed.memory = state.memory.clone();
        managed.last_vertical = state.last_vertical;
        managed.vertical_move = state.vertical_move.as_ref().map(|m| VerticalMove {
            to_class: m.to_class.clone(),
            budget: m.disruption,
            remaining: m.remaining,
        });
        if let (Some(forecast), Some(snapshot)) = (managed.forecast.as_mut(), &state.forecast)
            && !forecast.restore(snapshot)
        {
            tracing::warn!(
                key = %key,
                "the stored forecast history does not fit the predictive policy now; it is rebuilt"
            );
        }
        true
    }

    /// Stages `managed`'s state after an evaluation, for the next flush.
    fn stage_state(&self, managed: &ManagedGroup, decision: &Decision, now: DateTime<Utc>) {
        if self.state.is_none() {
            return;
        }
        let state = crate::state::GroupState {
            format: crate::state::FORMAT,
            saved_at: now,
            memory: managed.memory.clone(),
            forecast: managed.forecast.as_ref().and_then(|f| f.snapshot()),
            last_decision: Some(decision.clone()),
            last_vertical: managed.last_vertical,
            vertical_move: managed.vertical_move.as_ref().map(|m| {
                crate::state::VerticalMoveState {
                    to_class: m.to_class.clone(),
                    disruption: m.budget,
                    remaining: m.remaining,
                }
            }),
        };
        match serde_json::to_vec(&state) {
            Ok(bytes) => {
                self.pending_state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(
                        crate::state::group_key(&managed.provider.name, &managed.config.name),
                        bytes,
                    );
            }
            Err(e) => {
                tracing::warn!(error = %e, group = %managed.config.name, "cannot encode the group's state")
            }
        }
    }

    /// Writes the staged states (and the budgets') to the store in one batch. Under elected
    /// leadership only a replica that still leads writes; a standby's staged states are
    /// dropped, so it never overwrites what the leader wrote.
    async fn flush_state(&self) {
        let Some(store) = &self.state else {
            return;
        };
        let mut batch: Vec<(String, Vec<u8>)> = std::mem::take(
            &mut *self
                .pending_state
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
        .into_iter()
        .collect();
        if batch.is_empty() {
            return;
        }
        if self.elected && !self.leadership.may_act().await {
            return;
        }
        let budgets = self
            .budgets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(t, _)| t.statuses().to_vec());
        if let Some(budgets) = budgets
            && !budgets.is_empty()
            && let Ok(bytes) = serde_json::to_vec(&budgets)
        {
            batch.push((crate::state::BUDGETS_KEY.to_owned(), bytes));
        }
        batch.sort_by(|a, b| a.0.cmp(&b.0));
        if let Err(e) = store.save(batch).await {
            tracing::error!(error = %e, store = %store.describe(), "cannot write the state store; a restart now would forget this round");
        }
    }

    /// [`Shared::evaluate_group`] on a group lent to it, which it gives back with the outcome.
    async fn evaluate_lent<'a>(
        &'a self,
        index: usize,
        managed: &'a mut ManagedGroup,
    ) -> Finished<'a> {
        let outcome = self.evaluate_group(managed).await;
        (index, managed, outcome)
    }

    /// Observes, decides and acts on one group, at the clock's time when it starts.
    async fn evaluate_group(&self, managed: &mut ManagedGroup) -> GroupOutcome {
        let now = self.clock.now();
        let dry_run_all = self.dry_run;
        let provider_name = managed.provider.name.clone();
        let group_id = managed.config.provider_id().to_owned();

        let described = match managed.provider.scaling_provider() {
            Ok(scaling) => scaling.describe_group(&group_id).await,
            Err(e) => Err(e),
        };
        let group = match described {
            Ok(group) => group,
            Err(error) => {
                return GroupOutcome::ObserveFailed {
                    provider: provider_name,
                    group: managed.config.name.clone(),
                    error,
                };
            }
        };
        let snapshot = snapshot_of(&group);
        if let Some(mut failed) = managed.unconfirmed.take()
            && snapshot.desired != failed.current
        {
            // The last write failed and could not be read back then: what the cloud carried
            // out of it counts now, at the write's time.
            failed.desired = snapshot.desired;
            managed.memory.record_applied(&failed);
        }
        let cost = self.hourly_cost(managed, &group).await;
        let metered = self.meter(managed, &group, now).await;
        let metered_cost = metered.map(|m| m.0);
        let spot_instances = group
            .instances
            .iter()
            .filter(|i| i.capacity_type == CapacityType::Spot && i.state.is_active())
            .count();
        self.events.emit(&Event::GroupObserved {
            provider: provider_name.clone(),
            group: snapshot.clone(),
            min: managed.config.min,
            max: managed.config.max,
            cost_per_hour: cost.as_ref().map(|c| c.0),
            currency: cost.as_ref().map(|c| c.1.clone()),
            metered_cost,
            metered_spot_cost: metered.map(|m| m.1),
            spot_instances: u32::try_from(spot_instances).unwrap_or(u32::MAX),
        });

        let (windows, mut metric_problems) = self.fetch_metrics(managed, now).await;
        let load = windows
            .get(&MetricKind::Utilization)
            .and_then(|s| s.last())
            .filter(|s| s.value.is_finite() && (0.0..=1.5).contains(&s.value))
            .map(|s| (s.value * f64::from(snapshot.ready), snapshot.ready));
        if let Some(work) = &managed.config.cost {
            let kind = crate::config::metric_from_name(&work.work_metric);
            if !managed.config.metrics_needed().contains(&kind) {
                metric_problems.retain(|(m, _)| *m != kind);
            }
            if let Some(sample) = windows.get(&kind).and_then(|s| s.last())
                && sample.value.is_finite()
                && sample.value >= 0.0
            {
                self.events.emit(&Event::Work {
                    provider: provider_name.clone(),
                    group: group_id.clone(),
                    units_per_second: sample.value,
                    unit: work.unit.clone(),
                });
            }
        }
        for (metric, reason) in &metric_problems {
            self.events.emit(&Event::MetricsMissing {
                provider: provider_name.clone(),
                group: group_id.clone(),
                metric: metric.clone(),
                reason: reason.clone(),
            });
        }

        let forecast = self
            .update_forecast(managed, now, &snapshot, &windows)
            .await;
        if let Some(f) = &forecast
            && f.refreshed
        {
            self.events.emit(&Event::Forecast {
                provider: provider_name.clone(),
                group: group_id.clone(),
                points: f.all_points.clone(),
            });
        }
        // The budgets see the forecast capacity of a predictive policy, when it is trusted.
        let ahead = forecast.as_ref().and_then(|f| f.points.as_deref());
        let steer = self.budget_steer(
            managed,
            now,
            &snapshot,
            (cost.as_ref(), metered_cost),
            (load, ahead),
        );
        let (points, note) = match &forecast {
            Some(f) => (f.points.as_deref(), f.note.as_deref()),
            None => (None, None),
        };
        let observation = Observation {
            now,
            group: &snapshot,
            metrics: &windows,
            forecast: points,
            forecast_note: note,
            budget: steer.as_ref(),
        };
        let (mut decision, update) = crate::decide(&managed.config, &observation, &managed.memory);
        managed.memory.apply(&update);
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
            if let Some(pool) = &managed.pool
                && !decision.dry_run
                && self.leadership.may_act().await
                && let Err(e) = pool.rebalance().await
            {
                tracing::warn!(pool = %pool.name(), error = %e, "the pool could not place all of its capacity");
            }
            Action::Unchanged
        } else if decision.dry_run {
            Action::DryRun
        } else if !self.leadership.may_act().await {
            Action::Standby
        } else {
            let applied = match managed.provider.scaling_provider() {
                Ok(scaling) => {
                    scaling
                        .set_desired_capacity(&group_id, decision.desired)
                        .await
                }
                Err(e) => Err(e),
            };
            match applied {
                Ok(()) => {
                    managed.memory.record_applied(&decision);
                    Action::Applied
                }
                Err(error) => {
                    // A write can fail after the cloud carried out part of it (some instances
                    // launched): what changed counts against cooldowns and rate limits as if
                    // asked for, or the next evaluations would add on top of it unchecked.
                    let read_back = match managed.provider.scaling_provider() {
                        Ok(scaling) => scaling.describe_group(&group_id).await.ok(),
                        Err(_) => None,
                    };
                    match read_back {
                        Some(after) if after.desired_capacity != decision.current => {
                            let mut partial = decision.clone();
                            partial.desired = after.desired_capacity;
                            managed.memory.record_applied(&partial);
                        }
                        Some(_) => {}
                        // Counted at the next observation instead.
                        None => managed.unconfirmed = Some(decision.clone()),
                    }
                    Action::Failed(error)
                }
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
        if let Some(vertical) = &managed.config.vertical {
            let memory_share = vertical.memory_metric.as_deref().and_then(|name| {
                windows
                    .get(&crate::config::metric_from_name(name))
                    .and_then(|s| s.last())
                    .map(|s| s.value)
                    .filter(|v| v.is_finite() && (0.0..=1.5).contains(v))
            });
            let sample = VerticalSample {
                at: now,
                busy: load.map(|(busy, _)| busy),
                memory_share,
                ready: snapshot.ready,
                class: group.instance_class.clone(),
            };
            self.vertical(managed, &group, sample, steer.as_ref()).await;
        }
        // After the vertical policy, so that a look or a move made in this evaluation is kept.
        self.stage_state(managed, &decision, now);
        // After the decision is acted on: a slow bill delays only this group's next evaluation.
        self.reconcile(managed, now).await;
        GroupOutcome::Decided {
            provider: provider_name,
            decision,
            action,
        }
    }

    /// The group's vertical policy (see [`crate::config::VerticalConfig`]): notes the load and,
    /// once per cooldown when the lookback is half covered, finds the cheapest (class, count)
    /// that carries the peak (CPU, and memory with a `memory_metric`), records it, and in
    /// `apply` mode moves the group within its disruption budget. While a move's replacement is
    /// under way, every step of it (instances replaced since the last look) is recorded and no
    /// new look is taken.
    async fn vertical(
        &self,
        managed: &mut ManagedGroup,
        group: &ScalingGroup,
        sample: VerticalSample,
        steer: Option<&BudgetSteer>,
    ) {
        use crate::config::VerticalMode;
        use crate::config::budget::Rung;
        use crate::rightsizing::{ChoiceOptions, Current, Load, cheapest_fleet, parse_family};
        let Some(config) = managed.config.vertical.clone() else {
            return;
        };
        let now = sample.at;
        let lookback = config.lookback.as_delta();
        let busy_ok = sample.busy.is_some_and(|b| b.is_finite() && b >= 0.0);
        if busy_ok || sample.memory_share.is_some() {
            managed.vertical_load.push_back(sample);
        }
        while managed
            .vertical_load
            .front()
            .is_some_and(|s| s.at < now - lookback)
        {
            managed.vertical_load.pop_front();
        }
        // A replacement under way: its step is recorded, and no new look is taken until it ends.
        let old_left = group
            .instances
            .iter()
            .filter(|i| i.state.is_active() && i.instance_class != group.instance_class)
            .count() as u32;
        if let Some(mv) = managed.vertical_move.clone() {
            if mv.to_class != group.instance_class {
                // The class was changed by someone else: the move is not ours to follow.
                managed.vertical_move = None;
            } else {
                let replaced = mv.remaining.saturating_sub(old_left);
                if replaced > 0 || old_left == 0 {
                    self.audit_vertical_step(managed, group, &mv, replaced, old_left, now);
                }
                managed.vertical_move = (old_left > 0).then_some(VerticalMove {
                    remaining: old_left,
                    ..mv
                });
            }
        }
        if old_left > 0 {
            return;
        }
        let covered = managed
            .vertical_load
            .front()
            .is_some_and(|s| s.at <= now - lookback / 2);
        let rested = managed
            .last_vertical
            .is_none_or(|last| now - last >= config.cooldown.as_delta());
        if !covered || !rested {
            return;
        }
        managed.last_vertical = Some(now);
        let Some(catalog) = managed.provider.catalog.clone() else {
            return;
        };
        let classes = match catalog.instance_classes().await {
            Ok(classes) => classes,
            Err(error) => {
                tracing::warn!(group = %managed.config.name, %error, "vertical policy: cannot read the catalog");
                return;
            }
        };
        let class_of = |name: &str| classes.iter().find(|c| c.name == name);
        let peak = managed
            .vertical_load
            .iter()
            .filter_map(|s| Some(s.busy? * class_of(&s.class)?.vcpus))
            .fold(0.0_f64, f64::max);
        // Memory in use at its peak, per instance and in all (bytes).
        let memory = VerticalMemory::peak(
            managed
                .vertical_load
                .iter()
                .filter_map(|s| Some((s.memory_share?, s.ready, class_of(&s.class)?.memory_mib))),
            config.memory_target_utilization,
        );
        let cheaper = steer.is_some_and(|s| {
            matches!(s.rung, Rung::PreferCheaper | Rung::Cap | Rung::DenyScaleOut)
        });
        let capacity = group
            .instances
            .iter()
            .find(|i| i.state.is_active())
            .map_or(CapacityType::OnDemand, |i| i.capacity_type);
        let mut capacity_types = vec![capacity];
        if (config.spot || cheaper) && capacity != CapacityType::Spot {
            capacity_types.push(CapacityType::Spot);
        }
        let options = ChoiceOptions {
            classes: config.classes.clone(),
            families: Some(match &config.families {
                Some(names) => names.iter().filter_map(|n| parse_family(n)).collect(),
                None => classes
                    .iter()
                    .map(|c| c.family)
                    .filter(|f| *f != crate::model::InstanceFamily::Burstable)
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            }),
            // The group's machine image is built for its class's architecture: another one is
            // a choice only when the policy names its classes.
            architectures: match (&config.classes, class_of(&group.instance_class)) {
                (None, Some(current)) => Some(vec![current.architecture]),
                _ => None,
            },
            capacity_types,
            spot_risk: None,
            zones: None,
        };
        let load = Load {
            cpu_cores: peak,
            memory_per_instance_bytes: memory.map_or(0.0, |m| m.per_instance_need),
            target_utilization: config.target_utilization,
            min_count: managed.config.min,
            max_count: Some(managed.config.max),
        };
        let current = Current {
            class: group.instance_class.clone(),
            capacity_type: capacity,
            count: group.desired_capacity,
        };
        let choice = match cheapest_fleet(&classes, &load, Some(&current), &options) {
            Ok(choice) => choice,
            Err(error) => {
                tracing::warn!(group = %managed.config.name, %error, "vertical policy: no recommendation");
                return;
            }
        };
        // Every fleet that carries the CPU, with enough instances to hold the memory in use in
        // all too, cheapest first (the class choice's order breaks ties).
        let mut fleets: Vec<(&crate::rightsizing::Fleet, u32, f64)> = choice
            .ranked
            .iter()
            .filter_map(|f| {
                let count =
                    memory.map_or(Some(f.count), |m| m.count(f.offer.memory_mib, f.count))?;
                (count <= managed.config.max).then(|| {
                    (
                        f,
                        count,
                        crate::rightsizing::per_hour_f64(&f.offer) * f64::from(count),
                    )
                })
            })
            .collect();
        fleets.sort_by(|a, b| a.2.total_cmp(&b.2));
        if fleets.is_empty() {
            tracing::warn!(group = %managed.config.name, "vertical policy: no class holds the memory in use within the group's max");
            return;
        }
        // A move keeps how the group is bought (a class change cannot turn on-demand capacity
        // into spot); the cheapest overall, spot included, is what `recommend` reports.
        let (best, best_count, best_per_hour) = match config.mode {
            VerticalMode::Apply => fleets
                .iter()
                .find(|f| f.0.offer.capacity_type == capacity)
                .unwrap_or(&fleets[0]),
            VerticalMode::Recommend => &fleets[0],
        };
        let (best, best_count, best_per_hour) = (*best, *best_count, *best_per_hour);
        // The same load on the class the group runs on now: what staying costs. (Against the
        // group's count now, a group still growing would look cheaper than any fleet that
        // carries its peak.)
        let now_per_hour = choice.current.as_ref().map_or(0.0, |c| {
            let count = crate::rightsizing::count_for(&c.offer, &load)
                .map(|n| {
                    memory
                        .and_then(|m| m.count(c.offer.memory_mib, n))
                        .unwrap_or(n)
                })
                .unwrap_or(c.count);
            crate::rightsizing::per_hour_f64(&c.offer) * f64::from(count)
        });
        let saving = now_per_hour - best_per_hour;
        let saving_percent = if now_per_hour > 0.0 {
            saving / now_per_hour * 100.0
        } else {
            0.0
        };
        let min_saving = if cheaper {
            0.0
        } else {
            config.min_saving_percent
        };
        let moves = best.offer.class != group.instance_class;
        let worth = moves && saving > 0.0 && saving_percent >= min_saving;
        let same_capacity = best.offer.capacity_type == capacity;
        let budget = config.disruption.budget(group.desired_capacity);
        // What the move replaces (every active instance: none is of the new class yet), and
        // how many the budget lets it start replacing now.
        let to_replace = group
            .instances
            .iter()
            .filter(|i| i.state.is_active())
            .count() as u32;
        let mut replaced_now = None;
        let (outcome, error) = if !moves {
            ("kept", None)
        } else if !worth {
            ("below_min_saving", None)
        } else if config.mode == VerticalMode::Recommend || !same_capacity {
            ("recommended", None)
        } else if self.dry_run || managed.config.guards.dry_run {
            ("dry_run", None)
        } else if !self.leadership.may_act().await {
            ("standby", None)
        } else {
            let group_id = managed.config.provider_id().to_owned();
            let request = hoist_api::ChangeInstanceClass::new(best.offer.class.clone())
                .with_disruption(budget);
            let result = match managed.provider.scaling_provider() {
                Ok(scaling) => scaling.set_instance_class(&group_id, &request).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(_) => {
                    replaced_now = Some(to_replace.min(budget.batch()));
                    if to_replace > 0 {
                        managed.vertical_move = Some(VerticalMove {
                            to_class: best.offer.class.clone(),
                            budget,
                            remaining: to_replace,
                        });
                    }
                    ("applied", None)
                }
                Err(e) => ("failed", Some(e.to_string())),
            }
        };
        let currency = best.offer.per_hour.currency.0.clone();
        let record = AuditRecord::Vertical {
            at: now,
            provider: &managed.provider.name,
            group: &managed.config.name,
            peak_cores: peak,
            peak_memory_bytes: memory.map(|m| m.per_instance_peak),
            from_class: &group.instance_class,
            from_count: group.desired_capacity,
            to_class: &best.offer.class,
            to_capacity_type: best.offer.capacity_type,
            to_count: best_count,
            per_hour_now: now_per_hour,
            per_hour_after: best_per_hour,
            saving_percent,
            currency: &currency,
            budget: steer.filter(|_| cheaper).map(|s| s.budget.as_str()),
            disruption: moves.then_some(budget),
            to_replace: moves.then_some(to_replace),
            replaced: replaced_now,
            outcome,
            error: error.as_deref(),
        };
        if let Err(e) = self.audit.append(&record) {
            tracing::error!(error = %e, "audit log write failed");
        }
        self.events.emit(&Event::Vertical {
            provider: managed.provider.name.clone(),
            group: managed.config.name.clone(),
            from_class: group.instance_class.clone(),
            to_class: best.offer.class.clone(),
            to_count: best_count,
            saving_percent,
            outcome: outcome.to_owned(),
        });
        tracing::info!(
            group = %managed.config.name,
            from = %group.instance_class,
            to = %best.offer.class,
            count = best_count,
            saving_percent,
            outcome,
            "vertical policy"
        );
    }

    /// Records one step of a vertical move's replacement: `replaced` instances since the last
    /// look, `remaining` still to replace.
    fn audit_vertical_step(
        &self,
        managed: &ManagedGroup,
        group: &ScalingGroup,
        mv: &VerticalMove,
        replaced: u32,
        remaining: u32,
        now: DateTime<Utc>,
    ) {
        let outcome = if remaining == 0 {
            "replaced"
        } else {
            "replacing"
        };
        let record = AuditRecord::VerticalStep {
            at: now,
            provider: &managed.provider.name,
            group: &managed.config.name,
            to_class: &mv.to_class,
            disruption: mv.budget,
            replaced,
            remaining,
            in_flight: group
                .instances
                .iter()
                .filter(|i| {
                    (i.instance_class == mv.to_class
                        && i.state == crate::model::InstanceState::Pending)
                        || (i.instance_class != mv.to_class
                            && i.state == crate::model::InstanceState::Terminating)
                })
                .count() as u32,
            outcome,
        };
        if let Err(e) = self.audit.append(&record) {
            tracing::error!(error = %e, "audit log write failed");
        }
    }

    /// Fetches every metric the group's policies read; problems are returned, not fatal.
    async fn fetch_metrics(
        &self,
        managed: &ManagedGroup,
        now: DateTime<Utc>,
    ) -> (MetricWindows, Vec<(MetricKind, String)>) {
        let mut windows = MetricWindows::new();
        let mut problems = Vec::new();
        let mut needed = managed.config.metrics_needed();
        if let Some(name) = managed
            .config
            .vertical
            .as_ref()
            .and_then(|v| v.memory_metric.as_deref())
        {
            let kind = crate::config::metric_from_name(name);
            if !needed.contains(&kind) {
                needed.push(kind);
            }
        }
        if let Some(work) = &managed.config.cost {
            let kind = crate::config::metric_from_name(&work.work_metric);
            if !needed.contains(&kind) {
                needed.push(kind);
            }
        }
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
                .and_then(|m| m.queries.get(&metric))
                .map(|q| q.replace("{group}", group_id));
            let query = MetricQuery {
                group: group_id.to_owned(),
                metric: metric.clone(),
                expression,
            };
            match source
                .query_range(&RangeQuery::new(query, range, self.metric_step_seconds))
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
        &self,
        managed: &mut ManagedGroup,
        now: DateTime<Utc>,
        snapshot: &GroupSnapshot,
        windows: &MetricWindows,
    ) -> Option<ForecastInput> {
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
                .and_then(|m| m.queries.get(&metric))
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
                .query_range(&RangeQuery::new(query, range, HISTORY_STEP_SECONDS))
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

    /// The on-demand price per hour of `class` on `managed`'s provider (cached), with its
    /// currency.
    async fn price_of(&self, managed: &ManagedGroup, class: &str) -> Option<(Decimal, String)> {
        self.price_for(managed, class, CapacityType::OnDemand).await
    }

    /// The price per hour of `class` bought as `capacity` on `managed`'s provider (the
    /// cheapest offering of that kind in the catalog; cached), with its currency. Spot falls
    /// back to on-demand when the catalog has no spot offering.
    async fn price_for(
        &self,
        managed: &ManagedGroup,
        class: &str,
        capacity: CapacityType,
    ) -> Option<(Decimal, String)> {
        let provider = &managed.provider;
        let catalog = provider.catalog.clone()?;
        let key = (provider.name.clone(), class.to_owned(), capacity);
        let cached = self.prices().contains_key(&key);
        if !cached {
            let price = match catalog.instance_class(class).await {
                Ok(class) => class
                    .cheapest(capacity)
                    .or_else(|| class.cheapest(CapacityType::OnDemand))
                    .map(|o| (o.price.per_hour_exact(), o.price.amount.currency.0.clone())),
                Err(_) => None,
            };
            self.prices().insert(key.clone(), price);
        }
        self.prices().get(&key)?.clone()
    }

    async fn hourly_cost(
        &self,
        managed: &ManagedGroup,
        group: &ScalingGroup,
    ) -> Option<(f64, String)> {
        // The group's class sets the currency (and prices a group with no instance).
        let (_, currency) = self.price_of(managed, &group.instance_class).await?;
        // Counted per (class, capacity type) first: a group of thousands of instances has a
        // few kinds, each priced once.
        let mut kinds: Vec<(&str, CapacityType)> = group
            .instances
            .iter()
            .filter(|i| i.state.is_active())
            .map(|i| (i.instance_class.as_str(), i.capacity_type))
            .collect();
        kinds.sort_unstable();
        let mut total = Decimal::ZERO;
        for run in kinds.chunk_by(|a, b| a == b) {
            let (class, capacity) = run[0];
            if let Some((price, _)) = self.price_for(managed, class, capacity).await {
                total += price * Decimal::from(run.len());
            }
        }
        Some((decimal_to_f64(total), currency))
    }

    /// Feeds the observed group to its provider's cost meter, each instance priced by its own
    /// class and how it is bought (spot at the spot price), and returns what the meter charged
    /// the group since it first observed it.
    async fn meter(
        &self,
        managed: &ManagedGroup,
        group: &ScalingGroup,
        now: DateTime<Utc>,
    ) -> Option<(f64, f64)> {
        // Each instance at the price of how it is bought: spot at the spot price.
        let mut kinds: Vec<(&str, CapacityType)> = group
            .instances
            .iter()
            .map(|i| (i.instance_class.as_str(), i.capacity_type))
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        let mut prices = HashMap::new();
        for (class, capacity) in kinds {
            if let Some((p, _)) = self.price_for(managed, class, capacity).await {
                prices.insert((class.to_owned(), capacity), p);
            }
        }
        let mut meters = self.meters.lock().unwrap_or_else(PoisonError::into_inner);
        let meter = meters
            .entry(managed.provider.name.clone())
            .or_insert_with(|| CostMeter::new(managed.provider.billing_rule));
        meter.observe(now, group, |i| {
            prices
                .get(&(i.instance_class.clone(), i.capacity_type))
                .copied()
        });
        let charged = meter
            .since_first_observed(&group.id, now)
            .map(|r| (decimal_to_f64(r.total()), decimal_to_f64(r.spot)));
        let provider_total = self
            .reconcile_every
            .and_then(|_| meter.total_since_first_observed(now))
            .map(|r| r.total());
        drop(meters);
        if let Some(total) = provider_total {
            self.reconciler()
                .checkpoint(&managed.provider.name, now, total);
        }
        charged
    }

    /// When a reconciliation of the group's provider is due (see
    /// [`ControlLoop::with_reconciliation`]), asks the provider's bill for the complete days not
    /// reconciled yet and reports each day it has. No lock is held while the bill is asked.
    async fn reconcile(&self, managed: &ManagedGroup, now: DateTime<Utc>) {
        let Some(every) = self.reconcile_every else {
            return;
        };
        let provider = &managed.provider.name;
        let Some(billing) = managed
            .provider
            .billing
            .as_ref()
            .filter(|b| b.capabilities().actual_cost)
        else {
            return;
        };
        let Some(days) =
            self.reconciler()
                .begin_settled(provider, now, every, self.reconcile_settle)
        else {
            return;
        };
        // Ends the reconciliation however this future ends (even dropped mid-query).
        let mut pending = Pending {
            reconciler: &self.reconciler,
            provider,
            done: None,
        };
        let asked: Vec<_> = days.iter().map(|(day, _)| *day).collect();
        let billed = match billed_days(billing.as_ref(), &asked).await {
            Ok(billed) => billed,
            Err(error) => {
                tracing::warn!(
                    provider = %provider,
                    %error,
                    "reading the bill to reconcile the cost meter failed; trying again at the next reconciliation"
                );
                return;
            }
        };
        let meter_currency = self
            .prices()
            .iter()
            .filter(|((p, _, _), _)| p == provider)
            .find_map(|(_, v)| v.as_ref().map(|(_, c)| c.clone()));
        let mut done = Vec::new();
        let mut reconciled = Vec::new();
        for (day, metered) in days {
            let Some((amount, currency)) = billed.get(&day) else {
                tracing::debug!(provider = %provider, %day, "no bill for the day yet");
                continue;
            };
            done.push(day);
            if let Some(priced) = meter_currency.as_ref().filter(|c| *c != currency) {
                tracing::warn!(
                    provider = %provider,
                    %day,
                    "the bill is in {currency} and the meter's prices in {priced}: the day is not reconciled"
                );
                continue;
            }
            reconciled.push(compare(provider, day, metered, *amount, currency.clone()));
        }
        pending.done = Some(done);
        drop(pending);
        for reconciliation in reconciled {
            self.events.emit(&Event::CostReconciled(reconciliation));
        }
    }

    fn reconciler(&self) -> std::sync::MutexGuard<'_, Reconciler> {
        self.reconciler
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Feeds the group's cost to the budgets, evaluates them once per round (reporting each),
    /// and returns what they ask of the group's decision.
    fn budget_steer(
        &self,
        managed: &ManagedGroup,
        now: DateTime<Utc>,
        snapshot: &GroupSnapshot,
        (cost, metered): (Option<&(f64, String)>, Option<f64>),
        (load, ahead): (Option<(f64, u32)>, Option<&[crate::ForecastPoint]>),
    ) -> Option<BudgetSteer> {
        let mut guard = self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
        let (tracker, evaluated) = guard.as_mut()?;
        if let (Some((rate, currency)), Some(metered)) = (cost, metered) {
            tracker.observe_group(
                &managed.config.name,
                now,
                (metered, *rate, currency),
                snapshot.desired,
                load,
            );
            tracker.observe_forecast(&managed.config.name, now, ahead);
        }
        if *evaluated != Some(now) {
            *evaluated = Some(now);
            for status in tracker.evaluate(now) {
                self.events.emit(&Event::Budget(status));
            }
        }
        tracker.steer_for(&managed.config.name)
    }

    fn prices(&self) -> std::sync::MutexGuard<'_, Prices> {
        self.prices.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A reconciliation under way: ended when dropped, with the days reconciled (`done`) or, when
/// none were set, as aborted.
struct Pending<'a> {
    reconciler: &'a Mutex<Reconciler>,
    provider: &'a str,
    done: Option<Vec<chrono::NaiveDate>>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let mut reconciler = self
            .reconciler
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match self.done.take() {
            Some(done) => reconciler.finish(self.provider, &done),
            None => reconciler.abort(self.provider),
        }
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

fn decimal_to_f64(d: Decimal) -> f64 {
    d.to_string().parse().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod vertical_memory_tests {
    use super::VerticalMemory;

    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

    #[test]
    fn memory_sizing_holds_the_peak_per_instance_and_in_all() {
        // 10 instances of 32 GiB at most half full (16 GiB each, 160 GiB in all), at 0.8.
        let m = VerticalMemory::peak(
            [
                (0.25, 10, 32 * 1024),
                (0.5, 10, 32 * 1024),
                (0.4, 8, 32 * 1024),
            ]
            .into_iter(),
            0.8,
        )
        .unwrap();
        assert!((m.per_instance_peak - 16.0 * GIB).abs() < 1.0);
        assert!((m.total_peak - 160.0 * GIB).abs() < 1.0);
        assert!((m.per_instance_need - 20.0 * GIB).abs() < 1.0);
        // 16 GiB classes cannot hold one instance's 20 GiB need.
        assert_eq!(m.count(16 * 1024, 4), None);
        // 32 GiB: 160 / (32 × 0.8) = 6.25, so 7, more than the CPU's 4.
        assert_eq!(m.count(32 * 1024, 4), Some(7));
        // The CPU's count when it holds the memory already.
        assert_eq!(m.count(64 * 1024, 5), Some(5));
        // No sample: memory is not sized.
        assert_eq!(VerticalMemory::peak(std::iter::empty(), 0.8), None);
    }
}
