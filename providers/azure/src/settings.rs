//! The `azure:` block of a policy file, and the registry's factory for it.
//!
//! ```yaml
//! providers:
//!   azure:
//!     azure:
//!       subscription_id: 0b1f6471-1bf0-4dda-aec3-111122223333
//!       resource_group: web-rg        # for groups named without one, and the tag search
//!       location: eastus              # the catalog's region; default: the first group's
//!       tags: { hoist: enabled }      # also manage every scale set with these tags
//!       credential: default           # default | environment | managed_identity | azure_cli
//!       prices: { currency: USD, live: true }
//! ```
//!
//! A group's name on this provider is the scale set's name, or `RESOURCE_GROUP/NAME`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hoist_api::duration::HumanDuration;
use hoist_api::registry::{BuildContext, BuiltProvider, ProviderFactory};
use hoist_api::{Error, Result};
use serde::Deserialize;
use serde_json::json;

use crate::auth::CredentialSource;
use crate::errors::PROVIDER;

/// The Azure Resource Manager endpoint of the public cloud.
pub const PUBLIC_ARM_ENDPOINT: &str = "https://management.azure.com";
/// The Azure Retail Prices API.
pub const RETAIL_PRICES_ENDPOINT: &str = "https://prices.azure.com";

/// Settings of an `azure:` provider.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureSettings {
    /// The subscription (a GUID).
    pub subscription_id: String,
    /// The resource group of groups named without one, and the scope of the tag search.
    #[serde(default)]
    pub resource_group: Option<String>,
    /// The region whose sizes and prices the catalog offers. Default: the first group's.
    #[serde(default)]
    pub location: Option<String>,
    /// Groups to report besides those the policy file places on this provider.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Also report every scale set carrying all these tags (in `resource_group`, else the
    /// whole subscription).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Where credentials come from.
    #[serde(default)]
    pub credential: CredentialSource,
    /// The Azure Resource Manager endpoint (another cloud, or a test server).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The Entra ID authority host. Default: `AZURE_AUTHORITY_HOST`, else the public cloud's.
    #[serde(default)]
    pub authority_host: Option<String>,
    /// Prices.
    #[serde(default)]
    pub prices: PriceSettings,
    /// Cost reports.
    #[serde(default)]
    pub billing: BillingSettings,
    /// Azure Monitor.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// How long one request may take, retries included. Default 60s.
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// Retries of a request answered 408, 429 or 5xx (honouring `Retry-After`). Default 3.
    #[serde(default)]
    pub retries: Option<u32>,
    /// How long a write's long-running operation is followed. Default 15m.
    #[serde(default)]
    pub operation_timeout: Option<HumanDuration>,
    /// The wait between polls of an operation when Azure does not say. Default 5s.
    #[serde(default)]
    pub poll_interval: Option<HumanDuration>,
    /// How long a write waits for its operation to end before returning and leaving it to
    /// finish in the background (reported by `activities`). Default 20s, under the engine's
    /// 30 s bound on one provider call.
    #[serde(default)]
    pub operation_wait: Option<HumanDuration>,
}

/// Where prices come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceSettings {
    /// Fetch current prices (on-demand and spot) from the Azure Retail Prices API at start
    /// and every `refresh`. Default true; the shipped snapshot is used until then, and when
    /// the API cannot be reached.
    #[serde(default = "yes")]
    pub live: bool,
    /// The currency (ISO 4217) to ask the Retail Prices API for. Default USD.
    #[serde(default)]
    pub currency: Option<String>,
    /// How often live prices are fetched again. Default 24h.
    #[serde(default)]
    pub refresh: Option<HumanDuration>,
    /// The Retail Prices API endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
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
            endpoint: None,
        }
    }
}

/// What cost reports cover.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingSettings {
    /// `scale_sets` (the provider's groups, by resource id; the default), `resource_group`
    /// (everything in `resource_group`) or `subscription`.
    #[serde(default)]
    pub scope: BillingScope,
    /// Only resources carrying all these tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// What cost reports cover.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingScope {
    /// The provider's scale sets.
    #[default]
    ScaleSets,
    /// The whole `resource_group`.
    ResourceGroup,
    /// The whole subscription.
    Subscription,
}

