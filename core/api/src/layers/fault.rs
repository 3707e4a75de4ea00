//! Fault injection, for tests: makes a healthy provider misbehave on purpose, reproducibly.
//!
//! Three kinds of fault, checked in this order on every call:
//!
//! 1. **Scripted**: "fail the next N calls of these operations with this kind"
//!    ([`FaultLayer::fail_next`]), usable at any time through a clone of the layer.
//! 2. **Random**: each matching call fails with probability `rate`, drawn from a SplitMix64
//!    generator seeded by the caller, so the same seed and the same call sequence fail the same
//!    calls.
//! 3. **Latency**: matching calls are delayed by a duration drawn uniformly from a range,
//!    before they run or fail (with `tokio::time`, so paused-time tests do not wait).
//!
//! An injected error has the chosen kind, the provider and operation set, and the kind's default
//! retryability, exactly as a provider's own error would.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;

use super::rng::SplitMix64;
use super::wrap::{Call, Intercept};
use super::{BoxFuture, Operation, intercept_layer};
use crate::error::{Error, ErrorKind, Result};

/// Which operations a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operations {
    /// Every operation.
    All,
    /// Everything but the three scaling writes.
    Reads,
    /// `set_desired_capacity`, `remove_instances`, `set_instance_class`.
    Writes,
    /// Exactly these.
    Only(Vec<Operation>),
}

impl Operations {
    /// Whether `operation` is selected.
    pub fn matches(&self, operation: Operation) -> bool {
        match self {
            Operations::All => true,
            Operations::Reads => !operation.is_write(),
            Operations::Writes => operation.is_write(),
            Operations::Only(list) => list.contains(&operation),
        }
    }
}

impl From<Operation> for Operations {
    fn from(operation: Operation) -> Self {
        Operations::Only(vec![operation])
    }
}

/// One fault the layer injected, for assertions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InjectedFault {
    /// Provider name.
    pub provider: String,
    /// The failed operation.
    pub operation: Operation,
    /// The error kind returned.
    pub kind: ErrorKind,
    /// Whether a script (rather than the random rate) chose it.
    pub scripted: bool,
}

#[derive(Debug)]
struct ErrorRule {
    operations: Operations,
    kind: ErrorKind,
    rate: f64,
}

#[derive(Debug)]
struct LatencyRule {
    operations: Operations,
    min: Duration,
    max: Duration,
}

#[derive(Debug)]
struct Script {
    operations: Operations,
    kind: ErrorKind,
    remaining: u32,
}

#[derive(Debug)]
struct FaultState {
    seed: u64,
    rng: SplitMix64,
    errors: Vec<ErrorRule>,
    latencies: Vec<LatencyRule>,
    scripts: Vec<Script>,
    injected: Vec<InjectedFault>,
    calls: u64,
}

/// Injects errors and latency; see the [module docs](self). Clones share state, so a test
/// keeps a clone to script faults and read what was injected after wrapping a provider.
#[derive(Debug, Clone)]
pub struct FaultLayer {
    state: Arc<Mutex<FaultState>>,
}

/// What one call should suffer.
struct Plan {
    delay: Option<Duration>,
    error: Option<(ErrorKind, bool)>,
}

impl FaultLayer {
    /// A layer that injects nothing yet, with its generator seeded by `seed`.
    pub fn new(seed: u64) -> Self {
        FaultLayer {
            state: Arc::new(Mutex::new(FaultState {
                seed,
                rng: SplitMix64::new(seed),
                errors: Vec::new(),
                latencies: Vec::new(),
                scripts: Vec::new(),
                injected: Vec::new(),
                calls: 0,
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fails each call of `operations` with `kind` with probability `rate` (clamped to
    /// `[0, 1]`; NaN counts as 0). Rules are checked in the order added; the first that fires
    /// wins.
    pub fn with_error_rate(
        self,
        operations: impl Into<Operations>,
        kind: ErrorKind,
        rate: f64,
    ) -> Self {
        let rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        self.state().errors.push(ErrorRule {
            operations: operations.into(),
            kind,
            rate,
        });
        self
    }

    /// Delays each call of `operations` by a duration uniform in `[min, max]` (swapped when
    /// given the wrong way round).
    pub fn with_latency(
        self,
        operations: impl Into<Operations>,
        min: Duration,
        max: Duration,
    ) -> Self {
        let (min, max) = if min <= max { (min, max) } else { (max, min) };
        self.state().latencies.push(LatencyRule {
            operations: operations.into(),
            min,
            max,
        });
        self
    }

    /// Fails the next `count` calls of `operations` with `kind`, before any random fault.
    pub fn fail_next(&self, operations: impl Into<Operations>, count: u32, kind: ErrorKind) {
        self.state().scripts.push(Script {
            operations: operations.into(),
            kind,
            remaining: count,
        });
    }

    /// Every fault injected so far, oldest first.
    pub fn injected(&self) -> Vec<InjectedFault> {
        self.state().injected.clone()
    }

    /// How many calls went through the layer (failed or not).
    pub fn calls(&self) -> u64 {
        self.state().calls
    }

    fn plan(&self, call: Call<'_>) -> Plan {
        let mut state = self.state();
        let state = &mut *state;
        state.calls += 1;
        let operation = call.operation;

        let delay = match state
            .latencies
            .iter()
            .find(|rule| rule.operations.matches(operation))
        {
            Some(rule) => {
                let u = state.rng.next_f64();
                Some(rule.min + (rule.max - rule.min).mul_f64(u))
            }
            None => None,
        };

        let mut error = None;
        if let Some(script) = state
            .scripts
            .iter_mut()
            .find(|s| s.remaining > 0 && s.operations.matches(operation))
        {
            script.remaining -= 1;
            error = Some((script.kind, true));
        }
        state.scripts.retain(|s| s.remaining > 0);
        if error.is_none() {
            for rule in state
                .errors
                .iter()
                .filter(|r| r.operations.matches(operation))
            {
                if state.rng.next_f64() < rule.rate {
                    error = Some((rule.kind, false));
                    break;
                }
            }
        }
        if let Some((kind, scripted)) = error {
            state.injected.push(InjectedFault {
                provider: call.provider.to_owned(),
                operation,
                kind,
                scripted,
            });
        }
        Plan { delay, error }
    }

    fn interceptor(&self, _provider: &str) -> FaultLayer {
        self.clone()
    }
}

intercept_layer!(FaultLayer);

impl Intercept for FaultLayer {
    fn label(&self) -> &'static str {
        "Fault"
    }

    fn around<'a, T, F>(&'a self, call: Call<'a>, mut attempt: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> BoxFuture<'a, Result<T>> + Send + 'a,
    {
        let plan = self.plan(call);
        Box::pin(async move {
            if let Some(delay) = plan.delay {
                tokio::time::sleep(delay).await;
            }
            match plan.error {
                Some((kind, scripted)) => {
                    let how = if scripted {
                        "scripted".to_owned()
                    } else {
                        format!("random, seed {}", self.state().seed)
                    };
                    Err(Error::new(kind, format!("injected fault ({how})"))
                        .with_provider(call.provider)
                        .with_operation(call.operation.as_str()))
                }
                None => attempt().await,
            }
        })
    }
}
