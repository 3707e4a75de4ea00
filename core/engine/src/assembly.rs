//! Assembly: from a policy file to a running autoscaler, as a library.
//!
//! [`load`] reads and fully validates a policy file, every provider's settings included, and
//! reports all problems at once with file, line and field. [`build`] builds every provider
//! through a [`ProviderRegistry`], wraps it in the recommended layers ([`recommended_layers`]),
//! resolves metrics sources and returns the [`ControlLoop`]. The reference binary and the
//! examples that link providers as a library both go through here, so they run with the same
//! retries, timeouts and circuit breakers.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::Arc;
//! use hoist_api::registry::ProviderRegistry;
//! use hoist_engine::assembly;
//! use hoist_engine::events::NoEvents;
//!
//! let mut registry = ProviderRegistry::new();
//! hoist_sim::register_builtins(&mut registry);
//! let text = "providers: {sim: {simulated: {seed: 1}}}\ngroups:\n  - {name: web, provider: sim, min: 1, max: 4, policies: [{target_tracking: {metric: utilization, target: 0.6}}]}\n";
//! let document = assembly::parse(text, "inline.yaml".as_ref(), &registry).unwrap();
//! let built = assembly::build(&document, &registry, Arc::new(NoEvents)).await.unwrap();
//! assert!(built.virtual_time);
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hoist_api::layers::{CircuitBreakerLayer, LayerStack, MetricsLayer, RetryLayer, TimeoutLayer};
use hoist_api::registry::{BuildContext, BuiltProvider, GroupBounds, ProviderRegistry};
use hoist_api::{Clock, Error, ErrorKind, MetricsSource, SystemClock};

use crate::config::{ConfigError, ConfigErrors, PolicyDocument, load_file, parse_str};
use crate::control::{ControlLoop, ManagedGroup};
use crate::events::{EventSink, provider_sink};

/// Why a policy file could not be assembled into a running autoscaler.
#[derive(Debug)]
pub enum AssemblyError {
    /// The file is invalid: every problem, each with file, line and field. Fix the file.
    Invalid(ConfigErrors),
    /// The file is valid but something it names could not be built (a provider refused its
    /// settings at build time, a metrics source gives no metrics, ...). The message says which.
    Input(String),
    /// A provider failed while being built (network, credentials, ...).
    Runtime(String),
}

impl AssemblyError {
    /// Whether the user's input is at fault (exit code 2 in the reference binary), rather than
    /// the environment.
    pub fn is_input(&self) -> bool {
        !matches!(self, AssemblyError::Runtime(_))
    }
}

