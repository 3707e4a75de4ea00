//! # hoist-gcp
//!
//! Hoist's Google Cloud provider: one [`GcpProvider`] per project implements the four core
//! traits on the official google-cloud-rust crates:
//!
//! | trait | Google Cloud API |
//! |---|---|
//! | [`hoist_api::ScalingProvider`] | Compute Engine managed instance groups, zonal and regional (get, aggregated list, resize, list managed instances, delete instances, patch), instance templates, with zonal, regional and global operations followed to their end |
//! | [`hoist_api::InstanceCatalog`] | Compute Engine machine types, priced from the Cloud Billing Catalog API (on-demand and spot per vCPU and GiB), with a shipped snapshot |
//! | [`hoist_api::BillingProvider`] | actual cost from the Cloud Billing export to BigQuery when a table is configured (GCP has no cost query API); otherwise actual cost is not declared and Hoist's own estimate stands in |
//! | [`hoist_api::MetricsSource`] | Cloud Monitoring time series |
//!
//! Build one from a policy file's settings with [`GcpProviderFactory`] (kind `gcp`) or with
//! [`GcpProvider::connect`]. Credentials are Application Default Credentials
//! (`google-cloud-auth`); errors convert to [`hoist_api::Error`] by meaning ([`errors`]).

#![forbid(unsafe_code)]

pub mod billing;
pub mod catalog;
pub mod compute;
pub mod errors;
pub mod metrics;
pub mod scaling;
pub mod settings;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use google_cloud_auth::credentials::Credentials;
use hoist_api::activity::ActivityLog;
use hoist_api::{Currency, ErrorKind, PriceSource, ProviderSet, Result};

use crate::catalog::PriceBook;
use crate::compute::{ClientConfig, Compute, MachineKind, Mig};
use crate::errors::local;
pub use crate::settings::{CredentialsSource, GcpProviderFactory, GcpSettings, GroupRef, Location};

/// How long the machine types of a zone are reused.
const MACHINE_TYPES_TTL: Duration = Duration::from_secs(3600);

/// The longest one price refresh may take.
pub const PRICE_REFRESH_TIMEOUT: Duration = Duration::from_secs(120);

/// Reads the Cloud Billing Catalog's Compute Engine rates in `currency` into `book`.
async fn refresh_book(
    client: google_cloud_billing_v1::client::CloudCatalog,
    currency: Currency,
    book: Arc<RwLock<PriceBook>>,
) -> Result<usize> {
    let op = "refresh_prices";
    let rates = tokio::time::timeout(
        PRICE_REFRESH_TIMEOUT,
        catalog::fetch_rates(&client, &currency),
    )
    .await
    .map_err(|_| {
        local(
            ErrorKind::Timeout,
            op,
            format!("the Cloud Billing Catalog was not read within {PRICE_REFRESH_TIMEOUT:?}"),
        )
    })??;
    let count = rates.len();
    if count == 0 {
        return Err(local(
            ErrorKind::NotFound,
            op,
            "the Cloud Billing Catalog lists no Compute Engine core or RAM prices",
        ));
    }
    let now = Utc::now();
    let source = PriceSource {
        kind: "live".to_owned(),
        detail: format!(
            "Cloud Billing Catalog API (service {}), read {}",
            catalog::COMPUTE_ENGINE_SERVICE,
            now.format("%Y-%m-%dT%H:%M:%SZ")
        ),
    };
    book.write()
        .unwrap_or_else(PoisonError::into_inner)
        .replace(currency, rates, source, now);
    Ok(count)
}

/// How long a write waits for its operation before leaving it to finish in the background:
/// under the engine's 30 s bound on one provider call.
pub const DEFAULT_OPERATION_WAIT: Duration = Duration::from_secs(20);

/// The Google Cloud provider for one project.
pub struct GcpProvider {
    name: String,
    settings: GcpSettings,
    project: String,
    compute: Compute,
    catalog_client: google_cloud_billing_v1::client::CloudCatalog,
    monitoring: google_cloud_monitoring_v3::client::MetricService,
    credentials: Credentials,
    http: reqwest::Client,
    operation_wait: Duration,
    resolved: Mutex<BTreeMap<String, Location>>,
    book: Arc<RwLock<PriceBook>>,
    prices_checked: Mutex<Option<Instant>>,
    machine_types: tokio::sync::Mutex<Option<(Instant, String, Vec<MachineKind>)>>,
    zone: Mutex<Option<String>>,
    activities: Arc<ActivityLog>,
}

