//! The budget bar on a folder of traces, as `hoist evaluate --budget SHARE%` runs it, without
//! the rest of the evaluation: `cargo run --release -p hoist-eval --example budget_bar -- DIR
//! [FRACTION]`. Each trace's last half is scored after up to 14 days of warm-up, with a
//! monthly budget of FRACTION (default 0.85) of what the HPA at target 0.7 spends, on target
//! tracking at 0.7.

use hoist_engine::config::budget::{BudgetPeriod, Rung};
use hoist_engine::config::parse_str;
use hoist_eval::budget::{BarSettings, BudgetAmount, budget_bar};
use hoist_eval::{BuiltIn, Demand, ReplayParams, Scale};
use hoist_sim::trace::load_trace;

const POLICY: &str = "providers:\n  sim: { simulated: {} }\nrun: { interval: 1m }\ngroups:\n  - name: svc\n    provider: sim\n    min: 1\n    max: 10000\n    policies:\n      - target_tracking: { metric: utilization, target: 0.7 }\n";

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: budget_bar DIR [FRACTION]");
    let fraction: f64 = args.next().map_or(0.85, |f| f.parse().expect("fraction"));
    let policy = parse_str(std::path::Path::new("bar.yaml"), POLICY).expect("policy");
    let group = &policy.policy.groups[0];
    let params = ReplayParams::default();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".csv"))
        .collect();
    files.sort();
    for file in files {
        let Ok(whole) = load_trace(&file) else {
            continue;
        };
        let scale = Scale::for_peak(&whole, params.peak_instances).expect("scale");
        let split = whole.len() / 2;
        let step = whole.step.num_seconds().max(1) as usize;
        let warm_from = split.saturating_sub(14 * 86_400 / step);
        let warm =
            Demand::new(&whole.window(Some(whole.at(warm_from)), None), scale).expect("demand");
        let mut reference = BuiltIn::Hpa.controller(&params, &scale).expect("hpa");
        let settings = BarSettings {
            amount: BudgetAmount::OfReference(fraction),
            period: BudgetPeriod::Monthly,
            action: Rung::Cap,
            max_utilization: 0.9,
            warmup_steps: split - warm_from,
            interval_seconds: 60,
        };
        let bar = budget_bar(&warm, &params, group, &mut *reference, &settings).expect("bar");
        let budget: f64 = bar.periods.iter().map(|p| p.budget).sum();
        let show = |r: &hoist_eval::budget::BudgetRun| {
            format!(
                "{:.3}{} τU {:.2}",
                r.spend.iter().sum::<f64>() / budget,
                if r.held { "" } else { "!" },
                r.score.tau_u
            )
        };
        if std::env::var_os("BAR_PERIODS").is_some() {
            for (p, spent) in bar.periods.iter().zip(&bar.ladder.spend) {
                println!(
                    "  {} → {} budget {:.2} ladder {:.2}",
                    p.start, p.end, p.budget, spent
                );
            }
        }
        println!(
            "{:<24} plain {:<20} ladder {:<20} static {}",
            whole.name,
            show(&bar.unbudgeted),
            show(&bar.ladder),
            bar.static_max
                .as_ref()
                .map_or("none".into(), |(m, r)| format!("max {m}: {}", show(r)))
        );
    }
}
