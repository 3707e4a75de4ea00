//! Failure windows (outages and stockouts), several simulated providers in one world, and
//! demand shared across groups and providers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use hoist_api::registry::{BuildContext, BuiltProvider, GroupBounds, ProviderFactory};
use hoist_api::{
    BillingProvider, CapacityType, CostGranularity, CostQuery, ErrorKind, InstanceCatalog,
    InstanceState, MetricKind, MetricQuery, MetricsSource, Sample, ScalingProvider, TimeRange,
};
use hoist_sim::{
    DemandSpec, SimGroupSpec, SimOutage, SimWorld, SimulatedCloud, SimulatedCloudBuilder,
    SimulatedFactory,
};

const MIN: u64 = 60;
const HOUR: u64 = 3_600;

fn group(id: &str, desired: u32, demand: DemandSpec) -> SimGroupSpec {
    SimGroupSpec {
        min: 0,
        max: 20,
        desired,
        demand,
        work_per_instance: 100.0,
        ..SimGroupSpec::new(id)
    }
}

fn at(c: &SimulatedCloud, secs: u64) -> DateTime<Utc> {
    c.start_time() + TimeDelta::seconds(secs as i64)
}

fn query(group: &str, metric: MetricKind, start: DateTime<Utc>) -> hoist_api::RangeQuery {
    let q = MetricQuery {
        group: group.to_owned(),
        metric,
        expression: None,
    };
    let range = TimeRange {
        start,
        end: start + TimeDelta::days(30),
    };
    hoist_api::RangeQuery::new(q, range, 60)
}

async fn series(c: &SimulatedCloud, group: &str, metric: MetricKind) -> Vec<Sample> {
    let mut out = c
        .query_range(&query(group, metric, c.start_time()))
        .await
        .unwrap();
    out.remove(0).samples
}

/// The samples stamped in `(from, to]` seconds after the start.
fn within(samples: &[Sample], c: &SimulatedCloud, from: u64, to: u64) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.at > at(c, from) && s.at <= at(c, to))
        .map(|s| s.value)
        .collect()
}

fn ready_capacity() -> MetricKind {
    MetricKind::Custom("ready_capacity".to_owned())
}

#[tokio::test]
async fn an_outage_fails_every_call_for_the_group_and_its_instances_stop_serving_until_it_ends() {
    let c = SimulatedCloud::builder()
        .group(group("web", 2, DemandSpec::Constant(150.0)))
        .outage(SimOutage::outage(
            Duration::from_secs(HOUR),
            Duration::from_secs(30 * MIN),
        ))
        .build()
        .unwrap();
    c.advance(Duration::from_secs(HOUR - MIN));
    c.describe_group("web").await.unwrap();

    c.advance(Duration::from_secs(2 * MIN));
    let e = c.describe_group("web").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.is_retryable());
    assert_eq!(e.provider(), "sim");
    assert!(
        e.message()
            .contains("simulated outage of provider sim until 2024-01-01T01:30:00Z (HTTP 503)"),
        "{e}"
    );
    for e in [
        c.set_desired_capacity("web", 3).await.unwrap_err(),
        c.activities("web").await.map(|_| ()).unwrap_err(),
        c.list_groups().await.map(|_| ()).unwrap_err(),
        c.query_range(&query("web", MetricKind::Utilization, c.start_time()))
            .await
            .map(|_| ())
            .unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    }
    // The catalog and billing keep working (prices are static, the bill is the bill).
    assert!(!c.instance_classes().await.unwrap().is_empty());
    c.price("general.large", "sim-1a", CapacityType::OnDemand)
        .await
        .unwrap();

    // After the window: the same instances, which served nothing during it and were billed.
    c.advance(Duration::from_secs(HOUR));
    let g = c.describe_group("web").await.unwrap();
    assert_eq!(
        (g.desired_capacity, g.count_in(InstanceState::Running)),
        (2, 2)
    );
    let capacity = series(&c, "web", ready_capacity()).await;
    let before = within(&capacity, &c, 0, HOUR);
    let during = within(&capacity, &c, HOUR, HOUR + 30 * MIN);
    let after = within(&capacity, &c, HOUR + 30 * MIN, 2 * HOUR);
    assert!(
        before.iter().all(|v| (*v - 200.0).abs() < 1e-9),
        "{before:?}"
    );
    assert_eq!(during.len(), 30);
    assert!(during.iter().all(|v| *v == 0.0), "{during:?}");
    assert!(after.iter().all(|v| (*v - 200.0).abs() < 1e-9), "{after:?}");
    let errors = series(&c, "web", MetricKind::ErrorRate).await;
    assert!(
        within(&errors, &c, HOUR, HOUR + 30 * MIN)
            .iter()
            .all(|v| (*v - 1.0).abs() < 1e-9)
    );
    // The demand of the window waited: 30 min of 150 work/s, then drained at 50 work/s.
    let queue = series(&c, "web", MetricKind::QueueDepth).await;
    let peak = within(&queue, &c, HOUR, HOUR + 31 * MIN)
        .into_iter()
        .fold(0.0, f64::max);
    assert!(peak > 150.0 * 29.0 * 60.0, "{peak}");
    let bill = c
        .cost(&CostQuery {
            range: TimeRange {
                start: at(&c, HOUR),
                end: at(&c, HOUR + 30 * MIN),
            },
            granularity: CostGranularity::Hourly,
            group_by: None,
        })
        .await
        .unwrap();
    let total: f64 = bill.iter().map(|e| e.amount.to_f64()).sum();
    assert!(total > 0.0, "{bill:?}");
}

