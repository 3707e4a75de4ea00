//! Hardening of the decision function against extreme input (issue 13, item 1): every
//! computation from a metric to a capacity is checked, a result that is not finite or does not
//! fit holds (or goes to max when the signal clearly says "more"), and capacity never moves the
//! other way. Validation refuses targets, adjustments and factors that cannot be computed.

use std::path::Path;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use hoist_api::MetricKind;
use hoist_api::model::Sample;
use hoist_engine::config::{AdjustmentType, GroupConfig, PolicyConfig, parse_str};
use hoist_engine::{
    Decision, DecisionMemory, Direction, GroupSnapshot, MetricWindows, Observation, decide,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap()
}

fn policy_text(min: u32, max: u32, body: &str) -> String {
    format!(
        "providers:\n  sim:\n    simulated: {{}}\ngroups:\n  - name: web\n    provider: sim\n    min: {min}\n    max: {max}\n{body}"
    )
}

/// A group from a YAML fragment of its policies and guards.
fn group(min: u32, max: u32, body: &str) -> GroupConfig {
    let text = policy_text(min, max, body);
    let doc = parse_str(Path::new("test.yaml"), &text)
        .unwrap_or_else(|e| panic!("test policy is invalid: {e}\n{text}"));
    doc.policy.groups[0].clone()
}

