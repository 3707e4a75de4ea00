//! `hoist run`: the autoscaler. On the simulated cloud it runs in virtual time for the policy's
//! `run.duration` and prints a summary; on real providers it runs until interrupted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use hoist_core::audit::{AuditLog, AuditRecord, fingerprint};
use hoist_core::control::{Action, GroupOutcome, ReloadSignal, RunEnd};
use hoist_core::duration::HumanDuration;
use hoist_core::engine::Direction;
use hoist_core::events::EventSink;
use hoist_core::{CostGranularity, CostQuery, TimeRange};
use hoist_telemetry::logging::LogFormat;
use hoist_telemetry::{AlertEngine, AlertsConfig, Telemetry, TelemetryServer};

use super::{CliError, CliResult, policy, reload, runtime};

/// Options of `hoist run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy file, or a directory of policy files (`*.yml`, `*.yaml`; one per team, say),
    /// each valid on its own, run together as one policy.
    #[arg(value_name = "FILE|DIR")]
    pub file: PathBuf,
    /// Evaluate every group once, act, and exit.
    #[arg(long)]
    pub once: bool,
    /// Decide and record, but change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// On the simulated cloud: virtual time to cover (default: the policy's `run.duration`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<HumanDuration>,
    /// Where to append the audit log (default: the policy's `run.audit_log`, else
    /// `hoist-audit.jsonl` in the working directory).
    #[arg(long, value_name = "PATH")]
    pub audit_log: Option<PathBuf>,
    /// Where to write the cost ledger, which `hoist cost` reads (default: the policy's
    /// `costs.ledger`, else `hoist-costs.jsonl` in the working directory). A wall-clock run
    /// appends to it; a run in virtual time (the simulated cloud) starts it afresh, as it
    /// replays hours a previous run covered.
    #[arg(long, value_name = "PATH")]
    pub cost_ledger: Option<PathBuf>,
    /// Print only the summary, not each scaling action.
    #[arg(long, short)]
    pub quiet: bool,
    /// Keep what the autoscaler must not forget across a restart in this file (created when
    /// missing): each group's cooldowns, stabilisation and rate-limit windows, its predictive
    /// policy's history and last decision, and the budgets' spend. A restarted process reads it
    /// back and decides as the old one would have. One process per file. `--state etcd`, with
    /// `--leader-elect --leader-backend etcd`, keeps it on etcd next to the election key
    /// instead: the leader writes it (fenced), and a replica that becomes the leader reads it.
    /// Default: none (a restart starts with empty memory).
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Do not watch the policy file. By default a wall-clock run checks it every
    /// `--watch-interval`; a change that validates takes effect at the next evaluation (groups
    /// keep their memory), one that does not is refused with file, line and field, recorded in
    /// the audit log and alerted on, and the running configuration stays.
    #[arg(long)]
    pub no_watch: bool,
    /// How often the policy file is checked for changes.
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = parse_duration)]
    pub watch_interval: HumanDuration,
    /// Serve `/metrics`, `/healthz` and `/readyz` here. Default: 127.0.0.1:9464 when running on
    /// the wall clock; off in virtual time and with `--once` unless given.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Never serve metrics.
    #[arg(long, conflicts_with = "metrics_listen")]
    pub no_metrics: bool,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormatArg::Human)]
    pub log_format: LogFormatArg,
    /// Log level or filter (`warn`, `info`, `hoist_core=debug,info`, ...).
    #[arg(long, default_value = "warn,aws_config=error", value_name = "FILTER")]
    pub log_level: String,
    #[command(flatten)]
    pub leader: LeaderArgs,
}

