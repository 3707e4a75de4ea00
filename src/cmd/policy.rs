//! Shared by `run`, `plan` and `validate`: the provider kinds of this build, and the engine's
//! assembly ([`hoist_core::assembly`]) with this binary's own check of the `alerts:` block.

use std::path::{Path, PathBuf};
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
///
/// `path` may also be a directory of policy files (`*.yml`, `*.yaml`; one per team, say): each
/// is loaded and validated on its own, then they run as one policy (see [`load_dir`]).
pub fn load(path: &Path, registry: &ProviderRegistry) -> Result<PolicyDocument, CliError> {
    if path.is_dir() {
        return load_dir(path, registry);
    }
    let alerts: ExtraCheck<'_> = &check_alerts;
    let span: ExtraCheck<'_> = &check_virtual_span;
    assembly::load(path, registry, &[alerts, span]).map_err(cli_error)
}

/// The policy files of a directory: its `*.yml` and `*.yaml` files (not below it), by name.
pub fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        CliError::input(format!("{}: cannot read the directory: {e}", dir.display()))
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yml" | "yaml"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(CliError::input(format!(
            "{}: a directory of policies needs at least one `*.yml` or `*.yaml` file",
            dir.display()
        )));
    }
    Ok(files)
}

/// The bytes behind a policy's fingerprint: a file's own, or for a directory each policy file's
/// name and bytes in order, so a change to any of them (or a file added or removed) changes it.
/// `None` when it cannot be read now.
pub fn source_bytes(path: &Path) -> Option<Vec<u8>> {
    let read = |file: &Path| {
        hoist_core::input::read_file(
            file,
            hoist_core::input::ReadLimits {
                max_bytes: hoist_core::config::PolicyLimits::default().max_file_bytes as u64,
                max_line_bytes: usize::MAX,
                gzip: false,
            },
        )
        .ok()
        .map(String::into_bytes)
    };
    if !path.is_dir() {
        return read(path);
    }
    let mut out = Vec::new();
    for file in policy_files(path).ok()? {
        out.extend_from_slice(file.file_name()?.as_encoded_bytes());
        out.push(0);
        out.extend(read(&file)?);
        out.push(0);
    }
    Some(out)
}

/// Loads every policy file of `dir` (each must be a valid policy on its own; all problems of
/// all files are reported together) and merges them into one policy:
/// - providers and metrics sources: the union; a name defined in several files must be defined
///   the same way in each;
/// - groups and budgets: all of them; a group name may appear in one file only;
/// - `run`, `costs` and `alerts`: from the one file that sets them (they must agree when
///   several do).
pub fn load_dir(dir: &Path, registry: &ProviderRegistry) -> Result<PolicyDocument, CliError> {
    let mut documents = Vec::new();
    let mut problems = Vec::new();
    for file in policy_files(dir)? {
        match load(&file, registry) {
            Ok(document) => documents.push(document),
            Err(CliError::Input(m) | CliError::Runtime(m)) => problems.push(m),
        }
    }
    if !problems.is_empty() {
        return Err(CliError::input(problems.join("\n")));
    }
    let mut documents = documents.into_iter();
    let Some(mut merged) = documents.next() else {
        return Err(CliError::input(format!(
            "{}: no policy file",
            dir.display()
        )));
    };
    let first = merged.path.display().to_string();
    let defaults = hoist_core::config::PolicyFile {
        version: 1,
        providers: Default::default(),
        metrics_sources: Default::default(),
        run: Default::default(),
        groups: Vec::new(),
        pools: Vec::new(),
        routes: Vec::new(),
        alerts: None,
        costs: Default::default(),
        budgets: Vec::new(),
    };
    let mut owner_of_run = (merged.policy.run != defaults.run).then(|| first.clone());
    let mut owner_of_costs = (merged.policy.costs != defaults.costs).then(|| first.clone());
    let mut owner_of_alerts = merged.policy.alerts.is_some().then(|| first.clone());
    let mut group_files: std::collections::BTreeMap<String, String> = merged
        .policy
        .groups
        .iter()
        .map(|g| {
            (
                format!("group `{}` on `{}`", g.name, g.provider),
                first.clone(),
            )
        })
        .chain(
            merged
                .policy
                .pools
                .iter()
                .map(|p| (format!("pool `{}`", p.name), first.clone())),
        )
        .collect();
    let mut problems = Vec::new();
    for document in documents {
        let file = document.path.display().to_string();
        let policy = document.policy;
        for (kind, theirs, ours) in [
            ("provider", policy.providers, &mut merged.policy.providers),
            (
                "metrics source",
                policy.metrics_sources,
                &mut merged.policy.metrics_sources,
            ),
        ] {
            for (name, config) in theirs {
                match ours.get(&name) {
                    Some(existing) if *existing != config => problems.push(format!(
                        "{file}: {kind} `{name}` is defined differently in another file of {}; define it the same way in each file, or give it another name",
                        dir.display()
                    )),
                    Some(_) => {}
                    None => {
                        ours.insert(name, config);
                    }
                }
            }
        }
        for group in policy.groups {
            let what = format!("group `{}` on `{}`", group.name, group.provider);
            if let Some(other) = group_files.insert(what.clone(), file.clone()) {
                problems.push(format!(
                    "{file}: {what} is also in {other}; a group belongs to one file"
                ));
            }
            merged.policy.groups.push(group);
        }
        for pool in policy.pools {
            let what = format!("pool `{}`", pool.name);
            if let Some(other) = group_files.insert(what.clone(), file.clone()) {
                problems.push(format!(
                    "{file}: {what} is also in {other}; a pool belongs to one file"
                ));
            }
            merged.policy.pools.push(pool);
        }
        merged.policy.routes.extend(policy.routes);
        merged.policy.budgets.extend(policy.budgets);
        let mut take = |what: &str, differs: bool, set: bool, owner: &mut Option<String>| -> bool {
            if !set {
                return false;
            }
            match owner {
                Some(other) if differs => {
                    problems.push(format!(
                        "{file}: `{what}` is also set, differently, in {other}; set it in one file"
                    ));
                    false
                }
                Some(_) => false,
                None => {
                    *owner = Some(file.clone());
                    true
                }
            }
        };
        if take(
            "run",
            policy.run != merged.policy.run,
            policy.run != defaults.run,
            &mut owner_of_run,
        ) {
            merged.policy.run = policy.run;
        }
        if take(
            "costs",
            policy.costs != merged.policy.costs,
            policy.costs != defaults.costs,
            &mut owner_of_costs,
        ) {
            merged.policy.costs = policy.costs;
        }
        if take(
            "alerts",
            policy.alerts != merged.policy.alerts,
            policy.alerts.is_some(),
            &mut owner_of_alerts,
        ) {
            merged.policy.alerts = policy.alerts;
        }
    }
    if !problems.is_empty() {
        return Err(CliError::input(problems.join("\n")));
    }
    merged.path = dir.to_path_buf();
    Ok(merged)
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

pub(crate) fn cli_error(error: AssemblyError) -> CliError {
    if error.is_input() {
        CliError::input(error)
    } else {
        CliError::runtime(error)
    }
}
