//! The one module that speaks `azure_mgmt_compute` (API version 2024-07-01): scale sets, their
//! VMs, resource SKUs, and the writes (capacity, size, delete instances, manual upgrade).
//!
//! Everything it returns is this crate's own plain types ([`ScaleSet`], [`Vm`], [`VmSku`],
//! [`Accepted`]), so moving to another compute crate changes this file only. Writes are sent
//! and their `202 Accepted` returned; [`crate::lro`] follows them (the generated client's own
//! polling re-sends the write, which Azure does not ask for).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use azure_core::Url;
use azure_core::auth::TokenCredential;
use azure_mgmt_compute::package_2024_07_01 as api;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use hoist_api::{ErrorKind, Result};

use crate::errors::{from_azure, local};
use crate::lro::Accepted;
use crate::rest::client_options;

/// The compute API version every call uses.
pub const API_VERSION: &str = "2024-07-01";

/// How a scale set manages its VMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orchestration {
    /// VMs are scale set instances (`virtualMachineScaleSets/{name}/virtualMachines/{id}`).
    Uniform,
    /// VMs are standalone VMs that belong to the scale set.
    Flexible,
}

/// When instances take a changed model (a new size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeMode {
    /// Only when asked, instance by instance (`manualupgrade`).
    Manual,
    /// All at once, by Azure.
    Automatic,
    /// In batches, by Azure.
    Rolling,
}

/// A scale set, as this crate uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleSet {
    /// The ARM resource id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its resource group.
    pub resource_group: String,
    /// Its region.
    pub location: String,
    /// The VM size new instances get (`sku.name`).
    pub size: String,
    /// Instances asked for (`sku.capacity`).
    pub capacity: u32,
    /// Uniform or Flexible.
    pub orchestration: Orchestration,
    /// The upgrade policy's mode.
    pub upgrade_mode: UpgradeMode,
    /// Zones (`1`, `2`, `3`), empty for a regional set.
    pub zones: Vec<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Whether instances are Spot (or the older Low priority).
    pub spot: bool,
    /// The provisioning state (`Succeeded`, `Updating`, ...).
    pub provisioning_state: String,
}

/// One VM of a scale set.
#[derive(Debug, Clone, PartialEq)]
pub struct Vm {
    /// What the delete-instances operation takes: the instance id (Uniform) or VM name
    /// (Flexible).
    pub instance_id: String,
    /// The VM name.
    pub name: String,
    /// Its zone, when zonal.
    pub zone: Option<String>,
    /// Its size.
    pub size: String,
    /// `Creating`, `Updating`, `Succeeded`, `Deleting`, `Failed`, ...
    pub provisioning_state: String,
    /// `running`, `starting`, `stopped`, `deallocated`, ... when the instance view was given.
    pub power_state: Option<String>,
    /// `protectFromScaleIn`.
    pub protected: bool,
    /// When it was created.
    pub created: Option<DateTime<Utc>>,
}

/// A VM size offered in a region.
#[derive(Debug, Clone, PartialEq)]
pub struct VmSku {
    /// `Standard_D2s_v5`.
    pub name: String,
    /// The quota family (`standardDSv5Family`).
    pub family: String,
    /// vCPUs.
    pub vcpus: f64,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// GPUs.
    pub gpus: u32,
    /// Arm64 rather than x64.
    pub arm64: bool,
    /// Zones it is offered in within the region.
    pub zones: Vec<String>,
    /// Not available to this subscription in the region.
    pub restricted: bool,
}

/// The compute client for one subscription.
#[derive(Clone)]
pub struct Compute {
    client: api::Client,
    subscription: String,
    timeout: Duration,
}

impl fmt::Debug for Compute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compute")
            .field("subscription", &self.subscription)
            .finish_non_exhaustive()
    }
}

impl Compute {
    /// A client for `subscription` on the ARM `endpoint`, retrying 408, 429 and 5xx `retries`
    /// times, each call bounded by `timeout`.
    pub fn new(
        endpoint: &Url,
        scope: &str,
        credential: Arc<dyn TokenCredential>,
        subscription: &str,
        retries: u32,
        timeout: Duration,
    ) -> Self {
        let client = api::Client::new(
            endpoint.clone(),
            credential,
            vec![scope.to_owned()],
            client_options(retries),
        );
        Compute {
            client,
            subscription: subscription.to_owned(),
            timeout,
        }
    }

