//! The deterministic simulated cloud: Hoist's default backend, the provider behind every
//! doctest and example, and the engine of `hoist simulate`.
//!
//! A [`SimulatedCloud`] holds scaling groups whose instances boot after a delay, are billed per
//! second (with a minimum charge) or per started hour, may be spot instances interrupted at a
//! seeded random rate, and are limited by an account quota. Each group serves a demand `d(t)` in
//! work units per second, replayed from a [`trace`] or made by a seeded generator
//! ([`DemandSpec`]). Time is virtual: [`Clock::sleep_until`] on the cloud advances the world and
//! returns at once. The same seed and the same calls give the same world, bit for bit.
//!
//! One value implements all four provider traits ([`ScalingProvider`], [`InstanceCatalog`],
//! [`BillingProvider`], [`MetricsSource`]) and [`Clock`]; clones share the world.
//!
//! # Time and metrics
//!
//! The world advances in sub-steps that end at every tick (default 10 s, see
//! [`SimulatedCloudBuilder::tick`]), every instance event (boot finished, spot interruption) and
//! the target time. Demand is held over a tick (a trace over its own step); capacity changes
//! exactly at events; the backlog is integrated exactly in between, so the result does not
//! depend on how a caller slices time. Per metric period (default 60 s) each group gets one
//! sample per metric, stamped at the period's end and visible only once the metric lag
//! (default 60 s) has passed, so a reader never sees the future:
//!
//! | metric | value |
//! |---|---|
//! | `utilization` | share of ready capacity busy, 0..=1: `min(d / C, 1)`, and 1 while a backlog drains. It never exceeds 1, like a real CPU: overload shows in the next four. With no ready instance it is 1 if demand waits, else 0. |
//! | `request_rate` | demand `d`, work units (requests) per second: the honest demand even when it exceeds capacity |
//! | `queue_depth` | the backlog, work units: grows by `d - C` while overloaded, drains at `C - d` |
//! | `latency_p95`, `latency_p99` | seconds, per-instance M/M/1 (see [`latency_seconds`]), request-weighted over the period |
//! | `error_rate` | share of demand above capacity, `max(d - C, 0) / d` over the period |
//! | custom `ready_capacity` | ready capacity `C`, work units per second |
//! | custom `ready_instances` | ready (running) instances, time-averaged |
//!
//! A period with no demand data at all (a gap in the trace, or past the end of a trace that does
//! not loop) has no sample; a partly covered period averages over the covered part. During a gap
//! the backlog stays as it was.
//!
//! # Capacity
//!
//! An instance of the group's original class serves `work_per_instance` work units per second
//! at 100 % utilisation; an instance of another class (after [`ScalingProvider::set_instance_class`])
//! serves in proportion to its vCPUs.
//!
//! # Draining
//!
//! A group with a drain ([`SimGroupSpec::drain`], from the policy's `drain:`) removes instances
//! gracefully. When its desired capacity drops (or [`ScalingProvider::remove_instances`] removes
//! chosen instances), each running instance chosen for removal first drains for the group's
//! drain period: it is reported as [`InstanceState::Terminating`](hoist_api::InstanceState),
//! no longer counts toward the group's capacity (new demand goes to the instances that stay, as
//! a load balancer stops routing to a deregistered target), is billed and counts toward the
//! quota, and is terminated when the drain ends. The work it already had is modelled as done by
//! then. An instance still booting has no work and is terminated at once. The activity of the
//! scale-in is done when the last drain ends; [`SimulatedCloud::instance_history`] gives each
//! instance's `drain_started_at`. Without a drain, instances are terminated at once.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use hoist_sim::{DemandSpec, SimGroupSpec, SimulatedCloud};
//! use hoist_api::{Clock, InstanceState, ScalingProvider};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let cloud = SimulatedCloud::builder()
//!     .seed(7)
//!     .boot_delay(Duration::from_secs(120))
//!     .group(SimGroupSpec {
//!         min: 1,
//!         max: 10,
//!         desired: 2,
//!         demand: DemandSpec::Constant(250.0),
//!         work_per_instance: 100.0,
//!         ..SimGroupSpec::new("web")
//!     })
//!     .build()?;
//!
//! cloud.set_desired_capacity("web", 4).await?;
//! let group = cloud.describe_group("web").await?;
//! assert_eq!(group.pending(), 2);
//!
//! // Sleeping on the virtual clock advances the world: the new instances finish booting.
//! let clock = cloud.clock();
//! clock.sleep_until(clock.now() + chrono::TimeDelta::minutes(3)).await;
//! let group = cloud.describe_group("web").await?;
//! assert_eq!(group.count_in(InstanceState::Running), 4);
//! # Ok::<(), hoist_api::Error>(())
//! # }).unwrap();
//! ```

