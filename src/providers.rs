//! The provider kinds compiled into this `hoist`: the simulated cloud and plugins always, the
//! others by Cargo feature (all on by default).

use std::sync::Arc;

use hoist_core::registry::ProviderRegistry;

/// Registers every provider kind of this build.
pub fn register_all(registry: &mut ProviderRegistry) {
    hoist_core::sim::register_builtins(registry);
    registry.register(Arc::new(hoist_plugin::PluginFactory::new()));
    #[cfg(feature = "aws")]
    registry.register(Arc::new(hoist_aws::AwsProviderFactory));
    #[cfg(feature = "azure")]
    registry.register(Arc::new(hoist_azure::AzureProviderFactory));
    #[cfg(feature = "gcp")]
    registry.register(Arc::new(hoist_gcp::GcpProviderFactory));
    #[cfg(feature = "kubernetes")]
    registry.register(Arc::new(hoist_kubernetes::KubernetesProviderFactory));
    #[cfg(feature = "prometheus")]
    registry.register(Arc::new(hoist_prometheus::PrometheusFactory));
}