impl fmt::Display for AssemblyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AssemblyError::Invalid(errors) => {
                write!(f, "invalid policy file\n{errors}")?;
                if errors.0.len() > 1 {
                    write!(f, "\n({} problems)", errors.0.len())?;
                }
                Ok(())
            }
            AssemblyError::Input(text) | AssemblyError::Runtime(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for AssemblyError {}

/// A check of a policy file section that only the host knows how to make (the reference binary
/// checks its `alerts:` block with the telemetry crate). Returns the problems it found.
pub type ExtraCheck<'a> = &'a dyn Fn(&PolicyDocument) -> Vec<ConfigError>;

/// Reads `path` and validates it fully: the file's own rules, then every provider's and metrics
/// source's settings through its factory (without connecting anywhere), then `extra` checks.
pub fn load(
    path: &Path,
    registry: &ProviderRegistry,
    extra: &[ExtraCheck<'_>],
) -> Result<PolicyDocument, AssemblyError> {
    let document = load_file(path).map_err(AssemblyError::Invalid)?;
    check(document, registry, extra)
}

/// As [`load`], for a policy file's text; `path` names it in errors and relative paths in it
/// resolve against its directory.
pub fn parse(
    text: &str,
    path: &Path,
    registry: &ProviderRegistry,
) -> Result<PolicyDocument, AssemblyError> {
    let document = parse_str(path, text).map_err(AssemblyError::Invalid)?;
    check(document, registry, &[])
}

fn check(
    document: PolicyDocument,
    registry: &ProviderRegistry,
    extra: &[ExtraCheck<'_>],
) -> Result<PolicyDocument, AssemblyError> {
    let mut problems = Vec::new();
    for (section, map) in [
        ("providers", &document.policy.providers),
        ("metrics_sources", &document.policy.metrics_sources),
    ] {
        for (name, provider) in map {
            let Ok((kind, settings)) = provider.kind_and_settings() else {
                continue; // reported by the loader
            };
            // A plugin's settings are the provider's whole map (`plugin:` and `config:`);
            // every other kind's are the value under its kind key.
            let field = if kind == crate::config::PLUGIN_KIND {
                format!("{section}.{name}")
            } else {
                format!("{section}.{name}.{kind}")
            };
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
    for check in extra {
        problems.extend(check(&document));
    }
    if problems.is_empty() {
        Ok(document)
    } else {
        Err(AssemblyError::Invalid(ConfigErrors(problems)))
    }
}

/// A settings error from a factory, at the line of the field it names ([`Error::field`],
/// relative to `base`), otherwise at `base` itself.
pub fn settings_error(document: &PolicyDocument, base: &str, error: &Error) -> ConfigError {
    match error.field() {
        Some(field) if !field.is_empty() => {
            let path = if field.starts_with('[') {
                format!("{base}{field}")
            } else {
                format!("{base}.{field}")
            };
            document.error_at(&path, error.message().to_owned())
        }
        _ => document.error_at(base, error.message().to_owned()),
    }
}

fn bounds_for(document: &PolicyDocument, provider: &str) -> Vec<GroupBounds> {
    let policy = &document.policy;
    let groups = policy
        .groups
        .iter()
        .filter(|g| g.provider == provider)
        .map(|g| {
            GroupBounds::new(g.provider_id(), g.min, g.max).with_drain(g.drain.map(|d| d.get()))
        });
    // A pool's members are groups of their providers, with the member's bounds.
    let members = policy
        .pools
        .iter()
        .flat_map(|p| &p.members)
        .filter(|m| m.provider == provider)
        .map(|m| GroupBounds::new(m.group.clone(), m.min, m.max));
    groups.chain(members).collect()
}

/// The control loop a policy file describes, the providers it built, and whether it runs in
/// virtual time.
#[derive(Debug)]
pub struct Built {
    /// The loop.
    pub control: ControlLoop,
    /// Whether the clock is a simulated cloud's virtual clock.
    pub virtual_time: bool,
    /// The built providers (already layered), by name.
    pub providers: BTreeMap<String, BuiltProvider>,
}

/// Builds every provider and metrics source, each in the layers that suit it
/// ([`recommended_layers`]), and the control loop over the file's groups. Every layer and the
/// loop report to `events`.
pub async fn build(
    document: &PolicyDocument,
    registry: &ProviderRegistry,
    events: Arc<dyn EventSink>,
) -> Result<Built, AssemblyError> {
    build_reusing(document, registry, events, None).await
}

/// [`build`] for a changed policy file while a loop runs on `previous` (the file before and the
/// providers built from it): a provider whose settings did not change is reused as it is (its
/// connections, its circuit breaker's state, and for a simulated cloud its world), the others
/// are built anew, and so is a provider whose groups changed (one added or removed, or their
/// bounds or `drain`, which a provider reads when it is built). A simulated cloud built anew
/// starts a new world.
pub async fn build_reusing(
    document: &PolicyDocument,
    registry: &ProviderRegistry,
    events: Arc<dyn EventSink>,
    previous: Option<(&PolicyDocument, &BTreeMap<String, BuiltProvider>)>,
) -> Result<Built, AssemblyError> {
    let policy = &document.policy;
    let mut providers = BTreeMap::new();
    for (name, provider) in &policy.providers {
        if let Some((before, built)) = previous
            && before.policy.providers.get(name) == Some(provider)
            && bounds_for(before, name) == bounds_for(document, name)
            && let Some(existing) = built.get(name)
        {
            providers.insert(name.clone(), existing.clone());
            continue;
        }
        providers.insert(
            name.clone(),
            build_entry(document, registry, name, Section::Providers, &events).await?,
        );
    }
    let mut sources: BTreeMap<String, Arc<dyn MetricsSource>> = BTreeMap::new();
    for (name, source) in &policy.metrics_sources {
        let (kind, _) = source.kind_and_settings().map_err(AssemblyError::Input)?;
        let metrics = build_entry(document, registry, name, Section::MetricsSources, &events)
            .await?
            .set
            .metrics
            .ok_or_else(|| {
                AssemblyError::Input(format!(
                    "metrics source `{name}` ({kind}) does not provide metrics"
                ))
            })?;
        sources.insert(name.clone(), metrics);
    }

    let clocks: Vec<&Arc<dyn Clock>> = providers
        .values()
        .filter_map(|p| p.clock.as_ref())
        .collect();
    // Several providers share a run in virtual time only when they all have the same clock: the
    // simulated providers of one `world:`.
    let (clock, virtual_time): (Arc<dyn Clock>, bool) = match clocks.as_slice() {
        [] => (Arc::new(SystemClock), false),
        [first, rest @ ..]
            if clocks.len() == providers.len() && rest.iter().all(|c| Arc::ptr_eq(first, c)) =>
        {
            (Arc::clone(first), true)
        }
        _ => {
            let virtual_ones: Vec<&str> = providers
                .iter()
                .filter(|(_, p)| p.clock.is_some())
                .map(|(name, _)| name.as_str())
                .collect();
            let why = if clocks.len() < providers.len() {
                "cannot share a run with providers on the wall clock; put it in a policy file of its own"
            } else {
                "run in different virtual times; give them the same `world:` (`simulated: {world: NAME}`) to run them together"
            };
            return Err(AssemblyError::Input(format!(
                "{}: a simulated cloud runs in its own virtual time, shared only by the simulated providers of one `world:`; {} {why}",
                document.path.display(),
                virtual_ones.join(", ")
            )));
        }
    };

    let mut groups = Vec::with_capacity(policy.groups.len());
    for group in &policy.groups {
        let provider = &providers[&group.provider];
        if provider.set.scaling.is_none() {
            return Err(AssemblyError::Input(format!(
                "group `{}`: provider `{}` offers no scaling groups (it is a metrics, catalog or billing source); name a provider that scales, or move it under `metrics_sources`",
                group.name, group.provider
            )));
        }
        let mut managed = ManagedGroup::new(group.clone(), provider.set.clone());
        if let Some(source) = group.metrics.as_ref().and_then(|m| m.source.as_ref()) {
            managed.metrics = match sources.get(source) {
                Some(metrics) => Some(Arc::clone(metrics)),
                None => providers.get(source).and_then(|p| p.set.metrics.clone()),
            };
        }
        groups.push(managed);
    }
    if !policy.pools.is_empty() {
        let sets: BTreeMap<String, hoist_api::ProviderSet> = providers
            .iter()
            .map(|(name, built)| (name.clone(), built.set.clone()))
            .collect();
        for pool in &policy.pools {
            let built = crate::pool::Pool::new(pool.clone(), &sets, Arc::clone(&clock))
                .map_err(|e| AssemblyError::Input(e.message().to_owned()))?;
            let mut managed = ManagedGroup::for_pool(built, pool.as_group());
            if let Some(source) = pool.metrics.as_ref().and_then(|m| m.source.as_ref()) {
                managed.metrics = match sources.get(source) {
                    Some(metrics) => Some(Arc::clone(metrics)),
                    None => providers.get(source).and_then(|p| p.set.metrics.clone()),
                };
            }
            groups.push(managed);
        }
    }
    let control = ControlLoop::new(groups, clock, policy.run.interval.get())
        .with_dry_run(policy.run.dry_run)
        .with_events(events)
        .with_budgets(crate::budget::BudgetTracker::new(policy))
        // The simulated cloud bills a day in full the moment it ends; a real cloud's bill of a
        // day settles over the next one.
        .with_reconciliation_after(
            policy.costs.reconcile_every.get(),
            if virtual_time {
                Duration::ZERO
            } else {
                Duration::from_secs(86_400)
            },
        );
    Ok(Built {
        control,
        virtual_time,
        providers,
    })
}

/// Builds what the file names `name` as a group's metrics source does (a key of
/// `metrics_sources`, else of `providers`), in the layers that suit it
/// ([`recommended_layers`]), reporting to `events`.
pub async fn build_named(
    document: &PolicyDocument,
    registry: &ProviderRegistry,
    name: &str,
    events: &Arc<dyn EventSink>,
) -> Result<BuiltProvider, AssemblyError> {
    let section = if document.policy.metrics_sources.contains_key(name) {
        Section::MetricsSources
    } else if document.policy.providers.contains_key(name) {
        Section::Providers
    } else {
        return Err(AssemblyError::Input(format!(
            "{}: no provider or metrics source named `{name}`",
            document.path.display()
        )));
    };
    build_entry(document, registry, name, section, events).await
}

/// Builds the provider `name` (a key of `providers`), told the file's groups on it, in the
/// layers that suit it ([`recommended_layers`]), reporting to `events`.
pub async fn build_provider(
    document: &PolicyDocument,
    registry: &ProviderRegistry,
    name: &str,
    events: &Arc<dyn EventSink>,
) -> Result<BuiltProvider, AssemblyError> {
    build_entry(document, registry, name, Section::Providers, events).await
}

/// Where in the file an entry is declared.
#[derive(Debug, Clone, Copy)]
enum Section {
    Providers,
    MetricsSources,
}

/// Builds the entry `name` of `section`: a provider is told the file's groups on it, a metrics
/// source none.
async fn build_entry(
    document: &PolicyDocument,
    registry: &ProviderRegistry,
    name: &str,
    section: Section,
    events: &Arc<dyn EventSink>,
) -> Result<BuiltProvider, AssemblyError> {
    let policy = &document.policy;
    let (config, groups, what) = match section {
        Section::Providers => (
            policy.providers.get(name),
            bounds_for(document, name),
            "provider",
        ),
        Section::MetricsSources => (
            policy.metrics_sources.get(name),
            Vec::new(),
            "metrics source",
        ),
    };
    let config = config.ok_or_else(|| {
        AssemblyError::Input(format!(
            "{}: no {what} named `{name}`",
            document.path.display()
        ))
    })?;
    let (kind, settings) = config.kind_and_settings().map_err(AssemblyError::Input)?;
    let ctx = BuildContext {
        name,
        settings: &settings,
        base_dir: &document.base_dir,
        groups: &groups,
    };
    let built = registry.build(kind, ctx).await.map_err(|e| {
        let text = format!("{what} `{name}` ({kind}): {e}");
        if matches!(e.kind(), ErrorKind::Config | ErrorKind::InvalidInput) {
            AssemblyError::Input(text)
        } else {
            AssemblyError::Runtime(text)
        }
    })?;
    Ok(recommended_layers(built, events))
}

/// How long one attempt of a provider call may take under the recommended layers.
pub const PROVIDER_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `built` wrapped in the layers that suit it. A provider on the wall clock gets the
/// recommended stack, `Retry(CircuitBreaker(Metrics(Timeout(provider))))`; a provider with its
/// own clock (the simulated cloud, which cannot fail transiently) only the metrics layer.
/// Every layer reports to `events`.
pub fn recommended_layers(built: BuiltProvider, events: &Arc<dyn EventSink>) -> BuiltProvider {
    let sink = provider_sink(Arc::clone(events));
    let metrics = MetricsLayer::new(Arc::clone(&sink));
    let stack = if built.clock.is_some() {
        LayerStack::new().metrics(metrics)
    } else {
        LayerStack::new()
            .timeout(TimeoutLayer::new(PROVIDER_CALL_TIMEOUT))
            .metrics(metrics)
            .circuit_breaker(CircuitBreakerLayer::new().with_events(Arc::clone(&sink)))
            .retry(RetryLayer::new().with_events(sink))
    };
    BuiltProvider {
        set: stack.apply(built.set),
        clock: built.clock,
    }
}
