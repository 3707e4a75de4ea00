//! The `hoist` reference binary: command-line wiring only. Each subcommand lives in `cmd/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` that ends the process quietly when standard output is a closed pipe
/// (see [`out`]).
macro_rules! println {
    () => {
        $crate::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that ends the process quietly when standard output is a closed pipe (see [`out`]).
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*))
    };
}

mod cmd;
mod out;
mod providers;

/// Hoist: one policy engine for every cloud.
#[derive(Debug, Parser)]
#[command(name = "hoist", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the autoscaler on a policy file (virtual time on the simulated cloud).
    Run(cmd::run::Args),
    /// Evaluate every group once in dry run and show what would change.
    Plan(cmd::plan::Args),
    /// Check policy files; exit 0 when all are valid, 2 otherwise.
    Validate(cmd::validate::Args),
    /// Print the JSON Schema of the policy file format.
    Schema(cmd::schema::Args),
    /// Replay a trace through a policy or baseline and score it.
    Simulate(cmd::simulate::Args),
    /// Score policies and baselines on many traces against the oracles.
    Evaluate(cmd::evaluate::Args),
    /// Measure forecast accuracy on a trace.
    Forecast(cmd::forecast::Args),
    /// Plan capacity for the coming weeks from a group's history.
    Capacity(cmd::capacity::Args),
    /// Report what groups cost and where budgets stand, from the cost ledger of `hoist run`.
    ///
    /// Reads the cost ledger of a policy file (JSON lines written by `hoist run`) and reports, as
    /// of the report time (`--at`, default the ledger's last record), for every group, every
    /// provider and in total: the run rate per hour (the latest hourly cost), the spend so far
    /// in the period (`--period`, default the calendar month, UTC), the forecast to the period's
    /// end (spend so far plus the mean hourly spend of the trailing 24 h, or of what there is
    /// when less, times the hours left), and the cost per 1,000 units of work where the group
    /// reports its work (`cost.work_metric`: the period's spend over the units done). Then every
    /// budget's latest state at or before the report time: amount, spent and forecast with
    /// their share of the amount, the rung it is on (or inside), the thresholds crossed, and
    /// the exchange rate and its date when the amount was converted.
    ///
    /// Spend is taken from the meter's cumulative figure as the increments between consecutive
    /// records of each run, so several runs appended to one ledger add up. Lines of the ledger
    /// that cannot be read are skipped and counted in a note.
    ///
    /// When the ledger does not exist and every provider of the policy is `simulated`, the
    /// policy is first run on the simulated cloud for its `run.duration` of virtual time (as
    /// `hoist run -q` would), writing the ledger. With real providers, run `hoist run FILE`
    /// first, or point `--ledger` at a ledger written elsewhere.
    ///
    /// `--chart FILE.svg` draws spend against each budget over its period; `--focus FILE.csv`
    /// exports the spend as FinOps FOCUS 1.1 cost and usage rows, one per group per hour.
    Cost(cmd::cost::Args),
    /// Score rightsizing recommenders (the Kubernetes VPA, Hoist's, the hourly oracle) on a per-VM
    /// panel.
    ///
    /// Every VM gets a CPU and memory size every hour (UTC) from its past usage only; the size is
    /// held for the hour and scored on the steps that follow, after a warm-up (`--warmup`, each
    /// VM's first day). Per resource: slack (mean of (recommended − used) / recommended,
    /// negative on a short step), shortfall (share of steps with used > recommended), over
    /// (slack counting over-sizing only: a short step counts 0), miss × (how many times its size
    /// a short step used, on average: deep misses lower the slack, not the over), cost
    /// (Σ recommended / Σ what the VMs were given) and changes per VM-day. The hourly oracle (each hour's own peak) is scored
    /// beside them, and each recommender's main setting (the VPA's target percentile, Hoist's
    /// target share of steps short, `--hoist-target`, default 0.9 %) is swept for a frontier of
    /// slack against shortfall (`--chart FILE.svg`).
    ///
    /// `--from`/`--until` score a window (RFC 3339, or a length after the panel's first step
    /// such as `46d`); steps before `--from` are history. Panel formats: the Bitbrains one
    /// (`timestamp,vm,cores,cpu_capacity_mhz,cpu_usage_mhz,mem_capacity_kb,mem_usage_kb`) and a
    /// generic long CSV `timestamp,vm,cpu_used[,cpu_capacity][,mem_used,mem_capacity]` (CPU in
    /// cores, memory in bytes), plain or gzip; timestamps in RFC 3339 or whole Unix seconds.
    Rightsize(cmd::rightsize::Args),
    /// Recommend how to spend less on each group of a policy file, from its history.
    ///
    /// On the simulated cloud the history is made by replaying the policy in virtual time over
    /// `--history` (default 7d). A group on a real provider is read over the last `--history`
    /// from its metrics source: its utilisation, and its in-service instance count from
    /// `--instances-query`, its `metrics.queries.in_service_instances`, or the source's default
    /// (CloudWatch `GroupInServiceInstances`, Prometheus `hoist_group_ready_instances`); read
    /// only, nothing changes. Per group: rightsizing (the cheapest class
    /// and count that carry the peak load at the target utilisation, across families, and the
    /// monthly saving of the class following the load), idle capacity (stretches below
    /// `--idle-below` for at least `--idle-for`), an off-hours schedule the weekly profile
    /// supports as `scheduled` policies ready to paste, and whether spot suits the group (from
    /// its instances' lifetimes). Money is in the catalog's currency, rounded to the cent; a
    /// month is 730 hours. `--format table|markdown|json`.
    Recommend(cmd::recommend::Args),
    /// Answer where work should run: serve a policy file's `routes:` over HTTP.
    ///
    /// Loads the policy file, builds its providers, and every `--refresh` describes each routed
    /// pool's member groups and routes to their running instances (weighted by vCPUs). A
    /// request's kind, labels and declared needs pick the pool (the first matching rule);
    /// within it, a session stays on its instance unless the instance is at its load bound
    /// (consistent hashing with bounded loads), and other work goes to the less loaded of two
    /// random instances (power of two choices). `hoist route bench` measures a running
    /// endpoint.
    Route(cmd::route::Args),
    /// Inspect provider plugins.
    #[command(subcommand)]
    Plugins(cmd::plugins::Command),
    /// Generate synthetic demand traces (cycles, trend, level shifts, flash crowds, outages,
    /// Poisson noise) for `simulate` and `evaluate`.
    #[command(subcommand)]
    Trace(cmd::trace::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cmd::run::run(args),
        Command::Plan(args) => cmd::plan::run(args),
        Command::Validate(args) => cmd::validate::run(args),
        Command::Schema(args) => cmd::schema::run(args),
        Command::Simulate(args) => cmd::simulate::run(args),
        Command::Evaluate(args) => cmd::evaluate::run(args),
        Command::Forecast(args) => cmd::forecast::run(args),
        Command::Capacity(args) => cmd::capacity::run(args),
        Command::Cost(args) => cmd::cost::run(args),
        Command::Rightsize(args) => cmd::rightsize::run(args),
        Command::Recommend(args) => cmd::recommend::run(args),
        Command::Route(args) => cmd::route::run(args),
        Command::Plugins(command) => cmd::plugins::run(command),
        Command::Trace(command) => cmd::trace::run(command),
    };
    match result {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}
