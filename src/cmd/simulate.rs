//! `hoist simulate`.

use std::process::ExitCode;

use super::{CliError, CliResult};

/// Options of `hoist simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `hoist simulate`.
pub fn run(_args: Args) -> CliResult {
    Err::<ExitCode, _>(CliError::runtime("`hoist simulate` is not built yet"))
}
