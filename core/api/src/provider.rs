//! The four provider traits and their capability declarations.
//!
//! Every trait is async, object-safe and `Send + Sync + Debug + 'static`. A provider says what it
//! can do in a `Capabilities` value instead of stubbing what it cannot; callers check it before
//! they ask.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{
    Activity, CapacityType, InstanceClass, InstanceId, MetricKind, MetricQuery, Money, Price,
    ScalingGroup, TimeRange, TimeSeries,
};

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

/// Scaling groups: list, describe, resize, remove chosen instances, change class.
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
    /// `[min_size, max_size]`.
    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<()>;

    /// Remove the chosen instances; with `decrement`, lower desired capacity by as many.
    async fn remove_instances(
        &self,
        group: &str,
        instances: &[InstanceId],
        decrement: bool,
    ) -> Result<()>;

    /// Change the instance class new instances get (the vertical move); returns the activity
    /// that replaces existing instances, when the provider starts one.
    async fn set_instance_class(
        &self,
        group: &str,
        instance_class: &str,
    ) -> Result<Option<Activity>>;

    /// Recent and in-flight activities on the group.
    async fn activities(&self, group: &str) -> Result<Vec<Activity>>;
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

    /// Actual cost for a period.
    async fn cost(&self, query: &CostQuery) -> Result<Vec<CostEntry>>;

    /// Forecast cost for a future period.
    async fn forecast(&self, query: &CostQuery) -> Result<Vec<CostEntry>>;

    /// The price of one instance of `instance_class` in `zone`.
    async fn price(
        &self,
        instance_class: &str,
        zone: &str,
        capacity_type: CapacityType,
    ) -> Result<Price>;
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

    /// Samples of `query` in `range`, one per `step_seconds` where the source resamples.
    async fn query_range(
        &self,
        query: &MetricQuery,
        range: TimeRange,
        step_seconds: u32,
    ) -> Result<Vec<TimeSeries>>;
}

/// The last path segment of a type's name (`SimCatalog` for `hoist_api::sim::SimCatalog`),
/// keeping generic arguments whole.
fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let head = full.split('<').next().unwrap_or(full);
    let start = head.rfind("::").map_or(0, |i| i + 2);
    &full[start..]
}

/// One named provider as the engine sees it: a scaling provider and whichever of the other
/// three it offers.
#[derive(Debug, Clone)]
pub struct ProviderSet {
    /// Name in the policy file.
    pub name: String,
    /// Scaling groups.
    pub scaling: Arc<dyn ScalingProvider>,
    /// Instance classes, when offered.
    pub catalog: Option<Arc<dyn InstanceCatalog>>,
    /// Billing, when offered.
    pub billing: Option<Arc<dyn BillingProvider>>,
    /// Metrics, when offered.
    pub metrics: Option<Arc<dyn MetricsSource>>,
}
