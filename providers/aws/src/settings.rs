//! Typed settings of an `aws` provider in a policy file, and the factory the provider registry
//! uses to build one.
//!
//! ```yaml
//! providers:
//!   prod:
//!     aws:
//!       region: us-east-1                 # else AWS_REGION / the profile's region
//!       endpoint_url: http://127.0.0.1:5000  # optional: an emulator or VPC endpoint
//!       profile: prod                     # optional: a named profile of ~/.aws/config
//!       groups: { names: [web-asg] }      # or { tag: { key: team, value: web } }, { prefix: web- }, all
//!       instance_refresh: true            # replace instances after an instance type change
//! ```
//!
//! Credentials are never settings: they come from the standard AWS chain (environment,
//! profiles, web identity, ECS or EC2 instance metadata).

use std::sync::Arc;

use async_trait::async_trait;
use hoist_api::registry::{BuildContext, BuiltProvider, ProviderFactory};
use hoist_api::{Error, ProviderSet, Result};
use serde::Deserialize;

use crate::builder::AwsProviderBuilder;
use crate::client::GroupSelector;

/// Settings of one `aws` provider.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// AWS region; when absent, the standard chain's (`AWS_REGION`, the profile).
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint for every AWS service (an emulator); when absent, `AWS_ENDPOINT_URL` or AWS.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Endpoint for CloudWatch only.
    #[serde(default)]
    pub cloudwatch_endpoint_url: Option<String>,
    /// Named profile of the shared config files.
    #[serde(default)]
    pub profile: Option<String>,
    /// Which Auto Scaling groups the provider manages; all when absent.
    #[serde(default)]
    pub groups: Option<GroupsSetting>,
    /// CloudWatch namespace of custom metrics.
    #[serde(default)]
    pub custom_metric_namespace: Option<String>,
    /// Whether a change of instance type starts an instance refresh (default `true`).
    #[serde(default)]
    pub instance_refresh: Option<bool>,
}

/// The `groups` setting.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum GroupsSetting {
    /// Exactly these group names.
    Names(Vec<String>),
    /// Groups with this tag.
    Tag {
        /// Tag key.
        key: String,
        /// Tag value; any when absent.
        #[serde(default)]
        value: Option<String>,
    },
    /// Groups whose name starts with this.
    Prefix(String),
    /// Every group of the account and region.
    All,
}

fn field_error(field: &str, message: impl std::fmt::Display) -> Error {
    Error::config(format!("aws settings: field `{field}`: {message}")).with_provider("aws")
}

