//! The vertical move: changing the instance type an Auto Scaling group launches, then replacing
//! the running instances with an instance refresh.
//!
//! How the type is changed follows how the group is configured:
//! - a mixed-instances policy with overrides: the new type becomes the first (preferred)
//!   override;
//! - a launch template (alone or in a mixed-instances policy): a new template version with the
//!   new type, based on the version in use, and the group is pointed at it;
//! - a launch configuration (legacy): a copy of the configuration with the new type.
//!
//! Progress is reported as an [`Activity`] built from `DescribeInstanceRefreshes`.
//!
//! A [`DisruptionBudget`] becomes the refresh's preferences ([`refresh_preferences`]): new
//! instances launch before old ones terminate (`MinHealthyPercentage` 100) and at most
//! `max_unavailable` instances are replaced at once (`MaxHealthyPercentage` 100 + that share
//! of the group's desired capacity, in whole percent rounded down, at least 1 %: a group of more
//! than 100 × `max_unavailable` instances may have 1 % of them replaced at once, which is the
//! smallest step EC2 Auto Scaling takes). `per_window` becomes checkpoints every `per_window`
//! instances (as a percentage of the group, rounded down, at least 1 %) with a
//! `CheckpointDelay` of `window` (at most the 2 days EC2 Auto Scaling allows): the refresh
//! pauses for a window after every `per_window` replacements, so no window sees more. Without a
//! budget, the refresh keeps 90 % of the group healthy, as before.

use aws_sdk_autoscaling::types::{
    AutoScalingGroup, InstanceRefresh, LaunchTemplate, LaunchTemplateOverrides,
    LaunchTemplateSpecification, MixedInstancesPolicy, RefreshPreferences,
};
use aws_sdk_ec2::types::{InstanceType, RequestLaunchTemplateData};
use hoist_api::{Activity, DisruptionBudget, ErrorKind, Result};

use crate::client::AwsProvider;
use crate::errors::{SdkResultExt, local};
use crate::time::to_chrono;

const OP: &str = "set_instance_class";

impl AwsProvider {
    /// Changes the type new instances of `group` get and starts an instance refresh when the
    /// group has instances to replace.
    pub(crate) async fn change_instance_type(
        &self,
        group: &str,
        instance_type: &str,
        budget: Option<DisruptionBudget>,
    ) -> Result<Option<Activity>> {
        let g = self.raw_group(group).await?;
        self.check_instance_type_exists(instance_type).await?;

        if let Some(policy) = g.mixed_instances_policy() {
            let template = policy
                .launch_template()
                .cloned()
                .unwrap_or_else(|| LaunchTemplate::builder().build());
            let new_template = if !template.overrides().is_empty() {
                let mut overrides = vec![
                    LaunchTemplateOverrides::builder()
                        .instance_type(instance_type)
                        .build(),
                ];
                overrides.extend(
                    template
                        .overrides()
                        .iter()
                        .filter(|o| o.instance_type() != Some(instance_type))
                        .cloned(),
                );
                LaunchTemplate::builder()
                    .set_launch_template_specification(
                        template.launch_template_specification().cloned(),
                    )
                    .set_overrides(Some(overrides))
                    .build()
            } else {
                let spec = template.launch_template_specification().ok_or_else(|| {
                    local(
                        ErrorKind::Unsupported,
                        OP,
                        format!(
                            "group {group} has a mixed-instances policy without a launch template"
                        ),
                    )
                })?;
                let spec = self.new_template_version(spec, instance_type).await?;
                LaunchTemplate::builder()
                    .launch_template_specification(spec)
                    .set_overrides(None)
                    .build()
            };
            self.clients
                .autoscaling
                .update_auto_scaling_group()
                .auto_scaling_group_name(group)
                .mixed_instances_policy(
                    MixedInstancesPolicy::builder()
                        .launch_template(new_template)
                        .set_instances_distribution(policy.instances_distribution().cloned())
                        .build(),
                )
                .send()
                .await
                .aws("update_auto_scaling_group")?;
        } else if let Some(spec) = g.launch_template() {
            let spec = self.new_template_version(spec, instance_type).await?;
            self.clients
                .autoscaling
                .update_auto_scaling_group()
                .auto_scaling_group_name(group)
                .launch_template(spec)
                .send()
                .await
                .aws("update_auto_scaling_group")?;
        } else if let Some(name) = g.launch_configuration_name() {
            let new_name = self.copy_launch_configuration(name, instance_type).await?;
            self.clients
                .autoscaling
                .update_auto_scaling_group()
                .auto_scaling_group_name(group)
                .launch_configuration_name(new_name)
                .send()
                .await
                .aws("update_auto_scaling_group")?;
        } else {
            return Err(local(
                ErrorKind::Unsupported,
                OP,
                format!(
                    "group {group} has no launch template, mixed-instances policy or launch configuration to change"
                ),
            ));
        }
        tracing::info!(provider = %self.name, group, instance_type, "instance type changed");

        let outdated = g
            .instances()
            .iter()
            .any(|i| i.instance_type() != Some(instance_type));
        if !self.instance_refresh || !outdated {
            return Ok(None);
        }
        let started = self
            .clients
            .autoscaling
            .start_instance_refresh()
            .auto_scaling_group_name(group)
            .preferences(refresh_preferences(
                budget,
                g.desired_capacity().unwrap_or_default(),
            ))
            .send()
            .await
            .map_err(|e| {
                let e = crate::errors::from_sdk(e, "start_instance_refresh");
                local(
                    e.kind(),
                    OP,
                    format!(
                        "{group} now launches {instance_type}, but the instance refresh that replaces its running instances did not start"
                    ),
                )
                .with_retryable(e.is_retryable())
                .with_source(e)
            })?;
        let id = started.instance_refresh_id().unwrap_or_default().to_owned();
        let refreshes = self.instance_refreshes(group).await?;
        Ok(Some(
            refreshes
                .into_iter()
                .find(|a| a.id == id)
                .unwrap_or_else(|| Activity {
                    description: format!("instance refresh of {group} to {instance_type}"),
                    id,
                    started_at: chrono::Utc::now(),
                    progress_percent: Some(0),
                    done: false,
                }),
        ))
    }

