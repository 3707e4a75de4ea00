//! `hoist schema`.

use std::process::ExitCode;

use super::{CliError, CliResult};

/// Options of `hoist schema`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `hoist schema`.
pub fn run(_args: Args) -> CliResult {
    Err::<ExitCode, _>(CliError::runtime("`hoist schema` is not built yet"))
}
