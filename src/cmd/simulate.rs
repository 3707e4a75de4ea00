//! `hoist simulate`: replay a demand trace through one policy (a policy file or a built-in
//! baseline) and score it against the oracles O1 and O2 (see `EVALUATION.md`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hoist_core::config::budget::{BudgetPeriod, Rung};
use hoist_core::eval::budget::{
    BarSettings, BudgetAmount, PeriodBudget, budget_periods, held, spend_per_period,
};
use hoist_core::eval::policy::PolicyController;
use hoist_core::eval::{
    Billing, BuiltIn, Controller, Demand, ReplayOptions, ReplayParams, Scale, SeriesPoint,
    SimulationResult, simulate, svg,
};
use hoist_core::trace::{Trace, load_trace};

use super::{CliError, CliResult};

/// The replay model's options, shared by `simulate` and `evaluate`.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Scale the trace so the peak of the whole trace needs this many instances.
    #[arg(long, default_value_t = 100)]
    pub peak_instances: u32,
    /// Target utilisation of the reactive baselines (hpa, target-tracking).
    #[arg(long, default_value_t = 0.7)]
    pub target: f64,
    /// Time from asking for an instance to it serving.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub boot_delay: Duration,
    /// Delay of the metric pipeline.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub metric_lag: Duration,
    /// Averaging period of the metrics.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub metric_period: Duration,
    /// Billing: `per-second` (60 s minimum), `per-second:<minimum>` or `per-hour`.
    #[arg(long, default_value = "per-second", value_parser = Billing::parse)]
    pub billing: Billing,
    /// Price of one instance per hour.
    #[arg(long, default_value_t = 0.10)]
    pub price: f64,
    /// Lower bound of capacity of every controller but O1, the policy files' groups included.
    /// Default: the policy file group's `min` (so the baselines and oracles are scored under
    /// the policy's bounds), else 1.
    #[arg(long, value_name = "N")]
    pub min_instances: Option<u32>,
    /// Upper bound of capacity of every controller but O1, the policy files' groups included.
    /// Default: the policy file group's `max`, else 10000.
    #[arg(long, value_name = "N")]
    pub max_instances: Option<u32>,
    /// Work units per second one instance serves at 100 % (for request-rate, queue and latency
    /// signals of policy files).
    #[arg(long, default_value_t = 100.0)]
    pub capacity: f64,
    /// Seed (recorded; the replay has no random element yet).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replay up to this much of the trace before the scored part without scoring it, so that
    /// controllers start warm, as a running autoscaler would: a predictive policy has its
    /// history, a reactive one has settled. The oracles see only the scored part. `0s` starts
    /// cold at the first scored step.
    #[arg(long, default_value = "14d", value_parser = parse_duration)]
    pub warmup: Duration,
}

/// Budget options, shared by `simulate` and `evaluate`.
#[derive(Debug, Clone, clap::Args)]
pub struct BudgetArgs {
    /// Replay the policy file under a budget per period: an amount in the replay's money
    /// (`1200`, at `--price` per instance-hour; a period the replay cuts short gets its share),
    /// or a share of what `hpa` at `--target` spends in each period (`85%`). The report says
    /// whether every period held, the spend and τ_U; `hoist evaluate` also runs the policy with
    /// its `max` lowered until every period fits, for comparison.
    #[arg(long, value_name = "AMOUNT|SHARE%", value_parser = BudgetAmount::parse)]
    pub budget: Option<BudgetAmount>,
    /// The budget's period: `daily`, `weekly`, `monthly` (calendar, UTC) or a length (`10d`)
    /// counted from the first scored step.
    #[arg(long, default_value = "monthly", value_name = "PERIOD")]
    pub budget_period: String,
    /// The highest rung the budget may climb: `alert`, `prefer_cheaper`, `cap` or
    /// `deny_scale_out`.
    #[arg(long, default_value = "cap", value_parser = parse_rung, value_name = "RUNG")]
    pub budget_action: Rung,
    /// Under `cap`: the utilisation target-tracking policies may be raised to before capacity
    /// is cut.
    #[arg(long, default_value_t = 0.9, value_name = "UTILISATION")]
    pub budget_max_utilization: f64,
}