mod catalog;
mod config;
mod demand;
mod factory;
mod queueing;
pub mod rng;
pub mod trace;
pub mod wall;
mod world;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};

pub use catalog::{DEFAULT_INSTANCE_CLASS, DEFAULT_ZONES, default_catalog};
pub use config::{
    SimBillingModel, SimClock, SimDemandConfig, SimGroupConfig, SimInstanceClassConfig,
    SimQuotaConfig, SimulatedCloudConfig,
};
pub use demand::{DemandSpec, GeneratorSpec, TraceDemand, TraceScale};
pub use queueing::{LATENCY_CAP_SECONDS, MAX_MODEL_UTILISATION, latency_seconds};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::model::{
    Activity, CapacityType, GroupId, InstanceClass, InstanceId, MetricKind, Price, ScalingGroup,
    TimeSeries,
};
use crate::provider::{
    BillingCapabilities, BillingProvider, CatalogCapabilities, CostEntry, CostQuery,
    InstanceCatalog, MetricsCapabilities, MetricsSource, ProviderSet, RangeQuery, RemoveInstances,
    ScalingCapabilities, ScalingProvider,
};
pub use factory::{SimulatedFactory, register_builtins};
use hoist_api::registry::GroupBounds;

// The provider SDK's modules under the names this crate's code uses.
pub(crate) use hoist_api::{clock, duration, error, model, provider};

use demand::Demand;
use world::{GroupInit, Settings, World};

/// The provider name the simulated cloud uses unless [`SimulatedCloud::provider_set`] names it.
pub const SIM_PROVIDER_NAME: &str = "sim";

/// How instances are billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Billing {
    /// Per second from the request, with a minimum charge per instance.
    PerSecond {
        /// The least an instance is billed for, however short its life.
        minimum: Duration,
    },
    /// Per started hour from the request.
    PerHour,
}

impl Default for Billing {
    fn default() -> Self {
        Billing::PerSecond {
            minimum: Duration::from_secs(60),
        }
    }
}

/// The account quota across all groups, counting pending and running instances.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Quota {
    /// Most instances at once, when limited.
    pub max_instances: Option<u32>,
    /// Most vCPUs at once, when limited.
    pub max_vcpus: Option<f64>,
}

/// One simulated scaling group. Start from [`SimGroupSpec::new`] and override fields.
#[derive(Debug, Clone)]
pub struct SimGroupSpec {
    /// Group id.
    pub id: GroupId,
    /// Lower bound of desired capacity.
    pub min: u32,
    /// Upper bound of desired capacity.
    pub max: u32,
    /// Instances at the start (running from the start).
    pub desired: u32,
    /// The class new instances get.
    pub instance_class: String,
    /// Zones instances are spread over.
    pub zones: Vec<String>,
    /// The demand the group serves.
    pub demand: DemandSpec,
    /// Work units per second one instance of `instance_class` serves at 100 % utilisation.
    pub work_per_instance: f64,
    /// On-demand or spot.
    pub capacity_type: CapacityType,
    /// Mean service time of one request on an idle instance, for the latency model.
    pub service_time: Duration,
    /// How long an instance chosen for scale-in drains before it is terminated (see
    /// [Draining](crate#draining)). Zero (the default): it is terminated at once.
    pub drain: Duration,
}

