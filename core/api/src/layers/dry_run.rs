//! Dry run: reads pass through to the provider; writes are validated as far as the provider's
//! own reads allow, recorded in an inspectable log, and never applied.
//!
//! Validation mirrors what the provider would refuse, with the same error kinds:
//! an operation the provider declares it cannot do fails with [`ErrorKind::Unsupported`]; an
//! unknown group with [`ErrorKind::NotFound`] (from `describe_group`); a desired capacity
//! outside `[min_size, max_size]`, or a decrementing removal that would go below `min_size`,
//! with [`ErrorKind::InvalidInput`]; an instance that is not in the group with
//! [`ErrorKind::NotFound`]; and, when the layer wraps a whole [`ProviderSet`] with a catalog, an
//! instance class the catalog does not know with [`ErrorKind::NotFound`].
//!
//! Because nothing is applied, later reads show the group unchanged.

use std::fmt::{self, Debug};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Layer, Operation};
use crate::checks;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{
    Activity, CapacityType, GroupId, InstanceClass, InstanceId, Price, ScalingGroup, TimeSeries,
};
use crate::provider::{
    BillingCapabilities, BillingProvider, CatalogCapabilities, ChangeInstanceClass, CostEntry,
    CostQuery, DisruptionBudget, InstanceCatalog, MetricsCapabilities, MetricsSource, ProviderSet,
    RangeQuery, RemoveInstances, ScalingCapabilities, ScalingProvider,
};

/// A write the dry run refused to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum WriteRequest {
    /// `set_desired_capacity`.
    SetDesiredCapacity {
        /// Asked for.
        desired: u32,
        /// The group's desired capacity when asked.
        previous: u32,
    },
    /// `remove_instances`.
    RemoveInstances {
        /// The chosen instances.
        instances: Vec<InstanceId>,
        /// Whether desired capacity would drop by as many.
        decrement: bool,
    },
    /// `set_instance_class`.
    SetInstanceClass {
        /// Asked for.
        instance_class: String,
        /// The group's class when asked.
        previous: String,
        /// The disruption budget the replacement would have kept within, when given.
        #[serde(skip_serializing_if = "Option::is_none")]
        disruption: Option<DisruptionBudget>,
    },
}

impl WriteRequest {
    /// The provider method the write would have called.
    pub fn operation(&self) -> Operation {
        match self {
            WriteRequest::SetDesiredCapacity { .. } => Operation::SetDesiredCapacity,
            WriteRequest::RemoveInstances { .. } => Operation::RemoveInstances,
            WriteRequest::SetInstanceClass { .. } => Operation::SetInstanceClass,
        }
    }
}

/// One recorded write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedWrite {
    /// When it was asked for (by the layer's clock).
    pub at: DateTime<Utc>,
    /// Provider name.
    pub provider: String,
    /// The group.
    pub group: GroupId,
    /// What would have been done.
    #[serde(flatten)]
    pub request: WriteRequest,
}

/// Records writes instead of applying them; see the [module docs](self). Clones share the log.
#[derive(Debug, Clone)]
pub struct DryRunLayer {
    log: Arc<Mutex<Vec<RecordedWrite>>>,
    clock: Arc<dyn Clock>,
}

