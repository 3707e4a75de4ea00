//! The policy file: named providers, groups with their bounds, policies and guards, and run
//! settings. YAML on disk, validated on load; every error names the file, the line and the field.
//!
//! ```yaml
//! providers:
//!   sim:
//!     simulated: { seed: 7 }
//! groups:
//!   - name: web
//!     provider: sim
//!     min: 2
//!     max: 20
//!     policies:
//!       - target_tracking: { metric: utilization, target: 0.6 }
//! ```
//!
//! Parsing is [`load_file`] / [`parse_str`]; semantic checks (bounds, targets, cron
//! expressions, provider names) run in the same call, and all problems are reported at once.

pub mod budget;
pub(crate) mod deferred;
mod diff;
mod limits;
mod load;
mod locate;
pub mod pool;
mod schema;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;
use crate::model::MetricKind;

pub use crate::schedule::{CronExpr, TimeZone};
pub use diff::{ConfigChange, diff};
pub use limits::PolicyLimits;
pub use load::{
    ConfigError, ConfigErrors, PolicyDocument, load_file, load_file_with_limits, parse_str,
    parse_str_with_limits,
};
pub use locate::LocationIndex;
pub use schema::{json_schema, json_schema_for};

/// The provider kind whose settings are the provider's whole map (`plugin: PATH` and `config:`)
/// rather than the value under a kind key.
pub const PLUGIN_KIND: &str = "plugin";

/// A whole policy file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Format version; only `1` exists.
    #[serde(default = "default_version")]
    pub version: u32,
    /// Named providers: each a cloud, account or region, the simulated cloud, or a plugin.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Named metrics sources other than the providers' own (e.g. a Prometheus server).
    #[serde(default)]
    pub metrics_sources: BTreeMap<String, ProviderConfig>,
    /// How the autoscaler runs.
    #[serde(default)]
    pub run: RunConfig,
    /// The groups to scale.
    #[serde(default)]
    pub groups: Vec<GroupConfig>,
    /// Pools: one service's capacity over member groups on several providers, split by price
    /// and health (see [`pool`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<pool::PoolConfig>,
    /// Routing rules: which pool a unit of work runs on (see [`crate::route`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<crate::route::RouteRule>,
    /// Alert routing (see the telemetry documentation); checked by the alerting component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub alerts: Option<serde_json::Value>,
    /// How money is reported: the currency, exchange rates, the cost ledger.
    #[serde(default)]
    pub costs: budget::CostsConfig,
    /// Budgets: what may be spent per period, on which groups, and what Hoist does when the
    /// forecast says a budget will be exceeded.
    #[serde(default)]
    pub budgets: Vec<budget::BudgetConfig>,
}

fn default_version() -> u32 {
    1
}

/// One provider: a map with exactly one kind key (`simulated`, `aws`, ...) holding that kind's
/// settings, or `plugin: PATH` with an optional `config:` map for a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProviderConfig(pub BTreeMap<String, serde_json::Value>);

impl ProviderConfig {
    /// The kind and the settings the factory of that kind receives. For plugins the settings are
    /// the whole map (`plugin` and `config`).
    pub fn kind_and_settings(&self) -> Result<(&str, serde_json::Value), String> {
        if self.0.contains_key(PLUGIN_KIND) {
            if let Some(extra) = self
                .0
                .keys()
                .find(|k| !matches!(k.as_str(), PLUGIN_KIND | "config" | "sha256"))
            {
                return Err(format!(
                    "unknown field `{extra}` in a plugin provider; a plugin provider has `plugin: PATH` and optionally `config:` and `sha256:`"
                ));
            }
            let settings = serde_json::Value::Object(
                self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            );
            return Ok((PLUGIN_KIND, settings));
        }
        let mut keys = self.0.keys();
        match (keys.next(), keys.next()) {
            (Some(kind), None) => Ok((kind.as_str(), self.0[kind].clone())),
            (None, _) => Err(
                "a provider needs its kind as its one key, e.g. `simulated: {}` or `aws: {region: eu-west-1}`"
                    .to_owned(),
            ),
            (Some(a), Some(b)) => Err(format!(
                "a provider has exactly one kind key, found `{a}` and `{b}`"
            )),
        }
    }
}

