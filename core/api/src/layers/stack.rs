//! The recommended composition in one value: give the layers you want, and [`LayerStack::apply`]
//! wraps a provider set in the documented order,
//! `DryRun(Retry(CircuitBreaker(Metrics(Timeout(provider)))))`, leaving out the ones not given.

use super::{CircuitBreakerLayer, DryRunLayer, Layer, MetricsLayer, RetryLayer, TimeoutLayer};
use crate::provider::ProviderSet;

/// Which layers to put around a provider; see the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct LayerStack {
    timeout: Option<TimeoutLayer>,
    metrics: Option<MetricsLayer>,
    circuit_breaker: Option<CircuitBreakerLayer>,
    retry: Option<RetryLayer>,
    dry_run: Option<DryRunLayer>,
}

impl LayerStack {
    /// No layers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bound each attempt's duration.
    pub fn timeout(mut self, layer: TimeoutLayer) -> Self {
        self.timeout = Some(layer);
        self
    }

    /// Emit a timed event per attempt.
    pub fn metrics(mut self, layer: MetricsLayer) -> Self {
        self.metrics = Some(layer);
        self
    }

    /// Stop calling a provider that keeps failing.
    pub fn circuit_breaker(mut self, layer: CircuitBreakerLayer) -> Self {
        self.circuit_breaker = Some(layer);
        self
    }

    /// Retry retryable errors.
    pub fn retry(mut self, layer: RetryLayer) -> Self {
        self.retry = Some(layer);
        self
    }

    /// Record writes instead of applying them.
    pub fn dry_run(mut self, layer: DryRunLayer) -> Self {
        self.dry_run = Some(layer);
        self
    }

    /// `set` wrapped in the given layers, innermost first in the recommended order.
    pub fn apply(&self, set: ProviderSet) -> ProviderSet {
        let layers: [Option<&dyn Layer>; 5] = [
            self.timeout.as_ref().map(|l| l as &dyn Layer),
            self.metrics.as_ref().map(|l| l as &dyn Layer),
            self.circuit_breaker.as_ref().map(|l| l as &dyn Layer),
            self.retry.as_ref().map(|l| l as &dyn Layer),
            self.dry_run.as_ref().map(|l| l as &dyn Layer),
        ];
        layers
            .into_iter()
            .flatten()
            .fold(set, |set, layer| set.with_layer(layer))
    }
}
