//! Graceful scale-in of workloads, for groups with a drain period (the policy's `drain:`).
//!
//! On Kubernetes a Pod drains when it is deleted: it leaves its Services' endpoints (it takes no
//! new work) and gets SIGTERM, then has its pod template's `terminationGracePeriodSeconds`
//! (30 s when unset) to finish what it has before it is killed. So for a workload with a drain:
//!
//! - before lowering the replica count, the provider chooses the Pods to go and sets
//!   [`POD_DELETION_COST`] on them to the lowest cost, so the
//!   ReplicaSet controller (1.22 and later) deletes them first: the Pods that serve least, those
//!   not running and ready, then the newest (the latest created, whose caches are coldest).
//!   The annotation steers Deployments and ReplicaSets; a StatefulSet always removes its highest
//!   ordinals, and a custom resource's controller decides on its own;
//! - the provider warns, once per group, when the pod template's termination grace period is
//!   shorter than the drain, since Pods are then killed before their drain ends, naming the field
//!   to raise (`spec.template.spec.terminationGracePeriodSeconds`).
//!
//! Cluster API node groups are not affected: a Machine's drain is the MachineDeployment's
//! `nodeDrainTimeout`.

use std::time::Duration;

use hoist_api::Result;
use hoist_api::duration::format_duration;
use hoist_api::model::{InstanceState, ScalingGroup};
use kube::Api;
use kube::core::{ApiResource, DynamicObject};
use serde_json::Value;

use crate::target::{GroupKind, GroupRef, Target};
use crate::{KubernetesProvider, POD_DELETION_COST};

/// The pod template field that bounds how long a deleted Pod may drain.
pub const GRACE_FIELD: &str = "spec.template.spec.terminationGracePeriodSeconds";

/// Kubernetes' termination grace period when the pod template sets none, seconds.
pub const DEFAULT_GRACE_SECONDS: i64 = 30;

/// The termination grace period of `object`'s pod template, seconds: its
/// `terminationGracePeriodSeconds`, or Kubernetes' default when the template sets none. `None`
/// when the object has no pod template (a custom resource of another shape).
pub fn grace_period_seconds(object: &DynamicObject) -> Option<i64> {
    let spec = object.data.pointer("/spec/template/spec")?;
    Some(
        spec.get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(DEFAULT_GRACE_SECONDS),
    )
}

/// The `n` Pods of `group` to remove first: not running (pending, failed) before running, then
/// the newest first; Pods already terminating are not chosen.
pub fn drain_victims(group: &ScalingGroup, n: usize) -> Vec<String> {
    let mut candidates: Vec<_> = group
        .instances
        .iter()
        .filter(|i| {
            !matches!(
                i.state,
                InstanceState::Terminating | InstanceState::Terminated
            )
        })
        .collect();
    candidates.sort_by(|a, b| {
        let serving = |s: InstanceState| s == InstanceState::Running;
        serving(a.state)
            .cmp(&serving(b.state))
            .then(b.launched_at.cmp(&a.launched_at))
            .then(b.id.cmp(&a.id))
    });
    candidates
        .into_iter()
        .take(n)
        .map(|i| i.id.clone())
        .collect()
}

impl KubernetesProvider {
    /// Drains Pods of workload `group` for `drain` when it scales in (see [the module](self));
    /// zero removes the drain. Fails when `group` is not a `KIND/NAMESPACE/NAME` address.
    pub fn with_drain(mut self, group: &str, drain: Duration) -> Result<Self> {
        let key = GroupRef::parse(group)?.to_string();
        if drain.is_zero() {
            self.drains.remove(&key);
        } else {
            self.drains.insert(key, drain);
        }
        Ok(self)
    }

    /// The drain of the group `target`, when it has one.
    pub(crate) fn drain_of(&self, target: &Target) -> Option<Duration> {
        self.drains.get(&target.id()).copied()
    }