impl JsonSchema for ProviderConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Provider".into()
    }

    fn json_schema(_generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // The kinds are those of the build: [`json_schema_for`] replaces this with one branch per
        // registered provider factory, each with the factory's own settings schema.
        schemars::json_schema!({
            "description": "A provider: exactly one kind key with that kind's settings, or `plugin: PATH` with an optional `config` map.",
            "type": "object",
            "minProperties": 1
        })
    }
}

/// How `hoist run` runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Time between evaluations.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// On the simulated cloud: how much virtual time `hoist run` covers.
    #[serde(default = "default_duration")]
    pub duration: HumanDuration,
    /// Where the audit log (JSON lines, one object per decision) goes, relative to the policy
    /// file. Default: `hoist-audit.jsonl` in the working directory.
    #[serde(default)]
    pub audit_log: Option<PathBuf>,
    /// Every group is evaluated but nothing is changed.
    #[serde(default)]
    pub dry_run: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            interval: default_interval(),
            duration: default_duration(),
            audit_log: None,
            dry_run: false,
        }
    }
}

fn default_interval() -> HumanDuration {
    HumanDuration::from_secs(60)
}

fn default_duration() -> HumanDuration {
    HumanDuration::from_secs(86_400)
}

/// One scaling group and how to scale it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// The group's name (and its id on the provider unless `id` is given).
    pub name: String,
    /// The provider it lives on (a key of `providers`).
    pub provider: String,
    /// The group's id on the provider, when it differs from `name`.
    #[serde(default)]
    pub id: Option<String>,
    /// Never fewer instances than this.
    pub min: u32,
    /// Never more instances than this.
    pub max: u32,
    /// Where this group's metrics come from, and source-specific queries per signal.
    #[serde(default)]
    pub metrics: Option<GroupMetricsConfig>,
    /// The policies; several merge: scale out if any says so, scale in only if all agree.
    pub policies: Vec<PolicyConfig>,
    /// Cooldowns, protection, dry run and freshness limits.
    #[serde(default)]
    pub guards: GuardsConfig,
    /// Graceful scale-in: how long an instance chosen for removal drains (takes no new work and
    /// finishes what it has) before it is terminated, at most `2h`. Each provider maps it to its
    /// own mechanism (an EC2 Auto Scaling termination lifecycle hook, pod deletion cost and the
    /// pod's termination grace period on Kubernetes, draining instances in the simulated cloud).
    /// Default: none, instances are removed at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<HumanDuration>,
    /// Labels (`team: payments`) that budgets select groups by (`scope: {tag: ...}`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Cost per unit of work: the metric that counts the group's work.
    #[serde(default)]
    pub cost: Option<GroupCostConfig>,
    /// Vertical scaling: the instance class the group should run on, from its load and the
    /// catalog's prices, recommended or applied. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertical: Option<VerticalConfig>,
}

