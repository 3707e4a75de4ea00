//! A load generator for the routing endpoint (`hoist route bench`): a fixed number of routing
//! requests from a fixed number of concurrent clients, each answer released with
//! `POST /v1/done`, measuring the latency of `POST /v1/route`, the requests per second, how
//! evenly the endpoints were used and how often a session stayed where it was.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hoist_api::{Error, Result};
use hoist_engine::route::{PoolLoad, RouteRequest, Routed};

/// The most concurrent clients.
pub const MAX_CONCURRENCY: usize = 1024;

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadTest {
    /// The endpoint's base URL (`http://127.0.0.1:9300`).
    pub url: String,
    /// Routing requests to send in all.
    pub requests: u64,
    /// Clients sending at once, each waiting for its answer (and release) before its next.
    pub concurrency: usize,
    /// Distinct sessions, each request taking one at random; 0 sends no sessions.
    pub sessions: u64,
    /// The requests' kind.
    pub kind: Option<String>,
    /// How long each unit of work is held before it is released.
    pub hold: Duration,
    /// Whether each answer is released with `POST /v1/done` (without, work in flight only
    /// grows and sessions spill past their owners' load bounds).
    pub release: bool,
    /// The longest wait for one answer.
    pub timeout: Duration,
}

impl Default for LoadTest {
    fn default() -> Self {
        LoadTest {
            url: format!("http://{}", super::DEFAULT_ADDRESS),
            requests: 20_000,
            concurrency: 8,
            sessions: 0,
            kind: None,
            hold: Duration::ZERO,
            release: true,
            timeout: Duration::from_secs(10),
        }
    }
}

/// What was measured.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Routing requests sent.
    pub requests: u64,
    /// Answered with `200`.
    pub ok: u64,
    /// The others, by status code or `connection` for a transport error, with the first
    /// message seen.
    pub failures: BTreeMap<String, (u64, String)>,
    /// From the first request to the last answer (and release).
    pub elapsed: Duration,
    /// Routing requests per second over `elapsed`.
    pub routes_per_second: f64,
    /// Median latency of `POST /v1/route`.
    pub latency_p50: Duration,
    /// 90th percentile.
    pub latency_p90: Duration,
    /// 99th percentile.
    pub latency_p99: Duration,
    /// The slowest.
    pub latency_max: Duration,
    /// Answers per endpoint (`pool/endpoint`), endpoints of the pools that got none included.
    pub per_endpoint: BTreeMap<String, u64>,
    /// The busiest endpoint's share over the mean share (1 is perfect); `None` without answers.
    pub balance: Option<f64>,
    /// Of the answers to requests with a session, the share that went to the session's owner
    /// on the ring.
    pub sticky_share: Option<f64>,
    /// Of the answers to a session's second and later requests, the share on the same
    /// endpoint as its previous answer.
    pub stayed_share: Option<f64>,
}

#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<Duration>,
    per_endpoint: HashMap<String, u64>,
    failures: BTreeMap<String, (u64, String)>,
    with_session: u64,
    sticky: u64,
    repeats: u64,
    stayed: u64,
}

impl Tally {
    fn fail(&mut self, what: String, message: String) {
        self.failures.entry(what).or_insert((0, message)).0 += 1;
    }
}

