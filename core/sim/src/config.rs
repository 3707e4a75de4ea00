//! The simulated cloud's section of a policy file (`providers: {NAME: {simulated: ...}}`), its
//! JSON Schema, and how it becomes a [`SimulatedCloud`].
//!
//! ```yaml
//! seed: 42
//! boot_delay: 2m
//! billing: per_second        # or per_hour
//! billing_minimum: 60s
//! quota: { max_instances: 200 }
//! groups:
//!   web:
//!     instance_class: general.large
//!     work_per_instance: 500       # work units per second one instance serves at 100 %
//!     demand:
//!       trace: traces/nasa_http_1min.csv   # relative to the policy file
//!       peak_instances: 40
//!       loop: true
//!   batch:
//!     demand: { base: 300, daily_amplitude: 0.4, noise: 0.05 }
//!   api:
//!     demand: { shared: api }      # a share of the shared demand `api`
//! shared_demands:
//!   api: { base: 900, daily_amplitude: 0.5, work_per_instance: 100 }
//! world: demo                      # share a clock and shared demands with other providers
//! outages:
//!   - { after: 6h, for: 2h, kind: outage }
//!   - { after: 30h, for: 1h, kind: stockout, groups: [batch] }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::catalog::{DEFAULT_INSTANCE_CLASS, DEFAULT_ZONES, offerings};
use super::demand::{DemandSpec, GeneratorSpec, TraceDemand, TraceScale};
use super::outage::{OutageKind, SimOutage};
use super::shared::SimWorld;
use super::{Billing, Quota, SIM_PROVIDER_NAME, SimGroupSpec, SimulatedCloud};
use crate::duration::HumanDuration;
use crate::error::{Error, Result};
use crate::model::{Architecture, CapacityType, InstanceClass, InstanceFamily};
use crate::trace::{Trace, load_trace};
use hoist_api::input::MAX_PRICE_PER_HOUR;
use hoist_api::registry::GroupBounds;

/// Which time a simulated cloud lives in (`clock:`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SimClock {
    /// Its own virtual clock, driven as fast as the machine allows.
    #[default]
    Virtual,
    /// The wall clock: it starts when built and keeps pace with real time.
    Wall,
}

/// Settings of a simulated cloud. Every field is optional; defaults are those of
/// [`SimulatedCloud::builder`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SimulatedCloudConfig {
    /// Seed of every random choice (noise, spikes, spot interruptions). Default 0.
    #[serde(default)]
    pub seed: u64,
    /// Which time the cloud lives in. `virtual` (the default): its own clock, which `hoist run`
    /// drives as fast as the machine allows for `run.duration`. `wall`: it starts now and keeps
    /// pace with the wall clock, and `hoist run` runs until stopped, as on a real cloud (with
    /// the same retry, timeout and circuit-breaker layers), for live reload, leader election
    /// and trying a policy in real time. `start` cannot be set with `wall`.
    #[serde(default)]
    pub clock: SimClock,
    /// Virtual start time (RFC 3339). Default: the start of the first group's trace, or
    /// 2024-01-01T00:00:00Z.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTime<Utc>>,
    /// How long an instance boots before it serves. Default `2m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_delay: Option<HumanDuration>,
    /// Delay before a metric sample is visible. Default `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_lag: Option<HumanDuration>,
    /// Period metric samples average over. Default `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_period: Option<HumanDuration>,
    /// Internal step demand is held for. Default `10s`; must divide the metric period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick: Option<HumanDuration>,
    /// Billing model. Default `per_second`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<SimBillingModel>,
    /// Minimum charge per instance with `per_second` billing. Default `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_minimum: Option<HumanDuration>,
    /// Account quota across all groups. Default unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<SimQuotaConfig>,
    /// Interruptions per spot instance-hour. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot_interruptions_per_hour: Option<f64>,
    /// Replaces the built-in catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<Vec<SimInstanceClassConfig>>,
    /// Per-group settings, by group id. Groups of the policy not listed here get the defaults
    /// and a generated web-like demand.
    #[serde(default)]
    pub groups: BTreeMap<String, SimGroupConfig>,
    /// The world this provider runs in with other simulated providers of the same policy file
    /// that name it: they share one virtual clock (advanced in lockstep, one tick at a time)
    /// and the demands of `shared_demands`, and each keeps its own catalog, prices, boot delay,
    /// quota, billing, failure windows and groups. Their `start` must be equal (a default start
    /// too) and so must their `clock`. Default: a world of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world: Option<String>,
    /// Demands that groups share, by name, like a load balancer in front of several groups: a
    /// group with `demand: {shared: NAME}` gets, at every tick, the shared demand times its
    /// serving capacity (ready capacity, zero in an outage) over the serving capacity of all the
    /// groups sharing it, in any provider of the same `world`; an equal split when none serves.
    /// Each takes the settings of a group's `demand` (a trace, a constant or a generator), plus
    /// `work_per_instance` to convert `peak_instances`. A name is defined in one provider of a
    /// world only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shared_demands: BTreeMap<String, SimDemandConfig>,
    /// Failure windows, relative to the world's start: an `outage` (the API fails with a
    /// transient error and the instances stop serving) or a `stockout` (no new capacity), for
    /// all of the provider's groups or those listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outages: Vec<SimOutageConfig>,
}