#[tokio::test]
async fn an_outage_limited_to_some_groups_leaves_the_others_answering() {
    let c = SimulatedCloud::builder()
        .group(group("api", 1, DemandSpec::Constant(50.0)))
        .group(group("web", 1, DemandSpec::Constant(50.0)))
        .outage(SimOutage::outage(Duration::ZERO, Duration::from_secs(HOUR)).for_groups(["web"]))
        .build()
        .unwrap();
    c.advance(Duration::from_secs(MIN));
    assert_eq!(
        c.describe_group("web").await.unwrap_err().kind(),
        ErrorKind::Transient
    );
    c.describe_group("api").await.unwrap();
    assert_eq!(c.list_groups().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_stockout_refuses_growth_but_allows_shrinking() {
    let c = SimulatedCloud::builder()
        .group(group("web", 3, DemandSpec::Constant(100.0)))
        .outage(SimOutage::stockout(
            Duration::from_secs(10 * MIN),
            Duration::from_secs(HOUR),
        ))
        .build()
        .unwrap()
        .named("cloud-a");
    c.advance(Duration::from_secs(20 * MIN));
    let e = c.set_desired_capacity("web", 5).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CapacityUnavailable, "{e}");
    assert!(
        e.message().contains(
            "InsufficientInstanceCapacity: simulated stockout of general.large in cloud-a until 2024-01-01T01:10:00Z"
        ),
        "{e}"
    );
    let g = c.describe_group("web").await.unwrap();
    assert_eq!((g.desired_capacity, g.instances.len()), (3, 3));
    c.set_desired_capacity("web", 2).await.unwrap();
    assert_eq!(c.describe_group("web").await.unwrap().instances.len(), 2);
    // Back to 3 is growth too.
    assert_eq!(
        c.set_desired_capacity("web", 3).await.unwrap_err().kind(),
        ErrorKind::CapacityUnavailable
    );
    // Bounds are still checked first.
    assert_eq!(
        c.set_desired_capacity("web", 50).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    c.advance(Duration::from_secs(HOUR));
    c.set_desired_capacity("web", 5).await.unwrap();
    assert_eq!(c.describe_group("web").await.unwrap().pending(), 3);
}

#[tokio::test]
async fn no_spot_replacement_during_a_stockout_and_the_group_refills_when_it_ends() {
    let c = SimulatedCloud::builder()
        .seed(3)
        .spot_interruptions_per_hour(2.0)
        .group(SimGroupSpec {
            capacity_type: CapacityType::Spot,
            ..group("web", 4, DemandSpec::Constant(100.0))
        })
        .outage(SimOutage::stockout(
            Duration::ZERO,
            Duration::from_secs(2 * HOUR),
        ))
        .build()
        .unwrap();
    c.advance(Duration::from_secs(2 * HOUR - 1));
    let g = c.describe_group("web").await.unwrap();
    assert!(g.instances.len() < 4, "{g:?}");
    let activities = c.activities("web").await.unwrap();
    assert!(
        activities.iter().any(|a| a
            .description
            .contains("no replacement: simulated stockout until")),
        "{activities:?}"
    );
    c.advance(Duration::from_secs(1));
    let refill = c.activities("web").await.unwrap();
    let refill = refill
        .iter()
        .find(|a| {
            a.description
                .contains("after the simulated failure window ended")
        })
        .expect("a refill when the stockout ends");
    assert_eq!(refill.started_at, at(&c, 2 * HOUR));
    assert_eq!(c.describe_group("web").await.unwrap().instances.len(), 4);
}

fn shared_pair(
    world: &Arc<SimWorld>,
    b_outage: Option<SimOutage>,
) -> (SimulatedCloud, SimulatedCloud) {
    let a = SimulatedCloud::builder()
        .world(world, "a")
        .seed(1)
        .shared_demand("web", DemandSpec::Constant(400.0), 100.0)
        .group(group("web-a", 3, DemandSpec::Shared("web".to_owned())))
        .build()
        .unwrap();
    let mut b = SimulatedCloud::builder()
        .world(world, "b")
        .seed(2)
        .boot_delay(Duration::from_secs(30))
        .group(group("web-b", 1, DemandSpec::Shared("web".to_owned())));
    if let Some(o) = b_outage {
        b = b.outage(o);
    }
    (a, b.build().unwrap())
}

#[tokio::test]
async fn a_shared_demand_splits_by_serving_capacity_and_moves_away_from_an_outage() {
    let world = SimWorld::new("demo");
    let (a, b) = shared_pair(
        &world,
        Some(SimOutage::outage(
            Duration::from_secs(20 * MIN),
            Duration::from_secs(30 * MIN),
        )),
    );
    assert_eq!(world.members(), vec!["a", "b"]);
    assert_eq!(world.shared_demands(), vec!["web"]);
    assert_eq!(a.current_demand("web-a").unwrap(), Some(300.0));
    assert_eq!(b.current_demand("web-b").unwrap(), Some(100.0));

    world.advance_to(at(&a, HOUR));
    let rate = MetricKind::RequestRate;
    let (ra, rb) = (
        series(&a, "web-a", rate.clone()).await,
        series(&b, "web-b", rate).await,
    );
    let close = |xs: &[f64], v: f64| xs.iter().all(|x| (x - v).abs() < 1e-6 * v.max(1.0));
    // 3 ready instances against 1: 75 % and 25 %.
    let (a0, b0) = (within(&ra, &a, 0, 20 * MIN), within(&rb, &b, 0, 20 * MIN));
    assert_eq!((a0.len(), b0.len()), (20, 20));
    assert!(close(&a0, 300.0), "{a0:?}");
    assert!(close(&b0, 100.0), "{b0:?}");
    // b in an outage: all of it to a.
    let (a1, b1) = (
        within(&ra, &a, 20 * MIN, 50 * MIN),
        within(&rb, &b, 20 * MIN, 50 * MIN),
    );
    assert!(close(&a1, 400.0), "{a1:?}");
    assert!(close(&b1, 0.0), "{b1:?}");
    // Back after the outage.
    let (a2, b2) = (
        within(&ra, &a, 50 * MIN, 59 * MIN),
        within(&rb, &b, 50 * MIN, 59 * MIN),
    );
    assert!(close(&a2, 300.0), "{a2:?}");
    assert!(close(&b2, 100.0), "{b2:?}");

    // Two more instances in b: 3 against 3 once they are ready (a tick after the boot at most).
    b.set_desired_capacity("web-b", 3).await.unwrap();
    world.advance_to(at(&a, HOUR + 10 * MIN));
    assert_eq!(a.current_demand("web-a").unwrap(), Some(200.0));
    assert_eq!(b.current_demand("web-b").unwrap(), Some(200.0));
}

/// Runs two providers sharing a generated demand for 6 h, advanced in slices of `slice`
/// seconds (reading the shares between slices), and returns their samples (values as bits).
async fn shared_run(slice: u64) -> Vec<(DateTime<Utc>, u64)> {
    let world = SimWorld::new("demo");
    let a = SimulatedCloud::builder()
        .world(&world, "a")
        .seed(9)
        .spot_interruptions_per_hour(0.5)
        .shared_demand(
            "web",
            DemandSpec::Generator(hoist_sim::GeneratorSpec::web(500.0)),
            100.0,
        )
        .group(SimGroupSpec {
            capacity_type: CapacityType::Spot,
            ..group("web-a", 2, DemandSpec::Shared("web".to_owned()))
        })
        .build()
        .unwrap();
    let b = SimulatedCloud::builder()
        .world(&world, "b")
        .tick(Duration::from_secs(5))
        .outage(SimOutage::outage(
            Duration::from_secs(HOUR + 3),
            Duration::from_secs(HOUR + 7),
        ))
        .group(group("web-b", 3, DemandSpec::Shared("web".to_owned())))
        .build()
        .unwrap();
    let end = at(&a, 6 * HOUR);
    while a.now() < end {
        let next = (a.now() + TimeDelta::seconds(slice as i64)).min(end);
        world.advance_to(next);
        a.current_demand("web-a").unwrap();
        b.current_demand("web-b").unwrap();
    }
    let mut out = series(&a, "web-a", MetricKind::RequestRate).await;
    out.extend(series(&a, "web-a", MetricKind::QueueDepth).await);
    out.extend(series(&b, "web-b", MetricKind::Utilization).await);
    out.into_iter().map(|s| (s.at, s.value.to_bits())).collect()
}

#[tokio::test]
async fn a_shared_world_is_deterministic_and_does_not_depend_on_how_time_is_sliced() {
    let whole = shared_run(6 * HOUR).await;
    assert!(whole.len() > 1_000);
    let same = |other: Vec<(DateTime<Utc>, u64)>, what: &str, tolerance: f64| {
        assert_eq!(whole.len(), other.len(), "{what}");
        let value = |bits: u64| f64::from_bits(bits);
        let differs = |i: usize| {
            let (x, y) = (value(whole[i].1), value(other[i].1));
            whole[i].0 != other[i].0 || (x - y).abs() > tolerance * x.abs().max(1.0)
        };
        if let Some(i) = (0..whole.len()).find(|&i| differs(i)) {
            panic!(
                "{what}: sample {i} differs: {} at {} against {}",
                value(whole[i].1),
                whole[i].0,
                value(other[i].1)
            );
        }
    };
    same(shared_run(6 * HOUR).await, "the same run again", 0.0);
    // Sub-steps sum in another order: equal up to rounding.
    same(shared_run(7).await, "in slices of 7 s", 1e-9);
}

#[tokio::test]
async fn a_group_naming_an_undefined_shared_demand_gets_a_gap() {
    let world = SimWorld::new("demo");
    let c = SimulatedCloud::builder()
        .world(&world, "a")
        .group(group("web", 2, DemandSpec::Shared("nowhere".to_owned())))
        .build()
        .unwrap();
    c.advance(Duration::from_secs(HOUR));
    assert_eq!(c.current_demand("web").unwrap(), None);
    assert!(series(&c, "web", MetricKind::Utilization).await.is_empty());
}

fn ctx<'a>(
    name: &'a str,
    settings: &'a serde_json::Value,
    groups: &'a [GroupBounds],
) -> BuildContext<'a> {
    BuildContext {
        name,
        settings,
        base_dir: Path::new("."),
        groups,
    }
}