/// The validation errors of a group, as text.
fn refused(min: u32, max: u32, body: &str) -> String {
    let text = policy_text(min, max, body);
    match parse_str(Path::new("test.yaml"), &text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn snapshot(desired: u32, ready: u32) -> GroupSnapshot {
    GroupSnapshot {
        id: "web".into(),
        desired,
        ready,
        pending: desired.saturating_sub(ready),
        provider_min: 0,
        provider_max: 1000,
        instance_class: "m.large".into(),
    }
}

fn metric(metric: MetricKind, value: f64) -> MetricWindows {
    MetricWindows::from([(
        metric,
        vec![Sample {
            at: t0() - TimeDelta::seconds(5),
            value,
        }],
    )])
}

fn decide_once(g: &GroupConfig, snap: &GroupSnapshot, metrics: &MetricWindows) -> Decision {
    let (decision, _) = decide(
        g,
        &Observation {
            now: t0(),
            group: snap,
            metrics,
            forecast: None,
            forecast_note: None,
            budget: None,
        },
        &DecisionMemory::new(),
    );
    decision
}

/// Target tracking without rate limits, so that "go to max" is visible in one decision.
const UNLIMITED: &str = "          scale_up: { stabilization_window: 0s, limits: [] }\n          scale_down: { stabilization_window: 0s, limits: [] }\n";

fn tt(metric: &str, target: &str) -> String {
    format!(
        "    policies:\n      - target_tracking:\n          metric: {metric}\n          target: {target}\n{UNLIMITED}"
    )
}

fn set_target(g: &mut GroupConfig, target: f64) {
    match &mut g.policies[0] {
        PolicyConfig::TargetTracking(tt) => tt.target = target,
        PolicyConfig::Predictive(p) => p.target = target,
        other => panic!("no target in {other:?}"),
    }
}

fn set_adjust(g: &mut GroupConfig, adjustment: AdjustmentType, adjust: i64) {
    let PolicyConfig::Step(step) = &mut g.policies[0] else {
        panic!("not a step policy");
    };
    step.adjustment = adjustment;
    for s in &mut step.steps {
        s.adjust = adjust;
    }
}

#[test]
fn a_metric_of_1e308_scales_out_to_max_not_in_to_min() {
    // ready × ratio overflows to infinity; it once became NaN and then 0 instances.
    let g = group(2, 50, &tt("utilization", "0.6"));
    let d = decide_once(
        &g,
        &snapshot(10, 10),
        &metric(MetricKind::Utilization, 1e308),
    );
    assert_eq!(d.desired, 50, "{:#?}", d.reasons);
    assert_eq!(d.direction, Direction::Out);
    assert!(d.reasons[0].message.contains("maximum"), "{:#?}", d.reasons);
    // The same as a total (request rate per instance), and at f64::MAX.
    let g = group(2, 50, &tt("request_rate", "100"));
    for value in [1e308, f64::MAX] {
        let d = decide_once(
            &g,
            &snapshot(10, 10),
            &metric(MetricKind::RequestRate, value),
        );
        assert_eq!(d.desired, 50, "{value}: {:#?}", d.reasons);
    }
    // With the default HPA rate limits, the way is still out.
    let g = group(
        2,
        50,
        "    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n",
    );
    let d = decide_once(
        &g,
        &snapshot(10, 10),
        &metric(MetricKind::Utilization, 1e308),
    );
    assert_eq!(d.direction, Direction::Out, "{:#?}", d.reasons);
    assert_eq!(d.desired, 20, "{:#?}", d.reasons);
}

#[test]
fn a_subnormal_target_never_scales_in_under_load_and_is_refused_by_validate() {
    let mut g = group(1, 40, &tt("utilization", "0.6"));
    set_target(&mut g, 1e-320);
    // 100 % utilisation on 1 instance: once held at 1, now as many as allowed.
    let d = decide_once(&g, &snapshot(1, 1), &metric(MetricKind::Utilization, 1.0));
    assert_eq!(d.desired, 40, "{:#?}", d.reasons);
    // Under load on 10 instances: once scaled in, now out.
    let d = decide_once(&g, &snapshot(10, 10), &metric(MetricKind::Utilization, 0.5));
    assert_eq!(d.direction, Direction::Out, "{:#?}", d.reasons);
    // A target that is no number at all holds.
    for target in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        set_target(&mut g, target);
        let d = decide_once(&g, &snapshot(10, 10), &metric(MetricKind::Utilization, 0.5));
        assert_eq!(d.desired, 10, "{target}: {:#?}", d.reasons);
        assert!(d.reasons[0].message.contains("holding"), "{:#?}", d.reasons);
    }

    for target in ["1e-320", "1e-12", "1e300"] {
        let metric = if target == "1e300" {
            "request_rate"
        } else {
            "utilization"
        };
        let err = refused(1, 40, &tt(metric, target));
        assert!(
            err.contains("test.yaml:12") && err.contains("target") && err.contains("between"),
            "{target}: {err}"
        );
    }
    let predictive =
        "    policies:\n      - predictive: { metric: request_rate, target: 1e-320 }\n";
    let err = refused(1, 40, predictive);
    assert!(
        err.contains("test.yaml:10") && err.contains("predictive.target"),
        "{err}"
    );
}

const STEP: &str = "    policies:\n      - step:\n          metric: utilization\n          steps:\n            - { to: 0.3, adjust: -1 }\n            - { from: 0.8, adjust: 9223372036854775807 }\n";

#[test]
fn a_huge_step_adjustment_goes_to_max_and_is_refused_by_validate() {
    let mut g = group(2, 60, &STEP.replace("9223372036854775807", "3"));
    set_adjust(&mut g, AdjustmentType::Change, i64::MAX);
    // Full load: once overflowed and held the group at its minimum.
    let d = decide_once(&g, &snapshot(2, 2), &metric(MetricKind::Utilization, 1.0));
    assert_eq!(d.desired, 60, "{:#?}", d.reasons);
    set_adjust(&mut g, AdjustmentType::Percent, i64::MAX);
    let d = decide_once(&g, &snapshot(7, 7), &metric(MetricKind::Utilization, 1.0));
    assert_eq!(d.desired, 60, "{:#?}", d.reasons);
    set_adjust(&mut g, AdjustmentType::Exact, i64::MAX);
    let d = decide_once(&g, &snapshot(7, 7), &metric(MetricKind::Utilization, 1.0));
    assert_eq!(d.desired, 60, "{:#?}", d.reasons);
    // The other way, as asked, down to min and no further.
    for adjustment in [AdjustmentType::Change, AdjustmentType::Percent] {
        set_adjust(&mut g, adjustment, i64::MIN);
        let d = decide_once(&g, &snapshot(7, 7), &metric(MetricKind::Utilization, 0.1));
        assert_eq!(d.desired, 2, "{adjustment:?}: {:#?}", d.reasons);
    }

    let err = refused(2, 60, STEP);
    assert!(
        err.contains("test.yaml:14") && err.contains("steps[1].adjust") && err.contains("±"),
        "{err}"
    );
    let err = refused(2, 60, &STEP.replace("9223372036854775807", "-1000001"));
    assert!(err.contains("steps[1].adjust"), "{err}");
    // Up to a million (the most instances a group may have) is computable and accepted.
    group(2, 60, &STEP.replace("9223372036854775807", "1000000"));
    let err = refused(
        2,
        3_000_000,
        &STEP.replace("9223372036854775807", "1000000"),
    );
    assert!(
        err.contains("groups[0].max") && err.contains("limit of 1000000 instances"),
        "{err}"
    );
    let err = refused(2, 60, &STEP.replace("to: 0.3", "to: .inf"));
    assert!(
        err.contains("steps[0].to") && err.contains("finite"),
        "{err}"
    );
}

#[test]
fn factors_outside_what_can_be_computed_are_refused() {
    let body = "    policies:\n      - target_tracking:\n          metric: utilization\n          target: 0.6\n          scale_up:\n            limits: [{ percent: 1e300, period: 15s }]\n";
    let err = refused(1, 10, body);
    assert!(
        err.contains("test.yaml:14") && err.contains("scale_up.limits[0].percent"),
        "{err}"
    );
}

#[test]
fn a_metric_above_target_never_scales_in_while_instances_boot() {
    // 10 desired, only 2 ready at 120 % of target: 3 are enough for the 2, but the metric says
    // more, so capacity stays.
    let g = group(1, 100, &tt("utilization", "0.5"));
    let d = decide_once(&g, &snapshot(10, 2), &metric(MetricKind::Utilization, 0.6));
    assert_eq!(d.desired, 10, "{:#?}", d.reasons);
    // And one below target never scales out while instances drain.
    let d = decide_once(&g, &snapshot(5, 8), &metric(MetricKind::Utilization, 0.4));
    assert_eq!(d.desired, 5, "{:#?}", d.reasons);
}

/// Metric values from a Prometheus that lies.
const EXTREMES: [f64; 22] = [
    0.0,
    -0.0,
    5e-324,
    f64::MIN_POSITIVE,
    1e-300,
    1e-9,
    0.1,
    0.49,
    0.5,
    0.51,
    1.0,
    2.0,
    1e6,
    4_294_967_296.0,
    1e18,
    1e300,
    f64::MAX,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
    -1.0,
    -f64::MAX,
];

#[test]
fn any_metric_keeps_the_decision_in_bounds_and_never_against_the_signal() {
    let targets = [1e-9, 0.5, 1.0, 100.0, 1e12, 1e-320, 5e-324];
    let policies: [(&str, MetricKind, bool); 4] = [
        ("utilization", MetricKind::Utilization, false),
        ("request_rate", MetricKind::RequestRate, true),
        ("latency_p95", MetricKind::LatencyP95, false),
        ("{ custom: jobs }", MetricKind::Custom("jobs".into()), false),
    ];
    let counts = [
        (0, 0),
        (1, 1),
        (3, 3),
        (10, 2),
        (10, 10),
        (7, 12),
        (100, 100),
    ];
    for (min, max) in [(0, 100), (1, 100), (3, 10)] {
        for (name, kind, total) in &policies {
            for limits in [UNLIMITED, ""] {
                let body = format!(
                    "    policies:\n      - target_tracking:\n          metric: {name}\n          target: 0.5\n{limits}"
                );
                let mut g = group(min, max, &body);
                for &target in &targets {
                    set_target(&mut g, target);
                    for &(desired, ready) in &counts {
                        let desired = desired.clamp(min, max);
                        for &value in &EXTREMES {
                            let d = decide_once(
                                &g,
                                &snapshot(desired, ready),
                                &metric(kind.clone(), value),
                            );
                            let case = format!(
                                "{name} = {value} target {target}, [{min}, {max}], {desired} desired {ready} ready: {:#?}",
                                d.reasons
                            );
                            assert!((min..=max).contains(&d.desired), "{case}");
                            // "Above target": the ratio the policy reads, past its tolerance.
                            let ratio = if *total {
                                value / (target * f64::from(desired))
                            } else {
                                value / target
                            };
                            if value.is_finite() && value >= 0.0 && ratio > 1.1 {
                                assert_ne!(d.direction, Direction::In, "{case}");
                            }
                            if value.is_finite() && value >= 0.0 && ratio < 0.9 {
                                assert_ne!(d.direction, Direction::Out, "{case}");
                            }
                            if !(value.is_finite() && value >= 0.0) {
                                assert_eq!(d.direction, Direction::Hold, "{case}");
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn any_metric_keeps_step_and_threshold_policies_in_bounds() {
    let step = "    policies:\n      - step:\n          metric: utilization\n          steps:\n            - { to: 0.3, adjust: -1 }\n            - { from: 0.8, adjust: 3 }\n";
    let threshold =
        "    policies:\n      - threshold: { metric: utilization, upper: 0.8, lower: 0.3 }\n";
    for (min, max) in [(0, 100), (2, 9)] {
        let mut g = group(min, max, step);
        let th = group(min, max, threshold);
        for adjustment in [
            AdjustmentType::Change,
            AdjustmentType::Percent,
            AdjustmentType::Exact,
        ] {
            for adjust in [i64::MIN, -1_000_000, -1, 0, 1, 1_000_000, i64::MAX] {
                set_adjust(&mut g, adjustment, adjust);
                for &value in &EXTREMES {
                    for desired in [min, 5.clamp(min, max), max] {
                        let snap = snapshot(desired, desired);
                        let metrics = metric(MetricKind::Utilization, value);
                        for (what, g) in [("step", &g), ("threshold", &th)] {
                            let d = decide_once(g, &snap, &metrics);
                            let case = format!(
                                "{what} {adjustment:?} {adjust} at {value}, [{min}, {max}], {desired}: {:#?}",
                                d.reasons
                            );
                            assert!((min..=max).contains(&d.desired), "{case}");
                            if !(value.is_finite() && value >= 0.0) {
                                assert_eq!(d.direction, Direction::Hold, "{case}");
                            }
                            // Above the top step with a positive change never scales in.
                            if value >= 0.8
                                && value.is_finite()
                                && adjust > 0
                                && adjustment != AdjustmentType::Exact
                            {
                                assert_ne!(d.direction, Direction::In, "{case}");
                            }
                        }
                    }
                }
            }
        }
    }
}
