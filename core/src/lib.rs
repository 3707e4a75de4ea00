//! # hoist-core
//!
//! The provider-neutral heart of Hoist: the domain model, the four provider traits
//! ([`ScalingProvider`], [`InstanceCatalog`], [`BillingProvider`], [`MetricsSource`]), the
//! error type, the pure policy engine, the deterministic simulated cloud, provider layers and
//! (behind the `testkit` feature) the conformance suite every provider must pass.
//!
//! This crate depends on no cloud SDK, HTTP client or TLS stack.

pub mod audit;
pub mod clock;
pub mod config;
pub mod control;
pub mod duration;
pub mod engine;
pub mod error;
pub mod eval;
pub mod events;
pub mod forecast;
pub mod layers;
pub mod model;
pub mod provider;
pub mod registry;
pub mod sim;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod trace;

pub use clock::{Clock, SystemClock};
pub use error::{Error, ErrorKind, Result};
pub use model::*;
pub use provider::*;
