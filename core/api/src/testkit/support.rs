//! Small helpers the checks share: expected errors, reading the group, waiting for changes to
//! land.

use std::fmt::Debug;

use super::{ConformanceTarget, Outcome};
use crate::error::{ErrorKind, Result};
use crate::model::{Currency, ScalingGroup};

/// A check's body: `Ok` with passed or skipped, `Err` with the failure message.
pub(crate) type CheckResult = std::result::Result<Outcome, String>;

/// Turns a check body's result into its outcome.
pub(crate) fn finish(result: CheckResult) -> Outcome {
    result.unwrap_or_else(Outcome::failed)
}

/// Shows a result for a failure message without dumping large values.
pub(crate) fn show<T: Debug>(result: &Result<T>) -> String {
    match result {
        Ok(value) => {
            let shown = format!("{value:?}");
            if shown.chars().count() > 160 {
                format!("Ok({}...)", shown.chars().take(160).collect::<String>())
            } else {
                format!("Ok({shown})")
            }
        }
        Err(e) => format!("an error of kind {}: {e}", e.kind()),
    }
}

/// `Ok(())` when `result` is an error of one of `kinds`; otherwise a message naming the call,
/// what came back and the rule.
pub(crate) fn expect_error<T: Debug>(
    result: &Result<T>,
    kinds: &[ErrorKind],
    call: &str,
    rule: &str,
) -> std::result::Result<(), String> {
    match result {
        Err(e) if kinds.contains(&e.kind()) => Ok(()),
        _ => {
            let expected: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            Err(format!(
                "{call} returned {}; expected an error of kind {}: {rule}",
                show(result),
                expected.join(" or ")
            ))
        }
    }
}

/// The message for a call that must succeed but failed.
pub(crate) fn call_failed(call: &str, error: &crate::Error, rule: &str) -> String {
    format!(
        "{call} failed with an error of kind {}: {error}; {rule}",
        error.kind()
    )
}

/// Describes the target's group, or a failure message.
pub(crate) async fn describe(t: &ConformanceTarget) -> std::result::Result<ScalingGroup, String> {
    t.scaling().describe_group(&t.group).await.map_err(|e| {
        call_failed(
            &format!("describe_group({:?})", t.group),
            &e,
            "the target group must exist and be readable",
        )
    })
}

/// Describes the group until `condition` holds, settling between looks (up to the target's
/// rounds); the last failure message when it never does.
pub(crate) async fn eventually<F>(
    t: &ConformanceTarget,
    mut condition: F,
) -> std::result::Result<ScalingGroup, String>
where
    F: FnMut(&ScalingGroup) -> std::result::Result<(), String>,
{
    let mut last = String::new();
    for round in 0..t.settle_rounds.max(1) {
        if round > 0 {
            t.settle().await;
        }
        let group = describe(t).await?;
        match condition(&group) {
            Ok(()) => return Ok(group),
            Err(message) => last = message,
        }
    }
    Err(format!(
        "{last} (looked {} time(s), settling {} ms between looks; if the change is merely slow, \
         give the target a longer settle time)",
        t.settle_rounds.max(1),
        t.settle_time.as_millis()
    ))
}

/// Settles once, then describes the group and checks that `condition` holds (for "nothing
/// changed" checks, where waiting can only reveal a change).
pub(crate) async fn after_settling<F>(
    t: &ConformanceTarget,
    condition: F,
) -> std::result::Result<ScalingGroup, String>
where
    F: FnOnce(&ScalingGroup) -> std::result::Result<(), String>,
{
    t.settle().await;
    let group = describe(t).await?;
    condition(&group)?;
    Ok(group)
}

/// Whether `currency` looks like an ISO 4217 code (three upper-case ASCII letters).
pub(crate) fn valid_currency(currency: &Currency) -> bool {
    currency.0.len() == 3 && currency.0.bytes().all(|b| b.is_ascii_uppercase())
}
