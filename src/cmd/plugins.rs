//! `hoist plugins`: inspect provider plugin libraries. `inspect` opens a library exactly as a
//! policy file's `plugin:` provider would (version check first), prints what the plugin says about
//! itself and, given a configuration, the capabilities of an instance built from it. A library
//! that cannot be used exits with code 2 and a message naming the file and what to do.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hoist_plugin::{ABI_VERSION, KIT_VERSION, PluginLibrary};

use super::{CliError, CliResult};

/// `hoist plugins` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print a plugin's metadata and capabilities, or why it cannot be loaded.
    Inspect {
        /// Path to the plugin library (`lib<name>.so`).
        path: PathBuf,
        /// The plugin's configuration, as JSON text or `@FILE` (JSON or YAML): builds an
        /// instance and prints its capabilities. Relative paths in it resolve against the
        /// current directory.
        #[arg(long, value_name = "JSON|@FILE")]
        config: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `hoist plugins`.
pub fn run(command: Command) -> CliResult {
    match command {
        Command::Inspect { path, config, json } => inspect(&path, config.as_deref(), json),
    }
}

fn read_config(text: &str) -> Result<(serde_json::Value, PathBuf), CliError> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let Some(file) = text.strip_prefix('@') else {
        let value = serde_json::from_str(text)
            .map_err(|e| CliError::input(format!("--config: not valid JSON: {e}")))?;
        return Ok((value, cwd));
    };
    let path = Path::new(file);
    let limits = hoist_core::input::ReadLimits {
        max_bytes: 16 << 20,
        max_line_bytes: 1 << 20,
        gzip: false,
    };
    let body = hoist_core::input::read_file(path, limits)
        .map_err(|e| CliError::input(format!("--config: {e}")))?;
    let value = serde_saphyr::from_str::<serde_json::Value>(&body)
        .map_err(|e| CliError::input(format!("--config: {file} is not valid YAML/JSON: {e}")))?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_owned)
        .unwrap_or(cwd);
    Ok((value, base))
}

fn inspect(path: &Path, config: Option<&str>, json: bool) -> CliResult {
    let library = PluginLibrary::open(path).map_err(CliError::input)?;
    let meta = library.metadata().clone();
    // What a policy file pins with `sha256:`.
    let sha256 = std::fs::read(path)
        .map(|bytes| hoist_plugin::sha256_hex(&bytes))
        .map_err(|e| CliError::input(format!("{}: {e}", path.display())))?;
    let instance = match config {
        None => None,
        Some(text) => {
            let (config, base_dir) = read_config(text)?;
            let runtime = super::runtime()?;
            let set = runtime
                .block_on(library.instantiate(&meta.name, &base_dir, &config))
                .map_err(CliError::input)?;
            Some(serde_json::json!({
                "scaling": set.scaling_provider().unwrap().capabilities(),
                "catalog": set.catalog.as_ref().map(|c| c.capabilities()),
                "billing": set.billing.as_ref().map(|b| b.capabilities()),
                "metrics": set.metrics.as_ref().map(|m| m.capabilities()),
            }))
        }
    };
    if json {
        let out = serde_json::json!({
            "path": path,
            "sha256": sha256,
            "metadata": meta,
            "host_abi_version": ABI_VERSION,
            "capabilities": instance,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    let provides: Vec<&str> = meta.provides.iter().map(|c| c.as_str()).collect();
    println!("plugin       {} {}", meta.name, meta.version);
    println!("file         {}", path.display());
    println!("sha256       {sha256}");
    println!("description  {}", meta.description);
    println!(
        "abi          version {} (built with hoist-plugin {}); this hoist: version {ABI_VERSION} \
         (hoist-plugin {KIT_VERSION})",
        meta.abi_version, meta.kit_version
    );
    println!("provides     {}", provides.join(", "));
    println!("operations");
    for op in &meta.operations {
        println!("  {op}");
    }
    match instance {
        Some(caps) => {
            println!("capabilities (with the given configuration)");
            if let Some(map) = caps.as_object() {
                for (name, value) in map.iter().filter(|(_, v)| !v.is_null()) {
                    println!("  {name:<8} {value}");
                }
            }
        }
        None => println!(
            "capabilities depend on the configuration: add --config '{{...}}' or --config @FILE"
        ),
    }
    Ok(ExitCode::SUCCESS)
}
