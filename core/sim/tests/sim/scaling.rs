//! The simulated cloud's scaling behaviour: boot delay, bounds, quotas, scale-in order,
//! removal, vertical moves and spot interruptions.

use std::time::Duration;

use hoist_api::RemoveInstances;
use hoist_api::{CapacityType, ErrorKind, InstanceState, ScalingProvider};
use hoist_sim::{DemandSpec, Quota, SimGroupSpec, SimulatedCloud};

fn web(min: u32, max: u32, desired: u32) -> SimGroupSpec {
    SimGroupSpec {
        min,
        max,
        desired,
        demand: DemandSpec::Constant(100.0),
        ..SimGroupSpec::new("web")
    }
}

fn cloud(group: SimGroupSpec) -> SimulatedCloud {
    SimulatedCloud::builder().group(group).build().unwrap()
}

#[tokio::test]
async fn new_instances_serve_only_after_the_boot_delay() {
    let c = SimulatedCloud::builder()
        .boot_delay(Duration::from_secs(90))
        .group(web(1, 10, 2))
        .build()
        .unwrap();
    let g = c.describe_group("web").await.unwrap();
    assert_eq!((g.ready(), g.pending(), g.desired_capacity), (2, 0, 2));
    c.set_desired_capacity("web", 5).await.unwrap();
    let g = c.describe_group("web").await.unwrap();
    assert_eq!((g.ready(), g.pending(), g.desired_capacity), (2, 3, 5));
    c.advance(Duration::from_secs(89));
    assert_eq!(c.describe_group("web").await.unwrap().ready(), 2);
    c.advance(Duration::from_secs(1));
    let g = c.describe_group("web").await.unwrap();
    assert_eq!((g.ready(), g.pending()), (5, 0));
    // Launch activity reports completion.
    let acts = c.activities("web").await.unwrap();
    assert!(acts[0].description.contains("Launching 3"), "{acts:?}");
    assert!(acts[0].done);
}

#[tokio::test]
async fn desired_outside_bounds_is_invalid_input_and_unknown_group_not_found() {
    let c = cloud(web(2, 4, 2));
    for bad in [1, 5, 100] {
        let e = c.set_desired_capacity("web", bad).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert_eq!(e.provider(), "sim");
        assert_eq!(e.operation(), "set_desired_capacity");
    }
    assert_eq!(c.describe_group("web").await.unwrap().desired_capacity, 2);
    let e = c.set_desired_capacity("nope", 3).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(
        c.describe_group("nope").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    c.set_desired_capacity("web", 4).await.unwrap();
    c.set_desired_capacity("web", 2).await.unwrap();
}

#[tokio::test]
async fn quota_is_enforced_across_groups() {
    let c = SimulatedCloud::builder()
        .quota(Quota {
            max_instances: Some(6),
            max_vcpus: None,
        })
        .group(web(1, 10, 3))
        .group(SimGroupSpec {
            desired: 2,
            ..SimGroupSpec::new("api")
        })
        .build()
        .unwrap();
    c.set_desired_capacity("web", 4).await.unwrap();
    let e = c.set_desired_capacity("web", 5).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "{e}");
    assert_eq!(c.describe_group("web").await.unwrap().instances.len(), 4);
    // vCPU quota: general.large has 2 vCPUs.
    let c = SimulatedCloud::builder()
        .quota(Quota {
            max_instances: None,
            max_vcpus: Some(8.0),
        })
        .group(web(1, 10, 3))
        .build()
        .unwrap();
    c.set_desired_capacity("web", 4).await.unwrap();
    assert_eq!(
        c.set_desired_capacity("web", 5).await.unwrap_err().kind(),
        ErrorKind::QuotaExceeded
    );
    // Initial capacity above the quota is a configuration error.
    let e = SimulatedCloud::builder()
        .quota(Quota {
            max_instances: Some(2),
            max_vcpus: None,
        })
        .group(web(1, 10, 3))
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
}

#[tokio::test]
async fn scale_in_removes_the_newest_unprotected_instances() {
    let c = cloud(web(0, 10, 2));
    c.advance(Duration::from_secs(10));
    c.set_desired_capacity("web", 4).await.unwrap();
    let g = c.describe_group("web").await.unwrap();
    let ids: Vec<String> = g.instances.iter().map(|i| i.id.clone()).collect();
    // Protect the newest one.
    c.set_scale_in_protection("web", &ids[3], true).unwrap();
    c.set_desired_capacity("web", 2).await.unwrap();
    let left: Vec<String> = c
        .describe_group("web")
        .await
        .unwrap()
        .instances
        .iter()
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(left, vec![ids[0].clone(), ids[3].clone()]);
}

