//! `hoist capacity`: capacity planning from a group's history (a trace file): the expected peak
//! and the instances needed per day for the next weeks, the growth trend, and when the group
//! reaches its maximum or its quota at that trend. Markdown or JSON; `--report DIR` adds
//! `capacity.svg` and `capacity.md`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{NaiveTime, TimeDelta};
use hoist_core::forecast::capacity::{CapacityConfig, CapacityPlan, plan};
use hoist_core::forecast::chart::{Band, Chart, Line, Threshold};

use super::forecast::{OutputFormat, load, parse_delta, write_report};
use super::{CliError, CliResult};

/// Options of `hoist capacity`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The group's history: a trace (CSV `timestamp,value`, optionally gzip; timestamps in RFC
    /// 3339 or whole Unix seconds).
    #[arg(
        value_name = "FILE",
        required_unless_present = "trace",
        conflicts_with = "trace"
    )]
    pub file: Option<PathBuf>,
    /// The same, as an option.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Work one instance serves, in the trace's unit.
    #[arg(long, conflicts_with = "peak_instances")]
    pub work_per_instance: Option<f64>,
    /// Instances the observed peak needed (sets the work per instance to peak / N).
    #[arg(long)]
    pub peak_instances: Option<u32>,
    /// The group's maximum size, instances.
    #[arg(long)]
    pub max: Option<u32>,
    /// The quota, instances.
    #[arg(long)]
    pub quota: Option<u32>,
    /// Weeks to plan.
    #[arg(long, default_value_t = 4)]
    pub weeks: u32,
    /// Quantile of the upper peak.
    #[arg(long, default_value_t = 0.9)]
    pub quantile: f64,
    /// Resample a finer trace to this step (mean per step) before taking daily peaks. The peaks
    /// are of these means: for a load that spikes within the step, plan on a finer one.
    #[arg(long, default_value = "1h", value_parser = parse_delta)]
    pub step: TimeDelta,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Write `capacity.svg` and `capacity.md` into this directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
}

