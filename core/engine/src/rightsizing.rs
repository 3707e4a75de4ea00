//! Instance-class choice for rightsizing: the cheapest class of a catalog that fits a size, and
//! the cheapest (class, count) that carries a load.
//!
//! Both are pure functions of a catalog ([`InstanceClass`]es with their offerings per zone and
//! capacity type) and what is asked:
//!
//! - [`cheapest_class`]: given what **one instance** needs (CPU cores and memory bytes, a
//!   [`Need`]), the cheapest class whose vCPUs and memory hold it, every class that fits ranked
//!   from the cheapest, and the saving per instance against the current class.
//! - [`cheapest_fleet`]: given a **total load** (CPU cores needed in all, usually the current
//!   class's instances × their utilisation × its vCPUs) with the memory each instance needs and
//!   a target utilisation, the cheapest (class, count) that carries it: `count = ⌈cores /
//!   (vCPUs × target)⌉`, at least `min_count`, at most `max_count`. Ranked the same way, with the
//!   saving against the current fleet.
//!
//! What a class may be is set by [`ChoiceOptions`]: allowed classes, allowed families, allowed
//! CPU architectures (a group's machine image is built for one, so its users pass the current
//! class's unless they say otherwise), allowed capacity types (on demand by default; spot only when allowed), and the zones a group spans
//! (a class must then be offered in every one of them, at the mean of the zones' prices, since
//! a group spreads its instances over its zones). A spot offering costs its price plus what its
//! interruptions cost when a [`SpotRisk`] is given: every interruption wastes
//! `hours_lost_per_interruption` instance-hours that are bought again, so the price is
//! `spot × (1 + interruptions_per_hour × hours_lost_per_interruption)`.
//!
//! Prices are exact decimals ([`Decimal`]); a month is [`HOURS_PER_MONTH`] hours, as
//! [`crate::model::RateUnit::PerMonth`] has it. Every price compared must be in one currency.
//!
//! **Ties** are broken deterministically. Classes: lower price, then on demand before spot
//! (before reserved), then more vCPUs, then more memory, then the name. Fleets: lower price,
//! then on demand first, then more vCPUs in all, then fewer instances, then the name.

use std::cmp::Ordering;
use std::fmt;

use hoist_api::Decimal;

use crate::model::{Architecture, CapacityType, Currency, InstanceClass, InstanceFamily, Money};

/// Hours in a month for monthly figures (as [`crate::model::RateUnit::PerMonth`] converts).
pub const HOURS_PER_MONTH: u32 = 730;

/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// Rounding slack when comparing a need with what a class has (a need computed as 2.0000000001
/// cores still fits 2 vCPUs).
const FIT_SLACK: f64 = 1e-9;

/// What one instance needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Need {
    /// CPU, cores.
    pub cpu_cores: f64,
    /// Memory, bytes; 0 when nothing is required.
    pub memory_bytes: f64,
}

/// A total load to carry with several instances of one class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// CPU cores needed in all (busy cores at the peak, say).
    pub cpu_cores: f64,
    /// Memory each instance needs, bytes; 0 when nothing is required.
    pub memory_per_instance_bytes: f64,
    /// The utilisation to run at, in (0, 1]: a class of `v` vCPUs carries `v × target` cores.
    pub target_utilization: f64,
    /// The fewest instances (at least 1 is always used).
    pub min_count: u32,
    /// The most instances, when bounded: a class that would need more does not fit.
    pub max_count: Option<u32>,
}

/// What spot interruptions cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpotRisk {
    /// Interruptions per spot instance-hour.
    pub interruptions_per_hour: f64,
    /// Instance-hours each interruption wastes and buys again (a replacement's boot, work
    /// redone).
    pub hours_lost_per_interruption: f64,
}

/// What a class may be.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceOptions {
    /// Only these classes, by name; `None`: any.
    pub classes: Option<Vec<String>>,
    /// Only these families; `None`: any.
    pub families: Option<Vec<InstanceFamily>>,
    /// Only these CPU architectures; `None`: any.
    pub architectures: Option<Vec<Architecture>>,
    /// The capacity types to buy (default on demand only).
    pub capacity_types: Vec<CapacityType>,
    /// What spot interruptions cost; `None`: nothing beyond the spot price.
    pub spot_risk: Option<SpotRisk>,
    /// The zones the group spans: a class must be offered in all of them (at the mean of their
    /// prices). `None` or empty: the cheapest offering anywhere.
    pub zones: Option<Vec<String>>,
}

impl Default for ChoiceOptions {
    fn default() -> Self {
        ChoiceOptions {
            classes: None,
            families: None,
            architectures: None,
            capacity_types: vec![CapacityType::OnDemand],
            spot_risk: None,
            zones: None,
        }
    }
}

/// The class a group runs on now, and how it is bought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// Class name.
    pub class: String,
    /// Capacity type.
    pub capacity_type: CapacityType,
    /// Instances, for [`cheapest_fleet`]'s saving (ignored by [`cheapest_class`]).
    pub count: u32,
}

/// A class as bought one way, with its price per instance-hour.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    /// Class name.
    pub class: String,
    /// Its family.
    pub family: InstanceFamily,
    /// vCPUs.
    pub vcpus: f64,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// How it is bought.
    pub capacity_type: CapacityType,
    /// The list price per instance-hour (the mean over the zones when zones are given).
    pub list_per_hour: Money,
    /// What an instance-hour costs, the interruption cost of spot included: what is compared.
    pub per_hour: Money,
}

