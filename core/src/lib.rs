//! # hoist-core
//!
//! Hoist's core in one dependency, for applications that want all of it: this crate only
//! re-exports, under the module paths the core has always had,
//!
//! | path | crate | what |
//! |---|---|---|
//! | `model`, `provider`, `error`, `clock`, `duration`, `registry`, `layers`, `secret`, `testkit` | `hoist-api` | the provider SDK |
//! | `sim`, `trace` | `hoist-sim` | the simulated cloud, trace loading |
//! | `engine`, `config`, `forecast`, `control`, `audit`, `events`, `assembly` | `hoist-engine` | the policy engine and the control loop |
//! | `eval` | `hoist-eval` | replay, metrics, oracles, baselines |
//!
//! Provider and plugin crates depend on `hoist-api` alone, never on this crate: a change in the
//! engine, the simulator or the evaluation recompiles no provider.

pub use hoist_api::model::*;
pub use hoist_api::provider::*;
#[cfg(feature = "testkit")]
pub use hoist_api::testkit;
pub use hoist_api::{Clock, Error, ErrorKind, Result, SecretRef, SecretString, SystemClock};
pub use hoist_api::{
    clock, duration, error, input, layers, leadership, model, provider, registry, secret,
};

pub use hoist_sim as sim;
pub use hoist_sim::trace;

pub use hoist_engine as engine;
pub use hoist_engine::{
    assembly, audit, budget, config, control, events, forecast, ledger, meter, reconcile, state,
};

pub use hoist_eval as eval;