    /// The group as the SDK describes it, if it is one this provider manages.
    pub(crate) async fn raw_group(&self, group: &str) -> Result<AutoScalingGroup> {
        let out = self
            .clients
            .autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(group)
            .send()
            .await
            .aws("describe_auto_scaling_groups")?;
        out.auto_scaling_groups()
            .iter()
            .find(|g| {
                g.auto_scaling_group_name() == Some(group) && {
                    let tags = g
                        .tags()
                        .iter()
                        .filter_map(|t| {
                            Some((
                                t.key()?.to_owned(),
                                t.value().unwrap_or_default().to_owned(),
                            ))
                        })
                        .collect();
                    self.selector.matches(group, &tags)
                }
            })
            .cloned()
            .ok_or_else(|| self.group_not_found(group))
    }

    async fn check_instance_type_exists(&self, instance_type: &str) -> Result<()> {
        if instance_type.is_empty() {
            return Err(local(
                ErrorKind::InvalidInput,
                OP,
                "the instance type is empty",
            ));
        }
        let out = self
            .clients
            .ec2
            .describe_instance_types()
            .instance_types(InstanceType::from(instance_type))
            .send()
            .await
            .map_err(|e| crate::errors::from_sdk(e, "describe_instance_types"));
        match out {
            Ok(out) if !out.instance_types().is_empty() => Ok(()),
            Ok(_) => Err(local(
                ErrorKind::InvalidInput,
                OP,
                format!("unknown instance type {instance_type}"),
            )),
            Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::NotFound) => {
                Err(local(
                    ErrorKind::InvalidInput,
                    OP,
                    format!("unknown instance type {instance_type}"),
                )
                .with_source(e))
            }
            Err(e) => Err(e),
        }
    }

    /// Creates a launch template version with `instance_type` on top of the one `spec` uses and
    /// returns a specification pointing at it.
    async fn new_template_version(
        &self,
        spec: &LaunchTemplateSpecification,
        instance_type: &str,
    ) -> Result<LaunchTemplateSpecification> {
        let source_version = spec.version().unwrap_or("$Default").to_owned();
        let id = spec.launch_template_id().map(str::to_owned);
        let out = self
            .clients
            .ec2
            .create_launch_template_version()
            .set_launch_template_id(id.clone())
            .set_launch_template_name(if id.is_some() {
                None
            } else {
                spec.launch_template_name().map(str::to_owned)
            })
            .source_version(source_version)
            .version_description(format!("hoist: instance type {instance_type}"))
            .launch_template_data(
                RequestLaunchTemplateData::builder()
                    .instance_type(InstanceType::from(instance_type))
                    .build(),
            )
            .send()
            .await
            .aws("create_launch_template_version")?;
        let version = out
            .launch_template_version()
            .and_then(|v| v.version_number())
            .ok_or_else(|| {
                local(
                    ErrorKind::Other,
                    OP,
                    "EC2 created a launch template version without a number",
                )
            })?;
        let template_id = out
            .launch_template_version()
            .and_then(|v| v.launch_template_id())
            .map(str::to_owned)
            .or(id);
        Ok(LaunchTemplateSpecification::builder()
            .set_launch_template_id(template_id.clone())
            .set_launch_template_name(if template_id.is_some() {
                None
            } else {
                spec.launch_template_name().map(str::to_owned)
            })
            .version(version.to_string())
            .build())
    }

    /// Copies a launch configuration with a new instance type; returns the copy's name.
    async fn copy_launch_configuration(&self, name: &str, instance_type: &str) -> Result<String> {
        let out = self
            .clients
            .autoscaling
            .describe_launch_configurations()
            .launch_configuration_names(name)
            .send()
            .await
            .aws("describe_launch_configurations")?;
        let old = out.launch_configurations().first().ok_or_else(|| {
            local(
                ErrorKind::NotFound,
                OP,
                format!("launch configuration {name}"),
            )
        })?;
        let new_name = format!(
            "{}-{}-{}",
            name.split("-hoist-").next().unwrap_or(name),
            "hoist",
            format_args!(
                "{}-{}",
                instance_type.replace('.', "-"),
                chrono::Utc::now().format("%Y%m%d%H%M%S")
            )
        );
        self.clients
            .autoscaling
            .create_launch_configuration()
            .launch_configuration_name(&new_name)
            .set_image_id(old.image_id().map(str::to_owned))
            .set_key_name(old.key_name().map(str::to_owned))
            .set_security_groups(Some(old.security_groups().to_vec()))
            .set_user_data(old.user_data().map(str::to_owned))
            .set_iam_instance_profile(old.iam_instance_profile().map(str::to_owned))
            .set_ebs_optimized(old.ebs_optimized())
            .set_associate_public_ip_address(old.associate_public_ip_address())
            .set_spot_price(old.spot_price().map(str::to_owned))
            .set_block_device_mappings(Some(old.block_device_mappings().to_vec()))
            .set_instance_monitoring(old.instance_monitoring().cloned())
            .set_metadata_options(old.metadata_options().cloned())
            .instance_type(instance_type)
            .send()
            .await
            .aws("create_launch_configuration")?;
        Ok(new_name)
    }

    /// Instance refreshes of a group, as activities.
    pub(crate) async fn instance_refreshes(&self, group: &str) -> Result<Vec<Activity>> {
        let out = self
            .clients
            .autoscaling
            .describe_instance_refreshes()
            .auto_scaling_group_name(group)
            .send()
            .await
            .aws("describe_instance_refreshes")?;
        Ok(out
            .instance_refreshes()
            .iter()
            .map(refresh_activity)
            .collect())
    }
}

