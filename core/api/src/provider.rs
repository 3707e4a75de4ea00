//! The four provider traits and their capability declarations.
//!
//! Every trait is async, object-safe and `Send + Sync + Debug + 'static`. A provider says what it
//! can do in a `Capabilities` value and writes only those methods: every capability-gated method
//! has a default body that refuses with [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)
//! ([`Operation::unsupported`]), and the [`CapabilityLayer`](crate::layers::CapabilityLayer),
//! which the [`ProviderRegistry`](crate::registry::ProviderRegistry) puts around every provider it
//! builds, refuses an undeclared call before it reaches the provider.
//!
//! Operations whose options will grow take a `#[non_exhaustive]` request ([`RemoveInstances`],
//! [`RangeQuery`]), built with `new` and `with_*`, so adding an option breaks no provider.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::billing_rule::BillingRule;
use crate::error::{Error, Result};
use crate::model::{
    Activity, CapacityType, InstanceClass, InstanceId, MetricKind, MetricQuery, Money, Price,
    ScalingGroup, TimeRange, TimeSeries,
};
use crate::operation::Operation;

/// What a [`ScalingProvider`] supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ScalingCapabilities {
    /// `set_desired_capacity`.
    pub set_desired_capacity: bool,
    /// `remove_instances` (scale in by choosing the victims).
    pub remove_instances: bool,
    /// `set_instance_class` (vertical moves).
    pub set_instance_class: bool,
    /// `activities`.
    pub activities: bool,
}

/// A request to remove chosen instances from a group ([`ScalingProvider::remove_instances`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RemoveInstances {
    /// The instances to remove.
    pub instances: Vec<InstanceId>,
    /// Lower desired capacity by as many (otherwise the group replaces them).
    pub decrement: bool,
}

impl RemoveInstances {
    /// Remove `instances`, lowering desired capacity by as many.
    pub fn new(instances: impl Into<Vec<InstanceId>>) -> Self {
        RemoveInstances {
            instances: instances.into(),
            decrement: true,
        }
    }

    /// Whether desired capacity drops with the removal (`true` by default).
    pub fn with_decrement(mut self, decrement: bool) -> Self {
        self.decrement = decrement;
        self
    }
}

/// A request to change the instance class of a group ([`ScalingProvider::set_instance_class`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChangeInstanceClass {
    /// The class new instances get.
    pub instance_class: String,
    /// How fast existing instances may be replaced; `None`: the provider's own pace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption: Option<DisruptionBudget>,
}

impl ChangeInstanceClass {
    /// Move to `instance_class`, replacing instances at the provider's own pace.
    pub fn new(instance_class: impl Into<String>) -> Self {
        ChangeInstanceClass {
            instance_class: instance_class.into(),
            disruption: None,
        }
    }

    /// Replace the existing instances within `budget`.
    pub fn with_disruption(mut self, budget: DisruptionBudget) -> Self {
        self.disruption = Some(budget);
        self
    }
}

/// How many instances a replacement (a [`ChangeInstanceClass`]) may disrupt.
///
/// An instance is *being replaced* from the moment its replacement starts (the new instance is
/// launched, or the old one is taken out of service when the provider replaces in place) until
/// the new instance is in service and the old one is gone. At no moment are more than
/// `max_unavailable` instances being replaced, and no more than `per_window` replacements start
/// in any `window` (a sliding window). A provider that cannot honour a limit natively says in
/// its documentation what it does instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DisruptionBudget {
    /// Most instances being replaced at once, at least 1.
    pub max_unavailable: u32,
    /// Most replacements started in any `window`; `None`: no such limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_window: Option<u32>,
    /// The window `per_window` counts over.
    #[serde(default = "default_disruption_window", with = "window_seconds")]
    pub window: std::time::Duration,
}

fn default_disruption_window() -> std::time::Duration {
    std::time::Duration::from_secs(3600)
}

/// A window on the wire: whole seconds.
mod window_seconds {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
        u64::deserialize(d).map(std::time::Duration::from_secs)
    }
}

impl DisruptionBudget {
    /// At most `max_unavailable` (at least 1) instances being replaced at once, no window limit.
    pub fn new(max_unavailable: u32) -> Self {
        DisruptionBudget {
            max_unavailable: max_unavailable.max(1),
            per_window: None,
            window: default_disruption_window(),
        }
    }

    /// Also at most `per_window` (at least 1) replacements started in any `window` (at least
    /// a second).
    pub fn with_window(mut self, per_window: u32, window: std::time::Duration) -> Self {
        self.per_window = Some(per_window.max(1));
        self.window = window.max(std::time::Duration::from_secs(1));
        self
    }

    /// The most instances being replaced at once: `max_unavailable`, and `per_window` when
    /// smaller.
    pub fn batch(&self) -> u32 {
        self.per_window
            .map_or(self.max_unavailable, |w| w.min(self.max_unavailable))
            .max(1)
    }
}

