//! `hoist schema`: the JSON Schema of the policy file format, for editors.

use std::process::ExitCode;

use super::{CliError, CliResult};

/// Options of `hoist schema`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Prints the schema as pretty JSON: the policy file's, with the settings of every provider kind
/// of this build as its factory describes them.
pub fn run(_args: Args) -> CliResult {
    let schema = hoist_core::config::json_schema_for(&super::policy::registry());
    let text = serde_json::to_string_pretty(&schema)
        .map_err(|e| CliError::runtime(format!("cannot encode the schema: {e}")))?;
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}
