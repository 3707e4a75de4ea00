//! [`PrometheusFactory`]: the `prometheus` kind of the provider registry. A Prometheus server
//! offers metrics only: its [`hoist_api::ProviderSet`] has a metrics source and nothing else.

use std::sync::Arc;

use async_trait::async_trait;
use hoist_api::registry::{BuildContext, BuiltProvider, ProviderFactory};
use hoist_api::{ProviderSet, Result};

use crate::settings::PrometheusSettings;
use crate::source::metrics_source_from_settings_in;

/// Builds `prometheus` metrics sources from policy settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrometheusFactory;

#[async_trait]
impl ProviderFactory for PrometheusFactory {
    fn kind(&self) -> &str {
        "prometheus"
    }

    fn settings_schema(&self) -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(PrometheusSettings))
            .unwrap_or_else(|_| serde_json::json!({ "type": "object" }))
    }

    fn validate(&self, ctx: BuildContext<'_>) -> Result<()> {
        PrometheusSettings::from_value(ctx.settings).map(|_| ())
    }

    async fn build(&self, ctx: BuildContext<'_>) -> Result<BuiltProvider> {
        let source = metrics_source_from_settings_in(ctx.settings, ctx.base_dir)?;
        Ok(BuiltProvider {
            set: ProviderSet::new(ctx.name).with_metrics(Arc::new(source)),
            clock: None,
        })
    }
}
