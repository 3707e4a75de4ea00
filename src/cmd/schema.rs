//! `hoist schema`: the JSON Schema of the policy file format, for editors.

use std::process::ExitCode;

use super::{CliError, CliResult};

/// Options of `hoist schema`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Prints the schema as pretty JSON.
pub fn run(_args: Args) -> CliResult {
    let schema = hoist_core::config::json_schema();
    let text = serde_json::to_string_pretty(&schema)
        .map_err(|e| CliError::runtime(format!("cannot encode the schema: {e}")))?;
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}
