//! Fault injection, for tests: makes a healthy provider misbehave on purpose, reproducibly.
//!
//! The faults, checked in this order on every call:
//!
//! 1. **Hang** ([`FaultLayer::hang_next`]): the next N calls of these operations do not answer
//!    until [`FaultLayer::release_hangs`] (then they go on as if nothing had happened). Under a
//!    timeout layer, a hung call ends at the timeout; without one it waits for the release.
//! 2. **Scripted errors**: "fail the next N calls of these operations with this kind"
//!    ([`FaultLayer::fail_next`]), usable at any time through a clone of the layer.
//! 3. **Random errors**: each matching call fails with probability `rate`
//!    ([`FaultLayer::with_error_rate`]).
//! 4. **Partial writes** ([`FaultLayer::with_partial_failures`]): a `set_desired_capacity` or
//!    `remove_instances` call reaches the provider only part of the way (some of the instances
//!    asked for are launched or removed, not all), then fails, as a cloud does when some
//!    launches or terminations fail.
//! 5. **Latency**: matching calls are delayed by a duration drawn uniformly from a range,
//!    before they run or fail (with `tokio::time`, so paused-time tests do not wait).
//! 6. **Corrupted metrics** ([`FaultLayer::with_metric_corruption`]): a metrics answer comes
//!    back with its newest samples missing (a gap), NaN, infinite or negative.
//!
//! Random choices are drawn from a SplitMix64 generator seeded by the caller, so the same seed
//! and the same call sequence inject the same faults. A rule draws only for the calls it
//! matches, so adding a kind of fault to a layer does not change which calls the others hit in
//! a run without it.
//!
//! An injected error has the chosen kind, the provider and operation set, and the kind's default
//! retryability, exactly as a provider's own error would.

use std::fmt::{self, Debug};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::watch;

use super::rng::SplitMix64;
use super::wrap::{Call, Intercept, Layered};
use super::{BoxFuture, Layer, Operation};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Activity, ScalingGroup, TimeSeries};
use crate::provider::{
    BillingProvider, ChangeInstanceClass, InstanceCatalog, MetricsCapabilities, MetricsSource,
    RangeQuery, RemoveInstances, ScalingCapabilities, ScalingProvider,
};

/// Which operations a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operations {
    /// Every operation.
    All,
    /// Everything but the three scaling writes.
    Reads,
    /// `set_desired_capacity`, `remove_instances`, `set_instance_class`.
    Writes,
    /// Exactly these.
    Only(Vec<Operation>),
}

impl Operations {
    /// Whether `operation` is selected.
    pub fn matches(&self, operation: Operation) -> bool {
        match self {
            Operations::All => true,
            Operations::Reads => !operation.is_write(),
            Operations::Writes => operation.is_write(),
            Operations::Only(list) => list.contains(&operation),
        }
    }
}

impl From<Operation> for Operations {
    fn from(operation: Operation) -> Self {
        Operations::Only(vec![operation])
    }
}

/// How a metrics answer is corrupted ([`FaultLayer::with_metric_corruption`]). Each
/// corruption hits a burst of the newest samples of every series of the answer: a random
/// number of them, from one to all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Corruption {
    /// The newest samples are missing (the whole series, at worst).
    Gap,
    /// The newest samples are NaN.
    NaN,
    /// The newest samples are +∞ or −∞.
    Infinite,
    /// The newest samples are negative.
    Negative,
}

impl Corruption {
    /// Every corruption.
    pub const ALL: [Corruption; 4] = [
        Corruption::Gap,
        Corruption::NaN,
        Corruption::Infinite,
        Corruption::Negative,
    ];

    /// A short stable name: `gap`, `nan`, `infinite`, `negative`.
    pub fn as_str(self) -> &'static str {
        match self {
            Corruption::Gap => "gap",
            Corruption::NaN => "nan",
            Corruption::Infinite => "infinite",
            Corruption::Negative => "negative",
        }
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an injected fault did to its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FaultKind {
    /// The call failed without reaching the provider.
    Error,
    /// A write reached the provider part of the way, then failed.
    Partial,
    /// The call did not answer until released.
    Hang,
    /// The call answered, with samples altered.
    Corrupted(Corruption),
}

impl FaultKind {
    /// A short stable name: `error`, `partial`, `hang`, or the corruption's name.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Error => "error",
            FaultKind::Partial => "partial",
            FaultKind::Hang => "hang",
            FaultKind::Corrupted(c) => c.as_str(),
        }
    }
}

