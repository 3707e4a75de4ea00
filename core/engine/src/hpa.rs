//! The Kubernetes Horizontal Pod Autoscaler's tolerance, stabilisation and rate limits: one
//! implementation, used by the engine's `target_tracking` policy and by the `hpa` baseline of
//! `hoist-eval`.
//!
//! It follows the HPA controller (`kubernetes/pkg/controller/podautoscaler`, `horizontal.go`):
//!
//! - **Tolerance** ([`within_tolerance`]): no change while `|1 − ratio| ≤ tolerance`
//!   (`replica_calculator.go`).
//! - **Stabilisation** ([`stabilize`], `stabilizeRecommendationWithBehaviors`): the raw
//!   recommendation of every evaluation is remembered with its time; the result is the current
//!   capacity pulled up to the lowest recommendation of the scale-up window and down to the
//!   highest of the scale-down window, the current one included. A recommendation counts while
//!   it is strictly newer than `now − window`.
//! - **Rate limits** ([`rate_limit`], `convertDesiredReplicasWithBehaviorRate`,
//!   `calculateScaleUpLimitWithScalingRules`, `calculateScaleDownLimitWithBehaviors`): for each
//!   limit, the capacity at the period's start is `current − added + removed`, counting the
//!   changes strictly newer than `now − period`. Scale-up: `instances` adds that many,
//!   `percent` allows `ceil(start × (1 + p/100))`. Scale-down: `instances` removes that many,
//!   `percent` allows `trunc(start × (1 − p/100))` (so the instances removed round up: 10 % of
//!   72 lets 8 go, as the Kubernetes documentation's example says). `select: max` (the default)
//!   takes the limit allowing the largest change, `min` the smallest, `disabled` forbids the
//!   direction. A limit never turns a scale-up into a scale-down or the reverse: it stops at the
//!   current capacity.
//!
//! The one difference from Kubernetes: a direction with no limits at all is not limited
//! (the Kubernetes API refuses a `behavior` whose `policies` list is empty, so there is no
//! behaviour of its own to match).
//!
//! What is not here, because the two users differ on purpose: how the raw recommendation is
//! computed from the metric (the engine reads a lagged sample against the instances that were
//! ready when it was taken and knows averaged, total and ratio metrics; the baseline counts
//! not-yet-ready pods as idle when scaling up, as the controller does for CPU), and the bounds
//! (the engine applies `min`/`max` after merging every policy of a group).

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::{Behavior, LimitAmount, Select};

/// Whether a usage ratio (metric over target) is close enough to 1 to leave capacity alone.
pub fn within_tolerance(ratio: f64, tolerance: f64) -> bool {
    (1.0 - ratio).abs() <= tolerance
}

/// The stabilised recommendation: `current` raised to the lowest recommendation of the
/// scale-up window and lowered to the highest of the scale-down window, where the windows hold
/// `raw` and every earlier recommendation in `history` newer than `now − window`.
///
/// `history` is what earlier evaluations recommended (their raw values, before stabilisation),
/// as `(time, instances)`; the caller remembers `(now, raw)` for the next evaluation.
pub fn stabilize(
    current: u32,
    raw: u32,
    now: DateTime<Utc>,
    scale_up: &Behavior,
    scale_down: &Behavior,
    history: impl IntoIterator<Item = (DateTime<Utc>, u32)>,
) -> u32 {
    let up_cutoff = now - scale_up.stabilization_window.as_delta();
    let down_cutoff = now - scale_down.stabilization_window.as_delta();
    let mut up = raw;
    let mut down = raw;
    for (at, recommended) in history {
        if at > up_cutoff {
            up = up.min(recommended);
        }
        if at > down_cutoff {
            down = down.max(recommended);
        }
    }
    let mut stabilized = current;
    if stabilized < up {
        stabilized = up;
    }
    if stabilized > down {
        stabilized = down;
    }
    stabilized
}