impl Default for DryRunLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl DryRunLayer {
    /// An empty log, timestamped by the wall clock.
    pub fn new() -> Self {
        DryRunLayer {
            log: Arc::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Timestamps records with `clock` (the simulated cloud's virtual clock, say).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Every write recorded so far, oldest first.
    pub fn records(&self) -> Vec<RecordedWrite> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every write recorded so far, emptying the log.
    pub fn take_records(&self) -> Vec<RecordedWrite> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Wraps a scaling provider; with `catalog`, instance classes are checked against it.
    pub fn wrap_scaling<P: ScalingProvider + ?Sized>(
        &self,
        inner: Arc<P>,
        catalog: Option<Arc<dyn InstanceCatalog>>,
    ) -> DryRun<P> {
        DryRun {
            label: format!("DryRun({})", inner.describe()),
            provider: inner.name().to_owned(),
            inner,
            catalog,
            layer: self.clone(),
        }
    }

    fn wrap_other<P: ?Sized>(
        &self,
        provider: &str,
        inner: Arc<P>,
        inner_label: String,
    ) -> DryRun<P> {
        DryRun {
            label: format!("DryRun({inner_label})"),
            provider: provider.to_owned(),
            inner,
            catalog: None,
            layer: self.clone(),
        }
    }
}

impl Layer for DryRunLayer {
    fn layer_scaling(&self, inner: Arc<dyn ScalingProvider>) -> Arc<dyn ScalingProvider> {
        Arc::new(self.wrap_scaling(inner, None))
    }

    fn layer_catalog(
        &self,
        provider: &str,
        inner: Arc<dyn InstanceCatalog>,
    ) -> Arc<dyn InstanceCatalog> {
        let label = inner.describe();
        Arc::new(self.wrap_other(provider, inner, label))
    }

    fn layer_billing(
        &self,
        provider: &str,
        inner: Arc<dyn BillingProvider>,
    ) -> Arc<dyn BillingProvider> {
        let label = inner.describe();
        Arc::new(self.wrap_other(provider, inner, label))
    }

    fn layer_metrics(
        &self,
        provider: &str,
        inner: Arc<dyn MetricsSource>,
    ) -> Arc<dyn MetricsSource> {
        let label = inner.describe();
        Arc::new(self.wrap_other(provider, inner, label))
    }

    fn layer_set(&self, set: &ProviderSet) -> ProviderSet {
        let name = set
            .scaling
            .as_ref()
            .map_or_else(|| set.name.clone(), |s| s.name().to_owned());
        ProviderSet {
            name: set.name.clone(),
            scaling: set.scaling.clone().map(|s| {
                Arc::new(self.wrap_scaling(s, set.catalog.clone())) as Arc<dyn ScalingProvider>
            }),
            catalog: set.catalog.clone().map(|c| self.layer_catalog(&name, c)),
            billing: set.billing.clone().map(|b| self.layer_billing(&name, b)),
            metrics: set.metrics.clone().map(|m| self.layer_metrics(&name, m)),
            billing_rule: set.billing_rule,
        }
    }
}

/// A provider whose writes are recorded, not applied.
pub struct DryRun<P: ?Sized> {
    inner: Arc<P>,
    catalog: Option<Arc<dyn InstanceCatalog>>,
    provider: String,
    label: String,
    layer: DryRunLayer,
}

impl<P: ?Sized> DryRun<P> {
    /// The wrapped value.
    pub fn inner(&self) -> &Arc<P> {
        &self.inner
    }

    /// The layer holding the log.
    pub fn layer(&self) -> &DryRunLayer {
        &self.layer
    }

    fn error(&self, kind: ErrorKind, operation: Operation, message: String) -> Error {
        Error::new(kind, message)
            .with_provider(self.provider.clone())
            .with_operation(operation.as_str())
    }

    fn located(&self, error: Error, operation: Operation) -> Error {
        error
            .with_provider(self.provider.clone())
            .with_operation(operation.as_str())
    }

    fn record(&self, group: &str, request: WriteRequest) {
        let record = RecordedWrite {
            at: self.layer.clock.now(),
            provider: self.provider.clone(),
            group: group.to_owned(),
            request,
        };
        tracing::info!(
            provider = %record.provider,
            group = %record.group,
            request = ?record.request,
            "dry run: write recorded, not applied"
        );
        self.layer
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(record);
    }
}

impl<P: ?Sized + Debug> Debug for DryRun<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DryRun")
            .field("inner", &self.inner)
            .field("catalog", &self.catalog.is_some())
            .finish()
    }
}

impl<P: ?Sized> fmt::Display for DryRun<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<P: ScalingProvider + ?Sized> ScalingProvider for DryRun<P> {
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
        self.inner.list_groups().await
    }

