//! Layers: cross-cutting behaviour around any provider, each a value that wraps a provider and
//! is itself a provider.
//!
//! | Layer | Wrapped value | What it does |
//! |---|---|---|
//! | [`CapabilityLayer`] | `Checked(..)` | refuses calls the provider's capabilities do not declare, before they reach it |
//! | [`RetryLayer`] | `Retry(..)` | retries retryable errors with capped exponential backoff and full jitter |
//! | [`CircuitBreakerLayer`] | `CircuitBreaker(..)` | after consecutive failures, refuses calls for a cool-down, then lets one probe through |
//! | [`TimeoutLayer`] | `Timeout(..)` | bounds every call's duration |
//! | [`MetricsLayer`] | `Metrics(..)` | emits [`ProviderEvent::ProviderCall`](crate::events::ProviderEvent::ProviderCall) with the operation, error kind and duration |
//! | [`DryRunLayer`] | `DryRun(..)` | reads pass through; writes are validated and recorded, never applied |
//! | [`FaultLayer`] | `Fault(..)` | injects errors, partial writes, hangs, latency and corrupted metrics, by seed and rate or by script (for tests) |
//!
//! Every layer implements all four provider traits and forwards every method, including the
//! ones with default bodies, so wrapping never silently skips a provider's own implementation.
//! Capabilities and [`ScalingProvider::name`] pass through unchanged;
//! [`ScalingProvider::describe`] (and `Display`) show the nesting, such as `Retry(DryRun(sim))`.
//!
//! A [`Layer`] wraps one trait object at a time, or a whole [`ProviderSet`] with
//! [`ProviderSet::with_layer`]. The layer added last is the outermost. [`LayerStack`] applies
//! the layers you give it in the recommended order below.
//!
//! # Composition order
//!
//! Listed from the outside in, the order we recommend is
//!
//! ```text
//! DryRun( Retry( CircuitBreaker( Metrics( Timeout( provider ) ) ) ) )
//! ```
//!
//! - **DryRun** outermost, so a recorded write never reaches the retry machinery or the cloud,
//!   while its validation reads still enjoy retries.
//! - **Retry** outside the breaker: an open circuit answers at once with a non-retryable error,
//!   so retries stop instead of hammering a provider that is down.
//! - **CircuitBreaker** outside metrics and timeout, so timeouts count as failures and every
//!   real attempt is timed.
//! - **Metrics** around the timeout: one `ProviderCall` event per attempt, timeouts included.
//! - **Timeout** innermost, bounding each attempt rather than the whole retried call.
//! - In tests, **Fault** goes directly around the provider (`Retry(Fault(sim))`), standing in
//!   for the cloud misbehaving.
//!
//! ```
//! use std::time::Duration;
//! use hoist_api::layers::{CircuitBreakerLayer, MetricsLayer, RetryLayer, TimeoutLayer};
//! # fn wrap(set: hoist_api::ProviderSet) -> hoist_api::ProviderSet {
//! set.with_layer(&TimeoutLayer::new(Duration::from_secs(10)))
//!     .with_layer(&MetricsLayer::new(std::sync::Arc::new(hoist_api::events::NoProviderEvents)))
//!     .with_layer(&CircuitBreakerLayer::new())
//!     .with_layer(&RetryLayer::new())
//! # }
//! ```

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::provider::{
    BillingProvider, InstanceCatalog, MetricsSource, ProviderSet, ScalingProvider,
};

pub mod capability;
pub mod circuit;
pub mod dry_run;
pub mod fault;
pub mod metrics;
pub mod retry;
pub mod rng;
pub mod stack;
pub mod timeout;
pub mod wrap;

pub use capability::CapabilityLayer;
pub use circuit::{CircuitBreaker, CircuitBreakerLayer, CircuitState};
pub use dry_run::{DryRun, DryRunLayer, RecordedWrite, WriteRequest};
pub use fault::{Corruption, FaultKind, FaultLayer, InjectedFault, Operations};
pub use metrics::MetricsLayer;
pub use retry::{Jitter, RetryLayer};
pub use rng::SplitMix64;
pub use stack::LayerStack;
pub use timeout::TimeoutLayer;
pub use wrap::{Call, Intercept, Layered};

pub use crate::operation::Operation;

