//! # hoist-api: the provider SDK
//!
//! What a Hoist provider is written against, and nothing else: the domain model, the four
//! provider traits ([`ScalingProvider`], [`InstanceCatalog`], [`BillingProvider`],
//! [`MetricsSource`]) with their capability declarations, the error type, the clock, durations,
//! secret references, the provider factory and registry, the layers (retry, circuit breaker,
//! timeout, metrics, dry run, fault injection), and behind the `testkit` feature the
//! conformance suite every provider must pass.
//!
//! This crate changes rarely and depends on no cloud SDK, HTTP client, TLS stack, YAML, cron or
//! JSON Schema crate (`schemars` support for a few types is an opt-in feature, used by the
//! engine's `hoist schema`). The policy engine, the simulated cloud and the evaluation live in
//! `hoist-engine`, `hoist-sim` and `hoist-eval`, which build on this crate; no provider needs them.

pub mod activity;
pub mod billing_rule;
pub mod checks;
pub mod clock;
pub mod duration;
pub mod error;
pub mod events;
pub mod input;
pub mod layers;
pub mod leadership;
pub mod model;
pub mod operation;
pub mod provider;
pub mod registry;
pub mod secret;
pub mod state;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use clock::{Clock, SystemClock};
pub use error::{Error, ErrorKind, Result};
pub use model::*;
pub use operation::{Operation, ProviderTrait};
pub use provider::*;
pub use secret::{SecretRef, SecretString};