/// One fault the layer injected, for assertions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InjectedFault {
    /// Provider name.
    pub provider: String,
    /// The operation it hit.
    pub operation: Operation,
    /// The error kind the call returned. A hang is recorded as [`ErrorKind::Timeout`] (what a
    /// timeout around it reports) and a corrupted answer, which is no error, as
    /// [`ErrorKind::Other`].
    pub kind: ErrorKind,
    /// Whether a script (rather than a random rate) chose it.
    pub scripted: bool,
    /// What the fault did.
    pub fault: FaultKind,
}

#[derive(Debug)]
struct ErrorRule {
    operations: Operations,
    kind: ErrorKind,
    rate: f64,
}

#[derive(Debug)]
struct LatencyRule {
    operations: Operations,
    min: Duration,
    max: Duration,
}

#[derive(Debug)]
struct Script {
    operations: Operations,
    kind: ErrorKind,
    remaining: u32,
}

#[derive(Debug)]
struct HangScript {
    operations: Operations,
    remaining: u32,
}

#[derive(Debug)]
struct CorruptionRule {
    corruption: Corruption,
    rate: f64,
}

#[derive(Debug)]
struct FaultState {
    seed: u64,
    rng: SplitMix64,
    errors: Vec<ErrorRule>,
    partials: Vec<ErrorRule>,
    latencies: Vec<LatencyRule>,
    scripts: Vec<Script>,
    hangs: Vec<HangScript>,
    corruptions: Vec<CorruptionRule>,
    injected: Vec<InjectedFault>,
    calls: u64,
    /// Calls hanging now.
    hanging: usize,
}

/// Injects errors, partial writes, hangs, latency and corrupted metrics; see the
/// [module docs](self). Clones share state, so a test keeps a clone to script faults and read
/// what was injected after wrapping a provider.
#[derive(Debug, Clone)]
pub struct FaultLayer {
    state: Arc<Mutex<FaultState>>,
    /// Bumped by [`FaultLayer::release_hangs`]; a hung call waits for it to change.
    released: Arc<watch::Sender<u64>>,
}

/// What one call should suffer.
struct Plan {
    /// Wait for this release generation to pass first.
    hang: Option<(watch::Receiver<u64>, u64)>,
    delay: Option<Duration>,
    error: Option<(ErrorKind, bool)>,
    /// Reach the provider this part of the way (in `[0, 1)`), then fail with the kind.
    partial: Option<(ErrorKind, f64)>,
}

fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

/// How many of `n` changes a partial write carries out, with `u` in `[0, 1)`: at least one and
/// never all of them (none when there is only one).
fn part_of(n: u64, u: f64) -> u64 {
    if n < 2 {
        return 0;
    }
    (1 + ((n - 1) as f64 * u) as u64).min(n - 1)
}

