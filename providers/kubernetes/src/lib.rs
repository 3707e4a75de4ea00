//! # hoist-kubernetes
//!
//! Hoist's Kubernetes provider, on kube-rs: one [`KubernetesProvider`] per cluster implements
//! [`hoist_api::ScalingProvider`] and [`hoist_api::InstanceCatalog`] for two kinds of group,
//! each addressed in a policy file as `KIND/NAMESPACE/NAME` ([`target`]):
//!
//! | group | desired capacity | instances | bounds | victims | instance classes |
//! |---|---|---|---|---|---|
//! | a workload with the `scale` subresource (Deployment, StatefulSet, ReplicaSet, a custom resource) | `spec.replicas` through `/scale` | the Pods its selector matches | `autoscaling.hoist.dev/min-size` and `-max-size` annotations, else 0 to 1,000,000 | `controller.kubernetes.io/pod-deletion-cost` set low before scaling down (for a group with a drain, on the Pods that serve least: see [`drain`]) | named resource profiles, set on the pod template (a rolling update) |
//! | a Cluster API node group (MachineDeployment, MachineSet) | `spec.replicas` through `/scale` | the Machines its selector matches | Cluster Autoscaler's `cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size` and `-max-size` annotations | `cluster.x-k8s.io/delete-machine` set before scaling down | node types seen on Nodes, priced from the settings; the vertical move points the MachineDeployment at the infrastructure template `node_templates` names |
//!
//! Build one from a policy file's settings with [`KubernetesProviderFactory`], or with
//! [`KubernetesProvider::connect`]. Writes of the replica count read the scale subresource and
//! replace it at the version read, so a concurrent writer is never overwritten: a 409 conflict
//! is re-read and tried again ([`errors`] maps every other status). Credentials come from the
//! kubeconfig or the in-cluster service account and never appear in errors or logs.

#![forbid(unsafe_code)]

pub mod drain;
pub mod errors;
pub mod leader;
pub mod metrics;
mod quantity;
pub mod settings;
pub mod target;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hoist_api::checks;
use hoist_api::model::{
    Activity, Architecture, CapacityType, Currency, Instance, InstanceClass, InstanceFamily,
    InstanceState, Money, Offering, Price, PriceSource, RateUnit, ScalingGroup,
};
use hoist_api::provider::{
    CatalogCapabilities, ChangeInstanceClass, InstanceCatalog, ProviderSet, RemoveInstances,
    ScalingCapabilities, ScalingProvider,
};
use hoist_api::{Error, Result};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use kube::{Api, Client};
use serde_json::{Value, json};

pub use leader::{LeaseLock, LeaseSettings};
pub use quantity::{parse_cpu, parse_memory_mib};
pub use settings::{KubernetesProviderFactory, KubernetesSettings, ResourceProfile};
pub use target::{GroupKind, GroupRef, Target};

use errors::{PROVIDER, from_kube};

/// Annotation a workload may carry to set its smallest size.
pub const WORKLOAD_MIN_ANNOTATION: &str = "autoscaling.hoist.dev/min-size";
/// Annotation a workload may carry to set its largest size.
pub const WORKLOAD_MAX_ANNOTATION: &str = "autoscaling.hoist.dev/max-size";
/// Cluster Autoscaler's Cluster API annotation for a node group's smallest size.
pub const NODE_GROUP_MIN_ANNOTATION: &str =
    "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size";
/// Cluster Autoscaler's Cluster API annotation for a node group's largest size.
pub const NODE_GROUP_MAX_ANNOTATION: &str =
    "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size";
/// The annotation the ReplicaSet controller reads to choose which Pods to delete first.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
/// The annotation the Cluster API reads to choose which Machines to delete first.
pub const DELETE_MACHINE: &str = "cluster.x-k8s.io/delete-machine";
/// The Node label naming its instance type.
pub const INSTANCE_TYPE_LABEL: &str = "node.kubernetes.io/instance-type";
/// The Node label naming its zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// How many times a write is read again and retried after a 409 conflict.
const CONFLICT_RETRIES: usize = 5;

