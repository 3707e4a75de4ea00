//! `hoist forecast`.

use std::process::ExitCode;

use super::{CliError, CliResult};

/// Options of `hoist forecast`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `hoist forecast`.
pub fn run(_args: Args) -> CliResult {
    Err::<ExitCode, _>(CliError::runtime("`hoist forecast` is not built yet"))
}