impl FaultLayer {
    /// A layer that injects nothing yet, with its generator seeded by `seed`.
    pub fn new(seed: u64) -> Self {
        FaultLayer {
            state: Arc::new(Mutex::new(FaultState {
                seed,
                rng: SplitMix64::new(seed),
                errors: Vec::new(),
                partials: Vec::new(),
                latencies: Vec::new(),
                scripts: Vec::new(),
                hangs: Vec::new(),
                corruptions: Vec::new(),
                injected: Vec::new(),
                calls: 0,
                hanging: 0,
            })),
            released: Arc::new(watch::Sender::new(0)),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fails each call of `operations` with `kind` with probability `rate` (clamped to
    /// `[0, 1]`; NaN counts as 0). Rules are checked in the order added; the first that fires
    /// wins.
    pub fn with_error_rate(
        self,
        operations: impl Into<Operations>,
        kind: ErrorKind,
        rate: f64,
    ) -> Self {
        self.state().errors.push(ErrorRule {
            operations: operations.into(),
            kind,
            rate: clamp_rate(rate),
        });
        self
    }

    /// With probability `rate` (clamped as in [`FaultLayer::with_error_rate`]), a matching
    /// `set_desired_capacity` or `remove_instances` call (other operations are never partial)
    /// reaches the provider only part of the way, then fails with `kind`:
    ///
    /// - `set_desired_capacity` reads the group (one `describe_group` the caller did not make)
    ///   and moves its desired capacity a random part of the way, at least one instance and
    ///   never all of it: some launches or terminations failed. A change of one instance is
    ///   not made at all.
    /// - `remove_instances` removes a random leading part of the list (at least one instance,
    ///   never all), with the request's `decrement`.
    ///
    /// Checked after the error rules: a call they fail does not reach the provider at all.
    pub fn with_partial_failures(
        self,
        operations: impl Into<Operations>,
        kind: ErrorKind,
        rate: f64,
    ) -> Self {
        self.state().partials.push(ErrorRule {
            operations: operations.into(),
            kind,
            rate: clamp_rate(rate),
        });
        self
    }

    /// Delays each call of `operations` by a duration uniform in `[min, max]` (swapped when
    /// given the wrong way round).
    pub fn with_latency(
        self,
        operations: impl Into<Operations>,
        min: Duration,
        max: Duration,
    ) -> Self {
        let (min, max) = if min <= max { (min, max) } else { (max, min) };
        self.state().latencies.push(LatencyRule {
            operations: operations.into(),
            min,
            max,
        });
        self
    }

    /// With probability `rate` (clamped as in [`FaultLayer::with_error_rate`]), a metrics
    /// answer is corrupted: the newest samples of each of its series (a random number of them,
    /// from one to all) are dropped, or made NaN, infinite or negative. Rules are checked in
    /// the order added; the first that fires wins. An answer with no samples is left alone.
    pub fn with_metric_corruption(self, corruption: Corruption, rate: f64) -> Self {
        self.state().corruptions.push(CorruptionRule {
            corruption,
            rate: clamp_rate(rate),
        });
        self
    }

    /// Fails the next `count` calls of `operations` with `kind`, before any random fault.
    pub fn fail_next(&self, operations: impl Into<Operations>, count: u32, kind: ErrorKind) {
        self.state().scripts.push(Script {
            operations: operations.into(),
            kind,
            remaining: count,
        });
    }

    /// The next `count` calls of `operations` do not answer until
    /// [`FaultLayer::release_hangs`] (`u32::MAX`: a provider that stops answering for good).
    pub fn hang_next(&self, operations: impl Into<Operations>, count: u32) {
        self.state().hangs.push(HangScript {
            operations: operations.into(),
            remaining: count,
        });
    }

    /// Lets every hung call go on (each then runs, or fails, as it would have), and drops the
    /// hangs still scripted.
    pub fn release_hangs(&self) {
        self.state().hangs.clear();
        self.released.send_modify(|generation| *generation += 1);
    }

    /// How many calls are hanging now.
    pub fn hanging(&self) -> usize {
        self.state().hanging
    }

    /// Every fault injected so far, oldest first.
    pub fn injected(&self) -> Vec<InjectedFault> {
        self.state().injected.clone()
    }

    /// How many calls went through the layer (failed or not).
    pub fn calls(&self) -> u64 {
        self.state().calls
    }

    /// What `call` should suffer; `partial_capable` when the caller can carry out a partial
    /// write.
    fn plan(&self, call: Call<'_>, partial_capable: bool) -> Plan {
        let mut state = self.state();
        let state = &mut *state;
        state.calls += 1;
        let operation = call.operation;
        let record = |state: &mut FaultState, kind, scripted, fault| {
            state.injected.push(InjectedFault {
                provider: call.provider.to_owned(),
                operation,
                kind,
                scripted,
                fault,
            });
        };

        let mut hang = None;
        if let Some(script) = state
            .hangs
            .iter_mut()
            .find(|s| s.remaining > 0 && s.operations.matches(operation))
        {
            script.remaining -= 1;
            let receiver = self.released.subscribe();
            let generation = *receiver.borrow();
            hang = Some((receiver, generation));
            record(state, ErrorKind::Timeout, true, FaultKind::Hang);
        }
        state.hangs.retain(|s| s.remaining > 0);

        let delay = match state
            .latencies
            .iter()
            .find(|rule| rule.operations.matches(operation))
        {
            Some(rule) => {
                let u = state.rng.next_f64();
                Some(rule.min + (rule.max - rule.min).mul_f64(u))
            }
            None => None,
        };

        let mut error = None;
        if let Some(script) = state
            .scripts
            .iter_mut()
            .find(|s| s.remaining > 0 && s.operations.matches(operation))
        {
            script.remaining -= 1;
            error = Some((script.kind, true));
        }
        state.scripts.retain(|s| s.remaining > 0);
        if error.is_none() {
            for rule in state
                .errors
                .iter()
                .filter(|r| r.operations.matches(operation))
            {
                if state.rng.next_f64() < rule.rate {
                    error = Some((rule.kind, false));
                    break;
                }
            }
        }
        if let Some((kind, scripted)) = error {
            record(state, kind, scripted, FaultKind::Error);
        }

        let mut partial = None;
        if error.is_none() && partial_capable {
            for rule in state
                .partials
                .iter()
                .filter(|r| r.operations.matches(operation))
            {
                if state.rng.next_f64() < rule.rate {
                    partial = Some((rule.kind, state.rng.next_f64()));
                    break;
                }
            }
            if let Some((kind, _)) = partial {
                record(state, kind, false, FaultKind::Partial);
            }
        }
        Plan {
            hang,
            delay,
            error,
            partial,
        }
    }

    /// Waits out the plan's hang and delay; the error to return instead of calling, if any.
    async fn suffer(&self, call: Call<'_>, plan: &mut Plan) -> Option<Error> {
        if let Some((receiver, generation)) = plan.hang.as_mut() {
            let _hanging = Hanging::new(self);
            let generation = *generation;
            // A closed channel cannot happen (the layer holds the sender); it ends the hang.
            let _ = receiver.wait_for(|now| *now != generation).await;
        }
        if let Some(delay) = plan.delay {
            tokio::time::sleep(delay).await;
        }
        plan.error.map(|(kind, scripted)| {
            let how = if scripted {
                "scripted".to_owned()
            } else {
                format!("random, seed {}", self.state().seed)
            };
            self.error(call, kind, format!("injected fault ({how})"))
        })
    }

    fn error(&self, call: Call<'_>, kind: ErrorKind, message: String) -> Error {
        Error::new(kind, message)
            .with_provider(call.provider)
            .with_operation(call.operation.as_str())
    }

    /// Corrupts `series` when a corruption rule fires.
    fn corrupt(&self, provider: &str, mut series: Vec<TimeSeries>) -> Vec<TimeSeries> {
        let mut state = self.state();
        let state = &mut *state;
        if state.corruptions.is_empty() || series.iter().all(|s| s.samples.is_empty()) {
            return series;
        }
        let mut chosen = None;
        for rule in &state.corruptions {
            if state.rng.next_f64() < rule.rate {
                chosen = Some(rule.corruption);
                break;
            }
        }
        let Some(corruption) = chosen else {
            return series;
        };
        let burst = state.rng.next_f64();
        let negative_infinity = state.rng.next_f64() < 0.5;
        for s in &mut series {
            let len = s.samples.len();
            if len == 0 {
                continue;
            }
            let n = (1 + (len as f64 * burst) as usize).min(len);
            let newest = len - n..;
            match corruption {
                Corruption::Gap => {
                    s.samples.truncate(len - n);
                }
                Corruption::NaN => s.samples[newest]
                    .iter_mut()
                    .for_each(|x| x.value = f64::NAN),
                Corruption::Infinite => s.samples[newest].iter_mut().for_each(|x| {
                    x.value = if negative_infinity {
                        f64::NEG_INFINITY
                    } else {
                        f64::INFINITY
                    };
                }),
                Corruption::Negative => s.samples[newest]
                    .iter_mut()
                    .for_each(|x| x.value = -(x.value.abs() + 1.0)),
            }
        }
        state.injected.push(InjectedFault {
            provider: provider.to_owned(),
            operation: Operation::QueryRange,
            kind: ErrorKind::Other,
            scripted: false,
            fault: FaultKind::Corrupted(corruption),
        });
        series
    }
}

/// Counts a hung call while it hangs (also when its future is dropped).
struct Hanging<'a>(&'a FaultLayer);

impl<'a> Hanging<'a> {
    fn new(layer: &'a FaultLayer) -> Self {
        layer.state().hanging += 1;
        Hanging(layer)
    }
}

impl Drop for Hanging<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.hanging = state.hanging.saturating_sub(1);
    }
}

