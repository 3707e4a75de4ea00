//! Pools: the split over members on two providers, failover when a provider fails, a bounded
//! return after it recovers, and a stockout moving the need elsewhere.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoist_api::layers::{FaultLayer, Operations};
use hoist_api::{Clock, ErrorKind, Operation, ScalingProvider};
use hoist_engine::config::pool::{PoolConfig, PoolMemberConfig};
use hoist_engine::events::{Event, EventSink};
use hoist_engine::pool::{MemberState, Pool, PoolSplitRecord};
use hoist_sim::{SimGroupSpec, SimulatedCloud};

#[derive(Debug, Default)]
struct Splits(Mutex<Vec<PoolSplitRecord>>);

impl EventSink for Splits {
    fn emit(&self, event: &Event) {
        if let Event::PoolSplit(record) = event {
            self.0.lock().unwrap().push(record.clone());
        }
    }
}

fn cloud(groups: Vec<SimGroupSpec>) -> SimulatedCloud {
    let mut b = SimulatedCloud::builder().seed(3).boot_delay(Duration::ZERO);
    for g in groups {
        b = b.group(g);
    }
    b.build().unwrap()
}

fn group(id: &str, class: &str, spot: bool) -> SimGroupSpec {
    let mut g = SimGroupSpec::new(id);
    g.min = 0;
    g.max = 20;
    g.desired = 0;
    g.instance_class = class.to_owned();
    if spot {
        g.capacity_type = hoist_api::model::CapacityType::Spot;
    }
    g
}

fn member(provider: &str, group: &str, max: u32) -> PoolMemberConfig {
    serde_json::from_value(serde_json::json!({"provider": provider, "group": group, "max": max}))
        .unwrap()
}

struct Rig {
    pool: Pool,
    a: SimulatedCloud,
    b: SimulatedCloud,
    faults_a: FaultLayer,
    faults_b: FaultLayer,
    splits: Arc<Splits>,
}

/// `cheap/web` (spot, cheapest), `steady/web` (on demand) and `steady/big` (a larger class,
/// dearest), every member at most 10.
fn rig() -> Rig {
    let a = cloud(vec![group("web", "general.large", true)]);
    let b = cloud(vec![
        group("web", "general.large", false),
        group("big", "general.xlarge", false),
    ]);
    let faults_a = FaultLayer::new(1);
    let faults_b = FaultLayer::new(2);
    let providers = BTreeMap::from([
        (
            "cheap".to_owned(),
            a.provider_set("cheap").with_layer(&faults_a),
        ),
        (
            "steady".to_owned(),
            b.provider_set("steady").with_layer(&faults_b),
        ),
    ]);
    let config = PoolConfig {
        name: "web".into(),
        min: 0,
        max: 30,
        members: vec![
            member("cheap", "web", 10),
            member("steady", "web", 10),
            member("steady", "big", 10),
        ],
        ..serde_json::from_value(serde_json::json!({
            "name": "web", "min": 0, "max": 30, "members": [],
            "policies": [], "failover": {"recovery": "5m", "return_step": 2}
        }))
        .unwrap()
    };
    let clock: Arc<dyn Clock> = a.clock();
    let pool = Pool::new(config, &providers, clock).unwrap();
    let splits = Arc::new(Splits::default());
    pool.set_events(splits.clone());
    Rig {
        pool,
        a,
        b,
        faults_a,
        faults_b,
        splits,
    }
}

/// Both worlds move on together (the pool reads the first one's clock).
fn advance(rig: &Rig, seconds: u64) {
    rig.a.advance(Duration::from_secs(seconds));
    rig.b.advance(Duration::from_secs(seconds));
}

fn desired(rig: &Rig) -> Vec<u32> {
    rig.pool.members().iter().map(|m| m.2).collect()
}

fn states(rig: &Rig) -> Vec<MemberState> {
    rig.pool.members().iter().map(|m| m.1).collect()
}

async fn look(rig: &Rig) -> hoist_api::Result<hoist_api::model::ScalingGroup> {
    rig.pool.describe_group("web").await
}

