//! A restarted control loop, given the state store its predecessor wrote, takes exactly the
//! decisions the uninterrupted loop takes: restarts in the middle of a scale-in cooldown and of
//! a stabilisation window change nothing. Without the store, the same restarts do change what
//! happens (so the comparison can fail).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hoist_engine::config::{GroupConfig, parse_str};
use hoist_engine::control::{ControlLoop, GroupOutcome, ManagedGroup};
use hoist_engine::state::{RedbStore, StateStore};
use hoist_sim::{DemandSpec, GeneratorSpec, SimGroupSpec, SimulatedCloud};

const INTERVAL: Duration = Duration::from_secs(30);

const POLICY: &str = "providers:\n  sim:\n    simulated: {}\ngroups:\n  - name: api\n    provider: sim\n    min: 2\n    max: 40\n    policies:\n      - target_tracking:\n          metric: utilization\n          target: 0.65\n          tolerance: 0.05\n          scale_down:\n            stabilization_window: 10m\n            limits:\n              - { percent: 10, period: 1m }\n    guards:\n      scale_in_cooldown: 5m\n";

fn group() -> GroupConfig {
    parse_str(Path::new("restart.yaml"), POLICY)
        .expect("test policy")
        .policy
        .groups[0]
        .clone()
}

fn cloud() -> SimulatedCloud {
    let demand = GeneratorSpec {
        daily_amplitude: 0.5,
        noise: 0.25,
        spikes_per_day: 24.0,
        spike_magnitude: 2.0,
        spike_duration: Duration::from_secs(600),
        ..GeneratorSpec::flat(600.0)
    };
    SimulatedCloud::builder()
        .seed(11)
        .boot_delay(Duration::from_secs(60))
        .group(SimGroupSpec {
            min: 2,
            max: 40,
            desired: 4,
            demand: DemandSpec::Generator(demand),
            ..SimGroupSpec::new("api")
        })
        .build()
        .expect("simulated cloud")
}

fn control(cloud: &SimulatedCloud, store: Option<Arc<dyn StateStore>>) -> ControlLoop {
    let groups = vec![ManagedGroup::new(group(), cloud.provider_set("sim"))];
    let control = ControlLoop::new(groups, cloud.clock(), INTERVAL);
    match store {
        Some(store) => control.with_state(store),
        None => control,
    }
}

/// Runs `steps` evaluations, restarting the loop before every step in `restarts` (with the
/// store when there is one), and returns (step, desired) of every decision.
async fn run(
    steps: usize,
    restarts: &[usize],
    store: Option<Arc<dyn StateStore>>,
) -> (Vec<(usize, u32)>, usize) {
    let cloud = cloud();
    let mut control = control(&cloud, store.clone());
    let mut desired = Vec::new();
    let mut restored = 0;
    for step in 0..steps {
        if restarts.contains(&step) {
            drop(control);
            control = self::control(&cloud, store.clone());
            restored += control.restore_state().await.expect("restore").groups;
        }
        for outcome in control.evaluate_once().await {
            match outcome {
                GroupOutcome::Decided { decision, .. } => desired.push((step, decision.desired)),
                GroupOutcome::ObserveFailed { error, .. } => panic!("observe failed: {error}"),
            }
        }
        cloud.advance(INTERVAL);
    }
    (desired, restored)
}

#[tokio::test]
async fn a_restart_with_the_state_store_decides_as_the_uninterrupted_run() {
    let steps = 6 * 120; // six hours at 30 s
    // Restarts every 17 steps: they fall inside cooldowns and stabilisation windows alike.
    let restarts: Vec<usize> = (1..steps).filter(|s| s % 17 == 0).collect();
    let (uninterrupted, _) = run(steps, &[], None).await;
    let scale_ins = uninterrupted.windows(2).filter(|w| w[1].1 < w[0].1).count();
    assert!(
        scale_ins >= 5,
        "the workload must make the loop scale in several times: {uninterrupted:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn StateStore> =
        Arc::new(RedbStore::open(&dir.path().join("state.redb")).unwrap());
    let (with_store, restored) = run(steps, &restarts, Some(store)).await;
    assert_eq!(restored, restarts.len());
    assert_eq!(with_store, uninterrupted);

    let (forgetful, _) = run(steps, &restarts, None).await;
    assert_ne!(
        forgetful, uninterrupted,
        "restarting without the store should change some decision, or this test proves nothing"
    );
}

#[tokio::test]
async fn a_garbage_record_starts_the_group_afresh() {
    let store = Arc::new(hoist_engine::state::MemoryStore::new());
    store
        .save(vec![(
            hoist_engine::state::group_key("sim", "api"),
            b"{not json".to_vec(),
        )])
        .await
        .unwrap();
    let cloud = cloud();
    let mut control = control(&cloud, Some(store));
    let restored = control.restore_state().await.expect("restore");
    assert_eq!(restored.groups, 0);
    assert_eq!(control.evaluate_once().await.len(), 1);
}
