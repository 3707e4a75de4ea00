//! The dry-run layer: reads pass through, writes are validated and recorded but never reach
//! the provider.

use crate::support as layers_support;

use std::sync::Arc;

use hoist_api::layers::{DryRunLayer, Operation, WriteRequest};
use hoist_api::{ErrorKind, ScalingCapabilities};
use layers_support::FakeCloud;

#[tokio::test]
async fn reads_pass_through_and_writes_are_recorded_not_applied() {
    let cloud = FakeCloud::new();
    let dry_run = DryRunLayer::new();
    let set = cloud.provider_set().with_layer(&dry_run);
    let scaling = set.scaling_provider().unwrap();

    let group = scaling.describe_group("web").await.unwrap();
    assert_eq!(
        cloud.calls(Operation::DescribeGroup),
        1,
        "reads reach the provider"
    );
    assert_eq!(group.desired_capacity, 2);

    scaling.set_desired_capacity("web", 4).await.unwrap();
    let victim = group.instances[0].id.clone();
    scaling
        .remove_instances(
            "web",
            &hoist_api::RemoveInstances::new(vec![victim.clone()]),
        )
        .await
        .unwrap();
    assert_eq!(
        scaling
            .set_instance_class("web", &hoist_api::ChangeInstanceClass::new("c.large"))
            .await
            .unwrap(),
        None
    );

    assert_eq!(cloud.write_calls(), 0, "no write may reach the provider");
    assert_eq!(cloud.desired(), 2);
    let after = scaling.describe_group("web").await.unwrap();
    assert_eq!(after, group, "the group is unchanged");

    let records = dry_run.records();
    let requests: Vec<&WriteRequest> = records.iter().map(|r| &r.request).collect();
    assert_eq!(
        requests,
        vec![
            &WriteRequest::SetDesiredCapacity {
                desired: 4,
                previous: 2
            },
            &WriteRequest::RemoveInstances {
                instances: vec![victim],
                decrement: true
            },
            &WriteRequest::SetInstanceClass {
                instance_class: "c.large".to_owned(),
                previous: "c.small".to_owned(),
                disruption: None
            },
        ]
    );
    assert!(
        records
            .iter()
            .all(|r| r.group == "web" && r.provider == "fake")
    );
    assert_eq!(dry_run.take_records().len(), 3);
    assert!(dry_run.records().is_empty());
}

#[tokio::test]
async fn invalid_writes_fail_like_the_provider_and_are_not_recorded() {
    let cloud = FakeCloud::new();
    let dry_run = DryRunLayer::new();
    let set = cloud.provider_set().with_layer(&dry_run);
    let scaling = set.scaling_provider().unwrap();

    let cases = [
        (
            scaling.set_desired_capacity("web", 6).await,
            ErrorKind::InvalidInput,
        ),
        (
            scaling.set_desired_capacity("web", 0).await,
            ErrorKind::InvalidInput,
        ),
        (
            scaling.set_desired_capacity("nope", 2).await,
            ErrorKind::NotFound,
        ),
        (
            scaling
                .remove_instances(
                    "web",
                    &hoist_api::RemoveInstances::new(vec!["i-404".to_owned()])
                        .with_decrement(false),
                )
                .await,
            ErrorKind::NotFound,
        ),
        (
            // desired 2, min 1: removing both with decrement would leave 0.
            scaling
                .remove_instances(
                    "web",
                    &hoist_api::RemoveInstances::new(vec!["i-1".to_owned(), "i-2".to_owned()])
                        .with_decrement(true),
                )
                .await,
            ErrorKind::InvalidInput,
        ),
        (
            scaling
                .set_instance_class("web", &hoist_api::ChangeInstanceClass::new("c.huge"))
                .await
                .map(|_| ()),
            ErrorKind::NotFound,
        ),
    ];
    for (i, (result, kind)) in cases.into_iter().enumerate() {
        let error = result.expect_err(&format!("case {i} must fail"));
        assert_eq!(error.kind(), kind, "case {i}: {error}");
    }
    assert!(dry_run.records().is_empty());
    assert_eq!(cloud.write_calls(), 0);
}

#[tokio::test]
async fn declared_unsupported_writes_are_refused() {
    let cloud = FakeCloud::new().with_capabilities(ScalingCapabilities {
        set_desired_capacity: true,
        remove_instances: false,
        set_instance_class: false,
        activities: true,
    });
    let set = cloud.provider_set().with_layer(&DryRunLayer::new());
    let error = set
        .scaling_provider()
        .unwrap()
        .remove_instances(
            "web",
            &hoist_api::RemoveInstances::new(vec!["i-1".to_owned()]).with_decrement(false),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unsupported);
    let error = set
        .scaling_provider()
        .unwrap()
        .set_instance_class("web", &hoist_api::ChangeInstanceClass::new("c.large"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unsupported);
    assert_eq!(cloud.write_calls(), 0);
}

#[tokio::test]
async fn shows_its_nesting_and_forwards_the_other_traits() {
    let cloud = FakeCloud::new();
    let layer = DryRunLayer::new();
    let scaling = hoist_api::layers::Layer::layer_scaling(&layer, Arc::new(cloud.clone()));
    assert_eq!(scaling.describe(), "DryRun(fake)");
    assert_eq!(scaling.name(), "fake");
    let set = cloud.provider_set().with_layer(&layer);
    let catalog = set.catalog.as_ref().unwrap();
    assert_eq!(catalog.instance_classes().await.unwrap().len(), 2);
    assert_eq!(catalog.instance_class("c.large").await.unwrap().vcpus, 4.0);
    assert_eq!(
        cloud.calls(Operation::InstanceClass),
        1,
        "lookup is forwarded, not emulated"
    );
}
