//! The catalog: VM sizes from the resource SKUs API, mapped to neutral families, priced from the
//! Azure Retail Prices API (on-demand and spot) with a shipped snapshot for offline use.
//!
//! | size series (after `Standard_`) | family |
//! |---|---|
//! | `B` | burstable |
//! | `A`, `D` (and `DC`) | general |
//! | `F`, `FX`, `H` | compute |
//! | `E`, `M`, `G` | memory |
//! | `L` | storage |
//! | `N` (`NC`, `ND`, `NV`, ...) | accelerated |
//!
//! Zones are named `{region}-{zone}` (`eastus-1`), as Kubernetes labels them on AKS nodes; a
//! regional scale set's instances are in zone `{region}`.

use std::collections::BTreeMap;

use azure_core::Url;
use chrono::{DateTime, Utc};
use hoist_api::{
    Architecture, CapacityType, Currency, Decimal, ErrorKind, InstanceClass, InstanceFamily, Money,
    Offering, Price, PriceSource, RateUnit, Result,
};
use serde::Deserialize;

use crate::compute::VmSku;
use crate::errors::local;
use crate::rest::Rest;

/// The shipped snapshot (CSV with `#` comments carrying its source and date).
pub const SHIPPED_PRICES: &str = include_str!("../data/retail-prices.csv");

/// The Retail Prices API version.
pub const PRICES_API_VERSION: &str = "2023-01-01-preview";

/// Pages of the Retail Prices API read at most per refresh (100 items each; a region has a few
/// thousand VM meters).
const MAX_PRICE_PAGES: usize = 400;

/// The neutral family of a VM size.
pub fn family_of(size: &str) -> InstanceFamily {
    let series = size
        .strip_prefix("Standard_")
        .or_else(|| size.strip_prefix("Basic_"))
        .unwrap_or(size);
    let letters: String = series
        .chars()
        .take_while(|c| c.is_ascii_uppercase())
        .collect();
    match letters.chars().next() {
        Some('B') => InstanceFamily::Burstable,
        Some('N') => InstanceFamily::Accelerated,
        Some('F' | 'H') => InstanceFamily::Compute,
        Some('E' | 'M' | 'G') => InstanceFamily::Memory,
        Some('L') => InstanceFamily::Storage,
        _ => InstanceFamily::General,
    }
}

/// The zone name of an instance: `{region}-{zone}`, or `{region}` when regional.
pub fn zone_name(location: &str, zone: Option<&str>) -> String {
    match zone {
        Some(z) if !z.is_empty() => format!("{location}-{z}"),
        _ => location.to_owned(),
    }
}

/// Prices by (region, size, capacity type), each with its source, in one currency.
#[derive(Debug, Clone)]
pub struct PriceBook {
    currency: Currency,
    prices: BTreeMap<(String, String, CapacityType), (Decimal, PriceSource)>,
    /// When the last live refresh succeeded.
    pub refreshed_at: Option<DateTime<Utc>>,
}

fn key(region: &str, size: &str, capacity_type: CapacityType) -> (String, String, CapacityType) {
    (
        region.to_ascii_lowercase(),
        size.to_ascii_lowercase(),
        capacity_type,
    )
}

/// One row of the snapshot: region, size, capacity type, price per hour.
pub type SnapshotRow = (String, String, CapacityType, Decimal);