/// A boxed, sendable future, the shape `async-trait` methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Wraps providers in one behaviour. Each method takes a trait object and returns the wrapped
/// trait object; `provider` is the provider's name for events and errors (the scaling
/// provider's [`ScalingProvider::name`] is used for the scaling trait).
pub trait Layer: Debug + Send + Sync {
    /// Wraps a scaling provider.
    fn layer_scaling(&self, inner: Arc<dyn ScalingProvider>) -> Arc<dyn ScalingProvider>;

    /// Wraps an instance catalog.
    fn layer_catalog(
        &self,
        provider: &str,
        inner: Arc<dyn InstanceCatalog>,
    ) -> Arc<dyn InstanceCatalog>;

    /// Wraps a billing provider.
    fn layer_billing(
        &self,
        provider: &str,
        inner: Arc<dyn BillingProvider>,
    ) -> Arc<dyn BillingProvider>;

    /// Wraps a metrics source.
    fn layer_metrics(
        &self,
        provider: &str,
        inner: Arc<dyn MetricsSource>,
    ) -> Arc<dyn MetricsSource>;

    /// Wraps every trait of a provider set. Layers that need to see several traits at once
    /// (dry run validates classes against the catalog) override this.
    fn layer_set(&self, set: &ProviderSet) -> ProviderSet {
        let name = set
            .scaling
            .as_ref()
            .map_or_else(|| set.name.clone(), |s| s.name().to_owned());
        ProviderSet {
            name: set.name.clone(),
            scaling: set.scaling.clone().map(|s| self.layer_scaling(s)),
            catalog: set.catalog.clone().map(|c| self.layer_catalog(&name, c)),
            billing: set.billing.clone().map(|b| self.layer_billing(&name, b)),
            metrics: set.metrics.clone().map(|m| self.layer_metrics(&name, m)),
            billing_rule: set.billing_rule,
        }
    }
}

impl ProviderSet {
    /// This set with every trait wrapped in `layer` (the new layer becomes the outermost).
    pub fn with_layer(self, layer: &dyn Layer) -> ProviderSet {
        layer.layer_set(&self)
    }

    /// How the set shows itself in logs: the scaling provider's nesting, such as
    /// `Retry(DryRun(sim))` (or the metrics source's, for a metrics-only set).
    pub fn describe(&self) -> String {
        match (&self.scaling, &self.metrics) {
            (Some(scaling), _) => scaling.describe(),
            (None, Some(metrics)) => metrics.describe(),
            (None, None) => self.name.clone(),
        }
    }
}

/// Implements [`Layer`] for a layer that hands out an [`Intercept`] per wrapped value through
/// an inherent `fn interceptor(&self, provider: &str) -> I`.
macro_rules! intercept_layer {
    ($layer:ty) => {
        impl $crate::layers::Layer for $layer {
            fn layer_scaling(
                &self,
                inner: std::sync::Arc<dyn $crate::provider::ScalingProvider>,
            ) -> std::sync::Arc<dyn $crate::provider::ScalingProvider> {
                let provider = inner.name().to_owned();
                std::sync::Arc::new($crate::layers::Layered::scaling(
                    self.interceptor(&provider),
                    inner,
                ))
            }

            fn layer_catalog(
                &self,
                provider: &str,
                inner: std::sync::Arc<dyn $crate::provider::InstanceCatalog>,
            ) -> std::sync::Arc<dyn $crate::provider::InstanceCatalog> {
                std::sync::Arc::new($crate::layers::Layered::catalog(
                    self.interceptor(provider),
                    provider,
                    inner,
                ))
            }

            fn layer_billing(
                &self,
                provider: &str,
                inner: std::sync::Arc<dyn $crate::provider::BillingProvider>,
            ) -> std::sync::Arc<dyn $crate::provider::BillingProvider> {
                std::sync::Arc::new($crate::layers::Layered::billing(
                    self.interceptor(provider),
                    provider,
                    inner,
                ))
            }

            fn layer_metrics(
                &self,
                provider: &str,
                inner: std::sync::Arc<dyn $crate::provider::MetricsSource>,
            ) -> std::sync::Arc<dyn $crate::provider::MetricsSource> {
                std::sync::Arc::new($crate::layers::Layered::metrics(
                    self.interceptor(provider),
                    provider,
                    inner,
                ))
            }
        }
    };
}
pub(crate) use intercept_layer;
