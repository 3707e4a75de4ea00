//! A group's vertical policy on the simulated cloud: a group oversized on an expensive family
//! is recommended (or moved to) the cheapest class across families that carries its peak, once
//! per cooldown, and every look is in the audit log.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hoist_engine::audit::AuditLog;
use hoist_engine::config::parse_str;
use hoist_engine::control::{ControlLoop, ManagedGroup};
use hoist_sim::{DemandSpec, SimGroupSpec, SimulatedCloud};

const INTERVAL: Duration = Duration::from_secs(60);

fn policy(mode: &str) -> String {
    format!(
        "providers:\n  sim:\n    simulated: {{}}\ngroups:\n  - name: api\n    provider: sim\n    min: 1\n    max: 40\n    policies:\n      - target_tracking: {{ metric: utilization, target: 0.6 }}\n    vertical:\n      mode: {mode}\n      lookback: 10m\n      cooldown: 1h\n"
    )
}

/// A simulated cloud with one group `api` on `memory.xlarge` of (`min`, `max`, `desired`)
/// instances under a constant `demand`.
fn memory_cloud(seed: u64, (min, max, desired): (u32, u32, u32), demand: f64) -> SimulatedCloud {
    SimulatedCloud::builder()
        .seed(seed)
        .group(SimGroupSpec {
            min,
            max,
            desired,
            instance_class: "memory.xlarge".into(),
            demand: DemandSpec::Constant(demand),
            ..SimGroupSpec::new("api")
        })
        .build()
        .expect("cloud")
}

/// Runs `minutes` of evaluations; returns the audit log's vertical records and the group's
/// class at the end.
async fn run(mode: &str, minutes: usize) -> (Vec<serde_json::Value>, String) {
    run_text(&policy(mode), minutes).await
}

/// [`run`] on a policy file's text.
async fn run_text(text: &str, minutes: usize) -> (Vec<serde_json::Value>, String) {
    let doc = parse_str(Path::new("vertical.yml"), text).expect("policy");
    let cloud = memory_cloud(3, (1, 40, 10), 600.0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let audit = Arc::new(AuditLog::open(&path).unwrap());
    let groups = vec![ManagedGroup::new(
        doc.policy.groups[0].clone(),
        cloud.provider_set("sim"),
    )];
    let mut control = ControlLoop::new(groups, cloud.clock(), INTERVAL)
        .with_audit(audit)
        .with_budgets(hoist_engine::budget::BudgetTracker::new(&doc.policy));
    for _ in 0..minutes {
        control.evaluate_once().await;
        cloud.advance(INTERVAL);
    }
    let records = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["record"] == "vertical")
        .collect();
    let class = hoist_api::provider::ScalingProvider::describe_group(&cloud, "api")
        .await
        .unwrap()
        .instance_class;
    (records, class)
}

#[tokio::test]
async fn recommend_records_the_cheaper_family_and_changes_nothing() {
    let (records, class) = run("recommend", 60).await;
    // Once the lookback is half covered, then not again within the cooldown.
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["outcome"], "recommended", "{r}");
    assert_eq!(r["from_class"], "memory.xlarge");
    assert!(
        r["to_class"].as_str().unwrap().starts_with("compute."),
        "{r}"
    );
    assert!(r["saving_percent"].as_f64().unwrap() >= 10.0, "{r}");
    assert!(r["peak_cores"].as_f64().unwrap() > 0.0, "{r}");
    assert_eq!(class, "memory.xlarge");
}

#[tokio::test]
async fn apply_moves_the_group_and_waits_out_its_cooldown() {
    let (records, class) = run("apply", 150).await;
    assert_eq!(records[0]["outcome"], "applied", "{records:?}");
    assert!(class.starts_with("compute."), "{class}");
    // The next look comes an hour later at the earliest, and finds the group where it should
    // be (or a move not worth making).
    assert!(records.len() <= 3, "{records:?}");
    for r in &records[1..] {
        assert_ne!(r["outcome"], "applied", "{r}");
    }
}