/// One failure window of a simulated provider (an entry of `outages:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SimOutageConfig {
    /// When the window opens, after the world's start (`6h`).
    pub after: HumanDuration,
    /// How long it lasts (`2h`); more than zero.
    #[serde(rename = "for")]
    pub duration: HumanDuration,
    /// `outage` (the default): every scaling and metrics call for an affected group fails with
    /// a transient error (HTTP 503), and the group's instances stop serving (they stay and are
    /// billed; demand becomes backlog, or a shared demand moves to the other groups). Catalog and
    /// billing calls keep working. `stockout`: raising desired capacity above the group's
    /// active instances fails with capacity unavailable (lowering works), and spot replacements
    /// and instance refreshes wait for the end; the instances keep serving.
    #[serde(default)]
    pub kind: OutageKind,
    /// The provider's groups it affects. Default: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
}

/// How simulated instances are billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SimBillingModel {
    /// Per second from the request, with `billing_minimum`.
    PerSecond,
    /// Per started hour from the request.
    PerHour,
}

/// The account quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SimQuotaConfig {
    /// Most instances (pending or running) at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
    /// Most vCPUs at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_vcpus: Option<f64>,
}

/// An instance class of a custom catalog, offered in `zones` on demand and (with
/// `spot_price_per_hour`) as spot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SimInstanceClassConfig {
    /// Class name.
    pub name: String,
    /// Neutral family: general, compute, memory, storage, network, accelerated or burstable.
    #[serde(default = "default_family")]
    pub family: String,
    /// Virtual CPUs.
    pub vcpus: f64,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// Accelerators.
    #[serde(default)]
    pub gpus: u32,
    /// CPU architecture: `x86_64` (default) or `arm64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Architecture>,
    /// On-demand price, USD per hour.
    pub price_per_hour: f64,
    /// Spot price, USD per hour; no spot offering without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot_price_per_hour: Option<f64>,
    /// Zones it is offered in. Default `sim-1a`, `sim-1b`, `sim-1c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zones: Option<Vec<String>>,
}

fn default_family() -> String {
    "general".to_owned()
}

/// One simulated group's settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SimGroupConfig {
    /// Instance class. Default `general.large`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_class: Option<String>,
    /// Zones. Default the catalog's three zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zones: Option<Vec<String>>,
    /// Instances at the start. Default the group's min (at least 1 when max allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<u32>,
    /// Lower bound, only for a group the policy does not bound. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    /// Upper bound, only for a group the policy does not bound. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// Work units per second one instance serves at 100 % utilisation. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_per_instance: Option<f64>,
    /// Run on spot instances. Default false (on demand).
    #[serde(default)]
    pub spot: bool,
    /// Mean service time of a request on an idle instance (latency model). Default `50ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_time: Option<HumanDuration>,
    /// Where demand comes from. Default a generated web-like workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demand: Option<SimDemandConfig>,
}

