//! `hoist validate`: check policy files without touching any provider.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{CliError, CliResult, policy};

/// Options of `hoist validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Runs `hoist validate`: prints `FILE: ok` for each valid file; exit 2 when any is invalid.
pub fn run(args: Args) -> CliResult {
    let registry = policy::registry();
    let mut failures = Vec::new();
    for file in &args.files {
        match policy::load(file, &registry) {
            Ok(document) => {
                let policy = &document.policy;
                let count =
                    |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
                let mut parts = vec![count(policy.groups.len(), "group")];
                if !policy.pools.is_empty() {
                    parts.push(count(policy.pools.len(), "pool"));
                }
                if !policy.routes.is_empty() {
                    parts.push(count(policy.routes.len(), "route"));
                }
                parts.push(count(policy.providers.len(), "provider"));
                println!("{}: ok ({})", file.display(), parts.join(", "));
            }
            Err(CliError::Input(message) | CliError::Runtime(message)) => failures.push(message),
        }
    }
    if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError::input(failures.join("\n")))
    }
}