impl SimGroupSpec {
    /// A group `id` with min 1, max 10, desired 1, class [`DEFAULT_INSTANCE_CLASS`] in
    /// [`DEFAULT_ZONES`], on-demand, 100 work units per second per instance, a service time of
    /// 50 ms, and a constant demand of 50 work units per second.
    pub fn new(id: impl Into<GroupId>) -> Self {
        SimGroupSpec {
            id: id.into(),
            min: 1,
            max: 10,
            desired: 1,
            instance_class: DEFAULT_INSTANCE_CLASS.to_owned(),
            zones: DEFAULT_ZONES.iter().map(|z| (*z).to_owned()).collect(),
            demand: DemandSpec::Constant(50.0),
            work_per_instance: 100.0,
            capacity_type: CapacityType::OnDemand,
            service_time: Duration::from_millis(50),
            drain: Duration::ZERO,
        }
    }
}

/// Builds a [`SimulatedCloud`].
#[derive(Debug, Clone)]
pub struct SimulatedCloudBuilder {
    seed: u64,
    start: Option<DateTime<Utc>>,
    boot_delay: Duration,
    metric_lag: Duration,
    metric_period: Duration,
    tick: Duration,
    billing: Billing,
    quota: Quota,
    spot_interruptions_per_hour: f64,
    catalog: Option<Vec<InstanceClass>>,
    groups: Vec<SimGroupSpec>,
}

impl Default for SimulatedCloudBuilder {
    fn default() -> Self {
        SimulatedCloudBuilder {
            seed: 0,
            start: None,
            boot_delay: Duration::from_secs(120),
            metric_lag: Duration::from_secs(60),
            metric_period: Duration::from_secs(60),
            tick: Duration::from_secs(10),
            billing: Billing::default(),
            quota: Quota::default(),
            spot_interruptions_per_hour: 0.0,
            catalog: None,
            groups: Vec::new(),
        }
    }
}

/// The start used when neither the builder nor a trace gives one: 2024-01-01T00:00:00Z (a
/// Monday).
pub fn default_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

impl SimulatedCloudBuilder {
    /// The seed of every random choice (noise, spikes, spot interruptions). Default 0.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The virtual time the world starts at. Default: the start of the first group's trace, or
    /// [`default_start`].
    pub fn start(mut self, start: DateTime<Utc>) -> Self {
        self.start = Some(start);
        self
    }

    /// How long an instance boots before it serves. Default 120 s.
    pub fn boot_delay(mut self, boot_delay: Duration) -> Self {
        self.boot_delay = boot_delay;
        self
    }

    /// How long after a metric period ends its sample becomes visible. Default 60 s.
    pub fn metric_lag(mut self, metric_lag: Duration) -> Self {
        self.metric_lag = metric_lag;
        self
    }

    /// The period metric samples average over. Default 60 s; a whole multiple of the tick.
    pub fn metric_period(mut self, metric_period: Duration) -> Self {
        self.metric_period = metric_period;
        self
    }