fn parse_rung(text: &str) -> Result<Rung, String> {
    serde_json::from_value(serde_json::Value::String(text.replace('-', "_"))).map_err(|_| {
        format!("`{text}`: the rungs are alert, prefer_cheaper, cap and deny_scale_out")
    })
}

impl BudgetArgs {
    /// The period, with custom lengths starting at `from`.
    pub fn period(&self, from: chrono::DateTime<chrono::Utc>) -> Result<BudgetPeriod, CliError> {
        Ok(match self.budget_period.as_str() {
            "daily" => BudgetPeriod::Daily,
            "weekly" => BudgetPeriod::Weekly,
            "monthly" => BudgetPeriod::Monthly,
            other => {
                let every = hoist_core::duration::parse_duration(other).map_err(|e| {
                    CliError::input(format!(
                        "--budget-period {other}: daily, weekly, monthly or a length like 10d ({e})"
                    ))
                })?;
                if every < Duration::from_secs(3600) {
                    return Err(CliError::input(format!(
                        "--budget-period {other}: a budget period must be at least 1h"
                    )));
                }
                BudgetPeriod::Custom {
                    every: every.into(),
                    starting: from,
                }
            }
        })
    }

    /// Checks the utilisation bound.
    pub fn check(&self) -> Result<(), CliError> {
        if !(self.budget_max_utilization > 0.0 && self.budget_max_utilization < 1.0) {
            return Err(CliError::input(format!(
                "--budget-max-utilization {} must be between 0 and 1",
                self.budget_max_utilization
            )));
        }
        Ok(())
    }
}

impl ModelArgs {
    /// The index in `whole` where the warm-up before step `scored_from` begins.
    pub fn warmup_start(&self, whole: &Trace, scored_from: usize) -> usize {
        let step = whole.step.num_seconds().max(1) as u64;
        let steps = usize::try_from(self.warmup.as_secs() / step).unwrap_or(usize::MAX);
        scored_from.saturating_sub(steps)
    }
}

impl ModelArgs {
    /// The replay parameters.
    pub fn params(&self) -> Result<ReplayParams, CliError> {
        let params = ReplayParams {
            peak_instances: self.peak_instances,
            boot_delay: self.boot_delay,
            metric_lag: self.metric_lag,
            metric_period: self.metric_period,
            billing: self.billing,
            price_per_hour: self.price,
            min_instances: self.min_instances.unwrap_or(DEFAULT_MIN_INSTANCES),
            max_instances: self.max_instances.unwrap_or(DEFAULT_MAX_INSTANCES),
            capacity_per_instance: self.capacity,
            target_utilization: self.target,
            seed: self.seed,
        };
        params.validate().map_err(CliError::input)?;
        Ok(params)
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = hoist_core::duration::parse_duration(text)?;
    if d.subsec_nanos() != 0 {
        return Err(format!("{text}: use whole seconds"));
    }
    Ok(d)
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{text:?}: {e} (expected RFC 3339, e.g. 2024-01-01T00:00:00Z)"))
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A table for people.
    Table,
    /// One JSON object.
    Json,
}

/// Options of `hoist simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The demand trace (`timestamp,value` CSV, or .csv.gz; timestamps in RFC 3339 or whole Unix
    /// seconds).
    #[arg(long)]
    pub trace: PathBuf,
    /// A policy file, or a built-in: o1, o2, static-peak, static-mean, hpa, target-tracking.
    #[arg(long)]
    pub policy: String,
    /// The group of the policy file to replay (default: the first).
    #[arg(long)]
    pub group: Option<String>,
    /// Replay only steps at or after this time (RFC 3339); the scale still comes from the whole
    /// trace.
    #[arg(long, value_parser = parse_time)]
    pub from: Option<DateTime<Utc>>,
    /// Replay only steps before this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Write a chart (chart.svg), a summary (summary.md) and the scored steps behind them
    /// (series.csv: demand, instances needed, ready, asked for, forecast) into this directory.
    #[arg(long)]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    /// Budget options.
    pub budget: BudgetArgs,
    #[command(flatten)]
    /// The replay model.
    pub model: ModelArgs,
}