/// A Kubernetes cluster as a Hoist provider.
pub struct KubernetesProvider {
    name: String,
    client: Client,
    settings: KubernetesSettings,
    server: String,
    targets: tokio::sync::Mutex<HashMap<String, Target>>,
    /// The cluster serves `metrics.k8s.io` and the settings want it.
    pod_metrics: bool,
    /// The cluster's ReplicaSet controller deletes the Pods of lowest deletion cost first.
    deletion_cost: bool,
    /// Drain periods of workloads, by group id (see [`drain`]).
    drains: HashMap<String, std::time::Duration>,
    /// Groups already warned about a termination grace period shorter than their drain.
    grace_warned: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl fmt::Debug for KubernetesProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubernetesProvider")
            .field("name", &self.name)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl KubernetesProvider {
    /// Connects to the cluster the settings name (kubeconfig and context, else the standard
    /// search, else in-cluster) and checks that the API server answers.
    pub async fn connect(name: &str, settings: KubernetesSettings) -> Result<Self> {
        let options = kube::config::KubeConfigOptions {
            context: settings.context.clone(),
            ..Default::default()
        };
        let config_error = |what: String| Error::config(what).with_provider(PROVIDER);
        let mut config = match &settings.kubeconfig {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                    config_error(format!("cannot read the kubeconfig {}: {e}", path.display()))
                })?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| {
                        config_error(format!("kubeconfig {}: {e}", path.display()))
                    })?
            }
            None if settings.context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| config_error(format!("kubeconfig: {e}")))?,
            None => kube::Config::infer().await.map_err(|e| {
                config_error(format!(
                    "no Kubernetes configuration found ({e}); set `kubeconfig:` or KUBECONFIG, or run in a cluster"
                ))
            })?,
        };
        let timeout = settings
            .timeout
            .map_or(std::time::Duration::from_secs(30), |t| t.get());
        config.connect_timeout = Some(timeout.min(std::time::Duration::from_secs(10)));
        config.read_timeout = Some(timeout);
        config.write_timeout = Some(timeout);
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config)
            .map_err(|e| config_error(format!("cannot build a client for {server}: {e}")))?;
        let version = client.apiserver_version().await.map_err(|e| {
            let e = from_kube(e, "connect to", &server);
            Error::new(
                e.kind(),
                format!(
                    "{} (check the kubeconfig's server, context and credentials)",
                    e.message()
                ),
            )
            .with_provider(PROVIDER)
        })?;
        let pod_metrics = settings.pod_metrics != Some(false) && metrics::served(&client).await;
        // The ReplicaSet controller honours pod-deletion-cost from 1.22 (on by default).
        let minor: u32 = version
            .minor
            .trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap_or(u32::MAX);
        let deletion_cost = version.major != "1" || minor >= 22;
        Ok(KubernetesProvider {
            name: name.to_owned(),
            client,
            settings,
            server,
            targets: tokio::sync::Mutex::new(HashMap::new()),
            pod_metrics,
            deletion_cost,
            drains: HashMap::new(),
            grace_warned: std::sync::Mutex::default(),
        })
    }

    /// The list parameters of `list_groups`: the settings' label selector, if any.
    fn selected(&self) -> ListParams {
        match &self.settings.selector {
            Some(selector) => ListParams::default().labels(selector),
            None => ListParams::default(),
        }
    }

    /// The client, for what else runs against the same cluster (leader election).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The cluster's API server URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Whether the provider offers pod CPU utilisation from `metrics.k8s.io`.
    pub fn offers_pod_metrics(&self) -> bool {
        self.pod_metrics
    }

    /// The traits of this provider as one [`ProviderSet`]: scaling and catalog, and metrics
    /// when the cluster serves `metrics.k8s.io` ([`metrics`]).
    pub fn into_provider_set(self: std::sync::Arc<Self>) -> ProviderSet {
        let set = ProviderSet::new(self.name.clone())
            .with_scaling(self.clone())
            .with_catalog(self.clone());
        if self.pod_metrics {
            set.with_metrics(self)
        } else {
            set
        }
    }

    /// The group `id` resolved against the API server (cached).
    async fn target(&self, id: &str) -> Result<Target> {
        if let Some(t) = self.targets.lock().await.get(id) {
            return Ok(t.clone());
        }
        let reference = GroupRef::parse(id)?;
        let target = target::resolve(&self.client, reference).await?;
        self.targets
            .lock()
            .await
            .insert(id.to_owned(), target.clone());
        Ok(target)
    }

    /// The Machine resource of the Cluster API version the node group is served at.
    fn machines(&self, target: &Target) -> Api<DynamicObject> {
        let resource = ApiResource {
            group: target.resource.group.clone(),
            version: target.resource.version.clone(),
            api_version: target.resource.api_version.clone(),
            kind: "Machine".to_owned(),
            plural: "machines".to_owned(),
        };
        Api::namespaced_with(self.client.clone(), &target.reference.namespace, &resource)
    }

    fn pods(&self, target: &Target) -> Api<k8s_openapi::api::core::v1::Pod> {
        Api::namespaced(self.client.clone(), &target.reference.namespace)
    }

    /// Reads the group: its object, its scale and its instances.
    async fn read(&self, target: &Target) -> Result<(ScalingGroup, DynamicObject)> {
        let id = target.id();
        let api = target.api(&self.client);
        let object = api
            .get(&target.reference.name)
            .await
            .map_err(|e| from_kube(e, "get", &id))?;
        let scale = api
            .get_scale(&target.reference.name)
            .await
            .map_err(|e| from_kube(e, "get the scale of", &id))?;
        let desired = scale
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(0)
            .max(0) as u32;
        let selector = scale
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let annotations = object.metadata.annotations.clone().unwrap_or_default();
        let (min_size, max_size) = bounds(target, &annotations)?;
        self.check_grace_period(target, &object);
        let (instances, instance_class, zones) = match target.kind {
            GroupKind::Workload => {
                let instances = self.pod_instances(target, &selector).await?;
                (instances, self.workload_class(&object), Vec::new())
            }
            GroupKind::NodeGroup => {
                let (instances, seen, zones) = self.machine_instances(target, &selector).await?;
                let template = object
                    .data
                    .pointer("/spec/template/spec/infrastructureRef/name")
                    .and_then(Value::as_str);
                // The class whose template the node group references, else what its nodes are.
                let class = self
                    .settings
                    .node_templates
                    .iter()
                    .find(|(_, t)| Some(t.as_str()) == template)
                    .map_or(seen, |(class, _)| class.clone());
                (instances, class, zones)
            }
        };
        let tags = object.metadata.labels.clone().unwrap_or_default();
        Ok((
            ScalingGroup {
                id,
                min_size,
                max_size,
                desired_capacity: desired,
                instance_class,
                zones,
                instances,
                tags: tags.into_iter().collect(),
            },
            object,
        ))
    }

    async fn pod_instances(&self, target: &Target, selector: &str) -> Result<Vec<Instance>> {
        if selector.is_empty() {
            return Ok(Vec::new());
        }
        let pods = self
            .pods(target)
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| from_kube(e, "list the pods of", &target.id()))?;
        Ok(pods
            .items
            .iter()
            .filter_map(|pod| {
                let name = pod.metadata.name.clone()?;
                let status = pod.status.as_ref();
                let ready = status
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
                let state = if pod.metadata.deletion_timestamp.is_some() {
                    InstanceState::Terminating
                } else {
                    match phase {
                        "Running" if ready => InstanceState::Running,
                        "Running" | "Pending" => InstanceState::Pending,
                        "Succeeded" => InstanceState::Terminated,
                        _ => InstanceState::Failed,
                    }
                };
                Some(Instance {
                    id: name,
                    instance_class: String::new(),
                    zone: String::new(),
                    capacity_type: CapacityType::OnDemand,
                    state,
                    launched_at: created(&pod.metadata),
                    protected_from_scale_in: false,
                })
            })
            .collect())
    }

    async fn machine_instances(
        &self,
        target: &Target,
        selector: &str,
    ) -> Result<(Vec<Instance>, String, Vec<String>)> {
        let machines = if selector.is_empty() {
            Vec::new()
        } else {
            self.machines(target)
                .list(&ListParams::default().labels(selector))
                .await
                .map_err(|e| from_kube(e, "list the machines of", &target.id()))?
                .items
        };
        let nodes = self.node_types().await.unwrap_or_default();
        let mut types: BTreeMap<String, usize> = BTreeMap::new();
        let mut zones: Vec<String> = Vec::new();
        let instances = machines
            .iter()
            .filter_map(|m| {
                let name = m.metadata.name.clone()?;
                let phase = m.data.pointer("/status/phase").and_then(Value::as_str);
                let state = if m.metadata.deletion_timestamp.is_some() {
                    InstanceState::Terminating
                } else {
                    match phase {
                        Some("Running") => InstanceState::Running,
                        Some("Deleting") => InstanceState::Terminating,
                        Some("Deleted") => InstanceState::Terminated,
                        Some("Failed") => InstanceState::Failed,
                        _ => InstanceState::Pending,
                    }
                };
                let node = m
                    .data
                    .pointer("/status/nodeRef/name")
                    .and_then(Value::as_str)
                    .and_then(|n| nodes.get(n));
                let class = node.map(|n| n.instance_type.clone()).unwrap_or_default();
                if !class.is_empty() {
                    *types.entry(class.clone()).or_default() += 1;
                }
                let zone = m
                    .data
                    .pointer("/spec/failureDomain")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| node.map(|n| n.zone.clone()))
                    .unwrap_or_default();
                if !zone.is_empty() && !zones.contains(&zone) {
                    zones.push(zone.clone());
                }
                Some(Instance {
                    id: name,
                    instance_class: class,
                    zone,
                    capacity_type: node.map_or(CapacityType::OnDemand, |n| n.capacity_type),
                    state,
                    launched_at: created(&m.metadata),
                    protected_from_scale_in: false,
                })
            })
            .collect();
        zones.sort();
        let class = types
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(t, _)| t)
            .unwrap_or_else(|| "unknown".to_owned());
        Ok((instances, class, zones))
    }

    /// The profile whose requests the workload's container has, else its requests as text.
    fn workload_class(&self, object: &DynamicObject) -> String {
        let containers = object
            .data
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let requests = |container: Option<&str>| {
            let c = match container {
                Some(name) => containers
                    .iter()
                    .find(|c| c.get("name").and_then(Value::as_str) == Some(name)),
                None => containers.first(),
            }?;
            let r = c.pointer("/resources/requests")?;
            let cpu = parse_cpu(r.get("cpu")?.as_str()?).ok()?;
            let mem = parse_memory_mib(r.get("memory")?.as_str()?).ok()?;
            Some((cpu, mem))
        };
        for (name, profile) in &self.settings.profiles {
            let want = (
                parse_cpu(&profile.cpu).ok(),
                parse_memory_mib(&profile.memory).ok(),
            );
            if let Some((cpu, mem)) = requests(profile.container.as_deref())
                && want == (Some(cpu), Some(mem))
            {
                return name.clone();
            }
        }
        match containers
            .first()
            .and_then(|c| c.pointer("/resources/requests"))
        {
            Some(r) => format!(
                "cpu={},memory={}",
                r.get("cpu").and_then(Value::as_str).unwrap_or("-"),
                r.get("memory").and_then(Value::as_str).unwrap_or("-")
            ),
            None => "unspecified".to_owned(),
        }
    }

    /// Waits (at most a second) until the newest instance of `group` was created in an earlier
    /// second than now: creation times have whole seconds, and a replacement must compare as
    /// newer than every Pod that stays.
    async fn newest_pod_at_least_a_second_old(&self, group: &ScalingGroup) {
        let newest = group
            .instances
            .iter()
            .map(|i| i.launched_at.timestamp())
            .max();
        if let Some(newest) = newest {
            let now = Utc::now();
            if now.timestamp() <= newest {
                let wait = 1_000 - i64::from(now.timestamp_subsec_millis()) + 50;
                tokio::time::sleep(std::time::Duration::from_millis(wait.clamp(0, 1_100) as u64))
                    .await;
            }
        }
    }

    /// Waits (at most five seconds) until the controller has started replacements for the `n`
    /// deleted Pods of `before`.
    async fn wait_for_replacements(&self, target: &Target, before: &ScalingGroup, n: u32) {
        let known: std::collections::HashSet<&str> =
            before.instances.iter().map(|i| i.id.as_str()).collect();
        for _ in 0..50 {
            if let Ok((g, _)) = self.read(target).await {
                let fresh = g
                    .instances
                    .iter()
                    .filter(|i| !known.contains(i.id.as_str()))
                    .count();
                if fresh >= n as usize {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Read-modify-write of a group's replica count: `decide` gets the count just read and
    /// returns the new one, which is written at the version read; when another writer changed
    /// it in between (409), the count is read again and `decide` asked again, up to five
    /// times. No bounds are checked here (see [`ScalingProvider::set_desired_capacity`]).
    pub async fn update_replicas(
        &self,
        group: &str,
        decide: impl Fn(u32) -> Result<u32>,
    ) -> Result<()> {
        let target = self.target(group).await?;
        self.write_replicas(&target, decide).await
    }

    /// Sets `spec.replicas` through the scale subresource at the version just read, re-reading
    /// after a conflict. `decide` sees the current count and returns the new one.
    async fn write_replicas(
        &self,
        target: &Target,
        decide: impl Fn(u32) -> Result<u32>,
    ) -> Result<()> {
        let id = target.id();
        let api = target.api(&self.client);
        let mut last = None;
        for _ in 0..CONFLICT_RETRIES {
            let mut scale = api
                .get_scale(&target.reference.name)
                .await
                .map_err(|e| from_kube(e, "get the scale of", &id))?;
            let current = scale
                .spec
                .as_ref()
                .and_then(|s| s.replicas)
                .unwrap_or(0)
                .max(0) as u32;
            let desired = decide(current)?;
            let replicas = i32::try_from(desired).map_err(|_| {
                Error::invalid_input(format!("{desired} replicas is more than Kubernetes holds"))
                    .with_provider(PROVIDER)
            })?;
            scale.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
            match api
                .replace_scale(&target.reference.name, &PostParams::default(), &scale)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if errors::status_code(&e) == Some(409) => {
                    tracing::debug!(group = %id, "conflict writing the scale; reading again");
                    last = Some(e);
                }
                Err(e) => return Err(from_kube(e, "scale", &id)),
            }
        }
        Err(from_kube(
            last.expect("a conflict was seen"),
            &format!("scale (after {CONFLICT_RETRIES} conflicts)"),
            &id,
        ))
    }

    async fn annotate(
        &self,
        api: &Api<DynamicObject>,
        what: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        let patch = json!({"metadata": {"annotations": {key: value}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| from_kube(e, &format!("annotate {what}"), name))
    }

    /// The node types seen on Nodes, by node name.
    async fn node_types(&self) -> Result<HashMap<String, NodeType>> {
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.client.clone());
        let list = nodes
            .list(&ListParams::default())
            .await
            .map_err(|e| from_kube(e, "list", "nodes"))?;
        Ok(list
            .items
            .iter()
            .filter_map(|node| {
                let name = node.metadata.name.clone()?;
                let labels = node.metadata.labels.clone().unwrap_or_default();
                let instance_type = labels
                    .get(INSTANCE_TYPE_LABEL)
                    .or_else(|| labels.get("beta.kubernetes.io/instance-type"))?
                    .clone();
                let allocatable = node
                    .status
                    .as_ref()?
                    .allocatable
                    .clone()
                    .unwrap_or_default();
                let vcpus = allocatable
                    .get("cpu")
                    .and_then(|q| parse_cpu(&q.0).ok())
                    .unwrap_or(0.0);
                let memory_mib = allocatable
                    .get("memory")
                    .and_then(|q| parse_memory_mib(&q.0).ok())
                    .unwrap_or(0);
                let zone = labels
                    .get(ZONE_LABEL)
                    .or_else(|| labels.get("failure-domain.beta.kubernetes.io/zone"))
                    .cloned()
                    .unwrap_or_default();
                let spot = [
                    "karpenter.sh/capacity-type",
                    "eks.amazonaws.com/capacityType",
                    "cloud.google.com/gke-spot",
                ]
                .iter()
                .filter_map(|k| labels.get(*k))
                .any(|v| v.eq_ignore_ascii_case("spot") || v == "true");
                Some((
                    name,
                    NodeType {
                        instance_type,
                        vcpus,
                        memory_mib,
                        zone,
                        capacity_type: if spot {
                            CapacityType::Spot
                        } else {
                            CapacityType::OnDemand
                        },
                    },
                ))
            })
            .collect())
    }

    /// The price of a class from the settings' table; without one, zero, with a source that
    /// says no price was given (a catalog lists every class with an offering).
    fn price(&self, name: &str, vcpus: f64, memory_mib: u64, detail: &str) -> Option<Price> {
        let (per_hour, kind, detail) = match self.settings.prices.price(name, vcpus, memory_mib) {
            Some(p) => (p, "config", detail),
            None => (0.0, "none", "no price in the provider settings (`prices:`)"),
        };
        let currency = Currency(
            self.settings
                .prices
                .currency
                .clone()
                .unwrap_or_else(|| "USD".to_owned()),
        );
        Some(Price {
            amount: Money::from_f64(per_hour, currency)?,
            unit: RateUnit::PerHour,
            source: PriceSource {
                kind: kind.to_owned(),
                detail: detail.to_owned(),
            },
        })
    }
}

/// A node's type as its labels and allocatable resources say.
#[derive(Debug, Clone, PartialEq)]
struct NodeType {
    instance_type: String,
    vcpus: f64,
    memory_mib: u64,
    zone: String,
    capacity_type: CapacityType,
}

fn created(meta: &kube::core::ObjectMeta) -> DateTime<Utc> {
    meta.creation_timestamp
        .as_ref()
        .and_then(|t| {
            DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
        })
        .unwrap_or_else(Utc::now)
}

/// A group's bounds from its annotations.
fn bounds(target: &Target, annotations: &BTreeMap<String, String>) -> Result<(u32, u32)> {
    let read = |key: &str| -> Result<Option<u32>> {
        annotations
            .get(key)
            .map(|v| {
                v.trim().parse::<u32>().map_err(|_| {
                    Error::invalid_input(format!(
                        "group {}: annotation {key}=`{v}` is not a whole number",
                        target.id()
                    ))
                    .with_provider(PROVIDER)
                })
            })
            .transpose()
    };
    match target.kind {
        GroupKind::Workload => Ok((
            read(WORKLOAD_MIN_ANNOTATION)?.unwrap_or(0),
            read(WORKLOAD_MAX_ANNOTATION)?.unwrap_or(hoist_api::input::MAX_INSTANCES),
        )),
        GroupKind::NodeGroup => match (read(NODE_GROUP_MIN_ANNOTATION)?, read(NODE_GROUP_MAX_ANNOTATION)?) {
            (Some(min), Some(max)) => Ok((min, max)),
            _ => Err(Error::invalid_input(format!(
                "node group {} lacks the annotations {NODE_GROUP_MIN_ANNOTATION} and {NODE_GROUP_MAX_ANNOTATION}; as with Cluster Autoscaler, only a node group that carries both is scaled",
                target.id()
            ))
            .with_provider(PROVIDER)),
        },
    }
}

#[async_trait]
impl ScalingProvider for KubernetesProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> ScalingCapabilities {
        ScalingCapabilities {
            set_desired_capacity: true,
            remove_instances: true,
            set_instance_class: true,
            activities: false,
        }
    }

    /// Every Deployment and StatefulSet, every Cluster API MachineDeployment (where the
    /// cluster serves them), and the groups the settings name (custom resources among them).
    /// A node group without Cluster Autoscaler's size annotations is left out, as Cluster
    /// Autoscaler leaves it out.
    async fn list_groups(&self) -> Result<Vec<ScalingGroup>> {
        let mut ids: Vec<String> = Vec::new();
        for (kind, resource) in [
            (
                "deployment",
                ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&()),
            ),
            (
                "statefulset",
                ApiResource::erase::<k8s_openapi::api::apps::v1::StatefulSet>(&()),
            ),
        ] {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
            let list = api
                .list(&self.selected())
                .await
                .map_err(|e| from_kube(e, "list", &resource.plural))?;
            ids.extend(list.items.iter().filter_map(|o| {
                Some(format!(
                    "{kind}/{}/{}",
                    o.metadata.namespace.as_ref()?,
                    o.metadata.name.as_ref()?
                ))
            }));
        }
        let node_groups =
            kube::discovery::oneshot::group(&self.client, target::CLUSTER_API_GROUP).await;
        if let Ok(group) = node_groups
            && let Some((resource, _)) = group.recommended_kind("MachineDeployment")
        {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
            let list = api
                .list(&self.selected())
                .await
                .map_err(|e| from_kube(e, "list", &resource.plural))?;
            ids.extend(
                list.items
                    .iter()
                    .filter(|o| {
                        let a = o.metadata.annotations.clone().unwrap_or_default();
                        a.contains_key(NODE_GROUP_MIN_ANNOTATION)
                            && a.contains_key(NODE_GROUP_MAX_ANNOTATION)
                    })
                    .filter_map(|o| {
                        Some(format!(
                            "machinedeployment/{}/{}",
                            o.metadata.namespace.as_ref()?,
                            o.metadata.name.as_ref()?
                        ))
                    }),
            );
        }
        for id in &self.settings.groups {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        let mut groups = Vec::with_capacity(ids.len());
        for id in &ids {
            match self.describe_group(id).await {
                Ok(g) => groups.push(g),
                // Gone between the list and the read.
                Err(e) if e.kind() == hoist_api::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(groups)
    }

    async fn describe_group(&self, group: &str) -> Result<ScalingGroup> {
        let target = self.target(group).await?;
        Ok(self.read(&target).await?.0)
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<()> {
        let target = self.target(group).await?;
        if target.kind == GroupKind::Workload && self.drain_of(&target).is_some() {
            // A drain: the Pods to go are chosen, and marked, before the count drops.
            let (g, _) = self.read(&target).await?;
            checks::desired_within_bounds(group, desired, g.min_size, g.max_size)?;
            let fewer = g.desired_capacity.saturating_sub(desired);
            self.mark_drain_victims(&target, &g, fewer).await?;
            return self.write_replicas(&target, |_| Ok(desired)).await;
        }
        // The bounds are the object's annotations; the instances are not needed to resize.
        let object = target
            .api(&self.client)
            .get(&target.reference.name)
            .await
            .map_err(|e| from_kube(e, "get", group))?;
        let (min, max) = bounds(&target, &object.metadata.annotations.unwrap_or_default())?;
        checks::desired_within_bounds(group, desired, min, max)?;
        self.write_replicas(&target, |_| Ok(desired)).await
    }

    async fn remove_instances(&self, group: &str, request: &RemoveInstances) -> Result<()> {
        let target = self.target(group).await?;
        let (g, _) = self.read(&target).await?;
        checks::instances_in_group(&g, &request.instances)?;
        let n = request.instances.len() as u32;
        if request.decrement {
            checks::removal_within_bounds(group, n, g.desired_capacity, g.min_size)?;
        }
        match target.kind {
            GroupKind::Workload => {
                let pods: Api<DynamicObject> = Api::namespaced_with(
                    self.client.clone(),
                    &target.reference.namespace,
                    &ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&()),
                );
                if request.decrement && self.deletion_cost {
                    // The ReplicaSet controller (1.22 and later) deletes the Pods of lowest
                    // deletion cost first: mark the victims, and the count drops below.
                    for pod in &request.instances {
                        self.annotate(&pods, "pod", pod, POD_DELETION_COST, &i32::MIN.to_string())
                            .await?;
                    }
                } else {
                    if request.decrement {
                        // An older controller ignores the cost and deletes the newest Pods
                        // first: delete the victims, let it start replacements that are newer
                        // than every other Pod, and the count drops below, taking those.
                        self.newest_pod_at_least_a_second_old(&g).await;
                    }
                    for pod in &request.instances {
                        pods.delete(pod, &DeleteParams::default())
                            .await
                            .map_err(|e| from_kube(e, "delete pod", pod))?;
                    }
                    if request.decrement {
                        self.wait_for_replacements(&target, &g, n).await;
                    }
                }
            }
            GroupKind::NodeGroup => {
                // As Cluster Autoscaler does: mark the Machines, then lower the count; the
                // MachineSet controller deletes marked Machines first. Without the decrement the
                // Machine is deleted and the MachineSet replaces it.
                let machines = self.machines(&target);
                for machine in &request.instances {
                    if request.decrement {
                        self.annotate(&machines, "machine", machine, DELETE_MACHINE, "yes")
                            .await?;
                    } else {
                        machines
                            .delete(machine, &DeleteParams::default())
                            .await
                            .map_err(|e| from_kube(e, "delete machine", machine))?;
                    }
                }
            }
        }
        if request.decrement {
            let min = g.min_size;
            self.write_replicas(&target, move |current| {
                let desired = current.saturating_sub(n).max(min);
                Ok(desired)
            })
            .await?;
        }
        Ok(())
    }

    /// A disruption budget's `max_unavailable` becomes the rolling update's `maxSurge`, with
    /// `maxUnavailable` 0 (new pods or Machines come up before old ones go), on a Deployment and
    /// on a Cluster API MachineDeployment. A StatefulSet replaces one pod at a time, within any
    /// budget; a ReplicaSet replaces nothing (only new pods get the profile). `per_window` is
    /// not honoured: a rollout has no pause between replacements (a warning says so).
    async fn set_instance_class(
        &self,
        group: &str,
        request: &ChangeInstanceClass,
    ) -> Result<Option<Activity>> {
        let instance_class = request.instance_class.as_str();
        let target = self.target(group).await?;
        if let Some(budget) = request.disruption
            && budget.per_window.is_some()
        {
            tracing::warn!(
                group,
                %budget,
                "a Kubernetes rollout has no pause between replacements: the budget's per_window is not applied"
            );
        }
        // The rolling update's pace, on the kinds that have one.
        let strategy = request
            .disruption
            .filter(|_| {
                target.kind == GroupKind::NodeGroup || target.resource.kind == "Deployment"
            })
            .map(|b| {
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": b.max_unavailable, "maxUnavailable": 0}})
            });
        if target.kind == GroupKind::NodeGroup {
            // Cluster API's own way: point the MachineDeployment at another infrastructure
            // template; its controller replaces the Machines in a rolling update.
            let template = self
                .settings
                .node_templates
                .get(instance_class)
                .ok_or_else(|| {
                    let known: Vec<&str> =
                        self.settings.node_templates.keys().map(String::as_str).collect();
                    Error::not_found(format!(
                        "instance class {instance_class}: no infrastructure template for it in `node_templates` (known: {})",
                        if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                    ))
                    .with_provider(PROVIDER)
                })?;
            let mut patch =
                json!({"spec": {"template": {"spec": {"infrastructureRef": {"name": template}}}}});
            if let Some(strategy) = &strategy {
                patch["spec"]["strategy"] = strategy.clone();
            }
            target
                .api(&self.client)
                .patch(
                    &target.reference.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map_err(|e| from_kube(e, "set the infrastructure template of", group))?;
            return Ok(None);
        }
        if target.resource.group != "apps" {
            return Err(Error::unsupported(format!(
                "{group}: resource profiles are set on the pod templates of Deployments, StatefulSets and ReplicaSets only"
            ))
            .with_provider(PROVIDER));
        }
        let profile = self.settings.profiles.get(instance_class).ok_or_else(|| {
            let known: Vec<&str> = self.settings.profiles.keys().map(String::as_str).collect();
            Error::not_found(format!(
                "instance class {instance_class}: no such resource profile (known: {})",
                if known.is_empty() {
                    "none; define `profiles:` in the provider settings".to_owned()
                } else {
                    known.join(", ")
                }
            ))
            .with_provider(PROVIDER)
        })?;
        let (_, object) = self.read(&target).await?;
        let container = match &profile.container {
            Some(name) => name.clone(),
            None => object
                .data
                .pointer("/spec/template/spec/containers/0/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Error::invalid_input(format!("{group}: the pod template has no container"))
                        .with_provider(PROVIDER)
                })?
                .to_owned(),
        };
        let mut resources = json!({"requests": {"cpu": profile.cpu, "memory": profile.memory}});
        if let Some(limits) = &profile.limits {
            let mut l = serde_json::Map::new();
            if let Some(cpu) = &limits.cpu {
                l.insert("cpu".into(), json!(cpu));
            }
            if let Some(memory) = &limits.memory {
                l.insert("memory".into(), json!(memory));
            }
            resources["limits"] = Value::Object(l);
        }
        let mut patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": container, "resources": resources}
        ]}}}});
        if let Some(strategy) = strategy {
            patch["spec"]["strategy"] = strategy;
        }
        target
            .api(&self.client)
            .patch(
                &target.reference.name,
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
            .map_err(|e| from_kube(e, "set the resources of", group))?;
        Ok(None)
    }
}

