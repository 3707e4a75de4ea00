//! The alert conditions, as a pure state machine over the control loop's events: given an
//! event and the time, [`AlertRules::observe`] returns the alerts that start firing and the
//! ones that resolve. No I/O and no clock of its own, so every rule is tested exactly.
//!
//! - `scaling_action_failed`: `Acted` with an error `after_failures` times in a row on a group;
//!   resolves on the next successful action.
//! - `pinned_at_max`: a `Decided` whose desired capacity is at the group's maximum (the policy
//!   maximum last seen in `GroupObserved`, or a `guard.max` reason) while a reason recommended
//!   more, holding for `for`; resolves on the first decision where that is no longer true.
//! - `metrics_missing`: `MetricsMissing` for a metric, in every evaluation for `for`; resolves
//!   when an evaluation of the group (its `Decided`) passes without that metric missing.
//! - `circuit_open`: `Circuit { open: true }` held for `for`; resolves on `open: false`.
//! - `budget_actual`, `budget_forecast`: a `Budget` status listing a threshold in
//!   `actual_crossed` / `forecast_crossed` fires an alert for that budget and threshold, once per
//!   period: later statuses of the same period only refresh its figures, even if the forecast
//!   falls back under the threshold meanwhile. When a status of a new period arrives (another
//!   `period_start`), every active alert of the budget resolves.
//! - `config_rejected`: `ConfigRejected` (a changed policy file refused by a live reload) fires
//!   at once, with the errors; a later refusal updates it; `ConfigApplied` resolves it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use hoist_engine::budget::BudgetStatus;
use hoist_engine::events::Event;

use super::config::{BudgetRule, EffectiveRule, RulesConfig};
use super::{Alert, AlertName, AlertStatus, Severity};

/// What changed after one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// A new alert fires.
    Fire(Alert),
    /// An active alert's details changed (the last error, the current values); re-sends carry
    /// the new text, nothing is sent at once.
    Update(Alert),
    /// An active alert resolved.
    Resolve(Alert),
}

type GroupKey = (String, String);

/// A condition that has held since `since`, and the alert once it fired.
#[derive(Debug, Clone)]
struct Pending {
    since: DateTime<Utc>,
    firing: bool,
}

/// What the budget rules remember of one budget.
#[derive(Debug, Clone)]
struct BudgetPeriod {
    period_start: DateTime<Utc>,
    /// De-duplication keys of the alerts fired in this period.
    fired: BTreeSet<String>,
}

/// The `provider` label of a policy file's reload alert: `config:` and the file.
fn config_alert_key(file: &str) -> String {
    format!("config:{file}")
}

/// The provider of budget alerts (budgets span providers).
pub const BUDGET_PROVIDER: &str = "budgets";

/// The state of every rule.
#[derive(Debug)]
pub struct AlertRules {
    action_failed_after: u32,
    action_failed_severity: Severity,
    action_failed_enabled: bool,
    pinned: EffectiveRule,
    missing: EffectiveRule,
    circuit: EffectiveRule,
    config_rejected: EffectiveRule,
    extra_labels: BTreeMap<String, String>,
    /// Policy maximum per group, from `GroupObserved`.
    max_seen: BTreeMap<GroupKey, u32>,
    /// Consecutive failed actions per group, with the first failure's time.
    failures: BTreeMap<GroupKey, (u32, DateTime<Utc>, bool)>,
    pinned_state: BTreeMap<GroupKey, Pending>,
    /// (provider, group, metric) -> condition state.
    missing_state: BTreeMap<(String, String, String), Pending>,
    /// Metrics reported missing in the current evaluation of each group.
    missing_this_round: BTreeMap<GroupKey, BTreeSet<String>>,
    circuit_state: BTreeMap<String, Pending>,
    budget_actual: BudgetRule,
    budget_forecast: BudgetRule,
    /// Budget -> the period it is in and the (alert, threshold) pairs fired in that period.
    budget_state: BTreeMap<String, BudgetPeriod>,
    /// The active alerts by de-duplication key.
    active: BTreeMap<String, Alert>,
}

impl AlertRules {
    /// Rules from configuration, adding `extra_labels` to every alert.
    pub fn new(rules: &RulesConfig, extra_labels: BTreeMap<String, String>) -> Self {
        AlertRules {
            action_failed_after: rules.scaling_action_failed.after_failures.max(1),
            action_failed_severity: rules.scaling_action_failed.severity,
            action_failed_enabled: rules.scaling_action_failed.enabled,
            pinned: rules.pinned_at_max(),
            missing: rules.metrics_missing(),
            circuit: rules.circuit_open(),
            config_rejected: rules.config_rejected(),
            extra_labels,
            max_seen: BTreeMap::new(),
            failures: BTreeMap::new(),
            pinned_state: BTreeMap::new(),
            missing_state: BTreeMap::new(),
            missing_this_round: BTreeMap::new(),
            circuit_state: BTreeMap::new(),
            budget_actual: rules.budget_actual.clone(),
            budget_forecast: rules.budget_forecast.clone(),
            budget_state: BTreeMap::new(),
            active: BTreeMap::new(),
        }
    }

