//! `hoist forecast`: forecast accuracy on the test part of a trace, against daily and weekly
//! seasonal naive.
//!
//! The trace is split in time (a training fraction, or `--from`/`--until` for the test part).
//! By default the model is fitted at every step of the test part on the history before it (at
//! most `--max-history`), and its forecasts 1 h and 24 h ahead are scored with MASE and sMAPE,
//! next to seasonal naive on the same targets. `--rolling` scores instead on the protocol
//! forecasting libraries are compared on: an origin every `--every` (24 h), a fit on the
//! `--max-history` (14 days) before it, `--horizon` (48 h) ahead, MASE scaled per origin by the
//! fit window's in-sample weekly seasonal-naive error. `--report DIR` writes `forecast.svg`
//! (actual vs the 24 h forecast and its interval) and `forecast.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, TimeDelta, Utc};
use hoist_core::duration::parse_duration;
use hoist_core::forecast::backtest::{
    AccuracyReport, BacktestConfig, RollingConfig, RollingReport, RollingScores, backtest,
    resample, rolling_origin,
};
use hoist_core::forecast::chart::{Band, Chart, Line};
use hoist_core::forecast::{Candidate, ModelKind, SeasonalModelConfig};
use hoist_core::trace::{Trace, load_trace};

use super::{CliError, CliResult};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Markdown tables.
    Text,
    /// One JSON document.
    Json,
}

/// Options of `hoist forecast`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The trace (CSV `timestamp,value`, optionally gzip; timestamps in RFC 3339 or whole Unix
    /// seconds).
    #[arg(long, value_name = "FILE")]
    pub trace: PathBuf,
    /// Start of the test part (RFC 3339); the training part is everything before.
    #[arg(long, value_parser = parse_time, conflicts_with = "train_fraction")]
    pub from: Option<DateTime<Utc>>,
    /// End of the test part (RFC 3339, exclusive).
    #[arg(long, value_parser = parse_time, conflicts_with = "train_fraction")]
    pub until: Option<DateTime<Utc>>,
    /// Fraction of the trace used for training; the rest is the test part.
    #[arg(long, default_value_t = 0.7)]
    pub train_fraction: f64,
    /// The model: `auto` (the seasonal model, daily seasonal naive, the median of those two and
    /// weekly seasonal naive, or the median of yesterday, last week and the week before
    /// (`recent-median`), whichever erred least over the last 14 days, chosen separately up to 1 h,
    /// 6 h, 12 h, 21 h and beyond (beyond 21 h yesterday, unless another erred clearly less and
    /// by more than 15 %); past 6 h, the last two weeks scaled to the new level (with no daily
    /// or weekly cycle, the new level flat) when the last 6 h have all been far off their usual
    /// ratio to last week: `level-shift` in the report), `seasonal` or `seasonal-naive`.
    #[arg(long, default_value = "auto", value_parser = parse_model)]
    pub model: ModelKind,
    /// The step the model works at; a finer trace is resampled (mean per step).
    #[arg(long, default_value = "1h", value_parser = parse_delta)]
    pub step: TimeDelta,
    /// History fitted at each origin.
    #[arg(long, default_value = "14d", value_parser = parse_delta)]
    pub max_history: TimeDelta,
    /// Quantile of the upper prediction bound.
    #[arg(long, default_value_t = 0.9)]
    pub quantile: f64,
    /// Score on rolling origins instead: one every `--every` over the test part, each fitted on
    /// the `--max-history` before it and forecasting `--horizon` ahead, MASE scaled per origin
    /// by the fit window's in-sample weekly seasonal-naive error (the protocol statsmodels and
    /// Prophet are compared on).
    #[arg(long)]
    pub rolling: bool,
    /// With `--rolling`: spacing of the origins.
    #[arg(long, default_value = "24h", value_parser = parse_delta, requires = "rolling")]
    pub every: TimeDelta,
    /// With `--rolling`: how far each forecast reaches.
    #[arg(long, default_value = "48h", value_parser = parse_delta, requires = "rolling")]
    pub horizon: TimeDelta,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Write `forecast.svg` and `forecast.md` into this directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
}

