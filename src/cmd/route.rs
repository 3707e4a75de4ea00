//! `hoist route`: the routing endpoint. Serves the policy file's `routes:` over HTTP
//! ([`hoist_telemetry::route::RouteServer`]) and keeps every routed pool's endpoints in step with
//! its member groups' running instances; `hoist route bench` measures a running endpoint.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hoist_core::config::{ConfigErrors, PolicyDocument};
use hoist_core::duration::HumanDuration;
use hoist_core::engine::route::{Endpoint, Router, validate_rules};
use hoist_core::events::NoEvents;
use hoist_core::model::InstanceState;
use hoist_core::provider::{InstanceCatalog, ScalingProvider};
use hoist_telemetry::logging::LogFormat;
use hoist_telemetry::route::{RouteServer, load};

use super::run::LogFormatArg;
use super::{CliError, CliResult, policy, runtime};

/// What `hoist route --help` adds after the options: the JSON in and out.
const ROUTE_HELP: &str = "\
HTTP API (JSON in and out):

  POST /v1/route   where should this unit of work run?
    in:  {\"kind\": \"query\", \"labels\": {\"tenant\": \"acme\"},
          \"needs\": {\"cpu\": 2, \"memory_gib\": 4, \"io\": \"high\"}, \"session\": \"user-42\"}
         (every field optional; needs: cpu in cores, memory_gib, io and network low|medium|high)
    out: {\"pool\": \"web\", \"rule\": \"queries\", \"rule_index\": 0,
          \"endpoint\": {\"id\": \"i-00000002\", \"group\": \"web\", \"provider\": \"cheap\", \"weight\": 2.0},
          \"sticky\": true, \"reason\": \"the session's owner on the ring (3 in flight, bound 5)\"}
    422 {\"error\": \"...\"} when the body is not such JSON or no rule matches it;
    503 when the pool has no endpoint in service; 413 for a body over 64 KiB.
  POST /v1/done    the work is finished: {\"pool\": \"web\", \"endpoint\": \"i-00000002\"}
  GET  /v1/pools   every pool's endpoints, work in flight and totals
  GET  /metrics    Prometheus text: hoist_route_requests_total{pool,rule},
                   hoist_route_in_flight{pool}, hoist_route_sticky_moves_total{pool}, ...
  GET  /healthz    ok

Example:
  hoist route policy.yml --listen 127.0.0.1:9300 &
  curl -s localhost:9300/v1/route -d '{\"kind\": \"query\", \"session\": \"user-42\"}'
  curl -s localhost:9300/v1/done -d '{\"pool\": \"web\", \"endpoint\": \"i-00000002\"}'

Measure it:
  hoist route bench --url http://127.0.0.1:9300 --requests 20000 --concurrency 8 --sessions 1000
";

/// Options of `hoist route`.
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "The HTTP API's JSON in and out, with an example: hoist route --help",
    after_long_help = ROUTE_HELP
)]
pub struct Args {
    /// Measure a running endpoint instead of serving one.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The policy file: its `routes:` and the `pools:` they name.
    #[arg(value_name = "FILE", required = true)]
    pub file: Option<PathBuf>,
    /// Where to listen (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = hoist_telemetry::route::DEFAULT_ADDRESS, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// How often each pool's member groups are described and its endpoints replaced by their
    /// running instances.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = super::run::parse_duration)]
    pub refresh: HumanDuration,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormatArg::Human)]
    pub log_format: LogFormatArg,
    /// Log level or filter.
    #[arg(long, default_value = "warn,aws_config=error", value_name = "FILTER")]
    pub log_level: String,
}

/// Subcommands of `hoist route`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Drive a running `hoist route` with a bounded local load and report p50/p99 latency,
    /// requests per second, the balance over endpoints and the share of sticky answers.
    Bench(BenchArgs),
}