#[tokio::test]
async fn a_bad_vertical_policy_is_refused_at_its_field() {
    let text = policy("apply").replace(
        "cooldown: 1h\n",
        "cooldown: 1h\n      target_utilization: 1.5\n      families: [compute, quantum]\n",
    );
    let errors = parse_str(Path::new("vertical.yml"), &text)
        .expect_err("refused")
        .to_string();
    assert!(
        errors.contains("groups[0].vertical.target_utilization"),
        "{errors}"
    );
    assert!(
        errors.contains("groups[0].vertical.families[1]"),
        "{errors}"
    );
    assert!(errors.contains("quantum"), "{errors}");
}

#[tokio::test]
async fn a_budget_on_prefer_cheaper_makes_any_saving_worth_a_move() {
    // Without the budget, a saving must be all of the cost to count: nothing moves.
    let strict = policy("apply").replace(
        "cooldown: 1h\n",
        "cooldown: 1h\n      min_saving_percent: 100\n",
    );
    let (records, class) = run_text(&strict, 60).await;
    assert_eq!(records[0]["outcome"], "below_min_saving", "{records:?}");
    assert_eq!(class, "memory.xlarge");
    // A daily budget far below the spend, on `prefer_cheaper`: the move is made, naming it.
    let budgeted = format!(
        "{strict}budgets:\n  - name: tight\n    scope: all\n    period: daily\n    amount: 1\n    currency: USD\n    action: prefer_cheaper\n"
    );
    let (records, class) = run_text(&budgeted, 60).await;
    assert_eq!(records[0]["outcome"], "applied", "{records:?}");
    assert_eq!(records[0]["budget"], "tight", "{records:?}");
    assert!(class.starts_with("compute."), "{class}");
}

#[tokio::test]
async fn the_vertical_cooldown_survives_a_restart_with_the_state_store() {
    use hoist_engine::state::{MemoryStore, StateStore};
    let doc = parse_str(Path::new("vertical.yml"), &policy("recommend")).expect("policy");
    let cloud = memory_cloud(3, (1, 40, 10), 600.0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let looks = || {
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"record\":\"vertical\""))
            .count()
    };
    // Two runs of 25 minutes, the second a restart on the same store: the one look of the
    // first run starts the hour's cooldown, which the restarted loop keeps.
    for restarted in [false, true] {
        let groups = vec![ManagedGroup::new(
            doc.policy.groups[0].clone(),
            cloud.provider_set("sim"),
        )];
        let mut control = ControlLoop::new(groups, cloud.clock(), INTERVAL)
            .with_audit(Arc::new(AuditLog::open(&path).unwrap()))
            .with_state(Arc::clone(&store));
        assert_eq!(
            control.restore_state().await.unwrap().groups,
            usize::from(restarted)
        );
        for _ in 0..25 {
            control.evaluate_once().await;
            cloud.advance(INTERVAL);
        }
    }
    assert_eq!(
        looks(),
        1,
        "the restarted loop looked again within the cooldown"
    );
}

// ----- the disruption budget -----

use chrono::{DateTime, TimeDelta, Utc};
use hoist_sim::{InstanceRecord, Quota};
use proptest::prelude::*;

/// A fixed-size group (`min` = `max` = `size`, so only the vertical move changes instances) on
/// an expensive family, with a vertical policy in `apply` mode under `disruption` (YAML flow
/// mapping, or none).
fn fixed_policy(size: u32, disruption: Option<&str>) -> String {
    let disruption = disruption.map_or(String::new(), |d| format!("      disruption: {d}\n"));
    format!(
        "providers:\n  sim:\n    simulated: {{}}\ngroups:\n  - name: api\n    provider: sim\n    min: {size}\n    max: {size}\n    policies:\n      - target_tracking: {{ metric: utilization, target: 0.6 }}\n    vertical:\n      mode: apply\n      lookback: 10m\n      cooldown: 1h\n{disruption}"
    )
}

