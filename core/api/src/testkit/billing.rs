//! Checks of the [`BillingProvider`](crate::BillingProvider) trait, chosen by its capabilities:
//! prices for a class the group can run, actual cost for a past period, forecasts for a future
//! one; what it declares it cannot do must be refused as unsupported.

use super::support::{CheckResult, call_failed, describe, expect_error, finish, valid_currency};
use super::{ConformanceTarget, Outcome};
use crate::error::ErrorKind;
use crate::model::{CapacityType, TimeRange};
use crate::provider::{CostEntry, CostGranularity, CostQuery};

const NO_SUCH_CLASS: &str = "hoist-conformance-no-such-class";

/// With `prices`, `price` of the group's class in one of its zones is positive per hour with a
/// currency, and an unknown class fails with [`ErrorKind::NotFound`] or
/// [`ErrorKind::InvalidInput`]; without, `price` fails with [`ErrorKind::Unsupported`].
pub async fn check_billing_prices(t: &ConformanceTarget) -> Outcome {
    finish(prices(t).await)
}

async fn prices(t: &ConformanceTarget) -> CheckResult {
    let Some(billing) = &t.set.billing else {
        return Ok(Outcome::skipped("the provider offers no billing"));
    };
    let group = describe(t).await?;
    // Prefer a zone and capacity type the catalog offers the class in.
    let mut zone = group.zones.first().cloned().unwrap_or_default();
    let mut capacity_type = CapacityType::OnDemand;
    if let Some(catalog) = &t.set.catalog
        && let Ok(class) = catalog.instance_class(&group.instance_class).await
        && let Some(offering) = class
            .cheapest(CapacityType::OnDemand)
            .or_else(|| class.offerings.first())
    {
        zone = offering.zone.clone();
        capacity_type = offering.capacity_type;
    }
    let call = format!(
        "price({:?}, {zone:?}, {capacity_type:?})",
        group.instance_class
    );
    let result = billing
        .price(&group.instance_class, &zone, capacity_type)
        .await;
    if !billing.capabilities().prices {
        expect_error(
            &result,
            &[ErrorKind::Unsupported],
            &call,
            "the billing provider declares prices unsupported, so it must refuse them",
        )?;
        return Ok(Outcome::Passed);
    }
    let price = result.map_err(|e| {
        call_failed(
            &call,
            &e,
            "the billing provider declares prices, so the group's own class must have one",
        )
    })?;
    let per_hour = price.per_hour();
    if !(per_hour.is_finite() && per_hour > 0.0) {
        return Err(format!(
            "{call} is {per_hour} per hour; prices must be positive"
        ));
    }
    if !valid_currency(&price.amount.currency) {
        return Err(format!(
            "{call} has currency {:?}; use an ISO 4217 code such as USD",
            price.amount.currency.0
        ));
    }
    if price.source.kind.is_empty() {
        return Err(format!(
            "{call} has an empty source kind; say where the price came from (table, live, ...)"
        ));
    }
    expect_error(
        &billing.price(NO_SUCH_CLASS, &zone, capacity_type).await,
        &[ErrorKind::NotFound, ErrorKind::InvalidInput],
        &format!("price({NO_SUCH_CLASS:?}, {zone:?}, {capacity_type:?})"),
        "an unknown class has no price",
    )?;
    Ok(Outcome::Passed)
}

fn check_entries(
    call: &str,
    entries: &[CostEntry],
    range: TimeRange,
    must_be_estimated: bool,
) -> Result<(), String> {
    for e in entries {
        if e.start >= e.end {
            return Err(format!(
                "{call} returned a row from {} to {}; start must be before end",
                e.start, e.end
            ));
        }
        if e.end <= range.start || e.start >= range.end {
            return Err(format!(
                "{call} returned a row from {} to {} outside the asked range {} to {}",
                e.start, e.end, range.start, range.end
            ));
        }
        if e.amount.amount.is_sign_negative() && !e.amount.amount.is_zero() {
            return Err(format!(
                "{call} returned a row of {}; amounts are finite and not negative",
                e.amount.amount
            ));
        }
        if !valid_currency(&e.amount.currency) {
            return Err(format!(
                "{call} returned currency {:?}; use an ISO 4217 code such as USD",
                e.amount.currency.0
            ));
        }
        if must_be_estimated && !e.estimated {
            return Err(format!(
                "{call} returned a row with estimated = false; a forecast is an estimate"
            ));
        }
    }
    Ok(())
}

/// With `actual_cost`, `cost` for the last two days answers with rows inside the range,
/// non-negative amounts and a currency; without, it fails with [`ErrorKind::Unsupported`].
pub async fn check_billing_cost(t: &ConformanceTarget) -> Outcome {
    finish(cost(t).await)
}

async fn cost(t: &ConformanceTarget) -> CheckResult {
    let Some(billing) = &t.set.billing else {
        return Ok(Outcome::skipped("the provider offers no billing"));
    };
    let now = t.clock.now();
    let range = TimeRange {
        start: now - chrono::Duration::days(2),
        end: now,
    };
    let query = CostQuery {
        range,
        granularity: CostGranularity::Daily,
        group_by: None,
    };
    let call = format!("cost(daily, {} to {})", range.start, range.end);
    let result = billing.cost(&query).await;
    if !billing.capabilities().actual_cost {
        expect_error(
            &result,
            &[ErrorKind::Unsupported],
            &call,
            "the billing provider declares actual_cost unsupported, so it must refuse it",
        )?;
        return Ok(Outcome::Passed);
    }
    let entries =
        result.map_err(|e| call_failed(&call, &e, "the billing provider declares actual_cost"))?;
    check_entries(&call, &entries, range, false)?;
    Ok(Outcome::Passed)
}

/// With `forecast`, `forecast` for the next seven days answers with estimated rows inside the
/// range; without, it fails with [`ErrorKind::Unsupported`].
pub async fn check_billing_forecast(t: &ConformanceTarget) -> Outcome {
    finish(forecast(t).await)
}

async fn forecast(t: &ConformanceTarget) -> CheckResult {
    let Some(billing) = &t.set.billing else {
        return Ok(Outcome::skipped("the provider offers no billing"));
    };
    let now = t.clock.now();
    let range = TimeRange {
        start: now,
        end: now + chrono::Duration::days(7),
    };
    let query = CostQuery {
        range,
        granularity: CostGranularity::Daily,
        group_by: None,
    };
    let call = format!("forecast(daily, {} to {})", range.start, range.end);
    let result = billing.forecast(&query).await;
    if !billing.capabilities().forecast {
        expect_error(
            &result,
            &[ErrorKind::Unsupported],
            &call,
            "the billing provider declares forecast unsupported, so it must refuse it",
        )?;
        return Ok(Outcome::Passed);
    }
    let entries =
        result.map_err(|e| call_failed(&call, &e, "the billing provider declares forecast"))?;
    check_entries(&call, &entries, range, true)?;
    Ok(Outcome::Passed)
}