/// `desired` held to the rate limits of its direction. `changes(period)` returns the instances
/// added and removed in `(now − period, now]`, as applied changes of capacity.
pub fn rate_limit(
    current: u32,
    desired: u32,
    scale_up: &Behavior,
    scale_down: &Behavior,
    changes: impl Fn(TimeDelta) -> (i64, i64),
) -> u32 {
    if desired > current {
        desired.min(scale_up_limit(current, scale_up, changes))
    } else if desired < current {
        desired.max(scale_down_limit(current, scale_down, changes))
    } else {
        desired
    }
}

/// The most instances the scale-up limits allow now, never below `current`.
pub fn scale_up_limit(
    current: u32,
    rules: &Behavior,
    changes: impl Fn(TimeDelta) -> (i64, i64),
) -> u32 {
    if rules.select == Select::Disabled {
        return current;
    }
    let mut best: Option<i64> = None;
    for limit in &rules.limits {
        let start = period_start(current, changes(limit.period.as_delta()));
        let proposed = match limit.amount {
            LimitAmount::Instances(n) => start + i64::from(n),
            // Rounded up, or a small group could never grow.
            LimitAmount::Percent(p) => percent_of(start, 1.0 + p / 100.0, f64::ceil),
        };
        best = Some(match (best, rules.select) {
            (None, _) => proposed,
            (Some(b), Select::Min) => b.min(proposed),
            (Some(b), _) => b.max(proposed),
        });
    }
    match best {
        None => u32::MAX,
        Some(limit) => clamp_u32(limit).max(current),
    }
}

/// The fewest instances the scale-down limits allow now, never above `current`.
pub fn scale_down_limit(
    current: u32,
    rules: &Behavior,
    changes: impl Fn(TimeDelta) -> (i64, i64),
) -> u32 {
    if rules.select == Select::Disabled {
        return current;
    }
    let mut best: Option<i64> = None;
    for limit in &rules.limits {
        let start = period_start(current, changes(limit.period.as_delta()));
        let proposed = match limit.amount {
            LimitAmount::Instances(n) => start - i64::from(n),
            // Truncated, as the controller's `int32(...)` conversion does.
            LimitAmount::Percent(p) => percent_of(start, 1.0 - p / 100.0, f64::trunc),
        };
        // For scale-in, the limit allowing the largest change is the lowest count.
        best = Some(match (best, rules.select) {
            (None, _) => proposed,
            (Some(b), Select::Min) => b.max(proposed),
            (Some(b), _) => b.min(proposed),
        });
    }
    match best {
        None => 0,
        Some(limit) => clamp_u32(limit).min(current),
    }
}

/// How far back a policy's memory must reach for these rules: the longest stabilisation window
/// and limit period of either direction.
pub fn history_needed(scale_up: &Behavior, scale_down: &Behavior) -> TimeDelta {
    let mut keep = TimeDelta::zero();
    for rules in [scale_up, scale_down] {
        keep = keep.max(rules.stabilization_window.as_delta());
        for limit in &rules.limits {
            keep = keep.max(limit.period.as_delta());
        }
    }
    keep
}

/// Capacity at the start of a limit's period (`periodStartReplicas`).
fn period_start(current: u32, (added, removed): (i64, i64)) -> i64 {
    i64::from(current) - added + removed
}

/// `round(start × factor)`, checked: a result that is not a number (a factor validation would
/// have refused, such as NaN, or 0 × ∞) allows no change from `start`; an overflow saturates
/// (`as` does), in the direction the limit asks.
fn percent_of(start: i64, factor: f64, round: fn(f64) -> f64) -> i64 {
    let value = round(start as f64 * factor);
    if value.is_nan() { start } else { value as i64 }
}

