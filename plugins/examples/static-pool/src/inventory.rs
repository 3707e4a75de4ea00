//! The inventory file: the machine classes and the pools of machines the plugin manages, read
//! once at start and validated (unknown fields, duplicate ids, sizes, classes), with errors that
//! name the file and the field.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use hoist_plugin::hoist_api::{
    Architecture, CapacityType, Currency, Error, InstanceClass, InstanceFamily, Money, Offering,
    Price, PriceSource, RateUnit,
};
use serde::Deserialize;

/// A class of machine, with what one costs per hour to keep enabled.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassSpec {
    /// Class name (`r640`).
    pub name: String,
    /// Neutral family.
    #[serde(default = "general")]
    pub family: InstanceFamily,
    /// Virtual CPUs.
    pub vcpus: f64,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Accelerators.
    #[serde(default)]
    pub gpus: u32,
    /// CPU architecture.
    #[serde(default = "x86_64")]
    pub architecture: Architecture,
    /// What an enabled machine costs per hour (power, amortisation), in `currency`.
    pub price_per_hour: f64,
    /// ISO 4217 code.
    #[serde(default = "usd")]
    pub currency: String,
}

fn general() -> InstanceFamily {
    InstanceFamily::General
}
fn x86_64() -> Architecture {
    Architecture::X86_64
}
fn usd() -> String {
    "USD".to_owned()
}

/// One machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSpec {
    /// Unique id (`web-01`).
    pub id: String,
    /// Where it stands (a rack, a room, a site).
    #[serde(default = "default_zone")]
    pub zone: String,
    /// Its address, for the enable/disable commands.
    #[serde(default)]
    pub address: Option<String>,
    /// Never disabled to scale in.
    #[serde(default)]
    pub protected: bool,
}

fn default_zone() -> String {
    "default".to_owned()
}

/// A pool: the plugin's scaling group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// The group id.
    pub id: String,
    /// The class of its machines.
    pub instance_class: String,
    /// Fewest machines enabled.
    #[serde(default)]
    pub min_size: u32,
    /// Most machines enabled; at most the number of machines (the default).
    #[serde(default)]
    pub max_size: Option<u32>,
    /// The machines, in the order they are enabled.
    pub machines: Vec<MachineSpec>,
}

impl PoolSpec {
    /// The effective maximum.
    pub fn max_size(&self) -> u32 {
        self.max_size.unwrap_or(self.machines.len() as u32)
    }
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// Machine classes.
    pub classes: Vec<ClassSpec>,
    /// Pools.
    pub pools: Vec<PoolSpec>,
}

