//! Drives AWS Auto Scaling groups with Hoist's engine, linking `hoist-aws` as a library.
//!
//! ```text
//! aws-autoscale [POLICY_FILE] [--once] [--dry-run]
//! ```
//!
//! Reads a policy file (default `examples/aws.yaml`), builds every `aws` provider it names from
//! the standard AWS configuration chain (`AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_PROFILE`, the
//! credential variables) with the file's settings on top, then observes, decides and acts on
//! each group through Hoist's control loop: once with `--once`, else every `run.interval`.
//! `--dry-run` decides without changing anything.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use hoist_core::config::load_file;
use hoist_core::control::{Action, ControlLoop, GroupOutcome, ManagedGroup};
use hoist_core::{ProviderSet, SystemClock};

struct Args {
    policy: PathBuf,
    once: bool,
    dry_run: bool,
}

fn parse_args() -> anyhow::Result<Args> {
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
            flag if flag.starts_with('-') => bail!("unknown option {flag}"),
            path => args.policy = PathBuf::from(path),
        }
    }
    Ok(args)
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

async fn run(args: Args) -> anyhow::Result<()> {
    let document = load_file(&args.policy).map_err(|e| anyhow::anyhow!("{e}"))?;
    let policy = &document.policy;

    let mut providers: BTreeMap<String, ProviderSet> = BTreeMap::new();
    for (name, config) in &policy.providers {
        let (kind, settings) = config
            .kind_and_settings()
            .map_err(|e| anyhow::anyhow!("provider {name}: {e}"))?;
        if kind != "aws" {
            bail!("provider {name} is of kind `{kind}`; this example drives `aws` providers only");
        }
        let set = hoist_aws::provider_set_from_settings(name, &settings)
            .await
            .with_context(|| format!("provider {name}"))?;
        providers.insert(name.clone(), set);
    }

    let mut groups = Vec::new();
    for group in &policy.groups {
        let provider = providers.get(&group.provider).with_context(|| {
            format!(
                "group {} names unknown provider {}",
                group.name, group.provider
            )
        })?;
        groups.push(ManagedGroup::new(group.clone(), provider.clone()));
    }

    let interval = policy.run.interval.get();
    let mut control = ControlLoop::new(groups, Arc::new(SystemClock), interval)
        .with_dry_run(args.dry_run || policy.run.dry_run);
    if args.once {
        for outcome in control.evaluate_once().await {
            report(&outcome);
        }
        Ok(())
    } else {
        control.run(None, report).await.map_err(Into::into)
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
        Err(e) => {
            eprintln!("aws-autoscale: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn the_aws_example_policy_loads_and_its_settings_are_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../aws.yaml");
        let document = hoist_core::config::load_file(&path).expect("examples/aws.yaml is valid");
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
}
