//! Checks of the [`ScalingProvider`](crate::ScalingProvider) trait: listing, describing,
//! resizing within and outside bounds, removing chosen instances, changing the instance class,
//! activities, and putting the group back.

use std::collections::BTreeSet;

use super::support::{
    CheckResult, after_settling, call_failed, describe, eventually, expect_error, finish, show,
};
use super::{ConformanceTarget, Outcome, WriteMode};
use crate::error::ErrorKind;
use crate::model::{Instance, InstanceState, ScalingGroup};
use crate::provider::{ChangeInstanceClass, RemoveInstances};

const NO_SUCH_INSTANCE: &str = "hoist-conformance-no-such-instance";
const NO_SUCH_CLASS: &str = "hoist-conformance-no-such-class";

fn active_ids(group: &ScalingGroup) -> BTreeSet<String> {
    group
        .instances
        .iter()
        .filter(|i| i.state.is_active())
        .map(|i| i.id.clone())
        .collect()
}

fn is_active(group: &ScalingGroup, id: &str) -> bool {
    group
        .instances
        .iter()
        .any(|i| i.id == id && i.state.is_active())
}

/// An instance the suite may remove: running before pending, never one protected from
/// scale-in.
fn pick_victim(group: &ScalingGroup) -> Option<&Instance> {
    let candidates = || {
        group
            .instances
            .iter()
            .filter(|i| !i.protected_from_scale_in)
    };
    candidates()
        .find(|i| i.state == InstanceState::Running)
        .or_else(|| candidates().find(|i| i.state == InstanceState::Pending))
}

fn desired_is(expected: u32) -> impl FnMut(&ScalingGroup) -> Result<(), String> {
    move |g| {
        if g.desired_capacity == expected {
            Ok(())
        } else {
            Err(format!(
                "describe_group shows desired_capacity {} where {expected} was expected",
                g.desired_capacity
            ))
        }
    }
}

/// Sets desired capacity and, with applied writes, waits until the group shows it.
async fn set_and_wait(t: &ConformanceTarget, desired: u32) -> Result<ScalingGroup, String> {
    let call = format!("set_desired_capacity({:?}, {desired})", t.group);
    t.scaling()
        .set_desired_capacity(&t.group, desired)
        .await
        .map_err(|e| {
            call_failed(
                &call,
                &e,
                "a value within [min_size, max_size] must be accepted",
            )
        })?;
    match t.writes {
        WriteMode::Applied => eventually(t, desired_is(desired))
            .await
            .map_err(|m| format!("after {call} succeeded, {m}")),
        WriteMode::Recorded => describe(t).await,
    }
}

/// `list_groups` includes the target group, and every listed group has consistent bounds.
pub async fn check_scaling_lists_group(t: &ConformanceTarget) -> Outcome {
    finish(lists_group(t).await)
}

async fn lists_group(t: &ConformanceTarget) -> CheckResult {
    let groups = t.scaling().list_groups().await.map_err(|e| {
        call_failed(
            "list_groups()",
            &e,
            "list_groups must return every group the provider manages",
        )
    })?;
    let mut seen = BTreeSet::new();
    for g in &groups {
        if !seen.insert(g.id.as_str()) {
            return Err(format!(
                "list_groups() returned group {:?} twice; ids must be unique",
                g.id
            ));
        }
        if !(g.min_size <= g.desired_capacity && g.desired_capacity <= g.max_size) {
            return Err(format!(
                "list_groups() returned group {:?} with min_size {} <= desired_capacity {} <= \
                 max_size {} not holding; a provider must report consistent bounds",
                g.id, g.min_size, g.desired_capacity, g.max_size
            ));
        }
    }
    if !seen.contains(t.group.as_str()) {
        return Err(format!(
            "list_groups() returned {} group(s) {:?} but not the target group {:?}; \
             list_groups must include every group describe_group can see",
            groups.len(),
            seen,
            t.group
        ));
    }
    Ok(Outcome::Passed)
}

/// `describe_group` echoes the id, reports `min_size <= desired_capacity <= max_size` (with
/// room to resize, `min_size < max_size`), uniquely identified instances, and agrees with
/// `list_groups` on the bounds.
pub async fn check_scaling_describes_group(t: &ConformanceTarget) -> Outcome {
    finish(describes_group(t).await)
}