/// Demand: a trace (`trace` with `scale` or `peak_instances`), a constant, a generator
/// (`base` with optional cycle, noise and spike settings), or in a group a share of a shared
/// demand (`shared`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SimDemandConfig {
    /// A `timestamp,value` CSV (or `.csv.gz`) trace, relative to the policy file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<PathBuf>,
    /// Work units per second per trace unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// Scale the trace so its peak needs this many instances at 100 %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_instances: Option<f64>,
    /// Replay the trace from the start after its end (otherwise: no data after the end).
    #[serde(default, rename = "loop", skip_serializing_if = "Option::is_none")]
    pub looped: Option<bool>,
    /// A constant demand, work units per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constant: Option<f64>,
    /// Generator: weekday mean, work units per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<f64>,
    /// Generator: relative amplitude of the daily cycle. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_amplitude: Option<f64>,
    /// Generator: UTC hour of the daily peak. Default 14.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_hour: Option<f64>,
    /// Generator: factor on Saturdays and Sundays. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekend_factor: Option<f64>,
    /// Generator: relative standard deviation of the noise. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<f64>,
    /// Generator: mean spikes per day. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spikes_per_day: Option<f64>,
    /// Generator: demand a spike adds, multiple of `base`. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spike_magnitude: Option<f64>,
    /// Generator: how long a spike lasts. Default `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spike_duration: Option<HumanDuration>,
    /// In a group's `demand` only, alone: the name of a shared demand (`shared_demands:` of a
    /// simulated provider of the same `world`) the group takes a share of. A name no provider
    /// of the world defines gives the group no demand (a gap), with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<String>,
    /// In `shared_demands` only: the work units per second one instance serves, to convert
    /// `peak_instances` to work units per second. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_per_instance: Option<f64>,
}