    /// Warns, once per group, when `object`'s pod template lets a Pod drain for less than the
    /// group's drain.
    pub(crate) fn check_grace_period(&self, target: &Target, object: &DynamicObject) {
        if target.kind != GroupKind::Workload {
            return;
        }
        let (Some(drain), Some(grace)) = (self.drain_of(target), grace_period_seconds(object))
        else {
            return;
        };
        if u128::try_from(grace).unwrap_or(0) * 1_000 >= drain.as_millis() {
            return;
        }
        let id = target.id();
        let first = self
            .grace_warned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone());
        if first {
            tracing::warn!(
                provider = %self.name,
                group = %id,
                field = GRACE_FIELD,
                grace_seconds = grace,
                drain = %format_duration(drain),
                "the pod template's termination grace period is shorter than the group's drain: a Pod is killed before its drain ends; raise {GRACE_FIELD} to at least the drain"
            );
        }
    }

    /// Before workload `group` drops by `n` Pods: marks the Pods to go first with the lowest
    /// deletion cost. Does nothing where the cluster's controller ignores the cost.
    pub(crate) async fn mark_drain_victims(
        &self,
        target: &Target,
        group: &ScalingGroup,
        n: u32,
    ) -> Result<Vec<String>> {
        let steerable = matches!(target.resource.kind.as_str(), "Deployment" | "ReplicaSet");
        if !self.deletion_cost || !steerable || n == 0 {
            return Ok(Vec::new());
        }
        let pods: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &target.reference.namespace,
            &ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&()),
        );
        let victims = drain_victims(group, n as usize);
        for pod in &victims {
            self.annotate(&pods, "pod", pod, POD_DELETION_COST, &i32::MIN.to_string())
                .await?;
        }
        tracing::info!(provider = %self.name, group = %target.id(), pods = ?victims, "pods marked to be removed first");
        Ok(victims)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use chrono::{TimeZone, Utc};
    use hoist_api::model::{CapacityType, Instance};
    use hoist_api::provider::ScalingProvider;
    use kube::Client;
    use kube::client::Body;
    use serde_json::json;

    use super::*;
    use crate::KubernetesSettings;

    const GROUP: &str = "deployment/default/web";

    fn pod(name: &str, state: InstanceState, minute: u32) -> Instance {
        Instance {
            id: name.to_owned(),
            instance_class: String::new(),
            zone: String::new(),
            capacity_type: CapacityType::OnDemand,
            state,
            launched_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, 0).unwrap(),
            protected_from_scale_in: false,
        }
    }

    fn group(instances: Vec<Instance>) -> ScalingGroup {
        ScalingGroup {
            id: GROUP.to_owned(),
            min_size: 0,
            max_size: 10,
            desired_capacity: instances.len() as u32,
            instance_class: String::new(),
            zones: Vec::new(),
            instances,
            tags: Default::default(),
        }
    }

    #[test]
    fn victims_are_pods_not_serving_then_the_newest() {
        let g = group(vec![
            pod("old", InstanceState::Running, 1),
            pod("new", InstanceState::Running, 9),
            pod("mid", InstanceState::Running, 5),
            pod("booting", InstanceState::Pending, 2),
            pod("leaving", InstanceState::Terminating, 10),
        ]);
        assert_eq!(drain_victims(&g, 1), ["booting"]);
        assert_eq!(drain_victims(&g, 3), ["booting", "new", "mid"]);
        assert_eq!(
            drain_victims(&g, 9).len(),
            4,
            "a terminating pod is never chosen"
        );
    }

    #[test]
    fn the_grace_period_is_the_templates_or_kubernetes_default() {
        let object = |spec: Value| -> DynamicObject {
            serde_json::from_value(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": spec,
            }))
            .unwrap()
        };
        let set = object(json!({"template": {"spec": {"terminationGracePeriodSeconds": 600}}}));
        assert_eq!(grace_period_seconds(&set), Some(600));
        let unset = object(json!({"template": {"spec": {"containers": []}}}));
        assert_eq!(grace_period_seconds(&unset), Some(DEFAULT_GRACE_SECONDS));
        assert_eq!(grace_period_seconds(&object(json!({"replicas": 2}))), None);
    }

    /// What the scripted API server holds and was asked.
    #[derive(Debug, Default)]
    struct Cluster {
        replicas: i64,
        grace: Option<i64>,
        /// Pod name to its deletion cost annotation.
        costs: HashMap<String, String>,
        /// Method and path of every request, in order.
        requests: Vec<(String, String)>,
    }

    fn pod_json(name: &str, minute: u32) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": name, "namespace": "default", "labels": {"app": "web"},
                "creationTimestamp": format!("2026-01-01T00:{minute:02}:00Z"),
            },
            "spec": {"containers": [{"name": "app", "image": "app"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        })
    }

    fn answer(cluster: &Mutex<Cluster>, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        let mut c = cluster.lock().unwrap();
        c.requests.push((method.to_owned(), path.to_owned()));
        let deployments = "/apis/apps/v1/namespaces/default/deployments/web";
        let path_only = path.split('?').next().unwrap_or(path);
        match (method, path_only) {
            ("GET", p) if p == deployments => {
                let mut spec = json!({"containers": [{"name": "app", "image": "app"}]});
                if let Some(grace) = c.grace {
                    spec["terminationGracePeriodSeconds"] = json!(grace);
                }
                (
                    200,
                    json!({
                        "apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"},
                        "spec": {"replicas": c.replicas, "template": {"spec": spec}},
                    }),
                )
            }
            ("GET", p) if p == format!("{deployments}/scale") => (
                200,
                json!({
                    "apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"},
                    "spec": {"replicas": c.replicas},
                    "status": {"replicas": c.replicas, "selector": "app=web"},
                }),
            ),
            ("PUT", p) if p == format!("{deployments}/scale") => {
                let scale: Value = serde_json::from_slice(body).unwrap();
                c.replicas = scale["spec"]["replicas"].as_i64().unwrap();
                (200, scale)
            }
            ("GET", "/api/v1/namespaces/default/pods") => (
                200,
                json!({
                    "apiVersion": "v1", "kind": "PodList", "metadata": {},
                    "items": [pod_json("web-a", 1), pod_json("web-b", 3), pod_json("web-c", 2)],
                }),
            ),
            ("PATCH", p) if p.starts_with("/api/v1/namespaces/default/pods/") => {
                let name = p.rsplit('/').next().unwrap().to_owned();
                let patch: Value = serde_json::from_slice(body).unwrap();
                let cost = patch["metadata"]["annotations"][POD_DELETION_COST]
                    .as_str()
                    .unwrap()
                    .to_owned();
                c.costs.insert(name.clone(), cost);
                (200, pod_json(&name, 0))
            }
            _ => (
                404,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": format!("{method} {path}")}),
            ),
        }
    }

    /// A provider whose client talks to a scripted API server holding one Deployment of three
    /// ready Pods (`web-b` the newest, then `web-c`, then `web-a`).
    fn provider(replicas: i64, grace: Option<i64>) -> (KubernetesProvider, Arc<Mutex<Cluster>>) {
        let cluster = Arc::new(Mutex::new(Cluster {
            replicas,
            grace,
            ..Cluster::default()
        }));
        let state = cluster.clone();
        let service = tower::service_fn(move |request: http::Request<Body>| {
            let state = state.clone();
            async move {
                let method = request.method().to_string();
                let path = request
                    .uri()
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let body = http_body_util::BodyExt::collect(request.into_body())
                    .await?
                    .to_bytes();
                let (status, reply) = answer(&state, &method, &path, &body);
                let response = http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap();
                Ok::<_, kube::Error>(response)
            }
        });
        let client = Client::new(service, "default");
        let target = Target {
            reference: GroupRef::parse(GROUP).unwrap(),
            resource: ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&()),
            kind: GroupKind::Workload,
        };
        let provider = KubernetesProvider {
            name: "k8s".to_owned(),
            client,
            settings: KubernetesSettings::default(),
            server: "mock".to_owned(),
            targets: tokio::sync::Mutex::new(HashMap::from([(GROUP.to_owned(), target)])),
            pod_metrics: false,
            deletion_cost: true,
            drains: HashMap::new(),
            grace_warned: Mutex::new(Default::default()),
        };
        (provider, cluster)
    }

    fn requests(cluster: &Mutex<Cluster>) -> Vec<String> {
        cluster
            .lock()
            .unwrap()
            .requests
            .iter()
            .map(|(m, p)| format!("{m} {}", p.split('?').next().unwrap_or(p)))
            .collect()
    }

    #[tokio::test]
    async fn with_a_drain_the_pods_to_go_are_marked_before_the_replicas_drop() {
        let (k8s, cluster) = provider(3, Some(600));
        let k8s = k8s.with_drain(GROUP, Duration::from_secs(300)).unwrap();
        k8s.set_desired_capacity(GROUP, 1).await.unwrap();
        let c = cluster.lock().unwrap();
        assert_eq!(c.replicas, 1);
        let lowest = i32::MIN.to_string();
        assert_eq!(c.costs.get("web-b"), Some(&lowest), "the newest first");
        assert_eq!(c.costs.get("web-c"), Some(&lowest));
        assert_eq!(c.costs.get("web-a"), None, "the oldest stays");
        drop(c);
        let asked = requests(&cluster);
        let first_patch = asked.iter().position(|r| r.starts_with("PATCH")).unwrap();
        let put = asked.iter().position(|r| r.starts_with("PUT")).unwrap();
        assert!(
            first_patch < put,
            "marked before the count drops: {asked:?}"
        );
        assert!(k8s.grace_warned.lock().unwrap().is_empty(), "600s >= 5m");
    }

    #[tokio::test]
    async fn without_a_drain_or_when_scaling_out_no_pod_is_marked() {
        let (k8s, cluster) = provider(3, None);
        k8s.set_desired_capacity(GROUP, 1).await.unwrap();
        assert_eq!(cluster.lock().unwrap().replicas, 1);
        assert!(cluster.lock().unwrap().costs.is_empty());
        assert!(!requests(&cluster).iter().any(|r| r.contains("/pods")));

        let (k8s, cluster) = provider(1, Some(600));
        let k8s = k8s.with_drain(GROUP, Duration::from_secs(300)).unwrap();
        k8s.set_desired_capacity(GROUP, 3).await.unwrap();
        assert_eq!(cluster.lock().unwrap().replicas, 3);
        assert!(cluster.lock().unwrap().costs.is_empty());
    }

    #[tokio::test]
    async fn a_grace_period_shorter_than_the_drain_is_warned_about_once() {
        // No terminationGracePeriodSeconds: Kubernetes' 30 s, shorter than 5 minutes.
        let (k8s, _cluster) = provider(3, None);
        let k8s = k8s.with_drain(GROUP, Duration::from_secs(300)).unwrap();
        k8s.describe_group(GROUP).await.unwrap();
        k8s.set_desired_capacity(GROUP, 2).await.unwrap();
        let warned = k8s.grace_warned.lock().unwrap().clone();
        assert_eq!(warned.into_iter().collect::<Vec<_>>(), [GROUP]);

        let (k8s, _cluster) = provider(3, Some(300));
        let k8s = k8s.with_drain(GROUP, Duration::from_secs(300)).unwrap();
        k8s.describe_group(GROUP).await.unwrap();
        assert!(
            k8s.grace_warned.lock().unwrap().is_empty(),
            "as long as the drain"
        );
    }

    #[tokio::test]
    async fn a_drain_needs_a_group_address() {
        let (k8s, _) = provider(1, None);
        let e = k8s.with_drain("web", Duration::from_secs(60)).unwrap_err();
        assert!(e.message().contains("KIND/NAMESPACE/NAME"), "{e}");
    }
}