fn clamp_u32(value: i64) -> u32 {
    value.clamp(0, i64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateLimit;
    use crate::duration::HumanDuration;

    fn rules(window: u64, limits: &[(LimitAmount, u64)], select: Select) -> Behavior {
        Behavior {
            stabilization_window: HumanDuration::from_secs(window),
            limits: limits
                .iter()
                .map(|&(amount, period)| RateLimit {
                    amount,
                    period: HumanDuration::from_secs(period),
                })
                .collect(),
            select,
        }
    }

    fn none(_: TimeDelta) -> (i64, i64) {
        (0, 0)
    }

    #[test]
    fn percent_scale_down_truncates_as_the_controller_does() {
        let down = rules(0, &[(LimitAmount::Percent(10.0), 60)], Select::Max);
        // The documentation's example: 10 % of 80 is 8; of 72 it is 7.2, and 8 may go.
        assert_eq!(scale_down_limit(80, &down, none), 72);
        assert_eq!(scale_down_limit(72, &down, none), 64);
        // A group of 9 can still shrink (9 × 0.9 = 8.1 → 8).
        assert_eq!(scale_down_limit(9, &down, none), 8);
        let half = rules(0, &[(LimitAmount::Percent(50.0), 60)], Select::Max);
        assert_eq!(scale_down_limit(7, &half, none), 3);
    }

    #[test]
    fn percent_scale_up_rounds_up_and_pods_are_absolute() {
        let up = rules(
            0,
            &[
                (LimitAmount::Instances(4), 15),
                (LimitAmount::Percent(100.0), 15),
            ],
            Select::Max,
        );
        assert_eq!(scale_up_limit(1, &up, none), 5);
        assert_eq!(scale_up_limit(10, &up, none), 20);
        let min = Behavior {
            select: Select::Min,
            ..up.clone()
        };
        assert_eq!(scale_up_limit(10, &min, none), 14);
        let tenth = rules(0, &[(LimitAmount::Percent(10.0), 15)], Select::Max);
        assert_eq!(scale_up_limit(3, &tenth, none), 4);
    }

    #[test]
    fn changes_in_the_period_count_from_its_start_and_never_reverse_the_direction() {
        let up = rules(0, &[(LimitAmount::Instances(4), 60)], Select::Max);
        // 10 now, 8 added within the period: it started at 2, so at most 6, and that is below
        // the current 10: no further scale-up, but no scale-down either.
        assert_eq!(scale_up_limit(10, &up, |_| (8, 0)), 10);
        assert_eq!(rate_limit(10, 30, &up, &up, |_| (8, 0)), 10);
        let down = rules(0, &[(LimitAmount::Instances(1), 60)], Select::Max);
        assert_eq!(scale_down_limit(10, &down, |_| (0, 5)), 10);
        assert_eq!(rate_limit(10, 2, &down, &down, |_| (0, 5)), 10);
    }

    #[test]
    fn disabled_and_unlimited_directions() {
        let disabled = rules(0, &[(LimitAmount::Instances(4), 60)], Select::Disabled);
        assert_eq!(rate_limit(10, 20, &disabled, &disabled, none), 10);
        assert_eq!(rate_limit(10, 2, &disabled, &disabled, none), 10);
        let open = rules(0, &[], Select::Max);
        assert_eq!(rate_limit(10, 200, &open, &open, none), 200);
        assert_eq!(rate_limit(10, 0, &open, &open, none), 0);
    }

    #[test]
    fn stabilisation_keeps_the_highest_recent_recommendation_for_scale_down() {
        let up = rules(0, &[], Select::Max);
        let down = rules(300, &[], Select::Max);
        let t0 = DateTime::<Utc>::from_timestamp(0, 0).unwrap();
        let at = |s: i64| t0 + TimeDelta::seconds(s);
        let history = [(at(0), 8), (at(100), 6)];
        assert_eq!(stabilize(8, 3, at(200), &up, &down, history), 8);
        // At 300 s the 8 from 0 s has left the window (strictly newer than now − 300 s).
        assert_eq!(stabilize(8, 3, at(300), &up, &down, history), 6);
        // Scale-up is not held back by a zero window.
        assert_eq!(stabilize(8, 12, at(300), &up, &down, history), 12);
        assert!(within_tolerance(1.08, 0.1) && within_tolerance(0.92, 0.1));
        assert!(!within_tolerance(1.2, 0.1));
    }
}
