//! The retry layer: retries only retryable kinds, stops at max attempts and max elapsed, and
//! its backoff grows (measured on paused tokio time).

use crate::support as layers_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoist_api::events::{ProviderEvent, ProviderEventSink};
use hoist_api::layers::{
    BoxFuture, Call, FaultLayer, Intercept, Jitter, Layer, Layered, Operation, RetryLayer,
};
use hoist_api::{ErrorKind, Result, ScalingProvider};
use layers_support::FakeCloud;
use tokio::time::Instant;

/// Records when each attempt reaches the inner provider.
#[derive(Debug, Clone, Default)]
struct AttemptClock(Arc<Mutex<Vec<Instant>>>);

impl Intercept for AttemptClock {
    fn label(&self) -> &'static str {
        "AttemptClock"
    }

    fn around<'a, T, F>(&'a self, _call: Call<'a>, mut attempt: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> BoxFuture<'a, Result<T>> + Send + 'a,
    {
        self.0.lock().unwrap().push(Instant::now());
        attempt()
    }
}

impl AttemptClock {
    fn gaps(&self) -> Vec<Duration> {
        let times = self.0.lock().unwrap();
        times.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

#[derive(Debug, Default)]
struct Events(Mutex<Vec<ProviderEvent>>);

impl ProviderEventSink for Events {
    fn emit_provider(&self, event: &ProviderEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

/// `Retry(AttemptClock(Fault(fake)))`.
fn stack(retry: &RetryLayer) -> (Arc<dyn ScalingProvider>, FaultLayer, AttemptClock) {
    let faults = FaultLayer::new(1);
    let clock = AttemptClock::default();
    let cloud: Arc<dyn ScalingProvider> = Arc::new(FakeCloud::new());
    let faulty = faults.layer_scaling(cloud);
    let timed: Arc<dyn ScalingProvider> = Arc::new(Layered::scaling(clock.clone(), faulty));
    (retry.layer_scaling(timed), faults, clock)
}

fn fixed(initial_ms: u64) -> RetryLayer {
    RetryLayer::new()
        .with_initial_backoff(Duration::from_millis(initial_ms))
        .with_max_backoff(Duration::from_secs(60))
        .with_max_elapsed(None)
        .with_jitter(Jitter::None)
}

#[tokio::test(start_paused = true)]
async fn retries_retryable_kinds_until_success() {
    for kind in [
        ErrorKind::Transient,
        ErrorKind::Throttled,
        ErrorKind::Timeout,
    ] {
        let (provider, faults, clock) = stack(&fixed(100).with_max_attempts(4));
        faults.fail_next(Operation::DescribeGroup, 2, kind);
        let group = provider
            .describe_group("web")
            .await
            .expect("third attempt succeeds");
        assert_eq!(group.id, "web");
        assert_eq!(faults.calls(), 3, "{kind}: two failures and one success");
        assert_eq!(clock.gaps().len(), 2);
    }
}

#[tokio::test(start_paused = true)]
async fn never_retries_non_retryable_kinds() {
    for kind in [
        ErrorKind::NotFound,
        ErrorKind::InvalidInput,
        ErrorKind::Unsupported,
        ErrorKind::QuotaExceeded,
        ErrorKind::PermissionDenied,
        ErrorKind::Conflict,
        ErrorKind::Other,
    ] {
        let (provider, faults, _) = stack(&fixed(100).with_max_attempts(5));
        faults.fail_next(Operation::SetDesiredCapacity, 1, kind);
        let error = provider.set_desired_capacity("web", 3).await.unwrap_err();
        assert_eq!(error.kind(), kind);
        assert_eq!(faults.calls(), 1, "{kind} must not be retried");
    }
}

#[tokio::test(start_paused = true)]
async fn stops_at_max_attempts_with_the_last_error() {
    let (provider, faults, _) = stack(&fixed(10).with_max_attempts(3));
    faults.fail_next(Operation::ListGroups, 10, ErrorKind::Throttled);
    let error = provider.list_groups().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Throttled);
    assert_eq!(error.operation(), "list_groups");
    assert_eq!(faults.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_up_to_the_cap() {
    let retry = fixed(100)
        .with_max_attempts(6)
        .with_max_backoff(Duration::from_millis(500));
    let (provider, faults, clock) = stack(&retry);
    faults.fail_next(Operation::DescribeGroup, 5, ErrorKind::Transient);
    provider
        .describe_group("web")
        .await
        .expect("sixth attempt succeeds");
    let ms: Vec<u128> = clock.gaps().iter().map(Duration::as_millis).collect();
    assert_eq!(ms, vec![100, 200, 400, 500, 500]);
}

#[tokio::test(start_paused = true)]
async fn full_jitter_stays_under_the_cap_and_replays_by_seed() {
    let run = |seed| async move {
        let retry = fixed(100)
            .with_max_attempts(6)
            .with_jitter(Jitter::Full)
            .with_seed(seed);
        let (provider, faults, clock) = stack(&retry);
        faults.fail_next(Operation::DescribeGroup, 5, ErrorKind::Transient);
        provider
            .describe_group("web")
            .await
            .expect("sixth attempt succeeds");
        (clock.gaps(), retry)
    };
    let (a, retry) = run(42).await;
    let (b, _) = run(42).await;
    let (c, _) = run(43).await;
    assert_eq!(a, b, "same seed, same waits");
    assert_ne!(a, c, "another seed, other waits");
    for (i, gap) in a.iter().enumerate() {
        assert!(
            *gap <= retry.backoff_cap(i as u32 + 1),
            "wait {i} = {gap:?} over its cap"
        );
    }
    assert_eq!(a.len(), 5);
}

#[tokio::test(start_paused = true)]
async fn full_jitter_waits_grow_on_average() {
    // Mean of uniform[0, cap] is cap / 2: over many runs the later waits are longer.
    let retry = fixed(100)
        .with_max_attempts(4)
        .with_jitter(Jitter::Full)
        .with_seed(9);
    let mut sums = [Duration::ZERO; 3];
    for _ in 0..200 {
        let (provider, faults, clock) = stack(&retry);
        faults.fail_next(Operation::DescribeGroup, 3, ErrorKind::Transient);
        provider
            .describe_group("web")
            .await
            .expect("fourth attempt succeeds");
        for (sum, gap) in sums.iter_mut().zip(clock.gaps()) {
            *sum += gap;
        }
    }
    let means: Vec<f64> = sums.iter().map(|s| s.as_secs_f64() / 200.0).collect();
    assert!(means[0] < means[1] && means[1] < means[2], "{means:?}");
    assert!(
        (means[2] - 0.2).abs() < 0.04,
        "mean of uniform[0, 400ms] ~ 200ms: {means:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn gives_up_when_the_next_wait_passes_max_elapsed() {
    let retry = fixed(100)
        .with_max_attempts(10)
        .with_max_elapsed(Some(Duration::from_millis(250)));
    let (provider, faults, _) = stack(&retry);
    faults.fail_next(Operation::DescribeGroup, 10, ErrorKind::Transient);
    let started = Instant::now();
    let error = provider.describe_group("web").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transient);
    // Attempt 1, wait 100 ms, attempt 2; the next wait (200 ms) would end at 300 ms > 250 ms.
    assert_eq!(faults.calls(), 2);
    assert_eq!(started.elapsed(), Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn emits_a_retry_event_per_retry() {
    let events = Arc::new(Events::default());
    let retry = fixed(10).with_max_attempts(5).with_events(events.clone());
    let (provider, faults, _) = stack(&retry);
    faults.fail_next(Operation::Activities, 2, ErrorKind::Transient);
    provider
        .activities("web")
        .await
        .expect("third attempt succeeds");
    let seen: Vec<(String, &str, u32)> = events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ProviderEvent::Retry {
                provider,
                operation,
                attempt,
            } => Some((provider.clone(), *operation, *attempt)),
            _ => None,
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("fake".to_owned(), "activities", 2),
            ("fake".to_owned(), "activities", 3)
        ]
    );
}
