//! Shared by `run`, `plan` and `validate`: the provider kinds of this build, and the engine's
//! assembly ([`hoist_core::assembly`]) with this binary's own check of the `alerts:` block.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hoist_core::duration::HumanDuration;

use hoist_core::assembly::{self, AssemblyError, Built, ExtraCheck};
use hoist_core::config::{ConfigError, PolicyDocument};
use hoist_core::events::EventSink;
use hoist_core::registry::ProviderRegistry;

use super::CliError;

/// The provider kinds this build of `hoist` knows.
pub fn registry() -> ProviderRegistry {
    let mut registry = ProviderRegistry::new();
    crate::providers::register_all(&mut registry);
    registry
}

/// Loads and fully validates a policy file, including every provider's settings and the alert
/// settings. All problems are reported together, each with file, line and field.
pub fn load(path: &Path, registry: &ProviderRegistry) -> Result<PolicyDocument, CliError> {
    let alerts: ExtraCheck<'_> = &check_alerts;
    let span: ExtraCheck<'_> = &check_virtual_span;
    assembly::load(path, registry, &[alerts, span]).map_err(cli_error)
}

/// Builds every provider (in the recommended layers) and the control loop.
pub async fn build(
    document: &PolicyDocument,
    registry: &ProviderRegistry,
    events: Arc<dyn EventSink>,
) -> Result<Built, CliError> {
    assembly::build(document, registry, events)
        .await
        .map_err(cli_error)
}

fn check_alerts(document: &PolicyDocument) -> Vec<ConfigError> {
    let Some(alerts) = &document.policy.alerts else {
        return Vec::new();
    };
    let config = match hoist_telemetry::AlertsConfig::parse(alerts) {
        Ok(config) => config,
        Err(e) => return vec![assembly::settings_error(document, "alerts", &e)],
    };
    config
        .problems()
        .into_iter()
        .map(|(field, message)| document.error_at(&format!("alerts.{field}"), message))
        .collect()
}

/// The most evaluations a run in virtual time may cover (a year of one-minute evaluations is
/// about half of it).
pub const MAX_VIRTUAL_EVALUATIONS: u128 = 1_000_000;
/// The most ticks of a simulated cloud a run in virtual time may cover.
pub const MAX_VIRTUAL_TICKS: u128 = 100_000_000;

/// The settings of every provider of `kind` in the policy, in the file's order of names.
pub fn settings_of_kind(document: &PolicyDocument, kind: &str) -> Vec<serde_json::Value> {
    document
        .policy
        .providers
        .values()
        .filter_map(|p| match p.kind_and_settings() {
            Ok((k, settings)) if k == kind => Some(settings),
            _ => None,
        })
        .collect()
}

/// On a simulated cloud, whose work is proportional to the virtual time it covers: the
/// problem with running it for `duration`, when that is more than the limits allow.
pub fn virtual_span_problem(document: &PolicyDocument, duration: Duration) -> Option<String> {
    let simulated = settings_of_kind(document, "simulated");
    if simulated.is_empty() {
        return None;
    }
    let interval = document.policy.run.interval.get();
    let evaluations = duration.as_nanos() / interval.as_nanos().max(1);
    if evaluations > MAX_VIRTUAL_EVALUATIONS {
        return Some(format!(
            "{} of virtual time at one evaluation every {} is {evaluations} evaluations, more than the limit of {MAX_VIRTUAL_EVALUATIONS}; shorten the duration or lengthen `run.interval`",
            HumanDuration(duration),
            document.policy.run.interval,
        ));
    }
    let tick = simulated
        .iter()
        .filter_map(|settings| settings.get("tick")?.as_str())
        .filter_map(|text| hoist_core::duration::parse_duration(text).ok())
        .min()
        .unwrap_or(Duration::from_secs(10));
    let ticks = duration.as_nanos() / tick.as_nanos().max(1);
    if ticks > MAX_VIRTUAL_TICKS {
        return Some(format!(
            "{} of virtual time at the simulated cloud's tick of {} is {ticks} ticks, more than the limit of {MAX_VIRTUAL_TICKS}; shorten the duration or lengthen the `tick`",
            HumanDuration(duration),
            HumanDuration(tick),
        ));
    }
    None
}

fn check_virtual_span(document: &PolicyDocument) -> Vec<ConfigError> {
    virtual_span_problem(document, document.policy.run.duration.get())
        .map(|message| document.error_at("run.duration", message))
        .into_iter()
        .collect()
}

fn cli_error(error: AssemblyError) -> CliError {
    if error.is_input() {
        CliError::input(error)
    } else {
        CliError::runtime(error)
    }
}
