//! The predictive policy through the replay: on a strongly periodic trace with a steep morning
//! ramp, predictive + target tracking is under-provisioned less often than target tracking
//! alone, at a similar cost; and the replay records the forecast for the chart.

use std::path::Path;
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Timelike, Utc};
use hoist_engine::config::parse_str;
use hoist_eval::policy::PolicyController;
use hoist_eval::{Demand, ReplayOptions, ReplayOutcome, ReplayParams, Scale, replay};
use hoist_sim::trace::Trace;

/// 21 days at 5 minutes: a night floor of 20, a 30-minute ramp at 08:00 to a day level of 100,
/// back down in the evening; ±3 % deterministic noise.
fn periodic_trace() -> Trace {
    let start = Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap();
    let step = TimeDelta::minutes(5);
    let values = (0..21 * 288)
        .map(|i| {
            let t = start + step * i;
            let h = f64::from(t.hour()) + f64::from(t.minute()) / 60.0;
            let level = if (8.0..8.5).contains(&h) {
                20.0 + 80.0 * (h - 8.0) / 0.5
            } else if (8.5..18.0).contains(&h) {
                100.0
            } else if (18.0..20.0).contains(&h) {
                100.0 - 80.0 * (h - 18.0) / 2.0
            } else {
                20.0
            };
            let x = (f64::from(i) * 12.9898).sin() * 43_758.545;
            Some(level * (1.0 + 0.06 * (x - x.floor() - 0.5)))
        })
        .collect();
    Trace {
        name: "periodic".into(),
        step,
        start,
        values,
    }
}

fn run(policies: &str, trace: &Trace) -> ReplayOutcome {
    let text = format!(
        "providers:\n  sim:\n    simulated: {{}}\nrun:\n  interval: 1m\ngroups:\n  - name: web\n    provider: sim\n    min: 1\n    max: 1000\n    policies:\n{policies}"
    );
    let doc = parse_str(Path::new("replay.yaml"), &text).unwrap();
    let group = doc.policy.groups[0].clone();
    let mut controller = PolicyController::new("policy", group, 60).unwrap();
    let params = ReplayParams {
        peak_instances: 100,
        boot_delay: Duration::from_secs(300),
        metric_lag: Duration::from_secs(60),
        ..ReplayParams::default()
    };
    let scale = Scale::for_peak(trace, 100).unwrap();
    let demand = Demand::new(trace, scale).unwrap();
    replay(
        &demand,
        &params,
        &mut controller,
        ReplayOptions {
            record_series: true,
            ..Default::default()
        },
    )
    .unwrap()
}

const TT: &str = "      - target_tracking: { metric: utilization, target: 0.75 }\n";

#[test]
fn predictive_with_target_tracking_beats_target_tracking_alone_on_a_periodic_trace() {
    let trace = periodic_trace();
    let reactive = run(TT, &trace);
    let predictive = run(
        &format!("      - predictive: {{ metric: utilization, target: 0.75, buffer: 10m }}\n{TT}"),
        &trace,
    );
    let (r, p) = (&reactive.score, &predictive.score);
    eprintln!(
        "target tracking: tau_u {:.3} % cost {:.1}; predictive + tt: tau_u {:.3} % cost {:.1}",
        r.tau_u, r.cost, p.tau_u, p.cost
    );
    assert!(
        r.tau_u > 0.5,
        "the ramp should catch target tracking out: {r:?}"
    );
    assert!(
        p.tau_u < r.tau_u * 0.5,
        "predictive should halve the time under-provisioned: {:.3} vs {:.3}",
        p.tau_u,
        r.tau_u
    );
    assert!(
        p.cost <= r.cost * 1.05,
        "at a similar cost: {:.1} vs {:.1}",
        p.cost,
        r.cost
    );
    // The forecast line: none during the first day (not enough history), then present.
    let day = 288;
    assert!(
        predictive.series[..day - 12]
            .iter()
            .all(|s| s.forecast.is_none())
    );
    assert!(
        predictive.series[3 * day..]
            .iter()
            .filter(|s| s.forecast.is_some())
            .count()
            > 17 * day
    );
    assert!(reactive.series.iter().all(|s| s.forecast.is_none()));
}

#[test]
fn forecast_only_changes_nothing() {
    let trace = periodic_trace();
    let reactive = run(TT, &trace);
    let only = run(
        &format!(
            "      - predictive: {{ metric: utilization, target: 0.75, mode: forecast_only }}\n{TT}"
        ),
        &trace,
    );
    assert_eq!(reactive.score.cost, only.score.cost);
    assert_eq!(reactive.score.tau_u, only.score.tau_u);
    assert!(only.series.iter().any(|s| s.forecast.is_some()));
}

#[test]
fn the_tally_counts_the_scored_evaluations_by_what_the_forecast_was() {
    let trace = periodic_trace();
    let predictive = format!("      - predictive: {{ metric: utilization, target: 0.75 }}\n{TT}");
    let cold = run(&predictive, &trace);
    // One evaluation a minute over 21 days, each counted once.
    let total: u64 = cold.tally.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 21 * 24 * 60);
    let count = |outcome: &ReplayOutcome, prefix: &str| -> u64 {
        outcome
            .tally
            .iter()
            .filter(|(what, _)| what.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    };
    // Cold, the first day waits for history, in a reason whose numbers are folded to N.
    let waiting = count(&cold, "fell back: history spans N h");
    assert!(waiting >= 23 * 60, "{:?}", cold.tally);
    assert!(
        count(&cold, "forecast used") > 14 * 24 * 60,
        "{:?}",
        cold.tally
    );
    assert!(
        cold.tally.windows(2).all(|w| w[0].1 >= w[1].1),
        "most frequent first: {:?}",
        cold.tally
    );

    // With the first 14 days as an unscored warm-up, only the last 7 are counted, and the
    // forecast is in use from their start.
    let text = format!(
        "providers:\n  sim:\n    simulated: {{}}\nrun:\n  interval: 1m\ngroups:\n  - name: web\n    provider: sim\n    min: 1\n    max: 1000\n    policies:\n{predictive}"
    );
    let doc = parse_str(Path::new("replay.yaml"), &text).unwrap();
    let mut controller = PolicyController::new("policy", doc.policy.groups[0].clone(), 60).unwrap();
    let scale = Scale::for_peak(&trace, 100).unwrap();
    let demand = Demand::new(&trace, scale).unwrap();
    let warm = replay(
        &demand,
        &ReplayParams {
            peak_instances: 100,
            boot_delay: Duration::from_secs(300),
            metric_lag: Duration::from_secs(60),
            ..ReplayParams::default()
        },
        &mut controller,
        ReplayOptions {
            warmup_steps: 14 * 288,
            ..Default::default()
        },
    )
    .unwrap();
    let total: u64 = warm.tally.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 7 * 24 * 60);
    assert_eq!(
        count(&warm, "fell back: history spans"),
        0,
        "{:?}",
        warm.tally
    );
    assert!(
        count(&warm, "forecast used") > 6 * 24 * 60,
        "{:?}",
        warm.tally
    );
}