/// Loads a trace, naming the file and line on error.
pub fn load(path: &Path) -> Result<Trace, CliError> {
    load_trace(path).map_err(CliError::input)
}

/// The bounds of a comparison without `--min-instances`, `--max-instances` or a policy file.
const DEFAULT_MIN_INSTANCES: u32 = 1;
/// See [`DEFAULT_MIN_INSTANCES`].
const DEFAULT_MAX_INSTANCES: u32 = 10_000;

/// The bounds every controller of a comparison is scored under, and where they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    /// Lower bound.
    pub min: u32,
    /// Upper bound.
    pub max: u32,
    /// Where they come from, for reports.
    pub source: String,
}

impl ModelArgs {
    /// The bounds of a comparison of the built-ins with the policy files of `specs`, all scored
    /// alike: `--min-instances`/`--max-instances` when given (the policy files' groups take
    /// them too), else the policy files' group bounds (they must agree), else the defaults.
    /// Applies them to `params` and to the policy files' controllers.
    pub fn apply_bounds(
        &self,
        params: &mut ReplayParams,
        specs: &mut [PolicySpec],
    ) -> Result<Bounds, CliError> {
        let groups: Vec<(String, u32, u32)> = specs
            .iter()
            .filter_map(|s| match s {
                PolicySpec::File { name, controller } => {
                    Some((name.clone(), controller.group().min, controller.group().max))
                }
                PolicySpec::BuiltIn(_) => None,
            })
            .collect();
        let bounds = if self.min_instances.is_some() || self.max_instances.is_some() {
            Bounds {
                min: self.min_instances.unwrap_or(DEFAULT_MIN_INSTANCES),
                max: self.max_instances.unwrap_or(DEFAULT_MAX_INSTANCES),
                source: if groups.is_empty() {
                    "--min-instances/--max-instances".to_owned()
                } else {
                    "--min-instances/--max-instances, for the policy files' groups too".to_owned()
                },
            }
        } else if let Some((name, min, max)) = groups.first() {
            if let Some((other, omin, omax)) = groups.iter().find(|(_, a, b)| (a, b) != (min, max))
            {
                return Err(CliError::input(format!(
                    "the policy files' groups have different bounds ({name}: {min}..{max}, {other}: {omin}..{omax}); give --min-instances and --max-instances so that every controller is scored under the same bounds"
                )));
            }
            Bounds {
                min: *min,
                max: *max,
                source: format!(
                    "the policy group's `min` and `max` ({name}), for every controller"
                ),
            }
        } else {
            Bounds {
                min: DEFAULT_MIN_INSTANCES,
                max: DEFAULT_MAX_INSTANCES,
                source: "the defaults".to_owned(),
            }
        };
        if bounds.min > bounds.max {
            return Err(CliError::input(format!(
                "bounds {}..{}: the minimum is above the maximum",
                bounds.min, bounds.max
            )));
        }
        params.min_instances = bounds.min;
        params.max_instances = bounds.max;
        params.validate().map_err(CliError::input)?;
        for spec in specs.iter_mut() {
            if let PolicySpec::File { controller, .. } = spec {
                let replaced = controller
                    .as_ref()
                    .clone()
                    .with_bounds(bounds.min, bounds.max);
                **controller = replaced;
            }
        }
        Ok(bounds)
    }
}

/// A policy to replay: a built-in or a policy file's group.
pub enum PolicySpec {
    /// A built-in.
    BuiltIn(BuiltIn),
    /// A group of a policy file.
    File {
        /// Display name.
        name: String,
        /// The controller template (cloned per run).
        controller: Box<PolicyController>,
    },
}

