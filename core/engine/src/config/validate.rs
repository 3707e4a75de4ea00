//! Semantic checks of a parsed policy file. Each problem is a field path and a message; the
//! loader turns paths into lines.

use std::collections::BTreeSet;

use super::budget::{
    BudgetPeriod, BudgetScope, Converter, MAX_BUDGET_AMOUNT, MAX_CUSTOM_PERIOD_DAYS,
    plausible_currency,
};
use super::{
    Aggregation, LimitAmount, MaxCapacity, PolicyConfig, PolicyFile, Predictive, RateLimit,
    Scheduled, StepScaling, metric_from_name,
};
use crate::decide::number;
use crate::duration::HumanDuration;
use crate::model::MetricKind;
use hoist_api::input::MAX_INSTANCES;
use hoist_api::model::Decimal;

/// The smallest target a policy may set. Below it (and at subnormal numbers in particular)
/// `metric / target` overflows to infinity on ordinary metrics.
const MIN_TARGET: f64 = 1e-9;
/// The largest target a policy may set.
const MAX_TARGET: f64 = 1e12;
/// The largest step adjustment in instances (or the group's max, if that is larger).
const MAX_STEP_ADJUST: i64 = 1_000_000;
/// The largest percentage a step adjustment or a rate limit may give.
const MAX_PERCENT: f64 = 1_000_000.0;

/// The longest history a forecast is fitted on: a year and a day, so a yearly peak is seen.
const MAX_FORECAST_HISTORY: std::time::Duration = std::time::Duration::from_secs(366 * 86_400);
/// The longest forecast horizon (and refresh).
const MAX_FORECAST_HORIZON: std::time::Duration = std::time::Duration::from_secs(31 * 86_400);

/// The longest drain a group may have: what an EC2 Auto Scaling lifecycle hook holds an instance
/// for at most (its heartbeat timeout's maximum).
pub(crate) const MAX_DRAIN: std::time::Duration = std::time::Duration::from_secs(2 * 3_600);

/// A target is a normal, finite, positive number in [[`MIN_TARGET`], [`MAX_TARGET`]].
fn check_target(target: f64) -> Result<(), String> {
    if !(target.is_finite() && target > 0.0) {
        Err(format!("target must be a positive number, got {target}"))
    } else if !(target.is_normal() && (MIN_TARGET..=MAX_TARGET).contains(&target)) {
        Err(format!(
            "target {} is outside what can be computed: keep it between {} and {} (in the metric's own unit)",
            number(target),
            number(MIN_TARGET),
            number(MAX_TARGET)
        ))
    } else {
        Ok(())
    }
}

/// The longest window a vertical policy's disruption budget may count over: the longest pause
/// EC2 Auto Scaling keeps between an instance refresh's checkpoints.
const MAX_DISRUPTION_WINDOW: std::time::Duration = std::time::Duration::from_secs(2 * 86_400);
/// The shortest such window.
const MIN_DISRUPTION_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// Checks a vertical policy's `disruption:`; `at` makes a field's path.
fn validate_disruption(
    d: &super::DisruptionConfig,
    at: &dyn Fn(&str) -> String,
    push: &mut dyn FnMut(String, String),
) {
    for (field, value) in [
        ("max_unavailable", d.max_unavailable),
        ("per_window", d.per_window),
    ] {
        match value {
            Some(0) => push(
                at(&format!("vertical.disruption.{field}")),
                "must be at least 1: a move replaces at least one instance at a time".into(),
            ),
            Some(n) if n > MAX_INSTANCES => push(
                at(&format!("vertical.disruption.{field}")),
                format!("{n} is more instances than a group may have (at most {MAX_INSTANCES})"),
            ),
            _ => {}
        }
    }
    if let Some(window) = d.window {
        if d.per_window.is_none() {
            push(
                at("vertical.disruption.window"),
                "a window without `per_window` limits nothing: set `per_window` or leave the window out".into(),
            );
        }
        let w = window.get();
        if !(MIN_DISRUPTION_WINDOW..=MAX_DISRUPTION_WINDOW).contains(&w) {
            push(
                at("vertical.disruption.window"),
                format!(
                    "must be between {} and {}, got {window}",
                    HumanDuration(MIN_DISRUPTION_WINDOW),
                    HumanDuration(MAX_DISRUPTION_WINDOW)
                ),
            );
        }
    }
}

