//! Reconciling the cost meter with AWS Cost Explorer, against moto (started by
//! `scripts/servers/moto.sh`): Cost Explorer results are injected through moto's control API,
//! read through the AWS provider's `BillingProvider` by the same function the control loop uses
//! (`hoist_core::reconcile::billed_days`), and set against metered amounts.

use std::io::{Read, Write};
use std::sync::Arc;

use chrono::{Days, NaiveDate, TimeDelta, Utc};
use hoist_aws::{AwsProvider, AwsProviderBuilder, GroupSelector};
use hoist_core::Decimal;
use hoist_core::reconcile::{Reconciler, billed_days, compare, midnight};
use hoist_integration_tests::server_url;

const REGION: &str = "us-east-1";

fn moto() -> String {
    server_url("HOIST_TEST_MOTO_URL")
}

async fn provider() -> Arc<AwsProvider> {
    Arc::new(
        AwsProviderBuilder::new()
            .with_region(REGION)
            .with_endpoint_url(moto())
            .with_static_credentials("testing", "testing-secret", None)
            .with_instance_refresh(false)
            .with_groups(GroupSelector::All)
            .build()
            .await
            .expect("provider builds"),
    )
}

/// Posts JSON to moto's control API with a plain HTTP/1.1 request; returns the status.
fn moto_api_post(path: &str, body: &serde_json::Value) -> u16 {
    let base = moto();
    let authority = base.trim_start_matches("http://");
    let body = body.to_string();
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// One daily row of a GetCostAndUsage answer without grouping.
fn daily_total(day: NaiveDate, amount: &str) -> serde_json::Value {
    serde_json::json!({
        "TimePeriod": {
            "Start": day.format("%Y-%m-%d").to_string(),
            "End": (day + Days::new(1)).format("%Y-%m-%d").to_string(),
        },
        "Total": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}},
        "Groups": [],
        "Estimated": false
    })
}

#[tokio::test]
async fn cost_explorer_days_are_set_against_the_meter_and_a_missing_day_waits() {
    // moto answers a request it has seen before with the same result, so each run asks about
    // its own (far future) days.
    let first = NaiveDate::from_ymd_opt(2060, 1, 1).unwrap()
        + Days::new((Utc::now().timestamp_millis() % 20_000) as u64);
    let days = [first, first + Days::new(1), first + Days::new(2)];

    // The meter as the control loop feeds it: a checkpoint at every midnight (and one just
    // after the last, which makes it final): 103 metered on the first day, 48 on the second, 60
    // on the third.
    let mut reconciler = Reconciler::new();
    let mut cumulative = Decimal::ZERO;
    for (day, metered) in days.iter().zip(["103", "48", "60"]) {
        reconciler.checkpoint("aws", midnight(*day), cumulative);
        cumulative += dec(metered);
    }
    let end = midnight(days[2] + Days::new(1));
    reconciler.checkpoint("aws", end, cumulative);
    reconciler.checkpoint("aws", end + TimeDelta::minutes(1), cumulative);
    let offered = reconciler
        .begin("aws", end + TimeDelta::minutes(1), TimeDelta::hours(6))
        .expect("three complete days to reconcile");
    assert_eq!(
        offered,
        vec![
            (days[0], dec("103")),
            (days[1], dec("48")),
            (days[2], dec("60"))
        ]
    );

    // Cost Explorer has the first two days; the third lags.
    let status = moto_api_post(
        "/moto-api/static/ce/cost-and-usage-results",
        &serde_json::json!({"results": [{
            "ResultsByTime": [daily_total(days[0], "100"), daily_total(days[1], "50")],
            "DimensionValueAttributes": []
        }]}),
    );
    assert_eq!(
        status, 201,
        "moto accepts the injected Cost Explorer result"
    );

    let aws = provider().await;
    let asked: Vec<NaiveDate> = offered.iter().map(|(day, _)| *day).collect();
    let billed = billed_days(aws.as_ref(), &asked)
        .await
        .expect("Cost Explorer answers");
    assert_eq!(billed.len(), 2, "{billed:?}");
    assert_eq!(billed[&days[0]], (dec("100"), "USD".to_owned()));
    assert_eq!(billed[&days[1]], (dec("50"), "USD".to_owned()));
    assert!(!billed.contains_key(&days[2]));

    // Compare as the loop does: each day the bill has.
    let mut done = Vec::new();
    let mut reconciled = Vec::new();
    for (day, metered) in &offered {
        if let Some((amount, currency)) = billed.get(day) {
            done.push(*day);
            reconciled.push(compare("aws", *day, *metered, *amount, currency.clone()));
        }
    }
    reconciler.finish("aws", &done);

    assert_eq!(reconciled.len(), 2);
    let (a, b) = (&reconciled[0], &reconciled[1]);
    assert_eq!(
        (a.day, a.metered, a.billed),
        (days[0], dec("103"), dec("100"))
    );
    assert_eq!(a.difference, dec("3"));
    assert_eq!(a.relative, Some(0.03));
    assert_eq!(a.currency, "USD");
    assert_eq!(
        (b.day, b.metered, b.billed),
        (days[1], dec("48"), dec("50"))
    );
    assert_eq!(b.difference, dec("-2"));
    assert_eq!(b.relative, Some(-0.04));

    // The lagging day is left for later: offered again at the next interval, alone.
    assert_eq!(
        reconciler.unreconciled_days("aws"),
        vec![(days[2], dec("60"))]
    );
    assert_eq!(
        reconciler.begin("aws", end + TimeDelta::hours(1), TimeDelta::hours(6)),
        None,
        "not before the interval"
    );
    assert_eq!(
        reconciler.begin("aws", end + TimeDelta::hours(7), TimeDelta::hours(6)),
        Some(vec![(days[2], dec("60"))])
    );
}
