//! The GCP provider against a strict local fake of the Google Cloud REST APIs
//! (`scripts/servers/gcp_fake.py`, started once per run by `scripts/servers/gcp.sh`), reached
//! through the real google-cloud-rust clients with `with_endpoint` and anonymous credentials.
//!
//! No Compute Engine emulator exists, so the fake serves the documented shapes of exactly the
//! operations the provider uses (Compute Engine, the Cloud Billing Catalog, Cloud Monitoring and
//! a BigQuery query over the billing export) and refuses what Compute Engine refuses. Each test
//! seeds a project of its own; the fake records every request, which the tests compare with the
//! documented REST API.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use hoist_core::testkit::{ConformanceTarget, run_conformance};
use hoist_core::{
    BillingProvider, CapacityType, CostGranularity, CostQuery, ErrorKind, InstanceCatalog,
    InstanceState, MetricKind, MetricQuery, MetricsSource, RangeQuery, RemoveInstances,
    ScalingProvider, TimeRange,
};
use hoist_gcp::{GcpProvider, GcpSettings};
use hoist_integration_tests::{fake_control, hoist_binary, output_text};
use serde_json::{Value, json};

fn fake() -> String {
    match std::env::var("HOIST_TEST_GCP_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "HOIST_TEST_GCP_URL is not set: this test needs the Google Cloud REST fake. Run `scripts/test.sh`, which starts it and sets HOIST_TEST_GCP_URL."
        ),
    }
}

/// A project id of this test's own.
fn project() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!("hoist-{:x}-{n}", std::process::id())
}

async fn control(method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    fake_control(&fake(), method, path, body).await
}

const ZONES: [&str; 3] = ["us-central1-a", "us-central1-b", "us-central1-c"];

/// Seeds `project`: zonal group `web` (2 x n2-standard-2 in us-central1-a from template web-v1,
/// whose labels bound it to 1..6), regional group `api` (2 instances over zones a and b), three
/// machine types, a CPU quota, a billing export and CPU series for the instances.
async fn seed(project: &str, change: impl FnOnce(&mut Value)) {
    let now = Utc::now();
    let day = |d: i64| {
        (now - ChronoDuration::days(d))
            .format("%Y-%m-%d")
            .to_string()
    };
    let points: Vec<Value> = (1..=6)
        .map(|i| {
            json!([
                (now - ChronoDuration::minutes(60 - i * 8))
                    .format("%Y-%m-%dT%H:%M:00Z")
                    .to_string(),
                0.40 + i as f64 / 100.0
            ])
        })
        .collect();
    let mut state = json!({
        "operation_seconds": 0.2,
        "zones": {
            "us-central1-a": {"region": "us-central1"},
            "us-central1-b": {"region": "us-central1"},
            "us-central1-c": {"region": "us-central1"}
        },
        "machine_types": [
            {"name": "n2-standard-2", "guestCpus": 2, "memoryMb": 8192, "zones": ZONES},
            {"name": "n2-standard-4", "guestCpus": 4, "memoryMb": 16384, "zones": ZONES},
            {"name": "e2-medium", "guestCpus": 2, "memoryMb": 4096, "isSharedCpu": true, "zones": ZONES}
        ],
        "quota": {"us-central1": {"CPUS": 40}},
        "templates": [
            {"name": "web-v1", "machineType": "n2-standard-2",
             "labels": {"hoist": "enabled", "hoist-min-size": "1", "hoist-max-size": "6"},
             "scheduling": {"provisioningModel": "STANDARD"}},
            {"name": "api-v1", "machineType": "n2-standard-2", "labels": {}}
        ],
        "groups": [
            {"name": "web", "zone": "us-central1-a", "template": "web-v1", "target_size": 2,
             "bounds": {"min": 0, "max": 10}, "autoscaler": false},
            {"name": "api", "region": "us-central1", "zones": ["us-central1-a", "us-central1-b"],
             "template": "api-v1", "target_size": 2, "bounds": {"min": 0, "max": 10}}
        ],
        "billing_export": {
            "table": format!("{project}.billing.gcp_billing_export_v1_0123AB"),
            "rows": [
                {"day": day(1), "service": "Compute Engine", "cost": 12.5, "credits": -0.5,
                 "currency": "USD", "labels": {"hoist": "enabled"}},
                {"day": day(2), "service": "Compute Engine", "cost": 11.0, "credits": 0.0,
                 "currency": "USD", "labels": {"hoist": "enabled"}},
                {"day": day(1), "service": "Cloud Storage", "cost": 3.0, "credits": 0.0,
                 "currency": "USD", "labels": {}}
            ]
        },
        // The fake numbers a project's instances from 1001 on, replacements included: CPU for
        // the first sixty.
        "time_series": {"compute.googleapis.com/instance/cpu/utilization":
            (1001..=1060).map(|id| json!({"instance_id": id.to_string(), "points": points})).collect::<Vec<_>>()}
    });
    change(&mut state);
    control(
        reqwest::Method::PUT,
        &format!("/_fake/projects/{project}"),
        Some(state),
    )
    .await;
}