/// Runs `hoist forecast`.
pub fn run(args: Args) -> CliResult {
    if !(args.quantile > 0.5 && args.quantile < 1.0) {
        return Err(CliError::input("--quantile must be in (0.5, 1)"));
    }
    if !(args.train_fraction > 0.0 && args.train_fraction < 1.0) {
        return Err(CliError::input("--train-fraction must be in (0, 1)"));
    }
    let trace = load(&args.trace, args.step)?;
    let train_steps = match args.from {
        Some(from) => trace.window(None, Some(from)).len(),
        None => (trace.len() as f64 * args.train_fraction).round() as usize,
    };
    let trace = match args.until {
        Some(until) => trace.window(None, Some(until)),
        None => trace,
    };
    if train_steps == 0 || train_steps >= trace.len() {
        return Err(CliError::input(format!(
            "{}: the split leaves no training or no test part ({} of {} steps for training)",
            args.trace.display(),
            train_steps,
            trace.len()
        )));
    }
    if args.rolling {
        return run_rolling(&args, &trace, train_steps);
    }
    let config = BacktestConfig {
        model: args.model,
        seasonal: SeasonalModelConfig {
            upper_quantile: args.quantile,
            ..SeasonalModelConfig::default()
        },
        max_history: args.max_history,
        ..BacktestConfig::default()
    };
    let report = backtest(&trace.values, trace.start, trace.step, train_steps, &config);
    if report.horizons.iter().all(|h| h.targets == 0) {
        return Err(CliError::input(format!(
            "{}: nothing to score: the test part has no value with at least {} h of history before it",
            args.trace.display(),
            config.min_history.num_hours()
        )));
    }
    let markdown = markdown(&trace, &args, &report);
    match args.output {
        OutputFormat::Text => print!("{markdown}"),
        OutputFormat::Json => {
            let json = serde_json::json!({
                "trace": trace.name,
                "model": args.model,
                "quantile": args.quantile,
                "step_seconds": report.step.num_seconds(),
                "train_steps": report.train_steps,
                "test_steps": report.test_steps,
                "test_from": trace.at(report.train_steps),
                "seasonality": report.seasonality,
                "naive_period_steps": report.naive_period_steps,
                "mase_scale": report.mase_scale,
                "horizons": report.horizons.iter().map(|h| serde_json::json!({
                    "horizon_hours": h.horizon.num_minutes() as f64 / 60.0,
                    "targets": h.targets,
                    "model": h.model,
                    "seasonal_naive": h.seasonal_naive,
                    "daily_naive": h.daily_naive,
                    "weekly_naive": h.weekly_naive,
                    "chosen": chosen_json(&h.chosen),
                })).collect::<Vec<_>>(),
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&json).map_err(CliError::runtime)?
            );
        }
    }
    if let Some(dir) = &args.report {
        let chart = chart(&trace, &args, &report);
        write_report(
            dir,
            "forecast",
            &chart.to_svg(),
            &format!("{markdown}\n![actual vs forecast](forecast.svg)\n"),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn markdown(trace: &Trace, args: &Args, report: &AccuracyReport) -> String {
    let mut md = String::new();
    let hours = |d: TimeDelta| d.num_minutes() as f64 / 60.0;
    let _ = writeln!(md, "# Forecast accuracy: {}\n", trace.name);
    let _ = writeln!(
        md,
        "Model `{}` against seasonal naive (period {} steps), step {} h, history up to {} d, \
         test part from {} ({} steps, {} for training). Seasonality found in training: {}. \
         MASE scale (in-sample seasonal-naive error): {}.\n",
        args.model,
        report.naive_period_steps,
        hours(report.step),
        args.max_history.num_days(),
        trace.at(report.train_steps).format("%Y-%m-%d %H:%M"),
        report.test_steps,
        report.train_steps,
        describe_periods(&report.seasonality.periods(), report.step),
        report
            .mase_scale
            .map_or("undefined".to_owned(), |s| format!("{s:.4}")),
    );
    let _ = writeln!(
        md,
        "| horizon | targets | MASE model | MASE naive | MASE daily naive | MASE weekly naive | sMAPE model % | sMAPE naive % | upper q{:.0} coverage |",
        args.quantile * 100.0
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
    for h in &report.horizons {
        let _ = writeln!(
            md,
            "| {} h | {} | {} | {} | {} | {} | {} | {} | {} |",
            hours(h.horizon),
            h.targets,
            f(h.model.mase),
            f(h.seasonal_naive.mase),
            f(h.daily_naive.mase),
            f(h.weekly_naive.mase),
            f(h.model.smape_percent),
            f(h.seasonal_naive.smape_percent),
            h.model
                .upper_coverage
                .map_or("-".to_owned(), |c| format!("{:.1} %", c * 100.0)),
        );
    }
    for h in report.horizons.iter().filter(|h| !h.chosen.is_empty()) {
        let _ = writeln!(
            md,
            "\n`auto` {} h ahead used: {}.",
            hours(h.horizon),
            describe_chosen(&h.chosen)
        );
    }
    md
}

/// `seasonal 80 %, daily-naive 20 %`.
fn describe_chosen(chosen: &[(Candidate, usize)]) -> String {
    let total: usize = chosen.iter().map(|(_, n)| n).sum();
    chosen
        .iter()
        .map(|(c, n)| format!("{c} {:.0} %", *n as f64 * 100.0 / total.max(1) as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

fn chosen_json(chosen: &[(Candidate, usize)]) -> serde_json::Value {
    chosen
        .iter()
        .map(|(c, n)| (c.as_str().to_owned(), serde_json::json!(n)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// `hoist forecast --rolling`.
fn run_rolling(args: &Args, trace: &Trace, train_steps: usize) -> CliResult {
    let config = RollingConfig {
        model: args.model,
        seasonal: SeasonalModelConfig {
            upper_quantile: args.quantile,
            ..SeasonalModelConfig::default()
        },
        every: args.every,
        history: args.max_history,
        horizon: args.horizon,
    };
    let report = rolling_origin(&trace.values, trace.step, train_steps, &config);
    if report.origins == 0 {
        return Err(CliError::input(format!(
            "{}: no origin to score: each needs {} d of history before it and {} h of the trace after it (the test part starts at {})",
            args.trace.display(),
            args.max_history.num_days(),
            args.horizon.num_hours(),
            trace.at(train_steps).format("%Y-%m-%d %H:%M"),
        )));
    }
    let markdown = rolling_markdown(trace, args, train_steps, &report);
    match args.output {
        OutputFormat::Text => print!("{markdown}"),
        OutputFormat::Json => {
            let json = serde_json::json!({
                "trace": trace.name,
                "protocol": "rolling-origin",
                "model": args.model,
                "step_seconds": trace.step.num_seconds(),
                "test_from": trace.at(train_steps),
                "every_hours": args.every.num_minutes() as f64 / 60.0,
                "history_days": args.max_history.num_minutes() as f64 / 1440.0,
                "horizon_hours": args.horizon.num_minutes() as f64 / 60.0,
                "origins": report.origins,
                "skipped": report.skipped,
                "model_scores": report.model,
                "daily_naive": report.daily_naive,
                "weekly_naive": report.weekly_naive,
                "chosen": chosen_json(&report.chosen),
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&json).map_err(CliError::runtime)?
            );
        }
    }
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir).map_err(|e| {
            CliError::runtime(format!(
                "{}: cannot create the report directory: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join("forecast.md");
        std::fs::write(&path, &markdown)
            .map_err(|e| CliError::runtime(format!("{}: cannot write: {e}", path.display())))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn rolling_markdown(
    trace: &Trace,
    args: &Args,
    train_steps: usize,
    report: &RollingReport,
) -> String {
    let mut md = String::new();
    let hours = |d: TimeDelta| d.num_minutes() as f64 / 60.0;
    let _ = writeln!(
        md,
        "# Forecast accuracy on rolling origins: {}
",
        trace.name
    );
    let _ = writeln!(
        md,
        "An origin every {} h from {} ({} scored, {} skipped), each fitted on the {} d before it \
         and forecasting {} h ahead at a step of {} h; MASE is each origin's mean absolute error \
         over the horizon ÷ its fit window's in-sample weekly seasonal-naive error.\n",
        hours(args.every),
        trace.at(train_steps).format("%Y-%m-%d %H:%M"),
        report.origins,
        report.skipped,
        args.max_history.num_minutes() as f64 / 1440.0,
        hours(args.horizon),
        hours(trace.step),
    );
    let _ = writeln!(md, "| forecaster | MASE mean | MASE median | sMAPE % |");
    let _ = writeln!(md, "|---|---|---|---|");
    let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
    let row = |md: &mut String, name: &str, s: &RollingScores| {
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} |",
            f(s.mase_mean),
            f(s.mase_median),
            f(s.smape_percent)
        );
    };
    row(&mut md, &format!("`{}`", args.model), &report.model);
    row(&mut md, "daily seasonal naive", &report.daily_naive);
    row(&mut md, "weekly seasonal naive", &report.weekly_naive);
    if !report.chosen.is_empty() {
        let _ = writeln!(md, "\n`auto` used: {}.", describe_chosen(&report.chosen));
    }
    md
}

fn describe_periods(periods: &[usize], step: TimeDelta) -> String {
    if periods.is_empty() {
        return "none".to_owned();
    }
    periods
        .iter()
        .map(|p| format!("{} h", (step * *p as i32).num_hours()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn chart(trace: &Trace, args: &Args, report: &AccuracyReport) -> Chart {
    Chart {
        title: format!(
            "{}: actual vs forecast 24 h ahead ({})",
            trace.name, args.model
        ),
        y_label: "value".to_owned(),
        bands: vec![Band {
            label: format!("interval q{:.0}", args.quantile * 100.0),
            colour: "#1f77b4".to_owned(),
            points: report
                .chart
                .iter()
                .filter_map(|p| p.forecast.map(|(_, lower, upper)| (p.at, lower, upper)))
                .collect(),
        }],
        lines: vec![
            Line {
                label: "actual".to_owned(),
                colour: "#222".to_owned(),
                points: report.chart.iter().map(|p| (p.at, p.actual)).collect(),
                dashed: false,
            },
            Line {
                label: "forecast".to_owned(),
                colour: "#1f77b4".to_owned(),
                points: report
                    .chart
                    .iter()
                    .map(|p| (p.at, p.forecast.map(|f| f.0)))
                    .collect(),
                dashed: false,
            },
            Line {
                label: "seasonal naive".to_owned(),
                colour: "#ff7f0e".to_owned(),
                points: report
                    .chart
                    .iter()
                    .map(|p| (p.at, p.seasonal_naive))
                    .collect(),
                dashed: true,
            },
        ],
        thresholds: Vec::new(),
    }
}

/// Loads a trace and resamples it to `step` when it is finer.
pub(crate) fn load(path: &Path, step: TimeDelta) -> Result<Trace, CliError> {
    let trace = load_trace(path).map_err(CliError::input)?;
    if trace.step >= step {
        return Ok(trace);
    }
    let (start, values) =
        resample(trace.start, trace.step, &trace.values, step).ok_or_else(|| {
            CliError::input(format!(
                "{}: --step {} is not a multiple of the trace's step {} s",
                path.display(),
                step.num_seconds(),
                trace.step.num_seconds()
            ))
        })?;
    Ok(Trace {
        name: trace.name,
        step,
        start,
        values,
    })
}

/// Writes `<name>.svg` and `<name>.md` into `dir` (created if needed).
pub(crate) fn write_report(
    dir: &Path,
    name: &str,
    svg: &str,
    markdown: &str,
) -> Result<(), CliError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        CliError::runtime(format!(
            "{}: cannot create the report directory: {e}",
            dir.display()
        ))
    })?;
    for (file, text) in [
        (format!("{name}.svg"), svg),
        (format!("{name}.md"), markdown),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, text)
            .map_err(|e| CliError::runtime(format!("{}: cannot write: {e}", path.display())))?;
    }
    Ok(())
}

/// Parses an RFC 3339 time.
pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("invalid time \"{text}\" ({e}); write e.g. 2009-07-01T00:00:00Z"))
}

/// Parses a duration like `1h` or `14d`.
pub(crate) fn parse_delta(text: &str) -> Result<TimeDelta, String> {
    let duration = parse_duration(text)?;
    let delta = TimeDelta::from_std(duration)
        .map_err(|e| format!("duration \"{text}\" out of range: {e}"))?;
    if delta <= TimeDelta::zero() {
        return Err(format!("duration \"{text}\" must be positive"));
    }
    Ok(delta)
}

fn parse_model(text: &str) -> Result<ModelKind, String> {
    text.parse()
        .map_err(|e: hoist_core::Error| e.message().to_owned())
}
