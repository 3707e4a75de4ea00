//! The decision function: each policy recommends, the recommendations merge (scale out if any
//! says so, scale in only if all agree), then bounds and guards apply.

use chrono::{DateTime, TimeDelta, Utc};

use super::hpa;
use super::memory::{DecisionMemory, MemoryUpdate};
use super::predictive::{self, PredictiveVote};
use super::{Decision, Direction, Observation, Reason};
use crate::config::budget::Rung;
use crate::config::{
    AdjustmentType, Aggregation, GroupConfig, PolicyConfig, Scheduled, StepScaling, TargetTracking,
    Threshold,
};
use crate::model::{MetricKind, Sample};

/// What one policy says.
enum Vote {
    /// A capacity.
    Capacity(u32),
    /// No usable input: keep the current capacity (this blocks scale-in, never scale-out by
    /// others).
    Hold,
    /// Not voting (a scheduled policy outside its window, or one that only moves bounds).
    Abstain,
}

/// Decides the desired capacity of one group.
///
/// Pure in the strict sense: no I/O, no clock, and `memory` (what stabilisation windows, rate
/// limits and cooldowns need from earlier evaluations) is only read. What this evaluation adds
/// to the memory comes back as a [`MemoryUpdate`] beside the decision; the caller applies it
/// with [`DecisionMemory::apply`] before the next evaluation (or persists it, or hands it to
/// another replica), and records an applied decision with [`DecisionMemory::record_applied`].
#[must_use = "the memory update must be applied for stabilisation windows to work"]
pub fn decide(
    group: &GroupConfig,
    observation: &Observation<'_>,
    memory: &DecisionMemory,
) -> (Decision, MemoryUpdate) {
    let (mut decision, update) = decide_once(group, observation, memory);
    // A budget on a rung says so in every decision of its groups, changed or not.
    if let Some(steer) = observation.budget {
        let source = format!("budget.{}", steer.budget);
        let mentioned = decision
            .reasons
            .iter()
            .any(|r| r.source == source || r.message.contains(&steer.figures()));
        if !mentioned {
            let mut levers = Vec::new();
            if steer.rung == Rung::Cap && steer.target_scale > 1.0 {
                levers.push(format!("utilisation targets × {:.3}", steer.target_scale));
            }
            if let Some(cap) = steer.cap.filter(|_| steer.rung == Rung::Cap) {
                levers.push(format!("scale-out capped at {cap}"));
            }
            let levers = if levers.is_empty() {
                String::new()
            } else {
                format!(" ({})", levers.join(", "))
            };
            decision.reasons.push(Reason {
                source,
                recommended: None,
                message: format!(
                    "{}{levers}: this decision is not changed by it",
                    steer.figures()
                ),
            });
        }
    }
    // A budget that raised targets may lower what the policies ask, never the capacity under
    // the availability floor: what the decision would be without the budget, up to the floor,
    // stays.
    if let Some(steer) = observation.budget
        && steer.rung == Rung::Cap
        && steer.target_scale > 1.0
    {
        let floor = group
            .guards
            .availability_floor
            .unwrap_or(group.min)
            .max(group.min);
        if decision.desired < floor {
            let plain = Observation {
                budget: None,
                ..*observation
            };
            let (without, _) = decide_once(group, &plain, memory);
            let kept = without.desired.min(floor);
            if decision.desired < kept {
                decision.reasons.push(Reason {
                    source: format!("budget.{}", steer.budget),
                    recommended: Some(kept),
                    message: format!(
                        "{}: the raised targets asked for {}, kept at {kept} (the availability floor is {floor})",
                        steer.figures(),
                        decision.desired
                    ),
                });
                decision.desired = kept;
                decision.direction = match kept.cmp(&decision.current) {
                    std::cmp::Ordering::Greater => Direction::Out,
                    std::cmp::Ordering::Less => Direction::In,
                    std::cmp::Ordering::Equal => Direction::Hold,
                };
            }
        }
    }
    (decision, update)
}