async fn describes_group(t: &ConformanceTarget) -> CheckResult {
    let g = describe(t).await?;
    if g.id != t.group {
        return Err(format!(
            "describe_group({:?}) returned a group with id {:?}; the id must be the one asked for",
            t.group, g.id
        ));
    }
    if !(g.min_size <= g.desired_capacity && g.desired_capacity <= g.max_size) {
        return Err(format!(
            "describe_group({:?}) reports min_size {}, desired_capacity {}, max_size {}; \
             min_size <= desired_capacity <= max_size must hold",
            t.group, g.min_size, g.desired_capacity, g.max_size
        ));
    }
    if g.min_size >= g.max_size {
        return Err(format!(
            "the target group {:?} has min_size {} and max_size {}; the suite needs a group with \
             min_size < max_size to test resizing (choose or create another group)",
            t.group, g.min_size, g.max_size
        ));
    }
    let mut ids = BTreeSet::new();
    for i in &g.instances {
        if i.id.is_empty() {
            return Err(format!(
                "describe_group({:?}) returned an instance with an empty id",
                t.group
            ));
        }
        if !ids.insert(i.id.as_str()) {
            return Err(format!(
                "describe_group({:?}) returned instance {:?} twice; instance ids must be unique",
                t.group, i.id
            ));
        }
    }
    if g.instance_class.is_empty() {
        return Err(format!(
            "describe_group({:?}) returned an empty instance_class; report the class new \
             instances get",
            t.group
        ));
    }
    let listed = t.scaling().list_groups().await.map_err(|e| {
        call_failed(
            "list_groups()",
            &e,
            "list_groups must work when describe_group does",
        )
    })?;
    if let Some(l) = listed.iter().find(|l| l.id == t.group)
        && (l.min_size != g.min_size || l.max_size != g.max_size)
    {
        return Err(format!(
            "list_groups reports bounds [{}, {}] for {:?} but describe_group reports [{}, {}]; \
             both must read the same group",
            l.min_size, l.max_size, t.group, g.min_size, g.max_size
        ));
    }
    Ok(Outcome::Passed)
}

/// An unknown group is [`ErrorKind::NotFound`] for `describe_group`, for
/// `set_desired_capacity` and (when supported) `activities`.
pub async fn check_scaling_unknown_group_not_found(t: &ConformanceTarget) -> Outcome {
    finish(unknown_group_not_found(t).await)
}

async fn unknown_group_not_found(t: &ConformanceTarget) -> CheckResult {
    let scaling = t.scaling();
    let caps = scaling.capabilities();
    let unknown = &t.unknown_group;
    let rule = "an unknown group must be reported as not_found, never as success or another kind";
    expect_error(
        &scaling.describe_group(unknown).await,
        &[ErrorKind::NotFound],
        &format!("describe_group({unknown:?})"),
        rule,
    )?;
    let allowed: &[ErrorKind] = if caps.set_desired_capacity {
        &[ErrorKind::NotFound]
    } else {
        &[ErrorKind::Unsupported, ErrorKind::NotFound]
    };
    expect_error(
        &scaling.set_desired_capacity(unknown, 1).await,
        allowed,
        &format!("set_desired_capacity({unknown:?}, 1)"),
        rule,
    )?;
    if caps.activities {
        expect_error(
            &scaling.activities(unknown).await,
            &[ErrorKind::NotFound],
            &format!("activities({unknown:?})"),
            rule,
        )?;
    }
    Ok(Outcome::Passed)
}

/// `set_desired_capacity` within `[min_size, max_size]` (including `min_size` itself)
/// succeeds and `describe_group` shows it (with recorded writes: shows the group unchanged);
/// declared unsupported, it fails with [`ErrorKind::Unsupported`].
pub async fn check_scaling_sets_desired_within_bounds(t: &ConformanceTarget) -> Outcome {
    finish(sets_desired_within_bounds(t).await)
}

