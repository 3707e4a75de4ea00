//! `hoist recommend`: usage optimisation for every group of a policy file, from its history.
//!
//! On the simulated cloud the history is made: the policy is replayed in virtual time over
//! `--history` (the control loop of `hoist run`, on a simulated cloud built from the file, with
//! no audit log or ledger written), and each group's utilisation, ready capacity, instances and
//! cost are read back in 5-minute steps, with every instance's life from the simulated cloud's
//! instance history. From that, per group:
//!
//! - **rightsizing**: the cheapest class for one instance's peak at the target utilisation, and
//!   the cheapest (class, count) that carries the group's peak load, both chosen by
//!   [`hoist_core::engine::rightsizing`]; the monthly cost of the recommended class following
//!   the load against what the group cost;
//! - **idle capacity**: stretches where utilisation stays below `--idle-below` for at least
//!   `--idle-for`, what they cost, and what they cost beyond what the load needed;
//! - **an off-hours schedule** the weekly profile supports, as `scheduled` policies ready to
//!   paste;
//! - **spot**: whether the group suits spot, from how long its instances live.
//!
//! On a real provider (AWS, Azure, GCP, Kubernetes, a plugin) the history is read over the
//! last `--history`, in 5-minute steps, from the group's metrics source (its `metrics.source`,
//! else its provider): the group's utilisation as its policies read it (`metrics.queries.utilization`
//! when the file gives one), and its in-service instance count from the query
//! `--instances-query`, else the group's `metrics.queries.in_service_instances`, else the source's
//! default (CloudWatch: `AWS/AutoScaling:GroupInServiceInstances:Average`, which needs the
//! group's metrics collection enabled; Prometheus: `hoist_group_ready_instances`, which a
//! running `hoist` exports). The group's class, zones and capacity type come from the provider,
//! prices from its catalog; cost is the catalog price of the instances counted. Instance lives
//! are not in a metric: the spot section reads them from the count (capacity added last is
//! taken to be removed first) and says so.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc, Weekday};
use hoist_core::assembly;
use hoist_core::config::{GroupConfig, IN_SERVICE_INSTANCES, PolicyConfig, PolicyDocument};
use hoist_core::control::{ControlLoop, ManagedGroup};
use hoist_core::duration::HumanDuration;
use hoist_core::engine::rightsizing::{
    self, ChoiceOptions, Current, HOURS_PER_MONTH, Load, Need, Offer, SpotRisk,
};
use hoist_core::input::MAX_INSTANCES;
use hoist_core::registry::{BuiltProvider, GroupBounds, ProviderRegistry};
use hoist_core::sim::{InstanceRecord, SimulatedCloud, SimulatedCloudConfig};
use hoist_core::{
    Architecture, BillingProvider, CapacityType, CostGranularity, CostQuery, Currency, Decimal,
    InstanceCatalog, InstanceClass, InstanceFamily, MetricKind, MetricQuery, MetricsSource, Money,
    RangeQuery, ScalingProvider, TimeRange,
};
use serde::Serialize;

use super::{CliError, CliResult, policy, runtime};

/// The step history is read in, seconds.
const STEP_SECONDS: i64 = 300;

/// An instance that lives less than a day is short-lived: it comes and goes with the load
/// (added for a day's peak, removed at night), unlike the base that runs through.
const SHORT_LIFE_HOURS: f64 = 24.0;

/// The notice a cloud gives before it takes a spot instance back.
const SPOT_NOTICE: Duration = Duration::from_secs(120);

/// The target utilisation when neither `--target` nor a policy of the group gives one.
const DEFAULT_TARGET: f64 = 0.7;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Plain text for a terminal.
    Table,
    /// Markdown, for a pull request or a wiki.
    Markdown,
    /// One JSON object.
    Json,
}

/// Options of `hoist recommend`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy file.
    pub file: PathBuf,
    /// How much history to read. On the simulated cloud: the virtual time the policy is replayed
    /// for, from the simulated cloud's start; on a real provider: the last DURATION before now
    /// (at most 400d; CloudWatch keeps 5-minute data for 63 days).
    #[arg(long, default_value = "7d", value_name = "DURATION", value_parser = parse_duration)]
    pub history: HumanDuration,
    /// Utilisation below which capacity counts as idle.
    #[arg(long, default_value_t = 0.2, value_name = "UTILISATION")]
    pub idle_below: f64,
    /// How long utilisation must stay below `--idle-below` for a stretch to be reported.
    #[arg(long, default_value = "2h", value_name = "DURATION", value_parser = parse_duration)]
    pub idle_for: HumanDuration,
    /// The utilisation to size for. Default: the group's `target_tracking` utilisation target
    /// (the lowest, when it has several), else 0.7.
    #[arg(long, value_name = "UTILISATION")]
    pub target: Option<f64>,
    /// Families a recommended class may be in (general, compute, memory, storage, network,
    /// accelerated, burstable). Default: every family but burstable, whose shared cores are
    /// sized for bursts rather than sustained load.
    #[arg(long, value_delimiter = ',', value_name = "FAMILY,...")]
    pub families: Vec<String>,
    /// CPU architectures a recommended class may have (x86_64, arm64). Default: the group's
    /// current class's, since its machine image is built for it (with --classes, any).
    #[arg(long, value_delimiter = ',', value_name = "ARCH,...")]
    pub architectures: Vec<String>,
    /// Classes a recommendation may be, by name. Default: any class of the allowed families.
    #[arg(long, value_delimiter = ',', value_name = "CLASS,...")]
    pub classes: Vec<String>,
    /// Let the class choice buy spot (its price plus what the simulated cloud's
    /// `spot_interruptions_per_hour` costs in replacements; on a real provider, the catalog's
    /// spot price alone, its interruption rate being unknown). Default: on demand only; the spot
    /// section says separately whether the group suits spot.
    #[arg(long)]
    pub spot: bool,
    /// Memory each instance needs (`6GiB`, `512MiB`, bytes). The simulated cloud models CPU
    /// only, so by default classes are fitted on CPU alone.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_per_instance: Option<u64>,
    /// On a real provider: the query (PromQL, a CloudWatch metric spec, ...) that gives the
    /// group's in-service instance count over time; `{group}` is replaced by the group's id.
    /// Default: the group's `metrics.queries.in_service_instances`, else on CloudWatch
    /// `AWS/AutoScaling:GroupInServiceInstances:Average` and on Prometheus
    /// `hoist_group_ready_instances{group="{group}"}`.
    #[arg(long, value_name = "QUERY")]
    pub instances_query: Option<String>,
    /// On a real provider: the query that gives the share of each instance's memory in use
    /// (mean over the group; a share 0..1, or percent when its values pass 1), to fit classes
    /// on memory too: each instance needs its class's memory × the peak share ÷ the memory
    /// target (the group's `vertical.memory_target_utilization`, else 0.8). Default: the
    /// group's `vertical.memory_metric`, when it has one. `--memory-per-instance` wins over it.
    #[arg(long, value_name = "QUERY")]
    pub memory_query: Option<String>,
    /// Only these groups (repeat for several). Default: every group.
    #[arg(long, value_name = "NAME")]
    pub group: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

fn parse_duration(text: &str) -> Result<HumanDuration, String> {
    hoist_core::duration::parse_duration(text).map(HumanDuration)
}

/// A size in bytes: a number with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a size such as 6GiB, 512MiB or 2000000000"))?;
    let factor: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            ));
        }
    };
    let bytes = value * factor;
    if !(bytes.is_finite() && bytes > 0.0 && bytes < 1e18) {
        return Err(format!("{text:?}: a size must be more than 0 and finite"));
    }
    Ok(bytes.round() as u64)
}

fn parse_family(name: &str) -> Result<InstanceFamily, CliError> {
    serde_json::from_value(serde_json::Value::String(name.trim().to_owned())).map_err(|_| {
        CliError::input(format!(
            "--families {name}: unknown family (general, compute, memory, storage, network, accelerated, burstable)"
        ))
    })
}

fn parse_architecture(name: &str) -> Result<Architecture, CliError> {
    serde_json::from_value(serde_json::Value::String(name.trim().to_owned())).map_err(|_| {
        CliError::input(format!(
            "--architectures {name}: unknown architecture (x86_64, arm64)"
        ))
    })
}

/// The flags checked, and the class-choice options they give.
struct Settings {
    history: Duration,
    idle_below: f64,
    idle_for: Duration,
    target: Option<f64>,
    families: Vec<InstanceFamily>,
    classes: Option<Vec<String>>,
    /// Given with --architectures; `None`: the group's own (any with --classes).
    architectures: Option<Vec<Architecture>>,
    spot: bool,
    memory_bytes: f64,
}

impl Settings {
    fn from_args(args: &Args) -> Result<Settings, CliError> {
        let history = args.history.get();
        if history < Duration::from_secs(3600) {
            return Err(CliError::input(format!(
                "--history {}: read at least 1h of history (a week shows the weekly profile)",
                args.history
            )));
        }
        if !(args.idle_below > 0.0 && args.idle_below <= 1.0) {
            return Err(CliError::input(format!(
                "--idle-below {}: a utilisation in (0, 1], such as 0.2",
                args.idle_below
            )));
        }
        let idle_for = args.idle_for.get();
        if idle_for < Duration::from_secs(STEP_SECONDS as u64) {
            return Err(CliError::input(format!(
                "--idle-for {}: at least 5m, the step history is read in",
                args.idle_for
            )));
        }
        if let Some(t) = args.target
            && !(t > 0.0 && t <= 1.0)
        {
            return Err(CliError::input(format!(
                "--target {t}: a utilisation in (0, 1], such as 0.7"
            )));
        }
        let families = if args.families.is_empty() {
            [
                InstanceFamily::General,
                InstanceFamily::Compute,
                InstanceFamily::Memory,
                InstanceFamily::Storage,
                InstanceFamily::Network,
                InstanceFamily::Accelerated,
            ]
            .to_vec()
        } else {
            args.families
                .iter()
                .map(|f| parse_family(f))
                .collect::<Result<_, _>>()?
        };
        Ok(Settings {
            history,
            idle_below: args.idle_below,
            idle_for,
            target: args.target,
            families,
            classes: (!args.classes.is_empty()).then(|| args.classes.clone()),
            architectures: if args.architectures.is_empty() {
                None
            } else {
                Some(
                    args.architectures
                        .iter()
                        .map(|a| parse_architecture(a))
                        .collect::<Result<_, _>>()?,
                )
            },
            spot: args.spot,
            memory_bytes: args.memory_per_instance.map_or(0.0, |b| b as f64),
        })
    }
}

