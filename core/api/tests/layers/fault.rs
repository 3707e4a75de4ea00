//! The fault layer: deterministic by seed, scripted failures, operation filters, latency.

use crate::support as layers_support;

use std::time::Duration;

use hoist_api::ErrorKind;
use hoist_api::layers::{FaultLayer, Operation, Operations};
use layers_support::FakeCloud;
use tokio::time::Instant;

/// Which of `calls` describe_group calls fail under a 30% transient rate with `seed`.
async fn failures(seed: u64, calls: usize) -> Vec<bool> {
    let cloud = FakeCloud::new();
    let layer = FaultLayer::new(seed).with_error_rate(Operations::All, ErrorKind::Transient, 0.3);
    let set = cloud.provider_set().with_layer(&layer);
    let mut out = Vec::with_capacity(calls);
    for _ in 0..calls {
        out.push(
            set.scaling_provider()
                .unwrap()
                .describe_group("web")
                .await
                .is_err(),
        );
    }
    let failed = out.iter().filter(|f| **f).count() as u32;
    assert_eq!(layer.injected().len() as u32, failed);
    assert_eq!(
        cloud.calls(Operation::DescribeGroup) + failed,
        calls as u32,
        "a failed call never reaches the provider"
    );
    out
}

#[tokio::test]
async fn same_seed_same_faults_other_seed_other_faults() {
    let a = failures(11, 500).await;
    assert_eq!(a, failures(11, 500).await);
    assert_ne!(a, failures(12, 500).await);
    let rate = a.iter().filter(|f| **f).count() as f64 / 500.0;
    assert!((0.24..0.36).contains(&rate), "observed rate {rate}");
}

#[tokio::test]
async fn injected_errors_look_like_provider_errors() {
    let layer = FaultLayer::new(1);
    let set = FakeCloud::new().provider_set().with_layer(&layer);
    layer.fail_next(Operation::ListGroups, 1, ErrorKind::Throttled);
    let error = set
        .scaling_provider()
        .unwrap()
        .list_groups()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Throttled);
    assert!(error.is_retryable());
    assert_eq!(error.provider(), "fake");
    assert_eq!(error.operation(), "list_groups");
    layer.fail_next(Operation::ListGroups, 1, ErrorKind::NotFound);
    assert!(
        !set.scaling_provider()
            .unwrap()
            .list_groups()
            .await
            .unwrap_err()
            .is_retryable()
    );
}

#[tokio::test]
async fn scripted_failures_hit_exactly_the_next_n_matching_calls() {
    let cloud = FakeCloud::new();
    let layer = FaultLayer::new(1);
    let set = cloud.provider_set().with_layer(&layer);
    layer.fail_next(Operations::Writes, 2, ErrorKind::Conflict);

    // Reads are not selected.
    set.scaling_provider()
        .unwrap()
        .describe_group("web")
        .await
        .unwrap();
    let catalog = set.catalog.as_ref().unwrap();
    catalog.instance_classes().await.unwrap();

    for _ in 0..2 {
        let error = set
            .scaling_provider()
            .unwrap()
            .set_desired_capacity("web", 3)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Conflict);
    }
    set.scaling_provider()
        .unwrap()
        .set_desired_capacity("web", 3)
        .await
        .unwrap();
    assert_eq!(cloud.desired(), 3);
    let injected = layer.injected();
    assert_eq!(injected.len(), 2);
    assert!(
        injected
            .iter()
            .all(|f| f.scripted && f.operation == Operation::SetDesiredCapacity)
    );
}

#[tokio::test]
async fn rate_one_fails_every_selected_call_and_only_those() {
    let layer = FaultLayer::new(5).with_error_rate(
        Operations::Only(vec![Operation::Price, Operation::QueryRange]),
        ErrorKind::Transient,
        1.0,
    );
    let set = FakeCloud::new().provider_set().with_layer(&layer);
    let billing = set.billing.as_ref().unwrap();
    assert!(
        billing
            .price("c.small", "z1", hoist_api::CapacityType::OnDemand)
            .await
            .is_err()
    );
    assert!(set.scaling_provider().unwrap().list_groups().await.is_ok());
    assert!(
        set.catalog
            .as_ref()
            .unwrap()
            .instance_classes()
            .await
            .is_ok()
    );
}

#[tokio::test(start_paused = true)]
async fn latency_is_drawn_from_the_range() {
    let layer = FaultLayer::new(3).with_latency(
        Operation::DescribeGroup,
        Duration::from_millis(200),
        Duration::from_millis(300),
    );
    let set = FakeCloud::new().provider_set().with_layer(&layer);
    let mut seen = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        set.scaling_provider()
            .unwrap()
            .describe_group("web")
            .await
            .unwrap();
        seen.push(started.elapsed());
    }
    assert!(
        seen.iter()
            .all(|d| *d >= Duration::from_millis(200) && *d <= Duration::from_millis(300)),
        "{seen:?}"
    );
    assert!(seen.windows(2).any(|w| w[0] != w[1]), "latency varies");
    let started = Instant::now();
    set.scaling_provider().unwrap().list_groups().await.unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "other operations are not delayed"
    );
}