fn decide_once(
    group: &GroupConfig,
    observation: &Observation<'_>,
    memory: &DecisionMemory,
) -> (Decision, MemoryUpdate) {
    let now = observation.now;
    let snapshot = observation.group;
    let current = snapshot.desired;
    let mut reasons: Vec<Reason> = Vec::with_capacity(group.policies.len() + 2);
    let mut update = MemoryUpdate::new(now, snapshot.ready, group.policies.len());

    // Effective bounds: the policy's, within the provider's own.
    let mut floor = group.min.max(snapshot.provider_min);
    let mut ceiling = group.max.min(snapshot.provider_max);
    if floor > ceiling {
        reasons.push(Reason {
            source: "guard.bounds".into(),
            recommended: None,
            message: format!(
                "policy bounds [{}, {}] and provider bounds [{}, {}] do not overlap; holding",
                group.min, group.max, snapshot.provider_min, snapshot.provider_max
            ),
        });
        return (finish(group, observation, current, reasons), update);
    }

    // What a schedule may move the bounds within: the provider's and the group's together.
    let bounds = (floor, ceiling);
    let mut votes: Vec<u32> = Vec::with_capacity(group.policies.len());
    let mut holds = 0usize;
    // The largest forecast need of predictive policies: a scale-in stops there.
    let mut forecast_floor: Option<u32> = None;
    for (index, policy) in group.policies.iter().enumerate() {
        let source = format!("policies[{index}].{}", policy.kind());
        let (vote, message) = match policy {
            PolicyConfig::TargetTracking(tt) => {
                target_tracking(tt, group, observation, memory, (index, &mut update))
            }
            PolicyConfig::Step(step) => step_scaling(step, group, observation),
            PolicyConfig::Threshold(th) => threshold(th, group, observation),
            PolicyConfig::Scheduled(s) => scheduled(s, now, bounds, (&mut floor, &mut ceiling)),
            PolicyConfig::Predictive(p) => {
                let (vote, raised, message) = predictive::vote(p, observation, ceiling);
                if let Some(raised) = raised {
                    ceiling = ceiling.max(raised.min(snapshot.provider_max));
                }
                match vote {
                    PredictiveVote::Out(n) => (Vote::Capacity(n), message),
                    PredictiveVote::Floor(n) => {
                        forecast_floor = Some(forecast_floor.map_or(n, |f| f.max(n)));
                        (Vote::Abstain, message)
                    }
                    PredictiveVote::Abstain => (Vote::Abstain, message),
                }
            }
        };
        let recommended = match vote {
            Vote::Capacity(n) => {
                votes.push(n);
                Some(n)
            }
            Vote::Hold => {
                holds += 1;
                None
            }
            Vote::Abstain => None,
        };
        reasons.push(Reason {
            source,
            recommended,
            message,
        });
    }
    // A schedule may have narrowed the bounds past each other; the group's own bounds win.
    if floor > ceiling {
        floor = ceiling;
    }

    let out = votes.iter().copied().filter(|&v| v > current).max();
    let mut desired = if let Some(out) = out {
        out
    } else if !votes.is_empty() && holds == 0 && votes.iter().all(|&v| v < current) {
        votes.iter().copied().max().unwrap_or(current)
    } else {
        if holds > 0 && votes.iter().any(|&v| v < current) {
            reasons.push(Reason {
                source: "merge".into(),
                recommended: Some(current),
                message: "scale-in needs every policy to agree, and a policy without usable metrics holds".into(),
            });
        }
        current
    };
    if let Some(need) = forecast_floor
        && desired < need.min(current)
    {
        desired = need.min(current);
        reasons.push(Reason {
            source: "merge.forecast".into(),
            recommended: Some(desired),
            message: format!("scale-in stopped at {desired}: the forecast needs {need}"),
        });
    }

    // Guards that may stop a change, unless the bounds force it.
    let guards = &group.guards;
    // The lowest the scale-in guards let the group go now (an enforced budget cap keeps to it).
    let scale_in_floor = if guards.scale_in_protection
        || memory
            .last_scale
            .is_some_and(|last| now - last < guards.scale_in_cooldown.as_delta())
    {
        current
    } else {
        guards
            .max_scale_in_step
            .map_or(0, |step| current.saturating_sub(step))
    };
    if desired > current {
        if let Some(last) = memory.last_scale_out
            && now - last < guards.scale_out_cooldown.as_delta()
        {
            reasons.push(guard_reason(
                "guard.scale_out_cooldown",
                current,
                format!(
                    "scale-out cooldown of {} since the last scale-out at {}",
                    guards.scale_out_cooldown,
                    last.format("%H:%M:%S")
                ),
            ));
            desired = current;
        }
        if let Some(step) = guards.max_scale_out_step
            && desired > current.saturating_add(step)
        {
            desired = current.saturating_add(step);
            reasons.push(guard_reason(
                "guard.max_scale_out_step",
                desired,
                format!("at most {step} instances added per decision"),
            ));
        }
    } else if desired < current {
        if guards.scale_in_protection {
            reasons.push(guard_reason(
                "guard.scale_in_protection",
                current,
                "scale-in protection is on".into(),
            ));
            desired = current;
        } else if let Some(last) = memory.last_scale
            && now - last < guards.scale_in_cooldown.as_delta()
        {
            reasons.push(guard_reason(
                "guard.scale_in_cooldown",
                current,
                format!(
                    "scale-in cooldown of {} since the last change at {}",
                    guards.scale_in_cooldown,
                    last.format("%H:%M:%S")
                ),
            ));
            desired = current;
        } else if let Some(step) = guards.max_scale_in_step
            && desired < current.saturating_sub(step)
        {
            desired = current.saturating_sub(step);
            reasons.push(guard_reason(
                "guard.max_scale_in_step",
                desired,
                format!("at most {step} instances removed per decision"),
            ));
        }
    }

    // A budget limits scale-out (never blocks a scale-in, never goes under the availability
    // floor; an enforced cap scales in only as far as the scale-in guards allow).
    desired = budget_limit(group, observation, desired, scale_in_floor, &mut reasons);

    // Bounds always hold, whatever the policies and guards said.
    if desired < floor {
        reasons.push(guard_reason(
            "guard.min",
            floor,
            format!("raised to the minimum of {floor}"),
        ));
        desired = floor;
    } else if desired > ceiling {
        reasons.push(guard_reason(
            "guard.max",
            ceiling,
            format!("capped at the maximum of {ceiling}"),
        ));
        desired = ceiling;
    }

    update.forget_before = Some(now - history_to_keep(group));
    (finish(group, observation, desired, reasons), update)
}