impl PolicySpec {
    /// Parses `--policy`: a built-in's name, or a policy file.
    pub fn parse(text: &str, group: Option<&str>) -> Result<PolicySpec, CliError> {
        if let Some(b) = BuiltIn::parse(text) {
            return Ok(PolicySpec::BuiltIn(b));
        }
        let path = Path::new(text);
        if !path.exists() {
            return Err(CliError::input(format!(
                "--policy {text:?} is neither a built-in (o1, o2, static-peak, static-mean, hpa, target-tracking) nor an existing file"
            )));
        }
        let doc = hoist_core::config::load_file(path).map_err(CliError::input)?;
        let interval = doc.policy.run.interval.as_delta().num_seconds();
        let chosen = match group {
            Some(g) => doc
                .policy
                .groups
                .iter()
                .find(|x| x.name == g)
                .ok_or_else(|| {
                    CliError::input(format!("{}: no group named {g:?}", path.display()))
                })?,
            None => doc.policy.groups.first().ok_or_else(|| {
                if doc.policy.pools.is_empty() {
                    CliError::input(format!("{}: no groups", path.display()))
                } else {
                    CliError::input(format!(
                        "{}: no groups, only pools; `hoist simulate` replays one group's policy on a trace, and a pool (its split over several providers, failover and return) is simulated with `hoist run {}` on simulated providers (docs/guides/multi-cloud-pools.md)",
                        path.display(),
                        path.display()
                    ))
                }
            })?,
        };
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| text.to_owned());
        let name = if doc.policy.groups.len() > 1 {
            format!("{stem}/{}", chosen.name)
        } else {
            stem
        };
        let controller = PolicyController::new(&name, chosen.clone(), interval)
            .map_err(|e| CliError::input(format!("{}: {e}", path.display())))?;
        Ok(PolicySpec::File {
            name,
            controller: Box::new(controller),
        })
    }

    /// Display name.
    pub fn name(&self) -> String {
        match self {
            PolicySpec::BuiltIn(b) => b.name().to_owned(),
            PolicySpec::File { name, .. } => name.clone(),
        }
    }

    /// A fresh controller (None for O1).
    pub fn controller(&self, params: &ReplayParams, scale: &Scale) -> Option<Box<dyn Controller>> {
        match self {
            PolicySpec::BuiltIn(b) => b.controller(params, scale),
            PolicySpec::File { controller, .. } => Some(controller.clone()),
        }
    }

    /// Whether it is a policy file.
    pub fn is_file(&self) -> bool {
        matches!(self, PolicySpec::File { .. })
    }
}

