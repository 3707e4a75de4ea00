//! The simulated cloud's built-in instance catalog: a few general, compute, memory and
//! burstable classes in three zones, on-demand and spot, priced in USD per hour (prices in the
//! range of the public clouds' list prices, with spot prices varying a little by zone).

use crate::model::{
    Architecture, CapacityType, InstanceClass, InstanceFamily, Money, Offering, Price, PriceSource,
    RateUnit,
};

/// The zones of the built-in catalog.
pub const DEFAULT_ZONES: [&str; 3] = ["sim-1a", "sim-1b", "sim-1c"];

/// The class a simulated group gets when none is named.
pub const DEFAULT_INSTANCE_CLASS: &str = "general.large";

/// The price source every simulated price carries.
pub fn sim_price_source() -> PriceSource {
    PriceSource {
        kind: "sim".to_owned(),
        detail: "simulated cloud catalog".to_owned(),
    }
}

/// An hourly USD price from the simulated catalog.
pub fn sim_price(per_hour: f64) -> Price {
    Price {
        amount: Money::usd_f64(per_hour),
        unit: RateUnit::PerHour,
        source: sim_price_source(),
    }
}

/// Offerings in `zones`: on-demand at `on_demand_per_hour` everywhere, spot at
/// `spot_per_hour` adjusted by a small per-zone factor.
pub fn offerings(zones: &[&str], on_demand_per_hour: f64, spot_per_hour: f64) -> Vec<Offering> {
    const SPOT_ZONE_FACTOR: [f64; 3] = [1.0, 1.06, 0.95];
    let mut out = Vec::with_capacity(zones.len() * 2);
    for (i, zone) in zones.iter().enumerate() {
        out.push(Offering {
            zone: (*zone).to_owned(),
            capacity_type: CapacityType::OnDemand,
            price: sim_price(on_demand_per_hour),
        });
        let factor = SPOT_ZONE_FACTOR[i % SPOT_ZONE_FACTOR.len()];
        out.push(Offering {
            zone: (*zone).to_owned(),
            capacity_type: CapacityType::Spot,
            price: sim_price((spot_per_hour * factor * 10_000.0).round() / 10_000.0),
        });
    }
    out
}

/// The built-in catalog.
pub fn default_catalog() -> Vec<InstanceClass> {
    // (name, family, vCPUs, memory GiB, on-demand $/h, spot $/h)
    let table: [(&str, InstanceFamily, f64, u64, f64, f64); 9] = [
        (
            "burstable.medium",
            InstanceFamily::Burstable,
            2.0,
            4,
            0.0416,
            0.0125,
        ),
        (
            "general.large",
            InstanceFamily::General,
            2.0,
            8,
            0.096,
            0.036,
        ),
        (
            "general.xlarge",
            InstanceFamily::General,
            4.0,
            16,
            0.192,
            0.072,
        ),
        (
            "general.2xlarge",
            InstanceFamily::General,
            8.0,
            32,
            0.384,
            0.144,
        ),
        (
            "compute.large",
            InstanceFamily::Compute,
            2.0,
            4,
            0.085,
            0.032,
        ),
        (
            "compute.xlarge",
            InstanceFamily::Compute,
            4.0,
            8,
            0.17,
            0.064,
        ),
        (
            "compute.2xlarge",
            InstanceFamily::Compute,
            8.0,
            16,
            0.34,
            0.128,
        ),
        (
            "memory.large",
            InstanceFamily::Memory,
            2.0,
            16,
            0.126,
            0.047,
        ),
        (
            "memory.xlarge",
            InstanceFamily::Memory,
            4.0,
            32,
            0.252,
            0.094,
        ),
    ];
    table
        .into_iter()
        .map(|(name, family, vcpus, mem_gib, od, spot)| InstanceClass {
            name: name.to_owned(),
            family,
            vcpus,
            memory_mib: mem_gib * 1024,
            gpus: 0,
            architecture: Architecture::X86_64,
            network_gbps: Some(if vcpus >= 8.0 { 10.0 } else { 5.0 }),
            offerings: offerings(&DEFAULT_ZONES, od, spot),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_is_offered_on_demand_and_spot_in_every_zone_with_spot_cheaper() {
        let catalog = default_catalog();
        assert!(catalog.iter().any(|c| c.name == DEFAULT_INSTANCE_CLASS));
        for class in &catalog {
            for zone in DEFAULT_ZONES {
                let od = class
                    .offerings
                    .iter()
                    .find(|o| o.zone == zone && o.capacity_type == CapacityType::OnDemand)
                    .unwrap();
                let spot = class
                    .offerings
                    .iter()
                    .find(|o| o.zone == zone && o.capacity_type == CapacityType::Spot)
                    .unwrap();
                assert!(
                    spot.price.per_hour() < od.price.per_hour(),
                    "{}",
                    class.name
                );
                assert_eq!(od.price.source.kind, "sim");
            }
        }
    }
}