/// The target a target-tracking policy aims at: its own, or raised by a budget on `cap` (up to
/// the budget's `max_utilization` for utilisation, and always under what the tolerance lets
/// the metric exceed). With the note saying so.
fn budget_target(tt: &TargetTracking, observation: &Observation<'_>) -> (f64, Option<String>) {
    let Some(steer) = observation
        .budget
        .filter(|s| s.rung == Rung::Cap && s.target_scale > 1.0 && s.target_scale.is_finite())
    else {
        return (tt.target, None);
    };
    let mut target = tt.target * steer.target_scale;
    if tt.metric == MetricKind::Utilization {
        let tolerance = tt.tolerance.clamp(0.0, 1.0);
        let highest = steer
            .max_utilization
            .max(tt.target)
            .min(0.999 / (1.0 + tolerance));
        target = target.min(highest).max(tt.target);
    }
    if !(target.is_finite() && target > 0.0) || target <= tt.target {
        return (tt.target, None);
    }
    (
        target,
        Some(format!(
            " (target {} raised to {target:.3} by {})",
            number(tt.target),
            steer.figures()
        )),
    )
}

/// What a budget on `cap` or `deny_scale_out` does to a scale-out: it limits it (to the cap,
/// or to the current capacity), never below the availability floor, and never touches a
/// scale-in or a hold; except that an enforced cap (the period's last tenth) brings a
/// capacity above it down to it, still never below `min` or the availability floor, nor
/// below `scale_in_floor`, what the scale-in guards (protection, cooldown, step) allow now.
fn budget_limit(
    group: &GroupConfig,
    observation: &Observation<'_>,
    desired: u32,
    scale_in_floor: u32,
    reasons: &mut Vec<Reason>,
) -> u32 {
    let current = observation.group.desired;
    let Some(steer) = observation.budget else {
        return desired;
    };
    let source = format!("budget.{}", steer.budget);
    if steer.rung == Rung::PreferCheaper {
        let effect = if group.vertical.is_some() {
            "its vertical policy takes any saving and may recommend spot; the count is unchanged"
        } else {
            "this group has no vertical policy to choose a class, so the decision is unchanged"
        };
        reasons.push(Reason {
            source,
            recommended: None,
            message: format!("{}: cheaper classes preferred; {effect}", steer.figures()),
        });
        return desired;
    }
    // An enforced cap (the period's last tenth) also brings capacity above it down to it.
    let enforced = steer.rung == Rung::Cap && steer.enforce && steer.cap.is_some();
    if desired <= current && !enforced {
        return desired;
    }
    let floor = group
        .guards
        .availability_floor
        .unwrap_or(group.min)
        .max(group.min);
    let limited = match (steer.rung, steer.cap) {
        (Rung::DenyScaleOut, _) => current,
        (Rung::Cap, Some(cap)) if enforced => desired.min(cap.max(group.min).max(scale_in_floor)),
        (Rung::Cap, Some(cap)) => desired.min(cap.max(current)),
        _ => return desired,
    };
    let limited = limited.max(desired.min(floor));
    if limited < desired {
        let why = match steer.rung {
            Rung::DenyScaleOut => "scale-out denied".to_owned(),
            _ if enforced && limited < current => format!(
                "capacity brought down to the cap of {} (enforced in the period's last tenth)",
                steer.cap.unwrap_or(current)
            ),
            _ => format!(
                "scale-out capped at {} (what the budget affords this group)",
                steer.cap.unwrap_or(current)
            ),
        };
        let over_cap = enforced && steer.cap.is_some_and(|cap| limited > cap.max(group.min));
        let floor_note = if limited > current || (over_cap && limited == floor) {
            format!("; the availability floor of {floor} is kept")
        } else if over_cap {
            format!("; the scale-in guards allow no lower than {limited} now")
        } else {
            String::new()
        };
        reasons.push(Reason {
            source,
            recommended: Some(limited),
            message: format!(
                "{}: {why}, {limited} instead of {desired}{floor_note}",
                steer.figures()
            ),
        });
    }
    limited
}