async fn sets_desired_within_bounds(t: &ConformanceTarget) -> CheckResult {
    let before = describe(t).await?;
    if !t.scaling().capabilities().set_desired_capacity {
        let result = t
            .scaling()
            .set_desired_capacity(&t.group, before.desired_capacity)
            .await;
        expect_error(
            &result,
            &[ErrorKind::Unsupported],
            &format!(
                "set_desired_capacity({:?}, {})",
                t.group, before.desired_capacity
            ),
            "the provider declares set_desired_capacity unsupported, so it must refuse it",
        )?;
        return Ok(Outcome::Passed);
    }
    let next = if before.desired_capacity < before.max_size {
        before.desired_capacity + 1
    } else {
        before.desired_capacity - 1
    };
    for desired in [next, before.min_size] {
        let g = set_and_wait(t, desired).await?;
        if t.writes == WriteMode::Recorded {
            after_settling(t, desired_is(before.desired_capacity))
                .await
                .map_err(|m| {
                    format!("with recorded writes nothing may change, but {m} (asked {desired})")
                })?;
        } else if g.min_size != before.min_size || g.max_size != before.max_size {
            return Err(format!(
                "set_desired_capacity({:?}, {desired}) changed the bounds from [{}, {}] to \
                 [{}, {}]; it must change desired capacity only",
                t.group, before.min_size, before.max_size, g.min_size, g.max_size
            ));
        }
    }
    set_and_wait(t, before.desired_capacity).await?;
    Ok(Outcome::Passed)
}

/// `set_desired_capacity` above `max_size` or below `min_size` fails with
/// [`ErrorKind::InvalidInput`] and changes nothing.
pub async fn check_scaling_rejects_out_of_bounds(t: &ConformanceTarget) -> Outcome {
    finish(rejects_out_of_bounds(t).await)
}

async fn rejects_out_of_bounds(t: &ConformanceTarget) -> CheckResult {
    let before = describe(t).await?;
    let scaling = t.scaling();
    let supported = scaling.capabilities().set_desired_capacity;
    let mut asks = vec![before.max_size.saturating_add(1), u32::MAX];
    if before.min_size > 0 {
        asks.push(before.min_size - 1);
    }
    for desired in asks {
        let call = format!("set_desired_capacity({:?}, {desired})", t.group);
        let result = scaling.set_desired_capacity(&t.group, desired).await;
        if supported {
            expect_error(
                &result,
                &[ErrorKind::InvalidInput],
                &call,
                &format!(
                    "values outside [min_size {}, max_size {}] must be refused as invalid_input",
                    before.min_size, before.max_size
                ),
            )?;
        } else {
            expect_error(
                &result,
                &[ErrorKind::Unsupported, ErrorKind::InvalidInput],
                &call,
                "the provider declares set_desired_capacity unsupported",
            )?;
        }
    }
    after_settling(t, |g| {
        if g.desired_capacity != before.desired_capacity
            || g.min_size != before.min_size
            || g.max_size != before.max_size
        {
            Err(format!(
                "refused out-of-bounds requests changed the group from desired {} in [{}, {}] \
                 to desired {} in [{}, {}]; a refused request must change nothing",
                before.desired_capacity,
                before.min_size,
                before.max_size,
                g.desired_capacity,
                g.min_size,
                g.max_size
            ))
        } else {
            Ok(())
        }
    })
    .await?;
    Ok(Outcome::Passed)
}

/// `remove_instances` removes exactly the chosen instance: with `decrement` desired capacity
/// drops by one; without, it stays and the others remain (with recorded writes: the call
/// succeeds and nothing changes); declared unsupported, it fails with
/// [`ErrorKind::Unsupported`].
pub async fn check_scaling_removes_chosen_instance(t: &ConformanceTarget) -> Outcome {
    finish(removes_chosen_instance(t).await)
}

async fn remove(t: &ConformanceTarget, victim: &str, decrement: bool) -> Result<String, String> {
    let call = format!("remove_instances({:?}, [{victim:?}], {decrement})", t.group);
    t.scaling()
        .remove_instances(
            &t.group,
            &RemoveInstances::new(vec![victim.to_owned()]).with_decrement(decrement),
        )
        .await
        .map_err(|e| {
            call_failed(
                &call,
                &e,
                "removing an active instance of the group must succeed",
            )
        })?;
    Ok(call)
}

/// Waits until the group has an instance the suite may remove.
async fn wait_for_victim(t: &ConformanceTarget) -> Result<ScalingGroup, String> {
    eventually(t, |g| match pick_victim(g) {
        Some(_) => Ok(()),
        None => Err(format!(
            "group {:?} has desired_capacity {} but no pending or running instance that is not \
             protected from scale-in",
            t.group, g.desired_capacity
        )),
    })
    .await
}