    async fn bounded<T>(
        &self,
        operation: &str,
        call: impl std::future::Future<Output = azure_core::Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(|e| from_azure(operation, e)),
            Err(_) => Err(local(
                ErrorKind::Timeout,
                operation,
                format!("Azure did not answer within {:?}", self.timeout),
            )),
        }
    }

    /// One scale set.
    pub async fn scale_set(&self, resource_group: &str, name: &str) -> Result<ScaleSet> {
        let op = "describe_group";
        let response = self
            .bounded(
                op,
                self.client
                    .virtual_machine_scale_sets_client()
                    .get(resource_group, name, &self.subscription)
                    .send(),
            )
            .await?;
        let body = self.bounded(op, response.into_body()).await?;
        scale_set(body, resource_group)
    }

    /// Every scale set of the subscription, or of one resource group.
    pub async fn scale_sets(&self, resource_group: Option<&str>) -> Result<Vec<ScaleSet>> {
        let op = "list_groups";
        let sets = self.client.virtual_machine_scale_sets_client();
        let mut found = Vec::new();
        match resource_group {
            Some(rg) => {
                let mut pages = sets.list(rg, &self.subscription).into_stream();
                while let Some(page) = self.bounded(op, async { Ok(pages.next().await) }).await? {
                    found.extend(page.map_err(|e| from_azure(op, e))?.value);
                }
            }
            None => {
                let mut pages = sets.list_all(&self.subscription).into_stream();
                while let Some(page) = self.bounded(op, async { Ok(pages.next().await) }).await? {
                    found.extend(page.map_err(|e| from_azure(op, e))?.value);
                }
            }
        }
        let mut out = Vec::new();
        for set in found {
            let rg = resource_group_of(set.resource.id.as_deref().unwrap_or_default())
                .unwrap_or_default();
            out.push(scale_set(set, &rg)?);
        }
        Ok(out)
    }

    /// The VMs of `set`, with their power states.
    pub async fn vms(&self, set: &ScaleSet) -> Result<Vec<Vm>> {
        let op = "describe_group";
        let mut out = Vec::new();
        match set.orchestration {
            Orchestration::Uniform => {
                let mut pages = self
                    .client
                    .virtual_machine_scale_set_v_ms_client()
                    .list(&set.resource_group, &set.name, &self.subscription)
                    .expand("instanceView")
                    .into_stream();
                while let Some(page) = self.bounded(op, async { Ok(pages.next().await) }).await? {
                    let page = page.map_err(|e| from_azure(op, e))?;
                    out.extend(page.value.into_iter().map(uniform_vm));
                }
            }
            Orchestration::Flexible => {
                let mut pages = self
                    .client
                    .virtual_machines_client()
                    .list(&set.resource_group, &self.subscription)
                    .filter(format!("virtualMachineScaleSet/id eq '{}'", set.id))
                    .expand("instanceView")
                    .into_stream();
                while let Some(page) = self.bounded(op, async { Ok(pages.next().await) }).await? {
                    let page = page.map_err(|e| from_azure(op, e))?;
                    out.extend(page.value.into_iter().map(flexible_vm));
                }
            }
        }
        Ok(out)
    }

    async fn update(
        &self,
        operation: &str,
        resource_group: &str,
        name: &str,
        sku: api::models::Sku,
    ) -> Result<Accepted> {
        let update = api::models::VirtualMachineScaleSetUpdate {
            sku: Some(sku),
            ..Default::default()
        };
        let response = self
            .bounded(
                operation,
                self.client
                    .virtual_machine_scale_sets_client()
                    .update(resource_group, name, update, &self.subscription)
                    .send(),
            )
            .await?;
        Ok(accepted(response.as_raw_response()))
    }

    /// Asks for `capacity` instances.
    pub async fn set_capacity(
        &self,
        resource_group: &str,
        name: &str,
        capacity: u32,
    ) -> Result<Accepted> {
        let sku = api::models::Sku {
            capacity: Some(i64::from(capacity)),
            ..Default::default()
        };
        self.update("set_desired_capacity", resource_group, name, sku)
            .await
    }

    /// Changes the size new instances get.
    pub async fn set_size(&self, resource_group: &str, name: &str, size: &str) -> Result<Accepted> {
        let sku = api::models::Sku {
            name: Some(size.to_owned()),
            ..Default::default()
        };
        self.update("set_instance_class", resource_group, name, sku)
            .await
    }

    /// Deletes instances (the scale set's delete-instances operation; capacity drops by as
    /// many).
    pub async fn delete_instances(
        &self,
        resource_group: &str,
        name: &str,
        instance_ids: &[String],
    ) -> Result<Accepted> {
        let ids =
            api::models::VirtualMachineScaleSetVmInstanceRequiredIDs::new(instance_ids.to_vec());
        let response = self
            .bounded(
                "remove_instances",
                self.client
                    .virtual_machine_scale_sets_client()
                    .delete_instances(resource_group, name, ids, &self.subscription)
                    .send(),
            )
            .await?;
        Ok(accepted(response.as_raw_response()))
    }

    /// Brings instances to the scale set's latest model (`manualupgrade`).
    pub async fn upgrade_instances(
        &self,
        resource_group: &str,
        name: &str,
        instance_ids: &[String],
    ) -> Result<Accepted> {
        let ids =
            api::models::VirtualMachineScaleSetVmInstanceRequiredIDs::new(instance_ids.to_vec());
        let response = self
            .bounded(
                "set_instance_class",
                self.client
                    .virtual_machine_scale_sets_client()
                    .update_instances(resource_group, name, ids, &self.subscription)
                    .send(),
            )
            .await?;
        Ok(accepted(response.as_raw_response()))
    }

    /// The VM sizes offered in `location`.
    pub async fn skus(&self, location: &str) -> Result<Vec<VmSku>> {
        let op = "instance_classes";
        let mut pages = self
            .client
            .resource_skus_client()
            .list(&self.subscription)
            .filter(format!("location eq '{location}'"))
            .into_stream();
        let mut out = Vec::new();
        while let Some(page) = self.bounded(op, async { Ok(pages.next().await) }).await? {
            let page = page.map_err(|e| from_azure(op, e))?;
            out.extend(page.value.into_iter().filter_map(|s| vm_sku(s, location)));
        }
        Ok(out)
    }
}

