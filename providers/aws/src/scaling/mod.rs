//! [`ScalingProvider`] for Auto Scaling groups.
//!
//! Bounds are checked here before any write: the AWS API rejects a desired capacity outside
//! `[MinSize, MaxSize]`, but emulators do not, and a clear `invalid_input` error before the call
//! is better than a validation error after it. Scale-in terminates *chosen* instances with a
//! decrement (see [`victims`]), never instances protected from scale-in. A group with a drain
//! gets a termination lifecycle hook, and its instances are released when their drain is over
//! (see [`drain`]).

mod describe;
pub mod drain;
mod instance_class;
pub mod victims;

use std::collections::HashMap;

use async_trait::async_trait;
use hoist_api::{
    Activity, Error, ErrorKind, InstanceId, MetricKind, MetricQuery, RemoveInstances, Result,
    ScalingCapabilities, ScalingGroup, ScalingProvider, TimeRange,
};

pub use describe::lifecycle_to_state;

use crate::client::AwsProvider;
use crate::errors::{PROVIDER, SdkResultExt, local};
use crate::time::to_chrono;
use victims::{VictimSelection, choose_victims};

impl AwsProvider {
    pub(crate) fn group_not_found(&self, group: &str) -> Error {
        Error::not_found(format!(
            "Auto Scaling group {group} (in {}, managed by provider {} selecting {})",
            self.region, self.name, self.selector
        ))
        .with_provider(PROVIDER)
    }

    /// Scales `group` in by `count` instances chosen by `selection`, terminating them with a
    /// decrement of the desired capacity. Returns the instances removed. Fails with
    /// `invalid_input` when that would go below the group's minimum, and removes fewer than
    /// `count` only when fewer unprotected instances exist (never a protected one).
    pub async fn scale_in(
        &self,
        group: &str,
        count: u32,
        selection: VictimSelection,
    ) -> Result<Vec<InstanceId>> {
        let g = self.describe_group(group).await?;
        if g.desired_capacity.saturating_sub(count) < g.min_size || count > g.desired_capacity {
            return Err(local(
                ErrorKind::InvalidInput,
                "scale_in",
                format!(
                    "removing {count} instances from {group} would take desired capacity {} below its minimum {}",
                    g.desired_capacity, g.min_size
                ),
            ));
        }
        let load = if selection == VictimSelection::LeastBusy {
            self.instance_cpu(&g).await?
        } else {
            HashMap::new()
        };
        let victims = choose_victims(&g, count as usize, selection, &load);
        self.terminate(&g, &victims, true).await?;
        Ok(victims)
    }

    /// Recent mean CPU utilisation (0..=1) per instance over the last 10 minutes, from
    /// CloudWatch's per-instance `CPUUtilization`.
    async fn instance_cpu(&self, g: &ScalingGroup) -> Result<HashMap<InstanceId, f64>> {
        let end = chrono::Utc::now();
        let range = TimeRange {
            start: end - chrono::Duration::minutes(10),
            end,
        };
        let mut load = HashMap::new();
        for instance in g.instances.iter().filter(|i| i.state.is_active()) {
            let query = MetricQuery {
                group: g.id.clone(),
                metric: MetricKind::Utilization,
                expression: Some(format!(
                    "AWS/EC2:CPUUtilization:Average{{InstanceId={}}}",
                    instance.id
                )),
            };
            let series = self.get_metric_data(&query, range, 60).await?;
            let samples: Vec<f64> = series
                .iter()
                .flat_map(|s| s.samples.iter().map(|p| p.value))
                .filter(|v| v.is_finite())
                .collect();
            if !samples.is_empty() {
                load.insert(
                    instance.id.clone(),
                    samples.iter().sum::<f64>() / samples.len() as f64 / 100.0,
                );
            }
        }
        Ok(load)
    }

