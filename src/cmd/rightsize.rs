//! `hoist rightsize`: score rightsizing recommenders (the Kubernetes VPA recommender and
//! Hoist's own, with the hourly oracle beside them) on a per-VM panel, with a frontier sweep of
//! each recommender's main setting.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use hoist_core::eval::rightsize::chart::{self, Line};
use hoist_core::eval::rightsize::hoist;
use hoist_core::eval::rightsize::score::{Job, best_within, score_all};
use hoist_core::eval::rightsize::vpa::{Vpa, VpaConfig};
use hoist_core::eval::rightsize::{
    Panel, Recommender, ResourceScore, RightsizeScore, ScoreOptions, SweepPoint, load_panel,
};

use super::{CliError, CliResult};

/// Output format of `hoist rightsize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// Markdown tables, for reports.
    Markdown,
    /// One JSON object.
    Json,
}

/// Options of `hoist rightsize`.
///
/// Per resource it prints the headline **slack**, mean of (recommended − used) / recommended,
/// which is negative on a short step with no lower bound (a step short by 25 × counts −24), so
/// missing deeper lowers it; beside it **over** (oversize), the same mean with a short step
/// counting 0 (slack counting over-sizing only), and **miss ×** (short depth), the mean of
/// used / recommended over the short steps (– when none; a short step with nothing recommended
/// counts as short but is left out of this mean). Without such steps,
/// slack = over − short × (miss × − 1).
///
/// Panel formats (plain or gzip, told apart by the header):
///
/// - Bitbrains (GWA-T-12): `timestamp,vm,cores,cpu_capacity_mhz,cpu_usage_mhz,mem_capacity_kb,
///   mem_usage_kb`. CPU used in cores is usage / (capacity / cores); memory in KiB. Rows with
///   0 cores and 0 MHz (the VM was off) are gaps.
/// - Generic long CSV: `timestamp,vm,cpu_used[,cpu_capacity][,mem_used,mem_capacity]`, columns
///   in any order, CPU in cores, memory in bytes; a capacity is what the VM was given.
///
/// Timestamps are RFC 3339 or whole Unix seconds; each VM's rows in increasing time. Negative usage, a capacity of 0
/// and unparseable numbers are refused with the file and line.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The per-VM panel (`.csv` or `.csv.gz`).
    #[arg(long)]
    pub panel: PathBuf,
    /// Score only steps at or after this time: RFC 3339, or a length after the panel's first
    /// step (`46d`). Steps before it are still history for the recommenders.
    #[arg(long, value_name = "TIME|LENGTH")]
    pub from: Option<String>,
    /// Score only steps before this time: RFC 3339, or a length after the panel's first step.
    #[arg(long, value_name = "TIME|LENGTH")]
    pub until: Option<String>,
    /// Each VM's first this-long is warm-up, not scored.
    #[arg(long, default_value = "1d", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Output format. Per resource, every format shows slack (mean of (recommended − used) /
    /// recommended: negative on a short step with no lower bound, so missing deeper lowers it),
    /// over (the same with a short step counting 0: over-sizing only), short (share of steps
    /// with used > recommended), miss × (mean used / recommended over the short steps; a short
    /// step with nothing recommended is left out of it), cost and changes per VM-day; JSON
    /// names them `slack`, `oversize`, `shortfall`, `short_depth` (null when no step is
    /// short), `cost_ratio`, `changes_per_vm_day`.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the frontier chart (slack against shortfall, CPU and memory) as SVG here.
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<PathBuf>,
    /// The largest shortfall (%) at which the best setting of each sweep is picked.
    #[arg(long, default_value_t = 1.0, value_name = "PERCENT")]
    pub max_shortfall: f64,
    /// Skip the frontier sweeps (score the recommenders as configured and the oracle only).
    #[arg(long)]
    pub no_sweep: bool,
    /// The VPA's target percentile, CPU and memory (upstream: 0.9).
    #[arg(long, default_value_t = 0.9)]
    pub vpa_target_percentile: f64,
    /// The VPA's safety margin, a fraction added to every estimate (upstream: 0.15).
    #[arg(long, default_value_t = 0.15)]
    pub vpa_margin: f64,
    /// The VPA's histogram decay half-life, CPU and memory (upstream: 24h).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub vpa_half_life: Duration,
    /// The VPA's memory aggregation interval: one memory peak per interval (upstream: 24h).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub vpa_memory_interval: Duration,
    /// The VPA's first CPU histogram bucket, cores (0.01 up to VPA 1.3; 0.001 since).
    #[arg(long, default_value_t = 0.01)]
    pub vpa_cpu_first_bucket: f64,
    /// Hoist's recommender: the share of steps short (%) it keeps the VMs at, CPU and memory
    /// each. It weighs a short step against slack at a price shared by the VMs, which moves
    /// every hour by how many of their steps were short, so over time that share is the
    /// target's on any panel (swept from 0.1 to 5).
    #[arg(long, default_value_t = hoist::DEFAULT_TARGET, value_name = "PERCENT", conflicts_with = "hoist_price")]
    pub hoist_target: f64,
    /// Hoist's recommender at a fixed price of a short step instead, in steps of slack, CPU
    /// and memory: higher means fewer short steps and more slack (swept from 4 to 40). How many
    /// steps a price leaves short depends on the panel.
    #[arg(long, value_name = "PRICE")]
    pub hoist_price: Option<f64>,
    /// The smallest CPU either recommender sizes a VM at, cores. Unset, each keeps its own:
    /// 0.025 (the VPA's `--pod-recommendation-min-cpu-millicores` of 25) for both. Kubernetes
    /// accepts requests down to 0.001. On a nearly idle VM the floor is most of the slack.
    #[arg(long, value_name = "CORES")]
    pub min_cpu: Option<f64>,
    /// The smallest memory either recommender sizes a VM at (`250MiB`, `16MiB`, bytes). Unset,
    /// each keeps its own: 250 MiB for the VPA (`--pod-recommendation-min-memory-mb`), 16 MiB
    /// for Hoist's. Lower floors lower the headline slack mostly by making short steps miss
    /// deeper: read over and miss × beside it.
    #[arg(long, value_name = "SIZE", value_parser = super::recommend::parse_size)]
    pub min_memory: Option<u64>,
}

