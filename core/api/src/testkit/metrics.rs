//! Checks of the [`MetricsSource`](crate::MetricsSource) trait: every built-in kind it declares
//! answers for the target group with samples inside the asked range and values in the kind's
//! domain; expressions are refused as unsupported when not declared.

use super::support::{CheckResult, call_failed, expect_error, finish};
use super::{ConformanceTarget, Outcome};
use crate::error::ErrorKind;
use crate::model::{MetricKind, MetricQuery, TimeRange};
use crate::provider::RangeQuery;

/// How far back the metric checks look.
const LOOKBACK: chrono::Duration = chrono::Duration::hours(1);
/// Sample spacing asked for.
const STEP_SECONDS: u32 = 60;

/// Every built-in kind the source declares answers for the group over the last hour: samples
/// oldest first, inside `[start, end)`, values not negative (NaN allowed as "missing"),
/// fractions (utilization, error rate) at most 1; and at least one kind has samples.
pub async fn check_metrics_builtin_kinds(t: &ConformanceTarget) -> Outcome {
    finish(builtin_kinds(t).await)
}

async fn builtin_kinds(t: &ConformanceTarget) -> CheckResult {
    let Some(metrics) = &t.set.metrics else {
        return Ok(Outcome::skipped("the provider offers no metrics source"));
    };
    let kinds = metrics.capabilities().builtin;
    if kinds.is_empty() {
        return Ok(Outcome::skipped(
            "the metrics source declares no built-in kinds",
        ));
    }
    let now = t.clock.now();
    let range = TimeRange {
        start: now - LOOKBACK,
        end: now,
    };
    let mut total_samples = 0usize;
    for kind in &kinds {
        let query = MetricQuery {
            group: t.group.clone(),
            metric: kind.clone(),
            expression: None,
        };
        let call = format!(
            "query_range({:?}, {kind}, {} to {}, step {STEP_SECONDS} s)",
            t.group, range.start, range.end
        );
        let series = metrics
            .query_range(&RangeQuery::new(query.clone(), range, STEP_SECONDS))
            .await
            .map_err(|e| call_failed(&call, &e, "the source declares this kind as built in"))?;
        for s in &series {
            let mut previous = None;
            for sample in &s.samples {
                if sample.at < range.start || sample.at >= range.end {
                    return Err(format!(
                        "{call} returned a sample at {} outside the asked range",
                        sample.at
                    ));
                }
                if previous.is_some_and(|p| sample.at <= p) {
                    return Err(format!(
                        "{call} returned samples out of order or repeated at {}; oldest first, \
                         one per time",
                        sample.at
                    ));
                }
                previous = Some(sample.at);
                let v = sample.value;
                if v.is_nan() {
                    continue;
                }
                if !v.is_finite() || v < 0.0 {
                    return Err(format!(
                        "{call} returned value {v} at {}; {kind} is finite and not negative \
                         (report a missing value as NaN or leave it out)",
                        sample.at
                    ));
                }
                let fraction = matches!(kind, MetricKind::Utilization | MetricKind::ErrorRate);
                if fraction && v > 1.0 + 1e-9 {
                    return Err(format!(
                        "{call} returned value {v} at {}; {kind} is a fraction in 0..=1, not a \
                         percentage",
                        sample.at
                    ));
                }
            }
            total_samples += s.samples.len();
        }
    }
    if total_samples == 0 {
        return Err(format!(
            "no built-in kind ({}) returned any sample for group {:?} over the last hour; a \
             source must report the signals it declares",
            kinds
                .iter()
                .map(MetricKind::name)
                .collect::<Vec<_>>()
                .join(", "),
            t.group
        ));
    }
    Ok(Outcome::Passed)
}

/// A source that does not declare expressions refuses a query with one as
/// [`ErrorKind::Unsupported`].
pub async fn check_metrics_expressions(t: &ConformanceTarget) -> Outcome {
    finish(expressions(t).await)
}

async fn expressions(t: &ConformanceTarget) -> CheckResult {
    let Some(metrics) = &t.set.metrics else {
        return Ok(Outcome::skipped("the provider offers no metrics source"));
    };
    if metrics.capabilities().expressions {
        return Ok(Outcome::skipped(
            "the source accepts expressions; their syntax is its own, so there is nothing \
             neutral to check",
        ));
    }
    let now = t.clock.now();
    let range = TimeRange {
        start: now - LOOKBACK,
        end: now,
    };
    let query = MetricQuery {
        group: t.group.clone(),
        metric: MetricKind::Custom("hoist_conformance".to_owned()),
        expression: Some("hoist_conformance_expression".to_owned()),
    };
    expect_error(
        &metrics
            .query_range(&RangeQuery::new(query.clone(), range, STEP_SECONDS))
            .await,
        &[ErrorKind::Unsupported],
        "query_range with an expression",
        "the source does not declare expressions, so it must refuse them as unsupported",
    )?;
    Ok(Outcome::Passed)
}
