//! The figures of a pool's failover: the pool's τ_U with its members' failure windows and
//! without them, and how soon after a down member recovers the split is back where it was.
//!
//! ```text
//! cargo run --release -p hoist-engine --example pool_outage -- examples/multi-cloud-pool.yml
//! ```
//!
//! The policy file runs twice on the simulated cloud in virtual time: as written, and with every
//! `outages:` list removed. τ_U is the share of minutes in which the members' serving capacity
//! together was below the pool's demand (`../shared/EVALUATION.md`). The split's return is
//! measured from the first record after a member came back from `down` until every member's
//! share of the pool is within 5 percentage points of its share just before it went down.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use hoist_api::RangeQuery;
use hoist_api::model::{MetricKind, MetricQuery, TimeRange};
use hoist_api::registry::ProviderRegistry;
use hoist_engine::assembly;
use hoist_engine::events::{Event, EventSink};
use hoist_engine::pool::{MemberState, PoolSplitRecord};

#[derive(Debug, Default)]
struct Splits(Mutex<Vec<PoolSplitRecord>>);

impl EventSink for Splits {
    fn emit(&self, event: &Event) {
        if let Event::PoolSplit(record) = event {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(record.clone());
        }
    }
}

struct Outcome {
    tau_u: f64,
    minutes: usize,
    splits: Vec<PoolSplitRecord>,
}

async fn run(path: &std::path::Path, outages: bool) -> Result<Outcome, String> {
    // A registry of its own: the two runs must not share a simulated world.
    let mut registry = ProviderRegistry::new();
    hoist_sim::register_builtins(&mut registry);
    let mut document = assembly::load(path, &registry, &[]).map_err(|e| e.to_string())?;
    if !outages {
        for provider in document.policy.providers.values_mut() {
            if let Some(settings) = provider
                .0
                .get_mut("simulated")
                .and_then(|s| s.as_object_mut())
            {
                settings.remove("outages");
            }
        }
    }
    let splits = Arc::new(Splits::default());
    let built = assembly::build(&document, &registry, splits.clone())
        .await
        .map_err(|e| e.to_string())?;
    let mut control = built.control;
    let start = control.clock().now();
    let until = start
        + TimeDelta::from_std(document.policy.run.duration.get()).map_err(|e| e.to_string())?;
    control
        .run(Some(until), |_| {})
        .await
        .map_err(|e| e.to_string())?;
    // Demand and serving capacity per minute, summed over every pool member.
    let mut demand: BTreeMap<i64, f64> = BTreeMap::new();
    let mut supply: BTreeMap<i64, f64> = BTreeMap::new();
    let range = TimeRange {
        start,
        end: until + TimeDelta::seconds(1),
    };
    for pool in &document.policy.pools {
        for member in &pool.members {
            let source = built.providers[&member.provider]
                .set
                .metrics
                .clone()
                .ok_or("a member provider without metrics")?;
            for (metric, into) in [
                (MetricKind::RequestRate, &mut demand),
                (MetricKind::Custom("ready_capacity".into()), &mut supply),
            ] {
                let query = RangeQuery::new(
                    MetricQuery {
                        group: member.group.clone(),
                        metric,
                        expression: None,
                    },
                    range,
                    60,
                );
                let series = source
                    .query_range(&query)
                    .await
                    .map_err(|e| e.to_string())?;
                for s in series.iter().flat_map(|s| &s.samples) {
                    *into.entry(s.at.timestamp() / 60).or_insert(0.0) += s.value;
                }
            }
        }
    }
    let minutes = demand.len();
    let under = demand
        .iter()
        .filter(|(t, d)| supply.get(t).copied().unwrap_or(0.0) < **d * (1.0 - 1e-9))
        .count();
    let splits = splits
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    Ok(Outcome {
        tau_u: under as f64 / minutes.max(1) as f64,
        minutes,
        splits,
    })
}

fn shares(record: &PoolSplitRecord) -> Vec<f64> {
    let total: u32 = record.members.iter().map(|m| m.to).sum();
    record
        .members
        .iter()
        .map(|m| f64::from(m.to) / f64::from(total.max(1)))
        .collect()
}

/// From the first record after a member left `down`: (when, minutes until every share is
/// within 5 points of its share before the member went down, the shares before).
fn return_time(splits: &[PoolSplitRecord]) -> Option<(DateTime<Utc>, Option<i64>, Vec<f64>)> {
    let down = splits
        .iter()
        .position(|r| r.members.iter().any(|m| m.state == MemberState::Down))?;
    let before = shares(splits.get(down.checked_sub(1)?)?);
    let back = splits[down..]
        .iter()
        .position(|r| r.members.iter().all(|m| m.state != MemberState::Down))?
        + down;
    let from = splits[back].at;
    let settled = splits[back..].iter().find(|r| {
        shares(r)
            .iter()
            .zip(&before)
            .all(|(now, was)| (now - was).abs() <= 0.05)
    });
    Some((from, settled.map(|r| (r.at - from).num_minutes()), before))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let path: PathBuf = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "examples/multi-cloud-pool.yml".into())
        .into();
    let with = run(&path, true).await?;
    let without = run(&path, false).await?;
    println!("policy: {}", path.display());
    println!(
        "tau_U with the failure windows:    {:.2} % of {} minutes",
        with.tau_u * 100.0,
        with.minutes
    );
    println!(
        "tau_U without them:                {:.2} % of {} minutes",
        without.tau_u * 100.0,
        without.minutes
    );
    println!(
        "difference:                        {:+.2} percentage points",
        (with.tau_u - without.tau_u) * 100.0
    );
    match return_time(&with.splits) {
        Some((from, settled, before)) => {
            let before: Vec<String> = before
                .iter()
                .map(|s| format!("{:.0} %", s * 100.0))
                .collect();
            println!("split before the outage:           {}", before.join(" / "));
            match settled {
                Some(minutes) => println!(
                    "back within 5 points of it:        {minutes} min after the member came back ({from})"
                ),
                None => println!("back within 5 points of it:        not by the end of the run"),
            }
        }
        None => println!("no member went down"),
    }
    Ok(())
}