/// Runs `hoist recommend`.
pub fn run(args: Args) -> CliResult {
    let settings = Settings::from_args(&args)?;
    let registry = policy::registry();
    let document = policy::load(&args.file, &registry)?;
    let file = args.file.display().to_string();

    for name in &args.group {
        if !document.policy.groups.iter().any(|g| &g.name == name) {
            return Err(CliError::input(format!(
                "--group {name}: {file} has no group named {name:?} (it has {})",
                document
                    .policy
                    .groups
                    .iter()
                    .map(|g| g.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let chosen: Vec<(usize, &GroupConfig)> = document
        .policy
        .groups
        .iter()
        .enumerate()
        .filter(|(_, g)| args.group.is_empty() || args.group.contains(&g.name))
        .collect();

    // Groups of a simulated cloud get their history by a replay; the others read theirs.
    let mut providers: Vec<(String, serde_json::Value)> = Vec::new();
    let mut real: Vec<(usize, &GroupConfig)> = Vec::new();
    for (index, group) in &chosen {
        let provider = &document.policy.providers[&group.provider];
        let (kind, group_settings) = provider.kind_and_settings().map_err(CliError::input)?;
        if kind != "simulated" {
            real.push((*index, group));
        } else if !providers.iter().any(|(n, _)| n == &group.provider) {
            providers.push((group.provider.clone(), group_settings));
        }
    }
    if !providers.is_empty()
        && let Some(problem) = policy::virtual_span_problem(&document, settings.history)
    {
        return Err(CliError::input(format!("--history: {problem}")));
    }
    for (flag, query) in [
        ("--instances-query", &args.instances_query),
        ("--memory-query", &args.memory_query),
    ] {
        if query.as_deref().is_some_and(|q| q.trim().is_empty()) {
            return Err(CliError::input(format!("{flag}: an empty query")));
        }
    }
    if real.is_empty() {
        for (flag, given) in [
            ("--instances-query", args.instances_query.is_some()),
            ("--memory-query", args.memory_query.is_some()),
        ] {
            if given {
                return Err(CliError::input(format!(
                    "{flag}: reads a real provider's metrics, and every group chosen is on a simulated cloud (its history is replayed)"
                )));
            }
        }
    }
    if !real.is_empty() && settings.history > MAX_READ_HISTORY {
        return Err(CliError::input(format!(
            "--history {}: a real provider's history is read for at most {}",
            args.history,
            HumanDuration(MAX_READ_HISTORY)
        )));
    }

    let mut groups = Vec::new();
    let rt = runtime()?;
    for (name, provider_settings) in &providers {
        let data = rt.block_on(replay(
            &document,
            name,
            provider_settings,
            &chosen,
            settings.history,
        ))?;
        groups.extend(data);
    }
    if !real.is_empty() {
        groups.extend(rt.block_on(read_history(
            &document,
            &registry,
            &real,
            settings.history,
            args.instances_query.as_deref(),
            args.memory_query.as_deref(),
        ))?);
    }
    // In the file's order.
    groups.sort_by_key(|g| g.index);

    let reports = groups
        .iter()
        .map(|g| analyse(g, &settings))
        .collect::<Result<Vec<_>, _>>()?;
    let report = Report {
        file,
        history: HumanDuration(settings.history).to_string(),
        from: groups.first().map(|g| g.start),
        until: groups.first().map(|g| g.end),
        step_seconds: STEP_SECONDS,
        hours_per_month: HOURS_PER_MONTH,
        settings: SettingsOut {
            idle_below: settings.idle_below,
            idle_for: HumanDuration(settings.idle_for).to_string(),
            target: settings.target,
            families: settings
                .families
                .iter()
                .map(|f| rightsizing::family_name(*f).to_owned())
                .collect(),
            classes: settings.classes.clone(),
            architectures: settings.architectures.as_ref().map(|a| {
                a.iter()
                    .map(|a| rightsizing::architecture_name(*a).to_owned())
                    .collect()
            }),
            spot: settings.spot,
            memory_per_instance_bytes: (settings.memory_bytes > 0.0)
                .then_some(settings.memory_bytes as u64),
        },
        groups: reports,
    };
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(CliError::runtime)?
        ),
        Format::Table => print!("{}", text(&report, false)),
        Format::Markdown => print!("{}", text(&report, true)),
    }
    Ok(ExitCode::SUCCESS)
}

// ----- the history -----

/// One step of a group's history.
#[derive(Debug, Clone)]
struct Step {
    /// Its start.
    at: DateTime<Utc>,
    /// Mean utilisation of the ready capacity (`None`: no metric in the step).
    util: Option<f64>,
    /// Busy CPU cores: utilisation × ready capacity, in cores of the group's class.
    load: Option<f64>,
    /// Instances billed, time-averaged over the step (booting and draining ones included).
    billed: f64,
    /// What the step cost.
    cost: f64,
}

/// What the replay gives about one group.
#[derive(Debug)]
struct GroupData {
    index: usize,
    config: GroupConfig,
    id: String,
    provider: String,
    class: InstanceClass,
    capacity_type: CapacityType,
    zones: Vec<String>,
    catalog: Vec<InstanceClass>,
    currency: Currency,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    steps: Vec<Step>,
    instances: Vec<InstanceRecord>,
    /// What the group cost over the history: the simulated cloud's bill, or on a real provider
    /// the catalog price of the instances counted.
    cost: f64,
    /// Whether `instances` were read from the in-service count rather than recorded.
    lives_from_count: bool,
    /// Where the history comes from, in words.
    history_from: String,
    /// Memory each instance needs, bytes, from a real group's memory in use.
    memory_need_bytes: Option<f64>,
    spot_interruptions_per_hour: f64,
    boot_delay: Duration,
}

async fn replay(
    document: &PolicyDocument,
    provider: &str,
    provider_settings: &serde_json::Value,
    chosen: &[(usize, &GroupConfig)],
    history: Duration,
) -> Result<Vec<GroupData>, CliError> {
    let settings = if provider_settings.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        provider_settings.clone()
    };
    let config: SimulatedCloudConfig = serde_json::from_value(settings).map_err(|e| {
        CliError::input(format!(
            "{}: providers.{provider}.simulated: {e}",
            document.path.display()
        ))
    })?;
    // The simulated cloud has every group of its provider, and the loop scales them all (they
    // share the account's quota); only the chosen ones are reported.
    let on_provider: Vec<(usize, &GroupConfig)> = document
        .policy
        .groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.provider == provider)
        .collect();
    let bounds: Vec<GroupBounds> = on_provider
        .iter()
        .map(|(_, g)| {
            GroupBounds::new(g.provider_id(), g.min, g.max).with_drain(g.drain.map(|d| d.get()))
        })
        .collect();
    let cloud =
        SimulatedCloud::from_policy_groups(&config, &document.base_dir, &bounds).map_err(|e| {
            CliError::input(format!(
                "{}: providers.{provider}.simulated: {}",
                document.path.display(),
                e.message()
            ))
        })?;
    let catalog = cloud.instance_classes().await.map_err(CliError::runtime)?;
    let start = cloud.now();
    let end = start + TimeDelta::from_std(history).unwrap_or(TimeDelta::MAX);
    let mut before = Vec::new();
    for (_, g) in &on_provider {
        before.push(
            cloud
                .describe_group(g.provider_id())
                .await
                .map_err(CliError::runtime)?,
        );
    }

    let set = cloud.provider_set(provider);
    let managed = on_provider
        .iter()
        .map(|(_, g)| ManagedGroup::new((*g).clone(), set.clone()))
        .collect();
    let mut control = ControlLoop::new(managed, cloud.clock(), document.policy.run.interval.get())
        .with_budgets(hoist_core::budget::BudgetTracker::new(&document.policy));
    control
        .run(Some(end), |_| {})
        .await
        .map_err(CliError::runtime)?;
    // Let the last metric periods of the history become visible.
    let lag = config.metric_lag.map_or(60, |d| d.get().as_secs()) as i64;
    let period = config.metric_period.map_or(60, |d| d.get().as_secs()) as i64;
    cloud.advance_to(end + TimeDelta::seconds(lag + period + 1));

    let range = TimeRange { start, end };
    let bill = cloud
        .cost(&CostQuery {
            range,
            granularity: CostGranularity::Hourly,
            group_by: Some("group".to_owned()),
        })
        .await
        .map_err(CliError::runtime)?;
    let boot_delay = config
        .boot_delay
        .map_or(Duration::from_secs(120), |d| d.get());

    let mut out = Vec::new();
    for ((index, group), view) in on_provider.iter().zip(before) {
        if !chosen.iter().any(|(i, _)| i == index) {
            continue;
        }
        let id = group.provider_id().to_owned();
        let class = catalog
            .iter()
            .find(|c| c.name == view.instance_class)
            .cloned()
            .ok_or_else(|| {
                CliError::runtime(format!(
                    "group {}: class {} is not in the simulated cloud's catalog",
                    group.name, view.instance_class
                ))
            })?;
        let capacity_type = if config.groups.get(&id).is_some_and(|g| g.spot) {
            CapacityType::Spot
        } else {
            CapacityType::OnDemand
        };
        let currency = class
            .offerings
            .first()
            .map_or_else(Currency::usd, |o| o.price.amount.currency.clone());
        let work_per_instance = cloud.work_per_instance(&id).map_err(CliError::runtime)?;
        let query = |metric: MetricKind| {
            RangeQuery::new(
                MetricQuery {
                    group: id.clone(),
                    metric,
                    expression: None,
                },
                range,
                60,
            )
        };
        let util = cloud
            .query_range(&query(MetricKind::Utilization))
            .await
            .map_err(CliError::runtime)?;
        let capacity = cloud
            .query_range(&query(MetricKind::Custom("ready_capacity".to_owned())))
            .await
            .map_err(CliError::runtime)?;
        let instances = cloud.instance_history(&id).map_err(CliError::runtime)?;
        let cost: f64 = bill
            .iter()
            .filter(|e| e.key.as_deref() == Some(id.as_str()))
            .map(|e| e.amount.to_f64())
            .sum();
        let steps = steps(
            start,
            end,
            period,
            util.first().map_or(&[][..], |s| &s.samples[..]),
            capacity.first().map_or(&[][..], |s| &s.samples[..]),
            &instances,
            class.vcpus / work_per_instance,
        );
        out.push(GroupData {
            index: *index,
            config: (*group).clone(),
            id,
            provider: provider.to_owned(),
            class,
            capacity_type,
            zones: view.zones.clone(),
            catalog: catalog.clone(),
            currency,
            start,
            end,
            steps,
            instances,
            cost,
            lives_from_count: false,
            history_from: "replayed on the simulated cloud".to_owned(),
            memory_need_bytes: None,
            spot_interruptions_per_hour: config.spot_interruptions_per_hour.unwrap_or(0.0),
            boot_delay,
        });
    }
    Ok(out)
}

/// The longest history read from a real provider (CloudWatch keeps 5-minute data for 63 days,
/// Prometheus what its retention says).
const MAX_READ_HISTORY: Duration = Duration::from_secs(400 * 86_400);

/// The in-service count query of a metrics source of `kind` when the file and flags give none.
fn default_instances_query(kind: &str) -> Option<&'static str> {
    match kind {
        "aws" => Some("AWS/AutoScaling:GroupInServiceInstances:Average"),
        "prometheus" => Some(r#"hoist_group_ready_instances{group="{group}"}"#),
        _ => None,
    }
}

/// Reads the history of groups on real providers over the `history` before now (see the module
/// docs).
async fn read_history(
    document: &PolicyDocument,
    registry: &ProviderRegistry,
    groups: &[(usize, &GroupConfig)],
    history: Duration,
    instances_query: Option<&str>,
    memory_query: Option<&str>,
) -> Result<Vec<GroupData>, CliError> {
    let events: std::sync::Arc<dyn hoist_core::events::EventSink> =
        std::sync::Arc::new(hoist_core::events::NoEvents);
    let mut providers: BTreeMap<String, BuiltProvider> = BTreeMap::new();
    let mut sources: BTreeMap<String, BuiltProvider> = BTreeMap::new();
    let now = Utc::now();
    let end = DateTime::from_timestamp(now.timestamp() - now.timestamp() % STEP_SECONDS, 0)
        .unwrap_or(now);
    let start = end - TimeDelta::from_std(history).unwrap_or(TimeDelta::MAX);
    let range = TimeRange { start, end };
    let mut out = Vec::new();
    for (index, group) in groups {
        let source_name = group
            .metrics
            .as_ref()
            .and_then(|m| m.source.clone())
            .unwrap_or_else(|| group.provider.clone());
        let id = group.provider_id().to_owned();
        let at = |field: &str| {
            if field == "metrics" && group.metrics.is_none() {
                format!("groups[{index}].name")
            } else {
                format!("groups[{index}].{field}")
            }
        };
        let source_kind = document
            .policy
            .metrics_sources
            .get(&source_name)
            .or_else(|| document.policy.providers.get(&source_name))
            .and_then(|c| c.kind_and_settings().ok())
            .map(|(kind, _)| kind.to_owned())
            .unwrap_or_default();
        let queries = group.metrics.as_ref().map(|m| &m.queries);
        let query_of = |metric: &MetricKind| {
            queries
                .and_then(|q| q.get(metric))
                .map(|q| q.replace("{group}", &id))
        };
        let in_service = MetricKind::Custom(IN_SERVICE_INSTANCES.to_owned());
        let count_query = instances_query
            .map(|q| q.replace("{group}", &id))
            .or_else(|| query_of(&in_service))
            .or_else(|| default_instances_query(&source_kind).map(|q| q.replace("{group}", &id)))
            .ok_or_else(|| {
                CliError::input(document.error_at(
                    &at("metrics"),
                    format!(
                        "group `{}`: no query for its in-service instance count on `{source_name}` ({source_kind}); give one as `metrics: {{queries: {{{IN_SERVICE_INSTANCES}: QUERY}}}}` or with --instances-query",
                        group.name
                    ),
                ))
            })?;
        if !providers.contains_key(&group.provider) {
            let one = assembly::build_provider(document, registry, &group.provider, &events)
                .await
                .map_err(policy::cli_error)?;
            providers.insert(group.provider.clone(), one);
        }
        let set = &providers[&group.provider].set;
        let source = match group.metrics.as_ref().and_then(|m| m.source.as_ref()) {
            None => set.metrics.clone(),
            Some(name) => {
                if !sources.contains_key(name) {
                    let one = assembly::build_named(document, registry, name, &events)
                        .await
                        .map_err(policy::cli_error)?;
                    sources.insert(name.clone(), one);
                }
                sources[name].set.metrics.clone()
            }
        };
        let (Some(scaling), Some(catalog)) = (&set.scaling, &set.catalog) else {
            return Err(CliError::input(document.error_at(
                &at("provider"),
                format!(
                    "group `{}`: provider `{}` offers no scaling groups or no instance catalog, and `hoist recommend` needs both",
                    group.name, group.provider
                ),
            )));
        };
        let Some(metrics) = source else {
            return Err(CliError::input(document.error_at(
                &at("metrics"),
                format!(
                    "group `{}`: `{source_name}` gives no metrics; `hoist recommend` reads the group's utilisation and instance count from its metrics source",
                    group.name
                ),
            )));
        };
        let view = scaling
            .describe_group(&id)
            .await
            .map_err(|e| CliError::runtime(format!("group {}: {e}", group.name)))?;
        let classes = catalog
            .instance_classes()
            .await
            .map_err(|e| CliError::runtime(format!("group {}: catalog: {e}", group.name)))?;
        let class = classes
            .iter()
            .find(|c| c.name == view.instance_class)
            .cloned()
            .ok_or_else(|| {
                CliError::runtime(format!(
                    "group {}: its class {} is not in provider `{}`'s catalog",
                    group.name, view.instance_class, group.provider
                ))
            })?;
        let read = |metric: MetricKind, expression: Option<String>| {
            let metrics = std::sync::Arc::clone(&metrics);
            let id = id.clone();
            async move {
                let description = expression.clone().unwrap_or_else(|| metric.to_string());
                let request = RangeQuery::new(
                    MetricQuery {
                        group: id,
                        metric,
                        expression,
                    },
                    range,
                    STEP_SECONDS as u32,
                );
                match metrics.query_range(&request).await {
                    Ok(series) if series.len() > 1 => Err(format!(
                        "`{description}` returned {} series; it must give one",
                        series.len()
                    )),
                    Ok(mut series) => Ok(series.pop().map(|s| s.samples).unwrap_or_default()),
                    Err(e) => Err(format!("`{description}`: {e}")),
                }
            }
        };
        let util = read(MetricKind::Utilization, query_of(&MetricKind::Utilization))
            .await
            .map_err(|e| CliError::runtime(format!("group {}: utilisation: {e}", group.name)))?;
        let counts = read(in_service, Some(count_query.clone()))
            .await
            .map_err(|e| CliError::runtime(format!("group {}: instance count: {e}", group.name)))?;
        if !counts.iter().any(|s| count_ok(s.value)) {
            return Err(CliError::runtime(format!(
                "group {}: `{count_query}` on `{source_name}` gave no instance count (0 to {MAX_INSTANCES}) over the last {}; check the query (on CloudWatch the group's metrics collection must be enabled), or give another with --instances-query",
                group.name,
                HumanDuration(history)
            )));
        }
        let capacity_type = if !view.instances.is_empty()
            && view
                .instances
                .iter()
                .all(|i| i.capacity_type == CapacityType::Spot)
        {
            CapacityType::Spot
        } else {
            CapacityType::OnDemand
        };
        let options = ChoiceOptions {
            zones: Some(view.zones.clone()),
            ..ChoiceOptions::default()
        };
        let offer = rightsizing::offer(&class, capacity_type, &options)
            .or_else(|| rightsizing::offer(&class, capacity_type, &ChoiceOptions::default()))
            .ok_or_else(|| {
                CliError::runtime(format!(
                    "group {}: provider `{}`'s catalog has no {capacity_type:?} price for {}",
                    group.name, group.provider, class.name
                ))
            })?;
        let price = rightsizing::per_hour_f64(&offer);
        // Memory in use: the flag's query, else the vertical block's memory metric.
        let vertical = group.vertical.as_ref();
        let memory_signal = match (
            memory_query,
            vertical.and_then(|v| v.memory_metric.as_ref()),
        ) {
            (Some(q), _) => Some((
                MetricKind::Custom("memory".to_owned()),
                Some(q.replace("{group}", &id)),
            )),
            (None, Some(name)) => {
                let metric = MetricKind::Custom(name.clone());
                let expression = query_of(&metric);
                Some((metric, expression))
            }
            (None, None) => None,
        };
        let mut memory_note = String::new();
        let mut memory_need_bytes = None;
        if let Some((metric, expression)) = memory_signal {
            let description = expression.clone().unwrap_or_else(|| metric.to_string());
            let samples = read(metric, expression).await.map_err(|e| {
                CliError::runtime(format!("group {}: memory in use: {e}", group.name))
            })?;
            let target = vertical.map_or(0.8, |v| v.memory_target_utilization);
            let Some((peak, percent)) = peak_memory_share(start, end, &samples) else {
                return Err(CliError::runtime(format!(
                    "group {}: `{description}` on `{source_name}` gave no memory share (0..1, or percent) over the last {}",
                    group.name,
                    HumanDuration(history)
                )));
            };
            let need = peak * class.memory_mib as f64 * 1024.0 * 1024.0 / target;
            memory_need_bytes = Some(need);
            let _ = write!(
                memory_note,
                ", memory from `{description}`{} (peak {:.0} % of {} MiB in use: {:.0} MiB each at {:.0} %)",
                if percent { " read as percent" } else { "" },
                peak * 100.0,
                class.memory_mib,
                need / (1024.0 * 1024.0),
                target * 100.0
            );
        }
        let history_from = format!(
            "read from `{source_name}`: utilisation from {}, instances from `{count_query}`{memory_note}, cost at the catalog's {} price",
            query_of(&MetricKind::Utilization)
                .map_or("the source's built-in signal".to_owned(), |q| format!(
                    "`{q}`"
                )),
            match capacity_type {
                CapacityType::Spot => "spot",
                _ => "on-demand",
            }
        );
        let steps = read_steps(start, end, &util, &counts, class.vcpus, price);
        let instances =
            lives_from_counts(&steps, &class.name, capacity_type, price).map_err(|launches| {
                CliError::runtime(format!(
                    "group {}: `{count_query}` rises by more than {launches} instances in all over the last {}; that is no group's count: check the query",
                    group.name,
                    HumanDuration(history)
                ))
            })?;
        out.push(GroupData {
            index: *index,
            config: (*group).clone(),
            id,
            provider: group.provider.clone(),
            currency: offer.per_hour.currency.clone(),
            class,
            capacity_type,
            zones: view.zones.clone(),
            catalog: classes,
            start,
            end,
            cost: steps.iter().map(|x| x.cost).sum(),
            steps,
            instances,
            lives_from_count: true,
            history_from,
            memory_need_bytes,
            spot_interruptions_per_hour: 0.0,
            boot_delay: Duration::from_secs(120),
        });
    }
    Ok(out)
}

/// The peak share of memory in use over 5-minute steps (each step's samples averaged), and
/// whether the values were percent: a share cannot pass 1, so a series whose values pass 1 and
/// stay within 100 is read as percent. `None` when no value is in range.
fn peak_memory_share(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    samples: &[hoist_core::Sample],
) -> Option<(f64, bool)> {
    let valid: Vec<&hoist_core::Sample> = samples
        .iter()
        .filter(|s| s.value.is_finite() && s.value >= 0.0 && s.at >= start && s.at < end)
        .collect();
    let max = valid.iter().map(|s| s.value).fold(f64::NAN, f64::max);
    if !(0.0..=100.0).contains(&max) {
        return None;
    }
    let percent = max > 1.0;
    let scale = if percent { 0.01 } else { 1.0 };
    let mut steps: BTreeMap<i64, (f64, usize)> = BTreeMap::new();
    for s in valid {
        let step = steps
            .entry((s.at - start).num_seconds() / STEP_SECONDS)
            .or_default();
        step.0 += s.value * scale;
        step.1 += 1;
    }
    let peak = steps
        .values()
        .map(|(sum, n)| sum / *n as f64)
        .fold(0.0, f64::max);
    Some((peak, percent))
}

/// A real group's history in steps of [`STEP_SECONDS`]: each sample in the step its time falls
/// in (averaged); a step without a count keeps the count before it (the first known count
/// before the first sample). Cost is the instances counted at `price` per hour.
fn read_steps(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    util: &[hoist_core::Sample],
    counts: &[hoist_core::Sample],
    cores_per_instance: f64,
    price: f64,
) -> Vec<Step> {
    let n = usize::try_from(((end - start).num_seconds().max(0)) / STEP_SECONDS).unwrap_or(0);
    let bucket = |samples: &[hoist_core::Sample], valid: fn(f64) -> bool| {
        let mut sums = vec![(0.0, 0usize); n];
        for s in samples.iter().filter(|s| valid(s.value)) {
            let secs = (s.at - start).num_seconds();
            if secs >= 0
                && let Ok(i) = usize::try_from(secs / STEP_SECONDS)
                && i < n
            {
                sums[i].0 += s.value;
                sums[i].1 += 1;
            }
        }
        sums.into_iter()
            .map(|(sum, k)| (k > 0).then(|| sum / k as f64))
            .collect::<Vec<_>>()
    };
    let utils = bucket(util, |v| v.is_finite() && v >= 0.0);
    let count_steps = bucket(counts, count_ok);
    let mut last = count_steps.iter().flatten().next().copied().unwrap_or(0.0);
    (0..n)
        .map(|i| {
            if let Some(c) = count_steps[i] {
                last = c;
            }
            // Utilisation is a share of what runs: above 1 is a reporting artefact.
            let util = utils[i].map(|u| u.min(1.0));
            Step {
                at: start + TimeDelta::seconds(i as i64 * STEP_SECONDS),
                util,
                load: util.map(|u| u * last * cores_per_instance),
                billed: last,
                cost: last * price * STEP_SECONDS as f64 / 3600.0,
            }
        })
        .collect()
}

/// A value an in-service count may have.
fn count_ok(value: f64) -> bool {
    value.is_finite() && (0.0..=f64::from(MAX_INSTANCES)).contains(&value)
}

/// The most instance lives read from a count history: a series that launches more is not a
/// group's count, and each life is a record in memory.
const MAX_LIVES: usize = 1_000_000;

/// Instance lives read from a count history: each step's count rounded, an instance added when
/// it rises and the newest removed when it falls. Those counted in the first step are taken to
/// start with the history (their lives are at least that long). `Err(MAX_LIVES)` when the count
/// launches more than [`MAX_LIVES`] instances in all.
fn lives_from_counts(
    steps: &[Step],
    class: &str,
    capacity_type: CapacityType,
    price: f64,
) -> Result<Vec<InstanceRecord>, usize> {
    let mut launched = 0usize;
    let mut done = Vec::new();
    let mut running: Vec<DateTime<Utc>> = Vec::new();
    let record = |n: usize, from: DateTime<Utc>, until: Option<DateTime<Utc>>| InstanceRecord {
        id: format!("counted-{n}"),
        instance_class: class.to_owned(),
        capacity_type,
        launched_at: from,
        ready_at: Some(from),
        ended_at: until,
        drain_started_at: None,
        interrupted: false,
        price_per_hour: price,
    };
    for step in steps {
        let count = step.billed.round().max(0.0) as usize;
        if count > running.len() {
            launched += count - running.len();
            if launched > MAX_LIVES {
                return Err(MAX_LIVES);
            }
        }
        while running.len() < count {
            running.push(step.at);
        }
        while running.len() > count {
            if let Some(from) = running.pop() {
                done.push(record(done.len(), from, Some(step.at)));
            }
        }
    }
    for from in running {
        done.push(record(done.len(), from, None));
    }
    Ok(done)
}

/// The history in steps of [`STEP_SECONDS`]: metric samples (stamped at the end of their
/// period of `period` seconds) averaged into the step their period starts in; instances and cost
/// from each instance's life.
fn steps(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    period: i64,
    util: &[hoist_core::Sample],
    capacity: &[hoist_core::Sample],
    instances: &[InstanceRecord],
    cores_per_work_unit: f64,
) -> Vec<Step> {
    let step = STEP_SECONDS.max(period);
    let n = ((end - start).num_seconds().max(0) + step - 1) / step;
    let n = usize::try_from(n).unwrap_or(0);
    let index = |at: DateTime<Utc>| -> Option<usize> {
        let secs = (at - start).num_seconds() - period;
        (secs >= 0)
            .then(|| usize::try_from(secs / step).ok())
            .flatten()
            .filter(|i| *i < n)
    };
    let mut util_sum = vec![(0.0, 0usize); n];
    for s in util.iter().filter(|s| s.value.is_finite()) {
        if let Some(i) = index(s.at) {
            util_sum[i].0 += s.value;
            util_sum[i].1 += 1;
        }
    }
    let mut cap_sum = vec![(0.0, 0usize); n];
    for s in capacity.iter().filter(|s| s.value.is_finite()) {
        if let Some(i) = index(s.at) {
            cap_sum[i].0 += s.value;
            cap_sum[i].1 += 1;
        }
    }
    let mut billed = vec![0.0; n];
    let mut cost = vec![0.0; n];
    for inst in instances {
        let from = inst.launched_at.max(start);
        let until = inst.ended_at.unwrap_or(end).min(end);
        if until <= from {
            continue;
        }
        let first = usize::try_from((from - start).num_seconds() / step).unwrap_or(0);
        let mut i = first;
        while i < n {
            let a = start + TimeDelta::seconds(i as i64 * step);
            let b = a + TimeDelta::seconds(step);
            if a >= until {
                break;
            }
            let overlap = (until.min(b) - from.max(a)).as_seconds_f64().max(0.0);
            billed[i] += overlap / step as f64;
            cost[i] += overlap / 3600.0 * inst.price_per_hour;
            i += 1;
        }
    }
    (0..n)
        .map(|i| {
            let util = (util_sum[i].1 > 0).then(|| util_sum[i].0 / util_sum[i].1 as f64);
            let capacity = (cap_sum[i].1 > 0).then(|| cap_sum[i].0 / cap_sum[i].1 as f64);
            Step {
                at: start + TimeDelta::seconds(i as i64 * step),
                util,
                load: util.zip(capacity).map(|(u, c)| u * c * cores_per_work_unit),
                billed: billed[i],
                cost: cost[i],
            }
        })
        .collect()
}

// ----- the report -----

#[derive(Debug, Serialize)]
struct Report {
    file: String,
    history: String,
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    step_seconds: i64,
    hours_per_month: u32,
    settings: SettingsOut,
    groups: Vec<GroupReport>,
}

#[derive(Debug, Serialize)]
struct SettingsOut {
    idle_below: f64,
    idle_for: String,
    target: Option<f64>,
    families: Vec<String>,
    classes: Option<Vec<String>>,
    /// `None`: each group's own architecture (any, with `classes`).
    architectures: Option<Vec<String>>,
    spot: bool,
    memory_per_instance_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
struct GroupReport {
    name: String,
    /// Where its history comes from.
    history_from: String,
    /// Memory each instance needs, bytes, measured from a real group's memory in use.
    memory_need_bytes: Option<f64>,
    provider: String,
    id: String,
    class: String,
    family: String,
    vcpus: f64,
    memory_mib: u64,
    capacity_type: CapacityType,
    zones: Vec<String>,
    min: u32,
    max: u32,
    target_utilization: f64,
    target_from: String,
    /// Whether its own policies change its count with the load (min below max and a policy
    /// other than `scheduled`): then the fleet matters, not one instance's size.
    scales_with_load: bool,
    currency: String,
    observed: Observed,
    rightsizing: Rightsizing,
    idle: Idle,
    off_hours: OffHours,
    spot: Spot,
}

#[derive(Debug, Serialize)]
struct Observed {
    steps: usize,
    steps_with_metrics: usize,
    mean_instances: f64,
    peak_instances: f64,
    mean_utilization: Option<f64>,
    peak_utilization: Option<f64>,
    /// Steps at full utilisation: the load there may be more than measured.
    saturated_steps: usize,
    peak_load_cores: Option<f64>,
    cost: Money,
    per_month: Money,
}

#[derive(Debug, Serialize)]
struct Priced {
    class: String,
    family: String,
    vcpus: f64,
    memory_mib: u64,
    capacity_type: CapacityType,
    price_per_hour: Money,
}

impl Priced {
    fn of(offer: &Offer) -> Priced {
        Priced {
            class: offer.class.clone(),
            family: rightsizing::family_name(offer.family).to_owned(),
            vcpus: offer.vcpus,
            memory_mib: offer.memory_mib,
            capacity_type: offer.capacity_type,
            price_per_hour: offer.per_hour.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
struct PerInstance {
    need_cpu_cores: f64,
    need_memory_bytes: f64,
    recommended: Priced,
    current_price_per_hour: Money,
    saving_per_instance_month: Money,
    alternatives: Vec<Priced>,
}

#[derive(Debug, Serialize)]
struct FleetOut {
    class: Priced,
    /// Instances at the peak.
    count: u32,
    utilization_at_peak: f64,
    /// The fleet at the peak, per hour.
    price_per_hour: Money,
    /// The class following the load at the target, per month.
    per_month_following_the_load: Money,
}

#[derive(Debug, Serialize)]
struct Rightsizing {
    /// The cheapest class for one instance's peak (at the target), or why there is none.
    #[serde(serialize_with = "ok_or_error")]
    per_instance: Result<PerInstance, String>,
    /// The cheapest (class, count) for the group's peak load, or why there is none.
    #[serde(serialize_with = "ok_or_error")]
    fleet: Result<FleetOut, String>,
    /// The current class and count at the peak.
    current_at_peak: Option<FleetOut>,
    alternatives: Vec<FleetOut>,
    /// The recommended class following the load at the target, per month.
    per_month_after: Option<Money>,
    /// The current class following the load at the target, per month.
    per_month_current_class_at_target: Option<Money>,
    /// What the group cost per month in the history, less `per_month_after`.
    saving_per_month: Option<Money>,
    saving_share: Option<f64>,
    /// The count the recommended class needs, besides the peak: at the group's `min`.
    min_after: Option<u32>,
}

/// `Ok` as the value itself, `Err` as `{"error": "..."}`.
fn ok_or_error<T: Serialize, S: serde::Serializer>(
    value: &Result<T, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Ok(v) => v.serialize(serializer),
        Err(e) => serde_json::json!({ "error": e }).serialize(serializer),
    }
}

#[derive(Debug, Serialize)]
struct Stretch {
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    hours: f64,
    mean_utilization: f64,
    mean_instances: f64,
    paid: Money,
    beyond_need: Money,
}

#[derive(Debug, Serialize)]
struct Idle {
    below: f64,
    at_least: String,
    group_idle: bool,
    hours: f64,
    share_of_time: f64,
    paid: Money,
    beyond_need: Money,
    beyond_need_per_month: Money,
    stretches: Vec<Stretch>,
}

#[derive(Debug, Clone, Serialize)]
struct SchedulePolicy {
    cron: String,
    timezone: String,
    duration: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    min: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<u32>,
}

#[derive(Debug, Serialize)]
struct OffHours {
    found: bool,
    /// Why none is suggested, or what the suggestion is.
    summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    days: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    working_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    working_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instances: Option<u32>,
    /// With weekdays only: the level at weekends.
    #[serde(skip_serializing_if = "Option::is_none")]
    weekend_instances: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    working_peak_instances: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    saving_per_month: Option<Money>,
    /// The group's new `min`, when the schedule needs it lowered.
    #[serde(skip_serializing_if = "Option::is_none")]
    min: Option<u32>,
    policies: Vec<SchedulePolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snippet: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum SpotVerdict {
    /// Nearly all capacity is short-lived: spot suits the group.
    Yes,
    /// A long-lived base and short-lived capacity above it: the part above suits spot.
    Partly,
    /// Capacity is long-lived.
    No,
    /// The group runs on spot already.
    OnSpot,
}

#[derive(Debug, Serialize)]
struct Spot {
    verdict: SpotVerdict,
    reason: String,
    /// Where the instance lives come from: the simulated cloud's `instance_history`, or a real
    /// group's `in_service_count`.
    lives_from: &'static str,
    instances: usize,
    still_running: usize,
    median_life_hours: Option<f64>,
    short_lived_share: f64,
    base_instances: u32,
    interruptions: usize,
    interruptions_per_hour: f64,
    on_demand_price_per_hour: Option<Money>,
    spot_price_per_hour: Option<Money>,
    saving_per_month: Option<Money>,
}

// ----- the analysis -----

fn to_money(amount: f64, currency: &Currency) -> Money {
    Money::from_f64(amount, currency.clone())
        .unwrap_or_else(|| Money::new(Decimal::ZERO, currency.clone()))
}

fn cents(m: Money) -> Money {
    rightsizing::to_cents(&m)
}

/// Memory each instance needs, bytes: `--memory-per-instance`, else what a real group's
/// memory in use says, else 0 (fitted on CPU alone).
fn memory_need(g: &GroupData, s: &Settings) -> f64 {
    if s.memory_bytes > 0.0 {
        s.memory_bytes
    } else {
        g.memory_need_bytes.unwrap_or(0.0)
    }
}

/// The target to size for, and where it comes from.
fn target_of(group: &GroupConfig, flag: Option<f64>) -> (f64, String) {
    if let Some(t) = flag {
        return (t, "--target".to_owned());
    }
    group
        .policies
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match p {
            PolicyConfig::TargetTracking(tt) if tt.metric == MetricKind::Utilization => {
                Some((tt.target, format!("policies[{i}].target_tracking")))
            }
            _ => None,
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap_or((DEFAULT_TARGET, "default".to_owned()))
}

fn analyse(g: &GroupData, s: &Settings) -> Result<GroupReport, CliError> {
    let (target, target_from) = target_of(&g.config, s.target);
    let hours = (g.end - g.start).as_seconds_f64() / 3600.0;
    let month = HOURS_PER_MONTH as f64 / hours;
    let currency = &g.currency;
    let with_data: Vec<&Step> = g.steps.iter().filter(|x| x.util.is_some()).collect();
    let observed = Observed {
        steps: g.steps.len(),
        steps_with_metrics: with_data.len(),
        mean_instances: g.steps.iter().map(|x| x.billed).sum::<f64>() / g.steps.len().max(1) as f64,
        peak_instances: g.steps.iter().map(|x| x.billed).fold(0.0, f64::max),
        mean_utilization: (!with_data.is_empty())
            .then(|| with_data.iter().filter_map(|x| x.util).sum::<f64>() / with_data.len() as f64),
        peak_utilization: with_data.iter().filter_map(|x| x.util).reduce(f64::max),
        saturated_steps: with_data
            .iter()
            .filter(|x| x.util.is_some_and(|u| u >= 0.999))
            .count(),
        peak_load_cores: g.steps.iter().filter_map(|x| x.load).reduce(f64::max),
        cost: cents(to_money(g.cost, currency)),
        per_month: cents(to_money(g.cost * month, currency)),
    };
    let options = ChoiceOptions {
        classes: s.classes.clone(),
        families: Some(s.families.clone()),
        architectures: s
            .architectures
            .clone()
            .or_else(|| s.classes.is_none().then(|| vec![g.class.architecture])),
        capacity_types: if s.spot {
            vec![CapacityType::OnDemand, CapacityType::Spot]
        } else {
            vec![CapacityType::OnDemand]
        },
        spot_risk: Some(SpotRisk {
            interruptions_per_hour: g.spot_interruptions_per_hour,
            hours_lost_per_interruption: g.boot_delay.as_secs_f64() / 3600.0,
        }),
        zones: Some(g.zones.clone()),
    };
    let rightsizing = rightsize(g, s, &options, target, month, &observed)?;
    let idle = idle(g, s, target, month);
    let off_hours = off_hours(g, target, month, &observed);
    let spot = spot(g, &options, month);
    Ok(GroupReport {
        name: g.config.name.clone(),
        history_from: g.history_from.clone(),
        memory_need_bytes: g.memory_need_bytes,
        provider: g.provider.clone(),
        id: g.id.clone(),
        class: g.class.name.clone(),
        family: rightsizing::family_name(g.class.family).to_owned(),
        vcpus: g.class.vcpus,
        memory_mib: g.class.memory_mib,
        capacity_type: g.capacity_type,
        zones: g.zones.clone(),
        min: g.config.min,
        max: g.config.max,
        target_utilization: target,
        target_from,
        scales_with_load: g.config.min < g.config.max && has_reactive_policy(&g.config),
        currency: currency.to_string(),
        observed,
        rightsizing,
        idle,
        off_hours,
        spot,
    })
}

/// Instances of `vcpus` each that carry `load` cores at `target`, at least `floor` and 1.
fn count_at(load: f64, vcpus: f64, target: f64, floor: u32) -> u64 {
    let n = (load / (vcpus * target) - 1e-9).ceil().max(1.0) as u64;
    n.max(u64::from(floor))
}

/// What `offer` costs per month following the load at `target`: per step, the instances the
/// step's load needs, at least the group's `min` in the same capacity (its min × its class's
/// vCPUs over the offer's). A step without metrics keeps the instances billed.
fn following_the_load(g: &GroupData, offer: &Offer, target: f64, month: f64) -> (Money, u32) {
    let floor = (f64::from(g.config.min) * g.class.vcpus / offer.vcpus - 1e-9)
        .ceil()
        .max(0.0) as u32;
    let mut instance_steps: u64 = 0;
    for step in &g.steps {
        instance_steps += match step.load {
            Some(load) => count_at(load, offer.vcpus, target, floor),
            None => (step.billed * g.class.vcpus / offer.vcpus).ceil() as u64,
        };
    }
    let hours = Decimal::from(instance_steps) * Decimal::from(STEP_SECONDS) / Decimal::from(3600);
    let factor = Decimal::try_from(month).unwrap_or(Decimal::ONE);
    (
        cents(Money::new(
            hours * offer.per_hour.amount * factor,
            offer.per_hour.currency.clone(),
        )),
        floor,
    )
}

fn fleet_out(f: &rightsizing::Fleet, per_month: Money) -> FleetOut {
    FleetOut {
        class: Priced::of(&f.offer),
        count: f.count,
        utilization_at_peak: f.utilization,
        price_per_hour: f.per_hour.clone(),
        per_month_following_the_load: per_month,
    }
}

fn choice_error(e: rightsizing::ChoiceError) -> Result<String, CliError> {
    match e {
        // A class named on the command line that the catalog lacks is the user's input.
        rightsizing::ChoiceError::UnknownClass(name) => Err(CliError::input(format!(
            "--classes: no instance class named {name:?} in the simulated cloud's catalog"
        ))),
        other => Ok(other.to_string()),
    }
}

fn rightsize(
    g: &GroupData,
    s: &Settings,
    options: &ChoiceOptions,
    target: f64,
    month: f64,
    observed: &Observed,
) -> Result<Rightsizing, CliError> {
    let current = Current {
        class: g.class.name.clone(),
        capacity_type: g.capacity_type,
        count: observed.peak_instances.round().max(1.0) as u32,
    };
    let peak_util = observed.peak_utilization;
    let per_instance = match peak_util {
        None => Err("no utilisation in the history".to_owned()),
        Some(u) => {
            let need = Need {
                cpu_cores: u * g.class.vcpus / target,
                memory_bytes: memory_need(g, s),
            };
            match rightsizing::cheapest_class(&g.catalog, need, Some(&current), options) {
                Ok(choice) => {
                    let current_price = choice
                        .current
                        .as_ref()
                        .map(|c| c.per_hour.clone())
                        .unwrap_or_else(|| choice.best().offer.per_hour.clone());
                    Ok(PerInstance {
                        need_cpu_cores: need.cpu_cores,
                        need_memory_bytes: need.memory_bytes,
                        recommended: Priced::of(&choice.best().offer),
                        current_price_per_hour: current_price,
                        saving_per_instance_month: cents(
                            choice
                                .saving_per_month()
                                .unwrap_or_else(|| Money::new(Decimal::ZERO, g.currency.clone())),
                        ),
                        alternatives: choice
                            .ranked
                            .iter()
                            .skip(1)
                            .take(3)
                            .map(|f| Priced::of(&f.offer))
                            .collect(),
                    })
                }
                Err(e) => Err(choice_error(e)?),
            }
        }
    };
    let mut out = Rightsizing {
        per_instance,
        fleet: Err("no utilisation in the history".to_owned()),
        current_at_peak: None,
        alternatives: Vec::new(),
        per_month_after: None,
        per_month_current_class_at_target: None,
        saving_per_month: None,
        saving_share: None,
        min_after: None,
    };
    let Some(peak_load) = observed.peak_load_cores else {
        return Ok(out);
    };
    let load = Load {
        cpu_cores: peak_load,
        memory_per_instance_bytes: memory_need(g, s),
        target_utilization: target,
        min_count: 1,
        max_count: None,
    };
    match rightsizing::cheapest_fleet(&g.catalog, &load, Some(&current), options) {
        Ok(choice) => {
            // Every class that carries the peak, priced following the load; the cheapest that
            // way is recommended (the class choice's order breaks ties), since the group's
            // count follows its load rather than staying at the peak's.
            let mut priced: Vec<(&rightsizing::Fleet, Money, u32)> = choice
                .ranked
                .iter()
                .map(|f| {
                    let (per_month, floor) = following_the_load(g, &f.offer, target, month);
                    (f, per_month, floor)
                })
                .collect();
            priced.sort_by_key(|p| p.1.amount);
            let (best, after, floor) = priced[0].clone();
            if let Some(now) = &choice.current {
                let per_month = following_the_load(g, &now.offer, target, month).0;
                out.per_month_current_class_at_target = Some(per_month.clone());
                out.current_at_peak = Some(fleet_out(now, per_month));
            }
            let saving = Money::new(
                observed.per_month.amount - after.amount,
                after.currency.clone(),
            );
            out.saving_share = (observed.per_month.amount > Decimal::ZERO).then(|| {
                Money::new(
                    saving.amount / observed.per_month.amount,
                    saving.currency.clone(),
                )
                .to_f64()
            });
            out.saving_per_month = Some(cents(saving));
            out.per_month_after = Some(after.clone());
            out.min_after = Some(floor);
            out.alternatives = priced
                .iter()
                .skip(1)
                .take(3)
                .map(|(f, m, _)| fleet_out(f, m.clone()))
                .collect();
            out.fleet = Ok(fleet_out(best, after));
        }
        Err(e) => out.fleet = Err(choice_error(e)?),
    }
    Ok(out)
}

/// Instances of the group's class the step's load needs at `target` (at least 1).
fn needed(g: &GroupData, step: &Step, target: f64) -> Option<u64> {
    step.load.map(|l| count_at(l, g.class.vcpus, target, 1))
}

fn idle(g: &GroupData, s: &Settings, target: f64, month: f64) -> Idle {
    let currency = &g.currency;
    let min_steps = s.idle_for.as_secs().div_ceil(STEP_SECONDS as u64) as usize;
    let mut stretches = Vec::new();
    let mut run: Vec<&Step> = Vec::new();
    let close = |run: &mut Vec<&Step>, out: &mut Vec<Stretch>| {
        if run.len() >= min_steps {
            let paid: f64 = run.iter().map(|x| x.cost).sum();
            let beyond: f64 = run
                .iter()
                .map(|x| {
                    let need = needed(g, x, target).unwrap_or(1) as f64;
                    if x.billed > need {
                        x.cost * (x.billed - need) / x.billed
                    } else {
                        0.0
                    }
                })
                .sum();
            let n = run.len() as f64;
            out.push(Stretch {
                from: run[0].at,
                until: run[run.len() - 1].at + TimeDelta::seconds(STEP_SECONDS),
                hours: n * STEP_SECONDS as f64 / 3600.0,
                mean_utilization: run.iter().filter_map(|x| x.util).sum::<f64>() / n,
                mean_instances: run.iter().map(|x| x.billed).sum::<f64>() / n,
                paid: cents(to_money(paid, currency)),
                beyond_need: cents(to_money(beyond, currency)),
            });
        }
        run.clear();
    };
    for step in &g.steps {
        match step.util {
            Some(u) if u < s.idle_below => run.push(step),
            _ => close(&mut run, &mut stretches),
        }
    }
    close(&mut run, &mut stretches);
    let hours: f64 = stretches.iter().map(|x| x.hours).sum::<f64>() + 0.0;
    let total_hours = g.steps.len() as f64 * STEP_SECONDS as f64 / 3600.0;
    let sum = |f: fn(&Stretch) -> &Money| -> Money {
        Money::new(
            stretches.iter().map(|x| f(x).amount).sum(),
            currency.clone(),
        )
    };
    let paid = sum(|x| &x.paid);
    let beyond = sum(|x| &x.beyond_need);
    let per_month = cents(Money::new(
        beyond.amount * Decimal::try_from(month).unwrap_or(Decimal::ONE),
        currency.clone(),
    ));
    let utils: Vec<f64> = g.steps.iter().filter_map(|x| x.util).collect();
    let group_idle =
        !utils.is_empty() && utils.iter().sum::<f64>() / (utils.len() as f64) < s.idle_below;
    Idle {
        below: s.idle_below,
        at_least: HumanDuration(s.idle_for).to_string(),
        group_idle,
        hours,
        share_of_time: if total_hours > 0.0 {
            hours / total_hours
        } else {
            0.0
        },
        paid,
        beyond_need: beyond,
        beyond_need_per_month: per_month,
        stretches,
    }
}

/// Working hours: `[from, until)` (UTC hours) on every day, or on weekdays only; everything
/// else is off-hours.
#[derive(Debug, Clone, Copy)]
struct Window {
    weekdays_only: bool,
    from: u32,
    until: u32,
}

/// Which part of the week a step is in under a [`Window`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Working hours.
    Working,
    /// Off-hours of a working day (before and after its working hours).
    Night,
    /// With weekdays only: Saturday and Sunday.
    Weekend,
}

impl Window {
    fn part(&self, at: DateTime<Utc>) -> Part {
        if self.weekdays_only && matches!(at.weekday(), Weekday::Sat | Weekday::Sun) {
            return Part::Weekend;
        }
        if (self.from..self.until).contains(&at.hour()) {
            Part::Working
        } else {
            Part::Night
        }
    }

    fn working_hours(&self) -> u32 {
        self.until - self.from
    }

    fn cap(cron: String, hours: u32, max: u32) -> SchedulePolicy {
        SchedulePolicy {
            cron,
            timezone: "UTC".to_owned(),
            duration: format!("{hours}h"),
            min: None,
            max: Some(max),
        }
    }

    /// The `scheduled` policies that hold the group at most at `night` in the off-hours of
    /// working days and (with weekdays only) at `weekend` on Saturdays and Sundays. They do not
    /// overlap.
    fn caps(&self, night: u32, weekend: u32) -> Vec<SchedulePolicy> {
        if !self.weekdays_only {
            return vec![Self::cap(
                format!("0 {} * * *", self.until),
                24 - self.working_hours(),
                night,
            )];
        }
        let mut out = vec![Self::cap(
            format!("0 {} * * MON-FRI", self.until),
            24 - self.until,
            night,
        )];
        if self.from > 0 {
            out.push(Self::cap("0 0 * * MON-FRI".to_owned(), self.from, night));
        }
        out.push(Self::cap("0 0 * * SAT".to_owned(), 48, weekend));
        out
    }

    /// The `scheduled` policy that keeps `floor` (`min`) in working hours.
    fn floor(&self, floor: u32) -> SchedulePolicy {
        SchedulePolicy {
            cron: format!(
                "0 {} * * {}",
                self.from,
                if self.weekdays_only { "MON-FRI" } else { "*" }
            ),
            timezone: "UTC".to_owned(),
            duration: format!("{}h", self.working_hours()),
            min: Some(floor),
            max: None,
        }
    }

    fn describe_working(&self) -> String {
        format!(
            "from {:02}:00 to {:02}:00 UTC {}",
            self.from,
            self.until,
            if self.weekdays_only {
                "on weekdays"
            } else {
                "every day"
            }
        )
    }

    fn describe(&self, night: u32, weekend: u32) -> String {
        let hours = format!("between {:02}:00 and {:02}:00 UTC", self.until, self.from);
        if !self.weekdays_only {
            format!("scale to {night} {hours} every day")
        } else if night == weekend {
            format!("scale to {night} {hours} on weekdays and all weekend")
        } else {
            format!("scale to {night} {hours} on weekdays and to {weekend} at weekends")
        }
    }
}

fn has_reactive_policy(group: &GroupConfig) -> bool {
    group
        .policies
        .iter()
        .any(|p| !matches!(p, PolicyConfig::Scheduled(_)))
}

/// One candidate window with what holding its off-hours at their levels would save.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    window: Window,
    saving: f64,
    night: u64,
    weekend: u64,
    working_peak: u64,
}

fn candidate(g: &GroupData, needs: &[Option<u64>], window: Window) -> Option<Candidate> {
    let (mut night, mut weekend, mut working_peak) = (None::<u64>, None::<u64>, 0u64);
    for (step, need) in g.steps.iter().zip(needs) {
        let Some(need) = *need else { continue };
        match window.part(step.at) {
            Part::Working => working_peak = working_peak.max(need),
            Part::Night => night = Some(night.map_or(need, |n| n.max(need))),
            Part::Weekend => weekend = Some(weekend.map_or(need, |n| n.max(need))),
        }
    }
    if night.is_none() && weekend.is_none() {
        return None;
    }
    // A part the history does not show is held at the level of the other.
    let night = night.or(weekend).unwrap_or(1);
    let weekend = weekend.unwrap_or(night);
    let saving = g
        .steps
        .iter()
        .map(|x| {
            let level = match window.part(x.at) {
                Part::Working => return 0.0,
                Part::Night => night,
                Part::Weekend => weekend,
            } as f64;
            if x.billed > level {
                x.cost * (x.billed - level) / x.billed
            } else {
                0.0
            }
        })
        .sum();
    Some(Candidate {
        window,
        saving,
        night,
        weekend,
        working_peak,
    })
}

fn off_hours(g: &GroupData, target: f64, month: f64, observed: &Observed) -> OffHours {
    let none = |summary: String| OffHours {
        found: false,
        summary,
        days: None,
        working_from: None,
        working_until: None,
        instances: None,
        weekend_instances: None,
        working_peak_instances: None,
        saving_per_month: None,
        min: None,
        policies: Vec::new(),
        snippet: None,
    };
    if g.end - g.start < TimeDelta::days(1) {
        return none("the history is shorter than a day: no daily profile to read".to_owned());
    }
    let needs: Vec<Option<u64>> = g.steps.iter().map(|x| needed(g, x, target)).collect();
    // Every window of working hours, every day or on weekdays only: off-hours are held at the
    // most the load needed in them (at the target), which saves what was paid above that.
    let mut candidates = Vec::new();
    for weekdays_only in [false, true] {
        for from in 0..23 {
            for until in from + 1..24 {
                let window = Window {
                    weekdays_only,
                    from,
                    until,
                };
                candidates.extend(candidate(g, &needs, window));
            }
        }
    }
    let Some(most) = candidates.iter().map(|c| c.saving).reduce(f64::max) else {
        return none("no utilisation in the history".to_owned());
    };
    // Among the windows that save within 5 % of the most, the one with the shortest working
    // hours (the longest nights), then the one that saves most.
    let Some(best) = candidates
        .iter()
        .filter(|c| c.saving >= most * 0.95)
        .min_by(|a, b| {
            a.window
                .working_hours()
                .cmp(&b.window.working_hours())
                .then(b.saving.total_cmp(&a.saving))
        })
        .copied()
    else {
        return none("no utilisation in the history".to_owned());
    };
    let per_month = best.saving * month;
    let threshold = (observed.per_month.to_f64() * 0.01).max(0.01);
    if per_month < threshold {
        return none(format!(
            "none: no off-hours schedule saves 1 % of the group's cost or more (at most {} per month); its instances follow the load at night as by day",
            cents(to_money(per_month, &g.currency))
        ));
    }
    let w = best.window;
    let to_u32 = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    let (night, weekend) = (to_u32(best.night), to_u32(best.weekend));
    let lowest = if w.weekdays_only {
        night.min(weekend)
    } else {
        night
    };
    let min = g.config.min;
    let lower_min = min > lowest;
    // A group whose own policies scale it in needs only its floor lowered outside working
    // hours (its policies then follow the load there); a group without them is capped.
    let floor_only = lower_min && has_reactive_policy(&g.config);
    let mut policies = Vec::new();
    if lower_min {
        policies.push(w.floor(min));
    }
    if !floor_only {
        policies.extend(w.caps(night, weekend));
    }
    let saving = cents(to_money(per_month, &g.currency));
    let summary = if floor_only {
        format!(
            "keep {min} only {} and let its policies scale it down to {lowest} outside them (the load needed at most {night} {}) saves at least {saving} per month",
            w.describe_working(),
            if w.weekdays_only {
                format!("on weeknights and {weekend} at weekends")
            } else {
                "at night".to_owned()
            }
        )
    } else {
        format!("{} saves {saving} per month", w.describe(night, weekend))
    };
    let mut snippet = format!(
        "# {}: {summary}\n# (the most the load needed in those hours at {:.0} % utilisation; {} at most in working hours)\n",
        g.config.name,
        target * 100.0,
        best.working_peak
    );
    if lower_min {
        let _ = writeln!(
            snippet,
            "min: {lowest}    # was {min}; the first schedule keeps {min} in working hours{}",
            if floor_only {
                ", and the group's policies follow the load outside them"
            } else {
                ""
            }
        );
    }
    snippet.push_str("policies:\n  # ... the group's policies as they are, then:\n");
    for p in &policies {
        let bound = match (p.min, p.max) {
            (Some(m), _) => format!("min: {m}"),
            (None, Some(m)) => format!("max: {m}"),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            snippet,
            "  - scheduled: {{cron: \"{}\", timezone: {}, duration: {}, {bound}}}",
            p.cron, p.timezone, p.duration
        );
    }
    OffHours {
        found: true,
        summary,
        days: Some(
            if w.weekdays_only {
                "weekdays"
            } else {
                "every day"
            }
            .to_owned(),
        ),
        working_from: Some(format!("{:02}:00", w.from)),
        working_until: Some(format!("{:02}:00", w.until)),
        instances: Some(night),
        weekend_instances: w.weekdays_only.then_some(weekend),
        working_peak_instances: Some(to_u32(best.working_peak)),
        saving_per_month: Some(saving),
        min: lower_min.then_some(lowest),
        policies,
        snippet: Some(snippet),
    }
}

fn spot(g: &GroupData, options: &ChoiceOptions, month: f64) -> Spot {
    let currency = &g.currency;
    let lives: Vec<(f64, bool)> = g
        .instances
        .iter()
        .filter(|i| i.launched_at < g.end)
        .map(|i| {
            let end = i.ended_at.map_or(g.end, |e| e.min(g.end));
            let still = i.ended_at.is_none_or(|e| e > g.end);
            ((end - i.launched_at).as_seconds_f64() / 3600.0, still)
        })
        .collect();
    let mut sorted: Vec<f64> = lives.iter().map(|l| l.0).collect();
    sorted.sort_by(f64::total_cmp);
    let median = (!sorted.is_empty()).then(|| {
        let n = sorted.len();
        if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        }
    });
    // Instance-hours inside the history, and those of short-lived instances.
    let mut total = 0.0;
    let mut short = 0.0;
    for inst in g.instances.iter().filter(|i| i.launched_at < g.end) {
        let from = inst.launched_at.max(g.start);
        let until = inst.ended_at.unwrap_or(g.end).min(g.end);
        let h = (until - from).as_seconds_f64().max(0.0) / 3600.0;
        total += h;
        let life = (inst.ended_at.unwrap_or(g.end).min(g.end) - inst.launched_at).as_seconds_f64()
            / 3600.0;
        let lived_on = inst.ended_at.is_none_or(|e| e > g.end);
        if life < SHORT_LIFE_HOURS && !lived_on {
            short += h;
        }
    }
    let short_share = if total > 0.0 { short / total } else { 0.0 };
    let base = g
        .steps
        .iter()
        .map(|x| x.billed)
        .fold(f64::INFINITY, f64::min);
    let base = if base.is_finite() {
        (base + 1e-9).floor() as u32
    } else {
        0
    };
    let interruptions = g.instances.iter().filter(|i| i.interrupted).count();
    let od = rightsizing::offer(&g.class, CapacityType::OnDemand, options);
    let sp = rightsizing::offer(&g.class, CapacityType::Spot, options);
    let hours = (g.end - g.start).as_seconds_f64() / 3600.0;
    let median_text = median.map_or("no instances".to_owned(), |m| {
        format!("median instance life {}", life_text(m))
    });
    let drain_note = match g.config.drain {
        Some(d) if d.get() > SPOT_NOTICE => format!(
            "; its drain ({d}) is longer than the 2-minute notice before a spot interruption, so in-flight work would be cut short"
        ),
        _ => String::new(),
    };
    let (verdict, mut reason, eligible_hours) = if g.capacity_type == CapacityType::Spot {
        (
            SpotVerdict::OnSpot,
            format!(
                "runs on spot: {interruptions} interruptions in {} ({:.3} per instance-hour), {median_text}",
                HumanDuration(Duration::from_secs(hours.round() as u64 * 3600)),
                if total > 0.0 {
                    interruptions as f64 / total
                } else {
                    0.0
                }
            ),
            0.0,
        )
    } else if short_share >= 0.8 {
        (
            SpotVerdict::Yes,
            format!(
                "suits spot: {:.0} % of its instance-hours are in instances living under a day ({median_text}); instances come and go with the load, so an interruption is one more replacement",
                short_share * 100.0
            ),
            total,
        )
    } else if short_share >= 0.2 {
        let above: f64 = g
            .steps
            .iter()
            .map(|x| (x.billed - f64::from(base)).max(0.0))
            .sum::<f64>()
            * STEP_SECONDS as f64
            / 3600.0;
        (
            SpotVerdict::Partly,
            format!(
                "partly: keep its long-lived base of {base} on demand and run the capacity above it on spot ({:.0} % of its instance-hours are in instances living under a day; {median_text})",
                short_share * 100.0
            ),
            above,
        )
    } else {
        (
            SpotVerdict::No,
            format!(
                "not on its history: {:.0} % of its instance-hours are in instances living under a day ({median_text}); its instances live long, and an interruption would end one that usually runs on",
                short_share * 100.0
            ),
            0.0,
        )
    };
    reason.push_str(&drain_note);
    if g.lives_from_count {
        reason.push_str(
            "; lives read from the in-service count (capacity added last taken to leave first; those running at the start counted from it)",
        );
    }
    let saving = match (&od, &sp) {
        (Some(od), Some(sp)) if eligible_hours > 0.0 => {
            let diff = rightsizing::per_hour_f64(od) - rightsizing::per_hour_f64(sp);
            Some(cents(to_money(eligible_hours * diff * month, currency)))
        }
        _ => None,
    };
    if sp.is_none() && !matches!(verdict, SpotVerdict::No | SpotVerdict::OnSpot) {
        let _ = write!(
            reason,
            "; but {} is not offered as spot in its zones",
            g.class.name
        );
    }
    Spot {
        verdict,
        reason,
        lives_from: if g.lives_from_count {
            "in_service_count"
        } else {
            "instance_history"
        },
        instances: lives.len(),
        still_running: lives.iter().filter(|l| l.1).count(),
        median_life_hours: median,
        short_lived_share: short_share,
        base_instances: base,
        interruptions,
        interruptions_per_hour: g.spot_interruptions_per_hour,
        on_demand_price_per_hour: od.map(|o| o.per_hour),
        spot_price_per_hour: sp.map(|o| o.per_hour),
        saving_per_month: saving,
    }
}

fn life_text(hours: f64) -> String {
    if hours >= 48.0 {
        format!("{:.1} d", hours / 24.0)
    } else if hours >= 1.0 {
        format!("{hours:.1} h")
    } else {
        format!("{:.0} min", hours * 60.0)
    }
}

// ----- rendering -----

/// A price per hour to four decimals at most (`0.0943 USD/h`).
fn per_hour(m: &Money) -> String {
    format!("{} {}/h", m.amount.round_dp(4).normalize(), m.currency)
}

fn pct(v: f64) -> String {
    format!("{:.0} %", v * 100.0)
}

fn fleet_text(f: &FleetOut) -> String {
    match f.class.capacity_type {
        CapacityType::Spot => format!("{} × {} on spot", f.class.class, f.count),
        _ => format!("{} × {}", f.class.class, f.count),
    }
}

fn table(out: &mut String, rows: &[Vec<String>], right: &[bool], markdown: bool) {
    if markdown {
        for (i, row) in rows.iter().enumerate() {
            let _ = writeln!(out, "| {} |", row.join(" | "));
            if i == 0 {
                let marks: Vec<&str> = right
                    .iter()
                    .map(|r| if *r { "---:" } else { "---" })
                    .collect();
                let _ = writeln!(out, "|{}|", marks.join("|"));
            }
        }
        return;
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c > 0 {
                line.push_str("  ");
            }
            if right[c] {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if c + 1 < row.len() {
                    line.push_str(&" ".repeat(pad));
                }
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn text(report: &Report, md: bool) -> String {
    let mut out = String::new();
    let window = match (report.from, report.until) {
        (Some(a), Some(b)) => format!(
            "{} .. {}",
            a.format("%Y-%m-%d %H:%M"),
            b.format("%Y-%m-%d %H:%M UTC")
        ),
        _ => String::new(),
    };
    let title = format!(
        "Usage recommendations for {}: {} of history {} ({window}), in {}-minute steps; a month is {} h",
        report.file,
        report.history,
        if report
            .groups
            .iter()
            .all(|g| g.history_from.starts_with("replayed"))
        {
            "replayed on the simulated cloud"
        } else if report
            .groups
            .iter()
            .all(|g| g.history_from.starts_with("read"))
        {
            "read from the groups' metrics"
        } else {
            "replayed on the simulated cloud or read from the groups' metrics"
        },
        report.step_seconds / 60,
        report.hours_per_month
    );
    if md {
        let _ = writeln!(out, "## {title}\n");
    } else {
        let _ = writeln!(out, "{title}\n");
    }
    let mut rows = vec![
        [
            "GROUP",
            "NOW (AT PEAK)",
            "RECOMMENDED (AT PEAK)",
            "MONTHLY NOW",
            "MONTHLY AFTER",
            "SAVING",
            "IDLE",
            "OFF-HOURS SAVING",
            "SPOT",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for g in &report.groups {
        let r = &g.rightsizing;
        rows.push(vec![
            g.name.clone(),
            r.current_at_peak
                .as_ref()
                .map_or(g.class.clone(), fleet_text),
            r.fleet.as_ref().map_or("none fits".to_owned(), fleet_text),
            g.observed.per_month.to_string(),
            r.per_month_after
                .as_ref()
                .map_or("-".to_owned(), ToString::to_string),
            r.saving_per_month
                .as_ref()
                .map_or("-".to_owned(), ToString::to_string),
            pct(g.idle.share_of_time),
            g.off_hours
                .saving_per_month
                .as_ref()
                .map_or("-".to_owned(), ToString::to_string),
            serde_json::to_value(&g.spot.verdict)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
                .replace('_', " "),
        ]);
    }
    let right = [false, false, false, true, true, true, true, true, false];
    table(&mut out, &rows, &right, md);
    let _ = writeln!(
        out,
        "\nThe savings overlap (each is against what the group cost in its history); memory per instance: {}.",
        report.settings.memory_per_instance_bytes.map_or(
            if report.groups.iter().any(|g| g.memory_need_bytes.is_some()) {
                "measured where the history line says so, else not required (fitted on CPU alone; --memory-per-instance sets it for every group)"
            } else {
                "not required (classes are fitted on CPU alone: the simulated cloud models CPU only, and a real group's memory is read only with --memory-query or a vertical memory_metric; --memory-per-instance sets it)"
            }
            .to_owned(),
            |b| { format!("{:.1} GiB", b as f64 / (1024.0 * 1024.0 * 1024.0)) }
        )
    );
    for g in &report.groups {
        group_text(&mut out, g, md);
    }
    out
}

fn group_text(out: &mut String, g: &GroupReport, md: bool) {
    let head = format!(
        "{} (provider {}, {} {} ({} vCPU, {} GiB) in {}, min {}, max {}; sized for {} utilisation, from {})",
        g.name,
        g.provider,
        g.class,
        match g.capacity_type {
            CapacityType::OnDemand => "on demand",
            CapacityType::Spot => "spot",
            CapacityType::Reserved => "reserved",
        },
        g.vcpus,
        g.memory_mib / 1024,
        g.zones.join(", "),
        g.min,
        g.max,
        pct(g.target_utilization),
        g.target_from
    );
    if md {
        let _ = writeln!(out, "\n### {head}\n");
    } else {
        let _ = writeln!(out, "\n{head}");
    }
    let mut lines: Vec<(String, String)> = Vec::new();
    lines.push(("history".into(), g.history_from.clone()));
    let o = &g.observed;
    lines.push((
        "observed".into(),
        format!(
            "{:.1} instances on average (peak {:.1}), utilisation {} on average (peak {}), peak load {} busy cores; cost {} = {} per month{}",
            o.mean_instances,
            o.peak_instances,
            o.mean_utilization.map_or("-".into(), pct),
            o.peak_utilization.map_or("-".into(), pct),
            o.peak_load_cores.map_or("-".into(), |c| format!("{c:.1}")),
            o.cost,
            o.per_month,
            if o.saturated_steps > 0 {
                format!(
                    "; {} steps at 100 % utilisation, where the load may be more than measured",
                    o.saturated_steps
                )
            } else {
                String::new()
            }
        ),
    ));
    let r = &g.rightsizing;
    match &r.fleet {
        Ok(f) => {
            let now = r
                .current_at_peak
                .as_ref()
                .map_or(String::new(), |c| format!(" (now {})", fleet_text(c)));
            lines.push((
                "rightsizing".into(),
                format!(
                    "{} carries the peak of {:.1} busy cores at {} utilisation{now}; {} vCPU, {} GiB, {} each",
                    fleet_text(f),
                    o.peak_load_cores.unwrap_or(0.0),
                    pct(f.utilization_at_peak),
                    f.class.vcpus,
                    f.class.memory_mib / 1024,
                    per_hour(&f.class.price_per_hour)
                ),
            ));
            if let (Some(after), Some(saving)) = (&r.per_month_after, &r.saving_per_month) {
                lines.push((
                    String::new(),
                    format!(
                        "following the load (at least {} for the group's min) it costs {after} per month against {} now: saves {saving} ({}){}",
                        r.min_after.unwrap_or(1),
                        o.per_month,
                        r.saving_share.map_or("-".into(), pct),
                        r.per_month_current_class_at_target
                            .as_ref()
                            .map_or(String::new(), |c| format!(
                                "; {} following the load would cost {c}",
                                g.class
                            ))
                    ),
                ));
            }
            if !r.alternatives.is_empty() {
                lines.push((
                    String::new(),
                    format!(
                        "next: {}",
                        r.alternatives
                            .iter()
                            .map(|a| format!(
                                "{} ({} per month)",
                                fleet_text(a),
                                a.per_month_following_the_load
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        Err(e) => lines.push(("rightsizing".into(), format!("no recommendation: {e}"))),
    }
    // One instance's size matters for a group of a fixed count; a group that follows its load
    // is sized as a fleet (above), and this is in the JSON only.
    if !g.scales_with_load {
        match &r.per_instance {
            Ok(p) => {
                let saving = p.saving_per_instance_month.amount;
                let versus = if saving >= Decimal::ZERO {
                    format!(
                        "{} per instance-month less than",
                        p.saving_per_instance_month
                    )
                } else {
                    format!(
                        "{} per instance-month more than",
                        Money::new(-saving, p.saving_per_instance_month.currency.clone())
                    )
                };
                lines.push((
                    "per instance".into(),
                    format!(
                        "the busiest step needs {:.2} cores per instance at the target: {} ({} vCPU, {}) fits, {versus} {} ({})",
                        p.need_cpu_cores,
                        p.recommended.class,
                        p.recommended.vcpus,
                        per_hour(&p.recommended.price_per_hour),
                        g.class,
                        per_hour(&p.current_price_per_hour)
                    ),
                ));
            }
            Err(e) => lines.push(("per instance".into(), format!("no recommendation: {e}"))),
        }
    }
    let i = &g.idle;
    lines.push((
        "idle".into(),
        format!(
            "{} stretches below {} utilisation for at least {}: {:.1} h ({} of the time){}; paid {}, of which {} beyond what the load needed ({} per month)",
            i.stretches.len(),
            pct(i.below),
            i.at_least,
            i.hours,
            pct(i.share_of_time),
            if i.group_idle {
                format!("; the whole group averages under {}", pct(i.below))
            } else {
                String::new()
            },
            i.paid,
            i.beyond_need,
            i.beyond_need_per_month
        ),
    ));
    const SHOWN: usize = 5;
    for s in i.stretches.iter().take(SHOWN) {
        lines.push((
            String::new(),
            format!(
                "{} .. {} ({:.1} h): utilisation {}, {:.1} instances, paid {}",
                s.from.format("%a %Y-%m-%d %H:%M"),
                s.until.format("%a %H:%M"),
                s.hours,
                pct(s.mean_utilization),
                s.mean_instances,
                s.paid
            ),
        ));
    }
    if i.stretches.len() > SHOWN {
        lines.push((
            String::new(),
            format!(
                "... {} more (all in --format json)",
                i.stretches.len() - SHOWN
            ),
        ));
    }
    lines.push(("off-hours".into(), g.off_hours.summary.clone()));
    lines.push(("spot".into(), g.spot.reason.clone()));
    if let Some(saving) = &g.spot.saving_per_month {
        lines.push((
            String::new(),
            format!(
                "{} on spot at {} (with its interruptions) against {} on demand saves about {saving} per month",
                g.class,
                g.spot
                    .spot_price_per_hour
                    .as_ref()
                    .map_or("-".into(), per_hour),
                g.spot
                    .on_demand_price_per_hour
                    .as_ref()
                    .map_or("-".into(), per_hour),
            ),
        ));
    }
    if md {
        for (k, v) in &lines {
            if k.is_empty() {
                let _ = writeln!(out, "  - {v}");
            } else {
                let _ = writeln!(out, "- **{k}**: {v}");
            }
        }
    } else {
        for (k, v) in &lines {
            let _ = writeln!(out, "  {k:<13} {v}");
        }
    }
    if let Some(snippet) = &g.off_hours.snippet {
        if md {
            let _ = writeln!(out, "\n```yaml\n{snippet}```");
        } else {
            let _ = writeln!(out);
            for line in snippet.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_200, 0).unwrap() + TimeDelta::minutes(minutes)
    }

    fn sample(minutes: i64, value: f64) -> hoist_core::Sample {
        hoist_core::Sample {
            at: at(minutes),
            value,
        }
    }

    #[test]
    fn a_real_groups_steps_average_their_samples_and_keep_the_last_count() {
        // Six 5-minute steps; the count is reported in steps 1 and 4 only, utilisation twice in
        // step 0, none in step 2, and one absurd value.
        let util = [
            sample(0, 0.2),
            sample(2, 0.4),
            sample(5, 0.5),
            sample(15, 1.7),
            sample(20, f64::NAN),
            sample(25, -0.1),
        ];
        let counts = [sample(5, 3.0), sample(20, 5.0)];
        let steps = read_steps(at(0), at(30), &util, &counts, 2.0, 0.12);
        assert_eq!(steps.len(), 6);
        let utils: Vec<Option<f64>> = steps.iter().map(|s| s.util).collect();
        assert_eq!(utils.len(), 6);
        assert!((utils[0].unwrap() - 0.3).abs() < 1e-12, "{utils:?}");
        assert_eq!(utils[1], Some(0.5));
        assert_eq!(utils[2], None);
        assert_eq!(utils[3], Some(1.0), "capped at full");
        assert_eq!(utils[4], None, "NaN is no sample");
        assert_eq!(utils[5], None, "a negative share is no sample");
        // Before the first count: the first count; then each count until the next.
        let billed: Vec<f64> = steps.iter().map(|s| s.billed).collect();
        assert_eq!(billed, vec![3.0, 3.0, 3.0, 3.0, 5.0, 5.0]);
        // Load: utilisation × instances × vCPUs; cost: instances × price for 5 minutes.
        assert!((steps[1].load.unwrap() - 0.5 * 3.0 * 2.0).abs() < 1e-12);
        assert_eq!(steps[2].load, None);
        assert!((steps[4].cost - 5.0 * 0.12 / 12.0).abs() < 1e-12);
    }

    #[test]
    fn memory_in_use_is_a_share_or_else_percent_and_its_peak_is_a_steps_mean() {
        // Two samples in the first step (mean 0.5), one in the second, one outside the window.
        let share = [
            sample(0, 0.4),
            sample(1, 0.6),
            sample(5, 0.55),
            sample(40, 0.9),
        ];
        let (peak, percent) = peak_memory_share(at(0), at(30), &share).unwrap();
        assert!((peak - 0.55).abs() < 1e-12, "{peak}");
        assert!(!percent);
        // The same in percent: read as such, since a share cannot pass 1.
        let pct: Vec<_> = share
            .iter()
            .map(|s| sample((s.at - at(0)).num_minutes(), s.value * 100.0))
            .collect();
        let (peak, percent) = peak_memory_share(at(0), at(30), &pct).unwrap();
        assert!((peak - 0.55).abs() < 1e-12, "{peak}");
        assert!(percent);
        // Past 100 is neither; nothing in the window is nothing.
        assert_eq!(peak_memory_share(at(0), at(30), &[sample(0, 250.0)]), None);
        assert_eq!(peak_memory_share(at(0), at(30), &[sample(40, 0.5)]), None);
    }

    #[test]
    fn the_prometheus_default_count_query_selects_the_series_hoist_exports() {
        use hoist_core::events::{Event, EventSink};
        let telemetry = hoist_telemetry::Telemetry::new();
        telemetry.emit(&Event::GroupObserved {
            provider: "prod".into(),
            group: hoist_core::engine::GroupSnapshot {
                id: "web-asg".into(),
                desired: 4,
                ready: 3,
                pending: 1,
                provider_min: 0,
                provider_max: 10,
                instance_class: "m5.large".into(),
            },
            min: 1,
            max: 10,
            cost_per_hour: None,
            currency: None,
            metered_cost: None,
            metered_spot_cost: None,
            spot_instances: 0,
        });
        let exported = telemetry.encode();
        // `name{group="web-asg"}` selects the line of that name carrying that label.
        let query = default_instances_query("prometheus")
            .unwrap()
            .replace("{group}", "web-asg");
        let (name, selector) = query.split_once('{').unwrap();
        let label = selector.trim_end_matches('}');
        let lines: Vec<&str> = exported
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
            .collect();
        assert_eq!(lines.len(), 1, "{query} in\n{exported}");
        assert!(lines[0].ends_with(" 3"), "the ready count: {}", lines[0]);
    }

    #[test]
    fn lives_read_from_a_count_leave_last_in_first_out() {
        // 2, 4, 4, 3, 2, 3 instances in six steps.
        let steps: Vec<Step> = [2.0, 4.0, 4.0, 3.0, 2.0, 3.0]
            .iter()
            .enumerate()
            .map(|(i, n)| Step {
                at: at(5 * i as i64),
                util: None,
                load: None,
                billed: *n,
                cost: 0.0,
            })
            .collect();
        let lives = lives_from_counts(&steps, "m5.large", CapacityType::OnDemand, 0.096).unwrap();
        let mut seen: Vec<(i64, Option<i64>)> = lives
            .iter()
            .map(|l| {
                (
                    (l.launched_at - at(0)).num_minutes(),
                    l.ended_at.map(|e| (e - at(0)).num_minutes()),
                )
            })
            .collect();
        seen.sort();
        // The base of 2 runs throughout; the two added at 5 min leave at 15 and 20 (the newest
        // first); one more comes at 25 and runs on.
        assert_eq!(
            seen,
            vec![
                (0, None),
                (0, None),
                (5, Some(15)),
                (5, Some(20)),
                (25, None)
            ]
        );
        assert!(lives.iter().all(|l| l.price_per_hour == 0.096));
        // A series that swings between 0 and a million every step launches too many to read.
        let swinging: Vec<Step> = (0..10)
            .map(|i| Step {
                at: at(5 * i),
                util: None,
                load: None,
                billed: if i % 2 == 0 { 0.0 } else { 1e6 },
                cost: 0.0,
            })
            .collect();
        assert_eq!(
            lives_from_counts(&swinging, "m5.large", CapacityType::OnDemand, 0.096).err(),
            Some(MAX_LIVES)
        );
    }

    #[test]
    fn a_count_past_the_instance_limit_is_no_count() {
        let counts = [sample(0, 4.0), sample(5, 1e12), sample(10, f64::INFINITY)];
        let steps = read_steps(at(0), at(15), &[], &counts, 2.0, 0.1);
        let billed: Vec<f64> = steps.iter().map(|s| s.billed).collect();
        assert_eq!(billed, vec![4.0, 4.0, 4.0]);
        assert!(!count_ok(1e12) && !count_ok(-1.0) && count_ok(0.0));
    }
}
