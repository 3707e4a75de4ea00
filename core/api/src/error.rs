//! The one error type every provider, layer and the engine speak.
//!
//! An [`Error`] carries a meaning-based [`ErrorKind`], whether a retry may help, the provider and
//! operation that failed, a human message and the underlying source. Providers keep their own
//! precise errors and convert into this one at the trait boundary.

use std::fmt;

/// What went wrong, by meaning rather than by provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The group, instance or class does not exist.
    NotFound,
    /// The provider asked us to slow down.
    Throttled,
    /// An account or project quota would be exceeded.
    QuotaExceeded,
    /// The cloud has no capacity of the requested class in the zone.
    CapacityUnavailable,
    /// The provider does not support this operation (see its capabilities).
    Unsupported,
    /// The request was malformed or out of bounds (for example desired above max).
    InvalidInput,
    /// Credentials missing or rejected.
    PermissionDenied,
    /// A conflicting operation is in flight (for example a scaling activity or refresh).
    Conflict,
    /// A temporary failure: network, timeout, 5xx.
    Transient,
    /// The operation did not finish in time.
    Timeout,
    /// Configuration given to a provider or plugin is invalid.
    Config,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Whether an operation that failed with this kind may succeed if tried again unchanged.
    pub fn is_retryable_by_default(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttled | ErrorKind::Transient | ErrorKind::Timeout
        )
    }

    /// A short stable name, for metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Throttled => "throttled",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::CapacityUnavailable => "capacity_unavailable",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Transient => "transient",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Config => "config",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error returned by every trait in Hoist. One pointer wide, so `Result`s stay small.
#[derive(Debug)]
pub struct Error(Box<Inner>);

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    retryable: bool,
    provider: String,
    operation: String,
    field: Option<String>,
    message: String,
    source: Option<BoxError>,
}

/// Result with Hoist's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message; retryability follows the kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error(Box::new(Inner {
            kind,
            retryable: kind.is_retryable_by_default(),
            provider: String::new(),
            operation: String::new(),
            field: None,
            message: message.into(),
            source: None,
        }))
    }

    /// Shorthand for [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// Shorthand for [`ErrorKind::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// Shorthand for [`ErrorKind::Unsupported`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// Shorthand for [`ErrorKind::Transient`].
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, message)
    }

    /// Shorthand for [`ErrorKind::Config`].
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// Names the provider (`aws`, `sim`, a plugin name, ...).
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.0.provider = provider.into();
        self
    }

    /// Names the operation (`set_desired_capacity`, ...).
    pub fn with_operation(mut self, operation: impl Into<String>) -> Self {
        self.0.operation = operation.into();
        self
    }

    /// Names the settings field the error is about, as a dotted path relative to the settings
    /// the provider was given (`region`, `groups[0].name`). Hosts point at that field's line in
    /// the policy file; the message then need not repeat the path.
    pub fn with_field(mut self, path: impl Into<String>) -> Self {
        self.0.field = Some(path.into());
        self
    }

    /// Settings error for the field at `path`: shorthand for
    /// `Error::config(message).with_field(path)`.
    pub fn config_field(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::config(message).with_field(path)
    }

    /// The settings field the error is about, when one was named.
    pub fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.0.source = Some(source.into());
        self
    }

    /// Overrides whether a retry may help.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.0.retryable = retryable;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// Whether trying the same operation again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.0.retryable
    }

    /// The provider that failed, empty when not set.
    pub fn provider(&self) -> &str {
        &self.0.provider
    }

    /// The operation that failed, empty when not set.
    pub fn operation(&self) -> &str {
        &self.0.operation
    }

    /// The message without provider and operation.
    pub fn message(&self) -> &str {
        &self.0.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0.provider.is_empty(), self.0.operation.is_empty()) {
            (false, false) => write!(f, "{} {}: ", self.0.provider, self.0.operation)?,
            (false, true) => write!(f, "{}: ", self.0.provider)?,
            (true, false) => write!(f, "{}: ", self.0.operation)?,
            (true, true) => {}
        }
        if let Some(field) = &self.0.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{} ({})", self.0.message, self.0.kind)?;
        if let Some(source) = &self.0.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryability_follows_kind_unless_overridden() {
        assert!(Error::new(ErrorKind::Throttled, "slow down").is_retryable());
        assert!(!Error::new(ErrorKind::InvalidInput, "bad").is_retryable());
        assert!(
            Error::new(ErrorKind::Other, "x")
                .with_retryable(true)
                .is_retryable()
        );
    }

    #[test]
    fn display_names_provider_and_operation() {
        let e = Error::not_found("group web")
            .with_provider("sim")
            .with_operation("describe_group");
        assert_eq!(e.to_string(), "sim describe_group: group web (not_found)");
    }
}