impl std::fmt::Display for DisruptionBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at most {} at once", self.max_unavailable)?;
        if let Some(n) = self.per_window {
            write!(f, ", {n} per {}s", self.window.as_secs())?;
        }
        Ok(())
    }
}

/// A question to a [`MetricsSource`]: a query over a range ([`MetricsSource::query_range`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RangeQuery {
    /// What to ask for.
    pub query: MetricQuery,
    /// The period.
    pub range: TimeRange,
    /// One sample per `step_seconds`, where the source resamples.
    pub step_seconds: u32,
}

impl RangeQuery {
    /// `query` over `range` at one sample per `step_seconds`.
    pub fn new(query: MetricQuery, range: TimeRange, step_seconds: u32) -> Self {
        RangeQuery {
            query,
            range,
            step_seconds,
        }
    }
}

/// Scaling groups: list, describe, resize, remove chosen instances, change class.
///
/// A provider implements `name`, `capabilities`, `list_groups`, `describe_group`, and the
/// methods its capabilities declare; the others refuse by default.
#[async_trait]
pub trait ScalingProvider: Send + Sync + Debug + 'static {
    /// A short name for logs and errors (`sim`, `aws`, the plugin's name).
    fn name(&self) -> &str;

    /// What this provider supports.
    fn capabilities(&self) -> ScalingCapabilities;

    /// How this provider shows itself in logs: its name, or for a layer the nesting, such as
    /// `Retry(DryRun(sim))`.
    fn describe(&self) -> String {
        self.name().to_owned()
    }

    /// Every group this provider manages.
    async fn list_groups(&self) -> Result<Vec<ScalingGroup>>;

    /// One group with its instances.
    async fn describe_group(&self, group: &str) -> Result<ScalingGroup>;

    /// Ask for `desired` instances. Fails with [`crate::ErrorKind::InvalidInput`] outside
    /// `[min_size, max_size]` ([`crate::checks::desired_within_bounds`]). Capability
    /// `set_desired_capacity`.
    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<()> {
        let _ = (group, desired);
        Err(Operation::SetDesiredCapacity.unsupported(self.name()))
    }

    /// Remove the chosen instances; with `request.decrement`, lower desired capacity by as
    /// many. Capability `remove_instances`.
    async fn remove_instances(&self, group: &str, request: &RemoveInstances) -> Result<()> {
        let _ = (group, request);
        Err(Operation::RemoveInstances.unsupported(self.name()))
    }

    /// Change the instance class new instances get (the vertical move); returns the activity
    /// that replaces existing instances, when the provider starts one. The replacement keeps
    /// within `request.disruption` when one is given (a provider that cannot honour it exactly
    /// documents what it does). Capability `set_instance_class`.
    async fn set_instance_class(
        &self,
        group: &str,
        request: &ChangeInstanceClass,
    ) -> Result<Option<Activity>> {
        let _ = (group, request);
        Err(Operation::SetInstanceClass.unsupported(self.name()))
    }

    /// Recent and in-flight activities on the group. Capability `activities`.
    async fn activities(&self, group: &str) -> Result<Vec<Activity>> {
        let _ = group;
        Err(Operation::Activities.unsupported(self.name()))
    }
}

/// What an [`InstanceCatalog`] supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CatalogCapabilities {
    /// Offerings carry spot prices.
    pub spot_prices: bool,
    /// Prices can be refreshed from a live source.
    pub live_prices: bool,
}

/// The instance classes a provider offers, with offerings and prices.
#[async_trait]
pub trait InstanceCatalog: Send + Sync + Debug + 'static {
    /// What this catalog supports.
    fn capabilities(&self) -> CatalogCapabilities;

    /// How this value shows itself in logs: its type's name, or for a layer the nesting, such
    /// as `Retry(SimCatalog)`.
    fn describe(&self) -> String {
        short_type_name::<Self>().to_owned()
    }

    /// Every class on offer.
    async fn instance_classes(&self) -> Result<Vec<InstanceClass>>;

    /// One class by name.
    async fn instance_class(&self, name: &str) -> Result<InstanceClass> {
        self.instance_classes()
            .await?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::not_found(format!("instance class {name}")))
    }
}

/// Granularity of a cost report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostGranularity {
    /// One row per hour.
    Hourly,
    /// One row per day.
    Daily,
    /// One row per month.
    Monthly,
}

/// A question to a [`BillingProvider`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostQuery {
    /// The period.
    pub range: TimeRange,
    /// Row size.
    pub granularity: CostGranularity,
    /// Group rows by this dimension (`service`, `group`, or `tag:KEY`); none for totals.
    pub group_by: Option<String>,
}

/// One row of a cost report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostEntry {
    /// Period start.
    pub start: DateTime<Utc>,
    /// Period end.
    pub end: DateTime<Utc>,
    /// The group-by key, when grouped.
    pub key: Option<String>,
    /// Cost in the period.
    pub amount: Money,
    /// Whether it is an estimate (a forecast) rather than a bill.
    pub estimated: bool,
}