/// The snapshot's rows, its `source:` and `date:`; fails with the line of a malformed row.
pub fn parse_snapshot(
    text: &str,
) -> std::result::Result<(Vec<SnapshotRow>, String, String), String> {
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
        let [region, size, capacity_type, price] = fields[..] else {
            return Err(format!(
                "line {}: expected region,arm_sku_name,capacity_type,usd_per_hour",
                n + 1
            ));
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
        rows.push((region.to_owned(), size.to_owned(), capacity_type, price));
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
            prices: BTreeMap::new(),
            refreshed_at: None,
        };
        // The snapshot is part of the crate and a unit test keeps it valid.
        if let Ok((rows, source, date)) = parse_snapshot(SHIPPED_PRICES) {
            let source = PriceSource {
                kind: "table".to_owned(),
                detail: format!("hoist-azure snapshot of {date}: {source}"),
            };
            for (region, size, capacity_type, price) in rows {
                book.prices
                    .insert(key(&region, &size, capacity_type), (price, source.clone()));
            }
        }
        book
    }

    /// The book's currency.
    pub fn currency(&self) -> &Currency {
        &self.currency
    }

    /// How many prices the book holds.
    pub fn len(&self) -> usize {
        self.prices.len()
    }

    /// Whether the book holds no price.
    pub fn is_empty(&self) -> bool {
        self.prices.is_empty()
    }

    /// The price per hour of `size` in `region`.
    pub fn price(&self, region: &str, size: &str, capacity_type: CapacityType) -> Option<Price> {
        let (amount, source) = self.prices.get(&key(region, size, capacity_type))?;
        Some(Price {
            amount: Money::new(*amount, self.currency.clone()),
            unit: RateUnit::PerHour,
            source: source.clone(),
        })
    }

    /// Replaces the prices of `region` with those read live (a different currency replaces
    /// the whole book).
    pub fn replace_region(
        &mut self,
        region: &str,
        currency: Currency,
        prices: Vec<(String, CapacityType, Decimal)>,
        source: PriceSource,
        at: DateTime<Utc>,
    ) {
        if currency != self.currency {
            self.prices.clear();
            self.currency = currency;
        }
        let region_key = region.to_ascii_lowercase();
        self.prices.retain(|(r, _, _), _| *r != region_key);
        for (size, capacity_type, price) in prices {
            self.prices
                .insert(key(region, &size, capacity_type), (price, source.clone()));
        }
        self.refreshed_at = Some(at);
    }
}

/// One item of the Retail Prices API.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PriceItem {
    #[serde(default)]
    currency_code: String,
    #[serde(default)]
    retail_price: f64,
    #[serde(default)]
    arm_sku_name: String,
    #[serde(default)]
    sku_name: String,
    #[serde(default)]
    meter_name: String,
    #[serde(default)]
    product_name: String,
    #[serde(default, rename = "type")]
    price_type: String,
    #[serde(default)]
    unit_of_measure: String,
    #[serde(default)]
    effective_start_date: String,
    #[serde(default = "primary")]
    is_primary_meter_region: bool,
}

fn primary() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct PricePage {
    #[serde(rename = "Items", default)]
    items: Vec<PriceItem>,
    #[serde(rename = "NextPageLink", default)]
    next_page_link: Option<String>,
    #[serde(rename = "BillingCurrency", default)]
    billing_currency: Option<String>,
}

/// Reads the Linux consumption prices of `region` in `currency` from the Retail Prices API at
/// `endpoint`: on-demand and spot per size from the primary meters, Windows, Low Priority and
/// Dev/Test meters left out.
pub async fn fetch_prices(
    rest: &Rest,
    endpoint: &str,
    region: &str,
    currency: &Currency,
) -> Result<(Currency, Vec<(String, CapacityType, Decimal)>)> {
    let op = "refresh_prices";
    let mut url = Url::parse(endpoint)
        .and_then(|u| u.join("/api/retail/prices"))
        .map_err(|e| local(ErrorKind::Config, op, format!("prices endpoint: {e}")))?;
    // Since 2023-01-01-preview the API returns primary and non-primary meters alike (only the
    // primary ones are what a region bills) and compares filter values case-sensitively
    // (region names are lower case).
    let region = region.to_ascii_lowercase();
    url.query_pairs_mut()
        .append_pair("api-version", PRICES_API_VERSION)
        .append_pair("currencyCode", &format!("'{}'", currency.0))
        .append_pair("meterRegion", "'primary'")
        .append_pair(
            "$filter",
            &format!(
                "serviceName eq 'Virtual Machines' and armRegionName eq '{region}' and priceType eq 'Consumption'"
            ),
        );
    let mut latest: BTreeMap<(String, CapacityType), (String, Decimal)> = BTreeMap::new();
    let mut billing_currency = currency.clone();
    let mut next = Some(url);
    let mut pages = 0;
    while let Some(url) = next.take() {
        pages += 1;
        if pages > MAX_PRICE_PAGES {
            return Err(local(
                ErrorKind::Other,
                op,
                format!("the Retail Prices API sent more than {MAX_PRICE_PAGES} pages"),
            ));
        }
        let page: PricePage = rest
            .get(op, &url)
            .await?
            .json(op, "the Retail Prices API")?;
        if let Some(c) = page.billing_currency.filter(|c| !c.is_empty()) {
            billing_currency = Currency(c);
        }
        for item in page.items {
            if item.price_type != "Consumption"
                || item.unit_of_measure != "1 Hour"
                || item.arm_sku_name.is_empty()
                || item.product_name.contains("Windows")
                || item.sku_name.contains("Low Priority")
                || item.meter_name.contains("Low Priority")
                || !item.is_primary_meter_region
                || !(item.retail_price.is_finite() && item.retail_price > 0.0)
            {
                continue;
            }
            if !item.currency_code.is_empty() && item.currency_code != billing_currency.0 {
                continue;
            }
            let capacity_type =
                if item.sku_name.contains("Spot") || item.meter_name.contains("Spot") {
                    CapacityType::Spot
                } else {
                    CapacityType::OnDemand
                };
            let Some(price) = Money::from_f64(item.retail_price, billing_currency.clone()) else {
                continue;
            };
            let entry = latest
                .entry((item.arm_sku_name.clone(), capacity_type))
                .or_insert((String::new(), price.amount));
            if item.effective_start_date >= entry.0 {
                *entry = (item.effective_start_date, price.amount);
            }
        }
        next = page
            .next_page_link
            .filter(|l| !l.is_empty())
            .and_then(|l| Url::parse(&l).ok());
    }
    Ok((
        billing_currency,
        latest
            .into_iter()
            .map(|((size, capacity_type), (_, price))| (size, capacity_type, price))
            .collect(),
    ))
}