/// A class that fits one instance's need.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassFit {
    /// The class and its price.
    pub offer: Offer,
    /// The share of its vCPUs the need uses.
    pub cpu_share: f64,
    /// The share of its memory the need uses.
    pub memory_share: f64,
}

/// The result of [`cheapest_class`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClassChoice {
    /// Every class that fits, cheapest first (the choice is the first).
    pub ranked: Vec<ClassFit>,
    /// The current class's price, when a current class was given.
    pub current: Option<Offer>,
    /// Whether the current class fits the need.
    pub current_fits: bool,
    /// Current price − chosen price, per instance-hour (negative: the choice costs more,
    /// because the current class is too small).
    pub saving_per_hour: Option<Money>,
}

impl ClassChoice {
    /// The cheapest class that fits.
    pub fn best(&self) -> &ClassFit {
        &self.ranked[0]
    }

    /// The saving per instance and month ([`HOURS_PER_MONTH`]).
    pub fn saving_per_month(&self) -> Option<Money> {
        self.saving_per_hour.as_ref().map(monthly)
    }
}

/// A (class, count) that carries a load.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// The class and its price per instance-hour.
    pub offer: Offer,
    /// Instances.
    pub count: u32,
    /// What the fleet costs per hour.
    pub per_hour: Money,
    /// The utilisation it runs at under the load.
    pub utilization: f64,
}

impl Fleet {
    fn total_vcpus(&self) -> f64 {
        self.offer.vcpus * f64::from(self.count)
    }
}

/// The result of [`cheapest_fleet`].
#[derive(Debug, Clone, PartialEq)]
pub struct FleetChoice {
    /// Every class that carries the load with its count, cheapest first (the choice is the
    /// first).
    pub ranked: Vec<Fleet>,
    /// The current fleet (its class × its count) and its price, when given.
    pub current: Option<Fleet>,
    /// Whether the current fleet carries the load at the target (and fits its memory).
    pub current_carries: bool,
    /// Current fleet's price − the choice's, per hour (negative: the choice costs more).
    pub saving_per_hour: Option<Money>,
}

impl FleetChoice {
    /// The cheapest (class, count).
    pub fn best(&self) -> &Fleet {
        &self.ranked[0]
    }

    /// The saving per month ([`HOURS_PER_MONTH`]).
    pub fn saving_per_month(&self) -> Option<Money> {
        self.saving_per_hour.as_ref().map(monthly)
    }
}

/// Why no choice could be made.
#[derive(Debug, Clone, PartialEq)]
pub enum ChoiceError {
    /// The need, load or options are not usable (a negative or non-finite number, a target
    /// outside (0, 1], no capacity type).
    Invalid(String),
    /// A class named (in the allowed classes, or as the current class) is not in the catalog.
    UnknownClass(String),
    /// The current class is not offered as its capacity type (in the group's zones).
    NotOffered(String),
    /// Prices in more than one currency.
    MixedCurrencies(Vec<String>),
    /// No allowed class fits: what was asked, and how the catalog narrowed down.
    NothingFits(String),
}

impl fmt::Display for ChoiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChoiceError::Invalid(m) | ChoiceError::NotOffered(m) | ChoiceError::NothingFits(m) => {
                f.write_str(m)
            }
            ChoiceError::UnknownClass(name) => {
                write!(f, "no instance class named {name:?} in the catalog")
            }
            ChoiceError::MixedCurrencies(list) => write!(
                f,
                "the catalog's prices are in more than one currency ({}); compare classes priced in one",
                list.join(", ")
            ),
        }
    }
}

impl std::error::Error for ChoiceError {}

/// `money` rounded to the cent, half away from zero (as [`Money`] displays).
pub fn to_cents(money: &Money) -> Money {
    Money::new(
        money
            .amount
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero),
        money.currency.clone(),
    )
}

/// `per_hour` × [`HOURS_PER_MONTH`].
pub fn monthly(per_hour: &Money) -> Money {
    Money::new(
        per_hour.amount * Decimal::from(HOURS_PER_MONTH),
        per_hour.currency.clone(),
    )
}

fn decimal(value: f64) -> Option<Decimal> {
    if !value.is_finite() {
        return None;
    }
    Decimal::try_from(value).ok().map(|d| d.round_dp(12))
}

fn to_f64(d: Decimal) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    d.to_f64().unwrap_or(f64::NAN)
}

fn capacity_name(c: CapacityType) -> &'static str {
    match c {
        CapacityType::OnDemand => "on_demand",
        CapacityType::Spot => "spot",
        CapacityType::Reserved => "reserved",
    }
}

fn gib(bytes: f64) -> String {
    format!("{:.1} GiB", bytes / (1024.0 * MIB))
}