/// Runs `test` against the endpoint and measures it. Fails when the parameters are out of
/// range or the endpoint cannot be reached at all.
pub async fn run(test: &LoadTest) -> Result<LoadReport> {
    if test.requests == 0 {
        return Err(Error::invalid_input("--requests must be at least 1"));
    }
    if !(1..=MAX_CONCURRENCY).contains(&test.concurrency) {
        return Err(Error::invalid_input(format!(
            "--concurrency must be between 1 and {MAX_CONCURRENCY}, got {}",
            test.concurrency
        )));
    }
    let base = test.url.trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder()
        .timeout(test.timeout)
        .pool_max_idle_per_host(test.concurrency)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| Error::config(format!("cannot build an HTTP client: {e}")))?;
    let health = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map_err(|e| Error::invalid_input(format!("cannot reach {base}: {e}")))?;
    if !health.status().is_success() {
        return Err(Error::invalid_input(format!(
            "{base}/healthz answered {}; is it `hoist route`?",
            health.status()
        )));
    }

    let next = Arc::new(AtomicU64::new(0));
    let last_endpoint: Arc<Mutex<HashMap<u64, String>>> = Arc::default();
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..test.concurrency {
        let (client, base, next, last_endpoint) = (
            client.clone(),
            base.clone(),
            Arc::clone(&next),
            Arc::clone(&last_endpoint),
        );
        let test = test.clone();
        workers.spawn(async move {
            let mut tally = Tally::default();
            let mut rng =
                0x9e37_79b9_7f4a_7c15_u64 ^ (worker as u64 + 1).wrapping_mul(0xff51_afd7_ed55_8ccd);
            while next.fetch_add(1, Ordering::Relaxed) < test.requests {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let session = (test.sessions > 0).then(|| rng % test.sessions);
                let request = RouteRequest {
                    kind: test.kind.clone(),
                    session: session.map(|s| format!("session-{s}")),
                    ..RouteRequest::default()
                };
                let sent = Instant::now();
                let answer = client
                    .post(format!("{base}/v1/route"))
                    .json(&request)
                    .send()
                    .await;
                let response = match answer {
                    Ok(response) => response,
                    Err(e) => {
                        tally.fail("connection".into(), e.to_string());
                        continue;
                    }
                };
                let status = response.status();
                let body = response.bytes().await;
                tally.latencies.push(sent.elapsed());
                let body = match body {
                    Ok(body) => body,
                    Err(e) => {
                        tally.fail("connection".into(), e.to_string());
                        continue;
                    }
                };
                if !status.is_success() {
                    tally.fail(
                        status.as_u16().to_string(),
                        String::from_utf8_lossy(&body).into_owned(),
                    );
                    continue;
                }
                let routed: Routed = match serde_json::from_slice(&body) {
                    Ok(routed) => routed,
                    Err(e) => {
                        tally.fail("unreadable answer".into(), e.to_string());
                        continue;
                    }
                };
                let key = format!("{}/{}", routed.pool, routed.endpoint.id);
                if let Some(session) = session {
                    tally.with_session += 1;
                    tally.sticky += u64::from(routed.sticky);
                    let previous = last_endpoint
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(session, key.clone());
                    if let Some(previous) = previous {
                        tally.repeats += 1;
                        tally.stayed += u64::from(previous == key);
                    }
                }
                *tally.per_endpoint.entry(key).or_default() += 1;
                if !test.hold.is_zero() {
                    tokio::time::sleep(test.hold).await;
                }
                if test.release {
                    let done =
                        serde_json::json!({"pool": routed.pool, "endpoint": routed.endpoint.id});
                    match client
                        .post(format!("{base}/v1/done"))
                        .json(&done)
                        .send()
                        .await
                    {
                        Ok(response) if !response.status().is_success() => {
                            let status = response.status();
                            let text = response.text().await.unwrap_or_default();
                            tally.fail(format!("done {}", status.as_u16()), text);
                        }
                        Ok(_) => {}
                        Err(e) => tally.fail("connection".into(), e.to_string()),
                    }
                }
            }
            tally
        });
    }
    let mut total = Tally::default();
    while let Some(joined) = workers.join_next().await {
        let tally = joined.map_err(|e| Error::transient(format!("a load worker failed: {e}")))?;
        total.latencies.extend(tally.latencies);
        for (key, n) in tally.per_endpoint {
            *total.per_endpoint.entry(key).or_default() += n;
        }
        for (what, (n, message)) in tally.failures {
            total.failures.entry(what).or_insert((0, message)).0 += n;
        }
        total.with_session += tally.with_session;
        total.sticky += tally.sticky;
        total.repeats += tally.repeats;
        total.stayed += tally.stayed;
    }
    let elapsed = started.elapsed();

    let mut per_endpoint: BTreeMap<String, u64> = total.per_endpoint.into_iter().collect();
    // Endpoints of the pools used that got nothing count in the balance too.
    if let Ok(response) = client.get(format!("{base}/v1/pools")).send().await
        && let Ok(pools) = response.json::<serde_json::Value>().await
        && let Some(pools) = pools.get("pools").cloned()
        && let Ok(pools) = serde_json::from_value::<Vec<PoolLoad>>(pools)
    {
        let used: Vec<String> = per_endpoint
            .keys()
            .filter_map(|k| k.split_once('/').map(|(p, _)| p.to_owned()))
            .collect();
        for pool in pools.iter().filter(|p| used.contains(&p.pool)) {
            for endpoint in &pool.endpoints {
                per_endpoint
                    .entry(format!("{}/{}", pool.pool, endpoint.endpoint.id))
                    .or_default();
            }
        }
    }
    let ok: u64 = per_endpoint.values().sum();
    let balance = (ok > 0).then(|| {
        let max = per_endpoint.values().copied().max().unwrap_or(0) as f64;
        max / (ok as f64 / per_endpoint.len() as f64)
    });
    let mut latencies = total.latencies;
    latencies.sort_unstable();
    let quantile = |q: f64| -> Duration {
        if latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1]
    };
    let share = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
    Ok(LoadReport {
        requests: test.requests,
        ok,
        failures: total.failures,
        elapsed,
        routes_per_second: test.requests as f64 / elapsed.as_secs_f64().max(1e-9),
        latency_p50: quantile(0.50),
        latency_p90: quantile(0.90),
        latency_p99: quantile(0.99),
        latency_max: latencies.last().copied().unwrap_or_default(),
        per_endpoint,
        balance,
        sticky_share: share(total.sticky, total.with_session),
        stayed_share: share(total.stayed, total.repeats),
    })
}

fn millis(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "requests     {} sent, {} routed, {} refused or failed",
            self.requests,
            self.ok,
            self.requests - self.ok.min(self.requests)
        )?;
        writeln!(
            f,
            "throughput   {:.0} routing requests/s over {:.2} s",
            self.routes_per_second,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "latency      p50 {}  p90 {}  p99 {}  max {}",
            millis(self.latency_p50),
            millis(self.latency_p90),
            millis(self.latency_p99),
            millis(self.latency_max)
        )?;
        if let Some(balance) = self.balance {
            writeln!(
                f,
                "balance      {balance:.3} (busiest endpoint's share over the mean share; 1 is even) over {} endpoints",
                self.per_endpoint.len()
            )?;
        }
        if let Some(sticky) = self.sticky_share {
            writeln!(
                f,
                "sticky       {:.2} % of session requests went to the session's owner",
                sticky * 100.0
            )?;
        }
        if let Some(stayed) = self.stayed_share {
            writeln!(
                f,
                "stayed       {:.2} % of repeated session requests landed where the previous one did",
                stayed * 100.0
            )?;
        }
        writeln!(f, "per endpoint")?;
        for (endpoint, n) in &self.per_endpoint {
            let share = if self.ok > 0 {
                *n as f64 * 100.0 / self.ok as f64
            } else {
                0.0
            };
            writeln!(f, "  {endpoint:<32} {n:>9}  {share:>6.2} %")?;
        }
        for (what, (n, message)) in &self.failures {
            let message: String = message.chars().take(200).collect();
            writeln!(f, "failed       {n} × {what}: {}", message.trim())?;
        }
        Ok(())
    }
}
