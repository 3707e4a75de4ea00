//! `hoist plan`: one evaluation of every group in dry run: what would change, and why.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use hoist_core::control::GroupOutcome;
use hoist_core::engine::Direction;

use super::{CliError, CliResult, OutputFormat, policy, runtime};

/// Options of `hoist plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// `table` for people, `json` for machines.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// The cost ledger budgets are read from, so the plan shows what each budget would do
    /// (default: where `hoist run` writes it: the policy's `costs.ledger`, else
    /// `hoist-costs.jsonl` in the working directory).
    #[arg(long, value_name = "PATH")]
    pub cost_ledger: Option<PathBuf>,
}

/// Runs `hoist plan`.
pub fn run(args: Args) -> CliResult {
    let registry = policy::registry();
    let document = policy::load(&args.file, &registry)?;
    let outcomes = runtime()?.block_on(async {
        let built =
            policy::build(&document, &registry, Arc::new(hoist_core::events::NoEvents)).await?;
        let mut control = built.control.with_dry_run(true);
        // Budgets as the running autoscaler left them in its cost ledger, so that the plan
        // shows what they would do to each decision.
        control.seed_budgets(&hoist_core::ledger::budget_records(
            &super::run::ledger_path(&document, args.cost_ledger.as_deref()),
        ));
        Ok::<_, CliError>(control.evaluate_once().await)
    })?;
    let mut failed = false;
    match args.output {
        OutputFormat::Json => {
            let rows: Vec<serde_json::Value> = outcomes
                .iter()
                .map(|outcome| match outcome {
                    GroupOutcome::Decided {
                        provider, decision, ..
                    } => serde_json::json!({
                        "provider": provider,
                        "group": decision.group,
                        "current": decision.current,
                        "desired": decision.desired,
                        "direction": decision.direction,
                        "reasons": decision.reasons,
                        "at": decision.at,
                    }),
                    GroupOutcome::ObserveFailed {
                        provider,
                        group,
                        error,
                    } => {
                        failed = true;
                        serde_json::json!({
                            "provider": provider,
                            "group": group,
                            "error": error.to_string(),
                            "error_kind": error.kind(),
                        })
                    }
                })
                .collect();
            let text = serde_json::to_string_pretty(&serde_json::json!({ "groups": rows }))
                .map_err(|e| CliError::runtime(format!("cannot encode the plan: {e}")))?;
            println!("{text}");
        }
        OutputFormat::Table => {
            println!(
                "{:<20} {:<12} {:>7} {:>7}  {:<5} REASONS",
                "GROUP", "PROVIDER", "CURRENT", "DESIRED", "MOVE"
            );
            for outcome in &outcomes {
                match outcome {
                    GroupOutcome::Decided {
                        provider, decision, ..
                    } => {
                        let arrow = match decision.direction {
                            Direction::Out => "out",
                            Direction::In => "in",
                            Direction::Hold => "hold",
                        };
                        let mut reasons = decision.reasons.iter();
                        let first = reasons
                            .next()
                            .map(|r| format!("{}: {}", r.source, r.message))
                            .unwrap_or_default();
                        println!(
                            "{:<20} {:<12} {:>7} {:>7}  {:<5} {}",
                            decision.group,
                            provider,
                            decision.current,
                            decision.desired,
                            arrow,
                            first
                        );
                        for reason in reasons {
                            println!("{:<58} {}: {}", "", reason.source, reason.message);
                        }
                    }
                    GroupOutcome::ObserveFailed {
                        provider,
                        group,
                        error,
                    } => {
                        failed = true;
                        println!(
                            "{group:<20} {provider:<12} {:>7} {:>7}  {:<5} {error}",
                            "?", "?", "error"
                        );
                    }
                }
            }
        }
    }
    if failed {
        Err(CliError::runtime(
            "some groups could not be observed (see above)",
        ))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}