fn check_options(catalog: &[InstanceClass], options: &ChoiceOptions) -> Result<(), ChoiceError> {
    if options.capacity_types.is_empty() {
        return Err(ChoiceError::Invalid(
            "no capacity type allowed: allow on_demand, spot or both".to_owned(),
        ));
    }
    if let Some(classes) = &options.classes {
        for name in classes {
            if !catalog.iter().any(|c| &c.name == name) {
                return Err(ChoiceError::UnknownClass(name.clone()));
            }
        }
    }
    if let Some(risk) = options.spot_risk {
        for (what, v) in [
            ("interruptions per hour", risk.interruptions_per_hour),
            (
                "hours lost per interruption",
                risk.hours_lost_per_interruption,
            ),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ChoiceError::Invalid(format!(
                    "spot risk: {what} must be a finite number >= 0, got {v}"
                )));
            }
        }
    }
    Ok(())
}

fn check_amount(what: &str, v: f64) -> Result<(), ChoiceError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(ChoiceError::Invalid(format!(
            "{what} must be a finite number >= 0, got {v}"
        )))
    }
}

/// The price of `class` bought as `capacity_type` under `options` (its zones and spot risk),
/// `None` when it is not offered so (in every one of the zones).
pub fn offer(
    class: &InstanceClass,
    capacity_type: CapacityType,
    options: &ChoiceOptions,
) -> Option<Offer> {
    let of_type = || {
        class
            .offerings
            .iter()
            .filter(move |o| o.capacity_type == capacity_type)
    };
    let (list, currency): (Decimal, Currency) = match options.zones.as_deref() {
        Some(zones) if !zones.is_empty() => {
            let mut sum = Decimal::ZERO;
            let mut currency = None;
            for zone in zones {
                let cheapest = of_type()
                    .filter(|o| &o.zone == zone)
                    .min_by(|a, b| a.price.per_hour_exact().cmp(&b.price.per_hour_exact()))?;
                sum += cheapest.price.per_hour_exact();
                currency.get_or_insert_with(|| cheapest.price.amount.currency.clone());
            }
            (sum / Decimal::from(zones.len() as u64), currency?)
        }
        _ => {
            let cheapest =
                of_type().min_by(|a, b| a.price.per_hour_exact().cmp(&b.price.per_hour_exact()))?;
            (
                cheapest.price.per_hour_exact(),
                cheapest.price.amount.currency.clone(),
            )
        }
    };
    let effective = match (capacity_type, options.spot_risk) {
        (CapacityType::Spot, Some(risk)) => {
            let factor =
                decimal(1.0 + risk.interruptions_per_hour * risk.hours_lost_per_interruption)
                    .unwrap_or(Decimal::ONE);
            // To a millionth of the currency: the factor is an estimate.
            (list * factor).round_dp(6)
        }
        _ => list,
    };
    Some(Offer {
        class: class.name.clone(),
        family: class.family,
        vcpus: class.vcpus,
        memory_mib: class.memory_mib,
        capacity_type,
        list_per_hour: Money::new(list, currency.clone()),
        per_hour: Money::new(effective, currency),
    })
}

/// An architecture's name as policy files and reports write it.
pub fn architecture_name(architecture: Architecture) -> &'static str {
    match architecture {
        Architecture::X86_64 => "x86_64",
        Architecture::Arm64 => "arm64",
    }
}

/// The allowed offers of the catalog, with a note of how the catalog narrowed down for errors.
fn allowed_offers(catalog: &[InstanceClass], options: &ChoiceOptions) -> (Vec<Offer>, String) {
    let allowed: Vec<&InstanceClass> = catalog
        .iter()
        .filter(|c| options.classes.as_ref().is_none_or(|n| n.contains(&c.name)))
        .filter(|c| {
            options
                .families
                .as_ref()
                .is_none_or(|f| f.contains(&c.family))
        })
        .filter(|c| {
            options
                .architectures
                .as_ref()
                .is_none_or(|a| a.contains(&c.architecture))
        })
        .collect();
    let mut types = options.capacity_types.clone();
    types.sort();
    types.dedup();
    let offers: Vec<Offer> = allowed
        .iter()
        .flat_map(|c| types.iter().filter_map(|t| offer(c, *t, options)))
        .collect();
    let zones = match options.zones.as_deref() {
        Some(z) if !z.is_empty() => format!(" in every zone of {}", z.join(", ")),
        _ => String::new(),
    };
    let note = format!(
        "{} classes in the catalog, {} allowed (classes: {}; families: {}; architectures: {}), {} offers as {}{zones}",
        catalog.len(),
        allowed.len(),
        options
            .classes
            .as_ref()
            .map_or("any".to_owned(), |c| c.join(", ")),
        options.families.as_ref().map_or("any".to_owned(), |f| {
            f.iter()
                .map(|f| family_name(*f))
                .collect::<Vec<_>>()
                .join(", ")
        }),
        options
            .architectures
            .as_ref()
            .map_or("any".to_owned(), |a| {
                a.iter()
                    .map(|a| architecture_name(*a))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
        offers.len(),
        types
            .iter()
            .map(|t| capacity_name(*t))
            .collect::<Vec<_>>()
            .join(" or "),
    );
    (offers, note)
}

/// The family a name as written in policy files (`general`, `compute`, ...) stands for.
pub fn parse_family(name: &str) -> Option<InstanceFamily> {
    [
        InstanceFamily::General,
        InstanceFamily::Compute,
        InstanceFamily::Memory,
        InstanceFamily::Storage,
        InstanceFamily::Network,
        InstanceFamily::Accelerated,
        InstanceFamily::Burstable,
    ]
    .into_iter()
    .find(|f| family_name(*f) == name)
}

/// The family's name as written in policy files and catalogs (`general`, `compute`, ...).
pub fn family_name(family: InstanceFamily) -> &'static str {
    match family {
        InstanceFamily::General => "general",
        InstanceFamily::Compute => "compute",
        InstanceFamily::Memory => "memory",
        InstanceFamily::Storage => "storage",
        InstanceFamily::Network => "network",
        InstanceFamily::Accelerated => "accelerated",
        InstanceFamily::Burstable => "burstable",
    }
}

fn current_offer(
    catalog: &[InstanceClass],
    current: &Current,
    options: &ChoiceOptions,
) -> Result<Offer, ChoiceError> {
    let class = catalog
        .iter()
        .find(|c| c.name == current.class)
        .ok_or_else(|| ChoiceError::UnknownClass(current.class.clone()))?;
    // The current class is priced in the group's zones with no restriction on class, family or
    // capacity type: it is what runs.
    offer(class, current.capacity_type, options).ok_or_else(|| {
        ChoiceError::NotOffered(format!(
            "the current class {} is not offered as {}{}",
            current.class,
            capacity_name(current.capacity_type),
            options
                .zones
                .as_ref()
                .filter(|z| !z.is_empty())
                .map_or(String::new(), |z| format!(
                    " in every zone of {}",
                    z.join(", ")
                ))
        ))
    })
}

fn one_currency<'a>(offers: impl Iterator<Item = &'a Offer>) -> Result<(), ChoiceError> {
    let mut seen: Vec<String> = offers.map(|o| o.per_hour.currency.0.clone()).collect();
    seen.sort();
    seen.dedup();
    if seen.len() > 1 {
        return Err(ChoiceError::MixedCurrencies(seen));
    }
    Ok(())
}

