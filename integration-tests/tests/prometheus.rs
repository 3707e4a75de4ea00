//! Prometheus, for real (Debian's `prometheus`, started by `scripts/servers/prometheus.sh`):
//! it scrapes Hoist's `/metrics`, and `PrometheusSource` answers the PromQL a policy uses,
//! including the errors the engine explains (bad query, no series, stale series).
//!
//! The script configures Prometheus to scrape `HOIST_TEST_PROMETHEUS_SCRAPE_ADDR` every
//! second; the one test here that serves on it runs its phases in order.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use hoist_core::engine::GroupSnapshot;
use hoist_core::events::{Event, EventSink};
use hoist_core::{ErrorKind, MetricKind, MetricQuery, MetricsSource, TimeRange, TimeSeries};
use hoist_integration_tests::server_url;
use hoist_prometheus::PrometheusSource;
use hoist_telemetry::testing::RecordingReceiver;
use hoist_telemetry::{Telemetry, TelemetryServer};

fn prometheus() -> PrometheusSource {
    PrometheusSource::builder(server_url("HOIST_TEST_PROMETHEUS_URL"))
        .timeout(Duration::from_secs(5))
        .staleness(Duration::from_secs(2))
        .build()
        .expect("a valid Prometheus source")
}

fn scrape_addr() -> std::net::SocketAddr {
    server_url("HOIST_TEST_PROMETHEUS_SCRAPE_ADDR")
        .parse()
        .expect("HOIST_TEST_PROMETHEUS_SCRAPE_ADDR is host:port")
}

/// Polls an instant query until it returns a series whose value satisfies `ok`.
async fn wait_for_value(
    prom: &PrometheusSource,
    promql: &str,
    ok: impl Fn(f64) -> bool,
) -> Vec<TimeSeries> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        match prom.query_instant(promql, None).await {
            Ok(series) if series.iter().any(|s| s.samples.iter().any(|x| ok(x.value))) => {
                return series;
            }
            other => last = Some(format!("{other:?}")),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("`{promql}` did not reach the expected value within 30 s; last answer: {last:?}");
}

fn last_minute() -> TimeRange {
    let now = Utc::now();
    TimeRange {
        start: now - TimeDelta::seconds(60),
        end: now,
    }
}

