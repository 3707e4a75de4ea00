//! One module per subcommand. Each exposes `Args` (clap) and `run(Args) -> CliResult`.

use std::fmt;
use std::process::ExitCode;

pub mod capacity;
pub mod cost;
pub mod evaluate;
pub mod forecast;
pub mod plan;
pub mod plugins;
pub mod policy;
pub mod recommend;
pub mod reload;
pub mod rightsize;
pub mod route;
pub mod run;
pub mod schema;
pub mod simulate;
pub mod trace;
pub mod validate;

/// What a subcommand returns: an exit code on success, a [`CliError`] otherwise.
pub type CliResult = Result<ExitCode, CliError>;

/// A failure with the exit code it maps to: 2 for invalid input, 1 for runtime failures.
#[derive(Debug)]
pub enum CliError {
    /// The user's input is wrong (file, flag, policy): exit code 2.
    Input(String),
    /// Something failed while running: exit code 1.
    Runtime(String),
}

impl CliError {
    /// Invalid input, exit code 2.
    pub fn input(message: impl fmt::Display) -> Self {
        CliError::Input(message.to_string())
    }

    /// Runtime failure, exit code 1.
    pub fn runtime(message: impl fmt::Display) -> Self {
        CliError::Runtime(message.to_string())
    }

    /// Prints the message to stderr and returns the exit code.
    pub fn report(self) -> ExitCode {
        match self {
            CliError::Input(message) => {
                eprintln!("error: {message}");
                ExitCode::from(2)
            }
            CliError::Runtime(message) => {
                eprintln!("error: {message}");
                ExitCode::from(1)
            }
        }
    }
}

/// An evaluation error as a command error. Both kinds are the user's input (exit 2): a
/// parameter out of range, or a trace that cannot be replayed; the match is exhaustive so a new
/// kind must choose.
pub fn eval_error(error: hoist_core::eval::EvalError) -> CliError {
    match error {
        hoist_core::eval::EvalError::Parameter(_) | hoist_core::eval::EvalError::Trace { .. } => {
            CliError::input(error)
        }
    }
}

/// Output format of commands that print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A table for people.
    Table,
    /// JSON for machines.
    Json,
}

/// Builds the tokio runtime subcommands use for async work.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::runtime(format!("cannot start the async runtime: {e}")))
}
