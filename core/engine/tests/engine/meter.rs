//! The cost meter against the simulated cloud's own bill: observing the groups as the control
//! loop does (every 10 s of virtual time) while they scale out and in, under both billing
//! rules, the meter comes within a small drift of what the cloud billed, and reports the drift.

use std::time::Duration;

use chrono::TimeDelta;
use hoist_api::billing_rule::BillingRule;
use hoist_api::{
    BillingProvider, CapacityType, CostGranularity, CostQuery, Decimal, InstanceCatalog,
    ScalingProvider, TimeRange,
};
use hoist_engine::meter::{CostMeter, Drift};
use hoist_sim::{Billing, DemandSpec, SimGroupSpec, SimulatedCloud};

async fn metered_against_billed(billing: Billing, rule: BillingRule) -> Drift {
    let cloud = SimulatedCloud::builder()
        .billing(billing)
        .group(SimGroupSpec {
            min: 0,
            max: 20,
            desired: 2,
            demand: DemandSpec::Constant(10.0),
            ..SimGroupSpec::new("web")
        })
        .build()
        .unwrap();
    let classes = cloud.instance_classes().await.unwrap();
    let price = |class: &str| {
        classes
            .iter()
            .find(|c| c.name == class)
            .and_then(|c| c.cheapest(CapacityType::OnDemand))
            .map(|o| o.price.per_hour_exact())
    };
    let mut meter = CostMeter::new(rule);
    // Six hours: scale out, in, out again, with lives of a few seconds to hours.
    let plan = [
        (0, 2),
        (600, 6),
        (615, 3),
        (3_000, 8),
        (9_000, 1),
        (9_030, 5),
        (18_000, 0),
    ];
    let mut step = 0;
    for tick in 0..(6 * 360) {
        let t = tick * 10;
        while step < plan.len() && plan[step].0 <= t {
            cloud
                .set_desired_capacity("web", plan[step].1)
                .await
                .unwrap();
            step += 1;
        }
        let group = cloud.describe_group("web").await.unwrap();
        meter.observe(cloud.now(), &group, |i| price(&i.instance_class));
        cloud.advance(Duration::from_secs(10));
    }
    let group = cloud.describe_group("web").await.unwrap();
    meter.observe(cloud.now(), &group, |i| price(&i.instance_class));
    let range = TimeRange {
        start: cloud.start_time(),
        end: cloud.now() + TimeDelta::hours(2),
    };
    let billed: Decimal = cloud
        .cost(&CostQuery {
            range,
            granularity: CostGranularity::Monthly,
            group_by: None,
        })
        .await
        .unwrap()
        .iter()
        .map(|e| e.amount.amount)
        .sum();
    // The meter first observed the group at the cloud's start, the bill's range start.
    let reading = meter.since_first_observed("web", cloud.now()).unwrap();
    assert_eq!(
        meter.open_lives(),
        0,
        "every instance ended and was settled"
    );
    assert_eq!(reading.unpriced, 0);
    Drift {
        metered: reading.total(),
        billed,
    }
}

#[tokio::test]
async fn per_second_the_meter_matches_the_bill_within_the_observation_step() {
    let drift = metered_against_billed(
        Billing::PerSecond {
            minimum: Duration::from_secs(60),
        },
        BillingRule::PerSecond {
            minimum_seconds: 60,
        },
    )
    .await;
    assert!(drift.billed > Decimal::ZERO);
    // Lives end at the first observation that no longer shows them: up to 10 s more a life.
    assert!(
        drift.relative() < "0.01".parse().unwrap(),
        "metered {} billed {}",
        drift.metered,
        drift.billed
    );
    assert!(drift.metered >= drift.billed - "0.000001".parse::<Decimal>().unwrap());
}

#[tokio::test]
async fn per_hour_the_meter_matches_the_bill() {
    let drift = metered_against_billed(Billing::PerHour, BillingRule::PerHour).await;
    assert!(drift.billed > Decimal::ZERO);
    assert!(
        drift.relative() < "0.05".parse().unwrap(),
        "metered {} billed {}",
        drift.metered,
        drift.billed
    );
}
