//! [`ScalingProvider`] and [`InstanceCatalog`] on scale sets.
//!
//! - **Groups** are scale sets: the policy's groups and `groups`, plus every scale set carrying
//!   the `tags` setting's tags. Desired capacity is `sku.capacity`; the bounds are the
//!   scale set's tags `hoist-min-size` and `hoist-max-size` (default 0 and 1000, Azure's limit
//!   for a scale set), inside which the policy's own bounds apply.
//! - **Instances** are the VMs, their provisioning and power states mapped to the core states:
//!   `Creating` (or `starting`) is pending, `Succeeded` and running is running, `Deleting` is
//!   terminating, `Failed`, and a stopped or deallocated VM, are failed (not serving, and not
//!   coming back by themselves).
//! - **Scale in by choice** uses the delete-instances operation; an instance with
//!   `protectFromScaleIn` is never removed by Hoist, and a request naming one is refused.
//! - **The vertical move** sets `sku.name`; the scale set's upgrade policy then decides how
//!   instances move: `Automatic` and `Rolling` are Azure's to carry out, `Manual` is done by
//!   Hoist, a fifth of the instances at a time (`manualupgrade`).
//!
//! Every write is a long-running operation: the call returns when it ended, or after
//! `operation_wait` with the operation left to finish in the background; `activities` reports
//! each one and how it ended.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::Utc;
use hoist_api::checks;
use hoist_api::{
    Activity, CapacityType, CatalogCapabilities, ChangeInstanceClass, ErrorKind, Instance,
    InstanceCatalog, InstanceClass, InstanceState, RemoveInstances, Result, ScalingCapabilities,
    ScalingGroup, ScalingProvider,
};

use crate::AzureProvider;
use crate::catalog::{instance_class, zone_name};
use crate::compute::{ScaleSet, UpgradeMode, Vm};
use crate::errors::local;
use crate::lro::follow;

/// The tag holding a scale set's lowest capacity.
pub const MIN_SIZE_TAG: &str = "hoist-min-size";
/// The tag holding a scale set's highest capacity.
pub const MAX_SIZE_TAG: &str = "hoist-max-size";
/// The most instances a scale set holds.
pub const SCALE_SET_MAX: u32 = 1000;

/// The core state of a VM from its provisioning state and power state.
pub fn instance_state(provisioning: &str, power: Option<&str>) -> InstanceState {
    let provisioning = provisioning.to_ascii_lowercase();
    let power = power.map(str::to_ascii_lowercase);
    match provisioning.as_str() {
        "deleting" => return InstanceState::Terminating,
        "failed" => return InstanceState::Failed,
        _ => {}
    }
    match power.as_deref() {
        Some("stopping" | "stopped" | "deallocating" | "deallocated") => InstanceState::Failed,
        Some("starting") => InstanceState::Pending,
        Some("running") if provisioning != "creating" => InstanceState::Running,
        _ => match provisioning.as_str() {
            "creating" | "migrating" => InstanceState::Pending,
            "succeeded" | "updating" => {
                if power.is_none() || power.as_deref() == Some("running") {
                    InstanceState::Running
                } else {
                    InstanceState::Pending
                }
            }
            _ => InstanceState::Pending,
        },
    }
}

fn bound(set: &ScaleSet, tag: &str, default: u32) -> Result<u32> {
    match set.tags.get(tag) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= SCALE_SET_MAX)
            .ok_or_else(|| {
                local(
                    ErrorKind::Config,
                    "describe_group",
                    format!(
                        "scale set {}: tag {tag}={v} is not a number of instances in 0..={SCALE_SET_MAX}",
                        set.name
                    ),
                )
            }),
    }
}

