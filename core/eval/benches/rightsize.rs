//! Rightsizing speed: the VPA recommender and Hoist's scored on a panel the size of Bitbrains
//! (40 VMs, 91 days of 5-minute steps, about a million samples): Hoist's at its default target
//! (its VMs played together, the price following the share of steps short) and at a fixed
//! price, its whole sweep of the target played at once, and the hourly oracle.
//!
//! `cargo bench -p hoist-eval --bench rightsize` first prints one scoring's time for each, then
//! lets criterion measure. The target: well under 10 s for the whole `hoist rightsize` run in
//! a release build (both recommenders, their rows and their sweeps), so one scoring should take
//! a small fraction of a second.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hoist_eval::rightsize::hoist::{DEFAULT_PRICE, DEFAULT_TARGET, HoistRecommender};
use hoist_eval::rightsize::panel::{Columns, Panel, PanelFormat, Sample, VmSeries};
use hoist_eval::rightsize::vpa::{Vpa, VpaConfig};
use hoist_eval::rightsize::{Recommender, ScoreOptions, score_oracle, score_recommender, sweep};

const VMS: usize = 40;
const STEPS: usize = 91 * 288;

/// Daily cycles with deterministic noise and rare bursts, a different size per VM.
fn panel() -> Panel {
    let mut seed: u64 = 11;
    let mut noise = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let start = 1_372_629_600; // 2013-07-01T00:00:00Z
    let vms = (0..VMS)
        .map(|v| {
            let size = 1.0 + v as f64 % 8.0;
            let samples = (0..STEPS)
                .map(|i| {
                    let day = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
                    let burst = if noise() < 0.002 { 0.5 } else { 0.0 };
                    let cpu = size * (0.1 + 0.05 * day.sin() + 0.02 * noise() + burst).max(0.0);
                    let mem = size * 1e9 * (0.3 + 0.05 * day.cos() + 0.01 * noise());
                    Sample {
                        at: start + 300 * i as i64,
                        cpu,
                        cpu_given: size,
                        mem,
                        mem_given: size * 4e9,
                    }
                })
                .collect();
            VmSeries {
                vm: format!("vm-{v}"),
                samples,
            }
        })
        .collect();
    Panel {
        name: "synthetic".into(),
        format: PanelFormat::Generic,
        columns: Columns {
            cpu_given: true,
            memory: true,
            mem_given: true,
        },
        vms,
        step_seconds: 300,
        rows: VMS * STEPS,
        off_rows: 0,
    }
}

fn bench(c: &mut Criterion) {
    let panel = panel();
    let opts = ScoreOptions::default();
    let vpa = || -> Box<dyn Recommender> { Box::new(Vpa::new(VpaConfig::default(), true)) };
    let hoist = || -> Box<dyn Recommender> {
        Box::new(HoistRecommender::with_target(DEFAULT_TARGET, true))
    };
    let hoist_price =
        || -> Box<dyn Recommender> { Box::new(HoistRecommender::new(DEFAULT_PRICE, true)) };
    for (name, r) in [
        ("vpa", vpa()),
        ("hoist", hoist()),
        ("hoist at a fixed price", hoist_price()),
    ] {
        let t = Instant::now();
        let s = score_recommender(&panel, r, &opts);
        let took = t.elapsed();
        println!(
            "{name}: {} samples scored in {:.3} s ({:.1} M samples/s); CPU slack {:.3}, short {:.4}",
            s.cpu.steps,
            took.as_secs_f64(),
            (VMS * STEPS) as f64 / took.as_secs_f64() / 1e6,
            s.cpu.slack,
            s.cpu.shortfall
        );
    }
    let t = Instant::now();
    let points = sweep(&panel, hoist().as_ref(), &opts, 1);
    println!(
        "hoist sweep: {} targets in one play, {:.3} s on one thread",
        points.len(),
        t.elapsed().as_secs_f64()
    );
    let mut group = c.benchmark_group("rightsize");
    group.sample_size(10);
    group.throughput(Throughput::Elements((VMS * STEPS) as u64));
    group.bench_function("vpa", |b| {
        b.iter(|| black_box(score_recommender(&panel, vpa(), &opts)))
    });
    group.bench_function("hoist", |b| {
        b.iter(|| black_box(score_recommender(&panel, hoist(), &opts)))
    });
    group.bench_function("hoist_price", |b| {
        b.iter(|| black_box(score_recommender(&panel, hoist_price(), &opts)))
    });
    group.bench_function("hoist_sweep", |b| {
        b.iter(|| black_box(sweep(&panel, hoist().as_ref(), &opts, 1)))
    });
    group.bench_function("oracle", |b| {
        b.iter(|| black_box(score_oracle(&panel, &opts)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
