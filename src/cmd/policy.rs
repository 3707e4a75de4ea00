//! Shared by `run`, `plan` and `validate`: the provider kinds of this build, and the engine's
//! assembly ([`hoist_core::assembly`]) with this binary's own check of the `alerts:` block.

use std::path::Path;
use std::sync::Arc;

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
    assembly::load(path, registry, &[alerts]).map_err(cli_error)
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

fn cli_error(error: AssemblyError) -> CliError {
    if error.is_input() {
        CliError::input(error)
    } else {
        CliError::runtime(error)
    }
}
