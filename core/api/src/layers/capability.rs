//! Refuses, before it reaches the provider, every call the provider's capabilities do not
//! declare, with [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) and the same text as
//! the traits' default bodies ([`Operation::unsupported`]). The
//! [`ProviderRegistry`](crate::registry::ProviderRegistry) puts it innermost around every
//! provider it builds, so no undeclared call reaches a cloud, a plugin or a provider that forgot
//! to check.
//!
//! Capabilities are read once, when the value is wrapped: a provider declares what it can do
//! for its lifetime.

use std::sync::Arc;

use super::wrap::{Call, Intercept, Layered};
use super::{BoxFuture, Layer};
use crate::error::Result;
use crate::operation::Operation;
use crate::provider::{
    BillingCapabilities, BillingProvider, InstanceCatalog, MetricsSource, ScalingCapabilities,
    ScalingProvider,
};

/// Wraps providers in a capability check; see the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct CapabilityLayer;

impl CapabilityLayer {
    /// The layer.
    pub fn new() -> Self {
        CapabilityLayer
    }
}

/// The check for one wrapped value: which of its operations are declared.
#[derive(Debug, Clone, Copy)]
pub enum CapabilityCheck {
    /// A scaling provider's capabilities.
    Scaling(ScalingCapabilities),
    /// A billing provider's capabilities.
    Billing(BillingCapabilities),
    /// Catalogs and metrics sources: every operation is declared.
    Open,
}

impl CapabilityCheck {
    /// Whether `operation` may go through.
    pub fn allows(&self, operation: Operation) -> bool {
        match self {
            CapabilityCheck::Scaling(c) => operation.declared_by_scaling(c),
            CapabilityCheck::Billing(c) => operation.declared_by_billing(c),
            CapabilityCheck::Open => true,
        }
    }
}

impl Intercept for CapabilityCheck {
    fn label(&self) -> &'static str {
        "Checked"
    }

    fn around<'a, T, F>(&'a self, call: Call<'a>, mut attempt: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> BoxFuture<'a, Result<T>> + Send + 'a,
    {
        if self.allows(call.operation) {
            attempt()
        } else {
            let error = call.operation.unsupported(call.provider);
            Box::pin(async move { Err(error) })
        }
    }
}

impl Layer for CapabilityLayer {
    fn layer_scaling(&self, inner: Arc<dyn ScalingProvider>) -> Arc<dyn ScalingProvider> {
        let check = CapabilityCheck::Scaling(inner.capabilities());
        Arc::new(Layered::scaling(check, inner))
    }

    fn layer_catalog(
        &self,
        provider: &str,
        inner: Arc<dyn InstanceCatalog>,
    ) -> Arc<dyn InstanceCatalog> {
        Arc::new(Layered::catalog(CapabilityCheck::Open, provider, inner))
    }

    fn layer_billing(
        &self,
        provider: &str,
        inner: Arc<dyn BillingProvider>,
    ) -> Arc<dyn BillingProvider> {
        let check = CapabilityCheck::Billing(inner.capabilities());
        Arc::new(Layered::billing(check, provider, inner))
    }

    fn layer_metrics(
        &self,
        provider: &str,
        inner: Arc<dyn MetricsSource>,
    ) -> Arc<dyn MetricsSource> {
        Arc::new(Layered::metrics(CapabilityCheck::Open, provider, inner))
    }
}
