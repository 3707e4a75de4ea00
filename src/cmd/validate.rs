//! `hoist validate`.

use std::process::ExitCode;

use super::{CliError, CliResult};

/// Options of `hoist validate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `hoist validate`.
pub fn run(_args: Args) -> CliResult {
    Err::<ExitCode, _>(CliError::runtime("`hoist validate` is not built yet"))
}
