//! Shared by `run`, `plan` and `validate`: load a policy file, check every provider's settings,
//! and build the providers and the control loop it describes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use hoist_core::config::{ConfigErrors, PolicyDocument, load_file};
use hoist_core::control::{ControlLoop, ManagedGroup};
use hoist_core::events::EventSink;
use hoist_core::layers::{CircuitBreakerLayer, LayerStack, MetricsLayer, RetryLayer, TimeoutLayer};
use hoist_core::registry::{BuildContext, BuiltProvider, GroupBounds, ProviderRegistry};
use hoist_core::{Clock, ErrorKind, MetricsSource, SystemClock};

use super::CliError;

/// The provider kinds this build of `hoist` knows.
pub fn registry() -> ProviderRegistry {
    let mut registry = ProviderRegistry::new();
    crate::providers::register_all(&mut registry);
    registry
}

/// Loads and fully validates a policy file, including every provider's settings. All problems
/// are reported together, each with file, line and field.
pub fn load(path: &Path, registry: &ProviderRegistry) -> Result<PolicyDocument, CliError> {
    let document = load_file(path).map_err(|e| CliError::input(errors_paragraph(&e)))?;
    let mut problems = Vec::new();
    for (section, map) in [
        ("providers", &document.policy.providers),
        ("metrics_sources", &document.policy.metrics_sources),
    ] {
        for (name, provider) in map {
            let Ok((kind, settings)) = provider.kind_and_settings() else {
                continue; // reported by load_file
            };
            let field = format!("{section}.{name}.{kind}");
            let factory = match registry.factory(kind) {
                Ok(factory) => factory,
                Err(e) => {
                    problems.push(document.error_at(&field, e.message().to_owned()));
                    continue;
                }
            };
            let groups = bounds_for(&document, name);
            let ctx = BuildContext {
                name,
                settings: &settings,
                base_dir: &document.base_dir,
                groups: &groups,
            };
            if let Err(e) = factory.validate(ctx) {
                problems.push(settings_error(&document, &field, &e));
            }
        }
    }
    if let Some(alerts) = &document.policy.alerts
        && let Err(e) = hoist_telemetry::AlertsConfig::from_value(alerts).and_then(|config| {
            config.validate()?;
            Ok(config)
        })
    {
        problems.push(settings_error(&document, "alerts", &e));
    }
    if problems.is_empty() {
        Ok(document)
    } else {
        Err(CliError::input(errors_paragraph(&ConfigErrors(problems))))
    }
}

/// A provider settings error, pointing at the field it names when it names one
/// (`field.path: message`), otherwise at the provider.
fn settings_error(
    document: &PolicyDocument,
    base: &str,
    error: &hoist_core::Error,
) -> hoist_core::config::ConfigError {
    let message = error.message();
    if let Some((path, rest)) = message.split_once(": ")
        && !path.is_empty()
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '-'))
    {
        return document.error_at(&format!("{base}.{path}"), rest.to_owned());
    }
    document.error_at(base, message.to_owned())
}

fn errors_paragraph(errors: &ConfigErrors) -> String {
    let mut text = format!("invalid policy file\n{errors}");
    if errors.0.len() > 1 {
        text.push_str(&format!("\n({} problems)", errors.0.len()));
    }
    text
}

fn bounds_for(document: &PolicyDocument, provider: &str) -> Vec<GroupBounds> {
    document
        .policy
        .groups
        .iter()
        .filter(|g| g.provider == provider)
        .map(|g| GroupBounds {
            id: g.provider_id().to_owned(),
            min: g.min,
            max: g.max,
        })
        .collect()
}

/// The control loop a policy file describes, and whether it runs in virtual time.
#[derive(Debug)]
pub struct Built {
    /// The loop.
    pub control: ControlLoop,
    /// Whether the clock is a simulated cloud's virtual clock.
    pub virtual_time: bool,
    /// The built providers, by name.
    pub providers: BTreeMap<String, BuiltProvider>,
}

