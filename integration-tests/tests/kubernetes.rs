//! The Kubernetes provider against a real kube-apiserver (1.20, built from Debian's source by
//! `scripts/servers/kube.sh`, with kube-controller-manager so Deployments get ReplicaSets and
//! Pods; there is no scheduler or kubelet, so Pods stay Pending).
//!
//! Each test works in a namespace of its own. The Cluster API is not installed: the test
//! installs the MachineDeployment and Machine CRDs (with the scale subresource) and plays the
//! part of the MachineSet controller where a check needs one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hoist_core::testkit::{ConformanceTarget, run_conformance};
use hoist_core::{ErrorKind, RemoveInstances, ScalingProvider};
use hoist_integration_tests::hoist_binary;
use hoist_kubernetes::{KubernetesProvider, KubernetesSettings};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use serde_json::json;

fn kubeconfig(var: &str) -> String {
    match std::env::var(var) {
        Ok(path) if !path.is_empty() => path,
        _ => panic!(
            "{var} is not set: this test needs a real kube-apiserver. Run `scripts/test.sh`, which builds and starts one and sets {var}."
        ),
    }
}

async fn admin_client() -> kube::Client {
    let path = kubeconfig("HOIST_TEST_KUBECONFIG");
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

async fn provider(extra: serde_json::Value) -> KubernetesProvider {
    let mut settings = json!({
        "kubeconfig": kubeconfig("HOIST_TEST_KUBECONFIG"),
        "profiles": {
            "small": {"cpu": "100m", "memory": "64Mi"},
            "large": {"cpu": "500m", "memory": "256Mi", "limits": {"memory": "256Mi"}}
        },
        "prices": {"per_vcpu_hour": 0.03, "per_gib_hour": 0.004}
    });
    if let (Some(s), Some(e)) = (settings.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let settings = KubernetesSettings::from_value(&settings).unwrap();
    KubernetesProvider::connect("k8s", settings).await.unwrap()
}

/// A fresh namespace for one test.
async fn namespace(client: &kube::Client, name: &str) -> String {
    let ns = format!("{name}-{}", std::process::id());
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
    )
    .await
    .unwrap();
    ns
}

async fn deployment(
    client: &kube::Client,
    ns: &str,
    name: &str,
    replicas: i32,
    min: u32,
    max: u32,
) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "annotations": {
                "autoscaling.hoist.dev/min-size": min.to_string(),
                "autoscaling.hoist.dev/max-size": max.to_string()
            }
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "app", "image": "registry.invalid/app:1",
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}
                }]}
            }
        }
    }))
    .unwrap();
    api.create(&PostParams::default(), &d).await.unwrap();
}

