//! Turns kube-rs errors into Hoist's [`hoist_api::Error`], by meaning.
//!
//! | from the API server | kind | retried |
//! |---|---|---|
//! | 404 Not Found, 410 Gone | `NotFound` | no |
//! | 401 Unauthorized, 403 Forbidden | `PermissionDenied` | no |
//! | 409 Conflict | `Conflict` (re-read and tried again by the provider first) | yes |
//! | 429 Too Many Requests | `Throttled` | yes |
//! | 400, 422 Invalid | `InvalidInput` | no |
//! | 5xx, no reply (connection refused, reset, timeout) | `Transient` / `Timeout` | yes |
//!
//! Only the server's status, reason and message are kept: never the request, its headers, the
//! kubeconfig or any token.

use hoist_api::{Error, ErrorKind};

/// The provider name used in every error and log line of this crate.
pub(crate) const PROVIDER: &str = "kubernetes";

/// The HTTP status of an API error, when the server answered.
pub fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// The kind an API status code means.
pub fn kind_of_status(code: u16) -> ErrorKind {
    match code {
        404 | 410 => ErrorKind::NotFound,
        401 | 403 => ErrorKind::PermissionDenied,
        409 => ErrorKind::Conflict,
        429 => ErrorKind::Throttled,
        400 | 405 | 406 | 415 | 422 => ErrorKind::InvalidInput,
        500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Other,
    }
}

/// `error` from `operation` on `what` (`deployment/default/web`), as a Hoist error.
pub fn from_kube(error: kube::Error, operation: &str, what: &str) -> Error {
    let (kind, message) = match &error {
        kube::Error::Api(status) => {
            let kind = kind_of_status(status.code);
            let hint = match kind {
                ErrorKind::PermissionDenied => {
                    " (the credentials lack this permission: see deploy/kubernetes/rbac.yaml)"
                }
                _ => "",
            };
            let reason = if status.reason.is_empty() {
                String::new()
            } else {
                format!("{} ", status.reason)
            };
            (
                kind,
                format!(
                    "{operation} {what}: {reason}(HTTP {}): {}{hint}",
                    status.code, status.message
                ),
            )
        }
        kube::Error::HyperError(e) => (
            ErrorKind::Transient,
            format!("{operation} {what}: cannot reach the Kubernetes API server: {e}"),
        ),
        kube::Error::Service(e) => {
            let text = e.to_string();
            let kind = if text.to_ascii_lowercase().contains("timed out")
                || text.to_ascii_lowercase().contains("timeout")
            {
                ErrorKind::Timeout
            } else {
                ErrorKind::Transient
            };
            (
                kind,
                format!("{operation} {what}: cannot reach the Kubernetes API server: {text}"),
            )
        }
        kube::Error::Auth(e) => (
            ErrorKind::PermissionDenied,
            format!("{operation} {what}: authentication failed: {e}"),
        ),
        kube::Error::SerdeError(e) => (
            ErrorKind::Other,
            format!("{operation} {what}: unexpected reply from the API server: {e}"),
        ),
        other => (ErrorKind::Other, format!("{operation} {what}: {other}")),
    };
    let error = Error::new(kind, message).with_provider(PROVIDER);
    // A conflict is a concurrent writer: the provider re-reads and tries again itself, and one
    // that outlasts those tries may still pass on a later attempt.
    if kind == ErrorKind::Conflict {
        error.with_retryable(true)
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "code": code, "reason": reason, "message": message, "status": "Failure"
        }))
        .unwrap();
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn api_statuses_map_to_kinds_and_retryability() {
        let cases = [
            (404, ErrorKind::NotFound, false),
            (403, ErrorKind::PermissionDenied, false),
            (409, ErrorKind::Conflict, true),
            (429, ErrorKind::Throttled, true),
            (422, ErrorKind::InvalidInput, false),
            (503, ErrorKind::Transient, true),
        ];
        for (code, kind, retryable) in cases {
            let e = from_kube(
                api_error(code, "Reason", "text"),
                "get",
                "deployment/default/web",
            );
            assert_eq!(e.kind(), kind, "{code}");
            assert_eq!(e.is_retryable(), retryable, "{code}");
            assert!(e.to_string().contains("deployment/default/web"), "{e}");
        }
    }

    #[test]
    fn a_permission_error_points_at_the_role() {
        let e = from_kube(
            api_error(
                403,
                "Forbidden",
                "deployments.apps \"web\" is forbidden: User \"x\" cannot patch resource",
            ),
            "scale",
            "deployment/default/web",
        );
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("rbac.yaml"), "{e}");
    }
}
