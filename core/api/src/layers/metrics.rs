//! Times every provider call and emits one [`ProviderEvent::ProviderCall`] per call with the operation,
//! the error kind (if any) and the duration. The telemetry crate turns those events into
//! Prometheus histograms and counters; this layer only measures.

use std::sync::Arc;

use super::wrap::{Call, Intercept};
use super::{BoxFuture, intercept_layer};
use crate::error::Result;
use crate::events::{ProviderEvent, ProviderEventSink};

/// Emits a [`ProviderEvent::ProviderCall`] for every call; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    events: Arc<dyn ProviderEventSink>,
}

impl MetricsLayer {
    /// Sends call events to `events`.
    pub fn new(events: Arc<dyn ProviderEventSink>) -> Self {
        MetricsLayer { events }
    }

    fn interceptor(&self, _provider: &str) -> MetricsLayer {
        self.clone()
    }
}

intercept_layer!(MetricsLayer);

impl Intercept for MetricsLayer {
    fn label(&self) -> &'static str {
        "Metrics"
    }

    fn around<'a, T, F>(&'a self, call: Call<'a>, mut attempt: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> BoxFuture<'a, Result<T>> + Send + 'a,
    {
        Box::pin(async move {
            let started = tokio::time::Instant::now();
            let result = attempt().await;
            self.events.emit_provider(&ProviderEvent::ProviderCall {
                provider: call.provider.to_owned(),
                operation: call.operation.as_str(),
                error: result.as_ref().err().map(|e| e.kind()),
                duration: started.elapsed(),
            });
            result
        })
    }
}