#[tokio::test]
async fn providers_of_one_world_share_one_clock_that_moves_them_together() {
    let factory = SimulatedFactory::new();
    let cheap_settings = serde_json::json!({
        "world": "demo",
        "boot_delay": "3m",
        "shared_demands": {"web": {"constant": 400}},
        "groups": {"web-cheap": {"desired": 1, "demand": {"shared": "web"}}}
    });
    let steady_settings = serde_json::json!({
        "world": "demo",
        "boot_delay": "1m",
        "tick": "5s",
        "groups": {"web-steady": {"desired": 1, "demand": {"shared": "web"}}}
    });
    let cheap_groups = [GroupBounds::new("web-cheap", 1, 10)];
    let steady_groups = [GroupBounds::new("web-steady", 1, 10)];
    let cheap: BuiltProvider = factory
        .build(ctx("cheap", &cheap_settings, &cheap_groups))
        .await
        .unwrap();
    let steady = factory
        .build(ctx("steady", &steady_settings, &steady_groups))
        .await
        .unwrap();
    let (c1, c2) = (cheap.clock.clone().unwrap(), steady.clock.clone().unwrap());
    assert!(Arc::ptr_eq(&c1, &c2), "one clock for the world");
    let (cs, ss) = (
        cheap.set.scaling.clone().unwrap(),
        steady.set.scaling.clone().unwrap(),
    );
    cs.set_desired_capacity("web-cheap", 3).await.unwrap();
    ss.set_desired_capacity("web-steady", 3).await.unwrap();
    let start = c1.now();
    c1.sleep_until(start + TimeDelta::minutes(2)).await;
    assert_eq!(c2.now(), start + TimeDelta::minutes(2));
    // steady boots in 1 min, cheap in 3.
    assert_eq!(ss.describe_group("web-steady").await.unwrap().ready(), 3);
    assert_eq!(cs.describe_group("web-cheap").await.unwrap().ready(), 1);
    c2.sleep_until(start + TimeDelta::minutes(3)).await;
    assert_eq!(cs.describe_group("web-cheap").await.unwrap().ready(), 3);
    // Both answer metrics up to the shared time, and the demand was shared: steady had 3 of 4
    // ready instances in minute 1..2, so 300 of 400.
    let steady_metrics = steady.set.metrics.clone().unwrap();
    let rate = steady_metrics
        .query_range(&query("web-steady", MetricKind::RequestRate, start))
        .await
        .unwrap();
    let last = rate[0].samples.last().unwrap();
    assert_eq!(last.at, start + TimeDelta::minutes(2));
    assert!((last.value - 300.0).abs() < 1e-6, "{last:?}");

    // A policy reload rebuilds cheap: it replaces the member, on the same clock, at the
    // world's time.
    let rebuilt = factory
        .build(ctx("cheap", &cheap_settings, &cheap_groups))
        .await
        .unwrap();
    assert!(Arc::ptr_eq(rebuilt.clock.as_ref().unwrap(), &c1));
    let g = rebuilt
        .set
        .scaling
        .clone()
        .unwrap()
        .describe_group("web-cheap")
        .await
        .unwrap();
    assert_eq!(g.desired_capacity, 1);
    assert_eq!(g.instances[0].launched_at, start + TimeDelta::minutes(3));
}

