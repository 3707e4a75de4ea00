//! The provider kinds compiled into this `hoist`: the simulated cloud always, the others by
//! Cargo feature.

use hoist_core::registry::ProviderRegistry;

/// Registers every provider kind of this build.
pub fn register_all(registry: &mut ProviderRegistry) {
    hoist_core::registry::register_builtins(registry);
}
