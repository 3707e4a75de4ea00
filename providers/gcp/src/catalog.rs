//! The catalog: machine types of a zone mapped to neutral families, priced per vCPU-hour and
//! GiB-hour from the Cloud Billing Catalog API (on-demand and spot) with a shipped snapshot.
//!
//! | machine series | family |
//! |---|---|
//! | `e2` shared-core (`e2-micro`, `e2-small`, `e2-medium`), `f1`, `g1` | burstable |
//! | `e2`, `n1`, `n2`, `n2d`, `n4`, `t2d`, `t2a` | general (`-highmem` memory, `-highcpu` compute) |
//! | `c2`, `c2d`, `c3`, `c3d`, `c4`, `c4a`, `h3` | compute |
//! | `m1`, `m2`, `m3` | memory |
//! | `a2`, `a3`, `g2` | accelerated |
//! | `z3` | storage |
//!
//! A machine type costs vCPUs x the series' core rate + GiB x its RAM rate, in the zone's
//! region; an E2 shared-core type is billed for its fraction of a core ([`billed_cores`]).
//! Machine types without both rates (another region, `f1-micro`, `g1-small`, a series the
//! catalog does not price) are left out of the catalog: a class is listed with its prices.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use google_cloud_billing_v1::client::CloudCatalog;
use google_cloud_gax::paginator::ItemPaginator;
use hoist_api::{
    Architecture, CapacityType, Currency, Decimal, ErrorKind, InstanceClass, InstanceFamily, Money,
    Offering, Price, PriceSource, RateUnit, Result,
};

use crate::compute::MachineKind;
use crate::errors::{from_gax, local};

/// The Cloud Billing Catalog service id of Compute Engine.
pub const COMPUTE_ENGINE_SERVICE: &str = "6F81-5844-456A";

/// The shipped snapshot (CSV with `#` comments carrying its source and date).
pub const SHIPPED_PRICES: &str = include_str!("../data/gce-prices.csv");

/// The most SKUs read per refresh (Compute Engine lists thousands, licences included).
const MAX_SKUS: usize = 500_000;

/// What a rate prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// One vCPU for an hour.
    Core,
    /// One GiB of memory for an hour.
    Ram,
}

/// (region, series, component, capacity type).
pub type RateKey = (String, String, Component, CapacityType);

/// The neutral family of a machine type.
pub fn family_of(name: &str, shared_cpu: bool) -> InstanceFamily {
    let series = name.split('-').next().unwrap_or(name);
    if shared_cpu || matches!(series, "f1" | "g1") {
        return InstanceFamily::Burstable;
    }
    if name.contains("-highmem") || name.contains("-megamem") || name.contains("-ultramem") {
        return InstanceFamily::Memory;
    }
    if name.contains("-highcpu") {
        return InstanceFamily::Compute;
    }
    match series {
        "c2" | "c2d" | "c3" | "c3d" | "c4" | "c4a" | "c4d" | "h3" => InstanceFamily::Compute,
        "m1" | "m2" | "m3" | "m4" => InstanceFamily::Memory,
        "a2" | "a3" | "a4" | "g2" => InstanceFamily::Accelerated,
        "z3" => InstanceFamily::Storage,
        _ => InstanceFamily::General,
    }
}