/// Leader election: several replicas of `hoist run` on one policy, only the holder of a
/// Kubernetes Lease or of an etcd key acting.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Leader election")]
pub struct LeaderArgs {
    /// Run as one of several replicas: act only while holding the leadership, a
    /// `coordination.k8s.io` Lease in the cluster of the policy's first `kubernetes:` provider
    /// or a key on etcd (--leader-backend). A standby replica decides and records `standby`,
    /// changing nothing. Wall clock only.
    #[arg(long)]
    pub leader_elect: bool,
    /// Where the leadership is held: `kubernetes` (the default when the policy has a
    /// `kubernetes:` provider) or `etcd` (the default otherwise; needs --etcd-endpoints).
    #[arg(long, value_enum, value_name = "BACKEND", requires = "leader_elect")]
    pub leader_backend: Option<LeaderBackend>,
    /// etcd's client URLs, comma-separated (http://HOST:PORT), for `--leader-backend etcd`.
    #[arg(
        long,
        value_name = "URL[,URL...]",
        value_delimiter = ',',
        requires = "leader_elect"
    )]
    pub etcd_endpoints: Option<Vec<String>>,
    /// The prefix of the election key on etcd: the key is `<prefix>/<lease name>`.
    #[arg(
        long,
        default_value = "/hoist/leader",
        value_name = "PREFIX",
        requires = "leader_elect"
    )]
    pub etcd_prefix: String,
    /// The Lease's name (on etcd: the last part of the election key).
    #[arg(long, default_value = "hoist", requires = "leader_elect")]
    pub lease_name: String,
    /// The Lease's namespace (deploy/kubernetes/rbac.yaml grants Leases in `hoist`).
    #[arg(long, default_value = "hoist", requires = "leader_elect")]
    pub lease_namespace: String,
    /// How long the leadership holds without renewal before another replica may take it (on
    /// etcd: the lease's TTL, in whole seconds).
    #[arg(long, default_value = "15s", value_parser = parse_duration, requires = "leader_elect")]
    pub lease_duration: HumanDuration,
    /// How long the leader keeps acting without renewing the leadership.
    #[arg(long, default_value = "10s", value_parser = parse_duration, requires = "leader_elect")]
    pub renew_deadline: HumanDuration,
    /// How often the leadership is renewed, or tried for.
    #[arg(long, default_value = "2s", value_parser = parse_duration, requires = "leader_elect")]
    pub retry_period: HumanDuration,
    /// This replica's identity in the Lease or the etcd key (default: the host name and
    /// process id).
    #[arg(long, requires = "leader_elect")]
    pub identity: Option<String>,
}

/// Where `--leader-elect` holds the leadership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LeaderBackend {
    /// A `coordination.k8s.io` Lease in the cluster of the policy's first `kubernetes:`
    /// provider.
    Kubernetes,
    /// A key with a lease on etcd (--etcd-endpoints), fenced by its create revision.
    Etcd,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormatArg {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Event sinks that can be added after the loop is built (the alert engine needs the loop's
/// clock).
#[derive(Debug, Default)]
struct Sinks(std::sync::RwLock<Vec<Arc<dyn EventSink>>>);

impl Sinks {
    fn add(&self, sink: Arc<dyn EventSink>) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).push(sink);
    }
}

impl EventSink for Sinks {
    fn emit(&self, event: &hoist_core::events::Event) {
        for sink in self.0.read().unwrap_or_else(|e| e.into_inner()).iter() {
            sink.emit(event);
        }
    }
}

/// Prints each vertical policy's recommendation or move as it happens.
#[derive(Debug)]
struct PrintVertical;

impl EventSink for PrintVertical {
    fn emit(&self, event: &hoist_core::events::Event) {
        if let hoist_core::events::Event::Vertical {
            group,
            from_class,
            to_class,
            to_count,
            saving_percent,
            outcome,
            ..
        } = event
            && from_class != to_class
            && !matches!(outcome.as_str(), "kept" | "below_min_saving")
        {
            println!(
                "vertical {group}: {from_class} → {to_count} × {to_class} saves {saving_percent:.1} % per hour [{outcome}]"
            );
        }
    }
}

/// Prints every change of a pool's split as it happens: the time, each member's move and state,
/// and the reason.
#[derive(Debug)]
struct PrintPoolSplit;

impl EventSink for PrintPoolSplit {
    fn emit(&self, event: &hoist_core::events::Event) {
        if let hoist_core::events::Event::PoolSplit(split) = event {
            let members: Vec<String> = split
                .members
                .iter()
                .map(|m| {
                    let moved = if m.from == m.to {
                        format!("{}", m.to)
                    } else {
                        format!("{}→{}", m.from, m.to)
                    };
                    let state = match m.state {
                        hoist_core::engine::pool::MemberState::Healthy => String::new(),
                        other => format!(" ({})", other.as_str()),
                    };
                    format!("{} {moved}{state}", m.member)
                })
                .collect();
            let short = if split.unplaced > 0 {
                format!(", {} unplaced", split.unplaced)
            } else {
                String::new()
            };
            println!(
                "{} pool {} = {}{short}: {} — {}",
                split.at.format("%Y-%m-%d %H:%M"),
                split.pool,
                split.total,
                members.join(", "),
                split.reason
            );
        }
    }
}

pub(crate) fn parse_duration(text: &str) -> Result<HumanDuration, String> {
    hoist_core::duration::parse_duration(text).map(HumanDuration)
}

#[derive(Debug, Default)]
struct GroupTally {
    provider: String,
    evaluations: u64,
    scale_outs: u64,
    scale_ins: u64,
    failures: u64,
    standby: u64,
    holds_for_metrics: u64,
    lowest: Option<u32>,
    highest: Option<u32>,
    last: Option<u32>,
}