/// A group's vertical policy (`vertical:`): every `cooldown`, from the group's peak CPU load
/// over `lookback` (utilisation × ready instances × the class's vCPUs), the cheapest allowed
/// (class, count) that carries it at `target_utilization` is found in the catalog, across
/// families (and spot, when allowed). With a `memory_metric`, the class must also hold the
/// peak memory in use (per instance, and in all over the fleet) at
/// `memory_target_utilization`; without one, memory is not measured and a class's memory is
/// what its family's ratio gives. A move replaces the instances within `disruption`. When it saves at least `min_saving_percent` of the
/// group's cost per hour, `recommend` records it (audit log, events); `apply` also moves the
/// group to the cheapest class bought the way the group is (on demand or spot: a class change
/// keeps that) through the provider's `set_instance_class` (the provider replaces the
/// instances; the horizontal policies then size the count). A budget on its `prefer_cheaper`
/// rung or above lowers the saving worth a move to zero and lets spot be recommended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerticalConfig {
    /// `recommend` (default): record only. `apply`: move the group.
    #[serde(default)]
    pub mode: VerticalMode,
    /// CPU utilisation the recommended fleet should run at. Default 0.6.
    #[serde(default = "default_vertical_target")]
    pub target_utilization: f64,
    /// Only these families (`general`, `compute`, `memory`, ...). Default: all but burstable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub families: Option<Vec<String>>,
    /// Only these classes, by name. Default: any of the allowed families.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    /// Whether spot capacity may be recommended. Default false.
    #[serde(default)]
    pub spot: bool,
    /// The smallest saving worth a move, percent of the group's cost per hour. Default 10.
    #[serde(default = "default_vertical_saving")]
    pub min_saving_percent: f64,
    /// The window whose peak load is sized for. Default `1h`.
    #[serde(default = "default_vertical_lookback")]
    pub lookback: HumanDuration,
    /// The least time between two recommendations (and moves). Default `6h`.
    #[serde(default = "default_vertical_cooldown")]
    pub cooldown: HumanDuration,
    /// A custom metric giving the share of each instance's memory in use, 0..=1 (averaged over
    /// the group), from the group's metrics source. Default: none, memory is not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_metric: Option<String>,
    /// The share of a class's memory the peak memory in use may fill. Default 0.8.
    #[serde(default = "default_vertical_memory_target")]
    pub memory_target_utilization: f64,
    /// How fast a move may replace the group's instances.
    #[serde(default)]
    pub disruption: DisruptionConfig,
}

/// A vertical policy's disruption budget (`disruption:`): how many of the group's instances a
/// move may replace at once and per window. The provider's replacement keeps within it (see
/// each provider's notes on what it cannot honour).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DisruptionConfig {
    /// The most instances being replaced at once (from the launch of a new instance until the
    /// old one it replaces is gone). Default: 10 % of the group's desired capacity when the
    /// move starts, rounded down, at least 1.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_max_unavailable"
    )]
    pub max_unavailable: Option<u32>,
    /// The most replacements started in any `window`. Default: no such limit.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_per_window"
    )]
    pub per_window: Option<u32>,
    /// The (sliding) window `per_window` counts over, between `1m` and `2d`. Default `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<HumanDuration>,
}

/// A count of instances as written: a whole number that fits, or an error naming `field` (the
/// loader adds the file and line).
fn whole_instances<'de, D: serde::Deserializer<'de>>(
    field: &str,
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    let value = Option::<f64>::deserialize(deserializer)?;
    match value {
        None => Ok(None),
        Some(v)
            if v.is_finite() && v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v) =>
        {
            Ok(Some(v as u32))
        }
        Some(v) => Err(serde::de::Error::custom(format!(
            "`{field}` must be a whole number of instances, at least 1, got {}",
            crate::decide::number(v)
        ))),
    }
}

fn whole_max_unavailable<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    whole_instances("max_unavailable", deserializer)
}

fn whole_per_window<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    whole_instances("per_window", deserializer)
}

impl DisruptionConfig {
    /// The window when none is written.
    pub const DEFAULT_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

    /// The budget for a group of `desired` instances: the written limits, `max_unavailable`
    /// defaulting to 10 % of `desired` (rounded down, at least 1).
    pub fn budget(&self, desired: u32) -> hoist_api::DisruptionBudget {
        let budget =
            hoist_api::DisruptionBudget::new(self.max_unavailable.unwrap_or(desired / 10).max(1));
        match self.per_window {
            Some(n) => budget.with_window(n, self.window.map_or(Self::DEFAULT_WINDOW, |w| w.get())),
            None => budget,
        }
    }
}

