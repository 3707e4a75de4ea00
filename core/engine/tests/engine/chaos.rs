//! The chaos suite: many short randomised runs of the control loop over the simulated cloud, in
//! virtual time, each seeded, with faults injected from every side, and the guarantees the
//! engine keeps under faults checked at every step.
//!
//! # What is injected
//!
//! - **Provider errors** (the fault layer, at random rates): throttling, server errors (5xx) and
//!   timeouts, on every operation.
//! - **Partial failures**: a resize that reaches the cloud only part of the way and then fails
//!   (some instances did not launch, or were not terminated), from the fault layer; and spot
//!   interruptions in the simulated cloud (instances lost under a group).
//! - **Clock jumps**: the process paused (its clock and the world move on together by minutes at
//!   once), and the loop's clock stepped forward and later back (a wrong clock corrected), or
//!   back and later forward, by up to ten minutes.
//! - **Metric gaps and bursts of NaN, infinite and negative samples** (the fault layer's metric
//!   corruption).
//! - **A provider that hangs**: from a random time, every call of one group's provider goes
//!   unanswered until the run ends.
//! - **A budget** on one group whose forecast exceeds it, on `cap` or `deny_scale_out`.
//!
//! # What is checked, at every step
//!
//! - **Bounds**: every decision's desired capacity, and every capacity the cloud was set to
//!   (partial writes included), is within the group's `[min, max]`.
//! - **Step guards**: no change asked for moves more than `max_scale_out_step` /
//!   `max_scale_in_step`.
//! - **Rate limits**: every applied change is within what the group's target-tracking rate
//!   limits allow over their windows (the changes the loop applied, on its own clock). A window
//!   over which the loop's clock went backwards, where "within the window" has no single
//!   meaning, is not checked and is counted.
//! - **Budgets**: a decision of the budget's group is never below `min`; a scale-in every policy
//!   asks for is never blocked (by a budget or otherwise, unless a scale-in guard says so); a
//!   scale-out up to the availability floor is never denied; a budget's `capped` or `denied`
//!   limit only ever limits a scale-out (only an enforced cap, in a period's last tenth and
//!   saying so, brings capacity down, and never below `min`).
//! - **Metrics**: a policy whose newest sample is missing, stale, from the future, NaN,
//!   infinite or negative holds, and a decision with a holding policy never scales in.
//! - **Audit**: the audit log holds exactly the decisions made, group by group, with their
//!   outcomes.
//! - **Liveness**: every group whose provider answers is evaluated at every interval of the
//!   loop, and no two of its evaluations are further apart in real (world) time than the interval
//!   plus the pauses and backward clock steps injected between them. The hung group is
//!   evaluated at every interval until it hangs.
//!
//! The runs are seeded and replayable: the same seed gives a bit-identical run (checked on the
//! first seed). A failing run prints its seed and the command that replays it alone. Knobs, by
//! environment: `HOIST_CHAOS_SEED` (one run of that seed), `HOIST_CHAOS_RUNS` (how many runs,
//! default [`RUNS`]), `HOIST_CHAOS_BASE` (the first seed, default [`BASE_SEED`]).
//!
//! Two scripted runs pin down faults the loop once got wrong: a write the cloud carried out in
//! part must count against the rate limits, and a clock stepped back must not stall the groups.
//! The main run measures both too and prints them with the figures.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use hoist_api::layers::{Corruption, FaultKind, FaultLayer, Operation, Operations, SplitMix64};
use hoist_api::model::{Activity, CapacityType, Sample, ScalingGroup, TimeSeries};
use hoist_api::provider::{
    MetricsCapabilities, MetricsSource, ProviderSet, RangeQuery, RemoveInstances,
    ScalingCapabilities, ScalingProvider,
};
use hoist_api::{Clock, ErrorKind, MetricKind};
use hoist_engine::Decision;
use hoist_engine::audit::AuditLog;
use hoist_engine::budget::BudgetTracker;
use hoist_engine::config::budget::Rung;
use hoist_engine::config::{
    Behavior, GroupConfig, LimitAmount, PolicyConfig, Select, TargetTracking, parse_str,
};
use hoist_engine::control::{ControlLoop, GroupOutcome, ManagedGroup};
use hoist_engine::events::{Event, EventSink};
use hoist_sim::{DemandSpec, GeneratorSpec, SimGroupSpec, SimulatedCloud};

/// Runs of the main test.
const RUNS: u64 = 120;
/// The first seed of the main test.
const BASE_SEED: u64 = 0x5EED_0000;
/// The loop's interval.
const INTERVAL: Duration = Duration::from_secs(60);
/// The group whose provider hangs.
const HUNG: &str = "stuck";
/// The group under the budget.
const BUDGETED: &str = "batch";

fn interval() -> TimeDelta {
    TimeDelta::from_std(INTERVAL).unwrap()
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap()
}

/// The policy: `web` (utilisation, two scale-up limits), `queue` (two policies on two metrics,
/// each with its own limits), `batch` (under a daily budget, with an availability floor) on the
/// provider `sim`, and `stuck` alone on the provider `hung`.
fn policy(action: Rung, amount: f64) -> String {
    format!(
        "providers:
  sim:
    simulated: {{}}
  hung:
    simulated: {{}}
groups:
  - name: web
    provider: sim
    min: 2
    max: 40
    policies:
      - target_tracking:
          metric: utilization
          target: 0.6
          scale_up:
            limits: [{{instances: 4, period: 3m}}, {{percent: 50, period: 3m}}]
          scale_down:
            stabilization_window: 3m
            limits: [{{instances: 2, period: 2m}}]
    guards: {{ max_scale_out_step: 5, max_scale_in_step: 3, scale_in_cooldown: 2m }}
  - name: queue
    provider: sim
    min: 1
    max: 25
    policies:
      - target_tracking:
          metric: queue_depth
          target: 20
          scale_up:
            limits: [{{instances: 3, period: 2m}}]
          scale_down:
            limits: [{{percent: 20, period: 2m}}]
      - target_tracking:
          metric: utilization
          target: 0.7
          scale_up:
            limits: [{{percent: 100, period: 1m}}, {{instances: 2, period: 1m}}]
            select: min
    guards: {{ max_scale_out_step: 4, max_scale_in_step: 2 }}
  - name: batch
    provider: sim
    min: 2
    max: 30
    policies:
      - target_tracking:
          metric: utilization
          target: 0.6
          scale_up:
            limits: [{{instances: 6, period: 2m}}]
    guards: {{ max_scale_out_step: 6, availability_floor: 6 }}
  - name: stuck
    provider: hung
    min: 1
    max: 10
    policies:
      - target_tracking: {{ metric: utilization, target: 0.6 }}
budgets:
  - name: batch-daily
    scope: {{ group: batch }}
    period: daily
    amount: {amount:.2}
    action: {action}
"
    )
}