/// Runs `hoist run`.
pub fn run(args: Args) -> CliResult {
    let format = match args.log_format {
        LogFormatArg::Human => LogFormat::Human,
        LogFormatArg::Json => LogFormat::Json,
    };
    hoist_telemetry::logging::init(format, &args.log_level)
        .map_err(|e| CliError::input(format!("--log-level: {e}")))?;
    let registry = policy::registry();
    let document = policy::load(&args.file, &registry)?;
    let audit_path = args
        .audit_log
        .clone()
        .or_else(|| {
            document
                .policy
                .run
                .audit_log
                .as_ref()
                .map(|p| document.base_dir.join(p))
        })
        .unwrap_or_else(|| PathBuf::from("hoist-audit.jsonl"));
    if let Some(duration) = args.duration
        && let Some(problem) = policy::virtual_span_problem(&document, duration.get())
    {
        return Err(CliError::input(format!("--duration: {problem}")));
    }
    let audit = Arc::new(AuditLog::open(&audit_path).map_err(CliError::input)?);
    // The bytes behind the fingerprint in the audit log (a directory's: every policy file's
    // name and bytes), read within the same bound as the policy itself.
    let text = policy::source_bytes(&args.file).unwrap_or_default();

    runtime()?.block_on(async {
        let sinks = Arc::new(Sinks::default());
        let telemetry = Telemetry::new();
        sinks.add(Arc::new(telemetry.clone()));
        if !args.quiet {
            sinks.add(Arc::new(PrintVertical));
            sinks.add(Arc::new(PrintPoolSplit));
        }
        let built = policy::build(&document, &registry, Arc::clone(&sinks) as Arc<dyn EventSink>).await?;
        let virtual_time = built.virtual_time;
        let ledger_path = ledger_path(&document, args.cost_ledger.as_deref());
        // Budgets carry on from what an earlier run recorded in this period (before a run in
        // virtual time starts the ledger afresh; its records are later than its start anyway).
        let seeded = built
            .control
            .seed_budgets(&hoist_core::ledger::budget_records(&ledger_path));
        if seeded > 0 && !args.quiet {
            println!(
                "hoist: {seeded} budget(s) carry on from {} (spend so far in their period)",
                ledger_path.display()
            );
        }
        // A run in virtual time replays hours a previous one covered: it starts the ledger
        // afresh. A wall-clock run appends.
        let open = if virtual_time {
            hoist_core::ledger::CostLedger::create
        } else {
            hoist_core::ledger::CostLedger::open
        };
        let ledger = Arc::new(
            open(
                &ledger_path,
                document.policy.costs.ledger_every.get(),
                Arc::clone(built.control.clock()),
            )
            .map_err(|e| CliError::input(format!("cost ledger {}: {e}", ledger_path.display())))?,
        );
        sinks.add(Arc::clone(&ledger) as Arc<dyn EventSink>);
        let alerts = match &document.policy.alerts {
            Some(value) => {
                let config = AlertsConfig::from_value(value).map_err(CliError::input)?;
                let engine = AlertEngine::from_config(
                    &config,
                    &document.base_dir,
                    Arc::clone(built.control.clock()),
                )
                .map_err(CliError::input)?;
                sinks.add(Arc::clone(&engine) as Arc<dyn EventSink>);
                Some(engine)
            }
            None => None,
        };
        let listen = match (args.no_metrics, args.metrics_listen) {
            (true, _) => None,
            (false, Some(addr)) => Some(addr),
            (false, None) if !virtual_time && !args.once => Some(
                hoist_telemetry::DEFAULT_ADDRESS
                    .parse()
                    .map_err(|e| CliError::runtime(format!("default metrics address: {e}")))?,
            ),
            (false, None) => None,
        };
        if let Some(addr) = listen
            && !addr.ip().is_loopback()
        {
            eprintln!(
                "warning: --metrics-listen {addr} is not a loopback address: /metrics, /healthz and /readyz will answer anyone who can reach this port, without authentication, and /metrics shows the names of groups and providers, their capacity, every scaling decision and provider error counts. Listen on 127.0.0.1 unless a firewall or a scraper's network policy guards the port."
            );
        }
        let server = match listen {
            Some(addr) => Some(
                TelemetryServer::start(addr, telemetry.clone())
                    .await
                    .map_err(|e| {
                        CliError::runtime(format!(
                            "cannot serve metrics on {addr}: {e} (choose another with --metrics-listen, or --no-metrics)"
                        ))
                    })?,
            ),
            None => None,
        };
        let mut providers = built.providers;
        let lease = if args.leader.leader_elect {
            if virtual_time {
                return Err(CliError::input(
                    "--leader-elect: a run on the simulated cloud has one replica by nature; leader election is for wall-clock runs",
                ));
            }
            Some(leader_lock(&document, &args.leader).await?)
        } else {
            None
        };
        let renewal = lease.as_ref().map(|l| {
            let task = l.spawn_renewal();
            (Arc::clone(l), task)
        });
        let mut control = built
            .control
            .with_audit(Arc::clone(&audit))
            .with_dry_run(args.dry_run);
        if let Some(lease) = &lease {
            control = control.with_leadership(Arc::clone(lease) as Arc<dyn hoist_core::leadership::Leadership>);
        }
        if let Some(path) = &args.state {
            if virtual_time {
                return Err(CliError::input(
                    "--state: a run on the simulated cloud in virtual time replays hours a previous run covered, so carrying its memory over would be wrong; --state is for wall-clock runs (`simulated: {clock: wall}` runs the simulated cloud in real time)",
                ));
            }
            let store: Arc<dyn hoist_core::state::StateStore> = if path.as_os_str() == "etcd" {
                lease
                    .as_ref()
                    .and_then(|l| l.state_store())
                    .ok_or_else(|| CliError::input("--state etcd keeps the state next to the election key: it needs --leader-elect --leader-backend etcd (for a file named `etcd`, write ./etcd)"))?
            } else {
                Arc::new(hoist_core::state::RedbStore::open(path).map_err(|e| CliError::input(format!("--state: {e}")))?)
            };
            control = control.with_state(store);
            let restored = control
                .restore_state()
                .await
                .map_err(|e| CliError::runtime(format!("--state: {e}")))?;
            if !args.quiet {
                println!(
                    "hoist: state in {}: restored {} group(s) and {} budget(s)",
                    path.display(),
                    restored.groups,
                    restored.budgets
                );
            }
        }
        let start = control.clock().now();
        let mut running_print = fingerprint(&text);
        audit
            .append(&AuditRecord::ConfigLoaded {
                at: start,
                file: &args.file.display().to_string(),
                fingerprint: running_print.clone(),
            })
            .map_err(CliError::runtime)?;

        let mode = if virtual_time {
            "virtual time"
        } else {
            "wall clock"
        };
        if !args.quiet {
            println!(
                "hoist: {} group(s) from {}, evaluating every {} in {mode}; audit log {}",
                control.groups().len(),
                args.file.display(),
                document.policy.run.interval,
                audit_path.display()
            );
            if let Some(server) = &server {
                println!("hoist: metrics on http://{}/metrics", server.local_addr());
            }
        }
        let mut tallies: BTreeMap<String, GroupTally> = BTreeMap::new();
        let quiet = args.quiet;
        let mut on_outcome = |outcome: &GroupOutcome| {
            record(&mut tallies, outcome);
            if !quiet {
                print_outcome(outcome);
            }
        };

        // Listening from before the first evaluation, so a signal at any time stops the run
        // cleanly: the summary is printed and the audit log says why the run ended.
        let signal = shutdown_signal().map_err(CliError::runtime)?;
        tokio::pin!(signal);
        let mut stopped_by = None;
        if args.once {
            for outcome in control.evaluate_once().await {
                on_outcome(&outcome);
            }
        } else {
            let until = virtual_time.then(|| {
                start + args.duration.unwrap_or(document.policy.run.duration).as_delta()
            });
            let reload = ReloadSignal::new();
            let pending: reload::PendingSlot = Arc::default();
            let watcher = (!virtual_time && !args.no_watch).then(|| {
                tokio::spawn(
                    reload::Watcher {
                        file: args.file.clone(),
                        every: args.watch_interval.get(),
                        running: running_print.clone(),
                        audit: Arc::clone(&audit),
                        events: Arc::clone(&sinks) as Arc<dyn EventSink>,
                        signal: reload.clone(),
                        pending: Arc::clone(&pending),
                        clock: Arc::clone(control.clock()),
                    }
                    .watch(),
                )
            });
            let mut running_doc = document.clone();
            loop {
                let end = tokio::select! {
                    result = control.run_until_reload(until, Some(&reload), &mut on_outcome) => result.map_err(CliError::runtime)?,
                    name = &mut signal => {
                        eprintln!("hoist: {name} received, stopping");
                        stopped_by = Some(name);
                        break;
                    }
                };
                if end == RunEnd::Completed {
                    break;
                }
                let Some(change) = pending.lock().unwrap_or_else(|e| e.into_inner()).take() else {
                    continue;
                };
                let at = control.clock().now();
                let rebuilt = hoist_core::assembly::build_reusing(
                    &change.document,
                    &registry,
                    Arc::clone(&sinks) as Arc<dyn EventSink>,
                    Some((&running_doc, &providers)),
                )
                .await;
                let refused = match &rebuilt {
                    Err(e) => Some(e.to_string()),
                    Ok(b) if b.virtual_time != virtual_time => Some(
                        "the change moves the run between the simulated cloud's virtual time and the wall clock; restart to apply it".to_owned(),
                    ),
                    Ok(_) => None,
                };
                if let Some(errors) = refused {
                    reload::reject(
                        &audit,
                        sinks.as_ref(),
                        at,
                        (&args.file, &change.fingerprint, &running_print),
                        &errors,
                    );
                    continue;
                }
                let Ok(rebuilt) = rebuilt else { continue };
                let changes = hoist_core::config::diff(&running_doc.policy, &change.document.policy);
                let adopted = control.adopt(rebuilt.control);
                providers = rebuilt.providers;
                let git = reload::git_commit(&args.file);
                let name = args.file.display().to_string();
                if let Err(e) = audit.append(&AuditRecord::ConfigChanged {
                    at,
                    file: &name,
                    fingerprint: change.fingerprint.clone(),
                    previous: &running_print,
                    changes: &changes,
                    commit: git.as_ref().map(|(c, _)| c.as_str()),
                    uncommitted: git.as_ref().map(|(_, dirty)| *dirty),
                }) {
                    tracing::error!(error = %e, "audit log write failed");
                }
                sinks.emit(&hoist_core::events::Event::ConfigApplied {
                    file: name.clone(),
                    fingerprint: change.fingerprint.clone(),
                });
                let restart_only: Vec<&str> = changes
                    .iter()
                    .filter_map(|c| {
                        ["alerts", "costs.ledger", "costs.ledger_every"]
                            .into_iter()
                            .find(|p| c.path == *p || c.path.starts_with(&format!("{p}.")))
                    })
                    .collect();
                println!(
                    "hoist: reloaded {name} ({} → {}): {} change(s); {} group(s) kept their memory, {} added, {} removed",
                    running_print,
                    change.fingerprint,
                    changes.len(),
                    adopted.kept,
                    adopted.added,
                    adopted.removed
                );
                if !restart_only.is_empty() {
                    eprintln!(
                        "hoist: warning: changes to {} take effect at the next restart",
                        restart_only.join(", ")
                    );
                }
                running_print = change.fingerprint;
                running_doc = change.document;
            }
            if let Some(watcher) = watcher {
                watcher.abort();
            }
        }
        let end = control.clock().now();
        if let Some((lease, task)) = renewal {
            task.abort();
            lease.release().await;
        }
        let reason = stopped_by.map_or_else(|| "completed".to_owned(), |s| format!("stopped by {s}"));
        audit
            .append(&AuditRecord::Stopped { at: end, reason: &reason })
            .map_err(CliError::runtime)?;
        if let Err(e) = ledger.finish() {
            eprintln!("warning: cost ledger {}: {e}", ledger_path.display());
        }
        if let Some(engine) = &alerts {
            engine.shutdown().await;
        }
        if let Some(server) = server {
            server.shutdown().await;
        }

        println!();
        println!(
            "summary: {} → {} ({})",
            start.format("%Y-%m-%d %H:%M"),
            end.format("%Y-%m-%d %H:%M"),
            HumanDuration((end - start).to_std().unwrap_or_default())
        );
        println!(
            "{:<20} {:>6} {:>6} {:>6} {:>6} {:>9} {:>8}",
            "GROUP", "EVALS", "OUT", "IN", "FAILED", "RANGE", "FINAL"
        );
        for (group, t) in &tallies {
            println!(
                "{:<20} {:>6} {:>6} {:>6} {:>6} {:>9} {:>8}",
                group,
                t.evaluations,
                t.scale_outs,
                t.scale_ins,
                t.failures,
                format!("{}–{}", t.lowest.unwrap_or(0), t.highest.unwrap_or(0)),
                t.last.map(|v| v.to_string()).unwrap_or_else(|| "?".into()),
            );
            if t.standby > 0 {
                println!(
                    "{:<20} {} change(s) not made: another replica held the leadership",
                    "", t.standby
                );
            }
            if t.holds_for_metrics > 0 {
                println!(
                    "{:<20} held {} time(s) for missing or unusable metrics",
                    "", t.holds_for_metrics
                );
            }
        }
        for (name, provider) in &providers {
            let metered = control.metered_cost(name);
            let metered_money = metered.as_ref().map(|(reading, currency)| {
                hoist_core::Money::new(
                    reading.total(),
                    currency
                        .clone()
                        .map_or_else(hoist_core::Currency::usd, hoist_core::Currency),
                )
            });
            // The provider's own bill for the run, where billing is simulated (a real cloud's
            // bill lags by hours, so a run of minutes has none to compare with).
            let mut billed = None;
            if let Some(billing) = &provider.set.billing
                && virtual_time
                && billing.capabilities().actual_cost
                && end > start
            {
                let query = CostQuery {
                    range: TimeRange { start, end },
                    granularity: CostGranularity::Daily,
                    group_by: None,
                };
                if let Ok(entries) = billing.cost(&query).await {
                    let currency = entries
                        .first()
                        .map_or_else(hoist_core::Currency::usd, |e| e.amount.currency.clone());
                    billed = Some(hoist_core::Money::new(
                        entries.iter().map(|e| e.amount.amount).sum(),
                        currency,
                    ));
                }
            }
            match (billed, metered_money) {
                (Some(total), Some(metered)) => {
                    let drift = hoist_core::meter::Drift {
                        metered: metered.amount,
                        billed: total.amount,
                    };
                    println!(
                        "cost on {name}: {total} (metered {metered}, drift {:.2} %)",
                        drift.relative() * hoist_core::Decimal::from(100)
                    );
                }
                (Some(total), None) => println!("cost on {name}: {total}"),
                (None, Some(metered)) if end > start => {
                    println!("metered cost on {name}: {metered} (catalog prices x instance time)");
                }
                _ => {}
            }
        }
        for status in control.budget_statuses() {
            let pct = |v: f64| if status.amount > 0.0 { v / status.amount * 100.0 } else { 0.0 };
            println!(
                "budget {} ({}, {}): spent {:.2} of {:.2} {} ({:.1} %), forecast {:.2} ({:.1} %), {}",
                status.budget,
                status.period,
                status.scope,
                status.spent,
                status.amount,
                status.currency,
                pct(status.spent),
                status.forecast,
                pct(status.forecast),
                status
                    .rung
                    .map_or_else(|| "inside the budget".to_owned(), |r| format!("rung {r}")),
            );
            if let Some((from, rate, as_of)) = &status.converted_from {
                println!("  (amount converted from {from} at {rate} as of {as_of})");
            }
        }
        if !quiet {
            println!("cost ledger: {} (read it with `hoist cost {}`)", ledger_path.display(), args.file.display());
        }
        let failures: u64 = tallies.values().map(|t| t.failures).sum();
        if failures > 0 {
            return Err(CliError::runtime(format!(
                "{failures} scaling action(s) or observation(s) failed (see above and {})",
                audit_path.display()
            )));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Where the cost ledger goes: `--cost-ledger`, else the policy's `costs.ledger` (relative to
/// the policy file), else `hoist-costs.jsonl` in the working directory.
pub fn ledger_path(
    document: &hoist_core::config::PolicyDocument,
    given: Option<&std::path::Path>,
) -> PathBuf {
    given
        .map(std::path::Path::to_path_buf)
        .or_else(|| {
            document
                .policy
                .costs
                .ledger
                .as_ref()
                .map(|p| document.base_dir.join(p))
        })
        .unwrap_or_else(|| PathBuf::from("hoist-costs.jsonl"))
}

/// The leadership of `--leader-elect`, on the backend chosen with `--leader-backend`.
#[derive(Debug)]
enum LeaderLock {
    /// A Lease in the cluster of the policy's first `kubernetes:` provider.
    #[cfg(feature = "kubernetes")]
    Kubernetes(Arc<hoist_kubernetes::LeaseLock>),
    /// A key with a lease on etcd.
    #[cfg(feature = "etcd")]
    Etcd(Arc<hoist_etcd::EtcdLeadership>),
}

impl LeaderLock {
    /// Renews the leadership (or campaigns for it) every retry period, until the task is
    /// aborted.
    fn spawn_renewal(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        match **self {
            #[cfg(feature = "kubernetes")]
            LeaderLock::Kubernetes(ref lock) => lock.spawn_renewal(),
            #[cfg(feature = "etcd")]
            LeaderLock::Etcd(ref lock) => lock.spawn_renewal(),
        }
    }

    /// The state store in the election backend, where it has one (etcd).
    fn state_store(&self) -> Option<Arc<dyn hoist_core::state::StateStore>> {
        match *self {
            #[cfg(feature = "kubernetes")]
            LeaderLock::Kubernetes(_) => None,
            #[cfg(feature = "etcd")]
            LeaderLock::Etcd(ref lock) => {
                Some(Arc::clone(lock) as Arc<dyn hoist_core::state::StateStore>)
            }
        }
    }

    /// Hands the leadership over at shutdown, so another replica takes it at once rather than
    /// after the lease duration.
    async fn release(&self) {
        match *self {
            #[cfg(feature = "kubernetes")]
            LeaderLock::Kubernetes(ref lock) => lock.release().await,
            #[cfg(feature = "etcd")]
            LeaderLock::Etcd(ref lock) => lock.resign().await,
        }
    }
}

#[async_trait::async_trait]
impl hoist_core::leadership::Leadership for LeaderLock {
    async fn may_act(&self) -> bool {
        match *self {
            #[cfg(feature = "kubernetes")]
            LeaderLock::Kubernetes(ref lock) => {
                hoist_core::leadership::Leadership::may_act(&**lock).await
            }
            #[cfg(feature = "etcd")]
            LeaderLock::Etcd(ref lock) => {
                hoist_core::leadership::Leadership::may_act(&**lock).await
            }
        }
    }

    fn identity(&self) -> &str {
        match *self {
            #[cfg(feature = "kubernetes")]
            LeaderLock::Kubernetes(ref lock) => {
                hoist_core::leadership::Leadership::identity(&**lock)
            }
            #[cfg(feature = "etcd")]
            LeaderLock::Etcd(ref lock) => hoist_core::leadership::Leadership::identity(&**lock),
        }
    }
}

/// The leadership of `--leader-elect`: a Lease in the cluster of the policy's first
/// `kubernetes:` provider (the default when there is one), or a key on etcd
/// (`--leader-backend etcd --etcd-endpoints URL`, the default without a `kubernetes:` provider
/// when endpoints are given).
async fn leader_lock(
    document: &hoist_core::config::PolicyDocument,
    args: &LeaderArgs,
) -> Result<Arc<LeaderLock>, CliError> {
    let has_kubernetes = !policy::settings_of_kind(document, "kubernetes").is_empty();
    let backend = match (
        args.leader_backend,
        has_kubernetes,
        args.etcd_endpoints.is_some(),
    ) {
        (Some(backend), ..) => backend,
        (None, true, _) => LeaderBackend::Kubernetes,
        (None, false, true) => LeaderBackend::Etcd,
        (None, false, false) => {
            return Err(CliError::input(
                "--leader-elect needs somewhere to hold the leadership: a `kubernetes:` provider in the policy (a Lease in its cluster), or --leader-backend etcd --etcd-endpoints http://HOST:PORT[,...]",
            ));
        }
    };
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "hoist".to_owned());
        format!("{host}-{}", std::process::id())
    });
    match backend {
        LeaderBackend::Kubernetes if args.etcd_endpoints.is_some() => Err(CliError::input(
            "--etcd-endpoints is for --leader-backend etcd, and the leadership is held in a Kubernetes Lease here (the default when the policy has a `kubernetes:` provider): add --leader-backend etcd to hold it on etcd",
        )),
        LeaderBackend::Kubernetes => kubernetes_lock(document, args, identity).await,
        LeaderBackend::Etcd => etcd_lock(args, identity).await,
    }
}

/// The Lease lock, in the cluster of the policy's first `kubernetes:` provider.
#[cfg(feature = "kubernetes")]
async fn kubernetes_lock(
    document: &hoist_core::config::PolicyDocument,
    args: &LeaderArgs,
    identity: String,
) -> Result<Arc<LeaderLock>, CliError> {
    let settings = policy::settings_of_kind(document, "kubernetes")
        .into_iter()
        .next()
        .ok_or_else(|| {
            CliError::input(
                "--leader-backend kubernetes needs a `kubernetes:` provider in the policy: the Lease lives in its cluster (or hold the leadership on etcd: --leader-backend etcd --etcd-endpoints URL)",
            )
        })?;
    let mut settings =
        hoist_kubernetes::KubernetesSettings::from_value(&settings).map_err(CliError::input)?;
    if let Some(path) = &settings.kubeconfig
        && path.is_relative()
    {
        settings.kubeconfig = Some(document.base_dir.join(path));
    }
    let provider = hoist_kubernetes::KubernetesProvider::connect("leader-election", settings)
        .await
        .map_err(CliError::runtime)?;
    let lock = hoist_kubernetes::LeaseLock::new(
        provider.client().clone(),
        hoist_kubernetes::LeaseSettings {
            name: args.lease_name.clone(),
            namespace: args.lease_namespace.clone(),
            lease_duration: args.lease_duration.get(),
            renew_deadline: args.renew_deadline.get(),
            retry_period: args.retry_period.get(),
            identity,
        },
    )
    .map_err(CliError::input)?;
    Ok(Arc::new(LeaderLock::Kubernetes(Arc::new(lock))))
}

/// Without the Kubernetes provider compiled in there is nowhere to keep a Lease.
#[cfg(not(feature = "kubernetes"))]
async fn kubernetes_lock(
    _document: &hoist_core::config::PolicyDocument,
    _args: &LeaderArgs,
    _identity: String,
) -> Result<Arc<LeaderLock>, CliError> {
    Err(CliError::input(
        "--leader-backend kubernetes needs the `kubernetes` feature of this build",
    ))
}

/// The election key on etcd, `<--etcd-prefix>/<--lease-name>`.
#[cfg(feature = "etcd")]
async fn etcd_lock(args: &LeaderArgs, identity: String) -> Result<Arc<LeaderLock>, CliError> {
    let endpoints = args.etcd_endpoints.clone().ok_or_else(|| {
        CliError::input("--leader-backend etcd needs --etcd-endpoints http://HOST:PORT[,...]")
    })?;
    let (retry, renew) = (args.retry_period.get(), args.renew_deadline.get());
    let settings = hoist_etcd::EtcdSettings {
        endpoints,
        prefix: args.etcd_prefix.clone(),
        name: args.lease_name.clone(),
        lease_duration: args.lease_duration.get(),
        renew_deadline: renew,
        retry_period: retry,
        // Each etcd call may take the retry period, at least a second, at most the deadline.
        call_timeout: retry.max(std::time::Duration::from_secs(1)).min(renew),
        identity,
    };
    let lock = hoist_etcd::EtcdLeadership::connect(settings)
        .await
        .map_err(|e| match e.kind() {
            hoist_core::ErrorKind::InvalidInput | hoist_core::ErrorKind::Config => {
                CliError::input(e)
            }
            _ => CliError::runtime(e),
        })?;
    Ok(Arc::new(LeaderLock::Etcd(Arc::new(lock))))
}

/// Without the etcd backend compiled in there is no etcd client.
#[cfg(not(feature = "etcd"))]
async fn etcd_lock(_args: &LeaderArgs, _identity: String) -> Result<Arc<LeaderLock>, CliError> {
    Err(CliError::input(
        "--leader-backend etcd needs the `etcd` feature, which this build lacks: build with `cargo build --release --features etcd` (it needs protoc: Debian's protobuf-compiler and libprotobuf-dev)",
    ))
}

/// A future that completes with the signal's name on SIGINT (Ctrl-C) or SIGTERM (what a
/// service manager or Kubernetes sends to stop a process). The handlers are installed when this
/// is called.
pub(crate) fn shutdown_signal() -> Result<impl std::future::Future<Output = &'static str>, String> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())
            .map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
        let mut interrupt = signal(SignalKind::interrupt())
            .map_err(|e| format!("cannot listen for SIGINT: {e}"))?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        })
    }
}