impl AwsSettings {
    /// Parses and validates settings; errors name the field.
    pub fn from_value(settings: &serde_json::Value) -> Result<Self> {
        let settings = if settings.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            settings.clone()
        };
        let parsed: AwsSettings = serde_json::from_value(settings)
            .map_err(|e| Error::config(format!("aws settings: {e}")).with_provider("aws"))?;
        parsed.validate()?;
        Ok(parsed)
    }

    /// Checks values serde cannot: non-empty names, plausible region and URLs.
    pub fn validate(&self) -> Result<()> {
        if let Some(region) = &self.region
            && (region.is_empty()
                || !region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        {
            return Err(field_error(
                "region",
                format!("`{region}` is not an AWS region name (like `us-east-1`)"),
            ));
        }
        for (field, url) in [
            ("endpoint_url", &self.endpoint_url),
            ("cloudwatch_endpoint_url", &self.cloudwatch_endpoint_url),
        ] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(field_error(
                    field,
                    format!("`{url}` must start with http:// or https://"),
                ));
            }
        }
        if let Some(profile) = &self.profile
            && profile.is_empty()
        {
            return Err(field_error("profile", "is empty"));
        }
        if let Some(namespace) = &self.custom_metric_namespace
            && namespace.is_empty()
        {
            return Err(field_error("custom_metric_namespace", "is empty"));
        }
        match &self.groups {
            Some(GroupsSetting::Names(names)) => {
                if names.is_empty() {
                    return Err(field_error("groups.names", "lists no group"));
                }
                for (i, name) in names.iter().enumerate() {
                    if name.trim().is_empty() {
                        return Err(field_error(&format!("groups.names[{i}]"), "is empty"));
                    }
                }
            }
            Some(GroupsSetting::Tag { key, value }) => {
                if key.is_empty() {
                    return Err(field_error("groups.tag.key", "is empty"));
                }
                if value.as_deref() == Some("") {
                    return Err(field_error(
                        "groups.tag.value",
                        "is empty (leave it out to match any value)",
                    ));
                }
            }
            Some(GroupsSetting::Prefix(prefix)) if prefix.is_empty() => {
                return Err(field_error(
                    "groups.prefix",
                    "is empty (use `all` to manage every group)",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// The group selection these settings ask for.
    pub fn selector(&self) -> GroupSelector {
        match &self.groups {
            None | Some(GroupsSetting::All) => GroupSelector::All,
            Some(GroupsSetting::Names(names)) => GroupSelector::Names(names.clone()),
            Some(GroupsSetting::Tag { key, value }) => GroupSelector::Tag {
                key: key.clone(),
                value: value.clone(),
            },
            Some(GroupsSetting::Prefix(prefix)) => GroupSelector::Prefix(prefix.clone()),
        }
    }

    /// A builder from the standard AWS chain with these settings on top.
    pub fn builder(&self, name: &str) -> AwsProviderBuilder {
        let mut builder = AwsProviderBuilder::from_env()
            .with_name(name)
            .with_groups(self.selector());
        if let Some(region) = &self.region {
            builder = builder.with_region(region);
        }
        if let Some(url) = &self.endpoint_url {
            builder = builder.with_endpoint_url(url);
        }
        if let Some(url) = &self.cloudwatch_endpoint_url {
            builder = builder.with_cloudwatch_endpoint_url(url);
        }
        if let Some(profile) = &self.profile {
            builder = builder.with_profile(profile);
        }
        if let Some(namespace) = &self.custom_metric_namespace {
            builder = builder.with_custom_metric_namespace(namespace);
        }
        if let Some(refresh) = self.instance_refresh {
            builder = builder.with_instance_refresh(refresh);
        }
        builder
    }
}

/// Builds the provider set of an `aws` provider named `name` from its policy-file settings.
pub async fn provider_set_from_settings(
    name: &str,
    settings: &serde_json::Value,
) -> Result<ProviderSet> {
    let settings = AwsSettings::from_value(settings)?;
    Ok(Arc::new(settings.builder(name).build().await?).into_provider_set())
}

/// The provider registry's factory for the `aws` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsProviderFactory;

impl AwsProviderFactory {
    fn check_groups(ctx: &BuildContext<'_>, settings: &AwsSettings) -> Result<()> {
        let selector = settings.selector();
        if let GroupSelector::Names(names) = &selector {
            for group in ctx.groups {
                if !names.contains(&group.id) {
                    return Err(field_error(
                        "groups.names",
                        format!(
                            "group `{}` is placed on provider `{}` but is not in its list",
                            group.id, ctx.name
                        ),
                    ));
                }
            }
        }
        if let GroupSelector::Prefix(prefix) = &selector {
            for group in ctx.groups {
                if !group.id.starts_with(prefix.as_str()) {
                    return Err(field_error(
                        "groups.prefix",
                        format!("group `{}` does not start with `{prefix}`", group.id),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ProviderFactory for AwsProviderFactory {
    fn kind(&self) -> &str {
        "aws"
    }

    fn validate(&self, ctx: BuildContext<'_>) -> Result<()> {
        let settings = AwsSettings::from_value(ctx.settings)?;
        Self::check_groups(&ctx, &settings)
    }

    async fn build(&self, ctx: BuildContext<'_>) -> Result<BuiltProvider> {
        let settings = AwsSettings::from_value(ctx.settings)?;
        Self::check_groups(&ctx, &settings)?;
        let provider = settings.builder(ctx.name).build().await?;
        Ok(BuiltProvider {
            set: Arc::new(provider).into_provider_set(),
            clock: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_every_group_selection() {
        let s = AwsSettings::from_value(
            &json!({"region": "us-east-1", "groups": {"names": ["a", "b"]}}),
        )
        .unwrap();
        assert_eq!(
            s.selector(),
            GroupSelector::Names(vec!["a".into(), "b".into()])
        );
        let s =
            AwsSettings::from_value(&json!({"groups": {"tag": {"key": "team", "value": "web"}}}))
                .unwrap();
        assert_eq!(
            s.selector(),
            GroupSelector::Tag {
                key: "team".into(),
                value: Some("web".into())
            }
        );
        let s = AwsSettings::from_value(&json!({"groups": {"prefix": "web-"}})).unwrap();
        assert_eq!(s.selector(), GroupSelector::Prefix("web-".into()));
        let s = AwsSettings::from_value(&json!({"groups": "all"})).unwrap();
        assert_eq!(s.selector(), GroupSelector::All);
        assert_eq!(
            AwsSettings::from_value(&serde_json::Value::Null).unwrap(),
            AwsSettings::default()
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({"region": "US East"}), "`region`"),
            (json!({"endpoint_url": "127.0.0.1:5000"}), "`endpoint_url`"),
            (json!({"groups": {"names": []}}), "`groups.names`"),
            (json!({"groups": {"names": ["a", ""]}}), "`groups.names[1]`"),
            (json!({"groups": {"tag": {"key": ""}}}), "`groups.tag.key`"),
            (json!({"groups": {"prefix": ""}}), "`groups.prefix`"),
            (json!({"regoin": "us-east-1"}), "regoin"),
            (json!({"groups": {"names": "web"}}), "sequence"),
        ];
        for (value, needle) in cases {
            let err = AwsSettings::from_value(&value).unwrap_err();
            assert_eq!(err.kind(), hoist_api::ErrorKind::Config);
            assert!(err.to_string().contains(needle), "{value}: {err}");
        }
    }
}
