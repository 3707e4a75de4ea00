//! The metric definitions of EVALUATION.md, pinned on tiny hand-computed traces.

use chrono::{TimeDelta, TimeZone, Utc};
use hoist_eval::{Billing, Demand, ReplayOptions, ReplayParams, Scale, StaticCapacity, replay};
use hoist_sim::trace::Trace;

fn trace(values: &[Option<f64>]) -> Trace {
    Trace {
        name: "tiny".into(),
        step: TimeDelta::minutes(1),
        start: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        values: values.to_vec(),
    }
}

fn params(peak: u32) -> ReplayParams {
    ReplayParams {
        peak_instances: peak,
        boot_delay: std::time::Duration::from_secs(60),
        metric_lag: std::time::Duration::from_secs(60),
        metric_period: std::time::Duration::from_secs(60),
        billing: Billing::PerSecond {
            minimum_seconds: 60,
        },
        price_per_hour: 3.6,
        min_instances: 0,
        max_instances: 100,
        ..ReplayParams::default()
    }
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

#[test]
fn static_two_on_one_two_four_two() {
    // D = [1, 2, 4, 2] (scale 1 instance per unit: the peak 4 needs 4), S = 2 throughout.
    let t = trace(&[Some(1.0), Some(2.0), Some(4.0), Some(2.0)]);
    let p = params(4);
    let scale = Scale::for_peak(&t, 4).unwrap();
    close(scale.instances_per_unit, 1.0);
    let demand = Demand::new(&t, scale).unwrap();
    assert_eq!(demand.needed, vec![Some(1), Some(2), Some(4), Some(2)]);
    let mut c = StaticCapacity::new("two", 2);
    let s = replay(&demand, &p, &mut c, ReplayOptions::default())
        .unwrap()
        .score;
    // θ_U = (0 + 0 + 2/4 + 0) / 4 = 12.5 %; θ_O = (1/1) / 4 = 25 %.
    close(s.theta_u, 12.5);
    close(s.theta_o, 25.0);
    // τ_U: 1 of 4 steps; τ_O: 1 of 4 steps.
    close(s.tau_u, 25.0);
    close(s.tau_o, 25.0);
    // Under: 2 instances for 60 s; over: 1 instance for 60 s.
    close(s.under_instance_hours, 2.0 * 60.0 / 3600.0);
    close(s.over_instance_hours, 60.0 / 3600.0);
    // Supply never changes, demand changes 3 times in 4 minutes: -3 / (4/60 h) = -45 per hour.
    close(s.jitter, -45.0);
    // 2 instances × 240 s at 3.6 per hour = 2 × 0.24.
    close(s.cost, 0.48);
    assert_eq!(s.actions, 0);
    close(s.scored_hours, 4.0 / 60.0);
}

#[test]
fn gaps_are_not_scored_and_not_zero_demand() {
    // Steps 2 and 3 are gaps. Scored: steps 1 and 4 only.
    let t = trace(&[Some(2.0), None, None, Some(4.0)]);
    let p = params(4);
    let demand = Demand::new(&t, Scale::for_peak(&t, 4).unwrap()).unwrap();
    let mut c = StaticCapacity::new("three", 3);
    let s = replay(&demand, &p, &mut c, ReplayOptions::default())
        .unwrap()
        .score;
    close(s.scored_hours, 2.0 / 60.0);
    // Step 1: over by 1 of 2; step 4: under by 1 of 4.
    close(s.theta_o, 100.0 * 0.5 / 2.0);
    close(s.theta_u, 100.0 * 0.25 / 2.0);
    close(s.tau_u, 50.0);
    // No change counted across the gap.
    close(s.jitter, 0.0);
    // Billed through the gap: 3 instances × 4 min.
    close(s.cost, 3.0 * 240.0 * 3.6 / 3600.0);
}

#[test]
fn billing_minimum_and_per_hour() {
    assert_eq!(Billing::parse("per-hour").unwrap(), Billing::PerHour);
    assert_eq!(
        Billing::parse("per-second:90s").unwrap(),
        Billing::PerSecond {
            minimum_seconds: 90
        }
    );
    assert!(Billing::parse("weekly").is_err());
    let per_second = Billing::PerSecond {
        minimum_seconds: 60,
    };
    close(per_second.charge(10, 3600.0), 60.0);
    close(per_second.charge(61, 3600.0), 61.0);
    close(Billing::PerHour.charge(1, 2.0), 2.0);
    close(Billing::PerHour.charge(3601, 2.0), 4.0);
}

#[test]
fn scale_uses_the_whole_trace_and_peak_needs_exactly_n() {
    let t = trace(&[Some(3.0), Some(7.0), Some(10.0), Some(1.0)]);
    let scale = Scale::for_peak(&t, 100).unwrap();
    let window = t.window(Some(t.at(2)), None);
    let demand = Demand::new(&window, scale).unwrap();
    // The window's peak is the whole trace's: exactly 100, not 101 from rounding.
    assert_eq!(demand.needed, vec![Some(100), Some(10)]);
    // Mean D over the whole trace: (30 + 70 + 100 + 10) / 4.
    close(scale.mean_instances, 52.5);
}

#[test]
fn invalid_parameters_are_named() {
    let t = trace(&[Some(1.0)]);
    let demand = Demand::new(&t, Scale::for_peak(&t, 1).unwrap()).unwrap();
    let p = ReplayParams {
        target_utilization: 1.5,
        ..params(1)
    };
    let err = replay(
        &demand,
        &p,
        &mut StaticCapacity::new("x", 1),
        ReplayOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("target utilisation"), "{err}");
    let empty = trace(&[None, None]);
    assert!(Scale::for_peak(&empty, 10).is_err());
}