/// The instance class of a size offered in `location`, with its offerings per zone from `book`.
pub fn instance_class(sku: &VmSku, location: &str, book: &PriceBook) -> InstanceClass {
    let zones: Vec<String> = if sku.zones.is_empty() {
        vec![zone_name(location, None)]
    } else {
        sku.zones
            .iter()
            .map(|z| zone_name(location, Some(z)))
            .collect()
    };
    let mut offerings = Vec::new();
    for capacity_type in [CapacityType::OnDemand, CapacityType::Spot] {
        if let Some(price) = book.price(location, &sku.name, capacity_type) {
            for zone in &zones {
                offerings.push(Offering {
                    zone: zone.clone(),
                    capacity_type,
                    price: price.clone(),
                });
            }
        }
    }
    InstanceClass {
        name: sku.name.clone(),
        family: family_of(&sku.name),
        vcpus: sku.vcpus,
        memory_mib: (sku.memory_gib * 1024.0).round() as u64,
        gpus: sku.gpus,
        architecture: if sku.arm64 {
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

    #[test]
    fn the_snapshot_is_valid_and_priced() {
        let (rows, source, date) = parse_snapshot(SHIPPED_PRICES).unwrap();
        assert!(rows.len() >= 20);
        assert!(source.contains("Retail Prices"));
        assert!(!date.is_empty());
        let book = PriceBook::shipped();
        let p = book
            .price("EastUS", "standard_d2s_v5", CapacityType::OnDemand)
            .unwrap();
        assert_eq!(p.amount.to_string(), "0.10 USD");
        assert_eq!(p.source.kind, "table");
        assert!(
            book.price("eastus", "Standard_D2s_v5", CapacityType::Spot)
                .is_none()
        );
    }

    #[test]
    fn sizes_map_to_families() {
        let cases = [
            ("Standard_B2s", InstanceFamily::Burstable),
            ("Standard_D2s_v5", InstanceFamily::General),
            ("Standard_DC2s_v3", InstanceFamily::General),
            ("Standard_F4s_v2", InstanceFamily::Compute),
            ("Standard_HB120rs_v3", InstanceFamily::Compute),
            ("Standard_E8as_v5", InstanceFamily::Memory),
            ("Standard_M128ms", InstanceFamily::Memory),
            ("Standard_L8s_v3", InstanceFamily::Storage),
            ("Standard_NC6s_v3", InstanceFamily::Accelerated),
            ("Standard_A2_v2", InstanceFamily::General),
        ];
        for (size, family) in cases {
            assert_eq!(family_of(size), family, "{size}");
        }
        assert_eq!(zone_name("eastus", Some("2")), "eastus-2");
        assert_eq!(zone_name("eastus", None), "eastus");
    }
}