/// Azure Monitor settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Offer the scale sets' metrics from Azure Monitor. Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The metric behind `utilization` (its average, divided by 100). Default `Percentage CPU`.
    #[serde(default)]
    pub utilization: Option<String>,
}

fn field_error(field: &str, message: impl std::fmt::Display) -> Error {
    Error::config_field(field, message.to_string()).with_provider(PROVIDER)
}

/// Whether `s` is a GUID (`8-4-4-4-12` hex digits).
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A group's address: `NAME` or `RESOURCE_GROUP/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupRef {
    /// The resource group, when the name gives one.
    pub resource_group: Option<String>,
    /// The scale set's name.
    pub name: String,
}

impl GroupRef {
    /// Parses `NAME` or `RESOURCE_GROUP/NAME`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::config(format!(
                "`{s}` is not a scale set: write NAME or RESOURCE_GROUP/NAME"
            ))
            .with_provider(PROVIDER)
        };
        let valid = |p: &str| {
            !p.is_empty()
                && p.len() <= 90
                && p.chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'))
        };
        match s.split_once('/') {
            None if valid(s) => Ok(GroupRef {
                resource_group: None,
                name: s.to_owned(),
            }),
            Some((rg, name)) if valid(rg) && valid(name) => Ok(GroupRef {
                resource_group: Some(rg.to_owned()),
                name: name.to_owned(),
            }),
            _ => Err(bad()),
        }
    }
}

fn url_ok(s: &str) -> bool {
    azure_core::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

impl AzureSettings {
    /// Parses and checks settings; every error names its field.
    pub fn from_value(value: &serde_json::Value) -> Result<Self> {
        let settings: AzureSettings =
            serde_path_to_error::deserialize(value.clone()).map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                if path == "." {
                    Error::config(format!("azure settings: {message}")).with_provider(PROVIDER)
                } else {
                    field_error(&path, message)
                }
            })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<()> {
        if !is_guid(&self.subscription_id) {
            return Err(field_error(
                "subscription_id",
                format!(
                    "`{}` is not a subscription id: Azure subscription ids are GUIDs such as 0b1f6471-1bf0-4dda-aec3-111122223333 (see `az account show --query id`)",
                    self.subscription_id
                ),
            ));
        }
        for (i, group) in self.groups.iter().enumerate() {
            GroupRef::parse(group)
                .map_err(|e| field_error(&format!("groups[{i}]"), e.message()))?;
        }
        if let Some(rg) = &self.resource_group
            && GroupRef::parse(rg)
                .map(|g| g.resource_group.is_some())
                .unwrap_or(true)
        {
            return Err(field_error(
                "resource_group",
                format!("`{rg}` is not a resource group name"),
            ));
        }
        for (field, url) in [
            ("endpoint", &self.endpoint),
            ("authority_host", &self.authority_host),
            ("prices.endpoint", &self.prices.endpoint),
        ] {
            if let Some(url) = url
                && !url_ok(url)
            {
                return Err(field_error(field, format!("`{url}` is not an http(s) URL")));
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
        if self.billing.scope == BillingScope::ResourceGroup && self.resource_group.is_none() {
            return Err(field_error(
                "billing.scope",
                "`resource_group` needs the `resource_group` setting",
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
                "operation_wait",
                self.operation_wait,
                Duration::ZERO,
                Duration::from_secs(6 * 3600),
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
        if let Some(name) = &self.metrics.utilization
            && name.trim().is_empty()
        {
            return Err(field_error("metrics.utilization", "names no metric"));
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
        let tags = json!({"type": "object", "additionalProperties": {"type": "string"}});
        json!({
            "title": "azure provider settings",
            "description": "Azure virtual machine scale sets (Uniform and Flexible) in one subscription, addressed in a group's name as NAME or RESOURCE_GROUP/NAME. Credentials come from the standard Azure chain, never from settings.",
            "type": "object",
            "additionalProperties": false,
            "required": ["subscription_id"],
            "properties": {
                "subscription_id": {"type": "string", "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"},
                "resource_group": {"type": "string", "description": "The resource group of groups named without one, and the scope of the tag search."},
                "location": {"type": "string", "description": "The region whose sizes and prices the catalog offers; default the first group's."},
                "groups": {"type": "array", "items": {"type": "string"}, "description": "Scale sets to report besides the policy's groups."},
                "tags": {"description": "Also report every scale set carrying all these tags.", "type": "object", "additionalProperties": {"type": "string"}},
                "credential": {"enum": ["default", "environment", "managed_identity", "azure_cli"]},
                "endpoint": {"type": "string", "description": "The Azure Resource Manager endpoint; default https://management.azure.com."},
                "authority_host": {"type": "string", "description": "The Entra ID authority host; default AZURE_AUTHORITY_HOST or the public cloud's."},
                "prices": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "live": {"type": "boolean", "description": "Fetch prices from the Azure Retail Prices API (default true)."},
                        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                        "refresh": duration("How often live prices are fetched again, e.g. 24h."),
                        "endpoint": {"type": "string"}
                    }
                },
                "billing": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "scope": {"enum": ["scale_sets", "resource_group", "subscription"]},
                        "tags": tags
                    }
                },
                "metrics": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "utilization": {"type": "string", "description": "The Azure Monitor metric behind utilization; default Percentage CPU."}
                    }
                },
                "timeout": duration("How long one request may take, retries included; default 60s."),
                "retries": {"type": "integer", "minimum": 0, "maximum": 10},
                "operation_timeout": duration("How long a long-running operation is followed; default 15m."),
                "poll_interval": duration("The wait between polls when Azure does not say; default 5s."),
                "operation_wait": duration("How long a write waits for its operation before leaving it to the background; default 20s.")
            }
        })
    }
}

