//! `hoist run`.

use std::process::ExitCode;

use super::{CliError, CliResult};

/// Options of `hoist run`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `hoist run`.
pub fn run(_args: Args) -> CliResult {
    Err::<ExitCode, _>(CliError::runtime("`hoist run` is not built yet"))
}
