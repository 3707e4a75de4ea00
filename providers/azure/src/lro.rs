//! Long-running operations: an accepted write (`202 Accepted`) is followed to its end through the
//! `Azure-AsyncOperation` header (an operation status resource: `InProgress`, then `Succeeded`,
//! `Failed` or `Canceled`) or, when Azure gives only that, the `Location` header (`202` while
//! running, `200`/`204` when done), as the Azure REST API guidelines describe. Each poll waits
//! what `Retry-After` asks, else the configured interval.
//!
//! A failed operation becomes an error by its code: `AllocationFailed` is
//! `CapacityUnavailable`, `QuotaExceeded` is `QuotaExceeded`, and so on ([`crate::errors`]).

use std::time::Duration;

use azure_core::Url;
use hoist_api::{ErrorKind, Result};
use serde::Deserialize;

use crate::errors::{from_status, local};
use crate::rest::{Answer, Rest};

/// The shortest wait between polls, whatever `Retry-After` says.
const MIN_POLL: Duration = Duration::from_millis(50);

/// What Azure answered to a write: its status and where to follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The HTTP status of the write (`200`, `201`, `202`).
    pub status: u16,
    /// The operation status resource (`Azure-AsyncOperation`).
    pub async_operation: Option<Url>,
    /// The operation result resource (`Location`).
    pub location: Option<Url>,
    /// The wait before the first poll (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl Accepted {
    /// Reads the follow-up headers of an answer to a write.
    pub fn from_headers(status: u16, header: impl Fn(&'static str) -> Option<String>) -> Self {
        Accepted {
            status,
            async_operation: header("azure-asyncoperation").and_then(|u| Url::parse(&u).ok()),
            location: header("location").and_then(|u| Url::parse(&u).ok()),
            retry_after: header("retry-after").and_then(|s| retry_after(&s)),
        }
    }

    /// Whether there is anything to follow.
    pub fn is_pending(&self) -> bool {
        self.status == 202 || self.async_operation.is_some()
    }
}

/// `Retry-After` in seconds (an HTTP date is not used: the poll interval applies then).
pub fn retry_after(value: &str) -> Option<Duration> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(3600)))
}

/// How to follow operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polling {
    /// The wait between polls when Azure does not say.
    pub interval: Duration,
    /// How long to follow one operation before reporting a timeout.
    pub timeout: Duration,
}

#[derive(Debug, Deserialize)]
struct OperationStatus {
    status: String,
    #[serde(default)]
    error: Option<OperationError>,
}

#[derive(Debug, Deserialize)]
struct OperationError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Follows `accepted` to its end: `Ok` when it succeeded, the operation's error when it failed.
pub async fn follow(
    rest: &Rest,
    operation: &str,
    accepted: &Accepted,
    polling: Polling,
) -> Result<()> {
    if !accepted.is_pending() {
        return Ok(());
    }
    let started = tokio::time::Instant::now();
    let mut wait = accepted.retry_after.unwrap_or(polling.interval);
    loop {
        let remaining = polling.timeout.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            return Err(local(
                ErrorKind::Timeout,
                operation,
                format!(
                    "the operation was still running after {:?}; Azure goes on with it, and the next describe shows its effect",
                    polling.timeout
                ),
            )
            .with_retryable(false));
        }
        tokio::time::sleep(wait.max(MIN_POLL).min(remaining)).await;
        let (done, answer) = if let Some(url) = &accepted.async_operation {
            let answer = rest.get(operation, url).await?;
            let status: OperationStatus = answer.json(operation, "the operation status")?;
            match status.status.as_str() {
                "Succeeded" => (true, answer),
                "Failed" | "Canceled" | "Cancelled" => {
                    let (code, message) = status
                        .error
                        .map(|e| (e.code, e.message))
                        .unwrap_or_else(|| (status.status.clone(), String::new()));
                    let message = if message.is_empty() {
                        format!("the operation ended {}", status.status)
                    } else {
                        message
                    };
                    // The operation's own failure: judged by its code, as if Azure had refused
                    // the write (status 200 carries no meaning of its own).
                    return Err(from_status(operation, 200, &code, &message));
                }
                _ => (false, answer),
            }
        } else if let Some(url) = &accepted.location {
            let answer = rest.get(operation, url).await?;
            (answer.status != 202, answer)
        } else {
            return Ok(());
        };
        if done {
            return Ok(());
        }
        wait = next_wait(&answer, polling.interval);
    }
}

fn next_wait(answer: &Answer, interval: Duration) -> Duration {
    answer
        .header("retry-after")
        .and_then(retry_after)
        .unwrap_or(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_reads_the_follow_up_headers() {
        let a = Accepted::from_headers(202, |name| match name {
            "azure-asyncoperation" => {
                Some("https://management.azure.com/ops/1?api-version=2024-07-01".into())
            }
            "retry-after" => Some("7".into()),
            _ => None,
        });
        assert!(a.is_pending());
        assert_eq!(a.retry_after, Some(Duration::from_secs(7)));
        assert!(a.location.is_none());
        let done = Accepted::from_headers(200, |_| None);
        assert!(!done.is_pending());
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
