//! Graceful scale-in on EC2 Auto Scaling, for groups with a drain period (the policy's `drain:`).
//!
//! A termination lifecycle hook named [`DRAIN_HOOK`] (`autoscaling:EC2_INSTANCE_TERMINATING`,
//! heartbeat timeout the drain, default result `CONTINUE`) holds every instance Auto Scaling
//! terminates in `Terminating:Wait`, where a load balancer has already deregistered it (it takes
//! no new work) while it finishes what it has. On every describe of the group, the provider
//! completes the lifecycle action (`CompleteLifecycleAction` with `CONTINUE`) of each instance
//! that has been waiting for the group's drain since the provider first saw it there; the hook's
//! heartbeat timeout ends the wait the same way when no Hoist is running.
//!
//! The hook is put (`PutLifecycleHook`, which creates or updates it) once per provider, before
//! its first write to the group (a desired capacity, a termination), never on a read, so a dry
//! run changes nothing on the group. Auto Scaling takes heartbeat timeouts from 30 s to 2 h: a
//! shorter drain gets a 30 s timeout (and is still completed after the drain), a longer one is
//! refused when the provider is built. A group whose drain is removed from the policy keeps the
//! hook, so its instances still wait out the old timeout: delete it with
//! `aws autoscaling delete-lifecycle-hook --lifecycle-hook-name hoist-drain`.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use aws_sdk_autoscaling::types::AutoScalingGroup;
use chrono::{DateTime, Utc};
use hoist_api::{ErrorKind, Result};

use crate::client::AwsProvider;
use crate::errors::SdkResultExt;

/// The name of the termination lifecycle hook Hoist puts on groups with a drain.
pub const DRAIN_HOOK: &str = "hoist-drain";
/// The lifecycle transition the hook holds.
pub const TERMINATING_TRANSITION: &str = "autoscaling:EC2_INSTANCE_TERMINATING";
/// The lifecycle state of an instance the hook holds.
pub const WAITING: &str = "Terminating:Wait";
/// The shortest heartbeat timeout Auto Scaling accepts, seconds.
pub const MIN_HEARTBEAT_SECONDS: i32 = 30;
/// The longest heartbeat timeout Auto Scaling accepts, seconds: the longest drain.
pub const MAX_HEARTBEAT_SECONDS: i32 = 7_200;

/// The heartbeat timeout of the hook for `drain`: the drain in whole seconds (rounded up), within
/// what Auto Scaling accepts.
pub fn heartbeat_seconds(drain: Duration) -> i32 {
    let seconds = drain.as_secs() + u64::from(drain.subsec_nanos() > 0);
    i32::try_from(seconds)
        .unwrap_or(i32::MAX)
        .clamp(MIN_HEARTBEAT_SECONDS, MAX_HEARTBEAT_SECONDS)
}

/// One instance seen in `Terminating:Wait`.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    since: DateTime<Utc>,
    /// Its lifecycle action was completed (or Auto Scaling said there is none to complete).
    released: bool,
}

/// What the provider remembers about drains: the groups whose hook it has put, and the
/// instances it has seen waiting, by (group, instance).
#[derive(Debug, Default)]
pub(crate) struct DrainState {
    hooked: HashSet<String>,
    waiting: HashMap<(String, String), Waiting>,
}

impl AwsProvider {
    /// The drain period of `group`, when it has one.
    pub fn drain_of(&self, group: &str) -> Option<Duration> {
        self.drains.get(group).copied()
    }