fn guard_reason(source: &str, recommended: u32, message: String) -> Reason {
    Reason {
        source: source.to_owned(),
        recommended: Some(recommended),
        message,
    }
}

fn finish(
    group: &GroupConfig,
    observation: &Observation<'_>,
    desired: u32,
    reasons: Vec<Reason>,
) -> Decision {
    let current = observation.group.desired;
    let direction = match desired.cmp(&current) {
        std::cmp::Ordering::Greater => Direction::Out,
        std::cmp::Ordering::Less => Direction::In,
        std::cmp::Ordering::Equal => Direction::Hold,
    };
    Decision {
        group: observation.group.id.clone(),
        at: observation.now,
        current,
        desired,
        direction,
        instance_class: None,
        reasons,
        dry_run: group.guards.dry_run,
    }
}

/// How long memory must reach back: the longest stabilisation window, rate-limit period and
/// cooldown of the group.
fn history_to_keep(group: &GroupConfig) -> TimeDelta {
    let mut keep = group
        .guards
        .scale_in_cooldown
        .as_delta()
        .max(group.guards.scale_out_cooldown.as_delta());
    for policy in &group.policies {
        if let PolicyConfig::TargetTracking(tt) = policy {
            keep = keep.max(hpa::history_needed(&tt.scale_up, &tt.scale_down));
        }
    }
    keep
}

/// The latest sample of `metric`, if it is usable; otherwise why not.
pub(crate) fn latest_value(
    observation: &Observation<'_>,
    metric: &MetricKind,
    max_age: TimeDelta,
) -> Result<f64, String> {
    latest_sample(observation, metric, max_age).map(|(_, value)| value)
}

/// The latest usable sample of `metric` with its time.
fn latest_sample(
    observation: &Observation<'_>,
    metric: &MetricKind,
    max_age: TimeDelta,
) -> Result<(DateTime<Utc>, f64), String> {
    let samples = observation
        .metrics
        .get(metric)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let Some(last) = samples.last() else {
        return Err(format!("no {metric} samples; holding"));
    };
    check_sample(observation.now, metric, last, max_age).map(|value| (last.at, value))
}

