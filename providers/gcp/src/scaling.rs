//! [`ScalingProvider`] and [`InstanceCatalog`] on managed instance groups.
//!
//! - **Groups** are managed instance groups, zonal or regional: the policy's groups and
//!   `groups`, plus every group whose instance template carries the `labels` setting's labels.
//!   Desired capacity is the target size. The bounds are the template's labels
//!   `hoist-min-size` and `hoist-max-size` (default 0 and 1000 for a zonal group, 2000 for a
//!   regional one, Compute Engine's limits), inside which the policy's own bounds apply.
//! - **Instances** are the managed instances, their status and current action mapped to the
//!   core states: an instance being created whose last attempt failed (a stockout, a quota) is
//!   failed; one being created, recreated, verified, started or resumed, or
//!   `PROVISIONING`/`STAGING`, is pending; `RUNNING` with no disruptive action is running;
//!   `DELETING` or `ABANDONING` is terminating; stopped, suspended or terminated is failed.
//! - **Scale in by choice** uses delete-instances, which lowers the target size by as many
//!   (Compute Engine's behaviour); without `decrement` the size is set back.
//! - **The vertical move** copies the current instance template with the new machine type
//!   (`{template}-hoist-{machine-type}-{time}`), points the group at it and starts a proactive
//!   rolling replacement (`PROACTIVE`, `REPLACE`, surge of one instance per zone, none
//!   unavailable).
//!
//! Every write is an operation followed to `DONE`: the call returns when it ended, or after
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

use crate::GcpProvider;
use crate::catalog::instance_class;
use crate::compute::{ManagedVm, Mig, Template, last_segment};
use crate::errors::local;
use crate::settings::Location;

/// The template label holding a group's lowest size.
pub const MIN_SIZE_LABEL: &str = "hoist-min-size";
/// The template label holding a group's highest size.
pub const MAX_SIZE_LABEL: &str = "hoist-max-size";
/// The most instances a zonal group holds.
pub const ZONAL_MAX: u32 = 1000;
/// The most instances a regional group holds.
pub const REGIONAL_MAX: u32 = 2000;

/// The core state of a managed instance from its status, current action and whether its last
/// creation attempt failed (a stockout or quota: not serving, and not coming by itself soon).
pub fn instance_state(status: &str, action: &str, creation_failed: bool) -> InstanceState {
    if creation_failed && action.starts_with("CREATING") {
        return InstanceState::Failed;
    }
    match action {
        "DELETING" | "ABANDONING" => return InstanceState::Terminating,
        "CREATING"
        | "CREATING_WITHOUT_RETRIES"
        | "RECREATING"
        | "VERIFYING"
        | "STARTING"
        | "RESUMING" => return InstanceState::Pending,
        _ => {}
    }
    match status {
        "RUNNING" => InstanceState::Running,
        "PROVISIONING" | "STAGING" | "" => InstanceState::Pending,
        "STOPPING" | "SUSPENDING" => InstanceState::Terminating,
        _ => InstanceState::Failed,
    }
}

fn bound(template: &Template, mig: &Mig, label: &str, default: u32, max: u32) -> Result<u32> {
    match template.labels.get(label) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| {
                local(
                    ErrorKind::Config,
                    "describe_group",
                    format!(
                        "group {}: template label {label}={v} is not a number of instances in 0..={max}",
                        mig.name
                    ),
                )
            }),
    }
}

/// The group Hoist sees for a managed instance group, its template and instances.
pub fn scaling_group(
    id: &str,
    mig: &Mig,
    template: &Template,
    vms: &[ManagedVm],
) -> Result<ScalingGroup> {
    let max = match mig.location {
        Location::Zone(_) => ZONAL_MAX,
        Location::Region(_) => REGIONAL_MAX,
    };
    let min_size = bound(template, mig, MIN_SIZE_LABEL, 0, max)?;
    let max_size = bound(template, mig, MAX_SIZE_LABEL, max, max)?;
    if min_size > max_size {
        return Err(local(
            ErrorKind::Config,
            "describe_group",
            format!(
                "group {}: {MIN_SIZE_LABEL}={min_size} is above {MAX_SIZE_LABEL}={max_size}",
                mig.name
            ),
        ));
    }
    let now = Utc::now();
    let instances = vms
        .iter()
        .map(|vm| Instance {
            id: vm.name.clone(),
            instance_class: template.machine_type.clone(),
            zone: vm.zone.clone(),
            capacity_type: if template.spot {
                CapacityType::Spot
            } else {
                CapacityType::OnDemand
            },
            state: instance_state(&vm.status, &vm.action, vm.last_error.is_some()),
            launched_at: now,
            protected_from_scale_in: false,
        })
        .collect();
    let mut tags: std::collections::BTreeMap<String, String> = template.labels.clone();
    tags.insert("gcp:location".to_owned(), mig.location.name().to_owned());
    tags.insert("gcp:instance-template".to_owned(), template.name.clone());
    Ok(ScalingGroup {
        id: id.to_owned(),
        min_size,
        max_size,
        desired_capacity: mig.target_size,
        instance_class: template.machine_type.clone(),
        zones: mig.zones.clone(),
        instances,
        tags,
    })
}