impl SimDemandConfig {
    fn generator_fields(&self) -> Vec<&'static str> {
        let fields = [
            ("daily_amplitude", self.daily_amplitude.is_some()),
            ("peak_hour", self.peak_hour.is_some()),
            ("weekend_factor", self.weekend_factor.is_some()),
            ("noise", self.noise.is_some()),
            ("spikes_per_day", self.spikes_per_day.is_some()),
            ("spike_magnitude", self.spike_magnitude.is_some()),
            ("spike_duration", self.spike_duration.is_some()),
        ];
        fields
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(f, _)| f)
            .collect()
    }

    /// The demand settings given, by name (for a shared one, which takes no other).
    fn given_fields(&self) -> Vec<&'static str> {
        let mut fields: Vec<&'static str> = [
            ("trace", self.trace.is_some()),
            ("scale", self.scale.is_some()),
            ("peak_instances", self.peak_instances.is_some()),
            ("loop", self.looped.is_some()),
            ("constant", self.constant.is_some()),
            ("base", self.base.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(f, _)| f)
        .collect();
        fields.extend(self.generator_fields());
        fields
    }

    /// Resolves to a [`DemandSpec`], loading the trace (cached in `traces`). Errors name the
    /// field relative to the demand, when there is one. `work_per_instance` is the caller's.
    fn resolve(
        &self,
        base_dir: &Path,
        traces: &mut HashMap<PathBuf, Arc<Trace>>,
    ) -> std::result::Result<DemandSpec, Error> {
        if let Some(name) = &self.shared {
            if let Some(f) = self.given_fields().first() {
                return Err(Error::config_field(
                    *f,
                    format!(
                        "`shared: {name}` takes a share of a shared demand and no other demand setting; remove `{f}` (the shared demand is defined under `shared_demands:`)"
                    ),
                ));
            }
            if name.trim().is_empty() {
                return Err(Error::config_field(
                    "shared",
                    "`shared` needs the name of a shared demand",
                ));
            }
            return Ok(DemandSpec::Shared(name.clone()));
        }
        let kinds = [
            self.trace.is_some(),
            self.constant.is_some(),
            self.base.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(Error::config(
                "give exactly one of `trace` (with `scale` or `peak_instances`), `constant`, `base` (a generator), or in a group `shared` (a share of a shared demand)",
            ));
        }
        let trace_only: Vec<&str> = [
            ("scale", self.scale.is_some()),
            ("peak_instances", self.peak_instances.is_some()),
            ("loop", self.looped.is_some()),
        ]
        .into_iter()
        .filter(|(_, s)| *s)
        .map(|(f, _)| f)
        .collect();
        if let Some(path) = &self.trace {
            if let Some(f) = self.generator_fields().first() {
                return Err(Error::config_field(
                    *f,
                    format!(
                        "`{f}` is a generator setting; a trace demand takes `scale` or `peak_instances` and `loop`"
                    ),
                ));
            }
            let scale = match (self.scale, self.peak_instances) {
                (Some(s), None) => TraceScale::Factor(s),
                (None, Some(p)) => TraceScale::PeakInstances(p),
                _ => {
                    return Err(Error::config(
                        "a trace demand needs exactly one of `scale` (work units/s per trace unit) or `peak_instances`",
                    ));
                }
            };
            let full = if path.is_absolute() {
                path.clone()
            } else {
                base_dir.join(path)
            };
            let trace = match traces.get(&full) {
                Some(t) => t.clone(),
                None => {
                    let t = Arc::new(load_trace(&full).map_err(|e| {
                        Error::config_field("trace", format!("trace: {e}")).with_source(e)
                    })?);
                    traces.insert(full, t.clone());
                    t
                }
            };
            return Ok(DemandSpec::Trace(TraceDemand {
                trace,
                scale,
                looped: self.looped.unwrap_or(false),
            }));
        }
        if let Some(f) = trace_only.first() {
            return Err(Error::config_field(
                *f,
                format!("`{f}` only applies to a trace demand"),
            ));
        }
        if let Some(c) = self.constant {
            if let Some(f) = self.generator_fields().first() {
                return Err(Error::config_field(
                    *f,
                    format!(
                        "`{f}` is a generator setting; a constant demand takes only `constant`"
                    ),
                ));
            }
            return Ok(DemandSpec::Constant(c));
        }
        let flat = GeneratorSpec::flat(self.base.unwrap_or(0.0));
        Ok(DemandSpec::Generator(GeneratorSpec {
            daily_amplitude: self.daily_amplitude.unwrap_or(flat.daily_amplitude),
            peak_hour: self.peak_hour.unwrap_or(flat.peak_hour),
            weekend_factor: self.weekend_factor.unwrap_or(flat.weekend_factor),
            noise: self.noise.unwrap_or(flat.noise),
            spikes_per_day: self.spikes_per_day.unwrap_or(flat.spikes_per_day),
            spike_magnitude: self.spike_magnitude.unwrap_or(1.0),
            spike_duration: self
                .spike_duration
                .map_or(flat.spike_duration, HumanDuration::get),
            ..flat
        }))
    }
}

fn parse_family(name: &str) -> Option<InstanceFamily> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