#[tokio::test]
async fn providers_of_a_world_must_start_together() {
    let world = SimWorld::new("demo");
    let start = Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap();
    let first = SimulatedCloudBuilder::default()
        .world(&world, "cheap")
        .start(start)
        .build()
        .unwrap();
    let e = SimulatedCloud::builder()
        .world(&world, "steady")
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert_eq!(e.field(), Some("start"));
    let msg = e.message();
    assert!(msg.contains("steady") && msg.contains("cheap"), "{msg}");
    assert!(msg.contains("2026-01-05T00:00:00Z") && msg.contains("2024-01-01T00:00:00Z"));
    assert_eq!(
        world.members(),
        vec!["cheap"],
        "a refused provider does not join"
    );
    drop(first);
    // Once cheap is gone, the world is empty and starts afresh with the next one.
    SimulatedCloud::builder()
        .world(&world, "steady")
        .build()
        .unwrap();
    assert_eq!(world.start(), Some(hoist_sim::default_start()));

    // Through the factory, with a start each provider defaults to.
    let factory = SimulatedFactory::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.csv"),
        "timestamp,value\n2024-05-01T00:00:00Z,1\n2024-05-01T00:01:00Z,2\n",
    )
    .unwrap();
    let traced = serde_json::json!({
        "world": "demo",
        "groups": {"a": {"demand": {"trace": "t.csv", "scale": 10}}}
    });
    let plain = serde_json::json!({"world": "demo"});
    let groups = [GroupBounds::new("a", 1, 5)];
    let ctx_in = |name, settings| BuildContext {
        name,
        settings,
        base_dir: dir.path(),
        groups: &groups,
    };
    let _a = factory.build(ctx_in("cheap", &traced)).await.unwrap();
    let e = factory.build(ctx_in("steady", &plain)).await.unwrap_err();
    assert_eq!(e.field(), Some("start"), "{e}");
    // Validation registers nothing: steady alone is valid.
    factory.validate(ctx_in("steady", &plain)).unwrap();
}