    /// Terminates `instances` of `g`, checking first that they belong to it, are not protected
    /// and that the decrement keeps desired capacity within bounds.
    async fn terminate(
        &self,
        g: &ScalingGroup,
        instances: &[InstanceId],
        decrement: bool,
    ) -> Result<()> {
        const OP: &str = "remove_instances";
        for id in instances {
            let Some(instance) = g.instances.iter().find(|i| &i.id == id) else {
                return Err(local(
                    ErrorKind::NotFound,
                    OP,
                    format!("instance {id} is not in group {}", g.id),
                ));
            };
            if instance.protected_from_scale_in {
                return Err(local(
                    ErrorKind::InvalidInput,
                    OP,
                    format!("instance {id} of group {} is protected from scale-in", g.id),
                ));
            }
        }
        self.ensure_drain_hook(&g.id).await?;
        let mut unique = instances.to_vec();
        unique.sort();
        unique.dedup();
        if unique.len() != instances.len() {
            return Err(local(
                ErrorKind::InvalidInput,
                OP,
                "an instance is listed twice",
            ));
        }
        if decrement && (g.desired_capacity as usize) < instances.len() + g.min_size as usize {
            return Err(local(
                ErrorKind::InvalidInput,
                OP,
                format!(
                    "removing {} instances with decrement would take {} below its minimum {} (desired {})",
                    instances.len(),
                    g.id,
                    g.min_size,
                    g.desired_capacity
                ),
            ));
        }
        for id in instances {
            self.clients
                .autoscaling
                .terminate_instance_in_auto_scaling_group()
                .instance_id(id)
                .should_decrement_desired_capacity(decrement)
                .send()
                .await
                .aws("terminate_instance_in_auto_scaling_group")?;
            tracing::info!(provider = %self.name, group = %g.id, instance = %id, decrement, "instance terminated");
        }
        Ok(())
    }
}

#[async_trait]
impl ScalingProvider for AwsProvider {
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

    async fn list_groups(&self) -> Result<Vec<ScalingGroup>> {
        self.fetch_groups(None).await
    }

    async fn describe_group(&self, group: &str) -> Result<ScalingGroup> {
        self.fetch_groups(Some(group))
            .await?
            .into_iter()
            .find(|g| g.id == group)
            .ok_or_else(|| self.group_not_found(group).with_operation("describe_group"))
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<()> {
        const OP: &str = "set_desired_capacity";
        let g = self.raw_group(group).await?;
        let min = g.min_size().unwrap_or(0).max(0) as u32;
        let max = g.max_size().unwrap_or(0).max(0) as u32;
        hoist_api::checks::desired_within_bounds(group, desired, min, max)
            .map_err(|e| e.with_provider(crate::errors::PROVIDER).with_operation(OP))?;
        let desired_i32 = i32::try_from(desired).map_err(|_| {
            local(
                ErrorKind::InvalidInput,
                OP,
                format!("desired capacity {desired} is too large"),
            )
        })?;
        self.ensure_drain_hook(group).await?;
        self.clients
            .autoscaling
            .set_desired_capacity()
            .auto_scaling_group_name(group)
            .desired_capacity(desired_i32)
            .honor_cooldown(false)
            .send()
            .await
            .aws(OP)?;
        tracing::info!(provider = %self.name, group, desired, "desired capacity set");
        Ok(())
    }

    async fn remove_instances(&self, group: &str, request: &RemoveInstances) -> Result<()> {
        let g = self.describe_group(group).await?;
        self.terminate(&g, &request.instances, request.decrement)
            .await
    }

    async fn set_instance_class(
        &self,
        group: &str,
        request: &hoist_api::ChangeInstanceClass,
    ) -> Result<Option<Activity>> {
        self.change_instance_type(group, &request.instance_class, request.disruption)
            .await
    }

    async fn activities(&self, group: &str) -> Result<Vec<Activity>> {
        // Make sure the group is one of ours before reporting on it.
        self.raw_group(group).await?;
        // Instance refreshes are what this provider starts for vertical moves; with refreshes
        // disabled only the scaling activities are read.
        let mut activities = if self.instance_refresh {
            self.instance_refreshes(group).await?
        } else {
            Vec::new()
        };
        let out = self
            .clients
            .autoscaling
            .describe_scaling_activities()
            .auto_scaling_group_name(group)
            .max_records(50)
            .send()
            .await
            .aws("describe_scaling_activities")?;
        activities.extend(out.activities().iter().map(|a| {
            let status = a.status_code().map(|s| s.as_str()).unwrap_or("Unknown");
            let done = matches!(status, "Successful" | "Failed" | "Cancelled");
            Activity {
                id: a.activity_id().unwrap_or_default().to_owned(),
                description: a
                    .description()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("scaling activity: {status}")),
                started_at: a.start_time().and_then(to_chrono).unwrap_or_default(),
                progress_percent: a.progress().map(|p| p.clamp(0, 100) as u8),
                done,
            }
        }));
        activities.sort_by_key(|a| std::cmp::Reverse(a.started_at));
        Ok(activities)
    }
}