/// Runs `hoist simulate`.
pub fn run(args: Args) -> CliResult {
    let mut params = args.model.params()?;
    let mut spec = PolicySpec::parse(&args.policy, args.group.as_deref())?;
    let bounds = args
        .model
        .apply_bounds(&mut params, std::slice::from_mut(&mut spec))?;
    let whole = load(&args.trace)?;
    let scale = Scale::for_peak(&whole, params.peak_instances).map_err(CliError::input)?;
    let window = whole.window(args.from, args.until);
    let scored_from = whole.len() - whole.window(args.from, None).len();
    let warm_from = whole.at(args.model.warmup_start(&whole, scored_from));
    let warm = whole.window(Some(warm_from), args.until);
    // Checked on the scored window first, so an empty one is named as such.
    Demand::new(&window, scale).map_err(CliError::input)?;
    let demand = Demand::new(&warm, scale).map_err(CliError::input)?;
    let options = ReplayOptions {
        record_series: args.report.is_some(),
        warmup_steps: warm.len() - window.len(),
    };
    let started = std::time::Instant::now();
    args.budget.check()?;
    let mut budget_report = None;
    let result = if let Some(amount) = args.budget.budget {
        let PolicySpec::File { controller, .. } = &spec else {
            return Err(CliError::input(
                "--budget: budgets steer a policy file's decisions; give a policy file to --policy",
            ));
        };
        let period = args.budget.period(window.start)?;
        let settings = BarSettings {
            amount,
            period,
            action: args.budget.budget_action,
            max_utilization: args.budget.budget_max_utilization,
            warmup_steps: options.warmup_steps,
            interval_seconds: controller.interval_seconds(),
        };
        let mut reference = BuiltIn::Hpa
            .controller(&params, &scale)
            .ok_or_else(|| CliError::runtime("no hpa controller"))?;
        let periods = budget_periods(&demand, &params, &mut *reference, &settings)
            .map_err(super::eval_error)?;
        // One replay under the budget: its score against the oracles, and its series for the
        // spend of each period.
        let budgeted: Box<dyn Controller> = Box::new(controller.as_ref().clone().with_budget(
            hoist_core::eval::policy::ReplayBudget {
                periods: periods.iter().map(|p| (p.start, p.end, p.budget)).collect(),
                action: settings.action,
                max_utilization: settings.max_utilization,
            },
        ));
        let name = format!("{} + budget ({})", spec.name(), settings.action);
        let mut result = simulate(
            &demand,
            &params,
            &name,
            Some(budgeted),
            ReplayOptions {
                record_series: true,
                ..options
            },
        )
        .map_err(super::eval_error)?;
        let spans: Vec<_> = periods.iter().map(|p| (p.start, p.end)).collect();
        let spend = spend_per_period(&result.series, demand.step_seconds, &spans);
        let all_held = held(&periods, &spend);
        if args.report.is_none() {
            result.series = Vec::new();
        }
        budget_report = Some((periods, spend, all_held));
        result
    } else {
        let controller = spec.controller(&params, &scale);
        simulate(&demand, &params, &spec.name(), controller, options).map_err(super::eval_error)?
    };
    let elapsed = started.elapsed();
    let info = RunInfo {
        trace: args.trace.display().to_string(),
        policy: args.policy.clone(),
        from: window.start,
        until: window.end(),
        warmup_from: warm.start,
        warmup: args.model.warmup,
        scale,
        params: params.clone(),
        elapsed_seconds: elapsed.as_secs_f64(),
        steps: window.len(),
        bounds_source: bounds.source.clone(),
    };
    match args.output {
        Output::Json => {
            let mut value = json_object(&result, &info);
            if let Some((periods, spend, all_held)) = &budget_report {
                value["budget"] = serde_json::json!({
                    "amount": args.budget.budget,
                    "period": args.budget.budget_period,
                    "action": args.budget.budget_action,
                    "max_utilization": args.budget.budget_max_utilization,
                    "held": all_held,
                    "periods": periods.iter().zip(spend).map(|(p, spent)| serde_json::json!({
                        "start": p.start.to_rfc3339(),
                        "end": p.end.to_rfc3339(),
                        "budget": p.budget,
                        "spent": spent,
                        "held": *spent <= p.budget + 0.01,
                        "judged": hoist_core::eval::budget::judged((p.start, p.end)),
                    })).collect::<Vec<_>>(),
                });
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&value).map_err(CliError::runtime)?
            );
        }
        Output::Table => {
            print!("{}", table(&result, &info));
            if let Some((periods, spend, all_held)) = &budget_report {
                print!("{}", budget_table(periods, spend, *all_held, &args.budget));
            }
        }
    }
    if let Some(dir) = &args.report {
        write_report(dir, &result, &info)?;
        if args.output == Output::Table {
            println!("report written to {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn budget_table(periods: &[PeriodBudget], spend: &[f64], held: bool, args: &BudgetArgs) -> String {
    let mut out = format!(
        "\nbudget ({}, up to rung {}, targets up to {}):\n{:<22} {:<22} {:>12} {:>12} {:>6}\n",
        args.budget_period,
        args.budget_action,
        args.budget_max_utilization,
        "PERIOD FROM",
        "UNTIL",
        "BUDGET",
        "SPENT",
        "HELD"
    );
    for (p, spent) in periods.iter().zip(spend) {
        let _ = writeln!(
            out,
            "{:<22} {:<22} {:>12.2} {:>12.2} {:>6}",
            p.start.format("%Y-%m-%d %H:%M"),
            p.end.format("%Y-%m-%d %H:%M"),
            p.budget,
            spent,
            if !hoist_core::eval::budget::judged((p.start, p.end)) {
                "(<1d)"
            } else if *spent <= p.budget + 0.01 {
                "yes"
            } else {
                "no"
            }
        );
    }
    let _ = writeln!(
        out,
        "every period inside its budget (periods covered for less than a day are not judged): {}",
        if held { "yes" } else { "no" }
    );
    out
}

/// What identifies a run besides the model parameters.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// Trace path.
    pub trace: String,
    /// Policy as given.
    pub policy: String,
    /// Window start.
    pub from: DateTime<Utc>,
    /// Window end (exclusive).
    pub until: DateTime<Utc>,
    /// Start of the unscored warm-up (equal to `from` without one).
    pub warmup_from: DateTime<Utc>,
    /// The warm-up asked for.
    pub warmup: Duration,
    /// The scale.
    pub scale: Scale,
    /// The model.
    pub params: ReplayParams,
    /// Wall time of the simulation (policy + both oracles), seconds.
    pub elapsed_seconds: f64,
    /// Trace steps replayed.
    pub steps: usize,
    /// Where the bounds come from.
    pub bounds_source: String,
}

/// The parameters object of a run.
pub fn parameters_json(info: &RunInfo, result: &SimulationResult) -> serde_json::Value {
    let p = &info.params;
    serde_json::json!({
        "trace": info.trace,
        "policy": info.policy,
        "from": info.from.to_rfc3339(),
        "until": info.until.to_rfc3339(),
        "warmup_from": info.warmup_from.to_rfc3339(),
        "steps": info.steps,
        "peak_instances": p.peak_instances,
        "scale_instances_per_unit": info.scale.instances_per_unit,
        "trace_peak": info.scale.trace_peak,
        "target_utilization": p.target_utilization,
        "boot_delay_seconds": p.boot_delay.as_secs(),
        "metric_lag_seconds": p.metric_lag.as_secs(),
        "metric_period_seconds": p.metric_period.as_secs(),
        "billing": p.billing,
        "price_per_hour": p.price_per_hour,
        "min_instances": p.min_instances,
        "max_instances": p.max_instances,
        "bounds_source": info.bounds_source,
        "capacity_per_instance": p.capacity_per_instance,
        "seed": p.seed,
        "tick_seconds": result.tick_seconds,
    })
}

fn json_object(r: &SimulationResult, info: &RunInfo) -> serde_json::Value {
    let s = &r.score;
    serde_json::json!({
        "theta_u": s.theta_u,
        "theta_o": s.theta_o,
        "tau_u": s.tau_u,
        "tau_o": s.tau_o,
        "jitter": s.jitter,
        "under_instance_hours": s.under_instance_hours,
        "over_instance_hours": s.over_instance_hours,
        "cost": s.cost,
        "cost_ratio_o1": r.cost_ratio_o1,
        "cost_ratio_o2": r.cost_ratio_o2,
        "actions": s.actions,
        "parameters": parameters_json(info, r),
        "oracles": {
            "o1_cost": r.o1_cost,
            "o2_cost": r.o2_cost,
            "o2_lower_bound_cost": r.o2_lower_bound_cost,
            "o2_exact": r.o2_exact,
        },
        "scored_hours": s.scored_hours,
        "elapsed_seconds": info.elapsed_seconds,
        "forecast_use": r
            .tally
            .iter()
            .map(|(what, n)| serde_json::json!({ "what": what, "evaluations": n }))
            .collect::<Vec<_>>(),
    })
}

/// The predictive policy's scored evaluations by what its forecast was: one line per kind,
/// with its share, most frequent first.
fn forecast_use_lines(r: &SimulationResult) -> String {
    let mut out = String::new();
    // Two tallies may be there: the predictive policy's (what its forecast was) and the
    // budget's (`budget: ...`, what it did to the decisions); each adds up on its own.
    for (budget, title) in [(false, "Predictive policy"), (true, "Budget")] {
        let lines: Vec<&(String, u64)> = r
            .tally
            .iter()
            .filter(|(what, _)| what.starts_with("budget: ") == budget)
            .collect();
        let total: u64 = lines.iter().map(|(_, n)| n).sum();
        if total == 0 {
            continue;
        }
        let _ = writeln!(out, "\n{title} over {total} scored evaluations:");
        for (what, n) in lines {
            let what = what.strip_prefix("budget: ").unwrap_or(what);
            let _ = writeln!(out, "  {:>5.1} %  {what}", 100.0 * *n as f64 / total as f64);
        }
    }
    out
}

fn parameter_lines(info: &RunInfo, r: &SimulationResult) -> String {
    let p = &info.params;
    let mut out = String::new();
    let _ = writeln!(out, "trace            {}", info.trace);
    let _ = writeln!(out, "policy           {}", info.policy);
    let _ = writeln!(
        out,
        "window           {} .. {} ({} steps, {:.1} h scored)",
        info.from.to_rfc3339(),
        info.until.to_rfc3339(),
        info.steps,
        r.score.scored_hours
    );
    if info.warmup_from < info.from {
        let _ = writeln!(
            out,
            "warm-up          {} .. {} replayed, not scored",
            info.warmup_from.to_rfc3339(),
            info.from.to_rfc3339()
        );
    }
    let _ = writeln!(
        out,
        "scale            peak {} instances = trace peak {} ({:.6e} instances per unit)",
        p.peak_instances, info.scale.trace_peak, info.scale.instances_per_unit
    );
    let _ = writeln!(out, "target           {}", p.target_utilization);
    let _ = writeln!(
        out,
        "boot delay       {} s; metric lag {} s; metric period {} s; tick {} s",
        p.boot_delay.as_secs(),
        p.metric_lag.as_secs(),
        p.metric_period.as_secs(),
        r.tick_seconds
    );
    let _ = writeln!(
        out,
        "billing          {}, {} per instance-hour",
        p.billing, p.price_per_hour
    );
    let _ = writeln!(
        out,
        "bounds           {}..{} instances ({}); capacity {} work units/s per instance",
        p.min_instances, p.max_instances, info.bounds_source, p.capacity_per_instance
    );
    let _ = writeln!(out, "seed             {}", p.seed);
    out
}

fn table(r: &SimulationResult, info: &RunInfo) -> String {
    let s = &r.score;
    let mut out = parameter_lines(info, r);
    out.push('\n');
    let rows: [(&str, String); 11] = [
        ("θ_U (accuracy under)", format!("{:.3} %", s.theta_u)),
        ("θ_O (accuracy over)", format!("{:.3} %", s.theta_o)),
        ("τ_U (time under)", format!("{:.3} %", s.tau_u)),
        ("τ_O (time over)", format!("{:.3} %", s.tau_o)),
        ("jitter", format!("{:.3} /h", s.jitter)),
        (
            "under-provisioned",
            format!("{:.1} instance-h", s.under_instance_hours),
        ),
        (
            "over-provisioned",
            format!("{:.1} instance-h", s.over_instance_hours),
        ),
        ("cost", format!("{:.2}", s.cost)),
        ("cost ratio to O1", format!("{:.4}", r.cost_ratio_o1)),
        (
            "cost ratio to O2",
            format!(
                "{:.4}{}",
                r.cost_ratio_o2,
                if r.o2_exact {
                    ""
                } else {
                    " (O2 not proven optimal here)"
                }
            ),
        ),
        ("scaling actions", s.actions.to_string()),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<24} {v:>16}");
    }
    let _ = writeln!(
        out,
        "\nO1 cost {:.2}; O2 cost {:.2} (lower bound {:.2}, {}); {:.3} s",
        r.o1_cost,
        r.o2_cost,
        r.o2_lower_bound_cost,
        if r.o2_exact {
            "exact"
        } else {
            "best level plan"
        },
        info.elapsed_seconds
    );
    out.push_str(&forecast_use_lines(r));
    out
}

