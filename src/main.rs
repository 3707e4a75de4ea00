//! The `hoist` reference binary: command-line wiring only. Each subcommand lives in `cmd/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` that ends the process quietly when standard output is a closed pipe
/// (see [`out`]).
macro_rules! println {
    () => {
        $crate::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that ends the process quietly when standard output is a closed pipe (see [`out`]).
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*))
    };
}

mod cmd;
mod out;
mod providers;

/// Hoist: one policy engine for every cloud.
#[derive(Debug, Parser)]
#[command(name = "hoist", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the autoscaler on a policy file (virtual time on the simulated cloud).
    Run(cmd::run::Args),
    /// Evaluate every group once in dry run and show what would change.
    Plan(cmd::plan::Args),
    /// Check policy files; exit 0 when all are valid, 2 otherwise.
    Validate(cmd::validate::Args),
    /// Print the JSON Schema of the policy file format.
    Schema(cmd::schema::Args),
    /// Replay a trace through a policy or baseline and score it.
    Simulate(cmd::simulate::Args),
    /// Score policies and baselines on many traces against the oracles.
    Evaluate(cmd::evaluate::Args),
    /// Measure forecast accuracy on a trace.
    Forecast(cmd::forecast::Args),
    /// Plan capacity for the coming weeks from a group's history.
    Capacity(cmd::capacity::Args),
    /// Inspect provider plugins.
    #[command(subcommand)]
    Plugins(cmd::plugins::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cmd::run::run(args),
        Command::Plan(args) => cmd::plan::run(args),
        Command::Validate(args) => cmd::validate::run(args),
        Command::Schema(args) => cmd::schema::run(args),
        Command::Simulate(args) => cmd::simulate::run(args),
        Command::Evaluate(args) => cmd::evaluate::run(args),
        Command::Forecast(args) => cmd::forecast::run(args),
        Command::Capacity(args) => cmd::capacity::run(args),
        Command::Plugins(command) => cmd::plugins::run(command),
    };
    match result {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}