fn fits(offer: &Offer, cpu: f64, memory_bytes: f64) -> bool {
    cpu <= offer.vcpus + FIT_SLACK && memory_bytes <= offer.memory_mib as f64 * MIB + FIT_SLACK
}

fn rank_offers(a: &Offer, b: &Offer) -> Ordering {
    a.per_hour
        .amount
        .cmp(&b.per_hour.amount)
        .then(a.capacity_type.cmp(&b.capacity_type))
        .then(b.vcpus.total_cmp(&a.vcpus))
        .then(b.memory_mib.cmp(&a.memory_mib))
        .then(a.class.cmp(&b.class))
}

fn rank_fleets(a: &Fleet, b: &Fleet) -> Ordering {
    a.per_hour
        .amount
        .cmp(&b.per_hour.amount)
        .then(a.offer.capacity_type.cmp(&b.offer.capacity_type))
        .then(b.total_vcpus().total_cmp(&a.total_vcpus()))
        .then(a.count.cmp(&b.count))
        .then(a.offer.class.cmp(&b.offer.class))
}

/// The cheapest allowed class whose vCPUs and memory hold `need`, every class that does ranked
/// (see the [module docs](self) for ties), and the saving per instance against `current`.
pub fn cheapest_class(
    catalog: &[InstanceClass],
    need: Need,
    current: Option<&Current>,
    options: &ChoiceOptions,
) -> Result<ClassChoice, ChoiceError> {
    check_amount("CPU cores needed", need.cpu_cores)?;
    check_amount("memory needed", need.memory_bytes)?;
    check_options(catalog, options)?;
    let current = current
        .map(|c| current_offer(catalog, c, options))
        .transpose()?;
    let (offers, note) = allowed_offers(catalog, options);
    one_currency(offers.iter().chain(current.iter()))?;
    let mut ranked: Vec<ClassFit> = offers
        .into_iter()
        .filter(|o| fits(o, need.cpu_cores, need.memory_bytes))
        .map(|offer| ClassFit {
            cpu_share: need.cpu_cores / offer.vcpus,
            memory_share: need.memory_bytes / (offer.memory_mib as f64 * MIB),
            offer,
        })
        .collect();
    if ranked.is_empty() {
        return Err(ChoiceError::NothingFits(format!(
            "no class fits {:.3} cores and {} per instance: {note}, none with that many vCPUs and that much memory",
            need.cpu_cores,
            gib(need.memory_bytes)
        )));
    }
    ranked.sort_by(|a, b| rank_offers(&a.offer, &b.offer));
    let current_fits = current
        .as_ref()
        .is_some_and(|c| fits(c, need.cpu_cores, need.memory_bytes));
    let saving_per_hour = current.as_ref().map(|c| {
        Money::new(
            c.per_hour.amount - ranked[0].offer.per_hour.amount,
            c.per_hour.currency.clone(),
        )
    });
    Ok(ClassChoice {
        ranked,
        current,
        current_fits,
        saving_per_hour,
    })
}

/// How many instances of `offer` carry `load`: `⌈cores / (vCPUs × target)⌉`, at least
/// `min_count` and 1; `None` when the memory does not fit or more than `max_count` are needed.
pub fn count_for(offer: &Offer, load: &Load) -> Option<u32> {
    if !fits(offer, 0.0, load.memory_per_instance_bytes) || offer.vcpus <= 0.0 {
        return None;
    }
    let per_instance = offer.vcpus * load.target_utilization;
    let needed = (load.cpu_cores / per_instance - FIT_SLACK).ceil().max(0.0);
    if needed > f64::from(u32::MAX) {
        return None;
    }
    let count = (needed as u32).max(load.min_count).max(1);
    match load.max_count {
        Some(max) if count > max => None,
        _ => Some(count),
    }
}

