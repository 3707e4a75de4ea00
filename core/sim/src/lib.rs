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
//! # Failure windows
//!
//! A provider may fail for a while ([`SimulatedCloudBuilder::outage`], `outages:` in settings),
//! from `after` the world's start `for` a duration, for all its groups or those listed:
//!
//! - an **outage** ([`OutageKind::Outage`]): the provider's API is down. Every
//!   [`ScalingProvider`] and [`MetricsSource`] call for an affected group fails with
//!   [`ErrorKind::Transient`](hoist_api::ErrorKind) (retryable), saying `simulated outage of
//!   provider cloud-a until 2026-01-05T08:00:00Z (HTTP 503)`; `list_groups` fails when every
//!   group is affected. [`InstanceCatalog`] and [`BillingProvider`] calls keep working. The
//!   group's instances stay, are billed and count toward the quota, but **serve nothing**: its
//!   serving capacity is zero, so its demand becomes backlog (or, for a shared demand, moves to
//!   the groups still serving), and its metric samples for the window show it (`ready_capacity`
//!   0, `utilization` 1 while demand waits, `error_rate` 1; `ready_instances` still counts the
//!   running instances). They serve again at the window's end.
//! - a **stockout** ([`OutageKind::Stockout`]): no new capacity. [`ScalingProvider::set_desired_capacity`]
//!   above the group's active instances fails with
//!   [`ErrorKind::CapacityUnavailable`](hoist_api::ErrorKind) (`InsufficientInstanceCapacity:
//!   simulated stockout of general.large in cloud-a until ...`) and changes nothing; lowering
//!   works. The instances keep serving.
//!
//! In both, no instance is launched meanwhile: a spot instance interrupted is not replaced
//! (its activity says why), replacements of [`ScalingProvider::remove_instances`] are not
//! launched, and an instance refresh pauses between batches. When the window ends, each group
//! it covered is brought back to its desired capacity and a paused refresh resumes. Window
//! edges end a sub-step, so capacity changes exactly at them.
//!
//! # Worlds
//!
//! Several simulated providers can run in one [`SimWorld`] (`world: NAME` in settings; every
//! provider one [`SimulatedFactory`] builds with the same name joins the same world; or
//! [`SimulatedCloudBuilder::world`]). They share one virtual clock, [`SimWorld::clock`], which
//! is the [`SimulatedCloud::clock`] of every member (the same `Arc`), and the shared demands.
//! Each keeps its own world: catalog and prices, boot delay, tick, quota, spot rate, billing,
//! failure windows and groups. Their starts must be equal (a default start too, which comes
//! from the first trace); a provider whose start differs is refused, naming both. The clock
//! advances every member in lockstep, one step of the smallest tick among them at a time (and
//! to every failure window's edge), when any group shares a demand; otherwise each member goes
//! straight to the target, which gives the same result. Building a provider again under the
//! same name replaces that member: it joins at the world's current time (its initial instances
//! start then). A member lives as long as a handle to its provider does; when none of a world's
//! providers is left, the next one starts the world afresh. A cloud built alone has a world of
//! its own.
//!
//! # Shared demand
//!
//! A demand can be shared by groups of one provider or of several providers of a world, like a
//! load balancer in front of them: it is defined once, by name
//! ([`SimulatedCloudBuilder::shared_demand`], `shared_demands:` in settings; a name defined
//! by two providers of a world is refused), and a group takes a share with
//! [`DemandSpec::Shared`] (`demand: {shared: NAME}`). At the start of every step the world
//! evaluates the shared demand `d(t)` and gives each group sharing it
//! `d(t) × c_g / Σ c`, where `c` is a group's serving capacity at that moment (its ready
//! capacity, zero in an outage); when no group serves, an equal split. The split is held over
//! the step, so a boot, interruption or scale-in inside a step moves it at the next step: at
//! most one tick late, across providers as within one. A failure window's edge splits anew at
//! once. Reading a share ([`SimulatedCloud::current_demand`]) changes nothing, and the result
//! does not depend on how a caller slices time (up to rounding). A name that no provider of the world
//! defines gives its groups no demand (a gap: no samples, the backlog kept), with a `tracing`
//! warning the first time. The same seeds and calls give the same world, bit for bit.
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
mod outage;
mod queueing;
pub mod rng;
mod shared;
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
    SimOutageConfig, SimQuotaConfig, SimulatedCloudConfig,
};
pub use demand::{DemandSpec, GeneratorSpec, TraceDemand, TraceScale};
pub use outage::{OutageKind, SimOutage};
pub use queueing::{LATENCY_CAP_SECONDS, MAX_MODEL_UTILISATION, latency_seconds};
pub use shared::SimWorld;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::model::{
    Activity, CapacityType, GroupId, InstanceClass, InstanceId, MetricKind, Price, ScalingGroup,
    TimeSeries,
};
use crate::provider::{
    BillingCapabilities, BillingProvider, CatalogCapabilities, ChangeInstanceClass, CostEntry,
    CostQuery, InstanceCatalog, MetricsCapabilities, MetricsSource, ProviderSet, RangeQuery,
    RemoveInstances, ScalingCapabilities, ScalingProvider,
};
pub use factory::{SimulatedFactory, register_builtins};
use hoist_api::registry::GroupBounds;