/// The group Hoist sees for a scale set and its VMs.
pub fn scaling_group(id: &str, set: &ScaleSet, vms: &[Vm]) -> Result<ScalingGroup> {
    let min_size = bound(set, MIN_SIZE_TAG, 0)?;
    let max_size = bound(set, MAX_SIZE_TAG, SCALE_SET_MAX)?;
    if min_size > max_size {
        return Err(local(
            ErrorKind::Config,
            "describe_group",
            format!(
                "scale set {}: {MIN_SIZE_TAG}={min_size} is above {MAX_SIZE_TAG}={max_size}",
                set.name
            ),
        ));
    }
    let zones = if set.zones.is_empty() {
        vec![zone_name(&set.location, None)]
    } else {
        set.zones
            .iter()
            .map(|z| zone_name(&set.location, Some(z)))
            .collect()
    };
    let now = Utc::now();
    let instances = vms
        .iter()
        .map(|vm| Instance {
            id: vm.instance_id.clone(),
            instance_class: if vm.size.is_empty() {
                set.size.clone()
            } else {
                vm.size.clone()
            },
            zone: zone_name(&set.location, vm.zone.as_deref()),
            capacity_type: if set.spot {
                CapacityType::Spot
            } else {
                CapacityType::OnDemand
            },
            state: instance_state(&vm.provisioning_state, vm.power_state.as_deref()),
            launched_at: vm.created.unwrap_or(now),
            protected_from_scale_in: vm.protected,
        })
        .collect();
    let mut tags = set.tags.clone();
    tags.insert("azure:resource-id".to_owned(), set.id.clone());
    tags.insert(
        "azure:resource-group".to_owned(),
        set.resource_group.clone(),
    );
    Ok(ScalingGroup {
        id: id.to_owned(),
        min_size,
        max_size,
        desired_capacity: set.capacity,
        instance_class: set.size.clone(),
        zones,
        instances,
        tags,
    })
}

impl AzureProvider {
    /// The provider's groups: `groups` (and the policy's) and the scale sets carrying `tags`.
    pub(crate) async fn group_ids(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = self.settings.groups.clone();
        if !self.settings.tags.is_empty() {
            let scope = self.settings.resource_group.as_deref();
            let mut seen: BTreeSet<String> = ids.iter().map(|g| g.to_ascii_lowercase()).collect();
            for set in self.compute.scale_sets(scope).await? {
                let carries = self
                    .settings
                    .tags
                    .iter()
                    .all(|(k, v)| set.tags.get(k) == Some(v));
                if !carries {
                    continue;
                }
                let id = match &self.settings.resource_group {
                    Some(rg) if rg.eq_ignore_ascii_case(&set.resource_group) => set.name.clone(),
                    _ => format!("{}/{}", set.resource_group, set.name),
                };
                if seen.insert(id.to_ascii_lowercase()) {
                    ids.push(id);
                }
            }
        }
        Ok(ids)
    }

    async fn describe(&self, group: &str) -> Result<(ScaleSet, Vec<Vm>, ScalingGroup)> {
        let set = self.resolve(group).await?;
        let vms = self.compute.vms(&set).await?;
        let described = scaling_group(group, &set, &vms)?;
        Ok((set, vms, described))
    }
}