/// What a vertical policy does with its recommendation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerticalMode {
    /// Record the recommendation only.
    #[default]
    Recommend,
    /// Move the group to the recommended class.
    Apply,
}

fn default_vertical_target() -> f64 {
    0.6
}

fn default_vertical_memory_target() -> f64 {
    0.8
}

fn default_vertical_saving() -> f64 {
    10.0
}

fn default_vertical_lookback() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(3600))
}

fn default_vertical_cooldown() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(6 * 3600))
}

/// How a group's cost per unit of work is measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupCostConfig {
    /// The metric that counts work done, as a rate per second (`request_rate`, or a custom
    /// metric the group's source gives); the cost per 1,000 units is reported from it.
    pub work_metric: String,
    /// What one unit is called in reports (`requests`, `jobs`). Default `units`.
    #[serde(default = "default_work_unit")]
    pub unit: String,
}

fn default_work_unit() -> String {
    "units".into()
}

impl GroupConfig {
    /// The group's id on its provider.
    pub fn provider_id(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.name)
    }

    /// The metrics every policy of this group reads.
    pub fn metrics_needed(&self) -> Vec<MetricKind> {
        let mut kinds: Vec<MetricKind> = self
            .policies
            .iter()
            .filter_map(|p| p.metric().cloned())
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }
}

/// The signal of a group's in-service instance count over time, which `hoist recommend` reads
/// on a real provider (a `metrics.queries` key no policy needs to read).
pub const IN_SERVICE_INSTANCES: &str = "in_service_instances";

/// Where a group's metrics come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupMetricsConfig {
    /// A key of `metrics_sources`; default: the group's provider.
    #[serde(default)]
    pub source: Option<String>,
    /// Source-specific queries by signal (`utilization`, `request_rate`, `queue_depth`,
    /// `latency_p95`, `latency_p99`, `error_rate`, [`IN_SERVICE_INSTANCES`], or the name of a
    /// custom metric the group reads: a policy's, `vertical.memory_metric` or
    /// `cost.work_metric`); `{group}` is replaced by the group's id. In YAML the keys are the
    /// signals' names.
    #[serde(default, with = "metric_queries")]
    #[schemars(with = "BTreeMap<String, String>")]
    pub queries: BTreeMap<MetricKind, String>,
}

/// The signal a name stands for in a policy file: a built-in signal (`request_rate`) or else a
/// custom metric of that name.
pub fn metric_from_name(name: &str) -> MetricKind {
    match name {
        "utilization" => MetricKind::Utilization,
        "request_rate" => MetricKind::RequestRate,
        "queue_depth" => MetricKind::QueueDepth,
        "latency_p95" => MetricKind::LatencyP95,
        "latency_p99" => MetricKind::LatencyP99,
        "error_rate" => MetricKind::ErrorRate,
        other => MetricKind::Custom(other.to_owned()),
    }
}

/// `metrics.queries`: a map keyed by signal name in YAML, by [`MetricKind`] in memory.
mod metric_queries {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use crate::model::MetricKind;

    pub(super) fn serialize<S: Serializer>(
        queries: &BTreeMap<MetricKind, String>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_map(queries.iter().map(|(metric, query)| (metric.name(), query)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<MetricKind, String>, D::Error> {
        let by_name = BTreeMap::<String, String>::deserialize(deserializer)?;
        Ok(by_name
            .into_iter()
            .map(|(name, query)| (super::metric_from_name(&name), query))
            .collect())
    }
}

/// One policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PolicyConfig {
    /// Keep a metric at a target (Kubernetes HPA semantics).
    TargetTracking(TargetTracking),
    /// Adjust by steps according to how far a metric is from bounds.
    Step(StepScaling),
    /// Add or remove a fixed number when a metric crosses upper or lower bounds.
    Threshold(Threshold),
    /// Capacity by calendar (cron with time zone).
    Scheduled(Scheduled),
    /// Capacity ahead of a forecast of the load (daily and weekly cycles learnt from history).
    Predictive(Predictive),
}

impl PolicyConfig {
    /// The policy's kind, as written in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyConfig::TargetTracking(_) => "target_tracking",
            PolicyConfig::Step(_) => "step",
            PolicyConfig::Threshold(_) => "threshold",
            PolicyConfig::Scheduled(_) => "scheduled",
            PolicyConfig::Predictive(_) => "predictive",
        }
    }

