//! Reads Auto Scaling groups and turns them into Hoist's [`ScalingGroup`]: instances with their
//! lifecycle state, zone, instance type, launch time and capacity type (from EC2
//! DescribeInstances, which the Auto Scaling API does not report), and the group's configured
//! instance type (from its mixed-instances policy, launch template or launch configuration).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_autoscaling::types::{AutoScalingGroup, Filter, LaunchTemplateSpecification};
use aws_sdk_ec2::types::Filter as Ec2Filter;
use chrono::{DateTime, Utc};
use hoist_api::{CapacityType, Instance, InstanceState, Result, ScalingGroup};

use crate::client::{AwsProvider, GroupSelector};
use crate::errors::SdkResultExt;
use crate::time::to_chrono;

/// What EC2 knows about an instance that Auto Scaling does not report.
#[derive(Debug, Clone, Copy)]
struct Ec2Facts {
    launched_at: Option<DateTime<Utc>>,
    spot: bool,
}

/// Maps an Auto Scaling lifecycle state (and health) to Hoist's neutral state.
///
/// `Standby` instances count toward desired capacity but take no traffic; they are reported as
/// running, the closest neutral state. Unhealthy instances are reported as failed.
pub fn lifecycle_to_state(lifecycle: &str, health: Option<&str>) -> InstanceState {
    if health.is_some_and(|h| h.eq_ignore_ascii_case("unhealthy")) {
        return InstanceState::Failed;
    }
    match lifecycle {
        "InService" | "Standby" | "EnteringStandby" => InstanceState::Running,
        "Quarantined" => InstanceState::Failed,
        "Terminated" | "Detached" => InstanceState::Terminated,
        s if s.starts_with("Pending") || s.starts_with("Warmed") => InstanceState::Pending,
        s if s.starts_with("Terminating") || s == "Detaching" => InstanceState::Terminating,
        _ => InstanceState::Pending,
    }
}

impl AwsProvider {
    /// Describes the selected groups (only `only` when given), with instances and instance
    /// types resolved.
    pub(crate) async fn fetch_groups(&self, only: Option<&str>) -> Result<Vec<ScalingGroup>> {
        const OP: &str = "describe_auto_scaling_groups";
        let mut raw: Vec<AutoScalingGroup> = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut request = self
                .clients
                .autoscaling
                .describe_auto_scaling_groups()
                .set_next_token(next.take());
            request = match (only, &self.selector) {
                (Some(name), _) => request.auto_scaling_group_names(name),
                (None, GroupSelector::Names(names)) => {
                    request.set_auto_scaling_group_names(Some(names.clone()))
                }
                (None, GroupSelector::Tag { key, value }) => match value {
                    Some(value) => request.filters(
                        Filter::builder()
                            .name(format!("tag:{key}"))
                            .values(value)
                            .build(),
                    ),
                    None => request.filters(Filter::builder().name("tag-key").values(key).build()),
                },
                (None, GroupSelector::Prefix(_) | GroupSelector::All) => request,
            };
            let page = request.send().await.aws(OP)?;
            raw.extend(page.auto_scaling_groups().iter().cloned());
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                break;
            }
        }

        let selected: Vec<(AutoScalingGroup, BTreeMap<String, String>)> = raw
            .into_iter()
            .filter_map(|g| {
                let tags = tags_of(&g);
                let name = g.auto_scaling_group_name()?.to_owned();
                self.selector.matches(&name, &tags).then_some((g, tags))
            })
            .collect();

        self.release_drained(selected.iter().map(|(g, _)| g)).await;

        let instance_ids: Vec<String> = selected
            .iter()
            .flat_map(|(g, _)| g.instances().iter().filter_map(|i| i.instance_id()))
            .map(str::to_owned)
            .collect();
        let facts = self.ec2_facts(&instance_ids).await?;

        let mut groups = Vec::with_capacity(selected.len());
        for (g, tags) in selected {
            let instance_class = self.configured_instance_type(&g).await?;
            groups.push(convert_group(&g, tags, instance_class, &facts));
        }
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(groups)
    }

    /// Launch time and purchase option of instances, from EC2 (missing instances are skipped:
    /// they have just been terminated).
    async fn ec2_facts(&self, ids: &[String]) -> Result<HashMap<String, Ec2Facts>> {
        const OP: &str = "describe_instances";
        let mut facts = HashMap::new();
        for chunk in ids.chunks(200) {
            let mut next: Option<String> = None;
            loop {
                let page = self
                    .clients
                    .ec2
                    .describe_instances()
                    .filters(
                        Ec2Filter::builder()
                            .name("instance-id")
                            .set_values(Some(chunk.to_vec()))
                            .build(),
                    )
                    .set_next_token(next.take())
                    .send()
                    .await
                    .aws(OP)?;
                for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                    let Some(id) = instance.instance_id() else {
                        continue;
                    };
                    facts.insert(
                        id.to_owned(),
                        Ec2Facts {
                            launched_at: instance.launch_time().and_then(to_chrono),
                            spot: instance
                                .instance_lifecycle()
                                .is_some_and(|l| l.as_str() == "spot"),
                        },
                    );
                }
                next = page.next_token().map(str::to_owned);
                if next.is_none() {
                    break;
                }
            }
        }
        Ok(facts)
    }

    /// The instance type new instances of the group get.
    pub(crate) async fn configured_instance_type(&self, g: &AutoScalingGroup) -> Result<String> {
        if let Some(policy) = g.mixed_instances_policy()
            && let Some(template) = policy.launch_template()
        {
            if let Some(first) = template.overrides().iter().find_map(|o| o.instance_type()) {
                return Ok(first.to_owned());
            }
            if let Some(spec) = template.launch_template_specification() {
                return self.launch_template_instance_type(spec).await;
            }
        }
        if let Some(spec) = g.launch_template() {
            return self.launch_template_instance_type(spec).await;
        }
        if let Some(name) = g.launch_configuration_name() {
            let out = self
                .clients
                .autoscaling
                .describe_launch_configurations()
                .launch_configuration_names(name)
                .send()
                .await
                .aws("describe_launch_configurations")?;
            if let Some(t) = out
                .launch_configurations()
                .first()
                .and_then(|c| c.instance_type())
            {
                return Ok(t.to_owned());
            }
        }
        // No configuration to read (or it has no type): fall back to what the instances run.
        Ok(g.instances()
            .iter()
            .find_map(|i| i.instance_type())
            .unwrap_or_default()
            .to_owned())
    }

    /// The instance type in a launch template version.
    async fn launch_template_instance_type(
        &self,
        spec: &LaunchTemplateSpecification,
    ) -> Result<String> {
        let out = self
            .clients
            .ec2
            .describe_launch_template_versions()
            .set_launch_template_id(spec.launch_template_id().map(str::to_owned))
            .set_launch_template_name(if spec.launch_template_id().is_some() {
                None
            } else {
                spec.launch_template_name().map(str::to_owned)
            })
            .versions(spec.version().unwrap_or("$Default"))
            .send()
            .await
            .aws("describe_launch_template_versions")?;
        Ok(out
            .launch_template_versions()
            .first()
            .and_then(|v| v.launch_template_data())
            .and_then(|d| d.instance_type())
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default())
    }
}

