//! The HPA baseline against the worked examples of the Kubernetes documentation
//! ("Horizontal Pod Autoscaling": algorithm details, default behaviour, scaling policies) and on
//! constructed step inputs through the replay.

use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use hoist_eval::hpa::{Hpa, HpaConfig, HpaPolicy, HpaRules, HpaSelect};
use hoist_eval::{BuiltIn, Demand, ReplayOptions, ReplayParams, Scale, replay};
use hoist_sim::trace::Trace;

fn hpa(target: f64) -> Hpa {
    Hpa::new(HpaConfig::kubernetes_default(target, 1, 1000))
}

#[test]
fn metric_at_twice_the_target_doubles_replicas() {
    // Docs: "if the current metric value is 200m, and the desired value is 100m, the number of
    // replicas will be doubled, since 200.0 / 100.0 == 2.0".
    let mut h = hpa(0.5);
    assert_eq!(h.reconcile(0, 3, 3, 0, Some(1.0)), 6);
}

#[test]
fn metric_at_half_the_target_halves_replicas_after_the_stabilisation_window() {
    // Docs: "If the current value is instead 50m, you'll halve the number of replicas", and the
    // default scale-down stabilisation window is 300 s.
    let mut h = hpa(0.5);
    assert_eq!(h.reconcile(0, 6, 6, 0, Some(0.5)), 6); // at target: recommendation 6 stored
    let mut t = 15;
    while t < 300 {
        assert_eq!(
            h.reconcile(t, 6, 6, 0, Some(0.25)),
            6,
            "at {t} s the 6 from t=0 is in the window"
        );
        t += 15;
    }
    assert_eq!(h.reconcile(300, 6, 6, 0, Some(0.25)), 3);
}

#[test]
fn ratios_within_the_tolerance_change_nothing() {
    // Docs: the control plane skips scaling if the ratio is within the tolerance (0.1).
    let mut h = hpa(0.5);
    assert_eq!(h.reconcile(0, 10, 10, 0, Some(0.54)), 10); // ratio 1.08
    assert_eq!(h.reconcile(15, 10, 10, 0, Some(0.46)), 10); // ratio 0.92
    assert_eq!(h.reconcile(30, 10, 10, 0, Some(0.6)), 12); // ratio 1.2: ceil(12.0)
}

#[test]
fn default_scale_up_is_four_pods_or_double_per_15_seconds() {
    // Docs, default behaviour: "4 pods or a 100% of the currently running replicas may at most
    // be added every 15 seconds".
    let mut h = hpa(0.1);
    let mut current = 1;
    let mut seen = Vec::new();
    for t in [0, 15, 30, 45] {
        current = h.reconcile(t, current, current, 0, Some(1.0));
        seen.push(current);
    }
    // 1 → max(1+4, 2) = 5 → max(9, 10) = 10 → 20 → 40 (each wants ×10).
    assert_eq!(seen, vec![5, 10, 20, 40]);
}

#[test]
fn percent_policy_example_from_the_docs() {
    // Docs, scaling policies: with a Percent policy of 10 per 60 s, "if there are 80 replicas
    // and the target has to be scaled down to 10 replicas then during the first step 8 replicas
    // will be reduced. In the next iteration when the number of replicas is 72, 10% of the pods
    // is 7.2 but the number is rounded up to 8."
    let mut config = HpaConfig::kubernetes_default(0.5, 1, 1000);
    config.scale_down = HpaRules {
        stabilization_window_seconds: 0,
        policies: vec![HpaPolicy::Percent {
            value: 10,
            period_seconds: 60,
        }],
        select: HpaSelect::Max,
    };
    let mut h = Hpa::new(config);
    let low = Some(0.0625); // desired ceil(80 × 0.125) = 10
    let mut current = h.reconcile(0, 80, 80, 0, low);
    assert_eq!(current, 72);
    for t in [15, 30, 45] {
        current = h.reconcile(t, current, current, 0, low);
        assert_eq!(current, 72, "the period that started at 80 allows only 8");
    }
    current = h.reconcile(60, current, current, 0, low);
    assert_eq!(current, 64);
}

#[test]
fn not_yet_ready_pods_count_as_zero_when_scaling_up() {
    // Docs: not-yet-ready pods are assumed to consume 0 % of the target when the workload would
    // scale up. 4 ready at twice the target plus 4 booting: over 8 pods the ratio is 1.0.
    let mut h = hpa(0.5);
    assert_eq!(h.reconcile(0, 8, 4, 4, Some(1.0)), 8);
    // With 2 booting the ratio over 6 pods is 4/3: ceil(4/3 × 6) = 8.
    let mut h = hpa(0.5);
    assert_eq!(h.reconcile(0, 6, 4, 2, Some(1.0)), 8);
}

#[test]
fn no_metric_means_no_change() {
    let mut h = hpa(0.5);
    assert_eq!(h.reconcile(0, 5, 5, 0, None), 5);
    assert_eq!(h.reconcile(15, 5, 0, 5, Some(0.9)), 5);
}

fn step_trace(levels: &[(f64, usize)]) -> Trace {
    let values = levels
        .iter()
        .flat_map(|&(v, n)| std::iter::repeat_n(Some(v), n))
        .collect();
    Trace {
        name: "step".into(),
        step: TimeDelta::minutes(1),
        start: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        values,
    }
}

#[test]
fn replayed_hpa_on_a_step_up_and_down() {
    // Demand 7 instances for 30 min, 14 for 30 min, 7 for 30 min; target 0.7.
    let t = step_trace(&[(7.0, 30), (14.0, 30), (7.0, 30)]);
    let p = ReplayParams {
        peak_instances: 14,
        boot_delay: Duration::from_secs(120),
        metric_lag: Duration::from_secs(60),
        ..ReplayParams::default()
    };
    let scale = Scale::for_peak(&t, 14).unwrap();
    let demand = Demand::new(&t, scale).unwrap();
    let mut c = BuiltIn::Hpa.controller(&p, &scale).unwrap();
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
    // Sized for the load at the start: ceil(7 / 0.7) = 10, and steady.
    assert!(s[..30].iter().all(|x| x.ready == 10 && x.desired == 10));
    // The jump at minute 30 is seen one lag + one period later: nothing moves in minute 30.
    assert_eq!(s[30].desired, 10);
    // It settles at 14 / 0.7 = 20 within the high phase.
    assert_eq!(s[59].ready, 20);
    // After the drop at minute 60, nothing is removed for the 300 s stabilisation window.
    assert!(
        s[60..65].iter().all(|x| x.desired == 20),
        "{:?}",
        &s[60..66]
    );
    assert_eq!(s[89].ready, 10);
    assert!(
        out.score.tau_u > 0.0,
        "a reactive policy is short for a while after a jump"
    );
}