/// Runs `hoist capacity`.
pub fn run(args: Args) -> CliResult {
    let Some(path) = args.file.clone().or(args.trace.clone()) else {
        return Err(CliError::input(
            "give the trace file (FILE or --trace FILE)",
        ));
    };
    if args.weeks == 0 || args.weeks > 520 {
        return Err(CliError::input("--weeks must be between 1 and 520"));
    }
    use hoist_core::input::{MAX_AMOUNT, MAX_INSTANCES};
    if args
        .work_per_instance
        .is_some_and(|w| !(w.is_finite() && (1e-6..=MAX_AMOUNT).contains(&w)))
    {
        return Err(CliError::input(format!(
            "--work-per-instance must be in [1e-6, {MAX_AMOUNT:e}]"
        )));
    }
    if args.peak_instances == Some(0) {
        return Err(CliError::input("--peak-instances must be at least 1"));
    }
    for (flag, n) in [
        ("--peak-instances", args.peak_instances),
        ("--max", args.max),
        ("--quota", args.quota),
    ] {
        if let Some(n) = n
            && n > MAX_INSTANCES
        {
            return Err(CliError::input(format!(
                "{flag} {n} is above the limit of {MAX_INSTANCES} instances a group may have"
            )));
        }
    }
    let trace = load(&path, args.step)?;
    let observed_peak = trace
        .max()
        .ok_or_else(|| CliError::input(format!("{}: no data", path.display())))?;
    let work_per_instance = match (args.work_per_instance, args.peak_instances) {
        (Some(w), _) => Some(w),
        (None, Some(n)) if observed_peak > 0.0 => Some(observed_peak / f64::from(n)),
        (None, Some(_)) => {
            return Err(CliError::input(format!(
                "{}: the observed peak is not positive",
                path.display()
            )));
        }
        (None, None) => None,
    };
    if work_per_instance.is_none() && (args.max.is_some() || args.quota.is_some()) {
        return Err(CliError::input(
            "--max and --quota need --work-per-instance or --peak-instances to count instances",
        ));
    }
    let config = CapacityConfig {
        work_per_instance,
        max_instances: args.max,
        quota_instances: args.quota,
        weeks: args.weeks,
        quantile: args.quantile,
        ..CapacityConfig::default()
    };
    let result = plan(&trace.values, trace.start, trace.step, &config)
        .map_err(|e| CliError::input(format!("{}: {e}", path.display())))?;
    let markdown = markdown(&trace.name, trace.step, &args, work_per_instance, &result);
    match args.output {
        OutputFormat::Text => print!("{markdown}"),
        OutputFormat::Json => {
            let json = serde_json::json!({
                "trace": trace.name,
                "work_per_instance": work_per_instance,
                "max_instances": args.max,
                "quota_instances": args.quota,
                "quantile": args.quantile,
                "plan": result,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&json).map_err(CliError::runtime)?
            );
        }
    }
    if let Some(dir) = &args.report {
        let svg = chart(&trace.name, &args, work_per_instance, &result).to_svg();
        write_report(
            dir,
            "capacity",
            &svg,
            &format!("{markdown}\n![capacity](capacity.svg)\n"),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn markdown(
    name: &str,
    step: TimeDelta,
    args: &Args,
    work_per_instance: Option<f64>,
    plan: &CapacityPlan,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Capacity plan: {name}\n");
    let _ = writeln!(
        md,
        "History: {} days with data, observed peak {} (peaks are of {} means). Trend of daily peaks: {} per week ({:+.2} % per week).",
        plan.history.len(),
        readable(plan.observed_peak),
        hoist_core::duration::HumanDuration::from_secs(step.num_seconds().max(0).unsigned_abs()),
        signed(plan.trend.per_week),
        plan.trend.relative_per_week * 100.0
    );
    let _ = writeln!(
        md,
        "Next {} weeks: expected peak {}, upper peak (q{:.0}) {}{}.\n",
        args.weeks,
        readable(plan.expected_peak),
        args.quantile * 100.0,
        readable(plan.upper_peak),
        plan.peak_instances
            .map(|n| format!(
                ", needing {n} instances at {} per instance",
                readable(work_per_instance.unwrap_or(0.0))
            ))
            .unwrap_or_default()
    );
    for (what, limit, day) in [
        ("maximum", args.max, plan.reaches_max_on),
        ("quota", args.quota, plan.reaches_quota_on),
    ] {
        if let Some(limit) = limit {
            let _ = writeln!(
                md,
                "- The {what} of {limit} instances is {}.",
                day.map_or(
                    "not reached at this trend within 3 years".to_owned(),
                    |d| format!("exceeded on {d}")
                )
            );
        }
    }
    let _ = writeln!(
        md,
        "\n| day | expected peak | upper peak | instances |\n|---|---|---|---|"
    );
    for day in &plan.days {
        let _ = writeln!(
            md,
            "| {} {} | {} | {} | {} |",
            day.date,
            day.date.format("%a"),
            readable(day.expected_peak),
            readable(day.upper_peak),
            day.instances.map_or("-".to_owned(), |n| n.to_string())
        );
    }
    md
}

fn chart(name: &str, args: &Args, work_per_instance: Option<f64>, plan: &CapacityPlan) -> Chart {
    let noon = |d: chrono::NaiveDate| d.and_time(NaiveTime::MIN).and_utc() + TimeDelta::hours(12);
    let mut thresholds = Vec::new();
    if let Some(w) = work_per_instance {
        for (label, limit, colour) in [
            ("max", args.max, "#d62728"),
            ("quota", args.quota, "#9467bd"),
        ] {
            if let Some(limit) = limit {
                thresholds.push(Threshold {
                    label: format!("{label} ({limit} instances)"),
                    colour: colour.to_owned(),
                    value: f64::from(limit) * w,
                });
            }
        }
    }
    Chart {
        title: format!("{name}: daily peaks and the plan for {} weeks", args.weeks),
        y_label: "daily peak".to_owned(),
        lines: vec![
            Line {
                label: "observed".to_owned(),
                colour: "#222".to_owned(),
                points: plan
                    .history
                    .iter()
                    .map(|(d, p)| (noon(*d), Some(*p)))
                    .collect(),
                dashed: false,
            },
            Line {
                label: "expected".to_owned(),
                colour: "#1f77b4".to_owned(),
                points: plan
                    .days
                    .iter()
                    .map(|d| (noon(d.date), Some(d.expected_peak)))
                    .collect(),
                dashed: true,
            },
        ],
        bands: vec![Band {
            label: format!("up to q{:.0}", args.quantile * 100.0),
            colour: "#1f77b4".to_owned(),
            points: plan
                .days
                .iter()
                .map(|d| (noon(d.date), d.expected_peak, d.upper_peak))
                .collect(),
        }],
        thresholds,
    }
}

/// A load value for people: whole numbers from 1,000 up, one decimal from 10, three below (the
/// JSON keeps full precision).
fn readable(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// [`readable`] with its sign.
fn signed(v: f64) -> String {
    if v >= 0.0 {
        format!("+{}", readable(v))
    } else {
        readable(v)
    }
}
