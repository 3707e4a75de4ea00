//! Prices: the table shipped in the crate and the live refreshes on top of it.
//!
//! [`PriceBook`] holds one price per (instance type, zone or region, capacity type), each with a
//! [`PriceSource`] that says where it came from: `table` for the shipped file
//! (`data/ec2-on-demand-prices.csv`, its source and date in the detail) or `live` for prices read
//! from the EC2 spot price history or the Price List API.

use std::collections::BTreeMap;

use hoist_api::{CapacityType, Money, Offering, Price, PriceSource, RateUnit};

/// The shipped on-demand price table (CSV with `#` comments carrying its source and date).
pub const SHIPPED_TABLE: &str = include_str!("../../data/ec2-on-demand-prices.csv");

/// One row of the shipped table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRow {
    /// AWS region.
    pub region: String,
    /// EC2 instance type.
    pub instance_type: String,
    /// On-demand price, USD per hour.
    pub usd_per_hour: f64,
}

/// The shipped table's rows, its `source:` and `date:` lines. Fails with the line number of a
/// malformed row (the table is part of the crate, so a unit test keeps it valid).
pub fn parse_table(text: &str) -> Result<(Vec<TableRow>, String, String), String> {
    let mut rows = Vec::new();
    let mut source = String::new();
    let mut date = String::new();
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
        let [region, instance_type, price] = fields[..] else {
            return Err(format!(
                "line {}: expected region,instance_type,usd_per_hour",
                n + 1
            ));
        };
        let usd_per_hour: f64 = price
            .parse()
            .map_err(|_| format!("line {}: price `{price}` is not a number", n + 1))?;
        if !(usd_per_hour.is_finite() && usd_per_hour > 0.0) {
            return Err(format!("line {}: price must be positive", n + 1));
        }
        rows.push(TableRow {
            region: region.to_owned(),
            instance_type: instance_type.to_owned(),
            usd_per_hour,
        });
    }
    if source.is_empty() || date.is_empty() {
        return Err("the table must carry `# source:` and `# date:` lines".to_owned());
    }
    Ok((rows, source, date))
}

/// Prices by (instance type, zone or region, capacity type), each with its source.
#[derive(Debug, Clone, Default)]
pub struct PriceBook {
    region: String,
    prices: BTreeMap<(String, String, CapacityType), Price>,
}

impl PriceBook {
    /// An empty book for `region`.
    pub fn empty(region: &str) -> Self {
        PriceBook {
            region: region.to_owned(),
            prices: BTreeMap::new(),
        }
    }

    /// The shipped table's prices for `region` (none when the table has no row for it).
    pub fn shipped(region: &str) -> Self {
        let mut book = Self::empty(region);
        // The shipped table is checked by a unit test; a broken one leaves the book empty.
        if let Ok((rows, source, date)) = parse_table(SHIPPED_TABLE) {
            let detail = format!("hoist-aws shipped table ({source}; as of {date})");
            for row in rows.into_iter().filter(|r| r.region == region) {
                book.insert(
                    &row.instance_type,
                    region,
                    CapacityType::OnDemand,
                    Price {
                        amount: Money::usd_f64(row.usd_per_hour),
                        unit: RateUnit::PerHour,
                        source: PriceSource {
                            kind: "table".to_owned(),
                            detail: detail.clone(),
                        },
                    },
                );
            }
        }
        book
    }

    /// The region this book prices.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Sets a price; `location` is a zone or the region (for prices that do not vary by zone).
    pub fn insert(
        &mut self,
        instance_type: &str,
        location: &str,
        capacity_type: CapacityType,
        price: Price,
    ) {
        self.prices.insert(
            (instance_type.to_owned(), location.to_owned(), capacity_type),
            price,
        );
    }

    /// The price in `zone`, or the region-wide price when there is no zone-specific one.
    pub fn get(
        &self,
        instance_type: &str,
        zone: &str,
        capacity_type: CapacityType,
    ) -> Option<&Price> {
        self.prices
            .get(&(instance_type.to_owned(), zone.to_owned(), capacity_type))
            .or_else(|| {
                self.prices
                    .get(&(instance_type.to_owned(), self.region.clone(), capacity_type))
            })
    }