/// One world to move: its size, boot delay, drain and room in the quota above the group.
#[derive(Debug, Clone, Copy)]
struct World {
    size: u32,
    seed: u64,
    boot: Duration,
    drain: Duration,
    /// Instances the quota allows above the group; `None`: no quota.
    room: Option<u32>,
}

/// What a run of the loop left: the instances' lives, the audit log's vertical records (moves
/// and steps), and when the world started.
struct Moved {
    history: Vec<InstanceRecord>,
    records: Vec<serde_json::Value>,
    start: DateTime<Utc>,
    replacements: Vec<hoist_sim::ReplacementRecord>,
}

/// Runs the loop on `world` under `policy` until the move's replacement is done (or `limit`).
async fn move_group(world: World, policy: &str, limit: Duration) -> Moved {
    let interval = Duration::from_secs(120);
    let doc = parse_str(Path::new("vertical.yml"), policy).expect("policy");
    let mut builder = SimulatedCloud::builder()
        .seed(world.seed)
        .boot_delay(world.boot)
        .group(SimGroupSpec {
            min: world.size,
            max: world.size,
            desired: world.size,
            instance_class: "memory.xlarge".into(),
            demand: DemandSpec::Constant(30.0 * f64::from(world.size)),
            drain: world.drain,
            ..SimGroupSpec::new("api")
        });
    if let Some(room) = world.room {
        builder = builder.quota(Quota {
            max_instances: Some(world.size + room),
            max_vcpus: None,
        });
    }
    let cloud = builder.build().expect("cloud");
    let start = cloud.now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let groups = vec![ManagedGroup::new(
        doc.policy.groups[0].clone(),
        cloud.provider_set("sim"),
    )];
    let mut control = ControlLoop::new(groups, cloud.clock(), interval)
        .with_audit(Arc::new(AuditLog::open(&path).unwrap()));
    let mut elapsed = Duration::ZERO;
    while elapsed < limit {
        control.evaluate_once().await;
        cloud.advance(interval);
        elapsed += interval;
        let replacements = cloud.replacement_history("api").unwrap();
        let g = hoist_api::provider::ScalingProvider::describe_group(&cloud, "api")
            .await
            .unwrap();
        let done = !replacements.is_empty()
            && replacements.iter().all(|r| r.finished_at.is_some())
            && g.instances
                .iter()
                .all(|i| i.instance_class == g.instance_class);
        if done {
            // One more look records the last step.
            control.evaluate_once().await;
            break;
        }
    }
    let records = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["record"] == "vertical" || r["record"] == "vertical_step")
        .collect();
    Moved {
        history: cloud.instance_history("api").unwrap(),
        records,
        start,
        replacements: cloud.replacement_history("api").unwrap(),
    }
}

/// The most instances being replaced at once in a group of a fixed `size`, from the instances'
/// lives alone: at every moment, the instances alive above the group's size (new ones booting
/// on top of it, old ones draining) or the ones missing from what serves (replaced in place),
/// whichever is more.
fn most_at_once(history: &[InstanceRecord], size: u32) -> u32 {
    let mut moments: Vec<DateTime<Utc>> = history
        .iter()
        .flat_map(|i| {
            [
                Some(i.launched_at),
                i.ready_at,
                i.drain_started_at,
                i.ended_at,
            ]
        })
        .flatten()
        .collect();
    moments.sort();
    moments.dedup();
    let mut most = 0;
    for t in moments {
        let alive = history
            .iter()
            .filter(|i| i.launched_at <= t && i.ended_at.is_none_or(|e| e > t))
            .count() as i64;
        let serving = history
            .iter()
            .filter(|i| {
                i.ready_at.is_some_and(|r| r <= t)
                    && i.ended_at.is_none_or(|e| e > t)
                    && i.drain_started_at.is_none_or(|d| d > t)
            })
            .count() as i64;
        let size = i64::from(size);
        let at_once = (alive - size).max(size - serving).max(0) as u32;
        most = most.max(at_once);
    }
    most
}