fn fleet(offer: Offer, count: u32, load: &Load) -> Fleet {
    let per_hour = Money::new(
        offer.per_hour.amount * Decimal::from(count),
        offer.per_hour.currency.clone(),
    );
    let utilization = load.cpu_cores / (offer.vcpus * f64::from(count));
    Fleet {
        offer,
        count,
        per_hour,
        utilization,
    }
}

/// The cheapest allowed (class, count) that carries `load` at its target utilisation, every
/// class that can ranked with its count (see the [module docs](self) for ties), and the saving
/// against the current fleet (`current`'s class × its count).
pub fn cheapest_fleet(
    catalog: &[InstanceClass],
    load: &Load,
    current: Option<&Current>,
    options: &ChoiceOptions,
) -> Result<FleetChoice, ChoiceError> {
    check_amount("CPU cores needed", load.cpu_cores)?;
    check_amount("memory per instance", load.memory_per_instance_bytes)?;
    if !(load.target_utilization > 0.0 && load.target_utilization <= 1.0) {
        return Err(ChoiceError::Invalid(format!(
            "the target utilisation must be in (0, 1], got {}",
            load.target_utilization
        )));
    }
    if let Some(max) = load.max_count
        && max < load.min_count.max(1)
    {
        return Err(ChoiceError::Invalid(format!(
            "the most instances ({max}) is below the fewest ({})",
            load.min_count.max(1)
        )));
    }
    check_options(catalog, options)?;
    let current_offer = current
        .map(|c| current_offer(catalog, c, options))
        .transpose()?;
    let (offers, note) = allowed_offers(catalog, options);
    one_currency(offers.iter().chain(current_offer.iter()))?;
    let mut ranked: Vec<Fleet> = offers
        .into_iter()
        .filter_map(|o| count_for(&o, load).map(|n| fleet(o, n, load)))
        .collect();
    if ranked.is_empty() {
        let bound = load
            .max_count
            .map_or(String::new(), |m| format!(" with at most {m} instances"));
        return Err(ChoiceError::NothingFits(format!(
            "no class carries {:.3} cores at {:.0} % utilisation{bound} with {} per instance: {note}",
            load.cpu_cores,
            load.target_utilization * 100.0,
            gib(load.memory_per_instance_bytes)
        )));
    }
    ranked.sort_by(rank_fleets);
    let current = match (current, current_offer) {
        (Some(c), Some(o)) => Some(fleet(o, c.count, load)),
        _ => None,
    };
    let current_carries = current.as_ref().is_some_and(|c| {
        count_for(
            &c.offer,
            &Load {
                min_count: 0,
                max_count: None,
                ..*load
            },
        )
        .is_some_and(|n| n <= c.count)
    });
    let saving_per_hour = current.as_ref().map(|c| {
        Money::new(
            c.per_hour.amount - ranked[0].per_hour.amount,
            c.per_hour.currency.clone(),
        )
    });
    Ok(FleetChoice {
        ranked,
        current,
        current_carries,
        saving_per_hour,
    })
}

