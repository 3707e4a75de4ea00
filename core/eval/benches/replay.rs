//! Replay speed: a year of one-minute steps (525,600) through each built-in controller.
//!
//! `cargo bench -p hoist-core --bench replay` first prints steps per second for one replay of
//! each controller, then lets criterion measure them. The target is under 1 s per replay
//! (above 525,600 steps per second) in a release build.

use std::hint::black_box;
use std::time::Instant;

use chrono::{TimeDelta, TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hoist_eval::{BuiltIn, Demand, ReplayOptions, ReplayParams, Scale, replay};
use hoist_sim::trace::Trace;

const STEPS: usize = 525_600;

/// A year of one-minute demand: daily and weekly cycles with deterministic noise and bursts.
fn year_trace() -> Trace {
    let mut seed: u64 = 7;
    let mut noise = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let values = (0..STEPS)
        .map(|i| {
            let day = (i % 1440) as f64 / 1440.0 * std::f64::consts::TAU;
            let week = (i % 10_080) as f64 / 10_080.0 * std::f64::consts::TAU;
            let burst = if noise() < 0.001 { 400.0 } else { 0.0 };
            Some(1000.0 + 600.0 * day.sin() + 150.0 * week.cos() + 80.0 * noise() + burst)
        })
        .collect();
    Trace {
        name: "synthetic-year".into(),
        step: TimeDelta::minutes(1),
        start: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        values,
    }
}

fn bench_replay(c: &mut Criterion) {
    let trace = year_trace();
    let params = ReplayParams::default();
    let scale = Scale::for_peak(&trace, params.peak_instances).expect("scale");
    let demand = Demand::new(&trace, scale).expect("demand");
    let controllers = [
        BuiltIn::O2,
        BuiltIn::StaticPeak,
        BuiltIn::Hpa,
        BuiltIn::TargetTracking,
    ];
    for b in controllers {
        let mut c = b.controller(&params, &scale).expect("controller");
        let started = Instant::now();
        let out = replay(&demand, &params, &mut *c, ReplayOptions::default()).expect("replay");
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{:<16} {STEPS} steps ({} s ticks) in {seconds:.3} s = {:.0} steps/s",
            b.name(),
            out.tick_seconds,
            STEPS as f64 / seconds
        );
    }
    let mut group = c.benchmark_group("replay_year_1min");
    group.throughput(Throughput::Elements(STEPS as u64));
    group.sample_size(10);
    for b in controllers {
        group.bench_function(b.name(), |bench| {
            bench.iter(|| {
                let mut c = b.controller(&params, &scale).expect("controller");
                black_box(
                    replay(&demand, &params, &mut *c, ReplayOptions::default()).expect("replay"),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_replay);
criterion_main!(benches);