/// An instance refresh as a neutral activity.
pub(crate) fn refresh_activity(r: &InstanceRefresh) -> Activity {
    let status = r.status().map(|s| s.as_str()).unwrap_or("Unknown");
    let done = matches!(
        status,
        "Successful" | "Failed" | "Cancelled" | "RollbackSuccessful" | "RollbackFailed"
    );
    let mut description = format!("instance refresh: {status}");
    if let Some(reason) = r.status_reason() {
        description.push_str(": ");
        description.push_str(reason);
    }
    Activity {
        id: r.instance_refresh_id().unwrap_or_default().to_owned(),
        description,
        started_at: r.start_time().and_then(to_chrono).unwrap_or_default(),
        progress_percent: r
            .percentage_complete()
            .map(|p| p.clamp(0, 100) as u8)
            .or(if done { Some(100) } else { None }),
        done,
    }
}

/// The instance refresh's preferences for `budget` on a group of `desired` instances (see the
/// [module docs](self)).
pub(crate) fn refresh_preferences(
    budget: Option<DisruptionBudget>,
    desired: i32,
) -> RefreshPreferences {
    let builder = RefreshPreferences::builder().skip_matching(true);
    let Some(budget) = budget else {
        return builder.min_healthy_percentage(90).build();
    };
    let desired = i64::from(desired.max(1));
    let percent = |n: u32| (i64::from(n) * 100 / desired).clamp(1, 100) as i32;
    let builder = builder
        .min_healthy_percentage(100)
        .max_healthy_percentage(100 + percent(budget.max_unavailable));
    match budget.per_window {
        Some(n) if i64::from(n) < desired => {
            let step = percent(n);
            let checkpoints: Vec<i32> = (1..)
                .map(|k| k * step)
                .take_while(|&p| p < 100)
                .chain([100])
                .collect();
            builder
                .set_checkpoint_percentages(Some(checkpoints))
                .checkpoint_delay(budget.window.as_secs().min(172_800) as i32)
                .build()
        }
        _ => builder.build(),
    }
}