/// What one run injects, drawn from its seed.
#[derive(Debug, Clone)]
struct Scenario {
    seed: u64,
    minutes: i64,
    throttled: f64,
    transient: f64,
    timeout: f64,
    partial: f64,
    partial_kind: ErrorKind,
    corruption: Vec<(Corruption, f64)>,
    spot_interruptions_per_hour: f64,
    /// When each clock fault happens, on the loop's clock.
    clock: Vec<(DateTime<Utc>, ClockFault)>,
    budget_action: Rung,
    budget_amount: f64,
}

/// A jump of the clocks, applied between two rounds of the loop.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ClockFault {
    /// The process stops for this long: the world and the loop's clock both move on.
    Pause(TimeDelta),
    /// The loop's clock is stepped by this much (the world does not move).
    Step(TimeDelta),
    /// The hung group's provider stops answering (until the run ends).
    Hang,
}

impl Scenario {
    fn draw(seed: u64) -> Scenario {
        let mut rng = SplitMix64::new(seed ^ 0xC4A0_5C4A_05C4_A05C);
        let mut uniform = |lo: f64, hi: f64| lo + (hi - lo) * rng.next_f64();
        let minutes = uniform(120.0, 300.0) as i64;
        let throttled = uniform(0.0, 0.10);
        let transient = uniform(0.0, 0.10);
        let timeout = uniform(0.0, 0.05);
        let partial = uniform(0.0, 0.30);
        let partial_kind = if uniform(0.0, 1.0) < 0.5 {
            ErrorKind::CapacityUnavailable
        } else {
            ErrorKind::Transient
        };
        let corruption = Corruption::ALL
            .iter()
            .map(|c| (*c, uniform(0.0, 0.06)))
            .collect();
        let spot_interruptions_per_hour = uniform(0.0, 1.0);
        let budget_action = if uniform(0.0, 1.0) < 0.5 {
            Rung::Cap
        } else {
            Rung::DenyScaleOut
        };
        let budget_amount = uniform(0.5, 3.0);
        let mut clock = Vec::new();
        let at = |minute: f64| start() + TimeDelta::minutes(minute as i64);
        let span = minutes as f64;
        for _ in 0..(uniform(0.0, 3.0) as usize) {
            let when = at(uniform(5.0, span - 5.0));
            clock.push((
                when,
                ClockFault::Pause(TimeDelta::minutes(uniform(2.0, 30.0) as i64)),
            ));
        }
        for _ in 0..(uniform(0.0, 3.0) as usize) {
            // A clock stepped the wrong way, then corrected.
            let size = TimeDelta::minutes(uniform(1.0, 10.0) as i64);
            let size = if uniform(0.0, 1.0) < 0.5 { size } else { -size };
            let when = uniform(5.0, span - 20.0);
            let corrected = when + uniform(5.0, 60.0);
            clock.push((at(when), ClockFault::Step(size)));
            clock.push((at(corrected), ClockFault::Step(-size)));
        }
        if uniform(0.0, 1.0) < 0.7 {
            clock.push((at(uniform(10.0, span - 10.0)), ClockFault::Hang));
        }
        clock.sort_by_key(|(at, _)| *at);
        Scenario {
            seed,
            minutes,
            throttled,
            transient,
            timeout,
            partial,
            partial_kind,
            corruption,
            spot_interruptions_per_hour,
            clock,
            budget_action,
            budget_amount,
        }
    }

    fn end(&self) -> DateTime<Utc> {
        start() + TimeDelta::minutes(self.minutes)
    }
}

// ----- the clock -----

/// The loop's clock: the simulated world's time plus an offset that clock steps change; pauses
/// move the world itself. Sleeping until a time on the loop's clock waits (in the world) until
/// the loop's clock reads it, as the wall clock does.
#[derive(Debug)]
struct ChaosClock {
    cloud: SimulatedCloud,
    hung: FaultLayer,
    state: Mutex<ClockState>,
}

#[derive(Debug)]
struct ClockState {
    offset: TimeDelta,
    plan: Vec<(DateTime<Utc>, ClockFault)>,
    /// Applied faults: (world time, fault).
    applied: Vec<(DateTime<Utc>, ClockFault)>,
    /// Sleeps so far: the index of the loop's current round.
    sleeps: usize,
    end: DateTime<Utc>,
    released: bool,
    hang_started: Option<usize>,
}

impl ChaosClock {
    fn new(
        cloud: SimulatedCloud,
        hung: FaultLayer,
        plan: Vec<(DateTime<Utc>, ClockFault)>,
        end: DateTime<Utc>,
    ) -> Self {
        ChaosClock {
            cloud,
            hung,
            state: Mutex::new(ClockState {
                offset: TimeDelta::zero(),
                plan,
                applied: Vec::new(),
                sleeps: 0,
                end,
                released: false,
                hang_started: None,
            }),
        }
    }

    fn round(&self) -> usize {
        self.state.lock().unwrap().sleeps
    }

    fn world(&self) -> DateTime<Utc> {
        self.cloud.now()
    }
}

#[async_trait]
impl Clock for ChaosClock {
    fn now(&self) -> DateTime<Utc> {
        self.cloud.now() + self.state.lock().unwrap().offset
    }

    async fn sleep_until(&self, until: DateTime<Utc>) {
        let mut state = self.state.lock().unwrap();
        state.sleeps += 1;
        self.cloud.advance_to(until - state.offset);
        while let Some(&(at, fault)) = state.plan.first()
            && at <= until
        {
            state.plan.remove(0);
            state.applied.push((self.cloud.now(), fault));
            match fault {
                ClockFault::Pause(by) => self.cloud.advance(by.to_std().unwrap()),
                ClockFault::Step(by) => state.offset += by,
                ClockFault::Hang => {
                    state.hang_started = Some(state.sleeps);
                    self.hung.hang_next(Operations::All, u32::MAX);
                }
            }
        }
        // Hung calls are released a round before the end: the loop's last sleep need not fall
        // on the end itself (its schedule restarts from the clock after a step), and a pause
        // may carry the clock past the end, after which the loop ends without sleeping again.
        let now = self.cloud.now() + state.offset;
        if until.max(now) + interval() * 2 > state.end && !state.released {
            state.released = true;
            self.hung.release_hangs();
        }
    }
}

// ----- what reached the cloud, what the loop saw -----

/// A change of desired capacity that reached the cloud.
#[derive(Debug, Clone)]
struct Change {
    group: String,
    /// On the loop's clock.
    at: DateTime<Utc>,
    from: u32,
    to: u32,
}