fn check_sample(
    now: DateTime<Utc>,
    metric: &MetricKind,
    sample: &Sample,
    max_age: TimeDelta,
) -> Result<f64, String> {
    let age = now - sample.at;
    if age > max_age {
        return Err(format!(
            "{metric} is stale: the newest sample is {}s old (limit {}s); holding",
            age.num_seconds(),
            max_age.num_seconds()
        ));
    }
    if sample.at > now + TimeDelta::seconds(1) {
        return Err(format!(
            "{metric} sample is {}s in the future; holding",
            (sample.at - now).num_seconds()
        ));
    }
    if !sample.value.is_finite() {
        return Err(format!("{metric} is {}; holding", sample.value));
    }
    if sample.value < 0.0 {
        return Err(format!("{metric} is negative ({}); holding", sample.value));
    }
    Ok(sample.value)
}

pub(crate) use hoist_api::input::number;

/// Ceiling to an instance count, checked. A relative 1e-9 slack absorbs float error, so that
/// 15 × 0.2 / 0.6 is 5 as it is in the HPA's integer milli-unit arithmetic.
///
/// `None` when `value` is not a number or is −∞: nothing can be read from it, and the caller
/// holds. +∞ and anything at or past `u32::MAX` is `u32::MAX` (the most instances that can be
/// asked for; the bounds cap it), never 0: `∞ − ∞ × 1e-9` is NaN, which an unchecked `as u32`
/// would turn into 0 and so scale a group *in* on an overwhelming signal.
pub(crate) fn checked_ceil(value: f64) -> Option<u32> {
    if value.is_nan() || value == f64::NEG_INFINITY {
        return None;
    }
    if value == f64::INFINITY {
        return Some(u32::MAX);
    }
    let v = (value - value.abs() * 1e-9).ceil();
    Some(if v <= 0.0 {
        0
    } else if v >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        v as u32
    })
}