/// The provider registry's factory for the `azure` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct AzureProviderFactory;

#[async_trait]
impl ProviderFactory for AzureProviderFactory {
    fn kind(&self) -> &str {
        "azure"
    }

    fn settings_schema(&self) -> serde_json::Value {
        AzureSettings::schema()
    }

    fn validate(&self, ctx: BuildContext<'_>) -> Result<()> {
        AzureSettings::from_value(ctx.settings)?;
        for group in ctx.groups {
            GroupRef::parse(&group.id)?;
        }
        Ok(())
    }

    async fn build(&self, ctx: BuildContext<'_>) -> Result<BuiltProvider> {
        let mut settings = AzureSettings::from_value(ctx.settings)?;
        for group in ctx.groups {
            GroupRef::parse(&group.id)?;
            if !settings.groups.contains(&group.id) {
                settings.groups.push(group.id.clone());
            }
        }
        let provider = crate::AzureProvider::connect(ctx.name, settings).await?;
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
        let s = AzureSettings::from_value(&json!({
            "subscription_id": "0b1f6471-1bf0-4dda-aec3-111122223333",
            "resource_group": "web-rg",
            "groups": ["web", "batch-rg/batch"],
            "credential": "azure_cli",
            "prices": {"currency": "EUR"}
        }))
        .unwrap();
        assert_eq!(s.credential, CredentialSource::AzureCli);
        assert!(s.prices.live);
        let cases = [
            (json!({"subscription_id": "my-sub"}), "subscription_id"),
            (json!({}), "subscription_id"),
            (
                json!({"subscription_id": "0b1f6471-1bf0-4dda-aec3-111122223333", "groups": ["a/b/c"]}),
                "groups[0]",
            ),
            (
                json!({"subscription_id": "0b1f6471-1bf0-4dda-aec3-111122223333", "credential": "password"}),
                "credential",
            ),
            (
                json!({"subscription_id": "0b1f6471-1bf0-4dda-aec3-111122223333", "prices": {"currency": "euro"}}),
                "prices.currency",
            ),
            (
                json!({"subscription_id": "0b1f6471-1bf0-4dda-aec3-111122223333", "billing": {"scope": "resource_group"}}),
                "billing.scope",
            ),
        ];
        for (value, field) in cases {
            let e = AzureSettings::from_value(&value).unwrap_err();
            assert_eq!(e.kind(), hoist_api::ErrorKind::Config, "{e}");
            let named = e.field().is_some_and(|f| f.contains(field)) || e.message().contains(field);
            assert!(named, "{value}: {e} (field {:?})", e.field());
        }
        assert_eq!(
            GroupRef::parse("rg/web").unwrap().resource_group.as_deref(),
            Some("rg")
        );
    }
}