/// Every problem in `policy`, as (field path, message).
pub(super) fn validate(policy: &PolicyFile) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut push = |path: String, message: String| problems.push((path, message));

    if policy.version != 1 {
        push(
            "version".into(),
            format!(
                "unsupported version {}; this build reads version 1",
                policy.version
            ),
        );
    }
    for (name, provider) in policy.providers.iter().chain(&policy.metrics_sources) {
        let section = if policy.providers.contains_key(name) {
            "providers"
        } else {
            "metrics_sources"
        };
        if let Err(message) = provider.kind_and_settings() {
            push(format!("{section}.{name}"), message);
        }
    }
    if policy.groups.is_empty() && policy.pools.is_empty() {
        push(
            "groups".into(),
            "no groups: add at least one group (or pool) to scale".into(),
        );
    }
    if policy.run.interval.get().is_zero() {
        push("run.interval".into(), "must be longer than 0s".into());
    }

    let mut names = BTreeSet::new();
    for (g, group) in policy.groups.iter().enumerate() {
        let base = format!("groups[{g}]");
        if group.name.trim().is_empty() {
            push(format!("{base}.name"), "a group needs a name".into());
        } else if !names.insert((group.provider.as_str(), group.name.as_str())) {
            push(
                format!("{base}.name"),
                format!(
                    "duplicate group `{}` on provider `{}`",
                    group.name, group.provider
                ),
            );
        }
        validate_group(policy, group, &base, &mut push);
    }
    for (p, pool) in policy.pools.iter().enumerate() {
        let base = format!("pools[{p}]");
        if pool.name.trim().is_empty() {
            push(format!("{base}.name"), "a pool needs a name".into());
        }
        validate_group(policy, &pool.as_group(), &base, &mut push);
    }
    super::pool::validate_pools(policy, &mut push);
    let pool_names: Vec<&str> = policy.pools.iter().map(|p| p.name.as_str()).collect();
    for (path, message) in crate::route::validate_rules(&policy.routes, &pool_names) {
        push(path, message);
    }
    validate_costs(policy, &mut push);
    problems
}