    /// The metric the policy reads, if any.
    pub fn metric(&self) -> Option<&MetricKind> {
        match self {
            PolicyConfig::TargetTracking(p) => Some(&p.metric),
            PolicyConfig::Step(p) => Some(&p.metric),
            PolicyConfig::Threshold(p) => Some(&p.metric),
            PolicyConfig::Scheduled(_) => None,
            PolicyConfig::Predictive(p) => Some(&p.metric),
        }
    }
}

/// Target tracking with Kubernetes HPA semantics: desired = ceil(current × metric / target)
/// outside a tolerance band, stabilised and rate-limited per direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetTracking {
    /// The signal.
    pub metric: MetricKind,
    /// The target: a fraction for utilisation and error rate, per instance for request rate
    /// and queue depth, seconds for latency.
    pub target: f64,
    /// How the metric relates to capacity; default by metric (see [`Aggregation`]).
    #[serde(default)]
    pub aggregation: Option<Aggregation>,
    /// No change while |metric / target − 1| ≤ tolerance.
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
    /// Scale-out behaviour.
    #[serde(default = "Behavior::default_scale_up")]
    pub scale_up: Behavior,
    /// Scale-in behaviour.
    #[serde(default = "Behavior::default_scale_down")]
    pub scale_down: Behavior,
}

fn default_tolerance() -> f64 {
    0.1
}

/// How a metric relates to capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// An average per ready instance (utilisation): desired = ceil(ready × value / target).
    Average,
    /// A total over the group (request rate, queue depth); the target is per instance:
    /// desired = ceil(value / target).
    Total,
    /// Not proportional to capacity (latency, error rate): desired = ceil(current × value / target).
    Ratio,
}

impl Aggregation {
    /// The default aggregation of a metric.
    pub fn default_for(metric: &MetricKind) -> Aggregation {
        match metric {
            MetricKind::Utilization => Aggregation::Average,
            MetricKind::RequestRate | MetricKind::QueueDepth => Aggregation::Total,
            MetricKind::LatencyP95
            | MetricKind::LatencyP99
            | MetricKind::ErrorRate
            | MetricKind::Custom(_) => Aggregation::Ratio,
        }
    }
}

/// Stabilisation and rate limits for one direction (the HPA `behavior` field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Behavior {
    /// Recommendations within this window are considered: scale out to the lowest of them,
    /// scale in to the highest.
    #[serde(default)]
    pub stabilization_window: HumanDuration,
    /// Rate limits; `select` picks which applies when several do.
    #[serde(default)]
    pub limits: Vec<RateLimit>,
    /// `max` allows the largest change of the limits, `min` the smallest, `disabled` forbids
    /// this direction.
    #[serde(default)]
    pub select: Select,
}

impl Behavior {
    fn default_scale_up() -> Behavior {
        // Kubernetes defaults: no stabilisation; max(4 pods, 100 %) per 15 s.
        Behavior {
            stabilization_window: HumanDuration::from_secs(0),
            limits: vec![
                RateLimit {
                    amount: LimitAmount::Instances(4),
                    period: HumanDuration::from_secs(15),
                },
                RateLimit {
                    amount: LimitAmount::Percent(100.0),
                    period: HumanDuration::from_secs(15),
                },
            ],
            select: Select::Max,
        }
    }

    fn default_scale_down() -> Behavior {
        // Kubernetes defaults: 300 s stabilisation; 100 % per 15 s.
        Behavior {
            stabilization_window: HumanDuration::from_secs(300),
            limits: vec![RateLimit {
                amount: LimitAmount::Percent(100.0),
                period: HumanDuration::from_secs(15),
            }],
            select: Select::Max,
        }
    }
}