#[async_trait]
impl ScalingProvider for AzureProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> ScalingCapabilities {
        ScalingCapabilities {
            set_desired_capacity: true,
            remove_instances: true,
            set_instance_class: true,
            activities: true,
        }
    }

    fn describe(&self) -> String {
        format!("{} (azure)", self.name)
    }

    async fn list_groups(&self) -> Result<Vec<ScalingGroup>> {
        let mut out = Vec::new();
        for id in self.group_ids().await? {
            out.push(self.describe(&id).await?.2);
        }
        Ok(out)
    }

    async fn describe_group(&self, group: &str) -> Result<ScalingGroup> {
        Ok(self.describe(group).await?.2)
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<()> {
        let set = self.resolve(group).await?;
        let described = scaling_group(group, &set, &[])?;
        checks::desired_within_bounds(group, desired, described.min_size, described.max_size)?;
        if set.capacity == desired {
            return Ok(());
        }
        let accepted = self
            .compute
            .set_capacity(&set.resource_group, &set.name, desired)
            .await?;
        let (rest, polling) = (self.rest.clone(), self.polling);
        self.activities
            .run(
                "set_desired_capacity",
                group,
                self.operation_wait,
                format!("capacity {} -> {desired}", set.capacity),
                async move { follow(&rest, "set_desired_capacity", &accepted, polling).await },
            )
            .await
            .map(|_| ())
    }

    async fn remove_instances(&self, group: &str, request: &RemoveInstances) -> Result<()> {
        let op = "remove_instances";
        if request.instances.is_empty() {
            return Ok(());
        }
        let (set, vms, described) = self.describe(group).await?;
        checks::instances_in_group(&described, &request.instances)?;
        let protected: Vec<&str> = vms
            .iter()
            .filter(|vm| vm.protected && request.instances.contains(&vm.instance_id))
            .map(|vm| vm.instance_id.as_str())
            .collect();
        if !protected.is_empty() {
            return Err(local(
                ErrorKind::InvalidInput,
                op,
                format!(
                    "{group}: instance(s) {} are protected from scale-in and are never removed by Hoist",
                    protected.join(", ")
                ),
            ));
        }
        let count = u32::try_from(request.instances.len()).unwrap_or(u32::MAX);
        if request.decrement {
            checks::removal_within_bounds(
                group,
                count,
                described.desired_capacity,
                described.min_size,
            )?;
        }
        let accepted = match self
            .compute
            .delete_instances(&set.resource_group, &set.name, &request.instances)
            .await
        {
            Ok(accepted) => Some(accepted),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::InvalidInput
                        | ErrorKind::Conflict
                        | ErrorKind::Timeout
                        | ErrorKind::Transient
                ) =>
            {
                // A retried or abandoned POST may have been applied already (the retry then
                // finds the instances gone or deleting): look before reporting.
                let now = self.compute.vms(&set).await?;
                let remaining = request
                    .instances
                    .iter()
                    .filter(|id| {
                        now.iter().any(|vm| {
                            &vm.instance_id == *id
                                && !vm.provisioning_state.eq_ignore_ascii_case("Deleting")
                        })
                    })
                    .count();
                if remaining > 0 {
                    return Err(e);
                }
                None
            }
            Err(e) => return Err(e),
        };
        let (rest, polling, compute) = (self.rest.clone(), self.polling, self.compute.clone());
        let keep = (!request.decrement).then_some(set.capacity);
        let (rg, name) = (set.resource_group.clone(), set.name.clone());
        self.activities
            .run(
                op,
                group,
                self.operation_wait,
                format!(
                    "delete instance(s) {}{}",
                    request.instances.join(", "),
                    if keep.is_some() {
                        " and replace them"
                    } else {
                        ""
                    }
                ),
                async move {
                    if let Some(accepted) = &accepted {
                        follow(&rest, op, accepted, polling).await?;
                    }
                    if let Some(capacity) = keep {
                        let again = compute.set_capacity(&rg, &name, capacity).await?;
                        follow(&rest, op, &again, polling).await?;
                    }
                    Ok(())
                },
            )
            .await
            .map(|_| ())
    }

    /// A disruption budget is honoured under the scale set's `Manual` upgrade policy, where
    /// Hoist upgrades the instances itself: at most `max_unavailable` at a time (each upgrade
    /// reimages its instances in place, so they are the unavailable ones), and no more than
    /// `per_window` started in any `window` (Hoist waits between batches). Under `Automatic`
    /// Azure replaces every instance at once, and under `Rolling` the scale set's own rolling
    /// upgrade policy (`maxBatchInstancePercent`, `pauseTimeBetweenBatches`) decides: the budget
    /// is not applied there (a warning says so). Without a budget, a fifth at a time.
    async fn set_instance_class(
        &self,
        group: &str,
        request: &ChangeInstanceClass,
    ) -> Result<Option<Activity>> {
        let instance_class = request.instance_class.as_str();
        let budget = request.disruption;
        let op = "set_instance_class";
        let set = self.resolve(group).await?;
        let (location, skus) = self.skus().await?;
        let Some(sku) = skus
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(instance_class))
        else {
            return Err(local(
                ErrorKind::NotFound,
                op,
                format!("{instance_class} is not a VM size offered in {location}"),
            ));
        };
        if sku.restricted {
            return Err(local(
                ErrorKind::CapacityUnavailable,
                op,
                format!("{instance_class} is not available to this subscription in {location}"),
            ));
        }
        if set.size.eq_ignore_ascii_case(&sku.name) {
            return Ok(None);
        }
        let size = sku.name.clone();
        let accepted = self
            .compute
            .set_size(&set.resource_group, &set.name, &size)
            .await?;
        let (rest, polling, compute) = (self.rest.clone(), self.polling, self.compute.clone());
        let mode = set.upgrade_mode;
        if let Some(budget) = budget
            && mode != UpgradeMode::Manual
        {
            tracing::warn!(
                provider = %self.name,
                group,
                %budget,
                ?mode,
                "the scale set's upgrade policy replaces the instances; the disruption budget applies only under the Manual policy"
            );
        }
        let description = match mode {
            UpgradeMode::Manual => match budget {
                None => format!(
                    "size {} -> {size}, instances upgraded by Hoist a fifth at a time (upgrade policy Manual)",
                    set.size
                ),
                Some(b) => format!(
                    "size {} -> {size}, instances upgraded by Hoist {b} (upgrade policy Manual)",
                    set.size
                ),
            },
            UpgradeMode::Automatic => format!(
                "size {} -> {size}, instances replaced by Azure (upgrade policy Automatic)",
                set.size
            ),
            UpgradeMode::Rolling => format!(
                "size {} -> {size}, instances rolled by Azure in batches (upgrade policy Rolling)",
                set.size
            ),
        };
        let activity = self
            .activities
            .run(op, group, self.operation_wait, description, async move {
                follow(&rest, op, &accepted, polling).await?;
                if mode != UpgradeMode::Manual {
                    return Ok(());
                }
                let vms = compute.vms(&set).await?;
                let stale: Vec<String> = vms
                    .iter()
                    .filter(|vm| !vm.size.eq_ignore_ascii_case(&size))
                    .map(|vm| vm.instance_id.clone())
                    .collect();
                let batch = match budget {
                    Some(b) => b.batch() as usize,
                    None => stale.len().div_ceil(5).max(1),
                };
                let mut started: Vec<(tokio::time::Instant, usize)> = Vec::new();
                for ids in stale.chunks(batch) {
                    if let Some(b) = budget
                        && let Some(per_window) = b.per_window
                    {
                        // Wait until the window has room for this batch.
                        loop {
                            let now = tokio::time::Instant::now();
                            started.retain(|(at, _)| now.duration_since(*at) < b.window);
                            let used: usize = started.iter().map(|(_, n)| n).sum();
                            if used + ids.len() <= per_window as usize {
                                break;
                            }
                            let oldest = started[0].0;
                            tokio::time::sleep_until(oldest + b.window).await;
                        }
                        started.push((tokio::time::Instant::now(), ids.len()));
                    }
                    let upgrade = compute
                        .upgrade_instances(&set.resource_group, &set.name, ids)
                        .await?;
                    follow(&rest, op, &upgrade, polling).await?;
                }
                Ok(())
            })
            .await?;
        Ok(Some(activity))
    }

    async fn activities(&self, group: &str) -> Result<Vec<Activity>> {
        self.resolve(group).await?;
        Ok(self.activities.list(group))
    }
}

