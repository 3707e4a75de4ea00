//! `hoist trace generate`: synthetic demand traces from a spec (daily and weekly cycles, trend,
//! level shifts, flash crowds, outages, a random walk, Poisson noise), one from a spec file or a
//! whole built-in suite, written as `timestamp,value` CSV files that `hoist simulate --trace` and
//! `hoist evaluate --traces` read. The generator is `hoist_core::eval::tracegen`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hoist_core::eval::tracegen::{self, SUITES, TraceSpec};

use super::{CliError, CliResult};

/// The long help of `hoist trace generate`: every field of a spec.
const GENERATE_HELP: &str = "\
Generate synthetic demand traces with the features real loads have, each one a parameter.

`--suite standard --out DIR` writes every trace of the built-in suite as DIR/<name>.csv and an
index DIR/suite.json (each trace's file, spec, rows, gaps, mean and peak);
docs/guides/generated-traces.md lists the suite. `--spec FILE --out FILE.csv` writes one trace
from a spec file (YAML, or JSON when the file ends in .json); when --out is a folder, the file is
<name>.csv in it. The files are `timestamp,value` CSV with RFC 3339 UTC timestamps, one row per
step, missing steps absent: what `hoist simulate --trace` and `hoist evaluate --traces` read.
The same spec and seed give the same file, byte for byte.

The value at each step is

  base · daily · weekly · trend · level shifts · (1 + Σ flash crowd excess) · exp(random walk)

(at most 1e15), then Poisson noise, then outages. Times of day and days of the week are UTC.

Spec fields (durations are strings such as \"90s\", \"15m\", \"2h\", \"21d\", \"26d9h\"; `at` is
counted from `start`):

  name            the trace's name and file name: 1-64 of letters, digits, '-', '_', '.'
  description     one sentence (optional)
  start           first timestamp, RFC 3339 (default 2024-01-01T00:00:00Z, a Monday)
  days            length in days, 1 to 730
  step_minutes    1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60 (default 5)
  base            the level the factors multiply, in the trace's unit, 0 < base <= 1e12
  daily           the daily cycle, one of:
                    harmonics: [{order, amplitude, peak_hour}, ...]  1 to 24 cosines; factor
                      1 + Σ amplitude·cos(2π·order·(hour − peak_hour)/24), 0 where negative;
                      order 1-12 (cycles a day), amplitude 0-10, peak_hour in [0, 24)
                    hourly: [24 factors]  factor at each hour h:00, linear in between, each
                      0-1000, not all 0
  weekly          the weekly cycle, one of:
                    weekend_factor: F  Saturday and Sunday times F (0-100)
                    profile: [7 factors]  Monday to Sunday, each 0-100, not all 0
  trend_per_week  linear trend as a share of base per week, -1 to 10 (0.05: +5 % a week)
  level_shifts    [{at, factor, duration, ramp}]  level times factor (0-1000) from `at`, for
                    `duration` (leave out: to the end), reached linearly over `ramp` (default 0,
                    at most 30d) and left the same way: holidays, launches
  flash_crowds    [{at, onset, peak, hold, duration}]  the load rises linearly to `peak` (1-1000)
                    times what it would be over `onset`, stays for `hold` (default 0), falls back
                    linearly until `duration` (at most 30d, at least onset + hold) after `at`;
                    overlapping crowds add their excess
  outages         [{at, duration, kind}]  kind `missing` (default): the rows are absent (a gap;
                    not at the first or last step, at most half the trace); `zero`: written as 0
  random_walk     {sd_per_hour, reversion_per_day}  the log level wanders by sd_per_hour (0-2)
                    over an hour, pulled back by reversion_per_day (0-1000; 0: a pure walk)
  noise           none (default), or poisson: {counts_per_unit: K}  each value is a Poisson
                    count of mean value·K, divided by K (K in (0, 1e9]; K = 1: the values are
                    counts, variance = mean)
  seed            seed of the noise and the random walk (default 0)

Each list holds at most 10,000 entries. A spec that breaks a range is refused with the file and
the field (`flash_crowds[2].peak`).

Example spec (YAML):

  name: shop
  days: 35
  base: 400
  daily: {harmonics: [{order: 1, amplitude: 0.6, peak_hour: 20}]}
  weekly: {weekend_factor: 1.3}
  level_shifts: [{at: 21d, factor: 0.6, duration: 3d}]
  flash_crowds: [{at: 28d19h, onset: 5m, peak: 6, hold: 20m, duration: 2h}]
  outages: [{at: 10d3h, duration: 2h}]
  noise: {poisson: {counts_per_unit: 1}}
  seed: 7";

/// `hoist trace` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Generate synthetic demand traces: a built-in suite, or one trace from a spec file.
    #[command(long_about = GENERATE_HELP)]
    Generate(GenerateArgs),
}

