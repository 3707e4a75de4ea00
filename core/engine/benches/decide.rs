//! The decision function over 10,000 groups with their metric windows: one full pass.
//!
//! `cargo bench -p hoist-engine --bench decide` prints the time per pass; the target is under
//! 50 ms on a 2-core machine.

use std::hint::black_box;
use std::path::Path;

use chrono::{TimeDelta, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use hoist_api::MetricKind;
use hoist_api::model::Sample;
use hoist_engine::config::parse_str;
use hoist_engine::{DecisionMemory, GroupSnapshot, MetricWindows, Observation, decide};

const GROUPS: usize = 10_000;
/// Samples per metric window: 10 minutes at one per minute.
const WINDOW: usize = 10;

fn bench_decide(c: &mut Criterion) {
    // Two policies per group, as in the examples: target tracking on utilisation and a
    // threshold on p95 latency.
    let text = "providers:\n  sim:\n    simulated: {}\ngroups:\n  - name: g\n    provider: sim\n    min: 2\n    max: 500\n    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n      - threshold: { metric: latency_p95, upper: 0.25, lower: 0.05, periods: 3 }\n";
    let policy = parse_str(Path::new("bench.yaml"), text).expect("bench policy");
    let group = &policy.policy.groups[0];
    let now = Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap();

    let mut seed: u64 = 42;
    let mut rand = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let inputs: Vec<(GroupSnapshot, MetricWindows)> = (0..GROUPS)
        .map(|i| {
            let desired = 2 + (rand() * 100.0) as u32;
            let snapshot = GroupSnapshot {
                id: format!("group-{i}"),
                desired,
                ready: desired,
                pending: 0,
                provider_min: 0,
                provider_max: 1000,
                instance_class: "m.large".into(),
            };
            let series = |scale: f64, rand: &mut dyn FnMut() -> f64| -> Vec<Sample> {
                (0..WINDOW)
                    .map(|k| Sample {
                        at: now - TimeDelta::minutes((WINDOW - 1 - k) as i64),
                        value: scale * rand(),
                    })
                    .collect()
            };
            let metrics = MetricWindows::from([
                (MetricKind::Utilization, series(1.2, &mut rand)),
                (MetricKind::LatencyP95, series(0.4, &mut rand)),
            ]);
            (snapshot, metrics)
        })
        .collect();
    let mut memories: Vec<DecisionMemory> = vec![DecisionMemory::new(); GROUPS];

    c.bench_function("decide/10000 groups, one pass", |b| {
        b.iter(|| {
            let mut moved = 0u32;
            for ((snapshot, metrics), memory) in inputs.iter().zip(memories.iter_mut()) {
                let (decision, update) = decide(
                    group,
                    &Observation {
                        now,
                        group: snapshot,
                        metrics,
                        forecast: None,
                        forecast_note: None,
                        budget: None,
                    },
                    memory,
                );
                memory.apply(&update);
                moved += u32::from(decision.desired != decision.current);
            }
            black_box(moved)
        })
    });
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
