//! Turns Google Cloud errors into Hoist's [`hoist_api::Error`], by meaning.
//!
//! | from Google Cloud | kind | retried |
//! |---|---|---|
//! | 429, and 403 `rateLimitExceeded`/`userRateLimitExceeded`/`RESOURCE_OPERATION_RATE_EXCEEDED` (how Compute Engine reports a rate quota), after the client's own retries | `Throttled` | yes |
//! | 5xx, no reply, a dropped connection | `Transient` | yes |
//! | `quotaExceeded`, `QUOTA_EXCEEDED` | `QuotaExceeded` | no |
//! | `ZONE_RESOURCE_POOL_EXHAUSTED` (and `_WITH_DETAILS`), `RESOURCE_POOL_EXHAUSTED`, stockouts | `CapacityUnavailable` | no |
//! | 401, 403 (`forbidden`, `PERMISSION_DENIED`), credentials that cannot be loaded | `PermissionDenied` | no |
//! | 404 (`notFound`) | `NotFound` | no |
//! | 409, 412 (`conditionNotMet`), and `resourceNotReady` (another operation running, sent as 400) | `Conflict` | yes |
//! | other 400s (`invalid`, `badRequest`) | `InvalidInput` | no |
//!
//! Only Google's status, reason and message are kept: never a request, a header or a token.

use hoist_api::{Error, ErrorKind};

/// The provider name used in every error and log line of this crate.
pub(crate) const PROVIDER: &str = "gcp";

const QUOTA_CODES: &[&str] = &["quotaExceeded", "QUOTA_EXCEEDED"];

const CAPACITY_CODES: &[&str] = &[
    "ZONE_RESOURCE_POOL_EXHAUSTED",
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    "RESOURCE_POOL_EXHAUSTED",
    "REGION_RESOURCE_POOL_EXHAUSTED",
    "STOCKOUT",
    "resourcePoolExhausted",
];

/// Reasons Google gives when a rate quota is exceeded: Compute Engine answers them with 403.
pub const RATE_LIMIT_REASONS: &[&str] = &[
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "RESOURCE_OPERATION_RATE_EXCEEDED",
];

/// Whether `reason` says a rate quota was exceeded (retryable, whatever the status).
pub fn is_rate_limit(reason: &str) -> bool {
    RATE_LIMIT_REASONS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(reason))
}

/// The kind an answer means, from its HTTP status and its reason or code.
pub fn kind_of(status: u16, reason: &str) -> ErrorKind {
    if is_rate_limit(reason) {
        return ErrorKind::Throttled;
    }
    if QUOTA_CODES.iter().any(|c| c.eq_ignore_ascii_case(reason)) {
        return ErrorKind::QuotaExceeded;
    }
    if CAPACITY_CODES
        .iter()
        .any(|c| c.eq_ignore_ascii_case(reason))
        || reason.to_ascii_uppercase().contains("STOCKOUT")
    {
        return ErrorKind::CapacityUnavailable;
    }
    if reason.eq_ignore_ascii_case("resourceNotReady") {
        // Another operation is running on the resource: try again once it ends.
        return ErrorKind::Conflict;
    }
    match status {
        429 => ErrorKind::Throttled,
        401 | 403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        409 | 412 => ErrorKind::Conflict,
        408 | 504 => ErrorKind::Timeout,
        400 | 405 | 411 | 413 | 422 => ErrorKind::InvalidInput,
        500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Other,
    }
}

fn hint(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::PermissionDenied => {
            " (the identity lacks this permission: see docs/providers/gcp.md for the roles it needs)"
        }
        ErrorKind::QuotaExceeded => {
            " (ask for a higher quota in this region, or use another machine type)"
        }
        _ => "",
    }
}

/// An error of `kind` from `operation`, not from Google (a check the provider made itself).
pub(crate) fn local(kind: ErrorKind, operation: &str, message: impl Into<String>) -> Error {
    Error::new(kind, message)
        .with_provider(PROVIDER)
        .with_operation(operation)
}

/// An answer Google gave: `status`, its `reason` (or operation error code) and `message`.
pub(crate) fn from_status(operation: &str, status: u16, reason: &str, message: &str) -> Error {
    let kind = kind_of(status, reason);
    let text = if reason.is_empty() {
        format!("HTTP {status}: {message}{}", hint(kind))
    } else {
        format!("{reason} (HTTP {status}): {message}{}", hint(kind))
    };
    local(kind, operation, text)
}

/// The reason and message of a Google error body: `error.errors[0].reason` (Compute Engine),
/// else `error.status`, and `error.message`.
pub fn error_body(body: &[u8]) -> (String, String) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (String::new(), String::new());
    };
    let error = value.get("error").unwrap_or(&value);
    let reason = error
        .get("errors")
        .and_then(|e| e.get(0))
        .and_then(|e| e.get("reason"))
        .and_then(|r| r.as_str())
        .or_else(|| error.get("status").and_then(|s| s.as_str()))
        .unwrap_or_default();
    let message = error
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or_default();
    (reason.to_owned(), message.to_owned())
}

