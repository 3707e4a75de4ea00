//! The `simulated` provider kind: builds a [`SimulatedCloud`] from a policy file's settings.

use std::sync::Arc;

use async_trait::async_trait;
use hoist_api::registry::{BuildContext, BuiltProvider, ProviderFactory, ProviderRegistry};
use hoist_api::{Error, Result};

use crate::config::SimClock;
use crate::wall::FollowWallClock;
use crate::{SimulatedCloud, SimulatedCloudConfig};

/// Builds the always-compiled simulated cloud (kind `simulated`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SimulatedFactory;

impl SimulatedFactory {
    fn cloud(ctx: BuildContext<'_>) -> Result<(SimulatedCloud, SimClock)> {
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
        let cloud =
            SimulatedCloud::from_policy_groups(&config, ctx.base_dir, ctx.groups).map_err(|e| {
                let error = Error::config(e.message().to_owned());
                match e.field() {
                    Some(field) => error.with_field(field),
                    None => error,
                }
            })?;
        Ok((cloud, config.clock))
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
        let (cloud, clock) = Self::cloud(ctx)?;
        Ok(match clock {
            SimClock::Virtual => BuiltProvider {
                set: cloud.provider_set(ctx.name),
                clock: Some(cloud.clock()),
            },
            SimClock::Wall => BuiltProvider {
                set: cloud
                    .provider_set(ctx.name)
                    .with_layer(&FollowWallClock::new(cloud.clone())),
                clock: None,
            },
        })
    }
}

/// Registers the provider kinds that are always built in (the simulated cloud).
pub fn register_builtins(registry: &mut ProviderRegistry) {
    registry.register(Arc::new(SimulatedFactory));
}