/// A template name for `base` with `machine_type`, within Compute Engine's 63 characters.
pub fn template_name(base: &str, machine_type: &str, at: chrono::DateTime<Utc>) -> String {
    let suffix = format!("-{machine_type}-{}", at.format("%Y%m%d%H%M%S%3f"));
    let keep = 63usize.saturating_sub(suffix.len());
    let mut base: String = base.chars().take(keep).collect();
    while base.ends_with('-') {
        base.pop();
    }
    format!("{base}{suffix}")
}

impl GcpProvider {
    /// The provider's groups: `groups` (and the policy's) and those whose template carries
    /// `labels`.
    pub(crate) async fn group_ids(&self) -> Result<Vec<String>> {
        let mut ids = self.settings.groups.clone();
        if !self.settings.labels.is_empty() {
            let mut seen: BTreeSet<String> = ids.iter().cloned().collect();
            for mig in self.compute.groups().await? {
                let template = self.compute.template(&mig.template).await?;
                let carries = self
                    .settings
                    .labels
                    .iter()
                    .all(|(k, v)| template.labels.get(k) == Some(v));
                let id = format!("{}/{}", mig.location.name(), mig.name);
                if carries && seen.insert(id.clone()) {
                    ids.push(id);
                }
            }
        }
        Ok(ids)
    }

    async fn describe(&self, group: &str) -> Result<(Mig, Template, Vec<ManagedVm>, ScalingGroup)> {
        let mig = self.resolve(group).await?;
        let template = self.compute.template(&mig.template).await?;
        let vms = self.compute.instances(&mig).await?;
        let described = scaling_group(group, &mig, &template, &vms)?;
        Ok((mig, template, vms, described))
    }
}