    /// The internal tick demand is held for. Default 10 s; at least 1 ms.
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }

    /// The billing model. Default per second with a 60 s minimum.
    pub fn billing(mut self, billing: Billing) -> Self {
        self.billing = billing;
        self
    }

    /// The account quota. Default unlimited.
    pub fn quota(mut self, quota: Quota) -> Self {
        self.quota = quota;
        self
    }

    /// The rate at which each spot instance is interrupted, per instance-hour. Default 0.
    pub fn spot_interruptions_per_hour(mut self, rate: f64) -> Self {
        self.spot_interruptions_per_hour = rate;
        self
    }

    /// Replaces the built-in catalog ([`default_catalog`]).
    pub fn catalog(mut self, catalog: Vec<InstanceClass>) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Adds a group.
    pub fn group(mut self, group: SimGroupSpec) -> Self {
        self.groups.push(group);
        self
    }

    /// Checks everything and builds the world. Errors are [`hoist_api::ErrorKind::Config`] and name
    /// the group and field.
    pub fn build(self) -> Result<SimulatedCloud> {
        let cfg_err = |msg: String| Error::config(msg).with_provider(SIM_PROVIDER_NAME);
        let to_delta = |name: &str, d: Duration| {
            TimeDelta::from_std(d).map_err(|_| cfg_err(format!("{name} is too long")))
        };
        let tick = to_delta("tick", self.tick)?;
        let metric_period = to_delta("metric_period", self.metric_period)?;
        if tick < TimeDelta::milliseconds(1) {
            return Err(cfg_err("tick must be at least 1ms".to_owned()));
        }
        let (tick_ns, period_ns) = (
            tick.num_nanoseconds().unwrap_or(i64::MAX),
            metric_period.num_nanoseconds().unwrap_or(i64::MAX),
        );
        if period_ns < tick_ns || period_ns % tick_ns != 0 {
            return Err(cfg_err(format!(
                "metric_period ({}) must be a whole multiple of the tick ({})",
                crate::duration::format_duration(self.metric_period),
                crate::duration::format_duration(self.tick)
            )));
        }
        let rate = self.spot_interruptions_per_hour;
        if !rate.is_finite() || rate < 0.0 {
            return Err(cfg_err(format!(
                "spot_interruptions_per_hour must be a finite number >= 0, got {}",
                hoist_api::input::number(rate)
            )));
        }
        if let Some(v) = self.quota.max_vcpus
            && !(v.is_finite() && v >= 0.0)
        {
            return Err(cfg_err(format!(
                "quota max_vcpus must be >= 0, got {}",
                hoist_api::input::number(v)
            )));
        }
        let settings = Settings {
            boot_delay: to_delta("boot_delay", self.boot_delay)?,
            metric_lag: to_delta("metric_lag", self.metric_lag)?,
            metric_period,
            tick,
            billing: self.billing,
            quota: self.quota,
            spot_interruptions_per_hour: rate,
            refresh_batch_fraction: 0.25,
        };
        let catalog = self.catalog.unwrap_or_else(default_catalog);
        let start = self
            .start
            .or_else(|| {
                self.groups.iter().find_map(|g| match &g.demand {
                    DemandSpec::Trace(t) => Some(t.trace.start),
                    _ => None,
                })
            })
            .unwrap_or_else(default_start);

        let mut groups = self.groups;
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        if let Some(w) = groups.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(cfg_err(format!("group {:?} is defined twice", w[0].id)));
        }
        let mut inits = Vec::with_capacity(groups.len());
        for (n, g) in groups.into_iter().enumerate() {
            let id = g.id.clone();
            let err = |msg: String| cfg_err(format!("group {id}: {msg}"));
            if g.min > g.max {
                return Err(err(format!("min {} is above max {}", g.min, g.max)));
            }
            if g.max > hoist_api::input::MAX_INSTANCES {
                return Err(err(format!(
                    "max {} is above the limit of {} instances a group may have",
                    g.max,
                    hoist_api::input::MAX_INSTANCES
                )));
            }
            if g.desired < g.min || g.desired > g.max {
                return Err(err(format!(
                    "desired {} is outside [{}, {}]",
                    g.desired, g.min, g.max
                )));
            }
            if !(g.work_per_instance.is_finite()
                && g.work_per_instance > 0.0
                && g.work_per_instance <= hoist_api::input::MAX_AMOUNT)
            {
                return Err(err(format!(
                    "work_per_instance must be > 0 and at most {:e}, got {}",
                    hoist_api::input::MAX_AMOUNT,
                    hoist_api::input::number(g.work_per_instance)
                )));
            }
            if g.zones.is_empty() {
                return Err(err("needs at least one zone".to_owned()));
            }
            let class = catalog
                .iter()
                .position(|c| c.name == g.instance_class)
                .ok_or_else(|| {
                    err(format!(
                        "instance class {:?} is not in the catalog (known: {})",
                        g.instance_class,
                        catalog
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            if catalog[class].vcpus <= 0.0 {
                return Err(err(format!(
                    "instance class {} has no vCPUs",
                    g.instance_class
                )));
            }
            for zone in &g.zones {
                let offered = catalog[class]
                    .offerings
                    .iter()
                    .any(|o| &o.zone == zone && o.capacity_type == g.capacity_type);
                if !offered {
                    return Err(err(format!(
                        "instance class {} is not offered as {:?} in zone {zone}",
                        g.instance_class, g.capacity_type
                    )));
                }
            }
            let group_seed = rng::hash_words(&[self.seed, n as u64, fnv(&id)]);
            let demand = Demand::resolve(&g.demand, g.work_per_instance, group_seed, start)
                .map_err(|m| err(format!("demand: {m}")))?;
            let drain =
                TimeDelta::from_std(g.drain).map_err(|_| err("drain is too long".to_owned()))?;
            inits.push(GroupInit {
                id: g.id,
                min: g.min,
                max: g.max,
                desired: g.desired,
                class,
                zones: g.zones,
                capacity_type: g.capacity_type,
                work_per_instance: g.work_per_instance,
                service_time_seconds: g.service_time.as_secs_f64(),
                demand_label: g.demand.describe(),
                demand,
                drain,
            });
        }
        let world = World::new(settings, catalog, inits, self.seed, start)
            .map_err(|e| cfg_err(format!("initial capacity: {}", e.message())))?;
        Ok(SimulatedCloud {
            name: Arc::from(SIM_PROVIDER_NAME),
            world: Arc::new(Mutex::new(world)),
        })
    }
}

/// A stable hash of a string (FNV-1a), for per-group seeds independent of group order.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One instance's life in the simulated cloud, for reports.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRecord {
    /// Instance id.
    pub id: InstanceId,
    /// Its class.
    pub instance_class: String,
    /// On-demand or spot.
    pub capacity_type: CapacityType,
    /// When it was asked for (billing starts here).
    pub launched_at: DateTime<Utc>,
    /// When it was terminated, `None` while alive.
    pub ended_at: Option<DateTime<Utc>>,
    /// When it was chosen for scale-in and began to drain, when its group has a drain; it was
    /// terminated at the end of the drain (`ended_at`), or is still draining.
    pub drain_started_at: Option<DateTime<Utc>>,
    /// Whether a spot interruption ended it.
    pub interrupted: bool,
    /// Its price, USD per hour.
    pub price_per_hour: f64,
}

/// The simulated cloud. Cheap to clone; clones share one world.
#[derive(Clone)]
pub struct SimulatedCloud {
    name: Arc<str>,
    world: Arc<Mutex<World>>,
}

impl std::fmt::Debug for SimulatedCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = self.lock();
        f.debug_struct("SimulatedCloud")
            .field("name", &self.name)
            .field("now", &w.now)
            .field("groups", &w.groups.len())
            .field("instances_ever", &w.instances.len())
            .finish()
    }
}