// The provider SDK's modules under the names this crate's code uses.
pub(crate) use hoist_api::{clock, duration, error, model, provider};

use demand::Demand;
use outage::{Window, stamp};
use shared::Joining;
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
    outages: Vec<SimOutage>,
    shared_demands: Vec<SharedDemandSpec>,
    world: Option<(Arc<SimWorld>, String)>,
    wall: bool,
}

/// A shared demand as the builder holds it.
#[derive(Debug, Clone)]
struct SharedDemandSpec {
    name: String,
    demand: DemandSpec,
    work_per_instance: f64,
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
            outages: Vec::new(),
            shared_demands: Vec::new(),
            world: None,
            wall: false,
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

    /// Adds a failure window (see [Failure windows](crate#failure-windows)).
    pub fn outage(mut self, outage: SimOutage) -> Self {
        self.outages.push(outage);
        self
    }

    /// Defines the shared demand `name`, which groups of any provider of the world take a share
    /// of with [`DemandSpec::Shared`] (see [Shared demand](crate#shared-demand)).
    /// `work_per_instance` converts [`TraceScale::PeakInstances`] to work units per second.
    pub fn shared_demand(
        mut self,
        name: impl Into<String>,
        demand: DemandSpec,
        work_per_instance: f64,
    ) -> Self {
        self.shared_demands.push(SharedDemandSpec {
            name: name.into(),
            demand,
            work_per_instance,
        });
        self
    }

    /// Makes the cloud the member `provider` of `world` (see [Worlds](crate#worlds)): it shares
    /// the world's clock and shared demands with the other members, and replaces a member of the
    /// same name. [`SimulatedCloud::name`](ScalingProvider::name) is `provider`. Without it the
    /// cloud has a private world of its own.
    pub fn world(mut self, world: &Arc<SimWorld>, provider: impl Into<String>) -> Self {
        self.world = Some((Arc::clone(world), provider.into()));
        self
    }

    /// Whether the cloud follows the wall clock (`clock: wall`); the members of a world must
    /// agree.
    pub(crate) fn on_wall_clock(mut self, wall: bool) -> Self {
        self.wall = wall;
        self
    }

