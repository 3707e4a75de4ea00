//! The simulated cloud's billing: per-second with a minimum, per started hour, grouping,
//! forecasts and prices.

use std::time::Duration;

use chrono::TimeDelta;
use hoist_api::{
    BillingProvider, CapacityType, CostGranularity, CostQuery, ErrorKind, ScalingProvider,
    TimeRange,
};
use hoist_sim::{Billing, DemandSpec, SimGroupSpec, SimulatedCloud};

const PRICE: f64 = 0.096; // general.large on demand, USD per hour

fn group(id: &str, desired: u32) -> SimGroupSpec {
    SimGroupSpec {
        min: 0,
        max: 10,
        desired,
        demand: DemandSpec::Constant(10.0),
        ..SimGroupSpec::new(id)
    }
}

async fn total(c: &SimulatedCloud, group_by: Option<&str>) -> Vec<(Option<String>, f64)> {
    let q = CostQuery {
        range: TimeRange {
            start: c.start_time(),
            end: c.now() + TimeDelta::days(1),
        },
        granularity: CostGranularity::Monthly,
        group_by: group_by.map(str::to_owned),
    };
    let mut out: Vec<(Option<String>, f64)> = Vec::new();
    for e in c.cost(&q).await.unwrap() {
        assert!(!e.estimated);
        assert_eq!(e.amount.currency.0, "USD");
        match out.iter_mut().find(|(k, _)| *k == e.key) {
            Some((_, v)) => *v += e.amount.to_f64(),
            None => out.push((e.key, e.amount.to_f64())),
        }
    }
    out
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test]
async fn per_second_billing_charges_at_least_the_minimum() {
    let c = SimulatedCloud::builder()
        .billing(Billing::PerSecond {
            minimum: Duration::from_secs(60),
        })
        .group(group("web", 0))
        .build()
        .unwrap();
    c.set_desired_capacity("web", 1).await.unwrap();
    c.advance(Duration::from_secs(10));
    c.set_desired_capacity("web", 0).await.unwrap();
    c.advance(Duration::from_secs(3600));
    let cost = total(&c, None).await;
    assert_eq!(cost.len(), 1);
    assert!(close(cost[0].1, 60.0 * PRICE / 3600.0), "{cost:?}");
    // A longer life is billed per second, booting time included.
    c.set_desired_capacity("web", 1).await.unwrap();
    c.advance(Duration::from_secs(1000));
    let cost = total(&c, None).await;
    assert!(close(cost[0].1, 1060.0 * PRICE / 3600.0), "{cost:?}");
}

#[tokio::test]
async fn per_hour_billing_charges_every_started_hour() {
    let c = SimulatedCloud::builder()
        .billing(Billing::PerHour)
        .group(group("web", 0))
        .build()
        .unwrap();
    c.set_desired_capacity("web", 1).await.unwrap();
    c.advance(Duration::from_secs(61 * 60));
    c.set_desired_capacity("web", 0).await.unwrap();
    c.advance(Duration::from_secs(3 * 3600));
    let cost = total(&c, None).await;
    assert!(close(cost[0].1, 2.0 * PRICE), "{cost:?}");
}

#[tokio::test]
async fn costs_group_by_group_and_add_up_by_hour() {
    let c = SimulatedCloud::builder()
        .group(group("web", 2))
        .group(SimGroupSpec {
            instance_class: "memory.large".to_owned(),
            ..group("db", 1)
        })
        .build()
        .unwrap();
    c.advance(Duration::from_secs(5 * 3600));
    let by_group = total(&c, Some("group")).await;
    let web = by_group
        .iter()
        .find(|(k, _)| k.as_deref() == Some("web"))
        .unwrap()
        .1;
    let db = by_group
        .iter()
        .find(|(k, _)| k.as_deref() == Some("db"))
        .unwrap()
        .1;
    assert!(close(web, 2.0 * 5.0 * PRICE), "{web}");
    assert!(close(db, 5.0 * 0.126), "{db}");
    let hourly = c
        .cost(&CostQuery {
            range: TimeRange {
                start: c.start_time(),
                end: c.now(),
            },
            granularity: CostGranularity::Hourly,
            group_by: None,
        })
        .await
        .unwrap();
    assert_eq!(hourly.len(), 5);
    assert!(
        hourly
            .iter()
            .all(|e| close(e.amount.to_f64(), 2.0 * PRICE + 0.126))
    );
    let bad = c
        .cost(&CostQuery {
            range: hourly[0].start.into_range(),
            granularity: CostGranularity::Hourly,
            group_by: Some("tag:team".to_owned()),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);
}

trait IntoRange {
    fn into_range(self) -> TimeRange;
}

impl IntoRange for chrono::DateTime<chrono::Utc> {
    fn into_range(self) -> TimeRange {
        TimeRange {
            start: self,
            end: self + TimeDelta::hours(1),
        }
    }
}

#[tokio::test]
async fn forecast_uses_the_current_run_rate() {
    let c = SimulatedCloud::builder()
        .group(group("web", 3))
        .build()
        .unwrap();
    c.advance(Duration::from_secs(3600));
    let f = c
        .forecast(&CostQuery {
            range: TimeRange {
                start: c.now(),
                end: c.now() + TimeDelta::days(2),
            },
            granularity: CostGranularity::Daily,
            group_by: None,
        })
        .await
        .unwrap();
    assert!(f.iter().all(|e| e.estimated));
    let sum: f64 = f.iter().map(|e| e.amount.to_f64()).sum();
    assert!(close(sum, 3.0 * PRICE * 48.0), "{sum}");
}

#[tokio::test]
async fn prices_come_from_the_catalog() {
    let c = SimulatedCloud::builder()
        .group(group("web", 1))
        .build()
        .unwrap();
    let p = c
        .price("general.large", "sim-1a", CapacityType::OnDemand)
        .await
        .unwrap();
    assert!(close(p.per_hour(), PRICE));
    assert_eq!(p.source.kind, "sim");
    let spot = c
        .price("general.large", "sim-1a", CapacityType::Spot)
        .await
        .unwrap();
    assert!(spot.per_hour() < PRICE);
    for (class, zone) in [("nope", "sim-1a"), ("general.large", "mars-1a")] {
        let e = c
            .price(class, zone, CapacityType::OnDemand)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
    let _ = c.describe_group("web").await.unwrap();
}