impl fmt::Debug for GcpProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpProvider")
            .field("name", &self.name)
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The credentials the settings ask for.
pub fn credentials(source: CredentialsSource) -> Result<Credentials> {
    match source {
        CredentialsSource::Anonymous => {
            Ok(google_cloud_auth::credentials::anonymous::Builder::new().build())
        }
        CredentialsSource::ApplicationDefault => google_cloud_auth::credentials::Builder::default()
            .build()
            .map_err(|e| {
                local(
                    ErrorKind::PermissionDenied,
                    "credentials",
                    format!(
                        "no Google Cloud credentials: {}. Set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, run on Google Cloud with an attached service account (or GKE workload identity), or run `gcloud auth application-default login`",
                        e.to_string().lines().next().unwrap_or_default()
                    ),
                )
            }),
    }
}

impl GcpProvider {
    /// A provider named `name` for `settings`, with the credentials they choose. Reads live
    /// prices when `prices.live` is on (falling back to the snapshot with a warning).
    pub async fn connect(name: &str, settings: GcpSettings) -> Result<Self> {
        settings.validate()?;
        let credentials = credentials(settings.credentials)?;
        let provider = Self::with_credentials(name, settings, credentials).await?;
        if provider.settings.prices.live {
            provider.refresh_prices_if_due().await;
        }
        Ok(provider)
    }

