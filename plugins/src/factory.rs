//! The `plugin` provider kind for the [`hoist_api::registry::ProviderRegistry`]: a policy file
//! says `providers: { pool: { plugin: ./libstatic_pool.so, config: {...} } }` and gets the
//! plugin's traits as an ordinary provider. The path resolves against the policy file's
//! directory; `config` goes to the plugin, which validates it.

use std::path::PathBuf;

use async_trait::async_trait;
use hoist_api::Error;
use hoist_api::registry::{BuildContext, BuiltProvider, ProviderFactory};
use serde::Deserialize;

use crate::loader::PluginLibrary;

/// Settings of a `plugin` provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSettings {
    /// The plugin library; relative to the policy file's directory.
    pub plugin: PathBuf,
    /// The plugin's own configuration (an empty map when absent).
    #[serde(default = "empty_map")]
    pub config: serde_json::Value,
}

fn empty_map() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// Builds providers of kind `plugin` by loading their library.
#[derive(Debug, Clone, Copy, Default)]
pub struct PluginFactory;

impl PluginFactory {
    /// The factory.
    pub fn new() -> Self {
        PluginFactory
    }

    fn settings(ctx: &BuildContext<'_>) -> Result<PluginSettings, Error> {
        let settings: PluginSettings =
            serde_path_to_error::deserialize(ctx.settings).map_err(|e| {
                let path = e.path().to_string();
                let error = Error::config(format!(
                    "{} (expected `plugin: PATH` and an optional `config:` map)",
                    e.inner()
                ));
                if path == "." {
                    error
                } else {
                    error.with_field(path)
                }
            })?;
        Ok(settings)
    }

    fn open(ctx: &BuildContext<'_>, settings: &PluginSettings) -> Result<PluginLibrary, Error> {
        let path = ctx.base_dir.join(&settings.plugin);
        PluginLibrary::open(&path).map_err(|e| Error::from(e).with_provider(ctx.name.to_owned()))
    }
}

#[async_trait]
impl ProviderFactory for PluginFactory {
    fn kind(&self) -> &str {
        "plugin"
    }

    /// The provider's whole map: `plugin: PATH` and the plugin's own, free-form `config`.
    fn settings_schema(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "description": "A provider plugin: a library built with the plugin kit.",
            "properties": {
                "plugin": {
                    "type": "string",
                    "description": "Path to the plugin library (`.so`, `.dylib`, `.dll`), relative to the policy file's directory."
                },
                "config": {
                    "type": "object",
                    "description": "The plugin's own configuration, checked by the plugin when it is built."
                }
            },
            "required": ["plugin"],
            "additionalProperties": false
        })
    }

    /// Checks the settings and that the library loads with this host's ABI; the plugin's own
    /// configuration is checked when it is built.
    fn validate(&self, ctx: BuildContext<'_>) -> hoist_api::Result<()> {
        let settings = Self::settings(&ctx)?;
        Self::open(&ctx, &settings).map(|_| ())
    }

    async fn build(&self, ctx: BuildContext<'_>) -> hoist_api::Result<BuiltProvider> {
        let settings = Self::settings(&ctx)?;
        let library = Self::open(&ctx, &settings)?;
        let set = library
            .instantiate(ctx.name, ctx.base_dir, &settings.config)
            .await
            .map_err(|e| Error::from(e).with_provider(ctx.name.to_owned()))?;
        Ok(BuiltProvider { set, clock: None })
    }
}
