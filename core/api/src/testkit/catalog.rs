//! Checks of the [`InstanceCatalog`](crate::InstanceCatalog) trait: classes with sane sizes and
//! prices, lookup by name, and the group's class being known.

use std::collections::BTreeSet;

use super::support::{CheckResult, call_failed, describe, expect_error, finish, valid_currency};
use super::{ConformanceTarget, Outcome};
use crate::error::ErrorKind;
use crate::model::CapacityType;

const NO_SUCH_CLASS: &str = "hoist-conformance-no-such-class";

/// The catalog lists at least one class; names are unique; every class has positive vCPUs and
/// memory and at least one offering whose price is positive per hour with an ISO 4217
/// currency; spot offerings appear exactly when the catalog declares spot prices.
pub async fn check_catalog_lists_classes(t: &ConformanceTarget) -> Outcome {
    finish(lists_classes(t).await)
}

async fn lists_classes(t: &ConformanceTarget) -> CheckResult {
    let Some(catalog) = &t.set.catalog else {
        return Ok(Outcome::skipped("the provider offers no instance catalog"));
    };
    let classes = catalog
        .instance_classes()
        .await
        .map_err(|e| call_failed("instance_classes()", &e, "a catalog must list its classes"))?;
    if classes.is_empty() {
        return Err(
            "instance_classes() returned no classes; a catalog must offer at least one".to_owned(),
        );
    }
    let mut names = BTreeSet::new();
    let mut any_spot = false;
    for c in &classes {
        if c.name.is_empty() || !names.insert(c.name.as_str()) {
            return Err(format!(
                "instance_classes() returned class name {:?} empty or twice; names are unique ids",
                c.name
            ));
        }
        if !(c.vcpus.is_finite() && c.vcpus > 0.0) {
            return Err(format!(
                "class {:?} has vcpus {}; it must be a positive number",
                c.name, c.vcpus
            ));
        }
        if c.memory_mib == 0 {
            return Err(format!(
                "class {:?} has memory_mib 0; report memory in MiB",
                c.name
            ));
        }
        if c.offerings.is_empty() {
            return Err(format!(
                "class {:?} has no offerings; list at least one zone and capacity type with its \
                 price",
                c.name
            ));
        }
        for o in &c.offerings {
            let per_hour = o.price.per_hour();
            if !(per_hour.is_finite() && per_hour > 0.0) {
                return Err(format!(
                    "class {:?} offering in {:?} ({:?}) costs {per_hour} per hour; prices must be \
                     positive",
                    c.name, o.zone, o.capacity_type
                ));
            }
            if !valid_currency(&o.price.amount.currency) {
                return Err(format!(
                    "class {:?} offering in {:?} has currency {:?}; use an ISO 4217 code such as \
                     USD",
                    c.name, o.zone, o.price.amount.currency.0
                ));
            }
            if o.zone.is_empty() {
                return Err(format!(
                    "class {:?} has an offering with an empty zone",
                    c.name
                ));
            }
            any_spot |= o.capacity_type == CapacityType::Spot;
        }
    }
    let declared = catalog.capabilities().spot_prices;
    if declared && !any_spot {
        return Err(
            "the catalog declares spot_prices but no offering is of capacity type spot".to_owned(),
        );
    }
    if !declared && any_spot {
        return Err(
            "the catalog lists spot offerings but does not declare spot_prices in its \
             capabilities"
                .to_owned(),
        );
    }
    Ok(Outcome::Passed)
}

/// `instance_class(name)` returns the listed class for a known name and fails with
/// [`ErrorKind::NotFound`] for an unknown one.
pub async fn check_catalog_lookup(t: &ConformanceTarget) -> Outcome {
    finish(lookup(t).await)
}

async fn lookup(t: &ConformanceTarget) -> CheckResult {
    let Some(catalog) = &t.set.catalog else {
        return Ok(Outcome::skipped("the provider offers no instance catalog"));
    };
    let classes = catalog
        .instance_classes()
        .await
        .map_err(|e| call_failed("instance_classes()", &e, "a catalog must list its classes"))?;
    if let Some(first) = classes.first() {
        let found = catalog.instance_class(&first.name).await.map_err(|e| {
            call_failed(
                &format!("instance_class({:?})", first.name),
                &e,
                "a listed class must be found by name",
            )
        })?;
        if found.name != first.name
            || found.vcpus != first.vcpus
            || found.memory_mib != first.memory_mib
        {
            return Err(format!(
                "instance_class({:?}) returned {:?} with {} vCPU / {} MiB, but the list says {} \
                 vCPU / {} MiB; lookup and list must agree",
                first.name,
                found.name,
                found.vcpus,
                found.memory_mib,
                first.vcpus,
                first.memory_mib
            ));
        }
    }
    expect_error(
        &catalog.instance_class(NO_SUCH_CLASS).await,
        &[ErrorKind::NotFound],
        &format!("instance_class({NO_SUCH_CLASS:?})"),
        "an unknown class must be not_found",
    )?;
    Ok(Outcome::Passed)
}

/// The class the target group runs is in the catalog (the engine prices groups by it).
pub async fn check_catalog_knows_group_class(t: &ConformanceTarget) -> Outcome {
    finish(knows_group_class(t).await)
}

async fn knows_group_class(t: &ConformanceTarget) -> CheckResult {
    let Some(catalog) = &t.set.catalog else {
        return Ok(Outcome::skipped("the provider offers no instance catalog"));
    };
    let group = describe(t).await?;
    catalog
        .instance_class(&group.instance_class)
        .await
        .map_err(|e| {
            call_failed(
                &format!("instance_class({:?})", group.instance_class),
                &e,
                "the class the target group runs must be in the catalog so its cost can be known",
            )
        })?;
    Ok(Outcome::Passed)
}