/// The rules of one group (or of a pool as a group, at `base`).
fn validate_group(
    policy: &PolicyFile,
    group: &super::GroupConfig,
    base: &str,
    push: &mut impl FnMut(String, String),
) {
    let at = |field: &str| format!("{base}.{field}");
    {
        if group.provider != super::pool::POOL_PROVIDER
            && !policy.providers.contains_key(&group.provider)
        {
            let known: Vec<&str> = policy.providers.keys().map(String::as_str).collect();
            push(
                at("provider"),
                if known.is_empty() {
                    format!(
                        "unknown provider `{}`: the file declares no providers",
                        group.provider
                    )
                } else {
                    format!(
                        "unknown provider `{}`; declared providers: {}",
                        group.provider,
                        known.join(", ")
                    )
                },
            );
        }
        if group.min > group.max {
            push(
                at("min"),
                format!("min ({}) is greater than max ({})", group.min, group.max),
            );
        }
        if group.max == 0 {
            push(at("max"), "max must be at least 1".into());
        }
        for (field, value) in [("min", group.min), ("max", group.max)] {
            if value > MAX_INSTANCES {
                push(
                    at(field),
                    format!(
                        "{field} ({value}) is above the limit of {} instances a group may have",
                        number(f64::from(MAX_INSTANCES))
                    ),
                );
            }
        }
        if let Some(metrics) = &group.metrics
            && let Some(source) = &metrics.source
            && !policy.metrics_sources.contains_key(source)
            && !policy.providers.contains_key(source)
        {
            push(
                at("metrics.source"),
                format!("unknown metrics source `{source}`; declare it under `metrics_sources`"),
            );
        }
        if let Some(metrics) = &group.metrics {
            // What the group's loop reads: its policies' signals, the vertical block's memory
            // metric and the cost's work metric.
            let mut read: Vec<MetricKind> = group
                .policies
                .iter()
                .filter_map(|p| p.metric().cloned())
                .collect();
            if let Some(name) = group
                .vertical
                .as_ref()
                .and_then(|v| v.memory_metric.as_ref())
            {
                read.push(metric_from_name(name));
            }
            if let Some(cost) = &group.cost {
                read.push(metric_from_name(&cost.work_metric));
            }
            for metric in metrics.queries.keys() {
                if let MetricKind::Custom(name) = metric
                    && !read.contains(metric)
                    && name != super::IN_SERVICE_INSTANCES
                {
                    push(
                        at(&format!("metrics.queries.{name}")),
                        format!(
                            "unknown signal `{name}`: a query is for utilization, request_rate, queue_depth, latency_p95, latency_p99, error_rate, in_service_instances (read by `hoist recommend`), or a custom metric this group reads (a policy's `metric: {{custom: {name}}}`, `vertical.memory_metric` or `cost.work_metric`)"
                        ),
                    );
                }
            }
        }
        if group.policies.is_empty() {
            push(
                at("policies"),
                "no policies: add at least one (e.g. target_tracking)".into(),
            );
        }
        let guards = &group.guards;
        if guards.metric_max_age.get().is_zero() {
            push(at("guards.metric_max_age"), "must be longer than 0s".into());
        }
        if guards.max_scale_out_step == Some(0) {
            push(at("guards.max_scale_out_step"), "must be at least 1".into());
        }
        if guards.max_scale_in_step == Some(0) {
            push(at("guards.max_scale_in_step"), "must be at least 1".into());
        }
        if let Some(drain) = group.drain
            && drain.get() > MAX_DRAIN
        {
            push(
                at("drain"),
                format!(
                    "drain ({drain}) is longer than the {} an instance may drain at most",
                    HumanDuration(MAX_DRAIN)
                ),
            );
        }
        if let Some(v) = &group.vertical {
            if !(v.target_utilization > 0.0 && v.target_utilization <= 1.0) {
                push(
                    at("vertical.target_utilization"),
                    format!("must be in (0, 1], got {}", v.target_utilization),
                );
            }
            if !(0.0..=100.0).contains(&v.min_saving_percent) {
                push(
                    at("vertical.min_saving_percent"),
                    format!("must be between 0 and 100, got {}", v.min_saving_percent),
                );
            }
            let lookback = v.lookback.get();
            if lookback < std::time::Duration::from_secs(300)
                || lookback > std::time::Duration::from_secs(7 * 86_400)
            {
                push(
                    at("vertical.lookback"),
                    format!("must be between 5m and 7d, got {}", v.lookback),
                );
            }
            if v.cooldown.get() > std::time::Duration::from_secs(30 * 86_400) {
                push(
                    at("vertical.cooldown"),
                    format!("must be at most 30d, got {}", v.cooldown),
                );
            }
            for (i, family) in v.families.iter().flatten().enumerate() {
                if crate::rightsizing::parse_family(family).is_none() {
                    push(
                        at(&format!("vertical.families[{i}]")),
                        format!(
                            "unknown family `{family}`; one of general, compute, memory, storage, network, accelerated, burstable"
                        ),
                    );
                }
            }
            validate_disruption(&v.disruption, &at, push);
            if !(v.memory_target_utilization > 0.0 && v.memory_target_utilization <= 1.0) {
                push(
                    at("vertical.memory_target_utilization"),
                    format!("must be in (0, 1], got {}", v.memory_target_utilization),
                );
            }
            if let Some(name) = &v.memory_metric {
                if name.trim().is_empty() {
                    push(
                        at("vertical.memory_metric"),
                        "a metric needs a name; leave it out to size CPU only".into(),
                    );
                } else if !matches!(metric_from_name(name), MetricKind::Custom(_)) {
                    push(
                        at("vertical.memory_metric"),
                        format!(
                            "`{name}` is a built-in signal, not memory: name the custom metric that gives the share of memory in use"
                        ),
                    );
                }
            }
            if v.families.as_ref().is_some_and(Vec::is_empty)
                || v.classes.as_ref().is_some_and(Vec::is_empty)
            {
                push(
                    at("vertical"),
                    "an empty `families` or `classes` list allows nothing; leave it out to allow all".into(),
                );
            }
        }
        let predictive: Vec<usize> = group
            .policies
            .iter()
            .enumerate()
            .filter(|(_, p)| matches!(p, PolicyConfig::Predictive(_)))
            .map(|(i, _)| i)
            .collect();
        if let [_, second, ..] = predictive[..] {
            push(
                format!("{base}.policies[{second}].predictive"),
                "a group has at most one predictive policy".into(),
            );
        }
        for (p, policy) in group.policies.iter().enumerate() {
            let path = format!("{base}.policies[{p}].{}", policy.kind());
            validate_policy(policy, &path, (group.min, group.max), push);
        }
        if let Some(floor) = guards.availability_floor
            && floor > group.max
        {
            push(
                at("guards.availability_floor"),
                format!(
                    "availability floor ({floor}) is greater than max ({})",
                    group.max
                ),
            );
        }
        if let Some(cost) = &group.cost
            && cost.work_metric.trim().is_empty()
        {
            push(
                at("cost.work_metric"),
                "name the metric that counts the group's work (request_rate, or a custom metric)"
                    .into(),
            );
        }
    }
}