fn catalog_from(classes: &[SimInstanceClassConfig]) -> Result<Vec<InstanceClass>> {
    let mut out = Vec::with_capacity(classes.len());
    for c in classes {
        let err = |m: String| Error::config(format!("catalog class {}: {m}", c.name));
        let family = parse_family(&c.family).ok_or_else(|| {
            err(format!(
                "unknown family {:?} (general, compute, memory, storage, network, accelerated, burstable)",
                c.family
            ))
        })?;
        if !(c.vcpus.is_finite() && c.vcpus > 0.0 && c.vcpus <= 100_000.0) {
            return Err(err(format!(
                "vcpus must be in (0, 100000], got {}",
                hoist_api::input::number(c.vcpus)
            )));
        }
        for (field, price) in [
            ("price_per_hour", Some(c.price_per_hour)),
            ("spot_price_per_hour", c.spot_price_per_hour),
        ] {
            if let Some(p) = price
                && !(p.is_finite() && (0.0..=MAX_PRICE_PER_HOUR).contains(&p))
            {
                return Err(err(format!(
                    "{field} must be in [0, {MAX_PRICE_PER_HOUR}], got {}",
                    hoist_api::input::number(p)
                )));
            }
        }
        if out.iter().any(|o: &InstanceClass| o.name == c.name) {
            return Err(err("is defined twice".to_owned()));
        }
        let zones: Vec<&str> = match &c.zones {
            Some(z) => z.iter().map(String::as_str).collect(),
            None => DEFAULT_ZONES.to_vec(),
        };
        let mut offers = offerings(
            &zones,
            c.price_per_hour,
            c.spot_price_per_hour.unwrap_or(0.0),
        );
        match c.spot_price_per_hour {
            None => offers.retain(|o| o.capacity_type == CapacityType::OnDemand),
            Some(spot) => {
                // Exactly the configured spot price in every zone.
                for o in &mut offers {
                    if o.capacity_type == CapacityType::Spot {
                        o.price = super::catalog::sim_price(spot);
                    }
                }
            }
        }
        out.push(InstanceClass {
            name: c.name.clone(),
            family,
            vcpus: c.vcpus,
            memory_mib: c.memory_mib,
            gpus: c.gpus,
            architecture: c.architecture.unwrap_or(Architecture::X86_64),
            network_gbps: None,
            offerings: offers,
        });
    }
    Ok(out)
}

/// The work a group of `min..=max` gets by default: a web-like generator whose weekday mean
/// needs 30 % of the way from min to max (at least one instance).
fn default_demand(min: u32, max: u32, work_per_instance: f64) -> DemandSpec {
    let instances = (f64::from(min) + f64::from(max.saturating_sub(min)) * 0.3).max(1.0);
    DemandSpec::Generator(GeneratorSpec::web(instances * work_per_instance))
}

/// Builds a cloud alone (with a world of its own; `world:` is not read).
pub(crate) fn build(
    cfg: &SimulatedCloudConfig,
    base_dir: &Path,
    bounds: &[GroupBounds],
) -> Result<SimulatedCloud> {
    build_in(cfg, base_dir, bounds, None)
}

/// Prefixes a demand's relative field with where the demand is.
fn at_field(prefix: &str, e: Error) -> Error {
    let field = match e.field() {
        Some(f) if !f.is_empty() => format!("{prefix}.{f}"),
        _ => prefix.to_owned(),
    };
    let mut out = Error::config(e.message().to_owned())
        .with_field(field)
        .with_provider(SIM_PROVIDER_NAME);
    if let Some(src) = std::error::Error::source(&e) {
        out = out.with_source(src.to_string());
    }
    out
}