/// The series and component a Compute Engine SKU description prices, and whether it is spot:
/// `N2 Instance Core running in Americas` is (n2, core, on-demand); `Spot Preemptible N2D AMD
/// Instance Ram running in Americas` is (n2d, ram, spot). Custom, sole-tenancy, commitment and
/// other SKUs are `None`.
pub fn parse_description(description: &str) -> Option<(String, Component, bool)> {
    let (spot, rest) = match description
        .strip_prefix("Spot Preemptible ")
        .or_else(|| description.strip_prefix("Preemptible "))
    {
        Some(rest) => (true, rest),
        None => (false, description),
    };
    let rest = rest.split(" running in ").next()?;
    for skip in [
        "Custom",
        "Sole Tenancy",
        "Commitment",
        "Extended",
        "Premium",
        "Licensing",
    ] {
        if rest.contains(skip) {
            return None;
        }
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    let component = match *words.last()? {
        "Core" => Component::Core,
        "Ram" => Component::Ram,
        _ => return None,
    };
    let series = match rest {
        r if r.starts_with("Compute optimized") => "c2".to_owned(),
        r if r.starts_with("Memory-optimized") => "m1".to_owned(),
        _ => {
            let first = words.first()?.to_ascii_lowercase();
            let middle = &words[1..words.len() - 1];
            let known = middle
                .iter()
                .all(|w| matches!(*w, "Instance" | "AMD" | "Predefined" | "Arm"));
            if !known || !first.chars().all(|c| c.is_ascii_alphanumeric()) {
                return None;
            }
            first
        }
    };
    Some((series, component, spot))
}

/// Rates per (region, series, component, capacity type), in one currency, each with its
/// source.
#[derive(Debug, Clone)]
pub struct PriceBook {
    currency: Currency,
    rates: BTreeMap<RateKey, (Decimal, PriceSource)>,
    /// When the last live refresh succeeded.
    pub refreshed_at: Option<DateTime<Utc>>,
}

/// A rate and its price per unit-hour.
pub type Rate = (RateKey, Decimal);

/// The snapshot's rows, its `source:` and `date:`; fails with the line of a malformed row.
pub fn parse_snapshot(text: &str) -> std::result::Result<(Vec<Rate>, String, String), String> {
    let mut rows = Vec::new();
    let (mut source, mut date) = (String::new(), String::new());
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.trim();
            if let Some(s) = comment.strip_prefix("source:") {
                source = s.trim().to_owned();
            } else if let Some(d) = comment.strip_prefix("date:") {
                date = d.trim().to_owned();
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [region, series, component, capacity_type, price] = fields[..] else {
            return Err(format!(
                "line {}: expected region,series,component,capacity_type,usd_per_unit_hour",
                n + 1
            ));
        };
        let component = match component {
            "core" => Component::Core,
            "ram" => Component::Ram,
            other => return Err(format!("line {}: component `{other}`", n + 1)),
        };
        let capacity_type = match capacity_type {
            "on_demand" => CapacityType::OnDemand,
            "spot" => CapacityType::Spot,
            other => return Err(format!("line {}: capacity type `{other}`", n + 1)),
        };
        let price: Decimal = price
            .parse()
            .map_err(|_| format!("line {}: price `{price}` is not a number", n + 1))?;
        if price <= Decimal::ZERO {
            return Err(format!("line {}: price must be positive", n + 1));
        }
        rows.push((
            (
                region.to_owned(),
                series.to_owned(),
                component,
                capacity_type,
            ),
            price,
        ));
    }
    if source.is_empty() || date.is_empty() {
        return Err("the snapshot must carry `# source:` and `# date:` lines".to_owned());
    }
    Ok((rows, source, date))
}

impl PriceBook {
    /// The shipped snapshot (USD).
    pub fn shipped() -> Self {
        let mut book = PriceBook {
            currency: Currency::usd(),
            rates: BTreeMap::new(),
            refreshed_at: None,
        };
        // The snapshot is part of the crate and a unit test keeps it valid.
        if let Ok((rows, source, date)) = parse_snapshot(SHIPPED_PRICES) {
            let source = PriceSource {
                kind: "table".to_owned(),
                detail: format!("hoist-gcp snapshot of {date}: {source}"),
            };
            for (key, price) in rows {
                book.rates.insert(key, (price, source.clone()));
            }
        }
        book
    }

    /// Replaces every rate with those read live.
    pub fn replace(
        &mut self,
        currency: Currency,
        rates: Vec<(RateKey, Decimal)>,
        source: PriceSource,
        at: DateTime<Utc>,
    ) {
        self.currency = currency;
        self.rates = rates
            .into_iter()
            .map(|(k, v)| (k, (v, source.clone())))
            .collect();
        self.refreshed_at = Some(at);
    }

    /// The price per hour of a machine type in `region`, when both its rates are known.
    pub fn price(
        &self,
        region: &str,
        machine: &MachineKind,
        capacity_type: CapacityType,
    ) -> Option<Price> {
        let cores = billed_cores(machine)?;
        let series = machine.name.split('-').next()?.to_owned();
        let rate = |c: Component| {
            self.rates
                .get(&(region.to_owned(), series.clone(), c, capacity_type))
        };
        let (core, source) = rate(Component::Core)?;
        let (ram, _) = rate(Component::Ram)?;
        let gib = Decimal::from(machine.memory_mib) / Decimal::from(1024);
        let amount = core * cores + ram * gib;
        Some(Price {
            amount: Money::new(amount.round_dp(6), self.currency.clone()),
            unit: RateUnit::PerHour,
            source: source.clone(),
        })
    }
}

/// The vCPUs a machine type is billed for: its vCPUs, or for the E2 shared-core types the
/// fraction of a core they get (`e2-micro` 0.25, `e2-small` 0.5, `e2-medium` 1). Other
/// shared-core types (`f1-micro`, `g1-small`) have SKUs of their own and are not priced.
pub fn billed_cores(machine: &MachineKind) -> Option<Decimal> {
    if !machine.shared_cpu {
        return Some(Decimal::from(machine.vcpus));
    }
    match machine.name.as_str() {
        "e2-micro" => Some(Decimal::new(25, 2)),
        "e2-small" => Some(Decimal::new(5, 1)),
        "e2-medium" => Some(Decimal::ONE),
        _ => None,
    }
}

/// Reads the Compute Engine core and RAM rates of every region, on-demand and spot, in
/// `currency`.
pub async fn fetch_rates(
    client: &CloudCatalog,
    currency: &Currency,
) -> Result<Vec<(RateKey, Decimal)>> {
    let op = "refresh_prices";
    let mut items = client
        .list_skus()
        .set_parent(format!("services/{COMPUTE_ENGINE_SERVICE}"))
        .set_currency_code(currency.0.clone())
        .by_item();
    let mut rates = BTreeMap::new();
    let mut read = 0usize;
    while let Some(sku) = items.next().await {
        let sku = sku.map_err(|e| from_gax(op, e))?;
        read += 1;
        if read > MAX_SKUS {
            return Err(local(
                ErrorKind::Other,
                op,
                format!("the Cloud Billing Catalog sent more than {MAX_SKUS} SKUs"),
            ));
        }
        let usage = sku
            .category
            .as_ref()
            .map(|c| c.usage_type.as_str())
            .unwrap_or_default();
        if !matches!(usage, "OnDemand" | "Preemptible") {
            continue;
        }
        let Some((series, component, spot)) = parse_description(&sku.description) else {
            continue;
        };
        if spot != (usage == "Preemptible") {
            continue;
        }
        let Some(rate) = sku
            .pricing_info
            .first()
            .and_then(|p| p.pricing_expression.as_ref())
            .and_then(|e| e.tiered_rates.last())
            .and_then(|t| t.unit_price.as_ref())
        else {
            continue;
        };
        if !rate.currency_code.is_empty() && rate.currency_code != currency.0 {
            continue;
        }
        let amount = Decimal::from(rate.units) + Decimal::new(i64::from(rate.nanos), 9);
        if amount <= Decimal::ZERO {
            continue;
        }
        let capacity_type = if spot {
            CapacityType::Spot
        } else {
            CapacityType::OnDemand
        };
        for region in &sku.service_regions {
            rates.insert(
                (region.clone(), series.clone(), component, capacity_type),
                amount,
            );
        }
    }
    Ok(rates.into_iter().collect())
}

/// The instance class of a machine type in `zone`, with its offerings from `book`.
pub fn instance_class(machine: &MachineKind, zone: &str, book: &PriceBook) -> InstanceClass {
    let region = zone.rsplit_once('-').map_or(zone, |(r, _)| r);
    let offerings = [CapacityType::OnDemand, CapacityType::Spot]
        .into_iter()
        .filter_map(|capacity_type| {
            book.price(region, machine, capacity_type)
                .map(|price| Offering {
                    zone: zone.to_owned(),
                    capacity_type,
                    price,
                })
        })
        .collect();
    InstanceClass {
        name: machine.name.clone(),
        family: family_of(&machine.name, machine.shared_cpu),
        vcpus: f64::from(machine.vcpus),
        memory_mib: machine.memory_mib,
        gpus: machine.gpus,
        architecture: if machine.arm64 {
            Architecture::Arm64
        } else {
            Architecture::X86_64
        },
        network_gbps: None,
        offerings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(name: &str, vcpus: u32, memory_mib: u64) -> MachineKind {
        MachineKind {
            name: name.to_owned(),
            vcpus,
            memory_mib,
            shared_cpu: false,
            gpus: 0,
            arm64: false,
        }
    }

    #[test]
    fn descriptions_parse_to_series_and_component() {
        let cases = [
            (
                "N2 Instance Core running in Americas",
                Some(("n2", Component::Core, false)),
            ),
            (
                "N2 Instance Ram running in Americas",
                Some(("n2", Component::Ram, false)),
            ),
            (
                "Spot Preemptible N2D AMD Instance Core running in Americas",
                Some(("n2d", Component::Core, true)),
            ),
            (
                "N1 Predefined Instance Ram running in EMEA",
                Some(("n1", Component::Ram, false)),
            ),
            (
                "Compute optimized Core running in Americas",
                Some(("c2", Component::Core, false)),
            ),
            (
                "E2 Instance Core running in Americas",
                Some(("e2", Component::Core, false)),
            ),
            ("Custom Instance Core running in Americas", None),
            ("Commitment v1: N2 Cpu in Americas for 1 Year", None),
            ("Storage PD Capacity", None),
        ];
        for (description, expected) in cases {
            let got = parse_description(description);
            let expected = expected.map(|(s, c, p)| (s.to_owned(), c, p));
            assert_eq!(got, expected, "{description}");
        }
    }

    #[test]
    fn the_snapshot_prices_machine_types_by_core_and_ram() {
        let (rows, source, _) = parse_snapshot(SHIPPED_PRICES).unwrap();
        assert!(rows.len() >= 10 && source.contains("Catalog"));
        let book = PriceBook::shipped();
        let p = book
            .price(
                "us-central1",
                &machine("n2-standard-2", 2, 8192),
                CapacityType::OnDemand,
            )
            .unwrap();
        // 2 x 0.031611 + 8 x 0.004237
        assert_eq!(p.amount.amount.to_string(), "0.097118");
        assert!(
            book.price(
                "us-central1",
                &machine("n2-standard-2", 2, 8192),
                CapacityType::Spot
            )
            .is_none()
        );
        let mut shared = machine("e2-medium", 2, 4096);
        shared.shared_cpu = true;
        // One core's worth: 0.021811 + 4 x 0.002923, the listed price of e2-medium.
        let p = book
            .price("us-central1", &shared, CapacityType::OnDemand)
            .unwrap();
        assert_eq!(p.amount.amount.to_string(), "0.033503");
        let mut f1 = machine("f1-micro", 1, 614);
        f1.shared_cpu = true;
        assert!(
            book.price("us-central1", &f1, CapacityType::OnDemand)
                .is_none()
        );
        assert_eq!(family_of("e2-medium", true), InstanceFamily::Burstable);
        assert_eq!(family_of("n2-highmem-4", false), InstanceFamily::Memory);
        assert_eq!(family_of("c3-standard-8", false), InstanceFamily::Compute);
        assert_eq!(
            family_of("a2-highgpu-1g", false),
            InstanceFamily::Accelerated
        );
    }
}
