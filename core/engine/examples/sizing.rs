//! How many groups one `hoist run` process carries: the control loop over N groups on the
//! simulated cloud (two policies each: target tracking on utilisation and a threshold on p95
//! latency), timing each round, with and without the state store, and the process's peak
//! memory.
//!
//! ```text
//! cargo run --release -p hoist-engine --example sizing -- [GROUPS] [ROUNDS]
//! ```
//!
//! Defaults: 4,000 groups, 20 rounds. Prints the median and slowest round, the median write of
//! the state store, and the peak resident memory (`VmHWM`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hoist_engine::config::parse_str;
use hoist_engine::control::{ControlLoop, ManagedGroup};
use hoist_engine::state::RedbStore;
use hoist_sim::{SimGroupSpec, SimulatedCloud};

const INTERVAL: Duration = Duration::from_secs(30);

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn rounds(groups: usize, rounds: usize, state: Option<&Path>) -> (Duration, Duration) {
    let mut text = String::from("providers:\n  sim:\n    simulated: {}\ngroups:\n");
    for i in 0..groups {
        text.push_str(&format!(
            "  - name: g{i}\n    provider: sim\n    min: 1\n    max: 50\n    policies:\n      - target_tracking: {{ metric: utilization, target: 0.6 }}\n      - threshold: {{ metric: latency_p95, upper: 0.25, lower: 0.05, periods: 3 }}\n"
        ));
    }
    let policy = parse_str(Path::new("sizing.yaml"), &text)
        .expect("policy")
        .policy;
    let mut builder = SimulatedCloud::builder().seed(1);
    for i in 0..groups {
        builder = builder.group(SimGroupSpec {
            desired: 2,
            max: 50,
            ..SimGroupSpec::new(format!("g{i}"))
        });
    }
    let cloud = builder.build().expect("cloud");
    let managed = policy
        .groups
        .iter()
        .map(|g| ManagedGroup::new(g.clone(), cloud.provider_set("sim")))
        .collect();
    let mut control = ControlLoop::new(managed, cloud.clock(), INTERVAL);
    if let Some(path) = state {
        control = control.with_state(Arc::new(RedbStore::open(path).expect("state store")));
    }
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        control.evaluate_once().await;
        times.push(started.elapsed());
        cloud.advance(INTERVAL);
    }
    let slowest = times.iter().max().copied().unwrap_or_default();
    (median(times), slowest)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let groups: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4_000);
    let count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let (median_plain, slowest_plain) = rounds(groups, count, None).await;
    println!(
        "{groups} groups, {count} rounds, no state store: median {:.1} ms per round, slowest {:.1} ms",
        median_plain.as_secs_f64() * 1e3,
        slowest_plain.as_secs_f64() * 1e3
    );
    let dir = std::env::temp_dir().join(format!("hoist-sizing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (median_state, slowest_state) = rounds(groups, count, Some(&dir.join("state.redb"))).await;
    let size = std::fs::metadata(dir.join("state.redb")).map_or(0, |m| m.len());
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{groups} groups, {count} rounds, with --state: median {:.1} ms per round, slowest {:.1} ms; state file {:.1} MB",
        median_state.as_secs_f64() * 1e3,
        slowest_state.as_secs_f64() * 1e3,
        size as f64 / 1e6
    );
    if let Some(mb) = peak_rss_mb() {
        println!("peak resident memory: {mb:.0} MB");
    }
}