    /// Checks everything and builds the world. Errors are [`hoist_api::ErrorKind::Config`] and name
    /// the group and field.
    pub fn build(self) -> Result<SimulatedCloud> {
        let member = self
            .world
            .as_ref()
            .map_or(SIM_PROVIDER_NAME.to_owned(), |(_, m)| m.clone());
        let cfg_err = |msg: String| Error::config(msg).with_provider(SIM_PROVIDER_NAME);
        let field_err = |field: String, msg: String| {
            Error::config_field(field, msg).with_provider(SIM_PROVIDER_NAME)
        };
        let to_delta = |name: &str, d: Duration| {
            TimeDelta::from_std(d)
                .map_err(|_| field_err(name.to_owned(), format!("{name} is too long")))
        };
        let tick = to_delta("tick", self.tick)?;
        let metric_period = to_delta("metric_period", self.metric_period)?;
        if tick < TimeDelta::milliseconds(1) {
            return Err(field_err(
                "tick".to_owned(),
                "tick must be at least 1ms".to_owned(),
            ));
        }
        let (tick_ns, period_ns) = (
            tick.num_nanoseconds().unwrap_or(i64::MAX),
            metric_period.num_nanoseconds().unwrap_or(i64::MAX),
        );
        if period_ns < tick_ns || period_ns % tick_ns != 0 {
            return Err(field_err(
                "metric_period".to_owned(),
                format!(
                    "metric_period ({}) must be a whole multiple of the tick ({})",
                    crate::duration::format_duration(self.metric_period),
                    crate::duration::format_duration(self.tick)
                ),
            ));
        }
        let rate = self.spot_interruptions_per_hour;
        if !rate.is_finite() || rate < 0.0 {
            return Err(field_err(
                "spot_interruptions_per_hour".to_owned(),
                format!(
                    "spot_interruptions_per_hour must be a finite number >= 0, got {}",
                    hoist_api::input::number(rate)
                ),
            ));
        }
        if let Some(v) = self.quota.max_vcpus
            && !(v.is_finite() && v >= 0.0)
        {
            return Err(field_err(
                "quota.max_vcpus".to_owned(),
                format!(
                    "quota max_vcpus must be >= 0, got {}",
                    hoist_api::input::number(v)
                ),
            ));
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
        let trace_start = |d: &DemandSpec| match d {
            DemandSpec::Trace(t) => Some(t.trace.start),
            _ => None,
        };
        let start = self
            .start
            .or_else(|| self.groups.iter().find_map(|g| trace_start(&g.demand)))
            .or_else(|| {
                self.shared_demands
                    .iter()
                    .find_map(|d| trace_start(&d.demand))
            })
            .unwrap_or_else(default_start);

        let mut groups = self.groups;
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        if let Some(w) = groups.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(field_err(
                format!("groups.{}", w[0].id),
                format!("group {:?} is defined twice", w[0].id),
            ));
        }
        let windows = resolve_windows(&self.outages, &groups, start)?;
        let mut shared_demands: Vec<(String, Demand)> = Vec::new();
        for d in &self.shared_demands {
            let field = format!("shared_demands.{}", d.name);
            let err =
                |msg: String| field_err(field.clone(), format!("shared demand {}: {msg}", d.name));
            if d.name.trim().is_empty() {
                return Err(field_err(
                    "shared_demands".to_owned(),
                    "a shared demand needs a name".to_owned(),
                ));
            }
            if shared_demands.iter().any(|(n, _)| *n == d.name) {
                return Err(err("is defined twice".to_owned()));
            }
            if let DemandSpec::Shared(other) = &d.demand {
                return Err(err(format!(
                    "is itself a share of {other:?}; give it a trace, a constant or a generator"
                )));
            }
            if !(d.work_per_instance.is_finite()
                && d.work_per_instance > 0.0
                && d.work_per_instance <= hoist_api::input::MAX_AMOUNT)
            {
                return Err(field_err(
                    format!("{field}.work_per_instance"),
                    format!(
                        "shared demand {}: work_per_instance must be > 0 and at most {:e}, got {}",
                        d.name,
                        hoist_api::input::MAX_AMOUNT,
                        hoist_api::input::number(d.work_per_instance)
                    ),
                ));
            }
            let seed = rng::hash_words(&[self.seed, fnv("shared demand"), fnv(&d.name)]);
            let demand =
                Demand::resolve(&d.demand, d.work_per_instance, seed, start).map_err(err)?;
            shared_demands.push((d.name.clone(), demand));
        }
        let mut inits = Vec::with_capacity(groups.len());
        for (n, g) in groups.into_iter().enumerate() {
            let id = g.id.clone();
            let err = |msg: String| field_err(format!("groups.{id}"), format!("group {id}: {msg}"));
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
                .map_err(|m| {
                    let field = match &g.demand {
                        DemandSpec::Shared(_) => format!("groups.{id}.demand.shared"),
                        _ => format!("groups.{id}.demand"),
                    };
                    field_err(field, format!("group {id}: demand: {m}"))
                })?;
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
        let shared = match self.world {
            Some((world, _)) => world,
            None => SimWorld::private(&member),
        };
        let seed = self.seed;
        let joining = Joining {
            member: member.clone(),
            start,
            wall: self.wall,
            demands: shared_demands,
        };
        let world = shared
            .join(joining, |now| {
                World::new(settings, catalog, inits, windows, seed, (start, now))
                    .map_err(|e| cfg_err(format!("initial capacity: {}", e.message())))
            })
            .map_err(|e| e.with_provider(member.as_str()))?;
        Ok(SimulatedCloud {
            name: Arc::from(member.as_str()),
            world,
            shared,
        })
    }
}

/// Resolves failure windows against the world's `start` and the (sorted) groups; errors name
/// the field (`outages[N].for`).
fn resolve_windows(
    outages: &[SimOutage],
    groups: &[SimGroupSpec],
    start: DateTime<Utc>,
) -> Result<Vec<Window>> {
    let mut windows = Vec::with_capacity(outages.len());
    for (n, o) in outages.iter().enumerate() {
        let err = |field: &str, msg: String| {
            Error::config_field(
                format!("outages[{n}].{field}"),
                format!("outages[{n}]: {msg}"),
            )
            .with_provider(SIM_PROVIDER_NAME)
        };
        if o.duration.is_zero() {
            return Err(err("for", "`for` must be longer than zero".to_owned()));
        }
        let after = TimeDelta::from_std(o.after)
            .ok()
            .and_then(|d| start.checked_add_signed(d))
            .ok_or_else(|| err("after", "`after` is too long".to_owned()))?;
        let until = TimeDelta::from_std(o.duration)
            .ok()
            .and_then(|d| after.checked_add_signed(d))
            .ok_or_else(|| err("for", "`for` is too long".to_owned()))?;
        let affected = if o.groups.is_empty() {
            None
        } else {
            let mut indices = Vec::with_capacity(o.groups.len());
            for id in &o.groups {
                let gi = groups.iter().position(|g| &g.id == id).ok_or_else(|| {
                    err(
                        "groups",
                        format!(
                            "no group {id:?} on this provider (it has: {})",
                            groups
                                .iter()
                                .map(|g| g.id.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?;
                indices.push(gi);
            }
            Some(indices)
        };
        windows.push(Window {
            from: after,
            until,
            kind: o.kind,
            groups: affected,
        });
    }
    Ok(windows)
}

/// A stable hash of a string (FNV-1a), for per-group seeds independent of group order.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One batch of an instance-class replacement in the simulated cloud
/// ([`SimulatedCloud::replacement_history`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplacementRecord {
    /// When the batch started: its new instances were launched (or, in place, its old ones
    /// terminated).
    pub started_at: DateTime<Utc>,
    /// When its new instances were ready and its old ones gone; `None` while under way.
    pub finished_at: Option<DateTime<Utc>>,
    /// Launched on top of desired capacity, old instances retired once the batch was ready
    /// (`true`), or in place of old instances terminated first because the quota left no room.
    pub surge: bool,
    /// The new instances.
    pub launched: Vec<InstanceId>,
    /// The old instances the batch replaced.
    pub retired: Vec<InstanceId>,
    /// The disruption budget the replacement was asked to keep within.
    pub budget: Option<hoist_api::DisruptionBudget>,
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
    /// When it finished booting and began to serve; `None` if it never did.
    pub ready_at: Option<DateTime<Utc>>,
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
    /// The world it belongs to (a private one when built alone).
    shared: Arc<SimWorld>,
}

impl std::fmt::Debug for SimulatedCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = self.lock();
        f.debug_struct("SimulatedCloud")
            .field("name", &self.name)
            .field("world", &self.shared.name())
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
            shared: self.shared.clone(),
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

    /// The virtual clock of this cloud's world: the same `Arc` for every provider of a world
    /// (see [Worlds](crate#worlds)).
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.shared.clock()
    }

    /// The world this cloud belongs to (a private one when it was built alone).
    pub fn world(&self) -> Arc<SimWorld> {
        Arc::clone(&self.shared)
    }

    /// The current virtual time.
    pub fn now(&self) -> DateTime<Utc> {
        self.lock().now
    }

    /// When the world started.
    pub fn start_time(&self) -> DateTime<Utc> {
        self.lock().start
    }

    /// Advances the world, with every other provider of it, to `until` (nothing happens if it
    /// is not in the future).
    pub fn advance_to(&self, until: DateTime<Utc>) {
        self.shared.advance_to(until);
    }

    /// Advances the world, with every other provider of it, by `by`.
    pub fn advance(&self, by: Duration) {
        let now = self.now();
        let until = TimeDelta::from_std(by)
            .ok()
            .and_then(|by| now.checked_add_signed(by))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.shared.advance_to(until);
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
        self.check_up(&w, gi)
            .map_err(|e| self.err(e, "set_scale_in_protection"))?;
        w.set_protection(gi, instance, protected)
            .map_err(|e| self.err(e, "set_scale_in_protection"))
    }

    /// Demand of `group` at the current time, work units per second (`None` in a gap). For a
    /// group with a shared demand, its share now.
    pub fn current_demand(&self, group: &str) -> Result<Option<f64>> {
        self.shared.refresh_shares();
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
                ready_at: i.ready_at,
                ended_at: i.ended_at,
                drain_started_at: i.drain_started_at,
                interrupted: i.interrupted,
                price_per_hour: i.price_per_hour,
            })
            .collect())
    }