    /// A provider with the given credentials. Builds the clients; connects to nothing yet.
    pub async fn with_credentials(
        name: &str,
        settings: GcpSettings,
        credentials: Credentials,
    ) -> Result<Self> {
        settings.validate()?;
        let config = ClientConfig {
            endpoint: settings.endpoint.clone(),
            credentials: credentials.clone(),
            attempts: settings.retries.unwrap_or(3) + 1,
            poll_interval: settings
                .poll_interval
                .map_or(Duration::from_secs(1), |d| d.get()),
        };
        let timeout = settings.request_timeout();
        let operation_timeout = settings
            .operation_timeout
            .map_or(Duration::from_secs(15 * 60), |d| d.get());
        let compute = Compute::new(&settings.project, &config, timeout, operation_timeout).await?;
        let catalog_client =
            compute::build_client!(google_cloud_billing_v1::client::CloudCatalog, &config);
        let monitoring =
            compute::build_client!(google_cloud_monitoring_v3::client::MetricService, &config);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| local(ErrorKind::Config, "connect", e.to_string()))?;
        Ok(GcpProvider {
            name: name.to_owned(),
            project: settings.project.clone(),
            zone: Mutex::new(settings.zone.clone()),
            operation_wait: settings
                .operation_wait
                .map_or(DEFAULT_OPERATION_WAIT, |d| d.get()),
            settings,
            compute,
            catalog_client,
            monitoring,
            credentials,
            http,
            resolved: Mutex::new(BTreeMap::new()),
            book: Arc::new(RwLock::new(PriceBook::shipped())),
            prices_checked: Mutex::new(None),
            machine_types: tokio::sync::Mutex::new(None),
            activities: ActivityLog::new(name),
        })
    }

    /// The provider's traits as one set: billing only with a billing export table (no actual
    /// cost otherwise, prices always), metrics unless `metrics.enabled: false`.
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

    /// The settings it was built with.
    pub fn settings(&self) -> &GcpSettings {
        &self.settings
    }

    /// The Compute Engine clients, for calls the traits do not make.
    pub fn compute(&self) -> &Compute {
        &self.compute
    }

    /// The group a group id names (a bare name resolved through `zone` or `region`, else a
    /// search of the project).
    pub async fn resolve(&self, group: &str) -> Result<Mig> {
        let location = self.locate(group).await?;
        let name = GroupRef::parse(group)?.name;
        let mig = self.compute.group(&location, &name).await?;
        self.remember_zone(&mig);
        Ok(mig)
    }

    async fn locate(&self, group: &str) -> Result<Location> {
        if let Some(found) = lock(&self.resolved).get(group) {
            return Ok(found.clone());
        }
        let parsed = GroupRef::parse(group)?;
        let location = match parsed.location {
            Some(l) => l,
            None => match (&self.settings.zone, &self.settings.region) {
                (Some(z), _) => Location::Zone(z.clone()),
                (None, Some(r)) => Location::Region(r.clone()),
                (None, None) => {
                    let matches: Vec<Mig> = self
                        .compute
                        .groups()
                        .await?
                        .into_iter()
                        .filter(|m| m.name == parsed.name)
                        .collect();
                    match matches.as_slice() {
                        [one] => one.location.clone(),
                        [] => {
                            return Err(local(
                                ErrorKind::NotFound,
                                "describe_group",
                                format!(
                                    "no managed instance group named {group} in project {}",
                                    self.project
                                ),
                            ));
                        }
                        many => {
                            return Err(local(
                                ErrorKind::Config,
                                "describe_group",
                                format!(
                                    "{} managed instance groups are named {group} (in {}); name the group ZONE/{group} or REGION/{group}",
                                    many.len(),
                                    many.iter()
                                        .map(|m| m.location.name())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            ));
                        }
                    }
                }
            },
        };
        lock(&self.resolved).insert(group.to_owned(), location.clone());
        Ok(location)
    }

    fn remember_zone(&self, mig: &Mig) {
        let mut known = lock(&self.zone);
        if known.is_none() {
            *known = mig.zones.first().cloned();
        }
    }

    /// The catalog's zone: the `zone` setting, else the first group's first zone.
    async fn catalog_zone(&self) -> Result<String> {
        if let Some(z) = lock(&self.zone).clone() {
            return Ok(z);
        }
        let first = self.settings.groups.first().cloned();
        match first {
            Some(group) => {
                let mig = self.resolve(&group).await?;
                mig.zones.first().cloned().ok_or_else(|| {
                    local(
                        ErrorKind::Config,
                        "instance_classes",
                        format!("group {group} reports no zone; set `zone`"),
                    )
                })
            }
            None => Err(local(
                ErrorKind::Config,
                "instance_classes",
                "no zone to list machine types for: set `zone`, or give the provider a group",
            )),
        }
    }

    /// The machine types of the catalog's zone (cached for an hour).
    pub async fn machine_types(&self) -> Result<(String, Vec<MachineKind>)> {
        let zone = self.catalog_zone().await?;
        let mut cached = self.machine_types.lock().await;
        if let Some((at, z, kinds)) = cached.as_ref()
            && at.elapsed() < MACHINE_TYPES_TTL
            && *z == zone
        {
            return Ok((zone, kinds.clone()));
        }
        let kinds = self.compute.machine_types(&zone).await?;
        *cached = Some((Instant::now(), zone.clone(), kinds.clone()));
        Ok((zone, kinds))
    }

    /// A copy of the price book.
    pub fn book(&self) -> PriceBook {
        self.book
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads current Compute Engine prices from the Cloud Billing Catalog API into the book
    /// (bounded by [`PRICE_REFRESH_TIMEOUT`]).
    pub async fn refresh_prices(&self) -> Result<usize> {
        refresh_book(
            self.catalog_client.clone(),
            self.currency(),
            Arc::clone(&self.book),
        )
        .await
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
    /// reads thousands of SKUs and must not hold up a provider call). A failure keeps the
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
        let name = self.name.clone();
        let refresh = refresh_book(
            self.catalog_client.clone(),
            self.currency(),
            Arc::clone(&self.book),
        );
        let report = async move {
            match refresh.await {
                Ok(n) => {
                    tracing::info!(provider = %name, rates = n, "read Cloud Billing Catalog prices")
                }
                Err(e) => tracing::warn!(
                    provider = %name,
                    error = %e,
                    "could not read Cloud Billing Catalog prices; using the prices held"
                ),
            }
        };
        if first {
            report.await;
        } else {
            tokio::spawn(report);
        }
    }
}