    async fn describe_group(&self, group: &str) -> Result<ScalingGroup> {
        self.inner.describe_group(group).await
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<()> {
        let operation = Operation::SetDesiredCapacity;
        if !self.inner.capabilities().set_desired_capacity {
            return Err(operation.unsupported(&self.provider));
        }
        let current = self.inner.describe_group(group).await?;
        checks::desired_within_bounds(group, desired, current.min_size, current.max_size)
            .map_err(|e| self.located(e, operation))?;
        self.record(
            group,
            WriteRequest::SetDesiredCapacity {
                desired,
                previous: current.desired_capacity,
            },
        );
        Ok(())
    }

    async fn remove_instances(&self, group: &str, request: &RemoveInstances) -> Result<()> {
        let operation = Operation::RemoveInstances;
        if !self.inner.capabilities().remove_instances {
            return Err(operation.unsupported(&self.provider));
        }
        let current = self.inner.describe_group(group).await?;
        checks::instances_in_group(&current, &request.instances)
            .map_err(|e| self.located(e, operation))?;
        let count = u32::try_from(request.instances.len()).unwrap_or(u32::MAX);
        if request.decrement {
            checks::removal_within_bounds(group, count, current.desired_capacity, current.min_size)
                .map_err(|e| self.located(e, operation))?;
        }
        self.record(
            group,
            WriteRequest::RemoveInstances {
                instances: request.instances.clone(),
                decrement: request.decrement,
            },
        );
        Ok(())
    }

    async fn set_instance_class(
        &self,
        group: &str,
        request: &ChangeInstanceClass,
    ) -> Result<Option<Activity>> {
        let instance_class = request.instance_class.as_str();
        let operation = Operation::SetInstanceClass;
        if !self.inner.capabilities().set_instance_class {
            return Err(self.error(
                ErrorKind::Unsupported,
                operation,
                "the provider does not support set_instance_class".to_owned(),
            ));
        }
        let current = self.inner.describe_group(group).await?;
        if let Some(catalog) = &self.catalog {
            catalog.instance_class(instance_class).await?;
        }
        self.record(
            group,
            WriteRequest::SetInstanceClass {
                instance_class: instance_class.to_owned(),
                previous: current.instance_class,
                disruption: request.disruption,
            },
        );
        Ok(None)
    }

    async fn activities(&self, group: &str) -> Result<Vec<Activity>> {
        self.inner.activities(group).await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<P: InstanceCatalog + ?Sized> InstanceCatalog for DryRun<P> {
    fn capabilities(&self) -> CatalogCapabilities {
        self.inner.capabilities()
    }

    fn describe(&self) -> String {
        self.label.clone()
    }

    async fn instance_classes(&self) -> Result<Vec<InstanceClass>> {
        self.inner.instance_classes().await
    }

    async fn instance_class(&self, name: &str) -> Result<InstanceClass> {
        self.inner.instance_class(name).await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<P: BillingProvider + ?Sized> BillingProvider for DryRun<P> {
    fn capabilities(&self) -> BillingCapabilities {
        self.inner.capabilities()
    }

    fn describe(&self) -> String {
        self.label.clone()
    }

    async fn cost(&self, query: &CostQuery) -> Result<Vec<CostEntry>> {
        self.inner.cost(query).await
    }

    async fn forecast(&self, query: &CostQuery) -> Result<Vec<CostEntry>> {
        self.inner.forecast(query).await
    }

    async fn price(
        &self,
        instance_class: &str,
        zone: &str,
        capacity_type: CapacityType,
    ) -> Result<Price> {
        self.inner.price(instance_class, zone, capacity_type).await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<P: MetricsSource + ?Sized> MetricsSource for DryRun<P> {
    fn capabilities(&self) -> MetricsCapabilities {
        self.inner.capabilities()
    }

    fn describe(&self) -> String {
        self.label.clone()
    }

    async fn query_range(&self, request: &RangeQuery) -> Result<Vec<TimeSeries>> {
        self.inner.query_range(request).await
    }
}