/// Target tracking, following the Kubernetes HPA controller
/// (`pkg/controller/podautoscaler/replica_calculator.go` and `horizontal.go`):
/// raw recommendation from the usage ratio outside the tolerance, then the stabilisation window
/// (`stabilizeRecommendationWithBehaviors`), then the rate limits
/// (`convertDesiredReplicasWithBehaviorRate`). Tolerance, stabilisation and rate limits are the
/// shared [`hpa`] rules, the same the `hpa` baseline of `hoist-eval` runs; the raw
/// recommendation (not-yet-ready instances, metrics other than an average) is this policy's own.
fn target_tracking(
    tt: &TargetTracking,
    group: &GroupConfig,
    observation: &Observation<'_>,
    memory: &DecisionMemory,
    (index, update): (usize, &mut MemoryUpdate),
) -> (Vote, String) {
    let snapshot = observation.group;
    let current = snapshot.desired;
    let (sampled_at, value) = match latest_sample(
        observation,
        &tt.metric,
        group.guards.metric_max_age.as_delta(),
    ) {
        Ok(v) => v,
        Err(why) => return (Vote::Hold, why),
    };
    let aggregation = tt
        .aggregation
        .unwrap_or_else(|| Aggregation::default_for(&tt.metric));
    // A lagged sample describes the instances that were ready when it was taken; scaling the
    // ratio by today's count would count freshly booted instances twice and overshoot.
    let now = observation.now;
    let ready = memory
        .ready_at(sampled_at, (now, snapshot.ready))
        .unwrap_or(snapshot.ready)
        .min(snapshot.ready.max(1));
    let ready = if snapshot.ready == 0 { 0 } else { ready };
    let (target, raised) = budget_target(tt, observation);
    // Validation refuses such a target; a configuration built in code may still carry one.
    if !(target.is_finite() && target > 0.0) {
        return (
            Vote::Hold,
            format!(
                "target {} is not a positive finite number; nothing can be computed from it; holding",
                number(target)
            ),
        );
    }
    let (ratio, raw) = match aggregation {
        Aggregation::Average | Aggregation::Ratio => {
            if ready == 0 {
                return (
                    Vote::Hold,
                    format!(
                        "{} = {value:.3} but no instance is ready yet; holding",
                        tt.metric
                    ),
                );
            }
            let ratio = value / target;
            (ratio, checked_ceil(f64::from(ready) * ratio))
        }
        Aggregation::Total => {
            let ratio = if current == 0 {
                f64::INFINITY
            } else {
                value / (target * f64::from(current))
            };
            (ratio, checked_ceil(value / target))
        }
    };
    // Every step from the metric to a count is checked. The metric is finite and not negative
    // and the target positive and finite, so the ratio is never NaN; a count that does not fit
    // comes back as `u32::MAX` from an overwhelming signal (more, as many as the bounds allow),
    // never as 0. Anything that still is not a number holds: it never moves capacity.
    let Some(raw) = raw.filter(|_| !ratio.is_nan()) else {
        return (
            Vote::Hold,
            format!(
                "{} = {}, target {}: the capacity it asks for cannot be computed (ratio {ratio}); holding",
                tt.metric,
                number(value),
                number(target)
            ),
        );
    };
    let overflowed = raw == u32::MAX && ratio > 1.0;
    let within_tolerance = hpa::within_tolerance(ratio, tt.tolerance);
    // The count is taken over the instances ready when the sample was taken, which may be
    // fewer (booting) or more (draining) than the current capacity; a metric above its target
    // still never lowers capacity, nor one below it raises it (as the HPA controller returns
    // the current count when its recount reverses the direction).
    let against =
        !within_tolerance && ((ratio > 1.0 && raw < current) || (ratio < 1.0 && raw > current));
    let unchecked_raw = raw;
    let raw = if within_tolerance || against {
        current
    } else {
        raw
    };

    // Stabilisation: scale up to the lowest, down to the highest recent recommendation.
    let stabilised = hpa::stabilize(
        current,
        raw,
        now,
        &tt.scale_up,
        &tt.scale_down,
        memory.recommendations_of(group.policies.len(), index),
    );
    update.recommendations.push((index, raw));

    // Rate limits per direction.
    let limited = hpa::rate_limit(
        current,
        stabilised,
        &tt.scale_up,
        &tt.scale_down,
        |period| memory.changes_since(now, period),
    );

    let mut message = format!(
        "{} = {value:.3}, target {} ({aggregation:?}), ratio {ratio:.2}",
        tt.metric,
        if raised.is_some() {
            format!("{target:.3}")
        } else {
            number(target)
        }
    );
    if let Some(note) = raised {
        message.push_str(&note);
    }
    if within_tolerance {
        message.push_str(&format!(" within tolerance {}", tt.tolerance));
    } else if against {
        let way = if ratio > 1.0 { "above" } else { "below" };
        message.push_str(&format!(
            " → {unchecked_raw} over the instances it was measured on, against a metric {way} its target; keeping {current}"
        ));
    } else if overflowed {
        message.push_str(" → more instances than can be counted: asking for the maximum");
    } else {
        message.push_str(&format!(" → {raw}"));
    }
    if stabilised != raw {
        message.push_str(&format!(", stabilised to {stabilised}"));
    }
    if limited != stabilised {
        message.push_str(&format!(", rate-limited to {limited}"));
    }
    (Vote::Capacity(limited), message)
}

fn step_scaling(
    step: &StepScaling,
    group: &GroupConfig,
    observation: &Observation<'_>,
) -> (Vote, String) {
    let current = observation.group.desired;
    let value = match latest_value(
        observation,
        &step.metric,
        group.guards.metric_max_age.as_delta(),
    ) {
        Ok(v) => v,
        Err(why) => return (Vote::Hold, why),
    };
    let matched = step
        .steps
        .iter()
        .position(|s| s.from.is_none_or(|from| value >= from) && s.to.is_none_or(|to| value < to));
    let Some(i) = matched else {
        return (
            Vote::Capacity(current),
            format!(
                "{} = {value:.3} is in no step; keeping {current}",
                step.metric
            ),
        );
    };
    let adjust = step.steps[i].adjust;
    // Saturating: an adjustment too large for the arithmetic is as many (or as few) instances as
    // can be, in the direction it asks, never wrapped round to the other.
    let target = match step.adjustment {
        AdjustmentType::Change => i64::from(current).saturating_add(adjust),
        AdjustmentType::Exact => adjust,
        AdjustmentType::Percent => {
            let change = f64::from(current) * adjust as f64 / 100.0;
            // At least one instance in the direction asked, as AWS's MinAdjustmentMagnitude of 1.
            let change = if change > 0.0 {
                change.ceil().max(1.0)
            } else if change < 0.0 {
                change.floor().min(-1.0)
            } else {
                0.0
            };
            // `as` saturates (and `change` is finite: at most 2^32 × 2^63 / 100).
            i64::from(current).saturating_add(change as i64)
        }
    };
    let target = target.clamp(0, i64::from(u32::MAX)) as u32;
    (
        Vote::Capacity(target),
        format!(
            "{} = {value:.3} is in step {i} ({:?} {adjust}) → {target}",
            step.metric, step.adjustment
        ),
    )
}