/// Builds a cloud, as the member `member` of `world` when given (which it joins, replacing the
/// member of the same name), or alone.
pub(crate) fn build_in(
    cfg: &SimulatedCloudConfig,
    base_dir: &Path,
    bounds: &[GroupBounds],
    world: Option<(&Arc<SimWorld>, &str)>,
) -> Result<SimulatedCloud> {
    let named = |e: Error| e.with_provider(SIM_PROVIDER_NAME);
    let mut b = SimulatedCloud::builder()
        .seed(cfg.seed)
        .on_wall_clock(cfg.clock == SimClock::Wall);
    if let Some((world, member)) = world {
        b = b.world(world, member);
    }
    match (cfg.clock, cfg.start) {
        (SimClock::Wall, Some(_)) => {
            return Err(named(Error::config_field(
                "start",
                "a simulated cloud on the wall clock starts when it is built; remove `start` or use `clock: virtual`",
            )));
        }
        (SimClock::Wall, None) => {
            // A provider joining a world that others already run in starts with it.
            let joined = world.and_then(|(world, member)| {
                world
                    .members()
                    .iter()
                    .any(|m| m != member)
                    .then(|| world.start())
                    .flatten()
            });
            b = b.start(joined.unwrap_or_else(Utc::now));
        }
        (SimClock::Virtual, Some(start)) => b = b.start(start),
        (SimClock::Virtual, None) => {}
    }
    if let Some(d) = cfg.boot_delay {
        b = b.boot_delay(d.get());
    }
    if let Some(d) = cfg.metric_lag {
        b = b.metric_lag(d.get());
    }
    if let Some(d) = cfg.metric_period {
        b = b.metric_period(d.get());
    }
    if let Some(d) = cfg.tick {
        b = b.tick(d.get());
    }
    let minimum = cfg
        .billing_minimum
        .map_or(Duration::from_secs(60), HumanDuration::get);
    b = b.billing(match cfg.billing.unwrap_or(SimBillingModel::PerSecond) {
        SimBillingModel::PerSecond => Billing::PerSecond { minimum },
        SimBillingModel::PerHour => {
            if cfg.billing_minimum.is_some() {
                return Err(named(Error::config_field(
                    "billing_minimum",
                    "billing_minimum only applies to per_second billing",
                )));
            }
            Billing::PerHour
        }
    });
    if let Some(q) = cfg.quota {
        b = b.quota(Quota {
            max_instances: q.max_instances,
            max_vcpus: q.max_vcpus,
        });
    }
    if let Some(rate) = cfg.spot_interruptions_per_hour {
        b = b.spot_interruptions_per_hour(rate);
    }
    if let Some(classes) = &cfg.catalog {
        b = b.catalog(catalog_from(classes).map_err(|e| at_field("catalog", e))?);
    }
    if let Some(name) = &cfg.world
        && name.trim().is_empty()
    {
        return Err(named(Error::config_field(
            "world",
            "`world` needs a name (the providers naming the same world run together)",
        )));
    }
    let mut traces = HashMap::new();
    for (name, d) in &cfg.shared_demands {
        let prefix = format!("shared_demands.{name}");
        if d.shared.is_some() {
            return Err(at_field(
                &format!("{prefix}.shared"),
                Error::config(format!(
                    "shared demand {name} cannot itself be a share (`shared`); give it a trace, a constant or a generator"
                )),
            ));
        }
        let spec = d.resolve(base_dir, &mut traces).map_err(|e| {
            let mut out = Error::config(format!("shared demand {name}: {}", e.message()));
            if let Some(field) = e.field() {
                out = out.with_field(field);
            }
            if let Some(src) = std::error::Error::source(&e) {
                out = out.with_source(src.to_string());
            }
            at_field(&prefix, out)
        })?;
        b = b.shared_demand(name.clone(), spec, d.work_per_instance.unwrap_or(100.0));
    }
    for o in &cfg.outages {
        b = b.outage(SimOutage {
            after: o.after.get(),
            duration: o.duration.get(),
            kind: o.kind,
            groups: o.groups.clone().unwrap_or_default(),
        });
    }

    let mut ids: Vec<&str> = bounds.iter().map(|g| g.id.as_str()).collect();
    ids.extend(cfg.groups.keys().map(String::as_str));
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let err = |e: Error| {
            let msg = format!("simulated group {id}: {}", e.message());
            let mut out = Error::config(msg);
            if let Some(field) = e.field() {
                out = out.with_field(field);
            }
            if let Some(src) = std::error::Error::source(&e) {
                out = out.with_source(src.to_string());
            }
            at_field(&format!("groups.{id}.demand"), out)
        };
        let gc = cfg.groups.get(id).cloned().unwrap_or_default();
        let policy = bounds.iter().find(|g| g.id == id);
        let (min, max) = match policy {
            Some(g) => (g.min, g.max),
            None => (gc.min.unwrap_or(0), gc.max.unwrap_or(100)),
        };
        let work_per_instance = gc.work_per_instance.unwrap_or(100.0);
        let demand = match &gc.demand {
            Some(d) if d.work_per_instance.is_some() => {
                return Err(err(Error::config_field(
                    "work_per_instance",
                    "`work_per_instance` under `demand` only applies in `shared_demands`; a group sets its own beside `demand`",
                )));
            }
            Some(d) => d.resolve(base_dir, &mut traces).map_err(err)?,
            None => default_demand(min, max, work_per_instance),
        };
        let defaults = SimGroupSpec::new(id);
        b = b.group(SimGroupSpec {
            min,
            max,
            desired: gc.desired.unwrap_or(min.max(1).min(max)),
            instance_class: gc
                .instance_class
                .clone()
                .unwrap_or_else(|| DEFAULT_INSTANCE_CLASS.to_owned()),
            zones: gc.zones.clone().unwrap_or(defaults.zones.clone()),
            demand,
            work_per_instance,
            capacity_type: if gc.spot {
                CapacityType::Spot
            } else {
                CapacityType::OnDemand
            },
            service_time: gc
                .service_time
                .map_or(defaults.service_time, HumanDuration::get),
            drain: policy.and_then(|g| g.drain).unwrap_or_default(),
            ..defaults
        });
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_deserialises_and_rejects_unknown_fields() {
        let json = serde_json::json!({
            "seed": 3,
            "boot_delay": "90s",
            "billing": "per_hour",
            "quota": {"max_instances": 50},
            "groups": {"web": {"work_per_instance": 200, "demand": {"base": 100, "noise": 0.1}}}
        });
        let cfg: SimulatedCloudConfig = serde_json::from_value(json).unwrap();
        assert_eq!(cfg.boot_delay, Some(HumanDuration::from_secs(90)));
        assert_eq!(cfg.billing, Some(SimBillingModel::PerHour));
        assert_eq!(cfg.groups["web"].demand.as_ref().unwrap().noise, Some(0.1));
        let bad = serde_json::json!({"groups": {"web": {"demand": {"base": 1, "nosie": 0.1}}}});
        let e = serde_json::from_value::<SimulatedCloudConfig>(bad).unwrap_err();
        assert!(e.to_string().contains("nosie"), "{e}");
    }

    #[test]
    fn schema_describes_durations_as_strings() {
        let schema = schemars::schema_for!(SimulatedCloudConfig);
        let text = serde_json::to_string(&schema).unwrap();
        assert!(text.contains("boot_delay"));
        assert!(text.contains("\"pattern\""), "{text}");
        assert!(text.contains("peak_instances"));
        for field in [
            "\"world\"",
            "\"shared_demands\"",
            "\"outages\"",
            "\"for\"",
            "\"stockout\"",
        ] {
            assert!(text.contains(field), "{field} missing from {text}");
        }
    }

    #[test]
    fn demand_must_be_exactly_one_kind() {
        let dir = Path::new(".");
        let mut traces = HashMap::new();
        let both = SimDemandConfig {
            constant: Some(1.0),
            base: Some(2.0),
            ..Default::default()
        };
        let e = both.resolve(dir, &mut traces).unwrap_err();
        assert!(e.message().contains("exactly one"), "{e}");
        let stray = SimDemandConfig {
            constant: Some(1.0),
            noise: Some(0.1),
            ..Default::default()
        };
        assert!(
            stray
                .resolve(dir, &mut traces)
                .unwrap_err()
                .message()
                .contains("noise")
        );
        let trace_without_scale = SimDemandConfig {
            trace: Some("x.csv".into()),
            ..Default::default()
        };
        assert!(
            trace_without_scale
                .resolve(dir, &mut traces)
                .unwrap_err()
                .message()
                .contains("peak_instances")
        );
    }
}
