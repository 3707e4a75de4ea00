//! Test fixture: a plugin built with the kit whose `describe_group` always panics, and whose
//! creation panics when configured to. The host must turn each panic into an error and keep
//! working with the same plugin (`list_groups` still answers).

#![deny(unsafe_code)]

use async_trait::async_trait;
use hoist_plugin::hoist_api::{Result, ScalingCapabilities, ScalingGroup, ScalingProvider};
use hoist_plugin::{Plugin, PluginContext};
use serde::Deserialize;

/// Configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Panic inside `create`.
    #[serde(default)]
    pub panic_in_create: bool,
}

/// The provider.
#[derive(Debug)]
pub struct Panicky;

#[async_trait]
impl ScalingProvider for Panicky {
    fn name(&self) -> &str {
        "panicky"
    }

    fn capabilities(&self) -> ScalingCapabilities {
        ScalingCapabilities::default()
    }

    async fn list_groups(&self) -> Result<Vec<ScalingGroup>> {
        Ok(Vec::new())
    }

    async fn describe_group(&self, group: &str) -> Result<ScalingGroup> {
        panic!("describe_group({group}) is broken on purpose")
    }
}

#[async_trait]
impl Plugin for Panicky {
    type Config = Config;
    const NAME: &'static str = "panicky";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Panics on purpose (test fixture)";

    async fn create(config: Config, _ctx: PluginContext) -> Result<Self> {
        if config.panic_in_create {
            panic!("create is broken on purpose");
        }
        Ok(Panicky)
    }
}

hoist_plugin::export_plugin!(Panicky);
