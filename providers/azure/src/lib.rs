//! # hoist-azure
//!
//! Hoist's Azure provider: one [`AzureProvider`] per subscription implements the four core
//! traits:
//!
//! | trait | Azure API |
//! |---|---|
//! | [`hoist_api::ScalingProvider`] | virtual machine scale sets (Uniform and Flexible) through `azure_mgmt_compute`: get, list, update (`sku.capacity`, `sku.name`), delete instances, manual upgrade; VMs with their instance views |
//! | [`hoist_api::InstanceCatalog`] | resource SKUs (vCPUs, memory, zones per region) priced from the Azure Retail Prices API, with a shipped snapshot |
//! | [`hoist_api::BillingProvider`] | Cost Management query and forecast |
//! | [`hoist_api::MetricsSource`] | Azure Monitor metrics |
//!
//! Build one from a policy file's settings with [`AzureProviderFactory`] (kind `azure`), or
//! with [`AzureProvider::connect`]. Credentials come from the standard Azure chain
//! ([`auth`]); errors convert to [`hoist_api::Error`] by meaning ([`errors`]); writes are
//! long-running operations, followed to their end ([`lro`]). Only [`compute`] names the
//! compute crate.

#![forbid(unsafe_code)]

pub mod auth;
pub mod billing;
pub mod catalog;
pub mod compute;
pub mod errors;
pub mod lro;
pub mod metrics;
pub mod rest;
pub mod scaling;
pub mod settings;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use azure_core::Url;
use azure_core::auth::TokenCredential;
use chrono::Utc;
use hoist_api::activity::ActivityLog;
use hoist_api::{Currency, ErrorKind, PriceSource, ProviderSet, Result};

use crate::catalog::PriceBook;
use crate::compute::{Compute, ScaleSet, VmSku};
use crate::errors::local;
use crate::lro::Polling;
use crate::rest::Rest;
pub use crate::settings::{AzureProviderFactory, AzureSettings, GroupRef};

/// How long the resource SKUs of a region are reused.
const SKUS_TTL: Duration = Duration::from_secs(3600);

/// The region of a zone name (`eastus-1` is in `eastus`).
pub fn region_of_zone(zone: &str) -> &str {
    match zone.rsplit_once('-') {
        Some((region, z)) if !z.is_empty() && z.chars().all(|c| c.is_ascii_digit()) => region,
        _ => zone,
    }
}

/// The Azure provider for one subscription.
pub struct AzureProvider {
    name: String,
    settings: AzureSettings,
    subscription: String,
    arm: Url,
    compute: Compute,
    rest: Rest,
    prices_rest: Rest,
    polling: Polling,
    /// How long a write waits for its operation before leaving it to the background.
    operation_wait: Duration,
    resolved: Mutex<BTreeMap<String, (String, String)>>,
    book: Arc<RwLock<PriceBook>>,
    prices_checked: Mutex<Option<Instant>>,
    skus: tokio::sync::Mutex<Option<(Instant, String, Vec<VmSku>)>>,
    location: Mutex<Option<String>>,
    activities: Arc<ActivityLog>,
}

