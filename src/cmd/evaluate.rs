//! `hoist evaluate`: every policy × every trace in a folder, scored on each trace's test part,
//! with the frontier of each reactive baseline and a verdict per policy.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hoist_core::eval::compare::{
    FRONTIER_TARGETS, Frontier, FrontierPoint, SPEEDUP_EPSILON_PERCENT, Verdict,
    below_every_frontier, elastic_speedup,
};
use hoist_core::eval::svg::{self, PolicyPoint};
use hoist_core::eval::{
    BuiltIn, Demand, Oracles, ReplayOptions, ReplayParams, Scale, SimulationResult, replay_warm,
};
use hoist_core::trace::{TraceError, load_trace};

use super::simulate::{BudgetArgs, ModelArgs, PolicySpec};
use super::{CliError, CliResult};
use hoist_core::eval::budget::{BarSettings, BudgetAmount, BudgetBar, budget_bar};

/// Options of `hoist evaluate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A folder of demand traces (`*.csv`, `*.csv.gz`); files that are not `timestamp,value`
    /// demand traces are skipped with a note.
    #[arg(long)]
    pub traces: PathBuf,
    /// A policy file to score (repeatable). Every built-in baseline is always scored.
    #[arg(long = "policy")]
    pub policies: Vec<String>,
    /// Share of each trace, at its end, that is scored (the test part); the part before is for
    /// fitting policies and is not scored.
    #[arg(long, default_value_t = 0.5)]
    pub test_fraction: f64,
    /// Write the comparison as Markdown here (charts go next to it, in `<stem>-charts/`).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Write the comparison as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    /// Budget options.
    pub budget: BudgetArgs,
    #[command(flatten)]
    /// The replay model.
    pub model: ModelArgs,
}

/// One policy's row on one trace.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    policy: String,
    #[serde(flatten)]
    result: SimulationResult,
    speedup_over_hpa: f64,
    verdicts: Vec<(String, Verdict)>,
    below_every_frontier: Option<bool>,
}

#[derive(Debug, Clone, serde::Serialize)]
struct TraceReport {
    trace: String,
    file: String,
    steps: usize,
    step_seconds: i64,
    test_from: String,
    test_until: String,
    scale_instances_per_unit: f64,
    trace_peak: f64,
    o2_exact: bool,
    rows: Vec<Row>,
    frontiers: Vec<Frontier>,
    chart: Option<String>,
    budget: Vec<(String, BudgetBar)>,
}

struct Progress {
    done: usize,
    total: usize,
}

impl Progress {
    fn step(&mut self, what: &str) {
        self.done += 1;
        let width = 30;
        let filled = width * self.done / self.total.max(1);
        eprint!(
            "\r[{}{}] {}/{} {what:<40}",
            "#".repeat(filled),
            " ".repeat(width - filled),
            self.done,
            self.total
        );
        let _ = std::io::stderr().flush();
    }
}

