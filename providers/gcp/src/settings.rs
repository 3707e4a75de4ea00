//! The `gcp:` block of a policy file, and the registry's factory for it.
//!
//! ```yaml
//! providers:
//!   gcp:
//!     gcp:
//!       project: my-project
//!       zone: us-central1-a           # for groups named without a zone or region
//!       labels: { hoist: enabled }    # also manage every group whose template carries these
//!       billing:
//!         bigquery_table: my-project.billing.gcp_billing_export_v1_0123AB_4567CD_89EFGH
//! ```
//!
//! A group's name on this provider is the managed instance group's name, or `ZONE/NAME` (zonal)
//! or `REGION/NAME` (regional).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hoist_api::duration::HumanDuration;
use hoist_api::registry::{BuildContext, BuiltProvider, ProviderFactory};
use hoist_api::{Error, Result};
use serde::Deserialize;
use serde_json::json;

use crate::errors::PROVIDER;

/// The BigQuery REST endpoint.
pub const BIGQUERY_ENDPOINT: &str = "https://bigquery.googleapis.com";

/// Settings of a `gcp:` provider.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpSettings {
    /// The project id.
    pub project: String,
    /// The zone of groups named without a location.
    #[serde(default)]
    pub zone: Option<String>,
    /// The region of groups named without a location, when `zone` is not set.
    #[serde(default)]
    pub region: Option<String>,
    /// Groups to report besides those the policy file places on this provider.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Also report every managed instance group whose instance template carries all these
    /// labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `application_default` (the default) or `anonymous` (emulators and test servers).
    #[serde(default)]
    pub credentials: CredentialsSource,
    /// One endpoint for every Google API (a test server); default each API's own.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Prices.
    #[serde(default)]
    pub prices: PriceSettings,
    /// Actual cost from the Cloud Billing export to BigQuery.
    #[serde(default)]
    pub billing: BillingSettings,
    /// Cloud Monitoring.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// How long one request may take, retries included. Default 60s.
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// Retries of a request answered 429 or 5xx. Default 3.
    #[serde(default)]
    pub retries: Option<u32>,
    /// How long a write waits for its operation before returning and leaving it to finish in
    /// the background. Default 20s.
    #[serde(default)]
    pub operation_wait: Option<HumanDuration>,
    /// The first wait between polls of an operation (it doubles up to 10 s). Default 1s.
    #[serde(default)]
    pub poll_interval: Option<HumanDuration>,
    /// How long an operation, and the instance creations a resize starts, are followed.
    /// Default 15m.
    #[serde(default)]
    pub operation_timeout: Option<HumanDuration>,
}

/// Where credentials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialsSource {
    /// Application Default Credentials.
    #[default]
    ApplicationDefault,
    /// No credentials (emulators and test servers).
    Anonymous,
}

/// Where prices come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceSettings {
    /// Read current prices from the Cloud Billing Catalog API at start and every `refresh`.
    /// Default true; the shipped snapshot is used until then and when it cannot be reached.
    #[serde(default = "yes")]
    pub live: bool,
    /// The currency (ISO 4217). Default USD.
    #[serde(default)]
    pub currency: Option<String>,
    /// How often live prices are read again. Default 24h.
    #[serde(default)]
    pub refresh: Option<HumanDuration>,
}

fn yes() -> bool {
    true
}

impl Default for PriceSettings {
    fn default() -> Self {
        PriceSettings {
            live: true,
            currency: None,
            refresh: None,
        }
    }
}

/// The billing export.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingSettings {
    /// The standard usage cost export table, `PROJECT.DATASET.TABLE`. Without it the provider
    /// reports no actual cost (GCP has no cost query API), and Hoist's own estimate stands in.
    #[serde(default)]
    pub bigquery_table: Option<String>,
    /// The project that runs the query (and pays for it). Default `project`.
    #[serde(default)]
    pub query_project: Option<String>,
    /// Only line items carrying all these labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The BigQuery endpoint. Default `endpoint`, else `https://bigquery.googleapis.com`.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// Cloud Monitoring settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Offer the groups' metrics from Cloud Monitoring. Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

fn field_error(field: &str, message: impl std::fmt::Display) -> Error {
    Error::config_field(field, message.to_string()).with_provider(PROVIDER)
}