fn threshold(th: &Threshold, group: &GroupConfig, observation: &Observation<'_>) -> (Vote, String) {
    let current = observation.group.desired;
    let max_age = group.guards.metric_max_age.as_delta();
    let samples = observation
        .metrics
        .get(&th.metric)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let periods = th.periods as usize;
    if samples.len() < periods {
        return (
            Vote::Hold,
            format!(
                "{} has {} samples, {periods} needed; holding",
                th.metric,
                samples.len()
            ),
        );
    }
    let window = &samples[samples.len() - periods..];
    // The newest sample must be fresh; every sample in the window must be a real value.
    if let Err(why) = check_sample(observation.now, &th.metric, &window[periods - 1], max_age) {
        return (Vote::Hold, why);
    }
    if window.iter().any(|s| !s.value.is_finite() || s.value < 0.0) {
        return (
            Vote::Hold,
            format!(
                "{} has an invalid sample in its last {periods}; holding",
                th.metric
            ),
        );
    }
    let values: Vec<f64> = window.iter().map(|s| s.value).collect();
    let last = values[values.len() - 1];
    if let Some(upper) = th.upper
        && values.iter().all(|&v| v > upper)
    {
        let target = current.saturating_add(th.scale_out_by);
        return (
            Vote::Capacity(target),
            format!(
                "{} = {last:.3} above {upper} for {periods} samples → +{} = {target}",
                th.metric, th.scale_out_by
            ),
        );
    }
    if let Some(lower) = th.lower
        && values.iter().all(|&v| v < lower)
    {
        let target = current.saturating_sub(th.scale_in_by);
        return (
            Vote::Capacity(target),
            format!(
                "{} = {last:.3} below {lower} for {periods} samples → −{} = {target}",
                th.metric, th.scale_in_by
            ),
        );
    }
    (
        Vote::Capacity(current),
        format!(
            "{} = {last:.3} within thresholds; keeping {current}",
            th.metric
        ),
    )
}

/// A scheduled policy moves the floor and ceiling while it is active, always within `bounds`
/// (the provider's and the group's together): a schedule never asks a provider for a count it
/// would refuse, nor takes a group past its own limits.
fn scheduled(
    s: &Scheduled,
    now: DateTime<Utc>,
    (lowest, highest): (u32, u32),
    (floor, ceiling): (&mut u32, &mut u32),
) -> (Vote, String) {
    if !s.cron.is_active(s.timezone, s.duration.as_delta(), now) {
        return (
            Vote::Abstain,
            format!("schedule `{}` ({}) not active", s.cron, s.timezone),
        );
    }
    let mut parts = Vec::new();
    let within = |v: u32| v.clamp(lowest, highest);
    if let Some(desired) = s.desired.map(within) {
        *floor = (*floor).max(desired);
        *ceiling = (*ceiling).min(desired);
        parts.push(format!("desired {desired}"));
    }
    if let Some(min) = s.min.map(within) {
        *floor = (*floor).max(min);
        parts.push(format!("min {min}"));
    }
    if let Some(max) = s.max.map(within) {
        *ceiling = (*ceiling).min(max);
        parts.push(format!("max {max}"));
    }
    (
        Vote::Abstain,
        format!(
            "schedule `{}` ({}) active for {}: {}",
            s.cron,
            s.timezone,
            s.duration,
            parts.join(", ")
        ),
    )
}