/// A client, and a fresh namespace (named after `prefix`) holding a Deployment `name` with
/// `replicas` and the bounds `min`..`max` in its annotations.
async fn with_deployment(
    prefix: &str,
    name: &str,
    replicas: i32,
    min: u32,
    max: u32,
) -> (kube::Client, String) {
    let client = admin_client().await;
    let ns = namespace(&client, prefix).await;
    deployment(&client, &ns, name, replicas, min, max).await;
    (client, ns)
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..120 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{what} did not happen within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_passes_the_conformance_suite() {
    let (_, ns) = with_deployment("hoist-conformance", "web", 2, 1, 6).await;
    let group = format!("deployment/{ns}/web");
    // Pod metrics are tested on their own below (another test may install the stand-in API
    // while this one runs).
    let k8s = Arc::new(provider(json!({"pod_metrics": false})).await);
    // The controller manager creates the Pods.
    eventually("two pods", || async {
        k8s.describe_group(&group).await.unwrap().instances.len() == 2
    })
    .await;
    let target = ConformanceTarget::new(k8s.clone().into_provider_set(), &group)
        .with_unknown_group(format!("deployment/{ns}/no-such-deployment"))
        .with_settle(Duration::from_millis(500), 60);
    let report = run_conformance(&target).await;
    println!("{report}");
    report.assert_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_a_deployment_is_read_back_through_the_api() {
    let (client, ns) = with_deployment("hoist-scale", "api", 1, 1, 5).await;
    let group = format!("deployment/{ns}/api");
    let k8s = provider(json!({})).await;

    let g = k8s.describe_group(&group).await.unwrap();
    assert_eq!((g.min_size, g.max_size, g.desired_capacity), (1, 5, 1));
    assert_eq!(g.instance_class, "small");

    k8s.set_desired_capacity(&group, 4).await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let d = deployments.get("api").await.unwrap();
    assert_eq!(d.spec.replicas, Some(4));

    // Out of the annotated bounds: refused, nothing written.
    let e = k8s.set_desired_capacity(&group, 6).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(deployments.get("api").await.unwrap().spec.replicas, Some(4));

    // The vertical move: the pod template's requests change to the profile's.
    k8s.set_instance_class(&group, &hoist_core::ChangeInstanceClass::new("large"))
        .await
        .unwrap();
    let d = deployments.get("api").await.unwrap();
    let resources = d.spec.template.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap();
    assert_eq!(resources.requests.unwrap()["cpu"].0, "500m");
    assert_eq!(resources.limits.unwrap()["memory"].0, "256Mi");
    assert_eq!(
        k8s.describe_group(&group).await.unwrap().instance_class,
        "large"
    );

    // A victim is marked with the lowest deletion cost and removed; the count drops by one.
    eventually("four pods", || async {
        k8s.describe_group(&group).await.unwrap().instances.len() >= 4
    })
    .await;
    let g = k8s.describe_group(&group).await.unwrap();
    let victim = g.instances[0].id.clone();
    k8s.remove_instances(&group, &RemoveInstances::new(vec![victim.clone()]))
        .await
        .unwrap();
    assert_eq!(deployments.get("api").await.unwrap().spec.replicas, Some(3));
    eventually("the victim gone", || async {
        !k8s.describe_group(&group)
            .await
            .unwrap()
            .instances
            .iter()
            .any(|i| i.id == victim && i.state.is_active())
    })
    .await;

    // A deployment that goes away is reported as not found.
    deployments
        .delete("api", &Default::default())
        .await
        .unwrap();
    let e = k8s.describe_group(&group).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(!e.is_retryable());
}

fn crd(kind: &str, plural: &str, scale: bool) -> serde_json::Value {
    let mut subresources = json!({"status": {}});
    if scale {
        subresources["scale"] = json!({
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector"
        });
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.cluster.x-k8s.io")},
        "spec": {
            "group": "cluster.x-k8s.io",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "versions": [{
                "name": "v1beta1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": subresources
            }]
        }
    })
}

/// Installs the Cluster API CRDs the tests need (once; later calls find them).
async fn install_cluster_api(client: &kube::Client) {
    let crds = ApiResource {
        group: "apiextensions.k8s.io".into(),
        version: "v1".into(),
        api_version: "apiextensions.k8s.io/v1".into(),
        kind: "CustomResourceDefinition".into(),
        plural: "customresourcedefinitions".into(),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &crds);
    for (kind, plural, scale) in [
        ("MachineDeployment", "machinedeployments", true),
        ("Machine", "machines", false),
    ] {
        let body = crd(kind, plural, scale);
        let name = body["metadata"]["name"].as_str().unwrap().to_owned();
        api.patch(
            &name,
            &PatchParams::apply("hoist-tests").force(),
            &Patch::Apply(&body),
        )
        .await
        .unwrap();
    }
    // Served once the CRDs are established.
    let md = cluster_api(client, "default", "MachineDeployment", "machinedeployments");
    eventually("the CRDs served", || async {
        md.list(&Default::default()).await.is_ok()
    })
    .await;
}

fn cluster_api(client: &kube::Client, ns: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: "cluster.x-k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "cluster.x-k8s.io/v1beta1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    Api::namespaced_with(client.clone(), ns, &ar)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_api_node_group_scales_with_cluster_autoscaler_annotations() {
    let client = admin_client().await;
    install_cluster_api(&client).await;
    let ns = namespace(&client, "hoist-nodes").await;
    let mds = cluster_api(&client, &ns, "MachineDeployment", "machinedeployments");
    let machines = cluster_api(&client, &ns, "Machine", "machines");
    let annotations = BTreeMap::from([
        (
            "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size",
            "1",
        ),
        (
            "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size",
            "5",
        ),
    ]);
    let md: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "MachineDeployment",
        "metadata": {"name": "workers", "annotations": annotations},
        "spec": {"replicas": 2, "clusterName": "test",
                 "selector": {"matchLabels": {"pool": "workers"}}}
    }))
    .unwrap();
    mds.create(&PostParams::default(), &md).await.unwrap();
    // What the MachineDeployment controller would write: the selector the scale reads.
    mds.patch_status(
        "workers",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"replicas": 2, "selector": "pool=workers"}})),
    )
    .await
    .unwrap();
    for name in ["workers-a", "workers-b"] {
        let m: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Machine",
            "metadata": {"name": name, "labels": {"pool": "workers"}},
            "spec": {"clusterName": "test", "failureDomain": "zone-a"}
        }))
        .unwrap();
        machines.create(&PostParams::default(), &m).await.unwrap();
        machines
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": "Running"}})),
            )
            .await
            .unwrap();
    }

    let group = format!("machinedeployment/{ns}/workers");
    let k8s = provider(json!({})).await;
    let g = k8s.describe_group(&group).await.unwrap();
    assert_eq!((g.min_size, g.max_size, g.desired_capacity), (1, 5, 2));
    assert_eq!(g.ready(), 2, "{g:?}");
    assert_eq!(g.zones, vec!["zone-a".to_owned()]);

    k8s.set_desired_capacity(&group, 4).await.unwrap();
    assert_eq!(
        mds.get("workers").await.unwrap().data["spec"]["replicas"],
        4
    );
    let e = k8s.set_desired_capacity(&group, 6).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");

    // Scale-in marks the victim for the MachineSet controller, then lowers the count.
    k8s.remove_instances(&group, &RemoveInstances::new(vec!["workers-b".to_owned()]))
        .await
        .unwrap();
    let victim = machines.get("workers-b").await.unwrap();
    assert!(
        victim
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("cluster.x-k8s.io/delete-machine")
    );
    let other = machines.get("workers-a").await.unwrap();
    assert!(
        !other
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("cluster.x-k8s.io/delete-machine")
    );
    assert_eq!(
        mds.get("workers").await.unwrap().data["spec"]["replicas"],
        3
    );
    // Not below the annotated minimum.
    let e = k8s
        .remove_instances(
            &group,
            &RemoveInstances::new(vec!["workers-a".to_owned(), "workers-b".to_owned()]),
        )
        .await;
    assert!(e.is_ok() || e.as_ref().unwrap_err().kind() == ErrorKind::InvalidInput);

    // A node group without Cluster Autoscaler's annotations is not scaled.
    let bare: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "MachineDeployment",
        "metadata": {"name": "bare"},
        "spec": {"replicas": 1, "clusterName": "test", "selector": {"matchLabels": {"pool": "bare"}}}
    }))
    .unwrap();
    mds.create(&PostParams::default(), &bare).await.unwrap();
    let e = k8s
        .describe_group(&format!("machinedeployment/{ns}/bare"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("node-group-min-size"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubeconfig_that_points_nowhere_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:9'}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {token: secret-token-value}\n",
    )
    .unwrap();
    let settings = KubernetesSettings::from_value(&json!({"kubeconfig": path})).unwrap();
    let e = KubernetesProvider::connect("k8s", settings)
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("https://127.0.0.1:9"), "{text}");
    assert!(text.contains("check the kubeconfig"), "{text}");
    assert!(!text.contains("secret-token-value"), "{text}");
}