    /// The alerts firing now.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }

    /// Feeds one event observed at `now`; returns what changed.
    pub fn observe(&mut self, event: &Event, now: DateTime<Utc>) -> Vec<Transition> {
        let mut out = Vec::new();
        match event {
            Event::GroupObserved {
                provider,
                group,
                max,
                ..
            } => {
                let key = (provider.clone(), group.id.clone());
                self.max_seen.insert(key.clone(), *max);
                self.missing_this_round.remove(&key);
            }
            Event::Acted {
                provider,
                group,
                from,
                to,
                error,
            } if self.action_failed_enabled => {
                let key = (provider.clone(), group.clone());
                match error {
                    Some((kind, message)) => {
                        let entry = self.failures.entry(key.clone()).or_insert((0, now, false));
                        entry.0 += 1;
                        let (count, since, was_firing) = *entry;
                        if count >= self.action_failed_after {
                            let alert = self.alert(
                                AlertName::ScalingActionFailed,
                                self.action_failed_severity,
                                provider,
                                Some(group),
                                None,
                                format!("Scaling {provider}/{group} fails ({kind})"),
                                format!(
                                    "{count} scaling action(s) in a row on group {group} of provider {provider} failed; \
                                     the last asked for {from} -> {to} instances and failed with {kind}: {message}"
                                ),
                                since,
                            );
                            if let Some(entry) = self.failures.get_mut(&key) {
                                entry.2 = true;
                            }
                            out.push(self.raise(alert, was_firing));
                        }
                    }
                    None => {
                        if let Some((_, _, firing)) = self.failures.remove(&key)
                            && firing
                        {
                            out.extend(self.clear(
                                AlertName::ScalingActionFailed,
                                provider,
                                Some(group),
                                None,
                                now,
                            ));
                        }
                    }
                }
            }
            Event::Decided { provider, decision } => {
                let key = (provider.clone(), decision.group.clone());
                if self.pinned.enabled {
                    let wanted = decision
                        .reasons
                        .iter()
                        .filter(|r| !r.source.starts_with("guard."))
                        .filter_map(|r| r.recommended)
                        .max();
                    let at_max = self
                        .max_seen
                        .get(&key)
                        .is_some_and(|max| decision.desired >= *max)
                        || decision.reasons.iter().any(|r| r.source == "guard.max");
                    let pinned = at_max && wanted.is_some_and(|w| w > decision.desired);
                    if pinned {
                        let wanted = wanted.unwrap_or(decision.desired);
                        let state = self.pinned_state.entry(key.clone()).or_insert(Pending {
                            since: now,
                            firing: false,
                        });
                        let (since, was_firing) = (state.since, state.firing);
                        if held_for(since, now, self.pinned.for_duration) {
                            if let Some(state) = self.pinned_state.get_mut(&key) {
                                state.firing = true;
                            }
                            let alert = self.alert(
                                AlertName::PinnedAtMax,
                                self.pinned.severity,
                                provider,
                                Some(&decision.group),
                                None,
                                format!(
                                    "{provider}/{} pinned at its maximum of {} instances",
                                    decision.group, decision.desired
                                ),
                                format!(
                                    "Group {} of provider {provider} is held at its maximum of {} instances while its \
                                     policies ask for {wanted}: demand exceeds the capacity it may use. Raise `max` or \
                                     check the load.",
                                    decision.group, decision.desired
                                ),
                                since,
                            );
                            out.push(self.raise(alert, was_firing));
                        }
                    } else if let Some(state) = self.pinned_state.remove(&key)
                        && state.firing
                    {
                        out.extend(self.clear(
                            AlertName::PinnedAtMax,
                            provider,
                            Some(&decision.group),
                            None,
                            now,
                        ));
                    }
                }
                // The evaluation of this group is over: metrics not reported missing in it are
                // back.
                let missing_now = self.missing_this_round.remove(&key).unwrap_or_default();
                let recovered: Vec<(String, String, String)> = self
                    .missing_state
                    .keys()
                    .filter(|(p, g, m)| *p == key.0 && *g == key.1 && !missing_now.contains(m))
                    .cloned()
                    .collect();
                for k in recovered {
                    if let Some(state) = self.missing_state.remove(&k)
                        && state.firing
                    {
                        out.extend(self.clear(
                            AlertName::MetricsMissing,
                            &k.0,
                            Some(&k.1),
                            Some(&k.2),
                            now,
                        ));
                    }
                }
            }
            Event::MetricsMissing {
                provider,
                group,
                metric,
                reason,
            } if self.missing.enabled => {
                let metric = metric.name().to_owned();
                self.missing_this_round
                    .entry((provider.clone(), group.clone()))
                    .or_default()
                    .insert(metric.clone());
                let state_key = (provider.clone(), group.clone(), metric.clone());
                let state = self
                    .missing_state
                    .entry(state_key.clone())
                    .or_insert(Pending {
                        since: now,
                        firing: false,
                    });
                let (since, was_firing) = (state.since, state.firing);
                if held_for(since, now, self.missing.for_duration) {
                    if let Some(state) = self.missing_state.get_mut(&state_key) {
                        state.firing = true;
                    }
                    let alert = self.alert(
                        AlertName::MetricsMissing,
                        self.missing.severity,
                        provider,
                        Some(group),
                        Some(&metric),
                        format!("Metric {metric} of {provider}/{group} is unusable; the group holds"),
                        format!(
                            "The metric {metric} that a policy of group {group} (provider {provider}) scales on \
                             is missing, stale or invalid, so the group keeps its capacity: {reason}"
                        ),
                        since,
                    );
                    out.push(self.raise(alert, was_firing));
                }
            }
            Event::ConfigRejected {
                file,
                fingerprint,
                errors,
            } if self.config_rejected.enabled => {
                let key = config_alert_key(file);
                let since = self
                    .active
                    .values()
                    .find(|a| a.name == AlertName::ConfigRejected && a.provider == key)
                    .map(|a| a.starts_at);
                let alert = self.alert(
                    AlertName::ConfigRejected,
                    self.config_rejected.severity,
                    &key,
                    None,
                    None,
                    format!("Policy file {file} was refused; the previous configuration keeps running"),
                    format!(
                        "hoist run refused the changed policy file {file} (fingerprint {fingerprint}) and keeps \
                         running the configuration it had: {errors}"
                    ),
                    since.unwrap_or(now),
                );
                out.push(self.raise(alert, since.is_some()));
            }
            Event::ConfigApplied { file, .. } if self.config_rejected.enabled => {
                let key = config_alert_key(file);
                out.extend(self.clear(AlertName::ConfigRejected, &key, None, None, now));
            }
            Event::Circuit { provider, open } if self.circuit.enabled => {
                if *open {
                    let state = self
                        .circuit_state
                        .entry(provider.clone())
                        .or_insert(Pending {
                            since: now,
                            firing: false,
                        });
                    let (since, was_firing) = (state.since, state.firing);
                    if held_for(since, now, self.circuit.for_duration) {
                        if let Some(state) = self.circuit_state.get_mut(provider) {
                            state.firing = true;
                        }
                        let alert = self.alert(
                            AlertName::CircuitOpen,
                            self.circuit.severity,
                            provider,
                            None,
                            None,
                            format!("Circuit to provider {provider} is open"),
                            format!(
                                "Calls to provider {provider} failed repeatedly and its circuit breaker opened: \
                                 Hoist does not call it (and cannot scale its groups) until it closes."
                            ),
                            since,
                        );
                        out.push(self.raise(alert, was_firing));
                    }
                } else if let Some(state) = self.circuit_state.remove(provider)
                    && state.firing
                {
                    out.extend(self.clear(AlertName::CircuitOpen, provider, None, None, now));
                }
            }
            Event::Budget(status) => self.observe_budget(status, now, &mut out),
            _ => {}
        }
        out
    }