/// Builds every provider and the control loop. Providers on the wall clock are wrapped in the
/// recommended layers (timeout, metrics, circuit breaker, retry); the simulated cloud, which
/// cannot fail transiently, only in the metrics layer. Every layer reports to `events`.
pub async fn build(
    document: &PolicyDocument,
    registry: &ProviderRegistry,
    events: Arc<dyn EventSink>,
) -> Result<Built, CliError> {
    let policy = &document.policy;
    let mut providers = BTreeMap::new();
    for (name, provider) in &policy.providers {
        let (kind, settings) = provider.kind_and_settings().map_err(CliError::input)?;
        let groups = bounds_for(document, name);
        let ctx = BuildContext {
            name,
            settings: &settings,
            base_dir: &document.base_dir,
            groups: &groups,
        };
        let built = registry.build(kind, ctx).await.map_err(|e| {
            let text = format!("provider `{name}` ({kind}): {e}");
            if matches!(e.kind(), ErrorKind::Config | ErrorKind::InvalidInput) {
                CliError::input(text)
            } else {
                CliError::runtime(text)
            }
        })?;
        providers.insert(name.clone(), layered(built, &events));
    }
    let mut sources: BTreeMap<String, Arc<dyn MetricsSource>> = BTreeMap::new();
    for (name, source) in &policy.metrics_sources {
        let (kind, settings) = source.kind_and_settings().map_err(CliError::input)?;
        let ctx = BuildContext {
            name,
            settings: &settings,
            base_dir: &document.base_dir,
            groups: &[],
        };
        let built = registry
            .build(kind, ctx)
            .await
            .map_err(|e| CliError::runtime(format!("metrics source `{name}` ({kind}): {e}")))?;
        let metrics = layered(built, &events).set.metrics.ok_or_else(|| {
            CliError::input(format!(
                "metrics source `{name}` ({kind}) does not provide metrics"
            ))
        })?;
        sources.insert(name.clone(), metrics);
    }

    let clocks: Vec<(&String, &Arc<dyn Clock>)> = providers
        .iter()
        .filter_map(|(name, p)| p.clock.as_ref().map(|c| (name, c)))
        .collect();
    let (clock, virtual_time): (Arc<dyn Clock>, bool) = match clocks.as_slice() {
        [] => (Arc::new(SystemClock), false),
        [(_, clock)] if providers.len() == 1 => (Arc::clone(clock), true),
        _ => {
            return Err(CliError::input(format!(
                "{}: a simulated cloud runs in its own virtual time and cannot share a run with other providers; put it in a policy file of its own",
                document.path.display()
            )));
        }
    };

    let mut groups = Vec::with_capacity(policy.groups.len());
    for group in &policy.groups {
        let provider = &providers[&group.provider];
        let mut managed = ManagedGroup::new(group.clone(), provider.set.clone());
        if let Some(source) = group.metrics.as_ref().and_then(|m| m.source.as_ref()) {
            managed.metrics = match sources.get(source) {
                Some(metrics) => Some(Arc::clone(metrics)),
                None => providers.get(source).and_then(|p| p.set.metrics.clone()),
            };
        }
        groups.push(managed);
    }
    let control = ControlLoop::new(groups, clock, policy.run.interval.get())
        .with_dry_run(policy.run.dry_run)
        .with_events(events);
    Ok(Built {
        control,
        virtual_time,
        providers,
    })
}

/// The provider wrapped in the layers that suit it.
fn layered(built: BuiltProvider, events: &Arc<dyn EventSink>) -> BuiltProvider {
    let metrics = MetricsLayer::new(Arc::clone(events));
    let stack = if built.clock.is_some() {
        LayerStack::new().metrics(metrics)
    } else {
        LayerStack::new()
            .timeout(TimeoutLayer::new(std::time::Duration::from_secs(30)))
            .metrics(metrics)
            .circuit_breaker(CircuitBreakerLayer::new().with_events(Arc::clone(events)))
            .retry(RetryLayer::new().with_events(Arc::clone(events)))
    };
    BuiltProvider {
        set: stack.apply(built.set),
        clock: built.clock,
    }
}