#[tokio::test]
async fn the_split_fills_the_cheapest_member_first_and_the_pool_adds_up() {
    let rig = rig();
    look(&rig).await.unwrap();
    rig.pool.set_desired_capacity("web", 14).await.unwrap();
    assert_eq!(
        desired(&rig),
        vec![10, 4, 0],
        "spot first, then the cheaper class"
    );
    let group = look(&rig).await.unwrap();
    assert_eq!(group.desired_capacity, 14);
    assert_eq!(group.instances.len(), 14);
    // The same id on two providers stays two groups.
    assert_eq!(
        rig.a
            .provider_set("x")
            .scaling
            .unwrap()
            .describe_group("web")
            .await
            .unwrap()
            .desired_capacity,
        10
    );
    assert_eq!(
        rig.b
            .provider_set("x")
            .scaling
            .unwrap()
            .describe_group("web")
            .await
            .unwrap()
            .desired_capacity,
        4
    );
    let record = rig.splits.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(record.total, 14);
    assert_eq!(record.members[0].to, 10);
    // Out of bounds is refused, not clamped.
    let e = rig.pool.set_desired_capacity("web", 31).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn a_failing_provider_loses_its_share_at_once_and_gets_it_back_gradually() {
    let rig = rig();
    look(&rig).await.unwrap();
    rig.pool.place(12).await.unwrap();
    assert_eq!(desired(&rig), vec![10, 2, 0]);

    // The cheap provider fails: after two failed calls it is down and its need moves.
    rig.faults_a
        .fail_next(Operations::All, 2, ErrorKind::Transient);
    look(&rig).await.unwrap();
    assert_eq!(
        states(&rig)[0],
        MemberState::Healthy,
        "one failure is not enough"
    );
    let group = look(&rig).await.unwrap();
    assert_eq!(states(&rig)[0], MemberState::Down);
    assert_eq!(
        group.desired_capacity, 2,
        "a down member's capacity does not count"
    );
    rig.pool.place(12).await.unwrap();
    assert_eq!(
        &desired(&rig)[1..],
        &[10, 2],
        "the whole need on the others"
    );
    let record = rig.splits.0.lock().unwrap().last().cloned().unwrap();
    assert!(
        record.reason.contains("cheap/web is down"),
        "{}",
        record.reason
    );
    assert_eq!(record.members[0].state, MemberState::Down);

    // It answers again: nothing moves back before `recovery` (5m) has passed.
    look(&rig).await.unwrap();
    rig.pool.rebalance().await.unwrap();
    assert_eq!(states(&rig)[0], MemberState::Down, "still in recovery");
    assert_eq!(&desired(&rig)[1..], &[10, 2]);
    advance(&rig, 301);
    look(&rig).await.unwrap();
    assert_eq!(states(&rig)[0], MemberState::Returning);
    // Back at most `return_step` (2) per evaluation, the total unchanged.
    let mut seen = Vec::new();
    for _ in 0..8 {
        look(&rig).await.unwrap();
        rig.pool.rebalance().await.unwrap();
        let now = desired(&rig);
        assert_eq!(now.iter().sum::<u32>(), 12, "{now:?}");
        seen.push(now[0]);
    }
    assert_eq!(seen, vec![2, 4, 6, 8, 10, 10, 10, 10]);
    assert_eq!(
        desired(&rig),
        vec![10, 2, 0],
        "the split is back where it was"
    );
    assert_eq!(states(&rig)[0], MemberState::Healthy);
}

#[tokio::test]
async fn a_stockout_limits_the_member_and_the_need_moves_on() {
    let rig = rig();
    look(&rig).await.unwrap();
    rig.pool.place(4).await.unwrap();
    assert_eq!(desired(&rig), vec![4, 0, 0]);
    // The cheap provider has no more capacity of its class.
    rig.faults_a.fail_next(
        Operations::Only(vec![Operation::SetDesiredCapacity]),
        1,
        ErrorKind::CapacityUnavailable,
    );
    rig.pool.place(9).await.unwrap();
    assert_eq!(states(&rig)[0], MemberState::Limited);
    assert_eq!(
        desired(&rig),
        vec![4, 5, 0],
        "what the cheap one could not take went on"
    );
    // Limited: it is not asked for more until its backoff (15m) ends.
    look(&rig).await.unwrap();
    rig.pool.place(12).await.unwrap();
    assert_eq!(desired(&rig), vec![4, 8, 0]);
    advance(&rig, 901);
    look(&rig).await.unwrap();
    assert_eq!(states(&rig)[0], MemberState::Returning);
    rig.pool.rebalance().await.unwrap();
    assert_eq!(desired(&rig), vec![6, 6, 0]);
    // No member can grow: the error says what was placed.
    for faults in [&rig.faults_a, &rig.faults_b] {
        faults.fail_next(
            Operations::Only(vec![Operation::SetDesiredCapacity]),
            10,
            ErrorKind::CapacityUnavailable,
        );
    }
    let e = rig.pool.place(20).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CapacityUnavailable);
    assert!(e.message().contains("placed 12 of 20"), "{e}");
}