#[tokio::test]
async fn remove_instances_with_and_without_decrement() {
    let c = cloud(web(1, 10, 3));
    let ids: Vec<String> = c
        .describe_group("web")
        .await
        .unwrap()
        .instances
        .iter()
        .map(|i| i.id.clone())
        .collect();
    c.remove_instances("web", &RemoveInstances::new(ids[..1].to_vec()))
        .await
        .unwrap();
    let g = c.describe_group("web").await.unwrap();
    assert_eq!(g.desired_capacity, 2);
    assert_eq!(g.instances.len(), 2);
    assert!(g.instances.iter().all(|i| i.id != ids[0]));
    // Without decrement the removed instance is replaced by a booting one.
    c.remove_instances(
        "web",
        &RemoveInstances::new(ids[1..2].to_vec()).with_decrement(false),
    )
    .await
    .unwrap();
    let g = c.describe_group("web").await.unwrap();
    assert_eq!(g.desired_capacity, 2);
    assert_eq!((g.ready(), g.pending()), (1, 1));
    // Unknown instance: NotFound, nothing removed.
    let e = c
        .remove_instances(
            "web",
            &RemoveInstances::new(vec![ids[2].clone(), "i-nope".to_owned()]),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(c.describe_group("web").await.unwrap().instances.len(), 2);
    // Decrement below min: InvalidInput.
    let all: Vec<String> = c
        .describe_group("web")
        .await
        .unwrap()
        .instances
        .iter()
        .map(|i| i.id.clone())
        .collect();
    let e = c
        .remove_instances("web", &RemoveInstances::new(all))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[tokio::test]
async fn set_instance_class_replaces_instances_over_time() {
    let c = cloud(web(1, 10, 4));
    let act = c
        .set_instance_class(
            "web",
            &hoist_api::ChangeInstanceClass::new("compute.xlarge"),
        )
        .await
        .unwrap()
        .expect("a replacement activity");
    assert!(!act.done);
    assert_eq!(
        c.describe_group("web").await.unwrap().instance_class,
        "compute.xlarge"
    );
    // Batches of 25 % of desired, each waits for the boot delay: 4 batches of 1.
    c.advance(Duration::from_secs(121));
    let g = c.describe_group("web").await.unwrap();
    let new = g
        .instances
        .iter()
        .filter(|i| i.instance_class == "compute.xlarge")
        .count();
    assert!((1..4).contains(&new), "{g:?}");
    c.advance(Duration::from_secs(600));
    let g = c.describe_group("web").await.unwrap();
    assert_eq!(g.instances.len(), 4);
    assert!(
        g.instances
            .iter()
            .all(|i| i.instance_class == "compute.xlarge" && i.state == InstanceState::Running),
        "{g:?}"
    );
    let acts = c.activities("web").await.unwrap();
    let refresh = acts.iter().find(|a| a.id == act.id).unwrap();
    assert!(refresh.done);
    assert_eq!(refresh.progress_percent, Some(100));
    assert_eq!(
        c.set_instance_class("web", &hoist_api::ChangeInstanceClass::new("no.such"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        c.set_instance_class(
            "web",
            &hoist_api::ChangeInstanceClass::new("compute.xlarge")
        )
        .await
        .unwrap(),
        None
    );
}

#[tokio::test]
async fn spot_instances_are_interrupted_at_about_the_configured_rate_and_replaced() {
    let rate = 0.5; // per instance-hour
    let c = SimulatedCloud::builder()
        .seed(11)
        .spot_interruptions_per_hour(rate)
        .group(SimGroupSpec {
            capacity_type: CapacityType::Spot,
            ..web(0, 100, 100)
        })
        .build()
        .unwrap();
    c.advance(Duration::from_secs(10 * 3600));
    let history = c.instance_history("web").unwrap();
    let interrupted = history.iter().filter(|h| h.interrupted).count() as f64;
    // About 100 instances * 10 h * 0.5 /h = 500 (minus the boot gaps of replacements);
    // a Poisson count of 500 has a standard deviation of about 22.
    assert!((420.0..=560.0).contains(&interrupted), "{interrupted}");
    let g = c.describe_group("web").await.unwrap();
    assert_eq!(g.instances.len(), 100, "interrupted instances are replaced");
    assert!(
        g.instances
            .iter()
            .all(|i| i.capacity_type == CapacityType::Spot)
    );
    let acts = c.activities("web").await.unwrap();
    assert!(
        acts.iter()
            .any(|a| a.description.contains("Spot interruption"))
    );
    // Without a rate, nothing is interrupted.
    let calm = SimulatedCloud::builder()
        .group(SimGroupSpec {
            capacity_type: CapacityType::Spot,
            ..web(0, 100, 20)
        })
        .build()
        .unwrap();
    calm.advance(Duration::from_secs(10 * 3600));
    assert!(
        calm.instance_history("web")
            .unwrap()
            .iter()
            .all(|h| !h.interrupted)
    );
}