    fn drain_state(&self) -> MutexGuard<'_, DrainState> {
        lock(&self.drain_state)
    }

    /// Puts the drain hook on `group`, once per provider, when the group has a drain.
    pub(crate) async fn ensure_drain_hook(&self, group: &str) -> Result<()> {
        const OP: &str = "put_lifecycle_hook";
        let Some(drain) = self.drain_of(group) else {
            return Ok(());
        };
        if self.drain_state().hooked.contains(group) {
            return Ok(());
        }
        let heartbeat = heartbeat_seconds(drain);
        self.clients
            .autoscaling
            .put_lifecycle_hook()
            .auto_scaling_group_name(group)
            .lifecycle_hook_name(DRAIN_HOOK)
            .lifecycle_transition(TERMINATING_TRANSITION)
            .heartbeat_timeout(heartbeat)
            .default_result("CONTINUE")
            .send()
            .await
            .aws(OP)?;
        tracing::info!(provider = %self.name, group, hook = DRAIN_HOOK, heartbeat_seconds = heartbeat, "termination lifecycle hook in place for the drain");
        self.drain_state().hooked.insert(group.to_owned());
        Ok(())
    }

    /// Completes the lifecycle action of every instance of `groups` (as just described) that has
    /// waited in `Terminating:Wait` for its group's drain since the provider first saw it there.
    /// A failure is logged, not returned: the describe it belongs to still answers, the action
    /// is tried again at the next describe, and the hook's heartbeat timeout ends the wait in
    /// any case.
    pub(crate) async fn release_drained<'a>(
        &self,
        groups: impl IntoIterator<Item = &'a AutoScalingGroup>,
    ) {
        const OP: &str = "complete_lifecycle_action";
        let due = self.due_for_release(groups, self.clock.now());
        for (group, instance) in due {
            let result = self
                .clients
                .autoscaling
                .complete_lifecycle_action()
                .auto_scaling_group_name(&group)
                .lifecycle_hook_name(DRAIN_HOOK)
                .instance_id(&instance)
                .lifecycle_action_result("CONTINUE")
                .send()
                .await
                .aws(OP);
            let released = match result {
                Ok(_) => {
                    tracing::info!(provider = %self.name, %group, %instance, "drain over: instance released for termination");
                    true
                }
                // No action of this hook for the instance (it timed out, or another hook holds
                // it): nothing is left to release.
                Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::NotFound) => {
                    tracing::debug!(provider = %self.name, %group, %instance, error = %e, "no lifecycle action to complete");
                    true
                }
                Err(e) => {
                    tracing::warn!(provider = %self.name, %group, %instance, error = %e, "could not end the drain; trying again at the next describe");
                    false
                }
            };
            if released && let Some(w) = self.drain_state().waiting.get_mut(&(group, instance)) {
                w.released = true;
            }
        }
    }

    /// Records the instances of `groups` waiting at `now`, forgets those of these groups that no
    /// longer wait, and returns those whose drain is over.
    fn due_for_release<'a>(
        &self,
        groups: impl IntoIterator<Item = &'a AutoScalingGroup>,
        now: DateTime<Utc>,
    ) -> Vec<(String, String)> {
        let mut state = self.drain_state();
        let mut described = HashSet::new();
        let mut seen = HashSet::new();
        let mut due = Vec::new();
        for g in groups {
            let Some(name) = g.auto_scaling_group_name() else {
                continue;
            };
            let Some(drain) = self.drain_of(name) else {
                continue;
            };
            described.insert(name.to_owned());
            let drain = chrono::Duration::from_std(drain).unwrap_or(chrono::Duration::MAX);
            for instance in g.instances() {
                let (Some(id), Some(WAITING)) = (
                    instance.instance_id(),
                    instance.lifecycle_state().map(|s| s.as_str()),
                ) else {
                    continue;
                };
                let key = (name.to_owned(), id.to_owned());
                let w = *state.waiting.entry(key.clone()).or_insert(Waiting {
                    since: now,
                    released: false,
                });
                if !w.released && now - w.since >= drain {
                    due.push(key.clone());
                }
                seen.insert(key);
            }
        }
        state
            .waiting
            .retain(|key, _| !described.contains(&key.0) || seen.contains(key));
        due
    }
}

