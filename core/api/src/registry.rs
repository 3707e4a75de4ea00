//! Builds providers by kind from configuration.
//!
//! A policy file declares named providers, each of one kind (`simulated`, `aws`, `plugin`, ...)
//! with its own settings. The [`ProviderRegistry`] maps a kind to a [`ProviderFactory`] that
//! turns those settings into a [`ProviderSet`]. The binary registers the kinds it was built
//! with; a library user registers their own.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::layers::CapabilityLayer;
use crate::model::GroupId;
use crate::provider::ProviderSet;

/// The bounds a policy file gives a group, passed to factories that create groups themselves
/// (the simulated cloud).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupBounds {
    /// Group id on the provider.
    pub id: GroupId,
    /// Policy minimum.
    pub min: u32,
    /// Policy maximum.
    pub max: u32,
}

/// What a factory gets to build one provider.
#[derive(Debug, Clone, Copy)]
pub struct BuildContext<'a> {
    /// The provider's name in the policy file.
    pub name: &'a str,
    /// Its settings, as written under its kind.
    pub settings: &'a serde_json::Value,
    /// The policy file's directory; relative paths in settings resolve against it.
    pub base_dir: &'a Path,
    /// The groups the policy file places on this provider.
    pub groups: &'a [GroupBounds],
}

/// A built provider, and its clock when it brings one (the simulated cloud's virtual clock).
#[derive(Debug, Clone)]
pub struct BuiltProvider {
    /// The provider's traits.
    pub set: ProviderSet,
    /// A clock the control loop must use with this provider, if it has its own.
    pub clock: Option<Arc<dyn Clock>>,
}

/// Builds providers of one kind.
#[async_trait]
pub trait ProviderFactory: Send + Sync + Debug + 'static {
    /// The kind name used in policy files.
    fn kind(&self) -> &str;

    /// The JSON Schema (draft 2020-12, as a JSON value) of this kind's settings: the value
    /// written under `KIND:` in a policy file. `hoist schema` places it under the kind's name,
    /// so the schema covers every compiled-in provider without the engine naming any of them.
    /// The default accepts any object.
    fn settings_schema(&self) -> serde_json::Value {
        serde_json::json!({ "type": "object" })
    }

    /// Checks settings without connecting anywhere (for `hoist validate`). The default accepts
    /// everything; factories with typed settings override it.
    fn validate(&self, _ctx: BuildContext<'_>) -> Result<()> {
        Ok(())
    }

    /// Builds the provider.
    async fn build(&self, ctx: BuildContext<'_>) -> Result<BuiltProvider>;
}

/// Kind name to factory.
#[derive(Debug, Clone, Default)]
pub struct ProviderRegistry {
    factories: BTreeMap<String, Arc<dyn ProviderFactory>>,
}

impl ProviderRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the factory for its kind.
    pub fn register(&mut self, factory: Arc<dyn ProviderFactory>) -> &mut Self {
        self.factories.insert(factory.kind().to_owned(), factory);
        self
    }

    /// The kinds this registry can build, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        self.factories.keys().map(String::as_str).collect()
    }

    /// The factory for `kind`.
    pub fn factory(&self, kind: &str) -> Result<&Arc<dyn ProviderFactory>> {
        self.factories.get(kind).ok_or_else(|| {
            Error::config(format!(
                "unknown provider kind `{kind}`; this build knows: {}",
                self.kinds().join(", ")
            ))
        })
    }

    /// The factories, sorted by kind.
    pub fn factories(&self) -> impl Iterator<Item = &Arc<dyn ProviderFactory>> {
        self.factories.values()
    }

    /// Builds a provider of `kind`, wrapped in the [`CapabilityLayer`], so a call the provider
    /// did not declare is refused before it reaches it.
    pub async fn build(&self, kind: &str, ctx: BuildContext<'_>) -> Result<BuiltProvider> {
        let built = self.factory(kind)?.build(ctx).await?;
        Ok(BuiltProvider {
            set: built.set.with_layer(&CapabilityLayer),
            clock: built.clock,
        })
    }
}