#[tokio::test]
async fn settings_errors_name_the_field() {
    let factory = SimulatedFactory::new();
    let groups = [GroupBounds::new("web", 1, 5)];
    let cases = [
        (
            serde_json::json!({"outages": [{"after": "1h", "for": "0s"}]}),
            "outages[0].for",
            "longer than zero",
        ),
        (
            serde_json::json!({"outages": [{"after": "1h", "for": "1h"}, {"after": "1h", "for": "1h", "groups": ["api"]}]}),
            "outages[1].groups",
            "no group \"api\"",
        ),
        (
            serde_json::json!({"outages": [{"after": "1h", "for": "1h", "kind": "meltdown"}]}),
            "outages[0].kind",
            "meltdown",
        ),
        (
            serde_json::json!({"groups": {"web": {"demand": {"shared": "web", "base": 5}}}}),
            "groups.web.demand.base",
            "no other demand setting",
        ),
        (
            serde_json::json!({"groups": {"web": {"demand": {"constant": 5, "work_per_instance": 50}}}}),
            "groups.web.demand.work_per_instance",
            "only applies in `shared_demands`",
        ),
        (
            serde_json::json!({"shared_demands": {"web": {"shared": "other"}}}),
            "shared_demands.web.shared",
            "cannot itself be a share",
        ),
        (
            serde_json::json!({"shared_demands": {"web": {"constant": 5, "noise": 0.1}}}),
            "shared_demands.web.noise",
            "generator setting",
        ),
        (
            serde_json::json!({"shared_demands": {"web": {"constant": 5, "work_per_instance": 0}}}),
            "shared_demands.web.work_per_instance",
            "must be > 0",
        ),
        (serde_json::json!({"world": " "}), "world", "needs a name"),
    ];
    for (settings, field, what) in cases {
        let e = factory
            .validate(ctx("sim", &settings, &groups))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert_eq!(e.field(), Some(field), "{e}");
        assert!(e.message().contains(what), "{e} should say {what}");
    }

    // A shared demand defined by two providers of one world.
    let a = serde_json::json!({"world": "w", "shared_demands": {"web": {"constant": 1}}});
    let _a = factory.build(ctx("a", &a, &groups)).await.unwrap();
    let e = factory.build(ctx("b", &a, &groups)).await.unwrap_err();
    assert_eq!(e.field(), Some("shared_demands.web"), "{e}");
    assert!(
        e.message()
            .contains("already defined by simulated provider a"),
        "{e}"
    );
    // The provider that defines it may be rebuilt.
    factory.build(ctx("a", &a, &groups)).await.unwrap();
}