/// The price per hour as a float, for estimates.
pub fn per_hour_f64(offer: &Offer) -> f64 {
    to_f64(offer.per_hour.amount)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Architecture, Offering, Price, PriceSource, RateUnit};

    const GIB: f64 = 1024.0 * MIB;

    fn price(per_hour: &str, currency: &str) -> Price {
        Price {
            amount: Money::new(per_hour.parse().unwrap(), Currency(currency.to_owned())),
            unit: RateUnit::PerHour,
            source: PriceSource {
                kind: "test".into(),
                detail: "test catalog".into(),
            },
        }
    }

    /// A class offered on demand at `od` and (when given) as spot at `spot` in zones a and b;
    /// zone b's on-demand price is `od_b` when given.
    fn class(
        name: &str,
        family: InstanceFamily,
        vcpus: f64,
        mem_gib: u64,
        od: &str,
        spot: Option<&str>,
    ) -> InstanceClass {
        let mut offerings = Vec::new();
        for zone in ["a", "b"] {
            offerings.push(Offering {
                zone: zone.into(),
                capacity_type: CapacityType::OnDemand,
                price: price(od, "USD"),
            });
            if let Some(s) = spot {
                offerings.push(Offering {
                    zone: zone.into(),
                    capacity_type: CapacityType::Spot,
                    price: price(s, "USD"),
                });
            }
        }
        InstanceClass {
            name: name.into(),
            family,
            vcpus,
            memory_mib: mem_gib * 1024,
            gpus: 0,
            architecture: Architecture::X86_64,
            network_gbps: None,
            offerings,
        }
    }

    /// The simulated cloud's families at its prices: memory is dearest per vCPU, compute
    /// cheapest.
    fn catalog() -> Vec<InstanceClass> {
        use InstanceFamily::*;
        vec![
            class("general.large", General, 2.0, 8, "0.096", Some("0.036")),
            class("general.xlarge", General, 4.0, 16, "0.192", Some("0.072")),
            class("compute.large", Compute, 2.0, 4, "0.085", Some("0.032")),
            class("compute.xlarge", Compute, 4.0, 8, "0.17", Some("0.064")),
            class("compute.2xlarge", Compute, 8.0, 16, "0.34", Some("0.128")),
            class("memory.large", Memory, 2.0, 16, "0.126", Some("0.047")),
            class("memory.xlarge", Memory, 4.0, 32, "0.252", Some("0.094")),
        ]
    }

    fn usd(text: &str) -> Money {
        Money::usd(text.parse().unwrap())
    }

    fn current(class: &str, count: u32) -> Current {
        Current {
            class: class.into(),
            capacity_type: CapacityType::OnDemand,
            count,
        }
    }

    #[test]
    fn the_cheapest_fit_is_in_another_family_with_the_saving_against_the_current_class() {
        // An instance of memory.xlarge (4 vCPU, 32 GiB) that needs 3 cores and 6 GiB: the
        // cheapest class holding that is compute.xlarge, 0.082 USD an hour cheaper.
        let choice = cheapest_class(
            &catalog(),
            Need {
                cpu_cores: 3.0,
                memory_bytes: 6.0 * GIB,
            },
            Some(&current("memory.xlarge", 1)),
            &ChoiceOptions::default(),
        )
        .unwrap();
        let best = choice.best();
        assert_eq!(best.offer.class, "compute.xlarge");
        assert_eq!(best.offer.family, InstanceFamily::Compute);
        assert_eq!(best.offer.capacity_type, CapacityType::OnDemand);
        assert!((best.cpu_share - 0.75).abs() < 1e-12);
        assert!((best.memory_share - 0.75).abs() < 1e-12);
        let names: Vec<&str> = choice
            .ranked
            .iter()
            .map(|f| f.offer.class.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "compute.xlarge",
                "general.xlarge",
                "memory.xlarge",
                "compute.2xlarge"
            ]
        );
        assert!(choice.current_fits);
        assert_eq!(choice.saving_per_hour, Some(usd("0.082")));
        assert_eq!(choice.saving_per_month(), Some(usd("59.86")));
    }

    #[test]
    fn memory_keeps_a_need_out_of_the_compute_family() {
        // 3 cores and 12 GiB: compute.xlarge has 8 GiB, so general.xlarge.
        let choice = cheapest_class(
            &catalog(),
            Need {
                cpu_cores: 3.0,
                memory_bytes: 12.0 * GIB,
            },
            None,
            &ChoiceOptions::default(),
        )
        .unwrap();
        assert_eq!(choice.best().offer.class, "general.xlarge");
        assert_eq!(choice.saving_per_hour, None);
    }

    #[test]
    fn a_cheaper_class_of_another_architecture_is_chosen_only_when_allowed() {
        let need = Need {
            cpu_cores: 1.5,
            memory_bytes: 2.0 * GIB,
        };
        let mut with_arm = catalog();
        let mut arm = class(
            "compute-arm.large",
            InstanceFamily::Compute,
            2.0,
            4,
            "0.068",
            None,
        );
        arm.architecture = Architecture::Arm64;
        with_arm.push(arm);
        let any = cheapest_class(&with_arm, need, None, &ChoiceOptions::default()).unwrap();
        assert_eq!(any.best().offer.class, "compute-arm.large");
        let x86 = ChoiceOptions {
            architectures: Some(vec![Architecture::X86_64]),
            ..ChoiceOptions::default()
        };
        let same = cheapest_class(&with_arm, need, None, &x86).unwrap();
        assert_eq!(same.best().offer.class, "compute.large");
        assert!(
            same.ranked
                .iter()
                .all(|f| f.offer.class != "compute-arm.large")
        );
        let arm_only = ChoiceOptions {
            architectures: Some(vec![Architecture::Arm64]),
            families: Some(vec![InstanceFamily::General]),
            ..ChoiceOptions::default()
        };
        let err = cheapest_class(&with_arm, need, None, &arm_only).unwrap_err();
        assert!(err.to_string().contains("architectures: arm64"), "{err}");
    }

    #[test]
    fn spot_is_chosen_only_when_allowed_and_pays_for_its_interruptions() {
        let need = Need {
            cpu_cores: 1.5,
            memory_bytes: 2.0 * GIB,
        };
        let on_demand = cheapest_class(&catalog(), need, None, &ChoiceOptions::default()).unwrap();
        assert_eq!(on_demand.best().offer.class, "compute.large");
        assert!(
            on_demand
                .ranked
                .iter()
                .all(|f| f.offer.capacity_type == CapacityType::OnDemand)
        );

        let with_spot = ChoiceOptions {
            capacity_types: vec![CapacityType::OnDemand, CapacityType::Spot],
            ..ChoiceOptions::default()
        };
        let spot = cheapest_class(&catalog(), need, None, &with_spot).unwrap();
        assert_eq!(spot.best().offer.class, "compute.large");
        assert_eq!(spot.best().offer.capacity_type, CapacityType::Spot);
        assert_eq!(spot.best().offer.per_hour, usd("0.032"));

        // Two interruptions an hour, each wasting an hour: spot costs 3 × its price, 0.096,
        // more than compute.large on demand (0.085), which comes first again.
        let risky = ChoiceOptions {
            spot_risk: Some(SpotRisk {
                interruptions_per_hour: 2.0,
                hours_lost_per_interruption: 1.0,
            }),
            ..with_spot.clone()
        };
        let risky = cheapest_class(&catalog(), need, None, &risky).unwrap();
        assert_eq!(risky.best().offer.capacity_type, CapacityType::OnDemand);
        let spot_offer = risky
            .ranked
            .iter()
            .find(|f| {
                f.offer.class == "compute.large" && f.offer.capacity_type == CapacityType::Spot
            })
            .unwrap();
        assert_eq!(spot_offer.offer.list_per_hour, usd("0.032"));
        assert_eq!(spot_offer.offer.per_hour, usd("0.096"));
    }

    #[test]
    fn nothing_fits_is_a_clear_error() {
        let err = cheapest_class(
            &catalog(),
            Need {
                cpu_cores: 16.0,
                memory_bytes: 0.0,
            },
            None,
            &ChoiceOptions::default(),
        )
        .unwrap_err();
        let ChoiceError::NothingFits(message) = &err else {
            panic!("{err:?}")
        };
        assert!(message.contains("16.000 cores"), "{message}");
        assert!(message.contains("7 classes in the catalog"), "{message}");

        let only_compute = ChoiceOptions {
            families: Some(vec![InstanceFamily::Compute]),
            ..ChoiceOptions::default()
        };
        let err = cheapest_class(
            &catalog(),
            Need {
                cpu_cores: 1.0,
                memory_bytes: 20.0 * GIB,
            },
            None,
            &only_compute,
        )
        .unwrap_err();
        assert!(err.to_string().contains("families: compute"), "{err}");
        assert!(err.to_string().contains("20.0 GiB"), "{err}");

        let unknown = ChoiceOptions {
            classes: Some(vec!["huge.metal".into()]),
            ..ChoiceOptions::default()
        };
        let err = cheapest_class(
            &catalog(),
            Need {
                cpu_cores: 1.0,
                memory_bytes: 0.0,
            },
            None,
            &unknown,
        )
        .unwrap_err();
        assert_eq!(err, ChoiceError::UnknownClass("huge.metal".into()));
        let err = cheapest_class(
            &catalog(),
            Need {
                cpu_cores: f64::NAN,
                memory_bytes: 0.0,
            },
            None,
            &ChoiceOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ChoiceError::Invalid(_)), "{err:?}");
    }

    #[test]
    fn ties_are_broken_deterministically_whatever_the_catalog_order() {
        use InstanceFamily::*;
        // Same price: on demand before spot, then more vCPUs, then more memory, then the name.
        let tied = vec![
            class("b.small", General, 2.0, 8, "0.10", None),
            class("a.small", General, 2.0, 8, "0.10", None),
            class("c.more-memory", Memory, 2.0, 16, "0.10", None),
            class("d.more-cpu", Compute, 4.0, 4, "0.10", None),
            class("e.spot-only", Compute, 8.0, 32, "1.00", Some("0.10")),
        ];
        let options = ChoiceOptions {
            capacity_types: vec![CapacityType::Spot, CapacityType::OnDemand],
            ..ChoiceOptions::default()
        };
        let need = Need {
            cpu_cores: 1.0,
            memory_bytes: GIB,
        };
        let expected = [
            "d.more-cpu",
            "c.more-memory",
            "a.small",
            "b.small",
            "e.spot-only",
        ];
        let mut catalog = tied.clone();
        for _ in 0..catalog.len() {
            let choice = cheapest_class(&catalog, need, None, &options).unwrap();
            let names: Vec<&str> = choice
                .ranked
                .iter()
                .take(5)
                .map(|f| f.offer.class.as_str())
                .collect();
            assert_eq!(names, expected);
            catalog.rotate_left(1);
        }
        // Fleets: same price per hour, then more vCPUs in all, then fewer instances.
        let fleets = vec![
            class("two.cores", General, 2.0, 8, "0.10", None),
            class("four.cores", General, 4.0, 8, "0.20", None),
            class("eight.cores", General, 8.0, 8, "0.40", None),
        ];
        let load = Load {
            cpu_cores: 3.0,
            memory_per_instance_bytes: 0.0,
            target_utilization: 0.75,
            min_count: 1,
            max_count: None,
        };
        // 2 two.cores (0.20), 1 four.cores (0.20) or 1 eight.cores (0.40): the tie at 0.20 has
        // equal vCPUs in all and goes to the fewer instances.
        let mut rotated = fleets.clone();
        for _ in 0..rotated.len() {
            let choice = cheapest_fleet(&rotated, &load, None, &ChoiceOptions::default()).unwrap();
            let got: Vec<(&str, u32)> = choice
                .ranked
                .iter()
                .map(|f| (f.offer.class.as_str(), f.count))
                .collect();
            assert_eq!(
                got,
                [("four.cores", 1), ("two.cores", 2), ("eight.cores", 1)]
            );
            rotated.rotate_left(1);
        }
    }

    #[test]
    fn the_cheapest_fleet_carries_the_load_at_the_target() {
        // 12 memory.xlarge at 40 % utilisation: 19.2 busy cores, which need 32 vCPUs at 60 %.
        // 4 compute.2xlarge, 8 compute.xlarge and 16 compute.large all cost 1.36 USD/h against
        // 12 × 0.252 = 3.024 USD/h now; the tie goes to the fewest instances.
        let load = Load {
            cpu_cores: 12.0 * 4.0 * 0.4,
            memory_per_instance_bytes: 4.0 * GIB,
            target_utilization: 0.6,
            min_count: 2,
            max_count: None,
        };
        let choice = cheapest_fleet(
            &catalog(),
            &load,
            Some(&current("memory.xlarge", 12)),
            &ChoiceOptions::default(),
        )
        .unwrap();
        let got: Vec<(&str, u32)> = choice
            .ranked
            .iter()
            .take(3)
            .map(|f| (f.offer.class.as_str(), f.count))
            .collect();
        assert_eq!(
            got,
            [
                ("compute.2xlarge", 4),
                ("compute.xlarge", 8),
                ("compute.large", 16)
            ]
        );
        let best = choice.best();
        assert_eq!(best.per_hour, usd("1.36"));
        assert!((best.utilization - 0.6).abs() < 1e-12);
        let now = choice.current.as_ref().unwrap();
        assert_eq!(now.per_hour, usd("3.024"));
        assert!(choice.current_carries);
        assert_eq!(choice.saving_per_hour, Some(usd("1.664")));
        assert_eq!(choice.saving_per_month(), Some(usd("1214.72")));

        // Among the two smaller classes, at most 10 instances rule out compute.large.
        let bounded = Load {
            max_count: Some(10),
            ..load
        };
        let smaller = ChoiceOptions {
            classes: Some(vec!["compute.large".into(), "compute.xlarge".into()]),
            ..ChoiceOptions::default()
        };
        let choice = cheapest_fleet(&catalog(), &bounded, None, &smaller).unwrap();
        assert_eq!(choice.ranked.len(), 1);
        assert_eq!(
            (choice.best().offer.class.as_str(), choice.best().count),
            ("compute.xlarge", 8)
        );
        let too_few = Load {
            max_count: Some(3),
            ..load
        };
        let err =
            cheapest_fleet(&catalog(), &too_few, None, &ChoiceOptions::default()).unwrap_err();
        assert!(err.to_string().contains("at most 3 instances"), "{err}");
        // The current fleet too small for the load: the choice costs more.
        let choice = cheapest_fleet(
            &catalog(),
            &load,
            Some(&current("compute.large", 4)),
            &ChoiceOptions::default(),
        )
        .unwrap();
        assert!(!choice.current_carries);
        assert_eq!(choice.saving_per_hour, Some(usd("-1.02")));
        // The fewest instances apply to a light load.
        let light = Load {
            cpu_cores: 0.1,
            ..load
        };
        let choice = cheapest_fleet(&catalog(), &light, None, &ChoiceOptions::default()).unwrap();
        assert_eq!(
            (choice.best().offer.class.as_str(), choice.best().count),
            ("compute.large", 2)
        );
        let bad = Load {
            target_utilization: 1.5,
            ..load
        };
        assert!(matches!(
            cheapest_fleet(&catalog(), &bad, None, &ChoiceOptions::default()),
            Err(ChoiceError::Invalid(_))
        ));
    }

    #[test]
    fn zones_price_at_their_mean_and_rule_out_classes_missing_one() {
        let mut catalog = catalog();
        // compute.large is dearer in zone b, and compute.xlarge is not offered there.
        for o in &mut catalog[2].offerings {
            if o.zone == "b" && o.capacity_type == CapacityType::OnDemand {
                o.price = price("0.125", "USD");
            }
        }
        catalog[3].offerings.retain(|o| o.zone != "b");
        let options = ChoiceOptions {
            zones: Some(vec!["a".into(), "b".into()]),
            ..ChoiceOptions::default()
        };
        let choice = cheapest_class(
            &catalog,
            Need {
                cpu_cores: 1.0,
                memory_bytes: 0.0,
            },
            None,
            &options,
        )
        .unwrap();
        assert_eq!(choice.best().offer.class, "general.large");
        let compute = choice
            .ranked
            .iter()
            .find(|f| f.offer.class == "compute.large")
            .unwrap();
        assert_eq!(compute.offer.per_hour, usd("0.105"));
        assert!(
            choice
                .ranked
                .iter()
                .all(|f| f.offer.class != "compute.xlarge")
        );
        // The current class missing from a zone is named.
        let err = cheapest_class(
            &catalog,
            Need {
                cpu_cores: 1.0,
                memory_bytes: 0.0,
            },
            Some(&current("compute.xlarge", 1)),
            &options,
        )
        .unwrap_err();
        assert!(matches!(err, ChoiceError::NotOffered(_)), "{err:?}");
        assert!(err.to_string().contains("zone of a, b"), "{err}");
    }

    #[test]
    fn prices_in_two_currencies_are_refused() {
        let mut catalog = catalog();
        for o in &mut catalog[0].offerings {
            o.price = price("0.09", "EUR");
        }
        let err = cheapest_class(
            &catalog,
            Need {
                cpu_cores: 1.0,
                memory_bytes: 0.0,
            },
            None,
            &ChoiceOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ChoiceError::MixedCurrencies(vec!["EUR".into(), "USD".into()])
        );
    }
}