/// Whether a money figure (an amount or a rate) is past [`MAX_BUDGET_AMOUNT`].
fn rate_out_of_range(value: Decimal) -> bool {
    value > Decimal::from_f64_retain(MAX_BUDGET_AMOUNT).unwrap_or(Decimal::MAX)
}

/// The `costs:` and `budgets:` sections.
fn validate_costs(policy: &PolicyFile, push: &mut impl FnMut(String, String)) {
    let costs = &policy.costs;
    if !plausible_currency(&costs.currency) {
        push(
            "costs.currency".into(),
            format!(
                "`{}` is not an ISO 4217 currency code (three capital letters, like USD)",
                costs.currency
            ),
        );
    }
    if costs.ledger_every.get().is_zero() {
        push("costs.ledger_every".into(), "must be longer than 0s".into());
    }
    if costs.reconcile_every.get().is_zero() {
        push(
            "costs.reconcile_every".into(),
            "must be longer than 0s".into(),
        );
    }
    if let Some(rates) = &costs.exchange_rates {
        for (code, rate) in &rates.rates {
            let at = format!("costs.exchange_rates.rates.{code}");
            if !plausible_currency(code) {
                push(
                    at.clone(),
                    format!("`{code}` is not an ISO 4217 currency code"),
                );
            }
            if *rate <= Decimal::ZERO {
                push(at, format!("a rate must be positive, got {rate}"));
            } else if rate_out_of_range(*rate) {
                push(
                    at,
                    format!(
                        "a rate must be at most {}, got {rate}",
                        number(MAX_BUDGET_AMOUNT)
                    ),
                );
            }
        }
    }
    let converter = Converter::new(costs);
    let mut names = BTreeSet::new();
    for (b, budget) in policy.budgets.iter().enumerate() {
        let at = |field: &str| format!("budgets[{b}].{field}");
        if budget.name.trim().is_empty() {
            push(at("name"), "a budget needs a name".into());
        } else if !names.insert(budget.name.as_str()) {
            push(
                at("name"),
                format!("duplicate budget name `{}`", budget.name),
            );
        }
        if budget.amount <= Decimal::ZERO {
            push(
                at("amount"),
                format!("a budget's amount must be positive, got {}", budget.amount),
            );
        } else if rate_out_of_range(budget.amount) {
            push(
                at("amount"),
                format!(
                    "a budget's amount must be at most {}, got {}",
                    number(MAX_BUDGET_AMOUNT),
                    budget.amount
                ),
            );
        }
        let currency = budget.currency.as_deref().unwrap_or(&costs.currency);
        if !plausible_currency(currency) {
            push(
                at("currency"),
                format!(
                    "`{currency}` is not an ISO 4217 currency code (three capital letters, like EUR)"
                ),
            );
        } else if !converter.knows(currency) {
            push(
                at("currency"),
                format!(
                    "no exchange rate from {currency} to the reporting currency {}: add `costs.exchange_rates` with `as_of` and `rates: {{{currency}: ...}}`",
                    converter.currency()
                ),
            );
        }
        match &budget.scope {
            BudgetScope::All => {}
            BudgetScope::Provider(p) if !policy.providers.contains_key(p) => push(
                at("scope.provider"),
                format!(
                    "unknown provider `{p}`; declared providers: {}",
                    policy
                        .providers
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            BudgetScope::Group(g) if !policy.groups.iter().any(|x| &x.name == g) => push(
                at("scope.group"),
                format!(
                    "unknown group `{g}`; groups: {}",
                    policy
                        .groups
                        .iter()
                        .map(|x| x.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            BudgetScope::Tag(tags) if tags.is_empty() => {
                push(at("scope.tag"), "name at least one label".into());
            }
            BudgetScope::Tag(tags)
                if !policy
                    .groups
                    .iter()
                    .any(|g| budget.scope.covers(&g.name, &g.provider, &g.labels)) =>
            {
                let list: Vec<String> = tags.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                push(
                    at("scope.tag"),
                    format!(
                        "no group has the labels {{{}}}; set them under the group's `labels`",
                        list.join(", ")
                    ),
                );
            }
            _ => {}
        }
        if let BudgetPeriod::Custom { every, .. } = &budget.period {
            let longest = std::time::Duration::from_secs(MAX_CUSTOM_PERIOD_DAYS as u64 * 86_400);
            if every.get() < std::time::Duration::from_secs(3600) {
                push(
                    at("period.custom.every"),
                    format!("a budget period must be at least 1h, got {every}"),
                );
            } else if every.get() > longest {
                push(
                    at("period.custom.every"),
                    format!(
                        "a budget period must be at most {MAX_CUSTOM_PERIOD_DAYS}d, got {every}"
                    ),
                );
            }
        }
        for (kind, list) in [
            ("actual", &budget.alert_on.actual),
            ("forecast", &budget.alert_on.forecast),
        ] {
            for (i, t) in list.iter().enumerate() {
                if !(t.is_finite() && *t > 0.0 && *t <= 1000.0) {
                    push(
                        format!("budgets[{b}].alert_on.{kind}[{i}]"),
                        format!(
                            "a threshold is a percentage of the amount in (0, 1000], got {}",
                            number(*t)
                        ),
                    );
                }
            }
        }
        if !(budget.max_utilization.is_finite()
            && budget.max_utilization > 0.0
            && budget.max_utilization < 1.0)
        {
            push(
                at("max_utilization"),
                format!(
                    "must be between 0 and 1 (exclusive), got {}",
                    number(budget.max_utilization)
                ),
            );
        }
    }
}

fn validate_metric(metric: &MetricKind, path: &str, push: &mut impl FnMut(String, String)) {
    if let MetricKind::Custom(name) = metric {
        if name.trim().is_empty() {
            push(path.to_owned(), "a custom metric needs a name".into());
        } else if !matches!(metric_from_name(name), MetricKind::Custom(_)) {
            push(
                path.to_owned(),
                format!(
                    "`{name}` is a built-in signal, not a custom metric: write `metric: {name}`"
                ),
            );
        }
    }
}

fn validate_policy(
    policy: &PolicyConfig,
    base: &str,
    (group_min, group_max): (u32, u32),
    push: &mut impl FnMut(String, String),
) {
    let at = |field: &str| format!("{base}.{field}");
    match policy {
        PolicyConfig::TargetTracking(tt) => {
            validate_metric(&tt.metric, &at("metric"), push);
            if let Err(message) = check_target(tt.target) {
                push(at("target"), message);
            } else if matches!(tt.metric, MetricKind::Utilization | MetricKind::ErrorRate)
                && tt.target > 1.0
            {
                push(
                    at("target"),
                    format!(
                        "{} is a fraction: the target must be in (0, 1], got {} (write 0.6 for 60 %)",
                        tt.metric, tt.target
                    ),
                );
            }
            if tt.aggregation == Some(Aggregation::Average)
                && !matches!(tt.metric, MetricKind::Utilization | MetricKind::Custom(_))
            {
                push(
                    at("aggregation"),
                    format!("{} is not an average per instance", tt.metric),
                );
            }
            if !(tt.tolerance.is_finite() && (0.0..1.0).contains(&tt.tolerance)) {
                push(
                    at("tolerance"),
                    format!("tolerance must be in [0, 1), got {}", tt.tolerance),
                );
            } else if tt.metric == MetricKind::Utilization
                && tt.target.is_finite()
                && tt.target <= 1.0
                && tt.target * (1.0 + tt.tolerance) >= 1.0
            {
                // Measured utilisation cannot pass 100 %, so such a policy never scales out.
                push(
                    at("tolerance"),
                    format!(
                        "with target {} and tolerance {} this policy would scale out only above {:.1} % utilisation, which cannot be measured: it would never scale out; lower the tolerance below {:.3} or the target",
                        tt.target,
                        tt.tolerance,
                        tt.target * (1.0 + tt.tolerance) * 100.0,
                        (1.0 / tt.target - 1.0).max(0.0)
                    ),
                );
            }
            for (dir, behavior) in [("scale_up", &tt.scale_up), ("scale_down", &tt.scale_down)] {
                for (l, limit) in behavior.limits.iter().enumerate() {
                    validate_limit(limit, &at(&format!("{dir}.limits[{l}]")), push);
                }
            }
        }
        PolicyConfig::Step(step) => validate_steps(step, base, group_max, push),
        PolicyConfig::Threshold(th) => {
            validate_metric(&th.metric, &at("metric"), push);
            for (name, value) in [("upper", th.upper), ("lower", th.lower)] {
                if let Some(v) = value
                    && (!v.is_finite() || v < 0.0)
                {
                    push(at(name), format!("must be a non-negative number, got {v}"));
                }
            }
            match (th.lower, th.upper) {
                (None, None) => push(
                    base.to_owned(),
                    "a threshold policy needs `upper`, `lower` or both".into(),
                ),
                (Some(lower), Some(upper)) if lower >= upper => push(
                    at("lower"),
                    format!("lower ({lower}) must be below upper ({upper})"),
                ),
                _ => {}
            }
            for (name, value) in [
                ("scale_out_by", th.scale_out_by),
                ("scale_in_by", th.scale_in_by),
                ("periods", th.periods),
            ] {
                if value == 0 {
                    push(at(name), "must be at least 1".into());
                }
            }
        }
        PolicyConfig::Scheduled(s) => validate_scheduled(s, base, (group_min, group_max), push),
        PolicyConfig::Predictive(p) => validate_predictive(p, base, push),
    }
}

fn validate_limit(limit: &RateLimit, path: &str, push: &mut impl FnMut(String, String)) {
    // Neither or both of `instances` and `percent` are refused when the file is read.
    match limit.amount {
        LimitAmount::Instances(0) => push(format!("{path}.instances"), "must be at least 1".into()),
        LimitAmount::Percent(p) if !(p.is_finite() && p > 0.0) => push(
            format!("{path}.percent"),
            format!("must be a positive number, got {p}"),
        ),
        LimitAmount::Percent(p) if p > MAX_PERCENT => push(
            format!("{path}.percent"),
            format!(
                "{} is outside what can be computed: keep it at most {}",
                number(p),
                number(MAX_PERCENT)
            ),
        ),
        _ => {}
    }
    if limit.period.get().is_zero() {
        push(format!("{path}.period"), "must be longer than 0s".into());
    }
}

fn validate_steps(
    step: &StepScaling,
    base: &str,
    group_max: u32,
    push: &mut impl FnMut(String, String),
) {
    validate_metric(&step.metric, &format!("{base}.metric"), push);
    if step.steps.is_empty() {
        push(
            format!("{base}.steps"),
            "at least one step is needed".into(),
        );
        return;
    }
    let mut ranges: Vec<(f64, f64, usize)> = Vec::new();
    let most = MAX_STEP_ADJUST.max(i64::from(group_max));
    for (i, s) in step.steps.iter().enumerate() {
        let (limit, unit) = match step.adjustment {
            super::AdjustmentType::Percent => (MAX_PERCENT as i64, " %"),
            _ => (most, " instances"),
        };
        if !(-limit..=limit).contains(&s.adjust) {
            push(
                format!("{base}.steps[{i}].adjust"),
                format!(
                    "{} is outside what a step can adjust: keep it within ±{limit}{unit}",
                    s.adjust
                ),
            );
        }
        for (name, bound) in [("from", s.from), ("to", s.to)] {
            if let Some(v) = bound
                && !v.is_finite()
            {
                push(
                    format!("{base}.steps[{i}].{name}"),
                    format!(
                        "must be a finite number, got {} (leave `{name}` out for no bound)",
                        number(v)
                    ),
                );
            }
        }
        let from = s.from.unwrap_or(f64::NEG_INFINITY);
        let to = s.to.unwrap_or(f64::INFINITY);
        if from.is_nan() || to.is_nan() || from >= to {
            push(
                format!("{base}.steps[{i}]"),
                "a step needs `from` below `to`".into(),
            );
            continue;
        }
        if step.adjustment == super::AdjustmentType::Exact && s.adjust < 0 {
            push(
                format!("{base}.steps[{i}].adjust"),
                "an exact adjustment is a capacity and cannot be negative".into(),
            );
        }
        ranges.push((from, to, i));
    }
    ranges.sort_by(|a, b| a.0.total_cmp(&b.0));
    for pair in ranges.windows(2) {
        if pair[1].0 < pair[0].1 {
            push(
                format!("{base}.steps[{}]", pair[1].2),
                format!("overlaps step {}", pair[0].2),
            );
        }
    }
}

fn validate_scheduled(
    s: &Scheduled,
    base: &str,
    (group_min, group_max): (u32, u32),
    push: &mut impl FnMut(String, String),
) {
    // The cron expression and the time zone are parsed (and refused) when the file is read.
    if s.duration.get().is_zero() {
        push(format!("{base}.duration"), "must be longer than 0s".into());
    }
    if s.min.is_none() && s.max.is_none() && s.desired.is_none() {
        push(
            base.to_owned(),
            "a scheduled policy sets at least one of `min`, `max` or `desired`".into(),
        );
    }
    if let (Some(min), Some(max)) = (s.min, s.max)
        && min > max
    {
        push(
            format!("{base}.min"),
            format!("min ({min}) is greater than max ({max})"),
        );
    }
    if let Some(desired) = s.desired
        && (s.min.is_some_and(|min| desired < min) || s.max.is_some_and(|max| desired > max))
    {
        push(
            format!("{base}.desired"),
            format!(
                "desired ({desired}) is outside the schedule's own [min, max]; give a desired between them"
            ),
        );
    }
    // A schedule moves capacity within the group's bounds, never past them: the group's min
    // and max hold whatever is active.
    if group_min > group_max {
        // Already refused for the group; every value would be out of one bound or the other.
        return;
    }
    for (name, value) in [("min", s.min), ("max", s.max), ("desired", s.desired)] {
        let Some(v) = value else { continue };
        if v > group_max {
            push(
                format!("{base}.{name}"),
                format!("{v} is above the group's max ({group_max})"),
            );
        } else if v < group_min {
            push(
                format!("{base}.{name}"),
                format!(
                    "{v} is below the group's min ({group_min}); a schedule stays within the group's bounds, so lower the group's min to let it go this low"
                ),
            );
        }
    }
}

fn validate_predictive(p: &Predictive, base: &str, push: &mut impl FnMut(String, String)) {
    let at = |field: &str| format!("{base}.{field}");
    validate_metric(&p.metric, &at("metric"), push);
    match p.metric {
        MetricKind::RequestRate
        | MetricKind::QueueDepth
        | MetricKind::Utilization
        | MetricKind::Custom(_) => {}
        _ => push(
            at("metric"),
            format!(
                "{} is not a load: forecast request_rate, queue_depth, utilization or a custom total",
                p.metric
            ),
        ),
    }
    if let Err(message) = check_target(p.target) {
        push(at("target"), message);
    } else if p.metric == MetricKind::Utilization && p.target > 1.0 {
        push(
            at("target"),
            format!(
                "utilization is a fraction: the target must be in (0, 1], got {} (write 0.6 for 60 %)",
                p.target
            ),
        );
    }
    let hour = std::time::Duration::from_secs(3_600);
    if p.min_history.get() < hour {
        push(at("min_history"), "must be at least 1h".into());
    }
    if p.history.get() < p.min_history.get() {
        push(
            at("history"),
            format!(
                "history ({}) is shorter than min_history ({})",
                p.history, p.min_history
            ),
        );
    }
    if p.history.get() > MAX_FORECAST_HISTORY {
        push(
            at("history"),
            format!(
                "history ({}) is longer than the {} a forecast is fitted on at most",
                p.history,
                HumanDuration(MAX_FORECAST_HISTORY)
            ),
        );
    }
    if p.horizon.get() < hour {
        push(at("horizon"), "must be at least 1h".into());
    } else if p.horizon.get() > MAX_FORECAST_HORIZON {
        push(
            at("horizon"),
            format!(
                "horizon ({}) is longer than the {} a forecast reaches at most",
                p.horizon,
                HumanDuration(MAX_FORECAST_HORIZON)
            ),
        );
    }
    if p.refresh.get().is_zero() {
        push(at("refresh"), "must be longer than 0s".into());
    } else if p.refresh.get() > MAX_FORECAST_HORIZON {
        push(
            at("refresh"),
            format!(
                "refresh ({}) is longer than the longest horizon ({}); the forecast would go stale",
                p.refresh,
                HumanDuration(MAX_FORECAST_HORIZON)
            ),
        );
    }
    if p.buffer.get() > p.horizon.get() {
        push(
            at("buffer"),
            format!(
                "buffer ({}) reaches past the horizon ({})",
                p.buffer, p.horizon
            ),
        );
    }
    if !(p.margin.is_finite() && (0.0..=10.0).contains(&p.margin)) {
        push(
            at("margin"),
            format!("margin must be in [0, 10], got {}", p.margin),
        );
    }
    if let Some(q) = p.quantile
        && !(q > 0.5 && q < 1.0)
    {
        push(
            at("quantile"),
            format!("quantile must be in (0.5, 1), got {q}"),
        );
    }
    if let MaxCapacity::RaiseByPercent(pct) = p.max_capacity
        && !(pct.is_finite() && pct > 0.0 && pct <= 100.0)
    {
        push(
            at("max_capacity.raise_by_percent"),
            format!("must be in (0, 100], got {pct}"),
        );
    }
    if !(p.fallback_mase.is_finite() && p.fallback_mase > 0.0) {
        push(
            at("fallback_mase"),
            format!("must be a positive number, got {}", p.fallback_mase),
        );
    }
}