fn record(tallies: &mut BTreeMap<String, GroupTally>, outcome: &GroupOutcome) {
    match outcome {
        GroupOutcome::ObserveFailed {
            provider, group, ..
        } => {
            let t = tallies.entry(group.clone()).or_default();
            t.provider.clone_from(provider);
            t.evaluations += 1;
            t.failures += 1;
        }
        GroupOutcome::Decided {
            provider,
            decision,
            action,
        } => {
            let t = tallies.entry(decision.group.clone()).or_default();
            t.provider.clone_from(provider);
            t.evaluations += 1;
            match (decision.direction, action) {
                (_, Action::Failed(_)) => t.failures += 1,
                (_, Action::Standby) => t.standby += 1,
                (Direction::Out, _) => t.scale_outs += 1,
                (Direction::In, _) => t.scale_ins += 1,
                (Direction::Hold, _) => {}
            }
            if decision
                .reasons
                .iter()
                .any(|r| r.message.ends_with("holding") || r.source.starts_with("metrics."))
            {
                t.holds_for_metrics += 1;
            }
            let applied = if matches!(action, Action::Applied) {
                decision.desired
            } else {
                decision.current
            };
            t.lowest = Some(t.lowest.map_or(applied, |v| v.min(applied)));
            t.highest = Some(t.highest.map_or(applied, |v| v.max(applied)));
            t.last = Some(applied);
        }
    }
}

fn print_outcome(outcome: &GroupOutcome) {
    match outcome {
        GroupOutcome::ObserveFailed {
            provider,
            group,
            error,
        } => println!("{group} on {provider}: cannot observe: {error}"),
        GroupOutcome::Decided {
            decision, action, ..
        } => {
            if decision.direction == Direction::Hold && !matches!(action, Action::Failed(_)) {
                return;
            }
            let why = decision
                .reasons
                .iter()
                .find(|r| r.recommended == Some(decision.desired))
                .or_else(|| decision.reasons.first())
                .map(|r| format!("{}: {}", r.source, r.message))
                .unwrap_or_default();
            let status = match action {
                Action::Applied => String::new(),
                Action::DryRun => " [dry run]".into(),
                Action::Standby => " [standby: not the leader]".into(),
                Action::Unchanged => String::new(),
                Action::Failed(e) => format!(" [FAILED: {e}]"),
            };
            println!(
                "{}  {:<16} {:>4} → {:<4}{status}  {why}",
                decision.at.format("%Y-%m-%d %H:%M:%S"),
                decision.group,
                decision.current,
                decision.desired,
            );
        }
    }
}
