//! The decision function on constructed observations: each policy kind, the merge rule, the
//! guards, and the invariant that desired capacity never leaves [min, max].

use std::path::Path;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use hoist_api::MetricKind;
use hoist_api::model::Sample;
use hoist_engine::config::{GroupConfig, parse_str};
use hoist_engine::{DecisionMemory, Direction, GroupSnapshot, MetricWindows, Observation, decide};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap()
}

/// A group from a YAML fragment of its policies and guards.
fn group(min: u32, max: u32, body: &str) -> GroupConfig {
    let text = format!(
        "providers:\n  sim:\n    simulated: {{}}\ngroups:\n  - name: web\n    provider: sim\n    min: {min}\n    max: {max}\n{body}"
    );
    let doc = parse_str(Path::new("test.yaml"), &text)
        .unwrap_or_else(|e| panic!("test policy is invalid: {e}\n{text}"));
    doc.policy.groups[0].clone()
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

fn windows(metric: MetricKind, now: DateTime<Utc>, values: &[f64]) -> MetricWindows {
    let n = values.len() as i64;
    let samples = values
        .iter()
        .enumerate()
        .map(|(i, &value)| Sample {
            at: now - TimeDelta::minutes(n - 1 - i as i64),
            value,
        })
        .collect();
    MetricWindows::from([(metric, samples)])
}

fn run(
    g: &GroupConfig,
    snap: &GroupSnapshot,
    metrics: &MetricWindows,
    now: DateTime<Utc>,
    memory: &mut DecisionMemory,
) -> hoist_engine::Decision {
    let (decision, update) = decide(
        g,
        &Observation {
            now,
            group: snap,
            metrics,
            forecast: None,
            forecast_note: None,
            budget: None,
        },
        memory,
    );
    memory.apply(&update);
    decision
}

const TT_UTIL: &str =
    "    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n";

#[test]
fn target_tracking_scales_out_by_the_usage_ratio() {
    let g = group(1, 100, TT_UTIL);
    // 10 ready at 90 % with a 60 % target: ceil(10 × 0.9 / 0.6) = 15.
    let d = run(
        &g,
        &snapshot(10, 10),
        &windows(MetricKind::Utilization, t0(), &[0.9]),
        t0(),
        &mut DecisionMemory::new(),
    );
    assert_eq!(d.desired, 15, "{:#?}", d.reasons);
    assert_eq!(d.direction, Direction::Out);
}

#[test]
fn target_tracking_holds_within_tolerance() {
    let g = group(1, 100, TT_UTIL);
    // 0.65 / 0.6 = 1.083, inside the default 0.1 tolerance.
    let d = run(
        &g,
        &snapshot(10, 10),
        &windows(MetricKind::Utilization, t0(), &[0.65]),
        t0(),
        &mut DecisionMemory::new(),
    );
    assert_eq!(d.desired, 10);
    assert!(d.reasons[0].message.contains("within tolerance"));
}

#[test]
fn scale_up_is_rate_limited_like_the_hpa_default() {
    let g = group(1, 100, TT_UTIL);
    // 2 ready at 100 % with a 6 % target wants 34; HPA allows max(2 + 4, 2 × 200 %) = 6.
    let g2 = group(
        1,
        100,
        "    policies:\n      - target_tracking: { metric: utilization, target: 0.06 }\n",
    );
    let d = run(
        &g2,
        &snapshot(2, 2),
        &windows(MetricKind::Utilization, t0(), &[1.0]),
        t0(),
        &mut DecisionMemory::new(),
    );
    assert_eq!(d.desired, 6, "{:#?}", d.reasons);
    // With 10 ready, 100 % of 10 beats 4 instances: at most 20.
    let d = run(
        &g,
        &snapshot(10, 10),
        &windows(MetricKind::Utilization, t0(), &[6.0]),
        t0(),
        &mut DecisionMemory::new(),
    );
    assert_eq!(d.desired, 20, "{:#?}", d.reasons);
}

#[test]
fn scale_down_waits_for_the_stabilisation_window() {
    let g = group(1, 100, TT_UTIL);
    let mut memory = DecisionMemory::new();
    let mut now = t0();
    // High load first: recommendation 15 is remembered.
    let d = run(
        &g,
        &snapshot(15, 15),
        &windows(MetricKind::Utilization, now, &[0.6]),
        now,
        &mut memory,
    );
    assert_eq!(d.desired, 15);
    // Load drops to a third: raw recommendation 5, but the 300 s window still holds 15.
    for _ in 0..4 {
        now += TimeDelta::minutes(1);
        let d = run(
            &g,
            &snapshot(15, 15),
            &windows(MetricKind::Utilization, now, &[0.2]),
            now,
            &mut memory,
        );
        assert_eq!(d.desired, 15, "scaled in inside the window at {now}");
    }
    // Once the high recommendation is older than 300 s, scale in to the highest remaining (5).
    now += TimeDelta::minutes(2);
    let d = run(
        &g,
        &snapshot(15, 15),
        &windows(MetricKind::Utilization, now, &[0.2]),
        now,
        &mut memory,
    );
    assert_eq!(d.desired, 5, "{:#?}", d.reasons);
    assert_eq!(d.direction, Direction::In);
}

#[test]
fn total_metrics_divide_by_the_per_instance_target() {
    let g = group(
        1,
        100,
        "    policies:\n      - target_tracking: { metric: queue_depth, target: 50 }\n",
    );
    let d = run(
        &g,
        &snapshot(4, 4),
        &windows(MetricKind::QueueDepth, t0(), &[1000.0]),
        t0(),
        &mut DecisionMemory::new(),
    );
    // ceil(1000 / 50) = 20, but scale-up limit from 4 is max(8, 8) = 8.
    assert_eq!(d.desired, 8, "{:#?}", d.reasons);
}

#[test]
fn missing_stale_nan_and_negative_metrics_hold_and_say_why() {
    let g = group(1, 100, TT_UTIL);
    let now = t0();
    let cases: Vec<(MetricWindows, &str)> = vec![
        (MetricWindows::new(), "no utilization samples"),
        (
            MetricWindows::from([(
                MetricKind::Utilization,
                vec![Sample {
                    at: now - TimeDelta::minutes(30),
                    value: 0.95,
                }],
            )]),
            "stale",
        ),
        (windows(MetricKind::Utilization, now, &[f64::NAN]), "NaN"),
        (windows(MetricKind::Utilization, now, &[-3.0]), "negative"),
        (
            windows(MetricKind::Utilization, now, &[f64::INFINITY]),
            "inf",
        ),
    ];
    for (metrics, why) in cases {
        let d = run(
            &g,
            &snapshot(10, 10),
            &metrics,
            now,
            &mut DecisionMemory::new(),
        );
        assert_eq!(d.desired, 10, "moved on {why}");
        assert_eq!(d.direction, Direction::Hold);
        assert!(
            d.reasons.iter().any(|r| r.message.contains(why)),
            "reasons do not say {why}: {:#?}",
            d.reasons
        );
    }
}

#[test]
fn merge_scales_out_if_any_and_in_only_if_all() {
    let two = "    policies:\n      - target_tracking: { metric: utilization, target: 0.6, scale_down: { stabilization_window: 0s } }\n      - threshold: { metric: queue_depth, upper: 100, lower: 10 }\n";
    let g = group(1, 100, two);
    let now = t0();
    let mut metrics = windows(MetricKind::Utilization, now, &[0.3]);
    metrics.extend(windows(MetricKind::QueueDepth, now, &[500.0]));
    // Utilisation says in (5), queue says out (11): out wins.
    let d = run(
        &g,
        &snapshot(10, 10),
        &metrics,
        now,
        &mut DecisionMemory::new(),
    );
    assert_eq!(d.desired, 11, "{:#?}", d.reasons);

    // Both say in: the smaller reduction wins (max of 5 and 9).
    let mut metrics = windows(MetricKind::Utilization, now, &[0.3]);
    metrics.extend(windows(MetricKind::QueueDepth, now, &[1.0]));
    let d = run(
        &g,
        &snapshot(10, 10),
        &metrics,
        now,
        &mut DecisionMemory::new(),
    );
    assert_eq!(d.desired, 9, "{:#?}", d.reasons);

    // One says in, the other has no metrics: hold.
    let metrics = windows(MetricKind::Utilization, now, &[0.3]);
    let d = run(
        &g,
        &snapshot(10, 10),
        &metrics,
        now,
        &mut DecisionMemory::new(),
    );
    assert_eq!(d.desired, 10, "{:#?}", d.reasons);
    assert!(d.reasons.iter().any(|r| r.source == "merge"));
}

#[test]
fn step_scaling_picks_the_step_the_metric_is_in() {
    let body = "    policies:\n      - step:\n          metric: latency_p95\n          steps:\n            - { to: 0.1, adjust: -1 }\n            - { from: 0.3, to: 1.0, adjust: 2 }\n            - { from: 1.0, adjust: 5 }\n";
    let g = group(1, 100, body);
    let now = t0();
    for (latency, want) in [(0.05, 9), (0.2, 10), (0.5, 12), (3.0, 15)] {
        let d = run(
            &g,
            &snapshot(10, 10),
            &windows(MetricKind::LatencyP95, now, &[latency]),
            now,
            &mut DecisionMemory::new(),
        );
        assert_eq!(d.desired, want, "latency {latency}: {:#?}", d.reasons);
    }
}

#[test]
fn threshold_needs_consecutive_breaches() {
    let body = "    policies:\n      - threshold: { metric: error_rate, upper: 0.05, lower: 0.001, scale_out_by: 3, periods: 3 }\n";
    let g = group(1, 100, body);
    let now = t0();
    let d = run(
        &g,
        &snapshot(10, 10),
        &windows(MetricKind::ErrorRate, now, &[0.01, 0.2, 0.2]),
        now,
        &mut DecisionMemory::new(),
    );
    assert_eq!(d.desired, 10, "two breaches are not three");
    let d = run(
        &g,
        &snapshot(10, 10),
        &windows(MetricKind::ErrorRate, now, &[0.2, 0.2, 0.2]),
        now,
        &mut DecisionMemory::new(),
    );
    assert_eq!(d.desired, 13);
}

#[test]
fn schedule_raises_the_floor_while_active() {
    let body = "    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n      - scheduled: { cron: \"0 8 * * MON-FRI\", timezone: Europe/Berlin, duration: 10h, min: 30 }\n";
    let g = group(2, 100, body);
    // Monday 2026-03-02 12:00 UTC = 13:00 Berlin: active.
    let d = run(
        &g,
        &snapshot(10, 10),
        &windows(MetricKind::Utilization, t0(), &[0.6]),
        t0(),
        &mut DecisionMemory::new(),
    );
    assert_eq!(d.desired, 30, "{:#?}", d.reasons);
    // Sunday: inactive, and the schedule does not block scale-in.
    let sunday = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let mut memory = DecisionMemory::new();
    let body_no_window = body.replace(
        "target: 0.6 }",
        "target: 0.6, scale_down: { stabilization_window: 0s } }",
    );
    let g = group(2, 100, &body_no_window);
    let d = run(
        &g,
        &snapshot(10, 10),
        &windows(MetricKind::Utilization, sunday, &[0.3]),
        sunday,
        &mut memory,
    );
    assert_eq!(d.desired, 5, "{:#?}", d.reasons);
}

#[test]
fn cooldown_and_protection_block_scale_in() {
    let body = "    policies:\n      - target_tracking: { metric: utilization, target: 0.6, scale_down: { stabilization_window: 0s } }\n    guards: { scale_in_cooldown: 10m }\n";
    let g = group(1, 100, body);
    let mut memory = DecisionMemory::new();
    let now = t0();
    let out = run(
        &g,
        &snapshot(10, 10),
        &windows(MetricKind::Utilization, now, &[0.9]),
        now,
        &mut memory,
    );
    memory.record_applied(&out);
    let later = now + TimeDelta::minutes(5);
    let d = run(
        &g,
        &snapshot(15, 15),
        &windows(MetricKind::Utilization, later, &[0.1]),
        later,
        &mut memory,
    );
    assert_eq!(d.desired, 15, "scaled in during the cooldown");
    assert!(
        d.reasons
            .iter()
            .any(|r| r.source == "guard.scale_in_cooldown")
    );
    let much_later = now + TimeDelta::minutes(11);
    let d = run(
        &g,
        &snapshot(15, 15),
        &windows(MetricKind::Utilization, much_later, &[0.1]),
        much_later,
        &mut memory,
    );
    assert!(d.desired < 15);

    let protected = group(
        1,
        100,
        "    policies:\n      - target_tracking: { metric: utilization, target: 0.6, scale_down: { stabilization_window: 0s } }\n    guards: { scale_in_protection: true }\n",
    );
    let d = run(
        &protected,
        &snapshot(15, 15),
        &windows(MetricKind::Utilization, now, &[0.1]),
        now,
        &mut DecisionMemory::new(),
    );
    assert_eq!(d.desired, 15);
}

#[test]
fn bounds_hold_whatever_the_inputs() {
    // A small deterministic generator sweeps metrics, capacities and provider bounds.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let g = group(
        3,
        40,
        "    policies:\n      - target_tracking: { metric: utilization, target: 0.5 }\n      - threshold: { metric: queue_depth, upper: 100, lower: 5, scale_out_by: 50, scale_in_by: 50 }\n",
    );
    let specials = [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300, 1e-300];
    let mut memory = DecisionMemory::new();
    let mut now = t0();
    for i in 0..5_000 {
        now += TimeDelta::seconds((next() % 120) as i64);
        let desired = (next() % 80) as u32;
        let ready = desired.min((next() % 80) as u32);
        let util = if i % 7 == 0 {
            specials[(next() % specials.len() as u64) as usize]
        } else {
            (next() % 3000) as f64 / 1000.0
        };
        let queue = (next() % 400) as f64;
        let mut metrics = windows(MetricKind::Utilization, now, &[util]);
        metrics.extend(windows(MetricKind::QueueDepth, now, &[queue]));
        let snap = snapshot(desired, ready);
        let d = run(&g, &snap, &metrics, now, &mut memory);
        let inside_before = (3..=40).contains(&desired);
        if inside_before || d.direction != Direction::Hold {
            assert!(
                (3..=40).contains(&d.desired),
                "left [3, 40]: {desired} → {} with util {util}, queue {queue}: {:#?}",
                d.desired,
                d.reasons
            );
        }
        // Out-of-bounds capacity is always brought back in.
        if !inside_before {
            assert!(
                (3..=40).contains(&d.desired),
                "{desired} was not brought into bounds"
            );
        }
        if d.direction != Direction::Hold {
            memory.record_applied(&d);
        }
    }
}