fn write_report(dir: &Path, r: &SimulationResult, info: &RunInfo) -> Result<(), CliError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::runtime(format!("cannot create {}: {e}", dir.display())))?;
    let title = format!("{} on {}", r.policy, trace_name(&info.trace));
    let subtitle = format!(
        "peak {} instances · target {} · boot {} s · lag {} s · {}",
        info.params.peak_instances,
        info.params.target_utilization,
        info.params.boot_delay.as_secs(),
        info.params.metric_lag.as_secs(),
        info.params.billing
    );
    let chart = svg::timeseries(&title, &subtitle, &r.series);
    let chart_path = dir.join("chart.svg");
    std::fs::write(&chart_path, chart)
        .map_err(|e| CliError::runtime(format!("cannot write {}: {e}", chart_path.display())))?;
    let s = &r.score;
    let mut md = String::new();
    let _ = writeln!(md, "# {title}\n");
    let _ = writeln!(md, "![demand and supply](chart.svg)\n");
    let _ = writeln!(md, "| metric | value |\n|---|---|");
    for (k, v) in [
        ("θ_U", format!("{:.3} %", s.theta_u)),
        ("θ_O", format!("{:.3} %", s.theta_o)),
        ("τ_U", format!("{:.3} %", s.tau_u)),
        ("τ_O", format!("{:.3} %", s.tau_o)),
        ("jitter", format!("{:.3} per hour", s.jitter)),
        (
            "under-provisioned",
            format!("{:.1} instance-hours", s.under_instance_hours),
        ),
        (
            "over-provisioned",
            format!("{:.1} instance-hours", s.over_instance_hours),
        ),
        ("cost", format!("{:.2}", s.cost)),
        ("cost ratio to O1", format!("{:.4}", r.cost_ratio_o1)),
        ("cost ratio to O2", format!("{:.4}", r.cost_ratio_o2)),
        ("scaling actions", s.actions.to_string()),
    ] {
        let _ = writeln!(md, "| {k} | {v} |");
    }
    let _ = writeln!(
        md,
        "\n## Parameters\n\n```\n{}```\n",
        parameter_lines(info, r)
    );
    let forecast_use = forecast_use_lines(r);
    if !forecast_use.is_empty() {
        let _ = writeln!(md, "```{forecast_use}```\n");
    }
    let _ = writeln!(md, "Re-run:\n\n```\n{}\n```", rerun_command(info));
    let path = dir.join("summary.md");
    std::fs::write(&path, md)
        .map_err(|e| CliError::runtime(format!("cannot write {}: {e}", path.display())))?;
    let path = dir.join("series.csv");
    std::fs::write(&path, series_csv(&r.series))
        .map_err(|e| CliError::runtime(format!("cannot write {}: {e}", path.display())))?;
    Ok(())
}

