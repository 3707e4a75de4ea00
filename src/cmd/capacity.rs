//! `hoist capacity`.

use std::process::ExitCode;

use super::{CliError, CliResult};

/// Options of `hoist capacity`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `hoist capacity`.
pub fn run(_args: Args) -> CliResult {
    Err::<ExitCode, _>(CliError::runtime("`hoist capacity` is not built yet"))
}