fn accepted(response: &azure_core::Response) -> Accepted {
    let headers = response.headers();
    Accepted::from_headers(u16::from(response.status()), |name| {
        headers
            .get_optional_str(&azure_core::headers::HeaderName::from_static(name))
            .map(str::to_owned)
    })
}

/// The resource group named in an ARM id (`/subscriptions/S/resourceGroups/RG/...`).
pub fn resource_group_of(id: &str) -> Option<String> {
    let mut parts = id.split('/');
    while let Some(part) = parts.next() {
        if part.eq_ignore_ascii_case("resourceGroups") {
            return parts.next().map(str::to_owned);
        }
    }
    None
}

/// A serde enum's wire spelling (`UnknownValue`s included).
fn spelled<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn tags(value: Option<serde_json::Value>) -> BTreeMap<String, String> {
    match value {
        Some(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn scale_set(set: api::models::VirtualMachineScaleSet, resource_group: &str) -> Result<ScaleSet> {
    let id = set.resource.id.clone().unwrap_or_default();
    let name = set.resource.name.clone().unwrap_or_default();
    let sku = set.sku.unwrap_or_default();
    let capacity = sku.capacity.unwrap_or(0);
    let capacity = u32::try_from(capacity).map_err(|_| {
        local(
            ErrorKind::Other,
            "describe_group",
            format!("scale set {name} reports capacity {capacity}"),
        )
    })?;
    let props = set.properties.unwrap_or_default();
    let orchestration = match props.orchestration_mode.as_ref().map(spelled).as_deref() {
        Some("Flexible") => Orchestration::Flexible,
        _ => Orchestration::Uniform,
    };
    let upgrade_mode = match props
        .upgrade_policy
        .as_ref()
        .and_then(|p| p.mode.as_ref())
        .map(spelled)
        .as_deref()
    {
        Some("Automatic") => UpgradeMode::Automatic,
        Some("Rolling") => UpgradeMode::Rolling,
        _ => UpgradeMode::Manual,
    };
    let spot = props
        .virtual_machine_profile
        .as_ref()
        .and_then(|p| p.priority.as_ref())
        .map(spelled)
        .is_some_and(|p| p == "Spot" || p == "Low");
    Ok(ScaleSet {
        resource_group: resource_group_of(&id).unwrap_or_else(|| resource_group.to_owned()),
        id,
        name,
        location: set.resource.location,
        size: sku.name.unwrap_or_default(),
        capacity,
        orchestration,
        upgrade_mode,
        zones: set.zones,
        tags: tags(set.resource.tags),
        spot,
        provisioning_state: props.provisioning_state.unwrap_or_default(),
    })
}

fn power_state(statuses: &[api::models::InstanceViewStatus]) -> Option<String> {
    statuses
        .iter()
        .filter_map(|s| s.code.as_deref())
        .find_map(|c| c.strip_prefix("PowerState/"))
        .map(str::to_owned)
}

fn time_of(t: Option<time::OffsetDateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond()))
}

fn uniform_vm(vm: api::models::VirtualMachineScaleSetVm) -> Vm {
    let props = vm.properties.unwrap_or_default();
    let size = vm
        .sku
        .and_then(|s| s.name)
        .or_else(|| {
            props
                .hardware_profile
                .as_ref()
                .and_then(|h| h.vm_size.as_ref())
                .map(spelled)
        })
        .unwrap_or_default();
    Vm {
        instance_id: vm.instance_id.unwrap_or_default(),
        name: vm.resource.name.unwrap_or_default(),
        zone: vm.zones.into_iter().next(),
        size,
        provisioning_state: props.provisioning_state.unwrap_or_default(),
        power_state: props
            .instance_view
            .as_ref()
            .and_then(|v| power_state(&v.statuses)),
        protected: props
            .protection_policy
            .and_then(|p| p.protect_from_scale_in)
            .unwrap_or(false),
        created: time_of(props.time_created),
    }
}

fn flexible_vm(vm: api::models::VirtualMachine) -> Vm {
    let props = vm.properties.unwrap_or_default();
    let name = vm.resource.name.unwrap_or_default();
    Vm {
        instance_id: name.clone(),
        name,
        zone: vm.zones.into_iter().next(),
        size: props
            .hardware_profile
            .as_ref()
            .and_then(|h| h.vm_size.as_ref())
            .map(spelled)
            .unwrap_or_default(),
        provisioning_state: props.provisioning_state.unwrap_or_default(),
        power_state: props
            .instance_view
            .as_ref()
            .and_then(|v| power_state(&v.statuses)),
        // The VM API carries no scale-in protection: Flexible members are never protected here.
        protected: false,
        created: time_of(props.time_created),
    }
}

fn vm_sku(sku: api::models::ResourceSku, location: &str) -> Option<VmSku> {
    if !sku
        .resource_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("virtualMachines"))
    {
        return None;
    }
    let capability = |name: &str| {
        sku.capabilities
            .iter()
            .find(|c| c.name.as_deref() == Some(name))
            .and_then(|c| c.value.clone())
    };
    let number = |name: &str| capability(name).and_then(|v| v.parse::<f64>().ok());
    let zones = sku
        .location_info
        .iter()
        .filter(|l| {
            l.location
                .as_deref()
                .is_some_and(|l| l.eq_ignore_ascii_case(location))
        })
        .flat_map(|l| l.zones.clone())
        .collect();
    let restricted = sku.restrictions.iter().any(|r| {
        spelled(&r.type_) == "Location" && r.values.iter().any(|v| v.eq_ignore_ascii_case(location))
    });
    Some(VmSku {
        name: sku.name.clone()?,
        family: sku.family.clone().unwrap_or_default(),
        vcpus: number("vCPUs")?,
        memory_gib: number("MemoryGB")?,
        gpus: number("GPUs").map(|g| g as u32).unwrap_or(0),
        arm64: capability("CpuArchitectureType").is_some_and(|a| a.eq_ignore_ascii_case("Arm64")),
        zones,
        restricted,
    })
}