    /// Every batch of the instance-class replacements of `group` (see
    /// [`ScalingProvider::set_instance_class`]), oldest first.
    pub fn replacement_history(&self, group: &str) -> Result<Vec<ReplacementRecord>> {
        let w = self.lock();
        let gi = w
            .group_index(group)
            .map_err(|e| self.err(e, "replacement_history"))?;
        let id = |i: &usize| w.instances[*i].id.clone();
        Ok(w.groups[gi]
            .replacements
            .iter()
            .map(|b| ReplacementRecord {
                started_at: b.started_at,
                finished_at: b.finished_at,
                surge: b.surge,
                launched: b.launched.iter().map(id).collect(),
                retired: b.retired.iter().map(id).collect(),
                budget: b.budget,
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

    /// An API call for group `gi`: fails while the group is in an outage.
    fn check_up(&self, w: &World, gi: usize) -> Result<()> {
        match w.outage_until(gi) {
            Some(until) => Err(self.outage_error(until)),
            None => Ok(()),
        }
    }

    fn outage_error(&self, until: DateTime<Utc>) -> Error {
        Error::new(
            crate::error::ErrorKind::Transient,
            format!(
                "simulated outage of provider {} until {} (HTTP 503)",
                self.name,
                stamp(until)
            ),
        )
    }

    /// Runs an API call for `group`, which fails while the group is in an outage.
    fn group_op<T>(
        &self,
        group: &str,
        operation: &str,
        f: impl FnOnce(&mut World, usize) -> Result<T>,
    ) -> Result<T> {
        let mut w = self.lock();
        let gi = w.group_index(group).map_err(|e| self.err(e, operation))?;
        self.check_up(&w, gi).map_err(|e| self.err(e, operation))?;
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
        // The provider's API is down when every group is in an outage.
        let down = (0..w.groups.len())
            .map(|gi| w.outage_until(gi))
            .collect::<Option<Vec<_>>>()
            .and_then(|untils| untils.into_iter().min());
        if let Some(until) = down {
            return Err(self.err(self.outage_error(until), "list_groups"));
        }
        Ok((0..w.groups.len()).map(|gi| w.group_view(gi)).collect())
    }

    async fn describe_group(&self, group: &str) -> Result<ScalingGroup> {
        self.group_op(group, "describe_group", |w, gi| Ok(w.group_view(gi)))
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<()> {
        self.group_op(group, "set_desired_capacity", |w, gi| {
            if let Some(until) = w.stockout_until(gi)
                && desired > w.managed_count(gi)
            {
                let g = &w.groups[gi];
                hoist_api::checks::desired_within_bounds(&g.id, desired, g.min, g.max)?;
                return Err(Error::new(
                    crate::error::ErrorKind::CapacityUnavailable,
                    format!(
                        "InsufficientInstanceCapacity: simulated stockout of {} in {} until {}; group {} stays at {} instance(s)",
                        w.catalog[g.class].name,
                        self.name,
                        stamp(until),
                        g.id,
                        w.managed_count(gi)
                    ),
                ));
            }
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
        request: &ChangeInstanceClass,
    ) -> Result<Option<Activity>> {
        self.group_op(group, "set_instance_class", |w, gi| {
            w.set_instance_class(gi, &request.instance_class, request.disruption)
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
