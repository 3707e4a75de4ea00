//! The `simulated` provider kind: builds a [`SimulatedCloud`] from a policy file's settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use hoist_api::registry::{BuildContext, BuiltProvider, ProviderFactory, ProviderRegistry};
use hoist_api::{Error, Result};

use crate::config::SimClock;
use crate::shared::SimWorld;
use crate::wall::FollowWallClock;
use crate::{SimulatedCloud, SimulatedCloudConfig};

/// Builds the always-compiled simulated cloud (kind `simulated`).
///
/// It holds the worlds (`world: NAME`) of the providers it built: every provider it builds with
/// the same `world` joins one [`SimWorld`], sharing its clock (the same `Arc` in every
/// [`BuiltProvider::clock`]) and its shared demands; building a provider of a world again (a
/// policy reload) replaces that member, by provider name. A world lives as long as one of its
/// providers does: once they are all dropped, the next build of that name starts a new world.
/// [`ProviderFactory::validate`] registers nothing.
#[derive(Debug, Default)]
pub struct SimulatedFactory {
    worlds: Mutex<HashMap<String, Weak<SimWorld>>>,
}

impl SimulatedFactory {
    /// A factory with no world yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The world named `name`, made when none of that name is alive.
    fn world(&self, name: &str) -> Arc<SimWorld> {
        let mut worlds = self.worlds.lock().unwrap_or_else(|e| e.into_inner());
        worlds.retain(|_, w| w.strong_count() > 0);
        if let Some(world) = worlds.get(name).and_then(Weak::upgrade) {
            return world;
        }
        let world = SimWorld::new(name);
        worlds.insert(name.to_owned(), Arc::downgrade(&world));
        world
    }

    fn config(ctx: &BuildContext<'_>) -> Result<SimulatedCloudConfig> {
        let settings = if ctx.settings.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            ctx.settings.clone()
        };
        serde_path_to_error::deserialize(settings).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." || path.is_empty() {
                Error::config(inner.to_string())
            } else {
                Error::config_field(path, inner.to_string())
            }
        })
    }

    /// Builds the cloud, in `world` when given.
    fn cloud(
        ctx: &BuildContext<'_>,
        config: &SimulatedCloudConfig,
        world: Option<&Arc<SimWorld>>,
    ) -> Result<SimulatedCloud> {
        crate::config::build_in(
            config,
            ctx.base_dir,
            ctx.groups,
            world.map(|w| (w, ctx.name)),
        )
        .map_err(|e| {
            let error = Error::config(e.message().to_owned());
            match e.field() {
                Some(field) => error.with_field(field),
                None => error,
            }
        })
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
        // Alone: what only the world can tell (another provider's start, a shared demand
        // defined twice) is checked when the providers are built.
        let config = Self::config(&ctx)?;
        Self::cloud(&ctx, &config, None).map(|_| ())
    }

    async fn build(&self, ctx: BuildContext<'_>) -> Result<BuiltProvider> {
        let config = Self::config(&ctx)?;
        let world = config.world.as_deref().map(|name| self.world(name));
        let cloud = Self::cloud(&ctx, &config, world.as_ref())?;
        Ok(match config.clock {
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

/// Registers the provider kinds that are always built in (the simulated cloud), with a fresh
/// [`SimulatedFactory`] (no world yet).
pub fn register_builtins(registry: &mut ProviderRegistry) {
    registry.register(Arc::new(SimulatedFactory::new()));
}
