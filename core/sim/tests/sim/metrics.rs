//! The simulated cloud's metrics: values from the demand and capacity model, lag, gaps,
//! overload, latency and determinism.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hoist_api::{
    BillingProvider, CostGranularity, CostQuery, ErrorKind, MetricKind, MetricQuery, MetricsSource,
    Sample, ScalingProvider, TimeRange,
};
use hoist_sim::trace::parse_trace;
use hoist_sim::{DemandSpec, GeneratorSpec, SimGroupSpec, SimulatedCloud, TraceDemand, TraceScale};

fn group(id: &str, desired: u32, demand: DemandSpec) -> SimGroupSpec {
    SimGroupSpec {
        min: 0,
        max: 100,
        desired,
        demand,
        work_per_instance: 100.0,
        ..SimGroupSpec::new(id)
    }
}

async fn series(c: &SimulatedCloud, g: &str, metric: MetricKind) -> Vec<Sample> {
    let range = TimeRange {
        start: c.start_time(),
        end: c.now() + TimeDelta::days(365),
    };
    let q = MetricQuery {
        group: g.to_owned(),
        metric,
        expression: None,
    };
    let mut out = c
        .query_range(&hoist_api::RangeQuery::new(q.clone(), range, 60))
        .await
        .unwrap();
    assert_eq!(out.len(), 1);
    out.remove(0).samples
}

async fn last(c: &SimulatedCloud, g: &str, metric: MetricKind) -> f64 {
    series(c, g, metric).await.last().expect("a sample").value
}

#[tokio::test]
async fn utilisation_and_request_rate_follow_demand_over_ready_capacity() {
    let c = SimulatedCloud::builder()
        .group(group("web", 4, DemandSpec::Constant(250.0)))
        .build()
        .unwrap();
    c.advance(Duration::from_secs(600));
    assert!((last(&c, "web", MetricKind::Utilization).await - 0.625).abs() < 1e-9);
    assert!((last(&c, "web", MetricKind::RequestRate).await - 250.0).abs() < 1e-9);
    assert_eq!(last(&c, "web", MetricKind::ErrorRate).await, 0.0);
    assert_eq!(last(&c, "web", MetricKind::QueueDepth).await, 0.0);
    let ready = MetricKind::Custom("ready_instances".to_owned());
    assert!((last(&c, "web", ready).await - 4.0).abs() < 1e-9);
    let caps = MetricsSource::capabilities(&c);
    assert!(caps.builtin.contains(&MetricKind::LatencyP99));
    assert!(!caps.expressions);
}

#[tokio::test]
async fn samples_are_delayed_by_the_lag_and_never_from_the_future() {
    let c = SimulatedCloud::builder()
        .metric_lag(Duration::from_secs(120))
        .group(group("web", 2, DemandSpec::Constant(50.0)))
        .build()
        .unwrap();
    c.advance(Duration::from_secs(300));
    let s = series(&c, "web", MetricKind::Utilization).await;
    // Periods ending at 60, 120 and 180 s are visible at 300 s with a 120 s lag; 240 s is not.
    let ends: Vec<i64> = s
        .iter()
        .map(|x| (x.at - c.start_time()).num_seconds())
        .collect();
    assert_eq!(ends, vec![60, 120, 180]);
    assert!(s.iter().all(|x| x.at + TimeDelta::seconds(120) <= c.now()));
}

#[tokio::test]
async fn overload_shows_as_errors_backlog_and_latency_not_as_utilisation_above_one() {
    let c = SimulatedCloud::builder()
        .group(group("web", 2, DemandSpec::Constant(500.0)))
        .build()
        .unwrap();
    c.advance(Duration::from_secs(600));
    assert!((last(&c, "web", MetricKind::Utilization).await - 1.0).abs() < 1e-12);
    assert!((last(&c, "web", MetricKind::RequestRate).await - 500.0).abs() < 1e-9);
    assert!((last(&c, "web", MetricKind::ErrorRate).await - 0.6).abs() < 1e-9);
    let q = series(&c, "web", MetricKind::QueueDepth).await;
    assert!(
        q.windows(2).all(|w| w[1].value > w[0].value),
        "backlog grows"
    );
    // 300 work/s excess: the backlog averaged over the period ending at 540 s is 300 * 510.
    assert!((q.last().unwrap().value - 300.0 * 510.0).abs() < 1e-6);
    let p95 = last(&c, "web", MetricKind::LatencyP95).await;
    assert!(p95 > 10.0, "{p95}");
    // More capacity drains the backlog; utilisation stays 1 while it drains.
    c.set_desired_capacity("web", 10).await.unwrap();
    c.advance(Duration::from_secs(180));
    assert!((last(&c, "web", MetricKind::Utilization).await - 1.0).abs() < 1e-12);
    c.advance(Duration::from_secs(3 * 3600));
    assert_eq!(last(&c, "web", MetricKind::QueueDepth).await, 0.0);
    assert!((last(&c, "web", MetricKind::Utilization).await - 0.5).abs() < 1e-9);
}

#[tokio::test]
async fn latency_rises_with_utilisation() {
    let mut b = SimulatedCloud::builder();
    let demands = [100.0, 300.0, 500.0, 700.0, 850.0, 950.0, 990.0];
    for (i, d) in demands.iter().enumerate() {
        b = b.group(group(&format!("g{i}"), 10, DemandSpec::Constant(*d)));
    }
    let c = b.build().unwrap();
    c.advance(Duration::from_secs(300));
    let mut last_p95 = 0.0;
    let mut last_p99 = 0.0;
    for i in 0..demands.len() {
        let g = format!("g{i}");
        let p95 = last(&c, &g, MetricKind::LatencyP95).await;
        let p99 = last(&c, &g, MetricKind::LatencyP99).await;
        assert!(
            p95 > last_p95 && p99 > last_p99 && p99 > p95,
            "{g}: {p95} {p99}"
        );
        (last_p95, last_p99) = (p95, p99);
    }
}

