//! # hoist-plugin
//!
//! Provider plugins for Hoist: a provider compiled as a shared library (`cdylib`), loaded at
//! run time, is just another provider to the engine.
//!
//! - [`abi`]: the stable binary interface: a frozen version symbol, a versioned append-only
//!   `#[repr(C)]` table, JSON bytes borrowed for each call and a completion callback.
//! - [`protocol`]: the JSON shapes both sides exchange.
//! - [`kit`] and [`export_plugin!`]: for plugin authors; implement the core traits in ordinary
//!   async Rust and export them without writing `unsafe` or FFI code.
//! - [`test_support`]: for a plugin's tests: find the built library (and, with the `testkit`
//!   feature, run `hoist_api::testkit`'s conformance suite through the loader).
//! - [`loader`]: for hosts; [`load`] / [`PluginLibrary`] turn a library into a
//!   [`hoist_api::ProviderSet`], and [`PluginFactory`] registers the `plugin` provider kind.
//!
//! Plugins are trusted code: loading one runs it inside the host process. What the boundary
//! contains is Rust-level failure (panics, bad replies, version skew), not malice.

pub mod abi;
pub mod factory;
pub mod kit;
pub mod loader;
pub mod protocol;
pub mod test_support;

/// Re-exported so plugins and the export macro name the same core crate as the kit.
pub use hoist_api;

pub use abi::ABI_VERSION;
pub use factory::{PluginFactory, PluginSettings, sha256_hex};
pub use kit::{Plugin, PluginContext};
pub use loader::{KIT_VERSION, LoadError, PluginLibrary, PluginProvider, load};
pub use protocol::{Capability, Metadata};