#[async_trait]
impl InstanceCatalog for AzureProvider {
    fn capabilities(&self) -> CatalogCapabilities {
        CatalogCapabilities {
            spot_prices: true,
            live_prices: self.settings.prices.live,
        }
    }

    fn describe(&self) -> String {
        format!("{} (azure)", self.name)
    }

    async fn instance_classes(&self) -> Result<Vec<InstanceClass>> {
        self.refresh_prices_if_due().await;
        let (location, skus) = self.skus().await?;
        let book = self.book();
        Ok(skus
            .iter()
            .filter(|s| !s.restricted)
            .map(|s| instance_class(s, &location, &book))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_states_map_to_core_states() {
        let cases = [
            ("Creating", Some("starting"), InstanceState::Pending),
            ("Creating", None, InstanceState::Pending),
            ("Succeeded", Some("running"), InstanceState::Running),
            ("Succeeded", None, InstanceState::Running),
            ("Updating", Some("running"), InstanceState::Running),
            ("Deleting", Some("running"), InstanceState::Terminating),
            ("Failed", Some("running"), InstanceState::Failed),
            ("Succeeded", Some("deallocated"), InstanceState::Failed),
            ("Succeeded", Some("stopped"), InstanceState::Failed),
        ];
        for (provisioning, power, state) in cases {
            assert_eq!(
                instance_state(provisioning, power),
                state,
                "{provisioning} {power:?}"
            );
        }
    }
}