/// The most replacements started (instances launched after the start) in any window of
/// `window`.
fn most_per_window(history: &[InstanceRecord], start: DateTime<Utc>, window: TimeDelta) -> u32 {
    let mut launches: Vec<DateTime<Utc>> = history
        .iter()
        .map(|i| i.launched_at)
        .filter(|&t| t > start)
        .collect();
    launches.sort();
    (0..launches.len())
        .map(|i| {
            launches[i..]
                .iter()
                .take_while(|&&t| t < launches[i] + window)
                .count() as u32
        })
        .max()
        .unwrap_or(0)
}

/// The replacement is complete: every instance serving at the end is of one new class, and as
/// many as the group's size.
fn assert_complete(moved: &Moved, size: u32) {
    let alive: Vec<&InstanceRecord> = moved
        .history
        .iter()
        .filter(|i| i.ended_at.is_none())
        .collect();
    assert_eq!(alive.len() as u32, size, "{:?}", moved.history);
    assert!(
        alive.iter().all(|i| i.instance_class != "memory.xlarge"),
        "{:?}",
        moved.history
    );
}

#[tokio::test]
async fn a_move_replaces_at_most_max_unavailable_instances_at_once() {
    let world = World {
        size: 10,
        seed: 1,
        boot: Duration::from_secs(120),
        drain: Duration::from_secs(300),
        room: None,
    };
    let moved = move_group(
        world,
        &fixed_policy(10, Some("{ max_unavailable: 3 }")),
        Duration::from_secs(6 * 3600),
    )
    .await;
    assert_complete(&moved, 10);
    assert_eq!(most_at_once(&moved.history, 10), 3);
    // Batches of 3, 3, 3 and 1, one after the other.
    let sizes: Vec<usize> = moved
        .replacements
        .iter()
        .map(|r| r.launched.len())
        .collect();
    assert_eq!(sizes, [3, 3, 3, 1]);
    let applied = &moved.records[0];
    assert_eq!(applied["outcome"], "applied", "{applied}");
    assert_eq!(applied["disruption"]["max_unavailable"], 3, "{applied}");
    assert_eq!(applied["to_replace"], 10, "{applied}");
    assert_eq!(applied["replaced"], 3, "{applied}");
    // Every step is recorded, and together they replace the group.
    let steps: Vec<&serde_json::Value> = moved
        .records
        .iter()
        .filter(|r| r["record"] == "vertical_step")
        .collect();
    let total: u64 = steps.iter().map(|s| s["replaced"].as_u64().unwrap()).sum();
    assert_eq!(total, 10, "{steps:?}");
    assert!(
        steps.iter().all(|s| s["in_flight"].as_u64().unwrap() <= 3),
        "{steps:?}"
    );
    assert_eq!(steps.last().unwrap()["outcome"], "replaced", "{steps:?}");
}

#[tokio::test]
async fn a_move_starts_at_most_per_window_replacements_in_any_window() {
    let world = World {
        size: 9,
        seed: 2,
        boot: Duration::from_secs(60),
        drain: Duration::ZERO,
        room: None,
    };
    let moved = move_group(
        world,
        &fixed_policy(
            9,
            Some("{ max_unavailable: 3, per_window: 4, window: 30m }"),
        ),
        Duration::from_secs(6 * 3600),
    )
    .await;
    assert_complete(&moved, 9);
    assert_eq!(
        most_per_window(&moved.history, moved.start, TimeDelta::minutes(30)),
        4
    );
    assert!(most_at_once(&moved.history, 9) <= 3);
    // 9 replacements at 4 per 30 minutes: the last starts an hour after the first at least.
    let first = moved.replacements.first().unwrap().started_at;
    let last = moved.replacements.last().unwrap().started_at;
    assert!(
        last - first >= TimeDelta::minutes(60),
        "{:?}",
        moved.replacements
    );
}

