//! Drives AWS Auto Scaling groups with Hoist's engine, linking `hoist-aws` as a library.
//!
//! ```text
//! aws-autoscale [POLICY_FILE] [--once] [--dry-run]
//! ```
//!
//! Reads a policy file (default `examples/aws.yaml`) and assembles it with
//! [`hoist_engine::assembly`], exactly as the `hoist` binary does:
//!
//! 1. [`assembly::load`] validates the file and every provider's settings without connecting
//!    anywhere, and reports every problem at once with file, line and field (exit code 2);
//! 2. [`assembly::build`] builds each provider through a [`ProviderRegistry`] that holds
//!    `hoist-aws`'s factory (and the simulated cloud's, so the same program runs the simulated
//!    examples) and wraps it in the recommended layers: a per-call timeout, metrics, a circuit
//!    breaker and retries with backoff of the errors a retry may cure. An `aws` provider starts
//!    from the standard AWS chain (`AWS_REGION`, `AWS_PROFILE`, the credential variables,
//!    `AWS_ENDPOINT_URL`) with the file's settings on top: what the file says wins;
//! 3. the control loop observes, decides and acts on each group: once with `--once`, else every
//!    `run.interval` until interrupted (a simulated-cloud file runs `run.duration` of virtual
//!    time). `--dry-run` decides without changing anything.
//!
//! Retries and circuit-breaker changes are reported on standard error as they happen.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use hoist_api::registry::ProviderRegistry;
use hoist_engine::assembly::{self, AssemblyError};
use hoist_engine::control::{Action, GroupOutcome};
use hoist_engine::events::{Event, EventSink};

struct Args {
    policy: PathBuf,
    once: bool,
    dry_run: bool,
}

/// Why the program stopped: bad input (exit 2, like `hoist`) or a failure at run time (exit 1).
enum Failure {
    Input(String),
    Runtime(String),
}

impl From<AssemblyError> for Failure {
    fn from(error: AssemblyError) -> Self {
        if error.is_input() {
            Failure::Input(error.to_string())
        } else {
            Failure::Runtime(error.to_string())
        }
    }
}

fn parse_args() -> Result<Args, Failure> {
    let mut args = Args {
        policy: PathBuf::from("examples/aws.yaml"),
        once: false,
        dry_run: false,
    };
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--once" => args.once = true,
            "--dry-run" => args.dry_run = true,
            "-h" | "--help" => {
                println!("usage: aws-autoscale [POLICY_FILE] [--once] [--dry-run]");
                std::process::exit(0);
            }
            flag if flag.starts_with('-') => {
                return Err(Failure::Input(format!("unknown option {flag}")));
            }
            path => args.policy = PathBuf::from(path),
        }
    }
    Ok(args)
}

/// The provider kinds this program can build: AWS, and the simulated cloud.
fn registry() -> ProviderRegistry {
    let mut registry = ProviderRegistry::new();
    registry.register(Arc::new(hoist_aws::AwsProviderFactory));
    hoist_sim::register_builtins(&mut registry);
    registry
}

/// Reports what the layers do: retries and the circuit breaker opening or closing.
#[derive(Debug)]
struct LayerReport;

impl EventSink for LayerReport {
    fn emit(&self, event: &Event) {
        match event {
            Event::Retry {
                provider,
                operation,
                attempt,
            } => eprintln!("{provider}: retrying {operation} (attempt {attempt})"),
            Event::Circuit { provider, open } => eprintln!(
                "{provider}: circuit {}",
                if *open {
                    "open: calls fail fast until it recovers"
                } else {
                    "closed"
                }
            ),
            _ => {}
        }
    }
}

fn report(outcome: &GroupOutcome) {
    match outcome {
        GroupOutcome::ObserveFailed {
            provider,
            group,
            error,
        } => {
            eprintln!("{provider}/{group}: could not observe: {error}");
        }
        GroupOutcome::Decided {
            provider,
            decision,
            action,
        } => {
            println!(
                "{provider}/{}: desired {} -> {} ({:?}), {}",
                decision.group,
                decision.current,
                decision.desired,
                decision.direction,
                action.as_str()
            );
            for reason in &decision.reasons {
                println!("    {}: {}", reason.source, reason.message);
            }
            if let Action::Failed(error) = action {
                eprintln!("    failed: {error}");
            }
        }
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    let registry = registry();
    let document = assembly::load(&args.policy, &registry, &[])?;
    let built = assembly::build(&document, &registry, Arc::new(LayerReport)).await?;
    let mut control = built
        .control
        .with_dry_run(args.dry_run || document.policy.run.dry_run);
    if args.once {
        for outcome in control.evaluate_once().await {
            report(&outcome);
        }
        return Ok(());
    }
    let until = built
        .virtual_time
        .then(|| control.clock().now() + document.policy.run.duration.as_delta());
    tokio::select! {
        result = control.run(until, report) => result.map_err(|e| Failure::Runtime(e.to_string())),
        _ = tokio::signal::ctrl_c() => {
            eprintln!("aws-autoscale: interrupted, stopping");
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match parse_args() {
        Ok(args) => run(args).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(e)) => {
            eprintln!("aws-autoscale: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("aws-autoscale: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aws_example_policy_loads_and_its_settings_are_valid() {
        let path = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
            .join("../aws.yaml");
        let document = assembly::load(&path, &registry(), &[]).expect("examples/aws.yaml is valid");
        let (kind, settings) = document.policy.providers["prod"]
            .kind_and_settings()
            .unwrap();
        assert_eq!(kind, "aws");
        let settings = hoist_aws::AwsSettings::from_value(&settings).unwrap();
        assert_eq!(
            settings.selector(),
            hoist_aws::GroupSelector::Names(vec!["web-asg".into()])
        );
        assert_eq!(document.policy.groups[0].provider, "prod");
    }

    #[test]
    fn the_registry_knows_aws_and_the_simulated_cloud() {
        let registry = registry();
        let kinds = registry.kinds();
        assert!(kinds.contains(&"aws"), "{kinds:?}");
        assert!(kinds.contains(&"simulated"), "{kinds:?}");
    }
}
