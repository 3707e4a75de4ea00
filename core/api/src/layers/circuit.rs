//! A circuit breaker: stops calling a provider that keeps failing, so a down cloud API is not
//! hammered and callers fail fast.
//!
//! - **Closed**: calls pass. A failure that says a retry may help
//!   ([`Error::is_retryable`]: throttling, timeouts, transient errors) adds one to a count of
//!   consecutive failures; any answer from the provider (success, or a definite error such as
//!   not found) resets it. At `failure_threshold` the circuit opens.
//! - **Open**: calls fail at once with a non-retryable [`ErrorKind::Transient`] error that says
//!   when the next probe is due, so a retry layer outside gives up instead of waiting.
//! - **Half-open**: after `cool_down`, one call goes through as a probe (others still fail
//!   fast). Its success closes the circuit; a retryable failure opens it for another cool-down.
//!
//! Every opening and closing emits [`ProviderEvent::Circuit`]. Each wrapped value has its own breaker.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::wrap::{Call, Intercept};
use super::{BoxFuture, intercept_layer};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{ProviderEvent, ProviderEventSink};

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls pass.
    Closed,
    /// Calls fail fast until the cool-down ends.
    Open,
    /// The cool-down ended; the next call is a probe.
    HalfOpen,
}

/// Builds a [`CircuitBreaker`] for every value it wraps; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer {
    failure_threshold: u32,
    cool_down: Duration,
    events: Option<Arc<dyn ProviderEventSink>>,
}

impl Default for CircuitBreakerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl CircuitBreakerLayer {
    /// Opens after 5 consecutive failures, for 30 s.
    pub fn new() -> Self {
        CircuitBreakerLayer {
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
            events: None,
        }
    }

    /// Consecutive retryable failures that open the circuit (at least 1).
    pub fn with_failure_threshold(mut self, failure_threshold: u32) -> Self {
        self.failure_threshold = failure_threshold.max(1);
        self
    }

    /// How long the circuit stays open before a probe.
    pub fn with_cool_down(mut self, cool_down: Duration) -> Self {
        self.cool_down = cool_down;
        self
    }

    /// Emits [`ProviderEvent::Circuit`] on every opening and closing.
    pub fn with_events(mut self, events: Arc<dyn ProviderEventSink>) -> Self {
        self.events = Some(events);
        self
    }

    /// A fresh breaker (closed) for one wrapped value of `provider`; use it with
    /// [`Layered`](super::Layered) to keep a handle on its state.
    pub fn interceptor(&self, provider: &str) -> CircuitBreaker {
        CircuitBreaker {
            provider: provider.to_owned(),
            failure_threshold: self.failure_threshold,
            cool_down: self.cool_down,
            events: self.events.clone(),
            state: Arc::new(Mutex::new(BreakerState {
                mode: Mode::Closed,
                consecutive_failures: 0,
            })),
        }
    }
}

intercept_layer!(CircuitBreakerLayer);

#[derive(Debug, Clone, Copy)]
enum Mode {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct BreakerState {
    mode: Mode,
    consecutive_failures: u32,
}

/// One breaker around one wrapped value. Clones share the state.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    provider: String,
    failure_threshold: u32,
    cool_down: Duration,
    events: Option<Arc<dyn ProviderEventSink>>,
    state: Arc<Mutex<BreakerState>>,
}

impl CircuitBreaker {
    fn lock(&self) -> MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current state (an open circuit whose cool-down has passed reports half-open).
    pub fn state(&self) -> CircuitState {
        match self.lock().mode {
            Mode::Closed => CircuitState::Closed,
            Mode::Open { until } if Instant::now() >= until => CircuitState::HalfOpen,
            Mode::Open { .. } => CircuitState::Open,
            Mode::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Consecutive retryable failures counted so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.lock().consecutive_failures
    }

    fn emit(&self, open: bool) {
        tracing::info!(provider = %self.provider, open, "circuit breaker changed state");
        if let Some(events) = &self.events {
            events.emit_provider(&ProviderEvent::Circuit {
                provider: self.provider.clone(),
                open,
            });
        }
    }

    /// Lets a call through (`Ok(true)` when it is the half-open probe) or refuses it.
    fn admit(&self, call: Call<'_>) -> Result<bool> {
        let mut state = self.lock();
        let now = Instant::now();
        let refuse = |why: String| {
            Err(Error::new(ErrorKind::Transient, why)
                .with_retryable(false)
                .with_provider(call.provider)
                .with_operation(call.operation.as_str()))
        };
        match state.mode {
            Mode::Closed => Ok(false),
            Mode::Open { until } if now >= until => {
                state.mode = Mode::HalfOpen { probing: true };
                Ok(true)
            }
            Mode::Open { until } => refuse(format!(
                "circuit open after {} consecutive failures; next probe in {} ms",
                state.consecutive_failures,
                (until - now).as_millis()
            )),
            Mode::HalfOpen { probing: true } => {
                refuse("circuit half-open and its probe call is still running".to_owned())
            }
            Mode::HalfOpen { probing: false } => {
                state.mode = Mode::HalfOpen { probing: true };
                Ok(true)
            }
        }
    }

    fn record(&self, failed: bool, probe: bool) {
        let changed = {
            let mut state = self.lock();
            if failed {
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                let reopen = probe || matches!(state.mode, Mode::HalfOpen { .. });
                let trip = matches!(state.mode, Mode::Closed)
                    && state.consecutive_failures >= self.failure_threshold;
                if reopen || trip {
                    state.mode = Mode::Open {
                        until: Instant::now() + self.cool_down,
                    };
                    Some(true)
                } else {
                    None
                }
            } else {
                state.consecutive_failures = 0;
                if probe || matches!(state.mode, Mode::HalfOpen { .. }) {
                    state.mode = Mode::Closed;
                    Some(false)
                } else {
                    None
                }
            }
        };
        if let Some(open) = changed {
            self.emit(open);
        }
    }
}

/// Returns a cancelled probe's slot, so the next call can probe.
struct ProbeGuard<'a> {
    breaker: &'a CircuitBreaker,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut state = self.breaker.lock();
            if matches!(state.mode, Mode::HalfOpen { probing: true }) {
                state.mode = Mode::HalfOpen { probing: false };
            }
        }
    }
}

impl Intercept for CircuitBreaker {
    fn label(&self) -> &'static str {
        "CircuitBreaker"
    }

    fn around<'a, T, F>(&'a self, call: Call<'a>, mut attempt: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> BoxFuture<'a, Result<T>> + Send + 'a,
    {
        Box::pin(async move {
            let probe = self.admit(call)?;
            let mut guard = ProbeGuard {
                breaker: self,
                armed: probe,
            };
            let result = attempt().await;
            guard.armed = false;
            let failed = result.as_ref().err().is_some_and(Error::is_retryable);
            self.record(failed, probe);
            result
        })
    }
}