#[tokio::test]
async fn a_gap_in_the_trace_is_missing_samples_not_zero_demand() {
    // 5-minute trace with the 00:10 and 00:15 rows missing.
    let trace = parse_trace(
        "gappy",
        "timestamp,value\n\
         2024-03-01T00:00:00Z,100\n2024-03-01T00:05:00Z,100\n\
         2024-03-01T00:20:00Z,300\n2024-03-01T00:25:00Z,300\n",
    )
    .unwrap();
    let c = SimulatedCloud::builder()
        .group(group(
            "web",
            4,
            DemandSpec::Trace(TraceDemand {
                trace: Arc::new(trace),
                scale: TraceScale::Factor(1.0),
                looped: false,
            }),
        ))
        .build()
        .unwrap();
    assert_eq!(c.start_time().to_rfc3339(), "2024-03-01T00:00:00+00:00");
    c.advance(Duration::from_secs(3600));
    let s = series(&c, "web", MetricKind::RequestRate).await;
    let minutes: Vec<i64> = s
        .iter()
        .map(|x| (x.at - c.start_time()).num_minutes())
        .collect();
    let expected: Vec<i64> = (1..=10).chain(21..=30).collect();
    assert_eq!(minutes, expected, "no samples in the gap or after the end");
    assert!(s.iter().all(|x| x.value == 100.0 || x.value == 300.0));
    assert_eq!(c.current_demand("web").unwrap(), None);
}

#[tokio::test]
async fn unknown_metric_and_expressions_are_unsupported() {
    let c = SimulatedCloud::builder()
        .group(group("web", 1, DemandSpec::Constant(1.0)))
        .build()
        .unwrap();
    let range = TimeRange {
        start: c.now(),
        end: c.now() + TimeDelta::hours(1),
    };
    let mut q = MetricQuery {
        group: "web".to_owned(),
        metric: MetricKind::Custom("gpu".to_owned()),
        expression: None,
    };
    let e = c
        .query_range(&hoist_api::RangeQuery::new(q.clone(), range, 60))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    q.metric = MetricKind::Utilization;
    q.expression = Some("rate(x[5m])".to_owned());
    assert_eq!(
        c.query_range(&hoist_api::RangeQuery::new(q.clone(), range, 60))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Unsupported
    );
    q.expression = None;
    q.group = "nope".to_owned();
    assert_eq!(
        c.query_range(&hoist_api::RangeQuery::new(q.clone(), range, 60))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

/// Runs a small scripted scenario and returns everything observable.
async fn scenario(seed: u64) -> (Vec<Sample>, Vec<Sample>, f64, Vec<(String, DateTime<Utc>)>) {
    let c = SimulatedCloud::builder()
        .seed(seed)
        .spot_interruptions_per_hour(0.2)
        .group(group(
            "web",
            3,
            DemandSpec::Generator(GeneratorSpec::web(250.0)),
        ))
        .group(SimGroupSpec {
            capacity_type: hoist_api::CapacityType::Spot,
            ..group("batch", 5, DemandSpec::Generator(GeneratorSpec::web(400.0)))
        })
        .build()
        .unwrap();
    for step in 0..48 {
        c.advance(Duration::from_secs(1800));
        let desired = 2 + (step % 5);
        c.set_desired_capacity("web", desired).await.unwrap();
    }
    let util = series(&c, "web", MetricKind::Utilization).await;
    let rate = series(&c, "batch", MetricKind::RequestRate).await;
    let cost = c
        .cost(&CostQuery {
            range: TimeRange {
                start: c.start_time(),
                end: c.now(),
            },
            granularity: CostGranularity::Daily,
            group_by: None,
        })
        .await
        .unwrap()
        .iter()
        .map(|e| e.amount.to_f64())
        .sum();
    let history = c
        .instance_history("batch")
        .unwrap()
        .into_iter()
        .map(|h| (h.id, h.launched_at))
        .collect();
    (util, rate, cost, history)
}

#[tokio::test]
async fn same_seed_same_world_different_seed_different_noise() {
    let a = scenario(1).await;
    let b = scenario(1).await;
    let c = scenario(2).await;
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
    assert_eq!(a.2.to_bits(), b.2.to_bits());
    assert_eq!(a.3, b.3);
    assert_ne!(a.1, c.1, "different seeds give different noise");
    assert_ne!(a.3, c.3, "different seeds give different interruptions");
    assert!(a.0.len() > 1000);
}

#[tokio::test]
async fn slicing_time_differently_gives_the_same_metrics() {
    let build = || {
        SimulatedCloud::builder()
            .seed(5)
            .group(group(
                "web",
                3,
                DemandSpec::Generator(GeneratorSpec::web(250.0)),
            ))
            .build()
            .unwrap()
    };
    let one = build();
    one.advance(Duration::from_secs(6 * 3600));
    let many = build();
    for _ in 0..(6 * 3600 / 7) {
        many.advance(Duration::from_secs(7));
    }
    many.advance_to(one.now());
    let a = series(&one, "web", MetricKind::LatencyP95).await;
    let b = series(&many, "web", MetricKind::LatencyP95).await;
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.at, y.at);
        assert!((x.value - y.value).abs() < 1e-9 * x.value.max(1.0));
    }
}
