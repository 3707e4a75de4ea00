//! Turns Azure errors into Hoist's [`hoist_api::Error`], by meaning.
//!
//! | from Azure | kind | retried |
//! |---|---|---|
//! | 429 Too Many Requests (after the client's own retries, which honour `Retry-After`) | `Throttled` | yes |
//! | 5xx, no reply, a dropped connection | `Transient` | yes |
//! | `QuotaExceeded`, or `OperationNotAllowed` about a quota | `QuotaExceeded` | no |
//! | `SkuNotAvailable`, `AllocationFailed`, `ZonalAllocationFailed`, `OverconstrainedAllocationRequest` and the other allocation failures | `CapacityUnavailable` | no |
//! | 401, 403 (`AuthenticationFailed`, `AuthorizationFailed`, `InvalidAuthenticationToken`, ...), no credentials | `PermissionDenied` | no |
//! | 404 (`ResourceNotFound`, `ResourceGroupNotFound`, `SubscriptionNotFound`, ...) | `NotFound` | no |
//! | 409 `OperationNotAllowed` while another operation runs, `Conflict` | `Conflict` | yes |
//! | other 400s (`InvalidParameter`, `InvalidSubscriptionId`, a bad `api-version`, ...) | `InvalidInput` | no |
//!
//! Only Azure's status, error code and message are kept: never a request, a header, a token or a
//! client secret.

use azure_core::error::ErrorKind as AzureKind;
use hoist_api::{Error, ErrorKind};

/// The provider name used in every error and log line of this crate.
pub(crate) const PROVIDER: &str = "azure";

/// Error codes Azure gives when a region or zone has no capacity for a size.
const CAPACITY_CODES: &[&str] = &[
    "SkuNotAvailable",
    "AllocationFailed",
    "ZonalAllocationFailed",
    "OverconstrainedAllocationRequest",
    "OverconstrainedZonalAllocationRequest",
    "SpotAllocationFailed",
    "SkuNotAvailableInZone",
    "NotAvailableForSubscription",
];

/// The kind an Azure answer means, from its HTTP status, its error code and its message.
pub fn kind_of(status: u16, code: &str, message: &str) -> ErrorKind {
    let lower = message.to_ascii_lowercase();
    if code.eq_ignore_ascii_case("QuotaExceeded")
        || (code.eq_ignore_ascii_case("OperationNotAllowed") && lower.contains("quota"))
    {
        return ErrorKind::QuotaExceeded;
    }
    if CAPACITY_CODES.iter().any(|c| c.eq_ignore_ascii_case(code)) {
        return ErrorKind::CapacityUnavailable;
    }
    match status {
        429 => ErrorKind::Throttled,
        401 | 403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        408 => ErrorKind::Timeout,
        400 | 405 | 413 | 415 | 422 => ErrorKind::InvalidInput,
        500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Other,
    }
}

/// A hint added to errors of `kind`, saying what to do about them.
fn hint(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::PermissionDenied => {
            " (the identity lacks this permission: see docs/providers/azure.md for the role it needs)"
        }
        ErrorKind::QuotaExceeded => {
            " (ask for a higher vCPU quota for this family and region, or use another size)"
        }
        _ => "",
    }
}

/// An error of `kind` from `operation`, not from Azure (a check the provider made itself).
pub(crate) fn local(kind: ErrorKind, operation: &str, message: impl Into<String>) -> Error {
    Error::new(kind, message)
        .with_provider(PROVIDER)
        .with_operation(operation)
}

/// An error Azure answered with: `status`, its `code` and `message`, during `operation`.
pub(crate) fn from_status(operation: &str, status: u16, code: &str, message: &str) -> Error {
    let kind = kind_of(status, code, message);
    let code = if code.is_empty() { "" } else { code };
    let text = if code.is_empty() {
        format!("HTTP {status}: {message}{}", hint(kind))
    } else {
        format!("{code} (HTTP {status}): {message}{}", hint(kind))
    };
    local(kind, operation, text)
}

/// An `azure_core` error from `operation`, as a Hoist error.
pub(crate) fn from_azure(operation: &str, error: azure_core::Error) -> Error {
    if let Some(http) = error.as_http_error() {
        let status = u16::from(http.status());
        let code = http.error_code().unwrap_or_default().to_owned();
        let message = http
            .error_message()
            .map(str::to_owned)
            .unwrap_or_else(|| "no message".to_owned());
        return from_status(operation, status, &code, &message);
    }
    match error.kind() {
        AzureKind::HttpResponse { status, error_code } => {
            let status = u16::from(*status);
            let code = error_code.clone().unwrap_or_default();
            from_status(operation, status, &code, "Azure refused the request")
        }
        AzureKind::Credential => local(
            ErrorKind::PermissionDenied,
            operation,
            format!(
                "could not get an Azure access token: {}. Give credentials through the standard \
                 chain: AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (a service \
                 principal), a managed identity, or `az login`",
                first_line(&error.to_string())
            ),
        ),
        AzureKind::Io => local(
            ErrorKind::Transient,
            operation,
            format!("cannot reach Azure: {}", first_line(&error.to_string())),
        ),
        AzureKind::DataConversion => local(
            ErrorKind::Other,
            operation,
            format!(
                "Azure sent an answer this client cannot read: {}",
                first_line(&error.to_string())
            ),
        ),
        _ => local(
            ErrorKind::Other,
            operation,
            first_line(&error.to_string()).to_owned(),
        ),
    }
}

/// The first line of a message (azure_core's messages can carry a whole response).
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_map_to_kinds() {
        let cases = [
            (409, "QuotaExceeded", "", ErrorKind::QuotaExceeded),
            (
                409,
                "OperationNotAllowed",
                "results in exceeding approved standardDSv5Family Cores quota",
                ErrorKind::QuotaExceeded,
            ),
            (
                409,
                "OperationNotAllowed",
                "another operation is in progress",
                ErrorKind::Conflict,
            ),
            (409, "SkuNotAvailable", "", ErrorKind::CapacityUnavailable),
            (200, "AllocationFailed", "", ErrorKind::CapacityUnavailable),
            (429, "TooManyRequests", "", ErrorKind::Throttled),
            (401, "AuthenticationFailed", "", ErrorKind::PermissionDenied),
            (403, "AuthorizationFailed", "", ErrorKind::PermissionDenied),
            (404, "ResourceNotFound", "", ErrorKind::NotFound),
            (400, "InvalidParameter", "", ErrorKind::InvalidInput),
            (400, "InvalidSubscriptionId", "", ErrorKind::InvalidInput),
            (503, "", "", ErrorKind::Transient),
            (500, "InternalServerError", "", ErrorKind::Transient),
        ];
        for (status, code, message, kind) in cases {
            assert_eq!(kind_of(status, code, message), kind, "{status} {code}");
        }
        let e = from_status("set_desired_capacity", 429, "TooManyRequests", "slow down");
        assert!(e.is_retryable());
        let e = from_status("describe_group", 403, "AuthorizationFailed", "no");
        assert!(!e.is_retryable());
        assert!(
            e.to_string().contains("AuthorizationFailed (HTTP 403)"),
            "{e}"
        );
    }
}
