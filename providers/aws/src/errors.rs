//! Turns AWS SDK errors into Hoist's [`hoist_api::Error`].
//!
//! Every SDK operation fails with an `SdkError<E, HttpResponse>`; this module classifies it by the
//! AWS error code and HTTP status into an [`ErrorKind`]: throttling and 5xx are retryable,
//! validation errors, missing resources, quotas and insufficient capacity get their own kinds.
//! Only the error code and the service's message are kept: never the request, its headers or
//! any credential.

use std::fmt;

use aws_sdk_autoscaling::config::http::HttpResponse;
use aws_sdk_autoscaling::error::{ProvideErrorMetadata, SdkError};
use hoist_api::{Error, ErrorKind};

/// The provider name used in every error and log line of this crate.
pub(crate) const PROVIDER: &str = "aws";

/// The precise AWS error behind a Hoist error: the service's error code, its message and the HTTP
/// status, without the request or anything that could hold a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsServiceError {
    /// The AWS error code (`ValidationError`, `Throttling`, ...), when the service sent one.
    pub code: Option<String>,
    /// The service's message, when it sent one.
    pub message: Option<String>,
    /// The HTTP status of the reply, when there was a reply.
    pub status: Option<u16>,
}

impl fmt::Display for AwsServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code.as_deref().unwrap_or("unknown AWS error"))?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {status})")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AwsServiceError {}

/// Classifies an AWS error code and HTTP status into a kind, and says whether retrying helps.
pub fn classify(
    code: Option<&str>,
    message: Option<&str>,
    status: Option<u16>,
) -> (ErrorKind, bool) {
    let code = code.unwrap_or("");
    let message = message.unwrap_or("").to_ascii_lowercase();
    let kind = match code {
        "Throttling"
        | "ThrottlingException"
        | "ThrottledException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "SlowDown"
        | "PriorRequestNotComplete"
        | "BandwidthLimitExceeded"
        | "EC2ThrottledException"
        | "ProvisionedThroughputExceededException" => ErrorKind::Throttled,
        "InsufficientInstanceCapacity"
        | "InsufficientCapacity"
        | "InsufficientHostCapacity"
        | "InsufficientReservedInstanceCapacity"
        | "InsufficientCapacityException" => ErrorKind::CapacityUnavailable,
        "LimitExceeded"
        | "LimitExceededException"
        | "ServiceQuotaExceededException"
        | "InstanceLimitExceeded"
        | "VcpuLimitExceeded"
        | "MaxSpotInstanceCountExceeded" => ErrorKind::QuotaExceeded,
        "AlreadyExists"
        | "AlreadyExistsFault"
        | "ResourceContention"
        | "ScalingActivityInProgress"
        | "ScalingActivityInProgressFault"
        | "InstanceRefreshInProgress"
        | "InstanceRefreshInProgressFault"
        | "ResourceInUse"
        | "ResourceInUseFault"
        | "IncorrectInstanceState"
        | "ConflictException" => ErrorKind::Conflict,
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "AuthFailure"
        | "UnrecognizedClientException"
        | "MissingAuthenticationToken"
        | "OptInRequired" => ErrorKind::PermissionDenied,
        "ResourceNotFoundException" | "NotFound" | "NoSuchEntity" | "DataUnavailableException" => {
            ErrorKind::NotFound
        }
        c if c.ends_with(".NotFound")
            || c.ends_with("NotFoundException")
            || c.ends_with("NotFound") =>
        {
            ErrorKind::NotFound
        }
        "ValidationError" | "ValidationException" if message.contains("not found") => {
            ErrorKind::NotFound
        }
        "ValidationError"
        | "ValidationException"
        | "InvalidParameterValue"
        | "InvalidParameterCombination"
        | "InvalidParameter"
        | "InvalidParameterException"
        | "MissingParameter"
        | "InvalidAction"
        | "InvalidQueryParameter"
        | "MalformedQueryString"
        | "InvalidInput"
        | "InvalidNextToken"
        | "InvalidNextTokenException"
        | "BillExpirationException"
        | "RequestChangedException"
        | "SerializationException" => ErrorKind::InvalidInput,
        c if c.starts_with("Invalid") && c.contains(".Malformed") => ErrorKind::InvalidInput,
        "InternalFailure"
        | "InternalError"
        | "InternalServiceError"
        | "InternalServerError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "Unavailable"
        | "InternalServiceFault"
        | "InternalFailureException" => ErrorKind::Transient,
        _ => match status {
            Some(429) => ErrorKind::Throttled,
            Some(s) if s >= 500 => ErrorKind::Transient,
            Some(401 | 403) => ErrorKind::PermissionDenied,
            Some(404) => ErrorKind::NotFound,
            Some(400) if code.starts_with("Invalid") => ErrorKind::InvalidInput,
            _ => ErrorKind::Other,
        },
    };
    let retryable = kind.is_retryable_by_default()
        || code == "ResourceContention"
        || status.is_some_and(|s| s >= 500);
    (kind, retryable)
}