/// Whether `s` is a project id: 6 to 30 lowercase letters, digits and hyphens, starting with a
/// letter, not ending with a hyphen.
pub fn is_project_id(s: &str) -> bool {
    let bytes = s.as_bytes();
    (6..=30).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && !s.ends_with('-')
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// Whether `s` names a zone (`us-central1-a`) rather than a region (`us-central1`).
pub fn is_zone(s: &str) -> bool {
    match s.rsplit_once('-') {
        Some((region, suffix)) => {
            suffix.len() == 1
                && suffix.chars().all(|c| c.is_ascii_lowercase())
                && region.ends_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

/// Where a group lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Location {
    /// A zonal group.
    Zone(String),
    /// A regional group.
    Region(String),
}

impl Location {
    /// The zone or region name.
    pub fn name(&self) -> &str {
        match self {
            Location::Zone(z) | Location::Region(z) => z,
        }
    }

    /// The region.
    pub fn region(&self) -> &str {
        match self {
            Location::Zone(z) => z.rsplit_once('-').map_or(z.as_str(), |(r, _)| r),
            Location::Region(r) => r,
        }
    }

    fn parse(s: &str) -> Location {
        if is_zone(s) {
            Location::Zone(s.to_owned())
        } else {
            Location::Region(s.to_owned())
        }
    }
}

/// A group's address: `NAME`, `ZONE/NAME` or `REGION/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    /// The location, when the name gives one.
    pub location: Option<Location>,
    /// The managed instance group's name.
    pub name: String,
}

fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && !s.ends_with('-')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

impl GroupRef {
    /// Parses `NAME`, `ZONE/NAME` or `REGION/NAME`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::config(format!(
                "`{s}` is not a managed instance group: write NAME, ZONE/NAME or REGION/NAME (lowercase letters, digits and hyphens)"
            ))
            .with_provider(PROVIDER)
        };
        match s.split_once('/') {
            None if valid_name(s) => Ok(GroupRef {
                location: None,
                name: s.to_owned(),
            }),
            Some((location, name)) if valid_name(location) && valid_name(name) => Ok(GroupRef {
                location: Some(Location::parse(location)),
                name: name.to_owned(),
            }),
            _ => Err(bad()),
        }
    }
}

fn url_ok(s: &str) -> bool {
    reqwest::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

impl GcpSettings {
    /// Parses and checks settings; every error names its field.
    pub fn from_value(value: &serde_json::Value) -> Result<Self> {
        let settings: GcpSettings =
            serde_path_to_error::deserialize(value.clone()).map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                if path == "." {
                    Error::config(format!("gcp settings: {message}")).with_provider(PROVIDER)
                } else {
                    field_error(&path, message)
                }
            })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<()> {
        if !is_project_id(&self.project) {
            return Err(field_error(
                "project",
                format!(
                    "`{}` is not a project id: 6 to 30 lowercase letters, digits and hyphens, starting with a letter (see `gcloud config get-value project`)",
                    self.project
                ),
            ));
        }
        if let Some(zone) = &self.zone
            && !is_zone(zone)
        {
            return Err(field_error(
                "zone",
                format!("`{zone}` is not a zone such as us-central1-a"),
            ));
        }
        if let Some(region) = &self.region
            && (is_zone(region) || !valid_name(region))
        {
            return Err(field_error(
                "region",
                format!("`{region}` is not a region such as us-central1"),
            ));
        }
        for (i, group) in self.groups.iter().enumerate() {
            GroupRef::parse(group)
                .map_err(|e| field_error(&format!("groups[{i}]"), e.message()))?;
        }
        for (field, url) in [
            ("endpoint", &self.endpoint),
            ("billing.endpoint", &self.billing.endpoint),
        ] {
            if let Some(url) = url
                && !url_ok(url)
            {
                return Err(field_error(field, format!("`{url}` is not an http(s) URL")));
            }
        }
        if let Some(table) = &self.billing.bigquery_table {
            let parts: Vec<&str> = table.split('.').collect();
            let ok = parts.len() == 3
                && parts.iter().all(|p| {
                    !p.is_empty()
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                });
            if !ok {
                return Err(field_error(
                    "billing.bigquery_table",
                    format!("`{table}` is not PROJECT.DATASET.TABLE"),
                ));
            }
        }
        if let Some(p) = &self.billing.query_project
            && !is_project_id(p)
        {
            return Err(field_error(
                "billing.query_project",
                format!("`{p}` is not a project id"),
            ));
        }
        for key in self.billing.labels.keys().chain(self.labels.keys()) {
            if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
            {
                return Err(field_error(
                    "labels",
                    format!("`{key}` is not a label key (lowercase letters, digits, _ and -)"),
                ));
            }
        }
        if let Some(currency) = &self.prices.currency
            && !(currency.len() == 3 && currency.chars().all(|c| c.is_ascii_uppercase()))
        {
            return Err(field_error(
                "prices.currency",
                format!("`{currency}` is not an ISO 4217 code such as USD or EUR"),
            ));
        }
        for (field, value, min, max) in [
            (
                "timeout",
                self.timeout,
                Duration::from_secs(1),
                Duration::from_secs(3600),
            ),
            (
                "operation_wait",
                self.operation_wait,
                Duration::ZERO,
                Duration::from_secs(6 * 3600),
            ),
            (
                "operation_timeout",
                self.operation_timeout,
                Duration::from_secs(1),
                Duration::from_secs(6 * 3600),
            ),
            (
                "poll_interval",
                self.poll_interval,
                Duration::from_millis(10),
                Duration::from_secs(600),
            ),
            (
                "prices.refresh",
                self.prices.refresh,
                Duration::from_secs(60),
                Duration::from_secs(31 * 86400),
            ),
        ] {
            if let Some(v) = value
                && !(min..=max).contains(&v.get())
            {
                return Err(field_error(
                    field,
                    format!("must be between {min:?} and {max:?}, got {:?}", v.get()),
                ));
            }
        }
        if self.retries.is_some_and(|r| r > 10) {
            return Err(field_error("retries", "must be at most 10"));
        }
        Ok(())
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.timeout.map_or(Duration::from_secs(60), |t| t.get())
    }

    /// The JSON Schema of the settings.
    pub fn schema() -> serde_json::Value {
        let duration = |what: &str| json!({"type": "string", "description": what});
        let labels = json!({"type": "object", "additionalProperties": {"type": "string"}});
        json!({
            "title": "gcp provider settings",
            "description": "Google Compute Engine managed instance groups (zonal and regional) in one project, addressed in a group's name as NAME, ZONE/NAME or REGION/NAME. Credentials come from Application Default Credentials, never from settings.",
            "type": "object",
            "additionalProperties": false,
            "required": ["project"],
            "properties": {
                "project": {"type": "string", "pattern": "^[a-z][a-z0-9-]{4,28}[a-z0-9]$"},
                "zone": {"type": "string", "description": "The zone of groups named without a location."},
                "region": {"type": "string", "description": "The region of groups named without a location, when zone is not set."},
                "groups": {"type": "array", "items": {"type": "string"}},
                "labels": labels.clone(),
                "credentials": {"enum": ["application_default", "anonymous"]},
                "endpoint": {"type": "string", "description": "One endpoint for every Google API (a test server)."},
                "prices": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "live": {"type": "boolean"},
                        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                        "refresh": duration("How often live prices are read again, e.g. 24h.")
                    }
                },
                "billing": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "bigquery_table": {"type": "string", "description": "The billing export table, PROJECT.DATASET.TABLE."},
                        "query_project": {"type": "string"},
                        "labels": labels,
                        "endpoint": {"type": "string"}
                    }
                },
                "metrics": {"type": "object", "additionalProperties": false, "properties": {"enabled": {"type": "boolean"}}},
                "timeout": duration("How long one request may take, retries included; default 60s."),
                "retries": {"type": "integer", "minimum": 0, "maximum": 10},
                "operation_wait": duration("How long a write waits for its operation; default 20s."),
                "poll_interval": duration("The first wait between polls of an operation; default 1s."),
                "operation_timeout": duration("How long an operation and the creations a resize starts are followed; default 15m.")
            }
        })
    }
}

