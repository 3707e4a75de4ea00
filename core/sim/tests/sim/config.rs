//! Building the simulated cloud from a policy file's configuration.

use std::path::Path;
use std::time::Duration;

use hoist_api::{ErrorKind, MetricKind, MetricQuery, MetricsSource, ScalingProvider, TimeRange};
use hoist_sim::{SimulatedCloud, SimulatedCloudConfig};

fn cfg(json: serde_json::Value) -> SimulatedCloudConfig {
    serde_json::from_value(json).unwrap()
}

#[tokio::test]
async fn trace_paths_are_relative_to_the_policy_directory_and_policy_groups_get_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("traces")).unwrap();
    let mut text = String::from("timestamp,value\n");
    for m in 0..120 {
        text.push_str(&format!(
            "2024-05-01T{:02}:{:02}:00Z,{}\n",
            m / 60,
            m % 60,
            10 + m % 7
        ));
    }
    std::fs::write(dir.path().join("traces/demo.csv"), text).unwrap();
    let c = cfg(serde_json::json!({
        "seed": 9,
        "boot_delay": "30s",
        "groups": {
            "web": {
                "work_per_instance": 5,
                "desired": 3,
                "demand": {"trace": "traces/demo.csv", "peak_instances": 4}
            }
        }
    }));
    let bounds = vec![("web".to_owned(), 1, 8), ("worker".to_owned(), 2, 20)];
    let cloud = SimulatedCloud::from_config(&c, dir.path(), &bounds).unwrap();
    assert_eq!(cloud.start_time().to_rfc3339(), "2024-05-01T00:00:00+00:00");
    let groups = cloud.list_groups().await.unwrap();
    let ids: Vec<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, vec!["web", "worker"]);
    assert_eq!((groups[0].min_size, groups[0].max_size), (1, 8));
    assert_eq!(groups[0].desired_capacity, 3);
    assert_eq!(groups[1].desired_capacity, 2);
    assert_eq!(groups[1].tags["hoist.sim/demand"], "generator");
    // Peak 16 -> 4 instances * 5 work/s: factor 1.25.
    assert_eq!(cloud.current_demand("web").unwrap(), Some(12.5));
    cloud.set_desired_capacity("web", 4).await.unwrap();
    cloud.advance(Duration::from_secs(30));
    assert_eq!(cloud.describe_group("web").await.unwrap().ready(), 4);
    cloud.advance(Duration::from_secs(600));
    let q = MetricQuery {
        group: "worker".to_owned(),
        metric: MetricKind::Utilization,
        expression: None,
    };
    let range = TimeRange {
        start: cloud.start_time(),
        end: cloud.now(),
    };
    let s = cloud
        .query_range(&hoist_api::RangeQuery::new(q.clone(), range, 60))
        .await
        .unwrap();
    assert!(!s[0].samples.is_empty());
}

#[test]
fn a_missing_trace_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(serde_json::json!({
        "groups": {"web": {"demand": {"trace": "nowhere/demo.csv", "scale": 2}}}
    }));
    let e = SimulatedCloud::from_config(&c, dir.path(), &[]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let msg = e.to_string();
    assert!(msg.contains("web"), "{msg}");
    assert!(msg.contains("nowhere/demo.csv"), "{msg}");
}

#[test]
fn bad_settings_are_config_errors_that_say_what_is_wrong() {
    let dir = Path::new(".");
    let cases = [
        (
            serde_json::json!({"metric_period": "45s"}),
            "whole multiple of the tick",
        ),
        (
            serde_json::json!({"groups": {"web": {"instance_class": "huge.box"}}}),
            "not in the catalog",
        ),
        (
            serde_json::json!({"groups": {"web": {"min": 5, "max": 2}}}),
            "above max",
        ),
        (
            serde_json::json!({"billing": "per_hour", "billing_minimum": "60s"}),
            "billing_minimum",
        ),
        (
            serde_json::json!({"catalog": [{"name": "x", "family": "weird", "vcpus": 2, "memory_mib": 1024, "price_per_hour": 0.1}]}),
            "unknown family",
        ),
    ];
    for (json, what) in cases {
        let e = SimulatedCloud::from_config(&cfg(json), dir, &[]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains(what), "{e} should say {what}");
    }
}

#[tokio::test]
async fn a_custom_catalog_replaces_the_built_in_one() {
    let c = cfg(serde_json::json!({
        "catalog": [{"name": "tiny", "vcpus": 1, "memory_mib": 512, "price_per_hour": 0.01, "zones": ["z1"]}],
        "groups": {"web": {"instance_class": "tiny", "zones": ["z1"]}}
    }));
    let cloud = SimulatedCloud::from_config(&c, Path::new("."), &[]).unwrap();
    let classes = hoist_api::InstanceCatalog::instance_classes(&cloud)
        .await
        .unwrap();
    assert_eq!(classes.len(), 1);
    assert_eq!(
        classes[0].offerings.len(),
        1,
        "no spot without a spot price"
    );
    assert_eq!(
        cloud.describe_group("web").await.unwrap().instances[0].zone,
        "z1"
    );
}