/// Runs `hoist evaluate`.
pub fn run(args: Args) -> CliResult {
    let mut params = args.model.params()?;
    if !(args.test_fraction > 0.0 && args.test_fraction <= 1.0) {
        return Err(CliError::input(format!(
            "--test-fraction {} must be in (0, 1]",
            args.test_fraction
        )));
    }
    args.budget.check()?;
    let mut specs: Vec<PolicySpec> = BuiltIn::ALL.into_iter().map(PolicySpec::BuiltIn).collect();
    for p in &args.policies {
        let spec = PolicySpec::parse(p, None)?;
        if !spec.is_file() {
            return Err(CliError::input(format!(
                "--policy {p}: built-ins are always scored; give policy files here"
            )));
        }
        specs.push(spec);
    }
    let bounds = args.model.apply_bounds(&mut params, &mut specs)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.traces)
        .map_err(|e| CliError::input(format!("{}: {e}", args.traces.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".csv") || n.ends_with(".csv.gz")
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(CliError::input(format!(
            "{}: no .csv or .csv.gz traces",
            args.traces.display()
        )));
    }
    let chart_dir = args.markdown.as_ref().map(|m| {
        let stem = m
            .file_stem()
            .map_or("results".into(), |s| s.to_string_lossy().into_owned());
        m.with_file_name(format!("{stem}-charts"))
    });
    if let Some(dir) = &chart_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::runtime(format!("cannot create {}: {e}", dir.display())))?;
    }

    let runs_per_trace = specs.len() + 2 * FRONTIER_TARGETS.len();
    let mut progress = Progress {
        done: 0,
        total: files.len() * runs_per_trace,
    };
    let mut reports = Vec::new();
    let mut skipped = Vec::new();
    for file in &files {
        let whole = match load_trace(file) {
            Ok(t) => t,
            Err(TraceError::Header { found, .. }) => {
                skipped.push((
                    file.clone(),
                    format!("header {found:?} is not `timestamp,value`: not a demand trace"),
                ));
                progress.done += runs_per_trace;
                continue;
            }
            Err(e) => return Err(CliError::input(e)),
        };
        let scale = Scale::for_peak(&whole, params.peak_instances).map_err(CliError::input)?;
        let split = ((whole.len() as f64) * (1.0 - args.test_fraction)).floor() as usize;
        let test = whole.window(Some(whole.at(split)), None);
        let demand = Demand::new(&test, scale).map_err(CliError::input)?;
        let oracles = Oracles::compute(&demand, &params).map_err(super::eval_error)?;
        // Controllers run through the warm-up before the test part, unscored.
        let warm_from = args.model.warmup_start(&whole, split);
        let warm = Demand::new(&whole.window(Some(whole.at(warm_from)), None), scale)
            .map_err(CliError::input)?;
        let options = ReplayOptions {
            warmup_steps: split - warm_from,
            ..ReplayOptions::default()
        };
        let mut results: Vec<SimulationResult> = Vec::new();
        for spec in &specs {
            progress.step(&format!("{} × {}", whole.name, spec.name()));
            let result = match spec.controller(&params, &scale) {
                None => oracles.result(
                    &spec.name(),
                    oracles.o1.clone(),
                    demand.step_seconds,
                    Vec::new(),
                ),
                Some(mut c) => {
                    let out =
                        replay_warm(&warm, &params, &mut *c, options).map_err(super::eval_error)?;
                    oracles.result(&spec.name(), out.score, out.tick_seconds, Vec::new())
                }
            };
            results.push(result);
        }
        let mut frontiers = Vec::new();
        for baseline in [BuiltIn::Hpa, BuiltIn::TargetTracking] {
            let mut points = Vec::new();
            for &target in &FRONTIER_TARGETS {
                progress.step(&format!(
                    "{} × {} @ {target:.2}",
                    whole.name,
                    baseline.name()
                ));
                let p = ReplayParams {
                    target_utilization: target,
                    ..params.clone()
                };
                let mut c = baseline
                    .controller(&p, &scale)
                    .ok_or_else(|| CliError::runtime("no controller"))?;
                let out = replay_warm(&warm, &p, &mut *c, options).map_err(super::eval_error)?;
                let r = oracles.result(baseline.name(), out.score, out.tick_seconds, Vec::new());
                points.push(FrontierPoint {
                    target,
                    tau_u: r.score.tau_u,
                    cost_ratio_o1: r.cost_ratio_o1,
                });
            }
            frontiers.push(Frontier {
                baseline: baseline.name().to_owned(),
                points,
            });
        }
        let hpa = results
            .iter()
            .find(|r| r.policy == "hpa")
            .map(|r| r.score.clone())
            .ok_or_else(|| CliError::runtime("hpa missing"))?;
        let rows: Vec<Row> = results
            .into_iter()
            .map(|r| {
                let verdicts: Vec<(String, Verdict)> = frontiers
                    .iter()
                    .map(|f| {
                        (
                            f.baseline.clone(),
                            f.verdict(r.score.tau_u, r.cost_ratio_o1),
                        )
                    })
                    .collect();
                let v: Vec<Verdict> = verdicts.iter().map(|x| x.1).collect();
                Row {
                    policy: r.policy.clone(),
                    speedup_over_hpa: elastic_speedup(&r.score, &hpa),
                    below_every_frontier: below_every_frontier(&v),
                    verdicts,
                    result: r,
                }
            })
            .collect();
        let chart = if let Some(dir) = &chart_dir {
            let points: Vec<PolicyPoint> = rows
                .iter()
                .filter(|r| !matches!(r.policy.as_str(), "hpa" | "target-tracking" | "static-peak"))
                .map(|r| PolicyPoint {
                    name: r.policy.clone(),
                    tau_u: r.result.score.tau_u,
                    cost_ratio_o1: r.result.cost_ratio_o1,
                })
                .collect();
            let svg = svg::frontier(
                &format!("{}: cost against risk (test part)", whole.name),
                &format!(
                    "frontiers sweep the target 0.50–0.95 · peak {} instances · boot {} s · lag {} s · {}",
                    params.peak_instances,
                    params.boot_delay.as_secs(),
                    params.metric_lag.as_secs(),
                    params.billing
                ),
                &frontiers,
                &points,
            );
            let name = format!("{}-frontier.svg", whole.name);
            let path = dir.join(&name);
            std::fs::write(&path, svg)
                .map_err(|e| CliError::runtime(format!("cannot write {}: {e}", path.display())))?;
            Some(format!(
                "{}/{name}",
                dir.file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ))
        } else {
            None
        };
        let mut budget = Vec::new();
        if let Some(amount) = args.budget.budget {
            let scored_from = warm.start
                + chrono::TimeDelta::seconds(warm.step_seconds * options.warmup_steps as i64);
            let period = args.budget.period(scored_from)?;
            for spec in &specs {
                let PolicySpec::File { name, controller } = spec else {
                    continue;
                };
                progress_note(&format!("{} × {name}: budget bar", whole.name));
                let mut reference = BuiltIn::Hpa
                    .controller(&params, &scale)
                    .ok_or_else(|| CliError::runtime("no hpa controller"))?;
                let settings = BarSettings {
                    amount,
                    period: period.clone(),
                    action: args.budget.budget_action,
                    max_utilization: args.budget.budget_max_utilization,
                    warmup_steps: options.warmup_steps,
                    interval_seconds: controller.interval_seconds(),
                };
                let bar = budget_bar(
                    &warm,
                    &params,
                    controller.group(),
                    &mut *reference,
                    &settings,
                )
                .map_err(super::eval_error)?;
                budget.push((name.clone(), bar));
            }
        }
        reports.push(TraceReport {
            trace: whole.name.clone(),
            file: file.display().to_string(),
            steps: demand.len(),
            step_seconds: demand.step_seconds,
            test_from: test.start.to_rfc3339(),
            test_until: test.end().to_rfc3339(),
            scale_instances_per_unit: scale.instances_per_unit,
            trace_peak: scale.trace_peak,
            o2_exact: oracles.o2_exact(),
            rows,
            frontiers,
            chart,
            budget,
        });
    }
    eprintln!();
    if reports.is_empty() {
        let why: Vec<String> = skipped
            .iter()
            .map(|(file, why)| format!("{}: {why}", file.display()))
            .collect();
        return Err(CliError::input(format!(
            "{}: no usable trace (each needs the header `timestamp,value`):\n  {}",
            args.traces.display(),
            why.join("\n  ")
        )));
    }
    let markdown = render_markdown(&reports, &skipped, (&params, &bounds.source), &args);
    match &args.markdown {
        Some(path) => std::fs::write(path, &markdown)
            .map_err(|e| CliError::runtime(format!("cannot write {}: {e}", path.display())))?,
        None => print!("{markdown}"),
    }
    if let Some(path) = &args.json {
        let value = serde_json::json!({
            "parameters": params,
            "bounds_source": bounds.source,
            "test_fraction": args.test_fraction,
            "warmup_seconds": args.model.warmup.as_secs(),
            "speedup_epsilon_percent": SPEEDUP_EPSILON_PERCENT,
            "traces": reports,
            "skipped": skipped.iter().map(|(f, why)| serde_json::json!({"file": f.display().to_string(), "why": why})).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&value).map_err(CliError::runtime)?;
        std::fs::write(path, text)
            .map_err(|e| CliError::runtime(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn verdict_text(row: &Row) -> String {
    let overall = match row.below_every_frontier {
        Some(true) => "**below every frontier**",
        Some(false) => "not below",
        None => "no baseline setting as safe",
    };
    let parts: Vec<String> = row
        .verdicts
        .iter()
        .map(|(b, v)| format!("{b}: {}", v.label()))
        .collect();
    format!("{overall} ({})", parts.join("; "))
}

fn render_markdown(
    reports: &[TraceReport],
    skipped: &[(PathBuf, String)],
    (params, bounds_source): (&ReplayParams, &str),
    args: &Args,
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Model: peak {} instances per trace · boot delay {} s · metric lag {} s · metric period {} s · billing {} at {} per instance-hour · bounds {}..{} ({}) · reactive target {} · seed {} · scored on the last {:.0} % of each trace (test part), with up to {} of the trace before it replayed unscored as a warm-up (the oracles see the test part only).",
        params.peak_instances,
        params.boot_delay.as_secs(),
        params.metric_lag.as_secs(),
        params.metric_period.as_secs(),
        params.billing,
        params.price_per_hour,
        params.min_instances,
        params.max_instances,
        bounds_source,
        params.target_utilization,
        params.seed,
        args.test_fraction * 100.0,
        hoist_core::duration::HumanDuration::from(args.model.warmup)
    );
    let _ = writeln!(
        md,
        "\nθ and τ in %; jitter per hour; under/over in instance-hours; speedup = elastic speedup over `hpa` (geometric mean of hpa/policy over θ_U, θ_O, τ_U, τ_O; zeros replaced by ε = {SPEEDUP_EPSILON_PERCENT} %). Verdict: below a frontier = cheaper than every setting of that baseline (target 0.50–0.95) whose τ_U is no higher, or, when every setting's τ_U is higher, cheaper than the safest setting.\n"
    );
    for r in reports {
        let _ = writeln!(
            md,
            "### {}\n\nTest part {} → {} ({} steps of {} s); scale {:.6e} instances per unit (trace peak {}). O2 {}.\n",
            r.trace,
            r.test_from,
            r.test_until,
            r.steps,
            r.step_seconds,
            r.scale_instances_per_unit,
            r.trace_peak,
            if r.o2_exact {
                "is proven optimal (cost equals the lower bound)"
            } else {
                "is the best level plan, above the lower bound (not proven optimal)"
            }
        );
        let _ = writeln!(
            md,
            "| policy | θ_U | θ_O | τ_U | τ_O | jitter | under | over | cost | ÷O1 | ÷O2 | actions | speedup | verdict |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for row in &r.rows {
            let s = &row.result.score;
            let _ = writeln!(
                md,
                "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} | {:.2} | {:.3} | {:.3} | {} | {:.2} | {} |",
                row.policy,
                s.theta_u,
                s.theta_o,
                s.tau_u,
                s.tau_o,
                s.jitter,
                s.under_instance_hours,
                s.over_instance_hours,
                s.cost,
                row.result.cost_ratio_o1,
                row.result.cost_ratio_o2,
                s.actions,
                row.speedup_over_hpa,
                verdict_text(row)
            );
        }
        let _ = writeln!(md, "\nFrontiers (target: τ_U %, cost ÷ O1):\n");
        for f in &r.frontiers {
            let pts: Vec<String> = f
                .points
                .iter()
                .map(|p| format!("{:.2}: {:.2} %, {:.3}", p.target, p.tau_u, p.cost_ratio_o1))
                .collect();
            let _ = writeln!(md, "- `{}`: {}", f.baseline, pts.join(" · "));
        }
        if let Some(chart) = &r.chart {
            let _ = writeln!(md, "\n![{} frontier]({chart})\n", r.trace);
        }
        for (policy, bar) in &r.budget {
            render_bar(&mut md, policy, bar);
        }
        md.push('\n');
    }
    for (file, why) in skipped {
        let _ = writeln!(md, "Skipped `{}`: {why}.\n", display_name(file));
    }
    md
}

fn progress_note(what: &str) {
    eprint!("\r{what:<72}");
    let _ = std::io::stderr().flush();
}

/// The budget bar of one policy on one trace, as Markdown.
pub(crate) fn render_bar(md: &mut String, policy: &str, bar: &BudgetBar) {
    let budget: f64 = bar.periods.iter().map(|p| p.budget).sum();
    let each = match bar.amount {
        BudgetAmount::OfReference(f) => format!("{:.0} % of what `hpa` spent in it", f * 100.0),
        BudgetAmount::Fixed(a) => format!("{a:.2} per full period"),
    };
    let _ = writeln!(
        md,
        "\nBudget bar for `{policy}`: {} period(s), each budgeted at {each} ({budget:.2} in all).\n",
        bar.periods.len(),
    );
    let _ = writeln!(
        md,
        "| run | spend | ÷ budget | held | τ_U | θ_U | τ_O | actions |\n|---|---:|---:|---|---:|---:|---:|---:|"
    );
    let mut runs = vec![&bar.reference, &bar.unbudgeted, &bar.ladder];
    if let Some((_, r)) = &bar.static_max {
        runs.push(r);
    }
    for (i, r) in runs.into_iter().enumerate() {
        let spend: f64 = r.spend.iter().sum();
        let _ = writeln!(
            md,
            "| {} | {:.2} | {:.3} | {} | {:.2} | {:.2} | {:.2} | {} |",
            r.name,
            spend,
            if budget > 0.0 { spend / budget } else { 0.0 },
            if i == 0 {
                "(reference)"
            } else if r.held {
                "yes"
            } else {
                "no"
            },
            r.score.tau_u,
            r.score.theta_u,
            r.score.tau_o,
            r.score.actions
        );
    }
    let unjudged: Vec<String> = bar
        .periods
        .iter()
        .filter(|p| !hoist_core::eval::budget::judged((p.start, p.end)))
        .map(|p| {
            format!(
                "{} → {}",
                p.start.format("%Y-%m-%d %H:%M"),
                p.end.format("%Y-%m-%d %H:%M")
            )
        })
        .collect();
    if !unjudged.is_empty() {
        let _ = writeln!(
            md,
            "\nCovered for less than a day, so counted in the spend but not judged: {}.",
            unjudged.join(", ")
        );
    }
    if bar.static_max.is_none() {
        let _ = writeln!(
            md,
            "\nNo `max` down to the group's `min` keeps every period inside."
        );
    }
    let _ = writeln!(
        md,
        "\nThe ladder {} the bar (inside the budget with a τ_U no higher than the static `max`).",
        if bar.ladder_wins() {
            "meets"
        } else {
            "does not meet"
        }
    );
}

fn display_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}
