//! The `simulated` provider kind: builds a [`SimulatedCloud`] from a policy file's settings.

use std::sync::Arc;

use async_trait::async_trait;
use hoist_api::registry::{BuildContext, BuiltProvider, ProviderFactory, ProviderRegistry};
use hoist_api::{Error, GroupId, Result};

use crate::{SimulatedCloud, SimulatedCloudConfig};

/// Builds the always-compiled simulated cloud (kind `simulated`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SimulatedFactory;

impl SimulatedFactory {
    fn cloud(ctx: BuildContext<'_>) -> Result<SimulatedCloud> {
        let settings = if ctx.settings.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            ctx.settings.clone()
        };
        let config: SimulatedCloudConfig =
            serde_path_to_error::deserialize(settings).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path == "." || path.is_empty() {
                    Error::config(inner.to_string())
                } else {
                    Error::config_field(path, inner.to_string())
                }
            })?;
        let bounds: Vec<(GroupId, u32, u32)> = ctx
            .groups
            .iter()
            .map(|g| (g.id.clone(), g.min, g.max))
            .collect();
        SimulatedCloud::from_config(&config, ctx.base_dir, &bounds)
            .map_err(|e| Error::config(e.message().to_owned()))
    }
}

#[async_trait]
impl ProviderFactory for SimulatedFactory {
    fn kind(&self) -> &str {
        "simulated"
    }

    fn settings_schema(&self) -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(SimulatedCloudConfig))
            .unwrap_or_else(|_| serde_json::json!({ "type": "object" }))
    }

    fn validate(&self, ctx: BuildContext<'_>) -> Result<()> {
        Self::cloud(ctx).map(|_| ())
    }

    async fn build(&self, ctx: BuildContext<'_>) -> Result<BuiltProvider> {
        let cloud = Self::cloud(ctx)?;
        Ok(BuiltProvider {
            set: cloud.provider_set(ctx.name),
            clock: Some(cloud.clock()),
        })
    }
}

/// Registers the provider kinds that are always built in (the simulated cloud).
pub fn register_builtins(registry: &mut ProviderRegistry) {
    registry.register(Arc::new(SimulatedFactory));
}