impl Inventory {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Inventory, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read the inventory {}: {e}", path.display()))
        })?;
        Self::parse(&text)
            .map_err(|e| Error::config(format!("inventory {}: {}", path.display(), e.message())))
    }

    /// Parses and validates inventory text.
    pub fn parse(text: &str) -> Result<Inventory, Error> {
        let inventory: Inventory =
            serde_saphyr::from_str(text).map_err(|e| Error::config(e.to_string()))?;
        inventory.validate()?;
        Ok(inventory)
    }

    fn validate(&self) -> Result<(), Error> {
        let mut classes = BTreeSet::new();
        for (i, class) in self.classes.iter().enumerate() {
            if !classes.insert(class.name.as_str()) {
                return Err(Error::config(format!(
                    "classes[{i}].name: class `{}` is listed twice",
                    class.name
                )));
            }
            if !(class.price_per_hour.is_finite() && (0.0..1e15).contains(&class.price_per_hour)) {
                return Err(Error::config(format!(
                    "classes[{i}].price_per_hour: must be a number from 0 to 1e15, got {}",
                    class.price_per_hour
                )));
            }
        }
        let mut pools = BTreeSet::new();
        let mut machines = BTreeMap::new();
        for (p, pool) in self.pools.iter().enumerate() {
            if !pools.insert(pool.id.as_str()) {
                return Err(Error::config(format!(
                    "pools[{p}].id: pool `{}` is listed twice",
                    pool.id
                )));
            }
            if !classes.contains(pool.instance_class.as_str()) {
                return Err(Error::config(format!(
                    "pools[{p}].instance_class: unknown class `{}` (classes: {})",
                    pool.instance_class,
                    classes.iter().copied().collect::<Vec<_>>().join(", ")
                )));
            }
            let count = pool.machines.len() as u32;
            if pool.max_size() > count {
                return Err(Error::config(format!(
                    "pools[{p}].max_size: {} is more than the pool's {count} machines",
                    pool.max_size()
                )));
            }
            if pool.min_size > pool.max_size() {
                return Err(Error::config(format!(
                    "pools[{p}].min_size: {} is above max_size {}",
                    pool.min_size,
                    pool.max_size()
                )));
            }
            for (m, machine) in pool.machines.iter().enumerate() {
                if let Some(other) = machines.insert(machine.id.as_str(), pool.id.as_str()) {
                    return Err(Error::config(format!(
                        "pools[{p}].machines[{m}].id: machine `{}` is already in pool `{other}`",
                        machine.id
                    )));
                }
            }
        }
        Ok(())
    }

    /// The pool `id`.
    pub fn pool(&self, id: &str) -> Option<&PoolSpec> {
        self.pools.iter().find(|p| p.id == id)
    }

    /// The catalog: every class, offered on demand in each zone its machines stand in.
    pub fn instance_classes(&self) -> Vec<InstanceClass> {
        self.classes
            .iter()
            .map(|class| {
                let zones: BTreeSet<&str> = self
                    .pools
                    .iter()
                    .filter(|p| p.instance_class == class.name)
                    .flat_map(|p| p.machines.iter().map(|m| m.zone.as_str()))
                    .collect();
                InstanceClass {
                    name: class.name.clone(),
                    family: class.family,
                    vcpus: class.vcpus,
                    memory_mib: class.memory_mib,
                    gpus: class.gpus,
                    architecture: class.architecture,
                    network_gbps: None,
                    offerings: zones
                        .into_iter()
                        .map(|zone| Offering {
                            zone: zone.to_owned(),
                            capacity_type: CapacityType::OnDemand,
                            price: Price {
                                // Checked finite and not negative when the inventory loaded.
                                amount: Money::from_f64(
                                    class.price_per_hour,
                                    Currency(class.currency.clone()),
                                )
                                .unwrap_or_else(|| Money::usd(Default::default())),
                                unit: RateUnit::PerHour,
                                source: PriceSource {
                                    kind: "config".to_owned(),
                                    detail: "static-pool inventory".to_owned(),
                                },
                            },
                        })
                        .collect(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "
classes:
  - { name: r640, vcpus: 32, memory_mib: 262144, price_per_hour: 0.35 }
pools:
  - id: web
    instance_class: r640
    min_size: 1
    machines:
      - { id: web-01, zone: rack-a }
      - { id: web-02, zone: rack-b }
";

    #[test]
    fn a_good_inventory_parses_with_defaults() {
        let inv = Inventory::parse(GOOD).unwrap();
        assert_eq!(inv.pools[0].max_size(), 2);
        let classes = inv.instance_classes();
        assert_eq!(classes[0].offerings.len(), 2);
        assert_eq!(classes[0].family, InstanceFamily::General);
    }

    #[test]
    fn bad_inventories_name_the_field() {
        let unknown_class = GOOD.replace("instance_class: r640", "instance_class: r740");
        let e = Inventory::parse(&unknown_class).unwrap_err();
        assert!(e.message().contains("pools[0].instance_class"), "{e}");
        let too_big = GOOD.replace("min_size: 1", "min_size: 1\n    max_size: 3");
        let e = Inventory::parse(&too_big).unwrap_err();
        assert!(e.message().contains("pools[0].max_size"), "{e}");
        let duplicate = GOOD.replace("web-02", "web-01");
        let e = Inventory::parse(&duplicate).unwrap_err();
        assert!(e.message().contains("machines[1].id"), "{e}");
        let typo = GOOD.replace("min_size", "minsize");
        let e = Inventory::parse(&typo).unwrap_err();
        assert!(e.message().contains("minsize"), "{e}");
    }
}
