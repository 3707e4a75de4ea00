//! The circuit breaker: opens after consecutive retryable failures, fails fast while open,
//! probes after the cool-down, closes on success and reopens on failure.

use crate::support as layers_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoist_api::events::{ProviderEvent, ProviderEventSink};
use hoist_api::layers::{CircuitBreakerLayer, CircuitState, FaultLayer, Layer, Layered, Operation};
use hoist_api::{ErrorKind, ScalingProvider};
use layers_support::FakeCloud;

#[derive(Debug, Default)]
struct Events(Mutex<Vec<bool>>);

impl ProviderEventSink for Events {
    fn emit_provider(&self, event: &ProviderEvent) {
        if let ProviderEvent::Circuit { open, provider } = event {
            assert_eq!(provider, "fake");
            self.0.lock().unwrap().push(*open);
        }
    }
}

struct Fixture {
    provider: Layered<hoist_api::layers::CircuitBreaker, dyn ScalingProvider>,
    faults: FaultLayer,
    events: Arc<Events>,
}

fn fixture() -> Fixture {
    let events = Arc::new(Events::default());
    let layer = CircuitBreakerLayer::new()
        .with_failure_threshold(3)
        .with_cool_down(Duration::from_secs(10))
        .with_events(events.clone());
    let faults = FaultLayer::new(1);
    let inner = faults.layer_scaling(Arc::new(FakeCloud::new()));
    Fixture {
        provider: Layered::scaling(layer.interceptor("fake"), inner),
        faults,
        events,
    }
}

#[tokio::test(start_paused = true)]
async fn opens_fails_fast_probes_and_closes() {
    let f = fixture();
    f.faults
        .fail_next(Operation::DescribeGroup, 3, ErrorKind::Transient);
    for _ in 0..3 {
        assert_eq!(
            f.provider.describe_group("web").await.unwrap_err().kind(),
            ErrorKind::Transient
        );
    }
    assert_eq!(f.provider.layer().state(), CircuitState::Open);
    assert_eq!(*f.events.0.lock().unwrap(), vec![true]);

    // Open: refused without reaching the provider, and not worth retrying.
    let error = f.provider.describe_group("web").await.unwrap_err();
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("circuit open"), "{error}");
    assert_eq!(f.faults.calls(), 3);

    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(f.provider.layer().state(), CircuitState::HalfOpen);
    f.provider
        .describe_group("web")
        .await
        .expect("the probe succeeds");
    assert_eq!(f.faults.calls(), 4);
    assert_eq!(f.provider.layer().state(), CircuitState::Closed);
    assert_eq!(*f.events.0.lock().unwrap(), vec![true, false]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_for_another_cool_down() {
    let f = fixture();
    f.faults
        .fail_next(Operation::ListGroups, 4, ErrorKind::Timeout);
    for _ in 0..3 {
        f.provider.list_groups().await.unwrap_err();
    }
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(
        f.provider.list_groups().await.unwrap_err().kind(),
        ErrorKind::Timeout
    );
    assert_eq!(f.provider.layer().state(), CircuitState::Open);
    assert_eq!(*f.events.0.lock().unwrap(), vec![true, true]);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(
        f.provider.layer().state(),
        CircuitState::Open,
        "a fresh cool-down"
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    f.provider
        .list_groups()
        .await
        .expect("second probe succeeds");
    assert_eq!(f.provider.layer().state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn definite_errors_and_successes_reset_the_count() {
    let f = fixture();
    f.faults
        .fail_next(Operation::DescribeGroup, 2, ErrorKind::Transient);
    f.provider.describe_group("web").await.unwrap_err();
    f.provider.describe_group("web").await.unwrap_err();
    assert_eq!(f.provider.layer().consecutive_failures(), 2);
    // Not found is an answer: the provider is up.
    assert_eq!(
        f.provider.describe_group("nope").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(f.provider.layer().consecutive_failures(), 0);
    f.faults
        .fail_next(Operation::DescribeGroup, 2, ErrorKind::InvalidInput);
    f.provider.describe_group("web").await.unwrap_err();
    f.provider.describe_group("web").await.unwrap_err();
    assert_eq!(f.provider.layer().state(), CircuitState::Closed);
    assert!(f.events.0.lock().unwrap().is_empty());
}
