//! The cost meter on large groups: one observation of a group of 1,000 and 10,000 instances
//! (every evaluation of `hoist run` makes one per group), with 1 % of the instances replaced
//! since the one before, then the reading of what the group cost so far.
//!
//! `cargo bench -p hoist-engine --bench meter` prints the time per observation. It grows with
//! the group's size about linearly: the meter must not compare every instance with every other
//! (it once did, and a day of a group of 3,000 instances on the simulated cloud took a minute).

use std::hint::black_box;

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hoist_api::billing_rule::BillingRule;
use hoist_api::{CapacityType, Instance, InstanceState, ScalingGroup};
use hoist_engine::meter::CostMeter;
use rust_decimal::Decimal;

fn instance(n: usize, launched: DateTime<Utc>) -> Instance {
    Instance {
        id: format!("i-0sim{n:012}"),
        instance_class: "general.large".to_owned(),
        zone: "sim-1a".to_owned(),
        capacity_type: CapacityType::OnDemand,
        state: InstanceState::Running,
        launched_at: launched,
        protected_from_scale_in: false,
    }
}

/// The group at observation `round`: `size` instances, the oldest 1 % replaced each round.
fn group(size: usize, round: usize, start: DateTime<Utc>) -> ScalingGroup {
    let churn = (size / 100).max(1);
    let first = round * churn;
    ScalingGroup {
        id: "service".to_owned(),
        min_size: 1,
        max_size: 10_000,
        desired_capacity: size as u32,
        instance_class: "general.large".to_owned(),
        zones: vec!["sim-1a".to_owned()],
        instances: (first..first + size).map(|n| instance(n, start)).collect(),
        tags: Default::default(),
    }
}

fn observe(c: &mut Criterion) {
    let start = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
    let price = Decimal::new(96, 3);
    let mut bench = c.benchmark_group("meter_observe");
    for size in [1_000usize, 10_000] {
        // Two groups that alternate, so every observation ends and opens 1 % of the lives.
        let groups = [group(size, 0, start), group(size, 1, start)];
        bench.throughput(Throughput::Elements(size as u64));
        bench.bench_with_input(BenchmarkId::from_parameter(size), &groups, |b, groups| {
            let mut meter = CostMeter::new(BillingRule::default());
            let mut round = 0usize;
            b.iter(|| {
                round += 1;
                let at = start + TimeDelta::minutes(round as i64);
                meter.observe(at, &groups[round % 2], |_| Some(price));
                black_box(meter.since_first_observed("service", at))
            });
        });
    }
    bench.finish();
}

criterion_group!(benches, observe);
criterion_main!(benches);
