//! The conformance suite against the simulated cloud, bare and under every layer.

/// Every check passed (none merely skipped): the simulated cloud declares every capability.
fn assert_all_ran(report: &hoist_api::testkit::ConformanceReport) {
    report.assert_passed();
    let passed = report.passed_names();
    let mut must_run = hoist_api::testkit::check_names();
    must_run.push("scaling.group_restored");
    for name in must_run {
        assert!(passed.contains(&name), "{name} did not pass:\n{report}");
    }
}

mod simulated {
    use std::sync::Arc;
    use std::time::Duration;

    use hoist_api::ErrorKind;
    use hoist_api::events::NoProviderEvents;
    use hoist_api::layers::{
        CircuitBreakerLayer, DryRunLayer, FaultLayer, Jitter, LayerStack, MetricsLayer, Operations,
        RetryLayer, TimeoutLayer,
    };
    use hoist_api::testkit::{ConformanceTarget, run_conformance};
    use hoist_api::{ProviderSet, ScalingProvider};
    use hoist_sim::{SimGroupSpec, SimulatedCloud};

    use super::assert_all_ran;

    /// A cloud with group `web` (min 1, max 6, desired 2) and an hour of history.
    fn cloud() -> SimulatedCloud {
        let cloud = SimulatedCloud::builder()
            .seed(7)
            .boot_delay(Duration::from_secs(60))
            .group(SimGroupSpec {
                min: 1,
                max: 6,
                desired: 2,
                ..SimGroupSpec::new("web")
            })
            .build()
            .expect("a valid simulated cloud");
        cloud.advance(Duration::from_secs(3600));
        cloud
    }

    fn target(cloud: &SimulatedCloud, set: ProviderSet) -> ConformanceTarget {
        ConformanceTarget::new(set, "web")
            .with_clock(cloud.clock())
            .with_settle(Duration::from_secs(90), 3)
    }

    async fn desired(cloud: &SimulatedCloud) -> u32 {
        cloud.describe_group("web").await.unwrap().desired_capacity
    }

    #[tokio::test]
    async fn bare() {
        let cloud = cloud();
        let report = run_conformance(&target(&cloud, cloud.provider_set("sim"))).await;
        assert_all_ran(&report);
        assert_eq!(desired(&cloud).await, 2, "restored");
    }

    #[tokio::test]
    async fn under_dry_run() {
        let cloud = cloud();
        let dry_run = DryRunLayer::new().with_clock(cloud.clock());
        let set = cloud.provider_set("sim").with_layer(&dry_run);
        assert_eq!(set.describe(), "DryRun(sim)");
        let before = cloud.describe_group("web").await.unwrap();
        let report = run_conformance(&target(&cloud, set).with_recorded_writes()).await;
        assert_all_ran(&report);
        let after = cloud.describe_group("web").await.unwrap();
        assert_eq!(after.desired_capacity, before.desired_capacity);
        assert_eq!(after.instance_class, before.instance_class);
        let ids = |g: &hoist_api::ScalingGroup| {
            g.instances
                .iter()
                .filter(|i| i.state.is_active())
                .map(|i| i.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&after), ids(&before), "no instance was touched");
        assert!(dry_run.records().len() >= 4, "{:?}", dry_run.records());
    }

    #[tokio::test]
    async fn under_retry() {
        let cloud = cloud();
        let set = cloud
            .provider_set("sim")
            .with_layer(&RetryLayer::new().with_seed(3));
        let report = run_conformance(&target(&cloud, set)).await;
        assert_all_ran(&report);
    }

    #[tokio::test]
    async fn under_retry_with_retryable_faults() {
        let cloud = cloud();
        let faults = FaultLayer::new(11)
            .with_error_rate(Operations::All, ErrorKind::Transient, 0.25)
            .with_error_rate(Operations::Writes, ErrorKind::Throttled, 0.15);
        let retry = RetryLayer::new()
            .with_seed(11)
            .with_max_attempts(12)
            .with_initial_backoff(Duration::from_millis(1))
            .with_max_backoff(Duration::from_millis(4))
            .with_jitter(Jitter::Full);
        let set = cloud
            .provider_set("sim")
            .with_layer(&faults)
            .with_layer(&retry);
        assert_eq!(set.describe(), "Retry(Fault(sim))");
        let report = run_conformance(&target(&cloud, set)).await;
        assert_all_ran(&report);
        assert!(faults.injected().len() >= 10, "{}", faults.injected().len());
    }

    #[tokio::test]
    async fn under_the_recommended_stack() {
        let cloud = cloud();
        let stack = LayerStack::new()
            .timeout(TimeoutLayer::new(Duration::from_secs(10)))
            .metrics(MetricsLayer::new(Arc::new(NoProviderEvents)))
            .circuit_breaker(CircuitBreakerLayer::new())
            .retry(RetryLayer::new().with_seed(5));
        let set = stack.apply(cloud.provider_set("sim"));
        assert_eq!(
            set.describe(),
            "Retry(CircuitBreaker(Metrics(Timeout(sim))))"
        );
        let report = run_conformance(&target(&cloud, set)).await;
        assert_all_ran(&report);

        let dry_run = DryRunLayer::new().with_clock(cloud.clock());
        let set = stack
            .dry_run(dry_run.clone())
            .apply(cloud.provider_set("sim"));
        assert_eq!(
            set.describe(),
            "DryRun(Retry(CircuitBreaker(Metrics(Timeout(sim)))))"
        );
        let report = run_conformance(&target(&cloud, set).with_recorded_writes()).await;
        assert_all_ran(&report);
        assert!(!dry_run.records().is_empty());
    }
}
