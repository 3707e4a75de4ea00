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
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::layers::CapabilityLayer;
use crate::model::GroupId;
use crate::provider::ProviderSet;

/// What a policy file says about a group that its provider needs at build time: its bounds (for
/// factories that create groups themselves, the simulated cloud) and its drain period (for
/// providers that map graceful scale-in to their own mechanism). Build one with
/// [`GroupBounds::new`] and [`GroupBounds::with_drain`], so fields added later break no caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupBounds {
    /// Group id on the provider.
    pub id: GroupId,
    /// Policy minimum.
    pub min: u32,
    /// Policy maximum.
    pub max: u32,
    /// How long an instance chosen for scale-in drains (takes no new work, finishes what it has)
    /// before it is removed; `None` (the default) removes it at once. Never `Some(0)`.
    pub drain: Option<Duration>,
}

impl GroupBounds {
    /// Group `id` with the policy's `min` and `max`, and no drain.
    pub fn new(id: impl Into<GroupId>, min: u32, max: u32) -> Self {
        GroupBounds {
            id: id.into(),
            min,
            max,
            drain: None,
        }
    }

    /// With a drain period; `None` or zero means none.
    pub fn with_drain(mut self, drain: impl Into<Option<Duration>>) -> Self {
        self.drain = drain.into().filter(|d| !d.is_zero());
        self
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_bounds_have_no_drain_unless_given_one() {
        let plain = GroupBounds::new("web", 1, 5);
        assert_eq!(plain.drain, None);
        assert_eq!(plain.clone().with_drain(Duration::ZERO).drain, None);
        assert_eq!(plain.clone().with_drain(None).drain, None);
        let drained = plain.with_drain(Duration::from_secs(300));
        assert_eq!(drained.drain, Some(Duration::from_secs(300)));
        assert_eq!(
            (drained.id.as_str(), drained.min, drained.max),
            ("web", 1, 5)
        );
    }
}
