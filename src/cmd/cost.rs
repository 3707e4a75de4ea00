//! `hoist cost`: what a policy's groups have cost, from the cost ledger `hoist run` writes: the
//! run rate, the spend so far in the period and where it will end, the cost of a unit of work,
//! and each budget's state; optionally a chart of spend against each budget and a FinOps FOCUS
//! export.
//!
//! # Spend
//!
//! The ledger's `metered_cost` is cumulative since a run of the autoscaler first observed the
//! group. Spend is taken as the increments between consecutive records of one (run, provider,
//! group), each spread evenly over the time between the two records, so several runs appended
//! to one ledger add up, and a figure "as of" a time counts only the part of an increment
//! before it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone as _, Timelike as _, Utc};
use hoist_core::budget::BudgetStatus;
use hoist_core::config::PolicyDocument;
use hoist_core::config::budget::{BudgetPeriod, Converter};
use hoist_core::events::{Event, EventSink};
use hoist_core::ledger::{CostLedger, GroupCostRecord, LedgerRecord};

use super::{CliError, CliResult, policy, run, runtime};

/// Options of `hoist cost` (its help is the doc comment of `Command::Cost` in `main.rs`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The cost ledger to read (default: the policy's `costs.ledger`, relative to the policy
    /// file, else `hoist-costs.jsonl` in the working directory: where `hoist run` writes it).
    #[arg(long, value_name = "PATH")]
    pub ledger: Option<PathBuf>,
    /// `table` for people, `markdown` for documents (Markdown tables), `json` for machines (one
    /// object with `groups`, `providers`, `total`, `budgets`, `currency`, `as_of`, and
    /// `exchange_rates_as_of` when rates are used).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Report as of this time (RFC 3339, e.g. 2026-03-02T12:00:00Z); later records are ignored.
    /// Default: the time of the ledger's last record.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<DateTime<Utc>>,
    /// The calendar period (UTC) of the groups' spend so far and forecast. Budgets keep their
    /// own periods.
    #[arg(long, value_enum, default_value_t = Period::Monthly)]
    pub period: Period,
    /// Write an SVG chart of spend against each budget over its period: the cumulative spend,
    /// the budget's amount as a horizontal line and the forecast as a dashed line from the report
    /// time to the period's end (the total spend of the period when there are no budgets).
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<PathBuf>,
    /// Write the spend as a FinOps FOCUS 1.1 cost and usage CSV: one row per group per hour of
    /// charge (ChargeCategory Usage, PricingUnit Hours, ResourceType "Scaling group"), amounts
    /// in the reporting currency.
    #[arg(long, value_name = "FILE.csv")]
    pub focus: Option<PathBuf>,
}

/// Output formats of `hoist cost`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables for a terminal.
    Table,
    /// Markdown tables.
    Markdown,
    /// One JSON object.
    Json,
}

/// The period of the groups' spend so far and forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Period {
    /// The UTC day.
    Daily,
    /// The week from Monday 00:00 UTC.
    Weekly,
    /// The calendar month (UTC).
    Monthly,
}

impl Period {
    fn budget_period(self) -> BudgetPeriod {
        match self {
            Period::Daily => BudgetPeriod::Daily,
            Period::Weekly => BudgetPeriod::Weekly,
            Period::Monthly => BudgetPeriod::Monthly,
        }
    }
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{text:?}: {e} (expected RFC 3339, e.g. 2026-03-02T12:00:00Z)"))
}

/// The trailing window of the forecast's mean hourly spend.
const TRAILING: TimeDelta = TimeDelta::hours(24);

