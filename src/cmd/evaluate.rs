//! `hoist evaluate`.

use std::process::ExitCode;

use super::{CliError, CliResult};

/// Options of `hoist evaluate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `hoist evaluate`.
pub fn run(_args: Args) -> CliResult {
    Err::<ExitCode, _>(CliError::runtime("`hoist evaluate` is not built yet"))
}
