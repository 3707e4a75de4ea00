//! Replay speed: a year of one-minute steps (525,600) through each built-in controller, and
//! through the policy engine with a policy file: reactive (target tracking), predictive (the
//! predictive example's policies, forecasting with refits every 6 h), and the reactive file
//! under a monthly budget on `cap` (85 % of what the HPA spends each month, as the budget bar
//! sets it: the budget is stepped and its levers planned at every decision).
//!
//! `cargo bench -p hoist-eval --bench replay` first prints steps per second for one replay of
//! each built-in controller; then replays the three policy files in turn five times, printing
//! each one's decisions (cost, τ_U, actions: a change that only speeds the replay leaves them
//! as they were), its median time, and the predictive and budgeted files' times as multiples
//! of the reactive file's, the median of the five rounds; then lets criterion measure them all
//! (`--bench zzz` stops before criterion). The built-ins' target is under 1 s per replay
//! (above 525,600 steps per second) in a release build.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use chrono::{TimeDelta, TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hoist_engine::config::budget::{BudgetPeriod, Rung};
use hoist_engine::config::parse_str;
use hoist_eval::budget::{BarSettings, BudgetAmount, budget_periods};
use hoist_eval::policy::{PolicyController, ReplayBudget};
use hoist_eval::{BuiltIn, Controller, Demand, ReplayOptions, ReplayParams, Scale, replay};
use hoist_sim::trace::Trace;

const STEPS: usize = 525_600;

/// Replays of each policy file, taken in turn, behind the printed medians.
const PAIRS: usize = 5;

/// The median of a non-empty list.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

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

/// The reactive policy: target tracking at 0.95, as the predictive example's safety net.
const REACTIVE: &str =
    "      - target_tracking: { metric: utilization, target: 0.95, tolerance: 0.03 }\n";

/// The predictive example's policies (examples/predictive-scaling.yml).
const PREDICTIVE: &str = "      - predictive: { metric: utilization, target: 0.95, mode: forecast_and_scale, history: 14d, min_history: 24h, horizon: 48h, refresh: 6h, buffer: 10m, track_level: true, quantile: 0.9, max_capacity: { raise_by_percent: 10 } }\n      - target_tracking: { metric: utilization, target: 0.95, tolerance: 0.03 }\n";

/// Makes a fresh controller for one replay of a policy file.
type MakePolicy<'a> = Box<dyn Fn() -> PolicyController + 'a>;

fn policy_file(policies: &str) -> PolicyController {
    let text = format!(
        "providers:\n  sim:\n    simulated: {{}}\nrun:\n  interval: 1m\ngroups:\n  - name: web\n    provider: sim\n    min: 2\n    max: 120\n    policies:\n{policies}"
    );
    let doc = parse_str(Path::new("bench.yaml"), &text).expect("policy");
    PolicyController::new("policy", doc.policy.groups[0].clone(), 60).expect("controller")
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
    // `cargo test` runs benchmarks once, unoptimised: the policy files then replay 30 days.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let policy_trace = if benchmarking {
        trace.clone()
    } else {
        Trace {
            values: trace.values[..30 * 1440].to_vec(),
            ..trace.clone()
        }
    };
    let policy_steps = policy_trace.len();
    let policy_demand = Demand::new(&policy_trace, scale).expect("demand");
    // Each month's budget: 85 % of what the HPA spends in it.
    let settings = BarSettings {
        amount: BudgetAmount::OfReference(0.85),
        period: BudgetPeriod::Monthly,
        action: Rung::Cap,
        max_utilization: 0.9,
        warmup_steps: 0,
        interval_seconds: 60,
    };
    let mut hpa = BuiltIn::Hpa
        .controller(&params, &scale)
        .expect("controller");
    let periods =
        budget_periods(&policy_demand, &params, &mut *hpa, &settings).expect("budget periods");
    let budget = ReplayBudget {
        periods: periods.iter().map(|p| (p.start, p.end, p.budget)).collect(),
        action: settings.action,
        max_utilization: settings.max_utilization,
    };
    let files: [(&str, MakePolicy); 3] = [
        ("policy-reactive", Box::new(|| policy_file(REACTIVE))),
        ("policy-predictive", Box::new(|| policy_file(PREDICTIVE))),
        (
            "policy-budget",
            Box::new(|| policy_file(REACTIVE).with_budget(budget.clone())),
        ),
    ];
    // The policy files are replayed in turn, PAIRS times, and the ratios are taken round by
    // round: on a shared machine one replay's time varies by a fifth from run to run, and
    // pairing keeps a drift in the machine's speed out of the ratio. The medians are printed.
    let pairs = if benchmarking { PAIRS } else { 1 };
    let mut seconds = [Vec::new(), Vec::new(), Vec::new()];
    for pair in 0..pairs {
        for (k, (name, make)) in files.iter().enumerate() {
            let mut controller = make();
            let started = Instant::now();
            let out = replay(
                &policy_demand,
                &params,
                &mut controller as &mut dyn Controller,
                ReplayOptions::default(),
            )
            .expect("replay");
            let s = started.elapsed().as_secs_f64();
            if pair == 0 {
                println!(
                    "{name:<16} {policy_steps} steps ({} s ticks): cost {:.3}, τ_U {:.4} %, {} actions",
                    out.tick_seconds, out.score.cost, out.score.tau_u, out.score.actions
                );
            }
            seconds[k].push(s);
        }
    }
    for (k, (name, _)) in files.iter().enumerate() {
        let s = median(&seconds[k]);
        println!(
            "{name:<16} median of {pairs}: {s:.3} s = {:.0} steps/s",
            policy_steps as f64 / s
        );
    }
    for (k, what) in [(1, "predictive policy"), (2, "budgeted policy")] {
        let ratios: Vec<f64> = seconds[k]
            .iter()
            .zip(&seconds[0])
            .map(|(p, r)| p / r)
            .collect();
        println!(
            "{what} ÷ reactive policy file: {:.2}× (median of {pairs} rounds; each {})",
            median(&ratios),
            ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
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
    for (name, make) in &files {
        group.bench_function(*name, |bench| {
            bench.iter(|| {
                let mut controller = make();
                black_box(
                    replay(
                        &policy_demand,
                        &params,
                        &mut controller as &mut dyn Controller,
                        ReplayOptions::default(),
                    )
                    .expect("replay"),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_replay);
criterion_main!(benches);