#[async_trait]
impl ScalingProvider for GcpProvider {
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
        format!("{} (gcp)", self.name)
    }

    async fn list_groups(&self) -> Result<Vec<ScalingGroup>> {
        let mut out = Vec::new();
        for id in self.group_ids().await? {
            out.push(self.describe(&id).await?.3);
        }
        Ok(out)
    }

    async fn describe_group(&self, group: &str) -> Result<ScalingGroup> {
        Ok(self.describe(group).await?.3)
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<()> {
        let mig = self.resolve(group).await?;
        let template = self.compute.template(&mig.template).await?;
        let bounds = scaling_group(group, &mig, &template, &[])?;
        checks::desired_within_bounds(group, desired, bounds.min_size, bounds.max_size)?;
        if mig.target_size == desired {
            return Ok(());
        }
        let compute = self.compute.clone();
        let from = mig.target_size;
        self.activities
            .run(
                "set_desired_capacity",
                group,
                self.operation_wait,
                format!("target size {from} -> {desired}"),
                async move {
                    compute.resize(&mig, desired).await?;
                    if desired > from {
                        compute.creations_settled(&mig).await?;
                    }
                    Ok(())
                },
            )
            .await
            .map(|_| ())
    }

    async fn remove_instances(&self, group: &str, request: &RemoveInstances) -> Result<()> {
        let op = "remove_instances";
        if request.instances.is_empty() {
            return Ok(());
        }
        let (mig, _, vms, described) = self.describe(group).await?;
        checks::instances_in_group(&described, &request.instances)?;
        let count = u32::try_from(request.instances.len()).unwrap_or(u32::MAX);
        if request.decrement {
            checks::removal_within_bounds(
                group,
                count,
                described.desired_capacity,
                described.min_size,
            )?;
        }
        let urls: Vec<String> = vms
            .iter()
            .filter(|vm| request.instances.contains(&vm.name))
            .map(|vm| vm.url.clone())
            .collect();
        let keep = (!request.decrement).then_some(mig.target_size);
        let compute = self.compute.clone();
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
                    compute.delete_instances(&mig, &urls).await?;
                    if let Some(size) = keep {
                        compute.resize(&mig, size).await?;
                    }
                    Ok(())
                },
            )
            .await
            .map(|_| ())
    }

    /// A disruption budget's `max_unavailable` is the rolling replacement's `maxSurge` (new
    /// instances boot before old ones go, `maxUnavailable` 0), but a regional group's surge is at
    /// least its number of zones, which Compute Engine requires (a budget of 1 on a group in
    /// three zones replaces up to 3 at once). `per_window` is not honoured: a managed instance
    /// group has no pause between replacements, so it replaces at `maxSurge` until done (keep
    /// the policy's `cooldown` at least as long as a move takes). Without a budget, the surge is
    /// the number of zones.
    async fn set_instance_class(
        &self,
        group: &str,
        request: &ChangeInstanceClass,
    ) -> Result<Option<Activity>> {
        let instance_class = request.instance_class.as_str();
        let op = "set_instance_class";
        let mig = self.resolve(group).await?;
        let (zone, kinds) = self.machine_types().await?;
        if !kinds.iter().any(|k| k.name == instance_class) {
            return Err(local(
                ErrorKind::NotFound,
                op,
                format!("{instance_class} is not a machine type offered in {zone}"),
            ));
        }
        let template = self.compute.template(&mig.template).await?;
        if template.machine_type == instance_class {
            return Ok(None);
        }
        let base = template
            .name
            .split_once("-hoist-")
            .map_or(template.name.as_str(), |(b, _)| b)
            .to_owned();
        let name = template_name(&format!("{base}-hoist"), instance_class, Utc::now());
        let compute = self.compute.clone();
        let machine_type = instance_class.to_owned();
        let zones = u32::try_from(mig.zones.len().max(1)).unwrap_or(1);
        let surge = request
            .disruption
            .map_or(zones, |b| b.max_unavailable.max(zones));
        if let Some(budget) = request.disruption
            && (budget.per_window.is_some() || budget.max_unavailable < zones)
        {
            tracing::warn!(
                provider = %self.name,
                group,
                %budget,
                surge,
                "a managed instance group replaces at maxSurge (at least one per zone) with no pause between replacements"
            );
        }
        let activity = self
            .activities.run(
                op,
                group,
                self.operation_wait,
                format!(
                    "machine type {} -> {machine_type}: template {name}, proactive rolling replacement",
                    template.machine_type
                ),
                async move {
                    let url = compute.copy_template(&template, &name, &machine_type).await?;
                    compute.roll_to(&mig, &url, surge).await
                },
            )
            .await?;
        Ok(Some(activity))
    }

    async fn activities(&self, group: &str) -> Result<Vec<Activity>> {
        self.resolve(group).await?;
        Ok(self.activities.list(group))
    }
}

#[async_trait]
impl InstanceCatalog for GcpProvider {
    fn capabilities(&self) -> CatalogCapabilities {
        CatalogCapabilities {
            spot_prices: true,
            live_prices: self.settings.prices.live,
        }
    }

    fn describe(&self) -> String {
        format!("{} (gcp)", self.name)
    }

    async fn instance_classes(&self) -> Result<Vec<InstanceClass>> {
        self.refresh_prices_if_due().await;
        let (zone, kinds) = self.machine_types().await?;
        let book = self.book();
        let (priced, unpriced): (Vec<InstanceClass>, Vec<InstanceClass>) = kinds
            .iter()
            .map(|k| instance_class(k, &zone, &book))
            .partition(|c| !c.offerings.is_empty());
        if !unpriced.is_empty() {
            tracing::debug!(
                provider = %self.name,
                zone,
                unpriced = unpriced.len(),
                "machine types without core and RAM rates are left out of the catalog"
            );
        }
        Ok(priced)
    }
}

/// The machine type of a template URL or name (for logs).
pub fn machine_type_of(url: &str) -> &str {
    last_segment(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_instance_states_map_to_core_states() {
        let cases = [
            ("PROVISIONING", "CREATING", InstanceState::Pending),
            ("RUNNING", "NONE", InstanceState::Running),
            ("RUNNING", "REFRESHING", InstanceState::Running),
            ("RUNNING", "RECREATING", InstanceState::Pending),
            ("RUNNING", "DELETING", InstanceState::Terminating),
            ("STAGING", "NONE", InstanceState::Pending),
            ("STOPPED", "NONE", InstanceState::Failed),
            ("TERMINATED", "NONE", InstanceState::Failed),
        ];
        for (status, action, state) in cases {
            assert_eq!(
                instance_state(status, action, false),
                state,
                "{status} {action}"
            );
        }
        assert_eq!(instance_state("", "CREATING", true), InstanceState::Failed);
        let at = chrono::DateTime::from_timestamp(0, 0).unwrap();
        let name = template_name(&"x".repeat(70), "n2-standard-4", at);
        assert!(name.len() <= 63, "{name}");
        assert!(name.ends_with("-n2-standard-4-19700101000000000"));
    }
}