/// `spec.replicas` of Deployment `name` in `ns`, as kubectl reads it.
fn replicas_of(ns: &str, name: &str) -> String {
    kubectl(&[
        "get",
        "deployment",
        name,
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.replicas}",
    ])
}

fn kubectl(args: &[&str]) -> String {
    let kubectl = kubeconfig("HOIST_TEST_KUBECTL");
    let out = std::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig("HOIST_TEST_KUBECONFIG"))
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_role_is_enough_and_nothing_more() {
    let (_, ns) = with_deployment("hoist-rbac", "web", 2, 1, 5).await;
    let group = format!("deployment/{ns}/web");
    let limited = |extra: serde_json::Value| async move {
        let mut settings = json!({"kubeconfig": kubeconfig("HOIST_TEST_KUBECONFIG_LIMITED")});
        settings
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        KubernetesProvider::connect("k8s", KubernetesSettings::from_value(&settings).unwrap())
            .await
            .unwrap()
    };

    // Without the role: refused, as a permission error that is not retried and says where the
    // role is.
    let k8s = limited(json!({})).await;
    let e = k8s.describe_group(&group).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("rbac.yaml"), "{e}");

    // With the shipped ClusterRole bound to the user, every operation works.
    let rbac = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../deploy/kubernetes/rbac.yaml");
    kubectl(&["apply", "-f", &rbac.to_string_lossy()]);
    let binding = format!("hoist-limited-{ns}");
    kubectl(&[
        "create",
        "clusterrolebinding",
        &binding,
        "--clusterrole=hoist",
        "--user=hoist-limited",
    ]);
    eventually("the role in force", || async {
        k8s.describe_group(&group).await.is_ok()
    })
    .await;
    k8s.set_desired_capacity(&group, 3).await.unwrap();
    let replicas = replicas_of(&ns, "web");
    assert_eq!(replicas, "3");
    eventually("three pods", || async {
        k8s.describe_group(&group).await.unwrap().instances.len() == 3
    })
    .await;
    let victim = k8s.describe_group(&group).await.unwrap().instances[0]
        .id
        .clone();
    k8s.remove_instances(&group, &RemoveInstances::new(vec![victim]))
        .await
        .unwrap();
    let replicas = replicas_of(&ns, "web");
    assert_eq!(replicas, "2");

    // Outside the role (reading Secrets): refused, not retried.
    let path = kubeconfig("HOIST_TEST_KUBECONFIG_LIMITED");
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let limited_client = kube::Client::try_from(config).unwrap();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(limited_client, &ns);
    let e = secrets.list(&Default::default()).await.unwrap_err();
    let e = hoist_kubernetes::errors::from_kube(e, "list", "secrets");
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(!e.is_retryable());
    kubectl(&["delete", "clusterrolebinding", &binding]);
}