#[tokio::test]
async fn providers_of_a_world_on_the_wall_clock_start_together_and_cannot_mix_clocks() {
    let factory = SimulatedFactory::new();
    let wall = serde_json::json!({"world": "live", "clock": "wall"});
    let groups = [GroupBounds::new("web", 1, 5)];
    let a = factory.build(ctx("a", &wall, &groups)).await.unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let b = factory.build(ctx("b", &wall, &groups)).await.unwrap();
    assert!(
        a.clock.is_none() && b.clock.is_none(),
        "they follow the wall clock"
    );
    let launched = |p: BuiltProvider| async move {
        let g = p.set.scaling.unwrap().describe_group("web").await.unwrap();
        g.instances[0].launched_at
    };
    // b joined the world a started: its first instance started with a's, not 20 ms later.
    assert_eq!(launched(a.clone()).await, launched(b.clone()).await);
    let virtual_time = serde_json::json!({"world": "live"});
    let e = factory
        .build(ctx("c", &virtual_time, &groups))
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("clock"), "{e}");
}

/// The example of `docs/simulated-cloud.md` ("Several providers in one world"), as JSON.
#[tokio::test]
async fn the_documented_example_builds_and_fails_over() {
    let cheap = serde_json::json!({
        "world": "demo",
        "seed": 1,
        "boot_delay": "4m",
        "catalog": [{"name": "std.large", "vcpus": 2, "memory_mib": 8192,
                     "price_per_hour": 0.06, "spot_price_per_hour": 0.02}],
        "shared_demands": {
            "web": {"base": 1200, "daily_amplitude": 0.5, "noise": 0.05, "work_per_instance": 100}
        },
        "outages": [{"after": "6h", "for": "2h", "kind": "outage"}],
        "groups": {"web-cheap": {"instance_class": "std.large", "spot": true,
                                 "work_per_instance": 100, "demand": {"shared": "web"}}}
    });
    let steady = serde_json::json!({
        "world": "demo",
        "seed": 2,
        "boot_delay": "90s",
        "groups": {"web-steady": {"work_per_instance": 100, "demand": {"shared": "web"}}}
    });
    let factory = SimulatedFactory::new();
    let (gc, gs) = (
        [GroupBounds::new("web-cheap", 2, 30)],
        [GroupBounds::new("web-steady", 2, 30)],
    );
    let cheap = factory.build(ctx("cheap", &cheap, &gc)).await.unwrap();
    let steady = factory.build(ctx("steady", &steady, &gs)).await.unwrap();
    let clock = cheap.clock.clone().unwrap();
    assert!(Arc::ptr_eq(&clock, steady.clock.as_ref().unwrap()));
    let start = clock.now();
    clock.sleep_until(start + TimeDelta::hours(7)).await;
    let e = cheap
        .set
        .scaling
        .clone()
        .unwrap()
        .describe_group("web-cheap")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(
        e.message()
            .contains("provider cheap until 2024-01-01T08:00:00Z"),
        "{e}"
    );
    // Meanwhile steady carries all of `web`; before, half of it (2 instances each).
    let rate = steady
        .set
        .metrics
        .clone()
        .unwrap()
        .query_range(&query("web-steady", MetricKind::RequestRate, start))
        .await
        .unwrap();
    let samples = &rate[0].samples;
    let at = |minutes: i64| {
        samples
            .iter()
            .find(|s| s.at == start + TimeDelta::minutes(minutes))
            .map(|s| s.value)
            .unwrap()
    };
    // A minute apart, so the daily cycle moves little: just before the outage, just after.
    let (before, during) = (at(6 * 60), at(6 * 60 + 2));
    assert!(before > 300.0 && before < 1_000.0, "{before}");
    assert!(
        (during / before - 2.0).abs() < 0.2,
        "{during} against {before}"
    );
}