/// Options of `hoist trace generate`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["suite", "spec"])))]
pub struct GenerateArgs {
    /// A built-in suite: writes every trace as `<name>.csv` into the folder `--out` (created if
    /// needed), with the index `suite.json`. Suites: standard.
    #[arg(long, value_name = "NAME")]
    pub suite: Option<String>,
    /// A spec file of one trace (YAML, or JSON when it ends in `.json`); writes it to `--out`.
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Where to write: a folder for `--suite`; a CSV file (or a folder, which gets
    /// `<name>.csv`) for `--spec`. Existing files are replaced.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// Replace the seed of every spec with this one (other noise, same shapes).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Runs `hoist trace`.
pub fn run(command: Command) -> CliResult {
    match command {
        Command::Generate(args) => generate(args),
    }
}

/// The largest spec file read.
const MAX_SPEC_BYTES: u64 = 16 << 20;

/// Reads and checks a spec file, naming the file (and the field or line) on error.
fn read_spec(path: &Path) -> Result<TraceSpec, CliError> {
    let limits = hoist_core::input::ReadLimits {
        max_bytes: MAX_SPEC_BYTES,
        max_line_bytes: 1 << 20,
        gzip: false,
    };
    let file = path.display();
    let text = hoist_core::input::read_file(path, limits).map_err(CliError::input)?;
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let spec: TraceSpec = if json {
        serde_json::from_str(&text).map_err(|e| CliError::input(format!("{file}: {e}")))?
    } else {
        serde_saphyr::from_str(&text).map_err(|e| {
            let e = e.to_string();
            CliError::input(format!(
                "{file}: {}",
                e.strip_prefix("error: ").unwrap_or(&e)
            ))
        })?
    };
    spec.validate()
        .map_err(|e| CliError::input(format!("{file}: {e}")))?;
    Ok(spec)
}

/// What was written for one trace.
#[derive(Debug, serde::Serialize)]
struct Written {
    file: String,
    name: String,
    summary: String,
    steps: usize,
    rows: usize,
    gaps: usize,
    mean: f64,
    peak: f64,
    spec: TraceSpec,
}

/// Generates `spec` into `path`.
fn write_trace(spec: &TraceSpec, path: &Path) -> Result<Written, CliError> {
    let rows = tracegen::generate(spec)
        .map_err(|e| CliError::input(format!("trace {}: {e}", spec.name)))?;
    let csv = tracegen::to_csv(spec, &rows);
    std::fs::write(path, csv)
        .map_err(|e| CliError::runtime(format!("{}: cannot write: {e}", path.display())))?;
    let sum: f64 = rows.iter().map(|(_, v)| v).sum();
    Ok(Written {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        name: spec.name.clone(),
        summary: spec.summary(),
        steps: spec.steps(),
        rows: rows.len(),
        gaps: spec.steps() - rows.len(),
        mean: sum / rows.len().max(1) as f64,
        peak: rows.iter().map(|(_, v)| *v).fold(0.0, f64::max),
        spec: spec.clone(),
    })
}

fn print_written(written: &Written, path: &Path) {
    println!(
        "{:<20} {:>7} rows {:>5} gaps  mean {:>12.3}  peak {:>12.3}  {}",
        written.name,
        written.rows,
        written.gaps,
        written.mean,
        written.peak,
        path.display()
    );
}

fn generate(args: GenerateArgs) -> CliResult {
    match (&args.suite, &args.spec) {
        (Some(suite), None) => generate_suite(suite, &args.out, args.seed),
        (None, Some(spec)) => generate_one(spec, &args.out, args.seed),
        _ => Err(CliError::input("give one of --suite NAME or --spec FILE")),
    }
}

fn generate_one(spec_path: &Path, out: &Path, seed: Option<u64>) -> CliResult {
    let mut spec = read_spec(spec_path)?;
    if let Some(seed) = seed {
        spec.seed = seed;
    }
    let path = if out.is_dir() {
        out.join(format!("{}.csv", spec.name))
    } else {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                CliError::runtime(format!("{}: cannot create: {e}", parent.display()))
            })?;
        }
        out.to_owned()
    };
    let written = write_trace(&spec, &path)?;
    print_written(&written, &path);
    Ok(ExitCode::SUCCESS)
}

fn generate_suite(name: &str, out: &Path, seed: Option<u64>) -> CliResult {
    let Some(mut specs) = tracegen::suite(name) else {
        return Err(CliError::input(format!(
            "--suite {name}: unknown suite; the suites are: {}",
            SUITES.join(", ")
        )));
    };
    if out.exists() && !out.is_dir() {
        return Err(CliError::input(format!(
            "--out {}: is a file; --suite writes a folder of traces",
            out.display()
        )));
    }
    std::fs::create_dir_all(out)
        .map_err(|e| CliError::runtime(format!("{}: cannot create: {e}", out.display())))?;
    let mut traces = Vec::with_capacity(specs.len());
    for spec in &mut specs {
        if let Some(seed) = seed {
            spec.seed = seed;
        }
        let path = out.join(format!("{}.csv", spec.name));
        let written = write_trace(spec, &path)?;
        print_written(&written, &path);
        traces.push(written);
    }
    let index = serde_json::json!({
        "suite": name,
        "generated_by": format!("hoist {} (hoist trace generate --suite {name})", env!("CARGO_PKG_VERSION")),
        "format": "timestamp,value CSV, RFC 3339 UTC, one row per step, missing steps absent",
        "traces": traces,
    });
    let index_path = out.join("suite.json");
    let text = serde_json::to_string_pretty(&index)
        .map_err(|e| CliError::runtime(format!("cannot write the index: {e}")))?;
    std::fs::write(&index_path, text + "\n")
        .map_err(|e| CliError::runtime(format!("{}: cannot write: {e}", index_path.display())))?;
    println!("wrote {} traces and {}", traces.len(), index_path.display());
    Ok(ExitCode::SUCCESS)
}
