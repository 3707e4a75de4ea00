//! AWS-style target tracking: 3 periods above to scale out, 15 below to scale in, rounding, and
//! warm-up, as state machine and through the replay.

use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use hoist_eval::target_tracking::{TargetTracking, TargetTrackingConfig};
use hoist_eval::{BuiltIn, Demand, ReplayOptions, ReplayParams, Scale, replay};
use hoist_sim::trace::Trace;

fn tt() -> TargetTracking {
    TargetTracking::new(TargetTrackingConfig::aws_default(0.7, 1, 1000))
}

#[test]
fn three_periods_above_scale_out_rounding_up() {
    let mut t = tt();
    assert_eq!(t.evaluate(10, 10.0, 0, Some(0.75)), 10);
    assert_eq!(t.evaluate(10, 10.0, 0, Some(0.75)), 10);
    // Third: needed 10 × 0.75 / 0.7 = 10.71 → add ceil(0.71) = 1.
    assert_eq!(t.evaluate(10, 10.0, 0, Some(0.75)), 11);
}

#[test]
fn a_missing_datapoint_breaks_the_streak() {
    let mut t = tt();
    t.evaluate(10, 10.0, 0, Some(0.9));
    t.evaluate(10, 10.0, 0, Some(0.9));
    assert_eq!(t.evaluate(10, 10.0, 0, None), 10);
    assert_eq!(t.evaluate(10, 10.0, 0, Some(0.9)), 10);
}

#[test]
fn fifteen_periods_below_scale_in_rounding_down_the_removal() {
    let mut t = tt();
    for i in 0..14 {
        assert_eq!(t.evaluate(10, 10.0, 0, Some(0.5)), 10, "period {i}");
    }
    // Needed 10 × 0.5 / 0.7 = 7.14 → remove floor(2.86) = 2.
    assert_eq!(t.evaluate(10, 10.0, 0, Some(0.5)), 8);
}

#[test]
fn warming_instances_block_scale_in() {
    let mut t = tt();
    for _ in 0..20 {
        assert_eq!(t.evaluate(10, 10.0, 1, Some(0.5)), 10);
    }
    assert_eq!(t.evaluate(10, 10.0, 0, Some(0.5)), 8);
}

#[test]
fn warming_capacity_counts_toward_desired() {
    let mut t = tt();
    for _ in 0..3 {
        t.evaluate(10, 10.0, 0, Some(0.98));
    }
    // 10 ready at 0.98 need 14; desired is already 14 (4 warming): nothing more.
    assert_eq!(t.evaluate(14, 10.0, 4, Some(0.98)), 14);
}

#[test]
fn replayed_target_tracking_on_a_step() {
    let values = [(7.0, 30), (14.0, 40), (7.0, 40)]
        .iter()
        .flat_map(|&(v, n)| std::iter::repeat_n(Some(v), n))
        .collect();
    let t = Trace {
        name: "step".into(),
        step: TimeDelta::minutes(1),
        start: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        values,
    };
    let p = ReplayParams {
        peak_instances: 14,
        boot_delay: Duration::from_secs(120),
        metric_lag: Duration::from_secs(60),
        ..ReplayParams::default()
    };
    let scale = Scale::for_peak(&t, 14).unwrap();
    let demand = Demand::new(&t, scale).unwrap();
    let mut c = BuiltIn::TargetTracking.controller(&p, &scale).unwrap();
    let out = replay(
        &demand,
        &p,
        &mut *c,
        ReplayOptions {
            record_series: true,
            ..Default::default()
        },
    )
    .unwrap();
    let s = &out.series;
    assert!(s[..30].iter().all(|x| x.desired == 10), "{:?}", &s[..30]);
    // Datapoints for minutes 30, 31, 32 arrive at 32, 33, 34 (one-minute lag): no scale-out
    // before minute 33.
    assert!(
        s[30..33].iter().all(|x| x.desired == 10),
        "{:?}",
        &s[29..36]
    );
    assert!(s[36].desired > 10);
    assert_eq!(s[69].ready, 20);
    // After the drop at 70: 15 datapoints below target first, so nothing before minute 85.
    assert!(s[70..85].iter().all(|x| x.desired == 20));
    assert!(s[109].desired < 20);
}