/// The simulated cloud's scaling, recording every change of desired capacity that reached it
/// (inside the fault layer, so partial writes are seen as the cloud took them).
#[derive(Debug)]
struct CloudWrites {
    inner: Arc<dyn ScalingProvider>,
    clock: Arc<ChaosClock>,
    log: Mutex<Vec<Change>>,
}

#[async_trait]
impl ScalingProvider for CloudWrites {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> ScalingCapabilities {
        self.inner.capabilities()
    }

    async fn list_groups(&self) -> hoist_api::Result<Vec<ScalingGroup>> {
        self.inner.list_groups().await
    }

    async fn describe_group(&self, group: &str) -> hoist_api::Result<ScalingGroup> {
        self.inner.describe_group(group).await
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> hoist_api::Result<()> {
        let from = self.inner.describe_group(group).await?.desired_capacity;
        self.inner.set_desired_capacity(group, desired).await?;
        self.log.lock().unwrap().push(Change {
            group: group.to_owned(),
            at: self.clock.now(),
            from,
            to: desired,
        });
        Ok(())
    }

    async fn remove_instances(
        &self,
        group: &str,
        request: &RemoveInstances,
    ) -> hoist_api::Result<()> {
        self.inner.remove_instances(group, request).await
    }

    async fn set_instance_class(
        &self,
        group: &str,
        request: &hoist_api::ChangeInstanceClass,
    ) -> hoist_api::Result<Option<Activity>> {
        self.inner.set_instance_class(group, request).await
    }

    async fn activities(&self, group: &str) -> hoist_api::Result<Vec<Activity>> {
        self.inner.activities(group).await
    }
}

/// What the loop received from its metrics source, last, per (group, metric): when (on the
/// loop's clock) and the samples (`None`: the query failed).
type Answers = HashMap<(String, MetricKind), (DateTime<Utc>, Option<Vec<Sample>>)>;

/// The metrics source as the loop sees it (outside the fault layer).
#[derive(Debug)]
struct MetricsTap {
    inner: Arc<dyn MetricsSource>,
    clock: Arc<ChaosClock>,
    answers: Mutex<Answers>,
}

#[async_trait]
impl MetricsSource for MetricsTap {
    fn capabilities(&self) -> MetricsCapabilities {
        self.inner.capabilities()
    }