impl SimulatedCloud {
    /// A builder with the defaults.
    pub fn builder() -> SimulatedCloudBuilder {
        SimulatedCloudBuilder::default()
    }

    /// Builds a simulated cloud from a policy file's configuration. Relative trace paths are
    /// resolved against `base_dir` (the policy file's directory). `bounds` are the policy's
    /// groups with their min and max: every one of them exists in the simulated cloud, with the
    /// settings of `cfg.groups` when given there, or else the defaults and a generated demand.
    pub fn from_config(
        cfg: &SimulatedCloudConfig,
        base_dir: &Path,
        bounds: &[(GroupId, u32, u32)],
    ) -> Result<SimulatedCloud> {
        let groups: Vec<GroupBounds> = bounds
            .iter()
            .map(|(id, min, max)| GroupBounds::new(id.clone(), *min, *max))
            .collect();
        config::build(cfg, base_dir, &groups)
    }

    /// [`SimulatedCloud::from_config`] for the policy's groups as a provider factory gets them:
    /// with their bounds and their drain periods (see [Draining](crate#draining)).
    pub fn from_policy_groups(
        cfg: &SimulatedCloudConfig,
        base_dir: &Path,
        groups: &[GroupBounds],
    ) -> Result<SimulatedCloud> {
        config::build(cfg, base_dir, groups)
    }

    /// This cloud under another provider name (errors and [`ScalingProvider::name`] use it).
    pub fn named(&self, name: &str) -> SimulatedCloud {
        SimulatedCloud {
            name: Arc::from(name),
            world: self.world.clone(),
        }
    }

    /// All four provider traits as one [`ProviderSet`] named `name`, sharing this world.
    pub fn provider_set(&self, name: &str) -> ProviderSet {
        let named = self.named(name);
        ProviderSet {
            name: name.to_owned(),
            scaling: Some(Arc::new(named.clone())),
            catalog: Some(Arc::new(named.clone())),
            billing: Some(Arc::new(named.clone())),
            metrics: Some(Arc::new(named)),
            billing_rule: self.billing_rule(),
        }
    }

