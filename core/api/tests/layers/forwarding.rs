//! Every layer forwards every method of the four traits, passes names and capabilities through,
//! shows its nesting; plus the timeout and metrics layers.

use crate::support as layers_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hoist_api::events::{NoProviderEvents, ProviderEvent, ProviderEventSink};
use hoist_api::layers::{
    CircuitBreakerLayer, DryRunLayer, FaultLayer, Layer, MetricsLayer, Operation, RetryLayer,
    TimeoutLayer,
};
use hoist_api::{
    CapacityType, CostGranularity, CostQuery, ErrorKind, MetricKind, MetricQuery, ProviderSet,
    TimeRange,
};
use layers_support::FakeCloud;

fn layers() -> Vec<Box<dyn Layer>> {
    vec![
        Box::new(RetryLayer::new()),
        Box::new(TimeoutLayer::new(Duration::from_secs(5))),
        Box::new(CircuitBreakerLayer::new()),
        Box::new(MetricsLayer::new(Arc::new(NoProviderEvents))),
        Box::new(FaultLayer::new(1)),
        Box::new(DryRunLayer::new()),
    ]
}

fn range() -> TimeRange {
    let start = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
    TimeRange {
        start,
        end: start + chrono::Duration::hours(1),
    }
}

/// Calls every method of every trait once (writes only when `writes`).
async fn call_everything(set: &ProviderSet, writes: bool) {
    let s = set.scaling_provider().unwrap();
    s.list_groups().await.unwrap();
    s.describe_group("web").await.unwrap();
    s.activities("web").await.unwrap();
    if writes {
        s.set_desired_capacity("web", 3).await.unwrap();
        s.remove_instances(
            "web",
            &hoist_api::RemoveInstances::new(vec!["i-1".to_owned()]).with_decrement(true),
        )
        .await
        .unwrap();
        s.set_instance_class("web", &hoist_api::ChangeInstanceClass::new("c.large"))
            .await
            .unwrap();
    }
    let catalog = set.catalog.as_ref().unwrap();
    catalog.instance_classes().await.unwrap();
    catalog.instance_class("c.small").await.unwrap();
    let billing = set.billing.as_ref().unwrap();
    let query = CostQuery {
        range: range(),
        granularity: CostGranularity::Daily,
        group_by: None,
    };
    assert_eq!(
        billing.cost(&query).await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    assert_eq!(
        billing.forecast(&query).await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    billing
        .price("c.small", "z1", CapacityType::OnDemand)
        .await
        .unwrap();
    let metrics = set.metrics.as_ref().unwrap();
    let query = MetricQuery {
        group: "web".to_owned(),
        metric: MetricKind::Utilization,
        expression: None,
    };
    assert_eq!(
        metrics
            .query_range(&hoist_api::RangeQuery::new(query.clone(), range(), 60))
            .await
            .unwrap()[0]
            .samples
            .len(),
        60
    );
}

#[tokio::test]
async fn every_layer_forwards_every_method_once() {
    for layer in layers() {
        let cloud = FakeCloud::new();
        let set = cloud.provider_set().with_layer(layer.as_ref());
        let dry_run = set.describe().starts_with("DryRun");
        call_everything(&set, true).await;
        for op in Operation::ALL {
            let expected = match op {
                // Dry run never writes, and reads the group to validate each write.
                _ if dry_run && op.is_write() => 0,
                Operation::DescribeGroup if dry_run => 4,
                // ...and looks the class up in the catalog.
                Operation::InstanceClass if dry_run => 2,
                _ => 1,
            };
            assert_eq!(cloud.calls(op), expected, "{} for {op}", set.describe());
        }
        assert_eq!(set.scaling_provider().unwrap().name(), "fake");
        assert_eq!(
            set.scaling_provider().unwrap().capabilities(),
            cloud
                .provider_set()
                .scaling_provider()
                .unwrap()
                .capabilities()
        );
        assert_eq!(
            set.metrics.as_ref().unwrap().capabilities().builtin,
            vec![MetricKind::Utilization]
        );
    }
}

#[tokio::test]
async fn nesting_shows_in_describe_and_display() {
    let cloud = FakeCloud::new();
    let set = cloud
        .provider_set()
        .with_layer(&DryRunLayer::new())
        .with_layer(&RetryLayer::new());
    assert_eq!(set.describe(), "Retry(DryRun(fake))");
    assert_eq!(
        set.catalog.as_ref().unwrap().describe(),
        "Retry(DryRun(FakeCloud))"
    );
    assert_eq!(set.name, "fake");

    let layer = TimeoutLayer::new(Duration::from_secs(1));
    let wrapped = hoist_api::layers::Layered::scaling(layer, Arc::new(cloud));
    assert_eq!(wrapped.to_string(), "Timeout(fake)");
    assert!(format!("{wrapped:?}").starts_with("Timeout {"));
}

#[tokio::test(start_paused = true)]
async fn timeout_turns_slow_calls_into_retryable_timeouts() {
    let cloud = FakeCloud::new();
    let slow = FaultLayer::new(1).with_latency(
        Operation::DescribeGroup,
        Duration::from_secs(3),
        Duration::from_secs(3),
    );
    let timeout = TimeoutLayer::new(Duration::from_secs(1))
        .with_limit(Operation::ListGroups, Duration::from_secs(10));
    let set = cloud.provider_set().with_layer(&slow).with_layer(&timeout);
    let started = tokio::time::Instant::now();
    let error = set
        .scaling_provider()
        .unwrap()
        .describe_group("web")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert!(error.is_retryable());
    assert_eq!(error.operation(), "describe_group");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(
        cloud.calls(Operation::DescribeGroup),
        0,
        "the slow call was dropped"
    );
    assert_eq!(
        timeout.limit(Operation::ListGroups),
        Duration::from_secs(10)
    );
    set.scaling_provider().unwrap().list_groups().await.unwrap();
}

/// Provider, operation, error kind and duration of one call.
type CallRecord = (String, &'static str, Option<ErrorKind>, Duration);

#[derive(Debug, Default)]
struct Calls(Mutex<Vec<CallRecord>>);

impl ProviderEventSink for Calls {
    fn emit_provider(&self, event: &ProviderEvent) {
        if let ProviderEvent::ProviderCall {
            provider,
            operation,
            error,
            duration,
        } = event
        {
            self.0
                .lock()
                .unwrap()
                .push((provider.clone(), operation, *error, *duration));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn metrics_layer_emits_one_timed_event_per_call() {
    let calls = Arc::new(Calls::default());
    let slow = FaultLayer::new(1).with_latency(
        Operation::ListGroups,
        Duration::from_millis(250),
        Duration::from_millis(250),
    );
    let set = FakeCloud::new()
        .provider_set()
        .with_layer(&slow)
        .with_layer(&MetricsLayer::new(calls.clone()));
    set.scaling_provider().unwrap().list_groups().await.unwrap();
    set.scaling_provider()
        .unwrap()
        .describe_group("nope")
        .await
        .unwrap_err();
    let seen = calls.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (
                "fake".to_owned(),
                "list_groups",
                None,
                Duration::from_millis(250)
            ),
            (
                "fake".to_owned(),
                "describe_group",
                Some(ErrorKind::NotFound),
                Duration::ZERO
            ),
        ]
    );
}

#[tokio::test]
async fn layer_stack_applies_the_recommended_order() {
    use hoist_api::layers::LayerStack;
    let cloud = FakeCloud::new();
    let full = LayerStack::new()
        .dry_run(DryRunLayer::new())
        .retry(RetryLayer::new())
        .timeout(TimeoutLayer::new(Duration::from_secs(1)))
        .metrics(MetricsLayer::new(Arc::new(NoProviderEvents)))
        .circuit_breaker(CircuitBreakerLayer::new());
    assert_eq!(
        full.apply(cloud.provider_set()).describe(),
        "DryRun(Retry(CircuitBreaker(Metrics(Timeout(fake)))))"
    );
    let some = LayerStack::new()
        .retry(RetryLayer::new())
        .timeout(TimeoutLayer::new(Duration::from_secs(1)));
    assert_eq!(
        some.apply(cloud.provider_set()).describe(),
        "Retry(Timeout(fake))"
    );
    assert_eq!(
        LayerStack::new().apply(cloud.provider_set()).describe(),
        "fake"
    );
}