/// The drain state, also after a panic elsewhere poisoned the lock (it holds no invariant a
/// panic could break).
pub(crate) fn lock(state: &Mutex<DrainState>) -> MutexGuard<'_, DrainState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use aws_sdk_autoscaling::operation::complete_lifecycle_action::CompleteLifecycleActionOutput;
    use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
    use aws_sdk_autoscaling::operation::put_lifecycle_hook::PutLifecycleHookOutput;
    use aws_sdk_autoscaling::operation::set_desired_capacity::SetDesiredCapacityOutput;
    use aws_sdk_autoscaling::types::{Instance, LifecycleState};
    use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
    use aws_smithy_mocks::mock;
    use hoist_api::{InstanceState, ScalingProvider};

    use super::*;
    use crate::testing::{ManualClock, mocked_provider};

    const DRAIN: Duration = Duration::from_secs(300);

    fn instance(id: &str, state: LifecycleState) -> Instance {
        Instance::builder()
            .instance_id(id)
            .instance_type("m5.large")
            .availability_zone("us-east-1a")
            .lifecycle_state(state)
            .build()
    }

    /// Group `web` (0 to 10, desired 1): `i-1` in service, `i-2` held by the hook.
    fn described() -> DescribeAutoScalingGroupsOutput {
        DescribeAutoScalingGroupsOutput::builder()
            .auto_scaling_groups(
                AutoScalingGroup::builder()
                    .auto_scaling_group_name("web")
                    .min_size(0)
                    .max_size(10)
                    .desired_capacity(1)
                    .instances(instance("i-1", LifecycleState::InService))
                    .instances(instance("i-2", LifecycleState::TerminatingWait))
                    .build(),
            )
            .build()
    }

    #[test]
    fn the_heartbeat_is_the_drain_within_what_auto_scaling_accepts() {
        assert_eq!(heartbeat_seconds(Duration::from_secs(300)), 300);
        assert_eq!(heartbeat_seconds(Duration::from_millis(300_200)), 301);
        assert_eq!(heartbeat_seconds(Duration::from_secs(10)), 30);
        assert_eq!(heartbeat_seconds(Duration::from_secs(7_200)), 7_200);
        assert_eq!(heartbeat_seconds(Duration::from_secs(86_400)), 7_200);
    }

    #[tokio::test]
    async fn the_hook_is_put_before_the_first_write_to_a_group_with_a_drain_and_only_then() {
        let describe =
            mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups).then_output(described);
        let hook = mock!(aws_sdk_autoscaling::Client::put_lifecycle_hook)
            .match_requests(|r| {
                r.auto_scaling_group_name() == Some("web")
                    && r.lifecycle_hook_name() == Some(DRAIN_HOOK)
                    && r.lifecycle_transition() == Some(TERMINATING_TRANSITION)
                    && r.heartbeat_timeout() == Some(300)
                    && r.default_result() == Some("CONTINUE")
            })
            .then_output(|| PutLifecycleHookOutput::builder().build());
        let set = mock!(aws_sdk_autoscaling::Client::set_desired_capacity)
            .then_output(|| SetDesiredCapacityOutput::builder().build());
        let ec2 = mock!(aws_sdk_ec2::Client::describe_instances)
            .then_output(|| DescribeInstancesOutput::builder().build());
        let mut aws = mocked_provider(&[&describe, &hook, &set, &ec2]);

        // Without a drain: no hook.
        aws.set_desired_capacity("web", 2).await.unwrap();
        assert_eq!((hook.num_calls(), set.num_calls()), (0, 1));

        aws.drains.insert("web".to_owned(), DRAIN);
        // A read puts nothing.
        aws.describe_group("web").await.unwrap();
        assert_eq!(hook.num_calls(), 0);
        aws.set_desired_capacity("web", 2).await.unwrap();
        aws.set_desired_capacity("web", 1).await.unwrap();
        assert_eq!((hook.num_calls(), set.num_calls()), (1, 3));
    }

    #[tokio::test]
    async fn a_waiting_instance_is_released_once_the_drain_has_passed_since_it_was_first_seen() {
        let describe =
            mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups).then_output(described);
        let ec2 = mock!(aws_sdk_ec2::Client::describe_instances)
            .then_output(|| DescribeInstancesOutput::builder().build());
        let complete = mock!(aws_sdk_autoscaling::Client::complete_lifecycle_action)
            .match_requests(|r| {
                r.auto_scaling_group_name() == Some("web")
                    && r.lifecycle_hook_name() == Some(DRAIN_HOOK)
                    && r.instance_id() == Some("i-2")
                    && r.lifecycle_action_result() == Some("CONTINUE")
            })
            .then_output(|| CompleteLifecycleActionOutput::builder().build());
        let mut aws = mocked_provider(&[&describe, &ec2, &complete]);
        let clock = Arc::new(ManualClock::default());
        aws.clock = clock.clone();
        aws.drains.insert("web".to_owned(), DRAIN);

        let g = aws.describe_group("web").await.unwrap();
        let waiting = g.instances.iter().find(|i| i.id == "i-2").unwrap();
        assert_eq!(waiting.state, InstanceState::Terminating);
        assert_eq!(complete.num_calls(), 0, "first seen now");

        clock.advance(DRAIN - Duration::from_secs(1));
        aws.describe_group("web").await.unwrap();
        assert_eq!(complete.num_calls(), 0);

        clock.advance(Duration::from_secs(1));
        aws.describe_group("web").await.unwrap();
        assert_eq!(complete.num_calls(), 1, "the drain is over");

        // Still reported waiting for a moment: not released twice.
        aws.list_groups().await.unwrap();
        assert_eq!(complete.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_group_without_a_drain_has_its_waiting_instances_left_alone() {
        let describe =
            mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups).then_output(described);
        let ec2 = mock!(aws_sdk_ec2::Client::describe_instances)
            .then_output(|| DescribeInstancesOutput::builder().build());
        let complete = mock!(aws_sdk_autoscaling::Client::complete_lifecycle_action)
            .then_output(|| CompleteLifecycleActionOutput::builder().build());
        let mut aws = mocked_provider(&[&describe, &ec2, &complete]);
        let clock = Arc::new(ManualClock::default());
        aws.clock = clock.clone();
        aws.describe_group("web").await.unwrap();
        clock.advance(Duration::from_secs(86_400));
        aws.describe_group("web").await.unwrap();
        assert_eq!(complete.num_calls(), 0);
    }

    #[test]
    fn instances_that_stop_waiting_are_forgotten() {
        let mut aws = mocked_provider(&[]);
        aws.drains.insert("web".to_owned(), DRAIN);
        let t0 = Utc::now();
        assert!(
            aws.due_for_release(described().auto_scaling_groups(), t0)
                .is_empty()
        );
        assert_eq!(aws.drain_state().waiting.len(), 1);
        let gone = AutoScalingGroup::builder()
            .auto_scaling_group_name("web")
            .instances(instance("i-1", LifecycleState::InService))
            .build();
        assert!(aws.due_for_release(&[gone], t0).is_empty());
        assert!(aws.drain_state().waiting.is_empty());
        // Seen waiting again later: its drain starts again from then.
        let later = t0 + chrono::Duration::minutes(10);
        assert!(
            aws.due_for_release(described().auto_scaling_groups(), later)
                .is_empty()
        );
    }
}