async fn removes_chosen_instance(t: &ConformanceTarget) -> CheckResult {
    let before = describe(t).await?;
    let scaling = t.scaling();
    if !scaling.capabilities().remove_instances {
        let id = before
            .instances
            .first()
            .map_or(NO_SUCH_INSTANCE.to_owned(), |i| i.id.clone());
        let result = scaling
            .remove_instances(
                &t.group,
                &RemoveInstances::new(vec![id.clone()]).with_decrement(false),
            )
            .await;
        expect_error(
            &result,
            &[ErrorKind::Unsupported],
            &format!("remove_instances({:?}, [{id:?}], false)", t.group),
            "the provider declares remove_instances unsupported, so it must refuse it",
        )?;
        return Ok(Outcome::Passed);
    }
    match t.writes {
        WriteMode::Applied => removes_applied(t, &before).await?,
        WriteMode::Recorded => {
            let g = describe(t).await?;
            let Some(victim) = pick_victim(&g).map(|i| i.id.clone()) else {
                return Ok(Outcome::skipped(format!(
                    "group {:?} has no pending or running instance that is not protected from \
                     scale-in, and with recorded writes the suite cannot launch one; give the \
                     target a group with desired_capacity >= 1",
                    t.group
                )));
            };
            let mut modes = vec![false];
            if g.desired_capacity > g.min_size {
                modes.push(true);
            }
            for decrement in modes {
                let call = remove(t, &victim, decrement).await?;
                after_settling(t, |after| {
                    if after.desired_capacity != g.desired_capacity || !is_active(after, &victim) {
                        Err(format!(
                            "with recorded writes {call} must change nothing, but desired went \
                             from {} to {} and the instance is {}",
                            g.desired_capacity,
                            after.desired_capacity,
                            if is_active(after, &victim) {
                                "still active"
                            } else {
                                "gone"
                            }
                        ))
                    } else {
                        Ok(())
                    }
                })
                .await?;
            }
        }
    }
    Ok(Outcome::Passed)
}

async fn removes_applied(t: &ConformanceTarget, before: &ScalingGroup) -> Result<(), String> {
    // Room to decrement without going below min_size.
    let base = before
        .desired_capacity
        .max(before.min_size + 1)
        .min(before.max_size);
    if base != before.desired_capacity {
        set_and_wait(t, base).await?;
    }
    for decrement in [true, false] {
        let current = describe(t).await?;
        if current.desired_capacity == 0 || current.desired_capacity <= current.min_size {
            // The decrementing round lowered it; raise it again so an instance is there.
            set_and_wait(t, base).await?;
        }
        let g = wait_for_victim(t).await?;
        let victim = pick_victim(&g).map(|i| i.id.clone()).unwrap_or_default();
        let others: BTreeSet<String> = active_ids(&g)
            .into_iter()
            .filter(|id| *id != victim)
            .collect();
        let call = remove(t, &victim, decrement).await?;
        let expected = if decrement {
            g.desired_capacity - 1
        } else {
            g.desired_capacity
        };
        eventually(t, |after| {
            if after.desired_capacity != expected {
                return Err(format!(
                    "after {call}, desired_capacity is {} where {expected} was expected \
                     ({} before; with decrement it drops by exactly one, without it stays)",
                    after.desired_capacity, g.desired_capacity
                ));
            }
            if is_active(after, &victim) {
                return Err(format!(
                    "after {call}, instance {victim:?} is still pending or running; it must be \
                     terminating, terminated or gone"
                ));
            }
            let lost: Vec<&String> = others.iter().filter(|id| !is_active(after, id)).collect();
            if !lost.is_empty() {
                return Err(format!(
                    "after {call}, other instances {lost:?} are no longer active; only the chosen \
                     instance may be removed"
                ));
            }
            Ok(())
        })
        .await?;
    }
    set_and_wait(t, before.desired_capacity).await?;
    Ok(())
}

/// Removing an instance that is not in the group fails with [`ErrorKind::NotFound`] or
/// [`ErrorKind::InvalidInput`] and changes nothing.
pub async fn check_scaling_rejects_unknown_instance(t: &ConformanceTarget) -> Outcome {
    finish(rejects_unknown_instance(t).await)
}