/// A rate limit: at most `instances`, or `percent` of the capacity at the start of the period,
/// per `period`. Written `{instances: 4, period: 15s}` or `{percent: 100, period: 15s}`, never
/// both (several limits combine through `select`).
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    /// How much capacity may change per period.
    pub amount: LimitAmount,
    /// The period.
    pub period: HumanDuration,
}

/// How much a [`RateLimit`] lets capacity change per period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LimitAmount {
    /// Absolute change per period (`instances:`).
    Instances(u32),
    /// Change per period as a percentage of the capacity at the start of the period
    /// (`percent:`).
    Percent(f64),
}

impl Serialize for RateLimit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("RateLimit", 2)?;
        match self.amount {
            LimitAmount::Instances(n) => out.serialize_field("instances", &n)?,
            LimitAmount::Percent(p) => out.serialize_field("percent", &p)?,
        }
        out.serialize_field("period", &self.period)?;
        out.end()
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde_saphyr::Spanned;

        /// The YAML form; `RateLimit` keeps only one of the two amounts.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Written {
            #[serde(default)]
            instances: Option<Spanned<u32>>,
            #[serde(default)]
            percent: Option<Spanned<f64>>,
            period: HumanDuration,
        }

        let written = Spanned::<Written>::deserialize(deserializer)?;
        let Written {
            instances,
            percent,
            period,
        } = written.value;
        let amount = match (instances, percent) {
            (Some(n), None) => LimitAmount::Instances(n.value),
            (None, Some(p)) => LimitAmount::Percent(p.value),
            (Some(_), Some(p)) => deferred::invalid(
                p.referenced,
                "a rate limit has `instances` or `percent`, not both; to allow either, write two limits (`select` picks which applies)".to_owned(),
                LimitAmount::Instances(1),
            )?,
            (None, None) => deferred::invalid(
                written.referenced,
                "a rate limit needs `instances` or `percent` (e.g. `{percent: 100, period: 15s}`)"
                    .to_owned(),
                LimitAmount::Instances(1),
            )?,
        };
        Ok(RateLimit { amount, period })
    }
}

impl JsonSchema for RateLimit {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RateLimit".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        /// The YAML form, for the schema: one of two shapes.
        #[derive(JsonSchema)]
        #[serde(untagged, deny_unknown_fields)]
        #[allow(dead_code)]
        enum Written {
            /// At most this many instances added or removed per period.
            Instances {
                /// Absolute change per period.
                instances: u32,
                /// The period.
                period: HumanDuration,
            },
            /// At most this percentage of the capacity at the start of the period.
            Percent {
                /// Change per period as a percentage of the capacity at the start of the period.
                percent: f64,
                /// The period.
                period: HumanDuration,
            },
        }
        let mut schema = Written::json_schema(generator);
        schema.insert(
            "description".into(),
            "A rate limit: `instances` or `percent` (never both) per `period`.".into(),
        );
        schema
    }
}

/// Which rate limit applies when several do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Select {
    /// The one allowing the largest change.
    #[default]
    Max,
    /// The one allowing the smallest change.
    Min,
    /// No change in this direction.
    Disabled,
}

/// Step scaling: adjust capacity by the step the metric falls in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepScaling {
    /// The signal.
    pub metric: MetricKind,
    /// How `adjust` is read.
    #[serde(default)]
    pub adjustment: AdjustmentType,
    /// The steps; metric bounds are absolute values, `from` inclusive and `to` exclusive.
    pub steps: Vec<Step>,
}

/// How a step's `adjust` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentType {
    /// Add `adjust` instances (negative removes).
    #[default]
    Change,
    /// Add `adjust` percent of current capacity (at least one instance).
    Percent,
    /// Set capacity to `adjust`.
    Exact,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Lower bound (inclusive); none is −∞.
    #[serde(default)]
    pub from: Option<f64>,
    /// Upper bound (exclusive); none is +∞.
    #[serde(default)]
    pub to: Option<f64>,
    /// The adjustment.
    pub adjust: i64,
}

