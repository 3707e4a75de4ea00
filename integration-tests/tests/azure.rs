//! The Azure provider against a strict local fake of the Azure REST API
//! (`scripts/servers/azure_fake.py`, started once per run by `scripts/servers/azure.sh`), through
//! the real `azure_mgmt_compute` client and `azure_core` pipeline.
//!
//! No Azure emulator exists, so the fake serves the documented shapes of exactly the operations
//! the provider uses and refuses what Azure refuses (a missing or wrong `api-version`, a missing
//! or unknown bearer token, capacity beyond the quota, an unknown size, deleting instances that
//! are not in the scale set). Each test seeds a subscription of its own, so tests run in
//! parallel without seeing each other; the fake records every request, which the tests compare
//! with the documented REST API.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use hoist_azure::auth::StaticToken;
use hoist_azure::{AzureProvider, AzureSettings};
use hoist_core::testkit::{ConformanceTarget, run_conformance};
use hoist_core::{
    BillingProvider, CapacityType, CostGranularity, CostQuery, ErrorKind, InstanceCatalog,
    InstanceState, MetricKind, MetricQuery, MetricsSource, RangeQuery, RemoveInstances,
    ScalingProvider, TimeRange,
};
use hoist_integration_tests::{fake_control, hoist_binary, output_text};
use serde_json::{Value, json};

/// The token the fake accepts without a token request (tests that bring their own credential).
const STATIC_TOKEN: &str = "fake-static-token";

fn fake() -> String {
    match std::env::var("HOIST_TEST_AZURE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "HOIST_TEST_AZURE_URL is not set: this test needs the Azure REST fake. Run `scripts/test.sh`, which starts it and sets HOIST_TEST_AZURE_URL."
        ),
    }
}

/// A subscription id of this test's own.
fn subscription() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let nanos = Utc::now().timestamp_subsec_nanos();
    format!(
        "{:08x}-{:04x}-4000-8000-{:012x}",
        std::process::id(),
        n,
        u64::from(nanos)
    )
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn control(method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    fake_control(&fake(), method, path, body).await
}

fn vmss_id(sub: &str, rg: &str, name: &str) -> String {
    format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}"
    )
}

/// Seeds `sub`: scale set `web` (Uniform, Manual upgrades, 2 x Standard_D2s_v5 in zones 1 and
/// 2, bounds 1..6 from its tags, instance 0 protected from scale-in) and `flex` (Flexible, 2 x
/// Standard_F2s_v2, regional), four sizes (one restricted), a core quota, costs, a forecast and
/// an hour of CPU.
async fn seed(sub: &str, change: impl FnOnce(&mut Value)) {
    let now = Utc::now();
    let day = |d: i64| {
        (now - ChronoDuration::days(d))
            .format("%Y-%m-%d")
            .to_string()
    };
    let cpu: Vec<Value> = (1..=6)
        .map(|i| {
            json!([
                (now - ChronoDuration::minutes(60 - i * 8))
                    .format("%Y-%m-%dT%H:%M:00Z")
                    .to_string(),
                40.0 + i as f64
            ])
        })
        .collect();
    let sku = |name: &str, family: &str, vcpus: u32, memory: u32, restricted: bool| {
        json!({"name": name, "family": family, "tier": "Standard", "size": name.trim_start_matches("Standard_"),
               "vcpus": vcpus, "memory_gb": memory, "zones": ["1", "2", "3"], "restricted": restricted,
               "cpu_architecture": "x64", "gpus": 0})
    };
    let mut state = json!({
        "location": "eastus",
        "operation_seconds": 0.2,
        "retry_after_seconds": 0,
        "quota_cores": {"standardDSv5Family": 40, "standardFSv2Family": 16, "standardESv5Family": 100},
        "skus": [
            sku("Standard_D2s_v5", "standardDSv5Family", 2, 8, false),
            sku("Standard_D4s_v5", "standardDSv5Family", 4, 16, false),
            sku("Standard_F2s_v2", "standardFSv2Family", 2, 4, false),
            sku("Standard_E2s_v5", "standardESv5Family", 2, 16, true),
        ],
        "resource_groups": ["web-rg", "other-rg"],
        "scale_sets": [
            {"resource_group": "web-rg", "name": "web", "sku": "Standard_D2s_v5", "capacity": 2,
             "orchestration": "Uniform", "upgrade_policy": "Manual", "zones": ["1", "2"],
             "tags": {"hoist": "enabled", "hoist-min-size": "1", "hoist-max-size": "6"},
             "protected": ["0"]},
            {"resource_group": "web-rg", "name": "flex", "sku": "Standard_F2s_v2", "capacity": 2,
             "orchestration": "Flexible", "upgrade_policy": "Automatic", "zones": [],
             "tags": {"hoist-min-size": "0", "hoist-max-size": "4"}}
        ],
        "costs": [
            {"date": day(1), "cost": 4.8, "currency": "USD", "resource_id": vmss_id(sub, "web-rg", "web"),
             "resource_group": "web-rg", "tags": {"hoist": "enabled"}},
            {"date": day(1), "cost": 1.5, "currency": "USD", "resource_id": vmss_id(sub, "web-rg", "flex"),
             "resource_group": "web-rg", "tags": {}},
            {"date": day(2), "cost": 4.6, "currency": "USD", "resource_id": vmss_id(sub, "web-rg", "web"),
             "resource_group": "web-rg", "tags": {"hoist": "enabled"}}
        ],
        "forecast_per_day": {"amount": 5.0, "currency": "USD"},
        "metrics": {"web": {"Percentage CPU": cpu}}
    });
    change(&mut state);
    control(
        reqwest::Method::PUT,
        &format!("/_fake/subscriptions/{sub}"),
        Some(state),
    )
    .await;
}

