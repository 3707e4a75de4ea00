//! What the control loop and layers report as they work: observations, decisions, actions,
//! provider calls, retries, missing metrics. Telemetry (Prometheus metrics, alerts, logs)
//! subscribes through [`EventSink`]; the loop itself does not know who listens.
//!
//! Layers live in `hoist-api` and report through [`ProviderEventSink`]; every [`EventSink`]
//! listens to them through [`provider_sink`], which turns a [`ProviderEvent`] into the
//! [`Event`] variant of the same name.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::error::ErrorKind;
use crate::model::{GroupId, MetricKind};
use crate::{Decision, ForecastPoint, GroupSnapshot};
pub use hoist_api::events::{NoProviderEvents, ProviderEvent, ProviderEventSink};

/// One thing that happened.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A group was observed.
    GroupObserved {
        /// Provider name in the policy file.
        provider: String,
        /// The group's state.
        group: GroupSnapshot,
        /// The policy's bounds.
        min: u32,
        /// The policy's bounds.
        max: u32,
        /// Estimated cost per hour of the group's active instances, in `currency`.
        cost_per_hour: Option<f64>,
        /// Currency of `cost_per_hour`.
        currency: Option<String>,
        /// What the cost meter charged for the group since the loop first observed it (the
        /// instances' lives under the provider's billing rule), in `currency`.
        metered_cost: Option<f64>,
        /// The part of `metered_cost` charged for spot instances.
        metered_spot_cost: Option<f64>,
        /// Active instances bought as spot.
        spot_instances: u32,
    },
    /// The engine decided.
    Decided {
        /// Provider name.
        provider: String,
        /// The decision.
        decision: Decision,
    },
    /// A decision was applied (or failed to be).
    Acted {
        /// Provider name.
        provider: String,
        /// Group.
        group: GroupId,
        /// Desired before.
        from: u32,
        /// Desired asked for.
        to: u32,
        /// `None` on success, the error kind and message on failure.
        error: Option<(ErrorKind, String)>,
    },
    /// A provider call finished.
    ProviderCall {
        /// Provider name.
        provider: String,
        /// Operation (`describe_group`, ...).
        operation: &'static str,
        /// `None` on success.
        error: Option<ErrorKind>,
        /// How long it took.
        duration: Duration,
    },
    /// A retry layer is about to retry.
    Retry {
        /// Provider name.
        provider: String,
        /// Operation.
        operation: &'static str,
        /// Attempt number about to start (2 for the first retry).
        attempt: u32,
    },
    /// A circuit breaker opened or closed for a provider.
    Circuit {
        /// Provider name.
        provider: String,
        /// Whether it is open now.
        open: bool,
    },
    /// A metric needed by a policy was missing, stale or invalid, so the engine held.
    MetricsMissing {
        /// Provider name.
        provider: String,
        /// Group.
        group: GroupId,
        /// The metric.
        metric: MetricKind,
        /// Why it was unusable.
        reason: String,
    },
    /// A provider event this version of the engine has no variant of its own for.
    Provider(ProviderEvent),
    /// A predictive policy produced a forecast.
    Forecast {
        /// Provider name.
        provider: String,
        /// Group.
        group: GroupId,
        /// The forecast.
        points: Vec<ForecastPoint>,
    },
    /// A budget was evaluated: its spend, forecast, crossed thresholds and rung.
    Budget(crate::budget::BudgetStatus),
    /// A group's work metric was read (for cost per unit of work).
    Work {
        /// Provider name.
        provider: String,
        /// Group (its name in the policy file).
        group: String,
        /// Units of work per second, latest sample.
        units_per_second: f64,
        /// What a unit is called (`requests`).
        unit: String,
    },
    /// A complete UTC day's metered cost was set against the provider's own bill for it
    /// (once per provider and day).
    CostReconciled(crate::reconcile::Reconciliation),
    /// A group's vertical policy looked (see [`crate::config::VerticalConfig`]).
    Vertical {
        /// Provider name.
        provider: String,
        /// Group name.
        group: String,
        /// The class it runs on.
        from_class: String,
        /// The recommended (or applied) class.
        to_class: String,
        /// Instances of it that carry the peak.
        to_count: u32,
        /// The saving, percent of the cost per hour now.
        saving_percent: f64,
        /// What was done (as in the audit log's `vertical` record).
        outcome: String,
    },
    /// A pool's split changed (see [`crate::pool`]).
    PoolSplit(crate::pool::PoolSplitRecord),
    /// A changed policy file was validated and takes effect at the next evaluation.
    ConfigApplied {
        /// The file.
        file: String,
        /// The fingerprint of its bytes now.
        fingerprint: String,
    },
    /// A changed policy file was refused; the running configuration stays.
    ConfigRejected {
        /// The file.
        file: String,
        /// The fingerprint of the refused bytes.
        fingerprint: String,
        /// Why, with file, line and field where known.
        errors: String,
    },
}

/// Receives events. Must be cheap and never block: do real work on another task.
pub trait EventSink: Send + Sync + Debug + 'static {
    /// Called for every event.
    fn emit(&self, event: &Event);
}

/// Sends every event to several sinks.
#[derive(Debug, Clone, Default)]
pub struct FanOut(pub Vec<Arc<dyn EventSink>>);

impl EventSink for FanOut {
    fn emit(&self, event: &Event) {
        for sink in &self.0 {
            sink.emit(event);
        }
    }
}

/// Discards every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: &Event) {}
}

impl From<&ProviderEvent> for Event {
    fn from(event: &ProviderEvent) -> Self {
        match event.clone() {
            ProviderEvent::ProviderCall {
                provider,
                operation,
                error,
                duration,
            } => Event::ProviderCall {
                provider,
                operation,
                error,
                duration,
            },
            ProviderEvent::Retry {
                provider,
                operation,
                attempt,
            } => Event::Retry {
                provider,
                operation,
                attempt,
            },
            ProviderEvent::Circuit { provider, open } => Event::Circuit { provider, open },
            other => Event::Provider(other),
        }
    }
}

/// An [`EventSink`] as the [`ProviderEventSink`] the layers report to.
#[derive(Debug, Clone)]
pub struct ForwardProviderEvents(pub Arc<dyn EventSink>);

impl ProviderEventSink for ForwardProviderEvents {
    fn emit_provider(&self, event: &ProviderEvent) {
        self.0.emit(&Event::from(event));
    }
}

/// `sink` as a [`ProviderEventSink`], to hand to the layers.
pub fn provider_sink(sink: Arc<dyn EventSink>) -> Arc<dyn ProviderEventSink> {
    Arc::new(ForwardProviderEvents(sink))
}