/// The provider registry's factory for the `gcp` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcpProviderFactory;

#[async_trait]
impl ProviderFactory for GcpProviderFactory {
    fn kind(&self) -> &str {
        "gcp"
    }

    fn settings_schema(&self) -> serde_json::Value {
        GcpSettings::schema()
    }

    fn validate(&self, ctx: BuildContext<'_>) -> Result<()> {
        GcpSettings::from_value(ctx.settings)?;
        for group in ctx.groups {
            GroupRef::parse(&group.id)?;
        }
        Ok(())
    }

    async fn build(&self, ctx: BuildContext<'_>) -> Result<BuiltProvider> {
        let mut settings = GcpSettings::from_value(ctx.settings)?;
        for group in ctx.groups {
            GroupRef::parse(&group.id)?;
            if !settings.groups.contains(&group.id) {
                settings.groups.push(group.id.clone());
            }
        }
        let provider = crate::GcpProvider::connect(ctx.name, settings).await?;
        Ok(BuiltProvider {
            set: Arc::new(provider).into_provider_set(),
            clock: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_errors_name_the_field() {
        let s = GcpSettings::from_value(&json!({
            "project": "my-project",
            "zone": "us-central1-a",
            "groups": ["web", "us-central1/api", "us-central1-b/batch"],
            "billing": {"bigquery_table": "my-project.billing.export"}
        }))
        .unwrap();
        assert_eq!(s.credentials, CredentialsSource::ApplicationDefault);
        assert_eq!(
            GroupRef::parse("us-central1/api").unwrap().location,
            Some(Location::Region("us-central1".into()))
        );
        assert_eq!(
            GroupRef::parse("us-central1-b/batch").unwrap().location,
            Some(Location::Zone("us-central1-b".into()))
        );
        assert_eq!(
            Location::Zone("europe-west4-c".into()).region(),
            "europe-west4"
        );
        let cases = [
            (json!({"project": "My Project"}), "project"),
            (json!({}), "project"),
            (
                json!({"project": "my-project", "zone": "us-central1"}),
                "zone",
            ),
            (
                json!({"project": "my-project", "groups": ["Web"]}),
                "groups[0]",
            ),
            (
                json!({"project": "my-project", "billing": {"bigquery_table": "a.b"}}),
                "billing.bigquery_table",
            ),
            (
                json!({"project": "my-project", "credentials": "key"}),
                "credentials",
            ),
        ];
        for (value, field) in cases {
            let e = GcpSettings::from_value(&value).unwrap_err();
            assert_eq!(e.kind(), hoist_api::ErrorKind::Config, "{e}");
            let named = e.field().is_some_and(|f| f.contains(field)) || e.message().contains(field);
            assert!(named, "{value}: {e} (field {:?})", e.field());
        }
    }
}