async fn state(sub: &str) -> Value {
    control(
        reqwest::Method::GET,
        &format!("/_fake/subscriptions/{sub}"),
        None,
    )
    .await
}

async fn requests(sub: &str) -> Vec<Value> {
    control(
        reqwest::Method::GET,
        &format!("/_fake/requests?subscription={sub}"),
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

fn settings(sub: &str, extra: Value) -> AzureSettings {
    let mut s = json!({
        "subscription_id": sub,
        "resource_group": "web-rg",
        "groups": ["web"],
        "endpoint": fake(),
        "prices": {"endpoint": fake(), "live": true},
        "poll_interval": "50ms",
        "retries": 2,
    });
    if let (Some(s), Some(e)) = (s.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    AzureSettings::from_value(&s).unwrap()
}

fn provider_with(sub: &str, extra: Value, token: &str) -> AzureProvider {
    AzureProvider::with_credential(
        "azure",
        settings(sub, extra),
        StaticToken::credential(token),
    )
    .unwrap()
}

fn provider(sub: &str) -> AzureProvider {
    provider_with(sub, json!({}), STATIC_TOKEN)
}

fn capacity_of(state: &Value, name: &str) -> u64 {
    state["scale_sets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no scale set {name} in {state}"))["capacity"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uniform_scale_set_passes_the_conformance_suite() {
    let sub = subscription();
    seed(&sub, |_| {}).await;
    let azure = Arc::new(provider(&sub));
    azure.refresh_prices().await.unwrap();
    let target = ConformanceTarget::new(azure.into_provider_set(), "web")
        .with_settle(Duration::from_millis(300), 20)
        .with_unknown_group("no-such-set");
    let report = run_conformance(&target).await;
    println!("{report}");
    report.assert_passed();
    // Every request the suite made carried a valid token and the documented api-version.
    for r in requests(&sub).await {
        assert_eq!(r["auth"], "ok", "{r}");
        assert!(r["query"]["api-version"].is_string(), "{r}");
        assert!(r["status"].as_u64().unwrap() < 500, "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_out_sends_the_documented_patch_and_follows_the_operation() {
    let sub = subscription();
    seed(&sub, |_| {}).await;
    let azure = provider(&sub);

    let g = azure.describe_group("web").await.unwrap();
    assert_eq!((g.min_size, g.max_size, g.desired_capacity), (1, 6, 2));
    assert_eq!(g.instance_class, "Standard_D2s_v5");
    assert_eq!(g.zones, vec!["eastus-1", "eastus-2"]);
    assert_eq!(g.instances.len(), 2);
    assert!(
        g.instances
            .iter()
            .all(|i| i.state == InstanceState::Running)
    );
    assert!(
        g.instances
            .iter()
            .any(|i| i.id == "0" && i.protected_from_scale_in)
    );

    azure.set_desired_capacity("web", 4).await.unwrap();
    assert_eq!(capacity_of(&state(&sub).await, "web"), 4);
    let g = azure.describe_group("web").await.unwrap();
    assert_eq!(g.desired_capacity, 4);
    assert_eq!(g.instances.len(), 4);

    let log = requests(&sub).await;
    let base = format!(
        "/subscriptions/{sub}/resourceGroups/web-rg/providers/Microsoft.Compute/virtualMachineScaleSets/web"
    );
    let patch = log
        .iter()
        .find(|r| r["method"] == "PATCH")
        .expect("a PATCH of the scale set");
    assert_eq!(patch["path"], base);
    assert_eq!(patch["query"]["api-version"], "2024-07-01");
    assert_eq!(patch["body"], json!({"sku": {"capacity": 4}}));
    // The operation was followed through its Azure-AsyncOperation URL, not by re-sending the
    // PATCH.
    assert_eq!(log.iter().filter(|r| r["method"] == "PATCH").count(), 1);
    assert!(
        log.iter().any(|r| r["method"] == "GET"
            && r["path"]
                .as_str()
                .unwrap()
                .contains("/providers/Microsoft.Compute/locations/eastus/operations/")),
        "{log:?}"
    );
    let vms = log
        .iter()
        .find(|r| r["path"] == format!("{base}/virtualMachines"))
        .expect("a VM list");
    assert_eq!(vms["query"]["$expand"], "instanceView");

    let activities = azure.activities("web").await.unwrap();
    assert!(
        activities.iter().any(|a| a.done
            && a.description.contains("2 -> 4")
            && a.description.contains("succeeded")),
        "{activities:?}"
    );

    // Out of bounds (the scale set's tags say 1..6): refused before Azure is asked.
    let e = azure.set_desired_capacity("web", 7).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flexible_scale_set_lists_its_vms_through_the_vm_api_and_deletes_by_name() {
    let sub = subscription();
    seed(&sub, |_| {}).await;
    let azure = provider(&sub);
    let g = azure.describe_group("web-rg/flex").await.unwrap();
    assert_eq!(g.desired_capacity, 2);
    assert_eq!(g.zones, vec!["eastus"]);
    assert_eq!(g.instances.len(), 2);
    let victim = g.instances[0].id.clone();
    assert!(victim.starts_with("flex_"), "{victim}");

    azure
        .remove_instances("web-rg/flex", &RemoveInstances::new(vec![victim.clone()]))
        .await
        .unwrap();
    let g = azure.describe_group("web-rg/flex").await.unwrap();
    assert_eq!(g.desired_capacity, 1);
    assert!(g.instances.iter().all(|i| i.id != victim));

    let log = requests(&sub).await;
    let list = log
        .iter()
        .find(|r| r["path"] == format!("/subscriptions/{sub}/resourceGroups/web-rg/providers/Microsoft.Compute/virtualMachines"))
        .expect("a VM list filtered by scale set");
    assert!(
        list["query"]["$filter"]
            .as_str()
            .unwrap()
            .contains(&vmss_id(&sub, "web-rg", "flex")),
        "{list}"
    );
    let delete = log
        .iter()
        .find(|r| r["method"] == "POST" && r["path"].as_str().unwrap().ends_with("/flex/delete"))
        .expect("a delete-instances call");
    assert_eq!(delete["body"], json!({"instanceIds": [victim]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_instances_are_never_removed_and_unknown_ones_are_refused() {
    let sub = subscription();
    seed(&sub, |_| {}).await;
    let azure = provider(&sub);
    let e = azure
        .remove_instances("web", &RemoveInstances::new(vec!["0".to_owned()]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("protected"), "{e}");
    let e = azure
        .remove_instances("web", &RemoveInstances::new(vec!["9".to_owned()]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        !requests(&sub).await.iter().any(|r| r["method"] == "POST"),
        "nothing was deleted"
    );
    assert_eq!(capacity_of(&state(&sub).await, "web"), 2);

    // Instance 1 may go, replaced (no decrement): capacity ends where it was.
    azure
        .remove_instances(
            "web",
            &RemoveInstances::new(vec!["1".to_owned()]).with_decrement(false),
        )
        .await
        .unwrap();
    let g = azure.describe_group("web").await.unwrap();
    assert_eq!(g.desired_capacity, 2);
    assert!(g.instances.iter().all(|i| i.id != "1"));
    assert!(g.instances.iter().any(|i| i.id == "0"));

    // Azure refuses to delete an instance id that is not in the set (the provider checks first,
    // so this asks through the compute client directly, as a stale view would).
    let e = azure
        .compute()
        .delete_instances("web-rg", "web", &["9".to_owned()])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("InvalidParameter"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_refuses_what_azure_refuses() {
    let sub = subscription();
    seed(&sub, |_| {}).await;
    let url = format!("{}{}", fake(), vmss_id(&sub, "web-rg", "web"));
    let ask = |url: String, token: Option<&'static str>| async move {
        let mut r = http().get(url);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let response = r.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        (
            status,
            body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    };
    assert_eq!(
        ask(format!("{url}?api-version=2024-07-01"), None).await,
        (401, "AuthenticationFailed".to_owned())
    );
    assert_eq!(
        ask(url.clone(), Some(STATIC_TOKEN)).await,
        (400, "MissingApiVersionParameter".to_owned())
    );
    assert_eq!(
        ask(format!("{url}?api-version=2019-01-01"), Some(STATIC_TOKEN)).await,
        (400, "InvalidApiVersionParameter".to_owned())
    );
    assert_eq!(
        ask(format!("{url}?api-version=2024-07-01"), Some(STATIC_TOKEN))
            .await
            .0,
        200
    );
    let bad = format!(
        "{}/subscriptions/not-a-guid/resourceGroups/web-rg/providers/Microsoft.Compute/virtualMachineScaleSets/web?api-version=2024-07-01",
        fake()
    );
    assert_eq!(
        ask(bad, Some(STATIC_TOKEN)).await,
        (400, "InvalidSubscriptionId".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_capacity_and_unknown_sizes_map_to_the_kinds_the_engine_reacts_to() {
    let sub = subscription();
    seed(&sub, |s| {
        s["quota_cores"]["standardDSv5Family"] = json!(8);
    })
    .await;
    let azure = provider(&sub);
    // 5 x 2 cores > 8: Azure's QuotaExceeded.
    let e = azure.set_desired_capacity("web", 5).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "{e}");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("QuotaExceeded"), "{e}");

    // A size this subscription may not use in the region: refused as capacity unavailable.
    let e = azure
        .set_instance_class(
            "web",
            &hoist_core::ChangeInstanceClass::new("Standard_E2s_v5"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CapacityUnavailable, "{e}");
    // A size the region does not offer.
    let e = azure
        .set_instance_class(
            "web",
            &hoist_core::ChangeInstanceClass::new("Standard_Nope_v9"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    // Azure's own SkuNotAvailable answer (the size went away between the catalog and the write).
    fault(json!({"subscription": sub, "method": "PATCH", "path_contains": "virtualMachineScaleSets/web",
                 "status": 409, "code": "SkuNotAvailable",
                 "message": "The requested VM size 'Standard_D4s_v5' is currently not available in location 'eastus'.",
                 "times": 1}))
    .await;
    let e = azure
        .set_instance_class(
            "web",
            &hoist_core::ChangeInstanceClass::new("Standard_D4s_v5"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CapacityUnavailable, "{e}");
    assert_eq!(
        azure.describe_group("web").await.unwrap().instance_class,
        "Standard_D2s_v5"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_long_running_operation_is_reported_by_its_code() {
    let sub = subscription();
    seed(&sub, |_| {}).await;
    let azure = provider(&sub);
    control(
        reqwest::Method::POST,
        "/_fake/fail-next-operation",
        Some(json!({"subscription": sub, "code": "AllocationFailed",
                    "message": "Allocation failed. We do not have sufficient capacity for the requested VM size in this region."})),
    )
    .await;
    let e = azure.set_desired_capacity("web", 3).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CapacityUnavailable, "{e}");
    assert!(e.to_string().contains("AllocationFailed"), "{e}");
    assert_eq!(capacity_of(&state(&sub).await, "web"), 2);
    let activities = azure.activities("web").await.unwrap();
    assert!(
        activities.iter().any(|a| a.done
            && a.description.contains("failed")
            && a.description.contains("AllocationFailed")),
        "{activities:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_operation_is_left_to_finish_in_the_background() {
    let sub = subscription();
    seed(&sub, |s| {
        s["operation_seconds"] = json!(2.0);
        s["retry_after_seconds"] = json!(1);
    })
    .await;
    let azure = provider_with(&sub, json!({"operation_wait": "300ms"}), STATIC_TOKEN);
    let started = std::time::Instant::now();
    azure.set_desired_capacity("web", 3).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let running = azure.activities("web").await.unwrap();
    assert!(running.iter().any(|a| !a.done), "{running:?}");
    // Polls honour Retry-After: 1 s apart.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let done = azure.activities("web").await.unwrap();
    assert!(
        done.iter().all(|a| a.done) && done.iter().any(|a| a.description.contains("succeeded")),
        "{done:?}"
    );
    let polls: Vec<f64> = requests(&sub)
        .await
        .iter()
        .filter(|r| r["method"] == "GET" && r["path"].as_str().unwrap().contains("/operations/"))
        .map(|r| r["at"].as_f64().unwrap())
        .collect();
    assert!(!polls.is_empty());
    for pair in polls.windows(2) {
        assert!(
            pair[1] - pair[0] >= 0.9,
            "polls {polls:?} closer than Retry-After"
        );
    }
    assert_eq!(capacity_of(&state(&sub).await, "web"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_are_retried_honouring_retry_after() {
    let sub = subscription();
    seed(&sub, |_| {}).await;
    let azure = provider(&sub);
    fault(json!({"subscription": sub, "method": "GET", "path_contains": "virtualMachineScaleSets/web",
                 "status": 429, "code": "TooManyRequests", "message": "throttled", "retry_after": 1, "times": 1}))
    .await;
    fault(json!({"subscription": sub, "method": "GET", "path_contains": "virtualMachineScaleSets/web/virtualMachines",
                 "status": 503, "code": "ServiceUnavailable", "message": "try again", "times": 1}))
    .await;
    let started = std::time::Instant::now();
    let g = azure.describe_group("web").await.unwrap();
    assert_eq!(g.desired_capacity, 2);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 was not honoured"
    );
    let gets: Vec<Value> = requests(&sub)
        .await
        .into_iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap()
                .ends_with("/virtualMachineScaleSets/web")
        })
        .collect();
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[0]["status"], 429);
    assert!(gets[1]["at"].as_f64().unwrap() - gets[0]["at"].as_f64().unwrap() >= 0.95);

    // Throttled past the retries: a retryable Throttled error for the engine's retry layer.
    // (`retries: 2`: three tries in all, so three faults use them up.)
    fault(
        json!({"subscription": sub, "method": "GET", "path_contains": "virtualMachineScaleSets/web",
                 "status": 429, "code": "TooManyRequests", "message": "throttled", "times": 3}),
    )
    .await;
    let e = azure.describe_group("web").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled, "{e}");
    assert!(e.is_retryable());

    fault(
        json!({"subscription": sub, "path_contains": "virtualMachineScaleSets/web",
                 "status": 500, "code": "InternalServerError", "message": "boom", "times": 3}),
    )
    .await;
    let e = azure.describe_group("web").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_errors_are_not_retried_and_tokens_never_show() {
    let sub = subscription();
    seed(&sub, |_| {}).await;
    let wrong = provider_with(&sub, json!({}), "not-a-token-the-fake-issued");
    let e = wrong.describe_group("web").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("InvalidAuthenticationToken"), "{e}");
    assert!(
        !e.to_string().contains("not-a-token-the-fake-issued"),
        "{e}"
    );
    assert!(!format!("{wrong:?}").contains("not-a-token"), "{wrong:?}");
    // One request only: a 401 is not retried.
    assert_eq!(requests(&sub).await.len(), 1);

    let azure = provider(&sub);
    fault(json!({"subscription": sub, "method": "PATCH", "status": 403, "code": "AuthorizationFailed",
                 "message": "The client does not have authorization to perform action 'Microsoft.Compute/virtualMachineScaleSets/write'.",
                 "times": 1}))
    .await;
    let e = azure.set_desired_capacity("web", 3).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("docs/providers/azure.md"), "{e}");

    // A subscription that does not exist.
    let missing = provider(&subscription());
    let e = missing.describe_group("web").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("SubscriptionNotFound"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_reads_sizes_and_live_prices_with_spot() {
    let sub = subscription();
    seed(&sub, |_| {}).await;
    let azure = provider_with(&sub, json!({"location": "eastus"}), STATIC_TOKEN);
    let classes = azure.instance_classes().await.unwrap();
    let names: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
    assert!(names.contains(&"Standard_D4s_v5"), "{names:?}");
    assert!(
        !names.contains(&"Standard_E2s_v5"),
        "a restricted size is not offered: {names:?}"
    );
    let d2 = classes
        .iter()
        .find(|c| c.name == "Standard_D2s_v5")
        .unwrap();
    assert_eq!((d2.vcpus, d2.memory_mib), (2.0, 8192));
    assert_eq!(d2.family, hoist_core::InstanceFamily::General);
    let on_demand = d2.cheapest(CapacityType::OnDemand).unwrap();
    assert_eq!(on_demand.price.per_hour(), 0.096);
    assert_eq!(on_demand.price.source.kind, "live");
    let spot = d2.cheapest(CapacityType::Spot).unwrap();
    assert_eq!(spot.price.per_hour(), 0.0192);
    assert_eq!(
        d2.offerings
            .iter()
            .filter(|o| o.capacity_type == CapacityType::Spot)
            .count(),
        3
    );
    let price = azure
        .price("Standard_D4s_v5", "eastus-2", CapacityType::OnDemand)
        .await
        .unwrap();
    assert_eq!(price.per_hour(), 0.192);

    // In euros: the API's currency, asked for.
    let euro = provider_with(
        &sub,
        json!({"location": "eastus", "prices": {"endpoint": fake(), "currency": "EUR"}}),
        STATIC_TOKEN,
    );
    euro.refresh_prices().await.unwrap();
    let p = euro
        .price("Standard_D2s_v5", "eastus-1", CapacityType::OnDemand)
        .await
        .unwrap();
    assert_eq!(p.amount.currency.0, "EUR");
    assert!((p.per_hour() - 0.096 * 0.92).abs() < 1e-9, "{p:?}");

    // The Retail Prices API was asked without a token, with the documented filter.
    let log = control(reqwest::Method::GET, "/_fake/requests?prices=1", None).await;
    let asked = log
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "/api/retail/prices")
        .expect("a retail prices request");
    assert_eq!(asked["auth"], "none-needed");
    let filter = asked["query"]["$filter"].as_str().unwrap();
    assert!(
        filter.contains("serviceName eq 'Virtual Machines'")
            && filter.contains("armRegionName eq 'eastus'"),
        "{filter}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_forecast_and_cpu_come_from_cost_management_and_azure_monitor() {
    let sub = subscription();
    seed(&sub, |_| {}).await;
    let azure = provider(&sub);
    let now = Utc::now();
    let range = TimeRange {
        start: now - ChronoDuration::days(3),
        end: now,
    };
    let by_set = azure
        .cost(&CostQuery {
            range,
            granularity: CostGranularity::Daily,
            group_by: Some("group".to_owned()),
        })
        .await
        .unwrap();
    let web: f64 = by_set
        .iter()
        .filter(|e| e.key.as_deref() == Some("web"))
        .map(|e| e.amount.to_f64())
        .sum();
    assert!((web - 9.4).abs() < 1e-9, "{by_set:?}");
    assert!(
        by_set
            .iter()
            .all(|e| e.amount.currency.0 == "USD" && !e.estimated)
    );
    // Only the provider's groups (web, from `groups`) are in scope: flex's cost is not.
    let azure_both = provider_with(&sub, json!({"groups": ["web", "flex"]}), STATIC_TOKEN);
    let total: f64 = azure_both
        .cost(&CostQuery {
            range,
            granularity: CostGranularity::Daily,
            group_by: None,
        })
        .await
        .unwrap()
        .iter()
        .map(|e| e.amount.to_f64())
        .sum();
    assert!((total - 10.9).abs() < 1e-9, "{total}");

    let log = requests(&sub).await;
    let query = log
        .iter()
        .find(|r| {
            r["path"]
                .as_str()
                .unwrap()
                .ends_with("/providers/Microsoft.CostManagement/query")
        })
        .expect("a cost query");
    assert_eq!(query["query"]["api-version"], "2023-11-01");
    assert_eq!(query["body"]["type"], "ActualCost");
    assert_eq!(query["body"]["dataset"]["granularity"], "Daily");

    let forecast = azure
        .forecast(&CostQuery {
            range: TimeRange {
                start: now,
                end: now + ChronoDuration::days(7),
            },
            granularity: CostGranularity::Daily,
            group_by: None,
        })
        .await
        .unwrap();
    assert!(
        !forecast.is_empty() && forecast.iter().all(|e| e.estimated),
        "{forecast:?}"
    );
    let hourly = azure
        .cost(&CostQuery {
            range,
            granularity: CostGranularity::Hourly,
            group_by: None,
        })
        .await
        .unwrap_err();
    assert_eq!(hourly.kind(), ErrorKind::InvalidInput, "{hourly}");

    let cpu = azure
        .query_range(&RangeQuery::new(
            MetricQuery {
                group: "web".to_owned(),
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
    let metrics_call = requests(&sub)
        .await
        .into_iter()
        .find(|r| {
            r["path"]
                .as_str()
                .unwrap()
                .ends_with("/providers/Microsoft.Insights/metrics")
        })
        .expect("an Azure Monitor request");
    assert_eq!(metrics_call["query"]["metricnames"], "Percentage CPU");
    assert_eq!(metrics_call["query"]["aggregation"], "Average");
    assert_eq!(metrics_call["query"]["api-version"], "2023-10-01");

    // A metric the scale set does not have: Azure's BadRequest, as invalid input.
    let e = azure
        .query_range(&RangeQuery::new(
            MetricQuery {
                group: "web".to_owned(),
                metric: MetricKind::Custom("x".into()),
                expression: Some("Maximum(No Such Metric)".into()),
            },
            TimeRange {
                start: now - ChronoDuration::hours(1),
                end: now,
            },
            60,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

// ---- the `hoist` binary against the fake, with the standard credential chain ----

/// `hoist` in `dir`, with a service principal in the environment whose tokens the fake issues.
fn hoist_in(dir: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new(hoist_binary());
    command
        .current_dir(dir)
        .env_remove("AZURE_FEDERATED_TOKEN_FILE")
        .env("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47")
        .env("AZURE_CLIENT_ID", "04b07795-8ddb-461a-bbee-02f9e1bf7b46")
        .env("AZURE_CLIENT_SECRET", "fake-secret")
        .env("AZURE_AUTHORITY_HOST", fake());
    command
}

fn write_policy(dir: &std::path::Path, sub: &str, provider_extra: &str, group: &str) {
    let policy = format!(
        "providers:\n  azure:\n    azure:\n      subscription_id: {sub}\n      resource_group: web-rg\n      endpoint: {url}\n      credential: environment\n      poll_interval: 50ms\n      prices: {{ endpoint: {url} }}\n{provider_extra}groups:\n  - name: web\n    provider: azure\n{group}",
        url = fake()
    );
    std::fs::write(dir.join("policy.yaml"), policy).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hoist_plan_and_run_once_scale_a_scale_set_through_the_credential_chain() {
    let sub = subscription();
    seed(&sub, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    write_policy(
        dir.path(),
        &sub,
        "",
        "    min: 2\n    max: 6\n    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n      - scheduled: { cron: \"* * * * *\", duration: 1h, min: 3 }\n",
    );
    let out = hoist_in(dir.path())
        .args(["validate", "policy.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));

    let out = hoist_in(dir.path())
        .args(["plan", "policy.yaml", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["groups"][0]["current"], 2, "{plan}");
    assert_eq!(plan["groups"][0]["desired"], 3, "{plan}");
    assert_eq!(
        capacity_of(&state(&sub).await, "web"),
        2,
        "a plan changes nothing"
    );
    assert!(!requests(&sub).await.iter().any(|r| r["method"] != "GET"));

    let out = hoist_in(dir.path())
        .args(["run", "--once", "policy.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(capacity_of(&state(&sub).await, "web"), 3);
    let log = requests(&sub).await;
    assert!(
        log.iter().all(|r| r["auth"] == "ok"),
        "every call carried the issued token"
    );
    assert!(
        log.iter()
            .any(|r| r["method"] == "PATCH" && r["body"] == json!({"sku": {"capacity": 3}}))
    );
    assert!(!output_text(&out).contains("fake-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_subscription_id_and_missing_credentials_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let group = "    min: 1\n    max: 3\n    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n";
    write_policy(dir.path(), "my-subscription", "", group);
    let out = hoist_in(dir.path())
        .args(["validate", "policy.yaml"])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("policy.yaml:4") && text.contains("subscription_id") && text.contains("GUID"),
        "{text}"
    );

    let sub = subscription();
    seed(&sub, |_| {}).await;
    write_policy(dir.path(), &sub, "", group);
    let out = hoist_in(dir.path())
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("AZURE_CLIENT_SECRET")
        .env_remove("AZURE_TENANT_ID")
        .args(["plan", "policy.yaml"])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("no Azure credentials") && text.contains("AZURE_CLIENT_ID"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");

    // A wrong client secret: Entra ID refuses it, and the secret is not repeated.
    let out = hoist_in(dir.path())
        .env("AZURE_CLIENT_SECRET", "wrong-secret-value")
        .args(["plan", "policy.yaml"])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("token"), "{text}");
    assert!(!text.contains("wrong-secret-value"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_with_only_a_location_header_is_followed_to_its_end() {
    use hoist_azure::lro::{Accepted, Polling, follow};
    use hoist_azure::rest::Rest;

    let sub = subscription();
    seed(&sub, |_| {}).await;
    let azure = provider(&sub);
    let rest = Rest::new(
        Some(StaticToken::credential(STATIC_TOKEN)),
        format!("{}/.default", fake()),
        2,
        Duration::from_secs(30),
    );
    let polling = Polling {
        interval: Duration::from_millis(50),
        timeout: Duration::from_secs(20),
    };
    let only_location = |a: Accepted| Accepted {
        async_operation: None,
        ..a
    };

    let accepted = azure
        .compute()
        .set_capacity("web-rg", "web", 3)
        .await
        .unwrap();
    assert_eq!(accepted.status, 202);
    assert!(accepted.async_operation.is_some() && accepted.location.is_some());
    follow(
        &rest,
        "set_desired_capacity",
        &only_location(accepted),
        polling,
    )
    .await
    .unwrap();
    assert_eq!(capacity_of(&state(&sub).await, "web"), 3);
    assert!(
        requests(&sub).await.iter().any(|r| r["path"]
            .as_str()
            .unwrap()
            .contains("/operationResults/")
            && r["status"] == 200),
        "the Location URL was polled to its end"
    );

    // A failure seen through the Location URL keeps its code.
    control(
        reqwest::Method::POST,
        "/_fake/fail-next-operation",
        Some(json!({"subscription": sub, "code": "ZonalAllocationFailed", "message": "no capacity in zone 2"})),
    )
    .await;
    let accepted = azure
        .compute()
        .set_capacity("web-rg", "web", 4)
        .await
        .unwrap();
    let e = follow(
        &rest,
        "set_desired_capacity",
        &only_location(accepted),
        polling,
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CapacityUnavailable, "{e}");
    assert_eq!(capacity_of(&state(&sub).await, "web"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_sets_are_discovered_by_tag_and_resized_under_their_upgrade_policy() {
    let sub = subscription();
    seed(&sub, |s| {
        s["scale_sets"].as_array_mut().unwrap().push(json!(
            {"resource_group": "other-rg", "name": "batch", "sku": "Standard_D2s_v5", "capacity": 1,
             "orchestration": "Uniform", "upgrade_policy": "Rolling", "zones": ["1"],
             "tags": {"hoist": "enabled"}}
        ));
    })
    .await;
    // Discovery across the subscription (no resource group): web and batch carry the tag, flex
    // does not.
    let azure = AzureProvider::with_credential(
        "azure",
        AzureSettings::from_value(&json!({
            "subscription_id": sub,
            "endpoint": fake(),
            "tags": {"hoist": "enabled"},
            "prices": {"live": false},
            "poll_interval": "50ms",
        }))
        .unwrap(),
        StaticToken::credential(STATIC_TOKEN),
    )
    .unwrap();
    let mut ids: Vec<String> = azure
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["other-rg/batch", "web-rg/web"]);

    // Rolling upgrade policy: the size changes and Azure rolls the instances; Hoist sends no
    // manual upgrade.
    let activity = azure
        .set_instance_class(
            "other-rg/batch",
            &hoist_core::ChangeInstanceClass::new("Standard_D4s_v5"),
        )
        .await
        .unwrap()
        .expect("an activity");
    assert!(activity.description.contains("Rolling"), "{activity:?}");
    let g = azure.describe_group("other-rg/batch").await.unwrap();
    assert_eq!(g.instance_class, "Standard_D4s_v5");
    let log = requests(&sub).await;
    assert!(
        !log.iter()
            .any(|r| r["path"].as_str().unwrap().ends_with("/manualupgrade"))
    );

    // Manual upgrade policy: Hoist upgrades the instances itself.
    azure
        .set_instance_class(
            "web-rg/web",
            &hoist_core::ChangeInstanceClass::new("Standard_D4s_v5"),
        )
        .await
        .unwrap();
    let g = azure.describe_group("web-rg/web").await.unwrap();
    assert!(
        g.instances
            .iter()
            .all(|i| i.instance_class == "Standard_D4s_v5"),
        "{g:?}"
    );
    let upgrades = requests(&sub)
        .await
        .into_iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with("/web/manualupgrade"))
        .count();
    assert!(upgrades >= 1);
}