async fn rejects_unknown_instance(t: &ConformanceTarget) -> CheckResult {
    if !t.scaling().capabilities().remove_instances {
        return Ok(Outcome::skipped(
            "the provider declares remove_instances unsupported",
        ));
    }
    let before = describe(t).await?;
    for decrement in [false, true] {
        let result = t
            .scaling()
            .remove_instances(
                &t.group,
                &RemoveInstances::new(vec![NO_SUCH_INSTANCE.to_owned()]).with_decrement(decrement),
            )
            .await;
        expect_error(
            &result,
            &[ErrorKind::NotFound, ErrorKind::InvalidInput],
            &format!(
                "remove_instances({:?}, [{NO_SUCH_INSTANCE:?}], {decrement})",
                t.group
            ),
            "an instance that is not in the group must be refused",
        )?;
    }
    let ids_before = active_ids(&before);
    after_settling(t, |g| {
        if g.desired_capacity != before.desired_capacity {
            return Err(format!(
                "refusing an unknown instance changed desired_capacity from {} to {}; a refused \
                 request must change nothing",
                before.desired_capacity, g.desired_capacity
            ));
        }
        let lost: Vec<&String> = ids_before.iter().filter(|id| !is_active(g, id)).collect();
        if lost.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "refusing an unknown instance removed {lost:?}; a refused request must change \
                 nothing"
            ))
        }
    })
    .await?;
    Ok(Outcome::Passed)
}

/// Sets the instance class, retrying while the provider reports a conflicting change in
/// flight.
async fn set_class(t: &ConformanceTarget, class: &str) -> Result<(), String> {
    let call = format!("set_instance_class({:?}, {class:?})", t.group);
    for round in 0..t.settle_rounds.max(1) {
        if round > 0 {
            t.settle().await;
        }
        match t
            .scaling()
            .set_instance_class(&t.group, &ChangeInstanceClass::new(class))
            .await
        {
            Ok(Some(activity)) if activity.progress_percent.is_some_and(|p| p > 100) => {
                return Err(format!(
                    "{call} returned an activity with progress {}%; progress is 0..=100",
                    activity.progress_percent.unwrap_or_default()
                ));
            }
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Conflict => continue,
            Err(e) => {
                return Err(call_failed(
                    &call,
                    &e,
                    "a class from the provider's catalog must be accepted",
                ));
            }
        }
    }
    Err(format!(
        "{call} kept failing with conflict after {} settle(s); a change in flight must finish",
        t.settle_rounds
    ))
}

fn class_is(expected: String) -> impl FnMut(&ScalingGroup) -> Result<(), String> {
    move |g| {
        if g.instance_class == expected {
            Ok(())
        } else {
            Err(format!(
                "describe_group shows instance_class {:?} where {expected:?} was expected",
                g.instance_class
            ))
        }
    }
}

/// `set_instance_class` to another catalog class shows in `describe_group` (recorded writes:
/// nothing changes), an unknown class fails with [`ErrorKind::NotFound`] or
/// [`ErrorKind::InvalidInput`], and the class is put back; declared unsupported, it fails
/// with [`ErrorKind::Unsupported`].
pub async fn check_scaling_sets_instance_class(t: &ConformanceTarget) -> Outcome {
    finish(sets_instance_class(t).await)
}