/// The largest `--min-memory` taken, 64 TiB: more than the largest machine any cloud offers.
const MAX_MIN_MEMORY: u64 = 64 << 40;

fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = hoist_core::duration::parse_duration(text)?;
    if d.subsec_nanos() != 0 {
        return Err(format!("{text}: use whole seconds"));
    }
    Ok(d)
}

/// An RFC 3339 time, or a length after `start`.
fn parse_when(flag: &str, text: &str, start: i64) -> Result<i64, CliError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp());
    }
    match hoist_core::duration::parse_duration(text) {
        Ok(d) => Ok(start + i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)),
        Err(_) => Err(CliError::input(format!(
            "{flag} {text:?}: give an RFC 3339 time (2013-08-15T00:00:00Z) or a length after the panel's first step (46d)"
        ))),
    }
}

fn rfc3339(t: i64) -> String {
    Utc.timestamp_opt(t, 0).single().map_or_else(
        || t.to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

struct Sweep {
    name: String,
    setting: String,
    points: Vec<SweepPoint>,
}

/// Runs `hoist rightsize`.
pub fn run(args: Args) -> CliResult {
    let started = Instant::now();
    let config = VpaConfig {
        target_cpu_percentile: args.vpa_target_percentile,
        target_memory_percentile: args.vpa_target_percentile,
        safety_margin: args.vpa_margin,
        cpu_half_life_seconds: args.vpa_half_life.as_secs() as i64,
        memory_half_life_seconds: args.vpa_half_life.as_secs() as i64,
        memory_interval_seconds: args.vpa_memory_interval.as_secs() as i64,
        cpu_first_bucket: args.vpa_cpu_first_bucket,
        min_cpu_cores: args.min_cpu.unwrap_or(VpaConfig::default().min_cpu_cores),
        min_memory_bytes: args
            .min_memory
            .map_or(VpaConfig::default().min_memory_bytes, |b| b as f64),
        ..VpaConfig::default()
    };
    if let Some(cpu) = args.min_cpu
        && !(cpu.is_finite() && (0.001..=1024.0).contains(&cpu))
    {
        return Err(CliError::input(format!(
            "--min-cpu {cpu} must be a number of cores from 0.001 (Kubernetes' smallest request) to 1024"
        )));
    }
    if let Some(bytes) = args.min_memory
        && bytes > MAX_MIN_MEMORY
    {
        return Err(CliError::input(format!(
            "--min-memory {bytes} bytes is more than any machine has: give at most 64TiB"
        )));
    }
    config
        .validate()
        .map_err(|e| CliError::input(format!("--vpa-*: {e}")))?;
    if !(0.0..=100.0).contains(&args.max_shortfall) {
        return Err(CliError::input(format!(
            "--max-shortfall {} must be a percentage in [0, 100]",
            args.max_shortfall
        )));
    }
    if let Some(price) = args.hoist_price
        && !(price.is_finite() && price >= 0.1)
    {
        return Err(CliError::input(format!(
            "--hoist-price {price} must be a number of steps of slack, at least 0.1"
        )));
    }
    if !(args.hoist_target.is_finite() && args.hoist_target > 0.0 && args.hoist_target <= 100.0) {
        return Err(CliError::input(format!(
            "--hoist-target {} must be a percentage of steps short above 0 and at most 100",
            args.hoist_target
        )));
    }
    let panel = load_panel(&args.panel).map_err(CliError::input)?;
    let loaded = started.elapsed();
    let (first, last) = panel
        .span()
        .ok_or_else(|| CliError::input(format!("{}: no steps", args.panel.display())))?;
    let from = args
        .from
        .as_deref()
        .map(|t| parse_when("--from", t, first))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|t| parse_when("--until", t, first))
        .transpose()?;
    if let (Some(f), Some(u)) = (from, until)
        && f >= u
    {
        return Err(CliError::input(format!(
            "--from {} is not before --until {}",
            rfc3339(f),
            rfc3339(u)
        )));
    }
    let opts = ScoreOptions {
        from,
        until,
        warmup_seconds: args.warmup.as_secs() as i64,
        hold_seconds: 3600,
    };

    // The recommenders scored as rows; each plugs in as one more trait object.
    let recommenders: Vec<Box<dyn Recommender>> = vec![
        Box::new(Vpa::new(config.clone(), panel.columns.memory)),
        Box::new(
            match args.hoist_price {
                Some(price) => hoist::HoistRecommender::new(price, panel.columns.memory),
                None => {
                    hoist::HoistRecommender::with_target(args.hoist_target, panel.columns.memory)
                }
            }
            .with_floors(
                args.min_cpu.unwrap_or(hoist::MIN_CPU),
                args.min_memory.map_or(hoist::MIN_MEM, |b| b as f64),
            ),
        ),
    ];

    // Per recommender, its row's score and then its sweep's (a recommender that can follow
    // every value at once plays the panel once for its row and its whole sweep).
    let mut jobs = vec![Job::Oracle];
    let mut layout = Vec::new(); // (row, name, setting swept, sweep's first score)
    let mut next = 1;
    for r in recommenders {
        let setting = r.main_setting().filter(|_| !args.no_sweep);
        layout.push((next, r.name(), setting.clone(), next + 1));
        match setting {
            Some(setting) => {
                jobs.extend(Job::with_sweep(r, &setting.sweep));
                next += 1 + setting.sweep.len();
            }
            None => {
                jobs.push(Job::Recommender(r));
                next += 1;
            }
        }
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let scores = score_all(&panel, jobs, &opts, threads);
    let mut rows: Vec<RightsizeScore> = scores[..1].to_vec();
    let mut sweeps = Vec::new();
    for (row, name, setting, start) in layout {
        rows.push(scores[row].clone());
        if let Some(setting) = setting {
            sweeps.push(Sweep {
                name,
                points: setting
                    .sweep
                    .iter()
                    .zip(&scores[start..start + setting.sweep.len()])
                    .map(|(&value, score)| SweepPoint {
                        value,
                        score: score.clone(),
                    })
                    .collect(),
                setting: setting.name,
            });
        }
    }
    if rows.first().is_none_or(|o| o.cpu.steps == 0) {
        return Err(CliError::input(format!(
            "{}: no step to score between {} and {} after each VM's {} warm-up",
            args.panel.display(),
            rfc3339(from.unwrap_or(first)),
            rfc3339(until.unwrap_or(last + panel.step_seconds)),
            hoist_core::duration::HumanDuration::from(args.warmup)
        )));
    }
    let elapsed = started.elapsed();

    let scored_from = from.unwrap_or(first).max(first);
    let scored_until = until.unwrap_or(last + panel.step_seconds);
    let context = Context {
        panel: &panel,
        file: args.panel.display().to_string(),
        scored_from,
        scored_until,
        warmup: args.warmup,
        max_shortfall: args.max_shortfall / 100.0,
        loaded,
        elapsed,
    };
    if let Some(path) = &args.chart {
        let lines: Vec<Line<'_>> = sweeps
            .iter()
            .map(|s| Line {
                name: &s.name,
                points: &s.points,
            })
            .collect();
        let svg = chart::frontier(
            &format!("{}: slack against shortfall", panel.name),
            &format!(
                "{} VMs · scored {} → {} · hourly recommendations held 1 h · sweeps of the {}",
                panel.vms.len(),
                rfc3339(scored_from),
                rfc3339(scored_until),
                sweeps
                    .iter()
                    .map(|s| format!("{} {}", s.name, s.setting))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &lines,
            &rows,
        );
        std::fs::write(path, svg)
            .map_err(|e| CliError::runtime(format!("cannot write {}: {e}", path.display())))?;
    }
    match args.format {
        Format::Json => {
            let value = serde_json::json!({
                "panel": {
                    "file": context.file,
                    "name": panel.name,
                    "format": panel.format,
                    "columns": panel.columns,
                    "vms": panel.vms.len(),
                    "rows": panel.rows,
                    "off_rows": panel.off_rows,
                    "step_seconds": panel.step_seconds,
                    "first": rfc3339(first),
                    "last": rfc3339(last),
                },
                "scored_from": rfc3339(scored_from),
                "scored_until": rfc3339(scored_until),
                "warmup_seconds": args.warmup.as_secs(),
                "hold_seconds": opts.hold_seconds,
                "vpa": config,
                "rows": rows,
                "sweeps": sweeps.iter().map(|s| serde_json::json!({
                    "recommender": s.name,
                    "setting": s.setting,
                    "points": s.points,
                    "best_cpu_within_max_shortfall": best_within(&s.points, context.max_shortfall, false).map(|p| p.value),
                    "best_memory_within_max_shortfall": best_within(&s.points, context.max_shortfall, true).map(|p| p.value),
                })).collect::<Vec<_>>(),
                "max_shortfall": context.max_shortfall,
                "seconds": elapsed.as_secs_f64(),
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&value).map_err(CliError::runtime)?
            );
        }
        Format::Table => print!("{}", render(&context, &rows, &sweeps, false)),
        Format::Markdown => print!("{}", render(&context, &rows, &sweeps, true)),
    }
    if let Some(path) = &args.chart
        && args.format != Format::Json
    {
        println!("\nchart written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

struct Context<'a> {
    panel: &'a Panel,
    file: String,
    scored_from: i64,
    scored_until: i64,
    warmup: Duration,
    max_shortfall: f64,
    loaded: Duration,
    elapsed: Duration,
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// How far short steps miss, `25.3 ×`, or `–` when none is.
fn depth(d: Option<f64>) -> String {
    d.map_or("–".into(), |d| format!("{d:.1} ×"))
}

fn resource_cells(r: Option<&ResourceScore>) -> [String; 6] {
    match r {
        None => std::array::from_fn(|_| "–".into()),
        Some(r) => [
            pct(r.slack),
            pct(r.oversize),
            format!("{:.2} %", r.shortfall * 100.0),
            depth(r.short_depth),
            r.cost_ratio.map_or("–".into(), |c| format!("{c:.3}")),
            format!("{:.2}", r.changes_per_vm_day),
        ],
    }
}

/// A table as aligned text or Markdown.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>], markdown: bool) {
    if markdown {
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(
            out,
            "|{}",
            header
                .iter()
                .enumerate()
                .map(|(i, _)| if i == 0 { "---|" } else { "---:|" })
                .collect::<String>()
        );
        for r in rows {
            let _ = writeln!(out, "| {} |", r.join(" | "));
        }
        return;
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths[i].saturating_sub(c.chars().count());
                if i == 0 {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for r in rows {
        let _ = writeln!(out, "{}", line(r.iter().map(String::as_str).collect()));
    }
}

fn render(c: &Context<'_>, rows: &[RightsizeScore], sweeps: &[Sweep], markdown: bool) -> String {
    let mut out = String::new();
    let p = c.panel;
    let (first, last) = p.span().unwrap_or((0, 0));
    let _ = writeln!(
        out,
        "Panel {} ({:?}): {} VMs, {} rows{}, {} s steps, {} → {}.",
        c.file,
        p.format,
        p.vms.len(),
        p.rows,
        if p.off_rows > 0 {
            format!(" ({} with the VM off, kept out as gaps)", p.off_rows)
        } else {
            String::new()
        },
        p.step_seconds,
        rfc3339(first),
        rfc3339(last)
    );
    let _ = writeln!(
        out,
        "Scored {} → {}, after each VM's first {} (warm-up); a recommendation every hour from the past only, held for the hour and scored on its steps. Slack = mean (recommended − used) / recommended, negative on a short step with no lower bound; over = the same with a short step counting 0 (over-sizing only); short = share of steps with used > recommended; miss × = mean used / recommended over the short steps; cost = Σ recommended / Σ given; changes per VM-day.\n",
        rfc3339(c.scored_from),
        rfc3339(c.scored_until),
        hoist_core::duration::HumanDuration::from(c.warmup)
    );
    let header = [
        "recommender",
        "CPU slack",
        "CPU over",
        "CPU short",
        "CPU miss ×",
        "CPU cost",
        "CPU chg/VM-d",
        "mem slack",
        "mem over",
        "mem short",
        "mem miss ×",
        "mem cost",
        "mem chg/VM-d",
    ];
    let cells = |name: String, s: &RightsizeScore| {
        let mut row = vec![name];
        row.extend(resource_cells(Some(&s.cpu)));
        row.extend(resource_cells(s.memory.as_ref()));
        row
    };
    let body: Vec<Vec<String>> = rows.iter().map(|s| cells(s.name.clone(), s)).collect();
    table(&mut out, &header, &body, markdown);
    let _ = writeln!(out);
    for s in rows {
        let _ = writeln!(
            out,
            "{}{}: {} ({} VMs, {:.1} VM-days scored{})",
            if markdown { "- " } else { "" },
            s.name,
            s.settings,
            s.vms,
            s.vm_days,
            if s.unsized_steps > 0 {
                format!(", {} steps without a recommendation yet", s.unsized_steps)
            } else {
                String::new()
            }
        );
    }
    for sw in sweeps {
        let _ = writeln!(
            out,
            "\n{}Frontier of {}: its {} swept\n",
            if markdown { "### " } else { "" },
            sw.name,
            sw.setting
        );
        let mut header = header.to_vec();
        header[0] = "setting";
        let body: Vec<Vec<String>> = sw
            .points
            .iter()
            .map(|pt| cells(format!("{}", pt.value), &pt.score))
            .collect();
        table(&mut out, &header, &body, markdown);
        let _ = writeln!(out);
        for (memory, label) in [(false, "CPU"), (true, "memory")] {
            if memory && !p.columns.memory {
                continue;
            }
            let best = best_within(&sw.points, c.max_shortfall, memory);
            let text = match best {
                None => format!("no setting is short on at most {}", pct(c.max_shortfall)),
                Some(pt) => {
                    let r = if memory {
                        pt.score.memory.as_ref()
                    } else {
                        Some(&pt.score.cpu)
                    };
                    let (slack, over, short, miss) = r
                        .map(|r| (r.slack, r.oversize, r.shortfall, r.short_depth))
                        .unwrap_or_default();
                    format!(
                        "{} {}: slack {}, over {}, short {:.2} %{}",
                        sw.setting,
                        pt.value,
                        pct(slack),
                        pct(over),
                        short * 100.0,
                        miss.map_or(String::new(), |d| format!(
                            ", the short steps missing by {d:.1} × on average"
                        ))
                    )
                }
            };
            let _ = writeln!(
                out,
                "{}best {label} at most {:.2} % short: {text}",
                if markdown { "- " } else { "" },
                c.max_shortfall * 100.0
            );
        }
    }
    if !sweeps.is_empty() {
        let _ = writeln!(
            out,
            "\nEach best setting above is picked on the part it is scored on: to judge one fairly, pick it on an earlier part (--until) and score it on a later one (--from)."
        );
    }
    let _ = writeln!(
        out,
        "\n{:.2} s ({:.2} s reading the panel).",
        c.elapsed.as_secs_f64(),
        c.loaded.as_secs_f64()
    );
    out
}
