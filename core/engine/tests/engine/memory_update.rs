//! `decide` is pure in the strict sense: it reads the group's memory and returns the change to
//! it as a `MemoryUpdate`, which rebuilds exactly the memory the engine kept when it mutated it
//! in place, and which survives serialisation, so another replica can apply it.

use std::path::Path;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use hoist_api::MetricKind;
use hoist_api::model::Sample;
use hoist_engine::config::{GroupConfig, parse_str};
use hoist_engine::{
    Decision, DecisionMemory, GroupSnapshot, MemoryUpdate, MetricWindows, Observation, decide,
};

/// Two target-tracking policies with different scale-down windows, and an instance-based
/// scale-down limit: stabilisation and rate limits both decide what happens.
fn group() -> GroupConfig {
    let text = "providers:\n  sim:\n    simulated: {}\ngroups:\n  - name: web\n    provider: sim\n    min: 2\n    max: 100\n    policies:\n      - target_tracking:\n          metric: utilization\n          target: 0.5\n          scale_down:\n            stabilization_window: 3m\n            limits:\n              - { instances: 3, period: 2m }\n      - target_tracking: { metric: utilization, target: 0.6, scale_down: { stabilization_window: 1m } }\n";
    parse_str(Path::new("test.yaml"), text)
        .expect("test policy")
        .policy
        .groups[0]
        .clone()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap()
}

/// One evaluation a minute: load rises, then falls for good. Instances become ready one
/// evaluation after they are asked for, and the metric lags by 90 s, so the engine reads it
/// against the ready count it remembers. The sixth evaluation runs twice at the same instant.
/// Returns each evaluation's memory update and final decision, having checked that `decide`
/// left the memory it was given untouched.
fn scenario(memory: &mut DecisionMemory) -> Vec<(MemoryUpdate, Decision)> {
    let g = group();
    let load = [0.9, 0.9, 0.8, 0.5, 0.3, 0.2, 0.2, 0.2, 0.2, 0.15, 0.1, 0.1];
    let mut desired_history: Vec<u32> = vec![4, 4];
    let mut steps = Vec::new();
    for (i, &utilization) in load.iter().enumerate() {
        let now = t0() + TimeDelta::minutes(i as i64);
        let desired = *desired_history.last().unwrap();
        let ready = desired_history[desired_history.len() - 2].min(desired);
        let snapshot = GroupSnapshot {
            id: "web".into(),
            desired,
            ready,
            pending: desired - ready,
            provider_min: 0,
            provider_max: 1000,
            instance_class: "m".into(),
        };
        let metrics = MetricWindows::from([(
            MetricKind::Utilization,
            vec![
                Sample {
                    at: now - TimeDelta::seconds(150),
                    value: utilization,
                },
                Sample {
                    at: now - TimeDelta::seconds(90),
                    value: utilization,
                },
            ],
        )]);
        let observation = Observation {
            now,
            group: &snapshot,
            metrics: &metrics,
            forecast: None,
            forecast_note: None,
            budget: None,
        };
        let times = if i == 5 { 2 } else { 1 };
        for _ in 0..times {
            let before = memory.clone();
            let (decision, update) = decide(&g, &observation, memory);
            assert_eq!(*memory, before, "decide changed the memory at {now}");
            memory.apply(&update);
            steps.push((update, decision));
        }
        let decision = &steps.last().unwrap().1;
        memory.record_applied(decision);
        desired_history.push(decision.desired);
    }
    steps
}

#[test]
fn decide_leaves_memory_alone_and_its_updates_rebuild_what_the_mutating_engine_kept() {
    let mut memory = DecisionMemory::new();
    let steps = scenario(&mut memory);

    // The decisions and the final memory of the engine that mutated its memory in place
    // (recorded from it on this scenario before `decide` became pure).
    let decisions: Vec<u32> = steps
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 5) // the first of the two evaluations at 12:05
        .map(|(_, (_, d))| d.desired)
        .collect();
    assert_eq!(decisions, [8, 8, 8, 8, 8, 8, 5, 5, 4, 2, 2, 2]);
    let expected: DecisionMemory = serde_json::from_value(serde_json::json!({
        "recommendations": [
            [["2026-03-02T12:08:00Z", 2], ["2026-03-02T12:09:00Z", 2],
             ["2026-03-02T12:10:00Z", 1], ["2026-03-02T12:11:00Z", 1]],
            [["2026-03-02T12:08:00Z", 2], ["2026-03-02T12:09:00Z", 1],
             ["2026-03-02T12:10:00Z", 1], ["2026-03-02T12:11:00Z", 1]],
        ],
        "scale_events": [["2026-03-02T12:08:00Z", -1], ["2026-03-02T12:09:00Z", -2]],
        "last_scale_out": "2026-03-02T12:00:00Z",
        "last_scale": "2026-03-02T12:09:00Z",
        "ready_history": [
            ["2026-03-02T12:08:00Z", 5], ["2026-03-02T12:09:00Z", 4],
            ["2026-03-02T12:10:00Z", 2], ["2026-03-02T12:11:00Z", 2],
        ],
    }))
    .expect("memory as JSON");
    assert_eq!(memory, expected);

    // Stabilisation is what held 8 while the raw recommendations fell: without the updates the
    // engine forgets them and scales in at once.
    let (update, first_low) = &steps[4];
    assert!(update.recommendations.iter().all(|&(_, raw)| raw < 8));
    assert_eq!(first_low.desired, 8, "{:#?}", first_low.reasons);
    let g = group();
    let snapshot = GroupSnapshot {
        id: "web".into(),
        desired: 8,
        ready: 8,
        pending: 0,
        provider_min: 0,
        provider_max: 1000,
        instance_class: "m".into(),
    };
    let now = t0() + TimeDelta::minutes(4);
    let metrics = MetricWindows::from([(
        MetricKind::Utilization,
        vec![Sample {
            at: now - TimeDelta::seconds(90),
            value: 0.3,
        }],
    )]);
    let observation = Observation {
        now,
        group: &snapshot,
        metrics: &metrics,
        forecast: None,
        forecast_note: None,
        budget: None,
    };
    let (forgetful, _) = decide(&g, &observation, &DecisionMemory::new());
    assert!(forgetful.desired < 8, "{:#?}", forgetful.reasons);
}

#[test]
fn updates_replayed_on_another_replica_give_the_same_memory() {
    let mut memory = DecisionMemory::new();
    let steps = scenario(&mut memory);

    // Another replica receives the updates and the applied decisions as JSON.
    let wire: Vec<(String, String)> = steps
        .iter()
        .map(|(update, decision)| {
            (
                serde_json::to_string(update).unwrap(),
                serde_json::to_string(decision).unwrap(),
            )
        })
        .collect();
    let mut replica = DecisionMemory::new();
    for (i, (update, decision)) in wire.iter().enumerate() {
        let update: MemoryUpdate = serde_json::from_str(update).unwrap();
        replica.apply(&update);
        // The first of the two evaluations at 12:05 was superseded, not applied.
        if i != 5 {
            replica.record_applied(&serde_json::from_str::<Decision>(decision).unwrap());
        }
    }
    assert_eq!(replica, memory);

    // The memory itself persists and loads back.
    let saved = serde_json::to_string(&memory).unwrap();
    assert_eq!(
        serde_json::from_str::<DecisionMemory>(&saved).unwrap(),
        memory
    );
}