#[async_trait]
impl InstanceCatalog for KubernetesProvider {
    fn capabilities(&self) -> CatalogCapabilities {
        CatalogCapabilities {
            spot_prices: false,
            live_prices: false,
        }
    }

    async fn instance_classes(&self) -> Result<Vec<InstanceClass>> {
        let mut classes = Vec::new();
        for (name, profile) in &self.settings.profiles {
            let vcpus = parse_cpu(&profile.cpu).map_err(Error::config)?;
            let memory_mib = parse_memory_mib(&profile.memory).map_err(Error::config)?;
            let offerings = self
                .price(name, vcpus, memory_mib, "settings: prices")
                .map(|price| Offering {
                    zone: "cluster".to_owned(),
                    capacity_type: CapacityType::OnDemand,
                    price,
                })
                .into_iter()
                .collect();
            classes.push(InstanceClass {
                name: name.clone(),
                family: InstanceFamily::General,
                vcpus,
                memory_mib,
                gpus: 0,
                architecture: Architecture::X86_64,
                network_gbps: None,
                offerings,
            });
        }
        let mut types: BTreeMap<String, InstanceClass> = BTreeMap::new();
        for node in self.node_types().await?.into_values() {
            let class = types
                .entry(node.instance_type.clone())
                .or_insert_with(|| InstanceClass {
                    name: node.instance_type.clone(),
                    family: InstanceFamily::General,
                    vcpus: node.vcpus,
                    memory_mib: node.memory_mib,
                    gpus: 0,
                    architecture: Architecture::X86_64,
                    network_gbps: None,
                    offerings: Vec::new(),
                });
            let seen = class
                .offerings
                .iter()
                .any(|o| o.zone == node.zone && o.capacity_type == node.capacity_type);
            if !seen
                && let Some(price) = self.price(
                    &node.instance_type,
                    node.vcpus,
                    node.memory_mib,
                    "settings: prices",
                )
            {
                class.offerings.push(Offering {
                    zone: node.zone.clone(),
                    capacity_type: node.capacity_type,
                    price,
                });
            }
        }
        classes.extend(types.into_values());
        Ok(classes)
    }
}