    /// Offerings of `instance_type`: one per zone in `zones` for each capacity type priced
    /// there (directly or region-wide), plus zone-specific prices for zones not listed.
    pub fn offerings(&self, instance_type: &str, zones: &[String]) -> Vec<Offering> {
        let mut out = Vec::new();
        for capacity_type in [
            CapacityType::OnDemand,
            CapacityType::Spot,
            CapacityType::Reserved,
        ] {
            let mut seen = Vec::new();
            for zone in zones {
                if let Some(price) = self.get(instance_type, zone, capacity_type) {
                    out.push(Offering {
                        zone: zone.clone(),
                        capacity_type,
                        price: price.clone(),
                    });
                    seen.push(zone.as_str());
                }
            }
            for ((t, location, c), price) in &self.prices {
                if t == instance_type && *c == capacity_type && !seen.contains(&location.as_str()) {
                    // Region-wide prices stand for zones only when zones are unknown.
                    if location == &self.region && !zones.is_empty() {
                        continue;
                    }
                    out.push(Offering {
                        zone: location.clone(),
                        capacity_type,
                        price: price.clone(),
                    });
                }
            }
        }
        out
    }

    /// The instance types with a price of `capacity_type` anywhere.
    pub fn priced_types(&self, capacity_type: CapacityType) -> Vec<String> {
        let mut types: Vec<String> = self
            .prices
            .keys()
            .filter(|(_, _, c)| *c == capacity_type)
            .map(|(t, _, _)| t.clone())
            .collect();
        types.dedup();
        types
    }

    /// How many prices the book holds.
    pub fn len(&self) -> usize {
        self.prices.len()
    }

    /// Whether the book holds no price.
    pub fn is_empty(&self) -> bool {
        self.prices.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_table_parses_and_names_source_and_date() {
        let (rows, source, date) = parse_table(SHIPPED_TABLE).unwrap();
        assert!(rows.len() >= 50);
        assert!(source.contains("AWS"));
        assert!(!date.is_empty());
        let book = PriceBook::shipped("us-east-1");
        let m5 = book
            .get("m5.large", "us-east-1a", CapacityType::OnDemand)
            .unwrap();
        assert_eq!(m5.per_hour(), 0.096);
        assert_eq!(m5.source.kind, "table");
        assert!(m5.source.detail.contains(&date), "{}", m5.source.detail);
        assert!(PriceBook::shipped("eu-west-1").is_empty());
    }

    #[test]
    fn malformed_rows_are_reported_with_their_line() {
        let err = parse_table("# source: x\n# date: y\nus-east-1,m5.large\n").unwrap_err();
        assert!(err.starts_with("line 3"), "{err}");
        let err = parse_table("# source: x\n# date: y\nus-east-1,m5.large,abc\n").unwrap_err();
        assert!(err.contains("not a number"), "{err}");
        assert!(parse_table("us-east-1,m5.large,1\n").is_err());
    }

    #[test]
    fn zone_prices_win_over_region_prices_and_offerings_cover_zones() {
        let mut book = PriceBook::shipped("us-east-1");
        let spot = Price {
            amount: Money::usd_f64(0.03),
            unit: RateUnit::PerHour,
            source: PriceSource {
                kind: "live".into(),
                detail: "test".into(),
            },
        };
        book.insert("m5.large", "us-east-1a", CapacityType::Spot, spot.clone());
        assert_eq!(
            book.get("m5.large", "us-east-1a", CapacityType::Spot),
            Some(&spot)
        );
        assert_eq!(book.get("m5.large", "us-east-1b", CapacityType::Spot), None);
        let zones = vec!["us-east-1a".to_owned(), "us-east-1b".to_owned()];
        let offerings = book.offerings("m5.large", &zones);
        let on_demand: Vec<_> = offerings
            .iter()
            .filter(|o| o.capacity_type == CapacityType::OnDemand)
            .map(|o| o.zone.as_str())
            .collect();
        assert_eq!(on_demand, ["us-east-1a", "us-east-1b"]);
        let spot_zones: Vec<_> = offerings
            .iter()
            .filter(|o| o.capacity_type == CapacityType::Spot)
            .map(|o| o.zone.as_str())
            .collect();
        assert_eq!(spot_zones, ["us-east-1a"]);
    }
}