/// Threshold scaling: add when above `upper`, remove when below `lower`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// The signal.
    pub metric: MetricKind,
    /// Scale out when the metric is above this for `periods` samples.
    #[serde(default)]
    pub upper: Option<f64>,
    /// Scale in when the metric is below this for `periods` samples.
    #[serde(default)]
    pub lower: Option<f64>,
    /// Instances added on a breach of `upper`.
    #[serde(default = "one")]
    pub scale_out_by: u32,
    /// Instances removed on a breach of `lower`.
    #[serde(default = "one")]
    pub scale_in_by: u32,
    /// Consecutive samples that must breach.
    #[serde(default = "one")]
    pub periods: u32,
}

fn one() -> u32 {
    1
}

/// Scheduled capacity: from each cron occurrence, for `duration`, hold the group at or above
/// `min`, at or below `max`, or at `desired`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scheduled {
    /// Cron expression, five fields (minute hour day-of-month month day-of-week); parsed when
    /// the file is read.
    pub cron: CronExpr,
    /// IANA time zone the cron expression is read in. Default `UTC`.
    #[serde(default)]
    pub timezone: TimeZone,
    /// How long each occurrence lasts.
    pub duration: HumanDuration,
    /// Floor while active.
    #[serde(default)]
    pub min: Option<u32>,
    /// Ceiling while active.
    #[serde(default)]
    pub max: Option<u32>,
    /// Exact capacity while active.
    #[serde(default)]
    pub desired: Option<u32>,
}

/// Predictive scaling: the load of `metric` is forecast from its history (daily and weekly
/// cycles), and capacity is provisioned for the forecast load `buffer` ahead, so instances are
/// ready before the load arrives. Capacity needed at a time is the forecast load divided by
/// `target` (for utilisation the load is utilisation × ready instances, so the target is the
/// utilisation to run at). The policy only raises capacity; scale-in is left to the reactive
/// policies of the group, which it keeps from going below the forecast need. When the history is
/// shorter than `min_history`, or the forecast's recent error or a level shift says it cannot be
/// trusted, it does not vote and says it falls back to the reactive policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Predictive {
    /// The load signal forecast: `request_rate`, `queue_depth`, `utilization` or a custom total.
    pub metric: MetricKind,
    /// Load one instance should carry: per instance for request rate, queue depth and custom
    /// metrics, the utilisation to run at (0, 1] for `utilization`.
    pub target: f64,
    /// Whether the forecast is acted on or only recorded.
    #[serde(default)]
    pub mode: PredictiveMode,
    /// At most this much history is fitted on.
    #[serde(default = "default_predictive_history")]
    pub history: HumanDuration,
    /// No forecast is made before the history spans this.
    #[serde(default = "default_predictive_min_history")]
    pub min_history: HumanDuration,
    /// How far ahead the forecast reaches.
    #[serde(default = "default_predictive_horizon")]
    pub horizon: HumanDuration,
    /// The model is refitted this often; forecasts are reused in between.
    #[serde(default = "default_predictive_refresh")]
    pub refresh: HumanDuration,
    /// Capacity is provisioned for the largest forecast load from now to now + buffer; at least
    /// the boot delay, so instances are ready when the load arrives.
    #[serde(default = "default_predictive_buffer")]
    pub buffer: HumanDuration,
    /// Plan for the forecast × (1 + margin): 0.1 plans for 10 % more than forecast.
    #[serde(default)]
    pub margin: f64,
    /// Plan for the upper bound of the forecast's prediction interval at this quantile (e.g.
    /// 0.9) instead of the point forecast. The margin applies on top.
    #[serde(default)]
    pub quantile: Option<f64>,
    /// What to do when the forecast needs more than the group's max.
    #[serde(default)]
    pub max_capacity: MaxCapacity,
    /// The forecast is not used when its out-of-sample MASE over the last day is above this
    /// (and its sMAPE above 10 %: on a smooth cycle an accurate forecast can have a large MASE).
    #[serde(default = "default_fallback_mase")]
    pub fallback_mase: f64,
    /// Correct the forecast's level at every evaluation by the latest measured load: the
    /// forecast is scaled by measured ÷ forecast, a correction that fades over the following
    /// hours (half-life [`LEVEL_CORRECTION_HALF_LIFE`]), so a forecast right in shape but off in
    /// level (a holiday, growth since the last fit) plans from where the load really is. Off, the
    /// policy plans on the model's forecast alone, as AWS predictive scaling does.
    #[serde(default = "default_true")]
    pub track_level: bool,
}