fn tags_of(g: &AutoScalingGroup) -> BTreeMap<String, String> {
    g.tags()
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

fn convert_group(
    g: &AutoScalingGroup,
    tags: BTreeMap<String, String>,
    instance_class: String,
    facts: &HashMap<String, Ec2Facts>,
) -> ScalingGroup {
    let created = g.created_time().and_then(to_chrono).unwrap_or_default();
    let instances = g
        .instances()
        .iter()
        .filter_map(|i| {
            let id = i.instance_id()?.to_owned();
            let fact = facts.get(&id);
            Some(Instance {
                instance_class: i.instance_type().unwrap_or(&instance_class).to_owned(),
                zone: i.availability_zone().unwrap_or_default().to_owned(),
                capacity_type: if fact.is_some_and(|f| f.spot) {
                    CapacityType::Spot
                } else {
                    CapacityType::OnDemand
                },
                state: lifecycle_to_state(
                    i.lifecycle_state().map(|s| s.as_str()).unwrap_or(""),
                    i.health_status(),
                ),
                // EC2 no longer knows an instance that has just gone: the group's creation time
                // is the earliest it can have been launched.
                launched_at: fact.and_then(|f| f.launched_at).unwrap_or(created),
                protected_from_scale_in: i.protected_from_scale_in().unwrap_or(false),
                id,
            })
        })
        .collect();
    ScalingGroup {
        id: g.auto_scaling_group_name().unwrap_or_default().to_owned(),
        min_size: non_negative(g.min_size()),
        max_size: non_negative(g.max_size()),
        desired_capacity: non_negative(g.desired_capacity()),
        instance_class,
        zones: g.availability_zones().to_vec(),
        instances,
        tags,
    }
}

fn non_negative(v: Option<i32>) -> u32 {
    v.unwrap_or(0).max(0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_states_map_to_neutral_states() {
        assert_eq!(
            lifecycle_to_state("InService", Some("Healthy")),
            InstanceState::Running
        );
        assert_eq!(
            lifecycle_to_state("Pending:Wait", None),
            InstanceState::Pending
        );
        assert_eq!(
            lifecycle_to_state("Terminating:Proceed", None),
            InstanceState::Terminating
        );
        assert_eq!(
            lifecycle_to_state("Detaching", None),
            InstanceState::Terminating
        );
        assert_eq!(
            lifecycle_to_state("Terminated", None),
            InstanceState::Terminated
        );
        assert_eq!(
            lifecycle_to_state("InService", Some("Unhealthy")),
            InstanceState::Failed
        );
        assert_eq!(lifecycle_to_state("Standby", None), InstanceState::Running);
    }
}