#[tokio::test]
async fn prometheus_scrapes_hoist_and_serves_the_series_a_policy_scales_on() {
    let prom = prometheus();

    // Phase 1: Prometheus scrapes the telemetry endpoint.
    let telemetry = Telemetry::new();
    telemetry.emit(&Event::GroupObserved {
        provider: "sim".into(),
        group: GroupSnapshot {
            id: "web".into(),
            desired: 7,
            ready: 6,
            pending: 1,
            provider_min: 0,
            provider_max: 50,
            instance_class: "m5.large".into(),
        },
        min: 2,
        max: 20,
        cost_per_hour: Some(0.672),
        currency: Some("USD".into()),
        metered_cost: None,
        metered_spot_cost: None,
        spot_instances: 0,
    });
    let server = TelemetryServer::start(scrape_addr(), telemetry.clone())
        .await
        .expect("bind the scrape address the test Prometheus is configured with");
    wait_for_value(&prom, r#"up{job="hoist"}"#, |v| v == 1.0).await;
    let series = wait_for_value(
        &prom,
        r#"hoist_group_current_instances{provider="sim",group="web"}"#,
        |v| v == 7.0,
    )
    .await;
    assert_eq!(series[0].labels["job"], "hoist");
    wait_for_value(
        &prom,
        r#"hoist_group_cost_usd_per_hour{group="web"}"#,
        |v| (v - 0.672).abs() < 1e-9,
    )
    .await;
    // A counter keeps its `_total` name through the scrape.
    telemetry.emit(&Event::Circuit {
        provider: "sim".into(),
        open: true,
    });
    wait_for_value(
        &prom,
        r#"hoist_provider_circuit_open{provider="sim"}"#,
        |v| v == 1.0,
    )
    .await;
    server.shutdown().await;

    // Phase 2: an application series on the same target; the metrics source answers the
    // policy's query for group `web` the way the control loop asks (query_range).
    let app = RecordingReceiver::start_on(scrape_addr())
        .await
        .expect("bind the scrape address again");
    app.set_reply(
        200,
        "# TYPE app_requests_per_second gauge\n\
         app_requests_per_second{service=\"web\"} 250\n\
         app_requests_per_second{service=\"api\"} 40\n",
    );
    wait_for_value(&prom, r#"app_requests_per_second{service="web"}"#, |v| {
        v == 250.0
    })
    .await;
    let query = MetricQuery {
        group: "web".into(),
        metric: MetricKind::RequestRate,
        expression: Some(r#"sum(app_requests_per_second{service="{group}"})"#.into()),
    };
    let series = prom
        .query_range(&hoist_core::RangeQuery::new(
            query.clone(),
            last_minute(),
            1,
        ))
        .await
        .expect("the policy's query answers");
    assert_eq!(series.len(), 1);
    let newest = series[0].samples.last().expect("samples");
    assert_eq!(newest.value, 250.0);
    assert!(
        Utc::now() - newest.at < TimeDelta::seconds(5),
        "fresh sample"
    );

    // Phase 3: the target goes away; once its series is older than the staleness bound the
    // source says so (NotFound, "stale"), and the engine holds.
    app.shutdown().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let error = loop {
        match prom
            .query_range(&hoist_core::RangeQuery::new(
                query.clone(),
                last_minute(),
                1,
            ))
            .await
        {
            Err(e) => break e,
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(series) => panic!("still fresh after 30 s: {series:?}"),
        }
    };
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
    assert!(error.to_string().contains("stale data"), "{error}");
}

#[tokio::test]
async fn bad_and_empty_queries_explain_themselves() {
    let prom = prometheus();
    let bad = MetricQuery {
        group: "web".into(),
        metric: MetricKind::QueueDepth,
        expression: Some("sum(rate(x[1m])".into()),
    };
    let error = prom
        .query_range(&hoist_core::RangeQuery::new(bad.clone(), last_minute(), 5))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert!(error.to_string().contains("bad_data"), "{error}");
    assert!(error.to_string().contains("parse error"), "{error}");

    let nothing = MetricQuery {
        group: "no-such-group".into(),
        metric: MetricKind::QueueDepth,
        expression: Some(r#"queue_depth{group="{group}"}"#.into()),
    };
    let error = prom
        .query_range(&hoist_core::RangeQuery::new(
            nothing.clone(),
            last_minute(),
            5,
        ))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
    assert!(error.to_string().contains("matched no series"), "{error}");

    // Prometheus's own `up` answers an instant query.
    let up = wait_for_value(&prom, r#"up{job="prometheus"}"#, |v| v == 1.0).await;
    assert_eq!(up[0].labels["job"], "prometheus");
}

/// Every query of the shipped Grafana dashboard parses in a real Prometheus and reads only
/// metrics Hoist exports.
#[tokio::test]
async fn dashboard_queries_parse_and_name_exported_metrics() {
    let path = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../dashboards/hoist.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboards/hoist.json"))
            .expect("the dashboard is JSON");
    let prom = prometheus();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            let promql = expr.replace("$provider", ".*").replace("$group", ".*");
            if let Err(error) = prom.query_instant(&promql, None).await {
                panic!("panel {:?}: `{expr}` fails: {error}", panel["title"]);
            }
            let names_exported = hoist_telemetry::METRIC_NAMES
                .iter()
                .any(|name| promql.contains(name) || promql.contains(&format!("{}_bucket", name)));
            assert!(names_exported, "`{expr}` reads no metric Hoist exports");
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} queries");
}