impl fmt::Debug for AzureProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureProvider")
            .field("name", &self.name)
            .field("subscription", &self.subscription)
            .field("endpoint", &self.arm.as_str())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AzureProvider {
    /// A provider named `name` for `settings`, with credentials from the chain the settings
    /// choose. Reads live prices when `prices.live` is on (falling back to the snapshot with a
    /// warning when the Retail Prices API cannot be reached).
    pub async fn connect(name: &str, settings: AzureSettings) -> Result<Self> {
        settings.validate()?;
        let credential = auth::credential(settings.credential, settings.authority_host.as_deref())?;
        let provider = Self::with_credential(name, settings, credential)?;
        if provider.settings.prices.live {
            provider.refresh_prices_if_due().await;
        }
        Ok(provider)
    }

    /// A provider with the given credential (for tests, and callers with their own token
    /// source). Connects to nothing yet.
    pub fn with_credential(
        name: &str,
        settings: AzureSettings,
        credential: Arc<dyn TokenCredential>,
    ) -> Result<Self> {
        settings.validate()?;
        let endpoint = settings
            .endpoint
            .clone()
            .unwrap_or_else(|| settings::PUBLIC_ARM_ENDPOINT.to_owned());
        let arm =
            Url::parse(&endpoint).map_err(|e| Error::config_field("endpoint", e.to_string()))?;
        // The token audience is the ARM endpoint itself (`https://management.azure.com/.default`).
        let scope = format!("{}/.default", endpoint.trim_end_matches('/'));
        let retries = settings.retries.unwrap_or(rest::DEFAULT_RETRIES);
        let timeout = settings.request_timeout();
        let compute = Compute::new(
            &arm,
            &scope,
            Arc::clone(&credential),
            &settings.subscription_id,
            retries,
            timeout,
        );
        let rest = Rest::new(Some(credential), scope, retries, timeout);
        let prices_rest = Rest::new(None, String::new(), retries, timeout);
        let polling = Polling {
            interval: settings
                .poll_interval
                .map_or(Duration::from_secs(5), |d| d.get()),
            timeout: settings
                .operation_timeout
                .map_or(Duration::from_secs(15 * 60), |d| d.get()),
        };
        let operation_wait = settings
            .operation_wait
            .map_or(DEFAULT_OPERATION_WAIT, |d| d.get());
        Ok(AzureProvider {
            name: name.to_owned(),
            subscription: settings.subscription_id.clone(),
            location: Mutex::new(settings.location.clone()),
            settings,
            arm,
            compute,
            rest,
            prices_rest,
            polling,
            operation_wait,
            resolved: Mutex::new(BTreeMap::new()),
            book: Arc::new(RwLock::new(PriceBook::shipped())),
            prices_checked: Mutex::new(None),
            skus: tokio::sync::Mutex::new(None),
            activities: ActivityLog::new(name),
        })
    }

    /// The provider's traits as one set (metrics unless `metrics.enabled: false`).
    pub fn into_provider_set(self: Arc<Self>) -> ProviderSet {
        let set = ProviderSet::new(self.name.clone())
            .with_scaling(self.clone())
            .with_catalog(self.clone())
            .with_billing(self.clone());
        if self.settings.metrics.enabled.unwrap_or(true) {
            set.with_metrics(self)
        } else {
            set
        }
    }

    /// The compute client (scale sets, VMs, sizes), for calls the traits do not make.
    pub fn compute(&self) -> &Compute {
        &self.compute
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &AzureSettings {
        &self.settings
    }

    /// The scale set a group id names (resolving a bare name through `resource_group`, else a
    /// search of the subscription).
    pub async fn resolve(&self, group: &str) -> Result<ScaleSet> {
        let (rg, name) = self.locate(group).await?;
        let set = self.compute.scale_set(&rg, &name).await?;
        self.remember_location(&set.location);
        Ok(set)
    }

    async fn locate(&self, group: &str) -> Result<(String, String)> {
        if let Some(found) = lock(&self.resolved).get(group) {
            return Ok(found.clone());
        }
        let parsed = GroupRef::parse(group)?;
        let found = match parsed
            .resource_group
            .or_else(|| self.settings.resource_group.clone())
        {
            Some(rg) => (rg, parsed.name),
            None => {
                let matches: Vec<ScaleSet> = self
                    .compute
                    .scale_sets(None)
                    .await?
                    .into_iter()
                    .filter(|s| s.name.eq_ignore_ascii_case(&parsed.name))
                    .collect();
                match matches.as_slice() {
                    [one] => (one.resource_group.clone(), one.name.clone()),
                    [] => {
                        return Err(local(
                            ErrorKind::NotFound,
                            "describe_group",
                            format!(
                                "no scale set named {group} in subscription {}",
                                self.subscription
                            ),
                        ));
                    }
                    many => {
                        return Err(local(
                            ErrorKind::Config,
                            "describe_group",
                            format!(
                                "{} scale sets are named {group} (in {}); name the group RESOURCE_GROUP/{group}",
                                many.len(),
                                many.iter()
                                    .map(|s| s.resource_group.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ));
                    }
                }
            }
        };
        lock(&self.resolved).insert(group.to_owned(), found.clone());
        Ok(found)
    }

    fn remember_location(&self, location: &str) {
        let mut known = lock(&self.location);
        if known.is_none() {
            *known = Some(location.to_owned());
        }
    }

    /// The catalog's region: the `location` setting, else the first group's.
    async fn catalog_location(&self) -> Result<String> {
        if let Some(l) = lock(&self.location).clone() {
            return Ok(l);
        }
        let first = self.settings.groups.first().cloned();
        match first {
            Some(group) => Ok(self.resolve(&group).await?.location),
            None => Err(local(
                ErrorKind::Config,
                "instance_classes",
                "no region to list sizes for: set `location`, or give the provider a group",
            )),
        }
    }

    /// The VM sizes of the catalog's region (cached for an hour).
    pub async fn skus(&self) -> Result<(String, Vec<VmSku>)> {
        let location = self.catalog_location().await?;
        let mut cached = self.skus.lock().await;
        if let Some((at, l, skus)) = cached.as_ref()
            && at.elapsed() < SKUS_TTL
            && l.eq_ignore_ascii_case(&location)
        {
            return Ok((location, skus.clone()));
        }
        let skus = self.compute.skus(&location).await?;
        *cached = Some((Instant::now(), location.clone(), skus.clone()));
        Ok((location, skus))
    }

    /// A copy of the price book.
    pub fn book(&self) -> PriceBook {
        self.book
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads current prices of the catalog's region from the Retail Prices API into the book
    /// (bounded by [`PRICE_REFRESH_TIMEOUT`]).
    pub async fn refresh_prices(&self) -> Result<usize> {
        let location = self.catalog_location().await?;
        refresh_book(
            self.prices_rest.clone(),
            self.prices_endpoint(),
            location,
            self.currency(),
            Arc::clone(&self.book),
        )
        .await
    }

    fn prices_endpoint(&self) -> String {
        self.settings
            .prices
            .endpoint
            .clone()
            .unwrap_or_else(|| settings::RETAIL_PRICES_ENDPOINT.to_owned())
    }

    fn currency(&self) -> Currency {
        Currency(
            self.settings
                .prices
                .currency
                .clone()
                .unwrap_or_else(|| "USD".to_owned()),
        )
    }

    /// Refreshes prices when live prices are on and the last try is older than
    /// `prices.refresh`: the first time before answering, later in the background (a refresh
    /// reads thousands of meters and must not hold up a provider call). A failure keeps the
    /// prices held and is logged.
    pub async fn refresh_prices_if_due(&self) {
        if !self.settings.prices.live {
            return;
        }
        let every = self
            .settings
            .prices
            .refresh
            .map_or(Duration::from_secs(86400), |d| d.get());
        let first = {
            let mut checked = lock(&self.prices_checked);
            if checked.is_some_and(|at| at.elapsed() < every) {
                return;
            }
            let first = checked.is_none();
            *checked = Some(Instant::now());
            first
        };
        let location = match self.catalog_location().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(provider = %self.name, error = %e, "no region to read Azure retail prices for");
                return;
            }
        };
        let name = self.name.clone();
        let refresh = refresh_book(
            self.prices_rest.clone(),
            self.prices_endpoint(),
            location,
            self.currency(),
            Arc::clone(&self.book),
        );
        let report = async move {
            match refresh.await {
                Ok(n) => tracing::info!(provider = %name, prices = n, "read Azure retail prices"),
                Err(e) => tracing::warn!(
                    provider = %name,
                    error = %e,
                    "could not read Azure retail prices; using the prices held"
                ),
            }
        };
        if first {
            report.await;
        } else {
            tokio::spawn(report);
        }
    }

    /// The resource ids of the provider's groups.
    async fn scale_set_ids(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for group in self.group_ids().await? {
            ids.push(self.resolve(&group).await?.id);
        }
        Ok(ids)
    }

    /// (resource id, group id) of the groups resolved so far.
    async fn group_names(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Ok(groups) = self.group_ids().await {
            for group in groups {
                if let Ok(set) = self.resolve(&group).await {
                    out.push((set.id, group));
                }
            }
        }
        out
    }
}

use hoist_api::Error;

/// The longest one price refresh may take.
pub const PRICE_REFRESH_TIMEOUT: Duration = Duration::from_secs(120);

/// Reads the Retail Prices API's Linux VM prices of `location` in `currency` into `book`.
async fn refresh_book(
    rest: Rest,
    endpoint: String,
    location: String,
    currency: Currency,
    book: Arc<RwLock<PriceBook>>,
) -> Result<usize> {
    let op = "refresh_prices";
    let (currency, prices) = tokio::time::timeout(
        PRICE_REFRESH_TIMEOUT,
        catalog::fetch_prices(&rest, &endpoint, &location, &currency),
    )
    .await
    .map_err(|_| {
        local(
            ErrorKind::Timeout,
            op,
            format!("the Retail Prices API was not read within {PRICE_REFRESH_TIMEOUT:?}"),
        )
    })??;
    let count = prices.len();
    if count == 0 {
        return Err(local(
            ErrorKind::NotFound,
            op,
            format!("the Retail Prices API lists no Linux VM prices for {location}"),
        ));
    }
    let now = Utc::now();
    let source = PriceSource {
        kind: "live".to_owned(),
        detail: format!(
            "Azure Retail Prices API ({endpoint}), {location}, read {}",
            now.format("%Y-%m-%dT%H:%M:%SZ")
        ),
    };
    book.write()
        .unwrap_or_else(PoisonError::into_inner)
        .replace_region(&location, currency, prices, source, now);
    Ok(count)
}

/// How long a write waits for its long-running operation before leaving it to finish in the
/// background: under the engine's 30 s bound on one provider call.
pub const DEFAULT_OPERATION_WAIT: Duration = Duration::from_secs(20);