/// Writes `dir/policy.yaml`: the test cluster as provider `k8s`, `run` (YAML, may be empty),
/// and the group `deployment/NS/web` with `group` (its indented fields). Returns the text.
fn write_policy(dir: &std::path::Path, ns: &str, run: &str, group: &str) -> String {
    let policy = format!(
        "providers:\n  k8s:\n    kubernetes:\n      kubeconfig: {}\n{run}groups:\n  - name: deployment/{ns}/web\n    provider: k8s\n{group}",
        kubeconfig("HOIST_TEST_KUBECONFIG")
    );
    std::fs::write(dir.join("policy.yaml"), &policy).unwrap();
    policy
}

/// `hoist`, to be run in `dir`.
fn hoist_in(dir: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new(hoist_binary());
    command.current_dir(dir);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hoist_plan_and_run_once_scale_a_deployment_read_back_with_kubectl() {
    let (_, ns) = with_deployment("hoist-cli", "web", 2, 1, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        &ns,
        "",
        "    min: 2\n    max: 8\n    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n      - scheduled: { cron: \"* * * * *\", duration: 1h, min: 4 }\n",
    );
    let hoist = |args: &[&str]| hoist_in(dir.path()).args(args).output().unwrap();
    let out = hoist(&["validate", "policy.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = hoist(&["plan", "policy.yaml", "--output", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(plan["groups"][0]["current"], 2, "{plan}");
    assert_eq!(plan["groups"][0]["desired"], 4, "{plan}");
    // A plan changes nothing.
    let replicas = replicas_of(&ns, "web");
    assert_eq!(replicas, "2");

    let out = hoist(&["run", "--once", "policy.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replicas = replicas_of(&ns, "web");
    assert_eq!(replicas, "4");

    // A group that does not exist: a clear error naming it.
    std::fs::write(
        dir.path().join("missing.yaml"),
        policy.replace(
            &format!("deployment/{ns}/web"),
            &format!("deployment/{ns}/nope"),
        ),
    )
    .unwrap();
    let out = hoist(&["plan", "missing.yaml"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("deployment/{ns}/nope")) && text.contains("NotFound"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}

/// The applied actions in an audit log: (time, current, desired).
fn applied(log: &std::path::Path) -> Vec<(String, u64, u64)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["record"] == "decision" && r["outcome"] == "applied")
        .map(|r| {
            (
                r["at"].as_str().unwrap_or_default().to_owned(),
                r["current"].as_u64().unwrap_or_default(),
                r["desired"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_replica_takes_over_when_the_leader_is_killed() {
    let (_, ns) = with_deployment("hoist-ha", "web", 2, 1, 10).await;
    let dir = tempfile::tempdir().unwrap();
    write_policy(
        dir.path(),
        &ns,
        "run:\n  interval: 1s\n",
        "    min: 1\n    max: 8\n    policies:\n      - scheduled: { cron: \"* * * * *\", duration: 1h, min: 5 }\n",
    );
    let replica = |identity: &str| {
        hoist_in(dir.path())
            .args([
                "run",
                "policy.yaml",
                "--no-metrics",
                "--quiet",
                "--leader-elect",
                "--lease-namespace",
                &ns,
                "--lease-duration",
                "4s",
                "--renew-deadline",
                "3s",
                "--retry-period",
                "1s",
                "--identity",
                identity,
                "--audit-log",
                &format!("{identity}.jsonl"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let replicas = || replicas_of(&ns, "web");
    let wait_for = |want: &str| {
        for _ in 0..120 {
            if replicas() == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "replicas did not become {want} within 30 s (now {})",
            replicas()
        );
    };

    let mut a = replica("a");
    wait_for("5");
    let mut b = replica("b");
    std::thread::sleep(Duration::from_secs(2));
    // Drift while both run: only the leader puts it right.
    kubectl(&["scale", "deployment", "web", "-n", &ns, "--replicas=1"]);
    wait_for("5");
    std::thread::sleep(Duration::from_secs(2));

    // The leader dies without a word; the standby takes over within the lease duration.
    a.kill().unwrap();
    a.wait().unwrap();
    let killed_at = chrono::Utc::now();
    kubectl(&["scale", "deployment", "web", "-n", &ns, "--replicas=3"]);
    let started = std::time::Instant::now();
    wait_for("5");
    let took = started.elapsed();
    b.kill().unwrap();
    b.wait().unwrap();
    assert!(
        took < Duration::from_secs(4 + 6),
        "took over after {took:?}"
    );

    let (log_a, log_b) = (
        applied(&dir.path().join("a.jsonl")),
        applied(&dir.path().join("b.jsonl")),
    );
    let all: Vec<&(String, u64, u64)> = log_a.iter().chain(&log_b).collect();
    // Each drift was put right exactly once, by the replica that led at the time.
    assert_eq!(
        all.iter().filter(|r| r.1 == 1).count(),
        1,
        "a: {log_a:?} b: {log_b:?}"
    );
    assert!(log_a.iter().any(|r| r.1 == 1 && r.2 == 5), "a: {log_a:?}");
    assert_eq!(
        all.iter().filter(|r| r.1 == 3).count(),
        1,
        "a: {log_a:?} b: {log_b:?}"
    );
    assert!(log_b.iter().any(|r| r.1 == 3 && r.2 == 5), "b: {log_b:?}");
    // The standby changed nothing while the leader lived.
    for (at, ..) in &log_b {
        let at: chrono::DateTime<chrono::Utc> = at.parse().unwrap();
        assert!(
            at > killed_at,
            "b acted at {at}, before the leader died at {killed_at}: {log_b:?}"
        );
    }
    let standby = std::fs::read_to_string(dir.path().join("b.jsonl")).unwrap();
    assert!(
        standby.contains("\"outcome\":\"standby\"") || log_b.len() == 1,
        "{standby}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utilization_comes_from_pod_metrics_over_cpu_requests() {
    let client = admin_client().await;
    // The test cluster has no metrics-server; a CRD serves the same PodMetrics objects at the
    // same path (metrics.k8s.io/v1beta1 pods), which is all the client reads.
    kubectl_apply_json(&json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": "pods.metrics.k8s.io",
            "annotations": {"api-approved.kubernetes.io": "unapproved, a test stand-in for metrics-server"}
        },
        "spec": {
            "group": "metrics.k8s.io",
            "scope": "Namespaced",
            "names": {"kind": "PodMetrics", "plural": "pods", "singular": "podmetrics", "listKind": "PodMetricsList"},
            "versions": [{
                "name": "v1beta1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
            }]
        }
    }));
    let ns = namespace(&client, "hoist-metrics").await;
    deployment(&client, &ns, "cpu", 2, 1, 6).await;
    let group = format!("deployment/{ns}/cpu");
    let k8s = provider(json!({})).await;
    eventually("two pods", || async {
        k8s.describe_group(&group).await.unwrap().instances.len() == 2
    })
    .await;
    let metrics = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &ns,
        &hoist_kubernetes::metrics::pod_metrics_resource(),
    );
    eventually("the stand-in served", || async {
        metrics.list(&Default::default()).await.is_ok()
    })
    .await;
    let now = chrono::Utc::now();
    for (i, pod) in k8s
        .describe_group(&group)
        .await
        .unwrap()
        .instances
        .iter()
        .enumerate()
    {
        let m: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
            "metadata": {"name": pod.id, "labels": {"app": "cpu"}},
            "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "window": "30s",
            "containers": [{"name": "app", "usage": {"cpu": if i == 0 { "40m" } else { "80m" }, "memory": "10Mi"}}]
        }))
        .unwrap();
        metrics.create(&PostParams::default(), &m).await.unwrap();
    }
    // A provider connected now finds the API served and offers utilisation.
    let k8s = Arc::new(provider(json!({})).await);
    assert!(k8s.offers_pod_metrics());
    let set = k8s.clone().into_provider_set();
    let source = set.metrics.expect("pod metrics offered");
    let query = hoist_core::RangeQuery::new(
        hoist_core::MetricQuery {
            group: group.clone(),
            metric: hoist_core::MetricKind::Utilization,
            expression: None,
        },
        hoist_core::TimeRange {
            start: now - chrono::TimeDelta::minutes(5),
            end: now + chrono::TimeDelta::minutes(1),
        },
        60,
    );
    let series = source.query_range(&query).await.unwrap();
    let sample = series[0].samples[0];
    // (40m + 80m) used over 2 × 100m requested.
    assert!((sample.value - 0.6).abs() < 1e-9, "{sample:?}");
    // Other signals are not in this API.
    let mut latency = query.clone();
    latency.query.metric = hoist_core::MetricKind::LatencyP95;
    let e = source.query_range(&latency).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
}

fn kubectl_apply_json(value: &serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("object.json");
    std::fs::write(&path, value.to_string()).unwrap();
    kubectl(&["apply", "-f", path.to_str().unwrap()]);
}

/// What the MachineSet controller does, for a test cluster without Cluster API: keeps as many
/// Machines as the MachineDeployment's replicas, deleting those marked with
/// `cluster.x-k8s.io/delete-machine` first, and gives new ones a running phase, a zone and a
/// Node of the instance type of the template the MachineDeployment references.
async fn machine_set_controller(
    client: kube::Client,
    ns: String,
    md: String,
    types: BTreeMap<String, String>,
) {
    let mds = cluster_api(&client, &ns, "MachineDeployment", "machinedeployments");
    let machines = cluster_api(&client, &ns, "Machine", "machines");
    let mut next = 0u32;
    loop {
        if let Ok(object) = mds.get(&md).await {
            let replicas = object.data["spec"]["replicas"].as_u64().unwrap_or(0) as usize;
            let template = object.data["spec"]["template"]["spec"]["infrastructureRef"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let list = machines
                .list(&kube::api::ListParams::default().labels(&format!("pool={md}")))
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            let mut live: Vec<&DynamicObject> = list
                .iter()
                .filter(|m| m.metadata.deletion_timestamp.is_none())
                .collect();
            // Marked first, then the newest.
            live.sort_by_key(|m| {
                let marked = m
                    .metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key("cluster.x-k8s.io/delete-machine"));
                (!marked, std::cmp::Reverse(m.metadata.name.clone()))
            });
            if live.len() > replicas {
                for m in &live[..live.len() - replicas] {
                    let _ = machines
                        .delete(m.metadata.name.as_deref().unwrap(), &Default::default())
                        .await;
                }
            }
            for _ in live.len()..replicas {
                next += 1;
                let name = format!("{md}-{next:04}");
                let node = types.get(&template).cloned().unwrap_or_default();
                let m: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Machine",
                    "metadata": {"name": name, "labels": {"pool": md}},
                    "spec": {"clusterName": "test", "failureDomain": "zone-a"}
                }))
                .unwrap();
                if machines.create(&PostParams::default(), &m).await.is_ok() {
                    let _ = machines
                        .patch_status(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(
                                json!({"status": {"phase": "Running", "nodeRef": {"name": node}}}),
                            ),
                        )
                        .await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_api_node_group_passes_the_conformance_suite() {
    let client = admin_client().await;
    install_cluster_api(&client).await;
    let ns = namespace(&client, "hoist-md-conformance").await;
    let md_name = format!("pool-{}", std::process::id());
    // Nodes of two types in the group's zone (cluster-scoped; no kubelet needed to create them).
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let mut node_of_template = BTreeMap::new();
    for (ty, cpu, mem) in [("m5.large", "2", "8Gi"), ("m5.xlarge", "4", "16Gi")] {
        let node = format!("{md_name}-{}", ty.replace('.', "-"));
        let n: k8s_openapi::api::core::v1::Node = serde_json::from_value(json!({
            "metadata": {"name": node, "labels": {
                "node.kubernetes.io/instance-type": ty,
                "topology.kubernetes.io/zone": "zone-a"
            }}
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &n).await.unwrap();
        nodes
            .patch_status(
                &node,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"allocatable": {"cpu": cpu, "memory": mem}}})),
            )
            .await
            .unwrap();
        node_of_template.insert(format!("tmpl-{ty}"), node);
    }
    let mds = cluster_api(&client, &ns, "MachineDeployment", "machinedeployments");
    let md: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "MachineDeployment",
        "metadata": {"name": md_name, "labels": {"hoist-test": md_name}, "annotations": {
            "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size": "1",
            "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size": "5"
        }},
        "spec": {"replicas": 2, "clusterName": "test",
                 "selector": {"matchLabels": {"pool": md_name}},
                 "template": {"spec": {"infrastructureRef": {
                     "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
                     "kind": "DockerMachineTemplate", "name": "tmpl-m5.large"}}}}
    }))
    .unwrap();
    mds.create(&PostParams::default(), &md).await.unwrap();
    mds.patch_status(
        &md_name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"selector": format!("pool={md_name}")}})),
    )
    .await
    .unwrap();
    let controller = tokio::spawn(machine_set_controller(
        client.clone(),
        ns.clone(),
        md_name.clone(),
        node_of_template,
    ));

    let group = format!("machinedeployment/{ns}/{md_name}");
    let k8s = Arc::new(
        provider(json!({
            "pod_metrics": false,
            // Only this test's node group is listed.
            "selector": format!("hoist-test={md_name}"),
            "node_templates": {"m5.large": "tmpl-m5.large", "m5.xlarge": "tmpl-m5.xlarge"},
            "prices": {
                "instance_types": {"m5.large": 0.096, "m5.xlarge": 0.192},
                "per_vcpu_hour": 0.03,
                "per_gib_hour": 0.004
            }
        }))
        .await,
    );
    eventually("two machines", || async {
        k8s.describe_group(&group).await.unwrap().ready() == 2
    })
    .await;
    let listed = k8s.list_groups().await.unwrap();
    assert_eq!(
        listed.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        vec![group.as_str()],
        "the selector leaves only this node group"
    );
    let g = k8s.describe_group(&group).await.unwrap();
    assert_eq!(g.instance_class, "m5.large");
    let target = ConformanceTarget::new(k8s.clone().into_provider_set(), &group)
        .with_unknown_group(format!("machinedeployment/{ns}/no-such-pool"))
        .with_settle(Duration::from_millis(500), 60);
    let report = run_conformance(&target).await;
    controller.abort();
    println!("{report}");
    report.assert_passed();
    // The vertical move pointed the MachineDeployment at the other template and back.
    let md = mds.get(&md_name).await.unwrap();
    assert_eq!(
        md.data["spec"]["template"]["spec"]["infrastructureRef"]["name"],
        "tmpl-m5.large"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_writer_makes_the_provider_read_again_not_overwrite() {
    let (_, ns) = with_deployment("hoist-conflict", "web", 2, 1, 10).await;
    let group = format!("deployment/{ns}/web");
    let k8s = provider(json!({})).await;
    let seen = std::sync::Mutex::new(Vec::new());
    // Between the provider's read and its write, another writer scales the Deployment (once):
    // the write at the stale version is refused with 409, and the provider reads again.
    k8s.update_replicas(&group, |current| {
        let mut seen = seen.lock().unwrap();
        seen.push(current);
        if seen.len() == 1 {
            kubectl(&["scale", "deployment", "web", "-n", &ns, "--replicas=6"]);
        }
        Ok(current + 1)
    })
    .await
    .unwrap();
    // Read again after the conflict (more than once when the Deployment controller's own
    // status write also moved the version on), and every later read saw the other writer's 6.
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 2 && seen[0] == 2, "{seen:?}");
    assert!(seen[1..].iter().all(|&n| n == 6), "{seen:?}");
    let replicas = replicas_of(&ns, "web");
    assert_eq!(
        replicas, "7",
        "the other writer's change was built on, not overwritten"
    );
}