impl Intercept for FaultLayer {
    fn label(&self) -> &'static str {
        "Fault"
    }

    fn around<'a, T, F>(&'a self, call: Call<'a>, mut attempt: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> BoxFuture<'a, Result<T>> + Send + 'a,
    {
        let mut plan = self.plan(call, false);
        Box::pin(async move {
            match self.suffer(call, &mut plan).await {
                Some(error) => Err(error),
                None => attempt().await,
            }
        })
    }
}

impl Layer for FaultLayer {
    fn layer_scaling(&self, inner: Arc<dyn ScalingProvider>) -> Arc<dyn ScalingProvider> {
        Arc::new(FaultyScaling {
            provider: inner.name().to_owned(),
            label: format!("Fault({})", inner.describe()),
            layer: self.clone(),
            inner,
        })
    }

    fn layer_catalog(
        &self,
        provider: &str,
        inner: Arc<dyn InstanceCatalog>,
    ) -> Arc<dyn InstanceCatalog> {
        Arc::new(Layered::catalog(self.clone(), provider, inner))
    }

    fn layer_billing(
        &self,
        provider: &str,
        inner: Arc<dyn BillingProvider>,
    ) -> Arc<dyn BillingProvider> {
        Arc::new(Layered::billing(self.clone(), provider, inner))
    }