#[cfg(test)]
mod tests {
    //! moto has no instance refresh (StartInstanceRefresh answers HTTP 500), so the refresh path
    //! of a vertical move is tested against the SDK's mock interceptor.

    use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
    use aws_sdk_autoscaling::operation::describe_instance_refreshes::DescribeInstanceRefreshesOutput;
    use aws_sdk_autoscaling::operation::start_instance_refresh::StartInstanceRefreshOutput;
    use aws_sdk_autoscaling::operation::update_auto_scaling_group::UpdateAutoScalingGroupOutput;
    use aws_sdk_autoscaling::types::{
        AutoScalingGroup, Instance, InstanceRefresh, InstanceRefreshStatus, LifecycleState,
    };
    use aws_sdk_ec2::operation::create_launch_template_version::CreateLaunchTemplateVersionOutput;
    use aws_sdk_ec2::operation::describe_instance_types::DescribeInstanceTypesOutput;
    use aws_sdk_ec2::types::{InstanceTypeInfo, LaunchTemplateVersion};
    use aws_smithy_mocks::mock;
    use hoist_api::ScalingProvider;

    use super::*;
    use crate::testing::mocked_provider;

    #[tokio::test]
    async fn a_vertical_move_versions_the_template_and_reports_the_refresh() {
        let describe = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups)
            .then_output(|| {
                DescribeAutoScalingGroupsOutput::builder()
                    .auto_scaling_groups(
                        AutoScalingGroup::builder()
                            .auto_scaling_group_name("web")
                            .min_size(1)
                            .max_size(4)
                            .desired_capacity(2)
                            .launch_template(
                                LaunchTemplateSpecification::builder()
                                    .launch_template_id("lt-1")
                                    .version("1")
                                    .build(),
                            )
                            .instances(
                                Instance::builder()
                                    .instance_id("i-1")
                                    .instance_type("m5.large")
                                    .lifecycle_state(LifecycleState::InService)
                                    .build(),
                            )
                            .build(),
                    )
                    .build()
            });
        let types = mock!(aws_sdk_ec2::Client::describe_instance_types)
            .match_requests(|r| r.instance_types().iter().any(|t| t.as_str() == "c5.large"))
            .then_output(|| {
                DescribeInstanceTypesOutput::builder()
                    .instance_types(
                        InstanceTypeInfo::builder()
                            .instance_type(InstanceType::C5Large)
                            .build(),
                    )
                    .build()
            });
        let version = mock!(aws_sdk_ec2::Client::create_launch_template_version)
            .match_requests(|r| {
                r.launch_template_id() == Some("lt-1")
                    && r.source_version() == Some("1")
                    && r.launch_template_data()
                        .and_then(|d| d.instance_type())
                        .map(|t| t.as_str())
                        == Some("c5.large")
            })
            .then_output(|| {
                CreateLaunchTemplateVersionOutput::builder()
                    .launch_template_version(
                        LaunchTemplateVersion::builder()
                            .launch_template_id("lt-1")
                            .version_number(2)
                            .build(),
                    )
                    .build()
            });
        let update = mock!(aws_sdk_autoscaling::Client::update_auto_scaling_group)
            .match_requests(|r| {
                r.auto_scaling_group_name() == Some("web")
                    && r.launch_template().and_then(|t| t.version()) == Some("2")
                    && r.launch_template().and_then(|t| t.launch_template_id()) == Some("lt-1")
            })
            .then_output(|| UpdateAutoScalingGroupOutput::builder().build());
        let start = mock!(aws_sdk_autoscaling::Client::start_instance_refresh)
            .match_requests(|r| r.auto_scaling_group_name() == Some("web"))
            .then_output(|| {
                StartInstanceRefreshOutput::builder()
                    .instance_refresh_id("r-1")
                    .build()
            });
        let progress =
            mock!(aws_sdk_autoscaling::Client::describe_instance_refreshes).then_output(|| {
                DescribeInstanceRefreshesOutput::builder()
                    .instance_refreshes(
                        InstanceRefresh::builder()
                            .instance_refresh_id("r-1")
                            .status(InstanceRefreshStatus::InProgress)
                            .percentage_complete(40)
                            .start_time(aws_smithy_types::DateTime::from_secs(1_900_000_000))
                            .build(),
                    )
                    .build()
            });
        let aws = mocked_provider(&[&describe, &types, &version, &update, &start, &progress]);
        let activity = aws
            .set_instance_class("web", &hoist_api::ChangeInstanceClass::new("c5.large"))
            .await
            .unwrap()
            .expect("a refresh");
        assert_eq!(activity.id, "r-1");
        assert_eq!(activity.progress_percent, Some(40));
        assert!(!activity.done);
        assert_eq!(activity.started_at.timestamp(), 1_900_000_000);
        assert_eq!(
            (version.num_calls(), update.num_calls(), start.num_calls()),
            (1, 1, 1)
        );
    }

    #[test]
    fn finished_refreshes_are_done_at_full_progress() {
        let r = InstanceRefresh::builder()
            .instance_refresh_id("r-2")
            .status(InstanceRefreshStatus::Successful)
            .build();
        let a = refresh_activity(&r);
        assert!(a.done);
        assert_eq!(a.progress_percent, Some(100));
    }

    #[test]
    fn a_disruption_budget_becomes_the_refresh_preferences() {
        // No budget: as before, 90 % healthy.
        let p = refresh_preferences(None, 10);
        assert_eq!(p.min_healthy_percentage(), Some(90));
        assert_eq!(p.max_healthy_percentage(), None);
        // 2 of 10 at once, launched before the old ones go; 3 per hour: checkpoints every 30 %.
        let budget = DisruptionBudget::new(2).with_window(3, std::time::Duration::from_secs(3600));
        let p = refresh_preferences(Some(budget), 10);
        assert_eq!(p.min_healthy_percentage(), Some(100));
        assert_eq!(p.max_healthy_percentage(), Some(120));
        assert_eq!(p.checkpoint_percentages(), [30, 60, 90, 100]);
        assert_eq!(p.checkpoint_delay(), Some(3600));
        // One at a time in a group of 1,000 rounds up to the 1 % step EC2 Auto Scaling takes.
        let p = refresh_preferences(Some(DisruptionBudget::new(1)), 1000);
        assert_eq!(p.max_healthy_percentage(), Some(101));
        assert!(p.checkpoint_percentages().is_empty());
        // A window larger than the group needs no checkpoint.
        let budget = DisruptionBudget::new(5).with_window(50, std::time::Duration::from_secs(60));
        let p = refresh_preferences(Some(budget), 10);
        assert_eq!(p.max_healthy_percentage(), Some(150));
        assert!(p.checkpoint_percentages().is_empty());
    }
}