    async fn query_range(&self, request: &RangeQuery) -> hoist_api::Result<Vec<TimeSeries>> {
        let answer = self.inner.query_range(request).await;
        let samples = match &answer {
            Ok(series) if series.len() == 1 => Some(series[0].samples.clone()),
            Ok(series) if series.is_empty() => Some(Vec::new()),
            _ => None,
        };
        self.answers.lock().unwrap().insert(
            (request.query.group.clone(), request.query.metric.clone()),
            (self.clock.now(), samples),
        );
        answer
    }
}

/// Everything the loop told its event sink, and the checks made as it happened.
#[derive(Debug)]
struct Watch {
    configs: BTreeMap<String, GroupConfig>,
    tap: Arc<MetricsTap>,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    decisions: Vec<Decision>,
    /// (group, at of its decision, from, to, applied).
    acted: Vec<(String, DateTime<Utc>, u32, u32, bool)>,
    /// Last observed provider bounds per group.
    provider_bounds: HashMap<String, (u32, u32)>,
    /// Budget rounds on each rung.
    rungs: BTreeMap<String, u64>,
    metric_checks: u64,
    violations: Vec<String>,
}

impl EventSink for Watch {
    fn emit(&self, event: &Event) {
        let mut seen = self.seen.lock().unwrap();
        match event {
            Event::GroupObserved { group, .. } => {
                seen.provider_bounds
                    .insert(group.id.clone(), (group.provider_min, group.provider_max));
            }
            Event::Decided { decision, .. } => {
                if decision.group != HUNG {
                    self.check_metrics(&mut seen, decision);
                }
                seen.decisions.push(decision.clone());
            }
            Event::Acted {
                group,
                from,
                to,
                error,
                ..
            } => {
                let at = seen
                    .decisions
                    .iter()
                    .rev()
                    .find(|d| &d.group == group)
                    .map_or(DateTime::<Utc>::MIN_UTC, |d| d.at);
                seen.acted
                    .push((group.clone(), at, *from, *to, error.is_none()));
            }
            Event::Budget(status) => {
                let rung = status.rung.map_or("none", Rung::as_str);
                *seen.rungs.entry(rung.to_owned()).or_default() += 1;
            }
            _ => {}
        }
    }
}

impl Watch {
    /// A policy whose newest sample is unusable holds, and a decision with a holding policy
    /// does not scale in.
    fn check_metrics(&self, seen: &mut Seen, decision: &Decision) {
        let Some(config) = self.configs.get(&decision.group) else {
            return;
        };
        let answers = self.tap.answers.lock().unwrap();
        let max_age = config.guards.metric_max_age.as_delta();
        for (index, policy) in config.policies.iter().enumerate() {
            let PolicyConfig::TargetTracking(tt) = policy else {
                continue;
            };
            let Some((asked_at, samples)) =
                answers.get(&(decision.group.clone(), tt.metric.clone()))
            else {
                seen.violations.push(format!(
                    "{} at {}: decided without asking for {}",
                    decision.group, decision.at, tt.metric
                ));
                continue;
            };
            if *asked_at != decision.at {
                seen.violations.push(format!(
                    "{} at {}: the last {} query was at {asked_at}",
                    decision.group, decision.at, tt.metric
                ));
                continue;
            }
            let newest = samples.as_ref().and_then(|s| s.last());
            let unusable = match newest {
                None => true,
                Some(s) => {
                    !s.value.is_finite()
                        || s.value < 0.0
                        || decision.at - s.at > max_age
                        || s.at > decision.at + TimeDelta::seconds(1)
                }
            };
            if !unusable {
                continue;
            }
            seen.metric_checks += 1;
            let prefix = format!("policies[{index}].");
            let reason = decision
                .reasons
                .iter()
                .find(|r| r.source.starts_with(&prefix));
            if reason.is_none_or(|r| r.recommended.is_some()) {
                seen.violations.push(format!(
                    "{} at {}: {} newest sample {newest:?} is unusable, yet policy {index} voted: {reason:?}",
                    decision.group, decision.at, tt.metric
                ));
            }
        }
        let holds = decision
            .reasons
            .iter()
            .any(|r| r.source.starts_with("policies[") && r.recommended.is_none());
        if holds {
            seen.metric_checks += 1;
            if decision.desired < decision.current && decision.current <= config.max {
                seen.violations.push(format!(
                    "{} at {}: a policy held, yet the group scaled in {} -> {}",
                    decision.group, decision.at, decision.current, decision.desired
                ));
            }
        }
    }
}

// ----- the checks after a run -----

/// The most (scale-out) and the fewest (scale-in) instances the rate limits of `policies` let a
/// group at `from` move to at `at`, given the changes made before (in the order made); `None`
/// when the window of a limit is ambiguous because the clock went backwards over it.
fn rate_window(
    policies: &[&TargetTracking],
    prior: &[(DateTime<Utc>, i64)],
    at: DateTime<Utc>,
    from: u32,
) -> Option<(u32, u32)> {
    let mut up: u32 = 0;
    let mut down: u32 = 0;
    let mut up_unlimited = false;
    for tt in policies {
        let up_p = limit(&tt.scale_up, true, prior, at, from)?;
        let down_p = limit(&tt.scale_down, false, prior, at, from)?;
        match up_p {
            Some(u) => up = up.max(u),
            None => up_unlimited = true,
        }
        down = down.max(down_p.unwrap_or(0));
    }
    Some((if up_unlimited { u32::MAX } else { up }, down))
}

/// One behaviour's limit in one direction; `Some(None)` when it has no limits, `None` when a
/// window is ambiguous.
fn limit(
    behavior: &Behavior,
    up: bool,
    prior: &[(DateTime<Utc>, i64)],
    at: DateTime<Utc>,
    from: u32,
) -> Option<Option<u32>> {
    if behavior.select == Select::Disabled {
        return Some(Some(from));
    }
    let mut best: Option<i64> = None;
    for rule in &behavior.limits {
        let cutoff = at - rule.period.as_delta();
        // The changes in (cutoff, at], made in clock order; otherwise the window is ambiguous.
        let last_old = prior.iter().rposition(|(t, _)| *t <= cutoff);
        let (before, after) = match last_old {
            Some(i) => (&prior[..i], &prior[i + 1..]),
            None => (&prior[..0], prior),
        };
        if before.iter().any(|(t, _)| *t > cutoff) || after.iter().any(|(t, _)| *t > at) {
            return None;
        }
        let added: i64 = after.iter().map(|(_, c)| (*c).max(0)).sum();
        let removed: i64 = after.iter().map(|(_, c)| (-*c).max(0)).sum();
        let start = i64::from(from) - added + removed;
        let proposed = match (rule.amount, up) {
            (LimitAmount::Instances(n), true) => start + i64::from(n),
            (LimitAmount::Instances(n), false) => start - i64::from(n),
            (LimitAmount::Percent(p), true) => (start as f64 * (1.0 + p / 100.0)).ceil() as i64,
            (LimitAmount::Percent(p), false) => (start as f64 * (1.0 - p / 100.0)).trunc() as i64,
        };
        // `max` picks the largest change, `min` the smallest.
        let larger = |a: i64, b: i64| if up { a.max(b) } else { a.min(b) };
        let smaller = |a: i64, b: i64| if up { a.min(b) } else { a.max(b) };
        best = Some(match (best, behavior.select) {
            (None, _) => proposed,
            (Some(b), Select::Min) => smaller(b, proposed),
            (Some(b), _) => larger(b, proposed),
        });
    }
    Some(best.map(|b| {
        let b = b.clamp(0, i64::from(u32::MAX)) as u32;
        if up { b.max(from) } else { b.min(from) }
    }))
}

/// The figures of one run (or of many, added up).
#[derive(Debug, Default, Clone)]
struct Figures {
    runs: u64,
    minutes: i64,
    decisions: u64,
    faults: BTreeMap<String, u64>,
    checks: BTreeMap<&'static str, u64>,
    /// Applied changes whose rate-limit window the clock went backwards over.
    unchecked_windows: u64,
    budget_rounds: BTreeMap<String, u64>,
    /// Known gap: changes that reached the cloud beyond the rate limits, after partially
    /// applied writes that the loop did not count.
    overruns: u64,
    /// Known gap: the longest time (beyond the interval and the pauses) a group waited for its
    /// next evaluation after a backward clock step.
    longest_stall: TimeDelta,
    /// The most evaluations of one group at one instant (a loop catching up after its clock
    /// jumped forward).
    longest_burst: u64,
    /// A digest of the audit log, to tell runs apart.
    audit_digest: u64,
}

impl Figures {
    fn add(&mut self, other: &Figures) {
        self.runs += other.runs;
        self.minutes += other.minutes;
        self.decisions += other.decisions;
        for (k, v) in &other.faults {
            *self.faults.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.checks {
            *self.checks.entry(k).or_default() += v;
        }
        self.unchecked_windows += other.unchecked_windows;
        for (k, v) in &other.budget_rounds {
            *self.budget_rounds.entry(k.clone()).or_default() += v;
        }
        self.overruns += other.overruns;
        self.longest_stall = self.longest_stall.max(other.longest_stall);
        self.longest_burst = self.longest_burst.max(other.longest_burst);
    }

    fn check(&mut self, name: &'static str, n: u64) {
        *self.checks.entry(name).or_default() += n;
    }

    fn fault(&mut self, name: &str, n: u64) {
        if n > 0 {
            *self.faults.entry(name.to_owned()).or_default() += n;
        }
    }

    fn total_checks(&self) -> u64 {
        self.checks.values().sum()
    }

    fn total_faults(&self) -> u64 {
        self.faults.values().sum()
    }
}

/// One evaluation as the loop reported it: the group, the loop's round, the world time, and the
/// decision with its outcome (`None`: the group could not be observed).
#[derive(Debug)]
struct Evaluation {
    group: String,
    round: usize,
    world: DateTime<Utc>,
    decided: Option<(Decision, &'static str)>,
}

/// Decisions by group: (time, current, desired, outcome), in the order made.
type DecisionsByGroup = BTreeMap<String, Vec<(DateTime<Utc>, u32, u32, String)>>;

/// How a run went: its figures and whatever broke a guarantee.
#[derive(Debug)]
struct Outcome {
    figures: Figures,
    violations: Vec<String>,
}

/// One seeded run.
async fn chaos_run(scenario: &Scenario) -> Outcome {
    let seed = scenario.seed;
    let text = policy(scenario.budget_action, scenario.budget_amount);
    let doc = parse_str(Path::new("chaos.yaml"), &text).expect("chaos policy");
    let configs: BTreeMap<String, GroupConfig> = doc
        .policy
        .groups
        .iter()
        .map(|g| (g.name.clone(), g.clone()))
        .collect();
    let spiky = |base: f64| {
        DemandSpec::Generator(GeneratorSpec {
            noise: 0.3,
            spikes_per_day: 24.0,
            spike_magnitude: 4.0,
            ..GeneratorSpec::web(base)
        })
    };
    let cloud = SimulatedCloud::builder()
        .seed(seed)
        .start(start())
        .spot_interruptions_per_hour(scenario.spot_interruptions_per_hour)
        .group(SimGroupSpec {
            min: 0,
            max: 1000,
            desired: 4,
            demand: spiky(600.0),
            ..SimGroupSpec::new("web")
        })
        .group(SimGroupSpec {
            min: 0,
            max: 1000,
            desired: 2,
            demand: spiky(300.0),
            ..SimGroupSpec::new("queue")
        })
        .group(SimGroupSpec {
            min: 0,
            max: 1000,
            desired: 3,
            demand: spiky(500.0),
            capacity_type: CapacityType::Spot,
            ..SimGroupSpec::new(BUDGETED)
        })
        .group(SimGroupSpec {
            min: 0,
            max: 1000,
            desired: 2,
            demand: spiky(150.0),
            ..SimGroupSpec::new(HUNG)
        })
        .build()
        .expect("simulated cloud");

    let hung_faults = FaultLayer::new(seed.wrapping_add(1));
    let clock = Arc::new(ChaosClock::new(
        cloud.clone(),
        hung_faults.clone(),
        scenario.clock.clone(),
        scenario.end(),
    ));
    let mut faults = FaultLayer::new(seed)
        .with_error_rate(Operations::All, ErrorKind::Throttled, scenario.throttled)
        .with_error_rate(Operations::All, ErrorKind::Transient, scenario.transient)
        .with_error_rate(Operations::All, ErrorKind::Timeout, scenario.timeout)
        .with_partial_failures(
            Operation::SetDesiredCapacity,
            scenario.partial_kind,
            scenario.partial,
        );
    for (corruption, rate) in &scenario.corruption {
        faults = faults.with_metric_corruption(*corruption, *rate);
    }

    // sim: CloudWrites(sim) inside the fault layer, the metrics tap outside it.
    let base = cloud.provider_set("sim");
    let writes = Arc::new(CloudWrites {
        inner: base.scaling.clone().expect("scaling"),
        clock: clock.clone(),
        log: Mutex::new(Vec::new()),
    });
    let faulty = ProviderSet {
        scaling: Some(writes.clone()),
        ..base
    }
    .with_layer(&faults);
    let tap = Arc::new(MetricsTap {
        inner: faulty.metrics.clone().expect("metrics"),
        clock: clock.clone(),
        answers: Mutex::new(HashMap::new()),
    });
    let sim = ProviderSet {
        metrics: Some(tap.clone()),
        ..faulty
    };
    let hung = cloud.provider_set("hung").with_layer(&hung_faults);
    let groups: Vec<ManagedGroup> = doc
        .policy
        .groups
        .iter()
        .map(|g| {
            let provider = if g.provider == "hung" {
                hung.clone()
            } else {
                sim.clone()
            };
            ManagedGroup::new(g.clone(), provider)
        })
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let audit = Arc::new(AuditLog::open(&audit_path).unwrap());
    let watch = Arc::new(Watch {
        configs: configs.clone(),
        tap: tap.clone(),
        seen: Mutex::new(Seen::default()),
    });
    let mut control = ControlLoop::new(groups, clock.clone(), INTERVAL)
        .with_events(watch.clone())
        .with_audit(audit)
        .with_budgets(BudgetTracker::new(&doc.policy));

    let mut outcomes: Vec<Evaluation> = Vec::new();
    control
        .run(Some(scenario.end()), |outcome| {
            let (group, decided) = match outcome {
                GroupOutcome::Decided {
                    decision, action, ..
                } => (
                    decision.group.clone(),
                    Some((decision.clone(), action.as_str())),
                ),
                GroupOutcome::ObserveFailed { group, .. } => (group.clone(), None),
            };
            outcomes.push(Evaluation {
                group,
                round: clock.round(),
                world: clock.world(),
                decided,
            });
        })
        .await
        .expect("the run");

    let mut figures = Figures {
        runs: 1,
        minutes: scenario.minutes,
        ..Figures::default()
    };
    let seen = std::mem::take(&mut *watch.seen.lock().unwrap());
    let mut violations = seen.violations.clone();
    figures.decisions = seen.decisions.len() as u64;
    figures.check("metrics", seen.metric_checks);
    figures.budget_rounds = seen.rungs.clone();

    // Faults injected, by kind.
    for fault in faults
        .injected()
        .iter()
        .chain(hung_faults.injected().iter())
    {
        let name = match fault.fault {
            FaultKind::Error => fault.kind.as_str().to_owned(),
            FaultKind::Partial => "partial write".to_owned(),
            FaultKind::Hang => "hung call".to_owned(),
            FaultKind::Corrupted(c) => format!("metric {c}"),
            _ => "other".to_owned(),
        };
        figures.fault(&name, 1);
    }
    let state = clock.state.lock().unwrap();
    for (_, fault) in &state.applied {
        match fault {
            ClockFault::Pause(_) => figures.fault("pause", 1),
            ClockFault::Step(by) if *by > TimeDelta::zero() => figures.fault("clock forward", 1),
            ClockFault::Step(_) => figures.fault("clock back", 1),
            // Counted as the calls that hung.
            ClockFault::Hang => {}
        }
    }
    let interrupted = cloud
        .instance_history(BUDGETED)
        .unwrap()
        .iter()
        .filter(|i| i.interrupted)
        .count();
    figures.fault("spot interruption", interrupted as u64);

    // Bounds: every decision and every capacity the cloud was set to.
    for d in &seen.decisions {
        let config = &configs[&d.group];
        if !(config.min..=config.max).contains(&d.desired) {
            violations.push(format!(
                "{} at {}: desired {} outside [{}, {}]",
                d.group, d.at, d.desired, config.min, config.max
            ));
        }
        if let Some((pmin, pmax)) = seen.provider_bounds.get(&d.group)
            && !(*pmin..=*pmax).contains(&d.desired)
        {
            violations.push(format!(
                "{}: desired {} outside the provider's bounds",
                d.group, d.desired
            ));
        }
    }
    figures.check("bounds", seen.decisions.len() as u64);
    let cloud_changes = writes.log.lock().unwrap().clone();
    for c in &cloud_changes {
        let config = &configs[&c.group];
        if !(config.min..=config.max).contains(&c.to) {
            violations.push(format!(
                "{} at {}: the cloud was set to {} outside [{}, {}]",
                c.group, c.at, c.to, config.min, config.max
            ));
        }
    }
    figures.check("bounds", cloud_changes.len() as u64);

    // Step guards, on every change asked for.
    for (group, at, from, to, _) in &seen.acted {
        let guards = &configs[group].guards;
        let step = if to > from {
            guards.max_scale_out_step
        } else {
            guards.max_scale_in_step
        };
        if let Some(step) = step
            && from.abs_diff(*to) > step
        {
            violations.push(format!(
                "{group} at {at}: {from} -> {to} exceeds the step guard {step}"
            ));
        }
    }
    figures.check("step guards", seen.acted.len() as u64);

    // Rate limits: on the changes the loop applied, and (a known gap) on what reached the cloud.
    for (name, config) in &configs {
        let policies: Vec<&TargetTracking> = config
            .policies
            .iter()
            .filter_map(|p| match p {
                PolicyConfig::TargetTracking(tt) => Some(tt),
                _ => None,
            })
            .collect();
        let mut prior: Vec<(DateTime<Utc>, i64)> = Vec::new();
        // The cloud's changes of this group, each matched to the write that made it: first the
        // writes that succeeded (exactly their change), then the failed ones (what is left at
        // their time and starting capacity).
        let reached: Vec<&Change> = cloud_changes.iter().filter(|c| &c.group == name).collect();
        let mut used = vec![false; reached.len()];
        let acted: Vec<_> = seen.acted.iter().filter(|(g, ..)| g == name).collect();
        let mut claim = |pred: &dyn Fn(&Change) -> bool| {
            let i = (0..reached.len()).find(|&i| !used[i] && pred(reached[i]))?;
            used[i] = true;
            Some(i64::from(reached[i].to) - i64::from(reached[i].from))
        };
        for (_, at, from, to, _) in acted.iter().filter(|a| a.4) {
            claim(&|c| c.at == *at && c.from == *from && c.to == *to);
        }
        for (_, at, from, to, ok) in acted {
            let made = if *ok {
                None
            } else {
                claim(&|c| c.at == *at && c.from == *from)
            };
            if !*ok {
                // A failed write the cloud carried out in part counts as what reached it, as
                // the loop counts it.
                if let Some(change) = made {
                    prior.push((*at, change));
                }
                continue;
            }
            match rate_window(&policies, &prior, *at, *from) {
                Some((up, down)) => {
                    figures.check("rate limits", 1);
                    if (to > from && *to > up) || (to < from && *to < down) {
                        violations.push(format!(
                            "{name} at {at}: {from} -> {to}, but the rate limits allow [{down}, {up}] (changes before: {prior:?})"
                        ));
                    }
                }
                None => figures.unchecked_windows += 1,
            }
            prior.push((*at, i64::from(*to) - i64::from(*from)));
        }
        let mut prior: Vec<(DateTime<Utc>, i64)> = Vec::new();
        for c in cloud_changes.iter().filter(|c| &c.group == name) {
            if let Some((up, down)) = rate_window(&policies, &prior, c.at, c.from)
                && ((c.to > c.from && c.to > up) || (c.to < c.from && c.to < down))
            {
                figures.overruns += 1;
            }
            prior.push((c.at, i64::from(c.to) - i64::from(c.from)));
        }
    }

    // Budgets, scale-in and the availability floor, read from each decision's reasons.
    for d in &seen.decisions {
        let config = &configs[&d.group];
        let (pmin, pmax) = seen
            .provider_bounds
            .get(&d.group)
            .copied()
            .unwrap_or((0, u32::MAX));
        let budget = d.reasons.iter().find(|r| r.source.starts_with("budget."));
        let steered = budget
            .is_some_and(|r| r.message.contains("(cap)") || r.message.contains("(deny_scale_out)"));
        let policy_reasons: Vec<_> = d
            .reasons
            .iter()
            .filter(|r| r.source.starts_with("policies["))
            .collect();
        let votes: Vec<u32> = policy_reasons
            .iter()
            .filter_map(|r| r.recommended)
            .collect();
        let holds = policy_reasons.len() - votes.len();
        let has = |source: &str| d.reasons.iter().any(|r| r.source == source);
        let availability = config
            .guards
            .availability_floor
            .unwrap_or(config.min)
            .max(config.min);
        let floor = if budget.is_some() {
            availability.max(pmin)
        } else {
            config.min.max(pmin)
        };
        // A scale-in every policy asks for is not blocked, unless a scale-in guard says so.
        if holds == 0
            && !votes.is_empty()
            && votes.iter().all(|v| *v < d.current)
            && !has("guard.scale_in_cooldown")
            && !has("guard.scale_in_protection")
        {
            figures.check(
                if steered {
                    "budget: scale-in not blocked"
                } else {
                    "scale-in not blocked"
                },
                1,
            );
            if d.desired >= d.current && d.current > floor {
                violations.push(format!(
                    "{} at {}: every policy asked to scale in from {} ({votes:?}), yet desired is {}: {:?}",
                    d.group, d.at, d.current, d.desired, d.reasons
                ));
            }
        }
        if !steered {
            continue;
        }
        figures.check("budget: not below min", 1);
        if d.desired < config.min {
            violations.push(format!(
                "{} at {}: the budget took the group below min",
                d.group, d.at
            ));
        }
        // A budget only ever limits a scale-out.
        if let Some(r) = budget
            && r.recommended.is_some()
            && (r.message.contains("scale-out denied") || r.message.contains("scale-out capped"))
        {
            figures.check("budget: limits only scale-out", 1);
        }
        if let Some(r) = budget
            && let Some(recommended) = r.recommended
            && (r.message.contains("scale-out denied") || r.message.contains("scale-out capped"))
            && (recommended < d.current || d.desired < d.current)
        {
            violations.push(format!(
                "{} at {}: the budget limited a change to {recommended} from {}: {}",
                d.group, d.at, d.current, r.message
            ));
        }
        // A scale-out up to the availability floor is never denied.
        if let Some(most) = votes.iter().copied().filter(|v| *v > d.current).max()
            && d.current < availability
            && !has("guard.scale_out_cooldown")
        {
            figures.check("budget: availability floor", 1);
            let step = config
                .guards
                .max_scale_out_step
                .map_or(u32::MAX, |s| d.current.saturating_add(s));
            let owed = most.min(step).min(availability).min(config.max).min(pmax);
            if d.desired < owed {
                violations.push(format!(
                    "{} at {}: the availability floor is {availability} and the policies asked for {most}, yet desired is {} from {}",
                    d.group, d.at, d.desired, d.current
                ));
            }
        }
    }

    // Audit: exactly the decisions made, group by group, with their outcomes.
    let text = std::fs::read_to_string(&audit_path).unwrap();
    figures.audit_digest = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut audited: DecisionsByGroup = BTreeMap::new();
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).expect("an audit line is JSON");
        if record["record"] != "decision" {
            continue;
        }
        let at: DateTime<Utc> = serde_json::from_value(record["at"].clone()).expect("at");
        audited
            .entry(record["group"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push((
                at,
                record["current"].as_u64().unwrap_or(u64::MAX) as u32,
                record["desired"].as_u64().unwrap_or(u64::MAX) as u32,
                record["outcome"].as_str().unwrap_or_default().to_owned(),
            ));
    }
    let mut decided: DecisionsByGroup = BTreeMap::new();
    for evaluation in &outcomes {
        if let Some((d, action)) = &evaluation.decided {
            decided.entry(evaluation.group.clone()).or_default().push((
                d.at,
                d.current,
                d.desired,
                (*action).to_owned(),
            ));
        }
    }
    if audited != decided {
        violations.push(format!(
            "the audit log does not match the decisions: {} audited, {} decided",
            audited.values().map(Vec::len).sum::<usize>(),
            decided.values().map(Vec::len).sum::<usize>()
        ));
    }
    if seen.decisions.len() != decided.values().map(Vec::len).sum::<usize>() {
        violations.push("a decision event without an outcome, or the reverse".to_owned());
    }
    figures.check(
        "audit",
        audited.values().map(Vec::len).sum::<usize>() as u64,
    );

    // Liveness: every round evaluates every group that answers; no group waits longer in the
    // world than the interval plus the pauses and backward steps since its last evaluation.
    let rounds = state.sleeps + 1;
    let hang_round = state.hang_started;
    for name in configs.keys() {
        let mine: Vec<&Evaluation> = outcomes.iter().filter(|o| &o.group == name).collect();
        let expected: Vec<usize> = match (name.as_str(), hang_round) {
            (HUNG, Some(hung_at)) => (0..hung_at).collect(),
            _ => (0..rounds).collect(),
        };
        let got: Vec<usize> = mine.iter().map(|o| o.round).take(expected.len()).collect();
        if got != expected {
            violations.push(format!(
                "{name}: evaluated in rounds {:?}.. of {rounds}, expected every round{}",
                &got[..got.len().min(20)],
                if name == HUNG { " until it hung" } else { "" }
            ));
        }
        let extra = mine.len() - got.len();
        // The hung group's hung evaluation ends when its calls are released, a round before the
        // end; it may then be evaluated in the last rounds too.
        if ((name != HUNG || hang_round.is_none()) && extra > 0) || extra > 3 {
            violations.push(format!("{name}: {extra} evaluations more than rounds"));
        }
        figures.check("liveness", got.len() as u64);
        for pair in mine[..got.len()].windows(2) {
            let (w1, w2) = (pair[0].world, pair[1].world);
            let jumped = |back: bool| -> TimeDelta {
                state
                    .applied
                    .iter()
                    .filter(|(at, _)| *at >= w1 && *at < w2)
                    .map(|(_, f)| match f {
                        ClockFault::Pause(by) if !back => *by,
                        ClockFault::Step(by) if back && *by < TimeDelta::zero() => -*by,
                        _ => TimeDelta::zero(),
                    })
                    .sum()
            };
            let gap = w2 - w1;
            let excused = interval() + jumped(false);
            if gap > excused + jumped(true) {
                violations.push(format!(
                    "{name}: no evaluation between {w1} and {w2} (world time)"
                ));
            }
            figures.longest_stall = figures.longest_stall.max(gap - excused);
        }
        let mut bursts: HashMap<DateTime<Utc>, u64> = HashMap::new();
        for o in &mine {
            *bursts.entry(o.world).or_default() += 1;
        }
        figures.longest_burst = figures
            .longest_burst
            .max(bursts.values().copied().max().unwrap_or(0));
    }
    Outcome {
        figures,
        violations,
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn replay_hint(seed: u64) -> String {
    format!("HOIST_CHAOS_SEED={seed} cargo test -p hoist-engine --test engine chaos -- --nocapture")
}

fn summary(figures: &Figures, wall: Duration) -> String {
    let faults: Vec<String> = figures
        .faults
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let checks: Vec<String> = figures
        .checks
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let rungs: Vec<String> = figures
        .budget_rounds
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    format!(
        "chaos: {} runs, {:.1} h simulated, {} decisions, {:.1} s\n\
         chaos: faults injected {}: {}\n\
         chaos: invariant checks {}: {}; rate-limit windows over a backward clock step not checked: {}\n\
         chaos: budget rounds by rung: {}\n\
         chaos: known gaps: {} changes reached the cloud beyond the rate limits after partially applied writes; \
         longest stall after a backward clock step {} min beyond the interval; \
         at most {} evaluations of one group at one instant after a forward jump",
        figures.runs,
        figures.minutes as f64 / 60.0,
        figures.decisions,
        wall.as_secs_f64(),
        figures.total_faults(),
        faults.join(", "),
        figures.total_checks(),
        checks.join(", "),
        figures.unchecked_windows,
        rungs.join(", "),
        figures.overruns,
        figures.longest_stall.num_minutes(),
        figures.longest_burst,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarantees_hold_under_injected_faults() {
    let started = Instant::now();
    let seeds: Vec<u64> = match env_u64("HOIST_CHAOS_SEED") {
        Some(seed) => vec![seed],
        None => {
            let base = env_u64("HOIST_CHAOS_BASE").unwrap_or(BASE_SEED);
            let runs = env_u64("HOIST_CHAOS_RUNS").unwrap_or(RUNS);
            (base..base + runs).collect()
        }
    };
    let mut total = Figures::default();
    let mut failures = Vec::new();
    for (index, seed) in seeds.iter().enumerate() {
        let scenario = Scenario::draw(*seed);
        let outcome = chaos_run(&scenario).await;
        if index == 0 {
            // The same seed, the same run.
            let again = chaos_run(&scenario).await;
            assert_eq!(
                outcome.figures.audit_digest, again.figures.audit_digest,
                "seed {seed} did not replay identically"
            );
        }
        if !outcome.violations.is_empty() {
            println!(
                "chaos: run {} of {} FAILED, seed {seed} ({} violations); replay it alone with\n  {}\n  scenario: {scenario:?}",
                index + 1,
                seeds.len(),
                outcome.violations.len(),
                replay_hint(*seed)
            );
            for v in outcome.violations.iter().take(10) {
                println!("  - {v}");
            }
            failures.push(*seed);
        }
        total.add(&outcome.figures);
    }
    println!("{}", summary(&total, started.elapsed()));
    assert!(
        failures.is_empty(),
        "chaos runs failed, seeds {failures:?}; replay one with {}",
        replay_hint(failures.first().copied().unwrap_or_default())
    );
    // Every kind of fault was injected, and the budget steered.
    if seeds.len() >= 20 {
        for kind in [
            "throttled",
            "transient",
            "timeout",
            "partial write",
            "hung call",
            "metric gap",
            "metric nan",
            "metric infinite",
            "metric negative",
            "pause",
            "clock forward",
            "clock back",
            "spot interruption",
        ] {
            assert!(
                total.faults.get(kind).copied().unwrap_or(0) > 0,
                "no {kind} injected: {:?}",
                total.faults
            );
        }
        for check in [
            "budget: not below min",
            "budget: limits only scale-out",
            "budget: availability floor",
            "budget: scale-in not blocked",
        ] {
            assert!(
                total.checks.get(check).copied().unwrap_or(0) > 0,
                "no `{check}` check made: {:?}",
                total.checks
            );
        }
    }
}

/// The target-tracking policies of `web` in the chaos policy.
fn web_policies() -> Vec<TargetTracking> {
    let doc = parse_str(Path::new("chaos.yaml"), &policy(Rung::Cap, 1.0)).expect("chaos policy");
    doc.policy.groups[0]
        .policies
        .iter()
        .filter_map(|p| match p {
            PolicyConfig::TargetTracking(tt) => Some(tt.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_rate_limit_oracle_follows_the_documented_rules() {
    let policies = web_policies();
    let web: Vec<&TargetTracking> = policies.iter().collect();
    let t = start() + TimeDelta::hours(1);
    let m = TimeDelta::minutes;
    // Scale-up: max(4 instances, 50 %) per 3m from the capacity at the window's start.
    assert_eq!(rate_window(&web, &[], t, 4).unwrap().0, 8);
    assert_eq!(rate_window(&web, &[], t, 10).unwrap().0, 15);
    assert_eq!(rate_window(&web, &[(t - m(1), 3)], t, 7).unwrap().0, 8);
    // A change exactly one period old is outside the window.
    assert_eq!(rate_window(&web, &[(t - m(3), 3)], t, 7).unwrap().0, 11);
    // Scale-down: 2 instances per 2m, never above the current capacity.
    assert_eq!(rate_window(&web, &[], t, 10).unwrap().1, 8);
    assert_eq!(rate_window(&web, &[(t - m(1), -2)], t, 8).unwrap().1, 8);
    assert_eq!(rate_window(&web, &[(t - m(1), 5)], t, 8).unwrap().1, 1);
    // The clock went backwards over the window: a change stamped after now, or an old change
    // made after a recent one.
    assert_eq!(rate_window(&web, &[(t + m(1), 1)], t, 8), None);
    assert_eq!(
        rate_window(&web, &[(t - m(1), 1), (t - m(5), 1)], t, 8),
        None
    );
    assert!(rate_window(&web, &[(t - m(5), 1), (t - m(1), 1)], t, 8).is_some());
}

/// `web` alone, allowed to add two instances per ten minutes.
const SLOW_WEB: &str = "providers:
  sim:
    simulated: {}
groups:
  - name: web
    provider: sim
    min: 1
    max: 100
    policies:
      - target_tracking:
          metric: utilization
          target: 0.6
          scale_up:
            limits: [{instances: 2, period: 10m}]
";

/// [`SLOW_WEB`]'s policy.
fn slow_web() -> TargetTracking {
    let doc = parse_str(Path::new("slow-web.yaml"), SLOW_WEB).expect("slow web policy");
    match &doc.policy.groups[0].policies[0] {
        PolicyConfig::TargetTracking(tt) => tt.clone(),
        other => panic!("not target tracking: {other:?}"),
    }
}

/// One run of [`SLOW_WEB`] on the simulated cloud, with a demand far above its capacity, under
/// `faults` and `clock_faults`; returns the changes that reached the cloud and the world times
/// of the evaluations.
async fn scripted_run(
    faults: &FaultLayer,
    clock_faults: Vec<(DateTime<Utc>, ClockFault)>,
    minutes: i64,
) -> (Vec<Change>, Vec<DateTime<Utc>>) {
    let doc = parse_str(Path::new("slow-web.yaml"), SLOW_WEB).expect("slow web policy");
    let cloud = SimulatedCloud::builder()
        .start(start())
        .group(SimGroupSpec {
            min: 0,
            max: 1000,
            desired: 2,
            demand: DemandSpec::Constant(3000.0),
            ..SimGroupSpec::new("web")
        })
        .build()
        .expect("simulated cloud");
    let end = start() + TimeDelta::minutes(minutes);
    let clock = Arc::new(ChaosClock::new(
        cloud.clone(),
        FaultLayer::new(0),
        clock_faults,
        end,
    ));
    let base = cloud.provider_set("sim");
    let writes = Arc::new(CloudWrites {
        inner: base.scaling.clone().expect("scaling"),
        clock: clock.clone(),
        log: Mutex::new(Vec::new()),
    });
    let sim = ProviderSet {
        scaling: Some(writes.clone()),
        ..base
    }
    .with_layer(faults);
    let web = ManagedGroup::new(doc.policy.groups[0].clone(), sim);
    let mut control = ControlLoop::new(vec![web], clock.clone(), INTERVAL);
    let mut evaluated = Vec::new();
    control
        .run(Some(end), |_| evaluated.push(clock.world()))
        .await
        .expect("the run");
    let changes = writes.log.lock().unwrap().clone();
    (changes, evaluated)
}

/// A write that fails after the cloud carried out part of it (some instances launched) counts
/// against the rate limits as what reached the cloud: the loop reads the group back after a
/// failed write (or at its next observation when that read fails too). Here every resize
/// launches part of what it asked for and fails; `web` may add two instances per ten minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partially_applied_writes_count_against_the_rate_limits() {
    let faults = FaultLayer::new(1).with_partial_failures(
        Operation::SetDesiredCapacity,
        ErrorKind::CapacityUnavailable,
        1.0,
    );
    let (changes, _) = scripted_run(&faults, Vec::new(), 20).await;
    let policy = slow_web();
    let web = [&policy];
    let mut prior = Vec::new();
    let mut overruns = Vec::new();
    for c in &changes {
        if let Some((up, _)) = rate_window(&web, &prior, c.at, c.from)
            && c.to > up
        {
            overruns.push(format!("{} -> {} at {} (at most {up})", c.from, c.to, c.at));
        }
        prior.push((c.at, i64::from(c.to) - i64::from(c.from)));
    }
    assert!(
        overruns.is_empty(),
        "the cloud's capacity went from {} to {} in 20 minutes, allowed 2 per 10 minutes: {overruns:?}",
        changes.first().map_or(0, |c| c.from),
        changes.last().map_or(0, |c| c.to),
    );
}

/// A clock stepped back (a wrong clock corrected by NTP) by ten minutes: the loop sleeps at
/// most an interval at a time and restarts its schedule from the clock, so no group waits
/// longer than the interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backward_clock_step_does_not_stall_the_groups() {
    let step_back = vec![(
        start() + TimeDelta::minutes(30),
        ClockFault::Step(TimeDelta::minutes(-10)),
    )];
    let (_, evaluated) = scripted_run(&FaultLayer::new(1), step_back, 60).await;
    let longest = evaluated
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(
        longest <= interval(),
        "no evaluation for {} minutes (the interval is 1 minute)",
        longest.num_minutes()
    );
}
