//! Graceful scale-in in the simulated cloud: instances chosen for removal drain for the group's
//! drain period (no longer capacity, still billed, still counted by the quota), then terminate.

use std::path::Path;
use std::time::Duration;

use chrono::TimeDelta;
use hoist_api::registry::GroupBounds;
use hoist_api::{
    BillingProvider, CostGranularity, CostQuery, ErrorKind, InstanceState, MetricKind, MetricQuery,
    MetricsSource, RangeQuery, RemoveInstances, ScalingProvider, TimeRange,
};
use hoist_sim::{DemandSpec, Quota, SimGroupSpec, SimulatedCloud, SimulatedCloudConfig};

const DRAIN: Duration = Duration::from_secs(300);
const PRICE: f64 = 0.096; // general.large on demand, USD per hour

fn web(desired: u32, drain: Duration) -> SimGroupSpec {
    SimGroupSpec {
        min: 1,
        max: 10,
        desired,
        demand: DemandSpec::Constant(100.0),
        work_per_instance: 100.0,
        drain,
        ..SimGroupSpec::new("web")
    }
}

fn cloud(desired: u32, drain: Duration) -> SimulatedCloud {
    SimulatedCloud::builder()
        .group(web(desired, drain))
        .build()
        .unwrap()
}

fn states(g: &hoist_api::ScalingGroup) -> (u32, u32, u32) {
    (
        g.count_in(InstanceState::Running),
        g.count_in(InstanceState::Pending),
        g.count_in(InstanceState::Terminating),
    )
}

async fn total_cost(c: &SimulatedCloud) -> f64 {
    let q = CostQuery {
        range: TimeRange {
            start: c.start_time(),
            end: c.now() + TimeDelta::days(1),
        },
        granularity: CostGranularity::Monthly,
        group_by: None,
    };
    c.cost(&q)
        .await
        .unwrap()
        .iter()
        .map(|e| e.amount.to_f64())
        .sum()
}

async fn last(c: &SimulatedCloud, metric: &str) -> f64 {
    let range = TimeRange {
        start: c.start_time(),
        end: c.now(),
    };
    let q = MetricQuery {
        group: "web".to_owned(),
        metric: MetricKind::Custom(metric.to_owned()),
        expression: None,
    };
    let series = c.query_range(&RangeQuery::new(q, range, 60)).await.unwrap();
    series[0].samples.last().expect("a sample").value
}

#[tokio::test]
async fn a_drained_instance_leaves_capacity_at_once_and_terminates_when_the_drain_ends() {
    let c = cloud(4, DRAIN);
    c.advance(Duration::from_secs(600));
    c.set_desired_capacity("web", 2).await.unwrap();
    let began = c.now();

    let g = c.describe_group("web").await.unwrap();
    assert_eq!(g.desired_capacity, 2);
    assert_eq!(g.instances.len(), 4, "draining instances are still listed");
    assert_eq!(states(&g), (2, 0, 2));
    // The newest instances are chosen, as without a drain.
    let draining: Vec<&str> = g
        .instances
        .iter()
        .filter(|i| i.state == InstanceState::Terminating)
        .map(|i| i.id.as_str())
        .collect();
    assert_eq!(draining, ["i-00000003", "i-00000004"]);
    let activity = &c.activities("web").await.unwrap()[0];
    assert_eq!(
        activity.description,
        "Draining 2 instance(s) (i-00000004, i-00000003) for 5m before terminating them: desired 4 -> 2"
    );
    assert!(!activity.done);

    // Two minutes (and the metric lag) later, only the two that stay serve.
    c.advance(Duration::from_secs(180));
    assert!((last(&c, "ready_instances").await - 2.0).abs() < 1e-9);
    assert!((last(&c, "ready_capacity").await - 200.0).abs() < 1e-9);

    c.advance(DRAIN - Duration::from_secs(181));
    assert_eq!(states(&c.describe_group("web").await.unwrap()), (2, 0, 2));
    c.advance(Duration::from_secs(1));
    let g = c.describe_group("web").await.unwrap();
    assert_eq!(g.instances.len(), 2);
    assert_eq!(states(&g), (2, 0, 0));
    assert!(c.activities("web").await.unwrap()[0].done);

    let history = c.instance_history("web").unwrap();
    for record in &history[2..] {
        assert_eq!(record.drain_started_at, Some(began), "{record:?}");
        assert_eq!(record.ended_at, Some(began + TimeDelta::minutes(5)));
    }
    for record in &history[..2] {
        assert_eq!((record.drain_started_at, record.ended_at), (None, None));
    }
}

