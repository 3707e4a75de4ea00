//! # hoist-engine: the policy engine and the control loop
//!
//! Policy files ([`config`]), the pure decision function ([`decide`]), forecasting
//! ([`forecast`]), the control loop ([`control`]), the audit log ([`audit`]), the event stream
//! ([`events`]) and the assembly of a running autoscaler from a policy file ([`assembly`]).
//! Providers never depend on this crate: they are written against `hoist-api`.
//!
//! [`decide`] maps an [`Observation`] (group state, metric windows, forecast, the time) and a
//! group's policies to a [`Decision`] with the desired capacity and the reasons. It does no I/O
//! and reads no clock: the same inputs give the same decision, so it is tested exhaustively and
//! replayed bit for bit by the simulator. Memory that policies need across evaluations
//! (stabilisation windows, cooldowns) lives in [`DecisionMemory`], owned by the caller, which
//! `decide` only reads: it returns the change to the memory as a [`MemoryUpdate`] beside the
//! decision, for the caller to apply, persist or hand on. The Kubernetes HPA rules that
//! `target_tracking` follows (tolerance, stabilisation, rate limits) are in [`hpa`], shared with
//! the `hpa` baseline of `hoist-eval`.

pub mod assembly;
pub mod audit;
pub mod budget;
pub mod config;
pub mod control;
mod decide;
pub mod events;
pub mod forecast;
pub mod hpa;
pub mod ledger;
mod memory;
pub mod meter;
pub mod pool;
pub mod predictive;
pub mod reconcile;
pub mod rightsizing;
pub mod route;
pub mod schedule;
pub mod state;

pub use decide::decide;
pub use memory::{DecisionMemory, MemoryUpdate};
pub use predictive::{ForecastInput, LevelRatio, PredictiveForecast, PredictiveSnapshot};

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

// The provider SDK's modules under the names this crate's code uses.
pub(crate) use hoist_api::{Error, Result, clock, duration, error, model, provider};

use crate::model::{GroupId, MetricKind, Sample};

/// The metric windows the engine sees for one group: recent samples per signal, oldest first.
pub type MetricWindows = BTreeMap<MetricKind, Vec<Sample>>;

/// A point forecast of demand, in instances needed, for a future time (with an optional upper
/// bound from the prediction interval).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForecastPoint {
    /// When.
    pub at: DateTime<Utc>,
    /// Instances needed at that time.
    pub instances: f64,
    /// Upper prediction bound, instances.
    pub upper: Option<f64>,
}

/// The state of a group as the engine needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    /// Group id.
    pub id: GroupId,
    /// Desired capacity the provider currently holds.
    pub desired: u32,
    /// Ready (serving) instances.
    pub ready: u32,
    /// Booting instances.
    pub pending: u32,
    /// The cloud's own lower bound.
    pub provider_min: u32,
    /// The cloud's own upper bound.
    pub provider_max: u32,
    /// The group's current instance class.
    pub instance_class: String,
}

/// Everything the engine looks at for one decision.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// Evaluation time (virtual or wall clock, injected).
    pub now: DateTime<Utc>,
    /// The group.
    pub group: &'a GroupSnapshot,
    /// Metric windows.
    pub metrics: &'a MetricWindows,
    /// Forecast, when a predictive policy produced one.
    pub forecast: Option<&'a [ForecastPoint]>,
    /// Why there is no forecast (short history, poor recent accuracy, a level shift), or a
    /// remark on the forecast given (its level correction), for the predictive policy's reason.
    pub forecast_note: Option<&'a str>,
    /// What the budgets covering the group ask of this decision, when one is on a rung.
    pub budget: Option<&'a budget::BudgetSteer>,
}

/// Which way a decision goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Add capacity.
    Out,
    /// Remove capacity.
    In,
    /// Keep capacity.
    Hold,
}

/// One reason behind a decision, from one policy or guard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// Which policy or guard (`target_tracking[0]`, `guard.max`, ...).
    pub source: String,
    /// What it recommended, when it recommended a capacity.
    pub recommended: Option<u32>,
    /// Human explanation.
    pub message: String,
}

/// The engine's output for one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The group.
    pub group: GroupId,
    /// Evaluation time.
    pub at: DateTime<Utc>,
    /// Desired capacity before.
    pub current: u32,
    /// Desired capacity after.
    pub desired: u32,
    /// Out, in or hold.
    pub direction: Direction,
    /// A new instance class, when a vertical policy moves the group.
    pub instance_class: Option<String>,
    /// Why.
    pub reasons: Vec<Reason>,
    /// Whether the decision is recorded only, not applied.
    pub dry_run: bool,
}