/// Options of `hoist route bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The endpoint's base URL.
    #[arg(long, default_value = "http://127.0.0.1:9300")]
    pub url: String,
    /// Routing requests to send.
    #[arg(long, default_value_t = 20_000)]
    pub requests: u64,
    /// Clients sending at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Distinct sessions, one drawn at random per request; 0 sends none.
    #[arg(long, default_value_t = 0)]
    pub sessions: u64,
    /// The requests' kind.
    #[arg(long)]
    pub kind: Option<String>,
    /// How long each unit of work is held before it is released.
    #[arg(long, default_value = "0s", value_parser = super::run::parse_duration)]
    pub hold: HumanDuration,
    /// Do not release answers with `POST /v1/done` (work in flight only grows).
    #[arg(long)]
    pub no_done: bool,
}

/// Runs `hoist route`.
pub fn run(args: Args) -> CliResult {
    if let Some(Command::Bench(bench)) = args.command {
        return run_bench(bench);
    }
    let Some(file) = args.file else {
        return Err(CliError::input("hoist route needs a policy file"));
    };
    let format = match args.log_format {
        LogFormatArg::Human => LogFormat::Human,
        LogFormatArg::Json => LogFormat::Json,
    };
    hoist_telemetry::logging::init(format, &args.log_level)
        .map_err(|e| CliError::input(format!("--log-level: {e}")))?;
    if args.refresh.get() < Duration::from_millis(100) {
        return Err(CliError::input("--refresh must be at least 100ms"));
    }
    let registry = policy::registry();
    let document = policy::load(&file, &registry)?;
    check_routes(&document)?;
    let router = Arc::new(Router::new(document.policy.routes.clone()));

    runtime()?.block_on(async {
        let built = policy::build(&document, &registry, Arc::new(NoEvents)).await?;
        let mut endpoints = PoolEndpoints::new(&document, &built.providers, Arc::clone(&router));
        endpoints.refresh().await;
        let server = RouteServer::start(args.listen, Arc::clone(&router))
            .await
            .map_err(|e| CliError::input(e.message()))?;
        println!(
            "hoist route: listening on http://{} (POST /v1/route, POST /v1/done, GET /v1/pools, /metrics)",
            server.local_addr()
        );
        for pool in router.pool_loads() {
            println!(
                "pool {}: {} endpoint{}",
                pool.pool,
                pool.endpoints.len(),
                if pool.endpoints.len() == 1 { "" } else { "s" }
            );
        }
        let signal = super::run::shutdown_signal().map_err(CliError::runtime)?;
        tokio::pin!(signal);
        let mut ticker = tokio::time::interval(args.refresh.get());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => endpoints.refresh().await,
                name = &mut signal => {
                    tracing::info!(signal = name, "stopping the routing endpoint");
                    break;
                }
            }
        }
        server.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// The file's routes must exist and be valid against its pools (the loader checks them too;
/// this names the problem when a file has no routes at all).
fn check_routes(document: &PolicyDocument) -> Result<(), CliError> {
    let policy = &document.policy;
    if policy.routes.is_empty() {
        return Err(CliError::input(format!(
            "{}: no `routes:`; hoist route needs rules such as `routes: [{{match: {{kind: query}}, pool: web}}]` naming the file's pools",
            document.path.display()
        )));
    }
    let pools: Vec<&str> = policy.pools.iter().map(|p| p.name.as_str()).collect();
    let problems: Vec<_> = validate_rules(&policy.routes, &pools)
        .into_iter()
        .map(|(field, message)| document.error_at(&field, message))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CliError::input(ConfigErrors(problems)))
    }
}

/// One member group of a routed pool, with the provider traits that describe it.
struct Member {
    provider: String,
    group: String,
    scaling: Option<Arc<dyn ScalingProvider>>,
    catalog: Option<Arc<dyn InstanceCatalog>>,
    /// Its running instances as last described, kept while a description fails.
    last: Vec<Endpoint>,
    /// Whether the last description failed (to warn once per failure streak).
    failing: bool,
}

/// Keeps the router's pools in step with their members' running instances.
struct PoolEndpoints {
    router: Arc<Router>,
    pools: Vec<(String, Vec<Member>)>,
    /// vCPUs by provider and instance class, looked up once.
    vcpus: HashMap<(String, String), f64>,
}

