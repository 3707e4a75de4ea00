//! Logging setup for the binary: structured `tracing` logs to stderr, human-readable by default
//! and JSON lines with a flag.
//!
//! ```no_run
//! use hoist_telemetry::logging::{self, LogFormat};
//! logging::init(LogFormat::Json, "info,hoist_engine=debug").expect("logging set up once");
//! tracing::info!(group = "web", desired = 4, "scaled out");
//! ```

use std::fmt;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One readable line per event, with fields as `key=value`.
    #[default]
    Human,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`, `spans`).
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "human" | "text" | "pretty" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format `{other}`; use `human` or `json`"
            )),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        })
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The level or filter directive does not parse.
    #[error(
        "invalid log level or filter `{filter}`: {message} (examples: `info`, `warn,hoist_engine=debug`)"
    )]
    BadFilter {
        /// What was given.
        filter: String,
        /// What the parser said.
        message: String,
    },
    /// A global subscriber was already installed.
    #[error("logging is already initialised: {0}")]
    AlreadyInitialised(String),
}

/// Builds the filter from `level` (an `EnvFilter` directive such as `info` or
/// `warn,hoist_engine=debug`).
pub fn filter(level: &str) -> Result<EnvFilter, LoggingError> {
    EnvFilter::builder()
        .parse(level)
        .map_err(|e| LoggingError::BadFilter {
            filter: level.to_owned(),
            message: e.to_string(),
        })
}

/// Installs the global subscriber: logs to stderr in `format`, filtered by `level` (an
/// `EnvFilter` directive; the caller decides whether `RUST_LOG` overrides a flag). Call once
/// at start-up; a second call fails with [`LoggingError::AlreadyInitialised`].
pub fn init(format: LogFormat, level: &str) -> Result<(), LoggingError> {
    let filter = filter(level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Human => builder.with_target(true).try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(false)
            .try_init(),
    };
    result.map_err(|e| LoggingError::AlreadyInitialised(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_print() {
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("Human".parse::<LogFormat>().unwrap(), LogFormat::Human);
        assert!("xml".parse::<LogFormat>().unwrap_err().contains("xml"));
        assert_eq!(LogFormat::Json.to_string(), "json");
    }

    #[test]
    fn bad_filters_are_reported_and_init_happens_once() {
        let err = init(LogFormat::Human, "info,=[").unwrap_err();
        assert!(matches!(err, LoggingError::BadFilter { .. }), "{err}");
        init(LogFormat::Json, "warn").unwrap();
        assert!(matches!(
            init(LogFormat::Json, "warn"),
            Err(LoggingError::AlreadyInitialised(_))
        ));
    }
}