/// How long a level correction of a predictive policy keeps half its weight.
pub const LEVEL_CORRECTION_HALF_LIFE: chrono::TimeDelta = chrono::TimeDelta::hours(6);

fn default_true() -> bool {
    true
}

fn default_predictive_history() -> HumanDuration {
    HumanDuration::from_secs(14 * 86_400)
}

fn default_predictive_min_history() -> HumanDuration {
    HumanDuration::from_secs(86_400)
}

fn default_predictive_horizon() -> HumanDuration {
    HumanDuration::from_secs(48 * 3_600)
}

fn default_predictive_refresh() -> HumanDuration {
    HumanDuration::from_secs(6 * 3_600)
}

fn default_predictive_buffer() -> HumanDuration {
    HumanDuration::from_secs(300)
}

fn default_fallback_mase() -> f64 {
    1.0
}

/// Whether a predictive policy acts on its forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PredictiveMode {
    /// Forecast and vote for the capacity the forecast needs.
    #[default]
    ForecastAndScale,
    /// Forecast and record it (events, decision reasons), never vote.
    ForecastOnly,
}

/// What a predictive policy does when the forecast needs more than the group's max.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaxCapacity {
    /// Never above the group's max.
    #[default]
    Honor,
    /// Up to this many percent above the group's max (still within the provider's own max).
    RaiseByPercent(f64),
}

/// Guards around every decision of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardsConfig {
    /// Wait at least this long after a scale-out before the next one.
    #[serde(default)]
    pub scale_out_cooldown: HumanDuration,
    /// Wait at least this long after any scaling before a scale-in.
    #[serde(default = "default_scale_in_cooldown")]
    pub scale_in_cooldown: HumanDuration,
    /// Never scale in.
    #[serde(default)]
    pub scale_in_protection: bool,
    /// Decide and record, never act.
    #[serde(default)]
    pub dry_run: bool,
    /// A metric sample older than this is stale and makes its policy hold.
    #[serde(default = "default_metric_max_age")]
    pub metric_max_age: HumanDuration,
    /// At most this many instances added in one decision.
    #[serde(default)]
    pub max_scale_out_step: Option<u32>,
    /// At most this many instances removed in one decision.
    #[serde(default)]
    pub max_scale_in_step: Option<u32>,
    /// The capacity a budget never holds the group under: no budget blocks a scale-out up to
    /// it, and no raised target takes the group below it. Default: `min`.
    #[serde(default)]
    pub availability_floor: Option<u32>,
}

impl Default for GuardsConfig {
    fn default() -> Self {
        GuardsConfig {
            scale_out_cooldown: HumanDuration::default(),
            scale_in_cooldown: default_scale_in_cooldown(),
            scale_in_protection: false,
            dry_run: false,
            metric_max_age: default_metric_max_age(),
            max_scale_out_step: None,
            max_scale_in_step: None,
            availability_floor: None,
        }
    }
}

fn default_scale_in_cooldown() -> HumanDuration {
    HumanDuration::from_secs(0)
}

fn default_metric_max_age() -> HumanDuration {
    HumanDuration::from_secs(300)
}