    /// How this world bills, as the provider SDK's rule.
    pub fn billing_rule(&self) -> hoist_api::billing_rule::BillingRule {
        let billing = self.lock().settings.billing;
        match billing {
            Billing::PerSecond { minimum } => hoist_api::billing_rule::BillingRule::PerSecond {
                minimum_seconds: u32::try_from(minimum.as_secs()).unwrap_or(u32::MAX),
            },
            Billing::PerHour => hoist_api::billing_rule::BillingRule::PerHour,
        }
    }

    /// The virtual clock of this world.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(self.clone())
    }

    /// The current virtual time.
    pub fn now(&self) -> DateTime<Utc> {
        self.lock().now
    }

    /// When the world started.
    pub fn start_time(&self) -> DateTime<Utc> {
        self.lock().start
    }

    /// Advances the world to `until` (nothing happens if it is not in the future).
    pub fn advance_to(&self, until: DateTime<Utc>) {
        self.lock().advance_to(until);
    }

    /// Advances the world by `by`.
    pub fn advance(&self, by: Duration) {
        let mut w = self.lock();
        let until = w.now + TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX);
        w.advance_to(until);
    }

    /// Protects (or unprotects) an instance from scale-in by `set_desired_capacity`.
    pub fn set_scale_in_protection(
        &self,
        group: &str,
        instance: &str,
        protected: bool,
    ) -> Result<()> {
        let mut w = self.lock();
        let gi = w
            .group_index(group)
            .map_err(|e| self.err(e, "set_scale_in_protection"))?;
        w.set_protection(gi, instance, protected)
            .map_err(|e| self.err(e, "set_scale_in_protection"))
    }

    /// Demand of `group` at the current time, work units per second (`None` in a gap).
    pub fn current_demand(&self, group: &str) -> Result<Option<f64>> {
        let mut w = self.lock();
        let gi = w
            .group_index(group)
            .map_err(|e| self.err(e, "current_demand"))?;
        Ok(w.current_demand(gi))
    }

    /// The work units per second one instance of the group's original class serves.
    pub fn work_per_instance(&self, group: &str) -> Result<f64> {
        let w = self.lock();
        let gi = w
            .group_index(group)
            .map_err(|e| self.err(e, "work_per_instance"))?;
        Ok(w.groups[gi].work_per_instance)
    }

    /// Every instance ever launched in `group`, in launch order, with its lifetime.
    pub fn instance_history(&self, group: &str) -> Result<Vec<InstanceRecord>> {
        let w = self.lock();
        let gi = w
            .group_index(group)
            .map_err(|e| self.err(e, "instance_history"))?;
        Ok(w.instances
            .iter()
            .filter(|i| i.group == gi)
            .map(|i| InstanceRecord {
                id: i.id.clone(),
                instance_class: w.catalog[i.class].name.clone(),
                capacity_type: i.capacity_type,
                launched_at: i.launched_at,
                ended_at: i.ended_at,
                drain_started_at: i.drain_started_at,
                interrupted: i.interrupted,
                price_per_hour: i.price_per_hour,
            })
            .collect())
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn err(&self, e: Error, operation: &str) -> Error {
        e.with_provider(self.name.as_ref())
            .with_operation(operation)
    }

    fn group_op<T>(
        &self,
        group: &str,
        operation: &str,
        f: impl FnOnce(&mut World, usize) -> Result<T>,
    ) -> Result<T> {
        let mut w = self.lock();
        let gi = w.group_index(group).map_err(|e| self.err(e, operation))?;
        f(&mut w, gi).map_err(|e| self.err(e, operation))
    }
}

#[async_trait]
impl Clock for SimulatedCloud {
    fn now(&self) -> DateTime<Utc> {
        SimulatedCloud::now(self)
    }

    async fn sleep_until(&self, until: DateTime<Utc>) {
        self.advance_to(until);
    }
}

#[async_trait]
impl ScalingProvider for SimulatedCloud {
    fn name(&self) -> &str {
        &self.name
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
        let w = self.lock();
        Ok((0..w.groups.len()).map(|gi| w.group_view(gi)).collect())
    }