async fn sets_instance_class(t: &ConformanceTarget) -> CheckResult {
    let before = describe(t).await?;
    let scaling = t.scaling();
    let original = before.instance_class.clone();
    if !scaling.capabilities().set_instance_class {
        expect_error(
            &scaling
                .set_instance_class(&t.group, &ChangeInstanceClass::new(original.clone()))
                .await,
            &[ErrorKind::Unsupported],
            &format!("set_instance_class({:?}, {original:?})", t.group),
            "the provider declares set_instance_class unsupported, so it must refuse it",
        )?;
        return Ok(Outcome::Passed);
    }
    expect_error(
        &scaling
            .set_instance_class(&t.group, &ChangeInstanceClass::new(NO_SUCH_CLASS))
            .await,
        &[ErrorKind::NotFound, ErrorKind::InvalidInput],
        &format!("set_instance_class({:?}, {NO_SUCH_CLASS:?})", t.group),
        "a class the provider does not offer must be refused",
    )?;
    after_settling(t, class_is(original.clone()))
        .await
        .map_err(|m| format!("after refusing an unknown class, {m}; nothing may change"))?;

    let Some(catalog) = &t.set.catalog else {
        set_class(t, &original).await?;
        return Ok(Outcome::Passed);
    };
    let classes = catalog.instance_classes().await.map_err(|e| {
        call_failed(
            "instance_classes()",
            &e,
            "the catalog must list its classes",
        )
    })?;
    let in_zones = |c: &&crate::model::InstanceClass| {
        before.zones.is_empty() || c.offerings.iter().any(|o| before.zones.contains(&o.zone))
    };
    let Some(other) = classes
        .iter()
        .filter(|c| c.name != original)
        .find(in_zones)
        .map(|c| c.name.clone())
    else {
        set_class(t, &original).await?;
        return Ok(Outcome::Passed);
    };
    set_class(t, &other).await?;
    match t.writes {
        WriteMode::Applied => {
            eventually(t, class_is(other.clone()))
                .await
                .map_err(|m| format!("after set_instance_class({:?}, {other:?}), {m}", t.group))?;
            set_class(t, &original).await?;
            eventually(t, class_is(original.clone()))
                .await
                .map_err(|m| {
                    format!("after putting the class back with set_instance_class, {m}")
                })?;
        }
        WriteMode::Recorded => {
            after_settling(t, class_is(original.clone()))
                .await
                .map_err(|m| format!("with recorded writes nothing may change, but {m}"))?;
        }
    }
    Ok(Outcome::Passed)
}

/// `activities` answers for the group with progress in `0..=100` and fails with
/// [`ErrorKind::NotFound`] for an unknown group; declared unsupported, it fails with
/// [`ErrorKind::Unsupported`].
pub async fn check_scaling_activities(t: &ConformanceTarget) -> Outcome {
    finish(activities(t).await)
}

async fn activities(t: &ConformanceTarget) -> CheckResult {
    let scaling = t.scaling();
    let call = format!("activities({:?})", t.group);
    let result = scaling.activities(&t.group).await;
    if !scaling.capabilities().activities {
        expect_error(
            &result,
            &[ErrorKind::Unsupported],
            &call,
            "the provider declares activities unsupported, so it must refuse them",
        )?;
        return Ok(Outcome::Passed);
    }
    let list =
        result.map_err(|e| call_failed(&call, &e, "the provider declares activities supported"))?;
    for a in &list {
        if a.id.is_empty() {
            return Err(format!("{call} returned an activity with an empty id"));
        }
        if a.progress_percent.is_some_and(|p| p > 100) {
            return Err(format!(
                "{call} returned activity {:?} with progress {:?}; progress is 0..=100",
                a.id, a.progress_percent
            ));
        }
    }
    Ok(Outcome::Passed)
}

/// Puts desired capacity and instance class back to `original` and checks they are.
pub(crate) async fn restore(t: &ConformanceTarget, original: &ScalingGroup) -> Outcome {
    finish(restore_inner(t, original).await)
}

async fn restore_inner(t: &ConformanceTarget, original: &ScalingGroup) -> CheckResult {
    let caps = t.scaling().capabilities();
    let now = describe(t).await?;
    if caps.set_instance_class && now.instance_class != original.instance_class {
        set_class(t, &original.instance_class).await?;
    }
    if caps.set_desired_capacity && now.desired_capacity != original.desired_capacity {
        let result = t
            .scaling()
            .set_desired_capacity(&t.group, original.desired_capacity)
            .await;
        if let Err(e) = result {
            return Err(format!(
                "putting desired capacity back failed: {}",
                show::<()>(&Err(e))
            ));
        }
    }
    let desired = original.desired_capacity;
    let class = original.instance_class.clone();
    eventually(t, |g| {
        if g.desired_capacity == desired && g.instance_class == class {
            Ok(())
        } else {
            Err(format!(
                "the group ends with desired_capacity {} and instance_class {:?}, but began with \
                 {desired} and {class:?}",
                g.desired_capacity, g.instance_class
            ))
        }
    })
    .await?;
    Ok(Outcome::Passed)
}