/// Converts an SDK error from `operation` into a Hoist error.
pub(crate) fn from_sdk<E>(err: SdkError<E, HttpResponse>, operation: &str) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match err {
        SdkError::ServiceError(ctx) => {
            let service = ctx.err();
            let detail = AwsServiceError {
                code: service.code().map(str::to_owned),
                message: service.message().map(str::to_owned),
                status,
            };
            let (kind, retryable) = classify(
                detail.code.as_deref(),
                detail.message.as_deref(),
                detail.status,
            );
            Error::new(kind, format!("AWS rejected {operation}"))
                .with_retryable(retryable)
                .with_source(detail)
        }
        SdkError::TimeoutError(_) => {
            Error::new(ErrorKind::Timeout, format!("{operation} timed out"))
        }
        SdkError::DispatchFailure(failure) => {
            let kind = if failure.is_timeout() {
                ErrorKind::Timeout
            } else if failure.is_user() {
                ErrorKind::Config
            } else {
                ErrorKind::Transient
            };
            // A connector error holds the I/O error or a credentials-provider error, never the
            // credentials themselves.
            let mut e = Error::new(kind, format!("could not send {operation} to AWS"));
            if let Some(connector) = failure.as_connector_error() {
                e = e.with_source(connector.to_string());
            }
            e
        }
        SdkError::ResponseError(_) => Error::new(
            ErrorKind::Transient,
            format!("AWS sent an unreadable reply to {operation}"),
        )
        .with_source(AwsServiceError {
            code: None,
            message: None,
            status,
        }),
        SdkError::ConstructionFailure(_) => Error::new(
            ErrorKind::Config,
            format!("could not build the {operation} request (missing region or credentials?)"),
        ),
        _ => Error::new(ErrorKind::Other, format!("{operation} failed")),
    }
    .with_provider(PROVIDER)
    .with_operation(operation)
}

/// Extension to convert SDK results at the call site: `client.op().send().await.aws("op")?`.
pub(crate) trait SdkResultExt<T> {
    /// Converts the error into a Hoist error naming `operation`.
    fn aws(self, operation: &str) -> hoist_api::Result<T>;
}

impl<T, E> SdkResultExt<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn aws(self, operation: &str) -> hoist_api::Result<T> {
        self.map_err(|e| from_sdk(e, operation))
    }
}

/// An error raised by this crate itself (not by AWS), naming provider and operation.
pub(crate) fn local(kind: ErrorKind, operation: &str, message: impl Into<String>) -> Error {
    Error::new(kind, message)
        .with_provider(PROVIDER)
        .with_operation(operation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_errors_are_retryable() {
        for code in ["Throttling", "RequestLimitExceeded", "ThrottlingException"] {
            assert_eq!(
                classify(Some(code), None, Some(400)),
                (ErrorKind::Throttled, true)
            );
        }
        assert_eq!(
            classify(Some("InternalFailure"), None, Some(500)),
            (ErrorKind::Transient, true)
        );
        assert_eq!(
            classify(None, None, Some(503)),
            (ErrorKind::Transient, true)
        );
        assert_eq!(
            classify(Some("Weird"), None, Some(502)),
            (ErrorKind::Transient, true)
        );
        assert_eq!(
            classify(None, None, Some(429)),
            (ErrorKind::Throttled, true)
        );
    }

    #[test]
    fn validation_not_found_quota_and_capacity_map_to_their_kinds() {
        assert_eq!(
            classify(
                Some("ValidationError"),
                Some("New SetDesiredCapacity value 9 is above max value 3"),
                Some(400)
            ),
            (ErrorKind::InvalidInput, false)
        );
        assert_eq!(
            classify(
                Some("ValidationError"),
                Some("AutoScalingGroup name not found - web"),
                Some(400)
            ),
            (ErrorKind::NotFound, false)
        );
        assert_eq!(
            classify(Some("InvalidInstanceID.NotFound"), None, Some(400)),
            (ErrorKind::NotFound, false)
        );
        assert_eq!(
            classify(Some("LimitExceeded"), None, Some(400)),
            (ErrorKind::QuotaExceeded, false)
        );
        assert_eq!(
            classify(Some("VcpuLimitExceeded"), None, Some(400)),
            (ErrorKind::QuotaExceeded, false)
        );
        assert_eq!(
            classify(Some("InsufficientInstanceCapacity"), None, Some(500)),
            (ErrorKind::CapacityUnavailable, true)
        );
        assert_eq!(
            classify(Some("ResourceContention"), None, Some(500)),
            (ErrorKind::Conflict, true)
        );
        assert_eq!(
            classify(Some("ScalingActivityInProgress"), None, Some(400)),
            (ErrorKind::Conflict, false)
        );
        assert_eq!(
            classify(Some("AccessDenied"), None, Some(403)),
            (ErrorKind::PermissionDenied, false)
        );
        assert_eq!(classify(None, None, Some(418)), (ErrorKind::Other, false));
    }

    #[test]
    fn service_error_display_names_code_status_and_message() {
        let e = AwsServiceError {
            code: Some("ValidationError".into()),
            message: Some("bad".into()),
            status: Some(400),
        };
        assert_eq!(e.to_string(), "ValidationError (HTTP 400): bad");
    }
}
