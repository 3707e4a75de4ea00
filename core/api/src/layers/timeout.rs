//! Bounds the duration of every provider call. A call that has not answered in time is dropped
//! and fails with [`ErrorKind::Timeout`], which is retryable, so a retry layer outside tries
//! again. Per-operation limits override the default (a slow `remove_instances`, a fast
//! `describe_group`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::wrap::{Call, Intercept};
use super::{BoxFuture, Operation, intercept_layer};
use crate::error::{Error, ErrorKind, Result};

/// Fails calls that take longer than a limit; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    default_limit: Duration,
    per_operation: BTreeMap<Operation, Duration>,
}

impl TimeoutLayer {
    /// Every call gets at most `default_limit`.
    pub fn new(default_limit: Duration) -> Self {
        TimeoutLayer {
            default_limit,
            per_operation: BTreeMap::new(),
        }
    }

    /// `operation` gets `limit` instead of the default.
    pub fn with_limit(mut self, operation: Operation, limit: Duration) -> Self {
        self.per_operation.insert(operation, limit);
        self
    }

    /// The limit for `operation`.
    pub fn limit(&self, operation: Operation) -> Duration {
        self.per_operation
            .get(&operation)
            .copied()
            .unwrap_or(self.default_limit)
    }

    fn interceptor(&self, _provider: &str) -> TimeoutLayer {
        self.clone()
    }
}

intercept_layer!(TimeoutLayer);

impl Intercept for TimeoutLayer {
    fn label(&self) -> &'static str {
        "Timeout"
    }

    fn around<'a, T, F>(&'a self, call: Call<'a>, mut attempt: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> BoxFuture<'a, Result<T>> + Send + 'a,
    {
        let limit = self.limit(call.operation);
        Box::pin(async move {
            match tokio::time::timeout(limit, attempt()).await {
                Ok(result) => result,
                Err(_elapsed) => Err(Error::new(
                    ErrorKind::Timeout,
                    format!("no answer within {} ms", limit.as_millis()),
                )
                .with_provider(call.provider)
                .with_operation(call.operation.as_str())),
            }
        })
    }
}
