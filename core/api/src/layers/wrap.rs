//! The one wrapper behind every call-around layer (retry, timeout, circuit breaker, metrics,
//! fault injection): [`Layered`] forwards every method of the four provider traits through an
//! [`Intercept`], which decides what happens around each call.

use std::fmt::{self, Debug};
use std::sync::Arc;

use async_trait::async_trait;

use super::{BoxFuture, Operation};
use crate::error::Result;
use crate::model::{Activity, CapacityType, InstanceClass, Price, ScalingGroup, TimeSeries};
use crate::provider::{
    BillingCapabilities, BillingProvider, CatalogCapabilities, ChangeInstanceClass, CostEntry,
    CostQuery, InstanceCatalog, MetricsCapabilities, MetricsSource, RangeQuery, RemoveInstances,
    ScalingCapabilities, ScalingProvider,
};

/// What an [`Intercept`] learns about the call it wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call<'a> {
    /// The provider's name, for events and errors.
    pub provider: &'a str,
    /// The method being called.
    pub operation: Operation,
}

/// Behaviour around one provider call. Implement it to write a new call-around layer; wrap a
/// provider with [`Layered`].
pub trait Intercept: Debug + Send + Sync + 'static {
    /// The name shown in the nesting, such as `Retry`.
    fn label(&self) -> &'static str;

    /// Runs the call. `attempt` starts one fresh attempt of the inner call each time it is
    /// invoked (a retry invokes it again; most layers invoke it once).
    fn around<'a, T, F>(&'a self, call: Call<'a>, attempt: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> BoxFuture<'a, Result<T>> + Send + 'a;
}

/// A provider wrapped in an [`Intercept`]; implements whichever of the four traits the inner
/// value implements.
pub struct Layered<I, P: ?Sized> {
    layer: I,
    inner: Arc<P>,
    provider: String,
    label: String,
}

impl<I: Intercept, P: ?Sized> Layered<I, P> {
    /// Wraps a scaling provider; events and errors use its [`ScalingProvider::name`].
    pub fn scaling(layer: I, inner: Arc<P>) -> Self
    where
        P: ScalingProvider,
    {
        let label = format!("{}({})", layer.label(), inner.describe());
        let provider = inner.name().to_owned();
        Layered {
            layer,
            inner,
            provider,
            label,
        }
    }

    /// Wraps an instance catalog of provider `provider`.
    pub fn catalog(layer: I, provider: &str, inner: Arc<P>) -> Self
    where
        P: InstanceCatalog,
    {
        let label = format!("{}({})", layer.label(), inner.describe());
        Layered {
            layer,
            inner,
            provider: provider.to_owned(),
            label,
        }
    }

    /// Wraps a billing provider of provider `provider`.
    pub fn billing(layer: I, provider: &str, inner: Arc<P>) -> Self
    where
        P: BillingProvider,
    {
        let label = format!("{}({})", layer.label(), inner.describe());
        Layered {
            layer,
            inner,
            provider: provider.to_owned(),
            label,
        }
    }

    /// Wraps a metrics source of provider `provider`.
    pub fn metrics(layer: I, provider: &str, inner: Arc<P>) -> Self
    where
        P: MetricsSource,
    {
        let label = format!("{}({})", layer.label(), inner.describe());
        Layered {
            layer,
            inner,
            provider: provider.to_owned(),
            label,
        }
    }

    /// The wrapped value.
    pub fn inner(&self) -> &Arc<P> {
        &self.inner
    }

    /// The layer's behaviour.
    pub fn layer(&self) -> &I {
        &self.layer
    }

    fn call(&self, operation: Operation) -> Call<'_> {
        Call {
            provider: &self.provider,
            operation,
        }
    }
}

impl<I: Intercept, P: ?Sized + Debug> Debug for Layered<I, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(self.layer.label())
            .field("layer", &self.layer)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<I, P: ?Sized> fmt::Display for Layered<I, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<I: Intercept, P: ScalingProvider + ?Sized> ScalingProvider for Layered<I, P> {
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
        let inner = &self.inner;
        self.layer
            .around(self.call(Operation::SetDesiredCapacity), move || {
                inner.set_desired_capacity(group, desired)
            })
            .await
    }

    async fn remove_instances(&self, group: &str, request: &RemoveInstances) -> Result<()> {
        let inner = &self.inner;
        self.layer
            .around(self.call(Operation::RemoveInstances), move || {
                inner.remove_instances(group, request)
            })
            .await
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

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<I: Intercept, P: InstanceCatalog + ?Sized> InstanceCatalog for Layered<I, P> {
    fn capabilities(&self) -> CatalogCapabilities {
        self.inner.capabilities()
    }

    fn describe(&self) -> String {
        self.label.clone()
    }

    async fn instance_classes(&self) -> Result<Vec<InstanceClass>> {
        let inner = &self.inner;
        self.layer
            .around(self.call(Operation::InstanceClasses), move || {
                inner.instance_classes()
            })
            .await
    }

    async fn instance_class(&self, name: &str) -> Result<InstanceClass> {
        let inner = &self.inner;
        self.layer
            .around(self.call(Operation::InstanceClass), move || {
                inner.instance_class(name)
            })
            .await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<I: Intercept, P: BillingProvider + ?Sized> BillingProvider for Layered<I, P> {
    fn capabilities(&self) -> BillingCapabilities {
        self.inner.capabilities()
    }

    fn describe(&self) -> String {
        self.label.clone()
    }

    async fn cost(&self, query: &CostQuery) -> Result<Vec<CostEntry>> {
        let inner = &self.inner;
        self.layer
            .around(self.call(Operation::Cost), move || inner.cost(query))
            .await
    }

    async fn forecast(&self, query: &CostQuery) -> Result<Vec<CostEntry>> {
        let inner = &self.inner;
        self.layer
            .around(self.call(Operation::Forecast), move || {
                inner.forecast(query)
            })
            .await
    }

    async fn price(
        &self,
        instance_class: &str,
        zone: &str,
        capacity_type: CapacityType,
    ) -> Result<Price> {
        let inner = &self.inner;
        self.layer
            .around(self.call(Operation::Price), move || {
                inner.price(instance_class, zone, capacity_type)
            })
            .await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<I: Intercept, P: MetricsSource + ?Sized> MetricsSource for Layered<I, P> {
    fn capabilities(&self) -> MetricsCapabilities {
        self.inner.capabilities()
    }

    fn describe(&self) -> String {
        self.label.clone()
    }

    async fn query_range(&self, request: &RangeQuery) -> Result<Vec<TimeSeries>> {
        let inner = &self.inner;
        self.layer
            .around(self.call(Operation::QueryRange), move || {
                inner.query_range(request)
            })
            .await
    }
}