    /// The budget rules: one alert per (budget, kind, threshold) per period.
    fn observe_budget(
        &mut self,
        status: &BudgetStatus,
        now: DateTime<Utc>,
        out: &mut Vec<Transition>,
    ) {
        let new_period = self
            .budget_state
            .get(&status.budget)
            .is_some_and(|state| state.period_start != status.period_start);
        if new_period {
            // Everything of the finished period resolves, whatever rule raised it.
            let ended: Vec<String> = self
                .active
                .iter()
                .filter(|(_, a)| a.budget.as_deref() == Some(status.budget.as_str()))
                .map(|(key, _)| key.clone())
                .collect();
            for key in ended {
                if let Some(alert) = self.active.remove(&key) {
                    out.push(Transition::Resolve(alert.resolved(now)));
                }
            }
        }
        let state = self
            .budget_state
            .entry(status.budget.clone())
            .or_insert_with(|| BudgetPeriod {
                period_start: status.period_start,
                fired: BTreeSet::new(),
            });
        if state.period_start != status.period_start {
            state.period_start = status.period_start;
            state.fired.clear();
        }
        for (name, rule, crossed) in [
            (
                AlertName::BudgetActual,
                &self.budget_actual,
                &status.actual_crossed,
            ),
            (
                AlertName::BudgetForecast,
                &self.budget_forecast,
                &status.forecast_crossed,
            ),
        ] {
            if !rule.enabled {
                continue;
            }
            for &threshold in crossed.iter().filter(|t| t.is_finite()) {
                let alert = budget_alert(
                    name,
                    rule.severity_for(threshold),
                    status,
                    threshold,
                    now,
                    &self.extra_labels,
                );
                let key = alert.dedup_key();
                let Some(state) = self.budget_state.get_mut(&status.budget) else {
                    continue;
                };
                if state.fired.insert(key.clone()) {
                    self.active.insert(key, alert.clone());
                    out.push(Transition::Fire(alert));
                } else if let Some(active) = self.active.get_mut(&key) {
                    // Same crossing, same period: refresh the figures, keep when it started.
                    let refreshed = Alert {
                        starts_at: active.starts_at,
                        ..alert
                    };
                    *active = refreshed.clone();
                    out.push(Transition::Update(refreshed));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn alert(
        &self,
        name: AlertName,
        severity: Severity,
        provider: &str,
        group: Option<&String>,
        metric: Option<&String>,
        summary: String,
        description: String,
        starts_at: DateTime<Utc>,
    ) -> Alert {
        Alert {
            name,
            severity,
            status: AlertStatus::Firing,
            provider: provider.to_owned(),
            group: group.cloned(),
            metric: metric.cloned(),
            budget: None,
            threshold: None,
            period_start: None,
            summary,
            description,
            starts_at,
            ends_at: None,
            extra_labels: self.extra_labels.clone(),
        }
    }

    fn raise(&mut self, alert: Alert, was_firing: bool) -> Transition {
        self.active.insert(alert.dedup_key(), alert.clone());
        if was_firing {
            Transition::Update(alert)
        } else {
            Transition::Fire(alert)
        }
    }

    fn clear(
        &mut self,
        name: AlertName,
        provider: &str,
        group: Option<&String>,
        metric: Option<&String>,
        now: DateTime<Utc>,
    ) -> Option<Transition> {
        let probe = Alert {
            name,
            severity: Severity::Info,
            status: AlertStatus::Firing,
            provider: provider.to_owned(),
            group: group.cloned(),
            metric: metric.cloned(),
            budget: None,
            threshold: None,
            period_start: None,
            summary: String::new(),
            description: String::new(),
            starts_at: now,
            ends_at: None,
            extra_labels: BTreeMap::new(),
        };
        self.active
            .remove(&probe.dedup_key())
            .map(|alert| Transition::Resolve(alert.resolved(now)))
    }
}

/// The alert for `threshold` (percent) of `status`, firing since `now`.
fn budget_alert(
    name: AlertName,
    severity: Severity,
    status: &BudgetStatus,
    threshold: f64,
    now: DateTime<Utc>,
    extra_labels: &BTreeMap<String, String>,
) -> Alert {
    let currency = &status.currency;
    let (what, figure) = match name {
        AlertName::BudgetForecast => ("forecast", status.forecast),
        _ => ("spent", status.spent),
    };
    let share = if status.amount > 0.0 {
        figure / status.amount * 100.0
    } else {
        f64::INFINITY
    };
    let threshold_text = percent(threshold);
    let summary = format!(
        "budget {}: {what} {} {currency} is {share:.0} % of {} {currency} ({}); threshold {threshold_text} %",
        status.budget,
        money(figure),
        money(status.amount),
        status.period,
    );
    let rung = match status.rung {
        None => "none (the forecast is inside the budget)".to_owned(),
        Some(rung) if rung >= hoist_engine::config::budget::Rung::Cap => format!(
            "{rung} (target scale {:.2}, {:.0} % of capacity kept)",
            status.target_scale,
            status.capacity_kept * 100.0
        ),
        Some(rung) => rung.to_string(),
    };
    let mut description = format!(
        "Budget {} ({}, {}) crossed its {what} threshold of {threshold_text} %. \
         Spent {} {currency} of {} {currency} since {}; forecast {} {currency} at the period's end \
         at a pace of {} {currency}/h (run rate {} {currency}/h). Rung: {rung}. The period ends {}.",
        status.budget,
        status.scope,
        status.period,
        money(status.spent),
        money(status.amount),
        status.period_start.format("%Y-%m-%d %H:%M UTC"),
        money(status.forecast),
        money(status.pace_per_hour),
        money(status.run_rate_per_hour),
        status.period_end.format("%Y-%m-%d %H:%M UTC"),
    );
    if let Some((from, rate, day)) = &status.converted_from {
        description.push_str(&format!(
            " The amount was converted from {from} at {rate} as of {day}."
        ));
    }
    Alert {
        name,
        severity,
        status: AlertStatus::Firing,
        provider: BUDGET_PROVIDER.to_owned(),
        group: None,
        metric: None,
        budget: Some(status.budget.clone()),
        threshold: Some(threshold_text),
        period_start: Some(status.period_start),
        summary,
        description,
        starts_at: now,
        ends_at: None,
        extra_labels: extra_labels.clone(),
    }
}

/// A percentage as a label and key segment: `50`, `87.5`.
fn percent(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

/// An amount with two decimals and thousands separators: `5,400.00`.
fn money(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let text = format!("{:.2}", value.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, "00"));
    let mut grouped = String::with_capacity(int.len() + int.len() / 3);
    for (i, digit) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let sign = if value < 0.0 && text != "0.00" {
        "-"
    } else {
        ""
    };
    format!("{sign}{grouped}.{frac}")
}

fn held_for(since: DateTime<Utc>, now: DateTime<Utc>, duration: std::time::Duration) -> bool {
    let needed = TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX);
    now - since >= needed
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;
    use hoist_api::{ErrorKind, MetricKind};
    use hoist_engine::{Decision, Direction, GroupSnapshot, Reason};

    use super::*;
    use crate::alerts::config::{ActionFailedRule, DurationRule};

    fn t(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + TimeDelta::minutes(minutes)
    }

    fn rules(for_minutes: u64) -> AlertRules {
        let d = Duration::from_secs(for_minutes * 60);
        let rule = DurationRule {
            enabled: Some(true),
            for_duration: Some(d.into()),
            severity: None,
        };
        AlertRules::new(
            &RulesConfig {
                scaling_action_failed: ActionFailedRule {
                    after_failures: 2,
                    ..Default::default()
                },
                pinned_at_max: rule.clone(),
                metrics_missing: rule.clone(),
                circuit_open: rule,
                ..Default::default()
            },
            BTreeMap::new(),
        )
    }

    fn observed(max: u32) -> Event {
        Event::GroupObserved {
            provider: "sim".into(),
            group: GroupSnapshot {
                id: "web".into(),
                desired: max,
                ready: max,
                pending: 0,
                provider_min: 0,
                provider_max: 1000,
                instance_class: "c".into(),
            },
            min: 1,
            max,
            cost_per_hour: None,
            currency: None,
            metered_cost: None,
            metered_spot_cost: None,
            spot_instances: 0,
        }
    }

    fn decided(desired: u32, recommended: u32, at: DateTime<Utc>) -> Event {
        Event::Decided {
            provider: "sim".into(),
            decision: Decision {
                group: "web".into(),
                at,
                current: desired,
                desired,
                direction: Direction::Hold,
                instance_class: None,
                reasons: vec![Reason {
                    source: "target_tracking[0]".into(),
                    recommended: Some(recommended),
                    message: "m".into(),
                }],
                dry_run: false,
            },
        }
    }

    fn acted(ok: bool) -> Event {
        Event::Acted {
            provider: "sim".into(),
            group: "web".into(),
            from: 2,
            to: 3,
            error: (!ok).then(|| (ErrorKind::QuotaExceeded, "vCPU quota".to_owned())),
        }
    }

    fn names(transitions: &[Transition]) -> Vec<String> {
        transitions
            .iter()
            .map(|t| match t {
                Transition::Fire(a) => format!("fire {}", a.dedup_key()),
                Transition::Update(a) => format!("update {}", a.dedup_key()),
                Transition::Resolve(a) => format!("resolve {}", a.dedup_key()),
            })
            .collect()
    }

    #[test]
    fn failing_actions_fire_after_the_threshold_and_resolve_on_success() {
        let mut r = rules(0);
        assert!(r.observe(&acted(false), t(0)).is_empty());
        let fired = r.observe(&acted(false), t(1));
        assert_eq!(names(&fired), ["fire hoist/scaling_action_failed/sim/web"]);
        let Transition::Fire(alert) = &fired[0] else {
            unreachable!()
        };
        assert_eq!(alert.starts_at, t(0));
        assert_eq!(alert.severity, Severity::Critical);
        assert!(
            alert.description.contains("vCPU quota"),
            "{}",
            alert.description
        );
        assert_eq!(
            names(&r.observe(&acted(false), t(2))),
            ["update hoist/scaling_action_failed/sim/web"]
        );
        let resolved = r.observe(&acted(true), t(3));
        assert_eq!(
            names(&resolved),
            ["resolve hoist/scaling_action_failed/sim/web"]
        );
        let Transition::Resolve(alert) = &resolved[0] else {
            unreachable!()
        };
        assert_eq!(alert.ends_at, Some(t(3)));
        assert_eq!(r.active().count(), 0);
        // One failure after a success starts counting again.
        assert!(r.observe(&acted(false), t(4)).is_empty());
    }

    #[test]
    fn pinned_at_max_needs_demand_above_max_for_the_duration() {
        let mut r = rules(5);
        r.observe(&observed(10), t(0));
        // At max but nobody wants more: not pinned.
        assert!(r.observe(&decided(10, 10, t(0)), t(0)).is_empty());
        assert!(r.observe(&decided(10, 14, t(1)), t(1)).is_empty());
        assert!(r.observe(&decided(10, 14, t(4)), t(4)).is_empty());
        let fired = r.observe(&decided(10, 14, t(6)), t(6));
        assert_eq!(names(&fired), ["fire hoist/pinned_at_max/sim/web"]);
        let Transition::Fire(alert) = &fired[0] else {
            unreachable!()
        };
        assert!(
            alert.description.contains("ask for 14"),
            "{}",
            alert.description
        );
        assert_eq!(alert.starts_at, t(1));
        // Below max: resolved.
        assert_eq!(
            names(&r.observe(&decided(8, 8, t(7)), t(7))),
            ["resolve hoist/pinned_at_max/sim/web"]
        );
    }

    #[test]
    fn pinned_without_an_observed_max_uses_the_guard_reason() {
        let mut r = rules(0);
        let Event::Decided {
            provider,
            mut decision,
        } = decided(6, 9, t(0))
        else {
            unreachable!()
        };
        decision.reasons.push(Reason {
            source: "guard.max".into(),
            recommended: Some(6),
            message: "capped".into(),
        });
        let fired = r.observe(&Event::Decided { provider, decision }, t(0));
        assert_eq!(names(&fired), ["fire hoist/pinned_at_max/sim/web"]);
    }

    #[test]
    fn metrics_missing_fires_when_it_persists_and_resolves_after_a_clean_evaluation() {
        let mut r = rules(2);
        let missing = |at| Event::MetricsMissing {
            provider: "sim".into(),
            group: "web".into(),
            metric: MetricKind::RequestRate,
            reason: format!("stale at {at}"),
        };
        for minute in 0..2 {
            r.observe(&observed(10), t(minute));
            assert!(r.observe(&missing(minute), t(minute)).is_empty());
            assert!(r.observe(&decided(3, 3, t(minute)), t(minute)).is_empty());
        }
        r.observe(&observed(10), t(2));
        assert_eq!(
            names(&r.observe(&missing(2), t(2))),
            ["fire hoist/metrics_missing/sim/web/request_rate"]
        );
        assert!(r.observe(&decided(3, 3, t(2)), t(2)).is_empty());
        r.observe(&observed(10), t(3));
        assert_eq!(
            names(&r.observe(&decided(3, 3, t(3)), t(3))),
            ["resolve hoist/metrics_missing/sim/web/request_rate"]
        );
    }

    #[test]
    fn a_single_gap_shorter_than_for_does_not_fire() {
        let mut r = rules(2);
        let missing = Event::MetricsMissing {
            provider: "sim".into(),
            group: "web".into(),
            metric: MetricKind::Utilization,
            reason: "empty".into(),
        };
        r.observe(&observed(10), t(0));
        r.observe(&missing, t(0));
        r.observe(&decided(3, 3, t(0)), t(0));
        r.observe(&observed(10), t(1));
        r.observe(&decided(3, 3, t(1)), t(1));
        // The condition restarted: two minutes after the first gap is not two minutes of gap.
        r.observe(&observed(10), t(2));
        assert!(r.observe(&missing, t(2)).is_empty());
    }

    #[test]
    fn circuit_open_fires_and_resolves() {
        let mut r = rules(0);
        let open = |open| Event::Circuit {
            provider: "aws".into(),
            open,
        };
        assert_eq!(
            names(&r.observe(&open(true), t(0))),
            ["fire hoist/circuit_open/aws"]
        );
        assert_eq!(
            names(&r.observe(&open(true), t(1))),
            ["update hoist/circuit_open/aws"]
        );
        assert_eq!(
            names(&r.observe(&open(false), t(2))),
            ["resolve hoist/circuit_open/aws"]
        );
        assert!(r.observe(&open(false), t(3)).is_empty());
    }

    #[test]
    fn a_refused_policy_file_fires_until_a_change_is_applied() {
        let mut r = rules(0);
        let rejected = |errors: &str| Event::ConfigRejected {
            file: "policy.yml".into(),
            fingerprint: "fnv1a:1".into(),
            errors: errors.into(),
        };
        let fired = r.observe(&rejected("policy.yml:3: groups[0].max: below min"), t(0));
        assert_eq!(
            names(&fired),
            ["fire hoist/config_rejected/config:policy.yml"]
        );
        let Transition::Fire(alert) = &fired[0] else {
            unreachable!()
        };
        assert!(
            alert.description.contains("policy.yml:3"),
            "{}",
            alert.description
        );
        let updated = r.observe(&rejected("policy.yml:4: unknown field"), t(1));
        assert_eq!(
            names(&updated),
            ["update hoist/config_rejected/config:policy.yml"]
        );
        let Transition::Update(alert) = &updated[0] else {
            unreachable!()
        };
        assert_eq!(alert.starts_at, t(0));
        let applied = Event::ConfigApplied {
            file: "policy.yml".into(),
            fingerprint: "fnv1a:2".into(),
        };
        assert_eq!(
            names(&r.observe(&applied, t(2))),
            ["resolve hoist/config_rejected/config:policy.yml"]
        );
        assert!(r.observe(&applied, t(3)).is_empty());
    }

    #[test]
    fn disabled_rules_stay_quiet() {
        let mut config = RulesConfig::default();
        config.circuit_open.enabled = Some(false);
        config.scaling_action_failed.enabled = false;
        let mut r = AlertRules::new(&config, BTreeMap::new());
        assert!(
            r.observe(
                &Event::Circuit {
                    provider: "aws".into(),
                    open: true
                },
                t(0)
            )
            .is_empty()
        );
        for i in 0..5 {
            assert!(r.observe(&acted(false), t(i)).is_empty());
        }
    }

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, 0, 0, 0).unwrap()
    }

    /// A status of `web-monthly` (5,000 USD, November 2026) spending `spent` toward `forecast`.
    fn budget(spent: f64, forecast: f64, period_start: DateTime<Utc>) -> Event {
        let crossed = |list: &[f64], value: f64| -> Vec<f64> {
            list.iter()
                .copied()
                .filter(|t| value >= 5_000.0 * t / 100.0)
                .collect()
        };
        Event::Budget(BudgetStatus {
            budget: "web-monthly".into(),
            scope: "group web".into(),
            groups: vec!["web".into()],
            period: "monthly".into(),
            period_start,
            period_end: period_start + TimeDelta::days(30),
            amount: 5_000.0,
            currency: "USD".into(),
            converted_from: Some((
                "EUR".into(),
                1.08,
                chrono::NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(),
            )),
            spent,
            run_rate_per_hour: 8.0,
            pace_per_hour: 7.5,
            forecast,
            rung: (forecast > 5_000.0).then_some(hoist_engine::config::budget::Rung::Cap),
            target_scale: 1.15,
            capacity_kept: 0.92,
            actual_crossed: crossed(&[50.0, 80.0, 100.0], spent),
            forecast_crossed: crossed(&[100.0], forecast),
            at: period_start,
        })
    }

    fn fired(transitions: &[Transition]) -> Vec<String> {
        names(transitions)
            .into_iter()
            .filter(|n| !n.starts_with("update "))
            .collect()
    }

    #[test]
    fn a_budget_threshold_fires_once_per_crossing() {
        let mut r = rules(0);
        let start = day(1);
        let first = r.observe(&budget(2_600.0, 4_000.0, start), t(0));
        assert_eq!(names(&first), ["fire hoist/budget_actual/web-monthly/50"]);
        let Transition::Fire(alert) = &first[0] else {
            unreachable!()
        };
        assert_eq!(alert.severity, Severity::Warning);
        assert_eq!(alert.provider, "budgets");
        assert_eq!(alert.budget.as_deref(), Some("web-monthly"));
        assert_eq!(alert.threshold.as_deref(), Some("50"));
        assert_eq!(
            alert.summary,
            "budget web-monthly: spent 2,600.00 USD is 52 % of 5,000.00 USD (monthly); threshold 50 %"
        );
        assert!(
            alert
                .description
                .contains("amount was converted from EUR at 1.08 as of 2026-10-31"),
            "{}",
            alert.description
        );
        let labels = alert.labels();
        assert_eq!(labels["budget"], "web-monthly");
        assert_eq!(labels["threshold"], "50");
        assert_eq!(labels["period_start"], "2026-11-01T00:00:00Z");

        // The same crossing reported four more times: refreshed, never fired again.
        let mut fires = 1;
        for i in 1..5 {
            let again = r.observe(&budget(2_600.0 + f64::from(i), 4_000.0, start), t(i.into()));
            assert_eq!(names(&again), ["update hoist/budget_actual/web-monthly/50"]);
            fires += fired(&again).len();
            let Transition::Update(alert) = &again[0] else {
                unreachable!()
            };
            assert_eq!(alert.starts_at, t(0), "an update keeps the start");
        }
        assert_eq!(fires, 1);
        assert_eq!(r.active().count(), 1);
    }

    #[test]
    fn a_later_threshold_fires_separately_and_a_new_period_resolves_them_all() {
        let mut r = rules(0);
        let start = day(1);
        assert_eq!(
            fired(&r.observe(&budget(2_600.0, 4_000.0, start), t(0))),
            ["fire hoist/budget_actual/web-monthly/50"]
        );
        let later = r.observe(&budget(4_100.0, 5_400.0, start), t(10));
        assert_eq!(
            fired(&later),
            [
                "fire hoist/budget_actual/web-monthly/80",
                "fire hoist/budget_forecast/web-monthly/100",
            ]
        );
        let forecast = later
            .iter()
            .find_map(|t| match t {
                Transition::Fire(a) if a.name == AlertName::BudgetForecast => Some(a),
                _ => None,
            })
            .unwrap();
        assert_eq!(forecast.severity, Severity::Critical);
        assert_eq!(
            forecast.summary,
            "budget web-monthly: forecast 5,400.00 USD is 108 % of 5,000.00 USD (monthly); threshold 100 %"
        );
        assert!(
            forecast.description.contains("Rung: cap"),
            "{}",
            forecast.description
        );
        assert!(
            forecast.description.contains("The period ends 2026-12-01"),
            "{}",
            forecast.description
        );
        // The forecast falls back under the amount: the alert stays for the period, and
        // coming back over it does not fire it again.
        assert!(fired(&r.observe(&budget(4_200.0, 4_900.0, start), t(20))).is_empty());
        assert!(fired(&r.observe(&budget(4_300.0, 5_100.0, start), t(30))).is_empty());
        assert_eq!(r.active().count(), 3);

        // December: every alert of November resolves; the new period starts clean.
        let december = day(1) + TimeDelta::days(30);
        let resolved = r.observe(&budget(10.0, 4_000.0, december), t(40));
        let mut keys = names(&resolved);
        keys.sort();
        assert_eq!(
            keys,
            [
                "resolve hoist/budget_actual/web-monthly/50",
                "resolve hoist/budget_actual/web-monthly/80",
                "resolve hoist/budget_forecast/web-monthly/100",
            ]
        );
        for t in &resolved {
            let Transition::Resolve(alert) = t else {
                unreachable!()
            };
            assert_eq!(alert.status, AlertStatus::Resolved);
            assert_eq!(alert.period_start, Some(start));
        }
        assert_eq!(r.active().count(), 0);
        assert!(
            r.observe(&budget(20.0, 4_000.0, december), t(41))
                .is_empty()
        );
        // The same threshold in the new period fires anew, labelled with the new period.
        let again = r.observe(&budget(2_500.0, 4_000.0, december), t(50));
        assert_eq!(fired(&again), ["fire hoist/budget_actual/web-monthly/50"]);
        let Transition::Fire(alert) = &again[0] else {
            unreachable!()
        };
        assert_eq!(alert.labels()["period_start"], "2026-12-01T00:00:00Z");
    }

    #[test]
    fn a_new_period_that_starts_over_a_threshold_resolves_then_fires() {
        let mut r = rules(0);
        r.observe(&budget(1_000.0, 5_200.0, day(1)), t(0));
        let next = r.observe(&budget(0.0, 5_300.0, day(1) + TimeDelta::days(30)), t(1));
        assert_eq!(
            names(&next),
            [
                "resolve hoist/budget_forecast/web-monthly/100",
                "fire hoist/budget_forecast/web-monthly/100",
            ]
        );
    }

    #[test]
    fn disabled_budget_rules_fire_nothing() {
        let mut config = RulesConfig::default();
        config.budget_actual.enabled = false;
        let mut r = AlertRules::new(&config, BTreeMap::new());
        let out = r.observe(&budget(4_500.0, 5_400.0, day(1)), t(0));
        assert_eq!(
            names(&out),
            ["fire hoist/budget_forecast/web-monthly/100"],
            "only the forecast rule runs"
        );
        config.budget_forecast.enabled = false;
        let mut r = AlertRules::new(&config, BTreeMap::new());
        for i in 0..5 {
            assert!(
                r.observe(
                    &budget(4_500.0 + f64::from(i), 5_400.0, day(1)),
                    t(i.into())
                )
                .is_empty()
            );
        }
        assert_eq!(r.active().count(), 0);
    }

    #[test]
    fn budget_severity_follows_critical_at_and_budgets_are_independent() {
        let mut config = RulesConfig::default();
        config.budget_actual.critical_at = 80.0;
        config.budget_actual.severity = Severity::Info;
        let mut r = AlertRules::new(
            &config,
            BTreeMap::from([("team".to_owned(), "finops".to_owned())]),
        );
        let out = r.observe(&budget(4_100.0, 4_500.0, day(1)), t(0));
        let severities: Vec<(String, Severity)> = out
            .iter()
            .map(|t| match t {
                Transition::Fire(a) => (a.dedup_key(), a.severity),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            severities,
            [
                (
                    "hoist/budget_actual/web-monthly/50".to_owned(),
                    Severity::Info
                ),
                (
                    "hoist/budget_actual/web-monthly/80".to_owned(),
                    Severity::Critical
                ),
            ]
        );
        let Transition::Fire(alert) = &out[0] else {
            unreachable!()
        };
        assert_eq!(alert.labels()["team"], "finops");
        // Another budget's new period leaves this one's alerts alone.
        let Event::Budget(mut other) = budget(10.0, 100.0, day(1) + TimeDelta::days(30)) else {
            unreachable!()
        };
        other.budget = "api-monthly".into();
        r.observe(&Event::Budget(other.clone()), t(1));
        other.period_start = day(1) + TimeDelta::days(60);
        assert!(r.observe(&Event::Budget(other), t(2)).is_empty());
        assert_eq!(r.active().count(), 2);
    }

    #[test]
    fn money_and_percent_formatting() {
        assert_eq!(money(5_400.0), "5,400.00");
        assert_eq!(money(1_234_567.891), "1,234,567.89");
        assert_eq!(money(12.5), "12.50");
        assert_eq!(money(-1_000.0), "-1,000.00");
        assert_eq!(money(0.0), "0.00");
        assert_eq!(percent(80.0), "80");
        assert_eq!(percent(87.5), "87.5");
    }
}
