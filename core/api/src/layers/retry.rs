//! Retry with capped exponential backoff and full jitter, for errors that say a retry may help
//! ([`Error::is_retryable`](crate::Error::is_retryable)) and nothing else.
//!
//! Before retry `n` (n = 1 for the first retry) the layer waits a uniformly random time in
//! `[0, min(max_backoff, initial_backoff * multiplier^(n-1))]` ("full jitter", which spreads
//! clients that failed together). It gives up after `max_attempts` attempts, or when the next
//! wait would end after `max_elapsed` since the first attempt, and returns the last error
//! unchanged. Waits use `tokio::time`, so tests can pause time.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::rng::SplitMix64;
use super::wrap::{Call, Intercept};
use super::{BoxFuture, intercept_layer};
use crate::error::Result;
use crate::events::{ProviderEvent, ProviderEventSink};

/// How the wait before a retry is randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// Uniform in `[0, cap]` (the default).
    #[default]
    Full,
    /// Exactly the cap: deterministic waits, for tests and for providers that want them.
    None,
}

/// Retries retryable errors with backoff; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct RetryLayer {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    multiplier: f64,
    max_elapsed: Option<Duration>,
    jitter: Jitter,
    rng: Arc<Mutex<SplitMix64>>,
    events: Option<Arc<dyn ProviderEventSink>>,
}

impl Default for RetryLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryLayer {
    /// Four attempts, 200 ms initial backoff doubling up to 20 s, at most 60 s in all, full
    /// jitter seeded from the wall clock (so replicas started together do not retry in step;
    /// use [`RetryLayer::with_seed`] for a replayable sequence).
    pub fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x5EED, |d| d.as_nanos() as u64);
        RetryLayer {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(20),
            multiplier: 2.0,
            max_elapsed: Some(Duration::from_secs(60)),
            jitter: Jitter::Full,
            rng: Arc::new(Mutex::new(SplitMix64::new(seed))),
            events: None,
        }
    }

    /// Total attempts including the first (at least 1).
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// The cap of the first wait.
    pub fn with_initial_backoff(mut self, initial_backoff: Duration) -> Self {
        self.initial_backoff = initial_backoff;
        self
    }

    /// The largest cap any wait can have.
    pub fn with_max_backoff(mut self, max_backoff: Duration) -> Self {
        self.max_backoff = max_backoff;
        self
    }

    /// How much the cap grows per retry (at least 1; NaN counts as 1).
    pub fn with_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier >= 1.0 { multiplier } else { 1.0 };
        self
    }

    /// Give up when the next wait would end later than this after the first attempt started;
    /// `None` for no limit beyond `max_attempts`.
    pub fn with_max_elapsed(mut self, max_elapsed: Option<Duration>) -> Self {
        self.max_elapsed = max_elapsed;
        self
    }

    /// How waits are randomised.
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Seeds the jitter generator; equal seeds and equal call sequences give equal waits.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = Arc::new(Mutex::new(SplitMix64::new(seed)));
        self
    }

    /// Emits [`ProviderEvent::Retry`] before every retry.
    pub fn with_events(mut self, events: Arc<dyn ProviderEventSink>) -> Self {
        self.events = Some(events);
        self
    }

    /// The upper bound of the wait before retry `retry` (1 for the first retry).
    pub fn backoff_cap(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let cap_secs = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exponent);
        let max_secs = self.max_backoff.as_secs_f64();
        Duration::from_secs_f64(if cap_secs.is_finite() {
            cap_secs.min(max_secs)
        } else {
            max_secs
        })
    }

    fn backoff(&self, retry: u32) -> Duration {
        let cap = self.backoff_cap(retry);
        match self.jitter {
            Jitter::None => cap,
            Jitter::Full => {
                let u = self
                    .rng
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .next_f64();
                cap.mul_f64(u)
            }
        }
    }

    fn interceptor(&self, _provider: &str) -> RetryLayer {
        self.clone()
    }
}

intercept_layer!(RetryLayer);

impl Intercept for RetryLayer {
    fn label(&self) -> &'static str {
        "Retry"
    }

    fn around<'a, T, F>(&'a self, call: Call<'a>, mut attempt: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> BoxFuture<'a, Result<T>> + Send + 'a,
    {
        Box::pin(async move {
            let started = tokio::time::Instant::now();
            let mut attempts = 1;
            loop {
                let error = match attempt().await {
                    Ok(value) => return Ok(value),
                    Err(error) => error,
                };
                if !error.is_retryable() || attempts >= self.max_attempts {
                    return Err(error);
                }
                let wait = self.backoff(attempts);
                if let Some(max_elapsed) = self.max_elapsed
                    && started.elapsed() + wait > max_elapsed
                {
                    return Err(error);
                }
                attempts += 1;
                tracing::debug!(
                    provider = call.provider,
                    operation = call.operation.as_str(),
                    attempt = attempts,
                    wait_ms = wait.as_millis() as u64,
                    error = %error,
                    "retrying provider call"
                );
                if let Some(events) = &self.events {
                    events.emit_provider(&ProviderEvent::Retry {
                        provider: call.provider.to_owned(),
                        operation: call.operation.as_str(),
                        attempt: attempts,
                    });
                }
                tokio::time::sleep(wait).await;
            }
        })
    }
}
