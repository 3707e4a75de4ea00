//! A bounded chaos run: the control loop over the simulated cloud, in virtual time, with the
//! fault layer failing provider calls at random (throttling, server errors, timeouts) and a
//! demand with sharp spikes and heavy noise. Every step is checked against the guarantees the
//! engine keeps under faults:
//!
//! - a decision's desired capacity is never outside the group's `[min, max]`;
//! - no applied change moves more than the group's step guards allow;
//! - every decision is in the audit log;
//! - the loop never stalls: every group is evaluated at every interval, failures or not.
//!
//! (A provider that hangs is `control_concurrency.rs`: it needs tokio's paused clock, because a
//! real delay does not pass in virtual time.)
//!
//! The figures (runs, faults injected, invariant checks) are printed with `--nocapture`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use hoist_api::ErrorKind;
use hoist_api::layers::{FaultLayer, Operations};
use hoist_engine::audit::AuditLog;
use hoist_engine::config::parse_str;
use hoist_engine::control::{Action, ControlLoop, GroupOutcome, ManagedGroup};
use hoist_engine::events::{Event, EventSink};
use hoist_sim::{DemandSpec, GeneratorSpec, SimGroupSpec, SimulatedCloud};

const POLICY: &str = "providers:\n  sim:\n    simulated: {}\ngroups:\n  - name: web\n    provider: sim\n    min: 2\n    max: 40\n    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n    guards: { max_scale_out_step: 5, max_scale_in_step: 3 }\n  - name: queue\n    provider: sim\n    min: 1\n    max: 25\n    policies:\n      - target_tracking: { metric: queue_depth, target: 20 }\n      - target_tracking: { metric: utilization, target: 0.7 }\n    guards: { max_scale_out_step: 4, max_scale_in_step: 2 }\n";

/// What the run saw, from the loop's events.
#[derive(Debug, Default)]
struct Seen {
    decided: Mutex<Vec<(String, u32, u32)>>,
    acted: Mutex<Vec<(String, u32, u32, bool)>>,
}

impl EventSink for Seen {
    fn emit(&self, event: &Event) {
        match event {
            Event::Decided { decision, .. } => self.decided.lock().unwrap().push((
                decision.group.clone(),
                decision.current,
                decision.desired,
            )),
            Event::Acted {
                group,
                from,
                to,
                error,
                ..
            } => self
                .acted
                .lock()
                .unwrap()
                .push((group.clone(), *from, *to, error.is_none())),
            _ => {}
        }
    }
}

fn spiky(base: f64) -> DemandSpec {
    DemandSpec::Generator(GeneratorSpec {
        noise: 0.3,
        spikes_per_day: 12.0,
        spike_magnitude: 4.0,
        ..GeneratorSpec::web(base)
    })
}

/// One chaos run of `hours` of virtual time with faults seeded by `seed`; returns (decisions,
/// faults injected, invariant checks).
async fn chaos_run(seed: u64, hours: i64) -> (usize, usize, usize) {
    let doc = parse_str(Path::new("chaos.yaml"), POLICY).expect("chaos policy");
    let start = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
    let cloud = SimulatedCloud::builder()
        .seed(seed)
        .start(start)
        .group(SimGroupSpec {
            min: 0,
            max: 1000,
            desired: 4,
            demand: spiky(600.0),
            ..SimGroupSpec::new("web")
        })
        .group(SimGroupSpec {
            min: 0,
            max: 1000,
            desired: 2,
            demand: spiky(300.0),
            ..SimGroupSpec::new("queue")
        })
        .build()
        .expect("cloud");
    let faults = FaultLayer::new(seed)
        .with_error_rate(Operations::All, ErrorKind::Throttled, 0.08)
        .with_error_rate(Operations::All, ErrorKind::Transient, 0.08)
        .with_error_rate(Operations::All, ErrorKind::Timeout, 0.04);
    let sim = cloud.provider_set("sim").with_layer(&faults);
    let groups = vec![
        ManagedGroup::new(doc.policy.groups[0].clone(), sim.clone()),
        ManagedGroup::new(doc.policy.groups[1].clone(), sim),
    ];
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let audit = Arc::new(AuditLog::open(&audit_path).unwrap());
    let seen = Arc::new(Seen::default());
    let mut control = ControlLoop::new(groups, cloud.clock(), Duration::from_secs(60))
        .with_events(seen.clone())
        .with_audit(audit);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    control
        .run(Some(start + TimeDelta::hours(hours)), |outcome| {
            let group = match outcome {
                GroupOutcome::Decided { decision, .. } => decision.group.clone(),
                GroupOutcome::ObserveFailed { group, .. } => group.clone(),
            };
            *outcomes.entry(group).or_default() += 1;
            if let GroupOutcome::Decided {
                action: Action::Standby,
                ..
            } = outcome
            {
                panic!("no leadership configured, yet a decision stood by");
            }
        })
        .await
        .expect("the run");

    let bounds: BTreeMap<&str, (u32, u32, u32, u32)> =
        BTreeMap::from([("web", (2, 40, 5, 3)), ("queue", (1, 25, 4, 2))]);
    let mut checks = 0;
    let decided = seen.decided.lock().unwrap().clone();
    for (group, _current, desired) in &decided {
        let (min, max, ..) = bounds[group.as_str()];
        assert!(
            (min..=max).contains(desired),
            "{group}: desired {desired} outside [{min}, {max}]"
        );
        checks += 1;
    }
    for (group, from, to, _ok) in seen.acted.lock().unwrap().iter() {
        let (_, _, out_step, in_step) = bounds[group.as_str()];
        let step = if to > from { out_step } else { in_step };
        assert!(
            from.abs_diff(*to) <= step,
            "{group}: {from} -> {to} exceeds the step guard {step}"
        );
        checks += 1;
    }
    // Every decision audited.
    let audited = std::fs::read_to_string(&audit_path)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"record\":\"decision\""))
        .count();
    assert_eq!(audited, decided.len(), "decisions audited");
    checks += 1;
    // Never stalled: the healthy groups were evaluated at every interval.
    let intervals = (hours * 60) as usize;
    for group in ["web", "queue"] {
        let n = outcomes.get(group).copied().unwrap_or(0);
        assert!(
            n + 1 >= intervals,
            "{group} evaluated {n} times in {intervals} intervals"
        );
        checks += 1;
    }
    (decided.len(), faults.injected().len(), checks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarantees_hold_under_injected_faults() {
    let (mut decisions, mut faults, mut checks) = (0, 0, 0);
    let seeds = [1u64, 2, 3, 4, 5, 6, 7, 8];
    for seed in seeds {
        let (d, f, c) = chaos_run(seed, 24).await;
        decisions += d;
        faults += f;
        checks += c;
    }
    println!(
        "chaos: {} runs of 24 h, {decisions} decisions, {faults} faults injected, {checks} invariant checks",
        seeds.len()
    );
    assert!(
        faults > 100,
        "the fault layer injected only {faults} faults"
    );
}
