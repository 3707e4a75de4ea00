//! `hoist plugins`.

use std::process::ExitCode;

use super::{CliError, CliResult};

/// `hoist plugins` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print a plugin's metadata and capabilities, or why it cannot be loaded.
    Inspect {
        /// Path to the plugin library.
        path: std::path::PathBuf,
    },
}

/// Runs `hoist plugins`.
pub fn run(_command: Command) -> CliResult {
    Err::<ExitCode, _>(CliError::runtime("`hoist plugins` is not built yet"))
}
