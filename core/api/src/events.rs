//! What layers report about provider calls as they happen: each call with its duration and
//! error kind, each retry, each circuit opening or closing. The engine's event stream (see
//! `hoist_engine::events`) carries these alongside its own decisions; telemetry subscribes there.
//! Layers only know [`ProviderEventSink`], so this crate needs nothing from the engine.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::error::ErrorKind;

/// One thing a layer saw.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProviderEvent {
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
}

/// Receives provider events. Must be cheap and never block: do real work on another task.
pub trait ProviderEventSink: Send + Sync + Debug + 'static {
    /// Called for every event.
    fn emit_provider(&self, event: &ProviderEvent);
}

/// Discards every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProviderEvents;

impl ProviderEventSink for NoProviderEvents {
    fn emit_provider(&self, _event: &ProviderEvent) {}
}

impl<T: ProviderEventSink + ?Sized> ProviderEventSink for Arc<T> {
    fn emit_provider(&self, event: &ProviderEvent) {
        (**self).emit_provider(event)
    }
}