    fn layer_metrics(
        &self,
        provider: &str,
        inner: Arc<dyn MetricsSource>,
    ) -> Arc<dyn MetricsSource> {
        Arc::new(FaultyMetrics {
            provider: provider.to_owned(),
            layer: self.clone(),
            layered: Layered::metrics(self.clone(), provider, inner),
        })
    }
}

/// A scaling provider under a [`FaultLayer`]: every call as [`Layered`] makes it, plus partial
/// writes.
struct FaultyScaling {
    layer: FaultLayer,
    inner: Arc<dyn ScalingProvider>,
    provider: String,
    label: String,
}

impl Debug for FaultyScaling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fault")
            .field("layer", &self.layer)
            .field("inner", &self.inner)
            .finish()
    }
}

impl FaultyScaling {
    fn call(&self, operation: Operation) -> Call<'_> {
        Call {
            provider: &self.provider,
            operation,
        }
    }

    /// Plans a write and waits out its hang and delay: the error to return instead of calling,
    /// or how far a partial write goes (`None`: the whole way).
    async fn prepare(&self, call: Call<'_>) -> Result<Option<(ErrorKind, f64)>> {
        let mut plan = self.layer.plan(call, true);
        match self.layer.suffer(call, &mut plan).await {
            Some(error) => Err(error),
            None => Ok(plan.partial),
        }
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl ScalingProvider for FaultyScaling {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> ScalingCapabilities {
        self.inner.capabilities()
    }

    fn describe(&self) -> String {
        self.label.clone()
    }

    async fn list_groups(&self) -> Result<Vec<ScalingGroup>> {
        let inner = &self.inner;
        self.layer
            .around(self.call(Operation::ListGroups), move || {
                inner.list_groups()
            })
            .await
    }

    async fn describe_group(&self, group: &str) -> Result<ScalingGroup> {
        let inner = &self.inner;
        self.layer
            .around(self.call(Operation::DescribeGroup), move || {
                inner.describe_group(group)
            })
            .await
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<()> {
        let call = self.call(Operation::SetDesiredCapacity);
        let Some((kind, part)) = self.prepare(call).await? else {
            return self.inner.set_desired_capacity(group, desired).await;
        };
        let current = self.inner.describe_group(group).await?.desired_capacity;
        let moved = part_of(u64::from(current.abs_diff(desired)), part) as u32;
        let reached = if desired > current {
            current + moved
        } else {
            current - moved
        };
        if reached != current {
            self.inner.set_desired_capacity(group, reached).await?;
        }
        Err(self.layer.error(
            call,
            kind,
            format!(
                "injected partial failure: desired capacity {current} -> {reached} of the {desired} asked for"
            ),
        ))
    }

    async fn remove_instances(&self, group: &str, request: &RemoveInstances) -> Result<()> {
        let call = self.call(Operation::RemoveInstances);
        let Some((kind, part)) = self.prepare(call).await? else {
            return self.inner.remove_instances(group, request).await;
        };
        let asked = request.instances.len();
        let removed = part_of(asked as u64, part) as usize;
        if removed > 0 {
            let first = RemoveInstances::new(request.instances[..removed].to_vec())
                .with_decrement(request.decrement);
            self.inner.remove_instances(group, &first).await?;
        }
        Err(self.layer.error(
            call,
            kind,
            format!("injected partial failure: {removed} of the {asked} instances removed"),
        ))
    }

    async fn set_instance_class(
        &self,
        group: &str,
        request: &ChangeInstanceClass,
    ) -> Result<Option<Activity>> {
        let inner = &self.inner;
        self.layer
            .around(self.call(Operation::SetInstanceClass), move || {
                inner.set_instance_class(group, request)
            })
            .await
    }

    async fn activities(&self, group: &str) -> Result<Vec<Activity>> {
        let inner = &self.inner;
        self.layer
            .around(self.call(Operation::Activities), move || {
                inner.activities(group)
            })
            .await
    }
}

/// A metrics source under a [`FaultLayer`]: every call as [`Layered`] makes it, then the
/// answer corrupted when a corruption rule fires.
struct FaultyMetrics {
    provider: String,
    layer: FaultLayer,
    layered: Layered<FaultLayer, dyn MetricsSource>,
}

impl Debug for FaultyMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Debug::fmt(&self.layered, f)
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl MetricsSource for FaultyMetrics {
    fn capabilities(&self) -> MetricsCapabilities {
        self.layered.capabilities()
    }

    fn describe(&self) -> String {
        self.layered.describe()
    }

    async fn query_range(&self, request: &RangeQuery) -> Result<Vec<TimeSeries>> {
        let series = self.layered.query_range(request).await?;
        Ok(self.layer.corrupt(&self.provider, series))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{DateTime, TimeDelta, Utc};

    use super::*;
    use crate::model::{MetricKind, MetricQuery, Sample, TimeRange};
    use crate::provider::ProviderSet;

    /// One group (`web`, desired 4, bounds [0, 100]) and one metrics series of ten samples.
    #[derive(Debug, Default)]
    struct Fake {
        desired: Mutex<u32>,
        removed: Mutex<Vec<String>>,
        writes: Mutex<u32>,
    }

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap() + TimeDelta::minutes(minute)
    }

    #[async_trait]
    impl ScalingProvider for Fake {
        fn name(&self) -> &str {
            "fake"
        }

        fn capabilities(&self) -> ScalingCapabilities {
            ScalingCapabilities {
                set_desired_capacity: true,
                remove_instances: true,
                set_instance_class: true,
                activities: true,
            }
        }

        async fn list_groups(&self) -> Result<Vec<ScalingGroup>> {
            Ok(vec![self.describe_group("web").await?])
        }

        async fn describe_group(&self, group: &str) -> Result<ScalingGroup> {
            Ok(ScalingGroup {
                id: group.to_owned(),
                min_size: 0,
                max_size: 100,
                desired_capacity: *self.desired.lock().unwrap(),
                instance_class: "c.small".to_owned(),
                zones: vec!["z1".to_owned()],
                instances: Vec::new(),
                tags: BTreeMap::new(),
            })
        }

        async fn set_desired_capacity(&self, _group: &str, desired: u32) -> Result<()> {
            *self.writes.lock().unwrap() += 1;
            *self.desired.lock().unwrap() = desired;
            Ok(())
        }

        async fn remove_instances(&self, _group: &str, request: &RemoveInstances) -> Result<()> {
            *self.writes.lock().unwrap() += 1;
            self.removed
                .lock()
                .unwrap()
                .extend(request.instances.iter().cloned());
            if request.decrement {
                *self.desired.lock().unwrap() -= request.instances.len() as u32;
            }
            Ok(())
        }

        async fn set_instance_class(
            &self,
            _group: &str,
            _request: &ChangeInstanceClass,
        ) -> Result<Option<Activity>> {
            *self.writes.lock().unwrap() += 1;
            Ok(None)
        }

        async fn activities(&self, _group: &str) -> Result<Vec<Activity>> {
            Ok(Vec::new())
        }
    }

    #[async_trait]
    impl MetricsSource for Fake {
        fn capabilities(&self) -> MetricsCapabilities {
            MetricsCapabilities {
                builtin: vec![MetricKind::Utilization],
                expressions: false,
            }
        }

        async fn query_range(&self, _request: &RangeQuery) -> Result<Vec<TimeSeries>> {
            Ok(vec![TimeSeries {
                labels: BTreeMap::new(),
                samples: (0..10)
                    .map(|m| Sample {
                        at: at(m),
                        value: 0.5,
                    })
                    .collect(),
            }])
        }
    }

    fn wrapped(layer: &FaultLayer, desired: u32) -> (Arc<Fake>, ProviderSet) {
        let fake = Arc::new(Fake::default());
        *fake.desired.lock().unwrap() = desired;
        let set = ProviderSet::new("fake")
            .with_scaling(fake.clone())
            .with_metrics(fake.clone())
            .with_layer(layer);
        (fake, set)
    }

    fn query() -> RangeQuery {
        RangeQuery::new(
            MetricQuery {
                group: "web".to_owned(),
                metric: MetricKind::Utilization,
                expression: None,
            },
            TimeRange {
                start: at(0),
                end: at(10),
            },
            60,
        )
    }

    #[test]
    fn a_partial_write_does_some_of_the_work_never_all() {
        assert_eq!(part_of(0, 0.5), 0);
        assert_eq!(part_of(1, 0.99), 0);
        assert_eq!(part_of(2, 0.0), 1);
        assert_eq!(part_of(2, 0.999), 1);
        assert_eq!(part_of(10, 0.0), 1);
        assert_eq!(part_of(10, 0.999_999), 9);
    }

    #[tokio::test]
    async fn partial_scale_out_and_in_move_part_of_the_way_then_fail() {
        for seed in 0..20 {
            let layer = FaultLayer::new(seed).with_partial_failures(
                Operations::Writes,
                ErrorKind::CapacityUnavailable,
                1.0,
            );
            let (fake, set) = wrapped(&layer, 4);
            let scaling = set.scaling_provider().unwrap();
            let error = scaling.set_desired_capacity("web", 12).await.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::CapacityUnavailable);
            assert!(error.to_string().contains("partial"), "{error}");
            let reached = *fake.desired.lock().unwrap();
            assert!((5..12).contains(&reached), "seed {seed}: {reached}");

            let error = scaling.set_desired_capacity("web", 1).await.unwrap_err();
            assert_eq!(error.operation(), "set_desired_capacity");
            let after = *fake.desired.lock().unwrap();
            assert!(
                after > 1 && after < reached,
                "seed {seed}: {reached} -> {after}"
            );

            // One instance cannot be split: nothing changes.
            let error = scaling.set_desired_capacity("web", after + 1).await;
            assert!(error.is_err());
            assert_eq!(*fake.desired.lock().unwrap(), after);

            let injected = layer.injected();
            assert_eq!(injected.len(), 3);
            assert!(injected.iter().all(|f| f.fault == FaultKind::Partial
                && f.kind == ErrorKind::CapacityUnavailable
                && !f.scripted));
        }
    }

    #[tokio::test]
    async fn a_partial_removal_removes_a_leading_part_of_the_list() {
        let layer = FaultLayer::new(3).with_partial_failures(
            Operation::RemoveInstances,
            ErrorKind::Transient,
            1.0,
        );
        let (fake, set) = wrapped(&layer, 6);
        let ids: Vec<String> = (1..=5).map(|i| format!("i-{i}")).collect();
        let error = set
            .scaling_provider()
            .unwrap()
            .remove_instances("web", &RemoveInstances::new(ids.clone()))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Transient);
        let removed = fake.removed.lock().unwrap().clone();
        assert!((1..5).contains(&removed.len()), "{removed:?}");
        assert_eq!(removed[..], ids[..removed.len()]);
        assert_eq!(*fake.desired.lock().unwrap(), 6 - removed.len() as u32);
        // set_desired_capacity is not selected.
        set.scaling_provider()
            .unwrap()
            .set_desired_capacity("web", 3)
            .await
            .unwrap();
        assert_eq!(layer.injected().len(), 1);
    }

    #[tokio::test]
    async fn errors_come_before_partial_writes_and_other_operations_are_never_partial() {
        let layer = FaultLayer::new(1)
            .with_error_rate(Operation::SetDesiredCapacity, ErrorKind::Throttled, 1.0)
            .with_partial_failures(Operations::All, ErrorKind::Transient, 1.0);
        let (fake, set) = wrapped(&layer, 2);
        let scaling = set.scaling_provider().unwrap();
        let error = scaling.set_desired_capacity("web", 9).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Throttled);
        assert_eq!(
            *fake.writes.lock().unwrap(),
            0,
            "a failed call reaches nothing"
        );
        scaling
            .set_instance_class("web", &ChangeInstanceClass::new("c.large"))
            .await
            .unwrap();
        scaling.describe_group("web").await.unwrap();
        assert_eq!(*fake.writes.lock().unwrap(), 1);
        let kinds: Vec<FaultKind> = layer.injected().iter().map(|f| f.fault).collect();
        assert_eq!(kinds, [FaultKind::Error]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_call_answers_only_when_released() {
        let layer = FaultLayer::new(1);
        let (_fake, set) = wrapped(&layer, 2);
        let scaling = set.scaling_provider().unwrap().clone();
        layer.hang_next(Operation::DescribeGroup, 2);

        // Not even an hour is enough.
        let hung = tokio::time::timeout(Duration::from_secs(3600), scaling.describe_group("web"));
        assert!(hung.await.is_err(), "the call answered");
        assert_eq!(layer.hanging(), 0, "a dropped call no longer hangs");

        // Other operations go through.
        scaling.list_groups().await.unwrap();

        let waiting = tokio::spawn({
            let scaling = scaling.clone();
            async move { scaling.describe_group("web").await }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(layer.hanging(), 1);
        assert!(!waiting.is_finished());
        layer.release_hangs();
        assert_eq!(waiting.await.unwrap().unwrap().desired_capacity, 2);
        assert_eq!(layer.hanging(), 0);

        // Released: the script is gone.
        layer.hang_next(Operations::All, u32::MAX);
        layer.release_hangs();
        scaling.describe_group("web").await.unwrap();
        let hangs = layer
            .injected()
            .iter()
            .filter(|f| f.fault == FaultKind::Hang)
            .count();
        assert_eq!(hangs, 2);
    }

    #[tokio::test]
    async fn corrupted_metrics_alter_a_burst_of_the_newest_samples() {
        for corruption in Corruption::ALL {
            for seed in 0..10 {
                let layer = FaultLayer::new(seed).with_metric_corruption(corruption, 1.0);
                let (_fake, set) = wrapped(&layer, 2);
                let series = set
                    .metrics
                    .as_ref()
                    .unwrap()
                    .query_range(&query())
                    .await
                    .unwrap();
                let samples = &series[0].samples;
                let intact = samples.iter().take_while(|s| s.value == 0.5).count();
                let altered = &samples[intact..];
                match corruption {
                    Corruption::Gap => {
                        assert!(samples.len() < 10 && altered.is_empty(), "{samples:?}")
                    }
                    Corruption::NaN => assert!(altered.iter().all(|s| s.value.is_nan())),
                    Corruption::Infinite => assert!(altered.iter().all(|s| s.value.is_infinite())),
                    Corruption::Negative => assert!(altered.iter().all(|s| s.value < 0.0)),
                }
                if corruption != Corruption::Gap {
                    assert_eq!(samples.len(), 10);
                    assert!(!altered.is_empty(), "{corruption}: nothing altered");
                }
                assert_eq!(layer.injected()[0].fault, FaultKind::Corrupted(corruption));
                assert_eq!(layer.injected()[0].operation, Operation::QueryRange);
            }
        }
        // Never at rate 0.
        let layer = FaultLayer::new(1).with_metric_corruption(Corruption::NaN, 0.0);
        let (_fake, set) = wrapped(&layer, 2);
        let series = set
            .metrics
            .as_ref()
            .unwrap()
            .query_range(&query())
            .await
            .unwrap();
        assert!(series[0].samples.iter().all(|s| s.value == 0.5));
        assert!(layer.injected().is_empty());
    }

    /// Which of 300 describe_group calls fail under a 30 % transient rate.
    async fn failures(layer: &FaultLayer) -> Vec<bool> {
        let (_fake, set) = wrapped(layer, 2);
        let mut out = Vec::new();
        for _ in 0..300 {
            out.push(
                set.scaling_provider()
                    .unwrap()
                    .describe_group("web")
                    .await
                    .is_err(),
            );
        }
        out
    }

    #[tokio::test]
    async fn rules_draw_only_for_the_calls_they_match() {
        let plain = failures(&FaultLayer::new(9).with_error_rate(
            Operations::All,
            ErrorKind::Transient,
            0.3,
        ))
        .await;
        let more = failures(
            &FaultLayer::new(9)
                .with_error_rate(Operations::All, ErrorKind::Transient, 0.3)
                .with_partial_failures(Operations::Writes, ErrorKind::Transient, 0.5)
                .with_metric_corruption(Corruption::NaN, 0.5),
        )
        .await;
        assert_eq!(plain, more);
    }
}