async fn state(project: &str) -> Value {
    control(
        reqwest::Method::GET,
        &format!("/_fake/projects/{project}"),
        None,
    )
    .await
}

fn target_size(state: &Value, name: &str) -> u64 {
    state["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("no group {name} in {state}"))["target_size"]
        .as_u64()
        .unwrap()
}

async fn requests(project: &str) -> Vec<Value> {
    control(
        reqwest::Method::GET,
        &format!("/_fake/requests?project={project}"),
        None,
    )
    .await
    .as_array()
    .cloned()
    .unwrap_or_default()
}

async fn fault(f: Value) {
    control(reqwest::Method::POST, "/_fake/faults", Some(f)).await;
}

fn settings(project: &str, extra: Value) -> GcpSettings {
    let mut s = json!({
        "project": project,
        "zone": "us-central1-a",
        "groups": ["web"],
        "credentials": "anonymous",
        "endpoint": fake(),
        "poll_interval": "50ms",
        "retries": 2,
    });
    if let (Some(s), Some(e)) = (s.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    GcpSettings::from_value(&s).unwrap()
}

async fn provider_with(project: &str, extra: Value) -> GcpProvider {
    let credentials = google_cloud_auth::credentials::anonymous::Builder::new().build();
    GcpProvider::with_credentials("gcp", settings(project, extra), credentials)
        .await
        .unwrap()
}

async fn provider(project: &str) -> GcpProvider {
    provider_with(project, json!({})).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zonal_group_passes_the_conformance_suite() {
    let p = project();
    seed(&p, |_| {}).await;
    let gcp = Arc::new(provider(&p).await);
    gcp.refresh_prices().await.unwrap();
    let target = ConformanceTarget::new(gcp.into_provider_set(), "web")
        .with_settle(Duration::from_millis(300), 20)
        .with_unknown_group("no-such-group");
    let report = run_conformance(&target).await;
    println!("{report}");
    report.assert_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resizing_sends_the_documented_request_and_follows_the_zone_operation() {
    let p = project();
    seed(&p, |_| {}).await;
    let gcp = provider(&p).await;
    let g = gcp.describe_group("web").await.unwrap();
    assert_eq!((g.min_size, g.max_size, g.desired_capacity), (1, 6, 2));
    assert_eq!(g.instance_class, "n2-standard-2");
    assert_eq!(g.zones, vec!["us-central1-a"]);
    assert_eq!(g.instances.len(), 2);
    assert!(
        g.instances
            .iter()
            .all(|i| i.state == InstanceState::Running && i.zone == "us-central1-a")
    );

    gcp.set_desired_capacity("web", 4).await.unwrap();
    assert_eq!(target_size(&state(&p).await, "web"), 4);
    let g = gcp.describe_group("web").await.unwrap();
    assert_eq!((g.desired_capacity, g.instances.len()), (4, 4));

    let log = requests(&p).await;
    let resize = log
        .iter()
        .find(|r| r["method"] == "POST" && r["path"].as_str().unwrap().ends_with("/resize"))
        .expect("a resize");
    assert_eq!(
        resize["path"],
        format!("/compute/v1/projects/{p}/zones/us-central1-a/instanceGroupManagers/web/resize")
    );
    assert_eq!(resize["query"]["size"], "4");
    assert!(
        resize["query"]["requestId"]
            .as_str()
            .is_some_and(|id| id.len() == 36),
        "{resize}"
    );
    assert!(
        log.iter().any(|r| r["method"] == "GET"
            && r["path"].as_str().unwrap().starts_with(&format!(
                "/compute/v1/projects/{p}/zones/us-central1-a/operations/"
            ))),
        "the zone operation was polled: {log:?}"
    );
    // Instance templates are immutable: read once, however many evaluations.
    let template_reads = log
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap()
                .ends_with("/global/instanceTemplates/web-v1")
        })
        .count();
    assert_eq!(template_reads, 1, "{log:?}");
    let activities = gcp.activities("web").await.unwrap();
    assert!(
        activities
            .iter()
            .any(|a| a.done && a.description.contains("2 -> 4")),
        "{activities:?}"
    );

    let e = gcp.set_desired_capacity("web", 7).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regional_group_spans_its_zones_and_deletes_chosen_instances() {
    let p = project();
    // api's template is a regional one.
    seed(&p, |s| s["templates"][1]["region"] = json!("us-central1")).await;
    let gcp = provider(&p).await;
    let g = gcp.describe_group("us-central1/api").await.unwrap();
    assert_eq!(g.zones, vec!["us-central1-a", "us-central1-b"]);
    assert_eq!(g.max_size, 2000);
    let victim = g.instances[0].id.clone();
    gcp.remove_instances(
        "us-central1/api",
        &RemoveInstances::new(vec![victim.clone()]),
    )
    .await
    .unwrap();
    let g = gcp.describe_group("us-central1/api").await.unwrap();
    assert_eq!(g.desired_capacity, 1);
    assert!(g.instances.iter().all(|i| i.id != victim));
    let log = requests(&p).await;
    let delete = log
        .iter()
        .find(|r| {
            r["path"]
                .as_str()
                .unwrap()
                .ends_with("/regions/us-central1/instanceGroupManagers/api/deleteInstances")
        })
        .expect("a deleteInstances call");
    let sent = delete["body"]["instances"][0].as_str().unwrap();
    assert!(sent.ends_with(&format!("/instances/{victim}")), "{delete}");

    // Not decremented: the group makes a replacement.
    let g = gcp.describe_group("us-central1/api").await.unwrap();
    let other = g.instances[0].id.clone();
    gcp.remove_instances(
        "us-central1/api",
        &RemoveInstances::new(vec![other.clone()]).with_decrement(false),
    )
    .await
    .unwrap();
    assert_eq!(target_size(&state(&p).await, "api"), 1);

    // Compute Engine refuses to delete an instance that is not in the group.
    let mig = gcp.resolve("us-central1/api").await.unwrap();
    let e = gcp
        .compute()
        .delete_instances(
            &mig,
            &[format!(
                "projects/{p}/zones/us-central1-a/instances/not-a-member"
            )],
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");

    // The vertical move on a group with a regional template copies it in its region.
    gcp.set_instance_class(
        "us-central1/api",
        &hoist_core::ChangeInstanceClass::new("n2-standard-4"),
    )
    .await
    .unwrap();
    let g = gcp.describe_group("us-central1/api").await.unwrap();
    assert_eq!(g.instance_class, "n2-standard-4");
    assert!(
        requests(&p).await.iter().any(|r| r["method"] == "POST"
            && r["path"]
                == format!("/compute/v1/projects/{p}/regions/us-central1/instanceTemplates")),
        "a regional template insert"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_stockouts_and_refusals_map_to_the_kinds_the_engine_reacts_to() {
    let p = project();
    seed(&p, |s| {
        s["quota"]["us-central1"]["CPUS"] = json!(12);
        s["groups"].as_array_mut().unwrap().push(json!(
            {"name": "scaled", "zone": "us-central1-b", "template": "api-v1", "target_size": 1,
             "bounds": {"min": 0, "max": 10}, "autoscaler": true}
        ));
    })
    .await;
    let gcp = provider(&p).await;
    // 6 x 2 vCPUs beside api's 4 and scaled's 2: above the 12-CPU quota.
    let e = gcp.set_desired_capacity("web", 6).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "{e}");
    assert!(!e.is_retryable());
    // Outside the sizes Compute Engine allows this group (api's template sets no bounds, so the
    // provider's own check lets 11 through to Compute Engine, which refuses it).
    let e = gcp
        .set_desired_capacity("us-central1/api", 11)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("size"), "{e}");
    // A group with an autoscaler attached cannot be resized.
    let e = gcp
        .set_desired_capacity("us-central1-b/scaled", 2)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    // A stockout while the group creates the instances a resize asks for.
    control(
        reqwest::Method::POST,
        "/_fake/fail-next-operation",
        Some(json!({"project": p, "code": "ZONE_RESOURCE_POOL_EXHAUSTED",
                    "message": "The zone 'projects/x/zones/us-central1-a' does not have enough resources available to fulfill the request."})),
    )
    .await;
    let e = gcp.set_desired_capacity("web", 3).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CapacityUnavailable, "{e}");
    assert!(
        e.to_string().contains("ZONE_RESOURCE_POOL_EXHAUSTED"),
        "{e}"
    );
    // As Compute Engine does it, the resize itself succeeded: the target size is 3 and the
    // instance it could not make stays CREATING with the stockout as its last attempt's error,
    // which the provider reports (and shows as a failed instance).
    assert_eq!(target_size(&state(&p).await, "web"), 3);
    let g = gcp.describe_group("web").await.unwrap();
    assert_eq!(
        g.instances
            .iter()
            .filter(|i| i.state == InstanceState::Failed)
            .count(),
        1,
        "{g:?}"
    );
    // An unknown machine type: refused by the catalog check, and by Compute Engine itself.
    let e = gcp
        .set_instance_class("web", &hoist_core::ChangeInstanceClass::new("n9-mega-64"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let mig = gcp.resolve("web").await.unwrap();
    let template = gcp.compute().template(&mig.template).await.unwrap();
    let e = gcp
        .compute()
        .copy_template(&template, "web-v1-bad", "n9-mega-64")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_are_retried_and_permission_errors_are_not() {
    let p = project();
    seed(&p, |_| {}).await;
    let gcp = provider(&p).await;
    fault(
        json!({"project": p, "method": "GET", "path_contains": "instanceGroupManagers/web",
                 "status": 429, "reason": "rateLimitExceeded", "message": "slow down", "times": 1}),
    )
    .await;
    fault(
        json!({"project": p, "method": "POST", "path_contains": "listManagedInstances",
                 "status": 503, "reason": "backendError", "message": "try again", "times": 1}),
    )
    .await;
    let g = gcp.describe_group("web").await.unwrap();
    assert_eq!(g.desired_capacity, 2);
    let gets = requests(&p)
        .await
        .into_iter()
        .filter(|r| {
            r["method"] == "GET"
                && r["path"]
                    .as_str()
                    .unwrap()
                    .ends_with("/instanceGroupManagers/web")
        })
        .count();
    assert_eq!(gets, 2, "the 429 was retried once");

    // `retries: 2`: three attempts, then the kind.
    fault(
        json!({"project": p, "method": "GET", "path_contains": "instanceGroupManagers/web",
                 "status": 429, "reason": "rateLimitExceeded", "message": "slow down", "times": 3}),
    )
    .await;
    let e = gcp.describe_group("web").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled, "{e}");
    assert!(e.is_retryable());
    fault(
        json!({"project": p, "method": "GET", "path_contains": "instanceGroupManagers/web",
                 "status": 500, "reason": "backendError", "message": "boom", "times": 3}),
    )
    .await;
    let e = gcp.describe_group("web").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    // Compute Engine reports a rate quota as 403 rateLimitExceeded: retried, then Throttled.
    fault(
        json!({"project": p, "method": "GET", "path_contains": "instanceGroupManagers/web",
                 "status": 403, "reason": "rateLimitExceeded", "message": "Rate Limit Exceeded", "times": 1}),
    )
    .await;
    gcp.describe_group("web").await.unwrap();
    fault(
        json!({"project": p, "method": "GET", "path_contains": "instanceGroupManagers/web",
                 "status": 403, "reason": "rateLimitExceeded", "message": "Rate Limit Exceeded", "times": 3}),
    )
    .await;
    let e = gcp.describe_group("web").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled, "{e}");
    assert!(e.is_retryable());

    let before = requests(&p).await.len();
    fault(json!({"project": p, "method": "POST", "path_contains": "/resize",
                 "status": 403, "reason": "forbidden",
                 "message": "Required 'compute.instanceGroupManagers.update' permission for 'projects/x/zones/us-central1-a/instanceGroupManagers/web'",
                 "times": 1}))
    .await;
    let e = gcp.set_desired_capacity("web", 3).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("docs/providers/gcp.md"), "{e}");
    let resizes = requests(&p).await[before..]
        .iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with("/resize"))
        .count();
    assert_eq!(resizes, 1, "a 403 is not retried");

    // A project that does not exist.
    let missing = provider(&project()).await;
    let e = missing.describe_group("web").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vertical_move_copies_the_template_and_rolls_proactively() {
    let p = project();
    seed(&p, |_| {}).await;
    let gcp = provider(&p).await;
    let activity = gcp
        .set_instance_class(
            "web",
            &hoist_core::ChangeInstanceClass::new("n2-standard-4"),
        )
        .await
        .unwrap()
        .expect("an activity");
    assert!(activity.done, "{activity:?}");
    let g = gcp.describe_group("web").await.unwrap();
    assert_eq!(g.instance_class, "n2-standard-4");
    let log = requests(&p).await;
    let insert = log
        .iter()
        .find(|r| {
            r["method"] == "POST"
                && r["path"] == format!("/compute/v1/projects/{p}/global/instanceTemplates")
        })
        .expect("a template insert");
    assert_eq!(insert["body"]["properties"]["machineType"], "n2-standard-4");
    assert_eq!(
        insert["body"]["properties"]["labels"]["hoist"], "enabled",
        "the copy keeps the template's labels"
    );
    let patch = log
        .iter()
        .find(|r| r["method"] == "PATCH")
        .expect("a group patch");
    assert_eq!(patch["body"]["updatePolicy"]["type"], "PROACTIVE");
    assert_eq!(patch["body"]["updatePolicy"]["minimalAction"], "REPLACE");
    assert_eq!(patch["body"]["updatePolicy"]["maxUnavailable"]["fixed"], 0);
    assert!(
        patch["body"]["versions"][0]["instanceTemplate"]
            .as_str()
            .unwrap()
            .contains("web-v1-hoist-n2-standard-4-")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_types_are_priced_from_the_billing_catalog_with_spot() {
    let p = project();
    seed(&p, |_| {}).await;
    let gcp = provider(&p).await;
    gcp.refresh_prices().await.unwrap();
    let classes = gcp.instance_classes().await.unwrap();
    let n2 = classes.iter().find(|c| c.name == "n2-standard-2").unwrap();
    assert_eq!((n2.vcpus, n2.memory_mib), (2.0, 8192));
    let on_demand = n2.cheapest(CapacityType::OnDemand).unwrap();
    assert!((on_demand.price.per_hour() - (2.0 * 0.031611 + 8.0 * 0.004237)).abs() < 1e-9);
    assert_eq!(on_demand.price.source.kind, "live");
    let spot = n2.cheapest(CapacityType::Spot).unwrap();
    assert!((spot.price.per_hour() - (2.0 * 0.00765 + 8.0 * 0.001025)).abs() < 1e-9);
    let shared = classes.iter().find(|c| c.name == "e2-medium").unwrap();
    assert_eq!(shared.family, hoist_core::InstanceFamily::Burstable);
    let price = gcp
        .price("n2-standard-4", "us-central1-b", CapacityType::OnDemand)
        .await
        .unwrap();
    assert!((price.per_hour() - (4.0 * 0.031611 + 16.0 * 0.004237)).abs() < 1e-9);

    let euro = provider_with(&p, json!({"prices": {"currency": "EUR"}})).await;
    euro.refresh_prices().await.unwrap();
    let p_eur = euro
        .price("n2-standard-2", "us-central1-a", CapacityType::OnDemand)
        .await
        .unwrap();
    assert_eq!(p_eur.amount.currency.0, "EUR");

    let log = control(reqwest::Method::GET, "/_fake/requests?catalog=1", None).await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|r| r["path"] == "/v1/services/6F81-5844-456A/skus"),
        "the Cloud Billing Catalog was asked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_comes_from_the_billing_export_and_cpu_from_cloud_monitoring() {
    let p = project();
    seed(&p, |_| {}).await;
    let table = format!("{p}.billing.gcp_billing_export_v1_0123AB");
    let gcp = provider_with(&p, json!({"billing": {"bigquery_table": table}})).await;
    assert!(BillingProvider::capabilities(&gcp).actual_cost);
    let now = Utc::now();
    let range = TimeRange {
        start: now - ChronoDuration::days(3),
        end: now,
    };
    let rows = gcp
        .cost(&CostQuery {
            range,
            granularity: CostGranularity::Daily,
            group_by: None,
        })
        .await
        .unwrap();
    let total: f64 = rows.iter().map(|e| e.amount.to_f64()).sum();
    assert!(
        (total - 23.0).abs() < 1e-9,
        "compute cost plus credits: {rows:?}"
    );
    assert!(
        rows.iter()
            .all(|e| e.amount.currency.0 == "USD" && !e.estimated)
    );
    let by_label = gcp
        .cost(&CostQuery {
            range,
            granularity: CostGranularity::Daily,
            group_by: Some("tag:hoist".into()),
        })
        .await
        .unwrap();
    assert!(
        by_label.iter().all(|e| e.key.as_deref() == Some("enabled")),
        "{by_label:?}"
    );
    let query = requests(&p)
        .await
        .into_iter()
        .find(|r| r["path"] == format!("/bigquery/v2/projects/{p}/queries"))
        .expect("a BigQuery query");
    assert_eq!(query["body"]["useLegacySql"], false);
    assert!(
        query["body"]["query"]
            .as_str()
            .unwrap()
            .contains(&format!("`{table}`"))
    );

    // Without a table: no actual cost, said in the capabilities and by the call.
    let plain = provider(&p).await;
    assert!(!BillingProvider::capabilities(&plain).actual_cost);
    let e = plain
        .cost(&CostQuery {
            range,
            granularity: CostGranularity::Daily,
            group_by: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");

    let cpu = gcp
        .query_range(&RangeQuery::new(
            MetricQuery {
                group: "web".into(),
                metric: MetricKind::Utilization,
                expression: None,
            },
            TimeRange {
                start: now - ChronoDuration::hours(1),
                end: now,
            },
            60,
        ))
        .await
        .unwrap();
    let values: Vec<f64> = cpu[0].samples.iter().map(|s| s.value).collect();
    assert_eq!(values.len(), 6, "{cpu:?}");
    assert!((values[0] - 0.41).abs() < 1e-9, "{values:?}");
    let asked = requests(&p)
        .await
        .into_iter()
        .find(|r| r["path"] == format!("/v3/projects/{p}/timeSeries"))
        .expect("a Cloud Monitoring request");
    let filter = asked["query"]["filter"].as_str().unwrap();
    assert!(
        filter.contains("compute.googleapis.com/instance/cpu/utilization")
            && filter.contains("one_of("),
        "{filter}"
    );
}

// ---- the `hoist` binary against the fake ----

fn write_policy(dir: &std::path::Path, project: &str, credentials: &str, group: &str) {
    let policy = format!(
        "providers:\n  gcp:\n    gcp:\n      project: {project}\n      zone: us-central1-a\n      endpoint: {url}\n      credentials: {credentials}\n      poll_interval: 50ms\ngroups:\n  - name: web\n    provider: gcp\n{group}",
        url = fake()
    );
    std::fs::write(dir.join("policy.yaml"), policy).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hoist_plan_and_run_once_resize_a_managed_instance_group() {
    let p = project();
    seed(&p, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    write_policy(
        dir.path(),
        &p,
        "anonymous",
        "    min: 2\n    max: 6\n    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n      - scheduled: { cron: \"* * * * *\", duration: 1h, min: 3 }\n",
    );
    let hoist = |args: &[&str]| {
        std::process::Command::new(hoist_binary())
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let out = hoist(&["validate", "policy.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let out = hoist(&["plan", "policy.yaml", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["groups"][0]["current"], 2, "{plan}");
    assert_eq!(plan["groups"][0]["desired"], 3, "{plan}");
    assert_eq!(
        target_size(&state(&p).await, "web"),
        2,
        "a plan changes nothing"
    );
    assert!(
        !requests(&p).await.iter().any(|r| r["method"] != "GET"
            && !r["path"]
                .as_str()
                .unwrap()
                .ends_with("/listManagedInstances")),
        "a plan only reads"
    );
    let out = hoist(&["run", "--once", "policy.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(target_size(&state(&p).await, "web"), 3);
    let log = requests(&p).await;
    let resize = log
        .iter()
        .find(|r| {
            r["path"]
                .as_str()
                .unwrap()
                .ends_with("/zones/us-central1-a/instanceGroupManagers/web/resize")
        })
        .expect("hoist run resized the group");
    assert_eq!(resize["method"], "POST");
    assert_eq!(resize["query"]["size"], "3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_project_id_and_missing_credentials_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let group = "    min: 1\n    max: 3\n    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n";
    write_policy(dir.path(), "My_Project", "anonymous", group);
    let out = std::process::Command::new(hoist_binary())
        .current_dir(dir.path())
        .args(["validate", "policy.yaml"])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("policy.yaml:4") && text.contains("project"),
        "{text}"
    );

    let p = project();
    seed(&p, |_| {}).await;
    write_policy(dir.path(), &p, "application_default", group);
    let out = std::process::Command::new(hoist_binary())
        .current_dir(dir.path())
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            dir.path().join("no-such-key.json"),
        )
        .args(["plan", "policy.yaml"])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("no Google Cloud credentials")
            && text.contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}
