//! [`InstanceCatalog`]: EC2 instance types (DescribeInstanceTypes) with their zones
//! (DescribeInstanceTypeOfferings) and prices from the [`PriceBook`].
//!
//! Only types with at least one known price are offered: a class the engine cannot price is
//! one it cannot choose. Out of the box that is the shipped table's types (us-east-1); the live
//! refreshes add every type they price.
//!
//! The catalog is read once and cached; [`AwsProvider::refresh_catalog`] drops the cache and
//! [`AwsProvider::refresh_spot_prices`] / [`AwsProvider::refresh_on_demand_prices`] replace
//! shipped prices with live ones.

pub mod families;
mod live;
pub mod prices;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{InstanceTypeInfo, LocationType};
use hoist_api::{
    Architecture, CapacityType, CatalogCapabilities, InstanceCatalog, InstanceClass, Result,
};

pub use prices::PriceBook;

use crate::client::AwsProvider;
use crate::errors::SdkResultExt;

impl AwsProvider {
    /// Drops the cached instance types so the next call reads them again.
    pub async fn refresh_catalog(&self) {
        *self.catalog_cache.write().await = None;
    }

    /// A copy of the prices currently known.
    pub async fn price_book(&self) -> PriceBook {
        self.prices.read().await.clone()
    }

    async fn load_catalog(&self) -> Result<Arc<Vec<InstanceClass>>> {
        if let Some(cached) = self.catalog_cache.read().await.clone() {
            return Ok(cached);
        }
        let mut infos: Vec<InstanceTypeInfo> = Vec::new();
        let mut next = None;
        loop {
            let page = self
                .clients
                .ec2
                .describe_instance_types()
                .max_results(100)
                .set_next_token(next.take())
                .send()
                .await
                .aws("describe_instance_types")?;
            infos.extend(page.instance_types().iter().cloned());
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
        let mut zones: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut next = None;
        loop {
            let page = self
                .clients
                .ec2
                .describe_instance_type_offerings()
                .location_type(LocationType::AvailabilityZone)
                .max_results(1000)
                .set_next_token(next.take())
                .send()
                .await
                .aws("describe_instance_type_offerings")?;
            for offering in page.instance_type_offerings() {
                if let (Some(t), Some(zone)) = (offering.instance_type(), offering.location()) {
                    zones
                        .entry(t.as_str().to_owned())
                        .or_default()
                        .push(zone.to_owned());
                }
            }
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
        // Spot prices move all the time and no table can hold them: the first load reads them
        // for every type with an on-demand price. Without permission for the spot price
        // history the catalog still works, on-demand only.
        let (on_demand, spot) = {
            let book = self.prices.read().await;
            (
                book.priced_types(CapacityType::OnDemand),
                book.priced_types(CapacityType::Spot),
            )
        };
        if spot.is_empty()
            && !on_demand.is_empty()
            && let Err(e) = self.refresh_spot_prices(&on_demand).await
        {
            tracing::warn!(provider = %self.name, error = %e, "spot prices unavailable; the catalog offers on-demand only");
        }
        let book = self.prices.read().await;
        let mut classes: Vec<InstanceClass> = infos
            .iter()
            .filter_map(|info| {
                let name = info.instance_type()?.as_str().to_owned();
                let mut type_zones = zones.get(&name).cloned().unwrap_or_default();
                type_zones.sort();
                type_zones.dedup();
                let offerings = book.offerings(&name, &type_zones);
                if offerings.is_empty() {
                    return None;
                }
                Some(convert_type(info, &name, offerings))
            })
            .collect();
        drop(book);
        classes.sort_by(|a, b| a.name.cmp(&b.name));
        let classes = Arc::new(classes);
        *self.catalog_cache.write().await = Some(classes.clone());
        Ok(classes)
    }
}

fn convert_type(
    info: &InstanceTypeInfo,
    name: &str,
    offerings: Vec<hoist_api::Offering>,
) -> InstanceClass {
    let gpus: u32 = info
        .gpu_info()
        .map(|g| {
            g.gpus()
                .iter()
                .map(|d| d.count().unwrap_or(0).max(0) as u32)
                .sum()
        })
        .unwrap_or(0);
    let other_accelerators = info.inference_accelerator_info().is_some()
        || info.fpga_info().is_some()
        || info.neuron_info().is_some();
    let architecture = if info
        .processor_info()
        .map(|p| {
            p.supported_architectures()
                .iter()
                .any(|a| a.as_str() == "arm64")
        })
        .unwrap_or(false)
    {
        Architecture::Arm64
    } else {
        Architecture::X86_64
    };
    InstanceClass {
        name: name.to_owned(),
        family: families::family_of(
            name,
            gpus > 0 || other_accelerators,
            info.burstable_performance_supported().unwrap_or(false),
        ),
        vcpus: info
            .v_cpu_info()
            .and_then(|v| v.default_v_cpus())
            .unwrap_or(0)
            .max(0) as f64,
        memory_mib: info
            .memory_info()
            .and_then(|m| m.size_in_mib())
            .unwrap_or(0)
            .max(0) as u64,
        gpus,
        architecture,
        network_gbps: info
            .network_info()
            .and_then(|n| n.network_performance())
            .and_then(families::network_gbps),
        offerings,
    }
}

#[async_trait]
impl InstanceCatalog for AwsProvider {
    fn capabilities(&self) -> CatalogCapabilities {
        CatalogCapabilities {
            spot_prices: true,
            live_prices: true,
        }
    }

    async fn instance_classes(&self) -> Result<Vec<InstanceClass>> {
        Ok(self.load_catalog().await?.as_ref().clone())
    }

    async fn instance_class(&self, name: &str) -> Result<InstanceClass> {
        self.load_catalog()
            .await?
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .ok_or_else(|| {
                crate::errors::local(
                    hoist_api::ErrorKind::NotFound,
                    "instance_class",
                    format!("EC2 instance type {name} in {}", self.region),
                )
            })
    }
}