/// Runs `hoist cost`.
pub fn run(args: Args) -> CliResult {
    let registry = policy::registry();
    let document = policy::load(&args.file, &registry)?;
    let ledger_path = run::ledger_path(&document, args.ledger.as_deref());
    if !ledger_path.exists() {
        let kinds: Vec<String> = document
            .policy
            .providers
            .values()
            .map(|p| {
                p.kind_and_settings()
                    .map_or_else(|_| String::new(), |(k, _)| k.to_owned())
            })
            .collect();
        let all_simulated = !kinds.is_empty() && kinds.iter().all(|k| k == "simulated");
        if !all_simulated {
            return Err(CliError::input(format!(
                "no cost ledger at {}: the policy has real providers, so their costs come from a run of the autoscaler; run `hoist run {}` first (it writes the ledger), or pass `--ledger PATH` to read one written elsewhere",
                ledger_path.display(),
                args.file.display()
            )));
        }
        eprintln!(
            "hoist cost: no cost ledger at {}; every provider is simulated, so running {} on the simulated cloud for {} of virtual time first (as `hoist run -q` would) to write it",
            ledger_path.display(),
            args.file.display(),
            document.policy.run.duration
        );
        run_simulated(&document, &registry, &ledger_path)?;
    }
    let (records, skipped) = hoist_core::ledger::read(&ledger_path).map_err(|e| {
        CliError::input(format!(
            "cannot read the cost ledger {}: {e}",
            ledger_path.display()
        ))
    })?;
    let report = Report::build(&document, &records, skipped, &args, &ledger_path)?;
    if let Some(path) = &args.chart {
        let svg = chart(&report);
        std::fs::write(path, svg)
            .map_err(|e| CliError::runtime(format!("cannot write {}: {e}", path.display())))?;
    }
    if let Some(path) = &args.focus {
        let text = focus_csv(&document, &report);
        std::fs::write(path, text)
            .map_err(|e| CliError::runtime(format!("cannot write {}: {e}", path.display())))?;
    }
    match args.format {
        Format::Json => {
            let text = serde_json::to_string_pretty(&report.json())
                .map_err(|e| CliError::runtime(format!("cannot encode the report: {e}")))?;
            println!("{text}");
        }
        Format::Table => print!("{}", report.text(false)),
        Format::Markdown => print!("{}", report.text(true)),
    }
    if let Some(path) = &args.chart {
        eprintln!("hoist cost: chart written to {}", path.display());
    }
    if let Some(path) = &args.focus {
        eprintln!("hoist cost: FOCUS export written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// An event sink that forwards to the ledger once it exists (the ledger needs the loop's clock,
/// which exists only once the loop is built).
#[derive(Debug, Default)]
struct LateLedger(OnceLock<Arc<CostLedger>>);

impl EventSink for LateLedger {
    fn emit(&self, event: &Event) {
        if let Some(ledger) = self.0.get() {
            ledger.emit(event);
        }
    }
}

/// Runs the policy on the simulated cloud for its `run.duration`, as `hoist run -q` does,
/// writing the cost ledger to `path`.
fn run_simulated(
    document: &PolicyDocument,
    registry: &hoist_core::registry::ProviderRegistry,
    path: &Path,
) -> Result<(), CliError> {
    runtime()?.block_on(async {
        let sink = Arc::new(LateLedger::default());
        let built =
            policy::build(document, registry, Arc::clone(&sink) as Arc<dyn EventSink>).await?;
        if !built.virtual_time {
            return Err(CliError::input(
                "the policy does not run in virtual time; run `hoist run FILE` to write the cost ledger",
            ));
        }
        let ledger = Arc::new(
            CostLedger::open(
                path,
                document.policy.costs.ledger_every.get(),
                Arc::clone(built.control.clock()),
            )
            .map_err(|e| CliError::input(format!("cost ledger {}: {e}", path.display())))?,
        );
        let _ = sink.0.set(Arc::clone(&ledger));
        let mut control = built.control.with_dry_run(false);
        let start = control.clock().now();
        let until = start + document.policy.run.duration.as_delta();
        control
            .run(Some(until), |_| {})
            .await
            .map_err(CliError::runtime)?;
        ledger
            .finish()
            .map_err(|e| CliError::runtime(format!("cost ledger {}: {e}", path.display())))?;
        Ok(())
    })
}

/// (provider, group, start of the run) of a group's records.
type RunKey = (String, String, DateTime<Utc>);

/// Spend between two ledger records of one run of one group, in the reporting currency.
#[derive(Debug, Clone)]
struct Increment {
    /// From (exclusive).
    start: DateTime<Utc>,
    /// To (inclusive); equal to `start` for what was charged at the first observation.
    end: DateTime<Utc>,
    amount: f64,
    /// Units of work done over the increment, when the group reports its work.
    units: Option<f64>,
    /// Active instances at its end.
    instances: u32,
    instance_class: String,
    /// Price of one instance-hour, in the reporting currency.
    unit_price: Option<f64>,
    /// The part of `amount` charged for spot instances.
    spot_amount: f64,
    /// The share of the instances bought as spot at its end.
    spot_share: f64,
}

impl Increment {
    /// The share of the increment in `[from, to]`.
    fn share(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
        if self.end <= self.start {
            return if self.start >= from && self.start <= to {
                1.0
            } else {
                0.0
            };
        }
        let lo = self.start.max(from);
        let hi = self.end.min(to);
        if hi <= lo {
            return 0.0;
        }
        (hi - lo).num_milliseconds() as f64 / (self.end - self.start).num_milliseconds() as f64
    }
}

/// A group's figures.
#[derive(Debug, Clone)]
struct GroupReport {
    provider: String,
    group: String,
    instances: u32,
    instance_class: String,
    run_rate: Option<f64>,
    period_to_date: f64,
    forecast: f64,
    /// Mean hourly spend the forecast assumes.
    pace: f64,
    /// Spend in the whole ledger up to the report time.
    spent_in_ledger: f64,
    /// Spend in the period over increments with known work, and the units of work done.
    work_spend: f64,
    work_units: f64,
    work_unit: Option<String>,
    /// Cost per 1,000 units at the latest record.
    per_1000_now: Option<f64>,
    /// When amounts were converted: from, rate, as of.
    converted_from: Option<(String, f64, NaiveDate)>,
    increments: Vec<Increment>,
}

impl GroupReport {
    fn per_1000(&self) -> Option<f64> {
        (self.work_units > 0.0).then(|| self.work_spend / self.work_units * 1000.0)
    }
}

/// A sum over several groups.
#[derive(Debug, Clone, Default)]
struct Sum {
    groups: usize,
    instances: u32,
    run_rate: f64,
    period_to_date: f64,
    forecast: f64,
    spent_in_ledger: f64,
    work_spend: f64,
    work_units: f64,
    work_units_of: BTreeSet<String>,
}

impl Sum {
    fn add(&mut self, g: &GroupReport) {
        self.groups += 1;
        self.instances += g.instances;
        self.run_rate += g.run_rate.unwrap_or(0.0);
        self.period_to_date += g.period_to_date;
        self.forecast += g.forecast;
        self.spent_in_ledger += g.spent_in_ledger;
        if g.work_units > 0.0 {
            self.work_spend += g.work_spend;
            self.work_units += g.work_units;
            self.work_units_of
                .insert(g.work_unit.clone().unwrap_or_else(|| "units".into()));
        }
    }

    /// Only when every group with work counts the same unit.
    fn per_1000(&self) -> Option<(f64, String)> {
        if self.work_units > 0.0 && self.work_units_of.len() == 1 {
            let unit = self
                .work_units_of
                .iter()
                .next()
                .cloned()
                .unwrap_or_default();
            Some((self.work_spend / self.work_units * 1000.0, unit))
        } else {
            None
        }
    }
}

/// A budget's latest state and its history in that period.
#[derive(Debug, Clone)]
struct BudgetReport {
    latest: BudgetStatus,
    /// (time, spent) of the records in the latest record's period, oldest first.
    history: Vec<(DateTime<Utc>, f64)>,
}

/// Everything `hoist cost` reports.
#[derive(Debug)]
struct Report {
    ledger: PathBuf,
    as_of: DateTime<Utc>,
    period: Period,
    period_start: DateTime<Utc>,
    period_end: DateTime<Utc>,
    currency: String,
    exchange_rates_as_of: Option<NaiveDate>,
    groups: Vec<GroupReport>,
    providers: BTreeMap<String, Sum>,
    total: Sum,
    budgets: Vec<BudgetReport>,
    notes: Vec<String>,
    skipped: usize,
}

impl Report {
    fn build(
        document: &PolicyDocument,
        records: &[LedgerRecord],
        skipped: usize,
        args: &Args,
        ledger: &Path,
    ) -> Result<Self, CliError> {
        let converter = Converter::new(&document.policy.costs);
        let mut notes = Vec::new();
        if skipped > 0 {
            notes.push(format!(
                "{skipped} line(s) of {} could not be read and were skipped",
                ledger.display()
            ));
        }
        let last = records
            .iter()
            .map(|r| match r {
                LedgerRecord::Group(g) => g.at,
                LedgerRecord::Budget(b) => b.at,
                LedgerRecord::Reconciliation(r) => r.at,
            })
            .max();
        let as_of = match (args.at, last) {
            (Some(at), _) => at,
            (None, Some(last)) => last,
            (None, None) => {
                return Err(CliError::input(format!(
                    "the cost ledger {} has no records yet; run `hoist run {}` (it writes one record per group at least every `costs.ledger_every`)",
                    ledger.display(),
                    args.file.display()
                )));
            }
        };
        let (period_start, period_end) = args.period.budget_period().containing(as_of);

        // Each (run, provider, group)'s records up to the report time, oldest first.
        let mut runs: BTreeMap<RunKey, Vec<&GroupCostRecord>> = BTreeMap::new();
        for record in records {
            if let LedgerRecord::Group(g) = record
                && g.at <= as_of
            {
                runs.entry((g.provider.clone(), g.group.clone(), g.run))
                    .or_default()
                    .push(g);
            }
        }
        let mut unconvertible: BTreeMap<String, f64> = BTreeMap::new();
        let mut by_group: BTreeMap<(String, String), GroupReport> = BTreeMap::new();
        let mut latest: BTreeMap<(String, String), &GroupCostRecord> = BTreeMap::new();
        // A run's records are in time order in the file; time going backwards is another run
        // with the same start (a simulated policy run again into the same ledger).
        let runs: Vec<(RunKey, Vec<&GroupCostRecord>)> = runs
            .into_iter()
            .flat_map(|(key, list)| {
                segments(list, |r| r.at)
                    .into_iter()
                    .map(move |segment| (key.clone(), segment))
            })
            .collect();
        for ((provider, group, run), list) in runs {
            let entry = by_group
                .entry((provider.clone(), group.clone()))
                .or_insert_with(|| GroupReport {
                    provider: provider.clone(),
                    group: group.clone(),
                    instances: 0,
                    instance_class: String::new(),
                    run_rate: None,
                    period_to_date: 0.0,
                    forecast: 0.0,
                    pace: 0.0,
                    spent_in_ledger: 0.0,
                    work_spend: 0.0,
                    work_units: 0.0,
                    work_unit: None,
                    per_1000_now: None,
                    converted_from: None,
                    increments: Vec::new(),
                });
            let mut previous: Option<&GroupCostRecord> = None;
            let mut cumulative = 0.0;
            let mut cumulative_spot = 0.0;
            for record in list {
                let key = (provider.clone(), group.clone());
                if latest.get(&key).is_none_or(|l| l.at <= record.at) {
                    latest.insert(key, record);
                }
                let Some(metered) = record.metered_cost else {
                    continue;
                };
                let currency = record.currency.clone().unwrap_or_else(|| "USD".into());
                let mut amount = metered - cumulative;
                if amount < 0.0 {
                    // The meter started again: what it shows is all new.
                    amount = metered;
                }
                cumulative = metered;
                let spot = record.metered_spot_cost.unwrap_or(0.0);
                let mut spot_amount = spot - cumulative_spot;
                if spot_amount < 0.0 {
                    spot_amount = spot;
                }
                cumulative_spot = spot;
                let Some(converted) = converter.converted(amount, &currency) else {
                    *unconvertible.entry(currency).or_default() += amount;
                    previous = Some(record);
                    continue;
                };
                if converted.via.is_some() {
                    entry.converted_from = converted.via.clone();
                }
                let rate = converter
                    .converted(1.0, &currency)
                    .map_or(1.0, |c| c.amount);
                let start = previous.map_or(run.min(record.at), |p| p.at);
                let seconds = (record.at - start).num_milliseconds() as f64 / 1000.0;
                let wps = match (
                    previous.and_then(|p| p.work_per_second),
                    record.work_per_second,
                ) {
                    (Some(a), Some(b)) => Some((a + b) / 2.0),
                    (None, Some(b)) => Some(b),
                    _ => None,
                };
                let unit_price = |r: &GroupCostRecord| {
                    (r.instances > 0)
                        .then_some(r.hourly_cost)
                        .flatten()
                        .map(|h| h / f64::from(r.instances) * rate)
                };
                entry.increments.push(Increment {
                    start,
                    end: record.at,
                    amount: converted.amount,
                    units: wps.map(|w| w * seconds),
                    instances: record.instances,
                    instance_class: record.instance_class.clone(),
                    unit_price: unit_price(record).or_else(|| previous.and_then(unit_price)),
                    spot_amount: (spot_amount * rate).clamp(0.0, converted.amount.max(0.0)),
                    spot_share: if record.instances > 0 {
                        (f64::from(record.spot_instances) / f64::from(record.instances)).min(1.0)
                    } else {
                        0.0
                    },
                });
                if record.work_unit.is_some() {
                    entry.work_unit.clone_from(&record.work_unit);
                }
                previous = Some(record);
            }
        }
        for (currency, amount) in &unconvertible {
            notes.push(format!(
                "{amount:.2} {currency} of spend is left out of every figure: `costs.exchange_rates` has no rate from {currency} to {}",
                converter.currency()
            ));
        }

        let mut groups = Vec::new();
        for (key, mut g) in by_group {
            if let Some(record) = latest.get(&key) {
                let currency = record.currency.clone().unwrap_or_else(|| "USD".into());
                g.instances = record.instances;
                g.instance_class.clone_from(&record.instance_class);
                g.run_rate = record
                    .hourly_cost
                    .and_then(|h| converter.converted(h, &currency))
                    .map(|c| c.amount);
                g.per_1000_now = match (g.run_rate, record.work_per_second) {
                    (Some(rate), Some(wps)) if wps > 0.0 => Some(rate / (wps * 3600.0) * 1000.0),
                    _ => None,
                };
            }
            // Fill unknown instance-hour prices from the group's others (same class).
            let known: BTreeMap<String, f64> = g
                .increments
                .iter()
                .filter_map(|i| Some((i.instance_class.clone(), i.unit_price?)))
                .collect();
            for i in &mut g.increments {
                if i.unit_price.is_none() {
                    i.unit_price = known.get(&i.instance_class).copied();
                }
            }
            g.spent_in_ledger = g.increments.iter().map(|i| i.amount).sum();
            g.period_to_date = g
                .increments
                .iter()
                .map(|i| i.amount * i.share(period_start, as_of))
                .sum();
            for i in &g.increments {
                if let Some(units) = i.units {
                    let share = i.share(period_start, as_of);
                    g.work_spend += i.amount * share;
                    g.work_units += units * share;
                }
            }
            let first = g.increments.iter().map(|i| i.start).min();
            let from = first.map_or(as_of, |f| f.max(as_of - TRAILING));
            let hours = (as_of - from).num_milliseconds() as f64 / 3_600_000.0;
            g.pace = if hours >= 1.0 / 60.0 {
                g.increments
                    .iter()
                    .map(|i| i.amount * i.share(from, as_of))
                    .sum::<f64>()
                    / hours
            } else {
                g.run_rate.unwrap_or(0.0)
            };
            let left = (period_end - as_of).num_milliseconds().max(0) as f64 / 3_600_000.0;
            g.forecast = g.period_to_date + g.pace * left;
            groups.push(g);
        }

        let mut providers: BTreeMap<String, Sum> = BTreeMap::new();
        let mut total = Sum::default();
        for g in &groups {
            providers.entry(g.provider.clone()).or_default().add(g);
            total.add(g);
        }

        // Budgets: the latest record of each at or before the report time.
        let mut budgets: BTreeMap<String, Vec<&BudgetStatus>> = BTreeMap::new();
        for record in records {
            if let LedgerRecord::Budget(b) = record
                && b.at <= as_of
            {
                budgets.entry(b.budget.clone()).or_default().push(b);
            }
        }
        let mut budget_reports = Vec::new();
        for (_, list) in budgets {
            // The latest record (the last written of the latest), and the history of the run
            // that wrote it.
            let Some(segment) = segments(list, |b| b.at)
                .into_iter()
                .max_by_key(|segment| segment.last().map(|b| b.at))
            else {
                continue;
            };
            let Some(latest) = segment.last().copied() else {
                continue;
            };
            let history = segment
                .iter()
                .filter(|b| b.period_start == latest.period_start)
                .map(|b| (b.at, b.spent))
                .collect();
            budget_reports.push(BudgetReport {
                latest: latest.clone(),
                history,
            });
        }
        for budget in &document.policy.budgets {
            if !budget_reports
                .iter()
                .any(|b| b.latest.budget == budget.name)
            {
                notes.push(format!(
                    "budget {}: no record in the ledger at or before {}",
                    budget.name,
                    as_of.format("%Y-%m-%d %H:%M UTC")
                ));
            }
        }
        let rates_used = groups.iter().any(|g| g.converted_from.is_some())
            || budget_reports
                .iter()
                .any(|b| b.latest.converted_from.is_some());
        Ok(Report {
            ledger: ledger.to_owned(),
            as_of,
            period: args.period,
            period_start,
            period_end,
            currency: converter.currency().to_owned(),
            exchange_rates_as_of: if rates_used { converter.as_of() } else { None },
            groups,
            providers,
            total,
            budgets: budget_reports,
            notes,
            skipped,
        })
    }

    fn period_label(&self) -> &'static str {
        match self.period {
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
        }
    }

    /// Tables, for a terminal or (with `markdown`) as Markdown.
    fn text(&self, markdown: bool) -> String {
        let mut out = String::new();
        let cur = &self.currency;
        let heading = format!(
            "cost as of {} ({} period {} → {}), in {cur}, from {}",
            self.as_of.format("%Y-%m-%d %H:%M UTC"),
            self.period_label(),
            self.period_start.format("%Y-%m-%d"),
            self.period_end.format("%Y-%m-%d"),
            self.ledger.display()
        );
        if markdown {
            let _ = writeln!(out, "## Cost\n\n{heading}\n");
        } else {
            let _ = writeln!(out, "{heading}\n");
        }
        let mut rows = vec![
            [
                "PROVIDER",
                "GROUP",
                "INSTANCES",
                "CLASS",
                "RATE/H",
                "PERIOD TO DATE",
                "FORECAST",
                "PER 1,000 UNITS",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for g in &self.groups {
            rows.push(vec![
                g.provider.clone(),
                g.group.clone(),
                g.instances.to_string(),
                g.instance_class.clone(),
                g.run_rate.map_or_else(|| "?".into(), money),
                money(g.period_to_date),
                money(g.forecast),
                g.per_1000().map_or_else(
                    || "-".into(),
                    |v| {
                        format!(
                            "{} /1k {}",
                            unit_cost(v),
                            g.work_unit.as_deref().unwrap_or("units")
                        )
                    },
                ),
            ]);
        }
        let sum_row = |label: &str, name: &str, s: &Sum| {
            vec![
                label.to_owned(),
                name.to_owned(),
                s.instances.to_string(),
                String::new(),
                money(s.run_rate),
                money(s.period_to_date),
                money(s.forecast),
                s.per_1000()
                    .map_or_else(|| "-".into(), |(v, u)| format!("{} /1k {u}", unit_cost(v))),
            ]
        };
        if self.providers.len() > 1 {
            for (name, s) in &self.providers {
                rows.push(sum_row("provider", name, s));
            }
        }
        rows.push(sum_row("TOTAL", "", &self.total));
        table(
            &mut out,
            &rows,
            &[false, false, true, false, true, true, true, true],
            markdown,
        );
        let converted: BTreeSet<String> = self
            .groups
            .iter()
            .filter_map(|g| g.converted_from.as_ref())
            .map(|(from, rate, as_of)| format!("converted from {from} at {rate} as of {as_of}"))
            .collect();
        for line in converted {
            let _ = writeln!(out, "{}amounts {line}", if markdown { "\n" } else { "" });
        }

        if !self.budgets.is_empty() {
            let _ = writeln!(out);
            if markdown {
                let _ = writeln!(out, "### Budgets\n");
            }
            let mut rows = vec![
                [
                    "BUDGET", "SCOPE", "PERIOD", "AMOUNT", "SPENT", "%", "FORECAST", "%", "RUNG",
                    "CROSSED",
                ]
                .map(String::from)
                .to_vec(),
            ];
            let mut converted = Vec::new();
            for b in &self.budgets {
                let s = &b.latest;
                let pct = |v: f64| {
                    if s.amount > 0.0 {
                        format!("{:.1} %", v / s.amount * 100.0)
                    } else {
                        "-".into()
                    }
                };
                rows.push(vec![
                    s.budget.clone(),
                    s.scope.clone(),
                    format!(
                        "{} {} → {}",
                        s.period,
                        s.period_start.format("%Y-%m-%d %H:%M"),
                        s.period_end.format("%Y-%m-%d %H:%M")
                    ),
                    format!("{} {}", money(s.amount), s.currency),
                    money(s.spent),
                    pct(s.spent),
                    money(s.forecast),
                    pct(s.forecast),
                    s.rung.map_or_else(|| "inside".into(), |r| r.to_string()),
                    crossed(s),
                ]);
                if let Some((from, rate, as_of)) = &s.converted_from {
                    converted.push(format!(
                        "{}: converted from {from} at {rate} as of {as_of}",
                        s.budget
                    ));
                }
            }
            table(
                &mut out,
                &rows,
                &[
                    false, false, false, true, true, true, true, true, false, false,
                ],
                markdown,
            );
            for line in converted {
                let _ = writeln!(out, "{}{line}", if markdown { "\n" } else { "" });
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out);
            for note in &self.notes {
                let _ = writeln!(out, "{}note: {note}", if markdown { "- " } else { "" });
            }
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        use serde_json::json;
        let r2 = |v: f64| (v * 1e6).round() / 1e6;
        let via = |v: &Option<(String, f64, NaiveDate)>| {
            v.as_ref().map(|(from, rate, as_of)| {
                json!({ "currency": from, "rate": rate, "as_of": as_of.to_string() })
            })
        };
        let sum = |s: &Sum| {
            let per = s.per_1000();
            json!({
                "groups": s.groups,
                "instances": s.instances,
                "run_rate_per_hour": r2(s.run_rate),
                "period_to_date": r2(s.period_to_date),
                "forecast": r2(s.forecast),
                "spent_in_ledger": r2(s.spent_in_ledger),
                "cost_per_1000_units": per.as_ref().map(|p| p.0),
                "work_unit": per.map(|p| p.1),
            })
        };
        let groups: Vec<serde_json::Value> = self
            .groups
            .iter()
            .map(|g| {
                json!({
                    "provider": g.provider,
                    "group": g.group,
                    "instances": g.instances,
                    "instance_class": g.instance_class,
                    "run_rate_per_hour": g.run_rate.map(r2),
                    "period_to_date": r2(g.period_to_date),
                    "forecast": r2(g.forecast),
                    "pace_per_hour": r2(g.pace),
                    "spent_in_ledger": r2(g.spent_in_ledger),
                    "cost_per_1000_units": g.per_1000(),
                    "cost_per_1000_units_now": g.per_1000_now,
                    "work_units_in_period": (g.work_units > 0.0).then_some(g.work_units),
                    "work_unit": g.work_unit,
                    "converted_from": via(&g.converted_from),
                })
            })
            .collect();
        let providers: serde_json::Map<String, serde_json::Value> = self
            .providers
            .iter()
            .map(|(name, s)| (name.clone(), sum(s)))
            .collect();
        let budgets: Vec<serde_json::Value> = self
            .budgets
            .iter()
            .map(|b| {
                let s = &b.latest;
                let pct = |v: f64| (s.amount > 0.0).then(|| r2(v / s.amount * 100.0));
                json!({
                    "budget": s.budget,
                    "scope": s.scope,
                    "groups": s.groups,
                    "period": s.period,
                    "period_start": s.period_start,
                    "period_end": s.period_end,
                    "amount": s.amount,
                    "currency": s.currency,
                    "spent": r2(s.spent),
                    "spent_percent": pct(s.spent),
                    "forecast": r2(s.forecast),
                    "forecast_percent": pct(s.forecast),
                    "run_rate_per_hour": r2(s.run_rate_per_hour),
                    "pace_per_hour": r2(s.pace_per_hour),
                    "rung": s.rung.map(|r| r.to_string()),
                    "state": s.rung.map_or_else(|| "inside".to_owned(), |r| r.to_string()),
                    "actual_crossed": s.actual_crossed,
                    "forecast_crossed": s.forecast_crossed,
                    "converted_from": via(&s.converted_from),
                    "at": s.at,
                })
            })
            .collect();
        let mut object = json!({
            "as_of": self.as_of,
            "currency": self.currency,
            "ledger": self.ledger.display().to_string(),
            "period": {
                "kind": self.period_label(),
                "start": self.period_start,
                "end": self.period_end,
            },
            "groups": groups,
            "providers": providers,
            "total": sum(&self.total),
            "budgets": budgets,
            "skipped_lines": self.skipped,
            "notes": self.notes,
        });
        if let Some(as_of) = self.exchange_rates_as_of {
            object["exchange_rates_as_of"] = json!(as_of.to_string());
        }
        object
    }
}

/// Splits records in file order where their time goes backwards: each part is one run.
fn segments<T: Copy>(list: Vec<T>, at: impl Fn(T) -> DateTime<Utc>) -> Vec<Vec<T>> {
    let mut parts: Vec<Vec<T>> = Vec::new();
    for item in list {
        match parts.last_mut() {
            Some(part) if part.last().is_some_and(|last| at(*last) <= at(item)) => {
                part.push(item);
            }
            _ => parts.push(vec![item]),
        }
    }
    parts
}

/// An amount with 2 decimals.
fn money(v: f64) -> String {
    format!("{v:.2}")
}

/// A unit cost: 2 decimals, or 3 significant digits when smaller than 0.01.
fn unit_cost(v: f64) -> String {
    if v.abs() >= 0.01 || v == 0.0 {
        format!("{v:.2}")
    } else {
        let digits = (-v.abs().log10().floor()) as usize + 2;
        format!("{v:.digits$}")
    }
}

fn crossed(s: &BudgetStatus) -> String {
    let list = |v: &[f64]| {
        v.iter()
            .map(|p| format!("{p}%"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut parts = Vec::new();
    if !s.actual_crossed.is_empty() {
        parts.push(format!("actual {}", list(&s.actual_crossed)));
    }
    if !s.forecast_crossed.is_empty() {
        parts.push(format!("forecast {}", list(&s.forecast_crossed)));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("; ")
    }
}

/// A table with a header row: aligned columns for a terminal, or a Markdown table.
fn table(out: &mut String, rows: &[Vec<String>], right: &[bool], markdown: bool) {
    if markdown {
        for (i, row) in rows.iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
            if i == 0 {
                let rule: Vec<&str> = (0..row.len())
                    .map(|c| {
                        if right.get(c).copied().unwrap_or(false) {
                            "---:"
                        } else {
                            "---"
                        }
                    })
                    .collect();
                let _ = writeln!(out, "| {} |", rule.join(" | "));
            }
        }
        return;
    }
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c].saturating_sub(cell.chars().count());
            if c > 0 {
                line.push_str("  ");
            }
            if right.get(c).copied().unwrap_or(false) {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

// ---------------------------------------------------------------------------------------------
// The chart.

const PANEL_W: f64 = 960.0;
const PANEL_H: f64 = 340.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = 50.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What one panel of the chart shows.
struct Panel {
    title: String,
    subtitle: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    spent: Vec<(DateTime<Utc>, f64)>,
    amount: Option<f64>,
    now: DateTime<Utc>,
    now_spent: f64,
    forecast: f64,
    currency: String,
}

fn chart(report: &Report) -> String {
    let mut panels = Vec::new();
    for b in &report.budgets {
        let s = &b.latest;
        let mut subtitle = format!(
            "{} · {} period {} → {} · as of {}",
            s.scope,
            s.period,
            s.period_start.format("%Y-%m-%d %H:%M"),
            s.period_end.format("%Y-%m-%d %H:%M"),
            s.at.format("%Y-%m-%d %H:%M UTC"),
        );
        if let Some((from, rate, as_of)) = &s.converted_from {
            let _ = write!(
                subtitle,
                " · amount converted from {from} at {rate} as of {as_of}"
            );
        }
        let mut spent = vec![(s.period_start, 0.0)];
        spent.extend(b.history.iter().copied());
        panels.push(Panel {
            title: format!(
                "budget {}: {} of {} {} spent, forecast {} ({})",
                s.budget,
                money(s.spent),
                money(s.amount),
                s.currency,
                money(s.forecast),
                s.rung
                    .map_or_else(|| "inside".into(), |r| format!("rung {r}")),
            ),
            subtitle,
            start: s.period_start,
            end: s.period_end,
            spent,
            amount: Some(s.amount),
            now: s.at,
            now_spent: s.spent,
            forecast: s.forecast,
            currency: s.currency.clone(),
        });
    }
    if panels.is_empty() {
        // No budgets: the total spend of the report's period, hour by hour.
        let mut spent = vec![(report.period_start, 0.0)];
        let mut t = report.period_start;
        let all: Vec<&Increment> = report.groups.iter().flat_map(|g| &g.increments).collect();
        let first = all.iter().map(|i| i.start).min().unwrap_or(report.as_of);
        while t < report.as_of {
            t = (t + TimeDelta::hours(1)).min(report.as_of);
            if t < first {
                continue;
            }
            let v: f64 = all
                .iter()
                .map(|i| i.amount * i.share(report.period_start, t))
                .sum();
            spent.push((t, v));
        }
        panels.push(Panel {
            title: format!(
                "total spend: {} {} so far, forecast {}",
                money(report.total.period_to_date),
                report.currency,
                money(report.total.forecast)
            ),
            subtitle: format!(
                "{} period {} → {} · no budgets in the ledger",
                report.period_label(),
                report.period_start.format("%Y-%m-%d"),
                report.period_end.format("%Y-%m-%d")
            ),
            start: report.period_start,
            end: report.period_end,
            spent,
            amount: None,
            now: report.as_of,
            now_spent: report.total.period_to_date,
            forecast: report.total.forecast,
            currency: report.currency.clone(),
        });
    }
    let height = PANEL_H * panels.len() as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{PANEL_W}" height="{height}" viewBox="0 0 {PANEL_W} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, panel) in panels.iter().enumerate() {
        draw_panel(&mut out, panel, PANEL_H * i as f64);
    }
    out.push_str("</svg>\n");
    out
}

fn nice_step(span: f64, count: f64) -> f64 {
    let raw = (span / count).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

fn draw_panel(out: &mut String, p: &Panel, y_off: f64) {
    let (l, r) = (LEFT, PANEL_W - RIGHT);
    let (t, b) = (y_off + TOP, y_off + PANEL_H - BOTTOM);
    let span = (p.end - p.start).num_seconds().max(1) as f64;
    let x = |at: DateTime<Utc>| l + (at - p.start).num_seconds() as f64 / span * (r - l);
    let top = p
        .spent
        .iter()
        .map(|s| s.1)
        .chain([p.amount.unwrap_or(0.0), p.forecast, p.now_spent])
        .fold(0.0, f64::max)
        .max(0.01)
        * 1.1;
    let step = nice_step(top, 5.0);
    let top = (top / step).ceil() * step;
    let y = |v: f64| b - v / top * (b - t);
    let _ = writeln!(
        out,
        r##"<text x="{l}" y="{:.1}" font-size="15" font-weight="bold">{}</text><text x="{l}" y="{:.1}" fill="#555">{}</text>"##,
        y_off + 22.0,
        escape(&p.title),
        y_off + 40.0,
        escape(&p.subtitle)
    );
    // Horizontal grid and the money axis.
    let mut v = 0.0;
    while v <= top + step * 1e-6 {
        let py = y(v);
        let _ = writeln!(
            out,
            r##"<line x1="{l}" y1="{py:.1}" x2="{r}" y2="{py:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            l - 6.0,
            py + 4.0,
            if step >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        );
        v += step;
    }
    // Time ticks: about six, on whole hours or days.
    let hours = (span / 3600.0).max(1.0);
    let tick_hours = [1.0, 2.0, 3.0, 6.0, 12.0, 24.0, 48.0, 168.0]
        .into_iter()
        .find(|h| hours / h <= 8.0)
        .unwrap_or(168.0);
    let mut tick = p.start;
    while tick <= p.end {
        let px = x(tick);
        let label = if tick_hours >= 24.0 {
            tick.format("%m-%d").to_string()
        } else {
            tick.format("%m-%d %H:%M").to_string()
        };
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{t}" x2="{px:.1}" y2="{b}" stroke="#f0f0f0"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            b + 16.0,
            escape(&label)
        );
        tick += TimeDelta::seconds((tick_hours * 3600.0) as i64);
    }
    let _ = writeln!(
        out,
        r##"<rect x="{l}" y="{t}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
        r - l,
        b - t
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">time (UTC)</text><text transform="translate(22,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        (l + r) / 2.0,
        b + 36.0,
        (t + b) / 2.0,
        escape(&format!("spend ({})", p.currency))
    );
    let mut legend: Vec<(&str, &str, bool)> = Vec::new();
    if let Some(amount) = p.amount {
        let py = y(amount);
        let _ = writeln!(
            out,
            r##"<line x1="{l}" y1="{py:.1}" x2="{r}" y2="{py:.1}" stroke="#d62728" stroke-width="2"/>"##
        );
        legend.push(("budget amount", "#d62728", false));
    }
    let points: Vec<String> = p
        .spent
        .iter()
        .filter(|(at, _)| *at >= p.start && *at <= p.end)
        .map(|(at, v)| format!("{:.1},{:.1}", x(*at), y(*v)))
        .collect();
    let _ = writeln!(
        out,
        r##"<polyline fill="none" stroke="#1f77b4" stroke-width="2.5" points="{}"/>"##,
        points.join(" ")
    );
    legend.push(("spent (cumulative)", "#1f77b4", false));
    if p.now <= p.end {
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#ff7f0e" stroke-width="2.5" stroke-dasharray="6,4"/>"##,
            x(p.now.max(p.start)),
            y(p.now_spent),
            x(p.end),
            y(p.forecast)
        );
        legend.push(("forecast to period end", "#ff7f0e", true));
    }
    for (i, (label, color, dashed)) in legend.iter().enumerate() {
        let lx = r + 16.0;
        let ly = t + 10.0 + i as f64 * 20.0;
        let dash = if *dashed {
            r#" stroke-dasharray="6,4""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="2.5"{dash}/><text x="{}" y="{}">{}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            escape(label)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The FOCUS export.

/// The columns of FOCUS 1.1, in the specification's (alphabetical) order.
pub const FOCUS_COLUMNS: [&str; 50] = [
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "CapacityReservationId",
    "CapacityReservationStatus",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "CommitmentDiscountUnit",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
];

/// One group's charge in one hour.
#[derive(Debug, Default)]
struct HourCharge {
    cost: f64,
    /// Instance-hours.
    quantity: f64,
    /// The part of `cost` charged for spot instances.
    spot_cost: f64,
    /// The part of `quantity` run on spot instances.
    spot_quantity: f64,
    instance_class: String,
}

/// Who provides a kind of provider, and the service its groups are.
fn provider_names(kind: &str, name: &str) -> (String, String) {
    let (who, service) = match kind {
        "aws" => ("AWS", "Amazon EC2 Auto Scaling"),
        "azure" => ("Microsoft", "Virtual Machine Scale Sets"),
        "gcp" => ("Google Cloud", "Compute Engine"),
        "kubernetes" => ("Kubernetes", "Kubernetes node groups"),
        "simulated" => ("Hoist simulated cloud", "Simulated compute"),
        "" => return (name.to_owned(), "Compute".to_owned()),
        other => return (other.to_owned(), "Compute".to_owned()),
    };
    (who.to_owned(), service.to_owned())
}

/// RFC 4180: quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// A plain decimal (no exponent), up to 10 decimals.
fn decimal(v: f64) -> String {
    let text = format!("{v:.10}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" || text.is_empty() {
        "0".into()
    } else {
        text.to_owned()
    }
}

fn iso(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    Utc.from_utc_datetime(
        &at.date_naive()
            .and_hms_opt(at.hour(), 0, 0)
            .unwrap_or_default(),
    )
}

fn focus_csv(document: &PolicyDocument, report: &Report) -> String {
    let mut out = FOCUS_COLUMNS.join(",");
    out.push_str("\r\n");
    for g in &report.groups {
        let mut hours: BTreeMap<DateTime<Utc>, HourCharge> = BTreeMap::new();
        for i in &g.increments {
            if i.end <= i.start {
                let h = hours.entry(hour_of(i.start)).or_default();
                h.cost += i.amount;
                h.spot_cost += i.spot_amount;
                if let Some(price) = i.unit_price.filter(|p| *p > 0.0) {
                    h.quantity += i.amount / price;
                    h.spot_quantity += i.amount / price * i.spot_share;
                }
                h.instance_class.clone_from(&i.instance_class);
                continue;
            }
            let mut hour = hour_of(i.start);
            while hour < i.end {
                let next = hour + TimeDelta::hours(1);
                let share = i.share(hour, next);
                if share > 0.0 {
                    let h = hours.entry(hour).or_default();
                    let cost = i.amount * share;
                    h.cost += cost;
                    h.spot_cost += i.spot_amount * share;
                    let quantity = match i.unit_price.filter(|p| *p > 0.0) {
                        Some(price) => cost / price,
                        None => {
                            let lo = i.start.max(hour);
                            let hi = i.end.min(next);
                            f64::from(i.instances) * (hi - lo).num_seconds() as f64 / 3600.0
                        }
                    };
                    h.quantity += quantity;
                    h.spot_quantity += quantity * i.spot_share;
                    h.instance_class.clone_from(&i.instance_class);
                }
                hour = next;
            }
        }
        let provider = document.policy.providers.get(&g.provider);
        let (kind, settings) = provider
            .and_then(|p| p.kind_and_settings().ok())
            .map_or((String::new(), serde_json::Value::Null), |(k, s)| {
                (k.to_owned(), s)
            });
        let (provider_name, service) = provider_names(&kind, &g.provider);
        let region = ["region", "location"]
            .iter()
            .find_map(|k| settings.get(k).and_then(|v| v.as_str()))
            .unwrap_or_default()
            .to_owned();
        let config =
            document.policy.groups.iter().find(|c| {
                c.provider == g.provider && c.id.as_deref().unwrap_or(&c.name) == g.group
            });
        let mut tags = serde_json::Map::new();
        if let Some(config) = config {
            for (k, v) in &config.labels {
                tags.insert(k.clone(), serde_json::Value::String(v.clone()));
            }
            tags.insert("x_HoistGroup".into(), config.name.clone().into());
        }
        tags.insert("x_HoistProvider".into(), g.provider.clone().into());
        let tags = serde_json::Value::Object(tags).to_string();
        for (hour, h) in hours {
            if h.cost == 0.0 && h.quantity == 0.0 {
                continue;
            }
            let end = hour + TimeDelta::hours(1);
            let (bp_start, bp_end) = BudgetPeriod::Monthly.containing(hour);
            // On-demand and spot apart: FOCUS prices spot as `Dynamic`.
            let has_spot = h.spot_cost > 0.0 || h.spot_quantity > 0.0;
            let parts = [
                (
                    "Standard",
                    "on-demand",
                    h.cost - h.spot_cost,
                    h.quantity - h.spot_quantity,
                ),
                ("Dynamic", "spot", h.spot_cost, h.spot_quantity),
            ];
            for (category, bought, part_cost, part_quantity) in parts {
                let (part_cost, part_quantity) = (part_cost.max(0.0), part_quantity.max(0.0));
                let empty = part_cost <= 1e-12 && part_quantity <= 1e-12;
                if (category == "Dynamic" && !has_spot) || (has_spot && empty) {
                    continue;
                }
                let unit_price = (part_quantity > 0.0).then(|| part_cost / part_quantity);
                let price = unit_price.map(decimal).unwrap_or_default();
                let cost = decimal(part_cost);
                let quantity = decimal(part_quantity);
                let description = format!(
                    "{} {bought} instance-hours of {} in scaling group {} on {} ({})",
                    decimal((part_quantity * 1000.0).round() / 1000.0),
                    h.instance_class,
                    g.group,
                    g.provider,
                    kind
                );
                let sku_details =
                    serde_json::json!({ "x_InstanceClass": h.instance_class }).to_string();
                let row: [String; 50] = [
                    String::new(),                                     // AvailabilityZone
                    cost.clone(),                                      // BilledCost
                    g.provider.clone(),                                // BillingAccountId
                    g.provider.clone(),                                // BillingAccountName
                    report.currency.clone(),                           // BillingCurrency
                    iso(bp_end),                                       // BillingPeriodEnd
                    iso(bp_start),                                     // BillingPeriodStart
                    String::new(),                                     // CapacityReservationId
                    String::new(),                                     // CapacityReservationStatus
                    "Usage".into(),                                    // ChargeCategory
                    String::new(),                                     // ChargeClass
                    description,                                       // ChargeDescription
                    "Usage-Based".into(),                              // ChargeFrequency
                    iso(end),                                          // ChargePeriodEnd
                    iso(hour),                                         // ChargePeriodStart
                    String::new(),                                     // CommitmentDiscountCategory
                    String::new(),                                     // CommitmentDiscountId
                    String::new(),                                     // CommitmentDiscountName
                    String::new(),                                     // CommitmentDiscountQuantity
                    String::new(),                                     // CommitmentDiscountStatus
                    String::new(),                                     // CommitmentDiscountType
                    String::new(),                                     // CommitmentDiscountUnit
                    quantity.clone(),                                  // ConsumedQuantity
                    "Hours".into(),                                    // ConsumedUnit
                    cost.clone(),                                      // ContractedCost
                    price.clone(),                                     // ContractedUnitPrice
                    cost.clone(),                                      // EffectiveCost
                    provider_name.clone(),                             // InvoiceIssuerName
                    cost,                                              // ListCost
                    price,                                             // ListUnitPrice
                    category.into(),                                   // PricingCategory
                    quantity,                                          // PricingQuantity
                    "Hours".into(),                                    // PricingUnit
                    provider_name.clone(),                             // ProviderName
                    provider_name.clone(),                             // PublisherName
                    region.clone(),                                    // RegionId
                    region.clone(),                                    // RegionName
                    format!("{}/{}", g.provider, g.group),             // ResourceId
                    g.group.clone(),                                   // ResourceName
                    "Scaling group".into(),                            // ResourceType
                    "Compute".into(),                                  // ServiceCategory
                    service.clone(),                                   // ServiceName
                    "Virtual Machines".into(),                         // ServiceSubcategory
                    h.instance_class.clone(),                          // SkuId
                    "Instance hours".into(),                           // SkuMeter
                    sku_details,                                       // SkuPriceDetails
                    format!("{}:{}:{bought}", kind, h.instance_class), // SkuPriceId
                    String::new(),                                     // SubAccountId
                    String::new(),                                     // SubAccountName
                    tags.clone(),                                      // Tags
                ];
                let fields: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
                out.push_str(&fields.join(","));
                out.push_str("\r\n");
            }
        }
    }
    out
}