/// What a [`BillingProvider`] supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BillingCapabilities {
    /// `cost` works.
    pub actual_cost: bool,
    /// `forecast` works.
    pub forecast: bool,
    /// `price` works.
    pub prices: bool,
}

/// Actual cost, cost forecasts and the prices behind the catalog.
#[async_trait]
pub trait BillingProvider: Send + Sync + Debug + 'static {
    /// What this provider supports.
    fn capabilities(&self) -> BillingCapabilities;

    /// How this value shows itself in logs: its type's name, or for a layer the nesting, such
    /// as `Retry(SimCatalog)`.
    fn describe(&self) -> String {
        short_type_name::<Self>().to_owned()
    }

    /// Actual cost for a period. Capability `actual_cost`.
    async fn cost(&self, query: &CostQuery) -> Result<Vec<CostEntry>> {
        let _ = query;
        Err(Operation::Cost.unsupported(&self.describe()))
    }

    /// Forecast cost for a future period. Capability `forecast`.
    async fn forecast(&self, query: &CostQuery) -> Result<Vec<CostEntry>> {
        let _ = query;
        Err(Operation::Forecast.unsupported(&self.describe()))
    }

    /// The price of one instance of `instance_class` in `zone`. Capability `prices`.
    async fn price(
        &self,
        instance_class: &str,
        zone: &str,
        capacity_type: CapacityType,
    ) -> Result<Price> {
        let _ = (instance_class, zone, capacity_type);
        Err(Operation::Price.unsupported(&self.describe()))
    }
}

/// What a [`MetricsSource`] supports.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MetricsCapabilities {
    /// The built-in signals it can answer without an expression.
    pub builtin: Vec<MetricKind>,
    /// Whether it accepts source-specific expressions (PromQL, metric specs).
    pub expressions: bool,
}

/// Time series for a query over a range.
#[async_trait]
pub trait MetricsSource: Send + Sync + Debug + 'static {
    /// What this source supports.
    fn capabilities(&self) -> MetricsCapabilities;

    /// How this value shows itself in logs: its type's name, or for a layer the nesting, such
    /// as `Retry(SimCatalog)`.
    fn describe(&self) -> String {
        short_type_name::<Self>().to_owned()
    }

    /// Samples of `request.query` in `request.range`, one per `request.step_seconds` where the
    /// source resamples.
    async fn query_range(&self, request: &RangeQuery) -> Result<Vec<TimeSeries>>;
}

/// The last path segment of a type's name (`SimCatalog` for `hoist_api::sim::SimCatalog`),
/// keeping generic arguments whole.
fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let head = full.split('<').next().unwrap_or(full);
    let start = head.rfind("::").map_or(0, |i| i + 2);
    &full[start..]
}

/// One named provider as the engine sees it: whichever of the four traits it offers (a cloud
/// offers all four; a metrics source such as Prometheus only metrics).
#[derive(Debug, Clone)]
pub struct ProviderSet {
    /// Name in the policy file.
    pub name: String,
    /// Scaling groups, when offered.
    pub scaling: Option<Arc<dyn ScalingProvider>>,
    /// Instance classes, when offered.
    pub catalog: Option<Arc<dyn InstanceCatalog>>,
    /// Billing, when offered.
    pub billing: Option<Arc<dyn BillingProvider>>,
    /// Metrics, when offered.
    pub metrics: Option<Arc<dyn MetricsSource>>,
    /// How the provider bills an instance's life (the cost meter charges by it). Default per
    /// second with a one-minute minimum.
    pub billing_rule: BillingRule,
}

impl ProviderSet {
    /// A set named `name` offering nothing yet; add traits with the `with_*` methods.
    pub fn new(name: impl Into<String>) -> Self {
        ProviderSet {
            name: name.into(),
            scaling: None,
            catalog: None,
            billing: None,
            metrics: None,
            billing_rule: BillingRule::default(),
        }
    }

    /// With the provider's billing rule.
    pub fn with_billing_rule(mut self, rule: BillingRule) -> Self {
        self.billing_rule = rule;
        self
    }

    /// With scaling groups.
    pub fn with_scaling(mut self, scaling: Arc<dyn ScalingProvider>) -> Self {
        self.scaling = Some(scaling);
        self
    }

    /// With an instance catalog.
    pub fn with_catalog(mut self, catalog: Arc<dyn InstanceCatalog>) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// With billing.
    pub fn with_billing(mut self, billing: Arc<dyn BillingProvider>) -> Self {
        self.billing = Some(billing);
        self
    }

    /// With metrics.
    pub fn with_metrics(mut self, metrics: Arc<dyn MetricsSource>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The scaling provider, or an [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)
    /// error naming the provider when it offers no scaling groups.
    pub fn scaling_provider(&self) -> Result<&Arc<dyn ScalingProvider>> {
        self.scaling.as_ref().ok_or_else(|| {
            Error::unsupported(format!(
                "provider `{}` offers no scaling groups (it is a metrics, catalog or billing source)",
                self.name
            ))
            .with_provider(&self.name)
        })
    }
}