/// A google-cloud-rust error from `operation`, as a Hoist error.
pub(crate) fn from_gax(operation: &str, error: google_cloud_gax::error::Error) -> Error {
    if let Some(status) = error.http_status_code() {
        let (mut reason, mut message) = error
            .http_payload()
            .map(|p| error_body(p))
            .unwrap_or_default();
        if let Some(s) = error.status() {
            if message.is_empty() {
                message = s.message.clone();
            }
            if reason.is_empty() {
                reason = reason_of(s).unwrap_or_else(|| s.code.name().to_owned());
            }
        }
        if message.is_empty() {
            message = "no message".to_owned();
        }
        return from_status(operation, status, &reason, &message);
    }
    if let Some(s) = error.status() {
        let status = http_of(s.code.name());
        let reason = reason_of(s).unwrap_or_else(|| s.code.name().to_owned());
        return from_status(operation, status, &reason, &s.message);
    }
    if error.is_authentication() {
        return local(
            ErrorKind::PermissionDenied,
            operation,
            format!(
                "could not get Google Cloud credentials: {}. Use Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS pointing at a service account key, workload identity, or `gcloud auth application-default login`",
                first_line(&error.to_string())
            ),
        );
    }
    if error.is_timeout() {
        return local(
            ErrorKind::Timeout,
            operation,
            first_line(&error.to_string()).to_owned(),
        );
    }
    if error.is_io() || error.is_connect() || error.is_transport() {
        return local(
            ErrorKind::Transient,
            operation,
            format!(
                "cannot reach Google Cloud: {}",
                first_line(&error.to_string())
            ),
        );
    }
    local(
        ErrorKind::Other,
        operation,
        first_line(&error.to_string()).to_owned(),
    )
}

/// The reason of an error, from its body or the client's `ErrorInfo` details.
pub fn reason_of_error(error: &google_cloud_gax::error::Error) -> String {
    let from_body = error
        .http_payload()
        .map(|p| error_body(p).0)
        .unwrap_or_default();
    if !from_body.is_empty() {
        return from_body;
    }
    error.status().and_then(reason_of).unwrap_or_default()
}

/// The reason of an error's first `ErrorInfo` detail (Compute Engine's `errors[].reason`, which
/// the client keeps as one).
fn reason_of(status: &google_cloud_gax::error::rpc::Status) -> Option<String> {
    status.details.iter().find_map(|d| match d {
        google_cloud_gax::error::rpc::StatusDetails::ErrorInfo(info) if !info.reason.is_empty() => {
            Some(info.reason.clone())
        }
        _ => None,
    })
}

/// The HTTP status of a gRPC code name, for errors that carry no HTTP status.
fn http_of(code: &str) -> u16 {
    match code {
        "NOT_FOUND" => 404,
        "PERMISSION_DENIED" => 403,
        "UNAUTHENTICATED" => 401,
        "RESOURCE_EXHAUSTED" => 429,
        "INVALID_ARGUMENT" | "OUT_OF_RANGE" => 400,
        "ALREADY_EXISTS" | "ABORTED" => 409,
        "FAILED_PRECONDITION" => 412,
        "DEADLINE_EXCEEDED" => 504,
        "UNAVAILABLE" => 503,
        _ => 500,
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_statuses_map_to_kinds() {
        let cases = [
            (403, "quotaExceeded", ErrorKind::QuotaExceeded),
            (200, "QUOTA_EXCEEDED", ErrorKind::QuotaExceeded),
            (
                503,
                "ZONE_RESOURCE_POOL_EXHAUSTED",
                ErrorKind::CapacityUnavailable,
            ),
            (
                200,
                "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
                ErrorKind::CapacityUnavailable,
            ),
            (429, "rateLimitExceeded", ErrorKind::Throttled),
            (403, "rateLimitExceeded", ErrorKind::Throttled),
            (
                403,
                "RESOURCE_OPERATION_RATE_EXCEEDED",
                ErrorKind::Throttled,
            ),
            (403, "forbidden", ErrorKind::PermissionDenied),
            (404, "notFound", ErrorKind::NotFound),
            (412, "conditionNotMet", ErrorKind::Conflict),
            (400, "resourceNotReady", ErrorKind::Conflict),
            (400, "invalid", ErrorKind::InvalidInput),
            (503, "", ErrorKind::Transient),
        ];
        for (status, reason, kind) in cases {
            assert_eq!(kind_of(status, reason), kind, "{status} {reason}");
        }
        let body = br#"{"error": {"code": 403, "message": "Quota 'CPUS' exceeded.", "errors": [{"reason": "quotaExceeded"}]}}"#;
        assert_eq!(
            error_body(body),
            (
                "quotaExceeded".to_owned(),
                "Quota 'CPUS' exceeded.".to_owned()
            )
        );
        assert!(from_status("resize", 429, "rateLimitExceeded", "x").is_retryable());
        assert!(!from_status("resize", 403, "forbidden", "x").is_retryable());
    }
}
