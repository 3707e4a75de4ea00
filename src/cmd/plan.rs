//! `hoist plan`.

use std::process::ExitCode;

use super::{CliError, CliResult};

/// Options of `hoist plan`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `hoist plan`.
pub fn run(_args: Args) -> CliResult {
    Err::<ExitCode, _>(CliError::runtime("`hoist plan` is not built yet"))
}