    async fn describe_group(&self, group: &str) -> Result<ScalingGroup> {
        self.group_op(group, "describe_group", |w, gi| Ok(w.group_view(gi)))
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<()> {
        self.group_op(group, "set_desired_capacity", |w, gi| {
            w.set_desired(gi, desired)
        })
    }

    async fn remove_instances(&self, group: &str, request: &RemoveInstances) -> Result<()> {
        self.group_op(group, "remove_instances", |w, gi| {
            w.remove_instances(gi, &request.instances, request.decrement)
        })
    }

    async fn set_instance_class(
        &self,
        group: &str,
        instance_class: &str,
    ) -> Result<Option<Activity>> {
        self.group_op(group, "set_instance_class", |w, gi| {
            w.set_instance_class(gi, instance_class)
        })
    }

    async fn activities(&self, group: &str) -> Result<Vec<Activity>> {
        self.group_op(group, "activities", |w, gi| Ok(w.activities(gi)))
    }
}

#[async_trait]
impl InstanceCatalog for SimulatedCloud {
    fn capabilities(&self) -> CatalogCapabilities {
        CatalogCapabilities {
            spot_prices: true,
            live_prices: false,
        }
    }

    async fn instance_classes(&self) -> Result<Vec<InstanceClass>> {
        Ok(self.lock().catalog.clone())
    }
}

#[async_trait]
impl BillingProvider for SimulatedCloud {
    fn capabilities(&self) -> BillingCapabilities {
        BillingCapabilities {
            actual_cost: true,
            forecast: true,
            prices: true,
        }
    }

    async fn cost(&self, query: &CostQuery) -> Result<Vec<CostEntry>> {
        self.lock().cost(query).map_err(|e| self.err(e, "cost"))
    }

    async fn forecast(&self, query: &CostQuery) -> Result<Vec<CostEntry>> {
        self.lock()
            .forecast(query)
            .map_err(|e| self.err(e, "forecast"))
    }

    async fn price(
        &self,
        instance_class: &str,
        zone: &str,
        capacity_type: CapacityType,
    ) -> Result<Price> {
        let w = self.lock();
        let class = w
            .catalog
            .iter()
            .find(|c| c.name == instance_class)
            .ok_or_else(|| {
                self.err(
                    Error::not_found(format!("no instance class named {instance_class:?}")),
                    "price",
                )
            })?;
        class
            .offerings
            .iter()
            .find(|o| o.zone == zone && o.capacity_type == capacity_type)
            .map(|o| o.price.clone())
            .ok_or_else(|| {
                self.err(
                    Error::not_found(format!(
                        "{instance_class} is not offered as {capacity_type:?} in zone {zone}"
                    )),
                    "price",
                )
            })
    }
}

#[async_trait]
impl MetricsSource for SimulatedCloud {
    fn capabilities(&self) -> MetricsCapabilities {
        MetricsCapabilities {
            builtin: vec![
                MetricKind::Utilization,
                MetricKind::RequestRate,
                MetricKind::QueueDepth,
                MetricKind::LatencyP95,
                MetricKind::LatencyP99,
                MetricKind::ErrorRate,
                MetricKind::Custom(world::CUSTOM_READY_CAPACITY.to_owned()),
                MetricKind::Custom(world::CUSTOM_READY_INSTANCES.to_owned()),
            ],
            expressions: false,
        }
    }

    async fn query_range(&self, request: &RangeQuery) -> Result<Vec<TimeSeries>> {
        let (query, range, step_seconds) = (&request.query, request.range, request.step_seconds);
        if let Some(expr) = &query.expression {
            return Err(self.err(
                Error::unsupported(format!(
                    "the simulated cloud has no query language; drop the expression {expr:?}"
                )),
                "query_range",
            ));
        }
        let slot = world::metric_slot(&query.metric).ok_or_else(|| {
            self.err(
                Error::unsupported(format!(
                    "the simulated cloud has no metric {}; it has utilization, request_rate, queue_depth, latency_p95, latency_p99, error_rate, ready_capacity, ready_instances",
                    query.metric
                )),
                "query_range",
            )
        })?;
        self.group_op(&query.group, "query_range", |w, gi| {
            let samples = w.samples(gi, slot, range, step_seconds);
            let mut labels = std::collections::BTreeMap::new();
            labels.insert("group".to_owned(), query.group.clone());
            labels.insert("metric".to_owned(), query.metric.name().to_owned());
            labels.insert("provider".to_owned(), self.name.to_string());
            Ok(vec![TimeSeries { labels, samples }])
        })
    }
}