/// The scored steps as CSV; a gap in the trace leaves `demand` and `needed` empty, and a
/// controller without a forecast leaves `forecast` empty.
fn series_csv(series: &[SeriesPoint]) -> String {
    let mut csv = String::from("timestamp,demand,needed,ready,desired,forecast\n");
    let opt = |v: Option<String>| v.unwrap_or_default();
    for p in series {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{}",
            p.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            opt(p.demand.map(|d| format!("{d:.4}"))),
            opt(p.needed.map(|n| n.to_string())),
            p.ready,
            p.desired,
            opt(p.forecast.map(|f| format!("{f:.4}"))),
        );
    }
    csv
}

fn trace_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_owned())
}

fn rerun_command(info: &RunInfo) -> String {
    let p = &info.params;
    let billing = match p.billing {
        Billing::PerHour => "per-hour".to_owned(),
        Billing::PerSecond { minimum_seconds } => format!("per-second:{minimum_seconds}s"),
    };
    format!(
        "hoist simulate --trace {} --policy {} --from {} --until {} --peak-instances {} --target {} --boot-delay {}s --metric-lag {}s --metric-period {}s --billing {} --price {} --min-instances {} --max-instances {} --capacity {} --seed {} --warmup {}s",
        info.trace,
        info.policy,
        info.from.to_rfc3339(),
        info.until.to_rfc3339(),
        p.peak_instances,
        p.target_utilization,
        p.boot_delay.as_secs(),
        p.metric_lag.as_secs(),
        p.metric_period.as_secs(),
        billing,
        p.price_per_hour,
        p.min_instances,
        p.max_instances,
        p.capacity_per_instance,
        p.seed,
        info.warmup.as_secs()
    )
}
