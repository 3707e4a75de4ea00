//! The conformance suite against the providers in this crate: an in-memory provider, the same
//! wrapped in every layer, and providers with deliberate bugs that the suite must catch.

use crate::support as layers_support;

use std::sync::Arc;
use std::time::Duration;

use hoist_api::ErrorKind;
use hoist_api::events::NoProviderEvents;
use hoist_api::layers::{
    CircuitBreakerLayer, DryRunLayer, FaultLayer, Jitter, MetricsLayer, Operations, RetryLayer,
    TimeoutLayer,
};
use hoist_api::testkit::{ConformanceTarget, Outcome, check_names, run_conformance};
use layers_support::{Bugs, FakeCloud};

/// Checks that must pass (not merely be skipped) on the in-memory provider.
const MUST_RUN: &[&str] = &[
    "scaling.lists_group",
    "scaling.describes_group",
    "scaling.unknown_group_not_found",
    "scaling.sets_desired_within_bounds",
    "scaling.rejects_out_of_bounds",
    "scaling.removes_chosen_instance",
    "scaling.rejects_unknown_instance",
    "scaling.sets_instance_class",
    "scaling.activities",
    "catalog.lists_classes",
    "catalog.lookup",
    "catalog.knows_group_class",
    "billing.prices",
    "billing.cost",
    "billing.forecast",
    "metrics.builtin_kinds",
    "metrics.expressions",
    "scaling.group_restored",
];

fn assert_all_ran(report: &hoist_api::testkit::ConformanceReport) {
    report.assert_passed();
    let passed = report.passed_names();
    for name in MUST_RUN {
        assert!(passed.contains(name), "{name} did not pass:\n{report}");
    }
}

#[tokio::test]
async fn every_check_is_listed() {
    let mut names = check_names();
    names.push("scaling.group_restored");
    let mut expected = MUST_RUN.to_vec();
    names.sort_unstable();
    expected.sort_unstable();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn in_memory_provider_passes() {
    let cloud = FakeCloud::new();
    let report = run_conformance(&ConformanceTarget::new(cloud.provider_set(), "web")).await;
    assert_all_ran(&report);
    assert!(cloud.write_calls() > 0, "the suite must exercise writes");
    assert_eq!(
        cloud.desired(),
        2,
        "the suite must restore desired capacity"
    );
}

#[tokio::test]
async fn passes_under_retry_timeout_breaker_and_metrics() {
    let cloud = FakeCloud::new();
    let set = cloud
        .provider_set()
        .with_layer(&TimeoutLayer::new(Duration::from_secs(5)))
        .with_layer(&MetricsLayer::new(Arc::new(NoProviderEvents)))
        .with_layer(&CircuitBreakerLayer::new())
        .with_layer(&RetryLayer::new().with_seed(1));
    assert_eq!(
        set.describe(),
        "Retry(CircuitBreaker(Metrics(Timeout(fake))))"
    );
    let report = run_conformance(&ConformanceTarget::new(set, "web")).await;
    assert_all_ran(&report);
}

#[tokio::test]
async fn passes_as_dry_run_without_writing() {
    let cloud = FakeCloud::new();
    let dry_run = DryRunLayer::new();
    let set = cloud.provider_set().with_layer(&dry_run);
    let report = run_conformance(&ConformanceTarget::new(set, "web").with_recorded_writes()).await;
    assert_all_ran(&report);
    assert_eq!(cloud.write_calls(), 0, "a dry run must never write");
    assert!(
        !dry_run.records().is_empty(),
        "valid writes must be recorded"
    );
}

#[tokio::test]
async fn passes_with_retryable_faults_under_retry() {
    let cloud = FakeCloud::new();
    let faults = FaultLayer::new(7)
        .with_error_rate(Operations::All, ErrorKind::Transient, 0.2)
        .with_error_rate(Operations::Writes, ErrorKind::Throttled, 0.1);
    let retry = RetryLayer::new()
        .with_seed(7)
        .with_max_attempts(10)
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5))
        .with_jitter(Jitter::Full);
    let set = cloud.provider_set().with_layer(&faults).with_layer(&retry);
    let report = run_conformance(&ConformanceTarget::new(set, "web")).await;
    assert_all_ran(&report);
    assert!(
        faults.injected().len() >= 5,
        "the fault layer should have injected faults, injected {}",
        faults.injected().len()
    );
}

#[tokio::test]
async fn faults_without_retry_fail_the_suite() {
    let cloud = FakeCloud::new();
    let faults = FaultLayer::new(3).with_error_rate(Operations::All, ErrorKind::Transient, 0.5);
    let set = cloud.provider_set().with_layer(&faults);
    let report = run_conformance(&ConformanceTarget::new(set, "web")).await;
    assert!(!report.passed(), "{report}");
    let text = report.to_string();
    assert!(text.contains("injected fault"), "{text}");
}

fn failure<'a>(report: &'a hoist_api::testkit::ConformanceReport, name: &str) -> &'a str {
    match report.outcome(name) {
        Some(Outcome::Failed { message }) => message,
        other => panic!("{name} should fail but is {other:?}:\n{report}"),
    }
}

#[tokio::test]
async fn catches_a_provider_that_ignores_bounds() {
    let cloud = FakeCloud::with_bugs(Bugs {
        ignore_bounds: true,
        ..Bugs::default()
    });
    let report = run_conformance(&ConformanceTarget::new(cloud.provider_set(), "web")).await;
    let message = failure(&report, "scaling.rejects_out_of_bounds");
    assert!(
        message.contains("set_desired_capacity(\"web\", 6)"),
        "{message}"
    );
    assert!(message.contains("invalid_input"), "{message}");
}

#[tokio::test]
async fn catches_a_provider_that_ignores_decrement() {
    let cloud = FakeCloud::with_bugs(Bugs {
        ignore_decrement: true,
        ..Bugs::default()
    });
    let report = run_conformance(&ConformanceTarget::new(cloud.provider_set(), "web")).await;
    let message = failure(&report, "scaling.removes_chosen_instance");
    assert!(message.contains("drops by exactly one"), "{message}");
}

#[tokio::test]
async fn catches_a_provider_with_the_wrong_not_found_kind() {
    let cloud = FakeCloud::with_bugs(Bugs {
        wrong_not_found: true,
        ..Bugs::default()
    });
    let report = run_conformance(&ConformanceTarget::new(cloud.provider_set(), "web")).await;
    let message = failure(&report, "scaling.unknown_group_not_found");
    assert!(
        message.contains("expected an error of kind not_found"),
        "{message}"
    );
}

#[tokio::test]
async fn declared_unsupported_operations_must_be_refused() {
    let cloud = FakeCloud::new().with_capabilities(hoist_api::ScalingCapabilities {
        set_desired_capacity: true,
        remove_instances: false,
        set_instance_class: false,
        activities: false,
    });
    let report = run_conformance(&ConformanceTarget::new(cloud.provider_set(), "web")).await;
    report.assert_passed();
    assert_eq!(
        report.outcome("scaling.rejects_unknown_instance"),
        Some(&Outcome::skipped(
            "the provider declares remove_instances unsupported"
        ))
    );
}