impl PoolEndpoints {
    fn new(
        document: &PolicyDocument,
        providers: &BTreeMap<String, hoist_core::registry::BuiltProvider>,
        router: Arc<Router>,
    ) -> Self {
        let pools = router
            .pools()
            .into_iter()
            .filter_map(|name| {
                let config = document.policy.pools.iter().find(|p| p.name == name)?;
                let members = config
                    .members
                    .iter()
                    .map(|m| {
                        let set = providers.get(&m.provider).map(|p| &p.set);
                        Member {
                            provider: m.provider.clone(),
                            group: m.group_id().to_owned(),
                            scaling: set.and_then(|s| s.scaling.clone()),
                            catalog: set.and_then(|s| s.catalog.clone()),
                            last: Vec::new(),
                            failing: false,
                        }
                    })
                    .collect();
                Some((name.to_owned(), members))
            })
            .collect();
        PoolEndpoints {
            router,
            pools,
            vcpus: HashMap::new(),
        }
    }

    /// Describes every member and replaces each pool's endpoints with the running instances
    /// (weighted by vCPUs when the provider has a catalog). A member whose description fails
    /// keeps its last endpoints, with a warning.
    async fn refresh(&mut self) {
        for (pool, members) in &mut self.pools {
            for member in members.iter_mut() {
                let Some(scaling) = &member.scaling else {
                    if !member.failing {
                        tracing::warn!(pool = %pool, provider = %member.provider, group = %member.group, "the member's provider offers no scaling groups; it gets no work");
                        member.failing = true;
                    }
                    continue;
                };
                let group = match scaling.describe_group(&member.group).await {
                    Ok(group) => group,
                    Err(error) => {
                        if !member.failing {
                            tracing::warn!(pool = %pool, provider = %member.provider, group = %member.group, %error, "cannot describe the member group; keeping its last endpoints");
                        }
                        member.failing = true;
                        continue;
                    }
                };
                if member.failing {
                    tracing::info!(pool = %pool, provider = %member.provider, group = %member.group, "the member group is described again");
                    member.failing = false;
                }
                let mut endpoints = Vec::new();
                for instance in group
                    .instances
                    .iter()
                    .filter(|i| i.state == InstanceState::Running)
                {
                    let key = (member.provider.clone(), instance.instance_class.clone());
                    let weight = match self.vcpus.get(&key) {
                        Some(&vcpus) => vcpus,
                        None => {
                            let vcpus = match &member.catalog {
                                Some(catalog) => catalog
                                    .instance_class(&instance.instance_class)
                                    .await
                                    .map(|c| c.vcpus)
                                    .ok()
                                    .filter(|v| v.is_finite() && *v > 0.0)
                                    .unwrap_or(1.0),
                                None => 1.0,
                            };
                            self.vcpus.insert(key, vcpus);
                            vcpus
                        }
                    };
                    endpoints.push(
                        Endpoint::new(instance.id.clone(), &member.group, &member.provider)
                            .with_weight(weight),
                    );
                }
                member.last = endpoints;
            }
            // An instance id found on two members (the same numbering on two providers) is
            // qualified as provider/group/id on both, so every endpoint's id is unique.
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for endpoint in members.iter().flat_map(|m| &m.last) {
                *seen.entry(endpoint.id.as_str()).or_default() += 1;
            }
            let endpoints: Vec<Endpoint> = members
                .iter()
                .flat_map(|m| &m.last)
                .map(|e| {
                    let mut e = e.clone();
                    if seen[e.id.as_str()] > 1 {
                        e.id = format!("{}/{}/{}", e.provider, e.group, e.id);
                    }
                    e
                })
                .collect();
            let count = endpoints.len();
            match self.router.set_endpoints(pool, endpoints) {
                Ok(change) if change.added > 0 || change.removed > 0 => {
                    tracing::info!(pool = %pool, endpoints = count, added = change.added, removed = change.removed, "pool endpoints changed");
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(pool = %pool, %error, "cannot set the pool's endpoints")
                }
            }
        }
    }
}

fn run_bench(args: BenchArgs) -> CliResult {
    let test = load::LoadTest {
        url: args.url,
        requests: args.requests,
        concurrency: args.concurrency,
        sessions: args.sessions,
        kind: args.kind,
        hold: args.hold.get(),
        release: !args.no_done,
        ..load::LoadTest::default()
    };
    let report = runtime()?
        .block_on(load::run(&test))
        .map_err(|e| CliError::input(e.message()))?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}