#[tokio::test]
async fn a_draining_instance_is_billed_until_it_terminates() {
    let drained = cloud(4, DRAIN);
    let at_once = cloud(4, Duration::ZERO);
    for c in [&drained, &at_once] {
        c.advance(Duration::from_secs(600));
        c.set_desired_capacity("web", 2).await.unwrap();
        c.advance(Duration::from_secs(3_600));
    }
    let history = at_once.instance_history("web").unwrap();
    assert!(history.iter().all(|r| r.drain_started_at.is_none()));
    let extra = total_cost(&drained).await - total_cost(&at_once).await;
    let expected = 2.0 * 300.0 * PRICE / 3_600.0;
    assert!((extra - expected).abs() < 1e-9, "{extra} != {expected}");
}

#[tokio::test]
async fn draining_instances_do_not_count_toward_desired_capacity() {
    let c = cloud(4, DRAIN);
    c.set_desired_capacity("web", 2).await.unwrap();
    c.set_desired_capacity("web", 3).await.unwrap();
    let g = c.describe_group("web").await.unwrap();
    assert_eq!(states(&g), (2, 1, 2), "one launched, the drains go on");
    assert_eq!(
        c.activities("web").await.unwrap()[0].description.get(..11),
        Some("Launching 1")
    );
}

#[tokio::test]
async fn a_booting_instance_chosen_for_removal_is_terminated_at_once() {
    let c = cloud(2, DRAIN);
    c.set_desired_capacity("web", 4).await.unwrap();
    c.set_desired_capacity("web", 1).await.unwrap();
    let g = c.describe_group("web").await.unwrap();
    assert_eq!(states(&g), (1, 0, 1));
    let text = &c.activities("web").await.unwrap()[0].description;
    assert_eq!(
        text,
        "Terminating 2 booting instance(s) (i-00000004, i-00000003) and draining 1 (i-00000002) for 5m before terminating them: desired 4 -> 1"
    );
    let history = c.instance_history("web").unwrap();
    assert_eq!(history[3].ended_at, Some(c.now()));
    assert_eq!(history[3].drain_started_at, None);
}

#[tokio::test]
async fn removing_chosen_instances_drains_them_too() {
    let c = cloud(3, DRAIN);
    let request = RemoveInstances::new(vec!["i-00000001".to_owned()]).with_decrement(true);
    c.remove_instances("web", &request).await.unwrap();
    let g = c.describe_group("web").await.unwrap();
    assert_eq!((g.desired_capacity, states(&g)), (2, (2, 0, 1)));
    let terminating = g
        .instances
        .iter()
        .find(|i| i.state == InstanceState::Terminating)
        .unwrap();
    assert_eq!(terminating.id, "i-00000001");
    // A draining instance is no longer one that can be removed.
    let again = c.remove_instances("web", &request).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::NotFound, "{again}");
    c.advance(DRAIN);
    assert_eq!(c.describe_group("web").await.unwrap().instances.len(), 2);
}

#[tokio::test]
async fn draining_instances_count_toward_the_quota() {
    let c = SimulatedCloud::builder()
        .quota(Quota {
            max_instances: Some(4),
            max_vcpus: None,
        })
        .group(web(4, DRAIN))
        .build()
        .unwrap();
    c.set_desired_capacity("web", 2).await.unwrap();
    let e = c.set_desired_capacity("web", 4).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "{e}");
    c.advance(DRAIN);
    c.set_desired_capacity("web", 4).await.unwrap();
}

#[tokio::test]
async fn the_policy_groups_drain_reaches_the_simulated_cloud() {
    let groups = [GroupBounds::new("web", 1, 5).with_drain(Duration::from_secs(60))];
    let c = SimulatedCloud::from_policy_groups(
        &SimulatedCloudConfig::default(),
        Path::new("."),
        &groups,
    )
    .unwrap();
    c.set_desired_capacity("web", 3).await.unwrap();
    c.advance(Duration::from_secs(600));
    c.set_desired_capacity("web", 1).await.unwrap();
    let g = c.describe_group("web").await.unwrap();
    assert_eq!(g.count_in(InstanceState::Terminating), 2);
    c.advance(Duration::from_secs(60));
    assert_eq!(c.describe_group("web").await.unwrap().instances.len(), 1);
}