#[tokio::test]
async fn without_room_in_the_quota_a_move_replaces_in_place_within_the_budget() {
    let world = World {
        size: 6,
        seed: 3,
        boot: Duration::from_secs(90),
        drain: Duration::ZERO,
        room: Some(0),
    };
    let moved = move_group(
        world,
        &fixed_policy(6, Some("{ max_unavailable: 2 }")),
        Duration::from_secs(4 * 3600),
    )
    .await;
    assert_complete(&moved, 6);
    assert!(moved.replacements.iter().all(|r| !r.surge));
    assert_eq!(most_at_once(&moved.history, 6), 2);
}

#[tokio::test]
async fn the_default_budget_replaces_a_tenth_of_the_group_at_a_time() {
    let world = World {
        size: 20,
        seed: 4,
        boot: Duration::from_secs(60),
        drain: Duration::ZERO,
        room: None,
    };
    let moved = move_group(
        world,
        &fixed_policy(20, None),
        Duration::from_secs(6 * 3600),
    )
    .await;
    assert_complete(&moved, 20);
    assert_eq!(most_at_once(&moved.history, 20), 2);
    assert_eq!(moved.records[0]["disruption"]["max_unavailable"], 2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Over random groups, budgets and worlds, a vertical move never has more than
    /// `max_unavailable` instances being replaced at once, nor starts more than `per_window`
    /// replacements in any window, and it completes.
    #[test]
    fn the_disruption_budget_is_never_exceeded(
        size in 2u32..=12,
        max_unavailable in proptest::option::of(1u32..=5),
        window in proptest::option::of((1u32..=6, 10u32..=60)),
        seed in any::<u64>(),
        boot in 30u64..=300,
        drain in prop_oneof![Just(0u64), 60u64..=600],
        room in proptest::option::of(0u32..=3),
    ) {
        let mut budget = Vec::new();
        if let Some(m) = max_unavailable {
            budget.push(format!("max_unavailable: {m}"));
        }
        if let Some((n, minutes)) = window {
            budget.push(format!("per_window: {n}, window: {minutes}m"));
        }
        let text = (!budget.is_empty()).then(|| format!("{{ {} }}", budget.join(", ")));
        let world = World {
            size,
            seed,
            boot: Duration::from_secs(boot),
            drain: Duration::from_secs(drain),
            room,
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let moved = runtime.block_on(move_group(
            world,
            &fixed_policy(size, text.as_deref()),
            Duration::from_secs(30 * 3600),
        ));
        let allowed = max_unavailable.unwrap_or(size / 10).max(1);
        assert_complete(&moved, size);
        let at_once = most_at_once(&moved.history, size);
        prop_assert!(at_once <= allowed, "{at_once} at once, budget {allowed}: {:?}", moved.replacements);
        prop_assert!(at_once >= 1);
        if let Some((n, minutes)) = window {
            let most = most_per_window(&moved.history, moved.start, TimeDelta::minutes(i64::from(minutes)));
            prop_assert!(most <= n, "{most} in a window of {minutes}m, budget {n}: {:?}", moved.replacements);
        }
        // The loop passed the budget, and its record says it.
        let expected = hoist_api::DisruptionBudget::new(allowed);
        let expected = match window {
            Some((n, minutes)) => expected.with_window(n, Duration::from_secs(u64::from(minutes) * 60)),
            None => expected,
        };
        prop_assert!(moved.replacements.iter().all(|r| r.budget == Some(expected)));
        let applied = moved.records.iter().find(|r| r["outcome"] == "applied").unwrap();
        prop_assert_eq!(applied["disruption"]["max_unavailable"].as_u64(), Some(u64::from(allowed)));
        prop_assert_eq!(applied["replaced"].as_u64(), Some(u64::from(size.min(expected.batch()))));
    }
}

#[test]
fn bad_disruption_budgets_are_refused_at_their_line_and_field() {
    let cases = [
        (
            "{ max_unavailable: 0 }",
            "vertical.disruption.max_unavailable",
            "at least 1",
        ),
        (
            "{ per_window: 0 }",
            "vertical.disruption.per_window",
            "at least 1",
        ),
        (
            "{ max_unavailable: 5000000 }",
            "vertical.disruption.max_unavailable",
            "5000000",
        ),
        (
            "{ per_window: 4, window: 0s }",
            "vertical.disruption.window",
            "between 1m and 2d",
        ),
        (
            "{ per_window: 4, window: 30d }",
            "vertical.disruption.window",
            "between 1m and 2d",
        ),
        ("{ window: 1h }", "vertical.disruption.window", "per_window"),
        ("{ max_unavailable: -1 }", "max_unavailable", ""),
        ("{ max_unavailable: 2.5 }", "max_unavailable", ""),
        ("{ max_unavailable: 1e12 }", "max_unavailable", ""),
        ("{ max_unavailble: 2 }", "max_unavailble", ""),
    ];
    for (budget, field, says) in cases {
        let text = fixed_policy(4, Some(budget));
        // The `disruption:` line is the file's last.
        let line = text.lines().count();
        let errors = parse_str(Path::new("vertical.yml"), &text)
            .expect_err(budget)
            .to_string();
        assert!(
            errors.contains(&format!("vertical.yml:{line}")),
            "{budget}: {errors}"
        );
        assert!(errors.contains(field), "{budget}: {errors}");
        assert!(errors.contains(says), "{budget}: {errors}");
    }
    // Good ones pass, and the defaults are 10 % of the group (at least 1) and no window.
    let doc = parse_str(Path::new("vertical.yml"), &fixed_policy(4, None)).unwrap();
    let v = doc.policy.groups[0].vertical.as_ref().unwrap();
    assert_eq!(v.disruption.budget(4), hoist_api::DisruptionBudget::new(1));
    assert_eq!(v.disruption.budget(35), hoist_api::DisruptionBudget::new(3));
    let text = fixed_policy(
        4,
        Some("{ max_unavailable: 2, per_window: 10, window: 1h }"),
    );
    let doc = parse_str(Path::new("vertical.yml"), &text).unwrap();
    let v = doc.policy.groups[0].vertical.as_ref().unwrap();
    assert_eq!(
        v.disruption.budget(4),
        hoist_api::DisruptionBudget::new(2).with_window(10, Duration::from_secs(3600))
    );
}

#[test]
fn a_bad_memory_setting_is_refused_at_its_field() {
    let text = fixed_policy(4, None)
        + "      memory_metric: utilization\n      memory_target_utilization: 0\n";
    let errors = parse_str(Path::new("vertical.yml"), &text)
        .expect_err("refused")
        .to_string();
    assert!(
        errors.contains("groups[0].vertical.memory_metric"),
        "{errors}"
    );
    assert!(errors.contains("built-in"), "{errors}");
    assert!(
        errors.contains("groups[0].vertical.memory_target_utilization"),
        "{errors}"
    );
}

/// A move's replacement under way when the loop restarts is followed by the restarted loop
/// (from the state store): each step, to the last, is in the audit log.
#[tokio::test]
async fn a_replacement_under_way_is_followed_across_a_restart() {
    use hoist_engine::state::{MemoryStore, StateStore};
    let interval = Duration::from_secs(120);
    let doc = parse_str(
        Path::new("vertical.yml"),
        &fixed_policy(6, Some("{ max_unavailable: 1 }")),
    )
    .expect("policy");
    let cloud = memory_cloud(5, (6, 6, 6), 180.0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let steps = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["record"] == "vertical_step")
            .collect()
    };
    let new_loop = || {
        let groups = vec![ManagedGroup::new(
            doc.policy.groups[0].clone(),
            cloud.provider_set("sim"),
        )];
        ControlLoop::new(groups, cloud.clock(), interval)
            .with_audit(Arc::new(AuditLog::open(&path).unwrap()))
            .with_state(Arc::clone(&store))
    };
    // The first loop runs until the replacement has taken its first step, and stops there.
    let mut first = new_loop();
    for _ in 0..60 {
        first.evaluate_once().await;
        cloud.advance(interval);
        if steps().iter().any(|s| s["outcome"] == "replacing") {
            break;
        }
    }
    first.flush_state().await;
    drop(first);
    let before = steps();
    let last = before.last().expect("the replacement took a step");
    assert_eq!(last["outcome"], "replacing", "{before:?}");
    assert!(last["remaining"].as_u64().unwrap() > 0, "{before:?}");
    // The restarted loop follows it to the end.
    let mut second = new_loop();
    assert_eq!(second.restore_state().await.unwrap().groups, 1);
    for _ in 0..60 {
        second.evaluate_once().await;
        cloud.advance(interval);
        if steps().iter().any(|s| s["outcome"] == "replaced") {
            break;
        }
    }
    let after = steps();
    assert!(
        after.len() > before.len(),
        "no step after the restart: {after:?}"
    );
    let done = after.last().unwrap();
    assert_eq!(done["outcome"], "replaced", "{after:?}");
    assert_eq!(done["remaining"], 0, "{after:?}");
    assert_eq!(done["to_class"], last["to_class"]);
}

/// The group's class is x86-64: a cheaper arm64 class that fits is not chosen (the group's
/// machine image would not boot on it) unless the policy names the classes it may be.
#[tokio::test]
async fn a_cheaper_class_of_another_architecture_is_chosen_only_when_named() {
    let mut catalog = hoist_sim::default_catalog();
    let mut arm = catalog
        .iter()
        .find(|c| c.name == "compute.xlarge")
        .expect("compute.xlarge in the built-in catalog")
        .clone();
    arm.name = "compute-arm.xlarge".into();
    arm.architecture = hoist_api::model::Architecture::Arm64;
    for offering in &mut arm.offerings {
        offering.price.amount = hoist_api::Money::usd_f64(offering.price.per_hour() * 0.8);
    }
    catalog.push(arm);
    let look = |text: String| {
        let catalog = catalog.clone();
        async move {
            let doc = parse_str(Path::new("vertical.yml"), &text).expect("policy");
            let cloud = SimulatedCloud::builder()
                .seed(3)
                .catalog(catalog)
                .group(SimGroupSpec {
                    min: 1,
                    max: 40,
                    desired: 10,
                    instance_class: "memory.xlarge".into(),
                    demand: DemandSpec::Constant(600.0),
                    ..SimGroupSpec::new("api")
                })
                .build()
                .expect("cloud");
            let groups = vec![ManagedGroup::new(
                doc.policy.groups[0].clone(),
                cloud.provider_set("sim"),
            )];
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            let mut control = ControlLoop::new(groups, cloud.clock(), INTERVAL)
                .with_audit(Arc::new(AuditLog::open(&path).unwrap()));
            for _ in 0..30 {
                control.evaluate_once().await;
                cloud.advance(INTERVAL);
            }
            std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .find(|r| r["record"] == "vertical")
                .expect("a vertical look")
        }
    };
    let same = look(policy("recommend")).await;
    assert_eq!(same["outcome"], "recommended", "{same}");
    let to = same["to_class"].as_str().unwrap();
    assert!(
        to.starts_with("compute.") && to != "compute-arm.xlarge",
        "{same}"
    );
    let named = policy("recommend").replace(
        "cooldown: 1h\n",
        "cooldown: 1h\n      classes: [compute.xlarge, compute-arm.xlarge]\n",
    );
    let any = look(named).await;
    assert_eq!(any["to_class"], "compute-arm.xlarge", "{any}");
}
